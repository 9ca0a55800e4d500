/* test_auditrec.c — the bodies front and the parent send to the recorder:
 * DKIM tags, transaction records (schema, size budget). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <poll.h>
#include <unistd.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "auditlog.h"
#include "auditrec.h"
#include "json.h"
#include "proc.h"
#include "recorder.h"
#include "relay.h"

static void
dkim_seen(void *arg, const char *d, const char *s, const char *a, const char *bh)
{
	char *out = arg;

	snprintf(out + strlen(out), 400 - strlen(out), "[%s|%s|%s|%s]", d, s, a, bh);
}

static void
test_dkim_tags(void **state)
{
	char out[400] = "";

	auditrec_dkim_tags("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
	    "\td=lab.test; s=ed; t=1; h=From:To;\r\n\tbh=abc\r\n\tdef=; b=XYZ\r\n"
	    "dkim-signature: v=1; a=rsa-sha256; d=lab.test; s=rsa;\r\n bh=QQ==; b=zz\r\n", dkim_seen,
	    out);
	assert_string_equal(out, "[lab.test|ed|ed25519-sha256|abcdef=][lab.test|rsa|rsa-sha256|QQ==]");
}

/* A txn body as front builds it validates against the schema. */
static void
test_txn_body(void **state)
{
	struct auditrec_txn *tx;
	struct relay_facts rf;
	struct json *b = NULL;
	char err[300], *body, addr[64];
	size_t len, i;

	tx = auditrec_txn_new("0011223344556677", "alice@lab.test", "127.0.0.1", "TLS1.3",
	    "TLS_AES_256_GCM_SHA384", "alice@lab.test");
	auditrec_txn_rcpt(tx, "rcpt@remote.test", 250, "2.1.5", "OK");
	auditrec_txn_rcpt(tx, "nobody@remote.test", 550, "5.1.1", "No such user");
	auditrec_txn_message(tx, "<id@lab.test>", "DKIM-Signature: v=1; a=ed25519-sha256; "
	    "d=lab.test; s=ed; bh=abc=; b=x\r\n");
	memset(&rf, 0, sizeof(rf));
	rf.name = "sink";
	snprintf(rf.address, sizeof(rf.address), "127.0.0.1:2525");
	snprintf(rf.tls_version, sizeof(rf.tls_version), "TLS1.3");
	snprintf(rf.tls_cipher, sizeof(rf.tls_cipher), "TLS_AES_128_GCM_SHA256");
	rf.dane = "ok-ee";
	snprintf(rf.tlsa, sizeof(rf.tlsa), "3 1 1 00");
	rf.dnssec = "pinned";
	rf.octets = 1234;
	rf.have_sha256 = 1;
	auditrec_txn_final(tx, 250, "2.0.0", "Queued", 0, &rf);
	body = auditrec_txn_body(tx, &len);
	assert_int_equal(json_parse(body, len, &b, err, sizeof(err)), 0);
	if (alog_body_check(ALOG_T_TXN, b, 1, err, sizeof(err)) != 0)
		fail_msg("%s: %s", body, err);
	assert_int_equal(json_get(b, "rcpts")->n, 2);
	assert_int_equal(json_get(b, "dkim")->n, 1);
	json_free(&b);
	free(body);
	/* so many recipients that they do not fit: counted */
	for (i = 0; i < 2000; i++) {
		snprintf(addr, sizeof(addr), "recipient-number-%zu@a-long-domain.example", i);
		auditrec_txn_rcpt(tx, addr, 250, "2.1.5", "Recipient OK, a long text here");
	}
	body = auditrec_txn_body(tx, &len);
	assert_true(len < ALOG_BODY_MAX);
	assert_int_equal(json_parse(body, len, &b, err, sizeof(err)), 0);
	assert_int_equal(alog_body_check(ALOG_T_TXN, b, 1, err, sizeof(err)), 0);
	assert_non_null(json_get(b, "rcpts_omitted"));
	json_free(&b);
	free(body);
	auditrec_txn_free(&tx);
	assert_null(tx);
	auditrec_txn_free(&tx);
}

