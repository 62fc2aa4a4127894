//! Per-cell results and the verdict decided from the facts collected.

use crate::console::Finding;
use crate::ktap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

impl Verdict {
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

/// Fold N repeated boots of one cell into its result: the worst verdict (its reason and
/// evidence), every distinct finding once, and per finding how many boots showed it.
pub fn combine_repeats(into: &mut CellResult, runs: Vec<CellResult>) {
    into.repeats = runs.len() as u32;
    let Some(worst) = runs.iter().max_by_key(|r| r.verdict.severity()) else {
        return;
    };
    into.verdict = worst.verdict;
    into.reason = worst.reason.clone().map(|r| {
        let times = runs.iter().filter(|x| x.verdict == worst.verdict).count();
        format!("{r} ({times}/{} boots)", runs.len())
    });
    into.details = worst.details.clone();
    into.accel = worst.accel.clone();
    into.accel_note = worst.accel_note.clone();
    into.tests = worst.tests.clone();
    into.controls = worst.controls.clone();
    into.vmstat_before = worst.vmstat_before.clone();
    into.vmstat_after = worst.vmstat_after.clone();
    into.forensics = worst.forensics.clone();
    for r in &runs {
        let mut seen = std::collections::BTreeSet::new();
        for (i, f) in r.findings.iter().enumerate() {
            if seen.insert(f.title.clone()) {
                *into.finding_rates.entry(f.title.clone()).or_default() += 1;
            }
            if !into.findings.iter().any(|g| g.title == f.title) {
                into.findings.push(f.clone());
                into.expected_by
                    .push(r.expected_by.get(i).cloned().flatten());
            }
        }
    }
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

/// Mark findings whose title also appears in the baseline cell of the same arch and
/// config, so that regressions stand out.
pub fn mark_baseline(cells: &mut [CellResult], baseline: &str) {
    let base: Vec<(String, String, Vec<String>)> = cells
        .iter()
        .filter(|c| c.patchset == baseline)
        .map(|c| {
            (
                c.arch.clone(),
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

impl Verdict {
    /// A verdict about the kernel (not about the run being cut short or the host).
    pub fn is_final(self) -> bool {
        !matches!(self, Verdict::Interrupted | Verdict::InfraError)
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
}

/// One guest test's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestResult {
    pub name: String,
    pub exit_status: Option<i32>,
    pub ktap: ktap::Report,
    pub timed_out: bool,
    /// SSH stopped answering while QEMU still ran (sshd dead or userspace stuck).
    #[serde(default)]
    pub unresponsive: bool,
    pub seconds: f64,
    /// The result file came back through the virtiofs share.
    pub result_file: Option<PathBuf>,
    pub error: Option<String>,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.exit_status == Some(0) && self.ktap.passed() && self.error.is_none()
    }
}

/// Everything known about a cell after it ran (or stopped early).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub id: String,
    pub arch: String,
    pub config: String,
    pub patchset: String,
    pub verdict: Verdict,
    /// One line saying why, for anything but PASS.
    pub reason: Option<String>,
    /// Detail lines: compiler errors, config mismatches, failed hunks.
    pub details: Vec<String>,
    pub accel: Option<String>,
    /// Set when the accelerator differs from the first choice (e.g. KVM failed here).
    pub accel_note: Option<String>,
    /// Identity of the kernel source tree (package and version, or path and git state).
    #[serde(default)]
    pub source_id: Option<String>,
    pub kernel_cached: Option<bool>,
    /// What was collected when a test hung (sysrq dumps over SSH, or console only).
    #[serde(default)]
    pub forensics: Option<String>,
    /// Seconds from QEMU's start to an authenticated SSH session.
    #[serde(default)]
    pub ssh_ready_secs: Option<f64>,
    /// The kernel's own timestamp of starting init (console printk time).
    #[serde(default)]
    pub kernel_init_secs: Option<f64>,
    pub kernel_key: Option<String>,
    pub tests: Vec<TestResult>,
    pub findings: Vec<Finding>,
    /// Parallel to `findings`: the test whose expectation this finding met (a positive
    /// control firing as it should), or None for a real finding.
    #[serde(default)]
    pub expected_by: Vec<Option<String>>,
    /// Positive controls of the tests that ran, and whether each fired.
    #[serde(default)]
    pub controls: Vec<Control>,
    /// `vma_lock_*` counters from /proc/vmstat before and after the tests (empty when
    /// the kernel has no per-VMA-lock statistics, e.g. pvl-off).
    #[serde(default)]
    pub vmstat_before: BTreeMap<String, u64>,
    #[serde(default)]
    pub vmstat_after: BTreeMap<String, u64>,
    /// With `--repeat N`: how many of the N boots showed each finding (by title), and N.
    #[serde(default)]
    pub finding_rates: BTreeMap<String, u32>,
    #[serde(default)]
    pub repeats: u32,
    /// Titles of findings also seen in the baseline cell of the same arch and config.
    #[serde(default)]
    pub in_baseline: Vec<String>,
    pub dir: PathBuf,
    pub seconds: f64,
}

impl CellResult {
    pub fn new(cell: &crate::plan::Cell, dir: PathBuf) -> CellResult {
        CellResult {
            id: cell.id(),
            arch: cell.arch.name().into(),
            config: cell.config.clone(),
            patchset: cell.patchset.clone(),
            verdict: Verdict::InfraError,
            reason: None,
            details: vec![],
            accel: None,
            accel_note: None,
            source_id: None,
            kernel_cached: None,
            forensics: None,
            ssh_ready_secs: None,
            kernel_init_secs: None,
            kernel_key: None,
            tests: vec![],
            findings: vec![],
            expected_by: vec![],
            controls: vec![],
            vmstat_before: BTreeMap::new(),
            vmstat_after: BTreeMap::new(),
            in_baseline: vec![],
            finding_rates: BTreeMap::new(),
            repeats: 0,
            dir,
            seconds: 0.0,
        }
    }
}

/// A positive control: a report a test expects to provoke, and whether it appeared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Control {
    pub test: String,
    pub expect: crate::plan::Expectation,
    pub fired: bool,
}

fn matches(e: &crate::plan::Expectation, f: &Finding) -> bool {
    e.kind == f.kind
        && e.title
            .as_ref()
            .is_none_or(|t| f.title.contains(t.as_str()))
}

/// Match findings against the expectations of the tests that ran.
pub fn match_expectations(
    expectations: &[(String, crate::plan::Expectation)],
    findings: &[Finding],
) -> (Vec<Option<String>>, Vec<Control>) {
    let expected_by = findings
        .iter()
        .map(|f| {
            expectations
                .iter()
                .find(|(_, e)| matches(e, f))
                .map(|(t, _)| t.clone())
        })
        .collect();
    let controls = expectations
        .iter()
        .map(|(t, e)| Control {
            test: t.clone(),
            expect: e.clone(),
            fired: findings.iter().any(|f| matches(e, f)),
        })
        .collect();
    (expected_by, controls)
}

fn is_hang(k: crate::console::Kind) -> bool {
    use crate::console::Kind;
    matches!(
        k,
        Kind::HungTask | Kind::SoftLockup | Kind::RcuStall | Kind::HardLockup
    )
}

/// Decide the verdict of a cell that booted and ran its tests.
/// Kernel reports win over test results: a test that passed on a kernel that oopsed is
/// still a FAIL. A test that overran or an unexpected hung-task report is a HANG. Findings
/// a positive control expected do not count against the kernel; a control that stayed
/// silent makes an otherwise clean cell INCONCLUSIVE (the detectors cannot be trusted).
pub fn decide(
    tests: &[TestResult],
    findings: &[Finding],
    expected_by: &[Option<String>],
    controls: &[Control],
) -> (Verdict, Option<String>) {
    let real: Vec<&Finding> = findings
        .iter()
        .enumerate()
        .filter(|(i, _)| expected_by.get(*i).is_none_or(|e| e.is_none()))
        .map(|(_, f)| f)
        .collect();
    let hang_report = real.iter().find(|f| is_hang(f.kind));
    let other_reports: Vec<&&Finding> = real.iter().filter(|f| !is_hang(f.kind)).collect();
    if let Some(f) = other_reports.first() {
        return (Verdict::Fail, Some(f.title.clone()));
    }
    if let Some(t) = tests.iter().find(|t| t.timed_out) {
        return (
            Verdict::Hang,
            Some(format!("test {} overran its timeout", t.name)),
        );
    }
    if let Some(f) = hang_report {
        return (Verdict::Hang, Some(f.title.clone()));
    }
    if let Some(t) = tests.iter().find(|t| t.unresponsive) {
        return (
            Verdict::Hang,
            Some(format!("the guest stopped answering SSH during {}", t.name)),
        );
    }
    if let Some(t) = tests.iter().find(|t| !t.passed()) {
        let why = if let Some(e) = &t.error {
            e.clone()
        } else if let Some(c) = t.ktap.failed().next() {
            format!("not ok {} {}", c.number, c.description)
        } else if !t.ktap.complete() {
            "KTAP output incomplete".into()
        } else {
            format!("exit status {:?}", t.exit_status)
        };
        return (Verdict::Fail, Some(format!("{}: {why}", t.name)));
    }
    if let Some(c) = controls.iter().find(|c| !c.fired) {
        return (
            Verdict::Inconclusive,
            Some(format!(
                "positive control of {} stayed silent: no {:?} report{}",
                c.test,
                c.expect.kind,
                c.expect
                    .title
                    .as_ref()
                    .map(|t| format!(" matching `{t}`"))
                    .unwrap_or_default()
            )),
        );
    }
    (Verdict::Pass, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::{Finding, Kind};

    fn test(name: &str, ktap: &str, status: i32) -> TestResult {
        TestResult {
            name: name.into(),
            exit_status: Some(status),
            ktap: crate::ktap::parse(ktap),
            timed_out: false,
            unresponsive: false,
            seconds: 1.0,
            result_file: None,
            error: None,
        }
    }
    fn finding(kind: Kind, title: &str) -> Finding {
        Finding {
            kind,
            title: title.into(),
            frame: None,
            corrupted: false,
            trace: vec![],
            task: None,
            pid: None,
            cpu: None,
            timestamp: None,
            line: 1,
            report: String::new(),
            ..Default::default()
        }
    }
    const OK: &str = "TAP version 13\n1..1\nok 1 a\n";

    fn plain(tests: &[TestResult], findings: &[Finding]) -> Verdict {
        let by = vec![None; findings.len()];
        decide(tests, findings, &by, &[]).0
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
        let (v, why) = decide(&[test("t", OK, 0)], &f, &[None], &[]);
        assert_eq!(v, Verdict::Fail);
        assert_eq!(why.unwrap(), "possible deadlock in vma_start_read_unlocked");
    }

    #[test]
    fn hung_task_or_overrun_is_hang() {
        let f = [finding(Kind::HungTask, "INFO: task hung in x")];
        assert_eq!(plain(&[test("t", OK, 0)], &f), Verdict::Hang);
        let mut t = test("t", "", -1);
        t.timed_out = true;
        assert_eq!(plain(&[t], &[]), Verdict::Hang);
    }

    #[test]
    fn a_guest_that_stops_answering_ssh_is_hang_but_a_real_report_wins() {
        let mut t = test("drill", "", -1);
        t.error = Some("the guest stopped answering SSH".into());
        t.unresponsive = true;
        let (v, why) = decide(std::slice::from_ref(&t), &[], &[], &[]);
        assert_eq!(v, Verdict::Hang);
        assert_eq!(why.unwrap(), "the guest stopped answering SSH during drill");
        let f = [finding(Kind::Bug, "kernel BUG in x")];
        assert_eq!(plain(&[t], &f), Verdict::Fail);
    }

    fn expect(kind: Kind, title: Option<&str>) -> (String, crate::plan::Expectation) {
        (
            "vma_probe".into(),
            crate::plan::Expectation {
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
        let cell = |ps: &str, titles: &[&str]| {
            let mut c = CellResult::new(
                &crate::plan::Cell {
                    arch: crate::plan::Arch::X86_64,
                    config: "pvl-on".into(),
                    patchset: ps.into(),
                    base_config: "tinyconfig".into(),
                    fragments: vec![],
                    patches: vec![],
                },
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
                &crate::plan::Cell {
                    arch: crate::plan::Arch::X86_64,
                    config: "pvl-on".into(),
                    patchset: "v2".into(),
                    base_config: "tinyconfig".into(),
                    fragments: vec![],
                    patches: vec![],
                },
                "/tmp".into(),
            );
            c.verdict = v;
            c.reason = (v != Verdict::Pass).then(|| "oops".to_string());
            c.findings = titles.iter().map(|t| finding(Kind::NullDeref, t)).collect();
            c.expected_by = vec![None; titles.len()];
            c
        };
        let mut into = mk(Verdict::InfraError, &[]);
        combine_repeats(
            &mut into,
            vec![
                mk(Verdict::Pass, &[]),
                mk(Verdict::Fail, &["BUG in a", "BUG in a"]),
                mk(Verdict::Fail, &["BUG in a", "BUG in b"]),
            ],
        );
        assert_eq!(into.verdict, Verdict::Fail);
        assert_eq!(into.repeats, 3);
        assert_eq!(into.reason.as_deref(), Some("oops (2/3 boots)"));
        assert_eq!(into.finding_rates["BUG in a"], 2);
        assert_eq!(into.finding_rates["BUG in b"], 1);
        assert_eq!(into.findings.len(), 2);
    }

    #[test]
    fn controls_that_fire_are_expected_and_the_cell_passes() {
        let findings = [
            finding(Kind::Lockdep, "possible deadlock in vma_probe_write"),
            finding(Kind::HungTask, "INFO: task hung in vma_start_write"),
        ];
        let exp = [expect(Kind::Lockdep, None), expect(Kind::HungTask, None)];
        let (by, controls) = match_expectations(&exp, &findings);
        assert_eq!(
            by,
            [Some("vma_probe".to_string()), Some("vma_probe".to_string())]
        );
        assert!(controls.iter().all(|c| c.fired));
        assert_eq!(
            decide(&[test("t", OK, 0)], &findings, &by, &controls).0,
            Verdict::Pass
        );
    }

    #[test]
    fn a_silent_control_is_inconclusive_but_a_real_bug_still_fails() {
        let exp = [expect(Kind::Lockdep, Some("possible deadlock"))];
        let (by, controls) = match_expectations(&exp, &[]);
        let (v, why) = decide(&[test("t", OK, 0)], &[], &by, &controls);
        assert_eq!(v, Verdict::Inconclusive);
        assert!(why.unwrap().contains("stayed silent"));
        let oops = [finding(
            Kind::NullDeref,
            "BUG: unable to handle kernel NULL pointer dereference in vma_start_read_unlocked",
        )];
        let (by, controls) = match_expectations(&exp, &oops);
        assert_eq!(by, [None]);
        assert_eq!(
            decide(&[test("t", OK, 0)], &oops, &by, &controls).0,
            Verdict::Fail
        );
    }
}
