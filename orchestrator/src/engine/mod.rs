//! The engine: takes each cell through its phases and emits events; the only place that
//! sequences processes (async). Decisions are in the synchronous modules it calls
//! (`verdict`, `console`, `kconfig`, the argument builders).
//!
//! - `mod.rs`: the matrix loop, `--resume`, cancellation, what every cell shares.
//! - `cell.rs`: one cell's run ([`cell::CellRun`]): its phases in order, `--repeat`, and
//!   the one place its outcome becomes a [`CellResult`].
//! - `prepare.rs`: source, patch and build (in the slot) and image -> [`prepare::Prepared`].
//! - `boot.rs`: a [`boot::BootSession`]: the VM, its shares, its console, SSH; KVM
//!   fallback.
//! - `tests.rs`: one guest test -> a [`TestOutcome`](crate::record::result::TestOutcome).
//! - `forensics.rs`: sysrq dumps after a hang or a fatal report.
//! - `shell.rs`: `kmatrix boot`.

mod boot;
mod cell;
mod forensics;
mod guest_tests;
mod liveness;
mod prepare;
mod shell;


use crate::host::cache::Cache;
use crate::prepare::image::Image;
use crate::prepare::source::Tree;
use crate::record::events::{Event, Sender};
use crate::record::plan::{Arch, Plan};
use crate::record::result::CellResult;
use crate::record::verdict::Verdict;
use std::collections::HashMap;
use std::path::PathBuf;
use tokio::sync::watch;

/// Options from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub rebuild: bool,
    /// Build only: stop each cell after its kernel is built.
    pub build_only: bool,
    /// Results of an earlier run to reuse instead of running those cells (`--resume`).
    pub resume: Vec<CellResult>,
    /// Boot and test each cell this many times (`--repeat N`).
    pub repeat: u32,
}

/// Why a phase stopped the cell early.
#[derive(Debug)]
pub struct Stop {
    pub verdict: Verdict,
    pub reason: String,
    pub details: Vec<String>,
}

impl Stop {
    pub fn new(verdict: Verdict, reason: impl Into<String>) -> Stop {
        Stop {
            verdict,
            reason: reason.into(),
            details: vec![],
        }
    }
    /// The host's or kmatrix's fault, never the kernel's.
    pub fn infra(reason: impl Into<String>) -> Stop {
        Stop::new(Verdict::InfraError, reason)
    }
    pub fn details(mut self, details: Vec<String>) -> Stop {
        self.details = details;
        self
    }
}

/// Substitute programs (tests use fakes for failure paths).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub qemu: Option<PathBuf>,
    pub virtiofsd: Option<PathBuf>,
}

/// What every cell of a run shares.
pub(crate) struct Shared {
    pub plan: Plan,
    pub cache: Cache,
    pub opts: RunOptions,
    pub run_dir: PathBuf,
    pub tx: Sender,
    pub cancel: watch::Receiver<bool>,
    pub overrides: Overrides,
    /// The pristine tree, fetched once per run.
    pub tree: tokio::sync::OnceCell<Tree>,
    pub images: tokio::sync::Mutex<HashMap<Arch, Image>>,
    /// The kernel selftests of the run's tree, per arch.
    pub selftests: tokio::sync::Mutex<HashMap<Arch, crate::prepare::selftests::Built>>,
    /// Why KVM could not run a guest on this host, once a boot found out: later boots of
    /// the run go straight to TCG.
    pub kvm_failed: std::sync::Mutex<Option<String>>,
    /// The phase (and its detail) the current cell is in: an interruption says where.
    pub current: std::sync::Mutex<String>,
}

impl Shared {
    pub fn emit(&self, e: Event) {
        let _ = self.tx.send(e);
    }
    pub fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }
}

pub struct Engine {
    shared: Shared,
}

impl Engine {
    pub fn new(
        plan: Plan,
        cache: Cache,
        opts: RunOptions,
        run_dir: PathBuf,
        tx: Sender,
        cancel: watch::Receiver<bool>,
    ) -> Engine {
        Engine {
            shared: Shared {
                plan,
                cache,
                opts,
                run_dir,
                tx,
                cancel,
                overrides: Overrides::default(),
                tree: tokio::sync::OnceCell::new(),
                images: tokio::sync::Mutex::new(HashMap::new()),
                selftests: tokio::sync::Mutex::new(HashMap::new()),
                kvm_failed: std::sync::Mutex::new(None),
                current: std::sync::Mutex::new(String::new()),
            },
        }
    }

