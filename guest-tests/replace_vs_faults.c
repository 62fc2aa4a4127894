// SPDX-License-Identifier: GPL-2.0
/*
 * replace_vs_faults - faults on the very VMA that other threads unmap,
 * replace, move, lock and advise.
 *
 * Today's other programs fault next to the VMAs they change, or change a
 * scratch VMA nobody faults on. Here the fault threads store into exactly the
 * target VMA T (one word a page, a stamp of (thread, generation, page)) and
 * read it back, while two writer threads take turns (one op at a time, under
 * a mutex) changing T itself:
 *
 *   remap   munmap(T) + MAP_FIXED_NOREPLACE re-mmap, MAP_FIXED replace,
 *           mremap move T -> D and back, mremap(MREMAP_DONTUNMAP) T -> D
 *   advise  mlock + munlock, MADV_POPULATE_WRITE, MADV_FREE on a sub-range,
 *           MADV_GUARD_INSTALL on a sub-range + MADV_GUARD_REMOVE
 *
 * SIGSEGV is caught (sigsetjmp) and checked against what the writers did.
 * The writers keep a sequence count, odd while they are inside a call, and
 * a per-page state (mapped / unmapped / guard). A fault thread reads it
 * before and after its access:
 *   - no writer call overlapped: a mapped page must take the store and read
 *     it back; an unmapped or guarded page must raise SIGSEGV;
 *   - a call overlapped: SIGSEGV or a zero read-back are allowed, any other
 *     value (another page's or generation's stamp) is corruption.
 * After each call the writer parks the fault threads and checks the content
 * against the last store each page took: a move, mlock, munlock or
 * POPULATE_WRITE must preserve it exactly (a store that completed while the
 * VMA was being moved must have moved with it: losing it is the bug a
 * missing vma_start_write() on the mremap path causes); DONTUNMAP leaves it
 * in T or in D; munmap, replace, MADV_FREE and guards may only zero it.
 *
 * Optional features (MREMAP_DONTUNMAP 5.7, MADV_POPULATE_WRITE 5.14,
 * MADV_GUARD_INSTALL 6.13) are SKIP with the reason when the kernel answers
 * EINVAL; mremap, mlock, munmap and MADV_FREE are required.
 */
#define _GNU_SOURCE
#include "ktap.h"

#include <setjmp.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif

#define N_FAULT		2
#define TP		16	/* pages of T (and of D) */
#define MAGIC		0x5256000000000000ull	/* "RV" */
#define GEN_MASK	0x000000fffffff000ull
#define PAUSE_WAIT	2.0	/* seconds the writer waits for faults to park */

enum { ST_MAPPED, ST_UNMAPPED, ST_GUARD };
enum { OP_UNMAP, OP_REPLACE, OP_MOVE, OP_DONTUNMAP, OP_MLOCK, OP_POPULATE, OP_FREE, OP_GUARD,
       N_OPS };
static const char *const op_name[N_OPS] = {
	"munmap+mmap", "MAP_FIXED replace", "mremap move", "MREMAP_DONTUNMAP",
	"mlock+munlock", "MADV_POPULATE_WRITE", "MADV_FREE", "guard install+remove",
};

static size_t ps;
static double deadline;
static char *T, *D;
static atomic_int go;

/* Writer side: sequence count (odd inside a call) and per-page state. */
static atomic_ulong wseq;
static _Atomic int state[TP];
static pthread_mutex_t op_lock = PTHREAD_MUTEX_INITIALIZER;
static int unsupported[N_OPS];	/* EINVAL from the kernel: feature missing */

/* Parking, so the writer can check contents with no store in flight. */
static atomic_int pause_req, parked, faulters;

/* Last generation each page took (0: none since its content was zeroed). */
static _Atomic uint64_t last_gen[TP];

struct fstat {
	uint64_t stores, readbacks, segv, segv_overlap, zero_overlap, bad;
	char first_bad[256];
};
static struct fstat fst[N_FAULT];

static struct {
	uint64_t ops[N_OPS], verified, bad, errors, park_timeouts;
	char first_bad[256], first_err[256];
} wr;

static int ov_fault, ov_remap, ov_advise;

static void wait_go(void)
{
	while (!atomic_load(&go))
		sched_yield();
}

static inline uint64_t stamp(int owner, uint64_t gen, size_t page)
{
	return MAGIC ^ ((uint64_t)owner << 40) ^ ((gen << 12) & GEN_MASK) ^ ((uint64_t)page << 2);
}

