/*
 * dkim_sign.h — the native DKIM signer (private to dkim.c, its unit test and
 * its fuzz target): RFC 6376 relaxed/relaxed canonicalization hashed with
 * GnuTLS (SHA-256), signatures with keys parsed once, and the folded
 * DKIM-Signature field.
 *
 * Keys, and where they live:
 *   - Ed25519 (RFC 8463): libsodium's 64-octet secret key (seed and public
 *     key, crypto_sign_ed25519_seed_keypair) in sodium_malloc() memory:
 *     guard pages, locked, excluded from core dumps, read-only after it is
 *     written, wiped on free.  It signs the SHA-256 of the canonicalized
 *     header data (RFC 8463 section 3: PureEdDSA over the 32-octet hash).
 *   - RSA: one OpenSSL EVP_PKEY parsed at load, PKCS#1 v1.5 signatures over
 *     the same SHA-256.  Its parsed form (the CRT values, and the Montgomery
 *     contexts OpenSSL caches in it after the first signature) is in the
 *     signer's ordinary heap, like GnuTLS's parsed TLS key in the keeper; the
 *     signer is not dumpable and seccomp-confined, and OpenSSL clears the
 *     numbers when the key is freed.  OpenSSL and not GnuTLS: on the
 *     project's machine (Debian 12, GnuTLS 3.7.9, nettle 3.8.1, OpenSSL 3.0)
 *     an RSA-2048 signature with a kept key takes 2.1 ms through
 *     gnutls_privkey_sign_hash2() (nettle's side-channel-silent exponent)
 *     and 0.29 ms through OpenSSL; OpenSSL is already loaded (libopendkim
 *     needs it) and did every RSA signature before.
 *
 * Canonicalization (RFC 6376 3.4.2, 3.4.4), exactly as libopendkim does it
 * (it is the cross-check, dkim_verify.h):
 *   - header: the name lower-cased, then ':', then the value unfolded with
 *     white space runs reduced to one SP and removed at both ends.  White
 *     space is SP, HTAB, CR and LF, and inside the value also VT and FF,
 *     which libopendkim (the previous signer) reduces too; RFC 6376 names
 *     only SP and HTAB, dkimpy strips VT/FF at the ends of a value only, so
 *     no canonical form of a value holding VT or FF satisfies every
 *     verifier; front refuses them in header fields (550 5.6.0,
 *     message.c), so only a caller other than front can bring one here.
 *   - body: white space runs within a line become one SP, white space at
 *     the end of a line and empty lines at the end of the body are removed;
 *     an empty body hashes as nothing.
 * Refused as bad messages, all outside what front sends (src/message.h
 * refuses them, or for BDAT adds the final CRLF), and none read alike by
 * every verifier: white space between a field name and its colon (dkimpy
 * cannot parse the message; with a TAB libopendkim's signer failed too), a
 * NUL octet in a signed field (libopendkim cuts the value there), a bare CR
 * or LF in the body (dkimpy and libopendkim hash it differently), a
 * non-empty body that does not end in CRLF (libopendkim's signer failed).
 *
 * Header selection (RFC 6376 5.4.2): h= lists, in message order, the name
 * (as written) of every field whose name is in the list (case-insensitive),
 * then every listed name once more (oversigning: the extra names cover no
 * field); each h= entry signs the bottom-most instance of its name that no
 * earlier entry took.  This is the h= libopendkim built for the same list,
 * and dkimpy and libopendkim verify it.
 */
#ifndef SUBPROXY_DKIM_SIGN_H
#define SUBPROXY_DKIM_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "dkim.h"

/* One header field of a message: the name (without trailing WSP) and the
 * whole field (name, colon, value with its folding) without its final CRLF. */
struct dkim_field {
	const uint8_t *name;
	size_t namelen;
	const uint8_t *text;
	size_t textlen;
};

#define DKIM_SHA256_LEN		32

struct dkim_signkey;

/* An Ed25519 key from its 32-octet seed (the PKCS#8 private key); the seed
 * is copied into guarded memory, the caller wipes its own copy.  NULL with
 * err on failure. */
struct dkim_signkey *dkim_signkey_ed25519(const uint8_t *seed, size_t seedlen, char *err,
    size_t errlen);

/* An RSA key of `bits` bits from its DER private key (PKCS#8 or PKCS#1),
 * parsed once; the caller wipes der.  NULL with err when OpenSSL cannot
 * read it, it is not RSA of that size, or its public exponent is even or
 * below 65537. */
struct dkim_signkey *dkim_signkey_rsa(const uint8_t *der, size_t derlen, unsigned int bits,
    char *err, size_t errlen);

/* Free a key, wiping it; *kp is set to NULL.  NULL is a no-op. */
void dkim_signkey_free(struct dkim_signkey **kp);

/* What every signature of one message shares: h=, the canonicalized signed
 * fields, bh=. */
struct dkim_canon;

/* Canonicalize a message: its header fields f[0..nf) (in message order)
 * and its body body[0..bodylen) (everything after the empty line), with
 * the signed header list names[0..nnames).  The fields are read now and
 * not kept.  Returns DKIM_RES_OK with *c_r, DKIM_RES_BADMSG (refused
 * input, see above) or DKIM_RES_INTERNAL (hashing failed), with the
 * reason in err. */
enum dkim_result dkim_canon_new(const char *const *names, size_t nnames,
    const struct dkim_field *f, size_t nf, const uint8_t *body, size_t bodylen,
    struct dkim_canon **c_r, char *err, size_t errlen);

/* The signature of key k (domain, selector: letters, digits, '-', '_',
 * '.'; checked by the caller) with t=t: 0 with a new string in *field_r,
 * one complete "DKIM-Signature: ...\r\n" field folded into lines of at
 * most 78 columns (a TAB counted as 8) wherever a tag fits on a line,
 * tags v a c d s t h bh b; -1 with err. */
int dkim_canon_sign(const struct dkim_canon *c, const struct dkim_signkey *k,
    const char *domain, const char *selector, uint64_t t, char **field_r, char *err,
    size_t errlen);

/* The h= value, unfolded ("From:To:...:From:Sender:..."), and the body
 * hash in base64 (bh=); both belong to c. */
const char *dkim_canon_hlist(const struct dkim_canon *c);
const char *dkim_canon_bh(const struct dkim_canon *c);

/* Free c; *cp is set to NULL.  NULL is a no-op. */
void dkim_canon_free(struct dkim_canon **cp);

#endif
