//! Every output of a run (results.json, junit.xml, summary.md, report.html, matrix.txt)
//! for a matrix holding a passing, a failing, a hanging, a build-failing and a
//! patch-failing cell; junit.xml is validated against a JUnit schema with xmllint.

use kmatrix::console::{Finding, Frame, Kind};
use kmatrix::parse::ktap;
use kmatrix::record::plan::{Arch, Cell};
use kmatrix::record::result::{CellResult, TestOutcome, TestResult};
use kmatrix::record::verdict::Verdict;
use kmatrix::report::{self, RunMeta};
use std::path::Path;

fn cell(arch: Arch, config: &str, patchset: &str, dir: &Path) -> CellResult {
    let c = Cell {
        arch,
        config: config.into(),
        patchset: patchset.into(),
        base_config: "tinyconfig".into(),
        fragments: vec![],
        patches: vec![],
    };
    CellResult::new(&c, dir.join(c.rel_dir()))
}

fn test(name: &str, ktap_text: &str, status: Option<i32>, timed_out: bool) -> TestResult {
    let outcome = match (status, timed_out) {
        (_, true) => TestOutcome::TimedOut {
            message: "overran its timeout of 120s".into(),
        },
        (Some(status), false) => TestOutcome::Exited { status },
        (None, false) => TestOutcome::Abandoned {
            message: "abandoned after a fatal kernel report".into(),
        },
    };
    TestResult {
        ktap: ktap::parse(ktap_text),
        seconds: 12.0,
        ..TestResult::new(name, outcome)
    }
}

fn finding(kind: Kind, title: &str, frames: &[&str]) -> Finding {
    Finding {
        kind,
        title: title.into(),
        frame: frames.first().map(|s| s.to_string()),
        corrupted: false,
        trace: frames
            .iter()
            .map(|f| Frame {
                function: f.to_string(),
                offset: Some(0x3c),
                size: Some(0x90),
                module: None,
                source: None,
            })
            .collect(),
        task: Some("tcp_zerocopy_vs".into()),
        pid: Some(91),
        cpu: Some(1),
        timestamp: Some(31.5),
        line: 3,
        report: format!("{title}\n<report body & <b>not html</b>>"),
        ..Default::default()
    }
}

const OK: &str = "TAP version 13\n1..2\nok 1 a\nok 2 b\n";

fn matrix(dir: &Path) -> Vec<CellResult> {
    let mut pass = cell(Arch::X86_64, "pvl-on", "base", dir);
    pass.verdict = Verdict::Pass;
    pass.accel = Some(kmatrix::record::plan::Accel::Tcg);
    pass.tests = vec![test("faults_vs_writers", OK, Some(0), false)];

    let mut fail = cell(Arch::X86_64, "pvl-on", "v2", dir);
    fail.verdict = Verdict::Fail;
    fail.reason = Some(
        "BUG: unable to handle kernel NULL pointer dereference in vma_start_read_unlocked".into(),
    );
    fail.tests = vec![test(
        "tcp_zerocopy_vs_writers",
        "TAP version 13\n1..2\nok 1 a\n",
        None,
        false,
    )];
    fail.findings = vec![finding(
        Kind::NullDeref,
        "BUG: unable to handle kernel NULL pointer dereference in vma_start_read_unlocked",
        &[
            "vma_start_read_unlocked",
            "tcp_zerocopy_receive",
            "do_tcp_getsockopt",
        ],
    )];

    let mut hang = cell(Arch::X86_64, "pvl-on", "v3", dir);
    hang.verdict = Verdict::Hang;
    hang.reason = Some("test vma_probe overran its timeout".into());
    hang.tests = vec![test(
        "vma_probe",
        "TAP version 13\n1..5\nok 1 lookup\n",
        None,
        true,
    )];
    hang.findings = vec![finding(
        Kind::HungTask,
        "INFO: task hung in __vma_start_write",
        &["__vma_start_write", "mprotect_fixup"],
    )];

    let mut build = cell(Arch::X86_64, "pvl-off", "v2", dir);
    build.verdict = Verdict::BuildFail;
    build.reason = Some("../net/ipv4/tcp.c:2175:35: error: implicit declaration of function 'vma_start_read_unlocked'".into());
    build.details = vec![
        "../net/ipv4/tcp.c:2175:35: error: implicit declaration of function 'vma_start_read_unlocked' [-Werror=implicit-function-declaration]".into(),
    ];

    let mut patch = cell(Arch::X86_64, "pvl-off", "v3", dir);
    patch.verdict = Verdict::PatchFail;
    patch.reason = Some("patches/v3/0001-mm.patch does not apply".into());
    patch.details = vec!["Hunk #1 FAILED at 338.".into()];
    vec![pass, fail, hang, build, patch]
}

