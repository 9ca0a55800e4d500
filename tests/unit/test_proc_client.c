/* test_proc_client.c — front's IPC client core against a scripted peer (this
 * test plays the child role on the other end of a real socketpair): replies
 * by id, stale and cancelled replies dropped, never a callback from inside
 * a call, the bounded outbound queue, deadlines, dying once, notices; and
 * starting a role (proc_spawn): READY, ERR, an early exit, no answer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "log.h"
#include "proc.h"
#include "proc_client.h"
#include "proc_spawn.h"

static struct proc_msg m;

struct got {
	int calls, status;
	char payload[64];
};

static void
on_reply(void *arg, int status, const struct proc_msg *rm)
{
	struct got *g = arg;

	g->calls++;
	g->status = status;
	g->payload[0] = '\0';
	if (rm != NULL)
		snprintf(g->payload, sizeof(g->payload), "%.*s", (int)rm->len,
		    (const char *)rm->payload);
}

static int dead_calls;
static char dead_why[64];

static void
on_dead(void *arg, const char *why)
{
	dead_calls++;
	snprintf(dead_why, sizeof(dead_why), "%s", why);
}

/* A reply payload must not start with 'X'. */
static int
check_no_x(const struct proc_msg *rm)
{
	return rm->len > 0 && rm->payload[0] == 'X' ? -1 : 0;
}

struct fixture {
	struct event_base *base;
	struct proc_client *pc;
	int peer;               /* the child's end */
};

/* Notices seen, in order ("n1,n2,"); one starting with 'X' is refused. */
static char notices[64];
static int notice_calls;

static int
on_notice(void *arg, const struct proc_msg *nm)
{
	size_t n = strlen(notices);

	notice_calls++;
	if (nm->len > 0 && nm->payload[0] == 'X')
		return -1;
	snprintf(notices + n, sizeof(notices) - n, "%.*s,", (int)nm->len,
	    (const char *)nm->payload);
	return 0;
}

/* conf.room_cb: counts its calls and the room it was told of. */
static int with_room, room_calls;
static size_t inflight_max;     /* conf.inflight_max of the next setup */
static size_t room_seen;
static struct proc_client *room_pc;

static void
on_room(void *arg)
{
	room_calls++;
	room_seen = proc_client_room(room_pc);
}

/* with_notices: PROC_AUDIT_STATE is a notice; cancel_type: conf.cancel_type;
 * with_room (global): conf.room_cb. */
static void
setup_conf(struct fixture *f, size_t queue_max, unsigned int timeout_ms, int with_notices,
    unsigned int cancel_type)
{
	struct proc_client_conf conf = {
		.role = "test",
		.lost = "the test peer is gone",
		.reply_type = PROC_SIGN_REP,
		.check = check_no_x,
		.queue_max = queue_max,
		.timeout_ms = timeout_ms,
		.dead_cb = on_dead,
		.dead_arg = NULL,
		.notice_type = with_notices ? PROC_AUDIT_STATE : 0,
		.notice_cb = with_notices ? on_notice : NULL,
		.cancel_type = cancel_type,
		.room_cb = with_room ? on_room : NULL,
		.inflight_max = inflight_max,
	};
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	f->base = event_base_new();
	f->pc = proc_client_new(f->base, sv[0], &conf);
	f->peer = sv[1];
	room_pc = f->pc;
	room_calls = 0;
	dead_calls = 0;
	dead_why[0] = '\0';
	notices[0] = '\0';
	notice_calls = 0;
}

static void
setup_with(struct fixture *f, size_t queue_max, unsigned int timeout_ms)
{
	setup_conf(f, queue_max, timeout_ms, 0, 0);
}

static void
teardown_fixture(struct fixture *f)
{
	proc_client_free(&f->pc);
	assert_null(f->pc);
	proc_client_free(&f->pc);
	if (f->peer >= 0)
		close(f->peer);
	event_base_free(f->base);
}

