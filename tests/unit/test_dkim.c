/* Unit tests for the native DKIM signer (dkim.c, dkim_sign.c) held to an
 * independent implementation: libopendkim verifies every signature made
 * over hundreds of generated messages (folded fields, white space runs,
 * repeated fields, 8-bit octets, VT/FF, long lines, empty and trailing
 * empty lines, empty and missing bodies), and libopendkim's own signer,
 * given the same message and header list, computes the same bh= and h=.
 * Also: the refusals, the field's layout, known canonical forms, and a key
 * whose signatures do not verify stopping the load.  Keys are made now. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <opendkim/dkim.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "config.h"
#include "dkim.h"
#include "dkim_verify.h"
#include "log.h"
#include "message.h"
#include "policy.h"
#include "rfc5322.h"
#include "spool.h"
#include "util.h"

#define NMSG		300		/* generated messages */
#define DOMAIN		"lab.test"

static char dir[64];
static char *ed_pem;			/* for libopendkim's reference signer */
static char *rsa_pem;
static struct dkim_policy *pol;
static struct dkim_keyset *ks;		/* ed and rsa for lab.test */
static struct dkim_verifier *ver;
static DKIM_LIB *reflib;

static void
write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* A new key as PKCS#8 PEM in dir/name; its PEM text when pem_r. */
static void
make_key(const char *name, gnutls_pk_algorithm_t alg, unsigned bits, char **pem_r)
{
	gnutls_x509_privkey_t k;
	gnutls_datum_t pem;
	char path[128];

	assert_int_equal(gnutls_x509_privkey_init(&k), 0);
	assert_int_equal(gnutls_x509_privkey_generate(k, alg, bits, 0), 0);
	assert_int_equal(gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM, NULL,
	    GNUTLS_PKCS_PLAIN, &pem), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	write_file(path, pem.data, pem.size);
	if (pem_r != NULL)
		*pem_r = xstrndup((const char *)pem.data, pem.size);
	gnutls_free(pem.data);
	gnutls_x509_privkey_deinit(k);
}

static struct dkim_keyset *
load(const char *domain, const char *sel1, const char *file1, const char *sel2,
    const char *file2, char *err, size_t errlen)
{
	struct config_dkim_key k[2];
	struct config_dkim d;
	char p1[128], p2[128];

	snprintf(p1, sizeof(p1), "%s/%s", dir, file1);
	snprintf(p2, sizeof(p2), "%s/%s", dir, file2 ? file2 : "");
	k[0].selector = (char *)sel1;
	k[0].file = p1;
	k[1].selector = (char *)sel2;
	k[1].file = p2;
	memset(&d, 0, sizeof(d));
	d.domain = (char *)domain;
	d.keys = k;
	d.nkeys = sel2 ? 2 : 1;
	return dkim_keys_load(&d, 1, pol, err, errlen);
}

