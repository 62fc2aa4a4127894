//! The result matrix as text (`matrix.txt`, and on the terminal with colour): rows
//! arch/config, columns patchsets; then per cell what it is based on.

use crate::judge::compare::{Class, Comparison, Rate, Row, VerdictChange};
use crate::record::bisect::{Bisect, Judged, Outcome, Step};
use crate::record::finding::Finding;
use crate::record::fmt::{visible, visible_line};
use crate::record::result::{CellResult, Control, ControlState, TestResult};
use crate::record::verdict::{Category, Verdict};
use crate::report::summary::{cell_summary, grid, Grid};
use crate::spec::known::{IssueState, KnownIssues};

/// The matrix without colour.
pub fn matrix(cells: &[CellResult]) -> String {
    matrix_with(cells, &KnownIssues::default())
}

/// The matrix without colour, findings matching a known issue marked known. Every
/// piece of text is made visible where it goes in; the whole once more, since nothing
/// of a plain file may hide (no colour here to keep).
pub fn matrix_with(cells: &[CellResult], known: &KnownIssues) -> String {
    visible(&styled_with(cells, known, &|_, s| s.to_string()))
}

/// The matrix with each verdict passed through `style` (its category decides how).
pub fn styled(cells: &[CellResult], style: &dyn Fn(Category, &str) -> String) -> String {
    styled_with(cells, &KnownIssues::default(), style)
}

