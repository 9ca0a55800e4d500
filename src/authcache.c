/* authcache.c — the keeper's auth cache (see authcache.h). */
#include "authcache.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

_Static_assert(AUTHCACHE_KEY >= crypto_generichash_KEYBYTES_MIN &&
    AUTHCACHE_KEY <= crypto_generichash_KEYBYTES_MAX, "BLAKE2b takes a 16..64-octet key");

#define LTAG            16              /* L: finds the entry */
#define TAG             32              /* P and H */
#define NONE            UINT32_MAX

enum { USE, AGE };                     /* the two orders an entry is in */
enum { PREV, NEXT };

struct entry {
	uint8_t l[LTAG], p[TAG], h[TAG];
	uint64_t expires;
	uint32_t hnext;                 /* bucket chain, or the free list */
	/* link[USE]: first = most recently used; link[AGE]: first = oldest,
	 * which is also the first to expire (one ttl for all) */
	uint32_t link[2][2];
};

/* An order of entries, by index. */
struct order {
	uint32_t first, last;
};

struct authcache {
	unsigned char *key;             /* sodium_malloc; no access between calls */
	uint64_t ttl;
	size_t size, n;
	struct entry *e;                /* size entries */
	uint32_t *bucket;               /* nbucket chain heads */
	size_t nbucket;                 /* a power of two >= size */
	uint32_t free;                  /* unused entries, through hnext */
	struct order order[2];          /* USE and AGE */
};

/* ---- the two orders ---- */

static void
unlink_from(struct authcache *ac, int o, uint32_t i)
{
	uint32_t *lk = ac->e[i].link[o];

	if (lk[PREV] != NONE)
		ac->e[lk[PREV]].link[o][NEXT] = lk[NEXT];
	else
		ac->order[o].first = lk[NEXT];
	if (lk[NEXT] != NONE)
		ac->e[lk[NEXT]].link[o][PREV] = lk[PREV];
	else
		ac->order[o].last = lk[PREV];
	lk[PREV] = lk[NEXT] = NONE;
}

/* Entry i at one end of order o: its first (most recently used, in USE)
 * or its last (youngest, in AGE). */
static void
push(struct authcache *ac, int o, uint32_t i, int at_last)
{
	uint32_t *lk = ac->e[i].link[o];
	uint32_t *end = at_last ? &ac->order[o].last : &ac->order[o].first;
	uint32_t *other = at_last ? &ac->order[o].first : &ac->order[o].last;
	int out = at_last ? NEXT : PREV, in = at_last ? PREV : NEXT;

	lk[out] = NONE;
	lk[in] = *end;
	if (*end != NONE)
		ac->e[*end].link[o][out] = i;
	else
		*other = i;
	*end = i;
}

/* ---- the keyed hashes ---- */

/* BLAKE2b of kind || a || b, keyed with K, outlen octets. */
static void
tag(const struct authcache *ac, char kind, const void *a, size_t alen, const void *b,
    size_t blen, uint8_t *out, size_t outlen)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, ac->key, AUTHCACHE_KEY, outlen);
	crypto_generichash_update(&st, (const unsigned char *)&kind, 1);
	crypto_generichash_update(&st, a, alen);
	if (blen > 0)
		crypto_generichash_update(&st, b, blen);
	crypto_generichash_final(&st, out, outlen);
	sodium_memzero(&st, sizeof(st));
}

static void
tag_login(const struct authcache *ac, const char *login, uint8_t l[LTAG])
{
	tag(ac, 'L', login, strlen(login), NULL, 0, l, LTAG);
}

static void
tag_password(const struct authcache *ac, const char *login, const void *pw, size_t pwlen,
    uint8_t p[TAG])
{
	/* login and its NUL: no (login, password) pair reads as another */
	tag(ac, 'P', login, strlen(login) + 1, pw, pwlen, p, TAG);
}

static void
tag_hash(const struct authcache *ac, const char *stored, uint8_t h[TAG])
{
	tag(ac, 'H', stored, strlen(stored), NULL, 0, h, TAG);
}

/* The key is readable only between these two. */
static void
key_open(const struct authcache *ac)
{
	sodium_mprotect_readonly(ac->key);
}

static void
key_close(const struct authcache *ac)
{
	sodium_mprotect_noaccess(ac->key);
}

/* ---- the table ---- */

static uint32_t *
chain_head(struct authcache *ac, const uint8_t l[LTAG])
{
	uint64_t h;

	/* L is a keyed hash: a client cannot aim at a bucket */
	memcpy(&h, l, sizeof(h));
	return &ac->bucket[h & (ac->nbucket - 1)];
}

static uint32_t
find(struct authcache *ac, const uint8_t l[LTAG])
{
	uint32_t i;

	for (i = *chain_head(ac, l); i != NONE; i = ac->e[i].hnext)
		if (sodium_memcmp(ac->e[i].l, l, LTAG) == 0)
			return i;
	return NONE;
}

