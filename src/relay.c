/* relay.c — upstream SMTP client leg: transactions (MAIL/RCPT/DATA|BDAT). */
#include "relay_int.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "smtp_reply.h"
#include "spool.h"
#include "tls.h"
#include "util.h"
#include "xclient.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#define RELAY_FEED_CHUNK  (64 * 1024)

static const char *const relay_state_names[] = {
	"resolve", "connect", "tls-implicit", "greeting", "ehlo", "starttls", "tls", "ehlo-tls",
	"auth", "xclient", "ehlo-xclient", "rset", "mail", "idle", "rcpt", "data", "data-send",
	"final", "quit", "dead"
};

static void relay_txn_destroy(struct relay_txn *);

void
relay_hold(struct relay_txn *t)
{
	t->busy++;
}

void
relay_release(struct relay_txn *t)
{
	if (--t->busy == 0 && t->freed)
		relay_txn_destroy(t);
}

const struct config_relay *
relay_target_cfg(const struct relay_txn *t)
{
	return t->ctx->targets[t->target].rc;
}

const char *
relay_state_name(enum relay_state s)
{
	return (unsigned)s < sizeof(relay_state_names) / sizeof(relay_state_names[0]) ?
	    relay_state_names[s] : "?";
}

/* States in which a command waits for its reply.  (final: its deadline
 * starts once the end of the message is written.) */
static int
relay_awaits_reply(enum relay_state s)
{
	return (s >= R_GREETING && s <= R_EHLO3 && s != R_TLS) || s == R_RSET || s == R_MAIL ||
	    s == R_RCPT || s == R_DATA_CMD || s == R_FINAL;
}

/* The reply to the command now sent must be complete within relay-timeout:
 * the connection's own timeout is restarted by every byte, so a relay
 * dripping a reply would hold the transaction as long as it liked. */
static void
relay_reply_deadline(struct relay_txn *t)
{
	struct timeval tv = { (time_t)t->ctx->cfg->limits.relay_timeout, 0 };

	evtimer_add(t->ev_reply, &tv);
}

/* Octets of the transfer the connection wrote (what it still holds is
 * not: a relay that reads nothing earns nothing). */
static uint64_t
relay_xfer_written(struct relay_txn *t)
{
	size_t held = evbuffer_get_length(conn_output(t->link->conn));

	return t->xfer_queued > held ? t->xfer_queued - held : 0;
}

/* The message transfer (from DATA's 354 or BDAT until the end of the message
 * is written) must be done by start + relay-timeout + written octets /
 * relay-min-rate, as Postfix's smtp_min_data_rate: the connection's own
 * timeout is restarted by every write, so a relay reading a few octets now
 * and then would hold the transaction, its spool and the client as long
 * as it liked.  Microseconds left until the deadline the octets written so
 * far earn; 0: passed. */
static uint64_t
relay_xfer_left(struct relay_txn *t)
{
	const struct config_limits *lim = &t->ctx->cfg->limits;
	uint64_t allowed = lim->relay_timeout * 1000000u +
	    relay_xfer_written(t) * 1000000u / lim->relay_min_rate;
	uint64_t spent = metrics_now_us() - t->xfer_start_us;

	return allowed > spent ? allowed - spent : 0;
}

/* The timer goes off at that deadline, and is set again further when the
 * octets written meanwhile earned more. */
static void
relay_xfer_deadline(struct relay_txn *t, uint64_t left)
{
	struct timeval tv = { (time_t)(left / 1000000u), (suseconds_t)(left % 1000000u) };

	evtimer_add(t->ev_xfer, &tv);
}

static int
relay_in_xfer(const struct relay_txn *t)
{
	return t->state == R_DATA_SEND || t->state == R_FINAL;
}

void
relay_set_state(struct relay_txn *t, enum relay_state s)
{
	log_debug("session=%s relay=%s state %s -> %s", t->sid, relay_target_cfg(t)->name,
	    relay_state_name(t->state), relay_state_name(s));
	if (s == R_DATA_SEND && t->state != R_DATA_SEND) {
		t->xfer_start_us = metrics_now_us();
		t->xfer_queued = evbuffer_get_length(conn_output(t->link->conn));
	}
	t->state = s;
	if (relay_awaits_reply(s) && s != R_FINAL)
		relay_reply_deadline(t);
	else
		evtimer_del(t->ev_reply);
	if (s == R_DATA_SEND)
		relay_xfer_deadline(t, relay_xfer_left(t));
	else if (!relay_in_xfer(t))
		evtimer_del(t->ev_xfer);
}

