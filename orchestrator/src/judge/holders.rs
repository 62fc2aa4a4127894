//! Who holds the lock a hung task waits for: the dumps of a hang's forensics window
//! (`parse::lockdump`) joined into one statement per chain of waiting tasks, e.g.
//! "task cat (91) waits for `&mm->mmap_lock` (read) in `down_read_killable` from
//! `__access_remote_vm`, held by task vma_probe (84) as writer, which waits for the
//! readers of a VMA in `vma_start_write` from `mprotect_fixup`: read-held by task
//! vma_probe (82), taken in `vma_start_read_unlocked`, now in `probe_hold`".
//!
//! What a task waits for comes from its stack (the hung-task report's, or sysrq w/t's).
//! Who holds it:
//! - an rw-semaphore or mutex: lockdep's held-locks dump names every task that holds
//!   the lock instance the waiter is taking (lockdep records a lock as held before the
//!   acquisition blocks, so the waiter's last held lock is the one it waits for, and
//!   the tasks holding the same address are its holders, less the other waiters);
//!   without lockdep the hung-task detector's blocker line (7.x) names the owner it
//!   finds in the lock word (a writer; readers are not recorded);
//! - the VMA lock (7.x: `vm_refcnt`, a reference count, and `vm_lock_seq`): it has no
//!   owner field at all. A writer in `__vma_start_exclude_readers()` waits for the
//!   count to drop to its own. Only lockdep's annotation (`vmlock_dep_map`, class
//!   `vm_lock`, one map per VMA: readers take it shared in `vma_start_read*()`, the
//!   writer exclusively before it waits) names the readers. Without lockdep (off
//!   after an earlier report, or not built) no reader can be named: the candidates are
//!   the other threads of the writer's process that are inside the kernel.

use crate::parse::lockdump::{Dump, HeldLock, Source, Task};
use std::collections::BTreeSet;

/// Most statements given (the rest are counted).
const MAX_STATEMENTS: usize = 6;
/// Longest chain followed (A waits for B, which waits for C ...).
const MAX_DEPTH: usize = 4;

/// What a blocked task waits for, read from its stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// The readers of a VMA to leave (the VMA lock's writer side): `refcount` in 6.15
    /// and later (`vm_refcnt`), an rw-semaphore before.
    VmaReaders {
        refcount: bool,
    },
    Rwsem {
        write: bool,
    },
    Mutex,
    /// Asleep in the kernel for something else.
    Other,
}

/// Frames of the scheduler and the lock primitives: where a task sleeps, not why.
fn is_internal(f: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "__switch_to",
        "__schedule",
        "schedule",
        "io_schedule",
        "preempt_schedule",
        "rwsem_down_",
        "down_read",
        "down_write",
        "__down",
        "__mutex_lock",
        "mutex_lock",
        "__rt_mutex",
        "rt_mutex",
        "rwbase_",
        "percpu_rwsem",
        "__percpu_down",
        "__vma_start_exclude_readers",
        "__vma_enter_locked",
        "__vma_start_write",
        "vma_start_write",
        "rcuwait_",
        "mmap_read_lock",
        "mmap_write_lock",
        "__wait_for_common",
        "wait_for_completion",
    ];
    PREFIXES.iter().any(|p| f.starts_with(p))
}

/// A blocked task's wait: what, and where (the lock call, the caller outside the lock
/// code).
struct Blocked<'a> {
    comm: &'a str,
    pid: u32,
    wait: Wait,
    /// The outermost lock-code frame (`down_read_killable`, `vma_start_write`).
    site: Option<String>,
    caller: Option<&'a str>,
    /// The first frame outside the scheduler (for `Wait::Other`).
    top: Option<&'a str>,
}

