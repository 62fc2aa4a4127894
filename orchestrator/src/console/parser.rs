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

use super::detect::{self, Head, Start};
use super::frame::normalize;
use super::line::{self, Caller};
use super::report::{is_consequence_panic, Close, Report, Step, TraceState};
use crate::record::finding::{Finding, Kind};

const PANIC_ABSORB_LINES: usize = 100;
/// Reports open at once (one per printk caller); the oldest is cut off beyond.
const MAX_OPEN: usize = 32;
/// Bytes of a line looked at (printk lines are at most 1 KiB; a flood without newlines
/// must not grow memory).
pub(crate) const MAX_LINE_BYTES: usize = 4096;

/// What becomes of a head line.
enum Absorb {
    /// It continues the open report at this index.
    Into(usize),
    /// It is the consequence of a report already over (a panic): dropped.
    Drop,
    /// It starts a report.
    No,
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
        match start {
            Some(start) => match self.absorb(&start, route, &msg_s) {
                Absorb::Into(i) => self.open[i].push(raw_s),
                Absorb::Drop => {}
                Absorb::No => self.open_report(start, route, &l, raw_s, &mut out),
            },
            None => {
                if let Some((i, foreign)) = route {
                    self.report_line(i, foreign, &msg_s, raw_s, &mut out);
                }
            }
        }
        out
    }

    /// Whether a head line is part of an open report after all (or a consequence of
    /// one that is already over) rather than a report of its own.
    fn absorb(&self, start: &Start, route: Option<(usize, bool)>, msg: &str) -> Absorb {
        if start.weak {
            // Part of the open report, unless that is itself an unwinder's
            // complaint (several in a row are several complaints).
            if let Some((i, _)) =
                route.filter(|&(i, _)| !matches!(self.open[i].head, Head::Unwinder(_)))
            {
                return Absorb::Into(i);
            }
        }
        if let Head::Panic(_) = start.head {
            if let Some((i, _)) = route {
                return Absorb::Into(i);
            }
            let recent = self
                .last_closed
                .is_some_and(|c| self.line_no - c <= PANIC_ABSORB_LINES);
            if self.boot_had_report && (recent || is_consequence_panic(msg)) {
                return Absorb::Drop;
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
                    return Absorb::Into(i);
                }
            }
        }
        if let Some((i, false)) = route {
            // syzkaller's `BUG: memory leak` line, then the kmemleak report itself.
            let r = &self.open[i];
            if start.head == Head::Kmemleak && r.head == Head::Kmemleak && r.lines == 1 {
                return Absorb::Into(i);
            }
            // syzkaller-style symbolised logs repeat the head line once per inlined
            // frame (`BUG: KASAN: ... in inlined_fn file:line [inline]`, then the
            // outer function): keep the first, treat the rest as continuation.
            let r = &self.open[i];
            if r.heads_only && r.head == start.head && !start.frames.is_empty() {
                return Absorb::Into(i);
            }
        }
        Absorb::No
    }

    /// A new report: the open one of the same stream ends, the oldest is cut off when
    /// too many are open.
    fn open_report(
        &mut self,
        start: Start,
        route: Option<(usize, bool)>,
        l: &line::Line,
        raw: &str,
        out: &mut Vec<Finding>,
    ) {
        if let Some((i, false)) = route {
            let r = self.open.remove(i);
            self.emit(r, Close::NewReport, out);
        }
        self.boot_had_report = true;
        if self.open.len() >= MAX_OPEN {
            let r = self.open.remove(0);
            self.emit(r, Close::Cut, out);
        }
        self.open
            .push(Report::new(start, l.caller, self.line_no, l.ts, raw));
    }

    /// Any other line, fed to the open report it was routed to.
    fn report_line(
        &mut self,
        i: usize,
        foreign: bool,
        msg: &str,
        raw: &str,
        out: &mut Vec<Finding>,
    ) {
        // kmemleak prints every line of its report with its pr_fmt prefix.
        let m: &str = match (&self.open[i].head, msg.strip_prefix("kmemleak: ")) {
            (Head::Kmemleak, Some(rest)) => rest,
            _ => msg,
        };
        match self.open[i].add(raw, m, foreign) {
            Step::Keep => {}
            Step::CloseBefore | Step::CloseAfter => {
                let r = self.open.remove(i);
                self.emit(r, Close::Normal, out);
            }
            Step::Overflow => {
                let r = self.open.remove(i);
                self.emit(r, Close::Cut, out);
            }
        }
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
    use crate::console::report::{MAX_REPORT_BYTES, MAX_TRACE_FRAMES, TRUNCATED};

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
    fn stall_names_the_looping_entry_not_the_timer_interrupt() {
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
        // The fault path's entry into the per-VMA lock code, wherever the watchdog
        // interrupted it (here in vma_start_read).
        assert_eq!(f[0].title, "INFO: rcu detected stall in lock_vma_under_rcu");
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
