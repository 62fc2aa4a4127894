// SPDX-License-Identifier: GPL-2.0
/*
 * mempolicy_vs_faults - NUMA memory policy and page migration racing page
 * faults and VMA splits.
 *
 * Fault threads own slots of an anonymous region A (two threads) and of a
 * memfd region M (one thread). Each round they check that every page still
 * holds what they last stored there (three words per page: slot, page,
 * generation; zero after MADV_DONTNEED of anonymous memory), store the next
 * generation, and zap a random run of pages so the next round faults them
 * in again. Around them, with raw system calls:
 *
 *   mbind      mbind() of random sub-ranges of A and M with random policies
 *              (BIND, PREFERRED, INTERLEAVE, PREFERRED_MANY, WEIGHTED_INTERLEAVE
 *              where the kernel has it, DEFAULT), sometimes MPOL_MF_MOVE: the
 *              VMA is split at the range's edges and its policy replaced
 *              (vma_replace_policy() under the VMA write lock), and merged back
 *              when the policies agree again; set_mempolicy_home_node() on what
 *              it just bound. Every fourth call is a placement round (with two
 *              nodes): mbind(all of A, MPOL_BIND to one node,
 *              MPOL_MF_MOVE | MPOL_MF_STRICT) while the faults go on, then
 *              move_pages() asks where each page of A is: every page must be on
 *              that node. mbind write-locks the VMAs before it looks for pages
 *              to move, so a fault either finished before (its page is moved)
 *              or waits and allocates under the new policy.
 *   migrate    move_pages() of random pages of A and M to a random node (each
 *              status must be that node or a plain "could not" errno) and, now
 *              and then, migrate_pages() of the whole process to one node.
 *              Held off during placement rounds (a rwlock), not during faults.
 *   split      mprotect() of sub-ranges of A (RW <-> RWX: access unchanged) and
 *              of its anonymous neighbour, mmap/munmap in the gap after it.
 *   query      get_mempolicy(MPOL_F_ADDR) of random addresses of A and M: the
 *              mode is one the mbind thread uses, the nodes are online.
 *
 * Two NUMA nodes are what kmatrix's `vm: numa-nodes: 2` gives the guest (QEMU
 * -numa). With one node the races still run; the placement and moving cases
 * are SKIP with that reason. A kernel without NUMA answers ENOSYS: every case
 * is SKIP with that reason.
 */
#define _GNU_SOURCE
#include "ktap.h"

#include <sys/syscall.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef SYS_set_mempolicy_home_node
#define SYS_set_mempolicy_home_node 450	/* the same on x86_64 and arm64 */
#endif

/* <linux/mempolicy.h>, spelled out so the program builds against old headers. */
enum {
	K_MPOL_DEFAULT, K_MPOL_PREFERRED, K_MPOL_BIND, K_MPOL_INTERLEAVE, K_MPOL_LOCAL,
	K_MPOL_PREFERRED_MANY, K_MPOL_WEIGHTED_INTERLEAVE, K_MPOL_MAX
};
#define K_MPOL_MF_STRICT	(1 << 0)
#define K_MPOL_MF_MOVE		(1 << 1)
#define K_MPOL_F_NODE		(1 << 0)
#define K_MPOL_F_ADDR		(1 << 1)
#define K_MPOL_MODE_FLAGS	0xe000	/* STATIC_NODES, RELATIVE_NODES, NUMA_BALANCING */

#define N_ANON		2
#define SLOT_PAGES	32
#define A_PAGES		(N_ANON * SLOT_PAGES)
#define M_PAGES		32
#define NB_PAGES	4
#define GAP_PAGES	4
#define MASK_BITS	64
#define MAX_NODES	MASK_BITS
#define NOT_WRITTEN	INT32_MIN	/* a move_pages() status the kernel did not store */

