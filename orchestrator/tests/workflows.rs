//! The CI definitions: the GitHub workflows pass zizmor (the GitHub Actions security
//! linter, run offline; scripts/setup-host installs it) with no findings, and every CI
//! definition (GitHub and the GitLab example) uploads only kmatrix's own result files,
//! never a whole run folder with guest-written files and symlinks in it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `KMATRIX_ZIZMOR`, else `zizmor` on PATH, else where scripts/setup-host puts it.
fn zizmor() -> PathBuf {
    if let Some(z) = std::env::var_os("KMATRIX_ZIZMOR") {
        return z.into();
    }
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("zizmor"))
            .find(|z| z.is_file())
    });
    let z = on_path.unwrap_or_else(|| "/opt/kmatrix/zizmor/bin/zizmor".into());
    assert!(
        z.is_file(),
        "zizmor not found (PATH, /opt/kmatrix/zizmor): `bash scripts/setup-host` installs it"
    );
    z
}

#[test]
#[ignore = "needs zizmor (scripts/setup-host installs it); run with --include-ignored"]
fn github_workflows_have_no_zizmor_findings() {
    let dir = repo().join(".github/workflows");
    // No config and no ignore comments: nothing can switch an audit off.
    let out = Command::new(zizmor())
        .args([
            "--offline",
            "--no-config",
            "--no-ignores",
            "--color",
            "never",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "zizmor found problems ({}):\n{text}",
        out.status
    );
    assert!(text.contains("No findings to report"), "{text}");
    // It did audit the workflows (an empty folder also has no findings).
    assert!(
        text.contains("completed") && text.contains("nightly.yml"),
        "{text}"
    );
}

/// A path an artifact may hold: one of kmatrix's own result files, at the top of a run
/// folder or in a cell folder (`*/*/*` for the cell's `<arch>/<config>/<patchset>`),
/// never a folder or a guest's files.
fn allowed_upload(path: &str) -> bool {
    const RUN_FILES: &[&str] = &[
        "results.json",
        "junit.xml",
        "summary.md",
        "report.html",
        "matrix.txt",
        // `kmatrix compare`'s result and the known-issues list the run was judged with.
        "compare.json",
        "known-issues.yaml",
        // `kmatrix bisect-new`'s bisections of the new findings.
        "bisect.json",
    ];
    const CELL_FILES: &[&str] = &[
        "build.log",
        "config",
        "console.log",
        "console-kvm.log",
        "qemu.log",
        "virtiofsd-*.log",
        "findings.json",
        "repro.txt",
        "tests/*.ktap",
    ];
    let file = path.rsplit('/').next().unwrap_or(path);
    if path.ends_with('/') || path.contains("/results/") || path.contains("/share/") {
        return false;
    }
    RUN_FILES.contains(&file)
        || CELL_FILES
            .iter()
            .any(|f| path.ends_with(&format!("/*/*/*/{f}")))
}

fn yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn upload_allowlist_refuses_whole_folders_and_guest_files() {
    for bad in [
        "runs/latest/",
        "runs/latest/*/results/x",
        "runs/latest/*/share/vma_user.ko",
        "shard-*/",
        "runs/latest/*",
    ] {
        assert!(!allowed_upload(bad), "{bad}");
    }
    for good in [
        "runs/latest/results.json",
        "merged/report.html",
        "runs/latest/*/*/*/console.log",
        "runs/latest/*/*/*/tests/*.ktap",
    ] {
        assert!(allowed_upload(good), "{good}");
    }
    // One level down is not where cells are.
    assert!(!allowed_upload("runs/latest/*/console.log"));
}

/// A run folder laid out as the engine lays it out: the run's files at the top, each
/// cell's at `Cell::rel_dir()` (`<arch>/<config>/<patchset>/`), with the guest's
/// `results/` and the tests share `share/` beside them. Returns kmatrix's own files and
/// the guest's, relative to the run folder.
fn run_folder(run: &Path) -> (Vec<String>, Vec<String>) {
    use kmatrix::record::plan::{Arch, Cell};
    let mut own: Vec<String> = [
        "results.json",
        "junit.xml",
        "summary.md",
        "report.html",
        "matrix.txt",
        "known-issues.yaml",
    ]
    .map(String::from)
    .to_vec();
    let mut guest = Vec::new();
    for (arch, config, patchset) in [
        (Arch::X86_64, "pvl-on", "base"),
        (Arch::Arm64, "pvl-off", "v2"),
    ] {
        let cell = Cell {
            arch,
            config: config.into(),
            patchset: patchset.into(),
            base_config: "tinyconfig".into(),
            fragments: vec![],
            patches: vec![],
        };
        let dir = cell.rel_dir().display().to_string();
        // What prepare, boot, guest_tests and the cell's end write (report.html links
        // the same list).
        for f in [
            "build.log",
            "config",
            "console.log",
            "console-kvm.log",
            "qemu.log",
            "virtiofsd-results.log",
            "virtiofsd-tests.log",
            "findings.json",
            "repro.txt",
            "tests/faults_vs_writers.ktap",
        ] {
            own.push(format!("{dir}/{f}"));
        }
        for f in [
            "results/console.log",
            "results/tests/x.ktap",
            "results/a/b/build.log",
            "share/vma_user.ko",
            "share/faults_vs_writers",
        ] {
            guest.push(format!("{dir}/{f}"));
        }
    }
    for f in own.iter().chain(&guest) {
        let p = run.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
    }
    (own, guest)
}

/// Which of `files` (relative to the run folder) the upload globs match, each glob with
/// its run-folder prefix (`runs/latest/`, `shard-*/2*/`) taken off; `*` stays within one
/// path part, as in actions/upload-artifact and GitLab's artifact paths.
fn matched<'a>(globs: &[String], prefix: &str, files: &'a [String]) -> Vec<&'a String> {
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        if let Some(rel) = g.strip_prefix(prefix) {
            b.add(
                globset::GlobBuilder::new(rel)
                    .literal_separator(true)
                    .build()
                    .unwrap(),
            );
        }
    }
    let set = b.build().unwrap();
    files.iter().filter(|f| set.is_match(f.as_str())).collect()
}

