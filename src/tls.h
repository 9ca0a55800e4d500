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
#include <time.h>
#include "dane.h"

struct event_base;
struct tls_server;
struct tls_client;

/* Load certificate chain and key; check that they match.  Returns NULL with
 * a sentence in err on failure. */
struct tls_server *tls_server_new(const char *cert_file, const char *key_file,
    const char *priority, char *err, size_t errlen);
/* Appended to every priority string, whatever the operator configured:
 * never below TLS 1.2, never static RSA key exchange (the keeper refuses
 * decryption), never plain PSK key exchange (a resumed TLS 1.3 session
 * always makes a fresh ECDHE).  The self-audit evaluates the same
 * effective string. */
#define TLS_PRIORITY_FLOOR ":-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-DTLS-ALL:-RSA:-PSK"

/* Server credentials whose private key lives in another process: privkey is
 * a gnutls_privkey_t from keeper_tls_privkey() (ownership taken, also on
 * failure), spki the DER SubjectPublicKeyInfo the keeper reported, which
 * must be the leaf's.  Static RSA key exchange is never offered. */
struct tls_server *tls_server_new_key(const char *cert_file, void *privkey,
    const uint8_t *spki, size_t spki_len, const char *priority, char *err, size_t errlen);
void tls_server_free(struct tls_server **tsp);

/* A new server session (gnutls_session_t) ready for conn_start_tls().
 * Once tls_tickets_init() ran in this process or its parent, the session
 * issues and accepts session tickets (see below). */
void *tls_server_session(struct tls_server *ts);

/*
 * Session resumption by ticket: TLS 1.3 tickets (PSK, with ECDHE, no early
 * data) and TLS 1.2 session tickets (RFC 5077).  A resumed handshake makes
 * no private-key operation, so it never asks the keeper.
 *
 * Key: one random 64-octet master per generation, made by
 * tls_tickets_init() in the parent before it forks the front workers, so
 * every worker (and one started later in the same generation) accepts the
 * tickets of every other.  It is no identity key (it proves nothing to a
 * client), which is why the parent may hold it.  A restart or a new
 * generation makes a new master: every older ticket is then refused, as
 * is every ticket of any other process (another certificate, another host).
 *
 * Rotation: GnuTLS 3.7.9 (lib/stek.c) encrypts and authenticates tickets
 * with SHA3-512(t || master), t = time / TLS_TICKET_PERIOD (3 x the
 * lifetime, aligned to multiples of it since the epoch), and a new session
 * accepts only the current t's key: every ticket dies at the end of the
 * period it was issued in.  GnuTLS never changes the master itself, so
 * tls.c ratchets it forward at every period boundary (BLAKE2b, the old one
 * wiped; every worker computes the same chain): front's memory never holds
 * a key that opens the tickets of an earlier period.  The parent keeps the
 * key of the period of its last tls_tickets_advance().
 *
 * Lifetime: TLS_TICKET_LIFETIME seconds, as told to clients.  TLS 1.2:
 * the server checks the ticket's own timestamp.  TLS 1.3: the server checks
 * the ticket age the client states, and a resumed session is given a new
 * ticket.  The bound whatever a client states or does: no ticket is
 * accepted after the end of the period it was issued in (at most
 * TLS_TICKET_PERIOD seconds later); then the client makes a full handshake.
 */
#define TLS_TICKET_KEY_SIZE     64
#define TLS_TICKET_LIFETIME     3600                            /* seconds */
#define TLS_TICKET_PERIOD       (3 * TLS_TICKET_LIFETIME)       /* GnuTLS: 3 x lifetime */

/* Make this generation's ticket master (parent, before forking front
 * workers; again for a new generation).  Guarded memory (sodium_malloc),
 * never in a core dump.  Fatal if the random generator fails. */
void tls_tickets_init(void);

/* Ratchet the master forward to the period of `now` (wiping the old one);
 * never backwards.  tls_server_session() calls it too. */
void tls_tickets_advance(time_t now);

/* Call tls_tickets_advance() on base at every period boundary, so the
 * master of a period is wiped when the period ends even when no client
 * comes.  Once per event loop (front); the timer lives as long as base. */
void tls_tickets_schedule(struct event_base *base);

/* Tests only: the clock tls.c and GnuTLS use (default time()). */
void tls_set_clock(time_t (*clock)(time_t *));

/* DER of the served leaf certificate (for own-TLSA checks); valid while ts lives. */
int tls_server_leaf(const struct tls_server *ts, struct dane_cert *out);

/* The served chain (leaf first, at most max entries, DER, valid while ts
 * lives); returns the number stored. */
#define TLS_CHAIN_MAX 8
size_t tls_server_chain(const struct tls_server *ts, struct dane_cert *out, size_t max);

struct tls_client *tls_client_new(const char *priority, char *err, size_t errlen);
void tls_client_free(struct tls_client **tcp);

/*
 * Client-side session resumption (the relay leg).  A tls_ticket is what
 * GnuTLS needs to resume a session later (gnutls_session_get_data2: the
 * TLS 1.3 ticket or TLS 1.2 session ticket, the secret to use it, and the
 * server's certificate chain as seen in the full handshake).
 *
 * DANE on a resumed session: GnuTLS 3.7.9 packs the peer's certificates
 * into the session data (lib/session_pack.c, pack_certificate_auth_info)
 * and restores them when the session is resumed, TLS 1.2 and TLS 1.3 alike,
 * so gnutls_certificate_get_peers() -- and tls_peer_dane() -- return the
 * chain the server proved it holds the key of in the full handshake the
 * ticket comes from.  The caller matches it against the TLSA records that
 * hold now; tls_peer_ncerts() tells when a resumed session has no chain
 * (then the caller must not resume).
 */
struct tls_ticket;

/* A new client session with SNI set to `sni` (NULL or an IP literal: no
 * SNI), offering to resume `resume` (NULL: a full handshake). */
void *tls_client_session(struct tls_client *tc, const char *sni,
    const struct tls_ticket *resume);

/* What resumes `session` later, or NULL when the server gave nothing to
 * resume with (TLS 1.3: no ticket received yet -- tickets arrive after the
 * handshake, so ask after the first record was read).  Free with
 * tls_ticket_free(). */
struct tls_ticket *tls_ticket_take(void *session);

/* Wipe and free; *tp = NULL; NULL is a no-op. */
void tls_ticket_free(struct tls_ticket **tp);

/* 1 when the established session was resumed (no full handshake). */
int tls_session_resumed(void *session);

/* How many certificates the peer's chain has (restored ones on a resumed
 * session). */
unsigned tls_peer_ncerts(void *session);

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
