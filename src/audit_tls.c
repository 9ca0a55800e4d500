/*
 * audit_tls.c — the self-audit's TLS checks: certificate chain, key match,
 * dates, names, key strength, and what the priority string lets a client
 * negotiate (enumerated with GnuTLS, not guessed from the string).
 */
#include "audit_int.h"

#include "config.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>


#define PEM_FILE_MAX (1024 * 1024)

static const char *const refs_cert[] = { "RFC8314-7.1", NULL };
static const char *const refs_key_match[] = { "RFC8446-4.4.2", NULL };
static const char *const refs_chain[] = { "RFC8446-4.4.2", "RFC5280-6", NULL };
static const char *const refs_expiry[] = { "RFC5280-4.1.2.5", NULL };
static const char *const refs_name[] = { "RFC6125-6.4", "RFC8314-7.1", NULL };
static const char *const refs_strength[] = { "RFC9325-4.5", NULL };
static const char *const refs_priority[] = { "RFC8996", "RFC9325-4.2", "RFC8446-2.3", NULL };

/* Read a whole small file; NULL with err set.  *len_r gets the length. */
static uint8_t *
read_file(const char *path, size_t *len_r, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > PEM_FILE_MAX) {
		snprintf(err, errlen, "%s is not a regular file of at most %d bytes", path,
		    PEM_FILE_MAX);
		close(fd);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != (size_t)st.st_size) {
		snprintf(err, errlen, "cannot read %s", path);
		explicit_bzero(buf, (size_t)st.st_size);
		free(buf);
		return NULL;
	}
	buf[got] = '\0';
	*len_r = got;
	return buf;
}

void
audit_tls_read_chain(struct audit_run *r)
{
	gnutls_x509_crt_t *crts = NULL;
	gnutls_datum_t d;
	unsigned int n = 0, i;
	uint8_t *pem;
	size_t len;
	int rc;

	tls_init();
	pem = read_file(r->cfg->tls_certificate, &len, r->chain_err, sizeof(r->chain_err));
	if (pem == NULL)
		return;
	d.data = pem;
	d.size = (unsigned int)len;
	rc = gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0);
	free(pem);
	if (rc < 0 || n == 0) {
		snprintf(r->chain_err, sizeof(r->chain_err), "%s holds no PEM certificate (%s)",
		    r->cfg->tls_certificate, rc < 0 ? gnutls_strerror(rc) : "empty");
		return;
	}
	if (n > TLS_CHAIN_MAX)
		snprintf(r->chain_err, sizeof(r->chain_err), "%s holds %u certificates; subproxy "
		    "serves at most %d (leaf first, then the intermediates)",
		    r->cfg->tls_certificate, n, TLS_CHAIN_MAX);
	for (i = 0; i < n; i++) {
		gnutls_datum_t der = { NULL, 0 };

		if (n <= TLS_CHAIN_MAX && r->chain_err[0] == '\0') {
			if (gnutls_x509_crt_export2(crts[i], GNUTLS_X509_FMT_DER, &der) < 0) {
				snprintf(r->chain_err, sizeof(r->chain_err), "cannot export "
				    "certificate %u of %s", i + 1, r->cfg->tls_certificate);
			} else {
				uint8_t *copy = xmalloc(der.size);

				memcpy(copy, der.data, der.size);
				r->chain[r->nchain].der = copy;
				r->chain[r->nchain].len = der.size;
				r->nchain++;
				gnutls_free(der.data);
			}
		}
		gnutls_x509_crt_deinit(crts[i]);
	}
	gnutls_free(crts);
	if (r->chain_err[0] != '\0') {
		while (r->nchain > 0)
			free((void *)r->chain[--r->nchain].der);
	}
}

static gnutls_x509_crt_t
crt_of(const struct dane_cert *c)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)c->der, (unsigned int)c->len };

	if (gnutls_x509_crt_init(&crt) < 0)
		fatal("gnutls: out of memory");
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(crt);
		return NULL;
	}
	return crt;
}