/* Run the loop until *flag >= want (bounded: 2000 rounds of at most 10 ms). */
static void
run_until(struct event_base *base, const int *flag, int want)
{
	struct timeval tv = { 0, 10000 };
	int i;

	for (i = 0; i < 2000 && *flag < want; i++) {
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	assert_true(*flag >= want);
}

/* The peer reads one request. */
static void
peer_recv(struct fixture *f, unsigned int type, int *fd_r)
{
	assert_int_equal(proc_recv(f->peer, &m, fd_r), 1);
	assert_int_equal(m.type, type);
}

static void
test_reply_by_id(void **state)
{
	struct fixture f;
	struct got a = { 0 }, b = { 0 };
	uint32_t ida, idb;

	setup_with(&f, 4, 0);
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "a", 1, -1, on_reply, &a));
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "b", 1, -1, on_reply, &b));
	assert_int_equal(proc_client_pending(f.pc), 2);
	peer_recv(&f, PROC_SIGN_REQ, NULL);
	ida = m.id;
	assert_memory_equal(m.payload, "a", 1);
	peer_recv(&f, PROC_SIGN_REQ, NULL);
	idb = m.id;
	assert_true(ida != 0 && idb != 0 && ida != idb);
	/* answered out of order: each reply finds its own request */
	assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, idb, "for b", 5, -1), 0);
	assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, ida, "for a", 5, -1), 0);
	assert_int_equal(a.calls + b.calls, 0);         /* never from inside a call */
	run_until(f.base, &a.calls, 1);
	run_until(f.base, &b.calls, 1);
	assert_int_equal(a.status, PROC_CLIENT_OK);
	assert_string_equal(a.payload, "for a");
	assert_string_equal(b.payload, "for b");
	assert_int_equal(proc_client_pending(f.pc), 0);
	assert_int_equal(proc_client_dropped(f.pc), 0);
	assert_int_equal(dead_calls, 0);
	teardown_fixture(&f);
}

/* Unknown ids (a stale answer meant for an earlier worker) and cancelled
 * requests' answers are dropped, counted, and nothing else happens. */
static void
test_stale_and_cancelled_dropped(void **state)
{
	struct fixture f;
	struct got a = { 0 }, c = { 0 };
	struct proc_req *rq;
	uint32_t ida, idc;

	setup_with(&f, 4, 0);
	rq = proc_client_call(f.pc, PROC_SIGN_REQ, "c", 1, -1, on_reply, &c);
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "a", 1, -1, on_reply, &a));
	peer_recv(&f, PROC_SIGN_REQ, NULL);
	idc = m.id;
	peer_recv(&f, PROC_SIGN_REQ, NULL);
	ida = m.id;
	proc_req_cancel(&rq);
	assert_null(rq);
	proc_req_cancel(&rq);
	assert_int_equal(proc_client_pending(f.pc), 1);
	assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, idc, "late", 4, -1), 0);
	assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, ida + 1000, "stale", 5, -1), 0);
	assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, 0, "zero", 4, -1), 0);
	assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, ida, "mine", 4, -1), 0);
	run_until(f.base, &a.calls, 1);
	assert_string_equal(a.payload, "mine");
	assert_int_equal(c.calls, 0);
	assert_int_equal(proc_client_dropped(f.pc), 3);
	assert_int_equal(dead_calls, 0);
	assert_false(proc_client_dead(f.pc));
	teardown_fixture(&f);
}

/* With a cancel type, cancelling a sent request tells the peer its id (no
 * payload); a request still queued is simply never sent; without one the
 * peer hears nothing. */
/* The client writes what it can, then the peer reads one message into m:
 * 0 once nothing more comes (100 ms). */
static int
peer_next(struct fixture *f)
{
	struct pollfd pfd = { .fd = f->peer, .events = POLLIN };

	event_base_loop(f->base, EVLOOP_NONBLOCK);
	if (poll(&pfd, 1, 100) != 1)
		return 0;
	assert_int_equal(proc_recv(f->peer, &m, NULL), 1);
	return 1;
}

static void
test_cancel_tells_peer(void **state)
{
	static char big[8192];
	struct fixture f;
	struct got a = { 0 }, b = { 0 }, q = { 0 }, fill = { 0 };
	struct proc_req *ra, *rq;
	struct pollfd pfd;
	uint32_t ida;
	int n = 0;

	setup_conf(&f, 4, 0, 0, PROC_AUTH_CANCEL);
	ra = proc_client_call(f.pc, PROC_SIGN_REQ, "a", 1, -1, on_reply, &a);
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "b", 1, -1, on_reply, &b));
	peer_recv(&f, PROC_SIGN_REQ, NULL);
	ida = m.id;
	peer_recv(&f, PROC_SIGN_REQ, NULL);
	proc_req_cancel(&ra);
	peer_recv(&f, PROC_AUTH_CANCEL, NULL);
	assert_int_equal(m.id, ida);
	assert_int_equal(m.len, 0);
	/* its answer, if the peer sends one anyway, is dropped */
	assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, ida, "late", 4, -1), 0);
	assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, m.id + 1, "for b", 5, -1), 0);
	run_until(f.base, &b.calls, 1);
	assert_int_equal(a.calls, 0);
	assert_int_equal(proc_client_dropped(f.pc), 1);
	/* a queued request: never sent, no cancel either */
	while (proc_client_queued(f.pc) == 0) {
		assert_true(++n < 4096);
		assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, big, sizeof(big), -1,
		    on_reply, &fill));
	}
	rq = proc_client_call(f.pc, PROC_SIGN_REQ, "q", 1, -1, on_reply, &q);
	assert_int_equal(proc_client_queued(f.pc), 2);
	proc_req_cancel(&rq);
	assert_int_equal(proc_client_queued(f.pc), 1);
	while (peer_next(&f)) {
		assert_int_equal(m.type, PROC_SIGN_REQ);
		assert_int_equal(m.len, sizeof(big));
	}
	assert_int_equal(proc_client_queued(f.pc), 0);
	teardown_fixture(&f);

	/* no cancel type: nothing follows a cancel */
	setup_with(&f, 4, 0);
	ra = proc_client_call(f.pc, PROC_SIGN_REQ, "a", 1, -1, on_reply, &a);
	peer_recv(&f, PROC_SIGN_REQ, NULL);
	proc_req_cancel(&ra);
	pfd.fd = f.peer;
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 0), 0);
	teardown_fixture(&f);
}

