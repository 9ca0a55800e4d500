/* connlimit.c — counts shared by the front workers. */
#include "connlimit.h"

#include "util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sodium.h>

#define PRIVATE_SLICE_ENTRIES 4096
#define KIND_MASK 3ULL          /* the low bits of an entry's key word */

/* One entry: the key word (a keyed hash with the kind in its low bits; 0:
 * free) and a value.  The writer stores the value before the key, a reader
 * loads the key before the value, so a reader never pairs a new key with
 * an old value. */
struct entry {
	uint64_t key;
	uint64_t value;
};

/* One worker's entries: [0, hwm) may be in use. */
struct slice {
	uint32_t hwm;                   /* only grows while its writer lives */
	uint32_t pending;               /* connlimit_set_pending() */
	uint32_t pad[14];               /* the entries start on their own cache line */
	struct entry e[];
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
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

static struct slice *
slice_at(size_t i)
{
	return (struct slice *)(table + i * slice_bytes);
}

/* A slice's high-water mark, as much as a slice can hold (a bad writer
 * cannot send a reader off the end), and its pending count likewise (it
 * cannot make a sum wrap). */
static uint32_t
hwm_of(struct slice *s)
{
	uint32_t hwm = LOAD(&s->hwm);

	return hwm > per_slice ? (uint32_t)per_slice : hwm;
}

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
	    entries > (SIZE_MAX - sizeof(struct slice) - 63) / sizeof(struct entry)) {
		errno = EINVAL;
		return -1;
	}
	bytes = (sizeof(struct slice) + entries * sizeof(struct entry) + 63) & ~(size_t)63;
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

/* Without a table (unit tests, --check): a private one for this process. */
static void
ensure_table(void)
{
	if (table == NULL && connlimit_init(1, PRIVATE_SLICE_ENTRIES) == 0)
		connlimit_attach(0);
}

static uint64_t
key_word(enum connlimit_kind kind, const char *key)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, (const unsigned char *)key, strlen(key), hashkey);
	memcpy(&v, h, sizeof(v));
	v &= ~KIND_MASK;
	if (v == 0)
		v = KIND_MASK + 1;
	return v | (uint64_t)kind;      /* never 0: kind is 1..3 */
}

long
connlimit_put(enum connlimit_kind kind, const char *key, uint64_t value)
{
	uint32_t idx;

	ensure_table();
	if (mine == NULL)
		return -1;
	if (nfree > 0) {
		idx = freelist[--nfree];
	} else if (mine->hwm < per_slice) {
		idx = mine->hwm;
		STORE(&mine->hwm, idx + 1);
	} else {
		return -1;
	}
	STORE(&mine->e[idx].value, value);
	STORE_REL(&mine->e[idx].key, key_word(kind, key));
	/* our entry is visible before we look at the others' (see the header) */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return (long)idx;
}

void
connlimit_set(long id, uint64_t value)
{
	if (id < 0 || mine == NULL || (size_t)id >= per_slice)
		return;
	STORE(&mine->e[id].value, value);
}

/* Every worker's entries of `kind` (all keys when key is NULL): how many
 * there are and the sum of their values; *total the entries of the kind. */
static uint64_t
scan(enum connlimit_kind kind, const char *key, unsigned *n_r, unsigned *total_r)
{
	uint64_t want = key != NULL ? key_word(kind, key) : 0, sum = 0;
	unsigned n = 0, total = 0;
	size_t i;
	uint32_t j, hwm;

	for (i = 0; i < nslices; i++) {
		struct slice *s = slice_at(i);

		hwm = hwm_of(s);
		for (j = 0; j < hwm; j++) {
			uint64_t k = LOAD_ACQ(&s->e[j].key);

			if (k == 0 || (k & KIND_MASK) != (uint64_t)kind)
				continue;
			total++;
			if (key == NULL || k == want) {
				n++;
				sum += LOAD(&s->e[j].value);
			}
		}
	}
	if (n_r != NULL)
		*n_r = n;
	if (total_r != NULL)
		*total_r = total;
	return sum;
}

uint64_t
connlimit_sum(enum connlimit_kind kind, const char *key, unsigned *n_r)
{
	ensure_table();
	return scan(kind, key, n_r, NULL);
}

long
connlimit_add(const char *key, struct connlimit_count *c)
{
	long id;
	size_t i;

	c->total = c->same = 0;
	if ((id = connlimit_put(CL_CONN, key, 1)) < 0)
		return -1;
	(void)scan(CL_CONN, key, &c->same, &c->total);
	for (i = 0; i < nslices; i++)
		c->total += bounded(LOAD(&slice_at(i)->pending));
	return id;
}

void
connlimit_set_pending(unsigned n)
{
	ensure_table();
	if (mine != NULL)
		STORE(&mine->pending, n);
	/* a count that follows (connlimit_total()) sees every other worker's
	 * record made before it, as after connlimit_add() */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

unsigned
connlimit_total(void)
{
	unsigned n = 0;
	size_t i;

	ensure_table();
	for (i = 0; i < nslices; i++)
		n += connlimit_used(i) + bounded(LOAD(&slice_at(i)->pending));
	return n;
}

void
connlimit_del(long id)
{
	if (id < 0 || mine == NULL || (size_t)id >= per_slice || LOAD(&mine->e[id].key) == 0)
		return;
	STORE_REL(&mine->e[id].key, 0);
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
	hwm = hwm_of(s);
	/* word by word: readers may be counting meanwhile */
	for (j = 0; j < hwm; j++)
		STORE(&s->e[j].key, 0);
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
	hwm = hwm_of(s);
	for (j = 0; j < hwm; j++)
		if ((LOAD(&s->e[j].key) & KIND_MASK) == CL_CONN)
			n++;
	return n;
}
