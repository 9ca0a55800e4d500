/* auditlog_render.c — the compliance report as text and as JSON. */
#include "auditlog_report.h"
#include "json.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOP_N	10

/* ---- text ---- */

/* Untrusted text from the log, one line, printable: anything else as '?'. */
static void
put_text(FILE *f, const char *s)
{
	for (; *s != '\0'; s++)
		fputc((unsigned char)*s >= 0x20 && *s != 0x7f ? *s : '?', f);
}

/* A printable copy of untrusted text (tabs separate fields of keys). */
static const char *
safe(const char *s, char *buf, size_t n)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < n; i++)
		buf[i] = s[i] == '\t' ? ' ' : ((unsigned char)s[i] >= 0x20 && s[i] != 0x7f) ?
		    s[i] : '?';
	buf[i] = '\0';
	return buf;
}

static void
text_verdict(const struct alog_report *r, FILE *f)
{
	const struct alog_verdict *v = &r->verdict;
	char a[32], b[32];

	if (v->intact) {
		fprintf(f, "Verdict: INTACT. %llu records (%llu to %llu) in %llu file(s), %llu signed "
		    "checkpoint(s), every record covered by a signature.\n",
		    (unsigned long long)v->records, (unsigned long long)v->first_seq,
		    (unsigned long long)v->last_seq, (unsigned long long)v->files,
		    (unsigned long long)v->checkpoints);
		if (v->keys_given)
			fprintf(f, "  Signatures checked against the key(s) given (%s).\n", v->key);
		else
			fprintf(f, "  Signatures checked against the key the log names (%s): pass "
			    "--public-key to check that it is the installation's key.\n", v->key);
	} else {
		fprintf(f, "Verdict: NOT INTACT. First bad record: %llu (", (unsigned long long)
		    v->bad_seq);
		put_text(f, v->bad_file);
		if (v->bad_line > 0)
			fprintf(f, ":%llu", (unsigned long long)v->bad_line);
		fprintf(f, "): ");
		put_text(f, v->why);
		fprintf(f, "\n  Nothing from record %llu on can be trusted; the figures below count "
		    "every record that could be read.\n", (unsigned long long)v->bad_seq);
	}
	if (v->partial_start)
		fprintf(f, "  The log given starts at record %llu (the files before it were not "
		    "given).\n", (unsigned long long)v->first_seq);
	if (v->intact && !v->stopped)
		fprintf(f, "  The log ends at record %llu without a stop record: %s.\n",
		    (unsigned long long)v->last_seq, alog_unstopped_why);
	alog_share(r->dkim_signed, r->relayed, a, sizeof(a));
	alog_share(r->dane_ok, r->relayed, b, sizeof(b));
	fprintf(f, "Promises: DKIM-signed %s, relayed over DANE-verified TLS %s, records lost "
	    "%llu: %s\n", a, b, (unsigned long long)r->lost, alog_report_ok(r) ? "KEPT" :
	    "NOT KEPT (see the exceptions below)");
}

static void
text_counts(FILE *f, const char *title, const struct alog_counts *c, uint64_t total, size_t max)
{
	const struct alog_count **v = alog_counts_sorted(c, 0);
	char s[32], buf[400];
	size_t i;

	fprintf(f, "  %s:%s\n", title, c->n == 0 ? " none" : "");
	for (i = 0; i < c->n && (max == 0 || i < max); i++) {
		alog_share(v[i]->n[0], total, s, sizeof(s));
		fprintf(f, "    %-44s %8llu  %s\n", safe(v[i]->key, buf, sizeof(buf)),
		    (unsigned long long)v[i]->n[0], s);
	}
	if (max > 0 && c->n > max)
		fprintf(f, "    (%zu more)\n", c->n - max);
	free(v);
}

static void
text_exceptions(FILE *f, const struct alog_exceptions *x)
{
	size_t i;

	fprintf(f, "  exceptions: %s\n", x->n == 0 ? "none" : "");
	for (i = 0; i < x->n; i++) {
		fprintf(f, "    record %llu %s session ", (unsigned long long)x->v[i].seq,
		    x->v[i].time);
		put_text(f, x->v[i].session);
		fputs(": ", f);
		put_text(f, x->v[i].what);
		fputc('\n', f);
	}
}

