/* dkim_sign.c — native DKIM signatures: canonicalization, hashes, keys, the field. */
#include "dkim_sign.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <sodium.h>

#define LINE_MAX_COLS	78	/* RFC 5322 2.1.1 */
#define FOLD		"\r\n\t"
#define FOLD_COLS	8	/* the TAB of a continuation line, in columns */

struct dkim_signkey {
	enum dkim_keytype type;
	unsigned char *ed_sk;		/* sodium_malloc: crypto_sign_SECRETKEYBYTES, read-only */
	EVP_PKEY *rsa;
	size_t siglen;
};

struct dkim_canon {
	uint8_t *hdrs;			/* the signed fields, canonicalized, in h= order */
	size_t hdrslen;
	char *hlist;			/* h= */
	char bh[sodium_base64_ENCODED_LEN(DKIM_SHA256_LEN, sodium_base64_VARIANT_ORIGINAL)];
};

/* Where canonical octets go: a hash, or a growing buffer (hash == NULL). */
struct sink {
	gnutls_hash_hd_t hash;
	uint8_t *buf;
	size_t len, cap;
	int failed;
};

static void
put(struct sink *s, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (s->hash != NULL) {
		if (gnutls_hash(s->hash, p, n) < 0)
			s->failed = 1;
		return;
	}
	if (s->cap - s->len < n) {
		while (s->cap - s->len < n)
			s->cap = s->cap ? s->cap * 2 : 1024;
		s->buf = xrealloc(s->buf, s->cap);
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

/* ---- keys ---- */

struct dkim_signkey *
dkim_signkey_ed25519(const uint8_t *seed, size_t seedlen, char *err, size_t errlen)
{
	struct dkim_signkey *k;
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];

	if (seedlen != crypto_sign_SEEDBYTES) {
		snprintf(err, errlen, "Ed25519 private key of %zu octets, not %u", seedlen,
		    (unsigned int)crypto_sign_SEEDBYTES);
		return NULL;
	}
	k = xcalloc(1, sizeof(*k));
	k->type = DKIM_KEY_ED25519;
	k->siglen = crypto_sign_BYTES;
	if ((k->ed_sk = sodium_malloc(crypto_sign_SECRETKEYBYTES)) == NULL) {
		snprintf(err, errlen, "sodium_malloc failed");
		free(k);
		return NULL;
	}
	crypto_sign_ed25519_seed_keypair(pk, k->ed_sk, seed);
	sodium_mprotect_readonly(k->ed_sk);
	return k;
}

/* OpenSSL's first queued error, for a message; the queue is emptied. */
static const char *
ossl_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (e == 0)
		return "no reason given";
	ERR_error_string_n(e, buf, len);
	return buf;
}

/* The public exponent must be odd and at least 65537 (FIPS 186-5 5.4,
 * BSI TR-02102-1): with e = 3, a verifier that checks PKCS#1 v1.5 padding
 * laxly accepts signatures anyone can forge (Bleichenbacher, 2006). */
static int
rsa_exponent_check(const EVP_PKEY *pk, char *err, size_t errlen)
{
	BIGNUM *e = NULL;
	char *dec;
	int ok;

	if (!EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e)) {
		snprintf(err, errlen, "OpenSSL does not give the RSA public exponent");
		return -1;
	}
	ok = BN_is_odd(e) && BN_num_bits(e) >= 17;
	if (!ok) {
		dec = BN_bn2dec(e);
		snprintf(err, errlen, "RSA public exponent %s; DKIM keys need an odd one of at "
		    "least 65537 (with a small one, lax verifiers accept forged signatures)",
		    dec ? dec : "(unprintable)");
		OPENSSL_free(dec);
	}
	BN_free(e);
	return ok ? 0 : -1;
}

