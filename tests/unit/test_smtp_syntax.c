/* Unit tests for smtp_syntax.c: every verb, every parameter good and bad,
 * paths, UTF-8, control characters at every position, base64 and AUTH PLAIN
 * decoding. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_syntax.h"

struct tcase {
	const char *line;
	int dsn, utf8txn;
	int rc;                 /* 0 or the reply code */
	const char *enh;
	enum smtp_verb verb;
};

#define OK(l, v)		{ l, 0, 0, 0, NULL, v }
#define OK_DSN(l, v)		{ l, 1, 0, 0, NULL, v }
#define NO(l, c, x, v)		{ l, 0, 0, c, x, v }
#define NO_DSN(l, c, x, v)	{ l, 1, 0, c, x, v }

#define M SMTP_V_MAIL
#define R SMTP_V_RCPT

static const struct tcase cases[] = {
	/* every verb, any case, exactly one space */
	OK("EHLO client.lab.test", SMTP_V_EHLO),
	OK("ehlo client.lab.test", SMTP_V_EHLO),
	OK("HeLo client", SMTP_V_HELO),
	OK("EHLO [127.0.0.1]", SMTP_V_EHLO),
	OK("EHLO [IPv6:::1]", SMTP_V_EHLO),
	OK("EHLO [ipv6:2001:db8::1]", SMTP_V_EHLO),
	OK("EHLO [IPv6:::ffff:192.0.2.1]", SMTP_V_EHLO),
	OK("EHLO xn--bcher-kva.example", SMTP_V_EHLO),
	NO("EHLO", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO ", 501, "5.5.4", SMTP_V_EHLO),
	NO("HELO", 501, "5.5.4", SMTP_V_HELO),
	NO("EHLO  two.spaces", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO bad..domain", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO -bad.domain", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO bad-.domain", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO trailing.dot.", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO under_score", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO a b", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [300.0.0.1]", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [1.2.3]", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [1.2.3.4.5]", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [1.2.3.]", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [1..3.4]", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [1234.2.3.4]", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [IPv6:]", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [IPv6:::]]", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [IPv6:1::2::3]", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [IPv6:fe80::1%eth0]", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [IPv6:12345::1]", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [x-tag:abc]", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO []", 501, "5.5.4", SMTP_V_EHLO),
	NO("EHLO [127.0.0.1", 501, "5.5.4", SMTP_V_EHLO),
	OK("STARTTLS", SMTP_V_STARTTLS),
	OK("starttls", SMTP_V_STARTTLS),
	NO("STARTTLS now", 501, "5.5.4", SMTP_V_STARTTLS),
	NO("STARTTLS ", 501, "5.5.4", SMTP_V_STARTTLS),
	OK("DATA", SMTP_V_DATA),
	OK("data", SMTP_V_DATA),
	NO("DATA x", 501, "5.5.4", SMTP_V_DATA),
	OK("RSET", SMTP_V_RSET),
	NO("RSET x", 501, "5.5.4", SMTP_V_RSET),
	OK("QUIT", SMTP_V_QUIT),
	OK("qUiT", SMTP_V_QUIT),
	NO("QUIT now", 501, "5.5.4", SMTP_V_QUIT),
	OK("NOOP", SMTP_V_NOOP),
	OK("NOOP anything goes", SMTP_V_NOOP),
	NO("NOOP ", 501, "5.5.4", SMTP_V_NOOP),
	NO("NOOP  x", 501, "5.5.4", SMTP_V_NOOP),
	NO("HELP  x", 501, "5.5.4", SMTP_V_HELP),
	NO("VRFY  bob", 501, "5.5.4", SMTP_V_VRFY),
	NO("MAIL  FROM:<a@b.test>", 501, "5.5.4", M),
	OK("HELP", SMTP_V_HELP),
	OK("help me", SMTP_V_HELP),
	OK("VRFY alice", SMTP_V_VRFY),
	NO("VRFY", 501, "5.5.4", SMTP_V_VRFY),
	OK("EXPN list", SMTP_V_EXPN),
	NO("EXPN", 501, "5.5.4", SMTP_V_EXPN),
	NO("TURN", 500, "5.5.2", SMTP_V_UNKNOWN),
	NO("ETRN x", 500, "5.5.2", SMTP_V_UNKNOWN),
	NO("", 500, "5.5.2", SMTP_V_UNKNOWN),
	NO(" EHLO x", 500, "5.5.2", SMTP_V_UNKNOWN),
	NO("EHLOX x", 500, "5.5.2", SMTP_V_UNKNOWN),
	NO("EHL", 500, "5.5.2", SMTP_V_UNKNOWN),
	NO("MAILFROM:<a@b.c>", 500, "5.5.2", SMTP_V_UNKNOWN),
	NO("\xc3\xa4HLO x", 500, "5.5.2", SMTP_V_UNKNOWN),
	/* control characters (more in test_controls) and 8-bit outside paths */
	NO("NOOP a\tb", 500, "5.5.2", SMTP_V_NOOP),
	NO("NOOP a\x7f", 500, "5.5.2", SMTP_V_NOOP),
	NO("NOOP \xc3\xa4", 500, "5.5.2", SMTP_V_NOOP),
	NO("EHLO \xc3\xa4.test", 500, "5.5.2", SMTP_V_EHLO),
	NO("AUTH PLAIN \xc3\xa4", 500, "5.5.2", SMTP_V_AUTH),
	NO("MAIL FR\xc3\x96M:<a@b.test>", 500, "5.5.2", M),
	NO("MAIL FROM:<a@b.test> SIZE=\xc3\xa5", 500, "5.5.2", M),
	NO("MAIL FROM:<a@b.test> SMTPUTF8 X\xc3\xa5", 500, "5.5.2", M),
	NO("RCPT TO:<a@b.test> \xc3\xa5", 500, "5.5.2", R),
	/* MAIL paths */
	OK("MAIL FROM:<alice@lab.test>", M),
	OK("mail from:<alice@lab.test>", M),
	OK("MAIL FROM: <alice@lab.test>", M),
	OK("MAIL FROM:<>", M),
	OK("MAIL FROM: <>", M),
	OK("MAIL FROM:<a.b.c@lab.test>", M),
	OK("MAIL FROM:<!#$%&'*+-/=?^_`{|}~@lab.test>", M),
	OK("MAIL FROM:<a@localhost>", M),
	NO("MAIL FROM:  <alice@lab.test>", 501, "5.5.4", M),
	NO("MAIL FROM:alice@lab.test", 501, "5.5.4", M),
	NO("MAIL FROM:<alice@lab.test", 501, "5.5.4", M),
	NO("MAIL FROM:", 501, "5.5.4", M),
	NO("MAIL", 501, "5.5.4", M),
	NO("MAIL FROM", 501, "5.5.4", M),
	NO("MAIL TO:<alice@lab.test>", 501, "5.5.4", M),
	NO("MAIL FROM:<alice@lab.test>x", 501, "5.5.4", M),
	NO("MAIL FROM:<alice>", 553, "5.1.7", M),
	NO("MAIL FROM:<Postmaster>", 553, "5.1.7", M),
	NO("MAIL FROM:<@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<alice@>", 553, "5.1.7", M),
	NO("MAIL FROM:<a@b@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<a..b@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<.a@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<a.@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<a(b)@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<a b@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<a@lab..test>", 553, "5.1.7", M),
	NO("MAIL FROM:<a@lab_test>", 553, "5.1.7", M),
	NO("MAIL FROM:<a@[127.0.0.256]>", 553, "5.1.7", M),
	NO("MAIL FROM:<a@[IPv6:zz::1]>", 553, "5.1.7", M),
	NO("MAIL FROM:<a@[tag:content]>", 553, "5.1.7", M),
	OK("MAIL FROM:<a@[127.0.0.1]>", M),
	OK("MAIL FROM:<a@[IPv6:::1]>", M),
	OK("MAIL FROM:<a@[IPv6:2001:db8:0:0:0:0:0:1]>", M),
	/* quoted local parts */
	OK("MAIL FROM:<\"a b\"@lab.test>", M),
	OK("MAIL FROM:<\"\"@lab.test>", M),
	OK("MAIL FROM:<\"a\\\"b\"@lab.test>", M),
	OK("MAIL FROM:<\"a\\\\b\"@lab.test>", M),
	OK("MAIL FROM:<\"a>b\"@lab.test>", M),
	OK("MAIL FROM:<\"a@b\"@lab.test>", M),
	NO("MAIL FROM:<\"ab@lab.test>", 501, "5.5.4", M),
	NO("MAIL FROM:<\"a\"b@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<\"a\"\"b\"@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<\"a\"@>", 553, "5.1.7", M),
	NO("MAIL FROM:<\"a\">", 553, "5.1.7", M),
	NO("MAIL FROM:<a\"b\"@lab.test>", 553, "5.1.7", M),
	/* source routes: accepted and stripped */
	OK("MAIL FROM:<@hop1,@hop2:alice@lab.test>", M),
	OK("MAIL FROM:<@[192.0.2.1]:alice@lab.test>", M),
	OK("MAIL FROM:<@[IPv6:::1],@hop:alice@lab.test>", M),
	NO("MAIL FROM:<@hop1:>", 553, "5.1.7", M),
	NO("MAIL FROM:<@hop1,alice@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<@hop1,:alice@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<@:alice@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<@hop..x:alice@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<@hop1@hop2:alice@lab.test>", 553, "5.1.7", M),
	NO("MAIL FROM:<@[1.2.3.4]x:alice@lab.test>", 553, "5.1.7", M),
	NO("RCPT TO:<@hop1:>", 553, "5.1.3", R),
	/* MAIL parameters */
	OK("MAIL FROM:<a@b.test> SIZE=1000", M),
	OK("MAIL FROM:<a@b.test> size=0", M),
	OK("MAIL FROM:<a@b.test> SIZE=9223372036854775808", M),
	NO("MAIL FROM:<a@b.test> SIZE=9223372036854775809", 552, "5.3.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=18446744073709551615", 552, "5.3.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=18446744073709551616", 552, "5.3.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=99999999999999999999", 552, "5.3.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=999999999999999999999999999999", 552, "5.3.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> SIZE", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=abc", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=-1", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=+1", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=1k", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=1=2", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=99999999999999999999x", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=1 SIZE=2", 555, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=1 size=1", 555, "5.5.4", M),
	OK("MAIL FROM:<a@b.test> BODY=8BITMIME", M),
	OK("MAIL FROM:<a@b.test> BODY=7bit", M),
	NO("MAIL FROM:<a@b.test> BODY=BINARYMIME", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> BODY", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> BODY=7BIT BODY=7BIT", 555, "5.5.4", M),
	OK("MAIL FROM:<a@b.test> SMTPUTF8", M),
	OK("MAIL FROM:<a@b.test> smtputf8", M),
	NO("MAIL FROM:<a@b.test> SMTPUTF8=yes", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> SMTPUTF8 SMTPUTF8", 555, "5.5.4", M),
	OK("MAIL FROM:<a@b.test> AUTH=<>", M),
	OK("MAIL FROM:<a@b.test> AUTH=a+40b", M),
	NO("MAIL FROM:<a@b.test> AUTH=+ZZ", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> AUTH=+zz", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> AUTH=+4", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> AUTH=a+4", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> AUTH=a+4a", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> AUTH=a+", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> AUTH=a=b", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> AUTH=", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> AUTH=<> AUTH=<>", 555, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> FOO=BAR", 555, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> FOO", 555, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> NOTIFY=NEVER", 555, "5.5.4", M),
	NO_DSN("MAIL FROM:<a@b.test> NOTIFY=NEVER", 555, "5.5.4", M),
	NO("MAIL FROM:<a@b.test>  SIZE=1", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=1 ", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> SIZE=1  BODY=7BIT", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> ", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test>SIZE=1", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> =1", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> S_IZE=1", 501, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> -X=1", 501, "5.5.4", M),
	/* DSN parameters only when DSN is offered */
	NO("MAIL FROM:<a@b.test> RET=HDRS", 555, "5.5.4", M),
	OK_DSN("MAIL FROM:<a@b.test> RET=HDRS", M),
	OK_DSN("MAIL FROM:<a@b.test> ret=full", M),
	NO_DSN("MAIL FROM:<a@b.test> RET=ALL", 501, "5.5.4", M),
	NO_DSN("MAIL FROM:<a@b.test> RET", 501, "5.5.4", M),
	NO_DSN("MAIL FROM:<a@b.test> RET=FULL RET=HDRS", 555, "5.5.4", M),
	NO("MAIL FROM:<a@b.test> ENVID=abc", 555, "5.5.4", M),
	OK_DSN("MAIL FROM:<a@b.test> ENVID=abc+2B", M),
	NO_DSN("MAIL FROM:<a@b.test> ENVID=abc+2b", 501, "5.5.4", M),
	NO_DSN("MAIL FROM:<a@b.test> ENVID=a=b", 501, "5.5.4", M),
	NO_DSN("MAIL FROM:<a@b.test> ENVID=+4", 501, "5.5.4", M),
	NO_DSN("MAIL FROM:<a@b.test> ENVID=+zz", 501, "5.5.4", M),
	NO_DSN("MAIL FROM:<a@b.test> ENVID=a ENVID=b", 555, "5.5.4", M),
	/* UTF-8 paths */
	NO("MAIL FROM:<\xc3\xa5lice@lab.test>", 553, "5.6.7", M),
	NO("MAIL FROM:<a@\xc3\xa5.test>", 553, "5.6.7", M),
	NO("MAIL FROM:<\xc3\xa5lice@lab.test> SMTPUTF8=x", 553, "5.6.7", M),
	NO("MAIL FROM:<\"\xc3\xa5 x\"@lab.test>", 553, "5.6.7", M),
	OK("MAIL FROM:<\xc3\xa5lice@lab.test> SMTPUTF8", M),
	OK("MAIL FROM:<\xc3\xa5lice@lab.test> SIZE=1 smtputf8", M),
	OK("MAIL FROM:<a@\xc3\xa5.test> SMTPUTF8", M),
	OK("MAIL FROM:<\"\xc3\xa5 x\"@lab.test> SMTPUTF8", M),
	OK("MAIL FROM:<\xe2\x82\xac\xf0\x9f\x98\x80@\xe4\xbe\x8b.test> SMTPUTF8", M),
	NO("MAIL FROM:<\xc0\xaf@lab.test> SMTPUTF8", 553, "5.6.7", M),
	NO("MAIL FROM:<\xe0\x80\xaf@lab.test> SMTPUTF8", 553, "5.6.7", M),
	NO("MAIL FROM:<\xf0\x80\x80\xaf@lab.test> SMTPUTF8", 553, "5.6.7", M),
	NO("MAIL FROM:<\xed\xa0\x80@lab.test> SMTPUTF8", 553, "5.6.7", M),
	NO("MAIL FROM:<\xed\xbf\xbf@lab.test> SMTPUTF8", 553, "5.6.7", M),
	NO("MAIL FROM:<\xc3@lab.test> SMTPUTF8", 553, "5.6.7", M),
	NO("MAIL FROM:<a@lab.test\xc3> SMTPUTF8", 553, "5.6.7", M),
	NO("MAIL FROM:<a@lab.test\xe2\x82> SMTPUTF8", 553, "5.6.7", M),
	NO("MAIL FROM:<\x80@lab.test> SMTPUTF8", 553, "5.6.7", M),
	NO("MAIL FROM:<\xf4\x90\x80\x80@lab.test> SMTPUTF8", 553, "5.6.7", M),
	NO("MAIL FROM:<\xf5\x80\x80\x80@lab.test> SMTPUTF8", 553, "5.6.7", M),
	NO("MAIL FROM:<\xff@lab.test> SMTPUTF8", 553, "5.6.7", M),
	NO("MAIL FROM:<\"a\\\xc3\xa5\"@lab.test> SMTPUTF8", 553, "5.1.7", M),
	NO("RCPT TO:<\xc3\xa5@remote.test>", 553, "5.6.7", R),
	{ "RCPT TO:<\xc3\xa5@remote.test>", 0, 1, 0, NULL, R },
	{ "RCPT TO:<\xc3\xa5@remote.test> SMTPUTF8", 0, 1, 555, "5.5.4", R },
	{ "RCPT TO:<b@\xe4\xbe\x8b.test>", 0, 1, 0, NULL, R },
	{ "RCPT TO:<\xed\xa0\x80@remote.test>", 0, 1, 553, "5.6.7", R },
	{ "RCPT TO:<\xc3@remote.test>", 0, 1, 553, "5.6.7", R },
	{ "RCPT TO:<\xc1\x81@remote.test>", 0, 1, 553, "5.6.7", R },
	/* RCPT */
	OK("RCPT TO:<bob@remote.test>", R),
	OK("rcpt to:<bob@remote.test>", R),
	OK("RCPT TO: <bob@remote.test>", R),
	OK("RCPT TO:<@hop:bob@remote.test>", R),
	NO("RCPT TO:<>", 553, "5.1.3", R),
	NO("RCPT TO: <>", 553, "5.1.3", R),
	NO("RCPT TO:<bob>", 553, "5.1.3", R),
	NO("RCPT TO:<bob@remote..test>", 553, "5.1.3", R),
	NO("RCPT TO:bob@remote.test", 501, "5.5.4", R),
	NO("RCPT TO:", 501, "5.5.4", R),
	NO("RCPT", 501, "5.5.4", R),
	NO("RCPT FROM:<bob@remote.test>", 501, "5.5.4", R),
	NO("RCPT TO:<bob@remote.test> BODY=7BIT", 555, "5.5.4", R),
	NO("RCPT TO:<bob@remote.test> NOTIFY=NEVER", 555, "5.5.4", R),
	NO("RCPT TO:<bob@remote.test> ORCPT=rfc822;bob+40remote.test", 555, "5.5.4", R),
	OK_DSN("RCPT TO:<bob@remote.test> NOTIFY=NEVER", R),
	OK_DSN("RCPT TO:<bob@remote.test> notify=never", R),
	OK_DSN("RCPT TO:<bob@remote.test> NOTIFY=success,DELAY", R),
	OK_DSN("RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,FAILURE,DELAY", R),
	NO_DSN("RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,SUCCESS", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> NOTIFY=NEVER,DELAY", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> NOTIFY=DELAY,NEVER", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,,DELAY", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> NOTIFY=,SUCCESS", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> NOTIFY=SUCCES", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> NOTIFY=SUCCESSX", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> NOTIFY=", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> NOTIFY", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> NOTIFY=NEVER NOTIFY=NEVER", 555, "5.5.4", R),
	OK_DSN("RCPT TO:<bob@remote.test> ORCPT=rfc822;bob+40remote.test", R),
	OK_DSN("RCPT TO:<bob@remote.test> ORCPT=utf-8;b\\x{E5}b@remote.test", R),
	NO_DSN("RCPT TO:<bob@remote.test> ORCPT=bob@remote.test", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> ORCPT=;bob", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> ORCPT=rfc822;", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> ORCPT=rfc/822;bob", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> ORCPT=rfc822;a+zz", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> ORCPT=rfc822;a+4", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> ORCPT=rfc822;a=b", 501, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> ORCPT=a;b ORCPT=a;b", 555, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> SIZE=1", 555, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> RET=FULL", 555, "5.5.4", R),
	NO_DSN("RCPT TO:<bob@remote.test> FOO=1", 555, "5.5.4", R),
	/* BDAT */
	OK("BDAT 0", SMTP_V_BDAT),
	OK("BDAT 1", SMTP_V_BDAT),
	OK("BDAT 0 LAST", SMTP_V_BDAT),
	OK("bdat 1000 last", SMTP_V_BDAT),
	OK("BDAT 1234567890123456789", SMTP_V_BDAT),
	OK("BDAT 9999999999999999999 LAST", SMTP_V_BDAT),
	OK("BDAT 0000000000000000001", SMTP_V_BDAT),
	NO("BDAT 12345678901234567890", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT 00000000000000000001", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT 99999999999999999999", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT ", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT x", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT 1x", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT -1", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT +1", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT 0x10", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT LAST", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT 10 LAST x", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT 10 LASTX", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT 10 LAST ", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT 10  LAST", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT 10 ", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT 10 FIRST", 501, "5.5.4", SMTP_V_BDAT),
	NO("BDAT 10 LAST LAST", 501, "5.5.4", SMTP_V_BDAT),
	/* AUTH */
	OK("AUTH PLAIN", SMTP_V_AUTH),
	OK("auth plain", SMTP_V_AUTH),
	OK("AUTH PLAIN AGFsaWNlAHNlY3JldA==", SMTP_V_AUTH),
	OK("AUTH PLAIN =", SMTP_V_AUTH),
	OK("AUTH SCRAM-SHA-256", SMTP_V_AUTH),
	OK("AUTH X_MECH_9", SMTP_V_AUTH),
	OK("AUTH ABCDEFGHIJKLMNOPQRST", SMTP_V_AUTH),
	NO("AUTH", 501, "5.5.4", SMTP_V_AUTH),
	NO("AUTH ", 501, "5.5.4", SMTP_V_AUTH),
	NO("AUTH PLAIN ", 501, "5.5.4", SMTP_V_AUTH),
	NO("AUTH PLAIN  x", 501, "5.5.4", SMTP_V_AUTH),
	NO("AUTH PLAIN a b", 501, "5.5.4", SMTP_V_AUTH),
	NO("AUTH PL@IN", 501, "5.5.4", SMTP_V_AUTH),
	NO("AUTH PLAIN.", 501, "5.5.4", SMTP_V_AUTH),
	NO("AUTH ABCDEFGHIJKLMNOPQRSTU", 501, "5.5.4", SMTP_V_AUTH),
};

static int
run(const char *line, size_t len, int dsn, int utf8txn, struct smtp_cmd *c,
    struct smtp_err *e, char *buf, size_t bufsz)
{
	struct smtp_parse_opts o = { dsn, utf8txn };

	assert_true(len < bufsz);
	memcpy(buf, line, len);
	buf[len] = '\0';
	return smtp_cmd_parse(buf, len, &o, c, e);
}

static void
test_table(void **state)
{
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *t = &cases[i];
		struct smtp_cmd c;
		struct smtp_err e;
		char buf[SMTP_CMD_MAX + 1];
		int rc;

		rc = run(t->line, strlen(t->line), t->dsn, t->utf8txn, &c, &e, buf, sizeof(buf));
		if (t->rc == 0 && rc != 0) {
			print_error("\"%s\": refused with %d %s %s\n", t->line, e.code, e.enh, e.text);
			bad++;
		}
		if (t->rc != 0 && (rc != -1 || e.code != t->rc || strcmp(e.enh, t->enh) != 0)) {
			print_error("\"%s\": got rc=%d %d %s (%s), want %d %s\n", t->line, rc,
			    e.code, e.enh, e.text, t->rc, t->enh);
			bad++;
		}
		if (c.verb != t->verb) {
			print_error("\"%s\": verb %d, want %d\n", t->line, c.verb, t->verb);
			bad++;
		}
		if (rc != 0 && (e.text[0] == '\0' || strlen(e.text) >= sizeof(e.text))) {
			print_error("\"%s\": refusal without a sentence\n", t->line);
			bad++;
		}
	}
	if (bad)
		fail_msg("%d table failures", bad);
}

/* Each control octet (and NUL, CR, LF) at each position of good lines. */
static void
test_controls(void **state)
{
	static const char *const good[] = {
		"EHLO client.lab.test", "MAIL FROM:<a@b.test> SIZE=1",
		"RCPT TO:<\"q x\"@b.test>", "AUTH PLAIN AGFsaWNlAHNlY3JldA==", "BDAT 10 LAST",
		"NOOP", "DATA",
	};
	struct smtp_cmd c;
	struct smtp_err e;
	char line[128], buf[128];
	size_t g, pos, len;
	unsigned ch;

	for (g = 0; g < sizeof(good) / sizeof(good[0]); g++) {
		len = strlen(good[g]);
		assert_int_equal(run(good[g], len, 1, 1, &c, &e, buf, sizeof(buf)), 0);
		for (pos = 0; pos <= len; pos++) {
			for (ch = 0; ch <= 0x7f; ch++) {
				if (ch >= 0x20 && ch < 0x7f)
					continue;
				memcpy(line, good[g], pos);
				line[pos] = (char)ch;
				memcpy(line + pos + 1, good[g] + pos, len - pos);
				if (run(line, len + 1, 1, 1, &c, &e, buf, sizeof(buf)) != -1 ||
				    e.code != 500 || strcmp(e.enh, "5.5.2") != 0)
					fail_msg("%s with 0x%02x at %zu: %d %s", good[g], ch, pos,
					    e.code, e.enh);
				/* replacing instead of inserting */
				if (pos < len) {
					memcpy(line, good[g], len);
					line[pos] = (char)ch;
					if (run(line, len, 1, 1, &c, &e, buf, sizeof(buf)) != -1 ||
					    e.code != 500)
						fail_msg("%s with 0x%02x over %zu", good[g], ch, pos);
				}
			}
		}
	}
}

/* Every prefix of good lines: no crash, and a refusal is a full reply. */
static void
test_prefixes(void **state)
{
	static const char *const good[] = {
		"MAIL FROM:<@hop,@[IPv6:::1]:\"a>b\\\"c\"@[192.0.2.1]> SIZE=10 BODY=8BITMIME "
		    "SMTPUTF8 RET=FULL ENVID=a+2Bb AUTH=<>",
		"RCPT TO:<\xc3\xa5@\xe4\xbe\x8b.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+40b",
		"BDAT 1234567890123456789 LAST", "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
	};
	struct smtp_cmd c;
	struct smtp_err e;
	char buf[256];
	size_t g, n;

	for (g = 0; g < sizeof(good) / sizeof(good[0]); g++) {
		size_t len = strlen(good[g]);

		assert_int_equal(run(good[g], len, 1, 1, &c, &e, buf, sizeof(buf)), 0);
		for (n = 0; n < len; n++) {
			if (run(good[g], n, 1, 1, &c, &e, buf, sizeof(buf)) < 0 &&
			    (e.code < 500 || e.code > 555 || e.text[0] == '\0'))
				fail_msg("prefix %zu of %s: %d", n, good[g], e.code);
		}
	}
}

static void
test_values(void **state)
{
	struct smtp_cmd c;
	struct smtp_err e;
	char buf[600];
	const char *l;

	l = "MAIL FROM:<@a,@b:Alice@Lab.test> SIZE=4096 BODY=8BITMIME SMTPUTF8 RET=FULL "
	    "ENVID=id+2B1 AUTH=<>";
	assert_int_equal(run(l, strlen(l), 1, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_int_equal(c.verb, SMTP_V_MAIL);
	assert_string_equal(c.path, "Alice@Lab.test");
	assert_int_equal(c.size, 4096);
	assert_int_equal(c.body, SMTP_BODY_8BITMIME);
	assert_int_equal(c.smtputf8, 1);
	assert_int_equal(c.ret, SMTP_RET_FULL);
	assert_string_equal(c.envid, "id+2B1");
	assert_true(c.envid > buf && c.envid < buf + sizeof(buf));
	assert_string_equal(c.auth, "<>");
	assert_null(c.orcpt);
	assert_string_equal(c.notify, "");

	l = "MAIL FROM:<a@b.test> BODY=7BIT RET=HDRS SIZE=9223372036854775808";
	assert_int_equal(run(l, strlen(l), 1, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_int_equal(c.body, SMTP_BODY_7BIT);
	assert_int_equal(c.ret, SMTP_RET_HDRS);
	assert_true(c.size == (1ULL << 63));
	assert_int_equal(c.smtputf8, 0);
	assert_null(c.envid);
	assert_null(c.auth);

	l = "MAIL FROM:<a@b.test>";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_int_equal(c.size, 0);
	assert_int_equal(c.body, SMTP_BODY_NONE);
	assert_int_equal(c.ret, SMTP_RET_NONE);

	l = "RCPT TO:<bob@remote.test> NOTIFY=delay,failure ORCPT=rfc822;bob+40remote.test";
	assert_int_equal(run(l, strlen(l), 1, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.path, "bob@remote.test");
	assert_string_equal(c.notify, "DELAY,FAILURE");
	assert_string_equal(c.orcpt, "rfc822;bob+40remote.test");

	l = "RCPT TO:<bob@remote.test> NOTIFY=never";
	assert_int_equal(run(l, strlen(l), 1, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.notify, "NEVER");

	l = "RCPT TO:<bob@remote.test> NOTIFY=Success,Failure,Delay";
	assert_int_equal(run(l, strlen(l), 1, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.notify, "SUCCESS,FAILURE,DELAY");

	l = "MAIL FROM:<>";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.path, "");
	l = "mail from: <\"a b\\\"c\"@[IPv6:::1]>";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.path, "\"a b\\\"c\"@[IPv6:::1]");
	l = "MAIL FROM:<\"a\\\">b\"@lab.test> SIZE=1";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.path, "\"a\\\">b\"@lab.test");
	assert_int_equal(c.size, 1);
	l = "RCPT TO:<@[IPv6:::1],@x.test:\"a>b\"@y.test>";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.path, "\"a>b\"@y.test");
	l = "RCPT TO:<\xc3\xa5@remote.test>";
	assert_int_equal(run(l, strlen(l), 0, 1, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.path, "\xc3\xa5@remote.test");

	l = "BDAT 1234567890123456789 LAST";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_true(c.bdat_size == 1234567890123456789ULL);
	assert_int_equal(c.bdat_last, 1);
	l = "BDAT 9999999999999999999";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_true(c.bdat_size == 9999999999999999999ULL);
	assert_int_equal(c.bdat_last, 0);
	l = "BDAT 0";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_int_equal(c.bdat_size, 0);
	l = "BDAT 5 LAST x";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), -1);
	assert_int_equal(c.bdat_last, 0);

	l = "AUTH login dXNlcg==";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.auth_mech, "login");
	assert_string_equal(c.auth_initial, "dXNlcg==");
	l = "AUTH PLAIN";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.auth_mech, "PLAIN");
	assert_null(c.auth_initial);
	l = "AUTH PLAIN =";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.auth_initial, "=");

	l = "EHLO [192.0.2.1]";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.domain, "[192.0.2.1]");
	l = "NOOP hello there";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.arg, "hello there");
	l = "HELP";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_null(c.arg);
	l = "VRFY bob";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.arg, "bob");

	/* a refusal after the verb leaves the verb for a 530 answer */
	l = "MAIL FROM:<bad";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), -1);
	assert_int_equal(c.verb, SMTP_V_MAIL);
	/* a bad source route is named as such */
	l = "MAIL FROM:<@hop1,alice@lab.test>";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), -1);
	assert_non_null(strstr(e.text, "route"));
	/* a refused SIZE leaves no size behind */
	l = "MAIL FROM:<a@b.test> SIZE=99999999999999999999";
	assert_int_equal(run(l, strlen(l), 0, 0, &c, &e, buf, sizeof(buf)), -1);
	assert_int_equal(c.size, 0);
}

