/* test_auditagg.c — counting the audit records a client can repeat at will:
 * the first of a kind per key is sent, the rest counted into one summary
 * per interval; room for the bulk class; the table's bound; the bound on
 * records naming one client, beyond which records are counted per kind
 * ("client": "*", count, clients). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "auditagg.h"
#include "auditlog.h"
#include "json.h"

#define MIN	60000
#define T0	1798761600000LL		/* 2027-01-01T00:00:00.000Z */

struct sent {
	int room;
	int n;
	int type[64];
	char *body[64];
};

static int
room_cb(void *arg)
{
	return ((struct sent *)arg)->room;
}

static void
emit_cb(void *arg, int type, const char *body, size_t len)
{
	struct sent *s = arg;

	assert_true(s->n < 64);
	s->type[s->n] = type;
	s->body[s->n++] = strndup(body, len);
}

static void
sent_clear(struct sent *s)
{
	int i;

	for (i = 0; i < s->n; i++)
		free(s->body[i]);
	s->n = 0;
}

/* flood_max: records naming one client a minute (the bound on keys). */
static struct auditagg *
agg_bounded(struct sent *s, size_t max, uint32_t flood_max)
{
	struct auditagg_out out = { room_cb, emit_cb, s };

	memset(s, 0, sizeof(*s));
	s->room = 1;
	return auditagg_new(max, MIN, flood_max, &out);
}

static struct auditagg *
agg(struct sent *s, size_t max)
{
	return agg_bounded(s, max, 1000);
}

/* A refusal body of session and client (a static buffer). */
static const char *
refusal_body(const char *session, const char *client)
{
	static char b[300];

	snprintf(b, sizeof(b), "{\"session\":\"%s\",\"client\":\"%s\",\"login\":null,"
	    "\"stage\":\"connect\",\"code\":421,\"enh\":\"4.7.0\",\"reason\":"
	    "\"too-many-connections-from-address\",\"text\":\"Too many\"}", session, client);
	return b;
}

static const char *
body(const char *session)
{
	return refusal_body(session, "192.0.2.1");
}

static int64_t
member_int(const char *text, const char *key)
{
	struct json *j = NULL;
	char err[200];
	int64_t v = -1;

	assert_int_equal(json_parse(text, strlen(text), &j, err, sizeof(err)), 0);
	(void)json_get_int(j, key, &v);
	json_free(&j);
	return v;
}

static void
assert_valid_refusal(const char *text)
{
	struct json *j = NULL;
	char err[200];

	assert_int_equal(json_parse(text, strlen(text), &j, err, sizeof(err)), 0);
	if (alog_body_check(ALOG_T_REFUSAL, j, 1, err, sizeof(err)) != 0)
		fail_msg("%s: %s", text, err);
	json_free(&j);
}

/* At stop: every count goes out, room or not, n records; nothing left. */
static void
flush_expect(struct auditagg *a, struct sent *s, int64_t now, int n)
{
	sent_clear(s);
	auditagg_flush(a, now);
	assert_int_equal(s->n, n);
	assert_int_equal(auditagg_size(a), 0);
}

/* s->body[i] is a summary per kind of count records from clients keys. */
static void
assert_per_kind(const struct sent *s, int i, int64_t count, int64_t clients)
{
	assert_valid_refusal(s->body[i]);
	assert_non_null(strstr(s->body[i], "\"client\":\"*\""));
	assert_int_equal(member_int(s->body[i], "count"), count);
	assert_int_equal(member_int(s->body[i], "clients"), clients);
}

/* A flood from one key: the first sent, the rest counted; one summary per
 * interval; a quiet interval forgets the key. */