/* No final reply awaited (the session ended after the end of the message
 * went to the relay): code and enh null, local, why; the relay's facts
 * and the message's hash stay; the verifier's checks accept it. */
static void
test_txn_body_unknown(void **state)
{
	struct auditrec_txn *tx;
	struct relay_facts rf;
	struct json *b = NULL;
	const struct json *fin;
	char err[300], *body;
	size_t len;

	tx = auditrec_txn_new("0011223344556677", "alice@lab.test", "127.0.0.1", "TLS1.3",
	    "TLS_AES_256_GCM_SHA384", "alice@lab.test");
	auditrec_txn_rcpt(tx, "rcpt@remote.test", 250, "2.1.5", "OK");
	auditrec_txn_message(tx, "<id@lab.test>", NULL);
	memset(&rf, 0, sizeof(rf));
	rf.name = "sink";
	rf.dane = "ok-ee";
	rf.dnssec = "pinned";
	rf.octets = 99;
	rf.have_sha256 = 1;
	auditrec_txn_unknown(tx, "session-ended", &rf);
	body = auditrec_txn_body(tx, &len);
	assert_int_equal(json_parse(body, len, &b, err, sizeof(err)), 0);
	if (alog_body_check(ALOG_T_TXN, b, 1, err, sizeof(err)) != 0)
		fail_msg("%s: %s", body, err);
	fin = json_get(b, "final");
	assert_int_equal(json_get(fin, "code")->type, JSON_NULL);
	assert_int_equal(json_get(fin, "enh")->type, JSON_NULL);
	assert_true(json_get(fin, "local")->b);
	assert_string_equal(json_get_str(fin, "unknown"), "session-ended");
	assert_non_null(json_get_str(b, "sha256"));
	assert_string_equal(json_get_str(json_get(b, "relay"), "name"), "sink");
	json_free(&b);
	free(body);
	auditrec_txn_free(&tx);
}

/* The recorder's messages: what encodes decodes to the same, and every
 * truncation and extension of a payload is refused. */
static void
test_codecs(void **state)
{
	uint8_t buf[256], big[ALOG_BODY_MAX + 64];
	const uint8_t *body;
	size_t len, n;
	uint64_t seq;
	long k;
	int type, st, wr;

	k = recorder_rec_encode(buf, sizeof(buf), ALOG_T_AUTH, "{}", 2);
	assert_true(k > 0);
	assert_int_equal(recorder_rec_decode(buf, (size_t)k, &type, &body, &len), 0);
	assert_int_equal(type, ALOG_T_AUTH);
	assert_int_equal(len, 2);
	assert_memory_equal(body, "{}", 2);
	for (n = 0; n < (size_t)k; n++)
		assert_int_equal(recorder_rec_decode(buf, n, &type, &body, &len), -1);
	assert_int_equal(recorder_rec_decode(buf, (size_t)k + 1, &type, &body, &len), -1);
	buf[0] = 0;
	assert_int_equal(recorder_rec_decode(buf, (size_t)k, &type, &body, &len), -1);
	buf[0] = ALOG_T_MAX;
	assert_int_equal(recorder_rec_decode(buf, (size_t)k, &type, &body, &len), -1);
	assert_int_equal(recorder_rec_encode(buf, sizeof(buf), 0, "{}", 2), -1);
	memset(big, 'x', sizeof(big));
	assert_int_equal(recorder_rec_encode(big, sizeof(big), ALOG_T_TXN, (char *)big,
	    ALOG_BODY_MAX + 1), -1);
	k = recorder_ack_encode(buf, sizeof(buf), RECORDER_QUEUED, 0, 77);
	assert_true(k > 0);
	assert_int_equal(recorder_ack_decode(buf, (size_t)k, &st, &wr, &seq), 0);
	assert_int_equal(st, RECORDER_QUEUED);
	assert_int_equal(wr, 0);
	assert_int_equal(seq, 77);
	for (n = 0; n < (size_t)k; n++)
		assert_int_equal(recorder_ack_decode(buf, n, &st, &wr, &seq), -1);
	buf[0] = RECORDER_STATUS_MAX + 1;
	assert_int_equal(recorder_ack_decode(buf, (size_t)k, &st, &wr, &seq), -1);
	buf[0] = 0;
	buf[1] = 2;
	assert_int_equal(recorder_ack_decode(buf, (size_t)k, &st, &wr, &seq), -1);
	assert_int_equal(recorder_ack_encode(buf, sizeof(buf), RECORDER_DEAD, 1, 0), -1);
	assert_string_equal(recorder_status_name(RECORDER_LOST), "lost");
	assert_string_equal(recorder_status_name(RECORDER_TIMEOUT), "timeout");
}

