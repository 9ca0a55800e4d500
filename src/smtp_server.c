/* smtp_server.c — the server: listeners, connection limits and accepting, the
 * session's start, and stop and drain. */
#include "smtp_server.h"
#include "smtp_session.h"
#include "auditrec.h"
#include "clock.h"
#include "connlimit.h"
#include "limiter.h"
#include "dns.h"
#include "keeper_client.h"
#include "log.h"
#include "loginmem.h"
#include "metrics.h"
#include "owntlsa.h"
#include "proxyin.h"
#include "signer_client.h"
#include "slots.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <event2/event.h>
#include <event2/listener.h>

#define ACCEPT_BACKOFF_MS 250    /* no accepting for this long after EMFILE and the like */
#define ACCEPT_LOG_EVERY 10      /* seconds between log lines about it */

/* A refused connection ends before the next one is accepted: its one-line
 * answer goes straight into the new socket's empty send buffer (a
 * non-blocking send that cannot fill it; on an implicit-TLS port nothing
 * can be said) and its descriptor is closed at once.  So a flood of
 * refused attempts holds no descriptor and takes no place under the
 * limits from anybody else. */
static void
session_refuse(struct session *s, const char *line)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "%s\r\n", line);

	if (s->lst->cl->tls == TLS_MODE_STARTTLS)
		(void)send(conn_fd(s->conn), buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	session_drop(s, "refused");
}

/* A session on an accepted connection from `peer` (as accept() gave it).
 * pr: the PROXY header naming the real client, or NULL (a direct
 * connection, or the header said LOCAL / UNKNOWN: the socket's own
 * addresses count). */
static void
session_start(struct listener *l, int fd, const struct sockaddr *peer,
    const struct proxyproto_result *pr)
{
	struct server *srv = l->srv;
	const struct config_limits *lim = &srv->cfg->limits;
	struct session *s;
	struct connlimit_count cc;
	unsigned char rnd[8];
	const char *refuse = NULL;

	s = xcalloc(1, sizeof(*s));
	s->lslot = -1;
	s->srv = srv;
	s->lst = l;
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(s->id, sizeof(s->id), rnd, sizeof(rnd));
	s->conn = conn_new(srv->base, fd, session_conn_cb, s);
	s->started_us = mono_us();
	s->ev_limit = evtimer_new(srv->base, session_limit_expired, s);
	cidr_ntop(peer, s->peer, sizeof(s->peer), &s->peer_port);
	/* where the client connected: the listener's address (front may not
	 * call getsockname; a wildcard address says nothing and is left out) */
	cidr_ntop((const struct sockaddr *)&l->cl->addr, s->local, sizeof(s->local),
	    &s->local_port);
	if (strcmp(s->local, "0.0.0.0") == 0 || strcmp(s->local, "::") == 0)
		s->local[0] = '\0';
	if (l->cl->proxy) {
		snprintf(s->via, sizeof(s->via), "%s", s->peer);
		if (pr != NULL) {
			cidr_ntop((const struct sockaddr *)&pr->src, s->peer, sizeof(s->peer),
			    &s->peer_port);
			cidr_ntop((const struct sockaddr *)&pr->dst, s->local, sizeof(s->local),
			    &s->local_port);
		}
	}
	conn_addr_key(s->peer, (unsigned)lim->ipv6_prefix, s->peer_key, sizeof(s->peer_key));
	snprintf(s->helo, sizeof(s->helo), "unknown");
	/* counted across every front worker (connlimit.h), this one included,
	 * with the connections still waiting for a PROXY header; closing
	 * sessions count until their descriptor is closed */
	s->climit = connlimit_add(s->peer_key, &cc);
	if (s->climit < 0 || cc.total > lim->connections)
		refuse = "421 4.3.2 Too many connections, try again later";
	else if (cc.same > lim->connections_per_ip)
		refuse = "421 4.7.0 Too many connections from your address";
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	metrics_count(MF_SESSIONS, 0);
	metrics_gauge_add(MG_SESSIONS_OPEN, 1);
	if (s->via[0] != '\0')
		log_info("session=%s event=connect peer=%s port=%d listener=%s via=%s proxy=%s",
		    s->id, s->peer, s->peer_port, l->cl->name, s->via,
		    pr == NULL ? "local" : pr->version == 1 ? "v1" : "v2");
	else
		log_info("session=%s event=connect peer=%s listener=%s", s->id, s->peer,
		    l->cl->name);
	session_hold(s);
	if (refuse != NULL) {
		log_warn("session=%s event=refused peer=%s key=%s reason=\"%s\"", s->id, s->peer,
		    s->peer_key, refuse + 10);
		auditrec_refusal(srv->audit, s->id, s->peer, NULL, "connect", 421,
		    refuse[6] == '3' ? "4.3.2" : "4.7.0", refuse[6] == '3' ?
		    "too-many-connections" : "too-many-connections-from-address", refuse + 10,
		    s->peer_key);
		session_refuse(s, refuse);
	} else {
		conn_set_timeout(s->conn, (unsigned)lim->timeout);
		session_arm_limit(s);
		if (l->cl->tls == TLS_MODE_IMPLICIT) {
			session_set_state(s, S_TLS_HANDSHAKE);
			conn_start_tls(s->conn, tls_server_session(srv->tls));
		} else {
			send_greeting(s);
		}
	}
	session_release(s);
}

