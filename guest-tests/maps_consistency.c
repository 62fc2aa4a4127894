// SPDX-License-Identifier: GPL-2.0
/*
 * maps_consistency - /proc/PID/maps and PROCMAP_QUERY of a process whose
 * VMAs are being split, merged and remapped, checked snapshot by snapshot.
 *
 * /proc/PID/maps is a seq_file: read() hands out at most one page of whole
 * lines, and the next read() restarts the VMA walk at the line that did not
 * fit any more (fs/proc/task_mmu.c m_start(): last_pos). With per-VMA locks
 * the walk runs under each VMA's read lock, not mmap_lock, so the VMA at
 * such a restart can be split, merged or moved between two read() calls.
 *
 * A forked child (the target) keeps this layout:
 *
 *   [guard][ stable: NV VMAs of 2 pages, alternately R and RW ][guard]
 *   [ churn: NC slots, each one mapped page and one hole ][guard]
 *
 * Child threads:
 *   split   mprotect()s stable VMAs to their neighbours' protection and back
 *           (3 VMAs merge into 1 and split again) or splits off one page;
 *           half of the time it picks the VMAs whose lines the reader last
 *           saw at a read() restart (the lines that straddle a page of
 *           output); the stable range is never unmapped
 *   remap   in the churn slots: munmap + re-mmap, MAP_FIXED replace, mremap
 *           move into the slot's hole and back
 * Parent threads:
 *   reader  reads the child's maps with 4096-byte read()s and checks every
 *           snapshot: newline-terminated well-formed lines (no torn line),
 *           start < end, strictly increasing ends (no duplicate, no walk
 *           going back; a line may start before the previous one ends only
 *           as a VMA reported again after a concurrent merge extended it),
 *           the stable range covered without a gap, no VMA crossing its
 *           edges, churn VMAs inside the churn range
 *   query   PROCMAP_QUERY on the same file: an address in the stable range
 *           must come back covered by a readable VMA inside the range; in
 *           the churn range it is covered by a VMA inside the range or ENOENT
 *
 * PROCMAP_QUERY came in Linux 6.11: ENOTTY is SKIP with that reason.
 */
#define _GNU_SOURCE
#include "ktap.h"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* Own copy of the 6.11 UAPI (Debian 12's headers predate it). */
struct kz_procmap_query {
	uint64_t size, query_flags, query_addr;
	uint64_t vma_start, vma_end, vma_flags, vma_page_size, vma_offset, inode;
	uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
	uint64_t vma_name_addr, build_id_addr;
};
#define KZ_PROCMAP_QUERY	_IOWR('f', 17, struct kz_procmap_query)
#define KZ_PMQ_READABLE		0x01

#define NV		200	/* stable VMAs: ~10 KB of maps output, page boundaries inside */
#define NC		16	/* churn slots */
#define READ_CHUNK	4096
#define SNAP_MAX	(256 * 1024)

static size_t ps;
static double deadline;

/* Shared with the child. */
struct ctl {
	atomic_int ready, go, stop, exiting;
	uint64_t stable, stable_end, churn, churn_end;
	_Atomic int hot[4];		/* stable VMA indexes at read() restarts, -1: none */
	/* child counters */
	uint64_t merges, splits, remaps, moves, replaces, eexist, errors;
	char err[256];
};
static struct ctl *ctl;
static pid_t child;

static struct {
	uint64_t snaps, lines, restarts, hot_stable, torn, malformed, unsorted, reported_again;
	uint64_t gaps, edge, churn_out, errors;
	char first_bad[512], first_err[256];
} rd;

static struct {
	uint64_t queries, stable_ok, churn_ok, churn_enoent, bad, errors;
	int unsupported;
	char first_bad[256];
} qr;

static int ov_split, ov_remap, ov_reader, ov_query;

/* ---------------------------------------------------------------- child */

static char *c_stable, *c_churn;

static int vma_prot(int k)
{
	return k & 1 ? PROT_READ : PROT_READ | PROT_WRITE;
}

static void cerr(const char *what)
{
	ctl->errors++;
	note(ctl->err, "child %s: %s", what, strerror(errno));
}

/*
 * Until the parent says stop: its reader may still be inside a snapshot after the
 * deadline (a starved vCPU), and a target gone mid-read would look like a gap. The
 * time limit is only for a parent that never says it (the watchdog has ended it).
 */
static int child_running(void)
{
	return !atomic_load(&ctl->stop) && ktap_now() < deadline + KTAP_GRACE + 1.0;
}

