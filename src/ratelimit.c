/* ratelimit.c — lock-free token buckets in a caller-provided table (pure). */
#include "ratelimit.h"

#include <stdatomic.h>
#include <string.h>

#include <sodium.h>

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free (shared memory)");
_Static_assert((uint64_t)RATELIMIT_CAPACITY_MAX * RATELIMIT_UNIT < UINT32_MAX,
    "a full deficit must fit 32 bits");

#define RATELIMIT_MAGIC  0x72746c31u    /* "rtl1" */
#define CAS_TRIES        64

struct ratelimit_slot {
	_Atomic uint64_t key;           /* 0: empty */
	_Atomic uint64_t state;         /* time << 32 | deficit; 0: full bucket */
};

struct ratelimit_table {
	uint32_t magic;
	uint32_t nslots;
	unsigned char hashkey[RATELIMIT_HASHKEY_LEN];
	_Atomic uint64_t evictions;
	_Atomic uint32_t period;        /* the longest period a take used (slot_idle) */
	struct ratelimit_slot slots[];
};

_Static_assert(RATELIMIT_HASHKEY_LEN == crypto_shorthash_KEYBYTES, "SipHash key size");

size_t
ratelimit_table_bytes(uint32_t nslots)
{
	return sizeof(struct ratelimit_table) + (size_t)nslots * sizeof(struct ratelimit_slot);
}

struct ratelimit_table *
ratelimit_table_init(void *mem, size_t len, uint32_t nslots, const unsigned char *hashkey)
{
	struct ratelimit_table *t = mem;
	uint32_t i;

	if (nslots < RATELIMIT_PROBE || len < ratelimit_table_bytes(nslots))
		return NULL;
	t->magic = RATELIMIT_MAGIC;
	t->nslots = nslots;
	memcpy(t->hashkey, hashkey, RATELIMIT_HASHKEY_LEN);
	atomic_init(&t->evictions, 0);
	atomic_init(&t->period, 0);
	for (i = 0; i < nslots; i++) {
		atomic_init(&t->slots[i].key, 0);
		atomic_init(&t->slots[i].state, 0);
	}
	return t;
}

uint64_t
ratelimit_key(const struct ratelimit_table *t, enum ratelimit_limit limit,
    enum ratelimit_subject subject, const char *name)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t k = 0;
	size_t i;

	/* the whole name under the secret key, then the kinds mixed in: two
	 * (limit, subject, name) triples collide only as SipHash outputs do */
	crypto_shorthash(out, (const unsigned char *)name, strlen(name), t->hashkey);
	for (i = 0; i < sizeof(out); i++)
		k = k << 8 | out[i];
	k ^= ((uint64_t)limit + 1) * 0x9e3779b97f4a7c15ULL ^
	    ((uint64_t)subject + 1) * 0xc2b2ae3d27d4eb4fULL;
	return k ? k : 1;
}

/* ---- one bucket word ---- */

static uint32_t
st_time(uint64_t st)
{
	return (uint32_t)(st >> 32);
}

static uint32_t
st_deficit(uint64_t st)
{
	return (uint32_t)st;
}

/* The deficit after refilling from the word's time until now. */
static uint32_t
refilled(uint64_t st, uint32_t capacity, uint32_t period, uint32_t now)
{
	uint32_t d = st_deficit(st), t = st_time(st);
	uint64_t elapsed, back;

	if (d == 0 || now <= t)
		return d;
	elapsed = now - t;
	if (elapsed >= period)
		return 0;
	back = elapsed * (uint64_t)capacity * RATELIMIT_UNIT / period;
	return back >= d ? 0 : d - (uint32_t)back;
}

static uint64_t
st_make(uint32_t now, uint32_t deficit)
{
	return deficit == 0 ? 0 : (uint64_t)now << 32 | deficit;
}

/* ---- slots ---- */

/* Is the slot's bucket full again (so that it may be given away)?  The
 * slot's own rule is not known here, only that no take in this table used a
 * longer period than t->period (raised before the take that wrote the
 * state, note_period()): the bucket is surely full once its deficit is 0,
 * or once that much time has passed since its last update. */
static int
slot_idle(struct ratelimit_table *t, const struct ratelimit_slot *s, uint32_t now)
{
	uint64_t st = atomic_load(&s->state);
	uint32_t period = atomic_load(&t->period);

	return st_deficit(st) == 0 || (now > st_time(st) && now - st_time(st) >= period);
}

