/* libFuzzer target: TLSA rdata and presentation parsing, and matching of
 * the parsed records against a fixed chain (a CA and a leaf generated once
 * at start-up), also with the input as a (broken) certificate.
 * Input: byte 0 selects the mode; the rest is split into up to 4 rdata
 * records by length bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "dane.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gnutls_datum_t ca_der, leaf_der;

static void
make(gnutls_x509_crt_t *crt, gnutls_x509_privkey_t *key, const char *cn, gnutls_x509_crt_t icrt,
    gnutls_x509_privkey_t ikey, int ca)
{
	time_t now = time(NULL);

	gnutls_x509_privkey_init(key);
	gnutls_x509_privkey_generate(*key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	gnutls_x509_crt_init(crt);
	gnutls_x509_crt_set_version(*crt, 3);
	gnutls_x509_crt_set_serial(*crt, "\x01\x02", 2);
	gnutls_x509_crt_set_activation_time(*crt, now - 86400);
	gnutls_x509_crt_set_expiration_time(*crt, now + 86400 * 365);
	gnutls_x509_crt_set_dn_by_oid(*crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, (unsigned)strlen(cn));
	gnutls_x509_crt_set_key(*crt, *key);
	gnutls_x509_crt_set_basic_constraints(*crt, ca, -1);
	if (!ca)
		gnutls_x509_crt_set_subject_alt_name(*crt, GNUTLS_SAN_DNSNAME, cn,
		    (unsigned)strlen(cn), GNUTLS_FSAN_SET);
	gnutls_x509_crt_sign2(*crt, icrt ? icrt : *crt, ikey ? ikey : *key, GNUTLS_DIG_SHA256, 0);
}

static void
init_once(void)
{
	static int done;
	gnutls_x509_crt_t c1, c2;
	gnutls_x509_privkey_t k1, k2;

	if (done)
		return;
	done = 1;
	gnutls_global_init();
	make(&c1, &k1, "Fuzz CA", NULL, NULL, 1);
	make(&c2, &k2, "relay.lab.test", c1, k1, 0);
	gnutls_x509_crt_export2(c1, GNUTLS_X509_FMT_DER, &ca_der);
	gnutls_x509_crt_export2(c2, GNUTLS_X509_FMT_DER, &leaf_der);
	gnutls_x509_crt_deinit(c1);
	gnutls_x509_crt_deinit(c2);
	gnutls_x509_privkey_deinit(k1);
	gnutls_x509_privkey_deinit(k2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dane_tlsa rrs[4];
	struct dane_cert chain[2];
	const char *names[1] = { "relay.lab.test" }, *err;
	size_t n = 0, off = 1, i;
	char why[300], *text;
	int matched;

	init_once();
	if (size < 1)
		return 0;
	if (data[0] & 0x80) {
		/* presentation form */
		text = malloc(size);
		memcpy(text, data + 1, size - 1);
		text[size - 1] = '\0';
		if (dane_tlsa_parse_text(text, &rrs[0], &err) == 0) {
			if (rrs[0].mtype == 1 && rrs[0].len != 32)
				abort();
			n = 1;
		}
		free(text);
	} else {
		while (off < size && n < 4) {
			size_t l = data[off++];

			if (l > size - off)
				l = size - off;
			if (dane_tlsa_parse_rdata(data + off, l, &rrs[n], &err) == 0) {
				if (rrs[n].len != l - 3)
					abort();
				n++;
			}
			off += l;
		}
	}
	chain[0].der = leaf_der.data;
	chain[0].len = leaf_der.size;
	chain[1].der = ca_der.data;
	chain[1].len = ca_der.size;
	(void)dane_verify(rrs, n, chain, 2, names, 1, 0, &matched, why, sizeof(why));
	if (matched >= (int)n)
		abort();
	/* the input as a certificate */
	chain[0].der = data;
	chain[0].len = size;
	(void)dane_verify(rrs, n, chain, 1, names, 1, 0, &matched, why, sizeof(why));
	for (i = 0; i < n; i++)
		dane_tlsa_clear(&rrs[i]);
	return 0;
}
