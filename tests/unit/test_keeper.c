/* Unit tests for keeper.c and keeper_client.c: the keeper process started
 * for real with keys, certificates and a password file generated now; AUTH
 * results, many in flight, lockout, TLS handshakes whose server key lives
 * in the keeper (ECDSA P-256/P-384, RSA PKCS#1 and PSS, Ed25519; TLS 1.2
 * and 1.3), bad key files, a keeper killed under load, a stale answer, and
 * a hostile front. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
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

#include "config.h"
#include "keeper.h"
#include "keeper_client.h"
#include "log.h"
#include "passwd.h"
#include "proc.h"
#include "unit_sandbox.h"
#include "keeper_lab.h"

static int
setup(void **state)
{
	char p[160];

	keeper_lab_setup("test_keeper");
	make_key_cert("ec384", GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1),
	    0600);
	make_key_cert("rsa", GNUTLS_PK_RSA, 2048, 0600);
	make_key_cert("ed", GNUTLS_PK_EDDSA_ED25519, 256, 0600);
	make_key_cert("open", GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
	    0644);
	make_key_cert("small", GNUTLS_PK_RSA, 1024, 0600);
	dpath(p, sizeof(p), "garbage.key");
	/* a PEM frame with garbage inside; the marker is split so that no
	 * tracked file looks like it holds a key */
	write_file(p, "-----BEGIN PRIVATE" " KEY-----\nAAAA\n-----END PRIVATE" " KEY-----\n", 58,
	    0600);
	return 0;
}

static int
teardown(void **state)
{
	return keeper_lab_teardown();
}

static void
test_auth_results(void **state)
{
	struct event_base *base = event_base_new();
	struct keeper_client *kc;
	struct keeper_fds fds;
	char big[KEEPER_PW_MAX + 1], longlogin[PASSWD_LOGIN_MAX + 2];
	pid_t pid = spawn("ec256", &fds);

	assert_int_equal(fds.npasswd, 2);
	assert_int_equal(fds.pk_algo, GNUTLS_PK_ECDSA);
	assert_int_equal(fds.bits, 256);
	assert_true(fds.spki_len > 60);
	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
	assert_int_equal(auth1(base, kc, "alice", "al\0ce\xff", 6, "192.0.2.1"), KEEPER_AUTH_OK);
	assert_int_equal(auth1(base, kc, "bob", "bobpw", 5, NULL), KEEPER_AUTH_OK);
	assert_int_equal(auth1(base, kc, "alice", "al", 2, "192.0.2.1"), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "alice", "al\0ce\xff" "x", 7, ""), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "alice", "", 0, "192.0.2.1"), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "Alice", "al\0ce\xff", 6, "192.0.2.1"), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "carol", "bobpw", 5, "192.0.2.1"), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "", "bobpw", 5, "192.0.2.1"), KEEPER_AUTH_FAIL);
	/* over a limit: refused here, still answered later */
	memset(big, 'x', sizeof(big));
	assert_int_equal(auth1(base, kc, "bob", big, sizeof(big), NULL), KEEPER_AUTH_BADREQ);
	assert_int_equal(auth1(base, kc, "bob", big, KEEPER_PW_MAX, NULL), KEEPER_AUTH_FAIL);
	memset(longlogin, 'a', sizeof(longlogin) - 1);
	longlogin[sizeof(longlogin) - 1] = '\0';
	assert_int_equal(auth1(base, kc, longlogin, "x", 1, NULL), KEEPER_AUTH_BADREQ);
	longlogin[PASSWD_LOGIN_MAX] = '\0';
	assert_int_equal(auth1(base, kc, longlogin, "x", 1, NULL), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "bob", "bobpw", 5, "192.0.2.1 x"), KEEPER_AUTH_BADREQ);
	assert_int_equal(auth1(base, kc, "bob", "bobpw", 5, "192.0.2.\n"), KEEPER_AUTH_BADREQ);
	assert_int_equal(keeper_pending(kc), 0);
	assert_int_equal(dead_calls, 0);
	keeper_client_free(&kc);
	assert_null(kc);
	keeper_client_free(&kc);
	/* front closed its ends: the keeper exits on its own, cleanly */
	{
		int st = reap(pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	event_base_free(base);
}

/* ---- a GnuTLS server whose key is in the keeper ---- */

/* What tls_server_new() should do with the keeper's key (see the report):
 * the chain from the file, the key from keeper_tls_privkey(). */
static int
server_creds(struct keeper_client *kc, const char *certname,
    gnutls_certificate_credentials_t *out)
{
	gnutls_pcert_st pcerts[8];
	unsigned int n = 8;
	gnutls_privkey_t key;
	char err[256], p[160];
	int rc;

	snprintf(p, sizeof(p), "%s/%s.crt", dir, certname);
	assert_int_equal(gnutls_certificate_allocate_credentials(out), 0);
	if (keeper_tls_privkey(kc, &key, err, sizeof(err)) < 0)
		fail_msg("keeper_tls_privkey: %s", err);
	rc = gnutls_pcert_list_import_x509_file(pcerts, &n, p, GNUTLS_X509_FMT_PEM, NULL, NULL,
	    GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
	assert_int_equal(rc, 0);
	rc = gnutls_certificate_set_key(*out, NULL, 0, pcerts, (int)n, key);
	if (rc < 0) {
		/* after a failure the caller still owns the key and the chain */
		gnutls_certificate_free_credentials(*out);
		*out = NULL;
		while (n > 0)
			gnutls_pcert_deinit(&pcerts[--n]);
		gnutls_privkey_deinit(key);
	}
	return rc;
}

struct hs_client {
	int fd;
	const char *prio;
	int rc;
	gnutls_protocol_t version;
	gnutls_sign_algorithm_t sign;
	char got[16];
};

static void *
client_thread(void *arg)
{
	struct hs_client *c = arg;
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	ssize_t n;

	gnutls_certificate_allocate_credentials(&cred);
	gnutls_init(&s, GNUTLS_CLIENT);
	gnutls_priority_set_direct(s, c->prio, NULL);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
	gnutls_server_name_set(s, GNUTLS_NAME_DNS, "mail.lab.test", 13);
	gnutls_transport_set_int(s, c->fd);
	gnutls_handshake_set_timeout(s, 20000);
	do
		c->rc = gnutls_handshake(s);
	while (c->rc < 0 && !gnutls_error_is_fatal(c->rc));
	if (c->rc == 0) {
		c->version = gnutls_protocol_get_version(s);
		c->sign = gnutls_sign_algorithm_get(s);
		do
			n = gnutls_record_recv(s, c->got, sizeof(c->got) - 1);
		while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
		if (n > 0)
			c->got[n] = '\0';
		gnutls_bye(s, GNUTLS_SHUT_WR);
	}
	close(c->fd);
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cred);
	return NULL;
}

/* One handshake: the server (this thread, signing through the keeper)
 * against a GnuTLS client (another thread) with client priority `prio`. */
static void
handshake(gnutls_certificate_credentials_t cred, const char *prio, gnutls_protocol_t want_ver,
    gnutls_sign_algorithm_t want_sign)
{
	struct hs_client c;
	gnutls_session_t s;
	pthread_t t;
	int sv[2], rc;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	memset(&c, 0, sizeof(c));
	c.fd = sv[1];
	c.prio = prio;
	assert_int_equal(pthread_create(&t, NULL, client_thread, &c), 0);
	assert_int_equal(gnutls_init(&s, GNUTLS_SERVER), 0);
	assert_int_equal(gnutls_priority_set_direct(s, "NORMAL:-VERS-ALL:+VERS-TLS1.3:"
	    "+VERS-TLS1.2:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA", NULL), 0);
	assert_int_equal(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred), 0);
	gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
	gnutls_transport_set_int(s, sv[0]);
	do
		rc = gnutls_handshake(s);
	while (rc < 0 && !gnutls_error_is_fatal(rc));
	if (rc == 0)
		assert_int_equal(gnutls_record_send(s, "hello", 5), 5);
	close(sv[0]);
	pthread_join(t, NULL);
	gnutls_deinit(s);
	if (rc < 0 || c.rc < 0)
		fail_msg("handshake with \"%s\": server %s, client %s", prio, gnutls_strerror(rc),
		    gnutls_strerror(c.rc));
	assert_int_equal(c.version, want_ver);
	if (c.sign != want_sign)
		fail_msg("signature %s, expected %s", gnutls_sign_get_name(c.sign),
		    gnutls_sign_get_name(want_sign));
	assert_string_equal(c.got, "hello");
}

