/* tls.c — GnuTLS credentials, sessions and DANE verification of peers. */
#include "tls.h"
#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <event2/event.h>
#include <sodium.h>


struct tls_server {
	gnutls_certificate_credentials_t creds;
	gnutls_priority_t prio;
	gnutls_datum_t chain[TLS_CHAIN_MAX];  /* DER, leaf first, gnutls_free */
	size_t nchain;
	gnutls_pcert_st *pcerts;        /* array given to the credentials (its entries are theirs) */
};

struct tls_client {
	gnutls_certificate_credentials_t creds;
	gnutls_priority_t prio;
};

/* The ticket master of this generation (tls.h); inherited across fork. */
static struct {
	uint8_t *key;                   /* TLS_TICKET_KEY_SIZE, sodium_malloc; NULL: no tickets */
	uint64_t period;                /* the period key belongs to */
} tickets;

static time_t (*tls_clock)(time_t *) = time;

void
tls_init(void)
{
	static int done;

	if (!done) {
		if (gnutls_global_init() < 0)
			fatal("gnutls_global_init failed");
		done = 1;
	}
}

static int
tls_make_priority(const char *priority, gnutls_priority_t *out, char *err, size_t errlen)
{
	char *s = xasprintf("%s%s", priority, TLS_PRIORITY_FLOOR);
	const char *pos = NULL;
	int r = gnutls_priority_init(out, s, &pos);

	if (r < 0)
		snprintf(err, errlen, "TLS priority string is invalid near \"%.40s\": %s",
		    pos ? pos : "", gnutls_strerror(r));
	free(s);
	return r < 0 ? -1 : 0;
}

struct tls_server *
tls_server_new(const char *cert_file, const char *key_file, const char *priority,
    char *err, size_t errlen)
{
	struct tls_server *ts = xcalloc(1, sizeof(*ts));
	gnutls_x509_crt_t *crts = NULL;
	unsigned ncrts = 0, i;
	int r;

	tls_init();
	if (gnutls_certificate_allocate_credentials(&ts->creds) < 0)
		fatal("gnutls: out of memory");
	r = gnutls_certificate_set_x509_key_file2(ts->creds, cert_file, key_file,
	    GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0) {
		snprintf(err, errlen, "cannot load TLS certificate %s with key %s: %s "
		    "(expected a PEM chain, leaf first, and the leaf's unencrypted PEM private key)",
		    cert_file, key_file, gnutls_strerror(r));
		goto fail;
	}
	r = gnutls_certificate_get_x509_crt(ts->creds, 0, &crts, &ncrts);
	if (r < 0 || ncrts == 0) {
		snprintf(err, errlen, "cannot read back TLS certificate %s: %s", cert_file,
		    gnutls_strerror(r));
		goto fail;
	}
	r = 0;
	for (i = 0; i < ncrts; i++) {
		if (r >= 0 && i < TLS_CHAIN_MAX) {
			r = gnutls_x509_crt_export2(crts[i], GNUTLS_X509_FMT_DER, &ts->chain[i]);
			if (r >= 0)
				ts->nchain++;
		}
		gnutls_x509_crt_deinit(crts[i]);
	}
	gnutls_free(crts);
	if (r < 0) {
		snprintf(err, errlen, "cannot export TLS certificate: %s", gnutls_strerror(r));
		goto fail;
	}
	if (tls_make_priority(priority, &ts->prio, err, errlen) < 0)
		goto fail;
	return ts;
fail:
	tls_server_free(&ts);
	return NULL;
}

/* The SubjectPublicKeyInfo of a certificate, DER (gnutls_free). */
static int
cert_spki(const gnutls_datum_t *der, gnutls_datum_t *out)
{
	gnutls_x509_crt_t crt;
	gnutls_pubkey_t pk;
	int r;

	if (gnutls_x509_crt_init(&crt) < 0)
		return -1;
	if ((r = gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER)) >= 0 &&
	    (r = gnutls_pubkey_init(&pk)) >= 0) {
		if ((r = gnutls_pubkey_import_x509(pk, crt, 0)) >= 0)
			r = gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, out);
		gnutls_pubkey_deinit(pk);
	}
	gnutls_x509_crt_deinit(crt);
	return r < 0 ? -1 : 0;
}

