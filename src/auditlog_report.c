/* auditlog_report.c — aggregating audit records into a compliance report. */
#include "auditlog_report.h"
#include "audit.h"
#include "json.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS		86400000LL
#define HOUR_MS		3600000LL

/* ---- counters ---- */

static size_t
hash_str(const char *s)
{
	size_t h = 1469598103934665603ULL;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static void
counts_rehash(struct alog_counts *c)
{
	size_t i, j;

	free(c->slots);
	c->nslots = c->nslots ? c->nslots * 2 : 64;
	c->slots = xcalloc(c->nslots, sizeof(*c->slots));
	for (i = 0; i < c->n; i++) {
		for (j = hash_str(c->v[i].key) & (c->nslots - 1); c->slots[j] != 0;
		    j = (j + 1) & (c->nslots - 1))
			;
		c->slots[j] = i + 1;
	}
}

static size_t *
counts_slot(const struct alog_counts *c, const char *key)
{
	size_t j;

	if (c->nslots == 0)
		return NULL;
	for (j = hash_str(key) & (c->nslots - 1); c->slots[j] != 0; j = (j + 1) & (c->nslots - 1))
		if (strcmp(c->v[c->slots[j] - 1].key, key) == 0)
			return &c->slots[j];
	return &c->slots[j];
}

const struct alog_count *
alog_counts_get(const struct alog_counts *c, const char *key)
{
	size_t *s = counts_slot(c, key);

	return s != NULL && *s != 0 ? &c->v[*s - 1] : NULL;
}

struct alog_count *
alog_counts_add(struct alog_counts *c, const char *key, int i, uint64_t n)
{
	struct alog_count *e;
	size_t *s;

	if (c->nslots == 0 || (c->n + 1) * 2 > c->nslots)
		counts_rehash(c);
	s = counts_slot(c, key);
	if (*s == 0) {
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 16;
			c->v = xreallocarray(c->v, c->cap, sizeof(*c->v));
		}
		memset(&c->v[c->n], 0, sizeof(c->v[c->n]));
		c->v[c->n].key = xstrdup(key);
		*s = ++c->n;
	}
	e = &c->v[*s - 1];
	e->n[i] += n;
	return e;
}

static int sort_slot;

static int
cmp_count(const void *a, const void *b)
{
	const struct alog_count *x = *(const struct alog_count *const *)a;
	const struct alog_count *y = *(const struct alog_count *const *)b;

	if (x->n[sort_slot] != y->n[sort_slot])
		return x->n[sort_slot] > y->n[sort_slot] ? -1 : 1;
	return strcmp(x->key, y->key);
}

const struct alog_count **
alog_counts_sorted(const struct alog_counts *c, int i)
{
	const struct alog_count **v = xcalloc(c->n + 1, sizeof(*v));
	size_t k;

	for (k = 0; k < c->n; k++)
		v[k] = &c->v[k];
	sort_slot = i;
	qsort(v, c->n, sizeof(*v), cmp_count);
	return v;
}

void
alog_counts_clear(struct alog_counts *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		free(c->v[i].key);
	free(c->v);
	free(c->slots);
	memset(c, 0, sizeof(*c));
}

static void
exc_add(struct alog_exceptions *x, const struct alog_env *env, const char *session,
    const char *what)
{
	struct alog_exception *e;

	if (x->n == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 8;
		x->v = xreallocarray(x->v, x->cap, sizeof(*x->v));
	}
	e = &x->v[x->n++];
	e->seq = env->seq;
	snprintf(e->time, sizeof(e->time), "%s", env->time);
	e->session = xstrdup(session ? session : "-");
	e->what = xstrdup(what);
}

static void
exc_clear(struct alog_exceptions *x)
{
	size_t i;

	for (i = 0; i < x->n; i++) {
		free(x->v[i].session);
		free(x->v[i].what);
	}
	free(x->v);
	memset(x, 0, sizeof(*x));
}