#define V12 "NORMAL:-VERS-ALL:+VERS-TLS1.2"
#define V13 "NORMAL:-VERS-ALL:+VERS-TLS1.3"

static void
test_tls_handshakes(void **state)
{
	static const struct {
		const char *key;
		const char *prio;
		gnutls_protocol_t ver;
		gnutls_sign_algorithm_t sign;
	} cases[] = {
		{ "ec256", V13, GNUTLS_TLS1_3, GNUTLS_SIGN_ECDSA_SECP256R1_SHA256 },
		{ "ec256", V12 ":-SIGN-ALL:+SIGN-ECDSA-SHA256", GNUTLS_TLS1_2,
		    GNUTLS_SIGN_ECDSA_SHA256 },
		{ "ec384", V13, GNUTLS_TLS1_3, GNUTLS_SIGN_ECDSA_SECP384R1_SHA384 },
		{ "ec384", V12 ":-SIGN-ALL:+SIGN-ECDSA-SHA384", GNUTLS_TLS1_2,
		    GNUTLS_SIGN_ECDSA_SHA384 },
		{ "rsa", V13 ":-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA256", GNUTLS_TLS1_3,
		    GNUTLS_SIGN_RSA_PSS_RSAE_SHA256 },
		{ "rsa", V13 ":-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA384", GNUTLS_TLS1_3,
		    GNUTLS_SIGN_RSA_PSS_RSAE_SHA384 },
		{ "rsa", V12 ":-SIGN-ALL:+SIGN-RSA-SHA256", GNUTLS_TLS1_2, GNUTLS_SIGN_RSA_SHA256 },
		{ "rsa", V12 ":-SIGN-ALL:+SIGN-RSA-SHA512", GNUTLS_TLS1_2, GNUTLS_SIGN_RSA_SHA512 },
		{ "rsa", V12 ":-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA256", GNUTLS_TLS1_2,
		    GNUTLS_SIGN_RSA_PSS_RSAE_SHA256 },
		{ "ed", V13, GNUTLS_TLS1_3, GNUTLS_SIGN_EDDSA_ED25519 },
		{ "ed", V12, GNUTLS_TLS1_2, GNUTLS_SIGN_EDDSA_ED25519 },
	};
	struct event_base *base = event_base_new();
	gnutls_certificate_credentials_t cred = NULL;
	struct keeper_client *kc = NULL;
	struct keeper_fds fds;
	const char *cur = NULL;
	pid_t pid = -1;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cur == NULL || strcmp(cur, cases[i].key) != 0) {
			if (kc != NULL) {
				gnutls_certificate_free_credentials(cred);
				keeper_client_free(&kc);
				assert_int_equal(WEXITSTATUS(reap(pid)), 0);
			}
			cur = cases[i].key;
			pid = spawn(cur, &fds);
			kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
			/* set_key checks the pair with a signature: a round trip */
			assert_int_equal(server_creds(kc, cur, &cred), 0);
		}
		handshake(cred, cases[i].prio, cases[i].ver, cases[i].sign);
	}
	gnutls_certificate_free_credentials(cred);
	keeper_client_free(&kc);
	assert_int_equal(WEXITSTATUS(reap(pid)), 0);
	assert_int_equal(dead_calls, 0);
	event_base_free(base);
}

/* The keeper's key must be the certificate's: set_key notices. */
static void
test_key_cert_mismatch(void **state)
{
	struct event_base *base = event_base_new();
	gnutls_certificate_credentials_t cred = NULL;
	struct keeper_client *kc;
	struct keeper_fds fds;
	pid_t pid = spawn("ec256", &fds);

	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
	assert_true(server_creds(kc, "ec384", &cred) < 0);
	assert_null(cred);
	assert_true(server_creds(kc, "rsa", &cred) < 0);
	keeper_client_free(&kc);
	reap(pid);
	event_base_free(base);
}

/* ---- many at once; key operations never wait for Argon2id ---- */

/* The test between the client and the keeper's AUTH socket: it forwards
 * every frame itself, so it knows when the keeper has answered everything,
 * cancelled requests included. */
struct tap {
	int keeper;     /* the keeper's AUTH socket */
	int client;     /* ours of the pair whose other end the client reads */
	int client_end;
	int answers;    /* frames handed to the client */
};

static void
tap_open(struct tap *t, struct keeper_fds *fds)
{
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	t->keeper = fds->auth_fd;
	t->client = sp[0];
	t->client_end = fds->auth_fd = sp[1];
	t->answers = 0;
}

/* Requests to the keeper; then answers to the client, waiting up to
 * wait_ms for the first. */
