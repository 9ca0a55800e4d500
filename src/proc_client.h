/*
 * proc_client.h — front's side of a request/reply conversation with a child
 * role (keeper AUTH, signer, recorder) over one SOCK_SEQPACKET socket, on
 * front's libevent loop.  Runs in front only.  It never waits and never
 * calls back from inside a call that made a request.
 *
 * One client per socket.  Each request gets a fresh id (never 0, starting
 * at a random value, so that a replacement front worker that inherits the
 * socket does not take a stale answer meant for its predecessor as its
 * own); the peer echoes the id in its one reply (proc.h framing).
 *
 *  - Pending table: requests whose callback is still due, found by id.  A
 *    reply whose id is not there (cancelled, timed out, or stale from an
 *    earlier worker) is dropped and counted (proc_client_dropped).
 *  - Sending never waits: a request the socket has no room for waits in a
 *    bounded outbound queue (conf.queue_max requests) and is written when
 *    the socket becomes writable; with the queue full it is answered
 *    PROC_CLIENT_BUSY through the loop, never sent.  A caller that would
 *    rather wait than be refused asks proc_client_room() first and keeps
 *    its own line; conf.room_cb tells it, from the loop, when the queue
 *    has shrunk.
 *  - Deadline: with conf.timeout_ms, a request not answered in time is
 *    answered PROC_CLIENT_TIMEOUT through the loop (a queued one is then
 *    never sent); its reply, if it comes later, is dropped.
 *  - Cancel: a cancelled request that was sent can be followed by a message
 *    of a declared type (conf.cancel_type) with its id and no payload, so
 *    that the peer may skip work nobody waits for (the keeper's Argon2id
 *    run for a session that went away).  A cancel the socket has no room
 *    for waits (at most 1024 per client, then it is lost) and is sent,
 *    in order, ahead of the queued requests once there is room; its
 *    reply, if any, is dropped either way.
 *  - Notices: a peer may also speak unasked, with messages of one declared
 *    type (conf.notice_type) and id 0, an id no request ever has (the
 *    recorder's "the log is writable again").  Each is handed to
 *    conf.notice_cb from the loop, in order with the replies.
 *  - Die once: EOF, a read or send error, a broken frame, a reply of
 *    another type than conf.reply_type or one conf.check refuses, a notice
 *    conf.notice_cb refuses: the client is dead.  It logs
 *    "event=ROLE-lost reason=...", answers every request still due
 *    PROC_CLIENT_DEAD, then calls conf.dead_cb once; later requests are
 *    answered PROC_CLIENT_DEAD through the loop.  All of this happens from
 *    the loop (a send error found inside a call is acted on from an event).
 *
 * Callbacks (replies, notices, dead_cb) may make and cancel requests (also
 * on this client); they must not free the client (free it from the loop
 * later, e.g. after event_base_loopexit).
 */
#ifndef SUBPROXY_PROC_CLIENT_H
#define SUBPROXY_PROC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct proc_msg;
struct proc_client;
struct proc_req;

/* What a reply callback is told besides the reply. */
enum proc_client_status {
	PROC_CLIENT_OK = 0,             /* m is the reply (checked by conf.check) */
	PROC_CLIENT_DEAD = -1,          /* the peer is gone (see "die once") */
	PROC_CLIENT_BUSY = -2,          /* no room in the socket nor the outbound queue */
	PROC_CLIENT_TIMEOUT = -3,       /* conf.timeout_ms passed without a reply */
	PROC_CLIENT_BADREQ = -4         /* the request cannot be framed (payload too long) */
};

/* status: an enum proc_client_status value, or the status given to
 * proc_client_answer().  m is the reply on PROC_CLIENT_OK, else NULL; it is
 * valid only during the call. */
typedef void proc_reply_cb(void *arg, int status, const struct proc_msg *m);

/* A reply's payload: 0 if well-formed, -1 if not (the client then dies). */
typedef int proc_reply_check(const struct proc_msg *m);

/* why: "reason=eof", "reason=protocol-error", ... */
typedef void proc_dead_cb(void *arg, const char *why);

/* A notice (m->type == conf.notice_type, m->id == 0; m valid only during
 * the call): 0, or -1 if its payload is malformed (the client then dies). */
typedef int proc_notice_cb(void *arg, const struct proc_msg *m);