void
alog_refusal_split(const char *key, struct alog_refusal_key *k)
{
	char *save = NULL;

	snprintf(k->buf, sizeof(k->buf), "%s", key);
	k->stage = strtok_r(k->buf, "\t", &save);
	k->code = strtok_r(NULL, "\t", &save);
	k->enh = strtok_r(NULL, "\t", &save);
	k->reason = strtok_r(NULL, "\t", &save);
	if (k->stage == NULL)
		k->stage = "?";
	if (k->code == NULL)
		k->code = "?";
	if (k->enh == NULL)
		k->enh = "?";
	if (k->reason == NULL)
		k->reason = "?";
}

void
alog_share(uint64_t n, uint64_t d, char *out, size_t outlen)
{
	if (d == 0)
		snprintf(out, outlen, "-");
	else if (n == d)
		snprintf(out, outlen, "100%%");
	else	/* never round up to 100% */
		snprintf(out, outlen, "%llu.%u%%", (unsigned long long)(n * 100 / d),
		    (unsigned)(n * 1000 / d % 10));
}

/* ---- records ---- */

void
alog_report_init(struct alog_report *r, int64_t since, int64_t until)
{
	memset(r, 0, sizeof(*r));
	r->since = since;
	r->until = until;
	r->bucket_ms = HOUR_MS;
}

static char *
str_or(const struct json *o, const char *key, const char *dflt)
{
	const char *s = json_get_str(o, key);

	return xstrdup(s != NULL ? s : dflt);
}

static char **
str_list(const struct json *o, const char *key, size_t *n_r)
{
	const struct json *a = json_get(o, key), *e;
	char **v;
	size_t n = 0;

	v = xcalloc((a != NULL ? a->n : 0) + 1, sizeof(*v));
	if (a != NULL && a->type == JSON_ARR)
		for (e = a->first; e != NULL; e = e->next)
			if (e->type == JSON_STR)
				v[n++] = xstrdup(e->s);
	*n_r = n;
	return v;
}

static void
start_fill(struct alog_start *s, const struct json *b, const struct alog_env *env)
{
	const struct json *sa = json_get(b, "self_audit");

	memset(s, 0, sizeof(*s));
	s->seq = env->seq;
	snprintf(s->time, sizeof(s->time), "%s", env->time);
	s->version = str_or(b, "version", "?");
	s->profile = str_or(b, "profile", "?");
	s->config = str_or(b, "config_sha256", "?");
	s->key = str_or(b, "key", "?");
	s->result = str_or(sa, "result", "?");
	(void)json_get_int(sa, "checks", &s->checks);
	s->passed = str_list(sa, "passed", &s->npassed);
	s->warned = str_list(sa, "warned", &s->nwarned);
	s->failed = str_list(sa, "failed", &s->nfailed);
}

static void
start_clear(struct alog_start *s)
{
	size_t i;

	free(s->version);
	free(s->profile);
	free(s->config);
	free(s->key);
	free(s->result);
	for (i = 0; i < s->npassed; i++)
		free(s->passed[i]);
	for (i = 0; i < s->nwarned; i++)
		free(s->warned[i]);
	for (i = 0; i < s->nfailed; i++)
		free(s->failed[i]);
	free(s->passed);
	free(s->warned);
	free(s->failed);
	memset(s, 0, sizeof(*s));
}

static void
add_start(struct alog_report *r, const struct json *b, const struct alog_env *env, int in)
{
	if (!in) {
		/* only the profile of the last start before the period matters */
		start_clear(&r->before);
		start_fill(&r->before, b, env);
		r->last_start = &r->before;
		return;
	}
	r->starts = xreallocarray(r->starts, r->nstarts + 1, sizeof(*r->starts));
	start_fill(&r->starts[r->nstarts++], b, env);
	r->last_start = NULL;	/* the array may move: set in finish */
}

