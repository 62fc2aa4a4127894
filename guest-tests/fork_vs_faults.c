// SPDX-License-Identifier: GPL-2.0
/*
 * fork_vs_faults - fork() racing page faults in the other threads.
 *
 * fork() runs dup_mmap(), which write-locks every VMA of the parent (per-VMA
 * locks) and write-protects its anonymous pages while other threads of the
 * parent keep faulting. Skipping that write lock is the class of the 6.4
 * per-VMA-lock COW corruption: a fault under the VMA lock copies a page the
 * child already shares, and parent writes leak into the child (or are lost).
 *
 * Threads of the parent:
 *   stamp_anon  write a generation stamp into every page of their own slot
 *               of anonymous private memory (3 words a page), read it back;
 *               every 4th round MADV_DONTNEED a random run of it first (in
 *               7.3 under the per-VMA lock, so it can race dup_mmap());
 *               after every fork each first write is a COW fault; one slot
 *               is a 2 MiB-aligned, MADV_HUGEPAGE region, so with THP built
 *               (kconfigs/thp.config) fork copies a huge PMD and the first
 *               write after it splits or copies a huge page
 *   stamp_shm   the same on a memfd (shared) mapping
 *   fork        fork() in a loop; each child checks its snapshot, writes a
 *               marker into its copy of the anonymous slots and _exit()s at
 *               once, so exit_mmap() of the child races the parent's faults
 *   toggle      MADV_DONTFORK/DOFORK and MADV_WIPEONFORK/KEEPONFORK on random
 *               sub-ranges of a third region (VMA splits and merges), then
 *               stamps it
 *   remote      process_vm_readv() and /proc/PID/maps of the newest child
 *               while it checks and exits
 *   order       one VMA laid out as [A: fresh pages][ballast][C: one page]:
 *               stores generation g into the next never-touched page of A
 *               (always a fault, never a stale TLB entry), then g into C;
 *               zaps A when it is full; flat out while fork() runs, else it
 *               waits on a futex the fork thread wakes before each fork().
 *               dup_mmap() copies in address order, A first, then the
 *               populated ballast (the time between), C last
 *
 * Invariants:
 *   - parent: a page reads back exactly what this thread wrote last (a
 *     child's marker, or a lost write, is corruption);
 *   - child: every anonymous word is zero (zapped by the parent's
 *     MADV_DONTNEED) or a valid stamp of its (slot, page, word), and reading the whole snapshot twice gives the same bytes (the
 *     child is running, so dup_mmap() and its TLB flush are over: any change
 *     is a parent write leaking into the child); shared words are valid
 *     stamps whose generation never goes back; a page of the toggle region is
 *     absent (DONTFORK), zero (WIPEONFORK) or a valid stamp, and stable;
 *   - remote reads of an exiting child fail only with ESRCH/EFAULT/ENOMEM
 *     and return only stamps, markers or zero (zapped) words;
 *   - order: the child's C is no newer than the newest page of its A. Once
 *     fork() has write-locked the VMA, the next fault in A waits for the fork
 *     to end, so no store after it reaches C before C is copied. A C newer
 *     than all of A means a fault in A ran after A was copied while fork()
 *     was still copying: the VMA was not write-locked (the 6.4 fork class).
 *     Seen by nothing else here: in 7.3 each PTE is copied and faulted under
 *     its PTE lock, so every single page stays consistent on its own.
 */
#define _GNU_SOURCE
#include "ktap.h"

#include <dirent.h>
#include <setjmp.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#define MADV_KEEPONFORK 19
#endif

#define N_ANON		3	/* slot 2: one 2 MiB-aligned PMD-sized region (THP when built) */
#define N_SHM		1
#define SLOT_PAGES	64
#define HUGE_SIZE	(2ul << 20)
#define MAX_APAGES	512	/* pages of the huge slot with 4 KiB pages */
#define TOG_PAGES	32
#define TOG_SLOT	7	/* slot id used for stamps in the toggle region */
#define MAGIC		0x464b000000000000ull	/* "FK" */
#define MARKER		0x4348494c44000000ull	/* "CHILD": written by children only */
#define GEN_MASK	0x000000fffffff000ull	/* bits 12..39 */
#define CHILD_WAIT	2.0	/* seconds a child may take before it is killed */
/*
 * ...unless it waits for its mmap_lock while khugepaged, a nice-19 thread the stress
 * starves, is inside a collapse of the child's memory (it inherited the MADV_HUGEPAGE
 * slot): seen under TCG with THP, up to seconds. It may then take this long.
 */
#define CHILD_WAIT_KHUGEPAGED	30.0
#define ORD_A		256	/* order region: fresh pages stored in turn */
#define ORD_BALLAST	(16ul << 20)	/* populated bytes fork copies between A and C */
#define ORD_MAGIC	0x4f52440000000000ull	/* "ORD" */

static size_t ps;
static double deadline;
static atomic_int go;

static char *anon[N_ANON], *shm[N_SHM], *tog;
static size_t apages[N_ANON];
static atomic_ullong shm_gen[N_SHM];

