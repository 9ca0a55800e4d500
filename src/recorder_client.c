/*
 * recorder_client.c — the recorder's clients: front's asynchronous client
 * and the parent's synchronous one, and the message codecs.
 */
#include "recorder.h"

#include "auditlog.h"
#include "log.h"
#include "proc.h"
#include "proc_client.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

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

/* ---- front's client (through proc_client) ---- */

/* A record whose callback is due (cb NULL once cancelled); records sent
 * without one have none. */
struct recorder_req {
	struct recorder_client *rc;
	struct proc_req *pr;
	recorder_cb *cb;
	void *arg;
	struct recorder_req *prev, *next;	/* rc->reqs */
};

struct recorder_client {
	struct proc_client *pc;
	struct recorder_req *reqs;	/* freed with the client */
	int writable;			/* the recorder's last word */
	int failed;			/* one of ours was lost, busy or late since */
	int busy_logged;		/* the full queue was logged (once until it drains) */
	size_t bulk;			/* bulk records waiting for their answer */
	recorder_dead_cb *dead_cb;
	void *dead_arg;
};

static void
req_unlink(struct recorder_req *rq)
{
	if (rq->prev != NULL)
		rq->prev->next = rq->next;
	else
		rq->rc->reqs = rq->next;
	if (rq->next != NULL)
		rq->next->prev = rq->prev;
}

/* An ACK: checked here, so that a malformed one kills the client. */
static int
ack_check(const struct proc_msg *m)
{
	int status, wr;
	uint64_t seq;

	return recorder_ack_decode(m->payload, m->len, &status, &wr, &seq);
}

/* PROC_AUDIT_STATE: u8 writable. */
static int
state_notice(void *arg, const struct proc_msg *m)
{
	struct recorder_client *rc = arg;

	if (m->len != 1 || m->payload[0] > 1)
		return -1;
	rc->writable = m->payload[0];
	if (rc->writable)
		rc->failed = 0;
	return 0;
}

/* What a record's answer says about the log; the status for its callback. */
static int
note(struct recorder_client *rc, int status, const struct proc_msg *m)
{
	uint64_t seq;
	int st, wr;

	switch (status) {
	case PROC_CLIENT_OK:
		(void)recorder_ack_decode(m->payload, m->len, &st, &wr, &seq);	/* ack_check */
		rc->writable = wr;
		if (st == RECORDER_WRITTEN)
			rc->failed = 0;
		else if (st == RECORDER_LOST || st == RECORDER_QUEUED)
			rc->failed = 1;
		if (proc_client_queued(rc->pc) == 0)
			rc->busy_logged = 0;
		return st;
	case PROC_CLIENT_DEAD:
		return RECORDER_DEAD;
	case PROC_CLIENT_BUSY:
		if (!rc->busy_logged)
			log_err("event=recorder-busy: %zu audit records wait for the recorder; "
			    "more are refused until it reads them", proc_client_queued(rc->pc));
		rc->busy_logged = 1;
		rc->failed = 1;
		return RECORDER_BUSY;
	case PROC_CLIENT_TIMEOUT:
		rc->failed = 1;
		return RECORDER_TIMEOUT;
	case PROC_CLIENT_BADREQ:
		rc->failed = 1;
		return RECORDER_REFUSED;
	default:
		return status;		/* recorder_send's own answer */
	}
}

static void
rec_noted(void *arg, int status, const struct proc_msg *m)
{
	(void)note(arg, status, m);
}

static void
rec_bulk_noted(void *arg, int status, const struct proc_msg *m)
{
	struct recorder_client *rc = arg;

	rc->bulk--;
	(void)note(rc, status, m);
}

static void
rec_reply(void *arg, int status, const struct proc_msg *m)
{
	struct recorder_req *rq = arg;
	recorder_cb *cb = rq->cb;
	void *cbarg = rq->arg;

	status = note(rq->rc, status, m);
	req_unlink(rq);
	free(rq);
	if (cb != NULL)
		cb(cbarg, status);      /* NULL: cancelled (recorder_cancel()) */
}

static void
rec_dead(void *arg, const char *why)
{
	struct recorder_client *rc = arg;

	if (rc->dead_cb != NULL)
		rc->dead_cb(rc->dead_arg);
}

