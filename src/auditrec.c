/* auditrec.c — the bodies of the parent's and front's audit records. */
#include "auditrec.h"

#include "audit.h"
#include "auditagg.h"
#include "auditlog.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "relay.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#define RCPT_TEXT_MAX	160	/* octets of a recipient's reply text kept */
#define FINAL_TEXT_MAX	400	/* octets of the final reply's text kept */
#define BODY_BUDGET	(ALOG_BODY_MAX - 4096)	/* the recipients stop here */
#define AGG_MAX		1024		/* kinds and client keys counted (auditagg.h) */
#define AGG_INTERVAL_MS	60000		/* one summary per kind and key per minute */
#define AGG_TICK_MS	5000
#define DROP_LOG_MS	60000		/* dropped records: one log line a minute */
#define DRAIN_POLL_MS	20
#define DRAIN_MS	((RECORDER_ACK_TIMEOUT + 1) * 1000)

/* ---- the parent's records ---- */

int
auditrec_required(const struct config *cfg)
{
	struct audit_profile *p;
	char err[300];
	int req;

	if (cfg->audit_required >= 0)
		return cfg->audit_required;
	if ((p = audit_profile_load(cfg->profile, err, sizeof(err))) == NULL)
		return 1;	/* an unknown profile fails the self-audit anyway */
	req = p->audit_log_required;
	audit_profile_free(&p);
	return req;
}

static char *
done(struct jsonw *w, size_t *len_r)
{
	char *s = w->buf;

	*len_r = w->len;
	w->buf = NULL;
	return s;
}

/* The ids of bl's checks whose status is st, as a JSON array. */
static void
check_ids(struct jsonw *w, const char *key, const struct audit_baseline *bl, int st)
{
	size_t i;

	jsonw_key(w, key);
	jsonw_arr_open(w);
	for (i = 0; i < bl->nchecks; i++)
		if (bl->checks[i].status == st || (st == AUDIT_PASS &&
		    bl->checks[i].status == AUDIT_SKIP))
			jsonw_str(w, bl->checks[i].id);
	jsonw_arr_close(w);
}

char *
auditrec_start_body(const struct config *cfg, const struct audit_baseline *bl, int failed,
    size_t *len_r)
{
	struct jsonw w;
	char hex[ALOG_HEX_LEN + 1];

	jsonw_init(&w, 0);
	jsonw_obj_open(&w);
	jsonw_kstr(&w, "version", SUBPROXY_VERSION);
	jsonw_kstr(&w, "hostname", cfg->hostname);
	alog_hex(cfg->digest, sizeof(cfg->digest), hex);
	jsonw_kstr(&w, "config_sha256", hex);
	jsonw_kstr(&w, "profile", cfg->profile);
	jsonw_key(&w, "self_audit");
	jsonw_obj_open(&w);
	jsonw_kstr(&w, "result", failed ? "fail" : "pass");
	jsonw_kint(&w, "checks", (int64_t)bl->nchecks);
	check_ids(&w, "passed", bl, AUDIT_PASS);
	check_ids(&w, "failed", bl, AUDIT_FAIL);
	check_ids(&w, "warned", bl, AUDIT_WARN);
	jsonw_obj_close(&w);
	jsonw_kbool(&w, "required", auditrec_required(cfg));
	jsonw_obj_close(&w);
	return done(&w, len_r);
}

char *
auditrec_stop_body(const char *reason, const char *detail, int status, size_t *len_r)
{
	struct jsonw w;

	jsonw_init(&w, 0);
	jsonw_obj_open(&w);
	jsonw_kstr(&w, "reason", reason);
	if (detail != NULL && detail[0] != '\0')
		jsonw_kstr(&w, "detail", detail);
	jsonw_kint(&w, "status", status);
	jsonw_obj_close(&w);
	return done(&w, len_r);
}

/* ---- DKIM-Signature tags ---- */

/* Copy tag `name`'s value from an unfolded field into out, without white
 * space (b= and bh= may be folded anywhere). */
static void
tag_value(const char *field, const char *name, char *out, size_t outlen)
{
	const char *p = field, *q;
	size_t n = strlen(name), o = 0;

	out[0] = '\0';
	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		if (strncmp(p, name, n) == 0) {
			for (q = p + n; *q == ' ' || *q == '\t'; q++)
				;
			if (*q == '=') {
				for (q++; *q != '\0' && *q != ';' && o + 1 < outlen; q++)
					if (*q != ' ' && *q != '\t')
						out[o++] = *q;
				out[o] = '\0';
				return;
			}
		}
		p = strchr(p, ';');
	}
}

