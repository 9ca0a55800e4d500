/* supervisor.c — the parent's loop: deaths and the restart policy, reload,
 * stop, the service manager. */
#include "supervisor.h"
#include "supervisor_int.h"

#include "auditlog.h"
#include "auditrec.h"
#include "connlimit.h"
#include "front.h"
#include "log.h"
#include "metrics.h"
#include "proc_spawn.h"
#include "recorder.h"
#include "sandbox.h"
#include "sdnotify.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#define STATUS_INTERVAL      2000  /* ms between STATUS= updates (when changed) */
#define SERVING_POLL         50    /* ms between looks at starting workers' "serving" flags */
#define TICK                 1000  /* ms: deadlines are looked at at least this often */
#define RESTART_WINDOW_MS    60000 /* [server] worker-restarts counts within this */
#define COMPANION_WAIT_MS    100   /* for the deaths a death brings with it */
#define REAP_BATCH           (2 * (CONFIG_WORKERS_MAX + 2) + 2)
#define RECORD_TIMEOUT_MS    10000 /* the parent waits this long for its record's ack */

struct death {
	pid_t pid;
	int status;
};

static int
clean_exit(int status)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

uint64_t
front_start_ms(const struct config *cfg)
{
	/* the own-TLSA check runs DNS lookups before a worker serves */
	return ((cfg->dns_timeout ? cfg->dns_timeout : 10) * 4 + 30) * 1000;
}

/* ---- the audit log's start and stop records ---- */

/* The start record.  0, or -1 when it was not written. */
static int
record_start(struct sup *S, const struct config *cfg, const struct audit_baseline *bl,
    int failed)
{
	size_t len;
	char *body;
	int st;

	if (S->recorder_fd < 0)
		return 0;
	body = auditrec_start_body(cfg, bl, failed, &len);
	st = recorder_send_sync(S->recorder_fd, ALOG_T_START, body, len, RECORD_TIMEOUT_MS);
	free(body);
	if (st != RECORDER_WRITTEN)
		log_err("event=audit-start-record status=%s", recorder_status_name(st));
	return st == RECORDER_WRITTEN ? 0 : -1;
}

/* The stop record (reason: signal, child-died, refused), once; then every
 * socket to the recorder is closed (it signs and exits once the workers'
 * are closed too). */
static void
record_stop(struct sup *S, const char *reason, const char *detail, int status)
{
	size_t len, i;
	char *body;
	int st;

	if (S->recorder_fd < 0)
		return;
	body = auditrec_stop_body(reason, detail, status, &len);
	st = recorder_send_sync(S->recorder_fd, ALOG_T_STOP, body, len, RECORD_TIMEOUT_MS);
	free(body);
	if (st != RECORDER_WRITTEN)
		log_err("event=audit-stop-record status=%s: the stop was not recorded",
		    recorder_status_name(st));
	close(S->recorder_fd);
	S->recorder_fd = -1;
	for (i = 0; i < 2 * (size_t)S->o->workers; i++)
		if (S->o->recorder_fds[i] >= 0) {
			close(S->o->recorder_fds[i]);
			S->o->recorder_fds[i] = -1;
		}
}

/* A start refused after the recorder began: record it, let the recorder
 * sign and close the log (it would die with this process otherwise). */
static void
refused(struct sup *S, const char *why)
{
	int status, tries;

	if (S->recorder <= 0)
		return;
	record_stop(S, "refused", why, 1);
	for (tries = 0; tries < 200; tries++) {
		if (waitpid(S->recorder, &status, WNOHANG) != 0)
			return;
		usleep(50000);
	}
	kill(S->recorder, SIGKILL);
	(void)waitpid(S->recorder, &status, 0);
}

/* ---- the service manager ---- */

