/*
 * audit_cli.c — the self-audit from the command line (--check [--json],
 * --dns-records) and at start-up, where it runs in a child process so that
 * the key material the checks read never enters the daemon's memory.
 */
#include "audit.h"
#include "audit_int.h"

#include "config.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#define STARTUP_REPORT_MAX (64 * 1024)

/* ---- running the audit ---- */

static const char *const refs_config[] = { NULL };

/* Every check for a loaded configuration, into rep. */
static void
audit_run_report(const struct config *cfg, struct audit_report *rep)
{
	struct audit_profile *prof, *fallback = NULL;
	struct audit_run r;
	char err[600], ferr[600];

	rep->profile = xstrdup(cfg->profile);
	prof = audit_profile_load(cfg->profile, err, sizeof(err));
	if (prof == NULL) {
		/* tests/unit/test_audit.c makes sure this cannot fail */
		fallback = audit_profile_load("baseline", ferr, sizeof(ferr));
		if (fallback == NULL)
			fatal("the built-in profile baseline does not load: %s", ferr);
	}
	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.prof = prof ? prof : fallback;
	r.rep = rep;
	r.now = time(NULL);
	audit_add(&r, "config.parse", AUDIT_PASS, refs_config, NULL,
	    "%s parses and validates", cfg->file);
	if (prof != NULL)
		audit_add(&r, "config.profile", AUDIT_PASS, refs_config, NULL,
		    "profile \"%s\": %s", prof->name, prof->description ? prof->description : "");
	else {
		char fix[300];

		snprintf(fix, sizeof(fix), "set [server] profile to baseline or bsi-tr-03108 "
		    "(the other checks ran with baseline's rules)");
		/* without the profile the operator asked for nothing can pass */
		audit_report_add(rep, NULL, "config.profile", AUDIT_FAIL, err, fix, refs_config);
	}
	audit_checks_run(&r);
	audit_run_clear(&r);
	audit_profile_free(&prof);
	audit_profile_free(&fallback);
}

/* ---- --dns-records ---- */

/* A TXT value as quoted character-strings of at most 255 octets. */
static void
print_txt(FILE *f, const char *v)
{
	size_t len = strlen(v), i, k;

	for (i = 0; i < len || i == 0; i += 255) {
		fputs(i ? " \"" : "\"", f);
		for (k = i; k < len && k < i + 255; k++) {
			if (v[k] == '"' || v[k] == '\\')
				fputc('\\', f);
			fputc(v[k], f);
		}
		fputc('"', f);
		if (len == 0)
			break;
	}
}

static int
print_records(const struct config *cfg, FILE *f)
{
	struct audit_run r;
	char rec[200];
	size_t i, j;
	int rc = 0, k;

	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.now = time(NULL);
	audit_tls_read_chain(&r);
	audit_keys_load(&r);
	fprintf(f, "; DNS records for subproxy on %s (subproxy --dns-records).\n"
	    "; Publish them in DNSSEC-signed zones.  Keep the old TLSA 3 1 1 record\n"
	    "; published until clients have seen the new one when the key changes.\n", cfg->hostname);
	if (r.nchain == 0) {
		fprintf(f, "; TLSA: %s\n", r.chain_err);
		rc = 1;
	}
	for (i = 0; r.nchain > 0 && i < cfg->nlistens; i++) {
		const struct config_listen *l = &cfg->listens[i];

		for (j = 0; j < i; j++)
			if (cfg->listens[j].public_port == l->public_port)
				break;
		if (j < i)
			continue;
		fprintf(f, "\n; listener \"%s\" (%s, public port %d)\n", l->name,
		    l->tls == TLS_MODE_IMPLICIT ? "implicit TLS" : "STARTTLS", l->public_port);
		if (dane_record_for_cert(&r.chain[0], 3, 1, 1, rec, sizeof(rec)) == 0)
			fprintf(f, "_%d._tcp.%s. IN TLSA %s\n", l->public_port, cfg->hostname, rec);
		else {
			fprintf(f, "; cannot compute the 3 1 1 record of the certificate\n");
			rc = 1;
		}
		if (audit_tls_has_issuer(&r) &&
		    dane_record_for_cert(&r.chain[1], 2, 1, 1, rec, sizeof(rec)) == 0)
			fprintf(f, "_%d._tcp.%s. IN TLSA %s\n", l->public_port, cfg->hostname, rec);
	}
	for (i = 0; i < r.nkeys; i++) {
		const struct audit_key *key = &r.keys[i];

		fprintf(f, "\n; DKIM key %s (%s)\n", key->selector, key->file);
		if (!key->loaded) {
			fprintf(f, "; cannot load the key: %s\n", key->err);
			rc = 1;
			continue;
		}
		fprintf(f, "%s._domainkey.%s. IN TXT ", key->selector, key->domain);
		print_txt(f, key->txt);
		fputc('\n', f);
	}
	for (i = 0; i < cfg->ndkims; i++) {
		static const char *const svc[2] = { "_submission", "_submissions" };
		int m;

		fprintf(f, "\n; mail clients' service discovery for %s (RFC 6186, RFC 8314)\n",
		    cfg->dkims[i].domain);
		for (m = 0; m < 2; m++) {
			enum tls_mode mode = m == 0 ? TLS_MODE_STARTTLS : TLS_MODE_IMPLICIT;

			for (k = -1, j = 0; j < cfg->nlistens; j++)
				if (cfg->listens[j].tls == mode) {
					k = (int)j;
					break;
				}
			if (k < 0)
				fprintf(f, "%s._tcp.%s. IN SRV 0 0 0 .\n", svc[m],
				    cfg->dkims[i].domain);
			else
				fprintf(f, "%s._tcp.%s. IN SRV 0 1 %d %s.\n", svc[m],
				    cfg->dkims[i].domain, cfg->listens[k].public_port,
				    cfg->hostname);
		}
	}
	audit_run_clear(&r);
	return rc;
}

