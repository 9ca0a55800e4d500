/*
 * smtp_syntax.c — strict parsing of client SMTP commands.  Pure: no I/O and
 * no allocation; results point into the caller's line or into the struct.
 */
#include "smtp_syntax.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct verbdef {
	const char *name;
	enum smtp_verb verb;
};

static const struct verbdef verbs[] = {
	{ "EHLO", SMTP_V_EHLO }, { "HELO", SMTP_V_HELO }, { "STARTTLS", SMTP_V_STARTTLS },
	{ "AUTH", SMTP_V_AUTH }, { "MAIL", SMTP_V_MAIL }, { "RCPT", SMTP_V_RCPT },
	{ "DATA", SMTP_V_DATA }, { "BDAT", SMTP_V_BDAT }, { "RSET", SMTP_V_RSET },
	{ "NOOP", SMTP_V_NOOP }, { "QUIT", SMTP_V_QUIT }, { "VRFY", SMTP_V_VRFY },
	{ "EXPN", SMTP_V_EXPN }, { "HELP", SMTP_V_HELP }, { NULL, SMTP_V_UNKNOWN }
};

#define SIZE_LIMIT	(1ULL << 63)	/* larger SIZE= values are refused with 552 */
#define ENVID_MAX	100		/* RFC 3461 4.4 */
#define ORCPT_MAX	500		/* RFC 3461 4.2 */
#define LOCAL_MAX	64		/* RFC 5321 4.5.3.1.1 */
#define LABEL_MAX	63
#define DOMAIN_MAX	255
#define MECH_MAX	20
#define BDAT_DIGITS	19

static int seterr(struct smtp_err *, int, const char *, const char *, ...)
    __attribute__((format(printf, 4, 5)));

