/* conn.c — non-blocking TCP + GnuTLS record layer on libevent. */
#include "conn.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <gnutls/gnutls.h>

#define CONN_READ_CHUNK   16384
/* one recv() for a whole TLS record: header, 2^14 + 256 octets, slack */
#define CONN_TLS_CHUNK    (5 + 16384 + 256 + 128)
#define CONN_CLOSE_WAIT   5             /* seconds to flush a final reply */

enum conn_tls_state { TLS_NONE, TLS_HANDSHAKE, TLS_UP };

/* Work for ev_defer: what happens on the next loop pass instead of inside
 * the owner's call (bits of conn->pending). */
#define DEFER_ERROR       0x01          /* deliver CONN_EV_ERROR */
#define DEFER_HANDSHAKE   0x02          /* take the first handshake step */
#define DEFER_EOF         0x04          /* deliver CONN_EV_EOF (after data) */
#define DEFER_CLOSE       0x08          /* closing: the output is written */

struct conn {
	struct event_base *base;
	int fd;
	conn_cb *cb;
	void *arg;
	struct evbuffer *in, *out;
	struct event *ev_read, *ev_write, *ev_timer, *ev_defer;
	struct event *ev_watch;         /* paused: the peer's FIN or reset (edge-triggered) */
	int hangup;                     /* the peer's FIN was told (CONN_EV_HANGUP) */
	int pause_woke;                 /* paused, and the read registration fired since */
	int write_blocked;              /* the last write met a full socket */
	unsigned pending;               /* DEFER_* bits, run by ev_defer */
	unsigned timeout;
	gnutls_session_t tls;
	enum conn_tls_state tls_state;
	int connecting;
	int paused;
	int want_flushed;
	size_t input_max;               /* conn_set_input_max(): stop reading at this */
	size_t lowat;           /* CONN_EV_FLUSHED when output <= lowat */
	int closing;            /* owner gone: flush then free */
	conn_closed_cb *closed_cb;      /* just before the descriptor is closed */
	void *closed_arg;
	int read_blocked_on_write;   /* TLS wants to write to progress a read */
	struct evbuffer *raw;           /* TLS: read from the socket, not yet asked for by GnuTLS */
	int rx_empty;                   /* TLS: a short read emptied the socket (conn_tls_pull) */
	char error[160];
	char peer[INET6_ADDRSTRLEN];
};

static void conn_on_read(evutil_socket_t, short, void *);
static void conn_on_write(evutil_socket_t, short, void *);
static void conn_on_timer(evutil_socket_t, short, void *);
static void conn_on_watch(evutil_socket_t, short, void *);
static void conn_update_events(struct conn *);
static void conn_on_defer(evutil_socket_t, short, void *);
static int conn_write_some(struct conn *);
static void conn_finish_close(struct conn *);

static void
conn_set_error(struct conn *c, const char *what, const char *detail)
{
	snprintf(c->error, sizeof(c->error), "%s: %s", what, detail);
}

/* Run `what` from the loop (see DEFER_*). */
static void
conn_defer(struct conn *c, unsigned what)
{
	c->pending |= what;
	event_active(c->ev_defer, EV_TIMEOUT, 0);
}

static void
conn_touch(struct conn *c)
{
	struct timeval tv;

	if (c->closing) {
		tv.tv_sec = CONN_CLOSE_WAIT;
		tv.tv_usec = 0;
		event_add(c->ev_timer, &tv);
	} else if (c->timeout > 0) {
		tv.tv_sec = c->timeout;
		tv.tv_usec = 0;
		event_add(c->ev_timer, &tv);
	} else {
		event_del(c->ev_timer);
	}
}

static void
conn_fill_peer(struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	strcpy(c->peer, "unknown");
	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->peer, sizeof(c->peer));
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, c->peer, sizeof(c->peer));
}

