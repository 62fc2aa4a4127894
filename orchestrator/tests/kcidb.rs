//! `kmatrix report --kcidb`: a run folder that looks like a real one (a passing cell
//! with a cached kernel, a failing cell whose oops came during a test and whose positive
//! control fired, an inconclusive cell whose control stayed silent, a build failure and
//! a patch failure, with their logs, configs and KTAP files) exported as KCIDB, checked
//! object by object and validated against the schema the `kcidb-io` package publishes;
//! a document broken on purpose must not validate.

use kmatrix::console::{Finding, Frame, Kind};
use kmatrix::record::phase::Phase;
use kmatrix::record::plan::{Accel, Arch, Cell, Expectation};
use kmatrix::record::result::{
    CellResult, Control, ControlState, PhaseStart, TestOutcome, TestResult,
};
use kmatrix::record::verdict::Verdict;
use kmatrix::report::kcidb::{self, Options};
use kmatrix::report::{self, RunMeta};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const T0: f64 = 1_767_000_000.0;

fn cell(arch: Arch, config: &str, patchset: &str, run: &Path) -> CellResult {
    let c = Cell {
        arch,
        config: config.into(),
        patchset: patchset.into(),
        base_config: "tinyconfig".into(),
        fragments: vec![],
        patches: vec![],
    };
    let mut r = CellResult::new(&c, run.join(c.rel_dir()));
    r.source_id = Some("linux-source-7.3_7.3.4-1~bpo13+1_all".into());
    std::fs::create_dir_all(&r.dir).unwrap();
    r
}

fn phases(r: &mut CellResult, start: f64, list: &[(Phase, &str, f64)]) {
    r.phases = list
        .iter()
        .map(|(phase, detail, at)| PhaseStart {
            phase: *phase,
            detail: detail.to_string(),
            at: start + at,
        })
        .collect();
    r.seconds = list.last().map_or(0.0, |l| l.2 + 15.0);
}

fn test(r: &CellResult, name: &str, ktap: &str, outcome: TestOutcome) -> TestResult {
    let dir = r.dir.join("tests");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.ktap")), ktap).unwrap();
    TestResult {
        ktap: kmatrix::parse::ktap::parse(ktap),
        seconds: 12.5,
        ..TestResult::new(name, outcome)
    }
}

fn booted(r: &mut CellResult) {
    r.accel = Some(Accel::Tcg);
    r.accel_note = Some("KVM failed (guest printed nothing in 20s); fell back to TCG".into());
    r.boot_lines = vec![1];
    r.ssh_ready_secs = Some(8.9);
    r.kernel_init_secs = Some(3.0);
    r.kernel_key = Some("aa8a6a5cdad05bd042bcf2de87576ee4".into());
    std::fs::write(
        r.dir.join("console.log"),
        "[    0.000000] Linux version 7.3.4\n",
    )
    .unwrap();
    std::fs::write(r.dir.join("build.log"), "  CC      mm/memory.o\n").unwrap();
    std::fs::write(r.dir.join("config"), "CONFIG_PER_VMA_LOCK=y\n").unwrap();
}

fn oops() -> Finding {
    Finding {
        kind: Kind::NullDeref,
        title: "BUG: unable to handle kernel NULL pointer dereference in vma_start_read_unlocked"
            .into(),
        frame: Some("vma_start_read_unlocked".into()),
        trace: ["vma_start_read_unlocked", "tcp_zerocopy_receive"]
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
        line: 120,
        report: "BUG: kernel NULL pointer dereference, address: 0000000000000010\n\u{0}RIP: vma_start_read_locked_nested+0x1c/0x90".into(),
        during: Some("tcp_zerocopy_vs_writers".into()),
        ..Default::default()
    }
}

const OK: &str =
    "TAP version 13\n1..2\nok 1 anon faults: data intact\nok 2 /proc/PID/maps readers ran\n";

