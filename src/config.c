/*
 * config.c — the configuration file: tokenizer, overrides, validation.
 *
 * Two passes.  The tokenizer turns the text into a flat list of entries
 * (section, name, key, value, line); -o overrides then replace entries; the
 * validator walks a table of known sections and keys and fills struct
 * config.  Every error names FILE:LINE (or the -o option) and what was
 * expected.  No I/O except reading the file in config_load().
 */
#include "config.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#define CONFIG_FILE_MAX (1024 * 1024)

struct entry {
	char *section, *name, *key, *value;
	int line;              /* 0: from an override */
	int used;
};

struct sect {
	char *section, *name;
	int line;
};

struct parse {
	const char *file;
	struct entry *e;
	size_t ne;
	struct sect *s;
	size_t ns;
	char *err;
	size_t errlen;
};

static void perr(struct parse *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
perr(struct parse *p, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(p->err, p->errlen, "%s:%d: %s", p->file, line, msg);
	else
		snprintf(p->err, p->errlen, "%s: command line override: %s", p->file, msg);
}

/* ---- the section/key table ---- */

enum kind { K_STR, K_UINT, K_SIZE, K_TIME, K_ENUM, K_LIST };

struct keyspec {
	const char *key;
	int repeat;            /* may appear more than once */
};

struct sectspec {
	const char *name;
	int named;             /* [section "name"] */
	int multi;             /* several named instances */
	int anykey;            /* [senders]: keys are logins */
	const struct keyspec *keys;
};

static const struct keyspec server_keys[] = {
	{ "hostname", 0 }, { "user", 0 }, { "chroot", 0 }, { "profile", 0 },
	{ "shutdown-timeout", 0 }, { "signer-user", 0 }, { "keeper-user", 0 },
	{ "recorder-user", 0 }, { NULL, 0 }
};
static const struct keyspec listen_keys[] = {
	{ "address", 0 }, { "tls", 0 }, { "public-port", 0 }, { "proxy-protocol", 0 },
	{ "proxy-from", 1 }, { "proxy-timeout", 0 }, { NULL, 0 }
};
static const struct keyspec tls_keys[] = {
	{ "certificate", 0 }, { "key", 0 }, { "priority", 0 }, { NULL, 0 }
};
static const struct keyspec auth_keys[] = { { "passwd-file", 0 }, { NULL, 0 } };
static const struct keyspec relay_keys[] = {
	{ "host", 0 }, { "address", 0 }, { "port", 0 }, { "tls", 0 }, { "tlsa", 1 },
	{ "dane", 0 }, { "auth-file", 0 }, { "xclient", 0 }, { "connections", 0 },
	{ "idle-timeout", 0 }, { "max-transactions", 0 }, { NULL, 0 }
};
static const struct keyspec dkim_keys[] = { { "key", 1 }, { NULL, 0 } };
static const struct keyspec dns_keys[] = {
	{ "trust-anchor-file", 0 }, { "unbound-config", 0 }, { "timeout", 0 }, { NULL, 0 }
};
static const struct keyspec audit_keys[] = {
	{ "log", 0 }, { "recheck", 0 }, { "signing-key", 0 }, { "required", 0 },
	{ "rotate-size", 0 }, { "checkpoint-records", 0 }, { "checkpoint-interval", 0 },
	{ "pseudonymize", 0 }, { "pseudonymize-key", 0 }, { NULL, 0 }
};
static const struct keyspec metrics_keys[] = {
	{ "address", 0 }, { "allow-remote", 0 }, { NULL, 0 }
};
static const struct keyspec limits_keys[] = {
	{ "message-size", 0 }, { "recipients", 0 }, { "line-length", 0 }, { "header-size", 0 },
	{ "received-max", 0 }, { "connections", 0 }, { "connections-per-ip", 0 },
	{ "timeout", 0 }, { "auth-failures", 0 }, { "memory-body", 0 }, { "relay-timeout", 0 },
	{ "protocol-errors", 0 }, { "auth-timeout", 0 }, { "session-timeout", 0 },
	{ "ipv6-prefix", 0 }, { "login-memory", 0 },
	{ "messages-per-hour", 0 }, { "recipients-per-hour", 0 }, { "auth-per-minute", 0 },
	{ "sessions-per-login", 0 }, { NULL, 0 }
};
static const struct keyspec login_keys[] = {
	{ "messages-per-hour", 0 }, { "recipients-per-hour", 0 }, { "auth-per-minute", 0 },
	{ "sessions-per-login", 0 }, { NULL, 0 }
};

static const struct sectspec sections[] = {
	{ "server", 0, 0, 0, server_keys },
	{ "listen", 1, 1, 0, listen_keys },
	{ "tls", 0, 0, 0, tls_keys },
	{ "auth", 0, 0, 0, auth_keys },
	{ "senders", 0, 0, 1, NULL },
	{ "relay", 1, 1, 0, relay_keys },
	{ "dkim", 1, 1, 0, dkim_keys },
	{ "dns", 0, 0, 0, dns_keys },
	{ "audit", 0, 0, 0, audit_keys },
	{ "metrics", 0, 0, 0, metrics_keys },
	{ "limits", 0, 0, 0, limits_keys },
	{ "login", 1, 1, 0, login_keys },
	{ NULL, 0, 0, 0, NULL }
};

static const struct sectspec *
sect_find(const char *name)
{
	const struct sectspec *s;

	for (s = sections; s->name != NULL; s++)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static const struct keyspec *
key_find(const struct sectspec *ss, const char *key)
{
	const struct keyspec *k;

	if (ss->anykey)
		return NULL;
	for (k = ss->keys; k->key != NULL; k++)
		if (strcmp(k->key, key) == 0)
			return k;
	return NULL;
}

static int
same_name(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* ---- tokenizer ---- */

static int
is_ident(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '_';
}

/* Parse a double-quoted string starting at *pp (on the quote).  Returns a
 * new string and moves *pp past the closing quote, or NULL with err set. */
static char *
parse_quoted(struct parse *p, int line, const char **pp)
{
	const char *s = *pp + 1;
	size_t cap = strlen(s) + 1, o = 0;
	char *out = xmalloc(cap);

	for (;;) {
		int c = (unsigned char)*s++;

		if (c == '\0') {
			perr(p, line, "unterminated quoted string (expected a closing '\"')");
			goto err;
		}
		if (c == '"')
			break;
		if (c == '\\') {
			int h1, h2;

			c = (unsigned char)*s++;
			switch (c) {
			case '\\': case '"': break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'x':
				if ((h1 = ascii_hexval(s[0])) < 0 || (h2 = ascii_hexval(s[1])) < 0 ||
				    (h1 == 0 && h2 == 0)) {
					perr(p, line, "bad \\x escape (expected two hex digits, not 00)");
					goto err;
				}
				c = h1 * 16 + h2;
				s += 2;
				break;
			default:
				perr(p, line, "unknown escape '\\%c' in quoted string (expected \\\\ \\\" "
				    "\\n \\t or \\xHH)", c >= 0x20 && c < 0x7f ? c : '?');
				goto err;
			}
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	*pp = s;
	return out;
err:
	free(out);
	return NULL;
}

static const char *
skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static void
add_entry(struct parse *p, const char *section, const char *name, const char *key, char *value,
    int line)
{
	struct entry *e;

	p->e = xreallocarray(p->e, p->ne + 1, sizeof(*p->e));
	e = &p->e[p->ne++];
	e->section = xstrdup(section);
	e->name = name ? xstrdup(name) : NULL;
	e->key = xstrdup(key);
	e->value = value;
	e->line = line;
	e->used = 0;
}

static struct sect *
sect_lookup(struct parse *p, const char *section, const char *name)
{
	size_t i;

	for (i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].section, section) == 0 && same_name(p->s[i].name, name))
			return &p->s[i];
	return NULL;
}

static struct sect *
sect_add(struct parse *p, const char *section, const char *name, int line)
{
	struct sect *s;

	p->s = xreallocarray(p->s, p->ns + 1, sizeof(*p->s));
	s = &p->s[p->ns++];
	s->section = xstrdup(section);
	s->name = name ? xstrdup(name) : NULL;
	s->line = line;
	return s;
}

/* A section header line: "[section]" or "[section "name"]". */
static int
parse_header(struct parse *p, int line, const char *s, const struct sectspec **ss_r,
    char **sect_r, char **name_r)
{
	const char *q = skip_ws(s + 1), *start = q;
	const struct sectspec *ss;
	char *sect, *name = NULL;

	while (is_ident((unsigned char)*q))
		q++;
	if (q == start) {
		perr(p, line, "expected a section name after '['");
		return -1;
	}
	sect = xstrndup(start, (size_t)(q - start));
	q = skip_ws(q);
	if (*q == '"') {
		if ((name = parse_quoted(p, line, &q)) == NULL)
			goto err;
		q = skip_ws(q);
	}
	if (*q != ']' || *skip_ws(q + 1) != '\0') {
		perr(p, line, "expected ']' to end the section header");
		goto err;
	}
	if ((ss = sect_find(sect)) == NULL) {
		perr(p, line, "unknown section [%s] (expected one of server, listen, tls, auth, "
		    "senders, relay, dkim, dns, audit, metrics, limits, login)", sect);
		goto err;
	}
	if (ss->named && (name == NULL || *name == '\0')) {
		perr(p, line, "section [%s] needs a name: [%s \"NAME\"]", sect, sect);
		goto err;
	}
	if (!ss->named && name != NULL) {
		perr(p, line, "section [%s] takes no name", sect);
		goto err;
	}
	if (sect_lookup(p, sect, name) != NULL) {
		if (name)
			perr(p, line, "duplicate section [%s \"%s\"]", sect, name);
		else
			perr(p, line, "duplicate section [%s]", sect);
		goto err;
	}
	*ss_r = ss;
	*sect_r = sect;
	*name_r = name;
	return 0;
err:
	free(sect);
	free(name);
	return -1;
}

/* "key = value" where value is a quoted string or the rest of the line up
 * to a '#' that follows whitespace; trailing whitespace is dropped. */
static int
parse_keyline(struct parse *p, int line, const char *s, int anykey, char **key_r, char **val_r)
{
	const char *q = s, *v, *end;
	char *value;

	if (anykey) {
		while (*q != '\0' && *q != '=' && *q != ' ' && *q != '\t')
			q++;
	} else {
		while (is_ident((unsigned char)*q))
			q++;
	}
	if (q == s) {
		perr(p, line, "expected 'key = value'");
		return -1;
	}
	v = skip_ws(q);
	if (*v != '=') {
		perr(p, line, "expected '=' after '%.*s'", (int)(q - s), s);
		return -1;
	}
	v = skip_ws(v + 1);
	if (*v == '"') {
		if ((value = parse_quoted(p, line, &v)) == NULL)
			return -1;
		v = skip_ws(v);
		if (*v != '\0' && *v != '#') {
			perr(p, line, "unexpected text after the quoted value");
			free(value);
			return -1;
		}
	} else {
		end = v;
		while (*end != '\0' && !(*end == '#' && end > v && (end[-1] == ' ' || end[-1] == '\t')))
			end++;
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		value = xstrndup(v, (size_t)(end - v));
	}
	*key_r = xstrndup(s, (size_t)(q - s));
	*val_r = value;
	return 0;
}

static int
tokenize(struct parse *p, const char *buf, size_t len)
{
	const struct sectspec *ss = NULL;
	char *sect = NULL, *name = NULL, *linebuf = NULL;
	size_t off = 0;
	int line = 0, rc = -1;

	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - (buf + off)) : len - off;
		const char *s;
		size_t i;

		line++;
		free(linebuf);
		linebuf = xstrndup(buf + off, ll);
		off += ll + (nl ? 1 : 0);
		if (ll > 0 && linebuf[ll - 1] == '\r')
			linebuf[--ll] = '\0';
		for (i = 0; i < ll; i++) {
			unsigned char c = (unsigned char)linebuf[i];
			if (c == '\0' || (c < 0x20 && c != '\t') || c == 0x7f) {
				perr(p, line, "control character in the configuration (expected text)");
				goto out;
			}
		}
		s = skip_ws(linebuf);
		if (*s == '\0' || *s == '#')
			continue;
		if (*s == '[') {
			free(sect);
			free(name);
			sect = name = NULL;
			if (parse_header(p, line, s, &ss, &sect, &name) < 0)
				goto out;
			sect_add(p, sect, name, line);
			continue;
		}
		if (sect == NULL) {
			perr(p, line, "'key = value' outside of a section (expected a [section] first)");
			goto out;
		}
		{
			char *key, *value;

			if (parse_keyline(p, line, s, ss->anykey, &key, &value) < 0)
				goto out;
			if (!ss->anykey && key_find(ss, key) == NULL) {
				perr(p, line, "unknown key '%s' in section [%s]", key, sect);
				free(key);
				free(value);
				goto out;
			}
			add_entry(p, sect, name, key, value, line);
			free(key);
		}
	}
	rc = 0;
out:
	free(linebuf);
	free(sect);
	free(name);
	return rc;
}

/* ---- overrides ---- */

int
config_override_parse(const char *s, struct config_override *o, char *err, size_t errlen)
{
	const char *eq = strchr(s, '='), *dot1, *dot2;
	size_t klen;

	memset(o, 0, sizeof(*o));
	if (eq == NULL || eq == s) {
		snprintf(err, errlen, "override '%s': expected SECTION.KEY=VALUE or "
		    "SECTION.NAME.KEY=VALUE", s);
		return -1;
	}
	klen = (size_t)(eq - s);
	dot1 = memchr(s, '.', klen);
	dot2 = NULL;
	if (dot1 != NULL) {
		const char *q;
		for (q = eq - 1; q > dot1; q--)
			if (*q == '.') {
				dot2 = q;
				break;
			}
	}
	if (dot1 == NULL || dot1 == s || (dot2 == NULL && dot1 + 1 == eq) ||
	    (dot2 != NULL && (dot2 == dot1 + 1 || dot2 + 1 == eq))) {
		snprintf(err, errlen, "override '%s': expected SECTION.KEY=VALUE or "
		    "SECTION.NAME.KEY=VALUE", s);
		return -1;
	}
	o->section = xstrndup(s, (size_t)(dot1 - s));
	if (dot2 != NULL) {
		o->name = xstrndup(dot1 + 1, (size_t)(dot2 - dot1 - 1));
		o->key = xstrndup(dot2 + 1, (size_t)(eq - dot2 - 1));
	} else {
		o->key = xstrndup(dot1 + 1, (size_t)(eq - dot1 - 1));
	}
	o->value = xstrdup(eq + 1);
	return 0;
}

void
config_override_clear(struct config_override *o)
{
	free(o->section);
	free(o->name);
	free(o->key);
	free(o->value);
	memset(o, 0, sizeof(*o));
}

static int
apply_override(struct parse *p, const struct config_override *o)
{
	const struct sectspec *ss = sect_find(o->section);
	size_t i, j;

	if (ss == NULL) {
		perr(p, 0, "unknown section '%s' in -o %s.%s", o->section, o->section, o->key);
		return -1;
	}
	if (ss->named && o->name == NULL) {
		perr(p, 0, "section [%s] needs a name: -o %s.NAME.%s=VALUE", o->section, o->section,
		    o->key);
		return -1;
	}
	if (!ss->named && o->name != NULL && !ss->anykey) {
		perr(p, 0, "section [%s] takes no name: -o %s.%s=VALUE", o->section, o->section, o->key);
		return -1;
	}
	if (ss->anykey && o->name != NULL) {
		/* [senders] logins contain dots: "senders.alice@lab.test=..." */
		char *key = xasprintf("%s.%s", o->name, o->key);
		struct config_override o2 = { o->section, NULL, key, o->value };
		int rc = apply_override(p, &o2);
		free(key);
		return rc;
	}
	if (!ss->anykey && key_find(ss, o->key) == NULL) {
		perr(p, 0, "unknown key '%s' in section [%s]", o->key, o->section);
		return -1;
	}
	for (i = j = 0; i < p->ne; i++) {
		struct entry *e = &p->e[i];
		if (strcmp(e->section, o->section) == 0 && same_name(e->name, o->name) &&
		    strcmp(e->key, o->key) == 0 && e->line != 0) {
			free(e->section);
			free(e->name);
			free(e->key);
			free(e->value);
			continue;
		}
		p->e[j++] = *e;
	}
	p->ne = j;
	if (sect_lookup(p, o->section, o->name) == NULL)
		sect_add(p, o->section, o->name, 0);
	add_entry(p, o->section, o->name, o->key, xstrdup(o->value), 0);
	return 0;
}

/* ---- validation ---- */

/* The single entry for a non-repeatable key, or NULL; marks it used. */
static int
get1(struct parse *p, const char *sect, const char *name, const char *key, struct entry **e_r)
{
	struct entry *found = NULL;
	size_t i;

	for (i = 0; i < p->ne; i++) {
		struct entry *e = &p->e[i];
		if (strcmp(e->section, sect) != 0 || !same_name(e->name, name) ||
		    strcmp(e->key, key) != 0)
			continue;
		if (found != NULL) {
			perr(p, e->line, "duplicate key '%s' in [%s%s%s%s] (first set at line %d; "
			    "it may appear only once)", key, sect, name ? " \"" : "", name ? name : "",
			    name ? "\"" : "", found->line);
			return -1;
		}
		found = e;
		e->used = 1;
	}
	*e_r = found;
	return 0;
}

static int
get_str(struct parse *p, const char *sect, const char *name, const char *key, int required,
    int line, char **out)
{
	struct entry *e;

	if (get1(p, sect, name, key, &e) < 0)
		return -1;
	if (e == NULL) {
		if (required) {
			perr(p, line, "section [%s%s%s%s] needs '%s = ...'", sect, name ? " \"" : "",
			    name ? name : "", name ? "\"" : "", key);
			return -1;
		}
		return 0;
	}
	if (e->value[0] == '\0') {
		perr(p, e->line, "'%s' needs a value", key);
		return -1;
	}
	free(*out);
	*out = xstrdup(e->value);
	return 0;
}

/* Sizes take k/m/g (binary) suffixes, durations s/m/h.  name: the section
 * name of a named section, else NULL. */
static int
get_num_in(struct parse *p, const char *sect, const char *name, const char *key, uint64_t min,
    uint64_t max, enum kind kind, uint64_t *out)
{
	struct entry *e;
	uint64_t v, mult = 1;
	char *tmp;
	size_t n;
	int rc;

	if (get1(p, sect, name, key, &e) < 0)
		return -1;
	if (e == NULL)
		return 0;
	tmp = xstrdup(e->value);
	n = strlen(tmp);
	if (kind == K_TIME && n > 1) {
		switch (tmp[n - 1]) {
		case 's': mult = 1; tmp[n - 1] = '\0'; break;
		case 'm': mult = 60; tmp[n - 1] = '\0'; break;
		case 'h': mult = 3600; tmp[n - 1] = '\0'; break;
		default: break;
		}
	}
	rc = parse_uint(tmp, 0, UINT64_MAX / mult, kind == K_SIZE, &v);
	free(tmp);
	if (rc == 0) {
		v *= mult;
		rc = (v < min || v > max) ? -1 : 0;
	}
	if (rc < 0) {
		perr(p, e->line, "bad value '%s' for '%s' (expected %s from %llu to %llu%s)", e->value,
		    key, kind == K_TIME ? "seconds" : kind == K_SIZE ? "a size in bytes" : "a number",
		    (unsigned long long)min, (unsigned long long)max,
		    kind == K_SIZE ? ", optional suffix k, m or g" :
		    kind == K_TIME ? ", optional suffix s, m or h" : "");
		return -1;
	}
	*out = v;
	return 0;
}

static int
get_num(struct parse *p, const char *sect, const char *key, uint64_t min, uint64_t max,
    enum kind kind, uint64_t *out)
{
	return get_num_in(p, sect, NULL, key, min, max, kind, out);
}

/* A yes/no key; absent leaves *out unchanged. */
static int
get_bool(struct parse *p, const char *sect, const char *name, const char *key, int *out)
{
	struct entry *e;

	if (get1(p, sect, name, key, &e) < 0)
		return -1;
	if (e == NULL)
		return 0;
	if (strcmp(e->value, "yes") == 0)
		*out = 1;
	else if (strcmp(e->value, "no") == 0)
		*out = 0;
	else {
		perr(p, e->line, "bad value '%s' for '%s' (expected yes or no)", e->value, key);
		return -1;
	}
	return 0;
}

static int
valid_hostname(const char *h)
{
	size_t len = strlen(h), lab = 0, i;

	if (len == 0 || len > 253 || h[0] == '.' || h[0] == '-')
		return 0;
	for (i = 0; i < len; i++) {
		char c = h[i];
		if (c == '.') {
			if (lab == 0 || h[i - 1] == '-')
				return 0;
			lab = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    (c == '-' && lab > 0) || c == '_'))
			return 0;
		if (++lab > 63)
			return 0;
	}
	return lab > 0 && h[len - 1] != '-';
}

