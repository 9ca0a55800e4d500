/* relay.c — upstream SMTP client leg: TLS + DANE, MAIL/RCPT/DATA|BDAT. */
#include "relay.h"
#include "config.h"
#include "conn.h"
#include "dane.h"
#include "danedns.h"
#include "dns.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "smtp_reply.h"
#include "spool.h"
#include "tls.h"
#include "util.h"
#include "xclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>
#include <event2/buffer.h>
#include <event2/event.h>

#define RELAY_MAX_ADDRS   8
#define RELAY_FEED_CHUNK  (64 * 1024)

struct relay_target {
	const struct config_relay *rc;
	struct sockaddr_storage addrs[RELAY_MAX_ADDRS];
	socklen_t addrlens[RELAY_MAX_ADDRS];
	size_t naddrs;
	char *auth_plain;               /* base64 "\0user\0pass", sodium_malloc'd */
	int xclient_warned;             /* "relay does not offer XCLIENT" logged */
};

struct relay_ctx {
	struct event_base *base;
	struct dns_ctx *dns;
	const struct config *cfg;
	struct tls_client *tls;
	struct relay_target *targets;
	size_t ntargets;
	struct relay_caps caps;
	struct relay_txn *probe;
	char ehlo_name[256];
};

enum relay_state {
	R_RESOLVE, R_CONNECT, R_TLS_IMPLICIT, R_GREETING, R_EHLO1, R_STARTTLS, R_TLS, R_EHLO2,
	R_AUTH, R_XCLIENT, R_EHLO3, R_MAIL, R_IDLE, R_RCPT, R_DATA_CMD, R_DATA_SEND, R_FINAL,
	R_QUIT, R_DEAD
};

static const char *const relay_state_names[] = {
	"resolve", "connect", "tls-implicit", "greeting", "ehlo", "starttls", "tls", "ehlo-tls",
	"auth", "xclient", "ehlo-xclient", "mail", "idle", "rcpt", "data", "data-send", "final",
	"quit", "dead"
};

/* In rising order of how telling a failure is (the worst one is reported). */
enum relay_fail {
	FAIL_NONE, FAIL_CONNECT, FAIL_LOCAL, FAIL_LOST, FAIL_TIMEOUT, FAIL_AUTH, FAIL_DNS_TEMP,
	FAIL_DNSSEC, FAIL_TLS
};

/* A completion that must wait for the loop (see relay_complete). */
struct relay_done {
	int code;
	char enh[16];
	char **lines;
	size_t nlines;
	int local;
	relay_cb *cb;
	void *arg;
};

struct relay_txn {
	struct relay_ctx *ctx;
	char sid[24];
	char *from, *params;
	/* who the client is (XCLIENT): a copy, and the commands being sent */
	struct xclient_info client;
	char *client_strs[4];
	struct xclient_cmds *xc;
	size_t xc_next;
	struct conn *conn;
	struct smtp_reply_parser *rp;
	enum relay_state state;
	size_t target, addr;             /* current position in the try list */
	/* the current target's addresses, TLSA records and reference names:
	 * from configuration (static pins) or from DNSSEC (dane = required) */
	struct danedns_query *dq;
	size_t resolved;                 /* target + 1 whose DNS data is in dyn */
	struct danedns_result dyn;
	const struct sockaddr_storage *addrs;
	const socklen_t *addrlens;
	size_t naddrs;
	const struct dane_tlsa *rrs;
	size_t nrrs;
	const char *names[2];
	size_t nnames;
	enum relay_fail worst;           /* most telling failure so far */
	char fail_why[256];
	struct relay_caps caps;
	int is_probe;
	relay_cb *cb;
	void *cb_arg;
	/* re-entrancy: frames of relay code using t, and owner calls in progress */
	unsigned busy;
	unsigned in_owner_call;
	int freed;                       /* relay_txn_free() while busy */
	struct event *ev_done;           /* delivers `done` from the loop */
	struct relay_done done;
	/* message transfer */
	const char *prefix;
	size_t prefix_len;
	struct spool *sp;
	uint64_t sent;                   /* bytes of prefix+spool queued */
	struct msg_stuffer stuff;
	char desc[256];
	char tlsdesc[96];
	/* for the audit log (relay_txn_facts) */
	enum dane_verdict verdict;
	int verified, matched;
	char peer[64], tlsver[32], tlscipher[96];
	crypto_hash_sha256_state sha;
	/* result storage for callbacks */
	struct smtp_reply *reply;
	uint64_t asked_us;               /* when the command now waiting was sent */
};

static void relay_conn_cb(struct conn *, enum conn_event, void *);
static void relay_try_next(struct relay_txn *);
static void relay_txn_destroy(struct relay_txn *);

/* Every frame that works on t holds it; relay_txn_free() inside such a
 * frame only marks t, and the outermost frame frees it on release. */