/* Out of the table and both orders, wiped, to the free list. */
static void
drop(struct authcache *ac, uint32_t i)
{
	uint32_t *pp;

	for (pp = chain_head(ac, ac->e[i].l); *pp != i; pp = &ac->e[*pp].hnext)
		;
	*pp = ac->e[i].hnext;
	unlink_from(ac, USE, i);
	unlink_from(ac, AGE, i);
	sodium_memzero(&ac->e[i], sizeof(ac->e[i]));
	ac->e[i].hnext = ac->free;
	ac->free = i;
	ac->n--;
}

void
authcache_expire(struct authcache *ac, uint64_t now)
{
	while (ac->order[AGE].first != NONE && ac->e[ac->order[AGE].first].expires <= now)
		drop(ac, ac->order[AGE].first);
}

/* ---- the interface ---- */

struct authcache *
authcache_new(size_t size, uint64_t ttl, const unsigned char key[AUTHCACHE_KEY])
{
	struct authcache *ac;
	size_t i;

	if (size == 0 || size > AUTHCACHE_SIZE_MAX || ttl == 0 || ttl > UINT64_MAX / 2 ||
	    sodium_init() < 0)
		return NULL;
	ac = xcalloc(1, sizeof(*ac));
	if ((ac->key = sodium_malloc(AUTHCACHE_KEY)) == NULL) {
		free(ac);
		return NULL;
	}
	memcpy(ac->key, key, AUTHCACHE_KEY);
	key_close(ac);
	ac->ttl = ttl;
	ac->size = size;
	ac->e = xcalloc(size, sizeof(*ac->e));
	for (ac->nbucket = 1; ac->nbucket < size; ac->nbucket <<= 1)
		;
	ac->bucket = xcalloc(ac->nbucket, sizeof(*ac->bucket));
	for (i = 0; i < ac->nbucket; i++)
		ac->bucket[i] = NONE;
	for (i = 0; i < size; i++)
		ac->e[i].hnext = i + 1 < size ? (uint32_t)(i + 1) : NONE;
	ac->free = 0;
	ac->order[USE].first = ac->order[USE].last = NONE;
	ac->order[AGE].first = ac->order[AGE].last = NONE;
	return ac;
}

void
authcache_free(struct authcache **acp)
{
	struct authcache *ac;

	if (acp == NULL || (ac = *acp) == NULL)
		return;
	sodium_free(ac->key);           /* wipes */
	sodium_memzero(ac->e, ac->size * sizeof(*ac->e));
	free(ac->e);
	free(ac->bucket);
	free(ac);
	*acp = NULL;
}

size_t
authcache_count(const struct authcache *ac)
{
	return ac->n;
}

int
authcache_lookup(struct authcache *ac, const char *login, const char *stored,
    const void *password, size_t pwlen, uint64_t now)
{
	uint8_t l[LTAG], p[TAG], h[TAG];
	uint32_t i;
	int hit = 0;

	authcache_expire(ac, now);
	if (stored == NULL)
		return 0;
	key_open(ac);
	tag_login(ac, login, l);
	if ((i = find(ac, l)) != NONE) {
		tag_hash(ac, stored, h);
		tag_password(ac, login, password, pwlen, p);
		if (ac->e[i].expires <= now || sodium_memcmp(ac->e[i].h, h, TAG) != 0) {
			/* expired, or verified against a hash that is gone */
			drop(ac, i);
		} else if (sodium_memcmp(ac->e[i].p, p, TAG) == 0) {
			unlink_from(ac, USE, i);
			push(ac, USE, i, 0);
			hit = 1;
		}
	}
	key_close(ac);
	sodium_memzero(p, sizeof(p));
	sodium_memzero(h, sizeof(h));
	sodium_memzero(l, sizeof(l));
	return hit;
}

void
authcache_insert(struct authcache *ac, const char *login, const char *stored,
    const void *password, size_t pwlen, uint64_t now)
{
	struct entry *x;
	uint8_t l[LTAG];
	uint32_t i, *head;

	authcache_expire(ac, now);
	if (stored == NULL)
		return;
	key_open(ac);
	tag_login(ac, login, l);
	if ((i = find(ac, l)) != NONE)
		drop(ac, i);
	if (ac->free == NONE)
		drop(ac, ac->order[USE].last);  /* full: the least recently used goes */
	i = ac->free;
	x = &ac->e[i];
	ac->free = x->hnext;
	memcpy(x->l, l, LTAG);
	tag_password(ac, login, password, pwlen, x->p);
	tag_hash(ac, stored, x->h);
	key_close(ac);
	x->expires = now + ac->ttl;
	head = chain_head(ac, l);
	x->hnext = *head;
	*head = i;
	push(ac, USE, i, 0);
	push(ac, AGE, i, 1);
	ac->n++;
	sodium_memzero(l, sizeof(l));
}
