//! Stack-frame lines and the list of frames that are never "guilty".

use super::Frame;

/// Parses one frame such as ` ? vma_start_read+0x2c/0x180 [mod]`,
/// ` [<ffffffff81234567>] foo+0x1/0x2`, ` foo+0x1/0x2 (P)` (arm64) or the symbolised
/// ` foo mm/memory.c:123 [inline]`. Returns the frame and whether it was marked
/// unreliable (`? `).
pub(crate) fn parse_frame(s: &str) -> Option<(Frame, bool)> {
    let mut s = s.trim_start();
    // Inline context markers of old x86 traces: ` <IRQ>  [<ffff..>] foo`.
    while s.starts_with('<') {
        let end = s.find('>')?;
        if end > 8 || !s[1..end].bytes().all(|b| b.is_ascii_uppercase()) {
            return None;
        }
        s = s[end + 1..].trim_start();
    }
    while let Some(rest) = s.strip_prefix("[<") {
        let end = rest.find(">]")?;
        s = rest[end + 2..].trim_start();
    }
    let mut unreliable = false;
    if let Some(rest) = s.strip_prefix("? ") {
        unreliable = true;
        s = rest.trim_start();
    }
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$'))
        .unwrap_or(s.len());
    let name = &s[..name_end];
    let first = *name.as_bytes().first()?;
    if first.is_ascii_digit() || first == b'.' {
        return None;
    }
    let mut rest = &s[name_end..];
    let mut offset = None;
    let mut size = None;
    if let Some(r) = rest.strip_prefix("+0x") {
        let (off, r) = hex_prefix(r)?;
        offset = Some(off);
        rest = r;
        if let Some(r) = rest.strip_prefix("/0x") {
            let (sz, r) = hex_prefix(r)?;
            size = Some(sz);
            rest = r;
        }
        if !(rest.is_empty() || rest.starts_with([' ', ',', '\t'])) {
            return None;
        }
    } else {
        // Symbolised frame without offset: `name path/file.c:123 [inline]`.
        let tok = rest.strip_prefix(' ')?.split_whitespace().next()?;
        looks_like_source(tok)?;
    }
    let mut module = None;
    let mut source = None;
    for tok in rest.split_whitespace() {
        if source.is_none() {
            if let Some(src) = looks_like_source(tok) {
                source = Some(src.to_string());
                continue;
            }
        }
        if module.is_none() && tok.starts_with('[') && tok != "[inline]" {
            let m = tok.trim_start_matches('[').trim_end_matches(']');
            if !m.is_empty()
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                module = Some(m.to_string());
            }
        }
    }
    Some((
        Frame {
            function: name.to_string(),
            offset,
            size,
            module,
            source,
        },
        unreliable,
    ))
}

fn hex_prefix(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(s.len());
    if end == 0 || end > 16 {
        return None;
    }
    Some((u64::from_str_radix(&s[..end], 16).ok()?, &s[end..]))
}

/// `mm/memory.c:123` or `mm/memory.c:123:4` → the token itself.
fn looks_like_source(tok: &str) -> Option<&str> {
    let tok = tok.trim_end_matches(',');
    let colon = tok.find(':')?;
    let (path, line) = (&tok[..colon], &tok[colon + 1..]);
    if !path.contains('.') || path.starts_with('[') || line.is_empty() {
        return None;
    }
    if !line.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    Some(tok)
}

/// Context markers in x86 traces: `<TASK>`, `</IRQ>`… Returns (name, opening).
pub(crate) fn parse_marker(s: &str) -> Option<(&str, bool)> {
    let s = s.trim();
    let inner = s.strip_prefix('<')?.strip_suffix('>')?;
    let (name, open) = match inner.strip_prefix('/') {
        Some(n) => (n, false),
        None => (inner, true),
    };
    // x86 stack types: `TASK`, `IRQ`, `SOFTIRQ`, `NMI`, `#DF`, `#MC`, `#VC2`,
    // `ENTRY_TRAMPOLINE`, `SYSENTER`.
    if name.is_empty()
        || name.len() > 16
        || !name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_uppercase() || b == b'#')
        || !name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'#' || b == b'_')
    {
        return None;
    }
    Some((name, open))
}

/// `foo.constprop.0` → `foo`, `bar.cold` → `bar`.
pub(crate) fn normalize(name: &str) -> &str {
    match name.find('.') {
        Some(0) | None => name,
        Some(i) => &name[..i],
    }
}

