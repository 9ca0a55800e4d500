/* proc_client.c — front's request/reply client core (see proc_client.h). */
#include "proc_client.h"

#include "log.h"
#include "proc.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#define BUCKETS         256     /* pending table: ids are sequential, id % BUCKETS spreads them */
#define CANCELS_MAX     1024    /* cancels waiting for room in the socket */

struct proc_req {
	struct proc_client *pc;
	uint32_t id;
	int in_table;                   /* the peer owes a reply (else: deferred answer) */
	int status;                     /* the deferred answer */
	proc_reply_cb *cb;
	void *arg;
	struct event *ev;               /* the deadline, or the deferred answer */
	struct proc_req *hnext;         /* bucket chain (table requests) */
	struct proc_req *prev, *next;   /* table or deferred list, oldest first */
	/* while it waits for room in the socket */
	int queued;
	struct proc_req *qnext;
	unsigned int type;
	uint8_t *payload;
	size_t len;
	int passfd;
};

struct req_list {
	struct proc_req *head, *tail;
};

struct proc_client {
	struct event_base *base;
	int fd;
	struct proc_client_conf conf;
	struct event *rev, *wev;
	struct event *dead_ev;          /* a send error seen inside a call */
	struct event *room_ev;          /* conf.room_cb, from the loop */
	const char *dead_why;
	int dead;
	uint32_t next_id;
	struct proc_req *buckets[BUCKETS];
	struct req_list table;          /* sent or queued: the peer owes a reply */
	struct req_list deferred;       /* answered from the loop without the peer */
	struct proc_req *qhead, *qtail; /* outbound queue, in request order */
	size_t npending, nqueued;
	size_t ninflight;               /* sent, reply not yet read (conf.inflight_max) */
	uint32_t cancels[CANCELS_MAX];  /* ids of cancels the socket had no room for, oldest first */
	size_t ncancels;
	uint64_t cancels_lost;          /* more than CANCELS_MAX waited */
	uint64_t dropped;
	struct proc_msg *msg;           /* receive buffer */
};

static void client_die(struct proc_client *pc, const char *why);

/* ---- lists and the table ---- */

static void
list_add(struct req_list *l, struct proc_req *rq)
{
	rq->next = NULL;
	rq->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = rq;
	else
		l->head = rq;
	l->tail = rq;
}

static void
list_del(struct req_list *l, struct proc_req *rq)
{
	if (rq->prev != NULL)
		rq->prev->next = rq->next;
	else
		l->head = rq->next;
	if (rq->next != NULL)
		rq->next->prev = rq->prev;
	else
		l->tail = rq->prev;
	rq->prev = rq->next = NULL;
}

static struct proc_req *
table_find(const struct proc_client *pc, uint32_t id)
{
	struct proc_req *rq;

	for (rq = pc->buckets[id % BUCKETS]; rq != NULL && rq->id != id; rq = rq->hnext)
		;
	return rq;
}

static void
table_add(struct proc_client *pc, struct proc_req *rq)
{
	rq->hnext = pc->buckets[rq->id % BUCKETS];
	pc->buckets[rq->id % BUCKETS] = rq;
	list_add(&pc->table, rq);
}

static void
table_del(struct proc_client *pc, struct proc_req *rq)
{
	struct proc_req **pp;

	for (pp = &pc->buckets[rq->id % BUCKETS]; *pp != rq; pp = &(*pp)->hnext)
		;
	*pp = rq->hnext;
	list_del(&pc->table, rq);
	rq->in_table = 0;
}

/* ---- the outbound queue ---- */

static void
queue_drop(struct proc_req *rq)
{
	if (rq->payload != NULL) {
		sodium_memzero(rq->payload, rq->len);
		free(rq->payload);
		rq->payload = NULL;
	}
	if (rq->passfd >= 0) {
		close(rq->passfd);
		rq->passfd = -1;
	}
}