/// The run folder, with results.json and every file the cells link to.
fn run_folder(run: &Path) -> Vec<CellResult> {
    let mut pass = cell(Arch::X86_64, "pvl-on", "base", run);
    booted(&mut pass);
    pass.verdict = Verdict::Pass;
    pass.kernel_cached = Some(true);
    pass.tests = vec![test(
        &pass,
        "faults_vs_writers",
        OK,
        TestOutcome::Exited { status: 0 },
    )];
    phases(
        &mut pass,
        T0,
        &[
            (Phase::Source, "", 0.0),
            (Phase::Image, "", 0.5),
            (Phase::Boot, "tcg", 1.0),
            (Phase::Test, "faults_vs_writers", 10.0),
        ],
    );

    let mut fail = cell(Arch::X86_64, "pvl-on", "v2", run);
    booted(&mut fail);
    fail.perf = Some(kmatrix::record::perf::PerfAb {
        base: "x86_64/pvl-on/base".into(),
        accel: None,
        base_boots: 5,
        cell_boots: 5,
        rows: vec![kmatrix::record::perf::Row {
            metric: "fault_private".into(),
            base_median: 100.0,
            cell_median: 65.0,
            ratio: 0.65,
            low: 0.6,
            high: 0.69,
            call: kmatrix::record::perf::Call::Slower,
        }],
        host_note: None,
        profiled_here_only: vec![],
    });
    fail.verdict = Verdict::Fail;
    fail.kernel_cached = Some(false);
    fail.reason = Some(oops().title);
    fail.tests = vec![
        test(
            &fail,
            "tcp_zerocopy_vs_writers",
            "TAP version 13\n1..2\nok 1 receiver ran\n",
            TestOutcome::Abandoned {
                message: "abandoned after a fatal kernel report".into(),
            },
        ),
        test(
            &fail,
            "vma_probe",
            "TAP version 13\n1..1\nok 1 lookup\n",
            TestOutcome::Exited { status: 0 },
        ),
    ];
    let mut expected = Finding {
        kind: Kind::Lockdep,
        title: "possible circular locking dependency detected in lock_vma_under_rcu".into(),
        line: 300,
        during: Some("vma_probe".into()),
        expected_by: Some("vma_probe".into()),
        ..Default::default()
    };
    expected.report = expected.title.clone();
    fail.findings = vec![oops(), expected];
    fail.controls = vec![Control {
        test: "vma_probe".into(),
        expect: Expectation {
            kind: Kind::Lockdep,
            title: None,
        },
        state: ControlState::Fired { line: 300 },
    }];
    phases(
        &mut fail,
        T0 + 100.0,
        &[
            (Phase::Source, "", 0.0),
            (Phase::Patch, "2 patch(es)", 0.2),
            (Phase::Build, "make (3 file(s) changed in the slot)", 1.0),
            (Phase::Image, "", 181.0),
            (Phase::Boot, "tcg", 182.0),
            (Phase::Test, "tcp_zerocopy_vs_writers", 192.0),
            (Phase::Boot, "tcg (boot 2)", 222.0),
            (Phase::Test, "vma_probe", 232.0),
        ],
    );

    let mut silent = cell(Arch::X86_64, "pvl-on", "v3", run);
    booted(&mut silent);
    silent.verdict = Verdict::Inconclusive;
    silent.reason = Some("the control of vma_probe stayed silent".into());
    silent.tests = vec![test(
        &silent,
        "vma_probe",
        "TAP version 13\n1..1\nok 1 lookup\n",
        TestOutcome::Exited { status: 0 },
    )];
    silent.controls = vec![Control {
        test: "vma_probe".into(),
        expect: Expectation {
            kind: Kind::HungTask,
            title: None,
        },
        state: ControlState::Silent,
    }];
    phases(
        &mut silent,
        T0 + 400.0,
        &[(Phase::Source, "", 0.0), (Phase::Boot, "tcg", 1.0)],
    );

    let mut build = cell(Arch::X86_64, "pvl-off", "v2", run);
    build.verdict = Verdict::BuildFail;
    let error =
        "net/ipv4/tcp.c:2175:35: error: implicit declaration of function 'vma_start_read_unlocked'";
    build.reason = Some(format!("{error} (log: build.log)"));
    build.details = vec![error.into()];
    std::fs::write(build.dir.join("build.log"), format!("{error}\n")).unwrap();
    phases(
        &mut build,
        T0 + 500.0,
        &[
            (Phase::Source, "", 0.0),
            (Phase::Patch, "2 patch(es)", 0.1),
            (Phase::Build, "make", 0.5),
        ],
    );

    let mut patch = cell(Arch::X86_64, "pvl-off", "v4", run);
    patch.verdict = Verdict::PatchFail;
    patch.reason = Some("patches/v4/0001-mm.patch does not apply".into());
    patch.details = vec!["Hunk #1 FAILED at 338.".into()];
    phases(
        &mut patch,
        T0 + 600.0,
        &[(Phase::Source, "", 0.0), (Phase::Patch, "1 patch(es)", 0.1)],
    );

    let cells = vec![pass, fail, silent, build, patch];
    let meta = RunMeta {
        spec: "kmatrix.yaml".into(),
        spec_hash: "h".into(),
        shard: None,
    };
    report::write_results(run, &meta, &cells).unwrap();
    cells
}

