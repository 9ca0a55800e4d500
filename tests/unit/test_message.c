/*
 * test_message.c — DATA/BDAT intake parser and dot-stuffer under attack:
 * SMTP smuggling, every split point, limits at and one past their
 * boundary, header tricks, From/Sender as the intake sees them (the
 * address syntax itself: test_rfc5322.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "message.h"
#include "spool.h"

#define S(x) (x), (sizeof(x) - 1)
#define HDR "From: alice@lab.test\r\n"

/* Everything one way of feeding produced. */
struct outcome {
	struct msg_result r;            /* from/sender pointers replaced below */
	char from[MSG_FROM_MAX][300];
	char sender[300];
	int has_sender;
	unsigned char *spool;
	size_t spool_len;
	size_t used;
	int done;
	uint64_t bytes;
};

static const struct msg_limits deflim = { 0, 998, 65536, 30 };

static void
outcome_free(struct outcome *o)
{
	free(o->spool);
	free(o);
}

/* Feed input cut at the sorted positions cuts[0..ncuts). */
static struct outcome *
run(enum msg_mode mode, const struct msg_limits *lim, const void *input, size_t len,
    const size_t *cuts, size_t ncuts, size_t spool_mem)
{
	struct outcome *o = calloc(1, sizeof(*o));
	struct spool *sp = spool_new(spool_mem);
	struct msg_parser *p = msg_parser_new(lim, mode, sp);
	const unsigned char *in = input;
	const struct msg_result *r;
	size_t k, start = 0, i;

	assert_non_null(o);
	for (k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : len, used;

		used = msg_parser_feed(p, in + start, end - start);
		o->used += used;
		if (mode == MSG_MODE_DATA && msg_parser_done(p)) {
			assert_true(used <= end - start);
			break;
		}
		assert_int_equal(used, end - start);
		assert_false(msg_parser_done(p));
		start = end;
	}
	if (mode == MSG_MODE_BDAT)
		msg_parser_finish(p);
	o->done = msg_parser_done(p);
	o->bytes = msg_parser_bytes(p);
	r = msg_parser_result(p);
	o->r = *r;
	for (i = 0; i < r->nfrom; i++)
		snprintf(o->from[i], sizeof(o->from[i]), "%s", r->from[i]);
	if (r->sender != NULL) {
		o->has_sender = 1;
		snprintf(o->sender, sizeof(o->sender), "%s", r->sender);
	}
	memset(o->r.from, 0, sizeof(o->r.from));
	o->r.sender = NULL;
	o->spool_len = (size_t)spool_size(sp);
	o->spool = malloc(o->spool_len + 1);
	assert_non_null(o->spool);
	if (o->spool_len > 0) {
		size_t n;

		assert_int_equal(spool_read(sp, 0, o->spool, o->spool_len, &n), 0);
		assert_int_equal(n, o->spool_len);
	}
	o->spool[o->spool_len] = '\0';
	msg_parser_free(&p);
	assert_null(p);
	spool_free(&sp);
	return o;
}

static void
same(const struct outcome *a, const struct outcome *b)
{
	size_t i;

	assert_int_equal(a->r.code, b->r.code);
	assert_string_equal(a->r.enh, b->r.enh);
	assert_string_equal(a->r.text, b->r.text);
	assert_int_equal(a->r.size, b->r.size);
	assert_int_equal(a->r.header_size, b->r.header_size);
	assert_int_equal(a->r.received, b->r.received);
	assert_int_equal(a->r.has_message_id, b->r.has_message_id);
	assert_int_equal(a->r.has_date, b->r.has_date);
	assert_int_equal(a->r.has_8bit, b->r.has_8bit);
	assert_int_equal(a->r.added_final_crlf, b->r.added_final_crlf);
	assert_int_equal(a->r.nfrom, b->r.nfrom);
	for (i = 0; i < a->r.nfrom; i++)
		assert_string_equal(a->from[i], b->from[i]);
	assert_int_equal(a->has_sender, b->has_sender);
	assert_string_equal(a->sender, b->sender);
	assert_int_equal(a->spool_len, b->spool_len);
	assert_memory_equal(a->spool, b->spool, a->spool_len);
	assert_int_equal(a->used, b->used);
	assert_int_equal(a->done, b->done);
	assert_int_equal(a->bytes, b->bytes);
}

/* Parse in one piece, octet by octet, at every 2-way split and (short
 * inputs) every 3-way split, with a spool that spills to a memfd early;
 * all must agree.  Returns the one-piece outcome. */
static struct outcome *
splits(enum msg_mode mode, const struct msg_limits *lim, const void *input, size_t len)
{
	struct outcome *ref = run(mode, lim, input, len, NULL, 0, 1 << 20), *o;
	size_t *cuts = malloc((len + 2) * sizeof(*cuts)), i, j;

	assert_non_null(cuts);
	for (i = 0; i < len; i++)
		cuts[i] = i + 1;
	o = run(mode, lim, input, len, cuts, len > 0 ? len - 1 : 0, 7);
	same(ref, o);
	outcome_free(o);
	for (i = 0; i <= len; i++) {
		cuts[0] = i;
		o = run(mode, lim, input, len, cuts, 1, i % 5 == 0 ? 0 : 1 << 20);
		same(ref, o);
		outcome_free(o);
	}
	if (len <= 48) {
		for (i = 0; i <= len; i++) {
			for (j = i; j <= len; j++) {
				cuts[0] = i;
				cuts[1] = j;
				o = run(mode, lim, input, len, cuts, 2, 1 << 20);
				same(ref, o);
				outcome_free(o);
			}
		}
	}
	free(cuts);
	return ref;
}

