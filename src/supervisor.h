/*
 * supervisor.h — the parent process once its sockets are bound: it runs
 * generations of child processes, replaces front workers that die, reloads
 * on SIGHUP and stops on SIGTERM.  Runs in the parent only.
 *
 * A generation is one signer, one keeper and W front workers
 * ([server] workers) that all accept on the same listening sockets (and
 * the metrics socket).  For each worker slot the signer and the keeper
 * serve their own socketpairs (signer_spawn()/keeper_spawn() with W
 * slots); the parent keeps the front-side ends, so a replacement worker
 * gets the very sockets its predecessor had (the clients drop replies
 * whose id they do not know: stale answers meant for the dead worker).
 * Each worker writes its own metrics slice and connection-count slice
 * (metrics.h, connlimit.h) and has its own socket to the audit log's
 * recorder (recorder.h, one recorder for the whole run); two generations
 * exist side by side during a reload, so there are 2W slots in halves A
 * and B that alternate.
 *
 * Policy (doc/sandbox.md, "Restart policy"):
 *  - a front worker killed by SIGSYS (a seccomp violation), or any death of
 *    a signer, keeper or the recorder, or a worker that exits
 *    FRONT_EXIT_PEER (its signer, keeper or recorder broke the protocol or
 *    went away: a broken invariant between trusted parts) stops the
 *    service: exit 1 (fail closed);
 *  - a front worker that ends otherwise (another signal, an exit it was
 *    not asked for) is logged with its status, its metrics are folded, its
 *    connection counts cleared, and a replacement starts in the same slot
 *    while the other workers serve on; more than [server] worker-restarts
 *    replacements within 60 s stop the service, saying so;
 *  - SIGHUP reopens the logs (the recorder's too: a rotation) and
 *    reloads: the configuration is read again (an error, FILE:LINE, keeps
 *    the running set), settings that need a restart are named and keep
 *    their values, the self-audit runs on the new set in a child (a failed
 *    check keeps the running set, logged once per check with its remedy),
 *    then a new generation starts; once all its workers serve, the old one
 *    drains (SIGUSR1: no new sessions, the open ones finish with their set,
 *    within [server] shutdown-timeout, then as at a stop) and its signer
 *    and keeper exit when the parent closes their sockets.  A SIGHUP while
 *    the first generation starts is carried out once it serves, one during
 *    a reload is ignored, one while an older generation still drains is
 *    refused (logged, counted as a failed reload).
 *  - SIGTERM/SIGINT stop every generation gracefully (front's
 *    server_shutdown()), then the signers and keepers; what still runs
 *    [server] shutdown-timeout plus a margin later is killed.
 * It speaks to the service manager (sdnotify.h): READY=1 when every worker
 * of the first generation serves, RELOADING=1 ... READY=1 around a reload,
 * STATUS=, STOPPING=1, and WATCHDOG=1 while every running child beats.
 */
#ifndef SUBPROXY_SUPERVISOR_H
#define SUBPROXY_SUPERVISOR_H

#include <stddef.h>
#include <sys/types.h>

struct config;
struct config_override;

struct supervisor_opts {
	const char *cfgfile;                    /* read again at a reload */
	const struct config_override *ov;       /* -o overrides, applied again */
	size_t nov;
	int *listen_fds;                        /* bound and listening, one per
						 * cfg->listens entry (owned) */
	int metrics_fd;                         /* [metrics] socket, or -1 (owned) */
	unsigned workers;                       /* front workers per generation */
	/* the audit log's recorder ([audit] log), started before (pid 0 and
	 * fds -1 without one): its parent socket and one client socket per
	 * worker slot (2 * workers: slot `half * workers + worker`), owned */
	pid_t recorder_pid;
	int recorder_fd;
	int *recorder_fds;
};

/* Take over the parent: block the signals it waits for, load its seccomp
 * filter (seccomp/parent.policy), run the start-up self-audit (its result
 * is the audit log's start record), start the first generation and
 * supervise until the service stops (the stop record).  With `refusal`
 * the start is refused at once for that reason (a socket that could not be
 * bound), logged and recorded.  cfg is owned from now on.  Returns the
 * exit status: 0 after a requested stop, 1 when the start was refused or
 * the service failed closed. */
int supervisor_run(struct config *cfg, const struct supervisor_opts *o, const char *refusal);

#endif
