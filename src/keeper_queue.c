/* keeper_queue.c — the keeper's password checks (see keeper_queue.h). */
#include "keeper_queue.h"

#include "passwd.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define CHUNK           128     /* checks (and small slots) taken at once */
#define BIG_CHUNK       8       /* long-field slots taken at once */
#define BUCKETS_MAX     65536   /* cancel table heads, at most */

_Static_assert(KEEPER_QUEUE_BIG >= PASSWD_LOGIN_MAX + 1 + KEEPER_PEER_MAX + 1 + KEEPER_PW_MAX,
    "a long-field slot holds the longest login, peer and password");
_Static_assert(KEEPER_QUEUE_BIG_MAX % BIG_CHUNK == 0, "long-field slots come in chunks");

enum state { FREE, WAITING, RUNNING, ANSWERED };

struct check {
	struct keeper_check pub;        /* first: the caller's view */
	enum state state;
	struct check *prev, *next;      /* its slot's FIFO or answers; the free list */
	struct check *hnext;            /* cancel table chain (waiting checks) */
	uint8_t *small;                 /* its own KEEPER_QUEUE_SMALL octets */
	uint8_t *big;                   /* a KEEPER_QUEUE_BIG slot while it has long fields */
};

struct list {
	struct check *head, *tail;
	size_t n;
};

struct qslot {
	struct list waiting, answers;
	int dropped;                    /* front closed it */
};

struct chunk {
	struct chunk *next;
	struct check *checks;
	uint8_t *mem;                   /* sodium_allocarray: the checks' small slots */
};

struct keeper_queue {
	int sodium;                     /* libsodium initialised: guarded memory can be had */
	size_t max, nslots;
	size_t held, nwaiting, nchecks;
	size_t rr;                      /* the slot _take looks at first */
	struct qslot *slots;
	struct check *free;
	struct chunk *chunks;
	struct check **bucket;
	size_t nbucket;                 /* a power of two */
	uint8_t *bigmem[KEEPER_QUEUE_BIG_MAX / BIG_CHUNK];
	uint8_t *bigfree[KEEPER_QUEUE_BIG_MAX];
	size_t nbigchunks, nbigfree;
};

/* ---- lists ---- */

static void
list_add(struct list *l, struct check *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	l->n++;
}

static void
list_del(struct list *l, struct check *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
	l->n--;
}

/* ---- the cancel table: waiting checks by slot and id ---- */

static struct check **
chain(struct keeper_queue *q, size_t slot, uint32_t id)
{
	uint64_t h = ((uint64_t)id * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)slot * 0xff51afd7ed558ccdULL);

	return &q->bucket[(h >> 32) & (q->nbucket - 1)];
}

static void
table_del(struct keeper_queue *q, struct check *c)
{
	struct check **pp;

	for (pp = chain(q, c->pub.slot, c->pub.id); *pp != c; pp = &(*pp)->hnext)
		;
	*pp = c->hnext;
	c->hnext = NULL;
}

/* ---- memory ---- */

/* CHUNK more checks (fewer when max is near), each with its small slot. */
static int
grow(struct keeper_queue *q)
{
	size_t n = q->max - q->nchecks < CHUNK ? q->max - q->nchecks : CHUNK, i;
	struct chunk *ch;
	uint8_t *mem;

	if (n == 0 || !q->sodium || (mem = sodium_allocarray(n, KEEPER_QUEUE_SMALL)) == NULL)
		return -1;
	ch = xcalloc(1, sizeof(*ch));
	ch->mem = mem;
	ch->checks = xcalloc(n, sizeof(*ch->checks));
	ch->next = q->chunks;
	q->chunks = ch;
	for (i = 0; i < n; i++) {
		ch->checks[i].small = mem + i * KEEPER_QUEUE_SMALL;
		ch->checks[i].next = q->free;
		q->free = &ch->checks[i];
	}
	q->nchecks += n;
	return 0;
}

