/* relay_pool.c — relay targets and the idle connections kept for reuse. */
#include "relay_int.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "smtp_reply.h"
#include "tls.h"
#include "util.h"
#include "xclient.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

/* ---- targets ---- */

/* Resolve the connect addresses of one relay at start-up. */
static int
target_resolve(struct relay_target *tg, char *err, size_t errlen)
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

/* Read rc's auth-file into buf (NUL-terminated), as the other key and
 * config files are read: opened O_NONBLOCK (a FIFO put in its place must
 * not stop start-up or --check in open(2)), then it must be a regular file
 * of mode 0600 or stricter, smaller than bufsize. */
static int
auth_read(const struct config_relay *rc, char *buf, size_t bufsize, char *err,
    size_t errlen)
{
	const char *path = rc->auth_file;
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		snprintf(err, errlen, "[relay \"%s\"] auth-file %s: %s", rc->name, path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "[relay \"%s\"] auth-file %s is not a regular file "
		    "(expected one line user:password)", rc->name, path);
		goto err;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "[relay \"%s\"] auth-file %s has mode %04o: it must not be "
		    "accessible by group or others (chmod 600 %s)", rc->name, path,
		    (unsigned)(st.st_mode & 07777), path);
		goto err;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size >= bufsize) {
		snprintf(err, errlen, "[relay \"%s\"] auth-file %s is larger than %zu bytes "
		    "(expected one line user:password)", rc->name, path, bufsize - 1);
		goto err;
	}
	while (got < bufsize - 1 && (n = read(fd, buf + got, bufsize - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "[relay \"%s\"] auth-file %s: read: %s", rc->name,
			    path, strerror(errno));
			sodium_memzero(buf, bufsize);
			goto err;
		}
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return 0;
err:
	close(fd);
	return -1;
}

