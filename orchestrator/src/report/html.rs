//! `report.html`: one self-contained page (no network, no script): the matrix, and per
//! cell its verdict, a timeline of its phases, evidence (accelerator, controls, per-test
//! overlap and per-VMA-lock counters), tests, findings with stack traces and the console
//! around them, and relative links to the cell's files (they resolve inside the run
//! folder wherever it is unpacked). A "failing only" switch hides passing cells (CSS
//! only). Templates are `maud`: every interpolation is escaped.

use crate::judge::compare::{Class, Comparison};
use crate::record::bisect::{Bisect, Judged, Outcome};
use crate::record::finding::Finding;
use crate::record::result::{CellResult, Control, ControlState, TestResult};
use crate::record::verdict::Category;
use crate::report::summary::{grid, Grid};
use crate::spec::known::{IssueState, KnownIssue, KnownIssues, KnownRef};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use std::path::{Component, Path, PathBuf};

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
.timeline{display:flex;max-width:60em;height:1.3em;border:1px solid #bbb;margin:.3em 0}
.timeline span{overflow:hidden;white-space:nowrap;font-size:75%;line-height:1.3em;padding:0 .2em;box-sizing:border-box;border-right:1px solid #fff}
.ph-source,.ph-patch{background:#c9d7ee}.ph-build{background:#f3d9a4}.ph-image{background:#d8c9ee}
.ph-boot{background:#b9e0e8}.ph-test{background:#c4e6c0}.ph-collect{background:#ddd}
table.phases td{padding:.1em .6em;border-color:#ddd}
table.coverage td{padding:.05em .5em;border-color:#ddd;font-size:90%}
tr.ran{background:#e3f5e3}tr.never{background:#f7dcdc}tr.nocode{color:#777}
";

/// A cell's folder relative to the run folder: where it was when the run wrote it, or
/// (the run folder moved: an unpacked CI artifact) the folder its id names. Never a
/// path that leaves the run folder: results.json may come from anywhere.
pub fn cell_rel_dir(c: &CellResult, run_dir: &Path) -> Option<PathBuf> {
    let rel = c
        .dir
        .strip_prefix(run_dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(&c.id));
    let inside =
        rel.components().count() > 0 && rel.components().all(|p| matches!(p, Component::Normal(_)));
    inside.then_some(rel)
}

/// A relative link (`/`-separated, each part percent-escaped where a URL needs it).
pub fn href(rel: &Path) -> String {
    let mut out = String::new();
    for (i, part) in rel.components().enumerate() {
        if i > 0 {
            out.push('/');
        }
        for b in part.as_os_str().as_encoded_bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(*b as char)
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    out
}

/// The files of a cell that exist, as links relative to the run folder (the report works
/// from an unpacked CI artifact).
fn files(c: &CellResult, run_dir: &Path) -> Vec<(String, String)> {
    let Some(rel) = cell_rel_dir(c, run_dir) else {
        return vec![];
    };
    [
        "console.log",
        "build.log",
        "config",
        "findings.json",
        "repro.txt",
        "qemu.log",
        "console-kvm.log",
        "virtiofsd-results.log",
        "virtiofsd-tests.log",
    ]
    .iter()
    .filter(|f| crate::host::runfile::is_plain_file(run_dir, rel.join(f)))
    .map(|f| (f.to_string(), href(&rel.join(f))))
    .collect()
}

/// The link to a test's streamed output, when it is there.
fn ktap_link(c: &CellResult, run_dir: &Path, test: &str) -> Option<String> {
    let rel = cell_rel_dir(c, run_dir)?
        .join("tests")
        .join(format!("{test}.ktap"));
    let plain = Path::new(test)
        .components()
        .all(|p| matches!(p, Component::Normal(_)));
    (plain && crate::host::runfile::is_plain_file(run_dir, &rel)).then(|| href(&rel))
}

/// `+1m05s`: an offset or a length on the timeline.
fn clock(secs: f64) -> String {
    let s = secs.round() as u64;
    format!("{}m{:02}s", s / 60, s % 60)
}

/// The cell's phases as one bar (widths by time) and a table of start and length.
fn timeline(c: &CellResult) -> Markup {
    let spans = c.phase_spans();
    let total: f64 = spans.iter().map(|s| s.seconds).sum();
    html! {
        @if !spans.is_empty() && total > 0.0 {
            div class="timeline" {
                @for s in &spans {
                    @let label = if s.start.detail.is_empty() {
                        s.start.phase.label().to_string()
                    } else {
                        format!("{}: {}", s.start.phase.label(), s.start.detail)
                    };
                    span class={ "ph-" (s.start.phase.label()) }
                        style=(format!("width:{:.2}%", 100.0 * s.seconds / total))
                        title=(format!("{label} ({})", clock(s.seconds))) {
                            // A test's segment is named after the test.
                            @if s.start.phase == crate::record::phase::Phase::Test && !s.start.detail.is_empty() {
                                (s.start.detail)
                            } @else {
                                (s.start.phase.label())
                            }
                        }
                }
            }
            details class="small" {
                summary { "timeline: " (clock(total)) " in " (spans.len()) " phases" }
                table class="phases" {
                    tr { th { "phase" } th { "" } th { "start" } th { "length" } }
                    @for s in &spans {
                        tr {
                            td { (s.start.phase.label()) }
                            td { (s.start.detail) }
                            td { "+" (clock(s.offset)) }
                            td { (clock(s.seconds)) }
                        }
                    }
                }
            }
        }
    }
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

/// `(known issue: why, link)` beside a failure that matches one.
fn known_note(k: Option<KnownRef>) -> Markup {
    html! {
        @if let Some(k) = k {
            span class="small known" {
                " (known issue: " (k.why)
                @if let Some(l) = k.link.as_ref().filter(|l| crate::spec::known::link_is_safe(l)) { ", " a href=(l) { (l) } }
                ")"
            }
        }
    }
}

fn reference(k: Option<&KnownIssue>) -> Option<KnownRef> {
    k.map(KnownIssue::reference)
}

fn cell(c: &CellResult, run_dir: &Path, known: &KnownIssues) -> Markup {
    let cat = class(c.verdict.category());
    html! {
        section class={ "cell " (cat) } {
            h2 id=(anchor(&c.id)) class=(cat) { (c.id) " — " (c.verdict.label()) }
            @if let Some(r) = &c.reason { p { (r) (known_note(reference(known.find_verdict(c)))) } }
            (run_facts(c))
            @if let Some(d) = &c.detectors { p class="small" { "detectors: " (d.summary()) } }
            @if let Some(a) = crate::report::summary::amplify_summary(c) { p class="small amplified" { (a) } }
            @if let Some(g) = &c.lock_graph { (lock_graph(g)) }
            @if let Some(s) = &c.series_coverage { (series_coverage(s)) }
            @if let Some(p) = &c.perf { (perf(p)) }
            (timeline(c))
            (file_links(c, run_dir))
            @if !c.details.is_empty() { pre { (c.details.join("\n")) } }
            @if let Some(f) = &c.forensics { pre class="small" { "forensics: " (f) } }
            @if !c.controls.is_empty() { (controls(&c.controls)) }
            @if !c.tests.is_empty() {
                ul { @for t in &c.tests { (test_item(c, run_dir, t)) } }
            }
            @for f in &c.findings { (finding(c, f, known)) }
            @for n in &c.notes { p class="small" { "note: " (n) } }
        }
    }
}

/// The accelerator, the kernel (cached or built) and the cell's time, on one line.
fn run_facts(c: &CellResult) -> Markup {
    html! {
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
    }
}

/// Performance against the base cell: every metric's ratio and interval.
fn perf(p: &crate::record::perf::PerfAb) -> Markup {
    html! {
        details {
            summary { (p.summary()) }
            table {
                tr { th { "metric" } th { "base ops/s" } th { "cell ops/s" } th { "ratio [95%]" } th { "call" } }
                @for r in &p.rows {
                    tr {
                        td { (r.metric) }
                        td { (format!("{:.0}", r.base_median)) }
                        td { (format!("{:.0}", r.cell_median)) }
                        td { (r.figure()) }
                        td { (r.call.label()) }
                    }
                }
            }
        }
    }
}

/// The lock graph against the base cell: cycles, new edges with their chains, and the
/// timing edges folded apart.
fn lock_graph(g: &crate::record::lockgraph::Diff) -> Markup {
    html! {
        details {
            summary { (g.summary()) }
            ul {
                @for cy in &g.cycles { li { b { "cycle: " } (cy.join(" -> ")) } }
                @for (a, b) in &g.new_edges {
                    li {
                        "new edge: " (a) " -> " (b)
                        @if let Some(c) = g.context(a, b) {
                            br; span class="small" { "chain: " (c) }
                        }
                    }
                }
                @if !g.timing_edges.is_empty() {
                    li {
                        details {
                            summary { (g.timing_edges_total) " edge(s) into scheduler/timer-like locks (timing, not the series)" }
                            ul { @for (a, b) in &g.timing_edges { li { (a) " -> " (b) } } }
                        }
                    }
                }
            }
        }
    }
}

/// The series' changed lines as a coverage report of the diff: per file, each added
/// line with its count in each test, or why it has none (not built, under a false
/// `#if`, no code).
fn series_coverage(s: &crate::record::coverage::SeriesCoverage) -> Markup {
    use crate::record::coverage::LineStatus;
    html! {
        details class="coverage" {
            summary { (s.summary) }
            @for f in &s.files {
                table class="coverage" {
                    tr { th { (f.path) } th { "line" } @for t in &s.tests { th { (t) } } th { "" } }
                    @for l in &f.lines {
                        tr class=(match l.status {
                            LineStatus::Code if l.hits.iter().any(|h| *h > 0) => "ran",
                            LineStatus::Code => "never",
                            _ => "nocode",
                        }) {
                            td { code { (l.text) } }
                            td { (l.line) }
                            @for i in 0..s.tests.len() {
                                td { @if let Some(h) = l.hits.get(i) { (h) } }
                            }
                            td class="small" {
                                @match &l.status {
                                    LineStatus::Code => {},
                                    LineStatus::NoCode => { "no code" },
                                    LineStatus::Disabled { directive, at } => { "not compiled: " (directive) " (line " (at) ")" },
                                    LineStatus::NotBuilt => { "file not built" },
                                    LineStatus::NotMeasurable { why } => { "not measurable: " (why) },
                                }
                            }
                        }
                    }
                }
            }
            @if !s.notes.is_empty() { ul { @for n in &s.notes { li class="small" { (n) } } } }
        }
    }
}

/// Links to the cell's files that exist.
fn file_links(c: &CellResult, run_dir: &Path) -> Markup {
    let links = files(c, run_dir);
    html! {
        @if !links.is_empty() {
            p class="small" {
                "files: "
                @for (i, (name, href)) in links.iter().enumerate() {
                    @if i > 0 { " · " }
                    a href=(href) { (name) }
                }
            }
        }
    }
}

/// The positive controls and what became of each.
fn controls(controls: &[Control]) -> Markup {
    html! {
        p { "Controls:" }
        ul {
            @for ctl in controls {
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
}

/// A guest test: passed or not, its output's link, cases, overlap and per-VMA-lock
/// faults, why it failed.
fn test_item(c: &CellResult, run_dir: &Path, t: &TestResult) -> Markup {
    let ok = t
        .ktap
        .cases
        .iter()
        .filter(|x| x.status == crate::parse::ktap::Status::Ok)
        .count();
    html! {
        li {
            @let skipped = t.skipped();
            @if !t.passed() { (PreEscaped("&#10007; ")) } @else if skipped.is_some() { (PreEscaped("&#8211; ")) } @else { (PreEscaped("&#10003; ")) }
            @match ktap_link(c, run_dir, &t.name) {
                Some(h) => a href=(h) { (t.name) },
                None => (t.name),
            }
            ": " (ok) "/" (t.ktap.cases.len()) " ok"
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
            @if let Some(why) = skipped { " — skipped: " (why) }
        }
    }
}

/// A kernel report, folded: its title and what it is (expected, in the baseline, a
/// known issue), then its call trace and the console around it.
fn finding(c: &CellResult, f: &Finding, known: &KnownIssues) -> Markup {
    html! {
        details class="finding" {
            summary {
                b { (f.title) } " [" (format!("{:?}", f.kind)) "]"
                @if let Some(t) = &f.during { span class="small" { " during " (t) } }
                @if let Some(t) = &f.expected_by {
                    span class="small" { " (expected: control of " (t) ")" }
                } @else if c.in_baseline.contains(&f.title) {
                    span class="small" { " (also in baseline)" }
                } @else {
                    (known_note(reference(known.find(&c.id, &f.title))))
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
}

/// The real reports across the run, by title: count, where (the factor that explains it),
/// the cheapest cell to reproduce it, the first occurrence.
fn titles(cells: &[CellResult]) -> Markup {
    let titles = crate::judge::factors::titles(cells);
    let why = crate::judge::factors::explain(cells, &titles);
    html! {
        @if !titles.is_empty() {
            table id="titles" {
                tr { th { "report" } th { "count" } th { "where" } th { "cheapest cell" } th { "first" } }
                @for (t, e) in titles.iter().zip(&why) {
                    tr {
                        td { (t.title) }
                        td { (t.count) }
                        td { (e.factors) }
                        td { a href={ "#" (anchor(&e.cheapest)) } { (e.cheapest) } }
                        td { (t.first.cell) " line " (t.first.line) }
                    }
                }
            }
        }
    }
}

pub fn render(cells: &[CellResult], title: &str, run_dir: &Path) -> String {
    render_with(cells, title, run_dir, &KnownIssues::default(), None)
}

/// Where each known issue stands in this run.
fn known_section(cells: &[CellResult], known: &KnownIssues) -> Markup {
    html! {
        @if !known.is_empty() {
            section id="known" {
                h2 { "Known issues" }
                table {
                    tr { th { "state" } th { "issue" } th { "cells" } }
                    @for (k, state) in known.states(cells) {
                        tr {
                            @match &state {
                                IssueState::Seen(ids) => { td class="fail" { "seen" } td { (k.title) (known_note(Some(k.reference()))) } td { (ids.join(", ")) } },
                                IssueState::MaybeFixed(ids) => { td class="pass" { b { "maybe fixed" } " (not seen)" } td { (k.title) (known_note(Some(k.reference()))) } td { (ids.join(", ")) } },
                                IssueState::NotJudged => { td { "not judged" } td { (k.title) (known_note(Some(k.reference()))) } td { "-" } },
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The comparison with an earlier run (`kmatrix compare`), on top of the page.
pub fn comparison(c: &Comparison) -> Markup {
    let rate =
        |r: Option<crate::judge::compare::Rate>| r.map(|r| r.to_string()).unwrap_or("-".into());
    let mut rows: Vec<_> = c.rows.iter().collect();
    rows.sort_by_key(|r| r.class);
    html! {
        section id="compare" {
            h2 class=(if c.has_new() { "fail" } else { "pass" }) {
                "Compared with " (c.old.display()) ": " (if c.has_new() { "NEW" } else { "nothing new" })
            }
            p { (c.summary()) }
            @if !rows.is_empty() {
                table {
                    tr { th { "change" } th { "cell" } th { "finding" } th { "old" } th { "new" } }
                    @for r in rows {
                        @let cls = match r.class { Class::New => "fail", Class::Fixed => "pass", Class::Known | Class::Flaky | Class::StillFailing => "warn", Class::NotJudged => "infra" };
                        tr {
                            td class=(cls) { @if r.class == Class::New { b { "new" } } @else { (r.class.label()) } }
                            td { a href={ "#" (anchor(&r.cell)) } { (r.cell) } }
                            td { (r.title) (known_note(r.known.clone())) @if let Some(i) = &r.introduced { " — " b { (i.describe()) } } }
                            td { (rate(r.old)) }
                            td { (rate(r.new)) }
                        }
                    }
                }
            }
            @if !c.verdicts.is_empty() {
                p { "Verdict changes:" }
                ul {
                    @for v in &c.verdicts {
                        li {
                            (v.cell) ": " (v.old.map(|x| x.label()).unwrap_or("absent")) " → "
                            b { (v.new.map(|x| x.label()).unwrap_or("absent")) }
                            @if let Some(r) = v.reason.as_ref().filter(|_| v.new.is_some_and(|n| n != crate::record::verdict::Verdict::Pass)) { " — " (r) }
                            @if v.new_failure { " " b { "(new)" } } @else { (known_note(v.known.clone())) }
                        }
                    }
                }
            }
            @let introduced = c.introduced();
            @if !introduced.is_empty() {
                p { "Which patch brought each new finding (" code { "kmatrix bisect-new" } "):" }
                ul {
                    @for (what, cells) in &introduced {
                        li { (what) ul { @for (cell, i) in cells {
                            li {
                                a href={ "#" (anchor(cell)) } { (cell) } ": " (i.describe())
                                @if let Some(d) = i.dir.as_ref().filter(|d| d.components().all(|p| matches!(p, Component::Normal(_)))) { " (" a href=(href(&d.join("report.html"))) { "bisection" } ")" }
                            }
                        } } }
                    }
                }
            }
            @for m in &c.maybe_fixed {
                p { "Known issue " b { "maybe fixed" } ": " (m.known.title) (known_note(Some(m.known.clone()))) ", not seen in " (m.cells.join(", ")) }
            }
        }
    }
}

/// The report page, with known issues marked (and their section) and, when `kmatrix
/// compare` made one, the comparison with an earlier run on top.
pub fn render_with(
    cells: &[CellResult],
    title: &str,
    run_dir: &Path,
    known: &KnownIssues,
    compare: Option<&Comparison>,
) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                @if let Some(c) = compare { (comparison(c)) }
                (matrix(cells))
                (known_section(cells, known))
                (titles(cells))
                input type="checkbox" id="failing";
                label for="failing" { " failing only" }
                @for c in cells { (cell(c, run_dir, known)) }
            }
        }
    }
    .into_string();
    // maud escapes markup; control and bidi characters (which HTML forbids or which
    // reorder what is read) are shown as `\xNN`, everywhere on the page at once.
    crate::record::fmt::visible(&page)
}

/// `report.html` of a bisect folder: the answer, the steps (each linking to its own run's
/// report), the series and the repro.
pub fn bisect_page(b: &Bisect) -> String {
    let n = b.series.len();
    let title = format!("kmatrix bisect: {}", b.cell);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                p {
                    (n) " patch(es), looking for "
                    @match &b.predicate { Some(p) => { (p.describe()) }, None => { "its verdict" } }
                    @if b.repeat > 1 { ", " (b.repeat) " boots a step" }
                    " · " (super::text::minutes(b.seconds))
                }
                @match &b.outcome {
                    Outcome::Found { patch } => {
                        @if let Some(p) = b.patch(*patch) {
                            h2 class="fail" { "First bad patch: " (p.index) "/" (n) " " (p.subject) }
                            p { "file: " code { (crate::record::fmt::display_rel(&p.file)) } }
                        }
                        @if let Some(r) = b.rate { p class="small" { (format!("failure rate over the bad steps' boots: {:.0}%", r * 100.0)) } }
                    },
                    Outcome::Range { first, last } => {
                        h2 class="warn" { "First bad patch: one of " (first) ".." (last) }
                        p { "The steps in between could not be judged." }
                    },
                    Outcome::NotReproduced { why } => { h2 class="warn" { "Not reproduced" } p { (why) } },
                    Outcome::Stopped { why, .. } => { h2 class="infra" { "Stopped" } p { (why) } },
                    Outcome::Running => { h2 class="warn" { "Running" } },
                    Outcome::Judged => { h2 { "One prefix judged" } },
                }
                @if let Some(r) = &b.repro { p { "repro: " } pre { (r) } }
                h2 { "Steps" }
                table {
                    tr { th { "prefix" } th { "up to" } th { "verdict" } th { "judged" } th { "seen" } th { "missed?" } th { "time" } th { "run" } }
                    @for s in &b.steps {
                        @let cls = match s.judged { Some(Judged::Bad) => "fail", Some(Judged::Good) => "pass", _ => "warn" };
                        tr {
                            td { (s.prefix) "/" (n) }
                            td { @if let Some(p) = b.patch(s.prefix) { (p.subject) } }
                            td class=(class(s.verdict.category())) { (s.verdict.label()) @if let Some(r) = &s.reason { br; span class="small" { (r) } } }
                            td class=(cls) { (s.judged.map(|j| j.label()).unwrap_or("-")) @if let Some(w) = &s.why { br; span class="small" { (w) } } }
                            td { @if s.boots > 0 && b.predicate.as_ref().is_some_and(|p| p.varies()) { (s.seen) "/" (s.boots) } @else { "-" } }
                            td { @if let Some(m) = s.miss_chance { (format!("{:.0}%", m * 100.0)) } @else { "-" } }
                            td { (super::text::minutes(s.seconds)) @if s.kernel_cached == Some(true) { br; span class="small" { "kernel cached" } } }
                            td { a href={ (s.dir.display()) "/report.html" } { (s.dir.display()) } }
                        }
                    }
                }
                h2 { "Series" }
                ol {
                    @for p in &b.series { li { (p.subject) " " span class="small" { code { (crate::record::fmt::display_rel(&p.file)) } } } }
                }
            }
        }
    }
    .into_string();
    crate::record::fmt::visible(&page)
}