static void
queue_del(struct proc_client *pc, struct proc_req *rq)
{
	struct proc_req **pp, *prev = NULL;

	if (!rq->queued)
		return;
	for (pp = &pc->qhead; *pp != rq; pp = &(*pp)->qnext)
		prev = *pp;
	*pp = rq->qnext;
	if (pc->qtail == rq)
		pc->qtail = prev;
	rq->queued = 0;
	rq->qnext = NULL;
	pc->nqueued--;
	queue_drop(rq);
	if (pc->qhead == NULL && pc->ncancels == 0)
		event_del(pc->wev);
	if (pc->room_ev != NULL && !pc->dead)
		event_active(pc->room_ev, EV_TIMEOUT, 0);
}

static void
queue_add(struct proc_client *pc, struct proc_req *rq, const void *payload, size_t len)
{
	rq->payload = xmalloc(len > 0 ? len : 1);
	if (len > 0)
		memcpy(rq->payload, payload, len);
	rq->len = len;
	rq->queued = 1;
	rq->qnext = NULL;
	if (pc->qtail != NULL)
		pc->qtail->qnext = rq;
	else
		pc->qhead = rq;
	pc->qtail = rq;
	pc->nqueued++;
	event_add(pc->wev, NULL);
}

/* ---- requests ---- */

/* Take rq out of wherever it is; its callback is no longer due. */
static void
req_detach(struct proc_req *rq)
{
	struct proc_client *pc = rq->pc;

	if (rq->in_table) {
		queue_del(pc, rq);
		table_del(pc, rq);
	} else {
		list_del(&pc->deferred, rq);
	}
	pc->npending--;
	event_del(rq->ev);
}

static void
req_free(struct proc_req *rq)
{
	event_free(rq->ev);
	free(rq);
}

/* Detach, call back once, free. */
static void
req_finish(struct proc_req *rq, int status, const struct proc_msg *m)
{
	req_detach(rq);
	rq->cb(rq->arg, status, m);
	req_free(rq);
}

static void
req_event(evutil_socket_t fd, short what, void *arg)
{
	struct proc_req *rq = arg;
	struct proc_client *pc = rq->pc;
	int status = rq->status;

	if (rq->in_table) {
		status = PROC_CLIENT_TIMEOUT;
		log_warn("event=%s-timeout id=%u after=%ums%s", pc->conf.role, rq->id,
		    pc->conf.timeout_ms, rq->queued ? " (never sent: the socket stayed full)" : "");
	}
	req_finish(rq, status, NULL);
}

static struct proc_req *
req_new(struct proc_client *pc, proc_reply_cb *cb, void *arg)
{
	struct proc_req *rq = xcalloc(1, sizeof(*rq));

	rq->pc = pc;
	rq->cb = cb;
	rq->arg = arg;
	rq->passfd = -1;
	rq->ev = evtimer_new(pc->base, req_event, rq);
	if (rq->ev == NULL)
		fatal("%s client: cannot create an event", pc->conf.role);
	pc->npending++;
	return rq;
}

/* Answer rq with `status` from the loop. */
static struct proc_req *
req_defer(struct proc_req *rq, int status)
{
	rq->status = status;
	list_add(&rq->pc->deferred, rq);
	event_active(rq->ev, EV_TIMEOUT, 0);
	return rq;
}

/* Into the table, with a fresh id and the deadline. */
static void
req_start(struct proc_client *pc, struct proc_req *rq)
{
	struct timeval tv;

	do
		rq->id = ++pc->next_id;
	while (rq->id == 0 || table_find(pc, rq->id) != NULL);
	rq->in_table = 1;
	table_add(pc, rq);
	if (pc->conf.timeout_ms > 0) {
		tv.tv_sec = pc->conf.timeout_ms / 1000;
		tv.tv_usec = (pc->conf.timeout_ms % 1000) * 1000;
		evtimer_add(rq->ev, &tv);
	}
}

