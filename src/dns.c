/* dns.c — libunbound (validating, in process) on the libevent loop. */
#include "dns.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <unbound.h>
#include <unbound-event.h>

#define DNS_MAX_CNAME 16

struct dns_ctx {
	struct event_base *base;
	struct ub_ctx *ub;
	unsigned timeout_s;
};

struct dns_query {
	struct dns_ctx *ctx;
	int async_id;
	int in_flight;
	int done;                /* callback from within ub_resolve_event */
	struct event *ev_timer;  /* timeout, and deferral of early answers */
	dns_cb *cb;
	void *arg;
	struct dns_result res;
};

static const char *const status_names[] = {
	"secure", "secure-nxdomain", "secure-nodata", "insecure", "bogus", "tempfail"
};

const char *
dns_status_name(enum dns_status s)
{
	return (unsigned)s < sizeof(status_names) / sizeof(status_names[0]) ?
	    status_names[s] : "?";
}

/* Settings that make libunbound open files or sockets of its own after
 * start-up, which the sandboxed network process cannot do (and which would
 * end it): refused with the reason. */
static int
unsafe_option(struct ub_ctx *ub, const char *file, char *err, size_t errlen)
{
	static const struct {
		const char *opt, *bad, *why;
	} opts[] = {
		{ "auto-trust-anchor-file", NULL, "RFC 5011 updates write a file; use a static "
		    "trust-anchor-file ([dns] trust-anchor-file)" },
		{ "logfile", NULL, "subproxy logs libunbound's messages itself" },
		{ "use-syslog", "yes", "subproxy logs libunbound's messages itself" },
		{ "root-hints", NULL, "read lazily, after the sandbox" },
	};
	size_t i;

	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		char *v = NULL;

		if (ub_ctx_get_option(ub, opts[i].opt, &v) != 0 || v == NULL) {
			free(v);
			continue;
		}
		if ((opts[i].bad == NULL && v[0] != '\0') ||
		    (opts[i].bad != NULL && strcmp(v, opts[i].bad) == 0)) {
			snprintf(err, errlen, "[dns] unbound-config %s: \"%s: %s\" is not supported "
			    "(%s)", file, opts[i].opt, v, opts[i].why);
			free(v);
			return -1;
		}
		free(v);
	}
	return 0;
}

struct dns_ctx *
dns_ctx_new(struct event_base *base, const char *trust_anchor, const char *unbound_config,
    unsigned timeout_s, char *err, size_t errlen)
{
	struct dns_ctx *ctx = xcalloc(1, sizeof(*ctx));
	int r;

	ctx->base = base;
	ctx->timeout_s = timeout_s ? timeout_s : 10;
	if ((ctx->ub = ub_ctx_create_event(base)) == NULL) {
		snprintf(err, errlen, "cannot create the libunbound context");
		goto fail;
	}
	if (unbound_config != NULL && (r = ub_ctx_config(ctx->ub, unbound_config)) != 0) {
		snprintf(err, errlen, "[dns] unbound-config %s: %s (expected an unbound.conf-syntax "
		    "file)", unbound_config, ub_strerror(r));
		goto fail;
	}
	if (unbound_config != NULL && unsafe_option(ctx->ub, unbound_config, err, errlen) < 0)
		goto fail;
	if (trust_anchor != NULL && (r = ub_ctx_add_ta_file(ctx->ub, trust_anchor)) != 0) {
		snprintf(err, errlen, "[dns] trust-anchor-file %s: %s (expected DS or DNSKEY "
		    "records in zone-file format)", trust_anchor, ub_strerror(r));
		goto fail;
	}
	return ctx;
fail:
	dns_ctx_free(&ctx);
	return NULL;
}

void
dns_ctx_free(struct dns_ctx **ctxp)
{
	struct dns_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	*ctxp = NULL;
	if (ctx->ub)
		ub_ctx_delete(ctx->ub);
	free(ctx);
}

void
dns_result_clear(struct dns_result *res)
{
	size_t i;

	for (i = 0; i < res->nrr; i++)
		free(res->rr[i].data);
	free(res->rr);
	res->rr = NULL;
	res->nrr = 0;
}

/* ---- wire format (pure) ---- */