/* Shared with the children (MAP_SHARED): what they found. */
struct cres {
	atomic_ullong checked, anon_words, shm_words, tog_absent, tog_zero, tog_kept;
	atomic_ullong bad;
	atomic_int have_msg;
	char msg[256];
	atomic_ullong ord_checked, ord_empty, ord_bad;
	atomic_int have_ord_msg;
	char ord_msg[256];
};
static struct cres *cres;

/*
 * Order region (one VMA): A = ord, the ballast after it, C = its last page.
 * The ballast is sized in bytes (4096 PTEs to copy with 4 KiB pages, fewer
 * but no more memory with larger ones).
 */
static char *ord;
#define ORD_PAGES	(ORD_A + ORD_BALLAST / ps + 1)
#define ORD_C		(ORD_PAGES - 1)

static struct {
	uint64_t stores, zaps, bad;
	char first_bad[256];
} od;

static struct {
	uint64_t rounds, pages, zaps, bad;
	char first_bad[256];
} sa[N_ANON], ss[N_SHM];

static struct {
	uint64_t forks, reaped, exit_bad, killed, errors;
	double slowest;		/* seconds, the slowest child that exited by itself */
	uint64_t khugepaged_waits;	/* children given more time (behind_khugepaged()) */
	char first_err[256];
	char stuck[480];	/* where the first child killed for slowness was */
	char khugepaged[480];	/* and khugepaged then (it takes the child's mmap_lock to collapse) */
} fk;

/*
 * Where a child that overstays is: its state and CPU time (/proc/PID/stat), its wait
 * channel and the top of its kernel stack. Tells a starved child (R, CPU time growing)
 * from one blocked in the kernel (D or S, the function it waits in).
 */
static void describe_task(pid_t pid, char *dst, size_t size)
{
	char path[64], buf[1024];
	size_t n = 0;
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	r = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (r > 0) {
		char st = '?';
		unsigned long ut = 0, stt = 0;
		char *e;

		buf[r] = 0;
		e = strrchr(buf, ')');
		if (e && sscanf(e + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				&st, &ut, &stt) == 3)
			n += snprintf(dst + n, size - n, "state %c, cpu %.2f s", st,
				      (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK));
	}
	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	r = fd >= 0 ? read(fd, buf, 80) : -1;
	if (fd >= 0)
		close(fd);
	if (r > 0 && n < size) {
		buf[r] = 0;
		n += snprintf(dst + n, size - n, ", wchan %s", buf);
	}
	snprintf(path, sizeof(path), "/proc/%d/stack", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	r = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (r > 0 && n < size) {
		buf[r] = 0;
		n += snprintf(dst + n, size - n, ", stack:");
		/* "[<0>] func+0x1/0x2" lines: keep the function names only. */
		char *save = NULL;

		for (char *l = strtok_r(buf, "\n", &save); l && n < size;
		     l = strtok_r(NULL, "\n", &save)) {
			char *f = strchr(l, ' ');

			n += snprintf(dst + n, size - n, " %.*s", (int)strcspn(f ? f + 1 : l, "+"),
				      f ? f + 1 : l);
		}
	}
}

/* describe_task() of the kernel thread named `comm` (nothing when there is none). */
static void describe_kthread(const char *comm, char *dst, size_t size)
{
	DIR *d = opendir("/proc");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[64], name[32] = "";
		pid_t pid = (pid_t)atoi(e->d_name);
		ssize_t r;
		int fd;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		r = fd >= 0 ? read(fd, name, sizeof(name) - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (r > 0 && (size_t)r - 1 == strlen(comm) && !strncmp(name, comm, strlen(comm))) {
			describe_task(pid, dst, size);
			break;
		}
	}
	if (d)
		closedir(d);
}

/*
 * Whether the child waits for its mmap_lock (state D in an mmap_lock or rwsem function)
 * while khugepaged is in a collapse, or has just exited (state Z: waitpid() reaps it on
 * the next look; seen as the collapse ended right at CHILD_WAIT): the waits the fork
 * loop tolerates past CHILD_WAIT.
 */
static int behind_khugepaged(pid_t child)
{
	char c[480] = "", k[480] = "";

	describe_task(child, c, sizeof(c));
	if (!strncmp(c, "state Z", 7))
		return 1;
	if (strncmp(c, "state D", 7) || (!strstr(c, "mmap_") && !strstr(c, "rwsem")))
		return 0;
	describe_kthread("khugepaged", k, sizeof(k));
	return strstr(k, "collapse") != NULL;
}


static struct {
	uint64_t ops[4], stamps, errors;
	char first_err[256];
} tg;

static struct {
	uint64_t reads, bytes, gone, maps_reads, maps_lines, bad, unexpected;
	char first_err[256];
} rm;

static atomic_int newest_child;
static atomic_int forking;	/* set by the fork thread around fork() */
static int ov_anon, ov_shm, ov_fork, ov_toggle, ov_remote, ov_order;

static void wait_go(void)
{
	while (!atomic_load(&go))
		sched_yield();
}

static inline uint64_t stamp(int slot, uint64_t gen, size_t page, int w)
{
	return MAGIC ^ ((uint64_t)slot << 40) ^ ((gen << 12) & GEN_MASK) ^ ((uint64_t)page << 2) ^
	       (uint64_t)w;
}

static inline size_t woff(size_t page, int w)
{
	return page * ps + (w == 0 ? 0 : w == 1 ? ps / 2 : ps - 8);
}

static inline volatile uint64_t *wp(char *base, size_t page, int w)
{
	return (volatile uint64_t *)(base + woff(page, w));
}

/* 1 if v is a stamp of (slot, page, w) of any generation; *gen gets it. */
static inline int is_stamp(uint64_t v, int slot, size_t page, int w, uint64_t *gen)
{
	uint64_t x = v ^ stamp(slot, 0, page, w);

	if (x & ~GEN_MASK)
		return 0;
	if (gen)
		*gen = x >> 12;
	return 1;
}

/* ------------------------------------------------------- parent stampers */

static void stamp_slot(char *base, int slot, uint64_t gen, size_t pages)
{
	for (size_t p = 0; p < pages; p++)
		for (int w = 0; w < 3; w++)
			*wp(base, p, w) = stamp(slot, gen, p, w);
}

/* Read back a slot; returns the number of bad pages (first one noted). */
static uint64_t check_slot(char *base, int slot, uint64_t gen, size_t pages, char *msg)
{
	uint64_t bad = 0;

	for (size_t p = 0; p < pages; p++)
		for (int w = 0; w < 3; w++) {
			uint64_t got = *wp(base, p, w), want = stamp(slot, gen, p, w);

			if (got != want) {
				note(msg, "slot %d gen %llu page %zu word %d: got %#llx want %#llx%s",
				     slot, (unsigned long long)gen, p, w, (unsigned long long)got,
				     (unsigned long long)want,
				     (got & 0xffffffffff000000ull) == MARKER ? " (a child's write)" : "");
				bad++;
				break;
			}
		}
	return bad;
}

static void *stamp_anon_thread(void *arg)
{
	int i = (int)(uintptr_t)arg;
	uint64_t gen = 1, rng = 0xa17 + i;	/* setup stamped generation 1 */

	wait_go();
	ktap_overlap_start(ov_anon);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !sa[i].rounds); it++) {
		gen++;
		if ((it & 3) == 3) {
			/* Zap a run (per-VMA-locked madvise), so a fork can meet it mid-copy. */
			size_t a = ktap_rand(&rng) % apages[i], n = 1 + ktap_rand(&rng) % (apages[i] - a);

			if (madvise(anon[i] + a * ps, n * ps, MADV_DONTNEED)) {
				sa[i].bad++;
				note(sa[i].first_bad, "madvise(MADV_DONTNEED): %s", strerror(errno));
			} else {
				sa[i].zaps++;
			}
		}
		stamp_slot(anon[i], i, gen, apages[i]);
		sa[i].bad += check_slot(anon[i], i, gen, apages[i], sa[i].first_bad);
		sa[i].rounds++;
		sa[i].pages += apages[i];
		ktap_overlap_op(ov_anon);
	}
	ktap_overlap_stop(ov_anon);
	return NULL;
}

