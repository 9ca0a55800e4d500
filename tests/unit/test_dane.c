/* Unit tests for dane.c: TLSA parsing (text and wire) and RFC 7672 matching
 * against certificates generated here with GnuTLS (a CA, leaves for the right
 * name, another name, expired; a self-signed leaf).  No keys are stored. */
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

struct cert {
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	gnutls_datum_t der;
};

static struct cert ca, leaf, wrongname, expired, selfsigned, other_ca, other_leaf;

static void
make_cert(struct cert *c, const char *cn, const struct cert *issuer, int is_ca, time_t nb,
    time_t na)
{
	unsigned char serial[8];

	assert_int_equal(gnutls_x509_privkey_init(&c->key), 0);
	assert_int_equal(gnutls_x509_privkey_generate(c->key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	assert_int_equal(gnutls_x509_crt_init(&c->crt), 0);
	assert_int_equal(gnutls_x509_crt_set_version(c->crt, 3), 0);
	assert_int_equal(gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)), 0);
	serial[0] &= 0x7f;
	assert_int_equal(gnutls_x509_crt_set_serial(c->crt, serial, sizeof(serial)), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(c->crt, nb), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(c->crt, na), 0);
	assert_int_equal(gnutls_x509_crt_set_dn_by_oid(c->crt, GNUTLS_OID_X520_COMMON_NAME, 0,
	    cn, (unsigned)strlen(cn)), 0);
	assert_int_equal(gnutls_x509_crt_set_key(c->crt, c->key), 0);
	if (is_ca) {
		assert_int_equal(gnutls_x509_crt_set_basic_constraints(c->crt, 1, -1), 0);
		assert_int_equal(gnutls_x509_crt_set_key_usage(c->crt,
		    GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN), 0);
	} else {
		assert_int_equal(gnutls_x509_crt_set_basic_constraints(c->crt, 0, -1), 0);
		assert_int_equal(gnutls_x509_crt_set_subject_alt_name(c->crt, GNUTLS_SAN_DNSNAME,
		    cn, (unsigned)strlen(cn), GNUTLS_FSAN_SET), 0);
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
	time_t now = time(NULL), day = 86400;

	gnutls_global_init();
	make_cert(&ca, "Lab CA", NULL, 1, now - day, now + 365 * day);
	make_cert(&leaf, "relay.lab.test", &ca, 0, now - day, now + 30 * day);
	make_cert(&wrongname, "wrong.lab.test", &ca, 0, now - day, now + 30 * day);
	make_cert(&expired, "relay.lab.test", &ca, 0, now - 30 * day, now - day);
	make_cert(&selfsigned, "relay.lab.test", NULL, 0, now - day, now + 30 * day);
	make_cert(&other_ca, "Other CA", NULL, 1, now - day, now + 365 * day);
	make_cert(&other_leaf, "relay.lab.test", &other_ca, 0, now - day, now + 30 * day);
	return 0;
}

static int
teardown(void **state)
{
	free_cert(&ca);
	free_cert(&leaf);
	free_cert(&wrongname);
	free_cert(&expired);
	free_cert(&selfsigned);
	free_cert(&other_ca);
	free_cert(&other_leaf);
	gnutls_global_deinit();
	return 0;
}

/* A record of usage/selector/mtype for cert c, built independently of
 * dane.c (GnuTLS export + hash here). */
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
		assert_int_equal(gnutls_hash_fast(mtype == 1 ? GNUTLS_DIG_SHA256 : GNUTLS_DIG_SHA512,
		    sel.data, sel.size, md), 0);
		t->data = malloc(t->len);
		memcpy(t->data, md, t->len);
	}
	if (selector == 1)
		gnutls_free(sel.data);
}

static enum dane_verdict
verify(const struct dane_tlsa *rrs, size_t n, const struct cert *const *chain, size_t nchain,
    const char *name, int *matched)
{
	struct dane_cert dc[4];
	const char *names[1] = { name };
	char why[300];
	size_t i;
	enum dane_verdict v;

	for (i = 0; i < nchain; i++) {
		dc[i].der = chain[i]->der.data;
		dc[i].len = chain[i]->der.size;
	}
	v = dane_verify(rrs, n, dc, nchain, names, 1, 0, matched, why, sizeof(why));
	assert_true(why[0] != '\0');
	return v;
}

static void
test_ee_all_selectors_and_types(void **state)
{
	const struct cert *chain[] = { &leaf, &ca };
	int s, m, matched;

	for (s = 0; s <= 1; s++)
		for (m = 0; m <= 2; m++) {
			struct dane_tlsa t;

			record_for(&t, &leaf, 3, s, m);
			assert_int_equal(verify(&t, 1, chain, 2, "relay.lab.test", &matched),
			    DANE_OK_EE);
			assert_int_equal(matched, 0);
			/* DANE-EE ignores names */
			assert_int_equal(verify(&t, 1, chain, 2, "other.test", NULL), DANE_OK_EE);
			/* one flipped bit: mismatch */
			t.data[t.len - 1] ^= 1;
			assert_int_equal(verify(&t, 1, chain, 2, "relay.lab.test", &matched),
			    DANE_MISMATCH);
			assert_int_equal(matched, -1);
			dane_tlsa_clear(&t);
		}
}