static size_t ps;
static double deadline;
static atomic_int go;
static char *nb, *A, *gap, *M;
static int nnodes, node_ids[MAX_NODES];
static unsigned long all_nodes;	/* mask of the online nodes */
static int weighted_ok = 1;	/* MPOL_WEIGHTED_INTERLEAVE (6.9) known to this kernel */
static pthread_rwlock_t placement = PTHREAD_RWLOCK_INITIALIZER;

struct slot {
	int id, shm;
	char *base;
	size_t pages;
	uint64_t gen[SLOT_PAGES];	/* last stored generation per page, 0: zapped (anon) */
	uint64_t rounds, checked, zapped, bad, errors;
	char first_bad[256], first_err[256];
};
static struct slot slots[N_ANON + 1];

static struct {
	uint64_t calls, moves, by_mode[K_MPOL_MAX], home_ok, home_enosys, einval_weighted;
	uint64_t rounds, rounds_eio, checked, misplaced, errors;
	char first_bad[256], first_err[256];
} mb;

static struct {
	uint64_t calls, pages, moved, not_moved, unmoved_calls, whole, whole_unmoved, errors;
	char first_bad[256], first_err[256];
	uint64_t bad;
} mg;

static struct {
	uint64_t fr_toggles, nb_toggles, gap_mmaps, gap_eexist, errors;
	char first_err[256];
} sp;

static struct {
	uint64_t calls, bad, errors;
	char first_bad[256], first_err[256];
} qy;

static int ov_fault_anon, ov_fault_shm, ov_mbind, ov_migrate, ov_split, ov_query;

static void wait_go(void)
{
	while (!atomic_load(&go))
		sched_yield();
}

static long k_mbind(void *addr, size_t len, int mode, const unsigned long *mask, unsigned flags)
{
	/* maxnode counts one past the bits the kernel reads. */
	return syscall(SYS_mbind, addr, len, mode, mask, mask ? MASK_BITS + 1 : 0, flags);
}

static long k_get_mempolicy(int *mode, unsigned long *mask, void *addr, unsigned long flags)
{
	return syscall(SYS_get_mempolicy, mode, mask, mask ? 2 * MASK_BITS : 0, addr, flags);
}

static long k_move_pages(unsigned long count, void **pages, const int *nodes, int *status)
{
	return syscall(SYS_move_pages, 0, count, pages, nodes, status, nodes ? K_MPOL_MF_MOVE : 0);
}

static long k_migrate_pages(unsigned long from, unsigned long to)
{
	return syscall(SYS_migrate_pages, 0, MASK_BITS + 1, &from, &to);
}

/* ------------------------------------------------------------------ faults */

static inline uint64_t pat(int slot, size_t page, uint64_t gen, int w)
{
	return 0x4e554d4100000000ull ^ ((uint64_t)slot << 56) ^ ((uint64_t)page << 40) ^
	       (gen << 2) ^ (uint64_t)w;
}

static inline volatile uint64_t *word(char *base, size_t page, int w)
{
	return (volatile uint64_t *)(base + page * ps + (w == 0 ? 0 : w == 1 ? ps / 2 : ps - 8));
}

