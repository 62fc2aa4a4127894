//! `bench/lockgraph-scaling`: the lock graph comparison (`judge::lockgraph::diff`) of a
//! patched cell against its base, for graphs of growing size up to what a guest may send
//! (a 32 MiB `/proc/lockdep`). Each patched graph adds as many new edges as it has, a
//! tenth of them closing a cycle. The time per edge should not grow with the size.

use kmatrix::judge::lockgraph::{diff, parse, Series};
use std::fmt::Write;
use std::time::Instant;

/// `/proc/lockdep` text: `classes` classes, each taking the next `fanout` ones.
fn lockdep(classes: usize, fanout: usize, offset: usize) -> String {
    let mut s = String::from("all lock classes:\n");
    for i in 0..classes {
        let _ = writeln!(s, "{i:016x} FD: {fanout} BD: 1 +.+.: lock_{i}");
        for j in 1..=fanout {
            let to = (i + j * (1 + offset)) % classes;
            if to > i || offset > 0 {
                let _ = writeln!(s, " -> [{to:016x}] lock_{to}");
            }
        }
        s.push('\n');
    }
    s
}

fn main() {
    println!(
        "{:>8} {:>10} {:>10} {:>12} {:>8}",
        "classes", "edges", "seconds", "us per edge", "cycles"
    );
    let mut first: Option<f64> = None;
    for classes in [1_000, 2_000, 4_000, 8_000, 32_000] {
        let base = parse(&lockdep(classes, 4, 0));
        let patched = parse(&lockdep(classes, 4, 1));
        let edges = base.edges.len() + patched.edges.len();
        let start = Instant::now();
        let d = diff("base", &base, &patched, &Series::of(&[]), &[]);
        let secs = start.elapsed().as_secs_f64();
        let per = secs * 1e6 / edges as f64;
        let ratio = first.map_or(1.0, |f| per / f);
        first.get_or_insert(per);
        println!(
            "{classes:>8} {edges:>10} {secs:>10.3} {per:>12.2} {:>8}   (per edge x{ratio:.2} of the smallest)",
            d.cycles.len()
        );
    }
}
