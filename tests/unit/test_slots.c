/* test_slots.c — the bound on transactions in progress (slots.h): takers
 * beyond it wait in line, oldest first, are told only from the loop, and
 * a cancelled waiter -- in line or granted and not yet told -- gives its
 * turn on. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "slots.h"

#include <event2/event.h>

#define NW 4

struct waiter {
	struct slots_wait *w;
	int told;
	int order;                      /* when it was told (1, 2, ...) */
};

static int told_count;

static void
granted(void *arg)
{
	struct waiter *wt = arg;

	wt->w = NULL;
	wt->told = 1;
	wt->order = ++told_count;
}

static void
run_loop(struct event_base *base)
{
	/* every grant is an active event: one non-blocking pass each at most */
	int i;

	for (i = 0; i < 2 * NW + 2; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

static void
test_bound_and_fifo(void **state)
{
	struct event_base *base = event_base_new();
	struct slots *sl = slots_new(base, 2);
	struct waiter wt[NW] = { 0 };
	int i;

	(void)state;
	told_count = 0;
	assert_int_equal(slots_take(sl), 1);
	assert_int_equal(slots_take(sl), 1);
	assert_int_equal(slots_take(sl), 0);    /* the bound */
	assert_int_equal(slots_held(sl), 2);
	for (i = 0; i < NW; i++)
		wt[i].w = slots_wait(sl, granted, &wt[i]);
	assert_int_equal(slots_waiting(sl), NW);
	/* a slot given back goes to the oldest waiter, told from the loop
	 * only: it stays held, and a newcomer cannot take it */
	slots_put(sl);
	assert_int_equal(wt[0].told, 0);
	assert_int_equal(slots_held(sl), 2);
	assert_int_equal(slots_waiting(sl), NW - 1);
	assert_int_equal(slots_take(sl), 0);
	run_loop(base);
	assert_int_equal(wt[0].told, 1);
	assert_int_equal(wt[1].told, 0);
	/* wt[1] leaves the line: wt[2] is next */
	slots_cancel(&wt[1].w);
	assert_null(wt[1].w);
	assert_int_equal(slots_waiting(sl), NW - 2);
	slots_put(sl);
	/* wt[2] is granted, then cancelled before it was told: its slot
	 * passes on to wt[3] */
	slots_cancel(&wt[2].w);
	assert_int_equal(slots_held(sl), 2);
	run_loop(base);
	assert_int_equal(wt[1].told, 0);
	assert_int_equal(wt[2].told, 0);
	assert_int_equal(wt[3].told, 1);
	assert_int_equal(wt[3].order, 2);
	assert_int_equal(slots_waiting(sl), 0);
	/* all back: the bound is free again */
	slots_put(sl);
	slots_put(sl);
	assert_int_equal(slots_held(sl), 0);
	assert_int_equal(slots_take(sl), 1);
	slots_put(sl);
	slots_cancel(&wt[1].w);                 /* NULL: no-op */
	slots_free(&sl);
	assert_null(sl);
	slots_free(&sl);
	event_base_free(base);
}

/* A wait with a free slot and nobody ahead is granted at once but still
 * told from the loop; several grants are told in their order, one per
 * pass; freeing drops waiters without a call. */
static void
test_grant_from_loop(void **state)
{
	struct event_base *base = event_base_new();
	struct slots *sl = slots_new(base, 3);
	struct waiter wt[NW] = { 0 };
	int i;

	(void)state;
	told_count = 0;
	for (i = 0; i < NW; i++)
		wt[i].w = slots_wait(sl, granted, &wt[i]);
	for (i = 0; i < NW; i++)
		assert_int_equal(wt[i].told, 0);
	assert_int_equal(slots_held(sl), 3);
	assert_int_equal(slots_waiting(sl), 1);
	run_loop(base);
	for (i = 0; i < 3; i++) {
		assert_int_equal(wt[i].told, 1);
		assert_int_equal(wt[i].order, i + 1);
	}
	assert_int_equal(wt[3].told, 0);
	slots_free(&sl);                        /* wt[3] dropped, never told */
	run_loop(base);
	assert_int_equal(wt[3].told, 0);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bound_and_fifo),
		cmocka_unit_test(test_grant_from_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
