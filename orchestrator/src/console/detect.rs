//! Recognising the first line of a kernel report.
//!
//! Each branch quotes the format strings it handles, from the kernel tree the project
//! targets (7.3) and from older kernels whose logs still turn up; the census test
//! (`tests/console_census.rs`) checks that every report head of the target tree is
//! recognised here with the right kind.

use super::frame::parse_frame;
use crate::record::finding::{Frame, Kind};

/// What kind of report a head line starts; decides kind, title and guilty-frame rules.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Head {
    /// Lockdep report titled `{prefix} in X`; `at_first` prefers the `at:` frames.
    Lockdep {
        prefix: &'static str,
        at_first: bool,
    },
    /// Lockdep-family report with a fixed title (no frame appended).
    LockdepFixed(String),
    /// Lock debugging outside lockdep (`BUG: spinlock bad magic`, `BUG: workqueue
    /// leaked atomic, lock or RCU`): kind lockdep, titled `{title} in X`.
    LockDebug(String),
    SuspiciousRcu,
    SleepInvalid,
    SchedAtomic,
    /// The other execution-context checks of the scheduler and DEBUG_PREEMPT
    /// (`BUG: using smp_processor_id() in preemptible code`, `BUG: assuming atomic
    /// context`): kind sleep_in_atomic, titled `{title} in X`.
    Context(String),
    /// Hung task; the title prefix (`INFO: task hung`, `INFO: task can't die`).
    HungTask(&'static str),
    NullDeref,
    PagingFault,
    Gpf,
    /// `kernel BUG at file:line!`; `Some(title)` for checkers (`BUG: corrupted list`).
    Bug(Option<&'static str>),
    /// `WARNING:` from `__warn`; `Some(class)` for warnings raised by generic checkers
    /// (`ODEBUG bug`, `refcount bug`, ...) whose callers are the interesting frame.
    Warning(Option<&'static str>),
    /// An unwinder's complaint (`WARNING: kernel stack regs has bad value`): kind
    /// warning, fixed title; inside another report it is part of that report.
    Unwinder(String),
    Kasan(String),
    Kfence(String),
    Kmsan(String),
    Kcsan(String),
    Ubsan(String),
    Kmemleak,
    RcuStall,
    /// `INFO: rcu_preempt detected stall, but suppressed full report due to a stuck
    /// CSD-lock.`: a stall with no stack to name (the CSD-lock report has them).
    RcuStallSuppressed,
    SoftLockup,
    HardLockup,
    Panic(String),
    /// A report that stops the machine by itself (`PANIC: double fault`): kind panic,
    /// titled `{title} in X` from the faulting frame.
    Fatal(String),
    /// A trap or fault oops without a more precise head (`invalid opcode`, `divide
    /// error`, arm64 `Internal error: Oops - BUG`): kind other, titled `{title} in X`
    /// from the faulting frame.
    Trap(String),
    /// A kernel stack overflow (x86 `BUG: %s stack guard page was hit`, arm64
    /// `Insufficient stack space to handle exception!`): kind other, titled
    /// `kernel stack overflow in X` after the recursion.
    Overflow,
    /// Anything else that is clearly a report: title base; frame appended when found.
    Other(String),
}

impl Head {
    pub fn kind(&self) -> Kind {
        match self {
            Head::Lockdep { .. }
            | Head::LockdepFixed(_)
            | Head::LockDebug(_)
            | Head::SuspiciousRcu => Kind::Lockdep,
            Head::SleepInvalid | Head::SchedAtomic | Head::Context(_) => Kind::SleepInAtomic,
            Head::HungTask(_) => Kind::HungTask,
            Head::NullDeref => Kind::NullDeref,
            Head::PagingFault => Kind::PagingFault,
            Head::Gpf => Kind::Gpf,
            Head::Bug(_) => Kind::Bug,
            Head::Warning(_) | Head::Unwinder(_) => Kind::Warning,
            Head::Kasan(_) => Kind::Kasan,
            Head::Kfence(_) => Kind::Kfence,
            Head::Kmsan(_) => Kind::Kmsan,
            Head::Kcsan(_) => Kind::Kcsan,
            Head::Ubsan(_) => Kind::Ubsan,
            Head::Kmemleak => Kind::Kmemleak,
            Head::RcuStall | Head::RcuStallSuppressed => Kind::RcuStall,
            Head::SoftLockup => Kind::SoftLockup,
            Head::HardLockup => Kind::HardLockup,
            Head::Panic(_) | Head::Fatal(_) => Kind::Panic,
            Head::Trap(_) | Head::Overflow | Head::Other(_) => Kind::Other,
        }
    }
}

/// A recognised report head line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Start {
    pub head: Head,
    pub task: Option<String>,
    pub pid: Option<u32>,
    pub cpu: Option<u32>,
    /// Functions named on the head line itself (WARNING location, KASAN `in func`).
    pub frames: Vec<Frame>,
    /// An `Oops:`/`Internal error:`/`invalid opcode:` line: continues an open oops.
    pub oops_line: bool,
    /// A line that starts a report only when none is open in its stream, and is part
    /// of the open one otherwise (unwinder complaints, SLUB's `INFO: Allocated in`).
    pub weak: bool,
}

impl Start {
    fn new(head: Head) -> Self {
        Start {
            head,
            task: None,
            pid: None,
            cpu: None,
            frames: Vec::new(),
            oops_line: false,
            weak: false,
        }
    }

    fn weak(mut self) -> Self {
        self.weak = true;
        self
    }
}

/// Cheap pre-filter on the first message byte: every head line starts with one of these.
#[inline]
pub(crate) fn may_start(msg: &[u8]) -> bool {
    matches!(
        msg.first(),
        Some(
            b'W' | b'B'
                | b'I'
                | b'U'
                | b'g'
                | b'k'
                | b'K'
                | b'u'
                | b'r'
                | b'w'
                | b'N'
                | b'O'
                | b'i'
                | b'd'
                | b's'
                | b'['
                | b't'
                | b'P'
        )
    )
}

/// Boot banners: whatever report was open has been cut off by a reboot.
pub(crate) fn is_banner(msg: &[u8]) -> bool {
    msg.starts_with(b"Linux version ")
        || msg.starts_with(b"Booting Linux on physical CPU")
        || msg.starts_with(b"SeaBIOS (version")
        || msg.starts_with(b"U-Boot ")
        || msg.starts_with(b"EFI stub: Booting Linux Kernel")
        || msg.starts_with(b"Booting the kernel")
}

/// kernel/locking/lockdep.c heads (`pr_warn("WARNING: possible circular locking
/// dependency detected\n")` ...): (words after `WARNING: `, title prefix, `at:` first).
const LOCKDEP_HEADS: &[(&str, &str, bool)] = &[
    (
        "possible circular locking dependency detected",
        "possible deadlock",
        true,
    ),
    (
        "possible recursive locking detected",
        "possible recursive locking",
        true,
    ),
    ("inconsistent lock state", "inconsistent lock state", true),
    (
        "bad unlock balance detected",
        "WARNING: bad unlock balance",
        true,
    ),
    ("held lock freed", "WARNING: held lock freed", true),
    (
        "lock held when returning to user space",
        "WARNING: lock held when returning to user space",
        true,
    ),
    (
        "possible irq lock inversion dependency detected",
        "possible deadlock",
        true,
    ),
    // 7.3 capitalises it: `WARNING: Nested lock was not taken`.
    (
        "nested lock was not taken",
        "nested lock was not taken",
        false,
    ),
    (
        "Nested lock was not taken",
        "nested lock was not taken",
        false,
    ),
    ("bad contention detected", "bad contention", false),
    ("Invalid wait context", "BUG: Invalid wait context", false),
    (
        "trying to register non-static key",
        "INFO: trying to register non-static key",
        false,
    ),
    // `WARNING: chain_key collision` (print_collision, CONFIG_DEBUG_LOCKDEP).
    ("chain_key collision", "WARNING: chain_key collision", false),
];

fn lockdep_head(rest: &str) -> Option<Start> {
    for &(pat, prefix, at_first) in LOCKDEP_HEADS {
        if rest.starts_with(pat) {
            return Some(Start::new(Head::Lockdep { prefix, at_first }));
        }
    }
    if rest.starts_with("suspicious RCU usage") {
        return Some(Start::new(Head::SuspiciousRcu));
    }
    if rest.contains("-safe -> ") && rest.contains("-unsafe lock order detected") {
        return Some(Start::new(Head::Lockdep {
            prefix: "possible deadlock",
            at_first: true,
        }));
    }
    None
}

/// `probe/85` → (`probe`, 85), splitting at the last `/` (task names may hold `/`).
fn task_pid(s: &str) -> Option<(String, u32)> {
    let (name, pid) = s.trim().rsplit_once('/')?;
    let pid = pid
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    (!name.is_empty()).then(|| (name.to_string(), pid))
}

/// `INFO: task probe:85 blocked for more than 10 seconds.` (7.3 also prints `blocked
/// in I/O wait for more than`), old kernels' `INFO: task probe:85 can't die for more
/// than 120 seconds.` Lines naming the lock owner (`INFO: task probe:85 is blocked on
/// a mutex likely owned by task ...`) are part of the hung-task report, not heads.
fn hung_task(task: &str) -> Option<Start> {
    let (who, _) = task.split_once(" for more than ")?;
    let (name_pid, state) = who.rsplit_once(' ').map_or((who, ""), |(a, b)| (a, b));
    let (name_pid, prefix) = match state {
        "blocked" => (name_pid, "INFO: task hung"),
        "wait" => {
            let n = name_pid.strip_suffix(" blocked in I/O")?;
            (n, "INFO: task hung")
        }
        "die" => (name_pid.strip_suffix(" can't")?, "INFO: task can't die"),
        _ => return None,
    };
    let mut s = Start::new(Head::HungTask(prefix));
    if let Some((name, pid)) = name_pid.rsplit_once(':') {
        s.task = Some(name.to_string());
        s.pid = pid.parse().ok();
    }
    Some(s)
}

/// RCU stall heads (kernel/rcu/tree_stall.h, tree_exp.h, tasks.h): `INFO: rcu_preempt
/// detected stalls on CPUs/tasks:`, `self-detected stall on CPU`, `detected expedited
/// stalls on CPUs/tasks: {`, `rcu_tasks detected stalls on tasks:`, and the CSD-lock
/// variants. `Expedited stall ended before state dump start` and the like are part of
/// a stall report.
fn rcu_stall(rest: &str) -> Option<Start> {
    let stall = rest.contains("detected stall") || rest.contains("detected expedited stall");
    if stall && rest.contains("suppressed full report") {
        return Some(Start::new(Head::RcuStallSuppressed));
    }
    stall.then(|| Start::new(Head::RcuStall))
}

/// Unwinder complaints (arch/x86/kernel/unwind_frame.c, unwind_orc.c, dumpstack_*.c):
/// printed while some stack is dumped, usually inside another report.
fn unwinder(rest: &str) -> Option<Start> {
    // `WARNING: kernel stack regs at %p in %s:%d has bad 'bp' value %p`,
    // `WARNING: kernel stack frame pointer at %p in %s:%d has bad value %p`.
    for (what, bad, title) in [
        (
            "kernel stack regs at ",
            " has bad 'bp' value",
            "WARNING: kernel stack regs has bad value",
        ),
        (
            "kernel stack frame pointer at ",
            " has bad value",
            "WARNING: kernel stack frame pointer has bad value",
        ),
    ] {
        if let Some(r) = rest.strip_prefix(what) {
            let Some((before, _)) = r.split_once(bad) else {
                continue;
            };
            let mut s = Start::new(Head::Unwinder(title.into())).weak();
            if let Some((_, who)) = before.split_once(" in ") {
                if let Some((name, pid)) = who.rsplit_once(':') {
                    s.task = Some(name.to_string());
                    s.pid = pid.parse().ok();
                }
            }
            return Some(s);
        }
    }
    // orc_warn() prefixes its own `WARNING: `, some callers add another. The title is
    // the complaint's fixed words.
    let r = rest.strip_prefix("WARNING: ").unwrap_or(rest);
    const ORC: &[&str] = &[
        "stack recursion on stack type",
        "bad lookup idx",
        "bad lookup value",
        "Bad or missing .orc_unwind table",
        "Corrupt .orc_unwind table",
        "missing AX value",
        "missing DX value",
        "missing RDI value",
        "missing R10 value",
        "missing R13 value",
        "unknown SP base reg",
        "can't access registers",
        "can't access iret registers",
        "unknown .orc_unwind entry type",
        "unknown BP base reg",
        "stack going in the wrong direction?",
    ];
    let what = ORC.iter().find(|p| r.starts_with(*p))?;
    Some(Start::new(Head::Unwinder(format!("WARNING: {what}"))).weak())
}

/// The first four bytes of every head this module recognises: most console lines are
/// turned away here, before any of the branches below compares whole prefixes.
const HEAD_STARTS: &[&[u8; 4]] = &[
    b"WARN", b"BUG:", b"BUG ", b"[ BU", b"[ IN", b"INFO", b"rcu:", b"watc", b"NMI ", b"Watc",
    b"Unab", b"gene", b"Oops", b"kern", b"UBSA", b"kmem", b"unre", b"Kern", b"PANI", b"trap",
    b"inva", b"divi", b"stac", b"Inte", b"Insu", b"kasa", b"Unha",
];

fn head_prefix(b: &[u8]) -> bool {
    match b.get(..4) {
        Some(&[a, b1, c, d]) => HEAD_STARTS.contains(&&[a, b1, c, d]),
        _ => false,
    }
}

/// Recognises a report head line. `msg` is the line without printk prefixes.
pub(crate) fn detect(msg: &str) -> Option<Start> {
    let msg = msg.trim_end();
    // KASAN_INLINE kernels before 4.16 printed this hint without a newline, so the
    // fault's own line follows on the same console line.
    let msg = msg
        .strip_prefix("kasan: GPF could be caused by NULL-ptr deref or user memory access")
        .filter(|rest| rest.starts_with("general protection fault"))
        .unwrap_or(msg);
    if !head_prefix(msg.as_bytes()) {
        return None;
    }
    if let Some(rest) = msg.strip_prefix("WARNING: ") {
        return warning_line(msg, rest);
    }
    if let Some(rest) = msg.strip_prefix("BUG: ") {
        return bug(rest);
    }
    if let Some(rest) = msg
        .strip_prefix("[ BUG: ")
        .or_else(|| msg.strip_prefix("[ INFO: "))
    {
        let rest = rest.trim_end_matches(" ]");
        // Before 4.9: `[ BUG: %s/%d still has locks held! ]`.
        if rest.ends_with(" still has locks held!") {
            return Some(Start::new(Head::Lockdep {
                prefix: "BUG: still has locks held",
                at_first: true,
            }));
        }
        return lockdep_head(rest);
    }
    if let Some(rest) = msg.strip_prefix("INFO: ") {
        return info_line(rest);
    }
    if let Some(rest) = msg.strip_prefix("rcu: INFO: ") {
        return rcu_stall(rest);
    }
    for p in ["watchdog: ", "NMI watchdog: "] {
        if let Some(rest) = msg.strip_prefix(p) {
            return watchdog_line(rest);
        }
    }
    if msg.starts_with("Watchdog detected hard LOCKUP on cpu") {
        return Some(hard_lockup(msg));
    }
    // The remaining heads start with distinct words: at most one of these matches.
    fault_head(msg)
        .or_else(|| checker_head(msg))
        .or_else(|| panic_head(msg))
        .or_else(|| other_head(msg))
}

/// `WARNING: ...` lines: lockdep's, held locks at exit, unwinder complaints, `__warn`.
fn warning_line(msg: &str, rest: &str) -> Option<Start> {
    if let Some(s) = lockdep_head(rest) {
        return Some(s);
    }
    // `WARNING: %s/%d still has locks held!` (lockdep_print_held_locks on exit).
    if let Some(who) = rest.strip_suffix(" still has locks held!") {
        let mut s = Start::new(Head::Lockdep {
            prefix: "WARNING: still has locks held",
            at_first: true,
        });
        if let Some((name, pid)) = task_pid(who) {
            s.task = Some(name);
            s.pid = Some(pid);
        }
        return Some(s);
    }
    if let Some(s) = unwinder(rest) {
        return Some(s);
    }
    if rest.starts_with("Flushing system-wide workqueues will be prohibited") {
        // kernel/workqueue.c __warn_flushing_systemwide_wq: pr_warn + dump_stack.
        return Some(Start::new(Head::Warning(Some(
            "Flushing system-wide workqueues will be prohibited",
        ))));
    }
    warning(msg, rest)
}

/// `INFO: ...` lines: hung tasks, RCU stalls, old SLUB tracks, lockdep's old heads.
fn info_line(rest: &str) -> Option<Start> {
    if let Some(task) = rest.strip_prefix("task ") {
        return hung_task(task);
    }
    if let Some(s) = rcu_stall(rest) {
        return Some(s);
    }
    // SLUB debugging as KASAN printed it before 4.6 (mm/slub.c print_track:
    // `INFO: Allocated in %pS age=%lu cpu=%u pid=%d`): part of the open KASAN or
    // SLUB report; standing alone, its head line was lost.
    if rest.starts_with("Allocated in ") || rest.starts_with("Freed in ") {
        return Some(Start::new(Head::Kasan("bad access".into())).weak());
    }
    lockdep_head(rest)
}

/// `watchdog: ...` / `NMI watchdog: ...` lines: soft and hard lockups.
fn watchdog_line(rest: &str) -> Option<Start> {
    if let Some(r) = rest.strip_prefix("BUG: soft lockup") {
        return Some(soft_lockup(r));
    }
    // 7.3: `watchdog: CPU%u: Watchdog detected hard LOCKUP on cpu %u`.
    let rest = match rest.split_once(": ") {
        Some((cpu, r)) if cpu.starts_with("CPU") => r,
        _ => rest,
    };
    if rest.starts_with("Watchdog detected hard LOCKUP on cpu") {
        return Some(hard_lockup(rest));
    }
    None
}

/// Oopses: page faults, general protection faults, `kernel BUG at`.
fn fault_head(msg: &str) -> Option<Start> {
    if let Some(rest) = msg.strip_prefix("Unable to handle kernel ") {
        // arm64: `Unable to handle kernel %s at virtual address %016lx`.
        let head = if rest.starts_with("NULL pointer dereference") {
            Head::NullDeref
        } else {
            Head::PagingFault
        };
        return Some(Start::new(head));
    }
    if msg.starts_with("general protection fault")
        || msg.starts_with("Oops: general protection fault")
    {
        let mut s = Start::new(Head::Gpf);
        s.oops_line = true;
        return Some(s);
    }
    if let Some(rest) = msg.strip_prefix("kernel BUG at ") {
        let class = if rest.starts_with("lib/list_debug.c") {
            Some("BUG: corrupted list")
        } else if rest.starts_with("mm/usercopy.c") {
            Some("BUG: bad usercopy")
        } else {
            None
        };
        return Some(Start::new(Head::Bug(class)));
    }
    None
}

/// Sanitizers and checkers with their own head words: UBSAN, kmemleak.
fn checker_head(msg: &str) -> Option<Start> {
    if let Some(rest) = msg.strip_prefix("UBSAN: ") {
        let typ = rest.split_once(" in ").map_or(rest, |(t, _)| t);
        return Some(Start::new(Head::Ubsan(typ.trim().to_string())));
    }
    // mm/kmemleak.c: `unreferenced object%s 0x%08lx (size %zu):` (`%s` is ` (percpu)`
    // or empty), printed on the console with pr_fmt `kmemleak: ` on every line of the
    // report, or without it when read from /sys/kernel/debug/kmemleak.
    if let Some(r) = msg
        .strip_prefix("kmemleak: ")
        .unwrap_or(msg)
        .strip_prefix("unreferenced object ")
    {
        if r.starts_with("0x") || r.starts_with('(') {
            return Some(Start::new(Head::Kmemleak));
        }
        return None;
    }
    None
}

/// `Kernel panic - not syncing:` and `PANIC:` lines.
fn panic_head(msg: &str) -> Option<Start> {
    if let Some(rest) = msg.strip_prefix("Kernel panic - not syncing: ") {
        return Some(
            stack_panic(rest).unwrap_or_else(|| Start::new(Head::Panic(sanitize(rest, false)))),
        );
    }
    // `traps: PANIC: double fault, error_code: 0x0` (x86 traps.c, pr_fmt `traps: `),
    // `PANIC: invalid or fatal FRED event; ...` (entry_fred.c).
    if let Some(rest) = msg
        .strip_prefix("PANIC: ")
        .or_else(|| msg.strip_prefix("traps: PANIC: "))
    {
        let what = rest.split([',', ';']).next().unwrap_or(rest);
        let t = sanitize(what, false);
        if !t.is_empty() {
            return Some(Start::new(Head::Fatal(format!("PANIC: {t}"))));
        }
        return None;
    }
    None
}

/// Panics that are reports of their own, about the stack of the function that
/// panicked: `stack-protector: Kernel stack is corrupted in: %pB` (kernel/panic.c
/// __stack_chk_fail; the function whose canary was overwritten) and `corrupted stack end
/// detected inside scheduler` (kernel/sched/core.c, a stack overrun by runaway
/// recursion).
fn stack_panic(rest: &str) -> Option<Start> {
    if let Some(r) = rest.strip_prefix("stack-protector: Kernel stack is corrupted in: ") {
        let mut s = Start::new(Head::Fatal("kernel panic: stack is corrupted".into()));
        if let Some((f, _)) = parse_frame(r.trim()) {
            s.frames.push(f);
        }
        return Some(s);
    }
    if rest.starts_with("corrupted stack end detected inside scheduler") {
        return Some(Start::new(Head::Fatal(
            "kernel panic: corrupted stack end".into(),
        )));
    }
    None
}

/// Trap oopses, arm64 internal errors, SLUB, netdevice leaks, stack overflows.
fn other_head(msg: &str) -> Option<Start> {
    for (p, title) in [
        ("Oops: invalid opcode", "invalid opcode"),
        ("invalid opcode: ", "invalid opcode"),
        ("Oops: divide error", "divide error"),
        ("divide error: ", "divide error"),
        ("Oops: stack segment", "stack segment fault"),
        ("stack segment: ", "stack segment fault"),
        ("Oops: int3", "int3"),
        ("Oops: ", "Oops"),
        ("Internal error: ", ""),
    ] {
        if let Some(rest) = msg.strip_prefix(p) {
            let title = if title.is_empty() {
                let what = rest.split(": ").next().unwrap_or(rest);
                let what = what.split(" [#").next().unwrap_or(what).trim();
                match sanitize(what, false) {
                    w if w.is_empty() => "Internal error".to_string(),
                    w => format!("Internal error: {w}"),
                }
            } else {
                title.to_string()
            };
            let mut s = Start::new(Head::Trap(title));
            s.oops_line = true;
            return Some(s);
        }
    }
    // 32-bit arm (arch/arm/mm/fault.c do_DataAbort): `Unhandled fault: %s (0x%03x) at
    // 0x%08lx`, then the `Internal error:` oops line.
    if msg.starts_with("Unhandled fault: ") {
        return Some(Start::new(Head::Trap("Unhandled fault".into())));
    }
    // SLUB debugging (mm/slub.c slab_bug: `BUG %s (%s): %pV`):
    // `BUG kmalloc-64 (Not tainted): Object already free`.
    if let Some(rest) = msg.strip_prefix("BUG ") {
        let (cache, tail) = rest.split_once(' ')?;
        if !cache.is_empty() && tail.starts_with('(') {
            let (_, what) = tail.split_once("): ")?;
            let t = sanitize(what, false);
            if !t.is_empty() {
                let mut s = Start::new(Head::Other(format!("BUG: {t}")));
                // KASAN before 4.6 printed its object through SLUB inside its report.
                s.weak = t.starts_with("kasan:");
                return Some(s);
            }
        }
        return None;
    }
    // Printed every 10 s by a task waiting on a leaked reference, with no stack of its
    // own: it opens a report only when none is open.
    if msg.starts_with("unregister_netdevice: waiting for ") && msg.contains("to become free") {
        return Some(
            Start::new(Head::Other(
                "unregister_netdevice: waiting for DEV to become free".into(),
            ))
            .weak(),
        );
    }
    // arm64 handle_bad_stack: `Insufficient stack space to handle exception!`; titled
    // like x86's `BUG: %s stack guard page was hit` (the same bug on another arch).
    if msg.starts_with("Insufficient stack space to handle exception") {
        return Some(Start::new(Head::Overflow));
    }
    None
}

fn warning(msg: &str, rest: &str) -> Option<Start> {
    // `WARNING: CPU: 1 PID: 85 at mm/mmap.c:123 func+0x12/0x40 [mod]` (up to 6.x),
    // `WARNING: at mm/mmap.c:123 func+0x12/0x40()` (2.6/3.x),
    // kernel/panic.c __warn since 7.x: `WARNING: %s:%d at %pS, CPU#%d: %s/%d` and
    // `WARNING: at %pS, CPU#%d: %s/%d`; `%pS` of an unknown caller prints `0x0`.
    let old = rest.starts_with("CPU: ") && rest.contains(" at ");
    let new = rest.contains(" at ") && rest.contains(", CPU#");
    let ancient = rest.starts_with("at ") && !new;
    if !(old || new || ancient) {
        return None;
    }
    // Warnings raised inside generic checkers are titled by class, syzkaller-style.
    let class = [
        ("lib/debugobjects.c", "ODEBUG bug"),
        ("lib/refcount.c", "refcount bug"),
        ("kernel/locking/lockdep.c", "locking bug"),
        ("lib/kobject.c", "kobject bug"),
        ("mm/usercopy.c", "bad usercopy"),
        ("fs/proc/generic.c", "proc registration bug"),
    ]
    .iter()
    .find(|(file, _)| rest.contains(&format!("{file}:")))
    .map(|&(_, c)| c);
    let mut s = Start::new(Head::Warning(class));
    s.cpu = num_after(msg, "CPU: ").or_else(|| num_after(msg, "CPU#"));
    s.pid = num_after(msg, "PID: ");
    for (i, tok) in rest.split_whitespace().enumerate() {
        if tok.contains("+0x") {
            if let Some((f, _)) = parse_frame(tok.trim_end_matches("()").trim_end_matches(',')) {
                s.frames.push(f);
                break;
            }
        }
        if i > 12 {
            break;
        }
    }
    if let Some((_, tail)) = rest.split_once(", CPU#") {
        if let Some((_, task)) = tail.split_once(": ") {
            if let Some((name, pid)) = task_pid(task) {
                s.task = Some(name);
                s.pid = Some(pid);
            }
        }
    }
    Some(s)
}

/// `BUG: KASAN: slab-use-after-free in func+0x1/0x2`; old kernels: `BUG: KASAN: use
/// after free in func+0x1/0x2 at addr ...`, and 4.3's `BUG: KASan: ...`.
fn sanitizer_type(typ: &str) -> String {
    let t = typ.trim();
    let t = match t {
        "double-free or invalid-free" => "invalid-free",
        t => t,
    };
    t.replace(' ', "-")
        .replace("use-after-free-or-out-of-bounds", "use-after-free")
}

fn bug(rest: &str) -> Option<Start> {
    // The groups test distinct words: at most one of them matches.
    bug_sanitizer(rest)
        .or_else(|| bug_context(rest))
        .or_else(|| bug_lock_debugging(rest))
        .or_else(|| bug_fault(rest))
        .or_else(|| bug_lockdep(rest))
        .or_else(|| bug_other(rest))
}

/// `BUG: KASAN:`, `BUG: KFENCE:`, `BUG: KMSAN:`, `BUG: KCSAN:`.
fn bug_sanitizer(rest: &str) -> Option<Start> {
    for (p, mk, kasan) in [
        ("KASAN: ", Head::Kasan as fn(String) -> Head, true),
        ("KASan: ", Head::Kasan, true),
        ("KFENCE: ", Head::Kfence, false),
        ("KMSAN: ", Head::Kmsan, false),
    ] {
        if let Some(r) = rest.strip_prefix(p) {
            let (typ, func) = r.split_once(" in ").unwrap_or((r, ""));
            let typ = if kasan {
                sanitizer_type(typ)
            } else {
                typ.trim().to_string()
            };
            let mut s = Start::new(mk(typ));
            if let Some((f, _)) = parse_frame(func) {
                s.frames.push(f);
            }
            return Some(s);
        }
    }
    if let Some(r) = rest.strip_prefix("KCSAN: ") {
        let (typ, funcs) = r.split_once(" in ").unwrap_or((r, ""));
        let mut s = Start::new(Head::Kcsan(String::new()));
        let mut names = Vec::new();
        for part in funcs.split(" / ") {
            let part = part.trim();
            let name = match parse_frame(part) {
                Some((f, _)) => f.function,
                None => part.split_whitespace().next().unwrap_or("").to_string(),
            };
            if !name.is_empty() {
                names.push(super::frame::normalize(&name).to_string());
                s.frames.push(Frame {
                    function: name,
                    offset: None,
                    size: None,
                    module: None,
                    source: None,
                });
            }
        }
        s.head = Head::Kcsan(if names.is_empty() {
            format!("KCSAN: {}", typ.trim())
        } else {
            format!("KCSAN: {} in {}", typ.trim(), names.join(" / "))
        });
        return Some(s);
    }
    None
}

/// The scheduler's and DEBUG_PREEMPT's execution-context checks.
fn bug_context(rest: &str) -> Option<Start> {
    if rest.starts_with("sleeping function called from invalid context") {
        return Some(Start::new(Head::SleepInvalid));
    }
    if let Some(r) = rest.strip_prefix("scheduling while atomic: ") {
        let mut s = Start::new(Head::SchedAtomic);
        // `probe/85/0x00000002`
        let mut it = r.trim().rsplitn(3, '/');
        let _preempt = it.next();
        s.pid = it.next().and_then(|p| p.parse().ok());
        s.task = it.next().map(str::to_string);
        return Some(s);
    }
    // kernel/sched/core.c: `BUG: scheduling in a non-blocking section: %s/%d/%i`,
    // `BUG: assuming atomic context at %s:%d` (__cant_sleep), `BUG: assuming non
    // migratable context at %s:%d` (__cant_migrate).
    for what in [
        "scheduling in a non-blocking section",
        "assuming atomic context",
        "assuming non migratable context",
    ] {
        if rest.starts_with(what) {
            return Some(Start::new(Head::Context(format!("BUG: {what}"))));
        }
    }
    // lib/smp_processor_id.c: `BUG: using %s%s() in preemptible [%08x] code: %s/%d`,
    // with `smp_processor_id` or `__this_cpu_` + the operation.
    if let Some(r) = rest.strip_prefix("using ") {
        if let Some((what, tail)) = r.split_once("() in preemptible ") {
            let mut s = Start::new(Head::Context(format!(
                "BUG: using {what}() in preemptible code"
            )));
            if let Some((_, who)) = tail.split_once("code: ") {
                if let Some((name, pid)) = task_pid(who) {
                    s.task = Some(name);
                    s.pid = Some(pid);
                }
            }
            return Some(s);
        }
    }
    None
}

/// Spinlock and rwlock debugging, workqueue lock leaks.
fn bug_lock_debugging(rest: &str) -> Option<Start> {
    // kernel/locking/spinlock_debug.c: `BUG: spinlock %s on CPU#%d, %s/%d` (`bad
    // magic`, `already unlocked`, `wrong owner`, `wrong CPU`, `recursion`, `lockup
    // suspected`), `BUG: rwlock %s on CPU#%d, %s/%d, %p`.
    for lock in ["spinlock ", "rwlock "] {
        if let Some(r) = rest.strip_prefix(lock) {
            if let Some((what, tail)) = r.split_once(" on CPU#") {
                let mut s = Start::new(Head::LockDebug(format!(
                    "BUG: {lock}{}",
                    sanitize(what, false)
                )));
                s.cpu = num_after(tail, "");
                if let Some((_, who)) = tail.split_once(", ") {
                    if let Some((name, pid)) = task_pid(who.split(", ").next().unwrap_or(who)) {
                        s.task = Some(name);
                        s.pid = Some(pid);
                    }
                }
                return Some(s);
            }
        }
    }
    // kernel/workqueue.c: `BUG: workqueue leaked atomic, lock or RCU: %s[%d]` then
    // `     preempt=0x%08x lock=%d->%d RCU=%d->%d workfn=%ps`; before 6.x
    // `BUG: workqueue leaked lock or atomic: %s/0x%08x/%d` then `    last function: %ps`.
    for what in [
        "workqueue leaked atomic, lock or RCU",
        "workqueue leaked lock or atomic",
    ] {
        if rest.starts_with(what) {
            return Some(Start::new(Head::LockDebug(format!("BUG: {what}"))));
        }
    }
    None
}

/// Page faults and soft lockups printed as `BUG:`.
fn bug_fault(rest: &str) -> Option<Start> {
    if rest.starts_with("kernel NULL pointer dereference")
        || rest.starts_with("unable to handle kernel NULL pointer dereference")
    {
        return Some(Start::new(Head::NullDeref));
    }
    if rest.starts_with("unable to handle ") {
        return Some(Start::new(Head::PagingFault));
    }
    if let Some(r) = rest.strip_prefix("soft lockup") {
        return Some(soft_lockup(r));
    }
    None
}

/// Lockdep's own `BUG:` lines.
fn bug_lockdep(rest: &str) -> Option<Start> {
    if let Some(s) = lockdep_head(rest) {
        return Some(s);
    }
    if rest.contains("still has locks held") {
        return Some(Start::new(Head::Lockdep {
            prefix: "BUG: still has locks held",
            at_first: true,
        }));
    }
    // `BUG: looking up invalid subclass: %u` then the offender's stack.
    if rest.starts_with("looking up invalid subclass") {
        return Some(Start::new(Head::LockDebug(
            "BUG: looking up invalid subclass".into(),
        )));
    }
    // Capacity limits and unregistered keys: no frame makes them more precise (the
    // latter is followed by its own `WARNING: ... lockdep.c` report).
    if rest.starts_with("MAX_LOCK")
        || (rest.starts_with("key ") && rest.contains("has not been registered"))
    {
        return Some(Start::new(Head::LockdepFixed(format!(
            "BUG: {}",
            sanitize(rest, true)
        ))));
    }
    None
}

/// Stack overflows, and any other `BUG:` by its stable words.
fn bug_other(rest: &str) -> Option<Start> {
    // arch/x86/kernel/traps.c: `BUG: %s stack guard page was hit at %px (stack is
    // %px..%px)`; titled like arm64's stack overflow.
    if rest.contains("stack guard page was hit") {
        return Some(Start::new(Head::Overflow));
    }
    // syzkaller's kmemleak scans print `BUG: memory leak` before the kmemleak report.
    if rest == "memory leak" {
        return Some(Start::new(Head::Kmemleak));
    }
    let t = sanitize(rest, true);
    if t.is_empty() {
        return None;
    }
    Some(Start::new(Head::Other(format!("BUG: {t}"))))
}

fn soft_lockup(r: &str) -> Start {
    // ` - CPU#0 stuck for 22s! [probe:85]`
    let mut s = Start::new(Head::SoftLockup);
    s.cpu = num_after(r, "CPU#");
    if let Some(open) = r.rfind('[') {
        let inner = r[open + 1..].trim_end_matches(']');
        if let Some((name, pid)) = inner.rsplit_once(':') {
            s.task = Some(name.to_string());
            s.pid = pid.parse().ok();
        }
    }
    s
}

fn hard_lockup(r: &str) -> Start {
    let mut s = Start::new(Head::HardLockup);
    s.cpu = num_after(r, "on cpu ");
    s
}

pub(crate) fn num_after(s: &str, pat: &str) -> Option<u32> {
    let i = s.find(pat)? + pat.len();
    let digits: &str = &s[i..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Keeps the stable words of a free-form report line: skips bare addresses, stops at
/// the first token carrying a number, `key=value`, `task/pid`, at the end of the first
/// clause (`;`, a sentence's `.`), and drops dangling prepositions and punctuation.
pub(crate) fn sanitize(s: &str, cut_in: bool) -> String {
    let s = if cut_in {
        let s = s.split(" in process ").next().unwrap_or(s);
        s.split(" - ").next().unwrap_or(s)
    } else {
        s
    };
    let mut words: Vec<&str> = Vec::new();
    for tok in s.split_whitespace() {
        // `[00000000]` (preempt count and the like) carries no meaning: skip it.
        if tok.len() > 2
            && tok.starts_with('[')
            && tok.ends_with(']')
            && tok[1..tok.len() - 1].bytes().all(|b| b.is_ascii_hexdigit())
        {
            continue;
        }
        // A bare address (`ffff888004a1b2c0`, `0000000012345678`) in mid-sentence.
        if tok.len() >= 8 && tok.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        if tok
            .bytes()
            .any(|b| b.is_ascii_digit() || b == b'=' || b == b'/' || b == b'#')
            || tok.starts_with('[')
            || tok.starts_with('(')
            || words.len() >= 10
        {
            break;
        }
        words.push(tok);
        // End of a clause: `event;`, `table.` (but not `.orc_unwind` or `...`).
        if tok.len() > 1 && (tok.ends_with(';') || (tok.ends_with('.') && !tok.ends_with(".."))) {
            break;
        }
    }
    while let Some(last) = words.last() {
        let l = last.trim_end_matches([',', ':', ';', '-', '.']);
        if l.is_empty()
            || matches!(
                l,
                "in" | "at" | "on" | "for" | "of" | "by" | "from" | "to" | "process"
            )
        {
            words.pop();
        } else {
            break;
        }
    }
    let mut out = words.join(" ");
    while out.ends_with([',', ':', ';', '-', ' ', '.']) {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Head {
        detect(s).unwrap_or_else(|| panic!("no start: {s}")).head
    }

    #[test]
    fn heads() {
        assert_eq!(
            head("WARNING: possible circular locking dependency detected").kind(),
            Kind::Lockdep
        );
        assert_eq!(
            head("BUG: sleeping function called from invalid context at mm/memory.c:6000").kind(),
            Kind::SleepInAtomic
        );
        assert_eq!(
            head("BUG: kernel NULL pointer dereference, address: 0000000000000008"),
            Head::NullDeref
        );
        assert_eq!(
            head("BUG: unable to handle page fault for address: ffffc90000a3b000"),
            Head::PagingFault
        );
        assert_eq!(head("Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008"), Head::NullDeref);
        assert_eq!(
            head("Unable to handle kernel paging request at virtual address dead000000000108"),
            Head::PagingFault
        );
        assert_eq!(head("general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] PREEMPT SMP KASAN NOPTI"), Head::Gpf);
        assert_eq!(head("Oops: general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] SMP"), Head::Gpf);
        assert_eq!(head("kernel BUG at mm/mmap.c:3310!"), Head::Bug(None));
        assert_eq!(
            head("kernel BUG at lib/list_debug.c:62!"),
            Head::Bug(Some("BUG: corrupted list"))
        );
        assert_eq!(
            head("UBSAN: shift-out-of-bounds in mm/foo.c:12:34"),
            Head::Ubsan("shift-out-of-bounds".into())
        );
        assert_eq!(
            head("unreferenced object 0xffff888104d3a000 (size 64):"),
            Head::Kmemleak
        );
        assert_eq!(
            head("rcu: INFO: rcu_preempt self-detected stall on CPU"),
            Head::RcuStall
        );
        assert_eq!(
            head("rcu: INFO: rcu_sched detected stalls on CPUs/tasks:"),
            Head::RcuStall
        );
        assert_eq!(
            head("INFO: rcu_sched detected stalls on CPUs/tasks:"),
            Head::RcuStall
        );
        assert_eq!(
            head("NMI watchdog: Watchdog detected hard LOCKUP on cpu 1"),
            Head::HardLockup
        );
        assert_eq!(
            head("Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b"),
            Head::Panic("Attempted to kill init!".into())
        );
        assert_eq!(head("[ BUG: Invalid wait context ]").kind(), Kind::Lockdep);
    }

    #[test]
    fn head_details() {
        let s =
            detect("WARNING: CPU: 1 PID: 85 at mm/mmap.c:123 vma_foo+0x12/0x40 [kmod]").unwrap();
        assert_eq!((s.cpu, s.pid), (Some(1), Some(85)));
        assert_eq!(s.frames[0].function, "vma_foo");
        let s = detect("WARNING: mm/mmap.c:123 at vma_foo+0x12/0x40, CPU#3: probe/85").unwrap();
        assert_eq!(
            (s.cpu, s.pid, s.task.as_deref()),
            (Some(3), Some(85), Some("probe"))
        );
        assert_eq!(s.frames[0].function, "vma_foo");
        let s = detect("INFO: task probe:85 blocked for more than 122 seconds.").unwrap();
        assert_eq!((s.task.as_deref(), s.pid), (Some("probe"), Some(85)));
        let s = detect("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [probe:85]").unwrap();
        assert_eq!(
            (s.task.as_deref(), s.pid, s.cpu),
            (Some("probe"), Some(85), Some(0))
        );
        let s = detect("BUG: scheduling while atomic: probe/85/0x00000002").unwrap();
        assert_eq!((s.task.as_deref(), s.pid), (Some("probe"), Some(85)));
        let s = detect("BUG: KCSAN: data-race in vma_start_read / vma_start_write.part.0").unwrap();
        assert_eq!(
            s.head,
            Head::Kcsan("KCSAN: data-race in vma_start_read / vma_start_write".into())
        );
        let s = detect("BUG: KASAN: slab-use-after-free in vma_start_read+0x2c/0x180").unwrap();
        assert_eq!(s.head, Head::Kasan("slab-use-after-free".into()));
        assert_eq!(s.frames[0].function, "vma_start_read");
        assert_eq!(
            head("BUG: Bad rss-counter state mm:00000000c2b1 type:MM_ANONPAGES val:1"),
            Head::Other("BUG: Bad rss-counter state".into())
        );
        assert_eq!(
            head("BUG: using __this_cpu_read() in preemptible [00000000] code: syz/123"),
            Head::Context("BUG: using __this_cpu_read() in preemptible code".into())
        );
        assert_eq!(
            head("WARNING: CPU: 0 PID: 1 at lib/refcount.c:28 refcount_warn_saturate+0x1/0x2"),
            Head::Warning(Some("refcount bug"))
        );
        assert_eq!(
            head("BUG: KASAN: double-free or invalid-free in kfree+0x1/0x2"),
            Head::Kasan("invalid-free".into())
        );
        assert_eq!(
            head("BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 33s!"),
            Head::Other("BUG: workqueue lockup".into())
        );
    }

    #[test]
    fn more_heads() {
        assert_eq!(
            head("BUG kmalloc-64 (Tainted: G    B  ): Object already free"),
            Head::Other("BUG: Object already free".into())
        );
        assert_eq!(
            head("unregister_netdevice: waiting for lo to become free. Usage count = 2"),
            Head::Other("unregister_netdevice: waiting for DEV to become free".into())
        );
        assert_eq!(
            head("BUG: probe/85 still has locks held!").kind(),
            Kind::Lockdep
        );
        assert_eq!(
            head("stack segment: 0000 [#1] SMP"),
            Head::Trap("stack segment fault".into())
        );
        assert_eq!(
            head("Internal error: Oops - Undefined instruction: 0000000002000000 [#1] SMP"),
            Head::Trap("Internal error: Oops - Undefined instruction".into())
        );
    }

    #[test]
    fn ordinary_lines() {
        for s in [
            "Freeing unused kernel image (initmem) memory: 2660K",
            "Kernel command line: console=ttyS0 panic_on_warn=1",
            "WARNING: kernel not compiled with CPU_FREQ.",
            "INFO: NMI handler (perf_event_nmi_handler) took too long to run: 1.2 msecs",
            "rcu: Hierarchical RCU implementation.",
            "watchdog: Delayed init of the lockup detector failed: -19",
            "  Good, all 261 testcases passed! |",
            "traps: probe[85] general protection fault ip:401000 sp:7ffd error:0",
            "INFO: lockdep is turned off.",
            "random: crng init done",
        ] {
            assert!(detect(s).is_none(), "{s}");
        }
    }
}