static int
seterr(struct smtp_err *e, int code, const char *enh, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	snprintf(e->enh, sizeof(e->enh), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- character classes (ASCII, locale-independent) ---- */

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_alnum(int c)
{
	return is_alpha(c) || is_digit(c);
}

/* xtext hexchar: upper-case only (RFC 3461 4) */
static int
is_hexup(int c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F');
}

/* RFC 5322 atext */
static int
is_atext(int c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int
has_8bit(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/* Length of the valid UTF-8 sequence at s (n octets available), 0 when it
 * is invalid: stray continuation, overlong, surrogate, > U+10FFFF, cut. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0], cp;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static int
utf8_valid(const char *s, size_t n)
{
	size_t i = 0, l;

	while (i < n) {
		if ((l = utf8_len((const unsigned char *)s + i, n - i)) == 0)
			return 0;
		i += l;
	}
	return 1;
}

/* Decimal digits only, at most maxdigits of them.  Returns 0 with *v, -1 on
 * bad syntax (empty, non-digit, too many digits), -2 on overflow. */
static int
dec_u64(const char *s, size_t maxdigits, uint64_t *v)
{
	uint64_t x = 0;
	size_t n;
	int over = 0;

	if (*s == '\0')
		return -1;
	for (n = 0; s[n] != '\0'; n++) {
		unsigned d;

		if (!is_digit(s[n]) || n >= maxdigits)
			return -1;
		d = (unsigned)(s[n] - '0');
		if (x > (UINT64_MAX - d) / 10)
			over = 1;
		else
			x = x * 10 + d;
	}
	if (over)
		return -2;
	*v = x;
	return 0;
}

/* xtext (RFC 3461 4): "+" and two upper-case hex digits, or 0x21..0x7e
 * except "+" and "=".  Empty is refused. */
static int
valid_xtext(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '+') {
			if (!is_hexup(s[1]) || !is_hexup(s[2]))
				return 0;
			s += 2;
		} else if (c < 0x21 || c > 0x7e || c == '=')
			return 0;
	}
	return 1;
}

/* ---- domains, address literals, mailboxes (RFC 5321 4.1.2, 4.1.3) ---- */

/* LDH labels separated by dots; with utf8, octets >= 0x80 (already checked
 * to be valid UTF-8) may appear in labels (U-labels; their length is the
 * business of IDNA, not ours). */
static int
valid_domain(const char *s, size_t n, int utf8)
{
	size_t i, lab = 0;
	int u = 0;

	if (n == 0 || n > DOMAIN_MAX)
		return 0;
	for (i = 0; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)s[i] : '.';

		if (c == '.') {
			if (lab == 0 || s[i - 1] == '-' || (!u && lab > LABEL_MAX))
				return 0;
			lab = 0;
			u = 0;
		} else if (c >= 0x80) {
			if (!utf8)
				return 0;
			u = 1;
			lab++;
		} else if (is_alnum(c) || (c == '-' && lab > 0))
			lab++;
		else
			return 0;
	}
	return 1;
}

/* "[d.d.d.d]" or "[IPv6:...]".  General literals ("[tag:...]") need a
 * registered tag and none but IPv6 exists: refused. */
static int
valid_literal(const char *s, size_t n)
{
	char buf[INET6_ADDRSTRLEN];
	struct in6_addr a6;
	unsigned parts = 0, v = 0, digits = 0;
	size_t i;

	if (n < 3 || s[0] != '[' || s[n - 1] != ']')
		return 0;
	if (n > 7 && ascii_ncasecmp(s + 1, "IPv6:", 5) == 0) {
		if (n - 7 >= sizeof(buf) || memchr(s + 6, '%', n - 7) != NULL)
			return 0;
		memcpy(buf, s + 6, n - 7);
		buf[n - 7] = '\0';
		return inet_pton(AF_INET6, buf, &a6) == 1;
	}
	for (i = 1; i < n - 1; i++) {
		if (is_digit(s[i])) {
			v = v * 10 + (unsigned)(s[i] - '0');
			if (++digits > 3 || v > 255)
				return 0;
		} else if (s[i] == '.' && digits > 0) {
			parts++;
			v = digits = 0;
		} else
			return 0;
	}
	return digits > 0 && parts == 3;
}

/* Quoted-string local part at s[0] == '"'; returns its length with both
 * quotes, 0 when invalid. */
static size_t
quoted_len(const char *s, size_t n, int utf8)
{
	size_t i;

	for (i = 1; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\') {
			/* quoted-pairSMTP: %d92 %d32-126 */
			if (++i >= n || (unsigned char)s[i] < 32 || (unsigned char)s[i] > 126)
				return 0;
		} else if (c == '"')
			return i + 1;
		else if (c >= 0x80) {
			if (!utf8)
				return 0;
		} else if (c < 32 || c > 126)
			return 0;
	}
	return 0;
}

/* Dot-string local part: atoms of atext joined by single dots. */
static int
valid_dotstring(const char *s, size_t n, int utf8)
{
	size_t i;

	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (s[i + 1] == '.')
				return 0;
		} else if (c >= 0x80) {
			if (!utf8)
				return 0;
		} else if (!is_atext(c))
			return 0;
	}
	return 1;
}

/* Mailbox = Local-part "@" ( Domain / address-literal ), n octets. */
static int
valid_mailbox(const char *s, size_t n, int utf8)
{
	const char *at;
	size_t ll;

	if (n == 0)
		return 0;
	if (s[0] == '"') {
		if ((ll = quoted_len(s, n, utf8)) == 0)
			return 0;
	} else {
		if ((at = memchr(s, '@', n)) == NULL)
			return 0;
		ll = (size_t)(at - s);
		if (!valid_dotstring(s, ll, utf8))
			return 0;
	}
	if (ll > LOCAL_MAX || ll >= n || s[ll] != '@')
		return 0;
	s += ll + 1;
	n -= ll + 1;
	if (n > 0 && s[0] == '[')
		return valid_literal(s, n);
	return valid_domain(s, n, utf8);
}

/* A-d-l ":" (source route, RFC 5321 4.1.2 and appendix C): "@dom,@dom:".
 * Returns its length (0 when s does not start with '@'), -1 when bad. */
