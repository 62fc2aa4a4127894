//! The engine: takes each cell through patch, build, image, boot, test and collect,
//! emitting events. Processes are orchestrated here (async); decisions are in the
//! synchronous modules it calls.

use crate::build::{self, BuildOutcome, Kernel};
use crate::cache::Cache;
use crate::events::{Event, Phase, Sender};
use crate::guest::{self, Target};
use crate::image::{self, Image};
use crate::plan::{Arch, Cell, Plan};
use crate::source::{self, Patched, Tree};
use crate::verdict::{self, CellResult, TestResult, Verdict};
use crate::vm::{self, Accel, Vm, VmSpec};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
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

pub struct Engine {
    pub plan: Plan,
    pub cache: Cache,
    pub opts: RunOptions,
    pub run_dir: PathBuf,
    pub tx: Sender,
    pub cancel: watch::Receiver<bool>,
    images: HashMap<Arch, Image>,
    tree: Option<Tree>,
    /// The phase (and its detail) the current cell is in: an interruption says where.
    current: std::sync::Mutex<String>,
    /// Substitute programs (tests use fakes for failure paths).
    pub qemu_override: Option<PathBuf>,
    pub virtiofsd_override: Option<PathBuf>,
}

/// Why a phase stopped the cell early.
struct Stop(Verdict, String, Vec<String>);

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
            plan,
            cache,
            opts,
            run_dir,
            tx,
            cancel,
            images: HashMap::new(),
            tree: None,
            current: std::sync::Mutex::new(String::new()),
            qemu_override: None,
            virtiofsd_override: None,
        }
    }

    fn emit(&self, e: Event) {
        let _ = self.tx.send(e);
    }
    fn phase(&self, cell: &Cell, phase: Phase, detail: impl Into<String>) {
        let detail = detail.into();
        if let Ok(mut c) = self.current.lock() {
            *c = match detail.as_str() {
                "" => phase.label().to_string(),
                d => format!("{} ({d})", phase.label()),
            };
        }
        self.emit(Event::Phase {
            id: cell.id(),
            phase,
            detail,
        });
    }
    fn note(&self, cell: &Cell, message: impl Into<String>) {
        self.emit(Event::Note {
            id: cell.id(),
            message: message.into(),
        });
    }
    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    pub async fn run(mut self) {
        self.emit(Event::RunStarted {
            cells: self.plan.cells.len(),
            run_dir: self.run_dir.clone(),
        });
        let cells = self.plan.cells.clone();
        for cell in &cells {
            let dir = self.run_dir.join(cell.dir_name());
            if let Some(done) = self.opts.resume.iter().find(|r| r.id == cell.id()) {
                self.emit(Event::CellStarted { id: cell.id() });
                self.note(cell, format!("reused from {}", done.dir.display()));
                self.emit(Event::CellFinished {
                    result: Box::new(done.clone()),
                });
                continue;
            }
            let mut result = CellResult::new(cell, dir.clone());
            self.emit(Event::CellStarted { id: cell.id() });
            let start = Instant::now();
            if self.cancelled() {
                result.verdict = Verdict::Interrupted;
                result.reason = Some("run interrupted before this cell started".into());
            } else {
                let mut cancel = self.cancel.clone();
                let outcome = tokio::select! {
                    r = self.run_cell(cell, &dir, &mut result) => r,
                    _ = cancel.wait_for(|c| *c) => Err(Stop(Verdict::Interrupted, "interrupted (Ctrl-C)".into(), vec![])),
                };
                if let Err(Stop(v, mut why, details)) = outcome {
                    if v == Verdict::Interrupted {
                        let at = self.current.lock().map(|c| c.clone()).unwrap_or_default();
                        why = format!("{why} during {at}");
                        // The cell's VM went with its future; what its console already
                        // says is still evidence.
                        if let Ok(console) = std::fs::read(dir.join("console.log")) {
                            result.findings =
                                crate::console::parse(&console[..]).unwrap_or_default();
                        }
                    }
                    result.verdict = v;
                    result.reason = Some(why);
                    result.details.extend(details);
                }
            }
            result.seconds = start.elapsed().as_secs_f64();
            write_repro(&self.plan, cell, &dir);
            self.emit(Event::CellFinished {
                result: Box::new(result),
            });
        }
        self.emit(Event::RunFinished);
    }

    /// Source, patch, build and image: everything before a VM. `None` for build-only runs.
    async fn prepare_cell(
        &mut self,
        cell: &Cell,
        dir: &Path,
        result: &mut CellResult,
    ) -> Result<Option<(Kernel, Image)>, Stop> {
        std::fs::create_dir_all(dir).map_err(|e| infra(format!("{}: {e}", dir.display())))?;

        self.phase(cell, Phase::Source, "");
        // Shared cache steps (download, unpack, patched trees, images) take turns across
        // concurrent kmatrix runs.
        let lock_path = self.cache.dir(".prepare.lock");
        let prepare_lock = crate::cache::lock(&lock_path)
            .await
            .map_err(|e| infra(format!("{}: {e}", lock_path.display())))?;
        if self.tree.is_none() {
            let t = source::prepare(&self.plan.source, &self.cache)
                .await
                .map_err(|e| infra(chain(&e)))?;
            self.tree = Some(t);
        }
        let pristine = self.tree.clone().ok_or_else(|| infra("no tree".into()))?;
        result.source_id = Some(pristine.id.clone());

        self.phase(
            cell,
            Phase::Patch,
            format!("{} patch(es)", cell.patches.len()),
        );
        let tree = match source::patched_tree(&pristine, &cell.patchset, &cell.patches, &self.cache)
            .await
            .map_err(|e| infra(chain(&e)))?
        {
            Patched::Tree(t) => t,
            Patched::Failed { patch, output } => {
                let details = output
                    .lines()
                    .filter(|l| {
                        l.contains("FAILED")
                            || l.contains("can't find file")
                            || l.contains("malformed")
                    })
                    .map(str::to_string)
                    .collect();
                return Err(Stop(
                    Verdict::PatchFail,
                    format!("{} does not apply", patch.display()),
                    details,
                ));
            }
        };

        drop(prepare_lock);
        self.phase(cell, Phase::Build, "make");
        let modules: Vec<build::ModuleSource> = self
            .plan
            .tests
            .iter()
            .filter(|t| t.applies_to(cell))
            .filter_map(|t| Some((t.module_name()?, t.module.clone()?)))
            .collect();
        let kernel = match build::build(
            cell,
            &tree,
            &self.cache,
            self.plan.jobs,
            dir,
            self.opts.rebuild,
            &modules,
        )
        .await
        .map_err(|e| infra(chain(&e)))?
        {
            BuildOutcome::Built(k) => k,
            BuildOutcome::ConfigMismatch { mismatches, .. } => {
                return Err(Stop(
                    Verdict::ConfigMismatch,
                    format!(
                        "{} requested symbol(s) not honoured, e.g. CONFIG_{}",
                        mismatches.len(),
                        mismatches[0].symbol
                    ),
                    mismatches.iter().map(|m| m.to_string()).collect(),
                ))
            }
            BuildOutcome::Failed { errors, log } => {
                let first = errors.first().cloned().unwrap_or_default();
                return Err(Stop(
                    Verdict::BuildFail,
                    format!("{first} (log: {})", log.display()),
                    errors,
                ));
            }
        };
        result.kernel_cached = Some(kernel.cached);
        result.kernel_key = Some(kernel.key.clone());
        if kernel.cached {
            self.note(cell, format!("kernel {} from cache (no make)", kernel.key));
        }
        if self.opts.build_only {
            result.verdict = Verdict::Pass;
            result.reason = Some("built (build only)".into());
            return Ok(None);
        }

        self.phase(cell, Phase::Image, "");
        let image = {
            let _lock = crate::cache::lock(&lock_path)
                .await
                .map_err(|e| infra(format!("{}: {e}", lock_path.display())))?;
            self.image(cell.arch).await?
        };
        Ok(Some((kernel, image)))
    }

    async fn run_cell(
        &mut self,
        cell: &Cell,
        dir: &Path,
        result: &mut CellResult,
    ) -> Result<(), Stop> {
        let Some((kernel, image)) = self.prepare_cell(cell, dir, result).await? else {
            return Ok(());
        };
        let n = self.opts.repeat.max(1);
        if n == 1 {
            return self.boot_and_test(cell, dir, &kernel, &image, result).await;
        }
        // --repeat: fresh boots, each in its own folder; the cell reports the worst
        // verdict and how often each finding appeared.
        let mut runs = Vec::new();
        for i in 1..=n {
            self.note(cell, format!("repeat {i}/{n}"));
            let sub = dir.join(format!("repeat-{i}"));
            let mut r = CellResult::new(cell, sub.clone());
            r.source_id = result.source_id.clone();
            let out = self
                .boot_and_test(cell, &sub, &kernel, &image, &mut r)
                .await;
            if let Err(Stop(v, why, details)) = out {
                r.verdict = v;
                r.reason = Some(why);
                r.details = details;
            }
            runs.push(r);
        }
        verdict::combine_repeats(result, runs);
        Ok(())
    }

    /// `kmatrix boot`: build (or reuse) a cell's kernel, boot it, then run `command` over
    /// SSH, or hand the terminal to an interactive `ssh` session; the VM is stopped after.
    /// Returns the command's (or ssh's) exit status.
    pub async fn boot_shell(mut self, cell: &Cell, command: Option<String>) -> Result<i32, String> {
        let dir = self.run_dir.join(cell.dir_name());
        let mut result = CellResult::new(cell, dir.clone());
        let (kernel, image) = match self.prepare_cell(cell, &dir, &mut result).await {
            Ok(Some(ki)) => ki,
            Ok(None) => return Err("build-only run".into()),
            Err(Stop(v, why, details)) => {
                return Err(format!("{}: {why}\n{}", v.label(), details.join("\n")))
            }
        };
        let results = dir.join("results");
        std::fs::create_dir_all(&results).map_err(|e| e.to_string())?;
        let tests: Vec<_> = self
            .plan
            .tests
            .iter()
            .filter(|t| t.applies_to(cell))
            .collect();
        fill_share(&dir.join("share"), &image, &kernel, &tests)
            .map_err(|Stop(v, why, _)| format!("{}: {why}", v.label()))?;
        let (mut vm, mut virtiofsd) = self
            .start_with_fallback(cell, &dir, &kernel, &image, &results, &mut result)
            .await
            .map_err(|Stop(v, why, _)| format!("{}: {why}", v.label()))?;
        let target = target_of(&vm, &image);
        let outcome = match self.wait_ssh(&mut vm, &target).await {
            Err(Stop(v, why, details)) => {
                Err(format!("{}: {why}\n{}", v.label(), details.join("\n")))
            }
            Ok(session) => match command {
                Some(cmd) => tokio::task::spawn_blocking(move || {
                    guest::exec(&session, &cmd, Duration::from_secs(24 * 3600), None, None)
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
                .map(|r| {
                    print!("{}", r.output);
                    r.exit_status
                }),
                None => interactive_ssh(&target, &dir).await,
            },
        };
        eprintln!("kmatrix: console log: {}", vm.spec.console_log.display());
        vm.stop(Duration::from_secs(1)).await;
        virtiofsd.stop().await;
        outcome
    }

    async fn image(&mut self, arch: Arch) -> Result<Image, Stop> {
        if let Some(i) = self.images.get(&arch) {
            return Ok(i.clone());
        }
        let tests: Vec<_> = self
            .plan
            .tests
            .iter()
            .filter(|t| t.arches.as_ref().is_none_or(|a| a.contains(&arch)))
            .cloned()
            .collect();
        let bins = image::build_tests(arch, &tests, &self.cache)
            .await
            .map_err(|e| infra(chain(&e)))?;
        let img = image::prepare(arch, &bins, &self.cache)
            .await
            .map_err(|e| infra(chain(&e)))?;
        self.images.insert(arch, img.clone());
        Ok(img)
    }

    /// Start the virtiofsd daemons + QEMU with an accelerator. The console log is
    /// started afresh for a cell's first boot and appended to for a reboot.
    #[allow(clippy::too_many_arguments)]
    async fn start_vm(
        &self,
        cell: &Cell,
        dir: &Path,
        kernel: &Kernel,
        image: &Image,
        accel: Accel,
        results: &Path,
        fresh_console: bool,
    ) -> Result<(Vm, Shares), Stop> {
        let bin = match &self.virtiofsd_override {
            Some(b) => b.clone(),
            None => {
                vm::find_virtiofsd().ok_or_else(|| infra(vm::VmError::NoVirtiofsd.to_string()))?
            }
        };
        // The cell's results folder, writable; the test programs and modules, read-only.
        let mut shares = Shares::default();
        for (tag, folder, readonly) in [
            ("results", results.to_path_buf(), false),
            ("tests", dir.join("share"), true),
        ] {
            let sock = dir.join(format!("{tag}.sock"));
            let p = vm::start_virtiofsd(
                &bin,
                tag,
                &sock,
                &folder,
                readonly,
                &dir.join(format!("virtiofsd-{tag}.log")),
            )
            .await
            .map_err(|e| infra(chain(&e)))?;
            shares.0.push((tag.to_string(), sock, p));
        }
        let spec = VmSpec {
            qemu: self
                .qemu_override
                .clone()
                .unwrap_or_else(|| cell.arch.qemu_binary().into()),
            arch: cell.arch,
            accel,
            kernel: kernel.image.clone(),
            initrd: image.initramfs.clone(),
            memory_mib: self.plan.vm.memory_mib,
            cpus: self.plan.vm.cpus,
            console_log: dir.join("console.log"),
            console_socket: dir.join("console.sock"),
            qmp_socket: dir.join("qmp.sock"),
            ssh_port: vm::free_port().map_err(|e| infra(format!("no free port: {e}")))?,
            shares: shares
                .0
                .iter()
                .map(|(tag, sock, _)| (tag.clone(), sock.clone()))
                .collect(),
            hung_task_secs: self.plan.vm.hung_task_timeout.as_secs(),
        };
        if fresh_console {
            let _ = std::fs::remove_file(&spec.console_log);
        }
        let _ = std::fs::remove_file(&spec.console_socket);
        let vm = Vm::start(spec, &dir.join("qemu.log")).map_err(|e| infra(chain(&e)))?;
        append(&dir.join("qemu.log"), &format!("$ {}\n", vm.cmdline));
        Ok((vm, shares))
    }

    async fn boot_and_test(
        &self,
        cell: &Cell,
        dir: &Path,
        kernel: &Kernel,
        image: &Image,
        result: &mut CellResult,
    ) -> Result<(), Stop> {
        let results = dir.join("results");
        std::fs::create_dir_all(&results)
            .map_err(|e| infra(format!("{}: {e}", results.display())))?;
        let _ = std::fs::remove_file(dir.join("qemu.log"));
        let tests: Vec<&crate::plan::TestSpec> = self
            .plan
            .tests
            .iter()
            .filter(|t| t.applies_to(cell))
            .collect();
        fill_share(&dir.join("share"), image, kernel, &tests)?;

        // A fatal report (oops, BUG, panic) leaves the kernel unfit for more tests, but
        // the tests after it can still find other bugs: they get a fresh boot, whose
        // console is appended to the same log.
        let mut done = 0;
        let mut boot = 1;
        let outcome = loop {
            let (mut vm, mut shares) = if boot == 1 {
                self.start_with_fallback(cell, dir, kernel, image, &results, result)
                    .await?
            } else {
                let accel = match result.accel.as_deref() {
                    Some("kvm") => Accel::Kvm,
                    _ => Accel::Tcg,
                };
                append(
                    &dir.join("console.log"),
                    &format!(
                        "\nkmatrix: boot {boot}, a fresh kernel for the tests after {}\n",
                        tests[done - 1].name
                    ),
                );
                self.phase(cell, Phase::Boot, format!("{} (boot {boot})", accel.name()));
                self.start_vm(cell, dir, kernel, image, accel, &results, false)
                    .await?
            };
            let out = self
                .drive(
                    cell,
                    dir,
                    &mut vm,
                    &mut shares,
                    image,
                    kernel,
                    &tests[done..],
                    result,
                )
                .await;
            // Shutdown: the guest was asked to reboot (-no-reboot turns it into an exit);
            // whatever happened, QEMU and virtiofsd are gone after this.
            vm.stop(Duration::from_secs(10)).await;
            shares.stop().await;
            match out {
                Ok(n) if done + n < tests.len() && n > 0 && boot < MAX_BOOTS => {
                    let stopped = result.tests.last().map(|t| t.timed_out || t.unresponsive);
                    // After a hang the guest was stopped with forensics; tests after it
                    // are not what the cell is about any more.
                    if stopped == Some(true) {
                        break Ok(());
                    }
                    self.note(
                        cell,
                        format!(
                            "rebooting for the {} test(s) after {}",
                            tests.len() - done - n,
                            tests[done + n - 1].name
                        ),
                    );
                    done += n;
                    boot += 1;
                }
                other => break other.map(|_| ()),
            }
        };

        self.phase(cell, Phase::Collect, "console");
        let console = std::fs::read(dir.join("console.log")).unwrap_or_default();
        let findings = crate::console::parse(&console[..]).unwrap_or_default();
        let _ = crate::cache::write_atomic(
            &dir.join("findings.json"),
            serde_json::to_string_pretty(&crate::console::findings_json(&findings))
                .unwrap_or_default()
                .as_bytes(),
        );
        result.findings = findings;
        for t in &mut result.tests {
            let f = results.join(format!("{}.ktap", t.name));
            if f.is_file() {
                t.result_file = Some(f);
            }
        }
        let expectations: Vec<(String, crate::plan::Expectation)> = self
            .plan
            .tests
            .iter()
            .filter(|t| result.tests.iter().any(|r| r.name == t.name))
            .flat_map(|t| t.expect.iter().map(|e| (t.name.clone(), e.clone())))
            .collect();
        let (expected_by, controls) = verdict::match_expectations(&expectations, &result.findings);
        result.expected_by = expected_by;
        result.controls = controls;
        // QEMU drops console output it cannot write: a guest that "never booted" on a
        // full disk is the host's problem, not the kernel's.
        let outcome = match outcome {
            Err(Stop(Verdict::BootFail, why, details)) if disk_full(dir) => Err(infra(format!(
                "{why}; the disk holding {} is full, so the console could not be written",
                dir.display()
            ))
            .with_details(details)),
            other => other,
        };
        outcome?;
        let (v, why) = verdict::decide(
            &result.tests,
            &result.findings,
            &result.expected_by,
            &result.controls,
        );
        result.verdict = v;
        result.reason = why;
        Ok(())
    }

    /// Start the VM with the first-choice accelerator; when that is KVM and the guest does
    /// not really run under it, restart under TCG and record why.
    async fn start_with_fallback(
        &self,
        cell: &Cell,
        dir: &Path,
        kernel: &Kernel,
        image: &Image,
        results: &Path,
        result: &mut CellResult,
    ) -> Result<(Vm, Shares), Stop> {
        let first = vm::initial_accel(self.plan.vm.accel, cell.arch);
        self.phase(cell, Phase::Boot, first.name());
        let (mut vm, mut shares) = self
            .start_vm(cell, dir, kernel, image, first, results, true)
            .await?;
        let mut accel = first;
        if first == Accel::Kvm {
            if let Err(reason) = vm.early_boot(Duration::from_secs(20)).await {
                vm.qemu.terminate(Duration::from_secs(2)).await;
                shares.stop().await;
                let _ = std::fs::rename(dir.join("console.log"), dir.join("console-kvm.log"));
                let note = format!("KVM failed ({reason}); fell back to TCG");
                self.note(cell, note.clone());
                result.accel_note = Some(note);
                accel = Accel::Tcg;
                self.phase(cell, Phase::Boot, "tcg");
                (vm, shares) = self
                    .start_vm(cell, dir, kernel, image, accel, results, true)
                    .await?;
            }
        }
        result.accel = Some(accel.name().into());

        Ok((vm, shares))
    }

    /// Wait until SSH authenticates with the pinned host key, watching QEMU all along.
    async fn wait_ssh(&self, vm: &mut Vm, target: &Target) -> Result<ssh2::Session, Stop> {
        let deadline = Instant::now() + self.plan.vm.boot_timeout;
        let mut session: Option<ssh2::Session> = None;
        loop {
            if session.is_some() && vm.console().contains("kmatrix-guest: ready") {
                if let Some(s) = session.take() {
                    return Ok(s);
                }
            }
            if let Some(st) = vm.qemu.try_wait() {
                // Collect QEMU's last words before quoting them.
                let _ = vm.qemu.wait().await;
                return Err(Stop(
                    Verdict::BootFail,
                    format!("QEMU exited ({st}) before SSH answered"),
                    tail_lines(&vm.console_tail(15), &vm.qemu.tail()),
                ));
            }
            if Instant::now() > deadline {
                return Err(Stop(
                    Verdict::BootFail,
                    format!(
                        "SSH did not answer within {}s",
                        self.plan.vm.boot_timeout.as_secs()
                    ),
                    tail_lines(&vm.console_tail(15), &vm.qemu.tail()),
                ));
            }
            // Only knock once init says sshd is up (saves futile handshakes); the
            // handshake overlaps init's share mounts, and the session is handed out
            // once init says it is ready.
            if session.is_none() && vm.console().contains("kmatrix-guest: sshd up") {
                let t = target.clone();
                match tokio::task::spawn_blocking(move || {
                    guest::connect(&t, Duration::from_secs(10))
                })
                .await
                {
                    Ok(Ok(s)) => session = Some(s),
                    Ok(Err(e @ guest::SshError::HostKey { .. })) => {
                        return Err(infra(e.to_string()))
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait for SSH, run `tests` in order, ask the guest to power off. Returns how many
    /// of them ran: fewer than all when one left the kernel unfit to judge the rest (a
    /// fatal report, a hang, the guest gone).
    #[allow(clippy::too_many_arguments)]
    async fn drive(
        &self,
        cell: &Cell,
        dir: &Path,
        vm: &mut Vm,
        shares: &mut Shares,
        image: &Image,
        kernel: &Kernel,
        tests: &[&crate::plan::TestSpec],
        result: &mut CellResult,
    ) -> Result<usize, Stop> {
        let target = target_of(vm, image);
        let session = self.wait_ssh(vm, &target).await?;
        let ready = vm.started.elapsed().as_secs_f64();
        if result.ssh_ready_secs.is_none() {
            result.ssh_ready_secs = Some(ready);
            result.kernel_init_secs = kernel_init_time(&vm.console());
        }
        self.note(cell, format!("ssh ready {ready:.1}s after QEMU start"));
        if vm
            .console()
            .contains("kmatrix-guest: tests share NOT mounted")
        {
            return Err(infra(
                "the guest could not mount the tests share (virtiofs); see console.log".into(),
            ));
        }
        let session = std::sync::Arc::new(session);
        let tests_dir = dir.join("tests");
        std::fs::create_dir_all(&tests_dir).map_err(|e| infra(e.to_string()))?;
        let slow = vm.spec.accel.slowdown(cell.arch);
        // Per-VMA-lock counters (CONFIG_PER_VMA_LOCK_STATS) before and after the tests:
        // evidence that the stress really went through the per-VMA-lock paths.
        let vmstat = |s: std::sync::Arc<ssh2::Session>| async move {
            tokio::task::spawn_blocking(move || {
                guest::exec(
                    &s,
                    "grep ^vma_lock /proc/vmstat",
                    Duration::from_secs(20),
                    None,
                    None,
                )
            })
            .await
            .ok()
            .and_then(|r| r.ok())
            .map(|r| crate::verdict::parse_vmstat(&r.output))
            .unwrap_or_default()
        };
        result.vmstat_before = vmstat(session.clone()).await;
        for (i, t) in tests.iter().enumerate() {
            // A test whose module did not build against this kernel fails with modpost's
            // (or the compiler's) words; there is nothing to load.
            if let Some(m) = t
                .module_name()
                .and_then(|n| kernel.modules.iter().find(|m| m.name == n))
                .filter(|m| m.ko.is_none())
            {
                result.tests.push(TestResult {
                    name: t.name.clone(),
                    exit_status: None,
                    ktap: crate::ktap::parse(""),
                    timed_out: false,
                    unresponsive: false,
                    seconds: 0.0,
                    result_file: None,
                    error: Some(module_failure(m)),
                });
                continue;
            }
            self.phase(cell, Phase::Test, t.name.clone());
            let secs = t.duration.as_secs().max(1);
            let cmd = format!(
                "/tests/{} {} /results/{}.ktap {}",
                t.name,
                secs,
                t.name,
                t.args.join(" ")
            );
            let out = tests_dir.join(format!("{}.ktap", t.name));
            // Timeouts are written for TCG on x86_64; slower setups get more.
            let timeout = t.timeout * slow.max(4) / 4;
            let s = session.clone();
            let start = Instant::now();
            let abandon = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = abandon.clone();
            let mut task = tokio::task::spawn_blocking(move || {
                guest::exec(&s, &cmd, timeout, Some(&out), Some(&flag))
            });
            // While the test runs, watch the console: after an oops the test may never
            // return (it can die holding locks), so give it a grace period, then move on.
            let console_from = std::fs::metadata(&vm.spec.console_log)
                .map(|m| m.len())
                .unwrap_or(0);
            let mut fatal_since: Option<Instant> = None;
            let run = loop {
                tokio::select! {
                    r = &mut task => break r,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                // Without virtiofsd the guest's file I/O to its shares blocks for good:
                // the host's fault, and no later test could be judged.
                if let Some((tag, st, tail)) = shares.exited().await {
                    abandon.store(true, std::sync::atomic::Ordering::Relaxed);
                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut task).await;
                    result.tests.push(TestResult {
                        name: t.name.clone(),
                        exit_status: None,
                        ktap: crate::ktap::parse(
                            &std::fs::read_to_string(tests_dir.join(format!("{}.ktap", t.name)))
                                .unwrap_or_default(),
                        ),
                        timed_out: false,
                        unresponsive: false,
                        seconds: start.elapsed().as_secs_f64(),
                        result_file: None,
                        error: Some("abandoned: virtiofsd exited".into()),
                    });
                    return Err(Stop(
                        Verdict::InfraError,
                        format!(
                            "virtiofsd ({tag} share) exited ({st}) during {}, not by the guest",
                            t.name
                        ),
                        tail.lines()
                            .filter(|l| !l.is_empty())
                            .map(|l| format!("virtiofsd| {l}"))
                            .collect(),
                    ));
                }
                if fatal_since.is_none() && fatal_report_since(&vm.spec.console_log, console_from) {
                    self.note(
                        cell,
                        format!("kernel reported a fatal error during {}", t.name),
                    );
                    fatal_since = Some(Instant::now());
                }
                if fatal_since.is_some_and(|f| f.elapsed() > Duration::from_secs(15)) {
                    abandon.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            };
            let text = std::fs::read_to_string(tests_dir.join(format!("{}.ktap", t.name)))
                .unwrap_or_default();
            let mut tr = TestResult {
                name: t.name.clone(),
                exit_status: None,
                ktap: crate::ktap::parse(&text),
                timed_out: false,
                unresponsive: false,
                seconds: start.elapsed().as_secs_f64(),
                result_file: None,
                error: None,
            };
            match run {
                Ok(Ok(r)) => tr.exit_status = Some(r.exit_status),
                Ok(Err(guest::SshError::Timeout { .. })) => {
                    tr.timed_out = true;
                    tr.error = Some(format!("overran its timeout of {}s", timeout.as_secs()));
                }
                Ok(Err(guest::SshError::Abandoned { .. })) => {
                    tr.error = Some("abandoned after a fatal kernel report".into());
                }
                Ok(Err(e)) => {
                    // The SSH connection can drop a moment before QEMU's exit is visible.
                    let status = match vm.qemu.try_wait() {
                        Some(st) => Some(st),
                        None => tokio::time::timeout(Duration::from_secs(2), vm.qemu.wait())
                            .await
                            .ok()
                            .and_then(|r| r.ok()),
                    };
                    // QEMU killed by a signal from outside (not a guest reboot or panic,
                    // which make QEMU exit normally) is the host's problem, not the kernel's.
                    if let Some(sig) = status.and_then(|s| {
                        use std::os::unix::process::ExitStatusExt;
                        s.signal()
                    }) {
                        result.tests.push(tr);
                        return Err(infra(format!(
                            "QEMU was killed by signal {sig} during {} (not by the guest)",
                            t.name
                        )));
                    }
                    tr.error = Some(match status {
                        // panic=-1 and -no-reboot: a panicking guest ends QEMU by itself.
                        Some(_) if vm.console().contains("Kernel panic - not syncing") => {
                            "the kernel panicked during the test (QEMU exited by itself)".into()
                        }
                        Some(_) => format!("guest died during the test ({e})"),
                        None => {
                            tr.unresponsive = true;
                            format!("the guest stopped answering SSH during the test ({e})")
                        }
                    })
                }
                Err(e) => tr.error = Some(format!("ssh thread: {e}")),
            }
            // After a hang or a fatal report the kernel is not fit to judge further tests.
            let stop = tr.timed_out
                || tr.unresponsive
                || fatal_since.is_some()
                || vm.qemu.try_wait().is_some();
            let hung = tr.timed_out || tr.error.is_some();
            result.tests.push(tr);
            if hung && vm.qemu.try_wait().is_none() {
                // After an oops the dumps still show who is stuck on the locks it left held.
                let after = if fatal_since.is_some() {
                    "a fatal kernel report"
                } else {
                    "a hang"
                };
                result.forensics = Some(self.forensics(cell, vm, &target, after).await);
            }
            if stop {
                return Ok(i + 1);
            }
        }
        result.vmstat_after = vmstat(session.clone()).await;
        let s = session.clone();
        let _ = tokio::task::spawn_blocking(move || {
            guest::fire(&s, "sync; umount /results; reboot -f")
        })
        .await;
        Ok(tests.len())
    }
}

/// How many times a cell boots at most (a fresh kernel after each fatal report).
const MAX_BOOTS: u32 = 4;

/// The virtiofsd daemons of one VM: (tag, socket, process).
#[derive(Default)]
struct Shares(Vec<(String, PathBuf, crate::proc::Proc)>);

impl Shares {
    /// The first daemon that exited: its tag, status and last words.
    async fn exited(&mut self) -> Option<(String, std::process::ExitStatus, String)> {
        for (tag, _, p) in &mut self.0 {
            if let Some(st) = p.try_wait() {
                let _ = p.wait().await;
                return Some((tag.clone(), st, p.tail()));
            }
        }
        None
    }
    async fn stop(&mut self) {
        for (_, _, p) in &mut self.0 {
            p.terminate(Duration::from_secs(2)).await;
        }
    }
}

/// The tests share of a cell: the guest test programs that run in it and the modules
/// built against its kernel, hard-linked from the cache where possible.
fn fill_share(
    share: &Path,
    image: &Image,
    kernel: &Kernel,
    tests: &[&crate::plan::TestSpec],
) -> Result<(), Stop> {
    let _ = std::fs::remove_dir_all(share);
    std::fs::create_dir_all(share).map_err(|e| infra(format!("{}: {e}", share.display())))?;
    let mut files: Vec<(PathBuf, String)> = image
        .tests
        .iter()
        .filter(|(n, _)| tests.iter().any(|t| &t.name == n))
        .map(|(n, p)| (p.clone(), n.clone()))
        .collect();
    for m in &kernel.modules {
        if let Some(ko) = &m.ko {
            files.push((ko.clone(), format!("{}.ko", m.name)));
        }
    }
    for (from, name) in files {
        let to = share.join(&name);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(|e| infra(format!("{}: {e}", from.display())))?;
        }
    }
    Ok(())
}

/// A module build failure as one line, modpost's `undefined!` explained.
fn module_failure(m: &build::ModuleBuild) -> String {
    let first = m.errors.first().cloned().unwrap_or_default();
    let hint = if first.contains("undefined!") {
        " (the kernel does not export that symbol to modules)"
    } else {
        ""
    };
    format!(
        "module {}.ko did not build against this kernel: {first}{hint}",
        m.name
    )
}

/// The kernel's own timestamp of starting init (`[    2.707809] Run /init as init process`).
pub fn kernel_init_time(console: &str) -> Option<f64> {
    console
        .lines()
        .find(|l| l.contains("Run /init as init process"))
        .and_then(|l| l.trim_start().strip_prefix('['))
        .and_then(|l| l.split(']').next())
        .and_then(|t| t.trim().parse().ok())
}

/// Has the console, past `from`, a report after which the kernel is damaged (oops, BUG,
/// panic)? Lockdep and hung-task reports are not fatal: tests go on after them.
fn fatal_report_since(console: &Path, from: u64) -> bool {
    use crate::console::Kind;
    let Ok(bytes) = std::fs::read(console) else {
        return false;
    };
    let tail = &bytes[(from as usize).min(bytes.len())..];
    crate::console::parse(tail)
        .map(|fs| {
            fs.iter().any(|f| {
                matches!(
                    f.kind,
                    Kind::NullDeref
                        | Kind::PagingFault
                        | Kind::Gpf
                        | Kind::Bug
                        | Kind::Panic
                        | Kind::Kasan
                )
            })
        })
        .unwrap_or(false)
}

impl Engine {
    /// Forensics after a hang or a fatal report: ask the kernel for blocked tasks (sysrq
    /// w), every task (t) and all-CPU backtraces (l), over a fresh SSH session or, when
    /// SSH is dead, as BREAKs on the serial console; then give its detectors a bounded
    /// moment to print. The dumps land in console.log. Returns what was done.
    async fn forensics(&self, cell: &Cell, vm: &mut Vm, target: &Target, after: &str) -> String {
        self.note(
            cell,
            format!("collecting forensics after {after} (sysrq w, t, l)"),
        );
        let t = target.clone();
        let done = tokio::task::spawn_blocking(move || {
            let s = guest::connect(&t, Duration::from_secs(10))?;
            guest::exec(
                &s,
                "for k in w t l; do echo $k > /proc/sysrq-trigger; done",
                Duration::from_secs(30),
                None,
                None,
            )
        })
        .await;
        let ssh_error = match done {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("ssh thread failed: {e}")),
        };
        let how = match ssh_error {
            None => "sysrq w, t and l over ssh".to_string(),
            Some(e) => {
                self.note(
                    cell,
                    format!("ssh unreachable ({e}); sysrq over the serial console"),
                );
                match vm::serial_sysrq(&vm.spec.console_socket, b"wtl", Duration::from_secs(30)).await {
                    Ok(()) => format!("sysrq w, t and l over the serial console (ssh unreachable: {e})"),
                    Err(se) => format!("no sysrq: ssh unreachable ({e}), serial console failed ({se}); console only"),
                }
            }
        };
        // The hung-task detector and the sysrq dumps print asynchronously.
        let wait = self.plan.vm.hung_task_timeout.min(Duration::from_secs(15));
        let until = Instant::now() + wait;
        while Instant::now() < until && vm.qemu.try_wait().is_none() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        how
    }
}

fn target_of(vm: &Vm, image: &Image) -> Target {
    Target {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], vm.spec.ssh_port)),
        host_key: image.host_key.clone(),
        key: image.client_key.clone(),
        public: image.client_pub.clone(),
    }
}

/// Hand the terminal to OpenSSH's client, pinned to the guest's host key.
async fn interactive_ssh(t: &Target, dir: &Path) -> Result<i32, String> {
    let known = dir.join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} ssh-ed25519 {}\n", t.addr.port(), t.host_key),
    )
    .map_err(|e| e.to_string())?;
    eprintln!("kmatrix: guest is up; exit the shell to stop it");
    let status = tokio::process::Command::new("ssh")
        .arg("-i")
        .arg(&t.key)
        .arg("-p")
        .arg(t.addr.port().to_string())
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "root@127.0.0.1"])
        .status()
        .await
        .map_err(|e| format!("cannot start ssh: {e}"))?;
    Ok(status.code().unwrap_or(1))
}

