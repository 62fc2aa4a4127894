//! Kernel builds: config generation and verification, `make` with its log streamed to
//! disk in a stable build slot (`slot`), the touched files compiled first (`objects`),
//! out-of-tree modules, and a cache of finished kernels keyed by the content of every
//! input that decides the output.

pub mod kbuild;
pub mod objects;
pub mod slot;

use crate::host::cache::{Cache, Hasher};
use crate::host::proc::{self, ProcError, ProcSpec};
use crate::parse::kconfig::{self, Mismatch};
use crate::prepare::source::Tree;
use crate::record::events::{BuildProgress, TotalFrom};
use crate::record::plan::Cell;
pub use slot::{ObjectCounts, PatchFailure, Slot, SlotFacts};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bump when the build recipe changes in a way that changes outputs (v4: the series
/// coverage map decides "built" from Kbuild and the folder's archive).
const RECIPE: &str = "kmatrix-build-v4";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate the `{target}` config; see {log}")]
    Config {
        target: String,
        log: PathBuf,
        #[source]
        source: ProcError,
    },
    #[error(
        "toolchain `{cc}` not usable: install Debian's {package} (`sudo scripts/setup-host` does)"
    )]
    Toolchain {
        cc: String,
        package: &'static str,
        #[source]
        source: ProcError,
    },
}

/// What the build phase decided for a cell.
#[derive(Debug)]
pub enum BuildOutcome {
    Built(Kernel),
    /// The final config is not what the fragments asked for: never built.
    ConfigMismatch {
        mismatches: Vec<Mismatch>,
        config: PathBuf,
    },
    /// `make` failed: the first compiler errors and the full log; `infra` says why the
    /// host, not the code, is to blame (a killed compiler, a full disk).
    Failed {
        errors: Vec<String>,
        log: PathBuf,
        infra: Option<String>,
    },
}

/// A built kernel in the cache.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub image: PathBuf,
    pub vmlinux: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub key: String,
    /// True when no `make` ran (cache hit).
    pub cached: bool,
    /// Out-of-tree modules built against this kernel.
    pub modules: Vec<ModuleBuild>,
}

/// One out-of-tree module built against a kernel: its `.ko`, or why it did not build
/// (modpost's `undefined!` for a symbol the kernel does not export, say).
#[derive(Debug, Clone)]
pub struct ModuleBuild {
    pub name: String,
    pub ko: Option<PathBuf>,
    pub errors: Vec<String>,
}

/// A module to build: its name (`<name>.ko`) and source folder.
pub type ModuleSource = (String, PathBuf);

/// The modules' results as stored in a cached kernel's folder.
fn load_modules(out: &Path, modules: &[ModuleSource]) -> Vec<ModuleBuild> {
    modules
        .iter()
        .map(|(name, _)| {
            let ko = out.join("modules").join(format!("{name}.ko"));
            let errors =
                std::fs::read_to_string(out.join("modules").join(format!("{name}.errors")))
                    .map(|t| t.lines().map(str::to_string).collect())
                    .unwrap_or_default();
            ModuleBuild {
                name: name.clone(),
                ko: ko.is_file().then_some(ko),
                errors,
            }
        })
        .collect()
}