static long
route_len(const char *s, size_t n, int utf8)
{
	size_t i = 0, start;
	const char *rb;

	if (n == 0 || s[0] != '@')
		return 0;
	for (;;) {
		if (i >= n || s[i] != '@')
			return -1;
		start = ++i;
		if (i < n && s[i] == '[') {
			if ((rb = memchr(s + i, ']', n - i)) == NULL)
				return -1;
			i = (size_t)(rb - s) + 1;
			if (!valid_literal(s + start, i - start))
				return -1;
		} else {
			while (i < n && s[i] != ',' && s[i] != ':')
				i++;
			if (!valid_domain(s + start, i - start, utf8))
				return -1;
		}
		if (i >= n)
			return -1;
		if (s[i] == ':')
			return (long)i + 1;
		if (s[i] != ',')
			return -1;
		i++;
	}
}

/* The '>' closing the path that opens at p[0] == '<', or NULL.  A '>'
 * inside a quoted local part does not close it. */
static char *
path_end(char *p)
{
	char *q = p + 1, *c, *rb;

	if (*q == '@') {
		/* skip a source route; its literals may hold ':' */
		for (c = q; *c != '\0' && *c != ':' && *c != '>'; c++)
			if (*c == '[' && (rb = strchr(c, ']')) != NULL)
				c = rb;
		if (*c == ':')
			q = c + 1;
	}
	if (*q == '"') {
		for (q++; *q != '\0' && *q != '"'; q++)
			if (*q == '\\' && q[1] != '\0')
				q++;
		if (*q == '\0')
			return NULL;
		q++;
	}
	return strchr(q, '>');
}

/* Validate the path between the brackets (n octets at mb) into cmd->path. */
static int
parse_path(const char *mb, size_t n, struct smtp_cmd *cmd, int is_mail, int utf8,
    struct smtp_err *e)
{
	const char *bad = is_mail ? "5.1.7" : "5.1.3";
	const char *who = is_mail ? "sender" : "recipient";
	long rl;

	if (n + 2 > SMTP_PATH_MAX)
		return seterr(e, 553, bad, "The %s address is too long", who);
	if (has_8bit(mb, n)) {
		if (!utf8)
			return seterr(e, 553, "5.6.7", "Non-ASCII %s address needs SMTPUTF8", who);
		if (!utf8_valid(mb, n))
			return seterr(e, 553, "5.6.7", "The %s address is not valid UTF-8", who);
	}
	if ((rl = route_len(mb, n, utf8)) < 0)
		return seterr(e, 553, bad, "Bad source route in the %s address", who);
	if (n == 0 && is_mail) {
		cmd->path[0] = '\0';
		return 0;
	}
	mb += rl;
	n -= (size_t)rl;
	if (n == 0)
		return seterr(e, 553, bad, "An empty %s address is not allowed here", who);
	if (!valid_mailbox(mb, n, utf8))
		return seterr(e, 553, bad, "Bad %s address syntax", who);
	memcpy(cmd->path, mb, n);
	cmd->path[n] = '\0';
	return 0;
}

/* ---- ESMTP parameters ---- */

/* Does the parameter list (after the path) carry the SMTPUTF8 keyword? */
static int
params_have_smtputf8(const char *p)
{
	size_t l;

	while (*p != '\0') {
		l = strcspn(p, " ");
		if (l == 8 && ascii_ncasecmp(p, "SMTPUTF8", 8) == 0)
			return 1;
		p += l;
		if (*p == ' ')
			p++;
	}
	return 0;
}

enum {
	P_SIZE = 1 << 0, P_BODY = 1 << 1, P_UTF8 = 1 << 2, P_AUTH = 1 << 3,
	P_RET = 1 << 4, P_ENVID = 1 << 5, P_NOTIFY = 1 << 6, P_ORCPT = 1 << 7
};

