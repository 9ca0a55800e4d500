/*
 * audit_checks.c — the self-audit's DNS checks (DNSSEC, own TLSA, DKIM
 * records, SRV, relays), DKIM key checks, sandbox and file checks, and the
 * listeners' proxy-from.
 *
 * Every DNS question is collected first, then all are asked at once on a
 * private event loop and answered before any check judges them, so the
 * whole audit takes about one DNS timeout even when DNS is down.
 */
#include "audit_int.h"

#include "cidr.h"
#include "config.h"
#include "danedns.h"
#include "dkim.h"
#include "log.h"
#include "owntlsa.h"
#include "policy.h"
#include "sandbox.h"
#include "util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <sodium.h>

#define TXT_MAX 8192

static const char *const refs_dnssec[] = { "RFC4033-5", "RFC7672-2.1", NULL };
static const char *const refs_own[] = { "RFC7672-2.2", "RFC7672-3.1", "RFC7671-8.1", NULL };
static const char *const refs_dkim_file[] = { "RFC6376-3.3.3", NULL };
static const char *const refs_dkim_strength[] = { "RFC6376-3.3.3", "RFC8301-3.2",
	"RFC8463", NULL };
static const char *const refs_dkim_alg[] = { "RFC8463-4", NULL };
static const char *const refs_dkim_dns[] = { "RFC6376-3.6.1", "RFC6376-3.6.2.2", NULL };
static const char *const refs_srv[] = { "RFC6186-3.1", "RFC8314-5.1", NULL };
static const char *const refs_relay[] = { "RFC7672-2.2", "RFC7672-3.1", NULL };
static const char *const refs_seccomp[] = { NULL };
static const char *const refs_proxy[] = { NULL };

/* ---- DKIM keys ---- */

static const char *
keytype_name(int t)
{
	return t == DKIM_KEY_ED25519 ? "ed25519" : t == DKIM_KEY_RSA ? "rsa" : "?";
}

void
audit_keys_load(struct audit_run *r)
{
	const struct config *cfg = r->cfg;
	struct dkim_policy *pol = NULL;
	const char *ptext;
	size_t plen, i, j, n = 0;
	char perr[400] = "";

	if (sodium_init() < 0)  /* dkim.c keeps keys in sodium_malloc() memory */
		fatal("libsodium initialisation failed");
	for (i = 0; i < cfg->ndkims; i++)
		n += cfg->dkims[i].nkeys;
	r->keys = xcalloc(n ? n : 1, sizeof(*r->keys));
	ptext = policy_get("dkim-headers", &plen);
	if (ptext != NULL)
		pol = dkim_policy_parse("policy/dkim-headers", ptext, plen, perr, sizeof(perr));
	for (i = 0; i < cfg->ndkims; i++)
		for (j = 0; j < cfg->dkims[i].nkeys; j++) {
			struct audit_key *k = &r->keys[r->nkeys++];
			struct config_dkim one = cfg->dkims[i];
			struct dkim_keyset *ks;
			struct dkim_keyinfo info;

			k->domain = cfg->dkims[i].domain;
			k->selector = cfg->dkims[i].keys[j].selector;
			k->file = cfg->dkims[i].keys[j].file;
			k->lk = -1;
			if (pol == NULL) {
				snprintf(k->err, sizeof(k->err), "the built-in DKIM header list "
				    "does not load: %s", perr[0] ? perr : "missing");
				continue;
			}
			/* one key at a time: a bad key must not hide the others */
			one.keys = &cfg->dkims[i].keys[j];
			one.nkeys = 1;
			ks = dkim_keys_load(&one, 1, pol, k->err, sizeof(k->err));
			if (ks == NULL)
				continue;
			if (dkim_keyset_info(ks, 0, &info) == 0) {
				k->loaded = 1;
				k->type = info.type;
				k->bits = info.bits;
				k->txt = xstrdup(info.dns_txt);
			}
			dkim_keyset_free(&ks);
		}
	dkim_policy_free(&pol);
}

/* ---- DNS ---- */

static int
lookup_add(struct audit_run *r, const char *name, int type)
{
	size_t i;

	for (i = 0; i < r->nlk; i++)
		if (r->lk[i].type == type && ascii_casecmp(r->lk[i].name, name) == 0)
			return (int)i;
	r->lk = xreallocarray(r->lk, r->nlk + 1, sizeof(*r->lk));
	memset(&r->lk[r->nlk], 0, sizeof(r->lk[r->nlk]));
	snprintf(r->lk[r->nlk].name, sizeof(r->lk[r->nlk].name), "%s", name);
	r->lk[r->nlk].type = type;
	return (int)r->nlk++;
}

static void
dns_all_done(evutil_socket_t fd, short what, void *arg)
{
	struct audit_run *r = arg;

	if (r->done_cb != NULL)
		r->done_cb(r->done_arg);
}

/* One answer is in; when it was the last, tell the live recheck (through
 * the loop: its callback frees what this frame still uses). */
static void
dns_answered(struct audit_run *r)
{
	static const struct timeval now = { 0, 0 };

	if (--r->pending == 0 && r->done_cb != NULL)
		evtimer_add(r->ev_done, &now);
}