/// Every file kmatrix writes into a run folder (cells included) is uploaded, none of
/// the guest's.
fn uploads_every_cell_file(what: &str, globs: &[String], prefix: &str) {
    let d = tempfile::tempdir().unwrap();
    let (own, guest) = run_folder(d.path());
    let got = matched(globs, prefix, &own);
    let missed: Vec<&String> = own.iter().filter(|f| !got.contains(f)).collect();
    assert!(missed.is_empty(), "{what} does not upload {missed:?}");
    let leaked = matched(globs, prefix, &guest);
    assert!(leaked.is_empty(), "{what} uploads the guest's {leaked:?}");
}

#[test]
fn the_upload_globs_reach_every_cells_files_and_no_guest_file() {
    let wf = yaml(&repo().join(".github/workflows/nightly.yml"));
    for (job, prefix) in [("shard", "runs/latest/"), ("deep", "deep-runs/latest/")] {
        let upload = wf["jobs"][job]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                s["uses"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
            })
            .unwrap();
        let globs: Vec<String> = upload["with"]["path"]
            .as_str()
            .unwrap()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        uploads_every_cell_file(&format!("nightly.yml's {job} job"), &globs, prefix);
    }

    let ci = yaml(&repo().join("ci/gitlab-ci.example.yml"));
    let globs: Vec<String> = ci["kmatrix"]["artifacts"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    uploads_every_cell_file("the GitLab example's shard job", &globs, "shard-*/2*/");
}

#[test]
fn github_workflow_uploads_only_kmatrix_result_files() {
    let wf = yaml(&repo().join(".github/workflows/nightly.yml"));
    let mut uploads = 0;
    for (job, j) in wf["jobs"].as_object().unwrap() {
        for step in j["steps"].as_array().unwrap() {
            let uses = step["uses"].as_str().unwrap_or_default();
            if !uses.starts_with("actions/upload-artifact@") {
                continue;
            }
            uploads += 1;
            let paths = step["with"]["path"].as_str().unwrap_or_default();
            for p in paths.lines().map(str::trim).filter(|p| !p.is_empty()) {
                assert!(allowed_upload(p), "job {job} uploads `{p}`");
            }
        }
    }
    assert!(uploads >= 2, "no upload steps found");
}

#[test]
fn gitlab_example_keeps_only_kmatrix_result_files() {
    let ci = yaml(&repo().join("ci/gitlab-ci.example.yml"));
    let mut checked = 0;
    for (job, j) in ci.as_object().unwrap() {
        let a = &j["artifacts"];
        let paths = a["paths"].as_array().into_iter().flatten();
        let reports = a["reports"]
            .as_object()
            .into_iter()
            .flat_map(|r| r.values());
        for p in paths.chain(reports).filter_map(|p| p.as_str()) {
            checked += 1;
            assert!(allowed_upload(p), "job {job} keeps `{p}` as an artifact");
        }
    }
    assert!(checked >= 2, "no artifacts found");
}
