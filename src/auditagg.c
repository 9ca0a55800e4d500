/* auditagg.c — counting the audit records a client can repeat at will. */
#include "auditagg.h"

#include "auditlog.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define NBUCKETS_MIN	64

struct entry {
	int used;
	int type;
	int flood;		/* else: counted only for want of room */
	char *id;		/* "type\tkind\tkey" */
	size_t hash;
	long next;		/* in its bucket's chain, -1 at the end */
	int64_t window;		/* the current interval began */
	int64_t seen;		/* the latest record of it */
	char *body;		/* the first one counted, NULL while none is */
	size_t len;
	uint64_t count;
	int64_t first, last;
};

struct auditagg {
	struct auditagg_out out;
	int64_t interval;
	struct entry *v;
	size_t max, n;
	long *buckets;		/* entry index, -1 empty */
	size_t nbuckets;
	/* keys are the clients' addresses: a keyed hash, so that no client
	 * can choose addresses that all land in one bucket */
	uint8_t hkey[crypto_shorthash_KEYBYTES];
	uint64_t dropped;
};

static size_t
hash_id(const struct auditagg *a, const char *id)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, (const unsigned char *)id, strlen(id), a->hkey);
	memcpy(&v, h, sizeof(v));
	return (size_t)v;
}

struct auditagg *
auditagg_new(size_t max, int64_t interval_ms, const struct auditagg_out *out)
{
	struct auditagg *a = xcalloc(1, sizeof(*a));
	size_t i;

	a->out = *out;
	a->interval = interval_ms;
	a->max = max > 0 ? max : 1;
	a->v = xcalloc(a->max, sizeof(*a->v));
	for (a->nbuckets = NBUCKETS_MIN; a->nbuckets < a->max * 2; a->nbuckets *= 2)
		;
	a->buckets = xcalloc(a->nbuckets, sizeof(*a->buckets));
	for (i = 0; i < a->nbuckets; i++)
		a->buckets[i] = -1;
	randombytes_buf(a->hkey, sizeof(a->hkey));
	return a;
}

static void
entry_clear(struct entry *e)
{
	free(e->id);
	free(e->body);
	memset(e, 0, sizeof(*e));
}

void
auditagg_free(struct auditagg **ap)
{
	struct auditagg *a;
	size_t i;

	if (ap == NULL || (a = *ap) == NULL)
		return;
	for (i = 0; i < a->max; i++)
		entry_clear(&a->v[i]);
	free(a->v);
	free(a->buckets);
	free(a);
	*ap = NULL;
}

char *
auditagg_summary(const char *body, size_t len, uint64_t count, int64_t first_ms,
    int64_t last_ms, size_t *len_r)
{
	char first[ALOG_TIME_LEN + 1], last[ALOG_TIME_LEN + 1], *s;
	size_t trim = len;

	while (trim > 0 && (body[trim - 1] == ' ' || body[trim - 1] == '\n'))
		trim--;
	if (trim < 2 || body[0] != '{' || body[trim - 1] != '}')
		return NULL;
	alog_time_format(first_ms, first);
	alog_time_format(last_ms, last);
	/* "{}" gets no leading comma */
	s = xasprintf("%.*s%s\"count\":%llu,\"first\":\"%s\",\"last\":\"%s\"}", (int)(trim - 1),
	    body, trim == 2 ? "" : ",", (unsigned long long)count, first, last);
	*len_r = strlen(s);
	return s;
}

/* Send what e counted (the interval's summary) and start counting anew. */
static void
entry_emit(struct auditagg *a, struct entry *e)
{
	size_t len;
	char *s;

	if (e->count == 0)
		return;
	s = auditagg_summary(e->body, e->len, e->count, e->first, e->last, &len);
	if (s != NULL)
		a->out.emit(a->out.arg, e->type, s, len);
	free(s);
	free(e->body);
	e->body = NULL;
	e->count = 0;
}

static void
entry_unlink(struct auditagg *a, long i)
{
	long *pp = &a->buckets[a->v[i].hash & (a->nbuckets - 1)];

	while (*pp != i)
		pp = &a->v[*pp].next;
	*pp = a->v[i].next;
	entry_clear(&a->v[i]);
	a->n--;
}

