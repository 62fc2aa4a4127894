//! Per-cell results and the verdict decided from the facts collected.

use crate::console::Finding;
use crate::ktap;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    #[serde(rename = "INTERRUPTED")]
    Interrupted,
}

impl Verdict {
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
            Verdict::Interrupted => "INTERRUPTED",
        }
    }
}

/// One guest test's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub name: String,
    pub exit_status: Option<i32>,
    pub ktap: ktap::Report,
    pub timed_out: bool,
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
#[derive(Debug, Clone, Serialize)]
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
    pub kernel_cached: Option<bool>,
    pub kernel_key: Option<String>,
    pub tests: Vec<TestResult>,
    pub findings: Vec<Finding>,
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
            kernel_cached: None,
            kernel_key: None,
            tests: vec![],
            findings: vec![],
            dir,
            seconds: 0.0,
        }
    }
}

/// Decide the verdict of a cell that booted and ran its tests.
/// Kernel reports win over test results: a test that passed on a kernel that oopsed
/// is still a FAIL. A test that overran or a hung-task report is a HANG.
pub fn decide(tests: &[TestResult], findings: &[Finding]) -> (Verdict, Option<String>) {
    use crate::console::Kind;
    let hang_report = findings.iter().any(|f| {
        matches!(
            f.kind,
            Kind::HungTask | Kind::SoftLockup | Kind::RcuStall | Kind::HardLockup
        )
    });
    let other_reports: Vec<&Finding> = findings
        .iter()
        .filter(|f| {
            !matches!(
                f.kind,
                Kind::HungTask | Kind::SoftLockup | Kind::RcuStall | Kind::HardLockup
            )
        })
        .collect();
    if let Some(f) = other_reports.first() {
        return (Verdict::Fail, Some(f.title.clone()));
    }
    if let Some(t) = tests.iter().find(|t| t.timed_out) {
        return (
            Verdict::Hang,
            Some(format!("test {} overran its timeout", t.name)),
        );
    }
    if hang_report {
        let f = findings.iter().find(|f| {
            matches!(
                f.kind,
                Kind::HungTask | Kind::SoftLockup | Kind::RcuStall | Kind::HardLockup
            )
        });
        return (Verdict::Hang, f.map(|f| f.title.clone()));
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
        }
    }
    const OK: &str = "TAP version 13\n1..1\nok 1 a\n";

    #[test]
    fn pass_needs_complete_ktap_and_no_reports() {
        assert_eq!(decide(&[test("t", OK, 0)], &[]).0, Verdict::Pass);
        assert_eq!(
            decide(&[test("t", "TAP version 13\n1..2\nok 1 a\n", 0)], &[]).0,
            Verdict::Fail
        );
        assert_eq!(
            decide(&[test("t", "TAP version 13\n1..1\nnot ok 1 a\n", 1)], &[]).0,
            Verdict::Fail
        );
    }

    #[test]
    fn a_kernel_report_fails_a_cell_whose_tests_passed() {
        let (v, why) = decide(
            &[test("t", OK, 0)],
            &[finding(
                Kind::Lockdep,
                "possible deadlock in vma_start_read_unlocked",
            )],
        );
        assert_eq!(v, Verdict::Fail);
        assert_eq!(why.unwrap(), "possible deadlock in vma_start_read_unlocked");
    }

    #[test]
    fn hung_task_or_overrun_is_hang() {
        assert_eq!(
            decide(
                &[test("t", OK, 0)],
                &[finding(Kind::HungTask, "INFO: task hung in x")]
            )
            .0,
            Verdict::Hang
        );
        let mut t = test("t", "", -1);
        t.timed_out = true;
        assert_eq!(decide(&[t], &[]).0, Verdict::Hang);
    }
}
