/* test_conn.c — conn's re-entrancy contract on a real libevent loop (no
 * callback from inside a call the owner made), the close notification,
 * output low-water marks, a paused connection seeing its peer's FIN and
 * reset over real TCP without reading (and without spinning), TLS input
 * read ahead delivered without a socket event to announce it, conn_free()
 * never finishing a TLS record the socket took in part, records read
 * before a TLS error delivered before it, and the
 * per-address key (IPv6 prefixes). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <gnutls/gnutls.h>

#include "conn.h"

struct seen {
	int calls;
	enum conn_event first, last;
	int in_call;            /* set while the test is inside a conn_* call */
	int during_call;        /* a callback came while in_call was set */
	int closed;
	int peer;               /* > 0: closed_cb looks whether this end saw the close */
	int peer_saw_end;
};

static void
record(struct conn *c, enum conn_event ev, void *arg)
{
	struct seen *s = arg;

	if (s->calls++ == 0)
		s->first = ev;
	s->last = ev;
	if (s->in_call)
		s->during_call = 1;
}

static void
closed_cb(void *arg)
{
	struct seen *s = arg;

	s->closed++;
	if (s->in_call)
		s->during_call = 1;
	if (s->peer > 0) {
		struct pollfd pfd = { .fd = s->peer, .events = POLLRDHUP };

		s->peer_saw_end = poll(&pfd, 1, 0) == 1 &&
		    (pfd.revents & (POLLRDHUP | POLLHUP)) != 0;
	}
}

/* Run the loop until cond or 200 passes. */
#define RUN_UNTIL(base, cond) do { \
	int n_; \
	for (n_ = 0; n_ < 200 && !(cond); n_++) \
		event_base_loop((base), EVLOOP_ONCE | EVLOOP_NONBLOCK); \
} while (0)

/* The same over TCP, where segments take their time: up to 2 s. */
#define RUN_UNTIL_SLOW(base, cond) do { \
	int n_; \
	for (n_ = 0; n_ < 2000 && !(cond); n_++) { \
		event_base_loop((base), EVLOOP_ONCE | EVLOOP_NONBLOCK); \
		if (!(cond)) \
			usleep(1000); \
	} \
} while (0)

/* Nothing came inside the call; the loop brings CONN_EV_ERROR first. */
static void
expect_error_from_loop(struct event_base *base, struct seen *s, struct conn **cp)
{
	assert_int_equal(s->calls, 0);
	RUN_UNTIL(base, s->calls > 0);
	assert_int_equal(s->first, CONN_EV_ERROR);
	assert_false(s->during_call);
	conn_free(cp);
}

static void
test_start_tls_failure_comes_from_the_loop(void **state)
{
	struct event_base *base = event_base_new();
	gnutls_certificate_credentials_t cred;
	gnutls_session_t tls;
	struct seen s;
	struct conn *c;
	int sv[2];

	memset(&s, 0, sizeof(s));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);           /* the peer is gone: the first step fails */
	assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
	assert_int_equal(gnutls_init(&tls, GNUTLS_CLIENT), 0);
	gnutls_set_default_priority(tls);
	gnutls_credentials_set(tls, GNUTLS_CRD_CERTIFICATE, cred);
	c = conn_new(base, sv[0], record, &s);
	s.in_call = 1;
	conn_start_tls(c, tls);
	s.in_call = 0;
	expect_error_from_loop(base, &s, &c);
	gnutls_certificate_free_credentials(cred);
	event_base_free(base);
}

static void
test_connect_failure_comes_from_the_loop(void **state)
{
	struct event_base *base = event_base_new();
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct seen s;
	struct conn *c;
	int holder = socket(AF_INET, SOCK_STREAM, 0);

	/* a bound, not listening port: connect is refused */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(holder, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(holder, (struct sockaddr *)&sin, &len), 0);
	memset(&s, 0, sizeof(s));
	s.in_call = 1;
	c = conn_connect(base, (struct sockaddr *)&sin, sizeof(sin), record, &s);
	s.in_call = 0;
	assert_non_null(c);
	expect_error_from_loop(base, &s, &c);
	close(holder);
	event_base_free(base);
}