/// The lines of a module build's output that say why it failed: modpost's verdicts
/// (`ERROR: modpost: "sym" [...] undefined!`) and compiler errors.
pub fn module_errors(log: &str) -> Vec<String> {
    let mut v: Vec<String> = log
        .lines()
        .filter(|l| l.contains("ERROR: modpost:") || l.contains("error:"))
        .map(|l| l.trim().to_string())
        .collect();
    v.dedup();
    v.truncate(10);
    v
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The compiler `make` will use, with ccache in front when it is installed.
fn compiler(cell: &Cell) -> String {
    let cc = format!("{}gcc", cell.arch.cross_prefix());
    if which("ccache") {
        format!("ccache {cc}")
    } else {
        cc
    }
}

pub fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// `make` arguments for a cell (pure: unit-tested, logged in full). `vars` are extra
/// variables (the series' gcov profiling, [`crate::prepare::coverage::Series::make_vars`]).
pub fn make_args(
    cell: &Cell,
    tree: &Path,
    objdir: &Path,
    cc: &str,
    jobs: usize,
    vars: &[String],
    targets: &[&str],
) -> Vec<String> {
    let mut a = vec![
        "-C".to_string(),
        tree.display().to_string(),
        format!("O={}", objdir.display()),
        format!("ARCH={}", cell.arch.kernel_arch()),
    ];
    if !cell.arch.cross_prefix().is_empty() {
        a.push(format!("CROSS_COMPILE={}", cell.arch.cross_prefix()));
    }
    a.push(format!("CC={cc}"));
    a.push(format!("-j{}", jobs.max(1)));
    a.extend(vars.iter().cloned());
    a.extend(targets.iter().map(|t| t.to_string()));
    a
}

/// The cache key: tree identity, patch contents in order, base config, fragment
/// contents in order, module sources, arch, compiler version, recipe.
pub async fn cache_key(
    cell: &Cell,
    tree: &Tree,
    modules: &[ModuleSource],
) -> Result<String, BuildError> {
    let cc = format!("{}gcc", cell.arch.cross_prefix());
    let version = proc::output(
        &ProcSpec::new(&cc)
            .arg("--version")
            .timeout(Duration::from_secs(60)),
    )
    .await
    .map_err(|source| BuildError::Toolchain {
        cc: cc.clone(),
        package: cell.arch.compiler_package(),
        source,
    })?;
    let mut h = Hasher::new(RECIPE);
    h.field(tree.id.as_bytes());
    for p in &cell.patches {
        h.file(p).map_err(io(p))?;
    }
    h.field(cell.arch.name().as_bytes())
        .field(cell.base_config.as_bytes())
        .field(version.lines().next().unwrap_or_default().as_bytes());
    for f in &cell.fragments {
        h.file(f).map_err(io(f))?;
    }
    for (name, dir) in modules {
        h.field(name.as_bytes());
        for f in crate::host::rundir::files_in(dir).map_err(io(dir))? {
            h.field(f.file_name().unwrap_or_default().as_encoded_bytes());
            h.file(&f).map_err(io(&f))?;
        }
    }
    Ok(h.finish())
}

/// The kernel for a cell if the cache has it (no make at all).
pub fn cached(cache: &Cache, key: &str, modules: &[ModuleSource]) -> Option<Kernel> {
    let out = cache.entry("kernels", key).resolve()?;
    Some(Kernel {
        image: out.join("image"),
        vmlinux: out.join("vmlinux"),
        config: out.join("config"),
        log: out.join("build.log"),
        key: key.to_string(),
        cached: true,
        modules: load_modules(&out, modules),
    })
}

/// The cell's evidence of the kernel it got: its build log and final config, and the
/// series coverage map with its notes (`coverage/`) when the build made one.
pub fn copy_evidence(k: &Kernel, cell_dir: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(cell_dir).map_err(io(cell_dir))?;
    for (from, to) in [(&k.log, "build.log"), (&k.config, "config")] {
        let dst = cell_dir.join(to);
        std::fs::copy(from, &dst).map_err(io(from))?;
    }
    if let Some(entry) = k.config.parent() {
        crate::prepare::coverage::copy_dir(&entry.join("coverage"), &cell_dir.join("coverage"))
            .map_err(io(cell_dir))?;
    }
    Ok(())
}

/// What a build needs besides the cell: the slot it builds in and where things go.
pub struct BuildJob<'a> {
    pub cell: &'a Cell,
    pub slot: &'a Slot,
    pub cache: &'a Cache,
    pub key: &'a str,
    pub jobs: usize,
    pub cell_dir: &'a Path,
    pub rebuild: bool,
    pub modules: &'a [ModuleSource],
    /// The paths (relative to the tree) the slot's sync changed for this build.
    pub changed: &'a [String],
    /// The cell's series (no harness): its objects are compiled with gcov profiling
    /// (when the config has `CONFIG_GCOV_KERNEL`) and mapped after the build.
    pub series: &'a crate::prepare::coverage::Series,
    /// Told how far the full build is, every few seconds while make runs.
    pub progress: &'a (dyn Fn(BuildProgress) + Send + Sync),
}

/// How often the full build's log is read for its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Deadlines: a make that never ends (a compiler in a loop, a wedged NFS) is an error,
/// not a run that never finishes.
const MAKE_CONFIG: Duration = Duration::from_secs(10 * 60);
const MAKE_KERNEL: Duration = Duration::from_secs(4 * 3600);
const MAKE_MODULE: Duration = Duration::from_secs(20 * 60);

