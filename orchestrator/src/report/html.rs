//! `report.html`: one self-contained page (no network): the matrix, and per cell its
//! verdict, tests, findings with stack traces and a console excerpt, behind click-through.

use super::junit::escape;
use super::{grid, Grid};
use crate::verdict::{CellResult, Verdict};

fn class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Inconclusive | Verdict::Interrupted => "warn",
        Verdict::InfraError => "infra",
        _ => "fail",
    }
}

fn anchor(id: &str) -> String {
    id.replace('/', "-")
}

/// Console lines around each finding (from the cell's console.log, when present).
fn excerpt(c: &CellResult, line: usize) -> String {
    let Ok(bytes) = std::fs::read(c.dir.join("console.log")) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let from = line.saturating_sub(6);
    let to = (line + 40).min(lines.len());
    lines
        .get(from..to)
        .map(|l| l.join("\n"))
        .unwrap_or_default()
}

pub fn render(cells: &[CellResult], title: &str) -> String {
    let Grid { patchsets, rows } = grid(cells);
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    o.push_str(&format!("<title>{}</title>\n", escape(title)));
    o.push_str(
        "<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.4em .8em;vertical-align:top}
th{background:#eee}.pass{background:#d9f2d9}.fail{background:#f7d4d4}.warn{background:#fdf0c4}
.infra{background:#ddd}a{color:inherit}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:90%}
details{margin:.3em 0}summary{cursor:pointer}.small{color:#555;font-size:90%}
</style></head><body>\n",
    );
    o.push_str(&format!(
        "<h1>{}</h1>\n<table id=\"matrix\"><tr><th>arch/config</th>",
        escape(title)
    ));
    for p in &patchsets {
        o.push_str(&format!("<th>{}</th>", escape(p)));
    }
    o.push_str("</tr>\n");
    for ((arch, config), by) in &rows {
        o.push_str(&format!("<tr><th>{}/{}</th>", escape(arch), escape(config)));
        for p in &patchsets {
            match by.get(p) {
                Some(c) => {
                    let titles: Vec<String> = c
                        .findings
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !matches!(c.expected_by.get(*i), Some(Some(_))))
                        .map(|(_, f)| escape(&f.title))
                        .collect();
                    o.push_str(&format!(
                        "<td class=\"{}\"><a href=\"#{}\"><b>{}</b></a>{}</td>",
                        class(c.verdict),
                        anchor(&c.id),
                        c.verdict.label(),
                        if titles.is_empty() {
                            String::new()
                        } else {
                            format!("<br><span class=\"small\">{}</span>", titles.join("<br>"))
                        }
                    ));
                }
                None => o.push_str("<td>-</td>"),
            }
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");

    for c in cells {
        o.push_str(&format!(
            "<h2 id=\"{}\" class=\"{}\">{} &mdash; {}</h2>\n",
            anchor(&c.id),
            class(c.verdict),
            escape(&c.id),
            c.verdict.label()
        ));
        if let Some(r) = &c.reason {
            o.push_str(&format!("<p>{}</p>\n", escape(r)));
        }
        let mut facts = Vec::new();
        if let Some(a) = &c.accel {
            facts.push(format!(
                "accelerator: {}{}",
                escape(a),
                c.accel_note
                    .as_ref()
                    .map(|n| format!(" ({})", escape(n)))
                    .unwrap_or_default()
            ));
        }
        if let Some(k) = &c.kernel_key {
            facts.push(format!(
                "kernel {}{}",
                escape(k),
                if c.kernel_cached == Some(true) {
                    " (cached)"
                } else {
                    ""
                }
            ));
        }
        facts.push(format!("{:.0} s", c.seconds));
        o.push_str(&format!(
            "<p class=\"small\">{}</p>\n",
            facts.join(" &middot; ")
        ));
        if !c.details.is_empty() {
            o.push_str(&format!("<pre>{}</pre>\n", escape(&c.details.join("\n"))));
        }
        if !c.tests.is_empty() {
            o.push_str("<ul>\n");
            for t in &c.tests {
                let ok = t
                    .ktap
                    .cases
                    .iter()
                    .filter(|x| x.status == crate::ktap::Status::Ok)
                    .count();
                o.push_str(&format!(
                    "<li>{} {}: {ok}/{} ok{}</li>\n",
                    if t.passed() { "&#10003;" } else { "&#10007;" },
                    escape(&t.name),
                    t.ktap.cases.len(),
                    t.error
                        .as_ref()
                        .map(|e| format!(" &mdash; {}", escape(e)))
                        .unwrap_or_default()
                ));
            }
            o.push_str("</ul>\n");
        }
        for (i, f) in c.findings.iter().enumerate() {
            let tag = match c.expected_by.get(i) {
                Some(Some(t)) => format!(
                    " <span class=\"small\">(expected: control of {})</span>",
                    escape(t)
                ),
                _ if c.in_baseline.contains(&f.title) => {
                    " <span class=\"small\">(also in baseline)</span>".into()
                }
                _ => String::new(),
            };
            o.push_str(&format!(
                "<details class=\"finding\"><summary><b>{}</b> [{:?}]{tag}</summary>\n",
                escape(&f.title),
                f.kind
            ));
            let trace: Vec<String> = f
                .trace
                .iter()
                .map(|fr| {
                    format!(
                        "{}{}",
                        fr.function,
                        fr.source
                            .as_ref()
                            .map(|s| format!(" ({s})"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            if !trace.is_empty() {
                o.push_str(&format!(
                    "<p>Call trace:</p><pre class=\"trace\">{}</pre>\n",
                    escape(&trace.join("\n"))
                ));
            }
            o.push_str(&format!("<p>Report:</p><pre>{}</pre>\n", escape(&f.report)));
            let ex = excerpt(c, f.line);
            if !ex.is_empty() {
                o.push_str(&format!(
                    "<details><summary>console around line {}</summary><pre>{}</pre></details>\n",
                    f.line,
                    escape(&ex)
                ));
            }
            o.push_str("</details>\n");
        }
        o.push_str(&format!(
            "<p class=\"small\">files: {}</p>\n",
            escape(&c.dir.display().to_string())
        ));
    }
    o.push_str("</body></html>\n");
    o
}
