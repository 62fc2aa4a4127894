// SPDX-License-Identifier: GPL-2.0
/*
 * vma_probe - drive the kmatrix debugfs hook for vma_start_read_unlocked().
 *
 * The kernel side (guest-tests/kernel/vma-probe.patch) creates
 * /sys/kernel/debug/kmatrix/vma_probe; every write is one command that calls
 * vma_start_read_unlocked(current->mm, addr) on this process and returns 0
 * (full length) or a negative errno.  Cases, in this order:
 *
 *   1 lookup       mapped address -> the VMA covering it comes back locked
 *   2 fault_other  VMA A read-locked, copy_to_user() into another VMA B
 *                  (B already has an anon_vma, so the fault completes under
 *                  B's per-VMA lock and never needs mmap_lock).  Functionally
 *                  safe here, but lockdep cannot tell it from fault_same (one
 *                  vm_lock class, might_fault() annotates mmap_lock), so on a
 *                  lockdep kernel the circular-dependency report already
 *                  appears during this case and lockdep is then off
 *   3 fault_same   control: VMA read-locked, copy_to_user() into an
 *                  untouched page of that same fresh anonymous VMA; the
 *                  per-VMA fault needs an anon_vma, retries and takes
 *                  mmap_lock while the VMA lock is held -> lockdep must
 *                  report a circular dependency on the console
 *   4 hold         control: VMA read-locked for max(duration, 30) s while a
 *                  thread mprotect()s it -> the writer blocks in
 *                  vma_start_write(), the hung-task detector must fire
 *                  (hung_task_timeout_secs=10)
 *   5 nolookup     unmapped address -> must return NULL (the v2 slow path
 *                  dereferences a NULL vma here, so it runs after the
 *                  controls)
 *   6 contended_keep      the slow path on purpose: the kernel side holds
 *   7 contended_mprotect  mmap_lock for write with the VMA write-locked
 *   8 contended_munmap    while a kthread calls vma_start_read_unlocked()
 *                  and must wait for it (fast path fails, slow path blocks
 *                  in mmap_read_lock()); then, still under the lock, it
 *                  keeps the VMA, drops VM_WRITE from all of it, or unmaps
 *                  it. The lookup must return the same VMA, the VMA without
 *                  VM_WRITE, or NULL; the kernel checks that, this program
 *                  checks the mapping afterwards (read-only / gone). v2's
 *                  slow path oopses here too, in the kthread
 *   9 contended_saturate  the same, but under the lock the VMA's reader
 *                  count is raised to its limit: the slow path finds the
 *                  VMA and vma_start_read_locked() refuses it, so the
 *                  lookup must return NULL and release mmap_lock (the
 *                  kernel checks both, then puts the count back); the
 *                  VMA stays rw-p
 *
 * The controls are "ok" when the kernel call returned; whether lockdep or
 * the hung-task detector fired is decided from the console by the host.
 *
 * Usage: vma_probe <duration_seconds> [result_file]
 *
 * VMA_PROBE_CASES=name[,name...] in the environment runs only those cases
 * (the others are reported as SKIP), e.g. VMA_PROBE_CASES=fault_same to see
 * the lockdep report come from fault_same alone.
 */
#define _GNU_SOURCE
#include "ktap.h"

#include <sys/mman.h>
#include <sys/stat.h>

#define PROBE_PATH	"/sys/kernel/debug/kmatrix/vma_probe"
#define N_CASES		9
#define MIN_HOLD	30
#define MAGIC		0x6b6d6174726978ULL	/* what the probe writes */

static size_t ps;