static void
notify_status(struct sup *S)
{
	struct metrics_snapshot *snap = xmalloc(sizeof(*snap));
	char line[160];

	metrics_snapshot(snap);
	snprintf(line, sizeof(line), "%s: %lld sessions, %llu relayed, %llu refused",
	    S->stopping ? "stopping" : "serving", (long long)snap->g[MG_SESSIONS_OPEN],
	    (unsigned long long)metrics_snap_family(snap, MF_RELAYED),
	    (unsigned long long)metrics_snap_family(snap, MF_REFUSED));
	free(snap);
	if (strcmp(line, S->nt.status) != 0) {
		snprintf(S->nt.status, sizeof(S->nt.status), "%s", line);
		sdnotify_send("STATUS=%s", line);
	}
}

/* 1 when the child writing `slice` has not beaten for a watchdog period
 * (logged once until every child beats again). */
static int
stale(struct sup *S, const char *name, pid_t pid, size_t slice)
{
	uint64_t age = metrics_beat_age(slice);

	if (age < S->nt.wd_ms)
		return 0;
	if (!S->nt.wd_withheld)
		log_err("event=watchdog process=%s pid=%ld last-beat=%s%llums: not notifying the "
		    "service manager", name, (long)pid, age == UINT64_MAX ? "never " : "",
		    age == UINT64_MAX ? 0ULL : (unsigned long long)age);
	S->nt.wd_withheld = 1;
	return 1;
}

/* WATCHDOG=1 while the loop of every running child beats within the
 * period (a worker still starting is not asked yet). */
static void
notify_watchdog(struct sup *S)
{
	uint64_t now = metrics_now_ms();
	unsigned h, w;

	if (S->recorder > 0 && stale(S, "recorder", S->recorder, METRICS_SLICE_RECORDER))
		return;
	for (h = 0; h < 2; h++) {
		struct gen *g = S->gens[h];

		if (g == NULL || g->state == G_ENDING)
			continue;
		if ((g->signer > 0 && stale(S, "signer", g->signer,
		    metrics_role_slice(METRICS_SLICE_SIGNER, g->half))) ||
		    (g->keeper > 0 && stale(S, "keeper", g->keeper,
		    metrics_role_slice(METRICS_SLICE_KEEPER, g->half))))
			return;
		for (w = 0; w < g->nslots; w++) {
			struct slot *sl = &g->slots[w];

			if (sl->pid <= 0 || (!sl->served &&
			    now - sl->started_ms < front_start_ms(g->cfg)))
				continue;
			if (stale(S, "front", sl->pid, sl->mslice))
				return;
		}
	}
	if (S->nt.wd_withheld)
		log_info("event=watchdog every process beats again");
	S->nt.wd_withheld = 0;
	sdnotify_send("WATCHDOG=1");
}

void
notify_ready(struct sup *S)
{
	notify_status(S);
	sdnotify_send("READY=1\nSTATUS=%s", S->nt.status);
}

/* Status and watchdog; returns the ms until the next duty. */
static uint64_t
notify_tick(struct sup *S)
{
	uint64_t now = metrics_now_ms(), wait;

	if (now >= S->nt.next_status) {
		notify_status(S);
		S->nt.next_status = now + STATUS_INTERVAL;
	}
	wait = S->nt.next_status - now;
	if (S->nt.wd_ms > 0 && S->nt.ready) {
		if (now >= S->nt.next_wd) {
			notify_watchdog(S);
			S->nt.next_wd = now + S->nt.wd_ms / 2;
		}
		if (S->nt.next_wd - now < wait)
			wait = S->nt.next_wd - now;
	}
	return wait;
}

/* ---- stopping ---- */

/* No worker will be started any more: the parent's copies of the
 * listening sockets go, so that once the workers have closed theirs new
 * clients are refused instead of waiting in a backlog nobody serves. */
static void
close_listeners(struct sup *S)
{
	size_t i;

	for (i = 0; i < S->gs.nlisten; i++)
		if (S->o->listen_fds[i] >= 0) {
			close(S->o->listen_fds[i]);
			S->o->listen_fds[i] = -1;
		}
	if (S->gs.metrics_fd >= 0)
		close(S->gs.metrics_fd);
	S->gs.metrics_fd = -1;
}