/// [`styled`], with known issues marked and their section at the end.
pub fn styled_with(
    cells: &[CellResult],
    known: &KnownIssues,
    style: &dyn Fn(Category, &str) -> String,
) -> String {
    let Grid { patchsets, rows } = grid(cells);
    let head: Vec<(String, Option<Category>)> = std::iter::once(("arch/config".to_string(), None))
        .chain(patchsets.iter().map(|p| (visible_line(p), None)))
        .collect();
    let mut table: Vec<Vec<(String, Option<Category>)>> = vec![head];
    for ((arch, config), by_ps) in &rows {
        let mut r = vec![(visible_line(&format!("{arch}/{config}")), None)];
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
    let titles = crate::judge::factors::titles(cells);
    if !titles.is_empty() {
        let why = crate::judge::factors::explain(cells, &titles);
        out.push_str("\nreports by title:\n");
        for (t, e) in titles.iter().zip(&why) {
            out.push_str(&format!(
                "  {} x{} in {} (first: {} line {})\n    where: {}; cheapest to reproduce: {}\n",
                visible_line(&t.title),
                t.count,
                visible_line(&t.cells.join(", ")),
                visible_line(&t.first.cell),
                t.first.line,
                visible_line(&e.factors),
                visible_line(&e.cheapest)
            ));
        }
    }
    for c in cells {
        out.push('\n');
        out.push_str(&details(c, known, style));
    }
    out.push_str(&known_section(cells, known));
    out
}

/// ` (known issue: why; link)`, for a failure that matches one.
fn known_note(k: Option<&crate::spec::known::KnownIssue>) -> String {
    match k {
        Some(k) => format!(
            " (known issue: {}{})",
            visible_line(&k.why),
            k.link
                .as_ref()
                .map(|l| format!("; {}", visible_line(l)))
                .unwrap_or_default()
        ),
        None => String::new(),
    }
}

/// Where each known issue stands in this run (nothing without a list).
pub fn known_section(cells: &[CellResult], known: &KnownIssues) -> String {
    if known.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nknown issues:\n");
    for (k, state) in known.states(cells) {
        let (what, ids) = match &state {
            IssueState::Seen(ids) => ("seen", ids.join(", ")),
            IssueState::MaybeFixed(ids) => ("MAYBE FIXED, not seen", ids.join(", ")),
            IssueState::NotJudged => ("not judged", "no cell of it ran far enough".into()),
        };
        out.push_str(&format!(
            "  {what}: {}{} in {}\n",
            visible_line(&k.title),
            known_note(Some(k)),
            visible_line(&ids)
        ));
    }
    out
}

/// Everything a cell's verdict rests on, one fact a line.
fn details(
    c: &CellResult,
    known: &KnownIssues,
    style: &dyn Fn(Category, &str) -> String,
) -> String {
    let mut out = format!(
        "{}: {}",
        visible_line(&c.id),
        style(c.verdict.category(), c.verdict.label())
    );
    if let Some(r) = &c.reason {
        out.push_str(&format!(" - {}", visible_line(r)));
    }
    out.push_str(&known_note(known.find_verdict(c)));
    out.push('\n');
    out.push_str(&conditions(c));
    if let Some(g) = &c.lock_graph {
        out.push_str(&lock_graph(g));
    }
    if let Some(s) = &c.series_coverage {
        out.push_str(&format!("  {}\n", visible_line(&s.summary)));
    }
    if let Some(p) = &c.perf {
        out.push_str(&format!("  {}\n", visible_line(&p.summary())));
    }
    for d in &c.details {
        out.push_str(&format!("  {}\n", visible_line(d)));
    }
    if let Some(f) = &c.forensics {
        // The first line says what was sent; the others who holds what (guest text).
        let mut lines = f.lines();
        let first = lines.next().unwrap_or_default();
        out.push_str(&format!(
            "  forensics: {} (see console.log)\n",
            visible_line(first)
        ));
        // Each a bullet: a forged results.json's line never stands as kmatrix's own.
        for l in lines {
            out.push_str(&format!("    - {}\n", visible_line(l)));
        }
    }
    if !c.vmstat_after.is_empty() {
        out.push_str(&vma_lock_counters(c));
    }
    for t in &c.tests {
        out.push_str(&test_line(t));
    }
    for f in &c.findings {
        out.push_str(&finding_line(c, f, known));
    }
    for ctl in &c.controls {
        out.push_str(&control_line(ctl));
    }
    for n in &c.notes {
        out.push_str(&format!("  note: {}\n", visible_line(n)));
    }
    out.push_str(&format!(
        "  dir: {}\n",
        visible_line(&c.dir.display().to_string())
    ));
    out
}

/// What the cell ran under: the accelerator, the detectors, the race amplification.
fn conditions(c: &CellResult) -> String {
    let mut out = String::new();
    if let Some(a) = c.accel {
        let note = c
            .accel_note
            .as_ref()
            .map(|n| format!(" ({})", visible_line(n)))
            .unwrap_or_default();
        out.push_str(&format!("  accel: {}{note}\n", a.name()));
    }
    if let Some(d) = &c.detectors {
        let cpus = c
            .guest_cpus
            .map(|n| format!("; guest CPUs: {n}"))
            .unwrap_or_default();
        out.push_str(&format!("  detectors: {}{cpus}\n", visible(&d.summary())));
    }
    if let Some(a) = crate::report::summary::amplify_summary(c) {
        out.push_str(&format!("  {}\n", visible(&a)));
    }
    out
}

/// The lock graph's summary and its first new edges, each with the chain that made it.
fn lock_graph(g: &crate::record::lockgraph::Diff) -> String {
    let mut out = format!("  {}\n", visible(&g.summary()));
    for (a, b) in g.new_edges.iter().take(8) {
        out.push_str(&format!("    new edge: {} -> {}\n", visible(a), visible(b)));
        if let Some(c) = g.context(a, b) {
            out.push_str(&format!("      chain: {}\n", visible(c)));
        }
    }
    out
}

/// The per-VMA lock counters' change over the tests (vmstat before and after).
fn vma_lock_counters(c: &CellResult) -> String {
    let d = crate::parse::vmstat::vmstat_delta(&c.vmstat_before, &c.vmstat_after);
    let get = |k: &str| d.get(k).copied().unwrap_or(0);
    format!(
        "  per-VMA locks during tests: {} faults under VMA lock, {} retries, {} aborts, {} misses\n",
        get("vma_lock_success"),
        get("vma_lock_retry"),
        get("vma_lock_abort"),
        get("vma_lock_miss")
    )
}

/// A guest test: its cases, its evidence of overlap and per-VMA-lock faults, why it failed.
fn test_line(t: &TestResult) -> String {
    let cases = &t.ktap.cases;
    let ok = cases
        .iter()
        .filter(|x| x.status == crate::parse::ktap::Status::Ok)
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
    // Every case skipped is a pass that checked nothing: said, with the kernel's reason.
    let skipped = t.skipped();
    format!(
        "  test {}: {} ({ok}/{} ok, {} skipped, {:.0}s{evidence}){}\n",
        visible_line(&t.name),
        match (t.passed(), &skipped) {
            (false, _) => "FAILED",
            (true, Some(_)) => "skipped",
            (true, None) => "ok",
        },
        cases.len(),
        t.ktap.skipped().count(),
        t.seconds,
        t.failure()
            .or(skipped)
            .map(|f| format!(": {}", visible_line(&f)))
            .unwrap_or_default()
    )
}

/// A kernel report: where, during what, in how many boots, and whether it was expected,
/// in the baseline or a known issue.
fn finding_line(c: &CellResult, f: &Finding, known: &KnownIssues) -> String {
    let note = match &f.expected_by {
        Some(t) => format!(" (expected: positive control of {})", visible_line(t)),
        None if c.in_baseline.contains(&f.title) => " (also in baseline)".to_string(),
        None => known_note(known.find(&c.id, &f.title)),
    };
    let rate = match c.finding_rates.get(&f.title) {
        Some(k) if c.repeats > 1 => format!(" in {k}/{} boots", c.repeats),
        _ => String::new(),
    };
    let during = f
        .during
        .as_ref()
        .map(|t| format!(" during {}", visible_line(t)))
        .unwrap_or_default();
    format!(
        "  report: {} [{:?}] at console line {}{during}{rate}{note}\n",
        visible_line(&f.title),
        f.kind,
        f.line
    )
}

/// A positive control that did not fire (one that fired says nothing more).
fn control_line(ctl: &Control) -> String {
    match &ctl.state {
        ControlState::Fired { .. } => String::new(),
        ControlState::Silent => format!(
            "  control of {} stayed silent: expected a {:?} report\n",
            visible_line(&ctl.test),
            ctl.expect.kind
        ),
        ControlState::NotJudged { why } => format!(
            "  control of {} ({:?}) not judged: {}\n",
            visible_line(&ctl.test),
            ctl.expect.kind,
            visible_line(why)
        ),
    }
}

/// `kmatrix compare` for the terminal: a line per title that is not simply still
/// failing, the verdict changes, the known issues maybe fixed, and the counts.
pub fn comparison(c: &Comparison) -> String {
    let mut out = format!(
        "compare {} -> {}\n",
        visible_line(&c.old.display().to_string()),
        visible_line(&c.new.display().to_string())
    );
    if !c.rows.is_empty() {
        out.push_str(&comparison_rows(&c.rows));
    }
    if !c.verdicts.is_empty() {
        out.push_str("verdict changes:\n");
        for v in &c.verdicts {
            out.push_str(&verdict_change(v));
        }
    }
    for m in &c.maybe_fixed {
        out.push_str(&format!(
            "known issue maybe fixed: {} ({}) not seen in {}\n",
            visible_line(&m.known.title),
            visible_line(&m.known.why),
            visible_line(&m.cells.join(", "))
        ));
    }
    out.push_str(&format!(
        "{}: {}\n",
        if c.has_new() { "NEW" } else { "nothing new" },
        c.summary()
    ));
    out.push_str(&introduced(c));
    out
}

/// Per new finding, the patch that brought it in each cell it was bisected in
/// (`kmatrix bisect-new`); empty when none was.
pub fn introduced(c: &Comparison) -> String {
    let all = c.introduced();
    if all.is_empty() {
        return String::new();
    }
    let mut out = String::from("which patch brought each new finding:\n");
    for (what, cells) in all {
        out.push_str(&format!("  {}\n", visible(&what)));
        for (cell, i) in cells {
            out.push_str(&format!("    {cell}: {}\n", visible(&i.describe())));
        }
    }
    out
}

/// The titles compared, by class, as a table: class, cell, old and new rates, title.
fn comparison_rows(rows: &[Row]) -> String {
    let rate = |r: Option<Rate>| r.map(|r| r.to_string()).unwrap_or("-".into());
    let w = rows.iter().map(|r| r.cell.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "  {:<13}  {:<w$}  {:>5}  {:>5}  finding\n",
        "", "cell", "old", "new"
    );
    let mut rows: Vec<_> = rows.iter().collect();
    rows.sort_by_key(|r| r.class);
    for r in rows {
        let label = match r.class {
            Class::New => "NEW".to_string(),
            other => other.label().to_string(),
        };
        let note = match (&r.known, r.class) {
            (Some(k), _) => format!(
                " (known issue: {}{})",
                visible_line(&k.why),
                k.link
                    .as_ref()
                    .map(|l| format!("; {}", visible_line(l)))
                    .unwrap_or_default()
            ),
            _ => String::new(),
        };
        out.push_str(&format!(
            "  {label:<13}  {:<w$}  {:>5}  {:>5}  {}{note}\n",
            visible_line(&r.cell),
            rate(r.old),
            rate(r.new),
            visible_line(&r.title)
        ));
    }
    out
}

/// One cell's verdict change, marked new or known.
fn verdict_change(v: &VerdictChange) -> String {
    let label = |x: Option<Verdict>| x.map(|v| v.label()).unwrap_or("(absent)");
    format!(
        "  {}: {} -> {}{}{}\n",
        visible_line(&v.cell),
        label(v.old),
        label(v.new),
        v.reason
            .as_ref()
            .filter(|_| v.new.is_some_and(|n| n != Verdict::Pass))
            .map(|r| format!(" - {}", visible_line(r)))
            .unwrap_or_default(),
        if v.new_failure {
            " [NEW]".to_string()
        } else if let Some(k) = &v.known {
            format!(" (known issue: {})", visible_line(&k.why))
        } else {
            String::new()
        }
    )
}

/// A duration as `1m05s`.
pub fn minutes(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}m{:02}s", s / 60, s % 60)
}

