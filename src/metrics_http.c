/* metrics_http.c — GET /metrics on front's event loop. */
#include "metrics_http.h"

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

/* ---- the parser ---- */

static int
is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The request line "METHOD SP TARGET SP HTTP/1.x" (without CRLF). */
static int
parse_request_line(const char *s, size_t n, struct metrics_http_req *req)
{
	const char *sp1, *sp2, *t;
	size_t mlen, tlen;

	sp1 = memchr(s, ' ', n);
	if (sp1 == NULL || sp1 == s)
		return -1;
	mlen = (size_t)(sp1 - s);
	for (t = s; t < sp1; t++)
		if (!is_tchar(*t))
			return -1;
	sp2 = memchr(sp1 + 1, ' ', n - mlen - 1);
	if (sp2 == NULL || sp2 == sp1 + 1)
		return -1;
	tlen = (size_t)(sp2 - sp1 - 1);
	for (t = sp1 + 1; t < sp2; t++)
		if (*t <= 0x20 || *t >= 0x7f)
			return -1;
	if ((size_t)(s + n - sp2 - 1) != 8 || (memcmp(sp2 + 1, "HTTP/1.0", 8) != 0 &&
	    memcmp(sp2 + 1, "HTTP/1.1", 8) != 0))
		return -1;
	if (mlen == 3 && memcmp(s, "GET", 3) == 0)
		req->method = MHTTP_GET;
	else if (mlen == 4 && memcmp(s, "HEAD", 4) == 0)
		req->method = MHTTP_HEAD;
	else
		req->method = MHTTP_OTHER;
	req->metrics_path = (tlen == 8 || (tlen > 8 && sp1[9] == '?')) &&
	    memcmp(sp1 + 1, "/metrics", 8) == 0;
	return 0;
}

/* One header field "name: value" (without CRLF). */
static int
parse_field(const char *s, size_t n, struct metrics_http_req *req)
{
	const char *colon = memchr(s, ':', n), *t;
	static const char accept[] = "accept", om[] = "application/openmetrics-text";
	size_t i;

	if (colon == NULL || colon == s)
		return -1;
	for (t = s; t < colon; t++)
		if (!is_tchar(*t))
			return -1;
	for (t = colon + 1; t < s + n; t++)
		if ((*t < 0x20 && *t != '\t') || *t == 0x7f)
			return -1;
	if ((size_t)(colon - s) == sizeof(accept) - 1 &&
	    ascii_ncasecmp(s, accept, sizeof(accept) - 1) == 0) {
		for (i = (size_t)(colon + 1 - s); i + sizeof(om) - 1 <= n; i++)
			if (ascii_ncasecmp(s + i, om, sizeof(om) - 1) == 0) {
				req->openmetrics = 1;
				break;
			}
	}
	return 0;
}

int
metrics_http_parse(const char *buf, size_t len, struct metrics_http_req *req)
{
	size_t off = 0, line = 0;

	memset(req, 0, sizeof(req[0]));
	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		size_t n;

		if (memchr(buf + off, '\0', nl ? (size_t)(nl - buf - off) : len - off))
			return -1;
		if (nl == NULL)
			break;
		n = (size_t)(nl - buf - off);
		if (n == 0 || buf[off + n - 1] != '\r' || memchr(buf + off, '\r', n - 1))
			return -1;
		n--;
		if (off + n + 2 > METRICS_HTTP_HEAD_MAX)
			return -2;
		if (n == 0) {
			if (line == 0)
				return -1;      /* no request line */
			req->head_len = off + 2;
			return 1;
		}
		if (line == 0 ? parse_request_line(buf + off, n, req) < 0 :
		    (buf[off] == ' ' || buf[off] == '\t' || parse_field(buf + off, n, req) < 0))
			return -1;
		line++;
		off += n + 2;
	}
	/* the incomplete last line: a CR only as its last octet (CRLF to come) */
	if (len - off > 1 && memchr(buf + off, '\r', len - off - 1) != NULL)
		return -1;
	return len >= METRICS_HTTP_HEAD_MAX ? -2 : 0;
}

int
metrics_http_status(int parse_rc, const struct metrics_http_req *req)
{
	if (parse_rc == -2)
		return 431;
	if (parse_rc < 0)
		return 400;
	if (req->method == MHTTP_OTHER)
		return 405;
	return req->metrics_path ? 200 : 404;
}

/* ---- the server ---- */

struct scrape {
	struct metrics_http *mh;
	struct scrape *prev, *next;
	struct conn *conn;
	struct event *deadline;         /* METRICS_HTTP_TIMEOUT after connecting */
};

struct metrics_http {
	struct event_base *base;
	struct evconnlistener *evl;
	struct event *ev_resume;        /* accepting again after a pause */
	int paused_logged;              /* a pause was logged ... */
	time_t paused_log_time;         /* ... at this (monotonic) second */
	unsigned pauses;                /* pauses since that line */
	struct scrape *scrapes;
	unsigned nscrapes;
};

static void
scrape_unlink(struct scrape *sc)
{
	struct metrics_http *mh = sc->mh;

	if (sc->prev)
		sc->prev->next = sc->next;
	else
		mh->scrapes = sc->next;
	if (sc->next)
		sc->next->prev = sc->prev;
	mh->nscrapes--;
	event_free(sc->deadline);
	free(sc);
}

static const char *
status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	default: return "Bad Request";
	}
}

