/* smtp_auth.c — SMTP AUTH (PLAIN, LOGIN) checked by the keeper, with lockout and
 * the failure delay. */
#include "smtp_session.h"
#include "auditrec.h"
#include "connlimit.h"
#include "keeper_client.h"
#include "log.h"
#include "loginmem.h"
#include "metrics.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <event2/event.h>

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

/* An AUTH answered without a password check (locked, busy, the keeper gone,
 * or the check cancelled after waiting too long): 454 4.7.0, and a client
 * may repeat it at will. */
static void
auth_unchecked(struct session *s, int result, uint64_t waited_ms, const char *why)
{
	char esc[128];

	metrics_count(MF_AUTH, result == KEEPER_AUTH_LOCKED ? MA_LOCKED : result ==
	    KEEPER_AUTH_BUSY ? MA_BUSY : MA_ERROR);
	log_warn("session=%s event=auth peer=%s login=%s result=%s waited-ms=%llu%s", s->id,
	    s->peer, log_value(esc, sizeof(esc), s->auth_user, strlen(s->auth_user)),
	    keeper_auth_result_name(result), (unsigned long long)waited_ms, why);
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
}

/* The check has waited [limits] timeout for the keeper (session_limit()):
 * cancelled -- one still queued costs no Argon2id -- and answered as a
 * full queue is: the server failed for now, not the client's password
 * (RFC 4954 6).  The session goes on with the auth-timeout it had left. */
void
auth_wait_expired(struct session *s)
{
	uint64_t waited = mono_us() - s->auth_sent_us;

	keeper_cancel(&s->authreq);
	s->auth_waited_us += waited;
	session_arm_limit(s);
	/* the idle timer ([limits] timeout too) counts from our reply */
	conn_set_timeout(s->conn, (unsigned)s->srv->cfg->limits.timeout);
	auth_unchecked(s, KEEPER_AUTH_BUSY, waited / 1000,
	    ": no answer within [limits] timeout, check cancelled");
}

static void
auth_result(struct session *s, int result, unsigned int flags)
{
	struct timeval tv;
	uint64_t waited = mono_us() - s->auth_sent_us;
	unsigned ms;

	s->authreq = NULL;
	/* the auth-timeout runs again, without this wait */
	s->auth_waited_us += waited;
	session_arm_limit(s);
	if (result == KEEPER_AUTH_LOCKED || result == KEEPER_AUTH_BUSY || result == KEEPER_DEAD) {
		auth_unchecked(s, result, waited / 1000, "");
		return;
	}
	metrics_count(MF_AUTH, result == KEEPER_AUTH_OK ? MA_OK : MA_FAIL);
	if (result == KEEPER_AUTH_OK) {
		uint64_t maxs = config_login_rates(s->srv->cfg, s->auth_user)->sessions_per_login;
		char text[160];

		/* verified=cache: the keeper's auth cache answered, no Argon2id
		 * (the keeper counts its hits and misses) */
		log_info("session=%s event=auth peer=%s login=%s result=ok verified=%s "
		    "waited-ms=%llu", s->id, s->peer, s->auth_user, flags & KEEPER_AUTH_F_CACHED ?
		    "cache" : "argon2id", (unsigned long long)(waited / 1000));
		unsigned open = 0;

		/* open sessions of the login in every worker, this one
		 * included (connlimit.h); closed ones stop counting */
		if (maxs > 0) {
			s->lslot = connlimit_put(CL_LOGIN, s->auth_user, 1);
			(void)connlimit_sum(CL_LOGIN, s->auth_user, &open);
		}
		if (maxs > 0 && (s->lslot < 0 || open > maxs)) {
			connlimit_del(s->lslot);
			s->lslot = -1;
			/* Postfix/Dovecot style: a concurrency limit closes the
			 * connection with 421; the client retries later */
			log_warn("session=%s event=rate-limit limit=sessions-per-login login=%s "
			    "peer=%s sessions=%u", s->id, s->auth_user, s->peer, open > 0 ? open - 1 : 0);
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
		log_warn("session=%s event=auth peer=%s login=%s result=fail waited-ms=%llu", s->id,
		    s->peer, log_value(esc, sizeof(esc), s->auth_user, strlen(s->auth_user)),
		    (unsigned long long)(waited / 1000));
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
auth_done(void *arg, int result, unsigned int flags)
{
	struct session *s = arg;

	session_hold(s);
	auth_result(s, result, flags);
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
	/* the client has done its part: the auth-timeout waits with it */
	s->auth_sent_us = mono_us();
	session_arm_limit(s);
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
	/* more octets than the mechanism's buffer holds: RFC 4954 6 */
	if (len >= 4 && len % 4 == 0 && len / 4 * 3 - (size_t)(line[len - 1] == '=') -
	    (size_t)(line[len - 2] == '=') > outlen - 1) {
		reply(s, 500, "5.5.6", "Authentication Exchange line is too long (at most %zu "
		    "octets decoded)", outlen - 1);
		return -1;
	}
	if (smtp_base64_decode(line, len, out, outlen - 1, &n) < 0) {
		reply(s, 501, "5.5.2", "Invalid base64 data");
		return -1;
	}
	out[n] = '\0';
	return (ssize_t)n;
}

void
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

void
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

void
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
