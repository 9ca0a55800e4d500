/*
 * owntlsa.h — the start-up check of our own DANE posture: for every
 * listener, the TLSA RRset at _PORT._tcp.HOSTNAME ([server] hostname,
 * [listen] public-port) must be DNSSEC-secure and hold a usable record that
 * matches the certificate chain we serve (same matching code as the relay
 * leg, dane.c).  Anything else refuses the start, with a sentence naming the
 * record looked up, what was found, and the record that would match.
 */
#ifndef SUBPROXY_OWNTLSA_H
#define SUBPROXY_OWNTLSA_H

#include <stddef.h>

struct config;
struct dns_ctx;
struct event_base;
struct tls_server;

/* Runs the event loop until every lookup is answered (each bounded by the
 * DNS timeout).  Returns 0 when every listener passes (one info line each),
 * or -1 with the first failure in err. */
int owntlsa_check(struct event_base *base, struct dns_ctx *dns, const struct config *cfg,
    const struct tls_server *ts, char *err, size_t errlen);

#endif
