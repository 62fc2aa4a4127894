//! What every renderer shows of a cell: its place in the matrix and its one-line summaries.

use crate::record::result::CellResult;
use std::collections::BTreeMap;

/// Cells laid out as the matrix: rows (arch, config), columns patchsets in spec order.
pub struct Grid<'a> {
    pub patchsets: Vec<&'a str>,
    pub rows: BTreeMap<(String, String), BTreeMap<&'a str, &'a CellResult>>,
}

pub fn grid(cells: &[CellResult]) -> Grid<'_> {
    let mut g = Grid {
        patchsets: Vec::new(),
        rows: BTreeMap::new(),
    };
    for c in cells {
        if !g.patchsets.contains(&c.patchset.as_str()) {
            g.patchsets.push(&c.patchset);
        }
        g.rows
            .entry((c.arch.name().to_string(), c.config.clone()))
            .or_default()
            .insert(&c.patchset, c);
    }
    g
}

/// The short text of a cell in the matrix: `FAIL (2 reports, 3 expected)`. The liveness
/// step's reports are not counted here: the detectors line says what they proved.
pub fn cell_summary(c: &CellResult) -> String {
    let expected = c
        .findings
        .iter()
        .filter(|f| {
            f.expected_by
                .as_ref()
                .is_some_and(|t| t != crate::record::result::LIVENESS)
        })
        .count();
    let n = c.real_findings().count();
    let mut parts = Vec::new();
    if n > 0 {
        parts.push(format!("{n} report{}", if n == 1 { "" } else { "s" }));
    }
    if expected > 0 {
        parts.push(format!("{expected} expected"));
    }
    if parts.is_empty() {
        c.verdict.label().to_string()
    } else {
        format!("{} ({})", c.verdict.label(), parts.join(", "))
    }
}

/// The line every output shows for a cell whose tests ran amplified.
pub fn amplify_summary(c: &CellResult) -> Option<String> {
    let parts: Vec<String> = c
        .tests
        .iter()
        .filter_map(|t| Some(format!("{}: {}", t.name, t.amplify.as_ref()?.summary())))
        .collect();
    (!parts.is_empty()).then(|| format!("amplified: {}", parts.join("; ")))
}
