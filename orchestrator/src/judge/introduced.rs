//! Which new findings of a comparison the nightly bisects, and how often each step
//! boots: a new kernel report (by its title) or a new failure without one (by the
//! verdict the full series shows), in a cell whose series has more than one patch.
//! The repeat count comes from the finding's rate in the new run, so that a step that
//! shows nothing has at most a 5% chance of having missed a failure of that rate.

use crate::judge::compare::{Class, Comparison, Rate};

/// Most boots per step (a rarer failure is bisected anyway, with a higher chance that
/// a good step missed it; the bisection's record says how high).
pub const MAX_REPEAT: u32 = 5;
/// The chance of a miss per good step the repeat count aims for.
const MISS: f64 = 0.05;

/// What one bisection is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `Comparison::rows[i]`: a new kernel report.
    Row(usize),
    /// `Comparison::verdicts[i]`: a new failure without a report.
    Verdict(usize),
}

/// One bisection to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub target: Target,
    pub cell: String,
    /// The report to look for; None: the full series' own verdict.
    pub title: Option<String>,
    pub repeat: u32,
}

/// Boots per step for a failure seen in `rate.seen` of `rate.boots` boots: the least N
/// with `(1-p)^N <= 5%`, at most [`MAX_REPEAT`].
pub fn repeat_for(rate: Option<Rate>) -> u32 {
    let Some(r) = rate.filter(|r| r.boots > 0 && r.seen > 0) else {
        return 1;
    };
    let p = f64::from(r.seen.min(r.boots)) / f64::from(r.boots);
    if p >= 1.0 - MISS {
        return 1;
    }
    let n = (MISS.ln() / (1.0 - p).ln()).ceil();
    (n as u32).clamp(1, MAX_REPEAT)
}

/// The bisections a comparison calls for, given each cell's series length (None: the
/// cell is not in the spec); and the new findings left out, each with why.
pub fn jobs(
    c: &Comparison,
    series_len: impl Fn(&str) -> Option<usize>,
) -> (Vec<Job>, Vec<(Target, String)>) {
    let mut jobs = Vec::new();
    let mut left = Vec::new();
    let mut consider =
        |target: Target, cell: &str, title: Option<String>, rate| match series_len(cell) {
            None => left.push((target, format!("{cell} is not in the spec any more"))),
            Some(n) if n < 2 => left.push((
                target,
                format!("the series of {cell} has {n} patch(es): nothing to bisect"),
            )),
            Some(_) => jobs.push(Job {
                target,
                cell: cell.to_string(),
                title,
                repeat: repeat_for(rate),
            }),
        };
    for (i, r) in c.rows.iter().enumerate() {
        if r.class == Class::New {
            consider(Target::Row(i), &r.cell, Some(r.title.clone()), r.new);
        }
    }
    for (i, v) in c.verdicts.iter().enumerate() {
        if v.new_failure {
            consider(Target::Verdict(i), &v.cell, None, None);
        }
    }
    (jobs, left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::compare::{Counts, Row, VerdictChange};
    use crate::record::verdict::Verdict;

    fn rate(seen: u32, boots: u32) -> Option<Rate> {
        Some(Rate { seen, boots })
    }

    #[test]
    fn the_repeat_count_keeps_a_miss_under_five_percent() {
        assert_eq!(repeat_for(None), 1);
        assert_eq!(repeat_for(rate(1, 1)), 1);
        assert_eq!(repeat_for(rate(3, 3)), 1);
        // p = 1/2: 0.5^5 = 3% (0.5^4 = 6%).
        assert_eq!(repeat_for(rate(1, 2)), 5);
        // p = 2/3: (1/3)^3 = 3.7%.
        assert_eq!(repeat_for(rate(2, 3)), 3);
        // Rarer: capped.
        assert_eq!(repeat_for(rate(1, 10)), MAX_REPEAT);
    }

    #[test]
    fn new_findings_of_multi_patch_series_are_bisected_the_rest_said_why() {
        let row = |cell: &str, title: &str, class| Row {
            cell: cell.into(),
            title: title.into(),
            class,
            old: None,
            new: rate(1, 1),
            known: None,
            introduced: None,
        };
        let c = Comparison {
            schema: 1,
            old: "a".into(),
            new: "b".into(),
            rows: vec![
                row("x/on/v3", "BUG: x", Class::New),
                row("x/on/v3", "BUG: old", Class::StillFailing),
                row("x/on/one", "BUG: y", Class::New),
                row("x/on/gone", "BUG: z", Class::New),
            ],
            verdicts: vec![VerdictChange {
                cell: "x/off/v3".into(),
                old: Some(Verdict::Pass),
                new: Some(Verdict::BuildFail),
                reason: Some("mm/x.c: error".into()),
                new_failure: true,
                known: None,
                introduced: None,
            }],
            maybe_fixed: vec![],
            counts: Counts::default(),
        };
        let len = |cell: &str| match cell {
            "x/on/v3" | "x/off/v3" => Some(3),
            "x/on/one" => Some(1),
            _ => None,
        };
        let (jobs, left) = jobs(&c, len);
        assert_eq!(
            jobs,
            [
                Job {
                    target: Target::Row(0),
                    cell: "x/on/v3".into(),
                    title: Some("BUG: x".into()),
                    repeat: 1
                },
                Job {
                    target: Target::Verdict(0),
                    cell: "x/off/v3".into(),
                    title: None,
                    repeat: 1
                }
            ]
        );
        assert_eq!(left.len(), 2);
        assert!(left[0].1.contains("1 patch(es)"), "{left:?}");
        assert!(left[1].1.contains("not in the spec"), "{left:?}");
    }
}