/// The name a title uses for a frame: compiler suffixes dropped, and the per-arch
/// syscall wrappers `SYSCALL_DEFINE` generates (`__x64_sys_X`, `__arm64_sys_X`,
/// `__ia32_sys_X`, `__se_sys_X`) named by the body they wrap, `__do_sys_X`, so that the
/// same bug has the same title on every arch.
pub(crate) fn title_name(name: &str) -> String {
    let n = normalize(name);
    for w in [
        "__x64_sys_",
        "__arm64_sys_",
        "__ia32_sys_",
        "__se_sys_",
        "__x64_compat_sys_",
        "__arm64_compat_sys_",
        "__ia32_compat_sys_",
        "__se_compat_sys_",
    ] {
        if let Some(call) = n.strip_prefix(w) {
            if !call.is_empty() {
                let compat = if w.contains("compat") { "compat_" } else { "" };
                return format!("__do_{compat}sys_{call}");
            }
        }
    }
    n.to_string()
}

// Frames that never make a useful title, in groups named after the kernel code they come
// from. A trailing `*` means "prefix". The groups apply to every report; `kind_skip`
// adds the plumbing of particular report types.

/// Reporting machinery: stack dumping and unwinding (lib/dump_stack.c,
/// arch/*/kernel/stacktrace.c, unwind_*.c, lib/stackdepot.c), printk, WARN/BUG/panic
/// (kernel/panic.c, lib/bug.c, arch/*/kernel/traps.c, dumpstack.c).
const PLUMBING: &[&str] = &[
    "dump_stack*",
    "__dump_stack",
    "show_stack",
    "show_regs",
    "__show_regs",
    "show_trace_log_lvl",
    "show_stack_log_lvl",
    "dump_backtrace*",
    "dump_cpu_task",
    "sched_show_task",
    "show_state*",
    "print_irqtrace_events",
    "printk*",
    "_printk",
    "vprintk*",
    "console_*",
    "panic",
    "vpanic",
    "nmi_panic",
    "__warn*",
    "warn_*",
    "report_bug*",
    "handle_bug",
    "check_panic_on_warn",
    "die",
    "__die*",
    "die_*",
    "oops_*",
    "do_trap",
    "do_error_trap",
    "do_int3*",
    "bug_handler",
    "brk_handler",
    "call_break_hook",
    "bug_brk_handler",
    "call_el1_break_hook",
    "arm64_notify_die",
    "dump_kernel_offset",
    "do_exit",
    "make_task_dead",
    "rewind_stack_and_make_dead",
    "rewind_stack_do_exit",
    "handle_stack_overflow",
    "handle_bad_stack",
    "panic_bad_stack",
    "__bad_stack",
    "arch_stack_walk",
    "unwind_*",
    "__unwind_*",
    "orc_find",
    "__orc_find",
    "stack_depot_save*",
    "__stack_depot_save",
    "save_stack",
    "stack_trace_save*",
    "print_report",
    "dump_page",
    "__dump_page",
    "dump_page_owner",
    "print_bad_page_map",
    "print_bad_pte",
    "poison_error",
    "filemap_unaccount_folio",
    "__filemap_remove_folio",
    "filemap_remove_folio",
    "__check_element",
    "check_element",
    "print_address_description*",
    "print_trailer",
    "print_track*",
    "print_tracking",
    "object_err",
    "slab_err",
    "slab_bug",
    "__slab_err",
];

