/* test_metrics.c — the shared block (slices, folding, heartbeats), labels,
 * the DKIM field counter, the text formats, the HTTP request parser and
 * the notify helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "metrics.h"
#include "metrics_http.h"
#include "sdnotify.h"

static struct metrics_snapshot snap;

static uint64_t
counter(enum metrics_family f, unsigned label)
{
	metrics_snapshot(&snap);
	return metrics_snap_counter(&snap, f, label);
}

/* Runs first: no block yet, so every write lands in the private slice. */
static void
test_without_block(void **state)
{
	metrics_count(MF_RELAYED, 0);
	metrics_count(MF_RELAYED, 0);
	metrics_count(MF_RELAYED, 99);          /* no label: out of range is dropped */
	assert_int_equal(counter(MF_RELAYED, 0), 2);
	assert_int_equal(metrics_beat_interval(), -1);
	assert_int_equal(metrics_beat_age(METRICS_SLICE_FRONT), UINT64_MAX);
	assert_int_equal(metrics_serving(METRICS_SLICE_FRONT), 0);
}

static void
test_labels(void **state)
{
	assert_int_equal(metrics_label(MF_REFUSED, "5.7.1"), metrics_label(MF_REFUSED, "5.7.1"));
	assert_int_not_equal(metrics_label(MF_REFUSED, "5.7.1"),
	    metrics_label(MF_REFUSED, "5.6.0"));
	/* relay codes outside the list: one catch-all per class */
	assert_int_equal(metrics_label(MF_REFUSED, "5.7.26"), metrics_label(MF_REFUSED, "5.x.x"));
	assert_int_equal(metrics_label(MF_REFUSED, "4.2.2"), metrics_label(MF_REFUSED, "4.x.x"));
	assert_int_not_equal(metrics_label(MF_REFUSED, "4.2.2"),
	    metrics_label(MF_REFUSED, "5.2.2"));
	assert_int_equal(metrics_label(MF_REFUSED, NULL), metrics_label(MF_REFUSED, "5.x.x"));
	assert_int_equal(metrics_label(MF_DANE, "ok-ee"), 0);
	assert_int_equal(metrics_label(MF_DANE, "?"), metrics_label(MF_DANE, "other"));
	assert_int_equal(metrics_label(MF_DANE, "no-usable-tlsa"),
	    metrics_label(MF_DANE, "no-usable-tlsa"));
	assert_int_not_equal(metrics_label(MF_DANE, "no-usable-tlsa"),
	    metrics_label(MF_DANE, "other"));
}

static void
test_dkim_fields(void **state)
{
	uint64_t ed = counter(MF_DKIM, 0), rsa = counter(MF_DKIM, 1), other = counter(MF_DKIM, 2);

	metrics_count_dkim("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
	    "\td=lab.test; s=ed; b=abc\r\n"
	    "dkim-signature: v=1;\r\n a = rsa-sha256 ; d=lab.test; s=rsa; b=def\r\n");
	metrics_count_dkim("DKIM-Signature: v=1; d=x; b=y\r\n");            /* no a= */
	metrics_count_dkim("DKIM-Signature: v=1; a=rsa-sha1; b=y");         /* no CRLF at end */
	metrics_count_dkim("X-Other: a=ed25519-sha256\r\n");                 /* not a signature */
	metrics_count_dkim("DKIM-Signature: v=1; ba=rsa-sha256; a=ed25519-sha256\r\n");
	metrics_count_dkim("");
	metrics_count_dkim(NULL);
	assert_int_equal(counter(MF_DKIM, 0) - ed, 2);
	assert_int_equal(counter(MF_DKIM, 1) - rsa, 1);
	assert_int_equal(counter(MF_DKIM, 2) - other, 2);
}

