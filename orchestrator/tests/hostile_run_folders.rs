//! Forged run folders (issue #30): a run folder given to `merge`, `report`, `compare` or
//! `report --kcidb` may have been downloaded from anywhere. Each forgery below must end
//! in a clear error (exit 2, naming the file), in time, with no panic and nothing
//! written: no secret copied, no output half rewritten, no merged folder left behind.

use kmatrix::record::plan::{Arch, Cell};
use kmatrix::record::result::{CellResult, TestOutcome, TestResult};
use kmatrix::record::verdict::Verdict;
use kmatrix::report::{self, RunMeta};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A FIFO or `/dev/zero` must not hang or fill kmatrix: each command gets this long.
const DEADLINE: Duration = Duration::from_secs(20);

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run kmatrix with a deadline (a hang is a failure, not a stuck test).
fn kmatrix(args: &[&Path]) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kmatrix {args:?} hung for {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let r = Ran {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(out).unwrap(),
        stderr: std::fs::read_to_string(err).unwrap(),
    };
    assert!(
        !r.stderr.contains("panicked"),
        "kmatrix {args:?} panicked: {}",
        r.stderr
    );
    r
}

fn cell(patchset: &str, run: &Path) -> CellResult {
    let c = Cell {
        arch: Arch::X86_64,
        config: "pvl-on".into(),
        patchset: patchset.into(),
        base_config: "tinyconfig".into(),
        fragments: vec![],
        patches: vec![],
    };
    let mut r = CellResult::new(&c, run.join(c.rel_dir()));
    r.verdict = Verdict::Pass;
    r.seconds = 300.0;
    r.tests = vec![TestResult {
        seconds: 12.0,
        ..TestResult::new("faults_vs_writers", TestOutcome::Exited { status: 0 })
    }];
    r
}

/// A run folder as kmatrix writes it: one passing cell, shard `shard` if given.
fn run_folder(dir: &Path, patchset: &str, shard: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let meta = RunMeta {
        spec: "kmatrix.yaml".into(),
        spec_hash: "h".into(),
        shard: shard.map(|s| kmatrix::record::plan::Shard::parse(s).unwrap()),
    };
    report::write_results(dir, &meta, &[cell(patchset, dir)]).unwrap();
    dir.to_owned()
}

/// Edit results.json as a forger would.
fn forge(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let p = dir.join("results.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(p, serde_json::to_string(&v).unwrap()).unwrap();
}

/// Every file of a folder and its bytes (to prove nothing changed).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

fn refused(r: &Ran, file: &str, why: &str) {
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(file) && r.stderr.contains(why),
        "expected `{file}` and `{why}` in: {}",
        r.stderr
    );
}