/* Raise t->period to `period` (lock-free; it only grows). */
static void
note_period(struct ratelimit_table *t, uint32_t period)
{
	uint32_t cur = atomic_load(&t->period);

	while (cur < period && !atomic_compare_exchange_weak(&t->period, &cur, period))
		;
}

/* Give slot s, holding `old` (0: never used), to `key`.  The bucket is
 * emptied of the old key's deficit first and the key published last:
 * once a process can see `key` in the slot, only takers write the state
 * (resetting it after publishing would give back what a taker of the new
 * key had just taken).  An old-key taker between the two steps leaves its
 * deficit to the new key: stricter, never more.  Returns s when the slot is
 * `key`'s (ours, or claimed for the same key by another process meanwhile),
 * NULL when another key took it. */
static struct ratelimit_slot *
slot_claim(struct ratelimit_slot *s, uint64_t old, uint64_t key)
{
	uint64_t st;

	if (old != 0) {
		st = atomic_load(&s->state);
		if (!atomic_compare_exchange_strong(&s->state, &st, 0))
			return NULL;
	}
	if (atomic_compare_exchange_strong(&s->key, &old, key) || old == key)
		return s;
	return NULL;
}

/* The slot of `key`, claiming one (see the header for the policy). */
static struct ratelimit_slot *
slot_get(struct ratelimit_table *t, uint64_t key, uint32_t now)
{
	struct ratelimit_slot *s, *oldest = NULL, *got;
	uint64_t k;
	uint32_t i, at = (uint32_t)(key % t->nslots), tries;

	for (tries = 0; tries < CAS_TRIES; tries++) {
		for (i = 0; i < RATELIMIT_PROBE; i++) {
			s = &t->slots[(at + i) % t->nslots];
			if (atomic_load(&s->key) == key)
				return s;
		}
		for (i = 0; i < RATELIMIT_PROBE; i++) {
			s = &t->slots[(at + i) % t->nslots];
			k = atomic_load(&s->key);
			if (k == key)
				return s;       /* claimed by another process meanwhile */
			if (k != 0 && !slot_idle(t, s, now)) {
				if (oldest == NULL || st_time(atomic_load(&s->state)) <
				    st_time(atomic_load(&oldest->state)))
					oldest = s;
				continue;
			}
			if ((got = slot_claim(s, k, key)) != NULL)
				return got;
			if (atomic_load(&s->key) == key)
				return s;
		}
		if (oldest != NULL) {
			k = atomic_load(&oldest->key);
			if (k != key && (got = slot_claim(oldest, k, key)) != NULL) {
				atomic_fetch_add(&t->evictions, 1);
				return got;
			}
			if (k == key)
				return oldest;
			oldest = NULL;
		}
	}
	return NULL;
}

static const struct ratelimit_slot *
slot_find(const struct ratelimit_table *t, uint64_t key)
{
	uint32_t i, at = (uint32_t)(key % t->nslots);

	for (i = 0; i < RATELIMIT_PROBE; i++)
		if (atomic_load(&t->slots[(at + i) % t->nslots].key) == key)
			return &t->slots[(at + i) % t->nslots];
	return NULL;
}

/* The rule as the table applies it: capacity and period cut to their
 * bounds.  0 when capacity is 0 (no limit). */
static int
rule_fix(uint32_t *capacity, uint32_t *period)
{
	if (*capacity == 0)
		return 0;
	if (*capacity > RATELIMIT_CAPACITY_MAX)
		*capacity = RATELIMIT_CAPACITY_MAX;
	if (*period == 0)
		*period = 1;
	if (*period > RATELIMIT_PERIOD_MAX)
		*period = RATELIMIT_PERIOD_MAX;
	return 1;
}

enum took {
	TOOK_NONE,      /* over the limit: nothing taken */
	TOOK,           /* the tokens were taken */
	TOOK_FREE       /* allowed without taking (no limit, or endless contention) */
};

