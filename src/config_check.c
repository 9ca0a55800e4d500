/*
 * config_check.c — validation: each section's keys checked against each other and
 * turned into struct config ([server], [listen], [relay], [dkim], [audit],
 * [metrics], [limits], [login]).
 */
#include "config_int.h"
#include "util.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* proxy-protocol, proxy-from (a list, the key may repeat), proxy-timeout. */
static int
check_listen_proxy(struct parse *p, struct config_listen *l, const struct sect *sc)
{
	struct entry *e, *from = NULL;
	size_t i;

	l->proxy_timeout = 5;
	if (get_bool(p, "listen", sc->name, "proxy-protocol", &l->proxy) < 0 ||
	    get_num_in(p, "listen", sc->name, "proxy-timeout", 1, 60, K_TIME,
	    &l->proxy_timeout) < 0)
		return -1;
	for (i = 0; i < p->ne; i++) {
		char *dup, *tok, *save = NULL;

		e = &p->e[i];
		if (strcmp(e->section, "listen") != 0 || !same_name(e->name, sc->name) ||
		    strcmp(e->key, "proxy-from") != 0)
			continue;
		e->used = 1;
		from = e;
		dup = xstrdup(e->value);
		for (tok = strtok_r(dup, ", \t", &save); tok != NULL;
		    tok = strtok_r(NULL, ", \t", &save)) {
			const char *why = NULL;

			l->proxy_from = xreallocarray(l->proxy_from, l->nproxy_from + 1,
			    sizeof(*l->proxy_from));
			if (cidr_parse(tok, &l->proxy_from[l->nproxy_from], &why) < 0) {
				perr(p, e->line, "bad proxy-from '%s': %s (expected ADDRESS or "
				    "ADDRESS/PREFIX, separated by commas)", tok, why);
				free(dup);
				return -1;
			}
			l->nproxy_from++;
		}
		free(dup);
	}
	if (l->proxy && l->nproxy_from == 0) {
		perr(p, sc->line, "listener \"%s\": proxy-protocol = yes needs 'proxy-from = "
		    "ADDRESS/PREFIX, ...' naming the load balancers allowed to send the PROXY "
		    "header", l->name);
		return -1;
	}
	if (!l->proxy && from != NULL) {
		perr(p, from->line, "listener \"%s\": proxy-from is given but proxy-protocol is "
		    "not 'yes' (set 'proxy-protocol = yes' or remove proxy-from)", l->name);
		return -1;
	}
	return 0;
}

static int
check_listen(struct parse *p, struct config *cfg, const struct sect *sc)
{
	struct config_listen *l;
	struct entry *e;
	uint64_t v;
	size_t i;

	cfg->listens = xreallocarray(cfg->listens, cfg->nlistens + 1, sizeof(*cfg->listens));
	l = &cfg->listens[cfg->nlistens++];
	memset(l, 0, sizeof(*l));
	l->name = xstrdup(sc->name);
	l->line = sc->line;
	if (get_str(p, "listen", sc->name, "address", 1, sc->line, &l->address) < 0)
		return -1;
	if (parse_hostport(l->address, &l->addr, &l->addrlen, &l->port) < 0) {
		get1(p, "listen", sc->name, "address", &e);
		perr(p, e->line, "bad address '%s' (expected IPv4:PORT such as 127.0.0.1:587 or "
		    "[IPv6]:PORT such as [::1]:587)", l->address);
		return -1;
	}
	if (get_tls_mode(p, "listen", sc->name, sc->line, 1, &l->tls) < 0)
		return -1;
	l->public_port = l->port;
	if (get1(p, "listen", sc->name, "public-port", &e) < 0)
		return -1;
	if (e != NULL) {
		if (parse_uint(e->value, 1, 65535, 0, &v) < 0) {
			perr(p, e->line, "bad value '%s' for 'public-port' (expected a port 1..65535)",
			    e->value);
			return -1;
		}
		l->public_port = (int)v;
	}
	for (i = 0; i + 1 < cfg->nlistens; i++) {
		const struct config_listen *o = &cfg->listens[i];
		if (o->addrlen == l->addrlen && memcmp(&o->addr, &l->addr, l->addrlen) == 0) {
			perr(p, sc->line, "listener \"%s\" uses the same address as \"%s\" (%s)",
			    l->name, o->name, l->address);
			return -1;
		}
	}
	return check_listen_proxy(p, l, sc);
}

