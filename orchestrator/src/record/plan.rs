//! The validated plan: the cells of the matrix (arch x config x patchset) and what each runs,
//! plus the small vocabulary types (arch, accelerator, source) the rest of kmatrix shares.
//! It depends on nothing but the console's report kinds; `spec` builds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Guest architectures kmatrix can build and boot.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64", alias = "aarch64")]
    Arm64,
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A cell's id, `arch/config/patchset` (`arm64/pvl-off/v2`): the key of a cell in every
/// output, `--only` glob and comparison.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct CellId(pub String);

impl CellId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for CellId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CellId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CellId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for CellId {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl PartialEq<str> for CellId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for CellId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for CellId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<CellId> for String {
    fn eq(&self, other: &CellId) -> bool {
        self == &other.0
    }
}

impl AsRef<std::ffi::OsStr> for CellId {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

impl std::borrow::Borrow<str> for CellId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<CellId> for String {
    fn from(id: CellId) -> String {
        id.0
    }
}

/// Where the kernel tree comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A Debian binary package shipping `/usr/src/<name>.tar.xz` (e.g. `linux-source-7.3`).
    DebianPackage(String),
    /// A kernel tree already on disk, used in place (never modified).
    Path(PathBuf),
    /// A release tarball (`linux-7.3.tar.xz`), unpacked once into the cache.
    Tarball(PathBuf),
    /// A git repository (path or URL) and a revision, checked out once into the cache as
    /// a worktree of a cached clone.
    Git { repo: String, rev: String },
}

/// Accelerator choice for QEMU, as the spec says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// The accelerator a guest really ran under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
    /// How much slower than KVM we expect a guest to be (timeouts scale with it).
    pub fn slowdown(self, arch: Arch) -> u32 {
        match (self, arch) {
            (Accel::Kvm, _) => 1,
            (Accel::Tcg, Arch::X86_64) => 4,
            (Accel::Tcg, Arch::Arm64) => 8,
        }
    }
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
    /// The kernel's source folder under `arch/` (`x86`, `arm64`).
    pub fn srcarch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86",
            Arch::Arm64 => "arm64",
        }
    }
    /// `ARCH=` for the kernel's make.
    pub fn kernel_arch(self) -> &'static str {
        self.name()
    }
    /// `CROSS_COMPILE=` prefix when building on an x86_64 host ("" when native).
    pub fn cross_prefix(self) -> &'static str {
        match self {
            Arch::X86_64 => "",
            Arch::Arm64 => "aarch64-linux-gnu-",
        }
    }
    /// The Debian package with the kernel's compiler for this arch (for error hints).
    pub fn compiler_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "gcc",
            Arch::Arm64 => "gcc-aarch64-linux-gnu",
        }
    }
    /// The boot image make target and its path under the build directory.
    pub fn image_target(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("bzImage", "arch/x86/boot/bzImage"),
            Arch::Arm64 => ("Image", "arch/arm64/boot/Image"),
        }
    }
    /// Debian's name for the architecture (for `apt-get download pkg:ARCH`).
    pub fn deb_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
    /// Debian multiarch triplet (library directories in the packages).
    pub fn triplet(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Arm64 => "aarch64-linux-gnu",
        }
    }
    pub fn qemu_binary(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Arm64 => "qemu-system-aarch64",
        }
    }
    pub fn console_device(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Arm64 => "ttyAMA0",
        }
    }
    /// C compiler for guest programs.
    pub fn cc(self) -> &'static str {
        match self {
            Arch::X86_64 => "gcc",
            Arch::Arm64 => "aarch64-linux-gnu-gcc",
        }
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    pub arch: Arch,
    pub config: String,
    pub patchset: String,
    /// `make` target producing the starting config (e.g. `tinyconfig`).
    pub base_config: String,
    /// Fragments merged in order on top of the base config; later wins.
    pub fragments: Vec<PathBuf>,
    pub patches: Vec<PathBuf>,
}

