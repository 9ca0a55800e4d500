/* test_smtp_reply.c — upstream reply parser: strict grammar, limits, splits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_reply.h"

#define MAXR 300

/* Everything one feeding pattern produced. */
struct outcome {
	int status;             /* 0 all consumed waiting, -1 error */
	size_t nreplies;
	struct smtp_reply *r[MAXR];
	char err[128];
	size_t used;            /* bytes consumed before the end/error */
};

static void
outcome_clear(struct outcome *o)
{
	size_t i;

	for (i = 0; i < o->nreplies; i++)
		smtp_reply_free(&o->r[i]);
	o->nreplies = 0;
}

/* Feed buf in chunks of `step` bytes (0 = one shot), collecting replies. */
static void
run(const char *buf, size_t len, size_t step, struct outcome *o)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	size_t off = 0, end, used;
	struct smtp_reply *r;
	int rv;

	memset(o, 0, sizeof(*o));
	while (off < len || len == 0) {
		end = step == 0 || len - off < step ? len : off + step;
		while (off < end) {
			rv = smtp_reply_parser_feed(p, buf + off, end - off, &used, &r);
			assert_true(used <= end - off);
			if (rv < 0) {
				assert_null(r);
				o->status = -1;
				o->used = off + used;
				snprintf(o->err, sizeof(o->err), "%s", smtp_reply_parser_error(p));
				assert_true(o->err[0] != '\0');
				smtp_reply_parser_free(&p);
				return;
			}
			if (rv == 0) {
				assert_null(r);
				assert_int_equal(used, end - off);
			} else {
				assert_int_equal(rv, 1);
				assert_non_null(r);
				assert_true(used > 0);
				assert_true(o->nreplies < MAXR);
				o->r[o->nreplies++] = r;
			}
			off += used;
		}
		if (len == 0)
			break;
	}
	o->used = off;
	assert_string_equal(smtp_reply_parser_error(p), "");
	smtp_reply_parser_free(&p);
	assert_null(p);
}

static void
assert_same(const struct outcome *a, const struct outcome *b)
{
	size_t i, j;

	assert_int_equal(a->status, b->status);
	assert_int_equal(a->nreplies, b->nreplies);
	assert_int_equal(a->used, b->used);
	assert_string_equal(a->err, b->err);
	for (i = 0; i < a->nreplies; i++) {
		assert_int_equal(a->r[i]->code, b->r[i]->code);
		assert_string_equal(a->r[i]->enh, b->r[i]->enh);
		assert_string_equal(a->r[i]->text, b->r[i]->text);
		assert_int_equal(a->r[i]->nlines, b->r[i]->nlines);
		for (j = 0; j < a->r[i]->nlines; j++)
			assert_string_equal(a->r[i]->lines[j], b->r[i]->lines[j]);
		assert_null(a->r[i]->lines[a->r[i]->nlines]);
	}
}

/* One-shot parse, then check that every two-piece split and byte-by-byte
 * feeding give the same outcome.  Returns the one-shot outcome. */
static void
parse(const char *buf, size_t len, struct outcome *o)
{
	struct smtp_reply_parser *p;
	struct outcome other;
	size_t k, used, u2;
	struct smtp_reply *r;
	int rv;

	run(buf, len, 0, o);
	run(buf, len, 1, &other);
	assert_same(o, &other);
	outcome_clear(&other);
	for (k = 1; k < len; k++) {
		/* first piece alone, then the rest, collecting as run() does */
		struct outcome s;
		size_t off = 0;

		memset(&s, 0, sizeof(s));
		p = smtp_reply_parser_new();
		for (;;) {
			size_t end = off < k ? k : len;

			if (off >= len)
				break;
			rv = smtp_reply_parser_feed(p, buf + off, end - off, &used, &r);
			if (rv < 0) {
				s.status = -1;
				s.used = off + used;
				snprintf(s.err, sizeof(s.err), "%s", smtp_reply_parser_error(p));
				/* sticky */
				rv = smtp_reply_parser_feed(p, "250 ok\r\n", 8, &u2, &r);
				assert_int_equal(rv, -1);
				assert_int_equal(u2, 0);
				assert_null(r);
				break;
			}
			if (rv == 1)
				s.r[s.nreplies++] = r;
			off += used;
		}
		if (s.status == 0)
			s.used = off;
		assert_same(o, &s);
		outcome_clear(&s);
		smtp_reply_parser_free(&p);
	}
}

