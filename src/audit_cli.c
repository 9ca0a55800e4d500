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

/* The child starts with the signals its parent blocked (a supervisor
 * waits for TERM, HUP and CHLD) unblocked again: alarm() must end it. */
static void
sigprocmask_unblock_all(void)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

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
	if (audit_alog_records(cfg, f) != 0)
		rc = 1;
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

/* Append a record field: tab first (except the first), then the value
 * with backslash, tab and newline escaped. */
static void
rec_field(char *out, size_t outlen, const char *v, int first)
{
	size_t o = strlen(out);

	if (!first && o + 1 < outlen)
		out[o++] = '\t';
	for (; *v != '\0' && o + 2 < outlen; v++) {
		if (*v == '\\' || *v == '\t' || *v == '\n') {
			out[o++] = '\\';
			out[o++] = *v == '\t' ? 't' : *v == '\n' ? 'n' : '\\';
		} else {
			out[o++] = *v;
		}
	}
	out[o] = '\0';
}

static void
rec_end(char *out, size_t outlen)
{
	size_t o = strlen(out);

	if (o + 1 < outlen) {
		out[o++] = '\n';
		out[o] = '\0';
	}
}

/* The report for the parent: every check, every loaded key, the failures
 * (audit_baseline_parse() reads it). */
static void
startup_records(const struct audit_report *rep, const struct audit_run *r, char *out,
    size_t outlen)
{
	char *fail = xmalloc(STARTUP_REPORT_MAX), *line, *save = NULL, num[16];
	size_t i;

	out[0] = '\0';
	for (i = 0; i < rep->nchecks; i++) {
		const struct audit_check *c = &rep->checks[i];

		rec_field(out, outlen, "C", 1);
		rec_field(out, outlen, c->found == AUDIT_FAIL ? "0" : "1", 0);
		rec_field(out, outlen, c->required ? "1" : "0", 0);
		rec_field(out, outlen, c->id, 0);
		rec_field(out, outlen, audit_status_name(c->status), 0);
		rec_end(out, outlen);
	}
	for (i = 0; i < r->nkeys; i++) {
		const struct audit_key *k = &r->keys[i];

		if (!k->loaded)
			continue;
		snprintf(num, sizeof(num), "%d", k->type);
		rec_field(out, outlen, "K", 1);
		rec_field(out, outlen, num, 0);
		rec_field(out, outlen, k->domain, 0);
		rec_field(out, outlen, k->selector, 0);
		rec_field(out, outlen, k->txt, 0);
		rec_end(out, outlen);
	}
	audit_report_failures(rep, fail, STARTUP_REPORT_MAX);
	for (line = strtok_r(fail, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		rec_field(out, outlen, "F", 1);
		rec_field(out, outlen, line, 0);
		rec_end(out, outlen);
	}
	free(fail);
}

static void __attribute__((noreturn))
startup_child(const struct config *cfg, int fd, unsigned int limit)
{
	struct audit_report rep;
	struct audit_run keys;
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
	/* the public half of each key, for the live recheck in front */
	memset(&keys, 0, sizeof(keys));
	keys.cfg = cfg;
	audit_keys_load(&keys);
	startup_records(&rep, &keys, out, STARTUP_REPORT_MAX);
	audit_run_clear(&keys);
	write_all(fd, out, strlen(out));
	close(fd);
	log_info("event=audit profile=%s checks=%zu result=%s", rep.profile, rep.nchecks,
	    failed ? "fail" : "pass");
	audit_report_clear(&rep);
	free(out);
	_exit(failed ? 1 : 0);
}

/* One escaped field of a record, unescaped into a new string. */
static char *
rec_unescape(const char *s, size_t n)
{
	char *out = xmalloc(n + 1);
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		if (++i == n || (s[i] != '\\' && s[i] != 't' && s[i] != 'n')) {
			free(out);
			return NULL;
		}
		out[o++] = s[i] == 't' ? '\t' : s[i] == 'n' ? '\n' : '\\';
	}
	out[o] = '\0';
	return out;
}

#define REC_FIELDS 5

static int
rec_split(const char *line, size_t n, char **f, size_t *nf)
{
	size_t start = 0, i;

	*nf = 0;
	for (i = 0; i <= n; i++) {
		if (i < n && line[i] != '\t')
			continue;
		if (*nf == REC_FIELDS || (f[*nf] = rec_unescape(line + start, i - start)) == NULL)
			return -1;
		(*nf)++;
		start = i + 1;
	}
	return 0;
}