/* DATA: accepted, stored content as expected, everything consumed. */
static struct outcome *
data_ok(const char *in, size_t len, const char *want, size_t wantlen)
{
	struct outcome *o = splits(MSG_MODE_DATA, &deflim, in, len);

	if (o->r.code != 0)
		fail_msg("refused: %d %s %s", o->r.code, o->r.enh, o->r.text);
	assert_true(o->done);
	assert_int_equal(o->used, len);
	assert_int_equal(o->bytes, len);
	assert_int_equal(o->spool_len, wantlen);
	assert_memory_equal(o->spool, want, wantlen);
	assert_int_equal(o->r.size, wantlen);
	return o;
}

/* Refused with code/enh; returns the outcome for further checks. */
static struct outcome *
refused(enum msg_mode mode, const struct msg_limits *lim, const char *in, size_t len,
    int code, const char *enh)
{
	struct outcome *o = splits(mode, lim, in, len);

	if (o->r.code != code)
		fail_msg("want %d got %d %s %s", code, o->r.code, o->r.enh, o->r.text);
	assert_string_equal(o->r.enh, enh);
	assert_true(strlen(o->r.text) > 0);
	return o;
}

static void
data_refused(const char *in, size_t len, int code, const char *enh)
{
	struct outcome *o = refused(MSG_MODE_DATA, &deflim, in, len, code, enh);

	assert_true(o->done);
	assert_int_equal(o->used, len);
	outcome_free(o);
}

/* ---- DATA basics ---- */

static void
test_data_basic(void **state)
{
	static const char in[] = HDR "Subject: hi\r\nDate: x\r\n\r\nbody\r\n.\r\n";
	struct outcome *o;

	(void)state;
	o = data_ok(S(in), in, sizeof(in) - 1 - 3);
	assert_int_equal(o->r.nfrom, 1);
	assert_string_equal(o->from[0], "alice@lab.test");
	assert_int_equal(o->has_sender, 0);
	assert_int_equal(o->r.has_date, 1);
	assert_int_equal(o->r.has_message_id, 0);
	assert_int_equal(o->r.has_8bit, 0);
	assert_int_equal(o->r.header_size, sizeof(HDR "Subject: hi\r\nDate: x\r\n\r\n") - 1);
	assert_int_equal(o->r.added_final_crlf, 0);
	outcome_free(o);
}

static void
test_data_pipelined_rest(void **state)
{
	static const char in[] = HDR "\r\nx\r\n.\r\nQUIT\r\n";
	struct outcome *o;

	(void)state;
	o = splits(MSG_MODE_DATA, &deflim, S(in));
	assert_int_equal(o->r.code, 0);
	assert_true(o->done);
	assert_int_equal(o->used, sizeof(HDR "\r\nx\r\n.\r\n") - 1);
	assert_int_equal(o->bytes, o->used);
	assert_string_equal((char *)o->spool, HDR "\r\nx\r\n");
	outcome_free(o);
}

static void
test_data_unstuff(void **state)
{
	static const char in[] = HDR "\r\n..x\r\n...\r\n..\r\n.y\r\nz.\r\n. \r\n.\r\n";
	static const char want[] = HDR "\r\n.x\r\n..\r\n.\r\ny\r\nz.\r\n \r\n";

	(void)state;
	outcome_free(data_ok(S(in), S(want)));
}

static void
test_data_empty(void **state)
{
	struct outcome *o;

	(void)state;
	/* terminator right after the 354: an empty message, and the end */
	o = refused(MSG_MODE_DATA, &deflim, S(".\r\nMAIL FROM:<>\r\n"), 550, "5.6.0");
	assert_true(o->done);
	assert_int_equal(o->used, 3);
	assert_int_equal(o->spool_len, 0);
	assert_int_equal(o->r.size, 0);
	outcome_free(o);
	/* empty first line, no header at all */
	data_refused(S("\r\n.\r\n"), 550, "5.6.0");
}

static void
test_data_not_done(void **state)
{
	static const char in[] = HDR "\r\nbody\r\n.";
	struct outcome *o;

	(void)state;
	o = splits(MSG_MODE_DATA, &deflim, S(in));
	assert_false(o->done);
	assert_int_equal(o->used, sizeof(in) - 1);
	assert_int_equal(o->r.code, 0);
	outcome_free(o);
}

/* None of these may end DATA: the real terminator comes later and what lies
 * between is message data, refused as a whole. */
