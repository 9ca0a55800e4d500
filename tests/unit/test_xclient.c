/* test_xclient.c — XCLIENT commands: offered attributes only, xtext, the
 * 512-octet limit with ADDR last, IPv6 form. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_reply.h"
#include "xclient.h"

#define ALL (SMTP_XCLIENT_NAME | SMTP_XCLIENT_ADDR | SMTP_XCLIENT_PORT | SMTP_XCLIENT_PROTO | \
    SMTP_XCLIENT_HELO | SMTP_XCLIENT_LOGIN | SMTP_XCLIENT_DESTADDR | SMTP_XCLIENT_DESTPORT)

static const struct xclient_info alice = {
	"192.0.2.7", 56324, "client.example", 1, "alice@example.org", "198.51.100.9", 587
};

static void
t_all(void **state)
{
	struct xclient_cmds c;

	xclient_build(ALL, &alice, &c);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.skipped, 0);
	assert_string_equal(c.line[0], "XCLIENT PROTO=ESMTP HELO=client.example "
	    "LOGIN=alice@example.org PORT=56324 DESTADDR=198.51.100.9 DESTPORT=587 "
	    "NAME=[UNAVAILABLE] ADDR=192.0.2.7\r\n");
}

static void
t_offered_only(void **state)
{
	struct xclient_cmds c;
	struct xclient_info ci = alice;

	xclient_build(SMTP_XCLIENT_ADDR | SMTP_XCLIENT_LOGIN, &ci, &c);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.line[0], "XCLIENT LOGIN=alice@example.org ADDR=192.0.2.7\r\n");
	xclient_build(0, &ci, &c);
	assert_int_equal(c.n, 0);
	/* unknown values are not sent (and reported), HELO says SMTP */
	ci.port = 0;
	ci.destaddr = NULL;
	ci.esmtp = 0;
	ci.login = NULL;
	xclient_build(SMTP_XCLIENT_PORT | SMTP_XCLIENT_DESTADDR | SMTP_XCLIENT_PROTO |
	    SMTP_XCLIENT_LOGIN, &ci, &c);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.skipped, SMTP_XCLIENT_PORT | SMTP_XCLIENT_DESTADDR);
	assert_string_equal(c.line[0], "XCLIENT PROTO=SMTP LOGIN=[UNAVAILABLE]\r\n");
}

static void
t_ipv6_xtext(void **state)
{
	struct xclient_cmds c;
	struct xclient_info ci = alice;
	char buf[16];

	ci.addr = "2001:db8::1";
	ci.destaddr = "::1";
	ci.login = "a+b=c d\x01\xc3\xa9";
	xclient_build(SMTP_XCLIENT_ADDR | SMTP_XCLIENT_DESTADDR | SMTP_XCLIENT_LOGIN, &ci, &c);
	assert_string_equal(c.line[0], "XCLIENT LOGIN=a+2Bb+3Dc+20d+01+C3+A9 DESTADDR=IPV6:::1 "
	    "ADDR=IPV6:2001:db8::1\r\n");
	assert_int_equal(xclient_xtext(buf, sizeof(buf), "abc"), 3);
	assert_int_equal(xclient_xtext(buf, 4, "abcd"), -1);
	assert_string_equal(buf, "");
	assert_int_equal(xclient_xtext(buf, 3, "+"), -1);
	assert_int_equal(xclient_xtext(buf, 4, "+"), 3);
}

/* Long values: several commands, none over 512 octets, ADDR in the last. */
static void
t_split(void **state)
{
	struct xclient_cmds c;
	struct xclient_info ci = alice;
	char helo[256], login[300];
	size_t i;

	memset(helo, 'h', 255);
	helo[255] = '\0';
	memset(login, '=', 150);        /* 450 octets as xtext */
	login[150] = '\0';
	ci.helo = helo;
	ci.login = login;
	xclient_build(ALL, &ci, &c);
	assert_int_equal(c.skipped, 0);
	assert_true(c.n >= 2);
	for (i = 0; i < c.n; i++) {
		size_t n = strlen(c.line[i]);

		assert_true(n <= XCLIENT_LINE_MAX);
		assert_memory_equal(c.line[i] + n - 2, "\r\n", 2);
		assert_memory_equal(c.line[i], "XCLIENT ", 8);
		assert_true(i + 1 == c.n || strstr(c.line[i], " ADDR=") == NULL);
	}
	assert_non_null(strstr(c.line[c.n - 1], " ADDR=192.0.2.7\r\n"));
	/* a value that cannot fit one command is left out, the rest is sent */
	{
		char huge[400];
		memset(huge, '+', sizeof(huge) - 1);
		huge[sizeof(huge) - 1] = '\0';
		ci.login = huge;
		xclient_build(ALL, &ci, &c);
		assert_int_equal(c.skipped, SMTP_XCLIENT_LOGIN);
		assert_non_null(strstr(c.line[c.n - 1], " ADDR=192.0.2.7\r\n"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_all),
		cmocka_unit_test(t_offered_only),
		cmocka_unit_test(t_ipv6_xtext),
		cmocka_unit_test(t_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
