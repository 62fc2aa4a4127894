// SPDX-License-Identifier: GPL-2.0
/*
 * vma_users_vs_writers - the less travelled users of the VMA and mmap locks
 * racing a writer that splits and merges the same VMAs.
 *
 * Each kind of thread drives paths the other programs leave alone:
 *  - uffd_move: UFFDIO_MOVE of single pages back and forth between two
 *    registered regions (the source VMA is often write-locked by the writer,
 *    so uffd_move_lock() falls back to mmap_lock);
 *  - uffd_wp: UFFDIO_WRITEPROTECT round trips, and UFFDIO_SET_MODE toggling
 *    RWP_ASYNC on a context with an RWP-registered VMA (when the kernel has it);
 *  - uffd_remove: MADV_DONTNEED on a range registered with EVENT_REMOVE (the
 *    lock is dropped while the event is read), MADV_POPULATE_WRITE and
 *    process_vm_readv of missing pages a handler thread fills (GUP retries);
 *  - file: msync(MS_SYNC) over two VMAs of a memfd, MADV_WILLNEED,
 *    remap_file_pages, mincore;
 *  - mlock: mlock2(MLOCK_ONFAULT) and mlock of an already locked range (the
 *    VMA flags change, no page to lock), mincore after DONTNEED;
 *  - clear_refs: writes of 1..5 to /proc/self/clear_refs;
 *  - stack: stores below the main stack's VMA (it grows: the fault path's
 *    mmap_lock upgrade), then munmap of the grown part;
 *  - proc: exec of this program with ~100 KiB of arguments (the new stack
 *    grows while they are copied), a child that unmaps everything and dies
 *    (exit_mmap of an empty mm), a child whose fork waits for an unread
 *    userfaultfd fork event and is killed there;
 *  - gup: vmsplice of shmem pages whose PTEs were zapped (GUP-fast fails,
 *    the slow path takes mmap_lock itself);
 *  - thp: MADV_COLLAPSE of two PMDs at once (the lock is re-taken between
 *    them), debugfs split_huge_pages of this pid's range, UFFDIO_MOVE of a
 *    whole 2 MiB THP.
 * The writer flips MADV_RANDOM/MADV_NORMAL (and PROT_EXEC where harmless) on
 * random sub-ranges of all of them, which splits and merges their VMAs under
 * vma_start_write(), and churns a scratch mapping next to them.
 *
 * Every kind checks contents: pages carry (kind, page, generation) stamps
 * that must be read back where the operation put them.
 */
#define _GNU_SOURCE
#include "ktap.h"

#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1ULL << 16)
#endif
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE 0x05
#endif
#ifndef UFFDIO_MOVE
/* Debian 12 headers predate UFFDIO_MOVE (Linux 6.8). */
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif
/* Read-write protection and runtime mode switches: newer than any distro header. */
#define VU_FEATURE_RWP		(1ULL << 17)
#define VU_FEATURE_RWP_ASYNC	(1ULL << 18)
#define VU_REGISTER_MODE_RWP	((__u64)1 << 3)
struct vu_set_mode {
	__u64 enable;
	__u64 disable;
};
#define VU_UFFDIO_SET_MODE _IOW(UFFDIO, 0x0A, struct vu_set_mode)
#define VU_MLOCK_ONFAULT	1

#define HPAGE		(2UL << 20)
#define MOVE_PAGES	32
#define WP_PAGES	16
#define REM_PAGES	32
#define FILE_PAGES	32
#define SMALL_PAGES	16
#define STACK_GROW	8
#define EXEC_ARGS	48
#define EXEC_ARGLEN	2048

static size_t ps;
static double deadline;
static atomic_int go;

/* ------------------------------------------------------------ bookkeeping */

enum {
	C_MOVE, C_WP, C_MODE, C_REMOVE, C_FILE, C_MLOCK, C_CLEAR, C_STACK, C_EXEC, C_EXIT,
	C_FORKEV, C_GUP, C_COLLAPSE, C_SPLIT, C_THPMOVE, N_CHECKS
};

struct check {
	const char *desc;
	atomic_ulong ok;	/* verified operations */
	atomic_ulong bad;
	char skip[160];		/* reason when the kernel lacks the feature */
	char err[256];
};

static struct check ck[N_CHECKS] = {
	[C_MOVE] = { .desc = "uffd_move: every page moved by UFFDIO_MOVE carries its stamps at the destination" },
	[C_WP] = { .desc = "uffd_wp: UFFDIO_WRITEPROTECT round trips keep every stamp" },
	[C_MODE] = { .desc = "uffd_mode: UFFDIO_SET_MODE toggles on an RWP-registered VMA keep every stamp" },
	[C_REMOVE] = { .desc = "uffd_remove: pages refilled after DONTNEED/POPULATE/remote reads carry the handler's stamps" },
	[C_FILE] = { .desc = "file: msync'd stamps read back by pread; remap_file_pages shows the right file page; mincore all resident" },
	[C_MLOCK] = { .desc = "mlock: re-locking a locked range keeps stamps; mincore answers match what was touched and zapped" },
	[C_CLEAR] = { .desc = "clear_refs: writes of 1..5 to /proc/self/clear_refs change no contents" },
	[C_STACK] = { .desc = "stack: pages below the stack VMA grow it and keep their stamps" },
	[C_EXEC] = { .desc = "exec: a child exec'd with ~100 KiB of arguments read them intact" },
	[C_EXIT] = { .desc = "exit_empty: a child that unmapped its whole address space died of SIGSEGV" },
	[C_FORKEV] = { .desc = "fork_event: a fork waiting on an unread userfaultfd fork event was killed there" },
	[C_GUP] = { .desc = "gup: vmsplice of zapped shmem pages returns the file's stamps" },
	[C_COLLAPSE] = { .desc = "thp_collapse: MADV_COLLAPSE of two PMDs at once keeps every stamp" },
	[C_SPLIT] = { .desc = "thp_split: debugfs split_huge_pages of our range keeps every stamp" },
	[C_THPMOVE] = { .desc = "thp_move: UFFDIO_MOVE of a whole 2 MiB THP carries its stamps" },
};

static pthread_mutex_t note_lock = PTHREAD_MUTEX_INITIALIZER;