/// Lock primitives and lockdep itself (kernel/locking/*.c).
const LOCKING: &[&str] = &[
    "lock_*",
    "__lock_*",
    "lockdep_*",
    "__lockdep_*",
    "_raw_spin_*",
    "_raw_read_*",
    "_raw_write_*",
    "raw_spin_*",
    "do_raw_spin_*",
    "do_raw_read_*",
    "do_raw_write_*",
    "queued_spin_*",
    "queued_read_*",
    "queued_write_*",
    "native_queued_spin_*",
    "__pv_queued_*",
    "pv_queued_*",
    "spin_lock*",
    "spin_unlock*",
    "spin_dump",
    "spin_bug",
    "rwlock_bug",
    "read_lock*",
    "write_lock*",
    "down",
    "down_*",
    "__down*",
    "up",
    "up_read*",
    "up_write*",
    "__up_*",
    "mutex_*",
    "__mutex_*",
    "ww_mutex_*",
    "__ww_mutex_*",
    "rwsem*",
    "__rwsem*",
    "percpu_down_*",
    "percpu_up_*",
    "__percpu_down_*",
    "percpu_rwsem_*",
    "rt_mutex_*",
    "__rt_mutex_*",
    "rt_spin_*",
    "rtlock_*",
    "rwbase_*",
    "__rwbase_*",
    "osq_lock",
    "call_rwsem_*",
    "osq_unlock",
    "__raw_spin_lock_init",
    "__rwlock_init",
    "__init_rwsem",
    "__rt_mutex_init",
    "folio_lock*",
    "__folio_lock*",
    "inode_lock*",
    "i_mmap_lock*",
    "anon_vma_lock*",
    "filemap_invalidate_lock*",
    "mmap_read_lock*",
    "mmap_write_lock*",
    "mmap_read_unlock*",
    "mmap_write_unlock*",
    "check_noncircular",
    "check_prev_add",
    "check_prevs_add",
    "check_irq_usage",
    "check_deadlock",
    "check_flags",
    "validate_chain",
    "mark_lock*",
    "mark_usage",
    "mark_held_locks",
    "valid_state",
    "print_circular_bug",
    "print_usage_bug",
    "print_deadlock_bug",
    "print_bad_irq_dependency",
    "print_lock*",
    "print_collision",
    "print_unlock_imbalance_bug",
    "print_held_locks_bug",
    "print_lockdep_off",
    "debug_check_no_locks_*",
    "debug_locks_off",
    "register_lock_class",
    "look_up_lock_class",
    "hlock_class",
    "find_held_lock",
    "match_held_lock",
    "__bfs*",
    "bfs",
    "add_chain_cache",
    "debug_show_all_locks",
    "debug_show_held_locks",
];

/// Allocators (mm/slub.c, mm/page_alloc.c, mm/vmalloc.c, mm/util.c).
const ALLOC: &[&str] = &[
    "kmalloc*",
    "__kmalloc*",
    "kmem_cache_*",
    "__kmem_cache_*",
    "slab_*",
    "__slab_*",
    "___slab_*",
    "kzalloc*",
    "kcalloc*",
    "krealloc*",
    "__krealloc*",
    "kfree*",
    "kvfree*",
    "kvmalloc*",
    "__kvmalloc*",
    "kmemdup*",
    "kstrdup*",
    "kstrndup",
    "alloc_pages*",
    "__alloc_pages*",
    "alloc_pages_mpol*",
    "__alloc_frozen_pages*",
    "__get_free_pages",
    "vmalloc*",
    "__vmalloc*",
    "vzalloc*",
    "free_pages*",
    "__free_pages*",
    "__free_one_page",
    "__folio_alloc*",
    "folio_alloc*",
    "do_slab_free",
    "kfree_rcu*",
    "warn_alloc*",
    // page freeing and its checks (mm/page_alloc.c, mm/swap.c)
    "bad_page",
    "free_page_is_bad*",
    "free_pages_prepare",
    "free_unref_*",
    "__free_frozen_pages",
    "free_frozen_pages",
    "free_pcppages_bulk",
    "__folio_put",
    "folio_put*",
    "folios_put*",
    "release_pages",
    "__put_page",
    "put_page",
    "check_new_page*",
    "rmqueue*",
    "get_page_from_freelist",
    "prep_new_page",
    "mempool_*",
    "free_debug_processing",
    "alloc_debug_processing",
    "check_object",
    "check_slab",
    "on_freelist",
    "free_consistency_checks",
];

