//! `summary.md`: the matrix and the findings, for a CI job summary (GitHub-flavoured
//! Markdown). Text from the kernel or the guest is escaped: it can neither close a code
//! span or fence nor inject HTML, links or table cells into the job summary.

use crate::judge::compare::{Class, Comparison, Rate, Row, VerdictChange};
use crate::record::result::{CellResult, ControlState};
use crate::record::verdict::Verdict;
use crate::report::summary::{grid, Grid};
use crate::spec::known::{IssueState, KnownIssue, KnownIssues};

/// Inline text, every Markdown-active character backslash-escaped and HTML's `<` `>`
/// `&` written as entities; one line. Control, bidi and line-separator characters are
/// shown as `\xNN` (the terminal's rule, `record::fmt::visible_line`), escaped in turn.
pub fn escape(s: &str) -> String {
    let s = crate::record::fmt::visible_line(s);
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.'
            | '!' | '|' | '~' | '"' | '\'' | ':' | '@' | '$' | '%' | '=' => {
                o.push('\\');
                o.push(c);
            }
            c => o.push(c),
        }
    }
    o
}

/// A name as the spec allows them (letters, digits, `-`, `.`, `/`, `_` inside a word:
/// nothing Markdown acts on in a table cell) as it is; anything else [`escape`]d.
fn name(s: &str) -> String {
    let b = s.as_bytes();
    let plain = b.iter().enumerate().all(|(i, c)| match c {
        b'_' => {
            i > 0
                && b[i - 1].is_ascii_alphanumeric()
                && b.get(i + 1).is_some_and(|n| n.is_ascii_alphanumeric())
        }
        c => c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'/'),
    });
    if plain {
        s.to_string()
    } else {
        escape(s)
    }
}

/// A fenced code block whose fence is longer than any backtick run in `body`, so the
/// body can never end it.
pub fn fenced(body: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat((longest + 1).max(3));
    let body = crate::record::fmt::visible(body);
    format!("{fence}text\n{}\n{fence}\n", body.trim_end_matches('\n'))
}

pub fn render(cells: &[CellResult]) -> String {
    render_with(cells, &KnownIssues::default(), None)
}

/// ` _(known issue: why)_ [link](link)` for a failure that matches one.
fn known_note(k: Option<&KnownIssue>) -> String {
    let Some(k) = k else { return String::new() };
    let link = k
        .link
        .as_ref()
        .filter(|l| crate::spec::known::link_is_safe(l))
        .map(|l| format!(" [link]({})", escape_link(l)))
        .unwrap_or_default();
    format!(" _\\(known issue: {}\\)_{link}", escape(&k.why))
}