static int
relay_in_setup(const struct relay_txn *t)
{
	return t->state <= R_EHLO3;
}

struct relay_ctx *
relay_ctx_new(struct event_base *base, const struct config *cfg, struct dns_ctx *dns,
    char *err, size_t errlen)
{
	struct relay_ctx *ctx = xcalloc(1, sizeof(*ctx));

	ctx->base = base;
	ctx->dns = dns;
	ctx->cfg = cfg;
	snprintf(ctx->ehlo_name, sizeof(ctx->ehlo_name), "%s", cfg->hostname);
	if ((ctx->tls = tls_client_new(cfg->tls_priority, err, errlen)) == NULL ||
	    relay_targets_init(ctx, err, errlen) < 0) {
		relay_ctx_free(&ctx);
		return NULL;
	}
	return ctx;
}

void
relay_ctx_free(struct relay_ctx **ctxp)
{
	struct relay_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	*ctxp = NULL;
	relay_txn_free(&ctx->probe);
	if (ctx->ev_probe != NULL)
		event_free(ctx->ev_probe);
	relay_targets_free(ctx);
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

/* Pass the relay's own reply on.  Its 421 (closing its connection) becomes
 * 451: passed on, it would tell the client that we close ours. */
static void
relay_complete_reply(struct relay_txn *t, const struct smtp_reply *r)
{
	char enh[16];

	if (r->enh[0] != '\0')
		snprintf(enh, sizeof(enh), "%s", r->enh);
	else
		snprintf(enh, sizeof(enh), "%d.0.0", r->code / 100);
	relay_complete(t, r->code == 421 ? 451 : r->code, enh, (const char *const *)r->lines,
	    r->nlines, 0);
}

void
relay_drop_conn(struct relay_txn *t)
{
	if (t->link != NULL && t->link->conn != NULL) {
		relay_link_drop(t->link);
		t->conn_gen++;
	}
}

void
relay_fail(struct relay_txn *t, enum relay_fail why)
{
	const char *enh, *text;
	const char *lines[1];

	relay_drop_conn(t);
	relay_set_state(t, R_DEAD);
	t->pooled_mail = 0;
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
	case FAIL_PROTOCOL:
		enh = "4.5.0"; text = "Relay broke the SMTP protocol, try again later"; break;
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

/* ---- sending ---- */

void
relay_send(struct relay_txn *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(conn_output(t->link->conn), fmt, ap);
	va_end(ap);
	conn_flush(t->link->conn);
}

static void
relay_describe(struct relay_txn *t)
{
	snprintf(t->desc, sizeof(t->desc), "%s conn=%s", t->link->desc,
	    t->reused ? "reused" : "new");
}

void
relay_send_mail(struct relay_txn *t)
{
	relay_describe(t);
	if (t->is_probe) {
		t->ctx->caps = t->link->caps;
		relay_set_state(t, R_IDLE);
		relay_complete(t, 250, "2.0.0", NULL, 0, 1);
		return;
	}
	relay_set_state(t, R_MAIL);
	t->asked_us = metrics_now_us();
	t->link->ntxn++;
	relay_send(t, "MAIL FROM:<%s>%s%s\r\n", t->from, t->params[0] ? " " : "", t->params);
}

/* Take up an idle connection from the pool: RSET, then MAIL (in one write
 * when the relay offers PIPELINING). */
static void
relay_reuse(struct relay_txn *t, struct relay_link *l)
{
	t->link = l;
	t->target = l->target;
	t->reused = t->pooled_mail = 1;
	if (l->xc == NULL)
		snprintf(l->sid, sizeof(l->sid), "%s", t->sid);
	conn_set_cb(l->conn, relay_conn_cb, t);
	conn_set_timeout(l->conn, (unsigned)t->ctx->cfg->limits.relay_timeout);
	relay_describe(t);
	relay_set_state(t, R_RSET);
	log_debug("session=%s %s transactions=%u", t->sid, t->desc, l->ntxn);
	if (!l->caps.pipelining) {
		relay_send(t, "RSET\r\n");
		return;
	}
	t->mail_sent = 1;
	t->asked_us = metrics_now_us();
	l->ntxn++;
	relay_send(t, "RSET\r\nMAIL FROM:<%s>%s%s\r\n", t->from, t->params[0] ? " " : "",
	    t->params);
}

static void relay_replace(struct relay_txn *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The pooled connection was dead before the relay accepted MAIL (closed,
 * reset, 421, RSET refused): nothing of this transaction reached the relay,
 * so a new verified connection takes over and the client never notices. */
static void
relay_replace(struct relay_txn *t, const char *fmt, ...)
{
	va_list ap;
	char msg[128];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("session=%s relay=%s event=relay-reuse-dead reason=\"%s\": opening a new "
	    "connection", t->sid, relay_target_cfg(t)->name, msg);
	metrics_count(MF_RELAY_REUSED, MRU_DEAD);
	relay_link_free(&t->link);
	t->conn_gen++;
	t->reused = t->pooled_mail = t->mail_sent = 0;
	t->target = t->addr = 0;
	t->worst = FAIL_NONE;
	relay_open_next(t);
}

/* Queue more of the message; called initially and on each FLUSHED. */
static void
relay_feed_body(struct relay_txn *t)
{
	struct evbuffer *out = conn_output(t->link->conn);
	uint64_t total = t->prefix_len + spool_size(t->sp);
	size_t held = evbuffer_get_length(out);
	int dot = !t->link->caps.chunking;

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
		(void)gnutls_hash(t->sha, buf, n);
		if (dot)
			msg_stuff(&t->stuff, buf, n, out);
		else
			evbuffer_add(out, buf, n);
	}
	if (t->sent >= total && dot)
		msg_stuff_end(&t->stuff, out);
	t->xfer_queued += evbuffer_get_length(out) - held;
	if (t->sent >= total) {
		relay_set_state(t, R_FINAL);
		t->asked_us = metrics_now_us();
	}
	conn_want_flushed(t->link->conn);
	conn_flush(t->link->conn);
}

/* ---- replies ---- */

/* After a reply that ends a command: idle, or done after 421 (the relay
 * closes the connection). */
static void
relay_after_reply(struct relay_txn *t, const struct smtp_reply *r)
{
	relay_set_state(t, r->code == 421 ? R_QUIT : R_IDLE);
	relay_complete_reply(t, r);
}

/* A reply before the relay can have read the end of the message.  A
 * refusal (e.g. 552) is passed on and the connection is done; anything else
 * is a protocol error: a 250 now is for a message the relay has not seen
 * whole, which we would drop without its end. */
static void
relay_early_reply(struct relay_txn *t, const struct smtp_reply *r)
{
	if (r->code >= 400) {
		relay_set_state(t, R_QUIT);
		relay_complete_reply(t, r);
		return;
	}
	log_warn("session=%s relay=%s protocol error: reply %d before the end of the message "
	    "(%llu of %llu octets queued)", t->sid, relay_target_cfg(t)->name, r->code,
	    (unsigned long long)t->sent,
	    (unsigned long long)(t->prefix_len + spool_size(t->sp)));
	relay_fail(t, FAIL_PROTOCOL);
}

/* Can the command waiting in state s have this reply (RFC 5321 4.3.2)?
 * A refusal always; else only its success: a 3xx passed on would be a
 * reply the client's command cannot have, a 221 no acceptance. */
static int
relay_reply_fits(enum relay_state s, int code)
{
	if (code >= 400)
		return 1;
	switch (s) {
	case R_RCPT:
		return code == 250 || code == 251;
	case R_DATA_CMD:
		return code == 354;
	default:                /* MAIL, the end of the message */
		return code == 250;
	}
}

static void
relay_on_reply(struct relay_txn *t, const struct smtp_reply *r)
{
	if (relay_in_setup(t)) {
		relay_open_reply(t, r);
		return;
	}
	if ((t->state == R_MAIL || t->state == R_RCPT || t->state == R_DATA_CMD ||
	    t->state == R_FINAL) && !relay_reply_fits(t->state, r->code)) {
		log_warn("session=%s relay=%s state=%s protocol error: reply %d", t->sid,
		    relay_target_cfg(t)->name, relay_state_name(t->state), r->code);
		relay_fail(t, FAIL_PROTOCOL);
		return;
	}
	if (t->state == R_MAIL || t->state == R_RCPT || t->state == R_FINAL)
		metrics_observe(MH_RELAY_REPLY, t->state == R_MAIL ? MRC_MAIL : t->state == R_RCPT ?
		    MRC_RCPT : MRC_DATA, metrics_now_us() - t->asked_us);
	switch (t->state) {
	case R_RSET:
		if (r->code != 250) {
			relay_replace(t, "RSET answered %d", r->code);
			return;
		}
		if (t->mail_sent)
			relay_set_state(t, R_MAIL);
		else
			relay_send_mail(t);
		return;
	case R_MAIL:
		if (t->pooled_mail) {
			if (r->code == 421) {
				relay_replace(t, "MAIL answered 421");
				return;
			}
			t->pooled_mail = 0;
			metrics_count(MF_RELAY_REUSED, MRU_ALIVE);
		}
		if (r->code >= 200 && r->code < 300) {
			t->ctx->caps = t->link->caps;
			t->open_txn = 1;
		}
		relay_after_reply(t, r);
		return;
	case R_RCPT:
		relay_after_reply(t, r);
		return;
	case R_DATA_CMD:
		if (r->code != 354) {
			relay_after_reply(t, r);
			return;
		}
		relay_set_state(t, R_DATA_SEND);
		relay_feed_body(t);
		return;
	case R_DATA_SEND:
		relay_early_reply(t, r);
		return;
	case R_FINAL:
		if (evbuffer_get_length(conn_output(t->link->conn)) > 0) {
			/* the end of the data is not written yet */
			relay_early_reply(t, r);
			return;
		}
		t->open_txn = 0;
		relay_after_reply(t, r);
		return;
	default:
		/* unsolicited reply (e.g. 421 before closing) */
		log_info("session=%s relay=%s unsolicited reply %d", t->sid,
		    relay_target_cfg(t)->name, r->code);
		relay_drop_conn(t);
		relay_set_state(t, R_DEAD);
		return;
	}
}

/* Replies one by one (RSET and MAIL answered in one read when pipelined),
 * while the transaction and its connection last. */
static void
relay_read(struct relay_txn *t, struct conn *c)
{
	struct evbuffer *in = conn_input(c);
	unsigned gen = t->conn_gen;

	/* t->conn_gen: c may be freed below, and a new connection may get
	 * its address */
	while (!t->freed && t->conn_gen == gen && evbuffer_get_length(in) > 0) {
		size_t len = evbuffer_get_contiguous_space(in), used = 0;
		struct smtp_reply *r = NULL;
		const char *why;
		char esc[128];
		int rv;

		rv = smtp_reply_parser_feed(t->link->rp, evbuffer_pullup(in, (ssize_t)len), len,
		    &used, &r);
		evbuffer_drain(in, used);
		if (rv == 0)
			continue;
		if (rv < 0) {
			why = smtp_reply_parser_error(t->link->rp);
			log_warn("session=%s relay=%s protocol error: %s", t->sid,
			    relay_target_cfg(t)->name, log_escape(esc, sizeof(esc), why, strlen(why)));
			if (relay_in_setup(t))
				relay_open_protocol_error(t);
			else if (t->pooled_mail)
				relay_replace(t, "protocol error");
			else
				relay_fail(t, FAIL_PROTOCOL);
			return;
		}
		smtp_reply_free(&t->reply);
		t->reply = r;
		/* may complete, and the owner may free t (held: the loop ends) */
		relay_on_reply(t, r);
	}
}

static void
relay_conn_event(struct relay_txn *t, struct conn *c, enum conn_event ev)
{
	switch (ev) {
	case CONN_EV_CONNECTED:
	case CONN_EV_TLS_OK:
		relay_open_event(t, c, ev);
		return;
	case CONN_EV_READ:
		relay_read(t, c);
		return;
	case CONN_EV_FLUSHED:
		if (t->state == R_DATA_SEND)
			relay_feed_body(t);
		else if (t->state == R_FINAL) {
			evtimer_del(t->ev_xfer);        /* the end is written */
			relay_reply_deadline(t);
		}
		return;
	case CONN_EV_HANGUP:            /* only after conn_pause(): never paused */
		return;
	case CONN_EV_EOF:
	case CONN_EV_ERROR:
	case CONN_EV_TIMEOUT:
		if (relay_in_setup(t)) {
			relay_open_event(t, c, ev);
		} else if (t->pooled_mail && ev != CONN_EV_TIMEOUT) {
			relay_replace(t, "%s", ev == CONN_EV_EOF ? "connection closed" :
			    conn_error(c));
		} else if (t->state == R_IDLE || t->state == R_QUIT || t->state == R_DEAD) {
			relay_drop_conn(t);
			relay_set_state(t, R_DEAD);
		} else {
			log_warn("session=%s relay=%s state=%s %s", t->sid, relay_target_cfg(t)->name,
			    relay_state_name(t->state), ev == CONN_EV_EOF ? "connection closed" :
			    conn_error(c));
			relay_fail(t, ev == CONN_EV_TIMEOUT ? FAIL_TIMEOUT : FAIL_LOST);
		}
		return;
	}
}

/* No complete reply within relay-timeout of the command. */
static void
relay_on_reply_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct relay_txn *t = arg;

	if (t->link == NULL || t->link->conn == NULL || !relay_awaits_reply(t->state))
		return;
	relay_hold(t);
	log_warn("session=%s relay=%s state=%s no complete reply within relay-timeout (%llu s)",
	    t->sid, relay_target_cfg(t)->name, relay_state_name(t->state),
	    (unsigned long long)t->ctx->cfg->limits.relay_timeout);
	if (relay_in_setup(t))
		relay_open_timeout(t);
	else
		relay_fail(t, FAIL_TIMEOUT);
	relay_release(t);
}

/* The transfer's deadline came: set again as far as the octets written
 * meanwhile earned, or the transfer is too slow. */
static void
relay_on_xfer_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct relay_txn *t = arg;
	const struct config_limits *lim = &t->ctx->cfg->limits;
	uint64_t left;

	if (t->link == NULL || t->link->conn == NULL || !relay_in_xfer(t) ||
	    (t->state == R_FINAL && evbuffer_get_length(conn_output(t->link->conn)) == 0))
		return;         /* written whole: FLUSHED starts the reply's deadline */
	if ((left = relay_xfer_left(t)) > 0) {
		relay_xfer_deadline(t, left);
		return;
	}
	relay_hold(t);
	log_warn("session=%s relay=%s state=%s message transfer below relay-min-rate: %llu "
	    "octets written in %llu ms (of a %llu-octet message; allowed: relay-timeout %llu s "
	    "+ 1 s per %llu octets written)", t->sid, relay_target_cfg(t)->name,
	    relay_state_name(t->state), (unsigned long long)relay_xfer_written(t),
	    (unsigned long long)((metrics_now_us() - t->xfer_start_us) / 1000u),
	    (unsigned long long)(t->prefix_len + spool_size(t->sp)),
	    (unsigned long long)lim->relay_timeout, (unsigned long long)lim->relay_min_rate);
	relay_fail(t, FAIL_TIMEOUT);
	relay_release(t);
}

