/*
 * bench_dkim.c — DKIM signing micro-benchmark, and a signing CLI for tests.
 *
 *   bench_dkim                      signatures per second: Ed25519 and RSA-2048,
 *                                   4 KiB and 100 KiB messages, ~2 s per case;
 *                                   keys are generated at run time in a
 *                                   temporary directory and removed after
 *   bench_dkim --sign [--policy FILE] DOMAIN:SELECTOR:KEYFILE... < MSG
 *                                   print the DKIM-Signature field(s) and then
 *                                   the message; exit 0, or 2 (no key for the
 *                                   From domain), 3 (bad message), 4 (internal),
 *                                   1 (usage or key loading error)
 *   bench_dkim --txt DOMAIN:SELECTOR:KEYFILE...
 *                                   print "SELECTOR._domainkey.DOMAIN TXT-VALUE"
 *
 * The default header list is policy/dkim-headers when readable from the
 * current directory, else a built-in copy of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* By path: the build puts libopendkim's include directory, which has its own
 * dkim.h, before -Isrc. */
#include "../../src/dkim.h"
#include "log.h"
#include "util.h"

#define BENCH_SECONDS	2.0
#define BENCH_MAX_ITER	1000000

static const char builtin_policy[] =
    "From\nSender\nReply-To\nSubject\nDate\nMessage-ID\nTo\nCc\nMIME-Version\n"
    "Content-Type\nContent-Transfer-Encoding\nIn-Reply-To\nReferences\nList-Id\n"
    "List-Help\nList-Unsubscribe\nList-Subscribe\nList-Post\nList-Owner\n"
    "List-Archive\nList-Unsubscribe-Post\n";

static struct dkim_policy *
load_policy(const char *path)
{
	struct dkim_policy *pol;
	char err[512];

	if (path == NULL && access("policy/dkim-headers", R_OK) == 0)
		path = "policy/dkim-headers";
	if (path != NULL)
		pol = dkim_policy_load(path, err, sizeof(err));
	else
		pol = dkim_policy_parse("(built-in)", builtin_policy, strlen(builtin_policy),
		    err, sizeof(err));
	if (pol == NULL)
		fprintf(stderr, "bench_dkim: %s\n", err);
	return pol;
}

/* Parse "DOMAIN:SELECTOR:FILE" specs into one config_dkim per spec. */
static struct config_dkim *
parse_specs(char **spec, int n)
{
	struct config_dkim *d = xcalloc((size_t)n, sizeof(*d));
	char *a, *b;
	int i;

	for (i = 0; i < n; i++) {
		if ((a = strchr(spec[i], ':')) == NULL || (b = strchr(a + 1, ':')) == NULL) {
			fprintf(stderr, "bench_dkim: key spec must be DOMAIN:SELECTOR:FILE: %s\n",
			    spec[i]);
			exit(1);
		}
		d[i].domain = xstrndup(spec[i], (size_t)(a - spec[i]));
		d[i].keys = xcalloc(1, sizeof(*d[i].keys));
		d[i].keys[0].selector = xstrndup(a + 1, (size_t)(b - a - 1));
		d[i].keys[0].file = xstrdup(b + 1);
		d[i].nkeys = 1;
	}
	return d;
}

static struct dkim_keyset *
load_keys(struct config_dkim *d, size_t n, const struct dkim_policy *pol)
{
	struct dkim_keyset *ks;
	char err[1024];

	if ((ks = dkim_keys_load(d, n, pol, err, sizeof(err))) == NULL)
		fprintf(stderr, "bench_dkim: %s\n", err);
	return ks;
}

