/*
 * smtp_syntax.c — strict parsing of client SMTP commands.  Pure: no I/O.
 */
#include "smtp_syntax.h"
#include "util.h"

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

static int seterr(struct smtp_err *e, int code, const char *enh, const char *fmt, ...)
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

/* RFC 5322 atext */
static int
is_atext(int c)
{
	return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Length of a valid UTF-8 sequence at s (n bytes available), 0 if invalid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len, i;
	unsigned cp;

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

/* A domain: LDH labels separated by dots (U-labels allowed when utf8). */
static int
valid_domain(const char *s, size_t n, int utf8)
{
	size_t i = 0, lab = 0;

	if (n == 0 || n > 255)
		return 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return 0;
			lab = 0;
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t l;

			if (!utf8 || (l = utf8_len((const unsigned char *)s + i, n - i)) == 0)
				return 0;
			i += l;
			lab += l;
			continue;
		}
		if (!(is_alpha(c) || is_digit(c) || (c == '-' && lab > 0)))
			return 0;
		lab++;
		i++;
		if (lab > 63)
			return 0;
	}
	return lab > 0 && s[n - 1] != '-';
}

/* "[1.2.3.4]" or "[IPv6:...]" or "[tag:content]" (general literal). */
static int
valid_literal(const char *s, size_t n)
{
	size_t i;

	if (n < 3 || s[0] != '[' || s[n - 1] != ']')
		return 0;
	for (i = 1; i < n - 1; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126 || c == '[' || c == ']' || c == '\\')
			return 0;
	}
	if (n > 7 && ascii_ncasecmp(s + 1, "IPv6:", 5) == 0) {
		for (i = 6; i < n - 1; i++)
			if (!(is_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'f') ||
			    (s[i] >= 'A' && s[i] <= 'F') || s[i] == ':' || s[i] == '.'))
				return 0;
		return 1;
	}
	if (is_digit(s[1])) {
		unsigned parts = 0, v = 0, digits = 0;
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
	return 0;
}

/* Validate a mailbox "local@domain" of n octets.  Returns 1 if valid. */
static int
valid_mailbox(const char *s, size_t n, int utf8)
{
	const char *at;
	size_t i, ll;

	if (n == 0)
		return 0;
	if (s[0] == '"') {
		/* quoted-string local part */
		for (i = 1; i < n; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '\\') {
				if (++i >= n || (unsigned char)s[i] < 32 || (unsigned char)s[i] > 126)
					return 0;
				continue;
			}
			if (c == '"')
				break;
			if (c >= 0x80) {
				size_t l;
				if (!utf8 || (l = utf8_len((const unsigned char *)s + i, n - i)) == 0)
					return 0;
				i += l - 1;
				continue;
			}
			if (c < 32 || c > 126)
				return 0;
		}
		if (i >= n || i + 1 >= n || s[i + 1] != '@')
			return 0;
		at = s + i + 1;
	} else {
		at = memrchr(s, '@', n);
		if (at == NULL || at == s)
			return 0;
		ll = (size_t)(at - s);
		if (s[0] == '.' || s[ll - 1] == '.')
			return 0;
		for (i = 0; i < ll; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '.') {
				if (s[i + 1] == '.')
					return 0;
				continue;
			}
			if (c >= 0x80) {
				size_t l;
				if (!utf8 || (l = utf8_len((const unsigned char *)s + i, ll - i)) == 0)
					return 0;
				i += l - 1;
				continue;
			}
			if (!is_atext(c))
				return 0;
		}
	}
	ll = (size_t)(at - s);
	if (ll > 64 && !utf8)
		return 0;
	n -= ll + 1;
	at++;
	if (n > 0 && at[0] == '[')
		return valid_literal(at, n);
	return valid_domain(at, n, utf8);
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

/* xtext (RFC 3461 4): "+" HEXCHAR HEXCHAR or chars 33..126 except "+" "=". */
static int
valid_xtext(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '+') {
			if (!((is_digit(s[1]) || (s[1] >= 'A' && s[1] <= 'F')) &&
			    (is_digit(s[2]) || (s[2] >= 'A' && s[2] <= 'F'))))
				return 0;
			s += 2;
			continue;
		}
		if (c < 33 || c > 126 || c == '=')
			return 0;
	}
	return 1;
}

