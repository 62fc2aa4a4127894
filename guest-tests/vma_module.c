// SPDX-License-Identifier: GPL-2.0
/*
 * vma_module - loads modules/vma_user (built by kmatrix against this kernel and shared
 * as /tests/vma_user.ko): its init calls vma_start_read_unlocked() on this process's
 * stack and at address 0 and fails the load if either answer is wrong. Then unloads it.
 * Usage: vma_module <duration_seconds> [result_file]
 */
#include "ktap.h"
#include <sys/syscall.h>

#define KO "/tests/vma_user.ko"

int main(int argc, char **argv)
{
	int fd;

	ktap_begin(argc, argv, 2);
	fd = open(KO, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ktap_result(0, "load: %s: %s", KO, strerror(errno));
		ktap_skip("not loaded", "unload");
		return ktap_end();
	}
	if (syscall(SYS_finit_module, fd, "", 0)) {
		int err = errno;

		/* ENOSYS: the kernel has no module support; say so rather than pass. */
		ktap_result(0, "load: finit_module(%s): %s (the module's init prints why: see the console)",
			    KO, strerror(err));
		ktap_skip("not loaded", "unload");
		close(fd);
		return ktap_end();
	}
	close(fd);
	ktap_result(1, "load: vma_start_read_unlocked() from a module found the stack's VMA and none at 0");
	if (syscall(SYS_delete_module, "vma_user", O_NONBLOCK))
		ktap_result(0, "unload: delete_module(vma_user): %s", strerror(errno));
	else
		ktap_result(1, "unload");
	return ktap_end();
}
