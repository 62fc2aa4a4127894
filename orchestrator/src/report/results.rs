//! `results.json`: schema 2 written; schemas 1 and 2 read (`kmatrix report` and `merge`
//! work on run folders of older versions).

use crate::record::result::CellResult;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of the `results.json` layout (documented in README).
pub const SCHEMA_VERSION: u32 = 2;

/// What identifies a run besides its cells.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMeta {
    pub spec: PathBuf,
    #[serde(default)]
    pub spec_hash: String,
    /// `K/N` when this run is one shard of the matrix.
    #[serde(default)]
    pub shard: Option<crate::record::plan::Shard>,
}

#[derive(Serialize)]
struct ResultsFile<'a> {
    schema: u32,
    spec: &'a Path,
    spec_hash: &'a str,
    shard: &'a Option<crate::record::plan::Shard>,
    run_dir: &'a Path,
    cells: &'a [CellResult],
}

#[derive(Deserialize)]
struct Header {
    schema: u32,
    spec: PathBuf,
    #[serde(default)]
    spec_hash: String,
    #[serde(default)]
    shard: Option<crate::record::plan::Shard>,
}

#[derive(Deserialize)]
struct Cells<T> {
    cells: Vec<T>,
}

/// results.json from cells already rendered as JSON (each cell is rendered once, when it
/// finishes, so rewriting the file after every cell costs its bytes, not a new render).
pub fn write_rendered(run_dir: &Path, meta: &RunMeta, cells: &[String]) -> std::io::Result<()> {
    let head = serde_json::json!({
        "schema": SCHEMA_VERSION,
        "spec": meta.spec,
        "spec_hash": meta.spec_hash,
        "shard": meta.shard,
        "run_dir": run_dir,
    });
    let mut text = serde_json::to_string_pretty(&head).map_err(std::io::Error::other)?;
    text.truncate(text.trim_end().trim_end_matches('}').trim_end().len());
    text.push_str(",\n  \"cells\": [");
    for (i, c) in cells.iter().enumerate() {
        text.push_str(if i == 0 { "\n" } else { ",\n" });
        text.push_str(c);
    }
    text.push_str("\n  ]\n}\n");
    crate::host::rundir::write(run_dir, "results.json", text.as_bytes())
}

/// One cell as it appears in results.json.
pub fn render_cell(c: &CellResult) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

pub fn write(run_dir: &Path, meta: &RunMeta, cells: &[CellResult]) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(&ResultsFile {
        schema: SCHEMA_VERSION,
        spec: &meta.spec,
        spec_hash: &meta.spec_hash,
        shard: &meta.shard,
        run_dir,
        cells,
    })
    .map_err(std::io::Error::other)?;
    crate::host::rundir::write(run_dir, "results.json", &json)
}

/// Read a run directory's results.json back (for `kmatrix report`, resume, merge). The
/// folder may come from anywhere: the file is read as untrusted (`host::runfile`), and
/// its cells must have ids that are plain paths and times kmatrix could have written.
pub fn load_results(run_dir: &Path) -> std::io::Result<(RunMeta, Vec<CellResult>)> {
    let path = run_dir.join("results.json");
    let text = crate::host::runfile::read_string(
        run_dir,
        "results.json",
        crate::host::runfile::RESULTS_MAX,
    )?;
    let bad = |e: serde_json::Error| std::io::Error::other(format!("{}: {e}", path.display()));
    let h: Header = serde_json::from_str(&text).map_err(bad)?;
    let meta = RunMeta {
        spec: h.spec,
        spec_hash: h.spec_hash,
        shard: h.shard,
    };
    let cells = match h.schema {
        2 => {
            serde_json::from_str::<Cells<CellResult>>(&text)
                .map_err(bad)?
                .cells
        }
        1 => serde_json::from_str::<Cells<v1::CellResult>>(&text)
            .map_err(bad)?
            .cells
            .into_iter()
            .map(CellResult::from)
            .collect(),
        n => {
            return Err(std::io::Error::other(format!(
                "{}: schema {n} but this kmatrix reads schemas 1 and {SCHEMA_VERSION}",
                path.display()
            )))
        }
    };
    for (i, c) in cells.iter().enumerate() {
        check_cell(c).map_err(|why| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: cells[{i}]: {why}; this is not a results.json kmatrix wrote: check where the run folder came from",
                    path.display()
                ),
            )
        })?;
    }
    Ok((meta, cells))
}

