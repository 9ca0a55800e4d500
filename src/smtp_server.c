/* smtp_server.c — listeners, client sessions and the submission state machine. */
#include "smtp_server.h"
#include "auditrec.h"
#include "cidr.h"
#include "clock.h"
#include "limiter.h"
#include "config.h"
#include "conn.h"
#include "dns.h"
#include "keeper_client.h"
#include "log.h"
#include "loginmem.h"
#include "metrics.h"
#include "message.h"
#include "owntlsa.h"
#include "dkim.h"
#include "proxyin.h"
#include "relay.h"
#include "signer_client.h"
#include "smtp_syntax.h"
#include "spool.h"
#include "tls.h"
#include "util.h"
#include "xclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#define AUTH_LINE_MAX    12288   /* RFC 4954 4: AUTH lines may be long */
#define OUT_HIGH         (64 * 1024)  /* replies unread by the client: stop taking commands */
#define OUT_LOW          (16 * 1024)  /* ... until the client has read down to this */
#define ACCEPT_BACKOFF_MS 250    /* no accepting for this long after EMFILE and the like */
#define ACCEPT_LOG_EVERY 10      /* seconds between log lines about it */

enum sess_state {
	S_TLS_HANDSHAKE,  /* implicit TLS or after STARTTLS */
	S_CMD,            /* reading commands */
	S_AUTH_PLAIN,     /* waiting for the PLAIN response line */
	S_AUTH_USER,      /* LOGIN: waiting for the user name */
	S_AUTH_PASS,      /* LOGIN: waiting for the password */
	S_WAIT,           /* async step pending (auth check, relay) */
	S_DATA,           /* reading DATA */
	S_BDAT,           /* reading a BDAT chunk */
	S_CLOSED
};

static const char *const sess_state_names[] = {
	"tls-handshake", "command", "auth-plain", "auth-user", "auth-pass", "wait", "data",
	"bdat", "closed"
};

struct listener {
	struct server *srv;
	const struct config_listen *cl;
	struct evconnlistener *evl;
};

struct session;

struct server {
	struct event_base *base;
	const struct config *cfg;
	struct tls_server *tls;
	struct relay_ctx *relay;
	struct dns_ctx *dns;
	struct keeper_client *keeper;
	struct signer_client *signer;
	struct auditrec *audit;        /* the audit log (a no-op without one) */
	int failed;                    /* a fatal fault: exit non-zero */
	struct listener *listeners;
	size_t nlisteners;
	struct session *sessions;      /* doubly linked; closing ones until their fd is closed */
	unsigned nsessions;
	int shutting_down;
	struct event *ev_grace;
	struct event *ev_accept;       /* accepting again after a pause */
	int accept_logged;             /* a pause was logged ... */
	time_t accept_log_time;        /* ... at this (monotonic) second */
	unsigned accept_pauses;        /* pauses since that line */
	struct loginmem_table *logins; /* [limits] login-memory accounting */
	struct proxyin_pool *proxyin;  /* connections waiting for their PROXY header */
	struct limiter *limiter;       /* rate limits (limiter.h) */
	struct event *ev_testclock;    /* test builds only (clock.h) */
};

struct session {
	struct server *srv;
	struct session *prev, *next;
	struct listener *lst;
	struct conn *conn;
	char id[17];
	char peer[64];                 /* the client's address: session_client() */
	char peer_key[64];             /* what per-address limits count (conn_addr_key) */
	int peer_port;
	char local[64];                /* the address and port it connected to */
	int local_port;
	char via[64];                  /* the load balancer's address ("" = direct) */
	enum sess_state state;
	unsigned busy;                 /* our frames using the session (session_hold) */
	struct conn *linger;           /* closed: its last replies are still being written */
	int out_blocked;               /* not taking commands until the client reads */
	unsigned proto_errors;
	struct event *ev_limit;        /* auth-timeout, then session-timeout */
	int limit_passed;              /* session-timeout passed: end after this transaction */
	uint64_t started_ms;           /* monotonic milliseconds at the accept */
	int tls;                       /* TLS active */
	int greeted;                   /* HELO/EHLO seen (since TLS) */
	int esmtp;
	char helo[256];
	char *login;
	char *auth_user;               /* LOGIN mechanism, between steps */
	const char *auth_mech;         /* "PLAIN" or "LOGIN", for the audit record */
	unsigned auth_failures;
	struct keeper_req *authreq;
	struct event *ev_delay;        /* failure delay before the 535 */
	int discard_line;              /* resync after an overlong line */
	int close_after_reply;
	unsigned txn_count;

	/* transaction */
	int in_txn;
	char *mail_from;
	int smtputf8;
	int body_8bit;
	size_t rcpts_ok;
	struct relay_txn *relay;
	struct signer_req *sreq;
	struct spool *sp;
	struct msg_parser *mp;
	int bdat_used, data_used;
	uint64_t bdat_remaining;
	int bdat_last;
	int bdat_failed;
	char *prefix;
	char first_rcpt[320];
	struct loginmem *mem;          /* the login's message octets (after AUTH) */
	uint64_t charged;              /* this session's part of them */
	int mem_over;                  /* this message went over login-memory */
	char gen_msgid[160];           /* the Message-ID we added, "" none */
	struct auditrec_txn *atx;      /* the transaction's audit facts */
	struct recorder_req *arq;      /* waiting for its record to be written */
	struct evbuffer *final_reply;  /* the relay's final reply, owed after that */
};

