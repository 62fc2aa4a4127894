//! Everything before a VM: the pristine tree, the cell's kernel (from the cache, or
//! patched and built in the cell's build slot), and the guest image of its arch.

use super::run::CellRun;
use super::shared::{infra_err, Stop, PREPARE_WAIT};
use crate::prepare::build::{self, BuildJob, BuildOutcome, Kernel, Slot};
use crate::prepare::image::{self, Image};
use crate::prepare::source::Tree;
use crate::record::events::Event;
use crate::record::phase::Phase;
use crate::record::verdict::Verdict;

/// What a cell needs to boot.
pub(crate) struct Prepared {
    pub kernel: Kernel,
    pub image: Image,
    /// The kernel's own selftests for this arch (built from the cell's source tree).
    pub selftests: crate::prepare::selftests::Built,
}

impl CellRun<'_> {
    /// `None` for build-only runs.
    pub async fn prepare(&mut self) -> Result<Option<Prepared>, Stop> {
        self.phase(Phase::Source, "");
        self.result.subjects = self.cell.subjects(&self.sh.plan);
        let tree = self.tree().await?;
        self.result.source_id = Some(tree.id.clone());
        let kernel = self.kernel(&tree).await;
        // Built, cached or failed: the slot's next cell may start (`record::schedule`).
        self.sh.kernel_done(self.cell.id());
        let kernel = kernel?;
        if !kernel.cached && crate::host::sandbox::status().is_err() {
            // The series' code ran with kmatrix's privileges: the cell says so.
            self.result.notes.push(crate::host::sandbox::describe());
        }
        self.result.kernel_cached = Some(kernel.cached);
        self.coverage_map()?;
        self.result.kernel_key = Some(kernel.key.clone());
        if self.sh.opts.build_only {
            return Ok(None);
        }
        self.phase(Phase::Image, "");
        let image = self.image().await?;
        let selftests = self.selftests(&tree).await?;
        Ok(Some(Prepared {
            kernel,
            image,
            selftests,
        }))
    }

    async fn prepare_lock(&self) -> Result<crate::host::cache::Lock, Stop> {
        let path = self.sh.cache.dir(".prepare.lock");
        crate::host::cache::lock(&path, "the shared cache steps", PREPARE_WAIT, |m| {
            self.note(m)
        })
        .await
        .map_err(|e| infra_err(&e))
    }

    async fn tree(&self) -> Result<Tree, Stop> {
        self.sh.source_tree(|m| self.note(m)).await
    }

    /// The cell's kernel: from the cache when nothing that decides it changed, else
    /// built in the cell's slot (one after the other with the slot's other cells).
    /// The kernel of `key` from the cache (unless `--rebuild`), its build evidence copied
    /// into the cell's folder.
    fn cached(&self, key: &str, modules: &[build::ModuleSource]) -> Result<Option<Kernel>, Stop> {
        if self.sh.opts.rebuild {
            return Ok(None);
        }
        let Some(k) = build::cached(&self.sh.cache, key, modules) else {
            return Ok(None);
        };
        build::copy_evidence(&k, &self.dir).map_err(|e| infra_err(&e))?;
        Ok(Some(k))
    }

    async fn kernel(&mut self, tree: &Tree) -> Result<Kernel, Stop> {
        let id = crate::prepare::identity::of(
            &self.sh.plan,
            self.cell,
            &self.sh.cache,
            tree,
            self.sh.opts.mode(),
        )
        .await
        .map_err(|e| infra_err(&e))?;
        let (modules, key) = (id.modules, id.kernel_key);
        // Recorded before the build: a PATCH-FAIL or BUILD-FAIL is final for `--resume`
        // only as long as its inputs are unchanged.
        self.result.kernel_key = Some(key.clone());
        self.result.inputs = Some(id.inputs);
        let rebuild = self.sh.opts.rebuild;
        if let Some(k) = self.cached(&key, &modules)? {
            self.note(format!("kernel {key} from cache (no make)"));
            return Ok(k);
        }
        self.phase(
            Phase::Patch,
            format!("{} patch(es)", self.cell.patches.len()),
        );
        let slot_name = format!("{}-{}", self.cell.arch.name(), self.cell.config);
        let slot = Slot::open(&self.sh.cache, tree, &slot_name, |m| self.note(m))
            .await
            .map_err(|e| infra_err(&e))?;
        // Someone else may have built it while we waited for the slot.
        if let Some(k) = self.cached(&key, &modules)? {
            return Ok(k);
        }
        let changed = match slot
            .sync(tree, &self.cell.patches, tree.mutable)
            .await
            .map_err(|e| infra_err(&e))?
        {
            Ok(changed) => changed,
            Err(f) => return Err(patch_fail(f)),
        };
        self.phase(
            Phase::Build,
            format!("make ({} file(s) changed in the slot)", changed.len()),
        );
        let tx = self.sh.tx.clone();
        let id = self.cell.id();
        let progress = move |progress| {
            let _ = tx.send(Event::BuildProgress {
                id: id.clone(),
                progress,
            });
        };
        let series = crate::prepare::coverage::Series::read(self.cell.series(&self.sh.plan));
        let job = BuildJob {
            cell: self.cell,
            slot: &slot,
            cache: &self.sh.cache,
            key: &key,
            jobs: self.sh.plan.jobs,
            cell_dir: &self.dir,
            rebuild,
            modules: &modules,
            changed: &changed,
            series: &series,
            progress: &progress,
        };
        built(job.run().await.map_err(|e| infra_err(&e))?)
    }

    async fn image(&self) -> Result<Image, Stop> {
        let arch = self.cell.arch;
        let mut images = self.sh.images.lock().await;
        if let Some(i) = images.get(&arch) {
            return Ok(i.clone());
        }
        let _lock = self.prepare_lock().await?;
        let tests: Vec<_> = self
            .sh
            .plan
            .tests
            .iter()
            .filter(|t| t.arches.as_ref().is_none_or(|a| a.contains(&arch)))
            .cloned()
            .collect();
        let bins = image::build_tests(arch, &tests, &self.sh.cache)
            .await
            .map_err(|e| infra_err(&e))?;
        let img = image::prepare(arch, &bins, &self.sh.cache)
            .await
            .map_err(|e| infra_err(&e))?;
        images.insert(arch, img.clone());
        Ok(img)
    }
}

