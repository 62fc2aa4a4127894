// SPDX-License-Identifier: GPL-2.0
/*
 * perf_faults - microbenchmarks of the paths a VMA-lock series changes.
 *
 * Each metric is measured in WINDOWS short windows; the windows of all
 * metrics are interleaved (window 1 of every metric, then window 2, ...), so
 * a slow phase of the host (TCG shares its CPUs) spreads over all of them
 * instead of hitting one. Each metric ends up as one machine line,
 *
 *   # kmatrix-perf: fault_private ops/s 81234.5 80950.1 ...
 *
 * one rate per window, higher is better. kmatrix compares a patched cell's
 * samples with its base cell's (judge/perf.rs); the windows of a test are
 * not independent of the boot they ran in, so kmatrix resamples boots first.
 *
 *   fault_private          write faults on anonymous private memory: touch
 *                          every page of a region, MADV_DONTNEED it, again
 *                          (do_anonymous_page under lock_vma_under_rcu())
 *   fault_shared           write faults on memfd (shmem) shared memory whose
 *                          pages stay in the page cache (do_shared_fault)
 *   fault_private_writer   fault_private while another thread changes other
 *   fault_shared_writer    VMAs of the process (mprotect split/merge,
 *                          mmap/munmap): mmap_lock taken for write all the
 *                          time, which faults without per-VMA locks wait for
 *   tcp_zerocopy           send 16 pages over loopback TCP, take them with
 *                          getsockopt(TCP_ZEROCOPY_RECEIVE), whose VMA lookup
 *                          is find_tcp_vma() (the function the series changes)
 *   tcp_zerocopy_writer    the same with the writer thread
 *   cpu                    a userspace loop with no system call: the host
 *                          speed control (a difference here is the host's, and
 *                          says the other figures are not comparable)
 *
 * A metric the kernel cannot run (no memfd, no TCP_ZEROCOPY_RECEIVE, no
 * mmap of TCP sockets) is a SKIP with the reason and prints no line.
 */
#define _GNU_SOURCE
#include "ktap.h"
#include "zerocopy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif

#define WINDOWS		10	/* samples per metric */
#define FAULT_PAGES	64	/* pages touched per round (then zapped) */
#define TCP_PAGES	16	/* pages per send and per zerocopy receive */
#define RING_PAGES	64	/* sender's pattern ring */
#define WR_PAGES	8	/* writer's mprotect target */
#define CPU_ITERS	4096	/* one "op" of the cpu control */

enum metric {
	M_FAULT_PRIVATE, M_FAULT_SHARED, M_FAULT_PRIVATE_W, M_FAULT_SHARED_W,
	M_TCP, M_TCP_W, M_CPU, N_METRICS
};

static const char *const metric_name[N_METRICS] = {
	"fault_private", "fault_shared", "fault_private_writer", "fault_shared_writer",
	"tcp_zerocopy", "tcp_zerocopy_writer", "cpu",
};

static const int with_writer[N_METRICS] = {
	[M_FAULT_PRIVATE_W] = 1, [M_FAULT_SHARED_W] = 1, [M_TCP_W] = 1,
};

static size_t ps;
static char *priv, *shared;	/* fault regions */
static int memfd = -1;
static char skip_why[N_METRICS][256];	/* set: the metric is a SKIP */
static char fail_why[N_METRICS][256];	/* set: the metric is not ok */
static double samples[N_METRICS][WINDOWS];
static uint64_t total_ops[N_METRICS];

/* ---------------------------------------------------------------- writer */

static char *wregion, *wgap;	/* writer's own VMAs, away from the measured ones */
static atomic_int wstop;
static struct {
	uint64_t ops, errors;
	char first_err[256];
} wst;

/*
 * Takes mmap_lock for write over and over, never on a VMA the measured
 * thread uses: split/merge of its own region, mmap/munmap in its own gap.
 */
