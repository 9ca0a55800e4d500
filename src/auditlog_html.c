/* auditlog_html.c — the compliance report as one self-contained HTML file:
 * inline CSS and SVG charts, no script, nothing loaded from elsewhere,
 * laid out to print on A4. */
#include "auditlog_report.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHART_W		760
#define BAR_H		18

static const char css[] =
    "body{font:14px/1.4 system-ui,sans-serif;color:#111;max-width:60em;margin:2em auto;padding:0 1em}"
    "h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #999;"
    "margin-top:1.6em}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;"
    "padding:.15em .5em;text-align:left;vertical-align:top}td.n,th.n{text-align:right;"
    "font-variant-numeric:tabular-nums}.verdict{padding:.6em 1em;border:2px solid;margin:1em 0}"
    ".ok{border-color:#1a7f37;background:#e6f4ea}.bad{border-color:#b42318;background:#fdecea}"
    ".muted{color:#555}code{font-size:.95em}svg{display:block;margin:.5em 0}"
    "section{break-inside:avoid-page}"
    "@page{size:A4;margin:15mm}@media print{body{margin:0;max-width:none;font-size:11px}"
    "h2{break-after:avoid}table,svg{break-inside:avoid}}";

/* Text from the log, escaped for HTML. */
static void
esc(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default:
			if ((unsigned char)*s < 0x20 || *s == 0x7f)
				fputc('?', f);
			else
				fputc(*s, f);
		}
	}
}

static void
verdict(const struct alog_report *r, FILE *f)
{
	const struct alog_verdict *v = &r->verdict;
	char a[32], b[32];

	fprintf(f, "<div class=\"verdict %s\"><strong>", v->intact ? "ok" : "bad");
	if (v->intact) {
		fprintf(f, "Log intact.</strong> %llu records (%llu to %llu) in %llu file(s), %llu "
		    "signed checkpoint(s); every record is covered by a signature ",
		    (unsigned long long)v->records, (unsigned long long)v->first_seq,
		    (unsigned long long)v->last_seq, (unsigned long long)v->files,
		    (unsigned long long)v->checkpoints);
		fprintf(f, v->keys_given ? "made with the key given (<code>" :
		    "made with the key the log names (<code>");
		esc(f, v->key);
		fprintf(f, "</code>)%s.", v->keys_given ? "" : "; check it with --public-key");
	} else {
		fprintf(f, "Log NOT intact.</strong> First bad record: %llu (",
		    (unsigned long long)v->bad_seq);
		esc(f, v->bad_file);
		if (v->bad_line > 0)
			fprintf(f, ":%llu", (unsigned long long)v->bad_line);
		fputs("): ", f);
		esc(f, v->why);
		fprintf(f, " Nothing from record %llu on can be trusted.",
		    (unsigned long long)v->bad_seq);
	}
	if (v->partial_start)
		fprintf(f, " The log given starts at record %llu.", (unsigned long long)v->first_seq);
	if (v->intact && !v->stopped) {
		fprintf(f, " The log ends at record %llu without a stop record: ",
		    (unsigned long long)v->last_seq);
		esc(f, alog_unstopped_why);
		fputc('.', f);
	}
	alog_share(r->dkim_signed, r->relayed, a, sizeof(a));
	alog_share(r->dane_ok, r->relayed, b, sizeof(b));
	fprintf(f, "</div>\n<div class=\"verdict %s\"><strong>Promises %s.</strong> DKIM-signed: "
	    "%s; relayed over DANE-verified TLS: %s; records lost: %llu.</div>\n",
	    alog_report_ok(r) ? "ok" : "bad", alog_report_ok(r) ? "kept" : "NOT kept", a, b,
	    (unsigned long long)r->lost);
}

static void
row2(FILE *f, const char *k, uint64_t v)
{
	fprintf(f, "<tr><th>%s</th><td class=\"n\">%llu</td></tr>\n", k, (unsigned long long)v);
}

static void
counts_table(FILE *f, const struct alog_counts *c, uint64_t total, const char *what, size_t max)
{
	const struct alog_count **v = alog_counts_sorted(c, 0);
	char s[32];
	size_t i;

	if (c->n == 0) {
		fprintf(f, "<p class=\"muted\">No %s.</p>\n", what);
		free(v);
		return;
	}
	fprintf(f, "<table><tr><th>%s</th><th class=\"n\">count</th><th class=\"n\">share</th>"
	    "</tr>\n", what);
	for (i = 0; i < c->n && (max == 0 || i < max); i++) {
		alog_share(v[i]->n[0], total, s, sizeof(s));
		fputs("<tr><td>", f);
		esc(f, v[i]->key);
		fprintf(f, "</td><td class=\"n\">%llu</td><td class=\"n\">%s</td></tr>\n",
		    (unsigned long long)v[i]->n[0], s);
	}
	fputs("</table>\n", f);
	free(v);
}

