/* test_keeper_keyq.c — the keeper's key operation queue: one operation per
 * slot (the bound), FIFO across slots, the request copied, the answer left
 * for the main thread, a dropped slot whether its operation waits, runs or
 * is answered. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "keeper_keyq.h"

static int
put(struct keeper_keyq *q, size_t slot, uint32_t id)
{
	uint8_t req[4] = { (uint8_t)slot, (uint8_t)id, 0xab, 0xcd };

	return keeper_keyq_put(q, slot, id, req, sizeof(req));
}

/* Take the next operation, answer it (the id in rep), send it: its slot. */
static size_t
run_one(struct keeper_keyq *q, uint32_t want_id)
{
	struct keeper_keyop *op = keeper_keyq_take(q);
	const struct keeper_keyop *a;
	size_t slot;

	assert_non_null(op);
	assert_int_equal(op->id, want_id);
	assert_int_equal(op->reqlen, 4);
	assert_int_equal(op->req[0], (uint8_t)op->slot);
	assert_int_equal(op->req[1], (uint8_t)want_id);
	slot = op->slot;
	memcpy(op->rep, &op->id, sizeof(op->id));
	op->replen = sizeof(op->id);
	assert_false(keeper_keyq_idle(q, slot));
	assert_null(keeper_keyq_answer(q, slot));         /* running: not yet */
	keeper_keyq_done(q, op);
	assert_non_null(a = keeper_keyq_answer(q, slot));
	assert_int_equal(a->id, want_id);
	assert_int_equal(a->replen, sizeof(uint32_t));
	assert_memory_equal(a->rep, &want_id, sizeof(want_id));
	assert_false(keeper_keyq_idle(q, slot));          /* until it is sent */
	keeper_keyq_sent(q, slot);
	assert_true(keeper_keyq_idle(q, slot));
	return slot;
}

/* One per slot: a second is refused until the first is sent; bad lengths
 * are refused; the memory is the slots', nothing grows. */
static void
test_one_per_slot(void **state)
{
	static uint8_t big[KEEPER_KEYQ_REQ_MAX + 1];
	struct keeper_keyq *q = keeper_keyq_new(2);
	struct keeper_keyop *op;

	assert_true(keeper_keyq_idle(q, 0));
	assert_false(keeper_keyq_idle(q, 2));              /* out of range */
	assert_int_equal(put(q, 2, 1), -1);
	assert_int_equal(keeper_keyq_put(q, 0, 1, big, 0), -1);
	assert_int_equal(keeper_keyq_put(q, 0, 1, big, sizeof(big)), -1);
	assert_int_equal(keeper_keyq_put(q, 0, 1, big, KEEPER_KEYQ_REQ_MAX), 0);
	assert_false(keeper_keyq_idle(q, 0));
	assert_int_equal(put(q, 0, 2), -1);                 /* waiting */
	assert_int_equal(keeper_keyq_waiting(q), 1);
	assert_non_null(op = keeper_keyq_take(q));
	assert_int_equal(op->reqlen, KEEPER_KEYQ_REQ_MAX);
	assert_null(keeper_keyq_take(q));
	assert_int_equal(keeper_keyq_waiting(q), 0);
	assert_int_equal(keeper_keyq_running(q), 1);
	assert_int_equal(put(q, 0, 2), -1);                 /* running */
	op->replen = 0;
	keeper_keyq_done(q, op);
	assert_int_equal(keeper_keyq_running(q), 0);
	assert_int_equal(put(q, 0, 2), -1);                 /* answered, not sent */
	keeper_keyq_sent(q, 0);
	assert_int_equal(put(q, 0, 2), 0);
	assert_int_equal(run_one(q, 2), 0);
	keeper_keyq_sent(q, 0);                             /* nothing to send: no-op */
	assert_true(keeper_keyq_idle(q, 0));
	keeper_keyq_free(&q);
	assert_null(q);
	keeper_keyq_free(&q);
	keeper_keyq_free(NULL);
}

/* Taken in the order they came, whatever the slots' numbers; a slot's next
 * operation goes to the end. */
static void
test_fifo(void **state)
{
	struct keeper_keyq *q = keeper_keyq_new(4);

	assert_int_equal(put(q, 2, 10), 0);
	assert_int_equal(put(q, 0, 11), 0);
	assert_int_equal(put(q, 3, 12), 0);
	assert_int_equal(run_one(q, 10), 2);
	assert_int_equal(put(q, 2, 13), 0);                 /* after slot 3's */
	assert_int_equal(put(q, 1, 14), 0);
	assert_int_equal(keeper_keyq_waiting(q), 4);
	assert_int_equal(run_one(q, 11), 0);
	assert_int_equal(run_one(q, 12), 3);
	assert_int_equal(run_one(q, 13), 2);
	assert_int_equal(run_one(q, 14), 1);
	assert_null(keeper_keyq_take(q));
	keeper_keyq_free(&q);
}

/* A dropped slot: its waiting operation leaves the FIFO (head, middle,
 * tail), a running one is forgotten when done, an answer is forgotten; the
 * slot takes no more; the others go on in order. */
static void
test_drop(void **state)
{
	struct keeper_keyq *q = keeper_keyq_new(6);
	struct keeper_keyop *op;

	assert_int_equal(put(q, 0, 1), 0);
	assert_int_equal(put(q, 1, 2), 0);
	assert_int_equal(put(q, 2, 3), 0);
	assert_int_equal(put(q, 3, 4), 0);
	keeper_keyq_drop_slot(q, 1);                        /* middle */
	keeper_keyq_drop_slot(q, 0);                        /* head */
	keeper_keyq_drop_slot(q, 3);                        /* tail */
	assert_int_equal(keeper_keyq_waiting(q), 1);
	assert_int_equal(put(q, 4, 5), 0);                  /* the tail is right */
	assert_int_equal(put(q, 0, 6), -1);
	assert_false(keeper_keyq_idle(q, 0));
	assert_int_equal(run_one(q, 3), 2);
	/* running, then dropped: forgotten when done */
	assert_non_null(op = keeper_keyq_take(q));
	assert_int_equal(op->id, 5);
	keeper_keyq_drop_slot(q, 4);
	op->replen = 0;
	keeper_keyq_done(q, op);
	assert_null(keeper_keyq_answer(q, 4));
	assert_int_equal(keeper_keyq_running(q), 0);
	/* answered, then dropped: forgotten */
	assert_int_equal(put(q, 5, 7), 0);
	assert_non_null(op = keeper_keyq_take(q));
	keeper_keyq_done(q, op);
	assert_non_null(keeper_keyq_answer(q, 5));
	keeper_keyq_drop_slot(q, 5);
	assert_null(keeper_keyq_answer(q, 5));
	keeper_keyq_sent(q, 5);
	assert_false(keeper_keyq_idle(q, 5));
	keeper_keyq_drop_slot(q, 9);                        /* out of range: no-op */
	assert_null(keeper_keyq_take(q));
	assert_int_equal(put(q, 2, 8), 0);
	assert_int_equal(run_one(q, 8), 2);
	keeper_keyq_free(&q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_per_slot),
		cmocka_unit_test(test_fifo),
		cmocka_unit_test(test_drop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