static void *fault_thread(void *arg)
{
	struct slot *s = arg;
	uint64_t rng = 0xfa17ull * (s->id + 7), gen = 0;
	int kind = s->shm ? ov_fault_shm : ov_fault_anon;

	wait_go();
	ktap_overlap_start(kind);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !s->rounds); it++) {
		size_t a, n;

		gen++;
		for (size_t p = 0; p < s->pages; p++) {
			for (int w = 0; w < 3; w++) {
				uint64_t got = *word(s->base, p, w);
				uint64_t want = s->gen[p] ? pat(s->id, p, s->gen[p], w) : 0;

				if (got != want) {
					s->bad++;
					note(s->first_bad,
					     "slot %d (%s) page %zu word %d: got %#llx, want %#llx (generation %llu%s)",
					     s->id, s->shm ? "memfd" : "anon", p, w,
					     (unsigned long long)got, (unsigned long long)want,
					     (unsigned long long)s->gen[p],
					     s->gen[p] ? "" : ", zapped: zero");
					break;
				}
			}
			s->checked++;
			for (int w = 0; w < 3; w++)
				*word(s->base, p, w) = pat(s->id, p, gen, w);
			s->gen[p] = gen;
		}
		/* Zap a run: the next round faults it in again, under whatever policy. */
		a = ktap_rand(&rng) % s->pages;
		n = 1 + ktap_rand(&rng) % (s->pages - a < 8 ? s->pages - a : 8);
		if (madvise(s->base + a * ps, n * ps, MADV_DONTNEED)) {
			s->errors++;
			note(s->first_err, "madvise(DONTNEED): %s", strerror(errno));
		} else if (!s->shm) {
			for (size_t p = a; p < a + n; p++)
				s->gen[p] = 0;
			s->zapped += n;
		}
		s->rounds++;
		ktap_overlap_op(kind);
	}
	ktap_overlap_stop(kind);
	return NULL;
}

/* ------------------------------------------------------------------- mbind */

static int node_at(uint64_t *rng)
{
	return node_ids[ktap_rand(rng) % nnodes];
}

static const char *const mode_name[K_MPOL_MAX] = {
	"DEFAULT", "PREFERRED", "BIND", "INTERLEAVE", "LOCAL", "PREFERRED_MANY",
	"WEIGHTED_INTERLEAVE",
};

/* A placement round: bind all of A to one node while the faults go on, then look. */
static void placement_round(uint64_t *rng)
{
	void *pages[A_PAGES];
	int status[A_PAGES];
	int node = node_at(rng);
	unsigned long mask = 1ul << node;
	long r;

	pthread_rwlock_wrlock(&placement);
	r = k_mbind(A, A_PAGES * ps, K_MPOL_BIND, &mask, K_MPOL_MF_MOVE | K_MPOL_MF_STRICT);
	if (r && errno == EIO) {
		mb.rounds_eio++;	/* some page could not be moved: nothing to hold it to */
	} else if (r) {
		mb.errors++;
		note(mb.first_err, "placement mbind(A, BIND {%d}, MOVE|STRICT): %s", node,
		     strerror(errno));
	} else {
		for (size_t p = 0; p < A_PAGES; p++)
			pages[p] = A + p * ps;
		if (k_move_pages(A_PAGES, pages, NULL, status)) {
			mb.errors++;
			note(mb.first_err, "move_pages(query A): %s", strerror(errno));
		} else {
			mb.rounds++;
			for (size_t p = 0; p < A_PAGES; p++) {
				/* -ENOENT: not faulted in; -EFAULT: the zero page. */
				if (status[p] == -ENOENT || status[p] == -EFAULT)
					continue;
				mb.checked++;
				if (status[p] != node) {
					mb.misplaced++;
					note(mb.first_bad,
					     "after mbind(A, BIND {%d}, MOVE|STRICT) returned 0, page %zu of A is %s %d",
					     node, p, status[p] < 0 ? "status" : "on node", status[p]);
				}
			}
		}
	}
	pthread_rwlock_unlock(&placement);
}

