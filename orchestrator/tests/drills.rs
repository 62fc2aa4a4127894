//! Reliability drills with bad inputs and a hostile host: the real `kmatrix` binary, each
//! drill checking the exit code, a message that names the thing and what to do, the
//! results already collected, and that no QEMU, virtiofsd or make is left behind.
//!
//! Drills that need root (mounts) or a cached kernel are `#[ignore]`d like e2e_x86.rs;
//! run them all with `cargo test -p kmatrix --test drills -- --include-ignored`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn kmatrix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kmatrix"))
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ran(out: Output) -> Ran {
    let r = Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    // Shown when a drill fails, so the failure says what kmatrix printed.
    eprintln!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        r.code, r.stdout, r.stderr
    );
    r
}

/// Children kmatrix may start (by their process name) whose command line mentions
/// `needle`: what a drill must not find once kmatrix has exited.
fn leftovers(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if !(comm.starts_with("qemu-system") || comm == "virtiofsd" || comm == "make") {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

fn results_json(run_dir: &Path) -> Value {
    let text = std::fs::read_to_string(run_dir.join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Temp files an interrupted atomic write would leave (`.<name>.tmp<pid>`).
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.') && n.contains(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// A project that needs no kernel: `linux/` is a stand-in tree (a Makefile, which is all
/// the spec checks), so every drill on it fails before any real `make` could run.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(arch: &str, patchset: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("kconfigs")).unwrap();
        std::fs::write(p.join("kconfigs/guest.config"), "CONFIG_TTY=y\n").unwrap();
        std::fs::create_dir_all(p.join("linux")).unwrap();
        std::fs::write(p.join("linux/Makefile"), "# stand-in kernel tree\n").unwrap();
        // Needs context the stand-in Makefile does not have: PATCH-FAIL, fast.
        std::fs::write(
            p.join("conflict.patch"),
            "--- a/Makefile\n+++ b/Makefile\n@@ -1,2 +1,2 @@\n VERSION = 7\n-PATCHLEVEL = 2\n+PATCHLEVEL = 3\n",
        )
        .unwrap();
        let patches = if patchset == "base" {
            "[]"
        } else {
            "[conflict.patch]"
        };
        std::fs::write(
            p.join("kmatrix.yaml"),
            format!(
                "source: {{ path: linux }}\nfragments: [guest]\narches: [{arch}]\n\
                 configs: {{ on: [] }}\npatchsets: {{ {patchset}: {patches} }}\n"
            ),
        )
        .unwrap();
        Project { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    /// `kmatrix ARGS --spec <project> --runs-dir RUNS`, with a private cache.
    fn kmatrix(&self, args: &[&str], runs: &Path) -> Command {
        let mut c = kmatrix();
        c.args(args)
            .arg("--spec")
            .arg(self.path().join("kmatrix.yaml"))
            .arg("--runs-dir")
            .arg(runs)
            .env("KMATRIX_CACHE", self.path().join("cache"));
        c
    }
}

/// A folder of symlinks to every program on PATH except those `hide` rejects: the
/// host as it would be without a package installed.
fn path_without(hide: impl Fn(&str) -> bool) -> tempfile::TempDir {
    let shadow = tempfile::tempdir().unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name();
            let link = shadow.path().join(&name);
            if hide(&name.to_string_lossy()) || link.symlink_metadata().is_ok() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(e.path(), link);
        }
    }
    shadow
}

/// A mounted filesystem, unmounted when dropped (also when the drill fails).
struct Mount {
    dir: tempfile::TempDir,
    _image: Option<tempfile::TempDir>,
}

impl Mount {
    /// A small ext4 on a loop device (1 KiB blocks, no root reserve, so root fills it
    /// like anyone else); a size-limited tmpfs where loop devices are unavailable.
    fn small_disk() -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let image = tempfile::tempdir().unwrap();
        let file = image.path().join("disk.img");
        let ext4 = sh("truncate", &["-s", "8M", file.to_str().unwrap()])
            && sh(
                "mkfs.ext4",
                &["-q", "-b", "1024", "-m", "0", file.to_str().unwrap()],
            )
            && sh(
                "mount",
                &[
                    "-o",
                    "loop",
                    file.to_str().unwrap(),
                    dir.path().to_str().unwrap(),
                ],
            );
        if ext4 {
            return Mount {
                dir,
                _image: Some(image),
            };
        }
        eprintln!("drill: no loop device for ext4; using a 1 MiB tmpfs as the small disk");
        Mount::tmpfs("size=1M")
    }

    fn tmpfs(options: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().to_str().unwrap();
        assert!(sh(
            "mount",
            &["-t", "tmpfs", "-o", options, "tmpfs", target]
        ));
        Mount { dir, _image: None }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fill the filesystem with one file until the kernel says ENOSPC; returns it.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let p = self.path().join("filler");
        let mut f = std::fs::File::create(&p).unwrap();
        let chunk = vec![0u8; 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", p.display()),
            }
        }
        // Delayed allocation may only refuse at sync time; either way it is full now.
        let _ = f.sync_all();
        p
    }

    /// Free exactly one block of the filler: room for one new folder (ext4 needs a block
    /// for it; tmpfs needs none), none for a file in it.
    fn free_one_block(&self, filler: &Path) {
        let bs = nix::sys::statvfs::statvfs(self.path())
            .unwrap()
            .block_size();
        let len = std::fs::metadata(filler).unwrap().len();
        let blocks = len.div_ceil(bs);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(filler)
            .unwrap();
        f.set_len(blocks.saturating_sub(1) * bs).unwrap();
        f.sync_all().unwrap();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let p = self.dir.path().to_str().unwrap().to_owned();
        // A process still using it (a failing drill) must not leave the mount behind.
        if !sh("umount", &[&p]) {
            sh("umount", &["-l", &p]);
        }
    }
}