static void
add_stop(struct alog_report *r, const struct json *b, const struct alog_env *env)
{
	struct alog_stop *s;

	r->stops = xreallocarray(r->stops, r->nstops + 1, sizeof(*r->stops));
	s = &r->stops[r->nstops++];
	memset(s, 0, sizeof(*s));
	s->seq = env->seq;
	snprintf(s->time, sizeof(s->time), "%s", env->time);
	s->reason = str_or(b, "reason", "?");
	s->detail = str_or(b, "detail", "");
	(void)json_get_int(b, "status", &s->status);
}

static void
add_recheck(struct alog_report *r, const struct json *b, const struct alog_env *env)
{
	struct alog_recheck *c;

	r->rechecks = xreallocarray(r->rechecks, r->nrechecks + 1, sizeof(*r->rechecks));
	c = &r->rechecks[r->nrechecks++];
	memset(c, 0, sizeof(*c));
	c->seq = env->seq;
	snprintf(c->time, sizeof(c->time), "%s", env->time);
	c->check = str_or(b, "check", "?");
	c->result = str_or(b, "result", "?");
	c->status = str_or(b, "status", "?");
	c->summary = str_or(b, "summary", "");
	c->remedy = str_or(b, "remedy", "");
	(void)json_get_bool(b, "required", &c->required);
}

static void
bucket(struct alog_report *r, int64_t ms, int slot, uint64_t n)
{
	char k[32];

	snprintf(k, sizeof(k), "%lld", (long long)(ms / HOUR_MS));
	alog_counts_add(&r->buckets, k, slot, n);
}

/* How many a record stands for: a summary's count, else 1. */
static uint64_t
record_count(const struct json *b)
{
	int64_t n;

	return json_get_int(b, "count", &n) == 0 && n > 0 ? (uint64_t)n : 1;
}

static void
add_auth(struct alog_report *r, const struct json *b)
{
	const char *login = json_get_str(b, "login"), *client = json_get_str(b, "client");
	const char *res = json_get_str(b, "result");
	uint64_t n = record_count(b);
	int lock = 0, closed = 0, slot;

	(void)json_get_bool(b, "lockout", &lock);
	(void)json_get_bool(b, "closed", &closed);
	if (res != NULL && strcmp(res, "ok") == 0)
		slot = ALOG_AUTH_OK;
	else if (lock)
		slot = ALOG_AUTH_LOCKED;
	else
		slot = ALOG_AUTH_FAIL;
	r->auth[slot] += n;
	alog_counts_add(&r->auth_logins, login ? login : "?", slot, n);
	alog_counts_add(&r->auth_clients, client ? client : "?", slot, n);
	if (closed) {
		r->auth[ALOG_AUTH_CLOSED] += n;
		alog_counts_add(&r->auth_logins, login ? login : "?", ALOG_AUTH_CLOSED, n);
		alog_counts_add(&r->auth_clients, client ? client : "?", ALOG_AUTH_CLOSED, n);
	}
}

static void
add_refusal(struct alog_report *r, const struct json *b, const struct alog_env *env)
{
	uint64_t n = record_count(b);
	char k[400];
	int64_t code = 0;

	(void)json_get_int(b, "code", &code);
	snprintf(k, sizeof(k), "%s\t%lld\t%s\t%s", json_get_str(b, "stage") ?: "?",
	    (long long)code, json_get_str(b, "enh") ?: "?", json_get_str(b, "reason") ?: "?");
	alog_counts_add(&r->refusals, k, 0, n);
	r->nrefusals += n;
	bucket(r, env->time_ms, ALOG_HOUR_REFUSED, n);
}