static int
get_hostname(struct parse *p, const char *sect, const char *name, const char *key,
    int required, int line, char **out)
{
	struct entry *e;

	if (get_str(p, sect, name, key, required, line, out) < 0)
		return -1;
	if (*out == NULL)
		return 0;
	if (!valid_hostname(*out)) {
		get1(p, sect, name, key, &e);
		perr(p, e ? e->line : line, "bad host name '%s' for '%s' (expected a DNS name such "
		    "as mail.example.org)", *out, key);
		return -1;
	}
	return 0;
}

static int
get_tls_mode(struct parse *p, const char *sect, const char *name, int line, int required,
    enum tls_mode *out)
{
	struct entry *e;

	if (get1(p, sect, name, "tls", &e) < 0)
		return -1;
	if (e == NULL) {
		if (required) {
			perr(p, line, "section [%s \"%s\"] needs 'tls = implicit' or "
			    "'tls = starttls'", sect, name);
			return -1;
		}
		return 0;
	}
	if (strcmp(e->value, "implicit") == 0)
		*out = TLS_MODE_IMPLICIT;
	else if (strcmp(e->value, "starttls") == 0)
		*out = TLS_MODE_STARTTLS;
	else {
		perr(p, e->line, "bad value '%s' for 'tls' (expected implicit or starttls)", e->value);
		return -1;
	}
	return 0;
}

