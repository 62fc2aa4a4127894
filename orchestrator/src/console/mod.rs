//! Streaming kernel console parser: finds kernel reports in a console log.
//!
//! The public surface the rest of kmatrix relies on is `Finding`, `Kind`, `Frame`,
//! `Parser` (streaming, line at a time) and `parse` (a whole reader).

use serde::{Deserialize, Serialize};
use std::io::BufRead;

/// Stable vocabulary of report kinds (extend, never rename).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// First cut: report header lines only (the full parser replaces this).
pub fn parse<R: BufRead>(mut reader: R) -> std::io::Result<Vec<Finding>> {
    const HEADS: &[(&str, Kind)] = &[
        (
            "WARNING: possible circular locking dependency",
            Kind::Lockdep,
        ),
        ("INFO: task ", Kind::HungTask),
        ("BUG: kernel NULL pointer dereference", Kind::NullDeref),
        (
            "Unable to handle kernel NULL pointer dereference",
            Kind::NullDeref,
        ),
        ("BUG: ", Kind::Bug),
        ("Oops", Kind::Other),
        ("Kernel panic - not syncing", Kind::Panic),
    ];
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        n += 1;
        let line = String::from_utf8_lossy(&buf);
        if let Some((h, kind)) = HEADS.iter().find(|(h, _)| line.contains(h)) {
            let text = line[line.find(h).unwrap_or(0)..].trim_end().to_string();
            out.push(Finding {
                kind: *kind,
                title: text.clone(),
                frame: None,
                corrupted: false,
                trace: vec![],
                task: None,
                pid: None,
                cpu: None,
                timestamp: None,
                line: n,
                report: text,
            });
        }
    }
    Ok(out)
}

/// `{"findings": [...]}` as printed by `kmatrix parse --json`.
pub fn findings_json(findings: &[Finding]) -> serde_json::Value {
    serde_json::json!({ "findings": findings })
}
