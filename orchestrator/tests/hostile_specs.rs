//! Hostile specs and series (issue #30): a matrix that grows as a product, a `series`
//! file that is a FIFO or a device or names files outside its folder, times and sizes
//! no machine has. Each is a clear error (exit 2) naming the file, the line and the key,
//! in time and in bounded memory, before anything is built.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

/// `kmatrix ARGS` in `dir` with a deadline: (exit code, stderr).
fn kmatrix(dir: &Path, args: &[&str]) -> (i32, String) {
    let err = dir.join(".stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
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
    let stderr = std::fs::read_to_string(err).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (status.code().unwrap_or(-1), stderr)
}

fn project(spec: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for dir in ["kconfigs", "guest-tests", "p1"] {
        std::fs::create_dir_all(d.path().join(dir)).unwrap();
    }
    std::fs::write(d.path().join("kconfigs/guest.config"), "CONFIG_TTY=y\n").unwrap();
    std::fs::write(d.path().join("guest-tests/t.c"), "").unwrap();
    std::fs::write(d.path().join("p1/0001-ok.patch"), "Subject: [PATCH] ok\n").unwrap();
    std::fs::write(d.path().join("p1/series"), "0001-ok.patch\n").unwrap();
    std::fs::write(d.path().join("kmatrix.yaml"), spec).unwrap();
    d
}

const SPEC: &str = "\
source: { debian-package: linux-source-7.3 }
fragments: [guest]
arches: [x86_64]
configs: { on: [] }
patchsets:
  base: []
  v1: [p1]
tests:
  - name: t
    duration: 20s
    timeout: 2m
";

fn refused(code: i32, err: &str, wants: &[&str]) {
    assert_eq!(code, 2, "{err}");
    for w in wants {
        assert!(err.contains(w), "expected `{w}` in: {err}");
    }
}

#[test]
fn a_matrix_of_too_many_cells_is_refused_before_it_is_made() {
    // 2 x 100 x 100 = 20000 cells, each with 40 fragments: the plan used to be made
    // (and at 2 x 1000 x 1000, 2.4 GB of it).
    let mut spec =
        String::from("source: { debian-package: linux-source-7.3 }\nfragments: [guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest]\narches: [x86_64, arm64]\nconfigs:\n");
    for i in 0..100 {
        spec.push_str(&format!("  c{i}: [guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest, guest]\n"));
    }
    spec.push_str("patchsets:\n");
    for i in 0..100 {
        spec.push_str(&format!("  p{i}: []\n"));
    }
    let d = project(&spec);
    let (code, err) = kmatrix(d.path(), &["plan"]);
    refused(
        code,
        &err,
        &[
            "kmatrix.yaml:",
            "`patchsets`",
            "make 20000 cells: at most 4096",
        ],
    );

    // A config of more fragments than any matrix needs.
    let many = vec!["guest"; 65].join(", ");
    let d = project(&SPEC.replace(
        "configs: { on: [] }",
        &format!("configs: {{ on: [{many}] }}"),
    ));
    let (code, err) = kmatrix(d.path(), &["plan"]);
    refused(code, &err, &["`configs.on`", "65 fragments: at most 64"]);
}

#[test]
fn a_series_file_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let d = project(SPEC);
    let series = d.path().join("p1/series");
    std::fs::remove_file(&series).unwrap();
    nix::unistd::mkfifo(&series, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (code, err) = kmatrix(d.path(), &["plan"]);
    refused(
        code,
        &err,
        &["kmatrix.yaml:7: `patchsets.v1`", "p1/series", "is a FIFO"],
    );
    std::fs::remove_file(&series).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &series).unwrap();
    let (code, err) = kmatrix(d.path(), &["plan"]);
    refused(
        code,
        &err,
        &["`patchsets.v1`", "p1/series", "character device"],
    );
    // So is a spec that is a FIFO.
    let fifo = d.path().join("fifo.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (code, err) = kmatrix(d.path(), &["plan", "--spec", "fifo.yaml"]);
    refused(code, &err, &["fifo.yaml", "is a FIFO"]);
}

#[test]
fn series_entries_stay_inside_their_folder() {
    let d = project(SPEC);
    let secret = d.path().join("secret");
    std::fs::write(&secret, "root:$6$hash\n").unwrap();
    let series = d.path().join("p1/series");
    for (entry, why) in [
        ("../../../../etc/shadow", "is not a patch inside"),
        ("/etc/shadow", "is not a patch inside"),
        ("sub/../../secret", "is not a patch inside"),
    ] {
        std::fs::write(&series, format!("0001-ok.patch\n{entry}\n")).unwrap();
        let (code, err) = kmatrix(d.path(), &["plan"]);
        refused(code, &err, &["`patchsets.v1`", "p1/series:2", why]);
    }
    std::os::unix::fs::symlink(&secret, d.path().join("p1/0002-link.patch")).unwrap();
    std::fs::write(&series, "0001-ok.patch\n0002-link.patch\n").unwrap();
    let (code, err) = kmatrix(d.path(), &["plan"]);
    refused(code, &err, &["p1/series:2", "a link out of"]);
    // A patch under the cap, inside the folder, is fine.
    std::fs::write(&series, "0001-ok.patch\n").unwrap();
    let (code, err) = kmatrix(d.path(), &["plan"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn times_and_sizes_beyond_any_machine_name_their_key_and_line() {
    let max = u64::MAX.to_string();
    for (from, to, wants) in [
        (
            "timeout: 2m",
            format!("timeout: {max}"),
            vec![
                "kmatrix.yaml:11: `tests[0].timeout`",
                "longer than the 1day",
            ],
        ),
        (
            "duration: 20s",
            "duration: 100000h".to_string(),
            vec!["kmatrix.yaml:10: `tests[0].duration`", "100000h"],
        ),
        (
            "tests:",
            format!("vm: {{ boot-timeout: {max} }}\ntests:"),
            vec!["kmatrix.yaml:8: `vm.boot-timeout`"],
        ),
        (
            "tests:",
            "vm: { hung-task-timeout: 2h }\ntests:".to_string(),
            vec!["`vm.hung-task-timeout`", "1h"],
        ),
        (
            "tests:",
            "vm: { cpus: 100000 }\ntests:".to_string(),
            vec!["`vm.cpus`", "give 1 to 256"],
        ),
        (
            "tests:",
            "vm: { memory: 100000G }\ntests:".to_string(),
            vec!["`vm.memory`", "at most 1024G"],
        ),
        (
            "tests:",
            "jobs: 0\ntests:".to_string(),
            vec!["`jobs`", "give 1 to 1024"],
        ),
        (
            "tests:",
            format!("selftest-timeout: {max}\ntests:"),
            vec!["`selftest-timeout`"],
        ),
        (
            "tests:",
            "limits: { console: 100G }\ntests:".to_string(),
            vec!["`limits.console`", "at most 1024M"],
        ),
    ] {
        let d = project(&SPEC.replace(from, &to));
        let (code, err) = kmatrix(d.path(), &["plan"]);
        refused(code, &err, &wants);
    }
}

#[test]
fn a_giant_shard_is_a_usage_error() {
    let d = project(SPEC);
    let (code, err) = kmatrix(d.path(), &["plan", "--shard", "1/18446744073709551615"]);
    refused(code, &err, &["1/18446744073709551615", "from 1 to 4096"]);
}
