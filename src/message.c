/*
 * message.c — the incoming message: DATA/BDAT streaming parser with strict
 * intake checks, the dot-stuffer for relaying, and RFC 5322 address lists.
 *
 * Two layers.  In DATA mode the wire layer removes dot-stuffing and finds
 * the terminator; it knows only one line ending, the literal CR LF, so any
 * lone CR or LF can never make a '.' look like the start of a line (SMTP
 * smuggling).  The content layer sees the unstuffed octets (BDAT feeds it
 * directly), checks every octet and line, collects header fields and
 * writes what is acceptable to the spool.
 */
#include "message.h"
#include "spool.h"
#include "util.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <sodium.h>

#define MSG_FIELD_MAX   (1024 * 1024)   /* header field bound when max_header is 0 */
#define MSG_ADDR_MAX    254             /* RFC 5321 path without <> */

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* DATA wire layer states. */
enum msg_wire {
	W_BOL,          /* start of a line (after CR LF, or the first octet) */
	W_DOT,          /* '.' at the start of a line */
	W_DOTCR,        /* ".\r" at the start of a line */
	W_TEXT,         /* inside a line */
	W_CR,           /* inside a line, after CR */
	W_DONE          /* terminator seen */
};

/* Fields that may appear at most once (RFC 5322 3.6). */
static const char *const msg_unique[] = {
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References"
};
enum { U_FROM, U_SENDER, U_REPLY_TO, U_TO, U_CC, U_SUBJECT, U_DATE, U_MSGID };

struct msg_parser {
	struct msg_limits lim;
	enum msg_mode mode;
	struct spool *sp;
	struct msg_result res;
	enum msg_wire wire;
	uint64_t wire_bytes;
	int finished;

	/* content layer */
	int prev_cr;            /* the last octet was CR */
	uint64_t line_len;      /* octets of the current line, CR LF excluded */
	int in_header;

	/* the header field being collected, unfolded (CR LF removed) */
	char *fld;
	size_t fld_len, fld_cap, fld_max;
	size_t name_len;
	int have_field;         /* fld holds a field not yet checked */
	int name_phase;         /* still reading the field name */
	int cont_line;          /* the current line is a continuation */
	int cont_nonws;         /* ... and holds more than white space */
	unsigned int seen;      /* bit per msg_unique[] entry */
};

static int msg_violate(struct msg_parser *, int, const char *, const char *, ...)
    __attribute__((format(printf, 4, 5)));

/* Record the first violation; always returns -1. */
static int
msg_violate(struct msg_parser *p, int code, const char *enh, const char *fmt, ...)
{
	va_list ap;

	if (p->res.code != 0)
		return -1;
	p->res.code = code;
	snprintf(p->res.enh, sizeof(p->res.enh), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(p->res.text, sizeof(p->res.text), fmt, ap);
	va_end(ap);
	return -1;
}

struct msg_parser *
msg_parser_new(const struct msg_limits *lim, enum msg_mode mode, struct spool *sp)
{
	struct msg_parser *p = xcalloc(1, sizeof(*p));

	p->lim = *lim;
	p->mode = mode;
	p->sp = sp;
	p->wire = W_BOL;
	p->in_header = 1;
	p->fld_max = MSG_FIELD_MAX;
	if (lim->max_header != 0 && lim->max_header < p->fld_max)
		p->fld_max = (size_t)lim->max_header;
	return p;
}

static void
msg_field_release(struct msg_parser *p)
{
	if (p->fld != NULL) {
		sodium_memzero(p->fld, p->fld_cap);
		free(p->fld);
	}
	p->fld = NULL;
	p->fld_len = p->fld_cap = 0;
}

void
msg_parser_free(struct msg_parser **pp)
{
	struct msg_parser *p;
	size_t i;

	if (pp == NULL || (p = *pp) == NULL)
		return;
	msg_field_release(p);
	for (i = 0; i < p->res.nfrom; i++)
		free(p->res.from[i]);
	free(p->res.sender);
	free(p);
	*pp = NULL;
}

/* ---- header fields ---- */

static int
msg_name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && ascii_ncasecmp(name, want, len) == 0;
}