static __attribute__((format(printf, 2, 3))) void fail(int c, const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add(&ck[c].bad, 1);
	pthread_mutex_lock(&note_lock);
	if (!ck[c].err[0]) {
		va_start(ap, fmt);
		vsnprintf(ck[c].err, sizeof(ck[c].err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&note_lock);
}

static __attribute__((format(printf, 2, 3))) void skip(int c, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&note_lock);
	if (!ck[c].skip[0]) {
		va_start(ap, fmt);
		vsnprintf(ck[c].skip, sizeof(ck[c].skip), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&note_lock);
}

static int skipped(int c)
{
	return ck[c].skip[0] != 0;
}

/* Stamps: every word of a page says which check, page and generation wrote it. */
static uint64_t stamp(int c, unsigned page, unsigned gen, size_t word)
{
	return 0x5655000000000000ull ^ ((uint64_t)c << 48) ^ ((uint64_t)gen << 20) ^
	       ((uint64_t)page << 10) ^ word;
}

static void fill(void *p, int c, unsigned page, unsigned gen)
{
	volatile uint64_t *w = p;

	for (size_t i = 0; i < ps / 8; i++)
		w[i] = stamp(c, page, gen, i);
}

/* Index of the first wrong word, or -1. */
static long check_page(const void *p, int c, unsigned page, unsigned gen)
{
	const volatile uint64_t *w = p;

	for (size_t i = 0; i < ps / 8; i++)
		if (w[i] != stamp(c, page, gen, i))
			return (long)i;
	return -1;
}

/* Check stamps written under check `as`; a mismatch counts against check c. */
static int verify_as(int c, int as, const char *what, const void *p, unsigned page, unsigned gen)
{
	long i = check_page(p, as, page, gen);

	if (i < 0)
		return 0;
	fail(c, "%s: page %u word %ld is %#llx, want %#llx (gen %u)", what, page, i,
	     (unsigned long long)((const volatile uint64_t *)p)[i],
	     (unsigned long long)stamp(as, page, gen, i), gen);
	return 1;
}

static int verify(int c, const char *what, const void *p, unsigned page, unsigned gen)
{
	return verify_as(c, c, what, p, page, gen);
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * Regions that UFFDIO_MOVE or userfaultfd use stay out of the children the
 * proc kind forks: a page shared with a child cannot be moved (EBUSY).
 */
static void no_fork(void *p, size_t len)
{
	if (p)
		madvise(p, len, MADV_DONTFORK);
}

/* A forked child must not run the parent's crash handler (it prints KTAP). */
static void child_signals(void)
{
	const int sigs[] = { SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE };

	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
}

/* len bytes at an address aligned to align (the rest of the reservation is unmapped). */
static char *map_aligned(size_t len, size_t align)
{
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (a > p)
		munmap(p, a - p);
	if (p + len + align > a + len)
		munmap(a + len, p + len + align - (a + len));
	return a;
}

/* ------------------------------------------------------------- the writer */

struct target {
	char *addr;
	size_t len, gran;
	int exec_ok;		/* PROT_EXEC flips keep the kind's semantics */
};

#define MAX_TARGETS 16
static struct target tg[MAX_TARGETS];
static int ntg;
static int ov_writer;
static char *scratch;
static char *move_a, *move_b, *move_hole;	/* uffd_move's VMAs, see setup_move() */
static int move_tg;		/* they are targets 0 and 1 */		/* the writer's own neighbour mapping */

static void add_target(char *addr, size_t len, size_t gran, int exec_ok)
{
	if (ntg < MAX_TARGETS && addr)
		tg[ntg++] = (struct target){ addr, len, gran, exec_ok };
}

static struct {
	uint64_t madv, mprot, remap, errs;
	char err[256];
} ws;

static void *writer_thread(void *arg)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull, it = 0;

	(void)arg;
	while (!atomic_load(&go))
		;
	ktap_overlap_start(ov_writer);
	while (ktap_keep_going(deadline, it++, 0)) {
		/* Half the time the UFFDIO_MOVE VMAs (targets 0, 1 when present), so that moves
		 * often find their source write-locked and take uffd_move_lock()'s fallback. */
		struct target *t = &tg[move_tg && it % 2 ? it / 2 % 2 : ktap_rand(&seed) % ntg];
		size_t n = t->len / t->gran;
		size_t a = ktap_rand(&seed) % n, b = a + 1 + ktap_rand(&seed) % (n - a);
		char *s = t->addr + a * t->gran;
		size_t l = (b - a) * t->gran;
		int r, op = ktap_rand(&seed) % 4;

		if (op >= 2 && t->exec_ok) {
			r = mprotect(s, l, PROT_READ | PROT_WRITE | (op == 2 ? PROT_EXEC : 0));
			ws.mprot++;
		} else {
			r = madvise(s, l, op & 1 ? MADV_RANDOM : MADV_NORMAL);
			ws.madv++;
		}
		if (r) {
			ws.errs++;
			note(ws.err, "madvise/mprotect %p+%zu: %s", (void *)s, l, strerror(errno));
		}
		/* The scratch neighbour: unmapped and mapped again, one half at a time. */
		if (scratch && it % 8 == 0) {
			char *h = scratch + (ktap_rand(&seed) % 2) * 4 * ps;

			munmap(h, 4 * ps);
			if (mmap(h, 4 * ps, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
				note(ws.err, "re-mmap scratch: %s", strerror(errno));
			ws.remap++;
		}
		ktap_overlap_op(ov_writer);
	}
	ktap_overlap_stop(ov_writer);
	return NULL;
}

/* ------------------------------------------------------------ userfaultfd */

static int uffd_new(uint64_t features, uint64_t *got)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api)) {
		int e = errno;

		close(fd);
		return -e;
	}
	if (got)
		*got = api.features;
	return fd;
}

static int uffd_register(int fd, void *addr, size_t len, uint64_t mode, uint64_t *ioctls)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		return -errno;
	if (ioctls)
		*ioctls = reg.ioctls;
	return 0;
}

/* ------------------------------------------------------------- uffd_move */

static int ov_move;
static int move_fd = -1;

static void *move_thread(void *arg)
{
	unsigned gen[MOVE_PAGES] = { 0 };
	char *loc[MOVE_PAGES];
	uint64_t seed = 0x1234567ull, it = 0, eagain = 0;

	(void)arg;
	for (unsigned i = 0; i < MOVE_PAGES; i++)
		loc[i] = move_a;
	while (!atomic_load(&go))
		;
	ktap_overlap_start(ov_move);
	while (ktap_keep_going(deadline, it++, 1)) {
		unsigned i = ktap_rand(&seed) % MOVE_PAGES;
		char *other = loc[i] == move_a ? move_b : move_a;
		struct uffdio_move mv = {
			.dst = (uintptr_t)(other + i * ps),
			.src = (uintptr_t)(loc[i] + i * ps),
			.len = ps,
		};

		if (ioctl(move_fd, UFFDIO_MOVE, &mv)) {
			if (errno == EAGAIN || errno == EBUSY) {
				eagain++;
				continue;
			}
			fail(C_MOVE, "UFFDIO_MOVE page %u: %s (moved %lld)", i, strerror(errno),
			     (long long)mv.move);
			break;
		}
		loc[i] = other;
		/* From a hole now and then: no VMA to lock, the lookup under mmap_lock fails too. */
		if (it % 64 == 0 && move_hole) {
			struct uffdio_move hv = {
				.dst = (uintptr_t)(move_b + i * ps), .src = (uintptr_t)move_hole,
				.len = ps,
			};

			if (!ioctl(move_fd, UFFDIO_MOVE, &hv) && !skipped(C_MOVE))
				fail(C_MOVE, "UFFDIO_MOVE from an unmapped source succeeded");
		}
		/*
		 * A wrong page here means the pages are no longer where we think: the next
		 * access could land on a missing page of a registered VMA and wait forever.
		 */
		if (verify(C_MOVE, "after UFFDIO_MOVE", other + i * ps, i, gen[i]))
			break;
		atomic_fetch_add(&ck[C_MOVE].ok, 1);
		fill(other + i * ps, C_MOVE, i, ++gen[i]);
		ktap_overlap_op(ov_move);
	}
	ktap_overlap_stop(ov_move);
	for (unsigned i = 0; i < MOVE_PAGES && !atomic_load(&ck[C_MOVE].bad); i++)
		verify(C_MOVE, "at the end", loc[i] + i * ps, i, gen[i]);
	if (eagain)
		ktap_diag("uffd_move: %llu EAGAIN/EBUSY answers (page busy), retried",
			  (unsigned long long)eagain);
	return NULL;
}

