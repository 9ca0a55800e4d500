/*
 * json.h — a small strict JSON reader and a canonical writer (pure, no I/O).
 *
 * Written for the audit log (auditlog.h), whose files an attacker may have
 * edited: the reader accepts RFC 8259 JSON with these restrictions, and
 * refuses everything else with the byte offset of the problem:
 *   - numbers are integers only (-?[0-9]+, no fraction or exponent, no
 *     leading zero) within int64_t;
 *   - strings must be valid UTF-8, may not contain \u0000 (decoded strings
 *     are NUL-terminated C strings), surrogate escapes must pair;
 *   - an object may not repeat a key (two readers could otherwise see two
 *     different records in one line);
 *   - nesting is at most JSON_DEPTH_MAX deep, input at most JSON_INPUT_MAX
 *     octets; whitespace is allowed between tokens, nothing after the value.
 *
 * The writer produces the canonical form the audit log hashes and signs:
 * no whitespace, members in the order written, strings escaped as
 * \" \\ \b \f \n \r \t and \u00XX for other control characters and DEL;
 * bytes that are not valid UTF-8 are written as U+FFFD.
 */
#ifndef SUBPROXY_JSON_H
#define SUBPROXY_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_DEPTH_MAX	8
#define JSON_INPUT_MAX	(1024 * 1024)

enum json_type { JSON_NULL, JSON_BOOL, JSON_INT, JSON_STR, JSON_ARR, JSON_OBJ };

/* A parsed value.  Arrays and objects hold their members as a list
 * (first/next); object members have `key` set.  Everything belongs to the
 * root returned by json_parse(). */
struct json {
	enum json_type type;
	char *key;			/* object member name, else NULL */
	int b;				/* JSON_BOOL */
	int64_t i;			/* JSON_INT */
	char *s;			/* JSON_STR: NUL-terminated UTF-8 */
	size_t slen;
	struct json *first, *next;	/* JSON_ARR, JSON_OBJ members */
	size_t n;			/* number of members */
};

/* Parse buf[0..len).  Returns 0 with *root_r, or -1 with one sentence naming
 * the offset in err ("offset 17: duplicate key \"seq\""). */
int json_parse(const char *buf, size_t len, struct json **root_r, char *err, size_t errlen);

/* Free a tree from json_parse(); *rootp = NULL.  NULL is a no-op. */
void json_free(struct json **rootp);

/* The member `key` of an object, or NULL (not an object, or no such key). */
const struct json *json_get(const struct json *obj, const char *key);
/* Typed lookups: NULL / -1 when the member is missing or of another type. */
const char *json_get_str(const struct json *obj, const char *key);
int json_get_int(const struct json *obj, const char *key, int64_t *v);
int json_get_bool(const struct json *obj, const char *key, int *v);

const char *json_type_name(enum json_type t);

/* ---- writer ---- */

/* A growable output buffer; `buf` is NUL-terminated after every call. */
struct jsonw {
	char *buf;
	size_t len, cap;
	size_t max;			/* 0: no limit; else `overflow` is set beyond it */
	int overflow;
	unsigned depth;
	unsigned char comma[JSON_DEPTH_MAX + 1];	/* a member was written at this depth */
	int after_key;
};

/* Start an empty writer; max = 0 means no size limit.  Nesting deeper than
 * JSON_DEPTH_MAX is a programming error (fatal). */
void jsonw_init(struct jsonw *w, size_t max);
void jsonw_free(struct jsonw *w);
/* Empty the buffer again (the allocation is kept). */
void jsonw_reset(struct jsonw *w);

void jsonw_obj_open(struct jsonw *w);
void jsonw_obj_close(struct jsonw *w);
void jsonw_arr_open(struct jsonw *w);
void jsonw_arr_close(struct jsonw *w);
/* A member name; the next value written is its value. */
void jsonw_key(struct jsonw *w, const char *key);
void jsonw_str(struct jsonw *w, const char *s);
void jsonw_strn(struct jsonw *w, const char *s, size_t n);
void jsonw_int(struct jsonw *w, int64_t v);
void jsonw_bool(struct jsonw *w, int v);
void jsonw_null(struct jsonw *w);
/* A parsed value (and everything below it), canonically. */
void jsonw_value(struct jsonw *w, const struct json *v);
/* Raw text appended as is (the caller vouches for it). */
void jsonw_raw(struct jsonw *w, const char *s, size_t n);

/* Shorthands for "key": value. */
void jsonw_kstr(struct jsonw *w, const char *key, const char *s);
void jsonw_kint(struct jsonw *w, const char *key, int64_t v);
void jsonw_kbool(struct jsonw *w, const char *key, int v);
/* "key": ["v[0]", ...] */
void jsonw_kstrs(struct jsonw *w, const char *key, char *const *v, size_t n);

/* Is buf[0..len) valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF)? */
int json_utf8_valid(const char *buf, size_t len);

#endif
