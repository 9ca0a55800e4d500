/*
 * proxyin.h — front's wait for the PROXY protocol header (proxyproto.h) on
 * connections accepted by a `proxy-protocol = yes` listener, before the
 * greeting and before TLS.
 *
 * Bytes are looked at with MSG_PEEK and only the header's own bytes are
 * taken from the socket: whatever follows it (the client's EHLO, or its TLS
 * ClientHello on an implicit-TLS listener) stays in the kernel for the
 * session.  A malformed or oversized header, a connection that ends before
 * the header is complete, or a header that has not arrived within the
 * timeout closes the connection without a word (a greeting would be read by
 * the balancer as the client's data), is logged with the reason and counted
 * in subproxy_proxy_refused_total{reason} (metrics.h).
 *
 * The pool owns the waiting connections; freeing it closes them.
 */
#ifndef SUBPROXY_PROXYIN_H
#define SUBPROXY_PROXYIN_H

#include "proxyproto.h"

struct event_base;
struct proxyin_pool;

/* A complete header: fd (still non-blocking, nothing after the header read)
 * now belongs to the callee; peer is the balancer's address as accepted.
 * Called from the event loop, never from inside proxyin_start(). */
typedef void proxyin_cb(void *arg, int fd, const struct sockaddr *peer,
    const struct proxyproto_result *r);

struct proxyin_pool *proxyin_pool_new(struct event_base *base);

/* Wait for the header on fd, which was accepted from `peer` (copied: the
 * address as accept() gave it, so that it is known even when the balancer
 * has closed by the time the header is read) on listener `listener`.  The
 * pool owns fd from now on. */
void proxyin_start(struct proxyin_pool *p, int fd, const struct sockaddr *peer,
    socklen_t peerlen, const char *listener, unsigned timeout_seconds, proxyin_cb *cb,
    void *arg);

/* Connections still waiting for their header (they count against the
 * global connection limit: the pool publishes the number to the other
 * front workers, connlimit_set_pending()); 0 for NULL. */
unsigned proxyin_pool_count(const struct proxyin_pool *p);

/* Close every waiting connection (no callbacks) and free the pool; *pp =
 * NULL.  NULL is a no-op. */
void proxyin_pool_free(struct proxyin_pool **pp);

#endif