/// Write every output of the five-verdict fixture into `dir`.
fn write_fixture(dir: &Path) {
    let meta = RunMeta {
        spec: "kmatrix.yaml".into(),
        spec_hash: "h".into(),
        shard: None,
    };
    report::write_results(dir, &meta, &matrix(dir)).unwrap();
}

/// Headless Chromium (no network, its own profile) on a page: stdout (`--dump-dom`: the
/// DOM as rendered) with the flags given.
fn chromium(page: &Path, profile: &Path, extra: &[&str]) -> String {
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// report.html in headless Chromium (no network): the rendered DOM holds the matrix and
/// a finding's stack trace, and the screenshot is a real picture.
#[test]
#[ignore = "needs Debian's chromium (scripts/setup-host installs it); run with --include-ignored"]
fn report_html_renders_in_headless_chromium() {
    let d = tempfile::tempdir().unwrap();
    write_fixture(d.path());
    let page = d.path().join("report.html");
    let profile = d.path().join("profile");
    let dom = chromium(&page, &profile, &["--dump-dom"]);
    assert!(dom.contains("<table id=\"matrix\">"), "{dom}");
    assert!(dom.contains("x86_64/pvl-on") && dom.contains("BUILD-FAIL"));
    assert!(
        dom.contains("vma_start_read_unlocked\ntcp_zerocopy_receive"),
        "stack trace in the page"
    );
    let shot = d.path().join("report.png");
    chromium(
        &page,
        &profile,
        &[&format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 10_000,
        "screenshot of {} bytes is blank",
        png.len()
    );
}

/// Every `href="..."` in a page, as written (entities decoded).
fn hrefs(dom: &str) -> Vec<String> {
    dom.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}

/// `%2F` and friends back to bytes.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// Every link of the rendered page resolves inside `run_dir`: an anchor names an element
/// of the page; anything else is a relative path, no `..`, to a file that exists and
/// (symlinks followed) stays in the run folder. Returns the file links.
fn check_links(dom: &str, run_dir: &Path) -> Vec<String> {
    use std::os::unix::ffi::OsStrExt;
    let root = std::fs::canonicalize(run_dir).unwrap();
    let mut files = Vec::new();
    for h in hrefs(dom) {
        if let Some(id) = h.strip_prefix('#') {
            assert!(
                dom.contains(&format!("id=\"{id}\"")),
                "anchor {h} names nothing"
            );
            continue;
        }
        assert!(
            !h.contains(':') && !h.starts_with('/') && !h.contains('?'),
            "{h}: not a relative link"
        );
        let rel = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&percent_decode(&h)));
        assert!(
            rel.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{h} leaves its folder"
        );
        let target = run_dir.join(&rel);
        assert!(
            target.is_file(),
            "{h}: no such file in {}",
            run_dir.display()
        );
        let real = std::fs::canonicalize(&target).unwrap();
        assert!(
            real.starts_with(&root),
            "{h} resolves to {}",
            real.display()
        );
        files.push(h);
    }
    files
}

