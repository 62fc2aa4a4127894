//! Streaming kernel console parser: finds kernel reports in a console log.
//!
//! The public surface the rest of kmatrix relies on is `Finding`, `Kind`, `Frame`,
//! `Parser` (streaming, line at a time) and `parse` (a whole reader), plus `dedup`,
//! `summarize`, `symbolize` and `findings_json`; for series-aware titles,
//! `changed_functions` (of the series' patches), `Parser::with_preferred` and
//! `parse_with`.
//!
//! Submodules, each above the ones it uses: `line` (printk prefixes), `frame` (stack
//! frames), `skip` (frames never guilty), `detect` (report head lines), `text` (what report
//! lines look like: trailers, register dumps), `guilty` (which frame names the bug, per
//! report kind), `report` (one report being read, and its finding), `parser` (the state
//! machine; its module docs say how reports are delimited, how panics are attributed
//! and how memory is bounded), `series` (functions a diff changes), `symbolize`.
//!
//! Titles follow the kernel developers' / syzkaller conventions, `{what} in {frame}`:
//! `possible deadlock in X` (circular, irq inversion, safe->unsafe lock order),
//! `possible recursive locking in X`, `inconsistent lock state in X`,
//! `WARNING: bad unlock balance in X`, `WARNING: suspicious RCU usage in X`,
//! `INFO: task hung in X` (also for 7.3's `blocked in I/O wait`), `INFO: task can't die
//! in X`, `BUG: unable to handle kernel NULL pointer dereference in X`,
//! `BUG: unable to handle kernel paging request in X`, `general protection fault in X`,
//! `kernel BUG in X` (`BUG: corrupted list in X` for list_debug), `WARNING in X`
//! (`WARNING: refcount bug in X` etc. for generic checkers), `KASAN: {type} {Read|Write}
//! in X`, `KFENCE:/KMSAN:/UBSAN: {type} in X`, `KCSAN: data-race in A / B`,
//! `memory leak in X`, `INFO: rcu detected stall in X`, `BUG: soft lockup in X`,
//! `BUG: hard lockup in X`, `BUG: sleeping function called from invalid context in X`,
//! `BUG: scheduling while atomic in X`, `BUG: using smp_processor_id() in preemptible
//! code in X` (and the other context checks), `BUG: spinlock bad magic in X`,
//! `WARNING: still has locks held in X`, `PANIC: double fault in X`, `kernel stack
//! overflow in X`, `kernel panic: {message}`; unwinder complaints keep their words
//! (`WARNING: kernel stack regs has bad value`), other `BUG:` lines their stable words
//! (`BUG: Bad rss-counter state`). Titles carry no addresses, pids or counts, and name
//! the same function on every arch: compiler suffixes (`.constprop.0`) are dropped and
//! the per-arch syscall wrappers (`__x64_sys_X`, `__arm64_sys_X`) become `__do_sys_X`.
//!
//! Kinds group reports by the detector that printed them: `lockdep` also covers lock
//! debugging outside lockdep (spinlock/rwlock debugging, workqueue lock leaks),
//! `sleep_in_atomic` every execution-context check (might_sleep, scheduling while
//! atomic, `cant_sleep`/`cant_migrate`, DEBUG_PREEMPT's `smp_processor_id()` and
//! `__this_cpu_*()` checks), `hung_task` the hung-task detector, `panic` whatever stops
//! the machine by itself.
//!
//! The guilty frame is the function a kernel developer would blame, never the machinery
//! that reported it (see `guilty` for the rule of each kind): the lock site named by
//! lockdep's `at:` lines, the function on the head line (WARNING location,
//! KASAN/KFENCE/KMSAN/KCSAN `in func`, DEBUG_PREEMPT's `caller is`, a workqueue's
//! `workfn=`), the faulting `RIP:`/`pc :` (oopses), then the call trace read from the
//! interrupted code on; for stalls and lockups the looping task's entry (the callee of
//! the syscall, VFS, socket, workqueue, softirq or timer dispatcher), for stack overflows
//! the recursing function, for hung tasks the first frame that is not a wait or lock
//! primitive. Generic frames are skipped (report plumbing, lock primitives, allocators,
//! fault and entry code, sanitizer runtimes, and helpers and assertions whose caller is
//! the culprit: see `skip`'s groups), and unreliable `? ` frames dropped. With
//! `Parser::with_preferred`, the first remaining frame in a function the series changes
//! wins. A finding is `corrupted` when it was cut off (end of log, reboot, another report
//! before its trace finished) or when no guilty frame could be found for a kind that
//! needs one; `no_function` then says why.

