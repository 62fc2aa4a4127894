//! Everything known about a cell after it ran (or stopped early): results.json schema 2.
//! Plain data; the judging that fills the verdict is in `judge`.

use crate::record::finding::Finding;
use crate::record::ktap;
use crate::record::plan::{Accel, Arch, Cell, Expectation};
use crate::record::verdict::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
        match self {
            TestOutcome::TimedOut { .. } | TestOutcome::Unresponsive { .. } => true,
            TestOutcome::Exited { .. }
            | TestOutcome::NotRun { .. }
            | TestOutcome::GuestDied { .. }
            | TestOutcome::Abandoned { .. }
            | TestOutcome::HostError { .. } => false,
        }
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
                // `inf`, `NaN` and negatives parse as f64 too: none is a window (and NaN
                // would be written to results.json as null, which does not read back).
                o.window_secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|w| w.is_finite() && *w >= 0.0)
                    .map_or(0.0, |w| w.min(crate::record::fmt::MAX_SECS));
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
    /// The kernel's first line about a program of this test killed by a fault
    /// (`comm[pid]: segfault at ...`), when it printed one during the test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_fault: Option<String>,
    /// Race amplification while the test ran (`amplify:`): settings, probes, hits, delays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amplify: Option<crate::record::amplify::Amplified>,
    /// Performance samples the test printed (`# kmatrix-perf:` lines), per metric.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub perf: crate::record::perf::BootSamples,
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
            user_fault: None,
            amplify: None,
            perf: BTreeMap::new(),
        }
    }
    pub fn passed(&self) -> bool {
        self.outcome == TestOutcome::Exited { status: 0 }
            && self.ktap.passed()
            && self.evidence.is_none()
    }
    /// Why it passed without checking anything: every KTAP case skipped (the program
    /// found its kernel feature missing, e.g. THP in the default configs). Outputs show
    /// such a test as skipped with this reason, never as a plain pass.
    pub fn skipped(&self) -> Option<String> {
        if self.passed() {
            self.ktap.skip_reason()
        } else {
            None
        }
    }
    /// Why it did not pass, in one line.
    pub fn failure(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        Some(if let Some(m) = self.outcome.message() {
            m.to_string()
        } else if let Some(c) = self.ktap.failed().next() {
            // The check's last diagnostic is its evidence (our programs print the first
            // finding there), so a one-line summary in CI says what was wrong.
            match c.diag.last() {
                Some(d) => format!("not ok {} {}; {d}", c.number, c.description),
                None => format!("not ok {} {}", c.number, c.description),
            }
        } else if let Some(e) = &self.evidence {
            e.clone()
        } else if !self.ktap.complete() {
            // How the program ended is then the only evidence: a status above 128 is the
            // shell's "killed by signal N" (SIGKILL before any output: the OOM killer).
            let ended = match self.outcome {
                TestOutcome::Exited { status } if status > 128 && status < 128 + 65 => {
                    format!(
                        "KTAP output incomplete (exit status {status}: killed by {})",
                        signal_name(status - 128)
                    )
                }
                TestOutcome::Exited { status } if status != 0 => {
                    format!("KTAP output incomplete (exit status {status})")
                }
                _ => "KTAP output incomplete".into(),
            };
            // The kernel's own line on the fault that killed it, when there is one.
            match &self.user_fault {
                Some(f) => format!("{ended}; kernel: {f}"),
                None => ended,
            }
        } else {
            match self.outcome {
                TestOutcome::Exited { status } => format!("exit status {status}"),
                _ => "did not pass".into(),
            }
        })
    }
}

/// A signal's name on Linux (x86 and arm64 agree on these numbers), else its number.
fn signal_name(n: i32) -> String {
    const NAMES: [&str; 16] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
    ];
    usize::try_from(n)
        .ok()
        .and_then(|i| NAMES.get(i.wrapping_sub(1)))
        .map_or_else(|| format!("signal {n}"), |s| (*s).to_string())
}

/// Everything known about a cell after it ran (or stopped early). `results.json` schema 2.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub id: crate::record::plan::CellId,
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
    pub inputs: Option<crate::record::inputs::Inputs>,
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
    pub lock_graph: Option<crate::record::lockgraph::Diff>,
    /// Every boot's performance samples (one map per boot, `--repeat` gives several).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perf_boots: Vec<crate::record::perf::BootSamples>,
    /// Performance against the base cell, from those samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perf: Option<crate::record::perf::PerfAb>,
    /// Which of the lines the series changes this config built and which each test ran
    /// (cells with a series, on kernels with gcov).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_coverage: Option<crate::record::coverage::SeriesCoverage>,
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
    pub phase: crate::record::phase::Phase,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    pub at: f64,
}

impl PhaseStart {
    /// `build`, or `test (faults_vs_writers)`.
    pub fn describe(&self) -> String {
        match self.detail.as_str() {
            "" => self.phase.label().to_string(),
            d => format!("{} ({d})", self.phase.label()),
        }
    }
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
            perf_boots: vec![],
            perf: None,
            series_coverage: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::plan::Arch;

    #[test]
    fn phase_spans_run_to_the_next_phase_and_the_last_to_the_cells_end() {
        use crate::record::phase::Phase;
        let mut c = CellResult::new(
            &crate::record::plan::tests::cell(Arch::X86_64, "pvl-on", "base"),
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
    fn a_program_ended_before_its_ktap_says_how() {
        let ended = |status| TestResult::new("t", TestOutcome::Exited { status }).failure();
        assert_eq!(
            ended(137).unwrap(),
            "KTAP output incomplete (exit status 137: killed by SIGKILL)"
        );
        assert_eq!(
            ended(139).unwrap(),
            "KTAP output incomplete (exit status 139: killed by SIGSEGV)"
        );
        assert_eq!(
            ended(170).unwrap(),
            "KTAP output incomplete (exit status 170: killed by signal 42)"
        );
        assert_eq!(ended(2).unwrap(), "KTAP output incomplete (exit status 2)");
        assert_eq!(ended(0).unwrap(), "KTAP output incomplete");
        // The kernel's line on the fault, when it printed one during the test.
        let mut t = TestResult::new("t", TestOutcome::Exited { status: 139 });
        t.user_fault = Some("t[244]: segfault at 1 ip 000000000046c7ac error 4".into());
        assert_eq!(
            t.failure().unwrap(),
            "KTAP output incomplete (exit status 139: killed by SIGSEGV); \
             kernel: t[244]: segfault at 1 ip 000000000046c7ac error 4"
        );
    }

    #[test]
    fn overlap_line_is_parsed_and_bounded() {
        let o = Overlap::from_ktap("TAP version 13\n# kmatrix-overlap: window=7.512 faults=1200 mprotect=40 BAD=1 x=y\nok 1 a\n").unwrap();
        assert_eq!(o.window_secs, 7.512);
        assert_eq!(o.ops.len(), 2);
        assert_eq!(o.ops["faults"], 1200);
        assert!(Overlap::from_ktap("ok 1 a\n").is_none());
        // A window results.json could not hold, or one no test has, is none.
        for w in ["inf", "NaN", "-3", "1e400"] {
            let o = Overlap::from_ktap(&format!("# kmatrix-overlap: window={w}\n")).unwrap();
            assert_eq!(o.window_secs, 0.0, "{w}");
        }
        let o = Overlap::from_ktap("# kmatrix-overlap: window=1e300\n").unwrap();
        assert_eq!(o.window_secs, crate::record::fmt::MAX_SECS);
    }
}