/* ---- front's client against a recorder played here ---- */

struct seen {
	int calls, status, dead;
};

static void
on_status(void *arg, int status)
{
	struct seen *s = arg;

	s->calls++;
	s->status = status;
}

static void
on_dead(void *arg)
{
	((struct seen *)arg)->dead++;
}

/* Read one record the client sent; returns its id. */
static uint32_t
peer_read(int fd, int want_type)
{
	static struct proc_msg m;
	const uint8_t *body;
	size_t len;
	int type;

	assert_int_equal(proc_recv(fd, &m, NULL), 1);
	assert_int_equal(m.type, PROC_AUDIT_REC);
	assert_int_equal(recorder_rec_decode(m.payload, m.len, &type, &body, &len), 0);
	assert_int_equal(type, want_type);
	return m.id;
}

static void
peer_ack(int fd, uint32_t id, int status, int writable)
{
	uint8_t buf[32];
	long n = recorder_ack_encode(buf, sizeof(buf), status, writable, 9);

	assert_int_equal(proc_send(fd, PROC_AUDIT_ACK, id, buf, (size_t)n, -1), 0);
}

static void
loop_once(struct event_base *base)
{
	event_base_loop(base, EVLOOP_ONCE);
}

static void
test_client(void **state)
{
	struct event_base *base = event_base_new();
	struct recorder_client *rc;
	struct recorder_req *rq;
	struct seen a = { 0, 0, 0 }, b = { 0, 0, 0 }, d = { 0, 0, 0 };
	uint8_t state_msg = 1;
	uint32_t id;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	rc = recorder_client_new(base, sv[0], on_dead, &d);
	assert_true(recorder_writable(rc));
	/* an answer comes from the loop, never from inside the call */
	rq = recorder_send(rc, ALOG_T_TXN, "{}", 2, on_status, &a);
	assert_non_null(rq);
	assert_int_equal(a.calls, 0);
	assert_int_equal(recorder_pending(rc), 1);
	id = peer_read(sv[1], ALOG_T_TXN);
	peer_ack(sv[1], id + 1000, RECORDER_WRITTEN, 1);	/* stale: dropped */
	peer_ack(sv[1], id, RECORDER_QUEUED, 0);
	while (a.calls == 0)
		loop_once(base);
	assert_int_equal(a.status, RECORDER_QUEUED);
	assert_false(recorder_writable(rc));	/* not writable: refuse new transactions */
	/* fire and forget; then the log works again */
	assert_null(recorder_send(rc, ALOG_T_REFUSAL, "{}", 2, NULL, NULL));
	(void)peer_read(sv[1], ALOG_T_REFUSAL);
	assert_int_equal(proc_send(sv[1], PROC_AUDIT_STATE, 0, &state_msg, 1, -1), 0);
	while (!recorder_writable(rc))
		loop_once(base);
	/* a cancelled request is never answered */
	rq = recorder_send(rc, ALOG_T_AUTH, "{}", 2, on_status, &b);
	recorder_cancel(&rq);
	assert_null(rq);
	peer_ack(sv[1], peer_read(sv[1], ALOG_T_AUTH), RECORDER_WRITTEN, 1);
	/* the recorder goes away: what is pending fails, dead_cb once */
	rq = recorder_send(rc, ALOG_T_TXN, "{}", 2, on_status, &b);
	close(sv[1]);
	while (d.dead == 0)
		loop_once(base);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.status, RECORDER_DEAD);
	assert_false(recorder_writable(rc));
	/* later requests fail through the loop too */
	b.calls = 0;
	rq = recorder_send(rc, ALOG_T_TXN, "{}", 2, on_status, &b);
	assert_int_equal(b.calls, 0);
	while (b.calls == 0)
		loop_once(base);
	assert_int_equal(b.status, RECORDER_DEAD);
	assert_int_equal(d.dead, 1);
	recorder_client_free(&rc);
	assert_null(rc);
	recorder_client_free(&rc);
	event_base_free(base);
}

