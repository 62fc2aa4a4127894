// SPDX-License-Identifier: GPL-2.0
/*
 * binder_vs_writers - binder transactions installing buffer pages while the
 * receiving processes change, unmap and lose their binder VMAs.
 *
 * Binder copies a transaction's data straight into the receiver's binder
 * mapping: binder_alloc_new_buf() -> binder_install_single_page() ->
 * binder_page_insert(), which looks the receiver's VMA up under its per-VMA
 * lock (7.3: lock_vma_under_rcu(), mmap_lock fallback; the series:
 * vma_start_read_unlocked()) from the *sender's* thread, and
 * vm_insert_page()s a fresh page there. The shrinker
 * (binder_alloc_free_page(), reached through drop_caches) zaps the pages of
 * freed buffers again, so later transactions install them anew.
 *
 * A forked server is the context manager of a binder device of our own (a
 * private binderfs mount, BINDER_CTL_ADD); two looper threads verify every
 * request byte in their mapping and reply with a buffer of their own, which
 * the client threads verify in theirs. Around each binder mapping:
 *
 *   [ nb: anon ][ binder mapping (1 MiB, PROT_READ) ][ gap ]
 *
 * Kinds (each its own thread, counted in the overlap window):
 *   client      2 threads of this process: BC_TRANSACTION, wait for BR_REPLY,
 *               verify, BC_FREE_BUFFER.
 *   server      2 looper threads of the server process: verify, BC_FREE_BUFFER
 *               + BC_REPLY.
 *   client_vma, server_vma   a writer in each process on its own binder VMA:
 *               MADV_RANDOM/MADV_NORMAL of the whole mapping and
 *               MADV_SEQUENTIAL/MADV_NORMAL of its second half (write-locks the
 *               VMA the other side is installing pages into; the half splits
 *               it for good: binder VMAs never merge), mprotect of nb
 *               (split/merge next to it) and mmap/munmap in the gap.
 *   churn       forks short-lived clients (a fresh mm and binder_alloc each):
 *               a few verified transactions, then exit cleanly, exit with a
 *               transaction in flight (the reply's pages go into an exiting
 *               mm), or munmap the binder mapping with one in flight.
 *   shrink      writes 2 to /proc/sys/vm/drop_caches: binder's shrinker
 *               reclaims the pages of freed buffers (counted from binder's
 *               own page statistics, debugfs or binderfs' binder_logs).
 *
 * A sequence count around each writer call on a binder VMA (odd while inside;
 * in shared memory for the server's) tells the transactions that raced a
 * write-lock of the receiver's VMA: then the lookup cannot take the VMA under
 * RCU and goes the slow way (7.3: mmap_lock fallback; v2: a NULL vma).
 *
 * No binderfs in the kernel ('binder' missing from /proc/filesystems): every
 * case is SKIP with that reason.
 */
#define _GNU_SOURCE
#include "ktap.h"

#include <linux/android/binder.h>
#include <linux/android/binderfs.h>
#include <setjmp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define MAP_BYTES	(1u << 20)	/* binder mapping of the server and the client */
#define CHURN_MAP	(256u << 10)	/* a churned client's mapping */
#define NB_PAGES	4
#define GAP_PAGES	4
#define N_CLIENT	2
#define N_LOOPER	2
#define MAX_REQ		(64u << 10)
#define MAX_REP		(32u << 10)
#define CODE_ECHO	1
#define REQ_MAGIC	0x4b4d5251u	/* "KMRQ" */
#define REP_MAGIC	0x4b4d5250u	/* "KMRP" */

struct msg_hdr {
	uint32_t magic, client;
	uint64_t seq;
	uint32_t len, reply_len;
};

/* One process's binder mapping and its neighbours, and its writer's counts. */
struct side {
	const char *name;
	char *nb, *map, *gap;
	size_t len;
	atomic_ulong *seq;	/* odd while the writer is inside a call on the binder VMA */
	uint64_t madv_whole, madv_half, nb_toggles, gap_mmaps, gap_eexist, errors;
	char first_err[256];
};

/* Shared with the server and the churned children (MAP_SHARED, set up before fork). */
struct shared {
	atomic_int go, stop, ready;
	double deadline;
	char dev[128];
	char setup_err[256];
	atomic_ulong srv_seq, cli_seq;
	/* server loopers */
	atomic_ulong srv_tx, srv_bytes, srv_bad, srv_errors, srv_dead, srv_failed;
	atomic_ulong srv_cli_contended;	/* replies to this process that raced its writer */
	atomic_int srv_noted_bad, srv_noted_err;
	char srv_first_bad[256], srv_first_err[256];
	struct side srv;	/* the server's side (its writer writes, we read at the end) */
	/* churned children */
	atomic_ulong ch_tx, ch_bad, ch_errors;
	atomic_int ch_noted;
	char ch_first[256];
};

static struct shared *sh;
static size_t ps;
static double deadline, g_dur;
static pid_t server_pid, parent_pid;
static struct side cli;
static int cfd = -1;		/* this process's binder fd */

/* This process's tallies. */
static struct {
	uint64_t tx, bytes, bad, errors, failed, contended;
	char first_bad[256], first_err[256];
} cs[N_CLIENT];

static struct {
	uint64_t forks, clean, exit_inflight, unmap_inflight, inflight_replies, inflight_failed;
	uint64_t bad_exit, errors;
	char first_err[256];
} ch;

static struct {
	int available;
	char why[256];
	const char *stats_path;		/* binder's per-process page statistics */
	uint64_t drops, reclaims, errors;
	char first_err[256];
} shr;

static int ov_client, ov_server, ov_client_vma, ov_server_vma, ov_churn, ov_shrink = -1;

static void wait_go(void)
{
	while (!atomic_load(&sh->go))
		sched_yield();
}

/* Once per shared field: the first message wins, across processes. */
static void note_shared(atomic_int *flag, char *dst, const char *fmt, ...)
{
	va_list ap;

	if (atomic_exchange(flag, 1))
		return;
	va_start(ap, fmt);
	vsnprintf(dst, 256, fmt, ap);
	va_end(ap);
}

