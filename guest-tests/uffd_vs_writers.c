// SPDX-License-Identifier: GPL-2.0
/*
 * uffd_vs_writers - userfaultfd MISSING faults racing VMA modifications.
 *
 * Regions of anonymous memory are registered with a userfaultfd in MISSING
 * mode. Fault threads read whole pages (and write the same value back) and
 * check that every word carries the pattern of (region, page, word). A
 * handler thread resolves each fault with UFFDIO_COPY, or UFFDIO_MOVE for
 * the "move" regions when the kernel reports the feature. Writer threads
 * meanwhile MADV_DONTNEED (making pages missing again), mprotect sub-ranges
 * R <-> RW (copy regions only: UFFDIO_MOVE requires matching protections),
 * and munmap + re-mmap + re-register whole regions, so faults sleeping in
 * handle_userfault() find their VMA changed or gone when they retry.
 *
 * A re-mapped region starts PROT_NONE and only becomes RW once registered,
 * so a registered-and-accessible page is never legitimately zero: any
 * mismatch is a failure. Touching a region while it is unmapped or PROT_NONE
 * or read-only (for writes) raises SIGSEGV, which the fault threads expect
 * and count (sigsetjmp around each probe). SIGBUS is not expected.
 */
#define _GNU_SOURCE
#include "ktap.h"

#include <linux/userfaultfd.h>
#include <poll.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
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

#define N_REGIONS	4	/* 0,1: COPY regions; 2,3: MOVE regions (if supported) */
#define R_PAGES		32
#define N_FAULTERS	2
#define MAGIC_U		0x5546000000000000ull

static size_t ps;
static double deadline;
static int uffd = -1;
static int have_move;
static atomic_int go, handler_stop, closing;

struct region {
	char *addr;
	int move;		/* resolve with UFFDIO_MOVE */
	atomic_int dead;	/* lost its address (EEXIST on re-mmap) */
	pthread_rwlock_t remap_lock;	/* MOVE vs re-mmap, see handler */
};
static struct region reg[N_REGIONS];

static struct {
	uint64_t msgs, copies, moves, move_fallback, eexist, enoent, eagain, wakes, errors;
	uint64_t copy_ioctl_missing;
	char first_err[256];
} hs;

struct fstat {
	uint64_t probes, pages_ok, bad, segv, sigbus, writes;
	char first_bad[256];
};
static struct fstat fst[N_FAULTERS];

static struct {
	uint64_t dontneed, mprotects, remaps_unmap, remaps_fixed, eexist, errors;
	char first_err[256];
} ws[2];

/* Overlap kinds (ktap.h). */
static int ov_fault, ov_writer[2], ov_handler;

static inline int running(void)
{
	return ktap_now() < deadline;
}

static inline uint64_t pat(int r, size_t page, size_t word)
{
	return MAGIC_U | ((uint64_t)r << 40) | ((uint64_t)page << 20) | word;
}

/* ------------------------------------------------------------- probing */

static __thread sigjmp_buf probe_jb;
static __thread volatile int in_probe;
static __thread volatile int probe_sig;

static void fault_signal(int sig)
{
	if (in_probe) {
		in_probe = 0;
		probe_sig = sig;
		siglongjmp(probe_jb, 1);
	}
	ktap_crash(sig, NULL, NULL);
}

/* --------------------------------------------------------------- setup */

static int do_register(char *addr, size_t len, uint64_t *ioctls)
{
	struct uffdio_register r = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &r))
		return -1;
	if (ioctls)
		*ioctls = r.ioctls;
	return 0;
}

/* Open a userfaultfd, preferring user-mode-only; returns fd or -1. */
static int open_uffd(int *user_only)
{
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	*user_only = 1;
	if (fd < 0 && (errno == EINVAL || errno == EPERM)) {
		/* Pre-5.11 kernels reject the flag; fall back without it. */
		*user_only = 0;
		fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	}
	return fd;
}