#define PARSE(s, o) parse((s), sizeof(s) - 1, (o))

static void
expect_error(const char *buf, size_t len, size_t used, const char *errpart)
{
	struct outcome o;

	parse(buf, len, &o);
	assert_int_equal(o.status, -1);
	assert_int_equal(o.used, used);
	if (strstr(o.err, errpart) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", o.err, errpart);
	outcome_clear(&o);
}
#define EXPECT_ERROR(s, used, part) expect_error((s), sizeof(s) - 1, (used), (part))

static void
expect_one(const char *buf, size_t len, int code, const char *enh, const char *text,
    size_t nlines)
{
	struct outcome o;

	parse(buf, len, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.nreplies, 1);
	assert_int_equal(o.used, len);
	assert_int_equal(o.r[0]->code, code);
	assert_string_equal(o.r[0]->enh, enh);
	assert_string_equal(o.r[0]->text, text);
	assert_int_equal(o.r[0]->nlines, nlines);
	outcome_clear(&o);
}
#define EXPECT_ONE(s, code, enh, text, n) expect_one((s), sizeof(s) - 1, (code), (enh), (text), (n))

static void
t_single(void **st)
{
	EXPECT_ONE("250 OK\r\n", 250, "", "OK", 1);
	EXPECT_ONE("220 mx.example.org ESMTP ready\r\n", 220, "", "mx.example.org ESMTP ready", 1);
	EXPECT_ONE("250\r\n", 250, "", "", 1);             /* bare code */
	EXPECT_ONE("250 \r\n", 250, "", "", 1);
	EXPECT_ONE("250  two spaces \r\n", 250, "", " two spaces ", 1);
	EXPECT_ONE("559 x\r\n", 559, "", "x", 1);
	EXPECT_ONE("200 x\r\n", 200, "", "x", 1);
	/* 8-bit and control bytes (not NUL/CR/LF) are kept as they are */
	EXPECT_ONE("250 \xc3\xa9\x01\t\x7f ok\r\n", 250, "", "\xc3\xa9\x01\t\x7f ok", 1);
}

static void
t_multi(void **st)
{
	struct outcome o;

	PARSE("250-mx.example.org\r\n250-PIPELINING\r\n250-\r\n250 SIZE 1000\r\n", &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.nreplies, 1);
	assert_int_equal(o.r[0]->code, 250);
	assert_int_equal(o.r[0]->nlines, 4);
	assert_string_equal(o.r[0]->lines[0], "mx.example.org");
	assert_string_equal(o.r[0]->lines[1], "PIPELINING");
	assert_string_equal(o.r[0]->lines[2], "");
	assert_string_equal(o.r[0]->lines[3], "SIZE 1000");
	assert_null(o.r[0]->lines[4]);
	assert_string_equal(o.r[0]->text, "mx.example.org\nPIPELINING\n\nSIZE 1000");
	outcome_clear(&o);

	/* a bare code line ends the reply */
	EXPECT_ONE("354-a\r\n354\r\n", 354, "", "a\n", 2);
	/* "250-" with nothing else is a continuation */
	EXPECT_ONE("250-\r\n250-\r\n250 x\r\n", 250, "", "\n\nx", 3);
}

static void
t_incomplete(void **st)
{
	struct outcome o;

	PARSE("250 OK", &o);               /* no CRLF yet */
	assert_int_equal(o.status, 0);
	assert_int_equal(o.nreplies, 0);
	assert_int_equal(o.used, 6);
	PARSE("250 OK\r", &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.nreplies, 0);
	PARSE("250-a\r\n250-b\r\n", &o);   /* a continuation promises more */
	assert_int_equal(o.status, 0);
	assert_int_equal(o.nreplies, 0);
	PARSE("", &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.nreplies, 0);
	PARSE("2", &o);
	assert_int_equal(o.status, 0);
}

static void
t_mismatch(void **st)
{
	EXPECT_ERROR("250-a\r\n251 b\r\n", 9, "code 251 differs from the reply's code 250");
	EXPECT_ERROR("250-a\r\n250-b\r\n550 c\r\n", 16, "reply line 3: code 550 differs");
	EXPECT_ERROR("250-a\r\n350 b\r\n", 9, "differs");
}

static void
t_bad_codes(void **st)
{
	EXPECT_ERROR("600 x\r\n", 0, "does not start with 2..5");
	EXPECT_ERROR("100 x\r\n", 0, "does not start with 2..5");
	EXPECT_ERROR(" 250 x\r\n", 0, "does not start with 2..5");
	EXPECT_ERROR("260 x\r\n", 1, "second digit");
	EXPECT_ERROR("2x0 x\r\n", 1, "second digit");
	EXPECT_ERROR("25x x\r\n", 2, "third character");
	EXPECT_ERROR("25 x\r\n", 2, "third character");
	EXPECT_ERROR("25\r\n", 2, "shorter than a reply code");
	EXPECT_ERROR("\r\n", 0, "shorter than a reply code");
	EXPECT_ERROR("2500\r\n", 3, "not followed by SP, '-' or CRLF");
	EXPECT_ERROR("250x\r\n", 3, "not followed by SP");
	EXPECT_ERROR("250\tx\r\n", 3, "not followed by SP");
	/* second reply bad: the first still comes out */
	{
		struct outcome o;

		PARSE("250 ok\r\n600 x\r\n", &o);
		assert_int_equal(o.status, -1);
		assert_int_equal(o.nreplies, 1);
		assert_int_equal(o.used, 8);
		assert_string_equal(o.r[0]->text, "ok");
		assert_string_equal(o.err, "reply line 1: reply code does not start with 2..5");
		outcome_clear(&o);
	}
}

static void
t_line_endings(void **st)
{
	EXPECT_ERROR("250 OK\n", 6, "LF without CR");
	EXPECT_ERROR("250\n", 3, "LF without CR");
	EXPECT_ERROR("\n", 0, "LF without CR");
	EXPECT_ERROR("250 O\rK\r\n", 6, "CR not followed by LF");
	EXPECT_ERROR("250 OK\r\r\n", 7, "CR not followed by LF");
	EXPECT_ERROR("250-a\r\n250 b\n\r\n", 12, "LF without CR");
	EXPECT_ERROR("250 O\0K\r\n", 5, "NUL byte");
	EXPECT_ERROR("\0", 0, "NUL byte");
	EXPECT_ERROR("250 OK\r\0", 7, "CR not followed by LF");
}

static void
t_line_length(void **st)
{
	char buf[SMTP_REPLY_LINE_MAX + 16];
	struct outcome o;
	size_t n;

	/* longest line: 2048 octets with code and CRLF */
	memcpy(buf, "250 ", 4);
	memset(buf + 4, 'a', SMTP_REPLY_LINE_MAX - 6);
	memcpy(buf + SMTP_REPLY_LINE_MAX - 2, "\r\n", 2);
	n = SMTP_REPLY_LINE_MAX;
	run(buf, n, 0, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.nreplies, 1);
	assert_int_equal(strlen(o.r[0]->text), SMTP_REPLY_LINE_MAX - 6);
	outcome_clear(&o);
	run(buf, n, 1, &o);
	assert_int_equal(o.nreplies, 1);
	outcome_clear(&o);

	/* one more octet: refused at that octet */
	memset(buf + 4, 'a', SMTP_REPLY_LINE_MAX - 5);
	memcpy(buf + SMTP_REPLY_LINE_MAX - 1, "\r\n", 2);
	n = SMTP_REPLY_LINE_MAX + 1;
	run(buf, n, 0, &o);
	assert_int_equal(o.status, -1);
	assert_int_equal(o.used, SMTP_REPLY_LINE_MAX - 2);
	assert_non_null(strstr(o.err, "line longer than 2048 octets"));
	run(buf, n, 7, &o);
	assert_int_equal(o.status, -1);
	assert_int_equal(o.used, SMTP_REPLY_LINE_MAX - 2);
}

static char *
many_lines(size_t nlines, size_t textlen, int last_more, size_t *len_r)
{
	size_t per = 4 + textlen + 2, i;
	char *b = malloc(nlines * per), *d = b;

	assert_non_null(b);
	for (i = 0; i < nlines; i++) {
		memcpy(d, i + 1 < nlines || last_more ? "250-" : "250 ", 4);
		memset(d + 4, 'x', textlen);
		memcpy(d + 4 + textlen, "\r\n", 2);
		d += per;
	}
	*len_r = nlines * per;
	return b;
}

static void
t_too_many_lines(void **st)
{
	struct outcome o;
	size_t len;
	char *b;

	b = many_lines(SMTP_REPLY_LINES_MAX, 1, 0, &len);
	run(b, len, 0, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.nreplies, 1);
	assert_int_equal(o.r[0]->nlines, SMTP_REPLY_LINES_MAX);
	outcome_clear(&o);
	free(b);

	/* the 256th line promising a 257th is refused at its LF */
	b = many_lines(SMTP_REPLY_LINES_MAX, 1, 1, &len);
	run(b, len, 0, &o);
	assert_int_equal(o.status, -1);
	assert_int_equal(o.used, len - 1);
	assert_string_equal(o.err, "reply line 256: more than 256 lines in one reply");
	free(b);
	b = many_lines(SMTP_REPLY_LINES_MAX + 1, 1, 0, &len);
	run(b, len, 3, &o);
	assert_int_equal(o.status, -1);
	free(b);
}

static void
t_reply_size(void **st)
{
	struct outcome o;
	size_t len;
	char *b;

	/* 32 lines of 2048 octets = 65536: the largest reply */
	b = many_lines(32, SMTP_REPLY_LINE_MAX - 6, 0, &len);
	assert_int_equal(len, SMTP_REPLY_SIZE_MAX);
	run(b, len, 0, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.nreplies, 1);
	assert_int_equal(strlen(o.r[0]->text), 32 * (SMTP_REPLY_LINE_MAX - 6) + 31);
	outcome_clear(&o);
	free(b);

	/* a 33rd line: refused at its first octet (room for CRLF kept) */
	b = many_lines(33, SMTP_REPLY_LINE_MAX - 6, 0, &len);
	memcpy(b + 31 * SMTP_REPLY_LINE_MAX, "250-", 4);
	run(b, len, 0, &o);
	assert_int_equal(o.status, -1);
	assert_int_equal(o.used, SMTP_REPLY_SIZE_MAX);
	assert_non_null(strstr(o.err, "reply longer than 65536 octets"));
	run(b, len, 1000, &o);
	assert_int_equal(o.status, -1);
	assert_int_equal(o.used, SMTP_REPLY_SIZE_MAX);
	free(b);

	/* size is per reply: two large replies in a row are fine */
	b = many_lines(32, SMTP_REPLY_LINE_MAX - 6, 0, &len);
	{
		char *two = malloc(2 * len);

		memcpy(two, b, len);
		memcpy(two + len, b, len);
		run(two, 2 * len, 0, &o);
		assert_int_equal(o.status, 0);
		assert_int_equal(o.nreplies, 2);
		outcome_clear(&o);
		free(two);
	}
	free(b);
}

static void
t_enhanced(void **st)
{
	struct outcome o;

	EXPECT_ONE("250 2.1.5 Ok\r\n", 250, "2.1.5", "Ok", 1);
	EXPECT_ONE("250 2.1.5\r\n", 250, "2.1.5", "", 1);
	EXPECT_ONE("250 2.1.5 \r\n", 250, "2.1.5", "", 1);
	EXPECT_ONE("250 2.1.5  two\r\n", 250, "2.1.5", " two", 1);
	EXPECT_ONE("550 5.7.1 denied\r\n", 550, "5.7.1", "denied", 1);
	EXPECT_ONE("451 4.999.999 x\r\n", 451, "4.999.999", "x", 1);
	EXPECT_ONE("250 2.0.0 x\r\n", 250, "2.0.0", "x", 1);
	/* absent */
	EXPECT_ONE("250 Ok\r\n", 250, "", "Ok", 1);
	EXPECT_ONE("250\r\n", 250, "", "", 1);
	/* class must be the reply's first digit */
	EXPECT_ONE("250 4.1.5 Ok\r\n", 250, "", "4.1.5 Ok", 1);
	EXPECT_ONE("550 2.0.0 x\r\n", 550, "", "2.0.0 x", 1);
	/* RFC 3463 has no class 3 */
	EXPECT_ONE("354 3.0.0 go\r\n", 354, "", "3.0.0 go", 1);
	/* malformed */
	EXPECT_ONE("250 2.1 Ok\r\n", 250, "", "2.1 Ok", 1);
	EXPECT_ONE("250 2.1.5.6 Ok\r\n", 250, "", "2.1.5.6 Ok", 1);
	EXPECT_ONE("450 4.1000.1 x\r\n", 450, "", "4.1000.1 x", 1);
	EXPECT_ONE("450 4.1.1000 x\r\n", 450, "", "4.1.1000 x", 1);
	EXPECT_ONE("250 2.1.5x\r\n", 250, "", "2.1.5x", 1);
	EXPECT_ONE("250 2.1.\r\n", 250, "", "2.1.", 1);
	EXPECT_ONE("250 2..5 x\r\n", 250, "", "2..5 x", 1);
	EXPECT_ONE("250 2.01.5 x\r\n", 250, "", "2.01.5 x", 1);
	EXPECT_ONE("250 2.1.05 x\r\n", 250, "", "2.1.05 x", 1);
	EXPECT_ONE("250 22.1.5 x\r\n", 250, "", "22.1.5 x", 1);
	EXPECT_ONE("250 2.1.5\tx\r\n", 250, "", "2.1.5\tx", 1);
	EXPECT_ONE("250  2.1.5 x\r\n", 250, "", " 2.1.5 x", 1);

	/* stripped from each line carrying the same code, only there */
	PARSE("550-5.7.1 first\r\n550-second\r\n550-5.7.2 other\r\n550-5.7.1\r\n"
	    "550-5.7.15 longer\r\n550 5.7.1 last\r\n", &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.nreplies, 1);
	assert_string_equal(o.r[0]->enh, "5.7.1");
	assert_int_equal(o.r[0]->nlines, 6);
	assert_string_equal(o.r[0]->lines[0], "first");
	assert_string_equal(o.r[0]->lines[1], "second");
	assert_string_equal(o.r[0]->lines[2], "5.7.2 other");
	assert_string_equal(o.r[0]->lines[3], "");
	assert_string_equal(o.r[0]->lines[4], "5.7.15 longer");
	assert_string_equal(o.r[0]->lines[5], "last");
	assert_string_equal(o.r[0]->text, "first\nsecond\n5.7.2 other\n\n5.7.15 longer\nlast");
	outcome_clear(&o);

	/* only the first line decides */
	PARSE("550-no code\r\n550 5.7.1 x\r\n", &o);
	assert_string_equal(o.r[0]->enh, "");
	assert_string_equal(o.r[0]->text, "no code\n5.7.1 x");
	outcome_clear(&o);
}

static void
t_pipelined(void **st)
{
	static const char in[] = "250 2.1.0 a\r\n251 b\r\n550-c\r\n550 d\r\n220 e";
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	struct smtp_reply *r;
	size_t off = 0, used;
	struct outcome o;

	assert_int_equal(smtp_reply_parser_feed(p, in, sizeof(in) - 1, &used, &r), 1);
	assert_int_equal(used, 13);
	assert_int_equal(r->code, 250);
	assert_string_equal(r->enh, "2.1.0");
	assert_string_equal(r->text, "a");
	smtp_reply_free(&r);
	assert_null(r);
	off += used;
	assert_int_equal(smtp_reply_parser_feed(p, in + off, sizeof(in) - 1 - off, &used, &r), 1);
	assert_int_equal(used, 7);
	assert_int_equal(r->code, 251);
	smtp_reply_free(&r);
	off += used;
	assert_int_equal(smtp_reply_parser_feed(p, in + off, sizeof(in) - 1 - off, &used, &r), 1);
	assert_int_equal(used, 14);
	assert_int_equal(r->code, 550);
	assert_string_equal(r->text, "c\nd");
	smtp_reply_free(&r);
	off += used;
	assert_int_equal(smtp_reply_parser_feed(p, in + off, sizeof(in) - 1 - off, &used, &r), 0);
	assert_int_equal(used, 5);
	assert_null(r);
	assert_int_equal(smtp_reply_parser_feed(p, "\r\n", 2, &used, &r), 1);
	assert_int_equal(used, 2);
	assert_int_equal(r->code, 220);
	assert_string_equal(r->text, "e");
	smtp_reply_free(&r);
	/* zero-length feed */
	assert_int_equal(smtp_reply_parser_feed(p, "", 0, &used, &r), 0);
	assert_int_equal(used, 0);
	/* consumed_r may be NULL */
	assert_int_equal(smtp_reply_parser_feed(p, "250 x\r\n", 7, NULL, &r), 1);
	smtp_reply_free(&r);
	smtp_reply_parser_free(&p);
	assert_null(p);
	smtp_reply_parser_free(&p);
	smtp_reply_parser_free(NULL);
	smtp_reply_free(&r);
	smtp_reply_free(NULL);

	/* the same, in every split */
	PARSE("250 2.1.0 a\r\n251 b\r\n550-c\r\n550 d\r\n220 e", &o);
	assert_int_equal(o.nreplies, 3);
	outcome_clear(&o);
}

static void
t_sticky_error(void **st)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	struct smtp_reply *r = (struct smtp_reply *)1;
	size_t used = 99;

	assert_string_equal(smtp_reply_parser_error(p), "");
	assert_int_equal(smtp_reply_parser_feed(p, "250-a\r\n25", 9, &used, &r), 0);
	assert_null(r);
	assert_int_equal(smtp_reply_parser_feed(p, "1 b\r\n", 5, &used, &r), -1);
	assert_int_equal(used, 0);
	assert_null(r);
	assert_string_equal(smtp_reply_parser_error(p),
	    "reply line 2: code 251 differs from the reply's code 250");
	assert_int_equal(smtp_reply_parser_feed(p, "250 b\r\n", 7, &used, &r), -1);
	assert_int_equal(used, 0);
	assert_null(r);
	smtp_reply_parser_free(&p);
}