/* Send one command; 0 on success, -errno on failure. */
static __attribute__((format(printf, 1, 2))) int probe(const char *fmt, ...)
{
	char cmd[256];
	va_list ap;
	ssize_t w;
	int fd, n, err;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		return -EINVAL;
	fd = open(PROBE_PATH, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	w = write(fd, cmd, n);
	err = w < 0 ? -errno : (w == n ? 0 : -EIO);
	close(fd);
	return err;
}

/*
 * A fresh read-write anonymous VMA of @pages pages with PROT_NONE guard
 * pages on both sides, so it can not merge with (and inherit the anon_vma
 * of) a neighbour.  The mprotect() that carves it out also takes
 * mmap_lock for write and write-locks a VMA, which gives lockdep the
 * mmap_lock -> vma lock order.  Returns NULL on failure.
 */
static char *fresh_vma(size_t pages)
{
	char *base = mmap(NULL, (pages + 2) * ps, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (base == MAP_FAILED)
		return NULL;
	if (mprotect(base + ps, pages * ps, PROT_READ | PROT_WRITE)) {
		munmap(base, (pages + 2) * ps);
		return NULL;
	}
	return base + ps;
}

static void budget(double secs)
{
	ktap_watchdog_at = ktap_now() + secs;
}

static int case_lookup(void)
{
	char *a = fresh_vma(2);
	int err;

	if (!a)
		return ktap_result(0, "lookup: mmap failed: %s", strerror(errno));
	a[0] = 1;
	err = probe("lookup 0x%lx", (unsigned long)(a + ps + 17));
	if (err)
		return ktap_result(0, "lookup: vma_start_read_unlocked() on a mapped address failed: %s",
				   strerror(-err));
	return ktap_result(1, "lookup: vma_start_read_unlocked() returned the read-locked VMA covering a mapped address");
}

static int case_fault_other(void)
{
	char *a = fresh_vma(1), *b = fresh_vma(2);
	volatile uint64_t *dst;
	int err;

	if (!a || !b)
		return ktap_result(0, "fault_other: mmap failed: %s", strerror(errno));
	a[0] = 1;
	b[0] = 1;		/* B gets its anon_vma now */
	dst = (volatile uint64_t *)(b + ps);	/* untouched page of B */
	/*
	 * lockdep has one vm_lock class for all VMAs and copy_to_user() does
	 * might_fault() -> might_lock_read(mmap_lock), so a lockdep kernel
	 * reports vm_lock -> mmap_lock here already (the order mmap_lock ->
	 * vm_lock is known since exec).  That is a real hazard, not noise: had
	 * the fault on B needed the mmap_lock fallback, a writer holding
	 * mmap_lock and waiting for A's readers would deadlock us.
	 */
	ktap_diag("fault_other: on lockdep kernels the first uaccess under a VMA read lock is reported (one vm_lock class + might_fault)");
	err = probe("fault_other 0x%lx 0x%lx", (unsigned long)a, (unsigned long)dst);
	if (err)
		return ktap_result(0, "fault_other: copy_to_user() into another VMA while holding a VMA read lock failed: %s",
				   strerror(-err));
	if (*dst != MAGIC)
		return ktap_result(0, "fault_other: fault under another VMA's read lock returned but data is wrong (%#llx)",
				   (unsigned long long)*dst);
	return ktap_result(1, "fault_other: copy_to_user() faulted in a page of another VMA while holding a VMA read lock, data correct");
}

static int case_fault_same(void)
{
	/* No anon_vma yet: the per-VMA fault must retry under mmap_lock. */
	char *c = fresh_vma(2);
	volatile uint64_t *dst;
	int err;

	if (!c)
		return ktap_result(0, "fault_same: mmap failed: %s", strerror(errno));
	dst = (volatile uint64_t *)(c + ps);
	ktap_diag("fault_same: deliberate misuse, lockdep should report mmap_lock vs vm_lock on the console");
	err = probe("fault_same 0x%lx", (unsigned long)dst);
	if (err)
		return ktap_result(0, "fault_same: probe call failed: %s", strerror(-err));
	if (*dst != MAGIC)
		return ktap_result(0, "fault_same: call returned but data is wrong (%#llx)",
				   (unsigned long long)*dst);
	return ktap_result(1, "fault_same: copy_to_user() into the read-locked, anon_vma-less VMA returned (lockdep control, console decides)");
}

struct writer_arg {
	char *addr;
	size_t len;
	int err;
	double blocked;
};

static void *writer(void *p)
{
	struct writer_arg *w = p;
	struct timespec ts = { 1, 0 };
	double t0;

	nanosleep(&ts, NULL);	/* let the reader take the VMA lock first */
	t0 = ktap_now();
	w->err = mprotect(w->addr, w->len, PROT_READ) ? errno : 0;
	w->blocked = ktap_now() - t0;
	return NULL;
}

static int case_hold(double dur)
{
	unsigned long secs = dur > MIN_HOLD ? (unsigned long)(dur + 0.999) : MIN_HOLD;
	struct writer_arg w = { 0 };
	char *h = fresh_vma(1);
	pthread_t t;
	int err;

	if (!h)
		return ktap_result(0, "hold: mmap failed: %s", strerror(errno));
	h[0] = 1;
	w.addr = h;
	w.len = ps;
	/* Generous: under heavy host load a TCG guest's clock can run fast (TSC
	 * calibrated against a starved PIT); the host's own timeout still bounds us. */
	budget(secs + 120);
	if (pthread_create(&t, NULL, writer, &w))
		return ktap_result(0, "hold: pthread_create failed");
	ktap_diag("hold: holding the VMA read lock for %lu s while another thread mprotect()s it; hung-task report expected", secs);
	err = probe("hold 0x%lx %lu", (unsigned long)h, secs);
	pthread_join(t, NULL);
	if (err)
		return ktap_result(0, "hold: probe call failed: %s", strerror(-err));
	ktap_diag("hold: writer mprotect() returned %s after %.1f s", w.err ? strerror(w.err) : "0", w.blocked);
	return ktap_result(1, "hold: VMA read lock held %lu s, mprotect() writer blocked %.1f s in vma_start_write() (hung-task control, console decides)",
			   secs, w.blocked);
}

/* Permissions of the maps line covering addr ("rw-p"), or "" if none. */
static void perms_of(char *addr, char out[8])
{
	unsigned long a = (unsigned long)addr, s, e;
	char line[512], perms[8];
	FILE *f = fopen("/proc/self/maps", "r");

	out[0] = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3 && s <= a && a < e) {
			snprintf(out, 8, "%s", perms);
			break;
		}
	fclose(f);
}

static int case_contended(const char *op)
{
	char *v = fresh_vma(2), perms[8];
	int err;

	if (!v)
		return ktap_result(0, "contended_%s: mmap failed: %s", op, strerror(errno));
	v[0] = 1;
	budget(40);
	err = probe("contended 0x%lx %s", (unsigned long)(v + ps), op);
	if (err == -EINVAL)
		return ktap_result(0, "contended_%s: the kernel probe has no contended mode (EINVAL): harness patch older than this program", op);
	if (err)
		return ktap_result(0, "contended_%s: lookup that waited for the writer answered wrong: %s (see the console)",
				   op, strerror(-err));
	perms_of(v, perms);
	if (!strcmp(op, "mprotect") && strcmp(perms, "r--p"))
		return ktap_result(0, "contended_mprotect: VMA is '%s' afterwards, want r--p", perms);
	if (!strcmp(op, "munmap") && perms[0])
		return ktap_result(0, "contended_munmap: VMA still mapped ('%s') afterwards", perms);
	if ((!strcmp(op, "keep") || !strcmp(op, "saturate")) && strcmp(perms, "rw-p"))
		return ktap_result(0, "contended_%s: VMA is '%s' afterwards, want rw-p", op, perms);
	return ktap_result(1, "contended_%s: vma_start_read_unlocked() waited for the writer, then returned %s",
			   op, !strcmp(op, "munmap") ? "NULL (VMA unmapped meanwhile)" :
			   !strcmp(op, "saturate") ? "NULL (reader count at its limit), mmap_lock released" :
			   !strcmp(op, "mprotect") ? "the VMA without VM_WRITE" : "the same VMA");
}

static int case_nolookup(void)
{
	char *n = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int err;

	if (n == MAP_FAILED)
		return ktap_result(0, "nolookup: mmap failed: %s", strerror(errno));
	munmap(n, ps);		/* leave a hole */
	budget(20);
	ktap_diag("about to run nolookup");
	err = probe("nolookup 0x%lx", (unsigned long)n);
	if (err)
		return ktap_result(0, "nolookup: vma_start_read_unlocked() on an unmapped address failed: %s",
				   strerror(-err));
	return ktap_result(1, "nolookup: vma_start_read_unlocked() on an unmapped address returned NULL");
}

/* Honour VMA_PROBE_CASES; reports SKIP for a case that is not selected. */
static int selected(const char *name)
{
	const char *list = getenv("VMA_PROBE_CASES");
	size_t n = strlen(name);

	if (!list || !*list)
		return 1;
	for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == '\0'))
			return 1;
	ktap_skip("not selected by VMA_PROBE_CASES", "%s", name);
	return 0;
}

