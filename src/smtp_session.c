/* smtp_session.c — the client session: replies, time limits, the command loop and
 * its state machine. */
#include "smtp_session.h"
#include "auditrec.h"
#include "connlimit.h"
#include "limiter.h"
#include "keeper_client.h"
#include "log.h"
#include "loginmem.h"
#include "metrics.h"
#include "message.h"
#include "signer_client.h"
#include "slots.h"
#include "spool.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <event2/buffer.h>
#include <event2/event.h>

const char *const sess_state_names[] = {
	"tls-handshake", "command", "auth-plain", "auth-user", "auth-pass", "wait", "data",
	"bdat", "closed"
};

static void session_reap(struct session *);

time_t
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

uint64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Every frame entered from the event loop (connection events, results of
 * the keeper, signer and relay, timers) holds its session.  Closing it
 * inside such a frame only marks it closed; the outermost frame frees it
 * when it lets go, so no frame ever sees freed memory. */
void
session_hold(struct session *s)
{
	s->busy++;
}

void
session_release(struct session *s)
{
	if (--s->busy == 0)
		session_reap(s);
}

/* ---- replies ---- */

/* Replies that say the client broke the protocol: unknown commands and
 * bad lines (500), syntax errors (501, 504, 555), bad sequence (503) and
 * commands that need STARTTLS or AUTH first (530).  [limits]
 * protocol-errors of them end the session with 421 4.7.0. */
static int
is_protocol_error(int code)
{
	return code == 500 || code == 501 || code == 503 || code == 504 || code == 530 ||
	    code == 555;
}

void
reply(struct session *s, int code, const char *enh, const char *fmt, ...)
{
	struct evbuffer *out = conn_output(s->conn);
	va_list ap;

	if (enh != NULL)
		evbuffer_add_printf(out, "%d %s ", code, enh);
	else
		evbuffer_add_printf(out, "%d ", code);
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	if (is_protocol_error(code) && !s->close_after_reply &&
	    ++s->proto_errors >= s->srv->cfg->limits.protocol_errors) {
		log_warn("session=%s event=protocol-error-limit peer=%s errors=%u", s->id, s->peer,
		    s->proto_errors);
		evbuffer_add_printf(out, "421 4.7.0 Too many errors in this session, closing "
		    "connection\r\n");
		/* before AUTH a client may do this again and again: counted */
		auditrec_refusal(s->srv->audit, s->id, s->peer, s->login, "session", 421, "4.7.0",
		    "protocol-errors", "Too many errors in this session, closing connection",
		    s->login == NULL ? s->peer_key : NULL);
		s->close_after_reply = 1;
	}
}

static void
reply_err(struct session *s, const struct smtp_err *e)
{
	reply(s, e->code, e->enh, "%s", e->text);
}

/* Pass on a relay result: every line, printable ASCII only (relay text is
 * hostile input), with the enhanced status code on each line. */
void
reply_relay_to(struct evbuffer *out, const struct relay_result *r)
{
	size_t i, n = r->nlines ? r->nlines : 1;

	for (i = 0; i < n; i++) {
		const char *t = r->nlines ? r->lines[i] : "";
		char esc[600];
		size_t j, o = 0;

		for (j = 0; t[j] != '\0' && o < sizeof(esc) - 1 && j < 480; j++)
			esc[o++] = (t[j] >= 0x20 && t[j] < 0x7f) ? t[j] : '?';
		esc[o] = '\0';
		evbuffer_add_printf(out, "%d%c%s %s\r\n", r->code, i + 1 < n ? '-' : ' ', r->enh, esc);
	}
}

/* A MAIL command or a message was refused with enhanced code enh. */
void
count_refused(const char *enh)
{
	metrics_count(MF_REFUSED, metrics_label(MF_REFUSED, enh));
}

void
reply_relay(struct session *s, const struct relay_result *r)
{
	reply_relay_to(conn_output(s->conn), r);
}

/* A command refused by policy: the reply, and the audit record of it
 * naming `login` (before AUTH succeeded: the name tried, or NULL).
 * reason: a stable token for reports; flood: one a client can repeat at
 * will before AUTH (auditrec.h: counted per address key). */
