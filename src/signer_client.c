/* signer_client.c — front's client for the signer (through proc_client). */
#include "signer_client.h"

#include "config.h"
#include "dkim.h"
#include "log.h"
#include "metrics.h"
#include "proc.h"
#include "proc_client.h"
#include "signer.h"
#include "spool.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

const char *
signer_status_name(int status)
{
	switch (status) {
	case SIGNER_DEAD:	return "signer-dead";
	case SIGNER_BUSY:	return "signer-busy";
	case SIGNER_TIMEOUT:	return "signer-timeout";
	default:		return dkim_result_name((enum dkim_result)status);
	}
}

struct signer_req {
	struct signer_client *sc;
	struct proc_req *pr;            /* NULL while it waits in line */
	struct event *deadline;         /* NULL without one */
	signer_cb *cb;
	void *arg;
	/* the caller's, until it moves on (see signer_sign) */
	const char *prefix;
	size_t prefix_len;
	struct spool *sp;
	int waiting;                    /* in the line */
	struct signer_req *prev, *next; /* every request of the client, oldest first */
	struct signer_req *lnext;       /* the line */
};

struct signer_client {
	struct event_base *base;
	struct proc_client *pc;
	unsigned int timeout_ms;
	signer_dead_cb *dead_cb;
	void *dead_arg;
	struct signer_req *head, *tail;         /* every request whose callback is due */
	struct signer_req *lhead, *ltail;       /* the line, oldest first */
	size_t nwaiting;
};

/* A SIGN_REP: u32 status (an enum dkim_result), str headers. */
static int
sign_rep_check(const struct proc_msg *m)
{
	struct proc_reader r;
	const uint8_t *h;
	size_t hlen;
	uint32_t status;

	proc_reader_init(&r, m->payload, m->len);
	if (proc_get_u32(&r, &status) < 0 || proc_get_bytes(&r, &h, &hlen, PROC_MAX_PAYLOAD) < 0 ||
	    proc_reader_end(&r) < 0 || status > DKIM_RES_INTERNAL || memchr(h, '\0', hlen) != NULL)
		return -1;
	return 0;
}

/* ---- requests ---- */

static void
line_del(struct signer_client *sc, struct signer_req *sr)
{
	struct signer_req **pp, *prev = NULL;

	for (pp = &sc->lhead; *pp != sr; pp = &(*pp)->lnext)
		prev = *pp;
	*pp = sr->lnext;
	if (sc->ltail == sr)
		sc->ltail = prev;
	sr->lnext = NULL;
	sr->waiting = 0;
	sc->nwaiting--;
	metrics_gauge_add(MG_SIGNER_WAITING, -1);
}

static void
line_add(struct signer_client *sc, struct signer_req *sr)
{
	sr->waiting = 1;
	sr->lnext = NULL;
	if (sc->ltail != NULL)
		sc->ltail->lnext = sr;
	else
		sc->lhead = sr;
	sc->ltail = sr;
	sc->nwaiting++;
	metrics_gauge_add(MG_SIGNER_WAITING, 1);
}

/* Out of the line and the client's list, freed; its callback is no longer
 * due (its proc_req is the caller's business). */
static void
req_free(struct signer_req *sr)
{
	struct signer_client *sc = sr->sc;

	if (sr->waiting)
		line_del(sc, sr);
	if (sr->prev != NULL)
		sr->prev->next = sr->next;
	else
		sc->head = sr->next;
	if (sr->next != NULL)
		sr->next->prev = sr->prev;
	else
		sc->tail = sr->prev;
	if (sr->deadline != NULL)
		event_free(sr->deadline);
	metrics_gauge_add(MG_SIGNER_REQUESTS, -1);
	free(sr);
}