static int
rec_flag(const char *s, int *v)
{
	if (strcmp(s, "0") != 0 && strcmp(s, "1") != 0)
		return -1;
	*v = s[0] == '1';
	return 0;
}

static int
rec_apply(char **f, size_t nf, struct audit_baseline *bl, char *failures, size_t flen)
{
	if (strcmp(f[0], "C") == 0 && nf == 5 && bl->nchecks < 4096) {
		struct audit_baseline_check c;

		if (rec_flag(f[1], &c.ok) < 0 || rec_flag(f[2], &c.required) < 0 ||
		    f[3][0] == '\0' || (c.status = audit_status_parse(f[4])) < 0)
			return -1;
		bl->checks = xreallocarray(bl->checks, bl->nchecks + 1, sizeof(*bl->checks));
		c.id = f[3];
		f[3] = NULL;
		bl->checks[bl->nchecks++] = c;
		return 0;
	}
	if (strcmp(f[0], "K") == 0 && nf == 5 && bl->nkeys < 4096) {
		struct audit_baseline_key k;
		uint64_t t;

		if (parse_uint(f[1], 0, 16, 0, &t) < 0)
			return -1;
		bl->keys = xreallocarray(bl->keys, bl->nkeys + 1, sizeof(*bl->keys));
		k.type = (int)t;
		k.domain = f[2];
		k.selector = f[3];
		k.txt = f[4];
		f[2] = f[3] = f[4] = NULL;
		bl->keys[bl->nkeys++] = k;
		return 0;
	}
	if (strcmp(f[0], "F") == 0 && nf == 2) {
		size_t o = strlen(failures);

		snprintf(failures + o, flen - o, "%s%s", o ? "\n" : "", f[1]);
		return 0;
	}
	return -1;
}

int
audit_baseline_parse(const char *buf, size_t len, struct audit_baseline *bl,
    char *failures, size_t flen)
{
	size_t off = 0;

	memset(bl, 0, sizeof(*bl));
	if (flen > 0)
		failures[0] = '\0';
	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		char *f[REC_FIELDS] = { NULL };
		size_t n, nf = 0, i;
		int rc;

		if (nl == NULL || memchr(buf + off, '\0', (size_t)(nl - buf) - off) != NULL)
			goto bad;
		n = (size_t)(nl - buf) - off;
		rc = rec_split(buf + off, n, f, &nf);
		if (rc == 0)
			rc = rec_apply(f, nf, bl, failures, flen);
		for (i = 0; i < REC_FIELDS; i++)
			free(f[i]);
		if (rc < 0)
			goto bad;
		off += n + 1;
	}
	return 0;
bad:
	audit_baseline_clear(bl);
	return -1;
}

void
audit_baseline_clear(struct audit_baseline *bl)
{
	size_t i;

	if (bl == NULL)
		return;
	for (i = 0; i < bl->nchecks; i++)
		free(bl->checks[i].id);
	for (i = 0; i < bl->nkeys; i++) {
		free(bl->keys[i].domain);
		free(bl->keys[i].selector);
		free(bl->keys[i].txt);
	}
	free(bl->checks);
	free(bl->keys);
	memset(bl, 0, sizeof(*bl));
}

struct audit_job {
	pid_t pid;
	int fd;                         /* the report pipe; -1 once read to the end */
	unsigned int limit;             /* seconds the child has */
	uint64_t deadline_ms;           /* CLOCK_MONOTONIC */
	char *buf;
	size_t len;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct audit_job *
audit_job_start(const struct config *cfg, char *err, size_t errlen)
{
	struct audit_job *j;
	/* lookups run in parallel; DANE lookups of relays take up to three
	 * rounds (addresses, TLSA, TLSA at the original name) */
	unsigned int limit = (unsigned int)(cfg->dns_timeout ? cfg->dns_timeout : 10) * 4 + 30;
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "self-audit: pipe: %s", strerror(errno));
		return NULL;
	}
	j = xcalloc(1, sizeof(*j));
	fflush(NULL);
	if ((j->pid = fork()) < 0) {
		snprintf(err, errlen, "self-audit: fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		free(j);
		return NULL;
	}
	if (j->pid == 0) {
		/* nothing of the parent's but the pipe (a daemon's parent holds
		 * the listeners and the sockets of every worker slot) */
		close_fds_except(&fds[1], 1);
		sigprocmask_unblock_all();
		startup_child(cfg, fds[1], limit);
	}
	close(fds[1]);
	j->fd = fds[0];
	j->limit = limit;
	j->deadline_ms = now_ms() + (uint64_t)(limit + 2) * 1000u;
	j->buf = xmalloc(STARTUP_REPORT_MAX + 1);
	(void)fcntl(j->fd, F_SETFL, O_NONBLOCK);
	return j;
}