static void *stamp_shm_thread(void *arg)
{
	int i = (int)(uintptr_t)arg;
	int slot = N_ANON + i;
	uint64_t gen = 1;

	wait_go();
	ktap_overlap_start(ov_shm);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !ss[i].rounds); it++) {
		gen++;
		stamp_slot(shm[i], slot, gen, SLOT_PAGES);
		atomic_store(&shm_gen[i], gen);
		ss[i].bad += check_slot(shm[i], slot, gen, SLOT_PAGES, ss[i].first_bad);
		ss[i].rounds++;
		ss[i].pages += SLOT_PAGES;
		ktap_overlap_op(ov_shm);
	}
	ktap_overlap_stop(ov_shm);
	return NULL;
}

/*
 * The order check needs the order thread to run while fork() copies: on
 * another CPU (pin the two apart), or on the same one when the copy is
 * preempted. Raise both over the stamp threads (each waits most of the
 * time, so they take little from the others). Best effort: without a second
 * CPU or the right to renice, the check still runs, it only hits less
 * often. What happened is in the diagnostics.
 */
static atomic_int placed_cpu, placed_nice;
static char place_err[256];	/* note() writes up to 256 */

static void place(int cpu)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) || CPU_COUNT(&set) < 2)
		note(place_err, "pinning: %s", CPU_COUNT(&set) < 2 ? "one CPU" : strerror(errno));
	else {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (!sched_setaffinity(0, sizeof(set), &set))
			atomic_fetch_add(&placed_cpu, 1);
		else
			note(place_err, "sched_setaffinity(CPU %d): %s", cpu, strerror(errno));
	}
	if (!setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), -10))
		atomic_fetch_add(&placed_nice, 1);
	else
		note(place_err, "setpriority(-10): %s", strerror(errno));
}

static inline uint64_t ostamp(uint64_t gen)
{
	return ORD_MAGIC | (gen & 0xffffffffffull);
}