mod detect;
mod frame;
mod guilty;
mod line;
mod parser;
mod report;
mod series;
mod skip;
mod symbolize;
mod text;
pub mod watcher;

pub use parser::Parser;
pub use series::{changed_functions, file_diffs, FileDiff, Hunk, HunkLine};
pub use symbolize::symbolize;
pub use watcher::Watcher;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, Read};

pub use crate::record::finding::{Finding, Frame, Kind};

/// Parse a whole console log. Findings come back in the order their reports started.
pub fn parse<R: BufRead>(reader: R) -> std::io::Result<Vec<Finding>> {
    run(Parser::new(), reader)
}

/// [`parse`] with a series-aware guilty frame: a report whose frames pass through one of
/// `preferred` (e.g. [`changed_functions`] of the series' patches) is titled after it.
pub fn parse_with<R: BufRead>(reader: R, preferred: &[String]) -> std::io::Result<Vec<Finding>> {
    run(Parser::with_preferred(preferred.to_vec()), reader)
}

/// [`parse`] without keeping anything: each finding goes to `found` as soon as its report
/// is complete (in that order, not sorted by line), so a log of any size costs the
/// parser's bounded state and what `found` keeps (`kmatrix parse`).
pub fn parse_each<R: BufRead>(
    mut reader: R,
    mut found: impl FnMut(Finding),
) -> std::io::Result<()> {
    let mut parser = Parser::new();
    let mut buf = Vec::with_capacity(256);
    while read_line_bounded(&mut reader, &mut buf)? {
        parser.feed(&buf).into_iter().for_each(&mut found);
    }
    parser.finish().into_iter().for_each(found);
    Ok(())
}

fn run<R: BufRead>(mut parser: Parser, mut reader: R) -> std::io::Result<Vec<Finding>> {
    let mut out = Vec::new();
    let mut buf = Vec::with_capacity(256);
    while read_line_bounded(&mut reader, &mut buf)? {
        out.extend(parser.feed(&buf));
    }
    out.extend(parser.finish());
    out.sort_by_key(|f| f.line);
    Ok(out)
}

/// Reads one line (without its newline) into `buf`, keeping at most
/// `parser::MAX_LINE_BYTES` of it: a console flood without newlines costs no memory.
/// Returns false at the end of input.
fn read_line_bounded<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    const MAX: usize = parser::MAX_LINE_BYTES;
    buf.clear();
    if reader
        .by_ref()
        .take(MAX as u64 + 1)
        .read_until(b'\n', buf)?
        == 0
    {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(true);
    }
    if buf.len() > MAX {
        // Too long: keep the start, drop the rest of the line in bounded pieces.
        buf.truncate(MAX);
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let n = reader
                .by_ref()
                .take(64 * 1024)
                .read_until(b'\n', &mut rest)?;
            if n == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
    }
    Ok(true)
}

/// Groups findings by title: the first occurrence of each title and how many there were,
/// in order of first occurrence.
pub fn dedup(findings: &[Finding]) -> Vec<(Finding, usize)> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<(Finding, usize)> = Vec::new();
    for f in findings {
        match index.get(f.title.as_str()) {
            Some(&i) => out[i].1 += 1,
            None => {
                index.insert(&f.title, out.len());
                out.push((f.clone(), 1));
            }
        }
    }
    out
}

/// `{"findings": [...]}` as printed by `kmatrix parse --json`.
pub fn findings_json(findings: &[Finding]) -> serde_json::Value {
    serde_json::json!({ "findings": findings })
}

