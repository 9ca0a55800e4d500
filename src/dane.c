/*
 * dane.c — TLSA records and RFC 7672 matching.  Pure: no I/O; GnuTLS is
 * used only to parse certificates, hash and check signatures.
 */
#include "dane.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#define DANE_DATA_MAX 4096      /* a full certificate value fits */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
check_len(const struct dane_tlsa *t, const char **err_r)
{
	if (t->len == 0) {
		*err_r = "no certificate association data";
		return -1;
	}
	if (t->mtype == 1 && t->len != 32) {
		*err_r = "a SHA-256 digest (matching type 1) must be 32 octets (64 hex digits)";
		return -1;
	}
	if (t->mtype == 2 && t->len != 64) {
		*err_r = "a SHA-512 digest (matching type 2) must be 64 octets (128 hex digits)";
		return -1;
	}
	if (t->len > DANE_DATA_MAX) {
		*err_r = "certificate association data too long";
		return -1;
	}
	return 0;
}

int
dane_tlsa_parse_text(const char *s, struct dane_tlsa *out, const char **err_r)
{
	unsigned long f[3];
	const char *p = s;
	size_t i, n = 0, cap;
	int hi = -1;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < 3; i++) {
		char *end;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p < '0' || *p > '9') {
			*err_r = "expected three numbers: usage selector matching-type";
			return -1;
		}
		f[i] = strtoul(p, &end, 10);
		if (f[i] > 255 || (*end != ' ' && *end != '\t')) {
			*err_r = "usage, selector and matching type are numbers 0..255";
			return -1;
		}
		p = end;
	}
	cap = strlen(p) / 2 + 1;
	out->data = xmalloc(cap);
	for (; *p != '\0'; p++) {
		int v;

		if (*p == ' ' || *p == '\t')
			continue;
		if ((v = hexval((unsigned char)*p)) < 0) {
			*err_r = "certificate association data must be hex digits";
			goto err;
		}
		if (hi < 0)
			hi = v;
		else {
			out->data[n++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	if (hi >= 0) {
		*err_r = "odd number of hex digits";
		goto err;
	}
	out->usage = (uint8_t)f[0];
	out->selector = (uint8_t)f[1];
	out->mtype = (uint8_t)f[2];
	out->len = n;
	if (check_len(out, err_r) < 0)
		goto err;
	return 0;
err:
	dane_tlsa_clear(out);
	return -1;
}

int
dane_tlsa_parse_rdata(const uint8_t *rdata, size_t len, struct dane_tlsa *out,
    const char **err_r)
{
	memset(out, 0, sizeof(*out));
	if (len < 4) {
		*err_r = "TLSA rdata shorter than 4 octets";
		return -1;
	}
	out->usage = rdata[0];
	out->selector = rdata[1];
	out->mtype = rdata[2];
	out->len = len - 3;
	if (check_len(out, err_r) < 0) {
		out->len = 0;
		return -1;
	}
	out->data = xmalloc(out->len);
	memcpy(out->data, rdata + 3, out->len);
	return 0;
}

void
dane_tlsa_copy(struct dane_tlsa *dst, const struct dane_tlsa *src)
{
	*dst = *src;
	dst->data = xmalloc(src->len ? src->len : 1);
	memcpy(dst->data, src->data, src->len);
}

void
dane_tlsa_clear(struct dane_tlsa *t)
{
	free(t->data);
	t->data = NULL;
	t->len = 0;
}

int
dane_tlsa_usable(const struct dane_tlsa *t)
{
	return (t->usage == DANE_USAGE_DANE_TA || t->usage == DANE_USAGE_DANE_EE) &&
	    t->selector <= 1 && t->mtype <= 2 &&
	    (t->mtype != 1 || t->len == 32) && (t->mtype != 2 || t->len == 64) && t->len > 0;
}

/* The bytes a record's selector picks from a certificate: the DER of the
 * whole certificate (0) or of its SubjectPublicKeyInfo (1). */
static int
selected(gnutls_x509_crt_t crt, const struct dane_cert *dc, int selector, gnutls_datum_t *out,
    int *allocated)
{
	gnutls_pubkey_t pk;
	int r;

	*allocated = 0;
	if (selector == 0) {
		out->data = (unsigned char *)(uintptr_t)dc->der;
		out->size = (unsigned)dc->len;
		return 0;
	}
	if (gnutls_pubkey_init(&pk) < 0)
		return -1;
	r = gnutls_pubkey_import_x509(pk, crt, 0);
	if (r >= 0)
		r = gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, out);
	gnutls_pubkey_deinit(pk);
	if (r < 0)
		return -1;
	*allocated = 1;
	return 0;
}

/* Does record t match certificate crt (DER dc)?  1 yes, 0 no, -1 error. */
static int
record_matches(const struct dane_tlsa *t, gnutls_x509_crt_t crt, const struct dane_cert *dc)
{
	gnutls_datum_t sel;
	uint8_t md[64];
	int alloc, r = 0;

	if (selected(crt, dc, t->selector, &sel, &alloc) < 0)
		return -1;
	switch (t->mtype) {
	case 0:
		r = sel.size == t->len && memcmp(sel.data, t->data, t->len) == 0;
		break;
	case 1:
		if (gnutls_hash_fast(GNUTLS_DIG_SHA256, sel.data, sel.size, md) < 0)
			r = -1;
		else
			r = t->len == 32 && memcmp(md, t->data, 32) == 0;
		break;
	case 2:
		if (gnutls_hash_fast(GNUTLS_DIG_SHA512, sel.data, sel.size, md) < 0)
			r = -1;
		else
			r = t->len == 64 && memcmp(md, t->data, 64) == 0;
		break;
	}
	if (alloc)
		gnutls_free(sel.data);
	return r;
}

static int
name_matches(gnutls_x509_crt_t leaf, const char *const *names, size_t nnames)
{
	size_t i;

	for (i = 0; i < nnames; i++)
		if (names[i] != NULL && gnutls_x509_crt_check_hostname2(leaf, names[i], 0))
			return 1;
	return 0;
}

/* DANE-TA: does the chain from the leaf up to chain[ta] verify, with dates
 * and the name?  The TA certificate is the only trust anchor.  A bare
 * public key TA (selector 1 matching a key not present as a certificate)
 * is not supported: the TA certificate must be in the presented chain. */
static int
ta_chain_ok(gnutls_x509_crt_t *crts, size_t ta, const char *const *names, size_t nnames,
    int64_t now, char *why, size_t whylen)
{
	gnutls_x509_trust_list_t tl;
	unsigned status = 0;
	int r;

	if (!name_matches(crts[0], names, nnames)) {
		snprintf(why, whylen, "DANE-TA: the certificate does not name %s",
		    nnames > 0 && names[0] ? names[0] : "the host");
		return 0;
	}
	if (ta == 0) {
		/* the leaf itself is the trust anchor (self-issued): dates only */
		time_t t = now ? (time_t)now : time(NULL);
		if (gnutls_x509_crt_get_activation_time(crts[0]) > t ||
		    gnutls_x509_crt_get_expiration_time(crts[0]) < t) {
			snprintf(why, whylen, "DANE-TA: certificate outside its validity period");
			return 0;
		}
		return 1;
	}
	if (gnutls_x509_trust_list_init(&tl, 0) < 0)
		return -1;
	/* the trust list takes ownership of the CA cert: give it a copy */
	{
		gnutls_x509_crt_t ca;
		gnutls_datum_t der;

		if (gnutls_x509_crt_init(&ca) < 0 ||
		    gnutls_x509_crt_export2(crts[ta], GNUTLS_X509_FMT_DER, &der) < 0) {
			gnutls_x509_trust_list_deinit(tl, 1);
			return -1;
		}
		r = gnutls_x509_crt_import(ca, &der, GNUTLS_X509_FMT_DER);
		gnutls_free(der.data);
		if (r < 0 || gnutls_x509_trust_list_add_cas(tl, &ca, 1, 0) != 1) {
			gnutls_x509_crt_deinit(ca);
			gnutls_x509_trust_list_deinit(tl, 1);
			return -1;
		}
	}
	{
		unsigned flags = GNUTLS_VERIFY_DISABLE_CRL_CHECKS;

		if (now != 0)
			flags |= GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
			    GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS;
		r = gnutls_x509_trust_list_verify_crt2(tl, crts, (unsigned)ta, NULL, 0, flags,
		    &status, NULL);
	}
	gnutls_x509_trust_list_deinit(tl, 1);
	if (r < 0)
		return -1;
	if (status != 0) {
		gnutls_datum_t txt;

		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt,
		    0) >= 0) {
			snprintf(why, whylen, "DANE-TA: chain does not verify: %s", txt.data);
			gnutls_free(txt.data);
		} else
			snprintf(why, whylen, "DANE-TA: chain does not verify");
		return 0;
	}
	if (now != 0) {
		size_t i;
		for (i = 0; i <= ta; i++)
			if (gnutls_x509_crt_get_activation_time(crts[i]) > (time_t)now ||
			    gnutls_x509_crt_get_expiration_time(crts[i]) < (time_t)now) {
				snprintf(why, whylen, "DANE-TA: a certificate of the chain is outside its "
				    "validity period");
				return 0;
			}
	}
	return 1;
}