static void *child_split_thread(void *arg)
{
	uint64_t rng = 0x5b11;

	(void)arg;
	ktap_overlap_start(ov_split);
	while (child_running()) {
		int k = ktap_rand(&rng) % NV, h = atomic_load(&ctl->hot[ktap_rand(&rng) % 4]);
		char *v;

		if ((ktap_rand(&rng) & 1) && h >= 0)
			k = h;	/* the VMA at a read() restart */
		v = c_stable + (size_t)k * 2 * ps;
		if (ktap_rand(&rng) & 1) {
			/* Take the neighbours' protection: k-1, k, k+1 merge; then split back. */
			if (mprotect(v, 2 * ps, vma_prot(k + 1)) || mprotect(v, 2 * ps, vma_prot(k)))
				cerr("mprotect merge/split");
			else
				ctl->merges++;
		} else {
			/* Split one page off (it merges with the previous VMA); then back. */
			if (mprotect(v, ps, vma_prot(k + 1)) || mprotect(v, ps, vma_prot(k)))
				cerr("mprotect page split");
			else
				ctl->splits++;
		}
		ktap_overlap_op(ov_split);
	}
	ktap_overlap_stop(ov_split);
	return NULL;
}

static void churn_step(uint64_t *rng)
{
	size_t s = ktap_rand(rng) % NC;
	char *a = c_churn + s * 2 * ps, *h = a + ps, *p;

	switch (ktap_rand(rng) % 3) {
	case 0:
		if (munmap(a, ps)) {
			cerr("munmap slot");
			return;
		}
		p = mmap(a, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			 -1, 0);
		if (p != a) {
			if (p == MAP_FAILED && errno == EEXIST)
				ctl->eexist++;
			else
				cerr("re-mmap slot");
			return;
		}
		*(volatile char *)a = 1;
		ctl->remaps++;
		break;
	case 1:
		p = mmap(a, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p != a) {
			cerr("MAP_FIXED replace slot");
			return;
		}
		*(volatile char *)a = 2;
		ctl->replaces++;
		break;
	default:
		if (mremap(a, ps, ps, MREMAP_MAYMOVE | MREMAP_FIXED, h) != h) {
			cerr("mremap slot -> hole");
			return;
		}
		if (mremap(h, ps, ps, MREMAP_MAYMOVE | MREMAP_FIXED, a) != a) {
			cerr("mremap hole -> slot");
			return;
		}
		ctl->moves++;
		break;
	}
}

static __attribute__((noreturn)) void child_main(void)
{
	size_t total = (1 + 2 * NV + 1 + 2 * NC + 1) * ps;
	uint64_t rng = 0xc4a7;
	pthread_t t;
	char *base;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (int sig = 1; sig < 32; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	base = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		cerr("mmap layout");
		_exit(1);
	}
	c_stable = base + ps;
	c_churn = c_stable + (2 * NV + 1) * ps;
	if (mprotect(c_stable, 2 * NV * ps, PROT_READ | PROT_WRITE)) {
		cerr("mprotect stable RW");
		_exit(1);
	}
	/* Touch every page (one anon_vma for all), then make odd VMAs read-only. */
	for (size_t i = 0; i < 2 * NV; i++)
		c_stable[i * ps] = 1;
	for (int k = 1; k < NV; k += 2)
		if (mprotect(c_stable + (size_t)k * 2 * ps, 2 * ps, PROT_READ)) {
			cerr("mprotect stable R");
			_exit(1);
		}
	/* Churn: each slot is a mapped page followed by a hole. */
	if (munmap(c_churn, 2 * NC * ps)) {
		cerr("munmap churn");
		_exit(1);
	}
	for (int s = 0; s < NC; s++) {
		char *a = c_churn + (size_t)s * 2 * ps;

		if (mmap(a, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			 -1, 0) != a) {
			cerr("mmap churn slot");
			_exit(1);
		}
		*a = 1;
	}
	if (pthread_create(&t, NULL, child_split_thread, NULL)) {
		cerr("pthread_create");
		_exit(1);
	}
	ctl->stable = (uintptr_t)c_stable;
	ctl->stable_end = (uintptr_t)(c_stable + 2 * NV * ps);
	ctl->churn = (uintptr_t)c_churn;
	ctl->churn_end = (uintptr_t)(c_churn + 2 * NC * ps);
	atomic_store(&ctl->ready, 1);
	while (!atomic_load(&ctl->go) && child_running())
		sched_yield();
	ktap_overlap_start(ov_remap);
	while (child_running()) {
		churn_step(&rng);
		ktap_overlap_op(ov_remap);
	}
	ktap_overlap_stop(ov_remap);
	pthread_join(t, NULL);
	atomic_store(&ctl->exiting, 1);	/* a snapshot from now on may end early */
	_exit(ctl->errors ? 1 : 0);
}