struct dkim_signkey *
dkim_signkey_rsa(const uint8_t *der, size_t derlen, unsigned int bits, char *err,
    size_t errlen)
{
	struct dkim_signkey *k;
	const unsigned char *p = der;
	EVP_PKEY *pk;
	char why[256];

	ERR_clear_error();
	if (derlen > 65536 || (pk = d2i_AutoPrivateKey(NULL, &p, (long)derlen)) == NULL) {
		snprintf(err, errlen, "OpenSSL cannot read the RSA key: %s",
		    ossl_error(why, sizeof(why)));
		return NULL;
	}
	if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pk) != (int)bits) {
		snprintf(err, errlen, "OpenSSL reads a %s key of %d bits, not RSA of %u",
		    OBJ_nid2sn(EVP_PKEY_get_base_id(pk)), EVP_PKEY_get_bits(pk), bits);
		EVP_PKEY_free(pk);
		return NULL;
	}
	if (rsa_exponent_check(pk, err, errlen) < 0) {
		EVP_PKEY_free(pk);
		return NULL;
	}
	k = xcalloc(1, sizeof(*k));
	k->type = DKIM_KEY_RSA;
	k->rsa = pk;
	k->siglen = (size_t)EVP_PKEY_get_size(pk);
	return k;
}

void
dkim_signkey_free(struct dkim_signkey **kp)
{
	struct dkim_signkey *k = *kp;

	if (k == NULL)
		return;
	if (k->ed_sk != NULL)
		sodium_free(k->ed_sk);	/* wipes */
	EVP_PKEY_free(k->rsa);		/* BN_clear_free of the private numbers */
	free(k);
	*kp = NULL;
}

/* Sign the 32-octet hash h into sig (k->siglen octets). */
static int
key_sign(const struct dkim_signkey *k, const uint8_t *h, uint8_t *sig, char *err,
    size_t errlen)
{
	EVP_PKEY_CTX *ctx;
	size_t n = k->siglen;
	char why[256];
	int ok;

	if (k->type == DKIM_KEY_ED25519) {
		if (crypto_sign_ed25519_detached(sig, NULL, h, DKIM_SHA256_LEN, k->ed_sk) != 0) {
			snprintf(err, errlen, "Ed25519 signature failed");
			return -1;
		}
		return 0;
	}
	ERR_clear_error();
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->rsa, NULL);
	ok = ctx != NULL && EVP_PKEY_sign_init(ctx) > 0 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) > 0 &&
	    EVP_PKEY_sign(ctx, sig, &n, h, DKIM_SHA256_LEN) > 0 && n == k->siglen;
	EVP_PKEY_CTX_free(ctx);
	if (!ok) {
		snprintf(err, errlen, "RSA signature failed: %s", ossl_error(why, sizeof(why)));
		return -1;
	}
	return 0;
}

/* ---- canonicalization ---- */

static int
is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* White space inside a header value, as libopendkim sees it (isspace()). */
static int
is_hdr_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* The relaxed form of one field (name without WSP before the colon), then
 * CRLF when crlf. */
static void
canon_field(struct sink *s, const uint8_t *text, size_t len, size_t namelen, int crlf)
{
	const uint8_t *v = text + namelen + 1;
	size_t n = len - namelen - 1, i = 0, j, start;
	char name[64];
	size_t k, m;

	for (k = 0; k < namelen; k += m) {
		m = namelen - k < sizeof(name) ? namelen - k : sizeof(name);
		for (j = 0; j < m; j++)
			name[j] = ascii_tolower((char)text[k + j]);
		put(s, name, m);
	}
	put(s, ":", 1);
	while (i < n && (is_wsp(v[i]) || v[i] == '\r' || v[i] == '\n'))
		i++;
	start = i;
	while (i < n) {
		if (!is_hdr_space(v[i])) {
			i++;
			continue;
		}
		for (j = i; j < n && is_hdr_space(v[j]); j++)
			;
		if (j == n)
			break;			/* white space at the end: dropped */
		if (j - i == 1 && v[i] == ' ') {
			i = j;			/* one SP: already canonical */
			continue;
		}
		put(s, v + start, i - start);
		put(s, " ", 1);
		start = i = j;
	}
	put(s, v + start, i - start);
	if (crlf)
		put(s, "\r\n", 2);
}

/* n CRLFs: empty lines held back that turned out not to end the body. */
static void
put_crlfs(struct sink *s, size_t n)
{
	static const char crlfs[] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
	size_t k;

	for (; n > 0; n -= k) {
		k = n < (sizeof(crlfs) - 1) / 2 ? n : (sizeof(crlfs) - 1) / 2;
		put(s, crlfs, 2 * k);
	}
}

#define ONES	0x0101010101010101ULL
#define LOW7	0x7f7f7f7f7f7f7f7fULL