/* The chain as GnuTLS objects; NULL entries for any that do not import. */
static size_t
chain_crts(const struct audit_run *r, gnutls_x509_crt_t *out)
{
	size_t i;

	for (i = 0; i < r->nchain; i++)
		out[i] = crt_of(&r->chain[i]);
	return r->nchain;
}

static void
chain_free(gnutls_x509_crt_t *crts, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (crts[i] != NULL)
			gnutls_x509_crt_deinit(crts[i]);
}

static int
issued_by(gnutls_x509_crt_t child, gnutls_x509_crt_t parent)
{
	unsigned int status = 0;

	if (child == NULL || parent == NULL || !gnutls_x509_crt_check_issuer(child, parent))
		return 0;
	if (gnutls_x509_crt_verify(child, &parent, 1, GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
	    GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS | GNUTLS_VERIFY_ALLOW_UNSORTED_CHAIN,
	    &status) < 0)
		return 0;
	return status == 0;
}

int
audit_tls_has_issuer(const struct audit_run *r)
{
	gnutls_x509_crt_t crts[TLS_CHAIN_MAX];
	int ok;

	if (r->nchain < 2)
		return 0;
	chain_crts(r, crts);
	ok = issued_by(crts[0], crts[1]);
	chain_free(crts, r->nchain);
	return ok;
}

static void
fmt_date(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		snprintf(out, outlen, "(bad date)");
	else
		snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d UTC", tm.tm_year + 1900,
		    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
}

/* ---- key match ---- */

static int
spki_of_crt(gnutls_x509_crt_t crt, gnutls_datum_t *out)
{
	gnutls_pubkey_t pk;
	int rc;

	if (gnutls_pubkey_init(&pk) < 0)
		return -1;
	rc = gnutls_pubkey_import_x509(pk, crt, 0);
	if (rc >= 0)
		rc = gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, out);
	gnutls_pubkey_deinit(pk);
	return rc < 0 ? -1 : 0;
}

static void
check_key_match(struct audit_run *r, gnutls_x509_crt_t leaf)
{
	const char *kf = r->cfg->tls_key;
	gnutls_privkey_t priv = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t d, kspki = { NULL, 0 }, cspki = { NULL, 0 };
	char err[600], fix[600];
	uint8_t *pem;
	size_t len = 0;
	int rc;

	snprintf(fix, sizeof(fix), "point [tls] key at the unencrypted PEM private key of the "
	    "first certificate in %s", r->cfg->tls_certificate);
	if ((pem = read_file(kf, &len, err, sizeof(err))) == NULL) {
		audit_add(r, "tls.key.match", AUDIT_FAIL, refs_key_match, fix, "%s", err);
		return;
	}
	d.data = pem;
	d.size = (unsigned int)len;
	if (gnutls_privkey_init(&priv) < 0)
		fatal("gnutls: out of memory");
	rc = gnutls_privkey_import_x509_raw(priv, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
	explicit_bzero(pem, len);
	free(pem);
	if (rc < 0) {
		audit_add(r, "tls.key.match", AUDIT_FAIL, refs_key_match, fix, "%s is not a usable "
		    "unencrypted PEM private key (%s)", kf, gnutls_strerror(rc));
		goto out;
	}
	if (gnutls_pubkey_init(&pub) < 0)
		fatal("gnutls: out of memory");
	if (gnutls_pubkey_import_privkey(pub, priv, 0, 0) < 0 ||
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &kspki) < 0 ||
	    leaf == NULL || spki_of_crt(leaf, &cspki) < 0) {
		audit_add(r, "tls.key.match", AUDIT_FAIL, refs_key_match, fix, "cannot compare the "
		    "public keys of %s and %s", kf, r->cfg->tls_certificate);
		goto out;
	}
	if (kspki.size != cspki.size || memcmp(kspki.data, cspki.data, kspki.size) != 0)
		audit_add(r, "tls.key.match", AUDIT_FAIL, refs_key_match, fix, "the key in %s "
		    "does not belong to the first certificate of %s", kf, r->cfg->tls_certificate);
	else
		audit_add(r, "tls.key.match", AUDIT_PASS, refs_key_match, NULL, "the key in %s "
		    "belongs to the first certificate of %s", kf, r->cfg->tls_certificate);
out:
	gnutls_free(kspki.data);
	gnutls_free(cspki.data);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(priv);
}