/// A small real run (the project's kmatrix.yaml, the base cell on x86_64: its kernel is
/// normally cached, so it boots and runs the tests), its folder then moved the way a CI
/// artifact is unpacked elsewhere: in headless Chromium every link of report.html, as
/// the run wrote it and as `kmatrix report` re-renders it there, resolves to a file in
/// the run folder; the cell's timeline and its files are on the page.
#[test]
#[ignore = "needs a kernel build or the cache, QEMU and chromium; run with --include-ignored"]
fn report_links_resolve_inside_a_real_run_folder() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let d = tempfile::tempdir().unwrap();
    let runs = d.path().join("runs");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .arg("run")
        .arg("--spec")
        .arg(project.join("kmatrix.yaml"))
        .args(["--only", "x86_64/pvl-on/base", "--runs-dir"])
        .arg(&runs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // PASS, or findings: either way a run whose cell booted; not a usage or host error.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}\n{stderr}",
        out.status
    );
    let run = std::fs::canonicalize(runs.join("latest")).unwrap();
    let (_, cells) = report::load_results(&run).unwrap();
    assert!(
        !cells[0].tests.is_empty(),
        "the cell did not boot: {stderr}"
    );
    let phases: Vec<&str> = cells[0].phases.iter().map(|p| p.phase.label()).collect();
    for p in ["source", "image", "boot", "test"] {
        assert!(
            phases.contains(&p),
            "{p} missing from the timeline {phases:?}"
        );
    }

    // Unpacked somewhere else, as from a CI artifact.
    let moved = d.path().join("artifact").join(run.file_name().unwrap());
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&run, &moved).unwrap();
    let profile = d.path().join("profile");
    let as_written = chromium(&moved.join("report.html"), &profile, &["--dump-dom"]);
    let rerender = std::process::Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .arg("report")
        .arg(&moved)
        .output()
        .unwrap();
    assert!(
        matches!(rerender.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&rerender.stderr)
    );
    let rerendered = chromium(&moved.join("report.html"), &profile, &["--dump-dom"]);
    for dom in [&as_written, &rerendered] {
        let files = check_links(dom, &moved);
        for f in [
            "console.log",
            "build.log",
            "config",
            "findings.json",
            "repro.txt",
        ] {
            assert!(
                files.contains(&format!("x86_64/pvl-on/base/{f}")),
                "no link to {f}: {files:?}"
            );
        }
        for t in &cells[0].tests {
            let ktap = format!("x86_64/pvl-on/base/tests/{}.ktap", t.name);
            assert!(files.contains(&ktap), "no link to {ktap}: {files:?}");
        }
        assert!(dom.contains("class=\"timeline\"") && dom.contains("ph-boot"));
        assert!(dom.contains("id=\"failing\""), "the failing-only switch");
    }
}

