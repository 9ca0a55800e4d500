/* dkim.c — DKIM keys (GnuTLS parses, dkim_sign.c holds), signing policy and messages. */
#include "dkim.h"
#include "dkim_sign.h"
#include "dkim_verify.h"
#include "log.h"
#include "rfc5322.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <sodium.h>

#define SIGHDR_NAME	"DKIM-Signature"
#define DOMAIN_MAX	RFC5322_DOMAIN_MAX	/* a From domain (front's rule) */

struct dkim_policy {
	char **names;
	size_t n;
};

struct dkim_key {
	char *domain;			/* lower case */
	char *selector;
	char *file;
	enum dkim_keytype type;
	unsigned int bits;
	struct dkim_signkey *sk;
	char *dns_txt;
};

struct dkim_keyset {
	char **names;			/* the signed header list */
	size_t nnames;
	struct dkim_key *keys;
	size_t nkeys;
};

const char *
dkim_result_name(enum dkim_result r)
{
	switch (r) {
	case DKIM_RES_OK:	return "ok";
	case DKIM_RES_NOKEY:	return "no-key";
	case DKIM_RES_BADMSG:	return "bad-message";
	case DKIM_RES_INTERNAL:	return "internal";
	}
	return "unknown";
}

/* ---- policy: the signed header list ---- */

static int
policy_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}

struct dkim_policy *
dkim_policy_parse(const char *file, const char *buf, size_t len, char *err, size_t errlen)
{
	static const char *const never[] = { "Received", "Return-Path", SIGHDR_NAME };
	struct dkim_policy *pol = xcalloc(1, sizeof(*pol));
	const char *p = buf, *end = buf + len, *eol, *s, *e;
	size_t i, k, lineno = 0;
	int have_from = 0;

	pol->names = xcalloc(DKIM_POLICY_MAX + 1, sizeof(char *));
	while (p < end) {
		lineno++;
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		s = p;
		e = memchr(s, '#', (size_t)(eol - s));
		if (e == NULL)
			e = eol;
		p = eol < end ? eol + 1 : end;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			e--;
		if (s == e)
			continue;
		k = (size_t)(e - s);
		if (memchr(s, '\0', k) != NULL || !policy_name_ok(s, k)) {
			snprintf(err, errlen, "%s:%zu: not a header field name (letters, digits "
			    "and '-', one per line)", file, lineno);
			goto fail;
		}
		for (i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
			if (strlen(never[i]) == k && ascii_ncasecmp(s, never[i], k) == 0) {
				snprintf(err, errlen, "%s:%zu: %s must never be signed", file,
				    lineno, never[i]);
				goto fail;
			}
		}
		for (i = 0; i < pol->n; i++) {
			if (strlen(pol->names[i]) == k && ascii_ncasecmp(s, pol->names[i], k) == 0) {
				snprintf(err, errlen, "%s:%zu: %.*s listed twice", file, lineno,
				    (int)k, s);
				goto fail;
			}
		}
		if (pol->n == DKIM_POLICY_MAX) {
			snprintf(err, errlen, "%s:%zu: more than %d header names", file, lineno,
			    DKIM_POLICY_MAX);
			goto fail;
		}
		if (k == 4 && ascii_ncasecmp(s, "From", 4) == 0)
			have_from = 1;
		pol->names[pol->n++] = xstrndup(s, k);
	}
	if (!have_from) {
		snprintf(err, errlen, "%s: From is not listed (it must always be signed)", file);
		goto fail;
	}
	return pol;
fail:
	dkim_policy_free(&pol);
	return NULL;
}

