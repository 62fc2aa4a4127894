//! Attribution: which findings a positive control caused (inside its own test, naming
//! its own task or tag), and what became of each control.

use crate::record::finding::{Finding, Kind};
use crate::record::plan::Expectation;
use crate::record::result::{Control, ControlState, TestResult, LIVENESS, LIVENESS_TAG};

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

fn matches(e: &Expectation, f: &Finding) -> bool {
    e.kind == f.kind
        && e.title
            .as_ref()
            .is_none_or(|t| f.title.contains(t.as_str()))
}

/// The name a test's processes have in the kernel (`comm`: 15 bytes).
pub(crate) fn comm(test: &str) -> &str {
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
