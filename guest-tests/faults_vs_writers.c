// SPDX-License-Identifier: GPL-2.0
/*
 * faults_vs_writers - page faults racing VMA modifications.
 *
 * Fault threads own a "slot": an anonymous private or memfd (shmem) shared
 * region that they write, read back, MADV_DONTNEED and read again, checking
 * a per-page pattern (slot, generation, page). Around each fault region:
 *
 *   [ nbA: anon, mprotect target ][ fault region ][ gap: hole for mmap ]
 *
 * Writer threads take mmap_lock for write and split/merge the VMAs right
 * next to (and inside) the fault regions, so the faults keep running into
 * vma_start_write() / lock_vma_under_rcu() retries and fallbacks:
 *   - mprotect: toggles nbA (whole and middle page) R <-> RW, which merges
 *     nbA with an anonymous fault region and splits it again; also toggles
 *     a sub-range of the fault region RW <-> RWX (access never changes).
 *   - mmap: MAP_FIXED_NOREPLACE anon/memfd mappings into the gap (merging
 *     with the fault VMA when compatible), touched, then unmapped in pieces.
 *   - mremap: grow/shrink/move of its own scratch region, data checked.
 * Reader threads read /proc/self/maps and /proc/self/smaps in full and check
 * every maps line is well formed.
 */
#define _GNU_SOURCE
#include "ktap.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <stdatomic.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif

#define N_ANON		2	/* fault threads on anonymous private memory */
#define N_SHM		2	/* fault threads on memfd shared memory */
#define N_SLOTS		(N_ANON + N_SHM)
#define FR_PAGES	32	/* fault region */
#define NB_PAGES	4	/* mprotect neighbour */
#define GAP_PAGES	4	/* hole for the mmap writer */
#define SLOT_PAGES	(NB_PAGES + FR_PAGES + GAP_PAGES)
#define SCRATCH_PAGES	8	/* mremap writer base size */

static size_t ps;
static double deadline;
static char *arena;
static atomic_int go;

struct slot {
	int id, shm, fd;
	char *nb, *fr, *gap;
	char *alias;		/* second read-only mapping of the memfd */
	/* results, written by the owning fault thread only */
	uint64_t rounds, pages_written, pages_checked, dontneed, zero_pages;
	uint64_t retained_pages, alias_pages, bad, dn_bad, errors;
	char first_bad[256], first_dn_bad[256], first_err[256];
};

static struct slot slots[N_SLOTS];

static struct {
	uint64_t nb_toggles, nb_splits, fr_splits, errors;
	int exec_disabled;
	char first_err[256];
} mp;

static struct {
	uint64_t mmaps, munmaps, shm_mmaps, eexist, ignored, bad, errors;
	char first_err[256];
} mm;

static struct {
	uint64_t grows, shrinks, moves, checked, bad, errors;
	char first_err[256];
} mr;

#define N_PROC		2	/* /proc readers: one starts with maps, one with smaps */
struct pstat {
	uint64_t maps_reads, smaps_reads, lines, smaps_bytes, malformed, errors;
	char first_err[256];
};
static struct pstat prs[N_PROC], pr;	/* per thread, and the sum */

/* Overlap kinds (ktap.h): each kind's ops count only while all kinds run. */
static int ov_fault[2], ov_mprotect, ov_mmap, ov_mremap, ov_proc;

static inline int running(void)
{
	return ktap_now() < deadline;
}

static void wait_go(void)
{
	while (!atomic_load(&go))
		sched_yield();
}

static inline uint64_t pat(int slot, uint64_t gen, size_t page, int which)
{
	return 0x4b4d000000000000ull ^ ((uint64_t)slot << 40) ^ (gen << 12) ^
	       ((uint64_t)page << 2) ^ (uint64_t)which;
}

/* Three words per page: start, middle, end. */
static inline volatile uint64_t *word(char *base, size_t page, int which)
{
	size_t off = page * ps + (which == 0 ? 0 : which == 1 ? ps / 2 : ps - 8);

	return (volatile uint64_t *)(base + off);
}

