/* test_tls.c — session tickets on the server side (tls.h): a resumed
 * handshake makes no private-key operation; tickets of another master, of an
 * ended period or past their lifetime are refused; two processes started
 * from one master accept each other's tickets after the ratchet moved on.
 * On the client side (the relay leg): a kept session resumes, and a resumed
 * session shows the chain of its full handshake to DANE, which matches it
 * against the records given now.  The default priority picks the cheapest
 * of equal suites and groups whatever the client prefers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <sodium.h>

#include "config.h"
#include "tls.h"

static char dir[64], certfile[96];
static gnutls_privkey_t real_key;       /* the key the counting key signs with */
static uint8_t spki[1024];
static size_t spki_len;
static int signatures;                  /* private-key operations so far */
static time_t fake_now;
static gnutls_certificate_credentials_t cc;     /* the client's: no trust, no key */

static time_t
fake_clock(time_t *t)
{
	if (t != NULL)
		*t = fake_now;
	return fake_now;
}

/* ---- a key that counts its operations (stands in for the keeper's) ---- */

static int
count_sign_hash(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata,
    unsigned int flags, const gnutls_datum_t *hash, gnutls_datum_t *sig)
{
	signatures++;
	return gnutls_privkey_sign_hash2(real_key, algo, flags, hash, sig);
}

static int
count_sign_data(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata,
    unsigned int flags, const gnutls_datum_t *data, gnutls_datum_t *sig)
{
	signatures++;
	return gnutls_privkey_sign_data2(real_key, algo, flags, data, sig);
}

static int
count_info(gnutls_privkey_t key, unsigned int flags, void *userdata)
{
	if (flags & GNUTLS_PRIVKEY_INFO_HAVE_SIGN_ALGO)
		return gnutls_sign_supports_pk_algorithm(
		    (gnutls_sign_algorithm_t)GNUTLS_FLAGS_TO_SIGN_ALGO(flags), GNUTLS_PK_ECDSA);
	if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO)
		return GNUTLS_PK_ECDSA;
	if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO_BITS)
		return 256;
	return -1;
}

static struct tls_server *
server_new_prio(const char *priority)
{
	gnutls_privkey_t k;
	struct tls_server *ts;
	char err[256];

	assert_int_equal(gnutls_privkey_init(&k), 0);
	assert_int_equal(gnutls_privkey_import_ext4(k, NULL, count_sign_data, count_sign_hash,
	    NULL, NULL, count_info, 0), 0);
	ts = tls_server_new_key(certfile, k, spki, spki_len, priority, err, sizeof(err));
	if (ts == NULL)
		fail_msg("tls_server_new_key: %s", err);
	return ts;
}

static struct tls_server *
server_new(void)
{
	return server_new_prio("NORMAL");
}

/* ---- one connection: client and server over a socketpair ---- */

static const char *const prio[] = {
	"NORMAL:-VERS-ALL:+VERS-TLS1.3", "NORMAL:-VERS-ALL:+VERS-TLS1.2"
};

/* The peer is another process: wait (at most 10 s) for its bytes rather
 * than spin, which a loaded machine turned into a failure (the other process
 * was not scheduled within 10,000 turns). */
static void
wait_peer(gnutls_session_t s)
{
	struct pollfd p = { gnutls_transport_get_int(s), POLLIN, 0 };

	(void)poll(&p, 1, 10000);
}

/* Handshake to the end, then the server sends one octet (which also carries
 * a TLS 1.3 ticket to the client).  cs or ss NULL: that side is driven by
 * another process; else both alternately here. */
static void
drive(gnutls_session_t cs, gnutls_session_t ss)
{
	int cdone = cs == NULL, sdone = ss == NULL, i, r;
	char c;

	for (i = 0; i < 10000 && !(cdone && sdone); i++) {
		if (i > 0 && (cs == NULL || ss == NULL))
			wait_peer(cs != NULL ? cs : ss);
		if (!cdone && (r = gnutls_handshake(cs)) != GNUTLS_E_AGAIN) {
			if (r < 0)
				fail_msg("client handshake: %s", gnutls_strerror(r));
			cdone = 1;
		}
		if (!sdone && (r = gnutls_handshake(ss)) != GNUTLS_E_AGAIN) {
			if (r < 0)
				fail_msg("server handshake: %s", gnutls_strerror(r));
			sdone = 1;
		}
	}
	assert_true(cdone && sdone);
	if (ss != NULL)
		assert_int_equal(gnutls_record_send(ss, "x", 1), 1);
	if (cs != NULL) {
		for (i = 0; i < 10000 && (r = (int)gnutls_record_recv(cs, &c, 1)) ==
		    GNUTLS_E_AGAIN; i++)
			if (ss == NULL)
				wait_peer(cs);
		assert_int_equal(r, 1);
	}
}