/* --------------------------------------------------------------- reader */

struct line {
	unsigned long start, end;
	char perms[5];
};

/* "start-end perms offset dev inode [path]"; 0 if malformed. */
static int parse_line(const char *l, struct line *out)
{
	unsigned long off, inode;
	unsigned int maj, min;
	char perms[8];

	if (sscanf(l, "%lx-%lx %7s %lx %x:%x %lu", &out->start, &out->end, perms, &off, &maj, &min,
		   &inode) != 7)
		return 0;
	if (strlen(perms) != 4 || !strchr("r-", perms[0]) || !strchr("w-", perms[1]) ||
	    !strchr("x-", perms[2]) || !strchr("ps", perms[3]))
		return 0;
	memcpy(out->perms, perms, 5);
	return 1;
}

#define BAD(counter, ...) do { \
	rd.counter++; \
	note(rd.first_bad, __VA_ARGS__); \
} while (0)

/* One snapshot: read it in READ_CHUNK pieces, note the restart lines. */
static ssize_t read_snapshot(const char *path, char *buf, unsigned long *restart_addr, int *nrestart)
{
	ssize_t len = 0, n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*nrestart = 0;
	if (fd < 0)
		return -1;
	while (len + READ_CHUNK < SNAP_MAX && (n = read(fd, buf + len, READ_CHUNK)) > 0) {
		/* Every read() after the first restarts the walk at its first line. */
		if (len && *nrestart < 4 && sscanf(buf + len, "%lx-", &restart_addr[*nrestart]) == 1)
			(*nrestart)++;
		len += n;
	}
	close(fd);
	if (n < 0)
		return -1;
	buf[len] = 0;
	return len;
}

static void check_snapshot(char *buf, ssize_t len, const unsigned long *restart, int nrestart)
{
	unsigned long s0 = ctl->stable, s1 = ctl->stable_end, c0 = ctl->churn, c1 = ctl->churn_end;
	unsigned long prev_end = 0, covered = s0;	/* stable covered up to here */
	int hot = 0, nl = 0;

	rd.snaps++;
	if (!len || buf[len - 1] != '\n')
		BAD(torn, "snapshot %llu: %zd bytes, not newline-terminated", (unsigned long long)rd.snaps,
		    len);
	for (int i = 0; i < nrestart; i++) {
		rd.restarts++;
		if (restart[i] >= s0 && restart[i] < s1) {
			rd.hot_stable++;
			atomic_store(&ctl->hot[hot++], (int)((restart[i] - s0) / (2 * ps)));
		}
	}
	for (char *l = buf, *e; l < buf + len; l = e + 1) {
		struct line v;

		e = strchr(l, '\n');
		if (!e)
			break;
		*e = 0;
		rd.lines++;
		nl++;
		if (!parse_line(l, &v) || v.start >= v.end) {
			BAD(malformed, "malformed or torn line %d: '%.100s'", nl, l);
			continue;
		}
		if (v.end <= prev_end) {
			BAD(unsorted, "line %d %lx-%lx does not end after the previous line's end %lx (duplicate or walk going back)",
			    nl, v.start, v.end, prev_end);
			continue;
		}
		if (v.start < prev_end)
			rd.reported_again++;	/* re-found after a concurrent merge extended it */
		prev_end = v.end;
		if (v.end > s0 && v.start < s1) {
			if (v.start < s0 || v.end > s1)
				BAD(edge, "line %d %lx-%lx %s crosses the stable range %lx-%lx", nl, v.start,
				    v.end, v.perms, s0, s1);
			else if (v.start > covered)
				BAD(gaps, "gap %lx-%lx in the stable range (never unmapped) before line %d %lx-%lx",
				    covered, v.start, nl, v.start, v.end);
			if (v.end > covered)
				covered = v.end;
			if (v.perms[0] != 'r' || v.perms[2] != '-')
				BAD(edge, "line %d %lx-%lx has perms %s in the stable range", nl, v.start, v.end,
				    v.perms);
		} else if (v.end > c0 && v.start < c1 && (v.start < c0 || v.end > c1)) {
			BAD(churn_out, "line %d %lx-%lx crosses the churn range %lx-%lx", nl, v.start, v.end,
			    c0, c1);
		}
	}
	if (covered < s1)
		BAD(gaps, "stable range covered only up to %lx of %lx-%lx", covered, s0, s1);
}

