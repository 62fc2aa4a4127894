//! One report being read: its text, frames and details, line by line, until it closes;
//! then the finding (title, guilty frame, corrupted or not).

use std::borrow::Cow;

use super::detect::{self, Head, Start};
use super::frame::{normalize, parse_frame, parse_marker};
use super::guilty::{Cand, Evidence};
use super::line::Caller;
use super::text::{
    is_arm64_irq_entry, is_register_line, is_reportish, is_separator, is_trace_header, plain_frame,
    rip_frame,
};
use crate::record::finding::{Finding, Frame, Kind};

const MAX_REPORT_LINES: usize = 4000;
const MAX_NOISE_BEFORE_TRACE: usize = 300;
/// Text kept per report; the rest is dropped (the finding says so in its text).
pub(crate) const MAX_REPORT_BYTES: usize = 256 * 1024;
/// Frames kept per report (trace and candidates alike).
pub(crate) const MAX_TRACE_FRAMES: usize = 256;
pub(crate) const TRUNCATED: &str = "[... report text truncated by kmatrix ...]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TraceState {
    NotStarted,
    InProgress { depth: u32, nonframe: u32 },
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// Ended by its own format (trailer seen, or plain text after the trace).
    Normal,
    /// Another report started in the same stream.
    NewReport,
    /// Boot banner, end of input, or size limit.
    Cut,
}

#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) head: Head,
    pub(crate) caller: Option<Caller>,
    line: usize,
    timestamp: Option<f64>,
    text: String,
    truncated: bool,
    pub(crate) lines: usize,
    noise: usize,
    pub(crate) trace_state: TraceState,
    trace: Vec<Frame>,
    /// `? ` frames: used only when a trace has no reliable frame at all (kernels built
    /// with the guessing unwinder, as tinyconfig picks on x86_64).
    unreliable: Vec<Frame>,
    /// The first trace as candidates, with in-trace `RIP:` lines and their context.
    cands: Vec<Cand>,
    /// Depth of `<IRQ>`-like sections in the trace being read.
    irq_depth: u32,
    /// An in-trace `RIP:` line was just read: its register dump is part of the trace.
    regs_in_trace: bool,
    /// The last frame line was arm64's LR-derived `(L)` one.
    after_lr: bool,
    /// An RCU stall whose stalled CPU was idle (`NMI backtrace for cpu 1 skipped:
    /// idling at ...`): there is no stack to name.
    idle_cpu: bool,
    /// The first trace is another task's (RCU's grace-period kthread): the next one
    /// replaces it.
    other_task_dump: bool,
    head_frames: Vec<Frame>,
    /// Frames of the first register dump's `RIP:`/`pc :` lines (several when the
    /// log is symbolised with inlining), innermost first.
    rips: Vec<Frame>,
    rips_done: bool,
    /// Only head lines so far (symbolised logs repeat the head once per inlined frame).
    pub(crate) heads_only: bool,
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

pub(crate) enum Step {
    Keep,
    /// Close; the line is not part of the report.
    CloseBefore,
    /// Close; the line was the report's last.
    CloseAfter,
    /// Close as cut off: the report grew past `MAX_REPORT_LINES`.
    Overflow,
}

