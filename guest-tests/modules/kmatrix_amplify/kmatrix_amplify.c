// SPDX-License-Identifier: GPL-2.0
/*
 * kmatrix_amplify - widens the race windows of the code a patch series touches, while a
 * stress test runs, so that a race the plain stress would hit once in hours is hit in
 * seconds. Test harness only, loaded by kmatrix around a test whose spec says `amplify:`.
 *
 * Parameters (lists are comma-separated; an entry `a|b` means "a, or b if a cannot be
 * probed", for names that differ by config: mutex_lock_nested|mutex_lock; a name that is
 * not a symbol is also tried as gcc's clones of a static function, NAME.isra.0 and
 * NAME.constprop.0):
 *  targets=f,g   the functions the series changes. Each gets a kretprobe: its entry
 *                handler delays the caller, and marks the task as "inside a target" until
 *                the function returns.
 *  lockops=l,m   the lock operations those functions call (down_read, up_read, ...). A
 *                kprobe at their entry delays only a task inside a target, so the rest of
 *                the kernel's locking runs at full speed.
 *  delay_us=N    a delayed hit waits a random 0..N microseconds. udelay(), never a sleep:
 *                probe handlers run in atomic context.
 *  percent=P     the share of hits that are delayed at all.
 *  seed=S        seed of the per-CPU PRNG (xorshift64*, mixed with the CPU number), so a
 *                run's delays can be asked for again.
 *  resched=1     after a delay, also ask for a reschedule (a cond_resched()-style
 *                preemption point): the task is preempted right there if the probed code
 *                is preemptible, else at its next preemption point, as after a timer
 *                tick. Without it, the other threads queued on the delayed CPU wait out
 *                the delay instead of running inside the window.
 *
 * The counters are read from /sys/module/kmatrix_amplify/parameters/stats before the
 * module is removed: a header line, then per probe
 *    probe NAME target|lockop hits=H delayed=D delay_us=T seen=S missed=M resched=R
 * (hits: calls that could be delayed; seen: all calls of a lock op, inside a target or
 * not; missed: kretprobe instances the kernel had none left for; resched: reschedules
 * asked for), or
 *    missing NAME target|lockop ERRNO
 * for a name that could not be probed (inlined, not a symbol, or on kprobes' blacklist).
 */
#include <linux/atomic.h>
#include <linux/ctype.h>
#include <linux/sched/clock.h>
#include <linux/hash.h>
#include <linux/kernel.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/percpu.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>

#define MAX_PROBES 64
#define MAX_DELAY_US 10000
/* Concurrent kretprobe instances per target: the targets can sleep (a lock wait). */
#define MAX_ACTIVE 64

static char *targets = "";
module_param(targets, charp, 0444);
MODULE_PARM_DESC(targets, "functions to delay at entry (a|b: b if a cannot be probed)");

static char *lockops = "";
module_param(lockops, charp, 0444);
MODULE_PARM_DESC(lockops, "lock operations to delay when called inside a target");

static unsigned int delay_us = 50;
module_param(delay_us, uint, 0444);
MODULE_PARM_DESC(delay_us, "a delayed hit waits a random 0..delay_us microseconds");

static unsigned int percent = 100;
module_param(percent, uint, 0444);
MODULE_PARM_DESC(percent, "share of hits that are delayed");

static unsigned long seed = 1;
module_param(seed, ulong, 0444);
MODULE_PARM_DESC(seed, "PRNG seed");

static bool resched = true;
module_param(resched, bool, 0444);
MODULE_PARM_DESC(resched, "ask for a reschedule after each delay");

enum amp_kind { AMP_TARGET, AMP_LOCKOP };

struct amp_probe {
	enum amp_kind kind;
	char *name;		/* the name placed, or the first one tried */
	char *clone;		/* NAME.isra.0 or NAME.constprop.0, when that was placed */
	int err;		/* 0 when placed */
	struct kretprobe rp;	/* AMP_TARGET */
	struct kprobe kp;	/* AMP_LOCKOP */
	atomic64_t hits, delayed, delayed_us, seen, rescheds;
};

static struct amp_probe *probes;
static int nprobes;
static char *names;		/* the parameters' copies the probes' names point into */

static DEFINE_PER_CPU(u64, amp_rng);

