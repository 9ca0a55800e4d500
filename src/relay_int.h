/*
 * relay_int.h — what the three parts of the relay leg share; the rest of
 * subproxy uses relay.h only.
 *
 *   relay.c       transactions: the public API, MAIL, RCPT, DATA/BDAT, a
 *                 pooled connection taken up again (RSET, then MAIL), the
 *                 completions and their re-entrancy rules
 *   relay_open.c  opening a new verified connection: DNS (dane = required),
 *                 connect, TLS (resumed when a session is kept), DANE on
 *                 every new connection, EHLO, AUTH, XCLIENT; failing over to
 *                 the next address and the next relay
 *   relay_pool.c  the relay targets (addresses, credentials, the TLS
 *                 session data kept for resumption) and the idle
 *                 connections kept per target for later transactions
 *
 * A relay_link is one connection to a relay.  It belongs to exactly one of:
 * the transaction that opens or uses it (t->link; its conn's callback is
 * the transaction's), or the pool of its target (idle, or saying RSET after
 * a transaction that did not end with a final reply).  A transaction takes
 * a link from the pool or opens a new one, and gives it back when it is
 * freed: the pool keeps it only in a clean state (no command outstanding,
 * no message data in flight, no 421 or unsolicited reply seen).
 */
#ifndef SUBPROXY_RELAY_INT_H
#define SUBPROXY_RELAY_INT_H

#include "relay.h"
#include "conn.h"
#include "dane.h"
#include "danedns.h"
#include "message.h"
#include "xclient.h"

#include <stdint.h>
#include <sys/socket.h>

#include <sodium.h>
#include <event2/event.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#define RELAY_MAX_ADDRS   8

struct smtp_reply;
struct smtp_reply_parser;
struct tls_ticket;

struct relay_target {
	const struct config_relay *rc;
	struct sockaddr_storage addrs[RELAY_MAX_ADDRS];  /* static pins: resolved at start */
	socklen_t addrlens[RELAY_MAX_ADDRS];
	size_t naddrs;
	char *auth_plain;               /* base64 "\0user\0pass", sodium_malloc'd */
	int xclient_warned;             /* "relay does not offer XCLIENT" logged (by this
					 * front worker) */
	/* idle connections, least recently used first */
	struct relay_link *idle_first, *idle_last;
	size_t nidle;
	/* TLS resumption: the session data of the last verified connection */
	struct tls_ticket *ticket;
	int resume_off;                 /* resumed sessions came without certificates */
};

struct relay_ctx {
	struct event_base *base;
	struct dns_ctx *dns;
	const struct config *cfg;
	struct tls_client *tls;
	struct relay_target *targets;
	size_t ntargets;
	struct relay_caps caps;
	struct relay_txn *probe;
	struct event *ev_probe;         /* ends a probe that takes too long */
	char ended_sid[24];             /* the session that ended last */
	char ehlo_name[256];
};

/* Where a link is when the pool has it. */
enum relay_link_state { LINK_IN_USE, LINK_IDLE, LINK_RESETTING };

struct relay_link {
	struct relay_ctx *ctx;
	size_t target;
	struct conn *conn;
	struct smtp_reply_parser *rp;
	struct relay_caps caps;         /* of the last EHLO */
	enum relay_link_state pstate;
	struct relay_link *prev, *next; /* in the target's idle list */
	unsigned ntxn;                  /* MAIL commands sent on it */
	int unpoolable;                 /* never kept (the probe's, without AUTH) */
	int spare;                      /* idle beyond [relay] connections: kept spare-timeout */
	char sid[24];                   /* the session that opened it */
	/* XCLIENT: the commands sent (then the relay takes the connection for
	 * that client's: only the session sid may use it again); NULL: none */
	struct xclient_cmds *xc;
	unsigned xc_attrs;              /* the attributes they were built for */
	/* the verification, for logs and the audit log */
	int verified, resumed;
	enum dane_verdict verdict;
	int matched;                    /* index of the matching record, -1 */
	char tlsa[160];                 /* dane_tlsa_text() of it */
	char peer[64], tlsver[32], tlscipher[96], tlsdesc[96];
	char desc[256];                 /* "relay=NAME addr=... tls=\"...\" dane=..." */
};