/* DKIM and DANE of one relayed transaction. */
static void
add_relayed_facts(struct alog_report *r, const struct json *b, const struct alog_env *env,
    const char *session)
{
	const struct json *sigs = json_get(b, "dkim"), *e, *relay = json_get(b, "relay");
	const struct json *dane = json_get(relay, "dane"), *tls = json_get(relay, "tls");
	const char *verdict = json_get_str(dane, "verdict"), *a, *prev;
	const char *mid = json_get_str(b, "message_id");
	char what[400];
	size_t nsig = 0;

	for (e = sigs != NULL ? sigs->first : NULL; e != NULL; e = e->next) {
		const struct json *p;
		int seen = 0;

		if ((a = json_get_str(e, "a")) == NULL)
			continue;
		nsig++;
		/* count each algorithm once per message */
		for (p = sigs->first; p != e; p = p->next)
			if ((prev = json_get_str(p, "a")) != NULL && strcmp(prev, a) == 0)
				seen = 1;
		if (!seen)
			alog_counts_add(&r->dkim_algos, a, 0, 1);
	}
	if (nsig > 0)
		r->dkim_signed++;
	else {
		snprintf(what, sizeof(what), "relayed without a DKIM signature (Message-ID %.200s)",
		    mid ? mid : "none");
		exc_add(&r->dkim_exc, env, session, what);
	}
	if (verdict != NULL && (strcmp(verdict, "ok-ee") == 0 || strcmp(verdict, "ok-ta") == 0)) {
		r->dane_ok++;
		alog_counts_add(&r->dane_verdicts, verdict, 0, 1);
	} else {
		alog_counts_add(&r->dane_verdicts, verdict ? verdict : "none", 0, 1);
		snprintf(what, sizeof(what), "relayed without DANE verification (verdict %s, "
		    "Message-ID %.200s)", verdict ? verdict : "none", mid ? mid : "none");
		exc_add(&r->dane_exc, env, session, what);
	}
	if (tls != NULL) {
		alog_counts_add(&r->relay_versions, json_get_str(tls, "version") ?: "?", 0, 1);
		alog_counts_add(&r->relay_ciphers, json_get_str(tls, "cipher") ?: "?", 0, 1);
	}
}

static void
add_txn(struct alog_report *r, const struct json *b, const struct alog_env *env)
{
	const struct json *fin = json_get(b, "final"), *rc = json_get(b, "rcpts"), *e;
	const struct json *ctls = json_get(b, "client_tls");
	const char *session = json_get_str(b, "session"), *login = json_get_str(b, "login");
	int64_t code = 0, v = 0;
	char k[400];

	r->txns++;
	(void)json_get_int(fin, "code", &code);
	if (rc != NULL && rc->type == JSON_ARR)
		for (e = rc->first; e != NULL; e = e->next) {
			int64_t c = 0;

			(void)json_get_int(e, "code", &c);
			if (c >= 200 && c < 300)
				r->rcpts_ok++;
			else
				r->rcpts_refused++;
		}
	if (ctls != NULL) {
		alog_counts_add(&r->tls_versions, json_get_str(ctls, "version") ?: "?", 0, 1);
		alog_counts_add(&r->tls_ciphers, json_get_str(ctls, "cipher") ?: "?", 0, 1);
	}
	if (json_get(fin, "unknown") != NULL) {
		/* the relay may have delivered it: neither relayed nor failed */
		r->unknown++;
		snprintf(k, sizeof(k), "outcome unknown (%.40s): no final reply awaited, the relay "
		    "may have delivered it (Message-ID %.200s)", json_get_str(fin, "unknown") ?: "?",
		    json_get_str(b, "message_id") ?: "none");
		exc_add(&r->unknown_exc, env, session, k);
		return;
	}
	if (code < 200 || code >= 300) {
		r->failed++;
		snprintf(k, sizeof(k), "%lld\t%s\t%s", (long long)code,
		    json_get_str(fin, "enh") ?: "?", json_get_str(fin, "text") ?: "");
		alog_counts_add(&r->relay_failures, k, 0, 1);
		bucket(r, env->time_ms, ALOG_HOUR_FAILED, 1);
		return;
	}
	r->relayed++;
	bucket(r, env->time_ms, ALOG_HOUR_RELAYED, 1);
	if (json_get_int(b, "size", &v) == 0 && v > 0)
		r->octets += (uint64_t)v;
	alog_counts_add(&r->senders, login ? login : "?", 0, 1);
	if (json_get_int(b, "latency_ms", &v) == 0) {
		if (r->nlatency == r->caplatency) {
			r->caplatency = r->caplatency ? r->caplatency * 2 : 64;
			r->latency = xreallocarray(r->latency, r->caplatency, sizeof(*r->latency));
		}
		r->latency[r->nlatency++] = v;
	}
	add_relayed_facts(r, b, env, session);
}