static void
sign_reply(void *arg, int status, const struct proc_msg *m)
{
	struct signer_req *sr = arg;
	signer_cb *cb = sr->cb;
	void *cbarg = sr->arg;
	struct proc_reader r;
	uint32_t st;
	char *headers = NULL;

	req_free(sr);
	switch (status) {
	case PROC_CLIENT_OK:
		/* checked by sign_rep_check */
		proc_reader_init(&r, m->payload, m->len);
		(void)proc_get_u32(&r, &st);
		(void)proc_get_str(&r, &headers, PROC_MAX_PAYLOAD);
		cb(cbarg, (int)st, st == DKIM_RES_OK ? headers : NULL);
		free(headers);
		return;
	case PROC_CLIENT_DEAD:
		cb(cbarg, SIGNER_DEAD, NULL);
		return;
	case PROC_CLIENT_BUSY:
		cb(cbarg, SIGNER_BUSY, NULL);
		return;
	case PROC_CLIENT_TIMEOUT:
		cb(cbarg, SIGNER_TIMEOUT, NULL);
		return;
	case PROC_CLIENT_BADREQ:
		cb(cbarg, DKIM_RES_INTERNAL, NULL);
		return;
	default:
		cb(cbarg, status, NULL);        /* signer_sign's own answer */
		return;
	}
}

/* The deadline passed, waiting in line or for the signer (from the loop). */
static void
sign_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct signer_req *sr = arg;
	signer_cb *cb = sr->cb;
	void *cbarg = sr->arg;

	if (sr->waiting)
		log_warn("event=signer-timeout id=- after=%ums (never sent: waited in line for "
		    "room in the signer's queue)", sr->sc->timeout_ms);
	else
		log_warn("event=signer-timeout id=%u after=%ums%s", proc_req_id(sr->pr),
		    sr->sc->timeout_ms, proc_req_sent(sr->pr) ? "" :
		    " (never sent: the socket stayed full)");
	/* a request sent already still reaches the signer; its answer is
	 * dropped by id */
	proc_req_cancel(&sr->pr);
	req_free(sr);
	cb(cbarg, SIGNER_TIMEOUT, NULL);
}

/* the signer takes every message front accepts ([limits] message-size),
 * with the header fields front adds (far less than SIGNER_PREFIX_MAX: a
 * HELO name cut to a few hundred octets, the peer, the hostname, a TLS
 * description, a date, a Message-ID; smtp_txn.c build_prefix) */
_Static_assert(CONFIG_MESSAGE_SIZE_MAX + SIGNER_PREFIX_MAX <= SIGNER_MSG_MAX, "front accepts "
    "larger messages than the signer takes");

/* Hand sr to proc_client with the spool itself, sealed: the signer reads
 * or maps it (signer.h), nothing is copied here (a spool still in memory, at most [limits]
 * memory-body octets, moves to its memfd first).  The descriptor sent is
 * a duplicate that proc_client closes once sent; the spool keeps its own
 * for the relay. */
