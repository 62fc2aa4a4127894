//! The matrix loop: every cell of the plan in order, reused cells (`--resume`) as they
//! were; each finished cell judged against its base cell.

use crate::engine::run::CellRun;
use crate::engine::shared::{Overrides, RunOptions, Shared};
use crate::host::cache::Cache;
use crate::host::rundir::read_bounded;
use crate::record::events::{Event, Sender};
use crate::record::plan::Plan;
use crate::record::result::CellResult;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// The most kmatrix reads of a lockdep file or a patch when judging against base.
const LOCKDEP_FILE_CAP: u64 = 32 << 20;
/// How long the comparison with the base cell may take.
const AGAINST_BASE_DEADLINE: Duration = Duration::from_secs(120);

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
                current: std::sync::Mutex::new(None),
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
            compare_with_base(sh, cell, &mut result, &finished).await;
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

/// Judge a patched cell against its base cell (same arch and config, run earlier in
/// this run or reused), with both cells' lockdep files when they have them.
async fn compare_with_base(
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
    // What the guests wrote is bounded (lockdep's own tables are far smaller).
    let read = |d: &std::path::Path, f: &str| read_bounded(&d.join(f), LOCKDEP_FILE_CAP).ok();
    let patches: Vec<String> = cell
        .series(&sh.plan)
        .filter_map(|p| read_bounded(p, LOCKDEP_FILE_CAP).ok())
        .collect();
    use crate::judge::lockgraph_noise as noise;
    let (b, p) = (
        noise::boot_files(&base.dir, LOCKDEP_FILE_CAP),
        noise::boot_files(&result.dir, LOCKDEP_FILE_CAP),
    );
    let chains = read(&result.dir, "lockdep_chains.txt").unwrap_or_default();
    let noise_file = base
        .kernel_key
        .as_deref()
        .and_then(|k| noise::path(&sh.cache.root, k).map(|f| (k.to_string(), f)));
    let learnt_before = noise_file
        .as_ref()
        .map(|(_, f)| noise::load(f))
        .unwrap_or_default();
    let (mut judged, base) = (result.clone(), base.clone());
    // Off the runtime and with a deadline: the files are the guests', and the engine has
    // other cells to drive.
    let done = tokio::time::timeout(
        AGAINST_BASE_DEADLINE,
        tokio::task::spawn_blocking(move || {
            let files =
                (!b.is_empty() && !p.is_empty()).then(|| crate::judge::baseline::LockFiles {
                    base: &b,
                    cell: &p,
                    chains: &chains,
                    patches: &patches,
                    noise: &learnt_before,
                });
            let learnt = crate::judge::baseline::against_base(&mut judged, &base, files);
            if let (Some((key, f)), false) = (&noise_file, learnt.is_empty()) {
                if let Err(e) = noise::add(f, key, &learnt) {
                    judged.notes.push(format!(
                        "the lock graph noise learnt here was not kept ({}: {e})",
                        f.display()
                    ));
                }
            }
            judged
        }),
    )
    .await;
    match done {
        Ok(Ok(judged)) => *result = judged,
        Ok(Err(e)) => result
            .notes
            .push(format!("the comparison with the base cell failed: {e}")),
        Err(_) => result.notes.push(format!(
            "the comparison with the base cell took more than {}s; skipped",
            AGAINST_BASE_DEADLINE.as_secs()
        )),
    }
}