/* 0x80 in each octet of x that equals c, 0 in the others. */
static uint64_t
octets_equal(uint64_t x, uint8_t c)
{
	uint64_t y = x ^ (ONES * c);

	return ~(((y & LOW7) + LOW7) | y | LOW7);
}

/* The first octet of b[j..le) that the relaxed body does not pass through
 * as it is: an HTAB, the first SP of two, a LF (le when there is none).
 * Eight octets at a time where the order of octets in a word allows. */
static size_t
next_change(const uint8_t *b, size_t j, size_t le)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	uint64_t x, sp, m;

	for (; j + 8 < le; j += 8) {
		memcpy(&x, b + j, 8);
		sp = octets_equal(x, ' ');
		m = octets_equal(x, '\t') | octets_equal(x, '\n') | (sp & (sp >> 8));
		if (m != 0)
			return j + ((size_t)__builtin_ctzll(m) >> 3);
		if (b[j + 7] == ' ' && b[j + 8] == ' ')
			return j + 7;
	}
#endif
	for (; j < le; j++)
		if (b[j] == '\t' || b[j] == '\n' || (b[j] == ' ' && j + 1 < le && b[j + 1] == ' '))
			return j;
	return le;
}

/* The relaxed body (RFC 6376 3.4.4), streamed from b in as few pieces as
 * canonicalization allows (lines that need no change are one piece).  -1
 * on a bare CR or LF or a missing final CRLF. */
static int
canon_body(struct sink *s, const uint8_t *b, size_t n)
{
	const uint8_t *cr;
	size_t i = 0, start = 0, blank = 0, ls, le, end, j, k;

	if (n == 0)
		return 0;
	if (n < 2 || b[n - 2] != '\r' || b[n - 1] != '\n')
		return -1;
	while (i < n) {
		ls = i;
		cr = memchr(b + i, '\r', n - i);	/* found: b ends in CRLF */
		end = (size_t)(cr - b);
		if (b[end + 1] != '\n')
			return -1;			/* a bare CR */
		i = end + 2;
		for (le = end; le > ls && is_wsp(b[le - 1]); le--)
			;
		if (le == ls) {			/* empty (or white space only) */
			put(s, b + start, ls - start);
			start = i;
			blank++;
			continue;
		}
		put_crlfs(s, blank);
		blank = 0;
		/* white space runs inside the line (b[le - 1] is not white space) */
		for (j = ls; (j = next_change(b, j, le)) < le; j = k) {
			if (b[j] == '\n')
				return -1;		/* a bare LF */
			if (j > ls && b[j - 1] == ' ')
				j--;			/* SP HTAB: the run began before */
			for (k = j; is_wsp(b[k]); k++)
				;
			put(s, b + start, j - start);
			put(s, " ", 1);
			start = k;
		}
		if (le != end) {		/* white space before the CRLF */
			put(s, b + start, le - start);
			put(s, "\r\n", 2);
			start = i;
		}
	}
	put(s, b + start, n - start);
	return 0;
}

/* Index of the listed name equal to f's (case-insensitive), or -1. */
static long
listed(const char *const *names, size_t nnames, const struct dkim_field *f)
{
	size_t i;

	for (i = 0; i < nnames; i++)
		if (strlen(names[i]) == f->namelen &&
		    ascii_ncasecmp((const char *)f->name, names[i], f->namelen) == 0)
			return (long)i;
	return -1;
}

