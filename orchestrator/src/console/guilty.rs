//! Which frame of a report names the bug: the function a kernel developer would blame,
//! never the machinery that reported it. Titles are how reports are deduplicated across
//! cells, boots and nights, so the rule of each report kind has to pick the same
//! function for the same bug wherever it was interrupted or caught.
//!
//! Every kind first drops the frames `skip` says are never guilty (reporting machinery,
//! lock primitives, allocators, entry code, sanitizer runtimes, generic helpers and
//! checkers whose caller is the culprit), then, by kind:
//! - oopses (NULL dereference, paging request, general protection fault, `kernel BUG`,
//!   trap oopses): the faulting function (`RIP:`/`pc :`), then its callers;
//! - WARNING: the function the WARNING line names, the `RIP:`, then the trace. Old x86
//!   kernels dumped the trap handlers (`fixup_bug`, `do_invalid_op`) first: a trace that
//!   passes through a synchronous exception is read from the interrupted code on.
//!   Assertion helpers (`vma_assert_*`, `mmap_assert_*`, `lockdep_assert_*`, refcount
//!   and list debugging) give way to their caller;
//! - sanitizers: the accessor on the head line, unless it is a helper that accesses
//!   memory for its caller (string, copy, bit and atomic helpers), then the trace;
//! - lockdep: the `at:` sites of the lock being taken or released (the function that
//!   broke the rule); `inconsistent lock state` the trace, where the state changed;
//!   lock debugging (`spinlock recursion`...) the first frame that is not a lock wrapper;
//! - stalls and lockups (and stack overflows, which are runaway recursion): the looping
//!   task's entry, the outermost specific function before the dispatcher that called
//!   it (syscall entry, workqueue, softirq, timer, VFS or socket dispatch), so that the
//!   same loop gets the same title wherever the watchdog interrupted it;
//! - hung task: the first frame of the blocked task that is not a wait or a lock
//!   primitive; hangs on an RCU grace period or on rtnl are bucketed by what they wait
//!   for, as the victims are random.
//!
//! A report with frames but no usable one gets no function; the finding is then marked
//! corrupted by `report` (the title says so by naming nothing).

use super::detect::Head;
use super::frame::{normalize, title_name};
use super::skip::{group, is_kept, matches_pattern, Group};
use crate::record::finding::Frame;

/// A frame of the report's first trace as a guilty-frame candidate: where it ran.
#[derive(Debug, Clone)]
pub(crate) struct Cand {
    pub frame: Frame,
    /// Inside an `<IRQ>`/`<NMI>`/`<SOFTIRQ>` section (or, on arm64, below an
    /// `el1h_64_irq` exception frame): the interrupt, not the interrupted task.
    pub in_irq: bool,
    /// A `RIP:`/`pc :` line inside the trace: the interrupted code itself.
    pub rip: bool,
}

/// What a report offers to name its culprit, gathered while it was read.
pub(crate) struct Evidence<'a> {
    pub head: &'a Head,
    /// Functions named on the head line (WARNING location, KASAN `in func`...).
    pub head_frames: &'a [Frame],
    /// The first register dump's `RIP:`/`pc :` frames, innermost first.
    pub rips: &'a [Frame],
    /// The first trace, with in-trace `RIP:` lines and where each frame ran.
    pub cands: &'a [Cand],
    /// The first trace's reliable frames.
    pub trace: &'a [Frame],
    /// Lockdep's `at:` frames, in order.
    pub at_frames: &'a [Frame],
    /// Lockdep's `-> #0` chain entry.
    pub chain0: &'a [Frame],
}

/// Where a candidate was seen: a function the report names itself (head line, `RIP:`)
/// may be one that only appears as machinery in traces (an unwinder is the accessor of
/// a KASAN report in the unwinder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Named,
    Trace,
}

impl<'a> Evidence<'a> {
    /// The guilty function's title name (`title_name`), or None when no frame is usable.
    /// With `preferred` (functions the series under test changes), the first usable
    /// candidate the series changes wins.
    pub fn guilty(&self, preferred: &[String]) -> Option<String> {
        let cands = self.candidates();
        if !preferred.is_empty() {
            let pref = cands.iter().find(|&&(f, seen)| {
                let n = normalize(&f.function);
                self.usable(f, seen) && preferred.iter().any(|p| p == n)
            });
            if let Some((f, _)) = pref {
                return Some(title_name(&f.function));
            }
        }
        match self.head {
            Head::HungTask(_) => {
                if let Some(bucket) = self.hang_bucket() {
                    return Some(bucket.into());
                }
            }
            Head::SoftLockup | Head::HardLockup | Head::RcuStall => {
                return self.looping_entry(&cands);
            }
            // Stack overflows are runaway recursion: a loop of calls.
            head if is_runaway(head) => {
                return self
                    .recursion(&cands)
                    .or_else(|| self.looping_entry(&cands));
            }
            _ => {}
        }
        let found = cands.iter().find(|&&(f, seen)| self.usable(f, seen));
        let last_resort = || match self.head {
            Head::NullDeref
            | Head::PagingFault
            | Head::Gpf
            | Head::Bug(_)
            | Head::Fatal(_)
            | Head::Trap(_)
            | Head::Other(_)
            | Head::SchedAtomic
            | Head::SleepInvalid => cands.iter().find(|&&(f, _)| usable_at_all(f)),
            _ => None,
        };
        found
            .or_else(last_resort)
            .map(|(f, _)| title_name(&f.function))
    }

