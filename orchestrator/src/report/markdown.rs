//! `summary.md`: the matrix and the findings, for a CI job summary.

use super::{grid, Grid};
use crate::verdict::CellResult;

pub fn render(cells: &[CellResult]) -> String {
    let Grid { patchsets, rows } = grid(cells);
    let md = |s: &str| s.replace('|', "\\|");
    let mut o = String::from("## kmatrix results\n\n| arch/config |");
    for p in &patchsets {
        o.push_str(&format!(" {} |", md(p)));
    }
    o.push_str("\n|---|");
    o.push_str(&"---|".repeat(patchsets.len()));
    o.push('\n');
    for ((arch, config), by) in &rows {
        o.push_str(&format!("| {arch}/{config} |"));
        for p in &patchsets {
            let cell = by.get(p).map(|c| {
                let n = c
                    .expected_by
                    .iter()
                    .chain(std::iter::repeat(&None))
                    .zip(&c.findings)
                    .filter(|(e, _)| e.is_none())
                    .count();
                if n > 0 {
                    format!("**{}** ({n})", c.verdict.label())
                } else {
                    format!("**{}**", c.verdict.label())
                }
            });
            o.push_str(&format!(" {} |", cell.unwrap_or_else(|| "-".into())));
        }
        o.push('\n');
    }
    for c in cells {
        if c.verdict == crate::verdict::Verdict::Pass && c.findings.is_empty() {
            continue;
        }
        o.push_str(&format!("\n### {} — {}\n\n", c.id, c.verdict.label()));
        if let Some(r) = &c.reason {
            o.push_str(&format!("{}\n\n", md(r)));
        }
        for (i, f) in c.findings.iter().enumerate() {
            let note = match c.expected_by.get(i) {
                Some(Some(t)) => format!(" _(expected: control of {t})_"),
                _ if c.in_baseline.contains(&f.title) => " _(also in baseline)_".into(),
                _ => String::new(),
            };
            o.push_str(&format!("- `{}`{note}\n", f.title));
        }
        if !c.details.is_empty() {
            o.push_str("\n```\n");
            o.push_str(&c.details.join("\n"));
            o.push_str("\n```\n");
        }
    }
    o
}
