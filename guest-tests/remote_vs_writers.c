// SPDX-License-Identifier: GPL-2.0
/*
 * remote_vs_writers - remote memory access racing the target's VMA changes.
 *
 * A forked child keeps one "stable" region whose content never changes
 * (only its protection flips between R and RW on sub-ranges, splitting and
 * merging the VMA) and, right next to it, a "churn" area of slots it keeps
 * mmap'ing (MAP_FIXED_NOREPLACE), munmap'ing, mprotect'ing and mremap'ing
 * (in-place shrink/grow, plus moves of a scratch region between two fixed
 * spots). The parent reads the child with process_vm_readv() and pread() on
 * /proc/PID/mem from two threads. Those go through the GUP / remote-VMA
 * lookup paths while the child holds mmap_lock for write.
 *
 * Stable reads must always succeed and match exactly. Churn reads may fail
 * (EFAULT / EIO / short reads where the child just unmapped): counted, not
 * failures, but whatever bytes come back must be plausible. The churn
 * pattern depends only on the address, so a byte is either 0 (a fresh page)
 * or the expected byte. Bytes are checked one at a time because a read can
 * race the child filling a fresh page.
 */
#define _GNU_SOURCE
#include "ktap.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <stdatomic.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define STABLE_PAGES	16
#define NB_PAGES	4	/* neighbour of the stable region, mprotect target */
#define CHURN_SLOTS	8
#define SLOT_PAGES	4
#define SCRATCH_PAGES	4	/* two spots (A, B) after the churn slots */

#define MAGIC_S		0x5354000000000000ull	/* stable */
#define MAGIC_C		0x4348000000000000ull	/* churn */
#define MAGIC_R		0x5352000000000000ull	/* scratch */

static size_t ps;
static double deadline;

/* Shared between parent and child (MAP_SHARED anonymous). */
struct ctl {
	atomic_int ready, stop;
	uint64_t stable, churn;		/* child addresses */
	/* child-side counters */
	uint64_t mmaps, munmaps, mprotects, mremaps, moves, eexist, grow_enomem;
	uint64_t stable_mprotects, stable_rewrites, scratch_bad, errors;
	char err[256];
};
static struct ctl *ctl;

/* Parent-side counters, one set per reader kind. */
struct rstat {
	uint64_t stable_reads, stable_bytes, stable_bad, stable_err;
	uint64_t churn_reads, churn_full, churn_short, churn_fail, churn_bytes, churn_bad;
	uint64_t unexpected;
	char first_bad[256], first_err[256];
};
static struct rstat st_pvr, st_mem;
static pid_t child;
static atomic_int go;

/* Overlap kinds (ktap.h, shared with the child): registered before fork. */
static int ov_pvr, ov_mem, ov_cmprotect, ov_cchurn;

static inline int running(void)
{
	return ktap_now() < deadline;
}

/* ---------------------------------------------------------------- child */

static char *c_stable, *c_nb, *c_churn, *c_scr[2];
static int slot_mapped[CHURN_SLOTS];

static void cerr(const char *what)
{
	ctl->errors++;
	note(ctl->err, "child %s: %s", what, strerror(errno));
}

static void fill_churn(size_t slot, size_t pages)
{
	for (size_t off = slot * SLOT_PAGES * ps; off < (slot * SLOT_PAGES + pages) * ps; off += 8)
		*(volatile uint64_t *)(c_churn + off) = MAGIC_C | off;
}

/* The parent says when to stop (its readers must not see us exit). */
static int child_running(void)
{
	return !atomic_load(&ctl->stop) && ktap_now() < deadline + 2.5;
}

