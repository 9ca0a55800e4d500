/*
 * test_rfc5322.c — RFC 5322 address lists: display names, comments,
 * quoted local parts, groups, obsolete routes, folding; the canonical form;
 * malformed lists, control characters, bad UTF-8, the 254-octet bound, and
 * that nothing is left allocated after an error.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rfc5322.h"

/* Field values, how many addresses they hold (-1: a syntax error) and the
 * first ones in canonical form. */
static const struct {
	const char *value;
	int n;
	const char *want[4];
} cases[] = {
	{ "a@x", 1, { "a@x" } },
	{ "  a@x  ", 1, { "a@x" } },
	{ "\"alice@lab.test\" <mallory@evil.test>", 1, { "mallory@evil.test" } },
	{ "alice@lab.test (alice@lab.test)", 1, { "alice@lab.test" } },
	{ "(x) a@x (y)", 1, { "a@x" } },
	{ "(nested (comment \\) here)) a@x", 1, { "a@x" } },
	{ "a@x, b@y", 2, { "a@x", "b@y" } },
	{ "a@x,,b@y,", 2, { "a@x", "b@y" } },
	{ "Friends: a@x, b@y;", 2, { "a@x", "b@y" } },
	{ "Friends: a@x, b@y;, c@z", 3, { "a@x", "b@y", "c@z" } },
	{ "undisclosed-recipients:;", 0, { NULL } },
	{ "", 0, { NULL } },
	{ " , ", 0, { NULL } },
	{ "John Q. Public <jqp@example.test>", 1, { "jqp@example.test" } },
	{ "<@route.test,@other.test:a@x>", 1, { "a@x" } },
	{ "a . b @ x . y", 1, { "a.b@x.y" } },
	{ "\"a\"@x", 1, { "a@x" } },
	{ "\"a b\"@x", 1, { "\"a b\"@x" } },
	{ "\"alice@lab.test\"@evil.test", 1, { "\"alice@lab.test\"@evil.test" } },
	{ "\"q\\\"x\\\\\"@x", 1, { "\"q\\\"x\\\\\"@x" } },
	{ "\"\"@x", 1, { "\"\"@x" } },
	{ "a@[192.0.2.1]", 1, { "a@[192.0.2.1]" } },
	{ "Name\r\n <a@x>", 1, { "a@x" } },
	{ "a@x,\r\n\tb@y", 2, { "a@x", "b@y" } },
	{ "=?utf-8?q?x?= <a@x>", 1, { "a@x" } },
	{ "a@x, b@x, c@x, d@x, e@x, f@x", 6, { "a@x", "b@x", "c@x", "d@x" } },
	{ "alice@lab.test <mallory@evil.test>", -1, { NULL } },
	{ "a@x b@y", -1, { NULL } },
	{ "a@b@c", -1, { NULL } },
	{ "a", -1, { NULL } },
	{ "@x", -1, { NULL } },
	{ "a@", -1, { NULL } },
	{ "<>", -1, { NULL } },
	{ "<a@x", -1, { NULL } },
	{ "a@x>", -1, { NULL } },
	{ "a..b@x", -1, { NULL } },
	{ ".a@x", -1, { NULL } },
	{ "a.@x", -1, { NULL } },
	{ "a@x..y", -1, { NULL } },
	{ "(unclosed a@x", -1, { NULL } },
	{ "\"unclosed@x", -1, { NULL } },
	{ "a@[1.2", -1, { NULL } },
	{ "a@[1[2]", -1, { NULL } },
	{ "G: a@x", -1, { NULL } },
	{ "G: H: a@x;;", -1, { NULL } },
	{ "a@x;", -1, { NULL } },
	{ "a\r\nb@x", -1, { NULL } },
	{ "a\n@x", -1, { NULL } },
	{ "\"a\x01\"@x", -1, { NULL } },
	{ "a@x\r\n", -1, { NULL } },
	{ "<a@x> <b@y>", -1, { NULL } },
	{ "a@x)", -1, { NULL } },
	{ "\xff@x", -1, { NULL } },
	{ "\xed\xa0\x80@x", -1, { NULL } },	/* UTF-16 surrogate */
};

static void
test_addresses(void **state)
{
	char *a[4];
	size_t c;
	int n, i;

	(void)state;
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const char *v = cases[c].value;

		memset(a, 0, sizeof(a));
		n = rfc5322_parse_addresses(v, strlen(v), a, 4);
		if (n != cases[c].n)
			fail_msg("\"%s\": want %d got %d", v, cases[c].n, n);
		for (i = 0; i < 4; i++) {
			if (i >= n) {
				assert_null(a[i]);
				continue;
			}
			if (strcmp(a[i], cases[c].want[i]) != 0)
				fail_msg("\"%s\"[%d]: want %s got %s", v, i, cases[c].want[i], a[i]);
			free(a[i]);
		}
	}
}

