//! Per-cell results and the verdict decided from the facts collected: which reports the
//! kernel printed, which of them a positive control caused, how each test ended.
//! Plain synchronous code: the engine gathers facts, this module judges them.

use crate::console::{Finding, Kind};
use crate::ktap;
use crate::plan::{Accel, Arch, Cell, Expectation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    #[serde(rename = "PASS")]
    Pass,
    #[serde(rename = "FAIL")]
    Fail,
    #[serde(rename = "HANG")]
    Hang,
    #[serde(rename = "BOOT-FAIL")]
    BootFail,
    #[serde(rename = "BUILD-FAIL")]
    BuildFail,
    #[serde(rename = "PATCH-FAIL")]
    PatchFail,
    #[serde(rename = "CONFIG-MISMATCH")]
    ConfigMismatch,
    #[serde(rename = "INFRA-ERROR")]
    InfraError,
    #[serde(rename = "INCONCLUSIVE")]
    Inconclusive,
    #[serde(rename = "INTERRUPTED")]
    Interrupted,
}

/// What a verdict means to the person reading it; drives the exit code, the terminal
/// colour and the HTML class, so the three never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    Pass,
    /// The kernel or the series is at fault (exit 1).
    Failed,
    /// Nothing wrong was seen, but the result cannot be trusted (exit 1).
    Doubtful,
    /// The host or kmatrix is at fault (exit 3).
    Infra,
    /// The run was cut short (exit 130).
    Interrupted,
}

impl Verdict {
    pub const ALL: [Verdict; 10] = [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Hang,
        Verdict::BootFail,
        Verdict::BuildFail,
        Verdict::PatchFail,
        Verdict::ConfigMismatch,
        Verdict::InfraError,
        Verdict::Inconclusive,
        Verdict::Interrupted,
    ];

    /// A verdict about the kernel (not about the run being cut short or the host).
    pub fn is_final(self) -> bool {
        !matches!(self.category(), Category::Infra | Category::Interrupted)
    }

    pub fn category(self) -> Category {
        match self {
            Verdict::Pass => Category::Pass,
            Verdict::Fail
            | Verdict::Hang
            | Verdict::BootFail
            | Verdict::BuildFail
            | Verdict::PatchFail
            | Verdict::ConfigMismatch => Category::Failed,
            Verdict::Inconclusive => Category::Doubtful,
            Verdict::InfraError => Category::Infra,
            Verdict::Interrupted => Category::Interrupted,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Hang => "HANG",
            Verdict::BootFail => "BOOT-FAIL",
            Verdict::BuildFail => "BUILD-FAIL",
            Verdict::PatchFail => "PATCH-FAIL",
            Verdict::ConfigMismatch => "CONFIG-MISMATCH",
            Verdict::InfraError => "INFRA-ERROR",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::Interrupted => "INTERRUPTED",
        }
    }

    /// Ordering for combining repeated runs: the verdict that says most about the kernel.
    fn severity(self) -> u8 {
        match self {
            Verdict::Fail => 9,
            Verdict::Hang => 8,
            Verdict::BootFail => 7,
            Verdict::Inconclusive => 6,
            Verdict::InfraError => 5,
            Verdict::Interrupted => 4,
            Verdict::BuildFail | Verdict::PatchFail | Verdict::ConfigMismatch => 3,
            Verdict::Pass => 0,
        }
    }
}

/// The exit code of a finished run (documented in README): the worst category wins,
/// interruption first, then the host, then findings.
pub fn exit_code(cells: &[CellResult]) -> i32 {
    let worst = |c: Category| cells.iter().any(|x| x.verdict.category() == c);
    if worst(Category::Interrupted) {
        130
    } else if worst(Category::Infra) {
        3
    } else if cells.is_empty() || !cells.iter().all(|c| c.verdict == Verdict::Pass) {
        // No cell at all is never "all passed".
        1
    } else {
        0
    }
}

/// How one guest test ended. One outcome, so impossible combinations (an exit status and
/// a timeout) cannot be written down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TestOutcome {
    /// The program exited with this status.
    Exited { status: i32 },
    /// It could not run in this cell (its module did not build against the kernel).
    NotRun { message: String },
    /// It overran its timeout.
    TimedOut { message: String },
    /// SSH stopped answering while QEMU still ran (sshd dead or userspace stuck).
    Unresponsive { message: String },
    /// QEMU exited during the test (a panic, a reboot).
    GuestDied { message: String },
    /// kmatrix gave up on it: a fatal or hang report, or a share daemon died.
    Abandoned { message: String },
    /// The host side failed (the SSH thread).
    HostError { message: String },
}

impl TestOutcome {
    /// The line that explains a test that did not simply exit.
    pub fn message(&self) -> Option<&str> {
        match self {
            TestOutcome::Exited { .. } => None,
            TestOutcome::NotRun { message }
            | TestOutcome::TimedOut { message }
            | TestOutcome::Unresponsive { message }
            | TestOutcome::GuestDied { message }
            | TestOutcome::Abandoned { message }
            | TestOutcome::HostError { message } => Some(message),
        }
    }
    /// The test ended in a way that stops the cell's later tests (the kernel is not fit
    /// to judge them).
    pub fn is_hang(&self) -> bool {
        matches!(
            self,
            TestOutcome::TimedOut { .. } | TestOutcome::Unresponsive { .. }
        )
    }
}

/// The stress programs' own proof that their kinds of threads ran at the same time: per
/// kind, the operations done while every other kind was running, and how long that
/// window was (`# kmatrix-overlap: window=S kind=N ...`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overlap {
    pub window_secs: f64,
    pub ops: BTreeMap<String, u64>,
}

