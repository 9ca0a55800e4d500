/* Unit tests for smtp_syntax.c: every verb, every parameter good and bad,
 * paths, UTF-8, base64 and AUTH PLAIN decoding. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "smtp_syntax.h"

struct tcase {
	const char *line;
	int dsn, utf8txn;
	int rc;                 /* 0 or the reply code */
	const char *enh;
	enum smtp_verb verb;
};

static const struct tcase cases[] = {
	/* verbs, case, spacing */
	{ "EHLO client.lab.test", 0, 0, 0, NULL, SMTP_V_EHLO },
	{ "ehlo client.lab.test", 0, 0, 0, NULL, SMTP_V_EHLO },
	{ "HeLo client", 0, 0, 0, NULL, SMTP_V_HELO },
	{ "EHLO [127.0.0.1]", 0, 0, 0, NULL, SMTP_V_EHLO },
	{ "EHLO [IPv6:::1]", 0, 0, 0, NULL, SMTP_V_EHLO },
	{ "EHLO", 0, 0, 501, "5.5.4", SMTP_V_EHLO },
	{ "EHLO  two.spaces", 0, 0, 501, "5.5.4", SMTP_V_EHLO },
	{ "EHLO bad..domain", 0, 0, 501, "5.5.4", SMTP_V_EHLO },
	{ "EHLO -bad.domain", 0, 0, 501, "5.5.4", SMTP_V_EHLO },
	{ "EHLO a b", 0, 0, 501, "5.5.4", SMTP_V_EHLO },
	{ "EHLO [300.0.0.1]", 0, 0, 501, "5.5.4", SMTP_V_EHLO },
	{ "STARTTLS", 0, 0, 0, NULL, SMTP_V_STARTTLS },
	{ "STARTTLS now", 0, 0, 501, "5.5.4", SMTP_V_STARTTLS },
	{ "DATA", 0, 0, 0, NULL, SMTP_V_DATA },
	{ "DATA x", 0, 0, 501, "5.5.4", SMTP_V_DATA },
	{ "RSET", 0, 0, 0, NULL, SMTP_V_RSET },
	{ "QUIT", 0, 0, 0, NULL, SMTP_V_QUIT },
	{ "QUIT now", 0, 0, 501, "5.5.4", SMTP_V_QUIT },
	{ "NOOP", 0, 0, 0, NULL, SMTP_V_NOOP },
	{ "NOOP anything goes", 0, 0, 0, NULL, SMTP_V_NOOP },
	{ "HELP", 0, 0, 0, NULL, SMTP_V_HELP },
	{ "VRFY alice", 0, 0, 0, NULL, SMTP_V_VRFY },
	{ "VRFY", 0, 0, 501, "5.5.4", SMTP_V_VRFY },
	{ "EXPN list", 0, 0, 0, NULL, SMTP_V_EXPN },
	{ "TURN", 0, 0, 500, "5.5.2", SMTP_V_UNKNOWN },
	{ "", 0, 0, 500, "5.5.2", SMTP_V_UNKNOWN },
	{ "MAILFROM:<a@b.c>", 0, 0, 500, "5.5.2", SMTP_V_UNKNOWN },
	/* control characters and 8-bit outside paths */
	{ "NOOP a\tb", 0, 0, 500, "5.5.2", SMTP_V_NOOP },
	{ "NOOP a\x7f", 0, 0, 500, "5.5.2", SMTP_V_NOOP },
	{ "NOOP \xc3\xa4", 0, 0, 500, "5.5.2", SMTP_V_NOOP },
	{ "EHLO \xc3\xa4.test", 0, 0, 500, "5.5.2", SMTP_V_EHLO },
	/* MAIL paths */
	{ "MAIL FROM:<alice@lab.test>", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "mail from:<alice@lab.test>", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM: <alice@lab.test>", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<>", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:alice@lab.test", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<alice@lab.test", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL TO:<alice@lab.test>", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<alice>", 0, 0, 553, "5.1.7", SMTP_V_MAIL },
	{ "MAIL FROM:<@lab.test>", 0, 0, 553, "5.1.7", SMTP_V_MAIL },
	{ "MAIL FROM:<a..b@lab.test>", 0, 0, 553, "5.1.7", SMTP_V_MAIL },
	{ "MAIL FROM:<.a@lab.test>", 0, 0, 553, "5.1.7", SMTP_V_MAIL },
	{ "MAIL FROM:<a(b)@lab.test>", 0, 0, 553, "5.1.7", SMTP_V_MAIL },
	{ "MAIL FROM:<a@lab..test>", 0, 0, 553, "5.1.7", SMTP_V_MAIL },
	{ "MAIL FROM:<a@[127.0.0.1]>", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<a@[IPv6:::1]>", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<\"a b\"@lab.test>", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<\"a\\\"b\"@lab.test>", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<\"a>b\"@lab.test>", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<@hop1,@hop2:alice@lab.test>", 0, 0, 0, NULL, SMTP_V_MAIL },
	/* MAIL parameters */
	{ "MAIL FROM:<a@b.test> SIZE=1000", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> SIZE=", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> SIZE=abc", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> SIZE=-1", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> SIZE=18446744073709551616", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> SIZE=99999999999999999999", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> SIZE=1 SIZE=2", 0, 0, 555, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> BODY=8BITMIME", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> BODY=7bit", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> BODY=BINARYMIME", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> SMTPUTF8", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> SMTPUTF8=yes", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> AUTH=<>", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> AUTH=a+40b", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> AUTH=+ZZ", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> AUTH=a+4", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> AUTH=a+4a", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> FOO=BAR", 0, 0, 555, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> FOO", 0, 0, 555, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test>  SIZE=1", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> SIZE=1 ", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test>SIZE=1", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> =1", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> S_IZE=1", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	/* DSN parameters only when DSN is offered */
	{ "MAIL FROM:<a@b.test> RET=HDRS", 0, 0, 555, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> RET=HDRS", 1, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> RET=ALL", 1, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> ENVID=abc", 0, 0, 555, "5.5.4", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> ENVID=abc+2B", 1, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> ENVID=a=b", 1, 0, 501, "5.5.4", SMTP_V_MAIL },
	/* UTF-8 */
	{ "MAIL FROM:<\xc3\xa5lice@lab.test>", 0, 0, 553, "5.6.7", SMTP_V_MAIL },
	{ "MAIL FROM:<\xc3\xa5lice@lab.test> SMTPUTF8", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<a@\xc3\xa5.test> SMTPUTF8", 0, 0, 0, NULL, SMTP_V_MAIL },
	{ "MAIL FROM:<\xc0\xaf@lab.test> SMTPUTF8", 0, 0, 553, "5.1.7", SMTP_V_MAIL },
	{ "MAIL FROM:<\xed\xa0\x80@lab.test> SMTPUTF8", 0, 0, 553, "5.1.7", SMTP_V_MAIL },
	{ "MAIL FROM:<\xc3@lab.test> SMTPUTF8", 0, 0, 553, "5.1.7", SMTP_V_MAIL },
	{ "MAIL FROM:<\xf4\x90\x80\x80@lab.test> SMTPUTF8", 0, 0, 553, "5.1.7", SMTP_V_MAIL },
	{ "MAIL FROM:<a@b.test> SIZE=\xc3\xa5", 0, 0, 501, "5.5.4", SMTP_V_MAIL },
	{ "RCPT TO:<\xc3\xa5@remote.test>", 0, 0, 553, "5.6.7", SMTP_V_RCPT },
	{ "RCPT TO:<\xc3\xa5@remote.test>", 0, 1, 0, NULL, SMTP_V_RCPT },
	/* RCPT */
	{ "RCPT TO:<bob@remote.test>", 0, 0, 0, NULL, SMTP_V_RCPT },
	{ "RCPT TO:<>", 0, 0, 553, "5.1.3", SMTP_V_RCPT },
	{ "RCPT TO:<bob>", 0, 0, 553, "5.1.3", SMTP_V_RCPT },
	{ "RCPT FROM:<bob@remote.test>", 0, 0, 501, "5.5.4", SMTP_V_RCPT },
	{ "RCPT TO:<bob@remote.test> NOTIFY=NEVER", 0, 0, 555, "5.5.4", SMTP_V_RCPT },
	{ "RCPT TO:<bob@remote.test> NOTIFY=NEVER", 1, 0, 0, NULL, SMTP_V_RCPT },
	{ "RCPT TO:<bob@remote.test> NOTIFY=success,DELAY", 1, 0, 0, NULL, SMTP_V_RCPT },
	{ "RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,SUCCESS", 1, 0, 501, "5.5.4", SMTP_V_RCPT },
	{ "RCPT TO:<bob@remote.test> NOTIFY=NEVER,DELAY", 1, 0, 501, "5.5.4", SMTP_V_RCPT },
	{ "RCPT TO:<bob@remote.test> NOTIFY=", 1, 0, 501, "5.5.4", SMTP_V_RCPT },
	{ "RCPT TO:<bob@remote.test> ORCPT=rfc822;bob+40remote.test", 1, 0, 0, NULL, SMTP_V_RCPT },
	{ "RCPT TO:<bob@remote.test> ORCPT=bob@remote.test", 1, 0, 501, "5.5.4", SMTP_V_RCPT },
	{ "RCPT TO:<bob@remote.test> ORCPT=rfc822;a+zz", 1, 0, 501, "5.5.4", SMTP_V_RCPT },
	{ "RCPT TO:<bob@remote.test> SIZE=1", 1, 0, 555, "5.5.4", SMTP_V_RCPT },
	/* BDAT */
	{ "BDAT 0", 0, 0, 0, NULL, SMTP_V_BDAT },
	{ "BDAT 0 LAST", 0, 0, 0, NULL, SMTP_V_BDAT },
	{ "BDAT 1000 last", 0, 0, 0, NULL, SMTP_V_BDAT },
	{ "BDAT 1234567890123456789", 0, 0, 0, NULL, SMTP_V_BDAT },
	{ "BDAT 12345678901234567890", 0, 0, 501, "5.5.4", SMTP_V_BDAT },
	{ "BDAT", 0, 0, 501, "5.5.4", SMTP_V_BDAT },
	{ "BDAT x", 0, 0, 501, "5.5.4", SMTP_V_BDAT },
	{ "BDAT -1", 0, 0, 501, "5.5.4", SMTP_V_BDAT },
	{ "BDAT 10 LAST x", 0, 0, 501, "5.5.4", SMTP_V_BDAT },
	{ "BDAT 10 FIRST", 0, 0, 501, "5.5.4", SMTP_V_BDAT },
	/* AUTH */
	{ "AUTH PLAIN", 0, 0, 0, NULL, SMTP_V_AUTH },
	{ "AUTH PLAIN AGFsaWNlAHNlY3JldA==", 0, 0, 0, NULL, SMTP_V_AUTH },
	{ "AUTH PLAIN =", 0, 0, 0, NULL, SMTP_V_AUTH },
	{ "AUTH", 0, 0, 501, "5.5.4", SMTP_V_AUTH },
	{ "AUTH PLAIN a b", 0, 0, 501, "5.5.4", SMTP_V_AUTH },
	{ "AUTH PL@IN", 0, 0, 501, "5.5.4", SMTP_V_AUTH },
	{ "AUTH ABCDEFGHIJKLMNOPQRSTU", 0, 0, 501, "5.5.4", SMTP_V_AUTH },
};

static void
test_table(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *t = &cases[i];
		struct smtp_parse_opts o = { t->dsn, t->utf8txn };
		struct smtp_cmd c;
		struct smtp_err e;
		char buf[SMTP_CMD_MAX + 1];
		int rc;

		snprintf(buf, sizeof(buf), "%s", t->line);
		rc = smtp_cmd_parse(buf, strlen(buf), &o, &c, &e);
		if (t->rc == 0 && rc != 0)
			fail_msg("\"%s\": refused with %d %s %s", t->line, e.code, e.enh, e.text);
		if (t->rc != 0 && (rc != -1 || e.code != t->rc || strcmp(e.enh, t->enh) != 0))
			fail_msg("\"%s\": got rc=%d %d %s (%s), want %d %s", t->line, rc, e.code,
			    e.enh, e.text, t->rc, t->enh);
		if (c.verb != t->verb)
			fail_msg("\"%s\": verb %d, want %d", t->line, c.verb, t->verb);
		if (rc != 0 && e.text[0] == '\0')
			fail_msg("\"%s\": refusal without a sentence", t->line);
	}
}

static void
test_values(void **state)
{
	struct smtp_parse_opts o = { 1, 0 };
	struct smtp_cmd c;
	struct smtp_err e;
	char buf[600];

	snprintf(buf, sizeof(buf), "MAIL FROM:<@a,@b:Alice@Lab.test> SIZE=4096 BODY=8BITMIME "
	    "SMTPUTF8 RET=FULL ENVID=id+2B1 AUTH=<>");
	assert_int_equal(smtp_cmd_parse(buf, strlen(buf), &o, &c, &e), 0);
	assert_string_equal(c.path, "Alice@Lab.test");
	assert_int_equal(c.size, 4096);
	assert_int_equal(c.body, SMTP_BODY_8BITMIME);
	assert_int_equal(c.smtputf8, 1);
	assert_int_equal(c.ret, SMTP_RET_FULL);
	assert_string_equal(c.envid, "id+2B1");
	assert_string_equal(c.auth, "<>");

	snprintf(buf, sizeof(buf), "RCPT TO:<bob@remote.test> NOTIFY=delay,failure "
	    "ORCPT=rfc822;bob+40remote.test");
	assert_int_equal(smtp_cmd_parse(buf, strlen(buf), &o, &c, &e), 0);
	assert_string_equal(c.path, "bob@remote.test");
	assert_string_equal(c.notify, "DELAY,FAILURE");
	assert_string_equal(c.orcpt, "rfc822;bob+40remote.test");

	snprintf(buf, sizeof(buf), "MAIL FROM:<>");
	assert_int_equal(smtp_cmd_parse(buf, strlen(buf), &o, &c, &e), 0);
	assert_string_equal(c.path, "");

	snprintf(buf, sizeof(buf), "BDAT 1234567890123456789 LAST");
	assert_int_equal(smtp_cmd_parse(buf, strlen(buf), &o, &c, &e), 0);
	assert_int_equal(c.bdat_size, 1234567890123456789ULL);
	assert_int_equal(c.bdat_last, 1);

	snprintf(buf, sizeof(buf), "AUTH login dXNlcg==");
	assert_int_equal(smtp_cmd_parse(buf, strlen(buf), &o, &c, &e), 0);
	assert_string_equal(c.auth_mech, "login");
	assert_string_equal(c.auth_initial, "dXNlcg==");

	snprintf(buf, sizeof(buf), "EHLO [192.0.2.1]");
	assert_int_equal(smtp_cmd_parse(buf, strlen(buf), &o, &c, &e), 0);
	assert_string_equal(c.domain, "[192.0.2.1]");
}

/* "MAIL FROM:<aaa...@b.b.b...b.test>" whose path is exactly plen octets. */
static int
parse_path_of(size_t plen, struct smtp_cmd *c, struct smtp_err *e)
{
	struct smtp_parse_opts o = { 0, 0 };
	char buf[700], path[400];
	size_t n = 0;

	memset(path, 'a', 60);
	n = 60;
	path[n++] = '@';
	while (n + 5 < plen) {
		path[n++] = 'b';
		path[n++] = '.';
	}
	if (n + 5 == plen + 1)       /* odd remainder: one letter longer TLD */
		n--;
	memcpy(path + n, "test", 4);
	n += 4;
	while (n < plen)
		path[n++] = 't';
	path[n] = '\0';
	assert_int_equal(strlen(path), plen);
	snprintf(buf, sizeof(buf), "MAIL FROM:<%s>", path);
	return smtp_cmd_parse(buf, strlen(buf), &o, c, e);
}

/* A NUL inside the line (the caller passes the length) is refused. */
static void
test_nul_and_lengths(void **state)
{
	struct smtp_parse_opts o = { 0, 0 };
	struct smtp_cmd c;
	struct smtp_err e;
	char buf[700];
	size_t n;

	memcpy(buf, "NOOP a\0b", 9);
	assert_int_equal(smtp_cmd_parse(buf, 8, &o, &c, &e), -1);
	assert_int_equal(e.code, 500);
	memcpy(buf, "RCPT TO:<a\rb@c.d>", 18);
	assert_int_equal(smtp_cmd_parse(buf, 17, &o, &c, &e), -1);
	assert_int_equal(e.code, 500);
	/* a path of 254 octets (256 with <>) is fine, 255 is too long */
	assert_int_equal(parse_path_of(254, &c, &e), 0);
	assert_int_equal(strlen(c.path), 254);
	assert_int_equal(parse_path_of(255, &c, &e), -1);
	assert_int_equal(e.code, 553);
	/* a local part over 64 octets */
	n = (size_t)snprintf(buf, sizeof(buf), "MAIL FROM:<");
	memset(buf + n, 'a', 65);
	n += 65;
	memcpy(buf + n, "@b.test>", 9);
	n += 8;
	assert_int_equal(smtp_cmd_parse(buf, n, &o, &c, &e), -1);
	/* a 64-octet label is refused */
	n = (size_t)snprintf(buf, sizeof(buf), "MAIL FROM:<a@");
	memset(buf + n, 'b', 64);
	n += 64;
	memcpy(buf + n, ".test>", 7);
	n += 6;
	assert_int_equal(smtp_cmd_parse(buf, n, &o, &c, &e), -1);
}

static void
test_base64(void **state)
{
	char out[64];
	size_t n = 99;

	assert_int_equal(smtp_base64_decode("", 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(smtp_base64_decode("=", 1, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(smtp_base64_decode("YWJj", 4, out, sizeof(out), &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "abc", 3);
	assert_int_equal(smtp_base64_decode("YWI=", 4, out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(smtp_base64_decode("YQ==", 4, out, sizeof(out), &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(smtp_base64_decode("AGFsaWNlAHNlY3JldA==", 20, out, sizeof(out), &n), 0);
	assert_int_equal(n, 13);
	/* refused: no padding, bad characters, whitespace, padding inside,
	 * non-zero trailing bits, too small an output */
	assert_int_equal(smtp_base64_decode("YWI", 3, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YW*j", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YW j", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YQ==YWJj", 8, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YR==", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YWJ=", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("Y===", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YWJj", 4, out, 2, &n), -1);
	assert_int_equal(smtp_base64_decode("==", 2, out, sizeof(out), &n), -1);
}

static void
test_auth_plain(void **state)
{
	const char *u, *p;
	size_t pl;

	assert_int_equal(smtp_auth_plain_decode("\0alice\0secret", 13, &u, &p, &pl), 0);
	assert_string_equal(u, "alice");
	assert_int_equal(pl, 6);
	assert_memory_equal(p, "secret", 6);
	assert_int_equal(smtp_auth_plain_decode("alice\0alice\0pw", 14, &u, &p, &pl), 0);
	assert_int_equal(smtp_auth_plain_decode("\0alice\0", 7, &u, &p, &pl), 0);
	assert_int_equal(pl, 0);
	assert_int_equal(smtp_auth_plain_decode("bob\0alice\0pw", 12, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("\0\0pw", 4, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("\0alice\0p\0w", 10, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("alice", 5, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("\0alice", 6, &u, &p, &pl), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_nul_and_lengths),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_auth_plain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