static void
test_smuggling(void **state)
{
	static const char *const evil[] = {
		"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r\n\0.\r\n",
		"\n.\r", "\r.\n", "\r\n.\rX", "\r\n.\r\r\n", "\r\r\n.\n", ".\n",
		"\r\r.\r\n", "\rx.\r\n", "\n\n.\r\n", "\r\n\n.\r\n",
	};
	static const size_t evil_len[] = { 3, 4, 4, 4, 4, 6, 3, 3, 5, 6, 5, 2, 5, 5, 5, 6 };
	static const char smuggled[] = "MAIL FROM:<x@evil.test>\r\nRCPT TO:<v@lab.test>\r\n"
	    "DATA\r\nFrom: x@lab.test\r\n\r\nspoofed";
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
		char in[512];
		size_t len = 0;
		struct outcome *o;

		memcpy(in, HDR "\r\nhello", sizeof(HDR "\r\nhello") - 1);
		len = sizeof(HDR "\r\nhello") - 1;
		memcpy(in + len, evil[i], evil_len[i]);
		len += evil_len[i];
		memcpy(in + len, smuggled, sizeof(smuggled) - 1);
		len += sizeof(smuggled) - 1;
		/* without the real terminator: never done, all consumed */
		o = splits(MSG_MODE_DATA, &deflim, in, len);
		assert_false(o->done);
		assert_int_equal(o->used, len);
		assert_int_equal(o->r.code, 550);
		assert_string_equal(o->r.enh, "5.6.0");
		outcome_free(o);
		memcpy(in + len, "\r\n.\r\nQUIT\r\n", 11);
		o = splits(MSG_MODE_DATA, &deflim, in, len + 11);
		assert_true(o->done);
		assert_int_equal(o->used, len + 5);
		assert_int_equal(o->r.code, 550);
		assert_string_equal(o->r.enh, "5.6.0");
		outcome_free(o);
	}
}

