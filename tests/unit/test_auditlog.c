/* test_auditlog.c — the audit log's pure parts: JSON, records, chain
 * verification (every kind of tampering), pseudonyms, the report. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "auditlog.h"
#include "auditlog_report.h"
#include "auditlog_verify.h"
#include "json.h"

/* ---- JSON ---- */

static void
json_ok(const char *text)
{
	struct json *v = NULL;
	char err[200];

	if (json_parse(text, strlen(text), &v, err, sizeof(err)) != 0)
		fail_msg("refused %s: %s", text, err);
	json_free(&v);
}

static void
json_bad(const char *text, size_t len, const char *why)
{
	struct json *v = NULL;
	char err[200] = "";

	if (json_parse(text, len, &v, err, sizeof(err)) == 0)
		fail_msg("accepted %s", text);
	assert_null(v);
	if (why != NULL && strstr(err, why) == NULL)
		fail_msg("%s: message \"%s\" lacks \"%s\"", text, err, why);
}

static void
test_json_accepts(void **state)
{
	json_ok("{}");
	json_ok("[]");
	json_ok(" { \"a\" : [1, -2, true, false, null, \"x\\u00e9\\ud83d\\ude00\"] } ");
	json_ok("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":1}}}}}}}");
	json_ok("9223372036854775807");
	json_ok("-9223372036854775808");
	json_ok("\"caf\xc3\xa9\"");
}

static void
test_json_refuses(void **state)
{
	json_bad("{\"a\":1,\"a\":2}", 13, "duplicate key");
	json_bad("1.5", 3, "only integers");
	json_bad("1e3", 3, "only integers");
	json_bad("01", 2, "malformed number");
	json_bad("9223372036854775808", 19, "out of range");
	json_bad("\"\\u0000\"", 8, "not allowed");
	json_bad("\"\\ud800\"", 8, "surrogate");
	json_bad("\"\\udc00\"", 8, "surrogate");
	json_bad("\"\xc0\xaf\"", 4, "UTF-8");
	json_bad("\"\xed\xa0\x80\"", 5, "UTF-8");
	json_bad("\"a\nb\"", 5, "control");
	json_bad("\"abc", 4, "unterminated");
	json_bad("{\"a\":1} x", 9, "after the value");
	json_bad("[[[[[[[[[1]]]]]]]]]", 19, "deeper");
	json_bad("{\"a\" 1}", 7, "':'");
	json_bad("[1,]", 4, NULL);
	json_bad("", 0, "end of input");
	json_bad("tru", 3, NULL);
	json_bad("\"a\0b\"", 5, "control");
}

/* The writer's output reads back to the same value. */
static void
test_json_roundtrip(void **state)
{
	static const char *const in[] = {
		"{\"k\":\"tab\\there \\\"q\\\" back\\\\slash \\u0001 del\\u007f \\u00e9\"}",
		"[1,-2,true,false,null,{\"x\":[]}]",
	};
	struct json *v = NULL, *v2 = NULL;
	struct jsonw w;
	char err[200];
	size_t i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		assert_int_equal(json_parse(in[i], strlen(in[i]), &v, err, sizeof(err)), 0);
		jsonw_init(&w, 0);
		jsonw_value(&w, v);
		assert_int_equal(json_parse(w.buf, w.len, &v2, err, sizeof(err)), 0);
		jsonw_reset(&w);
		jsonw_value(&w, v2);
		/* canonical: writing the re-read value gives the same text */
		{
			struct jsonw w2;

			jsonw_init(&w2, 0);
			jsonw_value(&w2, v);
			assert_string_equal(w.buf, w2.buf);
			jsonw_free(&w2);
		}
		jsonw_free(&w);
		json_free(&v);
		json_free(&v2);
	}
	/* invalid UTF-8 is written as U+FFFD, so the output always parses */
	jsonw_init(&w, 0);
	jsonw_strn(&w, "a\xff\xc3", 3);
	assert_string_equal(w.buf, "\"a\xef\xbf\xbd\xef\xbf\xbd\"");
	assert_int_equal(json_parse(w.buf, w.len, &v, err, sizeof(err)), 0);
	json_free(&v);
	jsonw_free(&w);
	/* a limit sets overflow instead of growing */
	jsonw_init(&w, 8);
	jsonw_str(&w, "0123456789");
	assert_true(w.overflow);
	jsonw_free(&w);
}

/* ---- a log made here ---- */

struct log {
	char *lines[64];
	size_t n;
	struct alog_chain chain;
	uint8_t pk[ALOG_PK_LEN], sk[ALOG_SK_LEN];
	int64_t t;
};

static void
log_add(struct log *l, int type, const char *body)
{
	struct jsonw w;

	jsonw_init(&w, 0);
	assert_int_equal(alog_encode(&w, &l->chain, type, l->t += 1000, body, strlen(body)), 0);
	l->lines[l->n++] = strdup(w.buf);
	jsonw_free(&w);
}

static void
log_checkpoint(struct log *l, const uint8_t *pk, const uint8_t *sk)
{
	struct jsonw w;

	jsonw_init(&w, 0);
	assert_int_equal(alog_encode_checkpoint(&w, &l->chain, l->t += 1000, 3, pk, sk), 0);
	l->lines[l->n++] = strdup(w.buf);
	jsonw_free(&w);
}

static const char refusal[] = "{\"session\":\"s1\",\"client\":\"192.0.2.1\",\"login\":null,"
    "\"stage\":\"mail\",\"code\":530,\"enh\":\"5.7.0\",\"reason\":\"auth-required\","
    "\"text\":\"Authentication required\"}";

/* 1 open, 2 refusal, 3 refusal, 4 checkpoint, 5 refusal, 6 refusal, 7 checkpoint */
static void
log_make(struct log *l)
{
	memset(l, 0, sizeof(*l));
	l->t = 1767225600000LL;		/* 2026-01-01 */
	crypto_sign_keypair(l->pk, l->sk);
	log_add(l, ALOG_T_OPEN, "{\"reason\":\"new\"}");
	log_add(l, ALOG_T_REFUSAL, refusal);
	log_add(l, ALOG_T_REFUSAL, refusal);
	log_checkpoint(l, l->pk, l->sk);
	log_add(l, ALOG_T_REFUSAL, refusal);
	log_add(l, ALOG_T_REFUSAL, refusal);
	log_checkpoint(l, l->pk, l->sk);
}

