/*
 * supervisor_int.h — generations and their worker slots, and the
 * supervisor's state, shared by supervisor.c (the loop and its policy),
 * reload.c (SIGHUP) and generation.c (starting and ending the processes).
 * Parent only; not for other modules.
 */
#ifndef SUBPROXY_SUPERVISOR_INT_H
#define SUBPROXY_SUPERVISOR_INT_H

#include "audit.h"
#include "config.h"
#include "keeper.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum gen_state {
	G_STARTING,             /* its workers have not all served yet */
	G_LIVE,                 /* new sessions go here */
	G_DRAINING,             /* told to drain (SIGUSR1) or stop (SIGTERM) */
	G_ENDING                /* its workers are gone, its sockets closed: the signer
				 * and keeper are expected to exit */
};

/* One front worker slot: the front-side ends of its sockets stay with the
 * parent for the whole life of the generation. */
struct slot {
	pid_t pid;              /* the worker, or 0 */
	int signer_fd;
	struct keeper_fds kfds; /* tls_fd, auth_fd and the key's description */
	size_t mslice;          /* metrics slice */
	size_t cslice;          /* connection-count slice */
	uint64_t started_ms;    /* when the current worker was forked */
	int served;             /* it said "serving" since it was forked */
	int stopped;            /* it was sent SIGUSR1 or SIGTERM */
};

struct gen {
	unsigned id;            /* 1, 2, ... */
	unsigned half;          /* 0 or 1: which slices its slots use */
	enum gen_state state;
	struct config *cfg;     /* owned */
	struct audit_baseline bl;
	pid_t signer, keeper;   /* 0 once reaped */
	struct slot *slots;
	unsigned nslots;
	uint64_t deadline_ms;   /* G_STARTING: all must serve by then; G_DRAINING:
				 * workers still running are killed; G_ENDING: the
				 * signer and keeper are killed */
	int fds_closed;         /* the parent closed its ends of the slot sockets */
	int roles_killed;       /* its signer and keeper were killed (fail closed) */
};

/* What a worker gets besides its slot. */
struct gen_sockets {
	const int *listen_fds;
	size_t nlisten;
	int metrics_fd;
	const int *recorder_fds;        /* by connection slice (slot.cslice); -1 none */
};

/* A generation with its config and audit results (both owned from now
 * on), its slots' slices set; nothing started. */
struct gen *gen_new(unsigned id, unsigned half, unsigned nslots, struct config *cfg,
    struct audit_baseline *bl);

/* Fork the signer and the keeper with one client slot per worker (they
 * load their secrets themselves).  Returns 0, or -1 with a sentence in err
 * (nothing left running). */
int gen_spawn_roles(struct gen *g, char *err, size_t errlen);

/* Fork the worker of slot w (its slices must be clear: a predecessor's
 * are folded and cleared when it is reaped).  Returns its pid, or -1
 * (fork failed, errno). */
pid_t gen_fork_front(struct gen *g, unsigned w, const struct gen_sockets *gs);

/* Make the generation's TLS session-ticket master (tls_tickets_init())
 * and fork every worker.  Returns 0, or -1 (fork failed, errno). */
int gen_fork_fronts(struct gen *g, const struct gen_sockets *gs);

/* Close the parent's ends of every slot's sockets: once the workers are
 * gone too, the signer and keeper see end-of-file and exit 0. */
void gen_close_fds(struct gen *g);

/* Send sig to the running workers: GEN_SIG_ALL every one; GEN_SIG_STOP
 * every one, marking them stopped (their end is then expected); GEN_SIG_NEW
 * only those not yet marked, marking them.  gen_kill_all() signals the
 * signer and keeper too. */
enum gen_sig { GEN_SIG_ALL, GEN_SIG_STOP, GEN_SIG_NEW };
void gen_signal_workers(struct gen *g, int sig, enum gen_sig which);
void gen_kill_all(struct gen *g, int sig);

/* Workers running; workers that have served since their fork. */
unsigned gen_running(const struct gen *g);
unsigned gen_serving(const struct gen *g);

/* 1 when nothing of the generation runs any more. */
int gen_gone(const struct gen *g);

/* Open connections counted in its slots (connlimit.h). */
unsigned gen_sessions(const struct gen *g);

void gen_free(struct gen **gp);

/* ---- the supervisor's state (supervisor.c, reload.c) ---- */

#define STOP_MARGIN          15    /* seconds past [server] shutdown-timeout before SIGKILL */
#define SWITCH_TIMEOUT_MS    10000 /* for old workers to stop accepting after a reload */
#define ROLE_EXIT_TIMEOUT_MS 10000 /* for a signer/keeper to exit once its sockets closed */

struct supervisor_opts;

enum reload_state { R_IDLE, R_AUDIT, R_STARTING, R_SWITCHING };

/* What the parent tells the service manager (sdnotify.h). */
struct notify {
	int ready;              /* READY=1 sent (the first generation serves) */
	int stopping_sent;
	uint64_t wd_ms;         /* watchdog period, 0 none */
	uint64_t next_wd, next_status;
	int wd_withheld;        /* a child's loop did not beat in time */
	char status[160];
};

struct sup {
	const struct supervisor_opts *o;
	struct gen_sockets gs;
	struct gen *gens[2];            /* by half */
	struct gen *live;               /* new sessions go to its workers */
	unsigned next_id;
	int sigfd;
	/* reload */
	enum reload_state rstate;
	int reload_pending;             /* a SIGHUP came while the first generation started */
	struct config *rcfg;            /* R_AUDIT: the configuration being audited */
	struct audit_job *audit;
	pid_t audit_pid;                /* 0 once reaped */
	int audit_status, audit_timedout;
	struct gen *incoming, *outgoing;
	uint64_t switch_deadline;
	/* worker replacements: the times of the last worker_restarts ones */
	uint64_t *restarts;
	size_t restart_cap, restart_pos;
	/* stop */
	int stopping, rc;
	uint64_t stop_deadline, stop_secs;
	/* the audit log's recorder (one for the run), 0 once reaped */
	pid_t recorder;
	int recorder_fd;                /* the parent's socket; -1 once the stop is recorded */
	struct notify nt;
};

/* supervisor.c */
uint64_t front_start_ms(const struct config *cfg);     /* a worker's start-up may take */
void notify_ready(struct sup *S);                       /* READY=1 with STATUS= */
void fail_closed(struct sup *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* reload.c: a reload (reload_begin, at SIGHUP: deferred while the first
 * generation starts, ignored during a reload), then the audit child's report
 * (audit_tick, when its pipe is readable or it was reaped), then the new
 * generation's start and the old one's drain (reload_tick, every
 * iteration while R_STARTING or R_SWITCHING). */
void reload_begin(struct sup *S);
void audit_tick(struct sup *S, int readable);
void reload_tick(struct sup *S);
/* The new generation cannot serve (a worker died during its start-up):
 * end it, keep the running one, say why. */
void reload_abort(struct sup *S, const char *why);

#endif
