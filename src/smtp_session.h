/* smtp_session.h — what the parts of front's SMTP server share (private to
 * smtp_server.c, smtp_session.c, smtp_auth.c and smtp_txn.c): the server,
 * its listeners and the client session, and the functions each part offers
 * the others.  Not a public interface: other modules use smtp_server.h. */
#ifndef SMTP_SESSION_H
#define SMTP_SESSION_H

#include "smtp_server.h"
#include "config.h"
#include "conn.h"
#include "ratelimit.h"
#include "relay.h"
#include "smtp_syntax.h"

#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <event2/listener.h>

#define AUTH_LINE_MAX    12288   /* RFC 4954 4: AUTH lines may be long */
#define OUT_HIGH         (64 * 1024)  /* replies unread by the client: stop taking commands */
#define OUT_LOW          (16 * 1024)  /* ... until the client has read down to this */
/* input read ahead outside DATA and BDAT: the longest line (AUTH) and its
 * CRLF fit; message data may have CONN_INPUT_MAX */
#define LINE_INPUT_MAX   (AUTH_LINE_MAX + 4096)

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

/* Names of the states above, for logs. */
extern const char *const sess_state_names[];

/* An envelope address (NUL-terminated, at most SMTP_PATH_MAX octets) for a
 * log line, through log_value(): a quoted local part may hold spaces and
 * '=' ("x code=250"@d), which must not become fields of the line.  The
 * buffer lives until the end of the enclosing block. */
#define LOGADDR(a) log_value((char[4 * SMTP_PATH_MAX + 4]){ 0 }, 4 * SMTP_PATH_MAX + 4, \
    (a), strlen(a))

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
	int draining;                  /* server_drain(): no new sessions */
	struct event *ev_grace;
	struct event *ev_accept;       /* accepting again after a pause */
	int accept_logged;             /* a pause was logged ... */
	time_t accept_log_time;        /* ... at this (monotonic) second */
	unsigned accept_pauses;        /* pauses since that line */
	struct loginmem_table *logins; /* [limits] login-memory accounting */
	struct proxyin_pool *proxyin;  /* connections waiting for their PROXY header */
	struct limiter *limiter;       /* rate limits (limiter.h) */
	struct slots *txn_slots;       /* [limits] transactions in this worker (slots.h) */
	struct event *ev_testclock;    /* test builds only (clock.h) */
	struct event *ev_drain;
};

struct session {
	struct server *srv;
	struct session *prev, *next;
	struct listener *lst;
	struct conn *conn;
	char id[17];
	char peer[64];                 /* the client's address: session_client() */
	char peer_key[64];             /* what per-address limits count (conn_addr_key) */
	long lslot;                    /* its entry in the per-login session counts, or -1 */
	int peer_port;
	char local[64];                /* the address and port it connected to */
	int local_port;
	char via[64];                  /* the load balancer's address ("" = direct) */
	long climit;                   /* its entry in the shared connection counts */
	enum sess_state state;
	unsigned busy;                 /* our frames using the session (session_hold) */
	struct conn *linger;           /* closed: its last replies are still being written */
	int out_blocked;               /* not taking commands until the client reads */
	unsigned proto_errors;
	struct event *ev_limit;        /* auth-timeout or the check's wait, then session-timeout */
	int limit_passed;              /* session-timeout passed: end after this transaction */
	uint64_t started_us;           /* monotonic microseconds at the accept */
	int tls;                       /* TLS active */
	int greeted;                   /* HELO/EHLO seen (since TLS) */
	int esmtp;
	char helo[256];
	char *login;
	char *auth_user;               /* LOGIN mechanism, between steps */
	const char *auth_mech;         /* "PLAIN" or "LOGIN", for the audit record */
	unsigned auth_failures;
	struct keeper_req *authreq;    /* the AUTH check the keeper has, or NULL */
	uint64_t auth_sent_us;         /* ... handed to the keeper at (mono_us) */
	uint64_t auth_waited_us;       /* answered checks' waits: not auth-timeout's */
	struct event *ev_delay;        /* failure delay before the 535 */
	int discard_line;              /* resync after an overlong line */
	int close_after_reply;
	unsigned txn_count;

	/* transaction */
	int in_txn;
	int txn_slot;                  /* holds one of srv->txn_slots (MAIL to txn_reset) */
	struct slots_wait *txn_wait;   /* MAIL waiting in line for one */
	char *mail_from;
	char *mail_params;             /* MAIL's parameters for the relay ("" none) */
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

/* smtp_session.c */
time_t mono_now(void);
uint64_t mono_us(void);
void session_hold(struct session *s);
void session_release(struct session *s);
void reply(struct session *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void reply_relay_to(struct evbuffer *out, const struct relay_result *r);
void count_refused(const char *enh);
void reply_relay(struct session *s, const struct relay_result *r);
void refuse_as(struct session *s, const char *login, const char *stage, const char *reason,
    int code, const char *enh, const char *text, int flood);
void refuse(struct session *s, const char *stage, const char *reason, int code,
    const char *enh, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void refuse_relay(struct session *s, const char *stage, const struct relay_result *r);
const char *session_client(const struct session *s, int *port_r);
int rate_take(struct session *s, enum ratelimit_limit lim, const char *login);
void rate_give_back(struct session *s, enum ratelimit_limit lim, const char *login);
void session_set_state(struct session *s, enum sess_state st);
int login_memory_full(const struct session *s);
void reply_login_memory(struct session *s, const char *stage);
void txn_reset(struct session *s);
/* The session ends: when the end of its message is with the relay and the
 * final reply has not come, the transaction's record is written now with
 * its outcome unknown (the relay may deliver the message; smtp_txn.c). */
void txn_abandon(struct session *s);
void session_close(struct session *s);
void session_drop(struct session *s, const char *why);
void send_greeting(struct session *s);
void session_process(struct session *s);
void session_conn_cb(struct conn *c, enum conn_event ev, void *arg);
void session_arm_limit(struct session *s);
void session_limit_expired(evutil_socket_t fd, short what, void *arg);

/* smtp_auth.c */
void auth_plain_response(struct session *s, const char *line, size_t len);
void auth_login_step(struct session *s, const char *line, size_t len);
void cmd_auth(struct session *s, const struct smtp_cmd *c);
void auth_wait_expired(struct session *s);

/* smtp_txn.c */
void cmd_mail(struct session *s, const struct smtp_cmd *c);
void mail_wait_expired(struct session *s);
void cmd_rcpt(struct session *s, const struct smtp_cmd *c);
void message_complete(struct session *s);
void cmd_data(struct session *s);
void cmd_bdat(struct session *s, const struct smtp_cmd *c);
void bdat_chunk_done(struct session *s);

/* smtp_server.c */
int session_in_flight(const struct session *s);
void shutdown_close(struct session *s);

#endif
