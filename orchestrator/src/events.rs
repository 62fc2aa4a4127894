//! The event stream from the engine to the reporters (terminal progress, result files).

use crate::verdict::CellResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Source,
    Patch,
    Build,
    Image,
    Boot,
    Test,
    Collect,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Source => "source",
            Phase::Patch => "patch",
            Phase::Build => "build",
            Phase::Image => "image",
            Phase::Boot => "boot",
            Phase::Test => "test",
            Phase::Collect => "collect",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        cells: usize,
        run_dir: std::path::PathBuf,
    },
    CellStarted {
        id: String,
    },
    Phase {
        id: String,
        phase: Phase,
        detail: String,
    },
    /// A line worth showing (a fallback, a cache hit, a warning).
    Note {
        id: String,
        message: String,
    },
    CellFinished {
        result: Box<CellResult>,
    },
    RunFinished,
}

pub type Sender = tokio::sync::mpsc::UnboundedSender<Event>;