static int
setup(void **state)
{
	const char **names;
	const char *text;
	char err[1024];
	size_t len, i;

	snprintf(dir, sizeof(dir), "/tmp/test_dkim.XXXXXX");
	assert_non_null(mkdtemp(dir));
	make_key("ed.key", GNUTLS_PK_EDDSA_ED25519, 256, &ed_pem);
	make_key("rsa.key", GNUTLS_PK_RSA, 2048, &rsa_pem);
	assert_non_null(text = policy_get("dkim-headers", &len));
	assert_non_null(pol = dkim_policy_parse("dkim-headers", text, len, err, sizeof(err)));
	if ((ks = load(DOMAIN, "ed", "ed.key", "rsa", "rsa.key", err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	assert_non_null(ver = dkim_verifier_new(err, sizeof(err)));
	/* the reference: libopendkim's signer with the same header list, as
	 * subproxy used it before */
	assert_non_null(reflib = dkim_init(NULL, NULL));
	names = xcalloc(dkim_policy_count(pol) + 1, sizeof(*names));
	for (i = 0; i < dkim_policy_count(pol); i++)
		names[i] = dkim_policy_name(pol, i);
	assert_int_equal(dkim_options(reflib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, names,
	    sizeof(names)), DKIM_STAT_OK);
	assert_int_equal(dkim_options(reflib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, names,
	    sizeof(names)), DKIM_STAT_OK);
	free(names);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	dkim_keyset_free(&ks);
	dkim_policy_free(&pol);
	dkim_verifier_free(&ver);
	dkim_close(reflib);
	free(ed_pem);
	free(rsa_pem);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- reading DKIM-Signature fields ---- */

/* The value of tag `name` in field (folding white space removed), new. */
static char *
tag(const char *field, const char *name)
{
	const char *v = strchr(field, ':') + 1;
	char *flat = xmalloc(strlen(v) + 1), *p, *q, *out = NULL;
	size_t n = 0, nl = strlen(name);

	for (; *v; v++)
		if (*v != ' ' && *v != '\t' && *v != '\r' && *v != '\n')
			flat[n++] = *v;
	flat[n] = '\0';
	for (p = flat; p != NULL && *p != '\0'; p = q ? q + 1 : NULL) {
		q = strchr(p, ';');
		if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
			out = xstrndup(p + nl + 1, q ? (size_t)(q - p - nl - 1) : strlen(p + nl + 1));
			break;
		}
	}
	free(flat);
	return out;
}

/* Split the fields dkim_sign_message() returned: up to max, new strings. */
static size_t
split_sigs(const char *hdrs, char **out, size_t max)
{
	const char *p = hdrs, *next;
	size_t n = 0;

	while (*p != '\0' && n < max) {
		assert_int_equal(strncmp(p, "DKIM-Signature: ", 16), 0);
		next = strstr(p + 1, "\r\nDKIM-Signature: ");
		next = next ? next + 2 : p + strlen(p);
		out[n++] = xstrndup(p, (size_t)(next - p));
		p = next;
	}
	return n;
}

/* Every line at most 78 columns (a TAB counts 8), CRLF line ends, folded
 * lines start with a TAB, printable ASCII only. */
static void
check_layout(const char *f)
{
	size_t col = 0;
	const char *p;

	for (p = f; *p; p++) {
		if (*p == '\r') {
			assert_int_equal(p[1], '\n');
			if (col > 78)
				fail_msg("line of %zu columns in\n%s", col, f);
			p++;
			if (p[1] != '\0')
				assert_int_equal(p[1], '\t');
			col = 0;
			continue;
		}
		assert_true((*p >= 32 && *p < 127) || (*p == '\t' && col == 0));
		col += *p == '\t' ? 8 : 1;
	}
	assert_int_equal(col, 0);		/* ends in CRLF */
}

/* libopendkim's own signature of msg with the Ed25519 key (new field). */
static char *
ref_sign(const uint8_t *msg, size_t len)
{
	unsigned char *sig = NULL;
	size_t siglen = 0;
	DKIM_STAT st;
	DKIM *d;
	char *out;

	d = dkim_sign(reflib, (const unsigned char *)"ref", NULL, (dkim_sigkey_t)ed_pem,
	    (const unsigned char *)"ref", (const unsigned char *)DOMAIN, DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED, DKIM_SIGN_ED25519SHA256, -1, &st);
	assert_non_null(d);
	st = dkim_chunk(d, (unsigned char *)(uintptr_t)msg, len);
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(d, NULL, 0);
	if (st == DKIM_STAT_OK)
		st = dkim_eom(d, NULL);
	if (st == DKIM_STAT_OK)
		st = dkim_getsighdr_d(d, 16, &sig, &siglen);
	if (st != DKIM_STAT_OK)
		fail_msg("libopendkim cannot sign: %s: %s\n%.*s", dkim_getresultstr(st),
		    dkim_geterror(d) ? dkim_geterror(d) : "-", (int)len, (const char *)msg);
	out = xasprintf("DKIM-Signature: %.*s\r\n", (int)siglen, (const char *)sig);
	dkim_free(d);
	return out;
}

/* Where the header fields of msg after the first `k` begin (0: no such
 * point): a prefix as front sends it, complete fields only. */
static size_t
fields_end(const uint8_t *msg, size_t len, size_t k)
{
	size_t i, end = 0;

	for (i = 0; k > 0 && i + 2 < len; i++) {
		if (msg[i] != '\r' || msg[i + 1] != '\n' || msg[i + 2] == ' ' || msg[i + 2] == '\t')
			continue;
		end = i + 2;
		k--;
		if (msg[i + 2] == '\r')
			break;				/* the end of the header */
	}
	return k == 0 ? end : 0;
}

/* Sign msg with both keys, whole (split == 0) or as front's prefix of
 * `split` header fields and the rest (as the signer gets them): each
 * signature verifies under libopendkim, is laid out as promised, and has
 * the bh= and h= of libopendkim's signer. */
static void
check_message_split(const uint8_t *msg, size_t len, size_t split)
{
	char *hdrs = NULL, *sigs[3], *ref, *rbh, *rh, *bh, *h, *sel, err[512];
	struct dkim_keyinfo ki;
	size_t n, i, k = split ? fields_end(msg, len, split) : 0;

	if (split > 0 && k == 0)
		return;				/* fewer fields */
	if (dkim_sign_parts(ks, msg, k, msg + k, len - k, &hdrs) != DKIM_RES_OK)
		fail_msg("not signed (prefix of %zu octets):\n%.*s", k, (int)len,
		    (const char *)msg);
	assert_int_equal(n = split_sigs(hdrs, sigs, 3), 2);
	ref = ref_sign(msg, len);
	rbh = tag(ref, "bh");
	rh = tag(ref, "h");
	for (i = 0; i < n; i++) {
		check_layout(sigs[i]);
		assert_int_equal(dkim_keyset_info(ks, i, &ki), 0);
		sel = tag(sigs[i], "s");
		assert_string_equal(sel, ki.selector);
		if (dkim_verifier_check(ver, sigs[i], msg, len, DOMAIN, ki.selector, ki.dns_txt,
		    err, sizeof(err)) < 0)
			fail_msg("libopendkim: %s\n%s%.*s", err, sigs[i], (int)len,
			    (const char *)msg);
		bh = tag(sigs[i], "bh");
		h = tag(sigs[i], "h");
		if (strcmp(bh, rbh) != 0 || strcmp(h, rh) != 0)
			fail_msg("bh=%s h=%s\nlibopendkim: bh=%s h=%s\n%.*s", bh, h, rbh, rh,
			    (int)len, (const char *)msg);
		free(sel);
		free(bh);
		free(h);
		free(sigs[i]);
	}
	free(rbh);
	free(rh);
	free(ref);
	free(hdrs);
}

/* Whole, and with front's prefix of one and of two fields. */
static void
check_message(const uint8_t *msg, size_t len)
{
	check_message_split(msg, len, 0);
	check_message_split(msg, len, 1);
	check_message_split(msg, len, 2);
}

/* ---- generated messages ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dULL) >> 33) % n;
}

struct buf {
	char *p;
	size_t len, cap;
};

static void
add(struct buf *b, const char *s, size_t n)
{
	if (b->cap - b->len < n + 1) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void
adds(struct buf *b, const char *s)
{
	add(b, s, strlen(s));
}

/* White space between words: mostly one SP, else runs, TABs, folds. */
static void
gen_space(struct buf *b, int header)
{
	static const char *const runs[] = { " ", " ", " ", " ", "  ", "\t", " \t ", "\t\t",
	    "    " };
	unsigned int r = rnd(20);

	if (header && r == 0)
		adds(b, "\r\n ");
	else if (header && r == 1)
		adds(b, " \r\n\t ");
	else if (r == 2)
		adds(b, rnd(2) ? "\v" : " \f ");	/* libopendkim reduces both */
	else
		adds(b, runs[rnd(sizeof(runs) / sizeof(runs[0]))]);
}

/* A word: letters, punctuation, sometimes 8-bit octets. */
static void
gen_word(struct buf *b)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789.,;:!?-_'\"()<>@[]=/+";
	unsigned int n = 1 + rnd(10), i;
	char c;

	for (i = 0; i < n; i++) {
		if (rnd(40) == 0)
			c = (char)(0x80 + rnd(0x80));
		else
			c = chars[rnd(sizeof(chars) - 1)];
		add(b, &c, 1);
	}
}

static void
gen_text(struct buf *b, unsigned int words, int header)
{
	unsigned int i;

	for (i = 0; i < words; i++) {
		if (i > 0)
			gen_space(b, header);
		gen_word(b);
	}
}

/* A name with its case changed at random. */
static void
gen_name(struct buf *b, const char *name)
{
	size_t i;
	char c;

	for (i = 0; name[i]; i++) {
		c = name[i];
		if (rnd(4) == 0)
			c = (c >= 'a' && c <= 'z') ? (char)(c - 32) : ascii_tolower(c);
		add(b, &c, 1);
	}
}

static void
gen_field(struct buf *b, const char *name, int from)
{
	gen_name(b, name);
	adds(b, ":");
	switch (rnd(6)) {
	case 0:
		break;
	case 1:
		adds(b, "\t  ");
		break;
	case 2:
		adds(b, "\r\n ");		/* folded before any content */
		break;
	default:
		adds(b, " ");
		break;
	}
	if (from) {
		static const char *const addrs[] = { "<a@lab.test>", "Alice <a@lab.test>",
		    "\"Alice  Q.\"  <a@lab.test>", "a@lab.test (the\tboss)",
		    "Alice\r\n <a@lab.test>", "=?utf-8?q?=C3=A4?= <a@lab.test>" };
		adds(b, addrs[rnd(sizeof(addrs) / sizeof(addrs[0]))]);
	} else if (rnd(10) > 0) {
		gen_text(b, rnd(12), 1);
	}
	if (rnd(4) == 0)
		adds(b, rnd(2) ? " " : " \t");	/* trailing white space */
	adds(b, "\r\n");
}

static void
gen_body(struct buf *b)
{
	unsigned int lines = rnd(25), i, j, n;

	for (i = 0; i < lines; i++) {
		switch (rnd(12)) {
		case 0:
			break;				/* empty line */
		case 1:
			adds(b, rnd(2) ? " \t " : "\t");	/* white space only */
			break;
		case 2:					/* a long line */
			n = 500 + rnd(3000);
			for (j = 0; j < n; j++)
				add(b, rnd(8) ? "x" : " ", 1);
			break;
		default:
			if (rnd(4) == 0)
				gen_space(b, 0);	/* leading white space */
			gen_text(b, 1 + rnd(15), 0);
			if (rnd(4) == 0)
				gen_space(b, 0);	/* trailing white space */
			break;
		}
		adds(b, "\r\n");
	}
	for (i = rnd(4); i > 0; i--)			/* empty lines at the end */
		adds(b, rnd(3) ? "\r\n" : " \r\n");
}

/* A message libopendkim and the native signer must agree on. */
static void
gen_message(struct buf *b)
{
	static const char *const names[] = { "To", "Cc", "Subject", "Date", "Message-ID",
	    "Reply-To", "Sender", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	    "In-Reply-To", "References", "List-Id", "List-Unsubscribe", "List-Post",
	    "X-Mailer", "X-Not-Signed", "Received", "Return-Path", "Comments", "Keywords" };
	unsigned int nf = rnd(14), from = rnd(nf + 1), i;

	b->len = 0;
	for (i = 0; i <= nf; i++) {
		if (i == from)
			gen_field(b, "From", 1);
		else
			gen_field(b, names[rnd(sizeof(names) / sizeof(names[0]))], 0);
	}
	switch (rnd(8)) {
	case 0:
		break;					/* no body, not even the empty line */
	case 1:
		adds(b, "\r\n");			/* empty body */
		break;
	default:
		adds(b, "\r\n");
		gen_body(b);
		break;
	}
}

static void
test_differential(void **state)
{
	struct buf b = { NULL, 0, 0 };
	int i;

	for (i = 0; i < NMSG; i++) {
		gen_message(&b);
		check_message((const uint8_t *)b.p, b.len);
	}
	free(b.p);
}

/* Cases written out: each one also against libopendkim. */
static void
test_cases(void **state)
{
	static const char *const msgs[] = {
		"From: a@lab.test\r\n",
		"From: a@lab.test\r\n\r\n",
		"From: a@lab.test\r\n\r\n\r\n\r\n",
		"From: a@lab.test\r\n\r\n \t \r\n\t\r\n",
		"From: a@lab.test\r\n\r\n C \r\nD \t E\r\n\r\n\r\n",
		"From: a@lab.test\r\nTo: 1\r\nTo: 2\r\nSubject: x\r\nTo: 3\r\n\r\nbody\r\n",
		"From: a@lab.test\r\nSubject:\r\n\r\nx\r\n",
		"From: a@lab.test\r\nSubject:\r\n \r\n\r\nx\r\n",
		"From: a@lab.test\r\nSubject: \x0b" "a\x0c\x0c" "b \x0b\r\n\r\nx\r\n",
		"From: a@lab.test\r\nSubject: caf\xc3\xa9\r\n\r\n\xff\xfe\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
		check_message((const uint8_t *)msgs[i], strlen(msgs[i]));
}

static char *
b64_sha256(const char *s)
{
	uint8_t h[32];
	char *out = xmalloc(sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL));

	assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, s, strlen(s), h), 0);
	sodium_bin2base64(out, sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL), h,
	    32, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

/* The body hash of msg's first signature equals SHA-256(canon). */
static void
expect_bh(const char *msg, const char *canon)
{
	char *hdrs, *bh, *want = b64_sha256(canon);

	assert_int_equal(dkim_sign_message(ks, (const uint8_t *)msg, strlen(msg), &hdrs),
	    DKIM_RES_OK);
	bh = tag(hdrs, "bh");
	assert_string_equal(bh, want);
	free(bh);
	free(want);
	free(hdrs);
}

/* Known canonical bodies: RFC 6376 3.4.5's example, the empty body, the
 * empty lines at the end. */
static void
test_known_bodies(void **state)
{
	expect_bh("From: a@lab.test\r\n\r\n C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n");
	expect_bh("From: a@lab.test\r\n", "");
	expect_bh("From: a@lab.test\r\n\r\n", "");
	expect_bh("From: a@lab.test\r\n\r\n\r\n \r\n\t\r\n", "");
	expect_bh("From: a@lab.test\r\n\r\na\r\n\r\n \r\nb\t\r\n\r\n", "a\r\n\r\n\r\nb\r\n");
	expect_bh("From: a@lab.test\r\n\r\n\ta \v b\r\n", " a \v b\r\n");
}

/* RFC 5322 allows ';' in a field name; libopendkim refuses such a message
 * (and so made subproxy answer 451 before), the native signer signs it
 * (the integration test has dkimpy verify it). */
static void
test_semicolon_in_name(void **state)
{
	const char *msg = "From: a@lab.test\r\nX-Not;Signed: 1\r\n\r\nx\r\n";
	char *hdrs;

	assert_int_equal(dkim_sign_message(ks, (const uint8_t *)msg, strlen(msg), &hdrs),
	    DKIM_RES_OK);
	free(hdrs);
}

/* What front never sends and no verifier would read alike: refused as a
 * bad message, nothing signed. */
static void
test_refusals(void **state)
{
	static const char *const bad[] = {
		"From: a@lab.test\r\n\r\nno final CRLF",
		"From: a@lab.test\r\n\r\nbare\rCR\r\n",
		"From: a@lab.test\r\n\r\nbare\nLF\r\n",
		"From: a@lab.test\r\n\r\n\n",
		"From: a@lab.test\r\n\r\nx\r\n\r",
		"From: a@lab.test\r\nSubject : x\r\n\r\nx\r\n",
		"From: a@lab.test\r\nX-Other\t: x\r\n\r\nx\r\n",
		"From: a@lab.test\r\n",	/* + "To: a\0b" below */
	};
	char *hdrs = (char *)1, msg[64];
	size_t i, n;

	for (i = 0; i + 1 < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(dkim_sign_message(ks, (const uint8_t *)bad[i], strlen(bad[i]),
		    &hdrs), DKIM_RES_BADMSG);
		assert_null(hdrs);
	}
	n = (size_t)snprintf(msg, sizeof(msg), "%sTo: a", bad[i]);
	memcpy(msg + n, "\0b\r\n\r\nx\r\n", 9);
	assert_int_equal(dkim_sign_message(ks, (const uint8_t *)msg, n + 9, &hdrs),
	    DKIM_RES_BADMSG);
	assert_null(hdrs);
	/* a NUL in a field that is not signed does not matter */
	n = (size_t)snprintf(msg, sizeof(msg), "%sX-Other: a", bad[i]);
	memcpy(msg + n, "\0b\r\n\r\nx\r\n", 9);
	assert_int_equal(dkim_sign_message(ks, (const uint8_t *)msg, n + 9, &hdrs),
	    DKIM_RES_OK);
	free(hdrs);
	check_message((const uint8_t *)msg, n + 9);
}

/* The From rule is front's (rfc5322_from_domain): list forms front reads
 * as one address are signed for its domain, the rest refused. */
static void
test_from_forms(void **state)
{
	static const char *const ok[] = {
		"From: Authors: Alice <a@lab.test>;\r\n\r\nx\r\n",
		"From: <a@lab.test>,\r\n\r\nx\r\n",
		"From: , a@lab.test (Alice)\r\n\r\nx\r\n",
		"From: <@route.test:a@lab.test>\r\n\r\nx\r\n",
	};
	static const char *const bad[] = {
		"From: undisclosed-recipients:;\r\n\r\nx\r\n",
		"From: a@lab.test, b@lab.test\r\n\r\nx\r\n",
		"From: G: a@lab.test, b@lab.test;\r\n\r\nx\r\n",
		"From: a@[127.0.0.1]\r\n\r\nx\r\n",
		"From: a@lab.test\r\nFrom: a@lab.test\r\n\r\nx\r\n",
	};
	char *hdrs;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		hdrs = NULL;
		if (dkim_sign_message(ks, (const uint8_t *)ok[i], strlen(ok[i]), &hdrs) !=
		    DKIM_RES_OK)
			fail_msg("not signed: %s", ok[i]);
		assert_non_null(strstr(hdrs, "d=lab.test;"));
		free(hdrs);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hdrs = (char *)1;
		if (dkim_sign_message(ks, (const uint8_t *)bad[i], strlen(bad[i]), &hdrs) !=
		    DKIM_RES_BADMSG)
			fail_msg("not refused: %s", bad[i]);
		assert_null(hdrs);
	}
}

