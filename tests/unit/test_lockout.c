/* test_lockout.c — the auth failure counters with a clock the test moves:
 * limits per login and per address, success clearing, the window, the
 * bounded table under a flood. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lockout.h"

static const unsigned char KEY[LOCKOUT_HASH_KEY] = "0123456789abcdef";

static struct lockout *
make(unsigned int login_max, unsigned int peer_max, unsigned int window)
{
	struct lockout_limits lim = { login_max, peer_max, window };

	return lockout_new(&lim, KEY);
}

/* n failures of login from peer at now; returns the bits of the last. */
static unsigned int
failures(struct lockout *lo, const char *login, const char *peer, unsigned int n, uint64_t now)
{
	unsigned int hit = 0;

	while (n-- > 0)
		hit = lockout_record(lo, login, peer, 0, now);
	return hit;
}

static void
test_login_and_peer_limits(void **state)
{
	struct lockout *lo = make(3, 5, 900);
	uint64_t t = 1000;

	assert_int_equal(failures(lo, "alice", "192.0.2.1", 2, t), 0);
	assert_false(lockout_locked(lo, "alice", "192.0.2.9", t));
	/* the third failure locks the login, from any address */
	assert_int_equal(failures(lo, "alice", "192.0.2.2", 1, t), LOCKOUT_LOCKED_LOGIN);
	assert_true(lockout_locked(lo, "alice", "192.0.2.9", t));
	assert_true(lockout_locked(lo, "alice", "", t));
	assert_false(lockout_locked(lo, "bob", "192.0.2.9", t));
	/* further failures do not report again */
	assert_int_equal(failures(lo, "alice", "192.0.2.3", 1, t), 0);
	/* 192.0.2.1 has two; three more of any logins lock it */
	assert_int_equal(failures(lo, "bob", "192.0.2.1", 1, t), 0);
	assert_int_equal(failures(lo, "carol", "192.0.2.1", 1, t), 0);
	assert_int_equal(failures(lo, "dave", "192.0.2.1", 1, t), LOCKOUT_LOCKED_PEER);
	assert_true(lockout_locked(lo, "bob", "192.0.2.1", t));
	assert_false(lockout_locked(lo, "bob", "192.0.2.4", t));
	/* both at once */
	lockout_free(&lo);
	lo = make(1, 1, 900);
	assert_int_equal(failures(lo, "x", "198.51.100.1", 1, t), LOCKOUT_LOCKED_LOGIN |
	    LOCKOUT_LOCKED_PEER);
	/* the unknown address is never counted */
	assert_int_equal(failures(lo, "y", "", 1, t), LOCKOUT_LOCKED_LOGIN);
	assert_false(lockout_locked(lo, "z", "", t));
	assert_int_equal(lockout_limits(lo)->window, 900);
	lockout_free(&lo);
	assert_null(lo);
	lockout_free(&lo);
	lockout_free(NULL);
}

static void
test_success_clears_login_only(void **state)
{
	struct lockout *lo = make(3, 4, 900);
	uint64_t t = 50;

	failures(lo, "alice", "192.0.2.1", 2, t);
	assert_int_equal(lockout_record(lo, "alice", "192.0.2.1", 1, t), 0);
	/* the login starts again from zero ... */
	assert_int_equal(failures(lo, "alice", "192.0.2.5", 2, t), 0);
	assert_false(lockout_locked(lo, "alice", "192.0.2.5", t));
	/* ... the address does not: two before, two more locks it */
	assert_int_equal(failures(lo, "bob", "192.0.2.1", 2, t), LOCKOUT_LOCKED_PEER);
	assert_true(lockout_locked(lo, "carol", "192.0.2.1", t));
	/* a success does not unlock a locked login */
	assert_int_equal(failures(lo, "alice", "192.0.2.6", 1, t), LOCKOUT_LOCKED_LOGIN);
	lockout_record(lo, "alice", "192.0.2.6", 1, t);
	assert_true(lockout_locked(lo, "alice", "192.0.2.7", t));
	lockout_free(&lo);
}