impl Cell {
    /// The patchset's own patches: the series under test, without the harness.
    pub fn series<'a>(&'a self, plan: &'a Plan) -> impl Iterator<Item = &'a PathBuf> {
        self.patches.iter().filter(|p| !plan.harness.contains(p))
    }

    /// The subjects of the series' patches, in order (`mm: Add vma_start_read_unlocked()`),
    /// for reports: a git range's commit subjects, or the `Subject:` lines of patch files.
    pub fn subjects(&self, plan: &Plan) -> Vec<String> {
        self.series(plan)
            .flat_map(|p| plan.subjects.get(p).cloned().unwrap_or_default())
            .collect()
    }

    /// Stable id, e.g. `arm64/pvl-off/v2`.
    pub fn id(&self) -> CellId {
        CellId(format!(
            "{}/{}/{}",
            self.arch.name(),
            self.config,
            self.patchset
        ))
    }
    /// The cell's folder inside a run folder: `x86_64/pvl-on/v2`. One level per part, so
    /// distinct cells never share a folder (`a-b` + `c` and `a` + `b-c` would, joined by
    /// `-`); spec validation keeps every part a plain name.
    pub fn rel_dir(&self) -> PathBuf {
        PathBuf::from(self.arch.name())
            .join(&self.config)
            .join(&self.patchset)
    }
}

/// A kernel report a test provokes on purpose: a positive control proving a detector
/// is alive. `title` matches as a substring of the finding's title.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Expectation {
    pub kind: crate::record::finding::Kind,
    pub title: Option<String>,
}

/// One guest test program and how to run it. Serialised whole into the cell's input
/// identity (`prepare::identity`): every field decides what the cell runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestSpec {
    pub name: String,
    pub source: PathBuf,
    /// Out-of-tree module folder built against the cell's kernel (its basename is the
    /// module's name: `<name>.ko`).
    pub module: Option<PathBuf>,
    pub args: Vec<String>,
    pub duration: Duration,
    pub timeout: Duration,
    pub patchsets: Option<Vec<String>>,
    pub configs: Option<Vec<String>>,
    pub arches: Option<Vec<Arch>>,
    pub expect: Vec<Expectation>,
    /// A kernel selftest (`mm/merge`) run from the tests share as it is, instead of a
    /// kmatrix stress program called with its duration and result file.
    pub selftest: Option<Selftest>,
    /// Race amplification while this test runs (`amplify:`), in the cells it names.
    pub amplify: Option<Amplify>,
}

/// Race amplification of one test (`amplify: true` or `{ delay-us: N, ... }`): random
/// delays at entry to the functions the cell's series changes and at the lock
/// operations they call, while the test runs (`crate::prepare::amplify`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Amplify {
    /// A delayed call waits a random 0..=delay_us microseconds.
    pub delay_us: u32,
    /// The share of calls that are delayed at all (1..=100).
    pub percent: u32,
    /// After a delay, also ask for a reschedule (a `cond_resched()`-style preemption
    /// point), so the other threads of the delayed CPU run inside the window.
    pub preempt: bool,
    /// The delays' PRNG seed; derived from the cell and the test when absent.
    pub seed: Option<u64>,
    /// Functions to delay besides the series' own (a base cell changes none).
    pub functions: Vec<String>,
    /// Lock operations to delay inside them besides those found in the series' hunks
    /// (one a changed function reaches through another, say).
    pub lock_ops: Vec<String>,
    /// The cells it is on in (all the test runs in when absent).
    pub configs: Option<Vec<String>>,
    pub patchsets: Option<Vec<String>>,
    pub arches: Option<Vec<Arch>>,
}

impl Amplify {
    /// Delays up to this long by default: long enough for the other vCPU to run a whole
    /// short critical section (a VMA split) inside the window, short enough that a test
    /// keeps most of its speed.
    pub const DEFAULT_DELAY_US: u32 = 100;
    /// Probe handlers busy-wait (they must not sleep): longer delays starve the CPU.
    pub const MAX_DELAY_US: u32 = 1000;
}

/// One of the kernel's own selftests, built from the cell's tree: `suite/name`
/// (`tools/testing/selftests/<suite>/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Selftest {
    pub suite: String,
    pub name: String,
}