static void
test_flood(void **state)
{
	struct sent s;
	struct auditagg *a = agg(&s, 16);
	int i;

	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "connect", "192.0.2.1", 1, body("a"),
	    strlen(body("a")), T0), AUDITAGG_SENT);
	for (i = 0; i < 1000; i++)
		assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "connect", "192.0.2.1", 1,
		    body(i == 0 ? "b" : "c"), strlen(body("b")), T0 + 10 + i), AUDITAGG_COUNTED);
	/* another key and another kind are their own */
	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "connect", "192.0.2.2", 1, body("d"),
	    strlen(body("d")), T0), AUDITAGG_SENT);
	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "session", "192.0.2.1", 1, body("e"),
	    strlen(body("e")), T0), AUDITAGG_SENT);
	assert_int_equal(s.n, 3);
	assert_int_equal(auditagg_size(a), 3);
	auditagg_tick(a, T0 + MIN - 1);
	assert_int_equal(s.n, 3);
	auditagg_tick(a, T0 + MIN);
	assert_int_equal(s.n, 4);
	assert_non_null(strstr(s.body[3], "\"session\":\"b\""));
	assert_int_equal(member_int(s.body[3], "count"), 1000);
	assert_non_null(strstr(s.body[3], "\"first\":\"2027-01-01T00:00:00.010Z\""));
	assert_non_null(strstr(s.body[3], "\"last\":\"2027-01-01T00:00:01.009Z\""));
	assert_valid_refusal(s.body[3]);
	/* the two quiet ones are forgotten, the flooding key counts anew */
	assert_int_equal(auditagg_size(a), 1);
	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "connect", "192.0.2.2", 1, body("f"),
	    strlen(body("f")), T0 + MIN + 1), AUDITAGG_SENT);
	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "connect", "192.0.2.1", 1, body("g"),
	    strlen(body("g")), T0 + MIN + 1), AUDITAGG_COUNTED);
	/* a minute without any: forgotten, the next one is sent again */
	auditagg_tick(a, T0 + 2 * MIN);
	assert_int_equal(s.n, 6);
	assert_int_equal(member_int(s.body[5], "count"), 1);
	auditagg_tick(a, T0 + 3 * MIN + 1);
	assert_int_equal(auditagg_size(a), 0);
	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "connect", "192.0.2.1", 1, body("h"),
	    strlen(body("h")), T0 + 3 * MIN + 2), AUDITAGG_SENT);
	sent_clear(&s);
	auditagg_free(&a);
	assert_null(a);
	auditagg_free(&a);
}

/* Without room even the first is counted, and any record too; a record
 * that is no flood goes out at the next tick with room. */
static void
test_room(void **state)
{
	struct sent s;
	struct auditagg *a = agg(&s, 16);

	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "mail", "192.0.2.1", 0, body("a"),
	    strlen(body("a")), T0), AUDITAGG_SENT);
	assert_int_equal(auditagg_size(a), 0);
	s.room = 0;
	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "mail", "192.0.2.1", 0, body("b"),
	    strlen(body("b")), T0 + 1), AUDITAGG_COUNTED);
	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "mail", "192.0.2.1", 0, body("c"),
	    strlen(body("c")), T0 + 2), AUDITAGG_COUNTED);
	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "connect", "192.0.2.1", 1, body("d"),
	    strlen(body("d")), T0 + 3), AUDITAGG_COUNTED);
	auditagg_tick(a, T0 + 5);
	assert_int_equal(s.n, 1);
	s.room = 1;
	auditagg_tick(a, T0 + 6);
	assert_int_equal(s.n, 2);
	assert_int_equal(member_int(s.body[1], "count"), 2);
	assert_non_null(strstr(s.body[1], "\"session\":\"b\""));
	/* the flood one waits for its interval */
	assert_int_equal(auditagg_size(a), 1);
	auditagg_tick(a, T0 + MIN + 3);
	assert_int_equal(s.n, 3);
	assert_int_equal(member_int(s.body[2], "count"), 1);
	sent_clear(&s);
	auditagg_free(&a);
}

/* The table's bound: quiet entries make way; counted ones are summed up
 * first when there is room; without room the record is counted per kind
 * (before, it was dropped). */
static void
test_bound(void **state)
{
	struct sent s;
	struct auditagg *a = agg(&s, 3);
	char key[32];
	int i;

	for (i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "192.0.2.%d", i);
		assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "connect", key, 1, body("a"),
		    strlen(body("a")), T0 + i), AUDITAGG_SENT);
	}
	assert_int_equal(auditagg_size(a), 3);
	/* the three held keys repeat: counted */
	for (i = 7; i < 10; i++) {
		snprintf(key, sizeof(key), "192.0.2.%d", i);
		assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "connect", key, 1, body("b"),
		    strlen(body("b")), T0 + 20 + i), AUDITAGG_COUNTED);
	}
	sent_clear(&s);
	/* a new key: the least recently seen is summed up and makes way */
	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "connect", "192.0.2.100", 1, body("c"),
	    strlen(body("c")), T0 + 40), AUDITAGG_SENT);
	assert_int_equal(s.n, 2);
	assert_int_equal(member_int(s.body[0], "count"), 1);
	assert_int_equal(auditagg_size(a), 3);
	/* without room and nothing quiet: counted per kind, nothing dropped */
	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "connect", "192.0.2.100", 1, body("d"),
	    strlen(body("d")), T0 + 41), AUDITAGG_COUNTED);
	s.room = 0;
	assert_int_equal(auditagg_note(a, ALOG_T_REFUSAL, "connect", "192.0.2.200", 1, body("e"),
	    strlen(body("e")), T0 + 42), AUDITAGG_COUNTED);
	assert_int_equal(auditagg_dropped(a), 0);
	flush_expect(a, &s, T0 + 43, 4);
	for (i = 0; i < s.n; i++)
		assert_valid_refusal(s.body[i]);
	assert_per_kind(&s, 3, 1, 1);
	sent_clear(&s);
	auditagg_free(&a);
}

