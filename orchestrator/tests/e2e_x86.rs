//! The real path on real components: make, QEMU, virtiofsd, dropbear + ssh2, console.
//! Slow (a kernel build when the cache is cold), so `#[ignore]`d by default; README
//! command 2 (and CI) runs them with `--include-ignored`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn kmatrix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kmatrix"))
}

fn spec(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/specs")
        .join(name)
}

/// Processes (pid, cmdline) whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmd.contains(needle) && (cmd.contains("qemu-system") || cmd.contains("virtiofsd")) {
            v.push((pid, cmd));
        }
    }
    v
}

fn run(spec: &Path, runs: &Path) -> (i32, String, Value, PathBuf) {
    let out = kmatrix()
        .args(["run", "--spec"])
        .arg(spec)
        .arg("--runs-dir")
        .arg(runs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{stderr}\n{stdout}");
    let run_dir = std::fs::canonicalize(runs.join("latest")).unwrap();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    (out.status.code().unwrap_or(-1), stdout, results, run_dir)
}

#[test]
#[ignore = "builds and boots a real kernel; run with --include-ignored"]
fn skeleton_cell_builds_boots_runs_the_stress_test_and_passes() {
    let runs = tempfile::tempdir().unwrap();
    let (code, stdout, results, run_dir) = run(&spec("skeleton.yaml"), runs.path());

    // The printed matrix shows the cell passing; the exit code says so too.
    assert!(stdout.contains("x86_64/pvl-on  PASS"), "matrix:\n{stdout}");
    assert_eq!(code, 0);

    let cell = &results["cells"][0];
    assert_eq!(cell["id"], "x86_64/pvl-on/base");
    assert_eq!(cell["verdict"], "PASS", "{cell:#}");
    assert_eq!(
        cell["findings"].as_array().unwrap().len(),
        0,
        "kernel reports: {cell:#}"
    );

    // Acceleration is recorded; where /dev/kvm exists but TCG ran, the fallback is explained.
    let accel = cell["accel"].as_str().unwrap();
    assert!(accel == "kvm" || accel == "tcg");
    if accel == "tcg" && Path::new("/dev/kvm").exists() {
        let note = cell["accel_note"].as_str().unwrap_or_default();
        assert!(note.contains("fell back to TCG"), "accel_note: {note:?}");
    }

    // KTAP came back over SSH and parsed: every planned case reported, all ok.
    let test = &cell["tests"][0];
    assert_eq!(test["name"], "faults_vs_writers");
    assert_eq!(test["exit_status"], 0);
    let cases = test["ktap"]["cases"].as_array().unwrap();
    assert!(cases.len() >= 3, "{test:#}");
    assert_eq!(
        test["ktap"]["planned"].as_u64().unwrap() as usize,
        cases.len()
    );
    assert!(cases.iter().all(|c| c["status"] == "ok"), "{test:#}");

    // The evidence on disk: build log, final config, console, KTAP, and the result file
    // the guest wrote into the virtiofs share.
    let dir = run_dir.join("x86_64-pvl-on-base");
    let config = std::fs::read_to_string(dir.join("config")).unwrap();
    assert!(config.contains("CONFIG_PROVE_LOCKING=y"));
    assert!(config.contains("CONFIG_PER_VMA_LOCK=y"));
    assert!(std::fs::metadata(dir.join("build.log")).unwrap().len() > 0);
    let console = std::fs::read_to_string(dir.join("console.log")).unwrap();
    assert!(console.contains("Linux version 7.3"), "console:\n{console}");
    assert!(console.contains("kmatrix-guest: results share mounted"));
    let ktap = std::fs::read_to_string(dir.join("tests/faults_vs_writers.ktap")).unwrap();
    assert!(ktap.starts_with("TAP version 13"), "{ktap}");
    let shared = std::fs::read_to_string(dir.join("results/faults_vs_writers.ktap")).unwrap();
    assert!(
        shared.contains("TAP version 13") && shared.contains("ok 1"),
        "{shared}"
    );
    assert_eq!(
        test["result_file"].as_str().map(PathBuf::from),
        Some(dir.join("results/faults_vs_writers.ktap"))
    );

    // Nothing of the run is left running.
    let left = processes_mentioning(&run_dir.to_string_lossy());
    assert!(left.is_empty(), "leftover processes: {left:?}");

    // A second run with nothing changed runs no make at all.
    let (code2, _, results2, run_dir2) = run(&spec("skeleton.yaml"), runs.path());
    assert_eq!(code2, 0);
    assert_ne!(run_dir, run_dir2);
    assert_eq!(results2["cells"][0]["kernel_cached"], true);
    assert_eq!(results2["cells"][0]["kernel_key"], cell["kernel_key"]);
    assert!(processes_mentioning(&run_dir2.to_string_lossy()).is_empty());
}