static int
check_relay(struct parse *p, struct config *cfg, const struct sect *sc)
{
	struct config_relay *r;
	struct entry *e;
	uint64_t v;
	size_t i;

	cfg->relays = xreallocarray(cfg->relays, cfg->nrelays + 1, sizeof(*cfg->relays));
	r = &cfg->relays[cfg->nrelays++];
	memset(r, 0, sizeof(*r));
	r->name = xstrdup(sc->name);
	r->line = sc->line;
	r->tls = TLS_MODE_STARTTLS;
	if (get_str(p, "relay", sc->name, "host", 1, sc->line, &r->host) < 0)
		return -1;
	if (!is_ip_literal(r->host) &&
	    get_hostname(p, "relay", sc->name, "host", 1, sc->line, &r->host) < 0)
		return -1;
	if (get_str(p, "relay", sc->name, "address", 0, sc->line, &r->address) < 0)
		return -1;
	if (r->address != NULL && !is_ip_literal(r->address)) {
		get1(p, "relay", sc->name, "address", &e);
		perr(p, e->line, "bad address '%s' (expected an IPv4 or IPv6 address; the host name "
		    "goes in 'host')", r->address);
		return -1;
	}
	if (get_tls_mode(p, "relay", sc->name, sc->line, 0, &r->tls) < 0)
		return -1;
	r->port = r->tls == TLS_MODE_IMPLICIT ? 465 : 25;
	if (get1(p, "relay", sc->name, "port", &e) < 0)
		return -1;
	if (e != NULL) {
		if (parse_uint(e->value, 1, 65535, 0, &v) < 0) {
			perr(p, e->line, "bad value '%s' for 'port' (expected a port 1..65535)", e->value);
			return -1;
		}
		r->port = (int)v;
	}
	if (get_str(p, "relay", sc->name, "auth-file", 0, sc->line, &r->auth_file) < 0 ||
	    get_bool(p, "relay", sc->name, "xclient", &r->xclient) < 0)
		return -1;
	r->connections = 20;
	r->idle_timeout = 30;
	r->max_transactions = 100;
	r->spare_timeout = 2;
	if (get_num_in(p, "relay", sc->name, "connections", 0, 10000, K_UINT,
	    &r->connections) < 0 ||
	    get_num_in(p, "relay", sc->name, "idle-timeout", 1, 3600, K_TIME,
	    &r->idle_timeout) < 0 ||
	    get_num_in(p, "relay", sc->name, "spare-timeout", 0, 3600, K_TIME,
	    &r->spare_timeout) < 0 ||
	    get_num_in(p, "relay", sc->name, "max-transactions", 1, 1000000, K_UINT,
	    &r->max_transactions) < 0)
		return -1;
	for (i = 0; i < p->ne; i++) {
		const char *why = NULL;

		e = &p->e[i];
		if (strcmp(e->section, "relay") != 0 || !same_name(e->name, sc->name) ||
		    strcmp(e->key, "tlsa") != 0)
			continue;
		e->used = 1;
		r->tlsa = xreallocarray(r->tlsa, r->ntlsa + 1, sizeof(*r->tlsa));
		memset(&r->tlsa[r->ntlsa], 0, sizeof(r->tlsa[r->ntlsa]));
		if (dane_tlsa_parse_text(e->value, &r->tlsa[r->ntlsa], &why) < 0) {
			perr(p, e->line, "bad tlsa record \"%s\": %s (expected \"USAGE SELECTOR MTYPE "
			    "HEX\", e.g. \"3 1 1 <64 hex digits>\")", e->value, why ? why : "invalid");
			return -1;
		}
		r->ntlsa++;
	}
	r->dane = r->ntlsa > 0 ? DANE_MODE_STATIC : DANE_MODE_REQUIRED;
	if (get1(p, "relay", sc->name, "dane", &e) < 0)
		return -1;
	if (e != NULL) {
		if (strcmp(e->value, "required") != 0) {
			perr(p, e->line, "bad value '%s' for 'dane' (expected required; static pins are "
			    "given with 'tlsa = ...')", e->value);
			return -1;
		}
		if (r->ntlsa > 0) {
			perr(p, e->line, "relay \"%s\": 'dane = required' and static 'tlsa' pins exclude "
			    "each other (remove one)", r->name);
			return -1;
		}
	}
	if (r->dane == DANE_MODE_STATIC && r->ntlsa > 0) {
		for (i = 0; i < r->ntlsa; i++)
			if (dane_tlsa_usable(&r->tlsa[i]))
				break;
		if (i == r->ntlsa) {
			perr(p, sc->line, "relay \"%s\": no usable tlsa pin (only usages 2 and 3, "
			    "selectors 0 and 1, matching types 0-2 are usable for SMTP, RFC 7672)",
			    r->name);
			return -1;
		}
	}
	if (r->dane == DANE_MODE_REQUIRED && is_ip_literal(r->host)) {
		perr(p, sc->line, "relay \"%s\": host is an IP address, so DANE cannot look up its TLSA "
		    "records (give a host name, or static 'tlsa' pins)", r->name);
		return -1;
	}
	return 0;
}

