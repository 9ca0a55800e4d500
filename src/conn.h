/*
 * conn.h — one non-blocking TCP connection on the libevent loop, with an
 * optional GnuTLS record layer (tls.c makes the sessions; conn.c moves the
 * bytes through them).
 *
 * Input arrives in an evbuffer (conn_input()); output is queued in another
 * (conn_output()) and written by conn_flush().  Every event is delivered to
 * one callback.  The callback may call conn_free(): conn never touches itself
 * after invoking it.  The connection owns the socket and the TLS session.
 *
 * Re-entrancy rule: the callback is only ever invoked from the event loop,
 * never from inside a conn_* call the owner made (conn_start_tls,
 * conn_connect, conn_flush, conn_want_flushed, conn_resume, ...); an
 * outcome known at once (a failed connect, a handshake that fails or
 * finishes at the first step, a write error) is delivered on a later pass
 * of the loop.  So an owner may keep using its own state after any conn_*
 * call.
 *
 * Under TLS, conn reads what the socket holds at once (one recv() per
 * readable socket, not GnuTLS's two per record) and keeps what GnuTLS has
 * not asked for yet: at most one read, about 16.6 KiB (a whole record), announced
 * to the reader as input is.
 *
 * Both buffers are bounded by their owners' use of them: conn stops reading
 * while CONN_INPUT_MAX octets of input wait, or fewer as the owner says
 * (conn_set_input_max(); it resumes reading by draining and calling
 * conn_resume()); the owner bounds its output with conn_want_drained().
 *
 * A paused connection still notices that the peer went away, without
 * reading (so without buffering) a byte: its FIN is told once as
 * CONN_EV_HANGUP, a reset as CONN_EV_ERROR.  That needs a loop backend
 * with EV_FEATURE_EARLY_CLOSE and EV_FEATURE_ET (epoll: EPOLLRDHUP,
 * EPOLLET); see conn_watch_supported().
 */
#ifndef SUBPROXY_CONN_H
#define SUBPROXY_CONN_H

#include <stddef.h>

#define CONN_INPUT_MAX (256 * 1024)  /* octets of unread input before reading stops */

struct conn;
struct sockaddr;
struct evbuffer;
struct event_base;

enum conn_event {
	CONN_EV_READ,        /* new bytes in conn_input() */
	CONN_EV_FLUSHED,     /* output drained to the mark (only after conn_want_drained()) */
	CONN_EV_TLS_OK,      /* TLS handshake finished */
	CONN_EV_CONNECTED,   /* outgoing connect finished */
	CONN_EV_EOF,         /* peer closed (TLS: close_notify or TCP FIN) */
	CONN_EV_HANGUP,      /* paused: the peer's FIN came (see conn_pause()) */
	CONN_EV_ERROR,       /* I/O or TLS error; conn_error() says which (after
			      * CONN_EV_READ for what was read before it) */
	CONN_EV_TIMEOUT      /* no progress for the configured time */
};

typedef void conn_cb(struct conn *c, enum conn_event ev, void *arg);

/* Wrap an accepted socket that is already non-blocking and close-on-exec
 * (accept4() with SOCK_NONBLOCK | SOCK_CLOEXEC, as libevent's listener
 * does) and has TCP_NODELAY (set on the listening socket: Linux copies it
 * to every accepted one).  Makes no system call but epoll's. */
struct conn *conn_new(struct event_base *base, int fd, conn_cb *cb, void *arg);

/* Start a non-blocking connect to addr; CONN_EV_CONNECTED or CONN_EV_ERROR
 * follows (from the loop, also when connect() fails at once).  Returns NULL
 * (errno set: EMFILE, ENFILE, ENOBUFS, ...) if the socket cannot be
 * created; then nothing follows. */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *addr,
    unsigned addrlen, conn_cb *cb, void *arg);

/* Change the callback (e.g. when a session hands the conn over). */
void conn_set_cb(struct conn *c, conn_cb *cb, void *arg);

struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);

/* Write queued output on this pass of the loop, after the owner's callback
 * returned: everything queued until then goes in one write (one TLS record
 * of up to 16 KiB).  A write error is reported as CONN_EV_ERROR from the
 * loop. */
void conn_flush(struct conn *c);
/* Ask for one CONN_EV_FLUSHED once at most `lowat` octets of output are
 * left unwritten (at once on the next loop pass if that is already so). */
