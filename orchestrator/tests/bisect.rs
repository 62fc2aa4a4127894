//! `kmatrix bisect` end to end on real kernels: the fixture series of tests/data/bisect
//! (0001 harmless, 0002 a sleeping call in atomic context at every boot, 0003 a
//! compile error) with
//! tests/specs/bisect.yaml. The kernel tests are `#[ignore]`d (README command 2 and CI
//! run them): few real boots (the runtime bisect boots twice, its repro once), the
//! build-failure bisect boots nothing. Usage errors need no kernel and always run.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The report 0002 plants, titled after the function it changes.
const TITLE: &str = "BUG: sleeping function called from invalid context in kmatrix_fixture_check";

fn kmatrix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kmatrix"))
}

fn spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs/bisect.yaml")
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn bisect(args: &[&str], runs: &Path) -> Out {
    let out = kmatrix()
        .arg("bisect")
        .args(args)
        .arg("--spec")
        .arg(spec())
        .arg("--runs-dir")
        .arg(runs)
        .output()
        .unwrap();
    let o = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("{}\n{}", o.stderr, o.stdout);
    o
}

/// The one bisect folder under `runs` (each invocation makes its own).
fn folders(runs: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(runs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("bisect.json").is_file())
        .collect();
    v.sort();
    v
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn steps(b: &Value) -> Vec<(u64, String, String)> {
    b["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["prefix"].as_u64().unwrap(),
                s["verdict"].as_str().unwrap().to_string(),
                s["judged"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

#[test]
#[ignore = "builds and boots real kernels; run with --include-ignored"]
fn bisect_names_the_patch_that_plants_a_boot_time_bug_and_its_repro_builds_nothing() {
    let runs = tempfile::tempdir().unwrap();
    let o = bisect(&["x86_64/pvl-on/sleep"], runs.path());
    assert_eq!(o.code, 0, "found: exit 0");
    assert!(
        o.stdout
            .contains("first bad patch: 2/2 kmatrix-fixture: count CPUs with preemption off"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains(
        "file: tests/data/bisect/0002-kmatrix-fixture-count-cpus-with-preemption-off.patch"
    ));
    let dir = folders(runs.path()).pop().unwrap();
    let b = json(&dir.join("bisect.json"));
    assert_eq!(
        b["outcome"],
        serde_json::json!({"kind": "found", "patch": 2})
    );
    // Looked for the full series' own report, titled after the function 0002 changes.
    assert_eq!(
        b["predicate"],
        serde_json::json!({"kind": "title", "title": TITLE})
    );
    // The full series first (bad), then the one prefix between: good, and clean.
    assert_eq!(
        steps(&b),
        [
            (2, "FAIL".to_string(), "bad".to_string()),
            (1, "PASS".to_string(), "good".to_string())
        ]
    );
    let s = &b["steps"];
    assert_eq!(
        (s[0]["seen"].as_u64(), s[0]["boots"].as_u64()),
        (Some(1), Some(1))
    );
    // Seen in 1 of 1 boots: a failure of that rate cannot hide in the good step's boot.
    assert_eq!(b["rate"].as_f64(), Some(1.0));
    assert_eq!(s[1]["miss_chance"].as_f64(), Some(0.0));
    // Each step is a real run folder of its own, and says how to redo it.
    for p in [1, 2] {
        let run = dir.join(format!("prefix-{p}"));
        let r = json(&run.join("results.json"));
        assert_eq!(r["cells"][0]["id"], "x86_64/pvl-on/sleep");
        let repro = std::fs::read_to_string(run.join("x86_64/pvl-on/sleep/repro.txt")).unwrap();
        assert!(repro.contains(&format!("--prefix {p}")), "{repro}");
        assert!(run.join("report.html").is_file());
    }
    let console =
        std::fs::read_to_string(dir.join("prefix-1/x86_64/pvl-on/sleep/console.log")).unwrap();
    assert!(
        console.contains("kmatrix-fixture: ") && console.contains(" CPU(s) online"),
        "0001 ran"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("First bad patch: 2/2 kmatrix-fixture: count CPUs with preemption off")
            && html.contains("prefix-1/report.html"),
        "{html}"
    );

    // The repro line judges the first bad prefix again: from the cache, no make; with
    // `--repeat 2`, in two fresh boots, both of which show it.
    let repro = b["repro"].as_str().unwrap();
    assert!(
        repro.contains("--prefix 2")
            && repro.contains("--title 'BUG: sleeping function called from invalid context in kmatrix_fixture_check'"),
        "{repro}"
    );
    let again = bisect(
        &[
            "x86_64/pvl-on/sleep",
            "--prefix",
            "2",
            "--title",
            TITLE,
            "--repeat",
            "2",
        ],
        runs.path(),
    );
    assert_eq!(again.code, 1, "a bad prefix has findings: exit 1");
    let b2 = json(&folders(runs.path()).pop().unwrap().join("bisect.json"));
    assert_eq!(b2["outcome"]["kind"], "judged");
    assert_eq!(steps(&b2), [(2, "FAIL".to_string(), "bad".to_string())]);
    assert_eq!(b2["steps"][0]["kernel_cached"], true, "{b2:#}");
    assert_eq!(
        (
            b2["steps"][0]["seen"].as_u64(),
            b2["steps"][0]["boots"].as_u64()
        ),
        (Some(2), Some(2)),
        "{b2:#}"
    );
    assert!(
        again.stderr.contains("from cache (no make)"),
        "{}",
        again.stderr
    );
}

#[test]
#[ignore = "builds real kernels; run with --include-ignored"]
fn bisect_of_a_build_failure_names_the_patch_with_the_compile_error_and_boots_nothing() {
    let runs = tempfile::tempdir().unwrap();
    let o = bisect(&["x86_64/pvl-on/broken"], runs.path());
    assert_eq!(o.code, 0);
    assert!(
        o.stdout
            .contains("first bad patch: 3/3 kmatrix-fixture: count CPUs through a helper"),
        "{}",
        o.stdout
    );
    let dir = folders(runs.path()).pop().unwrap();
    let b = json(&dir.join("bisect.json"));
    assert_eq!(
        b["predicate"],
        serde_json::json!({"kind": "verdict", "verdict": "BUILD-FAIL"})
    );
    assert_eq!(
        b["outcome"],
        serde_json::json!({"kind": "found", "patch": 3})
    );
    let st = steps(&b);
    assert_eq!(st[0], (3, "BUILD-FAIL".to_string(), "bad".to_string()));
    assert!(
        b["steps"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("kernel/kmatrix_fixture.c"),
        "{b:#}"
    );
    // The prefixes before it built (build only: PASS), and nothing booted.
    assert_eq!(st.len(), 3, "{st:?}");
    assert!(st[1..].iter().all(|(_, v, j)| v == "PASS" && j == "good"));
    assert!(b["rate"].is_null(), "a build failure has no rate");
    for p in [1, 2, 3] {
        assert!(!dir
            .join(format!("prefix-{p}/x86_64/pvl-on/broken/console.log"))
            .exists());
    }
}

#[test]
fn bisect_refuses_a_cell_it_cannot_bisect_naming_it() {
    let runs = tempfile::tempdir().unwrap();
    let o = bisect(&["x86_64/pvl-on/nosuch"], runs.path());
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("no cell `x86_64/pvl-on/nosuch`") && o.stderr.contains("kmatrix plan"),
        "{}",
        o.stderr
    );
    let o = bisect(&["x86_64/pvl-on/base"], runs.path());
    assert_eq!(o.code, 2);
    assert!(
        o.stderr
            .contains("patchset `base` has no patches of its own"),
        "{}",
        o.stderr
    );
    let o = bisect(&["x86_64/pvl-on/broken", "--prefix", "4"], runs.path());
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("has 3 patch(es); give 1 to 3"),
        "{}",
        o.stderr
    );
    let o = bisect(&["x86_64/pvl-on/sleep", "--repeat", "0"], runs.path());
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(folders(runs.path()).is_empty(), "nothing ran");
}
