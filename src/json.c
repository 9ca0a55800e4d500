/* json.c — strict JSON reader, canonical writer. */
#include "json.h"
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jp {
	const char *buf;
	size_t len, pos;
	char *err;
	size_t errlen;
	int failed;
};

static void jp_fail(struct jp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
jp_fail(struct jp *p, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	if (p->failed)
		return;
	p->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "offset %zu: %s", p->pos, msg);
}

const char *
json_type_name(enum json_type t)
{
	switch (t) {
	case JSON_NULL:	return "null";
	case JSON_BOOL:	return "boolean";
	case JSON_INT:	return "integer";
	case JSON_STR:	return "string";
	case JSON_ARR:	return "array";
	case JSON_OBJ:	return "object";
	}
	return "unknown";
}

/* Length of the UTF-8 sequence at s[0..n) and its code point, or 0 when it
 * is not valid (overlong, surrogate, above U+10FFFF, truncated). */
static size_t
utf8_seq(const unsigned char *s, size_t n, uint32_t *cp_r)
{
	uint32_t cp;
	size_t k, i;

	if (n == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		k = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		k = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		k = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < k)
		return 0;
	for (i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return k;
}

int
json_utf8_valid(const char *buf, size_t len)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t i = 0, k;
	uint32_t cp;

	while (i < len) {
		if ((k = utf8_seq(s + i, len - i, &cp)) == 0)
			return 0;
		i += k;
	}
	return 1;
}

static void
jp_ws(struct jp *p)
{
	while (p->pos < p->len && (p->buf[p->pos] == ' ' || p->buf[p->pos] == '\t' ||
	    p->buf[p->pos] == '\n' || p->buf[p->pos] == '\r'))
		p->pos++;
}

static int
hex4(const char *s, uint32_t *v)
{
	uint32_t r = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = s[i];

		r <<= 4;
		if (c >= '0' && c <= '9')
			r |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			r |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			r |= (uint32_t)(c - 'A' + 10);
		else
			return -1;
	}
	*v = r;
	return 0;
}