static void
test_ee_ignores_dates_and_chain(void **state)
{
	const struct cert *chain[] = { &expired };
	const struct cert *self[] = { &selfsigned };
	struct dane_tlsa t;

	record_for(&t, &expired, 3, 1, 1);
	assert_int_equal(verify(&t, 1, chain, 1, "relay.lab.test", NULL), DANE_OK_EE);
	dane_tlsa_clear(&t);
	record_for(&t, &selfsigned, 3, 0, 1);
	assert_int_equal(verify(&t, 1, self, 1, "x", NULL), DANE_OK_EE);
	dane_tlsa_clear(&t);
	/* a DANE-EE record for the CA does not match the leaf */
	{
		const struct cert *c2[] = { &leaf, &ca };
		record_for(&t, &ca, 3, 1, 1);
		assert_int_equal(verify(&t, 1, c2, 2, "relay.lab.test", NULL), DANE_MISMATCH);
		dane_tlsa_clear(&t);
	}
}

static void
test_ta(void **state)
{
	const struct cert *good[] = { &leaf, &ca };
	const struct cert *wrong[] = { &wrongname, &ca };
	const struct cert *old[] = { &expired, &ca };
	const struct cert *foreign[] = { &other_leaf, &other_ca };
	const struct cert *forged[] = { &other_leaf, &ca };
	struct dane_tlsa t;
	int s, m, matched;

	for (s = 0; s <= 1; s++)
		for (m = 0; m <= 2; m++) {
			record_for(&t, &ca, 2, s, m);
			assert_int_equal(verify(&t, 1, good, 2, "relay.lab.test", &matched),
			    DANE_OK_TA);
			assert_int_equal(matched, 0);
			dane_tlsa_clear(&t);
		}
	record_for(&t, &ca, 2, 0, 1);
	/* name must match */
	assert_int_equal(verify(&t, 1, wrong, 2, "relay.lab.test", NULL), DANE_MISMATCH);
	assert_int_equal(verify(&t, 1, good, 2, "RELAY.lab.test", NULL), DANE_OK_TA);
	assert_int_equal(verify(&t, 1, good, 2, "other.lab.test", NULL), DANE_MISMATCH);
	/* dates are checked for DANE-TA */
	assert_int_equal(verify(&t, 1, old, 2, "relay.lab.test", NULL), DANE_MISMATCH);
	/* another CA's chain does not match */
	assert_int_equal(verify(&t, 1, foreign, 2, "relay.lab.test", NULL), DANE_MISMATCH);
	/* the right CA presented after a leaf it did not sign */
	assert_int_equal(verify(&t, 1, forged, 2, "relay.lab.test", NULL), DANE_MISMATCH);
	/* the TA certificate must be presented */
	{
		const struct cert *alone[] = { &leaf };
		assert_int_equal(verify(&t, 1, alone, 1, "relay.lab.test", NULL), DANE_MISMATCH);
	}
	dane_tlsa_clear(&t);
}

static void
test_usable_and_mixed_sets(void **state)
{
	const struct cert *chain[] = { &leaf, &ca };
	struct dane_tlsa set[4];
	int matched;

	/* PKIX usages are unusable for SMTP (RFC 7672 3.1.3) */
	record_for(&set[0], &leaf, 1, 1, 1);
	record_for(&set[1], &ca, 0, 0, 1);
	assert_false(dane_tlsa_usable(&set[0]));
	assert_false(dane_tlsa_usable(&set[1]));
	assert_int_equal(verify(set, 2, chain, 2, "relay.lab.test", NULL), DANE_NO_USABLE);
	assert_int_equal(verify(set, 0, chain, 2, "relay.lab.test", NULL), DANE_NO_USABLE);
	/* unknown selector / matching type: unusable */
	record_for(&set[2], &leaf, 3, 1, 1);
	set[2].selector = 2;
	assert_false(dane_tlsa_usable(&set[2]));
	set[2].selector = 1;
	set[2].mtype = 3;
	assert_false(dane_tlsa_usable(&set[2]));
	set[2].mtype = 1;
	/* a bad record next to a good one: the good one wins */
	record_for(&set[3], &leaf, 3, 1, 1);
	set[3].data[0] ^= 0xff;
	assert_int_equal(verify(&set[3], 1, chain, 2, "relay.lab.test", NULL), DANE_MISMATCH);
	{
		struct dane_tlsa mixed[4] = { set[0], set[1], set[3], set[2] };
		assert_int_equal(verify(mixed, 4, chain, 2, "relay.lab.test", &matched), DANE_OK_EE);
		assert_int_equal(matched, 3);
	}
	/* no certificate, garbage certificate */
	{
		struct dane_cert junk = { (const uint8_t *)"junk", 4 };
		const char *names[1] = { "relay.lab.test" };
		assert_int_equal(dane_verify(&set[2], 1, NULL, 0, names, 1, 0, NULL, NULL, 0),
		    DANE_ERROR);
		assert_int_equal(dane_verify(&set[2], 1, &junk, 1, names, 1, 0, NULL, NULL, 0),
		    DANE_ERROR);
	}
	for (matched = 0; matched < 4; matched++)
		dane_tlsa_clear(&set[matched]);
}

