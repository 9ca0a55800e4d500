/*
 * dkim_verify.h — libopendkim as an independent verifier of the native
 * signer's signatures (dkim_sign.h).  At key load every key's test
 * signature must pass it; the unit test and the fuzz target hold every
 * signature they make to it.  No DNS: libopendkim's key query is answered
 * with the TXT record the key would publish.  Runs before any sandbox (it
 * is also what lets OpenSSL finish its lazy initialization, which reads
 * files, at load).
 */
#ifndef SUBPROXY_DKIM_VERIFY_H
#define SUBPROXY_DKIM_VERIFY_H

#include <stddef.h>
#include <stdint.h>

struct dkim_verifier;

/* A verifier (one libopendkim library handle).  NULL with err. */
struct dkim_verifier *dkim_verifier_new(char *err, size_t errlen);

/* Does libopendkim accept sig, one complete "DKIM-Signature: ...\r\n"
 * field made by domain and selector, on msg[0..len) (the message it was
 * made for, which sig is put in front of)?  Its key query for the
 * signature is answered with txt ("v=DKIM1; k=...; p=...").  libopendkim
 * parses the message itself (dkim_chunk), without msg's own DKIM-Signature
 * fields: they are never signed (the header list cannot name them), and
 * libopendkim refuses a whole message for one it cannot parse.  Returns 0
 * when the signature by domain and selector passes with a matching body
 * hash; -1 with libopendkim's reason in err. */
int dkim_verifier_check(struct dkim_verifier *v, const char *sig, const uint8_t *msg,
    size_t len, const char *domain, const char *selector, const char *txt, char *err,
    size_t errlen);

/* Free v; *vp is set to NULL.  NULL is a no-op. */
void dkim_verifier_free(struct dkim_verifier **vp);

#endif
