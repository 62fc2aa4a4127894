// SPDX-License-Identifier: GPL-2.0
/*
 * kmatrix_live - proves, at the end of every booted cell, that lockdep and the hung-task
 * detector are still alive: lockdep turns itself off after its first report, and a PASS
 * must mean the detectors could have spoken.
 *
 * Loaded with mode=all it
 *  - takes two mutexes in one order and then the other, sequentially: never a deadlock,
 *    but lockdep must report "possible circular locking dependency";
 *  - starts a kthread that sleeps uninterruptibly for hold_secs: the hung-task detector
 *    (its timeout lowered by kmatrix for this step) must report it.
 * Every name carries the tag kmatrix_liveness, which is how kmatrix tells these reports
 * from real ones: they are controls, never findings.
 */
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/string.h>

static char *mode = "all";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "lockdep, hung or all");

static unsigned int hold_secs = 12;
module_param(hold_secs, uint, 0444);
MODULE_PARM_DESC(hold_secs, "how long the kthread stays blocked");

static DEFINE_MUTEX(kmatrix_liveness_a);
static DEFINE_MUTEX(kmatrix_liveness_b);

static noinline void kmatrix_liveness_lockdep(void)
{
	mutex_lock(&kmatrix_liveness_a);
	mutex_lock(&kmatrix_liveness_b);
	mutex_unlock(&kmatrix_liveness_b);
	mutex_unlock(&kmatrix_liveness_a);

	/* The other order, after the first has been released: lockdep's report only. */
	mutex_lock(&kmatrix_liveness_b);
	mutex_lock(&kmatrix_liveness_a);
	mutex_unlock(&kmatrix_liveness_a);
	mutex_unlock(&kmatrix_liveness_b);
}

static noinline int kmatrix_liveness_hung(void *unused)
{
	set_current_state(TASK_UNINTERRUPTIBLE);
	schedule_timeout(hold_secs * HZ);
	return 0;
}

static int __init kmatrix_live_init(void)
{
	bool all = !strcmp(mode, "all");

	if (all || !strcmp(mode, "lockdep"))
		kmatrix_liveness_lockdep();
	if (all || !strcmp(mode, "hung")) {
		struct task_struct *t;

		t = kthread_run(kmatrix_liveness_hung, NULL, "kmatrix_liveness");
		if (IS_ERR(t))
			return PTR_ERR(t);
	}
	pr_info("kmatrix_live: mode=%s hold_secs=%u\n", mode, hold_secs);
	return 0;
}

/* Not meant to be unloaded while its kthread sleeps; the VM stops after this step. */
static void __exit kmatrix_live_exit(void)
{
}

module_init(kmatrix_live_init);
module_exit(kmatrix_live_exit);
MODULE_DESCRIPTION("kmatrix detector liveness controls");
MODULE_LICENSE("GPL");