void
refuse_as(struct session *s, const char *login, const char *stage, const char *reason, int code,
    const char *enh, const char *text, int flood)
{
	reply(s, code, enh, "%s", text);
	auditrec_refusal(s->srv->audit, s->id, s->peer, login, stage, code, enh, reason, text,
	    flood ? s->peer_key : NULL);
}

/* refuse_as() for the session's login, the sentence formatted. */
void
refuse(struct session *s, const char *stage, const char *reason, int code, const char *enh,
    const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	refuse_as(s, s->login, stage, reason, code, enh, text, 0);
}

/* A refusal the relay gave (or our own, when the relay leg failed). */
void
refuse_relay(struct session *s, const char *stage, const struct relay_result *r)
{
	reply_relay(s, r);
	auditrec_refusal(s->srv->audit, s->id, s->peer, s->login, stage, r->code, r->enh,
	    r->local ? "relay-failed" : "relay-refused", r->text, NULL);
}

static void
session_flush(struct session *s)
{
	if (s->conn != NULL)
		conn_flush(s->conn);
}

/* ---- the client ---- */

/* The client's address (and, in *port_r, its port; port_r may be NULL):
 * from the PROXY header on proxy-protocol listeners, else the socket's
 * peer.  Everything that names the client -- connection and rate limits,
 * lockouts (the peer given to keeper), logs, Received, XCLIENT, audit
 * records -- takes it from here (s->peer holds it). */
const char *
session_client(const struct session *s, int *port_r)
{
	if (port_r != NULL)
		*port_r = s->peer_port;
	return s->peer;
}

/* ---- rate limits (limiter.h; [limits] and [login "NAME"]) ---- */

/* One token of `lim` (MAIL, RCPT or AUTH) for the login and the client's
 * address, counted under the same key as the connection limits
 * (limiter.h).  Returns 1, or 0 when refused: then the reply naming the
 * limit is queued, the refusal recorded (audit log, reason: the limit's
 * key) and counted. */
int
rate_take(struct session *s, enum ratelimit_limit lim, const char *login)
{
	char why[128], text[256];

	if (limiter_take(s->srv->limiter, lim, login, session_client(s, NULL), s->peer_key, s->id,
	    why, sizeof(why)))
		return 1;
	switch (lim) {
	case RATELIMIT_MESSAGES:
		metrics_count(MF_RATELIMIT_REFUSED, MRL_MESSAGES);
		count_refused("4.7.1");
		snprintf(text, sizeof(text), "Message rate limit reached (%s), try again later", why);
		refuse_as(s, login, "mail", ratelimit_limit_name(lim), 450, "4.7.1", text, 0);
		break;
	case RATELIMIT_RECIPIENTS:
		metrics_count(MF_RATELIMIT_REFUSED, MRL_RECIPIENTS);
		snprintf(text, sizeof(text), "Recipient rate limit reached (%s), try again later",
		    why);
		refuse_as(s, login, "rcpt", ratelimit_limit_name(lim), 450, "4.7.1", text, 0);
		break;
	case RATELIMIT_AUTH:
		metrics_count(MF_RATELIMIT_REFUSED, MRL_AUTH);
		snprintf(text, sizeof(text), "Too many authentication attempts (%s), try again "
		    "later", why);
		refuse_as(s, login, "auth", ratelimit_limit_name(lim), 454, "4.7.0", text, 1);
		break;
	}
	return 0;
}

/* Give back the token of `lim` rate_take() took for `login`: the request
 * turned out not to count (a RCPT whose relay leg failed). */
void
rate_give_back(struct session *s, enum ratelimit_limit lim, const char *login)
{
	limiter_give_back(s->srv->limiter, lim, login, s->peer_key);
	log_debug("session=%s event=rate-give-back limit=%s", s->id, ratelimit_limit_name(lim));
}

/* ---- session lifecycle ---- */