/* A send the kernel refuses for now, with nothing wrong with the socket:
 * no memory (ENOBUFS), or too many descriptors in flight to the peer
 * (ETOOMANYREFS: more than RLIMIT_NOFILE sent and not yet received).
 * Waiting would not help soon: the request is answered BUSY. */
static int
send_refused(int e)
{
	return e == ENOBUFS || e == ETOOMANYREFS;
}

/* May one more request go to the socket now (conf.inflight_max)? */
static int
may_send(const struct proc_client *pc)
{
	return pc->conf.inflight_max == 0 || pc->ninflight < pc->conf.inflight_max;
}

/* Out of the table again: it will not be sent. */
static void
req_unstart(struct proc_client *pc, struct proc_req *rq)
{
	table_del(pc, rq);
	event_del(rq->ev);
}

/* Tell the peer that request `id` (sent) is cancelled.  Cancels wait for
 * room in order, ahead of queued requests (those were never sent, so no
 * cancel can concern them); beyond CANCELS_MAX waiting, one is lost and
 * counted: the peer then does the work and its reply is dropped. */
static void
cancel_send(struct proc_client *pc, uint32_t id)
{
	if (pc->ncancels == 0 &&
	    proc_trysend(pc->fd, pc->conf.cancel_type, id, NULL, 0, -1) == 0)
		return;
	if (pc->ncancels > 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
		if (pc->ncancels == CANCELS_MAX) {
			pc->cancels_lost++;
			log_debug("event=%s-cancel-lost id=%u (%d cancels wait for room)",
			    pc->conf.role, id, CANCELS_MAX);
			return;
		}
		pc->cancels[pc->ncancels++] = id;
		event_add(pc->wev, NULL);
	}
}

/* Send the cancels that wait, oldest first: 0 when none is left, 1 when
 * the socket is full again, -1 (errno) when it is broken.  One the kernel
 * refuses for now (send_refused) is lost rather than retried in a loop. */
static int
cancels_flush(struct proc_client *pc)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < pc->ncancels; i++) {
		if (proc_trysend(pc->fd, pc->conf.cancel_type, pc->cancels[i], NULL, 0, -1) == 0)
			continue;
		if (send_refused(errno)) {
			pc->cancels_lost++;
			continue;
		}
		rc = errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
		break;
	}
	memmove(pc->cancels, pc->cancels + i, (pc->ncancels - i) * sizeof(pc->cancels[0]));
	pc->ncancels -= i;
	return rc;
}

struct proc_req *
proc_client_call(struct proc_client *pc, unsigned int type, const void *payload, size_t len,
    int passfd, proc_reply_cb *cb, void *arg)
{
	struct proc_req *rq = req_new(pc, cb, arg);
	int status = PROC_CLIENT_BUSY;

	if (pc->dead || len > PROC_MAX_PAYLOAD) {
		if (passfd >= 0)
			close(passfd);
		return req_defer(rq, pc->dead ? PROC_CLIENT_DEAD : PROC_CLIENT_BADREQ);
	}
	req_start(pc, rq);
	if (pc->qhead == NULL && may_send(pc)) {
		if (proc_trysend(pc->fd, type, rq->id, payload, len, passfd) == 0) {
			pc->ninflight++;
			if (passfd >= 0)
				close(passfd);
			return rq;
		}
		if (!send_refused(errno) && errno != EAGAIN && errno != EWOULDBLOCK) {
			/* the socket is broken: the client dies from the loop */
			proc_client_kill(pc, errno == EPIPE || errno == ECONNRESET ? "reason=eof" :
			    "reason=send-error");
			status = PROC_CLIENT_DEAD;
			goto refuse;
		}
		if (send_refused(errno))
			goto refuse;
	}
	if (pc->nqueued >= pc->conf.queue_max)
		goto refuse;
	rq->type = type;
	rq->passfd = passfd;
	queue_add(pc, rq, payload, len);
	return rq;
refuse:
	req_unstart(pc, rq);
	if (passfd >= 0)
		close(passfd);
	return req_defer(rq, status);
}