impl Report {
    pub(crate) fn new(
        start: Start,
        caller: Option<Caller>,
        line: usize,
        ts: Option<f64>,
        raw: &str,
    ) -> Self {
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
            regs_in_trace: false,
            after_lr: false,
            idle_cpu: false,
            other_task_dump: false,
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

    pub(crate) fn kind(&self) -> Kind {
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

    pub(crate) fn push(&mut self, raw: &str) {
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
    pub(crate) fn add(&mut self, raw: &str, t: &str, foreign: bool) -> Step {
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
            return self.add_separator(raw, foreign);
        }
        if self.other_task_dump && self.trace_state != TraceState::NotStarted {
            // The stalled CPU's trace after a dump of RCU's own kthread: that is the one
            // (after its header, or after `NMI backtrace for cpu N` on 32-bit arm, which
            // prints no header).
            if is_trace_header(t) {
                self.restart_trace(TraceState::InProgress {
                    depth: 0,
                    nonframe: 0,
                });
                self.push(raw);
                return Step::Keep;
            }
            if trimmed.starts_with("NMI backtrace for cpu") && !trimmed.contains("skipped") {
                self.restart_trace(TraceState::NotStarted);
                self.push(raw);
                return Step::Keep;
            }
        }
        if let TraceState::InProgress { depth, nonframe } = self.trace_state {
            if let Some(step) = self.add_in_trace(raw, t, foreign, depth, nonframe) {
                return step;
            }
            self.trace_state = TraceState::Done;
        }
        if self.trace_state == TraceState::NotStarted {
            if let Some(step) = self.add_trace_start(raw, t) {
                return step;
            }
        }
        self.add_other(raw, t, foreign)
    }

    /// A `=====` line: a sanitizer report's end, or a lockdep banner.
    fn add_separator(&mut self, raw: &str, foreign: bool) -> Step {
        if matches!(self.head, Head::Ubsan(_)) || self.sanitizer() {
            // The closing `=====` comes after the trace and memory dump; KASAN before
            // 4.6 printed SLUB's own `=====` right after its first lines.
            if self.trace_state != TraceState::NotStarted || self.memory_state || self.lines > 3 {
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
        Step::Keep
    }

    /// A line while a call trace is being read: a marker, a frame, an in-trace register
    /// dump, or the line that ends the trace (None: the trace is over, the line is
    /// looked at as any other).
    fn add_in_trace(
        &mut self,
        raw: &str,
        t: &str,
        foreign: bool,
        depth: u32,
        nonframe: u32,
    ) -> Option<Step> {
        let trimmed = t.trim_start();
        if let Some((name, open)) = parse_marker(trimmed) {
            self.trace_marker(name, open, depth);
            self.push(raw);
            return Some(Step::Keep);
        }
        if let Some((frame, unreliable)) = parse_frame(t) {
            self.inline_marker(trimmed);
            self.trace_frame(frame, unreliable);
            self.after_lr = t.trim_end().ends_with(" (L)");
            self.regs_in_trace = false;
            self.trace_state = TraceState::InProgress { depth, nonframe: 0 };
            self.push(raw);
            return Some(Step::Keep);
        }
        // The interrupted code inside a trace: `RIP: 0010:vma_start_read+0x6e/0x180`
        // after `asm_sysvec_apic_timer_interrupt`, then its registers; the trace goes on
        // after them even outside any `<TASK>` section (kernels before 5.x).
        if let Some(f) = rip_frame(trimmed) {
            self.push_frame(f, true);
            self.regs_in_trace = true;
        }
        // 32-bit arm dumps an exception's stack words inside the trace.
        if trimmed.starts_with("Exception stack(") {
            self.regs_in_trace = true;
        }
        let regs = (self.regs_in_trace
            && (is_register_line(t)
                || trimmed.starts_with("Code: ")
                || trimmed.starts_with("Exception stack(")
                || is_stack_words(trimmed)))
            || is_saved_registers(trimmed);
        if (depth > 0 || regs) && nonframe < 40 {
            self.trace_state = TraceState::InProgress {
                depth,
                nonframe: nonframe + 1,
            };
            self.scan(t, trimmed);
            self.push(raw);
            return Some(Step::Keep);
        }
        // Indented text other than frames is tolerated like other noise (a message
        // continued on its next line); a blank line, a header (`Allocated by task 1:`)
        // or report text at the start of a line ends the trace.
        let structural = t.is_empty()
            || t.trim_end().ends_with(':')
            || (is_reportish(t) && !t.starts_with([' ', '\t']));
        if foreign && !structural {
            // Someone else's line in the middle of our trace: tolerate.
            self.push(raw);
            return Some(Step::Keep);
        }
        // An unrelated message landed inside a marker-less (arm64, old x86) trace, or
        // between its header and its first frame: the trace may go on after it.
        let tolerated = if self.trace.is_empty() { 8 } else { 3 };
        if !structural && nonframe < tolerated {
            self.trace_state = TraceState::InProgress {
                depth,
                nonframe: nonframe + 1,
            };
            self.push(raw);
            return Some(Step::Keep);
        }
        None
    }

    /// Forgets the trace read so far: it was another task's.
    fn restart_trace(&mut self, state: TraceState) {
        self.other_task_dump = false;
        self.trace.clear();
        self.unreliable.clear();
        self.cands.clear();
        self.irq_depth = 0;
        self.regs_in_trace = false;
        self.trace_state = state;
    }

    /// Old x86 traces mark interrupt stacks inside frame lines: `<IRQ>  [<..>] foo`
    /// opens one, `<EOI>  [<..>] bar` is the first frame after it.
    fn inline_marker(&mut self, trimmed: &str) {
        if let Some(rest) = trimmed.strip_prefix('<') {
            match rest.split_once('>').map(|(m, _)| m) {
                Some("IRQ" | "NMI" | "SOFTIRQ") => {
                    self.irq_depth = self.irq_depth.saturating_add(1)
                }
                Some("EOI" | "EOE") => self.irq_depth = self.irq_depth.saturating_sub(1),
                _ => {}
            }
        }
    }

    /// `<TASK>`, `</IRQ>`...: context sections of an x86 trace.
    fn trace_marker(&mut self, name: &str, open: bool, depth: u32) {
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
    }

    fn trace_frame(&mut self, frame: Frame, unreliable: bool) {
        // arm64 prints the LR-derived caller twice (`(L)` then plain); other repeats
        // are recursion.
        let dup = self.after_lr
            && self
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
    }

    /// Before any trace: a `Call Trace:` header, or the first frame of a trace printed
    /// without one (right after a line ending in `:`).
    fn add_trace_start(&mut self, raw: &str, t: &str) -> Option<Step> {
        if is_trace_header(t) {
            self.trace_state = TraceState::InProgress {
                depth: 0,
                nonframe: 0,
            };
            self.in_chain0 = false;
            self.push(raw);
            return Some(Step::Keep);
        }
        let implicit = !matches!(
            self.head,
            Head::Lockdep { .. } | Head::LockdepFixed(_) | Head::SuspiciousRcu | Head::Kasan(_)
        );
        // 32-bit arm prints some traces (hung tasks) without a header; its frame lines
        // (`[<c0100000>] (foo) from [<c0100100>] (bar+0x1/0x2)`) cannot be anything else.
        let arm32 = t.starts_with("[<") && t.contains(") from [<");
        if implicit && (arm32 || self.prev_ends_colon && t.starts_with([' ', '\t'])) {
            if let Some((frame, unreliable)) = parse_frame(t) {
                if !unreliable {
                    self.push_frame(frame, false);
                }
                self.trace_state = TraceState::InProgress {
                    depth: 0,
                    nonframe: 0,
                };
                self.push(raw);
                return Some(Step::Keep);
            }
        }
        None
    }

    /// Any other line: details are picked out of it; plain text ends the report once
    /// its trace is over (or when it has none to wait for).
    fn add_other(&mut self, raw: &str, t: &str, foreign: bool) -> Step {
        self.scan(t, t.trim_start());
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
        if self.scan_rip(trimmed)
            || self.scan_state(trimmed)
            || self.scan_head_frames(trimmed)
            || self.scan_task(trimmed)
            || self.scan_kind_details(trimmed)
        {
            return;
        }
        if let Head::Lockdep { at_first: true, .. } = self.head {
            if self.trace_state == TraceState::NotStarted {
                self.lockdep_line(t, trimmed);
            }
        }
    }

    /// The first register dump's `RIP:`/`pc :` lines.
    fn scan_rip(&mut self, trimmed: &str) -> bool {
        if self.rips_done {
            return false;
        }
        if let Some(f) = rip_frame(trimmed) {
            if self.rips.len() < 16 {
                self.rips.push(f);
            }
            return true;
        }
        let user = trimmed.starts_with("RIP: 0033:") || trimmed.starts_with("pc : 0x");
        if !self.rips.is_empty() || user {
            self.rips_done = true;
        }
        false
    }

    /// Sanitizer lines that say where the report is; RCU's dump of its own kthread.
    fn scan_state(&mut self, trimmed: &str) -> bool {
        // kernel/rcu/tree_stall.h rcu_check_gp_kthread_starvation: the grace-period
        // kthread's stack comes before the stalled CPU's.
        if trimmed.starts_with("rcu: RCU grace-period kthread stack dump:")
            || trimmed.starts_with("RCU grace-period kthread stack dump:")
        {
            self.other_task_dump = self.trace_state == TraceState::NotStarted;
            return true;
        }
        if trimmed.starts_with("Memory state around the buggy address") {
            self.memory_state = true;
            return true;
        }
        if trimmed.starts_with("Asynchronous fault: no details available") {
            self.no_details = true;
            return true;
        }
        if trimmed.starts_with("NMI backtrace for cpu") && trimmed.contains(" skipped: idling") {
            self.idle_cpu = true;
            return true;
        }
        false
    }

    /// Lines that name the culprit directly, as a head line would.
    fn scan_head_frames(&mut self, trimmed: &str) -> bool {
        if let Head::Context(_) = self.head {
            // lib/smp_processor_id.c: `caller is %pS` names the caller of
            // smp_processor_id() / this_cpu_*() directly.
            if let Some(r) = trimmed.strip_prefix("caller is ") {
                if let Some((f, _)) = parse_frame(r) {
                    self.head_frames.push(f);
                }
                return true;
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
                    return true;
                }
            }
        }
        false
    }

    /// The task, pid and CPU from the lines every report kind prints.
    fn scan_task(&mut self, trimmed: &str) -> bool {
        if self.task.is_none() {
            // `task:syz-executor    state:R  running task     stack:0 pid:5788 ...`
            if let Some(r) = trimmed.strip_prefix("task:") {
                if let Some((name, rest)) = r.split_once(" state:") {
                    self.task = Some(name.trim().to_string());
                    self.pid = detect::num_after(rest, " pid:");
                }
                return true;
            }
            // Old kernels: `Pid: 2411, comm: probe Not tainted 2.6.39 #1`.
            if let Some(r) = trimmed.strip_prefix("Pid: ") {
                self.pid = r.split(',').next().and_then(|p| p.trim().parse().ok());
                if let Some((_, comm)) = r.split_once("comm: ") {
                    self.task = Some(comm_name(comm));
                }
                return true;
            }
            // Lockdep: `probe/85 is trying to acquire lock:`; the line goes on to the
            // `at:` parsing (`... is trying to release lock (x) at:`).
            if self.kind() == Kind::Lockdep {
                self.task_from_is_line(trimmed);
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
                        self.task = Some(comm_name(comm));
                    }
                }
                return true;
            }
        }
        false
    }

    /// Lockdep's `probe/85 is trying to acquire lock:`.
    fn task_from_is_line(&mut self, trimmed: &str) {
        let Some((who, _)) = trimmed.split_once(" is ") else {
            return;
        };
        let Some((name, pid)) = who.rsplit_once('/') else {
            return;
        };
        if let Ok(pid) = pid.parse() {
            if !name.is_empty() && !name.contains(' ') {
                self.task = Some(name.to_string());
                self.pid = Some(pid);
            }
        }
    }

    /// Details particular to one report kind: KASAN's access, kmemleak's and the
    /// context checks' task, suspicious RCU usage's source line.
    fn scan_kind_details(&mut self, trimmed: &str) -> bool {
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
                    return true;
                }
            }
        }
        if matches!(self.head, Head::Kmemleak) && self.task.is_none() {
            if let Some(r) = trimmed.strip_prefix("comm \"") {
                if let Some((name, rest)) = r.split_once('"') {
                    self.task = Some(name.to_string());
                    self.pid = detect::num_after(rest, "pid ");
                }
                return true;
            }
        }
        if matches!(self.head, Head::SleepInvalid | Head::Context(_)) && self.task.is_none() {
            if let Some((_, r)) = trimmed.split_once(" pid: ") {
                self.pid = r.split(',').next().and_then(|p| p.trim().parse().ok());
                if let Some((_, name)) = r.split_once("name: ") {
                    self.task = Some(name.trim().to_string());
                }
                return true;
            }
        }
        if matches!(self.head, Head::SuspiciousRcu) && self.src_hint.is_none() {
            if let Some((loc, rest)) = trimmed.split_once(' ') {
                if rest.starts_with("suspicious ") && loc.contains(':') && loc.contains('.') {
                    self.src_hint = Some(loc.to_string());
                    return true;
                }
            }
        }
        false
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
            Head::Overflow => Cow::Borrowed("kernel stack overflow"),
            Head::Trap(t) | Head::Other(t) => Cow::Borrowed(t.as_str()),
        };
        match frame {
            Some(f) => format!("{base} in {f}"),
            None => base.into_owned(),
        }
    }

    pub(crate) fn into_finding(mut self, why: Close, preferred: &[String]) -> Finding {
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
        let frame = Evidence {
            head: &self.head,
            head_frames: &self.head_frames,
            rips: &self.rips,
            cands: &self.cands,
            trace: &self.trace,
            at_frames: &self.at_frames,
            chain0: &self.chain0,
        }
        .guilty(preferred);
        let complete = self.complete(why);
        // A panic that names the end of another report, standing alone, means the
        // report itself was lost.
        let orphan_panic = matches!(&self.head, Head::Panic(m) if is_consequence_panic(m));
        let no_function = self.no_function(frame.as_deref(), complete);
        // Nothing to name by nature (an asynchronous fault, an idle CPU) is no sign of a
        // damaged report; no frame where one was due is.
        let frameless = no_function.is_some() && !self.no_details && !self.idle_cpu;
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
            no_function,
            ..Default::default()
        }
    }

    /// Whether the report ended by its own format rather than being cut off.
    fn complete(&self, why: Close) -> bool {
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
        at_only
            || if self.sanitizer() {
                self.explicit_end || (why == Close::Normal && trace_whole)
            } else if self.expects_frame() {
                self.explicit_end || trace_whole || why == Close::Normal
            } else {
                !unclosed_trace
            }
    }

    /// Why a report of a kind that names a function has none in its title.
    fn no_function(&self, frame: Option<&str>, complete: bool) -> Option<String> {
        if frame.is_some() || !self.expects_frame() {
            return None;
        }
        let why = if self.no_details {
            "asynchronous fault: the hardware gave no details"
        } else if self.idle_cpu {
            "the stalled CPU was idle: no backtrace"
        } else if self.cands.is_empty() && self.rips.is_empty() && self.head_frames.is_empty() {
            if complete {
                "no stack trace in the report"
            } else {
                "cut off before its stack trace"
            }
        } else {
            "only reporting, locking, scheduling or entry frames"
        };
        Some(why.to_string())
    }
}