void
auditrec_dkim_tags(const char *headers, auditrec_dkim_cb *cb, void *arg)
{
	static const char name[] = "DKIM-Signature:";
	const char *p = headers, *end;
	char *field, d[256], s[128], a[64], bh[128];
	size_t i, o;

	while (p != NULL && *p != '\0') {
		/* one field: up to a CRLF not followed by white space */
		for (end = p; *end != '\0'; end++)
			if (end[0] == '\r' && end[1] == '\n' && end[2] != ' ' && end[2] != '\t')
				break;
		if ((size_t)(end - p) > sizeof(name) - 1 &&
		    ascii_ncasecmp(p, name, sizeof(name) - 1) == 0) {
			field = xmalloc((size_t)(end - p) + 1);
			for (i = sizeof(name) - 1, o = 0; p + i < end; i++)
				if (p[i] != '\r' && p[i] != '\n')
					field[o++] = p[i];
			field[o] = '\0';
			tag_value(field, "d", d, sizeof(d));
			tag_value(field, "s", s, sizeof(s));
			tag_value(field, "a", a, sizeof(a));
			tag_value(field, "bh", bh, sizeof(bh));
			cb(arg, d, s, a, bh);
			free(field);
		}
		p = *end != '\0' ? end + 2 : NULL;
	}
}

/* ---- front's transaction facts ---- */

struct rcpt {
	char *addr, *enh, *text;
	int code;
};

struct auditrec_txn {
	char *session, *login, *client, *tls_version, *tls_cipher, *from;
	struct rcpt *rcpts;
	size_t nrcpts;
	char *message_id;
	char *dkim;
	struct timespec handed;		/* the message went to the relay */
	int have_handed;
	int code, local;
	char *enh, *text;
	const char *unknown;		/* no final reply awaited: why */
	int64_t latency_ms;
	int have_relay;
	struct relay_facts rf;
};

struct auditrec_txn *
auditrec_txn_new(const char *session, const char *login, const char *client,
    const char *tls_version, const char *tls_cipher, const char *from)
{
	struct auditrec_txn *tx = xcalloc(1, sizeof(*tx));

	tx->session = xstrdup(session);
	tx->login = xstrdup(login);
	tx->client = xstrdup(client);
	tx->tls_version = xstrdup(tls_version);
	tx->tls_cipher = xstrdup(tls_cipher);
	tx->from = xstrdup(from);
	return tx;
}

void
auditrec_txn_rcpt(struct auditrec_txn *tx, const char *addr, int code, const char *enh,
    const char *text)
{
	struct rcpt *r;

	tx->rcpts = xreallocarray(tx->rcpts, tx->nrcpts + 1, sizeof(*tx->rcpts));
	r = &tx->rcpts[tx->nrcpts++];
	r->addr = xstrdup(addr);
	r->code = code;
	r->enh = xstrdup(enh);
	text = text ? text : "";
	r->text = xstrndup(text, strnlen(text, RCPT_TEXT_MAX));
}

void
auditrec_txn_message(struct auditrec_txn *tx, const char *message_id, const char *dkim_headers)
{
	free(tx->message_id);
	free(tx->dkim);
	tx->message_id = message_id ? xstrdup(message_id) : NULL;
	tx->dkim = dkim_headers ? xstrdup(dkim_headers) : NULL;
	clock_gettime(CLOCK_MONOTONIC, &tx->handed);
	tx->have_handed = 1;
}

/* The outcome is known now (or never will be): the time since the
 * message was handed over, and what the relay leg knows. */
static void
txn_settle(struct auditrec_txn *tx, const struct relay_facts *rf)
{
	struct timespec now;

	if (tx->have_handed) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		tx->latency_ms = (int64_t)(now.tv_sec - tx->handed.tv_sec) * 1000 +
		    (now.tv_nsec - tx->handed.tv_nsec) / 1000000;
	}
	if (rf != NULL) {
		tx->rf = *rf;
		tx->have_relay = rf->name != NULL && rf->dane != NULL;
	}
}

void
auditrec_txn_final(struct auditrec_txn *tx, int code, const char *enh, const char *text,
    int local, const struct relay_facts *rf)
{
	tx->code = code;
	tx->local = local;
	free(tx->enh);
	free(tx->text);
	tx->enh = xstrdup(enh);
	text = text ? text : "";
	tx->text = xstrndup(text, strnlen(text, FINAL_TEXT_MAX));
	tx->unknown = NULL;
	txn_settle(tx, rf);
}