static void
lookup_done(void *arg, const struct dns_result *res)
{
	struct audit_lookup *l = arg;
	size_t i;

	l->q = NULL;
	l->res = *res;
	l->res.rr = xcalloc(res->nrr ? res->nrr : 1, sizeof(*res->rr));
	for (i = 0; i < res->nrr; i++) {
		l->res.rr[i] = res->rr[i];
		l->res.rr[i].data = xmalloc(res->rr[i].len ? res->rr[i].len : 1);
		memcpy(l->res.rr[i].data, res->rr[i].data, res->rr[i].len);
	}
	l->done = 1;
	dns_answered(l->run);
}

static void
relay_done(void *arg, const struct danedns_result *res)
{
	struct audit_relay *a = arg;
	size_t i;

	a->q = NULL;
	a->status = res->status;
	snprintf(a->why, sizeof(a->why), "%s", res->why);
	a->ntlsa = res->ntlsa;
	for (i = 0; i < res->ntlsa; i++)
		if (dane_tlsa_usable(&res->tlsa[i]))
			a->nusable++;
	a->done = 1;
	dns_answered(a->run);
}

void
audit_dns_start(struct audit_run *r)
{
	static const struct timeval now = { 0, 0 };
	size_t i;

	if (r->done_cb != NULL && r->ev_done == NULL)
		r->ev_done = evtimer_new(r->base, dns_all_done, r);
	r->pending++;   /* not done before every question is asked */
	for (i = 0; i < r->nlk; i++) {
		r->lk[i].run = r;
		r->pending++;
		r->lk[i].q = dns_lookup(r->dns, r->lk[i].name, r->lk[i].type, lookup_done,
		    &r->lk[i]);
		if (r->lk[i].q == NULL) {
			r->pending--;
			r->lk[i].res.status = DNS_TEMPFAIL;
			snprintf(r->lk[i].res.why, sizeof(r->lk[i].res.why), "out of resources");
			r->lk[i].done = 1;
		}
	}
	for (i = 0; i < r->nrelays; i++) {
		struct audit_relay *a = &r->relays[i];

		a->run = r;
		r->pending++;
		a->q = danedns_lookup(r->dns, a->rc->host, a->rc->port, relay_done, a);
	}
	if (--r->pending == 0 && r->done_cb != NULL)
		evtimer_add(r->ev_done, &now);
}

/* Ask every question at once on a private loop and wait for all the
 * answers. */
static void
dns_run(struct audit_run *r)
{
	const struct config *cfg = r->cfg;

	if ((r->base = event_base_new()) == NULL)
		fatal("cannot create an event loop");
	r->dns = dns_ctx_new(r->base, cfg->trust_anchor_file, cfg->unbound_config,
	    (unsigned int)cfg->dns_timeout, r->dns_err, sizeof(r->dns_err));
	if (r->dns == NULL)
		return;
	audit_dns_start(r);
	while (r->pending > 0)
		if (event_base_loop(r->base, EVLOOP_ONCE) != 0)
			break;
}

/* The result of lookup i; a tempfail when DNS could not be set up. */
static const struct dns_result *
answer(struct audit_run *r, int i)
{
	struct audit_lookup *l = &r->lk[i];

	if (!l->done) {
		l->res.status = DNS_TEMPFAIL;
		snprintf(l->res.why, sizeof(l->res.why), "%s", r->dns == NULL ?
		    "no resolver (see dnssec.validation)" : "no answer");
		l->done = 1;
	}
	return &l->res;
}

static int
is_secure(enum dns_status s)
{
	return s == DNS_SECURE || s == DNS_SECURE_NXDOMAIN || s == DNS_SECURE_NODATA;
}

/* ---- dnssec.validation ---- */

static void
check_dnssec(struct audit_run *r, int la, int laaaa)
{
	const struct config *cfg = r->cfg;
	const struct dns_result *a, *aaaa;
	const char *fix = "check [dns] trust-anchor-file and unbound-config, and that the "
	    "host name's zone is DNSSEC-signed with a DS in its parent";

	if (r->dns == NULL) {
		audit_add(r, "dnssec.validation", AUDIT_FAIL, refs_dnssec, fix, "%s", r->dns_err);
		return;
	}
	a = answer(r, la);
	aaaa = answer(r, laaaa);
	if (a->status == DNS_BOGUS || aaaa->status == DNS_BOGUS)
		audit_add(r, "dnssec.validation", AUDIT_FAIL, refs_dnssec, fix, "validation of %s "
		    "A/AAAA failed (bogus: %s)", cfg->hostname, a->status == DNS_BOGUS ? a->why :
		    aaaa->why);
	else if (a->status == DNS_TEMPFAIL || aaaa->status == DNS_TEMPFAIL)
		audit_add(r, "dnssec.validation", AUDIT_FAIL, refs_dnssec, fix, "the lookup of %s "
		    "A/AAAA failed (%s) with trust anchor %s and resolver configuration %s",
		    cfg->hostname, a->status == DNS_TEMPFAIL ? a->why : aaaa->why,
		    cfg->trust_anchor_file, cfg->unbound_config ? cfg->unbound_config :
		    "(none)");
	else if (!is_secure(a->status) || !is_secure(aaaa->status))
		audit_add(r, "dnssec.validation", AUDIT_FAIL, refs_dnssec, fix, "the answer for "
		    "%s A/AAAA is insecure: the trust anchor (%s) does not cover the host name's "
		    "zone, or the zone is not signed", cfg->hostname, cfg->trust_anchor_file);
	else if (a->status != DNS_SECURE && aaaa->status != DNS_SECURE)
		audit_add(r, "dnssec.validation", AUDIT_WARN, refs_dnssec, "publish the host "
		    "name's addresses (signed)", "validation works (%s securely has no address), "
		    "but clients cannot find this host", cfg->hostname);
	else
		audit_add(r, "dnssec.validation", AUDIT_PASS, refs_dnssec, NULL, "the trust "
		    "anchor loads and %s A/AAAA validates as secure", cfg->hostname);
}