static void *writer_thread(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&wstop, memory_order_relaxed)) {
		char *p;

		if (mprotect(wregion + ps, ps, PROT_READ) ||
		    mprotect(wregion + ps, ps, PROT_READ | PROT_WRITE)) {
			wst.errors++;
			note(wst.first_err, "mprotect: %s", strerror(errno));
		}
		p = mmap(wgap, ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED) {
			wst.errors++;
			note(wst.first_err, "mmap: %s", strerror(errno));
		} else if (munmap(p, ps)) {
			wst.errors++;
			note(wst.first_err, "munmap: %s", strerror(errno));
		}
		wst.ops++;
	}
	return NULL;
}

/* ---------------------------------------------------------------- faults */

/* Touch every page (a write fault each), then zap them all. Returns ops. */
static uint64_t fault_round(char *region, enum metric m)
{
	for (size_t i = 0; i < FAULT_PAGES; i++)
		((volatile char *)region)[i * ps] = (char)i;
	if (madvise(region, FAULT_PAGES * ps, MADV_DONTNEED)) {
		note(fail_why[m], "madvise(MADV_DONTNEED): %s", strerror(errno));
		return 0;
	}
	return FAULT_PAGES;
}

/* ------------------------------------------------------------------- tcp */

static int sfd = -1, rfd = -1, zerocopy_send;
static char *smap;		/* the receiver's mapping of its socket */
static unsigned char *ring;
static uint64_t sent_off, recv_off, zc_mapped, zc_bad;
static unsigned char copybuf[TCP_PAGES * 4096 * 4];

static int zc_call(struct kz_zc *zc)
{
	socklen_t zl = sizeof(*zc);

	memset(zc, 0, sizeof(*zc));
	zc->address = (uintptr_t)smap;
	zc->length = TCP_PAGES * ps;
	return getsockopt(rfd, IPPROTO_TCP, TCP_ZEROCOPY_RECEIVE, zc, &zl);
}

/* One op: 16 pages sent, then received (mapped where the kernel can). */
static uint64_t tcp_round(enum metric m)
{
	size_t len = TCP_PAGES * ps, pos = sent_off % (RING_PAGES * ps);
	ssize_t n;

	if (len > RING_PAGES * ps - pos)
		len = RING_PAGES * ps - pos;
	n = send(sfd, ring + pos, len, zerocopy_send ? MSG_ZEROCOPY : 0);
	if (n < 0 && errno == ENOBUFS) {
		kz_drain_completions(sfd);
		return 0;
	}
	if (n <= 0) {
		note(fail_why[m], "send: %s", n < 0 ? strerror(errno) : "sent nothing");
		return 0;
	}
	sent_off += n;
	while (recv_off < sent_off) {
		struct kz_zc zc;

		if (zc_call(&zc)) {
			note(fail_why[m], "getsockopt(TCP_ZEROCOPY_RECEIVE): %s", strerror(errno));
			return 0;
		}
		if (zc.length) {
			uint64_t want, got;

			/* The first word of what was mapped must be the stream's. */
			memcpy(&got, smap, 8);
			memcpy(&want, ring + recv_off % (RING_PAGES * ps), 8);
			zc_bad += got != want;
			zc_mapped += zc.length;
			recv_off += zc.length;
		}
		if (zc.recv_skip_hint) {
			size_t want = zc.recv_skip_hint < sizeof(copybuf) ? zc.recv_skip_hint
									 : sizeof(copybuf);

			n = recv(rfd, copybuf, want, MSG_DONTWAIT);
			if (n > 0)
				recv_off += n;
		}
		if (!zc.length && !zc.recv_skip_hint) {
			struct pollfd p = { .fd = rfd, .events = POLLIN };

			if (poll(&p, 1, 100) <= 0) {
				note(fail_why[m], "receiver: %llu bytes sent never arrived",
				     (unsigned long long)(sent_off - recv_off));
				return 0;
			}
		}
	}
	kz_drain_completions(sfd);
	return 1;
}

