//! Reporters: sinks of the engine's one event stream. The terminal (progress bars on a
//! TTY, timestamped lines otherwise; `kmatrix boot` uses it too), `results.json`
//! rewritten atomically as each cell finishes, and `junit.xml`, `summary.md`,
//! `report.html` and `matrix.txt` written when the run ends (also after Ctrl-C).

pub mod eta;
pub mod files;
pub mod html;
pub mod junit;
pub mod kcidb;
pub mod markdown;
pub mod reporter;
pub mod results;
pub mod sink;
pub mod summary;
pub mod terminal;
pub mod text;

pub use files::write_results;
pub use reporter::reporter;
pub use results::{load_results, RunMeta, SCHEMA_VERSION};
pub use sink::{FinalReports, ResultsJson, RunState, Sink};
pub use summary::{amplify_summary, cell_summary};
pub use text::matrix;