/* ---- dane.own.LISTENER ---- */

static void
check_own(struct audit_run *r, const struct config_listen *l, int lk)
{
	const struct dns_result *res = answer(r, lk);
	struct owntlsa_verdict v;
	char id[300];

	snprintf(id, sizeof(id), "dane.own.%s", l->name);
	if (r->nchain == 0) {
		audit_add(r, id, AUDIT_FAIL, refs_own, "see tls.cert.present", "not checked: "
		    "the certificate could not be read");
		return;
	}
	if (!owntlsa_judge(res, r->lk[lk].name, l->name, r->cfg->hostname, r->chain,
	    r->nchain, &v))
		audit_add(r, id, AUDIT_FAIL, refs_own, v.fix, "%s", v.why);
	else if (v.nusable < 2)
		audit_add(r, id, AUDIT_WARN, refs_own, "publish a second record for the next key "
		    "(3 1 1), or a 2 1 1 record for the issuing CA, before the certificate changes",
		    "%s: secure, record %d matches (%s), but it is the only usable record: a key "
		    "change will break DANE until DNS catches up", r->lk[lk].name, v.matched,
		    v.verdict);
	else
		audit_add(r, id, AUDIT_PASS, refs_own, NULL, "%s: secure, %zu usable records, "
		    "record %d matches (%s)", r->lk[lk].name, v.nusable, v.matched, v.verdict);
}

/* ---- DKIM ---- */

static void
check_key_file(struct audit_run *r, const struct audit_key *k, const char *prefix)
{
	struct stat st;
	char id[320], fix[600];

	snprintf(id, sizeof(id), "%s.file", prefix);
	if (stat(k->file, &st) < 0) {
		audit_add(r, id, AUDIT_FAIL, refs_dkim_file, "create the key (see "
		    "subproxy.conf(5)) or correct the path", "%s: %s", k->file, strerror(errno));
		return;
	}
	snprintf(fix, sizeof(fix), "chmod 600 %s", k->file);
	if (S_ISREG(st.st_mode) && (st.st_mode & 077) != 0) {
		audit_add(r, id, AUDIT_FAIL, refs_dkim_file, fix, "%s: mode %04o lets group or "
		    "others read the DKIM key", k->file, (unsigned int)(st.st_mode & 07777));
		return;
	}
	if (st.st_uid != geteuid()) {
		snprintf(fix, sizeof(fix), "chown %lu %s", (unsigned long)geteuid(), k->file);
		audit_add(r, id, AUDIT_FAIL, refs_dkim_file, fix, "%s is owned by uid %lu, not by "
		    "the uid subproxy runs as (%lu)", k->file, (unsigned long)st.st_uid,
		    (unsigned long)geteuid());
		return;
	}
	if (!k->loaded) {
		audit_add(r, id, AUDIT_FAIL, refs_dkim_file, "use an unencrypted PEM private key, "
		    "one per file: RSA of 2048..4096 bits with exponent 65537, or Ed25519", "%s",
		    k->err);
		return;
	}
	audit_add(r, id, AUDIT_PASS, refs_dkim_file, NULL, "%s: mode %04o, owner uid %lu, "
	    "loads and signs", k->file, (unsigned int)(st.st_mode & 07777),
	    (unsigned long)st.st_uid);
}

static void
check_key_strength(struct audit_run *r, const struct audit_key *k, const char *prefix)
{
	const struct audit_profile *p = r->prof;
	const char *t = keytype_name(k->type);
	char id[320];
	size_t i;

	snprintf(id, sizeof(id), "%s.strength", prefix);
	if (!k->loaded) {
		audit_add(r, id, AUDIT_SKIP, refs_dkim_strength, NULL, "not checked: the key does "
		    "not load (see %s.file)", prefix);
		return;
	}
	for (i = 0; i < p->ndkim_keys; i++)
		if (strcmp(p->dkim_keys[i].type, t) == 0)
			break;
	if (p->ndkim_keys > 0 && i == p->ndkim_keys)
		audit_add(r, id, AUDIT_FAIL, refs_dkim_strength, "use a key type the profile "
		    "allows", "%s key: profile %s does not allow this type", t, p->name);
	else if (p->ndkim_keys > 0 && k->bits < p->dkim_keys[i].min_bits)
		audit_add(r, id, AUDIT_FAIL, refs_dkim_strength, "make a larger key under a new "
		    "selector, publish it, then switch", "%s key of %u bits: profile %s requires "
		    "at least %u", t, k->bits, p->name, p->dkim_keys[i].min_bits);
	else
		audit_add(r, id, AUDIT_PASS, refs_dkim_strength, NULL, "%s key of %u bits", t,
		    k->bits);
}