static struct conn *
conn_alloc(struct event_base *base, int fd, conn_cb *cb, void *arg)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->fd = fd;
	c->cb = cb;
	c->arg = arg;
	c->input_max = CONN_INPUT_MAX;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
	c->ev_write = event_new(base, fd, EV_WRITE, conn_on_write, c);
	c->ev_timer = evtimer_new(base, conn_on_timer, c);
	c->ev_defer = event_new(base, -1, 0, conn_on_defer, c);
	c->ev_watch = event_new(base, fd, EV_READ | EV_CLOSED | EV_ET | EV_PERSIST, conn_on_watch,
	    c);
	if (!c->in || !c->out || !c->ev_read || !c->ev_write || !c->ev_timer || !c->ev_defer ||
	    !c->ev_watch)
		fatal("conn: out of memory");
	return c;
}

struct conn *
conn_new(struct event_base *base, int fd, conn_cb *cb, void *arg)
{
	struct conn *c = conn_alloc(base, fd, cb, arg);

	/* non-blocking, close-on-exec and TCP_NODELAY came from accept4()
	 * and the listener (conn.h): no system call here */
	event_add(c->ev_read, NULL);
	return c;
}

struct conn *
conn_connect(struct event_base *base, const struct sockaddr *addr, unsigned addrlen,
    conn_cb *cb, void *arg)
{
	struct conn *c;
	int fd, one = 1;

	fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = conn_alloc(base, fd, cb, arg);
	if (addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, c->peer, sizeof(c->peer));
	else if (addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, c->peer, sizeof(c->peer));
	c->connecting = 1;
	if (connect(fd, addr, addrlen) != 0 && errno != EINPROGRESS) {
		/* report from the loop so that the caller sees one path */
		conn_set_error(c, "connect", strerror(errno));
		c->connecting = 0;
		conn_defer(c, DEFER_ERROR);
		return c;
	}
	event_add(c->ev_write, NULL);
	conn_touch(c);
	return c;
}

void
conn_set_cb(struct conn *c, conn_cb *cb, void *arg)
{
	c->cb = cb;
	c->arg = arg;
}

struct evbuffer *
conn_input(struct conn *c)
{
	return c->in;
}

struct evbuffer *
conn_output(struct conn *c)
{
	return c->out;
}

void *
conn_tls(struct conn *c)
{
	return c->tls_state == TLS_UP ? c->tls : NULL;
}

int
conn_is_tls(const struct conn *c)
{
	return c->tls_state == TLS_UP;
}

const char *
conn_error(const struct conn *c)
{
	return c->error[0] ? c->error : "unknown error";
}

const char *
conn_peer(struct conn *c)
{
	if (c->peer[0] == '\0')
		conn_fill_peer(c);
	return c->peer;
}

int
conn_fd(const struct conn *c)
{
	return c->fd;
}

int
conn_addr_key(const char *addr, unsigned v6prefix, char *out, size_t outlen)
{
	struct in6_addr a6;
	struct in_addr a4;
	char buf[INET6_ADDRSTRLEN];
	unsigned i, bits;

	if (inet_pton(AF_INET, addr, &a4) == 1) {
		inet_ntop(AF_INET, &a4, buf, sizeof(buf));
		snprintf(out, outlen, "%s", buf);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &a6) != 1) {
		snprintf(out, outlen, "%s", addr);
		return -1;
	}
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		/* an IPv4 client on a dual-stack socket counts as itself */
		inet_ntop(AF_INET, &a6.s6_addr[12], buf, sizeof(buf));
		snprintf(out, outlen, "%s", buf);
		return 0;
	}
	if (v6prefix >= 128) {
		inet_ntop(AF_INET6, &a6, buf, sizeof(buf));
		snprintf(out, outlen, "%s", buf);
		return 0;
	}
	for (i = 0; i < 16; i++) {
		bits = v6prefix > i * 8 ? v6prefix - i * 8 : 0;
		if (bits > 8)
			bits = 8;
		a6.s6_addr[i] &= (uint8_t)(0xff00u >> bits);
	}
	inet_ntop(AF_INET6, &a6, buf, sizeof(buf));
	snprintf(out, outlen, "%s/%u", buf, v6prefix);
	return 0;
}

