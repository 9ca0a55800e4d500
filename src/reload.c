/* reload.c — SIGHUP: read the configuration again, audit it in a child,
 * start a new generation, drain the old one (parent; supervisor.h). */
#include "supervisor.h"
#include "supervisor_int.h"

#include "log.h"
#include "metrics.h"
#include "nofile.h"
#include "sdnotify.h"
#include "util.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
reload_failed(struct sup *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reload_failed(struct sup *S, const char *fmt, ...)
{
	char why[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_err("event=reload-failed %s; still serving with the running configuration", why);
	metrics_count(MF_RELOADS, MR_FAILED);
	config_free(&S->rcfg);
	S->rstate = R_IDLE;
	S->incoming = NULL;
	notify_ready(S);
}

void
reload_begin(struct sup *S)
{
	struct gen *other;
	struct config *nw;
	char err[8192], names[256];

	if (S->stopping)
		return;
	if (S->live == NULL) {
		/* the first generation is still starting: reload once it serves
		 * (the file may have changed since it was read) */
		log_info("event=reload-deferred: the service is still starting; reloading once "
		    "it serves");
		S->reload_pending = 1;
		return;
	}
	if (S->rstate != R_IDLE) {
		log_warn("event=reload-ignored: a reload is already under way");
		return;
	}
	if ((other = S->gens[!S->live->half]) != NULL) {
		log_err("event=reload-refused reason=draining: generation %u is still draining (%u "
		    "sessions, at most %llu s more); still serving with the running configuration: "
		    "send SIGHUP again once it has ended", other->id, gen_sessions(other),
		    (unsigned long long)(other->deadline_ms > metrics_now_ms() ?
		    (other->deadline_ms - metrics_now_ms()) / 1000 : 0));
		metrics_count(MF_RELOADS, MR_FAILED);
		return;
	}
	sdnotify_reloading();
	S->rstate = R_AUDIT;
	if ((nw = config_load(S->o->cfgfile, S->o->ov, S->o->nov, err, sizeof(err))) == NULL) {
		reload_failed(S, "%s", err);
		return;
	}
	S->rcfg = nw;
	if (config_keep_restart_only(nw, S->live->cfg, names, sizeof(names)) > 0)
		log_warn("event=reload-restart-only settings=\"%s\": these change only with a "
		    "restart; they keep their running values", names);
	/* the new generation inherits the parent's limit: its workers keep the
	 * reloaded relays' idle connections */
	if (nofile_raise(nw, S->o->workers, 1, err, sizeof(err)) < 0) {
		reload_failed(S, "%s", err);
		return;
	}
	if ((S->audit = audit_job_start(nw, err, sizeof(err))) == NULL) {
		reload_failed(S, "%s", err);
		return;
	}
	S->audit_pid = audit_job_pid(S->audit);
	S->audit_timedout = 0;
	log_info("event=reload-audit pid=%ld", (long)S->audit_pid);
}

/* The audit of a reload is complete (read and reaped): start the new
 * generation, or keep the running one. */
static void
reload_audited(struct sup *S)
{
	struct audit_baseline bl;
	struct gen *g;
	char err[8192], *line, *save = NULL;

	if (audit_job_finish(&S->audit, S->audit_status, S->audit_timedout, &bl, err,
	    sizeof(err)) < 0) {
		for (line = strtok_r(err, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			log_err("event=reload-refused self-audit: %s", line);
		reload_failed(S, "reason=self-audit (run subproxy -c %s --check for the full "
		    "report)", S->o->cfgfile);
		return;
	}
	g = gen_new(S->next_id++, !S->live->half, S->o->workers, S->rcfg, &bl);
	S->rcfg = NULL;
	if (gen_spawn_roles(g, err, sizeof(err)) < 0) {
		gen_free(&g);
		reload_failed(S, "generation=%u: %s", S->next_id - 1, err);
		return;
	}
	S->gens[g->half] = g;
	S->incoming = g;
	S->rstate = R_STARTING;
	g->deadline_ms = metrics_now_ms() + front_start_ms(g->cfg);
	if (gen_fork_fronts(g, &S->gs) < 0)
		g->deadline_ms = 0;     /* failed now: reload_tick() aborts */
	log_info("event=reload-start generation=%u signer=%ld keeper=%ld workers=%u", g->id,
	    (long)g->signer, (long)g->keeper, gen_running(g));
}

/* The new generation cannot serve: end it, keep the running one. */
void
reload_abort(struct sup *S, const char *why)
{
	struct gen *g = S->incoming;

	gen_signal_workers(g, SIGKILL, GEN_SIG_STOP);
	gen_close_fds(g);
	g->state = G_ENDING;
	g->deadline_ms = metrics_now_ms() + ROLE_EXIT_TIMEOUT_MS;
	reload_failed(S, "generation=%u: %s", g->id, why);
}

void
reload_tick(struct sup *S)
{
	struct gen *g = S->incoming, *old;
	unsigned h, w, serving = 0;

	if (S->rstate == R_STARTING) {
		if (gen_serving(g) < g->nslots) {
			if (metrics_now_ms() >= g->deadline_ms)
				reload_abort(S, g->deadline_ms == 0 ? "cannot fork its workers" :
				    "its workers did not all serve in time (see the log lines above)");
			return;
		}
		/* the new generation serves: the old one drains */
		old = S->live;
		old->state = G_DRAINING;
		old->deadline_ms = metrics_now_ms() +
		    (2 * old->cfg->shutdown_timeout + STOP_MARGIN) * 1000;
		gen_signal_workers(old, SIGUSR1, GEN_SIG_NEW);
		g->state = G_LIVE;
		S->live = g;
		S->outgoing = old;
		metrics_checks_reset();
		for (h = 0; h < g->bl.nchecks; h++)
			metrics_check_add(g->bl.checks[h].id, g->bl.checks[h].ok);
		S->rstate = R_SWITCHING;
		S->switch_deadline = metrics_now_ms() + SWITCH_TIMEOUT_MS;
	}
	/* R_SWITCHING: done once no old worker accepts any more (bounded: a
	 * worker that does not say so is not waited for long) */
	old = S->outgoing;
	for (w = 0; old != NULL && w < old->nslots; w++)
		if (old->slots[w].pid > 0 && metrics_serving(old->slots[w].mslice))
			serving++;
	if (serving > 0 && metrics_now_ms() < S->switch_deadline)
		return;
	log_info("event=reloaded generation=%u workers=%u previous=%u draining-sessions=%u%s",
	    g->id, g->nslots, old ? old->id : 0, old ? gen_sessions(old) : 0,
	    serving > 0 ? " (some old workers did not confirm in time)" : "");
	metrics_count(MF_RELOADS, MR_OK);
	S->rstate = R_IDLE;
	S->incoming = S->outgoing = NULL;
	notify_ready(S);
}

void
audit_tick(struct sup *S, int readable)
{
	if (S->rstate != R_AUDIT || S->audit == NULL)
		return;
	if (S->stopping) {
		if (S->audit_pid <= 0) {
			audit_job_abandon(&S->audit);
			config_free(&S->rcfg);
			S->rstate = R_IDLE;
		}
		return;
	}
	if (readable || S->audit_pid <= 0)
		(void)audit_job_read(S->audit);
	if (S->audit_pid > 0 && metrics_now_ms() >= audit_job_deadline(S->audit) &&
	    !S->audit_timedout) {
		S->audit_timedout = 1;
		kill(S->audit_pid, SIGKILL);
	}
	if (S->audit_pid <= 0 && (audit_job_read(S->audit) || S->audit_timedout))
		reload_audited(S);
}

