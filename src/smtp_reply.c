/*
 * smtp_reply.c — incremental, strict parser for upstream SMTP replies.
 *
 * One byte at a time through a small state machine; the text of the lines of
 * the reply being read is collected in `acc` (each line NUL-terminated).  No
 * byte is looked at twice, so the outcome cannot depend on how the input was
 * split.
 */
#include "smtp_reply.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum reply_state {
	RS_LINE,                /* in a line (linelen says where) */
	RS_CR,                  /* saw CR, LF must follow */
	RS_ERROR                /* sticky */
};

struct smtp_reply_parser {
	enum reply_state state;
	size_t linelen;         /* octets of the current line so far, no CRLF */
	int code;               /* code of the current line (after 3 digits) */
	int rcode;              /* code of the reply (0 before its first line ends) */
	int more;               /* current line ends with '-' */
	size_t nlines;          /* complete lines of the current reply */
	size_t total;           /* octets of the complete lines, with CRLFs */
	char *acc;              /* the lines' text, each NUL-terminated */
	size_t acclen, acccap;
	char err[128];
};

struct smtp_reply_parser *
smtp_reply_parser_new(void)
{
	struct smtp_reply_parser *p;

	p = xcalloc(1, sizeof(*p));
	p->state = RS_LINE;
	return p;
}

void
smtp_reply_parser_free(struct smtp_reply_parser **pp)
{
	struct smtp_reply_parser *p;

	if (pp == NULL || (p = *pp) == NULL)
		return;
	free(p->acc);
	free(p);
	*pp = NULL;
}

const char *
smtp_reply_parser_error(const struct smtp_reply_parser *p)
{
	return p->err;
}

int
smtp_reply_parser_pending(const struct smtp_reply_parser *p)
{
	return p->state != RS_LINE || p->linelen > 0 || p->nlines > 0;
}

void
smtp_reply_free(struct smtp_reply **rp)
{
	struct smtp_reply *r;

	if (rp == NULL || (r = *rp) == NULL)
		return;
	free(r->text);
	free(r->lines);         /* the strings live in the same block */
	free(r);
	*rp = NULL;
}

