/* test_cidr.c — address prefixes: parsing, refusals, matching (with
 * IPv4-mapped IPv6 peers), private ranges, text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "cidr.h"

static struct sockaddr_storage
sa(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		fail_msg("bad test address %s", text);
	return ss;
}

static int
match(const char *list, const char *addr)
{
	struct cidr c[8];
	char buf[256], *tok, *save = NULL;
	const char *why;
	size_t n = 0;
	struct sockaddr_storage ss = sa(addr);

	strcpy(buf, list);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		assert_int_equal(cidr_parse(tok, &c[n], &why), 0);
		n++;
	}
	return cidr_match(c, n, (struct sockaddr *)&ss);
}

static void
t_parse(void **state)
{
	static const char *const bad[] = {
		"", "/24", "192.0.2.0/", "192.0.2.0/33", "192.0.2.0/024", "192.0.2.1/24",
		"2001:db8::/129", "2001:db8::1/64", "lb.example.org", "192.0.2.0/24x",
		"192.0.2.0/-1", "10.0.0.0 /8",
	};
	struct cidr c;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (cidr_parse(bad[i], &c, &why) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_non_null(why);
	}
	assert_int_equal(cidr_parse("192.0.2.0/24", &c, &why), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.bits, 24);
	assert_int_equal(cidr_parse("2001:db8::/32", &c, &why), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(cidr_parse("127.0.0.1", &c, &why), 0);
	assert_int_equal(c.bits, 32);
	assert_int_equal(cidr_parse("0.0.0.0/0", &c, &why), 0);
	assert_int_equal(cidr_parse("::/0", &c, &why), 0);
}

static void
t_match(void **state)
{
	assert_true(match("127.0.0.1", "127.0.0.1"));
	assert_false(match("127.0.0.1", "127.0.0.2"));
	assert_true(match("192.0.2.0/24", "192.0.2.255"));
	assert_false(match("192.0.2.0/24", "192.0.3.0"));
	assert_true(match("192.0.2.128/25", "192.0.2.200"));
	assert_false(match("192.0.2.128/25", "192.0.2.127"));
	assert_true(match("10.0.0.0/8 2001:db8::/32", "2001:db8:1::5"));
	assert_false(match("10.0.0.0/8 2001:db8::/32", "2001:db9::5"));
	assert_true(match("0.0.0.0/0", "203.0.113.9"));
	assert_false(match("0.0.0.0/0", "::1"));
	/* dual-stack sockets report IPv4 peers as mapped addresses */
	assert_true(match("192.0.2.0/24", "::ffff:192.0.2.7"));
	assert_false(match("192.0.2.0/24", "::ffff:192.0.3.7"));
	assert_true(match("::ffff:0:0/96", "::ffff:192.0.3.7"));
	assert_false(match("192.0.2.0/24", "2001:db8::c000:207"));
}

static void
t_text(void **state)
{
	struct sockaddr_storage ss = sa("::ffff:192.0.2.7");
	char buf[64];
	int port = -1;

	((struct sockaddr_in6 *)&ss)->sin6_port = htons(587);
	assert_string_equal(cidr_ntop((struct sockaddr *)&ss, buf, sizeof(buf), &port), "192.0.2.7");
	assert_int_equal(port, 587);
	ss = sa("2001:db8::1");
	assert_string_equal(cidr_ntop((struct sockaddr *)&ss, buf, sizeof(buf), NULL), "2001:db8::1");
}

static int
private(const char *text)
{
	struct cidr c;
	const char *why;

	if (cidr_parse(text, &c, &why) != 0)
		fail_msg("bad test prefix %s: %s", text, why);
	return cidr_private(&c);
}

static void
t_private(void **state)
{
	static const char *const yes[] = {
		"127.0.0.1", "127.0.0.0/8", "10.0.0.0/8", "10.1.2.0/24", "172.16.0.0/12",
		"172.31.255.255", "192.168.0.0/16", "169.254.1.0/24", "100.64.0.0/10", "::1",
		"fc00::/7", "fd12:3456::/32", "fe80::/10", "::ffff:10.0.0.0/104",
		"::ffff:127.0.0.1",
	};
	static const char *const no[] = {
		"0.0.0.0/0", "8.0.0.0/7", "0.0.0.0/4", "10.0.0.0/7", "172.0.0.0/11",
		"172.32.0.0/16", "192.0.2.1", "35.191.0.0/16", "100.128.0.0/10", "::/0", "::",
		"::/127", "fc00::/6", "2001:db8::/32", "fe80::/9", "::ffff:0:0/96",
		"::ffff:8.8.8.8",
	};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!private(yes[i]))
			fail_msg("%s should be private", yes[i]);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (private(no[i]))
			fail_msg("%s should not be private", no[i]);
}

static void
t_format(void **state)
{
	static const char *const same[] = {
		"0.0.0.0/0", "192.0.2.0/24", "192.0.2.7", "::/0", "2001:db8::/32", "2001:db8::1",
	};
	struct cidr c;
	const char *why;
	char buf[64];
	size_t i;

	for (i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		assert_int_equal(cidr_parse(same[i], &c, &why), 0);
		assert_string_equal(cidr_format(&c, buf, sizeof(buf)), same[i]);
	}
	assert_int_equal(cidr_parse("2001:DB8:0::/48", &c, &why), 0);
	assert_string_equal(cidr_format(&c, buf, sizeof(buf)), "2001:db8::/48");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_parse),
		cmocka_unit_test(t_match),
		cmocka_unit_test(t_text),
		cmocka_unit_test(t_private),
		cmocka_unit_test(t_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
