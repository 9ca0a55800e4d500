/*
 * recorder_client.c — the recorder's clients: front's asynchronous client
 * and the parent's synchronous one, and the message codecs.
 */
#include "recorder.h"

#include "auditlog.h"
#include "log.h"
#include "proc.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <event2/event.h>

const char *
recorder_status_name(int status)
{
	switch (status) {
	case RECORDER_WRITTEN:	return "written";
	case RECORDER_QUEUED:	return "queued";
	case RECORDER_LOST:	return "lost";
	case RECORDER_REFUSED:	return "refused";
	case RECORDER_DEAD:	return "dead";
	case RECORDER_BUSY:	return "busy";
	case RECORDER_TIMEOUT:	return "timeout";
	default:		return "unknown";
	}
}

/* ---- codecs ---- */

long
recorder_rec_encode(uint8_t *buf, size_t cap, int type, const char *body, size_t len)
{
	struct proc_writer w;

	if (alog_type_name(type) == NULL || len > ALOG_BODY_MAX)
		return -1;
	proc_writer_init(&w, buf, cap);
	proc_put_u8(&w, (uint8_t)type);
	proc_put_bytes(&w, body, len);
	return proc_writer_done(&w);
}

int
recorder_rec_decode(const uint8_t *p, size_t len, int *type_r, const uint8_t **body_r,
    size_t *len_r)
{
	struct proc_reader r;
	uint8_t t;

	proc_reader_init(&r, p, len);
	if (proc_get_u8(&r, &t) < 0 || proc_get_bytes(&r, body_r, len_r, ALOG_BODY_MAX) < 0 ||
	    proc_reader_end(&r) < 0 || alog_type_name(t) == NULL)
		return -1;
	*type_r = t;
	return 0;
}

long
recorder_ack_encode(uint8_t *buf, size_t cap, int status, int writable, uint64_t seq)
{
	struct proc_writer w;

	if (status < 0 || status > RECORDER_STATUS_MAX)
		return -1;
	proc_writer_init(&w, buf, cap);
	proc_put_u8(&w, (uint8_t)status);
	proc_put_u8(&w, writable ? 1 : 0);
	proc_put_u64(&w, seq);
	return proc_writer_done(&w);
}

int
recorder_ack_decode(const uint8_t *p, size_t len, int *status_r, int *writable_r,
    uint64_t *seq_r)
{
	struct proc_reader r;
	uint8_t st, wr;

	proc_reader_init(&r, p, len);
	if (proc_get_u8(&r, &st) < 0 || proc_get_u8(&r, &wr) < 0 || proc_get_u64(&r, seq_r) < 0 ||
	    proc_reader_end(&r) < 0 || st > RECORDER_STATUS_MAX || wr > 1)
		return -1;
	*status_r = st;
	*writable_r = wr;
	return 0;
}

/* ---- the parent's records ---- */