static void
stop_begin(struct sup *S, int rc)
{
	unsigned h;

	if (rc > S->rc)
		S->rc = rc;
	if (S->stopping)
		return;
	S->stopping = 1;
	close_listeners(S);
	S->stop_secs = (S->live ? S->live->cfg->shutdown_timeout : 30) + STOP_MARGIN;
	S->stop_deadline = metrics_now_ms() + S->stop_secs * 1000;
	if (!S->nt.stopping_sent) {
		sdnotify_send("STOPPING=1");
		S->nt.stopping_sent = 1;
	}
	S->nt.next_status = 0;
	if (S->audit_pid > 0)
		kill(S->audit_pid, SIGKILL);
	for (h = 0; h < 2; h++) {
		struct gen *g = S->gens[h];

		if (g == NULL)
			continue;
		/* a draining worker stops as at SIGTERM from now on */
		gen_signal_workers(g, SIGTERM, GEN_SIG_STOP);
		if (g->state != G_ENDING)
			g->state = G_DRAINING;
	}
}

/* Stop everything, exit 1, saying why (a line "child-died process=..."
 * or the restart limit). */
void
fail_closed(struct sup *S, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	unsigned h;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_err("%s: stopping the service (fail closed)", why);
	record_stop(S, "child-died", why, 1);
	if (!S->nt.stopping_sent) {
		sdnotify_send("STOPPING=1\nSTATUS=stopping: %s", why);
		S->nt.stopping_sent = 1;
	}
	stop_begin(S, 1);
	/* nothing more is signed or authenticated: a transaction that has not
	 * reached the relay yet fails (451), none is started */
	for (h = 0; h < 2; h++) {
		struct gen *g = S->gens[h];

		if (g == NULL || g->roles_killed)
			continue;
		g->roles_killed = 1;
		if (g->signer > 0)
			kill(g->signer, SIGKILL);
		if (g->keeper > 0)
			kill(g->keeper, SIGKILL);
	}
}

/* ---- deaths ---- */

/* May a front worker be replaced now?  Counts the replacement. */
static int
restart_allowed(struct sup *S)
{
	uint64_t now = metrics_now_ms();

	if (S->restart_cap == 0)
		return 0;
	if (S->restarts[S->restart_pos] != 0 &&
	    now - S->restarts[S->restart_pos] < RESTART_WINDOW_MS)
		return 0;
	S->restarts[S->restart_pos] = now;
	S->restart_pos = (S->restart_pos + 1) % S->restart_cap;
	return 1;
}

static size_t
restarts_recent(const struct sup *S)
{
	uint64_t now = metrics_now_ms();
	size_t i, n = 0;

	for (i = 0; i < S->restart_cap; i++)
		if (S->restarts[i] != 0 && now - S->restarts[i] < RESTART_WINDOW_MS)
			n++;
	return n;
}

static void
role_died(struct sup *S, struct gen *g, const char *name, pid_t pid, int status)
{
	char why[96];

	metrics_fold(metrics_role_slice(strcmp(name, "signer") == 0 ? METRICS_SLICE_SIGNER :
	    METRICS_SLICE_KEEPER, g->half));
	if (g->fds_closed && clean_exit(status)) {
		log_info("event=child-ended process=%s pid=%ld generation=%u: its workers are gone",
		    name, (long)pid, g->id);
		return;
	}
	if (g->roles_killed) {
		log_info("event=child-ended process=%s pid=%ld generation=%u: stopped (fail closed)",
		    name, (long)pid, g->id);
		return;
	}
	if (g->fds_closed && S->stopping) {
		log_err("event=child-failed process=%s pid=%ld %s generation=%u", name, (long)pid,
		    proc_status_text(status, why, sizeof(why)), g->id);
		S->rc = 1;
		return;
	}
	fail_closed(S, "event=child-died process=%s pid=%ld %s generation=%u", name, (long)pid,
	    proc_status_text(status, why, sizeof(why)), g->id);
}