fn blocked<'a>(comm: &'a str, pid: u32, task: Option<&'a Task>) -> Blocked<'a> {
    let frames: &[String] = task.map(|t| t.frames.as_slice()).unwrap_or(&[]);
    let has = |p: &str| frames.iter().any(|f| f.starts_with(p));
    let wait = if has("__vma_start_exclude_readers") || has("__vma_enter_locked") {
        Wait::VmaReaders { refcount: true }
    } else if (has("rwsem_down_write_slowpath") || has("down_write"))
        && (has("vma_start_write") || has("__vma_start_write"))
    {
        Wait::VmaReaders { refcount: false }
    } else if has("rwsem_down_write_slowpath") {
        Wait::Rwsem { write: true }
    } else if has("rwsem_down_read_slowpath") {
        Wait::Rwsem { write: false }
    } else if has("__mutex_lock") || has("mutex_lock") {
        Wait::Mutex
    } else {
        Wait::Other
    };
    let inner = frames.iter().take_while(|f| is_internal(f));
    let site = inner.last().map(|f| {
        // The public name of the VMA lock's writer side.
        if f.starts_with("__vma_start_write") || f.starts_with("__vma_start_exclude_readers") {
            "vma_start_write".to_string()
        } else {
            f.clone()
        }
    });
    let caller = frames.iter().find(|f| !is_internal(f)).map(String::as_str);
    let top = frames
        .iter()
        .find(|f| !f.starts_with("__schedule") && !f.starts_with("schedule"))
        .map(String::as_str);
    Blocked {
        comm,
        pid,
        wait,
        site,
        caller,
        top,
    }
}

/// The lock instance the waiter's lockdep record says it is taking.
fn awaited<'a>(d: &'a Dump, b: &Blocked) -> Option<&'a HeldLock> {
    let held = d.held_by(b.pid)?;
    match b.wait {
        Wait::VmaReaders { .. } => held
            .locks
            .iter()
            .rev()
            .find(|l| l.class.contains("vm_lock")),
        Wait::Rwsem { .. } | Wait::Mutex => held.locks.last(),
        Wait::Other => None,
    }
}

/// Whether `pid` is itself blocked (a hung task, or in D state in a dump).
fn is_blocked(d: &Dump, pid: u32) -> bool {
    d.hung.iter().any(|(_, p)| *p == pid)
        || d.task(pid)
            .is_some_and(|t| t.state == 'D' || t.source == Source::HungTask)
}

/// "`&mm->mmap_lock` (read) in `down_read_killable` from `__access_remote_vm`"
fn wait_text(b: &Blocked, lock: Option<&HeldLock>) -> String {
    let place = match (&b.site, b.caller) {
        (Some(s), Some(c)) => format!(" in `{s}` from `{c}`"),
        (Some(s), None) => format!(" in `{s}`"),
        (None, Some(c)) => format!(" in `{c}`"),
        (None, None) => String::new(),
    };
    let name = |generic: &str| match lock {
        Some(l) => format!("`{}`", l.class),
        None => generic.to_string(),
    };
    match b.wait {
        Wait::VmaReaders { .. } => format!("waits for the readers of a VMA to leave{place}"),
        Wait::Rwsem { write } => format!(
            "waits for {} ({}){place}",
            name("an rw-semaphore"),
            if write { "write" } else { "read" }
        ),
        Wait::Mutex => format!("waits for {}{place}", name("a mutex")),
        Wait::Other => match b.top {
            Some(t) => format!("is blocked in `{t}`"),
            None => "is blocked (no stack in the dumps)".to_string(),
        },
    }
}

fn who(comm: &str, pid: u32) -> String {
    format!("task {comm} ({pid})")
}

/// Where a holder that is not blocked is now: its first frame outside the scheduler,
/// and its state.
fn now(d: &Dump, pid: u32) -> String {
    match d.task(pid) {
        Some(t) => {
            let b = blocked(&t.comm, pid, Some(t));
            match b.top {
                Some(f) => format!(", now in `{f}` (state {})", t.state),
                None => format!(" (state {}, no kernel stack in the dumps)", t.state),
            }
        }
        None => " (not in the task dumps)".to_string(),
    }
}

/// One waiter's statement, following holders that wait themselves; `seen` collects
/// every task named, `depth` bounds the chain.
fn describe(d: &Dump, pid: u32, seen: &mut BTreeSet<u32>, depth: usize) -> String {
    let task = d.task(pid);
    let comm = task
        .map(|t| t.comm.as_str())
        .or_else(|| {
            d.hung
                .iter()
                .find(|(_, p)| *p == pid)
                .map(|(c, _)| c.as_str())
        })
        .unwrap_or("?");
    seen.insert(pid);
    let b = blocked(comm, pid, task);
    let lock = awaited(d, &b);
    let mut s = format!("{} {}", who(b.comm, b.pid), wait_text(&b, lock));
    let holders = holders_of(d, &b, lock);
    if holders.is_empty() {
        s.push_str(&unnamed(d, &b, task));
        return s;
    }
    let mut parts = Vec::new();
    for h in holders.into_iter().take(4) {
        let mut p = format!("{}{}", who(&h.comm, h.pid), h.how);
        if seen.contains(&h.pid) {
            p.push_str(" (already named: a cycle, these tasks wait for each other)");
        } else if depth + 1 < MAX_DEPTH && is_blocked(d, h.pid) {
            let inner = describe(d, h.pid, seen, depth + 1);
            // "task X (n) waits ..." -> "which waits ..."
            let rest = inner
                .strip_prefix(&who(&h.comm, h.pid))
                .unwrap_or(&inner)
                .trim_start();
            p.push_str(&format!(", which {rest}"));
        } else {
            seen.insert(h.pid);
            p.push_str(&now(d, h.pid));
        }
        parts.push(p);
    }
    let verb = match b.wait {
        Wait::VmaReaders { .. } => ": read-held by ",
        _ => ", held by ",
    };
    s.push_str(verb);
    s.push_str(&parts.join("; and by "));
    s
}