static void
test_bare_cr_lf_nul(void **state)
{
	(void)state;
	data_refused(S(HDR "\r\na\rb\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR "\r\na\nb\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR "\r\nab\r\r\n.\r\n"), 550, "5.6.0");   /* CR CR LF */
	data_refused(S(HDR "\r\nab\r\n\r\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR "\r\na\0b\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR "\r\n\0\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From: a@b\0.test\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From: a@b.test\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("Subject: a\rb\r\n" HDR "\r\n.\r\n"), 550, "5.6.0");
	/* VT and FF in a header field (not in the body): DKIM verifiers disagree */
	data_refused(S(HDR "Subject: a\vb\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR "Subject: a\r\n \fb\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From: a@b.test\v\r\n\r\n.\r\n"), 550, "5.6.0");
	/* a dot line followed by a lone CR: bare CR, not an end */
	data_refused(S(HDR "\r\n.\rx\r\n.\r\n"), 550, "5.6.0");
}

static void
test_first_violation_wins(void **state)
{
	struct msg_limits lim = deflim;
	struct outcome *o;

	(void)state;
	lim.max_line = 11;
	o = refused(MSG_MODE_DATA, &lim, S("From: a@b.c\r\n\r\nab\ncdefghijklmnop\r\n.\r\n"),
	    550, "5.6.0");
	assert_non_null(strstr(o->r.text, "LF"));
	outcome_free(o);
	/* nothing after the violation is stored */
	o = refused(MSG_MODE_DATA, &deflim, S(HDR "\r\nab\ncdefghijk\r\n.\r\n"), 550, "5.6.0");
	assert_true(o->spool_len <= sizeof(HDR "\r\nab") - 1);
	assert_int_equal(o->r.size, sizeof(HDR "\r\nab\ncdefghijk\r\n") - 1);
	outcome_free(o);
}

/* ---- limits ---- */

static char *
line_msg(size_t n, int dot, size_t *len_r)
{
	char *b = malloc(n + 64);
	size_t len = 0;

	assert_non_null(b);
	memcpy(b, HDR "\r\n", sizeof(HDR "\r\n") - 1);
	len = sizeof(HDR "\r\n") - 1;
	if (dot)
		b[len++] = '.';  /* stuffed: the wire line is one octet longer */
	memset(b + len, dot ? '.' : 'x', n);
	len += n;
	memcpy(b + len, "\r\n.\r\n", 5);
	*len_r = len + 5;
	return b;
}

static void
test_line_length(void **state)
{
	size_t len;
	char *m;
	struct outcome *o;

	(void)state;
	m = line_msg(998, 0, &len);
	outcome_free(splits(MSG_MODE_DATA, &deflim, m, len));
	o = splits(MSG_MODE_DATA, &deflim, m, len);
	assert_int_equal(o->r.code, 0);
	outcome_free(o);
	free(m);
	m = line_msg(999, 0, &len);
	data_refused(m, len, 550, "5.6.0");
	free(m);
	/* limits apply to the unstuffed line */
	m = line_msg(998, 1, &len);
	o = splits(MSG_MODE_DATA, &deflim, m, len);
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->spool_len, sizeof(HDR "\r\n") - 1 + 998 + 2);
	outcome_free(o);
	free(m);
	m = line_msg(999, 1, &len);
	data_refused(m, len, 550, "5.6.0");
	free(m);
}

static void
test_line_length_header_and_bdat(void **state)
{
	struct msg_limits lim = deflim;
	struct outcome *o;

	(void)state;
	lim.max_line = 20;
	/* "From: alice@lab.test" is exactly 20 */
	o = splits(MSG_MODE_BDAT, &lim, S(HDR "\r\n12345678901234567890\r\n"));
	assert_int_equal(o->r.code, 0);
	outcome_free(o);
	outcome_free(refused(MSG_MODE_BDAT, &lim, S(HDR "\r\n123456789012345678901\r\n"),
	    550, "5.6.0"));
	outcome_free(refused(MSG_MODE_BDAT, &lim, S("From: alice@lab.test1\r\n\r\n"),
	    550, "5.6.0"));
	/* no final CRLF: still counted */
	outcome_free(refused(MSG_MODE_BDAT, &lim, S(HDR "\r\n123456789012345678901"),
	    550, "5.6.0"));
}

/* 0 = no limit for size, line and header */
static void
test_no_limits(void **state)
{
	struct msg_limits lim = { 0, 0, 0, 0 };
	size_t len = 0;
	char *in = malloc(6000);
	struct outcome *o;

	(void)state;
	assert_non_null(in);
	len = (size_t)sprintf(in, "X-Long: ");
	memset(in + len, 'h', 3000);
	len += 3000;
	len += (size_t)sprintf(in + len, "\r\n" HDR "\r\n");
	memset(in + len, 'b', 2000);
	len += 2000;
	len += (size_t)sprintf(in + len, "\r\n.\r\n");
	o = splits(MSG_MODE_DATA, &lim, in, len);
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->spool_len, len - 3);
	outcome_free(o);
	/* max_received 0: no Received field allowed at all */
	outcome_free(refused(MSG_MODE_DATA, &lim, S("Received: x\r\n" HDR "\r\n.\r\n"), 554, "5.4.6"));
	free(in);
}

static void
test_max_size(void **state)
{
	static const char in[] = HDR "\r\n0123456789\r\n.\r\n";
	size_t msgsize = sizeof(in) - 1 - 3;
	struct msg_limits lim = deflim;
	struct outcome *o;

	(void)state;
	lim.max_size = msgsize;
	o = splits(MSG_MODE_DATA, &lim, S(in));
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->spool_len, msgsize);
	outcome_free(o);
	lim.max_size = msgsize - 1;
	o = refused(MSG_MODE_DATA, &lim, S(in), 552, "5.3.4");
	assert_true(o->done);                   /* kept consuming to the end */
	assert_int_equal(o->used, sizeof(in) - 1);
	assert_true(o->spool_len <= lim.max_size);
	assert_int_equal(o->r.size, msgsize);
	outcome_free(o);
	/* far over: storing stops at the limit, not at the end of the line */
	lim.max_size = sizeof(HDR "\r\n0123") - 1;
	o = refused(MSG_MODE_DATA, &lim, S(in), 552, "5.3.4");
	assert_true(o->spool_len <= lim.max_size);
	outcome_free(o);
	/* BDAT: the limit is on what the client sent, not on the CRLF front
	 * appends: exactly max_size octets pass with or without it, one more
	 * does not */
	lim.max_size = sizeof(HDR "\r\nab") - 1;
	o = splits(MSG_MODE_BDAT, &lim, S(HDR "\r\nab"));
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.added_final_crlf, 1);
	assert_int_equal(o->spool_len, lim.max_size + 2);
	outcome_free(o);
	o = splits(MSG_MODE_BDAT, &lim, S(HDR "\r\n\r\n"));     /* as long, with CRLF */
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.added_final_crlf, 0);
	outcome_free(o);
	outcome_free(refused(MSG_MODE_BDAT, &lim, S(HDR "\r\nabc"), 552, "5.3.4"));
	outcome_free(refused(MSG_MODE_BDAT, &lim, S(HDR "\r\na\r\n"), 552, "5.3.4"));
	/* all header, at max_header without its CRLF */
	lim = deflim;
	lim.max_header = sizeof(HDR "X-A: b") - 1;
	o = splits(MSG_MODE_BDAT, &lim, S(HDR "X-A: b"));
	assert_int_equal(o->r.code, 0);
	outcome_free(o);
	lim.max_header--;
	outcome_free(refused(MSG_MODE_BDAT, &lim, S(HDR "X-A: b"), 552, "5.3.4"));
}

static void
test_max_header(void **state)
{
	static const char in[] = HDR "Subject: 12345\r\n\r\nbody\r\n.\r\n";
	struct msg_limits lim = deflim;
	struct outcome *o;

	(void)state;
	lim.max_header = sizeof(HDR "Subject: 12345\r\n\r\n") - 1;
	o = splits(MSG_MODE_DATA, &lim, S(in));
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.header_size, lim.max_header);
	outcome_free(o);
	lim.max_header--;
	o = refused(MSG_MODE_DATA, &lim, S(in), 552, "5.3.4");
	assert_true(o->done);
	outcome_free(o);
	/* one header field longer than the whole allowance */
	lim.max_header = 30;
	outcome_free(refused(MSG_MODE_BDAT, &lim,
	    S(HDR "X-Long: 0123456789\r\n\t0123456789\r\n\r\n"), 552, "5.3.4"));
	/* header-only message: its whole size is the header */
	lim.max_header = sizeof(HDR) - 1;
	o = splits(MSG_MODE_DATA, &lim, S(HDR ".\r\n"));
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.header_size, sizeof(HDR) - 1);
	outcome_free(o);
}

