//! `kmatrix compare OLD_RUN NEW_RUN`: what changed between two run folders (last night
//! and tonight, before and after a rebase). Pure: it reads the two `results.json`
//! (schemas 1 and 2, via [`crate::report::load_results`]) and nothing else.
//!
//! Per cell, the kernel reports (controls' expected ones left out) are keyed by their
//! dedup title and classed as `new`, `fixed`, `still failing` or `flaky` (seen in some
//! of a `--repeat` run's boots only); a new one that matches a known issue is `known`
//! instead, and one whose cell could not show it this time (it did not boot) is `not
//! judged` rather than fixed. Verdict changes are listed too; a cell that newly fails
//! without a kernel report (a build error, a test that overran) is new unless its
//! verdict line is a known issue. Exit 1 only for something new.
//!
//! The result goes to the terminal, to `compare.json` in the new run folder, and from
//! there to the top of that folder's `summary.md` and `report.html`.

use crate::record::bisect::Introduced;
use crate::record::result::CellResult;
use crate::record::verdict::{Category, Verdict};
use crate::spec::known::{self, KnownIssues, KnownRef};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The comparison inside the new run folder.
pub const FILE: &str = "compare.json";
/// Version of the `compare.json` layout.
pub const SCHEMA: u32 = 1;

/// How one title of one cell changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    New,
    /// New since the old run, but a known issue.
    Known,
    StillFailing,
    /// Seen in some of the boots only (of either run), so neither new nor fixed for sure.
    Flaky,
    Fixed,
    /// In the old run; the new run's cell did not boot (or is gone), so it cannot say.
    NotJudged,
}

impl Class {
    pub fn label(self) -> &'static str {
        match self {
            Class::New => "new",
            Class::Known => "known",
            Class::StillFailing => "still failing",
            Class::Flaky => "flaky",
            Class::Fixed => "fixed",
            Class::NotJudged => "not judged",
        }
    }
}

/// In how many of a run's boots a title was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub seen: u32,
    pub boots: u32,
}

impl Rate {
    pub fn partial(self) -> bool {
        self.seen < self.boots
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.seen, self.boots)
    }
}

/// One title of one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub cell: String,
    pub title: String,
    pub class: Class,
    pub old: Option<Rate>,
    pub new: Option<Rate>,
    /// The known issue it matches (in the new run's list), whatever its class.
    #[serde(default)]
    pub known: Option<KnownRef>,
    /// The patch of the cell's series that brought it (`kmatrix bisect-new`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<Introduced>,
}

/// A cell whose verdict differs between the runs (None: not in that run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictChange {
    pub cell: String,
    pub old: Option<Verdict>,
    pub new: Option<Verdict>,
    pub reason: Option<String>,
    /// A new failure no kernel report of the cell explains and no known issue names.
    pub new_failure: bool,
    #[serde(default)]
    pub known: Option<KnownRef>,
    /// The patch of the cell's series that brought the new failure (`kmatrix bisect-new`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<Introduced>,
}

/// A known issue the new run could have shown and did not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaybeFixed {
    pub known: KnownRef,
    pub cells: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub new: usize,
    pub known: usize,
    pub still_failing: usize,
    pub flaky: usize,
    pub fixed: usize,
    pub not_judged: usize,
    pub new_failures: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub schema: u32,
    pub old: PathBuf,
    pub new: PathBuf,
    pub rows: Vec<Row>,
    pub verdicts: Vec<VerdictChange>,
    pub maybe_fixed: Vec<MaybeFixed>,
    pub counts: Counts,
}

