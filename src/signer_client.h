/*
 * signer_client.h — front's client for the signer (signer.h).  Runs in
 * front.
 *
 * It never waits: the message goes to the signer as the spool's own memfd,
 * sealed (spool_seal: never written again, by anyone), with the header
 * fields front adds in the request; nothing of the message is copied
 * (a spool still in memory, at most [limits] memory-body octets, moves to
 * its memfd when sealed).  The request goes through the IPC client core
 * (proc_client.h): sent without blocking, matched to its reply by id,
 * answered only from the loop.
 *
 * Messages wait in line instead of failing.  When the signer is slower
 * than the sessions (a burst, a loaded machine, a stopped signer), up to
 * SIGNER_QUEUE_MAX requests wait in proc_client's queue for room in the
 * socket, each with a duplicate of its spool's descriptor (the
 * descriptors that bounds); the requests beyond wait in this client's
 * line, oldest first, holding nothing but a pointer to their session's
 * prefix and spool.  A request's spool is sealed when it leaves the line,
 * as soon as the queue has room (proc_client tells us from the loop).  A
 * session has at most one request at a time, within one of its worker's
 * [limits] transactions, so the line is bounded by that.
 *
 * At most SIGNER_INFLIGHT_MAX requests are in the socket or the signer at
 * once, counting cancelled and timed-out ones until the signer's answer
 * comes back (it answers every request): a sent memfd keeps its message
 * alive after the session let go of it, outside [limits] login-memory,
 * so a client that resets after its final dot while the signer is
 * stalled leaves at most that many such messages per worker (before: as
 * many as the socket took, a few hundred x message-size).  The
 * signer handles one message at a time per worker, so a few in flight keep
 * it fed.
 *
 * What can still give 451 4.3.0 (a status below, or DKIM_RES_INTERNAL):
 *  - SIGNER_TIMEOUT: no answer within the deadline, counted from
 *    signer_sign() whether the request waited in line, in the queue or in
 *    the signer ([limits] relay-timeout: the relay waits idle meanwhile
 *    and drops the connection after that long anyway);
 *  - SIGNER_DEAD: the signer went away (the service stops);
 *  - SIGNER_BUSY: the kernel refused the send for want of memory or of
 *    room for descriptors in flight (ENOBUFS, ETOOMANYREFS), which waiting
 *    would not soon cure; never for want of room in a queue;
 *  - DKIM_RES_INTERNAL: the spool could not be sealed or its descriptor
 *    duplicated (out of memory or descriptors), the prefix is over
 *    SIGNER_PREFIX_MAX, or the signer failed.
 */
#ifndef SUBPROXY_SIGNER_CLIENT_H
#define SUBPROXY_SIGNER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct spool;
struct signer_client;
struct signer_req;

/* Requests (each with a descriptor of its spool) waiting for room in
 * front's socket; those beyond wait in line without one.  The socket itself holds a few hundred
 * requests before it is full, so this only needs to keep the signer fed
 * while the loop comes round; its memfds count in front's descriptor
 * budget (subproxy.c, NOFILE_BASE). */
#define SIGNER_QUEUE_MAX 32
#define SIGNER_INFLIGHT_MAX 8   /* sent, answer not yet read (see above) */

/* Statuses given to a signer_cb besides enum dkim_result values (all
 * answered 451 4.3.0 by front). */
#define SIGNER_DEAD (-1)    /* the signer is gone: service stops */
#define SIGNER_BUSY (-2)    /* the kernel refused the send (see above): not sent */
#define SIGNER_TIMEOUT (-3) /* no answer within the deadline: a later one is dropped */

/* "signer-dead", "signer-busy", "signer-timeout", else dkim_result_name(). */
const char *signer_status_name(int status);

/* headers: the DKIM-Signature field(s), CRLF-terminated, on DKIM_RES_OK;
 * NULL otherwise.  Owned by the caller of the callback only for its
 * duration. */
typedef void signer_cb(void *arg, int status, const char *headers);
typedef void signer_dead_cb(void *arg);

/* front's end (takes ownership of fd).  A request not answered within
 * timeout_ms of signer_sign() (0: no deadline; front passes [limits]
 * relay-timeout, the time the relay waits idle for the signed message)
 * gets SIGNER_TIMEOUT, logged as event=signer-timeout; a late answer is
 * dropped.  dead_cb is called once when the signer goes away
 * (EOF, protocol error, malformed reply); every pending request then fails
 * with SIGNER_DEAD. */
struct signer_client *signer_client_new(struct event_base *base, int fd, unsigned int timeout_ms,
    signer_dead_cb *dead_cb, void *arg);
void signer_client_free(struct signer_client **scp);

/* Sign prefix + spool content (the message as it will be relayed, without
 * the DKIM-Signature fields).  prefix and sp must stay as they are until
 * the callback or signer_cancel() (they are read when the request leaves
 * the line); sp is sealed then (spool_seal: no more appends), and the
 * prefix must be complete header fields of at most SIGNER_PREFIX_MAX
 * octets.  The callback is called exactly once, never before this
 * returns, unless the request is cancelled first.  Returns a cookie for
 * signer_cancel(). */
struct signer_req *signer_sign(struct signer_client *sc, const char *prefix, size_t prefix_len,
    struct spool *sp, signer_cb *cb, void *arg);

/* Cancel: the callback will not be called; a request in line or in the
 * queue is never sent, one already sent still reaches the signer (its
 * answer is dropped by id); *rp = NULL; NULL is a no-op. */
void signer_cancel(struct signer_req **rp);

/* Requests whose callback is still due, those in line included (for logs
 * and tests; the gauge subproxy_signer_messages). */
size_t signer_pending(const struct signer_client *sc);

/* Requests waiting in line, without a descriptor (for tests; the gauge
 * subproxy_signer_waiting_messages). */
size_t signer_waiting(const struct signer_client *sc);

/* Answers dropped: cancelled, timed out or stale (for logs and tests). */
uint64_t signer_dropped(const struct signer_client *sc);

#endif
