//! The reporters' side of the event stream: what every sink shares, the sinks that write
//! result files, and the task that drives them.

use crate::record::events::Event;
use crate::record::result::CellResult;
use crate::report::results::RunMeta;
use std::path::PathBuf;

/// What the sinks share: the run's identity and the cells finished so far, in the
/// plan's order (cells running side by side finish in any order).
pub struct RunState {
    pub meta: RunMeta,
    pub run_dir: PathBuf,
    pub cells: Vec<CellResult>,
    /// The plan's order of the cells (`RunStarted`); a cell not in it goes last.
    pub order: Vec<crate::record::plan::CellId>,
}

impl RunState {
    /// Where cell `id` stands in the plan's order.
    pub fn position(&self, id: &str) -> usize {
        self.order
            .iter()
            .position(|c| c == id)
            .unwrap_or(self.order.len())
    }

    /// Where a cell finished now goes among `done` (ids in the plan's order so far):
    /// before the first that comes after it in the plan.
    pub fn slot_for<'a>(&self, id: &str, done: impl Iterator<Item = &'a str>) -> usize {
        let me = self.position(id);
        let mut at = 0;
        for (k, other) in done.enumerate() {
            if self.position(other) > me {
                return k;
            }
            at = k + 1;
        }
        at
    }

    /// Add a finished cell in its place.
    pub fn insert(&mut self, cell: CellResult) {
        let at = self.slot_for(&cell.id, self.cells.iter().map(|c| c.id.as_str()));
        self.cells.insert(at, cell);
    }
}

/// One consumer of the event stream.
pub trait Sink: Send {
    fn event(&mut self, e: &Event, run: &RunState) -> std::io::Result<()>;
}

/// `results.json` after every cell: what a killed run leaves behind. Each cell is
/// rendered once, when it finishes.
#[derive(Default)]
pub struct ResultsJson {
    /// Each finished cell's JSON, in the plan's order.
    rendered: Vec<(crate::record::plan::CellId, String)>,
}

impl Sink for ResultsJson {
    fn event(&mut self, e: &Event, run: &RunState) -> std::io::Result<()> {
        match e {
            Event::CellFinished { result } => {
                let at = run.slot_for(&result.id, self.rendered.iter().map(|(id, _)| id.as_str()));
                self.rendered.insert(
                    at,
                    (
                        result.id.clone(),
                        crate::report::results::render_cell(result),
                    ),
                );
                let cells: Vec<String> = self.rendered.iter().map(|(_, c)| c.clone()).collect();
                crate::report::results::write_rendered(&run.run_dir, &run.meta, &cells)
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
