/*
 * config.c — the configuration file: reading it, defaults, the digest, freeing.
 *
 * Two passes.  The tokenizer (config_parse.c) turns the text into a flat list
 * of entries (section, name, key, value, line); -o overrides then replace
 * entries; the validator (config_check.c) walks the known sections and keys
 * and fills struct config.  No I/O except reading the file in config_load().
 */
#include "config_int.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define CONFIG_FILE_MAX (1024 * 1024)

static void
defaults(struct config *cfg)
{
	if (cfg->user == NULL)
		cfg->user = xstrdup("subproxy");
	if (cfg->signer_user == NULL)
		cfg->signer_user = xstrdup("subproxy-signer");
	if (cfg->keeper_user == NULL)
		cfg->keeper_user = xstrdup("subproxy-keeper");
	if (cfg->recorder_user == NULL)
		cfg->recorder_user = xstrdup("subproxy-recorder");
	if (cfg->chroot == NULL)
		cfg->chroot = xstrdup("/var/empty/subproxy");
	if (cfg->profile == NULL)
		cfg->profile = xstrdup("baseline");
	if (cfg->tls_priority == NULL)
		cfg->tls_priority = xstrdup(CONFIG_TLS_PRIORITY);
	if (cfg->trust_anchor_file == NULL)
		cfg->trust_anchor_file = xstrdup("/usr/share/dns/root.key");
	if (cfg->dns_timeout == 0)
		cfg->dns_timeout = 10;
}

/* SHA-256 of the file and the overrides, each "-o section[.name].key=value"
 * and a newline: the effective configuration (for the audit log). */
static void
digest(struct config *cfg, const char *buf, size_t len, const struct config_override *ov,
    size_t nov)
{
	crypto_hash_sha256_state st;
	char *line;
	size_t i;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)buf, len);
	for (i = 0; i < nov; i++) {
		line = xasprintf("-o %s%s%s.%s=%s\n", ov[i].section, ov[i].name ? "." : "",
		    ov[i].name ? ov[i].name : "", ov[i].key, ov[i].value);
		crypto_hash_sha256_update(&st, (const unsigned char *)line, strlen(line));
		free(line);
	}
	crypto_hash_sha256_final(&st, cfg->digest);
}

static void
parse_clear(struct parse *p)
{
	size_t i;

	for (i = 0; i < p->ne; i++) {
		free(p->e[i].section);
		free(p->e[i].name);
		free(p->e[i].key);
		free(p->e[i].value);
	}
	for (i = 0; i < p->ns; i++) {
		free(p->s[i].section);
		free(p->s[i].name);
	}
	free(p->e);
	free(p->s);
}

struct config *
config_parse_buffer(const char *file, const char *buf, size_t len,
    const struct config_override *ov, size_t nov, char *err, size_t errlen)
{
	struct parse p;
	struct config *cfg;
	size_t i;

	memset(&p, 0, sizeof(p));
	p.file = file;
	p.err = err;
	p.errlen = errlen;
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->file = xstrdup(file);
	if (tokenize(&p, buf, len) < 0)
		goto err;
	for (i = 0; i < nov; i++)
		if (apply_override(&p, &ov[i]) < 0)
			goto err;
	if (validate(&p, cfg) < 0)
		goto err;
	defaults(cfg);
	digest(cfg, buf, len, ov, nov);
	parse_clear(&p);
	return cfg;
err:
	parse_clear(&p);
	config_free(&cfg);
	return NULL;
}