static size_t
utf8_put(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* One \uXXXX escape (and its low surrogate) at p->pos (after "\u"). */
static int
jp_unicode(struct jp *p, uint32_t *cp_r)
{
	uint32_t hi, lo;

	if (p->len - p->pos < 4 || hex4(p->buf + p->pos, &hi) < 0) {
		jp_fail(p, "bad \\u escape");
		return -1;
	}
	p->pos += 4;
	if (hi >= 0xdc00 && hi <= 0xdfff) {
		jp_fail(p, "unpaired low surrogate");
		return -1;
	}
	if (hi >= 0xd800 && hi <= 0xdbff) {
		if (p->len - p->pos < 6 || p->buf[p->pos] != '\\' || p->buf[p->pos + 1] != 'u' ||
		    hex4(p->buf + p->pos + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
			jp_fail(p, "unpaired high surrogate");
			return -1;
		}
		p->pos += 6;
		hi = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (hi == 0) {
		jp_fail(p, "\\u0000 is not allowed");
		return -1;
	}
	*cp_r = hi;
	return 0;
}

/* A string at p->pos (the opening quote); a new allocation. */
static char *
jp_string(struct jp *p, size_t *len_r)
{
	size_t start, o = 0, k;
	char *out;
	uint32_t cp;

	p->pos++;
	start = p->pos;
	/* decoded text is never longer than its source: find the closing
	 * quote first, so that the allocation fits this string only */
	for (k = start; k < p->len && p->buf[k] != '"'; k++)
		if (p->buf[k] == '\\' && k + 1 < p->len)
			k++;
	out = xmalloc(k - start + 1);
	while (p->pos < p->len) {
		unsigned char c = (unsigned char)p->buf[p->pos];

		if (c == '"') {
			p->pos++;
			out[o] = '\0';
			*len_r = o;
			return out;
		}
		if (c < 0x20) {
			jp_fail(p, "control character in a string");
			break;
		}
		if (c == '\\') {
			if (++p->pos == p->len)
				break;
			c = (unsigned char)p->buf[p->pos++];
			switch (c) {
			case '"': case '\\': case '/':
				out[o++] = (char)c;
				continue;
			case 'b': out[o++] = '\b'; continue;
			case 'f': out[o++] = '\f'; continue;
			case 'n': out[o++] = '\n'; continue;
			case 'r': out[o++] = '\r'; continue;
			case 't': out[o++] = '\t'; continue;
			case 'u':
				if (jp_unicode(p, &cp) < 0)
					goto fail;
				o += utf8_put(out + o, cp);
				continue;
			default:
				p->pos--;
				jp_fail(p, "bad escape \\%c", c >= 0x20 && c < 0x7f ? c : '?');
				goto fail;
			}
		}
		if ((k = utf8_seq((const unsigned char *)p->buf + p->pos, p->len - p->pos, &cp)) ==
		    0) {
			jp_fail(p, "invalid UTF-8");
			goto fail;
		}
		memcpy(out + o, p->buf + p->pos, k);
		o += k;
		p->pos += k;
	}
	jp_fail(p, "unterminated string");
fail:
	free(out);
	return NULL;
}

static int
jp_int(struct jp *p, int64_t *v)
{
	int neg = 0;
	uint64_t r = 0, lim;
	size_t start;

	if (p->buf[p->pos] == '-') {
		neg = 1;
		p->pos++;
	}
	start = p->pos;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	while (p->pos < p->len && p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9') {
		unsigned d = (unsigned)(p->buf[p->pos] - '0');

		if (r > (lim - d) / 10) {
			jp_fail(p, "integer out of range");
			return -1;
		}
		r = r * 10 + d;
		p->pos++;
	}
	if (p->pos == start || (p->pos - start > 1 && p->buf[start] == '0')) {
		jp_fail(p, "malformed number");
		return -1;
	}
	if (p->pos < p->len && (p->buf[p->pos] == '.' || p->buf[p->pos] == 'e' ||
	    p->buf[p->pos] == 'E')) {
		jp_fail(p, "only integers are allowed");
		return -1;
	}
	*v = neg ? (int64_t)(0 - r) : (int64_t)r;
	return 0;
}

static int
jp_word(struct jp *p, const char *w)
{
	size_t n = strlen(w);

	if (p->len - p->pos < n || memcmp(p->buf + p->pos, w, n) != 0) {
		jp_fail(p, "unexpected character");
		return -1;
	}
	p->pos += n;
	return 0;
}

static struct json *jp_value(struct jp *p, unsigned depth);

/* Members of an array or object, after the opening bracket. */
static int
jp_members(struct jp *p, struct json *v, unsigned depth)
{
	char close = v->type == JSON_OBJ ? '}' : ']';
	struct json **tail = &v->first, *m, *q;
	char *key = NULL;
	size_t klen, kpos;

	jp_ws(p);
	if (p->pos < p->len && p->buf[p->pos] == close) {
		p->pos++;
		return 0;
	}
	for (;;) {
		jp_ws(p);
		if (v->type == JSON_OBJ) {
			kpos = p->pos;
			if (p->pos >= p->len || p->buf[p->pos] != '"') {
				jp_fail(p, "expected a member name");
				return -1;
			}
			if ((key = jp_string(p, &klen)) == NULL)
				return -1;
			for (q = v->first; q != NULL; q = q->next)
				if (strcmp(q->key, key) == 0) {
					p->pos = kpos;
					jp_fail(p, "duplicate key \"%.40s\"", key);
					free(key);
					return -1;
				}
			jp_ws(p);
			if (p->pos >= p->len || p->buf[p->pos] != ':') {
				jp_fail(p, "expected ':'");
				free(key);
				return -1;
			}
			p->pos++;
		}
		if ((m = jp_value(p, depth + 1)) == NULL) {
			free(key);
			return -1;
		}
		m->key = key;
		key = NULL;
		*tail = m;
		tail = &m->next;
		v->n++;
		jp_ws(p);
		if (p->pos < p->len && p->buf[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->buf[p->pos] == close) {
			p->pos++;
			return 0;
		}
		jp_fail(p, "expected ',' or '%c'", close);
		return -1;
	}
}

static struct json *
jp_value(struct jp *p, unsigned depth)
{
	struct json *v;
	char c;

	jp_ws(p);
	if (p->pos >= p->len) {
		jp_fail(p, "unexpected end of input");
		return NULL;
	}
	if (depth > JSON_DEPTH_MAX) {
		jp_fail(p, "nested deeper than %d", JSON_DEPTH_MAX);
		return NULL;
	}
	v = xcalloc(1, sizeof(*v));
	c = p->buf[p->pos];
	switch (c) {
	case '{':
	case '[':
		v->type = c == '{' ? JSON_OBJ : JSON_ARR;
		p->pos++;
		if (jp_members(p, v, depth) < 0)
			goto fail;
		return v;
	case '"':
		v->type = JSON_STR;
		if ((v->s = jp_string(p, &v->slen)) == NULL)
			goto fail;
		return v;
	case 't':
	case 'f':
		v->type = JSON_BOOL;
		v->b = c == 't';
		if (jp_word(p, v->b ? "true" : "false") < 0)
			goto fail;
		return v;
	case 'n':
		v->type = JSON_NULL;
		if (jp_word(p, "null") < 0)
			goto fail;
		return v;
	default:
		if (c == '-' || (c >= '0' && c <= '9')) {
			v->type = JSON_INT;
			if (jp_int(p, &v->i) < 0)
				goto fail;
			return v;
		}
		jp_fail(p, "unexpected character");
		goto fail;
	}
fail:
	json_free(&v);
	return NULL;
}

int
json_parse(const char *buf, size_t len, struct json **root_r, char *err, size_t errlen)
{
	struct jp p;
	struct json *v;

	memset(&p, 0, sizeof(p));
	p.buf = buf;
	p.len = len;
	p.err = err;
	p.errlen = errlen;
	*root_r = NULL;
	if (len > JSON_INPUT_MAX) {
		snprintf(err, errlen, "offset 0: longer than %d octets", JSON_INPUT_MAX);
		return -1;
	}
	if ((v = jp_value(&p, 1)) == NULL)
		return -1;
	jp_ws(&p);
	if (p.pos != p.len) {
		jp_fail(&p, "text after the value");
		json_free(&v);
		return -1;
	}
	*root_r = v;
	return 0;
}

void
json_free(struct json **rootp)
{
	struct json *v, *m, *next;

	if (rootp == NULL || (v = *rootp) == NULL)
		return;
	*rootp = NULL;
	for (m = v->first; m != NULL; m = next) {
		next = m->next;
		json_free(&m);
	}
	free(v->key);
	free(v->s);
	free(v);
}

const struct json *
json_get(const struct json *obj, const char *key)
{
	const struct json *m;

	if (obj == NULL || obj->type != JSON_OBJ)
		return NULL;
	for (m = obj->first; m != NULL; m = m->next)
		if (strcmp(m->key, key) == 0)
			return m;
	return NULL;
}

const char *
json_get_str(const struct json *obj, const char *key)
{
	const struct json *m = json_get(obj, key);

	return m != NULL && m->type == JSON_STR ? m->s : NULL;
}

int
json_get_int(const struct json *obj, const char *key, int64_t *v)
{
	const struct json *m = json_get(obj, key);

	if (m == NULL || m->type != JSON_INT)
		return -1;
	*v = m->i;
	return 0;
}

int
json_get_bool(const struct json *obj, const char *key, int *v)
{
	const struct json *m = json_get(obj, key);

	if (m == NULL || m->type != JSON_BOOL)
		return -1;
	*v = m->b;
	return 0;
}

/* ---- writer ---- */

void
jsonw_init(struct jsonw *w, size_t max)
{
	memset(w, 0, sizeof(*w));
	w->max = max;
	w->cap = 256;
	w->buf = xmalloc(w->cap);
	w->buf[0] = '\0';
}

void
jsonw_free(struct jsonw *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

void
jsonw_reset(struct jsonw *w)
{
	w->len = 0;
	w->buf[0] = '\0';
	w->overflow = 0;
	w->depth = 0;
	w->after_key = 0;
	memset(w->comma, 0, sizeof(w->comma));
}

void
jsonw_raw(struct jsonw *w, const char *s, size_t n)
{
	if (w->overflow)
		return;
	if (w->max > 0 && n > w->max - w->len) {
		w->overflow = 1;
		return;
	}
	if (w->len + n + 1 > w->cap) {
		while (w->len + n + 1 > w->cap)
			w->cap *= 2;
		w->buf = xrealloc(w->buf, w->cap);
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

/* The separator before a value (or a key) at the current depth. */
static void
w_sep(struct jsonw *w)
{
	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	if (w->comma[w->depth])
		jsonw_raw(w, ",", 1);
	w->comma[w->depth] = 1;
}

static void
w_open(struct jsonw *w, char c)
{
	w_sep(w);
	if (w->depth >= JSON_DEPTH_MAX)
		fatal("json writer: nested deeper than %d", JSON_DEPTH_MAX);
	jsonw_raw(w, &c, 1);
	w->depth++;
	w->comma[w->depth] = 0;
}

static void
w_close(struct jsonw *w, char c)
{
	if (w->depth == 0)
		fatal("json writer: close without open");
	w->depth--;
	jsonw_raw(w, &c, 1);
}

void jsonw_obj_open(struct jsonw *w) { w_open(w, '{'); }
void jsonw_obj_close(struct jsonw *w) { w_close(w, '}'); }
void jsonw_arr_open(struct jsonw *w) { w_open(w, '['); }
void jsonw_arr_close(struct jsonw *w) { w_close(w, ']'); }

static void
w_string(struct jsonw *w, const char *str, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run, k;
	uint32_t cp;
	char esc[8];

	jsonw_raw(w, "\"", 1);
	while (i < n) {
		/* copy the longest run that needs no escaping at once */
		for (run = i; run < n && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' &&
		    s[run] != '\\'; run++)
			;
		if (run > i) {
			jsonw_raw(w, str + i, run - i);
			i = run;
			continue;
		}
		switch (s[i]) {
		case '"':  jsonw_raw(w, "\\\"", 2); i++; continue;
		case '\\': jsonw_raw(w, "\\\\", 2); i++; continue;
		case '\b': jsonw_raw(w, "\\b", 2); i++; continue;
		case '\f': jsonw_raw(w, "\\f", 2); i++; continue;
		case '\n': jsonw_raw(w, "\\n", 2); i++; continue;
		case '\r': jsonw_raw(w, "\\r", 2); i++; continue;
		case '\t': jsonw_raw(w, "\\t", 2); i++; continue;
		default:
			break;
		}
		if (s[i] < 0x20 || s[i] == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[s[i] >> 4];
			esc[5] = hex[s[i] & 15];
			jsonw_raw(w, esc, 6);
			i++;
			continue;
		}
		if ((k = utf8_seq(s + i, n - i, &cp)) == 0) {
			jsonw_raw(w, "\xef\xbf\xbd", 3);	/* U+FFFD */
			i++;
			continue;
		}
		jsonw_raw(w, str + i, k);
		i += k;
	}
	jsonw_raw(w, "\"", 1);
}

void
jsonw_key(struct jsonw *w, const char *key)
{
	w_sep(w);
	w_string(w, key, strlen(key));
	jsonw_raw(w, ":", 1);
	w->after_key = 1;
}

void
jsonw_strn(struct jsonw *w, const char *s, size_t n)
{
	w_sep(w);
	w_string(w, s, n);
}

void
jsonw_str(struct jsonw *w, const char *s)
{
	jsonw_strn(w, s, strlen(s));
}

void
jsonw_int(struct jsonw *w, int64_t v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%lld", (long long)v);

	w_sep(w);
	jsonw_raw(w, buf, (size_t)n);
}

void
jsonw_bool(struct jsonw *w, int v)
{
	w_sep(w);
	jsonw_raw(w, v ? "true" : "false", v ? 4 : 5);
}

void
jsonw_null(struct jsonw *w)
{
	w_sep(w);
	jsonw_raw(w, "null", 4);
}

void
jsonw_value(struct jsonw *w, const struct json *v)
{
	const struct json *m;

	switch (v->type) {
	case JSON_NULL:	jsonw_null(w); return;
	case JSON_BOOL:	jsonw_bool(w, v->b); return;
	case JSON_INT:	jsonw_int(w, v->i); return;
	case JSON_STR:	jsonw_strn(w, v->s, v->slen); return;
	case JSON_ARR:
		jsonw_arr_open(w);
		for (m = v->first; m != NULL; m = m->next)
			jsonw_value(w, m);
		jsonw_arr_close(w);
		return;
	case JSON_OBJ:
		jsonw_obj_open(w);
		for (m = v->first; m != NULL; m = m->next) {
			jsonw_key(w, m->key);
			jsonw_value(w, m);
		}
		jsonw_obj_close(w);
		return;
	}
}

void
jsonw_kstr(struct jsonw *w, const char *key, const char *s)
{
	jsonw_key(w, key);
	if (s == NULL)
		jsonw_null(w);
	else
		jsonw_str(w, s);
}

void
jsonw_kint(struct jsonw *w, const char *key, int64_t v)
{
	jsonw_key(w, key);
	jsonw_int(w, v);
}

void
jsonw_kbool(struct jsonw *w, const char *key, int v)
{
	jsonw_key(w, key);
	jsonw_bool(w, v);
}

void
jsonw_kstrs(struct jsonw *w, const char *key, char *const *v, size_t n)
{
	size_t i;

	jsonw_key(w, key);
	jsonw_arr_open(w);
	for (i = 0; i < n; i++)
		jsonw_str(w, v[i]);
	jsonw_arr_close(w);
}
