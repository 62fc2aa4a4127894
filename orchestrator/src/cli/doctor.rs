//! `kmatrix doctor`: checks every tool and host fact kmatrix relies on, one line each
//! (`ok`, `warn` or `FAIL`, what was found, and for anything not ok the package or
//! command that fixes it), so a user learns up front what the host lacks and why KVM
//! is or is not used. Facts are gathered here; each decision is a pure function of
//! them (unit-tested below). Exit 0 when ready (warnings allowed), 1 otherwise.

use crate::host::cache::Cache;
use crate::host::kvm_verdict::{self, KvmVerdict};
use crate::host::proc::{self, ProcSpec};
use crate::record::plan::{AccelChoice, SourceSpec};
use crate::record::plan::{Arch, Plan, VmSettings};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Free space in the cache below which a run is likely to fill the disk: the unpacked
/// tree, an object folder per cell and the kernels of a 12-cell matrix.
pub const DISK_WARN_BYTES: u64 = 20 << 30;
/// Below this not even one kernel builds.
pub const DISK_FAIL_BYTES: u64 = 5 << 30;
/// What one `make` job of a kernel build takes at its peak (the final link is larger,
/// but runs alone).
pub const BUILD_MIB_PER_JOB: u64 = 512;
/// How long the KVM probe gives a kernel to print, as the engine does before it falls
/// back to TCG.
pub const KVM_SILENT_LIMIT: Duration = Duration::from_secs(20);
/// No version query or apt look-up may hold doctor up longer than this.
const COMMAND_DEADLINE: Duration = Duration::from_secs(15);

const QEMU_FIX_X86: &str =
    "apt-get install -t bookworm-backports qemu-system-x86 (scripts/setup-host adds bookworm-backports)";
const QEMU_FIX_ARM: &str =
    "apt-get install -t bookworm-backports qemu-system-arm (scripts/setup-host adds bookworm-backports)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub status: Status,
    pub name: String,
    pub found: String,
    /// The package to install or the command to run; set whenever status is not ok.
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: impl Into<String>, found: impl Into<String>) -> Check {
        Check {
            status: Status::Ok,
            name: name.into(),
            found: found.into(),
            fix: None,
        }
    }
    pub fn warn(
        name: impl Into<String>,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Warn,
            name: name.into(),
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
    pub fn fail(
        name: impl Into<String>,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Fail,
            name: name.into(),
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
    /// The printed line: status, name, what was found, and the fix.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{:<4}  {:<16} {}",
            self.status.label(),
            self.name,
            self.found
        );
        if let Some(f) = &self.fix {
            let _ = write!(s, "; fix: {f}");
        }
        s
    }
}

/// The last line and the exit code: 0 when nothing failed.
pub fn summary(checks: &[Check]) -> (i32, String) {
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let (fails, warns) = (count(Status::Fail), count(Status::Warn));
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    if fails > 0 {
        (
            crate::record::verdict::exit::FINDINGS,
            format!(
                "kmatrix doctor: not ready: {} failed, {}",
                plural(fails, "check"),
                plural(warns, "warning")
            ),
        )
    } else {
        (
            crate::record::verdict::exit::PASS,
            format!("kmatrix doctor: ready ({})", plural(warns, "warning")),
        )
    }
}

// ---------------------------------------------------------------------------------
// Decisions: pure functions from facts to a line.
// ---------------------------------------------------------------------------------

/// What became of the spec.
#[derive(Debug, Clone)]
pub enum SpecFacts {
    Loaded {
        path: PathBuf,
        cells: usize,
        arches: Vec<Arch>,
        tests: usize,
    },
    /// The default `kmatrix.yaml` is not in this folder: host checks only.
    Missing {
        path: PathBuf,
    },
    Invalid {
        path: PathBuf,
        error: String,
    },
}

pub fn check_spec(f: &SpecFacts) -> Check {
    match f {
        SpecFacts::Loaded {
            path,
            cells,
            arches,
            tests,
        } => Check::ok(
            "spec",
            format!(
                "{}: {cells} cell(s) on {}, {tests} test(s)",
                path.display(),
                arch_list(arches)
            ),
        ),
        SpecFacts::Missing { path } => Check::warn(
            "spec",
            format!(
                "no {} here: checked the host for x86_64 and arm64 with default VM settings",
                path.display()
            ),
            "run doctor in the project folder or pass --spec FILE",
        ),
        SpecFacts::Invalid { path, error } => Check::fail(
            "spec",
            // Spec errors name their file already.
            if error.contains(&path.display().to_string()) {
                error.clone()
            } else {
                format!("{}: {error}", path.display())
            },
            "correct the spec (`kmatrix plan` shows the same error)",
        ),
    }
}

/// `/etc/os-release` fields that matter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    pub pretty: String,
}

pub fn parse_os_release(text: &str) -> OsRelease {
    let mut o = OsRelease::default();
    for l in text.lines() {
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim() {
            "ID" => o.id = v,
            "VERSION_ID" => o.version_id = v,
            "PRETTY_NAME" => o.pretty = v,
            _ => {}
        }
    }
    o
}

pub fn check_host(os: &OsRelease, machine: &str, kernel: &str) -> Check {
    let found = format!(
        "{}, {machine}, kernel {kernel}",
        if os.pretty.is_empty() {
            "unknown OS"
        } else {
            &os.pretty
        }
    );
    if machine != "x86_64" {
        return Check::warn(
            "host",
            found,
            "use an x86_64 host: kmatrix cross-compiles arm64 kernels from x86_64 and is tested there",
        );
    }
    if os.id != "debian" || os.version_id != "12" {
        return Check::warn(
            "host",
            found,
            "scripts/setup-host supports Debian 12; elsewhere install the packages named below by hand",
        );
    }
    Check::ok("host", found)
}

/// The series' build steps in bubblewrap: without it they run with the host's privilege.
pub fn check_sandbox(status: Result<&Path, &str>) -> Check {
    match status {
        Ok(bwrap) => Check::ok(
            "build sandbox",
            format!("{} (no network, only their own folders)", bwrap.display()),
        ),
        Err(why) => Check::warn(
            "build sandbox",
            format!("none: {why}; a series' Makefiles would run with kmatrix's privileges"),
            "install bubblewrap (`apt-get install bubblewrap`; scripts/setup-host does), and allow user namespaces",
        ),
    }
}

pub fn check_cores(cores: usize, jobs: usize) -> Check {
    let found = format!("{cores} core(s); builds run make -j{jobs}");
    if cores < 2 {
        Check::warn(
            "cores",
            format!("{found}: a kernel build takes 10 minutes or more"),
            "a machine with 2 or more cores (builds and TCG guests use every core)",
        )
    } else {
        Check::ok("cores", found)
    }
}

/// `MemTotal` and `MemAvailable` from `/proc/meminfo`, in MiB.
pub fn parse_meminfo(text: &str) -> (Option<u64>, Option<u64>) {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib / 1024)
        })
    };
    (field("MemTotal"), field("MemAvailable"))
}

/// Memory for one VM of the spec plus a build running beside it.
pub fn memory_needed_mib(vm_mib: u64, jobs: usize) -> u64 {
    vm_mib + BUILD_MIB_PER_JOB * jobs as u64
}

