//! Failure paths of the VM runner with fake QEMU and virtiofsd programs: each must end
//! in the right verdict, with the child's own words, and leave no process behind.

use super::prepare::Prepared;
use super::run::CellRun;
use super::{Engine, Overrides, RunOptions, Stop};
use crate::host::cache::Cache;
use crate::prepare::build::Kernel;
use crate::prepare::image::Image;
use crate::record::plan::{AccelChoice, Arch, Cell, Limits, Plan, SourceSpec, VmSettings};
use crate::record::result::CellResult;
use crate::record::verdict::Verdict;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub(super) fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("#!/bin/sh\necho $$ >> {}/pids\n{body}\n", dir.display()),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Like virtiofsd: its socket and, beside it, `<socket>.pid`.
pub(super) const FAKE_VIRTIOFSD: &str = "for a; do case $a in --socket-path=*) touch \"${a#*=}\" \"${a#*=}.pid\";; esac; done\nexec sleep 600";

fn engine(dir: &Path, accel: AccelChoice, qemu: PathBuf) -> (Engine, Cell) {
    let cell = crate::record::plan::tests::cell(Arch::X86_64, "c", "p");
    let plan = Plan {
        spec_path: dir.join("kmatrix.yaml"),
        spec_hash: "test".into(),
        root: dir.into(),
        source: SourceSpec::Path(dir.into()),
        cells: vec![cell.clone()],
        tests: vec![],
        vm: VmSettings {
            accel,
            memory_mib: 256,
            cpus: 1,
            numa_nodes: 1,
            boot_timeout: Duration::from_secs(3),
            hung_task_timeout: Duration::from_secs(10),
        },
        limits: Limits::default(),
        harness: vec![],
        selftests: vec![],
        selftest_timeout: Duration::from_secs(60),
        baseline: None,
        known_issues: None,
        jobs: 1,
        subjects: Default::default(),
        ranges: vec![],
    };
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let (ctx, crx) = watch::channel(false);
    std::mem::forget(ctx);
    let e = Engine::new(
        plan,
        Cache {
            root: dir.join("cache"),
        },
        RunOptions::default(),
        dir.join("run"),
        tx,
        crx,
    )
    .with_overrides(Overrides {
        qemu: Some(qemu),
        virtiofsd: Some(script(dir, "virtiofsd", FAKE_VIRTIOFSD)),
    });
    (e, cell)
}

pub(super) fn dummies(dir: &Path) -> Prepared {
    Prepared {
        kernel: Kernel {
            image: dir.join("bzImage"),
            vmlinux: dir.join("vmlinux"),
            config: dir.join("config"),
            log: dir.join("build.log"),
            key: "k".into(),
            cached: true,
            modules: vec![],
        },
        image: Image {
            initramfs: dir.join("initramfs"),
            host_key: "AAAA".into(),
            client_key: dir.join("key"),
            client_pub: dir.join("key.pub"),
            tests: vec![],
        },
        selftests: Default::default(),
    }
}

pub(super) fn all_dead(dir: &Path) {
    let pids = std::fs::read_to_string(dir.join("pids")).unwrap_or_default();
    for pid in pids.lines() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "process {pid} left running: {stat}"
        );
    }
}

async fn boot(e: &Engine, cell: &Cell, dir: &Path) -> (Result<(), Stop>, CellResult) {
    let p = dummies(dir);
    let mut run = CellRun::new(&e.shared, cell);
    std::fs::create_dir_all(&run.dir).unwrap();
    let out = run.boot_and_test(&p).await;
    (out, run.result)
}

#[tokio::test]
async fn qemu_that_exits_at_once_is_boot_fail_with_its_own_words() {
    let d = tempfile::tempdir().unwrap();
    let q = script(
        d.path(),
        "qemu",
        "echo 'qemu: could not load kernel image' >&2\nexit 1",
    );
    let (e, cell) = engine(d.path(), AccelChoice::Tcg, q);
    let (out, r) = boot(&e, &cell, d.path()).await;
    let Err(stop) = out else { panic!("booted?") };
    assert_eq!(stop.verdict, Verdict::BootFail);
    assert!(stop.reason.contains("QEMU exited"), "{}", stop.reason);
    assert!(
        stop.details
            .iter()
            .any(|l| l.contains("could not load kernel image")),
        "{:?}",
        stop.details
    );
    assert_eq!(r.accel, Some(crate::record::plan::Accel::Tcg));
    all_dead(d.path());
}

