/*
 * keeper_keyq.h — the keeper's TLS key operations between its main thread
 * (which reads the requests and sends the answers) and its key workers
 * (which sign): waiting, running, and answered but not yet sent to front.
 * Pure: no I/O, no clock, no locks (the keeper calls it under its mutex).
 * Runs in the keeper.
 *
 * A client slot (one front worker) holds at most one operation at a time:
 * front asks one at a time (a handshake waits for its signature), and the
 * keeper reads a slot's TLS socket only while keeper_keyq_idle() says the
 * slot holds nothing, so a front that asks more only fills its own socket.
 * The memory is therefore fixed when the queue is made, whatever front
 * does: one request (at most KEEPER_KEYQ_REQ_MAX octets) and one answer
 * buffer per slot.  Waiting operations are taken in the order they came
 * (one FIFO across the slots); with one per slot, no slot waits for
 * another's second operation.
 *
 * A worker writes the answer into the operation it took (rep, replen)
 * without the lock: while it runs, nothing else touches it, even when its
 * slot is dropped meanwhile (the storage is the slot's, never freed before
 * the queue).
 */
#ifndef SUBPROXY_KEEPER_KEYQ_H
#define SUBPROXY_KEEPER_KEYQ_H

#include <stddef.h>
#include <stdint.h>

#include "keeper_msg.h"

#define KEEPER_KEYQ_REQ_MAX     (16 + KEEPER_SIGN_DATA_MAX)     /* a TLS_SIGN_REQ payload */
#define KEEPER_KEYQ_REP_MAX     (16 + KEEPER_SIG_MAX)           /* a TLS_SIGN_REP payload */

/* One key operation as the keeper sees it. */
struct keeper_keyop {
	size_t slot;                    /* whose: the answer goes there */
	uint32_t id;                    /* front's request id */
	size_t reqlen, replen;
	uint8_t req[KEEPER_KEYQ_REQ_MAX];
	uint8_t rep[KEEPER_KEYQ_REP_MAX];       /* the worker's answer */
};

struct keeper_keyq;

/* An empty queue for `nslots` client slots (at least 1).  Never NULL. */
struct keeper_keyq *keeper_keyq_new(size_t nslots);

/* Free everything; *qp = NULL.  NULL is a no-op. */
void keeper_keyq_free(struct keeper_keyq **qp);

/* Does slot hold nothing (its next request may be read)?  0 for a slot
 * out of range or dropped. */
int keeper_keyq_idle(const struct keeper_keyq *q, size_t slot);

/* Slot's request id with `len` octets of req, at the end of the FIFO.
 * Returns 0, or -1 when the slot is not idle or len is 0 or over
 * KEEPER_KEYQ_REQ_MAX (nothing is held). */
int keeper_keyq_put(struct keeper_keyq *q, size_t slot, uint32_t id, const uint8_t *req,
    size_t len);

/* The oldest waiting operation, now running; NULL when none waits. */
struct keeper_keyop *keeper_keyq_take(struct keeper_keyq *q);

/* The worker wrote op's answer: it waits to be sent (or, when its slot
 * was dropped meanwhile, is forgotten). */
void keeper_keyq_done(struct keeper_keyq *q, struct keeper_keyop *op);

/* Slot's answer not yet sent, or NULL.  keeper_keyq_sent() makes the
 * slot idle again (call it once the answer is sent, or given up). */
const struct keeper_keyop *keeper_keyq_answer(const struct keeper_keyq *q, size_t slot);
void keeper_keyq_sent(struct keeper_keyq *q, size_t slot);

/* Front closed slot: a waiting operation leaves the FIFO, an answer is
 * forgotten, a running one is forgotten when done; the slot takes no
 * more. */
void keeper_keyq_drop_slot(struct keeper_keyq *q, size_t slot);

/* Operations waiting for a worker, and running. */
size_t keeper_keyq_waiting(const struct keeper_keyq *q);
size_t keeper_keyq_running(const struct keeper_keyq *q);

#endif