static void write_page(struct slot *s, uint64_t gen, size_t p)
{
	for (int w = 0; w < 3; w++)
		*word(s->fr, p, w) = pat(s->id, gen, p, w);
	s->pages_written++;
}

/* Returns 1 if the page holds the pattern of generation gen. */
static int check_page(struct slot *s, char *base, uint64_t gen, size_t p, char *msg)
{
	for (int w = 0; w < 3; w++) {
		uint64_t got = *word(base, p, w), want = pat(s->id, gen, p, w);

		if (got != want) {
			note(msg, "slot %d (%s) gen %llu page %zu word %d: got %#llx want %#llx",
			     s->id, s->shm ? "shmem" : "anon", (unsigned long long)gen, p, w,
			     (unsigned long long)got, (unsigned long long)want);
			return 0;
		}
	}
	return 1;
}

static int page_is_zero(const char *page)
{
	const volatile uint64_t *q = (const volatile uint64_t *)page;

	for (size_t i = 0; i < ps / 8; i++)
		if (q[i])
			return 0;
	return 1;
}

static void *fault_thread(void *arg)
{
	struct slot *s = arg;
	uint64_t rng = 0x9e3779b97f4a7c15ull * (s->id + 1), gen = 0;

	wait_go();
	ktap_overlap_start(ov_fault[s->shm]);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !s->rounds); it++) {
		size_t a, n;

		gen++;
		s->rounds++;
		/* Write faults (first touch, COW of the zero page, or refault). */
		for (size_t p = 0; p < FR_PAGES; p++)
			write_page(s, gen, p);
		for (size_t p = 0; p < FR_PAGES; p++) {
			s->pages_checked++;
			if (!check_page(s, s->fr, gen, p, s->first_bad))
				s->bad++;
			/* The other mapping of the same memfd must agree. */
			if (s->alias) {
				s->alias_pages++;
				if (!check_page(s, s->alias, gen, p, s->first_bad))
					s->bad++;
			}
		}

		/* Zap a random run of pages, then take read faults on them. */
		a = ktap_rand(&rng) % FR_PAGES;
		n = 1 + ktap_rand(&rng) % (FR_PAGES - a);
		if (madvise(s->fr + a * ps, n * ps, MADV_DONTNEED)) {
			s->errors++;
			note(s->first_err, "madvise(DONTNEED) slot %d: %s", s->id, strerror(errno));
			ktap_overlap_op(ov_fault[s->shm]);	/* the write faults did happen */
			continue;
		}
		s->dontneed++;
		for (size_t p = 0; p < FR_PAGES; p++) {
			int zapped = p >= a && p < a + n;

			if (zapped && !s->shm) {
				/* Private anon: zapped pages must come back zero-filled. */
				s->zero_pages++;
				if (!page_is_zero(s->fr + p * ps)) {
					s->dn_bad++;
					note(s->first_dn_bad,
					     "slot %d gen %llu page %zu not zero after MADV_DONTNEED (word0 %#llx)",
					     s->id, (unsigned long long)gen, p,
					     (unsigned long long)*word(s->fr, p, 0));
				}
			} else if (zapped) {
				/* Shmem: data lives in the page cache and must survive. */
				s->retained_pages++;
				if (!check_page(s, s->fr, gen, p, s->first_dn_bad))
					s->dn_bad++;
			} else {
				s->pages_checked++;
				if (!check_page(s, s->fr, gen, p, s->first_bad))
					s->bad++;
			}
		}
		ktap_overlap_op(ov_fault[s->shm]);
	}
	ktap_overlap_stop(ov_fault[s->shm]);
	return NULL;
}

static int do_mprotect(void *addr, size_t len, int prot, const char *what)
{
	if (mprotect(addr, len, prot) == 0)
		return 0;
	mp.errors++;
	note(mp.first_err, "mprotect(%s, %#x): %s", what, prot, strerror(errno));
	return -1;
}

