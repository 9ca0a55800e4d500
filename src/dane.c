/*
 * dane.c — TLSA records and RFC 7672 matching.  Pure: no I/O; GnuTLS is
 * used only to parse certificates, hash and check signatures.
 *
 * Selector 1 takes the SubjectPublicKeyInfo octets exactly as they appear
 * in the certificate (RFC 6698 2.1.2), found by a small bounds-checked DER
 * walk, not re-encoded; the same walk yields the signed part of a
 * certificate when a bare public key (DANE-TA 2 1 0) must be checked as
 * its signer.
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

#define DANE_DATA_MAX   16384   /* a full certificate value fits */
#define DANE_CHAIN_MAX  16      /* certificates of a presented chain looked at */

/* A presented chain, parsed, with what the checks need. */
struct chain {
	gnutls_x509_crt_t crt[DANE_CHAIN_MAX];
	const struct dane_cert *dc;     /* the DER as presented */
	size_t n;
	const char *const *names;
	size_t nnames;
	time_t now;
	char *why;
	size_t whylen;
};

/* One DER element: the whole of it and its contents. */
struct der {
	const uint8_t *elem, *content;
	size_t elemlen, contentlen;
};

static int
is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
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
	size_t i, n = 0;
	int hi = -1;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < 3; i++) {
		char *end;

		while (is_blank((unsigned char)*p))
			p++;
		if (*p < '0' || *p > '9') {
			*err_r = "expected usage, selector and matching type, then hex data";
			return -1;
		}
		f[i] = strtoul(p, &end, 10);
		if (f[i] > 255 || (*end != '\0' && !is_blank((unsigned char)*end))) {
			*err_r = "usage, selector and matching type are numbers 0..255";
			return -1;
		}
		p = end;
	}
	out->data = xmalloc(strlen(p) / 2 + 1);
	for (; *p != '\0'; p++) {
		int v;

		if (is_blank((unsigned char)*p))
			continue;
		if ((v = ascii_hexval((unsigned char)*p)) < 0) {
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
	if (rdata == NULL || len < 3) {
		*err_r = "TLSA rdata shorter than 3 octets";
		return -1;
	}
	out->usage = rdata[0];
	out->selector = rdata[1];
	out->mtype = rdata[2];
	out->len = len - 3;
	if (check_len(out, err_r) < 0) {
		memset(out, 0, sizeof(*out));
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
	if (src->len > 0)
		memcpy(dst->data, src->data, src->len);
}

void
dane_tlsa_clear(struct dane_tlsa *t)
{
	if (t == NULL)
		return;
	free(t->data);
	t->data = NULL;
	t->len = 0;
}

int
dane_tlsa_usable(const struct dane_tlsa *t)
{
	return (t->usage == DANE_USAGE_DANE_TA || t->usage == DANE_USAGE_DANE_EE) &&
	    t->selector <= 1 && t->mtype <= 2 && t->len > 0 && t->data != NULL &&
	    (t->mtype != 1 || t->len == 32) && (t->mtype != 2 || t->len == 64);
}

/* Take the DER element at *pp (before end), which must carry tag (single
 * octet) and a definite length of at most 4 length octets; advance *pp. */
static int
der_take(const uint8_t **pp, const uint8_t *end, uint8_t tag, struct der *e)
{
	const uint8_t *p = *pp;
	size_t avail = (size_t)(end - p), hdr = 2, len, k;

	if (avail < 2 || p[0] != tag)
		return -1;
	len = p[1];
	if (len & 0x80) {
		k = len & 0x7f;
		if (k == 0 || k > 4 || avail < 2 + k)
			return -1;
		for (len = 0; k > 0; k--)
			len = len << 8 | p[hdr++];
	}
	if (len > avail - hdr)
		return -1;
	e->elem = p;
	e->elemlen = hdr + len;
	e->content = p + hdr;
	e->contentlen = len;
	*pp = p + hdr + len;
	return 0;
}

/* The tbsCertificate and subjectPublicKeyInfo elements of a DER
 * certificate (RFC 5280 4.1), pointing into dc. */
static int
cert_parts(const struct dane_cert *dc, struct der *tbs, struct der *spki)
{
	const uint8_t *p = dc->der, *end;
	struct der cert, skip;
	int i;

	if (p == NULL || der_take(&p, dc->der + dc->len, 0x30, &cert) < 0)
		return -1;
	p = cert.content;
	end = p + cert.contentlen;
	if (der_take(&p, end, 0x30, tbs) < 0)
		return -1;
	p = tbs->content;
	end = p + tbs->contentlen;
	(void)der_take(&p, end, 0xa0, &skip);           /* [0] version, optional */
	if (der_take(&p, end, 0x02, &skip) < 0)         /* serialNumber */
		return -1;
	for (i = 0; i < 4; i++)                         /* signature issuer validity subject */
		if (der_take(&p, end, 0x30, &skip) < 0)
			return -1;
	return der_take(&p, end, 0x30, spki);
}

/* The octets a selector picks from a certificate: the whole DER (0) or the
 * SubjectPublicKeyInfo (1). */
static int
selected(const struct dane_cert *dc, int selector, const uint8_t **v_r, size_t *len_r)
{
	struct der tbs, spki;

	if (selector == 0) {
		*v_r = dc->der;
		*len_r = dc->len;
		return 0;
	}
	if (selector != 1 || cert_parts(dc, &tbs, &spki) < 0)
		return -1;
	*v_r = spki.elem;
	*len_r = spki.elemlen;
	return 0;
}

/* The association data of matching type mtype for v: v itself (0) or its
 * SHA2-256 (1) or SHA2-512 (2) digest, in md when hashed. */
static int
associate(int mtype, const uint8_t *v, size_t vlen, uint8_t md[64], const uint8_t **a_r,
    size_t *alen_r)
{
	switch (mtype) {
	case 0:
		*a_r = v;
		*alen_r = vlen;
		return 0;
	case 1:
		*a_r = md;
		*alen_r = 32;
		return gnutls_hash_fast(GNUTLS_DIG_SHA256, v, vlen, md) < 0 ? -1 : 0;
	case 2:
		*a_r = md;
		*alen_r = 64;
		return gnutls_hash_fast(GNUTLS_DIG_SHA512, v, vlen, md) < 0 ? -1 : 0;
	}
	return -1;
}

/* Does record t match certificate dc?  1 yes, 0 no (also when the selected
 * part cannot be found), -1 error (hashing failed). */
static int
record_matches(const struct dane_tlsa *t, const struct dane_cert *dc)
{
	const uint8_t *v, *a;
	size_t vlen, alen;
	uint8_t md[64];

	if (selected(dc, t->selector, &v, &vlen) < 0)
		return 0;
	if (associate(t->mtype, v, vlen, md, &a, &alen) < 0)
		return -1;
	return alen == t->len && memcmp(a, t->data, alen) == 0;
}

static int
in_validity(gnutls_x509_crt_t crt, time_t now)
{
	time_t nb = gnutls_x509_crt_get_activation_time(crt);
	time_t na = gnutls_x509_crt_get_expiration_time(crt);

	return nb != (time_t)-1 && na != (time_t)-1 && nb <= now && now <= na;
}

/* Does the leaf name the reference identifier?  Case-insensitive; a
 * trailing dot is ignored; a wildcard in the certificate only as the whole
 * left-most label ("*.example.com", not "*x.example.com" nor "*.com"). */
static int
name_matches(gnutls_x509_crt_t leaf, const char *name)
{
	const unsigned flags = GNUTLS_VERIFY_DO_NOT_ALLOW_WILDCARDS;
	char buf[256], wild[258];
	const char *dot, *last;
	size_t l = strlen(name);

	if (l == 0 || l >= sizeof(buf) - 1 || strchr(name, '*') != NULL)
		return 0;
	memcpy(buf, name, l + 1);
	if (l > 1 && buf[l - 1] == '.')
		buf[--l] = '\0';
	if (gnutls_x509_crt_check_hostname2(leaf, buf, flags))
		return 1;
	/* the literal "*.rest" in the certificate, when rest has two labels and
	 * the name is not an IPv4 address */
	if ((dot = strchr(buf, '.')) == NULL || dot == buf || dot[1] == '\0' ||
	    (last = strrchr(buf, '.')) == dot || strspn(last + 1, "0123456789") == strlen(last + 1))
		return 0;
	snprintf(wild, sizeof(wild), "*%s", dot);
	return gnutls_x509_crt_check_hostname2(leaf, wild, flags);
}

static int
name_ok(const struct chain *c)
{
	size_t i;

	for (i = 0; i < c->nnames; i++)
		if (c->names[i] != NULL && name_matches(c->crt[0], c->names[i]))
			return 1;
	return 0;
}

static void
why_status(const struct chain *c, unsigned status)
{
	gnutls_datum_t txt;

	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) >= 0) {
		snprintf(c->why, c->whylen, "DANE-TA: the chain does not verify to the trust "
		    "anchor: %s", txt.data);
		gnutls_free(txt.data);
	} else
		snprintf(c->why, c->whylen, "DANE-TA: the chain does not verify to the trust "
		    "anchor");
}

