//! The kernel's dumps of who is blocked and who holds which lock, read from the console
//! text of a hang's forensics window: lockdep's held-locks dump (`sysrq d`,
//! `debug_show_all_locks()`), the task dumps (`sysrq w` and `t`, and the hung-task
//! report's own), and the hung-task detector's blocker lines
//! (`CONFIG_DETECT_HUNG_TASK_BLOCKER`). Synchronous and pure; the joining into "A waits
//! for what B holds" is `judge::holders`.
//!
//! Everything here came from the guest: every list and string is bounded, and a line
//! this parser does not know is skipped.

/// Most tasks, held locks per task and frames per task kept (lockdep's MAX_LOCK_DEPTH is
/// 48; a guest that prints more is not believed further).
const MAX_TASKS: usize = 4096;
const MAX_LOCKS: usize = 64;
const MAX_FRAMES: usize = 64;
/// Longest name kept (a comm is 15 bytes; a lock class name is a C expression).
const MAX_NAME: usize = 160;

/// One lock a task holds, as `debug_show_all_locks()` prints it:
/// ` #1: ff11000000bb1e88 (vm_lock){++++}-{0:0}, at: lock_vma_under_rcu+0xb1/0x11e`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    /// The lock instance's address (`%px` of its lockdep map): two tasks holding one
    /// lock print the same address.
    pub addr: String,
    /// lockdep's class name (`&mm->mmap_lock`, `vm_lock`).
    pub class: String,
    /// The function that took it (offset dropped).
    pub at: String,
}

/// One task's held locks: `2 locks held by probe/86:` (older kernels) or
/// `locks held by vma_probe/82: 3, last CPU#0:` (7.x).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub comm: String,
    pub pid: u32,
    pub locks: Vec<HeldLock>,
}

/// Which dump showed a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A hung-task report (`INFO: task X:N blocked for more than S seconds.`).
    HungTask,
    /// `sysrq w`: the tasks in uninterruptible sleep.
    Blocked,
    /// `sysrq t`: every task.
    All,
    /// The task dump that follows a blocker line (the suspected owner), or any other.
    Other,
}

/// One task as `sched_show_task()` prints it: `task:vma_probe state:D stack:0 pid:84
/// tgid:82 ppid:50 ...`, then its kernel stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub comm: String,
    pub pid: u32,
    pub tgid: Option<u32>,
    /// `D`, `S`, `R`, `I` ...
    pub state: char,
    /// Reliable frames, innermost first, offsets dropped (`? ` guesses left out).
    pub frames: Vec<String>,
    pub source: Source,
}

/// The hung-task detector's guess at what a hung task waits for (7.x:
/// `INFO: task cat:91 <reader> blocked on an rw-semaphore likely owned by task
/// vma_probe:84 <writer>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub comm: String,
    pub pid: u32,
    /// `mutex`, `semaphore` or `rw-semaphore`.
    pub lock: String,
    /// `reader` or `writer` (rw-semaphores).
    pub waits_as: Option<String>,
    /// None: "the owner is not found".
    pub owner: Option<(String, u32)>,
    pub owner_as: Option<String>,
}

/// What the console window said about tasks and locks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dump {
    /// `INFO: lockdep is turned off.`: lockdep stopped after an earlier report, so it
    /// names no holder.
    pub lockdep_off: bool,
    /// A full held-locks dump (`Showing all locks held in the system:`) was seen; `held`
    /// is the last one.
    pub locks_shown: bool,
    pub held: Vec<Holder>,
    /// Every task dump, in console order (one task can be shown by several dumps).
    pub tasks: Vec<Task>,
    pub blockers: Vec<Blocker>,
    /// Hung-task reports: (comm, pid), in order.
    pub hung: Vec<(String, u32)>,
}

impl Dump {
    /// The last dump of `pid` that has frames (sysrq t is newer than the hung-task
    /// report), or the last one at all.
    pub fn task(&self, pid: u32) -> Option<&Task> {
        let mut best: Option<&Task> = None;
        for t in self.tasks.iter().filter(|t| t.pid == pid) {
            if !t.frames.is_empty() || best.is_none_or(|b| b.frames.is_empty()) {
                best = Some(t);
            }
        }
        best
    }
    /// The locks `pid` holds in the last held-locks dump.
    pub fn held_by(&self, pid: u32) -> Option<&Holder> {
        self.held.iter().find(|h| h.pid == pid)
    }
}