impl BuildJob<'_> {
    fn make(
        &self,
        cc: &str,
        targets: &[&str],
        jobs: usize,
        log: &Path,
        limit: Duration,
    ) -> ProcSpec {
        // The series' Makefiles run here: only the object folder is writable.
        crate::host::sandbox::Sandbox::new()
            .readable(&self.slot.tree)
            .writable(&self.slot.objdir)
            .wrap(
                ProcSpec::new("make")
                    .args(make_args(
                        self.cell,
                        &self.slot.tree,
                        &self.slot.objdir,
                        cc,
                        jobs,
                        &self.series.make_vars(&self.slot.tree),
                        targets,
                    ))
                    .log(log)
                    .timeout(limit),
            )
    }

    /// Build the cell's kernel in its slot (already synced to the cell's patches) and
    /// publish it to the cache. The cell's folder receives `build.log` and `config`.
    pub async fn run(&self) -> Result<BuildOutcome, BuildError> {
        let entry = self.cache.entry("kernels", self.key);
        std::fs::create_dir_all(self.cell_dir).map_err(io(self.cell_dir))?;
        let log = self.cell_dir.join("build.log");
        let _ = std::fs::remove_file(&log);
        crate::host::rundir::append(
            &log,
            &format!("kmatrix: {}\n", crate::host::sandbox::describe()),
        );
        let cc = compiler(self.cell);
        let cfg_path = match self.configure(&cc, &log).await? {
            Ok(p) => p,
            Err(outcome) => return Ok(outcome),
        };
        if let Some(outcome) = self.touched_first(&cc, &log).await {
            return Ok(outcome);
        }
        // With out-of-tree modules to build, `modules` writes Module.symvers: without it
        // modpost only warns about symbols the kernel does not export.
        let (target, image_rel) = self.cell.arch.image_target();
        let targets: &[&str] = if self.modules.is_empty() {
            &[target]
        } else {
            &[target, "modules"]
        };
        let spec = self.make(&cc, targets, self.jobs, &log, MAKE_KERNEL);
        crate::host::rundir::append(&log, &format!("$ {}\n", spec.display()));
        // Cold: nothing built in the slot yet, so the whole config compiles.
        let cold = !self.slot.objdir.join("vmlinux").exists();
        let config = std::fs::read_to_string(&cfg_path).unwrap_or_default();
        let last = self.slot.object_counts();
        let (mut total, mut from) = expected_objects(cold, last, 0);
        if from == TotalFrom::Config {
            // The tree's Kbuild lists read with the final config (a hundred milliseconds).
            let (tree, objdir, arch, config) = (
                self.slot.tree.clone(),
                self.slot.objdir.clone(),
                self.cell.arch,
                config.clone(),
            );
            let n = tokio::task::spawn_blocking(move || {
                kbuild::left_to_compile(&tree, &objdir, &config, arch)
            })
            .await
            .unwrap_or(0);
            total = n;
        }
        if !cold && !self.changed.is_empty() {
            let (tree, objdir, changed) = (
                self.slot.tree.clone(),
                self.slot.objdir.clone(),
                self.changed.to_vec(),
            );
            let n =
                tokio::task::spawn_blocking(move || objects::dependents(&tree, &objdir, &changed))
                    .await
                    .ok()
                    .flatten();
            let same_config = last.config == Some(slot::config_digest(&config));
            (total, from) = incremental_total((total, from), n, same_config);
        }
        let mut counter = LogCounter::new(&log);
        let make = proc::spawn(&spec).map_err(|e| BuildError::Config {
            target: target.into(),
            log: log.clone(),
            source: e,
        })?;
        let status = watch(make, &mut counter, (total, from), self.progress).await;
        if let Err(e) = status {
            return Ok(failed(&log, &self.slot.tree, Some(&e)));
        }
        self.slot.remember_objects(cold, counter.poll(), &config);
        let staging = entry.staging().map_err(io(&entry.path))?;
        std::fs::create_dir_all(staging.path().join("modules")).map_err(io(staging.path()))?;
        self.modules(&cc, &log, staging.path()).await?;
        self.coverage_map(&config, &log, staging.path()).await;
        for (from, to) in [
            (self.slot.objdir.join(image_rel), "image"),
            (self.slot.objdir.join("vmlinux"), "vmlinux"),
            (cfg_path.clone(), "config"),
            (log.clone(), "build.log"),
        ] {
            std::fs::copy(&from, staging.path().join(to)).map_err(io(&from))?;
        }
        let out = entry
            .publish(staging, self.rebuild)
            .map_err(io(&entry.path))?;
        crate::prepare::coverage::copy_dir(&out.join("coverage"), &self.cell_dir.join("coverage"))
            .map_err(io(self.cell_dir))?;
        Ok(BuildOutcome::Built(Kernel {
            image: out.join("image"),
            vmlinux: out.join("vmlinux"),
            config: out.join("config"),
            log: out.join("build.log"),
            key: self.key.to_string(),
            cached: false,
            modules: load_modules(&out, self.modules),
        }))
    }

    /// The config: base config, fragments merged in order, olddefconfig, verify. Returns
    /// the final `.config`, or the mismatch that stops the cell.
    async fn configure(
        &self,
        cc: &str,
        log: &Path,
    ) -> Result<Result<PathBuf, BuildOutcome>, BuildError> {
        let cell = self.cell;
        let spec = self.make(cc, &[&cell.base_config], 1, log, MAKE_CONFIG);
        crate::host::rundir::append(log, &format!("$ {}\n", spec.display()));
        proc::run(&spec)
            .await
            .map_err(|source| BuildError::Config {
                target: cell.base_config.clone(),
                log: log.to_owned(),
                source,
            })?;
        let cfg_path = self.slot.objdir.join(".config");
        let base = std::fs::read_to_string(&cfg_path).map_err(io(&cfg_path))?;
        let mut fragments = Vec::new();
        for f in &cell.fragments {
            let text = std::fs::read_to_string(f).map_err(io(f))?;
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            fragments.push((name, text));
        }
        let (merged, requested) = kconfig::merge(&base, &fragments);
        std::fs::write(&cfg_path, merged).map_err(io(&cfg_path))?;
        let spec = self.make(cc, &["olddefconfig"], 1, log, MAKE_CONFIG);
        crate::host::rundir::append(log, &format!("$ {}\n", spec.display()));
        proc::run(&spec)
            .await
            .map_err(|source| BuildError::Config {
                target: "olddefconfig".into(),
                log: log.to_owned(),
                source,
            })?;
        let final_cfg = std::fs::read_to_string(&cfg_path).map_err(io(&cfg_path))?;
        let cell_cfg = self.cell_dir.join("config");
        std::fs::write(&cell_cfg, &final_cfg).map_err(io(&cell_cfg))?;
        let mut mismatches = kconfig::verify(&requested, &final_cfg);
        if mismatches.is_empty() {
            return Ok(Ok(cfg_path));
        }
        for m in &mut mismatches {
            m.kconfig = kconfig::kconfig_entry(&self.slot.tree, &m.symbol);
        }
        Ok(Err(BuildOutcome::ConfigMismatch {
            mismatches,
            config: cell_cfg,
        }))
    }

    /// The files the patches touch first, those make says this config builds: a
    /// compile error there is known in a minute or two, not after most of the kernel
    /// (Kbuild builds net/ near the end). `make prepare` first, so that the object lists
    /// can be read from the generated `auto.conf`.
    async fn touched_first(&self, cc: &str, log: &Path) -> Option<BuildOutcome> {
        let touched = objects::touched_objects(&self.cell.patches);
        if touched.is_empty() {
            return None;
        }
        let prep = self.make(cc, &["prepare"], self.jobs, log, MAKE_CONFIG);
        crate::host::rundir::append(log, &format!("$ {}\n", prep.display()));
        proc::run(&prep).await.ok()?;
        let objs =
            objects::enabled(&self.slot.tree, &self.slot.objdir, self.cell.arch, &touched).await;
        if objs.is_empty() {
            return None;
        }
        let mut args = vec!["-k"];
        args.extend(objs.iter().map(String::as_str));
        let spec = self.make(cc, &args, self.jobs, log, MAKE_CONFIG);
        crate::host::rundir::append(log, &format!("$ {}\n", spec.display()));
        match proc::run(&spec).await {
            Ok(()) => None,
            Err(e) => match failed(log, &self.slot.tree, Some(&e)) {
                // Only a compiler's own error here is the series' fault; anything else
                // is left for the full build to judge.
                BuildOutcome::Failed {
                    errors,
                    log,
                    infra: None,
                } if errors.iter().any(|l| l.contains("error:")) => Some(BuildOutcome::Failed {
                    errors,
                    log,
                    infra: None,
                }),
                BuildOutcome::Failed {
                    infra: Some(why),
                    errors,
                    log,
                } => Some(BuildOutcome::Failed {
                    errors,
                    log,
                    infra: Some(why),
                }),
                _ => None,
            },
        }
    }

    /// The series' lines as this build compiled them, with the profiled objects' notes,
    /// into the kernel's `coverage/` folder. A map that cannot be made is said in the
    /// log; the kernel is good all the same.
    async fn coverage_map(&self, config: &str, log: &Path, staging: &Path) {
        if self.series.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let r = crate::prepare::coverage::compile_map(
            self.series,
            &self.slot.tree,
            &self.slot.objdir,
            self.cell.arch,
            config,
            &staging.join("coverage"),
        )
        .await;
        let said = match r {
            Ok(m) => format!(
                "kmatrix: series coverage map: {} profiled object(s), {} ({:.1} s)\n",
                m.profiled.len(),
                crate::prepare::coverage::report(&m, &[]).summary,
                started.elapsed().as_secs_f64()
            ),
            Err(e) => format!("kmatrix: no series coverage map: {e}\n"),
        };
        crate::host::rundir::append(log, &said);
    }

    /// Out-of-tree modules against this kernel. One that does not build is a result
    /// (a test reports it), not a failed kernel.
    async fn modules(&self, cc: &str, log: &Path, staging: &Path) -> Result<(), BuildError> {
        for (name, src) in self.modules {
            let mdir = self.slot.objdir.join("kmatrix-modules").join(name);
            let _ = std::fs::remove_dir_all(&mdir);
            std::fs::create_dir_all(&mdir).map_err(io(&mdir))?;
            for f in crate::host::rundir::files_in(src).map_err(io(src))? {
                let dst = mdir.join(f.file_name().unwrap_or_default());
                std::fs::copy(&f, &dst).map_err(io(&f))?;
            }
            let mlog = mdir.join("build.log");
            let m = format!("M={}", mdir.display());
            let spec = self.make(cc, &[&m, "modules"], self.jobs, &mlog, MAKE_MODULE);
            crate::host::rundir::append(log, &format!("$ {}\n", spec.display()));
            let ok = proc::run(&spec).await.is_ok();
            let text = std::fs::read_to_string(&mlog).unwrap_or_default();
            crate::host::rundir::append(log, &text);
            let ko = mdir.join(format!("{name}.ko"));
            if ok && ko.is_file() {
                std::fs::copy(&ko, staging.join("modules").join(format!("{name}.ko")))
                    .map_err(io(&ko))?;
            } else {
                let mut errors = module_errors(&text);
                if errors.is_empty() {
                    errors.push(format!("make M=... modules failed; see {}", log.display()));
                }
                let f = staging.join("modules").join(format!("{name}.errors"));
                std::fs::write(&f, errors.join("\n")).map_err(io(&f))?;
            }
        }
        Ok(())
    }
}

