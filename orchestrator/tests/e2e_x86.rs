//! The real path on real components: make, QEMU, virtiofsd, dropbear + ssh2, the console.
//! Slow (kernel builds on a cold cache), so `#[ignore]`d by default; README command 2
//! (and CI) runs them with `--include-ignored`. They use the project's own kmatrix.yaml
//! with `--only`, so CI tests exactly what a user runs.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kmatrix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kmatrix"))
}

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn spec(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/specs")
        .join(name)
}

/// Processes (pid, cmdline) of QEMU, virtiofsd or make whose command line mentions `needle`.
fn nix_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        == Some("0")
}

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
        let ours =
            cmd.contains("qemu-system") || cmd.contains("virtiofsd") || cmd.starts_with("make ");
        if ours && cmd.contains(needle) {
            v.push((pid, cmd));
        }
    }
    v
}

struct Run {
    code: i32,
    stdout: String,
    results: Value,
    dir: PathBuf,
}

impl Run {
    fn cell(&self, id: &str) -> &Value {
        self.results["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no cell {id} in {:#}", self.results))
    }
}

fn run(cmd: &str, spec: &Path, only: &[&str], runs: &Path) -> Run {
    let mut c = kmatrix();
    c.arg(cmd)
        .arg("--spec")
        .arg(spec)
        .arg("--runs-dir")
        .arg(runs);
    for o in only {
        c.args(["--only", o]);
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let dir = std::fs::canonicalize(runs.join("latest")).unwrap();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout,
        results,
        dir,
    }
}