static void *child_mprotect_thread(void *arg)
{
	uint64_t rng = 0x5151;

	(void)arg;
	ktap_overlap_start(ov_cmprotect);
	/* At least a few rounds even if the parent stops us early. */
	for (uint64_t it = 0; child_running() || (it < KTAP_MIN_ITERS &&
	     (!ctl->stable_mprotects || !ctl->mprotects)); it++) {
		size_t a = ktap_rand(&rng) % STABLE_PAGES;
		size_t n = 1 + ktap_rand(&rng) % (STABLE_PAGES - a);

		/* Split the stable VMA (content unchanged) and merge it back. */
		if (mprotect(c_stable + a * ps, n * ps, PROT_READ) ||
		    mprotect(c_stable + a * ps, n * ps, PROT_READ | PROT_WRITE))
			cerr("mprotect stable");
		else
			ctl->stable_mprotects++;
		/* Rewrite identical values: write faults, no visible change. */
		for (size_t i = a; i < a + n; i++) {
			volatile uint64_t *w = (volatile uint64_t *)(c_stable + i * ps);

			*w = MAGIC_S | (i * ps);
		}
		ctl->stable_rewrites++;
		/* Neighbour toggles merge with / split from the stable VMA. */
		if (mprotect(c_nb, NB_PAGES * ps, PROT_READ) ||
		    mprotect(c_nb, NB_PAGES * ps, PROT_READ | PROT_WRITE))
			cerr("mprotect neighbour");
		else
			ctl->mprotects++;
		ktap_overlap_op(ov_cmprotect);
	}
	ktap_overlap_stop(ov_cmprotect);
	return NULL;
}

static void churn_step(uint64_t *rng)
{
	size_t s = ktap_rand(rng) % CHURN_SLOTS;
	char *a = c_churn + s * SLOT_PAGES * ps;
	char *p;

	if (!slot_mapped[s]) {
		/* Only this thread maps here after setup, but be polite anyway. */
		p = mmap(a, SLOT_PAGES * ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED) {
			if (errno == EEXIST)
				ctl->eexist++;
			else
				cerr("mmap churn slot");
			return;
		}
		if (p != a) {
			errno = EINVAL;
			cerr("mmap MAP_FIXED_NOREPLACE ignored");
			munmap(p, SLOT_PAGES * ps);
			return;
		}
		ctl->mmaps++;
		fill_churn(s, SLOT_PAGES);
		slot_mapped[s] = 1;
		return;
	}
	switch (ktap_rand(rng) % 4) {
	case 0:		/* unmap the first page alone, then the rest */
		if (munmap(a, ps) || munmap(a + ps, (SLOT_PAGES - 1) * ps))
			cerr("munmap churn slot");
		else
			ctl->munmaps++;
		slot_mapped[s] = 0;
		break;
	case 1:		/* protection flip on the middle pages */
		if (mprotect(a + ps, 2 * ps, PROT_READ) ||
		    mprotect(a + ps, 2 * ps, PROT_READ | PROT_WRITE))
			cerr("mprotect churn");
		else
			ctl->mprotects++;
		break;
	case 2:		/* shrink in place, grow back in place, refill */
		p = mremap(a, SLOT_PAGES * ps, 2 * ps, 0);
		if (p == MAP_FAILED) {
			cerr("mremap shrink");
			break;
		}
		p = mremap(a, 2 * ps, SLOT_PAGES * ps, 0);
		if (p == MAP_FAILED) {
			/* ENOMEM if something got in the way: slot is now half. */
			if (errno == ENOMEM) {
				ctl->grow_enomem++;
				munmap(a, 2 * ps);
				slot_mapped[s] = 0;
			} else {
				cerr("mremap grow");
			}
			break;
		}
		ctl->mremaps++;
		fill_churn(s, SLOT_PAGES);
		break;
	default:	/* move the scratch region between its two spots */
	{
		static int where;
		char *src = c_scr[where], *dst = c_scr[!where];

		p = mremap(src, SCRATCH_PAGES * ps, SCRATCH_PAGES * ps,
			   MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		if (p == MAP_FAILED) {
			cerr("mremap move scratch");
			break;
		}
		where = !where;
		ctl->moves++;
		for (size_t i = 0; i < SCRATCH_PAGES; i++)
			if (*(volatile uint64_t *)(dst + i * ps) != (MAGIC_R | i))
				ctl->scratch_bad++;
		break;
	}
	}
}

static void child_main(void)
{
	size_t total = (NB_PAGES + STABLE_PAGES + CHURN_SLOTS * SLOT_PAGES + 2 * SCRATCH_PAGES) * ps;
	uint64_t rng = 0xc0ffee;
	pthread_t t;
	char *base;

	/* Don't outlive the parent; don't run the parent's KTAP crash path. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (int sig = 1; sig < 32; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);

	/* Layout: [nb][stable][churn slots...][scratch A][scratch B] */
	base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		cerr("mmap layout");
		_exit(1);
	}
	c_nb = base;
	c_stable = c_nb + NB_PAGES * ps;
	c_churn = c_stable + STABLE_PAGES * ps;
	c_scr[0] = c_churn + CHURN_SLOTS * SLOT_PAGES * ps;
	c_scr[1] = c_scr[0] + SCRATCH_PAGES * ps;
	for (size_t off = 0; off < STABLE_PAGES * ps; off += 8)
		*(uint64_t *)(c_stable + off) = MAGIC_S | off;
	for (size_t s = 0; s < CHURN_SLOTS; s++) {
		fill_churn(s, SLOT_PAGES);
		slot_mapped[s] = 1;
	}
	for (size_t i = 0; i < SCRATCH_PAGES; i++)
		*(uint64_t *)(c_scr[0] + i * ps) = MAGIC_R | i;
	if (munmap(c_scr[1], SCRATCH_PAGES * ps))
		cerr("munmap scratch B");
	/* Threads first: their stacks must not land in our holes later. */
	if (pthread_create(&t, NULL, child_mprotect_thread, NULL)) {
		cerr("pthread_create");
		_exit(1);
	}
	ctl->stable = (uintptr_t)c_stable;
	ctl->churn = (uintptr_t)c_churn;
	atomic_store(&ctl->ready, 1);
	/* Random ops: keep going until each kind happened at least once. */
	ktap_overlap_start(ov_cchurn);
	for (uint64_t it = 0; child_running() || (it < 5 * KTAP_MIN_ITERS &&
	     (!ctl->mmaps || !ctl->munmaps || !ctl->mremaps || !ctl->moves)); it++) {
		churn_step(&rng);
		ktap_overlap_op(ov_cchurn);
	}
	ktap_overlap_stop(ov_cchurn);
	pthread_join(t, NULL);
	_exit(ctl->errors || ctl->scratch_bad ? 1 : 0);
}