fn infra(msg: String) -> Stop {
    Stop(Verdict::InfraError, msg, vec![])
}

impl Stop {
    fn with_details(mut self, details: Vec<String>) -> Stop {
        self.2 = details;
        self
    }
}

/// Less than 1 MiB left for an unprivileged writer on the filesystem holding `path`.
fn disk_full(path: &Path) -> bool {
    nix::sys::statvfs::statvfs(path)
        .map(|st| st.blocks_available() * st.fragment_size() < 1 << 20)
        .unwrap_or(false)
}

/// An error and its sources on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        // Some messages already quote their source; do not say it twice.
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn tail_lines(console: &str, qemu: &str) -> Vec<String> {
    let mut v: Vec<String> = console.lines().map(|l| format!("console| {l}")).collect();
    v.extend(
        qemu.lines()
            .filter(|l| !l.is_empty())
            .map(|l| format!("qemu| {l}")),
    );
    v
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// One line that reproduces this cell alone.
fn write_repro(plan: &Plan, cell: &Cell, dir: &Path) {
    let line = format!(
        "kmatrix run --spec {} --only '{}'\n",
        plan.spec_path.display(),
        cell.id()
    );
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join("repro.txt"), line);
}

#[cfg(test)]
mod tests {
    //! Failure paths of the VM runner with fake QEMU and virtiofsd programs: each must
    //! end in the right verdict, with the child's own words, and leave no process behind.
    use super::*;
    use crate::plan::{Arch, VmSettings};
    use crate::spec::{AccelChoice, SourceSpec};
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho $$ >> {}/pids\n{body}\n", dir.display()),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    const FAKE_VIRTIOFSD: &str =
        "for a; do case $a in --socket-path=*) touch \"${a#*=}\";; esac; done\nexec sleep 600";

