/*
 * tls.h — GnuTLS credentials and sessions for both legs.
 *
 * Server side: one certificate chain (leaf first) and key, the configured
 * priority string (TLS 1.2 minimum enforced on top of it), no renegotiation.
 * Client side (relay): no PKIX trust at all; the peer is judged only by DANE
 * (tls_peer_dane()).  Sessions are returned as void * to keep GnuTLS inside
 * tls.c and conn.c.
 */
#ifndef SUBPROXY_TLS_H
#define SUBPROXY_TLS_H

#include <stddef.h>
#include <stdint.h>
#include "dane.h"

struct tls_server;
struct tls_client;

/* Load certificate chain and key; check that they match.  Returns NULL with
 * a sentence in err on failure. */
struct tls_server *tls_server_new(const char *cert_file, const char *key_file,
    const char *priority, char *err, size_t errlen);
/* Appended to every priority string, whatever the operator configured:
 * never below TLS 1.2, never static RSA key exchange (the keeper refuses
 * decryption).  The self-audit evaluates the same effective string. */
#define TLS_PRIORITY_FLOOR ":-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-DTLS-ALL:-RSA"

/* Server credentials whose private key lives in another process: privkey is
 * a gnutls_privkey_t from keeper_tls_privkey() (ownership taken, also on
 * failure), spki the DER SubjectPublicKeyInfo the keeper reported, which
 * must be the leaf's.  Static RSA key exchange is never offered. */
struct tls_server *tls_server_new_key(const char *cert_file, void *privkey,
    const uint8_t *spki, size_t spki_len, const char *priority, char *err, size_t errlen);
void tls_server_free(struct tls_server **tsp);

/* A new server session (gnutls_session_t) ready for conn_start_tls(). */
void *tls_server_session(struct tls_server *ts);

/* DER of the served leaf certificate (for own-TLSA checks); valid while ts lives. */
int tls_server_leaf(const struct tls_server *ts, struct dane_cert *out);

/* The served chain (leaf first, at most max entries, DER, valid while ts
 * lives); returns the number stored. */
#define TLS_CHAIN_MAX 8
size_t tls_server_chain(const struct tls_server *ts, struct dane_cert *out, size_t max);

struct tls_client *tls_client_new(const char *priority, char *err, size_t errlen);
void tls_client_free(struct tls_client **tcp);

/* A new client session with SNI set to `sni` (NULL or an IP literal: no SNI). */
void *tls_client_session(struct tls_client *tc, const char *sni);

/* Verify the peer of an established client session against TLSA records.
 * names: reference identifiers for DANE-TA.  Fills why (one sentence) and
 * *matched_r (may be NULL): the index of the record that matched, or -1. */
enum dane_verdict tls_peer_dane(void *session, const struct dane_tlsa *rrs, size_t nrrs,
    const char *const *names, size_t nnames, int *matched_r, char *why, size_t whylen);

/* "TLSv1.3/TLS_AES_256_GCM_SHA384"-style description for logs and Received. */
void tls_describe(void *session, char *out, size_t outlen);

/* The protocol version ("TLS1.3", GnuTLS's name) and the cipher suite
 * (IANA name, "TLS_AES_256_GCM_SHA384") of an established session. */
void tls_params(void *session, char *version, size_t vlen, char *cipher, size_t clen);

/* Global init (gnutls_global_init); idempotent. */
void tls_init(void);

#endif