static void
text_starts(const struct alog_report *r, FILE *f)
{
	char b[300];
	size_t i, j;

	fprintf(f, "\nStarts, stops and rechecks\n");
	if (r->nstarts == 0 && r->nstops == 0 && r->nrechecks == 0)
		fprintf(f, "  none in the period\n");
	for (i = 0; i < r->nstarts; i++) {
		const struct alog_start *s = &r->starts[i];

		fprintf(f, "  %s start (record %llu): version %s, ", s->time,
		    (unsigned long long)s->seq, safe(s->version, b, sizeof(b)));
		fprintf(f, "profile %s, ", safe(s->profile, b, sizeof(b)));
		fprintf(f, "self-audit %s (%lld checks), ", safe(s->result, b, sizeof(b)),
		    (long long)s->checks);
		fprintf(f, "configuration sha256 %.16s...\n", safe(s->config, b, sizeof(b)));
		if (s->nfailed > 0) {
			fprintf(f, "    failed:");
			for (j = 0; j < s->nfailed; j++)
				fprintf(f, " %s", safe(s->failed[j], b, sizeof(b)));
			fputc('\n', f);
		}
		if (s->nwarned > 0) {
			fprintf(f, "    warned:");
			for (j = 0; j < s->nwarned; j++)
				fprintf(f, " %s", safe(s->warned[j], b, sizeof(b)));
			fputc('\n', f);
		}
	}
	for (i = 0; i < r->nstops; i++) {
		fprintf(f, "  %s stop (record %llu): %s", r->stops[i].time,
		    (unsigned long long)r->stops[i].seq, safe(r->stops[i].reason, b, sizeof(b)));
		fprintf(f, "%s%s, status %lld\n", r->stops[i].detail[0] ? ": " : "",
		    safe(r->stops[i].detail, b, sizeof(b)), (long long)r->stops[i].status);
	}
	for (i = 0; i < r->nrechecks; i++) {
		const struct alog_recheck *c = &r->rechecks[i];

		fprintf(f, "  %s recheck (record %llu): %s ", c->time, (unsigned long long)c->seq,
		    safe(c->check, b, sizeof(b)));
		fprintf(f, "%s ", safe(c->result, b, sizeof(b)));
		fprintf(f, "(status %s%s): ", safe(c->status, b, sizeof(b)),
		    c->required ? ", required" : "");
		fprintf(f, "%s\n", safe(c->summary, b, sizeof(b)));
		if (c->remedy[0])
			fprintf(f, "    fix: %s\n", safe(c->remedy, b, sizeof(b)));
	}
}

static void
text_refusals(const struct alog_report *r, FILE *f)
{
	const struct alog_count **v;
	size_t i;

	fprintf(f, "\nRefusals: %llu\n", (unsigned long long)r->nrefusals);
	v = alog_counts_sorted(&r->refusals, 0);
	if (r->refusals.n > 0)
		fprintf(f, "    %-8s %-4s %-7s %-28s %8s\n", "stage", "code", "enh", "reason", "count");
	for (i = 0; i < r->refusals.n; i++) {
		struct alog_refusal_key k;
		char b1[200], b2[32], b3[32];

		alog_refusal_split(v[i]->key, &k);
		fprintf(f, "    %-8s %-4s %-7s ", safe(k.stage, b1, sizeof(b1)),
		    safe(k.code, b2, sizeof(b2)), safe(k.enh, b3, sizeof(b3)));
		fprintf(f, "%-28s %8llu\n", safe(k.reason, b1, sizeof(b1)),
		    (unsigned long long)v[i]->n[0]);
	}
	free(v);
}