    fn engine(dir: &Path, accel: AccelChoice, qemu: PathBuf) -> (Engine, Cell) {
        let cell = Cell {
            arch: Arch::X86_64,
            config: "c".into(),
            patchset: "p".into(),
            base_config: "tinyconfig".into(),
            fragments: vec![],
            patches: vec![],
        };
        let plan = Plan {
            spec_path: dir.join("kmatrix.yaml"),
            spec_hash: "test".into(),
            root: dir.into(),
            source: SourceSpec::Path(dir.into()),
            cells: vec![cell.clone()],
            tests: vec![],
            vm: VmSettings {
                accel,
                memory_mib: 256,
                cpus: 1,
                boot_timeout: Duration::from_secs(3),
                hung_task_timeout: Duration::from_secs(10),
            },
            baseline: None,
            jobs: 1,
        };
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let (_ctx, crx) = watch::channel(false);
        std::mem::forget(_ctx);
        let mut e = Engine::new(
            plan,
            Cache {
                root: dir.join("cache"),
            },
            RunOptions::default(),
            dir.join("run"),
            tx,
            crx,
        );
        e.qemu_override = Some(qemu);
        e.virtiofsd_override = Some(script(dir, "virtiofsd", FAKE_VIRTIOFSD));
        (e, cell)
    }