/* ---- chain ---- */

static void
check_chain(struct audit_run *r, gnutls_x509_crt_t *crts, size_t n)
{
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_x509_crt_t last = crts[n - 1], issuer = NULL;
	size_t i;
	int found = 0;

	for (i = 0; i + 1 < n; i++)
		if (!issued_by(crts[i], crts[i + 1])) {
			audit_add(r, "tls.chain.complete", AUDIT_FAIL, refs_chain, "put the "
			    "certificates in order: the leaf first, then each certificate's issuer",
			    "certificate %zu of %s is not issued (signed) by certificate %zu",
			    i + 1, r->cfg->tls_certificate, i + 2);
			return;
		}
	if (issued_by(last, last)) {
		if (n == 1)
			audit_add(r, "tls.chain.complete", AUDIT_WARN, refs_chain, "use a "
			    "certificate from a CA your mail clients trust, or make sure every "
			    "client checks it by DANE", "%s is a single self-signed certificate: "
			    "only clients that pin it or check DANE-EE can verify it",
			    r->cfg->tls_certificate);
		else
			audit_add(r, "tls.chain.complete", AUDIT_PASS, refs_chain, NULL, "%zu "
			    "certificates in order, ending in a self-signed root", n);
		return;
	}
	if (gnutls_x509_trust_list_init(&tl, 0) == 0) {
		if (gnutls_x509_trust_list_add_system_trust(tl, 0, 0) > 0 &&
		    gnutls_x509_trust_list_get_issuer(tl, last, &issuer, GNUTLS_TL_GET_COPY) == 0) {
			found = 1;
			gnutls_x509_crt_deinit(issuer);
		}
		gnutls_x509_trust_list_deinit(tl, 1);
	}
	if (found)
		audit_add(r, "tls.chain.complete", AUDIT_PASS, refs_chain, NULL, "%zu "
		    "certificate(s) in order; the last one's issuer is a system trust anchor", n);
	else
		audit_add(r, "tls.chain.complete", AUDIT_WARN, refs_chain, "append the missing "
		    "intermediate certificate(s) to the file, in order", "the issuer of the last "
		    "certificate in %s is neither in the file nor a system trust anchor: clients "
		    "that do not check DANE may not build a path", r->cfg->tls_certificate);
}

/* ---- dates, names, strength ---- */

static void
check_expiry(struct audit_run *r, gnutls_x509_crt_t *crts, size_t n)
{
	time_t soonest = 0, warn = r->now + (time_t)r->prof->cert_expiry_warn_days * 86400;
	char date[40];
	size_t i, which = 0;

	for (i = 0; i < n; i++) {
		time_t nb, na;

		if (crts[i] == NULL)
			continue;
		nb = gnutls_x509_crt_get_activation_time(crts[i]);
		na = gnutls_x509_crt_get_expiration_time(crts[i]);
		if (nb != (time_t)-1 && nb > r->now) {
			fmt_date(nb, date, sizeof(date));
			audit_add(r, "tls.cert.expiry", AUDIT_FAIL, refs_expiry, "check the clock, "
			    "or wait until the certificate is valid", "certificate %zu of %s is not "
			    "valid before %s", i + 1, r->cfg->tls_certificate, date);
			return;
		}
		if (na != (time_t)-1 && (soonest == 0 || na < soonest)) {
			soonest = na;
			which = i;
		}
	}
	if (soonest == 0) {
		audit_add(r, "tls.cert.expiry", AUDIT_FAIL, refs_expiry, "use a certificate with "
		    "a readable validity period", "cannot read the validity of %s",
		    r->cfg->tls_certificate);
		return;
	}
	fmt_date(soonest, date, sizeof(date));
	if (soonest <= r->now)
		audit_add(r, "tls.cert.expiry", AUDIT_FAIL, refs_expiry, "renew the certificate "
		    "(and publish the new TLSA record before switching)", "certificate %zu of "
		    "%s expired on %s", which + 1, r->cfg->tls_certificate, date);
	else if (soonest <= warn)
		audit_add(r, "tls.cert.expiry", AUDIT_WARN, refs_expiry, "renew the certificate "
		    "soon (and publish the new TLSA record first)", "certificate %zu of %s "
		    "expires on %s, in %lld day(s)", which + 1, r->cfg->tls_certificate, date,
		    (long long)((soonest - r->now) / 86400));
	else
		audit_add(r, "tls.cert.expiry", AUDIT_PASS, refs_expiry, NULL, "the chain is "
		    "valid until %s (%lld days)", date, (long long)((soonest - r->now) / 86400));
}