static void setup_move(void)
{
	char *m;
	uint64_t got = 0, ioctls = 0;
	int r;

	move_fd = uffd_new(UFFD_FEATURE_MOVE, &got);
	if (move_fd < 0) {
		skip(C_MOVE, "no UFFDIO_MOVE (UFFDIO_API with FEATURE_MOVE: %s)", strerror(-move_fd));
		return;
	}
	/* A (MOVE_PAGES), a PROT_NONE page that keeps A and B two VMAs, B. */
	m = map_anon((2 * MOVE_PAGES + 1) * ps);
	if (!m) {
		skip(C_MOVE, "mmap failed");
		return;
	}
	move_a = m;
	no_fork(m, (2 * MOVE_PAGES + 1) * ps);
	/*
	 * A source nothing maps: 1 MiB, above mmap_min_addr and below the static
	 * binary; mmap() allocates top-down and nothing here maps at fixed addresses.
	 * mincore() says ENOMEM for an unmapped page.
	 */
	{
		unsigned char v;

		move_hole = (char *)(uintptr_t)(1UL << 20);
		if (mincore(move_hole, ps, &v) == 0 || errno != ENOMEM)
			move_hole = NULL;
	}
	move_b = m + (MOVE_PAGES + 1) * ps;
	mprotect(m + MOVE_PAGES * ps, ps, PROT_NONE);
	for (unsigned i = 0; i < MOVE_PAGES; i++)
		fill(move_a + i * ps, C_MOVE, i, 0);
	r = uffd_register(move_fd, move_a, MOVE_PAGES * ps, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
	if (!r)
		r = uffd_register(move_fd, move_b, MOVE_PAGES * ps, UFFDIO_REGISTER_MODE_MISSING,
				  NULL);
	if (r) {
		skip(C_MOVE, "UFFDIO_REGISTER: %s", strerror(-r));
		return;
	}
	if (!(ioctls & (1ULL << _UFFDIO_MOVE))) {
		skip(C_MOVE, "UFFDIO_MOVE not offered for anonymous ranges");
		return;
	}
	add_target(move_a, MOVE_PAGES * ps, ps, 0);
	add_target(move_b, MOVE_PAGES * ps, ps, 0);
	move_tg = ntg == 2;
}

/* -------------------------------------------------------- uffd_wp + mode */

static int ov_wp;
static int wp_fd = -1, mode_fd = -1;
static char *wp_reg, *mode_reg;

static int wp_range(char *p, size_t len, int on)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(wp_fd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

static void *wp_thread(void *arg)
{
	unsigned gen = 0, mgen = 0;
	uint64_t it = 0, seed = 0x777ull;

	(void)arg;
	while (!atomic_load(&go))
		;
	ktap_overlap_start(ov_wp);
	while (ktap_keep_going(deadline, it++, 1)) {
		if (!skipped(C_WP)) {
			unsigned a = ktap_rand(&seed) % WP_PAGES;
			int r = wp_range(wp_reg + a * ps, (WP_PAGES - a) * ps, 1);

			if (r) {
				fail(C_WP, "UFFDIO_WRITEPROTECT(WP): %s", strerror(-r));
				break;
			}
			for (unsigned i = 0; i < WP_PAGES; i++)
				verify(C_WP, "write-protected", wp_reg + i * ps, i, gen);
			/* Stores only after the whole range is writable again. */
			r = wp_range(wp_reg, WP_PAGES * ps, 0);
			if (r) {
				fail(C_WP, "UFFDIO_WRITEPROTECT(0): %s", strerror(-r));
				break;
			}
			gen++;
			for (unsigned i = 0; i < WP_PAGES; i++)
				fill(wp_reg + i * ps, C_WP, i, gen);
			for (unsigned i = 0; i < WP_PAGES; i++)
				verify(C_WP, "after unprotect", wp_reg + i * ps, i, gen);
			atomic_fetch_add(&ck[C_WP].ok, 1);
		}
		if (!skipped(C_MODE)) {
			struct vu_set_mode on = { .enable = VU_FEATURE_RWP_ASYNC };
			struct vu_set_mode off = { .disable = VU_FEATURE_RWP_ASYNC };

			if (ioctl(mode_fd, VU_UFFDIO_SET_MODE, &on) ||
			    ioctl(mode_fd, VU_UFFDIO_SET_MODE, &off)) {
				fail(C_MODE, "UFFDIO_SET_MODE: %s", strerror(errno));
				break;
			}
			mgen++;
			for (unsigned i = 0; i < SMALL_PAGES; i++)
				fill(mode_reg + i * ps, C_MODE, i, mgen);
			for (unsigned i = 0; i < SMALL_PAGES; i++)
				verify(C_MODE, "after SET_MODE", mode_reg + i * ps, i, mgen);
			atomic_fetch_add(&ck[C_MODE].ok, 1);
		}
		ktap_overlap_op(ov_wp);
	}
	ktap_overlap_stop(ov_wp);
	return NULL;
}

static void setup_wp(void)
{
	uint64_t got = 0, ioctls = 0;
	int r;

	wp_fd = uffd_new(UFFD_FEATURE_PAGEFAULT_FLAG_WP, &got);
	wp_reg = map_anon(WP_PAGES * ps);
	if (wp_fd < 0 || !wp_reg) {
		skip(C_WP, "no userfaultfd write protection (UFFDIO_API: %s)",
		     wp_fd < 0 ? strerror(-wp_fd) : "mmap failed");
	} else {
		no_fork(wp_reg, WP_PAGES * ps);
		for (unsigned i = 0; i < WP_PAGES; i++)
			fill(wp_reg + i * ps, C_WP, i, 0);
		r = uffd_register(wp_fd, wp_reg, WP_PAGES * ps, UFFDIO_REGISTER_MODE_WP, &ioctls);
		if (r)
			skip(C_WP, "UFFDIO_REGISTER(WP): %s", strerror(-r));
		else if (!(ioctls & (1ULL << _UFFDIO_WRITEPROTECT)))
			skip(C_WP, "UFFDIO_WRITEPROTECT not offered");
		else
			add_target(wp_reg, WP_PAGES * ps, ps, 0);
	}

	mode_fd = uffd_new(VU_FEATURE_RWP, &got);
	mode_reg = map_anon(SMALL_PAGES * ps);
	if (mode_fd < 0 || !mode_reg) {
		skip(C_MODE, "no UFFD_FEATURE_RWP (UFFDIO_API: %s)",
		     mode_fd < 0 ? strerror(-mode_fd) : "mmap failed");
		return;
	}
	no_fork(mode_reg, SMALL_PAGES * ps);
	for (unsigned i = 0; i < SMALL_PAGES; i++)
		fill(mode_reg + i * ps, C_MODE, i, 0);
	r = uffd_register(mode_fd, mode_reg, SMALL_PAGES * ps, VU_REGISTER_MODE_RWP, NULL);
	if (r) {
		skip(C_MODE, "UFFDIO_REGISTER(RWP): %s", strerror(-r));
		return;
	}
	{
		struct vu_set_mode off = { .disable = VU_FEATURE_RWP_ASYNC };

		if (ioctl(mode_fd, VU_UFFDIO_SET_MODE, &off)) {
			skip(C_MODE, "UFFDIO_SET_MODE: %s", strerror(errno));
			return;
		}
	}
	add_target(mode_reg, SMALL_PAGES * ps, ps, 0);
}

/* ----------------------------------------------------------- uffd_remove */

static int ov_remove;
static int rem_fd = -1;
static char *rem_reg;
static _Atomic unsigned rem_gen[REM_PAGES];
static atomic_int rem_stop;
static struct {
	uint64_t faults, removes, copies, eexist, errs;
} rh;

static void *remove_handler(void *arg)
{
	char *buf = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)arg;
	while (!atomic_load(&rem_stop)) {
		struct pollfd pfd = { .fd = rem_fd, .events = POLLIN };
		struct uffd_msg msg;

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		if (read(rem_fd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event == UFFD_EVENT_REMOVE) {
			rh.removes++;
			continue;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			rh.errs++;
			continue;
		}
		rh.faults++;
		{
			uintptr_t a = msg.arg.pagefault.address & ~(uintptr_t)(ps - 1);
			unsigned p = (a - (uintptr_t)rem_reg) / ps;
			struct uffdio_copy cp = { .dst = a, .src = (uintptr_t)buf, .len = ps };

			if (p >= REM_PAGES) {
				fail(C_REMOVE, "fault at %#lx outside the region", (unsigned long)a);
				continue;
			}
			fill(buf, C_REMOVE, p, atomic_load(&rem_gen[p]));
			for (int tries = 0; tries < 100; tries++) {
				if (!ioctl(rem_fd, UFFDIO_COPY, &cp)) {
					rh.copies++;
					break;
				}
				if (errno == EEXIST) {
					/* Someone resolved it meanwhile; wake the faulter. */
					struct uffdio_range wr = { .start = a, .len = ps };

					ioctl(rem_fd, UFFDIO_WAKE, &wr);
					rh.eexist++;
					break;
				}
				if (errno != EAGAIN) {
					fail(C_REMOVE, "UFFDIO_COPY: %s", strerror(errno));
					break;
				}
				cp.copy = 0;
			}
		}
	}
	return NULL;
}

static void *remove_thread(void *arg)
{
	uint64_t it = 0, seed = 0xabcdefull, nopop = 0, noremote = 0;
	char *buf = malloc(REM_PAGES * ps);

	(void)arg;
	while (!atomic_load(&go))
		;
	ktap_overlap_start(ov_remove);
	while (buf && ktap_keep_going(deadline, it++, 1)) {
		unsigned a = ktap_rand(&seed) % REM_PAGES;
		unsigned n = 1 + ktap_rand(&seed) % (REM_PAGES - a > 8 ? 8 : REM_PAGES - a);
		int how = it % 3;

		for (unsigned p = a; p < a + n; p++)
			atomic_fetch_add(&rem_gen[p], 1);
		/* EVENT_REMOVE: the lock is dropped while the handler reads the event. */
		if (madvise(rem_reg + a * ps, n * ps, MADV_DONTNEED)) {
			fail(C_REMOVE, "MADV_DONTNEED: %s", strerror(errno));
			break;
		}
		if (how == 1) {
			/* The handler fills them while GUP waits (lock dropped, re-taken). */
			if (madvise(rem_reg + a * ps, n * ps, MADV_POPULATE_WRITE)) {
				if (errno != EINVAL) {
					fail(C_REMOVE, "MADV_POPULATE_WRITE: %s", strerror(errno));
					break;
				}
				nopop++;
			}
		} else if (how == 2) {
			struct iovec l = { buf, n * ps }, r = { rem_reg + a * ps, n * ps };
			ssize_t got = process_vm_readv(getpid(), &l, 1, &r, 1, 0);

			if (got != (ssize_t)(n * ps)) {
				if (got < 0 && (errno == ENOSYS || errno == EPERM)) {
					noremote++;
				} else {
					fail(C_REMOVE, "process_vm_readv of %u pages: %zd (%s)", n, got,
					     got < 0 ? strerror(errno) : "short");
					break;
				}
			} else {
				for (unsigned p = a; p < a + n; p++)
					verify(C_REMOVE, "process_vm_readv", buf + (p - a) * ps, p,
					       atomic_load(&rem_gen[p]));
			}
		}
		for (unsigned p = a; p < a + n; p++)
			verify(C_REMOVE, how == 1 ? "populated" : "refaulted", rem_reg + p * ps, p,
			       atomic_load(&rem_gen[p]));
		atomic_fetch_add(&ck[C_REMOVE].ok, 1);
		ktap_overlap_op(ov_remove);
	}
	ktap_overlap_stop(ov_remove);
	if (nopop || noremote)
		ktap_diag("uffd_remove: MADV_POPULATE_WRITE unsupported %llu times, process_vm_readv %llu times",
			  (unsigned long long)nopop, (unsigned long long)noremote);
	free(buf);
	return NULL;
}

static void setup_remove(void)
{
	uint64_t got = 0, ioctls = 0;
	int r;

	rem_fd = uffd_new(UFFD_FEATURE_EVENT_REMOVE, &got);
	if (rem_fd < 0) {
		skip(C_REMOVE, "no userfaultfd with EVENT_REMOVE (%s)", strerror(-rem_fd));
		return;
	}
	rem_reg = map_anon(REM_PAGES * ps);
	if (!rem_reg) {
		skip(C_REMOVE, "mmap failed");
		return;
	}
	no_fork(rem_reg, REM_PAGES * ps);
	r = uffd_register(rem_fd, rem_reg, REM_PAGES * ps, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
	if (r) {
		skip(C_REMOVE, "UFFDIO_REGISTER: %s", strerror(-r));
		return;
	}
	add_target(rem_reg, REM_PAGES * ps, ps, 0);
}

/* ------------------------------------------------------------------ file */

static int ov_file;
static int file_fd = -1;
static char *file_map;
static unsigned file_gen[FILE_PAGES];

static int file_expect(const char *what, const char *p, unsigned page)
{
	return verify(C_FILE, what, p, page, file_gen[page]);
}

static void *file_thread(void *arg)
{
	uint64_t it = 0, seed = 0x55aa55ull, rfp_einval = 0, rfp_nosys = 0;
	char *buf = malloc(FILE_PAGES * ps);
	unsigned char vec[FILE_PAGES];

	(void)arg;
	while (!atomic_load(&go))
		;
	ktap_overlap_start(ov_file);
	while (buf && ktap_keep_going(deadline, it++, 1)) {
		/* The last page is read-only: msync always spans two VMAs. */
		for (unsigned i = 0; i < FILE_PAGES - 1; i++) {
			if (ktap_rand(&seed) % 2)
				continue;
			file_gen[i]++;
			fill(file_map + i * ps, C_FILE, i, file_gen[i]);
		}
		if (msync(file_map, FILE_PAGES * ps, MS_SYNC)) {
			fail(C_FILE, "msync(MS_SYNC): %s", strerror(errno));
			break;
		}
		if (pread(file_fd, buf, FILE_PAGES * ps, 0) != (ssize_t)(FILE_PAGES * ps)) {
			fail(C_FILE, "pread: %s", strerror(errno));
			break;
		}
		for (unsigned i = 0; i < FILE_PAGES; i++)
			file_expect("pread after msync", buf + i * ps, i);
		if (madvise(file_map, FILE_PAGES * ps, MADV_WILLNEED))
			fail(C_FILE, "MADV_WILLNEED: %s", strerror(errno));
		if (mincore(file_map, FILE_PAGES * ps, vec)) {
			fail(C_FILE, "mincore: %s", strerror(errno));
		} else {
			for (unsigned i = 0; i < FILE_PAGES; i++)
				if (!(vec[i] & 1))
					fail(C_FILE, "mincore: shmem page %u not resident", i);
		}
		if (!rfp_nosys) {
			unsigned k = ktap_rand(&seed) % (FILE_PAGES - 1);
			unsigned j = ktap_rand(&seed) % FILE_PAGES;
			char *at = file_map + k * ps;

			if (syscall(SYS_remap_file_pages, at, ps, 0, j, 0)) {
				if (errno == ENOSYS)
					rfp_nosys++;
				else if (errno == EINVAL)
					rfp_einval++;	/* the writer changed the VMA between the locks */
				else
					fail(C_FILE, "remap_file_pages: %s", strerror(errno));
			} else {
				file_expect("remap_file_pages", at, j);
				/* And back; EINVAL races are retried. */
				for (int t = 0; t < 100; t++) {
					if (!syscall(SYS_remap_file_pages, at, ps, 0, k, 0))
						break;
					if (errno != EINVAL || t == 99) {
						fail(C_FILE, "remap_file_pages back: %s", strerror(errno));
						goto out;
					}
				}
				file_expect("remap_file_pages back", at, k);
			}
		}
		atomic_fetch_add(&ck[C_FILE].ok, 1);
		ktap_overlap_op(ov_file);
	}
out:
	ktap_overlap_stop(ov_file);
	if (rfp_einval || rfp_nosys)
		ktap_diag("file: remap_file_pages EINVAL (VMA changed between its locks) %llu, ENOSYS %llu",
			  (unsigned long long)rfp_einval, (unsigned long long)rfp_nosys);
	free(buf);
	return NULL;
}

static void setup_file(void)
{
	file_fd = memfd_create("vma_users", MFD_CLOEXEC);
	if (file_fd < 0 || ftruncate(file_fd, FILE_PAGES * ps)) {
		skip(C_FILE, "memfd_create: %s", strerror(errno));
		return;
	}
	file_map = mmap(NULL, FILE_PAGES * ps, PROT_READ | PROT_WRITE, MAP_SHARED, file_fd, 0);
	if (file_map == MAP_FAILED) {
		file_map = NULL;
		skip(C_FILE, "mmap memfd: %s", strerror(errno));
		return;
	}
	for (unsigned i = 0; i < FILE_PAGES; i++)
		fill(file_map + i * ps, C_FILE, i, 0);
	mprotect(file_map + (FILE_PAGES - 1) * ps, ps, PROT_READ);
	add_target(file_map, (FILE_PAGES - 1) * ps, ps, 0);
}

/* ----------------------------------------------------------------- mlock */

static int ov_mlock;
static char *mlock_reg;

static void *mlock_thread(void *arg)
{
	uint64_t it = 0, nolock = 0;
	unsigned gen = 0;
	unsigned char vec[SMALL_PAGES];

	(void)arg;
	while (!atomic_load(&go))
		;
	ktap_overlap_start(ov_mlock);
	while (ktap_keep_going(deadline, it++, 1)) {
		size_t len = SMALL_PAGES * ps;

		gen++;
		for (unsigned i = 0; i < SMALL_PAGES; i++)
			fill(mlock_reg + i * ps, C_MLOCK, i, gen);
		if (mlock(mlock_reg, len) == 0) {
			/*
			 * Locking what is locked with other flags (MLOCK_ONFAULT on, then off):
			 * no pages to lock, only the VMA flags change, under vma_start_write().
			 * The same flags again return before touching the VMA.
			 */
			if (syscall(SYS_mlock2, mlock_reg, len, VU_MLOCK_ONFAULT) && errno != EINVAL)
				fail(C_MLOCK, "mlock2(MLOCK_ONFAULT) of a locked range: %s",
				     strerror(errno));
			if (mlock(mlock_reg, len))
				fail(C_MLOCK, "mlock of a locked range: %s", strerror(errno));
			munlock(mlock_reg, len);
		} else {
			nolock++;
		}
		for (unsigned i = 0; i < SMALL_PAGES; i++)
			verify(C_MLOCK, "after mlock", mlock_reg + i * ps, i, gen);
		if (mincore(mlock_reg, len, vec)) {
			fail(C_MLOCK, "mincore: %s", strerror(errno));
			break;
		}
		for (unsigned i = 0; i < SMALL_PAGES; i++)
			if (!(vec[i] & 1))
				fail(C_MLOCK, "mincore: written page %u not resident", i);
		for (unsigned i = 1; i < SMALL_PAGES; i += 2)
			if (madvise(mlock_reg + i * ps, ps, MADV_DONTNEED))
				fail(C_MLOCK, "MADV_DONTNEED: %s", strerror(errno));
		if (!mincore(mlock_reg, len, vec))
			for (unsigned i = 0; i < SMALL_PAGES; i++)
				if ((vec[i] & 1) != !(i & 1))
					fail(C_MLOCK, "mincore: page %u says %d after zapping the odd pages",
					     i, vec[i] & 1);
		for (unsigned i = 1; i < SMALL_PAGES; i += 2)
			for (size_t w = 0; w < ps / 8; w++)
				if (((volatile uint64_t *)(mlock_reg + i * ps))[w]) {
					fail(C_MLOCK, "zapped anon page %u not zero", i);
					break;
				}
		atomic_fetch_add(&ck[C_MLOCK].ok, 1);
		ktap_overlap_op(ov_mlock);
	}
	ktap_overlap_stop(ov_mlock);
	if (nolock)
		ktap_diag("mlock: mlock refused %llu times (RLIMIT_MEMLOCK?)",
			  (unsigned long long)nolock);
	return NULL;
}

/* ------------------------------------------------------------ clear_refs */

static int ov_clear;
static char *clear_reg;
static int clear_fd = -1;

static void *clear_thread(void *arg)
{
	uint64_t it = 0, einval = 0;
	unsigned gen = 0;

	(void)arg;
	while (!atomic_load(&go))
		;
	ktap_overlap_start(ov_clear);
	while (ktap_keep_going(deadline, it++, 1)) {
		char v = '1' + it % 5;

		gen++;
		for (unsigned i = 0; i < SMALL_PAGES; i++)
			fill(clear_reg + i * ps, C_CLEAR, i, gen);
		if (pwrite(clear_fd, &v, 1, 0) != 1) {
			/* 4 (soft-dirty) is EINVAL without CONFIG_MEM_SOFT_DIRTY. */
			if (errno == EINVAL && v == '4')
				einval++;
			else
				fail(C_CLEAR, "write %c to clear_refs: %s", v, strerror(errno));
		}
		for (unsigned i = 0; i < SMALL_PAGES; i++)
			verify(C_CLEAR, "after clear_refs", clear_reg + i * ps, i, gen);
		atomic_fetch_add(&ck[C_CLEAR].ok, 1);
		ktap_overlap_op(ov_clear);
	}
	ktap_overlap_stop(ov_clear);
	if (einval)
		ktap_diag("clear_refs: 4 refused %llu times (no soft-dirty)", (unsigned long long)einval);
	return NULL;
}

/* ----------------------------------------------------------------- stack */

static int ov_stack;
static char *stack_lo;		/* the main stack VMA's start at setup */

static void *stack_thread(void *arg)
{
	uint64_t it = 0;
	unsigned gen = 0;

	(void)arg;
	while (!atomic_load(&go))
		;
	ktap_overlap_start(ov_stack);
	while (ktap_keep_going(deadline, it++, 1)) {
		char *low = stack_lo - STACK_GROW * ps;

		gen++;
		/* Each store lands below the VMA: the fault path expands it. */
		for (unsigned k = 1; k <= STACK_GROW; k++)
			fill(stack_lo - k * ps, C_STACK, k, gen);
		for (unsigned k = 1; k <= STACK_GROW; k++)
			verify(C_STACK, "grown stack", stack_lo - k * ps, k, gen);
		if (munmap(low, STACK_GROW * ps)) {
			fail(C_STACK, "munmap of the grown part: %s", strerror(errno));
			break;
		}
		atomic_fetch_add(&ck[C_STACK].ok, 1);
		ktap_overlap_op(ov_stack);
	}
	ktap_overlap_stop(ov_stack);
	return NULL;
}

/* Find [stack] and make sure nothing is mapped in the megabyte below it. */
static void setup_stack(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long prev_end = 0, s, e;

	if (!f) {
		skip(C_STACK, "no /proc/self/maps");
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &s, &e) != 2)
			continue;
		if (strstr(line, "[stack]")) {
			if (s - prev_end > (2UL << 20))
				stack_lo = (char *)s;
			break;
		}
		prev_end = e;
	}
	fclose(f);
	if (!stack_lo)
		skip(C_STACK, "no [stack] with a free megabyte below it");
}

/* ------------------------------------------------------------------ proc */

static int ov_proc;
static char *self_exe = "/proc/self/exe";

static char arg_char(int i, int j)
{
	return 'a' + (i * 7 + j * 13) % 26;
}

/* The exec'd child: each argument must be what the parent built. */
static int argcheck_main(int argc, char **argv)
{
	if (argc != EXEC_ARGS + 2)
		return 3;
	for (int i = 0; i < EXEC_ARGS; i++) {
		const char *a = argv[i + 2];

		if (strlen(a) != EXEC_ARGLEN - 1)
			return 4;
		for (int j = 0; j < EXEC_ARGLEN - 1; j++)
			if (a[j] != arg_char(i, j))
				return 5;
	}
	return 0;
}

static char *exec_argv[EXEC_ARGS + 3];

static void do_exec(void)
{
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		char *envp[] = { NULL };

		child_signals();
		execve(self_exe, exec_argv, envp);
		_exit(7);
	}
	if (pid < 0) {
		fail(C_EXEC, "fork: %s", strerror(errno));
		return;
	}
	waitpid(pid, &st, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		atomic_fetch_add(&ck[C_EXEC].ok, 1);
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 7)
		skip(C_EXEC, "cannot execve %s", self_exe);
	else
		fail(C_EXEC, "exec'd child: status %#x (3 argc, 4 length, 5 byte wrong)", st);
}

