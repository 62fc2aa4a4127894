// SPDX-License-Identifier: GPL-2.0
/*
 * vma_user - an out-of-tree module calling vma_start_read_unlocked() the way a modular
 * user of the new API would. Building it asks modpost whether the kernel exports the
 * function; loading it runs the lookup from module code, in the context of the process
 * that loads it: on that process's stack (a VMA must come back, read-locked) and at
 * address 0 (no VMA: NULL must come back).
 */
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/module.h>
#include <linux/sched.h>

static int __init vma_user_init(void)
{
	struct mm_struct *mm = current->mm;
	unsigned long stack = mm->start_stack;
	struct vm_area_struct *vma;

	vma = vma_start_read_unlocked(mm, stack);
#ifdef CONFIG_PER_VMA_LOCK
	if (!vma) {
		pr_err("vma_user: no VMA for the stack at %#lx\n", stack);
		return -ENOENT;
	}
	if (stack < vma->vm_start || stack >= vma->vm_end) {
		pr_err("vma_user: VMA %#lx-%#lx does not cover %#lx\n",
		       vma->vm_start, vma->vm_end, stack);
		vma_end_read(vma);
		return -EINVAL;
	}
	vma_end_read(vma);
#else
	/* Without per-VMA locks there is nothing to lock: the caller falls back. */
	if (vma) {
		pr_err("vma_user: a VMA came back without CONFIG_PER_VMA_LOCK\n");
		return -EINVAL;
	}
#endif
	vma = vma_start_read_unlocked(mm, 0);
	if (vma) {
		pr_err("vma_user: a VMA came back for address 0\n");
		return -EINVAL;
	}
	pr_info("vma_user: vma_start_read_unlocked() works from a module\n");
	return 0;
}

static void __exit vma_user_exit(void)
{
}

module_init(vma_user_init);
module_exit(vma_user_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmatrix: a module caller of vma_start_read_unlocked()");