static void
exceptions(FILE *f, const struct alog_exceptions *x)
{
	size_t i;

	if (x->n == 0) {
		fputs("<p>Exceptions: none.</p>\n", f);
		return;
	}
	fprintf(f, "<p><strong>Exceptions: %zu</strong></p><table><tr><th>record</th><th>time"
	    "</th><th>session</th><th>what</th></tr>\n", x->n);
	for (i = 0; i < x->n; i++) {
		fprintf(f, "<tr><td class=\"n\">%llu</td><td>%s</td><td>",
		    (unsigned long long)x->v[i].seq, x->v[i].time);
		esc(f, x->v[i].session);
		fputs("</td><td>", f);
		esc(f, x->v[i].what);
		fputs("</td></tr>\n", f);
	}
	fputs("</table>\n", f);
}

/* A horizontal bar chart of up to `max` entries of c (slot 0). */
static void
hbar_chart(FILE *f, const char *title, const struct alog_counts *c, size_t max)
{
	const struct alog_count **v = alog_counts_sorted(c, 0);
	size_t i, n = c->n < max ? c->n : max;
	uint64_t top = n > 0 ? v[0]->n[0] : 0;
	int h = (int)n * (BAR_H + 6) + 30, label = 260, w = CHART_W - label - 70;

	fprintf(f, "<svg role=\"img\" aria-label=\"%s\" width=\"%d\" height=\"%d\" viewBox=\"0 0 "
	    "%d %d\" xmlns=\"http://www.w3.org/2000/svg\"><title>%s</title>\n", title, CHART_W, h,
	    CHART_W, h, title);
	fprintf(f, "<text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"bold\">%s</text>\n",
	    title);
	if (n == 0)
		fprintf(f, "<text x=\"0\" y=\"34\" font-size=\"12\" fill=\"#555\">none</text>\n");
	for (i = 0; i < n; i++) {
		int y = 24 + (int)i * (BAR_H + 6);
		int bw = top ? (int)((uint64_t)w * v[i]->n[0] / top) : 0;
		char k[48];

		snprintf(k, sizeof(k), "%s", v[i]->key);
		fprintf(f, "<text x=\"0\" y=\"%d\" font-size=\"12\">", y + 13);
		esc(f, k);
		fprintf(f, "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
		    "fill=\"#3b6ea8\"/><text x=\"%d\" y=\"%d\" font-size=\"12\">%llu</text>\n",
		    label, y, bw > 0 ? bw : 1, BAR_H, label + bw + 6, y + 13,
		    (unsigned long long)v[i]->n[0]);
	}
	fputs("</svg>\n", f);
	free(v);
}