static void
text_auth(const struct alog_report *r, FILE *f, const char *title, const struct alog_counts *c)
{
	const struct alog_count **v;
	char buf[200];
	size_t i;

	fprintf(f, "  %s:%s\n", title, c->n == 0 ? " none" : "");
	if (c->n > 0)
		fprintf(f, "    %-44s %6s %6s %6s %6s\n", "", "ok", "failed", "locked", "closed");
	/* the most failures first: the ones to look at */
	v = alog_counts_sorted(c, ALOG_AUTH_FAIL);
	for (i = 0; i < c->n; i++) {
		fprintf(f, "    %-44s %6llu %6llu %6llu %6llu\n", safe(v[i]->key, buf, sizeof(buf)),
		    (unsigned long long)v[i]->n[ALOG_AUTH_OK],
		    (unsigned long long)v[i]->n[ALOG_AUTH_FAIL],
		    (unsigned long long)v[i]->n[ALOG_AUTH_LOCKED],
		    (unsigned long long)v[i]->n[ALOG_AUTH_CLOSED]);
	}
	free(v);
}

/* The unmapped evidence of one kind and status on wrapped lines. */
static void
text_group(FILE *f, const struct alog_reqs *q, int check, const char *status,
    const char *title)
{
	char b[200];
	size_t i, col = 0;

	for (i = 0; i < q->nunmapped; i++) {
		const struct alog_item *it = &q->unmapped[i];

		if (it->check != check || strcmp(it->status, status) != 0)
			continue;
		if (col == 0)
			col = (size_t)fprintf(f, "    %s:", title);
		else if (col + strlen(it->id) + 2 > 96)
			col = (size_t)fprintf(f, "\n      ");
		col += (size_t)fprintf(f, " %s", safe(it->id, b, sizeof(b)));
	}
	if (col > 0)
		fputc('\n', f);
}

static void
text_requirements(const struct alog_report *r, FILE *f)
{
	struct alog_reqs q;
	char b[200];
	size_t i, j;

	alog_report_requirements(r, &q);
	fprintf(f, "\nRequirements of profile %s", r->profile ? safe(r->profile, b, sizeof(b)) :
	    "(no start record)");
	fprintf(f, "%s%s%s\n", q.start[0] ? " (self-audit of the start at " : "", q.start,
	    q.start[0] ? ")" : "");
	if (!q.have_profile)
		fprintf(f, "  the profile is unknown to this subproxy: no mapping\n");
	for (i = 0; i < q.n; i++) {
		fprintf(f, "  %s\n", q.v[i].ref);
		if (q.v[i].nitems == 0)
			fprintf(f, "    no evidence in this period\n");
		for (j = 0; j < q.v[i].nitems; j++)
			fprintf(f, "    %s %s: %s\n", q.v[i].items[j].check ? "check" : "log",
			    safe(q.v[i].items[j].id, b, sizeof(b)), q.v[i].items[j].status);
	}
	if (q.nunmapped > 0) {
		fprintf(f, "  Evidence the profile maps to no published requirement id:\n");
		text_group(f, &q, 1, "fail", "checks failed");
		text_group(f, &q, 1, "warn", "checks warned");
		text_group(f, &q, 1, "pass", "checks passed");
		text_group(f, &q, 0, "fail", "log evidence failed");
		text_group(f, &q, 0, "pass", "log evidence passed");
	}
	alog_reqs_clear(&q);
}

