/*
 * keeper_queue.h — the keeper's password checks: waiting for an Argon2id
 * worker, running, and answered but not yet sent to front.  Pure: no I/O,
 * no clock, no locks (the keeper calls it under its mutex).  Runs in the
 * keeper.
 *
 * At most `max` checks are held at once ([limits] auth-queue), counting
 * those waiting, running and answered but not yet sent;
 * keeper_queue_put() refuses one more (the keeper answers BUSY: 454).
 * Each check's login, peer and password are copied into guarded memory
 * (sodium_malloc: guard pages, mlock, not in core dumps), sized for them:
 * a slot of KEEPER_QUEUE_SMALL octets per check, which holds the usual
 * login, address and password together, and at most KEEPER_QUEUE_BIG_MAX
 * slots of KEEPER_QUEUE_BIG for longer ones (a long check beyond those is
 * refused like one beyond max).  That memory is taken in chunks as the
 * queue first grows (so it follows the highest use, never more than max
 * checks) and wiped as each check is answered.
 *
 * Every client slot (one front worker) has its own FIFO; _take() takes the
 * slots in turn, so one front's long queue delays no other front's checks.
 * A waiting check can be cancelled by its slot and id (front's session went
 * away: no Argon2id for it).  Answers: a check a worker finished (_done)
 * waits in its slot's answer list until the keeper has sent it (_sent).
 */
#ifndef SUBPROXY_KEEPER_QUEUE_H
#define SUBPROXY_KEEPER_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "keeper_msg.h"

#define KEEPER_QUEUE_SMALL      256     /* login NUL peer NUL password, the usual case */
#define KEEPER_QUEUE_BIG        (256 + KEEPER_PEER_MAX + 1 + KEEPER_PW_MAX)
#define KEEPER_QUEUE_BIG_MAX    64      /* checks with longer fields held at once */
#define KEEPER_QUEUE_LIMIT_MAX  1000000 /* the largest max ([limits] auth-queue) */

/* One check as the keeper sees it.  login, peer and pw point into guarded
 * memory owned by the queue; they are wiped when the check is answered. */
struct keeper_check {
	size_t slot;                    /* whose check: the answer goes there */
	uint32_t id;                    /* front's request id */
	const char *login;
	const char *peer;               /* "" = none */
	const uint8_t *pw;
	size_t pwlen;
	uint32_t result, flags;         /* the answer (keeper_queue_done) */
};

struct keeper_queue;

/* An empty queue for `nslots` client slots holding at most `max` checks
 * (1..KEEPER_QUEUE_LIMIT_MAX).  No guarded memory is taken yet.  Never NULL. */
struct keeper_queue *keeper_queue_new(size_t max, size_t nslots);

/* Wipe and free everything; *qp = NULL.  NULL is a no-op. */
void keeper_queue_free(struct keeper_queue **qp);

/* A new check of slot `slot` at the end of its FIFO, with copies of login
 * (at most PASSWD_LOGIN_MAX octets), peer (at most KEEPER_PEER_MAX) and
 * pwlen (at most KEEPER_PW_MAX) octets of pw.  Returns 0, or -1 when max
 * checks are held, no slot for long fields is free, or guarded memory
 * cannot be had (the check is then not held). */
int keeper_queue_put(struct keeper_queue *q, size_t slot, uint32_t id, const char *login,
    const char *peer, const uint8_t *pw, size_t pwlen);

/* The next waiting check, the slots in turn (oldest first within a slot);
 * it is then running.  NULL when none waits. */
struct keeper_check *keeper_queue_take(struct keeper_queue *q);

/* A running check's answer: its fields are wiped and it joins its slot's
 * answers (or is freed, when its slot was dropped meanwhile). */
void keeper_queue_done(struct keeper_queue *q, struct keeper_check *c, uint32_t result,
    uint32_t flags);

/* The oldest unsent answer of slot, or NULL.  keeper_queue_sent() frees it
 * (call it once the answer is sent). */
const struct keeper_check *keeper_queue_answer(const struct keeper_queue *q, size_t slot);
void keeper_queue_sent(struct keeper_queue *q, size_t slot);

/* Drop slot's waiting check with this id: 1 if there was one (it never
 * runs, gets no answer), else 0 (running, answered, or unknown). */
int keeper_queue_cancel(struct keeper_queue *q, size_t slot, uint32_t id);

/* Front closed slot: its waiting checks and unsent answers are freed, its
 * running ones when they finish. */
void keeper_queue_drop_slot(struct keeper_queue *q, size_t slot);

/* Checks held (waiting, running, answered but unsent), waiting, and the
 * unsent answers of one slot. */
size_t keeper_queue_held(const struct keeper_queue *q);
size_t keeper_queue_waiting(const struct keeper_queue *q);
size_t keeper_queue_answers(const struct keeper_queue *q, size_t slot);

#endif