/* "127.0.0.1:587" or "[::1]:587" (numeric only). */
static int
parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len, int *port)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon;
	uint64_t v;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (rb == NULL || rb[1] != ':' || (hl = (size_t)(rb - s - 1)) == 0 || hl >= sizeof(host))
			return -1;
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		if (parse_uint(rb + 2, 1, 65535, 0, &v) < 0 || inet_pton(AF_INET6, host,
		    &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)v);
		*len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if ((colon = strrchr(s, ':')) == NULL || (hl = (size_t)(colon - s)) == 0 ||
		    hl >= sizeof(host))
			return -1;
		memcpy(host, s, hl);
		host[hl] = '\0';
		if (parse_uint(colon + 1, 1, 65535, 0, &v) < 0 ||
		    inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)v);
		*len = sizeof(*sin);
	}
	*port = (int)v;
	return 0;
}

static int
is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* proxy-protocol, proxy-from (a list, the key may repeat), proxy-timeout. */
static int
check_listen_proxy(struct parse *p, struct config_listen *l, const struct sect *sc)
{
	struct entry *e, *from = NULL;
	size_t i;

	l->proxy_timeout = 5;
	if (get_bool(p, "listen", sc->name, "proxy-protocol", &l->proxy) < 0 ||
	    get_num_in(p, "listen", sc->name, "proxy-timeout", 1, 60, K_TIME,
	    &l->proxy_timeout) < 0)
		return -1;
	for (i = 0; i < p->ne; i++) {
		char *dup, *tok, *save = NULL;

		e = &p->e[i];
		if (strcmp(e->section, "listen") != 0 || !same_name(e->name, sc->name) ||
		    strcmp(e->key, "proxy-from") != 0)
			continue;
		e->used = 1;
		from = e;
		dup = xstrdup(e->value);
		for (tok = strtok_r(dup, ", \t", &save); tok != NULL;
		    tok = strtok_r(NULL, ", \t", &save)) {
			const char *why = NULL;

			l->proxy_from = xreallocarray(l->proxy_from, l->nproxy_from + 1,
			    sizeof(*l->proxy_from));
			if (cidr_parse(tok, &l->proxy_from[l->nproxy_from], &why) < 0) {
				perr(p, e->line, "bad proxy-from '%s': %s (expected ADDRESS or "
				    "ADDRESS/PREFIX, separated by commas)", tok, why);
				free(dup);
				return -1;
			}
			l->nproxy_from++;
		}
		free(dup);
	}
	if (l->proxy && l->nproxy_from == 0) {
		perr(p, sc->line, "listener \"%s\": proxy-protocol = yes needs 'proxy-from = "
		    "ADDRESS/PREFIX, ...' naming the load balancers allowed to send the PROXY "
		    "header", l->name);
		return -1;
	}
	if (!l->proxy && from != NULL) {
		perr(p, from->line, "listener \"%s\": proxy-from is given but proxy-protocol is "
		    "not 'yes' (set 'proxy-protocol = yes' or remove proxy-from)", l->name);
		return -1;
	}
	return 0;
}