static int
msg_field_add(struct msg_parser *p, unsigned char c)
{
	if (p->fld_len >= p->fld_max)
		return msg_violate(p, 552, "5.3.4", "Header field longer than %zu octets",
		    p->fld_max);
	if (p->fld_len == p->fld_cap) {
		size_t ncap = p->fld_cap ? p->fld_cap * 2 : 256, len = p->fld_len;
		char *n;

		if (ncap > p->fld_max)
			ncap = p->fld_max;
		/* not realloc: header text is wiped before it is let go */
		n = xmalloc(ncap);
		if (len > 0)
			memcpy(n, p->fld, len);
		msg_field_release(p);
		p->fld = n;
		p->fld_cap = ncap;
		p->fld_len = len;
	}
	p->fld[p->fld_len++] = (char)c;
	return 0;
}

static void
msg_free_addrs(char **a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(a[i]);
		a[i] = NULL;
	}
}

static int
msg_check_from(struct msg_parser *p, const char *val, size_t len)
{
	char *a[MSG_FROM_MAX];
	int n = msg_parse_addresses(val, len, a, MSG_FROM_MAX);
	size_t i;

	if (n < 0)
		return msg_violate(p, 550, "5.6.0", "Header From field has an unparsable address list");
	if (n == 0)
		return msg_violate(p, 550, "5.6.0", "Header From field has no address");
	if (n > MSG_FROM_MAX) {
		msg_free_addrs(a, MSG_FROM_MAX);
		return msg_violate(p, 550, "5.6.0", "Header From field has more than %d addresses",
		    MSG_FROM_MAX);
	}
	for (i = 0; i < (size_t)n; i++)
		p->res.from[i] = a[i];
	p->res.nfrom = (size_t)n;
	return 0;
}

static int
msg_check_sender(struct msg_parser *p, const char *val, size_t len)
{
	char *a[1];
	int n = msg_parse_addresses(val, len, a, 1);

	if (n != 1) {
		if (n > 0)
			free(a[0]);
		return msg_violate(p, 550, "5.6.0", "Header Sender field must hold exactly one address");
	}
	p->res.sender = a[0];
	return 0;
}

/* A whole field was collected: count and check it. */
static int
msg_field_done(struct msg_parser *p)
{
	struct msg_result *r = &p->res;
	const char *name = p->fld, *val;
	size_t vlen, i;

	p->have_field = 0;
	if (p->name_phase)      /* cannot happen: the line end checked it */
		return msg_violate(p, 550, "5.6.0", "Header line without a field name");
	val = p->fld + p->name_len + 1;
	vlen = p->fld_len - p->name_len - 1;
	if (msg_name_is(name, p->name_len, "Received")) {
		if (++r->received > p->lim.max_received)
			return msg_violate(p, 554, "5.4.6",
			    "Too many Received header fields (%llu): mail loop?",
			    (unsigned long long)r->received);
		return 0;
	}
	for (i = 0; i < nitems(msg_unique); i++)
		if (msg_name_is(name, p->name_len, msg_unique[i]))
			break;
	if (i == nitems(msg_unique))
		return 0;
	if (p->seen & (1u << i))
		return msg_violate(p, 550, "5.6.0", "Duplicate header %s field", msg_unique[i]);
	p->seen |= 1u << i;
	switch (i) {
	case U_FROM:
		return msg_check_from(p, val, vlen);
	case U_SENDER:
		return msg_check_sender(p, val, vlen);
	case U_DATE:
		r->has_date = 1;
		break;
	case U_MSGID:
		r->has_message_id = 1;
		/* for the audit log: the value without surrounding white space */
		while (vlen > 0 && (*val == ' ' || *val == '\t')) {
			val++;
			vlen--;
		}
		while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
			vlen--;
		if (vlen >= sizeof(r->message_id))
			vlen = sizeof(r->message_id) - 1;
		memcpy(r->message_id, val, vlen);
		r->message_id[vlen] = '\0';
		break;
	}
	return 0;
}

/* The header section ended (empty line, or the end of the message). */
static int
msg_header_end(struct msg_parser *p)
{
	p->in_header = 0;
	if (p->have_field && msg_field_done(p) < 0)
		return -1;
	msg_field_release(p);
	if (!(p->seen & (1u << U_FROM)))
		return msg_violate(p, 550, "5.6.0", "Message has no header From field");
	return 0;
}

