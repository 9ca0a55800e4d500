/*
 * config_sender.c — the sender rules: [senders] checked when the file is read, and
 * what a login may put in MAIL FROM (and its rate limits) at run time.
 */
#include "config_int.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* A sender pattern: "user@domain" or "@domain". */
static int
valid_pattern(const char *s)
{
	const char *at = strrchr(s, '@');
	const char *q;

	if (at == NULL || !valid_hostname(at + 1))
		return 0;
	for (q = s; q < at; q++)
		if ((unsigned char)*q <= 0x20 || *q == '<' || *q == '>' || *q == ',' ||
		    (unsigned char)*q >= 0x7f)
			return 0;
	return 1;
}

int
check_senders(struct parse *p, struct config *cfg)
{
	size_t i, j;

	for (i = 0; i < p->ne; i++) {
		struct entry *e = &p->e[i];
		struct config_sender *sd;
		char *dup, *tok, *save = NULL;

		if (strcmp(e->section, "senders") != 0)
			continue;
		e->used = 1;
		for (j = 0; j < cfg->nsenders; j++)
			if (ascii_casecmp(cfg->senders[j].login, e->key) == 0) {
				perr(p, e->line, "duplicate entry for login '%s' in [senders]", e->key);
				return -1;
			}
		cfg->senders = xreallocarray(cfg->senders, cfg->nsenders + 1, sizeof(*cfg->senders));
		sd = &cfg->senders[cfg->nsenders++];
		memset(sd, 0, sizeof(*sd));
		sd->login = xstrdup(e->key);
		dup = xstrdup(e->value);
		for (tok = strtok_r(dup, ", \t", &save); tok != NULL;
		    tok = strtok_r(NULL, ", \t", &save)) {
			if (!valid_pattern(tok)) {
				perr(p, e->line, "bad sender '%s' for login '%s' (expected user@domain or "
				    "@domain, separated by commas)", tok, e->key);
				free(dup);
				return -1;
			}
			sd->patterns = xreallocarray(sd->patterns, sd->npatterns + 1,
			    sizeof(*sd->patterns));
			sd->patterns[sd->npatterns++] = xstrdup(tok);
		}
		free(dup);
		if (sd->npatterns == 0) {
			perr(p, e->line, "login '%s' in [senders] needs at least one address or @domain",
			    e->key);
			return -1;
		}
	}
	return 0;
}

/* ---- sender policy ---- */

static int
pattern_match(const char *pat, const char *address)
{
	const char *at;

	if (pat[0] == '@') {
		at = strrchr(address, '@');
		return at != NULL && at != address && ascii_casecmp(at, pat) == 0;
	}
	return ascii_casecmp(pat, address) == 0;
}

int
config_sender_allowed(const struct config *cfg, const char *login, const char *address)
{
	size_t i, j;

	if (address == NULL || address[0] == '\0' || login == NULL)
		return 0;
	for (i = 0; i < cfg->nsenders; i++) {
		const struct config_sender *sd = &cfg->senders[i];

		if (ascii_casecmp(sd->login, login) != 0)
			continue;
		for (j = 0; j < sd->npatterns; j++)
			if (pattern_match(sd->patterns[j], address))
				return 1;
		return 0;
	}
	return strchr(login, '@') != NULL && ascii_casecmp(login, address) == 0;
}

const struct config_rates *
config_login_rates(const struct config *cfg, const char *login)
{
	size_t i;

	for (i = 0; login != NULL && i < cfg->nlogins; i++)
		if (strcmp(cfg->logins[i].name, login) == 0)
			return &cfg->logins[i].rates;
	return &cfg->limits.rates;
}