static void *order_thread(void *arg)
{
	uint64_t gen = 0;
	size_t pos = 0;

	(void)arg;
	place(1);
	wait_go();
	ktap_overlap_start(ov_order);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !od.stores); it++) {
		volatile uint64_t *a = (volatile uint64_t *)(ord + pos * ps);
		volatile uint64_t *c = (volatile uint64_t *)(ord + ORD_C * ps);

		gen++;
		*a = ostamp(gen);	/* a never-touched page: a fault */
		*c = ostamp(gen);
		if (*a != ostamp(gen) || *c != ostamp(gen)) {
			od.bad++;
			note(od.first_bad, "gen %llu: A page %zu holds %#llx, C holds %#llx",
			     (unsigned long long)gen, pos, (unsigned long long)*a,
			     (unsigned long long)*c);
		}
		od.stores++;
		/*
		 * Between forks, wait for the next one: woken by the fork thread, this
		 * thread then runs while fork() copies, which is when it matters (among
		 * 8 busy threads it would otherwise rarely be on a CPU then).
		 */
		if (!atomic_load(&forking)) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };

			syscall(SYS_futex, (int *)&forking, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
		}
		if (++pos == ORD_A) {
			/* Fresh pages again (under the per-VMA lock in 7.3, like any zap). */
			if (madvise(ord, ORD_A * ps, MADV_DONTNEED)) {
				od.bad++;
				note(od.first_bad, "madvise(MADV_DONTNEED): %s", strerror(errno));
			}
			od.zaps++;
			pos = 0;
		}
		ktap_overlap_op(ov_order);
	}
	ktap_overlap_stop(ov_order);
	return NULL;
}

/* ----------------------------------------------------------------- child */

static sigjmp_buf child_jb;
static volatile int child_probe;

