//! What every cell of a run shares, and how a phase stops a cell early.

use crate::host::cache::Cache;
use crate::prepare::image::Image;
use crate::prepare::source::Tree;
use crate::record::events::{Event, Sender};
use crate::record::plan::{Arch, CellId, Plan};
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
    /// Cells run at the same time (`--jobs N`; 0 is 1): `record::schedule` says which.
    pub jobs: usize,
    /// The cells of the last run (its results.json), for the ETA's guest times only.
    pub last_run: Vec<CellResult>,
}

impl RunOptions {
    /// How the cells run, as their identity records it.
    pub fn mode(&self) -> crate::prepare::identity::Mode {
        crate::prepare::identity::Mode {
            build_only: self.build_only,
            repeat: self.repeat,
        }
    }
}

/// Why a phase stopped the cell early.
#[derive(Debug)]
pub struct Stop {
    pub verdict: Verdict,
    pub reason: String,
    pub details: Vec<String>,
    /// Ctrl-C (or SIGTERM, SIGHUP) reached the cell while it ran: its reason says where.
    pub cut_short: bool,
}

impl Stop {
    pub fn new(verdict: Verdict, reason: impl Into<String>) -> Stop {
        Stop {
            verdict,
            reason: reason.into(),
            details: vec![],
            cut_short: false,
        }
    }
    /// The run was interrupted while this cell ran.
    pub fn cut_short() -> Stop {
        Stop {
            cut_short: true,
            ..Stop::new(Verdict::Interrupted, "interrupted (Ctrl-C)")
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
pub struct Shared {
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
    /// The phase (and its detail) each running cell is in: an interruption says where.
    pub current: std::sync::Mutex<HashMap<CellId, crate::record::result::PhaseStart>>,
    /// Cells past their kernel step since the scheduler last looked (their slot is free).
    pub kernels: std::sync::Mutex<Vec<CellId>>,
    pub kernel_notify: tokio::sync::Notify,
}

impl Shared {
    pub fn emit(&self, e: Event) {
        let _ = self.tx.send(e);
    }
    pub fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }
    /// The phase cell `id` is in (the last it entered).
    pub fn phase_of(&self, id: &str) -> Option<crate::record::result::PhaseStart> {
        self.current.lock().ok().and_then(|c| c.get(id).cloned())
    }
    /// A cell is past its kernel step (built, from the cache, or stopped in it): the next
    /// cell of its build slot may start.
    pub fn kernel_done(&self, id: CellId) {
        self.emit(Event::KernelDone { id: id.clone() });
        if let Ok(mut k) = self.kernels.lock() {
            k.push(id);
        }
        self.kernel_notify.notify_one();
    }
    /// The cells that were done with their kernel step since the last call; waits for one.
    pub async fn kernel_ready(&self) -> Vec<CellId> {
        loop {
            let ids = self
                .kernels
                .lock()
                .map(|mut k| std::mem::take(&mut *k))
                .unwrap_or_default();
            if !ids.is_empty() {
                return ids;
            }
            self.kernel_notify.notified().await;
        }
    }
}
impl Shared {
    /// The pristine tree, fetched once per run (under the shared cache steps' lock).
    pub async fn source_tree(&self, waiting: impl Fn(String)) -> Result<Tree, Stop> {
        self.tree
            .get_or_try_init(|| async {
                let path = self.cache.dir(".prepare.lock");
                let _lock = crate::host::cache::lock(
                    &path,
                    "the shared cache steps",
                    PREPARE_WAIT,
                    waiting,
                )
                .await
                .map_err(|e| infra_err(&e))?;
                crate::prepare::source::prepare(&self.plan.source, &self.cache)
                    .await
                    .map_err(|e| infra_err(&e))
            })
            .await
            .cloned()
    }
}

/// Shared cache steps (download, unpack, images) take turns across concurrent runs;
/// a holder that takes longer than this is stuck.
pub const PREPARE_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// An infrastructure stop from any error of a lower layer.
pub fn infra_err(e: &dyn std::error::Error) -> Stop {
    Stop::infra(crate::record::fmt::chain(e))
}
