/*
 * owntlsa.h — the start-up check of our own DANE posture: for every
 * listener, the TLSA RRset at _PORT._tcp.HOSTNAME ([server] hostname,
 * [listen] public-port) must be DNSSEC-secure and hold a usable record that
 * matches the certificate chain we serve (same matching code as the relay
 * leg, dane.c).  Anything else refuses the start, with a sentence naming the
 * record looked up, what was found, and the record that would match.
 * owntlsa_judge() is the decision alone, shared with the self-audit
 * (audit.h, check dane.own.LISTENER).
 */
#ifndef SUBPROXY_OWNTLSA_H
#define SUBPROXY_OWNTLSA_H

#include <stddef.h>

struct config;
struct dane_cert;
struct dns_ctx;
struct dns_result;
struct event_base;
struct tls_server;

struct owntlsa_verdict {
	int ok;                 /* a usable record matches the chain */
	size_t nrecords;        /* well-formed TLSA records in the answer */
	size_t nusable;         /* of those, usable for SMTP (usage 2/3) */
	const char *verdict;    /* dane_verdict_name(), "" when not matched at all */
	int matched;            /* index of the matching record, or -1 */
	char why[1200];         /* !ok: what was found, naming listener and record */
	char fix[600];          /* !ok: "publish, DNSSEC-signed: NAME. IN TLSA 3 1 1 HEX"
				 * or what else to do */
};

/* Judge the answer `res` to the TLSA lookup of `name` (_PORT._tcp.HOSTNAME)
 * for the listener called `listener`, against chain[0..nchain) (leaf first;
 * hostname is the reference identifier for DANE-TA).  Fills *v; returns
 * v->ok. */
int owntlsa_judge(const struct dns_result *res, const char *name, const char *listener,
    const char *hostname, const struct dane_cert *chain, size_t nchain,
    struct owntlsa_verdict *v);

/* Runs the event loop until every lookup is answered (each bounded by the
 * DNS timeout).  Returns 0 when every listener passes (one info line each),
 * or -1 with the first failure in err ("WHY; FIX"). */
int owntlsa_check(struct event_base *base, struct dns_ctx *dns, const struct config *cfg,
    const struct tls_server *ts, char *err, size_t errlen);

#endif