/// Wait for make, telling `progress` how far it is every [`PROGRESS_EVERY`] (when the
/// count changed). The watch ends with make: it lives in this loop, not in a task.
async fn watch(
    mut make: proc::Proc,
    counter: &mut LogCounter,
    (total, from): (u64, TotalFrom),
    progress: &(dyn Fn(BuildProgress) + Send + Sync),
) -> Result<(), ProcError> {
    let started = std::time::Instant::now();
    let wait = make.wait_success();
    tokio::pin!(wait);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut shown = None;
    loop {
        tokio::select! {
            r = &mut wait => return r,
            _ = tick.tick() => {
                let done = counter.poll();
                if shown != Some(done) {
                    shown = Some(done);
                    progress(BuildProgress {
                        done,
                        total,
                        from,
                        elapsed: started.elapsed(),
                    });
                }
            }
        }
    }
}

/// How many objects the full build is expected to compile: what the slot's last build
/// of the same kind compiled, else (cold) `from_config` (the count `kbuild` reads from the
/// tree with the final config), else unknown.
pub fn expected_objects(cold: bool, last: ObjectCounts, from_config: u64) -> (u64, TotalFrom) {
    match (cold, last.cold, last.incremental) {
        (true, Some(n), _) | (false, _, Some(n)) => (n, TotalFrom::Previous),
        (true, None, _) => (from_config, TotalFrom::Config),
        (false, _, None) => (0, TotalFrom::Unknown),
    }
}