static void
test_close_after_flush_tells_from_the_loop(void **state)
{
	struct event_base *base = event_base_new();
	struct seen s;
	struct conn *c;
	char buf[64];
	int sv[2];

	memset(&s, 0, sizeof(s));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	c = conn_new(base, sv[0], record, &s);
	s.peer = sv[1];
	evbuffer_add(conn_output(c), "221 bye\r\n", 9);
	s.in_call = 1;
	conn_close_after_flush(&c, closed_cb, &s);
	s.in_call = 0;
	assert_null(c);
	assert_int_equal(s.closed, 0);         /* the descriptor is still open */
	RUN_UNTIL(base, s.closed > 0);
	assert_int_equal(s.closed, 1);
	/* the owner was told before the peer could see the end (it stops
	 * counting the connection before the client can connect again) */
	assert_false(s.peer_saw_end);
	assert_int_equal(s.calls, 0);          /* the owner's callback is gone */
	assert_false(s.during_call);
	assert_int_equal(read(sv[1], buf, sizeof(buf)), 9);
	assert_int_equal(read(sv[1], buf, sizeof(buf)), 0);    /* closed */
	close(sv[1]);
	event_base_free(base);
}

/* The peer reads nothing: FLUSHED comes once the output drained to the
 * mark, not before. */
static void
test_want_drained(void **state)
{
	struct event_base *base = event_base_new();
	static char big[1 << 20];
	struct seen s;
	struct conn *c;
	char sink[65536];
	int sv[2], guard = 0;

	memset(&s, 0, sizeof(s));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	c = conn_new(base, sv[0], record, &s);
	conn_pause(c);
	evbuffer_add(conn_output(c), big, sizeof(big));
	conn_flush(c);
	assert_true(evbuffer_get_length(conn_output(c)) > 16384);
	s.in_call = 1;
	conn_want_drained(c, 16384);
	s.in_call = 0;
	RUN_UNTIL(base, 0);
	assert_int_equal(s.calls, 0);
	while (s.calls == 0 && guard++ < 1000) {
		assert_true(read(sv[1], sink, sizeof(sink)) > 0);
		RUN_UNTIL(base, s.calls > 0);
	}
	assert_int_equal(s.last, CONN_EV_FLUSHED);
	assert_true(evbuffer_get_length(conn_output(c)) <= 16384);
	assert_false(s.during_call);
	conn_free(&c);
	close(sv[1]);
	event_base_free(base);
}

/* A connected TCP pair on loopback: *srv (accepted, for conn) and *cli. */
static void
tcp_pair(int *srv, int *cli)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(setsockopt(l, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
	*cli = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(*cli, (struct sockaddr *)&sin, sizeof(sin)), 0);
	*srv = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);   /* as front's listener */
	assert_true(*srv >= 0);
	/* conn_new() sets nothing: the listener's TCP_NODELAY is inherited */
	assert_int_equal(getsockopt(*srv, IPPROTO_TCP, TCP_NODELAY, &one, &len), 0);
	assert_int_equal(one, 1);
	close(l);
}

/* A conn on the accepted end of a new TCP pair, its events in *s. */
static struct conn *
tcp_conn(struct event_base *base, struct seen *s, int *fd, int *cli)
{
	memset(s, 0, sizeof(*s));
	tcp_pair(fd, cli);
	return conn_new(base, *fd, record, s);
}