static uint8_t *
read_stdin(size_t *len_r)
{
	size_t cap = 65536, len = 0;
	uint8_t *buf = xmalloc(cap);
	ssize_t n;

	for (;;) {
		if (len == cap)
			buf = xrealloc(buf, cap *= 2);
		n = read(0, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("bench_dkim: read");
			exit(1);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*len_r = len;
	return buf;
}

static int
cmd_sign(int argc, char **argv)
{
	struct dkim_policy *pol;
	struct dkim_keyset *ks;
	struct config_dkim *d;
	const char *polpath = NULL;
	enum dkim_result r;
	char *hdrs;
	uint8_t *msg;
	size_t len;
	int i = 0;

	if (argc >= 2 && strcmp(argv[0], "--policy") == 0) {
		polpath = argv[1];
		i = 2;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: bench_dkim --sign [--policy FILE] DOMAIN:SELECTOR:FILE...\n");
		return 1;
	}
	if ((pol = load_policy(polpath)) == NULL)
		return 1;
	d = parse_specs(argv + i, argc - i);
	if ((ks = load_keys(d, (size_t)(argc - i), pol)) == NULL)
		return 1;
	msg = read_stdin(&len);
	r = dkim_sign_message(ks, msg, len, &hdrs);
	if (r != DKIM_RES_OK) {
		fprintf(stderr, "bench_dkim: %s\n", dkim_result_name(r));
		return r == DKIM_RES_NOKEY ? 2 : r == DKIM_RES_BADMSG ? 3 : 4;
	}
	fputs(hdrs, stdout);
	fwrite(msg, 1, len, stdout);
	free(hdrs);
	free(msg);
	dkim_keyset_free(&ks);
	dkim_policy_free(&pol);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int
cmd_txt(int argc, char **argv)
{
	struct dkim_policy *pol;
	struct dkim_keyset *ks;
	struct dkim_keyinfo ki;
	size_t i;

	if (argc < 1 || (pol = load_policy(NULL)) == NULL)
		return 1;
	if ((ks = load_keys(parse_specs(argv, argc), (size_t)argc, pol)) == NULL)
		return 1;
	for (i = 0; dkim_keyset_info(ks, i, &ki) == 0; i++)
		printf("%s._domainkey.%s %s\n", ki.selector, ki.domain, ki.dns_txt);
	dkim_keyset_free(&ks);
	dkim_policy_free(&pol);
	return 0;
}

/* ---- benchmark ---- */

static char tmpdir[64];

static void
cleanup(void)
{
	char path[128];

	if (tmpdir[0] == '\0')
		return;
	snprintf(path, sizeof(path), "%s/ed25519.pem", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/rsa2048.pem", tmpdir);
	unlink(path);
	rmdir(tmpdir);
}

/* Generate a key with GnuTLS and write it (PKCS#8 PEM, mode 0600). */
static void
gen_key(const char *name, gnutls_pk_algorithm_t alg, unsigned int bits)
{
	gnutls_x509_privkey_t k;
	gnutls_datum_t out;
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if (gnutls_x509_privkey_init(&k) < 0 || gnutls_x509_privkey_generate(k, alg, bits, 0) < 0 ||
	    gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
	    &out) < 0)
		fatal("cannot generate %s", name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, out.data, out.size) != (ssize_t)out.size || close(fd) < 0)
		fatal("cannot write %s", path);
	gnutls_free(out.data);
	gnutls_x509_privkey_deinit(k);
}

static uint8_t *
make_message(const char *domain, size_t size, size_t *len_r)
{
	char *hdr = xasprintf("From: Bench <bench@%s>\r\nTo: someone@example.net\r\n"
	    "Subject: benchmark\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Message-ID: <bench@%s>\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n", domain, domain);
	size_t h = strlen(hdr), off;
	uint8_t *m = xmalloc(size + 80);

	memcpy(m, hdr, h);
	for (off = h; off < size; off += 78) {
		memset(m + off, 'a' + (int)(off % 26), 76);
		memcpy(m + off + 76, "\r\n", 2);
	}
	free(hdr);
	*len_r = off;
	return m;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
bench_case(struct dkim_keyset *ks, const char *label, const char *domain, size_t size)
{
	size_t len, iter = 0;
	uint8_t *msg = make_message(domain, size, &len);
	double t0 = now(), t = 0;
	char *hdrs;

	while (iter < BENCH_MAX_ITER && (t = now() - t0) < BENCH_SECONDS) {
		if (dkim_sign_message(ks, msg, len, &hdrs) != DKIM_RES_OK) {
			fprintf(stderr, "bench_dkim: %s: signing failed\n", label);
			free(msg);
			return -1;
		}
		free(hdrs);
		iter++;
	}
	printf("dkim sign %-8s %3zu KiB: %8.1f signatures/s (%zu in %.2f s)\n", label,
	    size / 1024, (double)iter / t, iter, t);
	free(msg);
	return 0;
}

static int
cmd_bench(void)
{
	struct dkim_policy *pol;
	struct dkim_keyset *ks;
	struct config_dkim d[2];
	struct config_dkim_key k[2];
	char ed[128], rsa[128];
	int rc = 0;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bench_dkim.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		fatal("mkdtemp: %s", strerror(errno));
	atexit(cleanup);
	gen_key("ed25519.pem", GNUTLS_PK_EDDSA_ED25519,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519));
	gen_key("rsa2048.pem", GNUTLS_PK_RSA, 2048);
	snprintf(ed, sizeof(ed), "%s/ed25519.pem", tmpdir);
	snprintf(rsa, sizeof(rsa), "%s/rsa2048.pem", tmpdir);
	k[0].selector = "ed";
	k[0].file = ed;
	k[1].selector = "rsa";
	k[1].file = rsa;
	memset(d, 0, sizeof(d));
	d[0].domain = "ed25519.bench.test";
	d[0].keys = &k[0];
	d[0].nkeys = 1;
	d[1].domain = "rsa.bench.test";
	d[1].keys = &k[1];
	d[1].nkeys = 1;
	if ((pol = load_policy(NULL)) == NULL || (ks = load_keys(d, 2, pol)) == NULL)
		return 1;
	if (bench_case(ks, "ed25519", "ed25519.bench.test", 4 * 1024) < 0 ||
	    bench_case(ks, "ed25519", "ed25519.bench.test", 100 * 1024) < 0 ||
	    bench_case(ks, "rsa-2048", "rsa.bench.test", 4 * 1024) < 0 ||
	    bench_case(ks, "rsa-2048", "rsa.bench.test", 100 * 1024) < 0)
		rc = 1;
	dkim_keyset_free(&ks);
	dkim_policy_free(&pol);
	return rc;
}

int
main(int argc, char **argv)
{
	log_init("bench_dkim", LOG_LVL_WARN);
	if (argc >= 2 && strcmp(argv[1], "--sign") == 0)
		return cmd_sign(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "--txt") == 0)
		return cmd_txt(argc - 2, argv + 2);
	if (argc > 1) {
		fprintf(stderr, "usage: bench_dkim [--sign [--policy FILE] DOMAIN:SELECTOR:FILE... "
		    "< MSG | --txt DOMAIN:SELECTOR:FILE...]\n");
		return 1;
	}
	return cmd_bench();
}
