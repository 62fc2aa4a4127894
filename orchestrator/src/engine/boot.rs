//! A boot of a cell's kernel: the virtiofsd daemons for its shares, QEMU (KVM when it
//! really runs guests here, else TCG), the console task that reads the serial line as
//! it arrives, and the SSH session once init says it is ready. Every wait watches QEMU.

use super::prepare::Prepared;
use super::run::CellRun;
use super::shared::{infra_err, Stop};
use crate::console::watcher::Watcher;
use crate::host::guest::{self, Target};
use crate::host::kvm_verdict;
use crate::host::rundir::append;
use crate::record::phase::Phase;
use crate::record::plan::{Accel, Arch};
use crate::record::verdict::Verdict;
use crate::vm::console::{Budget, Console};
use crate::vm::{self, EarlyBoot as Early, Vm, VmSpec};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A booted guest: everything that lives as long as the VM.
pub(crate) struct BootSession {
    pub vm: Vm,
    pub shares: Shares,
    pub console: Console,
    pub target: Target,
    pub ssh: Arc<ssh2::Session>,
}

/// The virtiofsd daemons of one VM: (tag, socket, process).
#[derive(Default)]
pub(crate) struct Shares(Vec<(String, PathBuf, crate::host::proc::Proc)>);

impl Shares {
    /// The first daemon that exited: its tag, status and last words.
    pub async fn exited(&mut self) -> Option<(String, std::process::ExitStatus, String)> {
        for (tag, _, p) in &mut self.0 {
            if let Some(st) = p.try_wait() {
                let _ = p.wait().await;
                return Some((tag.clone(), st, p.tail()));
            }
        }
        None
    }
    /// Stop the daemons and remove their sockets and virtiofsd's `<socket>.pid` files:
    /// nothing in the cell folder is left pointing at a process that is gone.
    pub async fn stop(&mut self) {
        for (_, sock, p) in &mut self.0 {
            p.terminate(Duration::from_secs(2)).await;
            let mut pid = sock.clone().into_os_string();
            pid.push(".pid");
            let _ = std::fs::remove_file(&pid);
            let _ = std::fs::remove_file(&*sock);
        }
    }
}

/// A VM that is up to the point of the console task, before SSH.
struct Started {
    vm: Vm,
    shares: Shares,
    console: Console,
}

/// What a boot needs from the cell besides the kernel and image.
pub(crate) struct BootPlan {
    /// 1 for the cell's first boot (a fresh console.log), then 2, 3, ...
    pub n: u32,
    /// The line written before this boot's console (a reboot's reason).
    pub preamble: Option<String>,
    /// Console lines already in console.log from earlier boots.
    pub offset: usize,
    pub budget: Budget,
}

/// Why a start did not give a running guest.
enum StartError {
    Stop(Stop),
    /// Another process took the SSH port between choosing and binding it: start again
    /// with another port. Never a boot or KVM verdict.
    PortTaken(u16),
}

impl From<Stop> for StartError {
    fn from(s: Stop) -> Self {
        StartError::Stop(s)
    }
}

/// How long a kernel that has not reached init may print nothing before its boot counts
/// as stalled (it is booted once more).
const STALL: Duration = Duration::from_secs(60);

/// Whether a booting kernel has gone quiet: it printed, has not reached init, and has
/// printed nothing more for `limit`.
struct Silence {
    limit: Duration,
    bytes: u64,
    since: Instant,
}

impl Silence {
    fn new(limit: Duration) -> Silence {
        Silence {
            limit,
            bytes: 0,
            since: Instant::now(),
        }
    }

    fn stalled(&mut self, bytes: u64, reached_init: bool, now: Instant) -> bool {
        if bytes != self.bytes {
            self.bytes = bytes;
            self.since = now;
            return false;
        }
        // Nothing printed at all is the boot timeout's (and KVM detection's) to judge;
        // after init, userspace may be quiet.
        bytes > 0 && !reached_init && now.duration_since(self.since) > self.limit
    }
}

/// How waiting for SSH ended without a session.
enum Waited {
    Stop(Stop),
    /// The kernel stopped printing before init.
    Stalled(Stop),
}

/// How often a boot is retried after losing its port.
const PORT_ATTEMPTS: u32 = 5;