/* Generation of a stamp of (owner, page), 0 for a zero word, -1 otherwise. */
static int64_t gen_of(uint64_t v, int owner, size_t page)
{
	uint64_t x;

	if (!v)
		return 0;
	x = v ^ stamp(owner, 0, page);
	return x & ~GEN_MASK ? -1 : (int64_t)(x >> 12);
}

static inline volatile uint64_t *slot(char *base, size_t p)
{
	return (volatile uint64_t *)(base + p * ps);
}

/* ---------------------------------------------------------------- faults */

static __thread sigjmp_buf jb;
static __thread volatile int in_access;

static void on_fault(int sig)
{
	if (in_access) {
		in_access = 0;
		siglongjmp(jb, sig);
	}
	ktap_crash(sig, NULL, NULL);
}

static void park_if_asked(void)
{
	if (!atomic_load(&pause_req))
		return;
	atomic_fetch_add(&parked, 1);
	while (atomic_load(&pause_req))
		sched_yield();
	atomic_fetch_sub(&parked, 1);
}

/* Store v into page p, note it, read it back; the signal number or 0. */
static __attribute__((noinline)) int access_page(size_t p, uint64_t v, uint64_t gen, int *stored,
						 uint64_t *r)
{
	volatile int done = 0;
	int sig;

	*r = 0;
	sig = sigsetjmp(jb, 1);
	if (!sig) {
		in_access = 1;
		*slot(T, p) = v;
		done = 1;
		atomic_store(&last_gen[p], gen);
		*r = *slot(T, p);
		in_access = 0;
	}
	*stored = done;
	return sig;
}

static void *fault_thread(void *arg)
{
	int me = (int)(uintptr_t)arg;
	struct fstat *st = &fst[me];
	uint64_t rng = 0xfa017ull + me, gen = 0;

	wait_go();
	ktap_overlap_start(ov_fault);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !st->stores); it++) {
		size_t p = (ktap_rand(&rng) % (TP / N_FAULT)) * N_FAULT + me;
		unsigned long s1, s2;
		int stable, pstate, stored, sig;
		uint64_t v, r;

		park_if_asked();
		gen++;
		v = stamp(me, gen, p);
		s1 = atomic_load(&wseq);
		pstate = atomic_load(&state[p]);
		sig = access_page(p, v, gen, &stored, &r);
		s2 = atomic_load(&wseq);
		stable = !(s1 & 1) && s1 == s2;
		if (sig && sig != SIGSEGV) {
			st->bad++;
			note(st->first_bad, "page %zu: signal %d (only SIGSEGV is expected)", p, sig);
			continue;
		}
		if (sig) {
			st->segv++;
			if (!stable) {
				st->segv_overlap++;
			} else if (pstate == ST_MAPPED) {
				st->bad++;
				note(st->first_bad, "page %zu: SIGSEGV on a mapped page, no writer call in flight (%s)",
				     p, stored ? "read-back" : "store");
			}
			if (stored)
				st->stores++;
			continue;
		}
		st->stores++;
		st->readbacks++;
		ktap_overlap_op(ov_fault);
		if (stable && pstate != ST_MAPPED) {
			st->bad++;
			note(st->first_bad, "page %zu: store into an %s page succeeded, no writer call in flight",
			     p, pstate == ST_GUARD ? "guarded" : "unmapped");
		} else if (r != v && !(r == 0 && !stable)) {
			st->bad++;
			note(st->first_bad, "page %zu: stored %#llx, read back %#llx (%s)", p,
			     (unsigned long long)v, (unsigned long long)r,
			     stable ? "no writer call in flight" : "during a writer call");
		} else if (r != v) {
			st->zero_overlap++;
		}
	}
	atomic_fetch_sub(&faulters, 1);
	ktap_overlap_stop(ov_fault);
	return NULL;
}

/* --------------------------------------------------------------- writers */

static inline void call_begin(void)
{
	atomic_fetch_add(&wseq, 1);
}

static inline void call_end(void)
{
	atomic_fetch_add(&wseq, 1);
}

static void set_state(size_t from, size_t n, int s)
{
	for (size_t p = from; p < from + n; p++)
		atomic_store(&state[p], s);
}

#define WERR(what) do { \
	wr.errors++; \
	note(wr.first_err, "%s: %s", what, strerror(errno)); \
} while (0)

