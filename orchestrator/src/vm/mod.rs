//! QEMU and virtiofsd: pure argument builders, accelerator choice with KVM-failure
//! detection, the serial console task (`console`), and a running VM whose every wait
//! also watches the QEMU process.

pub mod console;

use crate::host::proc::{self, Proc, ProcError, ProcSpec};
pub use crate::record::plan::Accel;
use crate::record::plan::{AccelChoice, Arch};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("virtiofsd not found: install it with `cargo install virtiofsd --locked` (scripts/setup-host does)")]
    NoVirtiofsd,
    #[error("virtiofsd for share `{tag}` did not come up")]
    Virtiofsd {
        tag: String,
        #[source]
        source: ProcError,
    },
    #[error("virtiofsd for share `{tag}` exited before its socket appeared:\n{tail}")]
    VirtiofsdDied { tag: String, tail: String },
    #[error("cannot start QEMU")]
    Qemu(#[source] ProcError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Everything that decides QEMU's command line.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// The QEMU binary (normally `arch.qemu_binary()`; tests substitute fakes).
    pub qemu: PathBuf,
    pub arch: Arch,
    pub accel: Accel,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub memory_mib: u64,
    pub cpus: u32,
    pub numa_nodes: u32,
    /// The serial line as a telnet socket: the way in for sysrq when SSH is dead.
    pub console_socket: PathBuf,
    pub qmp_socket: PathBuf,
    pub ssh_port: u16,
    /// (tag, vhost-user socket) per virtiofs share.
    pub shares: Vec<(String, PathBuf)>,
    pub hung_task_secs: u64,
    /// Drop to this uid and gid once the VM is set up (kmatrix runs as root): a bug in
    /// QEMU's device emulation is then not root on the host.
    pub run_as: Option<(u32, u32)>,
    /// x86 firmware instead of QEMU's default (`x86_firmware`).
    pub firmware: Option<PathBuf>,
}

/// Who QEMU becomes after its setup: nobody when kmatrix is root; itself otherwise.
pub fn unprivileged() -> Option<(u32, u32)> {
    nix::unistd::geteuid().is_root().then_some((65534, 65534))
}

/// QEMU's minimal x86 firmware, qboot, when this QEMU ships it: it hands over to the
/// kernel about 0.1 s sooner than SeaBIOS under emulation (bench/RESULTS.md), and does
/// all a `-kernel` boot needs (ACPI tables, SMP, PCI). Looked for where QEMU's own
/// build puts its firmware, `<prefix>/share/qemu` beside `<prefix>/bin` (QEMU is not
/// run for it: a test's fake QEMU would take the question for a boot).
pub fn x86_firmware(qemu: &Path) -> Option<PathBuf> {
    let bin = if qemu.components().count() > 1 {
        qemu.to_path_buf()
    } else {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(qemu))
            .find(|p| p.is_file())?
    };
    let prefix = bin.canonicalize().ok()?.parent()?.parent()?.to_path_buf();
    Some(prefix.join("share/qemu/qboot.rom")).filter(|f| f.is_file())
}

/// The guest kernel command line. Under emulation a loaded host starves the vCPUs, and
/// the guest's clock keeps running meanwhile: the soft-lockup detector's threshold is
/// scaled with the expected slowdown so a starved guest is not taken for a locked-up one.
pub fn kernel_cmdline(spec: &VmSpec) -> String {
    // printk.devkmsg=on: writes to /dev/kmsg are not rate-limited, so the markers kmatrix
    // writes around each test always reach the log (the default drops all but 10 in 5 s).
    let mut c = format!(
        "console={} panic=-1 loglevel=7 printk.time=1 printk.devkmsg=on rdinit=/init kmatrix.hung_task={}",
        spec.arch.console_device(),
        spec.hung_task_secs
    );
    if spec.arch == Arch::X86_64 {
        // ~0.1 s off every boot under emulation (measured, bench/RESULTS.md): no TSC
        // sync checks or clocksource watchdog (QEMU's TSC follows the host clock), no
        // PM-timer self-check, one UART probed, no PS/2 mouse probed.
        c.push_str(" tsc=reliable acpi_pm_good 8250.nr_uarts=1 i8042.noaux");
    }
    let slow = spec.accel.slowdown(spec.arch);
    if slow > 1 {
        c.push_str(&format!(" watchdog_thresh={}", 10 * slow / 2));
    }
    c
}

