/* Unit tests for dane.c: TLSA parsing (text and wire) and RFC 7672 matching
 * against certificates generated here with GnuTLS (a root, an intermediate,
 * leaves for the right name, another name, a wildcard, expired; a
 * self-signed leaf; an RSA leaf).  No keys are stored anywhere. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "dane.h"

#define DAY 86400
#define HOST "relay.lab.test"

struct cert {
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	gnutls_datum_t der;
	time_t nb, na;
};

static struct cert ca, leaf, wrongname, expired, notyet, selfsigned, other_ca, other_leaf;
static struct cert inter, leaf2, oldinter, leaf3, oldca, leaf4, wild, partwild, tldwild, ipwild;
static struct cert rsaleaf;
static time_t t0;

/* A certificate for cn (also the DNS SAN of a leaf, or san when given),
 * signed by issuer (NULL: self-signed), valid [nb, na]. */
static void
make_cert(struct cert *c, const char *cn, const char *san, const struct cert *issuer, int is_ca,
    time_t nb, time_t na, int rsa)
{
	unsigned char serial[8];

	assert_int_equal(gnutls_x509_privkey_init(&c->key), 0);
	if (rsa)
		assert_int_equal(gnutls_x509_privkey_generate(c->key, GNUTLS_PK_RSA, 2048, 0), 0);
	else
		assert_int_equal(gnutls_x509_privkey_generate(c->key, GNUTLS_PK_ECDSA,
		    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	assert_int_equal(gnutls_x509_crt_init(&c->crt), 0);
	assert_int_equal(gnutls_x509_crt_set_version(c->crt, 3), 0);
	assert_int_equal(gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)), 0);
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x01);
	assert_int_equal(gnutls_x509_crt_set_serial(c->crt, serial, sizeof(serial)), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(c->crt, nb), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(c->crt, na), 0);
	c->nb = nb;
	c->na = na;
	assert_int_equal(gnutls_x509_crt_set_dn_by_oid(c->crt, GNUTLS_OID_X520_COMMON_NAME, 0,
	    cn, (unsigned)strlen(cn)), 0);
	assert_int_equal(gnutls_x509_crt_set_key(c->crt, c->key), 0);
	if (is_ca) {
		assert_int_equal(gnutls_x509_crt_set_basic_constraints(c->crt, 1, -1), 0);
		assert_int_equal(gnutls_x509_crt_set_key_usage(c->crt,
		    GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN), 0);
	} else {
		if (san == NULL)
			san = cn;
		assert_int_equal(gnutls_x509_crt_set_basic_constraints(c->crt, 0, -1), 0);
		assert_int_equal(gnutls_x509_crt_set_subject_alt_name(c->crt, GNUTLS_SAN_DNSNAME,
		    san, (unsigned)strlen(san), GNUTLS_FSAN_SET), 0);
		assert_int_equal(gnutls_x509_crt_set_key_usage(c->crt,
		    GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
	}
	if (issuer == NULL)
		issuer = c;
	assert_int_equal(gnutls_x509_crt_sign2(c->crt, issuer->crt, issuer->key,
	    GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crt_export2(c->crt, GNUTLS_X509_FMT_DER, &c->der), 0);
}

static void
free_cert(struct cert *c)
{
	gnutls_free(c->der.data);
	gnutls_x509_crt_deinit(c->crt);
	gnutls_x509_privkey_deinit(c->key);
}

static int
setup(void **state)
{
	time_t now = time(NULL);

	t0 = now;
	assert_int_equal(gnutls_global_init(), 0);
	make_cert(&ca, "Lab CA", NULL, NULL, 1, now - DAY, now + 365 * DAY, 0);
	make_cert(&leaf, HOST, NULL, &ca, 0, now - DAY, now + 30 * DAY, 0);
	make_cert(&wrongname, "wrong.lab.test", NULL, &ca, 0, now - DAY, now + 30 * DAY, 0);
	make_cert(&expired, HOST, NULL, &ca, 0, now - 30 * DAY, now - DAY, 0);
	make_cert(&notyet, HOST, NULL, &ca, 0, now + DAY, now + 30 * DAY, 0);
	make_cert(&selfsigned, HOST, NULL, NULL, 0, now - DAY, now + 30 * DAY, 0);
	make_cert(&other_ca, "Other CA", NULL, NULL, 1, now - DAY, now + 365 * DAY, 0);
	make_cert(&other_leaf, HOST, NULL, &other_ca, 0, now - DAY, now + 30 * DAY, 0);
	make_cert(&inter, "Lab Intermediate", NULL, &ca, 1, now - DAY, now + 90 * DAY, 0);
	make_cert(&leaf2, HOST, NULL, &inter, 0, now - DAY, now + 30 * DAY, 0);
	make_cert(&oldinter, "Old Intermediate", NULL, &ca, 1, now - 90 * DAY, now - DAY, 0);
	make_cert(&leaf3, HOST, NULL, &oldinter, 0, now - DAY, now + 30 * DAY, 0);
	make_cert(&oldca, "Old CA", NULL, NULL, 1, now - 90 * DAY, now - DAY, 0);
	make_cert(&leaf4, HOST, NULL, &oldca, 0, now - DAY, now + 30 * DAY, 0);
	make_cert(&wild, "wild", "*.lab.test", &ca, 0, now - DAY, now + 30 * DAY, 0);
	make_cert(&partwild, "partwild", "*ay.lab.test", &ca, 0, now - DAY, now + 30 * DAY, 0);
	make_cert(&tldwild, "tldwild", "*.test", &ca, 0, now - DAY, now + 30 * DAY, 0);
	make_cert(&ipwild, "ipwild", "*.0.2.1", &ca, 0, now - DAY, now + 30 * DAY, 0);
	make_cert(&rsaleaf, HOST, NULL, &ca, 0, now - DAY, now + 30 * DAY, 1);
	return 0;
}

static int
teardown(void **state)
{
	struct cert *all[] = { &ca, &leaf, &wrongname, &expired, &notyet, &selfsigned, &other_ca,
	    &other_leaf, &inter, &leaf2, &oldinter, &leaf3, &oldca, &leaf4, &wild, &partwild,
	    &tldwild, &ipwild, &rsaleaf };
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free_cert(all[i]);
	gnutls_global_deinit();
	return 0;
}

/* A record of usage/selector/mtype for cert c, built independently of
 * dane.c (GnuTLS SPKI export + hash here). */
static void
record_for(struct dane_tlsa *t, const struct cert *c, int usage, int selector, int mtype)
{
	gnutls_datum_t sel;
	gnutls_pubkey_t pk;
	uint8_t md[64];

	if (selector == 0) {
		sel = c->der;
	} else {
		assert_int_equal(gnutls_pubkey_init(&pk), 0);
		assert_int_equal(gnutls_pubkey_import_x509(pk, c->crt, 0), 0);
		assert_int_equal(gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, &sel), 0);
		gnutls_pubkey_deinit(pk);
	}
	t->usage = (uint8_t)usage;
	t->selector = (uint8_t)selector;
	t->mtype = (uint8_t)mtype;
	if (mtype == 0) {
		t->len = sel.size;
		t->data = malloc(sel.size);
		memcpy(t->data, sel.data, sel.size);
	} else {
		t->len = mtype == 1 ? 32 : 64;
		assert_int_equal(gnutls_hash_fast(mtype == 1 ? GNUTLS_DIG_SHA256 :
		    GNUTLS_DIG_SHA512, sel.data, sel.size, md), 0);
		t->data = malloc(t->len);
		memcpy(t->data, md, t->len);
	}
	if (selector == 1)
		gnutls_free(sel.data);
}

/* dane_verify with chain (leaf first) and reference identifiers names
 * (NULL-terminated), at time now (0 = current). */
static enum dane_verdict
verify_at(const struct dane_tlsa *rrs, size_t n, const struct cert *const *chain, size_t nchain,
    const char *const *names, int64_t now, int *matched, char *why, size_t whylen)
{
	struct dane_cert dc[8];
	size_t i, nnames = 0;
	char buf[300];
	enum dane_verdict v;

	assert_true(nchain <= 8);
	for (i = 0; i < nchain; i++) {
		dc[i].der = chain[i]->der.data;
		dc[i].len = chain[i]->der.size;
	}
	while (names != NULL && names[nnames] != NULL)
		nnames++;
	if (why == NULL) {
		why = buf;
		whylen = sizeof(buf);
	}
	v = dane_verify(rrs, n, dc, nchain, names, nnames, now, matched, why, whylen);
	assert_true(why[0] != '\0');
	assert_non_null(memchr(why, '\0', whylen));
	return v;
}

static enum dane_verdict
verify(const struct dane_tlsa *rrs, size_t n, const struct cert *const *chain, size_t nchain,
    const char *name, int *matched)
{
	const char *names[2] = { name, NULL };

	return verify_at(rrs, n, chain, nchain, names, 0, matched, NULL, 0);
}

#define CHAIN(...) ((const struct cert *const[]){ __VA_ARGS__ })
#define NCHAIN(...) (sizeof((const struct cert *const[]){ __VA_ARGS__ }) / sizeof(void *))
#define V(t, n, name, ...) verify((t), (n), CHAIN(__VA_ARGS__), NCHAIN(__VA_ARGS__), (name), NULL)

static void
test_ee_all_selectors_and_types(void **state)
{
	const struct cert *chain[] = { &leaf, &ca };
	int s, m, matched;

	for (s = 0; s <= 1; s++)
		for (m = 0; m <= 2; m++) {
			struct dane_tlsa t;
			char why[300];

			record_for(&t, &leaf, 3, s, m);
			assert_true(dane_tlsa_usable(&t));
			assert_int_equal(verify(&t, 1, chain, 2, HOST, &matched), DANE_OK_EE);
			assert_int_equal(matched, 0);
			/* DANE-EE ignores names */
			assert_int_equal(verify(&t, 1, chain, 2, "other.test", NULL), DANE_OK_EE);
			assert_int_equal(verify_at(&t, 1, chain, 1, NULL, 0, NULL, why,
			    sizeof(why)), DANE_OK_EE);
			assert_non_null(strstr(why, "DANE-EE"));
			/* and dates: long after expiry, long before activation */
			assert_int_equal(verify_at(&t, 1, chain, 2, NULL, t0 + 3650 * DAY, NULL,
			    NULL, 0), DANE_OK_EE);
			assert_int_equal(verify_at(&t, 1, chain, 2, NULL, 1, NULL, NULL, 0),
			    DANE_OK_EE);
			/* the same record as DANE-TA for the leaf itself: name and dates apply */
			t.usage = 2;
			assert_int_equal(verify(&t, 1, chain, 2, HOST, &matched), DANE_OK_TA);
			assert_int_equal(verify(&t, 1, chain, 2, "other.test", NULL),
			    DANE_MISMATCH);
			t.usage = 3;
			/* one flipped bit, first or last octet: mismatch */
			t.data[t.len - 1] ^= 1;
			assert_int_equal(verify(&t, 1, chain, 2, HOST, &matched), DANE_MISMATCH);
			assert_int_equal(matched, -1);
			t.data[t.len - 1] ^= 1;
			t.data[0] ^= 0x80;
			assert_int_equal(verify(&t, 1, chain, 2, HOST, &matched), DANE_MISMATCH);
			dane_tlsa_clear(&t);
		}
}

static void
test_ee_rsa_and_record_for_cert(void **state)
{
	struct cert *certs[] = { &rsaleaf, &leaf, &ca };
	size_t i;
	int s, m;

	for (i = 0; i < 3; i++)
		for (s = 0; s <= 1; s++)
			for (m = 0; m <= 2; m++) {
				struct dane_tlsa t, mine;
				struct dane_cert dc = { certs[i]->der.data, certs[i]->der.size };
				const struct cert *chain[] = { certs[i] };
				char rec[4096];
				const char *err = NULL;

				/* dane.c's own record equals the independent one */
				record_for(&t, certs[i], 3, s, m);
				assert_int_equal(dane_record_for_cert(&dc, 3, s, m, rec,
				    sizeof(rec)), 0);
				assert_int_equal(dane_tlsa_parse_text(rec, &mine, &err), 0);
				assert_int_equal(mine.len, t.len);
				assert_memory_equal(mine.data, t.data, t.len);
				assert_int_equal(verify(&mine, 1, chain, 1, "x", NULL), DANE_OK_EE);
				dane_tlsa_clear(&mine);
				dane_tlsa_clear(&t);
			}
}

static void
test_record_for_cert_limits(void **state)
{
	struct dane_cert dc = { leaf.der.data, leaf.der.size };
	struct dane_cert junk = { (const uint8_t *)"junk", 4 }, none = { NULL, 0 };
	char rec[200], canary[300];
	size_t n;

	assert_int_equal(dane_record_for_cert(&dc, 3, 1, 1, rec, sizeof(rec)), 0);
	assert_int_equal(strlen(rec), 6 + 64);
	assert_int_equal(strncmp(rec, "3 1 1 ", 6), 0);
	/* exactly big enough, and every smaller size */
	for (n = 0; n <= 71; n++) {
		memset(canary, 'Z', sizeof(canary));
		assert_int_equal(dane_record_for_cert(&dc, 3, 1, 1, canary, n), n == 71 ? 0 : -1);
		assert_int_equal(canary[n], 'Z');
		if (n == 71)
			assert_string_equal(canary, rec);
	}
	assert_int_equal(dane_record_for_cert(&dc, 2, 0, 2, canary, sizeof(canary)), 0);
	assert_int_equal(strlen(canary), 6 + 128);
	assert_int_equal(dane_record_for_cert(&dc, 3, 2, 1, rec, sizeof(rec)), -1);
	assert_int_equal(dane_record_for_cert(&dc, 3, 1, 3, rec, sizeof(rec)), -1);
	assert_int_equal(dane_record_for_cert(&junk, 3, 1, 1, rec, sizeof(rec)), -1);
	assert_int_equal(dane_record_for_cert(&none, 3, 1, 1, rec, sizeof(rec)), -1);
	/* a truncated certificate at every length */
	for (n = 0; n < leaf.der.size; n++) {
		struct dane_cert cut = { leaf.der.data, n };
		assert_int_equal(dane_record_for_cert(&cut, 3, 1, 1, rec, sizeof(rec)), -1);
	}
}

static void
test_ee_ignores_dates_and_chain(void **state)
{
	struct dane_tlsa t;

	record_for(&t, &expired, 3, 1, 1);
	assert_int_equal(V(&t, 1, HOST, &expired), DANE_OK_EE);
	assert_int_equal(V(&t, 1, HOST, &expired, &other_ca), DANE_OK_EE);
	dane_tlsa_clear(&t);
	record_for(&t, &notyet, 3, 0, 2);
	assert_int_equal(V(&t, 1, HOST, &notyet), DANE_OK_EE);
	dane_tlsa_clear(&t);
	record_for(&t, &selfsigned, 3, 0, 1);
	assert_int_equal(V(&t, 1, "x", &selfsigned), DANE_OK_EE);
	dane_tlsa_clear(&t);
	/* a DANE-EE record for the CA does not match the leaf (nor the CA in the chain) */
	record_for(&t, &ca, 3, 1, 1);
	assert_int_equal(V(&t, 1, HOST, &leaf, &ca), DANE_MISMATCH);
	/* ... unless the CA is the leaf */
	assert_int_equal(V(&t, 1, HOST, &ca, &leaf), DANE_OK_EE);
	dane_tlsa_clear(&t);
}

static void
test_ta_all_selectors_and_types(void **state)
{
	int s, m, matched;
	char why[300];

	for (s = 0; s <= 1; s++)
		for (m = 0; m <= 2; m++) {
			struct dane_tlsa t;

			record_for(&t, &ca, 2, s, m);
			assert_int_equal(verify_at(&t, 1, CHAIN(&leaf, &ca), 2,
			    (const char *const[]){ HOST, NULL }, 0, &matched, why, sizeof(why)),
			    DANE_OK_TA);
			assert_int_equal(matched, 0);
			assert_non_null(strstr(why, "DANE-TA"));
			/* the name must match (DANE-TA, unlike DANE-EE) */
			assert_int_equal(V(&t, 1, HOST, &wrongname, &ca), DANE_MISMATCH);
			assert_int_equal(V(&t, 1, "other.lab.test", &leaf, &ca), DANE_MISMATCH);
			/* dates of the leaf are checked */
			assert_int_equal(V(&t, 1, HOST, &expired, &ca), DANE_MISMATCH);
			assert_int_equal(V(&t, 1, HOST, &notyet, &ca), DANE_MISMATCH);
			/* another CA's chain does not match */
			assert_int_equal(V(&t, 1, HOST, &other_leaf, &other_ca), DANE_MISMATCH);
			/* the right CA presented after a leaf it did not sign */
			assert_int_equal(V(&t, 1, HOST, &other_leaf, &ca), DANE_MISMATCH);
			assert_int_equal(V(&t, 1, HOST, &other_leaf, &other_ca, &ca),
			    DANE_MISMATCH);
			/* the CA alone, as the leaf, for a name it does not carry */
			assert_int_equal(V(&t, 1, HOST, &ca), DANE_MISMATCH);
			/* a digest record cannot stand for a certificate that is not presented;
			 * a full value can (below) */
			if (m != 0)
				assert_int_equal(V(&t, 1, HOST, &leaf), DANE_MISMATCH);
			/* unrelated certificates in between are tolerated, as in PKIX */
			assert_int_equal(V(&t, 1, HOST, &leaf, &other_ca, &ca), DANE_OK_TA);
			dane_tlsa_clear(&t);
		}
}

static void
test_ta_names(void **state)
{
	struct dane_tlsa t;
	int matched;

	record_for(&t, &ca, 2, 0, 1);
	assert_int_equal(V(&t, 1, "RELAY.Lab.TEST", &leaf, &ca), DANE_OK_TA);
	assert_int_equal(V(&t, 1, HOST ".", &leaf, &ca), DANE_OK_TA);
	assert_int_equal(V(&t, 1, "relay.lab.test..", &leaf, &ca), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, "lab.test", &leaf, &ca), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, "x." HOST, &leaf, &ca), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, "", &leaf, &ca), DANE_MISMATCH);
	/* the second reference identifier (RFC 7672 2.2.2 CNAME case) */
	assert_int_equal(verify_at(&t, 1, CHAIN(&leaf, &ca), 2,
	    (const char *const[]){ "mx.other.test", HOST, NULL }, 0, &matched, NULL, 0),
	    DANE_OK_TA);
	assert_int_equal(matched, 0);
	assert_int_equal(verify_at(&t, 1, CHAIN(&leaf, &ca), 2,
	    (const char *const[]){ "mx.other.test", "b.test", NULL }, 0, NULL, NULL, 0),
	    DANE_MISMATCH);
	/* no reference identifier at all */
	assert_int_equal(verify_at(&t, 1, CHAIN(&leaf, &ca), 2, NULL, 0, NULL, NULL, 0),
	    DANE_MISMATCH);
	/* a wildcard covers exactly one left-most label */
	assert_int_equal(V(&t, 1, HOST, &wild, &ca), DANE_OK_TA);
	assert_int_equal(V(&t, 1, "mx.lab.test", &wild, &ca), DANE_OK_TA);
	assert_int_equal(V(&t, 1, "a.relay.lab.test", &wild, &ca), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, "lab.test", &wild, &ca), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, "MX.Lab.Test.", &wild, &ca), DANE_OK_TA);
	assert_int_equal(V(&t, 1, ".lab.test", &wild, &ca), DANE_MISMATCH);
	/* a reference identifier is never a pattern */
	assert_int_equal(V(&t, 1, "*.lab.test", &wild, &ca), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, "*", &leaf, &ca), DANE_MISMATCH);
	/* no partial-label wildcards (RFC 9525 6.3), none directly under a TLD */
	assert_int_equal(V(&t, 1, HOST, &partwild, &ca), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, "lab.test", &tldwild, &ca), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, HOST, &tldwild, &ca), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, "192.0.2.1", &ipwild, &ca), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, "x.0.2.1", &ipwild, &ca), DANE_MISMATCH);
	/* RSA leaf under the ECDSA CA */
	assert_int_equal(V(&t, 1, HOST, &rsaleaf, &ca), DANE_OK_TA);
	dane_tlsa_clear(&t);
}

