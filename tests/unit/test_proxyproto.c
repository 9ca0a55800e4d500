/* test_proxyproto.c — PROXY protocol v1/v2 parser: every form, every limit,
 * every split of the input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "proxyproto.h"

/* Parse every prefix of buf[0..len): the answer must move only from
 * NEED_MORE to a decision and never change once decided (a DONE keeps its
 * length and addresses whatever follows).  Returns the answer for the whole
 * buffer in *r. */
static enum proxyproto_status
parse_all_splits(const void *buf, size_t len, struct proxyproto_result *r)
{
	struct proxyproto_result first, cur;
	enum proxyproto_status decided = PROXYPROTO_NEED_MORE, st;
	size_t k;

	memset(&first, 0, sizeof(first));
	for (k = 0; k <= len; k++) {
		st = proxyproto_parse(buf, k, &cur);
		if (decided == PROXYPROTO_NEED_MORE) {
			if (st != PROXYPROTO_NEED_MORE) {
				decided = st;
				first = cur;
			}
		} else {
			assert_int_equal(st, decided);
			if (st == PROXYPROTO_DONE) {
				assert_int_equal(cur.consumed, first.consumed);
				assert_int_equal(cur.local, first.local);
				assert_memory_equal(&cur.src, &first.src, sizeof(cur.src));
				assert_memory_equal(&cur.dst, &first.dst, sizeof(cur.dst));
			}
		}
		if (st == PROXYPROTO_DONE)
			assert_true(cur.consumed <= k);
		if (st == PROXYPROTO_INVALID)
			assert_non_null(cur.why);
	}
	st = proxyproto_parse(buf, len, r);
	return st;
}

static const char *
addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	int port;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		port = ntohs(s->sin_port);
		snprintf(buf, len, "%s:%d", a, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
		char a[INET6_ADDRSTRLEN];

		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		port = ntohs(s->sin6_port);
		snprintf(buf, len, "[%s]:%d", a, port);
	} else {
		snprintf(buf, len, "none");
	}
	return buf;
}

static void
expect_done(const void *buf, size_t len, size_t consumed, const char *src, const char *dst)
{
	struct proxyproto_result r;
	char a[80];

	assert_int_equal(parse_all_splits(buf, len, &r), PROXYPROTO_DONE);
	assert_int_equal(r.consumed, consumed);
	if (src == NULL) {
		assert_int_equal(r.local, 1);
		return;
	}
	assert_int_equal(r.local, 0);
	assert_string_equal(addr_text(&r.src, a, sizeof(a)), src);
	assert_string_equal(addr_text(&r.dst, a, sizeof(a)), dst);
}

static void
expect_invalid(const void *buf, size_t len)
{
	struct proxyproto_result r;

	assert_int_equal(parse_all_splits(buf, len, &r), PROXYPROTO_INVALID);
	assert_non_null(r.why);
}

#define S(x) x, sizeof(x) - 1

static void
t_v1_valid(void **state)
{
	expect_done(S("PROXY TCP4 192.0.2.1 198.51.100.2 56324 587\r\n"), 45,
	    "192.0.2.1:56324", "198.51.100.2:587");
	/* the application's bytes after the header are not consumed */
	expect_done(S("PROXY TCP4 192.0.2.1 198.51.100.2 0 65535\r\nEHLO x\r\n"), 43,
	    "192.0.2.1:0", "198.51.100.2:65535");
	expect_done(S("PROXY TCP6 2001:db8::1 2001:db8::2 1 465\r\n\x16\x03\x01"), 42,
	    "[2001:db8::1]:1", "[2001:db8::2]:465");
	expect_done(S("PROXY TCP6 ::ffff:192.0.2.1 ::1 1000 25\r\n"), 41,
	    "[::ffff:192.0.2.1]:1000", "[::1]:25");
	expect_done(S("PROXY UNKNOWN\r\n"), 15, NULL, NULL);
	expect_done(S("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\nX"), 59,
	    NULL, NULL);
}

static void
t_v1_longest(void **state)
{
	const char *h = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	char buf[200];

	assert_int_equal(strlen(h), PROXYPROTO_V1_MAX - 3);
	expect_done(h, strlen(h), strlen(h),
	    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
	    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
	/* UNKNOWN may carry anything up to the 107-octet bound */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "PROXY UNKNOWN ", 14);
	memcpy(buf + PROXYPROTO_V1_MAX - 2, "\r\n", 2);
	expect_done(buf, PROXYPROTO_V1_MAX, PROXYPROTO_V1_MAX, NULL, NULL);
	memcpy(buf + PROXYPROTO_V1_MAX - 2, "xx\r\n", 4);
	expect_invalid(buf, PROXYPROTO_V1_MAX + 2);
	/* no CRLF at all: refused at 107 octets, not later */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "PROXY UNKNOWN ", 14);
	{
		struct proxyproto_result r;
		assert_int_equal(proxyproto_parse(buf, PROXYPROTO_V1_MAX - 1, &r),
		    PROXYPROTO_NEED_MORE);
		assert_int_equal(proxyproto_parse(buf, PROXYPROTO_V1_MAX, &r), PROXYPROTO_INVALID);
	}
}

