//! The state of one cell's run, which every phase (`prepare`, `boot`, `guest_tests`,
//! `liveness`, `forensics`) works on, and what a phase reports as it goes.

use crate::engine::shared::Shared;
use crate::record::events::Event;
use crate::record::phase::Phase;
use crate::record::plan::Cell;
use crate::record::result::CellResult;
use std::path::PathBuf;

/// How many times a cell boots at most (a fresh kernel after each fatal report).
pub const MAX_BOOTS: u32 = 4;

pub struct CellRun<'a> {
    pub sh: &'a Shared,
    pub cell: &'a Cell,
    /// The folder of this run of the cell (`repeat-N/` inside it with `--repeat`).
    pub dir: PathBuf,
    pub result: CellResult,
    /// What the kernel has (from its config), once it is known.
    pub facts: crate::judge::KernelFacts,
    /// Console line where the liveness step started, if it ran.
    pub liveness_line: Option<usize>,
    /// Why the liveness step could not run, if it could not.
    pub liveness_skipped: Option<String>,
    /// The results share's quota mount while the cell boots (`host::quota`); dropped
    /// with the run, which keeps its contents on disk.
    pub quota: Option<crate::host::quota::ResultsMount>,
    /// The series' coverage while the cell runs (a patched cell whose kernel has a map).
    pub coverage: Option<CellCoverage>,
    /// When each phase began; phases are entered from `&self`, so they are kept here and
    /// moved into the result when the cell finishes.
    pub(super) phases: std::sync::Mutex<Vec<crate::record::result::PhaseStart>>,
}

impl<'a> CellRun<'a> {
    pub fn new(sh: &'a Shared, cell: &'a Cell) -> CellRun<'a> {
        let dir = sh.run_dir.join(cell.rel_dir());
        CellRun {
            sh,
            cell,
            result: CellResult::new(cell, dir.clone()),
            dir,
            facts: crate::judge::KernelFacts::default(),
            liveness_line: None,
            liveness_skipped: None,
            quota: None,
            coverage: None,
            phases: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn phase(&self, phase: Phase, detail: impl Into<String>) {
        let detail = detail.into();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let start = crate::record::result::PhaseStart {
            phase,
            detail: detail.clone(),
            at,
        };
        if let Ok(mut c) = self.sh.current.lock() {
            c.insert(self.cell.id(), start.clone());
        }
        if let Ok(mut p) = self.phases.lock() {
            p.push(start);
        }
        self.sh.emit(Event::Phase {
            id: self.cell.id(),
            phase,
            detail,
        });
    }

    /// The functions the cell's series changes: a report's title names the first of them
    /// in its trace ("in vma_start_read_unlocked", not "in down_read").
    pub fn series_functions(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for p in self.cell.series(&self.sh.plan) {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            for f in crate::console::changed_functions(&text) {
                if !v.contains(&f) {
                    v.push(f);
                }
            }
        }
        v
    }

    pub fn note(&self, message: impl Into<String>) {
        self.sh.emit(Event::Note {
            id: self.cell.id(),
            message: message.into(),
        });
    }
}

/// A patched cell's coverage while it runs (`super::coverage` fills it).
pub struct CellCoverage {
    pub(super) series: crate::prepare::coverage::Series,
    pub(super) map: crate::prepare::coverage::Map,
    /// The kernel's coverage folder, copied into the cell's (`coverage/`).
    pub(super) dir: PathBuf,
    pub(super) counts: Vec<crate::prepare::coverage::TestCounts>,
    /// The counters could not be zeroed (a kernel without gcov): say it once.
    pub(super) unmeasurable: Option<String>,
}