static void
tap_pump(struct tap *t, int wait_ms)
{
	static uint8_t buf[PROC_MAX_MSG];
	struct pollfd p = { t->keeper, POLLIN, 0 };
	ssize_t n;

	while ((n = recv(t->client, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		assert_int_equal(send(t->keeper, buf, (size_t)n, MSG_NOSIGNAL), n);
	if (wait_ms > 0)
		(void)poll(&p, 1, wait_ms);
	while ((n = recv(t->keeper, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		assert_int_equal(send(t->client, buf, (size_t)n, MSG_NOSIGNAL), n);
		t->answers++;
	}
}

/* Until the client has read everything handed to it. */
static void
tap_drain(struct tap *t, struct event_base *base)
{
	struct pollfd p = { t->client_end, POLLIN, 0 };
	int i;

	for (i = 0; i < 1000 && poll(&p, 1, 0) > 0; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(poll(&p, 1, 0), 0);
}

static void
test_auth_in_flight(void **state)
{
	static const struct {
		const char *login, *pw;
		size_t pwlen;
		const char *peer;
		int want;
	} reqs[] = {
		{ "alice", "al\0ce\xff", 6, "192.0.2.10", KEEPER_AUTH_OK },
		{ "bob", "bobpw", 5, "192.0.2.11", KEEPER_AUTH_OK },
		{ "alice", "nope", 4, "192.0.2.12", KEEPER_AUTH_FAIL },
		{ "carol", "x", 1, "192.0.2.13", KEEPER_AUTH_FAIL },
		{ "bob", "bobpW", 5, "2001:db8::1", KEEPER_AUTH_FAIL },
		{ "bob", "bobpw", 5, "[2001:db8::2]", KEEPER_AUTH_OK },
	};
	struct event_base *base = event_base_new();
	struct ares r[6], rc = { 0, -9, 0 };
	struct keeper_req *cancelled;
	struct keeper_client *kc;
	struct keeper_fds fds;
	struct tap tap;
	gnutls_privkey_t key;
	gnutls_datum_t data = { (unsigned char *)"to be signed", 12 }, sig = { NULL, 0 };
	struct pollfd pfd;
	char err[256];
	size_t i;
	pid_t pid = spawn("ec256", &fds);
	int done = 0, round;

	tap_open(&tap, &fds);
	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
	assert_int_equal(keeper_tls_privkey(kc, &key, err, sizeof(err)), 0);
	memset(r, 0, sizeof(r));
	for (i = 0; i < 6; i++)
		assert_non_null(keeper_auth(kc, reqs[i].login, reqs[i].pw, reqs[i].pwlen,
		    reqs[i].peer, on_auth, &r[i]));
	cancelled = keeper_auth(kc, "bob", "bobpw", 5, NULL, on_auth, &rc);
	assert_int_equal(keeper_pending(kc), 7);
	keeper_cancel(&cancelled);
	assert_null(cancelled);
	keeper_cancel(&cancelled);
	assert_int_equal(keeper_pending(kc), 6);
	/* seven checks are queued on two workers; a signature is answered
	 * before the first of them is */
	tap_pump(&tap, 0);
	assert_int_equal(gnutls_privkey_sign_data2(key, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &sig),
	    0);
	pfd.fd = tap.keeper;
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 0), 0);
	gnutls_free(sig.data);
	/* six answers (at most 60 s); the cancelled check was still waiting
	 * behind them, so the keeper dropped it (test_keeper_auth.c shows it
	 * never runs): no seventh answer comes, none is dropped here */
	for (round = 0; round < 600 && tap.answers < 6; round++) {
		tap_pump(&tap, 100);
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	assert_int_equal(tap.answers, 6);
	for (round = 0; round < 5; round++)
		tap_pump(&tap, 100);
	assert_int_equal(tap.answers, 6);
	tap_drain(&tap, base);
	for (i = 0; i < 6; i++)
		done += r[i].done;
	assert_int_equal(done, 6);
	for (i = 0; i < 6; i++) {
		assert_int_equal(r[i].done, 1);
		if (r[i].result != reqs[i].want)
			fail_msg("request %zu (%s): %s, expected %s", i, reqs[i].login,
			    keeper_auth_result_name(r[i].result),
			    keeper_auth_result_name(reqs[i].want));
	}
	assert_int_equal(keeper_dropped(kc), 0);
	assert_int_equal(rc.done, 0);
	assert_int_equal(keeper_pending(kc), 0);
	gnutls_privkey_deinit(key);
	keeper_client_free(&kc);
	close(tap.client);
	close(tap.keeper);
	reap(pid);
	event_base_free(base);
}

/* ---- lockout ---- */

static void
test_lockout(void **state)
{
	struct event_base *base = event_base_new();
	struct keeper_client *kc;
	struct keeper_fds fds;
	pid_t pid;
	int i;

	keeper_set_lockout(3, 5, 3600);
	pid = spawn("ec256", &fds);
	keeper_set_lockout(KEEPER_LOCK_LOGIN_MAX, KEEPER_LOCK_PEER_MAX, KEEPER_LOCK_WINDOW);
	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);

	/* a success clears the login's count */
	assert_int_equal(auth1(base, kc, "alice", "x", 1, "192.0.2.1"), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "alice", "x", 1, "192.0.2.1"), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "alice", "al\0ce\xff", 6, "192.0.2.1"), KEEPER_AUTH_OK);
	/* three failures lock the login, from any address, right password or not */
	for (i = 0; i < 3; i++)
		assert_int_equal(auth1(base, kc, "alice", "y", 1, "192.0.2.2"), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "alice", "al\0ce\xff", 6, "192.0.2.3"),
	    KEEPER_AUTH_LOCKED);
	assert_int_equal(auth1(base, kc, "alice", "z", 1, NULL), KEEPER_AUTH_LOCKED);
	/* bob is not alice */
	assert_int_equal(auth1(base, kc, "bob", "bobpw", 5, "192.0.2.2"), KEEPER_AUTH_OK);
	/* five failures of any logins lock an address: 192.0.2.1 has two */
	assert_int_equal(auth1(base, kc, "bob", "no", 2, "192.0.2.1"), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "carol", "no", 2, "192.0.2.1"), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "dave", "no", 2, "192.0.2.1"), KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "bob", "bobpw", 5, "192.0.2.1"), KEEPER_AUTH_LOCKED);
	assert_int_equal(auth1(base, kc, "bob", "bobpw", 5, "192.0.2.4"), KEEPER_AUTH_OK);
	/* an unknown login locks exactly like a known one */
	for (i = 0; i < 3; i++)
		assert_int_equal(auth1(base, kc, "ghost", "boo", 3, "198.51.100.7"),
		    KEEPER_AUTH_FAIL);
	assert_int_equal(auth1(base, kc, "ghost", "boo", 3, "198.51.100.8"), KEEPER_AUTH_LOCKED);
	keeper_client_free(&kc);
	reap(pid);
	/* the window's end is tested with a clock the test moves:
	 * tests/unit/test_lockout.c */
	event_base_free(base);
}

/* ---- start-up refusals ---- */

