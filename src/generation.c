/* generation.c — starting and ending a generation's processes (parent). */
#include "supervisor_int.h"

#include "connlimit.h"
#include "front.h"
#include "log.h"
#include "metrics.h"
#include "signer.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SIGNER_START_TIMEOUT 30   /* seconds to load and test the DKIM keys */
#define KEEPER_START_TIMEOUT 30   /* seconds to load the TLS key and passwords */

struct gen *
gen_new(unsigned id, unsigned half, unsigned nslots, struct config *cfg,
    struct audit_baseline *bl)
{
	struct gen *g = xcalloc(1, sizeof(*g));
	unsigned w;

	g->id = id;
	g->half = half;
	g->state = G_STARTING;
	g->cfg = cfg;
	g->bl = *bl;
	memset(bl, 0, sizeof(*bl));
	g->nslots = nslots;
	g->slots = xcalloc(nslots, sizeof(*g->slots));
	for (w = 0; w < nslots; w++) {
		struct slot *sl = &g->slots[w];

		sl->signer_fd = sl->kfds.tls_fd = sl->kfds.auth_fd = -1;
		sl->mslice = METRICS_SLICE_FRONT + (size_t)half * nslots + w;
		sl->cslice = (size_t)half * nslots + w;
	}
	return g;
}

int
gen_spawn_roles(struct gen *g, char *err, size_t errlen)
{
	int *sfds = xcalloc(g->nslots, sizeof(*sfds));
	struct keeper_fds *kfds = xcalloc(g->nslots, sizeof(*kfds));
	unsigned w;
	int rc = -1;

	/* their metrics slices are the ones of this generation's half */
	metrics_set_half(g->half);
	/* the signer is forked before anything secret is loaded here, and
	 * loads the DKIM keys itself: this process never holds them */
	g->signer = signer_spawn(g->cfg, g->nslots, SIGNER_START_TIMEOUT, sfds, err, errlen);
	if (g->signer < 0) {
		g->signer = 0;
		goto out;
	}
	/* the keeper alone loads the TLS private key and the password hashes */
	g->keeper = keeper_spawn(g->cfg, g->nslots, KEEPER_START_TIMEOUT, kfds, err, errlen);
	if (g->keeper < 0) {
		g->keeper = 0;
		for (w = 0; w < g->nslots; w++)
			close(sfds[w]);
		kill(g->signer, SIGKILL);
		goto out;
	}
	for (w = 0; w < g->nslots; w++) {
		g->slots[w].signer_fd = sfds[w];
		g->slots[w].kfds = kfds[w];
	}
	rc = 0;
out:
	free(sfds);
	free(kfds);
	return rc;
}

pid_t
gen_fork_front(struct gen *g, unsigned w, const struct gen_sockets *gs)
{
	struct slot *sl = &g->slots[w];
	struct front_opts fo;
	pid_t pid;

	/* a dead predecessor's slices were folded and cleared when it was
	 * reaped (supervisor.c) */
	fflush(NULL);
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		int *keep = xcalloc(gs->nlisten + 5, sizeof(*keep));
		int recorder_fd = gs->recorder_fds[sl->cslice];
		size_t n = 0, i;

		/* nothing of the other slots or generations, nor the parent's
		 * own descriptors (signal fd, notify socket, audit pipe) */
		for (i = 0; i < gs->nlisten; i++)
			keep[n++] = gs->listen_fds[i];
		if (gs->metrics_fd >= 0)
			keep[n++] = gs->metrics_fd;
		keep[n++] = sl->signer_fd;
		keep[n++] = sl->kfds.tls_fd;
		keep[n++] = sl->kfds.auth_fd;
		if (recorder_fd >= 0)
			keep[n++] = recorder_fd;
		close_fds_except(keep, n);
		free(keep);
		memset(&fo, 0, sizeof(fo));
		fo.worker = w;
		fo.workers = g->nslots;
		fo.generation = g->id;
		fo.mslice = sl->mslice;
		fo.cslice = sl->cslice;
		fo.metrics_fd = gs->metrics_fd;
		fo.recorder_fd = recorder_fd;
		fo.audit = &g->bl;
		/* TERM/INT/HUP/USR1 stay blocked (the parent's mask) until
		 * front's handlers are installed */
		front_main(g->cfg, gs->listen_fds, sl->signer_fd, &sl->kfds, &fo);
	}
	sl->pid = pid;
	sl->served = 0;
	sl->stopped = 0;
	sl->started_ms = metrics_now_ms();
	return pid;
}

int
gen_fork_fronts(struct gen *g, const struct gen_sockets *gs)
{
	unsigned w;

	/* this generation's session-ticket master (tls.h): every worker of
	 * it, and a replacement, resumes the others' sessions; a new
	 * generation starts a new one */
	tls_tickets_init();
	for (w = 0; w < g->nslots; w++)
		if (gen_fork_front(g, w, gs) < 0)
			return -1;
	return 0;
}

void
gen_close_fds(struct gen *g)
{
	unsigned w;

	if (g->fds_closed)
		return;
	g->fds_closed = 1;
	for (w = 0; w < g->nslots; w++) {
		struct slot *sl = &g->slots[w];

		if (sl->signer_fd >= 0)
			close(sl->signer_fd);
		sl->signer_fd = -1;
		keeper_fds_close(&sl->kfds);
	}
}

void
gen_signal_workers(struct gen *g, int sig, enum gen_sig which)
{
	unsigned w;

	for (w = 0; w < g->nslots; w++) {
		struct slot *sl = &g->slots[w];

		if (sl->pid <= 0 || (which == GEN_SIG_NEW && sl->stopped))
			continue;
		kill(sl->pid, sig);
		if (which != GEN_SIG_ALL)
			sl->stopped = 1;
	}
}

void
gen_kill_all(struct gen *g, int sig)
{
	gen_signal_workers(g, sig, GEN_SIG_STOP);
	if (g->signer > 0)
		kill(g->signer, sig);
	if (g->keeper > 0)
		kill(g->keeper, sig);
}

unsigned
gen_running(const struct gen *g)
{
	unsigned w, n = 0;

	for (w = 0; w < g->nslots; w++)
		if (g->slots[w].pid > 0)
			n++;
	return n;
}

unsigned
gen_serving(const struct gen *g)
{
	unsigned w, n = 0;

	for (w = 0; w < g->nslots; w++)
		if (g->slots[w].pid > 0 && g->slots[w].served)
			n++;
	return n;
}

int
gen_gone(const struct gen *g)
{
	return gen_running(g) == 0 && g->signer <= 0 && g->keeper <= 0;
}

unsigned
gen_sessions(const struct gen *g)
{
	unsigned w, n = 0;

	for (w = 0; w < g->nslots; w++)
		n += connlimit_used(g->slots[w].cslice);
	return n;
}

void
gen_free(struct gen **gp)
{
	struct gen *g = *gp;

	if (g == NULL)
		return;
	*gp = NULL;
	gen_close_fds(g);
	config_free(&g->cfg);
	audit_baseline_clear(&g->bl);
	free(g->slots);
	free(g);
}