/* Front's decision on a message with this From (smtp_txn.c: front's
 * parser holds exactly one address whose domain rfc5322_addr_domain
 * takes) is the signer's (see test_from_front_agrees). */
static void
front_agrees(const char *form)
{
	char msg[1024], dom[RFC5322_DOMAIN_MAX], *hdrs = NULL;
	struct msg_limits lim = { 0 };
	const struct msg_result *mr;
	struct msg_parser *p;
	struct spool *sp;
	enum dkim_result res;
	int front;
	size_t n;

	n = (size_t)snprintf(msg, sizeof(msg), "From: %s\r\n\r\nx\r\n", form);
	assert_true(n < sizeof(msg));
	sp = spool_new(4096);
	p = msg_parser_new(&lim, MSG_MODE_BDAT, sp);
	assert_int_equal(msg_parser_feed(p, msg, n), n);
	msg_parser_finish(p);
	mr = msg_parser_result(p);
	front = mr->code == 0 && mr->nfrom == 1 &&
	    rfc5322_addr_domain(mr->from[0], dom, sizeof(dom)) == 0;
	res = dkim_sign_message(ks, (const uint8_t *)msg, n, &hdrs);
	if (front && strcmp(dom, DOMAIN) == 0 ? res != DKIM_RES_OK : front ?
	    res != DKIM_RES_NOKEY : mr->code == 0 && res != DKIM_RES_BADMSG)
		fail_msg("From: %s -- front %s, signer %s", form, front ? "signs" : "refuses",
		    dkim_result_name(res));
	free(hdrs);
	msg_parser_free(&p);
	spool_free(&sp);
}