static void
expect_refused(const char *keyname, const char *passwd, const char *want)
{
	struct keeper_fds fds;
	char err[512];
	pid_t pid = spawn_with(keyname, passwd, 1, &fds, err, sizeof(err));

	assert_int_equal(pid, -1);
	assert_int_equal(fds.tls_fd, -1);
	assert_int_equal(fds.auth_fd, -1);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static void
test_refuses(void **state)
{
	char want[200], missing[160];

	snprintf(want, sizeof(want), "TLS key %s/open.key has mode 0644", dir);
	expect_refused("open", passwd_path, want);
	expect_refused("open", passwd_path, "chmod 600");
	expect_refused("small", passwd_path, "1024");
	expect_refused("missing", passwd_path, "missing.key");
	expect_refused("garbage", passwd_path, "cannot read TLS key");
	dpath(missing, sizeof(missing), "nopasswd");
	expect_refused("ec256", missing, "nopasswd");
}

/* ---- a dead keeper ---- */

static void
test_keeper_killed(void **state)
{
	struct event_base *base = event_base_new();
	struct ares r[4];
	struct keeper_client *kc;
	struct keeper_fds fds;
	gnutls_privkey_t key, key2;
	gnutls_datum_t data = { (unsigned char *)"x", 1 }, sig = { NULL, 0 };
	char err[256];
	int i;
	pid_t pid = spawn("ec256", &fds);

	dead_calls = 0;
	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
	assert_int_equal(keeper_tls_privkey(kc, &key, err, sizeof(err)), 0);
	memset(r, 0, sizeof(r));
	for (i = 0; i < 3; i++)
		assert_non_null(keeper_auth(kc, "alice", "al\0ce\xff", 6, NULL, on_auth, &r[i]));
	stop(pid);
	run_until(base, &dead_calls, 1);
	assert_int_equal(dead_calls, 1);
	for (i = 0; i < 3; i++) {
		assert_int_equal(r[i].done, 1);
		assert_int_equal(r[i].result, KEEPER_DEAD);
	}
	/* later requests fail too, never synchronously; dead_cb stays at one */
	assert_non_null(keeper_auth(kc, "alice", "al\0ce\xff", 6, NULL, on_auth, &r[3]));
	assert_int_equal(r[3].done, 0);
	run_until(base, &r[3].done, 1);
	assert_int_equal(r[3].result, KEEPER_DEAD);
	assert_true(gnutls_privkey_sign_data2(key, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &sig) < 0);
	assert_int_equal(keeper_tls_privkey(kc, &key2, err, sizeof(err)), -1);
	assert_null(key2);
	assert_non_null(strstr(err, "gone"));
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(dead_calls, 1);
	gnutls_privkey_deinit(key);
	keeper_client_free(&kc);
	event_base_free(base);
}

/* The keeper dies while a handshake signs: the key operation fails at once
 * (no callbacks inside GnuTLS), the loop then reports it once; a key that
 * outlives its client fails cleanly. */
static void
test_keeper_killed_tls_first(void **state)
{
	struct event_base *base = event_base_new();
	struct ares r = { 0, -9, 0 };
	struct keeper_client *kc;
	struct keeper_fds fds;
	gnutls_privkey_t key, key2;
	gnutls_datum_t data = { (unsigned char *)"x", 1 }, sig = { NULL, 0 };
	char err[256];
	pid_t pid = spawn("ed", &fds);

	dead_calls = 0;
	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
	assert_int_equal(keeper_tls_privkey(kc, &key, err, sizeof(err)), 0);
	assert_int_equal(keeper_tls_privkey(kc, &key2, err, sizeof(err)), 0);
	assert_int_equal(gnutls_privkey_sign_data2(key, GNUTLS_SIGN_EDDSA_ED25519, 0, &data, &sig),
	    0);
	gnutls_free(sig.data);
	sig.data = NULL;
	assert_non_null(keeper_auth(kc, "bob", "bobpw", 5, NULL, on_auth, &r));
	stop(pid);
	assert_true(gnutls_privkey_sign_data2(key, GNUTLS_SIGN_EDDSA_ED25519, 0, &data, &sig) < 0);
	assert_int_equal(dead_calls, 0);
	run_until(base, &dead_calls, 1);
	assert_int_equal(dead_calls, 1);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.result, KEEPER_DEAD);
	gnutls_privkey_deinit(key);
	keeper_client_free(&kc);
	assert_true(gnutls_privkey_sign_data2(key2, GNUTLS_SIGN_EDDSA_ED25519, 0, &data, &sig) < 0);
	gnutls_privkey_deinit(key2);
	assert_int_equal(dead_calls, 1);
	event_base_free(base);
}

/* ---- front's client against a scripted keeper ---- */

/* Plays the keeper's TLS side: for each request, first an answer with
 * another id (what a replacement worker may find in an inherited socket),
 * then the real one; `last_type` is the type of the final answer. */
struct fake_tls {
	int fd;
	int nreq;
	unsigned int last_type;
};

static void *
fake_tls_thread(void *arg)
{
	static struct proc_msg m;
	struct fake_tls *ft = arg;
	uint8_t buf[64];
	struct proc_writer w;
	int i;

	proc_writer_init(&w, buf, sizeof(buf));
	proc_put_u32(&w, 0);
	proc_put_bytes(&w, "sig", 3);
	for (i = 0; i < ft->nreq; i++) {
		if (proc_recv(ft->fd, &m, NULL) != 1 || m.type != PROC_TLS_SIGN_REQ)
			return NULL;
		(void)proc_send(ft->fd, PROC_TLS_SIGN_REP, m.id + 7, buf,
		    (size_t)proc_writer_done(&w), -1);
		(void)proc_send(ft->fd, i == ft->nreq - 1 ? ft->last_type : PROC_TLS_SIGN_REP,
		    m.id, buf, (size_t)proc_writer_done(&w), -1);
	}
	return NULL;
}

/* A stale answer on the TLS socket is dropped, not taken for the keeper's
 * end; a wrong message type is (the keeper is lost, reported once from the
 * loop, and the AUTH side fails with it). */
static void
test_tls_stale_reply(void **state)
{
	struct event_base *base = event_base_new();
	struct keeper_client *kc;
	struct keeper_fds fds;
	struct fake_tls ft;
	struct ares r = { 0, -9, 0 };
	gnutls_privkey_t key;
	gnutls_datum_t hash = { (unsigned char *)"0123456789abcdef0123456789abcdef", 32 };
	gnutls_datum_t sig = { NULL, 0 };
	pthread_t t;
	char err[256];
	int tv[2], av[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, tv), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, av), 0);
	memset(&fds, 0, sizeof(fds));
	fds.tls_fd = tv[0];
	fds.auth_fd = av[0];
	fds.pk_algo = GNUTLS_PK_ECDSA;
	fds.bits = 256;
	dead_calls = 0;
	kc = keeper_client_new(base, &fds, 64, on_dead, NULL);
	assert_int_equal(keeper_tls_privkey(kc, &key, err, sizeof(err)), 0);
	ft.fd = tv[1];
	ft.nreq = 2;
	ft.last_type = PROC_AUTH_REP;
	assert_int_equal(pthread_create(&t, NULL, fake_tls_thread, &ft), 0);
	assert_int_equal(gnutls_privkey_sign_hash2(key, GNUTLS_SIGN_ECDSA_SHA256, 0, &hash, &sig),
	    0);
	assert_int_equal(sig.size, 3);
	assert_memory_equal(sig.data, "sig", 3);
	gnutls_free(sig.data);
	sig.data = NULL;
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(dead_calls, 0);
	/* the second one: stale, then a reply of the wrong type */
	assert_non_null(keeper_auth(kc, "bob", "bobpw", 5, NULL, on_auth, &r));
	assert_true(gnutls_privkey_sign_hash2(key, GNUTLS_SIGN_ECDSA_SHA256, 0, &hash, &sig) < 0);
	pthread_join(t, NULL);
	assert_int_equal(dead_calls, 0);        /* not from inside GnuTLS */
	run_until(base, &dead_calls, 1);
	run_until(base, &r.done, 1);
	assert_int_equal(r.result, KEEPER_DEAD);
	assert_int_equal(dead_calls, 1);
	gnutls_privkey_deinit(key);
	keeper_client_free(&kc);
	close(tv[1]);
	close(av[1]);
	event_base_free(base);
}

/* ---- a hostile front, on the raw sockets ---- */

/* One message on fd within ms milliseconds, or the test fails. */
static void
recv_within(int fd, struct proc_msg *m, int ms)
{
	struct pollfd pfd = { fd, POLLIN, 0 };

	assert_int_equal(poll(&pfd, 1, ms), 1);
	assert_int_equal(proc_recv(fd, m, NULL), 1);
}

