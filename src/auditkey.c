/* auditkey.c — the audit log's signing key, public key and pseudonym key. */
#include "auditkey.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <sodium.h>

#define KEYFILE_MAX	(64 * 1024)

/* Read a file into sodium_malloc() memory (NUL-terminated).  secret: it
 * must be a regular file only its owner can access. */
static uint8_t *
read_file(const char *path, const char *what, int secret, size_t *len_r, char *err,
    size_t errlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t off = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s is not a regular file", what, path);
		goto fail;
	}
	if (secret && (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s %s has mode %04o: group or others may access it; run "
		    "chmod 600 %s", what, path, (unsigned)(st.st_mode & 07777), path);
		goto fail;
	}
	if (st.st_size <= 0 || st.st_size > KEYFILE_MAX) {
		snprintf(err, errlen, "%s %s: size %lld is not in 1..%d octets", what, path,
		    (long long)st.st_size, KEYFILE_MAX);
		goto fail;
	}
	if ((buf = sodium_malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s %s: out of guarded memory", what, path);
		goto fail;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s %s: %s", what, path,
			    n < 0 ? strerror(errno) : "the file shrank while reading");
			sodium_free(buf);
			buf = NULL;
			goto fail;
		}
		off += (size_t)n;
	}
	buf[off] = '\0';
	*len_r = off;
fail:
	close(fd);
	return buf;
}

int
alog_key_load(const char *path, struct alog_key *k, char *err, size_t errlen)
{
	gnutls_x509_privkey_t x = NULL;
	gnutls_datum_t in, px = { NULL, 0 }, py = { NULL, 0 }, seed = { NULL, 0 };
	gnutls_ecc_curve_t curve;
	uint8_t pk[ALOG_PK_LEN], *raw;
	size_t len = 0;
	int rc = -1;

	memset(k, 0, sizeof(*k));
	if ((raw = read_file(path, "audit signing-key", 1, &len, err, errlen)) == NULL)
		return -1;
	in.data = raw;
	in.size = (unsigned int)len;
	if (gnutls_x509_privkey_init(&x) < 0 ||
	    gnutls_x509_privkey_import2(x, &in, GNUTLS_X509_FMT_PEM, NULL, 0) < 0) {
		snprintf(err, errlen, "audit signing-key %s is not a PEM private key (make one with "
		    "certtool --generate-privkey --key-type ed25519 --outfile %s)", path, path);
		goto out;
	}
	if (gnutls_x509_privkey_get_pk_algorithm(x) != GNUTLS_PK_EDDSA_ED25519 ||
	    gnutls_x509_privkey_export_ecc_raw(x, &curve, &px, &py, &seed) < 0 ||
	    curve != GNUTLS_ECC_CURVE_ED25519 || seed.size != crypto_sign_SEEDBYTES ||
	    px.size != ALOG_PK_LEN) {
		snprintf(err, errlen, "audit signing-key %s is not an Ed25519 key (make one with "
		    "certtool --generate-privkey --key-type ed25519)", path);
		goto out;
	}
	if ((k->sk = sodium_malloc(ALOG_SK_LEN)) == NULL) {
		snprintf(err, errlen, "audit signing-key %s: out of guarded memory", path);
		goto out;
	}
	crypto_sign_seed_keypair(pk, k->sk, seed.data);
	if (memcmp(pk, px.data, ALOG_PK_LEN) != 0) {
		snprintf(err, errlen, "audit signing-key %s: its public half does not match its "
		    "private key", path);
		goto out;
	}
	memcpy(k->pk, pk, ALOG_PK_LEN);
	sodium_mprotect_readonly(k->sk);
	rc = 0;
out:
	if (seed.data != NULL) {
		sodium_memzero(seed.data, seed.size);
		gnutls_free(seed.data);
	}
	gnutls_free(px.data);
	gnutls_free(py.data);
	gnutls_x509_privkey_deinit(x);	/* GnuTLS wipes its key material */
	sodium_free(raw);		/* wipes */
	if (rc < 0)
		alog_key_clear(k);
	return rc;
}

void
alog_key_clear(struct alog_key *k)
{
	if (k->sk != NULL)
		sodium_free(k->sk);
	memset(k, 0, sizeof(*k));
}

int
alog_pubkey_read(const char *path, uint8_t pk[ALOG_PK_LEN], char *err, size_t errlen)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t in, x = { NULL, 0 };
	gnutls_ecc_curve_t curve;
	uint8_t *raw;
	size_t len = 0, n;
	int rc = -1;

	if ((raw = read_file(path, "public key", 0, &len, err, errlen)) == NULL)
		return -1;
	if (strstr((char *)raw, "-----BEGIN PUBLIC KEY-----") == NULL) {
		/* one line of base64: the "key" of the log's records */
		for (n = len; n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r' ||
		    raw[n - 1] == ' '); n--)
			raw[n - 1] = '\0';
		if (alog_key_unb64((char *)raw, pk) == 0)
			rc = 0;
		else
			snprintf(err, errlen, "public key %s is neither a PEM public key nor the "
			    "base64 of an Ed25519 key", path);
		sodium_free(raw);
		return rc;
	}
	in.data = raw;
	in.size = (unsigned int)len;
	if (gnutls_pubkey_init(&pub) < 0 ||
	    gnutls_pubkey_import(pub, &in, GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, NULL, 0) < 0 ||
	    curve != GNUTLS_ECC_CURVE_ED25519 || x.size != ALOG_PK_LEN)
		snprintf(err, errlen, "public key %s is not an Ed25519 public key", path);
	else {
		memcpy(pk, x.data, ALOG_PK_LEN);
		rc = 0;
	}
	gnutls_free(x.data);
	gnutls_pubkey_deinit(pub);
	sodium_free(raw);
	return rc;
}

char *
alog_pubkey_pem(const uint8_t pk[ALOG_PK_LEN])
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t x = { (unsigned char *)(uintptr_t)pk, ALOG_PK_LEN }, out = { NULL, 0 };
	char *pem = NULL;

	if (gnutls_pubkey_init(&pub) >= 0 &&
	    gnutls_pubkey_import_ecc_raw(pub, GNUTLS_ECC_CURVE_ED25519, &x, NULL) >= 0 &&
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_PEM, &out) >= 0)
		pem = xstrndup((const char *)out.data, out.size);
	gnutls_free(out.data);
	gnutls_pubkey_deinit(pub);
	return pem;
}

uint8_t *
alog_pseudo_key_load(const char *path, char *err, size_t errlen)
{
	uint8_t *raw, *key;
	size_t len = 0;

	if ((raw = read_file(path, "audit pseudonymize-key", 1, &len, err, errlen)) == NULL)
		return NULL;
	if (len < ALOG_PSEUDO_KEY_LEN) {
		snprintf(err, errlen, "audit pseudonymize-key %s holds %zu octets; it needs at least "
		    "%d of secret random data (head -c 32 /dev/urandom > %s)", path, len,
		    ALOG_PSEUDO_KEY_LEN, path);
		sodium_free(raw);
		return NULL;
	}
	if ((key = sodium_malloc(ALOG_PSEUDO_KEY_LEN)) == NULL) {
		snprintf(err, errlen, "audit pseudonymize-key %s: out of guarded memory", path);
		sodium_free(raw);
		return NULL;
	}
	crypto_generichash(key, ALOG_PSEUDO_KEY_LEN, raw, len, NULL, 0);
	sodium_free(raw);
	sodium_mprotect_readonly(key);
	return key;
}