pub fn check_memory(
    total_mib: Option<u64>,
    available_mib: Option<u64>,
    vm_mib: u64,
    jobs: usize,
) -> Check {
    let need = memory_needed_mib(vm_mib, jobs);
    let needs = format!(
        "a run needs about {} (one {vm_mib} MiB VM + make -j{jobs})",
        gib(need << 20)
    );
    let (Some(total), Some(avail)) = (total_mib, available_mib) else {
        return Check::warn(
            "memory",
            format!("cannot read /proc/meminfo; {needs}"),
            "check `free -m` by hand",
        );
    };
    let found = format!(
        "{} total, {} available; {needs}",
        gib(total << 20),
        gib(avail << 20)
    );
    if total < need {
        Check::fail(
            "memory",
            found,
            "lower `vm.memory` or `jobs` in the spec, or use a machine with more memory",
        )
    } else if avail < need {
        Check::warn(
            "memory",
            found,
            "stop other programs (or lower `vm.memory` / `jobs` in the spec)",
        )
    } else {
        Check::ok("memory", found)
    }
}

pub fn check_disk(dir: &Path, free_bytes: Option<u64>, writable: bool) -> Check {
    let fix_space = format!(
        "free space under {}, or set KMATRIX_CACHE to a folder on a bigger disk",
        dir.display()
    );
    let Some(free) = free_bytes else {
        return Check::fail(
            "disk",
            format!("cannot read the free space of {}", dir.display()),
            "set KMATRIX_CACHE to an existing, writable folder",
        );
    };
    let found = format!("{} free in the cache ({})", gib(free), dir.display());
    if !writable {
        return Check::fail(
            "disk",
            format!("{found}, but it is not writable"),
            "set KMATRIX_CACHE to a writable folder (or run as the folder's owner)",
        );
    }
    if free < DISK_FAIL_BYTES {
        Check::fail(
            "disk",
            format!("{found}: not enough for one kernel"),
            fix_space,
        )
    } else if free < DISK_WARN_BYTES {
        Check::warn(
            "disk",
            format!(
                "{found}: under {} a full matrix can fill it",
                gib(DISK_WARN_BYTES)
            ),
            fix_space,
        )
    } else {
        Check::ok("disk", found)
    }
}

/// Is `kmatrix` itself on PATH, so README's commands work as written?
pub fn check_kmatrix_on_path(found: Option<&Path>) -> Check {
    match found {
        Some(p) => Check::ok("kmatrix", format!("on PATH: {}", p.display())),
        None => Check::warn(
            "kmatrix",
            "not on PATH (README's `kmatrix ...` commands need it)",
            "bash scripts/setup-host (or `cargo install --path orchestrator --locked`)",
        ),
    }
}

/// "10.0.2" from "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)".
pub fn qemu_version(first_line: &str) -> Option<String> {
    let rest = first_line.split("version").nth(1)?;
    let v = rest.split_whitespace().next()?;
    v.chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit())
        .then(|| v.to_string())
}

/// Firmware files a guest of this arch needs from QEMU's data folders: SeaBIOS and the
/// Linux boot ROM on x86 (`-kernel` on q35), the virtio-net option ROM everywhere.
pub fn firmware(arch: Arch) -> &'static [(&'static str, &'static str)] {
    match arch {
        Arch::X86_64 => &[
            ("bios-256k.bin", "seabios"),
            ("linuxboot_dma.bin", "qemu-system-data"),
            ("efi-virtio.rom", "ipxe-qemu"),
        ],
        Arch::Arm64 => &[("efi-virtio.rom", "ipxe-qemu")],
    }
}

/// QEMU for one guest arch: binary, version and the firmware it loads.
pub fn check_qemu(
    arch: Arch,
    binary: Option<&Path>,
    version_line: Option<&str>,
    missing_firmware: &[&str],
) -> Check {
    let name = format!("qemu {}", arch.name());
    let fix = match arch {
        Arch::X86_64 => QEMU_FIX_X86,
        Arch::Arm64 => QEMU_FIX_ARM,
    };
    let Some(bin) = binary else {
        return Check::fail(name, format!("{} not on PATH", arch.qemu_binary()), fix);
    };
    let Some(version) = version_line.and_then(qemu_version) else {
        return Check::fail(
            name,
            format!(
                "{} does not answer --version: {}",
                bin.display(),
                version_line.unwrap_or("no output")
            ),
            format!("reinstall it: {fix}"),
        );
    };
    if !missing_firmware.is_empty() {
        let pkgs: Vec<&str> = firmware(arch)
            .iter()
            .filter(|(f, _)| missing_firmware.contains(f))
            .map(|(_, p)| *p)
            .collect();
        return Check::fail(
            name,
            format!(
                "{} {version}, but its firmware is missing: {}",
                arch.qemu_binary(),
                missing_firmware.join(", ")
            ),
            format!(
                "apt-get install -t bookworm-backports {}",
                dedup(&pkgs).join(" ")
            ),
        );
    }
    Check::ok(name, format!("{} {version}", arch.qemu_binary()))
}

/// Something kmatrix runs or reads, and the Debian package that ships it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Need {
    /// A command looked up on PATH, or an absolute path to a file (a header, libc.a).
    pub what: &'static str,
    pub package: &'static str,
}

impl Need {
    const fn new(what: &'static str, package: &'static str) -> Need {
        Need { what, package }
    }
}

/// The kernel's build dependencies (besides the compiler).
pub const KERNEL_BUILD: &[Need] = &[
    Need::new("make", "make"),
    Need::new("flex", "flex"),
    Need::new("bison", "bison"),
    Need::new("bc", "bc"),
    Need::new("perl", "perl"),
    Need::new("lz4", "lz4"),
    Need::new("xz", "xz-utils"),
    Need::new("tar", "tar"),
    Need::new("patch", "patch"),
    Need::new("cpio", "cpio"),
    Need::new("ld", "binutils"),
    Need::new("nm", "binutils"),
    Need::new("addr2line", "binutils"),
    Need::new("/usr/include/gelf.h", "libelf-dev"),
    Need::new("/usr/include/openssl/opensslv.h", "libssl-dev"),
];

/// What building guest images takes: Debian's download and unpack tools, the keys.
pub const IMAGE_TOOLS: &[Need] = &[
    Need::new("apt-get", "apt"),
    Need::new("apt-cache", "apt"),
    Need::new("dpkg-deb", "dpkg"),
    Need::new("ssh-keygen", "openssh-client"),
    Need::new("dropbearkey", "dropbear-bin"),
];

/// The compiler for an arch's kernel and guest programs (static, so with a static libc
/// and the kernel's UAPI headers of that arch), and its binutils.
pub fn toolchain(arch: Arch) -> &'static [Need] {
    const X86_64: &[Need] = &[
        Need::new("gcc", "gcc"),
        Need::new("/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"),
        Need::new("/usr/include/linux/userfaultfd.h", "linux-libc-dev"),
    ];
    const ARM64: &[Need] = &[
        Need::new("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
        Need::new("aarch64-linux-gnu-ld", "binutils-aarch64-linux-gnu"),
        Need::new("aarch64-linux-gnu-nm", "binutils-aarch64-linux-gnu"),
        Need::new("/usr/aarch64-linux-gnu/lib/libc.a", "libc6-dev-arm64-cross"),
        Need::new(
            "/usr/aarch64-linux-gnu/include/linux/userfaultfd.h",
            "linux-libc-dev-arm64-cross",
        ),
    ];
    match arch {
        Arch::X86_64 => X86_64,
        Arch::Arm64 => ARM64,
    }
}

fn need_name(n: &Need) -> &str {
    n.what.rsplit('/').next().unwrap_or(n.what)
}

