/*
 * metrics.h — counters, gauges and histograms in one block of shared memory.
 *
 * The parent maps the block (MAP_SHARED|MAP_ANONYMOUS) before it forks
 * anything, so every process inherits it.  The block is an array of
 * slices; each process writes only its own slice (metrics_attach()), with
 * plain relaxed atomic stores: no lock, no system call per event.  Readers
 * (the metrics responder in front, the parent's STATUS= line) sum all
 * slices.  When a writer ends, the parent folds its counters and histograms
 * into the retired slice and clears its gauges (metrics_fold()), so counters
 * stay monotonic across worker restarts; a sequence counter lets readers
 * retry a sum that raced with a fold.
 *
 * Slices: METRICS_SLICE_RETIRED (dead writers' counts), then for each
 * generation half (a reload runs a new generation of processes beside the
 * draining old one: halves A and B alternate) one for the signer and one
 * for the keeper, then one for the recorder (one for the whole run), then
 * one per front worker slot (METRICS_SLICE_FRONT + slot; slots of half A
 * first, then those of half B).  Each slice also carries a heartbeat
 * (metrics_beat(), the time of the writer's last loop iteration) and a
 * "serving" flag, which the parent reads for systemd's READY=1 and
 * WATCHDOG=1 (see sdnotify.h).
 *
 * What front writes can be forged by a compromised front: the parent uses
 * the block only for liveness, readiness and the STATUS= line, bounds every
 * index it reads, and never follows anything in it.  The signer and
 * recorder only write their heartbeat, the keeper also its AUTH counters
 * and its queue gauge (under its own mutex: one writer at a time); none of
 * them reads the block.
 *
 * Adding a metric: a family id below (counters and gauges), a row in the
 * family table in metrics.c (name, help, labels), and a metrics_count()
 * call where the event happens.  The capacities below are fixed so that
 * the layout does not change with the table; metrics_init() checks that
 * the table fits.
 *
 * Without metrics_init() (unit tests, --check) every write goes to a
 * private dummy slice: callers never test for it.
 */
#ifndef SUBPROXY_METRICS_H
#define SUBPROXY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_COUNTERS_MAX	160	/* counter cells (family x label) */
#define METRICS_GAUGES_MAX	16
#define METRICS_HISTS_MAX	8	/* histogram cells (family x label) */
#define METRICS_BUCKETS		14	/* upper bounds incl. +Inf */
#define METRICS_CHECKS_MAX	256	/* self-audit check ids */
#define METRICS_CHECK_ID_MAX	128

#define METRICS_SLICE_RETIRED	0
#define METRICS_SLICE_SIGNER	1	/* half A; + METRICS_HALF_ROLES for half B */
#define METRICS_SLICE_KEEPER	2
#define METRICS_HALF_ROLES	2	/* role slices per generation half */
#define METRICS_SLICE_RECORDER	(1 + 2 * METRICS_HALF_ROLES)	/* the audit log's recorder
							 * (heartbeat only) */
#define METRICS_SLICE_FRONT	(METRICS_SLICE_RECORDER + 1)	/* + slot */

/* Counter families (summed over slices).  Labels in metrics.c. */
enum metrics_family {
	MF_SESSIONS,		/* subproxy_sessions_total */
	MF_AUTH,		/* subproxy_auth_total{result} */
	MF_AUTH_CACHE,		/* subproxy_auth_cache_hits_total (keeper) */
	MF_AUTH_CACHE_MISSES,	/* subproxy_auth_cache_misses_total (keeper) */
	MF_AUTH_CANCELLED,	/* subproxy_auth_cancelled_total (keeper) */
	MF_RELAYED,		/* subproxy_messages_relayed_total */
	MF_REFUSED,		/* subproxy_messages_refused_total{code} */
	MF_DKIM,		/* subproxy_dkim_signatures_total{algorithm} */
	MF_DANE,		/* subproxy_relay_dane_total{verdict} */
	MF_RELOADS,		/* subproxy_reloads_total{result} */
	MF_RECHECKS,		/* subproxy_audit_rechecks_total */
	MF_SHUTDOWN_CUT,	/* subproxy_shutdown_cut_total */
	MF_RATELIMIT_REFUSED,	/* subproxy_ratelimit_refused_total{limit} */
	MF_PROXY_REFUSED,	/* subproxy_proxy_refused_total{reason} */
	MF_RELAY_OPENED,	/* subproxy_relay_connections_opened_total{handshake} */
	MF_RELAY_REUSED,	/* subproxy_relay_connections_reused_total{result} */
	MF_MAX
};