/* A cancel the full socket has no room for waits and goes out once the
 * peer reads, ahead of the requests queued behind it; the cancelled
 * request gets no callback. */
static void
test_cancel_waits_for_room(void **state)
{
	static char big[8192];
	struct fixture f;
	struct got a = { 0 }, fill = { 0 }, q = { 0 };
	struct proc_req *ra;
	uint32_t ida;
	int n = 0, sent = 0, cancels = 0, after = 0;

	setup_conf(&f, 4, 0, 0, PROC_AUTH_CANCEL);
	ra = proc_client_call(f.pc, PROC_SIGN_REQ, "a", 1, -1, on_reply, &a);
	assert_true(proc_req_sent(ra));
	ida = proc_req_id(ra);
	/* the socket fills: the next request waits in the queue */
	while (proc_client_queued(f.pc) == 0) {
		assert_true(++n < 4096);
		assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, big, sizeof(big), -1,
		    on_reply, &fill));
	}
	proc_req_cancel(&ra);
	assert_null(ra);
	assert_int_equal(proc_client_cancels_waiting(f.pc), 1);
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "q", 1, -1, on_reply, &q));
	/* the peer reads everything: the cancel comes after what was sent
	 * before it and before the queued requests */
	while (peer_next(&f)) {
		if (m.type == PROC_AUTH_CANCEL) {
			assert_int_equal(m.id, ida);
			assert_int_equal(m.len, 0);
			assert_int_equal(after, 0);
			cancels++;
		} else if (cancels == 0) {
			assert_int_equal(m.type, PROC_SIGN_REQ);
			sent++;
		} else {
			after++;
		}
	}
	assert_int_equal(cancels, 1);
	/* "a" and the n - 1 sent before the socket was full came first; the
	 * queued one and "q" after */
	assert_int_equal(sent, n);
	assert_int_equal(after, 2);
	assert_int_equal(proc_client_cancels_waiting(f.pc), 0);
	assert_int_equal(proc_client_queued(f.pc), 0);
	/* its answer, if the peer sends one anyway, is dropped */
	assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, ida, "late", 4, -1), 0);
	for (n = 0; n < 200 && proc_client_dropped(f.pc) == 0; n++) {
		event_base_loop(f.base, EVLOOP_NONBLOCK);
		(void)poll(NULL, 0, 10);
	}
	assert_int_equal(proc_client_dropped(f.pc), 1);
	assert_int_equal(a.calls, 0);
	teardown_fixture(&f);
}

/* The peer does not read: requests wait in the bounded queue, beyond it
 * they are answered BUSY from the loop; once the peer reads, the queued
 * ones are sent in order. */
static void
test_queue_and_busy(void **state)
{
	static char big[8192];
	struct fixture f;
	struct got g[4096], busy = { 0 };
	int n = 0, i, sent, w, r, pv[2];
	uint32_t last = 0;

	setup_with(&f, 3, 0);
	memset(g, 0, sizeof(g));
	memset(big, 'q', sizeof(big));
	/* fill the socket */
	while (proc_client_queued(f.pc) == 0) {
		assert_true(n < 4096);
		assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, big, sizeof(big), -1,
		    on_reply, &g[n]));
		n++;
	}
	sent = n - 1;
	/* two more wait (queue_max 3), one with a descriptor */
	assert_int_equal(pipe2(pv, O_CLOEXEC | O_NONBLOCK), 0);
	r = pv[0];
	w = pv[1];
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "fd", 2, w, on_reply, &g[n++]));
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "q", 1, -1, on_reply, &g[n++]));
	assert_int_equal(proc_client_queued(f.pc), 3);
	/* the fourth is refused, from the loop */
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "no", 2, -1, on_reply, &busy));
	assert_int_equal(busy.calls, 0);
	run_until(f.base, &busy.calls, 1);
	assert_int_equal(busy.status, PROC_CLIENT_BUSY);
	assert_int_equal(proc_client_pending(f.pc), (size_t)n);
	/* the peer reads everything: ids rise, the queued ones follow the
	 * sent ones, the descriptor arrives and leaves the client */
	for (i = 0; i < n; i++) {
		int fd = -1;

		event_base_loop(f.base, EVLOOP_NONBLOCK);
		assert_int_equal(proc_recv(f.peer, &m, &fd), 1);
		if (i > 0)
			assert_true(m.id == last + 1 || (last == UINT32_MAX && m.id == 1));
		last = m.id;
		if (i == sent + 1) {
			assert_int_equal(m.len, 2);
			assert_true(fd >= 0);
			close(fd);
		} else {
			assert_int_equal(fd, -1);
		}
		assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, m.id, "ok", 2, -1), 0);
	}
	{
		char c;
		/* every copy of the write end is closed: the client's too */
		close(w);
		assert_int_equal(read(r, &c, 1), 0);
		close(r);
	}
	for (i = 0; i < n; i++)
		run_until(f.base, &g[i].calls, 1);
	assert_int_equal(proc_client_queued(f.pc), 0);
	assert_int_equal(proc_client_pending(f.pc), 0);
	teardown_fixture(&f);
}