/* Handshake: learn the features, then reopen asking for MOVE if offered. */
static int setup_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	uint64_t feats;
	int user_only;

	uffd = open_uffd(&user_only);
	if (uffd < 0) {
		ktap_diag("userfaultfd(): %s", strerror(errno));
		return -1;
	}
	if (ioctl(uffd, UFFDIO_API, &api)) {
		ktap_diag("UFFDIO_API: %s", strerror(errno));
		return -1;
	}
	feats = api.features;
	close(uffd);
	uffd = open_uffd(&user_only);
	if (uffd < 0) {
		ktap_diag("userfaultfd() reopen: %s", strerror(errno));
		return -1;
	}
	memset(&api, 0, sizeof(api));
	api.api = UFFD_API;
	api.features = feats & UFFD_FEATURE_MOVE;
	if (ioctl(uffd, UFFDIO_API, &api)) {
		ktap_diag("UFFDIO_API(features %#llx): %s", (unsigned long long)(feats & UFFD_FEATURE_MOVE),
			  strerror(errno));
		return -1;
	}
	have_move = !!(feats & UFFD_FEATURE_MOVE);
	ktap_diag("userfaultfd: user-mode-only %s, features %#llx, UFFDIO_MOVE %s",
		  user_only ? "yes" : "no (fallback)", (unsigned long long)feats,
		  have_move ? "supported" : "not supported");
	return 0;
}

/* ------------------------------------------------------------- handler */

static int find_region(uint64_t addr, size_t *page)
{
	for (int r = 0; r < N_REGIONS; r++) {
		uint64_t a = (uintptr_t)reg[r].addr;

		if (addr >= a && addr < a + R_PAGES * ps) {
			*page = (addr - a) / ps;
			return r;
		}
	}
	return -1;
}

static void fill_page(void *dst, int r, size_t page)
{
	uint64_t *w = dst;

	for (size_t i = 0; i < ps / 8; i++)
		w[i] = pat(r, page, i);
}

static void wake(uint64_t addr)
{
	struct uffdio_range rg = { .start = addr, .len = ps };

	if (ioctl(uffd, UFFDIO_WAKE, &rg) == 0)
		hs.wakes++;
}

/* Classify a failed COPY/MOVE; returns 1 if the fault still needs a wake. */
static int resolve_error(const char *op, uint64_t addr)
{
	switch (errno) {
	case EEXIST:	/* a racing fault or retry already populated it */
		hs.eexist++;
		return 1;
	case ENOENT:	/* VMA unmapped / re-mapped and not yet registered */
		hs.enoent++;
		return 1;
	case EAGAIN:	/* mm changing under us; the fault will retry */
		hs.eagain++;
		return 1;
	default:
		hs.errors++;
		note(hs.first_err, "%s at %#llx: %s", op, (unsigned long long)addr, strerror(errno));
		return 1;
	}
}

static void handle_fault(uint64_t fault_addr, char *src_copy, char *src_move)
{
	uint64_t addr = fault_addr & ~(uint64_t)(ps - 1);
	size_t page;
	int r = find_region(addr, &page);

	if (r < 0) {
		hs.errors++;
		note(hs.first_err, "fault at %#llx outside every region", (unsigned long long)addr);
		wake(addr);
		return;
	}
	if (reg[r].move && have_move) {
		struct uffdio_move mv = {
			.dst = addr, .src = (uintptr_t)src_move, .len = ps, .mode = 0,
		};
		int ret;

		/* Fresh exclusive anon page at src, moved (not copied) into dst. */
		fill_page(src_move, r, page);
		pthread_rwlock_rdlock(&reg[r].remap_lock);
		ret = ioctl(uffd, UFFDIO_MOVE, &mv);
		pthread_rwlock_unlock(&reg[r].remap_lock);
		if (ret == 0) {
			hs.moves++;
			ktap_overlap_op(ov_handler);
			return;
		}
		if (errno != EBUSY) {
			if (resolve_error("UFFDIO_MOVE", addr))
				wake(addr);
			return;
		}
		/* EBUSY: src page pinned/shared at that instant; copy instead. */
		hs.move_fallback++;
	}
	{
		struct uffdio_copy cp = {
			.dst = addr, .src = (uintptr_t)src_copy, .len = ps, .mode = 0,
		};

		fill_page(src_copy, r, page);
		if (ioctl(uffd, UFFDIO_COPY, &cp) == 0) {
			hs.copies++;
			ktap_overlap_op(ov_handler);
			return;
		}
		if (resolve_error("UFFDIO_COPY", addr))
			wake(addr);
	}
}

