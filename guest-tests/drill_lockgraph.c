// SPDX-License-Identifier: GPL-2.0
/*
 * drill_lockgraph - a hostile lock graph, for kmatrix's own drills: writes a 64 MiB
 * lock graph in /proc/lockdep's format (a chain of a million classes) and a lock
 * chains file to tmpfs, and bind-mounts them over /proc/lockdep and
 * /proc/lockdep_chains, where kmatrix reads the cell's lock graph after the tests.
 * kmatrix must keep only a bounded part, say so in a note, and compare it with base in
 * bounded time and memory. Not part of any real matrix.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#define MIB (1L << 20)
#define GRAPH_BYTES (64 * MIB)

static int write_graph(const char *path, long *classes)
{
	FILE *f = fopen(path, "w");
	long n = 0, bytes = 0;

	if (!f)
		return -1;
	bytes += fprintf(f, "all lock classes:\n");
	while (bytes < GRAPH_BYTES) {
		bytes += fprintf(f, "%08lx FD:    1 BD:    1 +.+.: drill_class_%ld\n -> [%08lx] drill_class_%ld\n\n",
				 n, n, n + 1, n + 1);
		n++;
	}
	*classes = n;
	return fclose(f);
}

static int write_chains(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fprintf(f, "all lock chains:\n");
	for (long i = 0; i < 100000; i++)
		fprintf(f, "irq_context: 0\n[%08lx] drill_class_%ld\n[%08lx] drill_class_%ld\n\n", i, i,
			i + 1, i + 1);
	return fclose(f);
}

int main(void)
{
	long classes = 0;
	int ok;

	printf("TAP version 13\n1..2\n");
	fflush(stdout);
	ok = !write_graph("/tmp/drill-lockdep", &classes) &&
	     !mount("/tmp/drill-lockdep", "/proc/lockdep", NULL, MS_BIND, NULL);
	printf("# %ld classes, %ld MiB\n", classes, GRAPH_BYTES / MIB);
	if (!ok)
		printf("# %s\n", strerror(errno));
	printf("%sok 1 a %ld MiB lock graph stands where /proc/lockdep was\n", ok ? "" : "not ",
	       GRAPH_BYTES / MIB);
	ok = !write_chains("/tmp/drill-chains") &&
	     !mount("/tmp/drill-chains", "/proc/lockdep_chains", NULL, MS_BIND, NULL);
	if (!ok)
		printf("# %s\n", strerror(errno));
	printf("%sok 2 lock chains stand where /proc/lockdep_chains was\n", ok ? "" : "not ");
	return 0;
}
