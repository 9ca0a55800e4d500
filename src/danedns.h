/*
 * danedns.h — the lookup part of SMTP DANE (RFC 7672 section 2.2): for a
 * relay host and port, DNSSEC-validated addresses and the TLSA RRset, with
 * CNAME handling.  Mechanism (matching) is dane.c; decision (what a failure
 * means for the client) is relay.c.
 *
 * RFC 7672 2.2.2: when the host name's address records come through a
 * secure CNAME chain, the TLSA records are looked up at the chain's target
 * first and, when none exist there, at the original name; both names are
 * reference identifiers for DANE-TA name checks.
 */
#ifndef SUBPROXY_DANEDNS_H
#define SUBPROXY_DANEDNS_H

#include <stddef.h>
#include <sys/socket.h>

#include "dane.h"

#define DANEDNS_MAX_ADDRS 8

enum danedns_status {
	DANEDNS_OK,          /* secure addresses and at least one usable TLSA record */
	DANEDNS_TEMPFAIL,    /* a lookup failed or timed out: try later (4.4.3) */
	DANEDNS_BOGUS,       /* DNSSEC validation failed (4.7.5) */
	DANEDNS_INSECURE,    /* addresses or TLSA not DNSSEC-signed */
	DANEDNS_NO_ADDRESS,  /* securely: the host has no address */
	DANEDNS_NO_TLSA,     /* securely: no TLSA RRset exists */
	DANEDNS_NO_USABLE    /* TLSA RRset with only unusable records */
};

struct danedns_result {
	enum danedns_status status;
	char why[400];                   /* names the record looked up and what was found */
	struct sockaddr_storage addrs[DANEDNS_MAX_ADDRS];
	socklen_t addrlens[DANEDNS_MAX_ADDRS];
	size_t naddrs;
	struct dane_tlsa *tlsa;
	size_t ntlsa;
	char names[2][256];              /* reference identifiers */
	size_t nnames;
	char tlsa_name[300];             /* the TLSA owner that was used */
};

struct dns_ctx;
struct danedns_query;

typedef void danedns_cb(void *arg, const struct danedns_result *res);

/* Look up host's A and AAAA and the TLSA RRset of _PORT._tcp.host.  The
 * callback runs exactly once (never from within this call) unless
 * cancelled. */
struct danedns_query *danedns_lookup(struct dns_ctx *dns, const char *host, int port,
    danedns_cb *cb, void *arg);
void danedns_cancel(struct danedns_query **qp);

const char *danedns_status_name(enum danedns_status s);

#endif
