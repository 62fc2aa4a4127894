// SPDX-License-Identifier: GPL-2.0
/*
 * no_thp - run a program as a kernel without CONFIG_TRANSPARENT_HUGEPAGE
 * would (a host-side test helper, not a guest test).
 *
 * Such a kernel differs, for a program, in two answers, and both are given
 * here by the real kernel:
 *  - /sys/kernel/mm/transparent_hugepage does not exist: an empty tmpfs is
 *    mounted over /sys/kernel/mm in a private mount namespace;
 *  - madvise() does not know MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_COLLAPSE
 *    and says EINVAL (madvise_behavior_valid()): a seccomp filter answers so.
 *
 * Usage: no_thp PROGRAM [ARGS...]. Exits 125 when it cannot set this up
 * (no mount namespace, no seccomp), with the reason on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#if defined(__x86_64__)
#define NO_THP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NO_THP_ARCH AUDIT_ARCH_AARCH64
#else
#error "no_thp: x86_64 and arm64 only"
#endif

static int cannot(const char *what)
{
	fprintf(stderr, "no_thp: %s: %s\n", what, strerror(errno));
	return 125;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	close(fd);
	return ok ? 0 : -1;
}

/* A mount namespace of our own; as a user without CAP_SYS_ADMIN, in a user namespace. */
static int own_mounts(void)
{
	char map[64];
	uid_t uid = getuid();
	gid_t gid = getgid();

	if (unshare(CLONE_NEWNS) == 0)
		return 0;
	if (errno != EPERM || unshare(CLONE_NEWUSER | CLONE_NEWNS))
		return -1;
	snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
	if (write_file("/proc/self/setgroups", "deny") || write_file("/proc/self/uid_map", map))
		return -1;
	snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
	return write_file("/proc/self/gid_map", map);
}

/* madvise(…, MADV_HUGEPAGE | MADV_NOHUGEPAGE | MADV_COLLAPSE) = -EINVAL, the rest allowed. */
static int deny_thp_advice(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NO_THP_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 0, 5),
		/* The advice is an int: the low half of args[2] (little-endian arches). */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_HUGEPAGE, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_NOHUGEPAGE, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_COLLAPSE, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

int main(int argc, char **argv)
{
	struct stat st;

	if (argc < 2) {
		fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", argv[0]);
		return 2;
	}
	if (own_mounts())
		return cannot("a mount namespace of its own");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return cannot("making the mounts private");
	if (stat("/sys/kernel/mm", &st) == 0 &&
	    mount("no_thp", "/sys/kernel/mm", "tmpfs", MS_NOSUID | MS_NODEV, "size=4k"))
		return cannot("an empty tmpfs over /sys/kernel/mm");
	if (deny_thp_advice())
		return cannot("the seccomp filter");
	execv(argv[1], argv + 1);
	return cannot(argv[1]);
}