void
alog_report_add(struct alog_report *r, const struct json *rec, const struct alog_env *env)
{
	struct json body = alog_body(rec);
	int in = (r->since == 0 || env->time_ms >= r->since) &&
	    (r->until == 0 || env->time_ms < r->until);
	int64_t lost = 0;
	const char *first;

	if (env->type == ALOG_T_START)
		add_start(r, &body, env, in);
	if (!in)
		return;
	/* the earliest and the latest: a clock that stepped back (or an edited
	 * file) may put them anywhere */
	if (r->records++ == 0 || env->time_ms < r->first_ms)
		r->first_ms = env->time_ms;
	if (env->time_ms > r->last_ms)
		r->last_ms = env->time_ms;
	switch (env->type) {
	case ALOG_T_STOP:
		add_stop(r, &body, env);
		break;
	case ALOG_T_AUTH:
		add_auth(r, &body);
		break;
	case ALOG_T_TXN:
		add_txn(r, &body, env);
		break;
	case ALOG_T_REFUSAL:
		add_refusal(r, &body, env);
		break;
	case ALOG_T_RECHECK:
		add_recheck(r, &body, env);
		break;
	case ALOG_T_GAP:
		(void)json_get_int(&body, "lost", &lost);
		r->lost += (uint64_t)(lost > 0 ? lost : 0);
		first = json_get_str(&body, "first");
		{
			char what[160];

			snprintf(what, sizeof(what), "%lld record(s) could not be written from %s "
			    "on (the log was not writable)", (long long)lost, first ? first : "?");
			exc_add(&r->gaps, env, NULL, what);
		}
		break;
	default:
		break;
	}
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static int64_t
percentile(const int64_t *v, size_t n, unsigned p)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (n * p + 99) / 100;
	return v[rank > 0 ? rank - 1 : 0];
}

/* Does a cipher suite name (IANA, "TLS_AES_256_GCM_SHA384") use one of the
 * profile's ciphers (GnuTLS names, "AES-256-GCM")? */
static int
cipher_allowed(const struct audit_list *l, const char *suite)
{
	char norm[64];
	const char *p;
	size_t i, k, n;

	if (l->n == 0)
		return 1;
	for (i = 0; i < l->n; i++) {
		n = strlen(l->v[i]);
		if (n >= sizeof(norm))
			continue;
		for (k = 0; k < n; k++)
			norm[k] = l->v[i][k] == '-' ? '_' : l->v[i][k];
		norm[n] = '\0';
		for (p = suite; (p = strstr(p, norm)) != NULL; p++)
			if (p[n] == '\0' || strncmp(p + n, "_SHA", 4) == 0)
				return 1;
	}
	return 0;
}

static int
version_allowed(const struct audit_list *l, const char *v)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i], v) == 0)
			return 1;
	return l->n == 0;
}