/* Messages per hour or day: stacked bars relayed / failed / refused. */
static void
time_chart(const struct alog_report *r, FILE *f)
{
	static const char *const colors[3] = { "#1a7f37", "#d4a017", "#b42318" };
	static const char *const names[3] = { "relayed", "failed at the relay", "refused" };
	int64_t per = r->bucket_ms / 3600000, first, last, i, nb;
	uint64_t (*b)[3], top = 1;
	const char *unit = per == 1 ? "hour" : "day";
	int h = 220, plot = 160, x0 = 40, w = CHART_W - x0 - 10, k;
	size_t j;

	if (r->buckets.n == 0) {
		fprintf(f, "<p class=\"muted\">No messages in the period.</p>\n");
		return;
	}
	first = r->first_ms / r->bucket_ms;
	last = r->last_ms / r->bucket_ms;
	nb = last - first + 1;
	if (nb > 2000)		/* a chart of more bars is unreadable anyway */
		nb = 2000;
	b = xcalloc((size_t)nb, sizeof(*b));
	for (j = 0; j < r->buckets.n; j++) {
		int64_t idx = strtoll(r->buckets.v[j].key, NULL, 10) / per - first;

		if (idx < 0 || idx >= nb)
			continue;
		for (k = 0; k < 3; k++)
			b[idx][k] += r->buckets.v[j].n[k];
	}
	for (i = 0; i < nb; i++)
		if (b[i][0] + b[i][1] + b[i][2] > top)
			top = b[i][0] + b[i][1] + b[i][2];
	fprintf(f, "<svg role=\"img\" aria-label=\"Messages per %s\" width=\"%d\" height=\"%d\" "
	    "viewBox=\"0 0 %d %d\" xmlns=\"http://www.w3.org/2000/svg\"><title>Messages per %s"
	    "</title>\n", unit, CHART_W, h + 20, CHART_W, h + 20, unit);
	fprintf(f, "<text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"bold\">Messages per "
	    "%s</text>\n<text x=\"0\" y=\"%d\" font-size=\"11\">%llu</text><text x=\"0\" y=\"%d\" "
	    "font-size=\"11\">0</text>\n", unit, 30, (unsigned long long)top, 20 + plot);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>\n", x0,
	    20 + plot, x0 + w, 20 + plot);
	for (i = 0; i < nb; i++) {
		double bw = (double)w / (double)nb, y = 20 + plot;

		for (k = 0; k < 3; k++) {
			double bh = (double)plot * (double)b[i][k] / (double)top;

			if (b[i][k] == 0)
				continue;
			y -= bh;
			fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
			    "fill=\"%s\"/>\n", x0 + bw * (double)i, y, bw > 2 ? bw - 1 : bw, bh,
			    colors[k]);
		}
	}
	for (k = 0; k < 3; k++)
		fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text "
		    "x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n", x0 + k * 180, h + 6,
		    colors[k], x0 + k * 180 + 14, h + 15, names[k]);
	fputs("</svg>\n", f);
	free(b);
}

static void
starts(const struct alog_report *r, FILE *f)
{
	size_t i, j;

	fputs("<section><h2>Starts, stops and rechecks</h2>\n", f);
	if (r->nstarts == 0 && r->nstops == 0 && r->nrechecks == 0) {
		fputs("<p class=\"muted\">None in the period.</p></section>\n", f);
		return;
	}
	fputs("<table><tr><th>record</th><th>time</th><th>event</th><th>details</th></tr>\n", f);
	for (i = 0; i < r->nstarts; i++) {
		const struct alog_start *s = &r->starts[i];

		fprintf(f, "<tr><td class=\"n\">%llu</td><td>%s</td><td>start</td><td>version ",
		    (unsigned long long)s->seq, s->time);
		esc(f, s->version);
		fputs(", profile ", f);
		esc(f, s->profile);
		fputs(", self-audit <strong>", f);
		esc(f, s->result);
		fprintf(f, "</strong> (%lld checks)", (long long)s->checks);
		for (j = 0; j < s->nfailed; j++) {
			fputs(j ? ", " : "<br>failed: ", f);
			esc(f, s->failed[j]);
		}
		for (j = 0; j < s->nwarned; j++) {
			fputs(j ? ", " : "<br>warned: ", f);
			esc(f, s->warned[j]);
		}
		fputs("<br>configuration sha256 <code>", f);
		esc(f, s->config);
		fputs("</code></td></tr>\n", f);
	}
	for (i = 0; i < r->nstops; i++) {
		fprintf(f, "<tr><td class=\"n\">%llu</td><td>%s</td><td>stop</td><td>",
		    (unsigned long long)r->stops[i].seq, r->stops[i].time);
		esc(f, r->stops[i].reason);
		if (r->stops[i].detail[0]) {
			fputs(": ", f);
			esc(f, r->stops[i].detail);
		}
		fprintf(f, ", status %lld</td></tr>\n", (long long)r->stops[i].status);
	}
	for (i = 0; i < r->nrechecks; i++) {
		const struct alog_recheck *c = &r->rechecks[i];

		fprintf(f, "<tr><td class=\"n\">%llu</td><td>%s</td><td>recheck</td><td>",
		    (unsigned long long)c->seq, c->time);
		esc(f, c->check);
		fputs(" <strong>", f);
		esc(f, c->result);
		fputs("</strong> (status ", f);
		esc(f, c->status);
		fprintf(f, "%s): ", c->required ? ", required" : "");
		esc(f, c->summary);
		if (c->remedy[0]) {
			fputs("<br>fix: ", f);
			esc(f, c->remedy);
		}
		fputs("</td></tr>\n", f);
	}
	fputs("</table></section>\n", f);
}