static void
test_block_slices_and_fold(void **state)
{
	pid_t pid;
	int st;

	assert_int_equal(metrics_init(METRICS_SLICE_FRONT + 2, 100), 0);
	assert_int_equal(metrics_beat_interval(), 100);
	/* the parent writes the retired slice */
	metrics_count(MF_SESSIONS, 0);
	/* a worker in its own process and slice */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		metrics_attach(METRICS_SLICE_FRONT + 1);
		metrics_add(MF_SESSIONS, 0, 5);
		metrics_gauge_add(MG_SESSIONS_OPEN, 3);
		metrics_observe(MH_RELAY_REPLY, MRC_MAIL, 7000);     /* 0.01 bucket */
		metrics_observe(MH_RELAY_REPLY, MRC_MAIL, 120000000); /* +Inf */
		metrics_beat();
		metrics_set_serving();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	/* a writer of several loops beats with its oldest one's time */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		metrics_attach(METRICS_SLICE_FRONT);
		metrics_beat_at(metrics_now_ms() - 30000);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(metrics_beat_age(METRICS_SLICE_FRONT) >= 29000);  /* stored | 1 */
	assert_true(metrics_beat_age(METRICS_SLICE_FRONT) < 90000);
	metrics_fold(METRICS_SLICE_FRONT);
	metrics_snapshot(&snap);
	assert_int_equal(metrics_snap_counter(&snap, MF_SESSIONS, 0), 6);
	assert_int_equal(snap.g[MG_SESSIONS_OPEN], 3);
	assert_true(metrics_serving(METRICS_SLICE_FRONT + 1));
	assert_true(metrics_beat_age(METRICS_SLICE_FRONT + 1) < 60000);
	assert_int_equal(metrics_beat_age(METRICS_SLICE_FRONT), UINT64_MAX);
	assert_int_equal(snap.hb[0][1], 1);
	assert_int_equal(snap.hb[0][METRICS_BUCKETS - 1], 1);
	assert_int_equal(snap.hsum_us[0], 120007000);
	/* the worker ended: counters move to the retired slice, gauges go */
	metrics_fold(METRICS_SLICE_FRONT + 1);
	metrics_snapshot(&snap);
	assert_int_equal(metrics_snap_counter(&snap, MF_SESSIONS, 0), 6);
	assert_int_equal(snap.g[MG_SESSIONS_OPEN], 0);
	assert_int_equal(snap.hb[0][1], 1);
	assert_int_equal(snap.hsum_us[0], 120007000);
	assert_false(metrics_serving(METRICS_SLICE_FRONT + 1));
	assert_int_equal(metrics_beat_age(METRICS_SLICE_FRONT + 1), UINT64_MAX);
	/* a replacement in the same slot starts from zero, the sum goes on */
	metrics_attach(METRICS_SLICE_FRONT + 1);
	metrics_count(MF_SESSIONS, 0);
	assert_int_equal(counter(MF_SESSIONS, 0), 7);
	/* nonsense is ignored */
	metrics_fold(METRICS_SLICE_RETIRED);
	metrics_fold(1000);
	metrics_attach(1000);                   /* out of range: the dummy */
	metrics_count(MF_SESSIONS, 0);
	assert_int_equal(counter(MF_SESSIONS, 0), 7);
	assert_int_equal(metrics_beat_age(1000), UINT64_MAX);
}

/* Readers during folds never see a counter go down. */
static void
test_fold_is_monotonic_for_readers(void **state)
{
	uint64_t last = 0;
	pid_t pid;
	int i, st;

	metrics_attach(METRICS_SLICE_FRONT);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (i = 0; i < 20000; i++) {
			metrics_attach(METRICS_SLICE_FRONT + (i & 1));
			metrics_count(MF_RELAYED, 0);
			metrics_fold(METRICS_SLICE_FRONT + (i & 1));
		}
		_exit(0);
	}
	for (i = 0; i < 2000; i++) {
		uint64_t v = counter(MF_RELAYED, 0);

		assert_true(v >= last);
		last = v;
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(counter(MF_RELAYED, 0) >= 20000);
}

static void
test_checks(void **state)
{
	char longid[METRICS_CHECK_ID_MAX + 10];
	size_t i;

	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	metrics_checks_reset();
	metrics_check_add("dane.own.submissions", 1);
	metrics_check_add("dkim.lab.test.ed.dns", 0);
	metrics_check_add(longid, 1);           /* too long: left out */
	metrics_check_set("dane.own.submissions", 0);
	metrics_check_set("no.such.check", 1);
	metrics_snapshot(&snap);
	assert_int_equal(snap.nchecks, 2);
	assert_string_equal(snap.checks[0].id, "dane.own.submissions");
	assert_int_equal(snap.checks[0].ok, 0);
	assert_int_equal(snap.checks[1].ok, 0);
	for (i = 0; i < METRICS_CHECKS_MAX + 5; i++) {
		char id[32];

		snprintf(id, sizeof(id), "c%zu", i);
		metrics_check_add(id, 1);
	}
	metrics_snapshot(&snap);
	assert_int_equal(snap.nchecks, METRICS_CHECKS_MAX);
	metrics_checks_reset();
}