static void
test_ta_dates(void **state)
{
	struct dane_tlsa t;
	const char *names[2] = { HOST, NULL };
	char why[300];

	record_for(&t, &ca, 2, 1, 1);
	/* explicit time: inside, just at the edges, outside */
	assert_int_equal(verify_at(&t, 1, CHAIN(&leaf, &ca), 2, names, leaf.nb, NULL, NULL, 0),
	    DANE_OK_TA);
	assert_int_equal(verify_at(&t, 1, CHAIN(&leaf, &ca), 2, names, leaf.na, NULL, NULL, 0),
	    DANE_OK_TA);
	assert_int_equal(verify_at(&t, 1, CHAIN(&leaf, &ca), 2, names, leaf.nb - 1, NULL, NULL, 0),
	    DANE_MISMATCH);
	assert_int_equal(verify_at(&t, 1, CHAIN(&leaf, &ca), 2, names, leaf.na + 1, NULL, why,
	    sizeof(why)), DANE_MISMATCH);
	assert_non_null(strstr(why, "validity"));
	/* the expired leaf was valid once, at the moment the CA became valid */
	assert_int_equal(verify_at(&t, 1, CHAIN(&expired, &ca), 2, names, expired.na, NULL,
	    NULL, 0), DANE_OK_TA);
	assert_int_equal(verify_at(&t, 1, CHAIN(&expired, &ca), 2, names, expired.na - 1, NULL,
	    NULL, 0), DANE_MISMATCH);
	dane_tlsa_clear(&t);
	/* an expired intermediate below the TA */
	record_for(&t, &ca, 2, 0, 1);
	assert_int_equal(V(&t, 1, HOST, &leaf3, &oldinter, &ca), DANE_MISMATCH);
	dane_tlsa_clear(&t);
	/* the TA certificate itself expired: refused (as OpenSSL and GnuTLS do) */
	record_for(&t, &oldinter, 2, 0, 1);
	assert_int_equal(V(&t, 1, HOST, &leaf3, &oldinter, &ca), DANE_MISMATCH);
	dane_tlsa_clear(&t);
	record_for(&t, &oldca, 2, 1, 1);
	assert_int_equal(V(&t, 1, HOST, &leaf4, &oldca), DANE_MISMATCH);
	assert_int_equal(verify_at(&t, 1, CHAIN(&leaf4, &oldca), 2, names, oldca.na, NULL,
	    NULL, 0), DANE_OK_TA);
	dane_tlsa_clear(&t);
}