static enum took
take(struct ratelimit_table *t, uint64_t key, uint32_t capacity, uint32_t period, uint32_t n,
    uint64_t now64, uint32_t *retry_r)
{
	struct ratelimit_slot *s;
	uint32_t now = (uint32_t)now64, d, cap_u, need;
	uint64_t st, nst;
	int tries;

	if (!rule_fix(&capacity, &period))
		return TOOK_FREE;
	cap_u = capacity * RATELIMIT_UNIT;
	need = (n > capacity ? capacity + 1 : n) * RATELIMIT_UNIT;
	/* before any state of this period exists: slot_idle() must know it */
	note_period(t, period);
	if ((s = slot_get(t, key, now)) == NULL)
		return TOOK_FREE;       /* endless contention: fail open rather than spin */
	for (tries = 0; tries < CAS_TRIES; tries++) {
		st = atomic_load(&s->state);
		d = refilled(st, capacity, period, now);
		if ((uint64_t)d + need > cap_u) {
			if (retry_r != NULL) {
				uint64_t over = (uint64_t)d + need - cap_u;
				*retry_r = (uint32_t)((over * period + cap_u - 1) / cap_u);
			}
			return TOOK_NONE;
		}
		/* never move the word's time backwards */
		nst = st_make(now > st_time(st) ? now : st_time(st), d + need);
		if (atomic_compare_exchange_weak(&s->state, &st, nst))
			return TOOK;
	}
	return TOOK_FREE;
}

int
ratelimit_take(struct ratelimit_table *t, uint64_t key, uint32_t capacity, uint32_t period,
    uint32_t n, uint64_t now, uint32_t *retry_r)
{
	return take(t, key, capacity, period, n, now, retry_r) != TOOK_NONE;
}

void
ratelimit_give_back(struct ratelimit_table *t, uint64_t key, uint32_t capacity, uint32_t period,
    uint32_t n, uint64_t now64)
{
	/* a slot of t, which is ours to write */
	struct ratelimit_slot *s = (struct ratelimit_slot *)(uintptr_t)slot_find(t, key);
	uint32_t now = (uint32_t)now64, d, back;
	uint64_t st;
	int tries;

	if (!rule_fix(&capacity, &period))
		return;
	back = (n > capacity ? capacity + 1 : n) * RATELIMIT_UNIT;
	/* the deficit refilled until now, less what comes back, never below 0
	 * (a full bucket): the same as if the take had not been, for the
	 * refill lowers the deficit only down to 0 either way */
	for (tries = 0; s != NULL && tries < CAS_TRIES; tries++) {
		st = atomic_load(&s->state);
		d = refilled(st, capacity, period, now);
		d = d > back ? d - back : 0;
		if (atomic_compare_exchange_weak(&s->state, &st,
		    st_make(now > st_time(st) ? now : st_time(st), d)))
			return;
	}
}

int
ratelimit_take_both(struct ratelimit_table *t, const struct ratelimit_rule rule[2], uint32_t n,
    uint64_t now, int *refused_r)
{
	enum took first;

	if ((first = take(t, rule[0].key, rule[0].capacity, rule[0].period, n, now, NULL)) ==
	    TOOK_NONE) {
		*refused_r = 0;
		return 0;
	}
	if (take(t, rule[1].key, rule[1].capacity, rule[1].period, n, now, NULL) != TOOK_NONE)
		return 1;
	if (first == TOOK)
		ratelimit_give_back(t, rule[0].key, rule[0].capacity, rule[0].period, n, now);
	*refused_r = 1;
	return 0;
}

void
ratelimit_give_back_both(struct ratelimit_table *t, const struct ratelimit_rule rule[2],
    uint32_t n, uint64_t now)
{
	ratelimit_give_back(t, rule[0].key, rule[0].capacity, rule[0].period, n, now);
	ratelimit_give_back(t, rule[1].key, rule[1].capacity, rule[1].period, n, now);
}

uint32_t
ratelimit_available(const struct ratelimit_table *t, uint64_t key, uint32_t capacity,
    uint32_t period, uint64_t now)
{
	const struct ratelimit_slot *s = slot_find(t, key);
	uint32_t d, cap_u;

	if (capacity > RATELIMIT_CAPACITY_MAX)
		capacity = RATELIMIT_CAPACITY_MAX;
	cap_u = capacity * RATELIMIT_UNIT;
	if (s == NULL)
		return capacity;
	d = refilled(atomic_load(&s->state), capacity, period ? period : 1, (uint32_t)now);
	return d >= cap_u ? 0 : (cap_u - d) / RATELIMIT_UNIT;
}

uint64_t
ratelimit_evictions(const struct ratelimit_table *t)
{
	return atomic_load(&((struct ratelimit_table *)t)->evictions);
}

const char *
ratelimit_limit_name(enum ratelimit_limit l)
{
	switch (l) {
	case RATELIMIT_MESSAGES: return "messages-per-hour";
	case RATELIMIT_RECIPIENTS: return "recipients-per-hour";
	case RATELIMIT_AUTH: return "auth-per-minute";
	}
	return "?";
}
