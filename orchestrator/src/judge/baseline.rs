//! A patched cell judged against its base cell (same arch and config, the spec's
//! `baseline:` patchset): the findings also seen there, and its lock graph compared with
//! the base's (a new edge that closes a cycle is a finding of its own).

use crate::judge::decide::decide;
use crate::judge::lockgraph;
use crate::record::finding::{Finding, Kind};
use crate::record::result::CellResult;
use crate::record::verdict::Verdict;

/// The lockdep files of both cells (`/proc/lockdep`, `/proc/lockdep_chains`, saved after
/// the stress) and the cell's patches, as text.
pub struct LockFiles<'a> {
    pub base: &'a str,
    pub cell: &'a str,
    pub chains: &'a str,
    pub patches: &'a [String],
}

/// Judge `r` against `base`: mark the findings base has too, compare the lock graphs
/// when both have one, and decide again a verdict that a cycle now fails.
pub fn against_base(r: &mut CellResult, base: &CellResult, files: Option<LockFiles>) {
    mark(r, base);
    let Some(files) = files else {
        return;
    };
    let mut d = lockgraph::diff(
        &base.id,
        &lockgraph::parse(files.base),
        &lockgraph::parse(files.cell),
        &lockgraph::Series::of(files.patches),
        &lockgraph::parse_chains(files.chains),
    );
    d.tests_not_in_base = r
        .tests
        .iter()
        .filter(|t| !base.tests.iter().any(|b| b.name == t.name))
        .map(|t| t.name.clone())
        .collect();
    for c in &d.cycles {
        let to = c.get(1).cloned().unwrap_or_default();
        r.findings.push(Finding {
            kind: Kind::Lockdep,
            title: format!(
                "possible deadlock in lock graph: {} -> {to} closes a cycle",
                c[0]
            ),
            report: format!(
                "kmatrix lock graph: {} takes {to} (new in this cell); the graphs of this cell and {} hold the path back:\n  {}",
                c[0],
                base.id,
                c.join("\n  -> ")
            ),
            ..Default::default()
        });
    }
    if !d.cycles.is_empty() && matches!(r.verdict, Verdict::Pass | Verdict::Inconclusive) {
        let (v, why) = decide(&r.tests, &r.findings, &r.controls);
        r.verdict = v;
        r.reason = why;
    }
    r.lock_graph = Some(d);
}

/// The titles of `r`'s findings that `base` shows too.
fn mark(r: &mut CellResult, base: &CellResult) {
    r.in_baseline = r
        .findings
        .iter()
        .filter(|f| base.findings.iter().any(|b| b.title == f.title))
        .map(|f| f.title.clone())
        .collect();
}

/// Mark every cell against the baseline cell of its arch and config, where one is among
/// `cells` (shards merged into one run).
pub fn mark_baseline(cells: &mut [CellResult], baseline: &str) {
    let bases: Vec<CellResult> = cells
        .iter()
        .filter(|c| c.patchset == baseline)
        .cloned()
        .collect();
    for c in cells.iter_mut().filter(|c| c.patchset != baseline) {
        if let Some(b) = bases
            .iter()
            .find(|b| b.arch == c.arch && b.config == c.config)
        {
            mark(c, b);
        }
    }
}