static int
check_dkim(struct parse *p, struct config *cfg, const struct sect *sc)
{
	struct config_dkim *d;
	size_t i;

	if (!valid_hostname(sc->name)) {
		perr(p, sc->line, "bad domain \"%s\" in [dkim] (expected a DNS name)", sc->name);
		return -1;
	}
	cfg->dkims = xreallocarray(cfg->dkims, cfg->ndkims + 1, sizeof(*cfg->dkims));
	d = &cfg->dkims[cfg->ndkims++];
	memset(d, 0, sizeof(*d));
	d->domain = xstrdup(sc->name);
	d->line = sc->line;
	for (i = 0; i < p->ne; i++) {
		struct entry *e = &p->e[i];
		const char *v, *sp;
		struct config_dkim_key *k;
		size_t j;

		if (strcmp(e->section, "dkim") != 0 || !same_name(e->name, sc->name))
			continue;
		e->used = 1;
		v = e->value;
		sp = strpbrk(v, " \t");
		if (sp == NULL || sp == v || *skip_ws(sp) == '\0') {
			perr(p, e->line, "bad value '%s' for 'key' (expected 'SELECTOR FILE')", v);
			return -1;
		}
		d->keys = xreallocarray(d->keys, d->nkeys + 1, sizeof(*d->keys));
		k = &d->keys[d->nkeys++];
		k->selector = xstrndup(v, (size_t)(sp - v));
		k->file = xstrdup(skip_ws(sp));
		if (!valid_hostname(k->selector)) {
			perr(p, e->line, "bad selector '%s' (expected DNS labels)", k->selector);
			return -1;
		}
		for (j = 0; j + 1 < d->nkeys; j++)
			if (ascii_casecmp(d->keys[j].selector, k->selector) == 0) {
				perr(p, e->line, "duplicate selector '%s' for domain %s", k->selector,
				    d->domain);
				return -1;
			}
	}
	if (d->nkeys == 0) {
		perr(p, sc->line, "section [dkim \"%s\"] needs 'key = SELECTOR FILE'", d->domain);
		return -1;
	}
	return 0;
}

/* Loopback: 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static int
is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return 0;
}

/* [metrics] address = HOST:PORT | unix:/PATH, allow-remote = yes|no */
static int
check_metrics(struct parse *p, struct config *cfg)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&cfg->metrics_addr;
	struct entry *e;
	const char *a;
	int port;

	if (get_yesno(p, "metrics", "allow-remote", &cfg->metrics_allow_remote) < 0 ||
	    get1(p, "metrics", NULL, "address", &e) < 0)
		return -1;
	if (e == NULL)
		return 0;
	a = e->value;
	cfg->metrics_address = xstrdup(a);
	if (strncmp(a, "unix:", 5) == 0) {
		if (a[5] != '/' || strlen(a + 5) >= sizeof(sun->sun_path)) {
			perr(p, e->line, "bad address '%s' (expected unix: and an absolute path of at "
			    "most %zu characters)", a, sizeof(sun->sun_path) - 1);
			return -1;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, a + 5, strlen(a + 5) + 1);
		cfg->metrics_addrlen = (socklen_t)sizeof(*sun);
		return 0;
	}
	if (parse_hostport(a, &cfg->metrics_addr, &cfg->metrics_addrlen, &port) < 0) {
		perr(p, e->line, "bad address '%s' (expected 127.0.0.1:PORT, [::1]:PORT or "
		    "unix:/PATH)", a);
		return -1;
	}
	if (!is_loopback(&cfg->metrics_addr) && !cfg->metrics_allow_remote) {
		perr(p, e->line, "metrics address '%s' is not a loopback address: the metrics "
		    "have no TLS and no authentication (use 127.0.0.1, [::1] or unix:/PATH, or "
		    "set 'allow-remote = yes' and fence the port yourself)", a);
		return -1;
	}
	return 0;
}