fn export(run: &Path, opts: &Options) -> Value {
    let (meta, cells) = report::load_results(run).unwrap();
    kcidb::render(&meta, &cells, run, opts).unwrap()
}

fn by_id<'a>(doc: &'a Value, kind: &str, suffix: &str) -> &'a Value {
    doc[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {kind} ending in {suffix}: {:#}", doc[kind]))
}

fn run_dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("20261201-160951");
    std::fs::create_dir_all(&run).unwrap();
    run_folder(&run);
    (d, run)
}

#[test]
fn each_verdict_becomes_the_kcidb_objects_it_means() {
    let (d, run) = run_dir();
    let series = d.path().join("0001-v2.patch");
    std::fs::write(&series, "--- a/mm/x.c\n+++ b/mm/x.c\n").unwrap();
    let mut opts = Options::new("kmatrix");
    opts.url = Some("https://ci.example/artifacts/".into());
    opts.patchsets.insert("v2".into(), vec![series.clone()]);
    opts.patchsets.insert("base".into(), vec![]);
    let doc = export(&run, &opts);
    assert_eq!(doc["version"], serde_json::json!({"major": 5, "minor": 3}));

    // One checkout per patchset; the one whose patches did not apply is invalid.
    let checkouts = doc["checkouts"].as_array().unwrap();
    assert_eq!(checkouts.len(), 4);
    assert_eq!(by_id(&doc, "checkouts", "/base")["patchset_hash"], "");
    assert_eq!(
        by_id(&doc, "checkouts", "/v2")["patchset_hash"],
        kcidb::patchset_hash(&[series]).unwrap()
    );
    assert!(by_id(&doc, "checkouts", "/v3")
        .get("patchset_hash")
        .is_none());
    let v4 = by_id(&doc, "checkouts", "/v4");
    assert_eq!(v4["valid"], false);
    assert!(v4["log_excerpt"]
        .as_str()
        .unwrap()
        .contains("Hunk #1 FAILED"));

    // Builds: none for the patch failure; a build failure with the compiler's words.
    let builds = doc["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 4, "{builds:#?}");
    let bf = by_id(&doc, "builds", "x86_64/pvl-off/v2");
    assert_eq!(bf["status"], "FAIL");
    assert!(bf["log_excerpt"]
        .as_str()
        .unwrap()
        .contains("tcp.c:2175:35"));
    assert_eq!(bf["checkout_id"], by_id(&doc, "checkouts", "/v2")["id"]);
    let built = by_id(&doc, "builds", "x86_64/pvl-on/v2");
    assert_eq!(built["status"], "PASS");
    assert_eq!(built["architecture"], "x86_64");
    assert_eq!(built["config_name"], "pvl-on");
    assert_eq!(built["duration"], 181.0 - 0.2, "patch and build phases");
    assert_eq!(
        built["log_url"],
        "https://ci.example/artifacts/x86_64/pvl-on/v2/build.log"
    );
    assert!(
        by_id(&doc, "builds", "x86_64/pvl-on/base")
            .get("duration")
            .is_none(),
        "a cached kernel took no build time"
    );

    // Tests: the boot, each guest test, each KTAP case.
    let fail = "x86_64/pvl-on/v2";
    assert_eq!(
        by_id(&doc, "tests", &format!("{fail}/boot"))["status"],
        "PASS"
    );
    // The perf A/B rides along in the boot's misc: its summary and its rows.
    let perf = &by_id(&doc, "tests", &format!("{fail}/boot"))["misc"]["performance"];
    assert_eq!(perf["base"], "x86_64/pvl-on/base", "{perf:#}");
    assert_eq!(perf["rows"][0]["call"], "slower", "{perf:#}");
    assert!(
        perf["summary"].as_str().unwrap().contains("fault_private"),
        "{perf:#}"
    );
    let tcp = by_id(&doc, "tests", &format!("{fail}/tcp_zerocopy_vs_writers"));
    assert_eq!(tcp["status"], "FAIL", "the oops came during it");
    assert_eq!(tcp["path"], "kmatrix.tcp_zerocopy_vs_writers");
    assert!(tcp["log_excerpt"]
        .as_str()
        .unwrap()
        .contains("NULL pointer"));
    assert!(!tcp["log_excerpt"].as_str().unwrap().contains('\0'));
    assert_eq!(
        tcp["log_url"],
        "https://ci.example/artifacts/x86_64/pvl-on/v2/tests/tcp_zerocopy_vs_writers.ktap"
    );
    assert_eq!(tcp["start_time"], "2025-12-29T09:24:52.000000Z");
    let probe = by_id(&doc, "tests", &format!("{fail}/vma_probe"));
    assert_eq!(probe["status"], "PASS", "its control fired as expected");
    assert_eq!(probe["misc"]["controls"][0]["state"], "fired");
    let silent = by_id(&doc, "tests", "x86_64/pvl-on/v3/vma_probe");
    assert_eq!(silent["status"], "ERROR", "a silent control proves nothing");
    let case = by_id(&doc, "tests", "x86_64/pvl-on/base/faults_vs_writers/2");
    assert_eq!(
        case["path"],
        "kmatrix.faults_vs_writers.proc_PID_maps_readers_ran"
    );
    assert_eq!(case["status"], "PASS");
    assert!(
        !doc["tests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"].as_str().unwrap().contains("pvl-off/")),
        "no tests for cells that never booted"
    );

    // Issues: the oops and the compile error, not the control's expected report; each
    // incident links the test (or build) that saw it.
    let issues = doc["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 2, "{issues:#?}");
    let oops_issue = issues
        .iter()
        .find(|i| i["categories"][0] == "runtime.null_deref")
        .unwrap();
    assert_eq!(oops_issue["report_subject"], oops().title);
    let incidents = doc["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 2);
    assert!(incidents
        .iter()
        .any(|i| i["issue_id"] == oops_issue["id"] && i["test_id"] == tcp["id"]));
    assert!(incidents.iter().any(|i| i["build_id"] == bf["id"]));

    // The same run exported twice has the same ids; another origin renames them all.
    assert_eq!(doc, export(&run, &opts));
    let other = export(&run, &Options::new("lab_7"));
    assert!(other["builds"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("lab_7:20261201-160951."));
    assert!(other["builds"][0].get("log_url").is_none(), "no URL given");
    assert_eq!(
        other["builds"][0]["misc"]["files"]["build.log"],
        "x86_64/pvl-on/base/build.log"
    );
    assert!(!d.path().join("kcidb.json").exists());
}

/// `KMATRIX_KCIDB_PYTHON`, else the venv scripts/setup-host makes.
fn kcidb_python() -> PathBuf {
    let p: PathBuf = std::env::var_os("KMATRIX_KCIDB_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| "/opt/kmatrix/kcidb/bin/python".into());
    assert!(
        p.is_file(),
        "{}: no Python with kcidb-io: `bash scripts/setup-host` installs it",
        p.display()
    );
    p
}

/// kcidb-io's own validator (JSON Schema draft 7 with format checks) on a document:
/// Ok, or its error message.
fn validate(doc: &str) -> Result<(), String> {
    let script = "import json, sys, kcidb_io\n\
                  kcidb_io.schema.V5_3.validate_exactly(json.load(sys.stdin))\n";
    let mut child = Command::new(kcidb_python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
#[ignore = "needs kcidb-io (scripts/setup-host installs it); run with --include-ignored"]
fn the_cli_export_is_valid_kcidb_and_a_broken_one_is_not() {
    let (_d, run) = run_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .args(["report", "--kcidb", "--kcidb-url", "https://ci.example/a/1"])
        .arg(&run)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert!(doc["tests"].as_array().unwrap().len() > 10);
    validate(&stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}"));

    // The validator is real: each of these breaks one rule of the schema.
    type Break = fn(&mut Value);
    let broken: [(&str, Break); 4] = [
        ("'BROKEN' is not one of", |d| {
            d["tests"][0]["status"] = "BROKEN".into()
        }),
        ("'origin' is a required property", |d| {
            d["builds"][0].as_object_mut().unwrap().remove("origin");
        }),
        ("does not match", |d| {
            d["builds"][0]["id"] = "no-origin-prefix".into()
        }),
        ("is not a 'date-time'", |d| {
            d["tests"][0]["start_time"] = "yesterday".into()
        }),
    ];
    for (why, breaks) in broken {
        let mut bad = doc.clone();
        breaks(&mut bad);
        let e = validate(&bad.to_string()).expect_err(why);
        assert!(e.contains(why), "expected `{why}` in: {e}");
    }
}

#[test]
fn a_bad_origin_is_a_usage_error_naming_the_flag() {
    let (_d, run) = run_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .args(["report", "--kcidb", "--kcidb-origin", "My-CI"])
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--kcidb-origin `My-CI`"), "{e}");
    assert!(out.stdout.is_empty());
}
