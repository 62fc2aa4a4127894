// SPDX-License-Identifier: GPL-2.0
/*
 * tcp_zerocopy_vs_writers - TCP_ZEROCOPY_RECEIVE racing VMA modifications.
 *
 * A sender streams a fixed 1 MiB ring of pattern data over 127.0.0.1
 * (MSG_ZEROCOPY when available: loopback then copies the payload into
 * fresh order-0 pages, which is what lets the receiver map them). The
 * receiver mmap()s its socket and pulls data with
 * getsockopt(TCP_ZEROCOPY_RECEIVE), which looks the mapping up with
 * find_tcp_vma() -> lock_vma_under_rcu(); bytes it cannot map
 * (recv_skip_hint) are read with recv(). Every byte is checked against the
 * ring at its stream offset.
 *
 * Layout:  [ nb: anon ][ socket mapping: first half | second half ][ gap ]
 * Writers: mprotect nb R <-> RW and the second half PROT_NONE <-> PROT_READ
 * (splitting the TCP VMA), MAP_FIXED re-mmap of the second half from the
 * socket, and MAP_FIXED_NOREPLACE anon mmap/munmap in the gap. The zerocopy
 * address (start of the first half) always stays a TCP mapping.
 *
 * The "whole" writer targets the zerocopy VMA itself. TCP mappings are
 * VM_MIXEDMAP, so once split they never merge back and the half-mapping
 * writers above never write-lock the first half again: only luck would make
 * find_tcp_vma() meet a write-locked VMA. This writer write-locks it on
 * purpose, over and over: PROT_NONE <-> PROT_READ of the whole mapping, and
 * MAP_FIXED re-mmap of the whole mapping from the socket (the old VMA is
 * detached, a new one takes its place). A receive that starts or ends while
 * it is inside such a call raced it: lock_vma_under_rcu() fails on the
 * write-locked (or detached) VMA and the lookup takes the slow path (v3:
 * mmap_read_lock() waits for the writer, then finds the VMA). Those
 * receives are counted by a sequence count around the writer's calls. The
 * receiver's copy of the mapped bytes runs under a read lock the whole
 * writer also takes, so only the lookup races it, not the verification.
 *
 * Error cases, tried only when >= 1 page is queued (below that the kernel
 * answers before looking at the VMA): an address with no mapping, an
 * anonymous mapping, the racing gap, and an unaligned address must all fail
 * with EINVAL and must never map anything.
 */
#define _GNU_SOURCE
#include "ktap.h"
#include "zerocopy.h"

#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define RING_SIZE	(1u << 20)
#define MAP_PAGES	16	/* socket mapping */
#define NB_PAGES	4
#define GAP_PAGES	4
#define CHUNK_PAGES	16	/* per send() */
#define COPY_BUF	(256 * 1024)

static size_t ps;
static double deadline;
static unsigned char *ring;	/* read-only after setup */
static int sfd = -1, rfd = -1;	/* sender / receiver sockets */
static char *nb, *smap, *gap;	/* layout pieces */
static size_t half;		/* bytes in each half of smap */
static atomic_int go, recv_done;

static struct {
	uint64_t sends, bytes, zc_sends, enobufs, completions, timeouts, errors;
	int zerocopy;
	char first_err[256];
} ss;

static struct {
	uint64_t zc_calls, zc_bytes, zc_maps, copy_bytes, recvs, bad, unverified;
	uint64_t polls, errors;
	int eof, zc_broken;
	uint64_t probe_rounds, probe_einval[4], probe_other[4], probe_mapped[4];
	char first_bad[256], first_err[256], first_probe[256];
} rs;

static struct {
	uint64_t nb_toggles, split_toggles, gap_mmaps, gap_eexist, sock_remaps, errors;
	uint64_t whole_prot, whole_remaps;
	char first_err[256];
} wst;

/* Odd while the whole writer is inside a syscall on the zerocopy VMA. */
static atomic_ulong whole_seq;
/* Receiver copies mapped bytes under read; the whole writer changes under write. */
static pthread_rwlock_t copy_lock = PTHREAD_RWLOCK_INITIALIZER;

static struct {
	uint64_t calls, mapped, bytes;	/* receives that raced a whole-mapping write */
} rc;
static uint64_t zc_bytes_overlap;	/* mapped + verified while every kind ran */

/* Overlap kinds (ktap.h). */
static int ov_sender, ov_receiver, ov_mprotect, ov_mmap, ov_whole;

