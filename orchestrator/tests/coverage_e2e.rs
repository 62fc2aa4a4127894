//! Series coverage on real kernels (issue 28), through `kmatrix run` as a user runs it:
//! `tests/specs/coverage.yaml` is the project's matrix (gcov fragment included) with two
//! fixture series. One changes only `mm/ksm.c`, which no config here builds: the
//! cell is UNTESTED, never booted, and names the option. The other adds a function
//! nothing calls: every test passes, yet the cell is INCONCLUSIVE and names the function
//! that never ran. (The seed's v3 running all its changed lines is asserted on the
//! project's own matrix in `e2e_x86.rs`.) Builds incrementally in the project's
//! x86_64/pvl-on build slot; one boot.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "builds and boots a real kernel; run with --include-ignored"]
fn unbuilt_series_is_untested_and_an_uncalled_function_makes_a_pass_inconclusive() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs/coverage.yaml");
    let runs = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .arg("run")
        .arg("--spec")
        .arg(&spec)
        .args(["--only", "x86_64/pvl-on/ksm-only"])
        .args(["--only", "x86_64/pvl-on/uncalled"])
        .arg("--runs-dir")
        .arg(runs.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let dir = std::fs::canonicalize(runs.path().join("latest")).unwrap();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let cell = |id: &str| {
        results["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no cell {id} in {results:#}"))
            .clone()
    };

    // Nothing of the series is built: UNTESTED, not booted, the option named.
    let ksm = cell("x86_64/pvl-on/ksm-only");
    assert_eq!(ksm["verdict"], "UNTESTED", "{ksm:#}");
    let cov = &ksm["series_coverage"];
    assert_eq!(cov["reach"], "nothing_built", "{ksm:#}");
    assert_eq!(
        cov["summary"],
        "the series changes nothing this config builds: mm/ksm.c needs CONFIG_KSM"
    );
    assert!(
        ksm["tests"].as_array().is_none_or(|t| t.is_empty()),
        "{ksm:#}"
    );
    assert!(
        !dir.join("x86_64/pvl-on/ksm-only/console.log").exists(),
        "an UNTESTED cell is not booted"
    );

    // Built and profiled, every test ran, the new function never did.
    let uncalled = cell("x86_64/pvl-on/uncalled");
    assert_eq!(uncalled["verdict"], "INCONCLUSIVE", "{uncalled:#}");
    let cov = &uncalled["series_coverage"];
    assert_eq!(cov["reach"], "never_ran", "{uncalled:#}");
    assert!(cov["lines_measurable"].as_u64() > Some(0), "{cov:#}");
    assert_eq!(cov["lines_ran"], 0, "{cov:#}");
    let summary = cov["summary"].as_str().unwrap();
    assert!(
        summary.contains("functions never run: vma_read_lock_count"),
        "{summary}"
    );
    let f = cov["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "vma_read_lock_count")
        .unwrap_or_else(|| panic!("{cov:#}"));
    assert_eq!(f["measurable"], true, "{f:#}");
    assert!(
        f["calls"].as_array().unwrap().iter().all(|n| n == 0),
        "{f:#}"
    );
    // One count per test measured, and one for the boot before the first test.
    assert_eq!(cov["tests"][0], "(boot)", "{cov:#}");
    assert_eq!(
        f["calls"].as_array().unwrap().len(),
        uncalled["tests"].as_array().unwrap().len() + 1,
        "{uncalled:#}"
    );
    // The matrix and the summary say it too.
    assert!(
        stdout.contains("UNTESTED") && stdout.contains("INCONCLUSIVE"),
        "{stdout}"
    );
    // (summary.md escapes Markdown's punctuation.)
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains(r"mm/ksm\.c needs CONFIG\_KSM"), "{md}");
    assert!(
        md.contains(r"functions never run\: vma\_read\_lock\_count"),
        "{md}"
    );
}
