/* test_keeper_queue.c — the keeper's check queue: the bound (waiting,
 * running and unsent answers together), FIFO per slot and slots in turn,
 * cancel of waiting checks only, long fields in their few big slots, a
 * dropped slot, fields copied and wiped, memory taken as it grows. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "keeper_queue.h"
#include "passwd.h"

static int
put(struct keeper_queue *q, size_t slot, uint32_t id)
{
	char login[32];

	snprintf(login, sizeof(login), "user%u", id);
	return keeper_queue_put(q, slot, id, login, "192.0.2.1", (const uint8_t *)"pw", 2);
}

/* Take the next check, answer it, send the answer: its (slot, id). */
static uint32_t
run_one(struct keeper_queue *q, size_t *slot_r)
{
	struct keeper_check *c = keeper_queue_take(q);
	const struct keeper_check *a;
	uint32_t id;
	size_t slot;

	assert_non_null(c);
	slot = c->slot;
	id = c->id;
	keeper_queue_done(q, c, 1, 0);
	assert_non_null(a = keeper_queue_answer(q, slot));
	assert_int_equal(a->id, id);
	keeper_queue_sent(q, slot);
	if (slot_r != NULL)
		*slot_r = slot;
	return id;
}

static void
test_fields_and_bound(void **state)
{
	struct keeper_queue *q = keeper_queue_new(3, 1);
	struct keeper_check *c, *c2;
	const struct keeper_check *a;

	assert_int_equal(keeper_queue_put(q, 0, 7, "alice", "2001:db8::1",
	    (const uint8_t *)"al\0ce\xff", 6), 0);
	assert_int_equal(put(q, 0, 8), 0);
	assert_int_equal(put(q, 0, 9), 0);
	/* three held: the fourth is refused */
	assert_int_equal(put(q, 0, 10), -1);
	assert_int_equal(keeper_queue_held(q), 3);
	assert_int_equal(keeper_queue_waiting(q), 3);
	c = keeper_queue_take(q);
	assert_non_null(c);
	assert_int_equal(c->id, 7);
	assert_string_equal(c->login, "alice");
	assert_string_equal(c->peer, "2001:db8::1");
	assert_int_equal(c->pwlen, 6);
	assert_memory_equal(c->pw, "al\0ce\xff", 6);
	/* running counts as held */
	assert_int_equal(keeper_queue_waiting(q), 2);
	assert_int_equal(put(q, 0, 10), -1);
	keeper_queue_done(q, c, 1, 1);
	/* an unsent answer counts too; its fields are wiped */
	assert_int_equal(put(q, 0, 10), -1);
	assert_non_null(a = keeper_queue_answer(q, 0));
	assert_int_equal(a->id, 7);
	assert_int_equal(a->result, 1);
	assert_int_equal(a->flags, 1);
	assert_null(a->login);
	assert_int_equal(a->pwlen, 0);
	assert_int_equal(keeper_queue_answers(q, 0), 1);
	keeper_queue_sent(q, 0);
	assert_null(keeper_queue_answer(q, 0));
	assert_int_equal(keeper_queue_held(q), 2);
	assert_int_equal(put(q, 0, 10), 0);
	c = keeper_queue_take(q);
	c2 = keeper_queue_take(q);
	assert_int_equal(c->id, 8);
	assert_int_equal(c2->id, 9);
	keeper_queue_done(q, c2, 0, 0);
	keeper_queue_done(q, c, 0, 0);
	/* answers leave in the order they were made */
	assert_int_equal(keeper_queue_answer(q, 0)->id, 9);
	keeper_queue_sent(q, 0);
	assert_int_equal(keeper_queue_answer(q, 0)->id, 8);
	keeper_queue_sent(q, 0);
	/* no peer, no password */
	assert_int_equal(keeper_queue_put(q, 0, 11, "bob", NULL, NULL, 0), 0);
	assert_int_equal(run_one(q, NULL), 10);
	c = keeper_queue_take(q);
	assert_string_equal(c->peer, "");
	assert_int_equal(c->pwlen, 0);
	keeper_queue_done(q, c, 0, 0);
	keeper_queue_sent(q, 0);
	assert_null(keeper_queue_take(q));
	assert_int_equal(keeper_queue_held(q), 0);
	keeper_queue_free(&q);
	assert_null(q);
	keeper_queue_free(&q);
}