void
auditrec_txn_unknown(struct auditrec_txn *tx, const char *why, const struct relay_facts *rf)
{
	free(tx->enh);
	free(tx->text);
	tx->enh = NULL;
	tx->text = xstrdup("no final reply awaited: the session ended after the end of the "
	    "message was handed to the relay; the relay may deliver it");
	tx->local = 1;
	tx->unknown = why;
	txn_settle(tx, rf);
}

void
auditrec_txn_free(struct auditrec_txn **txp)
{
	struct auditrec_txn *tx;
	size_t i;

	if (txp == NULL || (tx = *txp) == NULL)
		return;
	for (i = 0; i < tx->nrcpts; i++) {
		free(tx->rcpts[i].addr);
		free(tx->rcpts[i].enh);
		free(tx->rcpts[i].text);
	}
	free(tx->rcpts);
	free(tx->session);
	free(tx->login);
	free(tx->client);
	free(tx->tls_version);
	free(tx->tls_cipher);
	free(tx->from);
	free(tx->message_id);
	free(tx->dkim);
	free(tx->enh);
	free(tx->text);
	free(tx);
	*txp = NULL;
}

static void
tls_obj(struct jsonw *w, const char *key, const char *version, const char *cipher)
{
	jsonw_key(w, key);
	jsonw_obj_open(w);
	jsonw_kstr(w, "version", version);
	jsonw_kstr(w, "cipher", cipher);
	jsonw_obj_close(w);
}

static void
dkim_member(void *arg, const char *d, const char *s, const char *a, const char *bh)
{
	struct jsonw *w = arg;

	jsonw_obj_open(w);
	jsonw_kstr(w, "d", d);
	jsonw_kstr(w, "s", s);
	jsonw_kstr(w, "a", a);
	jsonw_kstr(w, "bh", bh);
	jsonw_obj_close(w);
}

static void
relay_member(struct jsonw *w, const struct auditrec_txn *tx)
{
	jsonw_key(w, "relay");
	if (!tx->have_relay) {
		jsonw_null(w);
		return;
	}
	jsonw_obj_open(w);
	jsonw_kstr(w, "name", tx->rf.name);
	jsonw_kstr(w, "address", tx->rf.address);
	tls_obj(w, "tls", tx->rf.tls_version, tx->rf.tls_cipher);
	jsonw_key(w, "dane");
	jsonw_obj_open(w);
	jsonw_kstr(w, "verdict", tx->rf.dane);
	jsonw_kstr(w, "tlsa", tx->rf.tlsa);
	jsonw_kstr(w, "dnssec", tx->rf.dnssec ? tx->rf.dnssec : "?");
	jsonw_obj_close(w);
	jsonw_obj_close(w);
}

char *
auditrec_txn_body(const struct auditrec_txn *tx, size_t *len_r)
{
	struct jsonw w;
	char hex[ALOG_HEX_LEN + 1];
	size_t i;

	jsonw_init(&w, 0);
	jsonw_obj_open(&w);
	jsonw_kstr(&w, "session", tx->session);
	jsonw_kstr(&w, "login", tx->login);
	jsonw_kstr(&w, "client", tx->client);
	tls_obj(&w, "client_tls", tx->tls_version, tx->tls_cipher);
	jsonw_kstr(&w, "from", tx->from);
	jsonw_key(&w, "rcpts");
	jsonw_arr_open(&w);
	/* every recipient while the record fits one message; the rest counted */
	for (i = 0; i < tx->nrcpts && w.len < BODY_BUDGET; i++) {
		jsonw_obj_open(&w);
		jsonw_kstr(&w, "addr", tx->rcpts[i].addr);
		jsonw_kint(&w, "code", tx->rcpts[i].code);
		jsonw_kstr(&w, "enh", tx->rcpts[i].enh);
		jsonw_kstr(&w, "text", tx->rcpts[i].text);
		jsonw_obj_close(&w);
	}
	jsonw_arr_close(&w);
	if (i < tx->nrcpts)
		jsonw_kint(&w, "rcpts_omitted", (int64_t)(tx->nrcpts - i));
	jsonw_kstr(&w, "message_id", tx->message_id);
	jsonw_kint(&w, "size", (int64_t)tx->rf.octets);
	if (tx->rf.have_sha256) {
		alog_hex(tx->rf.sha256, sizeof(tx->rf.sha256), hex);
		jsonw_kstr(&w, "sha256", hex);
	} else
		jsonw_kstr(&w, "sha256", NULL);
	jsonw_key(&w, "dkim");
	jsonw_arr_open(&w);
	if (tx->dkim != NULL)
		auditrec_dkim_tags(tx->dkim, dkim_member, &w);
	jsonw_arr_close(&w);
	relay_member(&w, tx);
	jsonw_key(&w, "final");
	jsonw_obj_open(&w);
	if (tx->unknown != NULL) {
		/* no reply: nothing here may look like one */
		jsonw_key(&w, "code");
		jsonw_null(&w);
		jsonw_key(&w, "enh");
		jsonw_null(&w);
	} else {
		jsonw_kint(&w, "code", tx->code);
		jsonw_kstr(&w, "enh", tx->enh ? tx->enh : "");
	}
	jsonw_kstr(&w, "text", tx->text ? tx->text : "");
	jsonw_kbool(&w, "local", tx->local);
	if (tx->unknown != NULL)
		jsonw_kstr(&w, "unknown", tx->unknown);
	jsonw_obj_close(&w);
	jsonw_kint(&w, "latency_ms", tx->latency_ms);
	jsonw_obj_close(&w);
	return done(&w, len_r);
}

