/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ktap.h - tiny KTAP emitter shared by the kmatrix guest tests.
 *
 * Every line goes to stdout (flushed at once, the host streams it over SSH)
 * and into an in-memory copy that ktap_end() writes to the optional result
 * file (tmp + fsync + rename, it travels back over virtiofs).
 *
 * Safety nets, because the point of these tests is to hit kernel bugs:
 *  - a watchdog thread ends the run at duration + KTAP_GRACE seconds, marks
 *    every test not yet reported as "not ok" and still writes the file;
 *  - SIGSEGV/SIGBUS/SIGABRT/SIGILL/SIGFPE do the same (best effort).
 */
#ifndef KMATRIX_KTAP_H
#define KMATRIX_KTAP_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* Seconds past the requested duration before the watchdog gives up. */
#define KTAP_GRACE 4.0

struct ktap_state {
	pthread_mutex_t lock;
	char *buf;		/* full KTAP text so far */
	size_t len, cap;
	int planned;		/* N from "1..N" */
	int next;		/* number of the next test line */
	int failed;		/* any "not ok" seen */
	int ended;		/* ktap_end()/watchdog already ran */
	const char *result_file;
	char tmp_path[4096];
};

static struct ktap_state ktap_g = { .lock = PTHREAD_MUTEX_INITIALIZER };

static inline double ktap_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Append raw bytes to the in-memory copy; caller holds the lock. */
static inline void ktap_append(const char *s, size_t n)
{
	if (ktap_g.len + n + 1 > ktap_g.cap) {
		size_t cap = ktap_g.cap ? ktap_g.cap * 2 : 65536;
		char *nb;

		while (cap < ktap_g.len + n + 1)
			cap *= 2;
		nb = realloc(ktap_g.buf, cap);
		if (!nb)
			return;	/* keep stdout going even if the copy is lost */
		ktap_g.buf = nb;
		ktap_g.cap = cap;
	}
	memcpy(ktap_g.buf + ktap_g.len, s, n);
	ktap_g.len += n;
	ktap_g.buf[ktap_g.len] = 0;
}

/* Signal-handler variant: never calls realloc, drops what does not fit. */
static inline void ktap_append_nogrow(const char *s, size_t n)
{
	if (ktap_g.buf && ktap_g.len + n + 1 <= ktap_g.cap) {
		memcpy(ktap_g.buf + ktap_g.len, s, n);
		ktap_g.len += n;
		ktap_g.buf[ktap_g.len] = 0;
	}
}

