// SPDX-License-Identifier: GPL-2.0
/*
 * drill_flood - a hostile console, for kmatrix's own drills: writes to the kernel log
 * (/dev/kmsg) a "BUG:" report whose text holds terminal escape sequences, characters
 * XML forbids (U+FFFE, U+FFFF), Markdown that would break out of a code span or fence,
 * and HTML; then floods the console for the rest of its duration, and prints the same
 * on its own output. kmatrix must keep every output valid, show the escapes as text,
 * and cap console.log and the test output. With the argument `write` it writes a
 * gigabyte into its results share instead, then a million empty files: kmatrix must stop
 * both at the share's limits (bytes and files), and the drill says how far it got.
 * Not part of any real matrix.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char hostile[] =
	"<3>BUG: kmatrix drill \033]0;pwned\007 \033[2J\xef\xbf\xbe\xef\xbf\xbf"
	" ``` </pre><script>alert(1)</script> | x | [a](http://e) &amp;\n";

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 5;
	struct timespec t0, t;
	long lines = 0;
	int fd;

	if (argc > 3 && !strcmp(argv[3], "write")) {
		static char block[1 << 20];
		FILE *f = fopen("/results/big", "w");
		char name[64];
		int i, files;

		printf("TAP version 13\n1..1\n");
		fflush(stdout);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (i = 0; f && i < 1024; i++)
			if (fwrite(block, 1, sizeof(block), f) != sizeof(block) || fflush(f))
				break;
		if (f)
			fclose(f);
		/* Room for the files: the limit on their number is the one to meet. */
		truncate("/results/big", 0);
		clock_gettime(CLOCK_MONOTONIC, &t);
		/* How long each phase took: over virtiofs under TCG the files cost the most. */
		printf("# wrote %d MiB in %.1fs\n", i,
		       t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9);
		fflush(stdout);
		t0 = t;
		mkdir("/results/many", 0755);
		for (files = 0; files < 1000000; files++) {
			int fd2;

			snprintf(name, sizeof(name), "/results/many/%d", files);
			fd2 = open(name, O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd2 < 0)
				break;
			close(fd2);
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		printf("# created %d files in %.1fs\n", files,
		       t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9);
		printf("%s 1 wrote %d of 1024 MiB and %d of 1000000 files\n",
		       i == 1024 && files == 1000000 ? "ok" : "not ok", i, files);
		return 0;
	}
	fd = open("/dev/kmsg", O_WRONLY);
	printf("TAP version 13\n1..1\n# drill_flood: \033[31mred\033[0m \xef\xbf\xbe\n");
	fflush(stdout);
	if (fd < 0 || write(fd, hostile, sizeof(hostile) - 1) < 0) {
		printf("not ok 1 cannot write /dev/kmsg\n");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		char line[200];
		int n = snprintf(line, sizeof(line),
				 "<6>kmatrix drill flood %ld \033[1mbold\033[0m padding padding padding padding\n",
				 lines);

		if (write(fd, line, n) < 0)
			break;
		if (lines % 64 == 0) {
			printf("# flood %ld \033[1m\n", lines);
			fflush(stdout);
		}
		lines++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9 < secs);
	printf("ok 1 flooded the console with %ld lines\n", lines);
	return 0;
}