/* The log's evidence, each an id the profiles can map ("ref log.dkim ..."). */
static void
evidence(struct alog_report *r)
{
	struct audit_profile *prof;
	const struct alog_count *c;
	char err[300];
	size_t i;
	int ok;

	alog_counts_add(&r->evidence, "log.integrity", 0, r->verdict.intact);
	alog_counts_add(&r->evidence, "log.complete", 0, r->lost == 0);
	prof = r->profile ? audit_profile_load(r->profile, err, sizeof(err)) : NULL;
	ok = r->dkim_signed == r->relayed;
	for (i = 0; prof != NULL && i < prof->dkim_require.n; i++) {
		char a[40];

		snprintf(a, sizeof(a), "%s-sha256", prof->dkim_require.v[i]);
		c = alog_counts_get(&r->dkim_algos, a);
		if (c == NULL || c->n[0] != r->relayed)
			ok = 0;
	}
	alog_counts_add(&r->evidence, "log.dkim", 0, ok);
	alog_counts_add(&r->evidence, "log.relay.dane", 0, r->dane_ok == r->relayed);
	ok = 1;
	for (i = 0; prof != NULL && i < r->tls_versions.n; i++)
		if (!version_allowed(&prof->tls_versions, r->tls_versions.v[i].key))
			ok = 0;
	for (i = 0; prof != NULL && i < r->tls_ciphers.n; i++)
		if (!cipher_allowed(&prof->tls_ciphers, r->tls_ciphers.v[i].key))
			ok = 0;
	alog_counts_add(&r->evidence, "log.client.tls", 0, ok);
	ok = 1;
	for (i = 0; prof != NULL && i < r->relay_versions.n; i++)
		if (!version_allowed(&prof->tls_versions, r->relay_versions.v[i].key))
			ok = 0;
	alog_counts_add(&r->evidence, "log.relay.tls", 0, ok);
	audit_profile_free(&prof);
}

void
alog_report_finish(struct alog_report *r, const struct alog_verdict *vd)
{
	r->verdict = *vd;
	if (r->nstarts > 0)
		r->last_start = &r->starts[r->nstarts - 1];
	if (r->last_start != NULL)
		r->profile = xstrdup(r->last_start->profile);
	if (r->nlatency > 0)
		qsort(r->latency, r->nlatency, sizeof(*r->latency), cmp_i64);
	r->lat_p50 = percentile(r->latency, r->nlatency, 50);
	r->lat_p90 = percentile(r->latency, r->nlatency, 90);
	r->lat_p99 = percentile(r->latency, r->nlatency, 99);
	r->lat_max = r->nlatency ? r->latency[r->nlatency - 1] : 0;
	/* more than a week: bars per day */
	if (r->records > 0 && r->last_ms - r->first_ms > 7 * DAY_MS)
		r->bucket_ms = DAY_MS;
	evidence(r);
}

int
alog_report_ok(const struct alog_report *r)
{
	return r->verdict.intact && r->dkim_exc.n == 0 && r->dane_exc.n == 0 && r->lost == 0;
}

void
alog_report_clear(struct alog_report *r)
{
	size_t i;

	for (i = 0; i < r->nstarts; i++)
		start_clear(&r->starts[i]);
	free(r->starts);
	start_clear(&r->before);
	for (i = 0; i < r->nstops; i++) {
		free(r->stops[i].reason);
		free(r->stops[i].detail);
	}
	free(r->stops);
	for (i = 0; i < r->nrechecks; i++) {
		free(r->rechecks[i].check);
		free(r->rechecks[i].result);
		free(r->rechecks[i].status);
		free(r->rechecks[i].summary);
		free(r->rechecks[i].remedy);
	}
	free(r->rechecks);
	alog_counts_clear(&r->relay_failures);
	alog_counts_clear(&r->refusals);
	alog_counts_clear(&r->dkim_algos);
	exc_clear(&r->dkim_exc);
	exc_clear(&r->unknown_exc);
	alog_counts_clear(&r->dane_verdicts);
	exc_clear(&r->dane_exc);
	alog_counts_clear(&r->tls_versions);
	alog_counts_clear(&r->tls_ciphers);
	alog_counts_clear(&r->relay_versions);
	alog_counts_clear(&r->relay_ciphers);
	alog_counts_clear(&r->auth_logins);
	alog_counts_clear(&r->auth_clients);
	alog_counts_clear(&r->senders);
	free(r->latency);
	alog_counts_clear(&r->buckets);
	exc_clear(&r->gaps);
	free(r->profile);
	alog_counts_clear(&r->evidence);
	memset(r, 0, sizeof(*r));
}