/// Fault handling and entry code: exceptions, syscalls, interrupts, kthreads and
/// workqueue workers, idle (arch/x86/entry, arch/x86/mm/fault.c, arch/arm64/kernel/entry*,
/// arch/arm64/mm/fault.c, kernel/irq, kernel/kthread.c, kernel/workqueue.c).
const FAULT_ENTRY: &[&str] = &[
    "exc_*",
    "asm_exc_*",
    "fixup_exception",
    "page_fault_oops",
    "kernelmode_fixup_or_oops*",
    "no_context",
    "__bad_area*",
    "bad_area*",
    "do_user_addr_fault",
    "do_kern_addr_fault",
    "handle_page_fault",
    "spurious_kernel_fault",
    "do_page_fault",
    "__do_page_fault",
    "__do_kernel_fault",
    "die_kernel_fault",
    "do_translation_fault",
    "do_alignment_fault",
    "do_tag_check_fault",
    "do_mem_abort",
    "do_sea",
    "do_bad",
    "do_bad_area",
    "do_el1_*",
    "do_el0_*",
    "el1_*",
    "el0_*",
    "el1h_*",
    "el0t_*",
    "enter_from_kernel_mode",
    "exit_to_kernel_mode",
    "arm64_enter_*",
    "arm64_exit_*",
    "do_debug_exception",
    "do_undefinstr",
    "ubsan_brk_handler",
    "kasan_handler",
    "do_syscall_64",
    "do_syscall_x64",
    "do_syscall_32*",
    "x64_sys_call",
    "ia32_sys_call",
    "entry_SYSCALL_64*",
    "entry_SYSENTER*",
    "entry_INT80*",
    "do_fast_syscall_32",
    "__do_fast_syscall_32",
    "do_int80_syscall_32",
    "invoke_syscall",
    "__invoke_syscall",
    "el0_svc*",
    "do_el0_svc*",
    "syscall_exit_to_user_mode*",
    "exit_to_user_mode*",
    "irqentry_*",
    "ret_from_fork*",
    "__ret_from_fork",
    "kthread",
    "worker_thread",
    "process_one_work",
    "process_scheduled_works",
    "srso_*",
    "__x86_return_thunk",
    "__x86_indirect_thunk_*",
    "__pfx_*",
    "sysvec_*",
    "__sysvec_*",
    "asm_sysvec_*",
    "common_interrupt",
    "__common_interrupt",
    "asm_common_interrupt",
    "handle_irq_event*",
    "__handle_irq_event*",
    "handle_fasteoi_irq",
    "handle_edge_irq",
    "handle_level_irq",
    "handle_percpu_devid_irq",
    "irq_exit*",
    "irq_enter*",
    "__irq_exit_rcu",
    "__irq_enter_raw",
    "gic_handle_irq",
    "handle_domain_irq",
    "generic_handle_*",
    "call_on_irq_stack",
    "do_interrupt_handler",
    "el1_interrupt",
    "nmi_*",
    "__nmi_*",
    "default_do_nmi",
    "end_repeat_nmi",
    "repeat_nmi",
    "first_nmi",
    "perf_event_nmi_handler",
    "handle_pmi_common",
    "intel_pmu_handle_irq",
    "amd_pmu_handle_irq",
    "__perf_event_overflow",
    "perf_event_overflow",
    "armv8pmu_handle_irq",
    "arch_trigger_cpumask_backtrace",
    "trigger_*_backtrace",
    "ipi_handler",
    "do_handle_IPI",
    "default_idle*",
    "native_safe_halt",
    "pv_native_safe_halt",
    "arch_cpu_idle*",
    "cpu_idle_poll",
    "do_idle",
    "cpu_startup_entry",
    "acpi_idle_*",
    "cpuidle_*",
    "mwait_idle*",
    "intel_idle*",
    "arch_local_irq_*",
    "preempt_count_*",
    "__preempt_count_*",
];

/// Sanitizer and coverage runtimes (mm/kasan, mm/kmsan, mm/kfence, kernel/kcsan,
/// lib/ubsan.c, kernel/kcov.c, mm/kmemleak.c).
const SANITIZERS: &[&str] = &[
    "kasan_*",
    "__kasan_*",
    "____kasan_*",
    "__asan_*",
    "___asan_*",
    "asan.module_*",
    "check_region_inline",
    "check_memory_region*",
    "memory_is_poisoned*",
    "kmsan_*",
    "__kmsan_*",
    "__msan_*",
    "kcsan_*",
    "__kcsan_*",
    "__tsan_*",
    "kfence_*",
    "__kfence_*",
    "ubsan_*",
    "__ubsan_*",
    "handle_overflow",
    "__sanitizer_*",
    "write_comp_data",
    "kmemleak_*",
    "mte_check_tfsr*",
    "mte_*_fault",
    "do_tag_recovery",
];

/// String and user-copy helpers (lib/string.c, arch/*/lib, include/linux/uaccess.h).
const STRINGS: &[&str] = &[
    "memcpy*",
    "memmove*",
    "memset*",
    "memcmp",
    "bcmp",
    "__memcpy*",
    "__memmove*",
    "__memset*",
    "strcpy",
    "strncpy",
    "strscpy*",
    "strlen",
    "strnlen",
    "strcmp",
    "strncmp",
    "strchr",
    "strrchr",
    "strcat",
    "strncat",
    "strlcpy",
    "strlcat",
    "strstr",
    "strnstr",
    "memchr",
    "_copy_to_user",
    "_copy_from_user",
    "__copy_*_user*",
    "copy_user_*",
    "rep_movs_alternative",
    "raw_copy_*_user",
    "__arch_copy_*_user",
    "put_user*",
    "__put_user*",
    "get_user*",
    "__get_user*",
    "read_word_at_a_time",
    "snprintf",
    "vsnprintf",
    "scnprintf",
    "vscnprintf",
    "sprintf",
    "kasprintf",
    "kvasprintf",
    "string",
    "pointer",
];

