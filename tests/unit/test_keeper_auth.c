/* Unit tests of the keeper's AUTH service beyond single checks, through a
 * real keeper process: the auth cache (a second login with the same
 * password is answered without Argon2id, marked so in the answer; any
 * other password is not; failures are never cached; the lockout comes
 * first and counts as before; cache-ttl = 0 turns it off; cache-size
 * bounds it; an entry expires after cache-ttl), the queue
 * (exactly [limits] auth-queue checks held, the rest BUSY) and cancels (a
 * waiting check whose session went away never runs).  Where an order of
 * events matters the keeper is stopped (SIGSTOP) while the requests are
 * written and the checks are slow (t=8), so that the keeper has read them
 * all long before the first Argon2id run ends. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <event2/event.h>
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <sodium.h>

#include "config.h"
#include "keeper.h"
#include "keeper_client.h"
#include "log.h"
#include "passwd.h"
#include "proc.h"
#include "unit_sandbox.h"
#include "keeper_lab.h"

#define SLOW_T          8       /* Argon2id passes of the slow file: some 0.3 s a check */

static char slow_path[128];     /* "slow" / "slowpw", and the dummy as slow */

static int
setup(void **state)
{
	char h[crypto_pwhash_STRBYTES], buf[256];

	keeper_lab_setup("test_keeper_auth");
	assert_int_equal(crypto_pwhash_str_alg(h, "slowpw", 6, SLOW_T,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13), 0);
	snprintf(buf, sizeof(buf), "slow:{ARGON2ID}%s\n", h);
	dpath(slow_path, sizeof(slow_path), "passwd-slow");
	write_file(slow_path, buf, strlen(buf), 0600);
	return 0;
}

static int
teardown(void **state)
{
	return keeper_lab_teardown();
}

/* A keeper for passwd with these [auth] and [limits] lines, one slot. */
static pid_t
start(const char *passwd, const char *auth, const char *limits, struct keeper_fds *fds)
{
	struct config *cfg = make_config_with("ec256", passwd, auth, limits);
	pid_t pid = spawn_cfg(cfg, 1, fds);

	config_free(&cfg);
	return pid;
}

