/* smtp_txn.c — the mail transaction: MAIL, RCPT, DATA and BDAT, signing, relaying
 * and recording. */
#include "smtp_session.h"
#include "auditrec.h"
#include "log.h"
#include "loginmem.h"
#include "metrics.h"
#include "message.h"
#include "dkim.h"
#include "rfc5322.h"
#include "signer_client.h"
#include "slots.h"
#include "spool.h"
#include "tls.h"
#include "util.h"
#include "xclient.h"

#include <errno.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <event2/buffer.h>

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
		log_info("session=%s event=mail from=<%s> %s", s->id, LOGADDR(s->mail_from),
		    relay_txn_describe(s->relay));
		tls_params(conn_tls(s->conn), ver, sizeof(ver), cipher, sizeof(cipher));
		s->atx = auditrec_txn_new(s->id, s->login, s->peer, ver, cipher, s->mail_from);
	} else {
		log_info("session=%s event=mail-refused from=<%s> code=%d enh=%s local=%d", s->id,
		    LOGADDR(s->mail_from), r->code, r->enh, r->local);
		count_refused(r->enh);
		refuse_relay(s, "mail", r);
		txn_reset(s);
	}
	session_set_state(s, S_CMD);
	session_process(s);
	session_release(s);
}

/* MAIL to the relay, with the transaction's slot held. */
static void
mail_relay_start(struct session *s)
{
	struct xclient_info ci;

	memset(&ci, 0, sizeof(ci));
	ci.addr = session_client(s, &ci.port);
	ci.helo = s->helo;
	ci.esmtp = s->esmtp;
	ci.login = s->login;
	ci.destaddr = s->local[0] ? s->local : NULL;
	ci.destport = s->local_port;
	s->relay = relay_txn_start(s->srv->relay, s->id, s->mail_from, s->mail_params, &ci,
	    mail_relay_done, s);
}

/* The transaction's slot is held: it begins, and only now takes its
 * messages-per-hour token, so a MAIL refused before (452 4.3.1 after
 * waiting for a slot, and every earlier check) spent none, and no token is
 * ever given back (a give-back would let the bucket's refill during the
 * wait count twice).  Returns 1 with MAIL on its way to the relay, or 0
 * after 450 4.7.1 with the slot given back and the session in S_CMD. */
static int
mail_txn_begin(struct session *s)
{
	if (!rate_take(s, RATELIMIT_MESSAGES, s->login)) {
		txn_reset(s);
		session_set_state(s, S_CMD);
		return 0;
	}
	mail_relay_start(s);
	return 1;
}

/* A transaction ended in this worker and its slot is this session's (from
 * the loop, slots.h). */
static void
mail_slot_granted(void *arg)
{
	struct session *s = arg;

	session_hold(s);
	s->txn_wait = NULL;
	s->txn_slot = 1;
	metrics_gauge_add(MG_TXN_WAITING, -1);
	metrics_gauge_add(MG_TXN_ACTIVE, 1);
	log_info("session=%s event=transaction-slot from=<%s>", s->id, LOGADDR(s->mail_from));
	if (!mail_txn_begin(s))
		session_process(s);
	session_release(s);
}

