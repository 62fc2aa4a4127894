//! `kmatrix b4-check` against b4's own code (b4 from PyPI, pinned, in the venv
//! scripts/setup-host makes): a scratch kernel-like git tree, fixture series mailed out
//! with `git format-patch`, taken into b4 review branches by b4, and the series check b4
//! runs from git config (`b4.review-series-check-cmd = kmatrix b4-check`), read back
//! through b4's check cache and rendered as b4's results screen renders it.
//!
//! The tree is cheap on purpose: its Makefile does what kmatrix's build asks (configs,
//! then `bzImage`, which compiles `lib/*.c` and then stops, since it is not a kernel), so
//! each cell ends at its build in seconds and no VM is started. What b4 must show:
//! a series that breaks the compile fails with the compiler's error; a series whose
//! cells fail exactly as the base does is a warning, not the series' fault. A passing
//! series needs a real kernel: `b4_check_on_a_real_kernel_passes_v3_and_fails_v2`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kmatrix under test: this build's, or `KMATRIX_BIN` (a copy, so that a long real
/// run is not changed under it by a rebuild).
fn kmatrix() -> PathBuf {
    std::env::var_os("KMATRIX_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_kmatrix").into())
}

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `KMATRIX_B4_PYTHON`, else the venv scripts/setup-host makes.
fn b4_python() -> PathBuf {
    let p: PathBuf = std::env::var_os("KMATRIX_B4_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| "/opt/kmatrix/b4/bin/python".into());
    assert!(
        p.is_file(),
        "{} not found: `bash scripts/setup-host` installs b4 there",
        p.display()
    );
    p
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        // The same commits (ids) every time.
        .env("GIT_AUTHOR_DATE", "2026-12-01T12:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-12-01T12:00:00Z")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const MAKEFILE: &str = "\
# A kernel-like tree for kmatrix's b4-check test: the targets kmatrix's build calls.
# Its \"build\" compiles lib/*.c (so a series can break it), then stops: it is not a
# kernel, and nothing of it is ever booted.
tinyconfig:
\t@mkdir -p $(O) && echo '# fixture' > $(O)/.config
olddefconfig prepare modules:
\t@true
bzImage:
\t@for f in $(CURDIR)/lib/*.c; do $(CC) -fsyntax-only $$f || exit 1; done
\t@echo 'fixture: error: a kernel-like test tree, not a kernel' >&2; exit 1
";

/// The scratch tree, with its own kmatrix.yaml (the spec b4-check finds first): one
/// x86_64 cell per patchset.
fn tree(dir: &Path, kmatrix: &Path) -> (PathBuf, String) {
    let t = dir.join("linux");
    std::fs::create_dir_all(t.join("lib")).unwrap();
    std::fs::create_dir_all(t.join("Documentation")).unwrap();
    std::fs::write(t.join("Makefile"), MAKEFILE).unwrap();
    std::fs::write(
        t.join("lib/fixture.c"),
        "int fixture_count(int a)\n{\n\treturn a + 1;\n}\n",
    )
    .unwrap();
    std::fs::write(t.join("Documentation/fixture.rst"), "Fixture\n=======\n").unwrap();
    let p = project();
    std::fs::write(
        t.join("kmatrix.yaml"),
        format!(
            "# kmatrix's matrix for this tree\nsource: {{ path: . }}\nkconfigs: {}\nguest-tests: {}\nfragments: [guest]\narches: [x86_64]\nconfigs: {{ pvl-on: [pvl-on] }}\npatchsets: {{ base: [] }}\ntests:\n  - {{ name: faults_vs_writers, duration: 5s, timeout: 2m }}\nselftests: []\n",
            p.join("kconfigs").display(),
            p.join("guest-tests").display()
        ),
    )
    .unwrap();
    std::fs::write(t.join(".gitignore"), "/runs/\n").unwrap();
    git(&t, &["init", "-q", "-b", "master"]);
    for (k, v) in [
        ("user.name", "Fixture Maintainer"),
        ("user.email", "maintainer@example.org"),
        ("b4.midmask", "https://example.org/r/%s"),
        ("b4.linkmask", "https://example.org/r/%s"),
    ] {
        git(&t, &["config", k, v]);
    }
    // What a maintainer puts in git config (docs/b4.md).
    git(
        &t,
        &[
            "config",
            "b4.review-series-check-cmd",
            &format!("{} b4-check", kmatrix.display()),
        ],
    );
    git(&t, &["add", "-A"]);
    git(&t, &["commit", "-q", "-m", "fixture: the base"]);
    let base = git(&t, &["rev-parse", "HEAD"]);
    (t, base)
}

/// A series as its author mails it: commits on a branch, `git format-patch` with a cover
/// letter that carries b4's change-id, one mbox.
fn mbox(t: &Path, base: &str, name: &str, patches: &[(&str, &str, &str)]) -> PathBuf {
    git(t, &["checkout", "-q", "-b", name, base]);
    for (file, content, subject) in patches {
        std::fs::write(t.join(file), content).unwrap();
        git(t, &["commit", "-q", "-am", subject]);
    }
    let out = t.join("..").join(format!("{name}-patches"));
    git(
        t,
        &[
            "format-patch",
            "-q",
            "--cover-letter",
            "--thread",
            &format!("--base={base}"),
            "-o",
            &out.to_string_lossy(),
            &format!("{base}..{name}"),
        ],
    );
    git(t, &["checkout", "-q", "master"]);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut text = String::new();
    for f in files {
        let mut m = std::fs::read_to_string(f).unwrap();
        m = m.replace(
            "*** SUBJECT HERE ***",
            &format!("fixture: the {name} series"),
        );
        m = m.replace(
            "*** BLURB HERE ***",
            &format!("A fixture series.\n\nchange-id: 20261201-{name}-0123456789ab"),
        );
        text.push_str(&m);
    }
    let path = t.join("..").join(format!("{name}.mbox"));
    std::fs::write(&path, text).unwrap();
    path
}

/// b4 takes the series into a review branch and runs its series checks.
fn b4_check(t: &Path, mbox: &Path, base: &str, env: &[(&str, &Path)]) -> Value {
    let mut cmd = Command::new(b4_python());
    cmd.arg(project().join("orchestrator/tests/data/b4/check.py"))
        .arg(t)
        .arg(mbox)
        .arg(base)
        .env("XDG_DATA_HOME", t.join("../xdg-data"))
        .env("XDG_CACHE_HOME", t.join("../xdg-cache"))
        .env("HOME", t.join(".."));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check.py failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check.py printed no JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn only_result(v: &Value) -> &Value {
    let cached = v["cached"].as_array().unwrap();
    assert_eq!(cached.len(), 1, "{v:#}");
    assert_eq!(
        v["results"], v["cached"],
        "b4's cache gave back what it stored"
    );
    &cached[0]
}

#[test]
#[ignore = "needs b4 (scripts/setup-host installs it); run with --include-ignored"]
fn b4_runs_kmatrix_as_its_series_check_and_reads_fail_and_warn_back() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let (t, base) = tree(d.path(), &kmatrix());
    let env: &[(&str, &Path)] = &[("KMATRIX_CACHE", &cache)];

    // A series whose second patch breaks the compile.
    let broken = mbox(
        &t,
        &base,
        "broken",
        &[
            (
                "lib/fixture.c",
                "/* Count one more. */\nint fixture_count(int a)\n{\n\treturn a + 1;\n}\n",
                "lib: say what fixture_count does",
            ),
            (
                "lib/fixture.c",
                "/* Count one more. */\nint fixture_count(int a)\n{\n\treturn a + 1\n}\n",
                "lib: drop a semicolon",
            ),
        ],
    );
    let v = b4_check(&t, &broken, &base, env);
    assert_eq!(
        v["series_cmds"][0],
        format!("{} b4-check", kmatrix().display())
    );
    assert_eq!(v["tracking_base"], base);
    let r = only_result(&v);
    assert_eq!(r["tool"], "kmatrix", "{r:#}");
    assert_eq!(r["status"], "fail", "{r:#}");
    let summary = r["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("BUILD-FAIL x86_64/pvl-on/series: lib/fixture.c:")
            && summary.contains("error: expected "),
        "{summary}"
    );
    let url = r["url"].as_str().unwrap();
    let report = url.strip_prefix("file://").expect(url);
    assert!(
        report.ends_with("/report.html") && Path::new(report).is_file(),
        "{url}"
    );
    // The run went where `kmatrix run` puts it (next to the spec), in a b4 folder.
    assert!(
        report.starts_with(&*t.join("runs/b4-").to_string_lossy()),
        "{url}"
    );
    let details: Vec<Value> = serde_json::from_str(r["details"].as_str().unwrap()).unwrap();
    let cells: Vec<(&str, &str, &str)> = details
        .iter()
        .map(|c| {
            (
                c["context"].as_str().unwrap(),
                c["state"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        cells,
        [
            ("x86_64/pvl-on/base", "BUILD-FAIL", "warn"),
            ("x86_64/pvl-on/series", "BUILD-FAIL", "fail")
        ]
    );
    // b4's results screen lists each cell with its verdict and why.
    let shown = v["rendered"][0].as_str().unwrap();
    assert!(
        shown.contains("BUILD-FAIL  x86_64/pvl-on/base — the base commit itself: fixture: error: a kernel-like test tree, not a kernel"),
        "{shown}"
    );
    assert!(
        shown.contains("BUILD-FAIL  x86_64/pvl-on/series — lib/fixture.c:"),
        "{shown}"
    );
    // The series kmatrix ran is the review branch's two patches (not b4's tracking
    // commit), on the base.
    let run = Path::new(report).parent().unwrap();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let series = results["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "x86_64/pvl-on/series")
        .unwrap();
    assert_eq!(
        series["subjects"],
        serde_json::json!(["lib: say what fixture_count does", "lib: drop a semicolon"])
    );

    // A series that changes no compiled file: its cell fails exactly as the base does,
    // which says nothing about the series.
    let docs = mbox(
        &t,
        &base,
        "docs",
        &[(
            "Documentation/fixture.rst",
            "Fixture\n=======\n\nWhat the fixture is.\n",
            "Documentation: say what the fixture is",
        )],
    );
    let v = b4_check(&t, &docs, &base, env);
    let r = only_result(&v);
    assert_eq!(r["status"], "warn", "{r:#}");
    assert!(
        r["summary"]
            .as_str()
            .unwrap()
            .contains("BUILD-FAIL x86_64/pvl-on/series: fixture: error: a kernel-like test tree, not a kernel (as its base commit does)"),
        "{r:#}"
    );
}

#[test]
fn without_b4s_tracking_file_the_answer_says_what_is_missing() {
    let out = Command::new(kmatrix())
        .arg("b4-check")
        .env_remove("B4_TRACKING_FILE")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["tool"], "kmatrix");
    assert_eq!(v[0]["status"], "warn");
    assert!(
        v[0]["summary"]
            .as_str()
            .unwrap()
            .contains("no B4_TRACKING_FILE"),
        "{v}"
    );
    assert_eq!(out.status.code(), Some(2));
}

/// The unpacked Debian source in kmatrix's cache (`kmatrix run` puts it there).
fn cached_kernel_source() -> Option<PathBuf> {
    let cache = std::env::var_os("KMATRIX_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|x| Path::new(&x).join("kmatrix")))
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap()).join(".cache/kmatrix"));
    std::fs::read_dir(cache.join("src"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with("linux-source-7.3") && !n.contains('@') && p.join("Makefile").is_file()
        })
}

/// A real series as its author mails it: `git am` of the project's patch files on a
/// branch, then `git format-patch` with b4's change-id in the cover letter.
fn real_mbox(t: &Path, base: &str, name: &str, patches: &Path) -> PathBuf {
    git(t, &["checkout", "-q", "-b", name, base]);
    let mut files: Vec<PathBuf> = std::fs::read_dir(patches)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .collect();
    files.sort();
    let mut args = vec!["am", "-q"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    git(t, &args);
    let out = t.join("..").join(format!("{name}-patches"));
    git(
        t,
        &[
            "format-patch",
            "-q",
            "--cover-letter",
            "--thread",
            &format!("--base={base}"),
            "-o",
            &out.to_string_lossy(),
            &format!("{base}..{name}"),
        ],
    );
    git(t, &["checkout", "-q", "master"]);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut text = String::new();
    for f in files {
        let m = std::fs::read_to_string(f).unwrap();
        text.push_str(
            &m.replace("*** SUBJECT HERE ***", &format!("the seed series {name}"))
                .replace(
                    "*** BLURB HERE ***",
                    &format!("The seed series.\n\nchange-id: 20261201-seed-{name}"),
                ),
        );
    }
    let path = t.join("..").join(format!("{name}.mbox"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
#[ignore = "builds and boots real kernels; run with --include-ignored and KMATRIX_SLOW_TESTS=1"]
fn b4_check_on_a_real_kernel_passes_v3_and_fails_v2() {
    if std::env::var("KMATRIX_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED: set KMATRIX_SLOW_TESTS=1 to run this test (two kernels of a git copy of \
             the 7.3 tree, built and booted under TCG: about 20 minutes cold, 6 cached)"
        );
        return;
    }
    let Some(src) = cached_kernel_source() else {
        panic!(
            "no unpacked linux-source-7.3 in kmatrix's cache: run `kmatrix plan` and a build first"
        );
    };
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("linux");
    // The cache's name is a link to the published generation: copy what it points to.
    let src = std::fs::canonicalize(&src).unwrap();
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&t)
        .status()
        .unwrap();
    assert!(cp.success());
    // Debian's linux-source ends its .gitignore with `/*` (its packaging repository
    // tracks only debian/): as in an upstream tree, the source is tracked.
    let ignore = t.join(".gitignore");
    let text = std::fs::read_to_string(&ignore).unwrap();
    let upstream = text
        .split("\n# Debian packaging")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&ignore, upstream).unwrap();
    std::fs::remove_file(t.join(".kmatrix-complete")).ok();
    git(&t, &["init", "-q", "-b", "master"]);
    for (k, v) in [
        ("user.name", "Seed Maintainer"),
        ("user.email", "maintainer@example.org"),
        ("b4.linkmask", "https://example.org/r/%s"),
    ] {
        git(&t, &["config", k, v]);
    }
    // The project's own matrix, the series' pvl-on cell only: one kernel per series.
    git(
        &t,
        &[
            "config",
            "b4.review-series-check-cmd",
            &format!(
                "{} b4-check --spec {} --only x86_64/pvl-on/series --runs-dir {}",
                kmatrix().display(),
                project().join("kmatrix.yaml").display(),
                d.path().join("runs").display()
            ),
        ],
    );
    git(&t, &["add", "-A"]);
    git(
        &t,
        &[
            "commit",
            "-q",
            "-m",
            "linux 7.3.4 (Debian's linux-source-7.3)",
        ],
    );
    let base = git(&t, &["rev-parse", "HEAD"]);
    let mut seen = Vec::new();
    for (name, want) in [("v3", "pass"), ("v2", "fail")] {
        let mbox = real_mbox(&t, &base, name, &project().join("patches").join(name));
        let v = b4_check(&t, &mbox, &base, &[]);
        eprintln!("{name}: {:#}", v["cached"]);
        let r = only_result(&v);
        assert_eq!(r["status"], want, "{name}: {r:#}");
        let details: Vec<Value> = serde_json::from_str(r["details"].as_str().unwrap()).unwrap();
        assert_eq!(details.len(), 1, "{details:?}");
        assert_eq!(details[0]["context"], "x86_64/pvl-on/series");
        seen.push((name, r["summary"].as_str().unwrap().to_string()));
    }
    assert_eq!(seen[0].1, "1 cell(s) passed: x86_64/pvl-on/series");
    assert!(
        seen[1].1.starts_with("FAIL x86_64/pvl-on/series: BUG: unable to handle kernel NULL pointer dereference in vma_start_read_unlocked"),
        "{}",
        seen[1].1
    );
}