static void
test_format(void **state)
{
	struct metrics_text t = { 0 };
	unsigned lbl = metrics_label(MF_REFUSED, "5.7.1");

	metrics_checks_reset();
	metrics_check_add("dane.own.\"q\"\\x", 1);
	metrics_count(MF_REFUSED, lbl);
	metrics_observe(MH_RELAY_REPLY, MRC_DATA, 1000000);    /* exactly 1.0: in le="1.0" */
	metrics_snapshot(&snap);
	metrics_format(&snap, METRICS_PROMETHEUS, "9.9", &t);
	assert_non_null(strstr(t.p, "# TYPE subproxy_messages_refused_total counter\n"));
	assert_non_null(strstr(t.p, "subproxy_messages_refused_total{code=\"5.7.1\"} 1\n"));
	assert_non_null(strstr(t.p, "subproxy_audit_check_ok{check=\"dane.own.\\\"q\\\"\\\\x\"} 1\n"));
	assert_non_null(strstr(t.p, "subproxy_relay_reply_seconds_bucket{command=\"data\","
	    "le=\"0.5\"} 0\n"));
	assert_non_null(strstr(t.p, "subproxy_relay_reply_seconds_bucket{command=\"data\","
	    "le=\"1.0\"} 1\n"));
	assert_non_null(strstr(t.p, "subproxy_relay_reply_seconds_sum{command=\"data\"} 1.000000\n"));
	assert_non_null(strstr(t.p, "# TYPE subproxy_build_info gauge\n"));
	assert_non_null(strstr(t.p, "subproxy_build_info{version=\"9.9\"} 1\n"));
	assert_null(strstr(t.p, "# EOF"));
	assert_int_equal(t.len, strlen(t.p));
	metrics_text_free(&t);
	metrics_format(&snap, METRICS_OPENMETRICS, "9.9", &t);
	assert_non_null(strstr(t.p, "# TYPE subproxy_messages_refused counter\n"));
	assert_non_null(strstr(t.p, "# TYPE subproxy_build info\n"));
	assert_true(t.len > 6 && strcmp(t.p + t.len - 6, "# EOF\n") == 0);
	metrics_text_free(&t);
	assert_non_null(strstr(metrics_content_type(METRICS_OPENMETRICS), "openmetrics"));
	metrics_checks_reset();
}

/* ---- the HTTP request parser ---- */

static int
http(const char *req, struct metrics_http_req *r)
{
	return metrics_http_parse(req, strlen(req), r);
}

static void
test_http_parse(void **state)
{
	struct metrics_http_req r;
	const char *ok = "GET /metrics HTTP/1.1\r\nHost: x\r\n"
	    "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n";
	size_t i, n = strlen(ok);
	char big[METRICS_HTTP_HEAD_MAX + 100];

	assert_int_equal(http(ok, &r), 1);
	assert_int_equal(r.method, MHTTP_GET);
	assert_true(r.metrics_path && r.openmetrics);
	assert_int_equal(r.head_len, n);
	assert_int_equal(metrics_http_status(1, &r), 200);
	/* every prefix is incomplete, never an error */
	for (i = 0; i < n; i++)
		assert_int_equal(metrics_http_parse(ok, i, &r), 0);
	assert_int_equal(http("HEAD /metrics?a=b HTTP/1.0\r\n\r\n", &r), 1);
	assert_int_equal(r.method, MHTTP_HEAD);
	assert_true(r.metrics_path && !r.openmetrics);
	assert_int_equal(http("GET /metricsx HTTP/1.1\r\n\r\n", &r), 1);
	assert_int_equal(metrics_http_status(1, &r), 404);
	assert_int_equal(http("GET / HTTP/1.1\r\n\r\n", &r), 1);
	assert_int_equal(metrics_http_status(1, &r), 404);
	assert_int_equal(http("POST /metrics HTTP/1.1\r\n\r\n", &r), 1);
	assert_int_equal(metrics_http_status(1, &r), 405);
	assert_int_equal(http("get /metrics HTTP/1.1\r\n\r\n", &r), 1);
	assert_int_equal(metrics_http_status(1, &r), 405);
	/* malformed */
	assert_int_equal(http("GET /metrics HTTP/2.0\r\n\r\n", &r), -1);
	assert_int_equal(http("GET /metrics\r\n\r\n", &r), -1);
	assert_int_equal(http("GET  /metrics HTTP/1.1\r\n\r\n", &r), -1);
	assert_int_equal(http("GET /metrics HTTP/1.1 \r\n\r\n", &r), -1);
	assert_int_equal(http("GET /met\x01rics HTTP/1.1\r\n\r\n", &r), -1);
	assert_int_equal(http("\r\n", &r), -1);
	assert_int_equal(http("GET /metrics HTTP/1.1\nHost: x\n\n", &r), -1);
	assert_int_equal(http("GET /metrics HTTP/1.1\r\n x: folded\r\n\r\n", &r), -1);
	assert_int_equal(http("GET /metrics HTTP/1.1\r\nNo colon\r\n\r\n", &r), -1);
	assert_int_equal(http("GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n", &r), -1);
	assert_int_equal(http("GET /metrics HTTP/1.1\r\nX: a\rb\r\n\r\n", &r), -1);
	assert_int_equal(http("GET /metrics HTTP/1.1\r\nX: a\x7f\r\n\r\n", &r), -1);
	assert_int_equal(http("GET /metrics HTTP/1.1\r\nX: a\rb", &r), -1);
	assert_int_equal(metrics_http_parse("GET /metrics HTTP/1.1\r\n\0\r\n\r\n", 27, &r), -1);
	assert_int_equal(metrics_http_status(-1, &r), 400);
	/* too big, complete or not */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);
	assert_int_equal(metrics_http_parse(big, sizeof(big), &r), -2);
	assert_int_equal(metrics_http_parse(big, METRICS_HTTP_HEAD_MAX, &r), -2);
	assert_int_equal(metrics_http_parse(big, METRICS_HTTP_HEAD_MAX - 1, &r), 0);
	assert_int_equal(metrics_http_status(-2, &r), 431);
}