/* [audit]: the audit log (src/recorder.h) and its keys. */
static int
check_audit(struct parse *p, struct config *cfg)
{
	struct sect *a = sect_lookup(p, "audit", NULL);
	int line = a != NULL ? a->line : 1;

	cfg->audit_required = -1;
	cfg->audit_checkpoint_records = 1000;
	cfg->audit_checkpoint_interval = 60;
	cfg->audit_flood_records = 100;
	if (get_str(p, "audit", NULL, "log", 0, line, &cfg->audit_log) < 0 ||
	    get_str(p, "audit", NULL, "signing-key", 0, line, &cfg->audit_signing_key) < 0 ||
	    get_yesno(p, "audit", "required", &cfg->audit_required) < 0 ||
	    get_num(p, "audit", "rotate-size", 4096, UINT64_MAX / 2, K_SIZE,
	    &cfg->audit_rotate_size) < 0 ||
	    get_num(p, "audit", "checkpoint-records", 1, 1000000, K_UINT,
	    &cfg->audit_checkpoint_records) < 0 ||
	    get_num(p, "audit", "checkpoint-interval", 1, 86400, K_TIME,
	    &cfg->audit_checkpoint_interval) < 0 ||
	    get_num(p, "audit", "flood-records", 0, 100000, K_UINT,
	    &cfg->audit_flood_records) < 0 ||
	    get_yesno(p, "audit", "pseudonymize", &cfg->audit_pseudonymize) < 0 ||
	    get_str(p, "audit", NULL, "pseudonymize-key", 0, line,
	    &cfg->audit_pseudonymize_key) < 0)
		return -1;
	if (cfg->audit_log == NULL) {
		static const char *const needs_log[] = { "signing-key", "required", "rotate-size",
		    "checkpoint-records", "checkpoint-interval", "pseudonymize", "pseudonymize-key",
		    "flood-records", NULL };
		size_t i, k;

		/* (recheck belongs to the self-audit, not to the log) */
		for (k = 0; needs_log[k] != NULL; k++)
			for (i = 0; i < p->ne; i++)
				if (strcmp(p->e[i].section, "audit") == 0 &&
				    strcmp(p->e[i].key, needs_log[k]) == 0) {
					perr(p, p->e[i].line, "'%s' needs 'log = FILE' (an absolute "
					    "path) in [audit]: without it nothing is recorded",
					    needs_log[k]);
					return -1;
				}
		return 0;
	}
	if (cfg->audit_log[0] != '/' || strrchr(cfg->audit_log, '/')[1] == '\0') {
		perr(p, line, "[audit] log must be an absolute file name (the recorder works in "
		    "its directory), not '%s'", cfg->audit_log);
		return -1;
	}
	if (cfg->audit_signing_key == NULL) {
		perr(p, line, "[audit] log needs 'signing-key = FILE' (an Ed25519 key: certtool "
		    "--generate-privkey --key-type ed25519 --outfile FILE)");
		return -1;
	}
	if (cfg->audit_pseudonymize && cfg->audit_pseudonymize_key == NULL) {
		perr(p, line, "[audit] pseudonymize = yes needs 'pseudonymize-key = FILE' (at "
		    "least 32 secret random octets: head -c 32 /dev/urandom > FILE)");
		return -1;
	}
	if (!cfg->audit_pseudonymize && cfg->audit_pseudonymize_key != NULL) {
		perr(p, line, "[audit] pseudonymize-key is set but pseudonymize is not yes");
		return -1;
	}
	return 0;
}

