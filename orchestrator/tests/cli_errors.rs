//! Bad input gets a clear error naming the file, key or cell and a documented exit code,
//! before any work starts (drills from the command line; no kernel needed).

use std::path::Path;
use std::process::Command;

fn kmatrix(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn project(spec: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("kconfigs")).unwrap();
    std::fs::write(d.path().join("kconfigs/guest.config"), "CONFIG_TTY=y\n").unwrap();
    std::fs::write(d.path().join("kmatrix.yaml"), spec).unwrap();
    d
}

const SPEC: &str = "source: { debian-package: linux-source-7.3 }\nfragments: [guest]\narches: [x86_64]\nconfigs: { on: [] }\npatchsets: { base: [] }\n";

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let d = project("source: { debian-package: linux-source-7.3\narches: [x86_64\n");
    let (code, err) = kmatrix(d.path(), &["plan"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("kmatrix.yaml:"), "{err}");
}

#[test]
fn unknown_key_names_the_key() {
    let d = project(&SPEC.replace("arches:", "arche: [x86_64]\narches:"));
    let (code, err) = kmatrix(d.path(), &["run"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("arche"), "{err}");
}

#[test]
fn missing_kernel_tree_is_a_spec_error() {
    let d = project(&SPEC.replace(
        "{ debian-package: linux-source-7.3 }",
        "{ path: /no/such/linux }",
    ));
    let (code, err) = kmatrix(d.path(), &["build"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("source.path") && err.contains("/no/such/linux is not a kernel tree"),
        "{err}"
    );
}

#[test]
fn only_that_selects_nothing_says_how_to_list_cells() {
    let d = project(SPEC);
    let (code, err) = kmatrix(d.path(), &["run", "--only", "arm64/*"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("selects no cell") && err.contains("kmatrix plan"),
        "{err}"
    );
}

#[test]
fn unwritable_results_folder_is_an_infrastructure_error_naming_it() {
    let d = project(SPEC);
    let (code, err) = kmatrix(d.path(), &["run", "--runs-dir", "/proc/kmatrix-runs"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("/proc/kmatrix-runs"), "{err}");
}

#[test]
fn a_bad_shard_is_a_usage_error() {
    let d = project(SPEC);
    let (code, err) = kmatrix(d.path(), &["run", "--shard", "3/2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("1 <= K <= N"), "{err}");
}

#[test]
fn a_runs_dir_too_long_for_the_vms_sockets_is_refused_before_any_build() {
    let d = project(SPEC);
    // The cell's folder under it leaves no room for `console.sock` (107 bytes at most).
    let runs = d.path().join("r".repeat(100));
    let (code, err) = kmatrix(d.path(), &["run", "--runs-dir", runs.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("too long for the VM's sockets")
            && err.contains("/x86_64/on/base/console.sock")
            && err.contains("pass a shorter --runs-dir"),
        "{err}"
    );
    // Nothing was started: no run folder is left, and no `latest` points anywhere.
    let left: Vec<_> = std::fs::read_dir(&runs)
        .map(|r| r.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