enum dane_verdict
dane_verify(const struct dane_tlsa *rrs, size_t nrrs, const struct dane_cert *chain,
    size_t nchain, const char *const *names, size_t nnames, int64_t now, int *matched_r,
    char *why, size_t whylen)
{
	gnutls_x509_crt_t crts[16];
	char dummy[8];
	size_t i, j, ncrt = 0, usable = 0;
	enum dane_verdict v = DANE_MISMATCH;
	int ta_tried = 0;

	if (why == NULL) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	why[0] = '\0';
	if (matched_r != NULL)
		*matched_r = -1;
	for (i = 0; i < nrrs; i++)
		if (dane_tlsa_usable(&rrs[i]))
			usable++;
	if (usable == 0) {
		snprintf(why, whylen, "no usable TLSA record (%zu record(s); only DANE-TA(2) and "
		    "DANE-EE(3) are usable for SMTP)", nrrs);
		return DANE_NO_USABLE;
	}
	if (nchain == 0) {
		snprintf(why, whylen, "the peer presented no certificate");
		return DANE_ERROR;
	}
	if (nchain > sizeof(crts) / sizeof(crts[0]))
		nchain = sizeof(crts) / sizeof(crts[0]);
	for (ncrt = 0; ncrt < nchain; ncrt++) {
		gnutls_datum_t d = { (unsigned char *)(uintptr_t)chain[ncrt].der,
		    (unsigned)chain[ncrt].len };

		if (gnutls_x509_crt_init(&crts[ncrt]) < 0)
			break;
		if (gnutls_x509_crt_import(crts[ncrt], &d, GNUTLS_X509_FMT_DER) < 0) {
			gnutls_x509_crt_deinit(crts[ncrt]);
			break;
		}
	}
	if (ncrt == 0) {
		snprintf(why, whylen, "the peer's certificate cannot be parsed");
		return DANE_ERROR;
	}
	/* DANE-EE first: the leaf only, no names, no dates */
	for (i = 0; i < nrrs; i++) {
		if (!dane_tlsa_usable(&rrs[i]) || rrs[i].usage != DANE_USAGE_DANE_EE)
			continue;
		if (record_matches(&rrs[i], crts[0], &chain[0]) == 1) {
			if (matched_r != NULL)
				*matched_r = (int)i;
			snprintf(why, whylen, "DANE-EE %u %u matched the certificate",
			    rrs[i].selector, rrs[i].mtype);
			v = DANE_OK_EE;
			goto out;
		}
	}
	/* DANE-TA: a certificate of the chain (issuers first, the leaf last) */
	for (i = 0; i < nrrs; i++) {
		if (!dane_tlsa_usable(&rrs[i]) || rrs[i].usage != DANE_USAGE_DANE_TA)
			continue;
		for (j = ncrt; j-- > 0;) {
			int ok;

			if (record_matches(&rrs[i], crts[j], &chain[j]) != 1)
				continue;
			ta_tried = 1;
			ok = ta_chain_ok(crts, j, names, nnames, now, why, whylen);
			if (ok == 1) {
				if (matched_r != NULL)
					*matched_r = (int)i;
				snprintf(why, whylen, "DANE-TA %u %u matched certificate %zu of the "
				    "chain; chain and name verified", rrs[i].selector, rrs[i].mtype, j);
				v = DANE_OK_TA;
				goto out;
			}
			if (ok < 0) {
				snprintf(why, whylen, "DANE-TA chain verification failed internally");
				v = DANE_ERROR;
				goto out;
			}
		}
	}
	if (!ta_tried)
		snprintf(why, whylen, "none of %zu usable TLSA record(s) matches the certificate "
		    "chain", usable);
	v = DANE_MISMATCH;
out:
	for (i = 0; i < ncrt; i++)
		gnutls_x509_crt_deinit(crts[i]);
	return v;
}