/* The four rate keys of [limits] (name NULL) or of [login "NAME"]. */
static int
get_rates(struct parse *p, const char *login, struct config_rates *r)
{
	const char *sect = login ? "login" : "limits";

	return get_num_in(p, sect, login, "messages-per-hour", 0, 1000000, K_UINT,
	    &r->messages_per_hour) < 0 ||
	    get_num_in(p, sect, login, "recipients-per-hour", 0, 1000000, K_UINT,
	    &r->recipients_per_hour) < 0 ||
	    get_num_in(p, sect, login, "auth-per-minute", 0, 1000000, K_UINT,
	    &r->auth_per_minute) < 0 ||
	    get_num_in(p, sect, login, "sessions-per-login", 0, 1000000, K_UINT,
	    &r->sessions_per_login) < 0 ? -1 : 0;
}

/* [login "NAME"]: per-login rate limits over the [limits] defaults. */
static int
check_login(struct parse *p, struct config *cfg, const struct sect *sc)
{
	struct config_login *lg;

	cfg->logins = xreallocarray(cfg->logins, cfg->nlogins + 1, sizeof(*cfg->logins));
	lg = &cfg->logins[cfg->nlogins++];
	memset(lg, 0, sizeof(*lg));
	lg->name = xstrdup(sc->name);
	lg->line = sc->line;
	lg->rates = cfg->limits.rates;
	return get_rates(p, sc->name, &lg->rates);
}