/* One octet (not CR or LF) of a header line; line_len already counts it. */
static int
msg_header_byte(struct msg_parser *p, unsigned char c)
{
	if (p->line_len == 1) {
		if (c == ' ' || c == '\t') {
			if (!p->have_field)
				return msg_violate(p, 550, "5.6.0",
				    "Header starts with a continuation line");
			p->cont_line = 1;
			p->cont_nonws = 0;
			return msg_field_add(p, c);
		}
		if (p->have_field && msg_field_done(p) < 0)
			return -1;
		p->have_field = 1;
		p->name_phase = 1;
		p->cont_line = 0;
		p->fld_len = 0;
	}
	if (p->name_phase) {
		if (c == ':') {
			if (p->fld_len == 0)
				return msg_violate(p, 550, "5.6.0", "Header field with an empty name");
			p->name_phase = 0;
			p->name_len = p->fld_len;
		} else if (c < 33 || c > 126) {
			return msg_violate(p, 550, "5.6.0", "Invalid octet in a header field name");
		}
	} else if (p->cont_line && c != ' ' && c != '\t') {
		p->cont_nonws = 1;
	}
	return msg_field_add(p, c);
}

/* A CR LF was seen. */
static int
msg_line_end(struct msg_parser *p)
{
	uint64_t len = p->line_len;

	p->line_len = 0;
	if (!p->in_header)
		return 0;
	if (len == 0)
		return msg_header_end(p);
	if (p->name_phase)
		return msg_violate(p, 550, "5.6.0", "Header line without a field name and colon");
	if (p->cont_line && !p->cont_nonws)
		return msg_violate(p, 550, "5.6.0", "Header continuation line holds only white space");
	return 0;
}

/* ---- content layer ---- */

/* Check one octet of the message; -1 once it is refused. */
static int
msg_byte(struct msg_parser *p, unsigned char c)
{
	struct msg_result *r = &p->res;

	r->size++;
	if (p->lim.max_size != 0 && r->size > p->lim.max_size)
		return msg_violate(p, 552, "5.3.4", "Message exceeds the size limit of %llu octets",
		    (unsigned long long)p->lim.max_size);
	if (p->in_header && ++r->header_size > p->lim.max_header && p->lim.max_header != 0)
		return msg_violate(p, 552, "5.3.4", "Header section exceeds %llu octets",
		    (unsigned long long)p->lim.max_header);
	if (c == '\0')
		return msg_violate(p, 550, "5.6.0", "Message contains a NUL octet");
	if (c >= 0x80)
		r->has_8bit = 1;
	if (p->prev_cr) {
		p->prev_cr = 0;
		if (c != '\n')
			return msg_violate(p, 550, "5.6.0",
			    "Message contains a bare CR (lines must end with CR LF)");
		return msg_line_end(p);
	}
	if (c == '\r') {
		p->prev_cr = 1;
		return 0;
	}
	if (c == '\n')
		return msg_violate(p, 550, "5.6.0",
		    "Message contains a bare LF (lines must end with CR LF)");
	if (++p->line_len > p->lim.max_line && p->lim.max_line != 0)
		return msg_violate(p, 550, "5.6.0", "Message has a line longer than %llu octets",
		    (unsigned long long)p->lim.max_line);
	if (p->in_header)
		return msg_header_byte(p, c);
	return 0;
}

/* Fast path for body text: the octets before the next CR, LF or NUL that
 * stay within the limits; msg_byte() takes the rest.  Returns the count. */
static size_t
msg_body_run(struct msg_parser *p, const unsigned char *b, size_t n)
{
	const struct msg_limits *l = &p->lim;
	size_t j = 0;
	unsigned char hi = 0;

	if (l->max_line != 0 && l->max_line - p->line_len < n)
		n = (size_t)(l->max_line - p->line_len);
	if (l->max_size != 0 && l->max_size - p->res.size < n)
		n = (size_t)(l->max_size - p->res.size);
	while (j < n && b[j] != '\r' && b[j] != '\n' && b[j] != '\0')
		hi |= b[j++];
	p->line_len += j;
	p->res.size += j;
	if (hi & 0x80)
		p->res.has_8bit = 1;
	return j;
}