static void *reader_thread(void *arg)
{
	char path[64], *buf = malloc(SNAP_MAX);
	unsigned long restart[4];
	int nrestart;

	(void)arg;
	if (!buf)
		return NULL;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)child);
	ktap_overlap_start(ov_reader);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !rd.snaps); it++) {
		ssize_t len = read_snapshot(path, buf, restart, &nrestart);

		if (atomic_load(&ctl->exiting))
			break;	/* the target left early (parent's stop never came): not a finding */
		if (len < 0) {
			rd.errors++;
			note(rd.first_err, "read %s: %s", path, strerror(errno));
			continue;
		}
		check_snapshot(buf, len, restart, nrestart);
		ktap_overlap_op(ov_reader);
	}
	ktap_overlap_stop(ov_reader);
	free(buf);
	return NULL;
}

/* ---------------------------------------------------------------- query */

static int query(int fd, unsigned long addr, struct kz_procmap_query *q)
{
	memset(q, 0, sizeof(*q));
	q->size = sizeof(*q);
	q->query_addr = addr;
	return ioctl(fd, KZ_PROCMAP_QUERY, q);
}

static void *query_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	unsigned long s0 = ctl->stable, s1 = ctl->stable_end, c0 = ctl->churn, c1 = ctl->churn_end;
	uint64_t rng = 0x9e7;

	ktap_overlap_start(ov_query);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !qr.queries); it++) {
		int in_stable = ktap_rand(&rng) & 1;
		int h = atomic_load(&ctl->hot[ktap_rand(&rng) % 4]);
		unsigned long addr;
		struct kz_procmap_query q;

		if (in_stable)
			addr = h >= 0 && (ktap_rand(&rng) & 1) ? s0 + (unsigned long)h * 2 * ps + ps :
				s0 + (ktap_rand(&rng) % (2 * NV)) * ps;
		else
			addr = c0 + (ktap_rand(&rng) % (2 * NC)) * ps;
		qr.queries++;
		if (query(fd, addr, &q)) {
			if (!in_stable && errno == ENOENT) {
				qr.churn_enoent++;
				ktap_overlap_op(ov_query);
				continue;
			}
			qr.errors++;
			note(qr.first_bad, "PROCMAP_QUERY %#lx (%s range): %s", addr,
			     in_stable ? "stable" : "churn", strerror(errno));
			continue;
		}
		ktap_overlap_op(ov_query);
		if (q.vma_start > addr || q.vma_end <= addr ||
		    (in_stable && (q.vma_start < s0 || q.vma_end > s1 || !(q.vma_flags & KZ_PMQ_READABLE))) ||
		    (!in_stable && (q.vma_start < c0 || q.vma_end > c1))) {
			qr.bad++;
			note(qr.first_bad, "PROCMAP_QUERY %#lx (%s range): got %#llx-%#llx flags %#llx",
			     addr, in_stable ? "stable" : "churn", (unsigned long long)q.vma_start,
			     (unsigned long long)q.vma_end, (unsigned long long)q.vma_flags);
			continue;
		}
		if (in_stable)
			qr.stable_ok++;
		else
			qr.churn_ok++;
	}
	ktap_overlap_stop(ov_query);
	return NULL;
}

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	double dur = ktap_begin(argc, argv, 4 + 4);
	int status = 0, reaped = 0, qfd = -1, nq;
	pthread_t tr, tq;
	char path[64];

	ps = sysconf(_SC_PAGESIZE);
	ktap_diag("maps_consistency: duration %.1fs, page size %zu, %d stable VMAs, %d churn slots",
		  dur, ps, NV, NC);
	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED)
		return ktap_bail("not run: mmap failed");
	for (int i = 0; i < 4; i++)
		atomic_store(&ctl->hot[i], -1);
	ov_split = ktap_overlap_kind("split");
	ov_remap = ktap_overlap_kind("remap");
	ov_reader = ktap_overlap_kind("reader");
	deadline = ktap_now() + dur;
	child = fork();
	if (child < 0)
		return ktap_bail("not run: fork failed");
	if (child == 0)
		child_main();
	while (!atomic_load(&ctl->ready) && ktap_now() < deadline) {
		if (waitpid(child, &status, WNOHANG) == child) {
			reaped = 1;
			break;
		}
		usleep(1000);
	}
	if (!atomic_load(&ctl->ready)) {
		ktap_diag("child never became ready%s%s", ctl->err[0] ? ": " : "", ctl->err);
		if (!reaped)
			kill(child, SIGKILL);
		return ktap_bail("not run: child never became ready");
	}

	/* PROCMAP_QUERY exists since 6.11; find out before counting it as a kind. */
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)child);
	qfd = open(path, O_RDONLY | O_CLOEXEC);
	if (qfd >= 0) {
		struct kz_procmap_query q;

		if (query(qfd, ctl->stable, &q) && errno == ENOTTY) {
			qr.unsupported = 1;
			ktap_diag("PROCMAP_QUERY: ENOTTY, the kernel has no such ioctl (Linux < 6.11)");
		}
	} else {
		ktap_diag("open %s: %s", path, strerror(errno));
	}
	nq = qfd >= 0 && !qr.unsupported;
	if (nq)
		ov_query = ktap_overlap_kind("query");	/* else its overlap case is a SKIP */

	atomic_store(&ctl->go, 1);
	if (pthread_create(&tr, NULL, reader_thread, NULL) ||
	    (nq && pthread_create(&tq, NULL, query_thread, (void *)(intptr_t)qfd))) {
		atomic_store(&ctl->stop, 1);
		kill(child, SIGKILL);
		return ktap_bail("not run: pthread_create failed");
	}
	pthread_join(tr, NULL);
	if (nq)
		pthread_join(tq, NULL);
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

	/* 1: the target really split, merged and remapped. */
	ktap_diag("child: merges %llu, page splits %llu, munmap+mmap %llu, MAP_FIXED replaces %llu, mremap moves %llu, eexist %llu, errors %llu",
		  (unsigned long long)ctl->merges, (unsigned long long)ctl->splits,
		  (unsigned long long)ctl->remaps, (unsigned long long)ctl->replaces,
		  (unsigned long long)ctl->moves, (unsigned long long)ctl->eexist,
		  (unsigned long long)ctl->errors);
	if (ctl->err[0])
		ktap_diag("  child first error: %s", ctl->err);
	ktap_result(status != -1 && WIFEXITED(status) && !WEXITSTATUS(status) && ctl->merges &&
		    ctl->splits && ctl->remaps && ctl->replaces && ctl->moves && !ctl->errors,
		    "target split, merged and remapped its VMAs cleanly");

	/* 2: every snapshot consistent. */
	ktap_diag("reader: snapshots %llu, lines %llu, read() restarts %llu (in the stable range %llu), reported again after a merge %llu",
		  (unsigned long long)rd.snaps, (unsigned long long)rd.lines,
		  (unsigned long long)rd.restarts, (unsigned long long)rd.hot_stable,
		  (unsigned long long)rd.reported_again);
	ktap_diag("reader: torn %llu, malformed %llu, unsorted/duplicate %llu, gaps %llu, edge %llu, churn outside %llu, errors %llu",
		  (unsigned long long)rd.torn, (unsigned long long)rd.malformed,
		  (unsigned long long)rd.unsorted, (unsigned long long)rd.gaps,
		  (unsigned long long)rd.edge, (unsigned long long)rd.churn_out,
		  (unsigned long long)rd.errors);
	if (rd.first_bad[0])
		ktap_diag("  first finding: %s", rd.first_bad);
	if (rd.first_err[0])
		ktap_diag("  first error: %s", rd.first_err);
	ktap_result(rd.snaps > 0 && !rd.torn && !rd.malformed && !rd.unsorted && !rd.gaps &&
		    !rd.edge && !rd.churn_out && !rd.errors,
		    "/proc/PID/maps snapshots consistent (sorted, no duplicate, no torn line, no gap)");

	/* 3: page boundaries of the output really fell into the churning range. */
	ktap_result(rd.hot_stable > 0,
		    "read() restarts landed on VMAs being split and merged");

	/* 4: PROCMAP_QUERY. */
	if (!nq) {
		if (qr.unsupported)
			ktap_skip("kernel has no PROCMAP_QUERY (ENOTTY, Linux < 6.11)",
				  "PROCMAP_QUERY answers consistent");
		else
			ktap_result(0, "PROCMAP_QUERY answers consistent: %s could not be opened", path);
	} else {
		ktap_diag("query: %llu, stable ok %llu, churn ok %llu, churn ENOENT %llu, bad %llu, errors %llu",
			  (unsigned long long)qr.queries, (unsigned long long)qr.stable_ok,
			  (unsigned long long)qr.churn_ok, (unsigned long long)qr.churn_enoent,
			  (unsigned long long)qr.bad, (unsigned long long)qr.errors);
		if (qr.first_bad[0])
			ktap_diag("  first finding: %s", qr.first_bad);
		ktap_result(qr.stable_ok > 0 && !qr.bad && !qr.errors,
			    "PROCMAP_QUERY answers consistent");
	}

	/* 5..8: each kind worked while the others ran. */
	ktap_overlap_report();
	if (!nq)
		ktap_skip("no PROCMAP_QUERY thread (see case 4)", "query overlapped the other kinds");
	return ktap_end();
}
