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
	char msg[1900];
	int *pending;
};

int
owntlsa_judge(const struct dns_result *res, const char *name, const char *listener,
    const char *hostname, const struct dane_cert *chain, size_t nchain,
    struct owntlsa_verdict *v)
{
	struct dane_tlsa *rrs = NULL;
	const char *names[1];
	char why[300], rec[200], tmp[512];
	size_t n = 0, i;
	enum dane_verdict dv;

	memset(v, 0, sizeof(*v));
	v->verdict = "";
	v->matched = -1;
	if (nchain == 0 || dane_record_for_cert(&chain[0], 3, 1, 1, rec, sizeof(rec)) < 0)
		snprintf(v->fix, sizeof(v->fix), "(cannot compute the record for the certificate)");
	else
		snprintf(v->fix, sizeof(v->fix), "publish, DNSSEC-signed: %s. IN TLSA %s", name,
		    rec);
	switch (res->status) {
	case DNS_SECURE:
		break;
	case DNS_SECURE_NXDOMAIN:
	case DNS_SECURE_NODATA:
		snprintf(v->why, sizeof(v->why), "listener \"%s\": no TLSA record at %s (the "
		    "name securely does not exist or has no TLSA)", listener, name);
		return 0;
	case DNS_INSECURE:
		snprintf(v->why, sizeof(v->why), "listener \"%s\": the TLSA lookup of %s is "
		    "insecure (the zone is not DNSSEC-signed or not delegated securely): clients "
		    "cannot use DANE", listener, name);
		snprintf(tmp, sizeof(tmp), "%.*s", (int)sizeof(tmp) - 1, v->fix);
		snprintf(v->fix, sizeof(v->fix), "sign the zone and %s", tmp);
		return 0;
	case DNS_BOGUS:
		snprintf(v->why, sizeof(v->why), "listener \"%s\": DNSSEC validation of %s TLSA "
		    "failed (bogus: %s)", listener, name, res->why);
		snprintf(tmp, sizeof(tmp), "%.*s", (int)sizeof(tmp) - 1, v->fix);
		snprintf(v->fix, sizeof(v->fix), "fix the zone's signatures or DS, then %s", tmp);
		return 0;
	case DNS_TEMPFAIL:
		snprintf(v->why, sizeof(v->why), "listener \"%s\": the TLSA lookup of %s failed "
		    "(%s)", listener, name, res->why);
		snprintf(v->fix, sizeof(v->fix), "check [dns] and that the name servers answer");
		return 0;
	}
	rrs = xcalloc(res->nrr ? res->nrr : 1, sizeof(*rrs));
	for (i = 0; i < res->nrr; i++) {
		const char *perr = NULL;

		if (res->rr[i].type != DNS_T_TLSA)
			continue;
		if (dane_tlsa_parse_rdata(res->rr[i].data, res->rr[i].len, &rrs[n], &perr) == 0) {
			if (dane_tlsa_usable(&rrs[n]))
				v->nusable++;
			n++;
		}
	}
	v->nrecords = n;
	names[0] = hostname;
	dv = dane_verify(rrs, n, chain, nchain, names, 1, 0, &v->matched, why, sizeof(why));
	v->verdict = dane_verdict_name(dv);
	if (dv == DANE_OK_EE || dv == DANE_OK_TA)
		v->ok = 1;
	else if (dv == DANE_NO_USABLE)
		snprintf(v->why, sizeof(v->why), "listener \"%s\": %s has %zu TLSA record(s), none "
		    "usable for SMTP (only usages 2 and 3 are, RFC 7672)", listener, name, n);
	else
		snprintf(v->why, sizeof(v->why), "listener \"%s\": no TLSA record at %s matches "
		    "the certificate served (%s; %s)", listener, name, v->verdict, why);
	for (i = 0; i < n; i++)
		dane_tlsa_clear(&rrs[i]);
	free(rrs);
	return v->ok;
}

static void
judge(struct check *c, const struct dns_result *res)
{
	struct dane_cert chain[TLS_CHAIN_MAX];
	struct owntlsa_verdict v;
	size_t nchain = tls_server_chain(c->ts, chain, TLS_CHAIN_MAX);

	if (!owntlsa_judge(res, c->name, c->l->name, c->cfg->hostname, chain, nchain, &v)) {
		snprintf(c->msg, sizeof(c->msg), "%s; %s", v.why, v.fix);
		return;
	}
	c->ok = 1;
	log_info("event=own-tlsa listener=%s name=%s records=%zu verdict=%s matched=%d",
	    c->l->name, c->name, v.nrecords, v.verdict, v.matched);
	if (v.nrecords == 1)
		log_warn("event=own-tlsa listener=%s name=%s: only one TLSA record; publish "
		    "the next key's record too before rolling the certificate", c->l->name,
		    c->name);
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