/* Front decides on a From as the signer will (smtp_txn.c: front's parser
 * holds exactly one address whose domain rfc5322_addr_domain takes): odd
 * From forms give the same answer and the same domain on both sides --
 * front reads the field unfolded, the signer as it stands in the message,
 * so a quoted-pair or a comment across a fold must read alike. */
static void
test_from_front_agrees(void **state)
{
	static const char *const forms[] = {
		"\"a\\\r\n b\"@lab.test",
		"a@lab.test (x\\\r\n y)",
		"(c\r\n (n)) a@lab.test",
		"\"a@b,c\"@lab.test",
		"\"a\\\"b\" <a@lab.test>",
		"=?utf-8?q?A=2C_B?= <a@lab.test>",
		"a@(c)lab.test",
		"a @ lab . test",
		"a@lab.test.",
		"a@LAB.Test",
		"<@r.test,@s.test:a@lab.test>",
		"G: a@lab.test (c);",
		"G: (c) a@lab.test;, ",
		"G:;, a@lab.test",
		"G:;",
		"a@lab.test, b@lab.test",
		"a@lab.test x",
		"a@[127.0.0.1]",
		"a@lab_test",
		"a@l\xc3\xa4" "b.test",
		"\"a\r\n\"@lab.test",
		"a@lab.test\r\n\t(tail)",
		"\r\n a@lab.test",
	};
	char form[300];
	size_t i, n;

	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		front_agrees(forms[i]);
	/* domains about the room both sides have for one (RFC5322_DOMAIN_MAX) */
	for (n = RFC5322_DOMAIN_MAX - 2; n <= RFC5322_DOMAIN_MAX; n++) {
		memset(form, 'd', sizeof(form));
		memcpy(form, "a@", 2);
		form[2 + n] = '\0';
		front_agrees(form);
	}
}