/* Accepting failed (EMFILE, ENFILE, ENOBUFS, ...): a listener would report
 * the same error again at once, so stop accepting for a moment; clients
 * wait in the listen backlog meanwhile.  One log line per ACCEPT_LOG_EVERY
 * seconds at most. */
static void
accept_error(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	struct server *srv = l->srv;
	struct timeval tv = { 0, ACCEPT_BACKOFF_MS * 1000 };
	int err = EVUTIL_SOCKET_ERROR();
	time_t now = mono_now();
	size_t i;

	srv->accept_pauses++;
	if (!srv->accept_logged || now - srv->accept_log_time >= ACCEPT_LOG_EVERY) {
		log_warn("event=accept-paused listener=%s error=\"%s\" sessions=%u pauses=%u: not "
		    "accepting for %d ms at a time%s", l->cl->name, evutil_socket_error_to_string(err),
		    srv->nsessions, srv->accept_pauses, ACCEPT_BACKOFF_MS,
		    err == EMFILE || err == ENFILE ? " (out of file descriptors: raise the limit "
		    "or lower [limits] connections)" : "");
		srv->accept_logged = 1;
		srv->accept_log_time = now;
		srv->accept_pauses = 0;
	}
	for (i = 0; i < srv->nlisteners; i++)
		if (srv->listeners[i].evl != NULL)
			evconnlistener_disable(srv->listeners[i].evl);
	evtimer_add(srv->ev_accept, &tv);
}

static void
accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	size_t i;

	for (i = 0; i < srv->nlisteners; i++)
		if (srv->listeners[i].evl != NULL)
			evconnlistener_enable(srv->listeners[i].evl);
}

/* The header is in (from the loop: proxyin.h).  Until now there was no
 * session: the waiting connection was counted by the pool, and one that is
 * refused or fails there is closed at once.  session_start() holds the new
 * session like every frame entered from the loop, and its address key is
 * the header's. */
static void
on_proxy_header(void *arg, int fd, const struct sockaddr *peer,
    const struct proxyproto_result *r)
{
	session_start(arg, fd, peer, r->local ? NULL : r);
}