    /// The candidate frames for the guilty function, in order of preference.
    fn candidates(&self) -> Vec<(&'a Frame, Seen)> {
        let named = |fs: &'a [Frame]| fs.iter().map(|f| (f, Seen::Named));
        let head = named(self.head_frames);
        let rip = named(self.rips);
        let trace = self.interrupted_trace();
        match self.head {
            Head::Lockdep { prefix, .. } if *prefix == "inconsistent lock state" => trace
                .into_iter()
                .chain(named(self.at_frames).take(2))
                .collect(),
            Head::Lockdep { at_first: true, .. } => named(self.at_frames)
                .take(2)
                .chain(self.chain0.iter().map(|f| (f, Seen::Trace)))
                .chain(trace)
                .collect(),
            Head::Warning(_) | Head::Fatal(_) => head.chain(rip).chain(trace).collect(),
            Head::Kasan(_)
            | Head::Kfence(_)
            | Head::Kmsan(_)
            | Head::Kcsan(_)
            | Head::Context(_)
            | Head::LockDebug(_) => head.chain(trace).collect(),
            // Stalls and lockups: what the CPU was stuck in, not the interrupt that
            // noticed it.
            Head::SoftLockup | Head::HardLockup | Head::RcuStall => self.stalled_code(),
            Head::NullDeref
            | Head::PagingFault
            | Head::Gpf
            | Head::Bug(None)
            | Head::Overflow
            | Head::Trap(_)
            | Head::Other(_) => rip.chain(trace).collect(),
            _ => trace,
        }
    }

    /// The trace, read from the interrupted code on when it passes through a synchronous
    /// exception (a trap or fault taken by the reporting code's caller: old x86 WARN and
    /// BUG, faults caught by KASAN/KFENCE on arm64): what comes before is the handler.
    /// The in-trace `RIP:` of that exception is the first frame of the interrupted code.
    /// Without one, the reliable frames as printed.
    fn interrupted_trace(&self) -> Vec<(&'a Frame, Seen)> {
        let entry = self
            .cands
            .iter()
            .position(|c| !c.rip && is_sync_exception_entry(&c.frame.function));
        let part: Vec<&Cand> = match entry {
            Some(i) if i + 1 < self.cands.len() => self.cands[i + 1..].iter().collect(),
            _ => self.cands.iter().filter(|c| !c.rip).collect(),
        };
        // A report raised in interrupt context: what follows the interrupt is the task
        // it interrupted, which has nothing to do with it.
        let in_irq = part.iter().find(|c| !c.rip).is_some_and(|c| c.in_irq);
        part.into_iter()
            .filter(|c| !in_irq || c.in_irq)
            .map(|c| (&c.frame, if c.rip { Seen::Named } else { Seen::Trace }))
            .collect()
    }

    /// The code a stalled CPU was running, innermost first: after the interrupt entry
    /// that noticed the stall (x86 `apic_timer_interrupt`, arm64 `el1h_64_irq`), else
    /// the frames outside interrupt sections, with the register dump's `RIP:` first
    /// (NMI backtraces of another CPU).
    fn stalled_code(&self) -> Vec<(&'a Frame, Seen)> {
        let rips = self.rips.iter().map(|f| (f, Seen::Named));
        let entry = self
            .cands
            .iter()
            .position(|c| !c.rip && is_interrupt_entry(&c.frame.function));
        let seen = |c: &'a Cand| (&c.frame, if c.rip { Seen::Named } else { Seen::Trace });
        match entry {
            Some(i) if i + 1 < self.cands.len() => {
                rips.chain(self.cands[i + 1..].iter().map(seen)).collect()
            }
            _ => {
                let task = self.cands.iter().filter(|c| !c.in_irq);
                let (task_rips, task_frames): (Vec<&Cand>, Vec<&Cand>) = task.partition(|c| c.rip);
                task_rips
                    .into_iter()
                    .map(seen)
                    .chain(rips)
                    .chain(task_frames.into_iter().map(seen))
                    .collect()
            }
        }
    }