static void *handler_thread(void *arg)
{
	char *src_copy = malloc(ps);
	char *src_move = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)arg;
	if (!src_copy || src_move == MAP_FAILED) {
		hs.errors++;
		note(hs.first_err, "handler buffers: %s", strerror(errno));
		return NULL;
	}
	/* Runs until told to stop: faulting threads may still be waiting. */
	ktap_overlap_start(ov_handler);
	while (!atomic_load(&handler_stop)) {
		struct pollfd pfd = { .fd = uffd, .events = POLLIN };
		struct uffd_msg msg;
		ssize_t n;

		if (poll(&pfd, 1, 20) <= 0)
			continue;
		n = read(uffd, &msg, sizeof(msg));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			hs.errors++;
			note(hs.first_err, "read(uffd): %s", strerror(errno));
			continue;
		}
		if (n != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT) {
			hs.errors++;
			note(hs.first_err, "unexpected uffd message: %zd bytes, event %#x", n, msg.event);
			continue;
		}
		hs.msgs++;
		handle_fault(msg.arg.pagefault.address, src_copy, src_move);
	}
	ktap_overlap_stop(ov_handler);
	free(src_copy);
	munmap(src_move, ps);
	return NULL;
}

/* ------------------------------------------------------- fault threads */

/* Read-check one page and write a word back; SIGSEGV/SIGBUS are caught. */
static __attribute__((noinline)) void probe_page(struct fstat *st, int r, size_t page)
{
	volatile uint64_t *w = (volatile uint64_t *)(reg[r].addr + page * ps);

	st->probes++;
	if (sigsetjmp(probe_jb, 1)) {
		/* SIGSEGV: unmapped, PROT_NONE or read-only right now. */
		if (probe_sig == SIGBUS && !atomic_load(&closing))
			st->sigbus++;
		else
			st->segv++;
		return;
	}
	in_probe = 1;
	for (size_t i = 0; i < ps / 8; i++) {
		uint64_t got = w[i];

		if (got != pat(r, page, i)) {
			in_probe = 0;
			st->bad++;
			note(st->first_bad, "region %d page %zu word %zu: got %#llx want %#llx",
			     r, page, i, (unsigned long long)got,
			     (unsigned long long)pat(r, page, i));
			return;
		}
	}
	st->pages_ok++;
	ktap_overlap_op(ov_fault);
	/* Write fault too (the page may be missing again by now); same value. */
	w[1] = pat(r, page, 1);
	st->writes++;
	in_probe = 0;
}

static void *fault_thread(void *arg)
{
	struct fstat *st = arg;
	uint64_t rng = 0x1f2e3d4c5b6a7988ull ^ (uintptr_t)arg;

	while (!atomic_load(&go))
		sched_yield();
	ktap_overlap_start(ov_fault);
	/* Under slow emulation, still see both a COPY and a MOVE through. */
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !st->pages_ok ||
	     !__atomic_load_n(&hs.copies, __ATOMIC_RELAXED) ||
	     (have_move && !__atomic_load_n(&hs.moves, __ATOMIC_RELAXED))); it++) {
		int r = ktap_rand(&rng) % N_REGIONS;
		size_t page = ktap_rand(&rng) % R_PAGES;

		if (!atomic_load(&reg[r].dead))
			probe_page(st, r, page);
	}
	ktap_overlap_stop(ov_fault);
	return NULL;
}

