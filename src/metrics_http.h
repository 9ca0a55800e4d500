/*
 * metrics_http.h — the metrics responder in front: a minimal HTTP/1.x
 * server for "GET /metrics" on the [metrics] address (bound by the parent,
 * like the listeners).
 *
 * Bounds: a request head of at most METRICS_HTTP_HEAD_MAX octets, read
 * within METRICS_HTTP_TIMEOUT seconds of connecting (however slowly it
 * trickles in); at most METRICS_HTTP_CONNS scrapers
 * at once (a further connection is closed at once); one request per
 * connection, closed after the response.  GET and HEAD of /metrics (a
 * query string is ignored) answer 200 with the exposition (OpenMetrics when
 * the Accept header names application/openmetrics-text, else Prometheus
 * text 0.0.4); another path 404, another method 405, anything malformed
 * 400, an oversized head 431.  When accepting fails (EMFILE, ...) the
 * listener pauses for METRICS_HTTP_BACKOFF_MS, logged once per
 * METRICS_HTTP_LOG_EVERY seconds at most.
 */
#ifndef SUBPROXY_METRICS_HTTP_H
#define SUBPROXY_METRICS_HTTP_H

#include <stddef.h>

#define METRICS_HTTP_HEAD_MAX	4096
#define METRICS_HTTP_TIMEOUT	5
#define METRICS_HTTP_CONNS	4
#define METRICS_HTTP_BACKOFF_MS	250
#define METRICS_HTTP_LOG_EVERY	10	/* seconds */

struct event_base;
struct metrics_http;

/* Serve on the listening socket fd (owned from now on).  NULL with a
 * sentence in err. */
struct metrics_http *metrics_http_new(struct event_base *base, int fd, char *err,
    size_t errlen);
/* Stop accepting and close open scrapes.  *mp = NULL; NULL is a no-op. */
void metrics_http_free(struct metrics_http **mp);

/* ---- the request parser (pure) ---- */

enum metrics_http_method { MHTTP_GET, MHTTP_HEAD, MHTTP_OTHER };

struct metrics_http_req {
	enum metrics_http_method method;
	int metrics_path;		/* the target is /metrics (query ignored) */
	int openmetrics;		/* Accept names application/openmetrics-text */
	size_t head_len;		/* octets of the head incl. the empty line */
};

/* Parse a request head in buf[0..len).  Returns 1 complete (*req set), 0
 * incomplete (read more), -1 malformed (400), -2 complete head longer than
 * METRICS_HTTP_HEAD_MAX or incomplete beyond it (431).  Lines end in CRLF;
 * bare CR, LF or NUL, obsolete line folding, a bad request line or a
 * version other than HTTP/1.0 and HTTP/1.1 are malformed. */
int metrics_http_parse(const char *buf, size_t len, struct metrics_http_req *req);

/* The status code for a parsed request (200, 404, 405) or a parse result
 * (-1: 400, -2: 431). */
int metrics_http_status(int parse_rc, const struct metrics_http_req *req);

#endif