impl CellRun<'_> {
    async fn selftests(&self, tree: &Tree) -> Result<crate::prepare::selftests::Built, Stop> {
        let arch = self.cell.arch;
        let mut all = self.sh.selftests.lock().await;
        if let Some(b) = all.get(&arch) {
            return Ok(b.clone());
        }
        if !self.sh.plan.selftests.is_empty() {
            self.phase(Phase::Image, "kernel selftests");
        }
        let _lock = self.prepare_lock().await?;
        let b =
            crate::prepare::selftests::build(tree, arch, &self.sh.plan.selftests, &self.sh.cache)
                .await
                .map_err(|e| infra_err(&e))?;
        all.insert(arch, b.clone());
        Ok(b)
    }
}

/// PATCH-FAIL keeps `patch`'s own words about the hunks.
/// A build's outcome as the cell's kernel, or the stop that says why there is none.
fn built(outcome: BuildOutcome) -> Result<Kernel, Stop> {
    match outcome {
        BuildOutcome::Built(k) => Ok(k),
        BuildOutcome::ConfigMismatch { mismatches, .. } => Err(Stop::new(
            Verdict::ConfigMismatch,
            format!(
                "{} requested symbol(s) not honoured, e.g. CONFIG_{}",
                mismatches.len(),
                mismatches[0].symbol
            ),
        )
        .details(mismatches.iter().map(|m| m.to_string()).collect())),
        BuildOutcome::Failed {
            errors,
            log,
            infra: Some(why),
        } => Err(Stop::infra(format!(
            "the build failed because of the host, not the code: {why} (log: {})",
            log.display()
        ))
        .details(errors)),
        BuildOutcome::Failed {
            errors,
            log,
            infra: None,
        } => {
            let first = errors.first().cloned().unwrap_or_default();
            Err(Stop::new(
                Verdict::BuildFail,
                format!("{first} (log: {})", log.display()),
            )
            .details(errors))
        }
    }
}

fn patch_fail(f: build::PatchFailure) -> Stop {
    let details = f
        .output
        .lines()
        .filter(|l| {
            l.contains("FAILED") || l.contains("can't find file") || l.contains("malformed")
        })
        .map(str::to_string)
        .collect();
    Stop::new(
        Verdict::PatchFail,
        format!("{} does not apply", f.patch.display()),
    )
    .details(details)
}