/* Labels of MF_AUTH, in order. */
enum metrics_auth { MA_OK, MA_FAIL, MA_LOCKED, MA_BUSY, MA_ERROR };
/* Labels of MF_RELOADS. */
enum metrics_reload { MR_OK, MR_FAILED };
/* Labels of MF_RATELIMIT_REFUSED: the limit that refused. */
enum metrics_ratelimit { MRL_MESSAGES, MRL_RECIPIENTS, MRL_AUTH, MRL_SESSIONS };
/* Labels of MF_PROXY_REFUSED: why a connection to a proxy-protocol listener
 * was closed before it became a session (proxyin.h). */
enum metrics_proxy_refused {
	MPR_SOURCE,		/* not in proxy-from */
	MPR_CONNECTIONS,	/* [limits] connections reached */
	MPR_INVALID,		/* malformed, oversized or unsupported header */
	MPR_CLOSED,		/* closed (or failed) before the header was complete */
	MPR_TIMEOUT		/* no complete header within proxy-timeout */
};

/* Labels of MF_RELAY_OPENED: the TLS handshake of a new verified relay
 * connection. */
enum metrics_relay_opened { MRO_FULL, MRO_RESUMED };
/* Labels of MF_RELAY_REUSED: an idle relay connection taken up again was
 * alive, or found dead before MAIL was accepted (and replaced). */
enum metrics_relay_reused { MRU_ALIVE, MRU_DEAD };

/* Gauges (summed over slices; cleared when a writer ends). */
enum metrics_gauge {
	MG_SESSIONS_OPEN,	/* subproxy_sessions_open */
	MG_RELAY_IDLE,		/* subproxy_relay_connections_idle */
	MG_AUTH_QUEUE,		/* subproxy_auth_queue_checks (keeper) */
	MG_SIGNER_REQUESTS,	/* subproxy_signer_messages */
	MG_SIGNER_WAITING,	/* subproxy_signer_waiting_messages */
	MG_TXN_ACTIVE,		/* subproxy_transactions */
	MG_TXN_WAITING,		/* subproxy_transactions_waiting */
	MG_MAX
};

/* Histogram families (summed over slices). */
enum metrics_hist {
	MH_RELAY_REPLY,		/* subproxy_relay_reply_seconds{command} */
	MH_MAX
};
/* Labels of MH_RELAY_REPLY. */
enum metrics_relay_cmd { MRC_MAIL, MRC_RCPT, MRC_DATA };

/* ---- the parent ---- */

/* Map the block with `nslices` slices (at least METRICS_SLICE_FRONT + 1);
 * beat_ms is the heartbeat interval the writers are asked to keep.  The
 * calling process writes the retired slice until metrics_attach().
 * Returns 0, or -1 with errno (the table does not fit: EOVERFLOW). */
int metrics_init(size_t nslices, unsigned beat_ms);

/* A writer in `slice` has ended: add its counters and histograms to the
 * retired slice, clear the slice (gauges, heartbeat, serving).  Only the
 * parent calls it, after the writer is reaped. */
void metrics_fold(size_t slice);

/* Milliseconds since the writer of `slice` last called metrics_beat(), or
 * UINT64_MAX when it never did (or slice is out of range). */
uint64_t metrics_beat_age(size_t slice);

/* 1 when the writer of `slice` said it serves (metrics_set_serving()). */
int metrics_serving(size_t slice);

/* The self-audit's check ids and their first results (1 ok, 0 failed):
 * replaces the table.  Ids longer than METRICS_CHECK_ID_MAX - 1 or beyond
 * METRICS_CHECKS_MAX are left out. */
void metrics_checks_reset(void);
void metrics_check_add(const char *id, int ok);

/* Role slices (METRICS_SLICE_SIGNER, METRICS_SLICE_KEEPER) that children
 * forked from now on attach to belong to generation half `half` (0 or 1):
 * call it before forking a generation's signer and keeper.  The slice a
 * role of half `half` writes is metrics_role_slice(role, half). */