static int
check_listen(struct parse *p, struct config *cfg, const struct sect *sc)
{
	struct config_listen *l;
	struct entry *e;
	uint64_t v;
	size_t i;

	cfg->listens = xreallocarray(cfg->listens, cfg->nlistens + 1, sizeof(*cfg->listens));
	l = &cfg->listens[cfg->nlistens++];
	memset(l, 0, sizeof(*l));
	l->name = xstrdup(sc->name);
	l->line = sc->line;
	if (get_str(p, "listen", sc->name, "address", 1, sc->line, &l->address) < 0)
		return -1;
	if (parse_hostport(l->address, &l->addr, &l->addrlen, &l->port) < 0) {
		get1(p, "listen", sc->name, "address", &e);
		perr(p, e->line, "bad address '%s' (expected IPv4:PORT such as 127.0.0.1:587 or "
		    "[IPv6]:PORT such as [::1]:587)", l->address);
		return -1;
	}
	if (get_tls_mode(p, "listen", sc->name, sc->line, 1, &l->tls) < 0)
		return -1;
	l->public_port = l->port;
	if (get1(p, "listen", sc->name, "public-port", &e) < 0)
		return -1;
	if (e != NULL) {
		if (parse_uint(e->value, 1, 65535, 0, &v) < 0) {
			perr(p, e->line, "bad value '%s' for 'public-port' (expected a port 1..65535)",
			    e->value);
			return -1;
		}
		l->public_port = (int)v;
	}
	for (i = 0; i + 1 < cfg->nlistens; i++) {
		const struct config_listen *o = &cfg->listens[i];
		if (o->addrlen == l->addrlen && memcmp(&o->addr, &l->addr, l->addrlen) == 0) {
			perr(p, sc->line, "listener \"%s\" uses the same address as \"%s\" (%s)",
			    l->name, o->name, l->address);
			return -1;
		}
	}
	return check_listen_proxy(p, l, sc);
}