static long
entry_find(const struct auditagg *a, const char *id, size_t h)
{
	long i;

	for (i = a->buckets[h & (a->nbuckets - 1)]; i >= 0; i = a->v[i].next)
		if (a->v[i].hash == h && strcmp(a->v[i].id, id) == 0)
			return i;
	return -1;
}

static int
room(const struct auditagg *a)
{
	return a->out.room(a->out.arg);
}

/* Make a place for a new entry; -1 when none can be made. */
static long
entry_place(struct auditagg *a)
{
	long i, quiet = -1, oldest = -1;

	if (a->n < a->max) {
		for (i = 0; a->v[i].used; i++)
			;
		return i;
	}
	for (i = 0; i < (long)a->max; i++) {
		if (a->v[i].count == 0 && (quiet < 0 || a->v[i].seen < a->v[quiet].seen))
			quiet = i;
		if (oldest < 0 || a->v[i].seen < a->v[oldest].seen)
			oldest = i;
	}
	if (quiet < 0) {
		if (!room(a))
			return -1;
		entry_emit(a, &a->v[oldest]);
		quiet = oldest;
	}
	entry_unlink(a, quiet);
	return quiet;
}

static void
entry_count(struct entry *e, const char *body, size_t len, int64_t now)
{
	if (e->count++ == 0) {
		e->body = xstrndup(body, len);
		e->len = len;
		e->first = now;
	}
	e->last = now;
}

enum auditagg_result
auditagg_note(struct auditagg *a, int type, const char *kind, const char *key, int flood,
    const char *body, size_t len, int64_t now_ms)
{
	struct entry *e;
	char *id;
	size_t h;
	long i;
	int fresh = 0;

	if (!flood && room(a)) {
		a->out.emit(a->out.arg, type, body, len);
		return AUDITAGG_SENT;
	}
	id = xasprintf("%d\t%s\t%s", type, kind, key);
	h = hash_id(a, id);
	if ((i = entry_find(a, id, h)) < 0) {
		if ((i = entry_place(a)) < 0) {
			free(id);
			a->dropped++;
			return AUDITAGG_DROPPED;
		}
		e = &a->v[i];
		e->used = 1;
		e->type = type;
		e->flood = flood;
		e->id = id;
		e->hash = h;
		e->window = now_ms;
		e->next = a->buckets[h & (a->nbuckets - 1)];
		a->buckets[h & (a->nbuckets - 1)] = i;
		a->n++;
		fresh = 1;
	} else
		free(id);
	e = &a->v[i];
	e->seen = now_ms;
	if (fresh && room(a)) {
		a->out.emit(a->out.arg, type, body, len);
		return AUDITAGG_SENT;
	}
	entry_count(e, body, len, now_ms);
	return AUDITAGG_COUNTED;
}

void
auditagg_tick(struct auditagg *a, int64_t now_ms)
{
	struct entry *e;
	size_t i;

	for (i = 0; i < a->max; i++) {
		e = &a->v[i];
		if (!e->used)
			continue;
		/* counted for want of room only: sent as soon as there is some */
		if (!e->flood && room(a)) {
			entry_emit(a, e);
			entry_unlink(a, (long)i);
			continue;
		}
		/* a clock stepped back ends the interval too */
		if (now_ms - e->window < a->interval && now_ms >= e->window)
			continue;
		if (e->count == 0)
			entry_unlink(a, (long)i);
		else if (room(a)) {
			entry_emit(a, e);
			e->window = now_ms;
		}
	}
}

void
auditagg_flush(struct auditagg *a)
{
	size_t i;

	for (i = 0; i < a->max; i++)
		if (a->v[i].used) {
			entry_emit(a, &a->v[i]);
			entry_unlink(a, (long)i);
		}
}

size_t
auditagg_size(const struct auditagg *a)
{
	return a->n;
}

uint64_t
auditagg_dropped(const struct auditagg *a)
{
	return a->dropped;
}