static void
test_addresses_edge(void **state)
{
	char v[600], *a[2];
	int n;

	(void)state;
	/* 254 octets fit, 255 do not */
	memset(v, 'l', 64);
	v[64] = '@';
	memset(v + 65, 'd', 189);
	v[254] = '\0';
	assert_int_equal(rfc5322_parse_addresses(v, 254, a, 2), 1);
	assert_int_equal(strlen(a[0]), 254);
	free(a[0]);
	v[254] = 'd';
	v[255] = '\0';
	assert_int_equal(rfc5322_parse_addresses(v, 255, a, 2), -1);
	/* NUL inside the given length */
	assert_int_equal(rfc5322_parse_addresses("a@x\0b", 5, a, 2), -1);
	/* length, not the terminator, bounds the parse */
	assert_int_equal(rfc5322_parse_addresses("a@x, junk junk", 3, a, 2), 1);
	assert_string_equal(a[0], "a@x");
	free(a[0]);
	/* max 0: counted only */
	n = rfc5322_parse_addresses("a@x, b@y", 8, NULL, 0);
	assert_int_equal(n, 2);
	/* an error after stored addresses frees them */
	a[0] = a[1] = NULL;
	assert_int_equal(rfc5322_parse_addresses("a@x, b@y, c", 11, a, 2), -1);
	assert_null(a[0]);
	assert_null(a[1]);
}

/* The From rule front and the signer share: one address, in whatever
 * list form the parser reads, with a domain that can be d=. */
static void
test_from_domain(void **state)
{
	static const struct {
		const char *v, *dom;            /* dom NULL: refused */
	} froms[] = {
		{ "a@lab.test", "lab.test" },
		{ "Alice <A@LAB.Test>", "lab.test" },
		{ " \"a@evil.test\" <a@lab.test> (x@evil.test)", "lab.test" },
		{ "Authors: a@lab.test;", "lab.test" },
		{ "Authors: <a@lab.test>, ;", "lab.test" },
		{ "a@lab.test,", "lab.test" },
		{ ", a@lab.test", "lab.test" },
		{ "<@route.test:a@lab.test>", "lab.test" },
		{ "a@lab\r\n .test", "lab.test" },
		{ "\"x@y\"@lab.test", "lab.test" },
		{ "a@b\xc3\xa9.test", "b\xc3\xa9.test" },
		{ "undisclosed-recipients:;", NULL },
		{ "", NULL },
		{ "a@lab.test, b@lab.test", NULL },
		{ "Authors: a@lab.test, b@lab.test;", NULL },
		{ "a@[127.0.0.1]", NULL },
		{ "a@lab!x.test", NULL },
		{ "a@lab.test;", NULL },
		{ "a@", NULL },
	};
	char dom[256];
	size_t c;
	int rc;

	(void)state;
	for (c = 0; c < sizeof(froms) / sizeof(froms[0]); c++) {
		rc = rfc5322_from_domain(froms[c].v, strlen(froms[c].v), dom, sizeof(dom));
		if (froms[c].dom == NULL && rc != -1)
			fail_msg("\"%s\": want refused, got %s", froms[c].v, dom);
		if (froms[c].dom != NULL && (rc != 0 || strcmp(dom, froms[c].dom) != 0))
			fail_msg("\"%s\": want %s, got %s", froms[c].v, froms[c].dom,
			    rc == 0 ? dom : "refused");
	}
	/* the domain must fit */
	assert_int_equal(rfc5322_from_domain("a@lab.test", 10, dom, 8), -1);
	assert_int_equal(rfc5322_from_domain("a@lab.test", 10, dom, 9), 0);
	assert_int_equal(rfc5322_addr_domain("no-at", dom, sizeof(dom)), -1);
}

/* Every address returned is in canonical form: parsed again it gives
 * exactly itself (what the DKIM signing domain and the sender check rely
 * on). */
static void
test_canonical_is_a_fixed_point(void **state)
{
	static const char *const lists[] = {
		"\"a\"@x", "\"a b\"@x", "\"q\\\"x\\\\\"@x", "\"\"@x", "a . b @ x . y",
		"Name <a@[192.0.2.1]>", "<@r.test:\"al ice\"@lab.test>", "G: \"x.\"@y, b@z;",
		"\xc3\xa9l\xc3\xa8ve@\xc3\xa9" "cole.test",
	};
	char *a[4], *b[2];
	size_t i;
	int n, k;

	(void)state;
	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		n = rfc5322_parse_addresses(lists[i], strlen(lists[i]), a, 4);
		if (n < 1)
			fail_msg("\"%s\": %d", lists[i], n);
		for (k = 0; k < n; k++) {
			assert_int_equal(rfc5322_parse_addresses(a[k], strlen(a[k]), b, 2), 1);
			if (strcmp(a[k], b[0]) != 0)
				fail_msg("\"%s\": %s re-parses as %s", lists[i], a[k], b[0]);
			free(b[0]);
		}
		rfc5322_free_addresses(a, (size_t)n);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_addresses_edge),
		cmocka_unit_test(test_canonical_is_a_fixed_point),
		cmocka_unit_test(test_from_domain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
