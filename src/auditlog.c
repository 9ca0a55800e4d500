/* auditlog.c — audit log records: schema, envelope, chain, checkpoints. */
#include "auditlog.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static const char *const type_names[ALOG_T_MAX] = {
	[ALOG_T_START] = "start",
	[ALOG_T_STOP] = "stop",
	[ALOG_T_OPEN] = "open",
	[ALOG_T_AUTH] = "auth",
	[ALOG_T_TXN] = "txn",
	[ALOG_T_REFUSAL] = "refusal",
	[ALOG_T_CHECKPOINT] = "checkpoint",
	[ALOG_T_GAP] = "gap",
	[ALOG_T_RECHECK] = "recheck",
};

const char *
alog_type_name(int type)
{
	if (type <= 0 || type >= ALOG_T_MAX)
		return NULL;
	return type_names[type];
}

int
alog_type_parse(const char *name)
{
	int t;

	for (t = 1; t < ALOG_T_MAX; t++)
		if (strcmp(type_names[t], name) == 0)
			return t;
	return -1;
}

int
alog_type_allowed(int type, enum alog_origin origin)
{
	switch (type) {
	case ALOG_T_START:
	case ALOG_T_STOP:
		return origin == ALOG_FROM_PARENT;
	case ALOG_T_AUTH:
	case ALOG_T_TXN:
	case ALOG_T_REFUSAL:
	case ALOG_T_RECHECK:
		return origin == ALOG_FROM_FRONT;
	case ALOG_T_OPEN:
	case ALOG_T_CHECKPOINT:
	case ALOG_T_GAP:
		return origin == ALOG_FROM_RECORDER;
	default:
		return 0;
	}
}

/* ---- schema (doc/audit-log.schema.json says the same for other readers) ---- */

#define REQ	ALOG_F_REQ
#define NUL	ALOG_F_NULL
#define ARR	ALOG_F_ARRAY
#define PER	ALOG_F_PERSONAL
#define FREE	ALOG_F_FREE
#define REC	ALOG_F_RECORDER