/* Read a whole small file into a new NUL-terminated buffer from alloc. */
static char *
read_small_file(int fd, const char *path, size_t max, void *(*alloc)(size_t),
    size_t *len_r, char *err, size_t errlen)
{
	struct stat sb;
	char *buf;
	size_t off = 0;
	ssize_t n;

	if (fstat(fd, &sb) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return NULL;
	}
	if (sb.st_size <= 0 || (uint64_t)sb.st_size > max) {
		snprintf(err, errlen, "%s: size %lld is not in 1..%zu bytes", path,
		    (long long)sb.st_size, max);
		return NULL;
	}
	if ((buf = alloc((size_t)sb.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: cannot allocate memory", path);
		return NULL;
	}
	while (off < (size_t)sb.st_size) {
		n = read(fd, buf + off, (size_t)sb.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: read: %s", path,
			    n < 0 ? strerror(errno) : "file shrank");
			*len_r = off;
			buf[off] = '\0';
			return buf;	/* caller sees the short length */
		}
		off += (size_t)n;
	}
	buf[off] = '\0';
	*len_r = off;
	return buf;
}

struct dkim_policy *
dkim_policy_load(const char *path, char *err, size_t errlen)
{
	struct dkim_policy *pol;
	size_t len = 0;
	char *buf;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = read_small_file(fd, path, 64 * 1024, xmalloc, &len, err, errlen);
	close(fd);
	if (buf == NULL)
		return NULL;
	pol = dkim_policy_parse(path, buf, len, err, errlen);
	free(buf);
	return pol;
}

size_t
dkim_policy_count(const struct dkim_policy *pol)
{
	return pol->n;
}

const char *
dkim_policy_name(const struct dkim_policy *pol, size_t i)
{
	return i < pol->n ? pol->names[i] : NULL;
}

void
dkim_policy_free(struct dkim_policy **polp)
{
	struct dkim_policy *pol = *polp;
	size_t i;

	if (pol == NULL)
		return;
	for (i = 0; i < pol->n; i++)
		free(pol->names[i]);
	free(pol->names);
	free(pol);
	*polp = NULL;
}

/* ---- message header section ---- */

/* Next header field at *off.  Returns 1 with *f, 0 at the end of the header
 * section (*off then is the start of the body, or len when there is none),
 * -1 if the header section is malformed (bare CR or LF, a line without a
 * colon-terminated name, a continuation line first, no final CRLF). */
static int
next_field(const uint8_t *msg, size_t len, size_t *off, struct dkim_field *f)
{
	size_t i = *off, start = *off, n;

	if (i == len)
		return 0;
	if (len - i >= 2 && msg[i] == '\r' && msg[i + 1] == '\n') {
		*off = i + 2;
		return 0;
	}
	if (msg[i] == ' ' || msg[i] == '\t')
		return -1;
	/* field name: printable ASCII but ':'; optional WSP before the colon */
	for (n = 0; i < len && msg[i] > 32 && msg[i] < 127 && msg[i] != ':'; i++)
		n++;
	if (n == 0)
		return -1;
	f->name = msg + start;
	f->namelen = n;
	while (i < len && (msg[i] == ' ' || msg[i] == '\t'))
		i++;
	if (i == len || msg[i] != ':')
		return -1;
	/* value: lines until a CRLF not followed by WSP */
	for (;;) {
		while (i < len && msg[i] != '\r' && msg[i] != '\n')
			i++;
		if (i + 1 >= len || msg[i] != '\r' || msg[i + 1] != '\n')
			return -1;
		i += 2;
		if (i < len && (msg[i] == ' ' || msg[i] == '\t'))
			continue;
		break;
	}
	f->text = msg + start;
	f->textlen = i - 2 - start;
	*off = i;
	return 1;
}

static int
field_is(const struct dkim_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->namelen == n && ascii_ncasecmp((const char *)f->name, name, n) == 0;
}

/* The domain of the single From field among f[0..nf) (lower-cased into
 * dom); 0, or -1. */
static int
fields_from_domain(const struct dkim_field *f, size_t nf, char *dom, size_t domlen)
{
	const struct dkim_field *from = NULL;
	const uint8_t *v;
	char *unfolded;
	size_t i, n = 0;
	int rc;

	for (i = 0; i < nf; i++) {
		if (!field_is(&f[i], "From"))
			continue;
		if (from != NULL)
			return -1;
		from = &f[i];
	}
	if (from == NULL || domlen == 0)
		return -1;
	/* the value unfolded, as front's parser holds it (message.c keeps
	 * every octet of the field but the CR LF of each fold; next_field
	 * lets no other CR or LF through): front's rule, front's parser
	 * (rfc5322.h), front's input, so they cannot disagree -- a quoted-pair
	 * before a fold reads alike */
	v = memchr(from->text, ':', from->textlen);
	unfolded = xmalloc(from->textlen);
	for (v++; v < from->text + from->textlen; v++)
		if (*v != '\r' && *v != '\n')
			unfolded[n++] = (char)*v;
	rc = rfc5322_from_domain(unfolded, n, dom, domlen);
	free(unfolded);
	return rc;
}

/* A message split into its header fields and its body. */
struct split {
	struct dkim_field *f;		/* cap entries, nf used */
	size_t nf, cap;
	const uint8_t *body;
	size_t bodylen;
};

/* Room for the field s->f[s->nf]: the array doubles from 64 entries (a
 * message has a few dozen fields) up to DKIM_FIELDS_MAX + 1, not made
 * and zeroed whole for every message. */
static struct dkim_field *
split_slot(struct split *s)
{
	if (s->nf == s->cap) {
		s->cap = s->cap == 0 ? 64 : s->cap * 2;
		if (s->cap > DKIM_FIELDS_MAX + 1)
			s->cap = DKIM_FIELDS_MAX + 1;
		s->f = xreallocarray(s->f, s->cap, sizeof(*s->f));
	}
	return &s->f[s->nf];
}

/* Split prefix[0..plen) -- complete header fields only, nothing else --
 * then msg[0..len) into s (s->f a new array, freed by the caller even on
 * failure).  0, or -1 if either is malformed or there are more than
 * DKIM_FIELDS_MAX fields. */
static int
split_fields(const uint8_t *prefix, size_t plen, const uint8_t *msg, size_t len,
    struct split *s)
{
	size_t off = 0;
	int rc;

	s->f = NULL;
	s->nf = s->cap = 0;
	while (off < plen)
		if (next_field(prefix, plen, &off, split_slot(s)) != 1 ||
		    ++s->nf > DKIM_FIELDS_MAX)
			return -1;
	off = 0;
	while ((rc = next_field(msg, len, &off, split_slot(s))) == 1)
		if (++s->nf > DKIM_FIELDS_MAX)
			return -1;
	s->body = msg + off;
	s->bodylen = len - off;
	return rc;
}

/* ---- keys ---- */

static void
key_clear(struct dkim_key *k)
{
	free(k->domain);
	free(k->selector);
	free(k->file);
	free(k->dns_txt);
	dkim_signkey_free(&k->sk);	/* wipes */
	memset(k, 0, sizeof(*k));
}

static char *
b64(const unsigned char *p, size_t n)
{
	size_t sz = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *s = xmalloc(sz);

	sodium_bin2base64(s, sz, p, n, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

/* The DNS TXT value for the public half of x. */
static char *
key_dns_txt(gnutls_x509_privkey_t x, enum dkim_keytype type)
{
	gnutls_privkey_t priv = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t d = { NULL, 0 };
	gnutls_ecc_curve_t curve;
	char *p = NULL, *txt = NULL;
	int rc;

	if (gnutls_privkey_init(&priv) < 0 || gnutls_pubkey_init(&pub) < 0 ||
	    gnutls_privkey_import_x509(priv, x, 0) < 0 ||
	    gnutls_pubkey_import_privkey(pub, priv, 0, 0) < 0)
		goto out;
	if (type == DKIM_KEY_RSA)
		rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &d);
	else
		rc = gnutls_pubkey_export_ecc_raw2(pub, &curve, &d, NULL, 0);
	if (rc < 0 || (type == DKIM_KEY_ED25519 && (curve != GNUTLS_ECC_CURVE_ED25519 ||
	    d.size != 32)))
		goto out;
	p = b64(d.data, d.size);
	txt = xasprintf("v=DKIM1; k=%s; p=%s", type == DKIM_KEY_RSA ? "rsa" : "ed25519", p);
out:
	free(p);
	gnutls_free(d.data);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(priv);
	return txt;
}

/* The signing key of x for k: the Ed25519 seed, or the RSA key as DER for
 * OpenSSL; GnuTLS's exported copies are wiped. */
static int
key_signer(struct dkim_key *k, gnutls_x509_privkey_t x, char *err, size_t errlen)
{
	gnutls_datum_t d = { NULL, 0 }, pub = { NULL, 0 };
	gnutls_ecc_curve_t curve;
	char why[256];
	int rc;

	if (k->type == DKIM_KEY_ED25519)
		rc = gnutls_x509_privkey_export_ecc_raw(x, &curve, &pub, NULL, &d);
	else
		rc = gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_DER, NULL,
		    GNUTLS_PKCS_PLAIN, &d);
	if (rc < 0)
		snprintf(err, errlen, "%s: cannot export the key: %s", k->file, gnutls_strerror(rc));
	else if (k->type == DKIM_KEY_ED25519)
		k->sk = dkim_signkey_ed25519(d.data, d.size, why, sizeof(why));
	else
		k->sk = dkim_signkey_rsa(d.data, d.size, k->bits, why, sizeof(why));
	if (rc >= 0 && k->sk == NULL)
		snprintf(err, errlen, "%s: %s", k->file, why);
	if (d.data != NULL) {
		sodium_memzero(d.data, d.size);
		gnutls_free(d.data);
	}
	gnutls_free(pub.data);
	return k->sk != NULL ? 0 : -1;
}

/* Why the text of a key file is not one key: NULL when it holds one PEM
 * block, after any text (certtool's dump of the key) and followed by
 * white space only.  A second block (another key, a certificate) or text
 * after the key leaves unclear which key signs: GnuTLS would take the
 * first private key, whatever the operator meant and published. */
static const char *
pem_shape(const char *raw, size_t len)
{
	const char *b, *e;

	if (memchr(raw, '\0', len) != NULL)
		return "a NUL octet in a PEM file";
	if ((b = strstr(raw, "-----BEGIN ")) == NULL)
		return "not a PEM file";
	if (strstr(b + 1, "-----BEGIN ") != NULL)
		return "more than one PEM block; one key per file";
	if ((e = strstr(b, "-----END ")) == NULL || (e = strstr(e + 9, "-----")) == NULL)
		return "a PEM block without its END line";
	for (e += 5; *e != '\0'; e++)
		if (*e != ' ' && *e != '\t' && *e != '\r' && *e != '\n')
			return "text after the key's END line; remove it";
	return NULL;
}

/* Parse the PEM in raw[0..len) into k: type, bits, signing key, DNS TXT. */
static int
key_parse(struct dkim_key *k, const char *raw, size_t len, char *err, size_t errlen)
{
	gnutls_x509_privkey_t x = NULL;
	gnutls_datum_t in = { (unsigned char *)(uintptr_t)raw, (unsigned int)len };
	unsigned int bits = 0;
	int rc, alg, ret = -1;
	const char *why;

	if ((why = pem_shape(raw, len)) != NULL) {
		snprintf(err, errlen, "%s: %s", k->file, why);
		return -1;
	}
	if (strstr(raw, "ENCRYPTED") != NULL) {
		snprintf(err, errlen, "%s: encrypted keys are not supported", k->file);
		return -1;
	}
	if ((rc = gnutls_x509_privkey_init(&x)) < 0 ||
	    (rc = gnutls_x509_privkey_import2(x, &in, GNUTLS_X509_FMT_PEM, NULL,
	    GNUTLS_PKCS_PLAIN)) < 0) {
		snprintf(err, errlen, "%s: not a usable PEM private key: %s", k->file,
		    gnutls_strerror(rc));
		goto out;
	}
	alg = gnutls_x509_privkey_get_pk_algorithm2(x, &bits);
	if (alg == GNUTLS_PK_RSA) {
		if (bits < 2048 || bits > 4096) {
			snprintf(err, errlen, "%s: RSA key of %u bits; DKIM keys must have "
			    "2048 to 4096 bits", k->file, bits);
			goto out;
		}
		k->type = DKIM_KEY_RSA;
	} else if (alg == GNUTLS_PK_EDDSA_ED25519) {
		k->type = DKIM_KEY_ED25519;
		bits = 256;
	} else {
		snprintf(err, errlen, "%s: %s key; DKIM keys must be RSA or Ed25519", k->file,
		    alg < 0 ? "unknown" : gnutls_pk_algorithm_get_name(alg));
		goto out;
	}
	k->bits = bits;
	if (key_signer(k, x, err, errlen) < 0)
		goto out;
	if ((k->dns_txt = key_dns_txt(x, k->type)) == NULL) {
		snprintf(err, errlen, "%s: cannot export the public key", k->file);
		goto out;
	}
	ret = 0;
out:
	gnutls_x509_privkey_deinit(x);
	return ret;
}

/* Open, check and parse one key file into k (domain/selector/file set). */
static int
key_load(struct dkim_key *k, char *err, size_t errlen)
{
	struct stat sb;
	size_t len = 0;
	char *raw;
	int fd, rc;

	if ((fd = open(k->file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		snprintf(err, errlen, "%s: cannot open DKIM key: %s", k->file, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0) {
		snprintf(err, errlen, "%s: %s", k->file, strerror(errno));
		close(fd);
		return -1;
	}
	if (S_ISREG(sb.st_mode) && (sb.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: mode %04o lets group or others read the DKIM key; "
		    "run chmod 600 %s", k->file, (unsigned int)(sb.st_mode & 07777), k->file);
		close(fd);
		return -1;
	}
	raw = read_small_file(fd, k->file, DKIM_KEYFILE_MAX, sodium_malloc, &len, err, errlen);
	close(fd);
	if (raw == NULL)
		return -1;
	if (len != (size_t)sb.st_size)
		rc = -1;	/* message already in err */
	else
		rc = key_parse(k, raw, len, err, errlen);
	sodium_free(raw);
	return rc;
}

/* ---- signing ---- */

/* Sign with one key the message canonicalized in c.  Returns 0 with a new
 * "DKIM-Signature: ...\r\n" in *sig_r, or -1 with the reason in err. */
static int
sign_one(const struct dkim_key *k, const struct dkim_canon *c, uint64_t t, char **sig_r,
    char *err, size_t errlen)
{
	char why[256];

	if (dkim_canon_sign(c, k->sk, k->domain, k->selector, t, sig_r, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "d=%s s=%s: %s", k->domain, k->selector, why);
		return -1;
	}
	return 0;
}

/* Sign the split message m with every key of domain (or with `only`,
 * when not NULL); returns a dkim_result and, on success, the concatenated
 * signatures. */
static enum dkim_result
sign_domain(struct dkim_keyset *ks, const char *domain, const struct dkim_key *only,
    const struct split *m, char **headers_r, char *err, size_t errlen)
{
	struct dkim_canon *c = NULL;
	size_t off, i, total = 0;
	char *sigs[16], *out;
	size_t nsigs = 0;
	enum dkim_result res;
	uint64_t t = (uint64_t)time(NULL);

	*headers_r = NULL;
	for (i = 0; i < ks->nkeys; i++) {
		if (strcmp(ks->keys[i].domain, domain) != 0 || (only && only != &ks->keys[i]))
			continue;
		if (c == NULL && (res = dkim_canon_new((const char *const *)ks->names,
		    ks->nnames, m->f, m->nf, m->body, m->bodylen, &c, err, errlen)) !=
		    DKIM_RES_OK)
			goto out;
		res = DKIM_RES_INTERNAL;
		if (nsigs == sizeof(sigs) / sizeof(sigs[0])) {
			snprintf(err, errlen, "more than %zu keys for %s", nsigs, domain);
			goto out;
		}
		if (sign_one(&ks->keys[i], c, t, &sigs[nsigs], err, errlen) < 0)
			goto out;
		total += strlen(sigs[nsigs++]);
	}
	res = DKIM_RES_NOKEY;
	if (nsigs == 0) {
		snprintf(err, errlen, "no DKIM key for %s", domain);
		goto out;
	}
	out = xmalloc(total + 1);
	for (off = 0, i = 0; i < nsigs; i++) {
		size_t n = strlen(sigs[i]);

		memcpy(out + off, sigs[i], n);
		off += n;
	}
	out[off] = '\0';
	*headers_r = out;
	res = DKIM_RES_OK;
out:
	for (i = 0; i < nsigs; i++)
		free(sigs[i]);
	dkim_canon_free(&c);
	return res;
}

enum dkim_result
dkim_sign_parts(struct dkim_keyset *ks, const uint8_t *prefix, size_t plen, const uint8_t *msg,
    size_t len, char **headers_r)
{
	char dom[DOMAIN_MAX], err[512], esc[DOMAIN_MAX * 4];
	enum dkim_result res = DKIM_RES_BADMSG;
	struct split m;

	*headers_r = NULL;
	if (split_fields(prefix, plen, msg, len, &m) < 0 ||
	    fields_from_domain(m.f, m.nf, dom, sizeof(dom)) < 0)
		goto out;
	res = sign_domain(ks, dom, NULL, &m, headers_r, err, sizeof(err));
	if (res == DKIM_RES_INTERNAL)
		log_err("dkim: signing for %s failed: %s",
		    log_escape(esc, sizeof(esc), dom, strlen(dom)), err);
out:
	free(m.f);
	return res;
}

enum dkim_result
dkim_sign_message(struct dkim_keyset *ks, const uint8_t *msg, size_t len, char **headers_r)
{
	return dkim_sign_parts(ks, NULL, 0, msg, len, headers_r);
}

/* The test message of the cross-check: folding, white space runs, a field
 * that is not signed, trailing white space and empty lines in the body. */
#define SELFTEST_MSG \
	"From: Self-Test <selftest@%s>\r\n" \
	"To: \"Someone\"  <someone@example.org>\r\n" \
	"Subject:  cross-check\t of the\r\n\t  native  signer \r\n" \
	"X-Not-Signed: anything\r\n" \
	"Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n" \
	"\r\n" \
	"self-test  line\t with white space \r\n" \
	"\r\n" \
	"second paragraph\r\n" \
	"\r\n" \
	" \r\n"

/* Sign the test message with k natively and have libopendkim verify it:
 * an independent implementation must accept what we sign. */
static int
key_crosscheck(struct dkim_keyset *ks, const struct dkim_key *k, struct dkim_verifier *v,
    char *err, size_t errlen)
{
	char *msg, *sig = NULL, why[512];
	enum dkim_result res = DKIM_RES_BADMSG;
	struct split m;
	int rc = -1;

	msg = xasprintf(SELFTEST_MSG, k->domain);
	snprintf(why, sizeof(why), "malformed header section");
	if (split_fields(NULL, 0, (const uint8_t *)msg, strlen(msg), &m) == 0)
		res = sign_domain(ks, k->domain, k, &m, &sig, why, sizeof(why));
	free(m.f);
	if (res != DKIM_RES_OK) {
		snprintf(err, errlen, "%s: cannot sign a test message with this key: %s", k->file,
		    why);
		goto out;
	}
	if (dkim_verifier_check(v, sig, (const uint8_t *)msg,
	    strlen(msg), k->domain, k->selector, k->dns_txt, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: libopendkim does not verify the test signature made "
		    "with this key: %s", k->file, why);
		goto out;
	}
	rc = 0;
out:
	free(sig);
	free(msg);
	return rc;
}

/* A domain or selector that can go into a DKIM-Signature field as it is. */
static int
dkim_name_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return 0;
	return 1;
}

struct dkim_keyset *
dkim_keys_load(const struct config_dkim *dkims, size_t ndkims, const struct dkim_policy *pol,
    char *err, size_t errlen)
{
	struct dkim_verifier *v = NULL;
	struct dkim_keyset *ks;
	struct dkim_key *k;
	size_t i, j, total = 0;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "sodium_init failed");
		return NULL;
	}
	ks = xcalloc(1, sizeof(*ks));
	ks->names = xcalloc(pol->n + 1, sizeof(char *));
	for (i = 0; i < pol->n; i++)
		ks->names[ks->nnames++] = xstrdup(pol->names[i]);
	if ((v = dkim_verifier_new(err, errlen)) == NULL)
		goto fail;
	for (i = 0; i < ndkims; i++)
		total += dkims[i].nkeys;
	ks->keys = xcalloc(total ? total : 1, sizeof(*ks->keys));
	for (i = 0; i < ndkims; i++) {
		for (j = 0; j < dkims[i].nkeys; j++) {
			k = &ks->keys[ks->nkeys];
			k->domain = xstrdup(dkims[i].domain);
			for (char *c = k->domain; *c; c++)
				*c = ascii_tolower(*c);
			k->selector = xstrdup(dkims[i].keys[j].selector);
			k->file = xstrdup(dkims[i].keys[j].file);
			ks->nkeys++;
			if (!dkim_name_ok(k->domain) || !dkim_name_ok(k->selector)) {
				snprintf(err, errlen, "dkim: domain or selector is not a DNS name: "
				    "%.64s %.64s", dkim_name_ok(k->domain) ? k->domain : "(bad)",
				    dkim_name_ok(k->selector) ? k->selector : "(bad)");
				goto fail;
			}
			for (size_t m = 0; m + 1 < ks->nkeys; m++) {
				if (strcmp(ks->keys[m].domain, k->domain) == 0 &&
				    strcmp(ks->keys[m].selector, k->selector) == 0) {
					snprintf(err, errlen, "dkim %s: selector %s configured twice",
					    k->domain, k->selector);
					goto fail;
				}
			}
			if (key_load(k, err, errlen) < 0 || key_crosscheck(ks, k, v, err, errlen) < 0)
				goto fail;
		}
	}
	dkim_verifier_free(&v);
	return ks;
fail:
	dkim_verifier_free(&v);
	dkim_keyset_free(&ks);
	return NULL;
}

size_t
dkim_keyset_count(const struct dkim_keyset *ks)
{
	return ks->nkeys;
}

int
dkim_keyset_info(const struct dkim_keyset *ks, size_t i, struct dkim_keyinfo *info)
{
	const struct dkim_key *k;

	if (i >= ks->nkeys)
		return -1;
	k = &ks->keys[i];
	info->domain = k->domain;
	info->selector = k->selector;
	info->file = k->file;
	info->type = k->type;
	info->bits = k->bits;
	info->dns_txt = k->dns_txt;
	return 0;
}

void
dkim_keyset_free(struct dkim_keyset **ksp)
{
	struct dkim_keyset *ks = *ksp;
	size_t i;

	if (ks == NULL)
		return;
	for (i = 0; i < ks->nkeys; i++)
		key_clear(&ks->keys[i]);
	free(ks->keys);
	for (i = 0; i < ks->nnames; i++)
		free(ks->names[i]);
	free(ks->names);
	free(ks);
	*ksp = NULL;
}