/* With the certificate anchor (DER; when nbelow is 0 it is the leaf itself)
 * as the only trust anchor: the signatures of crt[0..nbelow) up to it, the
 * validity dates of those and of the anchor, and the leaf's name.  1 ok,
 * 0 not (c->why says why), -1 internal error. */
static int
path_ok(struct chain *c, size_t nbelow, const uint8_t *anchor, size_t anchorlen)
{
	gnutls_x509_trust_list_t tl;
	gnutls_x509_crt_t ta;
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)anchor, (unsigned)anchorlen };
	unsigned status = 0, flags = GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
	    GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_CRL_CHECKS;
	size_t i;
	int r, dates = 1;

	if (nbelow > 0) {
		if (gnutls_x509_crt_init(&ta) < 0)
			return -1;
		if (gnutls_x509_crt_import(ta, &d, GNUTLS_X509_FMT_DER) < 0) {
			gnutls_x509_crt_deinit(ta);
			return 0;
		}
		if (gnutls_x509_trust_list_init(&tl, 0) < 0) {
			gnutls_x509_crt_deinit(ta);
			return -1;
		}
		/* the list owns ta from here */
		if (gnutls_x509_trust_list_add_cas(tl, &ta, 1, 0) != 1) {
			gnutls_x509_crt_deinit(ta);
			gnutls_x509_trust_list_deinit(tl, 0);
			return -1;
		}
		r = gnutls_x509_trust_list_verify_crt2(tl, c->crt, (unsigned)nbelow, NULL, 0,
		    flags, &status, NULL);
		dates = in_validity(ta, c->now);
		gnutls_x509_trust_list_deinit(tl, 1);
		if (r < 0)
			return -1;
		if (status != 0) {
			why_status(c, status);
			return 0;
		}
	}
	for (i = 0; i < (nbelow > 0 ? nbelow : 1); i++)
		dates = dates && in_validity(c->crt[i], c->now);
	if (!dates) {
		snprintf(c->why, c->whylen, "DANE-TA: a certificate of the chain or the trust "
		    "anchor is outside its validity period");
		return 0;
	}
	if (!name_ok(c)) {
		snprintf(c->why, c->whylen, "DANE-TA: the certificate does not name %s%s",
		    c->nnames > 0 && c->names[0] != NULL ? c->names[0] : "the host",
		    c->nnames > 1 ? " (nor the other reference identifier)" : "");
		return 0;
	}
	return 1;
}

