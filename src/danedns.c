/* danedns.c — secure addresses + TLSA for one SMTP DANE destination. */
#include "danedns.h"
#include "dns.h"
#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct danedns_query {
	struct dns_ctx *dns;
	char host[256];
	int port;
	danedns_cb *cb;
	void *arg;
	struct dns_query *qa, *qaaaa, *qtlsa;
	int pending;
	int tried_original;              /* TLSA at the original name done */
	char target[256];                /* CNAME target of the address lookups */
	struct danedns_result res;
	/* address stage results */
	enum dns_status st_a, st_aaaa;
	char why_a[200], why_aaaa[200];
};

static const char *const status_names[] = {
	"ok", "tempfail", "bogus", "insecure", "no-address", "no-tlsa", "no-usable-tlsa"
};

const char *
danedns_status_name(enum danedns_status s)
{
	return (unsigned)s < sizeof(status_names) / sizeof(status_names[0]) ? status_names[s] : "?";
}

static void
danedns_finish(struct danedns_query *q, enum danedns_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
danedns_finish(struct danedns_query *q, enum danedns_status st, const char *fmt, ...)
{
	va_list ap;
	danedns_cb *cb = q->cb;
	void *arg = q->arg;
	size_t i;

	q->res.status = st;
	va_start(ap, fmt);
	vsnprintf(q->res.why, sizeof(q->res.why), fmt, ap);
	va_end(ap);
	q->cb = NULL;
	cb(arg, &q->res);
	for (i = 0; i < q->res.ntlsa; i++)
		dane_tlsa_clear(&q->res.tlsa[i]);
	free(q->res.tlsa);
	free(q);
}

static void danedns_tlsa_start(struct danedns_query *q, const char *base);

static void
danedns_on_tlsa(void *arg, const struct dns_result *r)
{
	struct danedns_query *q = arg;
	size_t i, usable = 0;

	q->qtlsa = NULL;
	switch (r->status) {
	case DNS_TEMPFAIL:
		danedns_finish(q, DANEDNS_TEMPFAIL, "TLSA %s: lookup failed (%s)", r->qname, r->why);
		return;
	case DNS_BOGUS:
		danedns_finish(q, DANEDNS_BOGUS, "TLSA %s: DNSSEC validation failed (%s)", r->qname,
		    r->why);
		return;
	case DNS_INSECURE:
		danedns_finish(q, DANEDNS_INSECURE, "TLSA %s: answer is not DNSSEC-signed (insecure "
		    "zone); DANE requires a signed TLSA RRset", r->qname);
		return;
	case DNS_SECURE_NXDOMAIN:
	case DNS_SECURE_NODATA:
		if (q->target[0] != '\0' && !q->tried_original) {
			/* RFC 7672 2.2.2: fall back to the original name */
			danedns_tlsa_start(q, q->host);
			return;
		}
		danedns_finish(q, DANEDNS_NO_TLSA, "TLSA %s: no such record (securely proven %s); "
		    "publish a TLSA RRset for the relay", r->qname,
		    r->status == DNS_SECURE_NXDOMAIN ? "NXDOMAIN" : "NODATA");
		return;
	case DNS_SECURE:
		break;
	}
	snprintf(q->res.tlsa_name, sizeof(q->res.tlsa_name), "%s", r->qname);
	q->res.tlsa = xcalloc(r->nrr, sizeof(*q->res.tlsa));
	for (i = 0; i < r->nrr; i++) {
		const char *err = NULL;
		struct dane_tlsa t;

		if (dane_tlsa_parse_rdata(r->rr[i].data, r->rr[i].len, &t, &err) < 0) {
			log_warn("TLSA %s: ignoring malformed record: %s", r->qname, err);
			continue;
		}
		if (dane_tlsa_usable(&t))
			usable++;
		q->res.tlsa[q->res.ntlsa++] = t;
	}
	if (usable == 0) {
		danedns_finish(q, DANEDNS_NO_USABLE, "TLSA %s: %zu record(s), none usable for SMTP "
		    "(only DANE-TA(2) and DANE-EE(3) with selector 0/1 and matching type 0/1/2 are)",
		    r->qname, r->nrr);
		return;
	}
	danedns_finish(q, DANEDNS_OK, "TLSA %s: %zu usable record(s), %zu address(es)", r->qname,
	    usable, q->res.naddrs);
}

static void
danedns_tlsa_start(struct danedns_query *q, const char *base)
{
	char name[300];

	if (strcmp(base, q->host) == 0)
		q->tried_original = 1;
	snprintf(name, sizeof(name), "_%d._tcp.%s", q->port, base);
	q->qtlsa = dns_lookup(q->dns, name, DNS_T_TLSA, danedns_on_tlsa, q);
}

static void
danedns_add_addrs(struct danedns_query *q, const struct dns_result *r)
{
	size_t i;

	for (i = 0; i < r->nrr && q->res.naddrs < DANEDNS_MAX_ADDRS; i++) {
		struct sockaddr_storage *ss = &q->res.addrs[q->res.naddrs];

		memset(ss, 0, sizeof(*ss));
		if (r->qtype == DNS_T_A && r->rr[i].len == 4) {
			struct sockaddr_in *sin = (struct sockaddr_in *)ss;
			sin->sin_family = AF_INET;
			sin->sin_port = htons((uint16_t)q->port);
			memcpy(&sin->sin_addr, r->rr[i].data, 4);
			q->res.addrlens[q->res.naddrs++] = sizeof(*sin);
		} else if (r->qtype == DNS_T_AAAA && r->rr[i].len == 16) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons((uint16_t)q->port);
			memcpy(&sin6->sin6_addr, r->rr[i].data, 16);
			q->res.addrlens[q->res.naddrs++] = sizeof(*sin6);
		}
	}
	if (r->cname_followed && q->target[0] == '\0')
		snprintf(q->target, sizeof(q->target), "%s", r->name);
}

