//! One kernel report as the console parser found it, and the stable vocabulary of
//! report kinds.

use serde::{Deserialize, Serialize};

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
    /// Why the title names no function although reports of its kind have one (no
    /// stack trace, only generic frames, an idle CPU...); such a finding is corrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_function: Option<String>,
    /// The console lines just before the report, captured when it was found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
}