fn sh(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn drill_missing_cross_compiler_is_an_infra_error_naming_it_before_any_make() {
    let p = Project::new("arm64", "base");
    let path = path_without(|name| name.starts_with("aarch64-linux-gnu-"));
    let runs = p.path().join("runs");
    let start = Instant::now();
    let r = ran(p
        .kmatrix(&["build"], &runs)
        .env("PATH", path.path())
        .output()
        .unwrap());
    assert_eq!(r.code, 3, "infrastructure error exit code");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );

    let run_dir = std::fs::canonicalize(runs.join("latest")).unwrap();
    let cell = &results_json(&run_dir)["cells"][0];
    assert_eq!(cell["id"], "arm64/on/base");
    assert_eq!(cell["verdict"], "INFRA-ERROR", "{cell:#}");
    let reason = cell["reason"].as_str().unwrap();
    assert!(reason.contains("aarch64-linux-gnu-gcc"), "{reason}");
    assert!(
        reason.contains("gcc-aarch64-linux-gnu") && reason.contains("scripts/setup-host"),
        "says what to install: {reason}"
    );
    assert!(
        r.stderr.contains("aarch64-linux-gnu-gcc"),
        "shown while running"
    );
    // Found out before make: no build log was started for the cell.
    assert!(!run_dir.join("arm64-on-base/build.log").exists());
    assert!(leftovers(&p.path().to_string_lossy()).is_empty());
}

#[test]
#[ignore = "needs root (mounts a read-only tmpfs); run with --include-ignored"]
fn drill_read_only_results_folder_is_an_infra_error_before_any_work() {
    let p = Project::new("x86_64", "base");
    let ro = Mount::tmpfs("ro");
    let start = Instant::now();
    let r = ran(p.kmatrix(&["run"], ro.path()).output().unwrap());
    assert_eq!(r.code, 3, "infrastructure error exit code");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    // Names the folder it could not create, the reason and what to do.
    let first = r
        .stderr
        .lines()
        .find(|l| l.starts_with("kmatrix: error:"))
        .unwrap_or_default();
    assert!(first.contains(&*ro.path().to_string_lossy()), "{first}");
    assert!(first.contains("Read-only file system"), "{first}");
    assert!(first.contains("--runs-dir"), "says what to do: {first}");
    // Nothing started: no cell was prepared (the private cache was never created).
    assert!(!p.path().join("cache").exists());
    assert!(r.stdout.is_empty(), "no matrix for a run that never ran");
    assert!(leftovers(&p.path().to_string_lossy()).is_empty());
}

#[test]
#[ignore = "needs root (mounts a small loop-device ext4); run with --include-ignored"]
fn drill_disk_full_while_writing_results_names_the_file_and_keeps_what_was_written() {
    let p = Project::new("x86_64", "conflict");
    let disk = Mount::small_disk();
    let runs = disk.path().join("runs");

    // A finished run on the small disk: one PATCH-FAIL cell (a `run`, so that `run
    // --resume` below reuses it: a build-only result never stands for a run).
    let first = ran(p.kmatrix(&["run"], &runs).output().unwrap());
    assert_eq!(first.code, 1, "findings exit code");
    let first_dir = std::fs::canonicalize(runs.join("latest")).unwrap();
    let before = std::fs::read(first_dir.join("results.json")).unwrap();
    assert_eq!(
        results_json(&first_dir)["cells"][0]["verdict"],
        "PATCH-FAIL"
    );

    // 1. Disk full, re-rendering that run's outputs in place.
    let filler = disk.fill();
    let r = ran(kmatrix().arg("report").arg(&first_dir).output().unwrap());
    assert_eq!(r.code, 3, "infrastructure error exit code");
    let named = first_dir.join("results.json");
    assert!(
        r.stderr
            .contains(&format!("cannot write {}", named.display()))
            && r.stderr.contains("No space left on device"),
        "names the file and the reason"
    );
    assert_eq!(
        std::fs::read(first_dir.join("results.json")).unwrap(),
        before,
        "results.json replaced only whole, never truncated"
    );
    assert_eq!(temp_files(&first_dir), Vec::<String>::new());

    // 2. A run that gets its folder but cannot write a result into it: the resumed cell
    //    is shown, the run exits 3 naming the file, and nothing earlier is touched.
    disk.free_one_block(&filler);
    let r = ran(p.kmatrix(&["run", "--resume"], &runs).output().unwrap());
    assert_eq!(
        r.code, 3,
        "infrastructure error exit code, not PATCH-FAIL's 1"
    );
    let second_dir = std::fs::canonicalize(runs.join("latest")).unwrap();
    assert_ne!(second_dir, first_dir, "the resumed run has its own folder");
    let error = r
        .stderr
        .lines()
        .find(|l| l.starts_with("kmatrix: error:"))
        .unwrap_or_default();
    assert!(
        error.contains(&format!("cannot write {}/", second_dir.display()))
            && error.contains("No space left on device"),
        "{error}"
    );
    assert!(error.contains("--runs-dir"), "says what to do: {error}");
    assert!(
        r.stdout.contains("PATCH-FAIL"),
        "the matrix is still printed"
    );
    if second_dir.join("results.json").exists() {
        let v = results_json(&second_dir);
        assert_eq!(v["cells"][0]["verdict"], "PATCH-FAIL");
    }
    assert_eq!(temp_files(&second_dir), Vec::<String>::new());
    assert_eq!(
        std::fs::read(first_dir.join("results.json")).unwrap(),
        before
    );
    assert!(leftovers(&disk.path().to_string_lossy()).is_empty());
}