static void
relay_hold(struct relay_txn *t)
{
	t->busy++;
}

static void
relay_release(struct relay_txn *t)
{
	if (--t->busy == 0 && t->freed)
		relay_txn_destroy(t);
}

static const struct config_relay *
target_cfg(const struct relay_txn *t)
{
	return t->ctx->targets[t->target].rc;
}

/* SNI: the TLSA base domain (RFC 7672 8.1) -- for DNSSEC targets the name
 * the TLSA records were found at (the CNAME target when they were there),
 * else the configured host. */
static const char *
relay_sni(const struct relay_txn *t)
{
	const char *n = t->dyn.tlsa_name, *p;

	if (target_cfg(t)->dane == DANE_MODE_REQUIRED && n[0] == '_' &&
	    (p = strstr(n, "._tcp.")) != NULL && p[6] != '\0')
		return p + 6;
	return target_cfg(t)->host;
}

static void
relay_set_state(struct relay_txn *t, enum relay_state s)
{
	log_debug("session=%s relay=%s state %s -> %s", t->sid, target_cfg(t)->name,
	    relay_state_names[t->state], relay_state_names[s]);
	t->state = s;
}

/* Resolve the connect addresses of one relay at start-up. */
static int
relay_target_resolve(struct relay_target *tg, char *err, size_t errlen)
{
	const struct config_relay *rc = tg->rc;
	const char *host = rc->address ? rc->address : rc->host;
	struct addrinfo hints, *res = NULL, *ai;
	char port[8];
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", rc->port);
	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "[relay \"%s\"]: cannot resolve %s: %s", rc->name, host,
		    gai_strerror(r));
		return -1;
	}
	for (ai = res; ai && tg->naddrs < RELAY_MAX_ADDRS; ai = ai->ai_next) {
		memcpy(&tg->addrs[tg->naddrs], ai->ai_addr, ai->ai_addrlen);
		tg->addrlens[tg->naddrs++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	return 0;
}

static int
relay_target_auth(struct relay_target *tg, char *err, size_t errlen)
{
	const char *path = tg->rc->auth_file;
	char buf[1024], raw[1024];
	struct stat st;
	FILE *f;
	char *colon, *nl;
	size_t ulen, plen, rawlen, b64len;

	if (path == NULL)
		return 0;
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "[relay \"%s\"] auth-file %s: %s", tg->rc->name, path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0) {
		fclose(f);
		snprintf(err, errlen, "[relay \"%s\"] auth-file %s has mode %04o: it must not be "
		    "accessible by group or others (chmod 600 %s)", tg->rc->name, path,
		    (unsigned)(st.st_mode & 07777), path);
		return -1;
	}
	if (fgets(buf, sizeof(buf), f) == NULL) {
		fclose(f);
		snprintf(err, errlen, "[relay \"%s\"] auth-file %s is empty (expected user:password)",
		    tg->rc->name, path);
		return -1;
	}
	fclose(f);
	if ((nl = strpbrk(buf, "\r\n")) != NULL)
		*nl = '\0';
	if ((colon = strchr(buf, ':')) == NULL || colon == buf) {
		sodium_memzero(buf, sizeof(buf));
		snprintf(err, errlen, "[relay \"%s\"] auth-file %s: expected one line user:password",
		    tg->rc->name, path);
		return -1;
	}
	ulen = (size_t)(colon - buf);
	plen = strlen(colon + 1);
	raw[0] = '\0';
	memcpy(raw + 1, buf, ulen);
	raw[1 + ulen] = '\0';
	memcpy(raw + 2 + ulen, colon + 1, plen);
	rawlen = 2 + ulen + plen;
	b64len = sodium_base64_encoded_len(rawlen, sodium_base64_VARIANT_ORIGINAL);
	tg->auth_plain = sodium_malloc(b64len);
	if (tg->auth_plain == NULL)
		fatal("sodium_malloc failed");
	sodium_bin2base64(tg->auth_plain, b64len, (unsigned char *)raw, rawlen,
	    sodium_base64_VARIANT_ORIGINAL);
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(raw, sizeof(raw));
	return 0;
}

struct relay_ctx *
relay_ctx_new(struct event_base *base, const struct config *cfg, struct dns_ctx *dns,
    char *err, size_t errlen)
{
	struct relay_ctx *ctx = xcalloc(1, sizeof(*ctx));
	size_t i;

	ctx->base = base;
	ctx->dns = dns;
	ctx->cfg = cfg;
	snprintf(ctx->ehlo_name, sizeof(ctx->ehlo_name), "%s", cfg->hostname);
	if ((ctx->tls = tls_client_new(cfg->tls_priority, err, errlen)) == NULL)
		goto fail;
	ctx->ntargets = cfg->nrelays;
	ctx->targets = xcalloc(cfg->nrelays, sizeof(*ctx->targets));
	for (i = 0; i < cfg->nrelays; i++) {
		ctx->targets[i].rc = &cfg->relays[i];
		if ((cfg->relays[i].dane == DANE_MODE_STATIC &&
		    relay_target_resolve(&ctx->targets[i], err, errlen) < 0) ||
		    relay_target_auth(&ctx->targets[i], err, errlen) < 0)
			goto fail;
	}
	return ctx;
fail:
	relay_ctx_free(&ctx);
	return NULL;
}