/* --------------------------------------------------------------- parent */

static int mem_fd = -1;

/* Exact check of a stable read at child offset off. */
static void check_stable(struct rstat *st, const char *buf, size_t off, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t got, want = MAGIC_S | (off + i);

		memcpy(&got, buf + i, 8);
		if (got != want) {
			st->stable_bad++;
			note(st->first_bad, "stable offset %#zx: got %#llx want %#llx", off + i,
			     (unsigned long long)got, (unsigned long long)want);
			return;
		}
	}
}

/* Churn bytes are either 0 or the address-derived pattern byte. */
static void check_churn(struct rstat *st, const char *buf, size_t off, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t want = MAGIC_C | (off + i);
		const unsigned char *w = (const unsigned char *)&want;

		for (int b = 0; b < 8; b++) {
			unsigned char g = buf[i + b];

			if (g && g != w[b]) {
				st->churn_bad++;
				note(st->first_bad, "churn offset %#zx byte %d: got %#x want 0 or %#x",
				     off + i, b, g, w[b]);
				return;
			}
		}
	}
}

/* Read child memory with either method; returns bytes or -1 (errno). */
static ssize_t remote_read(int use_mem, char *buf, uint64_t addr, size_t len, uint64_t *rng)
{
	if (use_mem)
		return pread(mem_fd, buf, len, (off_t)addr);
	/* Split the remote side in two iovecs to exercise the iteration. */
	size_t cut = (ktap_rand(rng) % (len / 8 + 1)) * 8;
	struct iovec l = { buf, len };
	struct iovec r[2] = { { (void *)(uintptr_t)addr, cut },
			      { (void *)(uintptr_t)(addr + cut), len - cut } };

	return process_vm_readv(child, &l, 1, cut ? r : r + 1, cut ? 2 : 1, 0);
}

