/*
 * audit_int.h — shared by audit.c (profiles, reports), audit_cli.c (command
 * line, start-up), audit_checks.c (DNS, DKIM, sandbox and file checks) and
 * audit_tls.c (certificate, key and priority checks).  Not for other
 * modules: their interface is audit.h.
 */
#ifndef SUBPROXY_AUDIT_INT_H
#define SUBPROXY_AUDIT_INT_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "audit.h"
#include "dane.h"
#include "dns.h"
#include "tls.h"

struct config;
struct config_relay;
struct danedns_query;
struct event_base;

/* One [dkim] key as the audit sees it. */
struct audit_key {
	const char *domain, *selector, *file;   /* from the configuration */
	int loaded;                     /* dkim_keys_load() accepted it */
	int type;                       /* enum dkim_keytype */
	unsigned int bits;
	char *txt;                      /* "v=DKIM1; k=...; p=..." to publish */
	char err[600];                  /* why it did not load */
	int lk;                         /* index of its TXT lookup, -1 none */
};

/* One DNS lookup, answered before any check looks at it. */
struct audit_lookup {
	struct audit_run *run;
	char name[300];
	int type;
	int done;
	struct dns_query *q;
	struct dns_result res;          /* deep copy of the answer */
};

/* One [relay] with dane = required: its DANE lookup (danedns.h). */
struct audit_relay {
	struct audit_run *run;
	const struct config_relay *rc;
	struct danedns_query *q;
	int done;
	int status;                     /* enum danedns_status */
	char why[400];
	size_t ntlsa, nusable;
};

struct audit_run {
	const struct config *cfg;
	const struct audit_profile *prof;
	struct audit_report *rep;
	time_t now;
	/* [tls] certificate, DER copies (owned), leaf first */
	struct dane_cert chain[TLS_CHAIN_MAX];
	size_t nchain;
	char chain_err[600];            /* why nchain == 0 */
	/* [dkim] keys */
	struct audit_key *keys;
	size_t nkeys;
	/* DNS */
	struct event_base *base;
	struct dns_ctx *dns;
	char dns_err[600];              /* why dns == NULL */
	struct audit_lookup *lk;
	size_t nlk;
	struct audit_relay *relays;
	size_t nrelays;
	int pending;
	/* lookup indices (audit_dns_collect) */
	int la, laaaa;
	int *own;                       /* per listener */
	int *srv;                       /* per DKIM domain: submission, submissions */
	/* the live recheck: base and dns are the caller's, only the DNS checks
	 * are judged, done_cb runs (from the loop) when every answer is in */
	int borrowed;
	int dns_only;
	void (*done_cb)(void *arg);
	void *done_arg;
	struct event *ev_done;
};

/* Add a check through the run's profile; the summary is formatted. */
void audit_add(struct audit_run *r, const char *id, enum audit_status st,
    const char *const *refs, const char *remedy, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* audit_checks.c: every check, in report order (config checks are added
 * by the caller).  Loads the DKIM keys, reads the chain, runs the DNS
 * lookups.  The run must be zeroed apart from cfg, prof, rep and now. */
void audit_checks_run(struct audit_run *r);
/* The DNS part in three steps, for the daemon's live recheck (audit_live.c):
 * collect every question (r->keys must be set), start them all on r->dns
 * (r->base; done_cb runs from the loop once every answer is in, never from
 * within this call), then judge the answers (with dns_only, only the DNS
 * checks). */
void audit_dns_collect(struct audit_run *r);
void audit_dns_start(struct audit_run *r);
void audit_dns_judge(struct audit_run *r);
/* Load the DKIM keys one by one into r->keys (also used by --dns-records). */
void audit_keys_load(struct audit_run *r);
/* Free everything the run holds (not cfg, prof, rep). */
void audit_run_clear(struct audit_run *r);

/* audit_tls.c */
/* Read [tls] certificate into r->chain (or say why not in r->chain_err). */
void audit_tls_read_chain(struct audit_run *r);
/* tls.cert.present, tls.key.match, tls.chain.complete, tls.cert.expiry,
 * tls.cert.name, tls.key.strength, tls.priority. */
void audit_tls_checks(struct audit_run *r);
/* 1 when chain[1] issued chain[0] (the "2 1 1" record can be made). */
int audit_tls_has_issuer(const struct audit_run *r);

/* audit_files.c */
/* auth.passwd, relay.RELAY.auth-file, files.modes. */
void audit_file_checks(struct audit_run *r);

/* audit_alog.c */
/* audit.log, audit.key, audit.pseudonymize-key. */
void audit_alog_checks(struct audit_run *r);
/* The audit key's public half as comment lines for --dns-records; 1 when
 * it cannot be loaded. */
int audit_alog_records(const struct config *cfg, FILE *f);

#endif