/// `-smp`: with NUMA nodes, one socket per node, so that no two nodes share a last-level
/// cache (x86 warns from `topology_sane()` when CPUs of one socket sit in two nodes).
fn smp_arg(spec: &VmSpec) -> String {
    let n = spec.numa_nodes.max(1);
    if n > 1 && spec.cpus % n == 0 {
        format!(
            "{},sockets={n},cores={},threads=1",
            spec.cpus,
            spec.cpus / n
        )
    } else {
        spec.cpus.to_string()
    }
}

/// Guest memory as NUMA nodes. vhost-user-fs needs all of it shared with virtiofsd, so each
/// node is a shared memfd backend; one node is the plain case. With more, memory is split
/// evenly (the last node takes the rest) and node i gets socket i's CPUs (the spec
/// checks that the CPUs divide evenly).
fn numa_args(spec: &VmSpec) -> Vec<String> {
    let n = u64::from(spec.numa_nodes.max(1));
    if n == 1 {
        return vec![
            "-object".into(),
            format!(
                "memory-backend-memfd,id=mem,size={}M,share=on",
                spec.memory_mib
            ),
            "-numa".into(),
            "node,memdev=mem".into(),
        ];
    }
    let each = spec.memory_mib / n;
    let mut a = Vec::new();
    for i in 0..n {
        let size = if i + 1 == n {
            spec.memory_mib - each * (n - 1)
        } else {
            each
        };
        let per = u64::from(spec.cpus) / n;
        let cpus = match per {
            0 => String::new(),
            1 => format!(",cpus={i}"),
            _ => format!(",cpus={}-{}", i * per, (i + 1) * per - 1),
        };
        a.extend([
            "-object".into(),
            format!("memory-backend-memfd,id=mem{i},size={size}M,share=on"),
            "-numa".into(),
            format!("node,nodeid={i},memdev=mem{i}{cpus}"),
        ]);
    }
    a
}