/// `kmatrix bisect` for the terminal: the steps, then the answer and its repro.
pub fn bisect(b: &Bisect) -> String {
    let mut out = format!(
        "\nbisect {}: {} patch(es), looking for {}{}\n",
        b.cell,
        b.series.len(),
        b.predicate
            .as_ref()
            .map(|p| visible(&p.describe()))
            .unwrap_or_else(|| "its verdict".into()),
        if b.repeat > 1 {
            format!(", {} boots a step", b.repeat)
        } else {
            String::new()
        }
    );
    out.push_str(&bisect_steps(b));
    out.push_str(&bisect_outcome(b));
    if let Some(r) = &b.repro {
        out.push_str(&format!("repro: {r}\n"));
    }
    out.push_str(&format!(
        "bisect.json, report.html: {} ({})\n",
        crate::record::fmt::display_rel(&b.dir),
        minutes(b.seconds)
    ));
    out
}

/// The steps as a table (columns aligned, the subject last), each with why it was
/// skipped or, when it was not found bad, its verdict's reason.
fn bisect_steps(b: &Bisect) -> String {
    let rows: Vec<[String; 6]> = b.steps.iter().map(|s| step_row(b, s)).collect();
    let head = [
        "prefix",
        "verdict",
        "judged",
        "seen",
        "missed?",
        "time   up to",
    ];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: &[&str]| {
        let mut l = String::from(" ");
        for (i, c) in r.iter().enumerate() {
            l.push(' ');
            if i < 5 {
                l.push_str(&format!("{c:<w$}", w = widths[i]));
                l.push(' ');
            } else {
                l.push_str(c);
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = line(&head);
    for (r, s) in rows.iter().zip(&b.steps) {
        out.push_str(&line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
        if let Some(why) = &s.why {
            out.push_str(&format!("      skipped: {}\n", visible(why)));
        } else if s.judged == Some(Judged::Good) || s.judged.is_none() {
            if let Some(r) = s.reason.as_ref().filter(|_| s.verdict != Verdict::Pass) {
                out.push_str(&format!("      {}\n", visible(r)));
            }
        }
    }
    out
}

/// A step's cells: prefix, verdict, judged, seen in boots, chance of a miss, time and
/// the subject of its last patch.
fn step_row(b: &Bisect, s: &Step) -> [String; 6] {
    let n = b.series.len();
    let patch = b
        .patch(s.prefix)
        .map(|p| visible(&p.subject))
        .unwrap_or_default();
    [
        format!("{}/{n}", s.prefix),
        s.verdict.label().to_string(),
        s.judged.map(|j| j.label()).unwrap_or("-").to_string(),
        if s.boots > 0 && b.predicate.as_ref().is_some_and(|p| p.varies()) {
            format!("{}/{}", s.seen, s.boots)
        } else {
            "-".into()
        },
        s.miss_chance
            .map(|m| format!("{:.0}%", m * 100.0))
            .unwrap_or("-".into()),
        format!("{}  {patch}", minutes(s.seconds)),
    ]
}

/// The answer: the first bad patch (or the range it is in), or why there is none.
fn bisect_outcome(b: &Bisect) -> String {
    let n = b.series.len();
    let mut out = String::new();
    match &b.outcome {
        Outcome::Found { patch } => {
            if let Some(p) = b.patch(*patch) {
                out.push_str(&format!(
                    "first bad patch: {}/{n} {}\n  file: {}\n",
                    p.index,
                    visible(&p.subject),
                    crate::record::fmt::display_rel(&p.file)
                ));
            }
            if let Some(r) = b.rate {
                out.push_str(&format!(
                    "  failure rate over the bad steps' boots: {:.0}%\n",
                    r * 100.0
                ));
            }
        }
        Outcome::Range { first, last } => {
            out.push_str(&format!(
                "first bad patch: one of {first}..{last} (steps in between could not be judged)\n"
            ));
            for i in *first..=*last {
                if let Some(p) = b.patch(i) {
                    out.push_str(&format!(
                        "  {i}/{n} {} ({})\n",
                        visible(&p.subject),
                        crate::record::fmt::display_rel(&p.file)
                    ));
                }
            }
        }
        Outcome::NotReproduced { why } => {
            out.push_str(&format!("not reproduced: {}\n", visible(why)))
        }
        Outcome::Stopped { why, .. } => out.push_str(&format!("stopped: {}\n", visible(why))),
        Outcome::Judged | Outcome::Running => {}
    }
    out
}