int
dns_name_read(const uint8_t *pkt, size_t len, size_t *off, char *out, size_t outlen)
{
	size_t pos = *off, o = 0, end = 0;
	int jumps = 0, jumped = 0;

	for (;;) {
		uint8_t l;

		if (pos >= len)
			return -1;
		l = pkt[pos];
		if ((l & 0xc0) == 0xc0) {
			size_t ptr;

			if (pos + 1 >= len || ++jumps > 32)
				return -1;
			ptr = ((size_t)(l & 0x3f) << 8) | pkt[pos + 1];
			if (!jumped)
				end = pos + 2;
			jumped = 1;
			if (ptr >= len)
				return -1;
			pos = ptr;
			continue;
		}
		if ((l & 0xc0) != 0)
			return -1;
		if (l == 0) {
			if (!jumped)
				end = pos + 1;
			break;
		}
		if (pos + 1 + l > len || o + l + 2 > outlen || o + l + 1 > 254)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < l; i++) {
			char c = (char)pkt[pos + 1 + i];
			/* keep names printable; DNS names we care about are LDH */
			if (c == '.' || c <= 0x20 || c >= 0x7f)
				return -1;
			out[o++] = ascii_tolower(c);
		}
		pos += 1 + l;
	}
	if (o == 0) {
		if (outlen < 2)
			return -1;
		out[o++] = '.';
	}
	out[o] = '\0';
	*off = end;
	return 0;
}

static int
name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 1 && a[la - 1] == '.')
		la--;
	if (lb > 1 && b[lb - 1] == '.')
		lb--;
	return la == lb && ascii_ncasecmp(a, b, la) == 0;
}

struct wire_rr {
	char owner[256];
	uint16_t type;
	uint32_t ttl;
	size_t rdoff, rdlen;
};

int
dns_parse_packet(const uint8_t *pkt, size_t len, const char *qname, int qtype,
    struct dns_result *res)
{
	struct wire_rr *rrs = NULL;
	size_t off = 12, qd, an, i, nrrs = 0;
	char cur[256], tmp[256];
	int hops = 0, rcode;

	if (len < 12)
		return -1;
	rcode = pkt[3] & 0x0f;
	qd = (size_t)pkt[4] << 8 | pkt[5];
	an = (size_t)pkt[6] << 8 | pkt[7];
	res->nxdomain = rcode == 3;
	if (rcode != 0 && rcode != 3)
		return -1;
	for (i = 0; i < qd; i++) {
		if (dns_name_read(pkt, len, &off, tmp, sizeof(tmp)) < 0 || off + 4 > len)
			return -1;
		off += 4;
	}
	if (an > 512)
		return -1;
	rrs = xcalloc(an ? an : 1, sizeof(*rrs));
	for (i = 0; i < an; i++) {
		struct wire_rr *w = &rrs[nrrs];

		if (dns_name_read(pkt, len, &off, w->owner, sizeof(w->owner)) < 0 || off + 10 > len)
			goto bad;
		w->type = (uint16_t)(pkt[off] << 8 | pkt[off + 1]);
		w->ttl = (uint32_t)pkt[off + 4] << 24 | (uint32_t)pkt[off + 5] << 16 |
		    (uint32_t)pkt[off + 6] << 8 | pkt[off + 7];
		w->rdlen = (size_t)pkt[off + 8] << 8 | pkt[off + 9];
		off += 10;
		if (off + w->rdlen > len)
			goto bad;
		w->rdoff = off;
		off += w->rdlen;
		if ((pkt[off - w->rdlen - 8] << 8 | pkt[off - w->rdlen - 7]) != 1)
			continue;   /* class other than IN */
		nrrs++;
	}
	/* follow the CNAME chain from qname */
	snprintf(cur, sizeof(cur), "%s", qname);
	for (;;) {
		int found = 0;

		if (qtype == DNS_T_CNAME)
			break;
		for (i = 0; i < nrrs; i++) {
			size_t o2 = rrs[i].rdoff;

			if (rrs[i].type != DNS_T_CNAME || !name_eq(rrs[i].owner, cur))
				continue;
			if (dns_name_read(pkt, len, &o2, tmp, sizeof(tmp)) < 0)
				goto bad;
			snprintf(cur, sizeof(cur), "%s", tmp);
			res->cname_followed = 1;
			found = 1;
			break;
		}
		if (!found)
			break;
		if (++hops > DNS_MAX_CNAME)
			goto bad;
	}
	snprintf(res->name, sizeof(res->name), "%s", cur);
	for (i = 0; i < nrrs; i++) {
		if (rrs[i].type != qtype || !name_eq(rrs[i].owner, cur))
			continue;
		res->rr = xreallocarray(res->rr, res->nrr + 1, sizeof(*res->rr));
		res->rr[res->nrr].type = rrs[i].type;
		res->rr[res->nrr].ttl = rrs[i].ttl;
		res->rr[res->nrr].len = (uint16_t)rrs[i].rdlen;
		res->rr[res->nrr].data = xmalloc(rrs[i].rdlen ? rrs[i].rdlen : 1);
		memcpy(res->rr[res->nrr].data, pkt + rrs[i].rdoff, rrs[i].rdlen);
		res->nrr++;
	}
	free(rrs);
	return 0;
bad:
	free(rrs);
	dns_result_clear(res);
	return -1;
}