/* Octets the kernel holds unread on fd. */
static int
unread(int fd)
{
	int n = -1;

	assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

static void
guard_fired(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* The loop has nothing to do for the connection: after the passes that
 * deliver what is already due, one blocking pass ends only by a guard
 * timer.  A level-triggered registration of the unread bytes (or of the
 * FIN) would wake the loop at once, again and again: it would spin. */
static void
expect_quiet(struct event_base *base, struct seen *s)
{
	struct timeval tv = { 0, 50 * 1000 };
	struct event *guard;
	int fired = 0, calls = s->calls;

	RUN_UNTIL(base, 0);
	assert_int_equal(s->calls, calls);
	guard = evtimer_new(base, guard_fired, &fired);
	evtimer_add(guard, &tv);
	event_base_loop(base, EVLOOP_ONCE);
	assert_true(fired);
	assert_int_equal(s->calls, calls);
	event_free(guard);
}

/* Paused: the client's FIN is told once, from the loop, and nothing is
 * read; the client's bytes stay in the kernel.  Resumed: they come, then
 * EOF (a half-closed client is still served what it sent). */
static void
test_paused_sees_fin(void **state)
{
	struct event_base *base = event_base_new();
	struct seen s;
	struct conn *c;
	int fd, cli;

	assert_true(conn_watch_supported(base));
	c = tcp_conn(base, &s, &fd, &cli);
	s.in_call = 1;
	conn_pause(c);
	s.in_call = 0;
	assert_int_equal(write(cli, "AUTH PLAIN x\r\n", 14), 14);
	/* bytes alone: nothing to tell, and no spinning over them */
	expect_quiet(base, &s);
	assert_int_equal(shutdown(cli, SHUT_WR), 0);
	RUN_UNTIL(base, s.calls > 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.first, CONN_EV_HANGUP);
	assert_false(s.during_call);
	assert_int_equal(evbuffer_get_length(conn_input(c)), 0);
	assert_int_equal(unread(fd), 14);
	/* told once: the FIN and the bytes stay, the loop stays quiet */
	expect_quiet(base, &s);
	conn_resume(c);
	RUN_UNTIL(base, s.last == CONN_EV_EOF);
	assert_int_equal(s.last, CONN_EV_EOF);
	assert_int_equal(evbuffer_get_length(conn_input(c)), 14);
	conn_free(&c);
	close(cli);
	event_base_free(base);
}

/* A FIN that came before the pause, unread, is told as well. */
static void
test_fin_before_pause(void **state)
{
	struct event_base *base = event_base_new();
	struct seen s;
	struct conn *c;
	int fd, cli;

	c = tcp_conn(base, &s, &fd, &cli);
	assert_int_equal(write(cli, "QUIT\r\n", 6), 6);
	assert_int_equal(shutdown(cli, SHUT_WR), 0);
	conn_pause(c);          /* before the loop read anything */
	RUN_UNTIL(base, s.calls > 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.first, CONN_EV_HANGUP);
	assert_int_equal(unread(fd), 6);
	conn_free(&c);
	close(cli);
	event_base_free(base);
}

/* Paused: a reset (a client that closes with our replies unread) is an
 * error, told from the loop, and nothing spins over it. */
static void
test_paused_sees_reset(void **state)
{
	struct event_base *base = event_base_new();
	struct linger lg = { 1, 0 };
	struct seen s;
	struct conn *c;
	int fd, cli;

	c = tcp_conn(base, &s, &fd, &cli);
	conn_pause(c);
	assert_int_equal(write(cli, "AUTH PLAIN x\r\n", 14), 14);
	expect_quiet(base, &s);
	assert_int_equal(setsockopt(cli, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	close(cli);             /* RST */
	RUN_UNTIL(base, s.calls > 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.first, CONN_EV_ERROR);
	assert_non_null(strstr(conn_error(c), "reset"));
	conn_free(&c);
	event_base_free(base);
}

/* A loop without EV_FEATURE_EARLY_CLOSE (poll): nothing is told while
 * paused, and nothing spins (no level-triggered read of the unread bytes);
 * resumed, the bytes and the EOF come as before. */
static void
test_no_watch_without_the_feature(void **state)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;
	struct seen s;
	struct conn *c;
	int fd, cli;

	event_config_avoid_method(cfg, "epoll");
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	assert_non_null(base);
	assert_false(conn_watch_supported(base));
	c = tcp_conn(base, &s, &fd, &cli);
	conn_pause(c);
	assert_int_equal(write(cli, "QUIT\r\n", 6), 6);
	assert_int_equal(shutdown(cli, SHUT_WR), 0);
	expect_quiet(base, &s);
	assert_int_equal(unread(fd), 6);
	conn_resume(c);
	RUN_UNTIL(base, s.last == CONN_EV_EOF);
	assert_int_equal(s.first, CONN_EV_READ);
	conn_free(&c);
	close(cli);
	event_base_free(base);
}

/* ---- TLS: conn reads ahead (one recv for what the socket holds) ---- */

static const gnutls_datum_t psk_key = { (unsigned char *)"0123456789abcdef", 16 };
static const char psk_prio[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+ECDHE-PSK:+PSK";

static int
psk_lookup(gnutls_session_t s, const char *user, gnutls_datum_t *key_r)
{
	key_r->data = gnutls_malloc(psk_key.size);
	key_r->size = psk_key.size;
	memcpy(key_r->data, psk_key.data, psk_key.size);
	return 0;
}

/* The owner's view: events and, at each READ, all the input it holds. */
struct tls_seen {
	struct seen s;
	int tls_ok;
	char in[256];
	size_t inlen;
};

static void
tls_record(struct conn *c, enum conn_event ev, void *arg)
{
	struct tls_seen *t = arg;
	struct evbuffer *in = conn_input(c);
	size_t n = evbuffer_get_length(in);

	record(c, ev, &t->s);
	if (ev == CONN_EV_TLS_OK)
		t->tls_ok = 1;
	if (ev == CONN_EV_READ && n <= sizeof(t->in) - t->inlen) {
		evbuffer_remove(in, t->in + t->inlen, n);
		t->inlen += n;
	}
}

/* A TLS 1.3 (PSK) pair over connected sockets sv (a socketpair unless
 * given): conn on sv[0] as the server (its events in *t), the test's
 * GnuTLS client *cs on sv[1]; the handshake is not run yet. */
static struct conn *
psk_pair(struct event_base *base, struct tls_seen *t, int sv[2], gnutls_session_t *cs,
    gnutls_psk_server_credentials_t *scred, gnutls_psk_client_credentials_t *ccred)
{
	gnutls_session_t ss;
	struct conn *c;

	memset(t, 0, sizeof(*t));
	if (sv[0] < 0)
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(gnutls_psk_allocate_server_credentials(scred), 0);
	gnutls_psk_set_server_credentials_function(*scred, psk_lookup);
	assert_int_equal(gnutls_psk_allocate_client_credentials(ccred), 0);
	assert_int_equal(gnutls_psk_set_client_credentials(*ccred, "test", &psk_key,
	    GNUTLS_PSK_KEY_RAW), 0);
	assert_int_equal(gnutls_init(&ss, GNUTLS_SERVER | GNUTLS_NONBLOCK), 0);
	assert_int_equal(gnutls_priority_set_direct(ss, psk_prio, NULL), 0);
	assert_int_equal(gnutls_credentials_set(ss, GNUTLS_CRD_PSK, *scred), 0);
	assert_int_equal(gnutls_init(cs, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
	assert_int_equal(gnutls_priority_set_direct(*cs, psk_prio, NULL), 0);
	assert_int_equal(gnutls_credentials_set(*cs, GNUTLS_CRD_PSK, *ccred), 0);
	gnutls_transport_set_int(*cs, sv[1]);
	c = conn_new(base, sv[0], tls_record, t);
	conn_start_tls(c, ss);
	return c;
}

/* The client finishes its handshake and sends a command before the server
 * reads a byte of its last flight: one read takes both, GnuTLS finishes the
 * handshake with the first record and the command waits in conn's
 * read-ahead, which no socket event will announce again.  It must still
 * be delivered; so must a second command that arrives while the owner has
 * reading paused and the first one unread. */
static void
test_tls_read_ahead_is_delivered(void **state)
{
	struct event_base *base = event_base_new();
	gnutls_psk_server_credentials_t scred;
	gnutls_psk_client_credentials_t ccred;
	gnutls_session_t cs;
	struct tls_seen t;
	struct conn *c;
	int sv[2] = { -1, -1 }, i, r = GNUTLS_E_AGAIN;

	c = psk_pair(base, &t, sv, &cs, &scred, &ccred);
	/* the server runs only while the client waits for it */
	for (i = 0; i < 1000 && r == GNUTLS_E_AGAIN; i++) {
		if ((r = gnutls_handshake(cs)) == GNUTLS_E_AGAIN)
			event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	assert_int_equal(r, 0);
	assert_false(t.tls_ok);
	assert_int_equal(gnutls_record_send(cs, "EHLO a\r\n", 8), 8);
	RUN_UNTIL(base, t.inlen >= 8);
	assert_true(t.tls_ok);
	assert_int_equal(t.inlen, 8);
	assert_memory_equal(t.in, "EHLO a\r\n", 8);

	/* paused: two records arrive; resumed, both come */
	conn_pause(c);
	assert_int_equal(gnutls_record_send(cs, "MAIL\r\n", 6), 6);
	assert_int_equal(gnutls_record_send(cs, "RCPT\r\n", 6), 6);
	RUN_UNTIL(base, 0);
	assert_int_equal(t.inlen, 8);
	conn_resume(c);
	RUN_UNTIL(base, t.inlen >= 20);
	assert_int_equal(t.inlen, 20);
	assert_memory_equal(t.in + 8, "MAIL\r\nRCPT\r\n", 12);
	assert_false(t.s.during_call);

	/* the peer's close: EOF after the data */
	assert_int_equal(gnutls_record_send(cs, "QUIT\r\n", 6), 6);
	(void)gnutls_bye(cs, GNUTLS_SHUT_WR);
	close(sv[1]);
	RUN_UNTIL(base, t.s.last == CONN_EV_EOF);
	assert_int_equal(t.s.last, CONN_EV_EOF);
	assert_int_equal(t.inlen, 26);
	conn_free(&c);
	gnutls_deinit(cs);
	gnutls_psk_free_server_credentials(scred);
	gnutls_psk_free_client_credentials(ccred);
	event_base_free(base);
}

/* Both ends of psk_pair() up: the handshake, and a first record read. */
static void
psk_up(struct event_base *base, struct tls_seen *t, gnutls_session_t cs)
{
	int i, r = GNUTLS_E_AGAIN;

	/* the server runs only while the client waits for it */
	for (i = 0; i < 1000 && r == GNUTLS_E_AGAIN; i++) {
		if ((r = gnutls_handshake(cs)) == GNUTLS_E_AGAIN)
			event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	assert_int_equal(r, 0);
	assert_int_equal(gnutls_record_send(cs, "go\r\n", 4), 4);
	RUN_UNTIL_SLOW(base, t->inlen >= 4);
	assert_true(t->tls_ok);
}

/* Raw TLS octets the test's peer took off the socket, decrypted later. */
struct rawbuf {
	unsigned char b[65536];
	size_t len, off;
};

static void
raw_take(int fd, struct rawbuf *rb)
{
	ssize_t n;

	while (rb->len < sizeof(rb->b) &&
	    (n = read(fd, rb->b + rb->len, sizeof(rb->b) - rb->len)) > 0)
		rb->len += (size_t)n;
}

static ssize_t
raw_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct rawbuf *rb = p;

	if (rb->off == rb->len)
		return 0;               /* the end of what the socket brought */
	if (len > rb->len - rb->off)
		len = rb->len - rb->off;
	memcpy(buf, rb->b + rb->off, len);
	rb->off += len;
	return (ssize_t)len;
}

/* A TLS connection freed while GnuTLS holds a record the socket took only
 * in part (its write met a full socket) must not send the rest of it:
 * conn_free() is the abrupt end (a relay transfer cut for being too slow,
 * or the client gone), and the rest may be the end of a message -- the
 * relay would take a message we told the client it did not get.  The
 * socket has room again when conn_free() runs, as when the relay read on
 * between the write and the cut; the peer must not decrypt the whole
 * message. */
static void
test_free_does_not_finish_a_blocked_tls_record(void **state)
{
	struct event_base *base = event_base_new();
	gnutls_psk_server_credentials_t scred;
	gnutls_psk_client_credentials_t ccred;
	gnutls_session_t cs;
	static struct rawbuf rb;
	static char msg[12000], got[sizeof(msg)];
	struct tls_seen t;
	struct conn *c;
	int sv[2] = { -1, -1 }, sndbuf = 4096;
	size_t gotlen = 0;
	ssize_t n;

	memset(&rb, 0, sizeof(rb));
	memset(msg, 'x', sizeof(msg));
	memcpy(msg + sizeof(msg) - 5, "\r\n.\r\n", 5);
	c = psk_pair(base, &t, sv, &cs, &scred, &ccred);
	psk_up(base, &t, cs);
	/* the record (one: under 16 KiB) finds a socket with room for part */
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
	evbuffer_add(conn_output(c), msg, sizeof(msg));
	conn_flush(c);
	RUN_UNTIL(base, 0);
	assert_int_equal(evbuffer_get_length(conn_output(c)), sizeof(msg));
	/* the peer reads what came: room again, and the loop not told */
	raw_take(sv[1], &rb);
	assert_true(rb.len > 0 && rb.len < sizeof(msg));
	conn_free(&c);
	raw_take(sv[1], &rb);
	close(sv[1]);
	gnutls_transport_set_ptr(cs, &rb);
	gnutls_transport_set_pull_function(cs, raw_pull);
	while (gotlen < sizeof(got) &&
	    (n = gnutls_record_recv(cs, got + gotlen, sizeof(got) - gotlen)) > 0)
		gotlen += (size_t)n;
	if (gotlen == sizeof(msg))
		fail_msg("conn_free() sent the rest of a record: the peer has the whole "
		    "message, its end included");
	gnutls_deinit(cs);
	gnutls_psk_free_server_credentials(scred);
	gnutls_psk_free_client_credentials(ccred);
	event_base_free(base);
}

/* The relay's last words, then a record that does not decrypt and a
 * reset: over TLS one read pass takes the record with the reply and then
 * meets the bad one.  The reply must reach the owner before the error --
 * it may be the relay's 250 for a message (told as lost, the client would
 * send it again) or its answer to a RCPT (a recipients-per-hour token
 * given back although the relay answered). */
static void
test_tls_data_before_an_error_is_delivered(void **state)
{
	struct event_base *base = event_base_new();
	gnutls_psk_server_credentials_t scred;
	gnutls_psk_client_credentials_t ccred;
	gnutls_session_t cs;
	struct linger lg = { 1, 0 };
	struct tls_seen t;
	struct conn *c;
	int sv[2];

	tcp_pair(&sv[0], &sv[1]);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	c = psk_pair(base, &t, sv, &cs, &scred, &ccred);
	psk_up(base, &t, cs);
	/* the reply, a bad record and the reset arrive before the loop looks */
	assert_int_equal(gnutls_record_send(cs, "250 ok\r\n", 8), 8);
	assert_int_equal(write(sv[1], "\x17\x03\x03\x00\x20garbagegarbagegarbagegarbage1234", 37), 37);
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	close(sv[1]);
	usleep(200 * 1000);
	RUN_UNTIL_SLOW(base, t.s.last == CONN_EV_ERROR || t.s.last == CONN_EV_EOF);
	if (t.inlen != 12)
		fail_msg("the reply before the error was dropped (%zu octets read, last event %d)",
		    t.inlen, (int)t.s.last);
	assert_memory_equal(t.in + 4, "250 ok\r\n", 8);
	assert_int_equal(t.s.last, CONN_EV_ERROR);        /* and then the error */
	assert_false(t.s.during_call);
	conn_free(&c);
	gnutls_deinit(cs);
	gnutls_psk_free_server_credentials(scred);
	gnutls_psk_free_client_credentials(ccred);
	event_base_free(base);
}

static void
key(const char *addr, unsigned prefix, const char *want, int rc)
{
	char out[64];

	assert_int_equal(conn_addr_key(addr, prefix, out, sizeof(out)), rc);
	if (strcmp(out, want) != 0)
		fail_msg("conn_addr_key(%s, %u) = %s, wanted %s", addr, prefix, out, want);
}

static void
test_addr_key(void **state)
{
	key("192.0.2.7", 64, "192.0.2.7", 0);
	key("2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64", 0);
	key("2001:db8:1:2:ffff::1", 64, "2001:db8:1:2::/64", 0);    /* same /64 */
	key("2001:db8:1:3::1", 64, "2001:db8:1:3::/64", 0);         /* the next one */
	key("2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48", 0);
	key("2001:db8:1:ff:3:4:5:6", 56, "2001:db8:1::/56", 0);
	key("2001:db8:1:1ff:3:4:5:6", 56, "2001:db8:1:100::/56", 0);
	key("2001:db8:1:2:3:4:5:6", 60, "2001:db8:1::/60", 0);
	key("2001:db8:abcd:12ef::1", 60, "2001:db8:abcd:12e0::/60", 0);
	key("2001:db8::1", 128, "2001:db8::1", 0);
	key("::1", 64, "::/64", 0);
	key("::ffff:192.0.2.7", 64, "192.0.2.7", 0);                /* mapped IPv4 */
	key("2001:DB8::0001", 128, "2001:db8::1", 0);               /* canonical text */
	key("unknown", 64, "unknown", -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_tls_failure_comes_from_the_loop),
		cmocka_unit_test(test_connect_failure_comes_from_the_loop),
		cmocka_unit_test(test_close_after_flush_tells_from_the_loop),
		cmocka_unit_test(test_want_drained),
		cmocka_unit_test(test_paused_sees_fin),
		cmocka_unit_test(test_fin_before_pause),
		cmocka_unit_test(test_paused_sees_reset),
		cmocka_unit_test(test_no_watch_without_the_feature),
		cmocka_unit_test(test_tls_read_ahead_is_delivered),
		cmocka_unit_test(test_free_does_not_finish_a_blocked_tls_record),
		cmocka_unit_test(test_tls_data_before_an_error_is_delivered),
		cmocka_unit_test(test_addr_key),
	};

	signal(SIGPIPE, SIG_IGN);       /* as front: writes to a closed peer fail */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