static int
parse_u64(const char *s, size_t maxdigits, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++, n++) {
		unsigned d;

		if (!is_digit(*s) || n >= maxdigits)
			return -1;
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Parse "<path>" at *pp into cmd->path; *pp moves past '>'. */
static int
parse_path(char **pp, struct smtp_cmd *cmd, int is_mail, int utf8, struct smtp_err *e)
{
	char *p = *pp, *end, *mb;
	size_t n;
	const char *bad = is_mail ? "5.1.7" : "5.1.3";

	if (*p != '<')
		return seterr(e, 501, "5.5.4", "Syntax: %s", is_mail ? "MAIL FROM:<address>" :
		    "RCPT TO:<address>");
	/* find the closing '>' outside a quoted string */
	{
		int q = 0;
		for (end = p + 1; *end != '\0'; end++) {
			if (q && *end == '\\' && end[1] != '\0') {
				end++;
				continue;
			}
			if (*end == '"')
				q = !q;
			else if (*end == '>' && !q)
				break;
		}
	}
	if (*end != '>')
		return seterr(e, 501, "5.5.4", "Syntax: address must be enclosed in <>");
	mb = p + 1;
	n = (size_t)(end - mb);
	if (n + 2 > SMTP_PATH_MAX)
		return seterr(e, 553, bad, "Address too long");
	/* source route: "@a,@b:mailbox" — strip */
	if (n > 0 && mb[0] == '@') {
		char *colon = memchr(mb, ':', n);
		if (colon == NULL)
			return seterr(e, 553, bad, "Bad address syntax");
		n -= (size_t)(colon + 1 - mb);
		mb = colon + 1;
	}
	if (n == 0) {
		if (!is_mail)
			return seterr(e, 553, bad, "An empty recipient is not allowed");
		cmd->path[0] = '\0';
	} else {
		if (has_8bit(mb, n) && !utf8)
			return seterr(e, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
		if (!valid_mailbox(mb, n, utf8))
			return seterr(e, 553, bad, "Bad address syntax");
		memcpy(cmd->path, mb, n);
		cmd->path[n] = '\0';
	}
	*pp = end + 1;
	return 0;
}

/* Is the MAIL line asking for SMTPUTF8?  Needed before the path is parsed. */
static int
params_have_smtputf8(const char *s)
{
	const char *p = s;

	while ((p = strchr(p, ' ')) != NULL) {
		p++;
		if (ascii_ncasecmp(p, "SMTPUTF8", 8) == 0 && (p[8] == '\0' || p[8] == ' '))
			return 1;
	}
	return 0;
}

static int
mail_param(struct smtp_cmd *cmd, char *kw, char *val, const struct smtp_parse_opts *o,
    unsigned *seen, struct smtp_err *e)
{
	enum { P_SIZE = 1, P_BODY = 2, P_UTF8 = 4, P_AUTH = 8, P_RET = 16, P_ENVID = 32 } bit;

	if (ascii_casecmp(kw, "SIZE") == 0)
		bit = P_SIZE;
	else if (ascii_casecmp(kw, "BODY") == 0)
		bit = P_BODY;
	else if (ascii_casecmp(kw, "SMTPUTF8") == 0)
		bit = P_UTF8;
	else if (ascii_casecmp(kw, "AUTH") == 0)
		bit = P_AUTH;
	else if (o->dsn_enabled && ascii_casecmp(kw, "RET") == 0)
		bit = P_RET;
	else if (o->dsn_enabled && ascii_casecmp(kw, "ENVID") == 0)
		bit = P_ENVID;
	else
		return seterr(e, 555, "5.5.4", "Unsupported MAIL parameter");
	if (*seen & bit)
		return seterr(e, 555, "5.5.4", "Duplicate MAIL parameter");
	*seen |= bit;
	switch (bit) {
	case P_SIZE:
		if (val == NULL || parse_u64(val, 20, &cmd->size) < 0 || cmd->size > (1ULL << 63))
			return seterr(e, 501, "5.5.4", "Bad SIZE parameter (a number of octets)");
		return 0;
	case P_BODY:
		if (val != NULL && ascii_casecmp(val, "7BIT") == 0)
			cmd->body = SMTP_BODY_7BIT;
		else if (val != NULL && ascii_casecmp(val, "8BITMIME") == 0)
			cmd->body = SMTP_BODY_8BITMIME;
		else
			return seterr(e, 501, "5.5.4", "Bad BODY parameter (7BIT or 8BITMIME)");
		return 0;
	case P_UTF8:
		if (val != NULL)
			return seterr(e, 501, "5.5.4", "SMTPUTF8 takes no value");
		cmd->smtputf8 = 1;
		return 0;
	case P_AUTH:
		if (val == NULL || (strcmp(val, "<>") != 0 && !valid_xtext(val)))
			return seterr(e, 501, "5.5.4", "Bad AUTH parameter (xtext)");
		cmd->auth = val;
		return 0;
	case P_RET:
		if (val != NULL && ascii_casecmp(val, "FULL") == 0)
			cmd->ret = SMTP_RET_FULL;
		else if (val != NULL && ascii_casecmp(val, "HDRS") == 0)
			cmd->ret = SMTP_RET_HDRS;
		else
			return seterr(e, 501, "5.5.4", "Bad RET parameter (FULL or HDRS)");
		return 0;
	case P_ENVID:
		if (val == NULL || strlen(val) > 100 || !valid_xtext(val))
			return seterr(e, 501, "5.5.4", "Bad ENVID parameter (xtext, at most 100 octets)");
		cmd->envid = val;
		return 0;
	}
	return 0;
}

static int
rcpt_param(struct smtp_cmd *cmd, char *kw, char *val, const struct smtp_parse_opts *o,
    unsigned *seen, struct smtp_err *e)
{
	if (o->dsn_enabled && ascii_casecmp(kw, "NOTIFY") == 0) {
		static const char *const words[] = { "SUCCESS", "FAILURE", "DELAY" };
		char *tok, *save = NULL, buf[64];
		unsigned got = 0, i;

		if (*seen & 1)
			return seterr(e, 555, "5.5.4", "Duplicate RCPT parameter");
		*seen |= 1;
		if (val == NULL || strlen(val) >= sizeof(buf))
			return seterr(e, 501, "5.5.4", "Bad NOTIFY parameter");
		if (ascii_casecmp(val, "NEVER") == 0) {
			snprintf(cmd->notify, sizeof(cmd->notify), "NEVER");
			return 0;
		}
		snprintf(buf, sizeof(buf), "%s", val);
		cmd->notify[0] = '\0';
		for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
			for (i = 0; i < 3; i++)
				if (ascii_casecmp(tok, words[i]) == 0)
					break;
			if (i == 3 || (got & (1u << i)))
				return seterr(e, 501, "5.5.4", "Bad NOTIFY parameter (NEVER, or "
				    "SUCCESS,FAILURE,DELAY)");
			got |= 1u << i;
			if (cmd->notify[0] != '\0')
				strcat(cmd->notify, ",");
			strcat(cmd->notify, words[i]);
		}
		if (got == 0)
			return seterr(e, 501, "5.5.4", "Bad NOTIFY parameter");
		return 0;
	}
	if (o->dsn_enabled && ascii_casecmp(kw, "ORCPT") == 0) {
		char *semi;
		size_t i;

		if (*seen & 2)
			return seterr(e, 555, "5.5.4", "Duplicate RCPT parameter");
		*seen |= 2;
		if (val == NULL || (semi = strchr(val, ';')) == NULL || semi == val ||
		    strlen(val) > 500 || !valid_xtext(semi + 1))
			return seterr(e, 501, "5.5.4", "Bad ORCPT parameter (addr-type;xtext)");
		for (i = 0; val + i < semi; i++)
			if (!(is_alpha(val[i]) || is_digit(val[i]) || val[i] == '-'))
				return seterr(e, 501, "5.5.4", "Bad ORCPT address type");
		cmd->orcpt = val;
		return 0;
	}
	return seterr(e, 555, "5.5.4", "Unsupported RCPT parameter");
}

/* " KEY[=VALUE] KEY[=VALUE]..." after the path (p points just after '>').
 * Tokens are split in place, each separating SP becomes a NUL, so values
 * stay valid inside the caller's line. */
static int
parse_params(char *p, struct smtp_cmd *cmd, int is_mail, const struct smtp_parse_opts *o,
    struct smtp_err *e)
{
	unsigned seen = 0;

	if (*p == '\0')
		return 0;
	if (*p != ' ')
		return seterr(e, 501, "5.5.4", "Syntax error after the address");
	p++;
	for (;;) {
		char *kw = p, *end = strchr(p, ' '), *val;
		size_t i;

		if (*kw == '\0' || *kw == ' ')
			return seterr(e, 501, "5.5.4", "Syntax error in parameters");
		if (end != NULL)
			*end = '\0';
		val = strchr(kw, '=');
		if (val != NULL)
			*val++ = '\0';
		if (*kw == '\0' || (val != NULL && *val == '\0'))
			return seterr(e, 501, "5.5.4", "Syntax error in parameters");
		for (i = 0; kw[i] != '\0'; i++)
			if (!(is_alpha(kw[i]) || is_digit(kw[i]) || kw[i] == '-'))
				return seterr(e, 501, "5.5.4", "Bad parameter keyword");
		if ((is_mail ? mail_param(cmd, kw, val, o, &seen, e) :
		    rcpt_param(cmd, kw, val, o, &seen, e)) < 0)
			return -1;
		if (end == NULL)
			return 0;
		p = end + 1;
	}
}

static int
parse_mail_rcpt(char *arg, struct smtp_cmd *cmd, int is_mail, const struct smtp_parse_opts *o,
    struct smtp_err *e)
{
	const char *kw = is_mail ? "FROM:" : "TO:";
	size_t kl = strlen(kw);
	char *p;
	int utf8;

	if (arg == NULL || ascii_ncasecmp(arg, kw, kl) != 0)
		return seterr(e, 501, "5.5.4", "Syntax: %s", is_mail ? "MAIL FROM:<address>" :
		    "RCPT TO:<address>");
	p = arg + kl;
	if (*p == ' ' && p[1] == '<')
		p++;   /* "FROM: <x>": a common client quirk */
	utf8 = is_mail ? params_have_smtputf8(p) : o->smtputf8_txn;
	if (parse_path(&p, cmd, is_mail, utf8, e) < 0)
		return -1;
	/* 8-bit octets are allowed only inside the path */
	if (has_8bit(p, strlen(p)))
		return seterr(e, 501, "5.5.4", "Non-ASCII octets in parameters");
	return parse_params(p, cmd, is_mail, o, e);
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
	cmd->verb = SMTP_V_UNKNOWN;
	/* the verb is recognised first so that the caller can answer 530 */
	sp = memchr(line, ' ', len);
	vl = sp ? (size_t)(sp - line) : len;
	for (v = verbs; v->name != NULL; v++)
		if (vl == strlen(v->name) && ascii_ncasecmp(line, v->name, vl) == 0) {
			cmd->verb = v->verb;
			break;
		}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f)
			return seterr(err, 500, "5.5.2", "Command line contains a control character");
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
			return seterr(err, 501, "5.5.4", "Syntax error: one space between command "
			    "and argument");
	}
	switch (cmd->verb) {
	case SMTP_V_EHLO:
	case SMTP_V_HELO:
		if (arg == NULL || strchr(arg, ' ') != NULL ||
		    !(valid_domain(arg, strlen(arg), 0) || valid_literal(arg, strlen(arg))))
			return seterr(err, 501, "5.5.4", "Syntax: %s domain-or-address-literal",
			    cmd->verb == SMTP_V_EHLO ? "EHLO" : "HELO");
		cmd->domain = arg;
		return 0;
	case SMTP_V_STARTTLS:
	case SMTP_V_DATA:
	case SMTP_V_RSET:
	case SMTP_V_QUIT:
		if (arg != NULL)
			return seterr(err, 501, "5.5.4", "Syntax: no argument allowed");
		return 0;
	case SMTP_V_NOOP:
	case SMTP_V_HELP:
	case SMTP_V_VRFY:
	case SMTP_V_EXPN:
		if (arg == NULL && (cmd->verb == SMTP_V_VRFY || cmd->verb == SMTP_V_EXPN))
			return seterr(err, 501, "5.5.4", "Syntax: argument required");
		cmd->arg = arg;
		return 0;
	case SMTP_V_MAIL:
		return parse_mail_rcpt(arg, cmd, 1, opts, err);
	case SMTP_V_RCPT:
		return parse_mail_rcpt(arg, cmd, 0, opts, err);
	case SMTP_V_BDAT: {
		char *size = arg, *rest;

		if (size == NULL)
			return seterr(err, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		rest = strchr(size, ' ');
		if (rest != NULL)
			*rest++ = '\0';
		if (parse_u64(size, 19, &cmd->bdat_size) < 0)
			return seterr(err, 501, "5.5.4", "Syntax: BDAT size [LAST] (size: 1 to 19 "
			    "digits)");
		if (rest != NULL) {
			if (ascii_casecmp(rest, "LAST") != 0)
				return seterr(err, 501, "5.5.4", "Syntax: BDAT size [LAST]");
			cmd->bdat_last = 1;
		}
		return 0;
	}
	case SMTP_V_AUTH: {
		char *mech = arg, *ir;

		if (mech == NULL)
			return seterr(err, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
		ir = strchr(mech, ' ');
		if (ir != NULL) {
			*ir++ = '\0';
			if (*ir == '\0' || strchr(ir, ' ') != NULL)
				return seterr(err, 501, "5.5.4", "Syntax: AUTH mechanism "
				    "[initial-response]");
		}
		if (strlen(mech) > 20 || strlen(mech) == 0)
			return seterr(err, 501, "5.5.4", "Bad mechanism name");
		for (i = 0; mech[i] != '\0'; i++)
			if (!((mech[i] >= 'A' && mech[i] <= 'Z') || (mech[i] >= 'a' && mech[i] <= 'z') ||
			    is_digit(mech[i]) || mech[i] == '-' || mech[i] == '_'))
				return seterr(err, 501, "5.5.4", "Bad mechanism name");
		cmd->auth_mech = mech;
		cmd->auth_initial = ir;
		return 0;
	}
	default:
		return seterr(err, 500, "5.5.2", "Command not recognized");
	}
}

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

	*n_r = 0;
	if (inlen == 0 || (inlen == 1 && in[0] == '='))
		return 0;
	if (inlen % 4 != 0)
		return -1;
	for (i = 0; i < inlen; i += 4) {
		int a = b64val((unsigned char)in[i]), b = b64val((unsigned char)in[i + 1]);
		int c, d, last = i + 4 == inlen;
		unsigned v;

		if (a < 0 || b < 0)
			return -1;
		if (last && in[i + 2] == '=') {
			if (in[i + 3] != '=' || (b & 0x0f) != 0)
				return -1;
			if (o + 1 > outlen)
				return -1;
			out[o++] = (char)((a << 2) | (b >> 4));
			break;
		}
		c = b64val((unsigned char)in[i + 2]);
		if (c < 0)
			return -1;
		if (last && in[i + 3] == '=') {
			if ((c & 0x03) != 0 || o + 2 > outlen)
				return -1;
			out[o++] = (char)((a << 2) | (b >> 4));
			out[o++] = (char)(((b & 0x0f) << 4) | (c >> 2));
			break;
		}
		d = b64val((unsigned char)in[i + 3]);
		if (d < 0 || o + 3 > outlen)
			return -1;
		v = ((unsigned)a << 18) | ((unsigned)b << 12) | ((unsigned)c << 6) | (unsigned)d;
		out[o++] = (char)(v >> 16);
		out[o++] = (char)(v >> 8);
		out[o++] = (char)v;
	}
	*n_r = o;
	return 0;
}

int
smtp_auth_plain_decode(const char *buf, size_t len, const char **user_r, const char **pw_r,
    size_t *pwlen_r)
{
	const char *z1, *z2, *authz = buf, *authc;
	size_t authzlen, authclen;

	if ((z1 = memchr(buf, '\0', len)) == NULL)
		return -1;
	authzlen = (size_t)(z1 - buf);
	authc = z1 + 1;
	if ((z2 = memchr(authc, '\0', len - authzlen - 1)) == NULL)
		return -1;
	authclen = (size_t)(z2 - authc);
	if (authclen == 0)
		return -1;
	if (memchr(z2 + 1, '\0', len - (size_t)(z2 + 1 - buf)) != NULL)
		return -1;
	if (authzlen != 0 && (authzlen != authclen || memcmp(authz, authc, authclen) != 0))
		return -1;
	*user_r = authc;
	*pw_r = z2 + 1;
	*pwlen_r = len - (size_t)(z2 + 1 - buf);
	return 0;
}