/// What kmatrix itself would have written: an id `arch/config/patchset` of plain names
/// (it names the cell's folder) and every time finite, not negative and below
/// [`MAX_SECS`](crate::record::fmt::MAX_SECS).
fn check_cell(c: &CellResult) -> Result<(), String> {
    let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0']);
    if !plain(&c.config)
        || !plain(&c.patchset)
        || c.id.as_str() != format!("{}/{}/{}", c.arch, c.config, c.patchset)
    {
        return Err(format!(
            "`id` {:?} is not `arch/config/patchset` of plain names",
            crate::record::fmt::visible(&c.id)
        ));
    }
    let mut times: Vec<(String, f64)> = vec![("seconds".into(), c.seconds)];
    times.extend(c.ssh_ready_secs.map(|s| ("ssh_ready_secs".into(), s)));
    times.extend(c.kernel_init_secs.map(|s| ("kernel_init_secs".into(), s)));
    for (i, t) in c.tests.iter().enumerate() {
        times.push((format!("tests[{i}].seconds"), t.seconds));
        if let Some(o) = &t.overlap {
            times.push((format!("tests[{i}].overlap.window_secs"), o.window_secs));
        }
    }
    for (i, p) in c.phases.iter().enumerate() {
        times.push((format!("phases[{i}].at"), p.at));
    }
    for (i, f) in c.findings.iter().enumerate() {
        times.extend(f.timestamp.map(|s| (format!("findings[{i}].timestamp"), s)));
    }
    match times
        .iter()
        .find(|(_, s)| !(0.0..=crate::record::fmt::MAX_SECS).contains(s))
    {
        Some((key, s)) => Err(format!(
            "`{key}` is {s:e}, not a time in seconds (0 to {:e})",
            crate::record::fmt::MAX_SECS
        )),
        None => Ok(()),
    }
}

/// Schema 1, as kmatrix wrote it before typed outcomes and attributed findings.
mod v1 {
    use crate::console::Finding;
    use crate::parse::ktap;
    use crate::record::plan::{Accel, Arch, Expectation};
    use crate::record::result::{ControlState, TestOutcome};
    use crate::record::verdict::Verdict;
    use serde::Deserialize;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    #[derive(Deserialize)]
    pub struct TestResult {
        name: String,
        exit_status: Option<i32>,
        ktap: ktap::Report,
        timed_out: bool,
        #[serde(default)]
        unresponsive: bool,
        seconds: f64,
        result_file: Option<PathBuf>,
        error: Option<String>,
    }

    #[derive(Deserialize)]
    struct Control {
        test: String,
        expect: Expectation,
        fired: bool,
    }

    #[derive(Deserialize)]
    pub struct CellResult {
        id: String,
        arch: Arch,
        config: String,
        patchset: String,
        verdict: Verdict,
        reason: Option<String>,
        details: Vec<String>,
        accel: Option<String>,
        accel_note: Option<String>,
        #[serde(default)]
        source_id: Option<String>,
        kernel_cached: Option<bool>,
        #[serde(default)]
        forensics: Option<String>,
        #[serde(default)]
        ssh_ready_secs: Option<f64>,
        #[serde(default)]
        kernel_init_secs: Option<f64>,
        kernel_key: Option<String>,
        tests: Vec<TestResult>,
        findings: Vec<Finding>,
        #[serde(default)]
        expected_by: Vec<Option<String>>,
        #[serde(default)]
        controls: Vec<Control>,
        #[serde(default)]
        vmstat_before: BTreeMap<String, u64>,
        #[serde(default)]
        vmstat_after: BTreeMap<String, u64>,
        #[serde(default)]
        finding_rates: BTreeMap<String, u32>,
        #[serde(default)]
        repeats: u32,
        #[serde(default)]
        in_baseline: Vec<String>,
        dir: PathBuf,
        seconds: f64,
    }