/* ------------------------------------------------------------- writers */

#define WERR(w, what) do { \
	ws[w].errors++; \
	note(ws[w].first_err, "%s: %s", what, strerror(errno)); \
} while (0)

/* Re-create region r at its address: PROT_NONE, register, then RW. */
static void remap_region(int w, int r, int fixed)
{
	size_t len = R_PAGES * ps;
	char *a = reg[r].addr, *p;

	if (!fixed && munmap(a, len)) {
		WERR(w, "munmap region");
		return;
	}
	/* MAP_FIXED replaces atomically; NOREPLACE after munmap leaves a window. */
	p = mmap(a, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		 (fixed ? MAP_FIXED : MAP_FIXED_NOREPLACE), -1, 0);
	if (p == MAP_FAILED || p != a) {
		if (p == MAP_FAILED && errno == EEXIST) {
			/* Something else took the hole: stop using this region. */
			ws[w].eexist++;
			atomic_store(&reg[r].dead, 1);
			ktap_diag("region %d lost its address to another mapping; retired", r);
			return;
		}
		if (p != MAP_FAILED) {
			munmap(p, len);
			errno = EINVAL;
		}
		atomic_store(&reg[r].dead, 1);
		WERR(w, "re-mmap region");
		return;
	}
	if (do_register(a, len, NULL)) {
		WERR(w, "UFFDIO_REGISTER (re-mmap)");
		atomic_store(&reg[r].dead, 1);
		return;
	}
	if (mprotect(a, len, PROT_READ | PROT_WRITE))
		WERR(w, "mprotect RW after register");
	if (fixed)
		ws[w].remaps_fixed++;
	else
		ws[w].remaps_unmap++;
}

static void *writer_thread(void *arg)
{
	int w = (int)(uintptr_t)arg;	/* writer 0: copy regions, 1: move regions */
	uint64_t rng = 0x77 + w;

	while (!atomic_load(&go))
		sched_yield();
	ktap_overlap_start(ov_writer[w]);
	/* The first 10 iterations walk through every op once. */
	for (uint64_t it = 0; ktap_keep_going(deadline, it, it < 10); it++) {
		int r = 2 * w + ktap_rand(&rng) % 2;
		size_t a = ktap_rand(&rng) % R_PAGES;
		size_t n = 1 + ktap_rand(&rng) % (R_PAGES - a);
		unsigned op = it < 10 ? it : ktap_rand(&rng) % 10;
		char *base = reg[r].addr;

		if (atomic_load(&reg[r].dead))
			continue;
		if (op < 6) {
			/* Make pages missing again: the next touch is a uffd fault. */
			if (madvise(base + a * ps, n * ps, MADV_DONTNEED)) {
				WERR(w, "madvise(DONTNEED)");
			} else {
				ws[w].dontneed++;
				ktap_overlap_op(ov_writer[w]);
			}
		} else if (op < 8 && !reg[r].move) {
			if (mprotect(base + a * ps, n * ps, PROT_READ) ||
			    mprotect(base + a * ps, n * ps, PROT_READ | PROT_WRITE)) {
				WERR(w, "mprotect");
			} else {
				ws[w].mprotects++;
				ktap_overlap_op(ov_writer[w]);
			}
		} else {
			/* MOVE regions: keep UFFDIO_MOVE off the PROT_NONE window. */
			if (reg[r].move)
				pthread_rwlock_wrlock(&reg[r].remap_lock);
			remap_region(w, r, op == 9);
			if (reg[r].move)
				pthread_rwlock_unlock(&reg[r].remap_lock);
			ktap_overlap_op(ov_writer[w]);
		}
		/* Let faults through between writer ops (2 vCPUs). */
		if ((ws[w].dontneed & 15) == 0)
			sched_yield();
	}
	ktap_overlap_stop(ov_writer[w]);
	return NULL;
}