/* The outbound queue shrank (a queued request was sent, cancelled, timed
 * out or refused): called from the loop, once for any number of such
 * events since the last call, never after the client died. */
typedef void proc_room_cb(void *arg);

struct proc_client_conf {
	const char *role;               /* "signer": event=signer-lost, ... */
	const char *lost;               /* sentence logged when it dies: what stops working */
	unsigned int reply_type;        /* the only message type the peer may send */
	proc_reply_check *check;        /* NULL: any payload of that type */
	size_t queue_max;               /* requests waiting for room; 0: none wait (BUSY) */
	size_t inflight_max;            /* sent and not yet answered, counting cancelled and
	                                 * timed-out ones until their reply arrives; beyond,
	                                 * requests wait in the queue; 0: no bound.  Only for
	                                 * a peer that answers every request (no cancel_type) */
	unsigned int timeout_ms;        /* deadline per request; 0: none */
	proc_dead_cb *dead_cb;          /* may be NULL */
	void *dead_arg;
	unsigned int cancel_type;       /* 0: a cancel tells the peer nothing */
	unsigned int notice_type;       /* 0: the peer only replies */
	proc_notice_cb *notice_cb;      /* with notice_type */
	void *notice_arg;
	proc_room_cb *room_cb;          /* NULL: nobody waits for room */
	void *room_arg;
};

/* A client on fd (made non-blocking; ownership taken: closed by
 * proc_client_free).  conf is copied; its strings must outlive the client. */
struct proc_client *proc_client_new(struct event_base *base, int fd,
    const struct proc_client_conf *conf);

/* Drop every request without calling back (queued ones are never sent),
 * close the socket, free; *pcp = NULL.  NULL is a no-op. */
void proc_client_free(struct proc_client **pcp);

/*
 * Send a request: message `type` with len payload octets (copied only if
 * it must wait in the queue, and wiped when done with) and, if passfd >= 0,
 * that descriptor, whose ownership passes to the client (closed once sent
 * or dropped).  cb is called exactly once, from the loop, unless the
 * request is cancelled first.  Returns a cookie for proc_req_cancel().
 */
struct proc_req *proc_client_call(struct proc_client *pc, unsigned int type, const void *payload,
    size_t len, int passfd, proc_reply_cb *cb, void *arg);

/* A request that is not sent: cb gets `status` (any value the caller
 * chooses; m NULL) from the loop.  For refusals decided before asking. */
struct proc_req *proc_client_answer(struct proc_client *pc, int status, proc_reply_cb *cb,
    void *arg);

/* Cancel: cb will not be called; a request already sent still reaches the
 * peer (its reply is dropped; with conf.cancel_type the peer is told, see
 * above), a queued one is never sent.  *rp = NULL; NULL is a no-op. */
void proc_req_cancel(struct proc_req **rp);

/* Make the client die from the loop, as if the peer had gone away (for a
 * fault its owner found elsewhere, e.g. on another socket to the same
 * peer).  why: as for dead_cb; a string that outlives the client. */
void proc_client_kill(struct proc_client *pc, const char *why);

/* Requests whose callback is still due. */
size_t proc_client_pending(const struct proc_client *pc);

/* Requests waiting in the outbound queue. */
size_t proc_client_queued(const struct proc_client *pc);

/* Requests proc_client_call() would take now without answering
 * PROC_CLIENT_BUSY for want of room (queue_max minus the queued ones; 0
 * once the client died or is dying).  The kernel may still refuse a send
 * for want of memory or descriptors in flight (ENOBUFS, ETOOMANYREFS):
 * those are answered PROC_CLIENT_BUSY whatever this said. */
size_t proc_client_room(const struct proc_client *pc);

/* The request's id (0: an answer decided without the peer) and whether it
 * went out (0: still in the outbound queue, or never sent); for logs. */
uint32_t proc_req_id(const struct proc_req *rq);
int proc_req_sent(const struct proc_req *rq);

/* Replies dropped because no pending request had their id. */
uint64_t proc_client_dropped(const struct proc_client *pc);

/* Cancels waiting for room in the socket. */
size_t proc_client_cancels_waiting(const struct proc_client *pc);

/* 1 once the client died. */
int proc_client_dead(const struct proc_client *pc);

#endif
