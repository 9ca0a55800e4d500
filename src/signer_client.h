/*
 * signer_client.h — front's client for the signer (signer.h).  Runs in
 * front.
 *
 * It never waits: the message goes to the signer as a sealed memfd, the
 * request through the IPC client core (proc_client.h): sent without
 * blocking (up to SIGNER_QUEUE_MAX wait for room in the socket, beyond that
 * SIGNER_BUSY), matched to its reply by id, answered only from the loop.
 */
#ifndef SUBPROXY_SIGNER_CLIENT_H
#define SUBPROXY_SIGNER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct spool;
struct signer_client;
struct signer_req;

#define SIGNER_QUEUE_MAX 256  /* requests waiting for room in front's socket */

/* Statuses given to a signer_cb besides enum dkim_result values (all
 * answered 451 4.3.0 by front). */
#define SIGNER_DEAD (-1)    /* the signer is gone: service stops */
#define SIGNER_BUSY (-2)    /* no room to send the request: not sent */
#define SIGNER_TIMEOUT (-3) /* no answer within the deadline: a later one is dropped */

/* "signer-dead", "signer-busy", "signer-timeout", else dkim_result_name(). */
const char *signer_status_name(int status);

/* headers: the DKIM-Signature field(s), CRLF-terminated, on DKIM_RES_OK;
 * NULL otherwise.  Owned by the caller of the callback only for its
 * duration. */
typedef void signer_cb(void *arg, int status, const char *headers);
typedef void signer_dead_cb(void *arg);

/* front's end (takes ownership of fd).  A request not answered within
 * timeout_ms (0: no deadline; front passes [limits] relay-timeout, the time
 * the relay waits idle for the signed message) gets SIGNER_TIMEOUT and its
 * late answer is dropped.  dead_cb is called once when the signer goes away
 * (EOF, protocol error, malformed reply); every pending request then fails
 * with SIGNER_DEAD. */
struct signer_client *signer_client_new(struct event_base *base, int fd, unsigned int timeout_ms,
    signer_dead_cb *dead_cb, void *arg);
void signer_client_free(struct signer_client **scp);

/* Sign prefix + spool content (the message as it will be relayed, without
 * the DKIM-Signature fields).  The callback is never called before this
 * returns.  Returns a cookie for signer_cancel(). */
struct signer_req *signer_sign(struct signer_client *sc, const char *prefix, size_t prefix_len,
    const struct spool *sp, signer_cb *cb, void *arg);

/* Cancel: the callback will not be called; *rp = NULL; NULL is a no-op. */
void signer_cancel(struct signer_req **rp);

/* Requests whose callback is still due (for logs and tests). */
size_t signer_pending(const struct signer_client *sc);

/* Answers dropped: cancelled, timed out or stale (for logs and tests). */
uint64_t signer_dropped(const struct signer_client *sc);

#endif