#[tokio::test]
async fn kvm_internal_error_falls_back_to_tcg_says_so_and_the_run_remembers() {
    let d = tempfile::tempdir().unwrap();
    let q = script(
        d.path(),
        "qemu",
        &format!("case \"$*\" in *'-accel kvm'*) echo kvm >> {}/attempts; echo 'KVM internal error. Suberror: 1' >&2; exec sleep 600;; esac\n\
         echo 'tcg boot failed for the test' >&2\nexit 1", d.path().display()),
    );
    let (e, cell) = engine(d.path(), AccelChoice::Auto, q);
    if crate::vm::initial_accel(AccelChoice::Auto, Arch::X86_64) != crate::record::plan::Accel::Kvm
    {
        return; // no /dev/kvm on this host: nothing to fall back from
    }
    let (out, r) = boot(&e, &cell, d.path()).await;
    assert!(matches!(
        out,
        Err(Stop {
            verdict: Verdict::BootFail,
            ..
        })
    ));
    assert_eq!(r.accel, Some(crate::record::plan::Accel::Tcg));
    let note = r.accel_note.unwrap();
    assert!(
        note.contains("KVM internal error") && note.contains("fell back to TCG"),
        "{note}"
    );
    // A later boot of the same run does not try KVM again (issue #14: 20 s per boot).
    let (_, r2) = boot(&e, &cell, d.path()).await;
    assert_eq!(r2.accel, Some(crate::record::plan::Accel::Tcg));
    assert!(r2.accel_note.unwrap().contains("without a new attempt"));
    let attempts = std::fs::read_to_string(d.path().join("attempts")).unwrap();
    assert_eq!(attempts.lines().count(), 1, "one KVM attempt in the run");
    all_dead(d.path());
}

#[tokio::test]
async fn silent_guest_is_boot_fail_after_the_boot_timeout_and_qemu_is_killed() {
    let d = tempfile::tempdir().unwrap();
    let q = script(d.path(), "qemu", "trap '' TERM\nexec sleep 600");
    let (e, cell) = engine(d.path(), AccelChoice::Tcg, q);
    let start = Instant::now();
    let (out, result) = boot(&e, &cell, d.path()).await;
    let Err(stop) = out else { panic!("booted?") };
    assert_eq!(stop.verdict, Verdict::BootFail);
    assert!(
        stop.reason.contains("SSH did not answer within 3s"),
        "{}",
        stop.reason
    );
    assert!(start.elapsed() < Duration::from_secs(30));
    all_dead(d.path());
    // The share daemons' sockets and pid files went with them.
    let left: Vec<String> = std::fs::read_dir(&result.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".sock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_stolen_ssh_port_is_retried_never_a_boot_verdict() {
    let d = tempfile::tempdir().unwrap();
    // The first start loses its port, the second is silent (a boot timeout).
    let q = script(
        d.path(),
        "qemu",
        &format!("if [ ! -e {0}/once ]; then touch {0}/once; echo \"qemu: -netdev user: Could not set up host forwarding rule 'tcp:127.0.0.1:1-:22'\" >&2; exit 1; fi\nexec sleep 600", d.path().display()),
    );
    let (e, cell) = engine(d.path(), AccelChoice::Tcg, q);
    let (out, _) = boot(&e, &cell, d.path()).await;
    let Err(stop) = out else { panic!("booted?") };
    assert!(
        stop.reason.contains("SSH did not answer"),
        "retried, then judged on its own: {}",
        stop.reason
    );
    all_dead(d.path());
}

#[tokio::test]
async fn virtiofsd_that_dies_is_an_infra_error_with_its_words() {
    let d = tempfile::tempdir().unwrap();
    let q = script(d.path(), "qemu", "exec sleep 600");
    let (e, cell) = engine(d.path(), AccelChoice::Tcg, q);
    let e = e.with_overrides(Overrides {
        qemu: Some(d.path().join("qemu")),
        virtiofsd: Some(script(
            d.path(),
            "virtiofsd-bad",
            "echo 'Error: no permission to open shared dir' >&2\nexit 1",
        )),
    });
    let (out, _) = boot(&e, &cell, d.path()).await;
    let Err(stop) = out else { panic!("booted?") };
    assert_eq!(stop.verdict, Verdict::InfraError);
    assert!(
        stop.reason.contains("no permission to open shared dir"),
        "{}",
        stop.reason
    );
    all_dead(d.path());
}
