/* test_util.c — the small helpers every module shares: log lines (the pid
 * after fork), ASCII case and hex digits without locale, address literals,
 * bounded unsigned numbers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "log.h"
#include "util.h"

static void
test_hexval(void **state)
{
	assert_int_equal(ascii_hexval('0'), 0);
	assert_int_equal(ascii_hexval('9'), 9);
	assert_int_equal(ascii_hexval('a'), 10);
	assert_int_equal(ascii_hexval('F'), 15);
	assert_int_equal(ascii_hexval('g'), -1);
	assert_int_equal(ascii_hexval('/'), -1);
	assert_int_equal(ascii_hexval(0xe9), -1);
}

static void
test_casecmp(void **state)
{
	assert_int_equal(ascii_casecmp("MAIL", "mail"), 0);
	assert_true(ascii_casecmp("a", "b") < 0);
	assert_int_equal(ascii_ncasecmp("STARTTLSX", "starttls", 8), 0);
	assert_int_equal(ascii_tolower('Q'), 'q');
	assert_int_equal(ascii_tolower((char)0xc9), (char)0xc9);
}

static void
test_ip_literal(void **state)
{
	assert_true(is_ip_literal("127.0.0.1"));
	assert_true(is_ip_literal("::1"));
	assert_true(is_ip_literal("2001:db8::25"));
	assert_true(is_ip_literal("::ffff:192.0.2.1"));
	assert_false(is_ip_literal("relay.example"));
	assert_false(is_ip_literal("127.0.0.1.example"));
	assert_false(is_ip_literal("[::1]"));
	assert_false(is_ip_literal("256.1.1.1"));
	assert_false(is_ip_literal(""));
}

static void
test_parse_uint(void **state)
{
	uint64_t v = 7;

	assert_int_equal(parse_uint("10k", 0, UINT64_MAX, 1, &v), 0);
	assert_int_equal(v, 10240);
	assert_int_equal(parse_uint("2M", 0, UINT64_MAX, 1, &v), 0);
	assert_int_equal(v, 2u << 20);
	assert_int_equal(parse_uint("10k", 0, UINT64_MAX, 0, &v), -1);
	assert_int_equal(parse_uint("5", 6, 9, 0, &v), -1);
	assert_int_equal(parse_uint("", 0, 9, 0, &v), -1);
	assert_int_equal(parse_uint("-1", 0, 9, 0, &v), -1);
	assert_int_equal(parse_uint("99999999999999999999", 0, UINT64_MAX, 0, &v), -1);
	assert_int_equal(parse_uint("17179869184g", 0, UINT64_MAX, 1, &v), -1);
}

/* One log line to a pipe from this process; the pid in its "[PID]". */
static long
logged_pid(void)
{
	char buf[512], *p;
	int fds[2], saved = dup(2);
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	assert_int_equal(dup2(fds[1], 2), 2);
	log_info("event=test");
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(p = strchr(buf, '['));
	return strtol(p + 1, NULL, 10);
}

/* log.c asks getpid() once per process, not per line: a child made by
 * fork() after the parent logged must still log its own pid. */
static void
test_log_pid_after_fork(void **state)
{
	pid_t pid;
	int st;

	log_init("test", LOG_LVL_INFO);
	assert_int_equal(logged_pid(), (long)getpid());
	assert_int_equal(logged_pid(), (long)getpid());
	if ((pid = fork()) == 0)
		_exit(logged_pid() == (long)getpid() ? 0 : 1);
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* log_escape keeps spaces (for quoted values), log_value does not; both
 * turn quote, backslash, control and 8-bit octets into \xHH and truncate
 * with "..." within the buffer. */
static void
test_log_escape_and_value(void **state)
{
	char buf[64];

	assert_string_equal(log_escape(buf, sizeof(buf), "a b=\"c\\\n\xff", 9),
	    "a b=\\x22c\\x5c\\x0a\\xff");
	assert_string_equal(log_value(buf, sizeof(buf), "a b=\"c\\\n\xff", 9),
	    "a\\x20b=\\x22c\\x5c\\x0a\\xff");
	assert_string_equal(log_value(buf, sizeof(buf), "x result=ok", 11), "x\\x20result=ok");
	assert_string_equal(log_value(buf, 12, "aaaaaaaaaaaaaaaaaaaa", 20), "aaaaaaaa...");
	assert_string_equal(log_value(buf, 12, "          ", 10), "\\x20\\x20...");
	assert_string_equal(log_value(buf, sizeof(buf), "", 0), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_pid_after_fork),
		cmocka_unit_test(test_log_escape_and_value),
		cmocka_unit_test(test_hexval),
		cmocka_unit_test(test_casecmp),
		cmocka_unit_test(test_ip_literal),
		cmocka_unit_test(test_parse_uint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