/// An incremental build's expected total: with the slot's last config, exactly the
/// objects that depend on the changed files (a one-file fixture recompiles one object,
/// whatever the last switch between patchsets cost); with another config, options changed
/// too, so the larger of that and the previous count.
pub fn incremental_total(
    previous: (u64, TotalFrom),
    dependents: Option<u64>,
    same_config: bool,
) -> (u64, TotalFrom) {
    match dependents {
        // A file new to the slot has no dependency list yet: it still compiles.
        Some(n) if same_config || n > previous.0 => (n.max(1), TotalFrom::Dependencies),
        _ => previous,
    }
}

/// A line in which Kbuild says it compiles one object: `  CC      mm/memory.o`,
/// `  CC [M]  drivers/x.o`, `  AS      arch/x86/entry/entry_64.o` (not HOSTCC: host
/// tools are few and not in the count).
pub fn is_compile_line(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"  ") else {
        return false;
    };
    let word = rest.split(|b| *b == b' ').next().unwrap_or_default();
    (word == b"CC" || word == b"AS") && rest.len() > 2 && rest[2] == b' '
}

/// Counts the compile lines make appends to the build log, from where the log ended
/// when it was created; a line still being written is counted once it ends.
struct LogCounter {
    path: PathBuf,
    offset: u64,
    count: u64,
}

impl LogCounter {
    fn new(path: &Path) -> LogCounter {
        LogCounter {
            path: path.to_owned(),
            offset: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            count: 0,
        }
    }

