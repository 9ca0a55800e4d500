/* auditagg.c — counting the audit records a client can repeat at will. */
#include "auditagg.h"

#include "auditlog.h"
#include "json.h"
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
	size_t kind_off, key_off;	/* where kind and key begin in id */
	size_t hash;
	long next;		/* in its bucket's chain, -1 at the end */
	int64_t window;		/* the current interval began */
	int64_t seen;		/* the latest record of it */
	char *body;		/* the first one counted, NULL while none is */
	size_t len;
	uint64_t count;
	int64_t first, last;
};

/* A kind counted for many client keys at once ("client": "*"). */
struct wild {
	int type;
	char *kind;		/* NULL: unused */
	char *body;		/* the first one counted */
	size_t len;
	uint64_t count;		/* records it stands for */
	uint64_t clients;	/* client keys told apart among them */
	int capped;		/* ... and more: the key set was full */
	uint32_t gen;		/* its summaries so far (the key set's entries) */
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
	/* the bound on records naming one client */
	uint32_t flood_max, flood_used;
	int64_t flood_window;
	/* beyond it, per kind */
	struct wild wild[AUDITAGG_KINDS_MAX];
	int64_t wild_window;	/* -1: nothing counted per kind */
	uint64_t *keys;		/* the keys counted per kind: hashes, 0 empty */
	size_t nkeys;
};

#define KEYS_SLOTS	(2 * AUDITAGG_KEYS_MAX)	/* open addressing, half full at most */

static size_t
hash_str(const struct auditagg *a, const char *s)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, (const unsigned char *)s, strlen(s), a->hkey);
	memcpy(&v, h, sizeof(v));
	return (size_t)v;
}

struct auditagg *
auditagg_new(size_t max, int64_t interval_ms, uint32_t flood_max,
    const struct auditagg_out *out)
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
	a->flood_max = flood_max;
	a->wild_window = -1;
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
	for (i = 0; i < AUDITAGG_KINDS_MAX; i++) {
		free(a->wild[i].kind);
		free(a->wild[i].body);
	}
	free(a->v);
	free(a->buckets);
	free(a->keys);
	free(a);
	*ap = NULL;
}

/* body without trailing white space, when it is an object text: its length
 * up to and including the '}', else 0. */
static size_t
object_end(const char *body, size_t len)
{
	while (len > 0 && (body[len - 1] == ' ' || body[len - 1] == '\n'))
		len--;
	return len >= 2 && body[0] == '{' && body[len - 1] == '}' ? len : 0;
}

char *
auditagg_summary(const char *body, size_t len, uint64_t count, int64_t first_ms,
    int64_t last_ms, size_t *len_r)
{
	char first[ALOG_TIME_LEN + 1], last[ALOG_TIME_LEN + 1], *s;
	size_t trim = object_end(body, len);

	if (trim == 0)
		return NULL;
	alog_time_format(first_ms, first);
	alog_time_format(last_ms, last);
	/* "{}" gets no leading comma */
	s = xasprintf("%.*s%s\"count\":%llu,\"first\":\"%s\",\"last\":\"%s\"}", (int)(trim - 1),
	    body, trim == 2 ? "" : ",", (unsigned long long)count, first, last);
	*len_r = strlen(s);
	return s;
}

char *
auditagg_wild_summary(const char *body, size_t len, uint64_t count, uint64_t clients,
    int capped, int64_t first_ms, int64_t last_ms, size_t *len_r)
{
	char t[ALOG_TIME_LEN + 1], err[100];
	struct json *j = NULL;
	const struct json *m;
	struct jsonw w;

	if (json_parse(body, len, &j, err, sizeof(err)) < 0 || j->type != JSON_OBJ) {
		json_free(&j);
		return NULL;
	}
	jsonw_init(&w, 0);
	jsonw_obj_open(&w);
	for (m = j->first; m != NULL; m = m->next) {
		jsonw_key(&w, m->key);
		if (strcmp(m->key, "client") == 0)
			jsonw_str(&w, "*");
		else
			jsonw_value(&w, m);
	}
	jsonw_kint(&w, "count", (int64_t)count);
	alog_time_format(first_ms, t);
	jsonw_kstr(&w, "first", t);
	alog_time_format(last_ms, t);
	jsonw_kstr(&w, "last", t);
	jsonw_kint(&w, "clients", (int64_t)clients);
	if (capped)
		jsonw_kbool(&w, "clients_capped", 1);
	jsonw_obj_close(&w);
	json_free(&j);
	*len_r = w.len;
	return w.buf;
}