/* HDR and then n fields of the shortest form ("X:"), a body, the end. */
static char *
many_fields_msg(size_t n, size_t *len_r)
{
	char *b = malloc(n * 4 + 64);
	size_t len = 0, i;

	assert_non_null(b);
	len += (size_t)sprintf(b, HDR);
	for (i = 1; i < n; i++)
		len += (size_t)sprintf(b + len, "X:\r\n");
	len += (size_t)sprintf(b + len, "\r\nbody\r\n.\r\n");
	*len_r = len;
	return b;
}

/* More than MSG_FIELDS_MAX header fields: 552 5.3.4 here, before the
 * signer (which takes a bounded number of fields) would refuse it with a
 * reason that does not fit; folded lines and the body do not count. */
static void
test_max_fields(void **state)
{
	size_t len, cuts[3];
	struct outcome *o;
	char *m;

	(void)state;
	m = many_fields_msg(MSG_FIELDS_MAX, &len);
	cuts[0] = 1;
	cuts[1] = len / 2;
	cuts[2] = len - 9;
	o = run(MSG_MODE_DATA, &deflim, m, len, cuts, 3, 1 << 20);
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.fields, MSG_FIELDS_MAX);
	outcome_free(o);
	free(m);
	m = many_fields_msg(MSG_FIELDS_MAX + 1, &len);
	o = run(MSG_MODE_DATA, &deflim, m, len, cuts, 3, 1 << 20);
	assert_int_equal(o->r.code, 552);
	assert_string_equal(o->r.enh, "5.3.4");
	assert_non_null(strstr(o->r.text, "header fields"));
	assert_true(o->done);
	outcome_free(o);
	free(m);
	/* a folded field is one; body lines that look like fields are body */
	o = splits(MSG_MODE_BDAT, &deflim,
	    S("X: a\r\n b\r\n\tc\r\n" HDR "\r\nY: 1\r\nZ: 2\r\n"));
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.fields, 2);
	outcome_free(o);
}

static char *
received_msg(size_t n, const char *name, size_t *len_r)
{
	char *b = malloc(n * 40 + 128);
	size_t len = 0, i;

	assert_non_null(b);
	for (i = 0; i < n; i++)
		len += (size_t)sprintf(b + len, "%s: from h%zu by x\r\n", name, i);
	len += (size_t)sprintf(b + len, HDR "\r\nbody\r\n.\r\n");
	*len_r = len;
	return b;
}

static void
test_max_received(void **state)
{
	struct outcome *o;
	size_t len;
	char *m;

	(void)state;
	m = received_msg(30, "Received", &len);
	o = splits(MSG_MODE_DATA, &deflim, m, len);
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.received, 30);
	outcome_free(o);
	free(m);
	m = received_msg(31, "rECEIVED", &len);
	data_refused(m, len, 554, "5.4.6");
	free(m);
	/* a folded Received is one field */
	o = splits(MSG_MODE_DATA, &deflim, S("Received: a\r\n b\r\nReceived: c\r\n" HDR "\r\n.\r\n"));
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.received, 2);
	outcome_free(o);
	/* other names that merely start alike do not count */
	o = splits(MSG_MODE_DATA, &deflim, S("Received-SPF: x\r\nXReceived: y\r\n" HDR "\r\n.\r\n"));
	assert_int_equal(o->r.received, 0);
	outcome_free(o);
}

/* ---- header fields ---- */