static void
check_name(struct audit_run *r, gnutls_x509_crt_t leaf)
{
	char names[400] = "", name[256], fix[400];
	size_t len, used = 0;
	unsigned int i, type, nnames = 0;
	int rc;

	snprintf(fix, sizeof(fix), "get a certificate whose subjectAltName lists %s",
	    r->cfg->hostname);
	for (i = 0;; i++) {
		len = sizeof(name) - 1;
		rc = gnutls_x509_crt_get_subject_alt_name2(leaf, i, name, &len, &type, NULL);
		if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE || i > 100)
			break;
		if (rc < 0 || type != GNUTLS_SAN_DNSNAME)
			continue;
		name[len < sizeof(name) ? len : sizeof(name) - 1] = '\0';
		nnames++;
		if (used < sizeof(names) - 1) {
			int k = snprintf(names + used, sizeof(names) - used, "%s%s", used ? ", " :
			    "", name);
			used = k < 0 ? used : used + (size_t)k;
		}
	}
	if (nnames == 0)
		audit_add(r, "tls.cert.name", AUDIT_FAIL, refs_name, fix, "the certificate has "
		    "no DNS name in subjectAltName (clients do not use the CN)");
	else if (!gnutls_x509_crt_check_hostname2(leaf, r->cfg->hostname, 0))
		audit_add(r, "tls.cert.name", AUDIT_FAIL, refs_name, fix, "the certificate does "
		    "not name %s (subjectAltName: %s)", r->cfg->hostname, names);
	else
		audit_add(r, "tls.cert.name", AUDIT_PASS, refs_name, NULL, "the certificate "
		    "names %s", r->cfg->hostname);
}

static const char *
pk_type(int pk)
{
	switch (pk) {
	case GNUTLS_PK_RSA:
	case GNUTLS_PK_RSA_PSS:
		return "rsa";
	case GNUTLS_PK_ECDSA:
		return "ec";
	case GNUTLS_PK_EDDSA_ED25519:
		return "ed25519";
	case GNUTLS_PK_EDDSA_ED448:
		return "ed448";
	default:
		return NULL;
	}
}

static void
check_strength(struct audit_run *r, gnutls_x509_crt_t leaf)
{
	const struct audit_profile *p = r->prof;
	unsigned int bits = 0;
	const char *t = pk_type(gnutls_x509_crt_get_pk_algorithm(leaf, &bits));
	char allowed[200] = "";
	size_t i, used = 0;

	for (i = 0; i < p->ntls_keys; i++) {
		int k = snprintf(allowed + used, sizeof(allowed) - used, "%s%s", i ? ", " : "",
		    p->tls_keys[i].type);

		used = k < 0 || (size_t)k >= sizeof(allowed) - used ? used : used + (size_t)k;
		if (p->tls_keys[i].min_bits && (size_t)k < sizeof(allowed) - used) {
			k = snprintf(allowed + used, sizeof(allowed) - used, " >= %u bits",
			    p->tls_keys[i].min_bits);
			used = k < 0 ? used : used + (size_t)k;
		}
	}
	for (i = 0; t != NULL && i < p->ntls_keys; i++)
		if (strcmp(p->tls_keys[i].type, t) == 0)
			break;
	if (t == NULL || (p->ntls_keys > 0 && i == p->ntls_keys))
		audit_add(r, "tls.key.strength", AUDIT_FAIL, refs_strength, "use a key of an "
		    "allowed type", "the certificate's key type (%s) is not allowed by profile %s "
		    "(allowed: %s)", t ? t : "unknown", p->name, allowed);
	else if (p->ntls_keys > 0 && bits < p->tls_keys[i].min_bits)
		audit_add(r, "tls.key.strength", AUDIT_FAIL, refs_strength, "make a new key of at "
		    "least the required size, get a certificate for it and publish its TLSA "
		    "record", "the certificate's %s key has %u bits; profile %s requires at least "
		    "%u", t, bits, p->name, p->tls_keys[i].min_bits);
	else
		audit_add(r, "tls.key.strength", AUDIT_PASS, refs_strength, NULL, "%s key of %u "
		    "bits", t, bits);
}

