//! The one place a cell's run is judged, once per boot-and-test: the positive controls
//! of the tests that ran and of the liveness step, the evidence rules, attribution, the
//! detectors' state, then the verdict. The engine gathers the facts; this decides.

use crate::judge::attribute::{attribute, Expected};
use crate::judge::decide::decide;
use crate::judge::evidence::{check_evidence, detectors, KernelFacts};
use crate::record::coverage::{Reach, SeriesCoverage};
use crate::record::finding::Kind;
use crate::record::plan::TestSpec;
use crate::record::result::{CellResult, TestOutcome, TestResult, LIVENESS};
use crate::record::verdict::Verdict;

/// What the engine knows about a cell's run besides its result.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The spec's tests (their positive controls).
    pub tests: &'a [TestSpec],
    /// What the kernel has, from its config.
    pub kernel: KernelFacts,
    /// Console line where the liveness step started, if it ran.
    pub liveness_line: Option<usize>,
    /// Why the liveness step could not run, if it could not.
    pub liveness_skipped: Option<&'a str>,
    /// The run went to its end (no phase stopped it early).
    pub completed: bool,
}

/// Judge `r` from `f`: its controls and detectors are set either way; the verdict and
/// reason are returned only for a run that completed (an early stop keeps its own).
pub fn judge(r: &mut CellResult, f: &Facts) -> Option<(Verdict, Option<String>)> {
    let mut expected: Vec<Expected> = f
        .tests
        .iter()
        .filter(|t| r.tests.iter().any(|x| x.name == t.name))
        .flat_map(|t| t.expect.iter().map(|e| Expected::of_test(&t.name, e)))
        .collect();
    if f.liveness_line.is_some() {
        if f.kernel.lockdep {
            expected.push(Expected::liveness(Kind::Lockdep));
        }
        if f.kernel.hung_task {
            expected.push(Expected::liveness(Kind::HungTask));
        }
    }
    let contradiction = check_evidence(&mut r.tests, f.kernel, &r.vmstat_before);
    // The liveness step is placed among the tests by its start marker.
    let mut placed = r.tests.clone();
    if let Some(line) = f.liveness_line {
        let mut t = TestResult::new(LIVENESS, TestOutcome::Exited { status: 0 });
        t.console_line = Some(line);
        placed.push(t);
    }
    r.controls = attribute(&mut r.findings, &expected, &placed, &r.boot_lines);
    if !r.boot_lines.is_empty() {
        let skipped = match (f.liveness_skipped, f.liveness_line) {
            (Some(why), _) => Some(why),
            (None, None) => Some("the cell stopped before its last test"),
            (None, Some(_)) => None,
        };
        r.detectors = Some(detectors(&r.controls, f.kernel, skipped));
    }
    if !f.completed {
        return None;
    }
    if let Some(why) = contradiction {
        return Some((Verdict::ConfigMismatch, Some(why)));
    }
    Some(series_reached(
        decide(&r.tests, &r.findings, &r.controls),
        r.series_coverage.as_ref(),
    ))
}

/// A clean cell whose tests never ran a function the series changes (or none of its
/// lines) proves nothing about the series: INCONCLUSIVE, naming what never ran.
pub fn series_reached(
    decided: (Verdict, Option<String>),
    coverage: Option<&SeriesCoverage>,
) -> (Verdict, Option<String>) {
    match (decided.0, coverage) {
        (Verdict::Pass, Some(c)) if c.reach == Reach::NeverRan => {
            (Verdict::Inconclusive, Some(c.summary.clone()))
        }
        _ => decided,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coverage(reach: Reach, summary: &str) -> SeriesCoverage {
        SeriesCoverage {
            reach,
            summary: summary.into(),
            lines_added: 9,
            lines_measurable: 7,
            lines_ran: 0,
            tests: vec!["faults_vs_writers".into()],
            files: vec![],
            functions: vec![],
            notes: vec![],
        }
    }

    /// A clean run whose tests never reached the series is not a PASS; a failure stays
    /// a failure, and a series that ran keeps its PASS.
    #[test]
    fn a_pass_that_never_ran_the_series_is_inconclusive_naming_what_never_ran() {
        let never = coverage(
            Reach::NeverRan,
            "series coverage: 0 of 7 changed lines ran; functions never run: uncalled_helper",
        );
        let (v, why) = series_reached((Verdict::Pass, None), Some(&never));
        assert_eq!(v, Verdict::Inconclusive);
        assert!(why
            .unwrap()
            .contains("functions never run: uncalled_helper"));
        let fail = (Verdict::Fail, Some("BUG: x".to_string()));
        assert_eq!(series_reached(fail.clone(), Some(&never)), fail);
        let ran = coverage(
            Reach::PartlyRan,
            "series coverage: 5 of 7 changed lines ran",
        );
        assert_eq!(
            series_reached((Verdict::Pass, None), Some(&ran)).0,
            Verdict::Pass
        );
        assert_eq!(series_reached((Verdict::Pass, None), None).0, Verdict::Pass);
    }
}