static void
test_ta_intermediate(void **state)
{
	struct dane_tlsa t;
	int matched;

	/* the root as TA, full chain */
	record_for(&t, &ca, 2, 1, 2);
	assert_int_equal(V(&t, 1, HOST, &leaf2, &inter, &ca), DANE_OK_TA);
	/* intermediate missing: the leaf cannot chain */
	assert_int_equal(V(&t, 1, HOST, &leaf2, &ca), DANE_MISMATCH);
	/* the intermediate presented but not the root: a digest cannot help */
	assert_int_equal(V(&t, 1, HOST, &leaf2, &inter), DANE_MISMATCH);
	dane_tlsa_clear(&t);
	/* the intermediate as TA, with or without the root after it */
	record_for(&t, &inter, 2, 0, 1);
	assert_int_equal(V(&t, 1, HOST, &leaf2, &inter, &ca), DANE_OK_TA);
	assert_int_equal(V(&t, 1, HOST, &leaf2, &inter), DANE_OK_TA);
	/* a leaf issued by the root, not by the intermediate */
	assert_int_equal(V(&t, 1, HOST, &leaf, &inter, &ca), DANE_MISMATCH);
	dane_tlsa_clear(&t);
	/* several TA records; the second one is the good one */
	{
		struct dane_tlsa set[3];

		record_for(&set[0], &other_ca, 2, 0, 1);
		record_for(&set[1], &inter, 2, 1, 1);
		record_for(&set[2], &leaf2, 3, 1, 1);
		set[2].data[5] ^= 0x10;
		assert_int_equal(verify(set, 3, CHAIN(&leaf2, &inter, &ca), 3, HOST, &matched),
		    DANE_OK_TA);
		assert_int_equal(matched, 1);
		set[2].data[5] ^= 0x10;
		/* a matching DANE-EE record wins over DANE-TA */
		assert_int_equal(verify(set, 3, CHAIN(&leaf2, &inter, &ca), 3, HOST, &matched),
		    DANE_OK_EE);
		assert_int_equal(matched, 2);
		dane_tlsa_clear(&set[0]);
		dane_tlsa_clear(&set[1]);
		dane_tlsa_clear(&set[2]);
	}
}