#[test]
fn a_shard_whose_known_issues_link_to_a_secret_is_refused_and_nothing_is_merged() {
    let d = tempfile::tempdir().unwrap();
    let secret = d.path().join("shadow");
    std::fs::write(&secret, "root:$6$secret-hash:19000:0:99999:7:::\n").unwrap();
    let a = run_folder(&d.path().join("shard-1"), "base", Some("1/2"));
    let b = run_folder(&d.path().join("shard-2"), "v2", Some("2/2"));
    std::os::unix::fs::symlink(&secret, b.join("known-issues.yaml")).unwrap();
    let out = d.path().join("merged");
    let r = kmatrix(&[Path::new("merge"), Path::new("--out"), &out, &a, &b]);
    refused(&r, "shard-2/known-issues.yaml", "symbolic link");
    assert!(!out.exists(), "a refused merge leaves no folder");

    // A regular file that is not a known-issues list is not copied either.
    std::fs::remove_file(b.join("known-issues.yaml")).unwrap();
    std::fs::copy(&secret, b.join("known-issues.yaml")).unwrap();
    let r = kmatrix(&[Path::new("merge"), Path::new("--out"), &out, &a, &b]);
    refused(&r, "known-issues.yaml", "");
    assert!(!out.exists());

    // Without the forgery the same shards merge.
    std::fs::remove_file(b.join("known-issues.yaml")).unwrap();
    let r = kmatrix(&[Path::new("merge"), Path::new("--out"), &out, &a, &b]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(out.join("summary.md").is_file());
}

#[test]
fn results_or_compare_json_that_is_a_fifo_or_dev_zero_is_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let good = run_folder(&d.path().join("good"), "base", None);
    for (name, make) in [("fifo", 0), ("zero", 1), ("big", 2)] {
        let dir = d.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("results.json");
        match make {
            0 => nix::unistd::mkfifo(&p, nix::sys::stat::Mode::S_IRWXU).unwrap(),
            1 => std::os::unix::fs::symlink("/dev/zero", &p).unwrap(),
            _ => {
                // Sparse: 300 MB of nothing, more than any results.json kmatrix writes.
                let f = std::fs::File::create(&p).unwrap();
                f.set_len(300 << 20).unwrap();
            }
        }
        let why = ["is a FIFO", "symbolic link", "more than the"][make];
        let r = kmatrix(&[Path::new("report"), &dir]);
        refused(&r, &format!("{name}/results.json"), why);
        let r = kmatrix(&[Path::new("report"), Path::new("--kcidb"), &dir]);
        refused(&r, "results.json", why);
        let out = d.path().join(format!("merged-{name}"));
        let r = kmatrix(&[Path::new("merge"), Path::new("--out"), &out, &good, &dir]);
        refused(&r, "results.json", why);
        assert!(!out.exists());
        let r = kmatrix(&[Path::new("compare"), &good, &dir]);
        refused(&r, "results.json", why);
    }

    // compare.json as a FIFO: `report` refuses before rewriting anything.
    let run = run_folder(&d.path().join("cmp"), "base", None);
    nix::unistd::mkfifo(&run.join("compare.json"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let before = snapshot(&run);
    let r = kmatrix(&[Path::new("report"), &run]);
    refused(&r, "cmp/compare.json", "is a FIFO");
    assert_eq!(snapshot(&run), before, "outputs untouched");
}

#[test]
fn absurd_numbers_are_a_clear_error_and_no_output_is_rewritten() {
    let d = tempfile::tempdir().unwrap();
    let good = run_folder(&d.path().join("good"), "v2", None);
    for (i, (key, value)) in [
        ("seconds", serde_json::json!(1e308)),
        ("seconds", serde_json::json!(-5.0)),
        ("tests.0.seconds", serde_json::json!(1e300)),
    ]
    .into_iter()
    .enumerate()
    {
        let run = run_folder(&d.path().join(format!("r{i}")), "base", None);
        forge(&run, |v| {
            let c = &mut v["cells"][0];
            match key {
                "seconds" => c["seconds"] = value.clone(),
                _ => c["tests"][0]["seconds"] = value.clone(),
            }
        });
        let before = snapshot(&run);
        let field = if key == "seconds" {
            "`seconds`"
        } else {
            "`tests[0].seconds`"
        };
        for args in [
            vec![Path::new("report"), &run],
            vec![Path::new("report"), Path::new("--kcidb"), &run],
            vec![Path::new("compare"), &good, &run],
            vec![Path::new("compare"), &run, &good],
        ] {
            let r = kmatrix(&args);
            refused(&r, "results.json", field);
        }
        let out = d.path().join(format!("merged{i}"));
        let r = kmatrix(&[Path::new("merge"), Path::new("--out"), &out, &good, &run]);
        refused(&r, "results.json", field);
        assert!(!out.exists());
        assert_eq!(snapshot(&run), before, "{key}: outputs untouched");
    }
}

#[test]
fn the_renderers_clamp_any_number_they_are_given() {
    // The writers themselves never panic on a time (a run's own cells, a resumed cell).
    let d = tempfile::tempdir().unwrap();
    let mut cells = Vec::new();
    for (i, s) in [f64::NAN, f64::INFINITY, 1e308, -5.0, f64::MAX]
        .iter()
        .enumerate()
    {
        let mut c = cell(&format!("p{i}"), d.path());
        c.seconds = *s;
        c.tests[0].seconds = *s;
        c.phases = vec![kmatrix::record::result::PhaseStart {
            phase: kmatrix::record::phase::Phase::Boot,
            detail: String::new(),
            at: *s,
        }];
        cells.push(c);
    }
    let meta = RunMeta {
        spec: "kmatrix.yaml".into(),
        spec_hash: "h".into(),
        shard: None,
    };
    report::write_results(d.path(), &meta, &cells).unwrap();
    let doc = kmatrix::report::kcidb::render(
        &meta,
        &cells,
        d.path(),
        &kmatrix::report::kcidb::Options::new("kmatrix"),
    )
    .unwrap();
    assert!(doc["tests"].is_array());
}

#[test]
fn a_giant_shard_count_or_a_cell_id_that_leaves_the_folder_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let a = run_folder(&d.path().join("a"), "base", Some("1/2"));
    let b = run_folder(&d.path().join("b"), "v2", Some("2/2"));
    forge(&b, |v| v["shard"] = "1/1000000000000".into());
    let out = d.path().join("merged");
    let r = kmatrix(&[Path::new("merge"), Path::new("--out"), &out, &a, &b]);
    refused(&r, "b/results.json", "1/1000000000000");
    assert!(!out.exists());

    let c = run_folder(&d.path().join("c"), "base", None);
    forge(&c, |v| v["cells"][0]["id"] = "../../../etc".into());
    let r = kmatrix(&[Path::new("report"), &c]);
    refused(&r, "c/results.json", "is not `arch/config/patchset`");
}

#[test]
fn report_kcidb_never_opens_the_spec_path_written_in_results_json() {
    let d = tempfile::tempdir().unwrap();
    let run = run_folder(&d.path().join("run"), "base", None);
    // Opening this would hang: the document must come out anyway.
    let fifo = d.path().join("spec-fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    forge(&run, |v| v["spec"] = fifo.display().to_string().into());
    let r = kmatrix(&[Path::new("report"), Path::new("--kcidb"), &run]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(doc["checkouts"].is_array());
}

#[test]
fn the_largest_times_a_guest_can_print_still_read_back() {
    // printk timestamps have up to 12 digits of seconds, and the guest chooses them: its
    // own run folder must not become one kmatrix refuses.
    let d = tempfile::tempdir().unwrap();
    let run = run_folder(&d.path().join("run"), "base", None);
    forge(&run, |v| {
        let c = &mut v["cells"][0];
        c["kernel_init_secs"] = 999_999_999_999.999_f64.into();
        c["findings"] = serde_json::json!([{
            "kind": "warning", "title": "WARNING in f", "frame": null, "corrupted": false,
            "trace": [], "task": null, "pid": null, "cpu": null,
            "timestamp": 999_999_999_999.999_f64, "line": 3, "report": "x"
        }]);
    });
    let r = kmatrix(&[Path::new("report"), &run]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let r = kmatrix(&[Path::new("report"), Path::new("--kcidb"), &run]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}
