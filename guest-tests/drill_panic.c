// SPDX-License-Identifier: GPL-2.0
/*
 * drill_panic - crashes the guest kernel on purpose (sysrq c), for kmatrix's own drills:
 * with panic=-1 and -no-reboot QEMU must exit by itself and the orchestrator must report
 * the panic from the console. Not part of any real matrix.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

int main(void)
{
	int fd;

	printf("TAP version 13\n1..1\n# drill_panic: crashing the kernel on purpose\n");
	fflush(stdout);
	sync();
	fd = open("/proc/sysrq-trigger", O_WRONLY);
	if (fd < 0 || write(fd, "c", 1) != 1) {
		printf("not ok 1 sysrq-trigger: %s\n", strerror(errno));
		return 1;
	}
	/* Not reached when the crash works. */
	printf("not ok 1 the kernel survived sysrq c\n");
	return 1;
}
