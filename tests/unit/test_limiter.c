/* test_limiter.c — front's rate limits as attackers use them, with the real
 * tables in MAP_SHARED memory and several processes standing in for front
 * workers: a flood of AUTH attempts under made-up login names and addresses
 * cannot give a login back the messages it used up, and workers racing at a
 * limit never pass more than it allows. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sched.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "limiter.h"
#include "log.h"

static const char base[] =
    "[server]\nhostname = mail.lab.test\n"
    "[listen \"submissions\"]\naddress = 127.0.0.1:4650\ntls = implicit\n"
    "[tls]\ncertificate = /c.pem\nkey = /k.pem\n"
    "[auth]\npasswd-file = /p\n"
    "[relay \"mx\"]\nhost = relay.lab.test\naddress = 127.0.0.1\nport = 2525\n"
    "tlsa = \"3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n"
    "[dkim \"lab.test\"]\nkey = ed /k/ed.key\n";

static struct config *
config(const char *extra)
{
	char buf[4096], err[512];
	struct config *cfg;

	snprintf(buf, sizeof(buf), "%s%s", base, extra);
	cfg = config_parse_buffer("t.conf", buf, strlen(buf), NULL, 0, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("config refused: %s", err);
	return cfg;
}

static int
take(struct limiter *l, enum ratelimit_limit lim, const char *login, const char *key)
{
	char why[128];

	return limiter_take(l, lim, login, key, key, "t", why, sizeof(why));
}

/* What the processes share: their counts and a barrier. */
struct shared {
	long got[8];
	unsigned long arrived;
};

static struct shared *sh;

/* Wait until all n processes arrived at barrier number `round` (from 1),
 * so that they meet each limit at the same moment.  Bounded: a process
 * that never comes fails the test instead of hanging it. */
static void
barrier(int n, unsigned long round)
{
	unsigned long spins;

	__atomic_fetch_add(&sh->arrived, 1, __ATOMIC_SEQ_CST);
	for (spins = 0; __atomic_load_n(&sh->arrived, __ATOMIC_SEQ_CST) < round * (unsigned long)n;
	    spins++) {
		if (spins > 50000000)
			_exit(2);
		if (spins % 64 == 63)
			sched_yield();
	}
}

/* Run fn(l, i, n) in n processes at once.  Returns the sum of what they
 * counted in sh->got[i]. */
static long
in_processes(int n, struct limiter *l, void (*fn)(struct limiter *, int, int))
{
	pid_t pid[8];
	long sum = 0;
	int i, st;

	assert_true(n <= 8);
	memset(sh, 0, sizeof(*sh));
	for (i = 0; i < n; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			fn(l, i, n);
			_exit(0);
		}
	}
	for (i = 0; i < n; i++) {
		assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		sum += sh->got[i];
	}
	return sum;
}

/* ---- a flood of AUTH keys ---- */

enum { FLOOD_PROCS = 4, FLOOD_PER_PROC = 40000 };

/* Every attempt a new login name from a new /64: two new AUTH buckets
 * each, 320,000 in all, five times the 65,536 slots of a table. */
static void
auth_flood(struct limiter *l, int i, int n)
{
	char login[64], key[64];
	int k;

	for (k = 0; k < FLOOD_PER_PROC; k++) {
		snprintf(login, sizeof(login), "guess%d-%d@lab.test", i, k);
		snprintf(key, sizeof(key), "2001:db8:%x:%x::/64", i, k);
		sh->got[i] += take(l, RATELIMIT_AUTH, login, key);
	}
}

/* The independent attacker's find: unauthenticated AUTH attempts made a
 * per-login AUTH bucket for every name tried, each busy for an hour in the
 * one table; with enough addresses the table filled and evictions handed a
 * login that had used up its messages-per-hour a fresh, full bucket.  Now
 * AUTH buckets live in a table of their own. */
static void
t_auth_flood_cannot_reset_a_login(void **state)
{
	struct config *cfg = config("[limits]\nmessages-per-hour = 1000\n"
	    "recipients-per-hour = 1000\nauth-per-minute = 5\n"
	    "[login \"alice@lab.test\"]\nmessages-per-hour = 3\nrecipients-per-hour = 3\n");
	char err[256];
	struct limiter *l = limiter_new(cfg, err, sizeof(err));
	int i;

	assert_non_null(l);
	for (i = 0; i < 3; i++) {
		assert_int_equal(take(l, RATELIMIT_MESSAGES, "alice@lab.test", "192.0.2.1"), 1);
		assert_int_equal(take(l, RATELIMIT_RECIPIENTS, "alice@lab.test", "192.0.2.1"), 1);
	}
	assert_int_equal(take(l, RATELIMIT_MESSAGES, "alice@lab.test", "192.0.2.1"), 0);
	/* her buckets are now the oldest anywhere (the table evicts the least
	 * recently updated): a second passes before the flood */
	sleep(1);
	/* every attempt is the first of its address and login: all pass */
	assert_int_equal(in_processes(FLOOD_PROCS, l, auth_flood), FLOOD_PROCS * FLOOD_PER_PROC);
	/* from her own address and from a new one: still used up */
	assert_int_equal(take(l, RATELIMIT_MESSAGES, "alice@lab.test", "192.0.2.1"), 0);
	assert_int_equal(take(l, RATELIMIT_MESSAGES, "alice@lab.test", "2001:db8:ffff::/64"), 0);
	assert_int_equal(take(l, RATELIMIT_RECIPIENTS, "alice@lab.test", "192.0.2.1"), 0);
	/* and the others' limits still work as before */
	assert_int_equal(take(l, RATELIMIT_MESSAGES, "bob@lab.test", "192.0.2.1"), 1);
	limiter_free(&l);
	config_free(&cfg);
}