/* A recorder that does not read: frames wait in a bounded queue, then the
 * records are refused as busy (and the log counts as not written). */
static void
test_client_queue_bound(void **state)
{
	struct event_base *base = event_base_new();
	struct recorder_client *rc;
	struct seen a = { 0, 0, 0 }, d = { 0, 0, 0 };
	char body[4000];
	int sv[2], i;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	rc = recorder_client_new(base, sv[0], on_dead, &d);
	memset(body, ' ', sizeof(body));
	body[0] = '{';
	body[sizeof(body) - 1] = '}';
	for (i = 0; i < RECORDER_QUEUE_MAX + 400; i++)
		(void)recorder_send(rc, ALOG_T_REFUSAL, body, sizeof(body), on_status, &a);
	while (a.calls == 0)
		loop_once(base);
	assert_int_equal(a.status, RECORDER_BUSY);
	assert_false(recorder_writable(rc));
	assert_int_equal(d.dead, 0);
	recorder_client_free(&rc);
	close(sv[1]);
	event_base_free(base);
}

/* The end of a test whose records were all answered: no callback was
 * called, the log counts as written; everything freed. */
static void
client_done_quietly(struct event_base *base, struct recorder_client **rcp, int peer,
    const struct seen *a)
{
	assert_int_equal(a->calls, 0);
	assert_true(recorder_writable(*rcp));
	recorder_client_free(rcp);
	close(peer);
	event_base_free(base);
}

/* Bulk records (refusals) never take the places transaction records need:
 * with the recorder not reading, at most RECORDER_BULK_MAX of them wait,
 * and a transaction record after them is still queued, not refused as
 * busy; once answered, there is room again. */