/// Panic messages that only ever end another report (oops, `panic_on_warn`, hung task,
/// lockup and stall panics). After a report in the same boot they belong to it however
/// far away they are printed; alone they mean that report was lost.
pub(crate) fn is_consequence_panic(msg: &str) -> bool {
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

/// `7cc0: 80f1911c 60030013 ...`: a line of a 32-bit arm stack dump.
fn is_stack_words(t: &str) -> bool {
    t.split_once(": ").is_some_and(|(addr, words)| {
        addr.len() == 4
            && addr.bytes().all(|b| b.is_ascii_hexdigit())
            && words
                .split_whitespace()
                .all(|w| w.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

/// ` r7:83675be0 r6:843d38dc`: registers 32-bit arm saved in a frame, printed under it.
fn is_saved_registers(t: &str) -> bool {
    !t.is_empty()
        && t.split_whitespace().all(|w| {
            w.split_once(':').is_some_and(|(reg, val)| {
                (1..=3).contains(&reg.len())
                    && reg
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    && !val.is_empty()
                    && val.bytes().all(|b| b.is_ascii_hexdigit())
            })
        })
}

/// The task name in `Comm: probe Not tainted 7.3.4 #1` (after `Comm: `/`comm: `).
fn comm_name(comm: &str) -> String {
    let end = [" Not tainted", " Tainted:", " Tainted "]
        .iter()
        .filter_map(|p| comm.find(p))
        .min()
        .unwrap_or(comm.len());
    comm[..end].trim().to_string()
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