/// The message of a console line: the printk timestamp, caller id and log level off.
fn message(raw: &str) -> &str {
    let mut s = raw.trim_end_matches(['\r', '\n']);
    if s.len() >= 3 && s.as_bytes()[0] == b'<' && s.as_bytes()[2] == b'>' {
        s = &s[3..];
    }
    // `[   51.970452]` then maybe `[ T84]` / `[C1]`.
    for _ in 0..2 {
        let Some(rest) = s.strip_prefix('[') else {
            break;
        };
        let Some(end) = rest.find(']').filter(|&e| e <= 24) else {
            break;
        };
        let inner = rest[..end].trim();
        let is_ts = !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit() || c == '.');
        let is_caller = inner.len() > 1
            && matches!(inner.as_bytes()[0], b'T' | b'C')
            && inner[1..].chars().all(|c| c.is_ascii_digit());
        if !(is_ts || is_caller) {
            break;
        }
        s = &rest[end + 1..];
        s = s.strip_prefix(' ').unwrap_or(s);
    }
    s
}

fn bounded(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_NAME) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// `func+0x2b/0x66` -> `func`; `func.constprop.0+0x1/0x40` keeps its suffix. None
/// for anything that is not a frame.
fn frame_function(text: &str) -> Option<&str> {
    let t = text.trim();
    let (name, off) = t.split_once('+')?;
    let off = off.split_whitespace().next()?;
    if !off.starts_with("0x") || !off.contains('/') {
        return None;
    }
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    ok.then_some(name)
}

/// `comm/pid` (a comm may hold `/`: `kworker/0:1`): the pid after the last one.
fn comm_pid(s: &str, sep: char) -> Option<(String, u32)> {
    let (comm, pid) = s.trim().rsplit_once(sep)?;
    let pid = pid.trim_end_matches([':', '.']).parse().ok()?;
    Some((bounded(comm), pid))
}

/// ` #0: ADDR (class){usage}-{n:n}, at: func+0x../0x..`
fn held_lock(msg: &str) -> Option<HeldLock> {
    let rest = msg.trim_start().strip_prefix('#')?;
    let (n, rest) = rest.split_once(": ")?;
    n.parse::<u32>().ok()?;
    let (addr, rest) = rest.split_once(' ')?;
    let (lock, at) = match rest.rsplit_once(", at: ") {
        Some((l, a)) => (l, a),
        None => (rest, ""),
    };
    // `(class){usage}-{a:b}`: the class may hold parentheses itself.
    let inner = lock.strip_prefix('(')?;
    let end = inner.rfind("){")?;
    Some(HeldLock {
        addr: bounded(addr),
        class: bounded(&inner[..end]),
        at: bounded(frame_function(at).unwrap_or(at.trim())),
    })
}

/// `2 locks held by probe/86:` / `1 lock held by khungtaskd/30:` /
/// `locks held by vma_probe/82: 3, last CPU#0:` / `no locks held by X/N.`
fn holder_head(msg: &str) -> Option<(String, u32)> {
    let i = msg.find("held by ")?;
    let before = &msg[..i];
    let counted = before.trim().ends_with("lock") || before.trim().ends_with("locks");
    if !counted {
        return None;
    }
    let after = &msg[i + "held by ".len()..];
    // 7.x: `vma_probe/82: 3, last CPU#0:`; older: `probe/86:`.
    let who = match after.find(": ") {
        Some(j) => &after[..j],
        None => after.trim_end_matches([':', '.']),
    };
    comm_pid(who, '/')
}

/// `task:vma_probe       state:D stack:0     pid:84    tgid:82    ppid:50 ...`
fn task_head(msg: &str, source: Source) -> Option<Task> {
    let rest = msg.strip_prefix("task:")?;
    let (comm, rest) = rest.split_once(" state:")?;
    let state = rest.chars().next()?;
    let field = |name: &str| -> Option<u32> {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
    };
    Some(Task {
        comm: bounded(comm),
        pid: field("pid:")?,
        tgid: field("tgid:"),
        state,
        frames: Vec::new(),
        source,
    })
}

