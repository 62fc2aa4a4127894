//! The reporters' side of the event stream: what every sink shares, the sinks that write
//! result files, and the task that drives them.

use crate::record::events::Event;
use crate::record::result::CellResult;
use crate::report::results::RunMeta;
use std::path::PathBuf;

/// What the sinks share: the run's identity and the cells finished so far.
pub struct RunState {
    pub meta: RunMeta,
    pub run_dir: PathBuf,
    pub cells: Vec<CellResult>,
}

/// One consumer of the event stream.
pub trait Sink: Send {
    fn event(&mut self, e: &Event, run: &RunState) -> std::io::Result<()>;
}

/// `results.json` after every cell: what a killed run leaves behind. Each cell is
/// rendered once, when it finishes.
#[derive(Default)]
pub struct ResultsJson {
    rendered: Vec<String>,
}

impl Sink for ResultsJson {
    fn event(&mut self, e: &Event, run: &RunState) -> std::io::Result<()> {
        match e {
            Event::CellFinished { result } => {
                self.rendered
                    .push(crate::report::results::render_cell(result));
                crate::report::results::write_rendered(&run.run_dir, &run.meta, &self.rendered)
            }
            _ => Ok(()),
        }
    }
}

/// Every file, once the run is over (finished or interrupted).
pub struct FinalReports;

impl Sink for FinalReports {
    fn event(&mut self, e: &Event, run: &RunState) -> std::io::Result<()> {
        match e {
            Event::RunFinished => {
                crate::report::files::write_results(&run.run_dir, &run.meta, &run.cells)
            }
            _ => Ok(()),
        }
    }
}
