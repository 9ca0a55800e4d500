/*
 * auditrec.h — the audit records the parent and front send to the recorder
 * (recorder.h): their JSON bodies (pure builders, doc/audit-log.schema.json)
 * and front's side of the log (the recorder client and the fail-closed
 * state).
 *
 * front never formats a line of the log: it sends the facts as a JSON
 * object per record type; the recorder checks them against the schema,
 * pseudonymizes them when configured, numbers, chains and writes them.
 * Passwords and message bodies are never part of any record.
 */
#ifndef SUBPROXY_AUDITREC_H
#define SUBPROXY_AUDITREC_H

#include <stddef.h>
#include <stdint.h>

#include "recorder.h"

struct audit_baseline;
struct config;
struct event_base;
struct relay_facts;

/* ---- the parent's records ---- */

/* Is the log required ([audit] required, else the profile's audit-log
 * line: required under bsi-tr-03108, optional under baseline)? */
int auditrec_required(const struct config *cfg);

/* Bodies (new strings, caller frees; *len_r their length). */
/* The start record: the self-audit's checks by status (bl), and whether
 * it failed (the start is refused). */
char *auditrec_start_body(const struct config *cfg, const struct audit_baseline *bl,
    int failed, size_t *len_r);
char *auditrec_stop_body(const char *reason, const char *detail, int status, size_t *len_r);

/* ---- front ---- */

struct auditrec;
struct auditrec_txn;

/* front's handle on the log.  fd: the recorder socket, or -1 when there is
 * no audit log (every call below is then a no-op that accepts everything).
 * workers: the front workers of this generation, which share [audit]
 * flood-records (each may write its share, rounded up).  dead_cb runs
 * once, from the loop, when the recorder is gone. */
struct auditrec *auditrec_new(struct event_base *base, const struct config *cfg, int fd,
    unsigned workers, recorder_dead_cb *dead_cb, void *arg);
void auditrec_free(struct auditrec **arp);

/* Before front ends (its loop has stopped): record what is still counted
 * and run the loop until the recorder answered every record sent (at most
 * RECORDER_ACK_TIMEOUT + 1 s), so that none is left in front's queue. */
void auditrec_finish(struct auditrec *ar);

/* 0 when a new transaction must be refused with 451 4.3.0: the log is
 * required and cannot be written now (or the recorder is gone). */
int auditrec_accepting(const struct auditrec *ar);

/*
 * Records a client can repeat at will before it authenticated (a
 * connection over the limits, a MAIL command before AUTH, a session ended
 * for protocol errors, an AUTH attempt over auth-per-minute or refused by
 * lockout or a busy keeper) take a flood_key: the client's address key
 * (conn_addr_key()).  Then the first of a kind from that key in a minute is
 * recorded, the ones after it are counted, and one record with "count",
 * "first" and "last" stands for them when the minute is over (or at stop:
 * auditrec_finish()).  At most [audit] flood-records such records a minute
 * name a client; beyond that a kind is counted for all addresses together
 * (one record per kind and minute, "client": "*", auditagg.h).  Every refusal, flood or not, is a bulk record
 * (recorder_send_bulk()): they never take the queue places transaction and
 * AUTH records need; one that finds no place is counted the same way and
 * recorded when there is room.
 * flood_key NULL: every one is recorded.
 */

/* One AUTH attempt (never the password). */
void auditrec_auth(struct auditrec *ar, const char *session, const char *client,
    const char *login, const char *mechanism, const char *result, int lockout, int closed,
    int code, const char *enh, const char *flood_key);

/* A command refused by policy.  stage: connect, session, auth, mail, rcpt,
 * data, message, dkim; reason: a stable token for reports
 * ("sender-not-owned", "messages-per-hour", ...); text: the sentence the
 * client was given. */
void auditrec_refusal(struct auditrec *ar, const char *session, const char *client,
    const char *login, const char *stage, int code, const char *enh, const char *reason,
    const char *text, const char *flood_key);

/* A check of the live self-audit (audit_live.c) changed: failed (ok 0,
 * with its remedy) or recovered (ok 1).  status: the check's status name
 * now; required: whether the profile requires it.  NULL ar is a no-op. */
void auditrec_recheck(struct auditrec *ar, const char *check, int ok, const char *status,
    int required, const char *summary, const char *remedy);

/* A transaction's facts, gathered from MAIL to the relay's final reply.
 * Strings are copied. */
struct auditrec_txn *auditrec_txn_new(const char *session, const char *login,
    const char *client, const char *tls_version, const char *tls_cipher, const char *from);
void auditrec_txn_rcpt(struct auditrec_txn *tx, const char *addr, int code, const char *enh,
    const char *text);
/* The Message-ID (NULL: none), the DKIM-Signature fields made (may be
 * NULL), and the moment the message is handed to the relay. */
void auditrec_txn_message(struct auditrec_txn *tx, const char *message_id,
    const char *dkim_headers);
/* The relay's final reply and what the relay leg knows (may be NULL). */
void auditrec_txn_final(struct auditrec_txn *tx, int code, const char *enh, const char *text,
    int local, const struct relay_facts *rf);
/* Instead of a final reply: none was awaited.  The session ended (the
 * client left: reset, close, timeout; or the server stopped it) after the
 * end of the message was handed to the relay (relay_txn_final_pending()),
 * so the relay may hold the message.  The record says "final": {"code":
 * null, "enh": null, "local": true, "unknown": why, "text": ...}: nothing
 * in it came from the relay (doc/audit-log.md).  why: a constant,
 * "session-ended". */
void auditrec_txn_unknown(struct auditrec_txn *tx, const char *why,
    const struct relay_facts *rf);
void auditrec_txn_free(struct auditrec_txn **txp);

/* The body of a txn record (pure; for tests).  New string. */
char *auditrec_txn_body(const struct auditrec_txn *tx, size_t *len_r);

/* Send the transaction's record; cb gets the recorder's answer (enum
 * recorder_status or RECORDER_DEAD/_BUSY/_TIMEOUT), never from inside
 * this call.  Returns a cookie for recorder_cancel(), or NULL when there is
 * no audit log (nothing to wait for: go on at once). */
struct recorder_req *auditrec_txn_commit(struct auditrec *ar, const struct auditrec_txn *tx,
    recorder_cb *cb, void *arg);

/* The DKIM-Signature fields in `headers` (CRLF-separated, folded), each as
 * its d=, s=, a= and bh= tags, to cb (pure; for tests). */
typedef void auditrec_dkim_cb(void *arg, const char *d, const char *s, const char *a,
    const char *bh);
void auditrec_dkim_tags(const char *headers, auditrec_dkim_cb *cb, void *arg);

#endif