static void
worker_died(struct sup *S, struct gen *g, unsigned w, pid_t pid, int status)
{
	struct slot *sl = &g->slots[w];
	char why[96];

	proc_status_text(status, why, sizeof(why));
	sl->pid = 0;
	metrics_fold(sl->mslice);
	connlimit_clear(sl->cslice);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
		fail_closed(S, "event=child-died process=front pid=%ld %s generation=%u worker=%u: a "
		    "seccomp violation", (long)pid, why, g->id, w);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == FRONT_EXIT_PEER && !S->stopping &&
	    !g->roles_killed) {
		fail_closed(S, "event=child-died process=front pid=%ld %s generation=%u worker=%u: its "
		    "signer, keeper or recorder went away or broke the protocol (the worker's "
		    "event=...-lost line says which)", (long)pid, why, g->id, w);
		return;
	}
	if (sl->stopped || S->stopping) {
		if (clean_exit(status))
			log_info("event=child-ended process=front pid=%ld generation=%u worker=%u",
			    (long)pid, g->id, w);
		else if (S->stopping)
			log_err("event=child-failed process=front pid=%ld %s generation=%u worker=%u",
			    (long)pid, why, g->id, w);
		else
			log_warn("event=child-ended process=front pid=%ld %s generation=%u worker=%u",
			    (long)pid, why, g->id, w);
		if (S->stopping && !clean_exit(status))
			S->rc = 1;
		return;
	}
	if (g->state == G_STARTING && g == S->incoming) {
		log_err("event=worker-died process=front pid=%ld %s generation=%u worker=%u during "
		    "its start-up", (long)pid, why, g->id, w);
		reload_abort(S, "a worker ended during its start-up (see the log lines above)");
		return;
	}
	if (g->state == G_STARTING) {
		/* the first generation: the start is refused (front said why) */
		fail_closed(S, "event=child-died process=front pid=%ld %s generation=%u worker=%u",
		    (long)pid, why, g->id, w);
		return;
	}
	if (!restart_allowed(S)) {
		fail_closed(S, "event=restart-limit process=front pid=%ld %s generation=%u worker=%u: "
		    "%zu front workers were replaced within the last %d s and [server] "
		    "worker-restarts allows %zu", (long)pid, why, g->id, w, restarts_recent(S),
		    RESTART_WINDOW_MS / 1000, S->restart_cap);
		return;
	}
	log_err("event=worker-died process=front pid=%ld %s generation=%u worker=%u: replacing it "
	    "(%zu of at most %zu replacements per %d s)", (long)pid, why, g->id, w,
	    restarts_recent(S), S->restart_cap, RESTART_WINDOW_MS / 1000);
	if (gen_fork_front(g, w, &S->gs) < 0) {
		fail_closed(S, "event=worker-replace-failed generation=%u worker=%u fork: %s",
		    g->id, w, strerror(errno));
		return;
	}
	log_info("event=worker-replaced generation=%u worker=%u pid=%ld previous=%ld", g->id, w,
	    (long)sl->pid, (long)pid);
}

static void
recorder_died(struct sup *S, int status)
{
	char why[96];
	pid_t pid = S->recorder;

	S->recorder = 0;
	metrics_fold(METRICS_SLICE_RECORDER);
	proc_status_text(status, why, sizeof(why));
	if (S->recorder_fd < 0 && clean_exit(status)) {
		log_info("event=child-ended process=recorder pid=%ld: the audit log is closed",
		    (long)pid);
		return;
	}
	fail_closed(S, "event=child-died process=recorder pid=%ld %s", (long)pid, why);
}

/* Who was pid?  Returns 1 (a role: *role set), 2 (a worker: *w set), 0. */
static int
find_child(struct sup *S, pid_t pid, struct gen **gp, const char **role, unsigned *w)
{
	unsigned h, i;

	for (h = 0; h < 2; h++) {
		struct gen *g = S->gens[h];

		if (g == NULL)
			continue;
		*gp = g;
		if (pid == g->signer || pid == g->keeper) {
			*role = pid == g->signer ? "signer" : "keeper";
			if (pid == g->signer)
				g->signer = 0;
			else
				g->keeper = 0;
			return 1;
		}
		for (i = 0; i < g->nslots; i++)
			if (g->slots[i].pid == pid) {
				*w = i;
				return 2;
			}
	}
	return 0;
}

