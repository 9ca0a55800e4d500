/*
 * conn.h — one non-blocking TCP connection on the libevent loop, with an
 * optional GnuTLS record layer (io.c/tls.c of the design, as one module).
 *
 * Input arrives in an evbuffer (conn_input()); output is queued in another
 * (conn_output()) and written by conn_flush().  Every event is delivered to
 * one callback.  The callback may call conn_free(): conn never touches itself
 * after invoking it.  The connection owns the socket and the TLS session.
 */
#ifndef SUBPROXY_CONN_H
#define SUBPROXY_CONN_H

#include <stddef.h>

struct conn;
struct sockaddr;
struct evbuffer;
struct event_base;

enum conn_event {
	CONN_EV_READ,        /* new bytes in conn_input() */
	CONN_EV_FLUSHED,     /* output buffer fully written (only if conn_want_flushed()) */
	CONN_EV_TLS_OK,      /* TLS handshake finished */
	CONN_EV_CONNECTED,   /* outgoing connect finished */
	CONN_EV_EOF,         /* peer closed (TLS: close_notify or TCP FIN) */
	CONN_EV_ERROR,       /* I/O or TLS error; conn_error() says which */
	CONN_EV_TIMEOUT      /* no progress for the configured time */
};

typedef void conn_cb(struct conn *c, enum conn_event ev, void *arg);

/* Wrap an accepted/connected non-blocking socket.  Sets TCP_NODELAY. */
struct conn *conn_new(struct event_base *base, int fd, conn_cb *cb, void *arg);

/* Start a non-blocking connect to addr; CONN_EV_CONNECTED or CONN_EV_ERROR
 * follows.  Returns NULL (errno set) if the socket cannot be created. */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *addr,
    unsigned addrlen, conn_cb *cb, void *arg);

/* Change the callback (e.g. when a session hands the conn over). */
void conn_set_cb(struct conn *c, conn_cb *cb, void *arg);

struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);

/* Write queued output as soon as possible. */
void conn_flush(struct conn *c);
/* Ask for one CONN_EV_FLUSHED once the output buffer is empty. */
void conn_want_flushed(struct conn *c);

/* Idle timeout in seconds (0 = none); restarted by every read or write. */
void conn_set_timeout(struct conn *c, unsigned seconds);

/* Stop / resume delivering CONN_EV_READ (bytes stay in the kernel). */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);

/* Start TLS on this connection with a prepared session (gnutls_session_t,
 * passed as void * so that only conn.c and tls.c include GnuTLS).  Buffered
 * plaintext input is discarded first (CVE-2011-0411).  Ownership of the
 * session passes to conn.  CONN_EV_TLS_OK or CONN_EV_ERROR follows. */
void conn_start_tls(struct conn *c, void *gnutls_session);

/* The TLS session (gnutls_session_t) or NULL before TLS. */
void *conn_tls(struct conn *c);
int conn_is_tls(const struct conn *c);

/* Human-readable text for the last CONN_EV_ERROR. */
const char *conn_error(const struct conn *c);

/* Peer address as text ("192.0.2.1" / "2001:db8::1"). */
const char *conn_peer(const struct conn *c);
int conn_fd(const struct conn *c);

/* Close: sends TLS close_notify best-effort, closes the socket, frees.
 * *cp is set to NULL; NULL is a no-op. */
void conn_free(struct conn **cp);

/* Flush pending output (best effort, bounded) then free: for final replies
 * such as 221/421.  *cp is set to NULL. */
void conn_close_after_flush(struct conn **cp);

#endif
