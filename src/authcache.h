/*
 * authcache.h — the keeper's auth cache: password verifications that
 * succeeded, remembered as keyed hashes, so that the same login with the
 * same password is accepted again without an Argon2id run until the entry
 * expires.  It remembers the verification, not the lookup: a password that
 * was not verified never hits.  Pure: no I/O, no clock, no locks; every
 * call takes `now` (seconds of a monotonic clock) from its caller, so tests
 * move time by hand.  Used by the keeper under its mutex.
 *
 * One entry per login (a stored hash verifies one password).  With K, the
 * 32 random octets given to authcache_new() (BLAKE2b, crypto_generichash):
 *
 *   L = BLAKE2b-128(key K, "L" || login)               finds the entry
 *   P = BLAKE2b-256(key K, "P" || login || 0 || password)
 *   H = BLAKE2b-256(key K, "H" || stored hash)          the hash it was verified against
 *
 * K is kept in its own guarded allocation (sodium_malloc: guard pages,
 * mlock, not in core dumps) that is inaccessible (sodium_mprotect_noaccess)
 * except during a call; nothing else about a password is kept.  A lookup
 * hits only when P and H both match (sodium_memcmp, constant time) and the
 * entry has not expired: a wrong password misses (and leaves the entry), and
 * so does the right one for a login whose stored hash has changed since (a
 * new passwd file in the same process): that entry is dropped, so a
 * changed hash never hits.  An entry lives `ttl` seconds from the
 * verification that made it; hits do not extend it.  At most `size`
 * entries; when full, a new one replaces the least recently used (made or
 * hit).  Expired entries are wiped when any call sees them (oldest first),
 * so none outlives its ttl by more than the time to the next call.
 * The caller enters successes only (failures are never cached) and checks
 * its lockout before looking here.
 */
#ifndef SUBPROXY_AUTHCACHE_H
#define SUBPROXY_AUTHCACHE_H

#include <stddef.h>
#include <stdint.h>

#define AUTHCACHE_KEY           32      /* octets of K */
#define AUTHCACHE_SIZE_MAX      (1u << 24)      /* entries */

struct authcache;

/* A new, empty cache of at most `size` (1..AUTHCACHE_SIZE_MAX) entries
 * that live `ttl` (>= 1) seconds, with a copy of key (make it random:
 * randombytes_buf; the caller wipes its own).  NULL when size or ttl is out
 * of range or guarded memory cannot be had. */
struct authcache *authcache_new(size_t size, uint64_t ttl, const unsigned char key[AUTHCACHE_KEY]);

/* Wipe and free; *acp = NULL.  NULL is a no-op. */
void authcache_free(struct authcache **acp);

/*
 * 1 when login (NUL-terminated) and password (pwlen octets, any content)
 * were entered at most ttl seconds before `now` against the same stored
 * hash (NUL-terminated; NULL, for an unknown login, never hits); the entry
 * becomes the most recently used.  Else 0.
 */
int authcache_lookup(struct authcache *ac, const char *login, const char *stored,
    const void *password, size_t pwlen, uint64_t now);

/* Remember that password verified against stored for login at `now`
 * (replacing the login's entry, if any).  stored NULL: nothing. */
void authcache_insert(struct authcache *ac, const char *login, const char *stored,
    const void *password, size_t pwlen, uint64_t now);

/* Wipe the entries that expired by `now` (every other call does it too). */
void authcache_expire(struct authcache *ac, uint64_t now);

/* Entries held (expired ones not yet wiped included). */
size_t authcache_count(const struct authcache *ac);

#endif
