/* nofile.c — the descriptors a process may need; RLIMIT_NOFILE raised to them (nofile.h). */
#include "nofile.h"
#include "config.h"
#include "log.h"
#include "signer_client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

/* File descriptors one process may need at once.  A front worker: one per
 * session (its client connection; since the limit is shared by all
 * workers, one worker may hold every connection of the service), and per
 * mail transaction in progress -- at most [limits] transactions per worker,
 * the others wait for MAIL's reply (smtp_txn.c) -- its relay connection
 * and its message spool (a memfd); then the idle relay connections it
 * keeps ([relay] connections per relay, per worker: not tied to a
 * session) and the capability probe's, libunbound's query sockets, a
 * duplicate of the spool's memfd for each request waiting in its signer
 * queue (SIGNER_QUEUE_MAX; messages beyond wait in line without one,
 * signer_client.h), and for the
 * rest stdio, the listeners, its slot's sockets, its 4 metrics scrapers,
 * the connection accepted and refused at the limit, relay connections
 * saying QUIT (closed on the next pass of the loop, before a waiting
 * session takes the slot) and the event loop's own.  RLIMIT_NOFILE is per
 * process, so this is a worker's need whatever [server] workers is.  The
 * parent: the listeners, and the sockets of every worker slot of two
 * generations (signer, keeper TLS and AUTH, recorder: 4 per slot), plus,
 * while a reload forks the new keeper, the child's ends of its 2W
 * socketpairs (one more per slot of the 2W).  Documented in
 * subproxy.conf(5) under [limits] connections and transactions. */
#define NOFILE_PER_SESSION   1
#define NOFILE_PER_TXN       2
#define NOFILE_PROBE         1
#define NOFILE_DNS           128
#define NOFILE_BASE          64
#define NOFILE_PER_SLOT      5

/* The hard limit is below need: say why and what to change. */
static void
too_low(const struct config *cfg, unsigned workers, int reload, int by_worker,
    unsigned long long need, unsigned long long hard, unsigned long long kept, char *err,
    size_t errlen)
{
	char what[96];

	if (reload) {
		snprintf(err, errlen, "[relay] connections = %llu in all, with [limits] connections "
		    "= %llu and transactions = %llu, needs %llu file descriptors, but the hard "
		    "limit on open files (RLIMIT_NOFILE) is %llu; lower [relay] connections, or "
		    "raise the limit to at least %llu and restart", kept,
		    (unsigned long long)cfg->limits.connections,
		    (unsigned long long)cfg->limits.transactions, need, hard, need);
		return;
	}
	if (by_worker)
		snprintf(what, sizeof(what), "[limits] connections = %llu and transactions = %llu",
		    (unsigned long long)cfg->limits.connections,
		    (unsigned long long)cfg->limits.transactions);
	else
		snprintf(what, sizeof(what), "[server] workers = %u", workers);
	snprintf(err, errlen, "%s needs %llu file descriptors, but the hard limit on open "
	    "files (RLIMIT_NOFILE) is %llu; raise it to at least %llu (LimitNOFILE=%llu in "
	    "the systemd unit, or ulimit -n %llu as root before starting) or lower %s", what,
	    need, hard, need, need, need,
	    by_worker ? "[limits] connections or transactions" : "[server] workers");
}

int
nofile_raise(const struct config *cfg, unsigned workers, int reload, char *err, size_t errlen)
{
	unsigned long long worker = NOFILE_PER_SESSION * cfg->limits.connections +
	    NOFILE_PER_TXN * cfg->limits.transactions + NOFILE_PROBE + NOFILE_DNS + SIGNER_QUEUE_MAX +
	    NOFILE_BASE + cfg->nlistens;
	unsigned long long parent = NOFILE_BASE + cfg->nlistens + 2ULL * workers *
	    NOFILE_PER_SLOT;
	unsigned long long need, kept = 0;
	struct rlimit rl;
	rlim_t old;
	size_t i;

	for (i = 0; i < cfg->nrelays; i++)
		kept += cfg->relays[i].connections;
	worker += kept;
	need = worker > parent ? worker : parent;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		snprintf(err, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return -1;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		too_low(cfg, workers, reload, worker >= parent, need,
		    (unsigned long long)rl.rlim_max, kept, err, errlen);
		return -1;
	}
	old = rl.rlim_cur;
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		snprintf(err, errlen, "cannot raise the limit on open files from %llu to %llu: %s",
		    (unsigned long long)old, need, strerror(errno));
		return -1;
	}
	log_info("event=nofile-raised from=%llu to=%llu connections=%llu transactions=%llu "
	    "workers=%u", (unsigned long long)old, need,
	    (unsigned long long)cfg->limits.connections,
	    (unsigned long long)cfg->limits.transactions, workers);
	return 0;
}