static void do_exit_empty(void)
{
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		static const int bits[] = { 57, 56, 52, 48, 47, 39 };
		struct rlimit no = { 0, 0 };

		setrlimit(RLIMIT_CORE, &no);
		child_signals();
		/* The first length the kernel takes removes everything, this code too. */
		for (unsigned i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
			syscall(SYS_munmap, 0UL, (1UL << bits[i]));
			syscall(SYS_munmap, 0UL, (1UL << bits[i]) - 4096);
		}
		_exit(3);
	}
	if (pid < 0) {
		fail(C_EXIT, "fork: %s", strerror(errno));
		return;
	}
	waitpid(pid, &st, 0);
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV)
		atomic_fetch_add(&ck[C_EXIT].ok, 1);
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
		skip(C_EXIT, "munmap took no length covering the address space");
	else
		fail(C_EXIT, "child status %#x, want SIGSEGV", st);
}

static int proc_state(pid_t pid)
{
	char path[64], buf[256], *p;
	int fd, n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

static void do_fork_event(uint64_t *blocked)
{
	int pfd[2], st;
	char c = 0;
	pid_t pid;

	if (pipe(pfd))
		return;
	pid = fork();
	if (pid == 0) {
		int fd;
		char *r;

		child_signals();
		fd = uffd_new(UFFD_FEATURE_EVENT_FORK, NULL);
		r = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (fd < 0 || r == MAP_FAILED ||
		    uffd_register(fd, r, 4 * ps, UFFDIO_REGISTER_MODE_MISSING, NULL)) {
			c = 'n';
			if (write(pfd[1], &c, 1) != 1)
				_exit(6);
			_exit(5);
		}
		c = 'y';
		if (write(pfd[1], &c, 1) != 1)
			_exit(6);
		/* Nobody reads the fork event: this fork waits until we are killed. */
		if (fork() == 0)
			_exit(0);
		_exit(4);
	}
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		fail(C_FORKEV, "fork: %s", strerror(errno));
		return;
	}
	if (read(pfd[0], &c, 1) != 1)
		c = 0;
	close(pfd[0]);
	if (c == 'y') {
		double until = ktap_now() + 0.5;

		while (ktap_now() < until && proc_state(pid) != 'D')
			usleep(1000);
		if (proc_state(pid) == 'D')
			(*blocked)++;
		kill(pid, SIGKILL);
	}
	waitpid(pid, &st, 0);
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
		atomic_fetch_add(&ck[C_FORKEV].ok, 1);
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 5)
		skip(C_FORKEV, "no userfaultfd with EVENT_FORK");
	else
		fail(C_FORKEV, "forker status %#x (4: its fork did not wait for the event)", st);
}