static void
refusals(const struct alog_report *r, FILE *f)
{
	const struct alog_count **v = alog_counts_sorted(&r->refusals, 0);
	struct alog_counts by_reason;
	size_t i;

	memset(&by_reason, 0, sizeof(by_reason));
	fprintf(f, "<section><h2>Refusals: %llu</h2>\n", (unsigned long long)r->nrefusals);
	if (r->refusals.n > 0)
		fputs("<table><tr><th>stage</th><th>code</th><th>enhanced</th><th>reason</th>"
		    "<th class=\"n\">count</th></tr>\n", f);
	for (i = 0; i < r->refusals.n; i++) {
		struct alog_refusal_key k;

		alog_refusal_split(v[i]->key, &k);
		fputs("<tr><td>", f);
		esc(f, k.stage);
		fputs("</td><td>", f);
		esc(f, k.code);
		fputs("</td><td>", f);
		esc(f, k.enh);
		fputs("</td><td>", f);
		esc(f, k.reason);
		fprintf(f, "</td><td class=\"n\">%llu</td></tr>\n", (unsigned long long)v[i]->n[0]);
		alog_counts_add(&by_reason, k.reason, 0, v[i]->n[0]);
	}
	if (r->refusals.n > 0)
		fputs("</table>\n", f);
	hbar_chart(f, "Refusals by reason", &by_reason, 10);
	fputs("</section>\n", f);
	alog_counts_clear(&by_reason);
	free(v);
}

static void
auth_table(FILE *f, const char *what, const struct alog_counts *c)
{
	const struct alog_count **v = alog_counts_sorted(c, ALOG_AUTH_FAIL);
	size_t i;

	if (c->n == 0) {
		free(v);
		return;
	}
	fprintf(f, "<table><tr><th>%s</th><th class=\"n\">ok</th><th class=\"n\">failed</th>"
	    "<th class=\"n\">locked</th><th class=\"n\">closed</th></tr>\n", what);
	for (i = 0; i < c->n; i++) {
		fputs("<tr><td>", f);
		esc(f, v[i]->key);
		fprintf(f, "</td><td class=\"n\">%llu</td><td class=\"n\">%llu</td><td class=\"n\">"
		    "%llu</td><td class=\"n\">%llu</td></tr>\n",
		    (unsigned long long)v[i]->n[ALOG_AUTH_OK],
		    (unsigned long long)v[i]->n[ALOG_AUTH_FAIL],
		    (unsigned long long)v[i]->n[ALOG_AUTH_LOCKED],
		    (unsigned long long)v[i]->n[ALOG_AUTH_CLOSED]);
	}
	fputs("</table>\n", f);
	free(v);
}

static void
item(FILE *f, const struct alog_item *it)
{
	fprintf(f, "<span class=\"%s\">%s ", strcmp(it->status, "pass") == 0 ? "muted" : "",
	    it->check ? "check" : "log");
	esc(f, it->id);
	fprintf(f, ": %s</span>", it->status);
}

static void
requirements(const struct alog_report *r, FILE *f)
{
	struct alog_reqs q;
	size_t i, j;

	alog_report_requirements(r, &q);
	fputs("<section><h2>Requirements of profile ", f);
	esc(f, r->profile ? r->profile : "(no start record)");
	fputs("</h2>\n", f);
	if (q.start[0])
		fprintf(f, "<p class=\"muted\">Self-audit of the start at %s.</p>\n", q.start);
	if (!q.have_profile)
		fputs("<p class=\"muted\">The profile is unknown to this subproxy.</p>\n", f);
	if (q.n > 0)
		fputs("<table><tr><th>requirement</th><th>evidence</th></tr>\n", f);
	for (i = 0; i < q.n; i++) {
		fputs("<tr><td><code>", f);
		esc(f, q.v[i].ref);
		fputs("</code></td><td>", f);
		if (q.v[i].nitems == 0)
			fputs("<span class=\"muted\">no evidence in this period</span>", f);
		for (j = 0; j < q.v[i].nitems; j++) {
			if (j)
				fputs("<br>", f);
			item(f, &q.v[i].items[j]);
		}
		fputs("</td></tr>\n", f);
	}
	if (q.n > 0)
		fputs("</table>\n", f);
	if (q.nunmapped > 0) {
		fputs("<p>Evidence the profile maps to no published requirement id:</p><p>\n", f);
		for (i = 0; i < q.nunmapped; i++) {
			if (i)
				fputs(", ", f);
			item(f, &q.unmapped[i]);
		}
		fputs("</p>\n", f);
	}
	fputs("</section>\n", f);
	alog_reqs_clear(&q);
}

