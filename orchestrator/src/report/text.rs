//! The result matrix as text (`matrix.txt`, and on the terminal with colour): rows
//! arch/config, columns patchsets; then per cell what it is based on.

use super::{cell_summary, grid, visible, Grid};
use crate::verdict::{Category, CellResult, ControlState};

/// The matrix without colour.
pub fn matrix(cells: &[CellResult]) -> String {
    styled(cells, &|_, s| s.to_string())
}

/// The matrix with each verdict passed through `style` (its category decides how).
pub fn styled(cells: &[CellResult], style: &dyn Fn(Category, &str) -> String) -> String {
    let Grid { patchsets, rows } = grid(cells);
    let head: Vec<(String, Option<Category>)> = std::iter::once(("arch/config".to_string(), None))
        .chain(patchsets.iter().map(|p| (p.to_string(), None)))
        .collect();
    let mut table: Vec<Vec<(String, Option<Category>)>> = vec![head];
    for ((arch, config), by_ps) in &rows {
        let mut r = vec![(format!("{arch}/{config}"), None)];
        for p in &patchsets {
            r.push(match by_ps.get(p) {
                Some(c) => (cell_summary(c), Some(c.verdict.category())),
                None => ("-".into(), None),
            });
        }
        table.push(r);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|i| table.iter().map(|r| r[i].0.len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (ri, r) in table.iter().enumerate() {
        let mut line = String::new();
        for (i, (s, cat)) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(widths[i] - s.len());
            match cat {
                // Only the verdict word is styled, so the columns stay aligned.
                Some(c) => {
                    let (word, rest) = s.split_once(' ').unwrap_or((s, ""));
                    let sep = if rest.is_empty() { "" } else { " " };
                    line.push_str(&format!("{}{sep}{rest}{pad}", style(*c, word)));
                }
                None => line.push_str(&format!("{s}{pad}")),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if ri == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    let titles = super::titles(cells);
    if !titles.is_empty() {
        let why = super::factors::explain(cells, &titles);
        out.push_str("\nreports by title:\n");
        for (t, e) in titles.iter().zip(&why) {
            out.push_str(&format!(
                "  {} x{} in {} (first: {} line {})\n    where: {}; cheapest to reproduce: {}\n",
                visible(&t.title),
                t.count,
                t.cells.join(", "),
                t.first.cell,
                t.first.line,
                e.factors,
                e.cheapest
            ));
        }
    }
    for c in cells {
        out.push('\n');
        out.push_str(&details(c, style));
    }
    out
}

/// Everything a cell's verdict rests on, one fact a line.
fn details(c: &CellResult, style: &dyn Fn(Category, &str) -> String) -> String {
    let mut out = format!(
        "{}: {}",
        c.id,
        style(c.verdict.category(), c.verdict.label())
    );
    if let Some(r) = &c.reason {
        out.push_str(&format!(" - {}", visible(r)));
    }
    out.push('\n');
    if let Some(a) = c.accel {
        let note = c
            .accel_note
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        out.push_str(&format!("  accel: {}{note}\n", a.name()));
    }
    if let Some(d) = &c.detectors {
        out.push_str(&format!("  detectors: {}\n", visible(&d.summary())));
    }
    if let Some(a) = crate::amplify::summary(c) {
        out.push_str(&format!("  {}\n", visible(&a)));
    }
    for d in &c.details {
        out.push_str(&format!("  {}\n", visible(d)));
    }
    if let Some(f) = &c.forensics {
        out.push_str(&format!("  forensics: {f} (see console.log)\n"));
    }
    if !c.vmstat_after.is_empty() {
        let d = crate::verdict::vmstat_delta(&c.vmstat_before, &c.vmstat_after);
        let get = |k: &str| d.get(k).copied().unwrap_or(0);
        out.push_str(&format!(
            "  per-VMA locks during tests: {} faults under VMA lock, {} retries, {} aborts, {} misses\n",
            get("vma_lock_success"),
            get("vma_lock_retry"),
            get("vma_lock_abort"),
            get("vma_lock_miss")
        ));
    }
    for t in &c.tests {
        let cases = &t.ktap.cases;
        let ok = cases
            .iter()
            .filter(|x| x.status == crate::ktap::Status::Ok)
            .count();
        let mut evidence = String::new();
        if let Some(o) = &t.overlap {
            let ops: Vec<String> = o.ops.iter().map(|(k, v)| format!("{k}={v}")).collect();
            evidence.push_str(&format!(
                ", overlap {:.1}s: {}",
                o.window_secs,
                ops.join(" ")
            ));
        }
        if let Some(n) = t.vmstat_delta.get("vma_lock_success") {
            evidence.push_str(&format!(", {n} per-VMA-lock faults"));
        }
        out.push_str(&format!(
            "  test {}: {} ({ok}/{} ok, {} skipped, {:.0}s{evidence}){}\n",
            t.name,
            if t.passed() { "ok" } else { "FAILED" },
            cases.len(),
            t.ktap.skipped().count(),
            t.seconds,
            t.failure()
                .map(|f| format!(": {}", visible(&f)))
                .unwrap_or_default()
        ));
    }
    for f in &c.findings {
        let note = match &f.expected_by {
            Some(t) => format!(" (expected: positive control of {t})"),
            None if c.in_baseline.contains(&f.title) => " (also in baseline)".to_string(),
            None => String::new(),
        };
        let rate = match c.finding_rates.get(&f.title) {
            Some(k) if c.repeats > 1 => format!(" in {k}/{} boots", c.repeats),
            _ => String::new(),
        };
        let during = f
            .during
            .as_ref()
            .map(|t| format!(" during {t}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  report: {} [{:?}] at console line {}{during}{rate}{note}\n",
            visible(&f.title),
            f.kind,
            f.line
        ));
    }
    for ctl in &c.controls {
        match &ctl.state {
            ControlState::Fired { .. } => {}
            ControlState::Silent => out.push_str(&format!(
                "  control of {} stayed silent: expected a {:?} report\n",
                ctl.test, ctl.expect.kind
            )),
            ControlState::NotJudged { why } => out.push_str(&format!(
                "  control of {} ({:?}) not judged: {}\n",
                ctl.test,
                ctl.expect.kind,
                visible(why)
            )),
        }
    }
    for n in &c.notes {
        out.push_str(&format!("  note: {}\n", visible(n)));
    }
    out.push_str(&format!("  dir: {}\n", c.dir.display()));
    out
}