static uint8_t *
big_take(struct keeper_queue *q)
{
	uint8_t *mem;
	size_t i;

	if (q->nbigfree == 0) {
		if (q->nbigchunks == KEEPER_QUEUE_BIG_MAX / BIG_CHUNK || !q->sodium ||
		    (mem = sodium_allocarray(BIG_CHUNK, KEEPER_QUEUE_BIG)) == NULL)
			return NULL;
		q->bigmem[q->nbigchunks++] = mem;
		for (i = 0; i < BIG_CHUNK; i++)
			q->bigfree[q->nbigfree++] = mem + i * KEEPER_QUEUE_BIG;
	}
	return q->bigfree[--q->nbigfree];
}

/* Wipe a check's fields and give back its long-field slot. */
static void
fields_wipe(struct keeper_queue *q, struct check *c)
{
	sodium_memzero(c->small, KEEPER_QUEUE_SMALL);
	if (c->big != NULL) {
		sodium_memzero(c->big, KEEPER_QUEUE_BIG);
		q->bigfree[q->nbigfree++] = c->big;
		c->big = NULL;
	}
	c->pub.login = c->pub.peer = NULL;
	c->pub.pw = NULL;
	c->pub.pwlen = 0;
}

static void
check_free(struct keeper_queue *q, struct check *c)
{
	fields_wipe(q, c);
	c->state = FREE;
	c->prev = NULL;
	c->next = q->free;
	q->free = c;
	q->held--;
}

/* ---- the interface ---- */

struct keeper_queue *
keeper_queue_new(size_t max, size_t nslots)
{
	struct keeper_queue *q = xcalloc(1, sizeof(*q));

	if (max == 0)
		max = 1;
	if (max > KEEPER_QUEUE_LIMIT_MAX)
		max = KEEPER_QUEUE_LIMIT_MAX;
	q->sodium = sodium_init() >= 0;
	q->max = max;
	q->nslots = nslots > 0 ? nslots : 1;
	q->slots = xcalloc(q->nslots, sizeof(*q->slots));
	for (q->nbucket = 16; q->nbucket < max && q->nbucket < BUCKETS_MAX; q->nbucket <<= 1)
		;
	q->bucket = xcalloc(q->nbucket, sizeof(*q->bucket));
	return q;
}

void
keeper_queue_free(struct keeper_queue **qp)
{
	struct keeper_queue *q;
	struct chunk *ch;
	size_t i;

	if (qp == NULL || (q = *qp) == NULL)
		return;
	while ((ch = q->chunks) != NULL) {
		q->chunks = ch->next;
		sodium_free(ch->mem);           /* wipes */
		free(ch->checks);
		free(ch);
	}
	for (i = 0; i < q->nbigchunks; i++)
		sodium_free(q->bigmem[i]);
	free(q->bucket);
	free(q->slots);
	free(q);
	*qp = NULL;
}

int
keeper_queue_put(struct keeper_queue *q, size_t slot, uint32_t id, const char *login,
    const char *peer, const uint8_t *pw, size_t pwlen)
{
	size_t llen = strnlen(login, PASSWD_LOGIN_MAX + 1), plen, need;
	struct check *c, **head;
	uint8_t *buf, *big = NULL;

	if (peer == NULL)
		peer = "";
	plen = strnlen(peer, KEEPER_PEER_MAX + 1);
	if (slot >= q->nslots || q->slots[slot].dropped || llen > PASSWD_LOGIN_MAX ||
	    plen > KEEPER_PEER_MAX || pwlen > KEEPER_PW_MAX || q->held >= q->max)
		return -1;
	need = llen + 1 + plen + 1 + pwlen;
	if (need > KEEPER_QUEUE_SMALL && (big = big_take(q)) == NULL)
		return -1;
	if (q->free == NULL && grow(q) < 0) {
		if (big != NULL)
			q->bigfree[q->nbigfree++] = big;
		return -1;
	}
	c = q->free;
	q->free = c->next;
	c->big = big;
	buf = big != NULL ? big : c->small;
	memcpy(buf, login, llen);
	buf[llen] = '\0';
	memcpy(buf + llen + 1, peer, plen);
	buf[llen + 1 + plen] = '\0';
	if (pwlen > 0)
		memcpy(buf + llen + plen + 2, pw, pwlen);
	c->pub.slot = slot;
	c->pub.id = id;
	c->pub.login = (const char *)buf;
	c->pub.peer = (const char *)buf + llen + 1;
	c->pub.pw = buf + llen + plen + 2;
	c->pub.pwlen = pwlen;
	c->pub.result = c->pub.flags = 0;
	c->state = WAITING;
	list_add(&q->slots[slot].waiting, c);
	head = chain(q, slot, id);
	c->hnext = *head;
	*head = c;
	q->held++;
	q->nwaiting++;
	return 0;
}

