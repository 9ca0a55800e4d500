/* dkim_verify.c — libopendkim checks the native signer's signatures. */
#include "dkim_verify.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <opendkim/dkim.h>

struct dkim_verifier {
	DKIM_LIB *lib;
};

/* The key query of one check: the TXT record, from the handle's context. */
static DKIM_CBSTAT
key_lookup(DKIM *d, DKIM_SIGINFO *sig, unsigned char *buf, size_t buflen)
{
	const char *txt = dkim_get_user_context(d);

	if (txt == NULL || strlen(txt) >= buflen)
		return DKIM_CBSTAT_ERROR;
	memcpy(buf, txt, strlen(txt) + 1);
	return DKIM_CBSTAT_CONTINUE;
}

struct dkim_verifier *
dkim_verifier_new(char *err, size_t errlen)
{
	struct dkim_verifier *v = xcalloc(1, sizeof(*v));
	unsigned int flags = 0;
	int ok = 0;

	if ((v->lib = dkim_init(NULL, NULL)) == NULL) {
		snprintf(err, errlen, "dkim_init failed");
		free(v);
		return NULL;
	}
	/* go on when libopendkim's own From parser gives up: DKIM does not
	 * need the address, and the signer has its own From rules */
	if (dkim_options(v->lib, DKIM_OP_GETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) ==
	    DKIM_STAT_OK) {
		flags |= DKIM_LIBFLAGS_BADSIGHANDLES;
		ok = dkim_options(v->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
		    sizeof(flags)) == DKIM_STAT_OK &&
		    dkim_set_key_lookup(v->lib, key_lookup) == DKIM_STAT_OK;
	}
	if (!ok) {
		snprintf(err, errlen, "cannot set libopendkim's options");
		dkim_verifier_free(&v);
		return NULL;
	}
	return v;
}

/* The signature by domain and selector among those libopendkim saw. */
static DKIM_SIGINFO *
find_sig(DKIM *d, const char *domain, const char *selector)
{
	DKIM_SIGINFO **sigs = NULL;
	const char *sd, *ss;
	int i, n = 0;

	if (dkim_getsiglist(d, &sigs, &n) != DKIM_STAT_OK)
		return NULL;
	for (i = 0; i < n; i++) {
		sd = (const char *)dkim_sig_getdomain(sigs[i]);
		ss = (const char *)dkim_sig_getselector(sigs[i]);
		if (sd != NULL && ss != NULL && ascii_casecmp(sd, domain) == 0 &&
		    ascii_casecmp(ss, selector) == 0 && DKIM_SIG_CHECK(sigs[i]))
			return sigs[i];
	}
	for (i = 0; i < n; i++) {
		sd = (const char *)dkim_sig_getdomain(sigs[i]);
		ss = (const char *)dkim_sig_getselector(sigs[i]);
		if (sd != NULL && ss != NULL && ascii_casecmp(sd, domain) == 0 &&
		    ascii_casecmp(ss, selector) == 0)
			return sigs[i];		/* ours, failed: for the reason */
	}
	return NULL;
}

/* Is the header line at m[0..len) the start of a DKIM-Signature field? */
static int
is_sig_field(const uint8_t *m, size_t len)
{
	static const char name[] = "DKIM-Signature";
	size_t n = sizeof(name) - 1, i;

	if (len <= n || ascii_ncasecmp((const char *)m, name, n) != 0)
		return 0;
	for (i = n; i < len && (m[i] == ' ' || m[i] == '\t'); i++)
		;
	return i < len && m[i] == ':';
}

/* msg without its own DKIM-Signature fields (a new copy, *len_r), or NULL
 * when it has none. */
static uint8_t *
strip_sigs(const uint8_t *msg, size_t len, size_t *len_r)
{
	const uint8_t *lf;
	uint8_t *out = NULL;
	size_t i = 0, o = 0, end;
	int skip = 0;

	while (i < len && !(msg[i] == '\r' || msg[i] == '\n')) {
		lf = memchr(msg + i, '\n', len - i);
		end = lf ? (size_t)(lf - msg) + 1 : len;
		if (msg[i] != ' ' && msg[i] != '\t')
			skip = is_sig_field(msg + i, end - i);
		if (skip && out == NULL) {
			out = xmalloc(len);
			memcpy(out, msg, i);
			o = i;
		}
		if (!skip && out != NULL) {
			memcpy(out + o, msg + i, end - i);
			o += end - i;
		}
		i = end;
	}
	if (out == NULL)
		return NULL;
	memcpy(out + o, msg + i, len - i);
	*len_r = o + len - i;
	return out;
}

int
dkim_verifier_check(struct dkim_verifier *v, const char *sig, const uint8_t *msg, size_t len,
    const char *domain, const char *selector, const char *txt, char *err, size_t errlen)
{
	DKIM_STAT st, eom;
	DKIM_SIGINFO *si;
	DKIM *d;
	uint8_t *own;
	int rc = -1;

	if ((own = strip_sigs(msg, len, &len)) != NULL)
		msg = own;
	if ((d = dkim_verify(v->lib, (const unsigned char *)"check", NULL, &st)) == NULL) {
		snprintf(err, errlen, "dkim_verify: %s", dkim_getresultstr(st));
		free(own);
		return -1;
	}
	dkim_set_user_context(d, (void *)(uintptr_t)txt);
	if ((st = dkim_chunk(d, (unsigned char *)(uintptr_t)sig, strlen(sig))) != DKIM_STAT_OK ||
	    (len > 0 && (st = dkim_chunk(d, (unsigned char *)(uintptr_t)msg, len)) !=
	    DKIM_STAT_OK) || (st = dkim_chunk(d, NULL, 0)) != DKIM_STAT_OK) {
		snprintf(err, errlen, "dkim_chunk: %s: %s", dkim_getresultstr(st),
		    dkim_geterror(d) ? dkim_geterror(d) : "-");
		goto out;
	}
	eom = dkim_eom(d, NULL);
	if ((si = find_sig(d, domain, selector)) == NULL) {
		snprintf(err, errlen, "no signature by d=%s s=%s found: %s: %s", domain, selector,
		    dkim_getresultstr(eom), dkim_geterror(d) ? dkim_geterror(d) : "-");
		goto out;
	}
	if (!DKIM_SIG_CHECK(si)) {
		snprintf(err, errlen, "%s%s (%s)", dkim_sig_getbh(si) == DKIM_SIGBH_MISMATCH ?
		    "body hash mismatch; " : "",
		    dkim_sig_geterrorstr(dkim_sig_geterror(si)) ?
		    dkim_sig_geterrorstr(dkim_sig_geterror(si)) : "signature not verified",
		    dkim_getresultstr(eom));
		goto out;
	}
	rc = 0;
out:
	dkim_free(d);
	free(own);
	return rc;
}

void
dkim_verifier_free(struct dkim_verifier **vp)
{
	struct dkim_verifier *v = *vp;

	if (v == NULL)
		return;
	if (v->lib != NULL)
		dkim_close(v->lib);
	free(v);
	*vp = NULL;
}
