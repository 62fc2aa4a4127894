//! `kmatrix doctor` from the command line: on this host as it is, with QEMU taken off
//! PATH, and with a fake QEMU standing in for a KVM guest that fails or runs (so the
//! verdict and its cache are checked in seconds, whatever this host's KVM does).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Run doctor on the project's own spec; (exit code, stdout).
fn doctor(env: &[(&str, &std::ffi::OsStr)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmatrix"));
    cmd.args(["doctor", "--spec", "kmatrix.yaml"])
        .current_dir(repo());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

/// Every line but the last is a check with a status; the last is the summary.
fn check_lines(out: &str) -> Vec<&str> {
    let lines: Vec<&str> = out.lines().collect();
    let (last, checks) = lines.split_last().expect("doctor printed nothing");
    assert!(last.starts_with("kmatrix doctor: "), "summary last: {out}");
    for l in checks {
        assert!(
            l.starts_with("ok  ") || l.starts_with("warn") || l.starts_with("FAIL"),
            "a check line without a status: {l:?}"
        );
        if !l.starts_with("ok  ") {
            assert!(l.contains("; fix: "), "not ok but no fix: {l:?}");
        }
    }
    checks.to_vec()
}

fn line<'a>(checks: &[&'a str], name: &str) -> &'a str {
    checks
        .iter()
        .find(|l| {
            l.get(6..)
                .is_some_and(|r| r.starts_with(&format!("{name} ")))
        })
        .unwrap_or_else(|| panic!("no `{name}` line in {checks:#?}"))
}

fn kvm_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

#[test]
fn doctor_on_this_host_explains_kvm_and_every_line_has_a_status() {
    let (code, out) = doctor(&[]);
    let checks = check_lines(&out);
    let failed = checks.iter().any(|l| l.starts_with("FAIL"));
    assert_eq!(code, if failed { 1 } else { 0 }, "{out}");
    for name in [
        "spec",
        "host",
        "cores",
        "memory",
        "disk",
        "qemu x86_64",
        "qemu arm64",
        "virtiofsd",
        "compiler x86_64",
        "compiler arm64",
        "kernel build",
        "ccache",
        "apt arm64",
        "guest arm64",
        "source",
    ] {
        line(&checks, name);
    }
    // The KVM line says what /dev/kvm does here and what kmatrix does about it.
    let kvm = line(&checks, "kvm");
    assert!(kvm.contains("/dev/kvm"), "{kvm}");
    assert!(
        kvm.contains("kmatrix uses TCG")
            || kvm.contains("falls back to TCG")
            || kvm.contains("/dev/kvm runs guests"),
        "{kvm}"
    );
}

/// A folder of links to everything on PATH except QEMU.
fn path_without_qemu(dir: &Path) -> std::ffi::OsString {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = std::env::var_os("PATH").unwrap();
    for d in std::env::split_paths(&path) {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with("qemu-system-") {
                continue;
            }
            let _ = std::os::unix::fs::symlink(e.path(), bin.join(&name));
        }
    }
    bin.into_os_string()
}

#[test]
fn doctor_without_qemu_fails_naming_the_package() {
    let d = tempfile::tempdir().unwrap();
    let path = path_without_qemu(d.path());
    let cache = d.path().join("cache");
    let (code, out) = doctor(&[("PATH", &path), ("KMATRIX_CACHE", cache.as_os_str())]);
    let checks = check_lines(&out);
    assert_eq!(code, 1, "{out}");
    let q = line(&checks, "qemu x86_64");
    assert!(q.starts_with("FAIL"), "{q}");
    assert!(q.contains("qemu-system-x86_64 not on PATH"), "{q}");
    assert!(
        q.contains("apt-get install -t bookworm-backports qemu-system-x86"),
        "{q}"
    );
    let a = line(&checks, "qemu arm64");
    assert!(
        a.starts_with("FAIL") && a.contains("qemu-system-arm"),
        "{a}"
    );
    let kvm = line(&checks, "kvm");
    assert!(!kvm.starts_with("ok"), "{kvm}");
    assert!(kvm.contains("qemu-system-x86"), "{kvm}");
    assert!(out.contains("kmatrix doctor: not ready"), "{out}");
}