static void
test_header_syntax(void **state)
{
	(void)state;
	data_refused(S(HDR "Subject : x\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR "not a header\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(" Subject: x\r\n" HDR "\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR ": empty name\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR "Sub\xc3\xa9ject: x\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR "Subject: x\r\n \r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR "Subject: x\r\n\t \t\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR "Subject\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR "Subject: x\x7f\r\nX\x7fY: z\r\n\r\n.\r\n"), 550, "5.6.0");
	/* in the body anything goes */
	outcome_free(data_ok(S(HDR "\r\nnot a header\r\n : \r\n.\r\n"),
	    S(HDR "\r\nnot a header\r\n : \r\n")));
	/* folding and odd but valid names */
	outcome_free(data_ok(S(HDR "Subject: a\r\n b\r\n\tc\r\nX-!#$%&'*+-/=?^_`{|}~: v\r\n"
	    "Empty:\r\n\r\n.\r\n"), S(HDR "Subject: a\r\n b\r\n\tc\r\nX-!#$%&'*+-/=?^_`{|}~: v\r\n"
	    "Empty:\r\n\r\n")));
}

static void
test_duplicates(void **state)
{
	static const char *const names[] = {
		"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
		"In-Reply-To", "References",
	};
	size_t i;
	char in[256];
	int n;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		n = snprintf(in, sizeof(in), HDR "%s: a@lab.test\r\nX: y\r\n%s: a@lab.test\r\n\r\n.\r\n",
		    i == 0 ? "X-Dummy" : names[i], names[i]);
		data_refused(in, (size_t)n, 550, "5.6.0");
	}
	data_refused(S(HDR "from: alice@lab.test\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S(HDR "FROM: mallory@evil.test\r\n\r\n.\r\n"), 550, "5.6.0");
	/* repeatable fields are fine */
	outcome_free(data_ok(S(HDR "X-A: 1\r\nX-A: 2\r\nComments: a\r\nComments: b\r\n"
	    "Keywords: k\r\nKeywords: l\r\n\r\n.\r\n"), S(HDR "X-A: 1\r\nX-A: 2\r\n"
	    "Comments: a\r\nComments: b\r\nKeywords: k\r\nKeywords: l\r\n\r\n")));
}

static void
test_from_missing_and_bad(void **state)
{
	(void)state;
	data_refused(S("Subject: x\r\n\r\nFrom: alice@lab.test\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From:\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From: undisclosed:;\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From: Alice\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From: alice@lab.test <mallory@evil.test>\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From: <>\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From: a@b@c\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From: alice@lab.test mallory@evil.test\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From: alice@lab.test\r\nSender: a@x, b@y\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From: alice@lab.test\r\nSender:\r\n\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("From: (only a comment)\r\n\r\n.\r\n"), 550, "5.6.0");
}

static void
test_from_addresses(void **state)
{
	struct outcome *o;

	(void)state;
	o = splits(MSG_MODE_DATA, &deflim,
	    S("From: \"alice@lab.test\" <mallory@evil.test>\r\n\r\n.\r\n"));
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.nfrom, 1);
	assert_string_equal(o->from[0], "mallory@evil.test");
	outcome_free(o);
	o = splits(MSG_MODE_DATA, &deflim,
	    S("From: Friends: a@x.test,\r\n (c) b@y.test;, <c@z.test>\r\n"
	    "Sender: (x) s@lab.test (y)\r\n\r\n.\r\n"));
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.nfrom, 3);
	assert_string_equal(o->from[0], "a@x.test");
	assert_string_equal(o->from[1], "b@y.test");
	assert_string_equal(o->from[2], "c@z.test");
	assert_int_equal(o->has_sender, 1);
	assert_string_equal(o->sender, "s@lab.test");
	outcome_free(o);
	/* the Sender can come first */
	o = splits(MSG_MODE_DATA, &deflim,
	    S("Sender: s@lab.test\r\nfRoM: Alice <alice@lab.test>\r\n\r\n.\r\n"));
	assert_int_equal(o->r.code, 0);
	assert_string_equal(o->from[0], "alice@lab.test");
	assert_string_equal(o->sender, "s@lab.test");
	outcome_free(o);
}

static void
test_from_many(void **state)
{
	char in[2048];
	size_t len, i;
	struct outcome *o;

	(void)state;
	for (int n = 16; n <= 17; n++) {
		len = (size_t)sprintf(in, "From: ");
		for (i = 0; i < (size_t)n; i++)
			len += (size_t)sprintf(in + len, "%su%zu@lab.test", i ? ",\r\n " : "", i);
		len += (size_t)sprintf(in + len, "\r\n\r\n.\r\n");
		o = splits(MSG_MODE_DATA, &deflim, in, len);
		if (n == 16) {
			assert_int_equal(o->r.code, 0);
			assert_int_equal(o->r.nfrom, 16);
			assert_string_equal(o->from[15], "u15@lab.test");
		} else {
			/* one address more than can be checked: refused, not truncated */
			assert_int_equal(o->r.code, 550);
			assert_int_equal(o->r.nfrom, 0);
		}
		outcome_free(o);
	}
}

/* Fields longer than the first buffer: growth keeps what was collected. */
static void
test_long_fields(void **state)
{
	char *in = malloc(8192);
	size_t len, i;
	struct outcome *o;

	(void)state;
	assert_non_null(in);
	/* From first: its growth starts from the smallest buffer */
	len = (size_t)sprintf(in, "From: ");
	for (i = 0; i < 14; i++)
		len += (size_t)sprintf(in + len, "\"Some Long Display Name %zu\"\r\n <user%zu@lab.test>,\r\n ",
		    i, i);
	len += (size_t)sprintf(in + len, "last@lab.test\r\nSubject: ");
	for (i = 0; i < 60; i++)
		len += (size_t)sprintf(in + len, "word%02zu words words words words\r\n ", i);
	len += (size_t)sprintf(in + len, "end\r\nSender: <s@lab.test>\r\n\r\nbody\r\n.\r\n");
	o = splits(MSG_MODE_DATA, &deflim, in, len);
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.nfrom, 15);
	assert_string_equal(o->from[0], "user0@lab.test");
	assert_string_equal(o->from[13], "user13@lab.test");
	assert_string_equal(o->from[14], "last@lab.test");
	assert_string_equal(o->sender, "s@lab.test");
	assert_int_equal(o->spool_len, len - 3);
	outcome_free(o);
	free(in);
}

static void
test_message_id_date(void **state)
{
	struct outcome *o;

	(void)state;
	o = splits(MSG_MODE_DATA, &deflim, S("message-id: <a@b>\r\nDATE: now\r\n" HDR ".\r\n"));
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.has_message_id, 1);
	assert_int_equal(o->r.has_date, 1);
	outcome_free(o);
	/* only in the body: not a header field */
	o = splits(MSG_MODE_DATA, &deflim, S(HDR "\r\nMessage-ID: <a@b>\r\nDate: x\r\n.\r\n"));
	assert_int_equal(o->r.has_message_id, 0);
	assert_int_equal(o->r.has_date, 0);
	outcome_free(o);
}