/* Queue the response, close after it is written. */
static void
scrape_answer(struct scrape *sc, int status, const struct metrics_http_req *req)
{
	struct evbuffer *out = conn_output(sc->conn);
	struct metrics_text body;
	enum metrics_format fmt = req->openmetrics ? METRICS_OPENMETRICS : METRICS_PROMETHEUS;
	const char *ctype = "text/plain; charset=utf-8";

	memset(&body, 0, sizeof(body));
	if (status == 200) {
		struct metrics_snapshot *snap = xmalloc(sizeof(*snap));

		metrics_snapshot(snap);
		metrics_format(snap, fmt, SUBPROXY_VERSION, &body);
		free(snap);
		ctype = metrics_content_type(fmt);
	} else {
		body.p = xasprintf("%d %s\n", status, status_text(status));
		body.len = strlen(body.p);
	}
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n", status, status_text(status),
	    ctype, body.len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (req->method != MHTTP_HEAD || status != 200)
		evbuffer_add(out, body.p, body.len);
	metrics_text_free(&body);
	log_debug("event=metrics-scrape status=%d", status);
	conn_close_after_flush(&sc->conn, NULL, NULL);
	scrape_unlink(sc);
}

static void
scrape_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct scrape *sc = arg;
	struct evbuffer *in;
	struct metrics_http_req req;
	size_t len;
	int rc;

	switch (ev) {
	case CONN_EV_READ:
		in = conn_input(c);
		len = evbuffer_get_length(in);
		if (len > METRICS_HTTP_HEAD_MAX + 1)
			len = METRICS_HTTP_HEAD_MAX + 1;
		rc = metrics_http_parse((const char *)evbuffer_pullup(in, (ssize_t)len), len, &req);
		if (rc == 0)
			return;
		scrape_answer(sc, metrics_http_status(rc, &req), &req);
		return;
	case CONN_EV_FLUSHED:
	case CONN_EV_CONNECTED:
	case CONN_EV_TLS_OK:
	case CONN_EV_HANGUP:            /* only after conn_pause(): never paused */
		return;
	case CONN_EV_TIMEOUT:
	case CONN_EV_EOF:
	case CONN_EV_ERROR:
		conn_free(&sc->conn);
		scrape_unlink(sc);
		return;
	}
}

/* The whole request head must come within METRICS_HTTP_TIMEOUT: a scraper
 * sending it byte by byte would otherwise keep its place as long as it
 * likes (the conn timeout starts again with every read). */
static void
scrape_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct scrape *sc = arg;

	log_debug("event=metrics-scrape-timeout");
	conn_free(&sc->conn);
	scrape_unlink(sc);
}

static void
on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct metrics_http *mh = arg;
	struct timeval tv = { METRICS_HTTP_TIMEOUT, 0 };
	struct scrape *sc;

	if (mh->nscrapes >= METRICS_HTTP_CONNS) {
		log_warn("event=metrics-busy scrapers=%u: connection closed", mh->nscrapes);
		close(fd);
		return;
	}
	sc = xcalloc(1, sizeof(*sc));
	sc->mh = mh;
	sc->conn = conn_new(mh->base, fd, scrape_cb, sc);
	if ((sc->deadline = evtimer_new(mh->base, scrape_deadline, sc)) == NULL)
		fatal("out of memory");
	evtimer_add(sc->deadline, &tv);
	sc->next = mh->scrapes;
	if (mh->scrapes)
		mh->scrapes->prev = sc;
	mh->scrapes = sc;
	mh->nscrapes++;
}

/* Accepting failed (EMFILE, ENFILE, ...): without this libevent retries at
 * once and fails again, a busy loop.  Pause for a moment, as the SMTP
 * listeners do (smtp_server.c); scrapers wait in the listen backlog.  One
 * log line per METRICS_HTTP_LOG_EVERY seconds at most. */
static void
accept_error(struct evconnlistener *evl, void *arg)
{
	struct metrics_http *mh = arg;
	struct timeval tv = { 0, METRICS_HTTP_BACKOFF_MS * 1000 };
	struct timespec now;
	int err = EVUTIL_SOCKET_ERROR();

	clock_gettime(CLOCK_MONOTONIC, &now);
	mh->pauses++;
	if (!mh->paused_logged || now.tv_sec - mh->paused_log_time >= METRICS_HTTP_LOG_EVERY) {
		log_warn("event=metrics-accept-paused error=\"%s\" pauses=%u: not accepting "
		    "scrapes for %d ms at a time", evutil_socket_error_to_string(err), mh->pauses,
		    METRICS_HTTP_BACKOFF_MS);
		mh->paused_logged = 1;
		mh->paused_log_time = now.tv_sec;
		mh->pauses = 0;
	}
	evconnlistener_disable(evl);
	evtimer_add(mh->ev_resume, &tv);
}

static void
accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_http *mh = arg;

	evconnlistener_enable(mh->evl);
}

struct metrics_http *
metrics_http_new(struct event_base *base, int fd, char *err, size_t errlen)
{
	struct metrics_http *mh = xcalloc(1, sizeof(*mh));

	mh->base = base;
	if ((mh->ev_resume = evtimer_new(base, accept_resume, mh)) == NULL)
		fatal("out of memory");
	mh->evl = evconnlistener_new(base, on_accept, mh, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_CLOSE_ON_EXEC, 0, fd);   /* 0: the parent listens (listen(2) is not front's) */
	if (mh->evl == NULL) {
		snprintf(err, errlen, "[metrics]: cannot listen: %s", strerror(errno));
		close(fd);
		event_free(mh->ev_resume);
		free(mh);
		return NULL;
	}
	evconnlistener_set_error_cb(mh->evl, accept_error);
	return mh;
}

void
metrics_http_free(struct metrics_http **mp)
{
	struct metrics_http *mh = *mp;

	if (mh == NULL)
		return;
	*mp = NULL;
	while (mh->scrapes != NULL) {
		conn_free(&mh->scrapes->conn);
		scrape_unlink(mh->scrapes);
	}
	if (mh->evl != NULL)
		evconnlistener_free(mh->evl);
	event_free(mh->ev_resume);
	free(mh);
}