static int
check_relay(struct parse *p, struct config *cfg, const struct sect *sc)
{
	struct config_relay *r;
	struct entry *e;
	uint64_t v;
	size_t i;

	cfg->relays = xreallocarray(cfg->relays, cfg->nrelays + 1, sizeof(*cfg->relays));
	r = &cfg->relays[cfg->nrelays++];
	memset(r, 0, sizeof(*r));
	r->name = xstrdup(sc->name);
	r->line = sc->line;
	r->tls = TLS_MODE_STARTTLS;
	if (get_str(p, "relay", sc->name, "host", 1, sc->line, &r->host) < 0)
		return -1;
	if (!is_ip_literal(r->host) &&
	    get_hostname(p, "relay", sc->name, "host", 1, sc->line, &r->host) < 0)
		return -1;
	if (get_str(p, "relay", sc->name, "address", 0, sc->line, &r->address) < 0)
		return -1;
	if (r->address != NULL && !is_ip_literal(r->address)) {
		get1(p, "relay", sc->name, "address", &e);
		perr(p, e->line, "bad address '%s' (expected an IPv4 or IPv6 address; the host name "
		    "goes in 'host')", r->address);
		return -1;
	}
	if (get_tls_mode(p, "relay", sc->name, sc->line, 0, &r->tls) < 0)
		return -1;
	r->port = r->tls == TLS_MODE_IMPLICIT ? 465 : 25;
	if (get1(p, "relay", sc->name, "port", &e) < 0)
		return -1;
	if (e != NULL) {
		if (parse_uint(e->value, 1, 65535, 0, &v) < 0) {
			perr(p, e->line, "bad value '%s' for 'port' (expected a port 1..65535)", e->value);
			return -1;
		}
		r->port = (int)v;
	}
	if (get_str(p, "relay", sc->name, "auth-file", 0, sc->line, &r->auth_file) < 0 ||
	    get_bool(p, "relay", sc->name, "xclient", &r->xclient) < 0)
		return -1;
	r->connections = 20;
	r->idle_timeout = 30;
	r->max_transactions = 100;
	if (get_num_in(p, "relay", sc->name, "connections", 0, 10000, K_UINT,
	    &r->connections) < 0 ||
	    get_num_in(p, "relay", sc->name, "idle-timeout", 1, 3600, K_TIME,
	    &r->idle_timeout) < 0 ||
	    get_num_in(p, "relay", sc->name, "max-transactions", 1, 1000000, K_UINT,
	    &r->max_transactions) < 0)
		return -1;
	for (i = 0; i < p->ne; i++) {
		const char *why = NULL;

		e = &p->e[i];
		if (strcmp(e->section, "relay") != 0 || !same_name(e->name, sc->name) ||
		    strcmp(e->key, "tlsa") != 0)
			continue;
		e->used = 1;
		r->tlsa = xreallocarray(r->tlsa, r->ntlsa + 1, sizeof(*r->tlsa));
		memset(&r->tlsa[r->ntlsa], 0, sizeof(r->tlsa[r->ntlsa]));
		if (dane_tlsa_parse_text(e->value, &r->tlsa[r->ntlsa], &why) < 0) {
			perr(p, e->line, "bad tlsa record \"%s\": %s (expected \"USAGE SELECTOR MTYPE "
			    "HEX\", e.g. \"3 1 1 <64 hex digits>\")", e->value, why ? why : "invalid");
			return -1;
		}
		r->ntlsa++;
	}
	r->dane = r->ntlsa > 0 ? DANE_MODE_STATIC : DANE_MODE_REQUIRED;
	if (get1(p, "relay", sc->name, "dane", &e) < 0)
		return -1;
	if (e != NULL) {
		if (strcmp(e->value, "required") != 0) {
			perr(p, e->line, "bad value '%s' for 'dane' (expected required; static pins are "
			    "given with 'tlsa = ...')", e->value);
			return -1;
		}
		if (r->ntlsa > 0) {
			perr(p, e->line, "relay \"%s\": 'dane = required' and static 'tlsa' pins exclude "
			    "each other (remove one)", r->name);
			return -1;
		}
	}
	if (r->dane == DANE_MODE_STATIC && r->ntlsa > 0) {
		for (i = 0; i < r->ntlsa; i++)
			if (dane_tlsa_usable(&r->tlsa[i]))
				break;
		if (i == r->ntlsa) {
			perr(p, sc->line, "relay \"%s\": no usable tlsa pin (only usages 2 and 3, "
			    "selectors 0 and 1, matching types 0-2 are usable for SMTP, RFC 7672)",
			    r->name);
			return -1;
		}
	}
	if (r->dane == DANE_MODE_REQUIRED && is_ip_literal(r->host)) {
		perr(p, sc->line, "relay \"%s\": host is an IP address, so DANE cannot look up its TLSA "
		    "records (give a host name, or static 'tlsa' pins)", r->name);
		return -1;
	}
	return 0;
}

static int
check_dkim(struct parse *p, struct config *cfg, const struct sect *sc)
{
	struct config_dkim *d;
	size_t i;

	if (!valid_hostname(sc->name)) {
		perr(p, sc->line, "bad domain \"%s\" in [dkim] (expected a DNS name)", sc->name);
		return -1;
	}
	cfg->dkims = xreallocarray(cfg->dkims, cfg->ndkims + 1, sizeof(*cfg->dkims));
	d = &cfg->dkims[cfg->ndkims++];
	memset(d, 0, sizeof(*d));
	d->domain = xstrdup(sc->name);
	d->line = sc->line;
	for (i = 0; i < p->ne; i++) {
		struct entry *e = &p->e[i];
		const char *v, *sp;
		struct config_dkim_key *k;
		size_t j;

		if (strcmp(e->section, "dkim") != 0 || !same_name(e->name, sc->name))
			continue;
		e->used = 1;
		v = e->value;
		sp = strpbrk(v, " \t");
		if (sp == NULL || sp == v || *skip_ws(sp) == '\0') {
			perr(p, e->line, "bad value '%s' for 'key' (expected 'SELECTOR FILE')", v);
			return -1;
		}
		d->keys = xreallocarray(d->keys, d->nkeys + 1, sizeof(*d->keys));
		k = &d->keys[d->nkeys++];
		k->selector = xstrndup(v, (size_t)(sp - v));
		k->file = xstrdup(skip_ws(sp));
		if (!valid_hostname(k->selector)) {
			perr(p, e->line, "bad selector '%s' (expected DNS labels)", k->selector);
			return -1;
		}
		for (j = 0; j + 1 < d->nkeys; j++)
			if (ascii_casecmp(d->keys[j].selector, k->selector) == 0) {
				perr(p, e->line, "duplicate selector '%s' for domain %s", k->selector,
				    d->domain);
				return -1;
			}
	}
	if (d->nkeys == 0) {
		perr(p, sc->line, "section [dkim \"%s\"] needs 'key = SELECTOR FILE'", d->domain);
		return -1;
	}
	return 0;
}

/* A sender pattern: "user@domain" or "@domain". */
static int
valid_pattern(const char *s)
{
	const char *at = strrchr(s, '@');
	const char *q;

	if (at == NULL || !valid_hostname(at + 1))
		return 0;
	for (q = s; q < at; q++)
		if ((unsigned char)*q <= 0x20 || *q == '<' || *q == '>' || *q == ',' ||
		    (unsigned char)*q >= 0x7f)
			return 0;
	return 1;
}

static int
check_senders(struct parse *p, struct config *cfg)
{
	size_t i, j;

	for (i = 0; i < p->ne; i++) {
		struct entry *e = &p->e[i];
		struct config_sender *sd;
		char *dup, *tok, *save = NULL;

		if (strcmp(e->section, "senders") != 0)
			continue;
		e->used = 1;
		for (j = 0; j < cfg->nsenders; j++)
			if (ascii_casecmp(cfg->senders[j].login, e->key) == 0) {
				perr(p, e->line, "duplicate entry for login '%s' in [senders]", e->key);
				return -1;
			}
		cfg->senders = xreallocarray(cfg->senders, cfg->nsenders + 1, sizeof(*cfg->senders));
		sd = &cfg->senders[cfg->nsenders++];
		memset(sd, 0, sizeof(*sd));
		sd->login = xstrdup(e->key);
		dup = xstrdup(e->value);
		for (tok = strtok_r(dup, ", \t", &save); tok != NULL;
		    tok = strtok_r(NULL, ", \t", &save)) {
			if (!valid_pattern(tok)) {
				perr(p, e->line, "bad sender '%s' for login '%s' (expected user@domain or "
				    "@domain, separated by commas)", tok, e->key);
				free(dup);
				return -1;
			}
			sd->patterns = xreallocarray(sd->patterns, sd->npatterns + 1,
			    sizeof(*sd->patterns));
			sd->patterns[sd->npatterns++] = xstrdup(tok);
		}
		free(dup);
		if (sd->npatterns == 0) {
			perr(p, e->line, "login '%s' in [senders] needs at least one address or @domain",
			    e->key);
			return -1;
		}
	}
	return 0;
}

/* yes/no; *out keeps its value when the key is absent. */
static int
get_yesno(struct parse *p, const char *sect, const char *key, int *out)
{
	struct entry *e;

	if (get1(p, sect, NULL, key, &e) < 0)
		return -1;
	if (e == NULL)
		return 0;
	if (strcmp(e->value, "yes") != 0 && strcmp(e->value, "no") != 0) {
		perr(p, e->line, "bad value '%s' for '%s' (expected yes or no)", e->value, key);
		return -1;
	}
	*out = strcmp(e->value, "yes") == 0;
	return 0;
}