/* ---- priority ---- */

static int
listed(const struct audit_list *l, const char *name)
{
	size_t i;

	if (l->n == 0)
		return 1;
	for (i = 0; name != NULL && i < l->n; i++)
		if (ascii_casecmp(l->v[i], name) == 0)
			return 1;
	return 0;
}

/* Append "name" to a space-separated list once. */
static void
note(char *buf, size_t buflen, const char *name)
{
	size_t len = strlen(buf), nl = strlen(name);
	const char *s;

	for (s = strstr(buf, name); s != NULL; s = strstr(s + 1, name))
		if ((s == buf || s[-1] == ' ') && (s[nl] == ' ' || s[nl] == '\0'))
			return;
	if (len + nl + 2 < buflen)
		snprintf(buf + len, buflen - len, "%s%s", len ? " " : "", name);
}

static void
check_priority(struct audit_run *r)
{
	const struct audit_profile *p = r->prof;
	gnutls_priority_t prio;
	const unsigned int *l;
	const char *pos = NULL;
	char *s = xasprintf("%s%s", r->cfg->tls_priority, TLS_PRIORITY_FLOOR);
	char vers[100] = "", ciph[300] = "", kx[200] = "", grp[300] = "";
	char bad[400] = "", fix[600] = "";
	int n, i, rc;

	rc = gnutls_priority_init(&prio, s, &pos);
	free(s);
	if (rc < 0) {
		audit_add(r, "tls.priority", AUDIT_FAIL, refs_priority, "correct [tls] priority "
		    "(GnuTLS priority string syntax, gnutls-cli --priority X -l lists the result)",
		    "the [tls] priority string is invalid near \"%.40s\": %s", pos ? pos : "",
		    gnutls_strerror(rc));
		return;
	}
	n = gnutls_priority_protocol_list(prio, &l);
	for (i = 0; i < n; i++) {
		const char *name = gnutls_protocol_get_name(l[i]);

		note(vers, sizeof(vers), name ? name : "?");
		if (!listed(&p->tls_versions, name)) {
			note(bad, sizeof(bad), name ? name : "?");
			if (name != NULL) {
				char tok[40];

				snprintf(tok, sizeof(tok), ":-VERS-%s", name);
				note(fix, sizeof(fix), tok);
			}
		}
	}
	/* every cipher suite it allows: its cipher, and for TLS 1.2 its key exchange */
	for (i = 0;; i++) {
		gnutls_kx_algorithm_t k;
		gnutls_cipher_algorithm_t c;
		gnutls_mac_algorithm_t m;
		gnutls_protocol_t v;
		unsigned int sidx;
		const char *cn, *kn;
		char tok[60];

		rc = gnutls_priority_get_cipher_suite_index(prio, (unsigned int)i, &sidx);
		if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE || i > 1000)
			break;
		if (rc < 0 || gnutls_cipher_suite_info(sidx, NULL, &k, &c, &m, &v) == NULL)
			continue;
		cn = gnutls_cipher_get_name(c);
		note(ciph, sizeof(ciph), cn ? cn : "?");
		if (!listed(&p->tls_ciphers, cn)) {
			note(bad, sizeof(bad), cn ? cn : "?");
			snprintf(tok, sizeof(tok), ":-%s", cn ? cn : "?");
			note(fix, sizeof(fix), tok);
		}
		if (k == GNUTLS_KX_UNKNOWN)
			continue;       /* TLS 1.3 suites: key exchange by the groups */
		kn = gnutls_kx_get_name(k);
		note(kx, sizeof(kx), kn ? kn : "?");
		if (!listed(&p->tls_kx, kn)) {
			note(bad, sizeof(bad), kn ? kn : "?");
			snprintf(tok, sizeof(tok), ":-%s", kn ? kn : "?");
			note(fix, sizeof(fix), tok);
		}
	}
	n = gnutls_priority_group_list(prio, &l);
	for (i = 0; i < n; i++) {
		const char *gn = gnutls_group_get_name(l[i]);
		char tok[60];

		note(grp, sizeof(grp), gn ? gn : "?");
		if (!listed(&p->tls_groups, gn)) {
			note(bad, sizeof(bad), gn ? gn : "?");
			snprintf(tok, sizeof(tok), ":-GROUP-%s", gn ? gn : "?");
			note(fix, sizeof(fix), tok);
		}
	}
	gnutls_priority_deinit(prio);
	if (vers[0] == '\0' || ciph[0] == '\0') {
		audit_add(r, "tls.priority", AUDIT_FAIL, refs_priority, "allow TLS1.2 or TLS1.3 "
		    "with AEAD ciphers in [tls] priority", "the [tls] priority string leaves no "
		    "usable protocol version or cipher suite");
		return;
	}
	if (bad[0] != '\0') {
		char *rem;
		size_t a, b;

		/* the tokens were noted space-separated: join them */
		for (a = b = 0; fix[a] != '\0'; a++)
			if (fix[a] != ' ')
				fix[b++] = fix[a];
		fix[b] = '\0';
		rem = xasprintf("append \"%s\" to [tls] priority, or choose a stricter base", fix);
		audit_add(r, "tls.priority", AUDIT_FAIL, refs_priority, rem, "[tls] priority "
		    "lets clients negotiate %s, which profile %s does not allow", bad, p->name);
		free(rem);
		return;
	}
	/* 0-RTT: tls.c never passes GNUTLS_ENABLE_EARLY_DATA to gnutls_init() and
	 * sets no session ticket key, so no client can send early data */
	audit_add(r, "tls.priority", AUDIT_PASS, refs_priority, NULL, "versions %s; ciphers %s;"
	    " TLS 1.2 key exchange %s; groups %s; no 0-RTT (early data is never enabled)",
	    vers, ciph, kx[0] ? kx : "(none)", grp);
}