static void child_segv(int sig)
{
	if (child_probe) {
		child_probe = 0;
		siglongjmp(child_jb, 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* No stdio or malloc after fork in a threaded parent: hand-made message. */
static void child_bad(const char *what, int slot, size_t page, uint64_t got)
{
	char *m = cres->msg;
	size_t n;

	atomic_fetch_add(&cres->bad, 1);
	if (atomic_exchange(&cres->have_msg, 1))
		return;
	n = ktap_putstr(m, 0, "child ");
	n = ktap_putnum(m, n, getpid());
	n = ktap_putstr(m, n, ": ");
	n = ktap_putstr(m, n, what);
	n = ktap_putstr(m, n, " slot ");
	n = ktap_putnum(m, n, slot);
	n = ktap_putstr(m, n, " page ");
	n = ktap_putnum(m, n, (long)page);
	n = ktap_putstr(m, n, " got ");
	for (int s = 60; s >= 0; s -= 4)
		m[n++] = "0123456789abcdef"[(got >> s) & 15];
	m[n] = 0;
}

/* Toggle-region page states as the child sees them. */
enum { TOG_ABSENT, TOG_ZERO, TOG_KEPT, TOG_BAD };

static int tog_state(size_t p, uint64_t v[3])
{
	int zero = 1;

	if (sigsetjmp(child_jb, 1))
		return TOG_ABSENT;	/* DONTFORK: the range is not in the child */
	child_probe = 1;
	for (int w = 0; w < 3; w++)
		v[w] = *wp(tog, p, w);
	child_probe = 0;
	for (int w = 0; w < 3; w++)
		zero &= !v[w];
	if (zero)
		return TOG_ZERO;
	for (int w = 0; w < 3; w++)
		if (!is_stamp(v[w], TOG_SLOT, p, w, NULL))
			return TOG_BAD;
	return TOG_KEPT;
}

/* The child's C must not be newer than its newest A page (see the header). */
static void child_order(void)
{
	uint64_t newest = 0, c = *(volatile uint64_t *)(ord + ORD_C * ps);
	char *m = cres->ord_msg;
	size_t n;

	for (size_t p = 0; p < ORD_A; p++) {
		uint64_t v = *(volatile uint64_t *)(ord + p * ps);

		if (v && (v & ~0xffffffffffull) != ORD_MAGIC) {
			child_bad("order page not a stamp", -1, p, v);
			return;
		}
		if (v > newest)
			newest = v;
	}
	if (!newest || !c) {
		atomic_fetch_add(&cres->ord_empty, 1);	/* A just zapped: nothing to compare */
		return;
	}
	atomic_fetch_add(&cres->ord_checked, 1);
	if (c <= newest)
		return;
	atomic_fetch_add(&cres->ord_bad, 1);	/* case 7 only: the snapshot itself is valid */
	if (atomic_exchange(&cres->have_ord_msg, 1))
		return;
	n = ktap_putstr(m, 0, "child ");
	n = ktap_putnum(m, n, getpid());
	n = ktap_putstr(m, n, ": C holds generation ");
	n = ktap_putnum(m, n, (long)(c & 0xffffffffffull));
	n = ktap_putstr(m, n, ", the newest page of A only ");
	n = ktap_putnum(m, n, (long)(newest & 0xffffffffffull));
	n = ktap_putstr(m, n, ": stores after fork copied A reached the child");
	m[n] = 0;
}

static __attribute__((noreturn)) void child_main(void)
{
	static uint64_t a1[N_ANON][MAX_APAGES][3], t1[TOG_PAGES][3];
	static int ts1[TOG_PAGES];
	uint64_t sg1[N_SHM][SLOT_PAGES][3];
	struct sigaction act;

	memset(&act, 0, sizeof(act));
	act.sa_handler = child_segv;
	sigemptyset(&act.sa_mask);
	sigaction(SIGSEGV, &act, NULL);
	for (int sig = SIGBUS; sig <= SIGFPE; sig++)
		if (sig != SIGKILL && sig != SIGSEGV)
			signal(sig, SIG_DFL);
	signal(SIGABRT, SIG_DFL);
	signal(SIGILL, SIG_DFL);

	/* First look: every anonymous word is a stamp of its place. */
	for (int i = 0; i < N_ANON; i++)
		for (size_t p = 0; p < apages[i]; p++)
			for (int w = 0; w < 3; w++) {
				a1[i][p][w] = *wp(anon[i], p, w);
				/* Zero: the parent had just zapped it (MADV_DONTNEED). */
				if (a1[i][p][w] && !is_stamp(a1[i][p][w], i, p, w, NULL))
					child_bad("anon word not a stamp", i, p, a1[i][p][w]);
				atomic_fetch_add(&cres->anon_words, 1);
			}
	for (int i = 0; i < N_SHM; i++)
		for (size_t p = 0; p < SLOT_PAGES; p++)
			for (int w = 0; w < 3; w++) {
				uint64_t v = *wp(shm[i], p, w);

				if (!is_stamp(v, N_ANON + i, p, w, &sg1[i][p][w]))
					child_bad("shmem word not a stamp", N_ANON + i, p, v);
				atomic_fetch_add(&cres->shm_words, 1);
			}
	child_order();
	for (size_t p = 0; p < TOG_PAGES; p++) {
		ts1[p] = tog_state(p, t1[p]);
		if (ts1[p] == TOG_BAD)
			child_bad("toggle page neither absent, zero nor a stamp", TOG_SLOT, p, t1[p][0]);
	}
	/* The parent is COW-faulting right now; give it the CPU once. */
	sched_yield();
	/* Second look: private memory must not have changed at all. */
	for (int i = 0; i < N_ANON; i++)
		for (size_t p = 0; p < apages[i]; p++)
			for (int w = 0; w < 3; w++) {
				uint64_t v = *wp(anon[i], p, w);

				if (v != a1[i][p][w])
					child_bad("anon word changed after fork", i, p, v);
			}
	for (int i = 0; i < N_SHM; i++)
		for (size_t p = 0; p < SLOT_PAGES; p++)
			for (int w = 0; w < 3; w++) {
				uint64_t v = *wp(shm[i], p, w), g;

				if (!is_stamp(v, N_ANON + i, p, w, &g) || g < sg1[i][p][w])
					child_bad("shmem stamp went back", N_ANON + i, p, v);
			}
	for (size_t p = 0; p < TOG_PAGES; p++) {
		uint64_t v[3];
		int st = tog_state(p, v);

		if (st != ts1[p] || (st != TOG_ABSENT && memcmp(v, t1[p], sizeof(v))))
			child_bad("toggle page changed after fork", TOG_SLOT, p, v[0]);
		atomic_fetch_add(st == TOG_ABSENT ? &cres->tog_absent :
				 st == TOG_ZERO ? &cres->tog_zero : &cres->tog_kept, 1);
	}
	/* Write our copies (COW breaks in the child), then leave at once. */
	for (int i = 0; i < N_ANON; i++)
		for (size_t p = 0; p < apages[i]; p++)
			*wp(anon[i], p, 1) = MARKER | (uint64_t)(getpid() & 0xffffff);
	atomic_fetch_add(&cres->checked, 1);
	_exit(atomic_load(&cres->bad) ? 1 : 0);
}

/* ---------------------------------------------------------------- forker */

static void *fork_thread(void *arg)
{
	(void)arg;
	place(0);	/* the children inherit it: they check and exit quickly too */
	wait_go();
	ktap_overlap_start(ov_fork);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !fk.reaped); it++) {
		int status = 0, reaped = 0;
		pid_t c;

		atomic_store(&forking, 1);
		syscall(SYS_futex, (int *)&forking, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		c = fork();
		atomic_store(&forking, 0);

		if (c < 0) {
			fk.errors++;
			note(fk.first_err, "fork: %s", strerror(errno));
			usleep(1000);
			continue;
		}
		if (c == 0)
			child_main();
		fk.forks++;
		atomic_store(&newest_child, c);
		double born = ktap_now(), end = born + CHILD_WAIT;

		for (;;) {
			pid_t r = waitpid(c, &status, WNOHANG);

			if (r == c) {
				double took = ktap_now() - born;

				reaped = 1;
				if (took > fk.slowest)
					fk.slowest = took;
				break;
			}
			if (r < 0) {
				fk.errors++;
				note(fk.first_err, "waitpid: %s", strerror(errno));
				break;
			}
			if (ktap_now() >= end) {
				if (end > born + CHILD_WAIT || !behind_khugepaged(c))
					break;
				end = born + CHILD_WAIT_KHUGEPAGED;
				fk.khugepaged_waits++;
			}
			usleep(100);
		}
		atomic_store(&newest_child, 0);
		if (!reaped) {
			fk.killed++;
			note(fk.first_err, "child %d still running after %.0f s: killed", (int)c,
			     end - born);
			if (!fk.stuck[0]) {
				describe_task(c, fk.stuck, sizeof(fk.stuck));
				describe_kthread("khugepaged", fk.khugepaged, sizeof(fk.khugepaged));
			}
			kill(c, SIGKILL);
			waitpid(c, &status, 0);
			continue;
		}
		fk.reaped++;
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			fk.exit_bad++;
			note(fk.first_err, "child %d: status %#x%s", (int)c, status,
			     WIFSIGNALED(status) ? " (killed by a signal)" : "");
		} else {
			ktap_overlap_op(ov_fork);
		}
	}
	ktap_overlap_stop(ov_fork);
	return NULL;
}

/* ---------------------------------------------------------------- toggle */

static void *toggle_thread(void *arg)
{
	static const int adv[4] = { MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK };
	static const char *const name[4] = { "DONTFORK", "DOFORK", "WIPEONFORK", "KEEPONFORK" };
	uint64_t rng = 0x70991e, gen = 1;

	(void)arg;
	wait_go();
	ktap_overlap_start(ov_toggle);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, it < 8); it++) {
		size_t a = ktap_rand(&rng) % TOG_PAGES;
		size_t n = 1 + ktap_rand(&rng) % (TOG_PAGES - a);
		int k = it < 8 ? (int)(it & 3) : (int)(ktap_rand(&rng) % 4);

		if (madvise(tog + a * ps, n * ps, adv[k])) {
			tg.errors++;
			note(tg.first_err, "madvise(MADV_%s): %s", name[k], strerror(errno));
			continue;
		}
		tg.ops[k]++;
		gen++;
		stamp_slot(tog, TOG_SLOT, gen, TOG_PAGES);
		tg.stamps++;
		ktap_overlap_op(ov_toggle);
	}
	ktap_overlap_stop(ov_toggle);
	return NULL;
}