/* Loopback: 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static int
is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return 0;
}

/* [metrics] address = HOST:PORT | unix:/PATH, allow-remote = yes|no */
static int
check_metrics(struct parse *p, struct config *cfg)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&cfg->metrics_addr;
	struct entry *e;
	const char *a;
	int port;

	if (get_yesno(p, "metrics", "allow-remote", &cfg->metrics_allow_remote) < 0 ||
	    get1(p, "metrics", NULL, "address", &e) < 0)
		return -1;
	if (e == NULL)
		return 0;
	a = e->value;
	cfg->metrics_address = xstrdup(a);
	if (strncmp(a, "unix:", 5) == 0) {
		if (a[5] != '/' || strlen(a + 5) >= sizeof(sun->sun_path)) {
			perr(p, e->line, "bad address '%s' (expected unix: and an absolute path of at "
			    "most %zu characters)", a, sizeof(sun->sun_path) - 1);
			return -1;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, a + 5, strlen(a + 5) + 1);
		cfg->metrics_addrlen = (socklen_t)sizeof(*sun);
		return 0;
	}
	if (parse_hostport(a, &cfg->metrics_addr, &cfg->metrics_addrlen, &port) < 0) {
		perr(p, e->line, "bad address '%s' (expected 127.0.0.1:PORT, [::1]:PORT or "
		    "unix:/PATH)", a);
		return -1;
	}
	if (!is_loopback(&cfg->metrics_addr) && !cfg->metrics_allow_remote) {
		perr(p, e->line, "metrics address '%s' is not a loopback address: the metrics "
		    "have no TLS and no authentication (use 127.0.0.1, [::1] or unix:/PATH, or "
		    "set 'allow-remote = yes' and fence the port yourself)", a);
		return -1;
	}
	return 0;
}

/* The line of an unnamed section's key (0: not in the file). */
static int
key_line(struct parse *p, const char *sect, const char *key)
{
	struct entry *e = NULL;

	if (get1(p, sect, NULL, key, &e) < 0 || e == NULL)
		return 0;
	return e->line;
}

/* [audit]: the audit log (src/recorder.h) and its keys. */
static int
check_audit(struct parse *p, struct config *cfg)
{
	struct sect *a = sect_lookup(p, "audit", NULL);
	int line = a != NULL ? a->line : 1;

	cfg->audit_required = -1;
	cfg->audit_checkpoint_records = 1000;
	cfg->audit_checkpoint_interval = 60;
	if (get_str(p, "audit", NULL, "log", 0, line, &cfg->audit_log) < 0 ||
	    get_str(p, "audit", NULL, "signing-key", 0, line, &cfg->audit_signing_key) < 0 ||
	    get_yesno(p, "audit", "required", &cfg->audit_required) < 0 ||
	    get_num(p, "audit", "rotate-size", 4096, UINT64_MAX / 2, K_SIZE,
	    &cfg->audit_rotate_size) < 0 ||
	    get_num(p, "audit", "checkpoint-records", 1, 1000000, K_UINT,
	    &cfg->audit_checkpoint_records) < 0 ||
	    get_num(p, "audit", "checkpoint-interval", 1, 86400, K_TIME,
	    &cfg->audit_checkpoint_interval) < 0 ||
	    get_yesno(p, "audit", "pseudonymize", &cfg->audit_pseudonymize) < 0 ||
	    get_str(p, "audit", NULL, "pseudonymize-key", 0, line,
	    &cfg->audit_pseudonymize_key) < 0)
		return -1;
	if (cfg->audit_log == NULL) {
		static const char *const needs_log[] = { "signing-key", "required", "rotate-size",
		    "checkpoint-records", "checkpoint-interval", "pseudonymize", "pseudonymize-key",
		    NULL };
		size_t i, k;

		/* (recheck belongs to the self-audit, not to the log) */
		for (k = 0; needs_log[k] != NULL; k++)
			for (i = 0; i < p->ne; i++)
				if (strcmp(p->e[i].section, "audit") == 0 &&
				    strcmp(p->e[i].key, needs_log[k]) == 0) {
					perr(p, p->e[i].line, "'%s' needs 'log = FILE' (an absolute "
					    "path) in [audit]: without it nothing is recorded",
					    needs_log[k]);
					return -1;
				}
		return 0;
	}
	if (cfg->audit_log[0] != '/' || strrchr(cfg->audit_log, '/')[1] == '\0') {
		perr(p, line, "[audit] log must be an absolute file name (the recorder works in "
		    "its directory), not '%s'", cfg->audit_log);
		return -1;
	}
	if (cfg->audit_signing_key == NULL) {
		perr(p, line, "[audit] log needs 'signing-key = FILE' (an Ed25519 key: certtool "
		    "--generate-privkey --key-type ed25519 --outfile FILE)");
		return -1;
	}
	if (cfg->audit_pseudonymize && cfg->audit_pseudonymize_key == NULL) {
		perr(p, line, "[audit] pseudonymize = yes needs 'pseudonymize-key = FILE' (at "
		    "least 32 secret random octets: head -c 32 /dev/urandom > FILE)");
		return -1;
	}
	if (!cfg->audit_pseudonymize && cfg->audit_pseudonymize_key != NULL) {
		perr(p, line, "[audit] pseudonymize-key is set but pseudonymize is not yes");
		return -1;
	}
	return 0;
}

/* The four rate keys of [limits] (name NULL) or of [login "NAME"]. */
static int
get_rates(struct parse *p, const char *login, struct config_rates *r)
{
	const char *sect = login ? "login" : "limits";

	return get_num_in(p, sect, login, "messages-per-hour", 0, 1000000, K_UINT,
	    &r->messages_per_hour) < 0 ||
	    get_num_in(p, sect, login, "recipients-per-hour", 0, 1000000, K_UINT,
	    &r->recipients_per_hour) < 0 ||
	    get_num_in(p, sect, login, "auth-per-minute", 0, 1000000, K_UINT,
	    &r->auth_per_minute) < 0 ||
	    get_num_in(p, sect, login, "sessions-per-login", 0, 1000000, K_UINT,
	    &r->sessions_per_login) < 0 ? -1 : 0;
}

/* [login "NAME"]: per-login rate limits over the [limits] defaults. */
static int
check_login(struct parse *p, struct config *cfg, const struct sect *sc)
{
	struct config_login *lg;

	cfg->logins = xreallocarray(cfg->logins, cfg->nlogins + 1, sizeof(*cfg->logins));
	lg = &cfg->logins[cfg->nlogins++];
	memset(lg, 0, sizeof(*lg));
	lg->name = xstrdup(sc->name);
	lg->line = sc->line;
	lg->rates = cfg->limits.rates;
	return get_rates(p, sc->name, &lg->rates);
}