/// A link target (checked safe when the list was loaded) that cannot end the link early.
fn escape_link(l: &str) -> String {
    l.chars()
        .map(|c| match c {
            '(' => "%28".to_string(),
            ')' => "%29".to_string(),
            ' ' => "%20".to_string(),
            '<' => "%3C".to_string(),
            '>' => "%3E".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The summary with known issues marked (and their section), and a comparison with an
/// earlier run on top when `kmatrix compare` made one.
pub fn render_with(
    cells: &[CellResult],
    known: &KnownIssues,
    compare: Option<&Comparison>,
) -> String {
    let mut o = compare.map(comparison).unwrap_or_default();
    o.push_str(&matrix(cells));
    o.push_str(&titles(cells));
    o.push_str(&amplified(cells));
    o.push_str(&detectors(cells));
    o.push_str(&series_coverage(cells));
    o.push_str(&perf(cells));
    for c in cells {
        if c.verdict == Verdict::Pass && c.findings.is_empty() {
            continue;
        }
        o.push_str(&cell(c, known));
    }
    o.push_str(&known_section(cells, known));
    o
}

/// The verdicts as a table: rows arch/config, columns patchsets, the count of reports.
fn matrix(cells: &[CellResult]) -> String {
    let Grid { patchsets, rows } = grid(cells);
    let mut o = String::from("## kmatrix results\n\n| arch/config |");
    for p in &patchsets {
        o.push_str(&format!(" {} |", escape(p)));
    }
    o.push_str("\n|---|");
    o.push_str(&"---|".repeat(patchsets.len()));
    o.push('\n');
    for ((arch, config), by) in &rows {
        o.push_str(&format!("| {} |", name(&format!("{arch}/{config}"))));
        for p in &patchsets {
            let cell = by.get(p).map(|c| {
                let n = c.real_findings().count();
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
    o
}

/// The real reports across the run, by title: count, where, the cheapest cell, the first.
fn titles(cells: &[CellResult]) -> String {
    let titles = crate::judge::factors::titles(cells);
    if titles.is_empty() {
        return String::new();
    }
    let why = crate::judge::factors::explain(cells, &titles);
    let mut o = String::from(
        "\n| report | count | where | cheapest cell | first |\n|---|---|---|---|---|\n",
    );
    for (t, e) in titles.iter().zip(&why) {
        o.push_str(&format!(
            "| {} | {} | {} | {} | {} line {} |\n",
            escape(&t.title),
            t.count,
            escape(&e.factors),
            escape(&e.cheapest),
            escape(&t.first.cell),
            t.first.line
        ));
    }
    o
}

/// Which of the series' changed lines each patched cell built and ran.
fn series_coverage(cells: &[CellResult]) -> String {
    let with: Vec<&CellResult> = cells
        .iter()
        .filter(|c| c.series_coverage.is_some())
        .collect();
    if with.is_empty() {
        return String::new();
    }
    let mut o = String::from("\n| cell | series coverage |\n|---|---|\n");
    for c in with {
        if let Some(s) = &c.series_coverage {
            o.push_str(&format!("| {} | {} |\n", escape(&c.id), escape(&s.summary)));
        }
    }
    o
}

/// Each patched cell's performance against its base cell, a metric a row.
fn perf(cells: &[CellResult]) -> String {
    let with: Vec<&CellResult> = cells.iter().filter(|c| c.perf.is_some()).collect();
    if with.is_empty() {
        return String::new();
    }
    let mut o =
        String::from("\n| cell | vs | metric | ratio [95%] | call |\n|---|---|---|---|---|\n");
    for c in with {
        let Some(p) = &c.perf else { continue };
        let accel = p.accel.map_or("?", |a| a.name());
        for r in &p.rows {
            o.push_str(&format!(
                "| {} | {} ({accel}, {}+{} boots) | {} | {} | {} |\n",
                escape(&c.id),
                escape(&p.base),
                p.base_boots,
                p.cell_boots,
                escape(&r.metric),
                r.figure(),
                r.call.label()
            ));
        }
        if let Some(n) = &p.host_note {
            o.push_str(&format!("| {} | | | | {} |\n", escape(&c.id), escape(n)));
        }
    }
    o
}

/// What each verdict rests on: were the detectors alive to the end?
fn detectors(cells: &[CellResult]) -> String {
    let booted: Vec<&CellResult> = cells.iter().filter(|c| c.detectors.is_some()).collect();
    if booted.is_empty() {
        return String::new();
    }
    let mut o = String::from("\n| cell | detectors |\n|---|---|\n");
    for c in booted {
        if let Some(d) = &c.detectors {
            o.push_str(&format!(
                "| {} | {} |\n",
                escape(&c.id),
                escape(&d.summary())
            ));
        }
    }
    o
}

/// A cell that did not simply pass: its verdict, reason, reports, controls not judged
/// and details.
fn cell(c: &CellResult, known: &KnownIssues) -> String {
    let mut o = format!("\n### {} — {}\n\n", escape(&c.id), c.verdict.label());
    if let Some(r) = &c.reason {
        o.push_str(&format!(
            "{}{}\n\n",
            escape(r),
            known_note(known.find_verdict(c))
        ));
    }
    for f in &c.findings {
        let note = match &f.expected_by {
            Some(t) => format!(" _\\(expected: control of {}\\)_", escape(t)),
            None if c.in_baseline.contains(&f.title) => " _\\(also in baseline\\)_".into(),
            None => known_note(known.find(&c.id, &f.title)),
        };
        o.push_str(&format!("- {}{note}\n", escape(&f.title)));
    }
    for ctl in &c.controls {
        if let ControlState::NotJudged { why } = &ctl.state {
            o.push_str(&format!(
                "- control of {} not judged: {}\n",
                escape(&ctl.test),
                escape(why)
            ));
        }
    }
    if !c.details.is_empty() {
        o.push('\n');
        // A line each: a detail's own newlines stay visible.
        let lines: Vec<String> = c
            .details
            .iter()
            .map(|d| crate::record::fmt::visible_line(d))
            .collect();
        o.push_str(&fenced(&lines.join("\n")));
    }
    o
}

/// Where each known issue stands in this run (nothing without a list).
pub fn known_section(cells: &[CellResult], known: &KnownIssues) -> String {
    if known.is_empty() {
        return String::new();
    }
    let mut o = String::from("\n### Known issues\n\n| state | issue | cells |\n|---|---|---|\n");
    for (k, state) in known.states(cells) {
        let (what, ids) = match &state {
            IssueState::Seen(ids) => ("seen", ids.join(", ")),
            IssueState::MaybeFixed(ids) => ("**maybe fixed** (not seen)", ids.join(", ")),
            IssueState::NotJudged => ("not judged", String::new()),
        };
        o.push_str(&format!(
            "| {what} | {}{} | {} |\n",
            escape(&k.title),
            known_note(Some(k)),
            escape(&ids)
        ));
    }
    o
}

/// The comparison with an earlier run, for the top of the job summary.
pub fn comparison(c: &Comparison) -> String {
    let mut o = format!(
        "## kmatrix compare\n\n{}: {} \\(since {}\\)\n\n",
        if c.has_new() {
            "**NEW**"
        } else {
            "Nothing new"
        },
        escape(&c.summary()),
        escape(&c.old.display().to_string())
    );
    let mut rows: Vec<_> = c
        .rows
        .iter()
        .filter(|r| r.class != Class::StillFailing)
        .collect();
    rows.sort_by_key(|r| r.class);
    let still = c.rows.len() - rows.len();
    if !rows.is_empty() {
        o.push_str(&comparison_rows(&rows));
        o.push('\n');
    }
    if still > 0 {
        o.push_str(&format!(
            "{still} finding(s) still failing, as before\\.\n\n"
        ));
    }
    if !c.verdicts.is_empty() {
        o.push_str("Verdict changes:\n\n");
        for v in &c.verdicts {
            o.push_str(&verdict_change(v));
        }
        o.push('\n');
    }
    let introduced = c.introduced();
    if !introduced.is_empty() {
        o.push_str("Which patch brought each new finding \\(`kmatrix bisect-new`\\):\n\n");
        for (what, cells) in &introduced {
            o.push_str(&format!("- {}\n", escape(what)));
            for (cell, i) in cells {
                o.push_str(&format!(
                    "  - {}: {}\n",
                    escape(cell),
                    escape(&i.describe())
                ));
            }
        }
        o.push('\n');
    }
    for m in &c.maybe_fixed {
        o.push_str(&format!(
            "- known issue **maybe fixed**: {} \\({}\\), not seen in {}\n",
            escape(&m.known.title),
            escape(&m.known.why),
            escape(&m.cells.join(", "))
        ));
    }
    if !c.maybe_fixed.is_empty() {
        o.push('\n');
    }
    o
}

/// The titles that changed, as a table: change, cell, title (known issue noted), rates.
fn comparison_rows(rows: &[&Row]) -> String {
    let mut o = String::from("| change | cell | finding | old | new |\n|---|---|---|---|---|\n");
    let rate = |r: Option<Rate>| r.map(|r| r.to_string()).unwrap_or("\\-".into());
    for r in rows {
        let what = match r.class {
            Class::New => "**new**".to_string(),
            other => other.label().to_string(),
        };
        let note = r
            .known
            .as_ref()
            .map(|k| {
                format!(
                    " _\\(known issue: {}\\)_{}",
                    escape(&k.why),
                    k.link
                        .as_ref()
                        .filter(|l| crate::spec::known::link_is_safe(l))
                        .map(|l| format!(" [link]({})", escape_link(l)))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let introduced = r
            .introduced
            .as_ref()
            .map(|i| format!(" — {}", escape(&i.describe())))
            .unwrap_or_default();
        o.push_str(&format!(
            "| {what} | {} | {}{note}{introduced} | {} | {} |\n",
            escape(&r.cell),
            escape(&r.title),
            rate(r.old),
            rate(r.new)
        ));
    }
    o
}

/// One cell's verdict change, marked new or known.
fn verdict_change(v: &VerdictChange) -> String {
    let label = |x: Option<Verdict>| x.map(|v| v.label()).unwrap_or("absent");
    format!(
        "- {}: {} → **{}**{}{}\n",
        escape(&v.cell),
        escape(label(v.old)),
        escape(label(v.new)),
        v.reason
            .as_ref()
            .filter(|_| v.new.is_some_and(|n| n != Verdict::Pass))
            .map(|r| format!(" — {}", escape(r)))
            .unwrap_or_default(),
        if v.new_failure {
            " **\\(new\\)**".to_string()
        } else {
            v.known
                .as_ref()
                .map(|k| format!(" _\\(known issue: {}\\)_", escape(&k.why)))
                .unwrap_or_default()
        }
    )
}

/// `summary.md`'s list of the amplified cells (every cell, passing or not).
fn amplified(cells: &[CellResult]) -> String {
    let lines: Vec<String> = cells
        .iter()
        .filter_map(|c| {
            Some(format!(
                "- {}: {}\n",
                escape(&c.id),
                escape(&crate::report::summary::amplify_summary(c)?)
            ))
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\n**Race amplification** (random delays at the functions the series changes):\n\n{}",
        lines.concat()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_text_cannot_break_out() {
        let e = escape("BUG: `x` | <img src=x> [a](http://e) ```");
        assert!(
            !e.contains('<') && !e.contains("|") || e.contains("\\|"),
            "{e}"
        );
        assert!(
            e.contains("\\`x\\`") && e.contains("&lt;img") && e.contains("\\[a\\]"),
            "{e}"
        );
        let f = fenced("line\n````\nmore ``` x");
        let fence = f.lines().next().unwrap().trim_end_matches("text");
        assert_eq!(fence, "`````", "longer than the longest run inside");
        assert!(f.trim_end().ends_with(fence));
    }
}