/* Room: proc_client_room() says how many more may queue; conf.room_cb is
 * called from the loop (never from inside a call) once the queue shrank,
 * whether by a cancel or by the socket taking what waited; a dying client
 * has no room. */
static void
test_room(void **state)
{
	static char big[8192];
	struct fixture f;
	struct got g[4096];
	struct proc_req *q1, *q2;
	int n = 0, i;

	with_room = 1;
	setup_with(&f, 3, 0);
	with_room = 0;
	memset(g, 0, sizeof(g));
	assert_int_equal(proc_client_room(f.pc), 3);
	while (proc_client_queued(f.pc) == 0) {
		assert_true(n < 4096);
		assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, big, sizeof(big), -1,
		    on_reply, &g[n]));
		n++;
	}
	assert_int_equal(proc_client_room(f.pc), 2);
	q1 = proc_client_call(f.pc, PROC_SIGN_REQ, "a", 1, -1, on_reply, &g[n++]);
	q2 = proc_client_call(f.pc, PROC_SIGN_REQ, "b", 1, -1, on_reply, &g[n++]);
	assert_int_equal(proc_client_room(f.pc), 0);
	for (i = 0; i < 5; i++)
		event_base_loop(f.base, EVLOOP_NONBLOCK);
	assert_int_equal(room_calls, 0);                /* nothing left the queue */
	proc_req_cancel(&q1);
	assert_int_equal(proc_client_room(f.pc), 1);
	assert_int_equal(room_calls, 0);                /* not from inside the cancel */
	run_until(f.base, &room_calls, 1);
	assert_int_equal(room_calls, 1);
	assert_int_equal(room_seen, 1);
	assert_int_equal(proc_req_sent(q2), 0);
	/* the peer reads: what waited is sent, and the room is told again */
	for (i = 0; i < n - 1; i++) {
		event_base_loop(f.base, EVLOOP_NONBLOCK);
		assert_int_equal(proc_recv(f.peer, &m, NULL), 1);
	}
	run_until(f.base, &room_calls, 2);
	assert_int_equal(proc_client_queued(f.pc), 0);
	assert_int_equal(proc_client_room(f.pc), 3);
	assert_int_equal(proc_req_sent(q2), 1);
	assert_true(proc_req_id(q2) != 0);
	proc_client_kill(f.pc, "reason=test");
	assert_int_equal(proc_client_room(f.pc), 0);    /* dying */
	run_until(f.base, &dead_calls, 1);
	assert_int_equal(proc_client_room(f.pc), 0);
	teardown_fixture(&f);
}