impl CellRun<'_> {
    /// Boot and wait for SSH. On failure the VM is already gone; the watcher with what
    /// the console showed is handed back with the stop.
    /// The boot's readiness facts, from the first boot that reached SSH.
    fn record_ready(&mut self, s: &Started) {
        let ready = s.vm.started.elapsed().as_secs_f64();
        if self.result.ssh_ready_secs.is_none() {
            self.result.ssh_ready_secs = Some(ready);
            self.result.kernel_init_secs = s.console.with(|w| w.init_secs);
            self.result.guest_cpus = s.console.with(|w| w.cpus);
            let asked = self.sh.plan.vm.cpus;
            if let Some(n) = self.result.guest_cpus.filter(|&n| n < asked) {
                // Interleaving still happens, overlap on two CPUs does not.
                self.result.notes.push(format!(
                    "the guest kernel brought up {n} of the {asked} CPUs QEMU gave it: \
                     the stress threads only interleaved"
                ));
            }
        }
        self.note(format!("ssh ready {ready:.1}s after QEMU start"));
    }

    /// A kernel that stopped printing before init is booted once more; its console goes
    /// on in the same log behind a line that says so.
    fn boot_again(&mut self, plan: &mut BootPlan, attempt: u32, stop: &Stop, w: &Watcher) {
        let why = format!(
            "boot attempt {attempt}: {}, after: {}; booted again",
            stop.reason,
            w.last_line().unwrap_or_default()
        );
        self.note(why.clone());
        self.result.notes.push(why);
        plan.offset = w.line();
        plan.preamble =
            Some("\nkmatrix: the kernel stopped printing before init; booting again\n".into());
        self.result.boot_lines.push(plan.offset + 2);
    }

    pub async fn boot(
        &mut self,
        p: &Prepared,
        mut plan: BootPlan,
    ) -> Result<BootSession, (Stop, Option<Watcher>)> {
        let mut attempt = 0;
        let mut stalled_once = false;
        loop {
            attempt += 1;
            let fresh = plan.n == 1 && attempt == 1;
            let mut s = match self.start_with_fallback(p, &plan, fresh).await {
                Ok(s) => s,
                Err(StartError::Stop(stop)) => return Err((stop, None)),
                Err(StartError::PortTaken(port)) if attempt < PORT_ATTEMPTS => {
                    self.note(format!(
                        "port {port} was taken before QEMU bound it; retrying with another"
                    ));
                    continue;
                }
                Err(StartError::PortTaken(port)) => {
                    return Err((
                        Stop::infra(format!(
                            "the SSH port was taken {attempt} times in a row (last {port})"
                        )),
                        None,
                    ))
                }
            };
            let target = Target {
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], s.vm.spec.ssh_port)),
                host_key: p.image.host_key.clone(),
                key: p.image.client_key.clone(),
                public: p.image.client_pub.clone(),
            };
            match self.wait_ssh(&mut s, &target).await {
                Ok(ssh) => {
                    self.record_ready(&s);
                    return Ok(BootSession {
                        vm: s.vm,
                        shares: s.shares,
                        console: s.console,
                        target,
                        ssh: Arc::new(ssh),
                    });
                }
                Err(Waited::Stalled(stop)) if !stalled_once => {
                    // Seen under TCG on an overloaded host (a clocksource switch that
                    // never returned): one fresh boot. A kernel that stalls twice is
                    // BOOT-FAIL; nothing it printed is lost (console.log keeps both).
                    stalled_once = true;
                    let w = shutdown(s.vm, s.shares, s.console, Duration::ZERO).await;
                    self.boot_again(&mut plan, attempt, &stop, &w);
                    continue;
                }
                Err(Waited::Stalled(stop)) | Err(Waited::Stop(stop)) => {
                    let port = s.vm.spec.ssh_port;
                    let taken = s.vm.qemu.try_wait().is_some() && vm::port_taken(&s.vm.qemu.tail());
                    let w = shutdown(s.vm, s.shares, s.console, Duration::ZERO).await;
                    if taken && attempt < PORT_ATTEMPTS {
                        self.note(format!(
                            "port {port} was taken before QEMU bound it; retrying with another"
                        ));
                        continue;
                    }
                    return Err((stop, Some(w)));
                }
            }
        }
    }

    /// Start with the first-choice accelerator. When that is KVM and the guest does not
    /// really run under it, restart under TCG, record why, and tell the rest of the run.
    async fn start_with_fallback(
        &mut self,
        p: &Prepared,
        plan: &BootPlan,
        fresh: bool,
    ) -> Result<Started, StartError> {
        let mut first = vm::initial_accel(self.sh.plan.vm.accel, self.cell.arch);
        let fingerprint = kvm_verdict::fingerprint(self.cell.arch.qemu_binary());
        if first == Accel::Kvm && self.sh.plan.vm.accel == crate::record::plan::AccelChoice::Auto {
            // Once KVM failed to run a guest here, later boots (of this run, or of runs
            // within the verdict's lifetime) go straight to TCG: 20 s saved each.
            let known_bad = self
                .sh
                .kvm_failed
                .lock()
                .ok()
                .and_then(|k| k.clone())
                .or_else(|| {
                    kvm_verdict::load(&self.sh.cache, &fingerprint)
                        .filter(|v| !v.works)
                        .map(|v| v.reason)
                });
            if let Some(why) = known_bad {
                first = Accel::Tcg;
                self.result.accel_note = Some(format!(
                    "KVM failed on this host ({why}); TCG without a new attempt"
                ));
            }
        }
        let label = |a: Accel| match plan.n {
            1 => a.name().to_string(),
            n => format!("{} (boot {n})", a.name()),
        };
        self.phase(Phase::Boot, label(first));
        let mut s = self.start_vm(p, first, plan, fresh).await?;
        if first != Accel::Kvm {
            self.result.accel = Some(first);
            return Ok(s);
        }
        let reason = match early_boot(&mut s, Duration::from_secs(20)).await {
            Early::ReachedInit => {
                let _ = kvm_verdict::store(
                    &self.sh.cache,
                    &kvm_verdict::KvmVerdict::now(
                        true,
                        "a guest kernel reached init under KVM",
                        fingerprint,
                    ),
                );
                self.result.accel = Some(Accel::Kvm);
                return Ok(s);
            }
            Early::PortTaken => {
                let port = s.vm.spec.ssh_port;
                let _ = shutdown(s.vm, s.shares, s.console, Duration::ZERO).await;
                return Err(StartError::PortTaken(port));
            }
            Early::KvmFailed(reason) => reason,
        };
        let _ = shutdown(s.vm, s.shares, s.console, Duration::ZERO).await;
        let _ = std::fs::rename(
            self.dir.join("console.log"),
            self.dir.join("console-kvm.log"),
        );
        let note = format!("KVM failed ({reason}); fell back to TCG");
        self.note(note.clone());
        self.result.accel_note = Some(note);
        let _ = kvm_verdict::store(
            &self.sh.cache,
            &kvm_verdict::KvmVerdict::now(false, reason.clone(), fingerprint),
        );
        if let Ok(mut k) = self.sh.kvm_failed.lock() {
            *k = Some(reason);
        }
        self.phase(Phase::Boot, label(Accel::Tcg));
        let s = self.start_vm(p, Accel::Tcg, plan, true).await?;
        self.result.accel = Some(Accel::Tcg);
        Ok(s)
    }

    /// virtiofsd for each share, then QEMU, then the console task (QEMU waits for it).
    async fn start_vm(
        &self,
        p: &Prepared,
        accel: Accel,
        plan: &BootPlan,
        fresh: bool,
    ) -> Result<Started, Stop> {
        let shares = self.start_shares().await?;
        let qemu: std::path::PathBuf = self
            .sh
            .overrides
            .qemu
            .clone()
            .unwrap_or_else(|| self.cell.arch.qemu_binary().into());
        let firmware = match self.cell.arch {
            Arch::X86_64 => vm::x86_firmware(&qemu),
            Arch::Arm64 => None,
        };
        let spec = VmSpec {
            qemu,
            arch: self.cell.arch,
            accel,
            kernel: p.kernel.image.clone(),
            initrd: p.image.initramfs.clone(),
            memory_mib: self.sh.plan.vm.memory_mib,
            cpus: self.sh.plan.vm.cpus,
            numa_nodes: self.sh.plan.vm.numa_nodes,
            // Names from vm::SOCKETS, whose paths `kmatrix run` checked before building.
            console_socket: self.dir.join(vm::SOCKETS[0]),
            qmp_socket: self.dir.join(vm::SOCKETS[1]),
            ssh_port: vm::ssh_port().map_err(|e| Stop::infra(format!("no free port: {e}")))?,
            shares: shares
                .0
                .iter()
                .map(|(tag, sock, _)| (tag.clone(), sock.clone()))
                .collect(),
            hung_task_secs: self.sh.plan.vm.hung_task_timeout.as_secs(),
            run_as: crate::vm::unprivileged(),
            firmware,
        };
        let log = self.dir.join("console.log");
        if fresh {
            let _ = std::fs::remove_file(&log);
            let _ = std::fs::remove_file(self.dir.join("qemu.log"));
        }
        let vm = Vm::start(spec, &self.dir.join("qemu.log")).map_err(|e| infra_err(&e))?;
        append(&self.dir.join("qemu.log"), &format!("$ {}\n", vm.cmdline));
        let console = Console::spawn(
            &vm.spec.console_socket,
            &log,
            Watcher::new(plan.offset).preferring(self.series_functions()),
            plan.budget.clone(),
            plan.preamble.clone(),
        );
        Ok(Started {
            vm,
            shares,
            console,
        })
    }

    /// The cell's results folder, writable; its test programs and modules, read-only.
    async fn start_shares(&self) -> Result<Shares, Stop> {
        let bin = match &self.sh.overrides.virtiofsd {
            Some(b) => b.clone(),
            None => vm::find_virtiofsd()
                .ok_or_else(|| Stop::infra(vm::VmError::NoVirtiofsd.to_string()))?,
        };
        let mut shares = Shares::default();
        for (tag, folder, readonly) in [
            ("results", self.dir.join("results"), false),
            ("tests", self.dir.join("share"), true),
        ] {
            let sock = self.dir.join(format!("{tag}.sock"));
            let p = vm::start_virtiofsd(
                &bin,
                tag,
                &sock,
                &folder,
                readonly,
                &self.dir.join(format!("virtiofsd-{tag}.log")),
            )
            .await
            .map_err(|e| infra_err(&e))?;
            shares.0.push((tag.to_string(), sock, p));
        }
        Ok(shares)
    }

    /// Wait until SSH authenticates with the pinned host key, watching QEMU all along.
    async fn wait_ssh(&self, s: &mut Started, target: &Target) -> Result<ssh2::Session, Waited> {
        let limit = self.sh.plan.vm.boot_timeout;
        let deadline = Instant::now() + limit;
        let mut session: Option<ssh2::Session> = None;
        let mut silence = Silence::new(STALL.min(limit / 3));
        loop {
            let (bytes, init) = s.console.with(|w| (w.bytes, w.reached_init));
            if silence.stalled(bytes, init, Instant::now()) {
                return Err(Waited::Stalled(
                    Stop::new(
                        Verdict::BootFail,
                        format!(
                            "the kernel stopped printing before init ({}s silent)",
                            silence.limit.as_secs()
                        ),
                    )
                    .details(tail_lines(s)),
                ));
            }
            let (sshd_up, ready, tests_failed) = s
                .console
                .with(|w| (w.sshd_up, w.ready, w.tests_share_failed));
            if tests_failed {
                return Err(Waited::Stop(Stop::infra(
                    "the guest could not mount the tests share (virtiofs); see console.log",
                )));
            }
            if ready {
                if let Some(ssh) = session.take() {
                    return Ok(ssh);
                }
            }
            if let Some(st) = s.vm.qemu.try_wait() {
                // Collect QEMU's last words before quoting them.
                let _ = s.vm.qemu.wait().await;
                return Err(Waited::Stop(
                    Stop::new(
                        Verdict::BootFail,
                        format!("QEMU exited ({st}) before SSH answered"),
                    )
                    .details(tail_lines(s)),
                ));
            }
            if Instant::now() > deadline {
                return Err(Waited::Stop(
                    Stop::new(
                        Verdict::BootFail,
                        format!("SSH did not answer within {}s", limit.as_secs()),
                    )
                    .details(tail_lines(s)),
                ));
            }
            // Only knock once init says sshd is up (saves futile handshakes); the
            // handshake overlaps init's share mounts, and the session is handed out
            // once init says it is ready.
            if session.is_none() && sshd_up {
                let t = target.clone();
                match tokio::task::spawn_blocking(move || {
                    guest::connect(&t, Duration::from_secs(10))
                })
                .await
                {
                    Ok(Ok(ssh)) => session = Some(ssh),
                    Ok(Err(e @ guest::SshError::HostKey { .. })) => {
                        return Err(Waited::Stop(Stop::infra(e.to_string())))
                    }
                    _ => {}
                }
                continue;
            }
            s.console.changed(Duration::from_millis(100)).await;
        }
    }
}