void
alog_report_text(const struct alog_report *r, FILE *f)
{
	char a[32], b[32], c[32];
	size_t i;

	fprintf(f, "subproxy audit log report\n\n");
	text_verdict(r, f);
	alog_time_format(r->first_ms, a);
	alog_time_format(r->last_ms, b);
	fprintf(f, "Period: %s to %s (%llu records)\n", r->records ? a : "-", r->records ? b : "-",
	    (unsigned long long)r->records);
	text_starts(r, f);
	fprintf(f, "\nMessages\n");
	fprintf(f, "  handed to the relay      %8llu\n", (unsigned long long)r->txns);
	fprintf(f, "  relayed (accepted)       %8llu\n", (unsigned long long)r->relayed);
	fprintf(f, "  failed at the relay      %8llu\n", (unsigned long long)r->failed);
	fprintf(f, "  outcome unknown          %8llu\n", (unsigned long long)r->unknown);
	fprintf(f, "  recipients accepted      %8llu\n", (unsigned long long)r->rcpts_ok);
	fprintf(f, "  recipients refused       %8llu\n", (unsigned long long)r->rcpts_refused);
	fprintf(f, "  octets relayed           %8llu\n", (unsigned long long)r->octets);
	if (r->relay_failures.n > 0)
		text_counts(f, "failures at the relay (code, enhanced code, text)",
		    &r->relay_failures, r->failed, 0);
	if (r->unknown > 0) {
		fprintf(f, "  outcome unknown (the session ended before the relay's final reply; "
		    "the relay may have delivered them):\n");
		text_exceptions(f, &r->unknown_exc);
	}
	text_refusals(r, f);
	alog_share(r->dkim_signed, r->relayed, a, sizeof(a));
	fprintf(f, "\nDKIM: %s of relayed messages signed (%llu of %llu)\n", a,
	    (unsigned long long)r->dkim_signed, (unsigned long long)r->relayed);
	text_counts(f, "per algorithm (messages signed with it)", &r->dkim_algos, r->relayed, 0);
	text_exceptions(f, &r->dkim_exc);
	alog_share(r->dane_ok, r->relayed, a, sizeof(a));
	fprintf(f, "\nDANE: %s of relayed messages over DANE-verified TLS (%llu of %llu)\n", a,
	    (unsigned long long)r->dane_ok, (unsigned long long)r->relayed);
	text_counts(f, "per verdict", &r->dane_verdicts, r->relayed, 0);
	text_exceptions(f, &r->dane_exc);
	fprintf(f, "\nTLS of the client leg (per transaction)\n");
	text_counts(f, "versions", &r->tls_versions, r->txns, 0);
	text_counts(f, "ciphers", &r->tls_ciphers, r->txns, 0);
	fprintf(f, "TLS of the relay leg (per relayed message)\n");
	text_counts(f, "versions", &r->relay_versions, r->relayed, 0);
	text_counts(f, "ciphers", &r->relay_ciphers, r->relayed, 0);
	fprintf(f, "\nAUTH: %llu succeeded, %llu failed, %llu refused by lockout, %llu sessions "
	    "closed after too many failures\n", (unsigned long long)r->auth[ALOG_AUTH_OK],
	    (unsigned long long)r->auth[ALOG_AUTH_FAIL],
	    (unsigned long long)r->auth[ALOG_AUTH_LOCKED],
	    (unsigned long long)r->auth[ALOG_AUTH_CLOSED]);
	text_auth(r, f, "per login", &r->auth_logins);
	text_auth(r, f, "per client address", &r->auth_clients);
	fprintf(f, "\nTop senders (logins by relayed messages)\n");
	text_counts(f, "logins", &r->senders, r->relayed, TOP_N);
	fprintf(f, "\nRelay latency (handing the message over to the relay's final reply), %zu "
	    "messages:\n", r->nlatency);
	snprintf(a, sizeof(a), "%lld", (long long)r->lat_p50);
	snprintf(b, sizeof(b), "%lld", (long long)r->lat_p90);
	snprintf(c, sizeof(c), "%lld", (long long)r->lat_p99);
	fprintf(f, "  p50 %s ms, p90 %s ms, p99 %s ms, max %lld ms\n", a, b, c,
	    (long long)r->lat_max);
	fprintf(f, "\nRecords lost (the log was not writable): %llu\n", (unsigned long long)r->lost);
	for (i = 0; i < r->gaps.n; i++)
		fprintf(f, "  record %llu %s: %s\n", (unsigned long long)r->gaps.v[i].seq,
		    r->gaps.v[i].time, r->gaps.v[i].what);
	text_requirements(r, f);
}

/* ---- JSON ---- */