/* "MAIL FROM:<aaa...@b.b.b...b.test>" whose path is exactly plen octets. */
static int
parse_path_of(size_t plen, int is_rcpt, struct smtp_cmd *c, struct smtp_err *e)
{
	char buf[700], line[700], path[512];
	size_t n = 0;

	memset(path, 'a', 60);
	n = 60;
	path[n++] = '@';
	while (n + 6 < plen) {
		path[n++] = 'b';
		path[n++] = '.';
	}
	while (n < plen)
		path[n++] = 't';
	path[n] = '\0';
	assert_int_equal(strlen(path), plen);
	snprintf(line, sizeof(line), "%s<%s>", is_rcpt ? "RCPT TO:" : "MAIL FROM:", path);
	return run(line, strlen(line), 0, 0, c, e, buf, sizeof(buf));
}

/* "r.r.r...r" of n (odd) octets at p */
static size_t
labels(char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = i % 2 ? '.' : 'r';
	return n;
}

static void
test_lengths(void **state)
{
	struct smtp_cmd c;
	struct smtp_err e;
	char line[700], buf[700];
	size_t n;

	/* a path of 254 octets (256 with <>) is fine, 255 is too long */
	assert_int_equal(parse_path_of(254, 0, &c, &e), 0);
	assert_int_equal(strlen(c.path), 254);
	assert_int_equal(parse_path_of(255, 0, &c, &e), -1);
	assert_int_equal(e.code, 553);
	assert_string_equal(e.enh, "5.1.7");
	assert_int_equal(parse_path_of(254, 1, &c, &e), 0);
	assert_int_equal(parse_path_of(255, 1, &c, &e), -1);
	assert_int_equal(e.code, 553);
	assert_string_equal(e.enh, "5.1.3");
	assert_int_equal(parse_path_of(400, 1, &c, &e), -1);
	assert_int_equal(e.code, 553);
	/* the source route counts toward the path length */
	n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<@");
	n += labels(line + n, 199);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ":alice@lab.test>");
	assert_int_equal(run(line, n, 0, 0, &c, &e, buf, sizeof(buf)), 0);
	assert_string_equal(c.path, "alice@lab.test");
	n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<@");
	n += labels(line + n, 241);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ":alice@lab.test>");
	assert_int_equal(run(line, n, 0, 0, &c, &e, buf, sizeof(buf)), -1);
	assert_int_equal(e.code, 553);

	/* local part: 64 octets fine, 65 refused (also in SMTPUTF8 mode) */
	n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<");
	memset(line + n, 'a', 64);
	n += 64;
	n += (size_t)snprintf(line + n, sizeof(line) - n, "@b.test>");
	assert_int_equal(run(line, n, 0, 0, &c, &e, buf, sizeof(buf)), 0);
	n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<");
	memset(line + n, 'a', 65);
	n += 65;
	n += (size_t)snprintf(line + n, sizeof(line) - n, "@b.test> SMTPUTF8");
	assert_int_equal(run(line, n, 0, 0, &c, &e, buf, sizeof(buf)), -1);
	assert_int_equal(e.code, 553);
	/* a quoted local part of 65 octets with its quotes */
	n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<\"");
	memset(line + n, 'a', 63);
	n += 63;
	n += (size_t)snprintf(line + n, sizeof(line) - n, "\"@b.test>");
	assert_int_equal(run(line, n, 0, 0, &c, &e, buf, sizeof(buf)), -1);
	assert_int_equal(e.code, 553);

	/* a 63-octet label is fine, 64 refused */
	n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<a@");
	memset(line + n, 'b', 63);
	n += 63;
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".test>");
	assert_int_equal(run(line, n, 0, 0, &c, &e, buf, sizeof(buf)), 0);
	n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<a@");
	memset(line + n, 'b', 64);
	n += 64;
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".test>");
	assert_int_equal(run(line, n, 0, 0, &c, &e, buf, sizeof(buf)), -1);
	assert_int_equal(e.code, 553);

	/* EHLO domain: 255 octets fine, 256 refused */
	n = (size_t)snprintf(line, sizeof(line), "EHLO ");
	while (n < 5 + 254) {
		line[n++] = 'x';
		line[n++] = '.';
	}
	line[n++] = 'x';
	assert_int_equal(n - 5, 255);
	assert_int_equal(run(line, n, 0, 0, &c, &e, buf, sizeof(buf)), 0);
	line[n++] = 'y';
	assert_int_equal(run(line, n, 0, 0, &c, &e, buf, sizeof(buf)), -1);
	assert_int_equal(e.code, 501);

	/* ENVID: 100 octets fine, 101 refused */
	n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<a@b.test> ENVID=");
	memset(line + n, 'e', 100);
	n += 100;
	assert_int_equal(run(line, n, 1, 0, &c, &e, buf, sizeof(buf)), 0);
	line[n++] = 'e';
	assert_int_equal(run(line, n, 1, 0, &c, &e, buf, sizeof(buf)), -1);
	assert_int_equal(e.code, 501);

	/* ORCPT: 500 octets fine, 501 refused */
	n = (size_t)snprintf(line, sizeof(line), "RCPT TO:<a@b.test> ORCPT=");
	n += (size_t)snprintf(line + n, sizeof(line) - n, "rfc822;");
	memset(line + n, 'o', 493);
	n += 493;
	assert_int_equal(run(line, n, 1, 0, &c, &e, buf, sizeof(buf)), 0);
	line[n++] = 'o';
	assert_int_equal(run(line, n, 1, 0, &c, &e, buf, sizeof(buf)), -1);
	assert_int_equal(e.code, 501);

	/* NUL inside the line: the length, not strlen, is what counts */
	memcpy(buf, "NOOP a\0b", 9);
	assert_int_equal(smtp_cmd_parse(buf, 8, &(struct smtp_parse_opts){ 0, 0 }, &c, &e), -1);
	assert_int_equal(e.code, 500);
	assert_string_equal(e.enh, "5.5.2");
}