enum relay_state {
	/* opening a new connection (relay_open.c) */
	R_RESOLVE, R_CONNECT, R_TLS_IMPLICIT, R_GREETING, R_EHLO1, R_STARTTLS, R_TLS, R_EHLO2,
	R_AUTH, R_XCLIENT, R_EHLO3,
	/* a pooled connection: RSET sent (and MAIL, when pipelined) */
	R_RSET,
	/* the transaction */
	R_MAIL, R_IDLE, R_RCPT, R_DATA_CMD, R_DATA_SEND, R_FINAL, R_QUIT, R_DEAD
};

/* In rising order of how telling a failure is (the worst one is reported). */
enum relay_fail {
	FAIL_NONE, FAIL_CONNECT, FAIL_LOCAL, FAIL_LOST, FAIL_PROTOCOL, FAIL_TIMEOUT, FAIL_AUTH,
	FAIL_DNS_TEMP, FAIL_DNSSEC, FAIL_TLS
};

/* A completion that must wait for the loop (see relay_complete). */
struct relay_done {
	int code;
	char enh[16];
	char **lines;
	size_t nlines;
	int local;
	relay_cb *cb;
	void *arg;
};

struct relay_txn {
	struct relay_ctx *ctx;
	char sid[24];
	char *from, *params;
	/* who the client is (XCLIENT): a copy, and the commands being sent */
	struct xclient_info client;
	int has_client;
	char *client_strs[4];
	struct xclient_cmds *xc;
	size_t xc_next;
	struct relay_link *link;         /* the connection, opening or in use */
	unsigned conn_gen;               /* + 1 whenever link's connection goes */
	enum relay_state state;
	/* opening: the position in the try list (targets, then addresses) */
	size_t target, addr;
	struct danedns_query *dq;
	size_t resolved;                 /* target + 1 whose DNS data is in dyn */
	struct danedns_result dyn;
	const struct sockaddr_storage *addrs;
	const socklen_t *addrlens;
	size_t naddrs;
	const struct dane_tlsa *rrs;
	size_t nrrs;
	const char *names[2];
	size_t nnames;
	enum relay_fail worst;           /* most telling failure so far */
	int full_handshake;              /* this address again, without resumption */
	int is_probe;
	/* a pooled connection */
	int reused;                      /* the connection came from the pool */
	int pooled_mail;                 /* ... and MAIL is not answered yet */
	int mail_sent;                   /* MAIL went with RSET (PIPELINING) */
	int open_txn;                    /* the relay holds a mail transaction */
	relay_cb *cb;
	void *cb_arg;
	/* re-entrancy: frames of relay code using t, and owner calls in progress */
	unsigned busy;
	unsigned in_owner_call;
	int freed;                       /* relay_txn_free() while busy */
	struct event *ev_done;           /* delivers `done` from the loop */
	struct event *ev_reply;          /* relay-timeout for the awaited reply */
	struct event *ev_xfer;           /* the message transfer's deadline (relay.c) */
	struct relay_done done;
	/* message transfer */
	const char *prefix;
	size_t prefix_len;
	struct spool *sp;
	uint64_t sent;                   /* bytes of prefix+spool queued */
	uint64_t xfer_start_us;          /* when the transfer began (DATA's 354, or BDAT) */
	uint64_t xfer_queued;            /* octets queued on the connection since (as
					  * written: stuffed, with the BDAT command) */
	struct msg_stuffer stuff;
	char desc[300];
	gnutls_hash_hd_t sha;            /* SHA-256 of what was queued (from DATA on; GnuTLS's:
					  * SHA-NI where the CPU has it, 7x libsodium's) */
	struct smtp_reply *reply;        /* the last reply (its lines are passed on) */
	uint64_t asked_us;               /* when the command now waiting was sent */
};

/* ---- relay.c, for the other parts ---- */