int
recorder_send_sync(int fd, int type, const char *body, size_t len, int timeout_ms)
{
	static struct proc_msg m;
	static uint32_t next_id;
	uint8_t *buf = xmalloc(ALOG_BODY_MAX + 16);
	struct timespec t0, t1;
	struct pollfd pfd;
	uint64_t seq;
	uint32_t id = ++next_id;
	long n;
	int status, wr, left, rc;

	n = recorder_rec_encode(buf, ALOG_BODY_MAX + 16, type, body, len);
	rc = n < 0 ? RECORDER_REFUSED : proc_send(fd, PROC_AUDIT_REC, id, buf, (size_t)n, -1) < 0 ?
	    RECORDER_DEAD : RECORDER_TIMEOUT;
	free(buf);
	if (rc != RECORDER_TIMEOUT)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		left = timeout_ms - (int)((t1.tv_sec - t0.tv_sec) * 1000 +
		    (t1.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			return RECORDER_TIMEOUT;
		pfd.fd = fd;
		pfd.events = POLLIN;
		if ((rc = poll(&pfd, 1, left)) < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return RECORDER_TIMEOUT;
		if (proc_recv(fd, &m, NULL) <= 0)
			return RECORDER_DEAD;
		if (m.type == PROC_AUDIT_ACK && m.id == id &&
		    recorder_ack_decode(m.payload, m.len, &status, &wr, &seq) == 0)
			return status;
		/* state messages and stale acks */
	}
}

/* ---- front's client ---- */

struct recorder_req {
	struct recorder_client *rc;
	uint32_t id;
	recorder_cb *cb;
	void *arg;
	int status;			/* an answer given without the recorder */
	struct event *defer;
	struct timespec sent;
	struct recorder_req *next;
};

/* A frame waiting for room in the socket. */
struct outframe {
	struct outframe *next;
	size_t len;
	uint8_t data[];
};

struct recorder_client {
	struct event_base *base;
	int fd;
	struct event *ev_read, *ev_write, *ev_timer, *ev_dead;
	uint32_t next_id;
	struct recorder_req *head;	/* callbacks due, in send order */
	size_t npending;
	struct outframe *qhead, **qtail;
	size_t nq;
	int writable;			/* the recorder's last word */
	int failed;			/* one of ours was lost, busy or late since */
	int busy_logged;		/* the full queue was logged (once until it drains) */
	int dead;
	recorder_dead_cb *dead_cb;
	void *dead_arg;
};

static void
req_unlink(struct recorder_req *rq)
{
	struct recorder_req **pp;

	for (pp = &rq->rc->head; *pp != NULL; pp = &(*pp)->next)
		if (*pp == rq) {
			*pp = rq->next;
			rq->rc->npending--;
			return;
		}
}

static void
req_free(struct recorder_req *rq)
{
	if (rq->defer != NULL)
		event_free(rq->defer);
	free(rq);
}

static void
req_answer(struct recorder_req *rq, int status)
{
	req_unlink(rq);
	rq->cb(rq->arg, status);
	req_free(rq);
}

static void
req_answer_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct recorder_req *rq = arg;

	req_answer(rq, rq->status);
}

static void
req_answer_later(struct recorder_req *rq, int status)
{
	rq->status = status;
	rq->defer = event_new(rq->rc->base, -1, 0, req_answer_later_cb, rq);
	event_active(rq->defer, 0, 0);
}

static void
client_die(struct recorder_client *rc, const char *why)
{
	struct recorder_req *rq;

	if (rc->dead)
		return;
	rc->dead = 1;
	log_err("event=recorder-lost %s: the audit log recorder is gone; failing closed", why);
	event_del(rc->ev_read);
	event_del(rc->ev_write);
	event_del(rc->ev_timer);
	while ((rq = rc->head) != NULL)
		req_answer(rq, RECORDER_DEAD);
	if (rc->dead_cb != NULL)
		rc->dead_cb(rc->dead_arg);
}

static void
client_dead_later(evutil_socket_t fd, short what, void *arg)
{
	client_die(arg, "reason=send-error");
}

static void
client_read(evutil_socket_t fd, short what, void *arg)
{
	static struct proc_msg m;
	struct recorder_client *rc = arg;
	struct recorder_req *rq;
	uint64_t seq;
	int rv, status, wr;

	rv = proc_recv(rc->fd, &m, NULL);
	if (rv < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (rv <= 0) {
		client_die(rc, rv == 0 ? "reason=eof" : errno == EPROTO ?
		    "reason=protocol-error" : "reason=read-error");
		return;
	}
	if (m.type == PROC_AUDIT_STATE && m.len == 1 && m.payload[0] <= 1) {
		rc->writable = m.payload[0];
		if (rc->writable)
			rc->failed = 0;
		return;
	}
	if (m.type != PROC_AUDIT_ACK || recorder_ack_decode(m.payload, m.len, &status, &wr,
	    &seq) < 0) {
		client_die(rc, "reason=malformed-reply");
		return;
	}
	rc->writable = wr;
	if (status == RECORDER_WRITTEN)
		rc->failed = 0;
	else if (status == RECORDER_LOST || status == RECORDER_QUEUED)
		rc->failed = 1;
	/* an ack for a cancelled, timed-out or fire-and-forget record finds
	 * no entry */
	for (rq = rc->head; rq != NULL && (rq->id != m.id || rq->defer != NULL); rq = rq->next)
		;
	if (rq != NULL)
		req_answer(rq, status);
}

/* Send queued frames while the socket takes them. */
static void
client_write(evutil_socket_t fd, short what, void *arg)
{
	struct recorder_client *rc = arg;
	struct outframe *f;

	while ((f = rc->qhead) != NULL) {
		if (send(rc->fd, f->data, f->len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)f->len) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
				return;		/* EV_WRITE stays armed */
			client_die(rc, "reason=send-error");
			return;
		}
		rc->qhead = f->next;
		if (rc->qhead == NULL)
			rc->qtail = &rc->qhead;
		rc->nq--;
		free(f);
	}
	rc->busy_logged = 0;
	event_del(rc->ev_write);
}

static int
msec_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int)((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Once a second while acks are due: fail the ones overdue. */
static void
client_timer(evutil_socket_t fd, short what, void *arg)
{
	struct recorder_client *rc = arg;
	struct recorder_req *rq, *next;

	for (rq = rc->head; rq != NULL; rq = next) {
		next = rq->next;
		if (rq->defer == NULL && msec_since(&rq->sent) >= RECORDER_ACK_TIMEOUT * 1000) {
			log_err("event=recorder-timeout id=%u: no answer from the audit log recorder "
			    "within %d s", rq->id, RECORDER_ACK_TIMEOUT);
			rc->failed = 1;
			req_answer(rq, RECORDER_TIMEOUT);
		}
	}
}

struct recorder_client *
recorder_client_new(struct event_base *base, int fd, recorder_dead_cb *dead_cb, void *arg)
{
	struct recorder_client *rc = xcalloc(1, sizeof(*rc));
	struct timeval sec = { 1, 0 };
	int fl;

	rc->base = base;
	rc->fd = fd;
	rc->dead_cb = dead_cb;
	rc->dead_arg = arg;
	rc->writable = 1;
	rc->qtail = &rc->qhead;
	if ((fl = fcntl(fd, F_GETFL)) >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	rc->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, client_read, rc);
	rc->ev_write = event_new(base, fd, EV_WRITE | EV_PERSIST, client_write, rc);
	rc->ev_timer = event_new(base, -1, EV_PERSIST, client_timer, rc);
	rc->ev_dead = event_new(base, -1, 0, client_dead_later, rc);
	event_add(rc->ev_read, NULL);
	event_add(rc->ev_timer, &sec);
	return rc;
}

void
recorder_client_free(struct recorder_client **rcp)
{
	struct recorder_client *rc;
	struct recorder_req *rq;
	struct outframe *f;

	if (rcp == NULL || (rc = *rcp) == NULL)
		return;
	while ((rq = rc->head) != NULL) {
		req_unlink(rq);
		req_free(rq);
	}
	while ((f = rc->qhead) != NULL) {
		rc->qhead = f->next;
		free(f);
	}
	event_free(rc->ev_read);
	event_free(rc->ev_write);
	event_free(rc->ev_timer);
	event_free(rc->ev_dead);
	close(rc->fd);
	free(rc);
	*rcp = NULL;
}

/* Send one frame now, or queue it behind the ones waiting.  0, or -1 when
 * the queue is full. */
static int
client_send(struct recorder_client *rc, const uint8_t *frame, size_t len)
{
	struct outframe *f;

	if (rc->qhead == NULL) {
		if (send(rc->fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
			/* noticed by the loop, never inside this call */
			event_active(rc->ev_dead, 0, 0);
			return 0;
		}
	}
	if (rc->nq >= RECORDER_QUEUE_MAX)
		return -1;
	f = xmalloc(sizeof(*f) + len);
	f->next = NULL;
	f->len = len;
	memcpy(f->data, frame, len);
	*rc->qtail = f;
	rc->qtail = &f->next;
	rc->nq++;
	event_add(rc->ev_write, NULL);
	return 0;
}

struct recorder_req *
recorder_send(struct recorder_client *rc, int type, const char *body, size_t len,
    recorder_cb *cb, void *arg)
{
	struct recorder_req *rq = NULL, **pp;
	uint8_t *frame = xmalloc(PROC_MAX_MSG);
	uint32_t id;
	long n, fn = -1;
	int status = -100;

	if ((id = ++rc->next_id) == 0)
		id = ++rc->next_id;
	if (rc->dead)
		status = RECORDER_DEAD;
	else if ((n = recorder_rec_encode(frame + PROC_HDR_LEN, PROC_MAX_MSG - PROC_HDR_LEN, type,
	    body, len)) < 0 || (fn = proc_msg_encode(frame, PROC_MAX_MSG, PROC_AUDIT_REC, 0, id,
	    frame + PROC_HDR_LEN, (size_t)n)) < 0) {
		log_err("event=audit-record-too-large type=%s len=%zu", alog_type_name(type), len);
		status = RECORDER_REFUSED;
	} else if (client_send(rc, frame, (size_t)fn) < 0) {
		if (!rc->busy_logged)
			log_err("event=recorder-busy: %zu audit records wait for the recorder; "
			    "more are refused until it reads them", rc->nq);
		rc->busy_logged = 1;
		status = RECORDER_BUSY;
	}
	free(frame);
	if (status == RECORDER_BUSY || status == RECORDER_REFUSED)
		rc->failed = 1;
	if (cb == NULL)
		return NULL;
	rq = xcalloc(1, sizeof(*rq));
	rq->rc = rc;
	rq->id = id;
	rq->cb = cb;
	rq->arg = arg;
	clock_gettime(CLOCK_MONOTONIC, &rq->sent);
	for (pp = &rc->head; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = rq;
	rc->npending++;
	if (status != -100)
		req_answer_later(rq, status);
	return rq;
}

void
recorder_cancel(struct recorder_req **rp)
{
	struct recorder_req *rq;

	if (rp == NULL || (rq = *rp) == NULL)
		return;
	req_unlink(rq);
	req_free(rq);
	*rp = NULL;
}

int
recorder_writable(const struct recorder_client *rc)
{
	return !rc->dead && rc->writable && !rc->failed;
}

size_t
recorder_pending(const struct recorder_client *rc)
{
	return rc->npending;
}
