//! Findings also seen in the baseline cell of the same arch and config.

use crate::record::plan::Arch;
use crate::record::result::CellResult;

/// Mark findings whose title also appears in the baseline cell of the same arch and
/// config, so that regressions stand out.
pub fn mark_baseline(cells: &mut [CellResult], baseline: &str) {
    let base: Vec<(Arch, String, Vec<String>)> = cells
        .iter()
        .filter(|c| c.patchset == baseline)
        .map(|c| {
            (
                c.arch,
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
