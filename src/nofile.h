/*
 * nofile.h — the file descriptors a process of the service may need at once,
 * and RLIMIT_NOFILE raised to that.  Runs in the parent: at start, before
 * anything is forked, and at a reload before the new generation is forked
 * (its processes inherit the limit; [relay] connections and [relay]
 * sections change with a reload, and each worker keeps that many idle relay
 * connections).  Documented in subproxy.conf(5) under [limits] connections
 * and transactions.
 */
#ifndef SUBPROXY_NOFILE_H
#define SUBPROXY_NOFILE_H

#include <stddef.h>

struct config;

/* Raise the soft limit to what cfg needs with `workers` front workers
 * (never lowers it).  0 when it is enough now, -1 with a sentence for
 * people in err when the hard limit is too low (naming what to lower: at
 * start the keys behind the larger need; at a reload, `reload` != 0, the
 * relays' connections, the only part a reload changes) or raising it
 * failed. */
int nofile_raise(const struct config *cfg, unsigned workers, int reload, char *err,
    size_t errlen);

#endif