/// Scheduling, sleeping and waiting (kernel/sched, kernel/sched/completion.c,
/// kernel/sched/wait*.c), and the might_sleep checks.
const SCHED_WAIT: &[&str] = &[
    "schedule",
    "__schedule",
    "__schedule_loop",
    "schedule_timeout*",
    "schedule_preempt_disabled",
    "schedule_hrtimeout*",
    "io_schedule*",
    "schedule_idle",
    "preempt_schedule*",
    "__switch_to*",
    "context_switch",
    "finish_task_switch*",
    "cpu_switch_to",
    "__cond_resched",
    "_cond_resched",
    "cond_resched*",
    "wait_for_completion*",
    "__wait_for_common",
    "wait_for_common*",
    "do_wait_for_common",
    "__wait_rcu_gp",
    "synchronize_rcu*",
    "__synchronize_srcu",
    "synchronize_srcu*",
    "finish_wait",
    "prepare_to_wait*",
    "__might_fault",
    "might_fault",
    "__might_sleep",
    "___might_sleep",
    "might_sleep",
    "__might_resched",
    "__cant_sleep",
    "__cant_migrate",
    "__schedule_bug",
    "debug_smp_processor_id",
    "check_preemption_disabled",
    "__this_cpu_preempt_check",
];

/// Timers, softirqs, RCU core and the lockup/hang detectors themselves (kernel/time,
/// kernel/softirq.c, kernel/rcu, kernel/watchdog*.c, kernel/hung_task.c).
const IRQ_TIMER: &[&str] = &[
    "rcu_*",
    "__rcu_*",
    "call_rcu*",
    "__call_rcu*",
    "print_cpu_stall",
    "print_other_cpu_stall",
    "check_cpu_stall",
    "watchdog_*",
    "__watchdog_*",
    "watchdog",
    "check_hung_*",
    "hung_task_*",
    "hrtimer_*",
    "__hrtimer_*",
    "__run_hrtimer",
    "tick_*",
    "update_process_times",
    "handle_softirqs",
    "__do_softirq",
    "do_softirq*",
    "run_timer_softirq",
    "run_timer_base",
    "__run_timer_base",
    "__run_timers",
    "expire_timers",
    "call_timer_fn",
];

/// Generic checkers whose callers are the interesting frame: refcount, list debugging,
/// debugobjects, usercopy and fortify checks, fault injection, teardown helpers.
const CHECKERS: &[&str] = &[
    "refcount_*",
    "__refcount_*",
    "refcount_warn_saturate",
    "__list_add_valid*",
    "__list_del_entry_valid*",
    "__list_*_report",
    "__list_add*",
    "__list_del*",
    "list_add*",
    "list_del*",
    "debug_print_object",
    "debug_object_*",
    "__debug_object_*",
    "debug_check_no_obj_freed",
    "debug_objects_*",
    "debug_rcu_head_*",
    "fill_pool",
    "kmem_alloc_batch",
    "__debug_check_no_obj_freed",
    "usercopy_abort",
    "__check_object_size",
    "check_heap_object",
    "__check_heap_object",
    "__stack_chk_fail",
    "fortify_panic",
    "__fortify_panic",
    "should_fail*",
    "__should_fail*",
    "fail_dump",
    "__wake_up*",
    "dev_printk*",
    "__dev_printk",
    "_dev_err",
    "_dev_warn",
    "_dev_info",
    "_dev_notice",
    "_dev_alert",
    "_dev_crit",
    "_dev_emerg",
    "dev_err*",
    "dev_warn*",
    "flush_work",
    "__flush_work",
    "flush_workqueue",
    "__flush_workqueue",
    "__warn_flushing_systemwide_wq",
    "drain_workqueue",
    "destroy_workqueue",
    "del_timer*",
    "timer_delete*",
    "kthread_stop*",
    "kobject_put",
    "kobject_del",
    "kobject_uevent*",
    "perf_trace_*",
];

const SKIP_GROUPS: &[&[&str]] = &[
    PLUMBING,
    LOCKING,
    ALLOC,
    FAULT_ENTRY,
    SANITIZERS,
    STRINGS,
    SCHED_WAIT,
    IRQ_TIMER,
    CHECKERS,
];

