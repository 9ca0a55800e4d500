/*
 * config_parse.c — the configuration's grammar: the table of sections and keys, the
 * tokenizer, -o overrides and the typed values (strings, numbers, sizes,
 * times, booleans, host names, addresses).  Every error names FILE:LINE (or
 * the -o option) and what was expected.
 */
#include "config_int.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void perr(struct parse *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void
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
	{ "recorder-user", 0 }, { "workers", 0 }, { "worker-restarts", 0 }, { NULL, 0 }
};
static const struct keyspec listen_keys[] = {
	{ "address", 0 }, { "tls", 0 }, { "public-port", 0 }, { "proxy-protocol", 0 },
	{ "proxy-from", 1 }, { "proxy-timeout", 0 }, { NULL, 0 }
};
static const struct keyspec tls_keys[] = {
	{ "certificate", 0 }, { "key", 0 }, { "priority", 0 }, { "key-workers", 0 }, { NULL, 0 }
};
static const struct keyspec auth_keys[] = {
	{ "passwd-file", 0 }, { "cache-ttl", 0 }, { "cache-size", 0 }, { "workers", 0 },
	{ NULL, 0 }
};
static const struct keyspec relay_keys[] = {
	{ "host", 0 }, { "address", 0 }, { "port", 0 }, { "tls", 0 }, { "tlsa", 1 },
	{ "dane", 0 }, { "auth-file", 0 }, { "xclient", 0 }, { "connections", 0 },
	{ "idle-timeout", 0 }, { "spare-timeout", 0 }, { "max-transactions", 0 }, { NULL, 0 }
};
static const struct keyspec dkim_keys[] = { { "key", 1 }, { NULL, 0 } };
static const struct keyspec dns_keys[] = {
	{ "trust-anchor-file", 0 }, { "unbound-config", 0 }, { "timeout", 0 }, { NULL, 0 }
};
static const struct keyspec audit_keys[] = {
	{ "log", 0 }, { "recheck", 0 }, { "signing-key", 0 }, { "required", 0 },
	{ "rotate-size", 0 }, { "checkpoint-records", 0 }, { "checkpoint-interval", 0 },
	{ "pseudonymize", 0 }, { "pseudonymize-key", 0 }, { "flood-records", 0 }, { NULL, 0 }
};
static const struct keyspec metrics_keys[] = {
	{ "address", 0 }, { "allow-remote", 0 }, { NULL, 0 }
};
static const struct keyspec limits_keys[] = {
	{ "message-size", 0 }, { "recipients", 0 }, { "line-length", 0 }, { "header-size", 0 },
	{ "received-max", 0 }, { "connections", 0 }, { "connections-per-ip", 0 },
	{ "timeout", 0 }, { "auth-failures", 0 }, { "memory-body", 0 }, { "relay-timeout", 0 },
	{ "relay-min-rate", 0 }, { "protocol-errors", 0 }, { "auth-timeout", 0 },
	{ "session-timeout", 0 },
	{ "ipv6-prefix", 0 }, { "login-memory", 0 }, { "auth-queue", 0 }, { "transactions", 0 },
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

int
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

const char *
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

struct sect *
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

int
tokenize(struct parse *p, const char *buf, size_t len)
{
	const struct sectspec *ss = NULL;
	char *sect = NULL, *name = NULL, *linebuf = NULL;
	size_t off = 0;
	int line = 0, rc = -1;

	/* some editors write one; it would make line 1 read as something else */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
		perr(p, 1, "the file starts with a UTF-8 byte order mark (expected text without "
		    "it: save the file without a BOM)");
		return -1;
	}
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

int
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
int
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

int
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

/* Sizes and rates take k/m/g (binary) suffixes, durations s/m/h.  name: the section
 * name of a named section, else NULL. */
int
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
	rc = parse_uint(tmp, 0, UINT64_MAX / mult, kind == K_SIZE || kind == K_RATE, &v);
	free(tmp);
	if (rc == 0) {
		v *= mult;
		rc = (v < min || v > max) ? -1 : 0;
	}
	if (rc < 0) {
		perr(p, e->line, "bad value '%s' for '%s' (expected %s from %llu to %llu%s)", e->value,
		    key, kind == K_TIME ? "seconds" : kind == K_SIZE ? "a size in bytes" :
		    kind == K_RATE ? "octets per second" : "a number",
		    (unsigned long long)min, (unsigned long long)max,
		    kind == K_SIZE || kind == K_RATE ? ", optional suffix k, m or g" :
		    kind == K_TIME ? ", optional suffix s, m or h" : "");
		return -1;
	}
	*out = v;
	return 0;
}

int
get_num(struct parse *p, const char *sect, const char *key, uint64_t min, uint64_t max,
    enum kind kind, uint64_t *out)
{
	return get_num_in(p, sect, NULL, key, min, max, kind, out);
}

/* A yes/no key; absent leaves *out unchanged. */
int
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

int
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

int
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

int
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
int
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

/* yes/no; *out keeps its value when the key is absent. */
int
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

/* The line of an unnamed section's key (0: not in the file). */
int
key_line(struct parse *p, const char *sect, const char *key)
{
	struct entry *e = NULL;

	if (get1(p, sect, NULL, key, &e) < 0 || e == NULL)
		return 0;
	return e->line;
}

int
key_set(struct parse *p, const char *sect, const char *key)
{
	struct entry *e = NULL;

	return get1(p, sect, NULL, key, &e) == 0 && e != NULL;
}

int
pair_line(struct parse *p, const char *sect, const char *key, const char *other)
{
	return key_set(p, sect, key) ? key_line(p, sect, key) : key_line(p, sect, other);
}