/* Nothing for the peer to read now. */
static int
peer_idle(struct fixture *f)
{
	struct pollfd p = { .fd = f->peer, .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

/* The peer answers request id with payload "ok". */
static void
peer_answer(struct fixture *f, uint32_t id)
{
	assert_int_equal(proc_trysend(f->peer, PROC_SIGN_REP, id, "ok", 2, -1), 0);
}

/* conf.inflight_max: at most that many sent and unanswered, cancelled ones
 * counting until their answer arrives; each answer lets one more go, from
 * the loop, in order. */
static void
test_inflight(void **state)
{
	struct fixture f;
	struct got g[5];
	struct proc_req *rq[5];
	uint32_t ids[5];
	int i;

	inflight_max = 2;
	setup_with(&f, 8, 0);
	inflight_max = 0;
	memset(g, 0, sizeof(g));
	for (i = 0; i < 5; i++)
		rq[i] = proc_client_call(f.pc, PROC_SIGN_REQ, "r", 1, -1, on_reply, &g[i]);
	assert_int_equal(proc_client_queued(f.pc), 3);
	for (i = 0; i < 5; i++)
		event_base_loop(f.base, EVLOOP_NONBLOCK);
	for (i = 0; i < 2; i++) {
		peer_recv(&f, PROC_SIGN_REQ, NULL);
		ids[i] = m.id;
	}
	assert_true(peer_idle(&f));                     /* two in flight: no third */
	/* cancelled, they still count: the peer holds them until it answers */
	proc_req_cancel(&rq[0]);
	proc_req_cancel(&rq[1]);
	for (i = 0; i < 5; i++)
		event_base_loop(f.base, EVLOOP_NONBLOCK);
	assert_true(peer_idle(&f));
	assert_int_equal(proc_client_queued(f.pc), 3);
	/* each answer (dropped: its request was cancelled) lets one more go */
	peer_answer(&f, ids[0]);
	for (i = 0; i < 5; i++)
		event_base_loop(f.base, EVLOOP_NONBLOCK);
	peer_recv(&f, PROC_SIGN_REQ, NULL);
	ids[2] = m.id;
	assert_true(peer_idle(&f));
	assert_int_equal(proc_req_sent(rq[2]), 1);
	assert_int_equal(proc_req_sent(rq[3]), 0);
	peer_answer(&f, ids[1]);
	peer_answer(&f, ids[2]);
	run_until(f.base, &g[2].calls, 1);
	assert_int_equal(g[2].status, PROC_CLIENT_OK);
	assert_string_equal(g[2].payload, "ok");
	for (i = 0; i < 5; i++)
		event_base_loop(f.base, EVLOOP_NONBLOCK);
	for (i = 3; i < 5; i++) {
		peer_recv(&f, PROC_SIGN_REQ, NULL);
		ids[i] = m.id;
	}
	assert_true(peer_idle(&f));
	assert_int_equal(proc_client_queued(f.pc), 0);
	peer_answer(&f, ids[3]);
	peer_answer(&f, ids[4]);
	run_until(f.base, &g[4].calls, 1);
	assert_int_equal(g[3].calls, 1);
	assert_int_equal(g[0].calls + g[1].calls, 0);   /* cancelled: never called back */
	assert_int_equal(proc_client_dropped(f.pc), 2);
	rq[2] = rq[3] = rq[4] = NULL;                   /* answered: freed by the client */
	teardown_fixture(&f);
}

/* queue_max 0: a full socket is BUSY at once (from the loop). */
static void
test_no_queue(void **state)
{
	static char big[8192];
	struct fixture f;
	struct got g = { 0 };
	int n = 0;

	setup_with(&f, 0, 0);
	for (;;) {
		memset(&g, 0, sizeof(g));
		assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, big, sizeof(big), -1,
		    on_reply, &g));
		event_base_loop(f.base, EVLOOP_NONBLOCK);
		if (g.calls > 0)
			break;
		assert_true(++n < 4096);
	}
	assert_int_equal(g.status, PROC_CLIENT_BUSY);
	assert_int_equal(proc_client_queued(f.pc), 0);
	assert_int_equal(proc_client_pending(f.pc), (size_t)n);
	teardown_fixture(&f);
}

/* Deadlines: answered TIMEOUT from the loop, a later reply is dropped, a
 * request still queued at its deadline is never sent. */
static void
test_deadline(void **state)
{
	static char big[8192];
	static struct got fill[4096];
	struct fixture f;
	struct got a = { 0 }, q = { 0 };
	int n = 0, pv[2];
	char c;

	setup_with(&f, 2, 50);
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "a", 1, -1, on_reply, &a));
	peer_recv(&f, PROC_SIGN_REQ, NULL);
	run_until(f.base, &a.calls, 1);
	assert_int_equal(a.status, PROC_CLIENT_TIMEOUT);
	assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, m.id, "late", 4, -1), 0);
	while (proc_client_dropped(f.pc) == 0)
		assert_int_equal(event_base_loop(f.base, EVLOOP_ONCE), 0);
	assert_int_equal(a.calls, 1);

	/* fill the socket (the last of these waits in the queue), then one
	 * more queued request with a descriptor */
	while (proc_client_queued(f.pc) == 0) {
		assert_true(n < 4096);
		assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, big, sizeof(big), -1,
		    on_reply, &fill[n]));
		n++;
	}
	assert_int_equal(pipe2(pv, O_CLOEXEC | O_NONBLOCK), 0);
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "q", 1, pv[1], on_reply, &q));
	run_until(f.base, &q.calls, 1);
	assert_int_equal(q.status, PROC_CLIENT_TIMEOUT);
	assert_int_equal(proc_client_queued(f.pc), 0);
	/* never sent: the descriptor is closed, and the peer finds only the
	 * requests that fitted */
	close(pv[1]);
	assert_int_equal(read(pv[0], &c, 1), 0);
	close(pv[0]);
	fcntl(f.peer, F_SETFL, O_NONBLOCK);
	while (proc_recv(f.peer, &m, NULL) == 1)
		assert_int_equal(m.len, sizeof(big));
	assert_int_equal(errno, EAGAIN);
	teardown_fixture(&f);
}