void
conn_set_timeout(struct conn *c, unsigned seconds)
{
	c->timeout = seconds;
	conn_touch(c);
}

void
conn_set_input_max(struct conn *c, size_t max)
{
	int more = max > c->input_max;

	c->input_max = max < CONN_INPUT_MAX ? max : CONN_INPUT_MAX;
	if (more && !c->paused && !c->closing)
		conn_resume(c);         /* reads again, TLS's held bytes too */
}

void
conn_pause(struct conn *c)
{
	c->paused = 1;
	conn_update_events(c);
}

void
conn_resume(struct conn *c)
{
	c->paused = 0;
	c->pause_woke = 0;
	conn_update_events(c);
	/* TLS may hold decrypted bytes that no socket event will announce */
	if (c->tls_state == TLS_UP && gnutls_record_check_pending(c->tls) > 0)
		event_active(c->ev_read, EV_READ, 0);       /* c->raw: conn_update_events() */
}

void
conn_want_drained(struct conn *c, size_t lowat)
{
	c->want_flushed = 1;
	c->lowat = lowat;
	if (evbuffer_get_length(c->out) <= lowat)
		event_active(c->ev_write, EV_WRITE, 0);
}

void
conn_want_flushed(struct conn *c)
{
	conn_want_drained(c, 0);
}

/* Deliver an event to the owner.  Must be the last thing a handler does. */
static void
conn_emit(struct conn *c, enum conn_event ev)
{
	if (c->closing) {
		if (ev == CONN_EV_EOF || ev == CONN_EV_ERROR || ev == CONN_EV_TIMEOUT)
			conn_finish_close(c);
		return;
	}
	c->cb(c, ev, c->arg);
}

int
conn_watch_supported(struct event_base *base)
{
	int need = EV_FEATURE_EARLY_CLOSE | EV_FEATURE_ET;

	return (event_base_get_features(base) & need) == need;
}

/* Register what the state asks for.  The close watch is edge-triggered
 * and the other two are not: libevent cannot mix both on one descriptor,
 * so the watch is only ever registered alone, and every event that goes
 * is removed before any that comes is added.
 *
 * Each change of registration is a system call (epoll_ctl), so the
 * registrations change only when they must:
 * - output is written from the loop on the pass that queued it (one write
 *   for everything the owner queued in one callback); the write
 *   registration waits only for a socket that was found full;
 * - a pause keeps the read registration until it fires (bytes, the FIN or
 *   a reset came while paused: pause_woke); only then does the close
 *   watch take over, so that unread bytes wake the loop at most once.  A
 *   pause that ends before anything came (a client waiting for its reply)
 *   costs nothing. */
static void
conn_update_events(struct conn *c)
{
	int out = evbuffer_get_length(c->out) > 0;
	int want_read = !c->connecting && evbuffer_get_length(c->in) < c->input_max &&
	    (!c->paused || (!c->pause_woke && !c->hangup));
	int want_write = c->connecting || (out && c->write_blocked) || c->read_blocked_on_write;
	int want_watch;

	if (c->tls_state == TLS_HANDSHAKE) {
		want_read = !gnutls_record_get_direction(c->tls);
		want_write = !want_read;
	}
	if (c->closing) {
		want_read = 1;  /* to notice EOF */
		want_write = (out && c->write_blocked) || c->read_blocked_on_write;
	}
	want_watch = c->paused && !want_read && !want_write && !c->hangup && !c->closing &&
	    !c->connecting && c->tls_state != TLS_HANDSHAKE && conn_watch_supported(c->base);
	if (!want_watch)
		event_del(c->ev_watch);
	if (!want_read)
		event_del(c->ev_read);
	if (!want_write)
		event_del(c->ev_write);
	if (want_read)
		event_add(c->ev_read, NULL);
	if (want_write)
		event_add(c->ev_write, NULL);
	if (want_watch)
		event_add(c->ev_watch, NULL);
	if (out && !c->write_blocked && !c->connecting && c->tls_state != TLS_HANDSHAKE)
		event_active(c->ev_write, EV_WRITE, 0);
	/* bytes read ahead (conn_tls_pull()) that no socket event announces */
	if (want_read && c->raw != NULL && evbuffer_get_length(c->raw) > 0)
		event_active(c->ev_read, EV_READ, 0);
}

