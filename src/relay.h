/*
 * relay.h — the upstream leg: SMTP client transactions to the relay MTA,
 * always over TLS verified with DANE, never plaintext.
 *
 * Connections are reused (relay_int.h has the parts): a transaction takes
 * an idle connection of the first relay that has one, or opens a new one,
 * and gives it back when it is freed.  Kept per relay target and per
 * process (each front worker has its own pool): up to `[relay] connections`
 * idle ones, each for at most `idle-timeout` seconds (then QUIT) and
 * `max-transactions` MAIL commands; one given back to a full pool stays as
 * a spare for `spare-timeout` seconds (taken first; never one to RSET or
 * bound by XCLIENT, which close the least recently used one instead).  A connection goes back to the pool only
 * in a clean state: after the reply to the last command (a message's final
 * reply, or RSET's 250 when the relay still held a transaction), never with
 * message data in flight, never after 421 or an unsolicited reply.  A
 * pooled connection is taken up with RSET then MAIL (pipelined when the
 * relay offers PIPELINING); found dead before the relay accepted MAIL (EOF,
 * reset, 421, RSET refused, write error) it is replaced by a new verified
 * connection without the client noticing.  With XCLIENT the relay takes a
 * connection for the client's: it serves that client session only.
 *
 * Every new connection is verified by DANE against the TLSA records that
 * hold when it is opened (dane = required: looked up for each new
 * connection, from libunbound's cache within their TTL); connections made
 * under an older TLSA set serve until they end.  TLS sessions are resumed
 * with the session data of the target's last connection, and a resumed
 * session is verified by DANE too (tls.h).
 *
 * Async contract (Dovecot's backend style): every operation completes exactly
 * once by calling its callback with a reply, unless the transaction is freed
 * first (then never).  Failures of the relay or of its verification are
 * turned into our own 4xx replies (451 4.4.0 unreachable, 451 4.7.5 TLS/DANE,
 * 451 4.4.2 timeout or lost connection, 451 4.3.0 no descriptor for a relay
 * connection); relay replies are passed on.  At most one operation is
 * outstanding.
 *
 * Re-entrancy rules: a callback is never called from inside relay_txn_start,
 * relay_txn_rcpt or relay_txn_data -- an operation that fails or finishes
 * at once (no socket, the relay leg already gone) completes on a later pass
 * of the event loop.  Callbacks may free the transaction (relay_txn_free);
 * relay code that is still below the callback on the stack keeps the
 * memory until its outermost frame returns.
 */
#ifndef SUBPROXY_RELAY_H
#define SUBPROXY_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct event_base;
struct spool;
struct relay_ctx;
struct relay_txn;
struct xclient_info;

/* A reply for the client: the relay's own, or one we made. */
struct relay_result {
	int code;                 /* 250, 451, ... */
	char enh[16];             /* "2.1.5"; always set */
	const char *text;         /* first line text, printable ASCII */
	const char *const *lines; /* all lines' text (nlines) */
	size_t nlines;
	int local;                /* 1: we made it (relay fault), 0: the relay's */
};

typedef void relay_cb(void *arg, const struct relay_result *res);

/* Capabilities of the relay learned by the last successful EHLO. */
struct relay_caps {
	int known;
	int starttls;
	int dsn, chunking, smtputf8, eightbit, pipelining;
	uint64_t size;
	int xclient;                    /* XCLIENT offered */
	unsigned xclient_attrs;         /* SMTP_XCLIENT_* (smtp_reply.h) */
};

struct dns_ctx;

/* Relay targets with static pins are resolved now (getaddrinfo on the
 * numeric `address` or host); targets with dane = required are looked up
 * with DNSSEC (dns) for each transaction. */
struct relay_ctx *relay_ctx_new(struct event_base *base, const struct config *cfg,
    struct dns_ctx *dns, char *err, size_t errlen);
void relay_ctx_free(struct relay_ctx **ctxp);