static void *proc_thread(void *arg)
{
	uint64_t it = 0, blocked = 0;

	(void)arg;
	while (!atomic_load(&go))
		;
	ktap_overlap_start(ov_proc);
	while (ktap_keep_going(deadline, it++, 0)) {
		switch (it % 3) {
		case 0:
			if (!skipped(C_EXEC))
				do_exec();
			break;
		case 1:
			if (!skipped(C_EXIT))
				do_exit_empty();
			break;
		default:
			if (!skipped(C_FORKEV))
				do_fork_event(&blocked);
			break;
		}
		ktap_overlap_op(ov_proc);
	}
	ktap_overlap_stop(ov_proc);
	if (atomic_load(&ck[C_FORKEV].ok) && !blocked)
		fail(C_FORKEV, "no forker was ever seen waiting (state D) for its fork event");
	ktap_diag("proc: %llu forkers seen waiting on their fork event", (unsigned long long)blocked);
	return NULL;
}

static void setup_proc(void)
{
	static char args[EXEC_ARGS][EXEC_ARGLEN];

	exec_argv[0] = "vma_users_vs_writers";
	exec_argv[1] = "--argcheck";
	for (int i = 0; i < EXEC_ARGS; i++) {
		for (int j = 0; j < EXEC_ARGLEN - 1; j++)
			args[i][j] = arg_char(i, j);
		args[i][EXEC_ARGLEN - 1] = 0;
		exec_argv[i + 2] = args[i];
	}
	exec_argv[EXEC_ARGS + 2] = NULL;
	if (access(self_exe, X_OK))
		skip(C_EXEC, "no %s", self_exe);
}