/* ---------------------------------------------------------------- main */

static int join_until(pthread_t t, double until)
{
	struct timespec ts;
	double left = until - ktap_now();

	if (left < 0)
		left = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)left;
	ts.tv_nsec += (long)((left - (time_t)left) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_timedjoin_np(t, NULL, &ts);
}

int main(int argc, char **argv)
{
	double dur = ktap_begin(argc, argv, 5 + 4);
	pthread_t fth[N_FAULTERS], wth[2], hth;
	int stuck = 0, nf = 0, nw = 0, ok;
	uint64_t ioctls = 0, probes = 0, pages_ok = 0, bad = 0, segv = 0, sigbus = 0;
	struct sigaction sa;

	ps = sysconf(_SC_PAGESIZE);
	ktap_diag("uffd_vs_writers: duration %.1fs, page size %zu", dur, ps);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fault_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);

	if (setup_uffd()) {
		ktap_result(0, "userfaultfd available (syscall + UFFDIO_API + REGISTER)");
		return ktap_bail("not run: userfaultfd unavailable");
	}
	for (int r = 0; r < N_REGIONS; r++) {
		reg[r].move = r >= 2 && have_move;
		pthread_rwlock_init(&reg[r].remap_lock, NULL);
		reg[r].addr = mmap(NULL, R_PAGES * ps, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (reg[r].addr == MAP_FAILED) {
			ktap_diag("mmap region: %s", strerror(errno));
			return ktap_bail("not run: mmap failed");
		}
		if (do_register(reg[r].addr, R_PAGES * ps, &ioctls)) {
			ktap_diag("UFFDIO_REGISTER(MISSING): %s", strerror(errno));
			ktap_result(0, "userfaultfd available (syscall + UFFDIO_API + REGISTER)");
			return ktap_bail("not run: UFFDIO_REGISTER failed");
		}
	}
	ktap_diag("registered ioctls %#llx", (unsigned long long)ioctls);
	if (!(ioctls & (1ULL << _UFFDIO_COPY))) {
		ktap_diag("UFFDIO_COPY not offered for anonymous MISSING ranges");
		ktap_result(0, "userfaultfd available (syscall + UFFDIO_API + REGISTER)");
		return ktap_bail("not run: UFFDIO_COPY not offered");
	}
	if (have_move && !(ioctls & (1ULL << _UFFDIO_MOVE))) {
		ktap_diag("feature MOVE reported but UFFDIO_MOVE not in register ioctls; not using it");
		have_move = 0;
		reg[2].move = reg[3].move = 0;
	}
	ktap_result(1, "userfaultfd available (syscall + UFFDIO_API + REGISTER)");

	ov_fault = ktap_overlap_kind("fault");
	ov_writer[0] = ktap_overlap_kind("writer_copy");
	ov_writer[1] = ktap_overlap_kind(have_move ? "writer_move" : "writer_copy2");
	ov_handler = ktap_overlap_kind("handler");
	deadline = ktap_now() + dur;
	if (pthread_create(&hth, NULL, handler_thread, NULL)) {
		ktap_diag("pthread_create handler failed");
		return ktap_bail("not run: pthread_create failed");
	}
	for (; nf < N_FAULTERS; nf++)
		if (pthread_create(&fth[nf], NULL, fault_thread, &fst[nf]))
			break;
	for (; nw < 2; nw++)
		if (pthread_create(&wth[nw], NULL, writer_thread, (void *)(uintptr_t)nw))
			break;
	if (nf < N_FAULTERS || nw < 2)
		ktap_diag("pthread_create failed (%d fault, %d writer threads)", nf, nw);
	atomic_store(&go, 1);

	for (int i = 0; i < nw; i++)
		if (join_until(wth[i], deadline + 2.0))
			stuck++;
	for (int i = 0; i < nf; i++)
		if (join_until(fth[i], deadline + 2.5))
			stuck++;
	atomic_store(&handler_stop, 1);
	join_until(hth, deadline + 3.0);
	if (stuck) {
		ktap_diag("%d thread(s) still running 2s after the deadline (blocked in a fault?)", stuck);
		/* Closing the uffd releases any fault still waiting on it. */
		atomic_store(&closing, 1);
		close(uffd);
		for (int i = 0; i < nf; i++)
			join_until(fth[i], deadline + 3.5);
	}

	for (int i = 0; i < nf; i++) {
		probes += fst[i].probes;
		pages_ok += fst[i].pages_ok;
		bad += fst[i].bad;
		segv += fst[i].segv;
		sigbus += fst[i].sigbus;
		if (fst[i].first_bad[0])
			ktap_diag("fault thread %d first mismatch: %s", i, fst[i].first_bad);
	}
	ktap_diag("fault threads: probes %llu, pages verified %llu, bad %llu, SIGSEGV (expected) %llu, SIGBUS %llu",
		  (unsigned long long)probes, (unsigned long long)pages_ok,
		  (unsigned long long)bad, (unsigned long long)segv, (unsigned long long)sigbus);
	ktap_diag("handler: msgs %llu, copies %llu, moves %llu (EBUSY->copy %llu), eexist %llu, enoent %llu, eagain %llu, wakes %llu, errors %llu",
		  (unsigned long long)hs.msgs, (unsigned long long)hs.copies,
		  (unsigned long long)hs.moves, (unsigned long long)hs.move_fallback,
		  (unsigned long long)hs.eexist, (unsigned long long)hs.enoent,
		  (unsigned long long)hs.eagain, (unsigned long long)hs.wakes,
		  (unsigned long long)hs.errors);
	if (hs.first_err[0])
		ktap_diag("  handler first error: %s", hs.first_err);

	ok = hs.copies > 0 && pages_ok > 0 && !bad && !sigbus && !hs.errors;
	ktap_result(ok, "UFFDIO_COPY resolved faults, copied data intact");
	if (!have_move)
		ktap_skip("kernel does not offer UFFDIO_MOVE", "UFFDIO_MOVE resolved faults, moved data intact");
	else
		ktap_result(hs.moves > 0 && !bad && !hs.errors,
			    "UFFDIO_MOVE resolved faults, moved data intact");

	for (int w = 0; w < 2; w++) {
		ktap_diag("writer %d (%s regions): dontneed %llu, mprotect toggles %llu, munmap+mmap remaps %llu, MAP_FIXED remaps %llu, eexist %llu, errors %llu",
			  w, w ? (have_move ? "move" : "copy") : "copy",
			  (unsigned long long)ws[w].dontneed, (unsigned long long)ws[w].mprotects,
			  (unsigned long long)ws[w].remaps_unmap,
			  (unsigned long long)ws[w].remaps_fixed,
			  (unsigned long long)ws[w].eexist, (unsigned long long)ws[w].errors);
		if (ws[w].first_err[0])
			ktap_diag("  writer %d first error: %s", w, ws[w].first_err);
	}
	ok = nw == 2 && !ws[0].errors && !ws[1].errors &&
	     ws[0].dontneed > 0 && ws[0].mprotects > 0 && ws[0].remaps_unmap + ws[0].remaps_fixed > 0 &&
	     ws[1].dontneed > 0 && ws[1].remaps_unmap + ws[1].remaps_fixed > 0;
	ktap_result(ok, "writers ran (dontneed/mprotect/munmap/re-mmap/re-register)");
	ktap_result(!stuck && nf == N_FAULTERS && probes > 0 && pages_ok > 0,
		    "fault threads did work and none got stuck");
	/* 6..9: faults, both writers and the handler ran at the same time. */
	ktap_overlap_report();
	return ktap_end();
}