struct config *
config_load(const char *path, const struct config_override *ov, size_t nov, char *err,
    size_t errlen)
{
	struct config *cfg;
	struct stat st;
	char *buf;
	size_t off = 0;
	ssize_t n;
	int fd;

	/* O_NONBLOCK: a FIFO (or a device) put in the file's place must not
	 * stop the parent in open(2) at a reload; fstat refuses it next */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		snprintf(err, errlen, "%s: cannot open the configuration: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_FILE_MAX) {
		snprintf(err, errlen, "%s: not a regular file of at most %d bytes", path,
		    CONFIG_FILE_MAX);
		close(fd);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size &&
	    (n = read(fd, buf + off, (size_t)st.st_size - off)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: read: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	cfg = config_parse_buffer(path, buf, off, ov, nov, err, errlen);
	free(buf);
	return cfg;
}

void
config_free(struct config **cfgp)
{
	struct config *cfg;
	size_t i, j;

	if (cfgp == NULL || (cfg = *cfgp) == NULL)
		return;
	free(cfg->file);
	free(cfg->hostname);
	free(cfg->user);
	free(cfg->signer_user);
	free(cfg->keeper_user);
	free(cfg->recorder_user);
	free(cfg->chroot);
	free(cfg->profile);
	for (i = 0; i < cfg->nlistens; i++) {
		free(cfg->listens[i].name);
		free(cfg->listens[i].address);
		free(cfg->listens[i].proxy_from);
	}
	free(cfg->listens);
	free(cfg->tls_certificate);
	free(cfg->tls_key);
	free(cfg->tls_priority);
	free(cfg->passwd_file);
	for (i = 0; i < cfg->nsenders; i++) {
		free(cfg->senders[i].login);
		for (j = 0; j < cfg->senders[i].npatterns; j++)
			free(cfg->senders[i].patterns[j]);
		free(cfg->senders[i].patterns);
	}
	free(cfg->senders);
	for (i = 0; i < cfg->nrelays; i++) {
		struct config_relay *r = &cfg->relays[i];
		free(r->name);
		free(r->host);
		free(r->address);
		for (j = 0; j < r->ntlsa; j++)
			dane_tlsa_clear(&r->tlsa[j]);
		free(r->tlsa);
		free(r->auth_file);
	}
	free(cfg->relays);
	for (i = 0; i < cfg->ndkims; i++) {
		for (j = 0; j < cfg->dkims[i].nkeys; j++) {
			free(cfg->dkims[i].keys[j].selector);
			free(cfg->dkims[i].keys[j].file);
		}
		free(cfg->dkims[i].keys);
		free(cfg->dkims[i].domain);
	}
	free(cfg->dkims);
	free(cfg->trust_anchor_file);
	free(cfg->unbound_config);
	free(cfg->audit_log);
	free(cfg->metrics_address);
	free(cfg->audit_signing_key);
	free(cfg->audit_pseudonymize_key);
	for (i = 0; i < cfg->nlogins; i++)
		free(cfg->logins[i].name);
	free(cfg->logins);
	free(cfg);
	*cfgp = NULL;
}

/* ---- reload ---- */

/* A number of threads or processes: `set` when it is set, else one per
 * online CPU within 1..max. */
static unsigned
per_cpu(uint64_t set, long online, unsigned max)
{
	if (set > 0)
		return (unsigned)set;
	if (online < 1)
		return 1;
	return online > (long)max ? max : (unsigned)online;
}

unsigned
config_workers(const struct config *cfg, long online)
{
	return per_cpu(cfg->workers, online, CONFIG_WORKERS_MAX);
}

unsigned
config_auth_workers(const struct config *cfg, long online)
{
	return per_cpu(cfg->auth_workers, online, CONFIG_AUTH_WORKERS_MAX);
}

unsigned
config_key_workers(const struct config *cfg, long online)
{
	return per_cpu(cfg->tls_key_workers, online, CONFIG_KEY_WORKERS_MAX);
}

static int
listens_eq(const struct config *a, const struct config *b)
{
	size_t i;

	if (a->nlistens != b->nlistens)
		return 0;
	for (i = 0; i < a->nlistens; i++) {
		const struct config_listen *x = &a->listens[i], *y = &b->listens[i];

		if (!same_name(x->name, y->name) || !same_name(x->address, y->address) ||
		    x->tls != y->tls || x->public_port != y->public_port)
			return 0;
	}
	return 1;
}

/* Replace *dst by a copy of src. */
static void
keep_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src != NULL ? xstrdup(src) : NULL;
}

static void
keep_listens(struct config *nw, const struct config *old)
{
	size_t i;

	for (i = 0; i < nw->nlistens; i++) {
		free(nw->listens[i].name);
		free(nw->listens[i].address);
	}
	free(nw->listens);
	nw->nlistens = old->nlistens;
	nw->listens = xcalloc(old->nlistens, sizeof(*nw->listens));
	for (i = 0; i < old->nlistens; i++) {
		nw->listens[i] = old->listens[i];
		nw->listens[i].name = xstrdup(old->listens[i].name);
		nw->listens[i].address = xstrdup(old->listens[i].address);
	}
}

static void
add_name(char *names, size_t len, size_t *n, const char *name)
{
	size_t used = strlen(names);

	if (used < len)
		snprintf(names + used, len - used, "%s%s", *n > 0 ? ", " : "", name);
	(*n)++;
}

size_t
config_keep_restart_only(struct config *nw, const struct config *old, char *names, size_t len)
{
	size_t n = 0;

	if (len > 0)
		names[0] = '\0';
	if (!listens_eq(nw, old)) {
		keep_listens(nw, old);
		add_name(names, len, &n, "[listen] sections");
	}
	if (!same_name(nw->user, old->user)) {
		keep_str(&nw->user, old->user);
		add_name(names, len, &n, "[server] user");
	}
	if (!same_name(nw->signer_user, old->signer_user)) {
		keep_str(&nw->signer_user, old->signer_user);
		add_name(names, len, &n, "[server] signer-user");
	}
	if (!same_name(nw->keeper_user, old->keeper_user)) {
		keep_str(&nw->keeper_user, old->keeper_user);
		add_name(names, len, &n, "[server] keeper-user");
	}
	if (!same_name(nw->chroot, old->chroot)) {
		keep_str(&nw->chroot, old->chroot);
		add_name(names, len, &n, "[server] chroot");
	}
	if (nw->workers != old->workers) {
		nw->workers = old->workers;
		add_name(names, len, &n, "[server] workers");
	}
	if (!same_name(nw->metrics_address, old->metrics_address) ||
	    nw->metrics_allow_remote != old->metrics_allow_remote) {
		keep_str(&nw->metrics_address, old->metrics_address);
		nw->metrics_addr = old->metrics_addr;
		nw->metrics_addrlen = old->metrics_addrlen;
		nw->metrics_allow_remote = old->metrics_allow_remote;
		add_name(names, len, &n, "[metrics] address");
	}
	if (!same_name(nw->audit_log, old->audit_log) ||
	    !same_name(nw->audit_signing_key, old->audit_signing_key) ||
	    nw->audit_rotate_size != old->audit_rotate_size ||
	    nw->audit_checkpoint_records != old->audit_checkpoint_records ||
	    nw->audit_checkpoint_interval != old->audit_checkpoint_interval ||
	    nw->audit_pseudonymize != old->audit_pseudonymize ||
	    !same_name(nw->audit_pseudonymize_key, old->audit_pseudonymize_key) ||
	    !same_name(nw->recorder_user, old->recorder_user)) {
		/* the recorder runs for the whole life of the service */
		keep_str(&nw->audit_log, old->audit_log);
		keep_str(&nw->recorder_user, old->recorder_user);
		keep_str(&nw->audit_signing_key, old->audit_signing_key);
		nw->audit_rotate_size = old->audit_rotate_size;
		nw->audit_checkpoint_records = old->audit_checkpoint_records;
		nw->audit_checkpoint_interval = old->audit_checkpoint_interval;
		nw->audit_pseudonymize = old->audit_pseudonymize;
		keep_str(&nw->audit_pseudonymize_key, old->audit_pseudonymize_key);
		add_name(names, len, &n, "[audit] log and its keys");
	}
	if (nw->limits.connections != old->limits.connections) {
		nw->limits.connections = old->limits.connections;
		add_name(names, len, &n, "[limits] connections");
	}
	if (nw->limits.transactions != old->limits.transactions) {
		nw->limits.transactions = old->limits.transactions;
		add_name(names, len, &n, "[limits] transactions");
	}
	return n;
}