void
session_set_state(struct session *s, enum sess_state st)
{
	if (s->state != st)
		log_debug("session=%s state %s -> %s", s->id, sess_state_names[s->state],
		    sess_state_names[st]);
	s->state = st;
	if (st == S_CLOSED) {
		connlimit_del(s->lslot);        /* closed: no longer a session of its login */
		s->lslot = -1;
		return;
	}
	/* commands are read a line's worth ahead: a client pipelining
	 * without reading its replies makes front hold 16 KiB of them, not
	 * 256 KiB (with 64 KiB of replies, per connection, before AUTH) */
	if (s->conn != NULL)
		conn_set_input_max(s->conn, st == S_DATA || st == S_BDAT ? CONN_INPUT_MAX :
		    LINE_INPUT_MAX);
}

/* Count the spool's growth for the login; past [limits] login-memory the
 * message is refused at its end (452 4.3.1) and nothing more of it is
 * kept (the parser still reads to the end of the data). */
static void
session_charge(struct session *s)
{
	uint64_t size, limit = s->srv->cfg->limits.login_memory;

	if (s->mem == NULL || s->sp == NULL)
		return;
	size = spool_size(s->sp);
	if (size > s->charged) {
		loginmem_add(s->mem, size - s->charged);
		s->charged = size;
	}
	if (!s->mem_over && loginmem_held(s->mem) > limit) {
		log_warn("session=%s event=login-memory login=%s held=%llu limit=%llu", s->id,
		    s->login, (unsigned long long)loginmem_held(s->mem), (unsigned long long)limit);
		s->mem_over = 1;
	}
	if (s->mem_over) {
		loginmem_sub(s->mem, s->charged);
		s->charged = 0;
		spool_reset(s->sp);
	}
}

int
login_memory_full(const struct session *s)
{
	return s->mem != NULL && loginmem_held(s->mem) >= s->srv->cfg->limits.login_memory;
}

void
reply_login_memory(struct session *s, const char *stage)
{
	count_refused("4.3.1");
	refuse(s, stage, "login-memory", 452, "4.3.1", "Too much message data of %s in "
	    "transit at once (limit %llu octets); try again when your other messages are sent",
	    s->login, (unsigned long long)s->srv->cfg->limits.login_memory);
}

void
txn_reset(struct session *s)
{
	signer_cancel(&s->sreq);
	recorder_cancel(&s->arq);
	auditrec_txn_free(&s->atx);
	if (s->final_reply != NULL) {
		evbuffer_free(s->final_reply);
		s->final_reply = NULL;
	}
	s->gen_msgid[0] = '\0';
	relay_txn_free(&s->relay);
	msg_parser_free(&s->mp);
	if (s->mem != NULL)
		loginmem_sub(s->mem, s->charged);
	s->charged = 0;
	s->mem_over = 0;
	spool_free(&s->sp);
	free(s->mail_from);
	s->mail_from = NULL;
	free(s->prefix);
	s->prefix = NULL;
	s->in_txn = 0;
	s->smtputf8 = 0;
	s->body_8bit = 0;
	s->rcpts_ok = 0;
	s->bdat_used = s->data_used = 0;
	s->bdat_remaining = 0;
	s->bdat_last = 0;
	s->bdat_failed = 0;
	s->first_rcpt[0] = '\0';
	free(s->mail_params);
	s->mail_params = NULL;
	/* its descriptors are closed: the slot may go to the next in line */
	if (s->txn_wait != NULL) {
		slots_cancel(&s->txn_wait);
		metrics_gauge_add(MG_TXN_WAITING, -1);
	}
	if (s->txn_slot) {
		s->txn_slot = 0;
		slots_put(s->srv->txn_slots);
		metrics_gauge_add(MG_TXN_ACTIVE, -1);
	}
}

/* Free a closed session once no frame uses it and its descriptor is
 * closed: until then it counts against the connection limits. */
