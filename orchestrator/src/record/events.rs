//! The event stream from the engine to the reporters (terminal progress, result files),
//! and the progress facts it carries: how far a kernel build is, and what the run is
//! expected to cost.

use crate::record::phase::Phase;
use crate::record::result::CellResult;
use std::time::Duration;

/// Where a build's expected object count comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalFrom {
    /// The previous build of the same kind (cold or incremental) in the same slot.
    Previous,
    /// The objects the tree's Kbuild lists name for the final config, less those already
    /// built (no build of this slot to go by).
    Config,
    /// The objects whose recorded dependencies include a file the slot's sync changed
    /// (more than the previous incremental build: a changed header).
    Dependencies,
    /// Nothing to go by (an incremental build in a slot that never had one): only the
    /// count is known.
    Unknown,
}

/// How far a kernel build is: objects compiled so far (the `CC`/`AS` lines make wrote
/// to the build log) out of how many it is expected to compile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildProgress {
    pub done: u64,
    /// 0 when unknown ([`TotalFrom::Unknown`]).
    pub total: u64,
    pub from: TotalFrom,
    /// Since the full build's `make` started.
    pub elapsed: Duration,
}

impl BuildProgress {
    /// Done / total, below 1 while make runs: a total from an earlier build or the
    /// config is an estimate, and a build that compiles more than it must not look done.
    pub fn fraction(&self) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        Some((self.done as f64 / self.total as f64).min(0.99))
    }

    /// Time left in this build at the rate so far; None before the first object, or
    /// once the build has gone past its expected total (the estimate was wrong).
    pub fn left(&self) -> Option<Duration> {
        if self.done == 0 || self.total == 0 || self.done >= self.total {
            return None;
        }
        let per_object = self.elapsed.as_secs_f64() / self.done as f64;
        Some(Duration::from_secs_f64(
            per_object * (self.total - self.done) as f64,
        ))
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        cells: usize,
        run_dir: std::path::PathBuf,
        /// The cells in the plan's order: every output lists them so, whatever order
        /// they finish in.
        order: Vec<crate::record::plan::CellId>,
        /// Cells at a time (`--jobs`).
        jobs: usize,
    },
    CellStarted {
        id: crate::record::plan::CellId,
    },
    /// What a cell is expected to cost (`record::eta`), from what the run knows before
    /// it runs (sent for every cell to run, once the engine has looked).
    Expected {
        id: crate::record::plan::CellId,
        expect: crate::record::eta::CellExpect,
    },
    /// The cell is past its kernel step (built, from the cache, or stopped in it).
    KernelDone {
        id: crate::record::plan::CellId,
    },
    Phase {
        id: crate::record::plan::CellId,
        phase: Phase,
        detail: String,
    },
    /// The full build of the cell's kernel moved on (sent every few seconds while
    /// make runs, when the count changed).
    BuildProgress {
        id: crate::record::plan::CellId,
        progress: BuildProgress,
    },
    /// A line worth showing (a fallback, a cache hit, a warning).
    Note {
        id: crate::record::plan::CellId,
        message: String,
    },
    CellFinished {
        result: Box<CellResult>,
    },
    RunFinished,
}

pub type Sender = tokio::sync::mpsc::UnboundedSender<Event>;

#[cfg(test)]
mod tests {
    use super::*;

    fn p(done: u64, total: u64, secs: u64) -> BuildProgress {
        BuildProgress {
            done,
            total,
            from: TotalFrom::Previous,
            elapsed: Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_fraction_is_done_over_total_and_never_done_while_make_runs() {
        assert_eq!(p(270, 1080, 60).fraction(), Some(0.25));
        assert_eq!(p(1080, 1080, 60).fraction(), Some(0.99));
        assert_eq!(
            p(1500, 1080, 60).fraction(),
            Some(0.99),
            "more than expected"
        );
        assert_eq!(p(10, 0, 60).fraction(), None, "no total to go by");
    }

    #[test]
    fn time_left_follows_the_rate_so_far() {
        // A quarter in a minute: three more minutes.
        assert_eq!(p(270, 1080, 60).left(), Some(Duration::from_secs(180)));
        assert_eq!(p(540, 1080, 100).left(), Some(Duration::from_secs(100)));
        assert_eq!(
            p(0, 1080, 30).left(),
            None,
            "no rate before the first object"
        );
        assert_eq!(p(1200, 1080, 30).left(), None, "past the estimate: unknown");
        assert_eq!(p(5, 0, 30).left(), None);
    }
}