/* RFC 7671 5.2.2: with a full-value DANE-TA record the TA need not be
 * presented: 2 0 0 carries the certificate, 2 1 0 a bare public key. */
static void
test_ta_not_presented(void **state)
{
	struct dane_tlsa t;
	const char *names[2] = { HOST, NULL };
	char why[300];
	int matched;

	record_for(&t, &ca, 2, 0, 0);
	assert_int_equal(verify_at(&t, 1, CHAIN(&leaf), 1, names, 0, &matched, why, sizeof(why)),
	    DANE_OK_TA);
	assert_int_equal(matched, 0);
	assert_int_equal(V(&t, 1, HOST, &leaf2, &inter), DANE_OK_TA);
	assert_int_equal(V(&t, 1, HOST, &wrongname), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, HOST, &expired), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, HOST, &other_leaf), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, HOST, &leaf2), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, HOST, &leaf3, &oldinter), DANE_MISMATCH);
	dane_tlsa_clear(&t);
	/* an expired certificate in the record */
	record_for(&t, &oldca, 2, 0, 0);
	assert_int_equal(V(&t, 1, HOST, &leaf4), DANE_MISMATCH);
	dane_tlsa_clear(&t);

	record_for(&t, &ca, 2, 1, 0);
	assert_int_equal(verify_at(&t, 1, CHAIN(&leaf), 1, names, 0, &matched, why, sizeof(why)),
	    DANE_OK_TA);
	assert_non_null(strstr(why, "public key"));
	assert_int_equal(V(&t, 1, HOST, &leaf2, &inter), DANE_OK_TA);
	assert_int_equal(V(&t, 1, HOST, &rsaleaf), DANE_OK_TA);
	assert_int_equal(V(&t, 1, HOST, &wrongname), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, HOST, &expired), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, HOST, &other_leaf), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, HOST, &other_leaf, &other_ca), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, HOST, &leaf2), DANE_MISMATCH);
	assert_int_equal(V(&t, 1, HOST, &leaf3, &oldinter), DANE_MISMATCH);
	/* the old CA's key signed nothing here */
	dane_tlsa_clear(&t);
	/* the key of the root does not make the old intermediate valid, and a key
	 * of nobody matches nothing */
	record_for(&t, &oldca, 2, 1, 0);
	assert_int_equal(V(&t, 1, HOST, &leaf4), DANE_OK_TA);   /* a bare key has no dates */
	assert_int_equal(V(&t, 1, HOST, &leaf), DANE_MISMATCH);
	dane_tlsa_clear(&t);
	/* garbage as certificate / key: no match, no error */
	{
		uint8_t junk[40];
		struct dane_tlsa g = { 2, 0, 0, sizeof(junk), junk };

		memset(junk, 0x30, sizeof(junk));
		assert_int_equal(V(&g, 1, HOST, &leaf, &ca), DANE_MISMATCH);
		g.selector = 1;
		assert_int_equal(V(&g, 1, HOST, &leaf, &ca), DANE_MISMATCH);
	}
}