static void *reader(void *arg)
{
	int use_mem = arg != NULL;
	struct rstat *st = use_mem ? &st_mem : &st_pvr;
	const char *name = use_mem ? "/proc/PID/mem" : "process_vm_readv";
	size_t churn_len = CHURN_SLOTS * SLOT_PAGES * ps;
	uint64_t rng = use_mem ? 0xfeed : 0xbeef;
	char *buf = malloc(churn_len);

	if (!buf)
		return NULL;
	while (!atomic_load(&go))
		sched_yield();
	ktap_overlap_start(use_mem ? ov_mem : ov_pvr);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !st->stable_reads); it++) {
		size_t off, len;
		ssize_t n;

		/* Stable region: must read completely and exactly. */
		off = (ktap_rand(&rng) % (STABLE_PAGES * ps / 8)) * 8;
		len = 8 + (ktap_rand(&rng) % ((STABLE_PAGES * ps - off) / 8)) * 8;
		n = remote_read(use_mem, buf, ctl->stable + off, len, &rng);
		st->stable_reads++;
		if (n != (ssize_t)len) {
			st->stable_err++;
			note(st->first_err, "%s stable read %zu bytes at +%#zx returned %zd (%s)",
			     name, len, off, n, n < 0 ? strerror(errno) : "short");
		} else {
			st->stable_bytes += n;
			check_stable(st, buf, off, len);
		}

		/* Churn area: failures where the child just unmapped are fine. */
		off = (ktap_rand(&rng) % (churn_len / 8)) * 8;
		len = 8 + (ktap_rand(&rng) % ((churn_len - off) / 8)) * 8;
		n = remote_read(use_mem, buf, ctl->churn + off, len, &rng);
		st->churn_reads++;
		if (n < 0) {
			st->churn_fail++;
			/* EFAULT (process_vm_readv), EIO (/proc/PID/mem) expected. */
			if (errno != EFAULT && errno != EIO) {
				st->unexpected++;
				note(st->first_err, "%s churn read: unexpected %s", name,
				     strerror(errno));
			}
		} else {
			if ((size_t)n == len)
				st->churn_full++;
			else
				st->churn_short++;
			st->churn_bytes += n;
			check_churn(st, buf, off, n & ~(size_t)7);
		}
		ktap_overlap_op(use_mem ? ov_mem : ov_pvr);
	}
	ktap_overlap_stop(use_mem ? ov_mem : ov_pvr);
	free(buf);
	return NULL;
}

static void report_reader(struct rstat *st, const char *name, int *stable_ok, int *churn_ok)
{
	ktap_diag("%s: stable reads %llu (%llu bytes) bad %llu errors %llu", name,
		  (unsigned long long)st->stable_reads, (unsigned long long)st->stable_bytes,
		  (unsigned long long)st->stable_bad, (unsigned long long)st->stable_err);
	ktap_diag("%s: churn reads %llu: full %llu short %llu failed(expected) %llu, %llu bytes, bad %llu, unexpected errors %llu",
		  name, (unsigned long long)st->churn_reads, (unsigned long long)st->churn_full,
		  (unsigned long long)st->churn_short, (unsigned long long)st->churn_fail,
		  (unsigned long long)st->churn_bytes, (unsigned long long)st->churn_bad,
		  (unsigned long long)st->unexpected);
	if (st->first_bad[0])
		ktap_diag("  first mismatch: %s", st->first_bad);
	if (st->first_err[0])
		ktap_diag("  first error: %s", st->first_err);
	*stable_ok = st->stable_reads > 0 && st->stable_bytes > 0 && !st->stable_bad &&
		     !st->stable_err;
	/* Churn reads may all fail when unlucky: only their count matters. */
	*churn_ok = st->churn_reads > 0 && !st->churn_bad &&
		    !st->unexpected;
}