struct recorder_client *
recorder_client_new(struct event_base *base, int fd, recorder_dead_cb *dead_cb, void *arg)
{
	struct recorder_client *rc = xcalloc(1, sizeof(*rc));
	struct proc_client_conf conf = {
		.role = "recorder",
		.lost = "the audit log recorder is gone; failing closed",
		.reply_type = PROC_AUDIT_ACK,
		.check = ack_check,
		.queue_max = RECORDER_QUEUE_MAX,
		.timeout_ms = RECORDER_ACK_TIMEOUT * 1000,
		.dead_cb = rec_dead,
		.dead_arg = rc,
		.notice_type = PROC_AUDIT_STATE,
		.notice_cb = state_notice,
		.notice_arg = rc,
	};

	rc->writable = 1;
	rc->dead_cb = dead_cb;
	rc->dead_arg = arg;
	rc->pc = proc_client_new(base, fd, &conf);
	return rc;
}

void
recorder_client_free(struct recorder_client **rcp)
{
	struct recorder_client *rc;
	struct recorder_req *rq;

	if (rcp == NULL || (rc = *rcp) == NULL)
		return;
	proc_client_free(&rc->pc);	/* no callback any more */
	while ((rq = rc->reqs) != NULL) {
		rc->reqs = rq->next;
		free(rq);
	}
	free(rc);
	*rcp = NULL;
}

/* The frame of a record into buf (PROC_MAX_PAYLOAD octets); -1 (logged,
 * and the log counts as not written) when it is too long. */
static long
encode(struct recorder_client *rc, uint8_t *buf, int type, const char *body, size_t len)
{
	long n;

	if ((n = recorder_rec_encode(buf, PROC_MAX_PAYLOAD, type, body, len)) < 0) {
		log_err("event=audit-record-too-large type=%s len=%zu", alog_type_name(type), len);
		rc->failed = 1;
	}
	return n;
}

struct recorder_req *
recorder_send(struct recorder_client *rc, int type, const char *body, size_t len,
    recorder_cb *cb, void *arg)
{
	struct recorder_req *rq = NULL;
	uint8_t *buf = xmalloc(PROC_MAX_PAYLOAD);
	long n = encode(rc, buf, type, body, len);

	if (cb != NULL) {
		rq = xcalloc(1, sizeof(*rq));
		rq->rc = rc;
		rq->cb = cb;
		rq->arg = arg;
		if ((rq->next = rc->reqs) != NULL)
			rq->next->prev = rq;
		rc->reqs = rq;
	}
	if (n < 0) {
		if (rq != NULL)
			rq->pr = proc_client_answer(rc->pc, RECORDER_REFUSED, rec_reply, rq);
	} else if (rq != NULL) {
		rq->pr = proc_client_call(rc->pc, PROC_AUDIT_REC, buf, (size_t)n, -1, rec_reply, rq);
	} else {
		/* nobody waits, but the answer still says whether the log is written */
		(void)proc_client_call(rc->pc, PROC_AUDIT_REC, buf, (size_t)n, -1, rec_noted, rc);
	}
	free(buf);
	return rq;
}

int
recorder_bulk_room(const struct recorder_client *rc)
{
	return rc->bulk < RECORDER_BULK_MAX;
}

void
recorder_send_bulk(struct recorder_client *rc, int type, const char *body, size_t len)
{
	uint8_t *buf = xmalloc(PROC_MAX_PAYLOAD);
	long n = encode(rc, buf, type, body, len);

	if (n >= 0) {
		rc->bulk++;
		(void)proc_client_call(rc->pc, PROC_AUDIT_REC, buf, (size_t)n, -1, rec_bulk_noted,
		    rc);
	}
	free(buf);
}

void
recorder_cancel(struct recorder_req **rp)
{
	struct recorder_req *rq;

	if (rp == NULL || (rq = *rp) == NULL)
		return;
	/* only the callback goes: the record itself still goes to the log,
	 * from front's queue too, and its answer is noted as for a record
	 * sent without one (a relayed message keeps its record when its
	 * client has gone meanwhile) */
	rq->cb = NULL;
	rq->arg = NULL;
	*rp = NULL;
}

int
recorder_writable(const struct recorder_client *rc)
{
	return !proc_client_dead(rc->pc) && rc->writable && !rc->failed;
}

size_t
recorder_pending(const struct recorder_client *rc)
{
	return proc_client_pending(rc->pc);
}