impl Selftest {
    /// `mm/merge`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.suite, self.name)
    }
    /// About how long it runs under TCG: seconds each, but `proc-maps-race` runs its
    /// cases for 30 s (bench/RESULTS.md).
    pub fn expected(&self) -> Duration {
        Duration::from_secs(if self.id() == "proc/proc-maps-race" {
            30
        } else {
            3
        })
    }
    /// Its file in the tests share (`selftests/mm-merge`).
    pub fn file(&self) -> String {
        format!("selftests/{}-{}", self.suite, self.name)
    }
    /// The test this selftest runs as: named `mm-merge` (a plain name: it is part of
    /// paths), no arguments, the suite's deadline.
    pub fn as_test(&self, timeout: Duration) -> TestSpec {
        TestSpec {
            name: format!("{}-{}", self.suite, self.name),
            source: PathBuf::new(),
            module: None,
            args: vec![],
            duration: Duration::ZERO,
            timeout,
            patchsets: None,
            configs: None,
            arches: None,
            expect: vec![],
            selftest: Some(self.clone()),
            amplify: None,
        }
    }
}

/// The selftests every cell runs by default: quick ones that exercise VMA locking
/// (merging, populate, mlock, guard regions, /proc/PID/maps races), a minute in all under
/// emulation. Left out: `mm/mremap_test` (its 2 GB cases need a bigger guest than the
/// default 1G) and `mm/uffd-unit-tests` (90 s under TCG; `uffd_vs_writers` covers it).
pub const DEFAULT_SELFTESTS: &[&str] = &[
    "mm/merge",
    "mm/madv_populate",
    "mm/mlock2-tests",
    "mm/guard-regions",
    "proc/proc-maps-race",
];

impl TestSpec {
    /// The module's name (`vma_user` for `guest-tests/modules/vma_user`).
    pub fn module_name(&self) -> Option<String> {
        self.module
            .as_ref()
            .and_then(|m| m.file_name())
            .map(|n| n.to_string_lossy().into_owned())
    }

    /// Does this test run in that cell?
    pub fn applies_to(&self, cell: &Cell) -> bool {
        self.patchsets
            .as_ref()
            .is_none_or(|v| v.contains(&cell.patchset))
            && self
                .configs
                .as_ref()
                .is_none_or(|v| v.contains(&cell.config))
            && self.arches.as_ref().is_none_or(|v| v.contains(&cell.arch))
    }

    /// The amplification this test runs with in that cell, if any.
    pub fn amplified_in(&self, cell: &Cell) -> Option<&Amplify> {
        self.amplify.as_ref().filter(|a| {
            self.applies_to(cell)
                && a.configs.as_ref().is_none_or(|v| v.contains(&cell.config))
                && a.patchsets
                    .as_ref()
                    .is_none_or(|v| v.contains(&cell.patchset))
                && a.arches.as_ref().is_none_or(|v| v.contains(&cell.arch))
        })
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VmSettings {
    pub accel: AccelChoice,
    pub memory_mib: u64,
    pub cpus: u32,
    /// QEMU `-numa` nodes (1: the single node virtiofs' shared memory needs anyway).
    pub numa_nodes: u32,
    pub boot_timeout: Duration,
    pub hung_task_timeout: Duration,
}

/// Caps on what a guest can make kmatrix keep: the guest is untrusted, and a kernel that
/// prints a warning per fault would fill the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// Console bytes written to console.log per cell (all boots together).
    pub console_bytes: u64,
    /// Output bytes kept per guest test (the `.ktap` stream).
    pub test_output_bytes: u64,
    /// Bytes of regular files kept from the guest's results share per cell.
    pub results_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            console_bytes: 64 << 20,
            test_output_bytes: 16 << 20,
            results_bytes: 256 << 20,
        }
    }
}

