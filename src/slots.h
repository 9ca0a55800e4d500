/*
 * slots.h — a bound on things held at once, with a line of those waiting
 * for one: front's [limits] transactions (mail transactions in progress in
 * one front worker, each of which may hold a relay connection and a memfd
 * with its message; smtp_txn.c).
 *
 * A taker gets a slot at once when one is free and nobody waits, else it
 * waits in line, oldest first.  A slot given back goes straight to the
 * oldest waiter, which is told from the event loop (never from inside
 * slots_put() or any other call of this module): until then the slot
 * counts as held, so a newcomer cannot take it first.  A wait is a
 * cancellable cookie; cancelling a waiter already granted gives its slot
 * on to the next one.
 */
#ifndef SUBPROXY_SLOTS_H
#define SUBPROXY_SLOTS_H

#include <stddef.h>

struct event_base;
struct slots;
struct slots_wait;

/* Called from the loop when the waiter holds its slot (it must give it
 * back with slots_put()).  The cookie is gone by then. */
typedef void slots_cb(void *arg);

/* At most max (>= 1) slots held at once.  NULL on failure. */
struct slots *slots_new(struct event_base *base, size_t max);

/* Free; waiters are dropped without a call.  *slp = NULL; NULL is a
 * no-op. */
void slots_free(struct slots **slp);

/* Take a slot now: 1 when taken, 0 when none is free or somebody waits
 * already (then wait with slots_wait()). */
int slots_take(struct slots *sl);

/* Wait in line for a slot: cb(arg) follows from the loop once it is held,
 * unless cancelled first.  Returns the cookie for slots_cancel(). */
struct slots_wait *slots_wait(struct slots *sl, slots_cb *cb, void *arg);

/* Leave the line: cb is not called; a slot already granted and not yet
 * told passes on to the next waiter.  *wp = NULL; NULL is a no-op. */
void slots_cancel(struct slots_wait **wp);

/* Give back a slot taken or granted. */
void slots_put(struct slots *sl);

/* Slots held now (granted ones included); takers waiting in line. */
size_t slots_held(const struct slots *sl);
size_t slots_waiting(const struct slots *sl);

#endif
