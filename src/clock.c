/* clock.c — monotonic seconds for the rate limits (and the test-only skew). */
#include "clock.h"
#include "log.h"

#include <signal.h>
#include <time.h>

#include <event2/event.h>

static int64_t skew;

uint64_t
clock_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)((int64_t)ts.tv_sec + skew);
}

#ifdef SUBPROXY_TEST_CLOCK
static void
clock_on_usr2(evutil_socket_t sig, short what, void *arg)
{
	skew += 3600;
	log_warn("event=test-clock skew=%lld (SIGUSR2: a test build moved the rate-limit clock "
	    "one hour ahead)", (long long)skew);
}

struct event *
clock_test_hook(struct event_base *base)
{
	struct event *ev = evsignal_new(base, SIGUSR2, clock_on_usr2, NULL);

	evsignal_add(ev, NULL);
	log_warn("event=test-clock this is a test build: SIGUSR2 moves the rate-limit clock");
	return ev;
}
#else
struct event *
clock_test_hook(struct event_base *base)
{
	return NULL;
}
#endif
