/* owntlsa.c — our own listeners' TLSA records must be secure and match. */
#include "owntlsa.h"

#include "config.h"
#include "dane.h"
#include "dns.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

struct check {
	const struct config *cfg;
	const struct config_listen *l;
	const struct tls_server *ts;
	char name[300];
	struct dns_query *q;
	int done, ok;
	char msg[1600];
	int *pending;
};

static void
suggest(const struct check *c, char *out, size_t outlen)
{
	struct dane_cert leaf;
	char rec[200];

	if (tls_server_leaf(c->ts, &leaf) < 0 ||
	    dane_record_for_cert(&leaf, 3, 1, 1, rec, sizeof(rec)) < 0) {
		snprintf(out, outlen, "(cannot compute the record for the certificate)");
		return;
	}
	snprintf(out, outlen, "publish, DNSSEC-signed: %s. IN TLSA %s", c->name, rec);
}

static void
judge(struct check *c, const struct dns_result *res)
{
	struct dane_tlsa *rrs = NULL;
	struct dane_cert chain[TLS_CHAIN_MAX];
	const char *names[1];
	char why[300], fix[600];
	size_t n = 0, i, nchain;
	int matched = -1;
	enum dane_verdict v;

	suggest(c, fix, sizeof(fix));
	switch (res->status) {
	case DNS_SECURE:
		break;
	case DNS_SECURE_NXDOMAIN:
	case DNS_SECURE_NODATA:
		snprintf(c->msg, sizeof(c->msg), "listener \"%s\": no TLSA record at %s (the "
		    "name securely does not exist or has no TLSA); %s", c->l->name, c->name, fix);
		return;
	case DNS_INSECURE:
		snprintf(c->msg, sizeof(c->msg), "listener \"%s\": the TLSA lookup of %s is "
		    "insecure (the zone is not DNSSEC-signed or not delegated securely): clients "
		    "cannot use DANE; sign the zone and %s", c->l->name, c->name, fix);
		return;
	case DNS_BOGUS:
		snprintf(c->msg, sizeof(c->msg), "listener \"%s\": DNSSEC validation of %s TLSA "
		    "failed (bogus: %s); fix the zone's signatures or DS, then %s", c->l->name,
		    c->name, res->why, fix);
		return;
	case DNS_TEMPFAIL:
		snprintf(c->msg, sizeof(c->msg), "listener \"%s\": the TLSA lookup of %s failed "
		    "(%s); check [dns] and that the name servers answer", c->l->name, c->name,
		    res->why);
		return;
	}
	rrs = xcalloc(res->nrr ? res->nrr : 1, sizeof(*rrs));
	for (i = 0; i < res->nrr; i++) {
		const char *perr = NULL;

		if (res->rr[i].type != DNS_T_TLSA)
			continue;
		if (dane_tlsa_parse_rdata(res->rr[i].data, res->rr[i].len, &rrs[n], &perr) == 0)
			n++;
	}
	nchain = tls_server_chain(c->ts, chain, TLS_CHAIN_MAX);
	names[0] = c->cfg->hostname;
	v = dane_verify(rrs, n, chain, nchain, names, 1, 0, &matched, why, sizeof(why));
	if (v == DANE_OK_EE || v == DANE_OK_TA) {
		c->ok = 1;
		log_info("event=own-tlsa listener=%s name=%s records=%zu verdict=%s matched=%d",
		    c->l->name, c->name, n, dane_verdict_name(v), matched);
		if (n == 1)
			log_warn("event=own-tlsa listener=%s name=%s: only one TLSA record; publish "
			    "the next key's record too before rolling the certificate", c->l->name,
			    c->name);
	} else if (v == DANE_NO_USABLE) {
		snprintf(c->msg, sizeof(c->msg), "listener \"%s\": %s has %zu TLSA record(s), none "
		    "usable for SMTP (only usages 2 and 3 are, RFC 7672); %s", c->l->name, c->name,
		    n, fix);
	} else {
		snprintf(c->msg, sizeof(c->msg), "listener \"%s\": no TLSA record at %s matches "
		    "the certificate served (%s; %s); %s", c->l->name, c->name, dane_verdict_name(v),
		    why, fix);
	}
	for (i = 0; i < n; i++)
		dane_tlsa_clear(&rrs[i]);
	free(rrs);
}

static void
lookup_done(void *arg, const struct dns_result *res)
{
	struct check *c = arg;

	c->q = NULL;
	judge(c, res);
	c->done = 1;
	(*c->pending)--;
}

int
owntlsa_check(struct event_base *base, struct dns_ctx *dns, const struct config *cfg,
    const struct tls_server *ts, char *err, size_t errlen)
{
	struct check *cs = xcalloc(cfg->nlistens, sizeof(*cs));
	int pending = 0, rc = 0;
	size_t i, j;

	for (i = 0; i < cfg->nlistens; i++) {
		struct check *c = &cs[i];

		c->cfg = cfg;
		c->l = &cfg->listens[i];
		c->ts = ts;
		c->pending = &pending;
		snprintf(c->name, sizeof(c->name), "_%d._tcp.%s", c->l->public_port, cfg->hostname);
		/* two listeners published on the same port share one lookup result */
		for (j = 0; j < i; j++)
			if (cs[j].l->public_port == c->l->public_port)
				break;
		if (j < i)
			continue;
		pending++;
		c->q = dns_lookup(dns, c->name, DNS_T_TLSA, lookup_done, c);
	}
	while (pending > 0)
		if (event_base_loop(base, EVLOOP_ONCE) < 0)
			break;
	for (i = 0; i < cfg->nlistens; i++) {
		struct check *c = &cs[i];

		if (!c->done && c->q == NULL) {
			for (j = 0; j < i; j++)
				if (cs[j].l->public_port == c->l->public_port)
					break;
			c->ok = cs[j].ok;
			snprintf(c->msg, sizeof(c->msg), "%s", cs[j].msg);
		}
		dns_cancel(&c->q);
		if (!c->ok && rc == 0) {
			snprintf(err, errlen, "%s", c->msg[0] ? c->msg : "own TLSA check did not finish");
			rc = -1;
		}
	}
	free(cs);
	return rc;
}