static int
room(const struct auditagg *a)
{
	return a->out.room(a->out.arg);
}

/* ---- the bound on records naming one client ---- */

static void
budget_window(struct auditagg *a, int64_t now)
{
	/* a clock stepped back ends the window too */
	if (now - a->flood_window >= a->interval || now < a->flood_window) {
		a->flood_window = now;
		a->flood_used = 0;
	}
}

static int
budget_left(struct auditagg *a, int64_t now)
{
	budget_window(a, now);
	return a->flood_used < a->flood_max;
}

static int
budget_take(struct auditagg *a, int64_t now)
{
	if (!budget_left(a, now))
		return 0;
	a->flood_used++;
	return 1;
}

/* ---- counting per kind ---- */

/* Note a client key among those of w: 1 new, 0 known, -1 the set is full. */
static int
keys_add(struct auditagg *a, const struct wild *w, const char *key)
{
	char *id = xasprintf("%u\t%d\t%s\t%s", w->gen, w->type, w->kind, key);
	uint64_t h = hash_str(a, id) | 1;	/* 0 marks an empty place */
	size_t i;

	free(id);
	if (a->keys == NULL)
		a->keys = xcalloc(KEYS_SLOTS, sizeof(*a->keys));
	for (i = h % KEYS_SLOTS; a->keys[i] != 0; i = (i + 1) % KEYS_SLOTS)
		if (a->keys[i] == h)
			return 0;
	if (a->nkeys >= AUDITAGG_KEYS_MAX)
		return -1;
	a->keys[i] = h;
	a->nkeys++;
	return 1;
}

static struct wild *
wild_get(struct auditagg *a, int type, const char *kind, size_t kindlen)
{
	struct wild *w, *free_w = NULL;
	size_t i;

	for (i = 0; i < AUDITAGG_KINDS_MAX; i++) {
		w = &a->wild[i];
		if (w->kind == NULL) {
			if (free_w == NULL)
				free_w = w;
		} else if (w->type == type && strlen(w->kind) == kindlen &&
		    memcmp(w->kind, kind, kindlen) == 0)
			return w;
	}
	if (free_w != NULL) {
		free_w->type = type;
		free_w->kind = xstrndup(kind, kindlen);
	}
	return free_w;
}

/* count records of (type, kind) from `key`, the first of them `body`,
 * seen from first to last, into the count per kind.  AUDITAGG_COUNTED, or
 * AUDITAGG_DROPPED when AUDITAGG_KINDS_MAX kinds are counted already. */
static enum auditagg_result
wild_count(struct auditagg *a, int type, const char *kind, size_t kindlen, const char *key,
    const char *body, size_t len, uint64_t count, int64_t first, int64_t last, int64_t now)
{
	struct wild *w = wild_get(a, type, kind, kindlen);

	if (w == NULL) {
		a->dropped += count;
		return AUDITAGG_DROPPED;
	}
	if (w->count == 0) {
		w->body = xstrndup(body, len);
		w->len = len;
		w->first = first;
		w->last = last;
	}
	w->count += count;
	if (first < w->first)
		w->first = first;
	if (last > w->last)
		w->last = last;
	switch (keys_add(a, w, key)) {
	case 1:
		w->clients++;
		break;
	case -1:
		w->capped = 1;
		break;
	}
	if (a->wild_window < 0)
		a->wild_window = now;
	return AUDITAGG_COUNTED;
}

static void
wild_emit(struct auditagg *a, struct wild *w)
{
	size_t len;
	char *s;

	s = auditagg_wild_summary(w->body, w->len, w->count, w->clients, w->capped, w->first,
	    w->last, &len);
	if (s != NULL)
		a->out.emit(a->out.arg, w->type, s, len);
	free(s);
	free(w->body);
	w->body = NULL;
	w->count = w->clients = 0;
	w->capped = 0;
	w->gen++;		/* its keys in the set are stale from now on */
}