/* Loopback connection and the receiver's mapping; "" or why the tcp metrics are skipped. */
static const char *setup_tcp(char *why, size_t n)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int one = 1, lfd;
	struct kz_zc zc;

	ring = malloc(RING_PAGES * ps);
	if (!ring)
		return snprintf(why, n, "out of memory"), why;
	for (size_t i = 0; i < RING_PAGES * ps / 8; i++) {
		uint64_t v = 0x5045524600000000ull | i;	/* "PERF" | word index */

		memcpy(ring + i * 8, &v, 8);
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &al))
		return snprintf(why, n, "listen on 127.0.0.1: %s", strerror(errno)), why;
	sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sfd < 0 || connect(sfd, (struct sockaddr *)&a, sizeof(a)))
		return snprintf(why, n, "connect to 127.0.0.1: %s", strerror(errno)), why;
	rfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	close(lfd);
	if (rfd < 0)
		return snprintf(why, n, "accept: %s", strerror(errno)), why;
	/* Loopback copies MSG_ZEROCOPY payloads into fresh pages: mappable ones. */
	zerocopy_send = setsockopt(sfd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) == 0;
	if (!zerocopy_send)
		ktap_diag("SO_ZEROCOPY unavailable (%s): plain sends, few pages mappable",
			  strerror(errno));
	smap = mmap(NULL, TCP_PAGES * ps, PROT_READ, MAP_SHARED, rfd, 0);
	if (smap == MAP_FAILED)
		return snprintf(why, n, "mmap of a TCP socket: %s", strerror(errno)), why;
	/* Nothing queued: a kernel that knows the option answers 0 (or EIO at EOF). */
	if (zc_call(&zc) && (errno == ENOPROTOOPT || errno == EOPNOTSUPP))
		return snprintf(why, n, "getsockopt(TCP_ZEROCOPY_RECEIVE): %s", strerror(errno)), why;
	return "";
}

/* ------------------------------------------------------------------- cpu */

static uint64_t cpu_state = 0x9e3779b97f4a7c15ull;

static uint64_t cpu_round(void)
{
	for (int i = 0; i < CPU_ITERS; i++)
		ktap_rand(&cpu_state);
	return 1;
}

/* ---------------------------------------------------------------- window */

static uint64_t round_of(enum metric m)
{
	switch (m) {
	case M_FAULT_PRIVATE:
	case M_FAULT_PRIVATE_W:
		return fault_round(priv, m);
	case M_FAULT_SHARED:
	case M_FAULT_SHARED_W:
		return fault_round(shared, m);
	case M_TCP:
	case M_TCP_W:
		return tcp_round(m);
	case M_CPU:
		return cpu_round();
	default:
		return 0;
	}
}

/* Run metric m for secs; its rate in ops/s (0 when it failed). */
static double window(enum metric m, double secs)
{
	pthread_t wt;
	int writer = with_writer[m];
	uint64_t ops = 0, wops = wst.ops;
	double t0, t1;

	if (writer) {
		atomic_store(&wstop, 0);
		if (pthread_create(&wt, NULL, writer_thread, NULL)) {
			note(fail_why[m], "pthread_create(writer) failed");
			return 0;
		}
	}
	t0 = t1 = ktap_now();
	do {
		uint64_t n = round_of(m);

		if (!n && fail_why[m][0])
			break;
		ops += n;
		t1 = ktap_now();
	} while (t1 - t0 < secs);
	t1 = ktap_now();
	if (writer) {
		atomic_store(&wstop, 1);
		pthread_join(wt, NULL);
		if (wst.ops == wops)
			note(fail_why[m], "the writer thread made no change during a window");
	}
	total_ops[m] += ops;
	return fail_why[m][0] || t1 <= t0 ? 0 : ops / (t1 - t0);
}

/* --------------------------------------------------------------------- main */