/* The value of tag `tag` in a DKIM tag list (RFC 6376 3.2), whitespace
 * removed, into out; 1 found, 0 not. */
static int
dkim_tag(const char *list, const char *tag, char *out, size_t outlen)
{
	const char *s = list;
	size_t tl = strlen(tag);

	while (*s) {
		const char *end = strchr(s, ';'), *eq;
		size_t o = 0;

		if (end == NULL)
			end = s + strlen(s);
		while (s < end && strchr(" \t\r\n", *s))
			s++;
		eq = memchr(s, '=', (size_t)(end - s));
		if (eq != NULL) {
			const char *ne = eq;

			while (ne > s && strchr(" \t\r\n", ne[-1]))
				ne--;
			if ((size_t)(ne - s) == tl && memcmp(s, tag, tl) == 0) {
				for (eq++; eq < end; eq++)
					if (!strchr(" \t\r\n", *eq) && o + 1 < outlen)
						out[o++] = *eq;
				out[o] = '\0';
				return 1;
			}
		}
		s = *end ? end + 1 : end;
	}
	return 0;
}

/* TXT rdata: its character-strings joined, NUL bytes refused. */
static int
txt_join(const struct dns_rr *rr, char *out, size_t outlen)
{
	size_t pos = 0, o = 0;

	while (pos < rr->len) {
		size_t n = rr->data[pos++];

		if (pos + n > rr->len || o + n + 1 > outlen || memchr(rr->data + pos, 0, n))
			return -1;
		memcpy(out + o, rr->data + pos, n);
		o += n;
		pos += n;
	}
	out[o] = '\0';
	return 0;
}

static void
check_key_dns(struct audit_run *r, const struct audit_key *k, const char *prefix)
{
	const struct audit_profile *p = r->prof;
	const struct dns_result *res;
	char id[320], name[300], fix[TXT_MAX + 400], want[TXT_MAX], *txt = NULL;
	size_t i, nmatch = 0, ntxt = 0;
	enum audit_status missing = p->dkim_dns_missing_fail ? AUDIT_FAIL : AUDIT_WARN;

	snprintf(id, sizeof(id), "%s.dns", prefix);
	snprintf(name, sizeof(name), "%s._domainkey.%s", k->selector, k->domain);
	if (!k->loaded) {
		audit_add(r, id, AUDIT_SKIP, refs_dkim_dns, NULL, "not checked: the key does not "
		    "load (see %s.file)", prefix);
		return;
	}
	snprintf(fix, sizeof(fix), "publish%s: %s. IN TXT \"%s\" (subproxy --dns-records "
	    "prints it split for zone files)", p->dns_secure ? ", DNSSEC-signed" : "", name,
	    k->txt);
	if (!dkim_tag(k->txt, "p", want, sizeof(want)))
		want[0] = '\0';
	res = answer(r, k->lk);
	switch (res->status) {
	case DNS_TEMPFAIL:
		audit_add(r, id, AUDIT_FAIL, refs_dkim_dns, "check [dns] and the zone's name "
		    "servers", "the TXT lookup of %s failed (%s)", name, res->why);
		return;
	case DNS_BOGUS:
		audit_add(r, id, AUDIT_FAIL, refs_dkim_dns, "fix the zone's DNSSEC signatures or "
		    "DS", "DNSSEC validation of %s TXT failed (bogus: %s): verifiers cannot get "
		    "the key", name, res->why);
		return;
	case DNS_SECURE_NXDOMAIN:
	case DNS_SECURE_NODATA:
		audit_add(r, id, missing, refs_dkim_dns, fix, "no TXT record at %s: verifiers "
		    "cannot check this key's signatures", name);
		return;
	case DNS_INSECURE:
		if (res->nrr == 0) {
			audit_add(r, id, missing, refs_dkim_dns, fix, "no TXT record at %s "
			    "(insecure zone): verifiers cannot check this key's signatures", name);
			return;
		}
		if (p->dns_secure) {
			audit_add(r, id, AUDIT_FAIL, refs_dkim_dns, fix, "%s TXT is not "
			    "DNSSEC-signed; profile %s requires signed key records", name, p->name);
			return;
		}
		break;
	case DNS_SECURE:
		break;
	}
	txt = xmalloc(TXT_MAX);
	for (i = 0; i < res->nrr; i++) {
		char got[TXT_MAX], kt[32];

		if (res->rr[i].type != DNS_T_TXT || txt_join(&res->rr[i], txt, TXT_MAX) < 0)
			continue;
		ntxt++;
		if (!dkim_tag(txt, "p", got, sizeof(got)))
			continue;
		if (!dkim_tag(txt, "k", kt, sizeof(kt)))
			snprintf(kt, sizeof(kt), "rsa");
		if (strcmp(got, want) == 0 && want[0] != '\0' &&
		    strcmp(kt, keytype_name(k->type)) == 0)
			nmatch++;
	}
	free(txt);
	if (nmatch == 0)
		audit_add(r, id, AUDIT_FAIL, refs_dkim_dns, fix, "%s has %zu TXT record(s), none "
		    "carrying this key (%s, %s): its signatures fail verification", name, ntxt,
		    keytype_name(k->type), k->file);
	else if (ntxt > 1)
		audit_add(r, id, AUDIT_WARN, refs_dkim_dns, "keep one TXT record per selector",
		    "%s carries this key, but has %zu TXT records (verifiers may pick any)", name,
		    ntxt);
	else
		audit_add(r, id, AUDIT_PASS, refs_dkim_dns, NULL, "%s carries this key (%s)",
		    name, res->status == DNS_SECURE ? "DNSSEC-secure" : "not DNSSEC-signed");
}