void
audit_tls_checks(struct audit_run *r)
{
	gnutls_x509_crt_t crts[TLS_CHAIN_MAX];
	size_t n, i;
	static const char *const skipped[] = { "tls.key.match", "tls.chain.complete",
		"tls.cert.expiry", "tls.cert.name", "tls.key.strength", NULL };

	audit_tls_read_chain(r);
	if (r->nchain == 0) {
		audit_add(r, "tls.cert.present", AUDIT_FAIL, refs_cert, "point [tls] certificate "
		    "at a PEM file with the certificate first, then its intermediates", "%s",
		    r->chain_err);
		for (i = 0; skipped[i] != NULL; i++)
			audit_add(r, skipped[i], AUDIT_FAIL, NULL, "see tls.cert.present", "not "
			    "checked: the certificate could not be read");
		check_priority(r);
		return;
	}
	n = chain_crts(r, crts);
	for (i = 0; i < n; i++)
		if (crts[i] == NULL)
			break;
	if (i < n) {
		audit_add(r, "tls.cert.present", AUDIT_FAIL, refs_cert, "replace the damaged "
		    "certificate", "certificate %zu of %s cannot be parsed", i + 1,
		    r->cfg->tls_certificate);
		for (i = 0; skipped[i] != NULL; i++)
			audit_add(r, skipped[i], AUDIT_FAIL, NULL, "see tls.cert.present", "not "
			    "checked: the certificate could not be read");
	} else {
		audit_add(r, "tls.cert.present", AUDIT_PASS, refs_cert, NULL, "%s holds %zu "
		    "certificate(s), the leaf first", r->cfg->tls_certificate, n);
		check_key_match(r, crts[0]);
		check_chain(r, crts, n);
		check_expiry(r, crts, n);
		check_name(r, crts[0]);
		check_strength(r, crts[0]);
	}
	chain_free(crts, n);
	check_priority(r);
}
