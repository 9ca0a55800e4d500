/*
 * clock.h — the clock of the rate limits: whole seconds of CLOCK_MONOTONIC
 * (never jumps with the wall clock).
 *
 * Test builds only: the binary build/subproxy-testclock is linked with
 * clock.c compiled with SUBPROXY_TEST_CLOCK; in it, clock_test_hook() makes
 * SIGUSR2 move this clock one hour ahead, so that integration tests can see
 * buckets refill without waiting.  In the daemon that is installed
 * (build/subproxy) that code is not compiled in: clock_test_hook() does
 * nothing and SIGUSR2 keeps its default action.
 */
#ifndef SUBPROXY_CLOCK_H
#define SUBPROXY_CLOCK_H

#include <stdint.h>

struct event_base;

uint64_t clock_seconds(void);

/* See above; call once with the front's event loop.  Returns the event to
 * free at the end, or NULL (always NULL outside test builds). */
struct event *clock_test_hook(struct event_base *base);

#endif