/* ---- workers racing at a limit ---- */

enum { RACE_PROCS = 4, ROUNDS = 400, CAP = 3, TRIES = 3 };

/* Each round a new address whose limit (CAP) every worker meets at once,
 * each worker under its own login, whose limit is far away: the address's
 * limit binds.  (Before, the address was checked, then the login taken,
 * then the address taken without looking: one extra per worker.) */
static void
race_one_address(struct limiter *l, int i, int n)
{
	char login[32], key[32];
	int r, k;

	snprintf(login, sizeof(login), "bob%d@lab.test", i);
	for (r = 0; r < ROUNDS; r++) {
		snprintf(key, sizeof(key), "198.51.%d.%d", r / 256, r % 256);
		barrier(n, (unsigned long)r + 1);
		for (k = 0; k < TRIES; k++)
			sh->got[i] += take(l, RATELIMIT_MESSAGES, login, key);
	}
}

/* Each round a new login met by every worker at once, each from an
 * address of its own: the login's limit binds. */
static void
race_one_login(struct limiter *l, int i, int n)
{
	char login[32], key[32];
	int r, k;

	for (r = 0; r < ROUNDS; r++) {
		snprintf(login, sizeof(login), "carol%d@lab.test", r);
		snprintf(key, sizeof(key), "10.%d.%d.%d", i, r / 256, r % 256);
		barrier(n, (unsigned long)r + 1);
		for (k = 0; k < TRIES; k++)
			sh->got[i] += take(l, RATELIMIT_MESSAGES, login, key);
	}
}

static void
t_workers_never_pass_more_than_the_limit(void **state)
{
	/* the logins' and addresses' default: CAP an hour (no refill while
	 * this runs: one token takes 20 minutes) */
	struct config *cfg = config("[limits]\nmessages-per-hour = 3\n"
	    "[login \"bob0@lab.test\"]\nmessages-per-hour = 1000000\n"
	    "[login \"bob1@lab.test\"]\nmessages-per-hour = 1000000\n"
	    "[login \"bob2@lab.test\"]\nmessages-per-hour = 1000000\n"
	    "[login \"bob3@lab.test\"]\nmessages-per-hour = 1000000\n");
	char err[256];
	struct limiter *l = limiter_new(cfg, err, sizeof(err));

	assert_non_null(l);
	assert_int_equal(in_processes(RACE_PROCS, l, race_one_address), ROUNDS * CAP);
	assert_int_equal(in_processes(RACE_PROCS, l, race_one_login), ROUNDS * CAP);
	limiter_free(&l);
	config_free(&cfg);
}

/* One login from one address, the login's limit (50) below the address's
 * (60): every worker meets both at once.  50 pass, and the address bucket
 * got back every token the login refused: 10 are left for others. */
static void
race_both(struct limiter *l, int i, int n)
{
	int k;

	barrier(n, 1);
	for (k = 0; k < 40; k++)
		sh->got[i] += take(l, RATELIMIT_MESSAGES, "dave@lab.test", "203.0.113.9");
}

static void
t_refused_login_gives_the_address_back(void **state)
{
	struct config *cfg = config("[limits]\nmessages-per-hour = 60\n"
	    "[login \"dave@lab.test\"]\nmessages-per-hour = 50\n");
	char err[256];
	struct limiter *l = limiter_new(cfg, err, sizeof(err));
	int i;

	assert_non_null(l);
	assert_int_equal(in_processes(RACE_PROCS, l, race_both), 50);
	for (i = 0; i < 10; i++)
		assert_int_equal(take(l, RATELIMIT_MESSAGES, "erin@lab.test", "203.0.113.9"), 1);
	assert_int_equal(take(l, RATELIMIT_MESSAGES, "erin@lab.test", "203.0.113.9"), 0);
	limiter_free(&l);
	config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_auth_flood_cannot_reset_a_login),
		cmocka_unit_test(t_workers_never_pass_more_than_the_limit),
		cmocka_unit_test(t_refused_login_gives_the_address_back),
	};

	/* the refusals are logged; the tests count them instead */
	log_init("test", LOG_LVL_ERR);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
