/* slots.c — a bound on things held at once, with a line of waiters (slots.h). */
#include "slots.h"
#include "log.h"
#include "util.h"

#include <stdlib.h>
#include <sys/queue.h>

#include <event2/event.h>

struct slots_wait {
	struct slots *sl;
	TAILQ_ENTRY(slots_wait) entry;  /* in sl->granted, else in sl->line */
	int granted;
	slots_cb *cb;
	void *arg;
};

TAILQ_HEAD(wait_list, slots_wait);     /* oldest first */

struct slots {
	size_t max, held;               /* held counts the granted ones too */
	struct wait_list line;          /* waiting for a slot */
	size_t nline;
	struct wait_list granted;       /* holding one, not told yet */
	struct event *ev_grant;         /* tells the granted, from the loop */
};

/* Move the oldest waiter to the granted: the slot is its own now, and it
 * is told from the loop. */
static void
grant_first(struct slots *sl)
{
	struct slots_wait *w = TAILQ_FIRST(&sl->line);

	TAILQ_REMOVE(&sl->line, w, entry);
	sl->nline--;
	w->granted = 1;
	TAILQ_INSERT_TAIL(&sl->granted, w, entry);
	event_active(sl->ev_grant, EV_TIMEOUT, 0);
}

/* One granted waiter is told per pass; the event comes again for the rest,
 * so nothing of the list is touched after a callback (which may cancel
 * others, or wait again). */
static void
grant_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slots *sl = arg;
	struct slots_wait *w = TAILQ_FIRST(&sl->granted);
	slots_cb *cb;
	void *cbarg;

	(void)fd;
	(void)what;
	if (w == NULL)
		return;
	TAILQ_REMOVE(&sl->granted, w, entry);
	if (!TAILQ_EMPTY(&sl->granted))
		event_active(sl->ev_grant, EV_TIMEOUT, 0);
	cb = w->cb;
	cbarg = w->arg;
	free(w);
	cb(cbarg);
}

struct slots *
slots_new(struct event_base *base, size_t max)
{
	struct slots *sl = xcalloc(1, sizeof(*sl));

	sl->max = max > 0 ? max : 1;
	TAILQ_INIT(&sl->line);
	TAILQ_INIT(&sl->granted);
	if ((sl->ev_grant = event_new(base, -1, 0, grant_cb, sl)) == NULL) {
		log_err("slots: event_new failed");
		free(sl);
		return NULL;
	}
	return sl;
}

static void
list_clear(struct wait_list *l)
{
	struct slots_wait *w;

	while ((w = TAILQ_FIRST(l)) != NULL) {
		TAILQ_REMOVE(l, w, entry);
		free(w);
	}
}

void
slots_free(struct slots **slp)
{
	struct slots *sl = *slp;

	if (sl == NULL)
		return;
	*slp = NULL;
	list_clear(&sl->line);
	list_clear(&sl->granted);
	event_free(sl->ev_grant);
	free(sl);
}

int
slots_take(struct slots *sl)
{
	if (sl->held >= sl->max || sl->nline > 0)
		return 0;
	sl->held++;
	return 1;
}

struct slots_wait *
slots_wait(struct slots *sl, slots_cb *cb, void *arg)
{
	struct slots_wait *w = xcalloc(1, sizeof(*w));

	w->sl = sl;
	w->cb = cb;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&sl->line, w, entry);
	sl->nline++;
	/* a slot free with nobody ahead: granted at once, told from the loop
	 * like any other grant */
	if (sl->held < sl->max && TAILQ_FIRST(&sl->line) == w) {
		sl->held++;
		grant_first(sl);
	}
	return w;
}

void
slots_cancel(struct slots_wait **wp)
{
	struct slots_wait *w = *wp;
	struct slots *sl;

	if (w == NULL)
		return;
	*wp = NULL;
	sl = w->sl;
	if (w->granted) {
		TAILQ_REMOVE(&sl->granted, w, entry);
		free(w);
		slots_put(sl);
		return;
	}
	TAILQ_REMOVE(&sl->line, w, entry);
	sl->nline--;
	free(w);
}

void
slots_put(struct slots *sl)
{
	if (sl->held == 0)
		fatal("slots: a slot given back that was not held");
	if (TAILQ_EMPTY(&sl->line))
		sl->held--;
	else
		grant_first(sl);        /* the oldest waiter's: it stays held */
}

size_t
slots_held(const struct slots *sl)
{
	return sl->held;
}

size_t
slots_waiting(const struct slots *sl)
{
	return sl->nline;
}
