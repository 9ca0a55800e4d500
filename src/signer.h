/*
 * signer.h — the DKIM signer process and front's client for it.
 *
 * The signer alone holds the DKIM private keys.  It is forked before any
 * key is read, loads the keys itself (so no other process ever has them in
 * memory), reports READY or the reason it cannot start, then serves
 * PROC_SIGN_REQ messages: the whole message as a sealed memfd
 * (F_SEAL_WRITE|SHRINK|GROW), answered by PROC_SIGN_REP with a status
 * (enum dkim_result) and the DKIM-Signature field(s) to prepend.
 *
 * front's client (proc_client.h) never waits: requests are sent without
 * blocking (up to SIGNER_QUEUE_MAX wait for room in the socket, beyond that
 * SIGNER_BUSY), matched to replies by id, and answered from the loop.
 */
#ifndef SUBPROXY_SIGNER_H
#define SUBPROXY_SIGNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct config;
struct event_base;
struct spool;
struct signer_client;
struct signer_req;

/* Fork the signer.  Returns its pid and stores front's end of the socket in
 * *fd_r once the signer reported READY (within `timeout` seconds); on
 * failure returns -1 with the signer's own sentence in err (e.g. a key
 * file's mode) and the child is reaped.  The child closes every descriptor
 * but 0-2 and its socket, and dies with its parent (PR_SET_PDEATHSIG). */
pid_t signer_spawn(const struct config *cfg, int timeout, int *fd_r, char *err, size_t errlen);

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