static void
log_free(struct log *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->lines[i]);
}

/* Verify lines[0..n) split into files at the given line indexes. */
static struct alog_verdict
verify(char **lines, size_t n, const uint8_t *key, const size_t *splits, size_t nsplits,
    int last_complete)
{
	struct alog_verifier *v = alog_verifier_new(key, key ? 1 : 0);
	struct alog_verdict vd;
	struct json *rec;
	size_t i, s = 0;
	char name[32];

	alog_verifier_file(v, "log.0");
	for (i = 0; i < n; i++) {
		if (s < nsplits && splits[s] == i) {
			snprintf(name, sizeof(name), "log.%zu", ++s);
			alog_verifier_file(v, name);
		}
		rec = alog_verifier_line(v, lines[i], strlen(lines[i]),
		    i + 1 < n || last_complete, NULL);
		json_free(&rec);
	}
	alog_verifier_finish(v, &vd);
	alog_verifier_free(&v);
	return vd;
}

static void
expect_bad(struct alog_verdict vd, uint64_t seq, const char *why)
{
	if (vd.intact)
		fail_msg("tampering not detected (expected record %llu: %s)",
		    (unsigned long long)seq, why);
	if (vd.bad_seq != seq || strstr(vd.why, why) == NULL)
		fail_msg("expected record %llu \"%s\", got record %llu: %s",
		    (unsigned long long)seq, why, (unsigned long long)vd.bad_seq, vd.why);
}

static void
test_intact(void **state)
{
	struct log l;
	struct alog_verdict vd;
	struct json *rec = NULL;
	struct alog_env env;
	char err[200];
	size_t i;

	log_make(&l);
	vd = verify(l.lines, l.n, l.pk, NULL, 0, 1);
	if (!vd.intact)
		fail_msg("%s", vd.why);
	assert_int_equal(vd.records, 7);
	assert_int_equal(vd.checkpoints, 2);
	assert_int_equal(vd.first_seq, 1);
	assert_int_equal(vd.last_seq, 7);
	assert_string_equal(vd.first_time, "2026-01-01T00:00:01.000Z");
	/* without a key: the checkpoints' own key */
	vd = verify(l.lines, l.n, NULL, NULL, 0, 1);
	assert_true(vd.intact);
	assert_false(vd.keys_given);
	/* every line is a record of the schema, envelope first */
	for (i = 0; i < l.n; i++) {
		assert_int_equal(json_parse(l.lines[i], strlen(l.lines[i]), &rec, err,
		    sizeof(err)), 0);
		if (alog_record_check(rec, &env, err, sizeof(err)) != 0)
			fail_msg("%s: %s", l.lines[i], err);
		assert_int_equal(env.seq, i + 1);
		json_free(&rec);
	}
	assert_non_null(strstr(l.lines[0], "{\"v\":4,\"seq\":1,\"time\":\"2026-01-01T00:00:01.000Z\","
	    "\"type\":\"open\",\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\""));
	log_free(&l);
}

static void
test_modified(void **state)
{
	struct log l;
	char *p;

	log_make(&l);
	/* one byte of record 2's body */
	p = strstr(l.lines[1], "192.0.2.1");
	p[8] = '2';
	expect_bad(verify(l.lines, l.n, l.pk, NULL, 0, 1), 2, "was modified");
	log_free(&l);
	/* one byte of record 2's link */
	log_make(&l);
	p = strstr(l.lines[1], "\"prev\":\"");
	p[8] = p[8] == 'a' ? 'b' : 'a';
	expect_bad(verify(l.lines, l.n, l.pk, NULL, 0, 1), 1, "was modified");
	log_free(&l);
	/* the last checkpoint (no record follows it): its signature */
	log_make(&l);
	p = strstr(l.lines[6], "\"records\":3");
	p[10] = '4';
	expect_bad(verify(l.lines, l.n, l.pk, NULL, 0, 1), 7, "bad signature");
	log_free(&l);
}

static void
test_deleted_inserted_swapped(void **state)
{
	struct log l;
	char *tmp, *dup[8];

	log_make(&l);
	free(l.lines[2]);
	memmove(&l.lines[2], &l.lines[3], (l.n - 3) * sizeof(char *));
	l.n--;
	expect_bad(verify(l.lines, l.n, l.pk, NULL, 0, 1), 3, "record 3 is missing");
	log_free(&l);

	log_make(&l);
	tmp = l.lines[1];
	l.lines[1] = l.lines[2];
	l.lines[2] = tmp;
	expect_bad(verify(l.lines, l.n, l.pk, NULL, 0, 1), 2, "record 2 is missing");
	log_free(&l);

	/* a copy of record 2 inserted after record 4 */
	log_make(&l);
	memcpy(dup, l.lines, 4 * sizeof(char *));
	dup[4] = l.lines[1];
	memcpy(dup + 5, l.lines + 4, 3 * sizeof(char *));
	expect_bad(verify(dup, 8, l.pk, NULL, 0, 1), 5, "inserted, repeated or reordered");
	log_free(&l);
}

static void
test_truncated(void **state)
{
	struct log l;

	/* cut after record 5: records 5.. are not signed */
	log_make(&l);
	expect_bad(verify(l.lines, 5, l.pk, NULL, 0, 1), 5, "not covered by a signed checkpoint");
	/* cut in the middle of the last line */
	l.lines[6][20] = '\0';
	expect_bad(verify(l.lines, l.n, l.pk, NULL, 0, 0), 7, "truncated");
	/* before the first checkpoint */
	expect_bad(verify(l.lines, 2, l.pk, NULL, 0, 1), 1, "no signed checkpoint");
	log_free(&l);
}

