/* connlimit.c — connection counts shared by the front workers. */
#include "connlimit.h"

#include "util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sodium.h>

#define PRIVATE_SLICE_ENTRIES 4096

/* One worker's entries: [0, hwm) may be in use; 0 is a free entry. */
struct slice {
	uint32_t hwm;                   /* only grows while its writer lives */
	uint32_t pending;               /* connlimit_set_pending() */
	uint32_t pad[14];               /* the entries start on their own cache line */
	uint64_t key[];
};

static unsigned char *table;            /* the mapping */
static size_t nslices, per_slice, slice_bytes;
static unsigned char hashkey[crypto_shorthash_KEYBYTES];

/* This process's writer state (not shared). */
static struct slice *mine;
static uint32_t *freelist;              /* indices below hwm that are free */
static size_t nfree;

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

static struct slice *
slice_at(size_t i)
{
	return (struct slice *)(table + i * slice_bytes);
}

/* A worker's pending count, as much as a slice could hold (a bad writer
 * cannot make the sum wrap). */
static unsigned
bounded(uint32_t n)
{
	return n > per_slice ? (unsigned)per_slice : n;
}

int
connlimit_init(size_t n, size_t entries)
{
	size_t bytes;
	void *p;

	if (n == 0 || entries == 0 || entries > UINT32_MAX ||
	    entries > (SIZE_MAX - sizeof(struct slice) - 63) / sizeof(uint64_t)) {
		errno = EINVAL;
		return -1;
	}
	bytes = (sizeof(struct slice) + entries * sizeof(uint64_t) + 63) & ~(size_t)63;
	if (n > SIZE_MAX / bytes) {
		errno = EINVAL;
		return -1;
	}
	/* pages are only touched (and so only cost memory) up to each slice's
	 * high-water mark */
	p = mmap(NULL, n * bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	table = p;
	nslices = n;
	per_slice = entries;
	slice_bytes = bytes;
	randombytes_buf(hashkey, sizeof(hashkey));
	mine = NULL;
	return 0;
}

void
connlimit_attach(size_t slice)
{
	free(freelist);
	freelist = NULL;
	nfree = 0;
	mine = slice < nslices ? slice_at(slice) : NULL;
	if (mine != NULL)
		freelist = xcalloc(per_slice, sizeof(*freelist));
}

static uint64_t
key_hash(const char *key)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, (const unsigned char *)key, strlen(key), hashkey);
	memcpy(&v, h, sizeof(v));
	return v != 0 ? v : 1;          /* 0 marks a free entry */
}

long
connlimit_add(const char *key, struct connlimit_count *c)
{
	uint64_t h;
	uint32_t idx;
	size_t i, j;

	if (table == NULL && connlimit_init(1, PRIVATE_SLICE_ENTRIES) == 0)
		connlimit_attach(0);
	c->total = c->same = 0;
	if (mine == NULL)
		return -1;
	h = key_hash(key);
	if (nfree > 0) {
		idx = freelist[--nfree];
	} else if (mine->hwm < per_slice) {
		idx = mine->hwm;
		STORE(&mine->hwm, idx + 1);
	} else {
		return -1;
	}
	STORE(&mine->key[idx], h);
	/* our entry is visible before we look at the others' (see the header) */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (i = 0; i < nslices; i++) {
		struct slice *s = slice_at(i);
		uint32_t hwm = LOAD(&s->hwm);

		if (hwm > per_slice)
			hwm = (uint32_t)per_slice;      /* a bad writer cannot send us off the end */
		c->total += bounded(LOAD(&s->pending));
		for (j = 0; j < hwm; j++) {
			uint64_t k = LOAD(&s->key[j]);

			if (k == 0)
				continue;
			c->total++;
			if (k == h)
				c->same++;
		}
	}
	return (long)idx;
}

void
connlimit_set_pending(unsigned n)
{
	if (table == NULL && connlimit_init(1, PRIVATE_SLICE_ENTRIES) == 0)
		connlimit_attach(0);
	if (mine != NULL)
		STORE(&mine->pending, n);
}

unsigned
connlimit_total(void)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < nslices; i++)
		n += connlimit_used(i) + bounded(LOAD(&slice_at(i)->pending));
	return n;
}

void
connlimit_del(long id)
{
	if (id < 0 || mine == NULL || (size_t)id >= per_slice || LOAD(&mine->key[id]) == 0)
		return;
	STORE(&mine->key[id], 0);
	freelist[nfree++] = (uint32_t)id;
}

void
connlimit_clear(size_t slice)
{
	struct slice *s;
	uint32_t hwm, j;

	if (slice >= nslices)
		return;
	s = slice_at(slice);
	hwm = LOAD(&s->hwm);
	if (hwm > per_slice)
		hwm = (uint32_t)per_slice;
	/* word by word: readers may be counting meanwhile */
	for (j = 0; j < hwm; j++)
		STORE(&s->key[j], 0);
	STORE(&s->pending, 0);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	STORE(&s->hwm, 0);
}

unsigned
connlimit_used(size_t slice)
{
	struct slice *s;
	uint32_t hwm, j;
	unsigned n = 0;

	if (slice >= nslices)
		return 0;
	s = slice_at(slice);
	hwm = LOAD(&s->hwm);
	if (hwm > per_slice)
		hwm = (uint32_t)per_slice;
	for (j = 0; j < hwm; j++)
		if (LOAD(&s->key[j]) != 0)
			n++;
	return n;
}