static void
reply_fail(struct smtp_reply_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reply_fail(struct smtp_reply_parser *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(p->err, sizeof(p->err), "reply line %zu: ", p->nlines + 1);
	if (n < 0 || (size_t)n >= sizeof(p->err))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(p->err + n, sizeof(p->err) - (size_t)n, fmt, ap);
	va_end(ap);
	p->state = RS_ERROR;
}

static void
reply_acc_put(struct smtp_reply_parser *p, char c)
{
	if (p->acclen == p->acccap) {
		p->acccap = p->acccap == 0 ? 256 : p->acccap * 2;
		p->acc = xrealloc(p->acc, p->acccap);
	}
	p->acc[p->acclen++] = c;
}

/*
 * Enhanced status code at the start of s (RFC 3463): class "." subject "."
 * detail, then SP or end.  Returns its length, or 0.
 */
static size_t
reply_enh_len(const char *s, int rclass)
{
	size_t i, part, n;

	if (s[0] != '0' + rclass || (rclass != 2 && rclass != 4 && rclass != 5))
		return 0;
	i = 1;
	for (part = 0; part < 2; part++) {
		if (s[i++] != '.')
			return 0;
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (s[i] == '0' && s[i + 1] >= '0' && s[i + 1] <= '9')
			return 0;       /* no leading zeros */
		for (n = 0; s[i] >= '0' && s[i] <= '9'; i++)
			if (++n > 3)
				return 0;
	}
	if (s[i] != ' ' && s[i] != '\0')
		return 0;
	return i;
}

/* Build the reply from the collected lines and reset for the next one. */
static struct smtp_reply *
reply_build(struct smtp_reply_parser *p)
{
	struct smtp_reply *r;
	const char *src;
	char *dst, *block, *t;
	size_t i, len, enhlen, skip, textlen;

	r = xcalloc(1, sizeof(*r));
	r->code = p->rcode;
	r->nlines = p->nlines;
	enhlen = reply_enh_len(p->acc, p->rcode / 100);
	if (enhlen > 0) {
		memcpy(r->enh, p->acc, enhlen);
		r->enh[enhlen] = '\0';
	}

	/* one block: the pointer array, then the strings */
	block = xmalloc((p->nlines + 1) * sizeof(char *) + p->acclen);
	r->lines = (char **)(void *)block;
	dst = block + (p->nlines + 1) * sizeof(char *);
	src = p->acc;
	textlen = 0;
	for (i = 0; i < p->nlines; i++) {
		len = strlen(src);
		skip = 0;
		if (enhlen > 0 && strncmp(src, r->enh, enhlen) == 0 &&
		    (src[enhlen] == ' ' || src[enhlen] == '\0'))
			skip = enhlen + (src[enhlen] == ' ');
		r->lines[i] = dst;
		memcpy(dst, src + skip, len - skip + 1);
		dst += len - skip + 1;
		textlen += len - skip + 1;
		src += len + 1;
	}
	r->lines[p->nlines] = NULL;

	r->text = t = xmalloc(textlen > 0 ? textlen : 1);
	for (i = 0; i < p->nlines; i++) {
		len = strlen(r->lines[i]);
		memcpy(t, r->lines[i], len);
		t += len;
		*t++ = '\n';
	}
	t[-1] = '\0';           /* nlines >= 1: replaces the last "\n" */

	p->rcode = 0;
	p->nlines = 0;
	p->total = 0;
	p->acclen = 0;
	return r;
}

/*
 * One byte.  Returns 1 when it completed a reply, 0 to go on, -1 on error.
 */
static int
reply_byte(struct smtp_reply_parser *p, unsigned char c)
{
	size_t pos = p->linelen;

	if (p->state == RS_CR) {
		if (c != '\n') {
			reply_fail(p, "CR not followed by LF");
			return -1;
		}
		if (p->more && p->nlines + 1 >= SMTP_REPLY_LINES_MAX) {
			reply_fail(p, "more than %d lines in one reply", SMTP_REPLY_LINES_MAX);
			return -1;
		}
		reply_acc_put(p, '\0');
		p->rcode = p->code;
		p->nlines++;
		p->total += p->linelen + 2;
		p->linelen = 0;
		p->state = RS_LINE;
		return p->more ? 0 : 1;
	}

	if (c == '\r') {
		if (pos < 3) {
			reply_fail(p, "line shorter than a reply code");
			return -1;
		}
		if (pos == 3)
			p->more = 0;
		p->state = RS_CR;
		return 0;
	}
	if (c == '\n') {
		reply_fail(p, "LF without CR");
		return -1;
	}
	if (c == '\0') {
		reply_fail(p, "NUL byte");
		return -1;
	}
	/* room for this byte and the CRLF */
	if (pos + 1 + 2 > SMTP_REPLY_LINE_MAX) {
		reply_fail(p, "line longer than %d octets", SMTP_REPLY_LINE_MAX);
		return -1;
	}
	if (p->total + pos + 1 + 2 > SMTP_REPLY_SIZE_MAX) {
		reply_fail(p, "reply longer than %d octets", SMTP_REPLY_SIZE_MAX);
		return -1;
	}

	switch (pos) {
	case 0:
		if (c < '2' || c > '5') {
			reply_fail(p, "reply code does not start with 2..5");
			return -1;
		}
		p->code = (c - '0') * 100;
		break;
	case 1:
		if (c < '0' || c > '5') {
			reply_fail(p, "second digit of the reply code is not 0..5");
			return -1;
		}
		p->code += (c - '0') * 10;
		break;
	case 2:
		if (c < '0' || c > '9') {
			reply_fail(p, "third character of the reply code is not a digit");
			return -1;
		}
		p->code += c - '0';
		if (p->nlines > 0 && p->code != p->rcode) {
			reply_fail(p, "code %d differs from the reply's code %d", p->code,
			    p->rcode);
			return -1;
		}
		break;
	case 3:
		if (c != '-' && c != ' ') {
			reply_fail(p, "reply code not followed by SP, '-' or CRLF");
			return -1;
		}
		p->more = c == '-';
		break;
	default:
		reply_acc_put(p, (char)c);
		break;
	}
	p->linelen++;
	return 0;
}

int
smtp_reply_parser_feed(struct smtp_reply_parser *p, const void *buf, size_t len,
    size_t *consumed_r, struct smtp_reply **reply_r)
{
	const unsigned char *b = buf;
	size_t i;
	int rv;

	*reply_r = NULL;
	if (consumed_r != NULL)
		*consumed_r = 0;
	if (p->state == RS_ERROR)
		return -1;
	for (i = 0; i < len; i++) {
		rv = reply_byte(p, b[i]);
		if (rv < 0) {
			if (consumed_r != NULL)
				*consumed_r = i;
			return -1;
		}
		if (rv > 0) {
			*reply_r = reply_build(p);
			if (consumed_r != NULL)
				*consumed_r = i + 1;
			return 1;
		}
	}
	if (consumed_r != NULL)
		*consumed_r = len;
	return 0;
}

/* Does the token [s, s+n) equal kw, ignoring ASCII case? */
static int
caps_is(const char *s, size_t n, const char *kw)
{
	return strlen(kw) == n && ascii_ncasecmp(s, kw, n) == 0;
}

/* SIZE parameter: decimal digits only; anything else or overflow is 0. */
static uint64_t
caps_size(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

/* Call fn for each SP-separated word of s. */
static void
caps_words(const char *s, struct smtp_caps *caps,
    void (*fn)(const char *w, size_t n, struct smtp_caps *caps))
{
	size_t n;

	for (;;) {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			return;
		n = strcspn(s, " ");
		fn(s, n, caps);
		s += n;
	}
}

static void
caps_auth_mech(const char *w, size_t n, struct smtp_caps *caps)
{
	if (caps_is(w, n, "PLAIN"))
		caps->auth_plain = 1;
	else if (caps_is(w, n, "LOGIN"))
		caps->auth_login = 1;
}

static void
caps_xclient_attr(const char *w, size_t n, struct smtp_caps *caps)
{
	static const struct { const char *name; unsigned bit; } attrs[] = {
		{ "NAME", SMTP_XCLIENT_NAME }, { "ADDR", SMTP_XCLIENT_ADDR },
		{ "PORT", SMTP_XCLIENT_PORT }, { "PROTO", SMTP_XCLIENT_PROTO },
		{ "HELO", SMTP_XCLIENT_HELO }, { "LOGIN", SMTP_XCLIENT_LOGIN },
		{ "DESTADDR", SMTP_XCLIENT_DESTADDR }, { "DESTPORT", SMTP_XCLIENT_DESTPORT },
	};
	size_t i;

	for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
		if (caps_is(w, n, attrs[i].name))
			caps->xclient_attrs |= attrs[i].bit;
}

static void
caps_line(const char *s, struct smtp_caps *caps)
{
	const char *arg;
	size_t n;

	n = strcspn(s, " =");
	arg = s + n;
	if (*arg != '\0')
		arg++;
	if (caps_is(s, n, "STARTTLS"))
		caps->starttls = 1;
	else if (caps_is(s, n, "PIPELINING"))
		caps->pipelining = 1;
	else if (caps_is(s, n, "8BITMIME"))
		caps->eightbitmime = 1;
	else if (caps_is(s, n, "CHUNKING"))
		caps->chunking = 1;
	else if (caps_is(s, n, "SMTPUTF8"))
		caps->smtputf8 = 1;
	else if (caps_is(s, n, "DSN"))
		caps->dsn = 1;
	else if (caps_is(s, n, "ENHANCEDSTATUSCODES"))
		caps->enhancedstatuscodes = 1;
	else if (caps_is(s, n, "SIZE")) {
		caps->size = 1;
		caps->size_max = caps_size(arg, strcspn(arg, " "));
	} else if (caps_is(s, n, "AUTH")) {
		caps->auth = 1;
		caps_words(arg, caps, caps_auth_mech);
	} else if (caps_is(s, n, "XCLIENT") && s[n] != '=') {
		caps->xclient = 1;
		caps_words(arg, caps, caps_xclient_attr);
	}
}

void
smtp_ehlo_caps(const struct smtp_reply *r, struct smtp_caps *caps)
{
	size_t i;

	memset(caps, 0, sizeof(*caps));
	for (i = 1; i < r->nlines; i++)
		caps_line(r->lines[i], caps);
}