static int
check_limits(struct parse *p, struct config *cfg)
{
	struct config_limits *l = &cfg->limits;

	l->message_size = 25ULL << 20;
	l->recipients = 100;
	l->line_length = 998;
	l->header_size = 64 << 10;
	l->received_max = 30;
	l->connections = 1000;
	l->connections_per_ip = 20;
	l->timeout = 300;
	l->auth_failures = 3;
	l->memory_body = 256 << 10;
	l->relay_timeout = 60;
	l->protocol_errors = 10;
	l->auth_timeout = 60;
	l->session_timeout = 3600;
	l->ipv6_prefix = 64;
	l->login_memory = 0;
	if (get_num(p, "limits", "message-size", 1024, 1ULL << 40, K_SIZE, &l->message_size) < 0 ||
	    get_num(p, "limits", "recipients", 1, 100000, K_UINT, &l->recipients) < 0 ||
	    get_num(p, "limits", "line-length", 78, 998, K_UINT, &l->line_length) < 0 ||
	    get_num(p, "limits", "header-size", 1024, 16ULL << 20, K_SIZE, &l->header_size) < 0 ||
	    get_num(p, "limits", "received-max", 1, 1000, K_UINT, &l->received_max) < 0 ||
	    get_num(p, "limits", "connections", 1, 1000000, K_UINT, &l->connections) < 0 ||
	    get_num(p, "limits", "connections-per-ip", 1, 1000000, K_UINT,
	    &l->connections_per_ip) < 0 ||
	    get_num(p, "limits", "timeout", 1, 86400, K_TIME, &l->timeout) < 0 ||
	    get_num(p, "limits", "auth-failures", 1, 100, K_UINT, &l->auth_failures) < 0 ||
	    get_num(p, "limits", "memory-body", 0, 1ULL << 30, K_SIZE, &l->memory_body) < 0 ||
	    get_num(p, "limits", "relay-timeout", 1, 3600, K_TIME, &l->relay_timeout) < 0 ||
	    get_num(p, "limits", "protocol-errors", 1, 1000, K_UINT, &l->protocol_errors) < 0 ||
	    get_num(p, "limits", "auth-timeout", 1, 86400, K_TIME, &l->auth_timeout) < 0 ||
	    get_num(p, "limits", "session-timeout", 1, 7 * 86400, K_TIME,
	    &l->session_timeout) < 0 ||
	    get_num(p, "limits", "ipv6-prefix", 16, 128, K_UINT, &l->ipv6_prefix) < 0 ||
	    get_num(p, "limits", "login-memory", 1024, 1ULL << 44, K_SIZE, &l->login_memory) < 0 ||
	    get_rates(p, NULL, &l->rates) < 0)
		return -1;
	if (l->header_size > l->message_size) {
		perr(p, key_line(p, "limits", "header-size"), "[limits] header-size (%llu) is "
		    "larger than message-size (%llu)", (unsigned long long)l->header_size,
		    (unsigned long long)l->message_size);
		return -1;
	}
	if (l->auth_timeout > l->session_timeout) {
		perr(p, key_line(p, "limits", "auth-timeout"), "[limits] auth-timeout (%llu s) is "
		    "longer than session-timeout (%llu s): a session ends before it would apply",
		    (unsigned long long)l->auth_timeout, (unsigned long long)l->session_timeout);
		return -1;
	}
	if (l->login_memory == 0)
		l->login_memory = 4 * l->message_size;
	else if (l->login_memory < l->message_size) {
		perr(p, key_line(p, "limits", "login-memory"), "[limits] login-memory (%llu) is "
		    "smaller than message-size (%llu): a login could never send a message of the "
		    "largest size (expected at least message-size)",
		    (unsigned long long)l->login_memory, (unsigned long long)l->message_size);
		return -1;
	}
	return 0;
}

static int
validate(struct parse *p, struct config *cfg)
{
	size_t i;
	int srvline = 0;

	for (i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].section, "server") == 0)
			srvline = p->s[i].line;
	if (sect_lookup(p, "server", NULL) == NULL) {
		perr(p, 1, "missing section [server] (expected at least 'hostname = ...')");
		return -1;
	}
	if (get_hostname(p, "server", NULL, "hostname", 1, srvline, &cfg->hostname) < 0 ||
	    get_str(p, "server", NULL, "user", 0, srvline, &cfg->user) < 0 ||
	    get_str(p, "server", NULL, "signer-user", 0, srvline, &cfg->signer_user) < 0 ||
	    get_str(p, "server", NULL, "keeper-user", 0, srvline, &cfg->keeper_user) < 0 ||
	    get_str(p, "server", NULL, "recorder-user", 0, srvline, &cfg->recorder_user) < 0 ||
	    get_str(p, "server", NULL, "chroot", 0, srvline, &cfg->chroot) < 0 ||
	    get_str(p, "server", NULL, "profile", 0, srvline, &cfg->profile) < 0)
		return -1;
	cfg->shutdown_timeout = 30;
	if (get_num(p, "server", "shutdown-timeout", 0, 86400, K_TIME,
	    &cfg->shutdown_timeout) < 0)
		return -1;
	if (cfg->chroot != NULL && cfg->chroot[0] != '/') {
		perr(p, srvline, "'chroot' must be an absolute path, not '%s'", cfg->chroot);
		return -1;
	}
	for (i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].section, "listen") == 0 && check_listen(p, cfg, &p->s[i]) < 0)
			return -1;
	if (cfg->nlistens == 0) {
		perr(p, 1, "no [listen \"NAME\"] section (expected at least one listener)");
		return -1;
	}
	{
		struct sect *t = sect_lookup(p, "tls", NULL);
		int tl = t ? t->line : 1;

		if (t == NULL) {
			perr(p, 1, "missing section [tls] (expected 'certificate' and 'key')");
			return -1;
		}
		if (get_str(p, "tls", NULL, "certificate", 1, tl, &cfg->tls_certificate) < 0 ||
		    get_str(p, "tls", NULL, "key", 1, tl, &cfg->tls_key) < 0 ||
		    get_str(p, "tls", NULL, "priority", 0, tl, &cfg->tls_priority) < 0)
			return -1;
	}
	{
		struct sect *a = sect_lookup(p, "auth", NULL);

		if (a == NULL) {
			perr(p, 1, "missing section [auth] (expected 'passwd-file')");
			return -1;
		}
		if (get_str(p, "auth", NULL, "passwd-file", 1, a->line, &cfg->passwd_file) < 0)
			return -1;
	}
	if (check_senders(p, cfg) < 0)
		return -1;
	for (i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].section, "relay") == 0 && check_relay(p, cfg, &p->s[i]) < 0)
			return -1;
	if (cfg->nrelays == 0) {
		perr(p, 1, "no [relay \"NAME\"] section (expected at least one relay)");
		return -1;
	}
	for (i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].section, "dkim") == 0 && check_dkim(p, cfg, &p->s[i]) < 0)
			return -1;
	if (cfg->ndkims == 0) {
		perr(p, 1, "no [dkim \"DOMAIN\"] section: subproxy signs every message and needs "
		    "'key = SELECTOR FILE' for each sender domain");
		return -1;
	}
	if (get_str(p, "dns", NULL, "trust-anchor-file", 0, 1, &cfg->trust_anchor_file) < 0 ||
	    get_str(p, "dns", NULL, "unbound-config", 0, 1, &cfg->unbound_config) < 0 ||
	    get_num(p, "dns", "timeout", 1, 300, K_TIME, &cfg->dns_timeout) < 0 ||
	    check_audit(p, cfg) < 0)
		return -1;
	cfg->audit_recheck = 3600;
	if (get_num(p, "audit", "recheck", 0, 7 * 86400, K_TIME, &cfg->audit_recheck) < 0 ||
	    check_metrics(p, cfg) < 0)
		return -1;
	if (check_limits(p, cfg) < 0)
		return -1;
	for (i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].section, "login") == 0 && check_login(p, cfg, &p->s[i]) < 0)
			return -1;
	/* every entry must have been consumed: catches keys the table knows but
	 * the validator forgot */
	for (i = 0; i < p->ne; i++)
		if (!p->e[i].used) {
			perr(p, p->e[i].line, "key '%s' is not valid here", p->e[i].key);
			return -1;
		}
	return 0;
}

