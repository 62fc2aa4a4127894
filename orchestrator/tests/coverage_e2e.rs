//! Series coverage on a real kernel (issue 28): `tests/specs/coverage.yaml` (kmatrix.yaml
//! with the `gcov` fragment), cell `x86_64/pvl-on/v3`. kmatrix builds the kernel with the
//! series' objects profiled and maps the series' lines; `kmatrix boot` runs the cell's
//! tests in the guest the way the engine does, each between the coverage commands (zero
//! the counters, copy them to the results share); the library then measures each test.
//! Until the engine calls the same functions itself, this is the end-to-end proof.
//! Ignored by default (it builds and boots); run it alone under the heavy-work lock.
//! `KMATRIX_COVERAGE_CELL` picks another cell of the spec (`arm64/pvl-on/v3`).

use kmatrix::prepare::coverage::{self, guest, Map, Reach, SeriesCoverage};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs/coverage.yaml")
}

/// The guest script: each test as the engine runs it, between the coverage commands,
/// with the time the two commands took (from /proc/uptime, in the guest's clock).
fn script(series: &coverage::Series, tests: &[(String, u64)]) -> String {
    let mut s = String::from("up() { cut -d' ' -f1 /proc/uptime; }\n");
    for (name, secs) in tests {
        let after = series.after_test(name).expect("the series has objects");
        s.push_str(&format!(
            "a=$(up); {} || echo 'kmatrix-coverage: reset failed'; b=$(up)\n\
             /tests/{name} {secs} /results/{name}.ktap >/dev/null 2>&1; echo \"kmatrix-coverage: {name} exit $?\"\n\
             c=$(up); n=$({after} | wc -l); d=$(up)\n\
             echo \"kmatrix-coverage: {name} reset $a $b copy $c $d objects $n\"\n",
            guest::before_test()
        ));
    }
    s
}

/// The cell's folder in the one run below `runs`.
fn cell_dir(runs: &Path, rel: &Path) -> PathBuf {
    std::fs::read_dir(runs)
        .unwrap()
        .flatten()
        .map(|e| e.path().join(rel))
        .find(|p| p.join("coverage").is_dir())
        .unwrap_or_else(|| {
            panic!(
                "no cell folder with a coverage map under {}",
                runs.display()
            )
        })
}

/// Boot the cell with its tests between the coverage commands, measure each test and
/// write the record to the cell's folder as `coverage.json`.
async fn boot_and_measure(id: &str) -> SeriesCoverage {
    let plan = kmatrix::spec::load(&spec()).unwrap();
    let cell = plan.cells.iter().find(|c| c.id() == id).unwrap();
    let series = coverage::Series::read(cell.series(&plan));
    let tests: Vec<(String, u64)> = plan
        .tests
        .iter()
        .filter(|t| t.applies_to(cell) && t.selftest.is_none())
        .map(|t| (t.name.clone(), t.duration.as_secs().max(1)))
        .collect();
    let runs = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .arg("boot")
        .arg(id)
        .arg("--spec")
        .arg(spec())
        .arg("--runs-dir")
        .arg(runs.path())
        .arg("--")
        .arg(script(&series, &tests))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{}\n{stdout}\nboot + tests: {:.0} s",
        String::from_utf8_lossy(&out.stderr),
        started.elapsed().as_secs_f64()
    );
    let cell_dir = cell_dir(runs.path(), &cell.rel_dir());
    let dir = cell_dir.join("coverage");
    let map = Map::load(&dir).unwrap();
    let started = Instant::now();
    let mut counts = Vec::new();
    for (name, _) in &tests {
        let counters = cell_dir.join("results").join(guest::RESULTS_DIR).join(name);
        counts.push(coverage::measure(&map, &dir, name, &counters).await);
    }
    let measured = started.elapsed();
    let report = coverage::report(&map, &counts);
    std::fs::write(
        cell_dir.join("coverage.json"),
        serde_json::to_vec_pretty(&report).unwrap(),
    )
    .unwrap();
    eprintln!(
        "{}\nhost: {} tests measured in {:.2} s",
        report.summary,
        tests.len(),
        measured.as_secs_f64(),
    );
    for f in &report.files {
        for l in &f.lines {
            eprintln!(
                "{}:{:<5} {:<58} {:?} {:?}",
                f.path,
                l.line,
                l.text.trim().chars().take(58).collect::<String>(),
                l.status,
                l.hits
            );
        }
    }
    for f in &report.functions {
        eprintln!("function {} ({}): calls {:?}", f.name, f.file, f.calls);
    }
    // Kept for a look at the records when KMATRIX_KEEP is set.
    if std::env::var_os("KMATRIX_KEEP").is_some() {
        eprintln!("kept: {}", runs.keep().display());
    }
    report
}

#[tokio::test]
#[ignore = "builds and boots a real kernel; run with --include-ignored under the heavy lock"]
async fn v3_pvl_on_lines_per_test() {
    let id = std::env::var("KMATRIX_COVERAGE_CELL").unwrap_or_else(|_| "x86_64/pvl-on/v3".into());
    let report = boot_and_measure(&id).await;
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    assert!(
        matches!(report.reach, Reach::PartlyRan | Reach::AllRan),
        "{}",
        report.summary
    );
    assert!(
        report.lines_ran * 10 >= report.lines_measurable * 9,
        "fewer than 90% of the changed lines ran: {}",
        report.summary
    );
}

#[tokio::test]
#[ignore = "builds and boots a real kernel; run with --include-ignored under the heavy lock"]
async fn a_new_function_nothing_calls_never_ran() {
    let report = boot_and_measure("x86_64/pvl-on/uncalled").await;
    assert_eq!(report.reach, Reach::NeverRan, "{}", report.summary);
    assert!(
        report
            .summary
            .contains("functions never run: vma_read_lock_count"),
        "{}",
        report.summary
    );
}

#[test]
#[ignore = "builds a real kernel; run with --include-ignored under the heavy lock"]
fn a_series_only_in_an_unbuilt_file_builds_nothing_and_names_the_option() {
    let runs = tempfile::tempdir().unwrap();
    let id = "x86_64/pvl-on/numa-only";
    let out = Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .arg("build")
        .arg("--spec")
        .arg(spec())
        .args(["--only", id])
        .arg("--runs-dir")
        .arg(runs.path())
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let plan = kmatrix::spec::load(&spec()).unwrap();
    let cell = plan.cells.iter().find(|c| c.id() == id).unwrap();
    let map = Map::load(&cell_dir(runs.path(), &cell.rel_dir()).join("coverage")).unwrap();
    assert!(!map.builds_anything());
    let report = coverage::report(&map, &[]);
    assert_eq!(report.reach, Reach::NothingBuilt);
    assert_eq!(
        report.summary,
        "the series changes nothing this config builds: mm/mempolicy.c needs CONFIG_NUMA"
    );
}