/* ---- the cache ---- */

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void
test_cache(void **state)
{
	struct event_base *base = event_base_new();
	struct keeper_client *kc;
	struct keeper_fds fds;
	unsigned int fl;
	pid_t pid = start(passwd_path, "workers = 2\n", "", &fds);

	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
	/* the first login is verified by Argon2id, the second by the cache */
	assert_int_equal(auth1f(base, kc, "alice", "al\0ce\xff", 6, "192.0.2.1", &fl),
	    KEEPER_AUTH_OK);
	assert_int_equal(fl, 0);
	assert_int_equal(auth1f(base, kc, "alice", "al\0ce\xff", 6, "192.0.2.2", &fl),
	    KEEPER_AUTH_OK);
	assert_int_equal(fl, KEEPER_AUTH_F_CACHED);
	/* a wrong password for the cached login goes to Argon2id and fails;
	 * the right one still hits afterwards */
	assert_int_equal(auth1f(base, kc, "alice", "al\0ce\xfe", 6, "192.0.2.1", &fl),
	    KEEPER_AUTH_FAIL);
	assert_int_equal(fl, 0);
	assert_int_equal(auth1f(base, kc, "alice", "al\0ce", 5, "192.0.2.1", &fl),
	    KEEPER_AUTH_FAIL);
	assert_int_equal(auth1f(base, kc, "alice", "al\0ce\xff", 6, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, KEEPER_AUTH_F_CACHED);
	/* failures are never cached: bob's wrong password fails each time, and
	 * his right one is verified by Argon2id first */
	assert_int_equal(auth1f(base, kc, "bob", "x", 1, NULL, &fl), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1f(base, kc, "bob", "x", 1, NULL, &fl), KEEPER_AUTH_FAIL);
	assert_int_equal(fl, 0);
	assert_int_equal(auth1f(base, kc, "bob", "bobpw", 5, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, 0);
	assert_int_equal(auth1f(base, kc, "bob", "bobpw", 5, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, KEEPER_AUTH_F_CACHED);
	/* alice's entry is alice's: her password is no key to bob */
	assert_int_equal(auth1f(base, kc, "bob", "al\0ce\xff", 6, NULL, &fl), KEEPER_AUTH_FAIL);
	/* unknown logins never hit */
	assert_int_equal(auth1f(base, kc, "carol", "bobpw", 5, NULL, &fl), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1f(base, kc, "carol", "bobpw", 5, NULL, &fl), KEEPER_AUTH_FAIL);
	keeper_client_free(&kc);
	reap(pid);

	/* cache-ttl = 0: no cache, every login is verified */
	pid = start(passwd_path, "workers = 2\ncache-ttl = 0\n", "", &fds);
	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
	assert_int_equal(auth1f(base, kc, "bob", "bobpw", 5, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(auth1f(base, kc, "bob", "bobpw", 5, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, 0);
	keeper_client_free(&kc);
	reap(pid);

	/* cache-size = 1: one login at a time is remembered */
	pid = start(passwd_path, "workers = 2\ncache-size = 1\n", "", &fds);
	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
	assert_int_equal(auth1f(base, kc, "bob", "bobpw", 5, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(auth1f(base, kc, "alice", "al\0ce\xff", 6, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, 0);
	assert_int_equal(auth1f(base, kc, "bob", "bobpw", 5, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, 0);
	assert_int_equal(auth1f(base, kc, "bob", "bobpw", 5, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, KEEPER_AUTH_F_CACHED);
	keeper_client_free(&kc);
	reap(pid);

	/* cache-ttl = 2s: an entry is gone once its ttl has passed (a lower
	 * bound: sleeping longer changes nothing) */
	pid = start(passwd_path, "workers = 2\ncache-ttl = 2s\n", "", &fds);
	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
	assert_int_equal(auth1f(base, kc, "bob", "bobpw", 5, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, 0);
	assert_int_equal(auth1f(base, kc, "bob", "bobpw", 5, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, KEEPER_AUTH_F_CACHED);
	sleep_ms(2100);
	assert_int_equal(auth1f(base, kc, "bob", "bobpw", 5, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, 0);
	keeper_client_free(&kc);
	reap(pid);
	event_base_free(base);
}

/* The lockout with the cache on: a locked login or address is refused
 * before the cache is looked at, and a cached success clears the login's
 * count exactly as a verified one does. */
static void
test_cache_lockout(void **state)
{
	struct event_base *base = event_base_new();
	struct keeper_client *kc;
	struct keeper_fds fds;
	unsigned int fl;
	pid_t pid;
	int i;

	keeper_set_lockout(3, 5, 3600);
	pid = start(passwd_path, "workers = 2\n", "", &fds);
	keeper_set_lockout(KEEPER_LOCK_LOGIN_MAX, KEEPER_LOCK_PEER_MAX, KEEPER_LOCK_WINDOW);
	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
	assert_int_equal(auth1(base, kc, "alice", "al\0ce\xff", 6, NULL), KEEPER_AUTH_OK);
	/* two failures, then a cached success: the count is cleared ... */
	assert_int_equal(auth1(base, kc, "alice", "a", 1, NULL), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "alice", "b", 1, NULL), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1f(base, kc, "alice", "al\0ce\xff", 6, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, KEEPER_AUTH_F_CACHED);
	/* ... so two more do not lock */
	assert_int_equal(auth1(base, kc, "alice", "c", 1, NULL), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "alice", "d", 1, NULL), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1f(base, kc, "alice", "al\0ce\xff", 6, NULL, &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, KEEPER_AUTH_F_CACHED);
	/* three in a row lock the login: the cached password is refused too */
	for (i = 0; i < 3; i++)
		assert_int_equal(auth1(base, kc, "alice", "e", 1, NULL), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1f(base, kc, "alice", "al\0ce\xff", 6, NULL, &fl),
	    KEEPER_AUTH_LOCKED);
	assert_int_equal(fl, 0);
	/* bob, cached, from an address that gets locked */
	assert_int_equal(auth1(base, kc, "bob", "bobpw", 5, "192.0.2.9"), KEEPER_AUTH_OK);
	for (i = 0; i < 5; i++) {
		char login[24];

		snprintf(login, sizeof(login), "nobody%d", i);
		assert_int_equal(auth1(base, kc, login, "x", 1, "192.0.2.9"), KEEPER_AUTH_FAIL);
	}
	assert_int_equal(auth1(base, kc, "bob", "bobpw", 5, "192.0.2.9"), KEEPER_AUTH_LOCKED);
	assert_int_equal(auth1f(base, kc, "bob", "bobpw", 5, "192.0.2.10", &fl), KEEPER_AUTH_OK);
	assert_int_equal(fl, KEEPER_AUTH_F_CACHED);
	keeper_client_free(&kc);
	reap(pid);
	event_base_free(base);
}

/* ---- the queue ---- */

static void
raw_req(int fd, uint32_t id, const char *login, const char *pw)
{
	uint8_t p[128];
	long n = keeper_auth_req_encode(p, sizeof(p), login, pw, strlen(pw), NULL);

	assert_true(n > 0);
	assert_int_equal(proc_send(fd, PROC_AUTH_REQ, id, p, (size_t)n, -1), 0);
}

/* The next answer on fd (at most 60 s): its result; its id in *id_r, its
 * flags in *flags_r (may be NULL). */
static int
raw_answer(int fd, uint32_t *id_r, unsigned int *flags_r)
{
	static struct proc_msg m;
	struct pollfd pfd = { fd, POLLIN, 0 };

	assert_int_equal(poll(&pfd, 1, 60000), 1);
	assert_int_equal(proc_recv(fd, &m, NULL), 1);
	*id_r = m.id;
	return rep_result(&m, flags_r);
}

/* auth-queue = 5, one worker, 20 checks at once: the first five are held
 * (one running, four waiting) and answered, the other fifteen BUSY. */
static void
test_queue_bound(void **state)
{
	struct keeper_fds fds;
	char login[32];
	uint32_t id, i;
	int busy = 0, failed = 0, res;
	pid_t pid = start(slow_path, "workers = 1\n", "auth-queue = 5\n", &fds);

	assert_int_equal(unit_role_stop(pid), 0);
	for (i = 1; i <= 20; i++) {
		snprintf(login, sizeof(login), "ghost%u", i);
		raw_req(fds.auth_fd, i, login, "boo");
	}
	assert_int_equal(kill(pid, SIGCONT), 0);
	for (i = 0; i < 20; i++) {
		res = raw_answer(fds.auth_fd, &id, NULL);
		if (res == KEEPER_AUTH_BUSY) {
			assert_true(id > 5);
			busy++;
		} else {
			assert_int_equal(res, KEEPER_AUTH_FAIL);
			assert_true(id >= 1 && id <= 5);
			failed++;
		}
	}
	assert_int_equal(busy, 15);
	assert_int_equal(failed, 5);
	stop(pid);
	keeper_fds_close(&fds);
}

/* A waiting check whose session went away is dropped unanswered and never
 * runs: with one worker, the checks run in their order, so a cancelled
 * check that ran would be answered before the next one. */
static void
test_cancel(void **state)
{
	struct keeper_fds fds;
	unsigned int fl;
	uint32_t id;
	pid_t pid = start(slow_path, "workers = 1\n", "", &fds);

	assert_int_equal(unit_role_stop(pid), 0);
	raw_req(fds.auth_fd, 1, "ghost1", "x");
	raw_req(fds.auth_fd, 2, "ghost2", "x");
	raw_req(fds.auth_fd, 3, "slow", "slowpw");
	raw_req(fds.auth_fd, 4, "ghost4", "x");
	assert_int_equal(proc_send(fds.auth_fd, PROC_AUTH_CANCEL, 2, NULL, 0, -1), 0);
	assert_int_equal(proc_send(fds.auth_fd, PROC_AUTH_CANCEL, 3, NULL, 0, -1), 0);
	/* unknown ids and a cancel with a payload change nothing */
	assert_int_equal(proc_send(fds.auth_fd, PROC_AUTH_CANCEL, 99, NULL, 0, -1), 0);
	assert_int_equal(proc_send(fds.auth_fd, PROC_AUTH_CANCEL, 4, "x", 1, -1), 0);
	assert_int_equal(kill(pid, SIGCONT), 0);
	assert_int_equal(raw_answer(fds.auth_fd, &id, NULL), KEEPER_AUTH_FAIL);
	assert_int_equal(id, 1);
	assert_int_equal(raw_answer(fds.auth_fd, &id, NULL), KEEPER_AUTH_FAIL);
	assert_int_equal(id, 4);
	/* a cancel of a check that is running or answered changes nothing */
	raw_req(fds.auth_fd, 5, "slow", "slowpw");
	raw_req(fds.auth_fd, 6, "ghost6", "x");
	assert_int_equal(raw_answer(fds.auth_fd, &id, &fl), KEEPER_AUTH_OK);
	assert_int_equal(id, 5);
	/* verified by Argon2id: the cancelled 3 (the same login and
	 * password) never ran, or it would be in the cache */
	assert_int_equal(fl, 0);
	assert_int_equal(proc_send(fds.auth_fd, PROC_AUTH_CANCEL, 5, NULL, 0, -1), 0);
	assert_int_equal(raw_answer(fds.auth_fd, &id, NULL), KEEPER_AUTH_FAIL);
	assert_int_equal(id, 6);
	stop(pid);
	keeper_fds_close(&fds);
}

/* The same through front's client: keeper_cancel() tells the keeper, so
 * the cancelled check neither runs nor comes back to be dropped. */
static void
test_client_cancel(void **state)
{
	struct event_base *base = event_base_new();
	struct ares r1 = { 0, -9, 0 }, r2 = { 0, -9, 0 }, r3 = { 0, -9, 0 };
	struct keeper_client *kc;
	struct keeper_req *req2;
	struct keeper_fds fds;
	pid_t pid = start(slow_path, "workers = 1\n", "", &fds);

	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
	assert_int_equal(unit_role_stop(pid), 0);
	assert_non_null(keeper_auth(kc, "ghost1", "x", 1, NULL, on_auth, &r1));
	req2 = keeper_auth(kc, "slow", "slowpw", 6, NULL, on_auth, &r2);
	assert_non_null(keeper_auth(kc, "ghost3", "x", 1, NULL, on_auth, &r3));
	keeper_cancel(&req2);
	assert_int_equal(kill(pid, SIGCONT), 0);
	run_until(base, &r1.done, 1);
	run_until(base, &r3.done, 1);
	assert_int_equal(r1.done, 1);
	assert_int_equal(r3.done, 1);
	assert_int_equal(r2.done, 0);
	assert_int_equal(r3.result, KEEPER_AUTH_FAIL);
	assert_int_equal(keeper_dropped(kc), 0);
	assert_int_equal(keeper_pending(kc), 0);
	keeper_client_free(&kc);
	reap(pid);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_cache_lockout),
		cmocka_unit_test(test_queue_bound),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_client_cancel),
	};

	signal(SIGPIPE, SIG_IGN);
	if (getenv("KEEPER_TEST") != NULL)      /* run one: KEEPER_TEST=test_cancel */
		cmocka_set_test_filter(getenv("KEEPER_TEST"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