/* Handlers run with preemption disabled: the CPU's state is ours until we return. */
static u64 amp_random(void)
{
	u64 *s = this_cpu_ptr(&amp_rng);
	u64 x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/*
 * A busy wait on the clock alone, not udelay(): udelay() relaxes the CPU on each turn
 * (x86 PAUSE), which QEMU's TCG emulates by leaving the vCPU's translated code. Measured
 * on a 2-vCPU x86_64 TCG guest, the same 8 s stress reached the probe 4 times less
 * often with udelay() and the boots took 40% longer: the whole guest slowed down, not
 * only the delayed CPU.
 */
static void amp_spin(unsigned int us)
{
	u64 end = local_clock() + (u64)us * NSEC_PER_USEC;

	while (local_clock() < end)
		barrier();
}

static void amp_delay(struct amp_probe *p)
{
	u64 r = amp_random();
	unsigned int us;

	atomic64_inc(&p->hits);
	if (percent < 100 && (r & 0xffff) % 100 >= percent)
		return;
	us = (r >> 16) % ((u64)delay_us + 1);
	if (!us)
		return;
	atomic64_inc(&p->delayed);
	atomic64_add(us, &p->delayed_us);
	amp_spin(us);
	if (resched) {
		/*
		 * What the scheduler tick does when a task's slice is over: only a flag,
		 * acted upon where the kernel may be preempted anyway.
		 */
		set_tsk_need_resched(current);
		set_preempt_need_resched();
		atomic64_inc(&p->rescheds);
	}
}

/*
 * Which tasks are inside a target: a small open-addressed table keyed by the task.
 * A slot is claimed with cmpxchg and only its owner changes its depth or frees it, so
 * the lock-op handlers need no lock to ask "is current inside?".
 */
#define SCOPE_BITS 7
#define SCOPE_SLOTS (1 << SCOPE_BITS)
#define SCOPE_TRIES 8
static struct task_struct *scope_task[SCOPE_SLOTS];
static int scope_depth[SCOPE_SLOTS];
static atomic64_t scope_full;

static int scope_find(void)
{
	unsigned int h = hash_ptr(current, SCOPE_BITS);
	int i;

	for (i = 0; i < SCOPE_TRIES; i++) {
		unsigned int s = (h + i) & (SCOPE_SLOTS - 1);

		if (READ_ONCE(scope_task[s]) == current)
			return s;
	}
	return -1;
}

static int scope_enter(void)
{
	unsigned int h = hash_ptr(current, SCOPE_BITS);
	int s = scope_find();
	int i;

	if (s >= 0) {
		scope_depth[s]++;
		return s;
	}
	for (i = 0; i < SCOPE_TRIES; i++) {
		unsigned int t = (h + i) & (SCOPE_SLOTS - 1);

		if (!cmpxchg(&scope_task[t], NULL, current)) {
			scope_depth[t] = 1;
			return t;
		}
	}
	atomic64_inc(&scope_full);
	return -1;
}

static void scope_leave(int s)
{
	if (s < 0 || s >= SCOPE_SLOTS || READ_ONCE(scope_task[s]) != current)
		return;
	if (--scope_depth[s] == 0)
		smp_store_release(&scope_task[s], NULL);
}

/*
 * Was the probed code running in a task, not in an interrupt? A breakpoint-based probe
 * runs in an NMI-like context of its own (x86 enters a kernel-mode int3 with
 * nmi_enter()), which is discounted; an optimized probe runs in the probed context.
 */
static bool probed_in_task(void)
{
	unsigned long pc = preempt_count();

	if (pc & NMI_MASK) {
		if ((pc & NMI_MASK) > NMI_OFFSET)
			return false;	/* an NMI handler was probed */
		pc -= NMI_OFFSET;
		if (pc & HARDIRQ_MASK)
			pc -= HARDIRQ_OFFSET;
	}
	return !(pc & (HARDIRQ_MASK | SOFTIRQ_OFFSET));
}

static int amp_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct kretprobe *rp = get_kretprobe(ri);
	int *slot = (int *)ri->data;

	if (!rp || !probed_in_task())
		return 1;	/* no return handler for this call */
	amp_delay(container_of(rp, struct amp_probe, rp));
	*slot = scope_enter();
	return *slot < 0;
}

static int amp_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	scope_leave(*(int *)ri->data);
	return 0;
}

static int amp_lockop(struct kprobe *kp, struct pt_regs *regs)
{
	struct amp_probe *p = container_of(kp, struct amp_probe, kp);

	if (!probed_in_task())
		return 0;
	atomic64_inc(&p->seen);
	if (scope_find() >= 0)
		amp_delay(p);
	return 0;
}

static bool plain_name(const char *s)
{
	size_t n = strlen(s);

	if (!n || n >= KSYM_NAME_LEN)
		return false;
	for (; *s; s++)
		if (!(isalnum(*s) || *s == '_' || *s == '.'))
			return false;
	return true;
}

static int amp_register(struct amp_probe *p, const char *sym)
{
	if (p->kind == AMP_TARGET) {
		memset(&p->rp, 0, sizeof(p->rp));
		p->rp.kp.symbol_name = sym;
		p->rp.entry_handler = amp_entry;
		p->rp.handler = amp_return;
		p->rp.data_size = sizeof(int);
		p->rp.maxactive = MAX_ACTIVE;
		return register_kretprobe(&p->rp);
	}
	memset(&p->kp, 0, sizeof(p->kp));
	p->kp.symbol_name = sym;
	p->kp.pre_handler = amp_lockop;
	return register_kprobe(&p->kp);
}

/* A static function gcc specialised is a symbol under its clone's name only. */
static const char *const clone_suffixes[] = { ".isra.0", ".constprop.0" };

