/*
 * fuzz_dkim_sign.c — the native DKIM signer (header splitting, From
 * domain, canonicalization, signature field) under hostile messages, held
 * to an independent verifier, libopendkim.
 *
 * Set-up, once: an Ed25519 key for fuzz.test made now, loaded through
 * dkim_keys_load() with the compiled-in header list (so the load-time
 * cross-check runs too); the key file is removed at once.
 *
 * Input: a whole message.  Invariants:
 *   - dkim_sign_message() answers OK, NOKEY or BADMSG, never INTERNAL, and
 *     gives a field exactly when OK;
 *   - the field is one "DKIM-Signature: ...\r\n": printable ASCII, a TAB
 *     only at the start of a folded line, lines of at most 78 columns;
 *   - signed in two parts as the signer gets it from front (dkim_sign_parts:
 *     the first header field as the prefix, the rest as the memfd), the
 *     answer is the same, and libopendkim verifies that signature too;
 *   - what front accepts (message.c in BDAT mode, as the client sent it)
 *     with a From front finds signable (one address, rfc5322_addr_domain)
 *     the signer signs as front sends it (the spool), for that domain:
 *     OK for fuzz.test, NOKEY for any other, never BADMSG;
 *   - libopendkim verifies it, with a matching body hash.  Not asked when
 *     libopendkim cannot read the message at all: a field name holding ';'
 *     (RFC 5322 allows it, libopendkim refuses the message), an h= list
 *     of 4096 octets or more (libopendkim cuts it to its buffer: hundreds
 *     of signed fields, which front refuses for most of the listed names).
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config.h"
#include "dkim.h"
#include "dkim_verify.h"
#include "log.h"
#include "message.h"
#include "policy.h"
#include "rfc5322.h"
#include "spool.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dkim_keyset *ks;
static struct dkim_verifier *ver;
static struct dkim_keyinfo ki;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/fuzz_dkim_sign.XXXXXX", path[64], err[1024];
	struct config_dkim_key key = { "fz", path };
	struct config_dkim d = { "fuzz.test", &key, 1, 0 };
	struct dkim_policy *pol;
	gnutls_x509_privkey_t k;
	gnutls_datum_t pem;
	const char *text;
	size_t len;
	int fd;

	log_init("fuzz_dkim_sign", LOG_LVL_ERR);
	snprintf(path, sizeof(path), "%s/fz.key", mkdtemp(dir) ? dir : "/nonexistent");
	if (gnutls_x509_privkey_init(&k) < 0 ||
	    gnutls_x509_privkey_generate(k, GNUTLS_PK_EDDSA_ED25519, 256, 0) < 0 ||
	    gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
	    &pem) < 0 || (fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0 ||
	    write(fd, pem.data, pem.size) != (ssize_t)pem.size || close(fd) < 0)
		abort();
	gnutls_free(pem.data);
	gnutls_x509_privkey_deinit(k);
	text = policy_get("dkim-headers", &len);
	pol = text ? dkim_policy_parse("dkim-headers", text, len, err, sizeof(err)) : NULL;
	ks = pol ? dkim_keys_load(&d, 1, pol, err, sizeof(err)) : NULL;
	unlink(path);
	rmdir(dir);
	if (ks == NULL || dkim_keyset_info(ks, 0, &ki) < 0 ||
	    (ver = dkim_verifier_new(err, sizeof(err))) == NULL) {
		fprintf(stderr, "fuzz_dkim_sign: %s\n", err);
		abort();
	}
	dkim_policy_free(&pol);
	return 0;
}

/* The field's layout (see above); aborts otherwise. */
static void
check_layout(const char *f)
{
	size_t col = 0;

	if (strncmp(f, "DKIM-Signature: ", 16) != 0)
		abort();
	for (; *f != '\0'; f++) {
		if (*f == '\r') {
			if (f[1] != '\n' || col > 78 || (f[2] != '\0' && f[2] != '\t'))
				abort();
			f++;
			col = 0;
		} else if ((*f >= 32 && *f < 127) || (*f == '\t' && col == 0)) {
			col += *f == '\t' ? 8 : 1;
		} else {
			abort();
		}
	}
	if (col != 0)
		abort();
}