static struct smtp_reply *
one(const char *s)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	struct smtp_reply *r;
	size_t used;

	assert_int_equal(smtp_reply_parser_feed(p, s, strlen(s), &used, &r), 1);
	assert_int_equal(used, strlen(s));
	smtp_reply_parser_free(&p);
	return r;
}

static void
t_caps(void **st)
{
	struct smtp_reply *r;
	struct smtp_caps c;

	r = one("250-mx.example.org STARTTLS SIZE 5 AUTH PLAIN\r\n"
	    "250-starttls\r\n250-Pipelining\r\n250-8BITMIME\r\n250-CHUNKING\r\n"
	    "250-SMTPUTF8\r\n250-dsn\r\n250-ENHANCEDSTATUSCODES\r\n250-SIZE 10240000\r\n"
	    "250-X-UNKNOWN foo\r\n250-AUTH PLAIN login CRAM-MD5\r\n250 HELP\r\n");
	smtp_ehlo_caps(r, &c);
	assert_true(c.starttls && c.pipelining && c.eightbitmime && c.chunking);
	assert_true(c.smtputf8 && c.dsn && c.enhancedstatuscodes);
	assert_true(c.size);
	assert_int_equal(c.size_max, 10240000);
	assert_true(c.auth && c.auth_plain && c.auth_login);
	assert_false(c.xclient);
	assert_int_equal(c.xclient_attrs, 0);
	smtp_reply_free(&r);

	/* XCLIENT with its attributes (Postfix); unknown names ignored */
	r = one("250-mx\r\n250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT "
	    "REVERSE_NAME\r\n250 XCLIENTX ADDR\r\n");
	smtp_ehlo_caps(r, &c);
	assert_true(c.xclient);
	assert_int_equal(c.xclient_attrs, SMTP_XCLIENT_NAME | SMTP_XCLIENT_ADDR | SMTP_XCLIENT_PORT |
	    SMTP_XCLIENT_PROTO | SMTP_XCLIENT_HELO | SMTP_XCLIENT_LOGIN | SMTP_XCLIENT_DESTADDR |
	    SMTP_XCLIENT_DESTPORT);
	smtp_reply_free(&r);
	r = one("250-mx\r\n250 xclient  addr   login\r\n");
	smtp_ehlo_caps(r, &c);
	assert_true(c.xclient);
	assert_int_equal(c.xclient_attrs, SMTP_XCLIENT_ADDR | SMTP_XCLIENT_LOGIN);
	smtp_reply_free(&r);
	r = one("250-mx\r\n250 XCLIENT\r\n");
	smtp_ehlo_caps(r, &c);
	assert_true(c.xclient);
	assert_int_equal(c.xclient_attrs, 0);
	smtp_reply_free(&r);

	/* the greeting line is not an extension; nothing offered */
	r = one("250-mx.example.org STARTTLS SIZE 5 AUTH PLAIN\r\n250 HELP\r\n");
	memset(&c, 0xff, sizeof(c));
	smtp_ehlo_caps(r, &c);
	assert_false(c.starttls || c.size || c.auth || c.auth_plain || c.pipelining);
	assert_int_equal(c.size_max, 0);
	smtp_reply_free(&r);
	r = one("250 mx.example.org\r\n");
	smtp_ehlo_caps(r, &c);
	assert_false(c.starttls || c.size || c.auth || c.chunking);
	smtp_reply_free(&r);

	/* SIZE without number, with overflow, at the limit, malformed */
	r = one("250-mx\r\n250 SIZE\r\n");
	smtp_ehlo_caps(r, &c);
	assert_true(c.size);
	assert_int_equal(c.size_max, 0);
	smtp_reply_free(&r);
	r = one("250-mx\r\n250 SIZE 99999999999999999999\r\n");
	smtp_ehlo_caps(r, &c);
	assert_true(c.size);
	assert_int_equal(c.size_max, 0);
	smtp_reply_free(&r);
	r = one("250-mx\r\n250 SIZE 18446744073709551615\r\n");
	smtp_ehlo_caps(r, &c);
	assert_true(c.size_max == UINT64_MAX);
	smtp_reply_free(&r);
	r = one("250-mx\r\n250 SIZE 18446744073709551616\r\n");
	smtp_ehlo_caps(r, &c);
	assert_int_equal(c.size_max, 0);
	smtp_reply_free(&r);
	r = one("250-mx\r\n250 size 12k\r\n");
	smtp_ehlo_caps(r, &c);
	assert_true(c.size);
	assert_int_equal(c.size_max, 0);
	smtp_reply_free(&r);
	r = one("250-mx\r\n250 SIZE -1\r\n");
	smtp_ehlo_caps(r, &c);
	assert_int_equal(c.size_max, 0);
	smtp_reply_free(&r);
	r = one("250-mx\r\n250 SIZE 100 200\r\n");
	smtp_ehlo_caps(r, &c);
	assert_int_equal(c.size_max, 100);
	smtp_reply_free(&r);

	/* old-style AUTH=, and AUTH with unknown mechanisms only */
	r = one("250-mx\r\n250 AUTH=LOGIN\r\n");
	smtp_ehlo_caps(r, &c);
	assert_true(c.auth && c.auth_login);
	assert_false(c.auth_plain);
	smtp_reply_free(&r);
	r = one("250-mx\r\n250-AUTH=PLAIN LOGIN\r\n250 AUTH CRAM-MD5\r\n");
	smtp_ehlo_caps(r, &c);
	assert_true(c.auth && c.auth_login && c.auth_plain);
	smtp_reply_free(&r);
	r = one("250-mx\r\n250-AUTH CRAM-MD5 PLAINX XLOGIN\r\n250 AUTH\r\n");
	smtp_ehlo_caps(r, &c);
	assert_true(c.auth);
	assert_false(c.auth_plain || c.auth_login);
	smtp_reply_free(&r);

	/* whole keywords only */
	r = one("250-mx\r\n250-STARTTLSX\r\n250-XSTARTTLS\r\n250-DSNX\r\n250-SIZEX 5\r\n"
	    "250-CHUNK\r\n250-AUTHX PLAIN\r\n250- STARTTLS\r\n250 \r\n");
	smtp_ehlo_caps(r, &c);
	assert_false(c.starttls || c.dsn || c.size || c.chunking || c.auth || c.auth_plain);
	smtp_reply_free(&r);
	/* keyword followed by junk parameters is still the keyword */
	r = one("250-mx\r\n250 STARTTLS now\r\n");
	smtp_ehlo_caps(r, &c);
	assert_true(c.starttls);
	smtp_reply_free(&r);
}

