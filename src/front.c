/* front.c — the network-facing process. */
#include "front.h"

#include "audit.h"
#include "config.h"
#include "conn.h"
#include "connlimit.h"
#include "log.h"
#include "keeper.h"
#include "metrics.h"
#include "metrics_http.h"
#include "sandbox.h"
#include "smtp_server.h"
#include "tls.h"
#include "util.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <event2/event.h>

struct front {
	struct server *srv;
	struct metrics_http *mh;
	struct audit_live *live;
};

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct front *f = arg;

	switch (sig) {
	case SIGHUP:
		log_info("event=sighup: reopening logs");
		log_reopen();
		return;
	case SIGUSR1:
		/* a newer generation serves: accept nothing more, let the
		 * sessions finish with what they started with */
		audit_live_free(&f->live);
		metrics_http_free(&f->mh);
		server_drain(f->srv);
		metrics_clear_serving();
		return;
	default:
		log_info("event=signal signal=%s", sig == SIGTERM ? "TERM" : "INT");
		server_shutdown(f->srv);
		return;
	}
}

/* The heartbeat: proves to the parent (and through it to the service
 * manager's watchdog) that this loop runs. */
static void
on_beat(evutil_socket_t fd, short what, void *arg)
{
	metrics_beat();
}

/* The first loop iteration after the listeners were enabled: serving. */
static void
on_serving(evutil_socket_t fd, short what, void *arg)
{
	metrics_beat();
	metrics_set_serving();
}

void
front_main(const struct config *cfg, const int *fds, int signer_fd,
    const struct keeper_fds *kfds, const struct front_opts *o)
{
	static const int signals[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	struct event_base *base;
	struct front f;
	struct event *sigs[4], *beat = NULL;
	struct timeval tv;
	sigset_t set;
	char err[2048];
	int rc, i;

	memset(&f, 0, sizeof(f));
	metrics_attach(o->mslice);
	connlimit_attach(o->cslice);
	log_set_role("front");
	(void)prctl(PR_SET_NAME, "subproxy-front");
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);   /* no parent: fail closed */
	if (getppid() == 1)
		_exit(1);
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL)
		fatal("cannot create the event loop");
	if (!conn_watch_supported(base))
		log_warn("event=loop-backend method=%s: this event loop cannot see a client's FIN "
		    "or reset without reading (no EPOLLRDHUP/edge triggering): a client that closes "
		    "while its password check waits is noticed only when the check is answered",
		    event_base_get_method(base));
	tls_tickets_schedule(base);     /* ratchet the ticket key at each period's end */
	if ((f.srv = server_new(base, cfg, kfds, fds, signer_fd, o->recorder_fd, o->workers, err,
	    sizeof(err))) == NULL) {
		log_err("refusing to start: %s", err);
		exit(FRONT_EXIT_FAIL);
	}
	/* the own-TLSA check also makes libunbound read its trust anchor and
	 * configuration now, while the files are reachable */
	if (server_check_own_tlsa(f.srv, err, sizeof(err)) < 0) {
		log_err("refusing to start: %s", err);
		exit(FRONT_EXIT_FAIL);
	}
	if (o->metrics_fd >= 0 &&
	    (f.mh = metrics_http_new(base, o->metrics_fd, err, sizeof(err))) == NULL) {
		log_err("refusing to start: %s", err);
		exit(FRONT_EXIT_FAIL);
	}
	if (o->worker == 0)
		f.live = audit_live_new(base, server_dns(f.srv), cfg, server_tls(f.srv), o->audit,
		    server_audit(f.srv));
	if (metrics_beat_interval() > 0) {
		tv.tv_sec = metrics_beat_interval() / 1000;
		tv.tv_usec = (metrics_beat_interval() % 1000) * 1000;
		beat = event_new(base, -1, EV_PERSIST, on_beat, NULL);
		evtimer_add(beat, &tv);
	}
	for (i = 0; i < 4; i++) {
		sigs[i] = evsignal_new(base, signals[i], on_signal, &f);
		evsignal_add(sigs[i], NULL);
	}
	/* blocked by the parent since the fork: a SIGTERM that came during the
	 * start-up is handled now (by the loop, after server_start()) */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	/* everything front will ever open is open: give up the rest */
	sandbox_nodump();
	if (sandbox_drop(cfg->user, cfg->chroot, err, sizeof(err)) < 0 ||
	    sandbox_seccomp("front", err, sizeof(err)) < 0) {
		log_err("refusing to start: %s", err);
		exit(FRONT_EXIT_FAIL);
	}
	server_start(f.srv);
	event_base_once(base, -1, EV_TIMEOUT, on_serving, NULL, NULL);
	log_info("event=started version=%s hostname=%s listeners=%zu relays=%zu metrics=%s "
	    "generation=%u worker=%u", SUBPROXY_VERSION, cfg->hostname, cfg->nlistens,
	    cfg->nrelays, cfg->metrics_address ? cfg->metrics_address : "off", o->generation,
	    o->worker);
	event_base_dispatch(base);
	/* freeing the signal events restores the default actions: a stop
	 * signal arriving now must not turn a clean end into a kill */
	sigprocmask(SIG_BLOCK, &set, NULL);
	rc = server_failed(f.srv) ? FRONT_EXIT_PEER : FRONT_EXIT_OK;
	audit_live_free(&f.live);
	metrics_http_free(&f.mh);
	if (beat != NULL)
		event_free(beat);
	server_free(&f.srv);
	for (i = 0; i < 4; i++)
		event_free(sigs[i]);
	event_base_free(base);
	log_info("event=stopped status=%d", rc);
	exit(rc);
}
