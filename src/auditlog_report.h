/*
 * auditlog_report.h — the compliance report of an audit log (`subproxy
 * --report`): aggregation (pure) and the text, JSON and HTML renderings.
 *
 * The caller verifies the log (auditlog_verify.h), hands every record it
 * read to alog_report_add() and the verdict to alog_report_finish(); the
 * report counts only records whose time is within [since, until).  What it
 * gathers for the period:
 *   - every start (version, profile, the self-audit result and its check ids)
 *     and stop, and every check of the live self-audit that failed or
 *     recovered while serving (recheck records);
 *   - transactions: handed to the relay, relayed (2xx), failed at the relay,
 *     outcome unknown (final.unknown: the session ended before the relay's
 *     final reply; each one listed, neither relayed nor failed);
 *     recipients; octets; refusals by stage, reply, enhanced code and reason
 *     (a summary record counts as many as its "count");
 *   - DKIM: relayed messages signed, per algorithm, and every relayed
 *     message not signed (or not signed with an algorithm the profile
 *     requires) as an exception;
 *   - DANE: relayed messages whose relay leg was DANE-verified, per verdict,
 *     and every other one as an exception;
 *   - TLS versions and ciphers of the client leg (and the relay leg);
 *   - AUTH successes, failures and lockouts per login and per client address;
 *   - top senders (logins by relayed messages), relay latency percentiles,
 *     messages per hour (or per day for long periods), records lost (gap);
 *   - per requirement of the active profile (the profile of the last start):
 *     the self-audit checks and the log evidence (ids log.*) that the
 *     profile maps to it.
 */
#ifndef SUBPROXY_AUDITLOG_REPORT_H
#define SUBPROXY_AUDITLOG_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "auditlog_verify.h"

struct json;

/* A counted key with a few counters (meaning depends on the table). */
struct alog_count {
	char *key;
	uint64_t n[4];
};

/* A hash table of alog_count; entries in insertion order. */
struct alog_counts {
	struct alog_count *v;
	size_t n, cap;
	size_t *slots;			/* index + 1; 0 = empty */
	size_t nslots;
};

/* One message that breaks a 100% promise. */
struct alog_exception {
	uint64_t seq;
	char time[ALOG_TIME_LEN + 1];
	char *session;
	char *what;			/* one sentence */
};

struct alog_exceptions {
	struct alog_exception *v;
	size_t n, cap;
};

struct alog_start {
	uint64_t seq;
	char time[ALOG_TIME_LEN + 1];
	char *version, *profile, *config, *result, *key;
	int64_t checks;
	char **passed, **warned, **failed;
	size_t npassed, nwarned, nfailed;
};

/* A check of the live self-audit that failed or recovered while serving. */
struct alog_recheck {
	uint64_t seq;
	char time[ALOG_TIME_LEN + 1];
	char *check, *result, *status, *summary, *remedy;	/* remedy "" none */
	int required;
};

struct alog_stop {
	uint64_t seq;
	char time[ALOG_TIME_LEN + 1];
	char *reason, *detail;
	int64_t status;
};

/* Counters of struct alog_count.n for the tables below. */
enum { ALOG_AUTH_OK, ALOG_AUTH_FAIL, ALOG_AUTH_LOCKED, ALOG_AUTH_CLOSED };
enum { ALOG_HOUR_RELAYED, ALOG_HOUR_FAILED, ALOG_HOUR_REFUSED };

struct alog_report {
	int64_t since, until;		/* ms; 0 = open */
	struct alog_verdict verdict;
	int64_t first_ms, last_ms;	/* earliest and latest record counted, 0 none */
	uint64_t records;		/* records in the period */

	struct alog_start *starts;
	size_t nstarts;
	struct alog_start *last_start;	/* also one before the period: the profile */
	struct alog_start before;	/* storage for a start before the period */
	struct alog_stop *stops;
	size_t nstops;
	struct alog_recheck *rechecks;
	size_t nrechecks;

	uint64_t txns, relayed, failed;	/* transaction records; final 2xx; other */
	uint64_t unknown;		/* final outcome unknown: the session ended first */
	struct alog_exceptions unknown_exc;	/* each of them */
	uint64_t rcpts_ok, rcpts_refused, octets;
	struct alog_counts relay_failures;	/* "code enh reason" of failed txns */
	struct alog_counts refusals;	/* "stage\tcode\tenh\treason" -> n[0] */
	uint64_t nrefusals;