static inline int running(void)
{
	return ktap_now() < deadline;
}

static void wait_go(void)
{
	while (!atomic_load(&go))
		sched_yield();
}

/* ---------------------------------------------------------------- sender */

static void *sender_thread(void *arg)
{
	uint64_t off = 0;

	(void)arg;
	wait_go();
	ktap_overlap_start(ov_sender);
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !ss.sends); it++) {
		size_t pos = off % RING_SIZE;
		size_t len = CHUNK_PAGES * ps;
		ssize_t n;

		if (len > RING_SIZE - pos)
			len = RING_SIZE - pos;
		n = send(sfd, ring + pos, len, ss.zerocopy ? MSG_ZEROCOPY : 0);
		if (n < 0) {
			if (errno == ENOBUFS && ss.zerocopy) {
				/* optmem full of pending notifications: reap them */
				ss.enobufs++;
				ss.completions += kz_drain_completions(sfd);
				usleep(1000);
				continue;
			}
			if (errno == EAGAIN || errno == EINTR) {
				ss.timeouts++;	/* SO_SNDTIMEO: recheck the deadline */
				continue;
			}
			ss.errors++;
			note(ss.first_err, "send: %s", strerror(errno));
			break;
		}
		ss.sends++;
		ktap_overlap_op(ov_sender);
		ss.zc_sends += ss.zerocopy;
		ss.bytes += n;
		off += n;
		if (ss.zerocopy && (ss.sends & 15) == 0)
			ss.completions += kz_drain_completions(sfd);
	}
	ktap_overlap_stop(ov_sender);
	if (ss.zerocopy)
		ss.completions += kz_drain_completions(sfd);
	shutdown(sfd, SHUT_WR);	/* EOF for the receiver */
	return NULL;
}

/* -------------------------------------------------------------- receiver */

static __thread sigjmp_buf probe_jb;
static __thread volatile int in_probe;

static void fault_signal(int sig)
{
	if (in_probe) {
		in_probe = 0;
		siglongjmp(probe_jb, 1);
	}
	ktap_crash(sig, NULL, NULL);
}

/* Compare n received bytes at stream offset off with the ring. */
static void verify(const unsigned char *data, size_t n, uint64_t off, const char *how)
{
	while (n) {
		size_t pos = off % RING_SIZE, k = RING_SIZE - pos;

		if (k > n)
			k = n;
		if (memcmp(data, ring + pos, k)) {
			size_t i = 0;

			while (i < k && data[i] == ring[pos + i])
				i++;
			rs.bad++;
			note(rs.first_bad, "%s: stream offset %llu: got %#x want %#x", how,
			     (unsigned long long)(off + i), data[i], ring[pos + i]);
			return;
		}
		data += k;
		off += k;
		n -= k;
	}
}

/*
 * Copy the zerocopy-mapped bytes out first: a writer may PROT_NONE or
 * replace the second half under us (SIGSEGV/SIGBUS), then those bytes are
 * only counted as unverified.
 */
static __attribute__((noinline)) int copy_mapped(unsigned char *dst, size_t n)
{
	if (sigsetjmp(probe_jb, 1))
		return -1;
	in_probe = 1;
	memcpy(dst, smap, n);
	in_probe = 0;
	return 0;
}

static int zc_call(uint64_t addr, uint32_t len, struct kz_zc *zc)
{
	socklen_t zl = sizeof(*zc);

	memset(zc, 0, sizeof(*zc));
	zc->address = addr;
	zc->length = len;
	return getsockopt(rfd, IPPROTO_TCP, TCP_ZEROCOPY_RECEIVE, zc, &zl);
}

static const char *const probe_name[4] = {
	"no mapping", "anonymous mapping", "racing gap", "unaligned address",
};

/* Bad addresses must fail with EINVAL, never map, never eat data. */
static void error_probes(char *hole, char *anon)
{
	uint64_t addrs[4] = {
		(uintptr_t)hole, (uintptr_t)anon, (uintptr_t)gap, (uintptr_t)smap + 1,
	};
	struct kz_zc zc;

	rs.probe_rounds++;
	for (int i = 0; i < 4; i++) {
		int r = zc_call(addrs[i], MAP_PAGES * ps, &zc);

		if (r < 0 && errno == EINVAL) {
			rs.probe_einval[i]++;
		} else if (r == 0 && zc.length) {
			rs.probe_mapped[i]++;
			note(rs.first_probe, "%s: zerocopy mapped %u bytes into it", probe_name[i],
			     zc.length);
		} else {
			rs.probe_other[i]++;
			note(rs.first_probe, "%s: returned %d (%s), length %u", probe_name[i], r,
			     r < 0 ? strerror(errno) : "no error", zc.length);
		}
	}
}

