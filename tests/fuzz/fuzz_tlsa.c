/* libFuzzer target: TLSA rdata and presentation parsing, and matching of
 * the parsed records against a fixed chain (a root, an intermediate and a
 * leaf generated once at start-up), also with the input as a (broken)
 * certificate at the leaf and the intermediate position.
 *
 * Input: byte 0 selects the mode (0x20: a reference identifier the leaf
 * does not carry) and byte 1 the time (0: now, else days around it):
 *   0x80 set:  the rest is one record in presentation form;
 *   0x40 set:  byte 2 picks a correct record for the fixed chain (bits
 *              0-1 the certificate, 2 usage 2/3, 3 the selector, 4-7 the
 *              matching type) and the rest is XORed into its data (to reach
 *              the "almost matches" paths);
 *   otherwise: the rest is up to 4 wire rdata records, each preceded by a
 *              length octet. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "dane.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCERT 3
static gnutls_datum_t der[NCERT];      /* leaf, intermediate, root */
static time_t t_init;

static void
make(gnutls_x509_crt_t *crt, gnutls_x509_privkey_t *key, const char *cn, gnutls_x509_crt_t icrt,
    gnutls_x509_privkey_t ikey, int ca)
{
	if (gnutls_x509_privkey_init(key) < 0 ||
	    gnutls_x509_privkey_generate(*key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0 ||
	    gnutls_x509_crt_init(crt) < 0 ||
	    gnutls_x509_crt_set_version(*crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(*crt, "\x01\x02", 2) < 0 ||
	    gnutls_x509_crt_set_activation_time(*crt, t_init - 86400) < 0 ||
	    gnutls_x509_crt_set_expiration_time(*crt, t_init + 86400 * 365) < 0 ||
	    gnutls_x509_crt_set_dn_by_oid(*crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
	    (unsigned)strlen(cn)) < 0 ||
	    gnutls_x509_crt_set_key(*crt, *key) < 0 ||
	    gnutls_x509_crt_set_basic_constraints(*crt, ca, -1) < 0 ||
	    (!ca && gnutls_x509_crt_set_subject_alt_name(*crt, GNUTLS_SAN_DNSNAME, cn,
	    (unsigned)strlen(cn), GNUTLS_FSAN_SET) < 0) ||
	    gnutls_x509_crt_sign2(*crt, icrt ? icrt : *crt, ikey ? ikey : *key,
	    GNUTLS_DIG_SHA256, 0) < 0) {
		fprintf(stderr, "fuzz_tlsa: cannot make the test certificates\n");
		abort();
	}
}

static void
init_once(void)
{
	static int done;
	gnutls_x509_crt_t c[NCERT];
	gnutls_x509_privkey_t k[NCERT];
	int i;

	if (done)
		return;
	done = 1;
	t_init = time(NULL);
	gnutls_global_init();
	make(&c[2], &k[2], "Fuzz Root", NULL, NULL, 1);
	make(&c[1], &k[1], "Fuzz Intermediate", c[2], k[2], 1);
	make(&c[0], &k[0], "relay.lab.test", c[1], k[1], 0);
	for (i = 0; i < NCERT; i++) {
		if (gnutls_x509_crt_export2(c[i], GNUTLS_X509_FMT_DER, &der[i]) < 0)
			abort();
		gnutls_x509_crt_deinit(c[i]);
		gnutls_x509_privkey_deinit(k[i]);
	}
}

/* A correct record picked by sel, with x XORed into its data. */
static int
correct_record(uint8_t sel, const uint8_t *x, size_t xlen, struct dane_tlsa *t)
{
	struct dane_cert dc = { der[(sel & 3) % NCERT].data, der[(sel & 3) % NCERT].size };
	char text[4096];
	const char *err;
	size_t i;

	if (dane_record_for_cert(&dc, 2 + (sel >> 2 & 1), sel >> 3 & 1, (sel >> 4) % 3, text,
	    sizeof(text)) < 0)
		abort();
	if (dane_tlsa_parse_text(text, t, &err) < 0)
		abort();
	for (i = 0; i < xlen && i < t->len; i++)
		t->data[i] ^= x[i];
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dane_tlsa rrs[4];
	struct dane_cert chain[NCERT];
	const char *good[2] = { "relay.lab.test", "mx.lab.test" }, *bad[1] = { "mx.lab.test" };
	const char *const *names = good, *err;
	size_t n = 0, off = 2, i;
	char why[300], rec[200], *text;
	int matched;
	int64_t now;
	enum dane_verdict v;

	init_once();
	if (size < 2)
		return 0;
	/* 0: now; else steps of 3 days around the certificates' start */
	now = data[1] == 0 ? 0 : (int64_t)t_init + ((int64_t)data[1] - 128) * 86400 * 3;
	if (data[0] & 0x80) {
		text = malloc(size - 1);
		memcpy(text, data + 2, size - 2);
		text[size - 2] = '\0';
		if (dane_tlsa_parse_text(text, &rrs[0], &err) == 0) {
			if ((rrs[0].mtype == 1 && rrs[0].len != 32) ||
			    (rrs[0].mtype == 2 && rrs[0].len != 64) || rrs[0].len == 0)
				abort();
			n = 1;
		} else if (err == NULL || rrs[0].data != NULL)
			abort();
		free(text);
	} else if (data[0] & 0x40) {
		if (size < 3)
			return 0;
		correct_record(data[2], data + 3, size - 3, &rrs[0]);
		n = 1;
	} else {
		while (off < size && n < 4) {
			size_t l = data[off++];

			if (l > size - off)
				l = size - off;
			if (dane_tlsa_parse_rdata(data + off, l, &rrs[n], &err) == 0) {
				if (rrs[n].len != l - 3 ||
				    memcmp(rrs[n].data, data + off + 3, l - 3) != 0)
					abort();
				n++;
			}
			off += l;
		}
	}
	if (data[0] & 0x20)
		names = bad;
	for (i = 0; i < NCERT; i++) {
		chain[i].der = der[i].data;
		chain[i].len = der[i].size;
	}
	v = dane_verify(rrs, n, chain, NCERT, names, names == good ? 2 : 1, now, &matched, why,
	    sizeof(why));
	if (matched >= (int)n || memchr(why, '\0', sizeof(why)) == NULL || why[0] == '\0')
		abort();
	if ((v == DANE_OK_EE || v == DANE_OK_TA) != (matched >= 0))
		abort();
	/* a correct, unmodified DANE-EE record always matches */
	if ((data[0] & 0xc0) == 0x40 && size == 3 && (data[2] & 3) % NCERT == 0 && (data[2] & 4) &&
	    v != DANE_OK_EE)
		abort();
	/* the input as a certificate: the leaf, then the intermediate */
	chain[0].der = data;
	chain[0].len = size;
	(void)dane_verify(rrs, n, chain, NCERT, good, 2, now, &matched, why, sizeof(why));
	chain[0].der = der[0].data;
	chain[0].len = der[0].size;
	chain[1].der = data;
	chain[1].len = size;
	(void)dane_verify(rrs, n, chain, NCERT, good, 1, now, &matched, why, sizeof(why));
	(void)dane_record_for_cert(&chain[1], 3, data[0] & 1, data[1] % 3, rec, sizeof(rec));
	for (i = 0; i < n; i++)
		dane_tlsa_clear(&rrs[i]);
	return 0;
}