static void *mbind_thread(void *arg)
{
	uint64_t rng = 0xb1d;

	(void)arg;
	wait_go();
	ktap_overlap_start(ov_mbind);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !mb.calls); it++) {
		int shm = ktap_rand(&rng) % 3 == 0;
		size_t pages = shm ? M_PAGES : A_PAGES;
		char *base = shm ? M : A;
		size_t a = ktap_rand(&rng) % pages;
		size_t n = 1 + ktap_rand(&rng) % (pages - a);
		int mode = ktap_rand(&rng) % K_MPOL_MAX;
		unsigned long mask = 0;
		unsigned flags = ktap_rand(&rng) & 1 ? K_MPOL_MF_MOVE : 0;
		long r;

		if (nnodes > 1 && (it & 3) == 3) {
			placement_round(&rng);
			ktap_overlap_op(ov_mbind);
			continue;
		}
		if (mode == K_MPOL_LOCAL || (mode == K_MPOL_WEIGHTED_INTERLEAVE && !weighted_ok))
			mode = K_MPOL_DEFAULT;
		switch (mode) {
		case K_MPOL_DEFAULT:
			break;
		case K_MPOL_PREFERRED:
		case K_MPOL_BIND:
			mask = 1ul << node_at(&rng);
			break;
		default:
			mask = all_nodes;
		}
		pthread_rwlock_rdlock(&placement);
		r = k_mbind(base + a * ps, n * ps, mode, mode == K_MPOL_DEFAULT ? NULL : &mask, flags);
		if (r == 0 && (mode == K_MPOL_BIND || mode == K_MPOL_PREFERRED_MANY)) {
			/* The range now has one policy that takes a home node. */
			if (syscall(SYS_set_mempolicy_home_node, base + a * ps, n * ps,
				    node_at(&rng), 0) == 0) {
				mb.home_ok++;
			} else if (errno == ENOSYS) {
				mb.home_enosys++;
			} else {
				mb.errors++;
				note(mb.first_err, "set_mempolicy_home_node(%s range of %zu pages after %s): %s",
				     shm ? "memfd" : "anon", n, mode_name[mode], strerror(errno));
			}
		}
		pthread_rwlock_unlock(&placement);
		if (r && mode == K_MPOL_WEIGHTED_INTERLEAVE && errno == EINVAL) {
			weighted_ok = 0;	/* before 6.9 */
			mb.einval_weighted++;
		} else if (r && !(flags && errno == EIO)) {
			mb.errors++;
			note(mb.first_err, "mbind(%s, %zu pages, %s, mask %#lx, flags %#x): %s",
			     shm ? "memfd" : "anon", n, mode_name[mode], mask, flags, strerror(errno));
		} else if (!r) {
			mb.calls++;
			mb.moves += !!flags;
			mb.by_mode[mode]++;
		}
		ktap_overlap_op(ov_mbind);
	}
	ktap_overlap_stop(ov_mbind);
	/* Leave A and M without policies for the next round of anything. */
	k_mbind(A, A_PAGES * ps, K_MPOL_DEFAULT, NULL, 0);
	k_mbind(M, M_PAGES * ps, K_MPOL_DEFAULT, NULL, 0);
	return NULL;
}

/* ----------------------------------------------------------------- migrate */

static void *migrate_thread(void *arg)
{
	uint64_t rng = 0x319;
	void *pages[16];
	int nodes[16], status[16];

	(void)arg;
	wait_go();
	ktap_overlap_start(ov_migrate);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !mg.calls); it++) {
		size_t n = 1 + ktap_rand(&rng) % 16;
		long r;

		for (size_t i = 0; i < n; i++) {
			int shm = ktap_rand(&rng) & 1;

			pages[i] = (shm ? M : A) + (ktap_rand(&rng) % (shm ? M_PAGES : A_PAGES)) * ps;
			nodes[i] = node_at(&rng);
		}
		/* After a batch fails the kernel stops and leaves the rest unwritten. */
		for (size_t i = 0; i < n; i++)
			status[i] = NOT_WRITTEN;
		pthread_rwlock_rdlock(&placement);
		r = k_move_pages(n, pages, nodes, status);
		if (r < 0) {
			mg.errors++;
			note(mg.first_err, "move_pages(%zu pages): %s", n, strerror(errno));
		} else {
			mg.calls++;
			mg.pages += n;
			mg.unmoved_calls += r > 0;
			for (size_t i = 0; i < n; i++) {
				if (status[i] == nodes[i]) {
					mg.moved++;
				} else if (status[i] == -ENOENT || status[i] == -EFAULT ||
					   status[i] == -EBUSY || status[i] == -ENOMEM ||
					   status[i] == -EAGAIN || (r > 0 && status[i] == NOT_WRITTEN)) {
					mg.not_moved++;
				} else {
					mg.bad++;
					note(mg.first_bad,
					     "move_pages of %p to node %d: status %d (neither the node nor a plain failure)",
					     pages[i], nodes[i], status[i]);
				}
			}
		}
		if ((it & 15) == 15 && nnodes > 1) {
			unsigned long to = 1ul << node_at(&rng);

			r = k_migrate_pages(all_nodes & ~to, to);
			if (r < 0) {
				mg.errors++;
				note(mg.first_err, "migrate_pages(to %#lx): %s", to, strerror(errno));
			} else {
				mg.whole++;
				mg.whole_unmoved += r;
			}
		}
		pthread_rwlock_unlock(&placement);
		ktap_overlap_op(ov_migrate);
	}
	ktap_overlap_stop(ov_migrate);
	return NULL;
}