/* Front's prefix and the message, signed apart: the prefix must be
 * complete fields and nothing else, the message cannot continue its last
 * field, and a From in each is two From fields. */
static void
test_parts_refused(void **state)
{
	static const char *const bad[][2] = {
		{ "X-A: b", "From: a@lab.test\r\n\r\nx\r\n" },
		{ "X-A: b\r\n\r\n", "From: a@lab.test\r\n\r\nx\r\n" },
		{ "\r\n", "From: a@lab.test\r\n\r\nx\r\n" },
		{ " X-A: b\r\n", "From: a@lab.test\r\n\r\nx\r\n" },
		{ "X-A: b\r\n", " folded\r\nFrom: a@lab.test\r\n\r\nx\r\n" },
		{ "From: a@lab.test\r\n", "From: a@lab.test\r\n\r\nx\r\n" },
		{ "X-A: b\r\n", "\r\nFrom: a@lab.test\r\n" },
	};
	char *hdrs = (char *)1;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(dkim_sign_parts(ks, (const uint8_t *)bad[i][0], strlen(bad[i][0]),
		    (const uint8_t *)bad[i][1], strlen(bad[i][1]), &hdrs), DKIM_RES_BADMSG);
		assert_null(hdrs);
	}
	/* the From in the prefix alone, an empty message */
	assert_int_equal(dkim_sign_parts(ks, (const uint8_t *)"From: a@lab.test\r\n", 18,
	    (const uint8_t *)"", 0, &hdrs), DKIM_RES_OK);
	assert_non_null(hdrs);
	free(hdrs);
}