/* ---- requirements ---- */

static void
item_add(struct alog_item **v, size_t *n, const char *id, const char *status, int check)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[*n].id = xstrdup(id);
	(*v)[*n].status = status;
	(*v)[(*n)++].check = check;
}

/* Map one id (a check or log evidence) to every requirement the profile
 * gives it; an id mapped to none is listed as such. */
static void
map_id(const struct audit_profile *p, struct alog_reqs *out, const char *id,
    const char *status, int check)
{
	size_t i, j, k;
	int mapped = 0;

	for (i = 0; i < p->nrefrules; i++) {
		if (!audit_glob_match(p->refrules[i].glob, id))
			continue;
		for (j = 0; j < p->refrules[i].nrefs; j++) {
			for (k = 0; k < out->n && strcmp(out->v[k].ref, p->refrules[i].refs[j]) != 0;
			    k++)
				;
			if (k < out->n) {
				item_add(&out->v[k].items, &out->v[k].nitems, id, status, check);
				mapped = 1;
			}
		}
	}
	if (!mapped)
		item_add(&out->unmapped, &out->nunmapped, id, status, check);
}

/* Did check `id` fail a recheck after record `since` (the start)? */
static int
failed_since(const struct alog_report *r, const char *id, uint64_t since)
{
	size_t i;

	for (i = 0; i < r->nrechecks; i++)
		if (r->rechecks[i].seq > since && strcmp(r->rechecks[i].result, "failed") == 0 &&
		    strcmp(r->rechecks[i].check, id) == 0)
			return 1;
	return 0;
}

void
alog_report_requirements(const struct alog_report *r, struct alog_reqs *out)
{
	struct audit_profile *p;
	const struct alog_start *s = r->last_start;
	char err[300];
	size_t i, j, k;

	memset(out, 0, sizeof(*out));
	if (r->profile == NULL || (p = audit_profile_load(r->profile, err, sizeof(err))) == NULL)
		return;
	out->have_profile = 1;
	/* every requirement the profile names, in its order */
	for (i = 0; i < p->nrefrules; i++)
		for (j = 0; j < p->refrules[i].nrefs; j++) {
			for (k = 0; k < out->n && strcmp(out->v[k].ref, p->refrules[i].refs[j]) != 0;
			    k++)
				;
			if (k == out->n) {
				out->v = xreallocarray(out->v, out->n + 1, sizeof(*out->v));
				memset(&out->v[out->n], 0, sizeof(out->v[out->n]));
				out->v[out->n++].ref = xstrdup(p->refrules[i].refs[j]);
			}
		}
	if (s != NULL) {
		snprintf(out->start, sizeof(out->start), "%s", s->time);
		for (i = 0; i < s->nfailed; i++)
			map_id(p, out, s->failed[i], "fail", 1);
		for (i = 0; i < s->nwarned; i++)
			map_id(p, out, s->warned[i], failed_since(r, s->warned[i], s->seq) ? "fail" :
			    "warn", 1);
		for (i = 0; i < s->npassed; i++)
			map_id(p, out, s->passed[i], failed_since(r, s->passed[i], s->seq) ? "fail" :
			    "pass", 1);
	}
	for (i = 0; i < r->evidence.n; i++)
		map_id(p, out, r->evidence.v[i].key, r->evidence.v[i].n[0] ? "pass" : "fail", 0);
	audit_profile_free(&p);
}

void
alog_reqs_clear(struct alog_reqs *q)
{
	size_t i, j;

	for (i = 0; i < q->n; i++) {
		for (j = 0; j < q->v[i].nitems; j++)
			free(q->v[i].items[j].id);
		free(q->v[i].items);
		free(q->v[i].ref);
	}
	free(q->v);
	for (i = 0; i < q->nunmapped; i++)
		free(q->unmapped[i].id);
	free(q->unmapped);
	memset(q, 0, sizeof(*q));
}