static void
t_v1_invalid(void **state)
{
	static const char *const bad[] = {
		"PROXY TCP4 192.0.2.1 198.51.100.2 56324 587\n",        /* bare LF */
		"PROXY TCP4 192.0.2.1 198.51.100.2 56324 587\r\r\n",
		"PROXY TCP4 192.0.2.1  198.51.100.2 56324 587\r\n",     /* double space */
		"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",          /* too few */
		"PROXY TCP4 192.0.2.1 198.51.100.2 56324 587 1\r\n",    /* too many */
		"PROXY TCP4 192.0.2.1 198.51.100.2 56324 587 \r\n",
		"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",          /* wrong family */
		"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n",
		"PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",        /* port range */
		"PROXY TCP4 192.0.2.1 198.51.100.2 0587 2\r\n",         /* leading zero */
		"PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 1 2x\r\n",
		"PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n",
		"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
		"PROXY UNKNOWNX\r\n",
		"PROXY \r\n",
		"PROXY\r\n",
		"proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
		"PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r",               /* CR then garbage */
		"EHLO client.example\r\n",
		"GET / HTTP/1.0\r\n",
		"\x16\x03\x01\x02\x00",                                   /* a TLS ClientHello */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *b = bad[i];
		size_t n = strlen(b);

		if (i == 20) {
			/* "...\r" followed by anything but LF */
			char tmp[80];
			snprintf(tmp, sizeof(tmp), "%sX", b);
			expect_invalid(tmp, strlen(tmp));
			continue;
		}
		expect_invalid(b, n);
	}
	/* a NUL and an 8-bit byte in the line */
	expect_invalid(S("PROXY UNKNOWN a\0b\r\n"));
	expect_invalid(S("PROXY UNKNOWN \xff\r\n"));
}

/* ---- v2 ---- */

static size_t
v2(unsigned char *b, int cmd, int fam, const void *block, size_t blen, const void *tlv,
    size_t tlen)
{
	static const unsigned char sig[12] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
	};
	size_t len = blen + tlen;

	memcpy(b, sig, 12);
	b[12] = (unsigned char)(0x20 | cmd);
	b[13] = (unsigned char)fam;
	b[14] = (unsigned char)(len >> 8);
	b[15] = (unsigned char)len;
	if (blen)
		memcpy(b + 16, block, blen);
	if (tlen)
		memcpy(b + 16 + blen, tlv, tlen);
	return 16 + len;
}

static const unsigned char inet_block[12] = {
	192, 0, 2, 7, 198, 51, 100, 9, 0xdc, 0x04, 0x02, 0x4b      /* 56324 -> 587 */
};

static void
t_v2_valid(void **state)
{
	unsigned char b[2048], b6[36];
	static const unsigned char tlvs[] = {
		0x01, 0x00, 0x02, 'h', '2',             /* ALPN */
		0x04, 0x00, 0x00,                        /* NOOP, empty */
		0x20, 0x00, 0x05, 0x01, 0, 0, 0, 0,      /* SSL */
	};
	size_t n;

	n = v2(b, 1, 0x11, inet_block, sizeof(inet_block), NULL, 0);
	expect_done(b, n, 28, "192.0.2.7:56324", "198.51.100.9:587");
	/* application bytes after it stay unread */
	memcpy(b + n, "\x16\x03\x01", 3);
	expect_done(b, n + 3, 28, "192.0.2.7:56324", "198.51.100.9:587");
	n = v2(b, 1, 0x11, inet_block, sizeof(inet_block), tlvs, sizeof(tlvs));
	expect_done(b, n, 28 + sizeof(tlvs), "192.0.2.7:56324", "198.51.100.9:587");
	memset(b6, 0, sizeof(b6));
	b6[0] = 0x20; b6[1] = 0x01; b6[2] = 0x0d; b6[3] = 0xb8; b6[15] = 1;
	b6[16] = 0x20; b6[17] = 0x01; b6[18] = 0x0d; b6[19] = 0xb8; b6[31] = 2;
	b6[32] = 0x01; b6[33] = 0x00; b6[34] = 0x01; b6[35] = 0xd1;   /* 256 -> 465 */
	n = v2(b, 1, 0x21, b6, sizeof(b6), NULL, 0);
	expect_done(b, n, 52, "[2001:db8::1]:256", "[2001:db8::2]:465");
	/* LOCAL: health checks from the balancer itself; any block is ignored */
	n = v2(b, 0, 0x00, NULL, 0, NULL, 0);
	expect_done(b, n, 16, NULL, NULL);
	n = v2(b, 0, 0x31, "whatever it is", 14, NULL, 0);
	expect_done(b, n, 30, NULL, NULL);
	/* PROXY with UNSPEC: addresses unknown, like v1 UNKNOWN */
	n = v2(b, 1, 0x00, NULL, 0, NULL, 0);
	expect_done(b, n, 16, NULL, NULL);
	/* the largest header accepted */
	{
		unsigned char big[PROXYPROTO_V2_MAX];
		size_t tl = PROXYPROTO_V2_MAX - 28;

		memset(big, 0, sizeof(big));
		big[0] = 0x04;
		big[1] = (unsigned char)((tl - 3) >> 8);
		big[2] = (unsigned char)(tl - 3);
		n = v2(b, 1, 0x11, inet_block, sizeof(inet_block), big, tl);
		assert_int_equal(n, PROXYPROTO_V2_MAX);
		expect_done(b, n, PROXYPROTO_V2_MAX, "192.0.2.7:56324", "198.51.100.9:587");
	}
}