/* ---- the command line ---- */

int
audit_cli(const char *cfgfile, const struct config_override *ov, size_t nov, int json,
    int dns_records)
{
	struct audit_report rep;
	struct config *cfg;
	char err[1024];
	int rc;

	cfg = config_load(cfgfile, ov, nov, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "subproxy: %s\n", err);
		if (json && !dns_records) {
			memset(&rep, 0, sizeof(rep));
			audit_report_add(&rep, NULL, "config.parse", AUDIT_FAIL, err,
			    "correct the configuration file (see subproxy.conf(5))", refs_config);
			audit_report_json(&rep, stdout);
			audit_report_clear(&rep);
		}
		fflush(stdout);
		return 2;
	}
	if (dns_records) {
		rc = print_records(cfg, stdout);
	} else {
		memset(&rep, 0, sizeof(rep));
		audit_run_report(cfg, &rep);
		if (json)
			audit_report_json(&rep, stdout);
		else
			audit_report_text(&rep, cfgfile, stdout);
		rc = audit_report_failed(&rep) ? 1 : 0;
		audit_report_clear(&rep);
	}
	fflush(stdout);
	config_free(&cfg);
	return rc;
}

/* ---- start-up: the same audit in a child ---- */

static void
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void __attribute__((noreturn))
startup_child(const struct config *cfg, int fd, unsigned int limit)
{
	struct audit_report rep;
	char *out = xmalloc(STARTUP_REPORT_MAX);
	size_t i;
	int failed;

	log_set_role("audit");
	signal(SIGPIPE, SIG_IGN);
	alarm(limit);   /* the parent gives up at the same time */
	memset(&rep, 0, sizeof(rep));
	audit_run_report(cfg, &rep);
	for (i = 0; i < rep.nchecks; i++) {
		const struct audit_check *c = &rep.checks[i];

		if (c->status == AUDIT_WARN)
			log_warn("event=audit check=%s status=warn%s: %s%s%s", c->id,
			    c->required ? "" : " required=no", c->summary,
			    c->remedy[0] ? " Fix: " : "", c->remedy);
	}
	failed = audit_report_failed(&rep);
	audit_report_failures(&rep, out, STARTUP_REPORT_MAX);
	write_all(fd, out, strlen(out));
	close(fd);
	log_info("event=audit profile=%s checks=%zu result=%s", rep.profile, rep.nchecks,
	    failed ? "fail" : "pass");
	audit_report_clear(&rep);
	free(out);
	_exit(failed ? 1 : 0);
}

int
audit_startup(const struct config *cfg, char *err, size_t errlen)
{
	/* lookups run in parallel; DANE lookups of relays take up to three
	 * rounds (addresses, TLSA, TLSA at the original name) */
	unsigned int limit = (unsigned int)(cfg->dns_timeout ? cfg->dns_timeout : 10) * 4 + 30;
	char *buf = xmalloc(STARTUP_REPORT_MAX + 1);
	size_t len = 0;
	time_t deadline;
	int fds[2], status, rc = -1, timedout = 0;
	pid_t pid, w;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "self-audit: pipe: %s", strerror(errno));
		free(buf);
		return -1;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "self-audit: fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		free(buf);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		startup_child(cfg, fds[1], limit);
	}
	close(fds[1]);
	deadline = time(NULL) + limit + 2;
	for (;;) {
		struct pollfd pfd = { fds[0], POLLIN, 0 };
		time_t left = deadline - time(NULL);
		ssize_t n;
		int pr;

		if (left <= 0) {
			timedout = 1;
			break;
		}
		pr = poll(&pfd, 1, (int)(left * 1000));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			timedout = pr == 0;
			break;
		}
		n = read(fds[0], buf + len, STARTUP_REPORT_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == STARTUP_REPORT_MAX)
			break;
	}
	close(fds[0]);
	buf[len] = '\0';
	if (timedout)
		kill(pid, SIGKILL);
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (timedout)
		snprintf(err, errlen, "self-audit: no result within %u s (DNS lookups hanging?)",
		    limit);
	else if (w < 0)
		snprintf(err, errlen, "self-audit: waitpid: %s", strerror(errno));
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		rc = 0;
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 1 && len > 0)
		snprintf(err, errlen, "%s", buf);
	else if (WIFSIGNALED(status))
		snprintf(err, errlen, "self-audit: the audit process was killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(err, errlen, "self-audit: the audit process failed (exit status %d)",
		    WEXITSTATUS(status));
	free(buf);
	return rc;
}