static void
defaults(struct config *cfg)
{
	if (cfg->user == NULL)
		cfg->user = xstrdup("subproxy");
	if (cfg->signer_user == NULL)
		cfg->signer_user = xstrdup("subproxy-signer");
	if (cfg->keeper_user == NULL)
		cfg->keeper_user = xstrdup("subproxy-keeper");
	if (cfg->recorder_user == NULL)
		cfg->recorder_user = xstrdup("subproxy-recorder");
	if (cfg->chroot == NULL)
		cfg->chroot = xstrdup("/var/empty/subproxy");
	if (cfg->profile == NULL)
		cfg->profile = xstrdup("baseline");
	if (cfg->tls_priority == NULL)
		cfg->tls_priority = xstrdup("SECURE192:+SECURE128:-VERS-ALL:+VERS-TLS1.3:"
		    "+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:"
		    "-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SAFE_RENEGOTIATION");
	if (cfg->trust_anchor_file == NULL)
		cfg->trust_anchor_file = xstrdup("/usr/share/dns/root.key");
	if (cfg->dns_timeout == 0)
		cfg->dns_timeout = 10;
}

/* SHA-256 of the file and the overrides, each "-o section[.name].key=value"
 * and a newline: the effective configuration (for the audit log). */
static void
digest(struct config *cfg, const char *buf, size_t len, const struct config_override *ov,
    size_t nov)
{
	crypto_hash_sha256_state st;
	char *line;
	size_t i;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)buf, len);
	for (i = 0; i < nov; i++) {
		line = xasprintf("-o %s%s%s.%s=%s\n", ov[i].section, ov[i].name ? "." : "",
		    ov[i].name ? ov[i].name : "", ov[i].key, ov[i].value);
		crypto_hash_sha256_update(&st, (const unsigned char *)line, strlen(line));
		free(line);
	}
	crypto_hash_sha256_final(&st, cfg->digest);
}

static void
parse_clear(struct parse *p)
{
	size_t i;

	for (i = 0; i < p->ne; i++) {
		free(p->e[i].section);
		free(p->e[i].name);
		free(p->e[i].key);
		free(p->e[i].value);
	}
	for (i = 0; i < p->ns; i++) {
		free(p->s[i].section);
		free(p->s[i].name);
	}
	free(p->e);
	free(p->s);
}

struct config *
config_parse_buffer(const char *file, const char *buf, size_t len,
    const struct config_override *ov, size_t nov, char *err, size_t errlen)
{
	struct parse p;
	struct config *cfg;
	size_t i;

	memset(&p, 0, sizeof(p));
	p.file = file;
	p.err = err;
	p.errlen = errlen;
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->file = xstrdup(file);
	if (tokenize(&p, buf, len) < 0)
		goto err;
	for (i = 0; i < nov; i++)
		if (apply_override(&p, &ov[i]) < 0)
			goto err;
	if (validate(&p, cfg) < 0)
		goto err;
	defaults(cfg);
	digest(cfg, buf, len, ov, nov);
	parse_clear(&p);
	return cfg;
err:
	parse_clear(&p);
	config_free(&cfg);
	return NULL;
}

struct config *
config_load(const char *path, const struct config_override *ov, size_t nov, char *err,
    size_t errlen)
{
	struct config *cfg;
	struct stat st;
	char *buf;
	size_t off = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "%s: cannot open the configuration: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_FILE_MAX) {
		snprintf(err, errlen, "%s: not a regular file of at most %d bytes", path,
		    CONFIG_FILE_MAX);
		close(fd);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size &&
	    (n = read(fd, buf + off, (size_t)st.st_size - off)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: read: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	cfg = config_parse_buffer(path, buf, off, ov, nov, err, errlen);
	free(buf);
	return cfg;
}

void
config_free(struct config **cfgp)
{
	struct config *cfg;
	size_t i, j;

	if (cfgp == NULL || (cfg = *cfgp) == NULL)
		return;
	free(cfg->file);
	free(cfg->hostname);
	free(cfg->user);
	free(cfg->signer_user);
	free(cfg->keeper_user);
	free(cfg->recorder_user);
	free(cfg->chroot);
	free(cfg->profile);
	for (i = 0; i < cfg->nlistens; i++) {
		free(cfg->listens[i].name);
		free(cfg->listens[i].address);
		free(cfg->listens[i].proxy_from);
	}
	free(cfg->listens);
	free(cfg->tls_certificate);
	free(cfg->tls_key);
	free(cfg->tls_priority);
	free(cfg->passwd_file);
	for (i = 0; i < cfg->nsenders; i++) {
		free(cfg->senders[i].login);
		for (j = 0; j < cfg->senders[i].npatterns; j++)
			free(cfg->senders[i].patterns[j]);
		free(cfg->senders[i].patterns);
	}
	free(cfg->senders);
	for (i = 0; i < cfg->nrelays; i++) {
		struct config_relay *r = &cfg->relays[i];
		free(r->name);
		free(r->host);
		free(r->address);
		for (j = 0; j < r->ntlsa; j++)
			dane_tlsa_clear(&r->tlsa[j]);
		free(r->tlsa);
		free(r->auth_file);
	}
	free(cfg->relays);
	for (i = 0; i < cfg->ndkims; i++) {
		for (j = 0; j < cfg->dkims[i].nkeys; j++) {
			free(cfg->dkims[i].keys[j].selector);
			free(cfg->dkims[i].keys[j].file);
		}
		free(cfg->dkims[i].keys);
		free(cfg->dkims[i].domain);
	}
	free(cfg->dkims);
	free(cfg->trust_anchor_file);
	free(cfg->unbound_config);
	free(cfg->audit_log);
	free(cfg->metrics_address);
	free(cfg->audit_signing_key);
	free(cfg->audit_pseudonymize_key);
	for (i = 0; i < cfg->nlogins; i++)
		free(cfg->logins[i].name);
	free(cfg->logins);
	free(cfg);
	*cfgp = NULL;
}

/* ---- sender policy ---- */

static int
pattern_match(const char *pat, const char *address)
{
	const char *at;

	if (pat[0] == '@') {
		at = strrchr(address, '@');
		return at != NULL && at != address && ascii_casecmp(at, pat) == 0;
	}
	return ascii_casecmp(pat, address) == 0;
}

int
config_sender_allowed(const struct config *cfg, const char *login, const char *address)
{
	size_t i, j;

	if (address == NULL || address[0] == '\0' || login == NULL)
		return 0;
	for (i = 0; i < cfg->nsenders; i++) {
		const struct config_sender *sd = &cfg->senders[i];

		if (ascii_casecmp(sd->login, login) != 0)
			continue;
		for (j = 0; j < sd->npatterns; j++)
			if (pattern_match(sd->patterns[j], address))
				return 1;
		return 0;
	}
	return strchr(login, '@') != NULL && ascii_casecmp(login, address) == 0;
}

const struct config_rates *
config_login_rates(const struct config *cfg, const char *login)
{
	size_t i;

	for (i = 0; login != NULL && i < cfg->nlogins; i++)
		if (strcmp(cfg->logins[i].name, login) == 0)
			return &cfg->logins[i].rates;
	return &cfg->limits.rates;
}
