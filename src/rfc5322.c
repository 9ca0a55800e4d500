/*
 * rfc5322.c — RFC 5322 address lists (the From and Sender fields): a
 * tokenizer (atoms, quoted strings, domain literals, specials; comments and
 * folding skipped) and a recursive-descent parser over the tokens for
 * address-list / mailbox-list, including groups and the obsolete route
 * syntax.  Pure: no I/O, no state between calls.
 */
#include "rfc5322.h"
#include "util.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
	char local[RFC5322_ADDR_MAX + 1], dom[RFC5322_ADDR_MAX + 1], res[RFC5322_ADDR_MAX + 1];
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
	char *a, dummy[RFC5322_ADDR_MAX + 1];
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

void
rfc5322_free_addresses(char **addrs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(addrs[i]);
		addrs[i] = NULL;
	}
}

int
rfc5322_addr_domain(const char *addr, char *dom, size_t domlen)
{
	const char *at = strrchr(addr, '@');
	size_t i, n;

	if (at == NULL || (n = strlen(at + 1)) == 0 || n >= domlen)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)at[1 + i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c >= 0x80))
			return -1;      /* a domain literal's '[' included */
		dom[i] = ascii_tolower((char)c);
	}
	dom[n] = '\0';
	return 0;
}

int
rfc5322_from_domain(const char *value, size_t len, char *dom, size_t domlen)
{
	char *a[1];
	int n = rfc5322_parse_addresses(value, len, a, 1), rc;

	if (n != 1) {
		if (n > 1)
			rfc5322_free_addresses(a, 1);
		return -1;
	}
	rc = rfc5322_addr_domain(a[0], dom, domlen);
	rfc5322_free_addresses(a, 1);
	return rc;
}

int
rfc5322_parse_addresses(const char *value, size_t len, char **addrs, size_t max)
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
		rfc5322_free_addresses(addrs, (size_t)c.n < max ? (size_t)c.n : max);
		return -1;
	}
	return c.n;
}