/* The record before the stop is a checkpoint (as the recorder writes when
 * the records before the stop filled checkpoint-records): 1 to 7 as
 * log_make(), 8 stop, 9 checkpoint.  The final checkpoint cut off leaves
 * the stop uncovered; cut back to record 7 the log is consistent (no chain
 * shows that), but it no longer ends with a stop record, and says so. */
static void
test_truncated_to_a_checkpoint(void **state)
{
	struct log l;
	struct alog_verdict vd;

	log_make(&l);
	vd = verify(l.lines, l.n, l.pk, NULL, 0, 1);
	assert_true(vd.intact);
	assert_false(vd.stopped);
	log_add(&l, ALOG_T_STOP, "{\"reason\":\"signal\",\"status\":0}");
	log_checkpoint(&l, l.pk, l.sk);
	vd = verify(l.lines, l.n, l.pk, NULL, 0, 1);
	if (!vd.intact)
		fail_msg("%s", vd.why);
	assert_true(vd.stopped);
	expect_bad(verify(l.lines, 8, l.pk, NULL, 0, 1), 8,
	    "records 8 to 8 are not covered by a signed checkpoint");
	vd = verify(l.lines, 7, l.pk, NULL, 0, 1);
	assert_true(vd.intact);
	assert_false(vd.stopped);
	assert_int_equal(vd.last_seq, 7);
	log_free(&l);
}

static void
test_other_key(void **state)
{
	struct log l;
	uint8_t pk2[ALOG_PK_LEN], sk2[ALOG_SK_LEN];

	crypto_sign_keypair(pk2, sk2);
	/* the last checkpoint (record 7) signed again with another key: the
	 * chain before it is record 6 */
	log_make(&l);
	free(l.lines[--l.n]);
	l.chain.seq = 6;
	alog_hash(l.lines[5], strlen(l.lines[5]), l.chain.head);
	log_checkpoint(&l, pk2, sk2);
	expect_bad(verify(l.lines, l.n, l.pk, NULL, 0, 1), 7, "signed by another key");
	/* without --public-key the key of the log is taken: intact (hence the
	 * advice to give the key) */
	assert_true(verify(l.lines, l.n, NULL, NULL, 0, 1).intact);
	/* a key in the checkpoint that does not match its signature */
	{
		char b64[64], *p;

		alog_key_b64(l.pk, b64, sizeof(b64));
		p = strstr(l.lines[6], "\"key\":\"") + 7;
		memcpy(p, b64, strlen(b64));
		expect_bad(verify(l.lines, l.n, l.pk, NULL, 0, 1), 7, "bad signature");
	}
	log_free(&l);
}

static void
test_rotation(void **state)
{
	struct log l;
	const size_t split[1] = { 4 };
	struct alog_verdict vd;

	/* file 1: records 1-4 (ends with a checkpoint), file 2: an open record
	 * linking to it, then more */
	log_make(&l);
	while (l.n > 4)
		free(l.lines[--l.n]);
	l.chain.seq = 4;
	alog_hash(l.lines[3], strlen(l.lines[3]), l.chain.head);
	log_add(&l, ALOG_T_OPEN, "{\"reason\":\"sighup\"}");
	log_add(&l, ALOG_T_REFUSAL, refusal);
	log_checkpoint(&l, l.pk, l.sk);
	vd = verify(l.lines, l.n, l.pk, split, 1, 1);
	if (!vd.intact)
		fail_msg("%s", vd.why);
	assert_int_equal(vd.files, 2);
	/* the second file alone: starts at its open record */
	vd = verify(l.lines + 4, 3, l.pk, NULL, 0, 1);
	assert_true(vd.intact);
	assert_true(vd.partial_start);
	/* a middle file missing: records 5-7 of a three-file log */
	{
		char *three[8];
		const size_t s2[1] = { 4 };

		memcpy(three, l.lines, 4 * sizeof(char *));
		l.chain.seq = 7;
		alog_hash(l.lines[6], strlen(l.lines[6]), l.chain.head);
		log_add(&l, ALOG_T_OPEN, "{\"reason\":\"size\"}");
		log_checkpoint(&l, l.pk, l.sk);
		three[4] = l.lines[7];
		three[5] = l.lines[8];
		expect_bad(verify(three, 6, l.pk, s2, 1, 1), 5, "a file of the rotation is missing");
	}
	/* the first lines of a file deleted: the log starts mid-file */
	expect_bad(verify(l.lines + 5, 2, l.pk, NULL, 0, 1), 6, "were deleted");
	log_free(&l);
}

static void
test_not_records(void **state)
{
	struct log l;
	char *bad[2];

	log_make(&l);
	bad[0] = l.lines[0];
	bad[1] = "{\"v\":1,\"seq\":2,\"time\":\"2026-01-01T00:00:02.000Z\",\"type\":\"refusal\","
	    "\"prev\":\"00\",\"x\":1}";
	expect_bad(verify(bad, 2, l.pk, NULL, 0, 1), 2, "prev is not");
	bad[1] = "{\"seq\":2}";
	expect_bad(verify(bad, 2, l.pk, NULL, 0, 1), 2, "envelope");
	bad[1] = "not json";
	expect_bad(verify(bad, 2, l.pk, NULL, 0, 1), 2, "bad JSON");
	/* an unknown member in a body */
	bad[1] = l.lines[1];
	{
		char *p = strstr(l.lines[1], "\"stage\"");

		memcpy(p, "\"stagx\"", 7);
		expect_bad(verify(bad, 2, l.pk, NULL, 0, 1), 2, "unknown member stagx");
	}
	log_free(&l);
}