void
cmd_mail(struct session *s, const struct smtp_cmd *c)
{
	const struct config *cfg = s->srv->cfg;
	const struct relay_caps *caps = relay_ctx_caps(s->srv->relay);
	char params[256];
	size_t o = 0;

	if (s->login == NULL) {
		/* before AUTH: a client may repeat it at will (counted) */
		refuse_as(s, NULL, "mail", "auth-required", 530, "5.7.0", "Authentication required",
		    1);
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
	s->mail_params = xstrdup(o ? params + 1 : "");
	s->smtputf8 = c->smtputf8;
	s->body_8bit = c->body == SMTP_BODY_8BITMIME;
	session_set_state(s, S_WAIT);
	if (!slots_take(s->srv->txn_slots)) {
		/* the worker has [limits] transactions in progress: MAIL is
		 * answered when one ends (or at the idle timeout) */
		log_info("session=%s event=transaction-wait from=<%s> held=%zu waiting=%zu", s->id,
		    LOGADDR(s->mail_from), slots_held(s->srv->txn_slots), slots_waiting(s->srv->txn_slots));
		s->txn_wait = slots_wait(s->srv->txn_slots, mail_slot_granted, s);
		metrics_gauge_add(MG_TXN_WAITING, 1);
		return;
	}
	s->txn_slot = 1;
	metrics_gauge_add(MG_TXN_ACTIVE, 1);
	mail_txn_begin(s);
}

/* The session's MAIL waited longer than [limits] timeout for a transaction
 * to end: it gets 452 4.3.1 and may try again (nothing was sent to the
 * relay). */
void
mail_wait_expired(struct session *s)
{
	log_info("session=%s event=transaction-wait-timeout from=<%s>", s->id,
	    LOGADDR(s->mail_from));
	count_refused("4.3.1");
	refuse(s, "mail", "transactions-busy", 452, "4.3.1", "Too many messages in progress on "
	    "this server, none ended within %llu seconds; try again later",
	    (unsigned long long)s->srv->cfg->limits.timeout);
	txn_reset(s);
	session_set_state(s, S_CMD);
	session_process(s);
}

static void
rcpt_relay_done(void *arg, const struct relay_result *r)
{
	struct session *s = arg;

	session_hold(s);
	if (r->local) {
		/* the relay leg failed before the relay answered: the RCPT
		 * spends no recipients-per-hour token (given back before the
		 * next command is read); one the relay answered, even with a
		 * refusal, counts */
		rate_give_back(s, RATELIMIT_RECIPIENTS, s->login);
	}
	if (s->atx != NULL)
		auditrec_txn_rcpt(s->atx, s->first_rcpt, r->code, r->enh, r->text);
	if (r->code >= 200 && r->code < 300) {
		s->rcpts_ok++;
		log_info("session=%s event=rcpt to=<%s> code=%d", s->id, LOGADDR(s->first_rcpt),
		    r->code);
		reply_relay(s, r);
	} else {
		log_info("session=%s event=rcpt-refused to=<%s> code=%d enh=%s local=%d", s->id,
		    LOGADDR(s->first_rcpt), r->code, r->enh, r->local);
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

void
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
	params[0] = '\0';
	if (c->notify[0] != '\0')
		o += (size_t)snprintf(params + o, sizeof(params) - o, " NOTIFY=%s", c->notify);
	if (c->orcpt != NULL && o < sizeof(params))
		o += (size_t)snprintf(params + o, sizeof(params) - o, " ORCPT=%s", c->orcpt);
	if (o >= sizeof(params)) {
		reply(s, 501, "5.5.4", "Parameters too long");
		return;
	}
	/* the token is held while the RCPT is at the relay (the next one is
	 * read only after its answer), so pipelined RCPTs never pass the
	 * limit; rcpt_relay_done() gives it back if the relay leg fails */
	if (!rate_take(s, RATELIMIT_RECIPIENTS, s->login))
		return;
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

/* the signer takes every header front accepts, with the fields added here */
_Static_assert(MSG_FIELDS_MAX + 3 <= DKIM_FIELDS_MAX, "front accepts more header fields than "
    "the signer takes");

/* Header fields we add in front of the message: Received always,
 * Message-ID and Date when missing (3 at most).  Nothing of the original
 * is altered. */
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
	    s->id, r->code >= 200 && r->code < 300 ? "relayed" : "relay-refused",
	    LOGADDR(s->mail_from),
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

/* The relay leg is dropped with the session: once the end of the message
 * went to the relay, the relay may deliver it, so its record is written
 * with the outcome unknown -- the record is sent now and outlives the
 * session (recorder_send without a callback, like recorder_cancel). */
void
txn_abandon(struct session *s)
{
	struct relay_facts rf;

	if (s->atx == NULL || s->arq != NULL || !relay_txn_final_pending(s->relay))
		return;		/* nothing at the relay, or recorded already */
	relay_txn_facts(s->relay, &rf);
	auditrec_txn_unknown(s->atx, "session-ended", &rf);
	(void)auditrec_txn_commit(s->srv->audit, s->atx, NULL, NULL);
	log_warn("session=%s event=audit-outcome-unknown reason=session-ended from=<%s> "
	    "rcpts=%zu size=%llu %s: the session ended after the end of the message went to "
	    "the relay, before its final reply; the relay may deliver it", s->id,
	    LOGADDR(s->mail_from), s->rcpts_ok, (unsigned long long)rf.octets,
	    relay_txn_describe(s->relay));
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
		/* front refuses first what the signer refuses (refuse_unsignable_from,
		 * message.c): only a message front never sends gets here */
		refuse(s, "dkim", "dkim-bad-header", 550, "5.6.0", "The message cannot be "
		    "signed with DKIM as it stands (its header section or From field); not "
		    "sent");
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

/* A From the signer would refuse is refused here, by the signer's own rule
 * (rfc5322_from_domain: exactly one address, a domain that can be d=),
 * with the reason; 0 when it can be signed, -1 once refused. */
static int
refuse_unsignable_from(struct session *s, const struct msg_result *mr)
{
	char dom[RFC5322_DOMAIN_MAX];

	if (mr->nfrom == 1 && rfc5322_addr_domain(mr->from[0], dom, sizeof(dom)) == 0)
		return 0;
	count_refused("5.6.0");
	if (mr->nfrom != 1)
		refuse(s, "message", "dkim-bad-header", 550, "5.6.0", "Header From holds %zu "
		    "addresses; this server signs every message with DKIM for the domain of "
		    "the one author address, so From must hold exactly one (name the others in "
		    "Reply-To or Cc)", mr->nfrom);
	else
		refuse(s, "message", "dkim-bad-header", 550, "5.6.0", "Header From address <%s> "
		    "has a domain no DKIM signature can be made for", mr->from[0]);
	return -1;
}

/* The whole message is in; check it and hand it to the signer. */
void
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
	if (refuse_unsignable_from(s, mr) < 0) {
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

void
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
void
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

void
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