/* ------------------------------------------------------------------- gup */

static int ov_gup;
static int gup_fd = -1;
static char *gup_map;
static int gup_pipe[2] = { -1, -1 };

static void *gup_thread(void *arg)
{
	uint64_t it = 0, seed = 0x31337ull;
	unsigned gen = 0;
	char *page = malloc(ps), *buf = malloc(8 * ps);

	(void)arg;
	while (!atomic_load(&go))
		;
	ktap_overlap_start(ov_gup);
	while (page && buf && ktap_keep_going(deadline, it++, 1)) {
		unsigned a = ktap_rand(&seed) % (SMALL_PAGES - 8), n = 1 + ktap_rand(&seed) % 8;
		struct iovec iov = { gup_map + a * ps, n * ps };
		size_t got = 0;

		if (it % 16 == 1) {
			gen++;
			for (unsigned i = 0; i < SMALL_PAGES; i++) {
				fill(page, C_GUP, i, gen);
				if (pwrite(gup_fd, page, ps, i * ps) != (ssize_t)ps)
					fail(C_GUP, "pwrite: %s", strerror(errno));
			}
		}
		/* No PTEs left: GUP-fast gives up, the slow path takes mmap_lock. */
		madvise(gup_map, SMALL_PAGES * ps, MADV_DONTNEED);
		if (vmsplice(gup_pipe[1], &iov, 1, 0) != (ssize_t)(n * ps)) {
			fail(C_GUP, "vmsplice of %u pages: %s", n, strerror(errno));
			break;
		}
		while (got < n * ps) {
			ssize_t r = read(gup_pipe[0], buf + got, n * ps - got);

			if (r <= 0) {
				fail(C_GUP, "read from the pipe: %s", strerror(errno));
				goto out;
			}
			got += r;
		}
		for (unsigned i = 0; i < n; i++)
			verify(C_GUP, "vmspliced", buf + i * ps, a + i, gen);
		atomic_fetch_add(&ck[C_GUP].ok, 1);
		ktap_overlap_op(ov_gup);
	}
out:
	ktap_overlap_stop(ov_gup);
	free(page);
	free(buf);
	return NULL;
}

static void setup_gup(void)
{
	gup_fd = memfd_create("vma_users_gup", MFD_CLOEXEC);
	if (gup_fd < 0 || ftruncate(gup_fd, SMALL_PAGES * ps) || pipe(gup_pipe)) {
		skip(C_GUP, "memfd/pipe: %s", strerror(errno));
		return;
	}
	gup_map = mmap(NULL, SMALL_PAGES * ps, PROT_READ | PROT_WRITE, MAP_SHARED, gup_fd, 0);
	if (gup_map == MAP_FAILED) {
		gup_map = NULL;
		skip(C_GUP, "mmap memfd: %s", strerror(errno));
		return;
	}
	for (unsigned i = 0; i < SMALL_PAGES; i++)
		fill(gup_map + i * ps, C_GUP, i, 0);
	add_target(gup_map, SMALL_PAGES * ps, ps, 1);
}