static void
test_usable_and_mixed_sets(void **state)
{
	const struct cert *chain[] = { &leaf, &ca };
	struct dane_tlsa set[5];
	int matched;

	/* PKIX usages are unusable for SMTP (RFC 7672 3.1.3), even when they match */
	record_for(&set[0], &leaf, 1, 1, 1);
	record_for(&set[1], &ca, 0, 0, 1);
	assert_false(dane_tlsa_usable(&set[0]));
	assert_false(dane_tlsa_usable(&set[1]));
	assert_int_equal(verify(set, 2, chain, 2, HOST, &matched), DANE_NO_USABLE);
	assert_int_equal(matched, -1);
	assert_int_equal(verify(set, 0, chain, 2, HOST, NULL), DANE_NO_USABLE);
	/* no usable records wins over a broken chain */
	assert_int_equal(dane_verify(set, 2, NULL, 0, NULL, 0, 0, NULL, NULL, 0), DANE_NO_USABLE);
	/* unknown usage / selector / matching type, bad digest lengths: unusable */
	record_for(&set[2], &leaf, 3, 1, 1);
	set[2].usage = 4;
	assert_false(dane_tlsa_usable(&set[2]));
	set[2].usage = 255;
	assert_false(dane_tlsa_usable(&set[2]));
	set[2].usage = 3;
	set[2].selector = 2;
	assert_false(dane_tlsa_usable(&set[2]));
	set[2].selector = 1;
	set[2].mtype = 3;
	assert_false(dane_tlsa_usable(&set[2]));
	set[2].mtype = 2;       /* 32 octets with SHA-512 */
	assert_false(dane_tlsa_usable(&set[2]));
	set[2].mtype = 1;
	set[2].len = 31;
	assert_false(dane_tlsa_usable(&set[2]));
	set[2].len = 32;
	assert_true(dane_tlsa_usable(&set[2]));
	/* a bad digest alone: mismatch; next to a good one: the good one wins */
	record_for(&set[3], &leaf, 3, 1, 1);
	set[3].data[0] ^= 0xff;
	assert_int_equal(verify(&set[3], 1, chain, 2, HOST, NULL), DANE_MISMATCH);
	record_for(&set[4], &other_ca, 2, 0, 1);
	{
		struct dane_tlsa mixed[5] = { set[0], set[1], set[3], set[4], set[2] };
		assert_int_equal(verify(mixed, 5, chain, 2, HOST, &matched), DANE_OK_EE);
		assert_int_equal(matched, 4);
		/* unusable records that would match do not count */
		assert_int_equal(verify(mixed, 4, chain, 2, HOST, &matched), DANE_MISMATCH);
		assert_int_equal(matched, -1);
	}
	/* no certificate, garbage certificate, truncated leaf at every length */
	{
		struct dane_cert junk = { (const uint8_t *)"junk", 4 }, none = { NULL, 0 };
		const char *names[1] = { HOST };
		char w[1] = { 'x' };
		size_t n;

		assert_int_equal(dane_verify(&set[2], 1, NULL, 0, names, 1, 0, NULL, NULL, 0),
		    DANE_ERROR);
		assert_int_equal(dane_verify(&set[2], 1, &junk, 1, names, 1, 0, NULL, NULL, 0),
		    DANE_ERROR);
		assert_int_equal(dane_verify(&set[2], 1, &none, 1, names, 1, 0, &matched, w, 0),
		    DANE_ERROR);
		assert_int_equal(w[0], 'x');          /* whylen 0: nothing written */
		assert_int_equal(matched, -1);
		for (n = 0; n < leaf.der.size; n++) {
			struct dane_cert cut = { leaf.der.data, n };
			assert_int_equal(dane_verify(&set[2], 1, &cut, 1, names, 1, 0, NULL, NULL,
			    0), DANE_ERROR);
		}
	}
	/* an unparsable certificate in the middle hides what follows */
	{
		struct dane_cert dc[3] = { { leaf.der.data, leaf.der.size },
		    { ca.der.data, ca.der.size }, { ca.der.data, ca.der.size } };
		const char *names[1] = { HOST };
		struct dane_tlsa cat;

		record_for(&cat, &ca, 2, 0, 1);
		assert_int_equal(dane_verify(&cat, 1, dc, 3, names, 1, 0, NULL, NULL, 0),
		    DANE_OK_TA);
		dc[1].der = (const uint8_t *)"junk";
		dc[1].len = 4;
		assert_int_equal(dane_verify(&cat, 1, dc, 3, names, 1, 0, NULL, NULL, 0),
		    DANE_MISMATCH);
		assert_int_equal(dane_verify(&set[2], 1, dc, 3, names, 1, 0, NULL, NULL, 0),
		    DANE_OK_EE);
		dc[1].len = ca.der.size - 1;
		dc[1].der = ca.der.data;
		assert_int_equal(dane_verify(&cat, 1, dc, 3, names, 1, 0, NULL, NULL, 0),
		    DANE_MISMATCH);
		assert_int_equal(dane_verify(&set[2], 1, dc, 3, names, 1, 0, NULL, NULL, 0),
		    DANE_OK_EE);
		dane_tlsa_clear(&cat);
	}
	/* long chains: only the first 16 certificates are looked at */
	{
		struct dane_cert dc[40];
		const char *names[1] = { HOST };
		struct dane_tlsa cat;
		size_t i;

		record_for(&cat, &ca, 2, 1, 1);
		dc[0].der = leaf.der.data;
		dc[0].len = leaf.der.size;
		for (i = 1; i < 40; i++) {
			dc[i].der = other_ca.der.data;
			dc[i].len = other_ca.der.size;
		}
		assert_int_equal(dane_verify(&set[2], 1, dc, 40, names, 1, 0, NULL, NULL, 0),
		    DANE_OK_EE);
		dc[15].der = ca.der.data;
		dc[15].len = ca.der.size;
		assert_int_equal(dane_verify(&cat, 1, dc, 40, names, 1, 0, NULL, NULL, 0),
		    DANE_OK_TA);
		dc[15] = dc[14];
		dc[16].der = ca.der.data;
		dc[16].len = ca.der.size;
		assert_int_equal(dane_verify(&cat, 1, dc, 40, names, 1, 0, NULL, NULL, 0),
		    DANE_MISMATCH);
		dane_tlsa_clear(&cat);
	}
	for (matched = 0; matched < 5; matched++)
		dane_tlsa_clear(&set[matched]);
}