    /// Use these programs instead of QEMU / virtiofsd (tests).
    pub fn with_overrides(mut self, o: Overrides) -> Engine {
        self.shared.overrides = o;
        self
    }

    /// Every cell of the plan in order; reused cells (`--resume`) are reported as they
    /// were. Ends with `RunFinished`, also when interrupted.
    pub async fn run(self) {
        let sh = &self.shared;
        sh.emit(Event::RunStarted {
            cells: sh.plan.cells.len(),
            run_dir: sh.run_dir.clone(),
        });
        let mut finished: Vec<CellResult> = Vec::new();
        for cell in &sh.plan.cells {
            sh.emit(Event::CellStarted { id: cell.id() });
            if let Some(done) = sh.opts.resume.iter().find(|r| r.id == cell.id()) {
                sh.emit(Event::Note {
                    id: cell.id(),
                    message: format!("reused from {}", done.dir.display()),
                });
                finished.push(done.clone());
                sh.emit(Event::CellFinished {
                    result: Box::new(done.clone()),
                });
                continue;
            }
            let mut result = cell::CellRun::new(sh, cell).run().await;
            compare_lock_graph(sh, cell, &mut result, &finished);
            finished.push(result.clone());
            sh.emit(Event::CellFinished {
                result: Box::new(result),
            });
        }
        sh.emit(Event::RunFinished);
    }

    /// `kmatrix boot`: build (or reuse) a cell's kernel, boot it, then run `command` over
    /// SSH, or hand the terminal to an interactive `ssh` session; the VM is stopped after.
    /// Returns the command's (or ssh's) exit status.
    pub async fn boot_shell(
        self,
        cell: &crate::record::plan::Cell,
        command: Option<String>,
    ) -> Result<i32, String> {
        shell::boot_shell(&self.shared, cell, command).await
    }
}

/// Compare a patched cell's lock graph with its base cell's (same arch and config, run
/// earlier in this run or reused). A new edge that closes a cycle is a finding, and the
/// verdict of a cell that otherwise passed is decided again with it.
fn compare_lock_graph(
    sh: &Shared,
    cell: &crate::record::plan::Cell,
    result: &mut CellResult,
    finished: &[CellResult],
) {
    let Some(baseline) = &sh.plan.baseline else {
        return;
    };
    if &cell.patchset == baseline {
        return;
    }
    let Some(base) = finished
        .iter()
        .find(|c| &c.patchset == baseline && c.arch == cell.arch && c.config == cell.config)
    else {
        return;
    };
    let read = |d: &std::path::Path| std::fs::read_to_string(d.join("lockdep.txt")).ok();
    let (Some(b), Some(p)) = (read(&base.dir), read(&result.dir)) else {
        return;
    };
    let patches: Vec<String> = cell
        .series(&sh.plan)
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    let chains = std::fs::read_to_string(result.dir.join("lockdep_chains.txt"))
        .map(|t| crate::judge::lockgraph::parse_chains(&t))
        .unwrap_or_default();
    let mut d = crate::judge::lockgraph::diff(
        &base.id,
        &crate::judge::lockgraph::parse(&b),
        &crate::judge::lockgraph::parse(&p),
        &crate::judge::lockgraph::Series::of(&patches),
        &chains,
    );
    d.tests_not_in_base = result
        .tests
        .iter()
        .filter(|t| !base.tests.iter().any(|b| b.name == t.name))
        .map(|t| t.name.clone())
        .collect();
    for c in &d.cycles {
        result.findings.push(crate::console::Finding {
            kind: crate::console::Kind::Lockdep,
            title: format!(
                "possible deadlock in lock graph: {} -> {} closes a cycle",
                c[0],
                c.get(1).cloned().unwrap_or_default()
            ),
            report: format!(
                "kmatrix lock graph: {} takes {} (new in this cell); the graphs of this cell and {} hold the path back:\n  {}",
                c[0],
                c.get(1).cloned().unwrap_or_default(),
                base.id,
                c.join("\n  -> ")
            ),
            ..Default::default()
        });
    }
    if !d.cycles.is_empty() && matches!(result.verdict, Verdict::Pass | Verdict::Inconclusive) {
        let (v, why) = crate::judge::decide(&result.tests, &result.findings, &result.controls);
        result.verdict = v;
        result.reason = why;
    }
    result.lock_graph = Some(d);
}

/// An infrastructure stop from any error of a lower layer.
fn infra_err(e: &dyn std::error::Error) -> Stop {
    Stop::infra(crate::record::fmt::chain(e))
}

/// Append a line to a log file (best effort: logs are evidence, not control flow).
fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod fakes;