/* Place one probe: the first alternative of `spec` (a|b|c) that registers. */
static int amp_place(struct amp_probe *p, char *spec)
{
	char *alt;
	int err = -ENOENT;
	int i;

	p->name = NULL;
	while ((alt = strsep(&spec, "|"))) {
		if (!plain_name(alt))
			return -EINVAL;
		if (!p->name)
			p->name = alt;
		err = amp_register(p, alt);
		for (i = 0; err == -ENOENT && !strchr(alt, '.') && i < ARRAY_SIZE(clone_suffixes); i++) {
			char *c = kasprintf(GFP_KERNEL, "%s%s", alt, clone_suffixes[i]);

			if (!c)
				return -ENOMEM;
			err = amp_register(p, c);
			if (err) {
				kfree(c);
				err = -ENOENT;	/* the first name's answer is the one to report */
			} else {
				p->clone = c;
			}
		}
		if (!err) {
			p->name = p->clone ? p->clone : alt;
			break;
		}
	}
	p->err = err;
	return 0;
}

static int amp_parse(char *list, enum amp_kind kind)
{
	char *item;

	while ((item = strsep(&list, ","))) {
		struct amp_probe *p;
		int err;

		if (!*item)
			continue;
		if (nprobes == MAX_PROBES) {
			pr_err("kmatrix_amplify: more than %d probes\n", MAX_PROBES);
			return -E2BIG;
		}
		p = &probes[nprobes];
		p->kind = kind;
		err = amp_place(p, item);
		if (err) {
			pr_err("kmatrix_amplify: `%s`: %s\n", item,
			       err == -ENOMEM ? "out of memory" : "not a symbol name");
			return err;
		}
		nprobes++;
	}
	return 0;
}

static void amp_remove(void)
{
	int i;

	for (i = 0; i < MAX_PROBES && probes; i++) {
		if (i < nprobes && !probes[i].err) {
			if (probes[i].kind == AMP_TARGET)
				unregister_kretprobe(&probes[i].rp);
			else
				unregister_kprobe(&probes[i].kp);
		}
		kfree(probes[i].clone);
	}
	nprobes = 0;
}

static int stats_get(char *buf, const struct kernel_param *kp)
{
	int n = 0;
	int i;

	n += scnprintf(buf + n, PAGE_SIZE - n,
		       "kmatrix_amplify delay_us=%u percent=%u seed=%lu resched=%d scope_full=%lld\n",
		       delay_us, percent, seed, resched, atomic64_read(&scope_full));
	for (i = 0; i < nprobes; i++) {
		struct amp_probe *p = &probes[i];
		const char *kind = p->kind == AMP_TARGET ? "target" : "lockop";

		if (p->err)
			n += scnprintf(buf + n, PAGE_SIZE - n, "missing %s %s %d\n",
				       p->name, kind, p->err);
		else
			n += scnprintf(buf + n, PAGE_SIZE - n,
				       "probe %s %s hits=%lld delayed=%lld delay_us=%lld seen=%lld missed=%d resched=%lld\n",
				       p->name, kind, atomic64_read(&p->hits),
				       atomic64_read(&p->delayed), atomic64_read(&p->delayed_us),
				       atomic64_read(&p->seen),
				       p->kind == AMP_TARGET ? p->rp.nmissed : 0,
				       atomic64_read(&p->rescheds));
	}
	return n;
}

static int stats_set(const char *val, const struct kernel_param *kp)
{
	return -EPERM;
}

static const struct kernel_param_ops stats_ops = {
	.set = stats_set,
	.get = stats_get,
};
module_param_cb(stats, &stats_ops, NULL, 0444);
MODULE_PARM_DESC(stats, "per-probe hit and delay counters (read-only)");

static int __init amp_init(void)
{
	size_t tl = strlen(targets), ll = strlen(lockops);
	int cpu, err, placed = 0, i;

	if (delay_us > MAX_DELAY_US || percent > 100) {
		pr_err("kmatrix_amplify: delay_us at most %d, percent at most 100\n", MAX_DELAY_US);
		return -EINVAL;
	}
	for_each_possible_cpu(cpu)
		per_cpu(amp_rng, cpu) = (seed ^ ((u64)(cpu + 1) * 0x9E3779B97F4A7C15ULL)) | 1;
	probes = kcalloc(MAX_PROBES, sizeof(*probes), GFP_KERNEL);
	names = kmalloc(tl + ll + 2, GFP_KERNEL);
	if (!probes || !names) {
		err = -ENOMEM;
		goto fail;
	}
	memcpy(names, targets, tl + 1);
	memcpy(names + tl + 1, lockops, ll + 1);
	err = amp_parse(names, AMP_TARGET);
	if (!err)
		err = amp_parse(names + tl + 1, AMP_LOCKOP);
	if (err)
		goto fail;
	for (i = 0; i < nprobes; i++)
		placed += !probes[i].err;
	pr_info("kmatrix_amplify: %d of %d probes placed, delays up to %u us (seed %lu)\n",
		placed, nprobes, delay_us, seed);
	return 0;
fail:
	amp_remove();
	kfree(probes);
	kfree(names);
	return err;
}

static void __exit amp_exit(void)
{
	amp_remove();
	kfree(probes);
	kfree(names);
}

module_init(amp_init);
module_exit(amp_exit);
MODULE_DESCRIPTION("kmatrix race amplification: random delays at the code a series changes");
MODULE_LICENSE("GPL");
