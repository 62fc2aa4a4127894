//! Streaming kernel console parser: finds kernel reports in a console log.
//!
//! The public surface the rest of kmatrix relies on is `Finding`, `Kind`, `Frame`,
//! `Parser` (streaming, line at a time) and `parse` (a whole reader), plus `dedup`,
//! `symbolize` and `findings_json`.
//!
//! Submodules: `line` (printk prefixes), `detect` (report head lines), `frame` (stack
//! frames and the skip list for guilty frames), `parser` (the state machine; its module
//! docs say how reports are delimited and how panics are attributed), `symbolize`.
//!
//! Titles follow the kernel developers' / syzkaller conventions, `{what} in {frame}`:
//! `possible deadlock in X` (circular, irq inversion, safe->unsafe lock order),
//! `possible recursive locking in X`, `inconsistent lock state in X`,
//! `WARNING: bad unlock balance in X`, `WARNING: suspicious RCU usage in X`,
//! `INFO: task hung in X`, `BUG: unable to handle kernel NULL pointer dereference in X`,
//! `BUG: unable to handle kernel paging request in X`, `general protection fault in X`,
//! `kernel BUG in X` (`BUG: corrupted list in X` for list_debug), `WARNING in X`
//! (`WARNING: refcount bug in X` etc. for generic checkers), `KASAN: {type} {Read|Write}
//! in X`, `KFENCE:/KMSAN:/UBSAN: {type} in X`, `KCSAN: data-race in A / B`,
//! `memory leak in X`, `INFO: rcu detected stall in X`, `BUG: soft lockup in X`,
//! `BUG: hard lockup in X`, `BUG: sleeping function called from invalid context in X`,
//! `BUG: scheduling while atomic in X`, `kernel panic: {message}`; other `BUG:` lines keep
//! their stable words (`BUG: Bad rss-counter state`).
//!
//! The guilty frame is, by report type, the lock site named by lockdep's `at:` lines, the
//! function on the head line (WARNING location, KASAN/KFENCE/KMSAN/KCSAN `in func`), the
//! faulting `RIP:`/`pc :` (oopses, lockups, stalls) and then the call trace, always
//! skipping generic frames (see `frame::SKIP`) and dropping unreliable `? ` frames.
//! A finding is `corrupted` when it was cut off (end of log, reboot, another report before
//! its trace finished) or when no guilty frame could be found for a type that needs one.

mod detect;
mod frame;
mod line;
mod parser;
mod symbolize;
pub mod watcher;

pub use parser::Parser;
pub use symbolize::symbolize;
pub use watcher::Watcher;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::BufRead;

/// Stable vocabulary of report kinds (extend, never rename).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Lockdep,
    HungTask,
    NullDeref,
    PagingFault,
    Gpf,
    Bug,
    Warning,
    Kasan,
    Kfence,
    Kmsan,
    Kcsan,
    Ubsan,
    Kmemleak,
    RcuStall,
    SoftLockup,
    HardLockup,
    SleepInAtomic,
    Panic,
    #[default]
    Other,
}

/// One call-trace frame, e.g. `vma_start_read_unlocked+0x3c/0x90`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub function: String,
    pub offset: Option<u64>,
    pub size: Option<u64>,
    pub module: Option<String>,
    /// `file:line`, filled by symbolisation.
    pub source: Option<String>,
}

/// One kernel report found in a console log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: Kind,
    pub title: String,
    pub frame: Option<String>,
    pub corrupted: bool,
    pub trace: Vec<Frame>,
    pub task: Option<String>,
    pub pid: Option<u32>,
    pub cpu: Option<u32>,
    /// Kernel timestamp (seconds) of the report's first line, when printk times are on.
    pub timestamp: Option<f64>,
    /// 1-based line in the console log where the report starts.
    pub line: usize,
    /// The report's text as printed (timestamps kept).
    pub report: String,
    /// The guest test that was running when the kernel printed the report (from the
    /// markers kmatrix writes to /dev/kmsg around each test); None outside any test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during: Option<String>,
    /// The test whose positive control this report is (it happened inside that test and
    /// matched its expectation); None for a real finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_by: Option<String>,
    /// The console lines just before the report, captured when it was found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
}

/// Parse a whole console log. Findings come back in the order their reports started.
pub fn parse<R: BufRead>(mut reader: R) -> std::io::Result<Vec<Finding>> {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        out.extend(parser.feed(&buf));
    }
    out.extend(parser.finish());
    out.sort_by_key(|f| f.line);
    Ok(out)
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
    fn json_shape() {
        let v = findings_json(&[f("WARNING in x", 7)]);
        assert_eq!(v["findings"][0]["kind"], "warning");
        assert_eq!(v["findings"][0]["line"], 7);
    }
}