/* At most DKIM_FIELDS_MAX header fields (front takes fewer, message.h). */
static void
test_fields_max(void **state)
{
	size_t n = DKIM_FIELDS_MAX, len, i;
	char *msg = xmalloc(n * 4 + 64), *hdrs = NULL;

	len = (size_t)sprintf(msg, "From: a@lab.test\r\n");
	for (i = 1; i < n; i++)
		len += (size_t)sprintf(msg + len, "X:\r\n");
	memcpy(msg + len, "\r\nx\r\n", 5);
	assert_int_equal(dkim_sign_message(ks, (const uint8_t *)msg, len + 5, &hdrs),
	    DKIM_RES_OK);
	free(hdrs);
	memcpy(msg + len, "X:\r\n\r\nx\r\n", 9);
	assert_int_equal(dkim_sign_message(ks, (const uint8_t *)msg, len + 9, &hdrs),
	    DKIM_RES_BADMSG);
	assert_null(hdrs);
	/* the same bound over prefix and message together, the prefix's
	 * fields past the first growth of the array (split_slot) */
	for (i = 0; i < 2; i++) {
		size_t total = len + 5 + 4 * i, k = 18 + 100 * 4;

		memcpy(msg + len, i == 0 ? "\r\nx\r\n" : "X:\r\n\r\nx\r\n", total - len);
		assert_int_equal(dkim_sign_parts(ks, (const uint8_t *)msg, k,
		    (const uint8_t *)msg + k, total - k, &hdrs),
		    i == 0 ? DKIM_RES_OK : DKIM_RES_BADMSG);
		assert_true(i == 0 ? hdrs != NULL : hdrs == NULL);
		free(hdrs);
		hdrs = NULL;
	}
	free(msg);
}