static void
raw_auth(int fd, uint32_t id, const void *payload, size_t len, uint32_t want)
{
	static struct proc_msg m;
	uint32_t result;

	assert_int_equal(proc_send(fd, PROC_AUTH_REQ, id, payload, len, -1), 0);
	recv_within(fd, &m, 10000);
	assert_int_equal(m.type, PROC_AUTH_REP);
	assert_int_equal(m.id, id);
	result = (uint32_t)rep_result(&m, NULL);
	if (result != want)
		fail_msg("AUTH id %u: %s, expected %s", id, keeper_auth_result_name((int)result),
		    keeper_auth_result_name((int)want));
}

/* A TLS request; returns the status, *sig the signature (caller frees). */
static int32_t
raw_tls(int fd, uint32_t id, uint8_t op, uint32_t algo, uint32_t flags, const void *data,
    size_t len, gnutls_datum_t *sig)
{
	static struct proc_msg m;
	uint8_t buf[16 + KEEPER_SIGN_DATA_MAX + 64];
	struct proc_writer w;
	struct proc_reader r;
	const uint8_t *s;
	uint32_t status;
	size_t slen;

	proc_writer_init(&w, buf, sizeof(buf));
	proc_put_u8(&w, op);
	proc_put_u32(&w, algo);
	proc_put_u32(&w, flags);
	proc_put_bytes(&w, data, len);
	assert_int_equal(proc_send(fd, PROC_TLS_SIGN_REQ, id, buf,
	    (size_t)proc_writer_done(&w), -1), 0);
	recv_within(fd, &m, 10000);
	assert_int_equal(m.type, PROC_TLS_SIGN_REP);
	assert_int_equal(m.id, id);
	proc_reader_init(&r, m.payload, m.len);
	assert_int_equal(proc_get_u32(&r, &status), 0);
	assert_int_equal(proc_get_bytes(&r, &s, &slen, KEEPER_SIG_MAX), 0);
	assert_int_equal(proc_reader_end(&r), 0);
	assert_true((status == 0) == (slen > 0));
	if (sig != NULL) {
		sig->data = gnutls_malloc(slen + 1);
		memcpy(sig->data, s, slen);
		sig->size = (unsigned int)slen;
	}
	return (int32_t)status;
}

static void
expect_exit1(pid_t pid)
{
	int st = reap(pid);

	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
}

static void
test_hostile_front(void **state)
{
	static uint8_t p[KEEPER_PW_MAX * 3];
	struct keeper_fds fds;
	struct proc_writer w;
	gnutls_pubkey_t pub;
	gnutls_datum_t spki, sig, hash;
	uint8_t h32[32] = { 1, 2, 3 }, h48[48] = { 4 };
	char big[2000];
	long n;
	pid_t pid = spawn("ec256", &fds);
	int pv[2];

	/* a good request first, then every kind of bad payload */
	n = keeper_auth_req_encode(p, sizeof(p), "bob", "bobpw", 5, "192.0.2.5");
	assert_true(n > 0);
	raw_auth(fds.auth_fd, 1, p, (size_t)n, KEEPER_AUTH_OK);
	raw_auth(fds.auth_fd, 2, p, (size_t)n - 1, KEEPER_AUTH_BADREQ);   /* truncated */
	p[n] = 0;
	raw_auth(fds.auth_fd, 3, p, (size_t)n + 1, KEEPER_AUTH_BADREQ);   /* trailing octet */
	raw_auth(fds.auth_fd, 4, NULL, 0, KEEPER_AUTH_BADREQ);           /* empty */
	memset(big, 'p', sizeof(big));
	proc_writer_init(&w, p, sizeof(p));
	proc_put_str(&w, "bob");
	proc_put_bytes(&w, big, sizeof(big));                           /* password too long */
	proc_put_str(&w, "");
	raw_auth(fds.auth_fd, 5, p, (size_t)proc_writer_done(&w), KEEPER_AUTH_BADREQ);
	proc_writer_init(&w, p, sizeof(p));
	proc_put_bytes(&w, "bo\0b", 4);                                 /* NUL in login */
	proc_put_str(&w, "bobpw");
	proc_put_str(&w, "");
	raw_auth(fds.auth_fd, 6, p, (size_t)proc_writer_done(&w), KEEPER_AUTH_BADREQ);
	proc_writer_init(&w, p, sizeof(p));
	proc_put_str(&w, "bob");
	proc_put_str(&w, "bobpw");
	proc_put_str(&w, "192.0.2.5\r\n");                              /* control octets */
	raw_auth(fds.auth_fd, 7, p, (size_t)proc_writer_done(&w), KEEPER_AUTH_BADREQ);
	proc_writer_init(&w, p, sizeof(p));
	proc_put_u32(&w, 0xffffffffu);                                  /* huge length */
	raw_auth(fds.auth_fd, 8, p, (size_t)proc_writer_done(&w), KEEPER_AUTH_BADREQ);

	/* key operations the key cannot or must not do */
	assert_int_equal(raw_tls(fds.tls_fd, 1, KEEPER_OP_SIGN_HASH, GNUTLS_SIGN_RSA_SHA256, 0,
	    h32, 32, NULL), GNUTLS_E_INVALID_REQUEST);                 /* RSA with an EC key */
	assert_int_equal(raw_tls(fds.tls_fd, 2, KEEPER_OP_SIGN_HASH, GNUTLS_SIGN_RSA_RAW, 0,
	    h32, 32, NULL), GNUTLS_E_INVALID_REQUEST);
	assert_int_equal(raw_tls(fds.tls_fd, 3, KEEPER_OP_SIGN_HASH, GNUTLS_SIGN_ECDSA_SHA256, 0,
	    h48, 48, NULL), GNUTLS_E_INVALID_REQUEST);                 /* wrong hash length */
	assert_int_equal(raw_tls(fds.tls_fd, 4, KEEPER_OP_SIGN_DATA, GNUTLS_SIGN_ECDSA_SHA256, 0,
	    h32, 32, NULL), GNUTLS_E_INVALID_REQUEST);                 /* not an EdDSA key */
	assert_int_equal(raw_tls(fds.tls_fd, 5, KEEPER_OP_SIGN_HASH, GNUTLS_SIGN_ECDSA_SHA256,
	    1u << 30, h32, 32, NULL), GNUTLS_E_INVALID_REQUEST);       /* unknown flag */
	assert_int_equal(raw_tls(fds.tls_fd, 6, 3, GNUTLS_SIGN_ECDSA_SHA256, 0, h32, 32, NULL),
	    GNUTLS_E_INVALID_REQUEST);                                 /* unknown op */
	assert_int_equal(raw_tls(fds.tls_fd, 7, KEEPER_OP_SIGN_HASH, 0xffff, 0, h32, 32, NULL),
	    GNUTLS_E_INVALID_REQUEST);                                 /* unknown algorithm */
	assert_int_equal(raw_tls(fds.tls_fd, 8, KEEPER_OP_SIGN_HASH, GNUTLS_SIGN_ECDSA_SHA256, 0,
	    h32, 0, NULL), GNUTLS_E_INVALID_REQUEST);                  /* nothing to sign */
	assert_int_equal(proc_send(fds.tls_fd, PROC_TLS_SIGN_REQ, 9, "\x01", 1, -1), 0);
	{
		static struct proc_msg m;
		assert_int_equal(proc_recv(fds.tls_fd, &m, NULL), 1);
		assert_int_equal(m.type, PROC_TLS_SIGN_REP);
		assert_int_equal(m.id, 9);
	}
	/* a good one, checked against the public key sent at READY */
	assert_int_equal(raw_tls(fds.tls_fd, 10, KEEPER_OP_SIGN_HASH, GNUTLS_SIGN_ECDSA_SHA256, 0,
	    h32, 32, &sig), 0);
	assert_int_equal(gnutls_pubkey_init(&pub), 0);
	spki.data = fds.spki;
	spki.size = (unsigned int)fds.spki_len;
	assert_int_equal(gnutls_pubkey_import(pub, &spki, GNUTLS_X509_FMT_DER), 0);
	hash.data = h32;
	hash.size = 32;
	assert_int_equal(gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &hash, &sig),
	    0);
	sig.data[sig.size / 2] ^= 1;
	assert_true(gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &hash, &sig) < 0);
	gnutls_free(sig.data);
	gnutls_pubkey_deinit(pub);
	/* still serving AUTH after all that */
	n = keeper_auth_req_encode(p, sizeof(p), "bob", "bobpw", 5, NULL);
	raw_auth(fds.auth_fd, 11, p, (size_t)n, KEEPER_AUTH_OK);

	/* a wrong message type ends the keeper: front broke the protocol */
	assert_int_equal(proc_send(fds.auth_fd, PROC_SIGN_REQ, 12, NULL, 0, -1), 0);
	expect_exit1(pid);
	keeper_fds_close(&fds);
	keeper_fds_close(&fds);

	/* ... on the TLS socket too */
	pid = spawn("ec256", &fds);
	n = keeper_auth_req_encode(p, sizeof(p), "bob", "bobpw", 5, NULL);
	assert_int_equal(proc_send(fds.tls_fd, PROC_AUTH_REQ, 1, p, (size_t)n, -1), 0);
	expect_exit1(pid);
	keeper_fds_close(&fds);

	/* a descriptor nobody asked for */
	pid = spawn("ec256", &fds);
	assert_int_equal(pipe(pv), 0);
	assert_int_equal(proc_send(fds.auth_fd, PROC_AUTH_REQ, 1, p, (size_t)n, pv[0]), 0);
	expect_exit1(pid);
	close(pv[0]);
	close(pv[1]);
	keeper_fds_close(&fds);

	/* a broken frame (bad version) */
	pid = spawn("ec256", &fds);
	{
		uint8_t raw[PROC_HDR_LEN] = { 9, PROC_AUTH_REQ, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0 };
		assert_int_equal(send(fds.auth_fd, raw, sizeof(raw), 0), (ssize_t)sizeof(raw));
	}
	expect_exit1(pid);
	keeper_fds_close(&fds);
}