/* Reading is paused and the kernel says something about the socket:
 * EV_CLOSED is the peer's FIN (told once); a plain EV_READ is new bytes,
 * which stay where they are, or a reset (libevent reports EPOLLERR as
 * EV_READ | EV_WRITE, never as EV_CLOSED), which SO_ERROR tells apart
 * without reading. */
static void
conn_on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	socklen_t len = sizeof(int);
	int err = 0;

	if (!c->paused || c->closing || c->hangup)
		return;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
		conn_set_error(c, "read", strerror(err));
		c->hangup = 1;
		conn_update_events(c);
		conn_emit(c, CONN_EV_ERROR);
		return;
	}
	if (!(what & EV_CLOSED))
		return;
	c->hangup = 1;
	conn_update_events(c);
	conn_emit(c, CONN_EV_HANGUP);
}

static void
conn_handshake(struct conn *c)
{
	int r;

	r = gnutls_handshake(c->tls);
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
		conn_update_events(c);
		return;
	}
	if (r < 0) {
		conn_set_error(c, "TLS handshake", gnutls_strerror(r));
		c->tls_state = TLS_NONE;
		conn_update_events(c);
		conn_emit(c, CONN_EV_ERROR);
		return;
	}
	c->tls_state = TLS_UP;
	conn_touch(c);
	conn_update_events(c);
	conn_emit(c, CONN_EV_TLS_OK);
}

/* GnuTLS asks for a record's header, then for its body: two reads per
 * record, and a third for the next header that is not there yet.  This
 * pull reads whatever the socket holds at once (a whole record, or all of a
 * pipelined group) and hands it out as asked; the rest waits in c->raw.
 * A read shorter than asked means the socket is empty now: until the loop
 * runs a read or write handler again (conn_on_read(), conn_on_write()
 * clear rx_empty), GnuTLS is told EAGAIN without a system call.  That is
 * safe because every EAGAIN leaves the read registered (level-triggered)
 * unless the owner paused, and conn_update_events() wakes the reader for
 * what waits in c->raw. */
static ssize_t
conn_tls_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	static unsigned char chunk[CONN_TLS_CHUNK];     /* one loop: one user at a time */
	struct conn *c = p;
	ssize_t n;

	if (c->raw != NULL && evbuffer_get_length(c->raw) > 0)
		return evbuffer_remove(c->raw, buf, len);
	if (c->rx_empty) {
		gnutls_transport_set_errno(c->tls, EAGAIN);
		return -1;
	}
	if (len >= sizeof(chunk)) {
		n = recv(c->fd, buf, len, 0);
		if (n >= 0 && (size_t)n < len)
			c->rx_empty = 1;
	} else {
		n = recv(c->fd, chunk, sizeof(chunk), 0);
		if (n >= 0 && (size_t)n < sizeof(chunk))
			c->rx_empty = 1;
		if (n > 0 && (size_t)n > len) {
			if (c->raw == NULL && (c->raw = evbuffer_new()) == NULL)
				fatal("conn: out of memory");
			if (evbuffer_add(c->raw, chunk + len, (size_t)n - len) < 0)
				fatal("conn: out of memory");
			n = (ssize_t)len;
		}
		if (n > 0)
			memcpy(buf, chunk, (size_t)n);
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		c->rx_empty = errno == EAGAIN;
		gnutls_transport_set_errno(c->tls, errno);
	}
	return n;
}

