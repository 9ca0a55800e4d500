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

#include <stddef.h>

struct audit_baseline;
struct config;
struct keeper_fds;

/* What the parent gives one front worker besides the sockets. */
struct front_opts {
	unsigned worker;                        /* 0..workers-1 in its generation;
						 * worker 0 runs the live self-audit */
	unsigned workers;                       /* front workers in its generation */
	unsigned generation;                    /* 1, 2, ... (a reload starts the next) */
	size_t mslice;                          /* its metrics slice (metrics.h) */
	size_t cslice;                          /* its connection-count slice (connlimit.h) */
	int metrics_fd;                         /* [metrics] listening socket, or -1 */
	const struct audit_baseline *audit;     /* the start-up (or reload) audit's results */
	int recorder_fd;                        /* to the audit log's recorder, or -1 */
};

/* Exit statuses of a worker, for the parent's restart policy (supervisor.h). */
#define FRONT_EXIT_OK    0      /* a clean stop or drain */
#define FRONT_EXIT_FAIL  1      /* it could not start or serve (its log says why) */
#define FRONT_EXIT_PEER  3      /* its signer, keeper or recorder went away or broke
				 * the protocol: a broken invariant between trusted
				 * parts, which the parent answers by failing closed */

/* Signals (from the parent): SIGTERM/SIGINT stop (server_shutdown()),
 * SIGUSR1 drains (server_drain(): a newer generation serves; the metrics
 * socket and the live self-audit stop too, and the worker's "serving" flag
 * is cleared once it accepts nothing more), SIGHUP reopens the logs.
 * Never returns: exits with one of the statuses above. */
void front_main(const struct config *cfg, const int *fds, int signer_fd,
    const struct keeper_fds *kfds, const struct front_opts *o) __attribute__((noreturn));

#endif