/* The field: tags in the order v a c d s t h bh b, no l=, folded; a
 * domain too long for a line still gives a valid field. */
static void
test_field(void **state)
{
	const char *msg = "From: a@lab.test\r\nTo: b@example.org\r\n\r\nbody\r\n";
	static const char *const order[] = { "v=1;", "a=", "c=relaxed/relaxed;", "d=lab.test;",
	    "s=", "t=", "h=From:To:From:Sender:", "bh=", "b=" };
	char *hdrs, *sigs[2], *p, *l;
	size_t i, j;

	assert_int_equal(dkim_sign_message(ks, (const uint8_t *)msg, strlen(msg), &hdrs),
	    DKIM_RES_OK);
	assert_int_equal(split_sigs(hdrs, sigs, 2), 2);
	for (i = 0; i < 2; i++) {
		check_layout(sigs[i]);
		p = sigs[i];
		for (j = 0; j < sizeof(order) / sizeof(order[0]); j++) {
			if ((p = strstr(p, order[j])) == NULL)
				fail_msg("%s not in order in\n%s", order[j], sigs[i]);
		}
		assert_null(l = tag(sigs[i], "l"));
		assert_null(tag(sigs[i], "i"));
		free(sigs[i]);
	}
	free(hdrs);
}

/* A key whose signatures do not verify (an RSA key with a wrong private
 * exponent: GnuTLS and OpenSSL read it, its public half is right) stops
 * the load, naming the file and libopendkim's verdict. */
static void
test_crosscheck_refuses(void **state)
{
	gnutls_x509_privkey_t k;
	gnutls_datum_t m, e, d, p, q, u, e1, e2, pem;
	char path[128], err[1024];
	struct dkim_keyset *bad;

	assert_int_equal(gnutls_x509_privkey_init(&k), 0);
	assert_int_equal(gnutls_x509_privkey_generate(k, GNUTLS_PK_RSA, 2048, 0), 0);
	assert_int_equal(gnutls_x509_privkey_export_rsa_raw2(k, &m, &e, &d, &p, &q, &u, &e1,
	    &e2), 0);
	d.data[d.size - 1] ^= 2;
	e1.data[e1.size - 1] ^= 2;
	e2.data[e2.size - 1] ^= 2;
	gnutls_x509_privkey_deinit(k);
	assert_int_equal(gnutls_x509_privkey_init(&k), 0);
	assert_int_equal(gnutls_x509_privkey_import_rsa_raw2(k, &m, &e, &d, &p, &q, &u, &e1,
	    &e2), 0);
	assert_int_equal(gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM, NULL,
	    GNUTLS_PKCS_PLAIN, &pem), 0);
	snprintf(path, sizeof(path), "%s/wrong.key", dir);
	write_file(path, pem.data, pem.size);
	bad = load(DOMAIN, "wrong", "wrong.key", NULL, NULL, err, sizeof(err));
	assert_null(bad);
	if (strstr(err, path) == NULL || strstr(err, "libopendkim does not verify") == NULL)
		fail_msg("%s", err);
	gnutls_free(pem.data);
	gnutls_free(m.data);
	gnutls_free(e.data);
	gnutls_free(d.data);
	gnutls_free(p.data);
	gnutls_free(q.data);
	gnutls_free(u.data);
	gnutls_free(e1.data);
	gnutls_free(e2.data);
	gnutls_x509_privkey_deinit(k);
}