/* Reference encoder for round trips. */
static size_t
b64enc(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		out[o++] = tab[in[i] >> 2];
		out[o++] = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		out[o++] = tab[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		out[o++] = tab[in[i + 2] & 63];
	}
	if (n - i == 1) {
		out[o++] = tab[in[i] >> 2];
		out[o++] = tab[(in[i] & 3) << 4];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		out[o++] = tab[in[i] >> 2];
		out[o++] = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		out[o++] = tab[(in[i + 1] & 15) << 2];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static void
test_base64(void **state)
{
	unsigned char raw[64];
	char enc[128], out[64];
	size_t n = 99, len, el, i;

	assert_int_equal(smtp_base64_decode("", 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	n = 99;
	assert_int_equal(smtp_base64_decode("=", 1, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	n = 99;
	assert_int_equal(smtp_base64_decode("=", 1, out, 0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(smtp_base64_decode("YWJj", 4, out, sizeof(out), &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "abc", 3);
	assert_int_equal(smtp_base64_decode("YWI=", 4, out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "ab", 2);
	assert_int_equal(smtp_base64_decode("YQ==", 4, out, sizeof(out), &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(out, "a", 1);
	assert_int_equal(smtp_base64_decode("+/+/", 4, out, sizeof(out), &n), 0);
	assert_memory_equal(out, "\xfb\xff\xbf", 3);
	assert_int_equal(smtp_base64_decode("AGFsaWNlAHNlY3JldA==", 20, out, sizeof(out), &n), 0);
	assert_int_equal(n, 13);
	assert_memory_equal(out, "\0alice\0secret", 13);
	/* refused: no padding, bad characters, whitespace, padding inside,
	 * non-zero trailing bits, too small an output */
	assert_int_equal(smtp_base64_decode("YWI", 3, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YQ", 2, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YW*j", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YW-j", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YW_j", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YW j", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YWJj ", 5, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YWJj\r\n", 6, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YW\nJj", 5, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YW\0j", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YW\xc3\xa4", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YQ==YWJj", 8, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YQ=A", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YR==", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YWJ=", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("Y===", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("====", 4, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("==", 2, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("*", 1, out, sizeof(out), &n), -1);
	assert_int_equal(smtp_base64_decode("YWJj", 4, out, 2, &n), -1);
	assert_int_equal(smtp_base64_decode("YWJj", 4, out, 3, &n), 0);
	assert_int_equal(smtp_base64_decode("YWI=", 4, out, 1, &n), -1);
	assert_int_equal(smtp_base64_decode("YWI=", 4, out, 2, &n), 0);
	assert_int_equal(smtp_base64_decode("YQ==", 4, out, 0, &n), -1);
	assert_int_equal(smtp_base64_decode("YQ==", 4, out, 1, &n), 0);

	/* round trips at every length, and every output size one too small */
	for (len = 0; len <= sizeof(raw); len++) {
		for (i = 0; i < len; i++)
			raw[i] = (unsigned char)(i * 37 + len * 11);
		el = b64enc(raw, len, enc);
		assert_int_equal(smtp_base64_decode(enc, el, out, len, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(out, raw, len);
		if (len > 0)
			assert_int_equal(smtp_base64_decode(enc, el, out, len - 1, &n), -1);
		/* every proper prefix that is not a whole quantum is refused */
		for (i = 1; i < el; i++)
			if (i % 4 != 0)
				assert_int_equal(smtp_base64_decode(enc, i, out, sizeof(out),
				    &n), -1);
	}
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
	/* authzid equal to authcid */
	assert_int_equal(smtp_auth_plain_decode("alice\0alice\0pw", 14, &u, &p, &pl), 0);
	assert_string_equal(u, "alice");
	assert_int_equal(pl, 2);
	assert_memory_equal(p, "pw", 2);
	/* empty password: the decoder allows it, the checker refuses */
	assert_int_equal(smtp_auth_plain_decode("\0alice\0", 7, &u, &p, &pl), 0);
	assert_int_equal(pl, 0);
	/* 8-bit passwords pass through unchanged */
	assert_int_equal(smtp_auth_plain_decode("\0a\0p\xc3\xa4", 6, &u, &p, &pl), 0);
	assert_int_equal(pl, 3);
	/* different authzid, prefix, case difference */
	assert_int_equal(smtp_auth_plain_decode("bob\0alice\0pw", 12, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("alic\0alice\0pw", 13, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("alicex\0alice\0pw", 15, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("Alice\0alice\0pw", 14, &u, &p, &pl), -1);
	/* empty user */
	assert_int_equal(smtp_auth_plain_decode("\0\0pw", 4, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("alice\0\0pw", 9, &u, &p, &pl), -1);
	/* extra NULs */
	assert_int_equal(smtp_auth_plain_decode("\0alice\0p\0w", 10, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("\0alice\0pw\0", 10, &u, &p, &pl), -1);
	/* missing parts */
	assert_int_equal(smtp_auth_plain_decode("", 0, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("alice", 5, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("\0alice", 6, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("\0", 1, &u, &p, &pl), -1);
	assert_int_equal(smtp_auth_plain_decode("\0\0", 2, &u, &p, &pl), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_controls),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_auth_plain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