static void
test_time(void **state)
{
	char t[ALOG_TIME_LEN + 1];
	int64_t ms;

	alog_time_format(0, t);
	assert_string_equal(t, "1970-01-01T00:00:00.000Z");
	alog_time_format(1709251199999LL, t);
	assert_string_equal(t, "2024-02-29T23:59:59.999Z");
	assert_int_equal(alog_time_parse(t, &ms), 0);
	assert_int_equal(ms, 1709251199999LL);
	assert_int_equal(alog_time_parse("2024-02-29", &ms), 0);
	assert_int_equal(ms, 1709164800000LL);
	assert_int_equal(alog_time_parse("2024-03-01T00:00:00Z", &ms), 0);
	assert_int_equal(ms, 1709251200000LL);
	assert_int_equal(alog_time_parse("2023-02-29", &ms), -1);
	assert_int_equal(alog_time_parse("2024-13-01", &ms), -1);
	assert_int_equal(alog_time_parse("2024-01-01T24:00:00Z", &ms), -1);
	assert_int_equal(alog_time_parse("2024-01-01 00:00:00", &ms), -1);
	assert_int_equal(alog_time_parse("1969-12-31", &ms), -1);
}

static void
test_body_check(void **state)
{
	struct json *b = NULL;
	char err[300];

	assert_int_equal(json_parse(refusal, strlen(refusal), &b, err, sizeof(err)), 0);
	assert_int_equal(alog_body_check(ALOG_T_REFUSAL, b, 1, err, sizeof(err)), 0);
	assert_int_equal(alog_body_check(ALOG_T_AUTH, b, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "member login must be string, not null"));
	assert_int_equal(alog_body_check(ALOG_T_TXN, b, 1, err, sizeof(err)), -1);
	json_free(&b);
	/* recorder-only members from a client */
	assert_int_equal(json_parse("{\"reason\":\"new\"}", 16, &b, err, sizeof(err)), 0);
	assert_int_equal(alog_body_check(ALOG_T_OPEN, b, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "recorder only"));
	assert_int_equal(alog_body_check(ALOG_T_OPEN, b, 0, err, sizeof(err)), 0);
	json_free(&b);
	assert_int_equal(json_parse("{\"reason\":1,\"status\":0}", 23, &b, err, sizeof(err)), 0);
	assert_int_equal(alog_body_check(ALOG_T_STOP, b, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "reason must be string"));
	json_free(&b);
	assert_true(alog_type_allowed(ALOG_T_TXN, ALOG_FROM_FRONT));
	assert_false(alog_type_allowed(ALOG_T_START, ALOG_FROM_FRONT));
	assert_false(alog_type_allowed(ALOG_T_CHECKPOINT, ALOG_FROM_FRONT));
	assert_false(alog_type_allowed(ALOG_T_CHECKPOINT, ALOG_FROM_PARENT));
	assert_true(alog_type_allowed(ALOG_T_STOP, ALOG_FROM_PARENT));
}

static void
test_pseudonymize(void **state)
{
	uint8_t key[ALOG_PSEUDO_KEY_LEN], key2[ALOG_PSEUDO_KEY_LEN];
	struct json *b = NULL;
	struct jsonw w;
	char err[300], h[40], h2[40];

	memset(key, 7, sizeof(key));
	memset(key2, 8, sizeof(key2));
	assert_int_equal(json_parse(refusal, strlen(refusal), &b, err, sizeof(err)), 0);
	alog_pseudonymize(ALOG_T_REFUSAL, b, key);
	assert_int_equal(alog_body_check(ALOG_T_REFUSAL, b, 1, err, sizeof(err)), 0);
	alog_pseudonym(key, "192.0.2.1", 9, h);
	assert_string_equal(json_get_str(b, "client"), h);
	assert_null(json_get(b, "text"));		/* free text dropped */
	assert_string_equal(json_get_str(b, "reason"), "auth-required");
	jsonw_init(&w, 0);
	jsonw_value(&w, b);
	assert_null(strstr(w.buf, "192.0.2.1"));
	jsonw_free(&w);
	json_free(&b);
	/* keyed: the same value, another key, another pseudonym; stable per key */
	alog_pseudonym(key2, "192.0.2.1", 9, h2);
	assert_string_not_equal(h, h2);
	alog_pseudonym(key, "192.0.2.1", 9, h2);
	assert_string_equal(h, h2);
	assert_int_equal(strlen(h), 34);
}

/* ---- the report ---- */

static const char txn_ok[] = "{\"session\":\"s\",\"login\":\"alice\",\"client\":\"c\","
    "\"client_tls\":{\"version\":\"TLS1.3\",\"cipher\":\"TLS_AES_256_GCM_SHA384\"},\"from\":\"f\","
    "\"rcpts\":[{\"addr\":\"r\",\"code\":250,\"enh\":\"2.1.5\"}],\"message_id\":\"<m>\","
    "\"size\":10,\"sha256\":null,\"dkim\":[{\"d\":\"x\",\"s\":\"ed\",\"a\":\"ed25519-sha256\","
    "\"bh\":\"b\"},{\"d\":\"x\",\"s\":\"rsa\",\"a\":\"rsa-sha256\",\"bh\":\"b\"}],"
    "\"relay\":{\"name\":\"r\",\"address\":\"a\",\"tls\":{\"version\":\"TLS1.3\",\"cipher\":\"c\"},"
    "\"dane\":{\"verdict\":\"ok-ee\",\"tlsa\":\"3 1 1 00\",\"dnssec\":\"pinned\"}},"
    "\"final\":{\"code\":250,\"enh\":\"2.0.0\",\"local\":false},\"latency_ms\":%d}";
static const char txn_unsigned[] = "{\"session\":\"u\",\"login\":\"bob\",\"client\":\"c\","
    "\"client_tls\":{\"version\":\"TLS1.2\",\"cipher\":\"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\"},"
    "\"from\":\"f\",\"rcpts\":[],\"message_id\":null,\"size\":10,\"sha256\":null,\"dkim\":[],"
    "\"relay\":null,\"final\":{\"code\":250,\"enh\":\"2.0.0\",\"local\":false},\"latency_ms\":5}";
static const char txn_failed[] = "{\"session\":\"f\",\"login\":\"alice\",\"client\":\"c\","
    "\"client_tls\":{\"version\":\"TLS1.3\",\"cipher\":\"x\"},\"from\":\"f\",\"rcpts\":[],"
    "\"message_id\":null,\"size\":0,\"sha256\":null,\"dkim\":[],\"relay\":null,"
    "\"final\":{\"code\":451,\"enh\":\"4.4.2\",\"text\":\"lost\",\"local\":true},\"latency_ms\":1}";