/* Read rc's auth-file (when set) with the checks relay_ctx_new() makes:
 * for the self-audit.  The file is opened O_NONBLOCK and must be a regular
 * file (a FIFO in its place fails at once, it is not waited for), mode
 * 0600 or stricter, under 1 KiB, first line user:password.  Returns 0, or
 * -1 with the same sentence in err.  The credentials are wiped. */
struct config_relay;
int relay_auth_check(const struct config_relay *rc, char *err, size_t errlen);

/* Start a background EHLO probe of the first relay to learn its capabilities
 * (DSN advertisement); its verified connection (after AUTH, when
 * configured) is the pool's first.  Failures are logged only. */
void relay_ctx_probe(struct relay_ctx *ctx);

/* The client session `sid` has ended: close the idle connections that
 * sent XCLIENT for it (nobody else may use them). */
void relay_ctx_session_end(struct relay_ctx *ctx, const char *sid);
const struct relay_caps *relay_ctx_caps(const struct relay_ctx *ctx);

/* Take a pooled connection or open a verified one, and send MAIL FROM:<from> params.
 * `params` are already validated ESMTP parameters (may be ""), `sid` is the
 * client session id for logs.  `client` (copied; may be NULL) says who the
 * client is: with `[relay] xclient = yes` and a relay that offers XCLIENT it
 * is sent after TLS and AUTH and before MAIL (xclient.h), followed by a new
 * EHLO; a relay without XCLIENT is used as it is and a warning is logged
 * once per relay; a relay that refuses XCLIENT is a failure of that relay
 * (451 4.7.0).  The callback gets the MAIL reply. */
struct relay_txn *relay_txn_start(struct relay_ctx *ctx, const char *sid, const char *from,
    const char *params, const struct xclient_info *client, relay_cb *cb, void *arg);

/* RCPT TO:<to> params. */
void relay_txn_rcpt(struct relay_txn *t, const char *to, const char *params, relay_cb *cb,
    void *arg);

/* Send the message: `prefix` (header fields we add, CRLF-terminated) then the
 * spool content, with BDAT when offered, else DATA with dot-stuffing.  The
 * callback gets the final reply.  The transfer (from DATA's 354 or BDAT
 * until the end is written) must be done within `[limits] relay-timeout`
 * plus one second per `relay-min-rate` octets written; else 451 4.4.2 and
 * the connection is closed without the end of the message. */
void relay_txn_data(struct relay_txn *t, const char *prefix, size_t prefix_len,
    struct spool *sp, relay_cb *cb, void *arg);

/* Describe the relay leg for logs/Received ("relay=NAME tls=... dane=ok-ee"). */
const char *relay_txn_describe(const struct relay_txn *t);

/* What the relay leg knows for the audit log: the relay verified last (name
 * NULL before any was), its TLS, the DANE verdict with the TLSA record that
 * matched and where it came from, and the message octets handed over with
 * their SHA-256 (before dot-stuffing: the message as relayed). */
struct relay_facts {
	const char *name;
	char address[64];
	char tls_version[32];
	char tls_cipher[96];
	const char *dane;               /* "ok-ee", "ok-ta" */
	char tlsa[160];                 /* dane_tlsa_text() of the matching record */
	const char *dnssec;             /* "secure": DNSSEC-validated TLSA; "pinned": configured */
	uint64_t octets;
	int have_sha256;                /* every octet of the message was handed over */
	unsigned char sha256[32];
};
void relay_txn_facts(const struct relay_txn *t, struct relay_facts *f);

/* 1 while the end of the message is handed to the relay's connection and
 * its final reply has not come: a transaction freed now leaves the relay's
 * outcome unknown (it may hold the message and deliver it). */
int relay_txn_final_pending(const struct relay_txn *t);

/* End the transaction: its connection goes back to the pool when clean
 * (else QUIT when idle); if data is in flight the connection is closed
 * without the final terminator so that nothing is delivered.  *tp = NULL;
 * NULL is a no-op. */
void relay_txn_free(struct relay_txn **tp);

#endif