void
relay_conn_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct relay_txn *t = arg;

	relay_hold(t);
	relay_conn_event(t, c, ev);
	relay_release(t);
}

/* ---- transactions ---- */

static struct relay_txn *
relay_txn_new(struct relay_ctx *ctx, const char *sid, relay_cb *cb, void *arg)
{
	struct relay_txn *t = xcalloc(1, sizeof(*t));

	t->ctx = ctx;
	snprintf(t->sid, sizeof(t->sid), "%s", sid);
	t->cb = cb;
	t->cb_arg = arg;
	if ((t->ev_done = event_new(ctx->base, -1, 0, relay_on_done, t)) == NULL ||
	    (t->ev_reply = evtimer_new(ctx->base, relay_on_reply_deadline, t)) == NULL ||
	    (t->ev_xfer = evtimer_new(ctx->base, relay_on_xfer_deadline, t)) == NULL)
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
	t->has_client = 1;
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
	struct relay_link *l;

	t->from = xstrdup(from);
	t->params = xstrdup(params);
	if (client != NULL)
		relay_txn_client(t, client);
	relay_owner_enter(t);
	if ((l = relay_pool_take(ctx, t->sid, t->has_client ? &t->client : NULL)) != NULL)
		relay_reuse(t, l);
	else
		relay_open_next(t);
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
	/* its connection, verified and idle, goes to the pool */
	relay_txn_free(&ctx->probe);
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
	if (ctx->ev_probe == NULL &&
	    (ctx->ev_probe = evtimer_new(ctx->base, relay_probe_cleanup, ctx)) == NULL)
		fatal("relay: out of memory");
	evtimer_add(ctx->ev_probe, &tv);
	relay_owner_enter(t);
	relay_open_next(t);
	relay_owner_leave(t);
}