static const char auth_fail[] = "{\"session\":\"a\",\"client\":\"192.0.2.9\",\"login\":\"mallory\","
    "\"mechanism\":\"PLAIN\",\"result\":\"fail\",\"lockout\":false,\"closed\":true,\"code\":535,"
    "\"enh\":\"5.7.8\"}";

static void
feed(struct alog_report *r, struct alog_verifier *v, struct log *l, size_t from)
{
	struct alog_env env;
	struct json *rec;
	size_t i;

	for (i = from; i < l->n; i++) {
		rec = alog_verifier_line(v, l->lines[i], strlen(l->lines[i]), 1, &env);
		assert_non_null(rec);
		alog_report_add(r, rec, &env);
		json_free(&rec);
	}
}

/* The report of the whole log l, verified with key (NULL: its own). */
static struct alog_verdict
report_make(struct alog_report *r, struct log *l, const uint8_t *key)
{
	struct alog_verifier *v = alog_verifier_new(key, key != NULL);
	struct alog_verdict vd;

	alog_verifier_file(v, "log");
	alog_report_init(r, 0, 0);
	feed(r, v, l, 0);
	alog_verifier_finish(v, &vd);
	alog_verifier_free(&v);
	alog_report_finish(r, &vd);
	return vd;
}

static void
test_report(void **state)
{
	struct log l;
	struct alog_report r;
	struct alog_verifier *v;
	struct alog_verdict vd;
	char body[4096];
	int i;
	FILE *f;
	char *out = NULL;
	size_t outlen = 0;

	log_make(&l);
	for (i = 1; i <= 10; i++) {
		snprintf(body, sizeof(body), txn_ok, i * 10);
		log_add(&l, ALOG_T_TXN, body);
	}
	log_add(&l, ALOG_T_TXN, txn_unsigned);
	log_add(&l, ALOG_T_TXN, txn_failed);
	log_add(&l, ALOG_T_AUTH, auth_fail);
	log_add(&l, ALOG_T_GAP, "{\"lost\":3,\"first\":\"2026-01-01T00:00:00.000Z\","
	    "\"last\":\"2026-01-01T00:00:01.000Z\"}");
	log_checkpoint(&l, l.pk, l.sk);
	vd = report_make(&r, &l, l.pk);
	assert_true(vd.intact);
	assert_int_equal(r.txns, 12);
	assert_int_equal(r.relayed, 11);
	assert_int_equal(r.failed, 1);
	assert_int_equal(r.nrefusals, 4);
	assert_int_equal(r.dkim_signed, 10);
	assert_int_equal(r.dkim_exc.n, 1);
	assert_string_equal(r.dkim_exc.v[0].session, "u");
	assert_int_equal(r.dane_ok, 10);
	assert_int_equal(r.dane_exc.n, 1);
	assert_int_equal(alog_counts_get(&r.dkim_algos, "ed25519-sha256")->n[0], 10);
	assert_int_equal(r.auth[ALOG_AUTH_FAIL], 1);
	assert_int_equal(r.auth[ALOG_AUTH_CLOSED], 1);
	assert_int_equal(alog_counts_get(&r.auth_logins, "mallory")->n[ALOG_AUTH_FAIL], 1);
	assert_int_equal(r.lost, 3);
	/* latencies 5, 10..100: nearest rank */
	assert_int_equal(r.nlatency, 11);
	assert_int_equal(r.lat_p50, 50);
	assert_int_equal(r.lat_max, 100);
	assert_false(alog_report_ok(&r));
	/* the renderings say so */
	f = open_memstream(&out, &outlen);
	alog_report_text(&r, f);
	fclose(f);
	assert_non_null(strstr(out, "Verdict: INTACT"));
	assert_non_null(strstr(out, "NOT KEPT"));
	assert_non_null(strstr(out, "90.9%"));
	free(out);
	f = open_memstream(&out, &outlen);
	alog_report_html(&r, f);
	fclose(f);
	assert_non_null(strstr(out, "<svg"));
	assert_null(strstr(out, "<script"));
	free(out);
	f = open_memstream(&out, &outlen);
	alog_report_json(&r, f);
	fclose(f);
	{
		struct json *j = NULL;
		char err[200];

		assert_int_equal(json_parse(out, outlen - 1, &j, err, sizeof(err)), 0);
		json_free(&j);
	}
	free(out);
	alog_report_clear(&r);
	/* a period that leaves everything out */
	alog_report_init(&r, 1, 2);
	v = alog_verifier_new(l.pk, 1);
	alog_verifier_file(v, "log");
	feed(&r, v, &l, 0);
	alog_verifier_finish(v, &vd);
	alog_verifier_free(&v);
	alog_report_finish(&r, &vd);
	assert_int_equal(r.records, 0);
	assert_int_equal(r.txns, 0);
	alog_report_clear(&r);
	log_free(&l);
}

/* Under bsi-tr-03108 each published requirement lists its evidence: the
 * start's checks and the log's own; what maps to none is listed apart. */
