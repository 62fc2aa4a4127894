//! Command line: `kmatrix run | build | boot | plan | merge | report | doctor | parse |
//! bisect | bisect-new | compare`, and what each does at the top level. One file per command; the
//! engine and its reporters are wired in one place (`session`).

pub mod args;
mod b4;
pub mod bisect;
mod bisect_new;
mod boot;
pub mod compare;
mod dispatch;
pub mod doctor;
mod error;
mod mcp;
mod merge;
mod parse;
mod plan;
mod report;
mod run;
mod select;
mod session;
mod signals;

pub use args::{Cli, Command, Selection};
pub use dispatch::main;
pub use error::CliError;
pub use signals::on_signals;
