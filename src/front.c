/* front.c — the network-facing process. */
#include "front.h"

#include "config.h"
#include "log.h"
#include "keeper.h"
#include "sandbox.h"
#include "smtp_server.h"
#include "util.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <event2/event.h>

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	if (sig == SIGHUP) {
		log_info("event=sighup: reopening logs");
		log_reopen();
		return;
	}
	log_info("event=signal signal=%s", sig == SIGTERM ? "TERM" : "INT");
	server_shutdown(srv);
}

void
front_main(const struct config *cfg, const int *fds, int signer_fd,
    const struct keeper_fds *kfds)
{
	struct event_base *base;
	struct server *srv;
	struct event *sigs[3];
	char err[2048];
	int rc, i;

	log_set_role("front");
	(void)prctl(PR_SET_NAME, "subproxy-front");
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);   /* no parent: fail closed */
	if (getppid() == 1)
		_exit(1);
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL)
		fatal("cannot create the event loop");
	if ((srv = server_new(base, cfg, kfds, fds, signer_fd, err, sizeof(err))) == NULL) {
		log_err("refusing to start: %s", err);
		exit(1);
	}
	/* the own-TLSA check also makes libunbound read its trust anchor and
	 * configuration now, while the files are reachable */
	if (server_check_own_tlsa(srv, err, sizeof(err)) < 0) {
		log_err("refusing to start: %s", err);
		exit(1);
	}
	sigs[0] = evsignal_new(base, SIGTERM, on_signal, srv);
	sigs[1] = evsignal_new(base, SIGINT, on_signal, srv);
	sigs[2] = evsignal_new(base, SIGHUP, on_signal, srv);
	for (i = 0; i < 3; i++)
		evsignal_add(sigs[i], NULL);
	/* everything front will ever open is open: give up the rest */
	sandbox_nodump();
	if (sandbox_drop(cfg->user, cfg->chroot, err, sizeof(err)) < 0 ||
	    sandbox_seccomp("front", err, sizeof(err)) < 0) {
		log_err("refusing to start: %s", err);
		exit(1);
	}
	server_start(srv);
	log_info("event=started version=%s hostname=%s listeners=%zu relays=%zu",
	    SUBPROXY_VERSION, cfg->hostname, cfg->nlistens, cfg->nrelays);
	event_base_dispatch(base);
	rc = server_failed(srv) ? 1 : 0;
	server_free(&srv);
	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	event_base_free(base);
	log_info("event=stopped status=%d", rc);
	exit(rc);
}