/// A cache holding one finished x86_64 kernel, and a fake `qemu-system-x86_64` first on
/// PATH that logs each boot to `boots` and then runs `boot` (shell).
fn fake_host(dir: &Path, boot: &str) -> (std::ffi::OsString, PathBuf) {
    let cache = dir.join("cache");
    let k = cache.join("kernels/0123");
    std::fs::create_dir_all(&k).unwrap();
    std::fs::write(k.join("image"), b"not really a kernel").unwrap();
    std::fs::write(k.join("config"), "CONFIG_64BIT=y\nCONFIG_X86_64=y\n").unwrap();
    std::fs::write(k.join(".complete"), b"").unwrap();
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let qemu = bin.join("qemu-system-x86_64");
    std::fs::write(
        &qemu,
        format!(
            "#!/bin/sh\n\
             case \"$1\" in --version) echo 'QEMU emulator version 10.0.2 (fake)'; exit 0;; -L) exit 0;; esac\n\
             echo boot >> '{boots}'\n\
             for a in \"$@\"; do case \"$a\" in socket,id=con0,*) sock=${{a#*path=}}; sock=${{sock%%,*}};; esac; done\n\
             {boot}\n",
            boots = dir.join("boots").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut path = bin.into_os_string();
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap());
    (path, cache)
}

fn boots(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("boots"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn doctor_boots_a_cached_kernel_under_kvm_and_caches_a_failure() {
    if !kvm_opens() {
        eprintln!("skipped: /dev/kvm does not open here, so doctor never boots under KVM");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // Like QEMU on a host whose KVM cannot run the guest: an error, then it hangs.
    let (path, cache) = fake_host(
        d.path(),
        "echo 'KVM internal error. Suberror: 1' >&2\nexec sleep 60",
    );
    let env = [
        ("PATH", path.as_os_str()),
        ("KMATRIX_CACHE", cache.as_os_str()),
    ];
    let (_, out) = doctor(&env);
    let kvm = line(&check_lines(&out), "kvm").to_string();
    assert!(kvm.starts_with("warn"), "{kvm}");
    assert!(
        kvm.contains("/dev/kvm opens but guests fail under it: KVM internal error. Suberror: 1; kmatrix uses TCG"),
        "{kvm}"
    );
    assert!(kvm.contains("checked just now by booting"), "{kvm}");
    assert_eq!(boots(d.path()), 1);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("kvm-verdict.json")).unwrap()).unwrap();
    assert_eq!(v["works"], false);
    assert!(v["fingerprint"].as_str().unwrap().contains("(fake)"), "{v}");

    // The second run uses the verdict: no boot.
    let (_, out) = doctor(&env);
    let kvm = line(&check_lines(&out), "kvm").to_string();
    assert!(
        kvm.contains("guests fail under it: KVM internal error"),
        "{kvm}"
    );
    assert!(kvm.contains("cached verdict from just now"), "{kvm}");
    assert_eq!(boots(d.path()), 1, "the cached verdict was not used");
}

#[test]
fn doctor_reports_kvm_working_when_the_kernel_prints() {
    if !kvm_opens() {
        eprintln!("skipped: /dev/kvm does not open here, so doctor never boots under KVM");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // A guest that prints on its console: what a kernel under a working KVM does.
    let (path, cache) = fake_host(
        d.path(),
        // Like QEMU's console socket (server, waits for kmatrix): the kernel reaches init.
        "exec python3 -c 'import socket,sys,time\ns=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)\nc,_=s.accept(); c.sendall(b\"Linux version 7.3.4 (fake)\\r\\nRun /init as init process\\r\\n\"); time.sleep(60)' \"$sock\"",
    );
    let (_, out) = doctor(&[("PATH", &path), ("KMATRIX_CACHE", cache.as_os_str())]);
    let kvm = line(&check_lines(&out), "kvm").to_string();
    assert!(kvm.starts_with("ok"), "{kvm}");
    assert!(kvm.contains("/dev/kvm runs guests"), "{kvm}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("kvm-verdict.json")).unwrap()).unwrap();
    assert_eq!(v["works"], true);
}

#[test]
fn doctor_never_takes_a_stolen_ssh_port_for_a_kvm_failure() {
    if !kvm_opens() {
        eprintln!("skipped: /dev/kvm does not open here, so doctor never boots under KVM");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // QEMU's own words when another process holds the forward's port.
    let (path, cache) = fake_host(
        d.path(),
        "echo \"qemu-system-x86_64: -netdev user: Could not set up host forwarding rule 'tcp:127.0.0.1:1-:22'\" >&2\nexit 1",
    );
    let (_, out) = doctor(&[("PATH", &path), ("KMATRIX_CACHE", cache.as_os_str())]);
    let kvm = line(&check_lines(&out), "kvm").to_string();
    assert!(kvm.starts_with("warn"), "{kvm}");
    assert!(!kvm.contains("guests fail under it"), "{kvm}");
    assert!(kvm.contains("took the SSH forward's port"), "{kvm}");
    assert_eq!(boots(d.path()), 3, "retried with a new port each time");
    assert!(
        !cache.join("kvm-verdict.json").exists(),
        "no verdict stored"
    );
}