static gnutls_session_t
client_session(int fd, int v, const gnutls_datum_t *resume)
{
	gnutls_session_t cs;

	assert_int_equal(gnutls_init(&cs, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
	assert_int_equal(gnutls_priority_set_direct(cs, prio[v], NULL), 0);
	assert_int_equal(gnutls_credentials_set(cs, GNUTLS_CRD_CERTIFICATE, cc), 0);
	assert_int_equal(gnutls_server_name_set(cs, GNUTLS_NAME_DNS, "mail.lab.test", 13), 0);
	if (resume != NULL && resume->size > 0)
		assert_int_equal(gnutls_session_set_data(cs, resume->data, resume->size), 0);
	gnutls_transport_set_int(cs, fd);
	return cs;
}

/* Client's resumption data after the connection (gnutls_free). */
static void
client_take(gnutls_session_t cs, gnutls_datum_t *out)
{
	/* TLS 1.3: the ticket came with the server's octet */
	if (gnutls_protocol_get_version(cs) == GNUTLS_TLS1_3)
		assert_true(gnutls_session_get_flags(cs) & GNUTLS_SFLAGS_SESSION_TICKET);
	assert_int_equal(gnutls_session_get_data2(cs, out), 0);
}

/* One connection to ts with TLS version v (0: 1.3, 1: 1.2), offering
 * *ticket when it holds one, which is replaced by the new one.  Returns
 * whether the server resumed. */
static int
connect_once(struct tls_server *ts, int v, gnutls_datum_t *ticket)
{
	gnutls_session_t cs, ss;
	int sv[2], resumed;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	cs = client_session(sv[0], v, ticket);
	ss = tls_server_session(ts);
	gnutls_transport_set_int(ss, sv[1]);
	drive(cs, ss);
	resumed = gnutls_session_is_resumed(ss);
	assert_int_equal(gnutls_session_is_resumed(cs), resumed);
	gnutls_free(ticket->data);
	client_take(cs, ticket);
	gnutls_deinit(cs);
	gnutls_deinit(ss);
	close(sv[0]);
	close(sv[1]);
	return resumed;
}

/* ---- tests ---- */

static void
test_resumed_handshake_signs_nothing(void **state)
{
	struct tls_server *ts = server_new();
	gnutls_datum_t t = { NULL, 0 };
	int v, i, before;

	for (v = 0; v < 2; v++) {
		before = signatures;
		assert_false(connect_once(ts, v, &t));
		assert_int_equal(signatures, before + 1);
		for (i = 0; i < 3; i++) {
			assert_true(connect_once(ts, v, &t));
			assert_int_equal(signatures, before + 1);
		}
		gnutls_free(t.data);
		t.data = NULL;
		t.size = 0;
	}
	tls_server_free(&ts);
}

/* Tickets of both versions issued, then change(), then both refused (a
 * full handshake, whose new ticket then works). */
static void
refused_after(void (*change)(void))
{
	struct tls_server *ts = server_new();
	gnutls_datum_t t[2] = { { NULL, 0 }, { NULL, 0 } };
	int v;

	for (v = 0; v < 2; v++)
		assert_false(connect_once(ts, v, &t[v]));
	change();
	for (v = 0; v < 2; v++) {
		assert_false(connect_once(ts, v, &t[v]));
		assert_true(connect_once(ts, v, &t[v]));
		gnutls_free(t[v].data);
	}
	tls_server_free(&ts);
}

static void
test_ticket_of_another_master_refused(void **state)
{
	refused_after(tls_tickets_init);        /* a restart, a new generation, another host */
}

static void
next_second(void)
{
	fake_now++;
}

static void
test_ticket_dies_with_its_period(void **state)
{
	/* issued at the last second of a period, offered at the first of the next */
	fake_now = (fake_now / TLS_TICKET_PERIOD + 1) * TLS_TICKET_PERIOD - 1;
	refused_after(next_second);
}

static void
test_tls12_ticket_lifetime(void **state)
{
	struct tls_server *ts = server_new();
	gnutls_datum_t t = { NULL, 0 };

	/* at the start of a period, so that the lifetime ends inside it */
	fake_now = (fake_now / TLS_TICKET_PERIOD + 1) * TLS_TICKET_PERIOD;
	assert_false(connect_once(ts, 1, &t));
	fake_now += TLS_TICKET_LIFETIME;
	assert_true(connect_once(ts, 1, &t));   /* at the end of its lifetime: still good */
	fake_now += TLS_TICKET_LIFETIME + 1;
	assert_false(connect_once(ts, 1, &t));
	gnutls_free(t.data);
	tls_server_free(&ts);
}

/* A worker forked from the parent's master, periods later, and another one
 * forked at the same time agree: the ratchet is the same chain. */
static void
test_workers_share_the_ratchet(void **state)
{
	struct tls_server *ts = server_new();
	gnutls_datum_t t = { NULL, 0 };
	gnutls_session_t cs, ss;
	int sv[2], status, r;
	pid_t pid;
	char c;

	tls_tickets_init();
	fake_now += 5 * TLS_TICKET_PERIOD;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the other worker: ratchets five periods, issues a ticket */
		close(sv[0]);
		ss = tls_server_session(ts);
		gnutls_transport_set_int(ss, sv[1]);
		while ((r = gnutls_handshake(ss)) == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
			;
		if (r < 0 || gnutls_record_send(ss, "x", 1) != 1)
			_exit(1);
		(void)gnutls_record_recv(ss, &c, 1);       /* until the client closes */
		_exit(0);
	}
	close(sv[1]);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	cs = client_session(sv[0], 0, NULL);
	drive(cs, NULL);
	client_take(cs, &t);
	gnutls_deinit(cs);
	close(sv[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* this process still holds the master of five periods ago */
	assert_true(connect_once(ts, 0, &t));
	gnutls_free(t.data);
	tls_server_free(&ts);
}

/* One connection of our relay-leg client (tls_client_session) to ts,
 * offering *ticket; DANE-checked against `rrs`.  TLS 1.3: no ticket can be
 * taken before the first record is read.  *ticket becomes the new one. */
static enum dane_verdict
client_once(struct tls_server *ts, int v, struct tls_ticket **ticket,
    const struct dane_tlsa *rrs, int *resumed_r)
{
	static const char *const names[] = { "mail.lab.test" };
	struct tls_client *tc;
	gnutls_session_t cs, ss;
	char err[256], why[256];
	int sv[2], i, rc = GNUTLS_E_AGAIN, rs = GNUTLS_E_AGAIN;
	enum dane_verdict verdict;
	char c;

	tc = tls_client_new(prio[v], err, sizeof(err));
	if (tc == NULL)
		fail_msg("tls_client_new: %s", err);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	cs = tls_client_session(tc, "mail.lab.test", *ticket);
	gnutls_transport_set_int(cs, sv[0]);
	ss = tls_server_session(ts);
	gnutls_transport_set_int(ss, sv[1]);
	for (i = 0; i < 10000 && (rc == GNUTLS_E_AGAIN || rs == GNUTLS_E_AGAIN); i++) {
		if (rc == GNUTLS_E_AGAIN)
			rc = gnutls_handshake(cs);
		if (rs == GNUTLS_E_AGAIN)
			rs = gnutls_handshake(ss);
	}
	assert_int_equal(rc, GNUTLS_E_SUCCESS);
	assert_int_equal(rs, GNUTLS_E_SUCCESS);
	if (v == 0)
		assert_null(tls_ticket_take(cs));
	*resumed_r = tls_session_resumed(cs);
	assert_true(tls_peer_ncerts(cs) >= 1);
	verdict = tls_peer_dane(cs, rrs, 1, names, 1, NULL, why, sizeof(why));
	assert_int_equal(gnutls_record_send(ss, "x", 1), 1);
	for (i = 0; i < 10000 && (rc = (int)gnutls_record_recv(cs, &c, 1)) == GNUTLS_E_AGAIN; i++)
		;
	assert_int_equal(rc, 1);
	tls_ticket_free(ticket);
	assert_non_null(*ticket = tls_ticket_take(cs));
	gnutls_deinit(cs);
	gnutls_deinit(ss);
	close(sv[0]);
	close(sv[1]);
	tls_client_free(&tc);
	return verdict;
}

static void
test_client_resumes_and_dane_sees_the_chain(void **state)
{
	struct tls_server *ts = server_new();
	struct tls_ticket *t = NULL;
	struct dane_tlsa good, other;
	struct dane_cert leaf;
	const char *why = NULL;
	char rec[160];
	int v, resumed;

	assert_int_equal(tls_server_leaf(ts, &leaf), 0);
	assert_int_equal(dane_record_for_cert(&leaf, 3, 1, 1, rec, sizeof(rec)), 0);
	assert_int_equal(dane_tlsa_parse_text(rec, &good, &why), 0);
	assert_int_equal(dane_tlsa_parse_text("3 1 1 "
	    "0000000000000000000000000000000000000000000000000000000000000000", &other, &why), 0);
	for (v = 0; v < 2; v++) {
		assert_int_equal(client_once(ts, v, &t, &good, &resumed), DANE_OK_EE);
		assert_false(resumed);
		/* resumed: the certificate comes from the session data, and is
		 * matched against the records of now, good or not */
		assert_int_equal(client_once(ts, v, &t, &good, &resumed), DANE_OK_EE);
		assert_true(resumed);
		assert_int_equal(client_once(ts, v, &t, &other, &resumed), DANE_MISMATCH);
		assert_true(resumed);
		tls_ticket_free(&t);
		assert_null(t);
	}
	dane_tlsa_clear(&good);
	dane_tlsa_clear(&other);
	tls_server_free(&ts);
}

static int retries;              /* HelloRetryRequests a client received */

static int
count_hrr(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
    const gnutls_datum_t *msg)
{
	if (htype == GNUTLS_HANDSHAKE_HELLO_RETRY_REQUEST && incoming)
		retries++;
	return 0;
}

/* The default [tls] priority chooses by its own order: a client that
 * prefers AES-256-GCM and P-384 (as OpenSSL's and GnuTLS's defaults prefer
 * AES-256-GCM) gets AES-128-GCM and X25519, in TLS 1.3 and 1.2, without a
 * HelloRetryRequest when it sent an X25519 share. */
static void
test_default_priority_prefers_the_cheapest(void **state)
{
	static const char *const cprio[] = {
		"NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-SECP384R1:+GROUP-X25519",
		"NORMAL:-VERS-ALL:+VERS-TLS1.2:-GROUP-ALL:+GROUP-SECP384R1:+GROUP-X25519",
	};
	struct tls_server *ts = server_new_prio(CONFIG_TLS_PRIORITY);
	gnutls_session_t cs, ss;
	int sv[2], v;

	for (v = 0; v < 2; v++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
		cs = client_session(sv[0], v, NULL);
		assert_int_equal(gnutls_priority_set_direct(cs, cprio[v], NULL), 0);
		gnutls_handshake_set_hook_function(cs, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_POST,
		    count_hrr);
		ss = tls_server_session(ts);
		gnutls_transport_set_int(ss, sv[1]);
		drive(cs, ss);
		assert_int_equal(gnutls_cipher_get(ss), GNUTLS_CIPHER_AES_128_GCM);
		assert_int_equal(gnutls_group_get(ss), GNUTLS_GROUP_X25519);
		assert_int_equal(retries, 0);
		gnutls_deinit(cs);
		gnutls_deinit(ss);
		close(sv[0]);
		close(sv[1]);
	}
	tls_server_free(&ts);
}

/* ---- fixtures ---- */

static int
setup(void **state)
{
	gnutls_x509_privkey_t k;
	gnutls_x509_crt_t crt;
	gnutls_pubkey_t pub;
	gnutls_datum_t pem;
	unsigned char serial[1] = { 9 };
	FILE *f;

	assert_true(sodium_init() >= 0);
	tls_init();
	fake_now = time(NULL);
	tls_set_clock(fake_clock);
	snprintf(dir, sizeof(dir), "/tmp/test_tls.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(certfile, sizeof(certfile), "%s/cert.pem", dir);
	assert_int_equal(gnutls_x509_privkey_init(&k), 0);
	assert_int_equal(gnutls_x509_privkey_generate(k, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
	assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(crt, fake_now - 3600), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, fake_now + 86400 * 30), 0);
	assert_int_equal(gnutls_x509_crt_set_dn(crt, "CN=mail.lab.test", NULL), 0);
	assert_int_equal(gnutls_x509_crt_set_key(crt, k), 0);
	assert_int_equal(gnutls_x509_crt_sign2(crt, crt, k, GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem), 0);
	assert_non_null(f = fopen(certfile, "w"));
	assert_int_equal(fwrite(pem.data, 1, pem.size, f), pem.size);
	assert_int_equal(fclose(f), 0);
	gnutls_free(pem.data);
	assert_int_equal(gnutls_pubkey_init(&pub), 0);
	assert_int_equal(gnutls_pubkey_import_x509(pub, crt, 0), 0);
	spki_len = sizeof(spki);
	assert_int_equal(gnutls_pubkey_export(pub, GNUTLS_X509_FMT_DER, spki, &spki_len), 0);
	gnutls_pubkey_deinit(pub);
	assert_int_equal(gnutls_privkey_init(&real_key), 0);
	assert_int_equal(gnutls_privkey_import_x509(real_key, k, GNUTLS_PRIVKEY_IMPORT_COPY), 0);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(k);
	assert_int_equal(gnutls_certificate_allocate_credentials(&cc), 0);
	tls_tickets_init();
	return 0;
}

static int
teardown(void **state)
{
	unlink(certfile);
	rmdir(dir);
	gnutls_privkey_deinit(real_key);
	gnutls_certificate_free_credentials(cc);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resumed_handshake_signs_nothing),
		cmocka_unit_test(test_ticket_of_another_master_refused),
		cmocka_unit_test(test_ticket_dies_with_its_period),
		cmocka_unit_test(test_tls12_ticket_lifetime),
		cmocka_unit_test(test_workers_share_the_ratchet),
		cmocka_unit_test(test_client_resumes_and_dane_sees_the_chain),
		cmocka_unit_test(test_default_priority_prefers_the_cheapest),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