/* ---- front's handle ---- */

struct auditrec {
	struct event_base *base;
	struct recorder_client *rc;	/* NULL: no audit log */
	int required;
	struct auditagg *agg;		/* refusals a client can repeat */
	struct event *ev_tick;
	uint64_t dropped_logged;
	int64_t next_drop_log;
	int64_t drain_until;		/* auditrec_finish()'s deadline */
};

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
agg_room(void *arg)
{
	struct auditrec *ar = arg;

	return recorder_bulk_room(ar->rc);
}

static void
agg_emit(void *arg, int type, const char *body, size_t len)
{
	struct auditrec *ar = arg;

	recorder_send_bulk(ar->rc, type, body, len);
}

static void
agg_tick(evutil_socket_t fd, short what, void *arg)
{
	struct auditrec *ar = arg;
	uint64_t dropped = auditagg_dropped(ar->agg);
	int64_t now = wall_ms();

	auditagg_tick(ar->agg, now);
	if (dropped > ar->dropped_logged && now >= ar->next_drop_log) {
		log_err("event=audit-refusals-dropped count=%llu: refusals of more kinds than "
		    "front can count at once were not recorded",
		    (unsigned long long)(dropped - ar->dropped_logged));
		ar->dropped_logged = dropped;
		ar->next_drop_log = now + DROP_LOG_MS;
	}
}

struct auditrec *
auditrec_new(struct event_base *base, const struct config *cfg, int fd,
    unsigned workers, recorder_dead_cb *dead_cb, void *arg)
{
	struct auditrec *ar = xcalloc(1, sizeof(*ar));
	struct auditagg_out out = { agg_room, agg_emit, ar };
	struct timeval tv = { AGG_TICK_MS / 1000, (AGG_TICK_MS % 1000) * 1000 };

	ar->base = base;
	if (fd >= 0) {
		ar->rc = recorder_client_new(base, fd, dead_cb, arg);
		ar->required = auditrec_required(cfg);
		/* the instance's bound, shared out: ceil(flood-records / workers) */
		workers = workers > 0 ? workers : 1;
		ar->agg = auditagg_new(AGG_MAX, AGG_INTERVAL_MS,
		    (uint32_t)((cfg->audit_flood_records + workers - 1) / workers), &out);
		if ((ar->ev_tick = event_new(base, -1, EV_PERSIST, agg_tick, ar)) == NULL)
			fatal("out of memory");
		evtimer_add(ar->ev_tick, &tv);
	}
	return ar;
}

static void
drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct auditrec *ar = arg;

	if (recorder_pending(ar->rc) == 0 || wall_ms() >= ar->drain_until)
		event_base_loopexit(ar->base, NULL);
}

void
auditrec_finish(struct auditrec *ar)
{
	struct timeval tv = { 0, DRAIN_POLL_MS * 1000 };
	struct event *ev;

	if (ar == NULL || ar->rc == NULL)
		return;
	auditagg_flush(ar->agg, wall_ms());
	if (recorder_pending(ar->rc) == 0)
		return;
	ar->drain_until = wall_ms() + DRAIN_MS;
	if ((ev = event_new(ar->base, -1, EV_PERSIST, drain_check, ar)) == NULL)
		fatal("out of memory");
	evtimer_add(ev, &tv);
	event_base_dispatch(ar->base);
	event_free(ev);
	if (recorder_pending(ar->rc) > 0)
		log_err("event=audit-records-unanswered count=%zu: the recorder did not answer "
		    "them before front stopped", recorder_pending(ar->rc));
}