static void
json_counts(struct jsonw *w, const char *key, const struct alog_counts *c)
{
	const struct alog_count **v = alog_counts_sorted(c, 0);
	size_t i;

	jsonw_key(w, key);
	jsonw_obj_open(w);
	for (i = 0; i < c->n; i++)
		jsonw_kint(w, v[i]->key, (int64_t)v[i]->n[0]);
	jsonw_obj_close(w);
	free(v);
}

static void
json_exceptions(struct jsonw *w, const char *key, const struct alog_exceptions *x)
{
	size_t i;

	jsonw_key(w, key);
	jsonw_arr_open(w);
	for (i = 0; i < x->n; i++) {
		jsonw_obj_open(w);
		jsonw_kint(w, "seq", (int64_t)x->v[i].seq);
		jsonw_kstr(w, "time", x->v[i].time);
		jsonw_kstr(w, "session", x->v[i].session);
		jsonw_kstr(w, "what", x->v[i].what);
		jsonw_obj_close(w);
	}
	jsonw_arr_close(w);
}

static void
json_auth(struct jsonw *w, const char *key, const struct alog_counts *c)
{
	size_t i;

	jsonw_key(w, key);
	jsonw_obj_open(w);
	for (i = 0; i < c->n; i++) {
		jsonw_key(w, c->v[i].key);
		jsonw_obj_open(w);
		jsonw_kint(w, "ok", (int64_t)c->v[i].n[ALOG_AUTH_OK]);
		jsonw_kint(w, "failed", (int64_t)c->v[i].n[ALOG_AUTH_FAIL]);
		jsonw_kint(w, "locked", (int64_t)c->v[i].n[ALOG_AUTH_LOCKED]);
		jsonw_kint(w, "closed", (int64_t)c->v[i].n[ALOG_AUTH_CLOSED]);
		jsonw_obj_close(w);
	}
	jsonw_obj_close(w);
}

static void
json_verdict(struct jsonw *w, const struct alog_report *r)
{
	const struct alog_verdict *v = &r->verdict;

	jsonw_key(w, "verdict");
	jsonw_obj_open(w);
	jsonw_kbool(w, "intact", v->intact);
	jsonw_kint(w, "records", (int64_t)v->records);
	jsonw_kint(w, "files", (int64_t)v->files);
	jsonw_kint(w, "checkpoints", (int64_t)v->checkpoints);
	jsonw_kint(w, "first_seq", (int64_t)v->first_seq);
	jsonw_kint(w, "last_seq", (int64_t)v->last_seq);
	jsonw_kbool(w, "partial_start", v->partial_start);
	jsonw_kbool(w, "stopped", v->stopped);
	jsonw_kbool(w, "keys_given", v->keys_given);
	jsonw_kstr(w, "key", v->key[0] ? v->key : NULL);
	if (!v->intact) {
		jsonw_kint(w, "bad_seq", (int64_t)v->bad_seq);
		jsonw_kstr(w, "bad_file", v->bad_file);
		jsonw_kint(w, "bad_line", (int64_t)v->bad_line);
		jsonw_kstr(w, "why", v->why);
	}
	jsonw_obj_close(w);
	jsonw_kbool(w, "promises_kept", alog_report_ok(r));
}