/* GnuTLS's "is there something to read within ms": never waits (front's
 * loop does not); only asked with a timeout set, which tls.c never sets. */
static int
conn_tls_pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
	struct conn *c = p;
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	if (c->raw != NULL && evbuffer_get_length(c->raw) > 0)
		return 1;
	return poll(&pfd, 1, 0);
}

void
conn_start_tls(struct conn *c, void *session)
{
	/* the last plaintext reply (220 Ready to start TLS) goes first, as
	 * plaintext; what cannot be written now is the peer's problem (it
	 * reads before it starts its handshake) and fails it */
	if (evbuffer_get_length(c->out) > 0 && !c->connecting && conn_write_some(c) < 0)
		conn_defer(c, DEFER_ERROR);
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	c->write_blocked = 0;
	c->tls = session;
	/* reads through conn_tls_pull(), writes (GnuTLS's own, one sendmsg
	 * per flight or record) straight to the socket */
	gnutls_transport_set_ptr2(c->tls, c, (gnutls_transport_ptr_t)(intptr_t)c->fd);
	gnutls_transport_set_pull_function(c->tls, conn_tls_pull);
	gnutls_transport_set_pull_timeout_function(c->tls, conn_tls_pull_timeout);
	c->rx_empty = 0;
	c->tls_state = TLS_HANDSHAKE;
	/* CVE-2011-0411: nothing read before TLS may be taken as TLS-protected */
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	/* the first step may already fail or finish: take it from the loop */
	conn_update_events(c);
	conn_defer(c, DEFER_HANDSHAKE);
}

/* Read what is available into c->in.  Returns 1 data read, 0 nothing,
 * -1 error (c->error set), -2 EOF. */
static int
conn_read_some(struct conn *c)
{
	struct evbuffer_iovec v;
	ssize_t n;
	int got = 0;

	for (;;) {
		if (evbuffer_get_length(c->in) >= c->input_max)
			return got;
		if (evbuffer_reserve_space(c->in, CONN_READ_CHUNK, &v, 1) < 1)
			fatal("conn: out of memory");
		if (c->tls_state == TLS_UP) {
			n = gnutls_record_recv(c->tls, v.iov_base, CONN_READ_CHUNK);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
				c->read_blocked_on_write = gnutls_record_get_direction(c->tls);
				return got;
			}
			c->read_blocked_on_write = 0;
			if (n == GNUTLS_E_REHANDSHAKE) {
				conn_set_error(c, "TLS", "renegotiation refused");
				return -1;
			}
			if (n == GNUTLS_E_PREMATURE_TERMINATION)
				return -2;
			if (n < 0) {
				conn_set_error(c, "TLS read", gnutls_strerror((int)n));
				return -1;
			}
		} else {
			n = recv(c->fd, v.iov_base, CONN_READ_CHUNK, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return got;
			if (n < 0) {
				conn_set_error(c, "read", strerror(errno));
				return -1;
			}
		}
		if (n == 0)
			return got ? got : -2;
		v.iov_len = (size_t)n;
		evbuffer_commit_space(c->in, &v, 1);
		got = 1;
		if (c->tls_state != TLS_UP && (size_t)n < CONN_READ_CHUNK)
			return got;
	}
}

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	size_t before;
	int r;

	c->rx_empty = 0;

	if (c->closing) {
		char buf[4096];
		/* discard whatever comes; we only wait for the output to drain */
		r = c->tls_state == TLS_UP ? (int)gnutls_record_recv(c->tls, buf, sizeof(buf))
		    : (int)recv(c->fd, buf, sizeof(buf), 0);
		if (r == 0 || (r < 0 && r != GNUTLS_E_AGAIN && !(r == -1 && errno == EAGAIN)))
			conn_emit(c, CONN_EV_EOF);
		return;
	}
	if (c->tls_state == TLS_HANDSHAKE) {
		conn_handshake(c);
		return;
	}
	if (c->paused) {
		/* something came while paused (conn_update_events()): the
		 * close watch takes over, the bytes stay in the kernel */
		c->pause_woke = 1;
		conn_update_events(c);
		return;
	}
	before = evbuffer_get_length(c->in);
	r = conn_read_some(c);
	conn_update_events(c);
	if (r == -1) {
		if (evbuffer_get_length(c->in) > before) {
			/* records read before the error (a relay's 250, then a
			 * bad record or an alert): the owner sees them first;
			 * the error follows on the next loop pass */
			event_del(c->ev_read);
			conn_defer(c, DEFER_ERROR);
			conn_touch(c);
			conn_emit(c, CONN_EV_READ);
			return;
		}
		conn_emit(c, CONN_EV_ERROR);
		return;
	}
	if (r == -2) {
		event_del(c->ev_read);
		if (evbuffer_get_length(c->in) > 0 && !c->closing) {
			/* EOF after data: the owner sees its data first; EOF
			 * follows on the next loop pass (freeing in between is
			 * safe: conn_free() removes the deferred event) */
			conn_defer(c, DEFER_EOF);
			conn_emit(c, CONN_EV_READ);
			return;
		}
		conn_emit(c, CONN_EV_EOF);
		return;
	}
	if (r == 1) {
		conn_touch(c);
		conn_emit(c, CONN_EV_READ);
	}
}