static size_t
reap_some(struct death *d, size_t n, size_t cap)
{
	pid_t pid;
	int status;

	while (n < cap && (pid = waitpid(-1, &status, WNOHANG)) > 0) {
		d[n].pid = pid;
		d[n].status = status;
		n++;
	}
	return n;
}

/* Reap what has ended and apply the policy.  One death often brings
 * others (a dead signer makes its workers exit 1): those are collected
 * first, and signers and keepers are judged before workers, so that a
 * lost signer stops the service rather than having its workers replaced. */
static void
reap_all(struct sup *S)
{
	struct death d[REAP_BATCH];
	size_t n, i;
	int pass;

	if ((n = reap_some(d, 0, REAP_BATCH)) == 0)
		return;
	for (i = 0; i < n; i++)
		if (WIFEXITED(d[i].status) && WEXITSTATUS(d[i].status) != 0 && !S->stopping) {
			usleep(COMPANION_WAIT_MS * 1000);
			n = reap_some(d, n, REAP_BATCH);
			break;
		}
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < n; i++) {
			struct gen *g = NULL;
			const char *role = NULL;
			unsigned w = 0;
			int kind;

			if (d[i].pid == 0)
				continue;
			if (d[i].pid == S->audit_pid) {
				S->audit_status = d[i].status;
				S->audit_pid = 0;
				d[i].pid = 0;
				continue;
			}
			if (d[i].pid == S->recorder) {
				recorder_died(S, d[i].status);
				d[i].pid = 0;
				continue;
			}
			kind = find_child(S, d[i].pid, &g, &role, &w);
			if (kind == 1) {
				role_died(S, g, role, d[i].pid, d[i].status);
				d[i].pid = 0;
			} else if (kind == 2 && pass == 1) {
				worker_died(S, g, w, d[i].pid, d[i].status);
				d[i].pid = 0;
			} else if (kind == 0) {
				d[i].pid = 0;   /* a child of a child role's spawn, already judged */
			}
		}
}

/* ---- generations ---- */

static void
gens_tick(struct sup *S)
{
	uint64_t now = metrics_now_ms();
	unsigned h, w;

	for (h = 0; h < 2; h++) {
		struct gen *g = S->gens[h];

		if (g == NULL)
			continue;
		for (w = 0; w < g->nslots; w++)
			if (g->slots[w].pid > 0 && !g->slots[w].served &&
			    metrics_serving(g->slots[w].mslice))
				g->slots[w].served = 1;
		if (g->state == G_STARTING && g->id == 1 && !S->stopping) {
			if (gen_serving(g) == g->nslots) {
				g->state = G_LIVE;
				S->live = g;
				S->nt.ready = 1;
				notify_ready(S);
				log_info("event=ready generation=%u workers=%u%s", g->id, g->nslots,
				    sdnotify_enabled() ? " notified=yes" : "");
				S->nt.next_status = now + STATUS_INTERVAL;
				S->nt.next_wd = now;
				if (S->reload_pending) {
					S->reload_pending = 0;
					reload_begin(S);
				}
			} else if (now >= g->deadline_ms) {
				fail_closed(S, "event=start-timeout: %u of %u front workers serve "
				    "after %llu s", gen_serving(g), g->nslots,
				    (unsigned long long)front_start_ms(g->cfg) / 1000);
			}
		}
		if ((g->state == G_DRAINING || S->stopping) && gen_running(g) == 0 &&
		    !g->fds_closed) {
			/* its workers are gone: the signer and keeper may go */
			gen_close_fds(g);
			g->state = G_ENDING;
			g->deadline_ms = now + ROLE_EXIT_TIMEOUT_MS;
		}
		if (g->state == G_DRAINING && !S->stopping && now >= g->deadline_ms) {
			log_err("event=drain-timeout generation=%u workers=%u: killing them", g->id,
			    gen_running(g));
			gen_signal_workers(g, SIGKILL, GEN_SIG_STOP);
			g->deadline_ms = now + ROLE_EXIT_TIMEOUT_MS;
		}
		if (g->state == G_ENDING && !gen_gone(g) && now >= g->deadline_ms) {
			log_err("event=end-timeout generation=%u: its signer/keeper did not exit; "
			    "killing them", g->id);
			gen_kill_all(g, SIGKILL);
			g->deadline_ms = now + ROLE_EXIT_TIMEOUT_MS;
		}
		if (g->state == G_ENDING && gen_gone(g) && (g != S->live || S->stopping)) {
			log_info("event=generation-ended generation=%u", g->id);
			if (S->incoming == g)
				S->incoming = NULL;
			if (S->outgoing == g)
				S->outgoing = NULL;
			if (S->live == g)
				S->live = NULL;
			gen_free(&S->gens[h]);
		}
	}
}