static void
parse_ok(const char *s, uint8_t u, uint8_t sel, uint8_t m, size_t len, uint8_t first)
{
	struct dane_tlsa t;
	const char *err = NULL;

	if (dane_tlsa_parse_text(s, &t, &err) != 0)
		fail_msg("\"%s\" rejected: %s", s, err);
	assert_int_equal(t.usage, u);
	assert_int_equal(t.selector, sel);
	assert_int_equal(t.mtype, m);
	assert_int_equal(t.len, len);
	assert_int_equal(t.data[0], first);
	dane_tlsa_clear(&t);
	assert_null(t.data);
}

static void
parse_bad(const char *s)
{
	struct dane_tlsa t;
	const char *err = NULL;

	memset(&t, 0xa5, sizeof(t));
	if (dane_tlsa_parse_text(s, &t, &err) != -1)
		fail_msg("\"%s\" accepted", s);
	assert_non_null(err);
	assert_true(err[0] != '\0');
	assert_null(t.data);
	assert_int_equal(t.len, 0);
}

static void
test_parse_text(void **state)
{
	char h64[65], h128[129], buf[40000];
	size_t i;

	for (i = 0; i < 64; i++)
		h64[i] = "0123456789abcdef"[(i + 1) % 16];
	h64[64] = '\0';
	for (i = 0; i < 128; i++)
		h128[i] = "fedcba9876543210"[i % 16];
	h128[128] = '\0';
	snprintf(buf, sizeof(buf), "3 1 1 %s", h64);
	parse_ok(buf, 3, 1, 1, 32, 0x12);
	snprintf(buf, sizeof(buf), "2 0 2 %s", h128);
	parse_ok(buf, 2, 0, 2, 64, 0xfe);
	/* white space anywhere in the hex, case-insensitive, leading zeros */
	parse_ok("3 1 1 0123456789ABCDEF 0123456789abcdef\t0123456789abcdef\n"
	    "0123456789abcdef\r\n", 3, 1, 1, 32, 0x01);
	parse_ok("  03\t01  001   0 1 23456789abcdef0123456789abcdef0123456789abcdef0123456789"
	    "abcdef", 3, 1, 1, 32, 0x01);
	parse_ok("2 0 0 30820102", 2, 0, 0, 4, 0x30);
	parse_ok("255 255 255 ff", 255, 255, 255, 1, 0xff);
	parse_ok("0 0 0 00", 0, 0, 0, 1, 0x00);
	/* digest lengths */
	parse_bad("3 1 1 abcd");
	{
		struct dane_tlsa t;
		const char *err;
		assert_int_equal(dane_tlsa_parse_text("3 1 1 abcd", &t, &err), -1);
		assert_non_null(strstr(err, "32"));
	}
	parse_bad("3 1 2 abcd");
	snprintf(buf, sizeof(buf), "3 1 1 %s00", h64);
	parse_bad(buf);
	snprintf(buf, sizeof(buf), "3 1 1 %.62s", h64);
	parse_bad(buf);
	snprintf(buf, sizeof(buf), "3 1 1 %.63s", h64);           /* odd */
	parse_bad(buf);
	snprintf(buf, sizeof(buf), "3 1 2 %s", h64);
	parse_bad(buf);
	snprintf(buf, sizeof(buf), "3 1 1 %s", h128);
	parse_bad(buf);
	/* malformed */
	parse_bad("3 1 1 xyz");
	parse_bad("3 1 0 abc");
	parse_bad("3 1 0 0x00");
	parse_bad("3 1 0 a b c");
	parse_bad("3 1");
	parse_bad("3 1 0");
	parse_bad("3 1 0   ");
	parse_bad("3 1 1abcd");
	parse_bad("3,1,1 00");
	parse_bad("256 1 1 00");
	parse_bad("3 256 1 00");
	parse_bad("3 1 4294967296 00");
	parse_bad("3 1 18446744073709551617 00");
	parse_bad("-3 1 1 00");
	parse_bad("+3 1 1 00");
	parse_bad("3 -1 1 00");
	parse_bad("");
	parse_bad("   ");
	parse_bad("a 1 1 00");
	parse_bad("3 1 0 00\xc3\xa9");
	parse_bad("3 1 0 00\x7f");
	parse_bad("3 1 0 ( 00 )");
	/* size limit on full values: 16384 octets */
	memcpy(buf, "2 0 0 ", 6);
	for (i = 0; i < 2 * 16384; i++)
		buf[6 + i] = 'a';
	buf[6 + i] = '\0';
	parse_ok(buf, 2, 0, 0, 16384, 0xaa);
	buf[6 + i] = 'a';
	buf[6 + i + 1] = 'a';
	buf[6 + i + 2] = '\0';
	parse_bad(buf);
}