struct tls_server *
tls_server_new_key(const char *cert_file, void *privkey, const uint8_t *spki, size_t spki_len,
    const char *priority, char *err, size_t errlen)
{
	struct tls_server *ts = xcalloc(1, sizeof(*ts));
	gnutls_pcert_st *pcerts = xcalloc(TLS_CHAIN_MAX, sizeof(*pcerts));
	gnutls_privkey_t key = privkey;
	gnutls_datum_t leaf_spki = { NULL, 0 };
	unsigned n = TLS_CHAIN_MAX, i;
	int r;

	tls_init();
	if (gnutls_certificate_allocate_credentials(&ts->creds) < 0)
		fatal("gnutls: out of memory");
	r = gnutls_pcert_list_import_x509_file(pcerts, &n, cert_file, GNUTLS_X509_FMT_PEM, NULL,
	    NULL, GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
	if (r < 0 || n == 0) {
		snprintf(err, errlen, "cannot load TLS certificate chain %s: %s (expected PEM "
		    "certificates, leaf first, at most %d)", cert_file, r < 0 ? gnutls_strerror(r) :
		    "empty", TLS_CHAIN_MAX);
		n = 0;
		goto fail_key;
	}
	for (i = 0; i < n; i++) {
		ts->chain[i].data = gnutls_malloc(pcerts[i].cert.size);
		memcpy(ts->chain[i].data, pcerts[i].cert.data, pcerts[i].cert.size);
		ts->chain[i].size = pcerts[i].cert.size;
		ts->nchain++;
	}
	/* the keeper's key must be the leaf's key */
	r = cert_spki(&pcerts[0].cert, &leaf_spki);
	if (r < 0 || leaf_spki.size != spki_len || memcmp(leaf_spki.data, spki, spki_len) != 0) {
		snprintf(err, errlen, "[tls] key does not belong to the first certificate of %s "
		    "(the leaf must come first, and the key must be its key)", cert_file);
		gnutls_free(leaf_spki.data);
		goto fail_key;
	}
	gnutls_free(leaf_spki.data);
	/* the credentials take the certificates and the key */
	if ((r = gnutls_certificate_set_key(ts->creds, NULL, 0, pcerts, (int)n, key)) < 0) {
		snprintf(err, errlen, "cannot use the TLS key: %s", gnutls_strerror(r));
		goto fail_key;
	}
	ts->pcerts = pcerts;    /* the array; its entries belong to the credentials */
	if (tls_make_priority(priority, &ts->prio, err, errlen) < 0)
		goto fail;
	return ts;
fail_key:
	/* on failure the certificates and the key are still ours */
	for (i = 0; i < n; i++)
		gnutls_pcert_deinit(&pcerts[i]);
	free(pcerts);
	gnutls_privkey_deinit(key);
fail:
	tls_server_free(&ts);
	return NULL;
}

void
tls_server_free(struct tls_server **tsp)
{
	struct tls_server *ts = *tsp;

	if (ts == NULL)
		return;
	*tsp = NULL;
	if (ts->creds)
		gnutls_certificate_free_credentials(ts->creds);
	if (ts->prio)
		gnutls_priority_deinit(ts->prio);
	while (ts->nchain > 0)
		gnutls_free(ts->chain[--ts->nchain].data);
	free(ts->pcerts);
	free(ts);
}

int
tls_server_leaf(const struct tls_server *ts, struct dane_cert *out)
{
	out->der = ts->chain[0].data;
	out->len = ts->chain[0].size;
	return 0;
}

size_t
tls_server_chain(const struct tls_server *ts, struct dane_cert *out, size_t max)
{
	size_t i;

	for (i = 0; i < ts->nchain && i < max; i++) {
		out[i].der = ts->chain[i].data;
		out[i].len = ts->chain[i].size;
	}
	return i;
}

void *
tls_server_session(struct tls_server *ts)
{
	gnutls_session_t s;

	if (gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0)
		fatal("gnutls_init failed");
	if (gnutls_priority_set(s, ts->prio) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, ts->creds) < 0)
		fatal("gnutls session setup failed");
	gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
	gnutls_handshake_set_timeout(s, 0);
	if (tickets.key != NULL) {
		gnutls_datum_t k = { tickets.key, TLS_TICKET_KEY_SIZE };

		tls_tickets_advance(tls_clock(NULL));
		/* before enabling: GnuTLS derives its period from the lifetime */
		gnutls_db_set_cache_expiration(s, TLS_TICKET_LIFETIME);
		if (gnutls_session_ticket_enable_server(s, &k) < 0)
			fatal("gnutls_session_ticket_enable_server failed");
	}
	return s;
}