/// `INFO: task X:N blocked for more than S seconds.` (and `blocked in I/O wait`).
fn hung_head(msg: &str) -> Option<(String, u32)> {
    let rest = msg.strip_prefix("INFO: task ")?;
    let i = rest
        .find(" blocked for more than ")
        .or_else(|| rest.find(" blocked in I/O wait for more than "))?;
    comm_pid(&rest[..i], ':')
}

/// The hung-task detector's blocker lines (kernel/hung_task.c, debug_show_blocker()).
fn blocker(msg: &str) -> Option<Blocker> {
    let rest = msg.strip_prefix("INFO: task ")?;
    let (who, what) = rest
        .split_once(" is blocked on ")
        .or_else(|| rest.split_once(" blocked on "))?;
    // `cat:91 <reader>` or `cat:91`.
    let (who, waits_as) = match who.split_once(" <") {
        Some((w, r)) => (w, Some(bounded(r.trim_end_matches('>')))),
        None => (who, None),
    };
    let (comm, pid) = comm_pid(who, ':')?;
    let lock = ["rw-semaphore", "semaphore", "mutex"]
        .into_iter()
        .find(|k| what.contains(k))?
        .to_string();
    let owner_text = what
        .split_once("owned by task ")
        .or_else(|| what.split_once("last held by task "))
        .map(|(_, o)| o.trim_end_matches('.'));
    let (owner, owner_as) = match owner_text {
        Some(o) => {
            let (o, r) = match o.split_once(" <") {
                Some((o, r)) => (o, Some(bounded(r.trim_end_matches('>')))),
                None => (o, None),
            };
            (comm_pid(o, ':'), r)
        }
        None => (None, None),
    };
    Some(Blocker {
        comm,
        pid,
        lock,
        waits_as,
        owner,
        owner_as,
    })
}