/* --------------------------------------------------------------- patterns */

static inline uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t seed_of(uint32_t client, uint64_t seq, uint32_t magic)
{
	return mix(((uint64_t)client << 32) ^ seq ^ ((uint64_t)magic << 17));
}

/* A message: header, then pattern bytes up to len. */
static void fill(unsigned char *buf, uint32_t magic, uint32_t client, uint64_t seq, uint32_t len,
		 uint32_t reply_len)
{
	struct msg_hdr h = { magic, client, seq, len, reply_len };
	uint64_t seed = seed_of(client, seq, magic);

	memcpy(buf, &h, sizeof(h));
	for (size_t i = sizeof(h); i < len; i += 8) {
		uint64_t w = mix(seed + i / 8);
		size_t k = len - i < 8 ? len - i : 8;

		memcpy(buf + i, &w, k);
	}
}

/* 0 if buf is exactly that message, else -1 and why. */
static int check(const unsigned char *buf, size_t got, uint32_t magic, const struct msg_hdr *want,
		 char *why, size_t whylen)
{
	struct msg_hdr h;
	uint64_t seed;

	if (got < sizeof(h)) {
		snprintf(why, whylen, "%zu bytes, shorter than a header", got);
		return -1;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.magic != magic || h.len != got ||
	    (want && (h.client != want->client || h.seq != want->seq))) {
		snprintf(why, whylen,
			 "header magic %#x client %u seq %llu len %u in a %zu-byte buffer, want magic %#x%s",
			 h.magic, h.client, (unsigned long long)h.seq, h.len, got, magic,
			 want ? " and the request's client/seq" : "");
		return -1;
	}
	seed = seed_of(h.client, h.seq, magic);
	for (size_t i = sizeof(h); i < got; i += 8) {
		uint64_t w = mix(seed + i / 8);
		size_t k = got - i < 8 ? got - i : 8;

		if (memcmp(buf + i, &w, k)) {
			uint64_t g = 0;

			memcpy(&g, buf + i, k);
			snprintf(why, whylen,
				 "client %u seq %llu: byte offset %zu of %zu: got %#llx want %#llx%s",
				 h.client, (unsigned long long)h.seq, i, got, (unsigned long long)g,
				 (unsigned long long)w, g == 0 ? " (a zero page)" : "");
			return -1;
		}
	}
	return 0;
}

/* Copy n bytes out of a binder mapping; a page that is not there is SIGBUS. */
static __thread sigjmp_buf copy_jb;
static __thread volatile int in_copy;
static int is_child;		/* the server and churned clients must not print KTAP */

static void copy_signal(int sig)
{
	if (in_copy) {
		in_copy = 0;
		siglongjmp(copy_jb, sig);
	}
	if (!is_child)
		ktap_crash(sig, NULL, NULL);
	signal(sig, SIG_DFL);
	raise(sig);
}

static __attribute__((noinline)) int copy_out(void *dst, const void *src, size_t n, int *sig)
{
	int s = sigsetjmp(copy_jb, 1);

	if (s) {
		*sig = s;
		return -1;
	}
	in_copy = 1;
	memcpy(dst, src, n);
	in_copy = 0;
	return 0;
}