static void
on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct listener *l = arg;
	struct server *srv = l->srv;
	char peer[64];

	if (!l->cl->proxy) {
		session_start(l, fd, sa, NULL);
		return;
	}
	/* a proxy-protocol listener: only the configured balancers may
	 * connect, and they speak first */
	cidr_ntop(sa, peer, sizeof(peer), NULL);
	if (!cidr_match(l->cl->proxy_from, l->cl->nproxy_from, sa)) {
		log_warn("event=proxy-refused peer=%s listener=%s reason=\"not in proxy-from\"", peer,
		    l->cl->name);
		metrics_count(MF_PROXY_REFUSED, MPR_SOURCE);
		close(fd);
		return;
	}
	/* record, then count (as session_start does): of two workers that
	 * accept at once, at least one sees the other's connection */
	connlimit_set_pending(proxyin_pool_count(srv->proxyin) + 1);
	if (connlimit_total() > srv->cfg->limits.connections) {
		connlimit_set_pending(proxyin_pool_count(srv->proxyin));
		log_warn("event=refused peer=%s listener=%s reason=\"too many connections (waiting "
		    "for a PROXY header)\"", peer, l->cl->name);
		metrics_count(MF_PROXY_REFUSED, MPR_CONNECTIONS);
		close(fd);
		return;
	}
	proxyin_start(srv->proxyin, fd, sa, (socklen_t)salen, l->cl->name,
	    (unsigned)l->cl->proxy_timeout, on_proxy_header, l);
}

/* Fail closed: without the signer nothing can be sent. */
static void
signer_lost(void *arg)
{
	struct server *srv = arg;

	srv->failed = 1;
	log_err("event=fatal the DKIM signer process is gone; stopping the service");
	server_shutdown(srv);
}

static void
recorder_lost(void *arg)
{
	struct server *srv = arg;

	srv->failed = 1;
	log_err("event=fatal the audit log recorder is gone; stopping the service");
	server_shutdown(srv);
}

static void
keeper_lost(void *arg)
{
	struct server *srv = arg;

	srv->failed = 1;
	log_err("event=fatal the keeper process (TLS key, passwords) is gone; stopping the "
	    "service");
	server_shutdown(srv);
}

int
server_failed(const struct server *srv)
{
	return srv->failed;
}

struct server *
server_new(struct event_base *base, const struct config *cfg, const struct keeper_fds *kfds,
    const int *fds, int signer_fd, int recorder_fd, unsigned workers, char *err, size_t errlen)
{
	struct server *srv = xcalloc(1, sizeof(*srv));
	struct gnutls_privkey_st *key = NULL;
	size_t i;

	srv->base = base;
	srv->cfg = cfg;
	srv->proxyin = proxyin_pool_new(base);
	if ((srv->limiter = limiter_new(cfg, err, errlen)) == NULL)
		goto fail;
	srv->ev_testclock = clock_test_hook(base);
	srv->signer = signer_client_new(base, signer_fd, (unsigned)cfg->limits.relay_timeout * 1000,
	    signer_lost, srv);
	srv->keeper = keeper_client_new(base, kfds, (size_t)cfg->limits.auth_queue, keeper_lost,
	    srv);
	srv->audit = auditrec_new(base, cfg, recorder_fd, workers, recorder_lost, srv);
	if (keeper_tls_privkey(srv->keeper, &key, err, errlen) < 0)
		goto fail;
	srv->tls = tls_server_new_key(cfg->tls_certificate, key, kfds->spki, kfds->spki_len,
	    cfg->tls_priority, err, errlen);
	if (srv->tls == NULL)
		goto fail;
	srv->dns = dns_ctx_new(base, cfg->trust_anchor_file, cfg->unbound_config,
	    (unsigned)cfg->dns_timeout, err, errlen);
	if (srv->dns == NULL)
		goto fail;
	if ((srv->relay = relay_ctx_new(base, cfg, srv->dns, err, errlen)) == NULL)
		goto fail;
	srv->logins = loginmem_table_new();
	if ((srv->txn_slots = slots_new(base, (size_t)cfg->limits.transactions)) == NULL)
		fatal("out of memory");
	if ((srv->ev_accept = evtimer_new(base, accept_resume, srv)) == NULL)
		fatal("out of memory");
	srv->nlisteners = cfg->nlistens;
	srv->listeners = xcalloc(cfg->nlistens, sizeof(*srv->listeners));
	for (i = 0; i < cfg->nlistens; i++) {
		struct listener *l = &srv->listeners[i];

		l->srv = srv;
		l->cl = &cfg->listens[i];
		l->evl = evconnlistener_new(base, on_accept, l, LEV_OPT_CLOSE_ON_FREE |
		    LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED, 0, fds[i]);
		if (l->evl == NULL) {
			snprintf(err, errlen, "cannot listen on %s", l->cl->address);
			goto fail;
		}
		evconnlistener_set_error_cb(l->evl, accept_error);
	}
	return srv;
fail:
	server_free(&srv);
	return NULL;
}