    fn dummies(dir: &Path) -> (Kernel, Image) {
        (
            Kernel {
                image: dir.join("bzImage"),
                vmlinux: dir.join("vmlinux"),
                config: dir.join("config"),
                log: dir.join("build.log"),
                key: "k".into(),
                cached: true,
                modules: vec![],
            },
            Image {
                initramfs: dir.join("initramfs"),
                host_key: "AAAA".into(),
                client_key: dir.join("key"),
                client_pub: dir.join("key.pub"),
                tests: vec![],
            },
        )
    }

    fn all_dead(dir: &Path) {
        let pids = std::fs::read_to_string(dir.join("pids")).unwrap_or_default();
        for pid in pids.lines() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(
                stat.is_empty() || stat.contains(") Z "),
                "process {pid} left running: {stat}"
            );
        }
    }

    async fn boot(e: &Engine, cell: &Cell, dir: &Path) -> (Result<(), Stop>, CellResult) {
        let (k, i) = dummies(dir);
        let cdir = dir.join("run/cell");
        std::fs::create_dir_all(&cdir).unwrap();
        let mut r = CellResult::new(cell, cdir.clone());
        let out = e.boot_and_test(cell, &cdir, &k, &i, &mut r).await;
        (out, r)
    }

    #[test]
    fn kernel_init_time_from_console() {
        let c = "[    2.672793] Freeing unused kernel image\n[    2.707809] Run /init as init process\n";
        assert_eq!(kernel_init_time(c), Some(2.707809));
        assert_eq!(kernel_init_time("no timestamps\n"), None);
    }

    #[tokio::test]
    async fn qemu_that_exits_at_once_is_boot_fail_with_its_own_words() {
        let d = tempfile::tempdir().unwrap();
        let q = script(
            d.path(),
            "qemu",
            "echo 'qemu: could not load kernel image' >&2\nexit 1",
        );
        let (e, cell) = engine(d.path(), AccelChoice::Tcg, q);
        let (out, r) = boot(&e, &cell, d.path()).await;
        let Err(Stop(v, why, details)) = out else {
            panic!("booted?")
        };
        assert_eq!(v, Verdict::BootFail);
        assert!(why.contains("QEMU exited"), "{why}");
        assert!(
            details
                .iter()
                .any(|l| l.contains("could not load kernel image")),
            "{details:?}"
        );
        assert_eq!(r.accel.as_deref(), Some("tcg"));
        all_dead(d.path());
    }

    #[tokio::test]
    async fn kvm_internal_error_falls_back_to_tcg_and_says_so() {
        let d = tempfile::tempdir().unwrap();
        let q = script(
            d.path(),
            "qemu",
            "case \"$*\" in *'-accel kvm'*) echo 'KVM internal error. Suberror: 1' >&2; exec sleep 600;; esac\n\
             echo 'tcg boot failed for the test' >&2\nexit 1",
        );
        let (e, cell) = engine(d.path(), AccelChoice::Kvm, q);
        let (out, r) = boot(&e, &cell, d.path()).await;
        assert!(matches!(out, Err(Stop(Verdict::BootFail, _, _))));
        assert_eq!(r.accel.as_deref(), Some("tcg"));
        let note = r.accel_note.unwrap();
        assert!(
            note.contains("KVM internal error") && note.contains("fell back to TCG"),
            "{note}"
        );
        all_dead(d.path());
    }

    #[tokio::test]
    async fn silent_guest_is_boot_fail_after_the_boot_timeout_and_qemu_is_killed() {
        let d = tempfile::tempdir().unwrap();
        let q = script(d.path(), "qemu", "trap '' TERM\nexec sleep 600");
        let (e, cell) = engine(d.path(), AccelChoice::Tcg, q);
        let start = Instant::now();
        let (out, _) = boot(&e, &cell, d.path()).await;
        let Err(Stop(v, why, _)) = out else {
            panic!("booted?")
        };
        assert_eq!(v, Verdict::BootFail);
        assert!(why.contains("SSH did not answer within 3s"), "{why}");
        assert!(start.elapsed() < Duration::from_secs(30));
        all_dead(d.path());
    }

    #[tokio::test]
    async fn virtiofsd_that_dies_is_an_infra_error_with_its_words() {
        let d = tempfile::tempdir().unwrap();
        let q = script(d.path(), "qemu", "exec sleep 600");
        let (mut e, cell) = engine(d.path(), AccelChoice::Tcg, q);
        e.virtiofsd_override = Some(script(
            d.path(),
            "virtiofsd-bad",
            "echo 'Error: no permission to open shared dir' >&2\nexit 1",
        ));
        let (out, _) = boot(&e, &cell, d.path()).await;
        let Err(Stop(v, why, _)) = out else {
            panic!("booted?")
        };
        assert_eq!(v, Verdict::InfraError);
        assert!(why.contains("no permission to open shared dir"), "{why}");
        all_dead(d.path());
    }
}
