/*
 * ratelimit.h — token buckets for rate limits (per login, per client
 * address), kept in a fixed-size table in memory the caller provides.
 *
 * Pure: no I/O, no clock, no allocation.  The caller passes `now` (seconds
 * of a monotonic clock) to every call, so tests drive time.
 *
 * Shared use.  The table holds only plain integers, no pointers, and every
 * update is a compare-and-swap on a 64-bit word (no locks), so the same
 * table may live in MAP_SHARED|MAP_ANONYMOUS memory that several processes
 * (front workers) use at once: the parent maps ratelimit_table_bytes(),
 * calls ratelimit_table_init() once before forking, and every worker calls
 * ratelimit_take() on it.  Nothing is ever held across a system call.
 *
 * Buckets.  A rule is "capacity tokens per period seconds": a bucket starts
 * full (capacity tokens, so the first `capacity` takes pass) and refills
 * continuously at capacity/period tokens per second up to capacity.  The
 * state of one bucket is one 64-bit word: the time of its last update
 * (32 bits, seconds) and its deficit (32 bits, tokens used and not yet
 * refilled, in 1/RATELIMIT_UNIT of a token).  A zero word is a full bucket.
 *
 * Keys.  A bucket is named by a 64-bit key, a keyed hash (SipHash, the key
 * set at init from the caller's random bytes) of the limit kind, the subject
 * kind and the name, so that clients cannot aim collisions at a victim.
 *
 * Size and eviction.  The table has a fixed number of slots; a key lives in
 * one of RATELIMIT_PROBE slots after its hash.  A slot is reused when it is
 * empty or when its bucket has refilled completely (it then holds no
 * information): its deficit is 0, or the longest period any take on this
 * table used has passed since its last update (so a table that holds only
 * per-minute buckets frees a slot a minute after its last use, not an
 * hour).  When all RATELIMIT_PROBE slots hold partly used buckets, the one
 * updated least recently is replaced: that key starts again with a full
 * bucket (the table fails open for it, never closed for a newcomer), and
 * the eviction is counted (ratelimit_evictions()).  With the default size
 * (RATELIMIT_SLOTS_DEFAULT, 1 MiB) an instance tracks tens of thousands of
 * active clients before that happens.  Eviction is why keys a client can
 * make up before it authenticated (every login name it tries, every
 * address it can claim) must not share a table with the buckets of
 * authenticated limits: the caller keeps them in a table of their own
 * (limiter.h), where a flood of them can only evict their like.
 *
 * Races.  Two processes taking from the same bucket never lose a token (the
 * CAS retries).  Only while a slot is being handed from one key to another
 * can one take of the old key be lost or the new key inherit the old key's
 * deficit (or get a give-back of the old key's); each is bounded to that one
 * operation.  ratelimit_take_both()
 * takes from two buckets all or nothing: a token it takes from the first
 * and must give back (the second refused) is briefly missing from the
 * first, so a concurrent taker of the first may be refused (stricter, never
 * more).
 */
#ifndef SUBPROXY_RATELIMIT_H
#define SUBPROXY_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_UNIT           1024u      /* fractions of a token */
#define RATELIMIT_CAPACITY_MAX   1000000u   /* tokens per bucket */
#define RATELIMIT_PERIOD_MAX     3600u      /* seconds; longer periods are cut to it */
#define RATELIMIT_PROBE          8          /* slots a key may live in */
#define RATELIMIT_SLOTS_DEFAULT  65536u
#define RATELIMIT_HASHKEY_LEN    16

enum ratelimit_limit {
	RATELIMIT_MESSAGES,             /* MAIL commands per hour */
	RATELIMIT_RECIPIENTS,           /* RCPTs the relay answered per hour */
	RATELIMIT_AUTH                  /* AUTH attempts per minute */
};

enum ratelimit_subject {
	RATELIMIT_LOGIN,
	RATELIMIT_ADDRESS
};

struct ratelimit_table;

/* Bytes of memory for a table of nslots slots (nslots >= RATELIMIT_PROBE). */
size_t ratelimit_table_bytes(uint32_t nslots);