void conn_want_drained(struct conn *c, size_t lowat);
/* = conn_want_drained(c, 0): once the output buffer is empty. */
void conn_want_flushed(struct conn *c);

/* Idle timeout in seconds (0 = none); restarted by every read or write
 * that makes progress (also by conn_set_timeout() itself). */
void conn_set_timeout(struct conn *c, unsigned seconds);
/* Stop reading while `max` octets of input wait (at most CONN_INPUT_MAX,
 * the default; one read may take up to 16 KiB beyond it).  A higher bound
 * starts reading again at once. */
void conn_set_input_max(struct conn *c, size_t max);

/* Stop / resume delivering CONN_EV_READ (bytes stay in the kernel).
 * While paused with no output left to write, the peer's FIN is told once
 * as CONN_EV_HANGUP: it shut down its sending side -- closed, or
 * half-closed and still reading, which looks the same without writing --
 * and what it sent before is still unread; after conn_resume() that input
 * comes as usual, then CONN_EV_EOF.  A reset is told as CONN_EV_ERROR.
 * With output still to write, the write watches instead (a reset fails
 * it; the FIN is told once the output is written).  Nothing is told while
 * paused on a loop without conn_watch_supported(): the owner sees EOF or
 * an error when it reads or writes again.  A TLS close_notify is data:
 * only the FIN that follows it is seen. */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);

/* 1 when a paused connection on this loop sees its peer's FIN and reset
 * (the backend has EV_FEATURE_EARLY_CLOSE and EV_FEATURE_ET: epoll). */
int conn_watch_supported(struct event_base *base);

/* Start TLS on this connection with a prepared session (gnutls_session_t,
 * passed as void * so that only conn.c and tls.c include GnuTLS).  Buffered
 * plaintext input is discarded first (CVE-2011-0411), and from now on no
 * plaintext is read; queued output (the 220 that invites the client's
 * handshake) is written now, as plaintext, and what the socket does not
 * take at once is dropped.  Ownership of the session passes to conn.  The
 * handshake starts on the next loop pass; CONN_EV_TLS_OK or CONN_EV_ERROR
 * follows, never from inside this call. */
void conn_start_tls(struct conn *c, void *gnutls_session);

/* The TLS session (gnutls_session_t) or NULL before TLS. */
void *conn_tls(struct conn *c);
int conn_is_tls(const struct conn *c);

/* Human-readable text for the last CONN_EV_ERROR. */
const char *conn_error(const struct conn *c);

/* Peer address as text ("192.0.2.1" / "2001:db8::1"; asked of the socket
 * the first time for an accepted one). */
const char *conn_peer(struct conn *c);
int conn_fd(const struct conn *c);

/* Pure: the key under which per-address limits count a peer whose address
 * text is `addr`: an IPv4 address as it is; an IPv6 address reduced to its
 * first v6prefix bits, as "2001:db8:1:2::/64" (the address alone when
 * v6prefix is 128).  Returns 0, or -1 when addr is no address (the key is
 * then addr itself, truncated to outlen). */
int conn_addr_key(const char *addr, unsigned v6prefix, char *out, size_t outlen);

/* Close: sends TLS close_notify best-effort, closes the socket, frees.
 * Nothing queued is written: not even the rest of a TLS record the socket
 * took in part (no close_notify then), so a transfer cut here never
 * reaches its end.  *cp is set to NULL; NULL is a no-op. */
void conn_free(struct conn **cp);

typedef void conn_closed_cb(void *arg);

/* Flush pending output (best effort, for at most a few seconds) then free:
 * for final replies such as 221/421.  Input is discarded from now on; the
 * owner's callback is no longer called.  Once the output is written (or
 * given up), closed(arg) is called (NULL: not wanted) -- always from the
 * loop, never from inside this call, so the owner can count the connection
 * until then -- and right after it returns, in the same pass, the
 * descriptor is closed: the peer sees the end (close_notify, FIN) only
 * after closed() ran.  Until closed() ran, the owner may still end it with conn_free() on
 * a copy of the pointer (then closed() is not called).  *cp is set to NULL;
 * NULL is a no-op. */
void conn_close_after_flush(struct conn **cp, conn_closed_cb *closed, void *arg);

#endif
