/*
 * proc_spawn.h — starting a child role (signer, keeper, ...): its sockets,
 * the fork, the start-up report.  Runs in the parent (proc_spawn) and in
 * the child until it reports (proc_ready, proc_fail).
 *
 * A role is forked with `nfds` SOCK_SEQPACKET socketpairs, made before the
 * fork, and one more for its start-up report.  The parent keeps one end of
 * each pair (returned in order), the child the other.  The child loads what
 * it must (keys, files), enters its sandbox, then reports once on its
 * start-up socket: PROC_READY (proc.h: u32 count, str text, role bytes) or
 * PROC_ERR (u32 code, str text: one sentence saying what is wrong and how
 * to fix it).  Its start-up socket is closed after the report.
 *
 * Which of a role's sockets serves what is the role's business; by
 * convention a role serving several client slots (one per front worker)
 * gets its sockets grouped by slot: for slot i, fds[i * per_slot + k].
 */
#ifndef SUBPROXY_PROC_SPAWN_H
#define SUBPROXY_PROC_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_msg;

#define PROC_SPAWN_FDS_MAX 1024         /* sockets of one role */

/* The child's main: its start-up socket, its ends of the pairs.  Never
 * returns (it ends with _exit). */
typedef void proc_role_main(void *arg, int ready_fd, const int *fds, size_t nfds);

struct proc_role {
	const char *name;               /* "signer": log role; process name subproxy-NAME */
	const char *loading;            /* "loading DKIM keys": for the timeout message */
	size_t nfds;                    /* socketpairs besides the start-up one: 1..PROC_SPAWN_FDS_MAX */
	proc_role_main *main;
	void *arg;
	/* NULL, or decodes the READY payload into ready_out: 0, or -1 when
	 * malformed (the start then fails) */
	int (*ready)(const uint8_t *payload, size_t len, void *ready_out);
	void *ready_out;
};

/*
 * Fork a role.  In the child: every descriptor but 0-2 and its own sockets
 * is closed, PR_SET_DUMPABLE 0, PR_SET_PDEATHSIG SIGKILL (and exit if the
 * parent is already gone), SIGTERM default, SIGINT/SIGHUP/SIGPIPE ignored,
 * no signal blocked (whatever the parent blocks),
 * log role and process name set; then role->main.
 *
 * In the parent: waits up to `timeout` seconds for the report.  On READY
 * (that role->ready accepts) returns the child's pid, fds_r[0..nfds) holds
 * the parent's ends (blocking, close-on-exec) and *ready_r the READY
 * message (its payload decodes with proc_ready_decode).  Otherwise returns
 * -1 with a sentence in
 * err ("NAME: ..." or the child's own sentence from PROC_ERR), every
 * descriptor closed, fds_r[] set to -1, the child killed and reaped.  A
 * child that died without a report is named with how it ended (exit
 * status, or the signal: SIGSYS says it was a seccomp violation).
 */
pid_t proc_spawn(const struct proc_role *role, int timeout, int *fds_r, struct proc_msg *ready_r,
    char *err, size_t errlen);

/* A wait status in words ("exit status 1", "killed by signal 31 (Bad
 * system call)"); returns buf. */
const char *proc_status_text(int status, char *buf, size_t len);

/* Child: report READY (see proc_ready_encode) and close ready_fd.  Exits
 * the child (status 1) if the report cannot be sent. */
void proc_ready(int ready_fd, uint32_t count, const char *text, const void *extra,
    size_t extralen);

/* Child: report PROC_ERR with `text` and _exit(1). */
void proc_fail(int ready_fd, const char *text) __attribute__((noreturn));

#endif
