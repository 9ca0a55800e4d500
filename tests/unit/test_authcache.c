/* test_authcache.c — the keeper's auth cache with a clock the test moves:
 * hit, miss, a wrong password for a cached login, expiry, the size bound
 * (least recently used first), a changed stored hash, unknown logins,
 * passwords with NULs, keys that differ, and a flood of logins. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "authcache.h"

static const unsigned char KEY[AUTHCACHE_KEY] = "0123456789abcdef0123456789abcdef";
static const char *const H1 = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
static const char *const H2 = "$argon2id$v=19$m=65536,t=2,p=1$b3RoZXJzYWx0$aGFzaGhhc2g";

static int
hit(struct authcache *ac, const char *login, const char *stored, const char *pw, uint64_t now)
{
	return authcache_lookup(ac, login, stored, pw, strlen(pw), now);
}

static void
put(struct authcache *ac, const char *login, const char *stored, const char *pw, uint64_t now)
{
	authcache_insert(ac, login, stored, pw, strlen(pw), now);
}

static void
test_hit_and_miss(void **state)
{
	struct authcache *ac = authcache_new(10, 3600, KEY);

	assert_non_null(ac);
	/* nothing was verified yet */
	assert_false(hit(ac, "alice", H1, "secret", 100));
	put(ac, "alice", H1, "secret", 100);
	assert_int_equal(authcache_count(ac), 1);
	assert_true(hit(ac, "alice", H1, "secret", 101));
	assert_true(hit(ac, "alice", H1, "secret", 101));
	/* any other password misses, and the entry stays */
	assert_false(hit(ac, "alice", H1, "secreT", 102));
	assert_false(hit(ac, "alice", H1, "secret ", 102));
	assert_false(hit(ac, "alice", H1, "", 102));
	assert_int_equal(authcache_count(ac), 1);
	assert_true(hit(ac, "alice", H1, "secret", 103));
	/* another login with the same password and hash misses */
	assert_false(hit(ac, "bob", H1, "secret", 103));
	assert_false(hit(ac, "Alice", H1, "secret", 103));
	/* the login and password are separated: "ali" + "cesecret" is not
	 * "alice" + "secret" */
	put(ac, "ali", H1, "cesecret", 104);
	assert_false(hit(ac, "ali", H1, "ce" "secret" "x", 104));
	assert_true(hit(ac, "ali", H1, "cesecret", 104));
	assert_true(hit(ac, "alice", H1, "secret", 104));
	/* an unknown login (no stored hash) never hits and is never entered */
	put(ac, "ghost", NULL, "boo", 105);
	assert_int_equal(authcache_count(ac), 2);
	assert_false(hit(ac, "ghost", NULL, "boo", 105));
	authcache_free(&ac);
	assert_null(ac);
	authcache_free(&ac);
	authcache_free(NULL);
}

/* Passwords are octets: NULs and 8-bit octets count, length too. */
static void
test_binary_passwords(void **state)
{
	struct authcache *ac = authcache_new(4, 60, KEY);

	authcache_insert(ac, "alice", H1, "al\0ce\xff", 6, 0);
	assert_true(authcache_lookup(ac, "alice", H1, "al\0ce\xff", 6, 1));
	assert_false(authcache_lookup(ac, "alice", H1, "al\0ce\xfe", 6, 1));
	assert_false(authcache_lookup(ac, "alice", H1, "al\0ce", 5, 1));
	assert_false(authcache_lookup(ac, "alice", H1, "al", 2, 1));
	authcache_insert(ac, "bob", H1, "", 0, 2);
	assert_true(authcache_lookup(ac, "bob", H1, "", 0, 3));
	assert_false(authcache_lookup(ac, "bob", H1, "\0", 1, 3));
	authcache_free(&ac);
}

/* An entry lives ttl seconds from its verification; hits do not extend it. */
static void
test_expiry(void **state)
{
	struct authcache *ac = authcache_new(10, 60, KEY);

	put(ac, "alice", H1, "secret", 1000);
	assert_true(hit(ac, "alice", H1, "secret", 1059));
	assert_false(hit(ac, "alice", H1, "secret", 1060));
	/* expired entries are wiped, not kept */
	assert_int_equal(authcache_count(ac), 0);
	/* a new verification starts a new life */
	put(ac, "alice", H1, "secret", 1100);
	put(ac, "bob", H1, "bobpw", 1130);
	assert_int_equal(authcache_count(ac), 2);
	/* the keeper's loop wipes what expired although nobody asks */
	authcache_expire(ac, 1160);
	assert_int_equal(authcache_count(ac), 1);
	assert_false(hit(ac, "alice", H1, "secret", 1160));
	assert_true(hit(ac, "bob", H1, "bobpw", 1189));
	authcache_expire(ac, 1190);
	assert_int_equal(authcache_count(ac), 0);
	/* a lookup or an insert wipes them too */
	put(ac, "carol", H1, "c", 2000);
	put(ac, "dave", H1, "d", 2030);
	assert_false(hit(ac, "nobody", H1, "x", 2061));
	assert_int_equal(authcache_count(ac), 1);
	put(ac, "erin", H1, "e", 2100);
	assert_int_equal(authcache_count(ac), 1);
	assert_true(hit(ac, "erin", H1, "e", 2100));
	authcache_free(&ac);
}