/* ---------------------------------------------------------------- remote */

static void remote_maps(pid_t c, char *buf, size_t cap)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)c);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rm.gone++;	/* reaped already */
		return;
	}
	while ((n = read(fd, buf, cap - 1)) > 0) {
		buf[n] = 0;
		for (char *l = buf; *l; l++)
			rm.maps_lines += *l == '\n';
	}
	if (n < 0 && errno != ESRCH) {
		rm.unexpected++;
		note(rm.first_err, "read %s: %s", path, strerror(errno));
	}
	rm.maps_reads++;
	close(fd);
}

static void *remote_thread(void *arg)
{
	size_t len = MAX_APAGES * ps;
	char *buf = malloc(len), mbuf[8192];
	uint64_t rng = 0x4e40;

	(void)arg;
	if (!buf)
		return NULL;
	wait_go();
	ktap_overlap_start(ov_remote);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !rm.reads); it++) {
		pid_t c = atomic_load(&newest_child);
		int i = ktap_rand(&rng) % N_ANON;
		struct iovec l = { buf, apages[i] * ps }, r = { anon[i], apages[i] * ps };
		ssize_t n;

		if (!c) {
			sched_yield();
			continue;
		}
		n = process_vm_readv(c, &l, 1, &r, 1, 0);
		if (n < 0) {
			if (errno == ESRCH || errno == EFAULT || errno == ENOMEM)
				rm.gone++;
			else {
				rm.unexpected++;
				note(rm.first_err, "process_vm_readv: %s", strerror(errno));
			}
		} else {
			rm.reads++;
			rm.bytes += n;
			for (size_t p = 0; (p + 1) * ps <= (size_t)n; p++)
				for (int w = 0; w < 3; w++) {
					uint64_t v;

					memcpy(&v, buf + woff(p, w), 8);
					if (v && !is_stamp(v, i, p, w, NULL) &&
					    !(w == 1 && (v & 0xffffffffff000000ull) == MARKER)) {
						rm.bad++;
						note(rm.first_err, "remote read slot %d page %zu word %d: %#llx",
						     i, p, w, (unsigned long long)v);
					}
				}
			ktap_overlap_op(ov_remote);
		}
		remote_maps(c, mbuf, sizeof(mbuf));
	}
	ktap_overlap_stop(ov_remote);
	free(buf);
	return NULL;
}

/* ------------------------------------------------------------------ main */

/* THP evidence: AnonHugePages of this process (0 without THP). */
static void anon_huge_diag(const char *when)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "AnonHugePages:", 14))
			ktap_diag("%s: %.*s", when, (int)strcspn(line, "\n"), line);
	if (f)
		fclose(f);
}