/* The window: locked until `window` seconds after the first failure, then
 * the count starts over. */
static void
test_window(void **state)
{
	struct lockout *lo = make(2, 100, 60);
	uint64_t t0 = 7000;

	failures(lo, "alice", "192.0.2.1", 1, t0);
	/* a failure 59 s later is still in the window: locked */
	assert_int_equal(failures(lo, "alice", "192.0.2.1", 1, t0 + 59), LOCKOUT_LOCKED_LOGIN);
	assert_true(lockout_locked(lo, "alice", "192.0.2.1", t0 + 59));
	/* the window counts from the first failure */
	assert_false(lockout_locked(lo, "alice", "192.0.2.1", t0 + 60));
	/* and then one failure is one, not three */
	assert_int_equal(failures(lo, "alice", "192.0.2.1", 1, t0 + 61), 0);
	assert_false(lockout_locked(lo, "alice", "192.0.2.1", t0 + 61));
	assert_int_equal(failures(lo, "alice", "192.0.2.1", 1, t0 + 62), LOCKOUT_LOCKED_LOGIN);
	assert_true(lockout_locked(lo, "alice", "192.0.2.1", t0 + 120));
	assert_false(lockout_locked(lo, "alice", "192.0.2.1", t0 + 121));
	/* failures spread wider than the window never lock */
	assert_int_equal(failures(lo, "bob", "", 1, t0), 0);
	assert_int_equal(failures(lo, "bob", "", 1, t0 + 60), 0);
	assert_int_equal(failures(lo, "bob", "", 1, t0 + 120), 0);
	assert_false(lockout_locked(lo, "bob", "", t0 + 120));
	lockout_free(&lo);
}

/* A flood of other keys cannot push a locked counter out of the table
 * (the lowest counters go first), and expired ones are reused. */
static void
test_flood(void **state)
{
	struct lockout *lo = make(5, 1000, 900);
	char login[32];
	uint64_t t = 1;
	int i;

	failures(lo, "alice", "", 5, t);
	for (i = 0; i < 20 * LOCKOUT_SLOTS; i++) {
		snprintf(login, sizeof(login), "flood%d", i);
		failures(lo, login, "", 1, t);
	}
	assert_true(lockout_locked(lo, "alice", "", t));
	/* two failures each for a few: they outrank the single ones */
	for (i = 0; i < 64; i++) {
		snprintf(login, sizeof(login), "twice%d", i);
		failures(lo, login, "", 2, t);
	}
	for (i = 0; i < 64; i++) {
		snprintf(login, sizeof(login), "twice%d", i);
		assert_int_equal(failures(lo, login, "", 3, t), LOCKOUT_LOCKED_LOGIN);
	}
	/* after the window everything has expired: new keys find room, and
	 * the old ones start from zero */
	t += 900;
	assert_false(lockout_locked(lo, "alice", "", t));
	assert_int_equal(failures(lo, "alice", "", 4, t), 0);
	assert_int_equal(failures(lo, "alice", "", 1, t), LOCKOUT_LOCKED_LOGIN);
	lockout_free(&lo);
}

/* Keys over LOCKOUT_KEY_MAX are cut: the same first 255 octets are one key. */
static void
test_long_keys(void **state)
{
	struct lockout *lo = make(2, 100, 900);
	char a[400], b[400];

	memset(a, 'a', sizeof(a));
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[300] = 'b';
	failures(lo, a, "", 1, 1);
	assert_int_equal(failures(lo, b, "", 1, 1), LOCKOUT_LOCKED_LOGIN);
	a[100] = 'c';
	assert_false(lockout_locked(lo, a, "", 1));
	lockout_free(&lo);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_login_and_peer_limits),
		cmocka_unit_test(test_success_clears_login_only),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_flood),
		cmocka_unit_test(test_long_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