struct chain {
	struct proc_client *pc;
	struct got first, second;
	int inner_calls_at_return;
};

static void
on_first_then_call(void *arg, int status, const struct proc_msg *rm)
{
	struct chain *ch = arg;

	on_reply(&ch->first, status, rm);
	/* a request made from a callback of a dead client: not answered
	 * before this callback returns */
	assert_non_null(proc_client_call(ch->pc, PROC_SIGN_REQ, "x", 1, -1, on_reply,
	    &ch->second));
	ch->inner_calls_at_return = ch->second.calls;
}

/* The peer goes away: every pending request DEAD, dead_cb once, later
 * requests DEAD from the loop, dead_cb not again. */
static void
test_die_once(void **state)
{
	struct fixture f;
	struct chain ch;
	struct got b = { 0 }, later = { 0 };

	setup_with(&f, 4, 0);
	memset(&ch, 0, sizeof(ch));
	ch.pc = f.pc;
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "a", 1, -1, on_first_then_call,
	    &ch));
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "b", 1, -1, on_reply, &b));
	close(f.peer);
	f.peer = -1;
	run_until(f.base, &b.calls, 1);
	assert_int_equal(ch.first.status, PROC_CLIENT_DEAD);
	assert_int_equal(b.status, PROC_CLIENT_DEAD);
	assert_int_equal(dead_calls, 1);
	assert_string_equal(dead_why, "reason=eof");
	assert_true(proc_client_dead(f.pc));
	assert_int_equal(ch.inner_calls_at_return, 0);
	run_until(f.base, &ch.second.calls, 1);
	assert_int_equal(ch.second.status, PROC_CLIENT_DEAD);
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "c", 1, -1, on_reply, &later));
	assert_int_equal(later.calls, 0);
	run_until(f.base, &later.calls, 1);
	assert_int_equal(later.status, PROC_CLIENT_DEAD);
	assert_int_equal(dead_calls, 1);
	assert_int_equal(proc_client_pending(f.pc), 0);
	teardown_fixture(&f);
}

/* A reply of the wrong type, one the check refuses, a broken frame, or a
 * descriptor in a reply: the client dies. */
static void
test_malformed_kills(void **state)
{
	static const struct {
		unsigned int type;
		const char *payload;
		const char *why;
	} cases[] = {
		{ PROC_AUTH_REP, "ok", "reason=malformed-reply" },
		{ PROC_SIGN_REP, "Xbad", "reason=malformed-reply" },
		{ 0, NULL, "reason=protocol-error" },
		{ PROC_SIGN_REP, "fd", "reason=protocol-error" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fixture f;
		struct got a = { 0 };

		setup_with(&f, 4, 0);
		assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "a", 1, -1, on_reply, &a));
		peer_recv(&f, PROC_SIGN_REQ, NULL);
		if (cases[i].type == 0) {
			uint8_t raw[PROC_HDR_LEN] = { 9, PROC_SIGN_REP, 0, 0 };

			assert_int_equal(send(f.peer, raw, sizeof(raw), 0), (ssize_t)sizeof(raw));
		} else if (strcmp(cases[i].payload, "fd") == 0) {
			int pv[2];

			assert_int_equal(pipe(pv), 0);
			assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, m.id, "ok", 2, pv[0]), 0);
			close(pv[0]);
			close(pv[1]);
		} else {
			assert_int_equal(proc_send(f.peer, cases[i].type, m.id, cases[i].payload,
			    strlen(cases[i].payload), -1), 0);
		}
		run_until(f.base, &a.calls, 1);
		assert_int_equal(a.status, PROC_CLIENT_DEAD);
		assert_int_equal(dead_calls, 1);
		assert_string_equal(dead_why, cases[i].why);
		teardown_fixture(&f);
	}
}

/* A peer that speaks unasked (the recorder's state): messages of the notice
 * type with id 0 reach the owner in order, between replies, and leave the
 * requests alone; one the owner refuses, one of that type with an id, or
 * one a client without notices receives, kills the client. */