/* DANE-TA 2 0 0 whose certificate was not presented: the record's
 * certificate is the anchor of the first presented certificate it issued. */
static int
ta_full_cert(struct chain *c, const struct dane_tlsa *t, char *how, size_t howlen)
{
	gnutls_x509_crt_t ta;
	gnutls_datum_t d = { t->data, (unsigned)t->len };
	size_t j;
	int r = 0;

	if (gnutls_x509_crt_init(&ta) < 0)
		return -1;
	if (gnutls_x509_crt_import(ta, &d, GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(ta);
		return 0;
	}
	for (j = c->n; j-- > 0;)
		if (gnutls_x509_crt_check_issuer(c->crt[j], ta)) {
			r = path_ok(c, j + 1, t->data, t->len);
			snprintf(how, howlen, "the record's certificate issued certificate %zu", j);
			break;
		}
	gnutls_x509_crt_deinit(ta);
	return r;
}

/* Is certificate j signed by key? */
static int
key_signed(const struct chain *c, gnutls_pubkey_t key, size_t j)
{
	struct der tbs, spki;
	uint8_t sig[2048];
	size_t siglen = sizeof(sig);
	gnutls_datum_t d, s;
	int algo;

	if (cert_parts(&c->dc[j], &tbs, &spki) < 0 ||
	    (algo = gnutls_x509_crt_get_signature_algorithm(c->crt[j])) <= 0 ||
	    gnutls_x509_crt_get_signature(c->crt[j], (char *)sig, &siglen) < 0)
		return 0;
	d.data = (unsigned char *)(uintptr_t)tbs.elem;
	d.size = (unsigned)tbs.elemlen;
	s.data = sig;
	s.size = (unsigned)siglen;
	return gnutls_pubkey_verify_data2(key, (gnutls_sign_algorithm_t)algo, 0, &d, &s) >= 0;
}

/* DANE-TA 2 1 0 whose key no presented certificate carries: a bare public
 * key; the highest certificate it signed becomes the anchor (its own dates
 * are checked; the key has none). */
static int
ta_bare_key(struct chain *c, const struct dane_tlsa *t, char *how, size_t howlen)
{
	gnutls_pubkey_t key;
	gnutls_datum_t d = { t->data, (unsigned)t->len };
	size_t j;
	int r = 0;

	if (gnutls_pubkey_init(&key) < 0)
		return -1;
	if (gnutls_pubkey_import(key, &d, GNUTLS_X509_FMT_DER) < 0) {
		gnutls_pubkey_deinit(key);
		return 0;
	}
	for (j = c->n; j-- > 0;)
		if (key_signed(c, key, j)) {
			r = path_ok(c, j, c->dc[j].der, c->dc[j].len);
			snprintf(how, howlen, "the record's public key signed certificate %zu", j);
			break;
		}
	gnutls_pubkey_deinit(key);
	return r;
}

/* One DANE-TA record against the chain: 1 verified, 0 not (*tried_r set
 * when the record matched something and c->why tells why it failed),
 * -1 internal error. */
static int
ta_record(struct chain *c, const struct dane_tlsa *t, int *tried_r, char *how, size_t howlen)
{
	size_t j;
	int r, seen = 0, err = 0;

	for (j = c->n; j-- > 0;) {
		if ((r = record_matches(t, &c->dc[j])) < 0)
			err = 1;
		if (r != 1)
			continue;
		seen = *tried_r = 1;
		snprintf(how, howlen, "certificate %zu of the chain matched", j);
		if ((r = path_ok(c, j, c->dc[j].der, c->dc[j].len)) == 1)
			return 1;
		if (r < 0)
			err = 1;
	}
	if (seen || t->mtype != 0)
		return err ? -1 : 0;
	*how = '\0';
	r = t->selector == 0 ? ta_full_cert(c, t, how, howlen) : ta_bare_key(c, t, how, howlen);
	if (*how != '\0')
		*tried_r = 1;
	return r;
}

static size_t
chain_parse(struct chain *c, const struct dane_cert *chain, size_t nchain)
{
	c->dc = chain;
	if (nchain > DANE_CHAIN_MAX)
		nchain = DANE_CHAIN_MAX;
	for (c->n = 0; c->n < nchain; c->n++) {
		gnutls_datum_t d = { (unsigned char *)(uintptr_t)chain[c->n].der,
		    (unsigned)chain[c->n].len };

		if (chain[c->n].der == NULL || chain[c->n].len == 0 ||
		    chain[c->n].len > 0xffffff || gnutls_x509_crt_init(&c->crt[c->n]) < 0)
			break;
		if (gnutls_x509_crt_import(c->crt[c->n], &d, GNUTLS_X509_FMT_DER) < 0) {
			gnutls_x509_crt_deinit(c->crt[c->n]);
			break;
		}
	}
	return c->n;
}

static enum dane_verdict
verify_ee(struct chain *c, const struct dane_tlsa *rrs, size_t nrrs, int *matched_r)
{
	size_t i;

	for (i = 0; i < nrrs; i++) {
		if (!dane_tlsa_usable(&rrs[i]) || rrs[i].usage != DANE_USAGE_DANE_EE)
			continue;
		if (record_matches(&rrs[i], &c->dc[0]) == 1) {
			*matched_r = (int)i;
			snprintf(c->why, c->whylen, "DANE-EE %u %u %u (record %zu) matched the "
			    "certificate", rrs[i].usage, rrs[i].selector, rrs[i].mtype, i);
			return DANE_OK_EE;
		}
	}
	return DANE_MISMATCH;
}

static enum dane_verdict
verify_ta(struct chain *c, const struct dane_tlsa *rrs, size_t nrrs, size_t usable,
    int *matched_r)
{
	char how[96];
	size_t i;
	int r, tried = 0, err = 0;

	for (i = 0; i < nrrs; i++) {
		if (!dane_tlsa_usable(&rrs[i]) || rrs[i].usage != DANE_USAGE_DANE_TA)
			continue;
		r = ta_record(c, &rrs[i], &tried, how, sizeof(how));
		if (r == 1) {
			*matched_r = (int)i;
			snprintf(c->why, c->whylen, "DANE-TA %u %u %u (record %zu): %s; chain, "
			    "dates and name verified", rrs[i].usage, rrs[i].selector,
			    rrs[i].mtype, i, how);
			return DANE_OK_TA;
		}
		if (r < 0)
			err = 1;
	}
	if (err && !tried) {
		snprintf(c->why, c->whylen, "internal error while matching DANE-TA records");
		return DANE_ERROR;
	}
	if (!tried)
		snprintf(c->why, c->whylen, "none of %zu usable TLSA record(s) matches the "
		    "certificate chain", usable);
	return DANE_MISMATCH;
}

enum dane_verdict
dane_verify(const struct dane_tlsa *rrs, size_t nrrs, const struct dane_cert *chain,
    size_t nchain, const char *const *names, size_t nnames, int64_t now, int *matched_r,
    char *why, size_t whylen)
{
	struct chain c;
	char dummy[8];
	size_t i, usable = 0;
	int matched = -1;
	enum dane_verdict v;

	memset(&c, 0, sizeof(c));
	c.why = why != NULL && whylen > 0 ? why : dummy;
	c.whylen = why != NULL && whylen > 0 ? whylen : sizeof(dummy);
	c.why[0] = '\0';
	c.names = names;
	c.nnames = names != NULL ? nnames : 0;
	c.now = now != 0 ? (time_t)now : time(NULL);
	if (matched_r != NULL)
		*matched_r = -1;
	for (i = 0; i < nrrs; i++)
		if (dane_tlsa_usable(&rrs[i]))
			usable++;
	if (usable == 0) {
		snprintf(c.why, c.whylen, "no usable TLSA record (%zu record(s); only DANE-TA(2) "
		    "and DANE-EE(3) with selector 0/1 and matching type 0/1/2 are usable for SMTP)",
		    nrrs);
		return DANE_NO_USABLE;
	}
	if (chain == NULL || nchain == 0) {
		snprintf(c.why, c.whylen, "the peer presented no certificate");
		return DANE_ERROR;
	}
	if (chain_parse(&c, chain, nchain) == 0) {
		snprintf(c.why, c.whylen, "the peer's certificate cannot be parsed");
		return DANE_ERROR;
	}
	/* DANE-EE first: the leaf only, no names, no dates */
	if ((v = verify_ee(&c, rrs, nrrs, &matched)) != DANE_OK_EE)
		v = verify_ta(&c, rrs, nrrs, usable, &matched);
	if (matched_r != NULL)
		*matched_r = matched;
	for (i = 0; i < c.n; i++)
		gnutls_x509_crt_deinit(c.crt[i]);
	return v;
}

int
dane_record_for_cert(const struct dane_cert *cert, int usage, int selector, int mtype,
    char *out, size_t outlen)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)cert->der, (unsigned)cert->len };
	const uint8_t *v, *a;
	size_t vlen, alen, i, o;
	uint8_t md[64];
	int r;

	if (outlen == 0 || usage < 0 || usage > 255 || cert->der == NULL || cert->len == 0 ||
	    gnutls_x509_crt_init(&crt) < 0)
		return -1;
	r = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER);
	gnutls_x509_crt_deinit(crt);
	if (r < 0 || selected(cert, selector, &v, &vlen) < 0 ||
	    associate(mtype, v, vlen, md, &a, &alen) < 0)
		return -1;
	o = (size_t)snprintf(out, outlen, "%d %d %d ", usage, selector, mtype);
	if (o + alen * 2 + 1 > outlen) {
		out[0] = '\0';
		return -1;
	}
	for (i = 0; i < alen; i++, o += 2)
		snprintf(out + o, outlen - o, "%02x", a[i]);
	return 0;
}