/* ---- sdnotify's pure parts ---- */

static void
test_sdnotify_addr(void **state)
{
	struct sockaddr_un sa;
	socklen_t len;
	char longp[200];

	assert_int_equal(sdnotify_addr("/run/systemd/notify", &sa, &len), 0);
	assert_string_equal(sa.sun_path, "/run/systemd/notify");
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 20);
	assert_int_equal(sdnotify_addr("@sp-test", &sa, &len), 0);
	assert_int_equal(sa.sun_path[0], '\0');
	assert_memory_equal(sa.sun_path + 1, "sp-test", 7);
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 8);
	assert_int_equal(sdnotify_addr("relative", &sa, &len), -1);
	assert_int_equal(sdnotify_addr("", &sa, &len), -1);
	assert_int_equal(sdnotify_addr("@", &sa, &len), -1);
	assert_int_equal(sdnotify_addr(NULL, &sa, &len), -1);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(sdnotify_addr(longp, &sa, &len), -1);
}

static void
test_sdnotify_watchdog(void **state)
{
	assert_int_equal(sdnotify_watchdog_parse("30000000", NULL, 42), 30000000);
	assert_int_equal(sdnotify_watchdog_parse("30000000", "42", 42), 30000000);
	assert_int_equal(sdnotify_watchdog_parse("30000000", "43", 42), 0);
	assert_int_equal(sdnotify_watchdog_parse("30000000", "x", 42), 0);
	assert_int_equal(sdnotify_watchdog_parse("0", NULL, 42), 0);
	assert_int_equal(sdnotify_watchdog_parse("-5", NULL, 42), 0);
	assert_int_equal(sdnotify_watchdog_parse("12s", NULL, 42), 0);
	assert_int_equal(sdnotify_watchdog_parse(NULL, "42", 42), 0);
}

/* Without NOTIFY_SOCKET nothing is sent and nothing fails. */
static void
test_sdnotify_off(void **state)
{
	char err[256];

	unsetenv("NOTIFY_SOCKET");
	setenv("WATCHDOG_USEC", "1000000", 1);
	assert_int_equal(sdnotify_open(err, sizeof(err)), 0);
	assert_int_equal(sdnotify_enabled(), 0);
	assert_int_equal(sdnotify_watchdog_usec(), 0);
	assert_null(getenv("WATCHDOG_USEC"));
	assert_int_equal(sdnotify_send("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(sdnotify_open(err, sizeof(err)), -1);
	assert_non_null(strstr(err, "NOTIFY_SOCKET"));
	assert_null(getenv("NOTIFY_SOCKET"));
}

/* A real datagram socket receives what was sent, abstract name too. */
static void
test_sdnotify_send(void **state)
{
	struct sockaddr_un sa;
	socklen_t len;
	char err[256], buf[256], name[64];
	ssize_t n;
	int fd;

	snprintf(name, sizeof(name), "@subproxy-unit-%ld", (long)getpid());
	assert_int_equal(sdnotify_addr(name, &sa, &len), 0);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
	setenv("NOTIFY_SOCKET", name, 1);
	setenv("WATCHDOG_USEC", "2000000", 1);
	assert_int_equal(sdnotify_open(err, sizeof(err)), 1);
	assert_int_equal(sdnotify_watchdog_usec(), 2000000);
	assert_int_equal(sdnotify_send("READY=1\nSTATUS=%s", "serving"), 0);
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "READY=1\nSTATUS=serving");
	assert_int_equal(sdnotify_reloading(), 0);
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	assert_non_null(strstr(buf, "RELOADING=1\nMONOTONIC_USEC="));
	sdnotify_close();
	assert_int_equal(sdnotify_enabled(), 0);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_without_block),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_dkim_fields),
		cmocka_unit_test(test_block_slices_and_fold),
		cmocka_unit_test(test_fold_is_monotonic_for_readers),
		cmocka_unit_test(test_checks),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_http_parse),
		cmocka_unit_test(test_sdnotify_addr),
		cmocka_unit_test(test_sdnotify_watchdog),
		cmocka_unit_test(test_sdnotify_off),
		cmocka_unit_test(test_sdnotify_send),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