static void
t_v2_invalid(void **state)
{
	unsigned char b[70000], blk[1100];
	size_t n;

	memset(blk, 0, sizeof(blk));
	/* UNIX sockets, datagrams, unknown families and commands */
	n = v2(b, 1, 0x31, blk, 216, NULL, 0);
	expect_invalid(b, n);
	n = v2(b, 1, 0x12, inet_block, sizeof(inet_block), NULL, 0);
	expect_invalid(b, n);
	n = v2(b, 1, 0x41, blk, 12, NULL, 0);
	expect_invalid(b, n);
	n = v2(b, 2, 0x11, inet_block, sizeof(inet_block), NULL, 0);
	expect_invalid(b, n);
	/* version 1 in the version nibble */
	n = v2(b, 1, 0x11, inet_block, sizeof(inet_block), NULL, 0);
	b[12] = 0x11;
	expect_invalid(b, n);
	/* address block too short for its family */
	n = v2(b, 1, 0x11, inet_block, 11, NULL, 0);
	expect_invalid(b, n);
	n = v2(b, 1, 0x21, blk, 35, NULL, 0);
	expect_invalid(b, n);
	/* TLVs that overrun or leave a stub */
	n = v2(b, 1, 0x11, inet_block, sizeof(inet_block), "\x01\x00\x05" "ab", 5);
	expect_invalid(b, n);
	n = v2(b, 1, 0x11, inet_block, sizeof(inet_block), "\x01\x00", 2);
	expect_invalid(b, n);
	/* oversized: refused as soon as the length is known, whatever follows */
	n = v2(b, 1, 0x11, inet_block, sizeof(inet_block), blk, PROXYPROTO_V2_MAX - 27);
	expect_invalid(b, n);
	{
		struct proxyproto_result r;
		assert_int_equal(proxyproto_parse(b, 16, &r), PROXYPROTO_INVALID);
	}
	b[14] = 0xff;
	b[15] = 0xff;
	expect_invalid(b, 16);
	/* a damaged signature */
	n = v2(b, 1, 0x11, inet_block, sizeof(inet_block), NULL, 0);
	b[7] = 'q';
	expect_invalid(b, n);
	expect_invalid(S("\r\n\r\n\r\n"));
	expect_invalid(S("\x00PROXY"));
}

/* Truncated headers never complete: every proper prefix needs more. */
static void
t_truncated(void **state)
{
	unsigned char b[128];
	struct proxyproto_result r;
	size_t n, k;
	const char *v1 = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 587\r\n";

	n = v2(b, 1, 0x11, inet_block, sizeof(inet_block), "\x04\x00\x01x", 4);
	for (k = 0; k < n; k++)
		assert_int_equal(proxyproto_parse(b, k, &r), PROXYPROTO_NEED_MORE);
	for (k = 0; k < strlen(v1); k++)
		assert_int_equal(proxyproto_parse(v1, k, &r), PROXYPROTO_NEED_MORE);
}

/* Every byte value at every position of a valid v1 and v2 header: the
 * parser decides consistently and never reads past what it is given. */
static void
t_mutations(void **state)
{
	unsigned char orig[64], b[64];
	const char *v1 = "PROXY TCP6 2001:db8::1 2001:db8::2 1 465\r\n";
	struct proxyproto_result r;
	size_t n, i;
	int c, pass;

	for (pass = 0; pass < 2; pass++) {
		if (pass == 0) {
			n = strlen(v1);
			memcpy(orig, v1, n);
		} else {
			n = v2(orig, 1, 0x11, inet_block, sizeof(inet_block), "\x04\x00\x01x", 4);
		}
		for (i = 0; i < n; i++)
			for (c = 0; c < 256; c++) {
				unsigned char *heap = malloc(n);

				memcpy(b, orig, n);
				b[i] = (unsigned char)c;
				memcpy(heap, b, n);
				(void)parse_all_splits(heap, n, &r);
				free(heap);
			}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_v1_valid),
		cmocka_unit_test(t_v1_longest),
		cmocka_unit_test(t_v1_invalid),
		cmocka_unit_test(t_v2_valid),
		cmocka_unit_test(t_v2_invalid),
		cmocka_unit_test(t_truncated),
		cmocka_unit_test(t_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
