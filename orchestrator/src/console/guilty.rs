//! Which frame of a report names the bug: the rules per report kind.

use super::detect::Head;
use super::frame::{normalize, title_name};
use super::skip::{is_kept, is_skipped};
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

impl<'a> Evidence<'a> {
    /// The candidate frames for the guilty function, in order of preference.
    fn candidates(&self) -> Vec<&'a Frame> {
        let trace = self.cands.iter().filter(|c| !c.rip).map(|c| &c.frame);
        let head = self.head_frames.iter();
        let rip = self.rips.iter();
        match self.head {
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

    pub fn guilty(&self, preferred: &[String]) -> Option<String> {
        let extra = kind_skip(self.head);
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
            for f in self.trace {
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
}

/// Frames that are plumbing for one type of report only (substrings of the name): the
/// checker that printed it, the callbacks a hang or a leak always passes through.
pub(crate) fn kind_skip(head: &Head) -> &'static [&'static str] {
    match head {
        Head::Warning(Some("ODEBUG bug")) => &[
            "debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_", "kmem_", "slab_", "kfree",
            "vunmap", "vfree", "__free_", "kobject_",
        ],
        Head::Warning(Some("refcount bug")) => &["refcount", "kobject_"],
        Head::Warning(Some("locking bug")) => &["lock_sock", "release_sock"],
        Head::Warning(Some("kobject bug")) => &["kobject_"],
        Head::Warning(Some("bad usercopy")) | Head::Bug(Some("BUG: bad usercopy")) => {
            &["usercopy", "__check"]
        }
        Head::Bug(Some(_)) => &["list_", "__list_"],
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
        ],
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
        // A hung task's stack is mostly the wait or lock it is stuck in.
        Head::HungTask(_) => &["wait", "completion", "_slowpath", "_lock", "sched"],
        _ => &[],
    }
}