impl Comparison {
    /// Something new: a new kernel report or a new failure without one (known ones
    /// excluded).
    pub fn has_new(&self) -> bool {
        self.counts.new > 0 || self.counts.new_failures > 0
    }
    pub fn exit_code(&self) -> i32 {
        if self.has_new() {
            crate::record::verdict::exit::FINDINGS
        } else {
            crate::record::verdict::exit::PASS
        }
    }
    /// Across the matrix, per new finding (a title, or a cell's new failure), the
    /// patch that brought it in every cell a bisection was run for: `(what, [(cell,
    /// answer)])`, in the order of the rows.
    pub fn introduced(&self) -> Vec<(String, Vec<(String, &Introduced)>)> {
        let mut out: Vec<(String, Vec<(String, &Introduced)>)> = Vec::new();
        let found = self
            .rows
            .iter()
            .filter_map(|r| Some((r.title.clone(), r.cell.clone(), r.introduced.as_ref()?)))
            .chain(self.verdicts.iter().filter_map(|v| {
                let what = format!(
                    "{}{}",
                    v.new.map(|x| x.label()).unwrap_or("absent"),
                    v.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
                Some((what, v.cell.clone(), v.introduced.as_ref()?))
            }));
        for (what, cell, i) in found {
            match out.iter_mut().find(|(w, _)| *w == what) {
                Some((_, cells)) => cells.push((cell, i)),
                None => out.push((what, vec![(cell, i)])),
            }
        }
        out
    }
    /// One line: `1 new, 2 still failing, 1 fixed`.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let parts: Vec<String> = [
            (c.new, "new"),
            (c.new_failures, "new failure(s) without a report"),
            (c.known, "known"),
            (c.still_failing, "still failing"),
            (c.flaky, "flaky"),
            (c.fixed, "fixed"),
            (c.not_judged, "not judged"),
            (self.maybe_fixed.len(), "known issue(s) maybe fixed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            "no change in findings".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Each real (not expected) title of a cell, once, with its rate over the cell's boots.
fn titles(c: &CellResult) -> Vec<(String, Rate)> {
    let boots = c.repeats.max(1);
    let mut seen = BTreeSet::new();
    c.real_findings()
        .filter(|f| seen.insert(f.title.clone()))
        .map(|f| {
            let n = if c.repeats > 1 {
                c.finding_rates.get(&f.title).copied().unwrap_or(1)
            } else {
                1
            };
            (
                f.title.clone(),
                Rate {
                    seen: n.min(boots),
                    boots,
                },
            )
        })
        .collect()
}

/// Could this cell have shown a kernel report? Only a kernel that booted, in a run that
/// was not cut short.
fn booted(c: &CellResult) -> bool {
    c.verdict.is_final() && !c.boot_lines.is_empty()
}

/// Compare two runs' cells; `known` is the new run's list. The folders are only named.
pub fn compare(
    old_dir: &Path,
    old: &[CellResult],
    new_dir: &Path,
    new: &[CellResult],
    known: &KnownIssues,
) -> Comparison {
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for id in cell_ids(old, new) {
        let o = old.iter().find(|c| c.id == id);
        let n = new.iter().find(|c| c.id == id);
        rows.extend(title_rows(id, o, n, known));
        verdicts.extend(verdict_change(id, o, n, known));
    }
    let maybe_fixed = known
        .states(new)
        .into_iter()
        .filter_map(|(k, s)| match s {
            known::IssueState::MaybeFixed(cells) => Some(MaybeFixed {
                known: k.reference(),
                cells,
            }),
            _ => None,
        })
        .collect();
    let counts = counts(&rows, &verdicts);
    Comparison {
        schema: SCHEMA,
        old: old_dir.to_owned(),
        new: new_dir.to_owned(),
        rows,
        verdicts,
        maybe_fixed,
        counts,
    }
}

/// The new run's cell ids, then those only in the old run.
fn cell_ids<'a>(old: &'a [CellResult], new: &'a [CellResult]) -> Vec<&'a str> {
    let mut ids: Vec<&str> = new.iter().map(|c| c.id.as_str()).collect();
    for c in old {
        if !ids.contains(&c.id.as_str()) {
            ids.push(&c.id);
        }
    }
    ids
}

/// One cell's titles classed: the new run's (new, known, flaky or still failing), then
/// the old run's gone from it (flaky, fixed, or not judged when it could not show them).
fn title_rows(
    id: &str,
    o: Option<&CellResult>,
    n: Option<&CellResult>,
    known: &KnownIssues,
) -> Vec<Row> {
    let old_titles = o.map(titles).unwrap_or_default();
    let new_titles = n.map(titles).unwrap_or_default();
    let mut rows = Vec::new();
    for (title, rate) in &new_titles {
        let before = old_titles.iter().find(|(t, _)| t == title).map(|x| x.1);
        let hit = known.find(id, title).map(|k| k.reference());
        let class = match before {
            None if hit.is_some() => Class::Known,
            None => Class::New,
            Some(b) if rate.partial() || b.partial() => Class::Flaky,
            Some(_) => Class::StillFailing,
        };
        rows.push(Row {
            cell: id.to_string(),
            title: title.clone(),
            class,
            old: before,
            new: Some(*rate),
            known: hit,
            introduced: None,
        });
    }
    for (title, rate) in &old_titles {
        if new_titles.iter().any(|(t, _)| t == title) {
            continue;
        }
        let class = if rate.partial() {
            Class::Flaky
        } else if n.is_some_and(booted) {
            Class::Fixed
        } else {
            Class::NotJudged
        };
        rows.push(Row {
            cell: id.to_string(),
            title: title.clone(),
            class,
            old: Some(*rate),
            new: None,
            known: known.find(id, title).map(|k| k.reference()),
            introduced: None,
        });
    }
    rows
}

/// The cell's verdict change, if any: a new failure when no kernel report of the cell
/// explains it and no known issue names it.
fn verdict_change(
    id: &str,
    o: Option<&CellResult>,
    n: Option<&CellResult>,
    known: &KnownIssues,
) -> Option<VerdictChange> {
    let (ov, nv) = (o.map(|c| c.verdict), n.map(|c| c.verdict));
    if ov == nv {
        return None;
    }
    let hit = n.and_then(|c| known.find_verdict(c)).map(|k| k.reference());
    let fails = nv.is_some_and(|v| matches!(v.category(), Category::Failed | Category::Doubtful));
    let explained = n.is_some_and(|c| c.real_findings().next().is_some());
    Some(VerdictChange {
        cell: id.to_string(),
        old: ov,
        new: nv,
        reason: n.and_then(|c| c.reason.clone()),
        new_failure: fails && !explained && hit.is_none(),
        known: hit,
        introduced: None,
    })
}

fn counts(rows: &[Row], verdicts: &[VerdictChange]) -> Counts {
    let count = |c: Class| rows.iter().filter(|r| r.class == c).count();
    Counts {
        new: count(Class::New),
        known: count(Class::Known),
        still_failing: count(Class::StillFailing),
        flaky: count(Class::Flaky),
        fixed: count(Class::Fixed),
        not_judged: count(Class::NotJudged),
        new_failures: verdicts.iter().filter(|v| v.new_failure).count(),
    }
}

pub fn write(run_dir: &Path, c: &Comparison) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(c).map_err(std::io::Error::other)?;
    crate::host::rundir::write(run_dir, FILE, &json)
}

/// The comparison a run folder holds (written by `kmatrix compare`), if any. Read as
/// untrusted (`host::runfile`): a link, a FIFO or a giant is an error; one that does not
/// parse (an older layout) is none.
pub fn of_run(run_dir: &Path) -> std::io::Result<Option<Comparison>> {
    let text =
        crate::host::runfile::read_optional(run_dir, FILE, crate::host::runfile::COMPARE_MAX)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::{Finding, Kind};
    use crate::record::plan::Arch;
    use std::collections::BTreeMap;

    fn cell(ps: &str, verdict: Verdict, titles: &[&str]) -> CellResult {
        let mut c = CellResult::new(
            &crate::record::plan::tests::cell(Arch::X86_64, "pvl-on", ps),
            "/tmp".into(),
        );
        c.verdict = verdict;
        c.boot_lines = vec![1];
        c.findings = titles
            .iter()
            .map(|t| Finding {
                kind: Kind::Warning,
                title: t.to_string(),
                ..Default::default()
            })
            .collect();
        c
    }
    fn repeated(mut c: CellResult, n: u32, rates: &[(&str, u32)]) -> CellResult {
        c.repeats = n;
        c.finding_rates = rates
            .iter()
            .map(|(t, k)| (t.to_string(), *k))
            .collect::<BTreeMap<_, _>>();
        c
    }
    fn cmp(old: &[CellResult], new: &[CellResult], known: &KnownIssues) -> Comparison {
        compare(Path::new("old"), old, Path::new("new"), new, known)
    }
    fn classes(c: &Comparison) -> Vec<(String, Class)> {
        c.rows.iter().map(|r| (r.title.clone(), r.class)).collect()
    }

    #[test]
    fn titles_are_new_fixed_or_still_failing_and_only_new_ones_exit_1() {
        let old = [
            cell("v2", Verdict::Fail, &["WARNING in a", "WARNING in b"]),
            cell("v3", Verdict::Pass, &[]),
        ];
        let new = [
            cell("v2", Verdict::Fail, &["WARNING in b", "WARNING in c"]),
            cell("v3", Verdict::Pass, &[]),
        ];
        let c = cmp(&old, &new, &KnownIssues::default());
        assert_eq!(
            classes(&c),
            [
                ("WARNING in b".to_string(), Class::StillFailing),
                ("WARNING in c".to_string(), Class::New),
                ("WARNING in a".to_string(), Class::Fixed),
            ]
        );
        assert_eq!(c.exit_code(), 1);
        assert!(c.verdicts.is_empty());
        // The other way round, `a` is the new one.
        let back = cmp(&new, &old, &KnownIssues::default());
        assert_eq!(back.counts.new, 1, "{:?}", classes(&back));
        let same = cmp(&old, &old, &KnownIssues::default());
        assert_eq!(same.exit_code(), 0);
        assert_eq!(same.summary(), "2 still failing");
    }

    #[test]
    fn expected_reports_are_not_findings() {
        let mut new = cell(
            "v3",
            Verdict::Pass,
            &["possible deadlock in vma_probe_write"],
        );
        new.findings[0].expected_by = Some("vma_probe".into());
        let c = cmp(
            &[cell("v3", Verdict::Pass, &[])],
            &[new],
            &KnownIssues::default(),
        );
        assert!(c.rows.is_empty());
        assert_eq!(c.exit_code(), 0);
    }

    #[test]
    fn a_title_seen_in_some_boots_only_is_flaky_not_fixed() {
        let old = [repeated(
            cell("v2", Verdict::Fail, &["WARNING in a"]),
            3,
            &[("WARNING in a", 1)],
        )];
        let new = [repeated(cell("v2", Verdict::Pass, &[]), 3, &[])];
        let c = cmp(&old, &new, &KnownIssues::default());
        assert_eq!(classes(&c), [("WARNING in a".to_string(), Class::Flaky)]);
        assert_eq!(c.rows[0].old, Some(Rate { seen: 1, boots: 3 }));
        // Seen in both, in some boots only this time: flaky, not still failing.
        let old = [repeated(
            cell("v2", Verdict::Fail, &["WARNING in a"]),
            3,
            &[("WARNING in a", 3)],
        )];
        let new = [repeated(
            cell("v2", Verdict::Fail, &["WARNING in a"]),
            3,
            &[("WARNING in a", 2)],
        )];
        let c = cmp(&old, &new, &KnownIssues::default());
        assert_eq!(c.rows[0].class, Class::Flaky);
        assert_eq!(c.exit_code(), 0);
        // A new title stays new, even if flaky: it was never seen before.
        let new = [repeated(
            cell("v2", Verdict::Fail, &["WARNING in z"]),
            3,
            &[("WARNING in z", 1)],
        )];
        let c = cmp(
            &[cell("v2", Verdict::Pass, &[])],
            &new,
            &KnownIssues::default(),
        );
        assert_eq!(c.rows[0].class, Class::New);
        assert_eq!(c.rows[0].new, Some(Rate { seen: 1, boots: 3 }));
    }

    #[test]
    fn a_cell_that_did_not_boot_cannot_say_a_report_is_fixed() {
        let old = [cell("v2", Verdict::Fail, &["WARNING in a"])];
        let mut new = cell("v2", Verdict::BuildFail, &[]);
        new.boot_lines.clear();
        new.reason = Some("mm/x.c:1:2: error: boom (log: /r/build.log)".into());
        let c = cmp(&old, &[new], &KnownIssues::default());
        assert_eq!(
            classes(&c),
            [("WARNING in a".to_string(), Class::NotJudged)]
        );
        // ... and the new build failure is new, without any report to key it.
        assert_eq!(c.verdicts.len(), 1);
        assert!(c.verdicts[0].new_failure);
        assert_eq!(c.exit_code(), 1);
    }

    #[test]
    fn known_issues_are_known_not_new_and_one_not_seen_is_maybe_fixed() {
        let known = KnownIssues::parse(
            Path::new("k.yaml"),
            "- title: WARNING in c*\n  cells: ['*/v2']\n  why: reported\n\
             - title: 'BUILD-FAIL: mm/x.c:*'\n  why: known build error\n\
             - title: WARNING in gone\n  cells: ['*/v3']\n  link: https://example.org/1\n  why: was there\n",
        )
        .unwrap();
        let old = [
            cell("v2", Verdict::Pass, &[]),
            cell("v3", Verdict::Pass, &[]),
            cell("v4", Verdict::Pass, &[]),
        ];
        let mut v4 = cell("v4", Verdict::BuildFail, &[]);
        v4.reason = Some("mm/x.c:1:2: error: boom (log: /r/build.log)".into());
        let new = [
            cell("v2", Verdict::Fail, &["WARNING in c_func"]),
            cell("v3", Verdict::Pass, &[]),
            v4,
        ];
        let c = cmp(&old, &new, &known);
        assert_eq!(
            classes(&c),
            [("WARNING in c_func".to_string(), Class::Known)]
        );
        assert_eq!(c.rows[0].known.as_ref().unwrap().why, "reported");
        let v4 = c
            .verdicts
            .iter()
            .find(|v| v.cell == "x86_64/pvl-on/v4")
            .unwrap();
        assert!(!v4.new_failure && v4.known.is_some());
        assert_eq!(c.maybe_fixed.len(), 1);
        assert_eq!(c.maybe_fixed[0].known.title, "WARNING in gone");
        assert_eq!(c.maybe_fixed[0].cells, ["x86_64/pvl-on/v3"]);
        assert_eq!(c.exit_code(), 0, "{}", c.summary());
    }

    #[test]
    fn cells_only_in_one_run() {
        let old = [cell("gone", Verdict::Fail, &["WARNING in a"])];
        let new = [cell("added", Verdict::Fail, &["WARNING in b"])];
        let c = cmp(&old, &new, &KnownIssues::default());
        assert_eq!(
            classes(&c),
            [
                ("WARNING in b".to_string(), Class::New),
                ("WARNING in a".to_string(), Class::NotJudged)
            ]
        );
        assert_eq!(c.verdicts.len(), 2);
        assert_eq!(c.verdicts[1].new, None);
    }
}