static int
target_auth(struct relay_target *tg, char *err, size_t errlen)
{
	char buf[1024], raw[1024];
	char *colon, *nl;
	size_t ulen, plen, rawlen, b64len;

	if (tg->rc->auth_file == NULL)
		return 0;
	if (auth_read(tg->rc, buf, sizeof(buf), err, errlen) < 0)
		return -1;
	if ((nl = strpbrk(buf, "\r\n")) != NULL)
		*nl = '\0';
	if (buf[0] == '\0') {
		sodium_memzero(buf, sizeof(buf));
		snprintf(err, errlen, "[relay \"%s\"] auth-file %s is empty (expected "
		    "user:password)", tg->rc->name, tg->rc->auth_file);
		return -1;
	}
	if ((colon = strchr(buf, ':')) == NULL || colon == buf) {
		sodium_memzero(buf, sizeof(buf));
		snprintf(err, errlen, "[relay \"%s\"] auth-file %s: expected one line user:password",
		    tg->rc->name, tg->rc->auth_file);
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

int
relay_auth_check(const struct config_relay *rc, char *err, size_t errlen)
{
	struct relay_target tg;
	int rv;

	memset(&tg, 0, sizeof(tg));
	tg.rc = rc;
	rv = target_auth(&tg, err, errlen);
	sodium_free(tg.auth_plain);
	return rv;
}

int
relay_targets_init(struct relay_ctx *ctx, char *err, size_t errlen)
{
	const struct config *cfg = ctx->cfg;
	size_t i;

	ctx->ntargets = cfg->nrelays;
	ctx->targets = xcalloc(cfg->nrelays, sizeof(*ctx->targets));
	for (i = 0; i < cfg->nrelays; i++) {
		ctx->targets[i].rc = &cfg->relays[i];
		if ((cfg->relays[i].dane == DANE_MODE_STATIC &&
		    target_resolve(&ctx->targets[i], err, errlen) < 0) ||
		    target_auth(&ctx->targets[i], err, errlen) < 0)
			return -1;
	}
	return 0;
}

static void pool_unlink(struct relay_link *l);

void
relay_targets_free(struct relay_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->ntargets; i++) {
		struct relay_target *tg = &ctx->targets[i];

		while (tg->idle_first != NULL) {
			struct relay_link *l = tg->idle_first;

			pool_unlink(l);
			relay_link_free(&l);
		}
		sodium_free(tg->auth_plain);
		tls_ticket_free(&tg->ticket);
	}
	free(ctx->targets);
	ctx->targets = NULL;
	ctx->ntargets = 0;
}

/* ---- links ---- */

struct relay_link *
relay_link_new(struct relay_ctx *ctx, size_t target, const char *sid)
{
	struct relay_link *l = xcalloc(1, sizeof(*l));

	l->ctx = ctx;
	snprintf(l->sid, sizeof(l->sid), "%s", sid);
	relay_link_reset(l, target);
	return l;
}

void
relay_link_reset(struct relay_link *l, size_t target)
{
	conn_free(&l->conn);
	smtp_reply_parser_free(&l->rp);
	l->rp = smtp_reply_parser_new();
	l->target = target;
	memset(&l->caps, 0, sizeof(l->caps));
	free(l->xc);
	l->xc = NULL;
	l->xc_attrs = 0;
	l->ntxn = 0;
	l->unpoolable = 0;
	l->verified = l->resumed = 0;
	l->matched = -1;
	l->tlsa[0] = l->peer[0] = l->tlsver[0] = l->tlscipher[0] = l->tlsdesc[0] = '\0';
	l->desc[0] = '\0';
}

void
relay_link_drop(struct relay_link *l)
{
	if (l != NULL)
		conn_free(&l->conn);
}

void
relay_link_free(struct relay_link **lp)
{
	struct relay_link *l = *lp;

	if (l == NULL)
		return;
	*lp = NULL;
	conn_free(&l->conn);
	smtp_reply_parser_free(&l->rp);
	free(l->xc);
	free(l);
}

/* QUIT, and close once it is written (or at once when that fails). */
static void
link_quit(struct relay_link **lp, const char *why)
{
	struct relay_link *l = *lp;

	if (l == NULL)
		return;
	log_debug("session=%s relay=%s event=relay-close reason=%s transactions=%u", l->sid,
	    l->ctx->targets[l->target].rc->name, why, l->ntxn);
	if (l->conn != NULL) {
		evbuffer_add_printf(conn_output(l->conn), "QUIT\r\n");
		conn_close_after_flush(&l->conn, NULL, NULL);
	}
	relay_link_free(lp);
}

/* ---- the pool ---- */

static void pool_conn_cb(struct conn *c, enum conn_event ev, void *arg);

static void
pool_unlink(struct relay_link *l)
{
	struct relay_target *tg = &l->ctx->targets[l->target];

	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		tg->idle_first = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	else
		tg->idle_last = l->prev;
	l->prev = l->next = NULL;
	tg->nidle--;
	l->pstate = LINK_IN_USE;
	metrics_gauge_add(MG_RELAY_IDLE, -1);
}

static void
pool_append(struct relay_link *l)
{
	struct relay_target *tg = &l->ctx->targets[l->target];

	l->prev = tg->idle_last;
	l->next = NULL;
	if (tg->idle_last != NULL)
		tg->idle_last->next = l;
	else
		tg->idle_first = l;
	tg->idle_last = l;
	tg->nidle++;
	metrics_gauge_add(MG_RELAY_IDLE, 1);
}

/* Does the relay take every transaction on this link for one client's?
 * With xclient = yes and a relay that offers XCLIENT, every transaction
 * with a known client sends XCLIENT: a link that sent it serves its own
 * session only (Postfix authorises a second XCLIENT by the address the
 * first one set, so it would refuse it), one that did not serves nobody. */
static int
link_fits(const struct relay_link *l, const char *sid, const struct xclient_info *ci)
{
	const struct config_relay *rc = l->ctx->targets[l->target].rc;
	struct xclient_cmds *want;
	size_t i;
	int same;

	if (!rc->xclient || ci == NULL || ci->addr == NULL || !l->caps.xclient)
		return l->xc == NULL;
	if (l->xc == NULL || strcmp(l->sid, sid) != 0)
		return 0;
	/* the same session, still the same identity (HELO may have changed) */
	want = xcalloc(1, sizeof(*want));
	xclient_build(l->xc_attrs, ci, want);
	same = want->n == l->xc->n;
	for (i = 0; same && i < want->n; i++)
		same = strcmp(want->line[i], l->xc->line[i]) == 0;
	free(want);
	return same;
}

struct relay_link *
relay_pool_take(struct relay_ctx *ctx, const char *sid, const struct xclient_info *ci)
{
	size_t i;

	for (i = 0; i < ctx->ntargets; i++) {
		struct relay_link *l, *prev;

		for (l = ctx->targets[i].idle_last; l != NULL; l = prev) {
			prev = l->prev;
			if (l->pstate != LINK_IDLE)
				continue;
			if (!link_fits(l, sid, ci)) {
				if (l->xc != NULL && strcmp(l->sid, sid) == 0) {
					/* the session's identity changed: its old one
					 * is of no use to anyone */
					pool_unlink(l);
					link_quit(&l, "xclient-changed");
				}
				continue;
			}
			pool_unlink(l);
			return l;
		}
	}
	return NULL;
}

int
relay_pool_wants(const struct relay_link *l)
{
	const struct config_relay *rc = l->ctx->targets[l->target].rc;

	return rc->connections > 0 && !(rc->xclient && l->caps.xclient);
}

/* Why a link given back cannot serve again, or NULL. */
static const char *
link_unfit(const struct relay_link *l)
{
	const struct config_relay *rc = l->ctx->targets[l->target].rc;

	if (rc->connections == 0)
		return "connections=0";
	if (l->unpoolable)
		return "probe";
	if (l->ntxn >= rc->max_transactions)
		return "max-transactions";
	if (rc->xclient && l->caps.xclient && l->xc == NULL)
		return "no-xclient";    /* every user would need XCLIENT first */
	if (l->xc != NULL && strcmp(l->sid, l->ctx->ended_sid) == 0)
		return "session-ended"; /* its transaction was freed after the session */
	if (evbuffer_get_length(conn_input(l->conn)) > 0 || smtp_reply_parser_pending(l->rp))
		return "unsolicited-input";
	return NULL;
}

void
relay_pool_put(struct relay_link **lp, int idle, int reset)
{
	struct relay_link *l = *lp;
	struct relay_target *tg;
	const char *why;

	if (l == NULL)
		return;
	*lp = NULL;
	if (l->conn == NULL || !idle) {
		/* mid-command or mid-message: drop without the terminator so
		 * that the relay never delivers a message we did not confirm */
		relay_link_free(&l);
		return;
	}
	if ((why = link_unfit(l)) != NULL) {
		link_quit(&l, why);
		return;
	}
	tg = &l->ctx->targets[l->target];
	l->spare = 0;
	if (tg->nidle >= tg->rc->connections) {
		/* full, after a burst of transactions: a clean link that anyone
		 * may take stays spare-timeout (taken first: the most recently
		 * given back is), so that the next burst finds it instead of
		 * opening a new verified connection; otherwise the least
		 * recently used one goes */
		if (!reset && l->xc == NULL && tg->rc->spare_timeout > 0) {
			l->spare = 1;
		} else {
			struct relay_link *old = tg->idle_first;

			pool_unlink(old);
			link_quit(&old, "pool-full");
		}
	}
	conn_set_cb(l->conn, pool_conn_cb, l);
	conn_set_timeout(l->conn, (unsigned)(l->spare && tg->rc->spare_timeout <
	    tg->rc->idle_timeout ? tg->rc->spare_timeout : tg->rc->idle_timeout));
	pool_append(l);
	if (reset) {
		l->pstate = LINK_RESETTING;
		evbuffer_add_printf(conn_output(l->conn), "RSET\r\n");
		conn_flush(l->conn);
	} else {
		l->pstate = LINK_IDLE;
	}
}

/* An idle link: the RSET reply, the idle timeout, or the relay going away
 * (EOF, 421, anything unsolicited) -- all but the first end it. */
static void
pool_conn_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct relay_link *l = arg;
	struct evbuffer *in = conn_input(c);
	const char *name = l->ctx->targets[l->target].rc->name;

	switch (ev) {
	case CONN_EV_READ:
		while (evbuffer_get_length(in) > 0) {
			size_t len = evbuffer_get_contiguous_space(in), used = 0;
			struct smtp_reply *r = NULL;
			int rv;

			rv = smtp_reply_parser_feed(l->rp, evbuffer_pullup(in, (ssize_t)len), len,
			    &used, &r);
			evbuffer_drain(in, used);
			if (rv == 0 && l->pstate == LINK_RESETTING)
				continue;       /* the RSET reply, in parts */
			if (rv > 0 && l->pstate == LINK_RESETTING && r->code == 250) {
				l->pstate = LINK_IDLE;
				log_debug("session=%s relay=%s event=relay-kept after=rset", l->sid,
				    name);
				smtp_reply_free(&r);
				continue;
			}
			log_info("session=%s relay=%s event=relay-idle-closed reason=\"%s %d\"",
			    l->sid, name, rv < 0 ? "protocol error" : l->pstate == LINK_RESETTING ?
			    "RSET answered" : rv == 0 ? "part of a reply while idle" :
			    "reply while idle", rv > 0 ? r->code : 0);
			smtp_reply_free(&r);
			pool_unlink(l);
			relay_link_free(&l);
			return;
		}
		return;
	case CONN_EV_TIMEOUT: {
		/* (the reason before pool_unlink(), which marks the link in use) */
		const char *why = l->pstate != LINK_IDLE ? "rset-timeout" : l->spare ?
		    "spare-timeout" : "idle-timeout";

		pool_unlink(l);
		link_quit(&l, why);
		return;
	}
	case CONN_EV_EOF:
	case CONN_EV_ERROR:
		log_info("session=%s relay=%s event=relay-idle-closed reason=\"%s\"", l->sid, name,
		    ev == CONN_EV_EOF ? "closed by the relay" : conn_error(c));
		pool_unlink(l);
		relay_link_free(&l);
		return;
	default:
		return;
	}
}

void
relay_ctx_session_end(struct relay_ctx *ctx, const char *sid)
{
	size_t i;

	/* a transaction freed later in this pass (from inside one of its
	 * callbacks) gives its link back after this: see link_unfit() */
	snprintf(ctx->ended_sid, sizeof(ctx->ended_sid), "%s", sid);
	for (i = 0; i < ctx->ntargets; i++) {
		struct relay_link *l, *next;

		for (l = ctx->targets[i].idle_first; l != NULL; l = next) {
			next = l->next;
			if (l->xc != NULL && strcmp(l->sid, sid) == 0) {
				pool_unlink(l);
				link_quit(&l, "session-ended");
			}
		}
	}
}

void
relay_pool_keep_ticket(struct relay_link *l)
{
	struct relay_target *tg = &l->ctx->targets[l->target];
	struct tls_ticket *tk;

	if (tg->resume_off || l->conn == NULL || conn_tls(l->conn) == NULL)
		return;
	if ((tk = tls_ticket_take(conn_tls(l->conn))) == NULL)
		return;
	tls_ticket_free(&tg->ticket);
	tg->ticket = tk;
}