    /// The count so far (best effort: an unreadable log leaves it where it was).
    fn poll(&mut self) -> u64 {
        use std::io::{Read, Seek};
        let mut buf = Vec::new();
        let read = std::fs::File::open(&self.path).and_then(|mut f| {
            f.seek(std::io::SeekFrom::Start(self.offset))?;
            f.read_to_end(&mut buf)
        });
        if read.is_err() {
            return self.count;
        }
        let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.count += buf[..complete]
            .split(|b| *b == b'\n')
            .filter(|l| is_compile_line(l))
            .count() as u64;
        self.offset += complete as u64;
        self.count
    }
}

/// A failed make as an outcome: the first compiler errors, and whether the failure was
/// the host's (a compiler killed by a signal or the OOM killer, a full disk, make's
/// deadline), which is never blamed on the series.
fn failed(log: &Path, tree: &Path, err: Option<&ProcError>) -> BuildOutcome {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut errors: Vec<String> = first_errors(&text, 10)
        .into_iter()
        .map(|l| relative_to(&l, tree))
        .collect();
    if let Some(why) = sandbox_refusal(&text) {
        errors.push(why);
    }
    BuildOutcome::Failed {
        errors,
        log: log.to_owned(),
        infra: host_failure(&text, err),
    }
}

/// Signs in a failed build that the host, not the code, made it fail.
pub fn host_failure(log: &str, err: Option<&ProcError>) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    match err {
        Some(ProcError::Timeout { limit, .. }) => {
            return Some(format!("make did not finish within {}s", limit.as_secs()))
        }
        Some(ProcError::Failed { status, .. }) if status.signal().is_some() => {
            return Some(format!(
                "make was killed by signal {}",
                status.signal().unwrap_or(0)
            ))
        }
        _ => {}
    }
    const SIGNS: &[(&str, &str)] = &[
        ("No space left on device", "the disk is full"),
        (
            "Killed signal terminated program",
            "a compiler was killed (out of memory?)",
        ),
        (
            "internal compiler error: Killed",
            "a compiler was killed (out of memory?)",
        ),
        ("Cannot allocate memory", "out of memory"),
        ("virtual memory exhausted", "out of memory"),
    ];
    SIGNS
        .iter()
        .find(|(sign, _)| log.contains(sign))
        .map(|(sign, why)| format!("{why} (the build log says `{sign}`)"))
}

/// Compiler messages name files by absolute path inside the (cache) tree; show them as the
/// kernel's own paths, `net/ipv4/tcp.c:2175:38: error: ...`.
fn relative_to(line: &str, tree: &Path) -> String {
    line.replace(&format!("{}/", tree.display()), "")
}

/// The first compiler/linker errors in a build log (`file:line:col: error: ...`).
pub fn first_errors(log: &str, max: usize) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for l in log.lines() {
        let is_err = l.contains(": error: ")
            || l.contains(": fatal error: ")
            || l.contains("undefined reference to")
            || (l.starts_with("ERROR: modpost:"));
        if is_err && !v.iter().any(|x| x == l) {
            v.push(l.to_string());
            if v.len() == max {
                break;
            }
        }
    }
    if v.is_empty() {
        // No recognisable error line: the failing command's own words (the line before
        // make's first `***`), then make's last words.
        let lines: Vec<&str> = log.lines().collect();
        if let Some(i) = lines
            .iter()
            .position(|l| l.starts_with("make") && l.contains("***"))
        {
            if let Some(before) = i.checked_sub(1).map(|j| lines[j]) {
                if !before.trim().is_empty() && !before.starts_with("make") {
                    v.push(before.to_string());
                }
            }
        }
        let mut last: Vec<String> = log
            .lines()
            .rev()
            .filter(|l| l.starts_with("make") || l.contains("Error"))
            .take(3)
            .map(str::to_string)
            .collect();
        last.reverse();
        v.extend(last);
    }
    v
}