/* Emit one line (no trailing newline in fmt); caller holds the lock. */
static inline void ktap_vline_locked(const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s", prefix);

	if (n < 0)
		n = 0;
	if ((size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	n = strlen(line);
	/* Diagnostics must stay one line each. */
	for (int i = 0; i < n; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	if ((size_t)n < sizeof(line) - 1)
		line[n++] = '\n';
	else
		line[sizeof(line) - 2] = '\n', n = sizeof(line) - 1;
	ktap_append(line, n);
	fwrite(line, 1, n, stdout);
	fflush(stdout);
}

static inline void ktap_line_locked(const char *prefix, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ktap_vline_locked(prefix, fmt, ap);
	va_end(ap);
}

/* "# ..." diagnostic; safe from any thread. */
static inline __attribute__((format(printf, 1, 2))) void ktap_diag(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&ktap_g.lock);
	if (!ktap_g.ended) {
		va_start(ap, fmt);
		ktap_vline_locked("# ", fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&ktap_g.lock);
}

/* "ok N desc" / "not ok N desc"; returns ok so callers can chain. */
static inline __attribute__((format(printf, 2, 3))) int ktap_result(int ok, const char *fmt, ...)
{
	char desc[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&ktap_g.lock);
	if (!ktap_g.ended) {
		int n = ktap_g.next++;

		if (!ok)
			ktap_g.failed = 1;
		ktap_line_locked("", "%s %d %s", ok ? "ok" : "not ok", n, desc);
	}
	pthread_mutex_unlock(&ktap_g.lock);
	return ok;
}

/* "ok N desc # SKIP reason" - only for genuinely unavailable features. */
static inline __attribute__((format(printf, 2, 3))) void ktap_skip(const char *reason, const char *fmt, ...)
{
	char desc[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&ktap_g.lock);
	if (!ktap_g.ended) {
		int n = ktap_g.next++;

		ktap_line_locked("", "ok %d %s # SKIP %s", n, desc, reason);
	}
	pthread_mutex_unlock(&ktap_g.lock);
}

/* Write the collected text to result_file via tmp + fsync + rename. */
static inline void ktap_write_file_locked(void)
{
	int fd;

	if (!ktap_g.result_file || !ktap_g.buf)
		return;
	fd = open(ktap_g.tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		static const char msg[] = "ktap: cannot create result file\n";
		ssize_t r = write(2, msg, sizeof(msg) - 1);

		(void)r;
		return;
	}
	for (size_t off = 0; off < ktap_g.len;) {
		ssize_t w = write(fd, ktap_g.buf + off, ktap_g.len - off);

		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			break;
		}
		off += w;
	}
	fsync(fd);
	close(fd);
	rename(ktap_g.tmp_path, ktap_g.result_file);
}

/* Mark everything still unreported as failed; caller holds the lock. */
static inline void ktap_fail_rest_locked(const char *why)
{
	while (ktap_g.next <= ktap_g.planned) {
		ktap_line_locked("", "not ok %d %s", ktap_g.next, why);
		ktap_g.next++;
		ktap_g.failed = 1;
	}
}

/* Finish: fill in missing results, write the file, return exit status. */
static inline int ktap_end(void)
{
	int rc;

	pthread_mutex_lock(&ktap_g.lock);
	if (ktap_g.next <= ktap_g.planned)
		ktap_fail_rest_locked("test not reported (program bug)");
	ktap_g.ended = 1;
	ktap_write_file_locked();
	rc = ktap_g.failed ? 1 : 0;
	pthread_mutex_unlock(&ktap_g.lock);
	return rc;
}

/* Early exit: every test not yet reported fails with the given reason. */
static inline int ktap_bail(const char *why)
{
	pthread_mutex_lock(&ktap_g.lock);
	ktap_fail_rest_locked(why);
	pthread_mutex_unlock(&ktap_g.lock);
	return ktap_end();
}

/* ------------------------------------------------------ overlap evidence
 *
 * A stress test only proves something when its thread kinds really ran at
 * the same time. Each kind of thread registers once (ktap_overlap_kind()),
 * brackets its loop with ktap_overlap_start()/ktap_overlap_stop() and calls
 * ktap_overlap_op() after each operation. An operation counts only while the
 * window is open: from the moment every kind has a thread in its loop ("all
 * started") until the first kind has none left ("first stopped"); the window
 * never reopens. ktap_overlap_report() prints the one line the host parses
 *   # kmatrix-overlap: window=<s.mmm> <kind>=<ops> ...
 * and one test per kind, "not ok" when the kind did nothing in the window.
 *
 * The state lives in a MAP_SHARED anonymous page set up by ktap_begin(), so
 * kinds running in a forked child count in the same window.
 */
#define KTAP_OVERLAP_MAX	16
#define KTAP_OVERLAP_NAME	32

enum { KTAP_OV_WAIT, KTAP_OV_OPEN, KTAP_OV_CLOSED };

struct ktap_overlap {
	_Atomic int state;
	_Atomic int nkinds;
	_Atomic int nstarted;		/* kinds that have had a thread in their loop */
	_Atomic double t_open, t_close;
	struct {
		_Atomic uint64_t ops;	/* alone on its cache line: hot */
		char pad[64 - sizeof(uint64_t)];
	} k[KTAP_OVERLAP_MAX];
	_Atomic int active[KTAP_OVERLAP_MAX];
	_Atomic int started[KTAP_OVERLAP_MAX];
	char name[KTAP_OVERLAP_MAX][KTAP_OVERLAP_NAME];
};

static struct ktap_overlap *ktap_ov;

/* Register a kind before any thread of it starts; returns its index. */
static inline int ktap_overlap_kind(const char *name)
{
	int k;

	if (!ktap_ov)
		return -1;
	k = atomic_fetch_add(&ktap_ov->nkinds, 1);
	if (k >= KTAP_OVERLAP_MAX) {
		fprintf(stderr, "ktap: more than %d overlap kinds\n", KTAP_OVERLAP_MAX);
		abort();
	}
	snprintf(ktap_ov->name[k], KTAP_OVERLAP_NAME, "%s", name);
	return k;
}

static inline int ktap_overlap_open(void)
{
	return ktap_ov && atomic_load_explicit(&ktap_ov->state, memory_order_relaxed) == KTAP_OV_OPEN;
}

/* A thread of kind k enters its loop. */
static inline void ktap_overlap_start(int k)
{
	if (!ktap_ov || k < 0)
		return;
	atomic_fetch_add(&ktap_ov->active[k], 1);
	if (atomic_exchange(&ktap_ov->started[k], 1) == 0 &&
	    atomic_fetch_add(&ktap_ov->nstarted, 1) + 1 == atomic_load(&ktap_ov->nkinds)) {
		int w = KTAP_OV_WAIT;
		double t = ktap_now();

		/* Opens only if no kind has stopped meanwhile (then it stays closed). */
		if (atomic_compare_exchange_strong(&ktap_ov->state, &w, KTAP_OV_OPEN))
			atomic_store(&ktap_ov->t_open, t);
	}
}

/* A thread of kind k leaves its loop; the kind's last one closes the window. */
static inline void ktap_overlap_stop(int k)
{
	if (!ktap_ov || k < 0)
		return;
	if (atomic_fetch_sub(&ktap_ov->active[k], 1) == 1) {
		int st = atomic_load(&ktap_ov->state);

		/* A kind gone before the others started: the window never opens. */
		while (st != KTAP_OV_CLOSED &&
		       !atomic_compare_exchange_weak(&ktap_ov->state, &st, KTAP_OV_CLOSED))
			;
		if (st == KTAP_OV_OPEN)
			atomic_store(&ktap_ov->t_close, ktap_now());
	}
}

/* One operation of kind k finished; counted only inside the window. */
static inline void ktap_overlap_add(int k, uint64_t n)
{
	if (ktap_overlap_open() && k >= 0)
		atomic_fetch_add_explicit(&ktap_ov->k[k].ops, n, memory_order_relaxed);
}

static inline void ktap_overlap_op(int k)
{
	ktap_overlap_add(k, 1);
}

static inline uint64_t ktap_overlap_ops(int k)
{
	return ktap_ov && k >= 0 ? atomic_load_explicit(&ktap_ov->k[k].ops, memory_order_relaxed) : 0;
}

/* 1 while some registered kind has no operation in the window yet. */
static inline int ktap_overlap_missing(void)
{
	int n = ktap_ov ? atomic_load(&ktap_ov->nkinds) : 0;

	for (int k = 0; k < n; k++)
		if (!ktap_overlap_ops(k))
			return 1;
	return 0;
}

static inline double ktap_overlap_window(void)
{
	double o, c;

	if (!ktap_ov || !atomic_load(&ktap_ov->t_open))
		return 0;
	o = atomic_load(&ktap_ov->t_open);
	c = atomic_load(&ktap_ov->t_close);
	return (c ? c : ktap_now()) - o;
}

/* The machine line; caller holds ktap_g.lock. */
static inline void ktap_overlap_line_locked(void)
{
	char line[1024];
	size_t n;
	int nk;

	if (!ktap_ov)
		return;
	nk = atomic_load(&ktap_ov->nkinds);
	n = snprintf(line, sizeof(line), "kmatrix-overlap: window=%.3f", ktap_overlap_window());
	for (int k = 0; k < nk && n < sizeof(line); k++)
		n += snprintf(line + n, sizeof(line) - n, " %s=%llu", ktap_ov->name[k],
			      (unsigned long long)ktap_overlap_ops(k));
	ktap_line_locked("# ", "%s", line);
}

/*
 * Print the overlap line and one result per kind ("<kind> overlapped the
 * other kinds"). Call once, after every thread has been joined. Returns the
 * number of kinds without overlap.
 */
static int ktap_overlap_printed;

static inline int ktap_overlap_report(void)
{
	int nk = ktap_ov ? atomic_load(&ktap_ov->nkinds) : 0, bad = 0;

	pthread_mutex_lock(&ktap_g.lock);
	if (!ktap_g.ended)
		ktap_overlap_line_locked();
	ktap_overlap_printed = 1;
	pthread_mutex_unlock(&ktap_g.lock);
	for (int k = 0; k < nk; k++) {
		uint64_t ops = ktap_overlap_ops(k);

		if (ops)
			ktap_result(1, "%s overlapped the other kinds", ktap_ov->name[k]);
		else
			ktap_result(0, "%s overlapped the other kinds # none", ktap_ov->name[k]);
		bad += !ops;
	}
	return bad;
}

static double ktap_watchdog_at;

static void *ktap_watchdog(void *arg)
{
	(void)arg;
	for (;;) {
		double left = ktap_watchdog_at - ktap_now();
		struct timespec ts;

		if (left <= 0)
			break;
		if (left > 0.2)
			left = 0.2;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(left * 1e9);
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&ktap_g.lock);
	if (!ktap_g.ended) {
		ktap_line_locked("# ", "watchdog: run exceeded its time budget, threads stuck (kernel hang?)");
		if (!ktap_overlap_printed)
			ktap_overlap_line_locked();
		ktap_fail_rest_locked("timed out (watchdog)");
		ktap_g.ended = 1;
		ktap_write_file_locked();
		_exit(1);
	}
	pthread_mutex_unlock(&ktap_g.lock);
	return NULL;
}

/* Append a decimal number to a line being built without stdio. */
static inline size_t ktap_putnum(char *dst, size_t at, long v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = '0' + v % 10;
		v /= 10;
	} while (v && n < (int)sizeof(tmp));
	while (n)
		dst[at++] = tmp[--n];
	return at;
}

static inline size_t ktap_putstr(char *dst, size_t at, const char *s)
{
	while (*s)
		dst[at++] = *s++;
	return at;
}

/*
 * Crash path, async-signal-safe as far as it can be: no locks, no stdio.
 * Reports the remaining tests as failed so the plan still adds up.
 */
static inline size_t ktap_puthex(char *dst, size_t at, uint64_t v)
{
	at = ktap_putstr(dst, at, "0x");
	for (int s = 60; s >= 0; s -= 4)
		dst[at++] = "0123456789abcdef"[(v >> s) & 15];
	return at;
}

/* Where the faulting instruction was, when the arch's context says it. */
static inline uint64_t ktap_crash_ip(void *uc)
{
#if defined(__x86_64__) && defined(REG_RIP)
	return (uint64_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	return (uint64_t)((ucontext_t *)uc)->uc_mcontext.pc;
#else
	(void)uc;
	return 0;
#endif
}

static void ktap_crash(int sig, siginfo_t *si, void *uc)
{
	char line[160];
	size_t n;
	ssize_t r;

	signal(sig, SIG_DFL);
	if (ktap_g.ended)
		_exit(1);
	ktap_g.ended = 1;
	n = ktap_putstr(line, 0, "# fatal signal ");
	n = ktap_putnum(line, n, sig);
	n = ktap_putstr(line, n, " in test program");
	/* The address and instruction say whether the program or the kernel broke it. */
	if (si) {
		n = ktap_putstr(line, n, " (address ");
		n = ktap_puthex(line, n, (uint64_t)(uintptr_t)si->si_addr);
		n = ktap_putstr(line, n, ", code ");
		n = ktap_putnum(line, n, si->si_code);
		if (uc && ktap_crash_ip(uc)) {
			n = ktap_putstr(line, n, ", ip ");
			n = ktap_puthex(line, n, ktap_crash_ip(uc));
		}
		n = ktap_putstr(line, n, ")");
	}
	n = ktap_putstr(line, n, "\n");
	r = write(1, line, n);
	ktap_append_nogrow(line, n);
	while (ktap_g.next <= ktap_g.planned) {
		n = ktap_putstr(line, 0, "not ok ");
		n = ktap_putnum(line, n, ktap_g.next++);
		n = ktap_putstr(line, n, " crashed (signal ");
		n = ktap_putnum(line, n, sig);
		n = ktap_putstr(line, n, ")\n");
		r = write(1, line, n);
		ktap_append_nogrow(line, n);
	}
	(void)r;
	ktap_write_file_locked();
	_exit(1);
}

/*
 * Parse argv, print the header, arm the watchdog and crash handlers.
 * Returns the duration in seconds.
 */
static inline double ktap_begin(int argc, char **argv, int planned)
{
	double dur;
	pthread_t wd;
	char *end;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s <duration_seconds> [result_file]\n", argv[0]);
		exit(2);
	}
	dur = strtod(argv[1], &end);
	if (*end || dur <= 0 || dur > 86400) {
		fprintf(stderr, "%s: bad duration '%s'\n", argv[0], argv[1]);
		exit(2);
	}
	ktap_g.planned = planned;
	ktap_g.next = 1;
	ktap_ov = mmap(NULL, sizeof(*ktap_ov), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);
	if (ktap_ov == MAP_FAILED)
		ktap_ov = NULL;	/* overlap kinds then count nothing and fail */
	if (argc == 3) {
		ktap_g.result_file = argv[2];
		snprintf(ktap_g.tmp_path, sizeof(ktap_g.tmp_path), "%s.tmp", argv[2]);
	}
	pthread_mutex_lock(&ktap_g.lock);
	ktap_line_locked("", "TAP version 13");
	ktap_line_locked("", "1..%d", planned);
	pthread_mutex_unlock(&ktap_g.lock);

	{
		struct sigaction act;
		const int fatal[] = { SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE };

		memset(&act, 0, sizeof(act));
		act.sa_sigaction = ktap_crash;
		act.sa_flags = SA_SIGINFO;
		sigemptyset(&act.sa_mask);
		for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
			sigaction(fatal[i], &act, NULL);
	}
	signal(SIGPIPE, SIG_IGN);	/* sockets report EPIPE instead */

	ktap_watchdog_at = ktap_now() + dur + KTAP_GRACE;
	if (pthread_create(&wd, NULL, ktap_watchdog, NULL) == 0)
		pthread_detach(wd);
	return dur;
}

/*
 * Worker loop condition. Until the deadline: go on. After it, go on only
 * while the overlap window is still open (extra work after some kind has
 * stopped proves nothing) and only to fix a shortfall: a kind with no
 * operation in the window yet, or, for the caller, need != 0 and fewer than
 * KTAP_MIN_ITERS iterations. Bounded by KTAP_OVERTIME seconds in any case,
 * well inside the watchdog's KTAP_GRACE. A program with no overlap kinds
 * keeps the old rule (need && iter < KTAP_MIN_ITERS).
 */
#define KTAP_MIN_ITERS	200
#define KTAP_OVERTIME	1.5
static inline int ktap_keep_going(double deadline, uint64_t iter, int need)
{
	double now = ktap_now();

	if (now < deadline)
		return 1;
	if (!ktap_ov || !atomic_load(&ktap_ov->nkinds))
		return need && iter < KTAP_MIN_ITERS;
	if (!ktap_overlap_open() || now >= deadline + KTAP_OVERTIME)
		return 0;
	return ktap_overlap_missing() || (need && iter < KTAP_MIN_ITERS);
}

/* Small xorshift PRNG, one state per thread. */
static inline uint64_t ktap_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* errno's name for the answers a kernel without a feature gives, else its text. */
static inline const char *ktap_errname(int e)
{
	switch (e) {
	case EINVAL: return "EINVAL";
	case ENOENT: return "ENOENT";
	case ENOSYS: return "ENOSYS";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENODEV: return "ENODEV";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default: return strerror(e);
	}
}

#define KTAP_THP_SYS "/sys/kernel/mm/transparent_hugepage"

/*
 * 1 when the kernel has no transparent hugepages (CONFIG_TRANSPARENT_HUGEPAGE
 * off, as in the default matrix), with the kernel's own answers in why: no THP
 * directory in sysfs, and madvise() refusing MADV_HUGEPAGE with EINVAL (it
 * knows the advice only with THP built). Both must say so: a kernel that takes
 * the advice has THP, and then a missing sysfs file is the program's failure,
 * not a reason to skip.
 */
static inline int ktap_thp_missing(char *why, size_t n)
{
	size_t ps = sysconf(_SC_PAGESIZE);
	int sys_err, madv_err = 0;
	char *p;

	if (access(KTAP_THP_SYS, F_OK) == 0)
		return 0;
	sys_err = errno;
	p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	if (madvise(p, ps, MADV_HUGEPAGE))
		madv_err = errno;
	munmap(p, ps);
	if (madv_err != EINVAL)
		return 0;
	snprintf(why, n, "no transparent hugepages: MADV_HUGEPAGE: %s, no %s (%s): CONFIG_TRANSPARENT_HUGEPAGE off",
		 ktap_errname(madv_err), KTAP_THP_SYS, ktap_errname(sys_err));
	return 1;
}

/* Record the first message of its kind only (later ones are just counted). */
static inline void note(char *dst, const char *fmt, ...)
{
	va_list ap;

	if (dst[0])
		return;
	va_start(ap, fmt);
	vsnprintf(dst, 256, fmt, ap);
	va_end(ap);
}

#endif /* KMATRIX_KTAP_H */