/* Which parameter is kw?  0 when unknown here (DSN ones need dsn_enabled). */
static unsigned
param_bit(const char *kw, int is_mail, int dsn)
{
	static const struct {
		const char *name;
		unsigned bit;
		int mail, dsn;
	} tab[] = {
		{ "SIZE", P_SIZE, 1, 0 }, { "BODY", P_BODY, 1, 0 }, { "SMTPUTF8", P_UTF8, 1, 0 },
		{ "AUTH", P_AUTH, 1, 0 }, { "RET", P_RET, 1, 1 }, { "ENVID", P_ENVID, 1, 1 },
		{ "NOTIFY", P_NOTIFY, 0, 1 }, { "ORCPT", P_ORCPT, 0, 1 },
	};
	size_t i;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (ascii_casecmp(kw, tab[i].name) == 0 && tab[i].mail == is_mail &&
		    (!tab[i].dsn || dsn))
			return tab[i].bit;
	return 0;
}

/* NOTIFY=NEVER or a comma list of distinct SUCCESS, FAILURE, DELAY. */
static int
parse_notify(struct smtp_cmd *cmd, const char *val, struct smtp_err *e)
{
	static const char *const words[] = { "SUCCESS", "FAILURE", "DELAY" };
	unsigned got = 0, i;
	size_t tl, o = 0;

	if (ascii_casecmp(val, "NEVER") == 0) {
		snprintf(cmd->notify, sizeof(cmd->notify), "NEVER");
		return 0;
	}
	for (;;) {
		tl = strcspn(val, ",");
		for (i = 0; i < 3; i++)
			if (tl == strlen(words[i]) && ascii_ncasecmp(val, words[i], tl) == 0)
				break;
		if (i == 3 || (got & (1u << i))) {
			cmd->notify[0] = '\0';
			return seterr(e, 501, "5.5.4",
			    "Bad NOTIFY parameter (NEVER, or a list of SUCCESS,FAILURE,DELAY)");
		}
		got |= 1u << i;
		o += (size_t)snprintf(cmd->notify + o, sizeof(cmd->notify) - o, "%s%s",
		    o > 0 ? "," : "", words[i]);
		if (val[tl] == '\0')
			return 0;
		val += tl + 1;
	}
}

/* ORCPT=addr-type;xtext */
static int
parse_orcpt(struct smtp_cmd *cmd, const char *val, struct smtp_err *e)
{
	const char *semi = strchr(val, ';');
	const char *p;

	if (semi == NULL || semi == val || strlen(val) > ORCPT_MAX)
		return seterr(e, 501, "5.5.4", "Bad ORCPT parameter (addr-type;xtext)");
	for (p = val; p < semi; p++)
		if (!(is_alnum(*p) || *p == '-'))
			return seterr(e, 501, "5.5.4", "Bad ORCPT address type");
	if (!valid_xtext(semi + 1))
		return seterr(e, 501, "5.5.4", "Bad ORCPT parameter (xtext expected)");
	cmd->orcpt = val;
	return 0;
}

