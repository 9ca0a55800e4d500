/*
 * metrics_text.c — the text exposition of a metrics snapshot: Prometheus
 * text format 0.0.4 and OpenMetrics 1.0.  Pure: no I/O.
 *
 * The two differ only in details: OpenMetrics names a counter family
 * without its "_total" suffix in HELP/TYPE, has an "info" type for the
 * build information, and ends with "# EOF".
 */
#include "metrics.h"
#include "metrics_int.h"

#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Canonical float texts of metrics_bounds_us (OpenMetrics wants "1.0"). */
static const char *const bound_text[METRICS_BUCKETS] = {
	"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
	"30.0", "60.0", "+Inf"
};

static void text_add(struct metrics_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
text_add(struct metrics_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = t->cap - t->len;

		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		t->cap = (t->cap + (size_t)n + 1) * 2;
		t->p = xrealloc(t->p, t->cap);
	}
}

void
metrics_text_free(struct metrics_text *t)
{
	free(t->p);
	memset(t, 0, sizeof(*t));
}

/* A label value: backslash, double quote and newline escaped; anything
 * outside printable ASCII as '?' (our values are ASCII ids anyway). */
static void
add_label_value(struct metrics_text *t, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			text_add(t, "\\%c", *v);
		else if (*v == '\n')
			text_add(t, "\\n");
		else
			text_add(t, "%c", (*v >= 0x20 && *v < 0x7f) ? *v : '?');
	}
}

static void
add_meta(struct metrics_text *t, const char *name, const char *suffix, const char *type,
    const char *help)
{
	text_add(t, "# HELP %s%s %s\n# TYPE %s%s %s\n", name, suffix, help, name, suffix, type);
}

static void
add_counters(struct metrics_text *t, const struct metrics_snapshot *s, enum metrics_format fmt)
{
	size_t f;
	unsigned i;

	for (f = 0; f < MF_MAX; f++) {
		const struct metrics_family_info *fi = &metrics_families[f];

		add_meta(t, fi->name, fmt == METRICS_OPENMETRICS ? "" : "_total", "counter",
		    fi->help);
		for (i = 0; i < fi->nvalues; i++) {
			uint64_t v = s->c[metrics_counter_cell((enum metrics_family)f, i)];

			if (fi->label == NULL) {
				text_add(t, "%s_total %llu\n", fi->name, (unsigned long long)v);
				continue;
			}
			text_add(t, "%s_total{%s=\"", fi->name, fi->label);
			add_label_value(t, fi->values[i]);
			text_add(t, "\"} %llu\n", (unsigned long long)v);
		}
	}
}

static void
add_hists(struct metrics_text *t, const struct metrics_snapshot *s)
{
	size_t h, b;
	unsigned i;

	for (h = 0; h < MH_MAX; h++) {
		const struct metrics_hist_info *hi = &metrics_hists[h];

		add_meta(t, hi->name, "", "histogram", hi->help);
		for (i = 0; i < hi->nvalues; i++) {
			size_t cell = metrics_hist_cell((enum metrics_hist)h, i);
			uint64_t cum = 0;

			for (b = 0; b < METRICS_BUCKETS; b++) {
				cum += s->hb[cell][b];
				text_add(t, "%s_bucket{%s=\"%s\",le=\"%s\"} %llu\n", hi->name,
				    hi->label, hi->values[i], bound_text[b], (unsigned long long)cum);
			}
			text_add(t, "%s_sum{%s=\"%s\"} %llu.%06llu\n", hi->name, hi->label,
			    hi->values[i], (unsigned long long)(s->hsum_us[cell] / 1000000),
			    (unsigned long long)(s->hsum_us[cell] % 1000000));
			text_add(t, "%s_count{%s=\"%s\"} %llu\n", hi->name, hi->label,
			    hi->values[i], (unsigned long long)cum);
		}
	}
}

static void
add_gauges(struct metrics_text *t, const struct metrics_snapshot *s, enum metrics_format fmt,
    const char *version)
{
	size_t g, i;

	for (g = 0; g < MG_MAX; g++) {
		add_meta(t, metrics_gauges[g].name, "", "gauge", metrics_gauges[g].help);
		text_add(t, "%s %lld\n", metrics_gauges[g].name, (long long)s->g[g]);
	}
	add_meta(t, "subproxy_audit_check_ok", "", "gauge", "Self-audit check results: 1 "
	    "passed (or warned), 0 failed.  DNS checks are re-run every [audit] recheck, "
	    "the others are the results at start.");
	for (i = 0; i < s->nchecks; i++) {
		text_add(t, "subproxy_audit_check_ok{check=\"");
		add_label_value(t, s->checks[i].id);
		text_add(t, "\"} %d\n", s->checks[i].ok ? 1 : 0);
	}
	add_meta(t, "subproxy_audit_recheck_timestamp_seconds", "", "gauge", "When the live "
	    "self-audit last finished (0: not yet).");
	text_add(t, "subproxy_audit_recheck_timestamp_seconds %lld\n",
	    (long long)s->recheck_time);
	add_meta(t, "subproxy_start_time_seconds", "", "gauge", "When subproxy started, "
	    "seconds since the epoch.");
	text_add(t, "subproxy_start_time_seconds %lld\n", (long long)s->start_time);
	if (fmt == METRICS_OPENMETRICS)
		add_meta(t, "subproxy_build", "", "info", "subproxy's version.");
	else
		add_meta(t, "subproxy_build_info", "", "gauge", "subproxy's version.");
	text_add(t, "subproxy_build_info{version=\"");
	add_label_value(t, version);
	text_add(t, "\"} 1\n");
}

void
metrics_format(const struct metrics_snapshot *s, enum metrics_format fmt, const char *version,
    struct metrics_text *t)
{
	add_counters(t, s, fmt);
	add_gauges(t, s, fmt, version);
	add_hists(t, s);
	if (fmt == METRICS_OPENMETRICS)
		text_add(t, "# EOF\n");
}

const char *
metrics_content_type(enum metrics_format fmt)
{
	return fmt == METRICS_OPENMETRICS ?
	    "application/openmetrics-text; version=1.0.0; charset=utf-8" :
	    "text/plain; version=0.0.4; charset=utf-8";
}