void metrics_set_half(unsigned half);
size_t metrics_role_slice(size_t role, unsigned half);

/* ---- every writer ---- */

/* Write slice `slice` from now on (after fork); a role slice is taken from
 * the half set by metrics_set_half().  Out of range: the dummy. */
void metrics_attach(size_t slice);

/* +1 (or +n) on counter `label` of family f.  Out-of-range labels count
 * as the family's last label (its "other") when it has one, else nothing. */
void metrics_count(enum metrics_family f, unsigned label);
void metrics_add(enum metrics_family f, unsigned label, uint64_t n);

/* The label index of `name` in family f (MF_REFUSED: an enhanced status
 * code "5.7.1"; MF_DANE: a verdict name), or the family's "other" label. */
unsigned metrics_label(enum metrics_family f, const char *name);

/* Count the DKIM-Signature fields in `headers` (CRLF-separated header
 * fields as the signer returns them) by their a= tag. */
void metrics_count_dkim(const char *headers);

void metrics_gauge_add(enum metrics_gauge g, int64_t delta);

/* One observation of `usec` microseconds in histogram h, label. */
void metrics_observe(enum metrics_hist h, unsigned label, uint64_t usec);

/* Heartbeat: the writer's loop runs (CLOCK_MONOTONIC, no system call on
 * the vDSO path).  metrics_beat_interval() is how often the parent wants
 * it, in milliseconds (-1 without a block: never). */
void metrics_beat(void);
int metrics_beat_interval(void);

/* The same with the time (metrics_now_ms()) of the loop that ran longest
 * ago, for a writer whose loops are several threads: one stuck thread stops
 * its heartbeat as a stuck single loop would. */
void metrics_beat_at(uint64_t ms);

/* This writer accepts work now (front: listeners enabled), or no longer
 * does (front: draining after a reload). */
void metrics_set_serving(void);
void metrics_clear_serving(void);

/* Set the result of check `id` (1 ok, 0 failed); unknown ids are ignored.
 * One writer (the recheck in front worker 0). */
void metrics_check_set(const char *id, int ok);
/* Time of the last recheck (seconds since the epoch). */
void metrics_recheck_time(int64_t when);

/* Milliseconds of CLOCK_MONOTONIC (for latencies and ages). */
uint64_t metrics_now_ms(void);
uint64_t metrics_now_us(void);

/* ---- readers ---- */

struct metrics_check_state {
	char id[METRICS_CHECK_ID_MAX];
	int ok;
};

struct metrics_snapshot {
	uint64_t c[METRICS_COUNTERS_MAX];
	int64_t g[METRICS_GAUGES_MAX];
	uint64_t hb[METRICS_HISTS_MAX][METRICS_BUCKETS];	/* per bucket, not cumulative */
	uint64_t hsum_us[METRICS_HISTS_MAX];
	struct metrics_check_state checks[METRICS_CHECKS_MAX];
	size_t nchecks;
	int64_t start_time, recheck_time;
};

/* Sum every slice into *s (retries a sum that raced with a fold). */
void metrics_snapshot(struct metrics_snapshot *s);

/* Value of counter f/label and gauge g in a snapshot. */
uint64_t metrics_snap_counter(const struct metrics_snapshot *s, enum metrics_family f,
    unsigned label);
uint64_t metrics_snap_family(const struct metrics_snapshot *s, enum metrics_family f);

/* ---- exposition (pure) ---- */

enum metrics_format { METRICS_PROMETHEUS, METRICS_OPENMETRICS };

/* A growing text buffer (xrealloc: never fails). */
struct metrics_text {
	char *p;
	size_t len, cap;
};

/* The whole exposition of snapshot s in the given format (Prometheus text
 * 0.0.4, or OpenMetrics 1.0 ending in "# EOF"), appended to t. */
void metrics_format(const struct metrics_snapshot *s, enum metrics_format fmt,
    const char *version, struct metrics_text *t);
void metrics_text_free(struct metrics_text *t);

/* The Content-Type of a format. */
const char *metrics_content_type(enum metrics_format fmt);

#endif