void
relay_ctx_free(struct relay_ctx **ctxp)
{
	struct relay_ctx *ctx = *ctxp;
	size_t i;

	if (ctx == NULL)
		return;
	*ctxp = NULL;
	relay_txn_free(&ctx->probe);
	for (i = 0; i < ctx->ntargets; i++)
		sodium_free(ctx->targets[i].auth_plain);
	free(ctx->targets);
	tls_client_free(&ctx->tls);
	free(ctx);
}

const struct relay_caps *
relay_ctx_caps(const struct relay_ctx *ctx)
{
	return &ctx->caps;
}

/* ---- completing operations ---- */

static void
relay_done_clear(struct relay_done *d)
{
	size_t i;

	for (i = 0; i < d->nlines; i++)
		free(d->lines[i]);
	free(d->lines);
	memset(d, 0, sizeof(*d));
}

static void
relay_deliver(relay_cb *cb, void *arg, int code, const char *enh, const char *const *lines,
    size_t nlines, int local)
{
	struct relay_result res;

	memset(&res, 0, sizeof(res));
	res.code = code;
	snprintf(res.enh, sizeof(res.enh), "%s", enh);
	res.lines = lines;
	res.nlines = nlines;
	res.text = nlines > 0 ? lines[0] : "";
	res.local = local;
	cb(arg, &res);
}

/* A completion kept for the loop: the owner's call has returned by now. */
static void
relay_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct relay_txn *t = arg;
	struct relay_done d = t->done;

	memset(&t->done, 0, sizeof(t->done));
	relay_hold(t);
	relay_deliver(d.cb, d.arg, d.code, d.enh, (const char *const *)d.lines, d.nlines,
	    d.local);
	relay_done_clear(&d);
	relay_release(t);
}

/* Complete the outstanding operation: the callback runs now when we were
 * called from the loop, or on the next loop pass when the owner's own call
 * (relay_txn_start, _rcpt, _data) is still on the stack. */
static void
relay_complete(struct relay_txn *t, int code, const char *enh, const char *const *lines,
    size_t nlines, int local)
{
	relay_cb *cb = t->cb;
	void *arg = t->cb_arg;
	size_t i;

	t->cb = NULL;
	if (cb == NULL)
		return;
	if (t->in_owner_call == 0) {
		relay_deliver(cb, arg, code, enh, lines, nlines, local);
		return;
	}
	relay_done_clear(&t->done);
	t->done.code = code;
	snprintf(t->done.enh, sizeof(t->done.enh), "%s", enh);
	t->done.lines = xcalloc(nlines ? nlines : 1, sizeof(char *));
	for (i = 0; i < nlines; i++)
		t->done.lines[i] = xstrdup(lines[i]);
	t->done.nlines = nlines;
	t->done.local = local;
	t->done.cb = cb;
	t->done.arg = arg;
	event_active(t->ev_done, EV_TIMEOUT, 0);
}

/* Pass the relay's own reply on. */
static void
relay_complete_reply(struct relay_txn *t, const struct smtp_reply *r)
{
	char enh[16];

	if (r->enh[0] != '\0')
		snprintf(enh, sizeof(enh), "%s", r->enh);
	else
		snprintf(enh, sizeof(enh), "%d.0.0", r->code / 100);
	relay_complete(t, r->code, enh, (const char *const *)r->lines, r->nlines, 0);
}

/* A fault of the relay leg: our own 4xx; the connection is gone. */
static void
relay_fail(struct relay_txn *t, enum relay_fail why)
{
	const char *enh, *text;
	const char *lines[1];

	conn_free(&t->conn);
	relay_set_state(t, R_DEAD);
	switch (why) {
	case FAIL_TLS:
		enh = "4.7.5"; text = "Relay TLS or DANE authentication failed, try again later"; break;
	case FAIL_DNSSEC:
		enh = "4.7.5"; text = "Relay has no usable DNSSEC-validated TLSA records, try again later";
		break;
	case FAIL_DNS_TEMP:
		enh = "4.4.3"; text = "Relay DNS lookup failed, try again later"; break;
	case FAIL_TIMEOUT:
		enh = "4.4.2"; text = "Relay timed out, try again later"; break;
	case FAIL_LOST:
		enh = "4.4.2"; text = "Relay connection lost, try again later"; break;
	case FAIL_AUTH:
		enh = "4.7.0"; text = "Relay refused our credentials, try again later"; break;
	case FAIL_LOCAL:
		enh = "4.3.0"; text = "Local resources exhausted (no connection to the relay could "
		    "be opened), try again later"; break;
	default:
		enh = "4.4.0"; text = "Relay unavailable, try again later"; break;
	}
	lines[0] = text;
	relay_complete(t, 451, enh, lines, 1, 1);
}