static void
req_send(struct signer_client *sc, struct signer_req *sr)
{
	uint8_t buf[SIGNER_PREFIX_MAX + 16];
	struct proc_writer w;
	long len;
	int fd;

	if (sr->prefix_len > SIGNER_PREFIX_MAX) {
		log_err("signer: the header fields added to the message take %zu octets, more "
		    "than the %u a request holds", sr->prefix_len, SIGNER_PREFIX_MAX);
		sr->pr = proc_client_answer(sc->pc, DKIM_RES_INTERNAL, sign_reply, sr);
		return;
	}
	if ((fd = spool_seal(sr->sp)) < 0 || (fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		log_err("signer: cannot hand the message over for signing: %s", strerror(errno));
		sr->pr = proc_client_answer(sc->pc, DKIM_RES_INTERNAL, sign_reply, sr);
		return;
	}
	proc_writer_init(&w, buf, sizeof(buf));
	proc_put_u64(&w, spool_size(sr->sp));
	proc_put_bytes(&w, sr->prefix, sr->prefix_len);
	len = proc_writer_done(&w);
	/* the descriptor is the client's now: closed once sent */
	sr->pr = proc_client_call(sc->pc, PROC_SIGN_REQ, buf, (size_t)len, fd, sign_reply, sr);
}

/* The oldest waiting requests move on while the queue has room (from the
 * loop). */
static void
sign_room(void *arg)
{
	struct signer_client *sc = arg;
	struct signer_req *sr;

	while ((sr = sc->lhead) != NULL && proc_client_room(sc->pc) > 0) {
		line_del(sc, sr);
		req_send(sc, sr);
	}
}

static void
sign_dead(void *arg, const char *why)
{
	struct signer_client *sc = arg;
	struct signer_req *sr;

	/* those in line learn it from the loop, after those the signer owed */
	while ((sr = sc->lhead) != NULL) {
		line_del(sc, sr);
		sr->pr = proc_client_answer(sc->pc, SIGNER_DEAD, sign_reply, sr);
	}
	if (sc->dead_cb != NULL)
		sc->dead_cb(sc->dead_arg);
}

struct signer_client *
signer_client_new(struct event_base *base, int fd, unsigned int timeout_ms,
    signer_dead_cb *dead_cb, void *arg)
{
	struct signer_client *sc = xcalloc(1, sizeof(*sc));
	struct proc_client_conf conf = {
		.role = "signer",
		.lost = "the DKIM signer is gone; no message can be signed, failing closed",
		.reply_type = PROC_SIGN_REP,
		.check = sign_rep_check,
		.queue_max = SIGNER_QUEUE_MAX,
		.inflight_max = SIGNER_INFLIGHT_MAX,
		.timeout_ms = 0,        /* the deadline is ours: it counts the wait in line */
		.dead_cb = sign_dead,
		.dead_arg = sc,
		.room_cb = sign_room,
		.room_arg = sc,
	};

	sc->base = base;
	sc->timeout_ms = timeout_ms;
	sc->dead_cb = dead_cb;
	sc->dead_arg = arg;
	sc->pc = proc_client_new(base, fd, &conf);
	return sc;
}

void
signer_client_free(struct signer_client **scp)
{
	struct signer_client *sc;

	if (scp == NULL || (sc = *scp) == NULL)
		return;
	/* drops every request it holds without calling back */
	proc_client_free(&sc->pc);
	while (sc->head != NULL)
		req_free(sc->head);
	free(sc);
	*scp = NULL;
}

struct signer_req *
signer_sign(struct signer_client *sc, const char *prefix, size_t prefix_len,
    struct spool *sp, signer_cb *cb, void *arg)
{
	struct signer_req *sr = xcalloc(1, sizeof(*sr));
	struct timeval tv;

	sr->sc = sc;
	sr->cb = cb;
	sr->arg = arg;
	sr->prefix = prefix;
	sr->prefix_len = prefix_len;
	sr->sp = sp;
	sr->prev = sc->tail;
	if (sc->tail != NULL)
		sc->tail->next = sr;
	else
		sc->head = sr;
	sc->tail = sr;
	metrics_gauge_add(MG_SIGNER_REQUESTS, 1);
	if (proc_client_dead(sc->pc)) {
		sr->pr = proc_client_answer(sc->pc, SIGNER_DEAD, sign_reply, sr);
		return sr;
	}
	if (sc->timeout_ms > 0) {
		if ((sr->deadline = evtimer_new(sc->base, sign_deadline, sr)) == NULL)
			fatal("signer client: cannot create an event");
		tv.tv_sec = sc->timeout_ms / 1000;
		tv.tv_usec = (sc->timeout_ms % 1000) * 1000;
		evtimer_add(sr->deadline, &tv);
	}
	if (sc->lhead == NULL && proc_client_room(sc->pc) > 0)
		req_send(sc, sr);
	else
		line_add(sc, sr);
	return sr;
}

void
signer_cancel(struct signer_req **rp)
{
	struct signer_req *sr;

	if (rp == NULL || (sr = *rp) == NULL)
		return;
	proc_req_cancel(&sr->pr);
	req_free(sr);
	*rp = NULL;
}

size_t
signer_pending(const struct signer_client *sc)
{
	return proc_client_pending(sc->pc) + sc->nwaiting;
}

size_t
signer_waiting(const struct signer_client *sc)
{
	return sc->nwaiting;
}

uint64_t
signer_dropped(const struct signer_client *sc)
{
	return proc_client_dropped(sc->pc);
}