static void
test_client_bulk_bound(void **state)
{
	struct event_base *base = event_base_new();
	struct recorder_client *rc;
	struct seen a = { 0, 0, 0 }, d = { 0, 0, 0 };
	char body[4000];
	uint32_t id;
	int sv[2], n = 0, i;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	rc = recorder_client_new(base, sv[0], on_dead, &d);
	memset(body, ' ', sizeof(body));
	body[0] = '{';
	body[sizeof(body) - 1] = '}';
	for (i = 0; i < RECORDER_QUEUE_MAX * 2 && recorder_bulk_room(rc); i++, n++)
		recorder_send_bulk(rc, ALOG_T_REFUSAL, body, sizeof(body));
	assert_int_equal(n, RECORDER_BULK_MAX);
	assert_false(recorder_bulk_room(rc));
	/* transaction and AUTH records still have their places */
	for (i = 0; i < RECORDER_QUEUE_MAX - RECORDER_BULK_MAX; i++)
		(void)recorder_send(rc, ALOG_T_TXN, body, sizeof(body), on_status, &a);
	for (i = 0; i < 20; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(a.calls, 0);
	assert_true(recorder_writable(rc));
	/* the recorder reads and answers the refusals: room again (the
	 * client sends the rest of its queue as the socket drains) */
	for (i = 0; i < n; i++) {
		struct pollfd pfd = { sv[1], POLLIN, 0 };

		while (poll(&pfd, 1, 0) == 0)
			event_base_loop(base, EVLOOP_NONBLOCK);
		id = peer_read(sv[1], ALOG_T_REFUSAL);
		peer_ack(sv[1], id, RECORDER_WRITTEN, 1);
	}
	while (!recorder_bulk_room(rc))
		loop_once(base);
	client_done_quietly(base, &rc, sv[1], &a);
}

/* A cancelled record still goes to the log: only its callback goes.  With
 * the socket full it waits in the client's queue behind 4000-octet
 * refusals; cancelled there (its session ended), it used to be taken out
 * of the queue, so a relayed message whose client had gone lost its
 * transaction record.  The recorder reads everything: the record is there,
 * and its callback is never called. */
static void
test_client_cancel_keeps_the_record(void **state)
{
	struct event_base *base = event_base_new();
	struct recorder_client *rc;
	struct recorder_req *rq;
	struct seen a = { 0, 0, 0 }, d = { 0, 0, 0 };
	char body[4000];
	int sv[2], i, txns = 0, refusals = 0;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	rc = recorder_client_new(base, sv[0], on_dead, &d);
	memset(body, ' ', sizeof(body));
	body[0] = '{';
	body[sizeof(body) - 1] = '}';
	/* more than the socket holds (208 KiB by default): the rest is queued */
	for (i = 0; i < RECORDER_BULK_MAX; i++)
		recorder_send_bulk(rc, ALOG_T_REFUSAL, body, sizeof(body));
	rq = recorder_send(rc, ALOG_T_TXN, "{}", 2, on_status, &a);
	recorder_cancel(&rq);
	assert_null(rq);
	while (refusals + txns < RECORDER_BULK_MAX + 1) {
		struct pollfd pfd = { sv[1], POLLIN, 0 };
		static struct proc_msg m;
		const uint8_t *b;
		size_t len;
		int type;

		for (i = 0; i < 1000 && poll(&pfd, 1, 0) == 0; i++)
			event_base_loop(base, EVLOOP_NONBLOCK);
		assert_int_equal(poll(&pfd, 1, 0), 1);
		assert_int_equal(proc_recv(sv[1], &m, NULL), 1);
		assert_int_equal(recorder_rec_decode(m.payload, m.len, &type, &b, &len), 0);
		if (type == ALOG_T_TXN)
			txns++;
		else
			refusals++;
		peer_ack(sv[1], m.id, RECORDER_WRITTEN, 1);
	}
	assert_int_equal(txns, 1);
	assert_int_equal(refusals, RECORDER_BULK_MAX);
	while (recorder_pending(rc) > 0)
		loop_once(base);
	client_done_quietly(base, &rc, sv[1], &a);
}

/* Records sent without a callback still count: a lost one makes the log
 * not written until the recorder says it is again; a malformed state
 * message is the recorder's death. */
static void
test_client_unasked(void **state)
{
	struct event_base *base = event_base_new();
	struct recorder_client *rc;
	struct seen d = { 0, 0, 0 };
	uint8_t bad_state[2] = { 1, 0 }, good_state = 1;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	rc = recorder_client_new(base, sv[0], on_dead, &d);
	assert_null(recorder_send(rc, ALOG_T_AUTH, "{}", 2, NULL, NULL));
	assert_int_equal(recorder_pending(rc), 1);
	/* the disk is full and the backlog too: the record is lost */
	peer_ack(sv[1], peer_read(sv[1], ALOG_T_AUTH), RECORDER_LOST, 0);
	while (recorder_pending(rc) > 0)
		loop_once(base);
	assert_false(recorder_writable(rc));
	assert_int_equal(proc_send(sv[1], PROC_AUDIT_STATE, 0, &good_state, 1, -1), 0);
	while (!recorder_writable(rc))
		loop_once(base);
	assert_int_equal(proc_send(sv[1], PROC_AUDIT_STATE, 0, bad_state, 2, -1), 0);
	while (d.dead == 0)
		loop_once(base);
	assert_false(recorder_writable(rc));
	recorder_client_free(&rc);
	close(sv[1]);
	event_base_free(base);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_client),
	cmocka_unit_test(test_client_queue_bound),
	cmocka_unit_test(test_client_bulk_bound),
	cmocka_unit_test(test_client_cancel_keeps_the_record),
	cmocka_unit_test(test_client_unasked),
	cmocka_unit_test(test_codecs),
	cmocka_unit_test(test_dkim_tags),
	cmocka_unit_test(test_txn_body),
	cmocka_unit_test(test_txn_body_unknown),
};

int
main(void)
{
	return cmocka_run_group_tests(tests, NULL, NULL);
}