/* Select and canonicalize the signed fields into c->hdrs, and write h=. */
static enum dkim_result
canon_headers(struct dkim_canon *c, const char *const *names, size_t nnames,
    const struct dkim_field *f, size_t nf, char *err, size_t errlen)
{
	long *which = xcalloc(nf + 1, sizeof(*which));
	size_t *first = xcalloc(nnames + 1, sizeof(*first));
	size_t *count = xcalloc(nnames + 1, sizeof(*count));
	size_t *seen = xcalloc(nnames + 1, sizeof(*seen));
	size_t *inst = xcalloc(nf + 1, sizeof(*inst));
	struct sink s = { NULL, NULL, 0, 0, 0 };
	enum dkim_result res = DKIM_RES_BADMSG;
	size_t i, p, hlen = 0, off = 0;
	const struct dkim_field *g;

	for (i = 0; i < nf; i++) {
		if (f[i].textlen <= f[i].namelen || f[i].text[f[i].namelen] != ':') {
			snprintf(err, errlen, "white space between a header field name and its colon");
			goto out;
		}
		if ((which[i] = listed(names, nnames, &f[i])) < 0)
			continue;
		if (memchr(f[i].text, '\0', f[i].textlen) != NULL) {
			snprintf(err, errlen, "a NUL octet in a signed header field");
			goto out;
		}
		count[which[i]]++;
		hlen += f[i].namelen + 1;
	}
	/* inst[first[p] ..): the fields named names[p], in message order */
	for (p = 0; p < nnames; p++) {
		first[p] = off;
		off += count[p];
		hlen += strlen(names[p]) + 1;
	}
	for (i = 0; i < nf; i++)
		if (which[i] >= 0)
			inst[first[which[i]] + seen[which[i]]++] = i;
	memset(seen, 0, (nnames + 1) * sizeof(*seen));
	c->hlist = xmalloc(hlen + 1);
	off = 0;
	for (i = 0; i < nf; i++) {
		if (which[i] < 0)
			continue;
		p = (size_t)which[i];
		/* the j-th entry of a name takes the j-th instance from the bottom */
		g = &f[inst[first[p] + count[p] - 1 - seen[p]++]];
		canon_field(&s, g->text, g->textlen, g->namelen, 1);
		memcpy(c->hlist + off, f[i].name, f[i].namelen);
		off += f[i].namelen;
		c->hlist[off++] = ':';
	}
	for (p = 0; p < nnames; p++) {
		memcpy(c->hlist + off, names[p], strlen(names[p]));
		off += strlen(names[p]);
		c->hlist[off++] = ':';
	}
	c->hlist[off > 0 ? off - 1 : 0] = '\0';
	c->hdrs = s.buf;
	c->hdrslen = s.len;
	res = DKIM_RES_OK;
out:
	free(which);
	free(first);
	free(count);
	free(seen);
	free(inst);
	return res;
}

enum dkim_result
dkim_canon_new(const char *const *names, size_t nnames, const struct dkim_field *f, size_t nf,
    const uint8_t *body, size_t bodylen, struct dkim_canon **c_r, char *err, size_t errlen)
{
	struct dkim_canon *c = xcalloc(1, sizeof(*c));
	struct sink s = { NULL, NULL, 0, 0, 0 };
	uint8_t bh[DKIM_SHA256_LEN];
	enum dkim_result res;
	int rc;

	*c_r = NULL;
	if ((res = canon_headers(c, names, nnames, f, nf, err, errlen)) != DKIM_RES_OK)
		goto fail;
	res = DKIM_RES_INTERNAL;
	if ((rc = gnutls_hash_init(&s.hash, GNUTLS_DIG_SHA256)) < 0) {
		snprintf(err, errlen, "gnutls_hash_init: %s", gnutls_strerror(rc));
		goto fail;
	}
	rc = canon_body(&s, body, bodylen);
	gnutls_hash_deinit(s.hash, bh);
	if (rc < 0) {
		snprintf(err, errlen, "the body has a bare CR or LF or does not end in CRLF");
		res = DKIM_RES_BADMSG;
		goto fail;
	}
	if (s.failed) {
		snprintf(err, errlen, "hashing the body failed");
		goto fail;
	}
	sodium_bin2base64(c->bh, sizeof(c->bh), bh, sizeof(bh), sodium_base64_VARIANT_ORIGINAL);
	*c_r = c;
	return DKIM_RES_OK;
fail:
	dkim_canon_free(&c);
	return res;
}

const char *
dkim_canon_hlist(const struct dkim_canon *c)
{
	return c->hlist;
}

const char *
dkim_canon_bh(const struct dkim_canon *c)
{
	return c->bh;
}

void
dkim_canon_free(struct dkim_canon **cp)
{
	struct dkim_canon *c = *cp;

	if (c == NULL)
		return;
	free(c->hdrs);
	free(c->hlist);
	free(c);
	*cp = NULL;
}

/* ---- the DKIM-Signature field ---- */

/* A field being written, folded at the places the caller allows. */
struct fold {
	struct sink s;
	size_t col;
};

/* Append t[0..n): with sep, after a SP or a fold; without, directly or
 * (when it does not fit and brk allows) after a fold. */