/* ---- the loop ---- */

static int
everything_gone(const struct sup *S)
{
	return S->gens[0] == NULL && S->gens[1] == NULL && S->audit_pid <= 0 &&
	    S->recorder <= 0;
}

static void
on_signal(struct sup *S, int sig)
{
	switch (sig) {
	case SIGHUP:
		log_info("event=sighup: reopening logs, reloading %s", S->o->cfgfile);
		log_reopen();
		if (S->live != NULL)
			gen_signal_workers(S->live, SIGHUP, GEN_SIG_ALL);
		if (S->recorder > 0)
			kill(S->recorder, SIGHUP);      /* the audit log's rotation */
		reload_begin(S);
		break;
	case SIGTERM:
	case SIGINT:
		if (S->stopping)
			break;
		log_info("event=signal signal=%s: stopping", sig == SIGTERM ? "TERM" : "INT");
		stop_begin(S, 0);
		break;
	default:
		break;          /* SIGCHLD: every iteration reaps */
	}
}

static int
run(struct sup *S)
{
	struct signalfd_siginfo si;
	struct pollfd pfd[2];
	uint64_t wait;
	int n;

	for (;;) {
		reap_all(S);
		if (S->stopping && S->gens[0] == NULL && S->gens[1] == NULL)
			record_stop(S, "signal", NULL, S->rc);
		if (S->stopping && everything_gone(S))
			break;
		if (S->stopping && metrics_now_ms() >= S->stop_deadline) {
			log_err("event=stop-timeout: processes still running %llu s after the stop "
			    "began; killing them", (unsigned long long)S->stop_secs);
			return 1;
		}
		gens_tick(S);
		if (!S->stopping && (S->rstate == R_STARTING || S->rstate == R_SWITCHING))
			reload_tick(S);
		audit_tick(S, 0);
		wait = notify_tick(S);
		if (wait > TICK)
			wait = TICK;
		if (!S->nt.ready || S->rstate == R_STARTING || S->rstate == R_SWITCHING ||
		    S->stopping)
			wait = wait > SERVING_POLL ? SERVING_POLL : wait;
		pfd[0].fd = S->sigfd;
		pfd[0].events = POLLIN;
		n = 1;
		if (S->audit != NULL && audit_job_fd(S->audit) >= 0) {
			pfd[1].fd = audit_job_fd(S->audit);
			pfd[1].events = POLLIN;
			n = 2;
		}
		if (poll(pfd, (nfds_t)n, (int)wait) <= 0)
			continue;
		if (n == 2 && (pfd[1].revents & (POLLIN | POLLHUP)))
			audit_tick(S, 1);
		/* a worker may have become ready since the last look: a SIGHUP
		 * right after the listeners accept is a reload, not ignored */
		gens_tick(S);
		while (read(S->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			on_signal(S, (int)si.ssi_signo);
	}
	return S->rc;
}

/* Kill whatever is left (a stop that timed out). */
static void
kill_rest(struct sup *S)
{
	unsigned h;
	int i;

	for (h = 0; h < 2; h++)
		if (S->gens[h] != NULL)
			gen_kill_all(S->gens[h], SIGKILL);
	if (S->audit_pid > 0)
		kill(S->audit_pid, SIGKILL);
	if (S->recorder > 0)
		kill(S->recorder, SIGKILL);
	for (i = 0; i < 100 && waitpid(-1, NULL, WNOHANG) >= 0; i++)
		usleep(20000);
}

int
supervisor_run(struct config *cfg, const struct supervisor_opts *o, const char *refusal)
{
	struct sup S;
	struct audit_baseline bl;
	struct gen *g;
	sigset_t set;
	char err[8192], *line, *save = NULL;
	size_t i;
	int rc = 1, ok;

	memset(&S, 0, sizeof(S));
	memset(&bl, 0, sizeof(bl));
	S.o = o;
	S.sigfd = -1;
	S.gs.listen_fds = o->listen_fds;
	S.gs.nlisten = cfg->nlistens;
	S.gs.metrics_fd = o->metrics_fd;
	S.gs.recorder_fds = o->recorder_fds;
	S.recorder = o->recorder_pid > 0 ? o->recorder_pid : 0;
	S.recorder_fd = o->recorder_fd;
	S.next_id = 1;
	S.nt.wd_ms = sdnotify_watchdog_usec() / 1000;
	S.restart_cap = (size_t)cfg->worker_restarts;
	S.restarts = xcalloc(S.restart_cap ? S.restart_cap : 1, sizeof(*S.restarts));
	if (refusal != NULL) {
		log_err("refusing to start: %s", refusal);
		refused(&S, refusal);
		goto out;
	}
	/* the signals are read from a signalfd; children start with them
	 * blocked (front unblocks its own once its handlers are in place) */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((S.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		snprintf(err, sizeof(err), "signalfd: %s", strerror(errno));
		goto refuse;
	}
	/* from here on the parent and every process it starts run under its
	 * filter: start and reload take the same paths */
	if (sandbox_seccomp("parent", err, sizeof(err)) < 0)
		goto refuse;
	/* the same audit as --check, in a child process: refuse to start on
	 * any failed required check; the result is the audit log's start
	 * record */
	ok = audit_startup(cfg, &bl, err, sizeof(err)) == 0;
	if (record_start(&S, cfg, &bl, !ok) < 0 && ok) {
		snprintf(err, sizeof(err), "audit: the start record cannot be written to %s",
		    cfg->audit_log);
		goto refuse;
	}
	if (!ok) {
		for (line = strtok_r(err, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			log_err("refusing to start: self-audit: %s", line);
		log_err("refusing to start: run subproxy -c %s --check for the full report",
		    o->cfgfile);
		refused(&S, "self-audit failed");
		goto out;
	}
	for (i = 0; i < bl.nchecks; i++)
		metrics_check_add(bl.checks[i].id, bl.checks[i].ok);
	g = gen_new(S.next_id++, 0, o->workers, cfg, &bl);
	cfg = NULL;
	if (gen_spawn_roles(g, err, sizeof(err)) < 0) {
		gen_free(&g);
		goto refuse;
	}
	S.gens[0] = g;
	g->deadline_ms = metrics_now_ms() + front_start_ms(g->cfg);
	if (gen_fork_fronts(g, &S.gs) < 0)
		fail_closed(&S, "refusing to start: cannot fork a front worker: %s",
		    strerror(errno));
	log_info("event=parent-ready signer=%ld keeper=%ld recorder=%ld workers=%u generation=%u",
	    (long)g->signer, (long)g->keeper, (long)S.recorder, gen_running(g), g->id);
	rc = run(&S);
	if (!everything_gone(&S)) {
		kill_rest(&S);
		rc = 1;
	}
	goto out;
refuse:
	log_err("refusing to start: %s", err);
	refused(&S, err);
out:
	for (i = 0; i < 2; i++)
		gen_free(&S.gens[i]);
	audit_job_abandon(&S.audit);
	audit_baseline_clear(&bl);
	config_free(&S.rcfg);
	config_free(&cfg);
	free(S.restarts);
	if (S.sigfd >= 0)
		close(S.sigfd);
	return rc;
}