/// The real cache, resolved as kmatrix does, so a drill can change HOME and still find
/// the cached kernels.
fn real_cache() -> PathBuf {
    std::env::var_os("KMATRIX_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("kmatrix")))
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/kmatrix"))
}

#[test]
#[ignore = "needs the x86_64 base kernel (built on a cold cache); run with --include-ignored"]
fn drill_missing_virtiofsd_is_an_infra_error_with_the_install_hint() {
    let home = tempfile::tempdir().unwrap();
    let path = path_without(|name| name == "virtiofsd");
    let runs = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs/drills-base.yaml");
    let r = ran(kmatrix()
        .arg("run")
        .arg("--spec")
        .arg(&spec)
        .arg("--runs-dir")
        .arg(runs.path())
        .env("KMATRIX_CACHE", real_cache())
        .env("PATH", path.path())
        .env("HOME", home.path())
        .env("CARGO_HOME", home.path())
        .output()
        .unwrap());
    assert_eq!(r.code, 3, "infrastructure error exit code");
    let run_dir = std::fs::canonicalize(runs.path().join("latest")).unwrap();
    let cell = &results_json(&run_dir)["cells"][0];
    assert_eq!(cell["id"], "x86_64/pvl-on/base");
    assert_eq!(cell["verdict"], "INFRA-ERROR", "{cell:#}");
    let reason = cell["reason"].as_str().unwrap();
    assert!(
        reason.contains("virtiofsd not found")
            && reason.contains("cargo install virtiofsd")
            && reason.contains("scripts/setup-host"),
        "{reason}"
    );
    // Everything before the boot was kept: the kernel's config is in the cell folder.
    assert!(
        std::fs::read_to_string(run_dir.join("x86_64/pvl-on/base/config"))
            .unwrap()
            .contains("CONFIG_PER_VMA_LOCK=y")
    );
    assert!(
        !run_dir.join("x86_64/pvl-on/base/console.log").exists(),
        "no QEMU was started without its share"
    );
    assert!(leftovers(&run_dir.to_string_lossy()).is_empty());
}

#[test]
fn drill_a_git_source_that_asks_for_credentials_fails_at_once_instead_of_waiting() {
    // Issue #16: a git that prompts stopped on a tty in the background while holding the
    // cache lock; other runs waited forever. A server that demands credentials:
    let d = tempfile::tempdir().unwrap();
    let mut server = Command::new("python3")
        .args([
            "-c",
            r#"
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(401)
        self.send_header('WWW-Authenticate', 'Basic realm="x"')
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
print(s.server_port, flush=True)
s.serve_forever()
"#,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    std::fs::create_dir_all(d.path().join("kconfigs")).unwrap();
    std::fs::write(d.path().join("kconfigs/guest.config"), "").unwrap();
    let spec = d.path().join("kmatrix.yaml");
    std::fs::write(
        &spec,
        format!("source: {{ git: 'http://127.0.0.1:{port}/linux.git', rev: v7.3 }}\nfragments: [guest]\narches: [x86_64]\nconfigs: {{ c: [] }}\npatchsets: {{ base: [] }}\n"),
    )
    .unwrap();
    let start = Instant::now();
    let r = ran(kmatrix()
        .args(["build", "--spec"])
        .arg(&spec)
        .arg("--runs-dir")
        .arg(d.path().join("runs"))
        .env("KMATRIX_CACHE", d.path().join("cache"))
        .output()
        .unwrap());
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "waited {:?}",
        start.elapsed()
    );
    assert_eq!(r.code, 3, "infrastructure error");
    let results = results_json(&std::fs::canonicalize(d.path().join("runs/latest")).unwrap());
    let reason = results["cells"][0]["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains(&format!("127.0.0.1:{port}")) && reason.contains("clone"),
        "{reason}"
    );
}