/* The counts per kind whose interval ended (all of them when force). */
static void
wild_tick(struct auditagg *a, int64_t now, int force)
{
	size_t i;
	int left = 0;

	if (a->wild_window < 0 || (!force && now - a->wild_window < a->interval &&
	    now >= a->wild_window))
		return;
	for (i = 0; i < AUDITAGG_KINDS_MAX; i++) {
		if (a->wild[i].count == 0)
			continue;
		if (force || room(a))
			wild_emit(a, &a->wild[i]);
		else
			left = 1;
	}
	if (left)
		return;		/* the rest at the next tick with room */
	if (a->keys != NULL)
		memset(a->keys, 0, KEYS_SLOTS * sizeof(*a->keys));
	a->nkeys = 0;
	a->wild_window = -1;
}

/* ---- the entries per kind and key ---- */

/* Send what e counted (the interval's summary) and start counting anew.  A
 * flood summary beyond the bound is counted per kind instead. */
static void
entry_emit(struct auditagg *a, struct entry *e, int64_t now)
{
	size_t len;
	char *s;

	if (e->count == 0)
		return;
	if (e->flood && !budget_take(a, now))
		(void)wild_count(a, e->type, e->id + e->kind_off, e->key_off - 1 - e->kind_off,
		    e->id + e->key_off, e->body, e->len, e->count, e->first, e->last, now);
	else if ((s = auditagg_summary(e->body, e->len, e->count, e->first, e->last, &len)) !=
	    NULL) {
		a->out.emit(a->out.arg, e->type, s, len);
		free(s);
	}
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

/* Make a place for a new entry; -1 when none can be made. */
static long
entry_place(struct auditagg *a, int64_t now)
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
		entry_emit(a, &a->v[oldest], now);
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

/* A new entry for id (hash h) at place i. */
static struct entry *
entry_make(struct auditagg *a, long i, char *id, size_t h, int type, int flood,
    size_t kindlen, int64_t now)
{
	struct entry *e = &a->v[i];

	e->used = 1;
	e->type = type;
	e->flood = flood;
	e->id = id;
	e->kind_off = strchr(id, '\t') + 1 - id;
	e->key_off = e->kind_off + kindlen + 1;
	e->hash = h;
	e->window = now;
	e->next = a->buckets[h & (a->nbuckets - 1)];
	a->buckets[h & (a->nbuckets - 1)] = i;
	a->n++;
	return e;
}

enum auditagg_result
auditagg_note(struct auditagg *a, int type, const char *kind, const char *key, int flood,
    const char *body, size_t len, int64_t now_ms)
{
	struct entry *e;
	char *id;
	size_t h;
	long i;

	if (!flood && room(a)) {
		a->out.emit(a->out.arg, type, body, len);
		return AUDITAGG_SENT;
	}
	id = xasprintf("%d\t%s\t%s", type, kind, key);
	h = hash_str(a, id);
	if ((i = entry_find(a, id, h)) >= 0) {
		free(id);
		e = &a->v[i];
		e->seen = now_ms;
		entry_count(e, body, len, now_ms);
		return AUDITAGG_COUNTED;
	}
	/* a new key: beyond the bound, or without a place, counted per kind */
	if ((flood && !budget_left(a, now_ms)) || (i = entry_place(a, now_ms)) < 0) {
		free(id);
		return wild_count(a, type, kind, strlen(kind), key, body, len, 1, now_ms, now_ms,
		    now_ms);
	}
	e = entry_make(a, i, id, h, type, flood, strlen(kind), now_ms);
	e->seen = now_ms;
	/* (a record that is no flood comes here only without room) */
	if (room(a) && budget_take(a, now_ms)) {
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
			entry_emit(a, e, now_ms);
			entry_unlink(a, (long)i);
			continue;
		}
		/* a clock stepped back ends the interval too */
		if (now_ms - e->window < a->interval && now_ms >= e->window)
			continue;
		if (e->count == 0)
			entry_unlink(a, (long)i);
		else if (room(a)) {
			entry_emit(a, e, now_ms);
			e->window = now_ms;
		}
	}
	wild_tick(a, now_ms, 0);
}

void
auditagg_flush(struct auditagg *a, int64_t now_ms)
{
	size_t i;

	for (i = 0; i < a->max; i++)
		if (a->v[i].used) {
			entry_emit(a, &a->v[i], now_ms);
			entry_unlink(a, (long)i);
		}
	wild_tick(a, now_ms, 1);
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