/* ---- lookups ---- */

static void
dns_deliver(struct dns_query *q)
{
	dns_cb *cb = q->cb;
	void *arg = q->arg;

	q->cb = NULL;
	if (cb != NULL)
		cb(arg, &q->res);
	dns_result_clear(&q->res);
	event_free(q->ev_timer);
	free(q);
}

static void
dns_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	if (q->in_flight) {
		/* timed out */
		ub_cancel(q->ctx->ub, q->async_id);
		q->in_flight = 0;
		dns_result_clear(&q->res);
		q->res.status = DNS_TEMPFAIL;
		snprintf(q->res.why, sizeof(q->res.why), "no answer within %u s", q->ctx->timeout_s);
	}
	dns_deliver(q);
}

static void
dns_on_answer(void *arg, int err, void *packet, int plen, int sec, char *why_bogus,
    int ratelimited)
{
	struct dns_query *q = arg;
	struct dns_result *res = &q->res;

	q->in_flight = 0;
	if (sec == 1) {
		res->status = DNS_BOGUS;
		snprintf(res->why, sizeof(res->why), "%s", why_bogus ? why_bogus : "validation failed");
	} else if (err != 0 || packet == NULL || plen <= 0) {
		res->status = DNS_TEMPFAIL;
		snprintf(res->why, sizeof(res->why), "resolver error %d%s", err,
		    ratelimited ? " (rate limited)" : "");
	} else if (dns_parse_packet(packet, (size_t)plen, res->qname, res->qtype, res) < 0) {
		res->status = DNS_TEMPFAIL;
		snprintf(res->why, sizeof(res->why), "SERVFAIL or malformed answer");
	} else if (sec == 2) {
		res->status = res->nxdomain ? DNS_SECURE_NXDOMAIN :
		    res->nrr == 0 ? DNS_SECURE_NODATA : DNS_SECURE;
	} else {
		res->status = DNS_INSECURE;
	}
	if (q->done == 0) {
		/* answered from within ub_resolve_event(): defer to the loop */
		q->done = 1;
		event_active(q->ev_timer, EV_TIMEOUT, 0);
		return;
	}
	dns_deliver(q);
}

struct dns_query *
dns_lookup(struct dns_ctx *ctx, const char *name, int rrtype, dns_cb *cb, void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	struct timeval tv = { ctx->timeout_s, 0 };
	int r;

	q->ctx = ctx;
	q->cb = cb;
	q->arg = arg;
	snprintf(q->res.qname, sizeof(q->res.qname), "%s", name);
	q->res.qtype = rrtype;
	q->ev_timer = evtimer_new(ctx->base, dns_on_timer, q);
	q->in_flight = 1;
	r = ub_resolve_event(ctx->ub, name, rrtype, 1, q, dns_on_answer, &q->async_id);
	if (r != 0) {
		q->in_flight = 0;
		q->res.status = DNS_TEMPFAIL;
		snprintf(q->res.why, sizeof(q->res.why), "%s", ub_strerror(r));
		q->done = 1;
		event_active(q->ev_timer, EV_TIMEOUT, 0);
		return q;
	}
	if (!q->done)
		evtimer_add(q->ev_timer, &tv);
	q->done = 1;   /* from now on answers are delivered directly */
	return q;
}

void
dns_cancel(struct dns_query **qp)
{
	struct dns_query *q = *qp;

	if (q == NULL)
		return;
	*qp = NULL;
	if (q->in_flight)
		ub_cancel(q->ctx->ub, q->async_id);
	dns_result_clear(&q->res);
	event_free(q->ev_timer);
	free(q);
}
