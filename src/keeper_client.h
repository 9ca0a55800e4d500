/*
 * keeper_client.h — front's client for the keeper (keeper.h): password
 * checks and the TLS private key.  Runs in front.
 *
 *  - AUTH: asynchronous requests through the IPC client core
 *    (proc_client.h): never waits, answers only from the loop, dies once.
 *  - TLS: a gnutls_privkey_t whose operations are synchronous round trips
 *    on the TLS socket (GnuTLS calls the key during a handshake; an ECDSA
 *    signature takes microseconds, an RSA-2048 one ~2 ms, made on one of
 *    the keeper's key workers while its main thread goes on serving).
 */
#ifndef SUBPROXY_KEEPER_CLIENT_H
#define SUBPROXY_KEEPER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "keeper_msg.h"

struct event_base;
struct keeper_client;
struct keeper_req;
/* = gnutls_privkey_t; declared here so that includers need no GnuTLS. */
struct gnutls_privkey_st;

#define KEEPER_TLS_TIMEOUT_MS   5000    /* a key operation slower than this: keeper lost */

/* result: an enum keeper_auth_result value or KEEPER_DEAD; flags:
 * KEEPER_AUTH_F_* of the keeper's answer (KEEPER_AUTH_F_CACHED: an OK from
 * the auth cache), else 0. */
typedef void keeper_auth_cb(void *arg, int result, unsigned int flags);
typedef void keeper_dead_cb(void *arg);

/* front's end.  Takes ownership of both descriptors in *fds.  queue_max:
 * AUTH requests that may wait for room in the socket ([limits]
 * auth-queue).  dead_cb is called once, from the event loop, when the
 * keeper goes away (EOF, protocol error, a key operation timing out);
 * every pending AUTH request then fails with KEEPER_DEAD, later ones too,
 * and key operations fail. */
struct keeper_client *keeper_client_new(struct event_base *base, const struct keeper_fds *fds,
    size_t queue_max, keeper_dead_cb *dead_cb, void *arg);

/* Fail pending requests silently (no callbacks), close the sockets, free;
 * *kcp = NULL.  NULL is a no-op.  Keys from keeper_tls_privkey() may
 * outlive the client: their operations then fail. */
void keeper_client_free(struct keeper_client **kcp);

/*
 * Check login (NUL-terminated) and password (pwlen octets) for the client
 * at peer (NUL-terminated address text for the counters; NULL or "" =
 * none).  Nothing is copied beyond this call (the caller wipes its own
 * copy; the request buffer here is wiped).  The callback is never called
 * before this returns.  A field over its limit is answered
 * KEEPER_AUTH_BADREQ without asking the keeper; a request that finds no room
 * in the socket waits in the client's queue (proc_client.h), and when
 * queue_max wait already it is answered KEEPER_AUTH_BUSY, unsent.  There is
 * no deadline here: the caller's session timeouts bound the wait, and it
 * cancels when the session ends.  Returns a cookie for keeper_cancel().
 */
struct keeper_req *keeper_auth(struct keeper_client *kc, const char *login, const char *password,
    size_t pwlen, const char *peer, keeper_auth_cb *cb, void *arg);

/* Cancel: the callback will not be called; a check still queued here is
 * never sent; one already sent is followed by PROC_AUTH_CANCEL (best
 * effort: when the socket has room), and the keeper drops it if it still
 * waits for a worker -- one already running runs and still counts.
 * *rp = NULL; NULL is a no-op. */
void keeper_cancel(struct keeper_req **rp);

/* AUTH requests whose callback is still due (for logs and tests). */
size_t keeper_pending(const struct keeper_client *kc);

/* AUTH answers dropped: cancelled, or stale (for logs and tests). */
uint64_t keeper_dropped(const struct keeper_client *kc);

/*
 * A new GnuTLS private key (gnutls_privkey_import_ext4) whose operations
 * are done by the keeper: each signature is one synchronous round trip on
 * the TLS socket (at most KEEPER_TLS_TIMEOUT_MS; a timeout, EOF or a reply
 * of another type marks the keeper lost; a reply with another id -- stale,
 * from an earlier worker in this slot -- is dropped and the wait goes on).
 * It knows its algorithm and size from READY, so GnuTLS
 * can choose signature algorithms without asking the keeper.  Use it from
 * the thread that runs the client's event loop only.  The caller owns *out
 * (gnutls_privkey_deinit, or hand it to gnutls_certificate_set_key).
 * Returns 0, or -1 with a sentence in err.
 */
int keeper_tls_privkey(struct keeper_client *kc, struct gnutls_privkey_st **out, char *err,
    size_t errlen);

#endif
