/*
 * front.h — the network-facing process: every client and relay session,
 * TLS record layer, DNS (libunbound on the same loop), DANE matching.  It is
 * forked by the parent with the listening sockets, the signer socket and the
 * recorder socket (-1 without an audit log); it
 * loads what it needs (certificate chain, resolver configuration), checks
 * its own TLSA records, then drops privileges and enters its sandbox
 * before it serves anyone.
 */
#ifndef SUBPROXY_FRONT_H
#define SUBPROXY_FRONT_H

struct audit_baseline;
struct config;
struct keeper_fds;

/* What the parent gives one front worker besides the sockets. */
struct front_opts {
	unsigned worker;                        /* slot: its metrics slice; worker 0
						 * runs the live self-audit */
	int metrics_fd;                         /* [metrics] listening socket, or -1 */
	const struct audit_baseline *audit;     /* the start-up audit's results */
	int recorder_fd;                        /* to the audit log's recorder, or -1 */
};

/* Never returns: exits 0 after a clean stop, 1 on a failure. */
void front_main(const struct config *cfg, const int *fds, int signer_fd,
    const struct keeper_fds *kfds, const struct front_opts *o) __attribute__((noreturn));

#endif