impl Overlap {
    /// The overlap line of a test's KTAP output, if it printed one.
    pub fn from_ktap(text: &str) -> Option<Overlap> {
        let line = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("# kmatrix-overlap:"))?;
        let mut o = Overlap::default();
        for (k, v) in line.split_whitespace().filter_map(|w| w.split_once('=')) {
            // The guest wrote this line: anything malformed is skipped, never trusted.
            if k == "window" {
                o.window_secs = v.parse().unwrap_or(0.0);
            } else if o.ops.len() < 16
                && !k.is_empty()
                && k.len() <= 32
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                if let Ok(n) = v.parse() {
                    o.ops.insert(k.to_string(), n);
                }
            }
        }
        Some(o)
    }
}

/// One guest test's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestResult {
    pub name: String,
    pub outcome: TestOutcome,
    pub ktap: ktap::Report,
    pub seconds: f64,
    /// The result file came back through the virtiofs share.
    pub result_file: Option<PathBuf>,
    /// Console line of the marker kmatrix wrote to /dev/kmsg as the test started.
    #[serde(default)]
    pub console_line: Option<usize>,
    #[serde(default)]
    pub overlap: Option<Overlap>,
    /// `vma_lock_*` counters of /proc/vmstat: what the test changed.
    #[serde(default)]
    pub vmstat_delta: BTreeMap<String, u64>,
    /// Why the test's evidence does not hold although it said ok (the per-VMA lock path
    /// it stresses did not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Race amplification while the test ran (`amplify:`): settings, probes, hits, delays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amplify: Option<crate::amplify::Amplified>,
}

impl TestResult {
    pub fn new(name: &str, outcome: TestOutcome) -> TestResult {
        TestResult {
            name: name.to_string(),
            outcome,
            ktap: ktap::Report::default(),
            seconds: 0.0,
            result_file: None,
            console_line: None,
            overlap: None,
            vmstat_delta: BTreeMap::new(),
            evidence: None,
            amplify: None,
        }
    }
    pub fn passed(&self) -> bool {
        self.outcome == TestOutcome::Exited { status: 0 }
            && self.ktap.passed()
            && self.evidence.is_none()
    }
    /// Why it did not pass, in one line.
    pub fn failure(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        Some(if let Some(m) = self.outcome.message() {
            m.to_string()
        } else if let Some(c) = self.ktap.failed().next() {
            format!("not ok {} {}", c.number, c.description)
        } else if let Some(e) = &self.evidence {
            e.clone()
        } else if !self.ktap.complete() {
            "KTAP output incomplete".into()
        } else {
            match self.outcome {
                TestOutcome::Exited { status } => format!("exit status {status}"),
                _ => "did not pass".into(),
            }
        })
    }
}

/// Everything known about a cell after it ran (or stopped early). `results.json` schema 2.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub id: String,
    pub arch: Arch,
    pub config: String,
    pub patchset: String,
    pub verdict: Verdict,
    /// One line saying why, for anything but PASS.
    pub reason: Option<String>,
    /// Detail lines: compiler errors, config mismatches, failed hunks.
    pub details: Vec<String>,
    /// The accelerator the guest ran under.
    pub accel: Option<Accel>,
    /// Set when the accelerator differs from the first choice (e.g. KVM failed here).
    pub accel_note: Option<String>,
    /// Identity of the kernel source tree (package and version, or path and git state).
    pub source_id: Option<String>,
    pub kernel_key: Option<String>,
    pub kernel_cached: Option<bool>,
    /// Every input of the cell by content, and one hash over them: `--resume` reuses the
    /// cell only while it is unchanged.
    #[serde(default)]
    pub inputs: Option<crate::identity::Inputs>,
    /// The subjects of the series' patches, in order (a git range's commit subjects).
    #[serde(default)]
    pub subjects: Vec<String>,
    /// What was collected after a hang or fatal report (sysrq dumps over SSH, or the
    /// serial console, or console only).
    pub forensics: Option<String>,
    /// Seconds from QEMU's start to an authenticated SSH session.
    pub ssh_ready_secs: Option<f64>,
    /// The kernel's own timestamp of starting init (console printk time).
    pub kernel_init_secs: Option<f64>,
    /// CPUs the guest kernel brought up (its `smp:` line), next to the `vm.cpus` asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_cpus: Option<u32>,
    /// Console line where each boot starts (the first is 1).
    #[serde(default)]
    pub boot_lines: Vec<usize>,
    pub tests: Vec<TestResult>,
    /// Kernel reports, each with the test it happened in and the control it satisfied.
    pub findings: Vec<Finding>,
    /// Positive controls of the tests that ran, and what became of each.
    pub controls: Vec<Control>,
    /// `vma_lock_*` counters from /proc/vmstat before the first and after the last test
    /// (empty when the kernel has no per-VMA-lock statistics, e.g. pvl-off).
    pub vmstat_before: BTreeMap<String, u64>,
    pub vmstat_after: BTreeMap<String, u64>,
    /// With `--repeat N`: how many of the N boots showed each finding (by title), and N.
    pub finding_rates: BTreeMap<String, u32>,
    pub repeats: u32,
    /// Titles of findings also seen in the baseline cell of the same arch and config.
    pub in_baseline: Vec<String>,
    /// This cell's lock graph compared with its base cell's (lockdep cells of a patchset
    /// other than the baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_graph: Option<crate::lockgraph::Diff>,
    /// Reports seen but not kept in `findings` (over the per-title cap), by title.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dropped: BTreeMap<String, u64>,
    /// Whether lockdep and the hung-task detector were proven alive at the end of the cell
    /// (None: the cell never booted).
    #[serde(default)]
    pub detectors: Option<Detectors>,
    /// Things worth knowing that are not findings (output truncated, guest files refused).
    #[serde(default)]
    pub notes: Vec<String>,
    /// When each phase began, in order (the report's timeline; KCIDB's start times).
    #[serde(default)]
    pub phases: Vec<PhaseStart>,
    pub dir: PathBuf,
    pub seconds: f64,
}

/// A phase of a cell as it began: which (with what it was doing, e.g. the test's name)
/// and when, in seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseStart {
    pub phase: crate::events::Phase,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    pub at: f64,
}