/* ------------------------------------------------------------------- split */

#define SERR(what) do { \
	sp.errors++; \
	note(sp.first_err, "%s: %s", what, strerror(errno)); \
} while (0)

static void *split_thread(void *arg)
{
	uint64_t rng = 0x5b1;

	(void)arg;
	wait_go();
	ktap_overlap_start(ov_split);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !sp.fr_toggles); it++) {
		size_t a = ktap_rand(&rng) % A_PAGES;
		size_t n = 1 + ktap_rand(&rng) % (A_PAGES - a);
		size_t g = 1 + ktap_rand(&rng) % GAP_PAGES;
		char *p;

		/* Split A at both ends of the range and merge it back. */
		if (mprotect(A + a * ps, n * ps, PROT_READ | PROT_WRITE | PROT_EXEC) ||
		    mprotect(A + a * ps, n * ps, PROT_READ | PROT_WRITE))
			SERR("mprotect A RW <-> RWX");
		else
			sp.fr_toggles++;
		if (mprotect(nb, NB_PAGES * ps, PROT_READ) ||
		    mprotect(nb, NB_PAGES * ps, PROT_READ | PROT_WRITE))
			SERR("mprotect neighbour");
		else
			sp.nb_toggles++;
		p = mmap(gap, g * ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED) {
			if (errno == EEXIST)
				sp.gap_eexist++;
			else
				SERR("mmap gap");
		} else if (p != gap) {
			munmap(p, g * ps);
			errno = EINVAL;
			SERR("MAP_FIXED_NOREPLACE ignored");
		} else {
			*(volatile char *)p = 1;
			if (munmap(p, g * ps))
				SERR("munmap gap");
			else
				sp.gap_mmaps++;
		}
		ktap_overlap_op(ov_split);
		usleep(50);
	}
	ktap_overlap_stop(ov_split);
	return NULL;
}

/* ------------------------------------------------------------------- query */

static void *query_thread(void *arg)
{
	uint64_t rng = 0x9e7;

	(void)arg;
	wait_go();
	ktap_overlap_start(ov_query);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !qy.calls); it++) {
		int shm = ktap_rand(&rng) & 1, mode = -1;
		char *addr = (shm ? M : A) + (ktap_rand(&rng) % (shm ? M_PAGES : A_PAGES)) * ps;
		unsigned long mask[2] = { 0, 0 };

		if (k_get_mempolicy(&mode, mask, addr, K_MPOL_F_ADDR)) {
			qy.errors++;
			note(qy.first_err, "get_mempolicy(MPOL_F_ADDR, %p): %s", addr, strerror(errno));
		} else {
			int m = mode & ~K_MPOL_MODE_FLAGS;

			qy.calls++;
			if (m < 0 || m >= K_MPOL_MAX || m == K_MPOL_LOCAL || (mask[0] & ~all_nodes) ||
			    mask[1] || (m != K_MPOL_DEFAULT && !mask[0])) {
				qy.bad++;
				note(qy.first_bad, "get_mempolicy(%p): mode %#x, nodes %#lx:%#lx (online %#lx)",
				     addr, mode, mask[1], mask[0], all_nodes);
			}
		}
		ktap_overlap_op(ov_query);
		usleep(20);
	}
	ktap_overlap_stop(ov_query);
	return NULL;
}