/// A group of needs: all found, or the missing ones and one `apt-get install` for them.
pub fn check_needs(name: &str, needs: &[Need], missing: &[Need]) -> Check {
    if missing.is_empty() {
        let mut names: Vec<&str> = needs.iter().map(need_name).collect();
        names.dedup();
        return Check::ok(name, names.join(", "));
    }
    let what: Vec<String> = missing
        .iter()
        .map(|n| format!("{} ({})", need_name(n), n.package))
        .collect();
    let pkgs: Vec<&str> = missing.iter().map(|n| n.package).collect();
    Check::fail(
        name,
        format!("missing: {}", what.join(", ")),
        format!("apt-get install {}", dedup(&pkgs).join(" ")),
    )
}

/// The compiler line of one arch: `Arch::cc()` with its version, and what it links with.
pub fn check_compiler(arch: Arch, version_line: Option<&str>, missing: &[Need]) -> Check {
    let name = format!("compiler {}", arch.name());
    if !missing.is_empty() {
        let mut c = check_needs(&name, toolchain(arch), missing);
        if let Some(v) = version_line {
            c.found = format!("{v}; {}", c.found);
        }
        return c;
    }
    Check::ok(
        name,
        format!(
            "{}, static libc and UAPI headers",
            version_line.unwrap_or(arch.cc())
        ),
    )
}

pub fn check_ccache(found: Option<&Path>) -> Check {
    match found {
        Some(p) => Check::ok(
            "ccache",
            format!("{}: kernels compile through it", p.display()),
        ),
        None => Check::warn(
            "ccache",
            "not installed: a changed kernel recompiles every object",
            "apt-get install ccache",
        ),
    }
}

pub fn check_virtiofsd(found: Option<&Path>, version_line: Option<&str>) -> Check {
    match found {
        Some(p) => Check::ok(
            "virtiofsd",
            format!(
                "{}{}",
                p.display(),
                version_line.map(|v| format!(" ({v})")).unwrap_or_default()
            ),
        ),
        None => Check::fail(
            "virtiofsd",
            "not found on PATH, in cargo's bin folder or /usr/libexec",
            "apt-get install libseccomp-dev libcap-ng-dev && cargo install virtiofsd --locked",
        ),
    }
}

/// `dpkg --add-architecture` for guests of a foreign arch (their userland is
/// downloaded from apt as `pkg:ARCH`).
pub fn check_foreign_arch(arch: Arch, enabled: bool) -> Check {
    let name = format!("apt {}", arch.deb_arch());
    if enabled {
        Check::ok(
            name,
            format!("dpkg architecture {} enabled", arch.deb_arch()),
        )
    } else {
        Check::fail(
            name,
            format!(
                "dpkg architecture {} is not enabled: the {} guest's packages cannot be downloaded",
                arch.deb_arch(),
                arch.name()
            ),
            format!(
                "dpkg --add-architecture {} && apt-get update",
                arch.deb_arch()
            ),
        )
    }
}

/// Candidate versions from `apt-cache policy A B ...`, by package name without `:arch`.
/// A package apt does not know is absent from the map; one it knows without a
/// candidate maps to None.
pub fn parse_apt_policy(text: &str) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for l in text.lines() {
        if !l.starts_with(' ') && l.ends_with(':') {
            // "dropbear-bin:arm64:" or "busybox-static:" (native arch).
            let name = l.trim_end_matches(':');
            let name = name.split(':').next().unwrap_or(name).to_string();
            out.insert(name.clone(), None);
            current = Some(name);
        } else if let (Some(name), Some(v)) = (&current, l.trim().strip_prefix("Candidate:")) {
            let v = v.trim();
            if v != "(none)" {
                out.insert(name.clone(), Some(v.to_string()));
            }
        }
    }
    out
}