static void *receiver_thread(void *arg)
{
	unsigned char *buf = malloc(COPY_BUF);
	unsigned char *mbuf = malloc(MAP_PAGES * ps);
	char *hole, *anon;
	uint64_t off = 0;
	double hard_end;

	(void)arg;
	/* A page-aligned hole (may get reused: then it is some other VMA). */
	hole = mmap(NULL, ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	anon = mmap(NULL, MAP_PAGES * ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!buf || !mbuf || hole == MAP_FAILED || anon == MAP_FAILED) {
		rs.errors++;
		note(rs.first_err, "receiver buffers: %s", strerror(errno));
		atomic_store(&recv_done, 1);
		return NULL;
	}
	munmap(hole, ps);
	wait_go();
	ktap_overlap_start(ov_receiver);
	/* Keep draining a little past the deadline to reach EOF. */
	hard_end = deadline + 1.5;
	while (ktap_now() < hard_end) {
		struct kz_zc zc = { 0 };
		unsigned long s1, s2;
		int inq = 0;

		if (!rs.zc_broken) {
			/* Error probes need >= 1 page queued, see header. */
			if (((rs.zc_calls & 7) == 0 || !rs.probe_rounds) && ioctl(rfd, SIOCINQ, &inq) == 0 &&
			    (size_t)inq >= ps)
				error_probes(hole, anon);
			s1 = atomic_load(&whole_seq);
			if (zc_call((uintptr_t)smap, MAP_PAGES * ps, &zc)) {
				/* EIO: nothing queued and FIN seen, i.e. end of stream. */
				if (errno == EIO &&
				    recv(rfd, buf, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
					rs.eof = 1;
					break;
				}
				rs.errors++;
				rs.zc_broken = 1;	/* carry on with recv() only */
				note(rs.first_err, "getsockopt(TCP_ZEROCOPY_RECEIVE): %s",
				     strerror(errno));
				continue;
			}
			rs.zc_calls++;
			s2 = atomic_load(&whole_seq);
			if ((s1 & 1) || s1 != s2) {
				/* The lookup overlapped a write-lock of the zerocopy VMA. */
				rc.calls++;
				rc.mapped += !!zc.length;
				rc.bytes += zc.length;
			}
			if (zc.err) {
				rs.errors++;
				note(rs.first_err, "zerocopy reported socket error %d", zc.err);
			}
			if (zc.length) {
				int copied;

				rs.zc_maps++;
				pthread_rwlock_rdlock(&copy_lock);
				copied = copy_mapped(mbuf, zc.length) == 0;
				pthread_rwlock_unlock(&copy_lock);
				if (copied) {
					uint64_t bad = rs.bad;

					verify(mbuf, zc.length, off, "zerocopy");
					if (rs.bad == bad && ktap_overlap_open()) {
						zc_bytes_overlap += zc.length;
						ktap_overlap_op(ov_receiver);
					}
				} else {
					rs.unverified += zc.length;
				}
				rs.zc_bytes += zc.length;
				off += zc.length;
			}
		}
		if (zc.recv_skip_hint || rs.zc_broken) {
			size_t want = rs.zc_broken ? COPY_BUF : zc.recv_skip_hint;
			ssize_t n;

			if (want > COPY_BUF)
				want = COPY_BUF;
			n = recv(rfd, buf, want, MSG_DONTWAIT);
			if (n > 0) {
				rs.recvs++;
				verify(buf, n, off, "recv");
				rs.copy_bytes += n;
				off += n;
				continue;
			}
			if (n == 0) {
				rs.eof = 1;
				break;
			}
			if (errno != EAGAIN) {
				rs.errors++;
				note(rs.first_err, "recv: %s", strerror(errno));
				break;
			}
		}
		if (!zc.length && !zc.recv_skip_hint) {
			/* Nothing queued: wait a bit, and look for EOF. */
			struct pollfd p = { .fd = rfd, .events = POLLIN };

			rs.polls++;
			if (poll(&p, 1, 20) > 0 && recv(rfd, buf, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
				rs.eof = 1;
				break;
			}
		}
	}
	ktap_overlap_stop(ov_receiver);
	free(buf);
	free(mbuf);
	munmap(anon, MAP_PAGES * ps);
	atomic_store(&recv_done, 1);
	return NULL;
}

/* --------------------------------------------------------------- writers */

#define WERR(what) do { \
	wst.errors++; \
	note(wst.first_err, "%s: %s", what, strerror(errno)); \
} while (0)

static void *mprotect_thread(void *arg)
{
	(void)arg;
	wait_go();
	ktap_overlap_start(ov_mprotect);
	for (uint64_t it = 0; !atomic_load(&recv_done) &&
	     ktap_keep_going(deadline, it, !wst.split_toggles); it++) {
		if (mprotect(nb, NB_PAGES * ps, PROT_READ) ||
		    mprotect(nb, NB_PAGES * ps, PROT_READ | PROT_WRITE))
			WERR("mprotect nb");
		else
			wst.nb_toggles++;
		/* Split the TCP VMA: second half inaccessible for a moment. */
		if (mprotect(smap + half, half, PROT_NONE) ||
		    mprotect(smap + half, half, PROT_READ))
			WERR("mprotect socket second half");
		else
			wst.split_toggles++;
		ktap_overlap_op(ov_mprotect);
		usleep(50);	/* give the receiver a chance at the whole VMA too */
	}
	ktap_overlap_stop(ov_mprotect);
	return NULL;
}

static void *mmap_thread(void *arg)
{
	uint64_t rng = 0x7a7a;

	(void)arg;
	wait_go();
	ktap_overlap_start(ov_mmap);
	for (uint64_t it = 0; !atomic_load(&recv_done) &&
	     ktap_keep_going(deadline, it, !wst.gap_mmaps || !wst.sock_remaps); it++) {
		size_t n = 1 + ktap_rand(&rng) % GAP_PAGES;
		char *p = mmap(gap, n * ps, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

		if (p == MAP_FAILED) {
			if (errno == EEXIST)
				wst.gap_eexist++;
			else
				WERR("mmap gap");
		} else if (p != gap) {
			munmap(p, n * ps);
			errno = EINVAL;
			WERR("MAP_FIXED_NOREPLACE ignored");
		} else {
			*(volatile char *)p = 1;
			if (munmap(p, n * ps))
				WERR("munmap gap");
			else
				wst.gap_mmaps++;
		}
		if ((ktap_rand(&rng) & 3) == 0 || !wst.sock_remaps) {
			/* Replace the second half with a fresh mapping of the socket. */
			p = mmap(smap + half, half, PROT_READ, MAP_SHARED | MAP_FIXED, rfd, half);
			if (p == MAP_FAILED)
				WERR("re-mmap socket second half");
			else
				wst.sock_remaps++;
		}
		ktap_overlap_op(ov_mmap);
		usleep(50);
	}
	ktap_overlap_stop(ov_mmap);
	return NULL;
}

/* Write-lock the zerocopy VMA itself: whole-mapping PROT toggles and re-mmap. */
static void *whole_thread(void *arg)
{
	(void)arg;
	wait_go();
	ktap_overlap_start(ov_whole);
	for (uint64_t it = 0; !atomic_load(&recv_done) &&
	     ktap_keep_going(deadline, it, !wst.whole_prot || !wst.whole_remaps); it++) {
		int remap = it & 1;
		char *p;
		int err;

		pthread_rwlock_wrlock(&copy_lock);
		atomic_fetch_add(&whole_seq, 1);
		if (remap) {
			p = mmap(smap, MAP_PAGES * ps, PROT_READ, MAP_SHARED | MAP_FIXED, rfd, 0);
			err = p == MAP_FAILED;
		} else {
			err = mprotect(smap, MAP_PAGES * ps, PROT_NONE) ||
			      mprotect(smap, MAP_PAGES * ps, PROT_READ);
		}
		atomic_fetch_add(&whole_seq, 1);
		pthread_rwlock_unlock(&copy_lock);
		if (err) {
			WERR(remap ? "re-mmap whole socket mapping" : "mprotect whole socket mapping");
		} else {
			if (remap)
				wst.whole_remaps++;
			else
				wst.whole_prot++;
			ktap_overlap_op(ov_whole);
		}
		usleep(100);	/* let receives find the VMA unlocked too */
	}
	ktap_overlap_stop(ov_whole);
	return NULL;
}

/* ------------------------------------------------------------------ main */

static int setup_sockets(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	int one = 1, lowat = 8 * ps, lfd;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &al)) {
		ktap_diag("listen on 127.0.0.1: %s", strerror(errno));
		return -1;
	}
	sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sfd < 0 || connect(sfd, (struct sockaddr *)&a, sizeof(a))) {
		ktap_diag("connect to 127.0.0.1:%d: %s", ntohs(a.sin_port), strerror(errno));
		return -1;
	}
	rfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (rfd < 0) {
		ktap_diag("accept: %s", strerror(errno));
		return -1;
	}
	close(lfd);
	/* Bounded blocking sends so the sender sees its deadline. */
	setsockopt(sfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (setsockopt(sfd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) == 0)
		ss.zerocopy = 1;
	else
		ktap_diag("SO_ZEROCOPY unavailable (%s): plain sends, expect few mapped bytes",
			  strerror(errno));
	/* Batch whole pages before waking the receiver. */
	if (setsockopt(rfd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)))
		ktap_diag("SO_RCVLOWAT: %s", strerror(errno));
	return 0;
}