/// Frames that match a skip pattern but are the very code paths this project studies.
const KEEP: &[&str] = &[
    "lock_vma_under_rcu",
    "lock_mm_and_find_vma",
    "lock_next_vma",
];

fn matches_pattern(name: &str, p: &str) -> bool {
    match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == p,
    }
}

/// Frames never skipped, whatever the report type.
pub(crate) fn is_kept(name: &str) -> bool {
    KEEP.contains(&normalize(name))
}

pub(crate) fn is_skipped(name: &str) -> bool {
    let name = normalize(name);
    if KEEP.contains(&name) {
        return false;
    }
    SKIP_GROUPS
        .iter()
        .any(|g| g.iter().any(|p| matches_pattern(name, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Frame {
        parse_frame(s).unwrap().0
    }

    #[test]
    fn frames() {
        let fr = f(" vma_start_read+0x2c/0x180");
        assert_eq!(fr.function, "vma_start_read");
        assert_eq!((fr.offset, fr.size), (Some(0x2c), Some(0x180)));
        let (fr, unrel) = parse_frame(" ? __die+0x23/0x70").unwrap();
        assert!(unrel);
        assert_eq!(fr.function, "__die");
        let fr = f(" ext4_foo.constprop.0+0x10/0x20 [ext4]");
        assert_eq!(fr.module.as_deref(), Some("ext4"));
        assert_eq!(normalize(&fr.function), "ext4_foo");
        let fr = f(" [<ffffffff81234567>] ? foo+0x1/0x2");
        assert_eq!(fr.function, "foo");
        let fr = f(" vma_start_read+0x1c/0x90 (P)");
        assert_eq!(fr.function, "vma_start_read");
        let fr = f(" __dump_stack lib/dump_stack.c:94 [inline]");
        assert_eq!(fr.source.as_deref(), Some("lib/dump_stack.c:94"));
        assert_eq!(fr.offset, None);
        let fr = f(" dump_stack_lvl+0x241/0x360 lib/dump_stack.c:120");
        assert_eq!(fr.source.as_deref(), Some("lib/dump_stack.c:120"));
        let fr = f(" <IRQ>  [<ffffffff81000000>] foo+0x1/0x2");
        assert_eq!(fr.function, "foo");
    }

    #[test]
    fn not_frames() {
        for s in [
            "Hardware name: QEMU Standard PC",
            "RIP: 0010:foo+0x1/0x2",
            "Code: 48 89 e5",
            "turning off the locking correctness validator.",
            " 0xffffffffc0001234",
            "</TASK>",
            "",
            "   ",
            "foo+0xzz/0x1",
            " #0: ffff888100a1b2c8 (&mm->mmap_lock){++++}-{3:3}, at: foo+0x1/0x2",
        ] {
            assert!(parse_frame(s).is_none(), "{s:?}");
        }
    }

    #[test]
    fn markers() {
        assert_eq!(parse_marker(" <TASK>"), Some(("TASK", true)));
        assert_eq!(parse_marker(" </IRQ>"), Some(("IRQ", false)));
        assert_eq!(parse_marker(" <task>"), None);
        assert_eq!(parse_marker(" <#DF>"), Some(("#DF", true)));
        assert_eq!(
            parse_marker(" </ENTRY_TRAMPOLINE>"),
            Some(("ENTRY_TRAMPOLINE", false))
        );
        assert_eq!(parse_marker(" <1>"), None);
    }

    #[test]
    fn skipping() {
        for s in [
            "lock_acquire",
            "__lock_acquire.part.0",
            "down_write",
            "rwsem_down_write_slowpath",
            "_raw_spin_lock_irqsave",
            "mutex_lock_nested",
            "__might_fault",
            "dump_stack_lvl",
            "asm_exc_page_fault",
            "el0t_64_sync_handler",
            "kmalloc_trace",
            "memcpy",
            "__schedule",
            "do_syscall_64",
            "entry_SYSCALL_64_after_hwframe",
            "kasan_report",
        ] {
            assert!(is_skipped(s), "{s}");
        }
        for s in [
            "vma_start_read",
            "vma_start_read_locked_nested",
            "lock_vma_under_rcu",
            "probe_write",
            "do_mmap",
            "handle_mm_fault",
            "upgrade_lock_thing",
        ] {
            assert!(!is_skipped(s), "{s}");
        }
    }
}