    /// The looping task's entry: walking out from the interrupted code, the outermost
    /// usable frame before the first dispatcher (a place that calls whatever code was
    /// handed to it: syscall entry, workqueue, softirq, timer, VFS or socket layer). A
    /// CPU that waits for other CPUs to run a function is bucketed as
    /// `smp_call_function`: whoever asked, the culprit is on another CPU.
    fn looping_entry(&self, cands: &[(&'a Frame, Seen)]) -> Option<String> {
        // A page fault taken by kernel code (a `copy_from_user()` in a syscall) is part
        // of that code's loop; only a fault from user space is an entry.
        let user_fault = !cands
            .iter()
            .skip_while(|(f, _)| !is_fault_dispatcher(normalize(&f.function)))
            .any(|&(f, seen)| self.usable(f, seen));
        let mut entry: Option<&Frame> = None;
        // When every frame is a dispatcher (a driver's compat ioctl), the innermost one
        // that is not generic code.
        let mut specific_dispatcher: Option<&Frame> = None;
        for &(f, seen) in cands {
            let n = normalize(&f.function);
            if is_cross_cpu_call(n) {
                return Some("smp_call_function".into());
            }
            let dispatcher = if is_fault_dispatcher(n) {
                user_fault
            } else {
                is_dispatcher(n)
            };
            if dispatcher {
                if entry.is_some() {
                    break;
                }
                if specific_dispatcher.is_none() && group(n).is_none() {
                    specific_dispatcher = Some(f);
                }
                continue;
            }
            if self.usable(f, seen) {
                entry = Some(f);
            }
        }
        entry
            .or(specific_dispatcher)
            .map(|f| title_name(&f.function))
    }

    /// A stack that overflowed because one function called itself: that function
    /// (at least three times in a row). A cycle through several functions has no single
    /// culprit and is named by its entry instead (None here), which stays the same
    /// wherever the trace was cut.
    fn recursion(&self, cands: &[(&'a Frame, Seen)]) -> Option<String> {
        let usable: Vec<&str> = cands
            .iter()
            .filter(|&&(f, seen)| self.usable(f, seen))
            .map(|(f, _)| normalize(&f.function))
            .collect();
        let repeated = |n: &str| usable.windows(3).any(|w| w.iter().all(|m| *m == n));
        let mut recursing = usable.iter().copied().filter(|n| repeated(n));
        let first = recursing.next()?;
        recursing.all(|n| n == first).then(|| title_name(first))
    }

    /// Hangs on an RCU grace period or on rtnl show up at random victim stacks: bucketed
    /// by the thing waited for.
    fn hang_bucket(&self) -> Option<&'static str> {
        for f in self.trace {
            let n = normalize(&f.function);
            if n.starts_with("rtnl_lock") {
                return Some("rtnl_lock");
            }
            if [
                "synchronize_rcu",
                "synchronize_srcu",
                "synchronize_net",
                "synchronize_sched",
            ]
            .iter()
            .any(|a| n.starts_with(a))
            {
                return Some("synchronize_rcu");
            }
        }
        None
    }

    /// Whether a frame can name the report: not skipped in general or for this kind.
    fn usable(&self, f: &Frame, seen: Seen) -> bool {
        let n = normalize(&f.function);
        if is_kept(n) {
            return true;
        }
        if kind_skip(self.head).iter().any(|p| n.contains(p)) {
            return false;
        }
        match group(n) {
            None => {}
            // The skip lists name core kernel code: a module's function that happens to
            // share a prefix (`kmalloc_oob_right [kasan_test]`) is not allocator code.
            Some(g) if f.module.is_some() && g != Group::Strings => {}
            // The function a report names itself may be one that is machinery when it
            // shows up in traces: the unwinder, RCU or timer code that faulted.
            Some(Group::Plumbing) if seen == Seen::Named && is_unwinder(n) => {}
            Some(Group::IrqTimer) if seen == Seen::Named => {}
            Some(_) => return false,
        }
        match self.head {
            Head::HungTask(_) => !is_wait_primitive(n),
            Head::LockDebug(t)
                if t.starts_with("BUG: spinlock") || t.starts_with("BUG: rwlock") =>
            {
                !is_lock_wrapper(n)
            }
            // An oops in a lock wrapper: the lock pointer its caller passed was bad.
            Head::NullDeref | Head::PagingFault | Head::Gpf if seen == Seen::Named => {
                !is_lock_wrapper(n)
            }
            _ => true,
        }
    }
}

/// The last resort of an oops whose frames are all generic (a NULL function pointer
/// called by a workqueue or a timer): the dispatcher or helper that made the call.
fn usable_at_all(f: &Frame) -> bool {
    let n = normalize(&f.function);
    // Returning to user space with a lock or preemption still held: the way back is
    // all there is to name.
    matches!(
        n,
        "process_one_work"
            | "process_scheduled_works"
            | "exit_to_user_mode_prepare"
            | "exit_to_user_mode_loop"
            | "exit_to_usermode_loop"
    ) || matches!(
        group(n),
        Some(Group::IrqTimer | Group::Checker | Group::Helper)
    )
}

/// Reports of a stack overrun by recursion.
fn is_runaway(head: &Head) -> bool {
    matches!(head, Head::Overflow)
        || matches!(head, Head::Fatal(t) if t == "kernel panic: corrupted stack end")
}

/// Stack unwinders: machinery in a trace, the accessor when a report names them.
fn is_unwinder(n: &str) -> bool {
    ["unwind_", "__unwind_", "orc_find", "__orc_find"]
        .iter()
        .any(|p| n.starts_with(p))
}

/// Entry frames of synchronous exceptions (traps and faults): x86 `asm_exc_*` (and the
/// older stubs), arm64 `el1h_64_sync`.
fn is_sync_exception_entry(name: &str) -> bool {
    let n = normalize(name);
    n.starts_with("asm_exc_")
        || matches!(
            n,
            "invalid_op"
                | "page_fault"
                | "async_page_fault"
                | "general_protection"
                | "int3"
                | "divide_error"
                | "stack_segment"
                | "el1h_64_sync"
                | "el1_sync"
                | "__dabt_svc"
                | "__und_svc"
                | "__pabt_svc"
        )
}

/// Entry frames of interrupts: the timer interrupt that runs the stall and lockup
/// detectors, or any other that was taken on the way.
fn is_interrupt_entry(name: &str) -> bool {
    let n = normalize(name);
    n.starts_with("asm_sysvec_")
        || matches!(
            n,
            "apic_timer_interrupt"
                | "smp_apic_timer_interrupt"
                | "irq_entries_start"
                | "asm_common_interrupt"
                | "common_interrupt"
                | "el1h_64_irq"
                | "el1_irq"
                | "__irq_svc"
        )
}

/// Waiting for other CPUs to run a function (smp_call_function_many_cond & co).
fn is_cross_cpu_call(n: &str) -> bool {
    n.starts_with("smp_call_function") || n.starts_with("on_each_cpu")
}

/// Code that calls whatever it was handed: the frame called by one is the entry of the
/// specific code (a syscall's implementation, a work item, a softirq's handler, a file,
/// socket or fault handler). Syscalls that only pass a request on to a file or socket
/// (`ioctl`, `read`, `write`...) are dispatchers too.
fn is_dispatcher(n: &str) -> bool {
    if let Some(call) = syscall_name(n) {
        return MULTIPLEXING_SYSCALLS.contains(&call);
    }
    // 32-bit compat ioctl shims pass the request on to the native handler.
    if n.contains("compat_ioctl") {
        return true;
    }
    DISPATCHERS.iter().any(|p| matches_pattern(n, p))
}

/// The syscall a frame implements (`__x64_sys_ioctl`, `__arm64_sys_ioctl`,
/// `__se_sys_ioctl`, `__do_sys_ioctl`, `SyS_ioctl`, `sys_ioctl`, `ksys_ioctl`).
fn syscall_name(n: &str) -> Option<&str> {
    const PREFIXES: &[&str] = &[
        "__x64_sys_",
        "__arm64_sys_",
        "__ia32_sys_",
        "__x64_compat_sys_",
        "__arm64_compat_sys_",
        "__ia32_compat_sys_",
        "__se_sys_",
        "__se_compat_sys_",
        "__do_sys_",
        "__do_compat_sys_",
        "compat_SyS_",
        "compat_sys_",
        "SyS_",
        "SYSC_",
        "sys_",
        "ksys_",
    ];
    PREFIXES
        .iter()
        .find_map(|p| n.strip_prefix(p))
        .filter(|c| !c.is_empty())
}

/// The page-fault handlers that call the memory management code.
fn is_fault_dispatcher(n: &str) -> bool {
    matches!(
        n,
        "exc_page_fault"
            | "do_user_addr_fault"
            | "do_kern_addr_fault"
            | "handle_page_fault"
            | "do_page_fault"
            | "__do_page_fault"
            | "do_translation_fault"
            | "do_mem_abort"
            | "el0_da"
            | "el1_abort"
    )
}

/// Syscalls that hand their request to a file, socket or device: the handler they call
/// is the entry of the code that looped.
const MULTIPLEXING_SYSCALLS: &[&str] = &[
    "ioctl",
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "preadv2",
    "pwritev",
    "pwritev2",
    "sendmsg",
    "recvmsg",
    "sendto",
    "recvfrom",
    "setsockopt",
    "getsockopt",
    "socketcall",
];

/// Dispatchers by kernel layer (a trailing `*` means prefix).
const DISPATCHERS: &[&str] = &[
    // Entry from user space (arch/x86/entry, arch/arm64/kernel/syscall.c).
    "do_syscall_*",
    "do_fast_syscall_*",
    "__do_fast_syscall_*",
    "do_int80_syscall_*",
    "x64_sys_call",
    "ia32_sys_call",
    "invoke_syscall",
    "el0_svc*",
    "do_el0_svc*",
    "entry_SYSCALL*",
    "ret_fast_syscall",
    "sysenter_dispatch",
    "system_call_fastpath",
    "tracesys*",
    // Returning to user space: task work (the last fput), signals.
    "task_work_run",
    "exit_to_user_mode_loop",
    "exit_to_usermode_loop",
    "__fput",
    "____fput",
    "delayed_fput",
    // VFS and the files that pass requests on (debugfs, sysfs, procfs, seq_file).
    "vfs_read",
    "vfs_write",
    "vfs_readv",
    "vfs_writev",
    "vfs_iter_read",
    "vfs_iter_write",
    "__vfs_read",
    "__vfs_write",
    "do_iter_read",
    "do_iter_write",
    "do_iter_readv_writev",
    "do_loop_readv_writev",
    "new_sync_read",
    "new_sync_write",
    "call_read_iter",
    "call_write_iter",
    "vfs_ioctl",
    "do_vfs_ioctl",
    "vfs_open",
    "do_dentry_open",
    "call_mmap",
    "mmap_file",
    "mmap_region",
    "__mmap_region",
    "full_proxy_*",
    "debugfs_attr_*",
    "simple_attr_*",
    "kernfs_fop_*",
    "sysfs_kf_*",
    "proc_reg_*",
    "seq_read",
    "seq_read_iter",
    "blkdev_ioctl",
    "blkdev_driver_ioctl",
    // Sockets and netlink.
    "sock_sendmsg",
    "__sock_sendmsg",
    "sock_sendmsg_nosec",
    "sock_recvmsg",
    "sock_recvmsg_nosec",
    "sock_read_iter",
    "sock_write_iter",
    "sock_ioctl",
    "sock_do_ioctl",
    "compat_sock_ioctl",
    "sock_common_setsockopt",
    "sock_common_getsockopt",
    "sock_common_recvmsg",
    "do_sock_setsockopt",
    "do_sock_getsockopt",
    "inet_sendmsg",
    "inet6_sendmsg",
    "inet_recvmsg",
    "inet6_recvmsg",
    "netlink_rcv_skb",
    "netlink_dump",
    "genl_rcv",
    "genl_rcv_msg",
    "genl_family_rcv_msg*",
    "rtnetlink_rcv",
    "rtnetlink_rcv_msg",
    "nfnetlink_rcv",
    "nfnetlink_rcv_msg",
    "nfnetlink_rcv_batch",
    // Receiving packets.
    "__netif_receive_skb*",
    "netif_receive_skb*",
    "process_backlog",
    "__napi_poll",
    "napi_poll",
    "net_rx_action",
    // Softirqs, timers, tasklets, RCU callbacks, IPI callbacks, irq work.
    "handle_softirqs",
    "__do_softirq",
    "do_softirq*",
    "run_ksoftirqd",
    "call_timer_fn",
    "expire_timers",
    "__run_timers",
    "__run_timer_base",
    "run_timer_base",
    "run_timer_softirq",
    "__hrtimer_run_queues",
    "__run_hrtimer",
    "hrtimer_run_softirq",
    "tasklet_action*",
    "tasklet_hi_action",
    "rcu_do_batch",
    "rcu_core",
    "rcu_core_si",
    "__flush_smp_call_function_queue",
    "flush_smp_call_function_queue",
    "generic_smp_call_function_single_interrupt",
    "irq_work_single",
    "irq_work_run*",
    // Kernel threads and workqueues.
    "process_one_work",
    "process_scheduled_works",
    "worker_thread",
    "rescuer_thread",
    "kthread",
    "kthread_worker_fn",
    "smpboot_thread_fn",
    "ret_from_fork*",
    // The fault handler of a mapping (the page-fault entries are `is_fault_dispatcher`).
    "__do_fault",
    // Idle and CPU bring-up.
    "do_idle",
    "cpu_startup_entry",
    "start_secondary",
    "secondary_start_kernel",
];

/// Waits and lock primitives a hung task's stack is mostly made of (by the words of
/// their names: `ldsem_down_write`, `tty_ldisc_lock_pair_timeout`, `cancel_work_sync`).
fn is_wait_primitive(n: &str) -> bool {
    const WORDS: &[&str] = &[
        "down",
        "lock",
        "locks",
        "slowpath",
        "slowlock",
        "sched",
        "schedule",
        "synchronize",
        "barrier",
        "cancel",
        "flush",
        "msleep",
        "ssleep",
        "usleep",
    ];
    n.contains("wait")
        || n.contains("completion")
        || n.contains("_lock")
        || n.contains("sched")
        || n.split('_').any(|w| WORDS.contains(&w))
        || matches!(
            n,
            "usb_control_msg" | "usb_bulk_msg" | "usb_interrupt_msg" | "do_read_cache_folio"
        )
}

/// Lock wrappers, by the words of their names (`__task_rq_lock`, `tty_lock_irqsave`,
/// `reiserfs_write_lock`): a lock taken wrongly or on a bad pointer is their caller's bug.
fn is_lock_wrapper(n: &str) -> bool {
    let words: Vec<&str> = n.split('_').filter(|w| !w.is_empty()).collect();
    let locking = |w: &&str| matches!(*w, "lock" | "unlock" | "trylock");
    let tail =
        |w: &&str| locking(w) || matches!(*w, "irq" | "irqsave" | "irqrestore" | "bh" | "nested");
    words.iter().any(locking) && words.last().is_some_and(tail)
}

/// Frames that are plumbing for one type of report only (substrings of the name): the
/// checker that printed it, the callbacks a hang or a leak always passes through.
fn kind_skip(head: &Head) -> &'static [&'static str] {
    match head {
        Head::Warning(Some("ODEBUG bug")) => &[
            "debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_", "kmem_", "slab_", "kfree",
            "vunmap", "vfree", "__free_", "kobject_",
        ],
        Head::Warning(Some("refcount bug")) => &["refcount", "kobject_"],
        Head::Warning(Some("locking bug")) => &["lock_sock", "release_sock"],
        Head::Warning(Some("kobject bug")) => &["kobject_"],
        Head::Warning(Some("proc registration bug")) => &["proc_"],
        Head::Warning(Some("bad usercopy")) | Head::Bug(Some("BUG: bad usercopy")) => {
            &["usercopy", "__check"]
        }
        Head::Bug(Some(_)) => &["list_", "__list_"],
        // BUG_ON()s in the skb helpers catch their caller's misuse.
        Head::Bug(None) => &["skb_"],
        // rcu_* wrappers are skipped globally; `foo_rcu` callers stay candidates.
        Head::SuspiciousRcu => &[
            "lockdep_rcu",
            "kmem",
            "slab",
            "kmalloc",
            "vmalloc",
            "kcalloc",
            "kzalloc",
        ],
        Head::Kmemleak => &[
            "kmemleak",
            "kmalloc",
            "kcalloc",
            "kzalloc",
            "vmalloc",
            "kmem",
            "slab",
            "alloc",
            "create_object",
            "kasprintf",
            "strdup",
            "strndup",
            "memdup",
            "idr_",
            "list_lru_init",
            "kvasprintf",
            "pcpu_",
            "kobject_set_name",
        ],
        // Crypto and checksum code that consumes uninitialised data its caller passed.
        Head::Kmsan(_) => &["aes_", "crc32", "_encrypt", "crypto_", "cipher_"],
        Head::Kasan(t) if t == "invalid-free" || t == "double-free" => {
            &["kmem_", "slab_", "kfree", "vunmap", "vfree"]
        }
        // A folio still mapped when the page cache dropped it: the truncation path
        // (mm/truncate.c) is how it got there, its caller what did it.
        Head::Other(t) if t == "BUG: Bad page cache" => &[
            "truncate_inode_",
            "truncate_pagecache",
            "invalidate_inode_page",
            "delete_from_page_cache",
            "mapping_evict_folio",
        ],
        // After an oops killed the task, its exit path is where later reports come from.
        Head::SleepInvalid | Head::SchedAtomic | Head::Lockdep { .. } => {
            &["do_exit", "make_task_dead"]
        }
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use crate::console::{parse, Finding};

    fn findings(log: &str) -> Vec<Finding> {
        parse(std::io::Cursor::new(log)).unwrap()
    }

    fn title(log: &str) -> String {
        let f = findings(log);
        assert_eq!(f.len(), 1, "{f:?}");
        f[0].title.clone()
    }

    #[test]
    fn old_x86_warning_skips_the_trap_handlers() {
        let log = "\
WARNING: CPU: 1 PID: 2992 at lib/refcount.c:186 refcount_sub_and_test+0x167/0x1b0
Kernel panic - not syncing: panic_on_warn set ...
CPU: 1 PID: 2992 Comm: syzkaller263121 Not tainted 4.14.0-rc5+ #91
Call Trace:
 dump_stack+0x194/0x257
 panic+0x1e4/0x417
 __warn+0x1c4/0x1d9
 report_bug+0x211/0x2d0
 fixup_bug+0x40/0x90
 do_trap+0x260/0x390
 do_error_trap+0x120/0x390
 do_invalid_op+0x1b/0x20
 invalid_op+0x18/0x20
RIP: 0010:refcount_sub_and_test+0x167/0x1b0
RSP: 0018:ffff8801d1f4e9c8 EFLAGS: 00010282
 ? refcount_sub_and_test+0x167/0x1b0
 sctp_wfree+0x183/0x620
 skb_release_head_state+0x124/0x200
";
        assert_eq!(title(log), "WARNING: refcount bug in sctp_wfree");
    }

    /// The two VMA-locking bugs of issue 32: an assertion helper built out of line
    /// (`-Os`) is not the culprit, its caller is.
    #[test]
    fn assertion_helpers_name_their_caller() {
        for (caller, syscall) in [("move_vma", "mremap"), ("__mmap_region", "mmap")] {
            let log = format!(
                "\
[   41.201001] WARNING: include/linux/mmap_lock.h:335 at vma_assert_write_locked+0x2c/0x40, CPU#1: probe/95
[   41.201002] Modules linked in:
[   41.201003] CPU: 1 UID: 0 PID: 95 Comm: probe Not tainted 7.3.4 #1 PREEMPTLAZY
[   41.201004] RIP: 0010:vma_assert_write_locked+0x2c/0x40
[   41.201005] Call Trace:
[   41.201006]  <TASK>
[   41.201007]  {caller}+0x1f2/0x5e0
[   41.201008]  __do_sys_{syscall}+0x3a1/0x6b0
[   41.201009]  do_syscall_64+0x83/0x217
[   41.201010]  entry_SYSCALL_64_after_hwframe+0x4b/0x53
[   41.201011]  </TASK>
[   41.201012] ---[ end trace 0000000000000000 ]---
"
            );
            assert_eq!(title(&log), format!("WARNING in {caller}"));
        }
    }

    #[test]
    fn hung_task_names_the_first_frame_that_is_not_a_wait() {
        let log = "\
INFO: task getty:2986 blocked for more than 120 seconds.
Call Trace:
 [<ffffffff835bdeb4>] schedule+0x64/0x160
 [<ffffffff835c9c1a>] schedule_timeout+0x2fa/0x5d0
 [<ffffffff835cb4ec>] ldsem_down_write+0x1ac/0x357
 [<ffffffff835cbdd2>] tty_ldisc_lock_pair_timeout+0xb2/0x160
 [<ffffffff81f8b03f>] tty_ldisc_hangup+0x21f/0x720
 [<ffffffff81f7a2c1>] __tty_hangup+0x2a1/0x510
";
        assert_eq!(title(log), "INFO: task hung in tty_ldisc_hangup");
    }

    #[test]
    fn lock_debugging_names_who_took_the_lock() {
        let log = "\
BUG: spinlock recursion on CPU#0, syz-executor7/5032
 lock: 0xffff88006c122d00, .magic: dead4ead, .owner: syz-executor7/5032, .owner_cpu: -1
CPU: 0 PID: 5032 Comm: syz-executor7 Not tainted 4.9.0-rc7+ #58
Call Trace:
 [<ffffffff834c3ae9>] dump_stack+0x2ee/0x3f5
 [<ffffffff81576cd2>] spin_dump+0x152/0x280
 [<ffffffff81577284>] do_raw_spin_lock+0x3f4/0x5d0
 [<ffffffff881a2750>] _raw_spin_lock+0x40/0x50
 [<ffffffff814b7615>] __task_rq_lock+0xf5/0x330
 [<ffffffff814c89b2>] wake_up_new_task+0x592/0x1000
 [<ffffffff81396b22>] _do_fork+0x1e2/0xf70
";
        assert_eq!(title(log), "BUG: spinlock recursion in wake_up_new_task");
    }

    #[test]
    fn bad_unlock_balance_names_the_function_that_released() {
        let log = "\
=====================================
WARNING: bad unlock balance detected!
4.15.0-rc3+ #217 Not tainted
-------------------------------------
syz-executor3/19522 is trying to release lock (mrt_lock) at:
[<00000000adc671f1>] ipmr_mfc_seq_stop+0xe1/0x130
but there are no more locks to release!

other info that might help us debug this:
2 locks held by syz-executor3/19522:
 #0:  (&f->f_pos_lock){+.+.}, at: [<00000000cd36f0f9>] __fdget_pos+0x131/0x1a0
 #1:  (&p->lock){+.+.}, at: [<00000000c93d2595>] seq_lseek+0x58/0x3c0

stack backtrace:
Call Trace:
 dump_stack+0x194/0x257
 print_unlock_imbalance_bug+0x12f/0x140
 lock_release+0x5f9/0xda0
 _raw_read_unlock+0x1a/0x30
 ipmr_mfc_seq_stop+0xe1/0x130
 traverse+0x3bc/0xa00
";
        assert_eq!(
            title(log),
            "WARNING: bad unlock balance in ipmr_mfc_seq_stop"
        );
    }

    #[test]
    fn sanitizers_name_the_accessor_not_a_helper_but_the_unwinder_if_it_is_one() {
        let log = "\
BUG: KASAN: slab-out-of-bounds in memcpy+0x20/0x50
Read of size 8 at addr ffff8880123 by task probe/85
Call Trace:
 dump_stack_lvl+0x65/0x8c
 kasan_report+0xc8/0x118
 memcpy+0x20/0x50
 probe_copy_vma+0x4c/0x90
 probe_ioctl+0x104/0x1f0
";
        assert_eq!(
            title(log),
            "KASAN: slab-out-of-bounds Read in probe_copy_vma"
        );
        let log = "\
BUG: KASAN: stack-out-of-bounds in unwind_next_frame+0x1a0/0x1e0
Read of size 8 at addr ffff8880123 by task probe/85
Call Trace:
 dump_stack_lvl+0x65/0x8c
 kasan_report+0xc8/0x118
 unwind_next_frame+0x1a0/0x1e0
 arch_stack_walk+0x88/0xf0
 stack_trace_save+0x91/0xd0
";
        assert_eq!(
            title(log),
            "KASAN: stack-out-of-bounds Read in unwind_next_frame"
        );
    }

    #[test]
    fn an_oops_in_a_lock_wrapper_names_the_caller() {
        let log = "\
general protection fault: 0000 [#1] SMP KASAN
RIP: 0010:reiserfs_write_lock+0x2c/0x90
Call Trace:
 reiserfs_readdir_inode+0x1a3/0x9f0
 iterate_dir+0x1ec/0x5a0
---[ end trace 0000000000000000 ]---
";
        assert_eq!(
            title(log),
            "general protection fault in reiserfs_readdir_inode"
        );
    }

    #[test]
    fn stalls_name_the_looping_entry() {
        // Interrupted deep inside KVM: the driver's ioctl is the entry.
        let log = "\
rcu: INFO: rcu_preempt self-detected stall on CPU
Call Trace:
 <IRQ>
 rcu_sched_clock_irq+0x4a/0x90
 update_process_times+0x5e/0x90
 sysvec_apic_timer_interrupt+0x6c/0xb0
 </IRQ>
 <TASK>
 asm_sysvec_apic_timer_interrupt+0x1a/0x20
RIP: 0010:handle_ept_violation+0x29e/0x6a0
 vmx_handle_exit+0x2f7/0x17f0
 vcpu_enter_guest+0x14a9/0x62e0
 kvm_arch_vcpu_ioctl_run+0x375/0x16e0
 kvm_vcpu_ioctl+0x72b/0x1150
 __x64_sys_ioctl+0x73/0xb0
 do_syscall_64+0x1b9/0x820
 entry_SYSCALL_64_after_hwframe+0x49/0xbe
 </TASK>
";
        assert_eq!(title(log), "INFO: rcu detected stall in kvm_vcpu_ioctl");
        // A softirq that ran on the way out of an interrupt: the packet receive entry.
        let log = "\
INFO: rcu_sched detected stalls on CPUs/tasks:
Call Trace:
 <IRQ>
 sched_show_task+0x4a3/0x5e0
 print_other_cpu_stall+0x996/0x1090
 smp_apic_timer_interrupt+0x14a/0x700
 apic_timer_interrupt+0xa9/0xb0
 __xfrm_decode_session+0x68/0x110
 rawv6_rcv+0x8f6/0x1200
 ip6_input_finish+0x3c7/0x17a0
 ipv6_rcv+0xf37/0x1fa0
 __netif_receive_skb_core+0x1a41/0x3460
 process_backlog+0x203/0x740
 net_rx_action+0x792/0x1910
 __do_softirq+0x2d7/0xb85
 </IRQ>
 do_softirq.part.21+0x14d/0x190
 rawv6_sendmsg+0x2ee9/0x3e70
";
        assert_eq!(title(log), "INFO: rcu detected stall in ipv6_rcv");
        // Waiting for other CPUs: whoever asked, the culprit is elsewhere.
        let log = "\
watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [kworker/1:2:1203]
Call Trace:
 <IRQ>
 watchdog_timer_fn+0x1b8/0x220
 </IRQ>
 <TASK>
 asm_sysvec_apic_timer_interrupt+0x1a/0x20
RIP: 0010:smp_call_function_many_cond+0x11e/0x4f0
 on_each_cpu_cond_mask+0x24/0x40
 flush_tlb_mm_range+0x10c/0x440
 </TASK>
";
        assert_eq!(title(log), "BUG: soft lockup in smp_call_function");
    }

    #[test]
    fn an_oops_in_interrupt_context_ignores_the_interrupted_task() {
        let log = "\
BUG: kernel NULL pointer dereference, address: 0000000000000000
RIP: 0010:0x0
Call Trace:
 <IRQ>
 call_timer_fn+0x2b1/0x630
 __run_timers+0xeef/0x1390
 run_timer_softirq+0x45/0xb0
 __do_softirq+0x5bb/0xa08
 irq_exit_rcu+0x203/0x240
 sysvec_apic_timer_interrupt+0x5a/0x80
 </IRQ>
 <TASK>
 asm_sysvec_apic_timer_interrupt+0x1a/0x20
 kernfs_put+0x759/0xc40
 </TASK>
";
        assert_eq!(
            title(log),
            "BUG: unable to handle kernel NULL pointer dereference in call_timer_fn"
        );
    }

    #[test]
    fn stack_overflows_name_the_recursion() {
        let frames = " vma_probe_recurse+0x25/0x36\n".repeat(4);
        let log = format!(
            "BUG: TASK stack guard page was hit at ffffc90000a3bff8 (stack is ffffc90000a3c000..ffffc90000a40000)\nOops: stack guard page: 0000 [#1] SMP NOPTI\nCall Trace:\n <TASK>\n{frames} vma_probe_write+0x3f2/0x3fa\n full_proxy_write+0x5c/0x77\n vfs_write+0x8b/0x13f\n </TASK>\n"
        );
        assert_eq!(title(&log), "kernel stack overflow in vma_probe_recurse");
    }

    #[test]
    fn a_report_without_a_usable_frame_says_why() {
        let f = findings(
            "\
BUG: kernel NULL pointer dereference, address: 0000000000000008
Oops: 0000 [#1] SMP
---[ end trace 0000000000000000 ]---
",
        );
        assert_eq!(
            f[0].title,
            "BUG: unable to handle kernel NULL pointer dereference"
        );
        assert!(f[0].corrupted);
        assert_eq!(
            f[0].no_function.as_deref(),
            Some("no stack trace in the report")
        );
    }
}