static void session_process(struct session *);
static void session_close(struct session *);
static int session_in_flight(const struct session *);
static void shutdown_close(struct session *);
static void session_conn_cb(struct conn *, enum conn_event, void *);
static void session_reap(struct session *);

static time_t
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Every frame entered from the event loop (connection events, results of
 * the keeper, signer and relay, timers) holds its session.  Closing it
 * inside such a frame only marks it closed; the outermost frame frees it
 * when it lets go, so no frame ever sees freed memory. */
static void
session_hold(struct session *s)
{
	s->busy++;
}

static void
session_release(struct session *s)
{
	if (--s->busy == 0)
		session_reap(s);
}

/* ---- replies ---- */

static void
reply(struct session *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

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

static void
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
static void
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
static void
count_refused(const char *enh)
{
	metrics_count(MF_REFUSED, metrics_label(MF_REFUSED, enh));
}

static void
reply_relay(struct session *s, const struct relay_result *r)
{
	reply_relay_to(conn_output(s->conn), r);
}

/* A command refused by policy: the reply, and the audit record of it
 * naming `login` (before AUTH succeeded: the name tried, or NULL).
 * reason: a stable token for reports; flood: one a client can repeat at
 * will before AUTH (auditrec.h: counted per address key). */
static void
refuse_as(struct session *s, const char *login, const char *stage, const char *reason, int code,
    const char *enh, const char *text, int flood)
{
	reply(s, code, enh, "%s", text);
	auditrec_refusal(s->srv->audit, s->id, s->peer, login, stage, code, enh, reason, text,
	    flood ? s->peer_key : NULL);
}

/* refuse_as() for the session's login, the sentence formatted. */
static void refuse(struct session *s, const char *stage, const char *reason, int code,
    const char *enh, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void
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
static void
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
static const char *
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
static int
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

/* Open sessions of one login (sessions-per-login).  Closed ones stay in the
 * list until their descriptor is closed, but can do nothing more for the
 * login: they do not count (unlike for the connection limits). */
static unsigned
count_login(const struct server *srv, const char *login)
{
	const struct session *s;
	unsigned n = 0;

	for (s = srv->sessions; s != NULL; s = s->next)
		if (s->state != S_CLOSED && s->login != NULL && strcmp(s->login, login) == 0)
			n++;
	return n;
}

/* ---- session lifecycle ---- */

static void
session_set_state(struct session *s, enum sess_state st)
{
	if (s->state != st)
		log_debug("session=%s state %s -> %s", s->id, sess_state_names[s->state],
		    sess_state_names[st]);
	s->state = st;
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

static int
login_memory_full(const struct session *s)
{
	return s->mem != NULL && loginmem_held(s->mem) >= s->srv->cfg->limits.login_memory;
}

static void
reply_login_memory(struct session *s, const char *stage)
{
	count_refused("4.3.1");
	refuse(s, stage, "login-memory", 452, "4.3.1", "Too much message data of %s in "
	    "transit at once (limit %llu octets); try again when your other messages are sent",
	    s->login, (unsigned long long)s->srv->cfg->limits.login_memory);
}

static void
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
	metrics_gauge_add(MG_SESSIONS_OPEN, -1);
	free(s);
	if (srv->shutting_down && srv->nsessions == 0)
		event_base_loopexit(srv->base, NULL);
}

/* Nothing the session waits for may call back after this. */
static void
session_end(struct session *s)
{
	session_set_state(s, S_CLOSED);
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
 * once, nothing can be written). */
static void
session_close(struct session *s)
{
	if (s->state == S_CLOSED)
		return;
	log_info("session=%s event=close peer=%s login=%s transactions=%u", s->id, s->peer,
	    s->login ? s->login : "-", s->txn_count);
	session_end(s);
	s->linger = s->conn;
	conn_close_after_flush(&s->conn, session_closed, s);
	session_reap(s);
}

static void
session_drop(struct session *s, const char *why)
{
	if (s->state != S_CLOSED) {
		log_info("session=%s event=drop peer=%s reason=\"%s\"", s->id, s->peer, why);
		session_end(s);
		conn_free(&s->conn);
	}
	session_reap(s);
}

static void
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

/* ---- AUTH ---- */

static void auth_start_check(struct session *, const char *user, const char *pw, size_t pwlen);

static void session_arm_limit(struct session *);

static void
auth_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	session_hold(s);
	if (s->auth_failures >= s->srv->cfg->limits.auth_failures) {
		log_warn("session=%s event=auth-limit peer=%s failures=%u", s->id, s->peer,
		    s->auth_failures);
		reply(s, 421, "4.7.0", "Too many authentication failures, closing connection");
		session_close(s);
	} else {
		reply(s, 535, "5.7.8", "Authentication credentials invalid");
		session_set_state(s, S_CMD);
		session_process(s);
	}
	session_release(s);
}

static void
auth_result(struct session *s, int result)
{
	struct timeval tv;
	unsigned ms;

	s->authreq = NULL;
	metrics_count(MF_AUTH, result == KEEPER_AUTH_OK ? MA_OK : result == KEEPER_AUTH_LOCKED ?
	    MA_LOCKED : result == KEEPER_AUTH_BUSY ? MA_BUSY : result == KEEPER_DEAD ? MA_ERROR :
	    MA_FAIL);
	if (result == KEEPER_AUTH_LOCKED || result == KEEPER_AUTH_BUSY || result == KEEPER_DEAD) {
		char esc[128];

		log_warn("session=%s event=auth peer=%s login=%s result=%s", s->id, s->peer,
		    log_escape(esc, sizeof(esc), s->auth_user, strlen(s->auth_user)),
		    keeper_auth_result_name(result));
		/* no password was checked: a client may repeat these at will */
		auditrec_auth(s->srv->audit, s->id, s->peer, s->auth_user, s->auth_mech,
		    keeper_auth_result_name(result), result == KEEPER_AUTH_LOCKED, 0, 454, "4.7.0",
		    s->peer_key);
		free(s->auth_user);
		s->auth_user = NULL;
		if (result == KEEPER_AUTH_LOCKED)
			reply(s, 454, "4.7.0", "Too many failed logins for this account or address, "
			    "try again later");
		else
			reply(s, 454, "4.7.0", "Authentication temporarily unavailable, try again "
			    "later");
		session_set_state(s, S_CMD);
		session_process(s);
		return;
	}
	if (result == KEEPER_AUTH_OK) {
		uint64_t maxs = config_login_rates(s->srv->cfg, s->auth_user)->sessions_per_login;
		char text[160];

		log_info("session=%s event=auth peer=%s login=%s result=ok", s->id, s->peer,
		    s->auth_user);
		if (maxs > 0 && count_login(s->srv, s->auth_user) >= maxs) {
			/* Postfix/Dovecot style: a concurrency limit closes the
			 * connection with 421; the client retries later */
			log_warn("session=%s event=rate-limit limit=sessions-per-login login=%s "
			    "peer=%s sessions=%u", s->id, s->auth_user, s->peer,
			    count_login(s->srv, s->auth_user));
			metrics_count(MF_RATELIMIT_REFUSED, MRL_SESSIONS);
			snprintf(text, sizeof(text), "Too many concurrent sessions for this login "
			    "(sessions-per-login %llu), closing connection", (unsigned long long)maxs);
			refuse_as(s, s->auth_user, "session", "sessions-per-login", 421, "4.7.0", text,
			    0);
			free(s->auth_user);
			s->auth_user = NULL;
			session_close(s);
			return;
		}
		auditrec_auth(s->srv->audit, s->id, s->peer, s->auth_user, s->auth_mech, "ok", 0, 0,
		    235, "2.7.0", NULL);
		s->login = s->auth_user;
		s->auth_user = NULL;
		s->mem = loginmem_get(s->srv->logins, s->login);
		session_arm_limit(s);
		reply(s, 235, "2.7.0", "Authentication successful");
		session_set_state(s, S_CMD);
		session_process(s);
		return;
	}
	{
		char esc[128];
		log_warn("session=%s event=auth peer=%s login=%s result=fail", s->id, s->peer,
		    log_escape(esc, sizeof(esc), s->auth_user, strlen(s->auth_user)));
	}
	s->auth_failures++;
	{
		int closed = s->auth_failures >= s->srv->cfg->limits.auth_failures;

		auditrec_auth(s->srv->audit, s->id, s->peer, s->auth_user, s->auth_mech,
		    keeper_auth_result_name(result), 0, closed, closed ? 421 : 535,
		    closed ? "4.7.0" : "5.7.8", NULL);
	}
	free(s->auth_user);
	s->auth_user = NULL;
	/* rising delay: 0.5 s, 1 s, 2 s, ... capped at 8 s */
	ms = 500u << (s->auth_failures > 5 ? 4 : s->auth_failures - 1);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (s->ev_delay == NULL)
		s->ev_delay = evtimer_new(s->srv->base, auth_delay_done, s);
	evtimer_add(s->ev_delay, &tv);
}

static void
auth_done(void *arg, int result)
{
	struct session *s = arg;

	session_hold(s);
	auth_result(s, result);
	session_release(s);
}

static void
auth_start_check(struct session *s, const char *user, const char *pw, size_t pwlen)
{
	if (!rate_take(s, RATELIMIT_AUTH, user)) {
		session_set_state(s, S_CMD);
		return;
	}
	free(s->auth_user);
	s->auth_user = xstrdup(user);
	session_set_state(s, S_WAIT);
	/* the keeper counts failures per address: per IPv6 prefix, as our limits */
	s->authreq = keeper_auth(s->srv->keeper, user, pw, pwlen, s->peer_key, auth_done, s);
}

/* Decode a base64 AUTH response line; "*" cancels.  Returns decoded length,
 * -1 after replying. */
static ssize_t
auth_decode(struct session *s, const char *line, size_t len, char *out, size_t outlen)
{
	size_t n = 0;

	if (len == 1 && line[0] == '*') {
		reply(s, 501, "5.0.0", "Authentication cancelled");
		return -1;
	}
	if (smtp_base64_decode(line, len, out, outlen - 1, &n) < 0) {
		reply(s, 501, "5.5.2", "Invalid base64 data");
		return -1;
	}
	out[n] = '\0';
	return (ssize_t)n;
}

static void
auth_plain_response(struct session *s, const char *line, size_t len)
{
	char buf[1024];
	const char *user = NULL, *pw = NULL;
	size_t pwlen = 0;
	ssize_t n;

	session_set_state(s, S_CMD);
	if ((n = auth_decode(s, line, len, buf, sizeof(buf))) < 0)
		return;
	if (smtp_auth_plain_decode(buf, (size_t)n, &user, &pw, &pwlen) < 0) {
		sodium_memzero(buf, sizeof(buf));
		reply(s, 501, "5.5.2", "Malformed PLAIN response");
		return;
	}
	auth_start_check(s, user, pw, pwlen);
	sodium_memzero(buf, sizeof(buf));
}

static void
auth_login_step(struct session *s, const char *line, size_t len)
{
	char buf[1024];
	ssize_t n;

	if ((n = auth_decode(s, line, len, buf, sizeof(buf))) < 0) {
		session_set_state(s, S_CMD);
		return;
	}
	if (s->state == S_AUTH_USER) {
		if (n == 0 || memchr(buf, '\0', (size_t)n) != NULL) {
			session_set_state(s, S_CMD);
			reply(s, 501, "5.5.2", "Invalid user name");
			return;
		}
		free(s->auth_user);
		s->auth_user = xstrdup(buf);
		session_set_state(s, S_AUTH_PASS);
		reply(s, 334, NULL, "UGFzc3dvcmQ6");
		return;
	}
	{
		char *user = s->auth_user;
		s->auth_user = NULL;
		auth_start_check(s, user, buf, (size_t)n);
		free(user);
	}
	sodium_memzero(buf, sizeof(buf));
}

static void
cmd_auth(struct session *s, const struct smtp_cmd *c)
{
	if (s->login != NULL) {
		reply(s, 503, "5.5.1", "Already authenticated");
		return;
	}
	if (!s->greeted) {
		reply(s, 503, "5.5.1", "Send EHLO first");
		return;
	}
	if (s->in_txn) {
		reply(s, 503, "5.5.1", "AUTH not permitted during a mail transaction");
		return;
	}
	if (ascii_casecmp(c->auth_mech, "PLAIN") == 0) {
		s->auth_mech = "PLAIN";
		if (c->auth_initial != NULL) {
			auth_plain_response(s, c->auth_initial, strlen(c->auth_initial));
			return;
		}
		session_set_state(s, S_AUTH_PLAIN);
		reply(s, 334, NULL, "%s", "");  /* "334" SP, an empty challenge */
		return;
	}
	if (ascii_casecmp(c->auth_mech, "LOGIN") == 0) {
		s->auth_mech = "LOGIN";
		session_set_state(s, S_AUTH_USER);
		if (c->auth_initial != NULL) {
			auth_login_step(s, c->auth_initial, strlen(c->auth_initial));
			return;
		}
		reply(s, 334, NULL, "VXNlcm5hbWU6");
		return;
	}
	reply(s, 504, "5.5.4", "Unrecognized authentication mechanism");
}

/* ---- MAIL / RCPT ---- */

static void
mail_relay_done(void *arg, const struct relay_result *r)
{
	struct session *s = arg;

	session_hold(s);
	if (r->code >= 200 && r->code < 300) {
		char ver[32], cipher[96];

		s->in_txn = 1;
		reply(s, 250, "2.1.0", "Sender <%s> OK", s->mail_from);
		log_info("session=%s event=mail from=<%s> %s", s->id, s->mail_from,
		    relay_txn_describe(s->relay));
		tls_params(conn_tls(s->conn), ver, sizeof(ver), cipher, sizeof(cipher));
		s->atx = auditrec_txn_new(s->id, s->login, s->peer, ver, cipher, s->mail_from);
	} else {
		log_info("session=%s event=mail-refused from=<%s> code=%d enh=%s local=%d", s->id,
		    s->mail_from, r->code, r->enh, r->local);
		count_refused(r->enh);
		refuse_relay(s, "mail", r);
		txn_reset(s);
	}
	session_set_state(s, S_CMD);
	session_process(s);
	session_release(s);
}

static void
cmd_mail(struct session *s, const struct smtp_cmd *c)
{
	const struct config *cfg = s->srv->cfg;
	const struct relay_caps *caps = relay_ctx_caps(s->srv->relay);
	struct xclient_info ci;
	char params[256];
	size_t o = 0;

	if (s->login == NULL) {
		refuse(s, "mail", "auth-required", 530, "5.7.0", "Authentication required");
		return;
	}
	if (s->in_txn || s->relay != NULL) {
		reply(s, 503, "5.5.1", "Nested MAIL command");
		return;
	}
	if (c->path[0] == '\0' || !config_sender_allowed(cfg, s->login, c->path)) {
		count_refused("5.7.1");
		refuse(s, "mail", "sender-not-owned", 553, "5.7.1",
		    "Sender address <%s> not owned by user %s", c->path, s->login);
		return;
	}
	if (c->size > cfg->limits.message_size) {
		count_refused("5.3.4");
		refuse(s, "mail", "size-exceeded", 552, "5.3.4",
		    "Message size exceeds fixed maximum message size");
		return;
	}
	if (!auditrec_accepting(s->srv->audit)) {
		/* fail closed: no transaction without its record */
		count_refused("4.3.0");
		refuse(s, "mail", "audit-log-unavailable", 451, "4.3.0",
		    "Audit log unavailable, try again later");
		return;
	}
	if (!rate_take(s, RATELIMIT_MESSAGES, s->login))
		return;
	/* parameters for the relay, rebuilt from parsed values only */
	params[0] = '\0';
	if (c->size > 0)
		o += (size_t)snprintf(params + o, sizeof(params) - o, " SIZE=%llu",
		    (unsigned long long)c->size);
	if (c->body == SMTP_BODY_8BITMIME && caps->eightbit)
		o += (size_t)snprintf(params + o, sizeof(params) - o, " BODY=8BITMIME");
	if (c->smtputf8)
		o += (size_t)snprintf(params + o, sizeof(params) - o, " SMTPUTF8");
	if (c->ret == SMTP_RET_FULL)
		o += (size_t)snprintf(params + o, sizeof(params) - o, " RET=FULL");
	else if (c->ret == SMTP_RET_HDRS)
		o += (size_t)snprintf(params + o, sizeof(params) - o, " RET=HDRS");
	if (c->envid != NULL && o < sizeof(params))
		o += (size_t)snprintf(params + o, sizeof(params) - o, " ENVID=%s", c->envid);
	if (o >= sizeof(params)) {
		reply(s, 501, "5.5.4", "Parameters too long");
		return;
	}
	txn_reset(s);
	s->mail_from = xstrdup(c->path);
	s->smtputf8 = c->smtputf8;
	s->body_8bit = c->body == SMTP_BODY_8BITMIME;
	session_set_state(s, S_WAIT);
	memset(&ci, 0, sizeof(ci));
	ci.addr = session_client(s, &ci.port);
	ci.helo = s->helo;
	ci.esmtp = s->esmtp;
	ci.login = s->login;
	ci.destaddr = s->local[0] ? s->local : NULL;
	ci.destport = s->local_port;
	s->relay = relay_txn_start(s->srv->relay, s->id, s->mail_from, o ? params + 1 : "", &ci,
	    mail_relay_done, s);
}

static void
rcpt_relay_done(void *arg, const struct relay_result *r)
{
	struct session *s = arg;

	session_hold(s);
	if (s->atx != NULL)
		auditrec_txn_rcpt(s->atx, s->first_rcpt, r->code, r->enh, r->text);
	if (r->code >= 200 && r->code < 300) {
		s->rcpts_ok++;
		log_info("session=%s event=rcpt to=<%s> code=%d", s->id, s->first_rcpt, r->code);
		reply_relay(s, r);
	} else {
		log_info("session=%s event=rcpt-refused to=<%s> code=%d enh=%s local=%d", s->id,
		    s->first_rcpt, r->code, r->enh, r->local);
		refuse_relay(s, "rcpt", r);
	}
	if (r->local) {
		/* the relay leg is gone: the transaction cannot go on */
		txn_reset(s);
	}
	session_set_state(s, S_CMD);
	session_process(s);
	session_release(s);
}

static void
cmd_rcpt(struct session *s, const struct smtp_cmd *c)
{
	char params[256];
	size_t o = 0;

	if (!s->in_txn) {
		reply(s, 503, "5.5.1", "Need MAIL command");
		return;
	}
	if (s->bdat_used || s->data_used) {
		reply(s, 503, "5.5.1", "RCPT not allowed after message data");
		return;
	}
	if (s->rcpts_ok >= s->srv->cfg->limits.recipients) {
		refuse(s, "rcpt", "too-many-recipients", 452, "4.5.3", "Too many recipients");
		return;
	}
	if (!rate_take(s, RATELIMIT_RECIPIENTS, s->login))
		return;
	params[0] = '\0';
	if (c->notify[0] != '\0')
		o += (size_t)snprintf(params + o, sizeof(params) - o, " NOTIFY=%s", c->notify);
	if (c->orcpt != NULL && o < sizeof(params))
		o += (size_t)snprintf(params + o, sizeof(params) - o, " ORCPT=%s", c->orcpt);
	if (o >= sizeof(params)) {
		reply(s, 501, "5.5.4", "Parameters too long");
		return;
	}
	snprintf(s->first_rcpt, sizeof(s->first_rcpt), "%s", c->path);
	session_set_state(s, S_WAIT);
	relay_txn_rcpt(s->relay, c->path, o ? params + 1 : "", rcpt_relay_done, s);
}

/* ---- message data ---- */

/* The token of a message refusal in audit records. */
static const char *
message_reason(const struct msg_result *mr)
{
	if (strcmp(mr->enh, "5.3.4") == 0)
		return "message-too-large";
	if (strcmp(mr->enh, "5.4.6") == 0)
		return "mail-loop";
	if (mr->code == 451)
		return "spool-failed";
	return "message-syntax";
}

static void
start_message(struct session *s, enum msg_mode mode)
{
	const struct config_limits *l = &s->srv->cfg->limits;
	struct msg_limits ml;

	memset(&ml, 0, sizeof(ml));
	ml.max_size = l->message_size;
	ml.max_line = l->line_length;
	ml.max_header = l->header_size;
	ml.max_received = l->received_max;
	s->sp = spool_new((size_t)l->memory_body);
	s->mp = msg_parser_new(&ml, mode, s->sp);
}

static void
fold_append(char **buf, size_t *len, size_t *col, const char *word)
{
	size_t wl = strlen(word);
	char *p;

	if (*col > 1 && *col + 1 + wl > 78) {
		p = xasprintf("%s\r\n\t%s", *buf, word);
		*col = 1 + wl;
	} else {
		p = xasprintf("%s%s%s", *buf, *col > 0 ? " " : "", word);
		*col += (*col > 0 ? 1 : 0) + wl;
	}
	free(*buf);
	*buf = p;
	*len = strlen(p);
}

/* Header fields we add in front of the message: Received always,
 * Message-ID and Date when missing.  Nothing of the original is altered. */
static char *
build_prefix(struct session *s, const struct msg_result *mr)
{
	const struct config *cfg = s->srv->cfg;
	char date[64], tls[96], idbuf[40], word[400];
	unsigned char rnd[12];
	time_t now = time(NULL);
	struct tm tm;
	char *hdr = xstrdup("Received:");
	size_t len = 0, col = 9;
	char *out;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	tls_describe(conn_tls(s->conn), tls, sizeof(tls));
	snprintf(word, sizeof(word), "from %s", s->helo);
	fold_append(&hdr, &len, &col, word);
	snprintf(word, sizeof(word), "([%s])", s->peer);
	fold_append(&hdr, &len, &col, word);
	snprintf(word, sizeof(word), "by %s (subproxy)", cfg->hostname);
	fold_append(&hdr, &len, &col, word);
	snprintf(word, sizeof(word), "with %s", s->smtputf8 ? "UTF8SMTPSA" : "ESMTPSA");
	fold_append(&hdr, &len, &col, word);
	snprintf(word, sizeof(word), "id %s.%u", s->id, s->txn_count);
	fold_append(&hdr, &len, &col, word);
	snprintf(word, sizeof(word), "(%s)", tls);
	fold_append(&hdr, &len, &col, word);
	snprintf(word, sizeof(word), "; %s", date);
	fold_append(&hdr, &len, &col, word);
	out = xasprintf("%s\r\n", hdr);
	free(hdr);
	if (!mr->has_message_id) {
		randombytes_buf(rnd, sizeof(rnd));
		sodium_bin2hex(idbuf, sizeof(idbuf), rnd, sizeof(rnd));
		snprintf(s->gen_msgid, sizeof(s->gen_msgid), "<%s.%s@%s>", idbuf, s->id,
		    cfg->hostname);
		hdr = xasprintf("%sMessage-ID: %s\r\n", out, s->gen_msgid);
		free(out);
		out = hdr;
	}
	if (!mr->has_date) {
		hdr = xasprintf("%sDate: %s\r\n", out, date);
		free(out);
		out = hdr;
	}
	return out;
}

/* The transaction's record was written (or could not be): now the client
 * gets the relay's final reply -- a 250 the relay gave stands either way,
 * the message is delivered and must not be sent twice. */
static void
txn_recorded(void *arg, int status)
{
	struct session *s = arg;

	session_hold(s);
	s->arq = NULL;
	if (status != RECORDER_WRITTEN)
		log_err("session=%s event=audit-record-missing status=%s: the transaction's "
		    "record is not in the audit log", s->id, recorder_status_name(status));
	evbuffer_add_buffer(conn_output(s->conn), s->final_reply);
	s->txn_count++;
	txn_reset(s);
	session_set_state(s, S_CMD);
	session_process(s);
	session_release(s);
}

static void
data_relay_done(void *arg, const struct relay_result *r)
{
	struct session *s = arg;
	struct relay_facts rf;

	session_hold(s);
	log_info("session=%s event=%s from=<%s> rcpts=%zu size=%llu code=%d enh=%s local=%d %s",
	    s->id, r->code >= 200 && r->code < 300 ? "relayed" : "relay-refused", s->mail_from,
	    s->rcpts_ok, (unsigned long long)spool_size(s->sp), r->code, r->enh, r->local,
	    relay_txn_describe(s->relay));
	if (r->code >= 200 && r->code < 300)
		metrics_count(MF_RELAYED, 0);
	else
		count_refused(r->enh);
	s->final_reply = evbuffer_new();
	reply_relay_to(s->final_reply, r);
	relay_txn_facts(s->relay, &rf);
	auditrec_txn_final(s->atx, r->code, r->enh, r->text, r->local, &rf);
	/* the record is written before the client hears the outcome */
	if ((s->arq = auditrec_txn_commit(s->srv->audit, s->atx, txn_recorded, s)) == NULL)
		txn_recorded(s, RECORDER_WRITTEN);
	session_release(s);
}

/* The signer answered: relay the signed message, or refuse it. */
static void
sign_result(struct session *s, int status, const char *headers)
{
	const struct msg_result *mr = msg_parser_result(s->mp);
	const char *dom = mr->nfrom > 0 ? strrchr(mr->from[0], '@') : NULL;
	char *signed_prefix;

	s->sreq = NULL;
	if (status == DKIM_RES_OK && headers != NULL) {
		metrics_count_dkim(headers);
		signed_prefix = xasprintf("%s%s", headers, s->prefix);
		free(s->prefix);
		s->prefix = signed_prefix;
		auditrec_txn_message(s->atx, mr->has_message_id ? mr->message_id :
		    s->gen_msgid[0] ? s->gen_msgid : NULL, headers);
		relay_txn_data(s->relay, s->prefix, strlen(s->prefix), s->sp, data_relay_done, s);
		return;
	}
	log_info("session=%s event=message-rejected stage=dkim result=%s", s->id,
	    signer_status_name(status));
	count_refused(status == DKIM_RES_NOKEY ? "5.7.1" : status == DKIM_RES_BADMSG ? "5.6.0" :
	    "4.3.0");
	switch (status) {
	case DKIM_RES_NOKEY:
		refuse(s, "dkim", "no-dkim-key", 550, "5.7.1", "No DKIM key for the From domain %s: "
		    "this server signs every message and cannot send for that domain",
		    dom ? dom + 1 : "(none)");
		break;
	case DKIM_RES_BADMSG:
		refuse(s, "dkim", "dkim-bad-header", 550, "5.6.0", "The header cannot be signed: "
		    "From must hold exactly one address");
		break;
	case SIGNER_DEAD:
		refuse(s, "dkim", "signer-unavailable", 451, "4.3.0", "Signing service unavailable, "
		    "message not sent; try again later");
		break;
	default:
		refuse(s, "dkim", "signing-failed", 451, "4.3.0", "Signing failed, message not sent; "
		    "try again later");
		break;
	}
	txn_reset(s);
	session_set_state(s, S_CMD);
	session_process(s);
}

static void
sign_done(void *arg, int status, const char *headers)
{
	struct session *s = arg;

	session_hold(s);
	sign_result(s, status, headers);
	session_release(s);
}

/* The whole message is in; check it and hand it to the signer. */
static void
message_complete(struct session *s)
{
	const struct msg_result *mr = msg_parser_result(s->mp);
	const struct config *cfg = s->srv->cfg;
	size_t i;

	if (s->mem_over) {
		log_info("session=%s event=message-rejected code=452 enh=4.3.1 reason=\"login-memory\"",
		    s->id);
		reply_login_memory(s, "message");
		txn_reset(s);
		session_set_state(s, S_CMD);
		return;
	}
	if (mr->code != 0) {
		log_info("session=%s event=message-rejected code=%d enh=%s reason=\"%s\"", s->id,
		    mr->code, mr->enh, mr->text);
		count_refused(mr->enh);
		refuse(s, "message", message_reason(mr), mr->code, mr->enh, "%s", mr->text);
		txn_reset(s);
		session_set_state(s, S_CMD);
		return;
	}
	for (i = 0; i < mr->nfrom; i++) {
		if (!config_sender_allowed(cfg, s->login, mr->from[i])) {
			count_refused("5.7.1");
			refuse(s, "message", "from-not-owned", 550, "5.7.1",
			    "Header From address <%s> not owned by user %s", mr->from[i], s->login);
			txn_reset(s);
			session_set_state(s, S_CMD);
			return;
		}
	}
	if (mr->sender != NULL && !config_sender_allowed(cfg, s->login, mr->sender)) {
		count_refused("5.7.1");
		refuse(s, "message", "sender-header-not-owned", 550, "5.7.1",
		    "Header Sender address <%s> not owned by user %s", mr->sender, s->login);
		txn_reset(s);
		session_set_state(s, S_CMD);
		return;
	}
	if (!auditrec_accepting(s->srv->audit)) {
		/* the log failed during the transaction: nothing was relayed yet */
		count_refused("4.3.0");
		refuse(s, "message", "audit-log-unavailable", 451, "4.3.0",
		    "Audit log unavailable, message not sent; try again later");
		txn_reset(s);
		session_set_state(s, S_CMD);
		return;
	}
	s->prefix = build_prefix(s, mr);
	session_set_state(s, S_WAIT);
	s->sreq = signer_sign(s->srv->signer, s->prefix, strlen(s->prefix), s->sp, sign_done, s);
}

static int
data_precheck(struct session *s, int bdat)
{
	if (!s->in_txn) {
		reply(s, 503, "5.5.1", "Need MAIL command");
		return -1;
	}
	if (s->rcpts_ok == 0) {
		refuse(s, "data", "no-valid-recipients", 554, "5.5.1", "No valid recipients");
		return -1;
	}
	if ((bdat && s->data_used) || (!bdat && s->bdat_used)) {
		reply(s, 503, "5.5.1", "DATA and BDAT cannot be mixed");
		return -1;
	}
	if (s->mp == NULL && login_memory_full(s)) {
		/* before a message starts: the login holds its share already */
		log_info("session=%s event=message-refused code=452 enh=4.3.1 login=%s held=%llu",
		    s->id, s->login, (unsigned long long)loginmem_held(s->mem));
		reply_login_memory(s, "data");
		return -1;
	}
	return 0;
}

static void
cmd_data(struct session *s)
{
	if (data_precheck(s, 0) < 0)
		return;
	s->data_used = 1;
	start_message(s, MSG_MODE_DATA);
	reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	session_set_state(s, S_DATA);
}

/* BDAT: a chunk of c->bdat_size octets follows the command line; it is
 * always read, even when the command is refused. */
static void
cmd_bdat(struct session *s, const struct smtp_cmd *c)
{
	s->bdat_remaining = c->bdat_size;
	s->bdat_last = c->bdat_last;
	session_set_state(s, S_BDAT);
	if (s->bdat_failed) {
		/* RFC 3030 4.2: discard chunks pipelined after a failed one */
		s->bdat_failed = 2;
		return;
	}
	if (data_precheck(s, 1) < 0) {
		s->bdat_failed = 3;  /* replied already; discard this chunk */
		return;
	}
	s->bdat_used = 1;
	if (s->mp == NULL)
		start_message(s, MSG_MODE_BDAT);
}

static void
bdat_chunk_done(struct session *s)
{
	const struct msg_result *mr;

	session_set_state(s, S_CMD);
	if (s->bdat_failed == 3) {
		/* refused before any data: the reply was sent with the command */
		s->bdat_failed = 0;
		return;
	}
	if (s->bdat_failed) {
		s->bdat_failed = 1;
		reply(s, 503, "5.5.1", "Previous BDAT failed; transaction aborted, send RSET");
		return;
	}
	mr = msg_parser_result(s->mp);
	if (s->mem_over && !s->bdat_last) {
		reply_login_memory(s, "message");
		relay_txn_free(&s->relay);
		s->bdat_failed = 1;
		return;
	}
	if (mr->code != 0 && !s->bdat_last) {
		log_info("session=%s event=message-rejected code=%d enh=%s reason=\"%s\"", s->id,
		    mr->code, mr->enh, mr->text);
		count_refused(mr->enh);
		refuse(s, "message", message_reason(mr), mr->code, mr->enh, "%s", mr->text);
		relay_txn_free(&s->relay);
		s->bdat_failed = 1;
		return;
	}
	if (!s->bdat_last) {
		reply(s, 250, "2.0.0", "%llu octets received",
		    (unsigned long long)msg_parser_bytes(s->mp));
		return;
	}
	msg_parser_finish(s->mp);
	message_complete(s);
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
static void
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
	case CONN_EV_EOF:
		session_drop(s, "client closed connection");
		return;
	case CONN_EV_ERROR:
		session_drop(s, conn_error(c));
		return;
	}
}