static int setup_layout(void)
{
	size_t total = (NB_PAGES + MAP_PAGES + GAP_PAGES) * ps;
	char *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (base == MAP_FAILED) {
		ktap_diag("mmap layout: %s", strerror(errno));
		return -1;
	}
	nb = base;
	smap = nb + NB_PAGES * ps;
	gap = smap + MAP_PAGES * ps;
	half = MAP_PAGES / 2 * ps;
	if (mmap(smap, MAP_PAGES * ps, PROT_READ, MAP_SHARED | MAP_FIXED, rfd, 0) == MAP_FAILED) {
		ktap_diag("mmap(socket, PROT_READ, MAP_SHARED): %s", strerror(errno));
		return -1;
	}
	if (munmap(gap, GAP_PAGES * ps)) {
		ktap_diag("munmap gap: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	double dur = ktap_begin(argc, argv, 6 + 5);
	pthread_t th[5];
	int nth = 0, ok, probes_ok;
	struct sigaction sa;
	uint64_t total;

	ps = sysconf(_SC_PAGESIZE);
	ktap_diag("tcp_zerocopy_vs_writers: duration %.1fs, page size %zu", dur, ps);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fault_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);

	ring = malloc(RING_SIZE);
	if (!ring)
		return ktap_bail("not run: out of memory");
	for (size_t i = 0; i < RING_SIZE / 8; i++) {
		uint64_t v = 0x5443500000000000ull | i;	/* "TCP" | word index */

		memcpy(ring + i * 8, &v, 8);
	}
	if (setup_sockets() || setup_layout()) {
		ktap_result(0, "loopback TCP connection and socket mmap set up");
		return ktap_bail("not run: setup failed");
	}
	ktap_result(1, "loopback TCP connection and socket mmap set up");

	ov_sender = ktap_overlap_kind("sender");
	ov_receiver = ktap_overlap_kind("receiver");
	ov_mprotect = ktap_overlap_kind("mprotect_half");
	ov_mmap = ktap_overlap_kind("mmap");
	ov_whole = ktap_overlap_kind("whole");
	deadline = ktap_now() + dur;
	if (pthread_create(&th[nth++], NULL, receiver_thread, NULL) ||
	    pthread_create(&th[nth++], NULL, sender_thread, NULL) ||
	    pthread_create(&th[nth++], NULL, mprotect_thread, NULL) ||
	    pthread_create(&th[nth++], NULL, mmap_thread, NULL) ||
	    pthread_create(&th[nth++], NULL, whole_thread, NULL)) {
		nth--;
		ktap_diag("pthread_create failed");
	}
	atomic_store(&go, 1);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);

	total = rs.zc_bytes + rs.copy_bytes;
	ktap_diag("sender: sends %llu (MSG_ZEROCOPY %llu), bytes %llu, enobufs %llu, completion msgs %llu, timeouts %llu, errors %llu",
		  (unsigned long long)ss.sends, (unsigned long long)ss.zc_sends,
		  (unsigned long long)ss.bytes, (unsigned long long)ss.enobufs,
		  (unsigned long long)ss.completions, (unsigned long long)ss.timeouts,
		  (unsigned long long)ss.errors);
	if (ss.first_err[0])
		ktap_diag("  sender first error: %s", ss.first_err);
	ktap_diag("receiver: zerocopy calls %llu, mapped %llu times, zerocopy bytes %llu, copied bytes %llu (%llu recvs), unverified %llu, bad %llu, eof %s, errors %llu",
		  (unsigned long long)rs.zc_calls, (unsigned long long)rs.zc_maps,
		  (unsigned long long)rs.zc_bytes, (unsigned long long)rs.copy_bytes,
		  (unsigned long long)rs.recvs, (unsigned long long)rs.unverified,
		  (unsigned long long)rs.bad, rs.eof ? "yes" : "no",
		  (unsigned long long)rs.errors);
	if (rs.first_bad[0])
		ktap_diag("  first mismatch: %s", rs.first_bad);
	if (rs.first_err[0])
		ktap_diag("  receiver first error: %s", rs.first_err);

	ok = ss.bytes > 0 && !ss.errors && rs.eof && total == ss.bytes && !rs.bad &&
	     total > rs.unverified;
	if (!rs.eof || total != ss.bytes)
		ktap_diag("received %llu of %llu bytes sent", (unsigned long long)total,
			  (unsigned long long)ss.bytes);
	ktap_result(ok, "stream data intact (zerocopy + recv fallback)");

	/* Test names stay fixed across runs; the counts go in diagnostics. */
	ktap_diag("zerocopy bytes received: %llu (%s)", (unsigned long long)rs.zc_bytes,
		  rs.zc_bytes ? "pages were mapped" : "none mapped: frags not page-sized?");
	ktap_diag("zerocopy bytes mapped and verified while every writer ran: %llu",
		  (unsigned long long)zc_bytes_overlap);
	/* Zero mapped bytes means find_tcp_vma() never handed out a VMA: no pass. */
	ktap_result(rs.zc_calls > 0 && !rs.zc_broken && !rs.errors && zc_bytes_overlap > 0,
		    "TCP_ZEROCOPY_RECEIVE calls succeeded and mapped pages while writers ran");

	probes_ok = rs.probe_rounds > 0;
	for (int i = 0; i < 4; i++) {
		ktap_diag("error probe '%s': EINVAL %llu, other %llu, mapped %llu", probe_name[i],
			  (unsigned long long)rs.probe_einval[i],
			  (unsigned long long)rs.probe_other[i],
			  (unsigned long long)rs.probe_mapped[i]);
		if (!rs.probe_einval[i] || rs.probe_other[i] || rs.probe_mapped[i])
			probes_ok = 0;
	}
	if (rs.first_probe[0])
		ktap_diag("  first unexpected probe result: %s", rs.first_probe);
	ktap_diag("error probe rounds: %llu", (unsigned long long)rs.probe_rounds);
	ktap_result(probes_ok, "zerocopy into non-socket addresses fails with EINVAL");

	ktap_diag("writers: nb mprotect toggles %llu, TCP VMA split toggles %llu, socket re-mmaps %llu, gap mmaps %llu (eexist %llu), errors %llu",
		  (unsigned long long)wst.nb_toggles, (unsigned long long)wst.split_toggles,
		  (unsigned long long)wst.sock_remaps, (unsigned long long)wst.gap_mmaps,
		  (unsigned long long)wst.gap_eexist, (unsigned long long)wst.errors);
	if (wst.first_err[0])
		ktap_diag("  writer first error: %s", wst.first_err);
	ktap_diag("whole-mapping writer: PROT_NONE/PROT_READ toggles %llu, MAP_FIXED re-mmaps %llu",
		  (unsigned long long)wst.whole_prot, (unsigned long long)wst.whole_remaps);
	ktap_result(wst.nb_toggles > 0 && wst.split_toggles > 0 && wst.sock_remaps > 0 &&
		    wst.gap_mmaps > 0 && wst.whole_prot > 0 && wst.whole_remaps > 0 && !wst.errors,
		    "writers ran (mprotect split of TCP VMA, socket re-mmap, gap mmap/munmap)");

	ktap_diag("contended receives: %llu zerocopy calls overlapped a whole-mapping write, %llu of them mapped %llu bytes",
		  (unsigned long long)rc.calls, (unsigned long long)rc.mapped,
		  (unsigned long long)rc.bytes);
	ktap_result(rc.calls > 0,
		    "zerocopy receives raced write-locks of the zerocopy VMA (contended lookup)");

	/* 7..11: every thread kind worked while all the others ran. */
	ktap_overlap_report();
	return ktap_end();
}