/// A failure that reads like the sandbox refusing something (a write outside the
/// folders a build may write, a connection): said in the tool's own words, since a
/// series' Makefile may try either on purpose.
fn sandbox_refusal(log: &str) -> Option<String> {
    const SIGNS: &[&str] = &[
        "Read-only file system",
        "Directory nonexistent",
        "Network is unreachable",
        "Connection refused",
        "Temporary failure in name resolution",
        "Permission denied",
    ];
    if crate::host::sandbox::status().is_err() || !log.contains("***") {
        return None;
    }
    let sign = SIGNS.iter().find(|s| log.contains(*s))?;
    Some(format!(
        "({sign}: the build runs in kmatrix's sandbox, without network and with only its object folder writable; see docs/security.md)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::plan::Arch;

    fn cell(arch: Arch) -> Cell {
        Cell {
            arch,
            config: "pvl-on".into(),
            patchset: "base".into(),
            base_config: "tinyconfig".into(),
            fragments: vec![],
            patches: vec![],
        }
    }

    #[test]
    fn make_args_native_and_cross() {
        let a = make_args(
            &cell(Arch::X86_64),
            Path::new("/t"),
            Path::new("/o"),
            "gcc",
            2,
            &[],
            &["bzImage"],
        );
        assert_eq!(
            a,
            [
                "-C",
                "/t",
                "O=/o",
                "ARCH=x86_64",
                "CC=gcc",
                "-j2",
                "bzImage"
            ]
        );
        let a = make_args(
            &cell(Arch::Arm64),
            Path::new("/t"),
            Path::new("/o"),
            "ccache aarch64-linux-gnu-gcc",
            4,
            &["GCOV_PROFILE_tcp.o=$(if $(filter net/ipv4,$(obj)),y)".to_string()],
            &["Image"],
        );
        assert_eq!(
            a,
            [
                "-C",
                "/t",
                "O=/o",
                "ARCH=arm64",
                "CROSS_COMPILE=aarch64-linux-gnu-",
                "CC=ccache aarch64-linux-gnu-gcc",
                "-j4",
                "GCOV_PROFILE_tcp.o=$(if $(filter net/ipv4,$(obj)),y)",
                "Image"
            ]
        );
    }

    #[test]
    fn first_errors_finds_compiler_errors_with_file_and_line() {
        let log = "  CC      net/ipv4/tcp.o\n../net/ipv4/tcp.c:2175:35: error: implicit declaration of function 'vma_start_read_unlocked' [-Werror=implicit-function-declaration]\n 2175 |  struct vm_area_struct *vma = vma_start_read_unlocked(mm, address);\nmake[4]: *** [../scripts/Makefile.build:287: net/ipv4/tcp.o] Error 1\n";
        let e = first_errors(log, 10);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("../net/ipv4/tcp.c:2175:35: error:"));
        let e = first_errors("make: *** [Makefile:224: __sub-make] Error 2\n", 10);
        assert_eq!(e, ["make: *** [Makefile:224: __sub-make] Error 2"]);
    }

    #[tokio::test]
    async fn cache_key_changes_with_each_input() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.config");
        std::fs::write(&f, "CONFIG_A=y\n").unwrap();
        let mut c = cell(Arch::X86_64);
        c.fragments = vec![f.clone()];
        let tree = Tree {
            path: d.path().into(),
            id: "linux-7.3".into(),
            mutable: false,
        };
        let k0 = cache_key(&c, &tree, &[]).await.unwrap();
        assert_eq!(k0, cache_key(&c, &tree, &[]).await.unwrap(), "stable");
        std::fs::write(&f, "CONFIG_A=n\n").unwrap();
        let k1 = cache_key(&c, &tree, &[]).await.unwrap();
        assert_ne!(k0, k1, "fragment content");
        let tree2 = Tree {
            id: "linux-7.3.1".into(),
            ..tree.clone()
        };
        assert_ne!(k1, cache_key(&c, &tree2, &[]).await.unwrap(), "tree");
        let p = d.path().join("0001.patch");
        std::fs::write(&p, "--- a/x\n+++ b/x\n").unwrap();
        let mut patched = c.clone();
        patched.patches = vec![p.clone()];
        let kp = cache_key(&patched, &tree, &[]).await.unwrap();
        assert_ne!(k1, kp, "a patch");
        std::fs::write(&p, "--- a/x\n+++ b/x\n@@\n").unwrap();
        assert_ne!(
            kp,
            cache_key(&patched, &tree, &[]).await.unwrap(),
            "patch content"
        );
        let m = d.path().join("vma_user");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("Kbuild"), "obj-m := vma_user.o\n").unwrap();
        let mods = [("vma_user".to_string(), m.clone())];
        let k2 = cache_key(&c, &tree, &mods).await.unwrap();
        assert_ne!(k1, k2, "a module to build");
        std::fs::write(m.join("vma_user.c"), "int x;\n").unwrap();
        assert_ne!(
            k2,
            cache_key(&c, &tree, &mods).await.unwrap(),
            "module source"
        );
        c.base_config = "defconfig".into();
        assert_ne!(k1, cache_key(&c, &tree, &[]).await.unwrap(), "base config");
    }

    #[test]
    fn a_build_the_host_broke_is_not_the_series_fault() {
        assert!(
            host_failure("cc1: fatal error: mm/x.o: No space left on device\n", None)
                .unwrap()
                .contains("disk is full")
        );
        assert!(host_failure(
            "gcc: fatal error: Killed signal terminated program cc1\n",
            None
        )
        .unwrap()
        .contains("killed"));
        assert_eq!(
            host_failure(
                "net/ipv4/tcp.c:2175:35: error: implicit declaration\n",
                None
            ),
            None
        );
    }

    #[test]
    fn compile_lines_are_kbuilds_cc_and_as_lines() {
        assert!(is_compile_line(b"  CC      mm/memory.o"));
        assert!(is_compile_line(b"  CC [M]  drivers/x.o"));
        assert!(is_compile_line(b"  AS      arch/x86/entry/entry_64.o"));
        assert!(!is_compile_line(b"  HOSTCC  scripts/kallsyms"));
        assert!(!is_compile_line(b"  CCXYZ   x"));
        assert!(!is_compile_line(b"  AR      mm/built-in.a"));
        assert!(!is_compile_line(b"mm/memory.c:12: warning: CC"));
    }

    #[test]
    fn the_log_counter_counts_only_what_make_wrote_and_whole_lines() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("build.log");
        // Lines from the config and touched-first steps are before the full build.
        std::fs::write(&log, "  CC      mm/early.o\n$ make bzImage\n").unwrap();
        let mut c = LogCounter::new(&log);
        assert_eq!(c.poll(), 0);
        crate::host::rundir::append(
            &log,
            "  CC      init/main.o\n  AR      init/built-in.a\n  CC      mm/mem",
        );
        assert_eq!(c.poll(), 1, "the unfinished line waits");
        crate::host::rundir::append(&log, "ory.o\n  AS      arch/x86/entry/entry_64.o\n");
        assert_eq!(c.poll(), 3);
        assert_eq!(c.poll(), 3);
    }

    #[tokio::test]
    async fn the_watch_reports_progress_while_the_child_runs_and_ends_with_it() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("build.log");
        crate::host::rundir::append(&log, "$ make bzImage\n");
        // A make that compiles three objects over four seconds, then fails.
        let spec = ProcSpec::new("sh")
            .arg("-c")
            .arg("for o in a b c; do echo \"  CC      mm/$o.o\"; sleep 1.3; done; exit 2")
            .log(&log);
        let seen = std::sync::Mutex::new(Vec::new());
        let record = |p: BuildProgress| seen.lock().unwrap().push(p);
        let mut counter = LogCounter::new(&log);
        let started = std::time::Instant::now();
        let r = watch(
            proc::spawn(&spec).unwrap(),
            &mut counter,
            (3, TotalFrom::Previous),
            &record,
        )
        .await;
        assert!(matches!(r, Err(ProcError::Failed { .. })), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "ended with make"
        );
        let seen = seen.into_inner().unwrap();
        assert!(seen.len() >= 2, "{seen:?}");
        assert!(
            seen.windows(2).all(|w| w[0].done < w[1].done),
            "only changes: {seen:?}"
        );
        assert!(seen.iter().all(|p| p.total == 3 && p.done <= 3));
        assert_eq!(counter.poll(), 3);
    }

    #[test]
    fn an_incremental_build_with_the_same_config_expects_the_dependents_only() {
        let previous = (867, TotalFrom::Previous);
        // One changed file, same config: one object (the last switch compiled 867).
        assert_eq!(
            incremental_total(previous, Some(1), true),
            (1, TotalFrom::Dependencies)
        );
        // Another config: options changed too, so at least the previous count.
        assert_eq!(incremental_total(previous, Some(1), false), previous);
        assert_eq!(
            incremental_total(previous, Some(900), false),
            (900, TotalFrom::Dependencies)
        );
        assert_eq!(incremental_total(previous, None, true), previous);
    }

    #[test]
    fn the_expected_total_comes_from_the_slot_else_the_config() {
        let config = 1344;
        let none = ObjectCounts::default();
        assert_eq!(
            expected_objects(true, none, config),
            (1344, TotalFrom::Config)
        );
        let seen = ObjectCounts {
            cold: Some(1081),
            incremental: Some(40),
            config: None,
        };
        assert_eq!(
            expected_objects(true, seen, config),
            (1081, TotalFrom::Previous)
        );
        assert_eq!(
            expected_objects(false, seen, config),
            (40, TotalFrom::Previous)
        );
        // An incremental build with no incremental one before it: a cold build's count
        // would be far too many.
        let cold_only = ObjectCounts {
            cold: Some(1081),
            incremental: None,
            config: None,
        };
        assert_eq!(
            expected_objects(false, cold_only, config),
            (0, TotalFrom::Unknown)
        );
    }

    #[test]
    fn module_errors_keep_modposts_verdict() {
        // As 7.3's modpost says it (older ones quote the symbol and the path).
        let log = "  MODPOST Module.symvers\nERROR: modpost: vma_user.ko: symbol 'vma_start_read_unlocked' undefined!\nmake[3]: *** [../scripts/Makefile.modpost:147: Module.symvers] Error 1\n";
        assert_eq!(
            module_errors(log),
            ["ERROR: modpost: vma_user.ko: symbol 'vma_start_read_unlocked' undefined!"]
        );
    }
}
