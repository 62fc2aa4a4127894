//! The nightly workflow executed, not only linted: `scripts/run-nightly-locally` runs
//! `.github/workflows/nightly.yml`'s own steps (its `run:` blocks, artifact globs, shard
//! matrix, merge, the comparison with the night before, the job summary, the final
//! verdict) two nights in a row. The matrix is replaced by a cheap one (`--spec`): a
//! kernel-like tree whose cells end at their builds in seconds (its Makefile compiles
//! `lib/*.c`, then stops), three cells, one per shard, so no VM is started; the steps,
//! commands and globs are the workflow's.

use std::path::{Path, PathBuf};
use std::process::Command;

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const MAKEFILE: &str = "\
tinyconfig:
\t@mkdir -p $(O) && echo '# fixture' > $(O)/.config
olddefconfig prepare modules:
\t@true
bzImage:
\t@for f in $(CURDIR)/lib/*.c; do $(CC) -fsyntax-only $$f || exit 1; done
\t@echo 'fixture: error: a kernel-like test tree, not a kernel' >&2; exit 1
";

fn spec(dir: &Path) -> PathBuf {
    let t = dir.join("linux");
    std::fs::create_dir_all(t.join("lib")).unwrap();
    std::fs::write(t.join("Makefile"), MAKEFILE).unwrap();
    std::fs::write(
        t.join("lib/fixture.c"),
        "int f(int a)\n{\n\treturn a + 1;\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("broken.patch"),
        "--- a/lib/fixture.c\n+++ b/lib/fixture.c\n@@ -1,4 +1,4 @@\n int f(int a)\n {\n-\treturn a + 1;\n+\treturn a + 1\n }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("other.patch"),
        "--- a/lib/fixture.c\n+++ b/lib/fixture.c\n@@ -1,4 +1,4 @@\n int f(int a)\n {\n-\treturn a + 1;\n+\treturn a + 2\n }\n",
    )
    .unwrap();
    let p = project();
    let spec = dir.join("nightly.yaml");
    std::fs::write(
        &spec,
        format!(
            "source: {{ path: {} }}\nkconfigs: {}\nguest-tests: {}\nfragments: [guest]\narches: [x86_64]\nconfigs: {{ pvl-on: [pvl-on] }}\npatchsets: {{ base: [], broken: [{}], other: [{}] }}\ntests:\n  - {{ name: faults_vs_writers, duration: 5s, timeout: 2m }}\nselftests: []\n",
            t.display(),
            p.join("kconfigs").display(),
            p.join("guest-tests").display(),
            dir.join("broken.patch").display(),
            dir.join("other.patch").display(),
        ),
    )
    .unwrap();
    spec
}

#[test]
#[ignore = "runs the nightly workflow's steps (a release build of kmatrix); run with --include-ignored"]
fn the_nightly_workflows_own_steps_run_two_nights_in_a_row() {
    let d = tempfile::tempdir().unwrap();
    let spec = spec(d.path());
    let work = d.path().join("work");
    let out = Command::new(project().join("scripts/run-nightly-locally"))
        .arg("--spec")
        .arg(&spec)
        .arg("--work")
        .arg(&work)
        .env("KMATRIX_CACHE", d.path().join("cache"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    let step = |night: u32, job: &str, name: &str| -> String {
        text.lines()
            .find(|l| {
                l.starts_with(&format!("  night {night} {job} "))
                    && l.split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .contains(name)
            })
            .unwrap_or_else(|| panic!("night {night} {job} {name}: no such step\n{text}"))
            .to_string()
    };
    for night in [1, 2] {
        for shard in 1..=3 {
            let job = format!("shard-{shard}");
            assert!(
                step(night, &job, "Run the shard").contains(" ok "),
                "{text}"
            );
            let up = step(night, &job, "actions/upload-artifact");
            assert!(up.contains("emulated:") && !up.contains(": 0 file"), "{up}");
        }
        assert!(
            text.contains(&format!("night {night} container    skipped")),
            "{text}"
        );
        assert!(step(night, "merge", "Merge").contains(" ok "), "{text}");
        assert!(
            step(night, "merge", "Job summary").contains(" ok "),
            "{text}"
        );
        // The cells fail to build (the fixture is not a kernel): the last step fails
        // the night on findings, as it should.
        assert!(
            step(night, "merge", "Fail on findings").contains("FAILED (exit 1"),
            "{text}"
        );
    }
    // Night 1 has nothing to compare with; night 2 compares with night 1's report.
    assert!(step(1, "merge", "Compare with the previous night").contains("skipped"));
    assert!(step(2, "merge", "Find the previous night").contains("run-id='1'"));
    assert!(
        step(2, "merge", "Compare with the previous night").contains(" ok "),
        "{text}"
    );
    // The shards' artifacts hold the cells' files (arch/config/patchset/...).
    for ps in ["base", "broken", "other"] {
        let found = (1..=3).any(|k| {
            work.join(format!(
                "night2/artifacts/shard-{k}/x86_64/pvl-on/{ps}/build.log"
            ))
            .is_file()
        });
        assert!(found, "no shard artifact has x86_64/pvl-on/{ps}/build.log");
    }
    let report = work.join("night2/artifacts/kmatrix-report");
    for f in ["results.json", "report.html", "summary.md", "compare.json"] {
        assert!(report.join(f).is_file(), "kmatrix-report lacks {f}");
    }
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(merged["cells"].as_array().unwrap().len(), 3, "{merged:#}");
    let summary = std::fs::read_to_string(work.join("night2/merge/step-summary.md")).unwrap();
    assert!(summary.contains("BUILD-FAIL"), "{summary}");
    assert_eq!(out.status.code(), Some(1), "findings fail the night");
}