static void
check_dkim_domain_algs(struct audit_run *r, const char *domain)
{
	const struct audit_profile *p = r->prof;
	char id[300], missing[100] = "";
	size_t i, j;

	if (p->dkim_require.n == 0)
		return;
	for (i = 0; i < p->dkim_require.n; i++) {
		for (j = 0; j < r->nkeys; j++)
			if (strcmp(r->keys[j].domain, domain) == 0 && r->keys[j].loaded &&
			    strcmp(keytype_name(r->keys[j].type), p->dkim_require.v[i]) == 0)
				break;
		if (j == r->nkeys)
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing),
			    "%s%s", missing[0] ? " and " : "", p->dkim_require.v[i]);
	}
	snprintf(id, sizeof(id), "dkim.%s.algorithms", domain);
	if (missing[0])
		audit_add(r, id, AUDIT_FAIL, refs_dkim_alg, "add a key of each missing type under "
		    "its own selector ('key = SELECTOR FILE' in [dkim])", "%s has no usable %s "
		    "key; profile %s signs every message with each of its required algorithms",
		    domain, missing, p->name);
	else
		audit_add(r, id, AUDIT_PASS, refs_dkim_alg, NULL, "%s signs with every required "
		    "algorithm", domain);
}

/* ---- srv.submission(s).DOMAIN ---- */

/* SRV rdata: priority, weight, port, target (uncompressed).  0 or -1. */
static int
srv_parse(const struct dns_rr *rr, int *port, char *target, size_t tlen)
{
	size_t pos = 6, o = 0;

	if (rr->len < 7)
		return -1;
	*port = rr->data[4] << 8 | rr->data[5];
	while (pos < rr->len) {
		size_t n = rr->data[pos++];

		if (n == 0)
			break;
		if ((n & 0xc0) || pos + n > rr->len || o + n + 2 > tlen)
			return -1;
		if (o > 0)
			target[o++] = '.';
		memcpy(target + o, rr->data + pos, n);
		o += n;
		pos += n;
	}
	if (o == 0)
		target[o++] = '.';
	target[o] = '\0';
	return 0;
}

static void
check_srv(struct audit_run *r, const char *domain, int lk, int implicit)
{
	const struct config *cfg = r->cfg;
	const struct audit_profile *p = r->prof;
	const struct config_listen *l = NULL;
	const char *svc = implicit ? "submissions" : "submission";
	const struct dns_result *res = answer(r, lk);
	char id[300], fix[600], target[256];
	size_t i;
	int ours = 0, dot = 0, others = 0, port;

	snprintf(id, sizeof(id), "srv.%s.%s", svc, domain);
	for (i = 0; i < cfg->nlistens && l == NULL; i++)
		if ((cfg->listens[i].tls == TLS_MODE_IMPLICIT) == implicit)
			l = &cfg->listens[i];
	if (l != NULL)
		snprintf(fix, sizeof(fix), "publish%s: _%s._tcp.%s. IN SRV 0 1 %d %s.",
		    p->dns_secure ? ", DNSSEC-signed" : "", svc, domain, l->public_port,
		    cfg->hostname);
	else
		snprintf(fix, sizeof(fix), "remove the record, or publish _%s._tcp.%s. IN SRV "
		    "0 0 0 . (service not offered)", svc, domain);
	if (res->status == DNS_TEMPFAIL || res->status == DNS_BOGUS) {
		audit_add(r, id, AUDIT_FAIL, refs_srv, "check the zone and [dns]", "the SRV "
		    "lookup of _%s._tcp.%s failed (%s: %s)", svc, domain,
		    dns_status_name(res->status), res->why);
		return;
	}
	for (i = 0; i < res->nrr; i++) {
		if (res->rr[i].type != DNS_T_SRV ||
		    srv_parse(&res->rr[i], &port, target, sizeof(target)) < 0)
			continue;
		if (strcmp(target, ".") == 0)
			dot++;
		else if (ascii_casecmp(target, cfg->hostname) == 0 && l != NULL &&
		    port == l->public_port)
			ours++;
		else
			others++;
	}
	if (l == NULL) {
		if (ours + others > 0)
			audit_add(r, id, AUDIT_WARN, refs_srv, fix, "_%s._tcp.%s announces a "
			    "service, but this host has no %s listener", svc, domain,
			    implicit ? "implicit-TLS" : "STARTTLS");
		else
			audit_add(r, id, AUDIT_SKIP, refs_srv, NULL, "no %s listener: nothing to "
			    "announce at _%s._tcp.%s", implicit ? "implicit-TLS" : "STARTTLS", svc,
			    domain);
		return;
	}
	if (res->nrr == 0)
		audit_add(r, id, AUDIT_FAIL, refs_srv, fix, "no SRV record at _%s._tcp.%s: mail "
		    "clients cannot discover this service", svc, domain);
	else if (p->dns_secure && res->status != DNS_SECURE)
		audit_add(r, id, AUDIT_FAIL, refs_srv, fix, "_%s._tcp.%s SRV is not "
		    "DNSSEC-signed; profile %s requires it", svc, domain, p->name);
	else if (ours == 0)
		audit_add(r, id, AUDIT_FAIL, refs_srv, fix, "_%s._tcp.%s has %zu SRV record(s), "
		    "none pointing at %s port %d%s", svc, domain, res->nrr, cfg->hostname,
		    l->public_port, dot ? " (it says the service is not offered)" : "");
	else
		audit_add(r, id, AUDIT_PASS, refs_srv, NULL, "_%s._tcp.%s points at %s port %d%s",
		    svc, domain, cfg->hostname, l->public_port, others ? " (among others)" : "");
}