static void catch_copy_faults(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = copy_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

/* ------------------------------------------------------------ binder calls */

static int bwr(int fd, const void *w, size_t wn, void *r, size_t rn, size_t *got)
{
	struct binder_write_read b = {
		.write_size = wn, .write_buffer = (uintptr_t)w,
		.read_size = rn, .read_buffer = (uintptr_t)r,
	};

	/* The driver resumes from write_consumed/read_consumed after EINTR. */
	while (ioctl(fd, BINDER_WRITE_READ, &b) < 0)
		if (errno != EINTR)
			return -1;
	if (got)
		*got = b.read_consumed;
	return 0;
}

static int bc_free(int fd, binder_uintptr_t buf)
{
	struct __attribute__((packed)) {
		uint32_t cmd;
		binder_uintptr_t ptr;
	} c = { BC_FREE_BUFFER, buf };

	return bwr(fd, &c, sizeof(c), NULL, 0, NULL);
}

struct bc_tx {
	uint32_t cmd;
	struct binder_transaction_data tr;
} __attribute__((packed));

static int bc_send(int fd, uint32_t cmd, const void *data, size_t len)
{
	struct bc_tx c;

	memset(&c, 0, sizeof(c));
	c.cmd = cmd;
	c.tr.target.handle = 0;		/* the context manager */
	c.tr.code = CODE_ECHO;
	c.tr.flags = TF_ACCEPT_FDS;
	c.tr.data_size = len;
	c.tr.data.ptr.buffer = (uintptr_t)data;
	return bwr(fd, &c, sizeof(c), NULL, 0, NULL);
}

enum { R_REPLY = 1, R_DEAD, R_FAILED, R_ERROR };

/*
 * Read until the answer to our transaction: its BR_REPLY (in *tr), or
 * BR_DEAD_REPLY / BR_FAILED_REPLY. Returns R_*; R_ERROR with errno-ish why.
 */
static int wait_reply(int fd, struct binder_transaction_data *tr, char *why, size_t whylen)
{
	for (;;) {
		unsigned char rb[256];
		size_t got, off = 0;

		if (bwr(fd, NULL, 0, rb, sizeof(rb), &got)) {
			snprintf(why, whylen, "BINDER_WRITE_READ (read): %s", strerror(errno));
			return R_ERROR;
		}
		while (off + 4 <= got) {
			uint32_t cmd;
			size_t sz;

			memcpy(&cmd, rb + off, 4);
			off += 4;
			sz = _IOC_SIZE(cmd);
			if (off + sz > got) {
				snprintf(why, whylen, "truncated return command %#x", cmd);
				return R_ERROR;
			}
			switch (cmd) {
			case BR_NOOP:
			case BR_TRANSACTION_COMPLETE:
			case BR_SPAWN_LOOPER:
				break;
			case BR_REPLY:
				memcpy(tr, rb + off, sizeof(*tr));
				return R_REPLY;
			case BR_DEAD_REPLY:
				return R_DEAD;
			case BR_FAILED_REPLY:
				return R_FAILED;
			default:
				snprintf(why, whylen, "unexpected return command %#x", cmd);
				return R_ERROR;
			}
			off += sz;
		}
	}
}

/* Open the device and map it between an anon neighbour and a gap. */
static int map_side(struct side *s, const char *name, int fd, size_t len, atomic_ulong *seq,
		    char *why)
{
	size_t total = (NB_PAGES + GAP_PAGES) * ps + len;
	char *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	memset(s, 0, sizeof(*s));
	s->name = name;
	s->seq = seq;
	s->len = len;
	if (base == MAP_FAILED) {
		snprintf(why, 256, "mmap layout: %s", strerror(errno));
		return -1;
	}
	s->nb = base;
	s->map = base + NB_PAGES * ps;
	s->gap = s->map + len;
	if (mmap(s->map, len, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
		snprintf(why, 256, "mmap(binder device, %zu bytes, PROT_READ): %s", len, strerror(errno));
		return -1;
	}
	if (munmap(s->gap, GAP_PAGES * ps)) {
		snprintf(why, 256, "munmap gap: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- VMA writer */

#define WERR(s, what) do { \
	(s)->errors++; \
	note((s)->first_err, "%s: %s", what, strerror(errno)); \
} while (0)

static void writer_loop(struct side *s, int kind, atomic_int *stop_early)
{
	uint64_t rng = 0x5eed ^ (uintptr_t)s;

	ktap_overlap_start(kind);
	for (uint64_t it = 0; !atomic_load(stop_early) &&
	     ktap_keep_going(deadline, it, !s->madv_whole || !s->madv_half); it++) {
		size_t half = s->len / 2;
		size_t n;
		char *p;

		/*
		 * Write-lock the binder VMA(s). madvise() and not mprotect(): binder
		 * mappings are read-only with neither VM_MAYWRITE nor (binderfs is
		 * noexec) VM_MAYEXEC, so PROT_NONE would be the only change left, and
		 * an unreadable VMA makes binder's own GUP of a page another
		 * transaction installed first fail (7.3 answers BR_DEAD_REPLY: binder's
		 * limit, not the VMA lock's).
		 */
		atomic_fetch_add(s->seq, 1);
		if (it & 1) {
			if (madvise(s->map + half, half, MADV_SEQUENTIAL) ||
			    madvise(s->map + half, half, MADV_NORMAL))
				WERR(s, "madvise(second half of the binder mapping)");
			else
				s->madv_half++;
		} else {
			if (madvise(s->map, s->len, MADV_RANDOM) ||
			    madvise(s->map, s->len, MADV_NORMAL))
				WERR(s, "madvise(binder mapping)");
			else
				s->madv_whole++;
		}
		atomic_fetch_add(s->seq, 1);
		/* The anon neighbour: whole and middle page, split and merged. */
		if (mprotect(s->nb, NB_PAGES * ps, PROT_READ) ||
		    mprotect(s->nb + ps, ps, PROT_READ | PROT_WRITE) ||
		    mprotect(s->nb, NB_PAGES * ps, PROT_READ | PROT_WRITE))
			WERR(s, "mprotect neighbour");
		else
			s->nb_toggles++;
		/* The gap after it. */
		n = 1 + ktap_rand(&rng) % GAP_PAGES;
		p = mmap(s->gap, n * ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED) {
			if (errno == EEXIST)
				s->gap_eexist++;
			else
				WERR(s, "mmap gap");
		} else if (p != s->gap) {
			munmap(p, n * ps);
			errno = EINVAL;
			WERR(s, "MAP_FIXED_NOREPLACE ignored");
		} else {
			*(volatile char *)p = 1;
			if (munmap(p, n * ps))
				WERR(s, "munmap gap");
			else
				s->gap_mmaps++;
		}
		ktap_overlap_op(kind);
		usleep(50);	/* let installs find the VMA unlocked too */
	}
	ktap_overlap_stop(kind);
}

/* ----------------------------------------------------------------- server */

static atomic_int never;

static void srv_bad(const char *fmt, ...)
{
	va_list ap;
	char m[256];

	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	atomic_fetch_add(&sh->srv_bad, 1);
	note_shared(&sh->srv_noted_bad, sh->srv_first_bad, "%s", m);
}

static void srv_err(const char *fmt, ...)
{
	va_list ap;
	char m[256];

	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	atomic_fetch_add(&sh->srv_errors, 1);
	note_shared(&sh->srv_noted_err, sh->srv_first_err, "%s", m);
}

static int sfd = -1;

/* Verify one request in our mapping, free it and reply. */
static void serve(const struct binder_transaction_data *tr, unsigned char *in, unsigned char *out)
{
	struct __attribute__((packed)) {
		uint32_t free_cmd;
		binder_uintptr_t buf;
		struct bc_tx reply;
	} c;
	struct msg_hdr h = { 0 };
	size_t n = tr->data_size;
	uint32_t rlen = sizeof(h);
	unsigned long s1, s2;
	char why[256];
	int sig = 0, from_parent = tr->sender_pid == parent_pid;

	if (tr->code != CODE_ECHO || n > MAX_REQ) {
		srv_bad("request code %u, %zu bytes (want code %u, at most %u)", tr->code, n,
			CODE_ECHO, MAX_REQ);
		n = 0;
	} else {
		int copied;

		copied = copy_out(in, (void *)(uintptr_t)tr->data.ptr.buffer, n, &sig) == 0;
		if (!copied) {
			srv_bad("request buffer of %zu bytes unreadable in the server's mapping (signal %d)",
				n, sig);
		} else if (check(in, n, REQ_MAGIC, NULL, why, sizeof(why))) {
			srv_bad("request: %s", why);
		} else {
			memcpy(&h, in, sizeof(h));
			if (h.reply_len >= sizeof(h) && h.reply_len <= MAX_REP)
				rlen = h.reply_len;
			atomic_fetch_add(&sh->srv_bytes, n);
		}
	}
	fill(out, REP_MAGIC, h.client, h.seq, rlen, 0);
	memset(&c, 0, sizeof(c));
	c.free_cmd = BC_FREE_BUFFER;
	c.buf = tr->data.ptr.buffer;
	c.reply.cmd = BC_REPLY;
	c.reply.tr.data_size = rlen;
	c.reply.tr.data.ptr.buffer = (uintptr_t)out;
	s1 = atomic_load(&sh->cli_seq);
	if (bwr(sfd, &c, sizeof(c), NULL, 0, NULL))
		srv_err("BC_FREE_BUFFER + BC_REPLY: %s", strerror(errno));
	s2 = atomic_load(&sh->cli_seq);
	if (from_parent && ((s1 & 1) || s1 != s2))
		atomic_fetch_add(&sh->srv_cli_contended, 1);
	atomic_fetch_add(&sh->srv_tx, 1);
	ktap_overlap_op(ov_server);
}

static void *looper_thread(void *arg)
{
	static const uint32_t enter = BC_ENTER_LOOPER;
	unsigned char *in = malloc(MAX_REQ), *out = malloc(MAX_REP);

	(void)arg;
	if (!in || !out || bwr(sfd, &enter, sizeof(enter), NULL, 0, NULL)) {
		srv_err("looper setup: %s", strerror(errno));
		return NULL;
	}
	wait_go();
	ktap_overlap_start(ov_server);
	while (!atomic_load(&sh->stop)) {
		unsigned char rb[256];
		size_t got, off = 0;

		if (bwr(sfd, NULL, 0, rb, sizeof(rb), &got)) {
			srv_err("BINDER_WRITE_READ (read): %s", strerror(errno));
			break;
		}
		while (off + 4 <= got) {
			uint32_t cmd;
			size_t sz;

			memcpy(&cmd, rb + off, 4);
			off += 4;
			sz = _IOC_SIZE(cmd);
			if (off + sz > got) {
				srv_err("truncated return command %#x", cmd);
				break;
			}
			switch (cmd) {
			case BR_NOOP:
			case BR_TRANSACTION_COMPLETE:
			case BR_SPAWN_LOOPER:
				break;
			case BR_TRANSACTION: {
				struct binder_transaction_data tr;

				memcpy(&tr, rb + off, sizeof(tr));
				serve(&tr, in, out);
				break;
			}
			case BR_DEAD_REPLY:	/* the client exited first (churn) */
				atomic_fetch_add(&sh->srv_dead, 1);
				break;
			case BR_FAILED_REPLY:	/* it unmapped or was exiting (churn) */
				atomic_fetch_add(&sh->srv_failed, 1);
				break;
			default:
				srv_err("unexpected return command %#x", cmd);
				break;
			}
			off += sz;
		}
	}
	ktap_overlap_stop(ov_server);
	return NULL;
}

static void *server_writer(void *arg)
{
	(void)arg;
	wait_go();
	deadline = sh->deadline;	/* set before go */
	writer_loop(&sh->srv, ov_server_vma, &sh->stop);
	return NULL;
}

static __attribute__((noreturn)) void server_main(void)
{
	pthread_t th[N_LOOPER + 1];
	uint32_t zero = 0;
	int n = 0;

	/* Never outlive the test, never print: the parent owns stdout. */
	is_child = 1;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGALRM, SIG_DFL);
	alarm((unsigned)g_dur + 60);
	catch_copy_faults();
	sfd = open(sh->dev, O_RDWR | O_CLOEXEC);
	if (sfd < 0) {
		snprintf(sh->setup_err, sizeof(sh->setup_err), "server: open %s: %s", sh->dev,
			 strerror(errno));
		atomic_store(&sh->ready, -1);
		_exit(1);
	}
	if (map_side(&sh->srv, "server", sfd, MAP_BYTES, &sh->srv_seq, sh->setup_err)) {
		atomic_store(&sh->ready, -1);
		_exit(1);
	}
	if (ioctl(sfd, BINDER_SET_MAX_THREADS, &zero) ||
	    ioctl(sfd, BINDER_SET_CONTEXT_MGR, &zero)) {
		snprintf(sh->setup_err, sizeof(sh->setup_err), "server: become context manager: %s",
			 strerror(errno));
		atomic_store(&sh->ready, -1);
		_exit(1);
	}
	for (int i = 0; i < N_LOOPER; i++)
		if (pthread_create(&th[n], NULL, looper_thread, NULL) == 0)
			n++;
	if (pthread_create(&th[n], NULL, server_writer, NULL) == 0)
		n++;
	if (n < N_LOOPER + 1)
		srv_err("server: pthread_create failed");
	atomic_store(&sh->ready, 1);
	while (!atomic_load(&sh->stop))
		usleep(5000);
	/* The writer stops by itself; loopers may sit in a read: exit kills them. */
	pthread_join(th[n - 1], NULL);
	_exit(0);
}

/* ----------------------------------------------------------------- client */

/* One transaction from fd: 0 and verified, -2 with why (content), or -1 with why. */
static int transact(int fd, uint32_t client, uint64_t seq, uint64_t *rng,
		    unsigned char *req, unsigned char *rep, char *why, int *failed)
{
	struct binder_transaction_data tr;
	struct msg_hdr want;
	uint32_t len, rlen;
	int r, sig = 0, copied;

	len = sizeof(want) + ktap_rand(rng) % (ktap_rand(rng) & 1 ? MAX_REQ - sizeof(want) : 4096);
	rlen = sizeof(want) + ktap_rand(rng) % (ktap_rand(rng) & 1 ? MAX_REP - sizeof(want) : 2048);
	fill(req, REQ_MAGIC, client, seq, len, rlen);
	*failed = 0;
	if (bc_send(fd, BC_TRANSACTION, req, len)) {
		snprintf(why, 256, "BC_TRANSACTION: %s", strerror(errno));
		return -1;
	}
	r = wait_reply(fd, &tr, why, 256);
	if (r == R_ERROR)
		return -1;
	if (r != R_REPLY) {
		*failed = 1;
		snprintf(why, 256, "transaction %llu answered %s", (unsigned long long)seq,
			 r == R_DEAD ? "BR_DEAD_REPLY" : "BR_FAILED_REPLY");
		return -1;
	}
	want.client = client;
	want.seq = seq;
	if (tr.data_size != rlen) {
		snprintf(why, 256, "reply to %u/%llu: %llu bytes, want %u", client,
			 (unsigned long long)seq, (unsigned long long)tr.data_size, rlen);
		bc_free(fd, tr.data.ptr.buffer);
		return -2;
	}
	copied = copy_out(rep, (void *)(uintptr_t)tr.data.ptr.buffer, rlen, &sig) == 0;
	r = 0;
	if (!copied) {
		snprintf(why, 256, "reply of %u bytes unreadable in the client's mapping (signal %d)",
			 rlen, sig);
		r = -2;
	} else if (check(rep, rlen, REP_MAGIC, &want, why, 256)) {
		r = -2;
	}
	if (bc_free(fd, tr.data.ptr.buffer) && !r) {
		snprintf(why, 256, "BC_FREE_BUFFER: %s", strerror(errno));
		r = -1;
	}
	return r;
}

static void *client_thread(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t rng = 0xc11e47ull * (id + 1);
	unsigned char *req = malloc(MAX_REQ), *rep = malloc(MAX_REP);
	char why[256];

	if (!req || !rep) {
		cs[id].errors++;
		note(cs[id].first_err, "out of memory");
		return NULL;
	}
	wait_go();
	ktap_overlap_start(ov_client);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !cs[id].tx); it++) {
		unsigned long s1 = atomic_load(&sh->srv_seq), s2;
		int failed, r = transact(cfd, id + 1, it + 1, &rng, req, rep, why, &failed);

		s2 = atomic_load(&sh->srv_seq);
		if (r == -2) {
			cs[id].bad++;
			note(cs[id].first_bad, "%s", why);
		} else if (r) {
			cs[id].errors++;
			cs[id].failed += failed;
			note(cs[id].first_err, "%s", why);
			if (!failed)
				break;
			continue;
		}
		cs[id].tx++;
		if ((s1 & 1) || s1 != s2)
			cs[id].contended++;
		ktap_overlap_op(ov_client);
	}
	ktap_overlap_stop(ov_client);
	free(req);
	free(rep);
	return NULL;
}

static void *client_writer(void *arg)
{
	(void)arg;
	wait_go();
	writer_loop(&cli, ov_client_vma, &never);
	return NULL;
}

/* --------------------------------------------------------------- churn */

enum { CH_CLEAN, CH_EXIT_INFLIGHT, CH_UNMAP_INFLIGHT, CH_VARIANTS };

static void ch_fail(const char *fmt, ...)
{
	va_list ap;
	char m[256];

	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	note_shared(&sh->ch_noted, sh->ch_first, "%s", m);
}

/*
 * A short-lived client (fork()ed from a threaded process: system calls and
 * plain computation only). Exit status: 0 fine, 2 content, 3 other error,
 * 4 + answer for the in-flight transaction of CH_UNMAP_INFLIGHT.
 */
static __attribute__((noreturn)) void churn_child(int variant, uint32_t id, uint64_t seed)
{
	static unsigned char req[MAX_REQ], rep[MAX_REP];
	uint64_t rng = seed | 1;
	struct binder_transaction_data tr;
	char why[256], err[256];
	struct side s;
	int fd, n, failed, r;

	is_child = 1;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	catch_copy_faults();
	fd = open(sh->dev, O_RDWR | O_CLOEXEC);
	if (fd < 0 || map_side(&s, "churn", fd, CHURN_MAP, &sh->cli_seq, err)) {
		ch_fail("churn child: %s", fd < 0 ? strerror(errno) : err);
		_exit(3);
	}
	n = 1 + ktap_rand(&rng) % 3;
	for (int i = 0; i < n; i++) {
		r = transact(fd, id, i + 1, &rng, req, rep, why, &failed);
		if (r) {
			ch_fail("churn child %u: %s", id, why);
			_exit(r == -2 ? 2 : 3);
		}
		atomic_fetch_add(&sh->ch_tx, 1);
	}
	if (variant == CH_CLEAN) {
		close(fd);
		_exit(0);
	}
	fill(req, REQ_MAGIC, id, n + 1, 4096, MAX_REP);
	if (bc_send(fd, BC_TRANSACTION, req, 4096)) {
		ch_fail("churn child %u: BC_TRANSACTION: %s", id, strerror(errno));
		_exit(3);
	}
	if (variant == CH_EXIT_INFLIGHT)
		_exit(0);	/* the server's reply races this mm's teardown */
	/* The reply's pages go into a mapping that is going away. */
	if (munmap(s.map, CHURN_MAP)) {
		ch_fail("churn child %u: munmap binder mapping: %s", id, strerror(errno));
		_exit(3);
	}
	r = wait_reply(fd, &tr, why, sizeof(why));
	if (r == R_ERROR) {
		ch_fail("churn child %u after munmap: %s", id, why);
		_exit(3);
	}
	if (r == R_REPLY)
		bc_free(fd, tr.data.ptr.buffer);
	_exit(4 + r);
}

static void *churn_thread(void *arg)
{
	uint64_t rng = 0xc4a2;

	(void)arg;
	wait_go();
	ktap_overlap_start(ov_churn);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, ch.forks < CH_VARIANTS); it++) {
		int variant = it % CH_VARIANTS, status = 0, reaped = 0;
		uint32_t id = 1000 + (uint32_t)it;
		pid_t pid = fork();

		if (pid == 0)
			churn_child(variant, id, ktap_rand(&rng));
		if (pid < 0) {
			ch.errors++;
			note(ch.first_err, "fork: %s", strerror(errno));
			break;
		}
		ch.forks++;
		for (double end = ktap_now() + 10; ktap_now() < end;) {
			pid_t w = waitpid(pid, &status, WNOHANG);

			if (w == pid) {
				reaped = 1;
				break;
			}
			usleep(1000);
		}
		if (!reaped) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ch.errors++;
			note(ch.first_err, "churn child %u (variant %d) did not exit within 10 s", id,
			     variant);
			continue;
		}
		if (!WIFEXITED(status)) {
			ch.bad_exit++;
			note(ch.first_err, "churn child %u (variant %d) died: status %#x", id, variant,
			     status);
			continue;
		}
		switch (WEXITSTATUS(status)) {
		case 0:
			ch.clean += variant == CH_CLEAN;
			ch.exit_inflight += variant == CH_EXIT_INFLIGHT;
			break;
		case 2:
			atomic_fetch_add(&sh->ch_bad, 1);
			break;
		case 4 + R_REPLY:
			ch.unmap_inflight++;
			ch.inflight_replies++;
			break;
		case 4 + R_DEAD:
		case 4 + R_FAILED:
			ch.unmap_inflight++;
			ch.inflight_failed++;
			break;
		default:
			atomic_fetch_add(&sh->ch_errors, 1);
			break;
		}
		ktap_overlap_op(ov_churn);
	}
	ktap_overlap_stop(ov_churn);
	return NULL;
}