/* A clock stepped back ends the interval (nothing waits for ever). */
static void
test_clock_back(void **state)
{
	struct sent s;
	struct auditagg *a = agg(&s, 4);

	(void)auditagg_note(a, ALOG_T_AUTH, "auth\tlocked", "192.0.2.1", 1, body("a"),
	    strlen(body("a")), T0);
	(void)auditagg_note(a, ALOG_T_AUTH, "auth\tlocked", "192.0.2.1", 1, body("b"),
	    strlen(body("b")), T0 + 1);
	auditagg_tick(a, T0 - 3600000);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.type[1], ALOG_T_AUTH);
	sent_clear(&s);
	auditagg_free(&a);
}

static void
test_summary(void **state)
{
	size_t len;
	char *p;

	p = auditagg_summary("{\"a\":1}", 7, 5, T0, T0 + 1, &len);
	assert_string_equal(p, "{\"a\":1,\"count\":5,\"first\":\"2027-01-01T00:00:00.000Z\","
	    "\"last\":\"2027-01-01T00:00:00.001Z\"}");
	assert_int_equal(len, strlen(p));
	free(p);
	p = auditagg_summary("{}", 2, 1, T0, T0, &len);
	assert_string_equal(p, "{\"count\":1,\"first\":\"2027-01-01T00:00:00.000Z\","
	    "\"last\":\"2027-01-01T00:00:00.000Z\"}");
	free(p);
	assert_null(auditagg_summary("[1]", 3, 1, T0, T0, &len));
	assert_null(auditagg_summary("{", 1, 1, T0, T0, &len));
}

static const char *
body_of(const char *key)
{
	return refusal_body("s", key);
}

static enum auditagg_result
note_key(struct auditagg *a, const char *kind, const char *key, int64_t now)
{
	return auditagg_note(a, ALOG_T_REFUSAL, kind, key, 1, body_of(key), strlen(body_of(key)),
	    now);
}

/* The attacker's find: the first refusal of every new address key was
 * recorded, so thousands of addresses cost thousands of records.  Now at
 * most flood_max a minute name a client; the rest are counted per kind,
 * one summary with "client": "*", the attempts and the keys. */
static void
test_many_keys(void **state)
{
	struct sent s;
	struct auditagg *a = agg_bounded(&s, 1024, 5);
	char key[64];
	int i;

	for (i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "2001:db8:%x::/64", i);
		assert_int_equal(note_key(a, "session\t421\tprotocol-errors", key, T0 + i),
		    i < 5 ? AUDITAGG_SENT : AUDITAGG_COUNTED);
	}
	/* a key counted per kind again: one more attempt, not one more key */
	assert_int_equal(note_key(a, "session\t421\tprotocol-errors", "2001:db8:9::/64",
	    T0 + 3000), AUDITAGG_COUNTED);
	/* another kind has its own count */
	assert_int_equal(note_key(a, "mail\t530\tauth-required", "2001:db8:9::/64", T0 + 3001),
	    AUDITAGG_COUNTED);
	assert_int_equal(s.n, 5);
	assert_int_equal(auditagg_size(a), 5);
	auditagg_tick(a, T0 + MIN - 1);
	assert_int_equal(s.n, 5);
	auditagg_tick(a, T0 + 5 + MIN);
	assert_int_equal(s.n, 7);
	assert_per_kind(&s, 5, 2996, 2995);
	assert_null(strstr(s.body[5], "clients_capped"));
	assert_non_null(strstr(s.body[5], "\"first\":\"2027-01-01T00:00:00.005Z\""));
	assert_non_null(strstr(s.body[5], "\"last\":\"2027-01-01T00:00:03.000Z\""));
	assert_per_kind(&s, 6, 1, 1);
	assert_int_equal(auditagg_dropped(a), 0);
	/* a new minute: the bound is there again, the keys are counted anew */
	sent_clear(&s);
	assert_int_equal(note_key(a, "session\t421\tprotocol-errors", "2001:db8:9::/64",
	    T0 + 2 * MIN), AUDITAGG_SENT);
	sent_clear(&s);
	auditagg_free(&a);
}

/* A summary of one key beyond the bound is counted per kind too: nothing
 * is lost, nothing names a client beyond the bound. */