static void
test_header_only(void **state)
{
	struct outcome *o;

	(void)state;
	o = data_ok(S(HDR "Subject: x\r\n.\r\n"), S(HDR "Subject: x\r\n"));
	assert_int_equal(o->r.header_size, sizeof(HDR "Subject: x\r\n") - 1);
	outcome_free(o);
	/* the last field of a header-only message is checked too */
	data_refused(S("Subject: x\r\n" HDR "From: b@lab.test\r\n.\r\n"), 550, "5.6.0");
	data_refused(S("Subject: x\r\nFrom: \r\n.\r\n"), 550, "5.6.0");
	o = splits(MSG_MODE_BDAT, &deflim, S("Subject: x\r\nFrom: a@lab.test"));
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.added_final_crlf, 1);
	assert_string_equal(o->from[0], "a@lab.test");
	assert_string_equal((char *)o->spool, "Subject: x\r\nFrom: a@lab.test\r\n");
	outcome_free(o);
}

static void
test_8bit(void **state)
{
	struct outcome *o;

	(void)state;
	o = data_ok(S(HDR "\r\nh\xc3\xa9llo \xe2\x9c\x93\r\n.\r\n"), S(HDR "\r\nh\xc3\xa9llo \xe2\x9c\x93\r\n"));
	assert_int_equal(o->r.has_8bit, 1);
	outcome_free(o);
	o = data_ok(S("From: J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbc" "cher.test>\r\n\r\n.\r\n"),
	    S("From: J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbc" "cher.test>\r\n\r\n"));
	assert_int_equal(o->r.has_8bit, 1);
	assert_string_equal(o->from[0], "j\xc3\xb6rg@b\xc3\xbc" "cher.test");
	outcome_free(o);
	o = data_ok(S(HDR "\r\n\x7f~\r\n.\r\n"), S(HDR "\r\n\x7f~\r\n"));
	assert_int_equal(o->r.has_8bit, 0);
	outcome_free(o);
	/* a broken UTF-8 address is not an address */
	data_refused(S("From: a\xc3@lab.test\r\n\r\n.\r\n"), 550, "5.6.0");
}

/* ---- BDAT ---- */

static void
test_bdat(void **state)
{
	struct outcome *o;

	(void)state;
	/* no unstuffing, no terminator */
	o = splits(MSG_MODE_BDAT, &deflim, S(HDR "\r\n..x\r\n.\r\nafter\r\n"));
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->used, sizeof(HDR "\r\n..x\r\n.\r\nafter\r\n") - 1);
	assert_int_equal(o->bytes, o->used);
	assert_int_equal(o->done, 0);
	assert_int_equal(o->r.added_final_crlf, 0);
	assert_string_equal((char *)o->spool, HDR "\r\n..x\r\n.\r\nafter\r\n");
	outcome_free(o);
	o = splits(MSG_MODE_BDAT, &deflim, S(HDR "\r\nlast"));
	assert_int_equal(o->r.code, 0);
	assert_int_equal(o->r.added_final_crlf, 1);
	assert_int_equal(o->bytes, sizeof(HDR "\r\nlast") - 1);
	assert_int_equal(o->r.size, sizeof(HDR "\r\nlast\r\n") - 1);
	assert_string_equal((char *)o->spool, HDR "\r\nlast\r\n");
	outcome_free(o);
	o = refused(MSG_MODE_BDAT, &deflim, S(HDR "\r\nlast\r"), 550, "5.6.0");
	assert_non_null(strstr(o->r.text, "ends with a bare CR"));
	outcome_free(o);
	outcome_free(refused(MSG_MODE_BDAT, &deflim, S(HDR "\r\nlast\n"), 550, "5.6.0"));
	outcome_free(refused(MSG_MODE_BDAT, &deflim, S(HDR "\r\nx\n.\nQUIT\r\n"), 550, "5.6.0"));
	outcome_free(refused(MSG_MODE_BDAT, &deflim, S(""), 550, "5.6.0"));
	outcome_free(refused(MSG_MODE_BDAT, &deflim, S(HDR "\r\n\0"), 550, "5.6.0"));
}

static void
test_bdat_finish_twice(void **state)
{
	struct spool *sp = spool_new(100);
	struct msg_parser *p = msg_parser_new(&deflim, MSG_MODE_BDAT, sp);

	(void)state;
	assert_int_equal(msg_parser_feed(p, S(HDR "\r\nx")), sizeof(HDR "\r\nx") - 1);
	msg_parser_finish(p);
	msg_parser_finish(p);
	assert_int_equal(msg_parser_result(p)->code, 0);
	assert_int_equal(spool_size(sp), sizeof(HDR "\r\nx\r\n") - 1);
	/* nothing more after the end */
	assert_int_equal(msg_parser_feed(p, S("more")), 4);
	assert_int_equal(spool_size(sp), sizeof(HDR "\r\nx\r\n") - 1);
	msg_parser_free(&p);
	msg_parser_free(&p);
	msg_parser_free(NULL);
	spool_free(&sp);
}