static void
fold_add(struct fold *f, const char *t, size_t n, int sep, int brk)
{
	if ((sep || brk) && f->col > FOLD_COLS && f->col + (sep ? 1 : 0) + n > LINE_MAX_COLS) {
		put(&f->s, FOLD, strlen(FOLD));
		f->col = FOLD_COLS;
	} else if (sep) {
		put(&f->s, " ", 1);
		f->col++;
	}
	put(&f->s, t, n);
	f->col += n;
}

/* Append a tag "name=value;" as one piece. */
static void
fold_tag(struct fold *f, const char *name, const char *value)
{
	char *t = xasprintf("%s=%s;", name, value);

	fold_add(f, t, strlen(t), 1, 0);
	free(t);
}

/* Append "h=" and the names, a fold allowed after each ':'. */
static void
fold_hlist(struct fold *f, const char *hlist)
{
	const char *p = hlist, *e;
	int firstname = 1;
	char *piece;

	while (*p != '\0') {
		e = strchr(p, ':');
		e = e ? e + 1 : p + strlen(p);
		piece = xasprintf("%s%.*s%s", firstname ? "h=" : "", (int)(e - p), p,
		    *e == '\0' ? ";" : "");
		fold_add(f, piece, strlen(piece), firstname, !firstname);
		free(piece);
		firstname = 0;
		p = e;
	}
}

/* Append base64 text b, folded wherever a line is full. */
static void
fold_b64(struct fold *f, const char *b)
{
	size_t n = strlen(b), k;

	while (n > 0) {
		if (f->col >= LINE_MAX_COLS) {
			put(&f->s, FOLD, strlen(FOLD));
			f->col = FOLD_COLS;
		}
		k = LINE_MAX_COLS - f->col;
		if (k > n)
			k = n;
		put(&f->s, b, k);
		f->col += k;
		b += k;
		n -= k;
	}
}

int
dkim_canon_sign(const struct dkim_canon *c, const struct dkim_signkey *k, const char *domain,
    const char *selector, uint64_t t, char **field_r, char *err, size_t errlen)
{
	struct fold f = { { NULL, NULL, 0, 0, 0 }, 0 };
	struct sink h = { NULL, NULL, 0, 0, 0 };
	uint8_t digest[DKIM_SHA256_LEN], sig[1024];
	char *b64 = NULL, ts[24];
	size_t b64len;
	int rc;

	*field_r = NULL;
	if (k->siglen > sizeof(sig)) {
		snprintf(err, errlen, "signature of %zu octets", k->siglen);
		return -1;
	}
	fold_add(&f, "DKIM-Signature: v=1;", strlen("DKIM-Signature: v=1;"), 0, 0);
	fold_tag(&f, "a", k->type == DKIM_KEY_RSA ? "rsa-sha256" : "ed25519-sha256");
	fold_tag(&f, "c", "relaxed/relaxed");
	fold_tag(&f, "d", domain);
	fold_tag(&f, "s", selector);
	snprintf(ts, sizeof(ts), "%llu", (unsigned long long)t);
	fold_tag(&f, "t", ts);
	fold_hlist(&f, c->hlist);
	fold_tag(&f, "bh", c->bh);
	fold_add(&f, "b=", 2, 1, 0);
	/* the header hash: the signed fields, then this field with b= empty,
	 * canonicalized, without CRLF (RFC 6376 3.7) */
	if ((rc = gnutls_hash_init(&h.hash, GNUTLS_DIG_SHA256)) < 0) {
		snprintf(err, errlen, "gnutls_hash_init: %s", gnutls_strerror(rc));
		goto fail;
	}
	put(&h, c->hdrs, c->hdrslen);
	canon_field(&h, f.s.buf, f.s.len, strlen("DKIM-Signature"), 0);
	gnutls_hash_deinit(h.hash, digest);
	if (h.failed) {
		snprintf(err, errlen, "hashing the header failed");
		goto fail;
	}
	if (key_sign(k, digest, sig, err, errlen) < 0)
		goto fail;
	b64len = sodium_base64_ENCODED_LEN(k->siglen, sodium_base64_VARIANT_ORIGINAL);
	b64 = xmalloc(b64len);
	sodium_bin2base64(b64, b64len, sig, k->siglen, sodium_base64_VARIANT_ORIGINAL);
	fold_b64(&f, b64);
	put(&f.s, "\r\n", 3);		/* with the NUL */
	free(b64);
	*field_r = (char *)f.s.buf;
	return 0;
fail:
	free(f.s.buf);
	return -1;
}