struct keeper_check *
keeper_queue_take(struct keeper_queue *q)
{
	struct qslot *s;
	struct check *c;
	size_t i, k;

	if (q->nwaiting == 0)
		return NULL;
	for (i = 0; i < q->nslots; i++) {
		k = (q->rr + i) % q->nslots;
		s = &q->slots[k];
		if ((c = s->waiting.head) == NULL)
			continue;
		list_del(&s->waiting, c);
		table_del(q, c);
		c->state = RUNNING;
		q->nwaiting--;
		q->rr = (k + 1) % q->nslots;
		return &c->pub;
	}
	return NULL;
}

void
keeper_queue_done(struct keeper_queue *q, struct keeper_check *pc, uint32_t result,
    uint32_t flags)
{
	struct check *c = (struct check *)pc;

	fields_wipe(q, c);
	if (q->slots[c->pub.slot].dropped) {
		check_free(q, c);
		return;
	}
	c->pub.result = result;
	c->pub.flags = flags;
	c->state = ANSWERED;
	list_add(&q->slots[c->pub.slot].answers, c);
}

const struct keeper_check *
keeper_queue_answer(const struct keeper_queue *q, size_t slot)
{
	struct check *c = slot < q->nslots ? q->slots[slot].answers.head : NULL;

	return c != NULL ? &c->pub : NULL;
}

void
keeper_queue_sent(struct keeper_queue *q, size_t slot)
{
	struct check *c;

	if (slot >= q->nslots || (c = q->slots[slot].answers.head) == NULL)
		return;
	list_del(&q->slots[slot].answers, c);
	check_free(q, c);
}

/* A waiting check out of its FIFO and the table, freed. */
static void
waiting_free(struct keeper_queue *q, struct check *c)
{
	list_del(&q->slots[c->pub.slot].waiting, c);
	table_del(q, c);
	q->nwaiting--;
	check_free(q, c);
}

int
keeper_queue_cancel(struct keeper_queue *q, size_t slot, uint32_t id)
{
	struct check *c;

	if (slot >= q->nslots)
		return 0;
	for (c = *chain(q, slot, id); c != NULL; c = c->hnext)
		if (c->pub.slot == slot && c->pub.id == id) {
			waiting_free(q, c);
			return 1;
		}
	return 0;
}

void
keeper_queue_drop_slot(struct keeper_queue *q, size_t slot)
{
	struct qslot *s;
	struct check *c;

	if (slot >= q->nslots)
		return;
	s = &q->slots[slot];
	s->dropped = 1;
	while ((c = s->waiting.head) != NULL)
		waiting_free(q, c);
	while ((c = s->answers.head) != NULL) {
		list_del(&s->answers, c);
		check_free(q, c);
	}
}

size_t
keeper_queue_held(const struct keeper_queue *q)
{
	return q->held;
}

size_t
keeper_queue_waiting(const struct keeper_queue *q)
{
	return q->nwaiting;
}

size_t
keeper_queue_answers(const struct keeper_queue *q, size_t slot)
{
	return slot < q->nslots ? q->slots[slot].answers.n : 0;
}