/* Unstuffed message octets: check them, store what is acceptable. */
static void
msg_content(struct msg_parser *p, const unsigned char *b, size_t n)
{
	size_t i = 0, k;

	if (p->res.code != 0) {
		p->res.size += n;
		return;
	}
	while (i < n) {
		if (!p->in_header && !p->prev_cr && (k = msg_body_run(p, b + i, n - i)) > 0) {
			i += k;
			continue;
		}
		if (msg_byte(p, b[i]) < 0) {
			p->res.size += n - i - 1;
			break;
		}
		i++;
	}
	if (i > 0 && spool_append(p->sp, b, i) < 0)
		msg_violate(p, 451, "4.3.0", "Temporary failure storing the message, try again later");
}

/* ---- DATA wire layer ---- */

static size_t
msg_data_feed(struct msg_parser *p, const unsigned char *b, size_t len)
{
	size_t i, run = 0;      /* b[run..i) is content not yet passed on */

	for (i = 0; i < len && p->wire != W_DONE; i++) {
		unsigned char c = b[i];

		switch (p->wire) {
		case W_BOL:
			if (c == '.') {
				msg_content(p, b + run, i - run);
				run = i + 1;
				p->wire = W_DOT;
			} else
				p->wire = c == '\r' ? W_CR : W_TEXT;
			break;
		case W_DOT:
			/* "..x" keeps the second dot; ".x" loses its dot (RFC 5321 4.5.2) */
			if (c == '\r') {
				run = i + 1;
				p->wire = W_DOTCR;
			} else
				p->wire = W_TEXT;
			break;
		case W_DOTCR:
			if (c == '\n') {
				run = i + 1;
				p->wire = W_DONE;
				break;
			}
			/* ".\r" then not LF: a bare CR, not an end */
			msg_content(p, (const unsigned char *)"\r", 1);
			run = i;
			p->wire = c == '\r' ? W_CR : W_TEXT;
			break;
		case W_TEXT: {
			const unsigned char *cr = memchr(b + i, '\r', len - i);

			i = cr != NULL ? (size_t)(cr - b) : len - 1;
			if (cr != NULL)
				p->wire = W_CR;
			break;
		}
		case W_CR:
			if (c == '\n')
				p->wire = W_BOL;
			else if (c != '\r')
				p->wire = W_TEXT;
			break;
		case W_DONE:
			break;
		}
	}
	if (i > run)
		msg_content(p, b + run, i - run);
	p->wire_bytes += i;
	if (p->wire == W_DONE)
		msg_parser_finish(p);
	return i;
}

size_t
msg_parser_feed(struct msg_parser *p, const void *buf, size_t len)
{
	if (p->mode == MSG_MODE_DATA)
		return msg_data_feed(p, buf, len);
	if (!p->finished) {
		p->wire_bytes += len;
		msg_content(p, buf, len);
	}
	return len;
}

int
msg_parser_done(const struct msg_parser *p)
{
	return p->mode == MSG_MODE_DATA && p->wire == W_DONE;
}

void
msg_parser_finish(struct msg_parser *p)
{
	if (p->finished)
		return;
	p->finished = 1;
	if (p->res.code != 0)
		return;
	if (p->prev_cr) {
		msg_violate(p, 550, "5.6.0", "Message ends with a bare CR");
		return;
	}
	if (p->line_len > 0) {
		p->res.added_final_crlf = 1;
		msg_content(p, (const unsigned char *)"\r\n", 2);
	}
	if (p->res.code == 0 && p->in_header)
		msg_header_end(p);
}

uint64_t
msg_parser_bytes(const struct msg_parser *p)
{
	return p->wire_bytes;
}

const struct msg_result *
msg_parser_result(const struct msg_parser *p)
{
	return &p->res;
}

/* ---- dot-stuffing ---- */

enum { ST_BOL_CRLF, ST_BOL_OTHER, ST_TEXT, ST_CR };

void
msg_stuff_init(struct msg_stuffer *st)
{
	st->state = ST_BOL_CRLF;
}

/* A '.' is doubled after CR LF and, to leave lenient receivers nothing to
 * misread, also after a lone CR or LF (none pass our intake anyway). */
