/* lockout.c — authentication failure counters (see lockout.h). */
#include "lockout.h"

#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

_Static_assert(LOCKOUT_HASH_KEY == crypto_shorthash_KEYBYTES, "SipHash-2-4 takes a 16-octet key");

enum kind { KIND_LOGIN = 'L', KIND_PEER = 'P' };

struct counter {
	uint8_t used;
	uint8_t kind;                   /* enum kind */
	uint32_t count;                 /* failures since `first` */
	uint64_t first;                 /* seconds */
	char key[LOCKOUT_KEY_MAX + 1];
};

struct lockout {
	struct lockout_limits lim;
	unsigned char hkey[LOCKOUT_HASH_KEY];
	struct counter slots[LOCKOUT_SLOTS];
};

struct lockout *
lockout_new(const struct lockout_limits *lim, const unsigned char key[LOCKOUT_HASH_KEY])
{
	struct lockout *lo = xcalloc(1, sizeof(*lo));

	lo->lim = *lim;
	memcpy(lo->hkey, key, LOCKOUT_HASH_KEY);
	return lo;
}

void
lockout_free(struct lockout **lop)
{
	if (lop == NULL || *lop == NULL)
		return;
	sodium_memzero(*lop, sizeof(**lop));
	free(*lop);
	*lop = NULL;
}

const struct lockout_limits *
lockout_limits(const struct lockout *lo)
{
	return &lo->lim;
}

static size_t
slot_hash(const struct lockout *lo, uint8_t kind, const char *key)
{
	unsigned char in[LOCKOUT_KEY_MAX + 2], out[crypto_shorthash_BYTES];
	size_t n = strnlen(key, LOCKOUT_KEY_MAX);
	uint64_t h;

	in[0] = kind;
	memcpy(in + 1, key, n);
	crypto_shorthash(out, in, n + 1, lo->hkey);
	memcpy(&h, out, sizeof(h));
	return (size_t)(h % LOCKOUT_SLOTS);
}

static int
key_equal(const struct counter *c, const char *key)
{
	return strncmp(c->key, key, LOCKOUT_KEY_MAX) == 0;
}

/* The counter of (kind, key); with `create`, a new one if there is none,
 * replacing an expired, then the lowest, then the oldest of its slots.  A
 * counter whose window has ended is found at zero. */
static struct counter *
counter_find(struct lockout *lo, uint8_t kind, const char *key, uint64_t now, int create)
{
	size_t h = slot_hash(lo, kind, key), i;
	struct counter *c, *victim = NULL;

	for (i = 0; i < LOCKOUT_PROBES; i++) {
		c = &lo->slots[(h + i) % LOCKOUT_SLOTS];
		if (c->used && c->kind == kind && key_equal(c, key)) {
			if (now - c->first >= lo->lim.window)
				c->count = 0;
			return c;
		}
	}
	if (!create)
		return NULL;
	for (i = 0; i < LOCKOUT_PROBES; i++) {
		c = &lo->slots[(h + i) % LOCKOUT_SLOTS];
		if (!c->used || now - c->first >= lo->lim.window) {
			victim = c;
			break;
		}
		if (victim == NULL || c->count < victim->count ||
		    (c->count == victim->count && c->first < victim->first))
			victim = c;
	}
	memset(victim, 0, sizeof(*victim));
	victim->used = 1;
	victim->kind = kind;
	victim->first = now;
	snprintf(victim->key, sizeof(victim->key), "%s", key);
	return victim;
}

static int
counter_locked(struct lockout *lo, uint8_t kind, const char *key, unsigned int max,
    uint64_t now)
{
	struct counter *c;

	if (kind == KIND_PEER && key[0] == '\0')
		return 0;
	c = counter_find(lo, kind, key, now, 0);
	return c != NULL && c->count >= max;
}

int
lockout_locked(struct lockout *lo, const char *login, const char *peer, uint64_t now)
{
	return counter_locked(lo, KIND_LOGIN, login, lo->lim.login_max, now) ||
	    counter_locked(lo, KIND_PEER, peer, lo->lim.peer_max, now);
}

/* One failure; 1 if it brought the counter to max. */
static int
counter_fail(struct lockout *lo, uint8_t kind, const char *key, unsigned int max, uint64_t now)
{
	struct counter *c;

	if (kind == KIND_PEER && key[0] == '\0')
		return 0;
	c = counter_find(lo, kind, key, now, 1);
	if (c->count == 0)
		c->first = now;
	if (c->count < UINT32_MAX)
		c->count++;
	return c->count == max;
}

unsigned int
lockout_record(struct lockout *lo, const char *login, const char *peer, int ok, uint64_t now)
{
	struct counter *c;
	unsigned int hit = 0;

	if (ok) {
		/* the right password clears its login's count, never an address's */
		if ((c = counter_find(lo, KIND_LOGIN, login, now, 0)) != NULL &&
		    c->count < lo->lim.login_max)
			c->used = 0;
		return 0;
	}
	if (counter_fail(lo, KIND_LOGIN, login, lo->lim.login_max, now))
		hit |= LOCKOUT_LOCKED_LOGIN;
	if (counter_fail(lo, KIND_PEER, peer, lo->lim.peer_max, now))
		hit |= LOCKOUT_LOCKED_PEER;
	return hit;
}
