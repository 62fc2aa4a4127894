// SPDX-License-Identifier: GPL-2.0
/*
 * ktap_overlap - self-test of ktap.h's overlap evidence (not a guest test).
 *
 * Two thread kinds, "busy" and "other", in one of four scenarios:
 *   both       both loop with ktap_keep_going() for the whole duration:
 *              both overlapped
 *   late       "other" starts only after "busy" has stopped: the window
 *              never opens, both are "not ok ... # none"
 *   catchup    "other" sleeps through the whole duration (a starved kind),
 *              then works; "busy" uses ktap_keep_going(), which goes on past
 *              the deadline while a kind has nothing in the window: both
 *              overlapped, within KTAP_OVERTIME
 *   nocatchup  the same, but "busy" stops at the deadline on its own: the
 *              window closes, and the starved kind's later work does not
 *              count even though ktap_keep_going() lets it run: "other" is
 *              "not ok ... # none"
 *
 * Usage: ktap_overlap <scenario> <duration_seconds>
 */
#define _GNU_SOURCE
#include "../ktap.h"

static double deadline;
static int k_busy, k_other, scenario;
static atomic_int busy_done;
static uint64_t other_iters;

enum { BOTH, LATE, CATCHUP, NOCATCHUP };

static void tiny_sleep(void)
{
	struct timespec ts = { 0, 200000 };

	nanosleep(&ts, NULL);
}

static void *busy(void *arg)
{
	(void)arg;
	ktap_overlap_start(k_busy);
	for (uint64_t it = 0; scenario == NOCATCHUP ? ktap_now() < deadline :
	     ktap_keep_going(deadline, it, 0); it++) {
		tiny_sleep();
		ktap_overlap_op(k_busy);
	}
	ktap_overlap_stop(k_busy);
	atomic_store(&busy_done, 1);
	return NULL;
}

static void *other(void *arg)
{
	(void)arg;
	if (scenario == LATE)
		while (!atomic_load(&busy_done))
			tiny_sleep();
	ktap_overlap_start(k_other);
	if (scenario == CATCHUP || scenario == NOCATCHUP)
		while (ktap_now() < deadline + 0.05)
			tiny_sleep();	/* starved: in its loop, but no work yet */
	for (uint64_t it = 0; ktap_keep_going(deadline, it, !other_iters); it++) {
		tiny_sleep();
		other_iters++;
		ktap_overlap_op(k_other);
	}
	ktap_overlap_stop(k_other);
	return NULL;
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "both", "late", "catchup", "nocatchup" };
	char *av[2];
	pthread_t a, b;
	double dur, t0;

	if (argc != 3) {
		fprintf(stderr, "usage: %s both|late|catchup|nocatchup <duration_seconds>\n", argv[0]);
		return 2;
	}
	scenario = -1;
	for (int i = 0; i < 4; i++)
		if (!strcmp(argv[1], names[i]))
			scenario = i;
	if (scenario < 0) {
		fprintf(stderr, "%s: unknown scenario '%s'\n", argv[0], argv[1]);
		return 2;
	}
	av[0] = argv[0];
	av[1] = argv[2];
	dur = ktap_begin(2, av, 1 + 2);
	k_busy = ktap_overlap_kind("busy");
	k_other = ktap_overlap_kind("other");
	t0 = ktap_now();
	deadline = t0 + dur;
	if (pthread_create(&a, NULL, busy, NULL) || pthread_create(&b, NULL, other, NULL))
		return ktap_bail("not run: pthread_create failed");
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	ktap_diag("scenario %s: ran %.3f s, other did %llu iterations", names[scenario],
		  ktap_now() - t0, (unsigned long long)other_iters);
	/* Bounded in every scenario: deadline + KTAP_OVERTIME at most (+ scheduling). */
	ktap_result(ktap_now() - t0 < dur + KTAP_OVERTIME + 0.5, "run ended within duration + overtime");
	ktap_overlap_report();
	return ktap_end();
}