#[test]
fn every_output_shows_each_verdict_and_junit_is_schema_valid() {
    let d = tempfile::tempdir().unwrap();
    write_fixture(d.path());

    // results.json reads back to the same verdicts.
    let (m, back) = report::load_results(d.path()).unwrap();
    assert_eq!(m.spec_hash, "h");
    let verdicts: Vec<&str> = back.iter().map(|c| c.verdict.label()).collect();
    assert_eq!(
        verdicts,
        ["PASS", "FAIL", "HANG", "BUILD-FAIL", "PATCH-FAIL"]
    );

    // The terminal matrix: rows arch/config, columns patchsets.
    let text = std::fs::read_to_string(d.path().join("matrix.txt")).unwrap();
    let rows: Vec<&str> = text.lines().take(4).collect();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["arch/config", "base", "v2", "v3"]
    );
    assert!(
        rows[2].starts_with("x86_64/pvl-off")
            && rows[2].contains("BUILD-FAIL")
            && rows[2].contains("PATCH-FAIL"),
        "{text}"
    );
    assert!(
        rows[3].starts_with("x86_64/pvl-on")
            && rows[3].contains("PASS")
            && rows[3].contains("FAIL (1 report)")
            && rows[3].contains("HANG (1 report)"),
        "{text}"
    );

    // junit.xml: schema-valid, a failure per problem, the finding's title in it.
    let junit = d.path().join("junit.xml");
    assert_junit_schema_valid(&junit);
    let x = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(x.matches("<testsuite ").count(), 5);
    assert!(x.contains("message=\"BUG: unable to handle kernel NULL pointer dereference in vma_start_read_unlocked\""));
    assert!(x.contains("message=\"BUILD-FAIL: ../net/ipv4/tcp.c:2175:35"));
    assert!(x.contains("message=\"PATCH-FAIL: patches/v3/0001-mm.patch does not apply\""));
    assert!(x.contains("name=\"vma_probe\"") && x.contains("overran its timeout"));
    assert!(
        x.contains("&lt;b&gt;not html&lt;/b&gt;"),
        "escaped report text"
    );
    let pass_suite = x.split("<testsuite ").nth(1).unwrap();
    assert!(pass_suite.contains("failures=\"0\""), "{pass_suite}");

    // summary.md: the table and the findings.
    let md = std::fs::read_to_string(d.path().join("summary.md")).unwrap();
    assert!(
        md.contains("| x86_64/pvl-on | **PASS** | **FAIL** (1) | **HANG** (1) |"),
        "{md}"
    );
    assert!(
        md.contains("| x86_64/pvl-off | - | **BUILD-FAIL** | **PATCH-FAIL** |"),
        "{md}"
    );
    assert!(
        md.contains(
            "- BUG\\: unable to handle kernel NULL pointer dereference in vma\\_start\\_read\\_unlocked\n"
        ),
        "{md}"
    );

    // report.html: self-contained (no external resource), matrix, findings with traces.
    let html = std::fs::read_to_string(d.path().join("report.html")).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src="));
    assert!(html.contains("<table id=\"matrix\">"));
    for v in ["PASS", "FAIL", "HANG", "BUILD-FAIL", "PATCH-FAIL"] {
        assert!(html.contains(&format!("<b>{v}</b>")), "{v} missing");
    }
    assert!(html.contains("<pre class=\"trace\">vma_start_read_unlocked\ntcp_zerocopy_receive"));
    assert!(
        html.contains("href=\"#x86_64-pvl-on-v2\"") && html.contains("id=\"x86_64-pvl-on-v2\""),
        "{html}"
    );
    assert!(!html.contains("<b>not html</b>"));
}

#[test]
fn expected_findings_of_positive_controls_are_labelled_as_such() {
    let d = tempfile::tempdir().unwrap();
    let mut v3 = cell(Arch::X86_64, "pvl-on", "v3", d.path());
    v3.verdict = Verdict::Pass;
    v3.findings = vec![
        finding(
            Kind::Lockdep,
            "possible deadlock in lock_vma_under_rcu",
            &["lock_vma_under_rcu"],
        ),
        finding(
            Kind::HungTask,
            "INFO: task hung in __vma_start_exclude_readers",
            &["__vma_start_exclude_readers"],
        ),
    ];
    for f in &mut v3.findings {
        f.expected_by = Some("vma_probe".into());
    }
    let text = report::matrix(&[v3.clone()]);
    assert!(text.contains("x86_64/pvl-on  PASS (2 expected)"), "{text}");
    assert!(text.contains("possible deadlock in lock_vma_under_rcu [Lockdep] at console line 3 (expected: positive control of vma_probe)"), "{text}");
    let junit = kmatrix::report::junit::render(&[v3]);
    assert!(
        !junit.contains("<failure"),
        "expected findings are not failures: {junit}"
    );
}

/// A stand-in kernel tree whose Makefile answers the targets kmatrix runs the way Kbuild
/// does (quiet `  CC  path.o` lines, a bzImage and a vmlinux at the end), compiling six
/// objects in about four seconds.
const STAND_IN_MAKEFILE: &str = "\
O ?= .
tinyconfig:
\t@printf 'CONFIG_64BIT=y\\nCONFIG_MMU=y\\nCONFIG_SMP=y\\n' > $(O)/.config
olddefconfig prepare modules:
\t@true
bzImage:
\t@for o in a b c d e f; do echo \"  CC      mm/$$o.o\"; sleep 0.7; done
\t@mkdir -p $(O)/arch/x86/boot && echo image > $(O)/arch/x86/boot/bzImage && echo elf > $(O)/vmlinux
";