static int
check_limits(struct parse *p, struct config *cfg)
{
	struct config_limits *l = &cfg->limits;

	l->message_size = 25ULL << 20;
	l->recipients = 100;
	l->line_length = 998;
	l->header_size = 64 << 10;
	l->received_max = 30;
	l->connections = 1000;
	l->connections_per_ip = 20;
	l->timeout = 300;
	l->auth_failures = 3;
	l->memory_body = 256 << 10;
	l->relay_timeout = 60;
	l->relay_min_rate = 500;
	l->protocol_errors = 10;
	l->auth_timeout = 60;
	l->session_timeout = 3600;
	l->ipv6_prefix = 64;
	l->login_memory = 0;
	if (get_num(p, "limits", "message-size", 1024, CONFIG_MESSAGE_SIZE_MAX, K_SIZE,
	    &l->message_size) < 0 ||
	    get_num(p, "limits", "recipients", 1, 100000, K_UINT, &l->recipients) < 0 ||
	    get_num(p, "limits", "line-length", 78, 998, K_UINT, &l->line_length) < 0 ||
	    get_num(p, "limits", "header-size", 1024, 16ULL << 20, K_SIZE, &l->header_size) < 0 ||
	    get_num(p, "limits", "received-max", 1, 1000, K_UINT, &l->received_max) < 0 ||
	    get_num(p, "limits", "connections", 1, 1000000, K_UINT, &l->connections) < 0 ||
	    get_num(p, "limits", "connections-per-ip", 1, 1000000, K_UINT,
	    &l->connections_per_ip) < 0 ||
	    get_num(p, "limits", "timeout", 1, 86400, K_TIME, &l->timeout) < 0 ||
	    get_num(p, "limits", "auth-failures", 1, 100, K_UINT, &l->auth_failures) < 0 ||
	    get_num(p, "limits", "memory-body", 0, 1ULL << 30, K_SIZE, &l->memory_body) < 0 ||
	    get_num(p, "limits", "relay-timeout", 1, 3600, K_TIME, &l->relay_timeout) < 0 ||
	    get_num(p, "limits", "relay-min-rate", 1, 1ULL << 30, K_RATE, &l->relay_min_rate) < 0 ||
	    get_num(p, "limits", "protocol-errors", 1, 1000, K_UINT, &l->protocol_errors) < 0 ||
	    get_num(p, "limits", "auth-timeout", 1, 86400, K_TIME, &l->auth_timeout) < 0 ||
	    get_num(p, "limits", "session-timeout", 1, 7 * 86400, K_TIME,
	    &l->session_timeout) < 0 ||
	    get_num(p, "limits", "ipv6-prefix", 16, 128, K_UINT, &l->ipv6_prefix) < 0 ||
	    get_num(p, "limits", "login-memory", 1024, 1ULL << 44, K_SIZE, &l->login_memory) < 0 ||
	    get_num(p, "limits", "auth-queue", 1, 1000000, K_UINT, &l->auth_queue) < 0 ||
	    get_num(p, "limits", "transactions", 1, 1000000, K_UINT, &l->transactions) < 0 ||
	    get_rates(p, NULL, &l->rates) < 0)
		return -1;
	/* a default can contradict a key that is set: the line named is then
	 * that key's, and the sentence says which value is the default */
	if (l->header_size > l->message_size) {
		perr(p, pair_line(p, "limits", "header-size", "message-size"), "[limits] "
		    "header-size (%llu%s) is larger than message-size (%llu) (expected at most "
		    "message-size)", (unsigned long long)l->header_size,
		    key_set(p, "limits", "header-size") ? "" : ", the default",
		    (unsigned long long)l->message_size);
		return -1;
	}
	if (l->auth_timeout > l->session_timeout) {
		perr(p, pair_line(p, "limits", "auth-timeout", "session-timeout"), "[limits] "
		    "auth-timeout (%llu s%s) is longer than session-timeout (%llu s): a session "
		    "ends before it would apply (expected at most session-timeout)",
		    (unsigned long long)l->auth_timeout,
		    key_set(p, "limits", "auth-timeout") ? "" : ", the default",
		    (unsigned long long)l->session_timeout);
		return -1;
	}
	/* every session has at most one password check in flight: as many as
	 * sessions can exist, none is refused for want of room */
	if (l->auth_queue == 0)
		l->auth_queue = l->connections;
	if (l->transactions == 0)
		l->transactions = CONFIG_TRANSACTIONS_DEFAULT(l->connections);
	else if (l->transactions > l->connections) {
		perr(p, key_line(p, "limits", "transactions"), "[limits] transactions (%llu) is "
		    "larger than connections (%llu): every transaction belongs to a session "
		    "(expected at most connections)", (unsigned long long)l->transactions,
		    (unsigned long long)l->connections);
		return -1;
	}
	if (l->login_memory == 0)
		l->login_memory = 4 * l->message_size;
	else if (l->login_memory < l->message_size) {
		perr(p, key_line(p, "limits", "login-memory"), "[limits] login-memory (%llu) is "
		    "smaller than message-size (%llu): a login could never send a message of the "
		    "largest size (expected at least message-size)",
		    (unsigned long long)l->login_memory, (unsigned long long)l->message_size);
		return -1;
	}
	return 0;
}