static void
danedns_addrs_done(struct danedns_query *q)
{
	enum dns_status a = q->st_a, b = q->st_aaaa;

	if (a == DNS_BOGUS || b == DNS_BOGUS) {
		danedns_finish(q, DANEDNS_BOGUS, "A/AAAA %s: DNSSEC validation failed (%s)", q->host,
		    a == DNS_BOGUS ? q->why_a : q->why_aaaa);
		return;
	}
	if (a == DNS_INSECURE || b == DNS_INSECURE) {
		danedns_finish(q, DANEDNS_INSECURE, "A/AAAA %s: answer is not DNSSEC-signed "
		    "(insecure zone); DANE requires a signed zone for the relay host", q->host);
		return;
	}
	if (q->res.naddrs == 0) {
		if (a == DNS_TEMPFAIL || b == DNS_TEMPFAIL) {
			danedns_finish(q, DANEDNS_TEMPFAIL, "A/AAAA %s: lookup failed (%s)", q->host,
			    a == DNS_TEMPFAIL ? q->why_a : q->why_aaaa);
			return;
		}
		danedns_finish(q, DANEDNS_NO_ADDRESS, "A/AAAA %s: the host has no address "
		    "(securely proven)", q->host);
		return;
	}
	q->res.nnames = 0;
	if (q->target[0] != '\0' && ascii_casecmp(q->target, q->host) != 0) {
		snprintf(q->res.names[q->res.nnames++], sizeof(q->res.names[0]), "%s", q->target);
		snprintf(q->res.names[q->res.nnames++], sizeof(q->res.names[0]), "%s", q->host);
		danedns_tlsa_start(q, q->target);
	} else {
		q->target[0] = '\0';
		snprintf(q->res.names[q->res.nnames++], sizeof(q->res.names[0]), "%s", q->host);
		danedns_tlsa_start(q, q->host);
	}
}

static void
danedns_on_addr(void *arg, const struct dns_result *r)
{
	struct danedns_query *q = arg;

	if (r->qtype == DNS_T_A) {
		q->qa = NULL;
		q->st_a = r->status;
		snprintf(q->why_a, sizeof(q->why_a), "%s", r->why);
	} else {
		q->qaaaa = NULL;
		q->st_aaaa = r->status;
		snprintf(q->why_aaaa, sizeof(q->why_aaaa), "%s", r->why);
	}
	if (r->status == DNS_SECURE)
		danedns_add_addrs(q, r);
	if (--q->pending == 0)
		danedns_addrs_done(q);
}

struct danedns_query *
danedns_lookup(struct dns_ctx *dns, const char *host, int port, danedns_cb *cb, void *arg)
{
	struct danedns_query *q = xcalloc(1, sizeof(*q));

	q->dns = dns;
	snprintf(q->host, sizeof(q->host), "%s", host);
	q->port = port;
	q->cb = cb;
	q->arg = arg;
	q->pending = 2;
	q->qa = dns_lookup(dns, host, DNS_T_A, danedns_on_addr, q);
	q->qaaaa = dns_lookup(dns, host, DNS_T_AAAA, danedns_on_addr, q);
	return q;
}

void
danedns_cancel(struct danedns_query **qp)
{
	struct danedns_query *q = *qp;
	size_t i;

	if (q == NULL)
		return;
	*qp = NULL;
	dns_cancel(&q->qa);
	dns_cancel(&q->qaaaa);
	dns_cancel(&q->qtlsa);
	for (i = 0; i < q->res.ntlsa; i++)
		dane_tlsa_clear(&q->res.tlsa[i]);
	free(q->res.tlsa);
	free(q);
}