/// The packages of a guest image: cached already, or downloadable from apt.
pub fn check_guest_packages(
    arch: Arch,
    cached: Option<&Path>,
    missing: Option<&[String]>,
) -> Check {
    let name = format!("guest {}", arch.name());
    if let Some(dir) = cached {
        return Check::ok(name, format!("guest userland cached in {}", dir.display()));
    }
    match missing {
        None => Check::fail(
            name,
            "apt-cache cannot be run: guest packages come from apt",
            "apt-get install apt (Debian hosts only)",
        ),
        Some([]) => Check::ok(
            name,
            format!(
                "apt can download {} for {}",
                crate::prepare::image::PACKAGES.join(", "),
                arch.deb_arch()
            ),
        ),
        Some(m) => Check::fail(
            name,
            format!(
                "apt has no candidate for {}",
                m.iter()
                    .map(|p| format!("{p}:{}", arch.deb_arch()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            match arch {
                Arch::X86_64 => "apt-get update".to_string(),
                Arch::Arm64 => "dpkg --add-architecture arm64 && apt-get update".to_string(),
            },
        ),
    }
}

/// Where the kernel source comes from, and whether it can be had.
#[derive(Debug, Clone)]
pub enum SourceFacts {
    /// The package's .deb is in the cache already.
    DebCached {
        package: String,
        file: PathBuf,
    },
    /// apt's candidate for the package (None: apt knows no version of it).
    DebApt {
        package: String,
        candidate: Option<String>,
    },
    Path {
        path: PathBuf,
    },
    Tarball {
        path: PathBuf,
        exists: bool,
    },
    Git {
        repo: String,
        rev: String,
        git: Option<String>,
    },
}

pub fn check_source(f: &SourceFacts) -> Check {
    match f {
        SourceFacts::DebCached { package, file } => {
            Check::ok("source", format!("{package}: cached {}", file.display()))
        }
        SourceFacts::DebApt {
            package,
            candidate: Some(v),
        } => Check::ok(
            "source",
            format!("{package}: apt can download {v} (once, into the cache)"),
        ),
        SourceFacts::DebApt {
            package,
            candidate: None,
        } => Check::fail(
            "source",
            format!("{package}: apt has no candidate for it"),
            "bash scripts/setup-host (adds trixie-backports for linux-source-7.3), then apt-get update",
        ),
        SourceFacts::Path { path } => Check::ok("source", format!("kernel tree {}", path.display())),
        SourceFacts::Tarball { path, exists: true } => {
            Check::ok("source", format!("tarball {}", path.display()))
        }
        SourceFacts::Tarball { path, exists: false } => Check::fail(
            "source",
            format!("tarball {} does not exist", path.display()),
            "download it there or change `source.tarball` in the spec",
        ),
        SourceFacts::Git {
            repo,
            rev,
            git: Some(v),
        } => Check::ok("source", format!("{repo} at {rev} ({v})")),
        SourceFacts::Git { repo, git: None, .. } => Check::fail(
            "source",
            format!("{repo} is a git source but git is not installed"),
            "apt-get install git",
        ),
    }
}

/// `/dev/kvm` as kmatrix would open it.
#[derive(Debug, Clone, PartialEq)]
pub enum KvmDevice {
    Missing,
    NoAccess(String),
    Opens,
}

/// What is known about guests under KVM.
#[derive(Debug, Clone, PartialEq)]
pub enum KvmEvidence {
    /// A fresh verdict for this host from the cache.
    Cached(KvmVerdict),
    /// Found just now by booting this kernel under KVM.
    Booted(KvmVerdict, PathBuf),
    /// Nothing known, and why (no kernel to boot yet, the probe did not start).
    Unknown(String),
    /// Not checked: the host arch's QEMU is missing.
    NoQemu(Arch),
}

#[derive(Debug, Clone)]
pub struct KvmFacts {
    pub accel: AccelChoice,
    /// The spec has guests of the host's own arch: only those can use KVM.
    pub same_arch_guests: bool,
    pub device: KvmDevice,
    pub evidence: KvmEvidence,
    /// A cell whose build gives doctor a kernel to try.
    pub build_hint: Option<String>,
}

pub fn check_kvm(f: &KvmFacts) -> Check {
    const N: &str = "kvm";
    if f.accel == AccelChoice::Tcg {
        return Check::ok(
            N,
            "vm.accel is tcg: every guest runs under TCG, KVM is not tried",
        );
    }
    if !f.same_arch_guests {
        return Check::ok(
            N,
            "no guest of the host's own arch in the spec: all run under TCG",
        );
    }
    let forced = f.accel == AccelChoice::Kvm;
    let accel_fix = "set `vm.accel: auto` (or tcg) in the spec";
    let (found, fix) = match &f.device {
        KvmDevice::Missing => (
            "/dev/kvm does not exist".to_string(),
            "enable VT-x/AMD-V (on a VM: nested virtualization) and `modprobe kvm_intel` (or kvm_amd)",
        ),
        KvmDevice::NoAccess(e) => (
            format!("/dev/kvm exists but does not open ({e})"),
            "run kmatrix as root, or `usermod -aG kvm $USER` and log in again",
        ),
        KvmDevice::Opens => return check_kvm_evidence(f, forced, accel_fix),
    };
    if forced {
        Check::fail(
            N,
            format!("{found} but vm.accel is kvm: every boot will fail"),
            format!("{fix}; or {accel_fix}"),
        )
    } else {
        Check::warn(
            N,
            format!("{found}: kmatrix uses TCG (x86_64 guests run about 4x slower)"),
            fix,
        )
    }
}

fn check_kvm_evidence(f: &KvmFacts, forced: bool, accel_fix: &str) -> Check {
    const N: &str = "kvm";
    let (v, how) = match &f.evidence {
        KvmEvidence::Cached(v) => (v, format!("cached verdict from {}", ago(v.age()))),
        KvmEvidence::Booted(v, kernel) => (
            v,
            format!("checked just now by booting {}", kernel.display()),
        ),
        KvmEvidence::NoQemu(arch) => {
            return Check::warn(
                N,
                format!(
                    "/dev/kvm opens; not tried: {} is missing (see above)",
                    arch.qemu_binary()
                ),
                match arch {
                    Arch::X86_64 => QEMU_FIX_X86,
                    Arch::Arm64 => QEMU_FIX_ARM,
                },
            );
        }
        KvmEvidence::Unknown(why) => {
            let hint = match &f.build_hint {
                Some(id) => format!("kmatrix build --only '{id}', then kmatrix doctor again"),
                None => "build an x86_64 kernel (kmatrix build), then kmatrix doctor again".into(),
            };
            return Check::warn(
                N,
                format!(
                    "/dev/kvm opens; whether guests run under it is not known yet ({why}): \
                     kmatrix tries KVM at the first boot and falls back to TCG within {}s",
                    KVM_SILENT_LIMIT.as_secs()
                ),
                hint,
            );
        }
    };
    if v.works {
        return Check::ok(N, format!("/dev/kvm runs guests: {} ({how})", v.reason));
    }
    if forced {
        Check::fail(
            N,
            format!(
                "/dev/kvm opens but guests fail under it: {} ({how}); vm.accel is kvm, so every boot fails",
                v.reason
            ),
            accel_fix.to_string(),
        )
    } else {
        Check::warn(
            N,
            format!(
                "/dev/kvm opens but guests fail under it: {}; kmatrix uses TCG ({how})",
                v.reason
            ),
            "nothing to install: kmatrix falls back to TCG by itself (`vm.accel: tcg` skips the KVM try)",
        )
    }
}

fn ago(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        "just now".into()
    } else if s < 3600 {
        format!("{} min ago", s / 60)
    } else {
        format!("{}h{:02} ago", s / 3600, s % 3600 / 60)
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn arch_list(arches: &[Arch]) -> String {
    arches
        .iter()
        .map(|a| a.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn dedup<'a>(v: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for s in v {
        if !out.contains(s) {
            out.push(s);
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// Facts: what the host has.
// ---------------------------------------------------------------------------------

/// An executable named `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn has(n: &Need) -> bool {
    if n.what.starts_with('/') {
        Path::new(n.what).exists()
    } else {
        which(n.what).is_some()
    }
}

fn missing(needs: &[Need]) -> Vec<Need> {
    needs.iter().filter(|n| !has(n)).copied().collect()
}

/// A command's stdout, bounded in time; None if it cannot run, fails or overruns.
async fn output(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Option<String> {
    let spec = ProcSpec::new(program).args(args);
    tokio::time::timeout(COMMAND_DEADLINE, proc::output(&spec))
        .await
        .ok()?
        .ok()
}

async fn first_line(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Option<String> {
    output(program, args)
        .await?
        .lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

/// apt's candidates for `packages` (as `pkg:arch` when `arch` is given).
async fn apt_candidates(
    packages: &[String],
    arch: Option<&str>,
) -> Option<BTreeMap<String, Option<String>>> {
    let args: Vec<String> = packages
        .iter()
        .map(|p| match arch {
            Some(a) => format!("{p}:{a}"),
            None => p.clone(),
        })
        .collect();
    let args: Vec<&str> = std::iter::once("policy")
        .chain(args.iter().map(String::as_str))
        .collect();
    output("apt-cache", &args)
        .await
        .map(|t| parse_apt_policy(&t))
}

/// The nearest existing folder at or above `p` (the cache may not exist yet).
fn existing_ancestor(p: &Path) -> PathBuf {
    let mut cur = p.to_path_buf();
    while !cur.exists() {
        match cur.parent() {
            Some(parent) => cur = parent.to_path_buf(),
            None => break,
        }
    }
    cur
}

fn disk_facts(cache: &Cache) -> Check {
    let dir = existing_ancestor(&cache.root);
    let free = nix::sys::statvfs::statvfs(&dir)
        .ok()
        .map(|s| s.blocks_available() * s.fragment_size());
    let writable = nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK).is_ok();
    check_disk(&dir, free, writable)
}

fn kvm_device() -> KvmDevice {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => KvmDevice::Opens,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => KvmDevice::Missing,
        Err(e) => KvmDevice::NoAccess(e.to_string()),
    }
}

/// The newest finished x86_64 kernel in the cache (its `config` says CONFIG_X86_64=y).
pub fn find_x86_kernel(cache: &Cache) -> Option<PathBuf> {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(cache.dir("kernels"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|d| d.join(".complete").exists())
        .filter(|d| {
            std::fs::read_to_string(d.join("config"))
                .map(|c| c.lines().any(|l| l.trim() == "CONFIG_X86_64=y"))
                .unwrap_or(false)
        })
        .filter_map(|d| {
            let image = d.join("image");
            let t = std::fs::metadata(&image).ok()?.modified().ok()?;
            Some((t, image))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// Why the KVM probe gave no verdict (the probe failed, not KVM).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no free port for the SSH forward")]
    Port(#[source] std::io::Error),
    #[error("another process took the SSH forward's port {0} three times")]
    PortTaken(u16),
    #[error(transparent)]
    Vm(#[from] crate::vm::VmError),
}

/// What QEMU says when the SSH forward's port was taken between our check and its bind:
/// a probe problem, never a KVM verdict.
fn port_conflict(reason: &str) -> bool {
    reason.contains("host forwarding rule")
}

/// Boot `kernel` under KVM the way the engine's first boot does (same QEMU arguments,
/// an empty initramfs) and judge it the same way: a KVM error from QEMU, QEMU exiting
/// or a console silent for `KVM_SILENT_LIMIT` means guests fail.
async fn probe_kvm(
    kernel: &Path,
    qemu: &Path,
    vm: &VmSettings,
) -> Result<(bool, String), ProbeError> {
    let dir = std::env::temp_dir().join(format!("kmatrix-doctor-{}", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ProbeError::Io { path, source }
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let result = async {
        let initrd = dir.join("initrd.cpio");
        std::fs::write(&initrd, crate::prepare::image::Cpio::default().finish())
            .map_err(io(&initrd))?;
        let mut port = 0;
        for _ in 0..3 {
            port = crate::vm::free_port().map_err(ProbeError::Port)?;
            let spec = crate::vm::VmSpec {
                qemu: qemu.to_path_buf(),
                arch: Arch::X86_64,
                accel: crate::vm::Accel::Kvm,
                kernel: kernel.to_path_buf(),
                initrd: initrd.clone(),
                memory_mib: vm.memory_mib,
                cpus: vm.cpus,
                numa_nodes: vm.numa_nodes,
                console_socket: dir.join("console.sock"),
                qmp_socket: dir.join("qmp.sock"),
                ssh_port: port,
                shares: Vec::new(),
                hung_task_secs: vm.hung_task_timeout.as_secs(),
                run_as: crate::vm::unprivileged(),
                firmware: None,
            };
            let mut v = crate::vm::Vm::start(spec, &dir.join("qemu.log"))?;
            let mut console = crate::vm::console::Console::spawn(
                &v.spec.console_socket,
                &dir.join("console.log"),
                crate::console::Watcher::new(0),
                crate::vm::console::Budget::new(1 << 20),
                None,
            );
            let r = crate::vm::early_boot(&mut v, &mut console, KVM_SILENT_LIMIT).await;
            v.qemu.terminate(Duration::from_secs(2)).await;
            let _ = console.finish(Duration::from_secs(2)).await;
            return Ok(match r {
                crate::vm::EarlyBoot::ReachedInit => {
                    (true, "a kernel reached init under KVM".to_string())
                }
                crate::vm::EarlyBoot::PortTaken => continue,
                crate::vm::EarlyBoot::KvmFailed(reason) if port_conflict(&reason) => continue,
                crate::vm::EarlyBoot::KvmFailed(reason) => (false, reason),
            });
        }
        Err(ProbeError::PortTaken(port))
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The host's own guest arch, if kmatrix knows it.
fn host_arch() -> Option<Arch> {
    if cfg!(target_arch = "x86_64") {
        Some(Arch::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(Arch::Arm64)
    } else {
        None
    }
}

async fn kvm_facts(
    plan: Option<&Plan>,
    arches: &[Arch],
    vm: &VmSettings,
    cache: &Cache,
) -> KvmFacts {
    let host = host_arch();
    let same_arch_guests = host.is_some_and(|h| arches.contains(&h));
    let build_hint = plan.and_then(|p| {
        p.cells
            .iter()
            .find(|c| Some(c.arch) == host)
            .map(|c| c.id().into())
    });
    let mut facts = KvmFacts {
        accel: vm.accel,
        same_arch_guests,
        device: kvm_device(),
        evidence: KvmEvidence::Unknown(String::new()),
        build_hint,
    };
    if vm.accel == AccelChoice::Tcg || !same_arch_guests || facts.device != KvmDevice::Opens {
        return facts;
    }
    let Some(host) = host else {
        return facts;
    };
    let Some(qemu) = which(host.qemu_binary()) else {
        facts.evidence = KvmEvidence::NoQemu(host);
        return facts;
    };
    let fp = kvm_verdict::fingerprint(host.qemu_binary());
    if let Some(v) = kvm_verdict::load(cache, &fp) {
        facts.evidence = KvmEvidence::Cached(v);
        return facts;
    }
    let kernel = match host {
        Arch::X86_64 => find_x86_kernel(cache),
        Arch::Arm64 => None,
    };
    let Some(kernel) = kernel else {
        facts.evidence = KvmEvidence::Unknown(format!(
            "no cached verdict and no built {} kernel in {} to boot",
            host.name(),
            cache.dir("kernels").display()
        ));
        return facts;
    };
    eprintln!(
        "kmatrix doctor: booting {} under KVM (at most {}s) ...",
        kernel.display(),
        KVM_SILENT_LIMIT.as_secs()
    );
    facts.evidence = match probe_kvm(&kernel, &qemu, vm).await {
        Ok((works, reason)) => {
            let v = KvmVerdict::now(works, reason, fp);
            if let Err(e) = kvm_verdict::store(cache, &v) {
                eprintln!(
                    "kmatrix doctor: cannot store the KVM verdict in {}: {e}",
                    kvm_verdict::path(cache).display()
                );
            }
            KvmEvidence::Booted(v, kernel)
        }
        Err(e) => KvmEvidence::Unknown(format!(
            "the KVM test boot did not start: {}",
            crate::record::fmt::chain(&e)
        )),
    };
    facts
}

fn default_vm() -> VmSettings {
    VmSettings {
        accel: AccelChoice::Auto,
        memory_mib: 1024,
        cpus: 2,
        numa_nodes: 1,
        boot_timeout: Duration::from_secs(180),
        hung_task_timeout: Duration::from_secs(10),
    }
}

fn load_spec(spec: Option<&Path>) -> (Option<Plan>, SpecFacts) {
    let path = spec.unwrap_or(Path::new("kmatrix.yaml"));
    match crate::spec::load(path) {
        Ok(plan) => {
            let mut arches: Vec<Arch> = plan.cells.iter().map(|c| c.arch).collect();
            arches.sort();
            arches.dedup();
            let facts = SpecFacts::Loaded {
                path: path.to_path_buf(),
                cells: plan.cells.len(),
                arches,
                tests: plan.tests.len(),
            };
            (Some(plan), facts)
        }
        Err(_) if spec.is_none() && !path.exists() => (
            None,
            SpecFacts::Missing {
                path: path.to_path_buf(),
            },
        ),
        Err(e) => (
            None,
            SpecFacts::Invalid {
                path: path.to_path_buf(),
                error: crate::record::fmt::chain(&e),
            },
        ),
    }
}

/// A guest arch's userland: cached (its folder), else the packages apt has no
/// candidate for (None: apt-cache cannot run).
async fn guest_facts(arch: Arch, cache: Cache) -> (Option<PathBuf>, Option<Vec<String>>) {
    let userland = cache.dir("userland").join(arch.deb_arch());
    if userland.join(".complete").exists() {
        return (Some(userland), Some(Vec::new()));
    }
    let pkgs: Vec<String> = crate::prepare::image::PACKAGES
        .iter()
        .map(|p| p.to_string())
        .collect();
    let missing = apt_candidates(&pkgs, Some(arch.deb_arch())).await.map(|m| {
        pkgs.iter()
            .filter(|p| !matches!(m.get(*p), Some(Some(_))))
            .cloned()
            .collect()
    });
    (None, missing)
}

async fn source_facts(source: SourceSpec, cache: Cache) -> SourceFacts {
    match &source {
        SourceSpec::DebianPackage(pkg) => {
            let prefix = format!("{pkg}_");
            let cached = std::fs::read_dir(cache.dir("debs")).ok().and_then(|rd| {
                rd.flatten().map(|e| e.path()).find(|p| {
                    p.file_name().is_some_and(|n| {
                        let n = n.to_string_lossy();
                        n.starts_with(&prefix) && n.ends_with(".deb")
                    })
                })
            });
            if let Some(file) = cached {
                return SourceFacts::DebCached {
                    package: pkg.clone(),
                    file,
                };
            }
            let candidate = apt_candidates(std::slice::from_ref(pkg), None)
                .await
                .and_then(|m| m.get(pkg).cloned().flatten());
            SourceFacts::DebApt {
                package: pkg.clone(),
                candidate,
            }
        }
        SourceSpec::Path(p) => SourceFacts::Path { path: p.clone() },
        SourceSpec::Tarball(p) => SourceFacts::Tarball {
            path: p.clone(),
            exists: p.is_file(),
        },
        SourceSpec::Git { repo, rev } => SourceFacts::Git {
            repo: repo.clone(),
            rev: rev.clone(),
            git: first_line("git", &["--version"]).await,
        },
    }
}

/// A line on stdout; a closed pipe (`kmatrix doctor | head`) is not an error.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// The checks decided so far; each printed as it is decided.
#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn emit(&mut self, c: Check) {
        say(&c.line());
        self.0.push(c);
    }
}

/// Run every check, print a line for each as it is decided, then the summary; return
/// the exit code (0 ready, 1 not ready).
pub async fn run(spec: Option<&Path>) -> i32 {
    let mut checks = Checks::default();
    let cache = Cache::from_env();
    let (plan, spec_facts) = load_spec(spec);
    checks.emit(check_spec(&spec_facts));
    let arches: Vec<Arch> = match &spec_facts {
        SpecFacts::Loaded { arches, .. } => arches.clone(),
        _ => vec![Arch::X86_64, Arch::Arm64],
    };
    let vm = plan
        .as_ref()
        .map(|p| p.vm.clone())
        .unwrap_or_else(default_vm);
    host_checks(&mut checks, plan.as_ref(), &vm, &cache);
    qemu_checks(&mut checks, &arches).await;
    toolchain_checks(&mut checks, &arches).await;
    guest_and_source_checks(&mut checks, plan.as_ref(), &arches, &cache).await;
    checks.emit(check_kvm(
        &kvm_facts(plan.as_ref(), &arches, &vm, &cache).await,
    ));

    let (code, last) = summary(&checks.0);
    say(&last);
    code
}

/// The host itself: its OS, cores, memory, the cache's disk, kmatrix on PATH.
fn host_checks(checks: &mut Checks, plan: Option<&Plan>, vm: &VmSettings, cache: &Cache) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let jobs = plan.map(|p| p.jobs).unwrap_or(cores);
    let os = std::fs::read_to_string("/etc/os-release")
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    checks.emit(check_host(&os, std::env::consts::ARCH, &kernel));
    checks.emit(check_cores(cores, jobs));
    checks.emit(check_sandbox(
        crate::host::sandbox::status().map(|p| p.as_path()),
    ));
    let (total, avail) = std::fs::read_to_string("/proc/meminfo")
        .map(|t| parse_meminfo(&t))
        .unwrap_or((None, None));
    checks.emit(check_memory(total, avail, vm.memory_mib, jobs));
    checks.emit(disk_facts(cache));
    checks.emit(check_kmatrix_on_path(which("kmatrix").as_deref()));
}

/// QEMU and its firmware for each arch, then virtiofsd.
async fn qemu_checks(checks: &mut Checks, arches: &[Arch]) {
    let datadirs: Vec<PathBuf> = match which(Arch::X86_64.qemu_binary()) {
        Some(q) => output(&q, &["-L", "help"])
            .await
            .map(|t| t.lines().map(PathBuf::from).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    for &arch in arches {
        let bin = which(arch.qemu_binary());
        let version = match &bin {
            Some(b) => first_line(b, &["--version"]).await,
            None => None,
        };
        checks.emit(check_qemu(
            arch,
            bin.as_deref(),
            version.as_deref(),
            &missing_firmware(arch, &datadirs),
        ));
    }
    let virtiofsd = crate::vm::find_virtiofsd();
    let vfs_version = match &virtiofsd {
        Some(v) => first_line(v, &["--version"]).await,
        None => None,
    };
    checks.emit(check_virtiofsd(
        virtiofsd.as_deref(),
        vfs_version.as_deref(),
    ));
}

/// The firmware files of `arch` found in none of QEMU's data folders.
fn missing_firmware(arch: Arch, datadirs: &[PathBuf]) -> Vec<&'static str> {
    let dirs = if datadirs.is_empty() {
        // Debian's folders, for a QEMU that cannot list its own.
        [
            "/usr/share/qemu",
            "/usr/share/seabios",
            "/usr/lib/ipxe/qemu",
        ]
        .map(PathBuf::from)
        .to_vec()
    } else {
        datadirs.to_vec()
    };
    firmware(arch)
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| !dirs.iter().any(|d| d.join(f).exists()))
        .collect()
}

/// The compilers of each arch and the tools of the kernel build and the image.
async fn toolchain_checks(checks: &mut Checks, arches: &[Arch]) {
    for &arch in arches {
        let version = first_line(arch.cc(), &["--version"]).await;
        checks.emit(check_compiler(
            arch,
            version.as_deref(),
            &missing(toolchain(arch)),
        ));
    }
    checks.emit(check_needs(
        "kernel build",
        KERNEL_BUILD,
        &missing(KERNEL_BUILD),
    ));
    checks.emit(check_ccache(which("ccache").as_deref()));
    checks.emit(check_needs(
        "image tools",
        IMAGE_TOOLS,
        &missing(IMAGE_TOOLS),
    ));
}

/// Each guest arch's userland (and dpkg's foreign arch for it), then the kernel source.
/// The apt queries run together, started before the first line of them is printed.
async fn guest_and_source_checks(
    checks: &mut Checks,
    plan: Option<&Plan>,
    arches: &[Arch],
    cache: &Cache,
) {
    let native = host_arch();
    let mut guest_queries: Vec<_> = arches
        .iter()
        .map(|&a| tokio::spawn(guest_facts(a, cache.clone())))
        .collect();
    let source_query = plan.map(|p| tokio::spawn(source_facts(p.source.clone(), cache.clone())));
    let foreign: Vec<String> = output("dpkg", &["--print-foreign-architectures"])
        .await
        .map(|t| t.lines().map(|l| l.trim().to_string()).collect())
        .unwrap_or_default();
    for &arch in arches {
        if Some(arch) != native {
            checks.emit(check_foreign_arch(
                arch,
                foreign.iter().any(|a| a == arch.deb_arch()),
            ));
        }
        let (cached, missing_pkgs) = guest_queries.remove(0).await.unwrap_or_default();
        checks.emit(check_guest_packages(
            arch,
            cached.as_deref(),
            missing_pkgs.as_deref(),
        ));
    }
    if let Some(q) = source_query {
        if let Ok(facts) = q.await {
            checks.emit(check_source(&facts));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(works: bool, reason: &str) -> KvmVerdict {
        KvmVerdict::now(works, reason, "fp")
    }

    fn kvm(accel: AccelChoice, device: KvmDevice, evidence: KvmEvidence) -> KvmFacts {
        KvmFacts {
            accel,
            same_arch_guests: true,
            device,
            evidence,
            build_hint: Some("x86_64/pvl-on/base".into()),
        }
    }

    #[test]
    fn kvm_that_opens_but_fails_explains_and_falls_back_to_tcg() {
        let c = check_kvm(&kvm(
            AccelChoice::Auto,
            KvmDevice::Opens,
            KvmEvidence::Booted(
                verdict(false, "guest printed nothing in 20s"),
                "/c/image".into(),
            ),
        ));
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.found.contains("/dev/kvm opens but guests fail under it: guest printed nothing in 20s; kmatrix uses TCG"),
            "{c:?}"
        );
        assert!(
            c.found.contains("checked just now by booting /c/image"),
            "{c:?}"
        );
        assert!(c.fix.is_some());
        // The same facts with KVM forced: not ready.
        let c = check_kvm(&kvm(
            AccelChoice::Kvm,
            KvmDevice::Opens,
            KvmEvidence::Cached(verdict(false, "failed to set MSR 0x10a")),
        ));
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("vm.accel: auto"));
    }

    #[test]
    fn kvm_that_runs_guests_is_ok_and_says_how_it_knows() {
        let c = check_kvm(&kvm(
            AccelChoice::Auto,
            KvmDevice::Opens,
            KvmEvidence::Cached(verdict(true, "a kernel printed on its console under KVM")),
        ));
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.found.contains("cached verdict from just now"), "{c:?}");
        assert_eq!(c.fix, None);
    }

    #[test]
    fn kvm_unknown_says_what_to_build_to_find_out() {
        let c = check_kvm(&kvm(
            AccelChoice::Auto,
            KvmDevice::Opens,
            KvmEvidence::Unknown("no built x86_64 kernel".into()),
        ));
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.found.contains("not known yet (no built x86_64 kernel)"),
            "{c:?}"
        );
        assert!(c.found.contains("falls back to TCG"), "{c:?}");
        assert_eq!(
            c.fix.as_deref(),
            Some("kmatrix build --only 'x86_64/pvl-on/base', then kmatrix doctor again")
        );
    }

    #[test]
    fn kvm_without_qemu_says_to_install_it() {
        let c = check_kvm(&kvm(
            AccelChoice::Auto,
            KvmDevice::Opens,
            KvmEvidence::NoQemu(Arch::X86_64),
        ));
        assert_eq!(c.status, Status::Warn);
        assert!(c.found.contains("qemu-system-x86_64 is missing"), "{c:?}");
        assert!(c.fix.unwrap().contains("qemu-system-x86"));
    }

    #[test]
    fn kvm_device_missing_or_denied() {
        let unknown = || KvmEvidence::Unknown(String::new());
        let c = check_kvm(&kvm(AccelChoice::Auto, KvmDevice::Missing, unknown()));
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.found
                .contains("/dev/kvm does not exist: kmatrix uses TCG"),
            "{c:?}"
        );
        assert!(c.fix.unwrap().contains("modprobe kvm_intel"));
        let c = check_kvm(&kvm(AccelChoice::Kvm, KvmDevice::Missing, unknown()));
        assert_eq!(c.status, Status::Fail);
        let c = check_kvm(&kvm(
            AccelChoice::Auto,
            KvmDevice::NoAccess("Permission denied (os error 13)".into()),
            unknown(),
        ));
        assert_eq!(c.status, Status::Warn);
        assert!(c.found.contains("Permission denied"), "{c:?}");
        assert!(c.fix.unwrap().contains("usermod -aG kvm"));
    }

    #[test]
    fn kvm_not_relevant_is_ok() {
        let c = check_kvm(&kvm(
            AccelChoice::Tcg,
            KvmDevice::Missing,
            KvmEvidence::Unknown(String::new()),
        ));
        assert_eq!(c.status, Status::Ok);
        let mut f = kvm(
            AccelChoice::Auto,
            KvmDevice::Missing,
            KvmEvidence::Unknown(String::new()),
        );
        f.same_arch_guests = false;
        assert_eq!(check_kvm(&f).status, Status::Ok);
    }

    #[test]
    fn qemu_missing_names_the_package() {
        let c = check_qemu(Arch::X86_64, None, None, &[]);
        assert_eq!(c.status, Status::Fail);
        assert!(c.found.contains("qemu-system-x86_64 not on PATH"), "{c:?}");
        assert!(c.fix.unwrap().contains("qemu-system-x86"));
        let c = check_qemu(Arch::Arm64, None, None, &[]);
        assert!(c.fix.unwrap().contains("qemu-system-arm"));
    }

    #[test]
    fn qemu_version_and_firmware() {
        let line = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)";
        assert_eq!(qemu_version(line).as_deref(), Some("10.0.2"));
        assert_eq!(qemu_version("qemu: error"), None);
        let bin = Path::new("/usr/bin/qemu-system-x86_64");
        let c = check_qemu(Arch::X86_64, Some(bin), Some(line), &[]);
        assert_eq!(c.status, Status::Ok);
        assert_eq!(c.found, "qemu-system-x86_64 10.0.2");
        let c = check_qemu(
            Arch::X86_64,
            Some(bin),
            Some(line),
            &["bios-256k.bin", "efi-virtio.rom"],
        );
        assert_eq!(c.status, Status::Fail);
        assert_eq!(
            c.fix.as_deref(),
            Some("apt-get install -t bookworm-backports seabios ipxe-qemu")
        );
        let c = check_qemu(Arch::X86_64, Some(bin), Some("garbage"), &[]);
        assert_eq!(c.status, Status::Fail);
    }

    #[test]
    fn missing_needs_give_one_install_command() {
        let missing = [
            Need::new("flex", "flex"),
            Need::new("nm", "binutils"),
            Need::new("addr2line", "binutils"),
            Need::new("/usr/include/gelf.h", "libelf-dev"),
        ];
        let c = check_needs("kernel build", KERNEL_BUILD, &missing);
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.found.contains("flex (flex)") && c.found.contains("gelf.h (libelf-dev)"),
            "{c:?}"
        );
        assert_eq!(
            c.fix.as_deref(),
            Some("apt-get install flex binutils libelf-dev")
        );
        let ok = check_needs("kernel build", KERNEL_BUILD, &[]);
        assert_eq!(ok.status, Status::Ok);
        assert!(ok.found.starts_with("make, flex, bison, bc"), "{ok:?}");
    }

    #[test]
    fn cross_compiler_missing_names_its_packages() {
        let c = check_compiler(
            Arch::Arm64,
            None,
            &[toolchain(Arch::Arm64)[0], toolchain(Arch::Arm64)[3]],
        );
        assert_eq!(c.status, Status::Fail);
        assert_eq!(
            c.fix.as_deref(),
            Some("apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross")
        );
        let c = check_compiler(Arch::X86_64, Some("gcc (Debian 12.2.0-14) 12.2.0"), &[]);
        assert_eq!(c.status, Status::Ok);
        assert!(
            c.found.starts_with("gcc (Debian 12.2.0-14) 12.2.0"),
            "{c:?}"
        );
    }

    #[test]
    fn disk_thresholds() {
        let d = Path::new("/c");
        assert_eq!(check_disk(d, Some(76 << 30), true).status, Status::Ok);
        let w = check_disk(d, Some(12 << 30), true);
        assert_eq!(w.status, Status::Warn);
        assert!(w.fix.unwrap().contains("KMATRIX_CACHE"));
        assert_eq!(check_disk(d, Some(1 << 30), true).status, Status::Fail);
        assert_eq!(check_disk(d, Some(76 << 30), false).status, Status::Fail);
        assert_eq!(check_disk(d, None, true).status, Status::Fail);
    }

    #[test]
    fn memory_for_one_vm_and_a_build() {
        assert_eq!(memory_needed_mib(1024, 2), 2048);
        assert_eq!(
            check_memory(Some(24000), Some(22000), 1024, 2).status,
            Status::Ok
        );
        assert_eq!(
            check_memory(Some(24000), Some(1500), 1024, 2).status,
            Status::Warn
        );
        let c = check_memory(Some(1800), Some(1500), 1024, 2);
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("vm.memory"));
        assert_eq!(check_memory(None, None, 1024, 2).status, Status::Warn);
    }

    #[test]
    fn meminfo_and_os_release_parse() {
        let m = "MemTotal:       24554460 kB\nMemFree:        21000000 kB\nMemAvailable:   23000000 kB\n";
        assert_eq!(parse_meminfo(m), (Some(23978), Some(22460)));
        let os = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
        );
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id, "12");
        assert_eq!(check_host(&os, "x86_64", "6.1.0").status, Status::Ok);
        let ubuntu = parse_os_release("ID=ubuntu\nVERSION_ID=\"24.04\"\n");
        assert_eq!(check_host(&ubuntu, "x86_64", "6.8").status, Status::Warn);
        assert_eq!(check_host(&os, "aarch64", "6.1").status, Status::Warn);
    }

    #[test]
    fn apt_policy_parse() {
        let text = "busybox-static:\n  Installed: 1:1.35.0-4+b1\n  Candidate: 1:1.35.0-4+b1\n  Version table:\n \
                    *** 1:1.35.0-4+b1 500\n        500 http://mirror/debian bookworm/main amd64 Packages\n\
                    dropbear-bin:arm64:\n  Installed: (none)\n  Candidate: 2022.83-1+deb12u3\n\
                    libgone:arm64:\n  Installed: (none)\n  Candidate: (none)\n";
        let m = parse_apt_policy(text);
        assert_eq!(
            m.get("busybox-static"),
            Some(&Some("1:1.35.0-4+b1".to_string()))
        );
        assert_eq!(
            m.get("dropbear-bin"),
            Some(&Some("2022.83-1+deb12u3".to_string()))
        );
        assert_eq!(m.get("libgone"), Some(&None));
        assert_eq!(m.get("zlib1g"), None);
    }

    #[test]
    fn guest_packages_and_foreign_arch() {
        let c = check_guest_packages(Arch::Arm64, None, Some(&["libc6".to_string()]));
        assert_eq!(c.status, Status::Fail);
        assert!(c.found.contains("libc6:arm64"), "{c:?}");
        assert!(c.fix.unwrap().contains("dpkg --add-architecture arm64"));
        assert_eq!(
            check_guest_packages(Arch::Arm64, None, Some(&[])).status,
            Status::Ok
        );
        assert_eq!(
            check_guest_packages(Arch::Arm64, None, None).status,
            Status::Fail
        );
        assert_eq!(
            check_guest_packages(Arch::X86_64, Some(Path::new("/c/userland/amd64")), None).status,
            Status::Ok
        );
        let c = check_foreign_arch(Arch::Arm64, false);
        assert_eq!(c.status, Status::Fail);
        assert_eq!(
            c.fix.as_deref(),
            Some("dpkg --add-architecture arm64 && apt-get update")
        );
        assert_eq!(check_foreign_arch(Arch::Arm64, true).status, Status::Ok);
    }

    #[test]
    fn source_decisions() {
        let none = check_source(&SourceFacts::DebApt {
            package: "linux-source-7.3".into(),
            candidate: None,
        });
        assert_eq!(none.status, Status::Fail);
        assert!(none.fix.unwrap().contains("trixie-backports"));
        let apt = check_source(&SourceFacts::DebApt {
            package: "linux-source-7.3".into(),
            candidate: Some("7.3.4-1~bpo13+1".into()),
        });
        assert_eq!(apt.status, Status::Ok);
        assert!(apt.found.contains("7.3.4-1~bpo13+1"));
        let git = check_source(&SourceFacts::Git {
            repo: "/src/linux.git".into(),
            rev: "v7.3".into(),
            git: None,
        });
        assert_eq!(git.fix.as_deref(), Some("apt-get install git"));
        let tar = check_source(&SourceFacts::Tarball {
            path: "/t.tar.xz".into(),
            exists: false,
        });
        assert_eq!(tar.status, Status::Fail);
    }

    #[test]
    fn a_taken_ssh_port_is_not_a_kvm_failure() {
        assert!(port_conflict(
            "QEMU exited (exit status: 1) before the guest printed anything: qemu-system-x86_64: \
             -netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40000-:22: \
             Could not set up host forwarding rule 'tcp:127.0.0.1:40000-:22'"
        ));
        assert!(!port_conflict("KVM internal error. Suberror: 1"));
        assert!(!port_conflict("guest printed nothing in 20s"));
    }

    #[test]
    fn small_checks() {
        assert_eq!(check_cores(1, 1).status, Status::Warn);
        assert_eq!(
            check_sandbox(Err("bubblewrap (bwrap) is not installed")).status,
            Status::Warn
        );
        assert_eq!(
            check_sandbox(Ok(Path::new("/usr/bin/bwrap"))).status,
            Status::Ok
        );
        assert_eq!(check_cores(2, 2).status, Status::Ok);
        assert_eq!(
            check_ccache(None).fix.as_deref(),
            Some("apt-get install ccache")
        );
        assert_eq!(check_virtiofsd(None, None).status, Status::Fail);
        assert!(check_virtiofsd(None, None)
            .fix
            .unwrap()
            .contains("cargo install virtiofsd"));
        let k = check_kmatrix_on_path(None);
        assert_eq!(k.status, Status::Warn);
        assert!(k.fix.unwrap().contains("scripts/setup-host"));
        let s = check_spec(&SpecFacts::Invalid {
            path: "k.yaml".into(),
            error: "k.yaml:3:1: unknown key".into(),
        });
        assert_eq!(s.status, Status::Fail);
        assert_eq!(s.found, "k.yaml:3:1: unknown key");
    }

    #[test]
    fn lines_and_summary() {
        let checks = vec![
            Check::ok("cores", "2"),
            Check::warn("kvm", "slow", "nothing"),
        ];
        assert_eq!(
            checks[1].line(),
            "warn  kvm              slow; fix: nothing"
        );
        assert_eq!(
            summary(&checks),
            (0, "kmatrix doctor: ready (1 warning)".into())
        );
        let mut failing = checks.clone();
        failing.push(Check::fail(
            "qemu x86_64",
            "missing",
            "apt-get install qemu-system-x86",
        ));
        let (code, last) = summary(&failing);
        assert_eq!(code, 1);
        assert_eq!(last, "kmatrix doctor: not ready: 1 check failed, 1 warning");
    }

    #[test]
    fn finds_only_finished_x86_kernels() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache {
            root: d.path().to_path_buf(),
        };
        assert_eq!(find_x86_kernel(&cache), None);
        let k = |name: &str, config: &str, complete: bool| {
            let dir = d.path().join("kernels").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("image"), b"x").unwrap();
            std::fs::write(dir.join("config"), config).unwrap();
            if complete {
                std::fs::write(dir.join(".complete"), b"").unwrap();
            }
            dir.join("image")
        };
        k("arm", "CONFIG_ARM64=y\n", true);
        k("half", "CONFIG_X86_64=y\n", false);
        assert_eq!(find_x86_kernel(&cache), None);
        let x86 = k("x86", "# comment\nCONFIG_X86_64=y\nCONFIG_SMP=y\n", true);
        assert_eq!(find_x86_kernel(&cache), Some(x86));
    }
}
