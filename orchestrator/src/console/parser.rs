//! The streaming state machine: one console line in, completed findings out.
//!
//! Reports are delimited as follows. A head line (see `detect`) opens a report. Lines
//! are routed to the open report of the same printk caller id (`[T85]`/`[C1]`) so
//! interleaved output of several CPUs is untangled when `CONFIG_PRINTK_CALLER` is on;
//! without caller ids there is one stream. A report ends at the next head line of its
//! stream, at a closing `=====` separator (sanitizer reports), at a boot banner (cut
//! off), at the first line after its call trace that is plainly not report text, or
//! at `finish`. Some head lines are "weak" (an unwinder's complaint, SLUB's `INFO:
//! Allocated in`): they open a report only when none is open in their stream.
//!
//! Panics: `Kernel panic - not syncing:` that follows a report (while it is open, or
//! within `PANIC_ABSORB_LINES` lines after it closed in the same boot, or any
//! consequence panic — `Fatal exception`, `panic_on_warn set`, `hung_task: blocked
//! tasks`, lockup/stall panics — after a report in this boot) is part of that report
//! (it is how the oops, `panic_on_warn`, `hung_task_panic`, `softlockup_panic` end) and
//! yields no finding of its own. A panic standing alone is a `panic` finding, marked
//! `corrupted` when it is a consequence panic (the report it ended was lost).
//!
//! Memory is bounded per report whatever the console does: a report keeps at most
//! `MAX_REPORT_BYTES` of text and `MAX_TRACE_FRAMES` frames, is cut off after
//! `MAX_REPORT_LINES` lines, at most `MAX_OPEN` reports are open at once, and a line is
//! looked at up to `MAX_LINE_BYTES`.

use std::borrow::Cow;
use std::sync::OnceLock;

use super::detect::{self, Head, Start};
use super::frame::{
    is_kept, is_skipped, kind_skip, normalize, parse_frame, parse_marker, title_name,
};
use super::line::{self, Caller};
use super::{Finding, Frame, Kind};

const PANIC_ABSORB_LINES: usize = 100;
const MAX_REPORT_LINES: usize = 4000;
const MAX_NOISE_BEFORE_TRACE: usize = 300;
/// Text kept per report; the rest is dropped (the finding says so in its text).
pub(crate) const MAX_REPORT_BYTES: usize = 256 * 1024;
/// Frames kept per report (trace and candidates alike).
pub(crate) const MAX_TRACE_FRAMES: usize = 256;
/// Reports open at once (one per printk caller); the oldest is cut off beyond.
const MAX_OPEN: usize = 32;
/// Bytes of a line looked at (printk lines are at most 1 KiB; a flood without newlines
/// must not grow memory).
pub(crate) const MAX_LINE_BYTES: usize = 4096;
const TRUNCATED: &str = "[... report text truncated by kmatrix ...]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TraceState {
    NotStarted,
    InProgress { depth: u32, nonframe: u32 },
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// Ended by its own format (trailer seen, or plain text after the trace).
    Normal,
    /// Another report started in the same stream.
    NewReport,
    /// Boot banner, end of input, or size limit.
    Cut,
}

/// A frame of the report's first trace as a guilty-frame candidate: where it ran.
#[derive(Debug, Clone)]
struct Cand {
    frame: Frame,
    /// Inside an `<IRQ>`/`<NMI>`/`<SOFTIRQ>` section (or, on arm64, below an
    /// `el1h_64_irq` exception frame): the interrupt, not the interrupted task.
    in_irq: bool,
    /// A `RIP:`/`pc :` line inside the trace: the interrupted code itself.
    rip: bool,
}

#[derive(Debug)]
struct Report {
    head: Head,
    caller: Option<Caller>,
    line: usize,
    timestamp: Option<f64>,
    text: String,
    truncated: bool,
    lines: usize,
    noise: usize,
    trace_state: TraceState,
    trace: Vec<Frame>,
    /// `? ` frames: used only when a trace has no reliable frame at all (kernels built
    /// with the guessing unwinder, as tinyconfig picks on x86_64).
    unreliable: Vec<Frame>,
    /// The first trace as candidates, with in-trace `RIP:` lines and their context.
    cands: Vec<Cand>,
    /// Depth of `<IRQ>`-like sections in the trace being read.
    irq_depth: u32,
    head_frames: Vec<Frame>,
    /// Frames of the first register dump's `RIP:`/`pc :` lines (several when the
    /// log is symbolised with inlining), innermost first.
    rips: Vec<Frame>,
    rips_done: bool,
    /// Only head lines so far (symbolised logs repeat the head once per inlined frame).
    heads_only: bool,
    at_frames: Vec<Frame>,
    chain0: Vec<Frame>,
    in_chain0: bool,
    pending_at: bool,
    prev_ends_colon: bool,
    explicit_end: bool,
    /// A sanitizer report's `Memory state around the buggy address` was seen.
    memory_state: bool,
    /// HW-tags KASAN's `Asynchronous fault: no details available`: no frame to find.
    no_details: bool,
    task: Option<String>,
    pid: Option<u32>,
    cpu: Option<u32>,
    access: Option<&'static str>,
    src_hint: Option<String>,
}

enum Step {
    Keep,
    /// Close; the line is not part of the report.
    CloseBefore,
    /// Close; the line was the report's last.
    CloseAfter,
    /// Close as cut off: the report grew past `MAX_REPORT_LINES`.
    Overflow,
}

fn is_separator(t: &str) -> bool {
    t.len() >= 10 && t.bytes().all(|b| b == b'=')
}

fn is_trace_header(t: &str) -> bool {
    let t = t.trim();
    t == "Call Trace:"
        || t == "Call trace:"
        || t == "Backtrace:"
        || t == "backtrace:"
        || (t.starts_with("backtrace (crc ") && t.ends_with("):"))
}

