//! Every output stays valid with hostile names (issue #30): a results.json whose config
//! names, patchsets, test names, titles, reasons, notes, accelerator notes and forensics
//! carry HTML, Markdown, newlines, terminal escape sequences, NUL and bidi overrides.
//! summary.md gets no HTML, heading, link or table cell from them; matrix.txt, the
//! terminal and error messages show control and bidi characters as `\xNN`; report.html
//! has none of them raw; junit.xml stays schema-valid; no name starts a line of its own.

use kmatrix::console::{Finding, Kind};
use kmatrix::record::plan::{Arch, Cell, Expectation};
use kmatrix::record::result::{CellResult, Control, ControlState, TestOutcome, TestResult};
use kmatrix::record::verdict::Verdict;
use kmatrix::report::{self, RunMeta};
use kmatrix::spec::known::KnownIssues;
use std::path::Path;
use std::process::Command;

/// HTML, a Markdown heading on a line of its own, a link, a table cell, a code span, an
/// OSC title and a colour (ESC, BEL), NUL, carriage return and bidi overrides.
const H: &str = "<img src=x onerror=alert(1)>\n# pwned\n[link](http://evil.example/x) | `code` \u{1b}]0;title\u{7}\u{1b}[31mred\0\u{202e}gnp.exe\u{2066}\r**b**";

/// A config name a results.json could carry through `kmatrix report` (no `/`).
const CONFIG: &str = "on\u{1b}]0;pwned\u{7}\u{202e}\n# pwned <img src=x>";

fn cell(config: &str, patchset: &str, dir: &Path) -> CellResult {
    let c = Cell {
        arch: Arch::X86_64,
        config: config.into(),
        patchset: patchset.into(),
        base_config: "tinyconfig".into(),
        fragments: vec![],
        patches: vec![],
    };
    CellResult::new(&c, dir.join(c.rel_dir()))
}

/// A failing cell with `h` in every string a cell carries.
fn hostile(config: &str, patchset: &str, dir: &Path, h: &str) -> CellResult {
    let mut c = cell(config, patchset, dir);
    c.verdict = Verdict::Fail;
    c.reason = Some(h.into());
    c.details = vec![h.into(), format!("second {h}")];
    c.accel = Some(kmatrix::record::plan::Accel::Tcg);
    c.accel_note = Some(h.into());
    c.forensics = Some(h.into());
    c.notes = vec![h.into()];
    c.subjects = vec![h.into()];
    c.boot_lines = vec![1];
    c.seconds = 60.0;
    c.tests = vec![TestResult {
        seconds: 5.0,
        ..TestResult::new(h, TestOutcome::HostError { message: h.into() })
    }];
    c.findings = vec![Finding {
        kind: Kind::Warning,
        title: h.into(),
        report: h.into(),
        during: Some(h.into()),
        line: 7,
        context: vec![h.into()],
        ..Default::default()
    }];
    c.controls = vec![Control {
        test: h.into(),
        expect: Expectation {
            kind: Kind::Lockdep,
            title: None,
        },
        state: ControlState::NotJudged { why: h.into() },
    }];
    c.in_baseline = vec![h.into()];
    c.phases = vec![kmatrix::record::result::PhaseStart {
        phase: kmatrix::record::phase::Phase::Test,
        detail: h.into(),
        at: 1000.0,
    }];
    c.dropped.insert(h.into(), 3);
    c
}

/// Characters no output may carry raw (newlines and tabs aside): controls, bidi marks,
/// overrides and isolates, line and paragraph separators.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fn hidden_in(what: &str, text: &str) {
    let bad: Vec<String> = text
        .chars()
        .filter(|c| *c != '\n' && *c != '\t' && hidden(*c))
        .map(|c| format!("U+{:04X}", c as u32))
        .collect();
    assert!(bad.is_empty(), "{what} holds raw {bad:?}");
}

/// No hostile name starts a line of its own (its newline stayed visible).
fn no_line_of_its_own(what: &str, text: &str) {
    for l in text.lines() {
        let t = l.trim_start();
        assert!(
            !t.starts_with("# pwned") && !t.starts_with("[link]"),
            "{what}: a name started a line: {l:?}"
        );
    }
}

/// `|` not escaped with a backslash.
fn pipes(line: &str) -> usize {
    let b = line.as_bytes();
    (0..b.len())
        .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
        .count()
}

fn write(dir: &Path) -> Vec<CellResult> {
    let cells = vec![
        hostile(H, "base", dir, H),
        hostile("pvl-on", H, dir, H),
        hostile(CONFIG, "v2", dir, H),
    ];
    // A known-issues list whose `why` is hostile (YAML reads JSON's escapes).
    let list = serde_json::json!([{"title": "*", "why": H.replace('\0', ""), "link": "https://example.org/i/1"}]);
    std::fs::write(dir.join("known-issues.yaml"), list.to_string()).unwrap();
    let known = KnownIssues::of_run(dir).unwrap();
    // And a comparison with an earlier run of the same names.
    let mut old = cells.clone();
    for c in &mut old {
        c.findings[0].title = format!("old {H}");
        c.verdict = Verdict::Pass;
    }
    let cmp = kmatrix::judge::compare::compare(dir, &old, dir, &cells, &known);
    kmatrix::judge::compare::write(dir, &cmp).unwrap();
    let meta = RunMeta {
        spec: H.into(),
        spec_hash: "h".into(),
        shard: None,
    };
    report::write_results(dir, &meta, &cells).unwrap();
    cells
}