/* Every frame that works on t holds it; relay_txn_free() inside such a
 * frame only marks t, and the outermost frame frees it on release. */
void relay_hold(struct relay_txn *t);
void relay_release(struct relay_txn *t);
const struct config_relay *relay_target_cfg(const struct relay_txn *t);
const char *relay_state_name(enum relay_state s);
void relay_set_state(struct relay_txn *t, enum relay_state s);
void relay_send(struct relay_txn *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The connection is verified and ready (after EHLO, AUTH, XCLIENT): MAIL. */
void relay_send_mail(struct relay_txn *t);
/* Close the connection at once (no QUIT, no final dot); the link stays
 * for its facts. */
void relay_drop_conn(struct relay_txn *t);
/* A fault of the relay leg: our own 4xx; the connection is gone. */
void relay_fail(struct relay_txn *t, enum relay_fail why);
void relay_conn_cb(struct conn *c, enum conn_event ev, void *arg);

/* ---- relay_open.c ---- */

/* Open a new verified connection from the current (t->target, t->addr)
 * on; when every address of every relay failed, relay_fail() with the most
 * telling reason.  May complete at once (no descriptor for any socket):
 * relay_fail() defers the callback when an owner call is on the stack. */
void relay_open_next(struct relay_txn *t);
/* Opening states: a reply, or a connection event. */
void relay_open_reply(struct relay_txn *t, const struct smtp_reply *r);
void relay_open_event(struct relay_txn *t, struct conn *c, enum conn_event ev);
/* A protocol error while opening: on to the next address. */
void relay_open_protocol_error(struct relay_txn *t);
/* No complete reply within relay-timeout while opening: the next address. */
void relay_open_timeout(struct relay_txn *t);
/* Free what opening holds (DNS lookup, DNS data, XCLIENT commands). */
void relay_open_clear(struct relay_txn *t);
/* The relay's EHLO capabilities, as far as the relay leg uses them. */
void relay_caps_from_ehlo(const struct smtp_reply *r, struct relay_caps *rc);

/* ---- relay_pool.c ---- */

/* Resolve static targets, read credentials.  Returns 0, or -1 with err. */
int relay_targets_init(struct relay_ctx *ctx, char *err, size_t errlen);
/* Close every idle connection, wipe credentials and session data. */
void relay_targets_free(struct relay_ctx *ctx);

/* A link for target, not connected yet (conn NULL), in use by session sid. */
struct relay_link *relay_link_new(struct relay_ctx *ctx, size_t target, const char *sid);
/* Forget the connection state for a new attempt at `target`. */
void relay_link_reset(struct relay_link *l, size_t target);
/* Close the connection at once (no QUIT, no final dot) but keep the link
 * (its facts); then free.  NULL is a no-op. */
void relay_link_drop(struct relay_link *l);
void relay_link_free(struct relay_link **lp);

/* An idle connection the session `sid` with client `ci` (NULL: none) may
 * use, from the first relay that has one (the most recently used there),
 * or NULL.  It is the caller's now: set its callback and timeout. */
struct relay_link *relay_pool_take(struct relay_ctx *ctx, const char *sid,
    const struct xclient_info *ci);
/* Give a link back after a transaction.  `idle`: no command is outstanding
 * and no message data in flight; `reset`: the relay still holds a mail
 * transaction (RSET first, kept only after its 250).  Kept when it is clean
 * and may serve again ([relay] connections, max-transactions; beyond
 * connections as a spare for spare-timeout, unless it is to RSET or bound
 * by XCLIENT: then the least recently used idle one goes), else QUIT
 * (idle) or closed at once (not idle).  *lp = NULL. */
void relay_pool_put(struct relay_link **lp, int idle, int reset);
/* May a verified connection with these capabilities serve a later
 * transaction (connections > 0; not a relay where every transaction sends
 * XCLIENT first)? */
int relay_pool_wants(const struct relay_link *l);
/* Keep the session data of a verified connection for resumption. */
void relay_pool_keep_ticket(struct relay_link *l);

#endif
