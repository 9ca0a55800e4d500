/*
 * limiter.h — front's rate limits: the bucket tables of ratelimit.h in
 * shared memory, and the rules of [limits] and [login "NAME"] applied to a
 * login and a client address.
 *
 * Two tables, so that no client can reset the limits of a login by making
 * up keys: the AUTH table holds the auth-per-minute buckets, whose keys a
 * client chooses before it authenticated (every login name it tries, every
 * address it can claim: an IPv6 prefix, a PROXY header); the other holds
 * messages-per-hour and recipients-per-hour, whose buckets only
 * authenticated sessions make.  However many AUTH keys a flood brings, it
 * can evict only AUTH buckets (a minute after their last use they are free
 * anyway, ratelimit.h), never a message bucket a login has used up.
 *
 * The tables are mapped MAP_SHARED|MAP_ANONYMOUS with random hash keys by
 * limiter_table_init() in the parent, so that the front workers forked
 * after it share them.  Time is
 * clock_seconds() (clock.h).  Per-address buckets are keyed by the client's
 * per-address key, the one the connection limits and the keeper's lockout
 * count by: conn_addr_key() with [limits] ipv6-prefix.
 */
#ifndef SUBPROXY_LIMITER_H
#define SUBPROXY_LIMITER_H

#include <stddef.h>

#include "ratelimit.h"

struct config;
struct limiter;

/* The parent, before it forks any front worker: map and lay out the
 * bucket tables once, so that every worker of every generation shares them
 * (a reload keeps the buckets; the rules come from each generation's
 * configuration).  Returns 0, or -1 with a sentence in err. */
int limiter_table_init(char *err, size_t errlen);

/* A limiter applying cfg's rules to the shared tables (limiter_table_init()
 * in this process or a parent), or without them to tables of its own
 * (tests).  Returns NULL with a sentence in err. */
struct limiter *limiter_new(const struct config *cfg, char *err, size_t errlen);

/* Unmap; *lp = NULL.  NULL is a no-op. */
void limiter_free(struct limiter **lp);

/*
 * Take one token of `lim` for the client's address (the [limits] rule),
 * counted under `client_key` (conn_addr_key() of the address `client`,
 * which is only logged), and for `login` (its own rule; NULL: no login
 * yet): both or neither (ratelimit_take_both(), address first), so that
 * front workers racing at a limit never pass more than it allows.  Returns
 * 1, or 0 with a sentence naming the limit in why ("messages-per-hour 100
 * for this login"); then nothing was taken from either bucket.  Refusals are
 * logged with `sid`.
 */
int limiter_take(struct limiter *l, enum ratelimit_limit lim, const char *login,
    const char *client, const char *client_key, const char *sid, char *why, size_t whylen);

/*
 * Give back the token of `lim` that limiter_take() took for the same
 * `login` and `client_key`, to both buckets (ratelimit_give_back(): never
 * beyond full; as if it had not been taken).  For a request that turned
 * out not to count: a RCPT whose relay leg failed before the relay answered.
 */
void limiter_give_back(struct limiter *l, enum ratelimit_limit lim, const char *login,
    const char *client_key);

#endif