int
validate(struct parse *p, struct config *cfg)
{
	size_t i;
	int srvline = 0;

	for (i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].section, "server") == 0)
			srvline = p->s[i].line;
	if (sect_lookup(p, "server", NULL) == NULL) {
		perr(p, 1, "missing section [server] (expected at least 'hostname = ...')");
		return -1;
	}
	if (get_hostname(p, "server", NULL, "hostname", 1, srvline, &cfg->hostname) < 0 ||
	    get_str(p, "server", NULL, "user", 0, srvline, &cfg->user) < 0 ||
	    get_str(p, "server", NULL, "signer-user", 0, srvline, &cfg->signer_user) < 0 ||
	    get_str(p, "server", NULL, "keeper-user", 0, srvline, &cfg->keeper_user) < 0 ||
	    get_str(p, "server", NULL, "recorder-user", 0, srvline, &cfg->recorder_user) < 0 ||
	    get_str(p, "server", NULL, "chroot", 0, srvline, &cfg->chroot) < 0 ||
	    get_str(p, "server", NULL, "profile", 0, srvline, &cfg->profile) < 0)
		return -1;
	cfg->shutdown_timeout = 30;
	cfg->worker_restarts = 5;
	if (get_num(p, "server", "shutdown-timeout", 0, 86400, K_TIME,
	    &cfg->shutdown_timeout) < 0 ||
	    get_num(p, "server", "workers", 1, CONFIG_WORKERS_MAX, K_UINT, &cfg->workers) < 0 ||
	    get_num(p, "server", "worker-restarts", 0, 1000, K_UINT, &cfg->worker_restarts) < 0)
		return -1;
	if (cfg->chroot != NULL && cfg->chroot[0] != '/') {
		perr(p, srvline, "'chroot' must be an absolute path, not '%s'", cfg->chroot);
		return -1;
	}
	for (i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].section, "listen") == 0 && check_listen(p, cfg, &p->s[i]) < 0)
			return -1;
	if (cfg->nlistens == 0) {
		perr(p, 1, "no [listen \"NAME\"] section (expected at least one listener)");
		return -1;
	}
	{
		struct sect *t = sect_lookup(p, "tls", NULL);
		int tl = t ? t->line : 1;

		if (t == NULL) {
			perr(p, 1, "missing section [tls] (expected 'certificate' and 'key')");
			return -1;
		}
		if (get_str(p, "tls", NULL, "certificate", 1, tl, &cfg->tls_certificate) < 0 ||
		    get_str(p, "tls", NULL, "key", 1, tl, &cfg->tls_key) < 0 ||
		    get_str(p, "tls", NULL, "priority", 0, tl, &cfg->tls_priority) < 0 ||
		    get_num(p, "tls", "key-workers", 1, CONFIG_KEY_WORKERS_MAX, K_UINT,
		    &cfg->tls_key_workers) < 0)
			return -1;
	}
	{
		struct sect *a = sect_lookup(p, "auth", NULL);

		if (a == NULL) {
			perr(p, 1, "missing section [auth] (expected 'passwd-file')");
			return -1;
		}
		cfg->auth_cache_ttl = 3600;
		cfg->auth_cache_size = 10000;
		if (get_str(p, "auth", NULL, "passwd-file", 1, a->line, &cfg->passwd_file) < 0 ||
		    get_num(p, "auth", "cache-ttl", 0, 7 * 86400, K_TIME, &cfg->auth_cache_ttl) < 0 ||
		    get_num(p, "auth", "cache-size", 1, 1u << 24, K_UINT,
		    &cfg->auth_cache_size) < 0 ||
		    get_num(p, "auth", "workers", 1, CONFIG_AUTH_WORKERS_MAX, K_UINT,
		    &cfg->auth_workers) < 0)
			return -1;
	}
	if (check_senders(p, cfg) < 0)
		return -1;
	for (i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].section, "relay") == 0 && check_relay(p, cfg, &p->s[i]) < 0)
			return -1;
	if (cfg->nrelays == 0) {
		perr(p, 1, "no [relay \"NAME\"] section (expected at least one relay)");
		return -1;
	}
	for (i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].section, "dkim") == 0 && check_dkim(p, cfg, &p->s[i]) < 0)
			return -1;
	if (cfg->ndkims == 0) {
		perr(p, 1, "no [dkim \"DOMAIN\"] section: subproxy signs every message and needs "
		    "'key = SELECTOR FILE' for each sender domain");
		return -1;
	}
	if (get_str(p, "dns", NULL, "trust-anchor-file", 0, 1, &cfg->trust_anchor_file) < 0 ||
	    get_str(p, "dns", NULL, "unbound-config", 0, 1, &cfg->unbound_config) < 0 ||
	    get_num(p, "dns", "timeout", 1, 300, K_TIME, &cfg->dns_timeout) < 0 ||
	    check_audit(p, cfg) < 0)
		return -1;
	cfg->audit_recheck = 3600;
	if (get_num(p, "audit", "recheck", 0, 7 * 86400, K_TIME, &cfg->audit_recheck) < 0 ||
	    check_metrics(p, cfg) < 0)
		return -1;
	if (check_limits(p, cfg) < 0)
		return -1;
	for (i = 0; i < p->ns; i++)
		if (strcmp(p->s[i].section, "login") == 0 && check_login(p, cfg, &p->s[i]) < 0)
			return -1;
	/* every entry must have been consumed: catches keys the table knows but
	 * the validator forgot */
	for (i = 0; i < p->ne; i++)
		if (!p->e[i].used) {
			perr(p, p->e[i].line, "key '%s' is not valid here", p->e[i].key);
			return -1;
		}
	return 0;
}