/* Park every fault thread still running; 0 if they all parked in time. */
static int park_faults(void)
{
	double end = ktap_now() + PAUSE_WAIT;

	atomic_store(&pause_req, 1);
	while (atomic_load(&parked) < atomic_load(&faulters)) {
		if (ktap_now() > end) {
			wr.park_timeouts++;
			return -1;
		}
		sched_yield();
	}
	return 0;
}

static void unpark_faults(void)
{
	atomic_store(&pause_req, 0);
}

enum { KEEP, ZERO_OK, EITHER_TD, ZERO_OK_REDIRTY };

/*
 * Check region X (T or D) against last_gen[] with the faults parked.
 * KEEP: exactly the last store; ZERO_OK: zero or the last store (then
 * last_gen follows what is there); EITHER_TD: T holds it, or T is zero and D
 * holds it (MREMAP_DONTUNMAP). ZERO_OK_REDIRTY also writes the value back, so
 * a MADV_FREE page is dirty again and reclaim can not zero it later, under a
 * KEEP check.
 */
static void verify(char *x, int how, const char *after)
{
	for (size_t p = 0; p < TP; p++) {
		int owner = p % N_FAULT;
		uint64_t want = atomic_load(&last_gen[p]);
		int64_t g, gd = 0;

		if (atomic_load(&state[p]) != ST_MAPPED)
			continue;
		g = gen_of(*slot(x, p), owner, p);
		if (how == EITHER_TD && g == 0)
			gd = gen_of(*slot(D, p), owner, p);
		wr.verified++;
		if (g < 0 || gd < 0 ||
		    (how == KEEP && (uint64_t)g != want) ||
		    (how == ZERO_OK && g && (uint64_t)g != want) ||
		    (how == EITHER_TD && (uint64_t)g != want && (uint64_t)gd != want)) {
			wr.bad++;
			note(wr.first_bad, "after %s: page %zu holds %#llx (generation %lld), last store was generation %llu%s",
			     after, p, (unsigned long long)*slot(x, p), (long long)g,
			     (unsigned long long)want, g < 0 ? ": not a stamp of this page" : "");
			atomic_store(&last_gen[p], g > 0 ? (uint64_t)g : 0);
			continue;
		}
		if (how != KEEP)
			atomic_store(&last_gen[p], (uint64_t)g);
		if (how == ZERO_OK_REDIRTY)
			*slot(x, p) = *slot(x, p);
	}
}

/* Park, check, go on. */
static void park_verify(char *x, int how, const char *after)
{
	if (park_faults() == 0)
		verify(x, how, after);
	else
		note(wr.first_err, "fault threads did not park within %.0f s after %s", PAUSE_WAIT, after);
	unpark_faults();
}

/* A short breath in an intermediate state, so faults meet it outside a call. */
static void breathe(void)
{
	usleep(200);
}

/* EINVAL from an optional feature: mark it missing, once. */
static int optional_missing(int op)
{
	if (errno != EINVAL)
		return 0;
	if (!unsupported[op])
		ktap_diag("%s: EINVAL, the kernel lacks it; its case is skipped", op_name[op]);
	unsupported[op] = 1;
	return 1;
}

