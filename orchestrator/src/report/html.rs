//! `report.html`: one self-contained page (no network, no script): the matrix, and per
//! cell its verdict, evidence (accelerator, controls, per-test overlap and per-VMA-lock
//! counters), tests, findings with stack traces and the console around them, and
//! relative links to the cell's files. A "failing only" switch hides passing cells (CSS
//! only). Templates are `maud`: every interpolation is escaped.

use super::{grid, Grid};
use crate::verdict::{Category, CellResult, ControlState};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use std::path::Path;

/// The category's class: one mapping for the matrix, headings and the filter.
pub fn class(c: Category) -> &'static str {
    match c {
        Category::Pass => "pass",
        Category::Failed => "fail",
        Category::Doubtful | Category::Interrupted => "warn",
        Category::Infra => "infra",
    }
}

/// The id of a cell's section: ids are `arch/config/patchset`, whose parts never hold `/`.
fn anchor(id: &str) -> String {
    id.replace('/', "-")
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.4em .8em;vertical-align:top}
th{background:#eee}.pass{background:#d9f2d9}.fail{background:#f7d4d4}.warn{background:#fdf0c4}
.infra{background:#ddd}a{color:inherit}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:90%}
details{margin:.3em 0}summary{cursor:pointer}.small{color:#555;font-size:90%}
#failing:checked ~ section.cell.pass{display:none}
";

/// The files of a cell that exist, as links relative to the run folder (the report works
/// from an unpacked CI artifact).
fn files(c: &CellResult, run_dir: &Path) -> Vec<(String, String)> {
    let rel = c
        .dir
        .strip_prefix(run_dir)
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|_| c.dir.clone());
    [
        "console.log",
        "build.log",
        "config",
        "findings.json",
        "repro.txt",
        "qemu.log",
        "console-kvm.log",
    ]
    .iter()
    .filter(|f| c.dir.join(f).is_file())
    .map(|f| (f.to_string(), rel.join(f).display().to_string()))
    .collect()
}

fn matrix(cells: &[CellResult]) -> Markup {
    let Grid { patchsets, rows } = grid(cells);
    html! {
        table id="matrix" {
            tr { th { "arch/config" } @for p in &patchsets { th { (p) } } }
            @for ((arch, config), by) in &rows {
                tr {
                    th { (arch) "/" (config) }
                    @for p in &patchsets {
                        @match by.get(p) {
                            Some(c) => td class=(class(c.verdict.category())) {
                                a href={ "#" (anchor(&c.id)) } { b { (c.verdict.label()) } }
                                @for f in c.real_findings() {
                                    br; span class="small" { (f.title) }
                                }
                            },
                            None => td { "-" },
                        }
                    }
                }
            }
        }
    }
}

fn cell(c: &CellResult, run_dir: &Path) -> Markup {
    let cat = class(c.verdict.category());
    html! {
        section class={ "cell " (cat) } {
            h2 id=(anchor(&c.id)) class=(cat) { (c.id) " — " (c.verdict.label()) }
            @if let Some(r) = &c.reason { p { (r) } }
            p class="small" {
                @if let Some(a) = c.accel {
                    "accelerator: " (a.name())
                    @if let Some(n) = &c.accel_note { " (" (n) ")" }
                    " · "
                }
                @if let Some(k) = &c.kernel_key {
                    "kernel " (k) @if c.kernel_cached == Some(true) { " (cached)" } " · "
                }
                (format!("{:.0} s", c.seconds))
            }
            @if let Some(d) = &c.detectors { p class="small" { "detectors: " (d.summary()) } }
            @if let Some(a) = crate::amplify::summary(c) { p class="small amplified" { (a) } }
            @let links = files(c, run_dir);
            @if !links.is_empty() {
                p class="small" {
                    "files: "
                    @for (i, (name, href)) in links.iter().enumerate() {
                        @if i > 0 { " · " }
                        a href=(href) { (name) }
                    }
                }
            }
            @if !c.details.is_empty() { pre { (c.details.join("\n")) } }
            @if !c.controls.is_empty() {
                p { "Controls:" }
                ul {
                    @for ctl in &c.controls {
                        li {
                            (ctl.test) " expects " (format!("{:?}", ctl.expect.kind)) ": "
                            @match &ctl.state {
                                ControlState::Fired { line } => { "fired (console line " (line) ")" },
                                ControlState::Silent => { b { "silent" } },
                                ControlState::NotJudged { why } => { "not judged: " (why) },
                            }
                        }
                    }
                }
            }
            @if !c.tests.is_empty() {
                ul {
                    @for t in &c.tests {
                        @let ok = t.ktap.cases.iter().filter(|x| x.status == crate::ktap::Status::Ok).count();
                        li {
                            @if t.passed() { (PreEscaped("&#10003; ")) } @else { (PreEscaped("&#10007; ")) }
                            (t.name) ": " (ok) "/" (t.ktap.cases.len()) " ok"
                            @if let Some(o) = &t.overlap {
                                span class="small" {
                                    (format!(" · overlap {:.1}s: ", o.window_secs))
                                    @for (k, v) in &o.ops { (k) "=" (v) " " }
                                }
                            }
                            @if let Some(n) = t.vmstat_delta.get("vma_lock_success") {
                                span class="small" { " · " (n) " per-VMA-lock faults" }
                            }
                            @if let Some(f) = t.failure() { " — " (f) }
                        }
                    }
                }
            }
            @for f in &c.findings {
                details class="finding" {
                    summary {
                        b { (f.title) } " [" (format!("{:?}", f.kind)) "]"
                        @if let Some(t) = &f.during { span class="small" { " during " (t) } }
                        @if let Some(t) = &f.expected_by {
                            span class="small" { " (expected: control of " (t) ")" }
                        } @else if c.in_baseline.contains(&f.title) {
                            span class="small" { " (also in baseline)" }
                        }
                    }
                    @if !f.trace.is_empty() {
                        p { "Call trace:" }
                        pre class="trace" {
                            @for (i, fr) in f.trace.iter().enumerate() {
                                @if i > 0 { "\n" }
                                (fr.function)
                                @if let Some(s) = &fr.source { " (" (s) ")" }
                            }
                        }
                    }
                    p { "Report (console line " (f.line) "):" }
                    pre {
                        @for l in &f.context { (l) "\n" }
                        (f.report)
                    }
                }
            }
            @for n in &c.notes { p class="small" { "note: " (n) } }
        }
    }
}

pub fn render(cells: &[CellResult], title: &str, run_dir: &Path) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                (matrix(cells))
                input type="checkbox" id="failing";
                label for="failing" { " failing only" }
                @for c in cells { (cell(c, run_dir)) }
            }
        }
    }
    .into_string()
}