/// Without a terminal, a building cell prints its progress (objects compiled out of the
/// expected total, the build's time left, the run's) as a line: the first build measures
/// against an estimate from the config (`~`), the next incremental one knows only its
/// count, and the one after that measures against the count its slot remembered.
#[test]
fn a_build_prints_its_progress_against_what_the_slot_remembers() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::create_dir_all(p.join("kconfigs")).unwrap();
    std::fs::write(p.join("kconfigs/guest.config"), "CONFIG_TTY=y\n").unwrap();
    std::fs::create_dir_all(p.join("linux")).unwrap();
    std::fs::write(p.join("linux/Makefile"), STAND_IN_MAKEFILE).unwrap();
    std::fs::write(
        p.join("kmatrix.yaml"),
        "source: { path: linux }\nfragments: [guest]\narches: [x86_64]\n\
         configs: { on: [] }\npatchsets: { base: [] }\n",
    )
    .unwrap();
    let build = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kmatrix"))
            .arg("build")
            .args(extra)
            .arg("--spec")
            .arg(p.join("kmatrix.yaml"))
            .arg("--runs-dir")
            .arg(p.join("runs"))
            .env("KMATRIX_CACHE", p.join("cache"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        stderr
            .lines()
            .filter(|l| l.contains("x86_64/on/base: build") && l.contains(" objects"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let cold = build(&[]);
    assert_eq!(cold.len(), 1, "one line in the first 30 s: {cold:?}");
    // No count remembered: an estimate read from the stand-in tree's Kbuild lists
    // (`~`; the count itself is prepare::build::kbuild's unit tests' business).
    assert!(
        cold[0].contains("/~") && cold[0].contains(" objects"),
        "{cold:?}"
    );
    assert!(
        cold[0].contains("% [") && cold[0].contains("; run ~"),
        "{cold:?}"
    );
    let first_incremental = build(&["--rebuild"]);
    assert!(
        first_incremental[0].contains("objects compiled; run ~"),
        "{first_incremental:?}"
    );
    let known = build(&["--rebuild"]);
    assert!(known[0].contains("/6 objects"), "{known:?}");
    // The cell's timeline: when each phase began.
    let run = std::fs::canonicalize(p.join("runs/latest")).unwrap();
    let (_, cells) = report::load_results(&run).unwrap();
    let phases: Vec<&str> = cells[0].phases.iter().map(|x| x.phase.label()).collect();
    assert_eq!(phases, ["source", "patch", "build"]);
    let spans = cells[0].phase_spans();
    assert!(
        spans[2].seconds > 3.0,
        "make took its four seconds: {spans:?}"
    );
    assert!(
        !known[0].contains('~') || known[0].contains("left"),
        "{known:?}"
    );
}

#[test]
fn the_lock_graph_shows_series_edges_with_their_chain_and_timing_edges_apart() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cell(Arch::X86_64, "pvl-on", "v3", d.path());
    c.verdict = Verdict::Pass;
    let mut g = kmatrix::record::lockgraph::Diff {
        base: "x86_64/pvl-on/base".into(),
        new_edges: vec![("module_mutex".into(), "(init_mm).mmap_lock".into())],
        new_edges_total: 2,
        series_edges_total: 1,
        timing_edges: vec![("module_mutex".into(), "&rq->__lock".into())],
        timing_edges_total: 1,
        tests_not_in_base: vec!["vma_probe".into()],
        ..Default::default()
    };
    g.contexts.insert(
        "module_mutex -> (init_mm).mmap_lock".into(),
        "module_mutex > (init_mm).mmap_lock (irq_context 0)".into(),
    );
    c.lock_graph = Some(g);
    let cells = [c];
    let text = report::matrix(&cells);
    for want in [
        "1 new edge(s) (of 2 not in base: 1 into scheduler/timer-like locks, timing); 1 touch a lock named after the series' code; tests base did not run: vma_probe",
        "    new edge: module_mutex -> (init_mm).mmap_lock\n      chain: module_mutex > (init_mm).mmap_lock (irq_context 0)\n",
    ] {
        assert!(text.contains(want), "{want}\n---\n{text}");
    }
    // The timing edge is counted, not listed among the new edges.
    assert!(
        !text.contains("new edge: module_mutex -> &rq->__lock"),
        "{text}"
    );
    let html = report::html::render(&cells, "t", d.path());
    assert!(
        html.contains("chain: module_mutex &gt; (init_mm).mmap_lock"),
        "{html}"
    );
    assert!(
        html.contains("1 edge(s) into scheduler/timer-like locks"),
        "{html}"
    );
    assert!(
        html.contains("module_mutex -&gt; &amp;rq-&gt;__lock"),
        "{html}"
    );
}

/// A program whose every case skipped (collapse_vs_faults on a kernel without THP, as in
/// the default configs) passed without checking anything: each output says skipped, with
/// the kernel's reason, not ok and not failed; a test that ran stays ok.
#[test]
fn a_test_whose_every_case_skipped_shows_as_skipped_with_its_reason() {
    let d = tempfile::tempdir().unwrap();
    let why = "no transparent hugepages: MADV_HUGEPAGE: EINVAL, no /sys/kernel/mm/transparent_hugepage (ENOENT): CONFIG_TRANSPARENT_HUGEPAGE off";
    let mut c = cell(Arch::X86_64, "pvl-on", "base", d.path());
    c.verdict = Verdict::Pass;
    c.accel = Some(kmatrix::record::plan::Accel::Tcg);
    // Built and booted, so KCIDB has a build and a boot to hang the tests on.
    c.kernel_key = Some("aa8a6a5cdad05bd042bcf2de87576ee4".into());
    c.boot_lines = vec![1];
    let skipped = format!(
        "TAP version 13\n1..2\nok 1 collapsed # SKIP {why}\nok 2 collapse overlapped the other kinds # SKIP {why}\n"
    );
    c.tests = vec![
        test("faults_vs_writers", OK, Some(0), false),
        test("collapse_vs_faults", &skipped, Some(0), false),
    ];

    let text = report::matrix(std::slice::from_ref(&c));
    assert!(
        text.contains("test faults_vs_writers: ok (2/2 ok, 0 skipped, 12s)\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "test collapse_vs_faults: skipped (0/2 ok, 2 skipped, 12s): {why}\n"
        )),
        "{text}"
    );

    let junit = report::junit::render(std::slice::from_ref(&c));
    let case = junit
        .split("<testcase ")
        .find(|t| t.contains("name=\"collapse_vs_faults\""))
        .unwrap_or_else(|| panic!("{junit}"));
    assert!(
        case.contains(&format!("<skipped message=\"{why}\"")),
        "{junit}"
    );
    assert!(!junit.contains("<failure"), "{junit}");
    let file = d.path().join("junit.xml");
    std::fs::write(&file, &junit).unwrap();
    assert_junit_schema_valid(&file);

    let html = report::html::render(std::slice::from_ref(&c), "run", d.path());
    assert!(html.contains(&format!(" — skipped: {why}")), "{html}");

    let meta = RunMeta {
        spec: "kmatrix.yaml".into(),
        spec_hash: "h".into(),
        shard: None,
    };
    let doc = report::kcidb::render(
        &meta,
        std::slice::from_ref(&c),
        d.path(),
        &report::kcidb::Options::new("kmatrix"),
    )
    .unwrap();
    let tests = doc["tests"].as_array().unwrap();
    let by_path = |p: &str| {
        tests
            .iter()
            .find(|t| t["path"] == p)
            .unwrap_or_else(|| panic!("no test {p} in {tests:#?}"))
    };
    assert_eq!(by_path("kmatrix.faults_vs_writers")["status"], "PASS");
    let t = by_path("kmatrix.collapse_vs_faults");
    assert_eq!(t["status"], "SKIP", "{t:#}");
    assert!(
        t["log_excerpt"].as_str().unwrap_or_default().contains(why),
        "{t:#}"
    );
}

/// junit.xml validates against the JUnit schema (xmllint, which setup-host installs).
fn assert_junit_schema_valid(junit: &Path) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/junit.xsd");
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(junit)
        .output()
        .expect("xmllint (libxml2-utils; scripts/setup-host installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