void
auditrec_free(struct auditrec **arp)
{
	struct auditrec *ar;

	if (arp == NULL || (ar = *arp) == NULL)
		return;
	if (ar->ev_tick != NULL)
		event_free(ar->ev_tick);
	auditagg_free(&ar->agg);
	recorder_client_free(&ar->rc);
	free(ar);
	*arp = NULL;
}

int
auditrec_accepting(const struct auditrec *ar)
{
	return ar->rc == NULL || !ar->required || recorder_writable(ar->rc);
}

/* A record a client may cause many of: bounded (recorder_send_bulk) and,
 * with a flood key, counted after the first of its kind (auditagg.h). */
static void
send_bulk(struct auditrec *ar, int type, const char *kind, const char *client,
    const char *flood_key, struct jsonw *w)
{
	(void)auditagg_note(ar->agg, type, kind, flood_key ? flood_key : client ? client : "",
	    flood_key != NULL, w->buf, w->len, wall_ms());
	jsonw_free(w);
}

void
auditrec_auth(struct auditrec *ar, const char *session, const char *client, const char *login,
    const char *mechanism, const char *result, int lockout, int closed, int code,
    const char *enh, const char *flood_key)
{
	struct jsonw w;
	char kind[64];

	if (ar->rc == NULL)
		return;
	jsonw_init(&w, 0);
	jsonw_obj_open(&w);
	jsonw_kstr(&w, "session", session);
	jsonw_kstr(&w, "client", client);
	jsonw_kstr(&w, "login", login);
	jsonw_kstr(&w, "mechanism", mechanism);
	jsonw_kstr(&w, "result", result);
	jsonw_kbool(&w, "lockout", lockout);
	jsonw_kbool(&w, "closed", closed);
	jsonw_kint(&w, "code", code);
	jsonw_kstr(&w, "enh", enh);
	jsonw_obj_close(&w);
	if (flood_key != NULL) {
		snprintf(kind, sizeof(kind), "auth\t%s", result);
		send_bulk(ar, ALOG_T_AUTH, kind, client, flood_key, &w);
		return;
	}
	(void)recorder_send(ar->rc, ALOG_T_AUTH, w.buf, w.len, NULL, NULL);
	jsonw_free(&w);
}

void
auditrec_refusal(struct auditrec *ar, const char *session, const char *client,
    const char *login, const char *stage, int code, const char *enh, const char *reason,
    const char *text, const char *flood_key)
{
	struct jsonw w;
	char kind[160];

	if (ar->rc == NULL)
		return;
	jsonw_init(&w, 0);
	jsonw_obj_open(&w);
	jsonw_kstr(&w, "session", session);
	jsonw_kstr(&w, "client", client);
	jsonw_kstr(&w, "login", login);
	jsonw_kstr(&w, "stage", stage);
	jsonw_kint(&w, "code", code);
	jsonw_kstr(&w, "enh", enh);
	jsonw_kstr(&w, "reason", reason);
	jsonw_kstr(&w, "text", text);
	jsonw_obj_close(&w);
	snprintf(kind, sizeof(kind), "%s\t%d\t%s", stage, code, reason);
	send_bulk(ar, ALOG_T_REFUSAL, kind, client, flood_key, &w);
}

void
auditrec_recheck(struct auditrec *ar, const char *check, int ok, const char *status,
    int required, const char *summary, const char *remedy)
{
	struct jsonw w;

	if (ar == NULL || ar->rc == NULL)
		return;
	jsonw_init(&w, 0);
	jsonw_obj_open(&w);
	jsonw_kstr(&w, "check", check);
	jsonw_kstr(&w, "result", ok ? "recovered" : "failed");
	jsonw_kstr(&w, "status", status);
	jsonw_kbool(&w, "required", required);
	jsonw_kstr(&w, "summary", summary);
	if (!ok && remedy != NULL)
		jsonw_kstr(&w, "remedy", remedy);
	jsonw_obj_close(&w);
	(void)recorder_send(ar->rc, ALOG_T_RECHECK, w.buf, w.len, NULL, NULL);
	jsonw_free(&w);
}

struct recorder_req *
auditrec_txn_commit(struct auditrec *ar, const struct auditrec_txn *tx, recorder_cb *cb,
    void *arg)
{
	struct recorder_req *rq;
	size_t len;
	char *body;

	if (ar->rc == NULL)
		return NULL;
	body = auditrec_txn_body(tx, &len);
	rq = recorder_send(ar->rc, ALOG_T_TXN, body, len, cb, arg);
	free(body);
	return rq;
}