/// QEMU's arguments (pure; unit-tested; logged in full before starting).
pub fn qemu_args(spec: &VmSpec) -> Vec<OsString> {
    let mut a: Vec<String> = vec![
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
    ];
    match spec.arch {
        Arch::X86_64 => {
            a.extend(["-machine".into(), "q35".into()]);
            if let Some(f) = &spec.firmware {
                a.extend(["-bios".into(), f.display().to_string()]);
            }
        }
        Arch::Arm64 => a.extend(["-machine".into(), "virt".into()]),
    }
    match spec.accel {
        Accel::Kvm => a.extend(["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]),
        Accel::Tcg => a.extend([
            "-accel".into(),
            "tcg,thread=multi".into(),
            "-cpu".into(),
            // QEMU's own pointer-auth algorithm is much cheaper to emulate than QARMA.
            match spec.arch {
                Arch::X86_64 => "max".into(),
                Arch::Arm64 => "max,pauth-impdef=on".into(),
            },
        ]),
    }
    a.extend([
        "-smp".into(),
        smp_arg(spec),
        "-m".into(),
        format!("{}M", spec.memory_mib),
    ]);
    a.extend(numa_args(spec));
    a.extend([
        "-kernel".into(),
        spec.kernel.display().to_string(),
        "-initrd".into(),
        spec.initrd.display().to_string(),
        "-append".into(),
        kernel_cmdline(spec),
        // The serial console is a telnet socket (a BREAK from a client reaches the
        // guest's UART: sysrq without SSH). QEMU waits for kmatrix to connect, so not a
        // byte is lost; kmatrix writes console.log (bounded) and parses it as it arrives.
        "-chardev".into(),
        format!(
            "socket,id=con0,path={},server=on,wait=on,telnet=on",
            spec.console_socket.display(),
        ),
        "-serial".into(),
        "chardev:con0".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", spec.qmp_socket.display()),
        "-netdev".into(),
        format!(
            "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{}-:22",
            spec.ssh_port
        ),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
        // seccomp: no spawning, no obsolete calls, no resource control; set*uid only to
        // drop to `run_as` (without it, none at all).
        "-sandbox".into(),
        format!(
            "on,obsolete=deny,elevateprivileges={},spawn=deny,resourcecontrol=deny",
            if spec.run_as.is_some() {
                "allow"
            } else {
                "deny"
            }
        ),
    ]);
    if let Some((uid, gid)) = spec.run_as {
        a.extend(["-run-with".into(), format!("user={uid}:{gid}")]);
    }
    for (i, (tag, sock)) in spec.shares.iter().enumerate() {
        a.extend([
            "-chardev".into(),
            format!("socket,id=fs{i},path={}", sock.display()),
            "-device".into(),
            format!("vhost-user-fs-pci,queue-size=1024,chardev=fs{i},tag={tag}"),
        ]);
    }
    a.into_iter().map(OsString::from).collect()
}

/// The host user the guest's files belong to on the writable share: never root (a
/// guest-made setuid-root file would be a host root shell), so `nobody` when kmatrix runs
/// as root, else the invoking user.
pub fn share_owner() -> (u32, u32) {
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    if uid == 0 {
        (65534, 65534)
    } else {
        (uid, gid)
    }
}

/// virtiofsd's arguments for one share. The writable one carries data, never privilege:
/// no capability to make device nodes or file capabilities, every guest uid and gid
/// squashed to `owner` on the host.
pub fn virtiofsd_args(
    socket: &Path,
    dir: &Path,
    readonly: bool,
    owner: (u32, u32),
) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        format!("--socket-path={}", socket.display()).into(),
        format!("--shared-dir={}", dir.display()).into(),
        "--sandbox=namespace".into(),
    ];
    if readonly {
        // Nothing changes under a read-only share while the VM runs, and programs run
        // from it: with the guest's page cache (direct I/O made exec'd binaries
        // fault at random).
        a.extend(["--cache=always".into(), "--readonly".into()]);
    } else {
        // Results are read on the host while the guest may still write them.
        a.push("--cache=never".into());
        a.push("--modcaps=-mknod:-setfcap:-fsetid".into());
        a.push(format!("--translate-uid=squash-guest:0:{}:4294967295", owner.0).into());
        a.push(format!("--translate-gid=squash-guest:0:{}:4294967295", owner.1).into());
    }
    a
}

/// The VM's UNIX sockets, all in the cell's folder: QEMU's console and QMP, one per
/// virtiofsd share.
pub const SOCKETS: [&str; 4] = ["console.sock", "qmp.sock", "results.sock", "tests.sock"];

/// The longest path a UNIX socket takes (`sun_path` is 108 bytes with its NUL).
pub const SOCKET_PATH_MAX: usize = 107;

/// The first of the VM's sockets whose path in `dir` is too long to bind, with its length.
/// virtiofsd and QEMU would only fail at boot, after the build.
pub fn socket_too_long(dir: &Path) -> Option<(PathBuf, usize)> {
    SOCKETS
        .iter()
        .map(|name| dir.join(name))
        .map(|p| {
            let n = p.as_os_str().len();
            (p, n)
        })
        .find(|(_, n)| *n > SOCKET_PATH_MAX)
}

/// Where virtiofsd lives: PATH, cargo's bin folder, or distribution paths.
pub fn find_virtiofsd() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("virtiofsd"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME").or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo").into_os_string())
    }) {
        candidates.push(PathBuf::from(home).join("bin/virtiofsd"));
    }
    candidates.push("/usr/libexec/virtiofsd".into());
    candidates.push("/usr/lib/qemu/virtiofsd".into());
    candidates.into_iter().find(|p| p.is_file())
}

/// Pick the accelerator to try first. KVM only for a same-arch guest with a usable
/// /dev/kvm; whether guests really run under it is found out at boot.
pub fn initial_accel(choice: AccelChoice, arch: Arch) -> Accel {
    let same_arch = match arch {
        Arch::X86_64 => cfg!(target_arch = "x86_64"),
        Arch::Arm64 => cfg!(target_arch = "aarch64"),
    };
    match choice {
        AccelChoice::Tcg => Accel::Tcg,
        AccelChoice::Kvm => Accel::Kvm,
        AccelChoice::Auto => {
            let kvm_opens = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_ok();
            if same_arch && kvm_opens {
                Accel::Kvm
            } else {
                Accel::Tcg
            }
        }
    }
}