#[test]
fn every_output_stays_valid_with_hostile_names() {
    let d = tempfile::tempdir().unwrap();
    let cells = write(d.path());
    let read = |f: &str| std::fs::read_to_string(d.path().join(f)).unwrap();

    // summary.md: no HTML, no heading, no link, no extra table cell from a name.
    let md = read("summary.md");
    hidden_in("summary.md", &md);
    no_line_of_its_own("summary.md", &md);
    // Outside code blocks (whose text is literal), no HTML and no link.
    let mut outside = String::new();
    let mut fence: Option<&str> = None;
    for l in md.lines() {
        match fence {
            Some(f) if l == f => fence = None,
            Some(_) => {}
            None if l.starts_with("```") => fence = Some(l.trim_end_matches("text")),
            None => {
                outside.push_str(l);
                outside.push('\n');
            }
        }
    }
    assert!(fence.is_none(), "a code block never closed:\n{md}");
    assert!(!outside.contains('<'), "raw HTML in summary.md:\n{md}");
    assert!(
        !outside.contains("](http://evil"),
        "a link got through:\n{md}"
    );
    for l in outside.lines() {
        let t = l.trim_start();
        if t.starts_with('#') {
            assert!(
                t.starts_with("## kmatrix") || t.starts_with("### "),
                "a heading from a name: {l:?}"
            );
        }
    }
    let mut width = None;
    for l in outside.lines() {
        if !l.starts_with('|') {
            width = None;
            continue;
        }
        let n = pipes(l);
        match width {
            None => width = Some(n),
            Some(w) => assert_eq!(n, w, "a name added a table cell: {l:?}"),
        }
    }

    // matrix.txt and the terminal (with its colours): everything visible.
    let txt = read("matrix.txt");
    hidden_in("matrix.txt", &txt);
    no_line_of_its_own("matrix.txt", &txt);
    assert!(txt.contains("\\x1b]0;title\\x07"), "{txt}");
    assert!(txt.contains("\\x202e"), "{txt}");
    let known = KnownIssues::of_run(d.path()).unwrap();
    let coloured = report::text::styled_with(&cells, &known, &kmatrix::report::terminal::colour);
    let mut plain = coloured.clone();
    for code in [
        "\u{1b}[32m",
        "\u{1b}[31;1m",
        "\u{1b}[33m",
        "\u{1b}[35m",
        "\u{1b}[0m",
    ] {
        plain = plain.replace(code, "");
    }
    hidden_in("the terminal's matrix", &plain);
    no_line_of_its_own("the terminal's matrix", &plain);
    let cmp = kmatrix::judge::compare::of_run(d.path()).unwrap().unwrap();
    let text = report::text::comparison(&cmp);
    hidden_in("the comparison", &text);
    no_line_of_its_own("the comparison", &text);

    // report.html: escaped by maud, and no control or bidi character raw.
    let html = read("report.html");
    hidden_in("report.html", &html);
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&lt;img src=x"));
    for h in html.split("href=\"").skip(1) {
        let h = &h[..h.find('"').unwrap()];
        let ok = h.starts_with('#')
            || h.starts_with("https://example.org/")
            || (!h.contains(':') && !h.starts_with("//"));
        assert!(ok, "link {h:?} in report.html");
    }

    // junit.xml: still schema-valid.
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/junit.xsd");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(d.path().join("junit.xml"))
        .output()
        .expect("xmllint (libxml2-utils; scripts/setup-host installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    hidden_in("junit.xml", &read("junit.xml"));

    // results.json: JSON (its escapes), read back the same.
    let back: serde_json::Value = serde_json::from_str(&read("results.json")).unwrap();
    assert_eq!(back["cells"][0]["reason"], H);
}

#[test]
fn known_issue_links_are_http_or_relative_only() {
    use kmatrix::spec::known::link_is_safe;
    for ok in [
        "https://example.org/x",
        "http://example.org/x",
        "issues/12.html",
        "../x",
        "#top",
    ] {
        assert!(link_is_safe(ok), "{ok}");
    }
    for bad in [
        "//evil.example/x",
        "///evil.example/x",
        "\\\\evil.example\\x",
        "/\\evil.example/x",
        "javascript:alert(1)",
        "data:text/html,x",
        "https:///evil",
        "https://ex\u{202e}ample.org",
        "",
    ] {
        assert!(!link_is_safe(bad), "{bad:?} accepted");
    }
}

fn kmatrix(args: &[&Path]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_commands_print_hostile_names_visibly() {
    // A run folder whose config name is hostile (and still a plain path part).
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let c = hostile(CONFIG, "base", &run, H);
    let meta = RunMeta {
        spec: "kmatrix.yaml".into(),
        spec_hash: "h".into(),
        shard: None,
    };
    report::write_results(&run, &meta, &[c]).unwrap();

    let (code, out, err) = kmatrix(&[Path::new("report"), &run]);
    assert_eq!(code, 1, "{err}");
    hidden_in("`kmatrix report`'s matrix", &out);
    no_line_of_its_own("`kmatrix report`'s matrix", &out);

    let (_, out, err) = kmatrix(&[Path::new("compare"), &run, &run]);
    hidden_in("`kmatrix compare`", &out);
    hidden_in("`kmatrix compare`'s errors", &err);

    // An error message that quotes the cell's id.
    let (code, _, err) = kmatrix(&[
        Path::new("merge"),
        Path::new("--out"),
        &d.path().join("merged"),
        &run,
        &run,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("appears in more than one run"), "{err}");
    hidden_in("the error", &err.replace('\n', ""));
    assert!(err.contains("\\x1b]0;pwned\\x07"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}