/// A phase with its length: until the next phase began, the last until the cell ended.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSpan<'a> {
    pub start: &'a PhaseStart,
    /// Seconds since the first phase began.
    pub offset: f64,
    pub seconds: f64,
}

impl CellResult {
    /// The phases as spans. The cell's `seconds` run from just before its first phase,
    /// so the last span ends there; clock steps backwards count as zero.
    pub fn phase_spans(&self) -> Vec<PhaseSpan<'_>> {
        let Some(first) = self.phases.first() else {
            return vec![];
        };
        let end = first.at + self.seconds;
        self.phases
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let next = self.phases.get(i + 1).map_or(end, |n| n.at);
                PhaseSpan {
                    start: p,
                    offset: (p.at - first.at).max(0.0),
                    seconds: (next - p.at).max(0.0),
                }
            })
            .collect()
    }

    pub fn new(cell: &Cell, dir: PathBuf) -> CellResult {
        CellResult {
            id: cell.id(),
            arch: cell.arch,
            config: cell.config.clone(),
            patchset: cell.patchset.clone(),
            verdict: Verdict::InfraError,
            reason: None,
            details: vec![],
            accel: None,
            accel_note: None,
            source_id: None,
            kernel_key: None,
            kernel_cached: None,
            inputs: None,
            subjects: vec![],
            forensics: None,
            ssh_ready_secs: None,
            kernel_init_secs: None,
            guest_cpus: None,
            boot_lines: vec![],
            tests: vec![],
            findings: vec![],
            controls: vec![],
            vmstat_before: BTreeMap::new(),
            vmstat_after: BTreeMap::new(),
            finding_rates: BTreeMap::new(),
            repeats: 0,
            in_baseline: vec![],
            lock_graph: None,
            dropped: BTreeMap::new(),
            detectors: None,
            notes: vec![],
            phases: vec![],
            dir,
            seconds: 0.0,
        }
    }

    /// Findings no control caused: what the kernel is blamed for.
    pub fn real_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.expected_by.is_none())
    }
    pub fn expected_count(&self) -> usize {
        self.findings.len() - self.real_findings().count()
    }
}

/// The state of one detector at the end of a cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detector {
    /// Its tagged liveness report came at the end of the cell.
    Alive,
    /// It could not report any more: why.
    Dead { why: String },
    /// The kernel was built without it.
    NotBuilt,
    /// The liveness step did not run: why (the cell stopped early, the module did not
    /// build).
    NotChecked { why: String },
}