static void
test_requirements(void **state)
{
	static const char start[] = "{\"version\":\"0\",\"hostname\":\"h\","
	    "\"config_sha256\":\"00\",\"profile\":\"bsi-tr-03108\",\"self_audit\":{"
	    "\"result\":\"pass\",\"checks\":3,\"passed\":[\"tls.priority\",\"dnssec.validation\"],"
	    "\"failed\":[],\"warned\":[\"relay.sink.dane\"]},\"required\":true,"
	    "\"pseudonymized\":false,\"key\":\"x\"}";
	struct log l;
	struct alog_report r;
	struct alog_reqs q;
	char body[4096];
	size_t i, j;
	int found_tls = 0, found_log = 0, found_dane = 0, unmapped_dnssec = 0;

	log_make(&l);
	log_add(&l, ALOG_T_START, start);
	snprintf(body, sizeof(body), txn_ok, 5);
	log_add(&l, ALOG_T_TXN, body);
	log_checkpoint(&l, l.pk, l.sk);
	(void)report_make(&r, &l, NULL);
	assert_string_equal(r.profile, "bsi-tr-03108");
	alog_report_requirements(&r, &q);
	assert_true(q.have_profile);
	for (i = 0; i < q.n; i++)
		for (j = 0; j < q.v[i].nitems; j++) {
			const struct alog_item *it = &q.v[i].items[j];

			if (strcmp(q.v[i].ref, "TR-03108-1-EMSP-SERVER-MUA-SMTP") == 0 && it->check &&
			    strcmp(it->id, "tls.priority") == 0 && strcmp(it->status, "pass") == 0)
				found_tls = 1;
			if (strcmp(q.v[i].ref, "TR-03108-1-EMSP-SERVER-MUA-SMTP") == 0 &&
			    !it->check && strcmp(it->id, "log.client.tls") == 0)
				found_log = 1;
			if (strcmp(q.v[i].ref, "TR-03108-1-EMSP-CLIENT-CETI-DANE") == 0 &&
			    strcmp(it->id, "relay.sink.dane") == 0 && strcmp(it->status, "warn") == 0)
				found_dane = 1;
			assert_null(strstr(q.v[i].ref, "TBD"));
		}
	for (i = 0; i < q.nunmapped; i++)
		if (strcmp(q.unmapped[i].id, "dnssec.validation") == 0)
			unmapped_dnssec = 1;
	assert_true(found_tls && found_log && found_dane && unmapped_dnssec);
	alog_reqs_clear(&q);
	alog_report_clear(&r);
	log_free(&l);
}

/* Schema version 2: summaries (count, first, last) count as many in the
 * report; recheck records are listed and a check that failed one since
 * the start is a failure in the requirements; version 1 records still
 * read, without what version 2 added. */
static void
test_v2(void **state)
{
	static const char start[] = "{\"version\":\"0\",\"hostname\":\"h\","
	    "\"config_sha256\":\"00\",\"profile\":\"bsi-tr-03108\",\"self_audit\":{"
	    "\"result\":\"pass\",\"checks\":2,\"passed\":[\"dane.own.submissions\","
	    "\"tls.priority\"],\"failed\":[],\"warned\":[]},\"required\":true,"
	    "\"pseudonymized\":false,\"key\":\"x\"}";
	static const char summary[] = "{\"session\":\"s2\",\"client\":\"192.0.2.1\","
	    "\"login\":null,\"stage\":\"connect\",\"code\":421,\"enh\":\"4.7.0\",\"reason\":"
	    "\"too-many-connections-from-address\",\"count\":500,\"first\":"
	    "\"2026-01-01T00:00:01.000Z\",\"last\":\"2026-01-01T00:00:59.000Z\"}";
	static const char locked[] = "{\"session\":\"a\",\"client\":\"192.0.2.9\",\"login\":"
	    "\"mallory\",\"mechanism\":\"PLAIN\",\"result\":\"locked\",\"lockout\":true,"
	    "\"closed\":false,\"code\":454,\"enh\":\"4.7.0\",\"count\":7,\"first\":"
	    "\"2026-01-01T00:00:01.000Z\",\"last\":\"2026-01-01T00:00:02.000Z\"}";
	static const char failed[] = "{\"check\":\"dane.own.submissions\",\"result\":\"failed\","
	    "\"status\":\"fail\",\"required\":true,\"summary\":\"no TLSA record\",\"remedy\":"
	    "\"publish it\"}";
	static const char *const bad[] = {
		"{\"count\":0,\"first\":\"2026-01-01T00:00:01.000Z\",\"last\":\"2026-01-01T00:00:01.000Z\"}",
		"{\"count\":2,\"first\":\"2026-01-01T00:00:01.000Z\"}",
		"{\"count\":2,\"first\":\"yesterday\",\"last\":\"2026-01-01T00:00:01.000Z\"}",
	};
	struct log l;
	struct alog_report r;
	struct alog_verdict vd;
	struct alog_reqs q;
	struct alog_env env;
	struct json *rec = NULL, *b = NULL;
	char err[300], body[1024], *line;
	size_t i, j;
	int dane = 0, tls = 0;

	log_make(&l);
	log_add(&l, ALOG_T_START, start);
	log_add(&l, ALOG_T_REFUSAL, summary);
	log_add(&l, ALOG_T_AUTH, locked);
	log_add(&l, ALOG_T_RECHECK, failed);
	log_add(&l, ALOG_T_RECHECK, "{\"check\":\"dane.own.submissions\",\"result\":"
	    "\"recovered\",\"status\":\"pass\",\"required\":true,\"summary\":\"ok\"}");
	log_checkpoint(&l, l.pk, l.sk);
	vd = report_make(&r, &l, l.pk);
	assert_true(vd.intact);
	assert_int_equal(r.nrefusals, 4 + 500);
	assert_int_equal(r.auth[ALOG_AUTH_LOCKED], 7);
	assert_int_equal(alog_counts_get(&r.auth_clients, "192.0.2.9")->n[ALOG_AUTH_LOCKED], 7);
	assert_int_equal(r.nrechecks, 2);
	assert_string_equal(r.rechecks[0].remedy, "publish it");
	assert_string_equal(r.rechecks[1].result, "recovered");
	alog_report_requirements(&r, &q);
	for (i = 0; i <= q.n; i++) {
		const struct alog_item *it = i < q.n ? q.v[i].items : q.unmapped;
		size_t n = i < q.n ? q.v[i].nitems : q.nunmapped;

		for (j = 0; j < n; j++) {
			if (strcmp(it[j].id, "dane.own.submissions") == 0)
				dane = strcmp(it[j].status, "fail") == 0 ? 1 : -1;
			if (strcmp(it[j].id, "tls.priority") == 0)
				tls = strcmp(it[j].status, "pass") == 0 ? 1 : -1;
		}
	}
	assert_int_equal(dane, 1);
	assert_int_equal(tls, 1);
	alog_reqs_clear(&q);
	alog_report_clear(&r);
	/* version 1: a plain refusal still reads; a summary or a recheck not */
	for (i = 1; i < l.n; i++) {
		line = strdup(l.lines[i]);
		memcpy(strstr(line, "\"v\":4"), "\"v\":1", 5);
		assert_int_equal(json_parse(line, strlen(line), &rec, err, sizeof(err)), 0);
		if (strstr(line, "\"count\"") != NULL || strstr(line, "recheck") != NULL) {
			assert_int_equal(alog_record_check(rec, &env, err, sizeof(err)), -1);
			assert_non_null(strstr(err, "schema version 1"));
		} else if (alog_record_check(rec, &env, err, sizeof(err)) != 0)
			fail_msg("%s: %s", line, err);
		json_free(&rec);
		free(line);
	}
	memcpy(strstr(l.lines[1], "\"v\":4"), "\"v\":5", 5);
	assert_int_equal(json_parse(l.lines[1], strlen(l.lines[1]), &rec, err, sizeof(err)), 0);
	assert_int_equal(alog_record_check(rec, &env, err, sizeof(err)), -1);
	json_free(&rec);
	/* a summary needs all three, a count of at least 1, times */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), "%.*s,%s", (int)strlen(refusal) - 1, refusal, bad[i] + 1);
		assert_int_equal(json_parse(body, strlen(body), &b, err, sizeof(err)), 0);
		assert_int_equal(alog_body_check(ALOG_T_REFUSAL, b, 1, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "summary"));
		json_free(&b);
	}
	assert_true(alog_type_allowed(ALOG_T_RECHECK, ALOG_FROM_FRONT));
	assert_false(alog_type_allowed(ALOG_T_RECHECK, ALOG_FROM_PARENT));
	log_free(&l);
}