static void
session_reap(struct session *s)
{
	struct server *srv = s->srv;

	if (s->busy > 0 || s->state != S_CLOSED || s->conn != NULL || s->linger != NULL)
		return;
	txn_reset(s);
	keeper_cancel(&s->authreq);
	loginmem_put(&s->mem);
	if (s->ev_delay)
		event_free(s->ev_delay);
	if (s->ev_limit)
		event_free(s->ev_limit);
	free(s->login);
	if (s->auth_user) {
		sodium_memzero(s->auth_user, strlen(s->auth_user));
		free(s->auth_user);
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	srv->nsessions--;
	connlimit_del(s->climit);
	metrics_gauge_add(MG_SESSIONS_OPEN, -1);
	free(s);
	if ((srv->shutting_down || srv->draining) && srv->nsessions == 0)
		event_base_loopexit(srv->base, NULL);
}

/* Nothing the session waits for may call back after this. */
static void
session_end(struct session *s)
{
	session_set_state(s, S_CLOSED);
	txn_abandon(s);
	txn_reset(s);
	relay_ctx_session_end(s->srv->relay, s->id);
	keeper_cancel(&s->authreq);
	if (s->ev_delay)
		event_del(s->ev_delay);
	if (s->ev_limit)
		event_del(s->ev_limit);
}

/* The descriptor of a closed session is closed now (from the loop). */
static void
session_closed(void *arg)
{
	struct session *s = arg;

	s->linger = NULL;
	session_reap(s);
}

/* Close after the queued replies are written (during a TLS handshake: at
 * once, nothing can be written).  The close is logged once the session has
 * ended: from that line on it is no session of its login (another worker
 * may admit the login's next one), though its descriptor may still linger
 * with replies unwritten. */
void
session_close(struct session *s)
{
	if (s->state == S_CLOSED)
		return;
	session_end(s);
	log_info("session=%s event=close peer=%s login=%s transactions=%u", s->id, s->peer,
	    s->login ? s->login : "-", s->txn_count);
	s->linger = s->conn;
	conn_close_after_flush(&s->conn, session_closed, s);
	session_reap(s);
}

/* Close at once, nothing more written (the client is gone, or the
 * server stops).  Like session_close(), the drop is logged once the
 * session has ended. */
void
session_drop(struct session *s, const char *why)
{
	if (s->state != S_CLOSED) {
		session_end(s);
		log_info("session=%s event=drop peer=%s reason=\"%s\"", s->id, s->peer, why);
		conn_free(&s->conn);
	}
	session_reap(s);
}

void
send_greeting(struct session *s)
{
	reply(s, 220, NULL, "%s ESMTP subproxy", s->srv->cfg->hostname);
	session_set_state(s, S_CMD);
	session_flush(s);
}

/* ---- EHLO ---- */

static void
send_ehlo(struct session *s)
{
	struct evbuffer *out = conn_output(s->conn);
	const struct config *cfg = s->srv->cfg;
	const struct relay_caps *rc = relay_ctx_caps(s->srv->relay);

	evbuffer_add_printf(out, "250-%s Hello %s\r\n", cfg->hostname, s->helo);
	if (!s->tls) {
		evbuffer_add_printf(out, "250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n");
		return;
	}
	evbuffer_add_printf(out, "250-PIPELINING\r\n250-SIZE %llu\r\n250-8BITMIME\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-SMTPUTF8\r\n",
	    (unsigned long long)cfg->limits.message_size);
	if (rc->known && rc->dsn)
		evbuffer_add_printf(out, "250-DSN\r\n");
	evbuffer_add_printf(out, "250 AUTH PLAIN LOGIN\r\n");
}

/* ---- command dispatch ---- */

static int
allowed_before_tls(enum smtp_verb v)
{
	return v == SMTP_V_EHLO || v == SMTP_V_HELO || v == SMTP_V_STARTTLS ||
	    v == SMTP_V_NOOP || v == SMTP_V_RSET || v == SMTP_V_QUIT;
}

static void
cmd_starttls(struct session *s)
{
	if (s->tls) {
		reply(s, 503, "5.5.1", "TLS already active");
		return;
	}
	reply(s, 220, "2.0.0", "Ready to start TLS");
	session_flush(s);
	/* CVE-2011-0411: conn_start_tls() discards any pipelined plaintext */
	s->greeted = 0;
	s->esmtp = 0;
	session_set_state(s, S_TLS_HANDSHAKE);
	conn_start_tls(s->conn, tls_server_session(s->srv->tls));
}

static void
handle_command(struct session *s, char *line, size_t len)
{
	struct smtp_cmd c;
	struct smtp_err e;
	struct smtp_parse_opts o;

	memset(&o, 0, sizeof(o));
	o.dsn_enabled = relay_ctx_caps(s->srv->relay)->dsn && s->tls;
	o.smtputf8_txn = s->smtputf8;
	if (smtp_cmd_parse(line, len, &o, &c, &e) < 0) {
		/* the verb may be known even if its arguments are bad */
		if (!s->tls && s->lst->cl->tls == TLS_MODE_STARTTLS && c.verb != SMTP_V_UNKNOWN &&
		    !allowed_before_tls(c.verb))
			reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
		else
			reply_err(s, &e);
		return;
	}
	if (!s->tls && !allowed_before_tls(c.verb)) {
		reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
		return;
	}
	switch (c.verb) {
	case SMTP_V_EHLO:
	case SMTP_V_HELO:
		txn_reset(s);
		snprintf(s->helo, sizeof(s->helo), "%s", c.domain);
		s->greeted = 1;
		s->esmtp = c.verb == SMTP_V_EHLO;
		if (s->esmtp)
			send_ehlo(s);
		else
			reply(s, 250, NULL, "%s", s->srv->cfg->hostname);
		return;
	case SMTP_V_STARTTLS:
		if (s->lst->cl->tls != TLS_MODE_STARTTLS && !s->tls) {
			reply(s, 502, "5.5.1", "STARTTLS not available");
			return;
		}
		cmd_starttls(s);
		return;
	case SMTP_V_AUTH:
		cmd_auth(s, &c);
		return;
	case SMTP_V_MAIL:
		if (!s->greeted) {
			reply(s, 503, "5.5.1", "Send EHLO first");
			return;
		}
		cmd_mail(s, &c);
		return;
	case SMTP_V_RCPT:
		cmd_rcpt(s, &c);
		return;
	case SMTP_V_DATA:
		cmd_data(s);
		return;
	case SMTP_V_BDAT:
		cmd_bdat(s, &c);
		return;
	case SMTP_V_RSET:
		txn_reset(s);
		reply(s, 250, "2.0.0", "OK");
		return;
	case SMTP_V_NOOP:
		reply(s, 250, "2.0.0", "OK");
		return;
	case SMTP_V_QUIT:
		reply(s, 221, "2.0.0", "Bye");
		s->close_after_reply = 1;
		return;
	case SMTP_V_VRFY:
		reply(s, 252, "2.5.0", "Cannot VRFY user, but will accept message for delivery");
		return;
	case SMTP_V_EXPN:
		reply(s, 502, "5.5.1", "EXPN not available");
		return;
	case SMTP_V_HELP:
		reply(s, 214, "2.0.0", "subproxy: see RFC 6409");
		return;
	default:
		reply(s, 500, "5.5.2", "Command not recognized");
		return;
	}
}

/* Take one line from the input.  Returns 1 with *line_r (NUL-terminated,
 * CRLF stripped, caller frees), 0 need more, -1 a reply was queued (bad or
 * overlong line, consumed). */
static int
next_line(struct session *s, char **line_r, size_t *len_r)
{
	struct evbuffer *in = conn_input(s->conn);
	size_t avail = evbuffer_get_length(in), max, eol_len = 0;
	struct evbuffer_ptr p;
	char *line;
	size_t len;

	max = (s->state == S_CMD) ? SMTP_CMD_MAX : AUTH_LINE_MAX;
	if (s->state == S_CMD && avail >= 5) {
		char verb[5];
		evbuffer_copyout(in, verb, 5);
		if (ascii_ncasecmp(verb, "AUTH ", 5) == 0)
			max = AUTH_LINE_MAX;
	}
	p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (p.pos < 0) {
		if (avail > max) {
			/* no end in sight: answer once, then skip to the next LF */
			if (!s->discard_line)
				reply(s, 500, "5.5.2", "Command line too long");
			s->discard_line = 1;
			evbuffer_drain(in, avail);
			return -1;
		}
		return 0;
	}
	len = (size_t)p.pos;
	line = xmalloc(len + 2);
	evbuffer_remove(in, line, len + 1);
	line[len + 1] = '\0';
	if (s->discard_line) {
		s->discard_line = 0;
		free(line);
		return -1;
	}
	if (len + 1 > max) {
		free(line);
		reply(s, 500, "5.5.2", "Command line too long");
		return -1;
	}
	if (len == 0 || line[len - 1] != '\r') {
		free(line);
		reply(s, 500, "5.5.2", "Command line contains a bare CR, LF or NUL");
		return -1;
	}
	len--;
	line[len] = '\0';
	*line_r = line;
	*len_r = len;
	return 1;
}

/* Feed buffered input to the message parser (DATA or BDAT). */
static int
feed_message(struct session *s)
{
	struct evbuffer *in = conn_input(s->conn);

	while (evbuffer_get_length(in) > 0) {
		size_t len = evbuffer_get_contiguous_space(in), used;
		const unsigned char *buf = evbuffer_pullup(in, (ssize_t)len);

		if (s->state == S_BDAT) {
			if (len > s->bdat_remaining)
				len = (size_t)s->bdat_remaining;
			if (s->mp != NULL && s->bdat_failed == 0) {
				msg_parser_feed(s->mp, buf, len);
				session_charge(s);
			}
			evbuffer_drain(in, len);
			s->bdat_remaining -= len;
			if (s->bdat_remaining == 0) {
				bdat_chunk_done(s);
				return 1;
			}
			continue;
		}
		used = msg_parser_feed(s->mp, buf, len);
		session_charge(s);
		evbuffer_drain(in, used);
		if (msg_parser_done(s->mp)) {
			session_set_state(s, S_CMD);
			message_complete(s);
			return 1;
		}
	}
	if (s->state == S_BDAT && s->bdat_remaining == 0) {
		bdat_chunk_done(s);
		return 1;
	}
	return 0;
}

/* More unread replies than OUT_HIGH: take no more commands (and read no
 * more) until the client has read down to OUT_LOW (CONN_EV_FLUSHED). */
static int
session_output_full(struct session *s)
{
	if (evbuffer_get_length(conn_output(s->conn)) <= OUT_HIGH)
		return 0;
	if (!s->out_blocked) {
		s->out_blocked = 1;
		conn_want_drained(s->conn, OUT_LOW);
	}
	return 1;
}

/* Work through buffered input one step at a time, then flush the replies of
 * the pipelined group in one write. */
void
session_process(struct session *s)
{
	for (;;) {
		char *line = NULL;
		size_t len = 0;
		int r;

		if (s->conn == NULL)
			return;
		if (s->close_after_reply) {
			session_close(s);
			return;
		}
		if (s->srv->shutting_down && s->state == S_CMD && !session_in_flight(s)) {
			/* the transaction that kept it open is over */
			shutdown_close(s);
			return;
		}
		if (s->state == S_WAIT || s->state == S_TLS_HANDSHAKE || s->state == S_CLOSED ||
		    session_output_full(s))
			break;
		if (s->limit_passed && s->state == S_CMD && !session_in_flight(s)) {
			log_info("session=%s event=session-timeout peer=%s", s->id, s->peer);
			reply(s, 421, "4.4.2", "%s Session time limit reached, closing connection",
			    s->srv->cfg->hostname);
			session_close(s);
			return;
		}
		if (s->state == S_DATA || s->state == S_BDAT) {
			if (feed_message(s) == 0)
				break;
			continue;
		}
		r = next_line(s, &line, &len);
		if (r == 0)
			break;
		if (r < 0) {
			/* a bad line answered with 500 ends an AUTH exchange too:
			 * the next line is a command, not a user name or password */
			session_set_state(s, S_CMD);
			continue;
		}
		if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) != NULL ||
		    memchr(line, '\n', len) != NULL) {
			reply(s, 500, "5.5.2", "Command line contains a bare CR, LF or NUL");
			session_set_state(s, S_CMD);
		} else if (s->state == S_AUTH_PLAIN) {
			auth_plain_response(s, line, len);
		} else if (s->state == S_AUTH_USER || s->state == S_AUTH_PASS) {
			auth_login_step(s, line, len);
		} else {
			handle_command(s, line, len);
		}
		sodium_memzero(line, len);
		free(line);
	}
	if (s->conn == NULL)
		return;
	if (s->state == S_WAIT || s->out_blocked)
		conn_pause(s->conn);
	else
		conn_resume(s->conn);
	session_flush(s);
}

