/* relay_open.c — opening a new relay connection: DNS, TLS, DANE, EHLO, AUTH, XCLIENT. */
#include "relay_int.h"
#include "config.h"
#include "conn.h"
#include "dns.h"
#include "log.h"
#include "metrics.h"
#include "smtp_reply.h"
#include "tls.h"
#include "util.h"
#include "xclient.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct relay_target *
target_of(const struct relay_txn *t)
{
	return &t->ctx->targets[t->target];
}

/* SNI: the TLSA base domain (RFC 7672 8.1) -- for DNSSEC targets the name
 * the TLSA records were found at (the CNAME target when they were there),
 * else the configured host. */
static const char *
relay_sni(const struct relay_txn *t)
{
	const char *n = t->dyn.tlsa_name, *p;

	if (relay_target_cfg(t)->dane == DANE_MODE_REQUIRED && n[0] == '_' &&
	    (p = strstr(n, "._tcp.")) != NULL && p[6] != '\0')
		return p + 6;
	return relay_target_cfg(t)->host;
}

/* A TLS session for the current target: resumed when a session is kept and
 * this attempt may resume. */
static void *
relay_tls_session(struct relay_txn *t)
{
	struct relay_target *tg = target_of(t);

	return tls_client_session(t->ctx->tls, relay_sni(t),
	    t->full_handshake || tg->resume_off ? NULL : tg->ticket);
}