/* Take the next operation (cb, arg); when the relay leg is gone it
 * completes with 451 4.4.2 (from the loop: we are in an owner call). */
static int
relay_txn_usable(struct relay_txn *t, relay_cb *cb, void *arg)
{
	t->cb = cb;
	t->cb_arg = arg;
	if (t->state == R_IDLE && t->link != NULL && t->link->conn != NULL)
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
	if (t->sha != NULL)
		gnutls_hash_deinit(t->sha, NULL);
	if (gnutls_hash_init(&t->sha, GNUTLS_DIG_SHA256) < 0)
		fatal("relay: out of memory for a SHA-256 context");
	msg_stuff_init(&t->stuff);
	if (t->link->caps.chunking) {
		relay_send(t, "BDAT %llu LAST\r\n",
		    (unsigned long long)(prefix_len + spool_size(sp)));
		relay_set_state(t, R_DATA_SEND);        /* the transfer counts the command */
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
	const struct relay_link *l = t->link;

	memset(f, 0, sizeof(*f));
	f->octets = t->sent;
	if (t->sp != NULL && t->sent == t->prefix_len + spool_size(t->sp)) {
		/* a copy: the running state stays usable */
		gnutls_hash_hd_t st = gnutls_hash_copy(t->sha);

		if (st == NULL)
			fatal("relay: out of memory for a SHA-256 context");
		gnutls_hash_deinit(st, f->sha256);
		f->have_sha256 = 1;
	}
	if (l == NULL || !l->verified)
		return;
	f->name = t->ctx->targets[l->target].rc->name;
	snprintf(f->address, sizeof(f->address), "%s", l->peer);
	snprintf(f->tls_version, sizeof(f->tls_version), "%s", l->tlsver);
	snprintf(f->tls_cipher, sizeof(f->tls_cipher), "%s", l->tlscipher);
	f->dane = dane_verdict_name(l->verdict);
	snprintf(f->tlsa, sizeof(f->tlsa), "%s", l->tlsa);
	f->dnssec = t->ctx->targets[l->target].rc->dane == DANE_MODE_STATIC ? "pinned" : "secure";
}

int
relay_txn_final_pending(const struct relay_txn *t)
{
	return t != NULL && t->state == R_FINAL;
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
	event_del(t->ev_reply);
	event_del(t->ev_xfer);
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

	/* back to the pool when clean; with message data in flight it is
	 * closed without the terminator, so that the relay never delivers a
	 * message we did not confirm */
	relay_pool_put(&t->link, t->state == R_IDLE, t->open_txn);
	relay_open_clear(t);
	smtp_reply_free(&t->reply);
	relay_done_clear(&t->done);
	event_free(t->ev_done);
	event_free(t->ev_reply);
	event_free(t->ev_xfer);
	if (t->sha != NULL)
		gnutls_hash_deinit(t->sha, NULL);
	free(t->from);
	free(t->params);
	for (i = 0; i < 4; i++)
		free(t->client_strs[i]);
	free(t);
}
