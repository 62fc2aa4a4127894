//! `kmatrix compare` on run folders, and known issues in a run's outputs. The real test
//! runs one cell twice (tests/specs/bisect-compare-{old,new}.yaml: the fixture series'
//! first patch, then its first two, a sleeping call in atomic context at every boot; the new run judged with
//! tests/data/bisect/known-issues.yaml) and compares the two folders every way round.
//! Folders kmatrix cannot read are refused without any kernel.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn kmatrix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kmatrix"))
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(rel)
}

/// `kmatrix run` of a spec; the run folder.
fn run(spec: &str, runs: &Path) -> (i32, PathBuf) {
    let out = kmatrix()
        .args(["run", "--spec"])
        .arg(data(&format!("specs/{spec}")))
        .arg("--runs-dir")
        .arg(runs)
        .output()
        .unwrap();
    eprintln!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let dir = std::fs::canonicalize(runs.join("latest")).unwrap();
    (out.status.code().unwrap_or(-1), dir)
}

fn compare(old: &Path, new: &Path, extra: &[&Path]) -> (i32, String) {
    let out = kmatrix()
        .arg("compare")
        .arg(old)
        .arg(new)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

fn classes(run: &Path) -> Vec<(String, String)> {
    let c: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("compare.json")).unwrap()).unwrap();
    c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["title"].as_str().unwrap().to_string(),
                r["class"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const WARNING: &str = "BUG: sleeping function called from invalid context in kmatrix_fixture_check";

#[test]
#[ignore = "builds and boots real kernels; run with --include-ignored"]
fn two_real_runs_compare_as_new_known_fixed_and_a_known_issue_gone_is_maybe_fixed() {
    let runs_old = tempfile::tempdir().unwrap();
    let runs_new = tempfile::tempdir().unwrap();
    let (code, old) = run("bisect-compare-old.yaml", runs_old.path());
    assert_eq!(code, 0, "the first patch alone passes");
    let (code, new) = run("bisect-compare-new.yaml", runs_new.path());
    assert_eq!(
        code, 1,
        "the report fails the cell: a known issue is still a failure"
    );

    // The new run's own outputs show the report as known, and the oops it lists but did
    // not see as maybe fixed.
    assert!(new.join("known-issues.yaml").is_file());
    let summary = std::fs::read_to_string(new.join("summary.md")).unwrap();
    assert!(
        summary.contains("known issue: planted by patch 2 of the fixture series"),
        "{summary}"
    );
    assert!(summary.contains("**maybe fixed**"), "{summary}");
    let matrix = std::fs::read_to_string(new.join("matrix.txt")).unwrap();
    assert!(
        matrix.contains(&format!(
            "report: {WARNING} [SleepInAtomic] at console line"
        )) && matrix.contains("(known issue: planted by patch 2"),
        "{matrix}"
    );
    assert!(
        matrix.contains("MAYBE FIXED, not seen: BUG: unable to handle kernel NULL pointer dereference in kmatrix_fixture_*"),
        "{matrix}"
    );
    let junit = std::fs::read_to_string(new.join("junit.xml")).unwrap();
    assert!(
        junit.contains("(known issue: planted by patch 2"),
        "{junit}"
    );
    let html = std::fs::read_to_string(new.join("report.html")).unwrap();
    assert!(
        html.contains("known issue: planted by patch 2")
            && html.contains("href=\"https://example.org/kmatrix/issues/fixture-sleep\""),
        "{html}"
    );

    // Compared with the run before: known, not new; exit 0; and the comparison goes on top
    // of the new run's summary and report.
    let (code, out) = compare(&old, &new, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(classes(&new), [(WARNING.to_string(), "known".to_string())]);
    assert!(out.contains("known issue maybe fixed: BUG: unable to handle kernel NULL pointer dereference in kmatrix_fixture_*"), "{out}");
    assert!(out.contains("x86_64/pvl-on/fixture: PASS -> FAIL"), "{out}");
    let summary = std::fs::read_to_string(new.join("summary.md")).unwrap();
    assert!(
        summary.starts_with("## kmatrix compare\n\nNothing new"),
        "{summary}"
    );
    assert!(summary.contains("## kmatrix results"), "the results follow");
    let html = std::fs::read_to_string(new.join("report.html")).unwrap();
    assert!(html.contains("id=\"compare\""), "{html}");
    // `kmatrix report` re-renders the folder with the comparison kept.
    let out = kmatrix().arg("report").arg(&new).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let summary = std::fs::read_to_string(new.join("summary.md")).unwrap();
    assert!(summary.starts_with("## kmatrix compare"), "{summary}");

    // Without the known issues, the same report is new: exit 1.
    let none = data("data/bisect/no-known-issues.yaml");
    let (code, out) = compare(&old, &new, &[Path::new("--known"), &none]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(classes(&new), [(WARNING.to_string(), "new".to_string())]);
    assert!(out.contains("NEW: 1 new"), "{out}");

    // The other way round it is fixed (the old run booted and did not show it); a run
    // compared with itself has nothing new.
    let (code, out) = compare(&new, &old, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(classes(&old), [(WARNING.to_string(), "fixed".to_string())]);
    let (code, _) = compare(&new, &new, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        classes(&new),
        [(WARNING.to_string(), "still_failing".to_string())]
    );
}

/// results.json of one cell in schema 1 (as an older kmatrix wrote it) and 2.
fn fake_run(dir: &Path, schema: u32, titles: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let findings: Vec<Value> = titles
        .iter()
        .map(|t| serde_json::json!({"kind": "warning", "title": t, "frame": null, "corrupted": false, "trace": [], "task": null, "pid": null, "cpu": null, "timestamp": null, "line": 10, "report": t}))
        .collect();
    let verdict = if titles.is_empty() { "PASS" } else { "FAIL" };
    let cell = if schema == 1 {
        serde_json::json!({
            "id": "x86_64/pvl-on/v2", "arch": "x86_64", "config": "pvl-on", "patchset": "v2",
            "verdict": verdict, "reason": null, "details": [], "accel": "tcg", "accel_note": null,
            "kernel_cached": true, "kernel_key": "k", "tests": [], "findings": findings,
            "dir": dir.join("x86_64/pvl-on/v2"), "seconds": 1.0
        })
    } else {
        serde_json::json!({
            "id": "x86_64/pvl-on/v2", "arch": "x86_64", "config": "pvl-on", "patchset": "v2",
            "verdict": verdict, "reason": null, "details": [], "accel": "tcg", "accel_note": null,
            "source_id": null, "kernel_key": "k", "kernel_cached": true, "forensics": null,
            "ssh_ready_secs": null, "kernel_init_secs": null, "boot_lines": [1], "tests": [],
            "findings": findings, "controls": [], "vmstat_before": {}, "vmstat_after": {},
            "finding_rates": {}, "repeats": 0, "in_baseline": [],
            "dir": dir.join("x86_64/pvl-on/v2"), "seconds": 1.0
        })
    };
    let results = serde_json::json!({
        "schema": schema, "spec": "kmatrix.yaml", "spec_hash": "h", "shard": null,
        "run_dir": dir, "cells": [cell]
    });
    std::fs::write(dir.join("results.json"), results.to_string()).unwrap();
}

#[test]
fn a_schema_1_run_compares_with_a_schema_2_run_and_bad_folders_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (old, new) = (d.path().join("old"), d.path().join("new"));
    fake_run(&old, 1, &["WARNING in a"]);
    fake_run(&new, 2, &["WARNING in a", "WARNING in b"]);
    let (code, out) = compare(&old, &new, &[]);
    assert_eq!(code, 1, "{out}");
    let mut got = classes(&new);
    got.sort();
    assert_eq!(
        got,
        [
            ("WARNING in a".to_string(), "still_failing".to_string()),
            ("WARNING in b".to_string(), "new".to_string())
        ]
    );
    assert!(new.join("summary.md").is_file() && new.join("report.html").is_file());

    let missing = d.path().join("nope");
    let out = kmatrix()
        .arg("compare")
        .arg(&old)
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("cannot read the run") && e.contains("nope") && e.contains("results.json"),
        "{e}"
    );
    let bad = d.path().join("bad.yaml");
    std::fs::write(&bad, "- title: x\n").unwrap();
    let out = kmatrix()
        .arg("compare")
        .arg(&old)
        .arg(&new)
        .arg("--known")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("bad.yaml") && e.contains("why"), "{e}");
}