static void
test_notices(void **state)
{
	static const struct {
		int with_notices;
		uint32_t id;
		const char *payload;
		const char *why;
	} bad[] = {
		{ 1, 0, "Xbad", "reason=malformed-notice" },
		{ 1, 5, "n", "reason=malformed-reply" },
		{ 0, 0, "n", "reason=malformed-reply" },
	};
	struct fixture f;
	struct got a = { 0 };
	size_t i;

	setup_conf(&f, 4, 0, 1, 0);
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "a", 1, -1, on_reply, &a));
	peer_recv(&f, PROC_SIGN_REQ, NULL);
	assert_int_equal(proc_send(f.peer, PROC_AUDIT_STATE, 0, "n1", 2, -1), 0);
	assert_int_equal(proc_send(f.peer, PROC_SIGN_REP, m.id, "ra", 2, -1), 0);
	assert_int_equal(proc_send(f.peer, PROC_AUDIT_STATE, 0, "n2", 2, -1), 0);
	run_until(f.base, &notice_calls, 2);
	assert_string_equal(notices, "n1,n2,");
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, PROC_CLIENT_OK);
	assert_string_equal(a.payload, "ra");
	assert_int_equal(dead_calls, 0);
	assert_int_equal(proc_client_dropped(f.pc), 0);
	teardown_fixture(&f);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct got b = { 0 };

		setup_conf(&f, 4, 0, bad[i].with_notices, 0);
		assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "b", 1, -1, on_reply, &b));
		peer_recv(&f, PROC_SIGN_REQ, NULL);
		assert_int_equal(proc_send(f.peer, PROC_AUDIT_STATE, bad[i].id, bad[i].payload,
		    strlen(bad[i].payload), -1), 0);
		run_until(f.base, &b.calls, 1);
		assert_int_equal(b.status, PROC_CLIENT_DEAD);
		assert_int_equal(dead_calls, 1);
		assert_string_equal(dead_why, bad[i].why);
		assert_string_equal(notices, "");
		teardown_fixture(&f);
	}
}

/* proc_client_answer and proc_client_kill act from the loop only; an
 * oversized request is refused without reaching the peer. */
static void
test_answer_kill_badreq(void **state)
{
	static char huge[PROC_MAX_PAYLOAD + 1];
	struct fixture f;
	struct got a = { 0 }, b = { 0 }, c = { 0 };

	setup_with(&f, 4, 0);
	assert_non_null(proc_client_answer(f.pc, 7, on_reply, &a));
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, huge, sizeof(huge), -1, on_reply,
	    &b));
	assert_int_equal(a.calls + b.calls, 0);
	run_until(f.base, &b.calls, 1);
	run_until(f.base, &a.calls, 1);
	assert_int_equal(a.status, 7);
	assert_int_equal(b.status, PROC_CLIENT_BADREQ);
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "c", 1, -1, on_reply, &c));
	proc_client_kill(f.pc, "reason=test");
	assert_int_equal(dead_calls, 0);
	assert_int_equal(c.calls, 0);
	run_until(f.base, &c.calls, 1);
	assert_int_equal(c.status, PROC_CLIENT_DEAD);
	assert_int_equal(dead_calls, 1);
	assert_string_equal(dead_why, "reason=test");
	teardown_fixture(&f);
}

/* Freeing with requests pending and queued: no callback, descriptors closed. */
static void
test_free_pending(void **state)
{
	static char big[8192];
	struct fixture f;
	struct got g = { 0 };
	int n = 0, pv[2];
	char c;

	setup_with(&f, 2, 1000);
	while (proc_client_queued(f.pc) == 0) {
		assert_true(n++ < 4096);
		assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, big, sizeof(big), -1,
		    on_reply, &g));
	}
	assert_int_equal(pipe2(pv, O_CLOEXEC | O_NONBLOCK), 0);
	assert_non_null(proc_client_call(f.pc, PROC_SIGN_REQ, "q", 1, pv[1], on_reply, &g));
	assert_non_null(proc_client_answer(f.pc, 1, on_reply, &g));
	proc_client_free(&f.pc);
	close(pv[1]);
	assert_int_equal(read(pv[0], &c, 1), 0);
	close(pv[0]);
	event_base_loop(f.base, EVLOOP_NONBLOCK);
	assert_int_equal(g.calls, 0);
	teardown_fixture(&f);
}

/* ---- proc_spawn ---- */

static void
role_ready(void *arg, int ready_fd, const int *fds, size_t nfds)
{
	size_t i;

	proc_ready(ready_fd, (uint32_t)nfds, "ready", "\x01\x02", 2);
	/* echo one message on every socket, then exit when they close */
	for (i = 0; i < nfds; i++) {
		if (proc_recv(fds[i], &m, NULL) != 1)
			_exit(3);
		if (proc_send(fds[i], PROC_SIGN_REP, m.id, &i, sizeof(i), -1) < 0)
			_exit(4);
	}
	for (i = 0; i < nfds; i++)
		if (proc_recv(fds[i], &m, NULL) != 0)
			_exit(5);
	/* a descriptor of the parent's was not inherited */
	if (fcntl(*(const int *)arg, F_GETFD) != -1)
		_exit(6);
	_exit(0);
}