static void
json_starts(struct jsonw *w, const struct alog_report *r)
{
	size_t i;

	jsonw_key(w, "starts");
	jsonw_arr_open(w);
	for (i = 0; i < r->nstarts; i++) {
		const struct alog_start *s = &r->starts[i];

		jsonw_obj_open(w);
		jsonw_kint(w, "seq", (int64_t)s->seq);
		jsonw_kstr(w, "time", s->time);
		jsonw_kstr(w, "version", s->version);
		jsonw_kstr(w, "profile", s->profile);
		jsonw_kstr(w, "config_sha256", s->config);
		jsonw_kstr(w, "self_audit", s->result);
		jsonw_kint(w, "checks", s->checks);
		jsonw_kstrs(w, "failed", s->failed, s->nfailed);
		jsonw_kstrs(w, "warned", s->warned, s->nwarned);
		jsonw_obj_close(w);
	}
	jsonw_arr_close(w);
	jsonw_key(w, "stops");
	jsonw_arr_open(w);
	for (i = 0; i < r->nstops; i++) {
		jsonw_obj_open(w);
		jsonw_kint(w, "seq", (int64_t)r->stops[i].seq);
		jsonw_kstr(w, "time", r->stops[i].time);
		jsonw_kstr(w, "reason", r->stops[i].reason);
		jsonw_kstr(w, "detail", r->stops[i].detail);
		jsonw_kint(w, "status", r->stops[i].status);
		jsonw_obj_close(w);
	}
	jsonw_arr_close(w);
	jsonw_key(w, "rechecks");
	jsonw_arr_open(w);
	for (i = 0; i < r->nrechecks; i++) {
		const struct alog_recheck *c = &r->rechecks[i];

		jsonw_obj_open(w);
		jsonw_kint(w, "seq", (int64_t)c->seq);
		jsonw_kstr(w, "time", c->time);
		jsonw_kstr(w, "check", c->check);
		jsonw_kstr(w, "result", c->result);
		jsonw_kstr(w, "status", c->status);
		jsonw_kbool(w, "required", c->required);
		jsonw_kstr(w, "summary", c->summary);
		jsonw_kstr(w, "remedy", c->remedy);
		jsonw_obj_close(w);
	}
	jsonw_arr_close(w);
}

static void
json_refusals(struct jsonw *w, const struct alog_report *r)
{
	const struct alog_count **v = alog_counts_sorted(&r->refusals, 0);
	size_t i;

	jsonw_key(w, "refusals");
	jsonw_arr_open(w);
	for (i = 0; i < r->refusals.n; i++) {
		struct alog_refusal_key k;

		alog_refusal_split(v[i]->key, &k);
		jsonw_obj_open(w);
		jsonw_kstr(w, "stage", k.stage);
		jsonw_kint(w, "code", atoi(k.code));
		jsonw_kstr(w, "enh", k.enh);
		jsonw_kstr(w, "reason", k.reason);
		jsonw_kint(w, "count", (int64_t)v[i]->n[0]);
		jsonw_obj_close(w);
	}
	jsonw_arr_close(w);
	free(v);
}

static void
json_items(struct jsonw *w, const char *key, const struct alog_item *v, size_t n)
{
	size_t i;

	jsonw_key(w, key);
	jsonw_arr_open(w);
	for (i = 0; i < n; i++) {
		jsonw_obj_open(w);
		jsonw_kstr(w, "id", v[i].id);
		jsonw_kstr(w, "kind", v[i].check ? "check" : "log");
		jsonw_kstr(w, "status", v[i].status);
		jsonw_obj_close(w);
	}
	jsonw_arr_close(w);
}

static void
json_requirements(struct jsonw *w, const struct alog_report *r)
{
	struct alog_reqs q;
	size_t i;

	alog_report_requirements(r, &q);
	jsonw_key(w, "requirements");
	jsonw_arr_open(w);
	for (i = 0; i < q.n; i++) {
		jsonw_obj_open(w);
		jsonw_kstr(w, "ref", q.v[i].ref);
		json_items(w, "evidence", q.v[i].items, q.v[i].nitems);
		jsonw_obj_close(w);
	}
	jsonw_arr_close(w);
	json_items(w, "unmapped_evidence", q.unmapped, q.nunmapped);
	alog_reqs_clear(&q);
}