int
dane_record_for_cert(const struct dane_cert *cert, int usage, int selector, int mtype,
    char *out, size_t outlen)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)cert->der, (unsigned)cert->len }, sel;
	uint8_t md[64];
	const uint8_t *val;
	size_t vlen, i, o;
	int alloc, r;

	if (gnutls_x509_crt_init(&crt) < 0)
		return -1;
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0 ||
	    selected(crt, cert, selector, &sel, &alloc) < 0) {
		gnutls_x509_crt_deinit(crt);
		return -1;
	}
	r = 0;
	if (mtype == 1) {
		r = gnutls_hash_fast(GNUTLS_DIG_SHA256, sel.data, sel.size, md);
		val = md;
		vlen = 32;
	} else if (mtype == 2) {
		r = gnutls_hash_fast(GNUTLS_DIG_SHA512, sel.data, sel.size, md);
		val = md;
		vlen = 64;
	} else {
		val = sel.data;
		vlen = sel.size;
	}
	o = (size_t)snprintf(out, outlen, "%d %d %d ", usage, selector, mtype);
	if (r < 0 || o + vlen * 2 + 1 > outlen) {
		r = -1;
	} else {
		for (i = 0; i < vlen; i++, o += 2)
			snprintf(out + o, outlen - o, "%02x", val[i]);
	}
	if (alloc)
		gnutls_free(sel.data);
	gnutls_x509_crt_deinit(crt);
	return r < 0 ? -1 : 0;
}

const char *
dane_verdict_name(enum dane_verdict v)
{
	switch (v) {
	case DANE_OK_EE: return "ok-ee";
	case DANE_OK_TA: return "ok-ta";
	case DANE_NO_USABLE: return "no-usable";
	case DANE_MISMATCH: return "mismatch";
	case DANE_ERROR: return "error";
	}
	return "?";
}
