/*
 * metrics_int.h — the family tables shared by metrics.c (the block) and
 * metrics_text.c (the exposition).  Not for other modules.
 */
#ifndef SUBPROXY_METRICS_INT_H
#define SUBPROXY_METRICS_INT_H

#include "metrics.h"

struct metrics_family_info {
	const char *name;		/* counters: without "_total" */
	const char *help;
	const char *label;		/* NULL: no label */
	const char *const *values;	/* label values */
	unsigned nvalues;		/* 1 without a label */
	int has_other;			/* the last value catches unknown names */
};

struct metrics_gauge_info {
	const char *name, *help;
};

struct metrics_hist_info {
	const char *name, *help, *label;
	const char *const *values;
	unsigned nvalues;
};

extern const struct metrics_family_info metrics_families[MF_MAX];
extern const struct metrics_gauge_info metrics_gauges[MG_MAX];
extern const struct metrics_hist_info metrics_hists[MH_MAX];
/* Upper bounds of the first METRICS_BUCKETS - 1 buckets, microseconds. */
extern const uint64_t metrics_bounds_us[METRICS_BUCKETS - 1];

/* Index of a counter / histogram cell in a slice. */
size_t metrics_counter_cell(enum metrics_family f, unsigned label);
size_t metrics_hist_cell(enum metrics_hist h, unsigned label);

#endif
