//! Does the console path and the report writing grow linearly?
//!
//! 1. Console: a log of 50, 100 and 200 MB (golden report logs spread through ordinary
//!    lines) is sent over a Unix socket, as QEMU's telnet console would, to the real
//!    console task (`vm::console::Console`), which writes console.log within its budget
//!    and feeds the watcher; the waiters' queries (findings since a line, open reports)
//!    run every 200 ms as during a test. Time per MB should not grow with the size.
//! 2. Reports: every output file (results.json, junit.xml, summary.md, report.html,
//!    matrix.txt) for runs of 12, 24 and 48 cells, each written after every cell as a
//!    run does (results.json) and all at the end. Time per cell should not grow.
//!
//! `cargo run --release --example console_scaling`

use kmatrix::console::{Finding, Kind, Watcher};
use kmatrix::record::plan::{Arch, Cell};
use kmatrix::record::result::{CellResult, TestOutcome, TestResult};
use kmatrix::record::verdict::Verdict;
use kmatrix::vm::console::{Budget, Console};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn log_of(size_mb: usize) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/console");
    let mut reports: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("golden logs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    reports.sort();
    let target = size_mb << 20;
    let mut log = Vec::with_capacity(target + (1 << 20));
    let mut n = 0u64;
    let mut r = 0;
    while log.len() < target {
        for _ in 0..2000 {
            n += 1;
            log.extend_from_slice(
                format!(
                    "[{:>5}.{:06}] faults_vs_writers: round {n} ok, 4 threads, 1024 vmas\n",
                    n / 1000,
                    n % 1_000_000
                )
                .as_bytes(),
            );
        }
        log.extend_from_slice(&reports[r % reports.len()]);
        log.push(b'\n');
        r += 1;
    }
    log
}

async fn console(size_mb: usize) -> (f64, usize) {
    let d = tempfile::tempdir().unwrap();
    let sock = d.path().join("console.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let log = log_of(size_mb);
    let start = Instant::now();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        for chunk in log.chunks(64 << 10) {
            s.write_all(chunk).await.unwrap();
        }
    });
    let mut c = Console::spawn(
        &sock,
        &d.path().join("console.log"),
        Watcher::new(0),
        Budget::new(64 << 20),
        None,
    );
    // What a test's wait asks, as often as it asks it.
    while !c.ended() {
        c.with(|w| {
            let _ = w.findings.iter().filter(|f| f.line > 10).count();
            let _ = w.open_kinds();
        });
        c.changed(Duration::from_millis(200)).await;
    }
    server.await.unwrap();
    let w = c.finish(Duration::from_secs(10)).await;
    (start.elapsed().as_secs_f64(), w.findings.len())
}

fn cells(n: usize, dir: &Path) -> Vec<CellResult> {
    (0..n)
        .map(|i| {
            let cell = Cell {
                arch: if i % 2 == 0 {
                    Arch::X86_64
                } else {
                    Arch::Arm64
                },
                config: format!("c{}", i / 6),
                patchset: format!("p{}", i % 3),
                base_config: "tinyconfig".into(),
                fragments: vec![],
                patches: vec![],
            };
            let mut r = CellResult::new(&cell, dir.join(cell.rel_dir()));
            r.verdict = if i % 3 == 1 {
                Verdict::Fail
            } else {
                Verdict::Pass
            };
            r.tests = (0..6)
                .map(|t| TestResult {
                    ktap: kmatrix::parse::ktap::parse(
                        "TAP version 13\n1..3\nok 1 a\nok 2 b\nok 3 c\n",
                    ),
                    ..TestResult::new(&format!("t{t}"), TestOutcome::Exited { status: 0 })
                })
                .collect();
            r.findings = (0..2)
                .map(|k| Finding {
                    kind: Kind::Lockdep,
                    title: format!("possible deadlock in f{k}"),
                    report: "x\n".repeat(60),
                    context: vec!["y".into(); 6],
                    line: 100 * k,
                    ..Default::default()
                })
                .collect();
            r
        })
        .collect()
}

fn reports(n: usize) -> f64 {
    let d = tempfile::tempdir().unwrap();
    let meta = kmatrix::report::RunMeta {
        spec: "kmatrix.yaml".into(),
        spec_hash: "h".into(),
        shard: None,
    };
    let all = cells(n, d.path());
    let start = Instant::now();
    // As the ResultsJson sink does: each cell rendered once, the file rewritten per cell.
    let mut rendered = Vec::new();
    for c in &all {
        rendered.push(kmatrix::report::results::render_cell(c));
        kmatrix::report::results::write_rendered(d.path(), &meta, &rendered).unwrap();
    }
    kmatrix::report::write_results(d.path(), &meta, &all).unwrap();
    start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    println!("console path (socket -> console.log + watcher):");
    println!(
        "{:>7} {:>9} {:>9} {:>10}",
        "MB", "seconds", "MB/s", "findings"
    );
    let mut first = None;
    for mb in [50, 100, 200] {
        let (secs, found) = console(mb).await;
        let rate = mb as f64 / secs;
        let base = *first.get_or_insert(rate);
        println!(
            "{mb:>7} {secs:>9.2} {rate:>9.1} {found:>10}   (rate x{:.2} of 50 MB)",
            rate / base
        );
    }
    println!("\nreport writing (results.json after each cell, every file at the end):");
    println!("{:>7} {:>9} {:>12}", "cells", "seconds", "ms per cell");
    let mut first = None;
    for n in [12, 24, 48] {
        let secs = reports(n);
        let per = secs * 1000.0 / n as f64;
        let base = *first.get_or_insert(per);
        println!(
            "{n:>7} {secs:>9.3} {per:>12.2}   (x{:.2} of 12 cells)",
            per / base
        );
    }
}