/// A task named as holding what a waiter waits for.
struct Named {
    comm: String,
    pid: u32,
    /// " as writer", ", taken in `f`" ...
    how: String,
}

fn holders_of(d: &Dump, b: &Blocked, lock: Option<&HeldLock>) -> Vec<Named> {
    let mut out: Vec<Named> = Vec::new();
    if let Some(l) = lock {
        for h in &d.held {
            if h.pid == b.pid {
                continue;
            }
            let Some(mine) = h.locks.iter().find(|x| x.addr == l.addr) else {
                continue;
            };
            // Another waiter on the same lock is not its holder: lockdep lists the lock
            // it is taking as its last one.
            let waits_for_it = is_blocked(d, h.pid)
                && h.locks.last().is_some_and(|x| x.addr == l.addr)
                && blocked(&h.comm, h.pid, d.task(h.pid)).wait != Wait::Other;
            if waits_for_it {
                continue;
            }
            out.push(Named {
                comm: h.comm.clone(),
                pid: h.pid,
                how: if mine.at.is_empty() {
                    String::new()
                } else {
                    format!(", taken in `{}`", mine.at)
                },
            });
        }
    }
    for bl in d.blockers.iter().filter(|x| x.pid == b.pid) {
        let Some((comm, pid)) = &bl.owner else {
            continue;
        };
        if let Some(n) = out.iter_mut().find(|n| n.pid == *pid) {
            if let Some(a) = &bl.owner_as {
                n.how = format!(" as {a}{}", n.how);
            }
            continue;
        }
        out.push(Named {
            comm: comm.clone(),
            pid: *pid,
            how: bl
                .owner_as
                .as_ref()
                .map(|a| format!(" as {a} (the hung-task detector's guess)"))
                .unwrap_or_else(|| " (the hung-task detector's guess)".into()),
        });
    }
    out
}

/// Why no holder can be named, and who could be one.
fn unnamed(d: &Dump, b: &Blocked, task: Option<&Task>) -> String {
    let lockdep = if d.lockdep_off {
        "lockdep is off (an earlier report turned it off)"
    } else if d.locks_shown {
        "lockdep's held-locks dump does not list it among this task's locks"
    } else {
        "no held-locks dump (lockdep not built, or sysrq d not sent)"
    };
    match b.wait {
        Wait::VmaReaders { refcount } => {
            let tgid = task.and_then(|t| t.tgid);
            let how = if refcount {
                "the VMA lock records no owner (its readers are a count in `vm_refcnt`)"
            } else {
                "the VMA lock (an rw-semaphore held for read) records no reader"
            };
            let mut s = format!(": {how} and {lockdep}, so no reader can be named");
            // lockdep's dump without the waiter's own record of the lock: which VMA is
            // unknown, but who holds a VMA lock at all is.
            let vm: Vec<String> = d
                .held
                .iter()
                .filter(|h| h.pid != b.pid)
                .filter_map(|h| {
                    let l = h.locks.iter().find(|l| l.class.contains("vm_lock"))?;
                    Some(format!("{}, taken in `{}`", who(&h.comm, h.pid), l.at))
                })
                .collect();
            if !vm.is_empty() {
                s.push_str(&format!(
                    "; lockdep shows a VMA lock (which VMA it cannot say) held by {}",
                    vm.join("; ")
                ));
            }
            let Some(tgid) = tgid else {
                return s;
            };
            let mut pids = BTreeSet::new();
            let candidates: Vec<String> = d
                .tasks
                .iter()
                .filter(|t| t.tgid == Some(tgid) && t.pid != b.pid && !t.frames.is_empty())
                .filter(|t| pids.insert(t.pid))
                .filter_map(|t| {
                    let c = d.task(t.pid)?;
                    let other = blocked(&c.comm, c.pid, Some(c));
                    // Another writer waits as this one does: not a reader.
                    if matches!(other.wait, Wait::VmaReaders { .. }) {
                        return None;
                    }
                    let top = other.top?;
                    Some(format!(
                        "{} in `{top}` (state {})",
                        who(&c.comm, c.pid),
                        c.state
                    ))
                })
                .collect();
            if candidates.is_empty() {
                s.push_str(&format!(
                    "; no task dump shows another thread of its process (tgid {tgid}) in the kernel"
                ));
            } else {
                s.push_str(&format!(
                    "; the candidates, the other threads of its process (tgid {tgid}) in the kernel: {}",
                    candidates.join(", ")
                ));
            }
            s
        }
        Wait::Rwsem { .. } | Wait::Mutex => {
            format!("; its owner is not named: {lockdep}, and no hung-task blocker line names one")
        }
        Wait::Other => String::new(),
    }
}

