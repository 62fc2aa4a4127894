//! `summary.md`: the matrix and the findings, for a CI job summary (GitHub-flavoured
//! Markdown). Text from the kernel or the guest is escaped: it can neither close a code
//! span or fence nor inject HTML, links or table cells into the job summary.

use super::{grid, Grid};
use crate::verdict::{CellResult, ControlState, Verdict};

/// Inline text, every Markdown-active character backslash-escaped and HTML's `<` `>`
/// `&` written as entities; one line.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\n' | '\r' => o.push(' '),
            c if c.is_control() => o.push('\u{FFFD}'),
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
    let body: String = body
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    format!("{fence}text\n{}\n{fence}\n", body.trim_end_matches('\n'))
}

pub fn render(cells: &[CellResult]) -> String {
    let Grid { patchsets, rows } = grid(cells);
    let mut o = String::from("## kmatrix results\n\n| arch/config |");
    for p in &patchsets {
        o.push_str(&format!(" {} |", escape(p)));
    }
    o.push_str("\n|---|");
    o.push_str(&"---|".repeat(patchsets.len()));
    o.push('\n');
    for ((arch, config), by) in &rows {
        o.push_str(&format!("| {arch}/{config} |"));
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
    let titles = super::titles(cells);
    if !titles.is_empty() {
        let why = super::factors::explain(cells, &titles);
        o.push_str("\n| report | count | where | cheapest cell | first |\n|---|---|---|---|---|\n");
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
    }
    o.push_str(&crate::amplify::markdown(cells));
    // What each verdict rests on: were the detectors alive to the end?
    let booted: Vec<&CellResult> = cells.iter().filter(|c| c.detectors.is_some()).collect();
    if !booted.is_empty() {
        o.push_str("\n| cell | detectors |\n|---|---|\n");
        for c in booted {
            if let Some(d) = &c.detectors {
                o.push_str(&format!(
                    "| {} | {} |\n",
                    escape(&c.id),
                    escape(&d.summary())
                ));
            }
        }
    }
    for c in cells {
        if c.verdict == Verdict::Pass && c.findings.is_empty() {
            continue;
        }
        o.push_str(&format!(
            "\n### {} — {}\n\n",
            escape(&c.id),
            c.verdict.label()
        ));
        if let Some(r) = &c.reason {
            o.push_str(&format!("{}\n\n", escape(r)));
        }
        for f in &c.findings {
            let note = match &f.expected_by {
                Some(t) => format!(" _\\(expected: control of {}\\)_", escape(t)),
                None if c.in_baseline.contains(&f.title) => " _\\(also in baseline\\)_".into(),
                None => String::new(),
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
            o.push_str(&fenced(&c.details.join("\n")));
        }
    }
    o
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