/* -------------------------------------------------------------- shrinker */

/*
 * "  pages: active:lru:free" of pid's section ("proc PID") in binder's stats
 * file (debugfs binder/stats or binderfs binder_logs/stats).
 */
static int binder_pages(pid_t pid, long *active, long *lru, long *freep)
{
	static char buf[1 << 16];
	char head[32], *p, *end;
	size_t got = 0;
	ssize_t n;
	int fd = open(shr.stats_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += n;
	close(fd);
	buf[got] = 0;
	snprintf(head, sizeof(head), "\nproc %d\n", (int)pid);
	p = strstr(buf, head);
	if (!p)
		return -1;
	p += strlen(head);
	end = strstr(p, "\nproc ");
	if (end)
		*end = 0;
	p = strstr(p, "pages: ");
	if (!p || sscanf(p, "pages: %ld:%ld:%ld", active, lru, freep) != 3)
		return -1;
	return 0;
}

static void *shrink_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;

	wait_go();
	ktap_overlap_start(ov_shrink);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !shr.reclaims); it++) {
		long a0 = 0, l0 = 0, f0 = 0, a1 = 0, l1 = 0, f1 = 0;
		int have = shr.stats_path && binder_pages(server_pid, &a0, &l0, &f0) == 0;

		if (pwrite(fd, "2\n", 2, 0) != 2) {
			shr.errors++;
			note(shr.first_err, "write /proc/sys/vm/drop_caches: %s", strerror(errno));
			break;
		}
		shr.drops++;
		if (have && binder_pages(server_pid, &a1, &l1, &f1) == 0 && l1 < l0)
			shr.reclaims++;
		ktap_overlap_op(ov_shrink);
		usleep(20000);
	}
	ktap_overlap_stop(ov_shrink);
	return NULL;
}