/* ---- connection events ---- */

/* The client shut down its side while reading was paused (conn.h:
 * CONN_EV_HANGUP; closed or half-closed, which cannot be told apart without
 * writing).  Waiting for its password check -- in the keeper's queue or
 * on a worker -- the session ends now, as at EOF: session_end() cancels
 * the check, which the keeper then drops before it costs an Argon2id run
 * (one already running runs to its end), and the connection's place under
 * the limits is free at once.  So does a MAIL waiting in line for a
 * transaction to end ([limits] transactions): nothing was sent for it.  Any other wait goes on as before the FIN:
 * a mail transaction in flight (its message may be the relay's already:
 * its final reply is owed and written), the failed-AUTH delay (at most
 * 8 s, nothing runs), replies the client has not read yet; the FIN is
 * read (EOF) when reading resumes. */
static void
session_hangup(struct session *s)
{
	if (s->authreq != NULL) {
		session_drop(s, "client closed connection while its password check waited");
		return;
	}
	if (s->txn_wait != NULL) {
		/* nothing went to the relay yet: its place in line goes */
		session_drop(s, "client closed connection while its MAIL waited for a transaction "
		    "to end");
		return;
	}
	log_info("session=%s event=client-hangup peer=%s state=%s in-transaction=%d: reading "
	    "again after the wait", s->id, s->peer, sess_state_names[s->state],
	    session_in_flight(s));
}