/* Over a limit: refused (the codec refuses such requests before). */
static void
test_limits(void **state)
{
	struct keeper_queue *q = keeper_queue_new(10, 2);
	char login[PASSWD_LOGIN_MAX + 2], peer[KEEPER_PEER_MAX + 2];
	static uint8_t pw[KEEPER_PW_MAX + 1];

	memset(login, 'l', sizeof(login));
	login[PASSWD_LOGIN_MAX + 1] = '\0';
	memset(peer, 'p', sizeof(peer));
	peer[KEEPER_PEER_MAX + 1] = '\0';
	assert_int_equal(keeper_queue_put(q, 0, 1, login, "", pw, 1), -1);
	assert_int_equal(keeper_queue_put(q, 0, 1, "a", peer, pw, 1), -1);
	assert_int_equal(keeper_queue_put(q, 0, 1, "a", "", pw, KEEPER_PW_MAX + 1), -1);
	assert_int_equal(keeper_queue_put(q, 2, 1, "a", "", pw, 1), -1);     /* no such slot */
	assert_int_equal(keeper_queue_held(q), 0);
	/* the largest of each fit */
	login[PASSWD_LOGIN_MAX] = '\0';
	peer[KEEPER_PEER_MAX] = '\0';
	memset(pw, 0xa5, sizeof(pw));
	assert_int_equal(keeper_queue_put(q, 1, 1, login, peer, pw, KEEPER_PW_MAX), 0);
	{
		struct keeper_check *c = keeper_queue_take(q);

		assert_string_equal(c->login, login);
		assert_string_equal(c->peer, peer);
		assert_int_equal(c->pwlen, KEEPER_PW_MAX);
		assert_memory_equal(c->pw, pw, KEEPER_PW_MAX);
		keeper_queue_done(q, c, 0, 0);
		keeper_queue_sent(q, 1);
	}
	keeper_queue_free(&q);
}

/* Long fields take one of KEEPER_QUEUE_BIG_MAX big slots; beyond those a
 * long check is refused while short ones still fit; a big slot comes back
 * when its check is answered. */
static void
test_big_slots(void **state)
{
	struct keeper_queue *q = keeper_queue_new(KEEPER_QUEUE_BIG_MAX + 10, 1);
	static uint8_t pw[KEEPER_QUEUE_SMALL];
	struct keeper_check *c;
	uint32_t i;

	memset(pw, 'x', sizeof(pw));
	/* "a" NUL "" NUL and 253 octets: exactly a small slot */
	assert_int_equal(keeper_queue_put(q, 0, 1, "a", "", pw, KEEPER_QUEUE_SMALL - 3), 0);
	for (i = 0; i < KEEPER_QUEUE_BIG_MAX; i++)
		assert_int_equal(keeper_queue_put(q, 0, 100 + i, "a", "", pw,
		    KEEPER_QUEUE_SMALL - 2), 0);
	assert_int_equal(keeper_queue_put(q, 0, 999, "a", "", pw, KEEPER_QUEUE_SMALL - 2), -1);
	assert_int_equal(put(q, 0, 2), 0);
	c = keeper_queue_take(q);
	assert_int_equal(c->id, 1);
	keeper_queue_done(q, c, 0, 0);
	keeper_queue_sent(q, 0);
	assert_int_equal(keeper_queue_put(q, 0, 999, "a", "", pw, KEEPER_QUEUE_SMALL - 2), -1);
	c = keeper_queue_take(q);
	assert_int_equal(c->id, 100);
	assert_int_equal(c->pwlen, KEEPER_QUEUE_SMALL - 2);
	assert_memory_equal(c->pw, pw, KEEPER_QUEUE_SMALL - 2);
	keeper_queue_done(q, c, 0, 0);
	keeper_queue_sent(q, 0);
	assert_int_equal(keeper_queue_put(q, 0, 999, "a", "", pw, KEEPER_QUEUE_SMALL - 2), 0);
	keeper_queue_free(&q);
}

/* Slots in turn, FIFO within each. */
static void
test_slots_in_turn(void **state)
{
	struct keeper_queue *q = keeper_queue_new(100, 3);
	size_t slot;
	uint32_t i;

	/* slot 0 floods, slots 1 and 2 ask a little later */
	for (i = 1; i <= 10; i++)
		assert_int_equal(put(q, 0, i), 0);
	assert_int_equal(run_one(q, &slot), 1);
	assert_int_equal(slot, 0);
	assert_int_equal(put(q, 2, 201), 0);
	assert_int_equal(put(q, 1, 101), 0);
	assert_int_equal(put(q, 1, 102), 0);
	/* slot 0 had its turn: 1, then 2, then 0, ... */
	assert_int_equal(run_one(q, &slot), 101);
	assert_int_equal(run_one(q, &slot), 201);
	assert_int_equal(run_one(q, &slot), 2);
	assert_int_equal(run_one(q, &slot), 102);
	for (i = 3; i <= 10; i++)
		assert_int_equal(run_one(q, &slot), i);
	assert_null(keeper_queue_take(q));
	keeper_queue_free(&q);
}