static void
test_parse_text(void **state)
{
	struct dane_tlsa t;
	const char *err;
	char rec[200];
	struct dane_cert dc = { leaf.der.data, leaf.der.size };

	assert_int_equal(dane_record_for_cert(&dc, 3, 1, 1, rec, sizeof(rec)), 0);
	assert_int_equal(strlen(rec), 6 + 64);
	assert_int_equal(dane_tlsa_parse_text(rec, &t, &err), 0);
	{
		const struct cert *chain[] = { &leaf };
		assert_int_equal(verify(&t, 1, chain, 1, "x", NULL), DANE_OK_EE);
	}
	dane_tlsa_clear(&t);
	assert_int_equal(dane_record_for_cert(&dc, 3, 1, 1, rec, 60), -1);   /* too small */
	assert_int_equal(dane_tlsa_parse_text("3 1 1 0123456789ABCDEF 0123456789abcdef "
	    "0123456789abcdef0123456789abcdef", &t, &err), 0);
	assert_int_equal(t.len, 32);
	assert_int_equal(t.data[0], 0x01);
	dane_tlsa_clear(&t);
	assert_int_equal(dane_tlsa_parse_text("2 0 0 30820102", &t, &err), 0);
	assert_int_equal(t.len, 4);
	dane_tlsa_clear(&t);
	assert_int_equal(dane_tlsa_parse_text("3 1 1 abcd", &t, &err), -1);
	assert_non_null(strstr(err, "32"));
	assert_int_equal(dane_tlsa_parse_text("3 1 2 abcd", &t, &err), -1);
	assert_int_equal(dane_tlsa_parse_text("3 1 1 xyz", &t, &err), -1);
	assert_int_equal(dane_tlsa_parse_text("3 1 0 abc", &t, &err), -1);
	assert_int_equal(dane_tlsa_parse_text("3 1", &t, &err), -1);
	assert_int_equal(dane_tlsa_parse_text("256 1 1 00", &t, &err), -1);
	assert_int_equal(dane_tlsa_parse_text("3 1 0", &t, &err), -1);
	assert_int_equal(dane_tlsa_parse_text("", &t, &err), -1);
	assert_int_equal(dane_tlsa_parse_text("a 1 1 00", &t, &err), -1);
	assert_null(t.data);
}

static void
test_parse_rdata_every_length(void **state)
{
	uint8_t rd[3 + 64];
	struct dane_tlsa t;
	const char *err;
	size_t n;

	memset(rd, 0xab, sizeof(rd));
	rd[0] = 3;
	rd[1] = 1;
	rd[2] = 1;
	for (n = 0; n <= 3 + 40; n++) {
		int rc = dane_tlsa_parse_rdata(rd, n, &t, &err);

		assert_int_equal(rc, n == 35 ? 0 : -1);
		if (rc == 0) {
			assert_int_equal(t.len, 32);
			assert_true(dane_tlsa_usable(&t));
			dane_tlsa_clear(&t);
		}
	}
	rd[2] = 0;   /* full value: any non-empty length */
	assert_int_equal(dane_tlsa_parse_rdata(rd, 3, &t, &err), -1);
	assert_int_equal(dane_tlsa_parse_rdata(rd, 4, &t, &err), 0);
	dane_tlsa_clear(&t);
	rd[2] = 2;
	assert_int_equal(dane_tlsa_parse_rdata(rd, 3 + 64, &t, &err), 0);
	{
		struct dane_tlsa c;
		dane_tlsa_copy(&c, &t);
		assert_memory_equal(c.data, t.data, 64);
		dane_tlsa_clear(&c);
	}
	dane_tlsa_clear(&t);
	rd[0] = 9;   /* unknown usage: parsed, but unusable */
	rd[2] = 1;
	assert_int_equal(dane_tlsa_parse_rdata(rd, 35, &t, &err), 0);
	assert_false(dane_tlsa_usable(&t));
	dane_tlsa_clear(&t);
	assert_string_equal(dane_verdict_name(DANE_OK_EE), "ok-ee");
	assert_string_equal(dane_verdict_name(DANE_MISMATCH), "mismatch");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ee_all_selectors_and_types),
		cmocka_unit_test(test_ee_ignores_dates_and_chain),
		cmocka_unit_test(test_ta),
		cmocka_unit_test(test_usable_and_mixed_sets),
		cmocka_unit_test(test_parse_text),
		cmocka_unit_test(test_parse_rdata_every_length),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