fn titles(cell: &Value) -> Vec<String> {
    cell["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The titles of the findings no control expected (kmatrix's own liveness reports are
/// expected by `liveness` in every booted lockdep cell).
fn unexpected_titles(cell: &Value) -> Vec<String> {
    cell["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["expected_by"].is_null())
        .map(|f| f["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The one failure Debian's 7.3 shows on its own, rarely and more on a loaded host: a
/// `/proc/PID/maps` snapshot that skips a VMA which was mapped all along
/// (`maps_consistency` case 2, "gap ... in the stable range"). It is the kernel's: with
/// the timing-only fixture `tests/data/fixtures/proc-maps-slow-next-vma.patch` (a delay
/// at the start of `lock_next_vma()`) it shows in 2 of 10 runs (bench/RESULTS.md).
/// kmatrix is right to fail the cell for it; the suite accepts exactly that failure,
/// says so on stderr, and checks everything else.
fn only_the_kernels_maps_gap(cell: &Value) -> bool {
    let failed: Vec<&Value> = cell["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["outcome"] != serde_json::json!({"kind": "exited", "status": 0})
                || t["ktap"]["cases"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["status"] == "notok")
        })
        .collect();
    let [t] = failed.as_slice() else {
        return false;
    };
    let not_ok: Vec<&Value> = t["ktap"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "notok")
        .collect();
    let gap = |c: &Value| {
        c["number"] == 2
            && c["diag"].as_array().is_some_and(|d| {
                d.iter().any(|l| {
                    l.as_str().is_some_and(|l| {
                        l.contains("in the stable range") || l.contains("stable range covered only")
                    })
                })
            })
    };
    let yes = cell["verdict"] == "FAIL"
        && t["name"] == "maps_consistency"
        && not_ok.len() == 1
        && gap(not_ok[0])
        && unexpected_titles(cell).is_empty();
    if yes {
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE {}: maps_consistency found the 7.3 kernel's /proc/PID/maps gap (a known kernel race, not a kmatrix failure): {}",
            cell["id"],
            not_ok[0]["diag"]
        );
    }
    yes
}

#[test]
#[ignore = "builds and boots a real kernel; run with --include-ignored"]
fn base_cell_builds_boots_passes_every_stress_test_and_reruns_from_cache() {
    let runs = tempfile::tempdir().unwrap();
    let r = run(
        "run",
        &project().join("kmatrix.yaml"),
        &["x86_64/pvl-on/base"],
        runs.path(),
    );

    let cell = r.cell("x86_64/pvl-on/base");
    let kernel_gap = only_the_kernels_maps_gap(cell);
    assert!(
        kernel_gap || r.stdout.contains("x86_64/pvl-on  PASS"),
        "matrix:\n{}",
        r.stdout
    );
    assert_eq!(r.code, if kernel_gap { 1 } else { 0 });
    assert_eq!(
        cell["verdict"],
        if kernel_gap { "FAIL" } else { "PASS" },
        "{cell:#}"
    );
    assert_eq!(
        unexpected_titles(cell),
        Vec::<String>::new(),
        "no kernel report on a clean kernel"
    );
    // The only reports are the liveness step's two, each expected by it.
    assert_eq!(
        titles(cell),
        [
            "possible deadlock in kmatrix_liveness_lockdep",
            "INFO: task hung in kmatrix_liveness_hung"
        ],
        "{cell:#}"
    );

    // Every vCPU QEMU was given is online in the guest (x86_64 needs ACPI for that), so
    // the stress threads really ran at the same time.
    assert_eq!(
        cell["guest_cpus"], 2,
        "kmatrix.yaml's vm.cpus; {:#}",
        cell["notes"]
    );

    // Acceleration is recorded; where /dev/kvm exists but TCG ran, the fallback is explained.
    let accel = cell["accel"].as_str().unwrap();
    assert!(accel == "kvm" || accel == "tcg");
    if accel == "tcg" && Path::new("/dev/kvm").exists() {
        let note = cell["accel_note"].as_str().unwrap_or_default();
        assert!(
            note.contains("fell back to TCG") || note.contains("KVM failed on this host"),
            "accel_note: {note:?}"
        );
    }

    // Every stress test ran over SSH and reported complete, all-ok KTAP.
    let tests = cell["tests"].as_array().unwrap();
    let names: Vec<&str> = tests.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "faults_vs_writers",
            "remote_vs_writers",
            "uffd_vs_writers",
            "tcp_zerocopy_vs_writers",
            "binder_vs_writers",
            "fork_vs_faults",
            "replace_vs_faults",
            "maps_consistency",
            "mempolicy_vs_faults",
            "collapse_vs_faults",
            "vma_users_vs_writers",
            "perf_faults",
            "mm-merge",
            "mm-madv_populate",
            "mm-mlock2-tests",
            "mm-guard-regions",
            "proc-proc-maps-race"
        ],
        "the probe only runs in patchsets that have vma_start_read_unlocked(); the kernel's \
         own selftests after the stress programs"
    );
    // The kernel's own selftests, from the cell's tree, built static and run as KTAP.
    for t in tests
        .iter()
        .filter(|t| t["name"].as_str().unwrap().contains('-'))
    {
        assert_eq!(t["outcome"]["kind"], "exited", "{t:#}");
        assert!(t["ktap"]["header"] == true, "{t:#}");
        assert!(
            t["ktap"]["cases"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["status"] != "notok"),
            "{t:#}"
        );
    }
    let tests: Vec<&Value> = tests
        .iter()
        .filter(|t| !t["name"].as_str().unwrap().contains('-'))
        .collect();
    for t in &tests {
        if kernel_gap && t["name"] == "maps_consistency" {
            continue;
        }
        assert_eq!(
            t["outcome"],
            serde_json::json!({"kind": "exited", "status": 0}),
            "{t:#}"
        );
        let cases = t["ktap"]["cases"].as_array().unwrap();
        assert!(cases.len() >= 3, "{t:#}");
        assert_eq!(t["ktap"]["planned"].as_u64().unwrap() as usize, cases.len());
        assert!(
            cases
                .iter()
                .all(|c| c["status"] == "ok" || c["status"] == "skip"),
            "{t:#}"
        );
        assert!(
            t["result_file"].is_string(),
            "no result file back over virtiofs: {t:#}"
        );
    }

    // The per-VMA-lock paths were exercised: the counters rose during the tests.
    let before = cell["vmstat_before"]["vma_lock_success"].as_u64().unwrap();
    let after = cell["vmstat_after"]["vma_lock_success"].as_u64().unwrap();
    assert!(
        after > before + 1000,
        "vma_lock_success {before} -> {after}"
    );

    // What the PASS rests on (issue #15): both detectors proven alive by the liveness
    // step's tagged reports (controls, not findings), and per test the overlap of its
    // thread kinds and the per-VMA-lock faults it caused.
    assert_eq!(cell["detectors"]["lockdep"]["kind"], "alive", "{cell:#}");
    assert_eq!(cell["detectors"]["hung_task"]["kind"], "alive", "{cell:#}");
    let live: Vec<&Value> = cell["controls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["test"] == "liveness")
        .collect();
    assert_eq!(live.len(), 2, "{cell:#}");
    assert!(
        live.iter().all(|c| c["state"]["kind"] == "fired"),
        "{live:?}"
    );
    // The stress programs prove overlap; perf_faults measures one thing at a time and
    // proves instead that it measured (its samples, below).
    let (perf, tests): (Vec<&Value>, Vec<&Value>) =
        tests.into_iter().partition(|t| t["name"] == "perf_faults");
    // The default configs build no transparent hugepages (docs/workload.md): the collapse
    // program says so in every case, in the kernel's words, and drives nothing.
    let (collapse, tests): (Vec<&Value>, Vec<&Value>) = tests
        .into_iter()
        .partition(|t| t["name"] == "collapse_vs_faults");
    let cases = collapse[0]["ktap"]["cases"].as_array().unwrap();
    assert!(
        cases.iter().all(|c| c["status"] == "skip"
            && c["reason"]
                .as_str()
                .is_some_and(|d| d.contains("CONFIG_TRANSPARENT_HUGEPAGE off"))),
        "{:#}",
        collapse[0]
    );
    let samples = perf[0]["perf"]
        .as_object()
        .unwrap_or_else(|| panic!("{:#}", perf[0]));
    for m in [
        "fault_private",
        "fault_shared_writer",
        "tcp_zerocopy",
        "cpu",
    ] {
        let w = samples[m]
            .as_array()
            .unwrap_or_else(|| panic!("{m}: {samples:#?}"));
        assert!(
            w.len() == 10 && w.iter().all(|v| v.as_f64() > Some(0.0)),
            "{m}: {w:?}"
        );
    }
    for t in tests {
        let ops = t["overlap"]["ops"]
            .as_object()
            .unwrap_or_else(|| panic!("{t:#}"));
        assert!(
            !ops.is_empty() && ops.values().all(|v| v.as_u64() > Some(0)),
            "{t:#}"
        );
        assert!(
            t["vmstat_delta"]["vma_lock_success"].as_u64() > Some(0),
            "{t:#}"
        );
    }

    // The evidence on disk.
    let dir = r.dir.join("x86_64/pvl-on/base");
    let config = std::fs::read_to_string(dir.join("config")).unwrap();
    assert!(config.contains("CONFIG_PROVE_LOCKING=y") && config.contains("CONFIG_PER_VMA_LOCK=y"));
    assert!(std::fs::metadata(dir.join("build.log")).unwrap().len() > 0);
    let console = std::fs::read_to_string(dir.join("console.log")).unwrap();
    assert!(console.contains("Linux version 7.3"), "console:\n{console}");
    assert!(console.contains("kmatrix-guest: results share mounted"));
    let ktap = std::fs::read_to_string(dir.join("tests/faults_vs_writers.ktap")).unwrap();
    assert!(ktap.starts_with("TAP version 13"), "{ktap}");
    let shared = std::fs::read_to_string(dir.join("results/faults_vs_writers.ktap")).unwrap();
    assert!(shared.contains("ok 1 "), "{shared}");
    for f in [
        "results.json",
        "junit.xml",
        "summary.md",
        "report.html",
        "matrix.txt",
    ] {
        assert!(r.dir.join(f).is_file(), "{f} missing");
    }
    assert!(processes_mentioning(&r.dir.to_string_lossy()).is_empty());

    // `kmatrix boot` brings the same cell up for a developer and runs a command in it;
    // meanwhile QEMU runs as nobody, under seccomp (issue #30).
    let mut child = kmatrix()
        .args(["boot", "x86_64/pvl-on/base", "--spec"])
        .arg(project().join("kmatrix.yaml"))
        .arg("--runs-dir")
        .arg(runs.path())
        .args([
            "--",
            "sh",
            "-c",
            "cat /proc/version; grep -c results /proc/mounts; sleep 3",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut qemu_ids = None;
    let until = Instant::now() + Duration::from_secs(600);
    while nix_root()
        && qemu_ids.is_none()
        && Instant::now() < until
        && child.try_wait().unwrap().is_none()
    {
        for (pid, cmd) in processes_mentioning(&runs.path().to_string_lossy()) {
            if !cmd.contains("qemu-system") || !cmd.contains("-run-with") {
                continue;
            }
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let field = |k: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
            };
            // QEMU drops its uid once the VM is set up: wait for that.
            if let (Some(uid), Some(seccomp)) = (field("Uid:"), field("Seccomp:")) {
                if uid != "0" {
                    qemu_ids = Some((uid, seccomp));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    if nix_root() {
        let (uid, seccomp) = qemu_ids.expect("QEMU ran with uid 0 all along, or never ran");
        assert_eq!(uid, "65534", "QEMU's effective uid");
        assert_eq!(seccomp, "2", "QEMU's seccomp filter");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("Linux version 7.3"), "{text}");
    assert!(processes_mentioning(&runs.path().to_string_lossy()).is_empty());

    // A second run with nothing changed runs no make at all.
    let start = Instant::now();
    let r2 = run(
        "build",
        &project().join("kmatrix.yaml"),
        &["x86_64/pvl-on/base"],
        runs.path(),
    );
    assert_eq!(r2.code, 0);
    let c2 = r2.cell("x86_64/pvl-on/base");
    assert_eq!(c2["kernel_cached"], true);
    assert_eq!(c2["kernel_key"], cell["kernel_key"]);
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "cached build took {:?}",
        start.elapsed()
    );
}

#[test]
#[ignore = "builds and boots real kernels; run with --include-ignored"]
fn seed_v2_oopses_and_breaks_the_pvl_off_build_while_v3_passes_with_live_controls() {
    let runs = tempfile::tempdir().unwrap();
    let r = run(
        "run",
        &project().join("kmatrix.yaml"),
        &[
            "x86_64/pvl-on/base",
            "x86_64/pvl-on/v2",
            "x86_64/pvl-on/v3",
            "x86_64/pvl-off/v2",
        ],
        runs.path(),
    );
    assert_eq!(r.code, 1, "findings exit code");

    // v2, per-VMA locks on: the slow path's NULL vma oopses in vma_start_read_unlocked,
    // reached twice: from the converted caller (TCP zero-copy receive) and, in the fresh
    // boot kmatrix gives the tests after an oops, from the probe's no-VMA mode.
    let v2 = r.cell("x86_64/pvl-on/v2");
    assert_eq!(v2["verdict"], "FAIL", "{v2:#}");
    let traces: Vec<Vec<String>> = v2["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "null_deref")
        .map(|f| {
            f["trace"]
                .as_array()
                .unwrap()
                .iter()
                .map(|fr| fr["function"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect();
    let oops_via = |caller: &str| {
        traces.iter().any(|t| {
            t.iter().any(|f| f == "vma_start_read_unlocked") && t.iter().any(|f| f == caller)
        })
    };
    assert!(oops_via("tcp_zerocopy_receive"), "{traces:?}");
    // ... and from binder's page insertion (patch 3/3), in the next fresh boot.
    assert!(oops_via("binder_alloc_new_buf"), "{traces:?}");
    assert!(oops_via("vma_probe_write"), "{traces:?}");
    let console = std::fs::read_to_string(r.dir.join("x86_64/pvl-on/v2/console.log")).unwrap();
    assert!(console
        .contains("kmatrix: boot 2, a fresh kernel for the tests after tcp_zerocopy_vs_writers"));
    let probe = &v2["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "vma_probe");
    assert!(probe.is_some(), "the probe ran after the reboot: {v2:#}");
    // ... and the function is not exported: a module using it does not link.
    let module = v2["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "vma_module")
        .unwrap();
    let why = module["outcome"]["message"].as_str().unwrap();
    assert_eq!(module["outcome"]["kind"], "not_run");
    assert!(
        why.contains("'vma_start_read_unlocked'")
            && why.contains("undefined!")
            && why.contains("does not export"),
        "{why}"
    );

    // v2, per-VMA locks off: the converted caller does not compile.
    let off = r.cell("x86_64/pvl-off/v2");
    assert_eq!(off["verdict"], "BUILD-FAIL", "{off:#}");
    let details = off["details"].to_string();
    assert!(details.contains("net/ipv4/tcp.c"), "{details}");
    assert!(details.contains("vma_start_read_unlocked"), "{details}");
    let config = std::fs::read_to_string(r.dir.join("x86_64/pvl-off/v2/config")).unwrap();
    assert!(config.contains("# CONFIG_PER_VMA_LOCK is not set"));

    // v3 passes, and both positive controls fired: lockdep and the hung-task detector.
    let v3 = r.cell("x86_64/pvl-on/v3");
    if !only_the_kernels_maps_gap(v3) {
        assert_eq!(v3["verdict"], "PASS", "{v3:#}");
    }
    // Issue #28: the series itself was built and ran: at least 90% of its changed lines
    // with code, counted per test by gcov on the series' own objects, both changed
    // functions (the lookup and its converted caller) called.
    let cov = &v3["series_coverage"];
    let (ran, measurable) = (
        cov["lines_ran"].as_u64().unwrap(),
        cov["lines_measurable"].as_u64().unwrap(),
    );
    assert!(measurable > 0 && ran * 10 >= measurable * 9, "{cov:#}");
    for f in ["vma_start_read_unlocked", "find_tcp_vma"] {
        let called = cov["functions"].as_array().unwrap().iter().any(|c| {
            c["name"] == f
                && c["calls"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|n| n.as_u64() > Some(0))
        });
        assert!(called, "{f} never called: {cov:#}");
    }
    assert!(r.stdout.contains("series coverage: "), "{}", r.stdout);
    // v3 exports the function: the module links, loads and its lookups answer right.
    let module = v3["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "vma_module")
        .unwrap();
    let lines = module["ktap"]["cases"].to_string();
    assert!(
        lines.contains("vma_start_read_unlocked() from a module"),
        "{module:#}"
    );
    assert!(r.dir.join("x86_64/pvl-on/v3/share/vma_user.ko").is_file());
    let controls = v3["controls"].as_array().unwrap();
    assert_eq!(
        controls.len(),
        4,
        "probe's two, the liveness step's two: {v3:#}"
    );
    assert!(
        controls.iter().all(|c| c["state"]["kind"] == "fired"),
        "{controls:?}"
    );
    let kinds: Vec<&str> = v3["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"lockdep") && kinds.contains(&"hung_task"),
        "{kinds:?}"
    );
    // Each control's report happened inside its own step, and is attributed to it.
    assert!(v3["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["expected_by"].is_string() && f["expected_by"] == f["during"]));
    assert_eq!(v3["detectors"]["lockdep"]["kind"], "alive", "{v3:#}");
    assert_eq!(v3["detectors"]["hung_task"]["kind"], "alive", "{v3:#}");

    // The outputs agree with the verdicts.
    let junit = std::fs::read_to_string(r.dir.join("junit.xml")).unwrap();
    assert!(junit.contains("vma_start_read_unlocked"));
    let html = std::fs::read_to_string(r.dir.join("report.html")).unwrap();
    assert!(html.contains("BUILD-FAIL") && html.contains("vma_start_read_unlocked"));
    assert!(processes_mentioning(&r.dir.to_string_lossy()).is_empty());

    // Issue #22: v3's lock graph against base's (the same run): what v3 added, no cycle.
    let graph = &v3["lock_graph"];
    assert_eq!(graph["base"], "x86_64/pvl-on/base", "{v3:#}");
    assert!(graph["new_edges_total"].as_u64() > Some(0), "{graph:#}");
    assert_eq!(
        graph["cycles"].as_array().map(|c| c.len()),
        Some(0),
        "{graph:#}"
    );
    assert!(r.dir.join("x86_64/pvl-on/v3/lockdep.txt").is_file());
    // The tests base does not run (their locks are new edges too) are named.
    let not_in_base = graph["tests_not_in_base"].as_array().unwrap();
    assert!(
        not_in_base.iter().any(|t| t == "vma_probe")
            && !not_in_base.iter().any(|t| t == "faults_vs_writers"),
        "{graph:#}"
    );
    // Each new edge shown comes with the lock chain that made it (lockdep_chains).
    assert!(r.dir.join("x86_64/pvl-on/v3/lockdep_chains.txt").is_file());
    let shown = graph["new_edges"].as_array().unwrap();
    let contexts = graph["contexts"].as_object().unwrap();
    assert!(!contexts.is_empty() || shown.is_empty(), "{graph:#}");
    for (edge, chain) in contexts {
        let (a, b) = edge.split_once(" -> ").unwrap();
        let chain = chain.as_str().unwrap();
        assert!(chain.contains(a) && chain.contains(b), "{edge}: {chain}");
    }
    // Issue #34: v3's throughput against base's, per metric, with an interval, on the
    // accelerator that measured it; one boot a side makes no call.
    let perf = &v3["perf"];
    assert_eq!(perf["base"], "x86_64/pvl-on/base", "{v3:#}");
    assert_eq!(perf["accel"], v3["accel"], "{perf:#}");
    let rows = perf["rows"].as_array().unwrap();
    for m in [
        "fault_private",
        "fault_shared_writer",
        "tcp_zerocopy",
        "cpu",
    ] {
        let row = rows
            .iter()
            .find(|r| r["metric"] == m)
            .unwrap_or_else(|| panic!("{m}: {perf:#}"));
        let (low, ratio, high) = (
            row["low"].as_f64().unwrap(),
            row["ratio"].as_f64().unwrap(),
            row["high"].as_f64().unwrap(),
        );
        assert!(low <= ratio && ratio <= high && low > 0.0, "{row:#}");
        assert_eq!(row["call"], "too_few_boots", "{row:#}");
    }
    // v3's kernel profiles the series' objects for coverage, base's does not: said.
    assert!(
        perf["profiled_here_only"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o.as_str().unwrap().contains("mmap_lock"))),
        "{perf:#}"
    );
    assert!(
        r.stdout.contains("performance vs x86_64/pvl-on/base"),
        "{}",
        r.stdout
    );
    let summary = std::fs::read_to_string(r.dir.join("summary.md")).unwrap();
    assert!(summary.contains("| fault\\_private |"), "{summary}");

    // And across the matrix: the oops is explained by the patchset.
    assert!(
        r.stdout.contains("where: every cell of patchset v2"),
        "{}",
        r.stdout
    );

    // Issue #15, on the kernel just built: v3 plus a real lock inversion.
    a_real_lock_inversion_is_never_hidden_by_the_probes_control();
}

/// Called by the seed test right after its v3 cell, so that the build slot holds v3 and
/// only mm/madvise.c is rebuilt (switching between v2 and v3 rebuilds most of the kernel:
/// both change include/linux/mmap_lock.h).
fn a_real_lock_inversion_is_never_hidden_by_the_probes_control() {
    // Issue #15: before, the inversion (reported during faults_vs_writers) counted as
    // "expected by vma_probe" and the cell passed with the probe's control "fired".
    let runs = tempfile::tempdir().unwrap();
    let r = run(
        "run",
        &spec("inversion.yaml"),
        &["x86_64/pvl-on/v3-inversion"],
        runs.path(),
    );
    assert_eq!(r.code, 1, "findings exit code");
    let c = r.cell("x86_64/pvl-on/v3-inversion");
    assert_eq!(c["verdict"], "FAIL", "{c:#}");
    let reason = c["reason"].as_str().unwrap();
    assert!(reason.contains("possible deadlock"), "{reason}");
    let inversion = c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "lockdep" && f["during"] == "faults_vs_writers")
        .unwrap_or_else(|| panic!("the inversion, during faults_vs_writers: {c:#}"));
    assert!(inversion["expected_by"].is_null(), "{inversion:#}");
    assert!(
        inversion["report"]
            .as_str()
            .unwrap()
            .contains("kmatrix_fixture"),
        "{inversion:#}"
    );
    // The probe's lockdep control could not fire: lockdep was already off.
    let probe_lockdep = c["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["test"] == "vma_probe" && k["expect"]["kind"] == "lockdep")
        .unwrap();
    assert_eq!(
        probe_lockdep["state"]["kind"], "not_judged",
        "{probe_lockdep:#}"
    );
    assert!(processes_mentioning(&r.dir.to_string_lossy()).is_empty());
}

#[test]
#[ignore = "needs the kernel source; run with --include-ignored"]
fn pvl_off_without_the_harness_is_a_config_mismatch_not_a_silent_on() {
    let runs = tempfile::tempdir().unwrap();
    let r = run("build", &spec("pvl-trap.yaml"), &[], runs.path());
    assert_eq!(r.code, 1);
    let c = r.cell("x86_64/pvl-off/base");
    assert_eq!(c["verdict"], "CONFIG-MISMATCH", "{c:#}");
    let details = c["details"].to_string();
    assert!(details.contains("CONFIG_PER_VMA_LOCK asked n"), "{details}");
    assert!(details.contains("got y"), "{details}");
    assert!(
        details.contains("def_bool y; depends on ARCH_SUPPORTS_PER_VMA_LOCK && MMU && SMP"),
        "{details}"
    );
}

#[test]
#[ignore = "needs the kernel source; run with --include-ignored"]
fn a_patch_that_does_not_apply_is_patch_fail_naming_the_hunk() {
    let runs = tempfile::tempdir().unwrap();
    let r = run("build", &spec("patch-conflict.yaml"), &[], runs.path());
    assert_eq!(r.code, 1);
    let c = r.cell("x86_64/pvl-on/conflict");
    assert_eq!(c["verdict"], "PATCH-FAIL", "{c:#}");
    assert!(
        c["reason"].as_str().unwrap().contains("conflict.patch"),
        "{c:#}"
    );
    assert!(c["details"].to_string().contains("Hunk #1 FAILED"), "{c:#}");
}

#[test]
#[ignore = "needs the kernel source; run with --include-ignored"]
fn ctrl_c_during_a_build_stops_make_and_still_writes_results() {
    let runs = tempfile::tempdir().unwrap();
    let mut child = kmatrix()
        .args(["build", "--rebuild", "--spec"])
        .arg(spec("interrupt.yaml"))
        .arg("--runs-dir")
        .arg(runs.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until make really runs, then interrupt as a terminal would.
    // Other tests may hold the shared-cache lock for a while (first unpack of the source).
    let deadline = Instant::now() + Duration::from_secs(900);
    while processes_mentioning("x86_64-drill/obj").is_empty() {
        assert!(Instant::now() < deadline, "make never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(Duration::from_millis(500));
    let left = processes_mentioning("x86_64-drill/obj");
    assert!(left.is_empty(), "left behind: {left:?}");
    let dir = std::fs::canonicalize(runs.path().join("latest")).unwrap();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["cells"][0]["verdict"], "INTERRUPTED");
}

#[test]
#[ignore = "needs the kernel source; run with --include-ignored"]
fn two_shards_merged_give_the_same_results_as_one_run() {
    let spec = spec("shard.yaml");
    let whole = tempfile::tempdir().unwrap();
    let one = run("build", &spec, &[], whole.path());
    let verdicts = |cells: &Value| {
        let mut v: Vec<(String, String)> = cells
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap().to_string(),
                    c["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(verdicts(&one.results["cells"]).len(), 8);

    let mut dirs = Vec::new();
    let mut tmp = Vec::new();
    for k in 1..=2 {
        let t = tempfile::tempdir().unwrap();
        let out = kmatrix()
            .args(["build", "--shard", &format!("{k}/2"), "--spec"])
            .arg(&spec)
            .arg("--runs-dir")
            .arg(t.path())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dirs.push(std::fs::canonicalize(t.path().join("latest")).unwrap());
        tmp.push(t);
    }
    let merged = tempfile::tempdir().unwrap();
    let out = kmatrix()
        .arg("merge")
        .arg("--out")
        .arg(merged.path())
        .args(&dirs)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(merged.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(verdicts(&m["cells"]), verdicts(&one.results["cells"]));
    assert!(
        merged.path().join("junit.xml").is_file() && merged.path().join("report.html").is_file()
    );

    // A shard of another spec is refused.
    let other = tempfile::tempdir().unwrap();
    run(
        "build",
        &spec_path_variant(&spec, other.path()),
        &["x86_64/off/conflict"],
        other.path(),
    );
    let foreign = std::fs::canonicalize(other.path().join("latest")).unwrap();
    let out = kmatrix()
        .arg("merge")
        .arg("--out")
        .arg(tempfile::tempdir().unwrap().path())
        .arg(&dirs[0])
        .arg(&foreign)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("different spec"));
}

/// The same spec with one comment more, in a folder beside the original's (so relative
/// paths still resolve): a different spec as far as merge is concerned.
fn spec_path_variant(spec: &Path, _dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(spec).unwrap();
    let p = spec.with_file_name("shard-variant.yaml");
    std::fs::write(&p, format!("{text}# variant\n")).unwrap();
    p
}

#[test]
#[ignore = "needs the kernel source; run with --include-ignored"]
fn a_killed_run_resumes_without_redoing_finished_cells() {
    let spec = spec("shard.yaml");
    let runs = tempfile::tempdir().unwrap();
    let mut child = kmatrix()
        .args(["run", "--spec"])
        .arg(&spec)
        .arg("--runs-dir")
        .arg(runs.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (no chance to clean up) once two cells are on disk.
    let results = runs.path().join("latest/results.json");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(Instant::now() < deadline, "no cell finished");
        let n = std::fs::read_to_string(&results)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .map(|v| v["cells"].as_array().map(|a| a.len()).unwrap_or(0))
            .unwrap_or(0);
        if n >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first_dir = std::fs::canonicalize(runs.path().join("latest")).unwrap();
    let first: Value =
        serde_json::from_str(&std::fs::read_to_string(first_dir.join("results.json")).unwrap())
            .unwrap();
    let done: Vec<String> = first["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert!(done.len() >= 2 && done.len() < 8, "{done:?}");

    let out = kmatrix()
        .args(["run", "--resume", "--spec"])
        .arg(&spec)
        .arg("--runs-dir")
        .arg(runs.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{} finished cell(s) reused", done.len())),
        "{stderr}"
    );
    let second_dir = std::fs::canonicalize(runs.path().join("latest")).unwrap();
    assert_ne!(first_dir, second_dir);
    let second: Value =
        serde_json::from_str(&std::fs::read_to_string(second_dir.join("results.json")).unwrap())
            .unwrap();
    let cells = second["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 8);
    for c in cells {
        let id = c["id"].as_str().unwrap();
        let dir = c["dir"].as_str().unwrap();
        // Reused cells keep their evidence where it was; the rest ran anew.
        assert_eq!(
            dir.starts_with(first_dir.to_str().unwrap()),
            done.contains(&id.to_string()),
            "{id}: {dir}"
        );
    }
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn qemu_killed_mid_test_is_an_infra_error_with_evidence_and_no_leftovers() {
    let runs = tempfile::tempdir().unwrap();
    let child = kmatrix()
        .args(["run", "--spec"])
        .arg(spec("drill-long.yaml"))
        .arg("--runs-dir")
        .arg(runs.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the test streams output, kill QEMU from outside.
    let ktap = runs
        .path()
        .join("latest/x86_64/pvl-on/base/tests/faults_vs_writers.ktap");
    let deadline = Instant::now() + Duration::from_secs(1800);
    while std::fs::metadata(&ktap).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the test never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    let run_dir = std::fs::canonicalize(runs.path().join("latest")).unwrap();
    let qemu: Vec<u32> = processes_mentioning(&run_dir.to_string_lossy())
        .into_iter()
        .filter(|(_, c)| c.contains("qemu-system"))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(qemu.len(), 1, "one QEMU for the cell");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(qemu[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "infrastructure error exit code");
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    let cell = &results["cells"][0];
    assert_eq!(cell["verdict"], "INFRA-ERROR", "{cell:#}");
    assert!(
        cell["reason"]
            .as_str()
            .unwrap()
            .contains("killed by signal 9"),
        "{cell:#}"
    );
    // What was collected before the kill is kept.
    assert!(
        std::fs::read_to_string(run_dir.join("x86_64/pvl-on/base/console.log"))
            .unwrap()
            .contains("kmatrix-guest: ready")
    );
    assert!(std::fs::metadata(&ktap).unwrap().len() > 0);
    assert!(
        processes_mentioning(&run_dir.to_string_lossy()).is_empty(),
        "virtiofsd left behind"
    );
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn a_test_that_overruns_is_hang_with_sysrq_forensics_and_no_leftovers() {
    let runs = tempfile::tempdir().unwrap();
    let r = run("run", &spec("drill-hang.yaml"), &[], runs.path());
    assert_eq!(r.code, 1);
    let c = r.cell("x86_64/pvl-on/base");
    assert_eq!(c["verdict"], "HANG", "{c:#}");
    assert!(
        c["reason"].as_str().unwrap().contains("drill_hang overran"),
        "{c:#}"
    );
    // `d` too: lockdep is built, so the held locks are dumped for the holders.
    let how = c["forensics"].as_str().unwrap();
    assert!(how.starts_with("sysrq d, w, t and l over ssh"), "{c:#}");
    let console = std::fs::read_to_string(r.dir.join("x86_64/pvl-on/base/console.log")).unwrap();
    assert!(
        console.contains("Show Blocked State"),
        "sysrq w output on the console"
    );
    assert_eq!(c["tests"][0]["outcome"]["kind"], "timed_out");
    assert!(processes_mentioning(&r.dir.to_string_lossy()).is_empty());
}

/// Start `kmatrix run` on a drill spec in the background.
fn spawn_run(spec_name: &str, runs: &Path) -> std::process::Child {
    kmatrix()
        .args(["run", "--spec"])
        .arg(spec(spec_name))
        .arg("--runs-dir")
        .arg(runs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn results_of(run_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap()).unwrap()
}

fn ktap_started(runs: &Path, test: &str) -> bool {
    std::fs::metadata(
        runs.join("latest/x86_64/pvl-on/base/tests")
            .join(format!("{test}.ktap")),
    )
    .map(|m| m.len() > 0)
    .unwrap_or(false)
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn a_guest_panic_ends_qemu_by_itself_and_is_reported_as_a_panic() {
    let runs = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let r = run("run", &spec("drill-panic.yaml"), &[], runs.path());
    assert_eq!(r.code, 1, "findings exit code");
    let c = r.cell("x86_64/pvl-on/base");
    assert_eq!(c["verdict"], "FAIL", "{c:#}");
    assert_eq!(c["reason"], "kernel panic: sysrq triggered crash", "{c:#}");
    assert_eq!(
        c["tests"][0]["outcome"]["message"],
        "the kernel panicked during the test (QEMU exited by itself)"
    );
    // QEMU went by itself (panic=-1, -no-reboot): no forensics, no stop timeout waited out.
    assert!(c["forensics"].is_null(), "{c:#}");
    assert!(start.elapsed() < Duration::from_secs(600));
    let console = std::fs::read_to_string(r.dir.join("x86_64/pvl-on/base/console.log")).unwrap();
    assert!(console.contains("Kernel panic - not syncing: sysrq triggered crash"));
    assert!(processes_mentioning(&r.dir.to_string_lossy()).is_empty());
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn sshd_dead_with_userspace_frozen_is_hang_with_sysrq_over_the_serial_console() {
    let runs = tempfile::tempdir().unwrap();
    let r = run("run", &spec("drill-sshd-dead.yaml"), &[], runs.path());
    assert_eq!(r.code, 1);
    let c = r.cell("x86_64/pvl-on/base");
    assert_eq!(c["verdict"], "HANG", "{c:#}");
    assert_eq!(
        c["reason"], "the guest stopped answering SSH during drill_sshd_dead",
        "{c:#}"
    );
    let how = c["forensics"].as_str().unwrap();
    assert!(
        how.starts_with("sysrq d, w, t and l over the serial console (ssh unreachable"),
        "{how}"
    );
    // The dumps came through the serial line: blocked tasks, every task (the frozen
    // drill among them), all CPUs; and reading them found no kernel report.
    let console = std::fs::read_to_string(r.dir.join("x86_64/pvl-on/base/console.log")).unwrap();
    for dump in [
        "sysrq: Show Blocked State",
        "sysrq: Show State",
        "sysrq: Show backtrace of all active CPUs",
    ] {
        assert!(console.contains(dump), "no `{dump}` on the console");
    }
    assert!(console.contains("task:drill_sshd_dead"));
    assert_eq!(titles(c), Vec::<String>::new());
    assert!(processes_mentioning(&r.dir.to_string_lossy()).is_empty());
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn virtiofsd_killed_mid_test_is_an_infra_error_with_evidence_and_no_leftovers() {
    let runs = tempfile::tempdir().unwrap();
    let child = spawn_run("drill-long.yaml", runs.path());
    wait_until(
        "faults_vs_writers output",
        Duration::from_secs(1800),
        || ktap_started(runs.path(), "faults_vs_writers"),
    );
    let run_dir = std::fs::canonicalize(runs.path().join("latest")).unwrap();
    let fsd: Vec<u32> = processes_mentioning(&run_dir.to_string_lossy())
        .into_iter()
        .filter(|(_, c)| c.contains("virtiofsd"))
        .map(|(p, _)| p)
        .collect();
    assert!(!fsd.is_empty(), "virtiofsd runs for the cell");
    for p in fsd {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "infrastructure error exit code");
    let results = results_of(&run_dir);
    let cell = &results["cells"][0];
    assert_eq!(cell["verdict"], "INFRA-ERROR", "{cell:#}");
    let why = cell["reason"].as_str().unwrap();
    assert!(
        why.contains("virtiofsd (results share) exited")
            && why.contains("during faults_vs_writers"),
        "{why}"
    );
    // What the test printed before is kept, and the test is on record as abandoned.
    assert_eq!(
        cell["tests"][0]["outcome"]["message"],
        "abandoned: virtiofsd exited"
    );
    assert!(std::fs::read_to_string(
        run_dir.join("x86_64/pvl-on/base/tests/faults_vs_writers.ktap")
    )
    .unwrap()
    .contains("TAP version"));
    assert!(processes_mentioning(&run_dir.to_string_lossy()).is_empty());
}

/// Ctrl-C (SIGINT) a run once `ready` says so; it must exit 130 with the cell
/// INTERRUPTED in results.json, the console kept, and no QEMU or virtiofsd left.
fn ctrl_c_when(ready: impl Fn(&Path) -> bool) -> (PathBuf, Value) {
    signal_when(nix::sys::signal::Signal::SIGINT, ready)
}

/// `sig` (SIGINT, SIGTERM or SIGHUP: all act as the first Ctrl-C) once `ready` says so.
fn signal_when(sig: nix::sys::signal::Signal, ready: impl Fn(&Path) -> bool) -> (PathBuf, Value) {
    let runs = tempfile::tempdir().unwrap();
    let child = spawn_run("drill-long.yaml", runs.path());
    wait_until("the moment to interrupt", Duration::from_secs(1800), || {
        ready(runs.path())
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    let start = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(start.elapsed() < Duration::from_secs(30), "slow to stop");
    let run_dir = std::fs::canonicalize(runs.path().join("latest")).unwrap();
    let left = processes_mentioning(&run_dir.to_string_lossy());
    assert!(left.is_empty(), "left behind: {left:?}");
    let results = results_of(&run_dir);
    let cell = results["cells"][0].clone();
    assert_eq!(cell["verdict"], "INTERRUPTED", "{cell:#}");
    assert!(run_dir.join("x86_64/pvl-on/base/console.log").is_file());
    std::mem::forget(runs); // the caller reads the run folder
    (run_dir, cell)
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn ctrl_c_during_boot_stops_qemu_and_virtiofsd_and_writes_results() {
    let (_, cell) = ctrl_c_when(|runs| {
        let Ok(dir) = std::fs::canonicalize(runs.join("latest")) else {
            return false;
        };
        // QEMU started and printing, SSH not yet answering.
        let console =
            std::fs::read_to_string(dir.join("x86_64/pvl-on/base/console.log")).unwrap_or_default();
        processes_mentioning(&dir.to_string_lossy())
            .iter()
            .any(|(_, c)| c.contains("qemu-system"))
            && console.contains("Linux version")
            && !console.contains("kmatrix-guest: ready")
    });
    assert_eq!(cell["tests"].as_array().unwrap().len(), 0, "{cell:#}");
    let why = cell["reason"].as_str().unwrap();
    assert!(why.starts_with("interrupted (Ctrl-C) during boot"), "{why}");
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn ctrl_c_during_a_test_stops_everything_and_keeps_what_was_collected() {
    let (run_dir, cell) = ctrl_c_when(|runs| ktap_started(runs, "faults_vs_writers"));
    assert_eq!(
        cell["reason"], "interrupted (Ctrl-C) during test (faults_vs_writers)",
        "{cell:#}"
    );
    assert!(cell["ssh_ready_secs"].as_f64().is_some(), "{cell:#}");
    assert!(std::fs::read_to_string(
        run_dir.join("x86_64/pvl-on/base/tests/faults_vs_writers.ktap")
    )
    .unwrap()
    .contains("TAP version"));
}

/// QEMU started and printing, SSH not yet answering.
fn booting(runs: &Path) -> bool {
    let Ok(dir) = std::fs::canonicalize(runs.join("latest")) else {
        return false;
    };
    let console =
        std::fs::read_to_string(dir.join("x86_64/pvl-on/base/console.log")).unwrap_or_default();
    processes_mentioning(&dir.to_string_lossy())
        .iter()
        .any(|(_, c)| c.contains("qemu-system"))
        && console.contains("Linux version")
        && !console.contains("kmatrix-guest: ready")
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn sigterm_during_a_test_acts_like_ctrl_c() {
    // Issue #16: a CI runner's SIGTERM used to lose the cell in flight.
    let (_, cell) = signal_when(nix::sys::signal::Signal::SIGTERM, |runs| {
        ktap_started(runs, "faults_vs_writers")
    });
    assert_eq!(
        cell["reason"], "interrupted (Ctrl-C) during test (faults_vs_writers)",
        "{cell:#}"
    );
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn sighup_during_boot_acts_like_ctrl_c() {
    let (_, cell) = signal_when(nix::sys::signal::Signal::SIGHUP, booting);
    assert!(
        cell["reason"]
            .as_str()
            .unwrap()
            .starts_with("interrupted (Ctrl-C) during boot"),
        "{cell:#}"
    );
}

#[test]
#[ignore = "needs the kernel source; run with --include-ignored"]
fn sigterm_and_sigkill_during_a_build_leave_no_compiler_behind() {
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGKILL,
    ] {
        let runs = tempfile::tempdir().unwrap();
        let mut child = kmatrix()
            .args(["build", "--rebuild", "--spec"])
            .arg(spec("interrupt.yaml"))
            .arg("--runs-dir")
            .arg(runs.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(900);
        while processes_mentioning("x86_64-drill/obj").is_empty() {
            assert!(Instant::now() < deadline, "make never started");
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(2));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let status = child.wait().unwrap();
        if sig == nix::sys::signal::Signal::SIGTERM {
            assert_eq!(status.code(), Some(130), "{sig:?}");
        }
        // make's compilers too: the guard kills the groups of a SIGKILLed kmatrix.
        wait_until("no make or compiler left", Duration::from_secs(10), || {
            processes_mentioning("x86_64-drill/obj").is_empty()
                && compilers_mentioning("x86_64-drill").is_empty()
        });
    }
}

/// cc1 processes (make's compilers) whose command line mentions `needle`.
fn compilers_mentioning(needle: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline"))
            .map(|r| String::from_utf8_lossy(&r).replace('\0', " "))
            .unwrap_or_default();
        if (cmd.contains("cc1") || cmd.contains("gcc")) && cmd.contains(needle) {
            v.push(pid);
        }
    }
    v
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn a_hostile_guest_leaves_nothing_privileged_in_a_private_run_folder() {
    // Issue #16, as tried: setuid busybox, a device node for the host's disk, a symlink
    // to /etc/shadow, a FIFO, written into the results share.
    let runs = tempfile::tempdir().unwrap();
    let out = kmatrix()
        .args(["boot", "x86_64/pvl-on/base", "--spec"])
        .arg(spec("drills-base.yaml"))
        .arg("--runs-dir")
        .arg(runs.path())
        .args([
            "--",
            "sh",
            "-c",
            "cp /bin/busybox /results/x; chmod 4755 /results/x; mknod /results/dev b 8 0; chmod 666 /results/dev; ln -s /etc/shadow /results/s; mkfifo /results/f; mkdir -p /results/d; chmod 1777 /results/d; echo data > /results/ok; ls -l /results",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    let dir = std::fs::read_dir(runs.path())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("boot-"))
        .unwrap()
        .path();
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "run folder {:o} readable by others", mode);
    let mut stack = vec![dir.clone()];
    let mut seen_ok = false;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let t = m.file_type();
            let p = e.path();
            assert!(!t.is_symlink(), "symlink {}", p.display());
            assert!(
                !t.is_block_device() && !t.is_char_device(),
                "device {}",
                p.display()
            );
            assert!(!t.is_fifo(), "FIFO {}", p.display());
            if p.ends_with("results/ok") {
                seen_ok = true;
                assert_ne!(m.uid(), 0, "guest files are never root's on the host");
            }
            if !p.to_string_lossy().contains(".sock") {
                assert_eq!(m.mode() & 0o7000, 0, "setuid/setgid/sticky {}", p.display());
            }
            if t.is_dir() {
                stack.push(p);
            }
        }
    }
    assert!(seen_ok, "the guest's ordinary file is kept");
    assert!(stderr.contains("symlink at results/s"), "{stderr}");
    assert!(processes_mentioning(&dir.to_string_lossy()).is_empty());
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn a_hostile_console_keeps_every_output_valid_and_bounded() {
    let runs = tempfile::tempdir().unwrap();
    let out = kmatrix()
        .args(["run", "--spec"])
        .arg(spec("drill-flood.yaml"))
        .arg("--runs-dir")
        .arg(runs.path())
        .output()
        .unwrap();
    let printed = [out.stdout.clone(), out.stderr.clone()].concat();
    eprintln!("{}", String::from_utf8_lossy(&printed));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !printed.contains(&0x1b),
        "an escape sequence reached the terminal"
    );
    let dir = std::fs::canonicalize(runs.path().join("latest")).unwrap();
    let c = &results_of(&dir)["cells"][0];
    assert_eq!(c["verdict"], "FAIL", "{c:#}");
    assert!(
        c["reason"].as_str().unwrap().contains("BUG: kmatrix drill"),
        "{c:#}"
    );
    // Bounded: the console and the test's output stop at their limits, and say so.
    let console = std::fs::metadata(dir.join("x86_64/pvl-on/base/console.log"))
        .unwrap()
        .len();
    assert!(
        console < (256 << 10) + 4096,
        "console.log is {console} bytes"
    );
    let ktap = std::fs::metadata(dir.join("x86_64/pvl-on/base/tests/drill_flood.ktap"))
        .unwrap()
        .len();
    assert!(ktap < (256 << 10) + 4096, "test output is {ktap} bytes");
    assert!(
        c["notes"].to_string().contains("console.log was truncated"),
        "{c:#}"
    );
    // Every output still parses and shows the hostile text as text.
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/junit.xsd");
    let lint = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(dir.join("junit.xml"))
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        !md.contains('\u{1b}') && !md.contains("<script>") && !md.contains("```\u{20}<"),
        "{md}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        !html.contains("<script>") && html.contains("&lt;script&gt;"),
        "escaped in report.html"
    );
    let text = std::fs::read(dir.join("matrix.txt")).unwrap();
    assert!(!text.contains(&0x1b), "matrix.txt holds an escape sequence");
    assert!(
        serde_json::from_slice::<Value>(&std::fs::read(dir.join("results.json")).unwrap()).is_ok()
    );
    assert!(processes_mentioning(&dir.to_string_lossy()).is_empty());
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn a_guest_writing_a_gigabyte_and_a_million_files_is_stopped_at_the_share_limits() {
    let runs = tempfile::tempdir().unwrap();
    let r = run("run", &spec("drill-writer.yaml"), &[], runs.path());
    let c = r.cell("x86_64/pvl-on/base");
    assert_eq!(c["verdict"], "FAIL", "{c:#}");
    // The share is a filesystem of its own (root): the guest's writes past its limits
    // fail there, and the cell says so. Without root the size watch stops the test.
    let notes = c["notes"].to_string();
    let failure = c["reason"].as_str().unwrap_or_default();
    let stopped = notes.contains("the results share was full")
        || c["tests"][0]["outcome"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("more than the results limit");
    assert!(stopped, "{c:#}");
    if notes.contains("the results share was full") {
        assert!(failure.contains("not ok 1 wrote"), "{failure}");
    }
    let results = r.dir.join("x86_64/pvl-on/base/results");
    let big = results.join("big");
    assert!(!big.exists() || std::fs::metadata(&big).unwrap().len() <= 64 << 20);
    let files = std::fs::read_dir(results.join("many")).map_or(0, |d| d.count());
    assert!(files <= 10_000, "{files} files kept");
    assert!(
        c["notes"].as_array().map_or(0, |n| n.len()) < 60,
        "notes are bounded: {c:#}"
    );
    assert!(processes_mentioning(&r.dir.to_string_lossy()).is_empty());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(&*r.dir.to_string_lossy()),
        "no quota mount left"
    );
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn a_stolen_ssh_port_is_retried_and_the_cell_still_passes() {
    // The port kmatrix hands QEMU first is one this test holds.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let runs = tempfile::tempdir().unwrap();
    let out = kmatrix()
        .args(["run", "--spec"])
        .arg(spec("drills-base.yaml"))
        .arg("--runs-dir")
        .arg(runs.path())
        .env("KMATRIX_SSH_PORT", port.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        out.status.code(),
        Some(0),
        "a port conflict is never a verdict"
    );
    assert!(
        stderr.contains(&format!("port {port} was taken")),
        "{stderr}"
    );
    drop(held);
}

#[test]
#[ignore = "boots a real kernel; run with --include-ignored"]
fn a_guest_handing_over_a_huge_lock_graph_is_cut_with_a_note_in_bounded_memory() {
    let runs = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut child = kmatrix()
        .args(["run", "--spec"])
        .arg(spec("drill-lockgraph.yaml"))
        .arg("--runs-dir")
        .arg(runs.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // kmatrix's own peak memory, from its status until it exits (VmHWM only grows).
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(s) = std::fs::read_to_string(&status) {
            if let Some(v) = s.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
                peak_kib = v
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(peak_kib);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let secs = start.elapsed().as_secs();
    let dir = std::fs::canonicalize(runs.path().join("latest")).unwrap();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let cell = |id: &str| {
        results["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id}: {results:#}"))
    };
    eprintln!(
        "drill_lockgraph: {secs} s, kmatrix peak RSS {} MiB",
        peak_kib >> 10
    );
    for id in ["x86_64/pvl-on/base", "x86_64/pvl-on/again"] {
        let c = cell(id);
        let t = &c["tests"][0];
        assert_eq!(
            t["ktap"]["cases"][0]["status"], "ok",
            "the drill mounted its graph: {t:#}"
        );
        assert!(
            c["notes"]
                .to_string()
                .contains("/proc/lockdep was larger than 32 MiB"),
            "{id}: {c:#}"
        );
        let kept = std::fs::metadata(dir.join(id).join("lockdep.txt"))
            .unwrap()
            .len();
        assert!(kept <= (32 << 20) + 4096, "{id}: {kept} bytes kept");
    }
    // The comparison ran on what was kept (the same kernel: everything is noise).
    let again = cell("x86_64/pvl-on/again");
    assert!(again["lock_graph"].is_object(), "{again:#}");
    assert!(
        peak_kib < 512 << 10,
        "kmatrix's peak RSS {} MiB with two 32 MiB lock graphs",
        peak_kib >> 10
    );
    assert!(secs < 900, "{secs} s");
    assert!(processes_mentioning(&dir.to_string_lossy()).is_empty());
}