async fn early_boot(s: &mut Started, silent_limit: Duration) -> Early {
    vm::early_boot(&mut s.vm, &mut s.console, silent_limit).await
}

fn tail_lines(s: &Started) -> Vec<String> {
    let mut v: Vec<String> = s
        .console
        .with(|w| w.tail(15))
        .into_iter()
        .map(|l| format!("console| {l}"))
        .collect();
    v.extend(
        s.vm.qemu
            .tail()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| format!("qemu| {l}")),
    );
    v
}

/// Stop QEMU (after `wait` for a guest-initiated exit), the shares, and the console
/// task; returns what the console showed.
pub(crate) async fn shutdown(
    mut vm: Vm,
    mut shares: Shares,
    console: Console,
    wait: Duration,
) -> Watcher {
    vm.stop(wait).await;
    shares.stop().await;
    console.finish(Duration::from_secs(5)).await
}

impl BootSession {
    pub async fn shutdown(self, wait: Duration) -> Watcher {
        shutdown(self.vm, self.shares, self.console, wait).await
    }
}

/// The tests share of a cell: the guest test programs that run in it and the modules
/// built against its kernel, hard-linked from the cache where possible.
pub(crate) fn fill_share(
    share: &Path,
    p: &Prepared,
    tests: &[&crate::record::plan::TestSpec],
) -> Result<(), Stop> {
    let _ = std::fs::remove_dir_all(share);
    std::fs::create_dir_all(share).map_err(|e| Stop::infra(format!("{}: {e}", share.display())))?;
    let mut files: Vec<(PathBuf, String)> = p
        .image
        .tests
        .iter()
        .filter(|(n, _)| tests.iter().any(|t| &t.name == n))
        .map(|(n, path)| (path.clone(), n.clone()))
        .collect();
    for m in &p.kernel.modules {
        if let Some(ko) = &m.ko {
            files.push((ko.clone(), format!("{}.ko", m.name)));
        }
    }
    if !p.selftests.programs.is_empty() {
        std::fs::create_dir_all(share.join("selftests"))
            .map_err(|e| Stop::infra(format!("{}: {e}", share.display())))?;
    }
    for (t, bin) in &p.selftests.programs {
        if let Ok(bin) = bin {
            files.push((bin.clone(), t.file()));
        }
    }
    for (from, name) in files {
        let to = share.join(&name);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)
                .map_err(|e| Stop::infra(format!("{}: {e}", from.display())))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_silent_before_init_is_stalled_but_not_one_that_prints_or_reached_init() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let mut q = Silence::new(Duration::from_secs(60));
        assert!(
            !q.stalled(0, false, at(100)),
            "nothing printed yet: the boot timeout's"
        );
        assert!(!q.stalled(500, false, at(100)));
        assert!(!q.stalled(500, false, at(160)), "60 s exactly");
        assert!(q.stalled(500, false, at(161)));
        let mut p = Silence::new(Duration::from_secs(60));
        for s in 0..10 {
            assert!(
                !p.stalled(100 * (s + 1), false, at(50 * s)),
                "it keeps printing"
            );
        }
        let mut i = Silence::new(Duration::from_secs(60));
        assert!(!i.stalled(500, true, at(1)));
        assert!(
            !i.stalled(500, true, at(1000)),
            "after init, silence is not a stall"
        );
    }
}