static void do_op(int op, uint64_t *rng)
{
	size_t len = TP * ps, a = ktap_rand(rng) % TP, n = 1 + ktap_rand(rng) % (TP - a);
	char *p;
	int err;

	switch (op) {
	case OP_UNMAP:
		call_begin();
		err = munmap(T, len);
		if (!err)
			set_state(0, TP, ST_UNMAPPED);
		call_end();
		if (err) {
			WERR("munmap T");
			return;
		}
		breathe();
		call_begin();
		p = mmap(T, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			 -1, 0);
		if (p == T)
			set_state(0, TP, ST_MAPPED);
		call_end();
		if (p != T) {
			/* Nothing else in this program maps while it runs: a real error. */
			WERR("re-mmap T after munmap");
			return;
		}
		park_verify(T, ZERO_OK, "munmap + re-mmap");
		break;
	case OP_REPLACE:
		call_begin();
		p = mmap(T, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		call_end();
		if (p != T) {
			WERR("MAP_FIXED replace of T");
			return;
		}
		park_verify(T, ZERO_OK, "MAP_FIXED replace");
		break;
	case OP_MOVE:
		call_begin();
		p = mremap(T, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, D);
		if (p == D)
			set_state(0, TP, ST_UNMAPPED);
		call_end();
		if (p != D) {
			WERR("mremap T -> D");
			return;
		}
		/* Every store that completed before or during the move is in D. */
		park_verify(D, KEEP, "mremap move T -> D");
		breathe();
		call_begin();
		p = mremap(D, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, T);
		if (p == T)
			set_state(0, TP, ST_MAPPED);
		call_end();
		if (p != T) {
			WERR("mremap D -> T");
			return;
		}
		park_verify(T, KEEP, "mremap move D -> T");
		break;
	case OP_DONTUNMAP:
		if (unsupported[op])
			return;
		call_begin();
		p = mremap(T, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, D);
		call_end();
		if (p != D) {
			if (!optional_missing(op))
				WERR("mremap(MREMAP_DONTUNMAP) T -> D");
			return;
		}
		park_verify(T, EITHER_TD, "MREMAP_DONTUNMAP");
		if (munmap(D, len))
			WERR("munmap D");
		break;
	case OP_MLOCK:
		call_begin();
		err = mlock(T, len);
		call_end();
		if (err) {
			WERR("mlock T");
			return;
		}
		breathe();
		call_begin();
		err = munlock(T, len);
		call_end();
		if (err) {
			WERR("munlock T");
			return;
		}
		park_verify(T, KEEP, "mlock + munlock");
		break;
	case OP_POPULATE:
		if (unsupported[op])
			return;
		call_begin();
		err = madvise(T, len, MADV_POPULATE_WRITE);
		call_end();
		if (err) {
			if (!optional_missing(op))
				WERR("madvise(MADV_POPULATE_WRITE)");
			return;
		}
		park_verify(T, KEEP, "MADV_POPULATE_WRITE");
		break;
	case OP_FREE:
		call_begin();
		err = madvise(T + a * ps, n * ps, MADV_FREE);
		call_end();
		if (err) {
			WERR("madvise(MADV_FREE)");
			return;
		}
		park_verify(T, ZERO_OK_REDIRTY, "MADV_FREE");
		break;
	case OP_GUARD:
		if (unsupported[op])
			return;
		call_begin();
		err = madvise(T + a * ps, n * ps, MADV_GUARD_INSTALL);
		if (!err)
			set_state(a, n, ST_GUARD);
		call_end();
		if (err) {
			if (!optional_missing(op))
				WERR("madvise(MADV_GUARD_INSTALL)");
			return;
		}
		breathe();
		call_begin();
		err = madvise(T, len, MADV_GUARD_REMOVE);
		if (!err)
			set_state(0, TP, ST_MAPPED);
		call_end();
		if (err) {
			WERR("madvise(MADV_GUARD_REMOVE)");
			return;
		}
		park_verify(T, ZERO_OK, "guard install + remove");
		break;
	}
	wr.ops[op]++;
}

static void *writer_thread(void *arg)
{
	int advise = arg != NULL, k = advise ? ov_advise : ov_remap, base = advise ? OP_MLOCK : 0;
	uint64_t rng = 0x3e9ull + advise;

	wait_go();
	ktap_overlap_start(k);
	/* The first rounds walk through every op once. */
	for (uint64_t it = 0; ktap_keep_going(deadline, it, it < 4); it++) {
		int op = base + (int)(it < 4 ? it : ktap_rand(&rng) % 4);
		uint64_t before = wr.ops[op];

		pthread_mutex_lock(&op_lock);
		do_op(op, &rng);
		pthread_mutex_unlock(&op_lock);
		if (wr.ops[op] != before)
			ktap_overlap_op(k);
		sched_yield();	/* let the other writer have a turn */
	}
	ktap_overlap_stop(k);
	return NULL;
}

/* ------------------------------------------------------------------ main */

static int setup(void)
{
	/* [T][gap][D][tail]: gap and tail stay PROT_NONE, D starts as a hole. */
	char *r = mmap(NULL, 4 * TP * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (r == MAP_FAILED) {
		ktap_diag("mmap reservation: %s", strerror(errno));
		return -1;
	}
	T = r;
	D = r + 2 * TP * ps;
	if (mmap(T, TP * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
	    T) {
		ktap_diag("mmap T: %s", strerror(errno));
		return -1;
	}
	if (munmap(D, TP * ps)) {
		ktap_diag("munmap D: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void result_op(int op, const char *what)
{
	if (unsupported[op])
		ktap_skip("kernel answers EINVAL", "%s raced the faults", what);
	else
		ktap_result(wr.ops[op] > 0, "%s raced the faults", what);
}

int main(int argc, char **argv)
{
	double dur = ktap_begin(argc, argv, 8 + 3);
	pthread_t fth[N_FAULT], wth[2];
	uint64_t stores = 0, rb = 0, segv = 0, segv_ov = 0, zero_ov = 0, bad = 0;
	struct sigaction sa;
	int nf = 0, nw = 0;

	ps = sysconf(_SC_PAGESIZE);
	ktap_diag("replace_vs_faults: duration %.1fs, page size %zu, %d fault threads on a %d-page VMA",
		  dur, ps, N_FAULT, TP);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	if (setup())
		return ktap_bail("not run: setup failed");
	ov_fault = ktap_overlap_kind("fault");
	ov_remap = ktap_overlap_kind("remap");
	ov_advise = ktap_overlap_kind("advise");
	atomic_store(&faulters, N_FAULT);
	deadline = ktap_now() + dur;
	for (; nf < N_FAULT; nf++)
		if (pthread_create(&fth[nf], NULL, fault_thread, (void *)(uintptr_t)nf))
			break;
	atomic_store(&faulters, nf);
	for (; nw < 2; nw++)
		if (pthread_create(&wth[nw], NULL, writer_thread, (void *)(uintptr_t)nw))
			break;
	if (nf < N_FAULT || nw < 2)
		ktap_diag("pthread_create failed (%d fault, %d writer threads)", nf, nw);
	atomic_store(&go, 1);
	for (int i = 0; i < nw; i++)
		pthread_join(wth[i], NULL);
	unpark_faults();
	for (int i = 0; i < nf; i++)
		pthread_join(fth[i], NULL);

	/* 1: what each access found matches what the writers were doing. */
	for (int i = 0; i < nf; i++) {
		stores += fst[i].stores;
		rb += fst[i].readbacks;
		segv += fst[i].segv;
		segv_ov += fst[i].segv_overlap;
		zero_ov += fst[i].zero_overlap;
		bad += fst[i].bad;
		if (fst[i].first_bad[0])
			ktap_diag("fault thread %d first finding: %s", i, fst[i].first_bad);
	}
	ktap_diag("faults: stores %llu, read back %llu, SIGSEGV %llu (%llu during a writer call), zero read-backs during a call %llu, bad %llu",
		  (unsigned long long)stores, (unsigned long long)rb, (unsigned long long)segv,
		  (unsigned long long)segv_ov, (unsigned long long)zero_ov, (unsigned long long)bad);
	ktap_result(nf == N_FAULT && rb > 0 && segv > 0 && !bad,
		    "faults on the target VMA: stores, read-backs and SIGSEGVs match what the writers did");

	/* 2: contents after each writer call. */
	for (int op = 0; op < N_OPS; op++)
		ktap_diag("writer: %s %llu", op_name[op], (unsigned long long)wr.ops[op]);
	ktap_diag("writer: pages verified %llu, bad %llu, errors %llu, park timeouts %llu",
		  (unsigned long long)wr.verified, (unsigned long long)wr.bad,
		  (unsigned long long)wr.errors, (unsigned long long)wr.park_timeouts);
	if (wr.first_bad[0])
		ktap_diag("  first content finding: %s", wr.first_bad);
	if (wr.first_err[0])
		ktap_diag("  first writer error: %s", wr.first_err);
	ktap_result(nw == 2 && wr.verified > 0 && !wr.bad && !wr.errors && !wr.park_timeouts,
		    "contents after each call: moves, mlock and populate preserve every completed store, the rest only zero it");

	/* 3..8: each writer call really happened (or the kernel lacks it). */
	ktap_result(wr.ops[OP_UNMAP] > 0 && wr.ops[OP_REPLACE] > 0 && wr.ops[OP_MOVE] > 0,
		    "munmap + re-mmap, MAP_FIXED replace and mremap move raced the faults");
	result_op(OP_DONTUNMAP, "mremap(MREMAP_DONTUNMAP)");
	result_op(OP_MLOCK, "mlock + munlock");
	result_op(OP_POPULATE, "MADV_POPULATE_WRITE");
	result_op(OP_FREE, "MADV_FREE");
	result_op(OP_GUARD, "guard regions (MADV_GUARD_INSTALL/REMOVE)");

	/* 9..11: faults and both writers ran at the same time. */
	ktap_overlap_report();
	return ktap_end();
}