static void
role_fails(void *arg, int ready_fd, const int *fds, size_t nfds)
{
	proc_fail(ready_fd, "key /k has mode 0644; run chmod 600 /k");
}

static void
role_exits(void *arg, int ready_fd, const int *fds, size_t nfds)
{
	_exit(0);
}

/* as a seccomp filter kills a process (cmocka's handler taken off) */
static void
role_sigsys(void *arg, int ready_fd, const int *fds, size_t nfds)
{
	signal(SIGSYS, SIG_DFL);
	raise(SIGSYS);
	_exit(0);
}

static void
role_silent(void *arg, int ready_fd, const int *fds, size_t nfds)
{
	pause();
	_exit(0);
}

static int
refuse_ready(const uint8_t *p, size_t len, void *out)
{
	return -1;
}

static void
test_spawn(void **state)
{
	static int extra_fd;
	struct proc_role role = {
		.name = "tester", .loading = "testing", .nfds = 3, .main = role_ready,
		.arg = &extra_fd,
	};
	struct proc_reader r;
	char text[64], err[256];
	int fds[3], st;
	uint32_t count;
	uint8_t b1, b2;
	size_t i, got;
	pid_t pid;

	/* a descriptor the child must not inherit */
	extra_fd = dup(2);
	pid = proc_spawn(&role, 10, fds, &m, err, sizeof(err));
	if (pid < 0)
		fail_msg("%s", err);
	assert_int_equal(m.type, PROC_READY);
	assert_int_equal(proc_ready_decode(m.payload, m.len, &count, text, sizeof(text), &r), 0);
	assert_int_equal(count, 3);
	assert_string_equal(text, "ready");
	assert_int_equal(proc_get_u8(&r, &b1), 0);
	assert_int_equal(proc_get_u8(&r, &b2), 0);
	assert_int_equal(proc_reader_end(&r), 0);
	assert_int_equal(b1 + b2, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(proc_send(fds[i], PROC_SIGN_REQ, 40 + (uint32_t)i, NULL, 0, -1), 0);
		assert_int_equal(proc_recv(fds[i], &m, NULL), 1);
		assert_int_equal(m.id, 40 + i);
		memcpy(&got, m.payload, sizeof(got));
		assert_int_equal(got, i);       /* the sockets are in order */
		close(fds[i]);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(extra_fd);

	/* a READY the role's decoder refuses */
	role.ready = refuse_ready;
	assert_int_equal(proc_spawn(&role, 10, fds, &m, err, sizeof(err)), -1);
	assert_string_equal(err, "tester: malformed start-up message");
	for (i = 0; i < 3; i++)
		assert_int_equal(fds[i], -1);
	role.ready = NULL;
	role.main = role_fails;
	assert_int_equal(proc_spawn(&role, 10, fds, &m, err, sizeof(err)), -1);
	assert_string_equal(err, "key /k has mode 0644; run chmod 600 /k");
	for (i = 0; i < 3; i++)
		assert_int_equal(fds[i], -1);
	role.main = role_exits;
	assert_int_equal(proc_spawn(&role, 10, fds, &m, err, sizeof(err)), -1);
	assert_string_equal(err, "tester: exit status 0 during start-up (see the log lines above)");
	/* killed without a word: the parent says how */
	role.main = role_sigsys;
	assert_int_equal(proc_spawn(&role, 10, fds, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "tester: killed by signal 31 ("));
	assert_non_null(strstr(err, ") during start-up: a system call its seccomp filter does not "
	    "allow"));
	role.main = role_silent;
	assert_int_equal(proc_spawn(&role, 1, fds, &m, err, sizeof(err)), -1);
	assert_string_equal(err, "tester: no answer within 1 s while testing");
	role.nfds = 0;
	assert_int_equal(proc_spawn(&role, 1, fds, &m, err, sizeof(err)), -1);
	/* every child was reaped */
	assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_by_id),
		cmocka_unit_test(test_stale_and_cancelled_dropped),
		cmocka_unit_test(test_queue_and_busy),
		cmocka_unit_test(test_cancel_tells_peer),
		cmocka_unit_test(test_cancel_waits_for_room),
		cmocka_unit_test(test_no_queue),
		cmocka_unit_test(test_room),
		cmocka_unit_test(test_inflight),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_die_once),
		cmocka_unit_test(test_malformed_kills),
		cmocka_unit_test(test_answer_kill_badreq),
		cmocka_unit_test(test_notices),
		cmocka_unit_test(test_free_pending),
		cmocka_unit_test(test_spawn),
	};

	log_init("test", LOG_LVL_ERR + 1);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