/* Does the parser hold part of a reply?  Before any byte, after a whole
 * reply and after its last CRLF: no; after any byte of an unfinished one,
 * and in the error state: yes. */
static void
t_pending(void **state)
{
	static const char in[] = "250 ok\r\n250-a\r\n250 b\r\n";
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	struct smtp_reply *r;
	size_t i, used;
	int rv;

	(void)state;
	assert_false(smtp_reply_parser_pending(p));
	for (i = 0; i < sizeof(in) - 1; i++) {
		rv = smtp_reply_parser_feed(p, in + i, 1, &used, &r);
		assert_int_equal(used, 1);
		assert_int_equal(smtp_reply_parser_pending(p), rv == 0);
		smtp_reply_free(&r);
	}
	assert_false(smtp_reply_parser_pending(p));
	assert_int_equal(smtp_reply_parser_feed(p, "2\n", 2, &used, &r), -1);
	assert_true(smtp_reply_parser_pending(p));
	smtp_reply_parser_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_single),
		cmocka_unit_test(t_multi),
		cmocka_unit_test(t_incomplete),
		cmocka_unit_test(t_mismatch),
		cmocka_unit_test(t_bad_codes),
		cmocka_unit_test(t_line_endings),
		cmocka_unit_test(t_line_length),
		cmocka_unit_test(t_too_many_lines),
		cmocka_unit_test(t_reply_size),
		cmocka_unit_test(t_enhanced),
		cmocka_unit_test(t_pipelined),
		cmocka_unit_test(t_sticky_error),
		cmocka_unit_test(t_caps),
		cmocka_unit_test(t_pending),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