impl Detector {
    pub fn label(&self) -> String {
        match self {
            Detector::Alive => "alive".into(),
            Detector::Dead { why } => format!("NOT alive ({why})"),
            Detector::NotBuilt => "not built".into(),
            Detector::NotChecked { why } => format!("not checked ({why})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detectors {
    pub lockdep: Detector,
    pub hung_task: Detector,
}

impl Detectors {
    /// One line for the outputs: `lockdep alive, hung-task alive`.
    pub fn summary(&self) -> String {
        format!(
            "lockdep {}, hung-task {}",
            self.lockdep.label(),
            self.hung_task.label()
        )
    }
}

/// The name kmatrix's own liveness step has among the tests (markers, `during`).
pub const LIVENESS: &str = "liveness";
/// The tag every liveness report carries (module, lock and kthread names).
pub const LIVENESS_TAG: &str = "kmatrix_liveness";

/// A report expected by a control: which test, what, and whether the report must name
/// one of the test's own tasks (kmatrix's liveness reports are told by their tag).
#[derive(Debug, Clone)]
pub struct Expected {
    pub test: String,
    pub expect: Expectation,
    /// Matched against the report's text instead of checking the task.
    pub tag: Option<String>,
}

impl Expected {
    /// The positive controls of a spec test.
    pub fn of_test(test: &str, expect: &Expectation) -> Expected {
        Expected {
            test: test.to_string(),
            expect: expect.clone(),
            tag: None,
        }
    }
    /// The liveness step's control for one detector.
    pub fn liveness(kind: Kind) -> Expected {
        Expected {
            test: LIVENESS.to_string(),
            expect: Expectation { kind, title: None },
            tag: Some(LIVENESS_TAG.to_string()),
        }
    }
    fn matches(&self, f: &Finding) -> bool {
        f.during.as_deref() == Some(self.test.as_str())
            && matches(&self.expect, f)
            && match &self.tag {
                Some(tag) => f.report.contains(tag.as_str()) || f.title.contains(tag.as_str()),
                None => f
                    .task
                    .as_deref()
                    .is_none_or(|task| task == comm(&self.test)),
            }
    }
}

/// A positive control: a report a test expects to provoke, and what became of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Control {
    pub test: String,
    pub expect: Expectation,
    pub state: ControlState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlState {
    /// The report came, inside the test, at this console line.
    Fired { line: usize },
    /// No matching report while the test ran: the detector cannot be trusted.
    Silent,
    /// The detector was already off when the test ran (lockdep turns itself off after its
    /// first report), so its silence says nothing.
    NotJudged { why: String },
}

impl Control {
    pub fn fired(&self) -> bool {
        matches!(self.state, ControlState::Fired { .. })
    }
}

fn matches(e: &Expectation, f: &Finding) -> bool {
    e.kind == f.kind
        && e.title
            .as_ref()
            .is_none_or(|t| f.title.contains(t.as_str()))
}

/// The name a test's processes have in the kernel (`comm`: 15 bytes).
fn comm(test: &str) -> &str {
    let mut end = test.len().min(15);
    while !test.is_char_boundary(end) {
        end -= 1;
    }
    &test[..end]
}

/// Attribute findings to the positive controls of the tests that ran. A finding is
/// expected by a test only if it happened while that test ran (`during`, from the
/// console markers) and matches one of its expectations, and, where the report names a
/// task, the task is one of the test's (kmatrix's liveness reports: their tag instead).
/// Everything else stays a real finding: a control never hides a report it did not
/// cause. Returns each control's state.
pub fn attribute(
    findings: &mut [Finding],
    expected: &[Expected],
    tests: &[TestResult],
    boot_lines: &[usize],
) -> Vec<Control> {
    for f in findings.iter_mut() {
        f.expected_by = expected
            .iter()
            .find(|e| e.matches(f))
            .map(|e| e.test.clone());
    }
    expected
        .iter()
        .map(|e| {
            let fired = findings
                .iter()
                .find(|f| f.expected_by.as_deref() == Some(e.test.as_str()) && e.matches(f));
            let state = match fired {
                Some(f) => ControlState::Fired { line: f.line },
                None => match earlier_control(findings, e, tests, boot_lines) {
                    // lockdep's last possible report was another control's: it was
                    // alive up to there, and nothing after could be reported.
                    Some(line) => ControlState::Fired { line },
                    None => {
                        match detector_off_before(findings, &e.expect, &e.test, tests, boot_lines) {
                            Some(why) => ControlState::NotJudged { why },
                            None => ControlState::Silent,
                        }
                    }
                },
            };
            Control {
                test: e.test.clone(),
                expect: e.expect.clone(),
                state,
            }
        })
        .collect()
}

/// For the liveness step's lockdep control: the line of an expected lockdep report
/// (another control's) earlier in the same boot, which turned lockdep off on purpose.
fn earlier_control(
    findings: &[Finding],
    e: &Expected,
    tests: &[TestResult],
    boot_lines: &[usize],
) -> Option<usize> {
    if e.test != LIVENESS || e.expect.kind != Kind::Lockdep {
        return None;
    }
    let start = tests.iter().find(|t| t.name == e.test)?.console_line?;
    let boot = boot_lines
        .iter()
        .copied()
        .filter(|b| *b <= start)
        .max()
        .unwrap_or(0);
    let f = findings
        .iter()
        .find(|f| f.kind == Kind::Lockdep && f.line >= boot && f.line < start)?;
    f.expected_by.as_ref().map(|_| f.line)
}

/// Was the detector a control relies on already off when its test started? lockdep
/// switches itself off for the rest of the boot after its first report.
fn detector_off_before(
    findings: &[Finding],
    e: &Expectation,
    test: &str,
    tests: &[TestResult],
    boot_lines: &[usize],
) -> Option<String> {
    if e.kind != Kind::Lockdep {
        return None;
    }
    let start = tests.iter().find(|t| t.name == test)?.console_line?;
    let boot = boot_lines
        .iter()
        .copied()
        .filter(|b| *b <= start)
        .max()
        .unwrap_or(0);
    let earlier = findings.iter().find(|f| {
        f.line >= boot
            && f.line < start
            && (f.kind == Kind::Lockdep || f.title.contains("MAX_LOCKDEP"))
    })?;
    Some(format!(
        "lockdep was already off: it turned itself off after `{}` (console line {})",
        earlier.title, earlier.line
    ))
}

fn is_hang(k: Kind) -> bool {
    matches!(
        k,
        Kind::HungTask | Kind::SoftLockup | Kind::RcuStall | Kind::HardLockup
    )
}

/// Decide the verdict of a cell that booted and ran its tests.
/// Kernel reports win over test results: a test that passed on a kernel that oopsed is
/// still a FAIL. A test that overran or an unexpected hung-task report is a HANG. Findings
/// a positive control caused do not count against the kernel; a control that stayed
/// silent makes an otherwise clean cell INCONCLUSIVE (the detectors cannot be trusted).
pub fn decide(
    tests: &[TestResult],
    findings: &[Finding],
    controls: &[Control],
) -> (Verdict, Option<String>) {
    let real: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.expected_by.is_none())
        .collect();
    if let Some(f) = real.iter().find(|f| !is_hang(f.kind)) {
        return (Verdict::Fail, Some(f.title.clone()));
    }
    if let Some(t) = tests
        .iter()
        .find(|t| matches!(t.outcome, TestOutcome::TimedOut { .. }))
    {
        return (
            Verdict::Hang,
            Some(format!("test {} overran its timeout", t.name)),
        );
    }
    if let Some(f) = real.iter().find(|f| is_hang(f.kind)) {
        return (Verdict::Hang, Some(f.title.clone()));
    }
    if let Some(t) = tests
        .iter()
        .find(|t| matches!(t.outcome, TestOutcome::Unresponsive { .. }))
    {
        return (
            Verdict::Hang,
            Some(format!("the guest stopped answering SSH during {}", t.name)),
        );
    }
    if let Some((t, why)) = tests.iter().find_map(|t| t.failure().map(|w| (t, w))) {
        return (Verdict::Fail, Some(format!("{}: {why}", t.name)));
    }
    if let Some(c) = controls.iter().find(|c| !c.fired()) {
        if c.test == LIVENESS {
            let what = match c.expect.kind {
                Kind::Lockdep => "lockdep",
                _ => "the hung-task detector",
            };
            let why = match &c.state {
                ControlState::NotJudged { why } => why.clone(),
                _ => "its tagged liveness report did not come".into(),
            };
            return (
                Verdict::Inconclusive,
                Some(format!(
                    "{what} was not proven alive at the end of the cell: {why}"
                )),
            );
        }
        let what = format!(
            "{:?} report{}",
            c.expect.kind,
            c.expect
                .title
                .as_ref()
                .map(|t| format!(" matching `{t}`"))
                .unwrap_or_default()
        );
        let why = match &c.state {
            ControlState::NotJudged { why } => {
                format!(
                    "positive control of {} could not be judged ({what}): {why}",
                    c.test
                )
            }
            _ => format!("positive control of {} stayed silent: no {what}", c.test),
        };
        return (Verdict::Inconclusive, Some(why));
    }
    (Verdict::Pass, None)
}

/// What the kernel has, from its final `.config`, that the evidence rules depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelFacts {
    pub lockdep: bool,
    pub hung_task: bool,
    pub per_vma_lock: bool,
    pub per_vma_lock_stats: bool,
}

impl KernelFacts {
    pub fn from_config(config: &str) -> KernelFacts {
        let c = crate::kconfig::parse(config);
        let on = |s: &str| c.get(s).is_some_and(|v| v == "y");
        KernelFacts {
            lockdep: on("PROVE_LOCKING") || on("LOCKDEP"),
            hung_task: on("DETECT_HUNG_TASK"),
            per_vma_lock: on("PER_VMA_LOCK"),
            per_vma_lock_stats: on("PER_VMA_LOCK_STATS"),
        }
    }
}

/// The detectors' state from the liveness controls (`None`: the step did not run, and
/// `skipped` says why).
pub fn detectors(controls: &[Control], facts: KernelFacts, skipped: Option<&str>) -> Detectors {
    let one = |built: bool, kind: Kind| {
        if !built {
            return Detector::NotBuilt;
        }
        if let Some(why) = skipped {
            return Detector::NotChecked {
                why: why.to_string(),
            };
        }
        match controls
            .iter()
            .find(|c| c.test == LIVENESS && c.expect.kind == kind)
            .map(|c| &c.state)
        {
            Some(ControlState::Fired { .. }) => Detector::Alive,
            Some(ControlState::NotJudged { why }) => Detector::Dead { why: why.clone() },
            Some(ControlState::Silent) => Detector::Dead {
                why: "its tagged liveness report did not come".into(),
            },
            None => Detector::NotChecked {
                why: "no liveness step".into(),
            },
        }
    };
    Detectors {
        lockdep: one(facts.lockdep, Kind::Lockdep),
        hung_task: one(facts.hung_task, Kind::HungTask),
    }
}

/// The stress programs' claim checked against the kernel's own counters: with per-VMA
/// lock statistics built, a stress test (one that prints overlap evidence) whose run left
/// `vma_lock_success` unchanged did not exercise the path it is about. Returns the
/// cell-level contradiction when a kernel built without per-VMA locks shows their
/// counters (the kernel that ran is not the one configured).
pub fn check_evidence(
    tests: &mut [TestResult],
    facts: KernelFacts,
    before: &BTreeMap<String, u64>,
) -> Option<String> {
    if !facts.per_vma_lock && !before.is_empty() {
        return Some(
            "per-VMA lock counters in /proc/vmstat of a kernel configured without CONFIG_PER_VMA_LOCK"
                .into(),
        );
    }
    if facts.per_vma_lock && facts.per_vma_lock_stats {
        for t in tests.iter_mut() {
            let stress = t.overlap.is_some();
            let ran = matches!(t.outcome, TestOutcome::Exited { .. });
            if stress && ran && t.vmstat_delta.get("vma_lock_success").copied().unwrap_or(0) == 0 {
                t.evidence = Some(
                    "not ok: per-VMA lock path not exercised (vma_lock_success did not move)"
                        .into(),
                );
            }
        }
    }
    None
}

/// Fold N repeated boots of one cell into its result: the worst verdict (its reason and
/// evidence), every distinct finding once, and per finding how many boots showed it.
/// Returns the folder of the boot the cell reports (the worst one).
pub fn combine_repeats(into: &mut CellResult, runs: Vec<CellResult>) -> Option<PathBuf> {
    into.repeats = runs.len() as u32;
    let worst = runs.iter().max_by_key(|r| r.verdict.severity())?;
    into.verdict = worst.verdict;
    into.reason = worst.reason.clone().map(|r| {
        let times = runs.iter().filter(|x| x.verdict == worst.verdict).count();
        format!("{r} ({times}/{} boots)", runs.len())
    });
    into.details = worst.details.clone();
    into.accel = worst.accel;
    into.accel_note = worst.accel_note.clone();
    into.tests = worst.tests.clone();
    into.controls = worst.controls.clone();
    into.vmstat_before = worst.vmstat_before.clone();
    into.vmstat_after = worst.vmstat_after.clone();
    into.forensics = worst.forensics.clone();
    into.detectors = worst.detectors.clone();
    into.ssh_ready_secs = worst.ssh_ready_secs;
    into.kernel_init_secs = worst.kernel_init_secs;
    into.guest_cpus = worst.guest_cpus;
    // The cell booted if its reported boot did (attribution counts booted cells).
    into.boot_lines = worst.boot_lines.clone();
    for r in &runs {
        into.notes.extend(r.notes.iter().cloned());
        // Each boot's phases follow the shared ones (source to image) on the timeline.
        into.phases.extend(r.phases.iter().cloned());
        let mut seen = std::collections::BTreeSet::new();
        for f in &r.findings {
            if seen.insert(f.title.clone()) {
                *into.finding_rates.entry(f.title.clone()).or_default() += 1;
            }
            if !into.findings.iter().any(|g| g.title == f.title) {
                into.findings.push(f.clone());
            }
        }
    }
    into.notes.dedup();
    Some(worst.dir.clone())
}

/// `name value` lines of /proc/vmstat.
pub fn parse_vmstat(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// What each counter rose by between two readings (counters only grow; a missing or
/// smaller later value counts as no change).
pub fn vmstat_delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, a)| {
            (
                k.clone(),
                a.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .collect()
}

/// Mark findings whose title also appears in the baseline cell of the same arch and
/// config, so that regressions stand out.
pub fn mark_baseline(cells: &mut [CellResult], baseline: &str) {
    let base: Vec<(Arch, String, Vec<String>)> = cells
        .iter()
        .filter(|c| c.patchset == baseline)
        .map(|c| {
            (
                c.arch,
                c.config.clone(),
                c.findings.iter().map(|f| f.title.clone()).collect(),
            )
        })
        .collect();
    for c in cells.iter_mut().filter(|c| c.patchset != baseline) {
        let Some((_, _, titles)) = base.iter().find(|(a, k, _)| *a == c.arch && *k == c.config)
        else {
            continue;
        };
        c.in_baseline = c
            .findings
            .iter()
            .filter(|f| titles.contains(&f.title))
            .map(|f| f.title.clone())
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(name: &str, ktap: &str, status: i32) -> TestResult {
        TestResult {
            ktap: crate::ktap::parse(ktap),
            seconds: 1.0,
            ..TestResult::new(name, TestOutcome::Exited { status })
        }
    }
    fn finding(kind: Kind, title: &str) -> Finding {
        Finding {
            kind,
            title: title.into(),
            line: 1,
            ..Default::default()
        }
    }
    fn during(mut f: Finding, test: &str, line: usize) -> Finding {
        f.during = Some(test.into());
        f.line = line;
        f
    }
    const OK: &str = "TAP version 13\n1..1\nok 1 a\n";

    fn plain(tests: &[TestResult], findings: &[Finding]) -> Verdict {
        decide(tests, findings, &[]).0
    }

    #[test]
    fn phase_spans_run_to_the_next_phase_and_the_last_to_the_cells_end() {
        use crate::events::Phase;
        let mut c = CellResult::new(
            &crate::plan::tests::cell(Arch::X86_64, "pvl-on", "base"),
            "/r".into(),
        );
        assert!(c.phase_spans().is_empty());
        let at = |phase, detail: &str, at| PhaseStart {
            phase,
            detail: detail.into(),
            at,
        };
        c.phases = vec![
            at(Phase::Source, "", 1000.0),
            at(Phase::Build, "make", 1002.0),
            at(Phase::Boot, "tcg", 1300.0),
            at(Phase::Test, "faults_vs_writers", 1299.0),
        ];
        c.seconds = 320.0;
        let spans: Vec<(f64, f64)> = c
            .phase_spans()
            .iter()
            .map(|s| (s.offset, s.seconds))
            .collect();
        // The clock stepped back at the test: zero, never negative.
        assert_eq!(
            spans,
            [(0.0, 2.0), (2.0, 298.0), (300.0, 0.0), (299.0, 21.0)]
        );
    }

    #[test]
    fn pass_needs_complete_ktap_and_no_reports() {
        assert_eq!(plain(&[test("t", OK, 0)], &[]), Verdict::Pass);
        assert_eq!(
            plain(&[test("t", "TAP version 13\n1..2\nok 1 a\n", 0)], &[]),
            Verdict::Fail
        );
        assert_eq!(
            plain(&[test("t", "TAP version 13\n1..1\nnot ok 1 a\n", 1)], &[]),
            Verdict::Fail
        );
    }

    #[test]
    fn a_kernel_report_fails_a_cell_whose_tests_passed() {
        let f = [finding(
            Kind::Lockdep,
            "possible deadlock in vma_start_read_unlocked",
        )];
        let (v, why) = decide(&[test("t", OK, 0)], &f, &[]);
        assert_eq!(v, Verdict::Fail);
        assert_eq!(why.unwrap(), "possible deadlock in vma_start_read_unlocked");
    }

    #[test]
    fn hung_task_or_overrun_is_hang() {
        let f = [finding(Kind::HungTask, "INFO: task hung in x")];
        assert_eq!(plain(&[test("t", OK, 0)], &f), Verdict::Hang);
        let t = TestResult::new(
            "t",
            TestOutcome::TimedOut {
                message: "overran".into(),
            },
        );
        assert_eq!(plain(&[t], &[]), Verdict::Hang);
    }

    #[test]
    fn a_guest_that_stops_answering_ssh_is_hang_but_a_real_report_wins() {
        let t = TestResult::new(
            "drill",
            TestOutcome::Unresponsive {
                message: "the guest stopped answering SSH".into(),
            },
        );
        let (v, why) = decide(std::slice::from_ref(&t), &[], &[]);
        assert_eq!(v, Verdict::Hang);
        assert_eq!(why.unwrap(), "the guest stopped answering SSH during drill");
        let f = [finding(Kind::Bug, "kernel BUG in x")];
        assert_eq!(plain(&[t], &f), Verdict::Fail);
    }

    fn expect(kind: Kind, title: Option<&str>) -> Expected {
        Expected::of_test(
            "vma_probe",
            &Expectation {
                kind,
                title: title.map(str::to_string),
            },
        )
    }

    #[test]
    fn vmstat_and_baseline() {
        let v = parse_vmstat("vma_lock_success 120\nvma_lock_abort 3\nbogus\n");
        assert_eq!(v["vma_lock_success"], 120);
        assert_eq!(v.len(), 2);
        let after = parse_vmstat("vma_lock_success 150\nvma_lock_abort 1\n");
        let d = vmstat_delta(&v, &after);
        assert_eq!((d["vma_lock_success"], d["vma_lock_abort"]), (30, 0));
        let cell = |ps: &str, titles: &[&str]| {
            let mut c = CellResult::new(
                &crate::plan::tests::cell(Arch::X86_64, "pvl-on", ps),
                "/tmp".into(),
            );
            c.findings = titles.iter().map(|t| finding(Kind::Warning, t)).collect();
            c
        };
        let mut cells = vec![
            cell("base", &["WARNING in foo"]),
            cell("v2", &["WARNING in foo", "WARNING in bar"]),
        ];
        mark_baseline(&mut cells, "base");
        assert_eq!(cells[1].in_baseline, ["WARNING in foo"]);
        assert!(cells[0].in_baseline.is_empty());
    }

    #[test]
    fn repeats_keep_the_worst_verdict_and_count_findings_per_boot() {
        let mk = |v: Verdict, titles: &[&str]| {
            let mut c = CellResult::new(
                &crate::plan::tests::cell(Arch::X86_64, "pvl-on", "v2"),
                "/tmp".into(),
            );
            c.verdict = v;
            c.reason = (v != Verdict::Pass).then(|| "oops".to_string());
            c.findings = titles.iter().map(|t| finding(Kind::NullDeref, t)).collect();
            c
        };
        let mut into = mk(Verdict::InfraError, &[]);
        let mut failed = mk(Verdict::Fail, &["BUG in a", "BUG in a"]);
        failed.boot_lines = vec![1, 300];
        failed.dir = "/tmp/repeat-2".into();
        let worst = combine_repeats(
            &mut into,
            vec![
                mk(Verdict::Pass, &[]),
                mk(Verdict::Fail, &["BUG in a", "BUG in b"]),
                failed,
            ],
        );
        assert_eq!(
            worst.as_deref(),
            Some(std::path::Path::new("/tmp/repeat-2"))
        );
        // It booted: attribution across the matrix counts it.
        assert_eq!(into.boot_lines, [1, 300]);
        assert_eq!(into.verdict, Verdict::Fail);
        assert_eq!(into.repeats, 3);
        assert_eq!(into.reason.as_deref(), Some("oops (2/3 boots)"));
        assert_eq!(into.finding_rates["BUG in a"], 2);
        assert_eq!(into.finding_rates["BUG in b"], 1);
        assert_eq!(into.findings.len(), 2);
    }

    fn probe_run(start: usize) -> Vec<TestResult> {
        let mut a = test("faults_vs_writers", OK, 0);
        a.console_line = Some(100);
        let mut p = test("vma_probe", OK, 0);
        p.console_line = Some(start);
        vec![a, p]
    }

    #[test]
    fn controls_that_fire_inside_their_test_are_expected_and_the_cell_passes() {
        let mut findings = vec![
            during(
                finding(Kind::Lockdep, "possible deadlock in vma_probe_write"),
                "vma_probe",
                510,
            ),
            during(
                finding(Kind::HungTask, "INFO: task hung in vma_start_write"),
                "vma_probe",
                700,
            ),
        ];
        let exp = [expect(Kind::Lockdep, None), expect(Kind::HungTask, None)];
        let tests = probe_run(500);
        let controls = attribute(&mut findings, &exp, &tests, &[1]);
        assert!(findings
            .iter()
            .all(|f| f.expected_by.as_deref() == Some("vma_probe")));
        assert!(controls.iter().all(|c| c.fired()));
        assert_eq!(decide(&tests, &findings, &controls).0, Verdict::Pass);
    }

    #[test]
    fn a_real_report_in_another_test_is_never_hidden_by_a_control() {
        // Issue #15: a lock inversion lockdep reports during faults_vs_writers, in a cell
        // whose vma_probe expects a lockdep report. Today's code called it "expected".
        let mut findings = vec![during(
            finding(Kind::Lockdep, "possible deadlock in do_madvise"),
            "faults_vs_writers",
            180,
        )];
        let exp = [expect(Kind::Lockdep, None)];
        let tests = probe_run(500);
        let controls = attribute(&mut findings, &exp, &tests, &[1]);
        assert_eq!(findings[0].expected_by, None);
        // lockdep was off by the time the probe ran: its silence is not judged.
        let ControlState::NotJudged { why } = &controls[0].state else {
            panic!("{:?}", controls[0].state)
        };
        assert!(
            why.contains("possible deadlock in do_madvise") && why.contains("180"),
            "{why}"
        );
        let (v, why) = decide(&tests, &findings, &controls);
        assert_eq!(v, Verdict::Fail);
        assert_eq!(why.unwrap(), "possible deadlock in do_madvise");
    }

    #[test]
    fn a_report_outside_any_test_or_naming_another_task_is_real() {
        let exp = [expect(Kind::HungTask, None)];
        let mut outside = vec![finding(Kind::HungTask, "INFO: task hung in x")];
        attribute(&mut outside, &exp, &probe_run(500), &[1]);
        assert_eq!(outside[0].expected_by, None);
        let mut other_task = vec![during(
            finding(Kind::HungTask, "INFO: task hung in y"),
            "vma_probe",
            600,
        )];
        other_task[0].task = Some("kworker/0:1".into());
        attribute(&mut other_task, &exp, &probe_run(500), &[1]);
        assert_eq!(other_task[0].expected_by, None, "not the test's task");
        let mut own = vec![during(
            finding(Kind::HungTask, "INFO: task hung in y"),
            "vma_probe",
            600,
        )];
        own[0].task = Some("vma_probe".into());
        attribute(&mut own, &exp, &probe_run(500), &[1]);
        assert_eq!(own[0].expected_by.as_deref(), Some("vma_probe"));
        // comm is 15 bytes: a long test name matches its truncated task name.
        assert_eq!(comm("tcp_zerocopy_vs_writers"), "tcp_zerocopy_vs");
    }

    #[test]
    fn a_lockdep_report_in_an_earlier_boot_does_not_excuse_a_silent_control() {
        let mut findings = vec![during(
            finding(Kind::Lockdep, "possible deadlock in a"),
            "faults_vs_writers",
            180,
        )];
        let exp = [expect(Kind::Lockdep, None)];
        // The probe ran in boot 2 (from line 400), where lockdep started afresh.
        let controls = attribute(&mut findings, &exp, &probe_run(500), &[1, 400]);
        assert_eq!(controls[0].state, ControlState::Silent);
    }

    #[test]
    fn a_silent_control_is_inconclusive_but_a_real_bug_still_fails() {
        let exp = [expect(Kind::Lockdep, Some("possible deadlock"))];
        let tests = probe_run(500);
        let controls = attribute(&mut [], &exp, &tests, &[1]);
        let (v, why) = decide(&tests, &[], &controls);
        assert_eq!(v, Verdict::Inconclusive);
        assert!(why.unwrap().contains("stayed silent"));
        let mut oops = vec![during(
            finding(
                Kind::NullDeref,
                "BUG: unable to handle kernel NULL pointer dereference in vma_start_read_unlocked",
            ),
            "vma_probe",
            520,
        )];
        let controls = attribute(&mut oops, &exp, &tests, &[1]);
        assert_eq!(oops[0].expected_by, None);
        assert_eq!(decide(&tests, &oops, &controls).0, Verdict::Fail);
    }

    #[test]
    fn liveness_reports_are_controls_told_by_their_tag_and_prove_the_detectors() {
        let mut live = test(LIVENESS, OK, 0);
        live.console_line = Some(900);
        let mut tests = probe_run(500);
        tests.push(live);
        let tagged = |kind, title: &str, task: &str| {
            let mut f = during(finding(kind, title), LIVENESS, 910);
            f.task = Some(task.into());
            f.report = format!("{title}\n lock(kmatrix_liveness_a);");
            f
        };
        let exp = [
            Expected::liveness(Kind::Lockdep),
            Expected::liveness(Kind::HungTask),
        ];
        let mut findings = vec![
            tagged(
                Kind::Lockdep,
                "possible deadlock in kmatrix_liveness_lockdep",
                "insmod",
            ),
            tagged(
                Kind::HungTask,
                "INFO: task hung in kmatrix_liveness_hung",
                "kmatrix_livenes",
            ),
        ];
        let controls = attribute(&mut findings, &exp, &tests, &[1]);
        assert!(findings
            .iter()
            .all(|f| f.expected_by.as_deref() == Some(LIVENESS)));
        let facts = KernelFacts {
            lockdep: true,
            hung_task: true,
            ..Default::default()
        };
        let d = detectors(&controls, facts, None);
        assert_eq!(
            (d.lockdep.clone(), d.hung_task.clone()),
            (Detector::Alive, Detector::Alive)
        );
        assert_eq!(d.summary(), "lockdep alive, hung-task alive");
        assert_eq!(decide(&tests, &findings, &controls).0, Verdict::Pass);
        // An untagged report during the step is a real one.
        let mut other = vec![during(
            finding(Kind::Lockdep, "possible deadlock in x"),
            LIVENESS,
            910,
        )];
        let controls = attribute(&mut other, &exp, &tests, &[1]);
        assert_eq!(other[0].expected_by, None);
        assert_eq!(decide(&tests, &other, &controls).0, Verdict::Fail);
    }

    #[test]
    fn a_dead_detector_makes_a_clean_cell_inconclusive_and_an_unbuilt_one_is_said() {
        let mut live = test(LIVENESS, OK, 0);
        live.console_line = Some(900);
        let tests = vec![test("faults_vs_writers", OK, 0), live];
        let exp = [
            Expected::liveness(Kind::Lockdep),
            Expected::liveness(Kind::HungTask),
        ];
        let controls = attribute(&mut [], &exp, &tests, &[1]);
        let (v, why) = decide(&tests, &[], &controls);
        assert_eq!(v, Verdict::Inconclusive);
        assert!(why.unwrap().starts_with("lockdep was not proven alive"));
        let d = detectors(&[], KernelFacts::default(), None);
        assert_eq!(d.summary(), "lockdep not built, hung-task not built");
    }

    #[test]
    fn a_stress_test_that_missed_the_per_vma_lock_path_fails() {
        let facts = KernelFacts {
            per_vma_lock: true,
            per_vma_lock_stats: true,
            ..Default::default()
        };
        let mut t = test("faults_vs_writers", OK, 0);
        t.overlap = Some(Overlap::default());
        t.vmstat_delta.insert("vma_lock_success".into(), 0);
        let mut module = test("vma_module", OK, 0);
        module.vmstat_delta.insert("vma_lock_success".into(), 0);
        let mut tests = vec![t, module];
        assert_eq!(check_evidence(&mut tests, facts, &BTreeMap::new()), None);
        assert!(
            !tests[0].passed() && tests[1].passed(),
            "only stress tests need the path"
        );
        assert!(tests[0]
            .failure()
            .unwrap()
            .contains("per-VMA lock path not exercised"));
        // pvl-off: the counters must be absent.
        let off = KernelFacts::default();
        let before = parse_vmstat("vma_lock_success 3\n");
        assert!(check_evidence(&mut [], off, &before)
            .unwrap()
            .contains("without CONFIG_PER_VMA_LOCK"));
        let f = KernelFacts::from_config("CONFIG_PER_VMA_LOCK=y\nCONFIG_PER_VMA_LOCK_STATS=y\nCONFIG_PROVE_LOCKING=y\n# CONFIG_DETECT_HUNG_TASK is not set\n");
        assert!(f.per_vma_lock && f.per_vma_lock_stats && f.lockdep && !f.hung_task);
    }

    #[test]
    fn categories_drive_the_exit_code() {
        let mk = |v| {
            let mut c = CellResult::new(
                &crate::plan::tests::cell(Arch::X86_64, "c", "p"),
                "/tmp".into(),
            );
            c.verdict = v;
            c
        };
        assert_eq!(exit_code(&[mk(Verdict::Pass)]), 0);
        assert_eq!(exit_code(&[]), 1, "no cell is not a pass");
        assert_eq!(
            exit_code(&[mk(Verdict::Pass), mk(Verdict::Inconclusive)]),
            1
        );
        assert_eq!(exit_code(&[mk(Verdict::Fail), mk(Verdict::InfraError)]), 3);
        assert_eq!(
            exit_code(&[mk(Verdict::InfraError), mk(Verdict::Interrupted)]),
            130
        );
        for v in Verdict::ALL {
            assert_eq!(
                v.is_final(),
                !matches!(v, Verdict::InfraError | Verdict::Interrupted)
            );
        }
    }

    #[test]
    fn overlap_line_is_parsed_and_bounded() {
        let o = Overlap::from_ktap("TAP version 13\n# kmatrix-overlap: window=7.512 faults=1200 mprotect=40 BAD=1 x=y\nok 1 a\n").unwrap();
        assert_eq!(o.window_secs, 7.512);
        assert_eq!(o.ops.len(), 2);
        assert_eq!(o.ops["faults"], 1200);
        assert!(Overlap::from_ktap("ok 1 a\n").is_none());
    }
}