void
msg_stuff(struct msg_stuffer *st, const void *buf, size_t len, struct evbuffer *out)
{
	const unsigned char *b = buf;
	size_t i, run = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = b[i];

		if (c == '.' && st->state != ST_TEXT) {
			evbuffer_add(out, b + run, i + 1 - run);
			run = i;        /* the dot goes out once more */
			st->state = ST_TEXT;
		} else if (c == '\r')
			st->state = ST_CR;
		else if (c == '\n')
			st->state = st->state == ST_CR ? ST_BOL_CRLF : ST_BOL_OTHER;
		else
			st->state = ST_TEXT;
	}
	if (len > run)
		evbuffer_add(out, b + run, len - run);
}

void
msg_stuff_end(struct msg_stuffer *st, struct evbuffer *out)
{
	if (st->state != ST_BOL_CRLF)
		evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, ".\r\n", 3);
	st->state = ST_BOL_CRLF;
}

/* ---- RFC 5322 address lists ---- */

enum { TK_END = 0, TK_ATOM = 'A', TK_QSTR = 'Q', TK_DLIT = 'D' };

struct addr_tok {
	int type;               /* TK_* or one of the specials < > @ , ; : . */
	size_t off, len;        /* decoded text in addr_ctx.txt */
};

struct addr_ctx {
	struct addr_tok *t;
	size_t nt, cap, i;
	char *txt;
	char **addrs;
	size_t max;
	int n;
};

static int
addr_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c >= 0x80 || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* CR LF followed by white space: folding, which reads as the white space. */
static int
addr_fold(const unsigned char *s, size_t len, size_t i)
{
	return i + 2 < len && s[i] == '\r' && s[i + 1] == '\n' &&
	    (s[i + 2] == ' ' || s[i + 2] == '\t');
}

static void
addr_push(struct addr_ctx *c, int type, size_t off, size_t len)
{
	if (c->nt == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 32;
		c->t = xreallocarray(c->t, c->cap, sizeof(*c->t));
	}
	c->t[c->nt].type = type;
	c->t[c->nt].off = off;
	c->t[c->nt].len = len;
	c->nt++;
}

/* Skip a (possibly nested) comment starting at s[*ip] == '('. */
static int
addr_comment(const unsigned char *s, size_t len, size_t *ip)
{
	size_t i = *ip, depth = 0;

	while (i < len) {
		unsigned char ch = s[i];

		if (ch == '(')
			depth++;
		else if (ch == ')')
			depth--;
		else if (ch == '\\') {
			if (i + 1 >= len || s[i + 1] == '\0' || s[i + 1] == '\r' || s[i + 1] == '\n')
				return -1;
			i++;
		} else if (ch == '\r') {
			if (!addr_fold(s, len, i))
				return -1;
			i++;
		} else if (ch == '\n' || ch == '\0')
			return -1;
		i++;
		if (depth == 0)
			break;
	}
	*ip = i;
	return depth == 0 ? 0 : -1;
}

/* Quoted string or domain literal at s[*ip]; decoded text to txt at *op. */
static int
addr_quoted(struct addr_ctx *c, const unsigned char *s, size_t len, size_t *ip, size_t *op)
{
	int lit = s[*ip] == '[';
	size_t i = *ip + 1, o = *op;

	for (;;) {
		unsigned char ch;

		if (i >= len)
			return -1;
		ch = s[i];
		if (ch == (lit ? ']' : '"')) {
			i++;
			break;
		}
		if (ch == '\r' && addr_fold(s, len, i)) {
			i += 2;
			continue;
		}
		if (lit && (ch == ' ' || ch == '\t')) {
			i++;
			continue;
		}
		if (!lit && ch == '\\' && i + 1 < len) {
			ch = s[++i];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return -1;
		} else if ((ch < 0x20 && ch != '\t') || ch == 0x7f || ch == '\\' ||
		    (lit && (ch == '[' || ch == ' ' || ch == '\t')))
			return -1;
		c->txt[o++] = (char)ch;
		i++;
	}
	addr_push(c, lit ? TK_DLIT : TK_QSTR, *op, o - *op);
	*ip = i;
	*op = o;
	return 0;
}