static int setup(void)
{
	cres = mmap(NULL, sizeof(*cres), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (cres == MAP_FAILED) {
		ktap_diag("mmap results: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < N_ANON; i++) {
		int huge = i == N_ANON - 1;
		size_t len = huge ? HUGE_SIZE : SLOT_PAGES * ps;
		char *m = mmap(NULL, huge ? 2 * len : len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED) {
			ktap_diag("mmap anon: %s", strerror(errno));
			return -1;
		}
		apages[i] = len / ps;
		anon[i] = m;
		if (huge) {
			/* Keep the 2 MiB-aligned middle, so a PMD can map it. */
			anon[i] = (char *)(((uintptr_t)m + len - 1) & ~(uintptr_t)(len - 1));
			if (anon[i] > m)
				munmap(m, anon[i] - m);
			munmap(anon[i] + len, m + 2 * len - (anon[i] + len));
			if (apages[i] > MAX_APAGES) {
				ktap_diag("page size %zu: huge slot has more than %d pages", ps, MAX_APAGES);
				return -1;
			}
			if (madvise(anon[i], len, MADV_HUGEPAGE))
				ktap_diag("madvise(MADV_HUGEPAGE): %s (no THP in this kernel: the huge slot uses small pages)",
					  strerror(errno));
		}
		stamp_slot(anon[i], i, 1, apages[i]);
	}
	for (int i = 0; i < N_SHM; i++) {
		int fd = memfd_create("kmatrix-fork", MFD_CLOEXEC);

		if (fd < 0 || ftruncate(fd, SLOT_PAGES * ps)) {
			ktap_diag("memfd: %s", strerror(errno));
			return -1;
		}
		shm[i] = mmap(NULL, SLOT_PAGES * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (shm[i] == MAP_FAILED) {
			ktap_diag("mmap memfd: %s", strerror(errno));
			return -1;
		}
		stamp_slot(shm[i], N_ANON + i, 1, SLOT_PAGES);
		atomic_store(&shm_gen[i], 1);
	}
	tog = mmap(NULL, TOG_PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (tog == MAP_FAILED) {
		ktap_diag("mmap toggle region: %s", strerror(errno));
		return -1;
	}
	stamp_slot(tog, TOG_SLOT, 1, TOG_PAGES);
	ord = mmap(NULL, ORD_PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ord == MAP_FAILED) {
		ktap_diag("mmap order region: %s", strerror(errno));
		return -1;
	}
	/* Small pages only: a huge PMD would make the copy of the ballast instant. */
	madvise(ord, ORD_PAGES * ps, MADV_NOHUGEPAGE);
	for (size_t p = ORD_A; p < ORD_PAGES; p++)
		*(volatile uint64_t *)(ord + p * ps) = ORD_MAGIC;	/* populated: fork copies it */
	return 0;
}

int main(int argc, char **argv)
{
	double dur = ktap_begin(argc, argv, 7 + 6);
	pthread_t th[N_ANON + N_SHM + 4];
	uint64_t bad = 0, rounds = 0;
	int nth = 0;

	ps = sysconf(_SC_PAGESIZE);
	ktap_diag("fork_vs_faults: duration %.1fs, page size %zu, %d anon (one 2 MiB-aligned) + %d shmem stamp threads",
		  dur, ps, N_ANON, N_SHM);
	if (setup())
		return ktap_bail("not run: setup failed");
	anon_huge_diag("after setup");
	ov_anon = ktap_overlap_kind("stamp_anon");
	ov_shm = ktap_overlap_kind("stamp_shm");
	ov_fork = ktap_overlap_kind("fork");
	ov_toggle = ktap_overlap_kind("toggle");
	ov_remote = ktap_overlap_kind("remote");
	ov_order = ktap_overlap_kind("order");
	deadline = ktap_now() + dur;
	for (int i = 0; i < N_ANON; i++)
		if (pthread_create(&th[nth++], NULL, stamp_anon_thread, (void *)(uintptr_t)i))
			goto thread_fail;
	for (int i = 0; i < N_SHM; i++)
		if (pthread_create(&th[nth++], NULL, stamp_shm_thread, (void *)(uintptr_t)i))
			goto thread_fail;
	if (pthread_create(&th[nth++], NULL, fork_thread, NULL) ||
	    pthread_create(&th[nth++], NULL, toggle_thread, NULL) ||
	    pthread_create(&th[nth++], NULL, remote_thread, NULL) ||
	    pthread_create(&th[nth++], NULL, order_thread, NULL))
		goto thread_fail;
	atomic_store(&go, 1);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);

	anon_huge_diag("at the end");

	/* 1: the parent's private pages hold exactly what it wrote. */
	for (int i = 0; i < N_ANON; i++) {
		ktap_diag("anon slot %d: rounds %llu, pages stamped %llu, zaps %llu, bad %llu", i,
			  (unsigned long long)sa[i].rounds, (unsigned long long)sa[i].pages,
			  (unsigned long long)sa[i].zaps, (unsigned long long)sa[i].bad);
		if (sa[i].first_bad[0])
			ktap_diag("  first mismatch: %s", sa[i].first_bad);
		bad += sa[i].bad;
		rounds += !!sa[i].rounds;
	}
	ktap_result(!bad && rounds == N_ANON, "parent anon stamps intact (COW after fork, no child write leaked back)");

	/* 2: shared pages too. */
	bad = rounds = 0;
	for (int i = 0; i < N_SHM; i++) {
		ktap_diag("shmem slot %d: rounds %llu, pages stamped %llu, bad %llu", N_ANON + i,
			  (unsigned long long)ss[i].rounds, (unsigned long long)ss[i].pages,
			  (unsigned long long)ss[i].bad);
		if (ss[i].first_bad[0])
			ktap_diag("  first mismatch: %s", ss[i].first_bad);
		bad += ss[i].bad;
		rounds += !!ss[i].rounds;
	}
	ktap_result(!bad && rounds == N_SHM, "parent shmem stamps intact");

	/* 3: the fork loop ran and every child ended on its own, cleanly. */
	ktap_diag("fork: forks %llu, reaped %llu, bad exit %llu, killed %llu, errors %llu",
		  (unsigned long long)fk.forks, (unsigned long long)fk.reaped,
		  (unsigned long long)fk.exit_bad, (unsigned long long)fk.killed,
		  (unsigned long long)fk.errors);
	ktap_diag("fork: slowest child that exited by itself: %.2f s (killed after %.0f s, "
		  "%.0f s when behind khugepaged or exiting: %llu such)", fk.slowest, CHILD_WAIT,
		  CHILD_WAIT_KHUGEPAGED, (unsigned long long)fk.khugepaged_waits);
	if (fk.first_err[0])
		ktap_diag("  first error: %s", fk.first_err);
	if (fk.stuck[0])
		ktap_diag("  the first killed child: %s", fk.stuck);
	if (fk.khugepaged[0])
		ktap_diag("  khugepaged then: %s", fk.khugepaged);
	ktap_result(fk.reaped > 0 && !fk.exit_bad && !fk.killed && !fk.errors,
		    "fork loop ran, every child exited at once with status 0");

	/* 4: what the children saw. */
	ktap_diag("children: checked %llu, anon words %llu, shmem words %llu, bad %llu",
		  (unsigned long long)cres->checked, (unsigned long long)cres->anon_words,
		  (unsigned long long)cres->shm_words, (unsigned long long)cres->bad);
	if (cres->have_msg)
		ktap_diag("  first child finding: %s", cres->msg);
	ktap_result(cres->checked > 0 && !cres->bad,
		    "child snapshots consistent (anon stable after fork, shmem stamps monotonic)");

	/* 5: MADV_DONTFORK / MADV_WIPEONFORK really changed what children got. */
	ktap_diag("toggle: DONTFORK %llu DOFORK %llu WIPEONFORK %llu KEEPONFORK %llu, stamps %llu, errors %llu",
		  (unsigned long long)tg.ops[0], (unsigned long long)tg.ops[1],
		  (unsigned long long)tg.ops[2], (unsigned long long)tg.ops[3],
		  (unsigned long long)tg.stamps, (unsigned long long)tg.errors);
	if (tg.first_err[0])
		ktap_diag("  first error: %s", tg.first_err);
	ktap_diag("children's toggle pages: absent (DONTFORK) %llu, zero (WIPEONFORK) %llu, kept %llu",
		  (unsigned long long)cres->tog_absent, (unsigned long long)cres->tog_zero,
		  (unsigned long long)cres->tog_kept);
	ktap_result(!tg.errors && tg.ops[0] && tg.ops[1] && tg.ops[2] && tg.ops[3] &&
		    cres->tog_absent > 0 && cres->tog_zero > 0 && cres->tog_kept > 0,
		    "MADV_DONTFORK/WIPEONFORK toggles ran and children saw absent, wiped and kept pages");

	/* 6: reads of children while they exit. */
	ktap_diag("remote: reads %llu (%llu bytes), gone %llu, maps reads %llu (%llu lines), bad %llu, unexpected %llu",
		  (unsigned long long)rm.reads, (unsigned long long)rm.bytes,
		  (unsigned long long)rm.gone, (unsigned long long)rm.maps_reads,
		  (unsigned long long)rm.maps_lines, (unsigned long long)rm.bad,
		  (unsigned long long)rm.unexpected);
	if (rm.first_err[0])
		ktap_diag("  first error: %s", rm.first_err);
	ktap_result(rm.reads > 0 && !rm.bad && !rm.unexpected,
		    "remote reads of exiting children: only expected errors, data plausible");

	/* 7: no store made after fork copied its page reached the child. */
	ktap_diag("order: stores %llu, zaps %llu, bad %llu; children compared %llu, A empty %llu, C newer than A %llu; threads pinned %d/2, reniced %d/2",
		  (unsigned long long)od.stores, (unsigned long long)od.zaps,
		  (unsigned long long)od.bad, (unsigned long long)cres->ord_checked,
		  (unsigned long long)cres->ord_empty, (unsigned long long)cres->ord_bad,
		  atomic_load(&placed_cpu), atomic_load(&placed_nice));
	if (od.first_bad[0])
		ktap_diag("  first mismatch: %s", od.first_bad);
	if (place_err[0])
		ktap_diag("  placement: %s", place_err);
	if (cres->have_ord_msg)
		ktap_diag("  first child finding: %s", cres->ord_msg);
	ktap_result(!od.bad && cres->ord_checked > 0 && !cres->ord_bad,
		    "fork order: no fault ran in a VMA fork had already copied (its later stores never reached the child)");

	/* 8..13: every kind worked while all the others ran. */
	ktap_overlap_report();
	return ktap_end();

thread_fail:
	nth--;
	ktap_diag("pthread_create failed");
	atomic_store(&go, 1);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	return ktap_bail("not run: pthread_create failed");
}