struct proc_req *
proc_client_answer(struct proc_client *pc, int status, proc_reply_cb *cb, void *arg)
{
	return req_defer(req_new(pc, cb, arg), status);
}

void
proc_req_cancel(struct proc_req **rp)
{
	struct proc_client *pc;
	struct proc_req *rq;

	if (rp == NULL || (rq = *rp) == NULL)
		return;
	pc = rq->pc;
	/* sent: tell the peer, if it listens -- now, or once the socket has
	 * room (a send error is left for the reading side to find) */
	if (pc->conf.cancel_type != 0 && rq->in_table && !rq->queued && !pc->dead)
		cancel_send(pc, rq->id);
	req_detach(rq);
	req_free(rq);
	*rp = NULL;
}

void
proc_client_kill(struct proc_client *pc, const char *why)
{
	if (pc->dead || pc->dead_why != NULL)
		return;
	pc->dead_why = why;
	event_active(pc->dead_ev, EV_TIMEOUT, 0);
}

size_t
proc_client_pending(const struct proc_client *pc)
{
	return pc->npending;
}

size_t
proc_client_queued(const struct proc_client *pc)
{
	return pc->nqueued;
}

size_t
proc_client_room(const struct proc_client *pc)
{
	if (pc->dead || pc->dead_why != NULL || pc->nqueued >= pc->conf.queue_max)
		return 0;
	return pc->conf.queue_max - pc->nqueued;
}

uint32_t
proc_req_id(const struct proc_req *rq)
{
	return rq->in_table ? rq->id : 0;
}

int
proc_req_sent(const struct proc_req *rq)
{
	return rq->in_table && !rq->queued;
}

uint64_t
proc_client_dropped(const struct proc_client *pc)
{
	return pc->dropped;
}

size_t
proc_client_cancels_waiting(const struct proc_client *pc)
{
	return pc->ncancels;
}

int
proc_client_dead(const struct proc_client *pc)
{
	return pc->dead;
}

/* ---- the loop's side ---- */

static void
client_die(struct proc_client *pc, const char *why)
{
	struct proc_req *rq;

	if (pc->dead)
		return;
	pc->dead = 1;
	log_err("event=%s-lost %s: %s", pc->conf.role, why, pc->conf.lost);
	event_del(pc->rev);
	event_del(pc->wev);
	/* the requests the peer owed; those made from the callbacks below are
	 * answered from the loop (the client is dead by now) */
	while ((rq = pc->table.head) != NULL)
		req_finish(rq, PROC_CLIENT_DEAD, NULL);
	if (pc->conf.dead_cb != NULL)
		pc->conf.dead_cb(pc->conf.dead_arg, why);
}

static void
client_dead_later(evutil_socket_t fd, short what, void *arg)
{
	struct proc_client *pc = arg;

	client_die(pc, pc->dead_why);
}

static void
client_room(evutil_socket_t fd, short what, void *arg)
{
	struct proc_client *pc = arg;

	if (!pc->dead)
		pc->conf.room_cb(pc->conf.room_arg);
}