const char *
dane_verdict_name(enum dane_verdict v)
{
	switch (v) {
	case DANE_OK_EE:
		return "ok-ee";
	case DANE_OK_TA:
		return "ok-ta";
	case DANE_NO_USABLE:
		return "no-usable";
	case DANE_MISMATCH:
		return "mismatch";
	case DANE_ERROR:
		return "error";
	}
	return "?";
}

void
dane_tlsa_text(const struct dane_tlsa *t, char *out, size_t outlen)
{
	const uint8_t *a = t->data;
	size_t alen = t->len, i, o;
	uint8_t h[32];
	int full = 1;

	if (outlen < 120) {
		if (outlen > 0)
			out[0] = '\0';
		return;
	}
	o = (size_t)snprintf(out, outlen, "%u %u %u ", t->usage, t->selector, t->mtype);
	if (o + 2 * alen + 1 > outlen) {
		/* a full certificate or key: its length and digest */
		if (gnutls_hash_fast(GNUTLS_DIG_SHA256, t->data, t->len, h) < 0)
			memset(h, 0, sizeof(h));
		o += (size_t)snprintf(out + o, outlen - o, "[%zu octets, SHA-256 ", t->len);
		a = h;
		alen = sizeof(h);
		full = 0;
	}
	for (i = 0; i < alen; i++, o += 2)
		snprintf(out + o, outlen - o, "%02x", a[i]);
	if (!full)
		snprintf(out + o, outlen - o, "]");
}