    fn outcome(t: &TestResult) -> TestOutcome {
        let message = t.error.clone().unwrap_or_default();
        if t.timed_out {
            TestOutcome::TimedOut { message }
        } else if t.unresponsive {
            TestOutcome::Unresponsive { message }
        } else if let Some(e) = &t.error {
            if e.starts_with("module ") {
                TestOutcome::NotRun { message }
            } else if e.starts_with("abandoned") {
                TestOutcome::Abandoned { message }
            } else if e.contains("panicked") || e.starts_with("guest died") {
                TestOutcome::GuestDied { message }
            } else {
                TestOutcome::HostError { message }
            }
        } else if let Some(status) = t.exit_status {
            TestOutcome::Exited { status }
        } else {
            TestOutcome::HostError {
                message: "no exit status recorded".into(),
            }
        }
    }

    impl From<CellResult> for crate::record::result::CellResult {
        fn from(c: CellResult) -> Self {
            let mut findings = c.findings;
            for (f, by) in findings.iter_mut().zip(c.expected_by) {
                f.expected_by = by;
            }
            let controls = c
                .controls
                .into_iter()
                .map(|ctl| {
                    let line = findings
                        .iter()
                        .find(|f| {
                            f.expected_by.as_deref() == Some(ctl.test.as_str())
                                && f.kind == ctl.expect.kind
                        })
                        .map(|f| f.line)
                        .unwrap_or(0);
                    crate::record::result::Control {
                        test: ctl.test,
                        expect: ctl.expect,
                        state: if ctl.fired {
                            ControlState::Fired { line }
                        } else {
                            ControlState::Silent
                        },
                    }
                })
                .collect();
            let tests = c
                .tests
                .iter()
                .map(|t| crate::record::result::TestResult {
                    ktap: t.ktap.clone(),
                    seconds: t.seconds,
                    result_file: t.result_file.clone(),
                    ..crate::record::result::TestResult::new(&t.name, outcome(t))
                })
                .collect();
            crate::record::result::CellResult {
                id: crate::record::plan::CellId(c.id),
                arch: c.arch,
                config: c.config,
                patchset: c.patchset,
                verdict: c.verdict,
                reason: c.reason,
                details: c.details,
                accel: c.accel.and_then(|a| match a.as_str() {
                    "kvm" => Some(Accel::Kvm),
                    "tcg" => Some(Accel::Tcg),
                    _ => None,
                }),
                accel_note: c.accel_note,
                source_id: c.source_id,
                kernel_key: c.kernel_key,
                kernel_cached: c.kernel_cached,
                inputs: None,
                subjects: vec![],
                forensics: c.forensics,
                ssh_ready_secs: c.ssh_ready_secs,
                kernel_init_secs: c.kernel_init_secs,
                guest_cpus: None,
                boot_lines: vec![1],
                tests,
                findings,
                controls,
                vmstat_before: c.vmstat_before,
                vmstat_after: c.vmstat_after,
                finding_rates: c.finding_rates,
                repeats: c.repeats,
                in_baseline: c.in_baseline,
                lock_graph: None,
                perf_boots: vec![],
                perf: None,
                series_coverage: None,
                dropped: Default::default(),
                detectors: None,
                notes: vec![],
                phases: vec![],
                dir: c.dir,
                seconds: c.seconds,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::result::TestOutcome;
    use crate::record::verdict::Verdict;

    /// A results.json as kmatrix wrote it in schema 1 (trimmed from a real run).
    const V1: &str = r#"{
  "schema": 1, "spec": "kmatrix.yaml", "spec_hash": "abc", "shard": null, "run_dir": "/r",
  "cells": [{
    "id": "x86_64/pvl-on/v3", "arch": "x86_64", "config": "pvl-on", "patchset": "v3",
    "verdict": "PASS", "reason": null, "details": [], "accel": "tcg",
    "accel_note": "KVM failed (guest printed nothing in 20s); fell back to TCG",
    "source_id": "linux-source-7.3_7.3.4-1~bpo13+1_all", "kernel_cached": true,
    "forensics": null, "ssh_ready_secs": 4.2, "kernel_init_secs": 2.7, "kernel_key": "k",
    "tests": [
      {"name": "faults_vs_writers", "exit_status": 0, "ktap": {"header": true, "planned": 1, "cases": [{"number": 1, "description": "a", "status": "ok", "reason": null}]}, "timed_out": false, "unresponsive": false, "seconds": 10.5, "result_file": null, "error": null},
      {"name": "vma_probe", "exit_status": null, "ktap": {"header": true, "planned": 1, "cases": []}, "timed_out": true, "seconds": 200, "result_file": null, "error": "overran its timeout of 180s"}
    ],
    "findings": [{"kind": "lockdep", "title": "possible deadlock in lock_vma_under_rcu", "frame": "lock_vma_under_rcu", "corrupted": false, "trace": [], "task": "vma_probe", "pid": 1, "cpu": 0, "timestamp": 40.1, "line": 300, "report": "x"}],
    "expected_by": ["vma_probe"],
    "controls": [{"test": "vma_probe", "expect": {"kind": "lockdep", "title": null}, "fired": true},
                 {"test": "vma_probe", "expect": {"kind": "hung_task", "title": null}, "fired": false}],
    "vmstat_before": {}, "vmstat_after": {}, "finding_rates": {}, "repeats": 0, "in_baseline": [],
    "dir": "/r/x86_64-pvl-on-v3", "seconds": 300.0
  }]
}"#;

    #[test]
    fn schema_1_results_are_read_into_schema_2() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("results.json"), V1).unwrap();
        let (meta, cells) = load_results(d.path()).unwrap();
        assert_eq!(meta.spec_hash, "abc");
        let c = &cells[0];
        assert_eq!(c.verdict, Verdict::Pass);
        assert_eq!(c.accel, Some(crate::record::plan::Accel::Tcg));
        assert_eq!(c.tests[0].outcome, TestOutcome::Exited { status: 0 });
        assert!(matches!(c.tests[1].outcome, TestOutcome::TimedOut { .. }));
        assert_eq!(c.findings[0].expected_by.as_deref(), Some("vma_probe"));
        assert!(c.controls[0].fired() && !c.controls[1].fired());
        // And written back as schema 2, which reads back the same.
        write(d.path(), &meta, &cells).unwrap();
        let text = std::fs::read_to_string(d.path().join("results.json")).unwrap();
        assert!(text.contains("\"schema\": 2"));
        let (_, again) = load_results(d.path()).unwrap();
        assert_eq!(again[0].findings, cells[0].findings);
    }

    #[test]
    fn pre_rendered_cells_make_the_same_results() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("results.json"), V1).unwrap();
        let (meta, cells) = load_results(d.path()).unwrap();
        let rendered: Vec<String> = cells.iter().map(render_cell).collect();
        write_rendered(d.path(), &meta, &rendered).unwrap();
        let (m2, again) = load_results(d.path()).unwrap();
        assert_eq!(m2.spec_hash, meta.spec_hash);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].findings, cells[0].findings);
    }

    #[test]
    fn an_unknown_schema_is_refused_by_number() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("results.json"),
            r#"{"schema": 9, "spec": "x", "cells": []}"#,
        )
        .unwrap();
        let e = load_results(d.path()).unwrap_err().to_string();
        assert!(e.contains("schema 9"), "{e}");
    }
}
