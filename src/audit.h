/*
 * audit.h — the self-audit: `subproxy --check`, the same checks at every
 * start, compliance profiles, and the DNS records an installation needs.
 *
 * Every check has a stable id ("tls.key.match", "dane.own.submissions",
 * "dkim.lab.test.ed.dns", ...), a status, one sentence saying what was found,
 * for problems one sentence saying how to fix it, and references to the
 * requirements it gives evidence for.  A profile (policy/NAME, compiled in)
 * says which checks are required and sets the thresholds; `[server] profile`
 * chooses one (default "baseline").  doc/audit.md lists the checks.
 *
 * Status: pass; warn (a problem that does not fail the audit: a minor one,
 * or a failure of a check the profile does not require, which is reported
 * as warn with required=false); fail (a required check failed: the audit
 * fails); skip (not applicable here, the sentence says why).
 *
 * Secrets: the checks read the TLS private key and the DKIM keys.  The
 * daemon never runs them in its own process: audit_startup() forks a child
 * that runs them and reports over a pipe.
 */
#ifndef SUBPROXY_AUDIT_H
#define SUBPROXY_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct config;
struct config_override;

/* ---- the command line ---- */

/* `subproxy -c FILE [-o ...] --check [--json]` and `--dns-records`: load
 * cfgfile (with the overrides), run every check in this process and print
 * the report on stdout (text table, or with json one JSON object, see
 * doc/audit.schema.json), or with dns_records the zone-file lines of every
 * record the installation needs.  Returns the exit status: 0 every required
 * check passed (or every record could be printed), 1 a required check
 * failed (or a record could not be computed), 2 the configuration cannot be
 * read (the message goes to stderr; in JSON mode a report with the single
 * failed check config.parse is printed as well). */
int audit_cli(const char *cfgfile, const struct config_override *ov, size_t nov, int json,
    int dns_records);

/* ---- start-up ---- */

/* What the start-up audit hands to the daemon: every check's result (for
 * the metrics) and the public half of every DKIM key (for the live recheck
 * in front, which cannot read the keys). */
struct audit_baseline_check {
	char *id;
	int ok;                         /* the check did not find a failure */
	int required;
	int status;                     /* enum audit_status, after the profile */
};

struct audit_baseline_key {
	char *domain, *selector;
	int type;                       /* enum dkim_keytype */
	char *txt;                      /* "v=DKIM1; k=...; p=..." */
};

struct audit_baseline {
	struct audit_baseline_check *checks;
	size_t nchecks;
	struct audit_baseline_key *keys;        /* the keys that loaded */
	size_t nkeys;
};

/* Run the audit for a daemon about to start, in a forked child (key
 * material read by the checks never enters this process) that reports over
 * a pipe; the child's warnings are logged by the child.  Bounded in time
 * (the DNS timeout times a small factor); the child is killed when late.
 * Returns 0 when every required check passes (with *bl filled), or -1 with
 * the failed required checks in err, one per line, "ID: SUMMARY Fix:
 * REMEDY" (the words of --check), or with the reason the audit could not
 * run.  bl may be NULL; when a required check failed it is filled too
 * (bl->nchecks > 0: the audit ran), for the audit log's start record. */
int audit_startup(const struct config *cfg, struct audit_baseline *bl, char *err,
    size_t errlen);

void audit_baseline_clear(struct audit_baseline *bl);

/* The same audit for a supervisor that must not wait (a reload): the child
 * is forked by audit_job_start() (NULL with err when it cannot be); the
 * caller reads its report whenever audit_job_fd() is readable
 * (audit_job_read() returns 1 once it is complete, 0 while more may come),
 * reaps the child itself (audit_job_pid()), killing it with SIGKILL when
 * audit_job_deadline() (CLOCK_MONOTONIC milliseconds) has passed, and then
 * calls audit_job_finish() with the child's wait status (timedout: it was
 * killed for being late), which frees the job and returns what
 * audit_startup() would.  audit_job_abandon() frees a job whose child is
 * handled elsewhere.  The child closes every descriptor but its pipe and
 * unblocks every signal. */
struct audit_job;
struct audit_job *audit_job_start(const struct config *cfg, char *err, size_t errlen);
pid_t audit_job_pid(const struct audit_job *j);
int audit_job_fd(const struct audit_job *j);
uint64_t audit_job_deadline(const struct audit_job *j);
int audit_job_read(struct audit_job *j);
int audit_job_finish(struct audit_job **jp, int status, int timedout, struct audit_baseline *bl,
    char *err, size_t errlen);
void audit_job_abandon(struct audit_job **jp);

/* Pure: the child's report (records of tab-separated, backslash-escaped
 * fields, one per line: "C OK REQUIRED ID STATUS", "K TYPE DOMAIN SELECTOR TXT",
 * "F TEXT") into *bl and the F lines (newline-separated) into failures.
 * Returns 0, or -1 for a malformed report. */
int audit_baseline_parse(const char *buf, size_t len, struct audit_baseline *bl,
    char *failures, size_t flen);

/* ---- the live recheck (front) ---- */

struct audit_live;
struct auditrec;
struct dns_ctx;
struct event_base;
struct tls_server;

/* Re-run the DNS checks of the audit (dnssec.validation, dane.own.*,
 * dkim.*.dns, srv.*, relay.*.dane) every cfg->audit_recheck seconds on
 * front's loop, with front's resolver and certificate chain and the public
 * DKIM keys of bl (kept by reference).  A change of a check's result is
 * logged once (a failure with its remedy, a recovery as such), recorded in
 * the audit log through ar (a recheck record; ar kept by reference, NULL:
 * none) and written to the metrics (metrics_check_set()).  The first run is
 * one interval after the start.  Returns NULL (nothing to do) when the
 * interval is 0. */