static void
session_conn_event(struct session *s, struct conn *c, enum conn_event ev)
{
	char tls[96];

	switch (ev) {
	case CONN_EV_TLS_OK:
		s->tls = 1;
		tls_describe(conn_tls(c), tls, sizeof(tls));
		log_info("session=%s event=tls peer=%s tls=\"%s\"", s->id, s->peer, tls);
		if (s->lst->cl->tls == TLS_MODE_IMPLICIT) {
			send_greeting(s);
		} else {
			session_set_state(s, S_CMD);
		}
		session_process(s);
		return;
	case CONN_EV_READ:
		session_process(s);
		return;
	case CONN_EV_FLUSHED:
		/* the client read its replies: take commands again */
		if (s->out_blocked) {
			s->out_blocked = 0;
			session_process(s);
		}
		return;
	case CONN_EV_CONNECTED:
		return;
	case CONN_EV_TIMEOUT:
		if (s->txn_wait != NULL) {
			mail_wait_expired(s);
			return;
		}
		if (s->state == S_WAIT) {
			/* the keeper, signer and relay leg have their own
			 * timeouts; keep watching the client afterwards */
			conn_set_timeout(c, (unsigned)s->srv->cfg->limits.timeout);
			return;
		}
		log_info("session=%s event=idle-timeout peer=%s state=%s", s->id, s->peer,
		    sess_state_names[s->state]);
		reply(s, 421, "4.4.2", "%s Idle timeout, closing connection",
		    s->srv->cfg->hostname);
		session_close(s);
		return;
	case CONN_EV_HANGUP:
		session_hangup(s);
		return;
	case CONN_EV_EOF:
		session_drop(s, "client closed connection");
		return;
	case CONN_EV_ERROR:
		session_drop(s, conn_error(c));
		return;
	}
}

