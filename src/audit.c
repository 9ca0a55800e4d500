/*
 * audit.c — profiles (policy/NAME, pure) and reports (text and JSON).  The
 * command line and the start-up audit are in audit_cli.c, the checks in
 * audit_checks.c and audit_tls.c.
 */
#include "audit.h"
#include "audit_int.h"

#include "log.h"
#include "policy.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROFILE_LINE_MAX 1024
#define PROFILE_LIST_MAX 64
#define PROFILE_RULES_MAX 256

/* ---- profiles ---- */

struct pparse {
	const char *name;
	int line;
	char *err;
	size_t errlen;
	unsigned int seen;              /* bit per singular keyword */
};

static void pp_err(struct pparse *pp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
pp_err(struct pparse *pp, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(pp->err, pp->errlen, "policy/%s:%d: %s", pp->name, pp->line, msg);
}

static int
token_ok(const char *t, int glob)
{
	const char *s;

	if (*t == '\0')
		return 0;
	for (s = t; *s; s++) {
		char c = *s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '-' || c == '_' || (glob && c == '*'))
			continue;
		return 0;
	}
	return 1;
}

static void
list_free(struct audit_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
list_set(struct pparse *pp, struct audit_list *l, char **tok, size_t ntok, int glob)
{
	size_t i, j;

	if (ntok == 0 || ntok > PROFILE_LIST_MAX) {
		pp_err(pp, "'%s' needs 1..%d names", tok[-1], PROFILE_LIST_MAX);
		return -1;
	}
	for (i = 0; i < ntok; i++) {
		if (!token_ok(tok[i], glob)) {
			pp_err(pp, "bad name '%.60s' for '%s'", tok[i], tok[-1]);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (ascii_casecmp(tok[i], tok[j]) == 0) {
				pp_err(pp, "'%s' is listed twice", tok[i]);
				return -1;
			}
	}
	list_free(l);
	l->v = xcalloc(ntok, sizeof(*l->v));
	for (i = 0; i < ntok; i++)
		l->v[l->n++] = xstrdup(tok[i]);
	return 0;
}

static int
keyreq_add(struct pparse *pp, struct audit_keyreq *reqs, size_t *nreqs, char **tok,
    size_t ntok, const char *const *types)
{
	uint64_t bits = 0;
	size_t i;

	if (ntok < 1 || ntok > 2) {
		pp_err(pp, "'%s' needs TYPE [MINBITS]", tok[-1]);
		return -1;
	}
	for (i = 0; types[i] != NULL; i++)
		if (strcmp(tok[0], types[i]) == 0)
			break;
	if (types[i] == NULL) {
		pp_err(pp, "unknown key type '%.40s' for '%s'", tok[0], tok[-1]);
		return -1;
	}
	if (ntok == 2 && parse_uint(tok[1], 1, 16384, 0, &bits) < 0) {
		pp_err(pp, "bad bit count '%.40s' (expected 1..16384)", tok[1]);
		return -1;
	}
	for (i = 0; i < *nreqs; i++)
		if (strcmp(reqs[i].type, tok[0]) == 0) {
			pp_err(pp, "key type '%s' given twice", tok[0]);
			return -1;
		}
	if (*nreqs == AUDIT_KEYREQ_MAX) {
		pp_err(pp, "too many key types");
		return -1;
	}
	snprintf(reqs[*nreqs].type, sizeof(reqs[*nreqs].type), "%s", tok[0]);
	reqs[*nreqs].min_bits = (unsigned int)bits;
	(*nreqs)++;
	return 0;
}

static int
yesno(struct pparse *pp, char **tok, size_t ntok, const char *yes, const char *no, int *out)
{
	if (ntok == 1 && strcmp(tok[0], yes) == 0)
		*out = 1;
	else if (ntok == 1 && strcmp(tok[0], no) == 0)
		*out = 0;
	else {
		pp_err(pp, "'%s' takes '%s' or '%s'", tok[-1], yes, no);
		return -1;
	}
	return 0;
}

enum { KW_PROFILE, KW_DESCRIPTION, KW_VERSIONS, KW_CIPHERS, KW_KX, KW_GROUPS, KW_EARLY,
	KW_EXPIRY, KW_DKIM_REQUIRE, KW_DKIM_MISSING, KW_DNS_SECURE, KW_AUDIT_LOG };

static const char *const singular[] = {
	"profile", "description", "tls-versions", "tls-ciphers", "tls-kx", "tls-groups",
	"tls-early-data", "cert-expiry-warn", "dkim-require", "dkim-dns-missing", "dns-secure",
	"audit-log", NULL
};

static const char *const tls_key_types[] = { "rsa", "ec", "ed25519", "ed448", NULL };
static const char *const dkim_key_types[] = { "rsa", "ed25519", NULL };

/* One line split into tokens (tok[0] the keyword). */
static int
profile_line(struct pparse *pp, struct audit_profile *p, char **tok, size_t ntok)
{
	const char *kw = tok[0];
	char **arg = tok + 1;
	size_t narg = ntok - 1, i;
	int k;

	for (k = 0; singular[k] != NULL; k++)
		if (strcmp(kw, singular[k]) == 0)
			break;
	if (singular[k] != NULL) {
		if (pp->seen & (1u << k)) {
			pp_err(pp, "'%s' given twice", kw);
			return -1;
		}
		pp->seen |= 1u << k;
	}
	switch (singular[k] != NULL ? k : -1) {
	case KW_PROFILE:
		if (narg != 1 || strcmp(arg[0], pp->name) != 0) {
			pp_err(pp, "expected 'profile %s'", pp->name);
			return -1;
		}
		p->name = xstrdup(arg[0]);
		return 0;
	case KW_DESCRIPTION: {
		size_t len = 0;

		if (narg == 0) {
			pp_err(pp, "'description' needs text");
			return -1;
		}
		for (i = 0; i < narg; i++)
			len += strlen(arg[i]) + 1;
		p->description = xcalloc(1, len);
		for (i = 0; i < narg; i++) {
			if (i > 0)
				strcat(p->description, " ");
			strcat(p->description, arg[i]);
		}
		return 0;
	}
	case KW_VERSIONS:
		return list_set(pp, &p->tls_versions, arg, narg, 0);
	case KW_CIPHERS:
		return list_set(pp, &p->tls_ciphers, arg, narg, 0);
	case KW_KX:
		return list_set(pp, &p->tls_kx, arg, narg, 0);
	case KW_GROUPS:
		return list_set(pp, &p->tls_groups, arg, narg, 0);
	case KW_DKIM_REQUIRE:
		if (list_set(pp, &p->dkim_require, arg, narg, 0) < 0)
			return -1;
		for (i = 0; i < narg; i++)
			if (strcmp(arg[i], "rsa") != 0 && strcmp(arg[i], "ed25519") != 0) {
				pp_err(pp, "'dkim-require' takes rsa and/or ed25519, not '%.40s'",
				    arg[i]);
				return -1;
			}
		return 0;
	case KW_EARLY:
		return yesno(pp, arg, narg, "allowed", "forbidden", &p->tls_early_data);
	case KW_DKIM_MISSING:
		return yesno(pp, arg, narg, "fail", "warn", &p->dkim_dns_missing_fail);
	case KW_DNS_SECURE:
		return yesno(pp, arg, narg, "required", "optional", &p->dns_secure);
	case KW_AUDIT_LOG:
		return yesno(pp, arg, narg, "required", "optional", &p->audit_log_required);
	case KW_EXPIRY: {
		uint64_t v;

		if (narg != 1 || parse_uint(arg[0], 0, 3650, 0, &v) < 0) {
			pp_err(pp, "'cert-expiry-warn' takes a number of days 0..3650");
			return -1;
		}
		p->cert_expiry_warn_days = (unsigned int)v;
		return 0;
	}
	default:
		break;
	}
	if (strcmp(kw, "require") == 0 || strcmp(kw, "advise") == 0) {
		if (narg == 0) {
			pp_err(pp, "'%s' needs check id patterns", kw);
			return -1;
		}
		for (i = 0; i < narg; i++) {
			if (!token_ok(arg[i], 1)) {
				pp_err(pp, "bad check id pattern '%.60s'", arg[i]);
				return -1;
			}
			if (p->nrules == PROFILE_RULES_MAX) {
				pp_err(pp, "too many rules (at most %d)", PROFILE_RULES_MAX);
				return -1;
			}
			p->rules = xreallocarray(p->rules, p->nrules + 1, sizeof(*p->rules));
			p->rules[p->nrules].glob = xstrdup(arg[i]);
			p->rules[p->nrules].level = kw[0] == 'r' ? AUDIT_LEVEL_REQUIRE :
			    AUDIT_LEVEL_ADVISE;
			p->nrules++;
		}
		return 0;
	}
	if (strcmp(kw, "ref") == 0) {
		struct audit_refrule *rr;

		if (narg < 2 || narg > PROFILE_LIST_MAX || !token_ok(arg[0], 1)) {
			pp_err(pp, "expected 'ref CHECK-PATTERN REF...'");
			return -1;
		}
		for (i = 1; i < narg; i++)
			if (!token_ok(arg[i], 0)) {
				pp_err(pp, "bad reference '%.60s'", arg[i]);
				return -1;
			}
		if (p->nrefrules == PROFILE_RULES_MAX) {
			pp_err(pp, "too many 'ref' lines (at most %d)", PROFILE_RULES_MAX);
			return -1;
		}
		p->refrules = xreallocarray(p->refrules, p->nrefrules + 1, sizeof(*p->refrules));
		rr = &p->refrules[p->nrefrules++];
		rr->glob = xstrdup(arg[0]);
		rr->refs = xcalloc(narg - 1, sizeof(*rr->refs));
		rr->nrefs = 0;
		for (i = 1; i < narg; i++)
			rr->refs[rr->nrefs++] = xstrdup(arg[i]);
		return 0;
	}
	if (strcmp(kw, "tls-key") == 0)
		return keyreq_add(pp, p->tls_keys, &p->ntls_keys, arg, narg, tls_key_types);
	if (strcmp(kw, "dkim-key") == 0)
		return keyreq_add(pp, p->dkim_keys, &p->ndkim_keys, arg, narg, dkim_key_types);
	pp_err(pp, "unknown keyword '%.40s'", kw);
	return -1;
}

struct audit_profile *
audit_profile_parse(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
	struct audit_profile *p = xcalloc(1, sizeof(*p));
	struct pparse pp = { name, 0, err, errlen, 0 };
	char line[PROFILE_LINE_MAX + 2], *tok[PROFILE_LIST_MAX + 4];
	size_t pos = 0;

	p->cert_expiry_warn_days = 30;
	p->dkim_dns_missing_fail = 1;
	while (pos < len) {
		size_t end = pos, n, ntok = 0;
		char *s, *hash;

		pp.line++;
		while (end < len && text[end] != '\n')
			end++;
		n = end - pos;
		if (n > 0 && text[pos + n - 1] == '\r')
			n--;
		if (n > PROFILE_LINE_MAX) {
			pp_err(&pp, "line longer than %d characters", PROFILE_LINE_MAX);
			goto fail;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos = end + 1;
		for (s = line; s < line + n; s++)
			if ((*s < 0x20 && *s != '\t') || *s == 0x7f || (unsigned char)*s >= 0x80) {
				pp_err(&pp, "control or non-ASCII character (0x%02x)",
				    (unsigned char)*s);
				goto fail;
			}
		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		for (s = strtok(line, " \t"); s != NULL; s = strtok(NULL, " \t")) {
			if (ntok == PROFILE_LIST_MAX + 2) {
				pp_err(&pp, "too many words on one line");
				goto fail;
			}
			tok[ntok++] = s;
		}
		if (ntok > 0 && profile_line(&pp, p, tok, ntok) < 0)
			goto fail;
	}
	if (p->name == NULL) {
		pp.line = 1;
		pp_err(&pp, "missing 'profile %s' line", name);
		goto fail;
	}
	return p;
fail:
	audit_profile_free(&p);
	return NULL;
}

struct audit_profile *
audit_profile_load(const char *name, char *err, size_t errlen)
{
	const char *text;
	size_t len;

	if (!token_ok(name, 0) || strcmp(name, "dkim-headers") == 0 ||
	    (text = policy_get(name, &len)) == NULL) {
		snprintf(err, errlen, "there is no audit profile \"%s\" (built in: baseline, "
		    "bsi-tr-03108)", name);
		return NULL;
	}
	return audit_profile_parse(name, text, len, err, errlen);
}

void
audit_profile_free(struct audit_profile **pp)
{
	struct audit_profile *p = *pp;
	size_t i, j;

	if (p == NULL)
		return;
	*pp = NULL;
	free(p->name);
	free(p->description);
	for (i = 0; i < p->nrules; i++)
		free(p->rules[i].glob);
	free(p->rules);
	for (i = 0; i < p->nrefrules; i++) {
		free(p->refrules[i].glob);
		for (j = 0; j < p->refrules[i].nrefs; j++)
			free(p->refrules[i].refs[j]);
		free(p->refrules[i].refs);
	}
	free(p->refrules);
	list_free(&p->tls_versions);
	list_free(&p->tls_ciphers);
	list_free(&p->tls_kx);
	list_free(&p->tls_groups);
	list_free(&p->dkim_require);
	free(p);
}

int
audit_glob_match(const char *glob, const char *id)
{
	/* iterative matcher with one backtrack point: linear in practice */
	const char *star = NULL, *resume = NULL;

	while (*id) {
		if (*glob == '*') {
			star = glob++;
			resume = id;
		} else if (*glob == *id) {
			glob++;
			id++;
		} else if (star != NULL) {
			glob = star + 1;
			id = ++resume;
		} else
			return 0;
	}
	while (*glob == '*')
		glob++;
	return *glob == '\0';
}

enum audit_level
audit_profile_level(const struct audit_profile *p, const char *id)
{
	enum audit_level lvl = AUDIT_LEVEL_REQUIRE;
	size_t i;

	for (i = 0; p != NULL && i < p->nrules; i++)
		if (audit_glob_match(p->rules[i].glob, id))
			lvl = p->rules[i].level;
	return lvl;
}

/* ---- reports ---- */

static const char *const status_names[] = { "pass", "warn", "fail", "skip" };

const char *
audit_status_name(enum audit_status s)
{
	return (unsigned)s < 4 ? status_names[s] : "?";
}

int
audit_status_parse(const char *name)
{
	int i;

	for (i = 0; i < 4; i++)
		if (strcmp(status_names[i], name) == 0)
			return i;
	return -1;
}

static void
add_ref(struct audit_check *c, const char *ref)
{
	size_t i;

	for (i = 0; i < c->nrefs; i++)
		if (strcmp(c->refs[i], ref) == 0)
			return;
	c->refs = xreallocarray(c->refs, c->nrefs + 1, sizeof(*c->refs));
	c->refs[c->nrefs++] = xstrdup(ref);
}

void
audit_report_add(struct audit_report *rep, const struct audit_profile *prof, const char *id,
    enum audit_status status, const char *summary, const char *remedy,
    const char *const *refs)
{
	struct audit_check *c;
	size_t i, j;

	rep->checks = xreallocarray(rep->checks, rep->nchecks + 1, sizeof(*rep->checks));
	c = &rep->checks[rep->nchecks++];
	memset(c, 0, sizeof(*c));
	c->id = xstrdup(id);
	c->required = audit_profile_level(prof, id) == AUDIT_LEVEL_REQUIRE;
	c->status = status == AUDIT_FAIL && !c->required ? AUDIT_WARN : status;
	c->found = status;
	c->summary = xstrdup(summary);
	c->remedy = xstrdup(status == AUDIT_PASS || status == AUDIT_SKIP || remedy == NULL ?
	    "" : remedy);
	for (i = 0; refs != NULL && refs[i] != NULL; i++)
		add_ref(c, refs[i]);
	for (i = 0; prof != NULL && i < prof->nrefrules; i++)
		if (audit_glob_match(prof->refrules[i].glob, id))
			for (j = 0; j < prof->refrules[i].nrefs; j++)
				add_ref(c, prof->refrules[i].refs[j]);
}

void
audit_add(struct audit_run *r, const char *id, enum audit_status st, const char *const *refs,
    const char *remedy, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		fatal("out of memory");
	va_end(ap);
	audit_report_add(r->rep, r->prof, id, st, s, remedy, refs);
	free(s);
}

int
audit_report_failed(const struct audit_report *rep)
{
	size_t i;

	for (i = 0; i < rep->nchecks; i++)
		if (rep->checks[i].required && rep->checks[i].status == AUDIT_FAIL)
			return 1;
	return 0;
}

void
audit_report_clear(struct audit_report *rep)
{
	size_t i, j;

	for (i = 0; i < rep->nchecks; i++) {
		struct audit_check *c = &rep->checks[i];

		free(c->id);
		free(c->summary);
		free(c->remedy);
		for (j = 0; j < c->nrefs; j++)
			free(c->refs[j]);
		free(c->refs);
	}
	free(rep->checks);
	free(rep->profile);
	memset(rep, 0, sizeof(*rep));
}

/* A JSON string: control characters, quote, backslash and every byte
 * outside ASCII escaped (\u00XX), so the output is valid whatever the
 * input. */
static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void
audit_report_json(const struct audit_report *rep, FILE *f)
{
	size_t i, j;

	fputs("{\"version\":1,\"profile\":", f);
	if (rep->profile != NULL)
		json_str(f, rep->profile);
	else
		fputs("null", f);
	fprintf(f, ",\"result\":\"%s\",\"checks\":[", audit_report_failed(rep) ? "fail" : "pass");
	for (i = 0; i < rep->nchecks; i++) {
		const struct audit_check *c = &rep->checks[i];

		fputs(i ? ",\n{\"id\":" : "\n{\"id\":", f);
		json_str(f, c->id);
		fprintf(f, ",\"status\":\"%s\",\"required\":%s,\"summary\":",
		    audit_status_name(c->status), c->required ? "true" : "false");
		json_str(f, c->summary);
		fputs(",\"remedy\":", f);
		json_str(f, c->remedy);
		fputs(",\"refs\":[", f);
		for (j = 0; j < c->nrefs; j++) {
			if (j)
				fputc(',', f);
			json_str(f, c->refs[j]);
		}
		fputs("]}", f);
	}
	fputs("]}\n", f);
}

/* Text for people: control characters shown as '?'. */
static void
text_str(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

void
audit_report_text(const struct audit_report *rep, const char *cfgfile, FILE *f)
{
	size_t i, w = 0, nfail = 0, nwarn = 0;

	for (i = 0; i < rep->nchecks; i++)
		if (strlen(rep->checks[i].id) > w)
			w = strlen(rep->checks[i].id);
	if (w > 40)
		w = 40;
	fprintf(f, "subproxy self-audit of %s, profile %s\n\n", cfgfile,
	    rep->profile ? rep->profile : "(none)");
	for (i = 0; i < rep->nchecks; i++) {
		const struct audit_check *c = &rep->checks[i];
		const char *st = c->status == AUDIT_FAIL ? "FAIL" : c->status == AUDIT_WARN ?
		    "warn" : audit_status_name(c->status);

		nfail += c->status == AUDIT_FAIL;
		nwarn += c->status == AUDIT_WARN;
		fprintf(f, "%-4s  %-*s  ", st, (int)w, c->id);
		text_str(f, c->summary);
		if (c->status == AUDIT_WARN && !c->required)
			fputs(" (not required by this profile)", f);
		fputc('\n', f);
		if (c->remedy[0] != '\0') {
			fprintf(f, "      %-*s  fix: ", (int)w, "");
			text_str(f, c->remedy);
			fputc('\n', f);
		}
	}
	fprintf(f, "\nresult: %s (%zu checks, %zu failed, %zu warning(s))\n",
	    audit_report_failed(rep) ? "FAIL" : "pass", rep->nchecks, nfail, nwarn);
}

size_t
audit_report_failures(const struct audit_report *rep, char *out, size_t outlen)
{
	size_t i, n = 0, used = 0;

	if (outlen == 0)
		return 0;
	out[0] = '\0';
	for (i = 0; i < rep->nchecks; i++) {
		const struct audit_check *c = &rep->checks[i];
		int k;

		if (!c->required || c->status != AUDIT_FAIL)
			continue;
		n++;
		if (used >= outlen - 1)
			continue;
		k = snprintf(out + used, outlen - used, "%s%s: %s%s%s", used ? "\n" : "", c->id,
		    c->summary, c->remedy[0] ? " Fix: " : "", c->remedy);
		if (k < 0 || (size_t)k >= outlen - used) {
			used = outlen - 1;
			if (outlen > 4)
				memcpy(out + outlen - 4, "...", 4);
		} else
			used += (size_t)k;
	}
	return n;
}