/* Write from c->out.  Returns 0 progress or blocked (c->write_blocked
 * says which), -1 error. */
static int
conn_write_some(struct conn *c)
{
	c->write_blocked = 0;
	while (evbuffer_get_length(c->out) > 0) {
		size_t len = evbuffer_get_contiguous_space(c->out);
		ssize_t n;

		if (len > CONN_READ_CHUNK)
			len = CONN_READ_CHUNK;
		if (len < CONN_READ_CHUNK && evbuffer_get_length(c->out) > len)
			len = evbuffer_get_length(c->out) < CONN_READ_CHUNK ?
			    evbuffer_get_length(c->out) : CONN_READ_CHUNK;
		void *p = evbuffer_pullup(c->out, (ssize_t)len);
		if (c->tls_state == TLS_UP) {
			n = gnutls_record_send(c->tls, p, len);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
				c->write_blocked = 1;
				return 0;
			}
			if (n < 0) {
				conn_set_error(c, "TLS write", gnutls_strerror((int)n));
				return -1;
			}
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				c->write_blocked = 1;
				return 0;
			}
			if (n < 0) {
				conn_set_error(c, "write", strerror(errno));
				return -1;
			}
		}
		evbuffer_drain(c->out, (size_t)n);
	}
	return 0;
}

static void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	c->rx_empty = 0;

	if (c->closing && (c->connecting || c->tls_state == TLS_HANDSHAKE)) {
		conn_finish_close(c);   /* nothing can be written: just close */
		return;
	}
	if (c->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			conn_set_error(c, "connect", strerror(err ? err : errno));
			c->connecting = 0;
			conn_emit(c, CONN_EV_ERROR);
			return;
		}
		c->connecting = 0;
		conn_touch(c);
		conn_update_events(c);
		conn_emit(c, CONN_EV_CONNECTED);
		return;
	}
	if (c->tls_state == TLS_HANDSHAKE) {
		conn_handshake(c);
		return;
	}
	if (c->read_blocked_on_write) {
		c->read_blocked_on_write = 0;
		conn_on_read(fd, EV_READ, arg);
		return;
	}
	if (conn_write_some(c) < 0) {
		conn_update_events(c);
		conn_emit(c, CONN_EV_ERROR);
		return;
	}
	conn_touch(c);
	conn_update_events(c);
	if (c->closing) {
		if (evbuffer_get_length(c->out) == 0)
			conn_finish_close(c);
		return;
	}
	if (c->want_flushed && evbuffer_get_length(c->out) <= c->lowat) {
		c->want_flushed = 0;
		conn_emit(c, CONN_EV_FLUSHED);
	}
}