void
session_conn_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct session *s = arg;

	session_hold(s);
	session_conn_event(s, c, ev);
	session_release(s);
}

/* Which limit comes next: session_deadline(). */
enum limit_kind {
	LIMIT_SESSION,          /* session-timeout, from the accept */
	LIMIT_AUTH,             /* auth-timeout, without the waits for the keeper */
	LIMIT_AUTH_WAIT         /* the AUTH check has waited [limits] timeout */
};

/* The session's next deadline (monotonic microseconds; whole seconds would
 * end a session up to a second early).  After AUTH: session-timeout from
 * the accept.  Before: auth-timeout from the accept, paused while an AUTH
 * the client completed waits for the keeper's answer (our slowness is not
 * the client's time: auth_waited_us, smtp_auth.c); while a check waits,
 * its own bound instead, [limits] timeout from the moment it went to the
 * keeper (auth_wait_expired); session-timeout bounds all of it. */
static uint64_t
session_deadline(const struct session *s, enum limit_kind *kind)
{
	const struct config_limits *l = &s->srv->cfg->limits;
	uint64_t end = s->started_us + l->session_timeout * 1000000, d;

	*kind = LIMIT_SESSION;
	if (s->login != NULL)
		return end;
	if (s->authreq != NULL) {
		d = s->auth_sent_us + l->timeout * 1000000;
		if (d < end)
			*kind = LIMIT_AUTH_WAIT;
	} else {
		d = s->started_us + l->auth_timeout * 1000000 + s->auth_waited_us;
		if (d <= end)
			*kind = LIMIT_AUTH;
	}
	return *kind == LIMIT_SESSION ? end : d;
}

