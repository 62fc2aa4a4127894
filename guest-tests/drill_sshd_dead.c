// SPDX-License-Identifier: GPL-2.0
/*
 * drill_sshd_dead - kills the guest's SSH server and freezes the rest of userspace, for
 * kmatrix's own drills: the host loses SSH while QEMU runs, so hang forensics must go
 * through the serial console. Not part of any real matrix.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int is_dropbear(const char *pid)
{
	char path[300], comm[32] = "";	/* d_name is up to 255 bytes */
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/comm", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = 0;
	fclose(f);
	return strncmp(comm, "dropbear", 8) == 0;
}

int main(void)
{
	struct dirent *e;
	DIR *d;

	printf("TAP version 13\n1..1\n# drill_sshd_dead: killing sshd, freezing userspace\n");
	fflush(stdout);
	/* The SSH session's death must not take us with it. */
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sleep(1);
	d = opendir("/proc");
	while (d && (e = readdir(d)))
		if (atoi(e->d_name) > 1 && is_dropbear(e->d_name))
			kill(atoi(e->d_name), SIGKILL);
	/* Every other process stops (init and ourselves excepted): userspace is stuck. */
	kill(-1, SIGSTOP);
	for (;;)
		pause();
}
