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
 *
 * kmatrix loads it with mode=hung, during the cell's last test when it can: the kthread
 * only. The detector has looked at it before the test ends, so once kmatrix lowers the
 * timeout the report comes at the detector's next look instead of a timeout later.
 * Writing "lockdep" to the provoke parameter then makes lockdep's report ("hung" starts
 * another kthread, for when the first one's hold ran out; "all" both); left_ms says how
 * long the latest kthread stays blocked.
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

/* When the latest kthread's hold ends (jiffies). */
static unsigned long hung_until;

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

static int kmatrix_liveness_provoke(const char *what)
{
	bool all = sysfs_streq(what, "all");
	struct task_struct *t;

	if (!all && !sysfs_streq(what, "lockdep") && !sysfs_streq(what, "hung"))
		return -EINVAL;
	if (all || sysfs_streq(what, "lockdep"))
		kmatrix_liveness_lockdep();
	if (all || sysfs_streq(what, "hung")) {
		WRITE_ONCE(hung_until, jiffies + hold_secs * HZ);
		t = kthread_run(kmatrix_liveness_hung, NULL, "kmatrix_liveness");
		if (IS_ERR(t))
			return PTR_ERR(t);
	}
	return 0;
}

static int provoke_set(const char *val, const struct kernel_param *kp)
{
	return kmatrix_liveness_provoke(val);
}

static const struct kernel_param_ops provoke_ops = { .set = provoke_set };
module_param_cb(provoke, &provoke_ops, NULL, 0200);
MODULE_PARM_DESC(provoke, "lockdep, hung or all: provoke that report now");

static int left_ms_get(char *buf, const struct kernel_param *kp)
{
	long left = (long)(READ_ONCE(hung_until) - jiffies);

	return scnprintf(buf, PAGE_SIZE, "%u\n", left > 0 ? jiffies_to_msecs(left) : 0);
}

static const struct kernel_param_ops left_ms_ops = { .get = left_ms_get };
module_param_cb(left_ms, &left_ms_ops, NULL, 0444);
MODULE_PARM_DESC(left_ms, "how long the latest kthread stays blocked (ms)");

static int __init kmatrix_live_init(void)
{
	int err = kmatrix_liveness_provoke(mode);

	if (err)
		return err;
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