/* Schema version 3: a summary per kind ("client": "*", clients) counts as
 * many as it stands for in the report; its form is checked; pseudonyms
 * leave its "*"; versions 1 and 2 may not have it. */
static void
test_v3(void **state)
{
	static const char wild[] = "{\"session\":\"s9\",\"client\":\"*\",\"login\":null,"
	    "\"stage\":\"session\",\"code\":421,\"enh\":\"4.7.0\",\"reason\":\"protocol-errors\","
	    "\"text\":\"Too many errors\",\"count\":2990,\"first\":\"2026-01-01T00:00:01.000Z\","
	    "\"last\":\"2026-01-01T00:00:59.000Z\",\"clients\":2990}";
	static const char wild_auth[] = "{\"session\":\"a\",\"client\":\"*\",\"login\":"
	    "\"mallory\",\"mechanism\":\"PLAIN\",\"result\":\"locked\",\"lockout\":true,"
	    "\"closed\":false,\"code\":454,\"enh\":\"4.7.0\",\"count\":70000,\"first\":"
	    "\"2026-01-01T00:00:01.000Z\",\"last\":\"2026-01-01T00:00:02.000Z\","
	    "\"clients\":16384,\"clients_capped\":true}";
	static const char *const bad[] = {
		",\"clients\":3}",				/* not a summary */
		",\"count\":2,\"first\":\"2026-01-01T00:00:01.000Z\","
		    "\"last\":\"2026-01-01T00:00:01.000Z\",\"clients\":3}",	/* > count */
		",\"count\":2,\"first\":\"2026-01-01T00:00:01.000Z\","
		    "\"last\":\"2026-01-01T00:00:01.000Z\",\"clients\":0}",
		",\"count\":2,\"first\":\"2026-01-01T00:00:01.000Z\","
		    "\"last\":\"2026-01-01T00:00:01.000Z\",\"clients\":1,\"clients_capped\":false}",
		",\"count\":2,\"first\":\"2026-01-01T00:00:01.000Z\","
		    "\"last\":\"2026-01-01T00:00:01.000Z\",\"clients_capped\":true}",
	};
	uint8_t key[ALOG_PSEUDO_KEY_LEN];
	struct log l;
	struct alog_report r;
	struct alog_verdict vd;
	struct alog_env env;
	struct json *rec = NULL, *b = NULL;
	char err[300], body[1024], h[40];
	size_t i;

	log_make(&l);
	log_add(&l, ALOG_T_REFUSAL, refusal);
	log_add(&l, ALOG_T_REFUSAL, wild);
	log_add(&l, ALOG_T_AUTH, wild_auth);
	log_checkpoint(&l, l.pk, l.sk);
	assert_non_null(strstr(l.lines[1], "\"v\":4,"));
	vd = report_make(&r, &l, l.pk);
	assert_true(vd.intact);
	assert_int_equal(r.nrefusals, 4 + 1 + 2990);	/* log_make's, ours */
	assert_int_equal(r.auth[ALOG_AUTH_LOCKED], 70000);
	assert_int_equal(alog_counts_get(&r.auth_clients, "*")->n[ALOG_AUTH_LOCKED], 70000);
	alog_report_clear(&r);
	/* versions 1 and 2 have no summary per kind */
	for (i = 1; i <= 2; i++) {
		memcpy(strstr(l.lines[8], "\"v\":"), i == 1 ? "\"v\":1" : "\"v\":2", 5);
		assert_int_equal(json_parse(l.lines[8], strlen(l.lines[8]), &rec, err,
		    sizeof(err)), 0);
		assert_int_equal(alog_record_check(rec, &env, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "clients"));
		json_free(&rec);
	}
	/* clients: only in a summary, with client "*", 1 to count; capped
	 * only as true and only with clients */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* wild up to its count, then bad[i] */
		snprintf(body, sizeof(body), "%.*s%s", (int)(strstr(wild, ",\"count\"") - wild),
		    wild, bad[i]);
		assert_int_equal(json_parse(body, strlen(body), &b, err, sizeof(err)), 0);
		if (alog_body_check(ALOG_T_REFUSAL, b, 1, err, sizeof(err)) != -1)
			fail_msg("accepted: %s", body);
		json_free(&b);
	}
	snprintf(body, sizeof(body), "%s", wild);
	memcpy(strstr(body, "\"client\":\"*\""), "\"client\":\"x\"", 12);
	assert_int_equal(json_parse(body, strlen(body), &b, err, sizeof(err)), 0);
	assert_int_equal(alog_body_check(ALOG_T_REFUSAL, b, 1, err, sizeof(err)), -1);
	json_free(&b);
	/* pseudonyms: the login is hashed, the "*" stays */
	memset(key, 7, sizeof(key));
	assert_int_equal(json_parse(wild_auth, strlen(wild_auth), &b, err, sizeof(err)), 0);
	alog_pseudonymize(ALOG_T_AUTH, b, key);
	assert_int_equal(alog_body_check(ALOG_T_AUTH, b, 1, err, sizeof(err)), 0);
	assert_string_equal(json_get_str(b, "client"), "*");
	alog_pseudonym(key, "mallory", 7, h);
	assert_string_equal(json_get_str(b, "login"), h);
	json_free(&b);
	log_free(&l);
}