static int
addr_tokenize(struct addr_ctx *c, const unsigned char *s, size_t len)
{
	size_t i = 0, o = 0;

	while (i < len) {
		unsigned char ch = s[i];

		if (ch == ' ' || ch == '\t')
			i++;
		else if (ch == '\r') {
			if (!addr_fold(s, len, i))
				return -1;
			i += 2;
		} else if (ch == '(') {
			if (addr_comment(s, len, &i) < 0)
				return -1;
		} else if (ch == '"' || ch == '[') {
			if (addr_quoted(c, s, len, &i, &o) < 0)
				return -1;
		} else if (ch != '\0' && strchr("<>@,;:.", ch) != NULL) {
			addr_push(c, ch, o, 0);
			i++;
		} else if (addr_atext(ch)) {
			size_t start = o;

			while (i < len && addr_atext(s[i]))
				c->txt[o++] = (char)s[i++];
			addr_push(c, TK_ATOM, start, o - start);
		} else
			return -1;
	}
	addr_push(c, TK_END, o, 0);
	return 0;
}

static int
addr_tk(const struct addr_ctx *c)
{
	return c->t[c->i].type;
}

/* phrase / obs-phrase: word *(word / "."); returns the words and dots taken. */
static size_t
addr_phrase(struct addr_ctx *c)
{
	size_t n = 0;

	while (addr_tk(c) == TK_ATOM || addr_tk(c) == TK_QSTR || (n > 0 && addr_tk(c) == '.')) {
		c->i++;
		n++;
	}
	return n;
}

/* Append a token's text to dst (capacity cap); -1 when it does not fit. */
static int
addr_cat(char *dst, size_t *dlen, size_t cap, const char *src, size_t len)
{
	if (len >= cap - *dlen)
		return -1;
	memcpy(dst + *dlen, src, len);
	*dlen += len;
	dst[*dlen] = '\0';
	return 0;
}

static int
addr_dot_atom(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] == '.' ? s[i + 1] == '.' : !addr_atext((unsigned char)s[i]))
			return 0;
	return 1;
}

static int
addr_utf8_ok(const unsigned char *s, size_t len)
{
	size_t i = 0, k, n;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return 0;
		if (len - i <= n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += n + 1;
	}
	return 1;
}

/* domain: dot-atom / obs-domain / domain-literal, appended to d. */
static int
addr_domain(struct addr_ctx *c, char *d, size_t *dlen, size_t cap)
{
	const struct addr_tok *t = &c->t[c->i];

	if (t->type == TK_DLIT) {
		c->i++;
		return addr_cat(d, dlen, cap, "[", 1) < 0 ||
		    addr_cat(d, dlen, cap, c->txt + t->off, t->len) < 0 ||
		    addr_cat(d, dlen, cap, "]", 1) < 0 ? -1 : 0;
	}
	for (;;) {
		t = &c->t[c->i];
		if (t->type != TK_ATOM || addr_cat(d, dlen, cap, c->txt + t->off, t->len) < 0)
			return -1;
		c->i++;
		if (addr_tk(c) != '.')
			return 0;
		c->i++;
		if (addr_cat(d, dlen, cap, ".", 1) < 0)
			return -1;
	}
}

/* addr-spec, returned in canonical form (dot-atom local part when it can
 * be written so, else a quoted string). */
