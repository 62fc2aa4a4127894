//! The one wiring of the engine to its reporters, for `run`, `build`, `boot` and
//! `bisect`: an event channel, the sinks on their own task, the engine on another, and a
//! panic in either as kmatrix's own failure (exit 3), never a run that passed.

use crate::engine::{Engine, RunOptions};
use crate::host::cache::Cache;
use crate::record::plan::{Cell, Plan};
use crate::record::result::CellResult;
use crate::report::sink::{FinalReports, ResultsJson, RunState, Sink};
use crate::report::terminal::Terminal;
use crate::report::RunMeta;
use std::path::{Path, PathBuf};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which sinks a command wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sinks {
    /// The terminal (with the matrix at the end or not) and every result file.
    Run { matrix: bool },
    /// Plain progress lines only: the terminal belongs to the guest's shell afterwards.
    Shell,
}

impl Sinks {
    fn build(self) -> Vec<Box<dyn Sink>> {
        match self {
            Sinks::Run { matrix } => vec![
                Box::new(Terminal::new(false, matrix)),
                Box::new(ResultsJson::default()),
                Box::new(FinalReports),
            ],
            Sinks::Shell => vec![Box::new(Terminal::new(true, false))],
        }
    }
}

/// An engine with its reporter running.
pub struct Session {
    engine: Engine,
    reporter: JoinHandle<(Vec<CellResult>, Option<std::io::Error>)>,
}

/// What a finished session left: its cells, and the error a sink met writing the result
/// files, if any (the matrix is complete even when the files are not).
pub struct Finished {
    pub cells: Vec<CellResult>,
    pub write_error: Option<std::io::Error>,
}

/// The engine and its reporters for one run folder.
pub struct Start {
    pub plan: Plan,
    pub cache: Cache,
    pub opts: RunOptions,
    pub run_dir: PathBuf,
    pub meta: RunMeta,
    pub sinks: Sinks,
    pub cancel: watch::Receiver<bool>,
}

impl Session {
    pub fn start(s: Start) -> Session {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let state = RunState {
            meta: s.meta,
            run_dir: s.run_dir.clone(),
            cells: vec![],
            order: vec![],
        };
        let reporter = tokio::spawn(crate::report::reporter(rx, state, s.sinks.build()));
        let engine = Engine::new(s.plan, s.cache, s.opts, s.run_dir, tx, s.cancel);
        Session { engine, reporter }
    }

    /// Every cell of the plan; `Err` says which task failed.
    pub async fn run(self) -> Result<Finished, String> {
        let ran = tokio::spawn(self.engine.run()).await;
        let (cells, write_error) = self
            .reporter
            .await
            .map_err(|e| format!("the reporter failed: {e}"))?;
        ran.map_err(|e| format!("the engine failed: {e}"))?;
        Ok(Finished { cells, write_error })
    }

    /// `kmatrix boot`: the cell's kernel booted, `command` run in it (or a shell).
    pub async fn boot_shell(self, cell: &Cell, command: Option<String>) -> Result<i32, String> {
        self.engine.boot_shell(cell, command).await
    }
}

/// The run's identity in its results.json.
pub fn meta(plan: &Plan, shard: Option<crate::record::plan::Shard>) -> RunMeta {
    RunMeta {
        spec: plan.spec_path.clone(),
        spec_hash: plan.spec_hash.clone(),
        shard,
    }
}

/// `<runs>/latest` names the newest run folder (a relative link, so the runs folder
/// can move).
pub fn point_latest(runs: &Path, run_dir: &Path) {
    let latest = runs.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(run_dir.file_name().unwrap_or_default(), &latest);
}