/// Lines that belong in a report after its trace: indented text, register dumps, known
/// trailers. Anything else (userspace output, ordinary kernel messages) ends it.
fn is_reportish(t: &str) -> bool {
    const PREFIXES: &[&str] = &[
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
    let b = t.as_bytes();
    if b.is_empty() || b[0] == b' ' || b[0] == b'\t' {
        return true;
    }
    // The prefixes by first byte, built once: a line is checked against a handful only.
    static BY_FIRST: OnceLock<Vec<Vec<&'static str>>> = OnceLock::new();
    let table = BY_FIRST.get_or_init(|| {
        let mut t = vec![Vec::new(); 256];
        for p in PREFIXES {
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
    // x86 registers `RAX: …`, `R08: …`, `FS:  …`; arm64 `x29: …`.
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
    // `1 lock held by probe/85:`, lockdep scenario tables, `*** DEADLOCK ***`.
    b[0].is_ascii_digit() || t.contains(" held by ") || t.contains("lock(") || t.starts_with("***")
}

/// `RIP: 0010:foo+0x1/0x2`, `pc : foo+0x1/0x2`, `PC is at foo+0x1/0x2`, `IP: [<..>] foo`:
/// the frame of a register dump's instruction pointer (None for user space).
fn rip_frame(trimmed: &str) -> Option<Frame> {
    let reg = trimmed
        .strip_prefix("RIP: ")
        .and_then(|r| r.split_once(':').map(|(_, f)| f))
        .or_else(|| trimmed.strip_prefix("pc : "))
        .or_else(|| trimmed.strip_prefix("PC is at "))
        .or_else(|| trimmed.strip_prefix("IP: "))?;
    parse_frame(reg).map(|(f, _)| f)
}

/// A frame printed with `%ps` (a bare name) or `%pS` (with offset).
fn plain_frame(s: &str) -> Option<Frame> {
    if let Some((f, _)) = parse_frame(s) {
        return Some(f);
    }
    let name = s.split_whitespace().next()?;
    let ok = !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    ok.then(|| Frame {
        function: name.to_string(),
        offset: None,
        size: None,
        module: None,
        source: None,
    })
}

/// arm64 exception-entry frames: whatever the unwinder printed before them ran in the
/// interrupt, what follows is the interrupted code.
fn is_arm64_irq_entry(name: &str) -> bool {
    matches!(
        normalize(name),
        "el1h_64_irq" | "el1h_64_fiq" | "el1h_64_irq_handler" | "el1_interrupt" | "el0t_64_irq"
    )
}

impl Report {
    fn new(start: Start, caller: Option<Caller>, line: usize, ts: Option<f64>, raw: &str) -> Self {
        let mut text = String::with_capacity(raw.len() + 1024);
        text.push_str(raw);
        text.push('\n');
        Report {
            head: start.head,
            caller,
            line,
            timestamp: ts,
            text,
            truncated: false,
            lines: 1,
            noise: 0,
            trace_state: TraceState::NotStarted,
            trace: Vec::new(),
            unreliable: Vec::new(),
            cands: Vec::new(),
            irq_depth: 0,
            head_frames: start.frames,
            rips: Vec::new(),
            rips_done: false,
            heads_only: true,
            at_frames: Vec::new(),
            chain0: Vec::new(),
            in_chain0: false,
            pending_at: false,
            prev_ends_colon: true,
            explicit_end: false,
            memory_state: false,
            no_details: false,
            task: start.task,
            pid: start.pid,
            cpu: start.cpu,
            access: None,
            src_hint: None,
        }
    }

    fn kind(&self) -> Kind {
        self.head.kind()
    }

    fn sanitizer(&self) -> bool {
        matches!(
            self.head,
            Head::Kasan(_) | Head::Kfence(_) | Head::Kmsan(_) | Head::Kcsan(_)
        )
    }

    fn expects_frame(&self) -> bool {
        !matches!(
            self.head,
            Head::Panic(_)
                | Head::Other(_)
                | Head::LockdepFixed(_)
                | Head::Unwinder(_)
                | Head::RcuStallSuppressed
        )
    }

    fn push(&mut self, raw: &str) {
        self.lines += 1;
        if self.text.len() + raw.len() < MAX_REPORT_BYTES {
            self.text.push_str(raw);
            self.text.push('\n');
        } else if !self.truncated {
            self.truncated = true;
            self.text.push_str(TRUNCATED);
            self.text.push('\n');
        }
    }

    fn push_frame(&mut self, frame: Frame, rip: bool) {
        if self.cands.len() >= MAX_TRACE_FRAMES {
            return;
        }
        if !rip && is_arm64_irq_entry(&frame.function) {
            for c in &mut self.cands {
                c.in_irq = true;
            }
        }
        if !rip && self.trace.len() < MAX_TRACE_FRAMES {
            self.trace.push(frame.clone());
        }
        self.cands.push(Cand {
            frame,
            in_irq: self.irq_depth > 0,
            rip,
        });
    }

    /// Feeds a line of this report's stream (or a foreign stream when it is the only
    /// open report; such lines never end it).
    fn add(&mut self, raw: &str, t: &str, foreign: bool) -> Step {
        self.heads_only = false;
        if self.lines >= MAX_REPORT_LINES {
            return Step::Overflow;
        }
        let trimmed = t.trim_start();
        if trimmed.starts_with("---[ end trace") {
            self.explicit_end = true;
            if matches!(self.trace_state, TraceState::InProgress { .. }) {
                self.trace_state = TraceState::Done;
            }
            self.push(raw);
            return Step::Keep;
        }
        if is_separator(t) {
            if matches!(self.head, Head::Ubsan(_)) || self.sanitizer() {
                // The closing `=====` comes after the trace and memory dump; KASAN before
                // 4.6 printed SLUB's own `=====` right after its first lines.
                if self.trace_state != TraceState::NotStarted || self.memory_state || self.lines > 3
                {
                    self.explicit_end = true;
                    self.push(raw);
                    return Step::CloseAfter;
                }
                self.push(raw);
                return Step::Keep;
            }
            if self.trace_state == TraceState::Done && !foreign {
                return Step::CloseBefore;
            }
            self.push(raw);
            return Step::Keep;
        }
        if let TraceState::InProgress { depth, nonframe } = self.trace_state {
            if let Some((name, open)) = parse_marker(trimmed) {
                let depth = if open {
                    depth.saturating_add(1)
                } else {
                    depth.saturating_sub(1)
                };
                if matches!(name, "IRQ" | "NMI" | "SOFTIRQ" | "#MC" | "#DB") {
                    self.irq_depth = if open {
                        self.irq_depth.saturating_add(1)
                    } else {
                        self.irq_depth.saturating_sub(1)
                    };
                }
                self.trace_state = if !open && depth == 0 && name == "TASK" {
                    TraceState::Done
                } else {
                    TraceState::InProgress { depth, nonframe: 0 }
                };
                self.push(raw);
                return Step::Keep;
            }
            if let Some((frame, unreliable)) = parse_frame(t) {
                // arm64 prints the LR-derived caller twice (`(L)` then plain).
                let dup = self
                    .trace
                    .last()
                    .is_some_and(|l| l.function == frame.function && l.offset == frame.offset);
                if unreliable {
                    let again = self
                        .unreliable
                        .last()
                        .is_some_and(|l| l.function == frame.function);
                    if !again && self.unreliable.len() < MAX_TRACE_FRAMES {
                        self.unreliable.push(frame);
                    }
                } else if !dup {
                    self.push_frame(frame, false);
                }
                self.trace_state = TraceState::InProgress { depth, nonframe: 0 };
                self.push(raw);
                return Step::Keep;
            }
            // The interrupted code inside a trace: `RIP: 0010:vma_start_read+0x6e/0x180`
            // after `asm_sysvec_apic_timer_interrupt`.
            if let Some(f) = rip_frame(trimmed) {
                self.push_frame(f, true);
            }
            if depth > 0 && nonframe < 40 {
                self.trace_state = TraceState::InProgress {
                    depth,
                    nonframe: nonframe + 1,
                };
                self.scan(t, trimmed);
                self.push(raw);
                return Step::Keep;
            }
            let structural = t.is_empty() || t.trim_end().ends_with(':') || is_reportish(t);
            if foreign && !structural {
                // Someone else's line in the middle of our trace: tolerate.
                self.push(raw);
                return Step::Keep;
            }
            if !structural && nonframe < 3 && !self.trace.is_empty() {
                // An unrelated message landed inside a marker-less (arm64) trace;
                // the trace may go on after it.
                self.trace_state = TraceState::InProgress {
                    depth,
                    nonframe: nonframe + 1,
                };
                self.push(raw);
                return Step::Keep;
            }
            self.trace_state = TraceState::Done;
        }
        if self.trace_state == TraceState::NotStarted {
            if is_trace_header(t) {
                self.trace_state = TraceState::InProgress {
                    depth: 0,
                    nonframe: 0,
                };
                self.in_chain0 = false;
                self.push(raw);
                return Step::Keep;
            }
            let implicit = !matches!(
                self.head,
                Head::Lockdep { .. } | Head::LockdepFixed(_) | Head::SuspiciousRcu | Head::Kasan(_)
            );
            if implicit && self.prev_ends_colon && t.starts_with([' ', '\t']) {
                if let Some((frame, unreliable)) = parse_frame(t) {
                    if !unreliable {
                        self.push_frame(frame, false);
                    }
                    self.trace_state = TraceState::InProgress {
                        depth: 0,
                        nonframe: 0,
                    };
                    self.push(raw);
                    return Step::Keep;
                }
            }
        }
        self.scan(t, trimmed);
        if !foreign && !is_reportish(t) {
            if self.explicit_end && !self.sanitizer() {
                return Step::CloseBefore;
            }
            match self.trace_state {
                TraceState::Done if !self.sanitizer() => return Step::CloseBefore,
                _ if !self.expects_frame() && self.trace_state == TraceState::NotStarted => {
                    return Step::CloseBefore
                }
                _ => {
                    self.noise += 1;
                    if self.noise > MAX_NOISE_BEFORE_TRACE {
                        return Step::CloseBefore;
                    }
                }
            }
        }
        self.prev_ends_colon = t.trim_end().ends_with(':') || self.lines == 1;
        self.push(raw);
        Step::Keep
    }

    /// Picks details out of non-frame lines.
    fn scan(&mut self, t: &str, trimmed: &str) {
        if !self.rips_done {
            if let Some(f) = rip_frame(trimmed) {
                if self.rips.len() < 16 {
                    self.rips.push(f);
                }
                return;
            }
            let user = trimmed.starts_with("RIP: 0033:") || trimmed.starts_with("pc : 0x");
            if !self.rips.is_empty() || user {
                self.rips_done = true;
            }
        }
        if trimmed.starts_with("Memory state around the buggy address") {
            self.memory_state = true;
            return;
        }
        if trimmed.starts_with("Asynchronous fault: no details available") {
            self.no_details = true;
            return;
        }
        if let Head::Context(_) = self.head {
            // lib/smp_processor_id.c: `caller is %pS` names the caller of
            // smp_processor_id() / this_cpu_*() directly.
            if let Some(r) = trimmed.strip_prefix("caller is ") {
                if let Some((f, _)) = parse_frame(r) {
                    self.head_frames.push(f);
                }
                return;
            }
        }
        if let Head::LockDebug(t) = &self.head {
            if t.starts_with("BUG: workqueue leaked") && self.head_frames.is_empty() {
                // `     preempt=0x00000000 lock=0->1 RCU=0->0 workfn=probe_work_fn`
                // (7.x) or `    last function: probe_work_fn` (older).
                let f = trimmed
                    .split_once("workfn=")
                    .map(|(_, f)| f)
                    .or_else(|| trimmed.strip_prefix("last function: "));
                if let Some(f) = f.and_then(plain_frame) {
                    self.head_frames.push(f);
                    return;
                }
            }
        }
        if self.task.is_none() {
            // `task:syz-executor    state:R  running task     stack:0 pid:5788 ...`
            if let Some(r) = trimmed.strip_prefix("task:") {
                if let Some((name, rest)) = r.split_once(" state:") {
                    self.task = Some(name.trim().to_string());
                    self.pid = detect::num_after(rest, " pid:");
                }
                return;
            }
        }
        if self.task.is_none() {
            // Old kernels: `Pid: 2411, comm: probe Not tainted 2.6.39 #1`.
            if let Some(r) = trimmed.strip_prefix("Pid: ") {
                self.pid = r.split(',').next().and_then(|p| p.trim().parse().ok());
                if let Some((_, comm)) = r.split_once("comm: ") {
                    let end = [" Not tainted", " Tainted:", " Tainted "]
                        .iter()
                        .filter_map(|p| comm.find(p))
                        .min()
                        .unwrap_or(comm.len());
                    self.task = Some(comm[..end].trim().to_string());
                }
                return;
            }
            // Lockdep: `probe/85 is trying to acquire lock:`.
            if self.kind() == Kind::Lockdep {
                if let Some((who, _)) = trimmed.split_once(" is ") {
                    if let Some((name, pid)) = who.rsplit_once('/') {
                        if let Ok(pid) = pid.parse() {
                            if !name.is_empty() && !name.contains(' ') {
                                self.task = Some(name.to_string());
                                self.pid = Some(pid);
                                return;
                            }
                        }
                    }
                }
            }
        }
        if self.cpu.is_none() || self.task.is_none() {
            if let Some(r) = trimmed.strip_prefix("CPU: ") {
                if self.cpu.is_none() {
                    self.cpu = detect::num_after(trimmed, "CPU: ");
                }
                if self.task.is_none() {
                    self.pid = detect::num_after(r, "PID: ").or(self.pid);
                    if let Some((_, comm)) = r.split_once("Comm: ") {
                        let end = [" Not tainted", " Tainted:", " Tainted "]
                            .iter()
                            .filter_map(|p| comm.find(p))
                            .min()
                            .unwrap_or(comm.len());
                        self.task = Some(comm[..end].trim().to_string());
                    }
                }
                return;
            }
        }
        if let Head::Kasan(_) = self.head {
            if self.access.is_none() {
                // Generic/SW-tags KASAN: `Read of size 4 at addr ...`; HW-tags: `Read at addr`.
                if trimmed.starts_with("Read of size") || trimmed.starts_with("Read at addr") {
                    self.access = Some("Read");
                } else if trimmed.starts_with("Write of size")
                    || trimmed.starts_with("Write at addr")
                {
                    self.access = Some("Write");
                }
                if self.access.is_some() {
                    self.task_from_by_task(trimmed);
                    return;
                }
            }
        }
        if matches!(self.head, Head::Kmemleak) && self.task.is_none() {
            if let Some(r) = trimmed.strip_prefix("comm \"") {
                if let Some((name, rest)) = r.split_once('"') {
                    self.task = Some(name.to_string());
                    self.pid = detect::num_after(rest, "pid ");
                }
                return;
            }
        }
        if matches!(self.head, Head::SleepInvalid | Head::Context(_)) && self.task.is_none() {
            if let Some((_, r)) = trimmed.split_once(" pid: ") {
                self.pid = r.split(',').next().and_then(|p| p.trim().parse().ok());
                if let Some((_, name)) = r.split_once("name: ") {
                    self.task = Some(name.trim().to_string());
                }
                return;
            }
        }
        if matches!(self.head, Head::SuspiciousRcu) && self.src_hint.is_none() {
            if let Some((loc, rest)) = trimmed.split_once(' ') {
                if rest.starts_with("suspicious ") && loc.contains(':') && loc.contains('.') {
                    self.src_hint = Some(loc.to_string());
                    return;
                }
            }
        }
        if let Head::Lockdep { at_first: true, .. } = self.head {
            if self.trace_state == TraceState::NotStarted {
                self.lockdep_line(t, trimmed);
            }
        }
    }

    fn task_from_by_task(&mut self, t: &str) {
        if let Some((_, r)) = t.split_once(" by task ") {
            if let Some((name, pid)) = r.trim().rsplit_once('/') {
                if self.task.is_none() {
                    self.task = Some(name.to_string());
                    self.pid = pid.trim().parse().ok();
                }
            }
        }
    }

    fn lockdep_line(&mut self, t: &str, trimmed: &str) {
        if let Some(r) = trimmed.strip_prefix("-> #") {
            self.in_chain0 = r.starts_with("0 ");
            self.pending_at = false;
            return;
        }
        if self.pending_at {
            self.pending_at = false;
            if let Some((f, _)) = parse_frame(t) {
                if self.at_frames.len() < 64 {
                    self.at_frames.push(f);
                }
                return;
            }
        }
        if self.in_chain0 {
            if let Some((f, _)) = parse_frame(t) {
                if self.chain0.len() < MAX_TRACE_FRAMES {
                    self.chain0.push(f);
                }
                return;
            }
            if !trimmed.is_empty() {
                self.in_chain0 = false;
            }
        }
        if let Some(i) = trimmed.rfind(" at:") {
            let after = &trimmed[i + 4..];
            if after.trim().is_empty() {
                self.pending_at = true;
            } else if let Some((f, _)) = parse_frame(after) {
                if self.at_frames.len() < 64 {
                    self.at_frames.push(f);
                }
            }
        }
    }

    /// The candidate frames for the guilty function, in order of preference.
    fn candidates(&self) -> Vec<&Frame> {
        let trace = self.cands.iter().filter(|c| !c.rip).map(|c| &c.frame);
        let head = self.head_frames.iter();
        let rip = self.rips.iter();
        match &self.head {
            Head::Lockdep { at_first: true, .. } => self
                .at_frames
                .iter()
                .take(2)
                .chain(self.chain0.iter())
                .chain(trace)
                .collect(),
            Head::Warning(_) => head.chain(rip).chain(trace).collect(),
            Head::Kasan(_) | Head::Kfence(_) | Head::Kmsan(_) | Head::Kcsan(_) => {
                head.chain(trace).collect()
            }
            Head::Context(_) | Head::LockDebug(_) => head.chain(trace).collect(),
            // Stalls and lockups: what the CPU was stuck in, not the interrupt that
            // noticed it. In-trace `RIP:` lines of the interrupted task first, then the
            // register dump, then the task part of the trace.
            Head::SoftLockup | Head::HardLockup | Head::RcuStall => {
                let task_rips = self
                    .cands
                    .iter()
                    .filter(|c| c.rip && !c.in_irq)
                    .map(|c| &c.frame);
                let task = self
                    .cands
                    .iter()
                    .filter(|c| !c.rip && !c.in_irq)
                    .map(|c| &c.frame);
                task_rips.chain(rip).chain(task).collect()
            }
            Head::NullDeref
            | Head::PagingFault
            | Head::Gpf
            | Head::Bug(None)
            | Head::Fatal(_)
            | Head::Other(_) => rip.chain(trace).collect(),
            _ => trace.collect(),
        }
    }

    fn guilty(&self, preferred: &[String]) -> Option<String> {
        let extra = kind_skip(&self.head);
        let ok = |f: &&Frame| {
            let n = normalize(&f.function);
            is_kept(n) || !is_skipped(n) && !extra.iter().any(|p| n.contains(p))
        };
        let cands = self.candidates();
        // A function the series changes, when the report passes through it.
        if !preferred.is_empty() {
            let pref = cands.iter().filter(|f| ok(f)).find(|f| {
                let n = normalize(&f.function);
                preferred.iter().any(|p| p == n)
            });
            if let Some(f) = pref {
                return Some(title_name(&f.function));
            }
        }
        if let Head::HungTask(_) = self.head {
            // Hangs on RCU grace periods or rtnl show up at random victim stacks:
            // bucket them by the thing waited for.
            for f in &self.trace {
                let n = normalize(&f.function);
                if n.starts_with("rtnl_lock") {
                    return Some("rtnl_lock".into());
                }
                if ["synchronize_rcu", "synchronize_srcu", "synchronize_net"]
                    .iter()
                    .any(|a| n.starts_with(a))
                {
                    return Some("synchronize_rcu".into());
                }
            }
        }
        cands
            .into_iter()
            .find(|f| ok(f))
            .map(|f| title_name(&f.function))
    }

    fn title(&self, frame: Option<&str>) -> String {
        let base: Cow<str> = match &self.head {
            Head::Lockdep { prefix, .. } => Cow::Borrowed(prefix),
            Head::LockdepFixed(t) | Head::Unwinder(t) => return t.clone(),
            Head::LockDebug(t) | Head::Context(t) | Head::Fatal(t) => Cow::Borrowed(t.as_str()),
            Head::SuspiciousRcu => match (&self.src_hint, frame) {
                (Some(src), None) => return format!("WARNING: suspicious RCU usage at {src}"),
                _ => Cow::Borrowed("WARNING: suspicious RCU usage"),
            },
            Head::SleepInvalid => {
                Cow::Borrowed("BUG: sleeping function called from invalid context")
            }
            Head::SchedAtomic => Cow::Borrowed("BUG: scheduling while atomic"),
            Head::HungTask(p) => Cow::Borrowed(*p),
            Head::NullDeref => {
                Cow::Borrowed("BUG: unable to handle kernel NULL pointer dereference")
            }
            Head::PagingFault => Cow::Borrowed("BUG: unable to handle kernel paging request"),
            Head::Gpf => Cow::Borrowed("general protection fault"),
            Head::Bug(None) => Cow::Borrowed("kernel BUG"),
            Head::Bug(Some(t)) => Cow::Borrowed(*t),
            Head::Warning(None) => Cow::Borrowed("WARNING"),
            Head::Warning(Some(class)) => Cow::Owned(format!("WARNING: {class}")),
            Head::Kasan(t) => match self.access {
                Some(a) => Cow::Owned(format!("KASAN: {t} {a}")),
                None => Cow::Owned(format!("KASAN: {t}")),
            },
            Head::Kfence(t) => Cow::Owned(format!("KFENCE: {t}")),
            Head::Kmsan(t) => Cow::Owned(format!("KMSAN: {t}")),
            Head::Kcsan(t) => return t.clone(),
            Head::Ubsan(t) => Cow::Owned(format!("UBSAN: {t}")),
            Head::Kmemleak => Cow::Borrowed("memory leak"),
            Head::RcuStall => Cow::Borrowed("INFO: rcu detected stall"),
            Head::RcuStallSuppressed => return "INFO: rcu detected stall".into(),
            Head::SoftLockup => Cow::Borrowed("BUG: soft lockup"),
            Head::HardLockup => Cow::Borrowed("BUG: hard lockup"),
            Head::Panic(m) => return format!("kernel panic: {m}"),
            Head::Other(t) => Cow::Borrowed(t.as_str()),
        };
        match frame {
            Some(f) => format!("{base} in {f}"),
            None => base.into_owned(),
        }
    }

    fn into_finding(mut self, why: Close, preferred: &[String]) -> Finding {
        if self.trace.is_empty() {
            self.trace = std::mem::take(&mut self.unreliable);
            self.cands = self
                .trace
                .iter()
                .map(|f| Cand {
                    frame: f.clone(),
                    in_irq: false,
                    rip: false,
                })
                .chain(self.cands.drain(..).filter(|c| c.rip))
                .collect();
        }
        let frame = self.guilty(preferred);
        let unclosed_trace =
            matches!(self.trace_state, TraceState::InProgress { depth, .. } if depth > 0);
        // A marker-less (arm64, old x86) trace still "in progress" is whole if another
        // report followed it or it reached a bottom-of-stack frame.
        let trace_whole = match self.trace_state {
            TraceState::Done => true,
            TraceState::InProgress { depth: 0, .. } => {
                why == Close::NewReport || self.trace.last().is_some_and(|f| is_bottom(&f.function))
            }
            _ => false,
        };
        // Some lockdep reports (lock held when returning to user space) carry no stack
        // trace at all: their `at:` frame is the whole story.
        let at_only = matches!(self.head, Head::Lockdep { at_first: true, .. })
            && !self.at_frames.is_empty()
            && why != Close::Cut;
        let complete = at_only
            || if self.sanitizer() {
                self.explicit_end || (why == Close::Normal && trace_whole)
            } else if self.expects_frame() {
                self.explicit_end || trace_whole || why == Close::Normal
            } else {
                !unclosed_trace
            };
        // A panic that names the end of another report, standing alone, means the
        // report itself was lost.
        let orphan_panic = matches!(&self.head, Head::Panic(m) if is_consequence_panic(m));
        let frameless = self.expects_frame() && frame.is_none() && !self.no_details;
        let corrupted = orphan_panic || !complete || frameless;
        let title = self.title(frame.as_deref());
        let kind = self.kind();
        let mut report = self.text;
        if report.ends_with('\n') {
            report.pop();
        }
        Finding {
            kind,
            title,
            frame,
            corrupted,
            trace: self.trace,
            task: self.task,
            pid: self.pid,
            cpu: self.cpu,
            timestamp: self.timestamp,
            line: self.line,
            report,
            ..Default::default()
        }
    }
}

/// Panic messages that only ever end another report (oops, `panic_on_warn`, hung task,
/// lockup and stall panics). After a report in the same boot they belong to it however
/// far away they are printed; alone they mean that report was lost.
fn is_consequence_panic(msg: &str) -> bool {
    [
        "Fatal exception",
        "panic_on_warn set",
        "hung_task: blocked tasks",
        "softlockup: hung tasks",
        "Hard LOCKUP",
        "hard LOCKUP",
        "RCU Stall",
        "Machine halted",
        "kernel stack overflow",
    ]
    .iter()
    .any(|p| msg.contains(p))
}

/// Frames a stack walk ends at: task entry from user space, kthreads, idle/boot.
fn is_bottom(name: &str) -> bool {
    let n = normalize(name);
    n.starts_with("el0t_")
        || n.starts_with("entry_SYSCALL")
        || n.starts_with("ret_from_fork")
        || n.starts_with("entry_SYSENTER")
        || n.starts_with("asm_exc_")
        || n.starts_with("asm_sysvec_")
        || matches!(
            n,
            "kthread"
                | "cpu_startup_entry"
                | "secondary_start_kernel"
                | "start_kernel"
                | "rest_init"
                | "__primary_switched"
                | "start_secondary"
                | "common_startup_64"
                | "x86_64_start_kernel"
                | "x86_64_start_reservations"
                | "el1h_64_irq"
                | "el1h_64_sync"
        )
}

/// Streaming console parser. Feed lines (without the newline) with [`Parser::feed`];
/// call [`Parser::finish`] at the end of the log.
#[derive(Debug, Default)]
pub struct Parser {
    line_no: usize,
    open: Vec<Report>,
    last_closed: Option<usize>,
    boot_had_report: bool,
    /// Functions the series under test changes (normalised names).
    preferred: Vec<String>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that names a report after a function the series under test changes
    /// whenever the report's frames pass through one (after the skip rules), e.g. from
    /// [`changed_functions`](super::changed_functions) of the series' patches.
    pub fn with_preferred(functions: Vec<String>) -> Parser {
        let mut preferred: Vec<String> = Vec::new();
        for f in functions {
            let n = normalize(f.trim()).to_string();
            if !n.is_empty() && !preferred.contains(&n) {
                preferred.push(n);
            }
        }
        Parser {
            preferred,
            ..Self::default()
        }
    }

    /// Feeds one console line; returns the findings that this line completed.
    pub fn feed(&mut self, raw: &[u8]) -> Vec<Finding> {
        self.line_no += 1;
        let raw = &raw[..raw.len().min(MAX_LINE_BYTES)];
        let l = line::split(raw);
        let msg = l.msg;
        let could_start = detect::may_start(msg);
        if self.open.is_empty() && !could_start && !msg.starts_with(b"Linux version") {
            return Vec::new();
        }
        let mut out = Vec::new();
        if detect::is_banner(msg) {
            self.close_all(Close::Cut, &mut out);
            self.last_closed = None;
            self.boot_had_report = false;
            return out;
        }
        let msg_s = String::from_utf8_lossy(msg);
        let start = if could_start {
            detect::detect(&msg_s)
        } else {
            None
        };
        if start.is_none() && self.open.is_empty() {
            return out;
        }
        let raw_s = String::from_utf8_lossy(raw);
        let raw_s = raw_s.trim_end_matches(['\r', '\n']);
        let route = self.route(l.caller);
        if let Some(start) = start {
            if start.weak {
                // Part of the open report, unless that is itself an unwinder's
                // complaint (several in a row are several complaints).
                if let Some((i, _)) =
                    route.filter(|&(i, _)| !matches!(self.open[i].head, Head::Unwinder(_)))
                {
                    self.open[i].push(raw_s);
                    return out;
                }
            }
            if let Head::Panic(_) = start.head {
                if let Some((i, _)) = route {
                    self.open[i].push(raw_s);
                    return out;
                }
                let recent = self
                    .last_closed
                    .is_some_and(|c| self.line_no - c <= PANIC_ABSORB_LINES);
                if self.boot_had_report && (recent || is_consequence_panic(&msg_s)) {
                    return out;
                }
            }
            if start.oops_line {
                if let Some((i, _)) = route {
                    let r = &self.open[i];
                    // `Oops: general protection fault`, `Internal error: Oops - BUG`
                    // after the report's first lines (the fault's `BUG:` line, a
                    // KASAN/UBSAN report that panics) continue it.
                    let continues = !matches!(
                        r.head,
                        Head::Panic(_)
                            | Head::HungTask(_)
                            | Head::Kmemleak
                            | Head::RcuStall
                            | Head::Lockdep { .. }
                            | Head::SuspiciousRcu
                    ) && r.trace_state == TraceState::NotStarted
                        && r.lines < 40;
                    if continues {
                        self.open[i].push(raw_s);
                        return out;
                    }
                }
            }
            if let Some((i, false)) = route {
                // syzkaller-style symbolised logs repeat the head line once per inlined
                // frame (`BUG: KASAN: ... in inlined_fn file:line [inline]`, then the
                // outer function): keep the first, treat the rest as continuation.
                let r = &self.open[i];
                if r.heads_only && r.head == start.head && !start.frames.is_empty() {
                    self.open[i].push(raw_s);
                    return out;
                }
                let r = self.open.remove(i);
                self.emit(r, Close::NewReport, &mut out);
            }
            self.boot_had_report = true;
            if self.open.len() >= MAX_OPEN {
                let r = self.open.remove(0);
                self.emit(r, Close::Cut, &mut out);
            }
            self.open
                .push(Report::new(start, l.caller, self.line_no, l.ts, raw_s));
            return out;
        }
        if let Some((i, foreign)) = route {
            // kmemleak prints every line of its report with its pr_fmt prefix.
            let m: &str = match (&self.open[i].head, msg_s.strip_prefix("kmemleak: ")) {
                (Head::Kmemleak, Some(rest)) => rest,
                _ => &msg_s,
            };
            match self.open[i].add(raw_s, m, foreign) {
                Step::Keep => {}
                Step::CloseBefore | Step::CloseAfter => {
                    let r = self.open.remove(i);
                    self.emit(r, Close::Normal, &mut out);
                }
                Step::Overflow => {
                    let r = self.open.remove(i);
                    self.emit(r, Close::Cut, &mut out);
                }
            }
        }
        out
    }

    /// The kinds of the reports open right now: their head line was seen, their end not
    /// yet (a hang report is known at its head, long before its trace is complete).
    pub fn open_kinds(&self) -> Vec<Kind> {
        self.open.iter().map(|r| r.kind()).collect()
    }

    /// Flushes reports still open at the end of the log (marked corrupted when they
    /// look cut off).
    pub fn finish(mut self) -> Vec<Finding> {
        let mut out = Vec::new();
        self.close_all(Close::Cut, &mut out);
        out
    }

    fn route(&self, caller: Option<Caller>) -> Option<(usize, bool)> {
        if self.open.is_empty() {
            return None;
        }
        if let Some(i) = self.open.iter().rposition(|r| r.caller == caller) {
            return Some((i, false));
        }
        if self.open.len() == 1 {
            return Some((0, caller.is_some()));
        }
        None
    }

    fn emit(&mut self, r: Report, why: Close, out: &mut Vec<Finding>) {
        self.last_closed = Some(self.line_no);
        out.push(r.into_finding(why, &self.preferred));
    }

    fn close_all(&mut self, why: Close, out: &mut Vec<Finding>) {
        let open = std::mem::take(&mut self.open);
        for r in open {
            self.emit(r, why, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> Vec<Finding> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for l in lines {
            out.extend(p.feed(l.as_bytes()));
        }
        out.extend(p.finish());
        out
    }

    #[test]
    fn orphan_fatal_exception_is_corrupted_panic() {
        let f = run(&[
            "[ 1.0] Kernel panic - not syncing: Fatal exception",
            "[ 1.1] Kernel Offset: disabled",
        ]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, Kind::Panic);
        assert!(f[0].corrupted);
    }

    #[test]
    fn crlf_and_no_timestamps() {
        let f = run(&[
            "WARNING: CPU: 0 PID: 1 at mm/x.c:1 foo_bar+0x1/0x2\r",
            "Call Trace:\r",
            " <TASK>\r",
            " foo_caller+0x3/0x4\r",
            " </TASK>\r",
            "---[ end trace 0000000000000000 ]---\r",
            "login: \r",
        ]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].title, "WARNING in foo_bar");
        assert!(!f[0].corrupted);
        assert_eq!(f[0].trace.len(), 1);
    }

    #[test]
    fn warning_words_outside_reports_are_ignored() {
        let f = run(&[
            "[ 0.1] Spectre V2 : WARNING: Unprivileged eBPF is enabled",
            "[ 0.2] WARNING: kernel not compiled with CPU_FREQ.",
            "[ 0.3] Freeing unused kernel image (initmem) memory: 2660K",
            "[ 0.4]   Good, all 261 testcases passed! |",
        ]);
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn report_text_keeps_prefixes() {
        let f = run(&[
            "[   5.000001] kernel BUG at mm/mmap.c:1!",
            "[   5.000002] RIP: 0010:foo+0x1/0x2",
            "[   5.000003] ---[ end trace 0000000000000000 ]---",
            "[   5.000004] ordinary line",
        ]);
        assert_eq!(f[0].title, "kernel BUG in foo");
        assert_eq!(f[0].timestamp, Some(5.000001));
        assert!(f[0].report.starts_with("[   5.000001] kernel BUG"));
        assert!(!f[0].report.contains("ordinary"));
    }

    #[test]
    fn symbolised_arm64_hung_task_and_new_warning_format() {
        let f = run(&[
            "INFO: task udevd:61 blocked for more than 143 seconds.",
            "      Not tainted 6.7.0 #0",
            "task:udevd           state:D stack:0     pid:61  tgid:61  ppid:57   flags:0x0000000d",
            "Call trace:",
            " __switch_to+0x314/0x560 arch/arm64/kernel/process.c:556",
            " context_switch kernel/sched/core.c:5376 [inline]",
            " __schedule+0x1354/0x2360 kernel/sched/core.c:6688",
            " __schedule_loop kernel/sched/core.c:6763 [inline]",
            " schedule+0xb8/0x19c kernel/sched/core.c:6778",
            " io_schedule+0x8c/0x12c kernel/sched/core.c:8998",
            " folio_wait_bit_common+0x65c/0xb90 mm/filemap.c:1273",
            " __folio_lock mm/filemap.c:1611 [inline]",
            " folio_lock include/linux/pagemap.h:1031 [inline]",
            " vma_reader_path+0x1e4/0xa60 mm/probe.c:10",
            " el0t_64_sync+0x190/0x194 arch/arm64/kernel/entry.S:595",
            "------------[ cut here ]------------",
            "WARNING: mm/probe.c:3938 at vma_check+0x17e/0x1e0 mm/probe.c:3938, CPU#1: syz.0.18/5892",
            "Modules linked in:",
            "RIP: 0010:vma_check+0x17e/0x1e0 mm/probe.c:3938",
            "Call Trace:",
            " <TASK>",
            " folio_mark_dirty+0x10a/0x200 mm/page-writeback.c:2792",
            " </TASK>",
        ]);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].title, "INFO: task hung in vma_reader_path");
        assert_eq!(
            f[0].trace[1].source.as_deref(),
            Some("kernel/sched/core.c:5376")
        );
        assert_eq!(f[1].title, "WARNING in vma_check");
        assert_eq!(
            (f[1].task.as_deref(), f[1].pid, f[1].cpu),
            (Some("syz.0.18"), Some(5892), Some(1))
        );
    }

    #[test]
    fn arm64_hw_tags_kasan() {
        let f = run(&[
            "==================================================================",
            "BUG: KASAN: invalid-access in vma_start_read+0x2c/0x180",
            "Read at addr f2ff000003a4c540 by task probe/85",
            "Pointer tag: [f2], memory tag: [fe]",
            "",
            "CPU: 1 UID: 0 PID: 85 Comm: probe Not tainted 6.12.0 #1",
            "Call trace:",
            " show_stack+0x20/0x38 (C)",
            " dump_stack_lvl+0x8c/0xd0",
            " print_report+0x118/0x5d0",
            " kasan_report+0xc8/0x118",
            " __do_kernel_fault+0x17c/0x1e8",
            " do_tag_check_fault+0x78/0x90",
            " do_mem_abort+0x48/0xa0",
            " el1_abort+0x40/0x60",
            " el1h_64_sync_handler+0xd8/0xe8",
            " el1h_64_sync+0x64/0x68",
            " vma_start_read+0x2c/0x180 (P)",
            " lock_vma_under_rcu+0xf4/0x1c0",
            "",
            "The buggy address belongs to the object at ffff000003a4c500",
            "==================================================================",
        ]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].title, "KASAN: invalid-access Read in vma_start_read");
        assert_eq!((f[0].task.as_deref(), f[0].pid), (Some("probe"), Some(85)));
        assert!(!f[0].corrupted);
    }

    #[test]
    fn hung_task_buckets_synchronize_rcu() {
        let f = run(&[
            "INFO: task kworker/0:1:12 blocked for more than 143 seconds.",
            "Call Trace:",
            " <TASK>",
            " __schedule+0x1/0x2",
            " schedule+0x1/0x2",
            " schedule_timeout+0x1/0x2",
            " wait_for_completion+0x1/0x2",
            " __wait_rcu_gp+0x1/0x2",
            " synchronize_rcu+0x1/0x2",
            " some_subsys_teardown+0x1/0x2",
            " </TASK>",
        ]);
        assert_eq!(f[0].title, "INFO: task hung in synchronize_rcu");
        assert_eq!(f[0].task.as_deref(), Some("kworker/0:1"));
        assert_eq!(f[0].pid, Some(12));
    }

    fn feed_all(p: &mut Parser, lines: &[&str]) -> Vec<Finding> {
        let mut out = Vec::new();
        for l in lines {
            out.extend(p.feed(l.as_bytes()));
        }
        out
    }

    const NULL_DEREF_IN_HELPER: &[&str] = &[
        "[  5.1] BUG: kernel NULL pointer dereference, address: 0000000000000008",
        "[  5.1] RIP: 0010:vma_start_read_locked_nested+0x12/0x60",
        "[  5.1] Call Trace:",
        "[  5.1]  <TASK>",
        "[  5.1]  down_read+0x1c/0x40",
        "[  5.1]  vma_start_read_unlocked+0x5a/0x90",
        "[  5.1]  tcp_zerocopy_receive+0x1a2/0x7d0",
        "[  5.1]  </TASK>",
    ];

    #[test]
    fn preferred_function_names_the_report() {
        let plain = run(NULL_DEREF_IN_HELPER);
        assert_eq!(
            plain[0].title,
            "BUG: unable to handle kernel NULL pointer dereference in vma_start_read_locked_nested"
        );
        let mut p = Parser::with_preferred(vec!["vma_start_read_unlocked".into()]);
        let mut f = feed_all(&mut p, NULL_DEREF_IN_HELPER);
        f.extend(p.finish());
        assert_eq!(
            f[0].title,
            "BUG: unable to handle kernel NULL pointer dereference in vma_start_read_unlocked"
        );
        assert_eq!(f[0].frame.as_deref(), Some("vma_start_read_unlocked"));
    }

    #[test]
    fn skip_rules_come_before_preference() {
        // A series that touches down_read() still does not get reports titled after a
        // lock primitive.
        let mut p = Parser::with_preferred(vec!["down_read".into(), "tcp_zerocopy_receive".into()]);
        let mut f = feed_all(&mut p, NULL_DEREF_IN_HELPER);
        f.extend(p.finish());
        assert_eq!(f[0].frame.as_deref(), Some("tcp_zerocopy_receive"));
    }

    #[test]
    fn syscall_wrappers_are_named_alike_on_both_arches() {
        let x86 = run(&[
            "INFO: task probe:85 blocked for more than 10 seconds.",
            "Call Trace:",
            " <TASK>",
            " __schedule+0x1/0x2",
            " schedule+0x1/0x2",
            " rwsem_down_write_slowpath+0x1/0x2",
            " down_write_killable+0x1/0x2",
            " __x64_sys_mprotect+0x1/0x2",
            " do_syscall_64+0x1/0x2",
            " </TASK>",
        ]);
        let arm64 = run(&[
            "INFO: task probe:85 blocked for more than 10 seconds.",
            "Call trace:",
            " __switch_to+0x1/0x2",
            " __schedule+0x1/0x2",
            " schedule+0x1/0x2",
            " rwsem_down_write_slowpath+0x1/0x2",
            " down_write_killable+0x1/0x2",
            " __arm64_sys_mprotect+0x1/0x2",
            " invoke_syscall+0x1/0x2",
            " el0_svc_common.constprop.0+0x1/0x2",
            " el0t_64_sync+0x1/0x2",
        ]);
        assert_eq!(x86[0].title, "INFO: task hung in __do_sys_mprotect");
        assert_eq!(x86[0].title, arm64[0].title);
    }

    #[test]
    fn stall_names_the_interrupted_code_not_the_timer_interrupt() {
        let f = run(&[
            "rcu: INFO: rcu_preempt self-detected stall on CPU",
            "rcu: \t1-....: (21000 ticks this GP) idle=b6c4/1/0x4000000000000000",
            "CPU: 1 UID: 0 PID: 85 Comm: probe Not tainted 7.3.4 #1",
            "RIP: 0010:print_cpu_stall_info+0x2a/0x90",
            "Call Trace:",
            " <IRQ>",
            " print_cpu_stall+0x1c0/0x2a0",
            " check_cpu_stall+0x1a5/0x2b0",
            " rcu_sched_clock_irq+0x4a/0x90",
            " update_process_times+0x5e/0x90",
            " tick_nohz_handler+0x8c/0x130",
            " __hrtimer_run_queues+0x10f/0x2a0",
            " hrtimer_interrupt+0xfa/0x230",
            " __sysvec_apic_timer_interrupt+0x55/0x140",
            " sysvec_apic_timer_interrupt+0x6c/0xb0",
            " </IRQ>",
            " <TASK>",
            " asm_sysvec_apic_timer_interrupt+0x1a/0x20",
            "RIP: 0010:vma_start_read+0x6e/0x180",
            "Code: 48 8b 45 00 eb e8",
            "RSP: 0018:ffffc900001f7d28 EFLAGS: 00000202",
            " lock_vma_under_rcu+0x10b/0x1d0",
            " do_user_addr_fault+0x1a5/0x6a0",
            " exc_page_fault+0x7e/0x180",
            " asm_exc_page_fault+0x26/0x30",
            " </TASK>",
        ]);
        assert_eq!(f[0].title, "INFO: rcu detected stall in vma_start_read");
        assert!(!f[0].corrupted);
    }

    #[test]
    fn a_flood_cannot_grow_a_report_without_bound() {
        let mut p = Parser::new();
        let mut out = p.feed(b"[  9.0] INFO: task probe:85 blocked for more than 10 seconds.");
        out.extend(p.feed(b"[  9.0] Call Trace:"));
        out.extend(p.feed(b"[  9.0]  <TASK>"));
        // Lines that all belong to the report: frames, then a register-dump-like flood.
        let frame = format!("[  9.0]  {}+0x1c/0x40", "f".repeat(200));
        for _ in 0..20_000 {
            out.extend(p.feed(frame.as_bytes()));
        }
        out.extend(p.finish());
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert!(
            f.report.len() <= MAX_REPORT_BYTES + 1024,
            "{} bytes kept",
            f.report.len()
        );
        assert!(f.report.ends_with(TRUNCATED), "the text says it was cut");
        assert!(f.trace.len() <= MAX_TRACE_FRAMES);
        assert!(
            f.corrupted,
            "a report cut off by the line limit is corrupted"
        );
    }

    #[test]
    fn many_interleaved_callers_keep_a_bounded_number_of_reports_open() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for t in 0..(3 * MAX_OPEN) {
            let head =
                format!("[  9.0][  T{t}] INFO: task probe:{t} blocked for more than 10 seconds.");
            out.extend(p.feed(head.as_bytes()));
            assert!(p.open.len() <= MAX_OPEN);
        }
        out.extend(p.finish());
        assert_eq!(out.len(), 3 * MAX_OPEN, "every report still comes out");
    }

    #[test]
    fn unwinder_complaint_inside_a_report_is_part_of_it() {
        let f = run(&[
            "BUG: sleeping function called from invalid context at mm/memory.c:6000",
            "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 85, name: probe",
            "Call Trace:",
            " <TASK>",
            " dump_stack_lvl+0x65/0x8c",
            "WARNING: kernel stack frame pointer at ffffc90000a3fe28 in probe:85 has bad value 0000000000000001",
            "unwind stack type:0 next_sp:0000000000000000 mask:0x2 graph_idx:0",
            "ffffc90000a3fe28: ffffc90000a3fe58 (0xffffc90000a3fe58)",
            " __might_resched+0x16c/0x1c0",
            " probe_sleepy+0x1c/0x40",
            " </TASK>",
        ]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            f[0].title,
            "BUG: sleeping function called from invalid context in probe_sleepy"
        );
        let alone = run(&[
            "WARNING: kernel stack frame pointer at ffffc90000a3fe28 in probe:85 has bad value 0000000000000001",
            "unwind stack type:0 next_sp:0000000000000000 mask:0x2 graph_idx:0",
            "probe: next line",
        ]);
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0].kind, Kind::Warning);
        assert_eq!(
            alone[0].title,
            "WARNING: kernel stack frame pointer has bad value"
        );
        assert!(!alone[0].corrupted);
    }
}