pid_t
audit_job_pid(const struct audit_job *j)
{
	return j->pid;
}

int
audit_job_fd(const struct audit_job *j)
{
	return j->fd;
}

uint64_t
audit_job_deadline(const struct audit_job *j)
{
	return j->deadline_ms;
}

int
audit_job_read(struct audit_job *j)
{
	ssize_t n;

	while (j->fd >= 0) {
		n = read(j->fd, j->buf + j->len, STARTUP_REPORT_MAX - j->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n > 0) {
			j->len += (size_t)n;
			if (j->len < STARTUP_REPORT_MAX)
				continue;
		}
		close(j->fd);
		j->fd = -1;
	}
	return 1;
}

int
audit_job_finish(struct audit_job **jp, int status, int timedout, struct audit_baseline *bl,
    char *err, size_t errlen)
{
	struct audit_job *j = *jp;
	struct audit_baseline got;
	char *failures;
	int rc = -1;

	*jp = NULL;
	if (j->fd >= 0)
		close(j->fd);
	j->buf[j->len] = '\0';
	if (bl != NULL)
		memset(bl, 0, sizeof(*bl));
	failures = xmalloc(STARTUP_REPORT_MAX);
	if (timedout)
		snprintf(err, errlen, "self-audit: no result within %u s (DNS lookups hanging?)",
		    j->limit);
	else if (WIFEXITED(status) && WEXITSTATUS(status) <= 1 &&
	    audit_baseline_parse(j->buf, j->len, &got, failures, STARTUP_REPORT_MAX) < 0)
		snprintf(err, errlen, "self-audit: the audit process sent a malformed report");
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		rc = 0;
		if (bl != NULL)
			*bl = got;
		else
			audit_baseline_clear(&got);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 1) {
		if (failures[0] != '\0')
			snprintf(err, errlen, "%s", failures);
		else
			snprintf(err, errlen, "self-audit: a required check failed (see the log)");
		/* the results of a failed audit too (for the audit log) */
		if (bl != NULL)
			*bl = got;
		else
			audit_baseline_clear(&got);
	}
	else if (WIFSIGNALED(status))
		snprintf(err, errlen, "self-audit: the audit process was killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(err, errlen, "self-audit: the audit process failed (exit status %d)",
		    WEXITSTATUS(status));
	free(failures);
	free(j->buf);
	free(j);
	return rc;
}

int
audit_startup(const struct config *cfg, struct audit_baseline *bl, char *err, size_t errlen)
{
	struct audit_job *j;
	int status = 0, timedout = 0;
	pid_t pid, w;

	if ((j = audit_job_start(cfg, err, errlen)) == NULL)
		return -1;
	pid = j->pid;
	while (!audit_job_read(j)) {
		struct pollfd pfd = { j->fd, POLLIN, 0 };
		uint64_t now = now_ms();
		int pr;

		if (now >= j->deadline_ms) {
			timedout = 1;
			break;
		}
		pr = poll(&pfd, 1, (int)(j->deadline_ms - now));
		if (pr < 0 && errno != EINTR)
			break;
	}
	if (timedout)
		kill(pid, SIGKILL);
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (w < 0 && !timedout) {
		snprintf(err, errlen, "self-audit: waitpid: %s", strerror(errno));
		audit_job_abandon(&j);
		return -1;
	}
	return audit_job_finish(&j, status, timedout, bl, err, errlen);
}

void
audit_job_abandon(struct audit_job **jp)
{
	struct audit_job *j = *jp;

	if (j == NULL)
		return;
	*jp = NULL;
	if (j->fd >= 0)
		close(j->fd);
	free(j->buf);
	free(j);
}