static int setup_memory(void)
{
	char *w;

	priv = mmap(NULL, FAULT_PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	/* The writer's region and a one-page gap right after it, unmapped. */
	w = mmap(NULL, (WR_PAGES + 1) * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (priv == MAP_FAILED || w == MAP_FAILED || munmap(w + WR_PAGES * ps, ps)) {
		ktap_diag("mmap: %s", strerror(errno));
		return -1;
	}
	wregion = w;
	wgap = w + WR_PAGES * ps;
	memfd = memfd_create("kmatrix-perf", MFD_CLOEXEC);
	if (memfd < 0) {
		snprintf(skip_why[M_FAULT_SHARED], sizeof(skip_why[0]), "memfd_create: %s",
			 strerror(errno));
	} else if (ftruncate(memfd, FAULT_PAGES * ps) ||
		   (shared = mmap(NULL, FAULT_PAGES * ps, PROT_READ | PROT_WRITE, MAP_SHARED,
				  memfd, 0)) == MAP_FAILED) {
		snprintf(skip_why[M_FAULT_SHARED], sizeof(skip_why[0]), "memfd mapping: %s",
			 strerror(errno));
		shared = NULL;
	}
	if (skip_why[M_FAULT_SHARED][0])
		memcpy(skip_why[M_FAULT_SHARED_W], skip_why[M_FAULT_SHARED], sizeof(skip_why[0]));
	return 0;
}

int main(int argc, char **argv)
{
	double dur = ktap_begin(argc, argv, N_METRICS), secs;
	char why[256];
	int active = 0;

	ps = sysconf(_SC_PAGESIZE);
	if (setup_memory())
		return ktap_bail("not run: setup failed");
	if (*setup_tcp(why, sizeof(why))) {
		snprintf(skip_why[M_TCP], sizeof(skip_why[0]), "%s", why);
		snprintf(skip_why[M_TCP_W], sizeof(skip_why[0]), "%s", why);
	}
	for (int m = 0; m < N_METRICS; m++)
		active += !skip_why[m][0];
	/* A tenth of the time warms up (page tables, page cache, TCP), the rest is measured. */
	secs = dur * 0.9 / (active * WINDOWS + 1e-9);
	if (secs < 0.02)
		secs = 0.02;
	ktap_diag("perf_faults: duration %.1fs, %d metrics x %d windows of %.3fs, page size %zu",
		  dur, active, WINDOWS, secs, ps);
	for (int m = 0; m < N_METRICS; m++)
		if (!skip_why[m][0])
			window(m, secs * WINDOWS / 10);
	for (int m = 0; m < N_METRICS; m++)
		total_ops[m] = 0;
	for (int w = 0; w < WINDOWS; w++)
		for (int m = 0; m < N_METRICS; m++)
			if (!skip_why[m][0] && !fail_why[m][0])
				samples[m][w] = window(m, secs);

	for (int m = 0; m < N_METRICS; m++) {
		char line[1024];
		size_t n;

		if (skip_why[m][0] || fail_why[m][0])
			continue;
		n = snprintf(line, sizeof(line), "kmatrix-perf: %s ops/s", metric_name[m]);
		for (int w = 0; w < WINDOWS && n < sizeof(line); w++)
			n += snprintf(line + n, sizeof(line) - n, " %.1f", samples[m][w]);
		ktap_diag("%s", line);
	}
	for (int m = 0; m < N_METRICS; m++)
		if (!skip_why[m][0])
			ktap_diag("%s: %llu ops measured", metric_name[m],
				  (unsigned long long)total_ops[m]);
	ktap_diag("writer: %llu change rounds, errors %llu%s%s", (unsigned long long)wst.ops,
		  (unsigned long long)wst.errors, wst.first_err[0] ? ", first: " : "",
		  wst.first_err);
	if (!skip_why[M_TCP][0])
		ktap_diag("tcp: %llu bytes mapped by zerocopy of %llu received, %llu bad first words",
			  (unsigned long long)zc_mapped, (unsigned long long)recv_off,
			  (unsigned long long)zc_bad);
	if (!skip_why[M_TCP][0] && !zc_mapped)
		for (int m = M_TCP; m <= M_TCP_W; m++)
			note(fail_why[m], "zerocopy mapped nothing: find_tcp_vma() was never reached");
	if (zc_bad)
		for (int m = M_TCP; m <= M_TCP_W; m++)
			note(fail_why[m], "zerocopy mapped pages that hold other data than was sent");

	for (int m = 0; m < N_METRICS; m++) {
		if (skip_why[m][0])
			ktap_skip(skip_why[m], "%s", metric_name[m]);
		else if (fail_why[m][0])
			ktap_result(0, "%s # %s", metric_name[m], fail_why[m]);
		else
			ktap_result(total_ops[m] > 0, "%s measured", metric_name[m]);
	}
	return ktap_end();
}