void
alog_report_json(const struct alog_report *r, FILE *f)
{
	struct jsonw w;
	char t[ALOG_TIME_LEN + 1];
	size_t i;

	jsonw_init(&w, 0);
	jsonw_obj_open(&w);
	jsonw_kint(&w, "report_version", 1);
	json_verdict(&w, r);
	jsonw_key(&w, "period");
	jsonw_obj_open(&w);
	alog_time_format(r->first_ms, t);
	jsonw_kstr(&w, "first", r->records ? t : NULL);
	alog_time_format(r->last_ms, t);
	jsonw_kstr(&w, "last", r->records ? t : NULL);
	jsonw_kint(&w, "records", (int64_t)r->records);
	jsonw_obj_close(&w);
	json_starts(&w, r);
	jsonw_key(&w, "messages");
	jsonw_obj_open(&w);
	jsonw_kint(&w, "handed_to_relay", (int64_t)r->txns);
	jsonw_kint(&w, "relayed", (int64_t)r->relayed);
	jsonw_kint(&w, "failed_at_relay", (int64_t)r->failed);
	jsonw_kint(&w, "outcome_unknown", (int64_t)r->unknown);
	json_exceptions(&w, "unknown", &r->unknown_exc);
	jsonw_kint(&w, "recipients_accepted", (int64_t)r->rcpts_ok);
	jsonw_kint(&w, "recipients_refused", (int64_t)r->rcpts_refused);
	jsonw_kint(&w, "octets", (int64_t)r->octets);
	json_counts(&w, "relay_failures", &r->relay_failures);
	jsonw_obj_close(&w);
	json_refusals(&w, r);
	jsonw_key(&w, "dkim");
	jsonw_obj_open(&w);
	jsonw_kint(&w, "signed", (int64_t)r->dkim_signed);
	jsonw_kint(&w, "relayed", (int64_t)r->relayed);
	json_counts(&w, "algorithms", &r->dkim_algos);
	json_exceptions(&w, "exceptions", &r->dkim_exc);
	jsonw_obj_close(&w);
	jsonw_key(&w, "dane");
	jsonw_obj_open(&w);
	jsonw_kint(&w, "verified", (int64_t)r->dane_ok);
	jsonw_kint(&w, "relayed", (int64_t)r->relayed);
	json_counts(&w, "verdicts", &r->dane_verdicts);
	json_exceptions(&w, "exceptions", &r->dane_exc);
	jsonw_obj_close(&w);
	jsonw_key(&w, "tls");
	jsonw_obj_open(&w);
	json_counts(&w, "client_versions", &r->tls_versions);
	json_counts(&w, "client_ciphers", &r->tls_ciphers);
	json_counts(&w, "relay_versions", &r->relay_versions);
	json_counts(&w, "relay_ciphers", &r->relay_ciphers);
	jsonw_obj_close(&w);
	jsonw_key(&w, "auth");
	jsonw_obj_open(&w);
	jsonw_kint(&w, "ok", (int64_t)r->auth[ALOG_AUTH_OK]);
	jsonw_kint(&w, "failed", (int64_t)r->auth[ALOG_AUTH_FAIL]);
	jsonw_kint(&w, "locked", (int64_t)r->auth[ALOG_AUTH_LOCKED]);
	jsonw_kint(&w, "closed", (int64_t)r->auth[ALOG_AUTH_CLOSED]);
	json_auth(&w, "per_login", &r->auth_logins);
	json_auth(&w, "per_client", &r->auth_clients);
	jsonw_obj_close(&w);
	json_counts(&w, "senders", &r->senders);
	jsonw_key(&w, "relay_latency_ms");
	jsonw_obj_open(&w);
	jsonw_kint(&w, "count", (int64_t)r->nlatency);
	jsonw_kint(&w, "p50", r->lat_p50);
	jsonw_kint(&w, "p90", r->lat_p90);
	jsonw_kint(&w, "p99", r->lat_p99);
	jsonw_kint(&w, "max", r->lat_max);
	jsonw_obj_close(&w);
	jsonw_kint(&w, "records_lost", (int64_t)r->lost);
	json_exceptions(&w, "gaps", &r->gaps);
	jsonw_kstr(&w, "profile", r->profile);
	jsonw_key(&w, "log_evidence");
	jsonw_obj_open(&w);
	for (i = 0; i < r->evidence.n; i++)
		jsonw_kstr(&w, r->evidence.v[i].key, r->evidence.v[i].n[0] ? "pass" : "fail");
	jsonw_obj_close(&w);
	json_requirements(&w, r);
	jsonw_obj_close(&w);
	fprintf(f, "%s\n", w.buf);
	jsonw_free(&w);
}