static void
session_conn_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct session *s = arg;

	session_hold(s);
	session_conn_event(s, c, ev);
	session_release(s);
}

/* auth-timeout (before AUTH) or what is left of session-timeout, counted
 * from the accept to the millisecond (whole seconds would end a session up
 * to a second early). */
static void
session_arm_limit(struct session *s)
{
	const struct config_limits *l = &s->srv->cfg->limits;
	uint64_t elapsed = mono_ms() - s->started_ms, limit, left;
	struct timeval tv;

	if (s->login == NULL && l->auth_timeout < l->session_timeout)
		limit = l->auth_timeout * 1000;
	else
		limit = l->session_timeout * 1000;
	left = elapsed < limit ? limit - elapsed : 0;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	evtimer_add(s->ev_limit, &tv);
}

/* Before AUTH the session ends at once.  After AUTH an open transaction
 * may finish (then 421, see session_process), for one more idle timeout
 * at most -- unless the relay has the message: its answer is owed. */
static void
session_limit(struct session *s)
{
	const struct config_limits *l = &s->srv->cfg->limits;
	struct timeval tv = { (time_t)l->timeout, 0 };

	if (s->login == NULL) {
		log_info("session=%s event=auth-timeout peer=%s", s->id, s->peer);
		reply(s, 421, "4.4.2", "%s No authentication within %llu seconds, closing "
		    "connection", s->srv->cfg->hostname, (unsigned long long)(l->auth_timeout <
		    l->session_timeout ? l->auth_timeout : l->session_timeout));
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

static void
session_limit_expired(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	session_hold(s);
	session_limit(s);
	session_release(s);
}

/* Sessions under one per-address key, closing ones included. */
static unsigned
count_peer(const struct server *srv, const char *key)
{
	const struct session *s;
	unsigned n = 0;

	for (s = srv->sessions; s != NULL; s = s->next)
		if (strcmp(s->peer_key, key) == 0)
			n++;
	return n;
}

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
	unsigned char rnd[8];
	const char *refuse = NULL;

	s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->lst = l;
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(s->id, sizeof(s->id), rnd, sizeof(rnd));
	s->conn = conn_new(srv->base, fd, session_conn_cb, s);
	s->started_ms = mono_ms();
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
	/* closing sessions count until their descriptor is closed */
	if (srv->nsessions + proxyin_pool_count(srv->proxyin) >= lim->connections)
		refuse = "421 4.3.2 Too many connections, try again later";
	else if (count_peer(srv, s->peer_key) >= lim->connections_per_ip)
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
	if (srv->nsessions + proxyin_pool_count(srv->proxyin) >= srv->cfg->limits.connections) {
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
    const int *fds, int signer_fd, int recorder_fd, char *err, size_t errlen)
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
	srv->keeper = keeper_client_new(base, kfds, keeper_lost, srv);
	srv->audit = auditrec_new(base, cfg, recorder_fd, recorder_lost, srv);
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
	if ((srv->ev_accept = evtimer_new(base, accept_resume, srv)) == NULL)
		fatal("out of memory");
	srv->nlisteners = cfg->nlistens;
	srv->listeners = xcalloc(cfg->nlistens, sizeof(*srv->listeners));
	for (i = 0; i < cfg->nlistens; i++) {
		struct listener *l = &srv->listeners[i];

		l->srv = srv;
		l->cl = &cfg->listens[i];
		l->evl = evconnlistener_new(base, on_accept, l, LEV_OPT_CLOSE_ON_FREE |
		    LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED, -1, fds[i]);
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
static int
session_in_flight(const struct session *s)
{
	return s->in_txn || s->relay != NULL || s->sreq != NULL || s->state == S_DATA ||
	    s->state == S_BDAT;
}

static void
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
			    sess_state_names[s->state], s->mail_from ? s->mail_from : "");
			metrics_count(MF_SHUTDOWN_CUT, 0);
			txn_reset(s);
		}
		shutdown_close(s);
	}
	event_base_loopexit(srv->base, NULL);
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
	struct timeval tv;
	unsigned busy = 0;
	size_t i;

	if (srv->shutting_down)
		return;
	srv->shutting_down = 1;
	for (i = 0; i < srv->nlisteners; i++) {
		evconnlistener_free(srv->listeners[i].evl);
		srv->listeners[i].evl = NULL;
	}
	event_del(srv->ev_accept);
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
	if (srv->nsessions == 0) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	tv.tv_sec = (time_t)srv->cfg->shutdown_timeout;
	tv.tv_usec = 0;
	srv->ev_grace = evtimer_new(srv->base, grace_expired, srv);
	evtimer_add(srv->ev_grace, &tv);
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
	keeper_client_free(&srv->keeper);
	signer_client_free(&srv->signer);
	auditrec_free(&srv->audit);
	relay_ctx_free(&srv->relay);
	dns_ctx_free(&srv->dns);
	tls_server_free(&srv->tls);
	loginmem_table_free(&srv->logins);
	free(srv);
}