static void *mprotect_thread(void *arg)
{
	uint64_t rng = 0x1234567ull;

	(void)arg;
	wait_go();
	ktap_overlap_start(ov_mprotect);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !mp.nb_toggles || !mp.nb_splits ||
						    (!mp.fr_splits && !mp.exec_disabled)); it++) {
		struct slot *s = &slots[ktap_rand(&rng) % N_SLOTS];
		size_t a, n;

		/* Whole neighbour R then RW: split off from / merge with fr. */
		if (!do_mprotect(s->nb, NB_PAGES * ps, PROT_READ, "nb") &&
		    !do_mprotect(s->nb, NB_PAGES * ps, PROT_READ | PROT_WRITE, "nb"))
			mp.nb_toggles++;
		/* One middle page: splits nb into three VMAs and back into one. */
		if (!do_mprotect(s->nb + ps, ps, PROT_READ, "nb page") &&
		    !do_mprotect(s->nb + ps, ps, PROT_READ | PROT_WRITE, "nb page"))
			mp.nb_splits++;
		ktap_overlap_op(ov_mprotect);

		/* Split the fault VMA itself; it stays readable and writable. */
		if (mp.exec_disabled)
			continue;
		a = ktap_rand(&rng) % FR_PAGES;
		n = 1 + ktap_rand(&rng) % (FR_PAGES - a);
		if (mprotect(s->fr + a * ps, n * ps, PROT_READ | PROT_WRITE | PROT_EXEC)) {
			if (errno == EACCES || errno == EPERM) {
				/* e.g. noexec memfd policy or an LSM: not our target */
				mp.exec_disabled = 1;
				ktap_diag("mprotect RWX on fault region refused (%s); fault-region splits disabled",
					  strerror(errno));
				continue;
			}
			mp.errors++;
			note(mp.first_err, "mprotect(fr RWX): %s", strerror(errno));
			continue;
		}
		if (!do_mprotect(s->fr + a * ps, n * ps, PROT_READ | PROT_WRITE, "fr RW"))
			mp.fr_splits++;
	}
	ktap_overlap_stop(ov_mprotect);
	return NULL;
}

static void *mmap_thread(void *arg)
{
	uint64_t rng = 0xabcdefull;
	int fd = memfd_create("kmatrix-gap", MFD_CLOEXEC);

	(void)arg;
	if (fd < 0 || ftruncate(fd, GAP_PAGES * ps)) {
		mm.errors++;
		note(mm.first_err, "memfd for gap: %s", strerror(errno));
		fd = -1;
	}
	wait_go();
	ktap_overlap_start(ov_mmap);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !mm.mmaps); it++) {
		struct slot *s = &slots[ktap_rand(&rng) % N_SLOTS];
		/* Often start right at the fault region's end so anon VMAs merge. */
		size_t a = (ktap_rand(&rng) & 1) ? 0 : ktap_rand(&rng) % GAP_PAGES;
		size_t n = 1 + ktap_rand(&rng) % (GAP_PAGES - a);
		int shm = fd >= 0 && (ktap_rand(&rng) % 4 == 0);
		char *want = s->gap + a * ps, *p;

		p = mmap(want, n * ps, PROT_READ | PROT_WRITE,
			 MAP_FIXED_NOREPLACE | (shm ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS),
			 shm ? fd : -1, 0);
		if (p == MAP_FAILED) {
			if (errno == EEXIST) {
				mm.eexist++;	/* something else landed in the hole */
				continue;
			}
			mm.errors++;
			note(mm.first_err, "mmap(MAP_FIXED_NOREPLACE %zu pages): %s", n, strerror(errno));
			continue;
		}
		if (p != want) {
			/* Kernel too old to know the flag: it was only a hint. */
			mm.ignored++;
			munmap(p, n * ps);
			continue;
		}
		mm.mmaps++;
		mm.shm_mmaps += shm;
		for (size_t i = 0; i < n; i++) {
			volatile uint64_t *q = (volatile uint64_t *)(p + i * ps);

			*q = 0x6761700000000000ull | i;
			if (*q != (0x6761700000000000ull | i)) {
				mm.bad++;
				note(mm.first_err, "gap mapping page %zu lost its write", i);
			}
		}
		/* Unmap the first page alone (a split), then the rest. */
		if (n > 1) {
			if (munmap(p, ps)) {
				mm.errors++;
				note(mm.first_err, "munmap(first page): %s", strerror(errno));
			} else {
				mm.munmaps++;
			}
		}
		if (munmap(n > 1 ? p + ps : p, n > 1 ? (n - 1) * ps : ps)) {
			mm.errors++;
			note(mm.first_err, "munmap: %s", strerror(errno));
		} else {
			mm.munmaps++;
		}
		ktap_overlap_op(ov_mmap);
	}
	ktap_overlap_stop(ov_mmap);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int check_scratch(char *p, size_t from, size_t to, uint64_t gen)
{
	for (size_t i = from; i < to; i++) {
		uint64_t got = *(volatile uint64_t *)(p + i * ps);
		uint64_t want = 0x6d72000000000000ull ^ (gen << 16) ^ i;

		mr.checked++;
		if (got != want) {
			mr.bad++;
			note(mr.first_err, "mremap scratch gen %llu page %zu: got %#llx want %#llx",
			     (unsigned long long)gen, i, (unsigned long long)got,
			     (unsigned long long)want);
			return 0;
		}
	}
	return 1;
}