int main(int argc, char **argv)
{
	struct stat st;
	double dur;

	dur = ktap_begin(argc, argv, N_CASES);
	ps = (size_t)sysconf(_SC_PAGESIZE);

	if (stat(PROBE_PATH, &st)) {
		static const char *const names[N_CASES] = {
			"lookup", "fault_other", "fault_same", "hold", "nolookup",
			"contended_keep", "contended_mprotect", "contended_munmap",
			"contended_saturate"
		};

		ktap_diag("%s: %s", PROBE_PATH, strerror(errno));
		for (int i = 0; i < N_CASES; i++)
			ktap_result(0, "%s: kernel has no vma probe (harness patch not applied or PER_VMA_LOCK off)",
				    names[i]);
		return ktap_end();
	}

	budget(dur + 120);
	if (selected("lookup"))
		case_lookup();
	if (selected("fault_other"))
		case_fault_other();
	if (selected("fault_same"))
		case_fault_same();
	if (selected("hold"))
		case_hold(dur);
	if (selected("nolookup"))
		case_nolookup();
	if (selected("contended_keep"))
		case_contended("keep");
	if (selected("contended_mprotect"))
		case_contended("mprotect");
	if (selected("contended_munmap"))
		case_contended("munmap");
	if (selected("contended_saturate"))
		case_contended("saturate");
	return ktap_end();
}
