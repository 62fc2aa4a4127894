//! What the lines of a report look like: separators, trace headers, register dumps and
//! the trailers that belong to a report after its trace.

use std::sync::OnceLock;

use super::frame::{bare_frame, is_symbol, normalize, parse_frame};
use crate::record::finding::Frame;

pub(crate) fn is_separator(t: &str) -> bool {
    t.len() >= 10 && t.bytes().all(|b| b == b'=')
}

pub(crate) fn is_trace_header(t: &str) -> bool {
    let t = t.trim();
    t == "Call Trace:"
        || t == "Call trace:"
        || t == "Backtrace:"
        || t.starts_with("Backtrace: ")
        || t == "backtrace:"
        || (t.starts_with("backtrace (crc ") && t.ends_with("):"))
}

/// How report lines other than frames start (trailers, register dumps, sanitizer and
/// lockdep details, SLUB and page dumps).
const REPORTISH_PREFIXES: &[&str] = &[
    "Modules linked in",
    "---[",
    "Kernel Offset",
    "CPU: ",
    "Hardware name",
    "Workqueue:",
    "Call Trace",
    "Call trace",
    "Showing ",
    "NMI backtrace",
    "Sending NMI",
    "INFO: ",
    "Allocated by",
    "Freed by",
    "Last potentially",
    "Second to last",
    "The buggy address",
    "Memory state",
    "Disabling lock debugging",
    "irq event stamp",
    "hardirqs ",
    "softirqs ",
    "pc :",
    "lr :",
    "sp :",
    "pstate:",
    "Mem abort info",
    "Data abort info",
    "user pgtable",
    "swapper pgtable",
    "[",
    "#PF:",
    "PGD ",
    "Oops",
    "Internal error",
    "note:",
    "Kernel panic",
    "rcu: ",
    "task:",
    "Reported by",
    "value changed",
    "other info",
    "stack backtrace",
    "Fixing recursive fault",
    "Dumping ftrace",
    "page:",
    "page dumped",
    "page_owner",
    "page last",
    "flags:",
    "raw:",
    "head:",
    "Object ",
    "Redzone ",
    "Padding ",
    "Bytes b4",
    "Slab ",
    "kfence-#",
    "allocated by",
    "freed by",
    "Uninit was",
    "Local variable",
    "Memory ",
    "Code:",
    "ESR",
    "EC ",
    "IL ",
    "SET ",
    "FAR ",
    "CM ",
    "WnR ",
    "Preemption disabled",
    "in_atomic()",
    "preempt_count",
    "RIP:",
    "Register ",
    "Read of size",
    "Write of size",
    "Free of addr",
    "Call Trace",
    "Stack:",
    "Process ",
    "LR is at",
    "PC is at",
    "psr:",
    "sched: RT throttling",
    "Showing busy",
    "workqueue ",
    "pool ",
    "tainted",
    "Tainted",
    "NMI watchdog",
    "watchdog:",
    "list_",
    "ODEBUG",
    "refcount_t",
    "CR2:",
    "Dumping",
    "caller is ",
    "Allocated in ",
    "Freed in ",
    "object allocation/free stack trace missing",
    "Mempool ",
    "addr:",
    "file:",
    "pgd:",
    "memcg:",
    "page_type:",
    "anon flags:",
    "aops:",
    "mapping:",
    "FIX ",
    "turning off the locking correctness validator",
    "The code is fine but needs lockdep annotation",
    "you didn't initialize this object",
    "unwind stack type:",
    "Task stack:",
    "IRQ stack:",
    "Overflow stack:",
    "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\"",
];

/// Lines that belong in a report after its trace: indented text, register dumps, known
/// trailers. Anything else (userspace output, ordinary kernel messages) ends it.
pub(crate) fn is_reportish(t: &str) -> bool {
    let b = t.as_bytes();
    if b.is_empty() || b[0] == b' ' || b[0] == b'\t' {
        return true;
    }
    // The prefixes by first byte, built once: a line is checked against a handful only.
    static BY_FIRST: OnceLock<Vec<Vec<&'static str>>> = OnceLock::new();
    let table = BY_FIRST.get_or_init(|| {
        let mut t = vec![Vec::new(); 256];
        for p in REPORTISH_PREFIXES {
            t[usize::from(p.as_bytes()[0])].push(*p);
        }
        t
    });
    if table[usize::from(b[0])].iter().any(|p| t.starts_with(p)) {
        return true;
    }
    // SLUB's `-----...-----` under its `BUG kmalloc-64 (...)` line.
    if t.len() >= 10 && t.bytes().all(|c| c == b'-') {
        return true;
    }
    if is_register_line(t) {
        return true;
    }
    // `1 lock held by probe/85:`, lockdep scenario tables, `*** DEADLOCK ***`.
    b[0].is_ascii_digit() || t.contains(" held by ") || t.contains("lock(") || t.starts_with("***")
}

/// x86 registers `RAX: …`, `R08: …`, `FS:  …`; arm64 `x29: …`; unwind_dump's stack words.
pub(crate) fn is_register_line(t: &str) -> bool {
    if let Some(colon) = t.find(':') {
        // `x9 : 00000000ffffffff` pads one-digit arm64 registers.
        let reg = t[..colon].trim_end();
        if (2..=5).contains(&reg.len())
            && (reg
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                || (reg.starts_with('x') && reg[1..].bytes().all(|c| c.is_ascii_digit())))
        {
            return true;
        }
        // unwind_dump's stack words: `ffffc90000a3fe28: ffffffff81234567 (foo+0x1/0x2)`.
        if colon >= 8 && reg.bytes().all(|c| c.is_ascii_hexdigit()) {
            return true;
        }
    }
    false
}

/// `RIP: 0010:foo+0x1/0x2`, `pc : foo+0x1/0x2`, `PC is at foo+0x1/0x2`, `IP: [<..>] foo`:
/// the frame of a register dump's instruction pointer (None for user space).
pub(crate) fn rip_frame(trimmed: &str) -> Option<Frame> {
    let reg = trimmed
        .strip_prefix("RIP: ")
        .and_then(|r| r.split_once(':').map(|(_, f)| f))
        .or_else(|| trimmed.strip_prefix("pc : "))
        .or_else(|| trimmed.strip_prefix("PC is at "))
        .or_else(|| trimmed.strip_prefix("IP: "))?;
    parse_frame(reg).map(|(f, _)| f)
}

/// A frame printed with `%ps` (a bare name) or `%pS` (with offset).
pub(crate) fn plain_frame(s: &str) -> Option<Frame> {
    if let Some((f, _)) = parse_frame(s) {
        return Some(f);
    }
    let name = s.split_whitespace().next()?;
    is_symbol(name).then(|| bare_frame(name))
}

/// arm64 exception-entry frames: whatever the unwinder printed before them ran in the
/// interrupt, what follows is the interrupted code.
pub(crate) fn is_arm64_irq_entry(name: &str) -> bool {
    matches!(
        normalize(name),
        "el1h_64_irq" | "el1h_64_fiq" | "el1h_64_irq_handler" | "el1_interrupt" | "el0t_64_irq"
    )
}