/// Signs in QEMU's own output that KVM cannot run this guest here.
pub fn kvm_failure(qemu_output: &str) -> Option<String> {
    const SIGNS: &[&str] = &[
        "KVM internal error",
        "failed to set MSR",
        "kvm run failed",
        "emulation failure",
        "Could not access KVM kernel module",
        "failed to initialize kvm",
        "KVM_CREATE_VM",
    ];
    qemu_output
        .lines()
        .find(|l| SIGNS.iter().any(|s| l.contains(s)))
        .map(|l| l.trim().to_string())
}

/// A free TCP port on 127.0.0.1 for the SSH forward. Another process can take it
/// before QEMU binds it: [`port_taken`] recognises that, and the boot is retried with
/// another port (never judged as a KVM or boot failure).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The port for a boot's SSH forward: `KMATRIX_SSH_PORT` once (the drills use it to hand
/// QEMU a port they hold), then free ones.
pub fn ssh_port() -> std::io::Result<u16> {
    static ASKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !ASKED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        if let Some(p) = std::env::var("KMATRIX_SSH_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
        {
            return Ok(p);
        }
    }
    free_port()
}

/// QEMU's words when the SSH forward's port was taken between choosing and binding it.
pub fn port_taken(qemu_output: &str) -> bool {
    qemu_output.contains("Could not set up host forwarding rule")
}