/* Send AUTH_REQ payload p with ids first, first + 1, ... and read no
 * answer, until the socket stays full for 300 ms.  Returns how many went. */
static int
flood_auth(int fd, const uint8_t *p, size_t n, uint32_t first)
{
	uint8_t frame[256];
	long fn;
	int sent = 0;

	for (;;) {
		fn = proc_msg_encode(frame, sizeof(frame), PROC_AUTH_REQ, 0, first + (uint32_t)sent,
		    p, n);
		assert_true(fn > 0);
		if (send(fd, frame, (size_t)fn, MSG_DONTWAIT) != fn) {
			struct pollfd pfd = { fd, POLLOUT, 0 };

			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			if (poll(&pfd, 1, 300) == 0)
				break;
			continue;
		}
		sent++;
		assert_true(sent < 1000000);
	}
	assert_true(sent > 1000);
	return sent;
}

/* A flood: beyond [limits] auth-queue checks held, BUSY at once. */
#define FLOOD_QUEUE 64

static void
test_busy(void **state)
{
	static struct proc_msg m;
	struct keeper_fds fds;
	struct config *cfg = make_config_with("ec256", passwd_path, "workers = 2\n",
	    "auth-queue = 64\n");
	uint8_t p[64];
	long n;
	int i, busy = 0, ok = 0, got = 0;
	pid_t pid = spawn_cfg(cfg, 1, &fds);

	config_free(&cfg);
	n = keeper_auth_req_encode(p, sizeof(p), "bob", "bobpw", 5, "192.0.2.77");
	for (i = 0; i < FLOOD_QUEUE + 40; i++)
		assert_int_equal(proc_send(fds.auth_fd, PROC_AUTH_REQ, (uint32_t)i + 1, p,
		    (size_t)n, -1), 0);
	/* the BUSY answers come first (workers send them before the next check) */
	while (got < 30) {
		struct pollfd pfd = { fds.auth_fd, POLLIN, 0 };
		int res;

		assert_int_equal(poll(&pfd, 1, 5000), 1);
		assert_int_equal(proc_recv(fds.auth_fd, &m, NULL), 1);
		res = rep_result(&m, NULL);
		got++;
		if (res == KEEPER_AUTH_BUSY) {
			busy++;
			assert_true(m.id > FLOOD_QUEUE);
		} else {
			assert_int_equal(res, KEEPER_AUTH_OK);
			ok++;
		}
	}
	assert_true(busy >= 20);
	stop(pid);
	keeper_fds_close(&fds);
}

/* front floods AUTH (every answer immediate: the login is locked) and
 * reads none of the answers: key operations are still served at once. */
static void
test_auth_flood_tls(void **state)
{
	static struct proc_msg m;
	struct keeper_fds fds;
	uint8_t p[64], h32[32] = { 9 };
	gnutls_datum_t sig;
	struct timespec t0, t1;
	long n;
	int sent = 0;
	pid_t pid;

	keeper_set_lockout(1, 1000, 3600);
	pid = spawn("ec256", &fds);
	keeper_set_lockout(KEEPER_LOCK_LOGIN_MAX, KEEPER_LOCK_PEER_MAX, KEEPER_LOCK_WINDOW);
	n = keeper_auth_req_encode(p, sizeof(p), "bob", "wrong", 5, NULL);
	raw_auth(fds.auth_fd, 1, p, (size_t)n, KEEPER_AUTH_FAIL);
	raw_auth(fds.auth_fd, 2, p, (size_t)n, KEEPER_AUTH_LOCKED);
	/* until the socket is full: the keeper stops reading once the answers
	 * front does not take have filled its queue for the slot */
	sent = flood_auth(fds.auth_fd, p, (size_t)n, 3);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(raw_tls(fds.tls_fd, 1, KEEPER_OP_SIGN_HASH, GNUTLS_SIGN_ECDSA_SHA256, 0,
	    h32, 32, &sig), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	gnutls_free(sig.data);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 2000);
	/* and every AUTH answer arrives, once, when front reads again (two
	 * workers send them: not necessarily in order) */
	{
		uint8_t *seen = calloc((size_t)sent, 1);
		int got = 0;

		assert_non_null(seen);
		while (got < sent) {
			struct pollfd pfd = { fds.auth_fd, POLLIN, 0 };

			assert_int_equal(poll(&pfd, 1, 10000), 1);
			assert_int_equal(proc_recv(fds.auth_fd, &m, NULL), 1);
			assert_true(m.id >= 3 && m.id < (uint32_t)sent + 3);
			assert_int_equal(seen[m.id - 3], 0);
			seen[m.id - 3] = 1;
			assert_int_equal(rep_result(&m, NULL), KEEPER_AUTH_LOCKED);
			got++;
		}
		free(seen);
	}
	stop(pid);
	keeper_fds_close(&fds);
}