static void relay_open_failed(struct relay_txn *t, enum relay_fail why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Before MAIL was accepted, a failure moves on to the next address/relay;
 * after that it ends the transaction. */
static void
relay_open_failed(struct relay_txn *t, enum relay_fail why, const char *fmt, ...)
{
	va_list ap;
	char msg[256];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("session=%s relay=%s addr=%s state=%s failed: %s", t->sid,
	    relay_target_cfg(t)->name, t->link && t->link->conn ? conn_peer(t->link->conn) : "-",
	    relay_state_name(t->state), msg);
	relay_drop_conn(t);
	/* the most telling failure wins: TLS/DANE, DNS, then the rest */
	if (why > t->worst)
		t->worst = why;
	t->addr++;
	t->full_handshake = 0;
	relay_open_next(t);
}

void
relay_open_protocol_error(struct relay_txn *t)
{
	relay_open_failed(t, FAIL_CONNECT, "protocol error");
}

void
relay_open_timeout(struct relay_txn *t)
{
	relay_open_failed(t, FAIL_TIMEOUT, "no complete reply within relay-timeout");
}

static void
relay_send_ehlo(struct relay_txn *t, enum relay_state s)
{
	relay_set_state(t, s);
	relay_send(t, "EHLO %s\r\n", t->ctx->ehlo_name);
}

/* A resumed session that did not pass DANE: its ticket goes, and this
 * address is tried again with a full handshake (the relay may have a new
 * certificate and new TLSA records while its tickets still open). */
static void
relay_resumed_unverified(struct relay_txn *t, const char *why)
{
	struct relay_target *tg = target_of(t);

	tls_ticket_free(&tg->ticket);
	if (tls_peer_ncerts(conn_tls(t->link->conn)) == 0 && !tg->resume_off) {
		/* GnuTLS restores the chain (tls.h); if it ever does not, DANE
		 * cannot be checked on a resumed session: no more resuming */
		tg->resume_off = 1;
		log_warn("session=%s relay=%s resumed TLS sessions show no certificate: TLS "
		    "resumption towards this relay is off", t->sid, tg->rc->name);
	}
	log_warn("session=%s relay=%s addr=%s resumed TLS session refused: %s; trying a full "
	    "handshake", t->sid, tg->rc->name, conn_peer(t->link->conn), why);
	relay_drop_conn(t);
	t->full_handshake = 1;
	relay_open_next(t);
}

static void
relay_after_tls(struct relay_txn *t)
{
	const struct config_relay *rc = relay_target_cfg(t);
	struct relay_link *l = t->link;
	void *s = conn_tls(l->conn);
	char why[256];
	enum dane_verdict v;

	/* on a resumed session: the chain of the full handshake the ticket
	 * comes from, against the records that hold now */
	l->resumed = tls_session_resumed(s);
	v = tls_peer_dane(s, t->rrs, t->nrrs, t->names, t->nnames, &l->matched, why, sizeof(why));
	tls_describe(s, l->tlsdesc, sizeof(l->tlsdesc));
	metrics_count(MF_DANE, metrics_label(MF_DANE, dane_verdict_name(v)));
	if (v != DANE_OK_EE && v != DANE_OK_TA) {
		if (l->resumed && !t->full_handshake) {
			relay_resumed_unverified(t, why);
			return;
		}
		relay_open_failed(t, FAIL_TLS, "DANE verification %s: %s", dane_verdict_name(v), why);
		return;
	}
	l->verdict = v;
	l->verified = 1;
	if (l->matched >= 0 && (size_t)l->matched < t->nrrs)
		dane_tlsa_text(&t->rrs[l->matched], l->tlsa, sizeof(l->tlsa));
	snprintf(l->peer, sizeof(l->peer), "%s", conn_peer(l->conn));
	tls_params(s, l->tlsver, sizeof(l->tlsver), l->tlscipher, sizeof(l->tlscipher));
	snprintf(l->desc, sizeof(l->desc), "relay=%s addr=%s tls=\"%s\" dane=%s", rc->name,
	    l->peer, l->tlsdesc, dane_verdict_name(v));
	metrics_count(MF_RELAY_OPENED, l->resumed ? MRO_RESUMED : MRO_FULL);
	log_info("session=%s %s verified handshake=%s", t->sid, l->desc,
	    l->resumed ? "resumed" : "full");
	if (rc->tls == TLS_MODE_IMPLICIT)
		relay_set_state(t, R_GREETING);
	else
		relay_send_ehlo(t, R_EHLO2);
}

void
relay_caps_from_ehlo(const struct smtp_reply *r, struct relay_caps *rc)
{
	struct smtp_caps c;

	smtp_ehlo_caps(r, &c);
	memset(rc, 0, sizeof(*rc));
	rc->known = 1;
	rc->starttls = c.starttls;
	rc->dsn = c.dsn;
	rc->chunking = c.chunking;
	rc->smtputf8 = c.smtputf8;
	rc->eightbit = c.eightbitmime;
	rc->pipelining = c.pipelining;
	rc->size = c.size ? c.size_max : 0;
	rc->xclient = c.xclient;
	rc->xclient_attrs = c.xclient_attrs;
}

/* After TLS and AUTH: XCLIENT when configured and offered, else MAIL. */
static void
relay_send_xclient(struct relay_txn *t)
{
	struct relay_target *tg = target_of(t);
	struct relay_link *l = t->link;

	if (!tg->rc->xclient || t->is_probe || !t->has_client || t->client.addr == NULL) {
		relay_send_mail(t);
		return;
	}
	if (!l->caps.xclient) {
		relay_send_mail(t);
		return;
	}
	if (t->xc == NULL) {
		t->xc = xcalloc(1, sizeof(*t->xc));
		l->xc_attrs = l->caps.xclient_attrs;
		xclient_build(l->xc_attrs, &t->client, t->xc);
		if (t->xc->skipped)
			log_info("session=%s relay=%s xclient attributes not sent: 0x%x", t->sid,
			    tg->rc->name, t->xc->skipped);
	}
	if (t->xc_next >= t->xc->n) {
		relay_send_mail(t);
		return;
	}
	relay_set_state(t, R_XCLIENT);
	relay_send(t, "%s", t->xc->line[t->xc_next++]);
}

/* A reply in an opening state. */
void
relay_open_reply(struct relay_txn *t, const struct smtp_reply *r)
{
	struct relay_target *tg = target_of(t);
	struct relay_link *l = t->link;
	int ok = r->code >= 200 && r->code < 300;

	switch (t->state) {
	case R_GREETING:
		if (r->code != 220) {
			relay_open_failed(t, FAIL_CONNECT, "greeting %d", r->code);
			return;
		}
		relay_send_ehlo(t, conn_is_tls(l->conn) ? R_EHLO2 : R_EHLO1);
		return;
	case R_EHLO1:
		if (!ok) {
			relay_open_failed(t, FAIL_CONNECT, "EHLO refused with %d", r->code);
			return;
		}
		relay_caps_from_ehlo(r, &l->caps);
		if (!l->caps.starttls) {
			relay_open_failed(t, FAIL_TLS, "relay does not offer STARTTLS");
			return;
		}
		relay_set_state(t, R_STARTTLS);
		relay_send(t, "STARTTLS\r\n");
		return;
	case R_STARTTLS:
		if (r->code != 220) {
			relay_open_failed(t, FAIL_TLS, "STARTTLS refused with %d", r->code);
			return;
		}
		relay_set_state(t, R_TLS);
		conn_start_tls(l->conn, relay_tls_session(t));
		return;
	case R_EHLO2:
		if (!ok) {
			relay_open_failed(t, FAIL_CONNECT, "EHLO refused with %d", r->code);
			return;
		}
		/* the first record under TLS was read: a TLS 1.3 ticket is in */
		relay_pool_keep_ticket(l);
		relay_caps_from_ehlo(r, &l->caps);
		if (tg->rc->xclient && !l->caps.xclient && !tg->xclient_warned) {
			log_warn("session=%s relay=%s xclient = yes, but the relay does not offer "
			    "XCLIENT: relaying without the client's identity (logged once per "
			    "worker)", t->sid, tg->rc->name);
			tg->xclient_warned = 1;
		}
		if (t->is_probe && !relay_pool_wants(l)) {
			/* its connection will not be kept: no need to log in */
			l->unpoolable = 1;
			relay_send_mail(t);
			return;
		}
		if (tg->auth_plain != NULL) {
			relay_set_state(t, R_AUTH);
			relay_send(t, "AUTH PLAIN %s\r\n", tg->auth_plain);
			return;
		}
		relay_send_xclient(t);
		return;
	case R_AUTH:
		if (r->code != 235) {
			relay_open_failed(t, FAIL_AUTH, "AUTH refused with %d", r->code);
			return;
		}
		relay_send_xclient(t);
		return;
	case R_XCLIENT:
		/* each XCLIENT is answered with a new greeting */
		if (r->code != 220) {
			relay_open_failed(t, FAIL_AUTH, "XCLIENT refused with %d (is this host in "
			    "the relay's smtpd_authorized_xclient_hosts?)", r->code);
			return;
		}
		if (t->xc_next < t->xc->n) {
			relay_send_xclient(t);
			return;
		}
		/* as in Postfix's XCLIENT_README: EHLO again with the client's
		 * own name, which would otherwise replace the HELO attribute */
		relay_set_state(t, R_EHLO3);
		relay_send(t, "EHLO %s\r\n", t->client.helo != NULL && t->client.helo[0] != '\0' &&
		    (l->xc_attrs & SMTP_XCLIENT_HELO) ? t->client.helo : t->ctx->ehlo_name);
		return;
	case R_EHLO3:
		if (!ok) {
			relay_open_failed(t, FAIL_CONNECT, "EHLO after XCLIENT refused with %d",
			    r->code);
			return;
		}
		relay_caps_from_ehlo(r, &l->caps);
		log_info("session=%s relay=%s xclient sent (%zu command%s)", t->sid, tg->rc->name,
		    t->xc->n, t->xc->n == 1 ? "" : "s");
		/* the relay takes this connection for the client's from now on */
		free(l->xc);
		l->xc = t->xc;
		t->xc = NULL;
		relay_send_mail(t);
		return;
	default:
		relay_open_failed(t, FAIL_CONNECT, "unexpected reply %d in state %s", r->code,
		    relay_state_name(t->state));
		return;
	}
}

void
relay_open_event(struct relay_txn *t, struct conn *c, enum conn_event ev)
{
	switch (ev) {
	case CONN_EV_CONNECTED:
		conn_set_timeout(c, (unsigned)t->ctx->cfg->limits.relay_timeout);
		if (relay_target_cfg(t)->tls == TLS_MODE_IMPLICIT) {
			relay_set_state(t, R_TLS_IMPLICIT);
			conn_start_tls(c, relay_tls_session(t));
		} else {
			relay_set_state(t, R_GREETING);
		}
		return;
	case CONN_EV_TLS_OK:
		relay_after_tls(t);
		return;
	case CONN_EV_EOF:
	case CONN_EV_ERROR:
	case CONN_EV_TIMEOUT:
		if (t->state == R_CONNECT)
			relay_open_failed(t, FAIL_CONNECT, "%s", conn_error(c));
		else if (t->state == R_TLS_IMPLICIT || t->state == R_TLS)
			relay_open_failed(t, FAIL_TLS, "%s", conn_error(c));
		else
			relay_open_failed(t, ev == CONN_EV_TIMEOUT ? FAIL_TIMEOUT : FAIL_CONNECT,
			    "%s", ev == CONN_EV_EOF ? "connection closed" : conn_error(c));
		return;
	default:
		return;
	}
}

static void
relay_dyn_clear(struct relay_txn *t)
{
	size_t i;

	for (i = 0; i < t->dyn.ntlsa; i++)
		dane_tlsa_clear(&t->dyn.tlsa[i]);
	free(t->dyn.tlsa);
	memset(&t->dyn, 0, sizeof(t->dyn));
	t->resolved = 0;
}

void
relay_open_clear(struct relay_txn *t)
{
	danedns_cancel(&t->dq);
	relay_dyn_clear(t);
	free(t->xc);
	t->xc = NULL;
}

static void
relay_dane_dns_result(struct relay_txn *t, const struct danedns_result *r)
{
	const struct config_relay *rc = relay_target_cfg(t);
	size_t i;

	t->dq = NULL;
	if (r->status != DANEDNS_OK) {
		enum relay_fail why = r->status == DANEDNS_TEMPFAIL ? FAIL_DNS_TEMP :
		    r->status == DANEDNS_NO_ADDRESS ? FAIL_CONNECT : FAIL_DNSSEC;

		log_warn("session=%s relay=%s host=%s dane=required refused: %s: %s", t->sid,
		    rc->name, rc->host, danedns_status_name(r->status), r->why);
		metrics_count(MF_DANE, metrics_label(MF_DANE, danedns_status_name(r->status)));
		if (why > t->worst)
			t->worst = why;
		t->target++;
		t->addr = 0;
		relay_open_next(t);
		return;
	}
	relay_dyn_clear(t);
	t->dyn = *r;
	t->dyn.tlsa = xcalloc(r->ntlsa ? r->ntlsa : 1, sizeof(*t->dyn.tlsa));
	for (i = 0; i < r->ntlsa; i++)
		dane_tlsa_copy(&t->dyn.tlsa[i], &r->tlsa[i]);
	t->resolved = t->target + 1;
	log_debug("session=%s relay=%s %s", t->sid, rc->name, r->why);
	relay_open_next(t);
}

static void
relay_on_dane_dns(void *arg, const struct danedns_result *r)
{
	struct relay_txn *t = arg;

	relay_hold(t);
	relay_dane_dns_result(t, r);
	relay_release(t);
}

/* Point addrs/rrs/names at the current target's data.  Returns 1 ready,
 * 0 a DNS lookup was started (relay_open_next() runs again when done).
 * dane = required: looked up for every new connection; libunbound answers
 * from its cache while the records' TTL lasts, so a changed TLSA set is
 * used by the first connection opened after the old one expired. */
static int
relay_target_data(struct relay_txn *t)
{
	struct relay_target *tg = target_of(t);
	const struct config_relay *rc = tg->rc;

	if (rc->dane == DANE_MODE_STATIC) {
		t->addrs = tg->addrs;
		t->addrlens = tg->addrlens;
		t->naddrs = tg->naddrs;
		t->rrs = rc->tlsa;
		t->nrrs = rc->ntlsa;
		t->names[0] = rc->host;
		t->nnames = 1;
		return 1;
	}
	if (t->resolved != t->target + 1) {
		relay_set_state(t, R_RESOLVE);
		t->dq = danedns_lookup(t->ctx->dns, rc->host, rc->port, relay_on_dane_dns, t);
		return 0;
	}
	t->addrs = t->dyn.addrs;
	t->addrlens = t->dyn.addrlens;
	t->naddrs = t->dyn.naddrs;
	t->rrs = t->dyn.tlsa;
	t->nrrs = t->dyn.ntlsa;
	t->names[0] = t->dyn.names[0];
	t->names[1] = t->dyn.names[1];
	t->nnames = t->dyn.nnames;
	return 1;
}

/* Connect to the current (target, addr), or the next that exists; when
 * all are exhausted, fail with the most telling reason. */
void
relay_open_next(struct relay_txn *t)
{
	struct relay_ctx *ctx = t->ctx;

	while (t->target < ctx->ntargets) {
		if (!relay_target_data(t))
			return;
		if (t->addr < t->naddrs) {
			struct relay_link *l;

			if (t->link == NULL)
				t->link = relay_link_new(ctx, t->target, t->sid);
			l = t->link;
			relay_link_reset(l, t->target);
			t->conn_gen++;
			free(t->xc);            /* XCLIENT starts over on a new connection */
			t->xc = NULL;
			t->xc_next = 0;
			t->state = R_CONNECT;
			l->conn = conn_connect(ctx->base, (const struct sockaddr *)&t->addrs[t->addr],
			    t->addrlens[t->addr], relay_conn_cb, t);
			if (l->conn == NULL) {
				log_err("session=%s relay=%s event=relay-socket-failed error=\"%s\"",
				    t->sid, relay_target_cfg(t)->name, strerror(errno));
				if (FAIL_LOCAL > t->worst)
					t->worst = FAIL_LOCAL;
				t->addr++;
				t->full_handshake = 0;
				continue;
			}
			conn_set_timeout(l->conn, (unsigned)ctx->cfg->limits.relay_timeout);
			return;
		}
		t->target++;
		t->addr = 0;
	}
	t->target = ctx->ntargets - 1;
	relay_fail(t, t->worst == FAIL_NONE ? FAIL_CONNECT : t->worst);
}