int
server_check_own_tlsa(struct server *srv, char *err, size_t errlen)
{
	return owntlsa_check(srv->base, srv->dns, srv->cfg, srv->tls, err, errlen);
}

void
server_start(struct server *srv)
{
	size_t i;

	for (i = 0; i < srv->nlisteners; i++) {
		evconnlistener_enable(srv->listeners[i].evl);
		log_info("event=listening listener=%s address=%s tls=%s", srv->listeners[i].cl->name,
		    srv->listeners[i].cl->address,
		    srv->listeners[i].cl->tls == TLS_MODE_IMPLICIT ? "implicit" : "starttls");
	}
	relay_ctx_probe(srv->relay);
}

/* A session with a mail transaction under way (MAIL sent, message being
 * read, signed or relayed): at a stop it may finish. */
int
session_in_flight(const struct session *s)
{
	return s->in_txn || s->relay != NULL || s->sreq != NULL || s->state == S_DATA ||
	    s->state == S_BDAT;
}

void
shutdown_close(struct session *s)
{
	reply(s, 421, "4.3.2", "%s Service shutting down, closing connection",
	    s->srv->cfg->hostname);
	session_close(s);
}

/* [server] shutdown-timeout is over: cut what is left, without an
 * acknowledgement; relay legs with message data in flight are dropped
 * without the final dot (relay_txn_free()). */
static void
grace_expired(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct session *s, *next;

	log_warn("event=shutdown-timeout sessions=%u", srv->nsessions);
	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->state == S_CLOSED)
			continue;       /* closing already */
		if (s->state == S_TLS_HANDSHAKE) {
			session_drop(s, "shutdown");
			continue;
		}
		if (session_in_flight(s)) {
			log_warn("session=%s event=shutdown-cut peer=%s state=%s from=<%s>: "
			    "transaction not acknowledged", s->id, s->peer,
			    sess_state_names[s->state], LOGADDR(s->mail_from ? s->mail_from : ""));
			metrics_count(MF_SHUTDOWN_CUT, 0);
			txn_reset(s);
		}
		shutdown_close(s);
	}
	event_base_loopexit(srv->base, NULL);
}

static void
close_listeners(struct server *srv)
{
	size_t i;

	for (i = 0; i < srv->nlisteners; i++) {
		if (srv->listeners[i].evl != NULL)
			evconnlistener_free(srv->listeners[i].evl);
		srv->listeners[i].evl = NULL;
	}
	event_del(srv->ev_accept);      /* no resuming after a descriptor pause */
}

/* Without sessions the loop ends now; else `cb` runs after [server]
 * shutdown-timeout (the timer is returned). */
static struct event *
exit_or_wait(struct server *srv, event_callback_fn cb)
{
	struct timeval tv;
	struct event *ev;

	if (srv->nsessions == 0) {
		event_base_loopexit(srv->base, NULL);
		return NULL;
	}
	tv.tv_sec = (time_t)srv->cfg->shutdown_timeout;
	tv.tv_usec = 0;
	ev = evtimer_new(srv->base, cb, srv);
	evtimer_add(ev, &tv);
	return ev;
}

/* The drain's time is up: what is left is stopped as at SIGTERM. */
static void
drain_expired(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	log_info("event=drain-timeout sessions=%u: stopping them as at a stop", srv->nsessions);
	server_shutdown(srv);
}

/*
 * A session not logged in yet would have its password checked by this
 * generation's keeper, against the passwd file and the cache from before
 * the reload: a password the reload changed or a login it removed would
 * still work here for the whole drain.  Such sessions end now, as at a
 * stop (421 4.3.2; a TLS handshake is dropped), and connect again to the
 * new generation; logged-in ones go on.
 */
