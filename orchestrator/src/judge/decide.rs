//! The verdict of a cell that booted and ran its tests, from its findings, tests and
//! controls; which report kinds are fatal and which are hangs.

use crate::record::finding::{Finding, Kind};
use crate::record::result::{Control, ControlState, TestOutcome, TestResult, LIVENESS};
use crate::record::verdict::Verdict;

/// What a report of a kind does to the guest and to the test that was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The kernel cannot go on as it was (an oops, a BUG, a panic): the test is abandoned
    /// after a grace period and the next tests run in a fresh boot.
    Fatal,
    /// Something stopped making progress: the test ends at once, forensics follow.
    Hang,
    /// A report the kernel survives (lockdep, a WARNING, a sanitizer's finding).
    Report,
}

/// One match over every kind: a new kind does not compile until it is classified.
pub fn effect(k: Kind) -> Effect {
    match k {
        Kind::NullDeref | Kind::PagingFault | Kind::Gpf | Kind::Bug | Kind::Panic | Kind::Kasan => {
            Effect::Fatal
        }
        Kind::HungTask | Kind::SoftLockup | Kind::RcuStall | Kind::HardLockup => Effect::Hang,
        Kind::Lockdep
        | Kind::Warning
        | Kind::Kfence
        | Kind::Kmsan
        | Kind::Kcsan
        | Kind::Ubsan
        | Kind::Kmemleak
        | Kind::SleepInAtomic
        | Kind::Other => Effect::Report,
    }
}

pub fn is_fatal(k: Kind) -> bool {
    effect(k) == Effect::Fatal
}

pub fn is_hang(k: Kind) -> bool {
    effect(k) == Effect::Hang
}

/// A finding that ends the boot: a fatal kind, or a report the kernel itself calls an
/// oops whatever its head (stack overflow, invalid opcode, arm64's "Internal error").
pub fn ends_the_boot(f: &Finding) -> bool {
    is_fatal(f.kind)
        || f.report.contains("Oops")
        || f.title.contains("stack overflow")
        || f.title.contains("Internal error")
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