/* Lay out a table in mem (len >= ratelimit_table_bytes(nslots), suitably
 * aligned, e.g. from mmap), all buckets full.  hashkey: RATELIMIT_HASHKEY_LEN
 * random bytes.  Returns the table (== mem), or NULL when len is too small
 * or nslots < RATELIMIT_PROBE.  Call once, before other processes use it. */
struct ratelimit_table *ratelimit_table_init(void *mem, size_t len, uint32_t nslots,
    const unsigned char *hashkey);

/* The bucket key of (limit, subject, name); never 0. */
uint64_t ratelimit_key(const struct ratelimit_table *t, enum ratelimit_limit limit,
    enum ratelimit_subject subject, const char *name);

/*
 * Take `n` tokens (1 <= n) from the bucket `key` under the rule "capacity
 * per period seconds" (1 <= capacity <= RATELIMIT_CAPACITY_MAX,
 * 1 <= period <= RATELIMIT_PERIOD_MAX; larger values are cut to those).
 * capacity 0 means "no limit": always allowed, the table is not touched.
 * Returns 1 allowed (tokens taken), 0 over the limit (nothing taken; when
 * retry_r is not NULL, *retry_r is the number of seconds until n tokens are
 * back).  now: monotonic seconds; it must not go backwards by more than the
 * table tolerates (an older `now` counts as no time passed).
 */
int ratelimit_take(struct ratelimit_table *t, uint64_t key, uint32_t capacity, uint32_t period,
    uint32_t n, uint64_t now, uint32_t *retry_r);

/* One bucket and its rule, for ratelimit_take_both(). */
struct ratelimit_rule {
	uint64_t key;
	uint32_t capacity;              /* 0: no limit */
	uint32_t period;
};

/*
 * Take `n` tokens from both buckets, or from neither: the first is taken,
 * then the second; when the second refuses, what was taken from the first
 * is given back (never beyond full).  Both keys must live in this table.
 * Returns 1 (both taken), or 0 with *refused_r the index (0 or 1) of the
 * bucket that refused.  With several processes at a bucket's limit no more
 * than its capacity is ever granted (test_ratelimit.c, t_both_race).
 */
int ratelimit_take_both(struct ratelimit_table *t, const struct ratelimit_rule rule[2],
    uint32_t n, uint64_t now, int *refused_r);

/*
 * Give back `n` tokens that ratelimit_take() (or ratelimit_take_both()) took
 * from bucket `key` under the same rule, e.g. for a request that turned out
 * not to count.  The bucket never holds more than `capacity`: what comes
 * back is taken off the deficit as refilled until `now`, down to a full
 * bucket, so the bucket is as if the take had never been (to
 * 1/RATELIMIT_UNIT of a token, in the take's favour), however long the
 * tokens were held meanwhile.  One CAS on the bucket's word, like a take:
 * concurrent takes and give-backs never lose one another.  A key no longer
 * in the table gets nothing (its bucket was given away, so it starts full
 * anyway); a give-back racing with the hand-over of its slot to another
 * key may go to that key's bucket (see Races: bounded to that one
 * operation).  capacity 0 (no limit): nothing to do.  A take that passed
 * without taking (endless contention, where the table fails open) is
 * given back all the same: one token more, as lenient as that take.
 */
void ratelimit_give_back(struct ratelimit_table *t, uint64_t key, uint32_t capacity,
    uint32_t period, uint32_t n, uint64_t now);

/* ratelimit_give_back() to both buckets of a ratelimit_take_both() that
 * passed. */
void ratelimit_give_back_both(struct ratelimit_table *t, const struct ratelimit_rule rule[2],
    uint32_t n, uint64_t now);

/* Tokens available now in bucket `key` (for tests and logs). */
uint32_t ratelimit_available(const struct ratelimit_table *t, uint64_t key, uint32_t capacity,
    uint32_t period, uint64_t now);

/* How many partly used buckets were replaced because their slots were full. */
uint64_t ratelimit_evictions(const struct ratelimit_table *t);

const char *ratelimit_limit_name(enum ratelimit_limit l);

#endif