/// Start virtiofsd for a share and wait for its socket, watching the process.
pub async fn start_virtiofsd(
    bin: &Path,
    tag: &str,
    socket: &Path,
    dir: &Path,
    readonly: bool,
    log: &Path,
) -> Result<Proc, VmError> {
    let _ = std::fs::remove_file(socket);
    let owner = share_owner();
    if !readonly {
        // The squashed guest writes as `owner`: the folder must be its.
        let _ = nix::unistd::chown(
            dir,
            Some(nix::unistd::Uid::from_raw(owner.0)),
            Some(nix::unistd::Gid::from_raw(owner.1)),
        );
    }
    let spec = ProcSpec::new(bin)
        .args(virtiofsd_args(socket, dir, readonly, owner))
        .log(log);
    let mut p = proc::spawn(&spec).map_err(|source| VmError::Virtiofsd {
        tag: tag.to_string(),
        source,
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if p.try_wait().is_some() || Instant::now() > deadline {
            p.terminate(Duration::from_millis(500)).await;
            return Err(VmError::VirtiofsdDied {
                tag: tag.to_string(),
                tail: p.tail(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(p)
}

/// Send QMP commands (after the capabilities handshake); returns each reply. QEMU may
/// close the socket on `quit` before answering, which is not an error.
pub async fn qmp(
    socket: &Path,
    commands: &[serde_json::Value],
    timeout: Duration,
) -> std::io::Result<Vec<serde_json::Value>> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let work = async {
        let stream = tokio::net::UnixStream::connect(socket).await?;
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        // Greeting, then negotiate capabilities.
        lines.next_line().await?;
        let mut replies = Vec::new();
        let handshake = serde_json::json!({"execute": "qmp_capabilities"});
        for cmd in std::iter::once(&handshake).chain(commands) {
            w.write_all(format!("{cmd}\n").as_bytes()).await?;
            // Skip asynchronous events until the command's own reply.
            loop {
                match lines.next_line().await? {
                    None => return Ok(replies),
                    Some(l) => {
                        let v: serde_json::Value =
                            serde_json::from_str(&l).unwrap_or(serde_json::Value::Null);
                        if v.get("event").is_none() {
                            if !std::ptr::eq(cmd, &handshake) {
                                replies.push(v);
                            }
                            break;
                        }
                    }
                }
            }
        }
        Ok(replies)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "QMP did not answer"))?
}

/// What the first seconds of a KVM boot showed.
#[derive(Debug, PartialEq, Eq)]
pub enum EarlyBoot {
    /// The kernel reached init: KVM runs guests here.
    ReachedInit,
    /// QEMU reported a KVM failure, exited, or the console stayed silent: why.
    KvmFailed(String),
    /// QEMU could not bind the SSH forward (another process took the port): start
    /// again; this says nothing about KVM.
    PortTaken,
}

/// Early-boot check for KVM: the kernel reached init (`Run /init as init process`), or
/// QEMU reported a KVM failure, exited, or the guest stayed silent for `silent_limit`
/// (or printed but did not reach init within three times that). Printing is not enough:
/// on some hosts a guest prints for a while and then stops with "KVM internal error".
pub async fn early_boot(
    vm: &mut Vm,
    console: &mut console::Console,
    silent_limit: Duration,
) -> EarlyBoot {
    let start = Instant::now();
    loop {
        if let Some(reason) = kvm_failure(&vm.qemu.tail()) {
            return EarlyBoot::KvmFailed(reason);
        }
        if let Some(st) = vm.qemu.try_wait() {
            let _ = vm.qemu.wait().await;
            if port_taken(&vm.qemu.tail()) {
                return EarlyBoot::PortTaken;
            }
            return EarlyBoot::KvmFailed(format!(
                "QEMU exited ({st}) before the kernel reached init: {}",
                vm.qemu.tail()
            ));
        }
        if console.with(|w| w.reached_init || w.sshd_up) {
            return EarlyBoot::ReachedInit;
        }
        let printed = console.received() > 0;
        if !printed && start.elapsed() > silent_limit {
            return EarlyBoot::KvmFailed(format!(
                "guest printed nothing in {}s",
                silent_limit.as_secs()
            ));
        }
        if printed && start.elapsed() > silent_limit * 3 {
            return EarlyBoot::KvmFailed(format!(
                "the kernel did not reach init within {}s",
                (silent_limit * 3).as_secs()
            ));
        }
        console.changed(Duration::from_millis(100)).await;
    }
}

/// A running QEMU.
pub struct Vm {
    pub spec: VmSpec,
    pub qemu: Proc,
    pub started: Instant,
    pub cmdline: String,
}

impl Vm {
    pub fn start(spec: VmSpec, log: &Path) -> Result<Vm, VmError> {
        let ps = ProcSpec::new(&spec.qemu).args(qemu_args(&spec)).log(log);
        let cmdline = ps.display();
        let _ = std::fs::remove_file(&spec.console_socket);
        let qemu = proc::spawn(&ps).map_err(VmError::Qemu)?;
        Ok(Vm {
            spec,
            qemu,
            started: Instant::now(),
            cmdline,
        })
    }

    /// Stop QEMU: wait briefly for a guest-initiated exit, then QMP `quit`, then SIGTERM,
    /// then SIGKILL.
    pub async fn stop(&mut self, wait: Duration) {
        if tokio::time::timeout(wait, self.qemu.wait()).await.is_ok() {
            return;
        }
        let quit = serde_json::json!({"execute": "quit"});
        if qmp(&self.spec.qmp_socket, &[quit], Duration::from_secs(2))
            .await
            .is_ok()
            && tokio::time::timeout(Duration::from_secs(3), self.qemu.wait())
                .await
                .is_ok()
        {
            return;
        }
        self.qemu.terminate(Duration::from_secs(3)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(arch: Arch, accel: Accel) -> VmSpec {
        VmSpec {
            qemu: "qemu".into(),
            arch,
            accel,
            kernel: "/k/image".into(),
            initrd: "/k/initrd".into(),
            memory_mib: 1024,
            cpus: 2,
            numa_nodes: 1,
            console_socket: "/r/console.sock".into(),
            qmp_socket: "/r/qmp.sock".into(),
            ssh_port: 2222,
            shares: vec![("results".into(), "/r/results.sock".into())],
            hung_task_secs: 10,
            run_as: Some((65534, 65534)),
            firmware: None,
        }
    }

    /// QEMU under seccomp, dropping to nobody once set up (as root), and never allowed
    /// to raise privileges when it has none to drop.

    #[test]
    fn a_cell_folder_too_long_for_the_vms_sockets_is_named_before_boot() {
        assert_eq!(
            socket_too_long(Path::new("/tmp/runs/20261207-070510/x86_64/pvl-on/v3")),
            None
        );
        let long = format!("/tmp/{}/x86_64/pvl-on/v3", "r".repeat(80));
        let (path, n) = socket_too_long(Path::new(&long)).unwrap();
        assert_eq!(path, Path::new(&long).join("console.sock"));
        assert_eq!(n, long.len() + "/console.sock".len());
        assert!(n > SOCKET_PATH_MAX);
        // 107 bytes fit, 108 do not.
        let dir = "/".to_string() + &"d".repeat(SOCKET_PATH_MAX - 1 - "/results.sock".len());
        assert_eq!(socket_too_long(Path::new(&dir)), None);
        assert!(socket_too_long(Path::new(&(dir + "d"))).is_some());
    }
    #[test]
    fn qemu_runs_sandboxed_and_unprivileged() {
        let mut s = spec(Arch::X86_64, Accel::Tcg);
        let a = joined(&s);
        assert!(a.contains(
            "-sandbox on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny"
        ));
        assert!(a.contains("-run-with user=65534:65534"));
        s.run_as = None;
        let a = joined(&s);
        assert!(a.contains("elevateprivileges=deny"));
        assert!(!a.contains("-run-with"));
    }

    fn joined(s: &VmSpec) -> String {
        qemu_args(s)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn qboot_is_taken_from_the_qemu_installation_only() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin/qemu-system-x86_64");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, "").unwrap();
        assert_eq!(x86_firmware(&bin), None, "no qboot.rom beside it");
        let rom = d.path().join("share/qemu/qboot.rom");
        std::fs::create_dir_all(rom.parent().unwrap()).unwrap();
        std::fs::write(&rom, "").unwrap();
        assert_eq!(x86_firmware(&bin), Some(rom.canonicalize().unwrap()));
        assert_eq!(x86_firmware(&d.path().join("bin/absent")), None);
    }

    #[test]
    fn x86_tcg_args() {
        let a = joined(&spec(Arch::X86_64, Accel::Tcg));
        assert!(a.contains("-machine q35"), "{a}");
        assert!(
            !a.contains("-bios"),
            "QEMU's default firmware unless one is found: {a}"
        );
        let mut q = spec(Arch::X86_64, Accel::Tcg);
        q.firmware = Some("/usr/share/qemu/qboot.rom".into());
        assert!(
            joined(&q).contains("-machine q35 -bios /usr/share/qemu/qboot.rom"),
            "{}",
            joined(&q)
        );
        assert!(a.contains("-accel tcg,thread=multi -cpu max"), "{a}");
        assert!(a.contains("-append console=ttyS0 panic=-1"), "{a}");
        assert!(
            a.contains("watchdog_thresh=20"),
            "soft lockups scaled for TCG: {a}"
        );
        let kvm = joined(&spec(Arch::X86_64, Accel::Kvm));
        assert!(!kvm.contains("watchdog_thresh"), "{kvm}");
        // The boot-time trims are x86's own parameters.
        assert!(
            a.contains(" tsc=reliable acpi_pm_good 8250.nr_uarts=1"),
            "{a}"
        );
        let arm = joined(&spec(Arch::Arm64, Accel::Tcg));
        assert!(!arm.contains("tsc=") && !arm.contains("8250"), "{arm}");
        assert!(a.contains("-no-reboot"));
        assert!(a.contains("memory-backend-memfd,id=mem,size=1024M,share=on"));
        assert!(a.contains(
            "-chardev socket,id=con0,path=/r/console.sock,server=on,wait=on,telnet=on -serial chardev:con0"
        ));
        assert!(a.contains("vhost-user-fs-pci,queue-size=1024,chardev=fs0,tag=results"));
    }

    #[test]
    fn numa_nodes_split_memory_and_deal_cpus() {
        let one = joined(&spec(Arch::X86_64, Accel::Tcg));
        assert!(one.contains("-numa node,memdev=mem "), "{one}");
        assert_eq!(one.matches("-numa ").count(), 1, "{one}");
        assert!(one.contains("-smp 2 "), "{one}");
        let mut s = spec(Arch::Arm64, Accel::Tcg);
        s.numa_nodes = 2;
        s.cpus = 4;
        s.memory_mib = 1025;
        let a = joined(&s);
        assert!(
            a.contains("-object memory-backend-memfd,id=mem0,size=512M,share=on -numa node,nodeid=0,memdev=mem0,cpus=0-1 "),
            "{a}"
        );
        assert!(
            a.contains("-object memory-backend-memfd,id=mem1,size=513M,share=on -numa node,nodeid=1,memdev=mem1,cpus=2-3 "),
            "{a}"
        );
        assert!(a.contains("-smp 4,sockets=2,cores=2,threads=1 "), "{a}");
        assert!(!a.contains("id=mem,"), "{a}");
        s.cpus = 2;
        let a = joined(&s);
        assert!(
            a.contains("memdev=mem0,cpus=0 ") && a.contains("memdev=mem1,cpus=1 "),
            "{a}"
        );
    }

    #[test]
    fn network_is_restricted_and_forward_binds_loopback_only() {
        let a = joined(&spec(Arch::Arm64, Accel::Tcg));
        assert!(
            a.contains("-netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22"),
            "{a}"
        );
        assert!(a.contains("-machine virt"));
        assert!(a.contains("console=ttyAMA0"));
    }

    #[test]
    fn a_stolen_ssh_port_is_recognised() {
        assert!(port_taken(
            "qemu-system-x86_64: -netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22: Could not set up host forwarding rule 'tcp:127.0.0.1:2222-:22'"
        ));
        assert!(!port_taken("qemu-system-x86_64: terminating on signal 15"));
    }

    #[test]
    fn kvm_args_and_failure_signs() {
        let a = joined(&spec(Arch::X86_64, Accel::Kvm));
        assert!(a.contains("-accel kvm -cpu host"));
        assert!(kvm_failure("KVM internal error. Suberror: 1\nemulation failure").is_some());
        assert!(kvm_failure("qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0").is_some());
        assert!(kvm_failure("qemu-system-x86_64: terminating on signal 15").is_none());
    }

    #[test]
    fn auto_never_picks_kvm_for_a_foreign_arch() {
        assert_eq!(initial_accel(AccelChoice::Auto, Arch::Arm64), Accel::Tcg);
        assert_eq!(initial_accel(AccelChoice::Tcg, Arch::X86_64), Accel::Tcg);
    }

    #[tokio::test]
    async fn qmp_negotiates_skips_events_and_returns_replies() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("qmp.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut lines = BufReader::new(r).lines();
            w.write_all(b"{\"QMP\": {\"version\": {}}}\n")
                .await
                .unwrap();
            let mut seen = Vec::new();
            while let Ok(Some(l)) = lines.next_line().await {
                seen.push(l.clone());
                if l.contains("quit") {
                    w.write_all(b"{\"event\": \"SHUTDOWN\"}\n{\"return\": {}}\n")
                        .await
                        .unwrap();
                    break;
                }
                w.write_all(b"{\"return\": {}}\n").await.unwrap();
            }
            seen
        });
        let replies = qmp(
            &sock,
            &[serde_json::json!({"execute": "quit"})],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(replies, [serde_json::json!({"return": {}})]);
        let seen = server.await.unwrap();
        assert!(seen[0].contains("qmp_capabilities"), "{seen:?}");
        assert!(seen[1].contains("quit"));
    }

    #[test]
    fn virtiofsd_args_readonly() {
        let a = virtiofsd_args(Path::new("/s"), Path::new("/d"), true, (65534, 65534));
        assert!(a.contains(&OsString::from("--readonly")));
        assert!(a.contains(&OsString::from("--sandbox=namespace")));
        assert!(a.contains(&OsString::from("--cache=always")));
        let rw = virtiofsd_args(Path::new("/s"), Path::new("/d"), false, (65534, 65534));
        assert!(rw.contains(&OsString::from("--cache=never")));
        assert!(!rw.contains(&OsString::from("--readonly")));
        // The writable share carries no privilege.
        assert!(rw.contains(&OsString::from("--modcaps=-mknod:-setfcap:-fsetid")));
        assert!(rw.contains(&OsString::from(
            "--translate-uid=squash-guest:0:65534:4294967295"
        )));
        assert!(rw.contains(&OsString::from(
            "--translate-gid=squash-guest:0:65534:4294967295"
        )));
    }
}