/* Microseconds left until the next limit; 0 when passed. */
static uint64_t
session_limit_left(const struct session *s)
{
	enum limit_kind kind;
	uint64_t d = session_deadline(s, &kind), now = mono_us();

	return now < d ? d - now : 0;
}

void
session_arm_limit(struct session *s)
{
	uint64_t left = session_limit_left(s);
	struct timeval tv;

	tv.tv_sec = (time_t)(left / 1000000);
	tv.tv_usec = (suseconds_t)(left % 1000000);
	evtimer_add(s->ev_limit, &tv);
}

/* Before AUTH the session ends at once; an AUTH check that waited too long
 * is answered 454 and the session goes on.  After AUTH an open transaction
 * may finish (then 421, see session_process), for one more idle timeout
 * at most -- unless the relay has the message: its answer is owed. */
static void
session_limit(struct session *s)
{
	const struct config_limits *l = &s->srv->cfg->limits;
	struct timeval tv = { (time_t)l->timeout, 0 };
	enum limit_kind kind;

	(void)session_deadline(s, &kind);
	if (kind == LIMIT_AUTH_WAIT) {
		auth_wait_expired(s);
		return;
	}
	if (kind == LIMIT_AUTH) {
		log_info("session=%s event=auth-timeout peer=%s", s->id, s->peer);
		reply(s, 421, "4.4.2", "%s No authentication within %llu seconds, closing "
		    "connection", s->srv->cfg->hostname, (unsigned long long)l->auth_timeout);
		session_close(s);
		return;
	}
	if (!s->limit_passed && session_in_flight(s)) {
		s->limit_passed = 1;
		evtimer_add(s->ev_limit, &tv);
		return;
	}
	if (s->state == S_WAIT && s->prefix != NULL) {
		evtimer_add(s->ev_limit, &tv);
		return;
	}
	log_info("session=%s event=session-timeout peer=%s in-transaction=%d", s->id, s->peer,
	    session_in_flight(s));
	reply(s, 421, "4.4.2", "%s Session time limit reached, closing connection",
	    s->srv->cfg->hostname);
	session_close(s);
}

void
session_limit_expired(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	session_hold(s);
	/* libevent's timers run on a coarse clock and may fire a few
	 * milliseconds before the deadline: the limit is never early. */
	if (!s->limit_passed && session_limit_left(s) > 0)
		session_arm_limit(s);
	else
		session_limit(s);
	session_release(s);
}