/* At most size entries; the least recently used (made or hit) goes. */
static void
test_size_bound(void **state)
{
	struct authcache *ac = authcache_new(3, 3600, KEY);

	put(ac, "a", H1, "pa", 1);
	put(ac, "b", H1, "pb", 2);
	put(ac, "c", H1, "pc", 3);
	assert_int_equal(authcache_count(ac), 3);
	/* a is used again: b is now the least recently used */
	assert_true(hit(ac, "a", H1, "pa", 4));
	put(ac, "d", H1, "pd", 5);
	assert_int_equal(authcache_count(ac), 3);
	assert_false(hit(ac, "b", H1, "pb", 6));
	assert_true(hit(ac, "a", H1, "pa", 6));
	assert_true(hit(ac, "c", H1, "pc", 6));
	assert_true(hit(ac, "d", H1, "pd", 6));
	/* a miss is no use: it does not save an entry from eviction */
	assert_false(hit(ac, "a", H1, "wrong", 7));
	put(ac, "e", H1, "pe", 8);
	assert_false(hit(ac, "a", H1, "pa", 9));
	/* a login's new verification replaces its entry, no second one */
	put(ac, "c", H1, "pc", 10);
	put(ac, "c", H1, "pc", 11);
	assert_int_equal(authcache_count(ac), 3);
	assert_true(hit(ac, "d", H1, "pd", 12));
	assert_true(hit(ac, "e", H1, "pe", 12));
	authcache_free(&ac);
}

/* A login whose stored hash changed (new passwd file): its entry never
 * hits again, for the old password or any other, and is dropped. */
static void
test_changed_hash(void **state)
{
	struct authcache *ac = authcache_new(10, 3600, KEY);

	put(ac, "alice", H1, "old", 1);
	put(ac, "bob", H1, "bobpw", 1);
	assert_true(hit(ac, "alice", H1, "old", 2));
	assert_false(hit(ac, "alice", H2, "old", 3));
	assert_int_equal(authcache_count(ac), 1);
	/* and it is gone for the old hash too */
	assert_false(hit(ac, "alice", H1, "old", 4));
	/* the new password, once verified against the new hash */
	put(ac, "alice", H2, "new", 5);
	assert_true(hit(ac, "alice", H2, "new", 6));
	assert_false(hit(ac, "alice", H2, "old", 6));
	/* bob was not touched */
	assert_true(hit(ac, "bob", H1, "bobpw", 7));
	/* the same password hashed again (a new salt) is a changed hash too */
	assert_false(hit(ac, "bob", H2, "bobpw", 8));
	authcache_free(&ac);
}

/* Entries are keyed: a cache made with another key finds nothing of
 * another's (each keeper run makes its own key). */
static void
test_keys(void **state)
{
	static const unsigned char other[AUTHCACHE_KEY] = "fedcba9876543210fedcba9876543210";
	struct authcache *a = authcache_new(4, 60, KEY), *b = authcache_new(4, 60, other);

	put(a, "alice", H1, "secret", 1);
	assert_true(hit(a, "alice", H1, "secret", 2));
	assert_false(hit(b, "alice", H1, "secret", 2));
	authcache_free(&a);
	authcache_free(&b);
	/* out of range */
	assert_null(authcache_new(0, 60, KEY));
	assert_null(authcache_new(4, 0, KEY));
	assert_null(authcache_new(AUTHCACHE_SIZE_MAX + 1, 60, KEY));
}

/* Many logins through a small cache: it stays bounded, the most recent
 * entries hit, the table stays consistent. */
static void
test_flood(void **state)
{
	struct authcache *ac = authcache_new(100, 50, KEY);
	char login[32], pw[32];
	int i, hits = 0;

	for (i = 0; i < 5000; i++) {
		snprintf(login, sizeof(login), "user%d", i % 700);
		snprintf(pw, sizeof(pw), "pw%d", i % 700);
		if (hit(ac, login, H1, pw, (uint64_t)i / 10))
			hits++;
		else
			put(ac, login, H1, pw, (uint64_t)i / 10);
		assert_true(authcache_count(ac) <= 100);
	}
	/* 700 logins in turn through 100 entries: each was evicted before it
	 * came back */
	assert_int_equal(hits, 0);
	for (i = 4900; i < 5000; i++) {
		snprintf(login, sizeof(login), "user%d", i % 700);
		snprintf(pw, sizeof(pw), "pw%d", i % 700);
		assert_true(hit(ac, login, H1, pw, 499));
	}
	authcache_expire(ac, 499 + 50);
	assert_int_equal(authcache_count(ac), 0);
	authcache_free(&ac);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_and_miss),
		cmocka_unit_test(test_binary_passwords),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_size_bound),
		cmocka_unit_test(test_changed_hash),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_flood),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
