/*
 * dns.h — DNSSEC-validated lookups with libunbound on the front event loop.
 *
 * subproxy never trusts a resolver's AD bit: libunbound validates in process
 * against our own trust anchor.  Every lookup ends in exactly one class —
 * never a boolean:
 *   DNS_SECURE          validated data (rrs below)
 *   DNS_SECURE_NXDOMAIN validated proof that the name does not exist
 *   DNS_SECURE_NODATA   validated proof that the name has no such records
 *   DNS_INSECURE        answer (data or not) from an unsigned part of the tree
 *   DNS_BOGUS           validation failed (why says how)
 *   DNS_TEMPFAIL        no answer in time, SERVFAIL, or a resolver error
 * Caching by TTL is libunbound's (validated RRsets and negative answers).
 * A lookup never blocks: answers come through the callback, which is never
 * called from within dns_lookup() itself, and at the latest after the
 * configured timeout (then DNS_TEMPFAIL).
 */
#ifndef SUBPROXY_DNS_H
#define SUBPROXY_DNS_H

#include <stddef.h>
#include <stdint.h>

#define DNS_T_A      1
#define DNS_T_CNAME  5
#define DNS_T_MX     15
#define DNS_T_TXT    16
#define DNS_T_AAAA   28
#define DNS_T_SRV    33
#define DNS_T_TLSA   52

enum dns_status {
	DNS_SECURE, DNS_SECURE_NXDOMAIN, DNS_SECURE_NODATA, DNS_INSECURE, DNS_BOGUS,
	DNS_TEMPFAIL
};

struct dns_rr {
	uint16_t type;
	uint32_t ttl;
	uint16_t len;
	uint8_t *data;                   /* rdata, owned by the result */
};

struct dns_result {
	enum dns_status status;
	char qname[256];
	int qtype;
	char name[256];                  /* owner of the records after CNAMEs */
	int cname_followed;              /* 1 if the answer went through CNAMEs */
	int nxdomain;                    /* rcode NXDOMAIN (also for INSECURE) */
	size_t nrr;
	struct dns_rr *rr;               /* records of qtype owned by name */
	char why[200];                   /* bogus/tempfail reason for logs */
};

struct dns_ctx;
struct dns_query;
struct event_base;

typedef void dns_cb(void *arg, const struct dns_result *res);

/* Create a validating resolver on `base`.  trust_anchor: file with DS or
 * DNSKEY records (e.g. /usr/share/dns/root.key); unbound_config: optional
 * unbound.conf-syntax file.  timeout_s bounds each lookup.  NULL with a
 * sentence in err on failure. */
struct dns_ctx *dns_ctx_new(struct event_base *base, const char *trust_anchor,
    const char *unbound_config, unsigned timeout_s, char *err, size_t errlen);
void dns_ctx_free(struct dns_ctx **ctxp);

/* Start a lookup.  Returns a cookie for dns_cancel(), or NULL only when out
 * of resources (then no callback). */
struct dns_query *dns_lookup(struct dns_ctx *ctx, const char *name, int rrtype,
    dns_cb *cb, void *arg);

/* Cancel: the callback will not run.  *qp = NULL; NULL is a no-op. */
void dns_cancel(struct dns_query **qp);

/* Pure: parse a DNS response packet for qname/qtype into res (status is set
 * only as far as the packet tells: nxdomain flag, records; the caller sets the
 * security class).  Returns 0, or -1 for a malformed packet. */
int dns_parse_packet(const uint8_t *pkt, size_t len, const char *qname, int qtype,
    struct dns_result *res);
void dns_result_clear(struct dns_result *res);

const char *dns_status_name(enum dns_status s);

/* Convert a wire-format name inside pkt at *off to text ("a.b.c"), following
 * compression pointers safely.  Returns 0 or -1. */
int dns_name_read(const uint8_t *pkt, size_t len, size_t *off, char *out, size_t outlen);

#endif
