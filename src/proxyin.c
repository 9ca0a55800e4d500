/* proxyin.c — reading the PROXY protocol header before the session starts. */
#include "proxyin.h"
#include "connlimit.h"
#include "cidr.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

struct proxyin {
	struct proxyin_pool *pool;
	struct proxyin *prev, *next;
	int fd;
	struct event *ev_read, *ev_timer;
	unsigned char buf[PROXYPROTO_MAX];
	size_t have;                    /* header bytes taken from the socket */
	struct sockaddr_storage peer_sa;
	char peer[64];
	char listener[64];
	proxyin_cb *cb;
	void *arg;
};

struct proxyin_pool {
	struct event_base *base;
	struct proxyin *list;
	unsigned n;
};

struct proxyin_pool *
proxyin_pool_new(struct event_base *base)
{
	struct proxyin_pool *p = xcalloc(1, sizeof(*p));

	p->base = base;
	return p;
}

/* Unlink and free; the fd is closed unless it was handed over (-1). */
static void
proxyin_free(struct proxyin *w)
{
	struct proxyin_pool *p = w->pool;

	if (w->prev)
		w->prev->next = w->next;
	else
		p->list = w->next;
	if (w->next)
		w->next->prev = w->prev;
	p->n--;
	connlimit_set_pending(p->n);    /* what every worker counts (connlimit.h) */
	event_free(w->ev_read);
	event_free(w->ev_timer);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}

static void
proxyin_refuse(struct proxyin *w, enum metrics_proxy_refused reason, const char *why)
{
	metrics_count(MF_PROXY_REFUSED, reason);
	log_warn("event=proxy-refused peer=%s listener=%s octets=%zu reason=\"%s\"", w->peer,
	    w->listener, w->have, why);
	proxyin_free(w);
}

static void
proxyin_on_timer(evutil_socket_t fd, short what, void *arg)
{
	proxyin_refuse(arg, MPR_TIMEOUT, "no complete PROXY header within the timeout");
}

/* Take n bytes that are certainly header bytes off the socket. */
static int
proxyin_take(struct proxyin *w, size_t n)
{
	ssize_t r;

	do
		r = recv(w->fd, w->buf + w->have, n, 0);
	while (r < 0 && errno == EINTR);
	if (r != (ssize_t)n)
		return -1;
	w->have += n;
	return 0;
}

static void
proxyin_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct proxyin *w = arg;
	struct proxyproto_result r;
	enum proxyproto_status st;
	proxyin_cb *cb;
	void *cbarg;
	ssize_t n;

	do
		n = recv(w->fd, w->buf + w->have, sizeof(w->buf) - w->have, MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		proxyin_refuse(w, MPR_CLOSED, n == 0 ? "connection closed before the PROXY header "
		    "was complete" : strerror(errno));
		return;
	}
	st = proxyproto_parse(w->buf, w->have + (size_t)n, &r);
	switch (st) {
	case PROXYPROTO_NEED_MORE:
		/* every byte seen is part of the header: take them */
		if (proxyin_take(w, (size_t)n) < 0)
			proxyin_refuse(w, MPR_CLOSED, "cannot read the PROXY header");
		return;
	case PROXYPROTO_INVALID:
		proxyin_refuse(w, MPR_INVALID, r.why);
		return;
	case PROXYPROTO_DONE:
		if (proxyin_take(w, r.consumed - w->have) < 0) {
			proxyin_refuse(w, MPR_CLOSED, "cannot read the PROXY header");
			return;
		}
		break;
	}
	cb = w->cb;
	cbarg = w->arg;
	{
		struct sockaddr_storage peer = w->peer_sa;

		fd = w->fd;
		w->fd = -1;
		proxyin_free(w);
		cb(cbarg, fd, (const struct sockaddr *)&peer, &r);
	}
}

void
proxyin_start(struct proxyin_pool *p, int fd, const struct sockaddr *peer, socklen_t peerlen,
    const char *listener, unsigned timeout_seconds, proxyin_cb *cb, void *arg)
{
	struct proxyin *w = xcalloc(1, sizeof(*w));
	struct timeval tv = { (time_t)timeout_seconds, 0 };

	w->pool = p;
	w->fd = fd;
	w->cb = cb;
	w->arg = arg;
	if (peerlen > sizeof(w->peer_sa))
		peerlen = sizeof(w->peer_sa);
	memcpy(&w->peer_sa, peer, peerlen);
	cidr_ntop(peer, w->peer, sizeof(w->peer), NULL);
	snprintf(w->listener, sizeof(w->listener), "%s", listener);
	w->ev_read = event_new(p->base, fd, EV_READ | EV_PERSIST, proxyin_on_read, w);
	w->ev_timer = evtimer_new(p->base, proxyin_on_timer, w);
	w->next = p->list;
	if (p->list)
		p->list->prev = w;
	p->list = w;
	p->n++;
	connlimit_set_pending(p->n);
	event_add(w->ev_read, NULL);
	evtimer_add(w->ev_timer, &tv);
}

unsigned
proxyin_pool_count(const struct proxyin_pool *p)
{
	return p != NULL ? p->n : 0;
}

void
proxyin_pool_free(struct proxyin_pool **pp)
{
	struct proxyin_pool *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	while (p->list != NULL)
		proxyin_free(p->list);
	free(p);
}