/// Where a title was first seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    pub cell: String,
    /// 1-based line in that cell's console log.
    pub line: usize,
    pub timestamp: Option<f64>,
}

/// One title across a run (cells, repeats, nights): how often, where, and first where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TitleSummary {
    pub title: String,
    pub kind: Kind,
    pub count: usize,
    /// Cells that printed it, in order of first occurrence, each once.
    pub cells: Vec<String>,
    pub first: Occurrence,
}

/// Groups the findings of many cells by title, in order of first occurrence. `findings`
/// yields (cell id, finding) in the order they happened (cell by cell, each cell's
/// findings in log order).
pub fn summarize<'a, I>(findings: I) -> Vec<TitleSummary>
where
    I: IntoIterator<Item = (&'a str, &'a Finding)>,
{
    let mut index: HashMap<&'a str, usize> = HashMap::new();
    let mut out: Vec<TitleSummary> = Vec::new();
    for (cell, f) in findings {
        match index.get(f.title.as_str()) {
            Some(&i) => {
                let s = &mut out[i];
                s.count += 1;
                if !s.cells.iter().any(|c| c == cell) {
                    s.cells.push(cell.to_string());
                }
            }
            None => {
                index.insert(&f.title, out.len());
                out.push(TitleSummary {
                    title: f.title.clone(),
                    kind: f.kind,
                    count: 1,
                    cells: vec![cell.to_string()],
                    first: Occurrence {
                        cell: cell.to_string(),
                        line: f.line,
                        timestamp: f.timestamp,
                    },
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(title: &str, line: usize) -> Finding {
        Finding {
            kind: Kind::Warning,
            title: title.into(),
            frame: None,
            corrupted: false,
            trace: vec![],
            task: None,
            pid: None,
            cpu: None,
            timestamp: None,
            line,
            report: String::new(),
            ..Default::default()
        }
    }

    #[test]
    fn dedup_counts_in_first_seen_order() {
        let d = dedup(&[f("a", 1), f("b", 2), f("a", 3), f("a", 4)]);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].0.title.as_str(), d[0].0.line, d[0].1), ("a", 1, 3));
        assert_eq!((d[1].0.title.as_str(), d[1].1), ("b", 1));
    }

    #[test]
    fn summary_counts_cells_and_first_occurrence() {
        let (a, b, c) = (f("x", 10), f("y", 3), f("x", 7));
        let s = summarize([
            ("x86_64/pvl-on/v2", &a),
            ("arm64/pvl-on/v2", &b),
            ("arm64/pvl-on/v2", &c),
        ]);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].title.as_str(), s[0].count), ("x", 2));
        assert_eq!(s[0].cells, ["x86_64/pvl-on/v2", "arm64/pvl-on/v2"]);
        assert_eq!(
            (s[0].first.cell.as_str(), s[0].first.line),
            ("x86_64/pvl-on/v2", 10)
        );
        assert_eq!((s[1].title.as_str(), s[1].count), ("y", 1));
    }

    #[test]
    fn long_lines_are_cut_not_buffered() {
        let mut data = vec![b'x'; 3 * parser::MAX_LINE_BYTES];
        data.extend_from_slice(
            b"\nBUG: kernel NULL pointer dereference, address: 0000000000000008\n",
        );
        let mut r = std::io::Cursor::new(&data);
        let mut buf = Vec::new();
        assert!(read_line_bounded(&mut r, &mut buf).unwrap());
        assert_eq!(buf.len(), parser::MAX_LINE_BYTES);
        assert!(read_line_bounded(&mut r, &mut buf).unwrap());
        assert!(buf.starts_with(b"BUG: kernel NULL"));
        assert!(!read_line_bounded(&mut r, &mut buf).unwrap());
        assert_eq!(parse(std::io::Cursor::new(&data)).unwrap().len(), 1);
    }

    #[test]
    fn json_shape() {
        let v = findings_json(&[f("WARNING in x", 7)]);
        assert_eq!(v["findings"][0]["kind"], "warning");
        assert_eq!(v["findings"][0]["line"], 7);
    }
}