/// Read the dumps in `text` (the console of the forensics window, any prefixes).
pub fn parse(text: &str) -> Dump {
    let mut d = Dump::default();
    // Which dump the next task headers belong to.
    let mut source = Source::Other;
    // Inside `Showing all locks held in the system:`.
    let mut in_locks = false;
    let mut holder: Option<Holder> = None;
    // The task whose stack is being read.
    let mut task: Option<Task> = None;
    let flush_task = |d: &mut Dump, t: &mut Option<Task>| {
        if let Some(t) = t.take() {
            if d.tasks.len() < MAX_TASKS {
                d.tasks.push(t);
            }
        }
    };
    for raw in text.lines() {
        let msg = message(raw);
        let trimmed = msg.trim();
        if msg.starts_with("sysrq: ") {
            flush_task(&mut d, &mut task);
            source = match trimmed {
                "sysrq: Show Blocked State" => Source::Blocked,
                "sysrq: Show State" => Source::All,
                _ => Source::Other,
            };
            continue;
        }
        if trimmed == "INFO: lockdep is turned off." {
            d.lockdep_off = true;
            continue;
        }
        if trimmed == "Showing all locks held in the system:" {
            flush_task(&mut d, &mut task);
            in_locks = true;
            d.locks_shown = true;
            d.held.clear();
            continue;
        }
        if in_locks {
            if trimmed.is_empty() {
                continue;
            }
            if trimmed.starts_with("=====") {
                d.held.extend(holder.take());
                in_locks = false;
                continue;
            }
            if let Some((comm, pid)) = holder_head(trimmed) {
                d.held.extend(holder.take());
                if d.held.len() < MAX_TASKS {
                    holder = Some(Holder {
                        comm,
                        pid,
                        locks: Vec::new(),
                    });
                }
                continue;
            }
            if let Some(l) = held_lock(trimmed) {
                if let Some(h) = holder.as_mut().filter(|h| h.locks.len() < MAX_LOCKS) {
                    h.locks.push(l);
                }
                continue;
            }
            // A dump cut short (no closing line): what follows is something else.
            d.held.extend(holder.take());
            in_locks = false;
        }
        if let Some(who) = hung_head(trimmed) {
            flush_task(&mut d, &mut task);
            if d.hung.len() < MAX_TASKS {
                d.hung.push(who);
            }
            source = Source::HungTask;
            continue;
        }
        if let Some(b) = blocker(trimmed) {
            flush_task(&mut d, &mut task);
            if d.blockers.len() < MAX_TASKS {
                d.blockers.push(b);
            }
            // The owner's own dump follows: not a blocked task of `w`'s.
            source = Source::Other;
            continue;
        }
        if let Some(t) = task_head(trimmed, source) {
            flush_task(&mut d, &mut task);
            task = Some(t);
            continue;
        }
        if let Some(t) = task.as_mut() {
            // x86 closes a stack with `</TASK>`; arm64's ends at a blank line.
            if trimmed == "</TASK>" || trimmed.is_empty() {
                flush_task(&mut d, &mut task);
                continue;
            }
            // `? func+0x..` is the unwinder's guess: left out.
            if trimmed.starts_with("? ") {
                continue;
            }
            if let Some(f) = frame_function(trimmed) {
                if t.frames.len() < MAX_FRAMES {
                    t.frames.push(f.to_string());
                }
            }
        }
    }
    flush_task(&mut d, &mut task);
    d.held.extend(holder);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_their_printk_prefixes() {
        assert_eq!(message("[   51.970452] INFO: x"), "INFO: x");
        assert_eq!(message("[   51.970452][  T84] INFO: x"), "INFO: x");
        assert_eq!(message("<4>[    1.0] a"), "a");
        assert_eq!(message("[not a ts] a"), "[not a ts] a");
    }

    #[test]
    fn held_locks_with_parentheses_in_the_class_and_both_head_formats() {
        let l = held_lock(
            "#0: ffff888003a0e548 ((wq_completion)events){+.+.}-{0:0}, at: process_one_work+0x1b1/0x4a0",
        )
        .unwrap();
        assert_eq!(l.class, "(wq_completion)events");
        assert_eq!(l.at, "process_one_work");
        assert_eq!(l.addr, "ffff888003a0e548");
        assert_eq!(
            holder_head("locks held by vma_probe/82: 3, last CPU#0:"),
            Some(("vma_probe".into(), 82))
        );
        assert_eq!(
            holder_head("2 locks held by kworker/0:1/23:"),
            Some(("kworker/0:1".into(), 23))
        );
        assert_eq!(holder_head("the lock is held by nobody"), None);
    }

    #[test]
    fn blocker_lines_name_the_owner_and_how_each_side_holds_it() {
        let b = blocker(
            "INFO: task cat:91 <reader> blocked on an rw-semaphore likely owned by task vma_probe:84 <writer>",
        )
        .unwrap();
        assert_eq!((b.comm.as_str(), b.pid), ("cat", 91));
        assert_eq!(b.lock, "rw-semaphore");
        assert_eq!(b.waits_as.as_deref(), Some("reader"));
        assert_eq!(b.owner, Some(("vma_probe".into(), 84)));
        assert_eq!(b.owner_as.as_deref(), Some("writer"));
        let m =
            blocker("INFO: task a:1 is blocked on a mutex likely owned by task kworker/0:1:23.")
                .unwrap();
        assert_eq!(m.owner, Some(("kworker/0:1".into(), 23)));
        let none =
            blocker("INFO: task a:1 is blocked on a mutex, but the owner is not found.").unwrap();
        assert_eq!(none.owner, None);
        assert!(blocker("INFO: task a:1 blocked for more than 10 seconds.").is_none());
    }

    #[test]
    fn a_hostile_dump_is_bounded() {
        let mut t = String::from("Showing all locks held in the system:\n1 lock held by x/1:\n");
        for _ in 0..10_000 {
            t.push_str(" #0: ff (a){....}-{0:0}, at: f+0x1/0x2\n");
        }
        t.push_str("task:y state:D stack:0 pid:2 tgid:2 ppid:1\n");
        for _ in 0..10_000 {
            t.push_str(" f+0x1/0x2\n");
        }
        let d = parse(&t);
        assert_eq!(d.held[0].locks.len(), MAX_LOCKS);
        assert_eq!(d.tasks[0].frames.len(), MAX_FRAMES);
    }
}