static void
test_summary_beyond_bound(void **state)
{
	struct sent s;
	struct auditagg *a = agg_bounded(&s, 16, 1);
	int i;

	assert_int_equal(note_key(a, "k", "192.0.2.1", T0), AUDITAGG_SENT);
	for (i = 0; i < 3; i++)
		assert_int_equal(note_key(a, "k", "192.0.2.1", T0 + 1 + i), AUDITAGG_COUNTED);
	/* the next minute's one record naming a client goes to another key */
	assert_int_equal(note_key(a, "k", "192.0.2.2", T0 + MIN), AUDITAGG_SENT);
	auditagg_tick(a, T0 + MIN + 1);
	assert_int_equal(s.n, 2);
	auditagg_tick(a, T0 + 2 * MIN + 1);
	assert_int_equal(s.n, 3);
	assert_per_kind(&s, 2, 3, 1);
	/* at stop too */
	assert_int_equal(note_key(a, "k", "192.0.2.3", T0 + 3 * MIN), AUDITAGG_SENT);
	assert_int_equal(note_key(a, "k", "192.0.2.3", T0 + 3 * MIN + 1), AUDITAGG_COUNTED);
	assert_int_equal(note_key(a, "k", "192.0.2.4", T0 + 3 * MIN + 2), AUDITAGG_COUNTED);
	flush_expect(a, &s, T0 + 3 * MIN + 3, 1);
	assert_per_kind(&s, 0, 2, 2);
	sent_clear(&s);
	auditagg_free(&a);
}

/* The key set's bound: beyond AUDITAGG_KEYS_MAX keys in a minute the count
 * of attempts stays exact, the count of keys says "at least". */
static void
test_keys_capped(void **state)
{
	struct sent s;
	struct auditagg *a = agg_bounded(&s, 16, 0);
	char key[64];
	int i;

	for (i = 0; i < AUDITAGG_KEYS_MAX + 10; i++) {
		snprintf(key, sizeof(key), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(note_key(a, "k", key, T0), AUDITAGG_COUNTED);
	}
	auditagg_tick(a, T0 + MIN);
	assert_int_equal(s.n, 1);
	assert_per_kind(&s, 0, AUDITAGG_KEYS_MAX + 10, AUDITAGG_KEYS_MAX);
	assert_non_null(strstr(s.body[0], "\"clients_capped\":true"));
	/* the set is empty again for the next minute */
	sent_clear(&s);
	assert_int_equal(note_key(a, "k", "192.0.2.1", T0 + MIN + 1), AUDITAGG_COUNTED);
	auditagg_flush(a, T0 + MIN + 2);
	assert_int_equal(member_int(s.body[0], "clients"), 1);
	assert_null(strstr(s.body[0], "clients_capped"));
	sent_clear(&s);
	auditagg_free(&a);
}

/* Without room a summary per kind waits, and counts on. */
static void
test_kind_waits_for_room(void **state)
{
	struct sent s;
	struct auditagg *a = agg_bounded(&s, 16, 0);

	assert_int_equal(note_key(a, "k", "192.0.2.1", T0), AUDITAGG_COUNTED);
	s.room = 0;
	auditagg_tick(a, T0 + MIN);
	assert_int_equal(s.n, 0);
	assert_int_equal(note_key(a, "k", "192.0.2.1", T0 + MIN + 1), AUDITAGG_COUNTED);
	assert_int_equal(note_key(a, "k", "192.0.2.2", T0 + MIN + 2), AUDITAGG_COUNTED);
	s.room = 1;
	auditagg_tick(a, T0 + MIN + 3);
	assert_int_equal(s.n, 1);
	assert_per_kind(&s, 0, 3, 2);
	sent_clear(&s);
	auditagg_free(&a);
}

static void
test_wild_summary(void **state)
{
	size_t len;
	char *p;

	p = auditagg_wild_summary("{\"client\":\"192.0.2.1\",\"a\":1}", 28, 5, 2, 0, T0, T0 + 1,
	    &len);
	assert_string_equal(p, "{\"client\":\"*\",\"a\":1,\"count\":5,"
	    "\"first\":\"2027-01-01T00:00:00.000Z\",\"last\":\"2027-01-01T00:00:00.001Z\","
	    "\"clients\":2}");
	assert_int_equal(len, strlen(p));
	free(p);
	p = auditagg_wild_summary("{\"client\":\"x\"}", 14, 9, 9, 1, T0, T0, &len);
	assert_non_null(strstr(p, "\"clients\":9,\"clients_capped\":true}"));
	free(p);
	assert_null(auditagg_wild_summary("[1]", 3, 1, 1, 0, T0, T0, &len));
	assert_null(auditagg_wild_summary("{", 1, 1, 1, 0, T0, T0, &len));
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_bound),
	cmocka_unit_test(test_clock_back),
	cmocka_unit_test(test_flood),
	cmocka_unit_test(test_room),
	cmocka_unit_test(test_summary),
	cmocka_unit_test(test_many_keys),
	cmocka_unit_test(test_summary_beyond_bound),
	cmocka_unit_test(test_keys_capped),
	cmocka_unit_test(test_kind_waits_for_room),
	cmocka_unit_test(test_wild_summary),
};

int
main(void)
{
	return cmocka_run_group_tests(tests, NULL, NULL);
}