/// One statement per chain of blocked tasks, the longest chains first; a task already
/// named inside another statement gets none of its own.
pub fn explain(d: &Dump) -> Vec<String> {
    let mut waiters: Vec<u32> = Vec::new();
    let mut add = |p: u32| {
        if !waiters.contains(&p) {
            waiters.push(p);
        }
    };
    for (_, p) in &d.hung {
        add(*p);
    }
    for b in &d.blockers {
        add(b.pid);
    }
    for t in d
        .tasks
        .iter()
        .filter(|t| t.source == Source::Blocked && t.state == 'D')
    {
        add(t.pid);
    }
    let mut chains: Vec<(u32, String, BTreeSet<u32>)> = waiters
        .iter()
        .map(|&p| {
            let mut seen = BTreeSet::new();
            let s = describe(d, p, &mut seen, 0);
            (p, s, seen)
        })
        .collect();
    let inside: BTreeSet<u32> = chains
        .iter()
        .flat_map(|(head, _, seen)| seen.iter().filter(move |p| *p != head).copied())
        .collect();
    // In a cycle every task is inside another's chain: the first one keeps its own.
    let cycle_head = chains
        .iter()
        .find(|(_, s, _)| s.contains("a cycle"))
        .map(|(h, _, _)| *h);
    chains.retain(|(head, _, _)| !inside.contains(head) || cycle_head == Some(*head));
    let total = chains.len();
    let mut out: Vec<String> = chains
        .into_iter()
        .take(MAX_STATEMENTS)
        .map(|(_, s, _)| s)
        .collect();
    if total > MAX_STATEMENTS {
        out.push(format!(
            "{} more blocked task(s), see console.log",
            total - MAX_STATEMENTS
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::lockdump::parse;

    #[test]
    fn a_mutex_cycle_is_said_once() {
        let text = "\
INFO: task a:10 blocked for more than 10 seconds.
task:a               state:D stack:0     pid:10    tgid:10    ppid:1      task_flags:0x0 flags:0x0
Call Trace:
 <TASK>
 __schedule+0x1/0x2
 schedule+0x1/0x2
 __mutex_lock+0x1/0x2
 f_one+0x1/0x2
 </TASK>
INFO: task b:11 blocked for more than 10 seconds.
task:b               state:D stack:0     pid:11    tgid:11    ppid:1      task_flags:0x0 flags:0x0
Call Trace:
 <TASK>
 __schedule+0x1/0x2
 __mutex_lock+0x1/0x2
 f_two+0x1/0x2
 </TASK>

Showing all locks held in the system:
2 locks held by a/10:
 #0: 0000000000000001 (lock_x){+.+.}-{4:4}, at: f_one+0x1/0x2
 #1: 0000000000000002 (lock_y){+.+.}-{4:4}, at: f_one+0x9/0x2
2 locks held by b/11:
 #0: 0000000000000002 (lock_y){+.+.}-{4:4}, at: f_two+0x1/0x2
 #1: 0000000000000001 (lock_x){+.+.}-{4:4}, at: f_two+0x9/0x2

=============================================
";
        let s = explain(&parse(text));
        assert_eq!(s.len(), 1, "{s:#?}");
        assert_eq!(
            s[0],
            "task a (10) waits for `lock_y` in `__mutex_lock` from `f_one`, held by task b (11), taken in `f_two`, which waits for `lock_x` in `__mutex_lock` from `f_two`, held by task a (10), taken in `f_one` (already named: a cycle, these tasks wait for each other)"
        );
    }
}
