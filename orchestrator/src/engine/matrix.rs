//! The matrix loop: every cell of the plan in order, reused cells (`--resume`) as they
//! were; each finished cell judged against its base cell.

use crate::engine::run::CellRun;
use crate::engine::shared::{Overrides, RunOptions, Shared};
use crate::host::cache::Cache;
use crate::record::events::{Event, Sender};
use crate::record::plan::Plan;
use crate::record::result::CellResult;
use crate::record::verdict::Verdict;
use std::collections::HashMap;
use std::path::PathBuf;
use tokio::sync::watch;

pub struct Engine {
    pub(super) shared: Shared,
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
            let mut result = CellRun::new(sh, cell).run().await;
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
        crate::engine::shell::boot_shell(&self.shared, cell, command).await
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