static uint64_t
ticket_period(time_t now)
{
	return now > 0 ? (uint64_t)now / TLS_TICKET_PERIOD : 0;
}

void
tls_tickets_init(void)
{
	int r;

	tls_init();
	if (sodium_init() < 0)
		fatal("libsodium initialisation failed");
	if (tickets.key == NULL && (tickets.key = sodium_malloc(TLS_TICKET_KEY_SIZE)) == NULL)
		fatal("out of memory for the session ticket key");
	/* what gnutls_session_ticket_key_generate() does, without a copy on
	 * the heap */
	if ((r = gnutls_rnd(GNUTLS_RND_RANDOM, tickets.key, TLS_TICKET_KEY_SIZE)) < 0)
		fatal("cannot make the session ticket key: %s", gnutls_strerror(r));
	tickets.period = ticket_period(tls_clock(NULL));
}

void
tls_tickets_advance(time_t now)
{
	static const uint8_t label[] = "subproxy session ticket master, next period";
	uint64_t want = ticket_period(now);

	if (tickets.key == NULL)
		return;
	/* one BLAKE2b step per period: the same chain in every worker */
	while (tickets.period < want) {
		uint8_t next[TLS_TICKET_KEY_SIZE];

		if (crypto_generichash(next, sizeof(next), label, sizeof(label) - 1,
		    tickets.key, TLS_TICKET_KEY_SIZE) != 0)
			fatal("crypto_generichash failed");
		memcpy(tickets.key, next, sizeof(next));
		sodium_memzero(next, sizeof(next));
		tickets.period++;
	}
}

static void tickets_timer(evutil_socket_t fd, short what, void *arg);

static void
tickets_timer_add(struct event_base *base)
{
	time_t now = tls_clock(NULL);
	struct timeval tv;

	/* a second after the boundary, so that the new period has begun */
	tv.tv_sec = (time_t)((ticket_period(now) + 1) * TLS_TICKET_PERIOD) - now + 1;
	tv.tv_usec = 0;
	if (event_base_once(base, -1, EV_TIMEOUT, tickets_timer, base, &tv) != 0)
		fatal("cannot schedule the session ticket key rotation");
}

static void
tickets_timer(evutil_socket_t fd, short what, void *arg)
{
	tls_tickets_advance(tls_clock(NULL));
	tickets_timer_add(arg);
}

void
tls_tickets_schedule(struct event_base *base)
{
	if (tickets.key != NULL)
		tickets_timer_add(base);
}

void
tls_set_clock(time_t (*clock)(time_t *))
{
	tls_clock = clock;
	gnutls_global_set_time_function(clock);
}

struct tls_client *
tls_client_new(const char *priority, char *err, size_t errlen)
{
	struct tls_client *tc = xcalloc(1, sizeof(*tc));

	tls_init();
	if (gnutls_certificate_allocate_credentials(&tc->creds) < 0)
		fatal("gnutls: out of memory");
	if (tls_make_priority(priority, &tc->prio, err, errlen) < 0) {
		tls_client_free(&tc);
		return NULL;
	}
	return tc;
}

void
tls_client_free(struct tls_client **tcp)
{
	struct tls_client *tc = *tcp;

	if (tc == NULL)
		return;
	*tcp = NULL;
	if (tc->creds)
		gnutls_certificate_free_credentials(tc->creds);
	if (tc->prio)
		gnutls_priority_deinit(tc->prio);
	free(tc);
}

struct tls_ticket {
	gnutls_datum_t data;            /* gnutls_session_get_data2(), gnutls_free */
};