/* Cancel drops a waiting check only; the same id in another slot stays. */
static void
test_cancel(void **state)
{
	struct keeper_queue *q = keeper_queue_new(5, 2);
	struct keeper_check *c;

	assert_int_equal(put(q, 0, 1), 0);
	assert_int_equal(put(q, 0, 2), 0);
	assert_int_equal(put(q, 0, 3), 0);
	assert_int_equal(put(q, 1, 2), 0);
	c = keeper_queue_take(q);
	assert_int_equal(c->id, 1);
	/* running: not cancelled, it will be answered */
	assert_int_equal(keeper_queue_cancel(q, 0, 1), 0);
	assert_int_equal(keeper_queue_cancel(q, 0, 2), 1);
	assert_int_equal(keeper_queue_cancel(q, 0, 2), 0);
	assert_int_equal(keeper_queue_cancel(q, 0, 77), 0);
	assert_int_equal(keeper_queue_cancel(q, 9, 3), 0);
	assert_int_equal(keeper_queue_held(q), 3);
	/* its room is free at once */
	assert_int_equal(put(q, 0, 4), 0);
	assert_int_equal(put(q, 0, 5), 0);
	assert_int_equal(put(q, 0, 6), -1);
	keeper_queue_done(q, c, 1, 0);
	keeper_queue_sent(q, 0);
	assert_int_equal(run_one(q, NULL), 2);   /* slot 1's id 2 */
	assert_int_equal(run_one(q, NULL), 3);
	assert_int_equal(run_one(q, NULL), 4);
	assert_int_equal(run_one(q, NULL), 5);
	assert_null(keeper_queue_take(q));
	/* many waiting, cancelled in any order */
	keeper_queue_free(&q);
	q = keeper_queue_new(1000, 1);
	for (uint32_t i = 0; i < 1000; i++)
		assert_int_equal(put(q, 0, i * 7919u), 0);
	for (uint32_t i = 0; i < 1000; i += 2)
		assert_int_equal(keeper_queue_cancel(q, 0, i * 7919u), 1);
	assert_int_equal(keeper_queue_waiting(q), 500);
	for (uint32_t i = 1; i < 1000; i += 2)
		assert_int_equal(run_one(q, NULL), i * 7919u);
	assert_int_equal(keeper_queue_held(q), 0);
	keeper_queue_free(&q);
}

/* front closed a slot: its waiting checks and answers go now, a running
 * one when it is done; other slots go on. */
static void
test_drop_slot(void **state)
{
	struct keeper_queue *q = keeper_queue_new(10, 2);
	struct keeper_check *c0, *c1;

	assert_int_equal(put(q, 0, 1), 0);
	assert_int_equal(put(q, 1, 1), 0);
	assert_int_equal(put(q, 0, 2), 0);
	assert_int_equal(put(q, 0, 3), 0);
	c0 = keeper_queue_take(q);
	c1 = keeper_queue_take(q);
	assert_int_equal(c0->slot, 0);
	assert_int_equal(c1->slot, 1);
	keeper_queue_done(q, keeper_queue_take(q), 0, 0);  /* slot 0's 2: an unsent answer */
	assert_int_equal(keeper_queue_held(q), 4);
	keeper_queue_drop_slot(q, 0);
	assert_int_equal(keeper_queue_held(q), 2);         /* the two running */
	assert_null(keeper_queue_answer(q, 0));
	assert_int_equal(put(q, 0, 9), -1);
	keeper_queue_done(q, c0, 1, 0);
	assert_null(keeper_queue_answer(q, 0));
	assert_int_equal(keeper_queue_held(q), 1);
	keeper_queue_done(q, c1, 1, 0);
	assert_int_equal(keeper_queue_answer(q, 1)->id, 1);
	keeper_queue_sent(q, 1);
	assert_int_equal(keeper_queue_held(q), 0);
	assert_null(keeper_queue_take(q));
	keeper_queue_free(&q);
}

/* A large bound is no large allocation: memory comes as the queue grows,
 * and is reused. */
static void
test_grows(void **state)
{
	struct keeper_queue *q = keeper_queue_new(KEEPER_QUEUE_LIMIT_MAX, 1);
	uint32_t i;

	for (i = 0; i < 3000; i++)
		assert_int_equal(put(q, 0, i), 0);
	assert_int_equal(keeper_queue_held(q), 3000);
	for (i = 0; i < 3000; i++)
		assert_int_equal(run_one(q, NULL), i);
	for (i = 0; i < 3000; i++)
		assert_int_equal(put(q, 0, i), 0);
	keeper_queue_free(&q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields_and_bound),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_big_slots),
		cmocka_unit_test(test_slots_in_turn),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_drop_slot),
		cmocka_unit_test(test_grows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