/* One known parameter's value (val may be NULL: no '='). */
static int
param_value(struct smtp_cmd *cmd, unsigned bit, const char *val, struct smtp_err *e)
{
	int r;

	if (bit == P_UTF8) {
		if (val != NULL)
			return seterr(e, 501, "5.5.4", "SMTPUTF8 takes no value");
		cmd->smtputf8 = 1;
		return 0;
	}
	if (val == NULL)
		return seterr(e, 501, "5.5.4", "Parameter needs a value");
	switch (bit) {
	case P_SIZE:
		if ((r = dec_u64(val, SIZE_MAX, &cmd->size)) == -1)
			return seterr(e, 501, "5.5.4", "Bad SIZE parameter (a number of octets)");
		if (r < 0 || cmd->size > SIZE_LIMIT) {
			cmd->size = 0;
			return seterr(e, 552, "5.3.4", "Message size exceeds fixed maximum "
			    "message size");
		}
		return 0;
	case P_BODY:
		if (ascii_casecmp(val, "7BIT") == 0)
			cmd->body = SMTP_BODY_7BIT;
		else if (ascii_casecmp(val, "8BITMIME") == 0)
			cmd->body = SMTP_BODY_8BITMIME;
		else
			return seterr(e, 501, "5.5.4", "Bad BODY parameter (7BIT or 8BITMIME)");
		return 0;
	case P_AUTH:
		if (!valid_xtext(val))
			return seterr(e, 501, "5.5.4", "Bad AUTH parameter (xtext expected)");
		cmd->auth = val;
		return 0;
	case P_RET:
		if (ascii_casecmp(val, "FULL") == 0)
			cmd->ret = SMTP_RET_FULL;
		else if (ascii_casecmp(val, "HDRS") == 0)
			cmd->ret = SMTP_RET_HDRS;
		else
			return seterr(e, 501, "5.5.4", "Bad RET parameter (FULL or HDRS)");
		return 0;
	case P_ENVID:
		if (strlen(val) > ENVID_MAX || !valid_xtext(val))
			return seterr(e, 501, "5.5.4", "Bad ENVID parameter (xtext, at most %d "
			    "octets)", ENVID_MAX);
		cmd->envid = val;
		return 0;
	case P_NOTIFY:
		return parse_notify(cmd, val, e);
	case P_ORCPT:
		return parse_orcpt(cmd, val, e);
	}
	return seterr(e, 555, "5.5.4", "Unsupported parameter");
}

/* " KEY[=VALUE] KEY[=VALUE]..." after the path (p points just after '>').
 * Each separating SP and each '=' becomes a NUL, so values stay inside the
 * caller's line. */
static int
parse_params(char *p, struct smtp_cmd *cmd, int is_mail, const struct smtp_parse_opts *o,
    struct smtp_err *e)
{
	unsigned seen = 0, bit;
	char *kw, *val, *end;
	size_t i;

	if (*p == '\0')
		return 0;
	if (*p++ != ' ')
		return seterr(e, 501, "5.5.4", "Syntax error after the address");
	for (;;) {
		kw = p;
		if ((end = strchr(p, ' ')) != NULL)
			*end = '\0';
		if ((val = strchr(kw, '=')) != NULL)
			*val++ = '\0';
		/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
		if (!is_alnum(kw[0]) || (val != NULL && *val == '\0'))
			return seterr(e, 501, "5.5.4", "Syntax error in parameters");
		for (i = 1; kw[i] != '\0'; i++)
			if (!(is_alnum(kw[i]) || kw[i] == '-'))
				return seterr(e, 501, "5.5.4", "Bad parameter keyword");
		if ((bit = param_bit(kw, is_mail, o->dsn_enabled)) == 0)
			return seterr(e, 555, "5.5.4", "Unsupported %s parameter",
			    is_mail ? "MAIL" : "RCPT");
		if (seen & bit)
			return seterr(e, 555, "5.5.4", "Duplicate %s parameter",
			    is_mail ? "MAIL" : "RCPT");
		seen |= bit;
		if (param_value(cmd, bit, val, e) < 0)
			return -1;
		if (end == NULL)
			return 0;
		p = end + 1;
	}
}

/* MAIL FROM:<path> [params] / RCPT TO:<path> [params] */
static int
parse_mail_rcpt(char *arg, struct smtp_cmd *cmd, int is_mail, const struct smtp_parse_opts *o,
    struct smtp_err *e)
{
	const char *kw = is_mail ? "FROM:" : "TO:";
	const char *usage = is_mail ? "MAIL FROM:<address>" : "RCPT TO:<address>";
	size_t kl = strlen(kw);
	char *p, *end;
	int utf8;