void *
tls_client_session(struct tls_client *tc, const char *sni, const struct tls_ticket *resume)
{
	gnutls_session_t s;
	int r;

	if (gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0)
		fatal("gnutls_init failed");
	if (gnutls_priority_set(s, tc->prio) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, tc->creds) < 0)
		fatal("gnutls session setup failed");
	if (sni != NULL && !is_ip_literal(sni))
		(void)gnutls_server_name_set(s, GNUTLS_NAME_DNS, sni, strlen(sni));
	/* data GnuTLS cannot use (expired, another version) gives a full
	 * handshake: nothing to do about it here */
	if (resume != NULL &&
	    (r = gnutls_session_set_data(s, resume->data.data, resume->data.size)) < 0)
		log_debug("tls: session data not usable: %s", gnutls_strerror(r));
	return s;
}

struct tls_ticket *
tls_ticket_take(void *session)
{
	gnutls_session_t s = session;
	struct tls_ticket *t;

	/* TLS 1.3: without a ticket, GnuTLS returns placeholder data that
	 * resumes nothing */
	if (gnutls_protocol_get_version(s) == GNUTLS_TLS1_3 &&
	    !(gnutls_session_get_flags(s) & GNUTLS_SFLAGS_SESSION_TICKET))
		return NULL;
	t = xcalloc(1, sizeof(*t));
	if (gnutls_session_get_data2(s, &t->data) < 0 || t->data.size == 0) {
		gnutls_free(t->data.data);
		free(t);
		return NULL;
	}
	return t;
}

void
tls_ticket_free(struct tls_ticket **tp)
{
	struct tls_ticket *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	if (t->data.data != NULL)
		sodium_memzero(t->data.data, t->data.size);
	gnutls_free(t->data.data);
	free(t);
}

int
tls_session_resumed(void *session)
{
	return gnutls_session_is_resumed(session) != 0;
}

unsigned
tls_peer_ncerts(void *session)
{
	unsigned n = 0;

	if (gnutls_certificate_get_peers(session, &n) == NULL)
		return 0;
	return n;
}

enum dane_verdict
tls_peer_dane(void *session, const struct dane_tlsa *rrs, size_t nrrs,
    const char *const *names, size_t nnames, int *matched_r, char *why, size_t whylen)
{
	const gnutls_datum_t *certs;
	unsigned n = 0, i;
	struct dane_cert *chain;
	enum dane_verdict v;

	if (matched_r != NULL)
		*matched_r = -1;
	certs = gnutls_certificate_get_peers(session, &n);
	if (certs == NULL || n == 0) {
		snprintf(why, whylen, "peer presented no certificate");
		return DANE_MISMATCH;
	}
	chain = xcalloc(n, sizeof(*chain));
	for (i = 0; i < n; i++) {
		chain[i].der = certs[i].data;
		chain[i].len = certs[i].size;
	}
	v = dane_verify(rrs, nrrs, chain, n, names, nnames, 0, matched_r, why, whylen);
	free(chain);
	return v;
}

void
tls_describe(void *session, char *out, size_t outlen)
{
	gnutls_session_t s = session;
	const char *ver = gnutls_protocol_get_name(gnutls_protocol_get_version(s));
	const char *cs = gnutls_cipher_suite_get_name(gnutls_kx_get(s), gnutls_cipher_get(s),
	    gnutls_mac_get(s));
	char *desc = NULL;

	if (ver && gnutls_protocol_get_version(s) == GNUTLS_TLS1_3) {
		desc = gnutls_session_get_desc(s);
		snprintf(out, outlen, "%s", desc ? desc : ver);
		gnutls_free(desc);
		return;
	}
	snprintf(out, outlen, "%s %s", ver ? ver : "?", cs ? cs : "?");
}

void
tls_params(void *session, char *version, size_t vlen, char *cipher, size_t clen)
{
	gnutls_session_t s = session;
	const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(s));
	const char *c = gnutls_ciphersuite_get(s);

	snprintf(version, vlen, "%s", v ? v : "?");
	snprintf(cipher, clen, "%s", c ? c : "?");
}
