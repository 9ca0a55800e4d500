/*
 * authq.h — password checks off the event loop.
 *
 * Argon2id costs tens of milliseconds and 64 MiB; it must never run on the
 * loop that serves every session.  authq runs checks on one worker thread and
 * completes them on the loop.  (The keeper process of the sandbox design
 * takes this role later; the async contract stays the same.)
 */
#ifndef SUBPROXY_AUTHQ_H
#define SUBPROXY_AUTHQ_H

#include <stddef.h>

struct authq;
struct authq_req;
struct passwd_db;
struct event_base;

/* ok: 1 credentials valid, 0 not. */
typedef void authq_cb(void *arg, int ok);

struct authq *authq_new(struct event_base *base, struct passwd_db *db);
void authq_free(struct authq **qp);

/* Queue a check.  login/password are copied (the password into guarded
 * memory, wiped after use); the caller should wipe its own copy.  Returns a
 * cookie for authq_cancel(); the callback runs later on the loop, never from
 * within this call. */
struct authq_req *authq_check(struct authq *q, const char *login, const char *password,
    size_t pwlen, authq_cb *cb, void *arg);

/* Cancel: the callback will not run.  *rp = NULL; NULL is a no-op. */
void authq_cancel(struct authq_req **rp);

#endif
