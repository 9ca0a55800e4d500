/* keeper_keyq.c — the keeper's TLS key operations (see keeper_keyq.h). */
#include "keeper_keyq.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

enum state { IDLE, WAITING, RUNNING, ANSWERED, DROPPED };

struct kslot {
	struct keeper_keyop op;         /* first: the caller's view */
	enum state state;
	int dropped;                    /* front closed the slot */
	struct kslot *next;             /* the FIFO, while waiting */
};

struct keeper_keyq {
	size_t nslots, nwaiting, nrunning;
	struct kslot *slots;
	struct kslot *head, *tail;      /* waiting, oldest first */
};

struct keeper_keyq *
keeper_keyq_new(size_t nslots)
{
	struct keeper_keyq *q = xcalloc(1, sizeof(*q));
	size_t i;

	q->nslots = nslots > 0 ? nslots : 1;
	q->slots = xcalloc(q->nslots, sizeof(*q->slots));
	for (i = 0; i < q->nslots; i++)
		q->slots[i].op.slot = i;
	return q;
}

void
keeper_keyq_free(struct keeper_keyq **qp)
{
	if (qp == NULL || *qp == NULL)
		return;
	free((*qp)->slots);
	free(*qp);
	*qp = NULL;
}

int
keeper_keyq_idle(const struct keeper_keyq *q, size_t slot)
{
	return slot < q->nslots && q->slots[slot].state == IDLE;
}

int
keeper_keyq_put(struct keeper_keyq *q, size_t slot, uint32_t id, const uint8_t *req,
    size_t len)
{
	struct kslot *s;

	if (!keeper_keyq_idle(q, slot) || len == 0 || len > KEEPER_KEYQ_REQ_MAX)
		return -1;
	s = &q->slots[slot];
	s->op.id = id;
	memcpy(s->op.req, req, len);
	s->op.reqlen = len;
	s->op.replen = 0;
	s->state = WAITING;
	s->next = NULL;
	if (q->tail != NULL)
		q->tail->next = s;
	else
		q->head = s;
	q->tail = s;
	q->nwaiting++;
	return 0;
}

/* The FIFO's head out (it is waiting). */
static struct kslot *
fifo_pop(struct keeper_keyq *q)
{
	struct kslot *s = q->head;

	if ((q->head = s->next) == NULL)
		q->tail = NULL;
	s->next = NULL;
	q->nwaiting--;
	return s;
}

struct keeper_keyop *
keeper_keyq_take(struct keeper_keyq *q)
{
	struct kslot *s;

	if (q->head == NULL)
		return NULL;
	s = fifo_pop(q);
	s->state = RUNNING;
	q->nrunning++;
	return &s->op;
}

void
keeper_keyq_done(struct keeper_keyq *q, struct keeper_keyop *op)
{
	struct kslot *s = (struct kslot *)op;

	q->nrunning--;
	s->state = s->dropped ? DROPPED : ANSWERED;
}

const struct keeper_keyop *
keeper_keyq_answer(const struct keeper_keyq *q, size_t slot)
{
	return slot < q->nslots && q->slots[slot].state == ANSWERED ? &q->slots[slot].op : NULL;
}

void
keeper_keyq_sent(struct keeper_keyq *q, size_t slot)
{
	if (keeper_keyq_answer(q, slot) != NULL)
		q->slots[slot].state = IDLE;
}

void
keeper_keyq_drop_slot(struct keeper_keyq *q, size_t slot)
{
	struct kslot *s, *prev = NULL, *c;

	if (slot >= q->nslots)
		return;
	s = &q->slots[slot];
	s->dropped = 1;
	if (s->state == WAITING) {
		for (c = q->head; c != s; c = c->next)
			prev = c;
		if (prev != NULL)
			prev->next = s->next;
		else
			q->head = s->next;
		if (q->tail == s)
			q->tail = prev;
		s->next = NULL;
		q->nwaiting--;
	}
	if (s->state != RUNNING)
		s->state = DROPPED;
}

size_t
keeper_keyq_waiting(const struct keeper_keyq *q)
{
	return q->nwaiting;
}

size_t
keeper_keyq_running(const struct keeper_keyq *q)
{
	return q->nrunning;
}