/* Before MAIL was accepted, a failure moves on to the next address/relay;
 * after that it ends the transaction. */
static void
relay_setup_failed(struct relay_txn *t, enum relay_fail why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
relay_setup_failed(struct relay_txn *t, enum relay_fail why, const char *fmt, ...)
{
	va_list ap;
	char msg[256];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("session=%s relay=%s addr=%s state=%s failed: %s", t->sid, target_cfg(t)->name,
	    t->conn ? conn_peer(t->conn) : "-", relay_state_names[t->state], msg);
	conn_free(&t->conn);
	/* the most telling failure wins: TLS/DANE, DNS, then the rest */
	if (why > t->worst)
		t->worst = why;
	t->addr++;
	relay_try_next(t);
}

/* ---- sending ---- */

static void
relay_send(struct relay_txn *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
relay_send(struct relay_txn *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(conn_output(t->conn), fmt, ap);
	va_end(ap);
	conn_flush(t->conn);
}

static void
relay_send_ehlo(struct relay_txn *t, enum relay_state s)
{
	relay_set_state(t, s);
	relay_send(t, "EHLO %s\r\n", t->ctx->ehlo_name);
}

static void
relay_send_mail(struct relay_txn *t)
{
	if (t->is_probe) {
		t->ctx->caps = t->caps;
		relay_set_state(t, R_IDLE);
		relay_complete(t, 250, "2.0.0", NULL, 0, 1);
		return;
	}
	relay_set_state(t, R_MAIL);
	t->asked_us = metrics_now_us();
	relay_send(t, "MAIL FROM:<%s>%s%s\r\n", t->from, t->params[0] ? " " : "", t->params);
}

static void
relay_after_tls(struct relay_txn *t)
{
	const struct config_relay *rc = target_cfg(t);
	char why[256];
	enum dane_verdict v;

	v = tls_peer_dane(conn_tls(t->conn), t->rrs, t->nrrs, t->names, t->nnames, &t->matched,
	    why, sizeof(why));
	tls_describe(conn_tls(t->conn), t->tlsdesc, sizeof(t->tlsdesc));
	metrics_count(MF_DANE, metrics_label(MF_DANE, dane_verdict_name(v)));
	if (v != DANE_OK_EE && v != DANE_OK_TA) {
		relay_setup_failed(t, FAIL_TLS, "DANE verification %s: %s", dane_verdict_name(v), why);
		return;
	}
	t->verdict = v;
	t->verified = 1;
	snprintf(t->peer, sizeof(t->peer), "%s", conn_peer(t->conn));
	tls_params(conn_tls(t->conn), t->tlsver, sizeof(t->tlsver), t->tlscipher,
	    sizeof(t->tlscipher));
	snprintf(t->desc, sizeof(t->desc), "relay=%s addr=%s tls=\"%s\" dane=%s", rc->name,
	    conn_peer(t->conn), t->tlsdesc, dane_verdict_name(v));
	log_info("session=%s %s verified", t->sid, t->desc);
	if (rc->tls == TLS_MODE_IMPLICIT)
		relay_set_state(t, R_GREETING);
	else
		relay_send_ehlo(t, R_EHLO2);
}

/* Queue more of the message; called initially and on each FLUSHED. */
static void
relay_feed_body(struct relay_txn *t)
{
	struct evbuffer *out = conn_output(t->conn);
	uint64_t total = t->prefix_len + spool_size(t->sp);
	int dot = !t->caps.chunking;

	while (evbuffer_get_length(out) < RELAY_FEED_CHUNK && t->sent < total) {
		char buf[16384];
		size_t n = 0;

		if (t->sent < t->prefix_len) {
			n = t->prefix_len - (size_t)t->sent;
			if (n > sizeof(buf))
				n = sizeof(buf);
			memcpy(buf, t->prefix + t->sent, n);
		} else if (spool_read(t->sp, t->sent - t->prefix_len, buf, sizeof(buf), &n) < 0 ||
		    n == 0) {
			log_err("session=%s relay: reading the message spool failed", t->sid);
			relay_fail(t, FAIL_LOST);
			return;
		}
		t->sent += n;
		crypto_hash_sha256_update(&t->sha, (const unsigned char *)buf, n);
		if (dot)
			msg_stuff(&t->stuff, buf, n, out);
		else
			evbuffer_add(out, buf, n);
	}
	if (t->sent >= total) {
		if (dot)
			msg_stuff_end(&t->stuff, out);
		relay_set_state(t, R_FINAL);
		t->asked_us = metrics_now_us();
	} else {
		conn_want_flushed(t->conn);
	}
	conn_flush(t->conn);
}

/* The relay's EHLO capabilities, as far as the relay leg uses them. */
static void
smtp_ehlo_caps_relay(const struct smtp_reply *r, struct relay_caps *rc)
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
	struct relay_target *tg = &t->ctx->targets[t->target];

	if (!tg->rc->xclient || t->is_probe || t->client.addr == NULL) {
		relay_send_mail(t);
		return;
	}
	if (!t->caps.xclient) {
		if (!tg->xclient_warned)
			log_warn("session=%s relay=%s xclient = yes, but the relay does not offer "
			    "XCLIENT: relaying without the client's identity (logged once)", t->sid,
			    tg->rc->name);
		tg->xclient_warned = 1;
		relay_send_mail(t);
		return;
	}
	if (t->xc == NULL) {
		t->xc = xcalloc(1, sizeof(*t->xc));
		xclient_build(t->caps.xclient_attrs, &t->client, t->xc);
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

/* ---- replies ---- */

static void
relay_on_reply(struct relay_txn *t, struct smtp_reply *r)
{
	const struct config_relay *rc = target_cfg(t);
	int ok = r->code >= 200 && r->code < 300;

	if (t->state == R_MAIL || t->state == R_RCPT || t->state == R_FINAL)
		metrics_observe(MH_RELAY_REPLY, t->state == R_MAIL ? MRC_MAIL : t->state == R_RCPT ?
		    MRC_RCPT : MRC_DATA, metrics_now_us() - t->asked_us);
	switch (t->state) {
	case R_GREETING:
		if (r->code != 220) {
			relay_setup_failed(t, FAIL_CONNECT, "greeting %d", r->code);
			return;
		}
		relay_send_ehlo(t, conn_is_tls(t->conn) ? R_EHLO2 : R_EHLO1);
		return;
	case R_EHLO1:
		if (!ok) {
			relay_setup_failed(t, FAIL_CONNECT, "EHLO refused with %d", r->code);
			return;
		}
		smtp_ehlo_caps_relay(r, &t->caps);
		if (!t->caps.starttls) {
			relay_setup_failed(t, FAIL_TLS, "relay does not offer STARTTLS");
			return;
		}
		relay_set_state(t, R_STARTTLS);
		relay_send(t, "STARTTLS\r\n");
		return;
	case R_STARTTLS:
		if (r->code != 220) {
			relay_setup_failed(t, FAIL_TLS, "STARTTLS refused with %d", r->code);
			return;
		}
		relay_set_state(t, R_TLS);
		conn_start_tls(t->conn, tls_client_session(t->ctx->tls, relay_sni(t), NULL));
		return;
	case R_EHLO2:
		if (!ok) {
			relay_setup_failed(t, FAIL_CONNECT, "EHLO refused with %d", r->code);
			return;
		}
		smtp_ehlo_caps_relay(r, &t->caps);
		t->caps.known = 1;
		if (t->ctx->targets[t->target].auth_plain != NULL && !t->is_probe) {
			relay_set_state(t, R_AUTH);
			relay_send(t, "AUTH PLAIN %s\r\n", t->ctx->targets[t->target].auth_plain);
			return;
		}
		relay_send_xclient(t);
		return;
	case R_AUTH:
		if (r->code != 235) {
			relay_setup_failed(t, FAIL_AUTH, "AUTH refused with %d", r->code);
			return;
		}
		relay_send_xclient(t);
		return;
	case R_XCLIENT:
		/* each XCLIENT is answered with a new greeting */
		if (r->code != 220) {
			relay_setup_failed(t, FAIL_AUTH, "XCLIENT refused with %d (is this host in "
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
		    (t->caps.xclient_attrs & SMTP_XCLIENT_HELO) ? t->client.helo : t->ctx->ehlo_name);
		return;
	case R_EHLO3:
		if (!ok) {
			relay_setup_failed(t, FAIL_CONNECT, "EHLO after XCLIENT refused with %d",
			    r->code);
			return;
		}
		smtp_ehlo_caps_relay(r, &t->caps);
		log_info("session=%s relay=%s xclient sent (%zu command%s)", t->sid, rc->name,
		    t->xc->n, t->xc->n == 1 ? "" : "s");
		relay_send_mail(t);
		return;
	case R_MAIL:
		if (ok) {
			t->ctx->caps = t->caps;
			relay_set_state(t, R_IDLE);
		} else {
			relay_set_state(t, R_QUIT);
		}
		relay_complete_reply(t, r);
		return;
	case R_RCPT:
		relay_set_state(t, R_IDLE);
		relay_complete_reply(t, r);
		return;
	case R_DATA_CMD:
		if (r->code != 354) {
			relay_set_state(t, R_IDLE);
			relay_complete_reply(t, r);
			return;
		}
		relay_set_state(t, R_DATA_SEND);
		relay_feed_body(t);
		return;
	case R_DATA_SEND:
		/* an early final reply (e.g. 552) while we still send: the
		 * relay refused; pass it on, the connection is done */
		relay_set_state(t, R_QUIT);
		relay_complete_reply(t, r);
		return;
	case R_FINAL:
		relay_set_state(t, R_IDLE);
		relay_complete_reply(t, r);
		return;
	case R_QUIT:
	case R_IDLE:
		/* unsolicited reply (e.g. 421 before closing) */
		log_info("session=%s relay=%s unsolicited reply %d", t->sid, rc->name, r->code);
		relay_set_state(t, R_DEAD);
		conn_free(&t->conn);
		return;
	default:
		relay_setup_failed(t, FAIL_CONNECT, "unexpected reply %d in state %s", r->code,
		    relay_state_names[t->state]);
		return;
	}
}

static int
relay_in_setup(const struct relay_txn *t)
{
	return t->state <= R_EHLO3;
}

static void
relay_conn_event(struct relay_txn *t, struct conn *c, enum conn_event ev)
{
	struct evbuffer *in;

	switch (ev) {
	case CONN_EV_CONNECTED:
		conn_set_timeout(c, (unsigned)t->ctx->cfg->limits.relay_timeout);
		if (target_cfg(t)->tls == TLS_MODE_IMPLICIT) {
			relay_set_state(t, R_TLS_IMPLICIT);
			conn_start_tls(c, tls_client_session(t->ctx->tls, relay_sni(t), NULL));
		} else {
			relay_set_state(t, R_GREETING);
		}
		return;
	case CONN_EV_TLS_OK:
		relay_after_tls(t);
		return;
	case CONN_EV_READ:
		in = conn_input(c);
		while (t->conn == c && evbuffer_get_length(in) > 0) {
			size_t len = evbuffer_get_contiguous_space(in), used = 0;
			struct smtp_reply *r = NULL;
			int rv;

			rv = smtp_reply_parser_feed(t->rp, evbuffer_pullup(in, (ssize_t)len), len,
			    &used, &r);
			evbuffer_drain(in, used);
			if (rv < 0) {
				char esc[128];
				log_warn("session=%s relay=%s protocol error: %s", t->sid,
				    target_cfg(t)->name, log_escape(esc, sizeof(esc),
				    smtp_reply_parser_error(t->rp), strlen(smtp_reply_parser_error(t->rp))));
				if (relay_in_setup(t))
					relay_setup_failed(t, FAIL_CONNECT, "protocol error");
				else
					relay_fail(t, FAIL_LOST);
				return;
			}
			if (rv == 0)
				continue;
			smtp_reply_free(&t->reply);
			t->reply = r;
			/* relay_on_reply may complete and the owner may free t:
			 * take nothing from t afterwards unless the conn is still ours */
			relay_on_reply(t, r);
			return;
		}
		return;
	case CONN_EV_FLUSHED:
		if (t->state == R_DATA_SEND)
			relay_feed_body(t);
		return;
	case CONN_EV_EOF:
	case CONN_EV_ERROR:
	case CONN_EV_TIMEOUT:
		if (t->state == R_CONNECT)
			relay_setup_failed(t, FAIL_CONNECT, "%s", conn_error(c));
		else if (t->state == R_TLS_IMPLICIT || t->state == R_TLS)
			relay_setup_failed(t, FAIL_TLS, "%s", conn_error(c));
		else if (relay_in_setup(t))
			relay_setup_failed(t, ev == CONN_EV_TIMEOUT ? FAIL_TIMEOUT : FAIL_CONNECT,
			    "%s", ev == CONN_EV_EOF ? "connection closed" : conn_error(c));
		else if (t->state == R_IDLE || t->state == R_QUIT || t->state == R_DEAD) {
			conn_free(&t->conn);
			relay_set_state(t, R_DEAD);
		} else {
			log_warn("session=%s relay=%s state=%s %s", t->sid, target_cfg(t)->name,
			    relay_state_names[t->state], ev == CONN_EV_EOF ? "connection closed" :
			    conn_error(c));
			relay_fail(t, ev == CONN_EV_TIMEOUT ? FAIL_TIMEOUT : FAIL_LOST);
		}
		return;
	}
}

static void
relay_conn_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct relay_txn *t = arg;

	relay_hold(t);
	relay_conn_event(t, c, ev);
	relay_release(t);
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

static void
relay_dane_dns_result(struct relay_txn *t, const struct danedns_result *r)
{
	const struct config_relay *rc = target_cfg(t);
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
		relay_try_next(t);
		return;
	}
	relay_dyn_clear(t);
	t->dyn = *r;
	t->dyn.tlsa = xcalloc(r->ntlsa ? r->ntlsa : 1, sizeof(*t->dyn.tlsa));
	for (i = 0; i < r->ntlsa; i++)
		dane_tlsa_copy(&t->dyn.tlsa[i], &r->tlsa[i]);
	t->resolved = t->target + 1;
	log_debug("session=%s relay=%s %s", t->sid, rc->name, r->why);
	relay_try_next(t);
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
 * 0 a DNS lookup was started (relay_try_next() runs again when done). */
static int
relay_target_data(struct relay_txn *t)
{
	struct relay_target *tg = &t->ctx->targets[t->target];
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
static void
relay_try_next(struct relay_txn *t)
{
	struct relay_ctx *ctx = t->ctx;

	while (t->target < ctx->ntargets) {
		if (!relay_target_data(t))
			return;
		if (t->addr < t->naddrs) {
			smtp_reply_parser_free(&t->rp);
			t->rp = smtp_reply_parser_new();
			memset(&t->caps, 0, sizeof(t->caps));
			free(t->xc);            /* XCLIENT starts over on a new connection */
			t->xc = NULL;
			t->xc_next = 0;
			t->state = R_CONNECT;
			t->conn = conn_connect(ctx->base, (const struct sockaddr *)&t->addrs[t->addr],
			    t->addrlens[t->addr], relay_conn_cb, t);
			if (t->conn == NULL) {
				log_err("session=%s relay=%s event=relay-socket-failed error=\"%s\"",
				    t->sid, target_cfg(t)->name, strerror(errno));
				if (FAIL_LOCAL > t->worst)
					t->worst = FAIL_LOCAL;
				t->addr++;
				continue;
			}
			conn_set_timeout(t->conn, (unsigned)ctx->cfg->limits.relay_timeout);
			return;
		}
		t->target++;
		t->addr = 0;
	}
	t->target = ctx->ntargets - 1;
	relay_fail(t, t->worst == FAIL_NONE ? FAIL_CONNECT : t->worst);
}

static struct relay_txn *
relay_txn_new(struct relay_ctx *ctx, const char *sid, relay_cb *cb, void *arg)
{
	struct relay_txn *t = xcalloc(1, sizeof(*t));

	t->ctx = ctx;
	snprintf(t->sid, sizeof(t->sid), "%s", sid);
	t->cb = cb;
	t->cb_arg = arg;
	if ((t->ev_done = event_new(ctx->base, -1, 0, relay_on_done, t)) == NULL)
		fatal("relay: out of memory");
	return t;
}

/* Keep a copy of who the client is (the session may change its HELO name
 * while the transaction lives). */
static void
relay_txn_client(struct relay_txn *t, const struct xclient_info *ci)
{
	const char *src[4] = { ci->addr, ci->helo, ci->login, ci->destaddr };
	size_t i;

	t->client = *ci;
	for (i = 0; i < 4; i++)
		t->client_strs[i] = src[i] ? xstrdup(src[i]) : NULL;
	t->client.addr = t->client_strs[0];
	t->client.helo = t->client_strs[1];
	t->client.login = t->client_strs[2];
	t->client.destaddr = t->client_strs[3];
}

/* Around every call the owner makes: completions inside it wait for the
 * loop, and t cannot go away under it. */
static void
relay_owner_enter(struct relay_txn *t)
{
	relay_hold(t);
	t->in_owner_call++;
}

static void
relay_owner_leave(struct relay_txn *t)
{
	t->in_owner_call--;
	relay_release(t);
}

struct relay_txn *
relay_txn_start(struct relay_ctx *ctx, const char *sid, const char *from, const char *params,
    const struct xclient_info *client, relay_cb *cb, void *arg)
{
	struct relay_txn *t = relay_txn_new(ctx, sid, cb, arg);

	t->from = xstrdup(from);
	t->params = xstrdup(params);
	if (client != NULL)
		relay_txn_client(t, client);
	relay_owner_enter(t);
	relay_try_next(t);
	relay_owner_leave(t);
	return t;
}

static void
relay_probe_done(void *arg, const struct relay_result *res)
{
	struct relay_ctx *ctx = arg;

	if (res->code == 250)
		log_info("relay probe: capabilities known (dsn=%d chunking=%d smtputf8=%d)",
		    ctx->caps.dsn, ctx->caps.chunking, ctx->caps.smtputf8);
	else
		log_warn("relay probe failed: %d %s %s", res->code, res->enh, res->text);
}

static void
relay_probe_cleanup(evutil_socket_t fd, short what, void *arg)
{
	struct relay_ctx *ctx = arg;

	relay_txn_free(&ctx->probe);
}

void
relay_ctx_probe(struct relay_ctx *ctx)
{
	struct relay_txn *t = relay_txn_new(ctx, "probe", relay_probe_done, ctx);
	struct timeval tv = { 30, 0 };

	t->is_probe = 1;
	t->from = xstrdup("");
	t->params = xstrdup("");
	ctx->probe = t;
	relay_owner_enter(t);
	relay_try_next(t);
	relay_owner_leave(t);
	event_base_once(ctx->base, -1, EV_TIMEOUT, relay_probe_cleanup, ctx, &tv);
}

/* Take the next operation (cb, arg); when the relay leg is gone it
 * completes with 451 4.4.2 (from the loop: we are in an owner call). */
static int
relay_txn_usable(struct relay_txn *t, relay_cb *cb, void *arg)
{
	t->cb = cb;
	t->cb_arg = arg;
	if (t->state == R_IDLE && t->conn != NULL)
		return 1;
	relay_fail(t, FAIL_LOST);
	return 0;
}

void
relay_txn_rcpt(struct relay_txn *t, const char *to, const char *params, relay_cb *cb, void *arg)
{
	relay_owner_enter(t);
	if (relay_txn_usable(t, cb, arg)) {
		relay_set_state(t, R_RCPT);
		t->asked_us = metrics_now_us();
		relay_send(t, "RCPT TO:<%s>%s%s\r\n", to, params[0] ? " " : "", params);
	}
	relay_owner_leave(t);
}

static void
relay_start_data(struct relay_txn *t, const char *prefix, size_t prefix_len, struct spool *sp)
{
	t->prefix = prefix;
	t->prefix_len = prefix_len;
	t->sp = sp;
	t->sent = 0;
	crypto_hash_sha256_init(&t->sha);
	msg_stuff_init(&t->stuff);
	if (t->caps.chunking) {
		relay_set_state(t, R_DATA_SEND);
		relay_send(t, "BDAT %llu LAST\r\n",
		    (unsigned long long)(prefix_len + spool_size(sp)));
		relay_feed_body(t);
	} else {
		relay_set_state(t, R_DATA_CMD);
		relay_send(t, "DATA\r\n");
	}
}

void
relay_txn_data(struct relay_txn *t, const char *prefix, size_t prefix_len, struct spool *sp,
    relay_cb *cb, void *arg)
{
	relay_owner_enter(t);
	if (relay_txn_usable(t, cb, arg))
		relay_start_data(t, prefix, prefix_len, sp);
	relay_owner_leave(t);
}

const char *
relay_txn_describe(const struct relay_txn *t)
{
	return t->desc[0] ? t->desc : "relay=-";
}

void
relay_txn_facts(const struct relay_txn *t, struct relay_facts *f)
{
	crypto_hash_sha256_state st;

	memset(f, 0, sizeof(*f));
	f->octets = t->sent;
	if (t->sp != NULL && t->sent == t->prefix_len + spool_size(t->sp)) {
		st = t->sha;	/* the running state stays usable */
		crypto_hash_sha256_final(&st, f->sha256);
		f->have_sha256 = 1;
	}
	if (!t->verified)
		return;
	f->name = target_cfg(t)->name;
	snprintf(f->address, sizeof(f->address), "%s", t->peer);
	snprintf(f->tls_version, sizeof(f->tls_version), "%s", t->tlsver);
	snprintf(f->tls_cipher, sizeof(f->tls_cipher), "%s", t->tlscipher);
	f->dane = dane_verdict_name(t->verdict);
	if (t->matched >= 0 && (size_t)t->matched < t->nrrs)
		dane_tlsa_text(&t->rrs[t->matched], f->tlsa, sizeof(f->tlsa));
	f->dnssec = target_cfg(t)->dane == DANE_MODE_STATIC ? "pinned" : "secure";
}

void
relay_txn_free(struct relay_txn **tp)
{
	struct relay_txn *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	t->cb = NULL;
	relay_done_clear(&t->done);
	event_del(t->ev_done);
	if (t->busy > 0) {
		/* a frame of ours is below the caller: the outermost frees */
		t->freed = 1;
		return;
	}
	relay_txn_destroy(t);
}

static void
relay_txn_destroy(struct relay_txn *t)
{
	size_t i;

	if (t->conn != NULL) {
		if (t->state == R_IDLE) {
			evbuffer_add_printf(conn_output(t->conn), "QUIT\r\n");
			conn_close_after_flush(&t->conn, NULL, NULL);
		} else {
			/* mid-transfer: drop without the terminator so that the
			 * relay never delivers a message we did not confirm */
			conn_free(&t->conn);
		}
	}
	danedns_cancel(&t->dq);
	relay_dyn_clear(t);
	smtp_reply_parser_free(&t->rp);
	smtp_reply_free(&t->reply);
	relay_done_clear(&t->done);
	event_free(t->ev_done);
	free(t->from);
	free(t->params);
	for (i = 0; i < 4; i++)
		free(t->client_strs[i]);
	free(t->xc);
	free(t);
}
