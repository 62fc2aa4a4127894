//! A patched cell judged against its base cell (same arch and config, the spec's
//! `baseline:` patchset): the findings also seen there, and its lock graph compared with
//! the base's (a new edge that closes a cycle is a finding of its own), without the
//! noise two boots of one kernel show (`lockgraph_noise`).

use crate::judge::decide::decide;
use crate::judge::lockgraph::{self, Edge, Graph};
use crate::record::finding::{Finding, Kind};
use crate::record::result::CellResult;
use crate::record::verdict::Verdict;
use std::collections::BTreeSet;

/// The lockdep files of both cells (`/proc/lockdep` of each boot, `/proc/lockdep_chains`
/// of the reported one, saved after the stress), the cell's patches, as text, and the
/// edges learnt as noise for the base cell's kernel.
pub struct LockFiles<'a> {
    pub base: &'a [String],
    pub cell: &'a [String],
    pub chains: &'a str,
    pub patches: &'a [String],
    pub noise: &'a BTreeSet<Edge>,
}

/// Judge `r` against `base`: mark the findings base has too, compare the lock graphs
/// when both have one (base's boots joined; the noise learnt for base's kernel left
/// out), and decide again a verdict that a cycle now fails. Returns the edges this
/// comparison learnt as noise for base's kernel: those base's own boots disagree on,
/// and, when `r` runs the very same kernel, every difference.
pub fn against_base(
    r: &mut CellResult,
    base: &CellResult,
    files: Option<LockFiles>,
) -> BTreeSet<Edge> {
    mark(r, base);
    r.perf = crate::judge::perf::compare(base, r);
    let Some(files) = files else {
        return BTreeSet::new();
    };
    let base_boots: Vec<Graph> = files.base.iter().map(|t| lockgraph::parse(t)).collect();
    let cell_boots: Vec<Graph> = files.cell.iter().map(|t| lockgraph::parse(t)).collect();
    let (base_all, cell_all) = (lockgraph::union(&base_boots), lockgraph::union(&cell_boots));
    let same_kernel = r.kernel_key.is_some() && r.kernel_key == base.kernel_key;
    let mut learnt = lockgraph::varying(&base_boots);
    if same_kernel {
        learnt.extend(
            cell_all
                .edges
                .symmetric_difference(&base_all.edges)
                .cloned(),
        );
        learnt.extend(lockgraph::varying(&cell_boots));
    }
    let mut d = lockgraph::diff_with(
        &base.id,
        &base_all,
        &cell_all,
        &lockgraph::Series::of(files.patches),
        &lockgraph::parse_chains(files.chains),
        &lockgraph::Evidence {
            boots: &cell_boots,
            base_boots: base_boots.len(),
            noise: Some(files.noise),
            same_kernel,
        },
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
    learnt
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
