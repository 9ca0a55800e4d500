/*
 * lockout.h — authentication failure counters: per login and per client
 * address, failures within a window.  Pure: no I/O, no clock, no locks;
 * every call takes `now` (seconds of a monotonic clock) from its caller, so
 * tests move time by hand.  Used by the keeper (under its mutex).
 *
 * Once a login has `login_max` failures, or an address `peer_max`, within
 * `window` seconds of the first one, it is locked until the window ends.
 * The login counter is per login string whether the login exists or not
 * (an unknown login locks the same way, so locking reveals nothing); a
 * success clears its own login's counter (unless it is locked), never the
 * address counter.  The empty address ("" = unknown) is never counted.
 *
 * The table is bounded (LOCKOUT_SLOTS slots, probed from a keyed SipHash of
 * the key, so a client cannot aim at a slot); when the slots a new key may
 * use are full, an expired, then the lowest, then the oldest counter is
 * forgotten.
 */
#ifndef SUBPROXY_LOCKOUT_H
#define SUBPROXY_LOCKOUT_H

#include <stddef.h>
#include <stdint.h>

#define LOCKOUT_SLOTS           4096    /* counters, logins and addresses together */
#define LOCKOUT_PROBES          8       /* slots tried per key */
#define LOCKOUT_HASH_KEY        16      /* octets of the SipHash key */
#define LOCKOUT_KEY_MAX         255     /* octets of a login or address; longer ones are cut */

struct lockout_limits {
	unsigned int login_max;         /* failures that lock a login, >= 1 */
	unsigned int peer_max;          /* failures that lock an address, >= 1 */
	unsigned int window;            /* seconds, >= 1 */
};

/* What lockout_record() did: the counters that reached their limit with
 * this failure (for a log line). */
#define LOCKOUT_LOCKED_LOGIN    1
#define LOCKOUT_LOCKED_PEER     2

struct lockout;

/* A new, empty table with a copy of `lim` and of the hashing key (make it
 * random: randombytes_buf).  Never NULL. */
struct lockout *lockout_new(const struct lockout_limits *lim,
    const unsigned char key[LOCKOUT_HASH_KEY]);

/* *lop = NULL; NULL is a no-op. */
void lockout_free(struct lockout **lop);

/* 1 if login or peer (NUL-terminated; peer "" = unknown) is locked at
 * `now`, else 0. */
int lockout_locked(struct lockout *lo, const char *login, const char *peer, uint64_t now);

/* Record the outcome of a password check made at `now`: ok clears the
 * login's counter (if not locked), a failure counts for the login and the
 * address.  Returns LOCKOUT_LOCKED_* bits, or 0. */
unsigned int lockout_record(struct lockout *lo, const char *login, const char *peer, int ok,
    uint64_t now);

/* The limits in use. */
const struct lockout_limits *lockout_limits(const struct lockout *lo);

#endif