/// A patchset given as a git range (`{ git: <repo>, range: <base>..<tip> }`): each commit
/// becomes one patch, exported by `series::resolve` before anything is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRange {
    pub patchset: String,
    /// A local repository (a checkout or a bare repository).
    pub repo: PathBuf,
    pub range: String,
    /// Where it was given, for errors (`kmatrix.yaml:12: `patchsets.mine``).
    pub origin: String,
}

/// The `Subject:` lines of a patch file's mail headers (an mbox has one per patch), folded
/// lines joined and the `[PATCH v3 1/2]` prefix dropped.
pub fn patch_subjects(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_header = true;
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        // An mbox starts each mail with a `From ` line (`git format-patch`: `From <commit>
        // Mon Sep 17 00:00:00 2001`); a body line like it is escaped as `>From `.
        if l.starts_with("From ") {
            in_header = true;
            continue;
        }
        if l.is_empty() {
            in_header = false;
            continue;
        }
        let Some(first) = l.strip_prefix("Subject:").filter(|_| in_header) else {
            continue;
        };
        let mut subject = first.trim().to_string();
        while let Some(next) = lines.peek().filter(|n| n.starts_with([' ', '\t'])) {
            subject.push(' ');
            subject.push_str(next.trim());
            lines.next();
        }
        let subject = match subject.strip_prefix('[').and_then(|s| s.split_once("] ")) {
            Some((_, rest)) => rest.to_string(),
            None => subject,
        };
        out.push(subject);
    }
    out
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    pub spec_path: PathBuf,
    /// Hash of the spec text: shards of different specs must not be merged.
    pub spec_hash: String,
    /// The spec file's folder: relative paths were resolved against it.
    pub root: PathBuf,
    pub source: SourceSpec,
    pub cells: Vec<Cell>,
    pub tests: Vec<TestSpec>,
    pub vm: VmSettings,
    pub limits: Limits,
    /// Test-harness patches (applied after a patchset's own; not part of the series).
    pub harness: Vec<PathBuf>,
    /// The kernel's own selftests every cell runs, and their deadline each.
    pub selftests: Vec<Selftest>,
    pub selftest_timeout: Duration,
    pub baseline: Option<String>,
    /// The known-issues list (`known-issues:`), checked when the spec was loaded.
    pub known_issues: Option<PathBuf>,
    pub jobs: usize,
    /// Subjects of the series' patch files (an mbox holds several), by file.
    pub subjects: BTreeMap<PathBuf, Vec<String>>,
    /// Patchsets given as git ranges not exported yet (`series::resolve` empties it).
    pub ranges: Vec<GitRange>,
}

impl Plan {
    /// How a path of the plan is shown: relative to the spec's folder when inside it.
    pub fn display(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .display()
            .to_string()
    }
}

/// Expected relative cost of a cell, for balancing shards: arm64 under TCG is several
/// times slower to build (cross) and to run; cells that run the probe hold the guest
/// for its hang control.
pub fn cost(cell: &Cell, tests: &[TestSpec]) -> u64 {
    let arch = match cell.arch {
        Arch::X86_64 => 10,
        Arch::Arm64 => 25,
    };
    let run: u64 = tests
        .iter()
        .filter(|t| t.applies_to(cell))
        .map(|t| t.duration.as_secs())
        .sum();
    arch * 30 + run * arch / 10
}

pub use crate::record::shard::Shard;

