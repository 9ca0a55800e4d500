/*
 * audit_live.c — the self-audit's DNS checks, re-run by front while it
 * serves ([audit] recheck): the same questions and the same judgements as
 * --check (audit_checks.c), asked on front's loop with front's resolver.
 *
 * front holds no private key, so the DKIM checks compare the published
 * records with the public keys the start-up audit reported
 * (struct audit_baseline); the own-TLSA checks use the chain front serves.
 * Only changes are logged: a check that starts failing (with its remedy),
 * one that recovers.  Every result goes to the metrics block.
 */
#include "audit.h"
#include "audit_int.h"

#include "auditrec.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

struct live_state {
	char *id;
	int ok;
};

struct audit_live {
	struct event_base *base;
	struct dns_ctx *dns;
	const struct config *cfg;
	const struct tls_server *ts;
	const struct audit_baseline *bl;
	struct auditrec *ar;            /* the audit log (recheck records) */
	struct audit_profile *prof;
	struct event *ev_timer;
	struct audit_run *run;          /* the run in progress, or NULL */
	struct audit_report rep;
	struct live_state *st;          /* last known result per check id */
	size_t nst;
	unsigned long runs;
};

static struct live_state *
state_find(struct audit_live *al, const char *id)
{
	size_t i;

	for (i = 0; i < al->nst; i++)
		if (strcmp(al->st[i].id, id) == 0)
			return &al->st[i];
	al->st = xreallocarray(al->st, al->nst + 1, sizeof(*al->st));
	al->st[al->nst].id = xstrdup(id);
	al->st[al->nst].ok = -1;        /* unknown: the first result is news */
	return &al->st[al->nst++];
}

/* Compare with the last results: log what changed, update the metrics. */
static void
live_report(struct audit_live *al)
{
	size_t i, nfail = 0, nchanged = 0;

	for (i = 0; i < al->rep.nchecks; i++) {
		const struct audit_check *c = &al->rep.checks[i];
		struct live_state *s = state_find(al, c->id);
		int ok = c->found != AUDIT_FAIL;

		metrics_check_set(c->id, ok);
		nfail += !ok;
		if (s->ok == ok)
			continue;
		nchanged++;
		if (!ok)
			log_warn("event=audit-recheck check=%s status=%s required=%s: %s Fix: %s",
			    c->id, audit_status_name(c->status), c->required ? "yes" : "no",
			    c->summary, c->remedy);
		else if (s->ok == 0)
			log_info("event=audit-recheck check=%s status=%s recovered: %s", c->id,
			    audit_status_name(c->status), c->summary);
		/* a check first seen passing is no news for the log */
		if (!ok || s->ok == 0)
			auditrec_recheck(al->ar, c->id, ok, audit_status_name(c->status),
			    c->required, c->summary, c->remedy);
		s->ok = ok;
	}
	log_debug("event=audit-recheck run=%lu checks=%zu failed=%zu changed=%zu", al->runs,
	    al->rep.nchecks, nfail, nchanged);
	metrics_count(MF_RECHECKS, 0);
	metrics_recheck_time((int64_t)time(NULL));
}

static void
live_clear_run(struct audit_live *al)
{
	if (al->run == NULL)
		return;
	audit_run_clear(al->run);
	free(al->run);
	al->run = NULL;
	audit_report_clear(&al->rep);
}

static void
live_done(void *arg)
{
	struct audit_live *al = arg;

	audit_dns_judge(al->run);
	al->runs++;
	live_report(al);
	live_clear_run(al);
}

