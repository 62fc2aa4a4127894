//! `bench/scaling --sim`: the engine's scheduler (`matrix::schedule`, the rule of
//! `record::schedule`) over a 48-cell matrix whose builds and guests are processes that
//! take what real ones took (bench/RESULTS.md, idle 2-core machine), time scaled down
//! 500 times: a `sleep` stands for make, then the cell's slot is free, then a `sleep`
//! for QEMU. For each `--jobs N`: the wall time against the total work / N and the
//! longest chain (a slot's builds one after the other, then its last guest).
//!
//! Ignored by default (about a minute); `bench/scaling --sim` runs it.

use super::matrix::{schedule, Engine};
use super::shared::RunOptions;
use crate::host::cache::Cache;
use crate::host::proc::{self, ProcSpec};
use crate::record::plan::{AccelChoice, Arch, Cell, Limits, Plan, SourceSpec, VmSettings};
use crate::record::result::CellResult;
use crate::record::verdict::Verdict;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Simulated seconds per real second.
const SCALE: f64 = 500.0;

/// Seconds a cell takes: (kernel step, guest) from measured runs (bench/RESULTS.md):
/// x86_64 cold build 293.5 s (1356 objects), an incremental one of ~870 objects 40 s +
/// 870 x 0.187 s = 203 s; arm64 cold 524 s, incremental 355 s; guests (TCG, 2 vCPUs,
/// boot to verdict) x86_64 101 s (base) and 109 s (patched), arm64 104 s and 111 s; the
/// v2 cells of every other config stop at their compile error after 40 s.
fn cost(cell: &Cell, config_index: usize) -> (f64, f64) {
    let base = cell.patchset == "base";
    let (cold, incremental, guest_base, guest_patched) = match cell.arch {
        Arch::X86_64 => (293.5, 203.0, 101.0, 109.0),
        Arch::Arm64 => (524.0, 355.0, 104.0, 111.0),
    };
    if cell.patchset == "v2" && config_index % 2 == 1 {
        return (40.0, 0.0);
    }
    if base {
        (cold, guest_base)
    } else {
        (incremental, guest_patched)
    }
}

/// 2 arches x 8 configs x base, v2, v3.
fn cells() -> Vec<(Cell, usize)> {
    let mut v = Vec::new();
    for arch in [Arch::X86_64, Arch::Arm64] {
        for c in 0..8 {
            for p in ["base", "v2", "v3"] {
                v.push((
                    crate::record::plan::tests::cell(arch, &format!("cfg{c}"), p),
                    c,
                ));
            }
        }
    }
    v
}

fn plan(cells: &[(Cell, usize)]) -> Plan {
    Plan {
        spec_path: "kmatrix.yaml".into(),
        spec_hash: "sim".into(),
        root: ".".into(),
        // Never read: the ETA probe finds no tree and gives up at once.
        source: SourceSpec::Path("/nonexistent/kmatrix-sim".into()),
        cells: cells.iter().map(|(c, _)| c.clone()).collect(),
        tests: vec![],
        vm: VmSettings {
            accel: AccelChoice::Tcg,
            memory_mib: 1024,
            cpus: 2,
            numa_nodes: 1,
            boot_timeout: Duration::from_secs(180),
            hung_task_timeout: Duration::from_secs(10),
        },
        limits: Limits::default(),
        harness: vec![],
        selftests: vec![],
        selftest_timeout: Duration::from_secs(60),
        baseline: Some("base".into()),
        known_issues: None,
        jobs: 2,
        subjects: Default::default(),
        ranges: vec![],
    }
}

async fn sleep_process(secs: f64) {
    let real = secs / SCALE;
    let _ = proc::run(&ProcSpec::new("sleep").arg(format!("{real:.4}"))).await;
}

/// The run's simulated seconds with `jobs`.
async fn run(jobs: usize, dir: &std::path::Path) -> f64 {
    let cells = cells();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let (ctx, crx) = watch::channel(false);
    let e = Engine::new(
        plan(&cells),
        Cache {
            root: dir.join("cache"),
        },
        RunOptions {
            jobs,
            build_only: false,
            ..Default::default()
        },
        dir.join(format!("run-{jobs}")),
        tx,
        crx,
    );
    let sh = &e.shared;
    let cells = &cells;
    let start = Instant::now();
    schedule(sh, |cell| {
        Box::pin(async move {
            let k = cells
                .iter()
                .find(|(c, _)| c.id() == cell.id())
                .map_or(0, |(_, k)| *k);
            let (build, guest) = cost(cell, k);
            sleep_process(build).await;
            sh.kernel_done(cell.id());
            if guest > 0.0 {
                sleep_process(guest).await;
            }
            let mut r = CellResult::new(cell, dir.join("cells"));
            r.verdict = Verdict::Pass;
            r
        })
    })
    .await;
    drop(ctx);
    start.elapsed().as_secs_f64() * SCALE
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a minute of sleeping processes; bench/scaling --sim"]
async fn scaling_simulation() {
    let d = tempfile::tempdir().unwrap();
    let cells = cells();
    let costs: Vec<(f64, f64)> = cells.iter().map(|(c, k)| cost(c, *k)).collect();
    let work: f64 = costs.iter().map(|(b, g)| b + g).sum();
    // The longest chain: in each slot, cell k ends at the earliest after the builds
    // before it and its own build and guest.
    let mut chain: f64 = 0.0;
    for s in 0..cells.len() / 3 {
        let mut builds = 0.0;
        for (b, g) in &costs[s * 3..s * 3 + 3] {
            chain = chain.max(builds + b + g);
            builds += b;
        }
    }
    println!(
        "48 cells, total work {:.0} s, longest chain {:.0} s (simulated seconds, 1:{SCALE})",
        work, chain
    );
    println!("jobs      wall   work/jobs   bound   wall/(work/jobs)   wall/bound   wall/max(work/jobs,chain)");
    for jobs in [1, 2, 4, 8, 16, 48] {
        let wall = run(jobs, d.path()).await;
        let ideal = work / jobs as f64;
        let bound = ideal + chain;
        println!(
            "{jobs:>4} {wall:>9.0} {ideal:>11.0} {bound:>7.0} {:>18.2} {:>12.2} {:>27.2}",
            wall / ideal,
            wall / bound,
            wall / ideal.max(chain)
        );
        // Greedy list scheduling's guarantee, with 5% for process starts.
        assert!(
            wall <= bound * 1.05,
            "{jobs} jobs: {wall:.0} s > {bound:.0} s"
        );
    }
}
