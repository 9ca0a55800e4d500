/*
 * bench_handover.c — what front's loop spends handing a whole message to
 * the signer: signer_sign() from the end of the message to the request in
 * the socket (sealing the spool, the request; before: copying prefix and
 * message into a new memfd).  The signer is a bare socket that never
 * answers: its own work is not front's.  Messages of 1, 25 and 256 MiB,
 * already in their spool's memfd as front has them after the final dot;
 * the median of 5 runs each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "log.h"
#include "signer_client.h"
#include "spool.h"

#define RUNS	5

static void
on_signed(void *arg, int status, const char *headers)
{
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One hand-over of a message of mib MiB; its time in ms, or -1. */
static double
one_run(const char *chunk, size_t chunklen, size_t mib)
{
	static const char prefix[] = "Received: from bench ([127.0.0.1]) by bench (subproxy); "
	    "Thu, 1 Jan 2026 00:00:00 +0000\r\n";
	struct event_base *base = event_base_new();
	struct signer_client *sc;
	struct signer_req *rq;
	struct spool *sp = spool_new(256 << 10);
	double t0, t = -1;
	size_t i;
	int sv[2];

	if (base == NULL || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		goto out;
	sc = signer_client_new(base, sv[0], 0, NULL, NULL);
	for (i = 0; i < mib; i++)
		if (spool_append(sp, chunk, chunklen) < 0)
			goto fail;
	t0 = now_ms();
	rq = signer_sign(sc, prefix, sizeof(prefix) - 1, sp, on_signed, NULL);
	t = now_ms() - t0;
	signer_cancel(&rq);
fail:
	signer_client_free(&sc);
	close(sv[1]);
out:
	spool_free(&sp);
	if (base != NULL)
		event_base_free(base);
	return t;
}

int
main(void)
{
	static const size_t sizes[] = { 1, 25, 256 };
	static char chunk[1 << 20];
	double t[RUNS];
	size_t i, s;
	int r;

	log_init("bench_handover", LOG_LVL_ERR);
	for (i = 0; i < sizeof(chunk); i++)
		chunk[i] = i % 78 == 76 ? '\r' : i % 78 == 77 ? '\n' : 'x';
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (r = 0; r < RUNS; r++) {
			if ((t[r] = one_run(chunk, sizeof(chunk), sizes[s])) < 0) {
				fprintf(stderr, "bench_handover: %zu MiB: the run failed\n", sizes[s]);
				return 1;
			}
		}
		qsort(t, RUNS, sizeof(t[0]), cmp_double);
		printf("signer hand-over in front's loop, %4zu MiB message: %8.3f ms (median of %d)\n",
		    sizes[s], t[RUNS / 2], RUNS);
	}
	return 0;
}