/* ----------------------------------------------------------------- setup */

static char mnt[64];
static int mounted;

/* Why binder is not usable here, from the kernel's own answers; NULL if it is. */
static const char *binderfs_missing(void)
{
	static char why[256];
	char buf[8192];
	ssize_t n;
	int fd = open("/proc/filesystems", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;	/* cannot tell: let mount() answer */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	if (strstr(buf, "\tbinder\n"))
		return NULL;
	snprintf(why, sizeof(why),
		 "kernel has no binderfs ('binder' not in /proc/filesystems: CONFIG_ANDROID_BINDER_IPC/CONFIG_ANDROID_BINDERFS off)");
	return why;
}

static int setup_binderfs(char *why)
{
	struct binderfs_device d;
	char ctl[128];
	int fd;

	snprintf(mnt, sizeof(mnt), "/tmp/kmatrix-binderfs-%d", (int)getpid());
	if (mkdir(mnt, 0700) && errno != EEXIST) {
		snprintf(why, 256, "mkdir %s: %s", mnt, strerror(errno));
		return -1;
	}
	/* stats=global adds binder_logs/ (the page statistics when debugfs lacks them). */
	if (mount("binder", mnt, "binder", 0, "stats=global") &&
	    mount("binder", mnt, "binder", 0, NULL)) {
		snprintf(why, 256, "mount -t binder: %s", strerror(errno));
		rmdir(mnt);
		return -1;
	}
	mounted = 1;
	snprintf(ctl, sizeof(ctl), "%s/binder-control", mnt);
	fd = open(ctl, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, 256, "open %s: %s", ctl, strerror(errno));
		return -1;
	}
	memset(&d, 0, sizeof(d));
	snprintf(d.name, sizeof(d.name), "kmatrix");
	if (ioctl(fd, BINDER_CTL_ADD, &d)) {
		snprintf(why, 256, "BINDER_CTL_ADD: %s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	snprintf(sh->dev, sizeof(sh->dev), "%s/kmatrix", mnt);
	ktap_diag("binder device %s (major %u, minor %u)", sh->dev, d.major, d.minor);
	return 0;
}

static void teardown_binderfs(void)
{
	if (mounted) {
		char dev[300];

		/* binderfs devices go away with unlink(). */
		snprintf(dev, sizeof(dev), "%s/kmatrix", mnt);
		unlink(dev);
		umount2(mnt, MNT_DETACH);
	}
	if (mnt[0])
		rmdir(mnt);
}

static void shrink_setup(int *dfd)
{
	static char path[128];
	long a, l, f;

	*dfd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (*dfd < 0) {
		snprintf(shr.why, sizeof(shr.why), "cannot open /proc/sys/vm/drop_caches: %s",
			 strerror(errno));
		return;
	}
	shr.stats_path = "/sys/kernel/debug/binder/stats";
	if (binder_pages(server_pid, &a, &l, &f)) {
		snprintf(path, sizeof(path), "%s/binder_logs/stats", mnt);
		shr.stats_path = path;
		if (binder_pages(server_pid, &a, &l, &f)) {
			/* Reclaim still runs; only its evidence is missing. */
			ktap_diag("no binder page statistics (debugfs or binder_logs): reclaims not counted");
			shr.stats_path = NULL;
		}
	}
	shr.available = 1;
}

int main(int argc, char **argv)
{
	double dur = ktap_begin(argc, argv, 8 + 6);
	static const char *const kinds[6] = {
		"client", "server", "client_vma", "server_vma", "churn", "shrink",
	};
	struct binder_version ver = { 0 };
	pthread_t th[N_CLIENT + 3];
	int nth = 0, dfd = -1, status = 0, reaped = 0;
	uint64_t tx = 0, bad = 0, errors = 0, failed = 0, contended = 0, bytes_ok;
	const char *missing;
	char why[256] = "";

	ps = sysconf(_SC_PAGESIZE);
	g_dur = dur;
	parent_pid = getpid();
	ktap_diag("binder_vs_writers: duration %.1fs, page size %zu", dur, ps);
	missing = binderfs_missing();
	if (missing) {
		ktap_skip(missing, "binderfs mounted and a binder device created");
		ktap_skip(missing, "context manager and client opened and mapped the device");
		ktap_skip(missing, "transaction data intact in the receivers' mappings");
		ktap_skip(missing, "transactions completed while the VMA writers ran");
		ktap_skip(missing, "transactions raced write-locks of the receiving binder VMA");
		ktap_skip(missing, "VMA writers ran on both binder mappings");
		ktap_skip(missing, "processes exited and unmapped with transactions in flight");
		ktap_skip(missing, "shrinker reclaimed binder pages");
		for (int k = 0; k < 6; k++)
			ktap_skip(missing, "%s overlapped the other kinds", kinds[k]);
		return ktap_end();
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return ktap_bail("not run: mmap shared state failed");
	if (setup_binderfs(why)) {
		ktap_result(0, "binderfs mounted and a binder device created: %s", why);
		teardown_binderfs();
		return ktap_bail("not run: no binder device");
	}
	ktap_result(1, "binderfs mounted and a binder device created");

	/* Kinds first: the server's threads count in the same (shared) window. */
	ov_client = ktap_overlap_kind("client");
	ov_server = ktap_overlap_kind("server");
	ov_client_vma = ktap_overlap_kind("client_vma");
	ov_server_vma = ktap_overlap_kind("server_vma");
	ov_churn = ktap_overlap_kind("churn");

	server_pid = fork();
	if (server_pid == 0)
		server_main();
	for (double end = ktap_now() + 20; !atomic_load(&sh->ready) && ktap_now() < end;)
		usleep(1000);
	catch_copy_faults();
	cfd = open(sh->dev, O_RDWR | O_CLOEXEC);
	if (server_pid < 0 || atomic_load(&sh->ready) != 1 || cfd < 0 ||
	    ioctl(cfd, BINDER_VERSION, &ver) ||
	    ver.protocol_version != BINDER_CURRENT_PROTOCOL_VERSION ||
	    map_side(&cli, "client", cfd, MAP_BYTES, &sh->cli_seq, why)) {
		if (server_pid < 0)
			snprintf(why, sizeof(why), "fork: %s", strerror(errno));
		else if (atomic_load(&sh->ready) != 1)
			snprintf(why, sizeof(why), "%s",
				 sh->setup_err[0] ? sh->setup_err : "server not ready within 20 s");
		else if (cfd < 0)
			snprintf(why, sizeof(why), "client: open %s: %s", sh->dev, strerror(errno));
		else if (!why[0])
			snprintf(why, sizeof(why), "BINDER_VERSION: %s, protocol %d (want %d)",
				 strerror(errno), ver.protocol_version,
				 BINDER_CURRENT_PROTOCOL_VERSION);
		ktap_result(0, "context manager and client opened and mapped the device: %s", why);
		if (server_pid > 0)
			kill(server_pid, SIGKILL);
		teardown_binderfs();
		return ktap_bail("not run: setup failed");
	}
	ktap_result(1, "context manager and client opened and mapped the device");

	shrink_setup(&dfd);
	if (shr.available)
		ov_shrink = ktap_overlap_kind("shrink");
	else
		ktap_diag("shrinker not driven: %s", shr.why);

	deadline = ktap_now() + dur;
	sh->deadline = deadline;
	for (int i = 0; i < N_CLIENT; i++)
		if (pthread_create(&th[nth], NULL, client_thread, (void *)(intptr_t)i) == 0)
			nth++;
	if (pthread_create(&th[nth], NULL, client_writer, NULL) == 0)
		nth++;
	if (pthread_create(&th[nth], NULL, churn_thread, NULL) == 0)
		nth++;
	if (shr.available && pthread_create(&th[nth], NULL, shrink_thread, (void *)(intptr_t)dfd) == 0)
		nth++;
	if (nth < N_CLIENT + 2 + shr.available)
		ktap_diag("pthread_create failed");
	atomic_store(&sh->go, 1);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	atomic_store(&sh->stop, 1);
	for (double end = ktap_now() + 3; ktap_now() < end;) {
		if (waitpid(server_pid, &status, WNOHANG) == server_pid) {
			reaped = 1;
			break;
		}
		usleep(2000);
	}
	if (!reaped) {
		ktap_diag("server did not exit after stop; killing it");
		kill(server_pid, SIGKILL);
		/* A thread stuck in the kernel (a lock an oops left held) never dies. */
		for (double end = ktap_now() + 2; !reaped && ktap_now() < end; usleep(2000))
			reaped = waitpid(server_pid, &status, WNOHANG) == server_pid;
		if (!reaped)
			ktap_diag("server still not reaped 2 s after SIGKILL: stuck in the kernel");
		reaped = 0;	/* it did not exit by itself */
	}
	close(cfd);
	if (dfd >= 0)
		close(dfd);
	teardown_binderfs();

	/* 3: content. */
	for (int i = 0; i < N_CLIENT; i++) {
		tx += cs[i].tx;
		bad += cs[i].bad;
		errors += cs[i].errors;
		failed += cs[i].failed;
		contended += cs[i].contended;
		if (cs[i].first_bad[0])
			ktap_diag("  client %d first mismatch: %s", i + 1, cs[i].first_bad);
		if (cs[i].first_err[0])
			ktap_diag("  client %d first error: %s", i + 1, cs[i].first_err);
	}
	bytes_ok = atomic_load(&sh->srv_bytes);
	ktap_diag("clients: transactions %llu (replies verified), bad %llu, errors %llu (failed replies %llu)",
		  (unsigned long long)tx, (unsigned long long)bad, (unsigned long long)errors,
		  (unsigned long long)failed);
	ktap_diag("server: requests %llu (%llu bytes verified), bad %llu, errors %llu, dead replies %llu, failed replies %llu, exit status %#x",
		  (unsigned long long)atomic_load(&sh->srv_tx), (unsigned long long)bytes_ok,
		  (unsigned long long)atomic_load(&sh->srv_bad),
		  (unsigned long long)atomic_load(&sh->srv_errors),
		  (unsigned long long)atomic_load(&sh->srv_dead),
		  (unsigned long long)atomic_load(&sh->srv_failed), status);
	if (sh->srv_first_bad[0])
		ktap_diag("  server first mismatch: %s", sh->srv_first_bad);
	if (sh->srv_first_err[0])
		ktap_diag("  server first error: %s", sh->srv_first_err);
	if (sh->ch_first[0])
		ktap_diag("  churned clients first finding: %s", sh->ch_first);
	ktap_result(tx > 0 && !bad && !atomic_load(&sh->srv_bad) && !atomic_load(&sh->ch_bad),
		    "transaction data intact in the receivers' mappings");

	/* 4: the transactions really ran, with the writers. */
	ktap_result(ktap_overlap_ops(ov_client) > 0 && ktap_overlap_ops(ov_server) > 0 && !errors &&
		    !atomic_load(&sh->srv_errors) && reaped && WIFEXITED(status) &&
		    !WEXITSTATUS(status),
		    "transactions completed while the VMA writers ran");

	/* 5: installs into a write-locked receiver VMA (the lookup's slow path). */
	ktap_diag("contended: %llu requests raced a write-lock of the server's binder VMA, %llu replies one of the client's",
		  (unsigned long long)contended,
		  (unsigned long long)atomic_load(&sh->srv_cli_contended));
	ktap_result(contended > 0 && atomic_load(&sh->srv_cli_contended) > 0,
		    "transactions raced write-locks of the receiving binder VMA");

	/* 6: writers. */
	for (int i = 0; i < 2; i++) {
		struct side *s = i ? &sh->srv : &cli;

		ktap_diag("%s writer: madvise whole %llu, half %llu, neighbour mprotect %llu, gap mmaps %llu (eexist %llu), errors %llu",
			  i ? "server" : "client", (unsigned long long)s->madv_whole,
			  (unsigned long long)s->madv_half,
			  (unsigned long long)s->nb_toggles, (unsigned long long)s->gap_mmaps,
			  (unsigned long long)s->gap_eexist, (unsigned long long)s->errors);
		if (s->first_err[0])
			ktap_diag("  %s writer first error: %s", i ? "server" : "client", s->first_err);
	}
	ktap_result(cli.madv_whole && cli.madv_half && cli.gap_mmaps && !cli.errors &&
		    sh->srv.madv_whole && sh->srv.madv_half && sh->srv.gap_mmaps &&
		    !sh->srv.errors,
		    "VMA writers ran on both binder mappings");

	/* 7: churn. */
	ktap_diag("churn: children %llu (transactions %llu), exited cleanly %llu, exited in flight %llu, unmapped in flight %llu (reply %llu, failed %llu), content %llu, other errors %llu, died %llu",
		  (unsigned long long)ch.forks, (unsigned long long)atomic_load(&sh->ch_tx),
		  (unsigned long long)ch.clean, (unsigned long long)ch.exit_inflight,
		  (unsigned long long)ch.unmap_inflight, (unsigned long long)ch.inflight_replies,
		  (unsigned long long)ch.inflight_failed, (unsigned long long)atomic_load(&sh->ch_bad),
		  (unsigned long long)atomic_load(&sh->ch_errors), (unsigned long long)ch.bad_exit);
	if (ch.first_err[0])
		ktap_diag("  churn first error: %s", ch.first_err);
	ktap_result(ch.clean && ch.exit_inflight && ch.unmap_inflight && !ch.errors && !ch.bad_exit &&
		    !atomic_load(&sh->ch_errors) && !atomic_load(&sh->ch_bad),
		    "processes exited and unmapped with transactions in flight");

	/* 8: shrinker. */
	if (!shr.available) {
		ktap_skip(shr.why, "shrinker reclaimed binder pages");
	} else {
		ktap_diag("shrinker: drop_caches writes %llu, reclaims seen %llu (%s), errors %llu",
			  (unsigned long long)shr.drops, (unsigned long long)shr.reclaims,
			  shr.stats_path ? shr.stats_path : "no statistics",
			  (unsigned long long)shr.errors);
		if (shr.first_err[0])
			ktap_diag("  shrinker first error: %s", shr.first_err);
		ktap_result(shr.drops > 0 && !shr.errors && (!shr.stats_path || shr.reclaims > 0),
			    "shrinker reclaimed binder pages");
	}

	/* 9..14: every kind worked while all the others ran. */
	ktap_overlap_report();
	if (!shr.available)
		ktap_skip(shr.why, "shrink overlapped the other kinds");
	return ktap_end();
}