static void
test_data_after_done(void **state)
{
	struct spool *sp = spool_new(100);
	struct msg_parser *p = msg_parser_new(&deflim, MSG_MODE_DATA, sp);

	(void)state;
	assert_int_equal(msg_parser_feed(p, S(HDR ".\r\nRSET\r\n")), sizeof(HDR ".\r\n") - 1);
	assert_true(msg_parser_done(p));
	assert_int_equal(msg_parser_feed(p, S("RSET\r\n")), 0);
	assert_int_equal(msg_parser_result(p)->code, 0);
	msg_parser_free(&p);
	spool_free(&sp);
}

static void
test_spool_failure(void **state)
{
	struct spool *sp = spool_new(100);
	struct msg_parser *p;
	const struct msg_result *r;

	(void)state;
	assert_true(spool_seal(sp) >= 0);       /* appends now fail */
	p = msg_parser_new(&deflim, MSG_MODE_DATA, sp);
	assert_int_equal(msg_parser_feed(p, S(HDR "\r\nx\r\n.\r\n")), sizeof(HDR "\r\nx\r\n.\r\n") - 1);
	assert_true(msg_parser_done(p));
	r = msg_parser_result(p);
	assert_int_equal(r->code, 451);
	assert_string_equal(r->enh, "4.3.0");
	msg_parser_free(&p);
	spool_free(&sp);
}

/* ---- dot-stuffing ---- */

static char *
stuff_pieces(const char *in, size_t len, size_t cut1, size_t cut2, size_t *outlen)
{
	struct evbuffer *out = evbuffer_new();
	struct msg_stuffer st;
	char *r;

	assert_non_null(out);
	msg_stuff_init(&st);
	msg_stuff(&st, in, cut1, out);
	msg_stuff(&st, in + cut1, cut2 - cut1, out);
	msg_stuff(&st, in + cut2, len - cut2, out);
	msg_stuff_end(&st, out);
	*outlen = evbuffer_get_length(out);
	r = malloc(*outlen + 1);
	assert_non_null(r);
	evbuffer_remove(out, r, *outlen);
	r[*outlen] = '\0';
	evbuffer_free(out);
	return r;
}

static void
stuff_check(const char *in, size_t len, const char *want, size_t wantlen)
{
	size_t i, j, n;

	for (i = 0; i <= len; i++) {
		for (j = i; j <= len; j++) {
			char *r = stuff_pieces(in, len, i, j, &n);

			assert_int_equal(n, wantlen);
			assert_memory_equal(r, want, n);
			free(r);
		}
	}
}

static void
test_stuff(void **state)
{
	(void)state;
	stuff_check(S(""), S(".\r\n"));
	stuff_check(S("."), S("..\r\n.\r\n"));
	stuff_check(S("a\r\n"), S("a\r\n.\r\n"));
	stuff_check(S("a"), S("a\r\n.\r\n"));
	stuff_check(S("a\r"), S("a\r\r\n.\r\n"));
	stuff_check(S(".a\r\n..\r\n.\r\nb.\r\n"), S("..a\r\n...\r\n..\r\nb.\r\n.\r\n"));
	stuff_check(S("x\n.y\r.z"), S("x\n..y\r..z\r\n.\r\n"));
	stuff_check(S("x\r\n.\r\nMAIL FROM:<a>\r\n"), S("x\r\n..\r\nMAIL FROM:<a>\r\n.\r\n"));
}

/* Stuffing then parsing DATA gives back the message, for many messages. */
static void
test_stuff_roundtrip(void **state)
{
	static const char *const msgs[] = {
		HDR "\r\n",
		HDR "\r\n.\r\n",
		HDR "\r\n..\r\n.x\r\n...\r\n",
		HDR ".hidden: no\r\n",
		HDR "\r\nline\r\n.\r\nQUIT\r\n\r\n.\r\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		size_t len = strlen(msgs[i]), n;
		char *w = stuff_pieces(msgs[i], len, len / 3, len / 2, &n);
		struct outcome *o = splits(MSG_MODE_DATA, &deflim, w, n);

		/* ".hidden:" is a valid field name: its line starts with a dot */
		assert_int_equal(o->r.code, 0);
		assert_int_equal(o->spool_len, len);
		assert_memory_equal(o->spool, msgs[i], len);
		assert_true(o->done);
		assert_int_equal(o->used, n);
		outcome_free(o);
		free(w);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data_basic),
		cmocka_unit_test(test_data_pipelined_rest),
		cmocka_unit_test(test_data_unstuff),
		cmocka_unit_test(test_data_empty),
		cmocka_unit_test(test_data_not_done),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_bare_cr_lf_nul),
		cmocka_unit_test(test_first_violation_wins),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_line_length_header_and_bdat),
		cmocka_unit_test(test_no_limits),
		cmocka_unit_test(test_max_size),
		cmocka_unit_test(test_max_header),
		cmocka_unit_test(test_max_fields),
		cmocka_unit_test(test_max_received),
		cmocka_unit_test(test_header_syntax),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_from_missing_and_bad),
		cmocka_unit_test(test_from_addresses),
		cmocka_unit_test(test_from_many),
		cmocka_unit_test(test_long_fields),
		cmocka_unit_test(test_message_id_date),
		cmocka_unit_test(test_header_only),
		cmocka_unit_test(test_8bit),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_bdat_finish_twice),
		cmocka_unit_test(test_data_after_done),
		cmocka_unit_test(test_spool_failure),
		cmocka_unit_test(test_stuff),
		cmocka_unit_test(test_stuff_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