/* ------------------------------------------------------------------- thp */

static int ov_thp;
static char *coll_reg;		/* 2 PMDs, aligned */
static char *tmv_p, *tmv_q;	/* 1 PMD each, aligned, not adjacent */
static int tmv_fd = -1;
static char split_path[] = "/sys/kernel/debug/split_huge_pages";

static int split_range(char *p, size_t len)
{
	char cmd[128];
	int fd = open(split_path, O_WRONLY), n, r = 0;

	if (fd < 0)
		return -errno;
	n = snprintf(cmd, sizeof(cmd), "%d,%#lx,%#lx", (int)getpid(), (unsigned long)p,
		     (unsigned long)(p + len));
	if (write(fd, cmd, n) != n)
		r = -errno;
	close(fd);
	return r;
}

static void *thp_thread(void *arg)
{
	uint64_t it = 0, collapsed = 0, notnow = 0, splits = 0, hmoves = 0, eagain = 0;
	unsigned cgen = 0, mgen = 0;
	size_t np = HPAGE / ps;
	char *at = tmv_p;

	(void)arg;
	while (!atomic_load(&go))
		;
	ktap_overlap_start(ov_thp);
	while (ktap_keep_going(deadline, it++, 1)) {
		if (!skipped(C_COLLAPSE)) {
			cgen++;
			for (size_t i = 0; i < 2 * np; i++)
				fill(coll_reg + i * ps, C_COLLAPSE, i, cgen);
			/* Two PMDs in one call: the lock is dropped after the first. */
			if (madvise(coll_reg, 2 * HPAGE, MADV_COLLAPSE) == 0)
				collapsed++;
			else if (errno == EAGAIN || errno == EBUSY || errno == ENOMEM ||
				 errno == EINVAL)
				notnow++;
			else
				fail(C_COLLAPSE, "MADV_COLLAPSE: %s", strerror(errno));
			for (size_t i = 0; i < 2 * np; i++)
				verify(C_COLLAPSE, "after MADV_COLLAPSE", coll_reg + i * ps, i, cgen);
			atomic_fetch_add(&ck[C_COLLAPSE].ok, 1);
			if (!skipped(C_SPLIT)) {
				int r = split_range(coll_reg, 2 * HPAGE);

				if (r)
					fail(C_SPLIT, "write to split_huge_pages: %s", strerror(-r));
				else
					splits++;
				for (size_t i = 0; i < 2 * np; i++)
					verify_as(C_SPLIT, C_COLLAPSE, "after split_huge_pages",
						  coll_reg + i * ps, i, cgen);
				atomic_fetch_add(&ck[C_SPLIT].ok, 1);
			}
		}
		if (!skipped(C_THPMOVE)) {
			char *to = at == tmv_p ? tmv_q : tmv_p;
			struct uffdio_move mv = {
				.dst = (uintptr_t)to, .src = (uintptr_t)at, .len = HPAGE,
			};

			if (ioctl(tmv_fd, UFFDIO_MOVE, &mv)) {
				if (errno == EAGAIN || errno == EBUSY) {
					eagain++;
				} else {
					fail(C_THPMOVE, "UFFDIO_MOVE of 2 MiB: %s (moved %lld)",
					     strerror(errno), (long long)mv.move);
					skip(C_THPMOVE, "failed");	/* stop trying */
				}
			} else {
				hmoves++;
				at = to;
				for (size_t i = 0; i < np; i++)
					verify(C_THPMOVE, "after 2 MiB UFFDIO_MOVE", at + i * ps, i, mgen);
				mgen++;
				for (size_t i = 0; i < np; i++)
					fill(at + i * ps, C_THPMOVE, i, mgen);
				atomic_fetch_add(&ck[C_THPMOVE].ok, 1);
			}
		}
		ktap_overlap_op(ov_thp);
	}
	ktap_overlap_stop(ov_thp);
	ktap_diag("thp: %llu collapses (%llu not now), %llu splits, %llu 2 MiB moves (%llu EAGAIN)",
		  (unsigned long long)collapsed, (unsigned long long)notnow,
		  (unsigned long long)splits, (unsigned long long)hmoves, (unsigned long long)eagain);
	if (!skipped(C_COLLAPSE) && !collapsed)
		ktap_diag("thp: MADV_COLLAPSE never succeeded");
	return NULL;
}

