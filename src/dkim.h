/*
 * dkim.h — DKIM signing keys and signatures, for the signer.
 *
 * Keys come from `[dkim "DOMAIN"] key = SELECTOR FILE`.  Each FILE must be a
 * PEM private key (any PEM form GnuTLS reads: PKCS#8, PKCS#1, with or without
 * certtool's text dump before it; one PEM block, nothing after it) that only
 * its owner can access (mode & 077 == 0): RSA of 2048..4096 bits with a
 * public exponent of at least 65537, or Ed25519.  GnuTLS reads the file once; the key
 * is kept parsed, ready to sign (dkim_sign.h says where each kind lives):
 * an Ed25519 key as libsodium's secret key in sodium_malloc() memory
 * (read-only, wiped on free), an RSA key as OpenSSL's parsed key in the
 * signer's heap.  The file's text is read into sodium_malloc() memory and
 * wiped once parsed; GnuTLS's exported copies are wiped too.
 *
 * Signatures are made natively (dkim_sign.c, RFC 6376 and RFC 8463), and
 * libopendkim is the independent check (dkim_verify.h): loading signs a
 * test message with every key and libopendkim, given the key's own DNS
 * TXT record, must verify it, or the load fails naming the key file and
 * libopendkim's reason.  Loading thereby also runs OpenSSL's lazy
 * initialisation (which reads files) before any sandbox is entered.
 * Before, libopendkim signed every message, parsing the PEM key again each
 * time (OpenSSL's decoders, about 0.54 ms) and signing with a fresh RSA
 * object (about 0.7 ms instead of 0.34): doc/design.md, "DKIM".
 *
 * Signing: relaxed/relaxed, whole body (no l=), t= set, rsa-sha256 or
 * ed25519-sha256.  The signing domain is the domain of the single address in
 * the single header From field; every key configured for that domain signs
 * (an Ed25519 and an RSA key give two signatures, RFC 8463).  The signed
 * header list comes from the policy file: each listed field that is present
 * is signed once per occurrence plus once more, each absent one once
 * (oversigning: nothing in the list can be added later without breaking the
 * signature); h= has the order libopendkim gave it (dkim_sign.h).
 * Received, Return-Path and DKIM-Signature can never be listed.
 *
 * The From address is read by front's own parser and rule
 * (rfc5322_from_domain, rfc5322.h) on the value unfolded, as front's
 * message parser holds it, so that front can refuse before
 * signing exactly what the signer would refuse: a group or a list with an
 * empty element is read as front reads it; several addresses, several From
 * fields and a domain literal are refused.
 */
#ifndef SUBPROXY_DKIM_H
#define SUBPROXY_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Outcome of dkim_sign_message().  The values travel in PROC_SIGN_REP. */
enum dkim_result {
	DKIM_RES_OK = 0,
	DKIM_RES_NOKEY = 1,	/* the From domain has no key: 550 5.7.1 */
	DKIM_RES_BADMSG = 2,	/* no/several From fields, unparsable From, bad header,
				 * input outside what front sends (dkim_sign.h) */
	DKIM_RES_INTERNAL = 3	/* hashing or signing failed: 451 4.3.0 */
};

enum dkim_keytype { DKIM_KEY_RSA = 1, DKIM_KEY_ED25519 = 2 };

#define DKIM_POLICY_MAX		64	/* header names in a policy file */
#define DKIM_FIELDS_MAX		4096	/* header fields of a message; more: BADMSG */
#define DKIM_KEYFILE_MAX	(64 * 1024)

struct dkim_policy;
struct dkim_keyset;

/* Facts about one loaded key (nothing secret).  Strings belong to the set. */
struct dkim_keyinfo {
	const char *domain;	/* lower case */
	const char *selector;
	const char *file;
	enum dkim_keytype type;
	unsigned int bits;	/* RSA modulus bits; 256 for Ed25519 */
	const char *dns_txt;	/* "v=DKIM1; k=rsa; p=..." as it should be published */
};

/* Parse a header list held in memory: one field name per line, `#` starts a
 * comment, blank lines ignored.  Names are [A-Za-z0-9-]+, unique (case-
 * insensitive), at most DKIM_POLICY_MAX; From is required; Received,
 * Return-Path and DKIM-Signature are refused.  `file` names the source in
 * messages.  Returns a new policy, or NULL with "FILE:LINE: ..." in err. */
struct dkim_policy *dkim_policy_parse(const char *file, const char *buf, size_t len,
    char *err, size_t errlen);

/* Read `path` (at most 64 KiB) and call dkim_policy_parse(). */
struct dkim_policy *dkim_policy_load(const char *path, char *err, size_t errlen);

/* Number of names, and the i-th name as written in the file. */
size_t dkim_policy_count(const struct dkim_policy *pol);
const char *dkim_policy_name(const struct dkim_policy *pol, size_t i);

/* Free a policy; *polp is set to NULL.  NULL is a no-op. */
void dkim_policy_free(struct dkim_policy **polp);

/* Load every key of dkims[0..ndkims) with the header list of pol (copied;
 * pol may be freed afterwards).  Refuses: a file that cannot be read, is not
 * a regular file, has mode & 077 != 0 (message names the file, its mode and
 * `chmod 600 FILE`), is not a PEM private key, holds more than one PEM
 * block or text after it, is encrypted, RSA outside 2048..4096 bits or with
 * a public exponent below 65537 (or even), other key types, a duplicate domain+selector, a domain
 * or selector that is not a DNS name, a key whose test signature
 * libopendkim does not verify.  Returns a key set, or NULL with one message
 * in err. */
struct dkim_keyset *dkim_keys_load(const struct config_dkim *dkims, size_t ndkims,
    const struct dkim_policy *pol, char *err, size_t errlen);

/* Number of keys, and facts about key i (0 or -1 if i is out of range). */
size_t dkim_keyset_count(const struct dkim_keyset *ks);
int dkim_keyset_info(const struct dkim_keyset *ks, size_t i, struct dkim_keyinfo *info);

/* Free a key set, wiping the keys; *ksp is set to NULL.  NULL is a no-op. */
void dkim_keyset_free(struct dkim_keyset **ksp);

/* Sign msg[0..len): a whole message, CRLF line ends, header section then
 * an empty line then the body (a message without an empty line is all
 * header).  On DKIM_RES_OK, *headers_r is a new string (caller frees) with
 * one complete, folded "DKIM-Signature: ...\r\n" field per key of the From
 * domain, in configuration order, to be prepended to the message.  On any
 * other result *headers_r is NULL.  Internal failures are logged. */
enum dkim_result dkim_sign_message(struct dkim_keyset *ks, const uint8_t *msg, size_t len,
    char **headers_r);

/* The same for prefix[0..plen) followed by msg[0..len), signed as one
 * message without joining them (the signer gets front's header fields in
 * its request and the message in the spool's memfd, signer.h).  prefix
 * must be complete header fields, each ending in CRLF, and nothing else
 * (no empty line): otherwise DKIM_RES_BADMSG.  A field of msg cannot
 * continue the last one of prefix (msg starting with white space is
 * malformed).  plen 0: msg alone. */
enum dkim_result dkim_sign_parts(struct dkim_keyset *ks, const uint8_t *prefix, size_t plen,
    const uint8_t *msg, size_t len, char **headers_r);

/* Name of a result for logs ("ok", "no-key", "bad-message", "internal"). */
const char *dkim_result_name(enum dkim_result r);

#endif