/* Schema version 4: a transaction whose final outcome is unknown (the
 * session ended after the end of the message went to the relay, before
 * its final reply: auditrec_txn_unknown) is counted apart in the report,
 * neither relayed nor failed, and listed; its form is checked; versions 1
 * to 3 may not have it. */
static void
test_v4(void **state)
{
	static const char unknown[] = "\"final\":{\"code\":null,\"enh\":null,\"text\":\"no reply\","
	    "\"local\":true,\"unknown\":\"session-ended\"}";
	static const char *const bad[] = {
		"\"final\":{\"code\":250,\"enh\":null,\"local\":true,\"unknown\":\"session-ended\"}",
		"\"final\":{\"code\":null,\"enh\":\"2.0.0\",\"local\":true,\"unknown\":\"session-ended\"}",
		"\"final\":{\"code\":null,\"enh\":null,\"local\":false,\"unknown\":\"session-ended\"}",
		"\"final\":{\"code\":null,\"enh\":null,\"local\":true,\"unknown\":\"relayed\"}",
		"\"final\":{\"code\":null,\"enh\":null,\"local\":true}",
		"\"final\":{\"code\":250,\"enh\":null,\"local\":false}",
	};
	struct log l;
	struct alog_report r;
	struct alog_verdict vd;
	struct alog_env env;
	struct json *rec = NULL, *b = NULL;
	char err[300], ok[2048], body[2048];
	const char *fin;
	size_t i, at;

	snprintf(ok, sizeof(ok), txn_ok, 7);
	fin = strstr(ok, "\"final\":");
	snprintf(body, sizeof(body), "%.*s%s,\"latency_ms\":7}", (int)(fin - ok), ok, unknown);
	log_make(&l);
	log_add(&l, ALOG_T_TXN, ok);
	at = l.n;
	log_add(&l, ALOG_T_TXN, body);
	log_checkpoint(&l, l.pk, l.sk);
	vd = report_make(&r, &l, l.pk);
	assert_true(vd.intact);
	assert_int_equal(r.txns, 2);
	assert_int_equal(r.relayed, 1);
	assert_int_equal(r.failed, 0);
	assert_int_equal(r.unknown, 1);
	assert_int_equal(r.unknown_exc.n, 1);
	assert_int_equal(r.unknown_exc.v[0].seq, at + 1);
	assert_non_null(strstr(r.unknown_exc.v[0].what, "outcome unknown (session-ended)"));
	assert_non_null(strstr(r.unknown_exc.v[0].what, "<m>"));
	assert_int_equal(r.dkim_signed, 1);	/* counted with the relayed only */
	alog_report_clear(&r);
	/* versions 1 to 3 have no unknown outcome */
	for (i = 1; i <= 3; i++) {
		memcpy(strstr(l.lines[at], "\"v\":"), i == 1 ? "\"v\":1" : i == 2 ? "\"v\":2" :
		    "\"v\":3", 5);
		assert_int_equal(json_parse(l.lines[at], strlen(l.lines[at]), &rec, err,
		    sizeof(err)), 0);
		assert_int_equal(alog_record_check(rec, &env, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "unknown"));
		json_free(&rec);
	}
	/* code and enh null only with unknown, which is session-ended and local */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), "%.*s%s,\"latency_ms\":7}", (int)(fin - ok), ok,
		    bad[i]);
		assert_int_equal(json_parse(body, strlen(body), &b, err, sizeof(err)), 0);
		if (alog_body_check(ALOG_T_TXN, b, 1, err, sizeof(err)) != -1)
			fail_msg("accepted: %s", body);
		json_free(&b);
	}
	log_free(&l);
}

static void
test_share(void **state)
{
	char s[32];

	alog_share(0, 0, s, sizeof(s));
	assert_string_equal(s, "-");
	alog_share(5, 5, s, sizeof(s));
	assert_string_equal(s, "100%");
	alog_share(9999, 10000, s, sizeof(s));
	assert_string_equal(s, "99.9%");	/* never rounded up to 100% */
	alog_share(1, 3, s, sizeof(s));
	assert_string_equal(s, "33.3%");
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_json_accepts),
	cmocka_unit_test(test_json_refuses),
	cmocka_unit_test(test_json_roundtrip),
	cmocka_unit_test(test_intact),
	cmocka_unit_test(test_modified),
	cmocka_unit_test(test_deleted_inserted_swapped),
	cmocka_unit_test(test_truncated),
	cmocka_unit_test(test_truncated_to_a_checkpoint),
	cmocka_unit_test(test_other_key),
	cmocka_unit_test(test_rotation),
	cmocka_unit_test(test_not_records),
	cmocka_unit_test(test_time),
	cmocka_unit_test(test_body_check),
	cmocka_unit_test(test_pseudonymize),
	cmocka_unit_test(test_report),
	cmocka_unit_test(test_requirements),
	cmocka_unit_test(test_share),
	cmocka_unit_test(test_v2),
	cmocka_unit_test(test_v3),
	cmocka_unit_test(test_v4),
};

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