static void setup_thp(void)
{
	char buf[128] = "", why[160];
	int fd, n = -1;
	uint64_t ioctls = 0;

	/* The default matrix builds no THP: these cases run in the deep profile. */
	if (ktap_thp_missing(why, sizeof(why))) {
		skip(C_COLLAPSE, "%s", why);
		skip(C_SPLIT, "%s", why);
		skip(C_THPMOVE, "%s", why);
		return;
	}
	fd = open(KTAP_THP_SYS "/enabled", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	/* Unreadable with THP built (MADV_HUGEPAGE taken): run, the checks will tell. */
	if (n > 0 && strstr(buf, "[never]")) {
		const char *never = "THP disabled (" KTAP_THP_SYS "/enabled: [never])";

		skip(C_COLLAPSE, "%s", never);
		skip(C_SPLIT, "%s", never);
		skip(C_THPMOVE, "%s", never);
		return;
	}
	coll_reg = map_aligned(2 * HPAGE, HPAGE);
	if (!coll_reg) {
		skip(C_COLLAPSE, "mmap failed");
		skip(C_SPLIT, "mmap failed");
	} else {
		/* Small pages first, so that MADV_COLLAPSE has work to do. */
		no_fork(coll_reg, 2 * HPAGE);
		madvise(coll_reg, 2 * HPAGE, MADV_NOHUGEPAGE);
		for (size_t i = 0; i < 2 * HPAGE / ps; i++)
			fill(coll_reg + i * ps, C_COLLAPSE, i, 0);
		madvise(coll_reg, 2 * HPAGE, MADV_HUGEPAGE);
		if (madvise(coll_reg, 2 * HPAGE, MADV_COLLAPSE) && errno == EINVAL)
			skip(C_COLLAPSE, "no MADV_COLLAPSE (MADV_COLLAPSE: EINVAL, Linux < 6.1)");
		add_target(coll_reg, 2 * HPAGE, HPAGE, 1);
		if (access(split_path, F_OK))
			mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
		{
			int r = split_range(coll_reg, 2 * HPAGE);

			if (r)
				skip(C_SPLIT, "cannot write %s: %s", split_path, strerror(-r));
		}
		if (!skipped(C_SPLIT) && skipped(C_COLLAPSE))
			skip(C_SPLIT, "nothing to split without MADV_COLLAPSE");
	}

	tmv_fd = uffd_new(UFFD_FEATURE_MOVE, NULL);
	if (tmv_fd < 0) {
		skip(C_THPMOVE, "no UFFDIO_MOVE (%s)", strerror(-tmv_fd));
		return;
	}
	tmv_p = map_aligned(4 * HPAGE, HPAGE);
	if (!tmv_p) {
		skip(C_THPMOVE, "mmap failed");
		return;
	}
	tmv_q = tmv_p + 2 * HPAGE;
	munmap(tmv_p + HPAGE, HPAGE);	/* P and Q stay two VMAs */
	munmap(tmv_q + HPAGE, HPAGE);
	no_fork(tmv_p, HPAGE);
	no_fork(tmv_q, HPAGE);
	madvise(tmv_p, HPAGE, MADV_HUGEPAGE);
	madvise(tmv_q, HPAGE, MADV_HUGEPAGE);
	for (size_t i = 0; i < HPAGE / ps; i++)
		fill(tmv_p + i * ps, C_THPMOVE, i, 0);
	if (uffd_register(tmv_fd, tmv_p, HPAGE, UFFDIO_REGISTER_MODE_MISSING, &ioctls) ||
	    uffd_register(tmv_fd, tmv_q, HPAGE, UFFDIO_REGISTER_MODE_MISSING, NULL) ||
	    !(ioctls & (1ULL << _UFFDIO_MOVE))) {
		skip(C_THPMOVE, "UFFDIO_MOVE not offered for the 2 MiB ranges");
		return;
	}
	add_target(tmv_p, HPAGE, HPAGE, 0);
	add_target(tmv_q, HPAGE, HPAGE, 0);
}

/* ------------------------------------------------------------------ main */

static int join_until(pthread_t t, double until)
{
	while (pthread_tryjoin_np(t, NULL) == EBUSY) {
		if (ktap_now() > until)
			return 1;
		usleep(10000);
	}
	return 0;
}

struct kind {
	const char *name;
	int *ov;
	void *(*fn)(void *);
	int checks[4];		/* what it drives; it runs when one of them is not skipped */
};

int main(int argc, char **argv)
{
	struct kind kinds[] = {
		{ "writer", &ov_writer, writer_thread, { -1 } },
		{ "uffd_move", &ov_move, move_thread, { C_MOVE, -1 } },
		{ "uffd_wp", &ov_wp, wp_thread, { C_WP, C_MODE, -1 } },
		{ "uffd_remove", &ov_remove, remove_thread, { C_REMOVE, -1 } },
		{ "file", &ov_file, file_thread, { C_FILE, -1 } },
		{ "mlock", &ov_mlock, mlock_thread, { C_MLOCK, -1 } },
		{ "clear_refs", &ov_clear, clear_thread, { C_CLEAR, -1 } },
		{ "stack", &ov_stack, stack_thread, { C_STACK, -1 } },
		{ "proc", &ov_proc, proc_thread, { C_EXEC, C_EXIT, C_FORKEV, -1 } },
		{ "gup", &ov_gup, gup_thread, { C_GUP, -1 } },
		{ "thp", &ov_thp, thp_thread, { C_COLLAPSE, C_SPLIT, C_THPMOVE, -1 } },
	};
	enum { NK = sizeof(kinds) / sizeof(kinds[0]) };
	const int nk = NK;
	int run[NK], joined[NK];
	pthread_t th[NK], hth;
	int hrun = 0, stuck = 0;
	double dur;

	if (argc >= 2 && !strcmp(argv[1], "--argcheck"))
		return argcheck_main(argc, argv);
	dur = ktap_begin(argc, argv, N_CHECKS + nk);
	ps = sysconf(_SC_PAGESIZE);
	ktap_diag("vma_users_vs_writers: duration %.1fs, page size %zu", dur, ps);

	setup_move();
	setup_wp();
	setup_remove();
	setup_file();
	mlock_reg = map_anon(SMALL_PAGES * ps);
	clear_reg = map_anon(SMALL_PAGES * ps);
	scratch = map_anon(8 * ps);
	if (!mlock_reg || !clear_reg || !scratch)
		return ktap_bail("not run: mmap failed");
	add_target(mlock_reg, SMALL_PAGES * ps, ps, 1);
	add_target(clear_reg, SMALL_PAGES * ps, ps, 1);
	clear_fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (clear_fd < 0)
		skip(C_CLEAR, "no /proc/self/clear_refs: %s", strerror(errno));
	setup_stack();
	setup_proc();
	setup_gup();
	setup_thp();
	for (int c = 0; c < N_CHECKS; c++)
		if (skipped(c))
			ktap_diag("%s: SKIP %s", ck[c].desc, ck[c].skip);

	for (int k = 0; k < nk; k++) {
		run[k] = k == 0;
		for (int i = 0; kinds[k].checks[i] >= 0; i++)
			run[k] |= !skipped(kinds[k].checks[i]);
		if (run[k])
			*kinds[k].ov = ktap_overlap_kind(kinds[k].name);
	}
	deadline = ktap_now() + dur;
	if (!skipped(C_REMOVE)) {
		hrun = !pthread_create(&hth, NULL, remove_handler, NULL);
		if (!hrun)
			return ktap_bail("not run: pthread_create failed");
	}
	for (int k = 0; k < nk; k++)
		if (run[k] && pthread_create(&th[k], NULL, kinds[k].fn, NULL)) {
			ktap_diag("pthread_create %s failed", kinds[k].name);
			return ktap_bail("not run: pthread_create failed");
		}
	atomic_store(&go, 1);
	for (int k = 0; k < nk; k++) {
		joined[k] = !run[k] || !join_until(th[k], deadline + KTAP_OVERTIME + 1.0);
		if (!joined[k]) {
			ktap_diag("%s thread still running after the deadline (blocked?)", kinds[k].name);
			stuck++;
		}
	}
	if (stuck) {
		/* Closing the userfaultfds releases a thread waiting in a fault on them. */
		const int fds[] = { move_fd, wp_fd, mode_fd, rem_fd, tmv_fd };

		for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
			if (fds[i] >= 0)
				close(fds[i]);
		stuck = 0;
		for (int k = 0; k < nk; k++) {
			if (joined[k])
				continue;
			if (join_until(th[k], deadline + KTAP_OVERTIME + 2.0)) {
				stuck++;
				continue;
			}
			for (int i = 0; kinds[k].checks[i] >= 0; i++)
				fail(kinds[k].checks[i],
				     "%s thread was stuck until the userfaultfds were closed", kinds[k].name);
		}
	}
	atomic_store(&rem_stop, 1);
	if (hrun && join_until(hth, deadline + KTAP_OVERTIME + 2.5))
		stuck++;
	if (stuck)
		return ktap_bail("threads stuck after the deadline");

	ktap_diag("writer: %llu madvise, %llu mprotect, %llu scratch remaps, %llu errors%s%s",
		  (unsigned long long)ws.madv, (unsigned long long)ws.mprot,
		  (unsigned long long)ws.remap, (unsigned long long)ws.errs,
		  ws.err[0] ? "; first: " : "", ws.err);
	if (!skipped(C_REMOVE))
		ktap_diag("uffd_remove handler: %llu faults, %llu copies, %llu EEXIST, %llu REMOVE events, %llu other",
			  (unsigned long long)rh.faults, (unsigned long long)rh.copies,
			  (unsigned long long)rh.eexist, (unsigned long long)rh.removes,
			  (unsigned long long)rh.errs);
	for (int c = 0; c < N_CHECKS; c++) {
		unsigned long ok = atomic_load(&ck[c].ok), bad = atomic_load(&ck[c].bad);

		if (bad) {
			ktap_diag("%s: %lu bad, first: %s", ck[c].desc, bad, ck[c].err);
			ktap_result(0, "%s", ck[c].desc);
		} else if (skipped(c) && !ok) {
			ktap_skip(ck[c].skip, "%s", ck[c].desc);
		} else if (!ok) {
			ktap_result(0, "%s # nothing verified", ck[c].desc);
		} else {
			ktap_diag("%s: %lu verified", ck[c].desc, ok);
			ktap_result(1, "%s", ck[c].desc);
		}
	}
	ktap_overlap_report();
	for (int k = 0; k < nk; k++) {
		char why[256];

		if (run[k])
			continue;
		/* Every check it drives skipped: the first one's reason is the kernel's. */
		snprintf(why, sizeof(why), "nothing it drives is available (%s)",
			 ck[kinds[k].checks[0]].skip);
		ktap_skip(why, "%s overlapped the other kinds", kinds[k].name);
	}
	return ktap_end();
}
