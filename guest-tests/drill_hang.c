// SPDX-License-Identifier: GPL-2.0
/*
 * drill_hang - a guest "test" that never finishes, for kmatrix's own drills: the
 * orchestrator must time it out, collect hang forensics (sysrq w/l) and say HANG.
 * Not part of any real matrix.
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("TAP version 13\n1..1\n# drill_hang: blocking forever on purpose\n");
	fflush(stdout);
	for (;;)
		pause();
}