static void fill_scratch(char *p, size_t from, size_t to, uint64_t gen)
{
	for (size_t i = from; i < to; i++)
		*(volatile uint64_t *)(p + i * ps) = 0x6d72000000000000ull ^ (gen << 16) ^ i;
}

#define MR_FAIL(what) do { \
	mr.errors++; \
	note(mr.first_err, "%s: %s", what, strerror(errno)); \
} while (0)

static void *mremap_thread(void *arg)
{
	uint64_t gen = 0;

	(void)arg;
	wait_go();
	ktap_overlap_start(ov_mremap);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !mr.moves); it++) {
		char *p, *q, *t, *r;
		size_t n = SCRATCH_PAGES;

		gen++;
		p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			MR_FAIL("mmap scratch");
			continue;
		}
		fill_scratch(p, 0, n, gen);

		/* Grow (may move). */
		q = mremap(p, n * ps, 2 * n * ps, MREMAP_MAYMOVE);
		if (q == MAP_FAILED) {
			MR_FAIL("mremap grow");
			munmap(p, n * ps);
			continue;
		}
		mr.grows++;
		check_scratch(q, 0, n, gen);
		fill_scratch(q, n, 2 * n, gen);
		check_scratch(q, 0, 2 * n, gen);

		/* Shrink in place. */
		p = mremap(q, 2 * n * ps, n / 2 * ps, 0);
		if (p == MAP_FAILED) {
			MR_FAIL("mremap shrink");
			munmap(q, 2 * n * ps);
			continue;
		}
		mr.shrinks++;
		check_scratch(p, 0, n / 2, gen);

		/* Move onto a placeholder we own (MREMAP_FIXED replaces it). */
		t = mmap(NULL, n / 2 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (t == MAP_FAILED) {
			MR_FAIL("mmap placeholder");
			munmap(p, n / 2 * ps);
			continue;
		}
		r = mremap(p, n / 2 * ps, n / 2 * ps, MREMAP_MAYMOVE | MREMAP_FIXED, t);
		if (r == MAP_FAILED) {
			MR_FAIL("mremap move");
			munmap(p, n / 2 * ps);
			munmap(t, n / 2 * ps);
			continue;
		}
		mr.moves++;
		check_scratch(r, 0, n / 2, gen);
		if (munmap(r, n / 2 * ps))
			MR_FAIL("munmap moved scratch");
		ktap_overlap_op(ov_mremap);
	}
	ktap_overlap_stop(ov_mremap);
	return NULL;
}

/* Read a whole file with read(2); returns length or -1. */
static ssize_t slurp(const char *path, char **buf, size_t *cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t r;

		if (len + 65536 > *cap) {
			char *nb = realloc(*buf, *cap * 2 + 65536);

			if (!nb) {
				close(fd);
				errno = ENOMEM;
				return -1;
			}
			*buf = nb;
			*cap = *cap * 2 + 65536;
		}
		r = read(fd, *buf + len, *cap - len - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		len += r;
	}
	close(fd);
	(*buf)[len] = 0;
	return len;
}