impl serde::Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Shard, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Shard::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The cells of shard `k` of `n` (1-based): greedy longest-processing-time assignment,
/// deterministic for a given plan, so separate invocations agree without talking.
pub fn shard(cells: &[Cell], tests: &[TestSpec], shard: Shard) -> Vec<Cell> {
    let (k, n) = (shard.k as usize, shard.n as usize);
    let mut order: Vec<&Cell> = cells.iter().collect();
    order.sort_by(|a, b| {
        cost(b, tests)
            .cmp(&cost(a, tests))
            .then_with(|| a.id().cmp(&b.id()))
    });
    let mut load = vec![0u64; n];
    let mut mine = Vec::new();
    for c in order {
        let (i, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .unwrap_or((0, &0));
        load[i] += cost(c, tests);
        if i + 1 == k {
            mine.push(c.id());
        }
    }
    // Keep the plan's own order within the shard.
    cells
        .iter()
        .filter(|c| mine.contains(&c.id()))
        .cloned()
        .collect()
}

/// `base..tip` as git reads it for a series: the commits of `tip` not in `base`, oldest
/// first. An empty tip is `HEAD`.
pub fn check_range(range: &str) -> Result<(), String> {
    let hint = "write it as `<base>..<tip>`, e.g. `v7.3..HEAD` or `origin/master..my-branch`";
    if range.contains("...") {
        return Err(format!(
            "`{range}` is a symmetric difference; {hint} (the commits on tip since base)"
        ));
    }
    let Some((base, tip)) = range.split_once("..") else {
        return Err(format!("`{range}` is not a range: {hint}"));
    };
    if base.is_empty() {
        return Err(format!("`{range}` has no base: {hint}"));
    }
    for rev in [base, tip] {
        // They go to git as arguments: never let one look like an option.
        if rev.starts_with('-') || rev.contains("..") || rev.chars().any(char::is_whitespace) {
            return Err(format!("`{rev}` in `{range}` is not a revision: {hint}"));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plan with no cells or tests, for tests elsewhere.
    pub fn plan() -> Plan {
        Plan {
            spec_path: "/spec/kmatrix.yaml".into(),
            spec_hash: String::new(),
            root: "/spec".into(),
            source: SourceSpec::DebianPackage("linux-source-7.3".into()),
            cells: vec![],
            tests: vec![],
            vm: VmSettings {
                accel: AccelChoice::default(),
                memory_mib: 1024,
                cpus: 2,
                numa_nodes: 1,
                boot_timeout: Duration::from_secs(180),
                hung_task_timeout: Duration::from_secs(10),
            },
            limits: Limits::default(),
            harness: vec![],
            selftests: vec![],
            selftest_timeout: Duration::from_secs(60),
            baseline: None,
            known_issues: None,
            jobs: 1,
            subjects: BTreeMap::new(),
            ranges: vec![],
        }
    }

    /// A cell with no fragments or patches, for tests elsewhere.
    pub fn cell(arch: Arch, config: &str, patchset: &str) -> Cell {
        Cell {
            arch,
            config: config.into(),
            patchset: patchset.into(),
            base_config: "tinyconfig".into(),
            fragments: vec![],
            patches: vec![],
        }
    }

    fn cells() -> Vec<Cell> {
        let mut v = Vec::new();
        for arch in [Arch::X86_64, Arch::Arm64] {
            for config in ["pvl-on", "pvl-off"] {
                for patchset in ["base", "v2", "v3"] {
                    v.push(Cell {
                        arch,
                        config: config.into(),
                        patchset: patchset.into(),
                        base_config: "tinyconfig".into(),
                        fragments: vec![],
                        patches: vec![],
                    });
                }
            }
        }
        v
    }

    #[test]
    fn shards_partition_the_cells_and_balance_cost() {
        let cells = cells();
        let a = shard(&cells, &[], Shard { k: 1, n: 2 });
        let b = shard(&cells, &[], Shard { k: 2, n: 2 });
        assert_eq!(a.len() + b.len(), cells.len());
        for c in &cells {
            let in_a = a.iter().any(|x| x.id() == c.id());
            let in_b = b.iter().any(|x| x.id() == c.id());
            assert!(in_a ^ in_b, "{} in exactly one shard", c.id());
        }
        let total = |s: &[Cell]| s.iter().map(|c| cost(c, &[])).sum::<u64>();
        // Both shards hold arm64 cells: balanced by cost, not by count or order.
        assert!(a.iter().any(|c| c.arch == Arch::Arm64) && b.iter().any(|c| c.arch == Arch::Arm64));
        assert_eq!(total(&a), total(&b));
        // Deterministic.
        assert_eq!(
            shard(&cells, &[], Shard { k: 1, n: 2 })
                .iter()
                .map(|c| c.id())
                .collect::<Vec<_>>(),
            a.iter().map(|c| c.id()).collect::<Vec<_>>()
        );
    }
}