static void
drain_logins(struct server *srv)
{
	struct session *s, *next;
	unsigned n = 0;

	/* connections still sending their PROXY header would become such
	 * sessions: dropped, as at a stop */
	proxyin_pool_free(&srv->proxyin);
	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->state == S_CLOSED || s->login != NULL)
			continue;
		n++;
		if (s->state == S_TLS_HANDSHAKE) {
			session_drop(s, "reload");
			continue;
		}
		reply(s, 421, "4.3.2", "%s Service reloaded, connect again to log in",
		    srv->cfg->hostname);
		session_close(s);
	}
	if (n > 0)
		log_info("event=drain-logins sessions=%u: not logged in, ended (they log in at "
		    "the new generation)", n);
}

void
server_drain(struct server *srv)
{
	if (srv->shutting_down || srv->draining)
		return;
	srv->draining = 1;
	close_listeners(srv);
	drain_logins(srv);
	log_info("event=drain sessions=%u timeout=%llus", srv->nsessions,
	    (unsigned long long)srv->cfg->shutdown_timeout);
	srv->ev_drain = exit_or_wait(srv, drain_expired);
}

/* Graceful stop, per session state (doc/subproxy.8, SIGNALS):
 *   TLS handshake                  dropped (no SMTP dialogue yet)
 *   between commands, no MAIL yet, AUTH exchange or password check pending,
 *   failed-AUTH delay              421 4.3.2 now
 *   mail transaction under way     finishes (final reply), then 421 4.3.2
 *                                  (session_process); cut without an
 *                                  acknowledgement at shutdown-timeout */
void
server_shutdown(struct server *srv)
{
	struct session *s, *next;
	unsigned busy = 0;

	if (srv->shutting_down)
		return;
	srv->shutting_down = 1;
	if (srv->ev_drain != NULL) {
		event_free(srv->ev_drain);
		srv->ev_drain = NULL;
	}
	close_listeners(srv);
	proxyin_pool_free(&srv->proxyin);
	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->state == S_CLOSED)
			continue;       /* closing already */
		if (s->state == S_TLS_HANDSHAKE)
			session_drop(s, "shutdown");
		else if (session_in_flight(s))
			busy++;
		else
			shutdown_close(s);
	}
	log_info("event=shutdown in-flight=%u timeout=%llus", busy,
	    (unsigned long long)srv->cfg->shutdown_timeout);
	srv->ev_grace = exit_or_wait(srv, grace_expired);
}

struct dns_ctx *
server_dns(const struct server *srv)
{
	return srv->dns;
}

const struct tls_server *
server_tls(const struct server *srv)
{
	return srv->tls;
}

struct auditrec *
server_audit(const struct server *srv)
{
	return srv->audit;
}

unsigned
server_sessions(const struct server *srv)
{
	return srv->nsessions;
}

void
server_free(struct server **srvp)
{
	struct server *srv = *srvp;
	struct session *s;
	size_t i;

	if (srv == NULL)
		return;
	*srvp = NULL;
	while ((s = srv->sessions) != NULL) {
		s->busy = 0;
		conn_free(&s->linger);  /* still writing a last reply: no more */
		session_drop(s, "server stopped");
	}
	for (i = 0; i < srv->nlisteners; i++)
		if (srv->listeners[i].evl)
			evconnlistener_free(srv->listeners[i].evl);
	free(srv->listeners);
	srv->listeners = NULL;
	srv->nlisteners = 0;
	if (srv->ev_grace)
		event_free(srv->ev_grace);
	if (srv->ev_accept)
		event_free(srv->ev_accept);
	if (srv->ev_testclock)
		event_free(srv->ev_testclock);
	proxyin_pool_free(&srv->proxyin);
	/* nothing of the server's runs any more: what is counted, and records
	 * still in front's queue, go to the recorder before front ends (the
	 * loop runs for them a little) */
	auditrec_finish(srv->audit);
	limiter_free(&srv->limiter);
	if (srv->ev_drain)
		event_free(srv->ev_drain);
	keeper_client_free(&srv->keeper);
	signer_client_free(&srv->signer);
	auditrec_free(&srv->audit);
	relay_ctx_free(&srv->relay);
	dns_ctx_free(&srv->dns);
	tls_server_free(&srv->tls);
	loginmem_table_free(&srv->logins);
	slots_free(&srv->txn_slots);
	free(srv);
}