int main(int argc, char **argv)
{
	double dur = ktap_begin(argc, argv, 5 + 4);
	int status = 0, reaped = 0, s_pvr, c_pvr, s_mem, c_mem;
	pthread_t t1, t2;
	char path[64];

	ps = sysconf(_SC_PAGESIZE);
	ktap_diag("remote_vs_writers: duration %.1fs, page size %zu", dur, ps);
	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED) {
		ktap_diag("mmap ctl: %s", strerror(errno));
		return ktap_bail("not run: mmap failed");
	}
	ov_pvr = ktap_overlap_kind("reader_pvr");
	ov_mem = ktap_overlap_kind("reader_mem");
	ov_cmprotect = ktap_overlap_kind("child_mprotect");
	ov_cchurn = ktap_overlap_kind("child_churn");
	deadline = ktap_now() + dur;
	child = fork();
	if (child < 0) {
		ktap_diag("fork: %s", strerror(errno));
		return ktap_bail("not run: fork failed");
	}
	if (child == 0)
		child_main();

	/* Wait for the child's layout (bounded). */
	while (!atomic_load(&ctl->ready) && running()) {
		if (waitpid(child, &status, WNOHANG) == child) {
			reaped = 1;
			break;
		}
		usleep(1000);
	}
	if (!atomic_load(&ctl->ready)) {
		ktap_diag("child never became ready%s", ctl->err[0] ? ":" : "");
		if (ctl->err[0])
			ktap_diag("  %s", ctl->err);
		if (!reaped)
			kill(child, SIGKILL);
		return ktap_bail("not run: child never became ready");
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)child);
	mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (mem_fd < 0)
		ktap_diag("open %s: %s", path, strerror(errno));

	if (pthread_create(&t1, NULL, reader, NULL) ||
	    (mem_fd >= 0 && pthread_create(&t2, NULL, reader, (void *)1))) {
		ktap_diag("pthread_create failed");
		atomic_store(&ctl->stop, 1);
		kill(child, SIGKILL);
		return ktap_bail("not run: pthread_create failed");
	}
	atomic_store(&go, 1);
	pthread_join(t1, NULL);
	if (mem_fd >= 0)
		pthread_join(t2, NULL);

	/* Stop the child and reap it, bounded; SIGKILL if it won't go. */
	atomic_store(&ctl->stop, 1);
	for (double end = ktap_now() + 2.0; !reaped && ktap_now() < end;) {
		if (waitpid(child, &status, WNOHANG) == child)
			reaped = 1;
		else
			usleep(2000);
	}
	if (!reaped) {
		ktap_diag("child did not exit after stop; killing it");
		kill(child, SIGKILL);
		status = -1;
	}

	ktap_diag("child: mmaps %llu munmaps %llu mprotects %llu mremaps(in place) %llu moves %llu, stable mprotects %llu rewrites %llu, eexist %llu grow-enomem %llu, errors %llu scratch-bad %llu",
		  (unsigned long long)ctl->mmaps, (unsigned long long)ctl->munmaps,
		  (unsigned long long)ctl->mprotects, (unsigned long long)ctl->mremaps,
		  (unsigned long long)ctl->moves, (unsigned long long)ctl->stable_mprotects,
		  (unsigned long long)ctl->stable_rewrites, (unsigned long long)ctl->eexist,
		  (unsigned long long)ctl->grow_enomem, (unsigned long long)ctl->errors,
		  (unsigned long long)ctl->scratch_bad);
	if (ctl->err[0])
		ktap_diag("  child first error: %s", ctl->err);
	if (status != -1 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		ktap_diag("child exit status %#x%s", status,
			  WIFSIGNALED(status) ? " (killed by signal)" : "");
	ktap_result(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
		    ctl->mmaps > 0 && ctl->munmaps > 0 && ctl->mprotects > 0 &&
		    ctl->mremaps > 0 && ctl->moves > 0 && ctl->stable_mprotects > 0 &&
		    !ctl->errors && !ctl->scratch_bad,
		    "child changed its mappings (mmap/munmap/mprotect/mremap) cleanly");

	report_reader(&st_pvr, "process_vm_readv", &s_pvr, &c_pvr);
	ktap_result(s_pvr, "process_vm_readv stable region intact");
	ktap_result(c_pvr, "process_vm_readv churn reads: only expected errors, data plausible");
	if (mem_fd < 0) {
		ktap_diag("/proc/PID/mem could not be opened, see above");
		ktap_result(0, "/proc/PID/mem stable region intact");
		ktap_result(0, "/proc/PID/mem churn reads: only expected errors, data plausible");
	} else {
		report_reader(&st_mem, "/proc/PID/mem", &s_mem, &c_mem);
		ktap_result(s_mem, "/proc/PID/mem stable region intact");
		ktap_result(c_mem, "/proc/PID/mem churn reads: only expected errors, data plausible");
	}
	/* 6..9: readers and the child's writers ran at the same time. */
	ktap_overlap_report();
	return ktap_end();
}