/* ---- relay.NAME.dane ---- */

static void
check_relay(struct audit_run *r, const struct config_relay *rc)
{
	char id[300];
	size_t i, usable = 0;

	snprintf(id, sizeof(id), "relay.%s.dane", rc->name);
	if (rc->dane == DANE_MODE_STATIC) {
		for (i = 0; i < rc->ntlsa; i++)
			usable += dane_tlsa_usable(&rc->tlsa[i]) ? 1 : 0;
		if (usable == 0)
			audit_add(r, id, AUDIT_FAIL, refs_relay, "pin the relay's key with 'tlsa = "
			    "\"3 1 1 HEX\"'", "relay \"%s\": none of its %zu static TLSA pins is "
			    "usable (only usages 2 and 3 are)", rc->name, rc->ntlsa);
		else
			audit_add(r, id, AUDIT_PASS, refs_relay, NULL, "relay \"%s\": %zu usable "
			    "static TLSA pin(s); no DNS needed", rc->name, usable);
		return;
	}
	if (is_ip_literal(rc->host)) {
		audit_add(r, id, AUDIT_FAIL, refs_relay, "give the relay's host name in 'host', "
		    "or pin its key with 'tlsa'", "relay \"%s\": DANE needs a host name, not the "
		    "address %s", rc->name, rc->host);
		return;
	}
	for (i = 0; i < r->nrelays; i++)
		if (r->relays[i].rc == rc)
			break;
	if (i == r->nrelays || !r->relays[i].done) {
		audit_add(r, id, AUDIT_FAIL, refs_relay, "see dnssec.validation", "relay \"%s\": "
		    "not checked: %s", rc->name, r->dns == NULL ? "no resolver" : "no answer");
		return;
	}
	if (r->relays[i].status == DANEDNS_OK)
		audit_add(r, id, AUDIT_PASS, refs_relay, NULL, "relay \"%s\": %s", rc->name,
		    r->relays[i].why);
	else
		audit_add(r, id, AUDIT_FAIL, refs_relay, "publish a DNSSEC-signed TLSA RRset for "
		    "the relay, or pin its key with 'tlsa'", "relay \"%s\" (%s port %d): %s",
		    rc->name, rc->host, rc->port, r->relays[i].why);
}

/* ---- sandbox ---- */

/* [server] KEY = user: exists, is not root, and (for a key holder) is not
 * front's user, not_as; a user of its own would be `own`. */
static void
check_user(struct audit_run *r, const char *id, const char *key, const char *user,
    const char *who, const char *not_as, const char *own)
{
	char *fix, why[512];
	uid_t uid;
	gid_t gid;
	int found;

	/* the daemon looked its users up before its filter: sandbox_user()
	 * answers from memory then, as sandbox_drop() will */
	if ((found = sandbox_user(user, &uid, &gid, why, sizeof(why))) != 0) {
		fix = xasprintf("create it (useradd --system --no-create-home --home-dir "
		    "/nonexistent --shell /usr/sbin/nologin %s), or set [server] %s", user, key);
		if (found > 0)
			audit_add(r, id, AUDIT_FAIL, refs_seccomp, fix, "the user \"%s\" does not "
			    "exist", user);
		else
			audit_add(r, id, AUDIT_FAIL, refs_seccomp, fix, "%s", why);
		free(fix);
	} else if (uid == 0 || gid == 0) {
		fix = xasprintf("choose an unprivileged system user in [server] %s", key);
		audit_add(r, id, AUDIT_FAIL, refs_seccomp, fix, "the user \"%s\" has uid %lu gid "
		    "%lu: %s would keep root's powers", user, (unsigned long)uid,
		    (unsigned long)gid, who);
		free(fix);
	} else if (not_as != NULL && strcmp(user, not_as) == 0) {
		fix = xasprintf("give it a user of its own in [server] %s (useradd --system "
		    "--no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin %s)", key,
		    own);
		audit_add(r, id, AUDIT_FAIL, refs_seccomp, fix, "%s would run as \"%s\", the "
		    "network process's user: a network process that broke out of its filter "
		    "could signal it", who, user);
		free(fix);
	} else {
		audit_add(r, id, AUDIT_PASS, refs_seccomp, NULL, "%s runs as \"%s\" (uid %lu)", who,
		    user, (unsigned long)uid);
	}
}