/* ---- several client slots (one per front worker) ---- */

/* Two clients in two slots work side by side; a third slot floods checks
 * without reading: they wait (within [limits] auth-queue, none is BUSY),
 * and its queue does not delay the others (workers take the slots in
 * turn). */
static void
test_slots(void **state)
{
	static struct proc_msg m;
	struct event_base *base = event_base_new();
	struct keeper_fds fds[3];
	struct keeper_client *kc0, *kc1;
	struct ares r0 = { 0, -9, 0 }, r1 = { 0, -9, 0 };
	gnutls_privkey_t k0, k1;
	gnutls_datum_t data = { (unsigned char *)"x", 1 }, sig = { NULL, 0 };
	uint8_t p[128];
	char err[256], login[32];
	int i, busy = 0, answered = 0, flood = 40, st;
	struct config *cfg = make_config_with("ec256", passwd_path, "workers = 2\n",
	    "auth-queue = 64\n");
	pid_t pid = spawn_cfg(cfg, 3, fds);

	config_free(&cfg);
	dead_calls = 0;
	for (i = 0; i < 3; i++) {
		assert_true(fds[i].tls_fd >= 0 && fds[i].auth_fd >= 0);
		assert_int_equal(fds[i].pk_algo, GNUTLS_PK_ECDSA);
		assert_int_equal(fds[i].spki_len, fds[0].spki_len);
	}
	kc0 = keeper_client_new(base, &fds[0], 64, on_dead, NULL);
	kc1 = keeper_client_new(base, &fds[1], 64, on_dead, NULL);
	assert_int_equal(keeper_tls_privkey(kc0, &k0, err, sizeof(err)), 0);
	assert_int_equal(keeper_tls_privkey(kc1, &k1, err, sizeof(err)), 0);
	/* slot 2 floods: every check runs Argon2id (distinct logins, no peer) */
	for (i = 0; i < flood; i++) {
		long n;

		snprintf(login, sizeof(login), "ghost%d", i);
		n = keeper_auth_req_encode(p, sizeof(p), login, "boo", 3, NULL);
		assert_int_equal(proc_send(fds[2].auth_fd, PROC_AUTH_REQ, (uint32_t)i + 1, p,
		    (size_t)n, -1), 0);
	}
	/* the others are served meanwhile */
	assert_int_equal(gnutls_privkey_sign_data2(k0, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &sig),
	    0);
	gnutls_free(sig.data);
	assert_int_equal(gnutls_privkey_sign_data2(k1, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &sig),
	    0);
	gnutls_free(sig.data);
	assert_non_null(keeper_auth(kc0, "alice", "al\0ce\xff", 6, "192.0.2.1", on_auth, &r0));
	assert_non_null(keeper_auth(kc1, "bob", "bobpw", 5, "192.0.2.2", on_auth, &r1));
	run_until(base, &r0.done, 1);
	run_until(base, &r1.done, 1);
	assert_int_equal(r0.result, KEEPER_AUTH_OK);
	assert_int_equal(r1.result, KEEPER_AUTH_OK);
	/* by now slot 2 has had only a few of its checks answered: the
	 * workers took the slots in turn, not slot 2's queue first */
	{
		struct pollfd pfd = { fds[2].auth_fd, POLLIN, 0 };

		while (poll(&pfd, 1, 0) == 1) {
			assert_int_equal(proc_recv(fds[2].auth_fd, &m, NULL), 1);
			if (rep_result(&m, NULL) == KEEPER_AUTH_BUSY)
				busy++;
			else
				answered++;
		}
		assert_true(answered < flood / 2);
		/* and none was refused: they wait their turn */
		assert_int_equal(busy, 0);
	}
	/* one slot closed: the keeper serves the rest */
	gnutls_privkey_deinit(k0);
	keeper_client_free(&kc0);
	memset(&r1, 0, sizeof(r1));
	assert_non_null(keeper_auth(kc1, "bob", "bobpw", 5, NULL, on_auth, &r1));
	run_until(base, &r1.done, 1);
	assert_int_equal(r1.result, KEEPER_AUTH_OK);
	assert_int_equal(gnutls_privkey_sign_data2(k1, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &sig),
	    0);
	gnutls_free(sig.data);
	assert_int_equal(waitpid(pid, &st, WNOHANG), 0);
	/* the last one closed: it exits, cleanly */
	gnutls_privkey_deinit(k1);
	keeper_client_free(&kc1);
	keeper_fds_close(&fds[2]);
	st = reap(pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(dead_calls, 0);
	event_base_free(base);
}

/* A slot whose front reads none of its answers is no longer read; another
 * slot's key operations and checks are answered meanwhile. */
static void
test_slot_not_reading(void **state)
{
	struct keeper_fds fds[2];
	uint8_t p[64], h32[32] = { 9 };
	gnutls_datum_t sig;
	long n;
	pid_t pid;

	keeper_set_lockout(1, 1000, 3600);
	pid = spawn_slots("ec256", 2, fds);
	keeper_set_lockout(KEEPER_LOCK_LOGIN_MAX, KEEPER_LOCK_PEER_MAX, KEEPER_LOCK_WINDOW);
	n = keeper_auth_req_encode(p, sizeof(p), "bob", "wrong", 5, NULL);
	raw_auth(fds[0].auth_fd, 1, p, (size_t)n, KEEPER_AUTH_FAIL);
	/* slot 0: locked answers, never read, until its socket is full */
	flood_auth(fds[0].auth_fd, p, (size_t)n, 2);
	/* slot 1 is served */
	n = keeper_auth_req_encode(p, sizeof(p), "alice", "al\0ce\xff", 6, NULL);
	raw_auth(fds[1].auth_fd, 7, p, (size_t)n, KEEPER_AUTH_OK);
	assert_int_equal(raw_tls(fds[1].tls_fd, 8, KEEPER_OP_SIGN_HASH, GNUTLS_SIGN_ECDSA_SHA256,
	    0, h32, 32, &sig), 0);
	gnutls_free(sig.data);
	stop(pid);
	keeper_fds_close(&fds[0]);
	keeper_fds_close(&fds[1]);
}

/* ---- the pure codecs ---- */

static void
test_codecs(void **state)
{
	uint8_t buf[4096], big[KEEPER_SIGN_DATA_MAX + 2];
	char login[PASSWD_LOGIN_MAX + 2], peer[KEEPER_PEER_MAX + 2], pw[KEEPER_PW_MAX + 1];
	struct keeper_auth_fields af;
	struct keeper_tls_fields tf, tf2;
	struct keeper_fds fds;
	struct proc_writer w;
	long n;
	size_t i;

	memset(login, 'l', sizeof(login));
	login[PASSWD_LOGIN_MAX] = '\0';
	memset(peer, 'p', sizeof(peer));
	peer[KEEPER_PEER_MAX] = '\0';
	memset(pw, 0, sizeof(pw));
	n = keeper_auth_req_encode(buf, sizeof(buf), login, pw, KEEPER_PW_MAX, peer);
	assert_true(n > 0);
	assert_int_equal(keeper_auth_req_decode(buf, (size_t)n, &af), 0);
	assert_string_equal(af.login, login);
	assert_string_equal(af.peer, peer);
	assert_int_equal(af.pwlen, KEEPER_PW_MAX);
	assert_memory_equal(af.pw, pw, KEEPER_PW_MAX);
	/* every truncation and any extension fails */
	for (i = 0; i < (size_t)n; i++)
		assert_int_equal(keeper_auth_req_decode(buf, i, &af), -1);
	assert_int_equal(keeper_auth_req_decode(buf, (size_t)n + 1, &af), -1);
	/* limits, one over */
	assert_int_equal(keeper_auth_req_encode(buf, sizeof(buf), login, pw, KEEPER_PW_MAX + 1,
	    peer), -1);
	login[PASSWD_LOGIN_MAX] = 'l';
	login[PASSWD_LOGIN_MAX + 1] = '\0';
	assert_int_equal(keeper_auth_req_encode(buf, sizeof(buf), login, pw, 1, peer), -1);
	peer[KEEPER_PEER_MAX] = 'p';
	peer[KEEPER_PEER_MAX + 1] = '\0';
	assert_int_equal(keeper_auth_req_encode(buf, sizeof(buf), "a", pw, 1, peer), -1);
	assert_int_equal(keeper_auth_req_encode(buf, sizeof(buf), "a", pw, 1, "a b"), -1);
	assert_int_equal(keeper_auth_req_encode(buf, sizeof(buf), "a", pw, 1, "\x80"), -1);
	assert_int_equal(keeper_auth_req_encode(buf, 10, "a", pw, 1, ""), -1);
	assert_int_equal(keeper_auth_req_encode(buf, sizeof(buf), "a", NULL, 0, NULL), 13);
	/* the same over-limit fields, hand-written, do not decode */
	proc_writer_init(&w, buf, sizeof(buf));
	proc_put_bytes(&w, login, PASSWD_LOGIN_MAX + 1);
	proc_put_bytes(&w, pw, 1);
	proc_put_str(&w, "");
	assert_int_equal(keeper_auth_req_decode(buf, (size_t)proc_writer_done(&w), &af), -1);
	proc_writer_init(&w, buf, sizeof(buf));
	proc_put_str(&w, "a");
	proc_put_bytes(&w, pw, 1);
	proc_put_bytes(&w, peer, KEEPER_PEER_MAX + 1);
	assert_int_equal(keeper_auth_req_decode(buf, (size_t)proc_writer_done(&w), &af), -1);

	/* TLS requests */
	memset(big, 0xab, sizeof(big));
	tf.op = KEEPER_OP_SIGN_DATA;
	tf.algo = GNUTLS_SIGN_EDDSA_ED25519;
	tf.flags = 0x80;
	tf.data = big;
	tf.len = KEEPER_SIGN_DATA_MAX;
	{
		static uint8_t tb[KEEPER_SIGN_DATA_MAX + 64];

		n = keeper_tls_req_encode(tb, sizeof(tb), &tf);
		assert_int_equal(n, 13 + KEEPER_SIGN_DATA_MAX);
		assert_int_equal(keeper_tls_req_decode(tb, (size_t)n, &tf2), 0);
		assert_int_equal(tf2.op, tf.op);
		assert_int_equal(tf2.algo, tf.algo);
		assert_int_equal(tf2.flags, tf.flags);
		assert_int_equal(tf2.len, tf.len);
		assert_memory_equal(tf2.data, big, tf.len);
		for (i = 0; i < (size_t)n; i += 97)
			assert_int_equal(keeper_tls_req_decode(tb, i, &tf2), -1);
		assert_int_equal(keeper_tls_req_decode(tb, (size_t)n - 1, &tf2), -1);
		tf.len++;
		assert_int_equal(keeper_tls_req_encode(tb, sizeof(tb), &tf), -1);
		tf.len = 0;
		assert_int_equal(keeper_tls_req_encode(tb, sizeof(tb), &tf), -1);
		tf.len = 1;
		tf.op = 0;
		assert_int_equal(keeper_tls_req_encode(tb, sizeof(tb), &tf), -1);
		tf.op = 3;
		assert_int_equal(keeper_tls_req_encode(tb, sizeof(tb), &tf), -1);
		tf.op = KEEPER_OP_SIGN_HASH;
		assert_int_equal(keeper_tls_req_encode(tb, sizeof(tb), &tf), 14);
		tb[0] = 3;
		assert_int_equal(keeper_tls_req_decode(tb, 14, &tf2), -1);
		tb[0] = 0;
		assert_int_equal(keeper_tls_req_decode(tb, 14, &tf2), -1);
		tb[0] = KEEPER_OP_SIGN_HASH;
		assert_int_equal(keeper_tls_req_decode(tb, 14, &tf2), 0);
		tb[12] = 0;     /* length 0 */
		assert_int_equal(keeper_tls_req_decode(tb, 13, &tf2), -1);
	}

	/* READY */
	proc_writer_init(&w, buf, sizeof(buf));
	proc_put_u32(&w, 3);
	proc_put_str(&w, "ready");
	proc_put_u32(&w, GNUTLS_PK_RSA);
	proc_put_u32(&w, 3072);
	proc_put_bytes(&w, "\x30\x82", 2);
	n = proc_writer_done(&w);
	memset(&fds, 0, sizeof(fds));
	assert_int_equal(keeper_ready_decode(buf, (size_t)n, &fds), 0);
	assert_int_equal(fds.npasswd, 3);
	assert_int_equal(fds.pk_algo, GNUTLS_PK_RSA);
	assert_int_equal(fds.bits, 3072);
	assert_int_equal(fds.spki_len, 2);
	for (i = 0; i < (size_t)n; i++)
		assert_int_equal(keeper_ready_decode(buf, i, &fds), -1);
	buf[n - 3] = 0;     /* empty SPKI */
	assert_int_equal(keeper_ready_decode(buf, (size_t)n - 2, &fds), -1);

	assert_string_equal(keeper_auth_result_name(KEEPER_AUTH_LOCKED), "locked");
	assert_string_equal(keeper_auth_result_name(KEEPER_DEAD), "keeper-dead");
	assert_string_equal(keeper_auth_result_name(99), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codecs),
		cmocka_unit_test(test_auth_results),
		cmocka_unit_test(test_auth_in_flight),
		cmocka_unit_test(test_tls_handshakes),
		cmocka_unit_test(test_key_cert_mismatch),
		cmocka_unit_test(test_refuses),
		cmocka_unit_test(test_lockout),
		cmocka_unit_test(test_keeper_killed),
		cmocka_unit_test(test_keeper_killed_tls_first),
		cmocka_unit_test(test_tls_stale_reply),
		cmocka_unit_test(test_hostile_front),
		cmocka_unit_test(test_busy),
		cmocka_unit_test(test_auth_flood_tls),
		cmocka_unit_test(test_slots),
		cmocka_unit_test(test_slot_not_reading),
	};

	signal(SIGPIPE, SIG_IGN);
	if (getenv("KEEPER_TEST") != NULL)      /* run one: KEEPER_TEST=test_busy */
		cmocka_set_test_filter(getenv("KEEPER_TEST"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