/* "start-end rwxp offset dev inode [path]" with start < end. */
static int maps_line_ok(const char *l)
{
	unsigned long start, end, off, inode;
	unsigned int maj, min;
	char perms[8];

	if (sscanf(l, "%lx-%lx %7s %lx %x:%x %lu", &start, &end, perms, &off, &maj, &min,
		   &inode) != 7)
		return 0;
	if (start >= end || strlen(perms) != 4)
		return 0;
	return strchr("r-", perms[0]) && strchr("w-", perms[1]) && strchr("x-", perms[2]) &&
	       strchr("ps", perms[3]);
}

static void read_maps(struct pstat *st, char **buf, size_t *cap)
{
	ssize_t len = slurp("/proc/self/maps", buf, cap);

	if (len < 0) {
		st->errors++;
		note(st->first_err, "read /proc/self/maps: %s", strerror(errno));
		return;
	}
	st->maps_reads++;
	if (len == 0 || (*buf)[len - 1] != '\n') {
		st->malformed++;
		note(st->first_err, "/proc/self/maps empty or not newline-terminated");
	}
	for (char *l = *buf, *nl; l < *buf + len; l = nl + 1) {
		nl = strchr(l, '\n');
		if (!nl)
			break;
		*nl = 0;
		st->lines++;
		if (!maps_line_ok(l)) {
			st->malformed++;
			note(st->first_err, "malformed maps line: '%.120s'", l);
		}
	}
}

static void read_smaps(struct pstat *st, char **buf, size_t *cap)
{
	ssize_t len = slurp("/proc/self/smaps", buf, cap);

	if (len < 0) {
		st->errors++;
		note(st->first_err, "read /proc/self/smaps: %s", strerror(errno));
		return;
	}
	st->smaps_reads++;
	st->smaps_bytes += len;
}

static void *proc_thread(void *arg)
{
	struct pstat *st = arg;
	int smaps_first = st != &prs[0];
	char *buf = NULL;
	size_t cap = 0;

	wait_go();
	ktap_overlap_start(ov_proc);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !st->maps_reads || !st->smaps_reads); it++) {
		if (smaps_first)
			read_smaps(st, &buf, &cap);
		read_maps(st, &buf, &cap);
		if (!smaps_first)
			read_smaps(st, &buf, &cap);
		ktap_overlap_op(ov_proc);
	}
	ktap_overlap_stop(ov_proc);
	free(buf);
	return NULL;
}