static void
check_sandbox(struct audit_run *r)
{
	const struct config *cfg = r->cfg;
	char why[600];

	if (sandbox_available(why, sizeof(why)))
		audit_add(r, "sandbox.seccomp", AUDIT_PASS, refs_seccomp, NULL, "%s", why);
	else
		audit_add(r, "sandbox.seccomp", AUDIT_FAIL, refs_seccomp, "run on a kernel with "
		    "seccomp filters (Linux >= 4.14, CONFIG_SECCOMP_FILTER)", "%s", why);
	if (geteuid() != 0) {
		audit_add(r, "sandbox.user", AUDIT_SKIP, refs_seccomp, NULL, "not running as "
		    "root: subproxy keeps the uid it is started with and cannot switch to "
		    "\"%s\"", cfg->user);
		audit_add(r, "sandbox.signer-user", AUDIT_SKIP, refs_seccomp, NULL, "not running "
		    "as root: the signer keeps the uid subproxy is started with");
		audit_add(r, "sandbox.keeper-user", AUDIT_SKIP, refs_seccomp, NULL, "not running "
		    "as root: the keeper keeps the uid subproxy is started with");
		if (cfg->audit_log != NULL)
			audit_add(r, "sandbox.recorder-user", AUDIT_SKIP, refs_seccomp, NULL, "not "
			    "running as root: the recorder keeps the uid subproxy is started with");
		audit_add(r, "sandbox.chroot", AUDIT_SKIP, refs_seccomp, NULL, "not running as "
		    "root: subproxy cannot chroot to %s", cfg->chroot);
		return;
	}
	check_user(r, "sandbox.user", "user", cfg->user, "the network process", NULL, NULL);
	check_user(r, "sandbox.signer-user", "signer-user", cfg->signer_user, "the DKIM signer",
	    cfg->user, "subproxy-signer");
	check_user(r, "sandbox.keeper-user", "keeper-user", cfg->keeper_user,
	    "the keeper (TLS key, passwords)", cfg->user, "subproxy-keeper");
	if (cfg->audit_log != NULL)
		check_user(r, "sandbox.recorder-user", "recorder-user", cfg->recorder_user,
		    "the audit log's recorder (log, signing key)", cfg->user, "subproxy-recorder");
	/* the very checks sandbox_drop() will make at start (front, signer and
	 * keeper all chroot there) */
	if (sandbox_chroot_check(cfg->chroot, why, sizeof(why)) < 0)
		audit_add(r, "sandbox.chroot", AUDIT_FAIL, refs_seccomp, "make it an empty "
		    "directory owned by root, as is every directory above it, writable by nobody "
		    "else (install -d -m 0755 -o root -g root DIR)", "%s", why);
	else
		audit_add(r, "sandbox.chroot", AUDIT_PASS, refs_seccomp, NULL, "%s is an empty "
		    "directory owned by root, safe up to /", cfg->chroot);
}

/* ---- listen.LISTENER.proxy-from ---- */

/* Narrowest prefixes that still warn when they reach public addresses: a
 * load balancer pool fits in far less, and Google's published proxy range
 * (35.191.0.0/16) is the widest a cloud documents; an IPv6 /48 is a site. */
#define PROXY_WIDE_V4 16
#define PROXY_WIDE_V6 48

static int
proxy_prefix_wide(const struct cidr *c)
{
	return !cidr_private(c) && c->bits < (c->family == AF_INET ? PROXY_WIDE_V4 : PROXY_WIDE_V6);
}

/* Whoever connects from proxy-from may name any client address: a prefix
 * that reaches far into the internet lets strangers choose the address the
 * limits, lockouts, logs, Received and XCLIENT see. */
static void
check_proxy_from(struct audit_run *r, const struct config_listen *l)
{
	char id[300], wide[600] = "", text[64];
	size_t i, wl;

	snprintf(id, sizeof(id), "listen.%s.proxy-from", l->name);
	for (i = 0; i < l->nproxy_from; i++) {
		if (!proxy_prefix_wide(&l->proxy_from[i]))
			continue;
		wl = strlen(wide);
		snprintf(wide + wl, sizeof(wide) - wl, "%s%s", wl ? ", " : "",
		    cidr_format(&l->proxy_from[i], text, sizeof(text)));
	}
	if (wide[0] != '\0')
		audit_add(r, id, AUDIT_WARN, refs_proxy, "list only the load balancers' addresses "
		    "(or their private network)", "%s reach%s public addresses beyond a /%d "
		    "(IPv4) or /%d (IPv6): any host there may send a PROXY header and claim any "
		    "client address", wide, strchr(wide, ',') ? "" : "es", PROXY_WIDE_V4,
		    PROXY_WIDE_V6);
	else
		audit_add(r, id, AUDIT_PASS, refs_proxy, NULL, "%zu prefix%s, private or at most "
		    "a /%d (IPv4) or /%d (IPv6)", l->nproxy_from, l->nproxy_from == 1 ? "" : "es",
		    PROXY_WIDE_V4, PROXY_WIDE_V6);
}