static void
test_parse_rdata_every_length(void **state)
{
	static uint8_t rd[3 + 16385];
	struct dane_tlsa t;
	const char *err;
	size_t n;
	int m;

	memset(rd, 0xab, sizeof(rd));
	rd[0] = 3;
	rd[1] = 1;
	for (m = 0; m <= 3; m++) {
		rd[2] = (uint8_t)m;
		for (n = 0; n <= 3 + 130; n++) {
			int want = n >= 4 && (m == 0 || m == 3 || (m == 1 && n == 35) ||
			    (m == 2 && n == 67)) ? 0 : -1;
			int rc;

			memset(&t, 0x5a, sizeof(t));
			err = NULL;
			rc = dane_tlsa_parse_rdata(n == 0 ? NULL : rd, n, &t, &err);
			assert_int_equal(rc, want);
			if (rc == 0) {
				assert_int_equal(t.usage, 3);
				assert_int_equal(t.selector, 1);
				assert_int_equal(t.mtype, m);
				assert_int_equal(t.len, n - 3);
				assert_memory_equal(t.data, rd + 3, n - 3);
				assert_int_equal(dane_tlsa_usable(&t), m != 3);
				dane_tlsa_clear(&t);
				dane_tlsa_clear(&t);     /* twice is harmless */
			} else {
				assert_non_null(err);
				assert_null(t.data);
				assert_int_equal(t.len, 0);
			}
		}
	}
	/* the full-value size limit */
	rd[2] = 0;
	assert_int_equal(dane_tlsa_parse_rdata(rd, 3 + 16384, &t, &err), 0);
	{
		struct dane_tlsa c;
		dane_tlsa_copy(&c, &t);
		assert_int_equal(c.len, t.len);
		assert_true(c.data != t.data);
		assert_memory_equal(c.data, t.data, t.len);
		dane_tlsa_clear(&c);
	}
	dane_tlsa_clear(&t);
	assert_int_equal(dane_tlsa_parse_rdata(rd, 3 + 16385, &t, &err), -1);
	assert_null(t.data);
	/* copies of empty records; clear(NULL) */
	{
		struct dane_tlsa e = { 3, 1, 1, 0, NULL }, c;
		dane_tlsa_copy(&c, &e);
		assert_int_equal(c.len, 0);
		assert_false(dane_tlsa_usable(&c));
		dane_tlsa_clear(&c);
		dane_tlsa_clear(NULL);
	}
	/* unknown usage: parsed, but unusable */
	rd[0] = 9;
	rd[2] = 1;
	assert_int_equal(dane_tlsa_parse_rdata(rd, 35, &t, &err), 0);
	assert_false(dane_tlsa_usable(&t));
	dane_tlsa_clear(&t);
	assert_string_equal(dane_verdict_name(DANE_OK_EE), "ok-ee");
	assert_string_equal(dane_verdict_name(DANE_OK_TA), "ok-ta");
	assert_string_equal(dane_verdict_name(DANE_NO_USABLE), "no-usable");
	assert_string_equal(dane_verdict_name(DANE_MISMATCH), "mismatch");
	assert_string_equal(dane_verdict_name(DANE_ERROR), "error");
	assert_string_equal(dane_verdict_name((enum dane_verdict)99), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ee_all_selectors_and_types),
		cmocka_unit_test(test_ee_rsa_and_record_for_cert),
		cmocka_unit_test(test_record_for_cert_limits),
		cmocka_unit_test(test_ee_ignores_dates_and_chain),
		cmocka_unit_test(test_ta_all_selectors_and_types),
		cmocka_unit_test(test_ta_names),
		cmocka_unit_test(test_ta_dates),
		cmocka_unit_test(test_ta_intermediate),
		cmocka_unit_test(test_ta_not_presented),
		cmocka_unit_test(test_usable_and_mixed_sets),
		cmocka_unit_test(test_parse_text),
		cmocka_unit_test(test_parse_rdata_every_length),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