static int setup(void)
{
	arena = mmap(NULL, N_SLOTS * SLOT_PAGES * ps, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (arena == MAP_FAILED) {
		ktap_diag("mmap arena: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < N_SLOTS; i++) {
		struct slot *s = &slots[i];

		s->id = i;
		s->shm = i >= N_ANON;
		s->fd = -1;
		s->nb = arena + (size_t)i * SLOT_PAGES * ps;
		s->fr = s->nb + NB_PAGES * ps;
		s->gap = s->fr + FR_PAGES * ps;
		if (s->shm) {
			s->fd = memfd_create("kmatrix-fault", MFD_CLOEXEC);
			if (s->fd < 0) {
				ktap_diag("memfd_create: %s", strerror(errno));
				return -1;
			}
			if (ftruncate(s->fd, FR_PAGES * ps)) {
				ktap_diag("ftruncate memfd: %s", strerror(errno));
				return -1;
			}
			/* Replace our own arena pages: MAP_FIXED is safe here. */
			if (mmap(s->fr, FR_PAGES * ps, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_FIXED, s->fd, 0) == MAP_FAILED) {
				ktap_diag("mmap memfd fault region: %s", strerror(errno));
				return -1;
			}
			s->alias = mmap(NULL, FR_PAGES * ps, PROT_READ, MAP_SHARED, s->fd, 0);
			if (s->alias == MAP_FAILED) {
				ktap_diag("mmap memfd alias: %s", strerror(errno));
				return -1;
			}
		}
		/* The gap is a hole for the mmap writer. */
		if (munmap(s->gap, GAP_PAGES * ps)) {
			ktap_diag("munmap gap: %s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t th[N_SLOTS + 3 + N_PROC];
	int nth = 0, ok;
	double dur = ktap_begin(argc, argv, 7 + 6);
	uint64_t sum_w, sum_c, sum_bad, sum_err, sum_zero, sum_ret, sum_dn, sum_dnbad, sum_alias;

	ps = sysconf(_SC_PAGESIZE);
	ktap_diag("faults_vs_writers: duration %.1fs, page size %zu, %d anon + %d shmem fault threads",
		  dur, ps, N_ANON, N_SHM);
	if (setup()) {
		ktap_diag("setup failed");
		return ktap_bail("not run: setup failed");
	}
	ov_fault[0] = ktap_overlap_kind("fault_anon");
	ov_fault[1] = ktap_overlap_kind("fault_shm");
	ov_mprotect = ktap_overlap_kind("mprotect");
	ov_mmap = ktap_overlap_kind("mmap");
	ov_mremap = ktap_overlap_kind("mremap");
	ov_proc = ktap_overlap_kind("proc");
	deadline = ktap_now() + dur;
	for (int i = 0; i < N_SLOTS; i++)
		if (pthread_create(&th[nth++], NULL, fault_thread, &slots[i]))
			goto thread_fail;
	if (pthread_create(&th[nth++], NULL, mprotect_thread, NULL) ||
	    pthread_create(&th[nth++], NULL, mmap_thread, NULL) ||
	    pthread_create(&th[nth++], NULL, mremap_thread, NULL))
		goto thread_fail;
	for (int i = 0; i < N_PROC; i++)
		if (pthread_create(&th[nth++], NULL, proc_thread, &prs[i]))
			goto thread_fail;
	atomic_store(&go, 1);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);

	/* 1, 2: data written by fault threads reads back intact. */
	for (int shm = 0; shm <= 1; shm++) {
		sum_w = sum_c = sum_bad = sum_err = sum_alias = 0;
		for (int i = 0; i < N_SLOTS; i++) {
			struct slot *s = &slots[i];

			if (s->shm != shm)
				continue;
			ktap_diag("slot %d (%s): rounds %llu written %llu checked %llu alias %llu bad %llu errors %llu",
				  i, shm ? "shmem" : "anon", (unsigned long long)s->rounds,
				  (unsigned long long)s->pages_written,
				  (unsigned long long)s->pages_checked,
				  (unsigned long long)s->alias_pages, (unsigned long long)s->bad,
				  (unsigned long long)s->errors);
			if (s->first_bad[0])
				ktap_diag("  first mismatch: %s", s->first_bad);
			if (s->first_err[0])
				ktap_diag("  first error: %s", s->first_err);
			sum_w += s->pages_written;
			sum_c += s->pages_checked;
			sum_bad += s->bad;
			sum_err += s->errors;
			sum_alias += s->alias_pages;
			/* Every fault thread must have done at least one round. */
			if (!s->rounds)
				sum_err++;
		}
		ok = sum_w > 0 && sum_c > 0 && !sum_bad && !sum_err && (!shm || sum_alias > 0);
		ktap_result(ok, "%s faults data intact", shm ? "shmem" : "anon");
	}

	/* 3: after MADV_DONTNEED, anon refaults zero-fill, shmem keeps data. */
	sum_dn = sum_zero = sum_ret = sum_dnbad = 0;
	for (int i = 0; i < N_SLOTS; i++) {
		struct slot *s = &slots[i];

		sum_dn += s->dontneed;
		sum_zero += s->zero_pages;
		sum_ret += s->retained_pages;
		sum_dnbad += s->dn_bad;
		if (s->first_dn_bad[0])
			ktap_diag("slot %d dontneed mismatch: %s", i, s->first_dn_bad);
	}
	ktap_diag("dontneed calls %llu, anon zero-checked pages %llu, shmem retained pages %llu, bad %llu",
		  (unsigned long long)sum_dn, (unsigned long long)sum_zero,
		  (unsigned long long)sum_ret, (unsigned long long)sum_dnbad);
	ktap_result(sum_dn > 0 && sum_zero > 0 && sum_ret > 0 && !sum_dnbad,
		    "dontneed refault zero-fill (anon) and retained (shmem)");

	/* 4..6: writers ran and saw no unexpected errors. */
	ktap_diag("mprotect: nb toggles %llu, nb page splits %llu, fault-region splits %llu, errors %llu",
		  (unsigned long long)mp.nb_toggles, (unsigned long long)mp.nb_splits,
		  (unsigned long long)mp.fr_splits, (unsigned long long)mp.errors);
	if (mp.first_err[0])
		ktap_diag("  first error: %s", mp.first_err);
	ktap_result(mp.nb_toggles > 0 && mp.nb_splits > 0 && !mp.errors &&
		    (mp.fr_splits > 0 || mp.exec_disabled),
		    "mprotect writer ran (neighbour merge/split, fault VMA split)");

	ktap_diag("mmap: NOREPLACE mmaps %llu (shmem %llu), munmaps %llu, eexist %llu, hint-only %llu, bad %llu, errors %llu",
		  (unsigned long long)mm.mmaps, (unsigned long long)mm.shm_mmaps,
		  (unsigned long long)mm.munmaps, (unsigned long long)mm.eexist,
		  (unsigned long long)mm.ignored, (unsigned long long)mm.bad,
		  (unsigned long long)mm.errors);
	if (mm.first_err[0])
		ktap_diag("  first error: %s", mm.first_err);
	ktap_result(mm.mmaps > 0 && mm.munmaps > 0 && !mm.bad && !mm.errors && !mm.ignored,
		    "mmap/munmap writer ran (MAP_FIXED_NOREPLACE next to fault regions)");

	ktap_diag("mremap: grows %llu, shrinks %llu, moves %llu, pages checked %llu, bad %llu, errors %llu",
		  (unsigned long long)mr.grows, (unsigned long long)mr.shrinks,
		  (unsigned long long)mr.moves, (unsigned long long)mr.checked,
		  (unsigned long long)mr.bad, (unsigned long long)mr.errors);
	if (mr.first_err[0])
		ktap_diag("  first error: %s", mr.first_err);
	ktap_result(mr.grows > 0 && mr.shrinks > 0 && mr.moves > 0 && !mr.bad && !mr.errors,
		    "mremap writer ran (grow/shrink/move, data intact)");

	/* 7: /proc readers (summed; each one must have read both files). */
	for (int i = 0; i < N_PROC; i++) {
		pr.maps_reads += prs[i].maps_reads;
		pr.smaps_reads += prs[i].smaps_reads;
		pr.lines += prs[i].lines;
		pr.smaps_bytes += prs[i].smaps_bytes;
		pr.malformed += prs[i].malformed;
		pr.errors += prs[i].errors;
		if (!prs[i].maps_reads || !prs[i].smaps_reads)
			pr.errors++;
		if (prs[i].first_err[0])
			note(pr.first_err, "%s", prs[i].first_err);
	}
	ktap_diag("proc: maps reads %llu (%llu lines), smaps reads %llu (%llu bytes), malformed %llu, errors %llu",
		  (unsigned long long)pr.maps_reads, (unsigned long long)pr.lines,
		  (unsigned long long)pr.smaps_reads, (unsigned long long)pr.smaps_bytes,
		  (unsigned long long)pr.malformed, (unsigned long long)pr.errors);
	if (pr.first_err[0])
		ktap_diag("  first error: %s", pr.first_err);
	ktap_result(pr.maps_reads > 0 && pr.smaps_reads > 0 && !pr.malformed && !pr.errors,
		    "proc maps/smaps readers ran, output well-formed");

	/* 8..13: every kind worked while all the others were running. */
	ktap_overlap_report();
	return ktap_end();

thread_fail:
	nth--;	/* the last th[nth++] is the one that failed */
	ktap_diag("pthread_create failed");
	atomic_store(&go, 1);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	return ktap_bail("not run: pthread_create failed");
}