/* An RSA key with public exponent e, as PKCS#8 PEM in dir/name. */
static void
make_rsa_e(const char *name, unsigned int e)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
	EVP_PKEY *pk = NULL;
	BIGNUM *bn = BN_new();
	char path[128];
	FILE *f;

	assert_non_null(ctx);
	assert_non_null(bn);
	assert_int_equal(BN_set_word(bn, e), 1);
	assert_true(EVP_PKEY_keygen_init(ctx) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) > 0);
	assert_true(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, bn) > 0);
	assert_true(EVP_PKEY_keygen(ctx, &pk) > 0);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, 0600), 0);
	EVP_PKEY_free(pk);
	BN_free(bn);
	EVP_PKEY_CTX_free(ctx);
}

/* Loading `name` fails with its path and `why` in the message. */
static void
load_refused(const char *name, const char *why)
{
	char path[128], err[1024];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_null(load(DOMAIN, "weird", name, NULL, NULL, err, sizeof(err)));
	if (strstr(err, path) == NULL || strstr(err, why) == NULL)
		fail_msg("%s: want \"%s\" in: %s", name, why, err);
}

/* Key files that must stop the start, each naming the file and why: a
 * small RSA public exponent (lax verifiers accept forgeries against e=3),
 * and a file whose signing key is unclear -- a second PEM block (another
 * key, a certificate) or text after the key.  Text before it (certtool's
 * dump) and white space after it are fine. */
static void
test_key_files_refused(void **state)
{
	static const char *const junk[][2] = {
		{ "trailing.key", "\ntrailing text\n" },
		{ "twice.key", NULL },
		{ "two.key", "" },
		{ "spaces.key", " \n\t\n\n" },
		{ "leading.key", "" },
	};
	char path[128], *text;
	struct dkim_keyset *k;
	size_t i, len;
	char err[1024];

	make_rsa_e("e3.key", 3);
	load_refused("e3.key", "public exponent 3");
	make_rsa_e("e17.key", 17);
	load_refused("e17.key", "public exponent 17");
	for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		if (i == 2)		/* an RSA key after the Ed25519 one */
			text = xasprintf("%s%s", ed_pem, rsa_pem);
		else if (i == 4)
			text = xasprintf("Public Key Info:\n\tEd25519\n%s", ed_pem);
		else
			text = xasprintf("%s%s", ed_pem, junk[i][1] ? junk[i][1] : ed_pem);
		len = strlen(text);
		snprintf(path, sizeof(path), "%s/%s", dir, junk[i][0]);
		write_file(path, text, len);
		free(text);
	}
	load_refused("trailing.key", "text after the key");
	load_refused("twice.key", "more than one PEM block");
	load_refused("two.key", "more than one PEM block");
	if ((k = load(DOMAIN, "ok", "spaces.key", "ok2", "leading.key", err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	dkim_keyset_free(&k);
}

/* Domains and selectors go into the field as they are: anything but a DNS
 * name is refused at load. */
static void
test_names_checked(void **state)
{
	char err[512];

	assert_null(load("lab.test; x=y", "ed", "ed.key", NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "not a DNS name"));
	assert_null(load(DOMAIN, "ed\r\n\tX", "ed.key", NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "not a DNS name"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_differential),
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_known_bodies),
		cmocka_unit_test(test_semicolon_in_name),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_parts_refused),
		cmocka_unit_test(test_from_forms),
		cmocka_unit_test(test_from_front_agrees),
		cmocka_unit_test(test_fields_max),
		cmocka_unit_test(test_field),
		cmocka_unit_test(test_crosscheck_refuses),
		cmocka_unit_test(test_key_files_refused),
		cmocka_unit_test(test_names_checked),
	};

	log_init("test", LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