	if (arg == NULL || ascii_ncasecmp(arg, kw, kl) != 0)
		goto syntax;
	p = arg + kl;
	if (p[0] == ' ' && p[1] == '<')
		p++;   /* "FROM: <x>": a common client quirk */
	if (*p != '<' || (end = path_end(p)) == NULL)
		goto syntax;
	/* 8-bit octets are allowed only inside the path */
	if (has_8bit(end, strlen(end)))
		return seterr(e, 500, "5.5.2", "Non-ASCII octets outside the address");
	utf8 = is_mail ? params_have_smtputf8(end + 1) : o->smtputf8_txn;
	if (parse_path(p + 1, (size_t)(end - p - 1), cmd, is_mail, utf8, e) < 0)
		return -1;
	return parse_params(end + 1, cmd, is_mail, o, e);
syntax:
	if (arg != NULL && has_8bit(arg, strlen(arg)))
		return seterr(e, 500, "5.5.2", "Non-ASCII octets outside the address");
	return seterr(e, 501, "5.5.4", "Syntax: %s", usage);
}

/* ---- the other verbs ---- */

static int
parse_bdat(char *arg, struct smtp_cmd *cmd, struct smtp_err *e)
{
	char *rest;

	if (arg == NULL)
		goto bad;
	if ((rest = strchr(arg, ' ')) != NULL)
		*rest++ = '\0';
	if (dec_u64(arg, BDAT_DIGITS, &cmd->bdat_size) < 0)
		goto bad;
	if (rest != NULL) {
		if (ascii_casecmp(rest, "LAST") != 0)
			goto bad;
		cmd->bdat_last = 1;
	}
	return 0;
bad:
	cmd->bdat_size = 0;
	cmd->bdat_last = 0;
	return seterr(e, 501, "5.5.4", "Syntax: BDAT size [LAST] (size: 1 to %d digits)",
	    BDAT_DIGITS);
}

static int
parse_auth(char *arg, struct smtp_cmd *cmd, struct smtp_err *e)
{
	char *ir = NULL;
	size_t i;

	if (arg == NULL)
		goto bad;
	if ((ir = strchr(arg, ' ')) != NULL) {
		*ir++ = '\0';
		if (*ir == '\0' || strchr(ir, ' ') != NULL)
			goto bad;
	}
	if (arg[0] == '\0' || strlen(arg) > MECH_MAX)
		return seterr(e, 501, "5.5.4", "Bad mechanism name");
	for (i = 0; arg[i] != '\0'; i++)
		if (!(is_alnum(arg[i]) || arg[i] == '-' || arg[i] == '_'))
			return seterr(e, 501, "5.5.4", "Bad mechanism name");
	cmd->auth_mech = arg;
	cmd->auth_initial = ir;
	return 0;
bad:
	return seterr(e, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
}

static int
parse_helo(char *arg, struct smtp_cmd *cmd, struct smtp_err *e)
{
	size_t n;

	if (arg == NULL || strchr(arg, ' ') != NULL ||
	    !(valid_domain(arg, (n = strlen(arg)), 0) || valid_literal(arg, n)))
		return seterr(e, 501, "5.5.4", "Syntax: %s domain-or-address-literal",
		    cmd->verb == SMTP_V_EHLO ? "EHLO" : "HELO");
	cmd->domain = arg;
	return 0;
}

int
smtp_cmd_parse(char *line, size_t len, const struct smtp_parse_opts *opts,
    struct smtp_cmd *cmd, struct smtp_err *err)
{
	const struct verbdef *v;
	char *arg = NULL, *sp;
	size_t i, vl;
	int eightbit = 0;

	memset(cmd, 0, sizeof(*cmd));
	memset(err, 0, sizeof(*err));
	/* the verb is recognised first so that the caller can answer 530 */
	sp = memchr(line, ' ', len);
	vl = sp != NULL ? (size_t)(sp - line) : len;
	for (v = verbs; v->name != NULL; v++)
		if (vl == strlen(v->name) && ascii_ncasecmp(line, v->name, vl) == 0) {
			cmd->verb = v->verb;
			break;
		}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c == 0x7f)
			return seterr(err, 500, "5.5.2", "Command line contains a control "
			    "character");
		if (c >= 0x80)
			eightbit = 1;
	}
	if (cmd->verb == SMTP_V_UNKNOWN)
		return seterr(err, 500, "5.5.2", "Command not recognized");
	if (eightbit && cmd->verb != SMTP_V_MAIL && cmd->verb != SMTP_V_RCPT)
		return seterr(err, 500, "5.5.2", "Non-ASCII octets in command");
	if (sp != NULL) {
		arg = sp + 1;
		if (*arg == '\0' || *arg == ' ')
			return seterr(err, 501, "5.5.4", "Syntax error: exactly one space "
			    "between command and argument");
	}
	switch (cmd->verb) {
	case SMTP_V_EHLO:
	case SMTP_V_HELO:
		return parse_helo(arg, cmd, err);
	case SMTP_V_STARTTLS:
	case SMTP_V_DATA:
	case SMTP_V_RSET:
	case SMTP_V_QUIT:
		if (arg != NULL)
			return seterr(err, 501, "5.5.4", "Syntax: no argument allowed");
		return 0;
	case SMTP_V_VRFY:
	case SMTP_V_EXPN:
		if (arg == NULL)
			return seterr(err, 501, "5.5.4", "Syntax: argument required");
		/* FALLTHROUGH */
	case SMTP_V_NOOP:
	case SMTP_V_HELP:
		cmd->arg = arg;
		return 0;
	case SMTP_V_MAIL:
		return parse_mail_rcpt(arg, cmd, 1, opts, err);
	case SMTP_V_RCPT:
		return parse_mail_rcpt(arg, cmd, 0, opts, err);
	case SMTP_V_BDAT:
		return parse_bdat(arg, cmd, err);
	case SMTP_V_AUTH:
		return parse_auth(arg, cmd, err);
	default:
		return seterr(err, 500, "5.5.2", "Command not recognized");
	}
}