static void
conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	conn_set_error(c, "timeout", "no progress");
	conn_emit(c, CONN_EV_TIMEOUT);
}

/* Deferred work, one outcome per pass: an error ends everything, then the
 * first handshake step, then EOF; whatever is left runs on the next pass. */
static void
conn_on_defer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	unsigned bit;

	if (c->closing) {
		c->pending = 0;
		if (evbuffer_get_length(c->out) == 0 || c->tls_state == TLS_HANDSHAKE ||
		    c->connecting)
			conn_finish_close(c);
		return;
	}
	bit = (c->pending & DEFER_ERROR) ? DEFER_ERROR :
	    (c->pending & DEFER_HANDSHAKE) ? DEFER_HANDSHAKE : (c->pending & DEFER_EOF);
	c->pending &= ~bit;
	if (c->pending != 0)
		event_active(c->ev_defer, EV_TIMEOUT, 0);
	if (bit == DEFER_ERROR)
		conn_emit(c, CONN_EV_ERROR);
	else if (bit == DEFER_HANDSHAKE && c->tls_state == TLS_HANDSHAKE)
		conn_handshake(c);
	else if (bit == DEFER_EOF)
		conn_emit(c, CONN_EV_EOF);
}

void
conn_flush(struct conn *c)
{
	if (c->tls_state == TLS_HANDSHAKE || c->connecting || c->closing)
		return;
	/* written by conn_on_write() on this pass of the loop, together with
	 * whatever else the owner queues before it returns to the loop; a
	 * socket found full is waited for (conn_update_events()) */
	if (!c->write_blocked)
		event_active(c->ev_write, EV_WRITE, 0);
}

/* The end of a closing connection: tell the former owner, then close the
 * descriptor (from the loop: every caller is an event handler).  In this
 * order, so that a peer that sees the end (close_notify, FIN) and connects
 * again at once finds the connection no longer counted -- by any worker. */
static void
conn_finish_close(struct conn *c)
{
	if (c->closed_cb != NULL)
		c->closed_cb(c->closed_arg);
	conn_free(&c);
}

void
conn_close_after_flush(struct conn **cp, conn_closed_cb *closed, void *arg)
{
	struct conn *c = *cp;

	*cp = NULL;
	if (c == NULL)
		return;
	c->closing = 1;
	c->cb = NULL;
	c->closed_cb = closed;
	c->closed_arg = arg;
	c->want_flushed = 0;
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	conn_touch(c);
	if (c->tls_state == TLS_HANDSHAKE || c->connecting || conn_write_some(c) < 0)
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
	/* written (or nothing to write): the descriptor is closed on the next
	 * loop pass, and closed() told then */
	if (evbuffer_get_length(c->out) == 0)
		conn_defer(c, DEFER_CLOSE);
	conn_update_events(c);
}

void
conn_free(struct conn **cp)
{
	struct conn *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	if (c->tls != NULL) {
		/* no close_notify while GnuTLS holds a record the socket took
		 * only in part: gnutls_bye() would send the rest first, and the
		 * rest may be the end of a message cut off on purpose */
		if (c->tls_state == TLS_UP && !c->write_blocked)
			(void)gnutls_bye(c->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(c->tls);
	}
	event_free(c->ev_read);
	event_free(c->ev_write);
	event_free(c->ev_timer);
	event_free(c->ev_defer);
	event_free(c->ev_watch);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	if (c->raw != NULL)
		evbuffer_free(c->raw);
	close(c->fd);
	free(c);
}