	uint64_t dkim_signed;		/* relayed with >= 1 signature */
	struct alog_counts dkim_algos;	/* a= -> relayed messages signed with it */
	struct alog_exceptions dkim_exc;
	uint64_t dane_ok;		/* relayed with verdict ok-ee / ok-ta */
	struct alog_counts dane_verdicts;
	struct alog_exceptions dane_exc;

	struct alog_counts tls_versions, tls_ciphers;		/* client leg, per txn */
	struct alog_counts relay_versions, relay_ciphers;	/* relay leg */

	uint64_t auth[4];		/* ALOG_AUTH_* totals */
	struct alog_counts auth_logins, auth_clients;
	struct alog_counts senders;	/* login -> relayed messages */

	int64_t *latency;		/* ms of relayed txns, sorted by finish */
	size_t nlatency, caplatency;
	int64_t lat_p50, lat_p90, lat_p99, lat_max;

	int64_t bucket_ms;		/* 3600000 (hours) or 86400000 (days) */
	struct alog_counts buckets;	/* "index" -> ALOG_HOUR_* */
	uint64_t lost;			/* records lost (gap records) */
	struct alog_exceptions gaps;

	char *profile;			/* the active profile's name */
	struct alog_counts evidence;	/* log.* id -> n[0] 1 pass / 0 fail */
};

/* Start an empty report for [since, until) (0 = open ends). */
void alog_report_init(struct alog_report *r, int64_t since, int64_t until);

/* Count one record (checked by the verifier: envelope and schema). */
void alog_report_add(struct alog_report *r, const struct json *rec, const struct alog_env *env);

/* After the last record: the verdict, percentiles, the log evidence. */
void alog_report_finish(struct alog_report *r, const struct alog_verdict *vd);

void alog_report_clear(struct alog_report *r);

/* 1 when the report's promises hold: the log is intact and every relayed
 * message was signed and DANE-verified (and nothing was lost). */
int alog_report_ok(const struct alog_report *r);

/* Renderings (auditlog_render.c, auditlog_html.c). */
void alog_report_text(const struct alog_report *r, FILE *f);
void alog_report_json(const struct alog_report *r, FILE *f);
void alog_report_html(const struct alog_report *r, FILE *f);

/* ---- helpers shared by the renderings ---- */

/* Count `n` in slot `i` of key's entry; returns the entry. */
struct alog_count *alog_counts_add(struct alog_counts *c, const char *key, int i, uint64_t n);
const struct alog_count *alog_counts_get(const struct alog_counts *c, const char *key);
/* Entries sorted by n[i] descending (then key), a new array of pointers. */
const struct alog_count **alog_counts_sorted(const struct alog_counts *c, int i);
void alog_counts_clear(struct alog_counts *c);

/* The requirements of the active profile in profile order, each with the
 * evidence the profile maps to it: self-audit checks of the last start
 * (with their status; "fail" for a check that passed then but failed a
 * recheck since) and the log's own evidence (ids log.*, pass or fail);
 * and the evidence mapped to no requirement.  Filled by
 * alog_report_requirements(). */
struct alog_item {
	char *id;			/* "tls.priority", "log.dkim" */
	const char *status;		/* "pass", "warn", "fail" */
	int check;			/* 1: a self-audit check, 0: log evidence */
};

struct alog_req {
	char *ref;
	struct alog_item *items;
	size_t nitems;
};

struct alog_reqs {
	struct alog_req *v;
	size_t n;
	struct alog_item *unmapped;	/* evidence no requirement of the profile covers */
	size_t nunmapped;
	int have_profile;		/* the profile is compiled in */
	char start[ALOG_TIME_LEN + 1];	/* the start whose checks these are, "" none */
};

void alog_report_requirements(const struct alog_report *r, struct alog_reqs *out);
void alog_reqs_clear(struct alog_reqs *q);

/* The fields of a refusals key: stage, code, enhanced code, reason (each
 * "?" when missing), split into buf. */
struct alog_refusal_key {
	char buf[400];
	const char *stage, *code, *enh, *reason;
};
void alog_refusal_split(const char *key, struct alog_refusal_key *k);

/* Share as "100%", "99.5%" or "-" (n of d). */
void alog_share(uint64_t n, uint64_t d, char *out, size_t outlen);

#endif