static void
client_read(evutil_socket_t fd, short what, void *arg)
{
	struct proc_client *pc = arg;
	struct proc_msg *m = pc->msg;
	struct proc_req *rq;
	int rc;

	rc = proc_recv(pc->fd, m, NULL);
	if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (rc == 0) {
		client_die(pc, "reason=eof");
		return;
	}
	if (rc < 0) {
		/* ECONNRESET: the peer closed with our requests unread */
		client_die(pc, errno == EPROTO ? "reason=protocol-error" :
		    errno == ECONNRESET ? "reason=eof" : "reason=read-error");
		return;
	}
	if (pc->conf.notice_type != 0 && m->type == pc->conf.notice_type && m->id == 0) {
		if (pc->conf.notice_cb(pc->conf.notice_arg, m) < 0)
			client_die(pc, "reason=malformed-notice");
		return;
	}
	if (m->type != pc->conf.reply_type || (pc->conf.check != NULL && pc->conf.check(m) < 0)) {
		client_die(pc, "reason=malformed-reply");
		return;
	}
	/* one sent request fewer in flight (one of an earlier worker's, on a
	 * replacement's socket, was never counted here) */
	if (pc->ninflight > 0)
		pc->ninflight--;
	if (pc->qhead != NULL && may_send(pc))
		event_add(pc->wev, NULL);
	if ((rq = table_find(pc, m->id)) == NULL || rq->queued) {
		/* cancelled, timed out, or meant for an earlier worker */
		pc->dropped++;
		log_debug("event=%s-reply-dropped id=%u (no request waits for it)", pc->conf.role,
		    m->id);
		return;
	}
	req_finish(rq, PROC_CLIENT_OK, m);
}

static void
client_write(evutil_socket_t fd, short what, void *arg)
{
	struct proc_client *pc = arg;
	struct proc_req *rq;
	int rc;

	if (pc->ncancels > 0 && (rc = cancels_flush(pc)) != 0) {
		if (rc < 0)
			client_die(pc, errno == EPIPE || errno == ECONNRESET ? "reason=eof" :
			    "reason=send-error");
		return;
	}
	if (pc->qhead == NULL)
		event_del(pc->wev);
	while ((rq = pc->qhead) != NULL) {
		if (!may_send(pc)) {
			/* written again when a reply arrives (client_read) */
			event_del(pc->wev);
			return;
		}
		if (proc_trysend(pc->fd, rq->type, rq->id, rq->payload, rq->len, rq->passfd) == 0) {
			pc->ninflight++;
			queue_del(pc, rq);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (send_refused(errno)) {
			req_finish(rq, PROC_CLIENT_BUSY, NULL);
			continue;
		}
		client_die(pc, errno == EPIPE || errno == ECONNRESET ? "reason=eof" :
		    "reason=send-error");
		return;
	}
}

struct proc_client *
proc_client_new(struct event_base *base, int fd, const struct proc_client_conf *conf)
{
	struct proc_client *pc = xcalloc(1, sizeof(*pc));
	int fl;

	pc->base = base;
	pc->fd = fd;
	pc->conf = *conf;
	pc->msg = xmalloc(sizeof(*pc->msg));
	randombytes_buf(&pc->next_id, sizeof(pc->next_id));
	if ((fl = fcntl(fd, F_GETFL)) >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	pc->rev = event_new(base, fd, EV_READ | EV_PERSIST, client_read, pc);
	pc->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, client_write, pc);
	pc->dead_ev = event_new(base, -1, 0, client_dead_later, pc);
	if (conf->room_cb != NULL)
		pc->room_ev = event_new(base, -1, 0, client_room, pc);
	if (pc->rev == NULL || pc->wev == NULL || pc->dead_ev == NULL ||
	    (conf->room_cb != NULL && pc->room_ev == NULL))
		fatal("%s client: cannot create its events", conf->role);
	event_add(pc->rev, NULL);
	return pc;
}

void
proc_client_free(struct proc_client **pcp)
{
	struct proc_client *pc;
	struct proc_req *rq;

	if (pcp == NULL || (pc = *pcp) == NULL)
		return;
	while ((rq = pc->table.head) != NULL || (rq = pc->deferred.head) != NULL) {
		req_detach(rq);
		req_free(rq);
	}
	event_free(pc->rev);
	event_free(pc->wev);
	event_free(pc->dead_ev);
	if (pc->room_ev != NULL)
		event_free(pc->room_ev);
	close(pc->fd);
	free(pc->msg);
	free(pc);
	*pcp = NULL;
}