/* ------------------------------------------------------------------- setup */

/* Online nodes from sysfs ("0-1", "0,2-3"); 0 if unreadable. */
static int read_nodes(void)
{
	char buf[256], *p;
	int fd = open("/sys/devices/system/node/online", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = buf;
	while (*p && *p != '\n') {
		char *end;
		long a = strtol(p, &end, 10), b = a;

		if (end == p)
			return 0;
		p = end;
		if (*p == '-') {
			b = strtol(p + 1, &end, 10);
			p = end;
		}
		for (long i = a; i <= b && i < MAX_NODES; i++) {
			node_ids[nnodes++] = (int)i;
			all_nodes |= 1ul << i;
		}
		if (*p == ',')
			p++;
	}
	return nnodes;
}

static int setup(char *why)
{
	size_t total = (NB_PAGES + A_PAGES + GAP_PAGES) * ps;
	char *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd;

	if (base == MAP_FAILED) {
		snprintf(why, 256, "mmap A: %s", strerror(errno));
		return -1;
	}
	nb = base;
	A = nb + NB_PAGES * ps;
	gap = A + A_PAGES * ps;
	if (munmap(gap, GAP_PAGES * ps)) {
		snprintf(why, 256, "munmap gap: %s", strerror(errno));
		return -1;
	}
	fd = syscall(SYS_memfd_create, "kmatrix-mempolicy", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, M_PAGES * ps)) {
		snprintf(why, 256, "memfd: %s", strerror(errno));
		return -1;
	}
	M = mmap(NULL, M_PAGES * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (M == MAP_FAILED) {
		snprintf(why, 256, "mmap memfd: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < N_ANON; i++) {
		slots[i].id = i;
		slots[i].base = A + i * SLOT_PAGES * ps;
		slots[i].pages = SLOT_PAGES;
	}
	slots[N_ANON].id = N_ANON;
	slots[N_ANON].shm = 1;
	slots[N_ANON].base = M;
	slots[N_ANON].pages = M_PAGES;
	return 0;
}

int main(int argc, char **argv)
{
	double dur = ktap_begin(argc, argv, 7 + 6);
	static const char *const kinds[6] = {
		"fault_anon", "fault_shm", "mbind", "migrate", "split", "query",
	};
	pthread_t th[N_ANON + 5];
	char why[256], one_node[160];
	int nth = 0, mode;
	uint64_t bad = 0, errors = 0, checked = 0, zapped = 0;

	ps = sysconf(_SC_PAGESIZE);
	ktap_diag("mempolicy_vs_faults: duration %.1fs, page size %zu", dur, ps);
	if (k_get_mempolicy(&mode, NULL, NULL, 0) && errno == ENOSYS) {
		snprintf(why, sizeof(why),
			 "kernel has no NUMA memory policy (get_mempolicy: %s; CONFIG_NUMA off)",
			 strerror(ENOSYS));
		for (int i = 0; i < 7; i++)
			ktap_skip(why, "%s", (const char *[]){
				"NUMA nodes found and memory policy set up",
				"fault data intact through mbind, migration and splits",
				"pages faulted during mbind(MPOL_BIND, MPOL_MF_MOVE|MPOL_MF_STRICT) are on the bound node",
				"move_pages and migrate_pages moved pages between nodes",
				"mbind and set_mempolicy_home_node applied policies to sub-ranges",
				"get_mempolicy answers consistent",
				"VMA splitter ran" }[i]);
		for (int k = 0; k < 6; k++)
			ktap_skip(why, "%s overlapped the other kinds", kinds[k]);
		return ktap_end();
	}
	if (!read_nodes() || setup(why)) {
		if (!nnodes)
			snprintf(why, sizeof(why), "no online nodes in /sys/devices/system/node/online");
		ktap_result(0, "NUMA nodes found and memory policy set up: %s", why);
		return ktap_bail("not run: setup failed");
	}
	ktap_diag("online NUMA nodes: %d (mask %#lx)", nnodes, all_nodes);
	snprintf(one_node, sizeof(one_node),
		 "one NUMA node online (the guest needs two: QEMU -numa, kmatrix's vm.numa-nodes: 2)");
	ktap_result(1, "NUMA nodes found and memory policy set up");

	ov_fault_anon = ktap_overlap_kind("fault_anon");
	ov_fault_shm = ktap_overlap_kind("fault_shm");
	ov_mbind = ktap_overlap_kind("mbind");
	ov_migrate = ktap_overlap_kind("migrate");
	ov_split = ktap_overlap_kind("split");
	ov_query = ktap_overlap_kind("query");
	deadline = ktap_now() + dur;
	for (int i = 0; i <= N_ANON; i++)
		if (pthread_create(&th[nth], NULL, fault_thread, &slots[i]) == 0)
			nth++;
	if (pthread_create(&th[nth], NULL, mbind_thread, NULL) == 0)
		nth++;
	if (pthread_create(&th[nth], NULL, migrate_thread, NULL) == 0)
		nth++;
	if (pthread_create(&th[nth], NULL, split_thread, NULL) == 0)
		nth++;
	if (pthread_create(&th[nth], NULL, query_thread, NULL) == 0)
		nth++;
	if (nth < N_ANON + 5)
		ktap_diag("pthread_create failed");
	atomic_store(&go, 1);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);

	/* 2: the data. */
	for (int i = 0; i <= N_ANON; i++) {
		struct slot *s = &slots[i];

		ktap_diag("fault slot %d (%s): rounds %llu, pages checked %llu, zapped %llu, bad %llu, errors %llu",
			  i, s->shm ? "memfd" : "anon", (unsigned long long)s->rounds,
			  (unsigned long long)s->checked, (unsigned long long)s->zapped,
			  (unsigned long long)s->bad, (unsigned long long)s->errors);
		if (s->first_bad[0])
			ktap_diag("  first mismatch: %s", s->first_bad);
		if (s->first_err[0])
			ktap_diag("  first error: %s", s->first_err);
		bad += s->bad;
		errors += s->errors;
		checked += s->checked;
		zapped += s->zapped;
	}
	ktap_result(checked > 0 && zapped > 0 && !bad && !errors,
		    "fault data intact through mbind, migration and splits");

	/* 3: placement. */
	ktap_diag("placement rounds: %llu checked (%llu pages on the bound node or not), %llu answered EIO, misplaced %llu",
		  (unsigned long long)mb.rounds, (unsigned long long)mb.checked,
		  (unsigned long long)mb.rounds_eio, (unsigned long long)mb.misplaced);
	if (mb.first_bad[0])
		ktap_diag("  first misplaced page: %s", mb.first_bad);
	if (nnodes < 2)
		ktap_skip(one_node, "pages faulted during mbind(MPOL_BIND, MPOL_MF_MOVE|MPOL_MF_STRICT) are on the bound node");
	else
		ktap_result(mb.rounds > 0 && mb.checked > 0 && !mb.misplaced,
			    "pages faulted during mbind(MPOL_BIND, MPOL_MF_MOVE|MPOL_MF_STRICT) are on the bound node");

	/* 4: moving. */
	ktap_diag("move_pages: calls %llu (%llu stopped at a page that did not move), pages %llu, moved %llu, not moved %llu, unexpected %llu; migrate_pages: %llu calls, %llu pages left behind; errors %llu",
		  (unsigned long long)mg.calls, (unsigned long long)mg.unmoved_calls,
		  (unsigned long long)mg.pages,
		  (unsigned long long)mg.moved, (unsigned long long)mg.not_moved,
		  (unsigned long long)mg.bad, (unsigned long long)mg.whole,
		  (unsigned long long)mg.whole_unmoved, (unsigned long long)mg.errors);
	if (mg.first_bad[0])
		ktap_diag("  first unexpected status: %s", mg.first_bad);
	if (mg.first_err[0])
		ktap_diag("  first error: %s", mg.first_err);
	if (nnodes < 2)
		ktap_skip(one_node, "move_pages and migrate_pages moved pages between nodes");
	else
		ktap_result(mg.moved > 0 && mg.whole > 0 && !mg.bad && !mg.errors,
			    "move_pages and migrate_pages moved pages between nodes");

	/* 5: policies. */
	ktap_diag("mbind: %llu calls (%llu with MPOL_MF_MOVE): DEFAULT %llu, PREFERRED %llu, BIND %llu, INTERLEAVE %llu, PREFERRED_MANY %llu, WEIGHTED_INTERLEAVE %llu%s; set_mempolicy_home_node ok %llu, ENOSYS %llu; errors %llu",
		  (unsigned long long)mb.calls, (unsigned long long)mb.moves,
		  (unsigned long long)mb.by_mode[K_MPOL_DEFAULT],
		  (unsigned long long)mb.by_mode[K_MPOL_PREFERRED],
		  (unsigned long long)mb.by_mode[K_MPOL_BIND],
		  (unsigned long long)mb.by_mode[K_MPOL_INTERLEAVE],
		  (unsigned long long)mb.by_mode[K_MPOL_PREFERRED_MANY],
		  (unsigned long long)mb.by_mode[K_MPOL_WEIGHTED_INTERLEAVE],
		  weighted_ok ? "" : " (the kernel has no WEIGHTED_INTERLEAVE)",
		  (unsigned long long)mb.home_ok, (unsigned long long)mb.home_enosys,
		  (unsigned long long)mb.errors);
	if (mb.first_err[0])
		ktap_diag("  first error: %s", mb.first_err);
	ktap_result(mb.by_mode[K_MPOL_BIND] && mb.by_mode[K_MPOL_DEFAULT] &&
		    mb.by_mode[K_MPOL_INTERLEAVE] && (mb.home_ok || mb.home_enosys) && !mb.errors,
		    "mbind and set_mempolicy_home_node applied policies to sub-ranges");

	/* 6: queries. */
	ktap_diag("get_mempolicy: %llu answers, inconsistent %llu, errors %llu",
		  (unsigned long long)qy.calls, (unsigned long long)qy.bad,
		  (unsigned long long)qy.errors);
	if (qy.first_bad[0])
		ktap_diag("  first inconsistent answer: %s", qy.first_bad);
	if (qy.first_err[0])
		ktap_diag("  first error: %s", qy.first_err);
	ktap_result(qy.calls > 0 && !qy.bad && !qy.errors, "get_mempolicy answers consistent");

	/* 7: splits. */
	ktap_diag("split: A RW <-> RWX %llu, neighbour %llu, gap mmaps %llu (eexist %llu), errors %llu",
		  (unsigned long long)sp.fr_toggles, (unsigned long long)sp.nb_toggles,
		  (unsigned long long)sp.gap_mmaps, (unsigned long long)sp.gap_eexist,
		  (unsigned long long)sp.errors);
	if (sp.first_err[0])
		ktap_diag("  first error: %s", sp.first_err);
	ktap_result(sp.fr_toggles && sp.nb_toggles && sp.gap_mmaps && !sp.errors,
		    "VMA splitter ran");

	/* 8..13: every kind worked while all the others ran. */
	ktap_overlap_report();
	return ktap_end();
}