/* The public keys of the baseline, as the checks expect them. */
static void
live_keys(struct audit_live *al, struct audit_run *r)
{
	const struct config *cfg = al->cfg;
	size_t i, j, k, nk = al->bl != NULL ? al->bl->nkeys : 0;

	r->keys = xcalloc(nk + 1, sizeof(*r->keys));
	for (k = 0; k < nk; k++) {
		const struct audit_baseline_key *b = &al->bl->keys[k];

		for (i = 0; i < cfg->ndkims; i++)
			for (j = 0; j < cfg->dkims[i].nkeys; j++) {
				struct audit_key *key;

				if (strcmp(cfg->dkims[i].domain, b->domain) != 0 ||
				    strcmp(cfg->dkims[i].keys[j].selector, b->selector) != 0)
					continue;
				key = &r->keys[r->nkeys++];
				key->domain = cfg->dkims[i].domain;
				key->selector = cfg->dkims[i].keys[j].selector;
				key->file = cfg->dkims[i].keys[j].file;
				key->loaded = 1;
				key->type = b->type;
				key->txt = xstrdup(b->txt);
				key->lk = -1;
				i = cfg->ndkims - 1;    /* one match per baseline key */
				break;
			}
	}
}

static void
live_start(evutil_socket_t fd, short what, void *arg)
{
	struct audit_live *al = arg;
	struct dane_cert chain[TLS_CHAIN_MAX];
	struct audit_run *r;
	size_t i, n;

	if (al->run != NULL) {
		log_warn("event=audit-recheck: the previous run has not finished; skipped");
		return;
	}
	r = al->run = xcalloc(1, sizeof(*r));
	memset(&al->rep, 0, sizeof(al->rep));
	r->cfg = al->cfg;
	r->prof = al->prof;
	r->rep = &al->rep;
	r->now = time(NULL);
	r->base = al->base;
	r->dns = al->dns;
	r->borrowed = 1;
	r->dns_only = 1;
	r->done_cb = live_done;
	r->done_arg = al;
	/* copies: audit_run_clear() frees the chain */
	n = tls_server_chain(al->ts, chain, TLS_CHAIN_MAX);
	for (i = 0; i < n; i++) {
		uint8_t *der = xmalloc(chain[i].len ? chain[i].len : 1);

		memcpy(der, chain[i].der, chain[i].len);
		r->chain[i].der = der;
		r->chain[i].len = chain[i].len;
	}
	r->nchain = n;
	live_keys(al, r);
	audit_dns_collect(r);
	audit_dns_start(r);
}

struct audit_live *
audit_live_new(struct event_base *base, struct dns_ctx *dns, const struct config *cfg,
    const struct tls_server *ts, const struct audit_baseline *bl, struct auditrec *ar)
{
	struct audit_live *al;
	struct timeval tv;
	char err[600];
	size_t i;

	if (cfg->audit_recheck == 0)
		return NULL;
	al = xcalloc(1, sizeof(*al));
	al->base = base;
	al->dns = dns;
	al->cfg = cfg;
	al->ts = ts;
	al->bl = bl;
	al->ar = ar;
	/* parsed now, before the sandbox (it is compiled in; nothing is opened) */
	if ((al->prof = audit_profile_load(cfg->profile, err, sizeof(err))) == NULL &&
	    (al->prof = audit_profile_load("baseline", err, sizeof(err))) == NULL)
		fatal("the built-in profile baseline does not load: %s", err);
	/* the start-up results are the reference for the first run */
	for (i = 0; bl != NULL && i < bl->nchecks; i++)
		state_find(al, bl->checks[i].id)->ok = bl->checks[i].ok;
	al->ev_timer = event_new(base, -1, EV_PERSIST, live_start, al);
	tv.tv_sec = (time_t)cfg->audit_recheck;
	tv.tv_usec = 0;
	evtimer_add(al->ev_timer, &tv);
	log_info("event=audit-recheck interval=%llus checks=dns",
	    (unsigned long long)cfg->audit_recheck);
	return al;
}

void
audit_live_free(struct audit_live **lp)
{
	struct audit_live *al = *lp;
	size_t i;

	if (al == NULL)
		return;
	*lp = NULL;
	live_clear_run(al);
	if (al->ev_timer != NULL)
		event_free(al->ev_timer);
	for (i = 0; i < al->nst; i++)
		free(al->st[i].id);
	free(al->st);
	audit_profile_free(&al->prof);
	free(al);
}