/* Can libopendkim read this message and signature at all (see above)? */
static int
libopendkim_reads(const uint8_t *m, size_t len, const char *sig)
{
	const char *h = strstr(sig, " h=");
	size_t i, hlen = 0;

	if (h == NULL)
		h = strstr(sig, "\th=");
	if (h == NULL)
		abort();
	for (h += 3; *h != ';' && *h != '\0'; h++)
		if (*h != ' ' && *h != '\t' && *h != '\r' && *h != '\n')
			hlen++;
	if (hlen >= 4096)
		return 0;
	for (i = 0; i < len;) {
		if (m[i] == '\r' || m[i] == '\n')
			break;				/* the end of the header */
		if (m[i] != ' ' && m[i] != '\t')
			for (; i < len && m[i] != ':' && m[i] != '\r' && m[i] != '\n'; i++)
				if (m[i] == ';')
					return 0;
		while (i < len && m[i] != '\n')
			i++;
		i++;
	}
	return 1;
}

/* Where the first header field of data ends (after its CRLF, before a
 * line that does not continue it), or 0 when data does not start with
 * one: a prefix front could have sent. */
static size_t
first_field_end(const uint8_t *data, size_t size)
{
	size_t i;

	if (size == 0 || data[0] == ' ' || data[0] == '\t' || data[0] == '\r' ||
	    data[0] == '\n')
		return 0;
	for (i = 0; i + 1 < size; i++) {
		if (data[i] != '\r' || data[i + 1] != '\n')
			continue;
		if (i + 2 < size && (data[i + 2] == ' ' || data[i + 2] == '\t'))
			continue;
		return i + 2;
	}
	return 0;
}

/* One answer of the signer for data: checked, and verified when OK. */
static void
check_answer(enum dkim_result r, char *hdrs, const uint8_t *data, size_t size)
{
	char err[512];

	if (r == DKIM_RES_OK) {
		if (hdrs == NULL || strstr(hdrs + 1, "DKIM-Signature:") != NULL)
			abort();
		check_layout(hdrs);
		if (libopendkim_reads(data, size, hdrs) &&
		    dkim_verifier_check(ver, hdrs, data, size, ki.domain, ki.selector, ki.dns_txt,
		    err, sizeof(err)) < 0) {
			fprintf(stderr, "fuzz_dkim_sign: libopendkim: %s\n%s", err, hdrs);
			abort();
		}
		free(hdrs);
	} else if ((r != DKIM_RES_NOKEY && r != DKIM_RES_BADMSG) || hdrs != NULL) {
		abort();
	}
}

/* Front's decision on data, held to the signer's (see above). */
static void
check_front_agrees(const uint8_t *data, size_t size)
{
	struct msg_limits lim = { 0 };
	struct spool *sp = spool_new(size + 2);
	struct msg_parser *p = msg_parser_new(&lim, MSG_MODE_BDAT, sp);
	const struct msg_result *mr;
	char dom[256], *hdrs = NULL;
	uint8_t *msg = NULL;
	size_t n = 0;
	enum dkim_result r;

	if (msg_parser_feed(p, data, size) != size)
		abort();		/* BDAT takes every octet */
	msg_parser_finish(p);
	mr = msg_parser_result(p);
	if (mr->code == 0 && mr->nfrom == 1 &&
	    rfc5322_addr_domain(mr->from[0], dom, sizeof(dom)) == 0) {
		msg = malloc(spool_size(sp) + 1);
		if (msg == NULL || spool_read(sp, 0, msg, spool_size(sp), &n) < 0 ||
		    n != spool_size(sp))
			abort();
		r = dkim_sign_message(ks, msg, n, &hdrs);
		if (r != (strcmp(dom, ki.domain) == 0 ? DKIM_RES_OK : DKIM_RES_NOKEY)) {
			fprintf(stderr, "fuzz_dkim_sign: front signs for %s, the signer answers "
			    "%s\n", dom, dkim_result_name(r));
			abort();
		}
		check_answer(r, hdrs, msg, n);
	}
	free(msg);
	msg_parser_free(&p);
	spool_free(&sp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *hdrs = (char *)data;
	enum dkim_result r, r2;
	size_t k;

	r = dkim_sign_message(ks, data, size, &hdrs);
	check_answer(r, hdrs, data, size);
	if ((k = first_field_end(data, size)) > 0) {
		hdrs = (char *)data;
		r2 = dkim_sign_parts(ks, data, k, data + k, size - k, &hdrs);
		if (r2 != r) {
			fprintf(stderr, "fuzz_dkim_sign: %s whole, %s with a prefix of %zu\n",
			    dkim_result_name(r), dkim_result_name(r2), k);
			abort();
		}
		check_answer(r2, hdrs, data, size);
	}
	check_front_agrees(data, size);
	return 0;
}
