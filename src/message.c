/*
 * message.c — the incoming message: DATA/BDAT streaming parser with strict
 * intake checks, and the dot-stuffer for relaying.  The addresses of the
 * From and Sender fields come from rfc5322.c.
 *
 * Two layers.  In DATA mode the wire layer removes dot-stuffing and finds
 * the terminator; it knows only one line ending, the literal CR LF, so any
 * lone CR or LF can never make a '.' look like the start of a line (SMTP
 * smuggling).  The content layer sees the unstuffed octets (BDAT feeds it
 * directly), checks every octet and line, collects header fields and
 * writes what is acceptable to the spool.
 */
#include "message.h"
#include "rfc5322.h"
#include "spool.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <sodium.h>

#define MSG_FIELD_MAX   (1024 * 1024)   /* header field bound when max_header is 0 */

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

static int
msg_check_from(struct msg_parser *p, const char *val, size_t len)
{
	char *a[MSG_FROM_MAX];
	int n = rfc5322_parse_addresses(val, len, a, MSG_FROM_MAX);
	size_t i;

	if (n < 0)
		return msg_violate(p, 550, "5.6.0", "Header From field has an unparsable address list");
	if (n == 0)
		return msg_violate(p, 550, "5.6.0", "Header From field has no address");
	if (n > MSG_FROM_MAX) {
		rfc5322_free_addresses(a, MSG_FROM_MAX);
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
	int n = rfc5322_parse_addresses(val, len, a, 1);

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
		if (++p->res.fields > MSG_FIELDS_MAX)
			return msg_violate(p, 552, "5.3.4", "Header section has more than %d "
			    "header fields", MSG_FIELDS_MAX);
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
	} else if (c == '\v' || c == '\f') {
		/* obsolete in RFC 5322; DKIM verifiers disagree whether they are
		 * white space (libopendkim: yes, RFC 6376 and dkimpy: no), so a
		 * signature over them would fail at some receivers */
		return msg_violate(p, 550, "5.6.0", "Header field contains a vertical tab or "
		    "form feed; remove it (DKIM verifiers disagree on how to read it)");
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
		/* the CRLF is ours, not the client's: the limits are on what the
		 * client sent, so a BDAT message of exactly max_size octets passes
		 * as the same message sent with DATA (which has its CRLF) does */
		if (p->lim.max_size != 0)
			p->lim.max_size += 2;
		if (p->lim.max_header != 0 && p->in_header)
			p->lim.max_header += 2;
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