static int
addr_spec(struct addr_ctx *c, char **out_r)
{
	char local[MSG_ADDR_MAX + 1], dom[MSG_ADDR_MAX + 1], res[MSG_ADDR_MAX + 1];
	size_t ll = 0, dl = 0, rl = 0, k;
	int quoted = 0;

	local[0] = dom[0] = '\0';
	for (;;) {
		const struct addr_tok *t = &c->t[c->i];

		if (t->type != TK_ATOM && t->type != TK_QSTR)
			return -1;
		quoted |= t->type == TK_QSTR;
		if (addr_cat(local, &ll, sizeof(local), c->txt + t->off, t->len) < 0)
			return -1;
		c->i++;
		if (addr_tk(c) != '.')
			break;
		c->i++;
		if (addr_cat(local, &ll, sizeof(local), ".", 1) < 0)
			return -1;
	}
	if (addr_tk(c) != '@')
		return -1;
	c->i++;
	if (addr_domain(c, dom, &dl, sizeof(dom)) < 0)
		return -1;
	if (!quoted || addr_dot_atom(local, ll)) {
		if (addr_cat(res, &rl, sizeof(res), local, ll) < 0)
			return -1;
	} else {
		if (addr_cat(res, &rl, sizeof(res), "\"", 1) < 0)
			return -1;
		for (k = 0; k < ll; k++)
			if (((local[k] == '"' || local[k] == '\\') &&
			    addr_cat(res, &rl, sizeof(res), "\\", 1) < 0) ||
			    addr_cat(res, &rl, sizeof(res), local + k, 1) < 0)
				return -1;
		if (addr_cat(res, &rl, sizeof(res), "\"", 1) < 0)
			return -1;
	}
	if (addr_cat(res, &rl, sizeof(res), "@", 1) < 0 ||
	    addr_cat(res, &rl, sizeof(res), dom, dl) < 0 ||
	    !addr_utf8_ok((const unsigned char *)res, rl))
		return -1;
	*out_r = xstrndup(res, rl);
	return 0;
}

static int
addr_emit(struct addr_ctx *c, char *a)
{
	if (c->n == INT_MAX) {
		free(a);
		return -1;
	}
	if ((size_t)c->n < c->max)
		c->addrs[c->n] = a;
	else
		free(a);
	c->n++;
	return 0;
}

/* mailbox: addr-spec / [display-name] "<" [obs-route] addr-spec ">" */
static int
addr_mailbox(struct addr_ctx *c)
{
	size_t save = c->i;
	char *a, dummy[MSG_ADDR_MAX + 1];
	size_t dl;

	if (addr_spec(c, &a) == 0) {
		int f = addr_tk(c);

		if (f == ',' || f == ';' || f == TK_END)
			return addr_emit(c, a);
		free(a);
	}
	c->i = save;
	addr_phrase(c);
	if (addr_tk(c) != '<')
		return -1;
	c->i++;
	if (addr_tk(c) == '@' || addr_tk(c) == ',') {
		/* obs-route: *("," / "@" domain) ":" */
		for (;;) {
			while (addr_tk(c) == ',')
				c->i++;
			if (addr_tk(c) != '@')
				break;
			c->i++;
			dl = 0;
			if (addr_domain(c, dummy, &dl, sizeof(dummy)) < 0)
				return -1;
		}
		if (addr_tk(c) != ':')
			return -1;
		c->i++;
	}
	if (addr_spec(c, &a) < 0)
		return -1;
	if (addr_tk(c) != '>') {
		free(a);
		return -1;
	}
	c->i++;
	return addr_emit(c, a);
}

/* address: mailbox / display-name ":" [mailbox-list] ";" */
static int
addr_address(struct addr_ctx *c)
{
	size_t save = c->i;

	if (addr_phrase(c) > 0 && addr_tk(c) == ':') {
		c->i++;
		for (;;) {
			while (addr_tk(c) == ',')
				c->i++;
			if (addr_tk(c) == ';') {
				c->i++;
				return 0;
			}
			if (addr_mailbox(c) < 0)
				return -1;
			if (addr_tk(c) != ',' && addr_tk(c) != ';')
				return -1;
		}
	}
	c->i = save;
	return addr_mailbox(c);
}

int
msg_parse_addresses(const char *value, size_t len, char **addrs, size_t max)
{
	struct addr_ctx c;
	int r = 0;

	memset(&c, 0, sizeof(c));
	c.addrs = addrs;
	c.max = max;
	c.txt = xmalloc(len + 1);
	if (addr_tokenize(&c, (const unsigned char *)value, len) < 0)
		r = -1;
	while (r == 0) {
		while (addr_tk(&c) == ',')
			c.i++;
		if (addr_tk(&c) == TK_END)
			break;
		if (addr_address(&c) < 0 || (addr_tk(&c) != ',' && addr_tk(&c) != TK_END))
			r = -1;
	}
	free(c.t);
	free(c.txt);
	if (r < 0) {
		msg_free_addrs(addrs, (size_t)c.n < max ? (size_t)c.n : max);
		return -1;
	}
	return c.n;
}