/* ---- base64 and AUTH PLAIN ---- */

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
smtp_base64_decode(const char *in, size_t inlen, char *out, size_t outlen, size_t *n_r)
{
	size_t i, o = 0;
	int q[4], k, npad;
	unsigned v;

	*n_r = 0;
	if (inlen == 0 || (inlen == 1 && in[0] == '='))
		return 0;
	if (inlen % 4 != 0)
		return -1;
	for (i = 0; i < inlen; i += 4) {
		npad = 0;
		for (k = 0; k < 4; k++) {
			q[k] = b64val((unsigned char)in[i + k]);
			/* '=' only as the last one or two octets of the input */
			if (q[k] < 0) {
				if (in[i + k] != '=' || i + 4 != inlen || k < 2)
					return -1;
				npad++;
				q[k] = 0;
			} else if (npad > 0)
				return -1;
		}
		v = ((unsigned)q[0] << 18) | ((unsigned)q[1] << 12) | ((unsigned)q[2] << 6) |
		    (unsigned)q[3];
		/* canonical: the bits the padding drops must be zero */
		if ((npad == 1 && (v & 0xff) != 0) || (npad == 2 && (v & 0xffff) != 0))
			return -1;
		if (outlen - o < (size_t)(3 - npad))
			return -1;
		out[o++] = (char)(v >> 16);
		if (npad < 2)
			out[o++] = (char)(v >> 8);
		if (npad < 1)
			out[o++] = (char)v;
	}
	*n_r = o;
	return 0;
}

int
smtp_auth_plain_decode(const char *buf, size_t len, const char **user_r, const char **pw_r,
    size_t *pwlen_r)
{
	const char *z1, *z2, *authc, *pw;
	size_t authzlen, authclen;

	if ((z1 = memchr(buf, '\0', len)) == NULL)
		return -1;
	authzlen = (size_t)(z1 - buf);
	authc = z1 + 1;
	if ((z2 = memchr(authc, '\0', len - authzlen - 1)) == NULL)
		return -1;
	authclen = (size_t)(z2 - authc);
	pw = z2 + 1;
	if (authclen == 0 || memchr(pw, '\0', len - (size_t)(pw - buf)) != NULL)
		return -1;
	if (authzlen != 0 && (authzlen != authclen || memcmp(buf, authc, authclen) != 0))
		return -1;
	*user_r = authc;
	*pw_r = pw;
	*pwlen_r = len - (size_t)(pw - buf);
	return 0;
}