static void
check_listeners(struct audit_run *r)
{
	size_t i;

	for (i = 0; i < r->cfg->nlistens; i++)
		if (r->cfg->listens[i].proxy)
			check_proxy_from(r, &r->cfg->listens[i]);
}

/* ---- the run ---- */

void
audit_dns_collect(struct audit_run *r)
{
	const struct config *cfg = r->cfg;
	char name[300];
	size_t i;

	r->la = lookup_add(r, cfg->hostname, DNS_T_A);
	r->laaaa = lookup_add(r, cfg->hostname, DNS_T_AAAA);
	r->own = xcalloc(cfg->nlistens, sizeof(*r->own));
	for (i = 0; i < cfg->nlistens; i++) {
		snprintf(name, sizeof(name), "_%d._tcp.%s", cfg->listens[i].public_port,
		    cfg->hostname);
		r->own[i] = lookup_add(r, name, DNS_T_TLSA);
	}
	for (i = 0; i < r->nkeys; i++) {
		snprintf(name, sizeof(name), "%s._domainkey.%s", r->keys[i].selector,
		    r->keys[i].domain);
		r->keys[i].lk = lookup_add(r, name, DNS_T_TXT);
	}
	r->srv = xcalloc(cfg->ndkims * 2 + 1, sizeof(*r->srv));
	for (i = 0; i < cfg->ndkims; i++) {
		snprintf(name, sizeof(name), "_submission._tcp.%s", cfg->dkims[i].domain);
		r->srv[2 * i] = lookup_add(r, name, DNS_T_SRV);
		snprintf(name, sizeof(name), "_submissions._tcp.%s", cfg->dkims[i].domain);
		r->srv[2 * i + 1] = lookup_add(r, name, DNS_T_SRV);
	}
	r->relays = xcalloc(cfg->nrelays + 1, sizeof(*r->relays));
	for (i = 0; i < cfg->nrelays; i++)
		if (cfg->relays[i].dane == DANE_MODE_REQUIRED && !is_ip_literal(cfg->relays[i].host))
			r->relays[r->nrelays++].rc = &cfg->relays[i];
}

void
audit_dns_judge(struct audit_run *r)
{
	const struct config *cfg = r->cfg;
	char prefix[300];
	size_t i, j;

	check_dnssec(r, r->la, r->laaaa);
	for (i = 0; i < cfg->nlistens; i++)
		check_own(r, &cfg->listens[i], r->own[i]);
	for (i = 0; i < cfg->ndkims; i++) {
		for (j = 0; j < r->nkeys; j++) {
			if (strcmp(r->keys[j].domain, cfg->dkims[i].domain) != 0)
				continue;
			snprintf(prefix, sizeof(prefix), "dkim.%s.%s", r->keys[j].domain,
			    r->keys[j].selector);
			if (!r->dns_only) {
				check_key_file(r, &r->keys[j], prefix);
				check_key_strength(r, &r->keys[j], prefix);
			}
			check_key_dns(r, &r->keys[j], prefix);
		}
		if (!r->dns_only)
			check_dkim_domain_algs(r, cfg->dkims[i].domain);
	}
	for (i = 0; i < cfg->ndkims; i++) {
		check_srv(r, cfg->dkims[i].domain, r->srv[2 * i], 0);
		check_srv(r, cfg->dkims[i].domain, r->srv[2 * i + 1], 1);
	}
	for (i = 0; i < cfg->nrelays; i++)
		check_relay(r, &cfg->relays[i]);
}

void
audit_checks_run(struct audit_run *r)
{
	audit_tls_checks(r);
	audit_keys_load(r);
	audit_dns_collect(r);
	dns_run(r);
	audit_dns_judge(r);
	check_sandbox(r);
	audit_file_checks(r);
	check_listeners(r);
	audit_alog_checks(r);
}

void
audit_run_clear(struct audit_run *r)
{
	size_t i;

	for (i = 0; i < r->nlk; i++) {
		dns_cancel(&r->lk[i].q);
		dns_result_clear(&r->lk[i].res);
	}
	free(r->lk);
	r->lk = NULL;
	r->nlk = 0;
	for (i = 0; i < r->nrelays; i++)
		danedns_cancel(&r->relays[i].q);
	free(r->relays);
	r->relays = NULL;
	r->nrelays = 0;
	if (r->ev_done != NULL)
		event_free(r->ev_done);
	r->ev_done = NULL;
	free(r->own);
	free(r->srv);
	r->own = r->srv = NULL;
	if (!r->borrowed) {
		dns_ctx_free(&r->dns);
		if (r->base != NULL)
			event_base_free(r->base);
	}
	r->dns = NULL;
	r->base = NULL;
	for (i = 0; i < r->nkeys; i++)
		free(r->keys[i].txt);
	free(r->keys);
	r->keys = NULL;
	r->nkeys = 0;
	while (r->nchain > 0)
		free((void *)r->chain[--r->nchain].der);
}