static const struct alog_field f_selfaudit[] = {
	{ "result", JSON_STR, REQ, NULL },
	{ "checks", JSON_INT, REQ, NULL },
	{ "passed", JSON_STR, REQ | ARR, NULL },
	{ "failed", JSON_STR, REQ | ARR, NULL },
	{ "warned", JSON_STR, REQ | ARR, NULL },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_start[] = {
	{ "version", JSON_STR, REQ, NULL },
	{ "hostname", JSON_STR, REQ, NULL },
	{ "config_sha256", JSON_STR, REQ, NULL },
	{ "profile", JSON_STR, REQ, NULL },
	{ "self_audit", JSON_OBJ, REQ, f_selfaudit },
	{ "required", JSON_BOOL, REQ, NULL },
	{ "pseudonymized", JSON_BOOL, REQ | REC, NULL },
	{ "key", JSON_STR, REQ | REC, NULL },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_stop[] = {
	{ "reason", JSON_STR, REQ, NULL },
	{ "detail", JSON_STR, 0, NULL },
	{ "status", JSON_INT, REQ, NULL },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_open[] = {
	{ "reason", JSON_STR, REQ | REC, NULL },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_auth[] = {
	{ "session", JSON_STR, REQ, NULL },
	{ "client", JSON_STR, REQ | PER, NULL },
	{ "login", JSON_STR, REQ | PER, NULL },
	{ "mechanism", JSON_STR, REQ, NULL },
	{ "result", JSON_STR, REQ, NULL },
	{ "lockout", JSON_BOOL, REQ, NULL },
	{ "closed", JSON_BOOL, REQ, NULL },
	{ "code", JSON_INT, REQ, NULL },
	{ "enh", JSON_STR, REQ, NULL },
	{ "count", JSON_INT, 0, NULL },		/* v2: a summary (auditagg.h) */
	{ "first", JSON_STR, 0, NULL },
	{ "last", JSON_STR, 0, NULL },
	{ "clients", JSON_INT, 0, NULL },	/* v3: a summary per kind */
	{ "clients_capped", JSON_BOOL, 0, NULL },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_tls[] = {
	{ "version", JSON_STR, REQ, NULL },
	{ "cipher", JSON_STR, REQ, NULL },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_rcpt[] = {
	{ "addr", JSON_STR, REQ | PER, NULL },
	{ "code", JSON_INT, REQ, NULL },
	{ "enh", JSON_STR, REQ, NULL },
	{ "text", JSON_STR, FREE, NULL },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_dkim[] = {
	{ "d", JSON_STR, REQ, NULL },
	{ "s", JSON_STR, REQ, NULL },
	{ "a", JSON_STR, REQ, NULL },
	{ "bh", JSON_STR, REQ, NULL },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_dane[] = {
	{ "verdict", JSON_STR, REQ, NULL },
	{ "tlsa", JSON_STR, REQ, NULL },
	{ "dnssec", JSON_STR, REQ, NULL },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_relay[] = {
	{ "name", JSON_STR, REQ, NULL },
	{ "address", JSON_STR, REQ, NULL },
	{ "tls", JSON_OBJ, REQ, f_tls },
	{ "dane", JSON_OBJ, REQ, f_dane },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_final[] = {
	{ "code", JSON_INT, REQ | NUL, NULL },	/* null only with unknown */
	{ "enh", JSON_STR, REQ | NUL, NULL },
	{ "text", JSON_STR, FREE, NULL },
	{ "local", JSON_BOOL, REQ, NULL },
	{ "unknown", JSON_STR, 0, NULL },	/* v4: no final reply awaited */
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_txn[] = {
	{ "session", JSON_STR, REQ, NULL },
	{ "login", JSON_STR, REQ | PER, NULL },
	{ "client", JSON_STR, REQ | PER, NULL },
	{ "client_tls", JSON_OBJ, REQ, f_tls },
	{ "from", JSON_STR, REQ | PER, NULL },
	{ "rcpts", JSON_OBJ, REQ | ARR, f_rcpt },
	{ "rcpts_omitted", JSON_INT, 0, NULL },
	{ "message_id", JSON_STR, REQ | NUL | PER, NULL },
	{ "size", JSON_INT, REQ, NULL },
	{ "sha256", JSON_STR, REQ | NUL, NULL },
	{ "dkim", JSON_OBJ, REQ | ARR, f_dkim },
	{ "relay", JSON_OBJ, REQ | NUL, f_relay },
	{ "final", JSON_OBJ, REQ, f_final },
	{ "latency_ms", JSON_INT, REQ, NULL },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_refusal[] = {
	{ "session", JSON_STR, REQ, NULL },
	{ "client", JSON_STR, REQ | PER, NULL },
	{ "login", JSON_STR, REQ | NUL | PER, NULL },
	{ "stage", JSON_STR, REQ, NULL },
	{ "code", JSON_INT, REQ, NULL },
	{ "enh", JSON_STR, REQ, NULL },
	{ "reason", JSON_STR, REQ, NULL },
	{ "text", JSON_STR, FREE, NULL },
	{ "count", JSON_INT, 0, NULL },		/* v2: a summary (auditagg.h) */
	{ "first", JSON_STR, 0, NULL },
	{ "last", JSON_STR, 0, NULL },
	{ "clients", JSON_INT, 0, NULL },	/* v3: a summary per kind */
	{ "clients_capped", JSON_BOOL, 0, NULL },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_checkpoint[] = {
	{ "records", JSON_INT, REQ | REC, NULL },
	{ "key", JSON_STR, REQ | REC, NULL },
	{ "sig", JSON_STR, REQ | REC, NULL },
	{ NULL, 0, 0, NULL }
};
static const struct alog_field f_gap[] = {
	{ "lost", JSON_INT, REQ | REC, NULL },
	{ "first", JSON_STR, REQ | REC, NULL },
	{ "last", JSON_STR, REQ | REC, NULL },
	{ NULL, 0, 0, NULL }
};

static const struct alog_field f_recheck[] = {
	{ "check", JSON_STR, REQ, NULL },
	{ "result", JSON_STR, REQ, NULL },
	{ "status", JSON_STR, REQ, NULL },
	{ "required", JSON_BOOL, REQ, NULL },
	{ "summary", JSON_STR, REQ, NULL },
	{ "remedy", JSON_STR, 0, NULL },
	{ NULL, 0, 0, NULL }
};

static const struct alog_field *const schemas[ALOG_T_MAX] = {
	[ALOG_T_START] = f_start,
	[ALOG_T_STOP] = f_stop,
	[ALOG_T_OPEN] = f_open,
	[ALOG_T_AUTH] = f_auth,
	[ALOG_T_TXN] = f_txn,
	[ALOG_T_REFUSAL] = f_refusal,
	[ALOG_T_CHECKPOINT] = f_checkpoint,
	[ALOG_T_GAP] = f_gap,
	[ALOG_T_RECHECK] = f_recheck,
};

const struct alog_field *
alog_schema(int type)
{
	if (type <= 0 || type >= ALOG_T_MAX)
		return NULL;
	return schemas[type];
}

static int check_object(const struct alog_field *fields, const struct json *obj,
    int from_client, const char *path, char *err, size_t errlen);

/* One value against its field (for arrays: one element). */
static int
check_value(const struct alog_field *f, const struct json *v, int from_client,
    const char *path, char *err, size_t errlen)
{
	if (v->type == JSON_NULL && (f->flags & ALOG_F_NULL) && !(f->flags & ALOG_F_ARRAY))
		return 0;
	if (v->type != f->type) {
		snprintf(err, errlen, "member %s must be %s%s, not %s", path,
		    json_type_name(f->type), (f->flags & ALOG_F_NULL) ? " or null" : "",
		    json_type_name(v->type));
		return -1;
	}
	if (f->type == JSON_OBJ && f->sub != NULL)
		return check_object(f->sub, v, from_client, path, err, errlen);
	return 0;
}

static int
check_object(const struct alog_field *fields, const struct json *obj, int from_client,
    const char *path, char *err, size_t errlen)
{
	const struct alog_field *f;
	const struct json *m, *e;
	char sub[160];

	for (m = obj->first; m != NULL; m = m->next) {
		for (f = fields; f->name != NULL && strcmp(f->name, m->key) != 0; f++)
			;
		snprintf(sub, sizeof(sub), "%s%s%.40s", path, path[0] ? "." : "", m->key);
		if (f->name == NULL) {
			snprintf(err, errlen, "unknown member %s", sub);
			return -1;
		}
		if (from_client && (f->flags & ALOG_F_RECORDER)) {
			snprintf(err, errlen, "member %s is written by the recorder only", sub);
			return -1;
		}
		if (!(f->flags & ALOG_F_ARRAY)) {
			if (check_value(f, m, from_client, sub, err, errlen) < 0)
				return -1;
			continue;
		}
		if (m->type != JSON_ARR) {
			snprintf(err, errlen, "member %s must be an array, not %s", sub,
			    json_type_name(m->type));
			return -1;
		}
		for (e = m->first; e != NULL; e = e->next)
			if (check_value(f, e, from_client, sub, err, errlen) < 0)
				return -1;
	}
	for (f = fields; f->name != NULL; f++) {
		if (!(f->flags & ALOG_F_REQ) || (from_client && (f->flags & ALOG_F_RECORDER)))
			continue;
		if (json_get(obj, f->name) == NULL) {
			snprintf(err, errlen, "member %s%s%s is missing", path, path[0] ? "." : "",
			    f->name);
			return -1;
		}
	}
	return 0;
}

/* An AUTH or refusal record that is a summary (auditagg.h) has count >= 1,
 * first and last; others have none of them.  A summary per kind has
 * "client": "*" and clients (1 to count), and clients_capped only as true. */
static int
summary_check(int type, const struct json *body, char *err, size_t errlen)
{
	const struct json *c = json_get(body, "count"), *k = json_get(body, "clients");
	const struct json *capped = json_get(body, "clients_capped");
	const char *first = json_get_str(body, "first"), *last = json_get_str(body, "last");
	const char *client = json_get_str(body, "client");
	int64_t t;

	if ((type != ALOG_T_AUTH && type != ALOG_T_REFUSAL) ||
	    (c == NULL && first == NULL && last == NULL && k == NULL && capped == NULL))
		return 0;
	if (c == NULL || first == NULL || last == NULL || c->i < 1 ||
	    alog_time_parse(first, &t) < 0 || alog_time_parse(last, &t) < 0) {
		snprintf(err, errlen, "a summary needs count (>= 1), first and last (times)");
		return -1;
	}
	if ((k == NULL && capped != NULL) || (capped != NULL && !capped->b) ||
	    (k != NULL && (k->i < 1 || k->i > c->i || client == NULL || strcmp(client, "*")))) {
		snprintf(err, errlen, "a summary per kind needs client \"*\" and clients (1 to "
		    "count), clients_capped only as true");
		return -1;
	}
	return 0;
}

/* A transaction's final reply has a code and an enhanced code; a final
 * outcome that is unknown (auditrec_txn_unknown) has neither, says why
 * ("session-ended") and is local. */
static int
final_check(int type, const struct json *body, char *err, size_t errlen)
{
	const struct json *fin = json_get(body, "final");
	const struct json *code = json_get(fin, "code"), *enh = json_get(fin, "enh");
	const struct json *local = json_get(fin, "local");
	const char *why = json_get_str(fin, "unknown");

	if (type != ALOG_T_TXN)
		return 0;
	if (json_get(fin, "unknown") == NULL) {
		if (code->type == JSON_NULL || enh->type == JSON_NULL) {
			snprintf(err, errlen, "member final: code and enh are null only with "
			    "unknown");
			return -1;
		}
		return 0;
	}
	if (why == NULL || strcmp(why, "session-ended") != 0 || code->type != JSON_NULL ||
	    enh->type != JSON_NULL || !local->b) {
		snprintf(err, errlen, "member final: an unknown outcome is \"session-ended\", "
		    "with code and enh null and local true");
		return -1;
	}
	return 0;
}

int
alog_body_check(int type, const struct json *body, int from_client, char *err, size_t errlen)
{
	const struct alog_field *fields = alog_schema(type);

	if (fields == NULL) {
		snprintf(err, errlen, "unknown record type %d", type);
		return -1;
	}
	if (body == NULL || body->type != JSON_OBJ) {
		snprintf(err, errlen, "the body must be an object");
		return -1;
	}
	if (check_object(fields, body, from_client, "", err, errlen) < 0 ||
	    final_check(type, body, err, errlen) < 0)
		return -1;
	return summary_check(type, body, err, errlen);
}

struct json
alog_body(const struct json *rec)
{
	struct json view;
	const struct json *m = rec->first;
	int i;

	memset(&view, 0, sizeof(view));
	view.type = JSON_OBJ;
	for (i = 0; i < 5 && m != NULL; i++)
		m = m->next;
	view.first = (struct json *)(uintptr_t)m;
	view.n = rec->n >= 5 ? rec->n - 5 : 0;
	return view;
}

/* A record of an older version: nothing a later one added. */
static int
version_check(int64_t v, int type, const struct json *body, char *err, size_t errlen)
{
	if (v < 4 && type == ALOG_T_TXN && json_get(json_get(body, "final"), "unknown") != NULL) {
		snprintf(err, errlen, "member final.unknown is not in schema version %lld",
		    (long long)v);
		return -1;
	}
	if (v < 3 && (json_get(body, "clients") != NULL ||
	    json_get(body, "clients_capped") != NULL)) {
		snprintf(err, errlen, "members clients and clients_capped are not in schema "
		    "version %lld", (long long)v);
		return -1;
	}
	if (v >= 2)
		return 0;
	if (type == ALOG_T_RECHECK) {
		snprintf(err, errlen, "record type recheck is not in schema version 1");
		return -1;
	}
	if ((type == ALOG_T_AUTH || type == ALOG_T_REFUSAL) && (json_get(body, "count") != NULL ||
	    json_get(body, "first") != NULL || json_get(body, "last") != NULL)) {
		snprintf(err, errlen, "members count, first and last are not in schema version 1");
		return -1;
	}
	return 0;
}

int
alog_record_check(const struct json *rec, struct alog_env *env, char *err, size_t errlen)
{
	static const char *const names[5] = { "v", "seq", "time", "type", "prev" };
	static const enum json_type types[5] = { JSON_INT, JSON_INT, JSON_STR, JSON_STR, JSON_STR };
	const struct json *m, *mv[5];
	struct json body;
	int i;

	if (rec->type != JSON_OBJ) {
		snprintf(err, errlen, "not a JSON object");
		return -1;
	}
	for (i = 0, m = rec->first; i < 5; i++, m = m->next) {
		if (m == NULL || strcmp(m->key, names[i]) != 0 || m->type != types[i]) {
			snprintf(err, errlen, "the envelope must begin with v, seq, time, type, prev "
			    "(member %d is not %s %s)", i + 1, json_type_name(types[i]), names[i]);
			return -1;
		}
		mv[i] = m;
	}
	if (mv[0]->i < 1 || mv[0]->i > ALOG_VERSION) {
		snprintf(err, errlen, "schema version %lld is not 1 to %d", (long long)mv[0]->i,
		    ALOG_VERSION);
		return -1;
	}
	if (mv[1]->i < 1) {
		snprintf(err, errlen, "seq %lld is not a record number", (long long)mv[1]->i);
		return -1;
	}
	env->seq = (uint64_t)mv[1]->i;
	env->time = mv[2]->s;
	if (mv[2]->slen != ALOG_TIME_LEN || alog_time_parse(mv[2]->s, &env->time_ms) < 0) {
		snprintf(err, errlen, "time \"%.40s\" is not YYYY-MM-DDTHH:MM:SS.mmmZ", mv[2]->s);
		return -1;
	}
	if ((env->type = alog_type_parse(mv[3]->s)) < 0) {
		snprintf(err, errlen, "unknown record type \"%.40s\"", mv[3]->s);
		return -1;
	}
	if (alog_unhex(mv[4]->s, env->prev, ALOG_HASH_LEN) < 0) {
		snprintf(err, errlen, "prev is not 64 lower-case hex digits");
		return -1;
	}
	body = alog_body(rec);
	if (check_object(schemas[env->type], &body, 0, "", err, errlen) < 0 ||
	    final_check(env->type, &body, err, errlen) < 0 ||
	    summary_check(env->type, &body, err, errlen) < 0)
		return -1;
	return version_check(mv[0]->i, env->type, &body, err, errlen);
}

/* ---- pseudonyms ---- */

void
alog_pseudonym(const uint8_t *key, const char *value, size_t len, char *out)
{
	uint8_t h[16];

	crypto_generichash(h, sizeof(h), (const unsigned char *)value, len, key,
	    ALOG_PSEUDO_KEY_LEN);
	memcpy(out, "h:", 2);
	alog_hex(h, sizeof(h), out + 2);
}

static void
pseudo_value(const struct alog_field *f, struct json *v, const uint8_t *key);

/* keep: a member left as it is. */
static void
pseudo_object(const struct alog_field *fields, struct json *obj, const uint8_t *key,
    const struct json *keep)
{
	const struct alog_field *f;
	struct json **pp, *m, *e;

	for (pp = &obj->first; (m = *pp) != NULL;) {
		for (f = fields; f->name != NULL && strcmp(f->name, m->key) != 0; f++)
			;
		if (f->name != NULL && (f->flags & ALOG_F_FREE)) {
			*pp = m->next;
			m->next = NULL;
			obj->n--;
			json_free(&m);
			continue;
		}
		if (f->name != NULL && m != keep) {
			if (f->flags & ALOG_F_ARRAY) {
				if (m->type == JSON_ARR)
					for (e = m->first; e != NULL; e = e->next)
						pseudo_value(f, e, key);
			} else
				pseudo_value(f, m, key);
		}
		pp = &m->next;
	}
}

static void
pseudo_value(const struct alog_field *f, struct json *v, const uint8_t *key)
{
	char h[40];

	if (v->type == JSON_STR && (f->flags & ALOG_F_PERSONAL)) {
		alog_pseudonym(key, v->s, v->slen, h);
		free(v->s);
		v->s = xstrdup(h);
		v->slen = strlen(h);
	} else if (v->type == JSON_OBJ && f->sub != NULL)
		pseudo_object(f->sub, v, key, NULL);
}

void
alog_pseudonymize(int type, struct json *body, const uint8_t *key)
{
	const struct alog_field *fields = alog_schema(type);
	const struct json *client;

	if (fields == NULL || body == NULL || body->type != JSON_OBJ)
		return;
	/* a summary per kind names no client: its "*" stays */
	client = json_get(body, "clients") != NULL ? json_get(body, "client") : NULL;
	if (client != NULL && (client->type != JSON_STR || strcmp(client->s, "*") != 0))
		client = NULL;
	pseudo_object(fields, body, key, client);
}

/* ---- encoding ---- */

void
alog_hash(const char *line, size_t len, uint8_t out[ALOG_HASH_LEN])
{
	crypto_hash_sha256(out, (const unsigned char *)line, len);
}

void
alog_hex(const uint8_t *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
alog_unhex(const char *hex, uint8_t *out, size_t n)
{
	size_t i;
	int hi, lo;

	if (strlen(hex) != 2 * n)
		return -1;
	for (i = 0; i < n; i++) {
		if ((hi = hexval(hex[2 * i])) < 0 || (lo = hexval(hex[2 * i + 1])) < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date, and back
 * (H. Hinnant's algorithms). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y_r, unsigned *m_r, unsigned *d_r)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d_r = doy - (153 * mp + 2) / 5 + 1;
	*m_r = mp < 10 ? mp + 3 : mp - 9;
	*y_r = (int64_t)yoe + era * 400 + (*m_r <= 2);
}

static void
put_digits(char *o, int n, unsigned v)
{
	while (n-- > 0) {
		o[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

void
alog_time_format(int64_t ms, char *out)
{
	int64_t days, y, secs;
	unsigned m, d;

	if (ms < 0)
		ms = 0;
	if (ms > 253402300799999LL)		/* 9999-12-31T23:59:59.999Z */
		ms = 253402300799999LL;
	days = ms / 86400000;
	secs = (ms / 1000) % 86400;
	civil_from_days(days, &y, &m, &d);
	/* every field is in range: build it digit by digit (no truncation to
	 * argue about with the compiler) */
	put_digits(out, 4, (unsigned)y);
	out[4] = '-';
	put_digits(out + 5, 2, m);
	out[7] = '-';
	put_digits(out + 8, 2, d);
	out[10] = 'T';
	put_digits(out + 11, 2, (unsigned)(secs / 3600));
	out[13] = ':';
	put_digits(out + 14, 2, (unsigned)(secs / 60 % 60));
	out[16] = ':';
	put_digits(out + 17, 2, (unsigned)(secs % 60));
	out[19] = '.';
	put_digits(out + 20, 3, (unsigned)(ms % 1000));
	out[23] = 'Z';
	out[24] = '\0';
}

/* n decimal digits at s into *v. */
static int
digits(const char *s, int n, int *v)
{
	int i, r = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		r = r * 10 + (s[i] - '0');
	}
	*v = r;
	return 0;
}

int
alog_time_parse(const char *s, int64_t *ms_r)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
	size_t len = strlen(s);
	static const unsigned char mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (len < 10 || digits(s, 4, &y) < 0 || s[4] != '-' || digits(s + 5, 2, &mo) < 0 ||
	    s[7] != '-' || digits(s + 8, 2, &d) < 0)
		return -1;
	if (len == 10)
		;
	else if ((len == 20 || len == 24) && s[10] == 'T' && digits(s + 11, 2, &h) == 0 &&
	    s[13] == ':' && digits(s + 14, 2, &mi) == 0 && s[16] == ':' &&
	    digits(s + 17, 2, &sec) == 0 && s[len - 1] == 'Z') {
		if (len == 24 && (s[19] != '.' || digits(s + 20, 3, &frac) < 0))
			return -1;
	} else
		return -1;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
	    sec > 59 || (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))))
		return -1;
	*ms_r = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 24 + h) * 60 + mi) * 60000 +
	    (int64_t)sec * 1000 + frac;
	return 0;
}

/* The envelope, open (no closing brace). */
static void
envelope(struct jsonw *w, const struct alog_chain *c, int type, int64_t time_ms)
{
	char t[ALOG_TIME_LEN + 1], hex[ALOG_HEX_LEN + 1];

	jsonw_reset(w);
	jsonw_obj_open(w);
	jsonw_kint(w, "v", ALOG_VERSION);
	jsonw_kint(w, "seq", (int64_t)(c->seq + 1));
	alog_time_format(time_ms, t);
	jsonw_kstr(w, "time", t);
	jsonw_kstr(w, "type", alog_type_name(type));
	alog_hex(c->head, ALOG_HASH_LEN, hex);
	jsonw_kstr(w, "prev", hex);
}

/* The record in w is complete: advance the chain. */
static int
advance(struct jsonw *w, struct alog_chain *c)
{
	if (w->overflow || w->len > ALOG_LINE_MAX)
		return -1;
	alog_hash(w->buf, w->len, c->head);
	c->seq++;
	return 0;
}

int
alog_encode(struct jsonw *w, struct alog_chain *c, int type, int64_t time_ms,
    const char *body_obj, size_t body_len)
{
	if (alog_type_name(type) == NULL || type == ALOG_T_CHECKPOINT || body_len < 2 ||
	    body_obj[0] != '{' || body_obj[body_len - 1] != '}')
		return -1;
	envelope(w, c, type, time_ms);
	if (body_len > 2) {
		jsonw_raw(w, ",", 1);
		jsonw_raw(w, body_obj + 1, body_len - 2);
	}
	/* the members were raw text: close by hand, keeping the writer's depth */
	jsonw_obj_close(w);
	return advance(w, c);
}

void
alog_key_b64(const uint8_t pk[ALOG_PK_LEN], char *out, size_t outlen)
{
	sodium_bin2base64(out, outlen, pk, ALOG_PK_LEN, sodium_base64_VARIANT_ORIGINAL);
}

int
alog_key_unb64(const char *b64, uint8_t pk[ALOG_PK_LEN])
{
	size_t n = 0;
	const char *end = NULL;

	if (sodium_base642bin(pk, ALOG_PK_LEN, b64, strlen(b64), NULL, &n, &end,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || n != ALOG_PK_LEN || *end != '\0')
		return -1;
	return 0;
}

/* Ed25519 over the signing domain and the signed part of a checkpoint. */
static void
sig_message(const char *prefix, size_t len, unsigned char **msg_r, size_t *n_r)
{
	size_t dl = strlen(ALOG_SIG_DOMAIN);
	unsigned char *m = xmalloc(dl + len);

	memcpy(m, ALOG_SIG_DOMAIN, dl);
	memcpy(m + dl, prefix, len);
	*msg_r = m;
	*n_r = dl + len;
}

int
alog_encode_checkpoint(struct jsonw *w, struct alog_chain *c, int64_t time_ms,
    uint64_t records, const uint8_t *pk, const uint8_t *sk)
{
	unsigned char sig[ALOG_SIG_LEN], *msg;
	char b64[sodium_base64_ENCODED_LEN(ALOG_SIG_LEN, sodium_base64_VARIANT_ORIGINAL)];
	size_t n;

	envelope(w, c, ALOG_T_CHECKPOINT, time_ms);
	jsonw_kint(w, "records", (int64_t)records);
	alog_key_b64(pk, b64, sizeof(b64));
	jsonw_kstr(w, "key", b64);
	if (w->overflow)
		return -1;
	sig_message(w->buf, w->len, &msg, &n);
	crypto_sign_detached(sig, NULL, msg, n, sk);
	free(msg);
	sodium_bin2base64(b64, sizeof(b64), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
	jsonw_kstr(w, "sig", b64);
	jsonw_obj_close(w);
	return advance(w, c);
}

int
alog_checkpoint_verify(const char *line, size_t len, const uint8_t *pk)
{
	static const char marker[] = ",\"sig\":\"";
	const char *p = NULL, *q;
	unsigned char sig[ALOG_SIG_LEN], *msg;
	size_t n, siglen = 0, i;
	const char *end = NULL;
	int rc;

	/* the last ,"sig":" in the line; the signature runs to "} at the end */
	for (i = 0; i + sizeof(marker) - 1 <= len; i++)
		if (memcmp(line + i, marker, sizeof(marker) - 1) == 0)
			p = line + i;
	if (p == NULL || len < 2 || line[len - 1] != '}' || line[len - 2] != '"')
		return -1;
	q = p + sizeof(marker) - 1;
	if (sodium_base642bin(sig, sizeof(sig), q, (size_t)(line + len - 2 - q), NULL, &siglen,
	    &end, sodium_base64_VARIANT_ORIGINAL) != 0 || siglen != sizeof(sig) ||
	    end != line + len - 2)
		return -1;
	sig_message(line, (size_t)(p - line), &msg, &n);
	rc = crypto_sign_verify_detached(sig, msg, n, pk);
	free(msg);
	return rc == 0 ? 0 : -1;
}