struct audit_live *audit_live_new(struct event_base *base, struct dns_ctx *dns,
    const struct config *cfg, const struct tls_server *ts, const struct audit_baseline *bl,
    struct auditrec *ar);
void audit_live_free(struct audit_live **lp);

/* ---- profiles (pure; policy/baseline, policy/bsi-tr-03108) ---- */

enum audit_level { AUDIT_LEVEL_REQUIRE, AUDIT_LEVEL_ADVISE };

struct audit_rule {
	char *glob;                     /* check id pattern; '*' matches any run */
	enum audit_level level;
};

struct audit_refrule {
	char *glob;
	char **refs;
	size_t nrefs;
};

struct audit_list {
	char **v;
	size_t n;
};

/* An allowed key type and its minimum size in bits (0: any size). */
struct audit_keyreq {
	char type[16];                  /* "rsa", "ec", "ed25519", "ed448" */
	unsigned int min_bits;
};

#define AUDIT_KEYREQ_MAX 8

struct audit_profile {
	char *name;
	char *description;
	struct audit_rule *rules;       /* in file order; the last match wins */
	size_t nrules;
	struct audit_refrule *refrules;
	size_t nrefrules;
	/* TLS: GnuTLS names; an empty list does not restrict */
	struct audit_list tls_versions;     /* "TLS1.2" "TLS1.3" */
	struct audit_list tls_ciphers;      /* "AES-128-GCM" ... */
	struct audit_list tls_kx;           /* TLS 1.2 key exchange: "ECDHE-RSA" ... */
	struct audit_list tls_groups;       /* "SECP256R1" "X25519" "FFDHE3072" ... */
	int tls_early_data;                 /* 1: 0-RTT allowed, 0: forbidden (default) */
	struct audit_keyreq tls_keys[AUDIT_KEYREQ_MAX];   /* empty: any type */
	size_t ntls_keys;
	unsigned int cert_expiry_warn_days; /* default 30 */
	/* DKIM */
	struct audit_keyreq dkim_keys[AUDIT_KEYREQ_MAX];  /* empty: any type */
	size_t ndkim_keys;
	struct audit_list dkim_require;     /* algorithms every domain must sign with */
	int dkim_dns_missing_fail;          /* 1: no TXT record fails, 0: warns (default 1) */
	/* DNS */
	int dns_secure;                     /* 1: DKIM TXT and SRV must be DNSSEC-secure */
	/* the audit log (recorder.h) */
	int audit_log_required;             /* 1: [audit] log must be set, and fails closed */
};

/* Parse a profile held in memory (see policy/baseline for the format).
 * `name` must match its `profile NAME` line.  Returns a new profile, or
 * NULL with "policy/NAME:LINE: ..." in err. */
struct audit_profile *audit_profile_parse(const char *name, const char *text, size_t len,
    char *err, size_t errlen);

/* The compiled-in profile NAME (policy_get()); NULL with a sentence in err
 * when there is none or it does not parse. */
struct audit_profile *audit_profile_load(const char *name, char *err, size_t errlen);

void audit_profile_free(struct audit_profile **pp);

/* Does `glob` ('*' = any run of characters, else literal) match `id`? */
int audit_glob_match(const char *glob, const char *id);

/* The level the profile gives check `id` (last matching rule; require when
 * none matches). */
enum audit_level audit_profile_level(const struct audit_profile *p, const char *id);

/* ---- reports ---- */

enum audit_status { AUDIT_PASS, AUDIT_WARN, AUDIT_FAIL, AUDIT_SKIP };

struct audit_check {
	char *id;
	enum audit_status status;
	enum audit_status found;        /* what the check found, before the profile
					 * made a failure of an advisory check a warn */
	int required;
	char *summary;                  /* one sentence */
	char *remedy;                   /* "" for pass/skip */
	char **refs;
	size_t nrefs;
};

struct audit_report {
	char *profile;                  /* NULL when the configuration was unreadable */
	struct audit_check *checks;
	size_t nchecks;
};

/* Add a check.  The profile (may be NULL: everything required, no extra
 * refs) sets `required` and appends its refs to the check's own (refs is a
 * NULL-terminated list, may be NULL); a failure of a check it does not
 * require becomes warn.  Strings are copied; remedy NULL = "". */
void audit_report_add(struct audit_report *rep, const struct audit_profile *prof,
    const char *id, enum audit_status status, const char *summary, const char *remedy,
    const char *const *refs);

/* 1 when a required check failed. */
int audit_report_failed(const struct audit_report *rep);

/* The report as one JSON object (doc/audit.schema.json) plus a newline, or
 * as a text table. */
void audit_report_json(const struct audit_report *rep, FILE *f);
void audit_report_text(const struct audit_report *rep, const char *cfgfile, FILE *f);

/* The failed required checks, "ID: SUMMARY Fix: REMEDY" one per line, into
 * out (truncated with "..." when it does not fit).  Returns how many. */
size_t audit_report_failures(const struct audit_report *rep, char *out, size_t outlen);

void audit_report_clear(struct audit_report *rep);

const char *audit_status_name(enum audit_status s);
/* The status of a name ("pass", ...), or -1. */
int audit_status_parse(const char *name);

#endif