void
alog_report_html(const struct alog_report *r, FILE *f)
{
	char a[ALOG_TIME_LEN + 1], b[ALOG_TIME_LEN + 1], s[32];

	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	    "<title>subproxy audit log report</title><style>%s</style></head><body>\n", css);
	alog_time_format(r->first_ms, a);
	alog_time_format(r->last_ms, b);
	fprintf(f, "<h1>subproxy audit log report</h1>\n<p class=\"muted\">Period %s to %s, "
	    "%llu records.</p>\n", r->records ? a : "-", r->records ? b : "-",
	    (unsigned long long)r->records);
	verdict(r, f);
	starts(r, f);
	fputs("<section><h2>Messages</h2>\n<table>\n", f);
	row2(f, "handed to the relay", r->txns);
	row2(f, "relayed (accepted)", r->relayed);
	row2(f, "failed at the relay", r->failed);
	row2(f, "outcome unknown (session ended before the relay's reply)", r->unknown);
	row2(f, "recipients accepted", r->rcpts_ok);
	row2(f, "recipients refused", r->rcpts_refused);
	row2(f, "octets relayed", r->octets);
	fputs("</table>\n", f);
	if (r->relay_failures.n > 0)
		counts_table(f, &r->relay_failures, r->failed, "failure at the relay", 0);
	if (r->unknown > 0)
		exceptions(f, &r->unknown_exc);
	time_chart(r, f);
	fputs("</section>\n", f);
	refusals(r, f);
	alog_share(r->dkim_signed, r->relayed, s, sizeof(s));
	fprintf(f, "<section><h2>DKIM: %s of relayed messages signed</h2>\n<p>%llu of %llu.</p>\n",
	    s, (unsigned long long)r->dkim_signed, (unsigned long long)r->relayed);
	counts_table(f, &r->dkim_algos, r->relayed, "algorithm", 0);
	exceptions(f, &r->dkim_exc);
	alog_share(r->dane_ok, r->relayed, s, sizeof(s));
	fprintf(f, "</section>\n<section><h2>DANE: %s of relayed messages over DANE-verified "
	    "TLS</h2>\n<p>%llu of %llu.</p>\n", s, (unsigned long long)r->dane_ok,
	    (unsigned long long)r->relayed);
	counts_table(f, &r->dane_verdicts, r->relayed, "verdict", 0);
	exceptions(f, &r->dane_exc);
	fputs("</section>\n<section><h2>TLS</h2>\n", f);
	hbar_chart(f, "Client TLS versions", &r->tls_versions, 10);
	counts_table(f, &r->tls_ciphers, r->txns, "client cipher suite", 0);
	counts_table(f, &r->relay_versions, r->relayed, "relay TLS version", 0);
	counts_table(f, &r->relay_ciphers, r->relayed, "relay cipher suite", 0);
	fprintf(f, "</section>\n<section><h2>AUTH</h2>\n<p>%llu succeeded, %llu failed, %llu "
	    "refused by lockout, %llu sessions closed after too many failures.</p>\n",
	    (unsigned long long)r->auth[ALOG_AUTH_OK], (unsigned long long)r->auth[ALOG_AUTH_FAIL],
	    (unsigned long long)r->auth[ALOG_AUTH_LOCKED],
	    (unsigned long long)r->auth[ALOG_AUTH_CLOSED]);
	auth_table(f, "login", &r->auth_logins);
	auth_table(f, "client address", &r->auth_clients);
	fputs("</section>\n<section><h2>Top senders</h2>\n", f);
	counts_table(f, &r->senders, r->relayed, "login", 10);
	fprintf(f, "</section>\n<section><h2>Relay latency</h2>\n<p>From handing the message to "
	    "the relay to its final reply, %zu messages: p50 %lld ms, p90 %lld ms, p99 %lld ms, "
	    "max %lld ms.</p></section>\n", r->nlatency, (long long)r->lat_p50,
	    (long long)r->lat_p90, (long long)r->lat_p99, (long long)r->lat_max);
	fprintf(f, "<section><h2>Records lost: %llu</h2>\n", (unsigned long long)r->lost);
	exceptions(f, &r->gaps);
	fputs("</section>\n", f);
	requirements(r, f);
	fputs("</body></html>\n", f);
}
