/*
 * keeper_key.c — the keeper's TLS private key: loaded and tested at
 * start-up, then used for the signatures front asks for.  Runs in the
 * keeper process: loaded by its main thread, used by its key workers, or
 * by the main thread itself when it has none (an ECDSA or EdDSA key by
 * default: its signature costs less than handing it to a thread and back).
 *
 * Each key worker has its own gnutls_privkey_t, all imported from the same
 * key text (read once into guarded memory, wiped and freed once they are
 * made) and each tested with a signature.  GnuTLS documents its objects as
 * safe to share across threads for read-only use only, says of
 * gnutls_privkey_t that since 3.5.11 one object may be used by many threads
 * (locks) but recommends one object per key per thread for performance;
 * with one each, no worker waits for another's lock and nothing depends on
 * how a given version protects the key's state (RSA blinding, ...).
 *
 * An ECDSA P-256 key also has an OpenSSL copy per key object (made from
 * GnuTLS's own DER export, wiped after; tested like the GnuTLS one): the
 * hot signature of every full handshake, ECDSA over a SHA-256 hash (TLS
 * 1.3's ecdsa_secp256r1_sha256, TLS 1.2's ECDSA-SHA256), is OpenSSL's
 * constant-time P-256 code, about 20 us on the project's machine against
 * 46 us for nettle's (doc/performance.md); every other request (other
 * hashes, the deterministic-nonce flag) is GnuTLS's as before.  The copy
 * lives in the keeper's ordinary heap as GnuTLS's does, and OpenSSL is
 * already loaded (the signer's DKIM RSA).
 */
#include "keeper_int.h"

#include "log.h"
#include "proc.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sodium.h>

#define KEY_FILE_MAX    (1024 * 1024)
#define RSA_MIN_BITS    2048
#define SIGN_FLAGS_OK   (GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA | GNUTLS_PRIVKEY_SIGN_FLAG_RSA_PSS | \
    GNUTLS_PRIVKEY_FLAG_REPRODUCIBLE | GNUTLS_PRIVKEY_FLAG_RSA_PSS_FIXED_SALT_LENGTH)

static struct {
	gnutls_privkey_t *keys;         /* one per key worker: keys[k] is worker k's alone */
	EVP_PKEY_CTX **p256;            /* ECDSA P-256: OpenSSL's copies (k's own), or NULL */
	unsigned int nkeys;
	int pk;
	unsigned int bits;
} KK;

static int
is_eddsa(int pk)
{
	return pk == GNUTLS_PK_EDDSA_ED25519 || pk == GNUTLS_PK_EDDSA_ED448;
}

/* ECDSA over the SHA-256 hash h with an OpenSSL P-256 key's signing
 * context (set up once: OpenSSL 3.0 looks the method up in a locked table
 * at every set-up): the DER signature GnuTLS would make, in gnutls_malloc()
 * memory. */
static int
p256_sign(EVP_PKEY_CTX *ctx, const uint8_t *h, size_t hlen, gnutls_datum_t *sig)
{
	unsigned char buf[128];         /* DER of two 256-bit integers: at most 72 */
	size_t n = sizeof(buf);
	int ok;

	ok = EVP_PKEY_sign(ctx, buf, &n, h, hlen) > 0;
	ERR_clear_error();
	if (!ok)
		return GNUTLS_E_PK_SIGN_FAILED;
	if ((sig->data = gnutls_malloc(n)) == NULL)
		return GNUTLS_E_MEMORY_ERROR;
	memcpy(sig->data, buf, n);
	sig->size = (unsigned int)n;
	return 0;
}

/* Make the signature front asked for with key object k, if this key can
 * make it. */
static int
tls_sign(unsigned int k, const struct keeper_tls_fields *f, gnutls_datum_t *sig)
{
	gnutls_privkey_t key = KK.keys[k];
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)f->data, (unsigned int)f->len };
	gnutls_sign_algorithm_t algo = (gnutls_sign_algorithm_t)f->algo;
	unsigned int flags = f->flags;
	int spk = gnutls_sign_get_pk_algorithm(algo);
	gnutls_digest_algorithm_t h;

	if ((flags & ~SIGN_FLAGS_OK) != 0)
		return GNUTLS_E_INVALID_REQUEST;
	if (f->op == KEEPER_OP_SIGN_DATA) {
		if (!is_eddsa(spk) || !gnutls_sign_supports_pk_algorithm(algo, KK.pk))
			return GNUTLS_E_INVALID_REQUEST;
		return gnutls_privkey_sign_data2(key, algo, flags, &d, sig);
	}
	if (algo == GNUTLS_SIGN_RSA_RAW) {
		/* a PKCS#1 v1.5 DigestInfo, signed as it is */
		if (KK.pk != GNUTLS_PK_RSA || f->len + 11 > KK.bits / 8)
			return GNUTLS_E_INVALID_REQUEST;
		return gnutls_privkey_sign_hash2(key, algo,
		    flags | GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA, &d, sig);
	}
	h = gnutls_sign_get_hash_algorithm(algo);
	if (is_eddsa(spk) || !gnutls_sign_supports_pk_algorithm(algo, KK.pk) ||
	    h == GNUTLS_DIG_UNKNOWN || gnutls_hash_get_len(h) != f->len)
		return GNUTLS_E_INVALID_REQUEST;
	if (KK.p256 != NULL && flags == 0 && (algo == GNUTLS_SIGN_ECDSA_SHA256 ||
	    algo == GNUTLS_SIGN_ECDSA_SECP256R1_SHA256))
		return p256_sign(KK.p256[k], f->data, f->len, sig);
	return gnutls_privkey_sign_hash2(key, algo, flags, &d, sig);
}


/* Read the key file (mode checked on the open file) into guarded memory. */
static int
read_key_file(const char *path, gnutls_datum_t *d, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	size_t off = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		snprintf(err, errlen, "cannot open TLS key %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "TLS key %s is not a regular file", path);
		goto fail;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "TLS key %s has mode %04o: group or others may access it; "
		    "run chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
		goto fail;
	}
	if (st.st_size <= 0 || st.st_size > KEY_FILE_MAX) {
		snprintf(err, errlen, "TLS key %s: size %lld is not that of a private key", path,
		    (long long)st.st_size);
		goto fail;
	}
	if ((d->data = sodium_malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "TLS key %s: out of guarded memory", path);
		goto fail;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, d->data + off, (size_t)st.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "cannot read TLS key %s: %s", path,
			    n < 0 ? strerror(errno) : "file shrank while reading");
			sodium_free(d->data);
			d->data = NULL;
			goto fail;
		}
		off += (size_t)n;
	}
	d->size = (unsigned int)off;
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

/* Sign once and verify with the public half: the key works, and GnuTLS has
 * done its lazy set-up (randomness) before the seccomp filter. */
static int
key_selftest(gnutls_privkey_t key, gnutls_pubkey_t pub)
{
	static const unsigned char msg[] = "subproxy keeper self-test";
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)msg, sizeof(msg) - 1 }, sig = { NULL, 0 };
	gnutls_sign_algorithm_t algo;
	int rc;

	switch (KK.pk) {
	case GNUTLS_PK_RSA:		algo = GNUTLS_SIGN_RSA_SHA256; break;
	case GNUTLS_PK_RSA_PSS:		algo = GNUTLS_SIGN_RSA_PSS_SHA256; break;
	case GNUTLS_PK_ECDSA:		algo = GNUTLS_SIGN_ECDSA_SHA256; break;
	case GNUTLS_PK_EDDSA_ED25519:	algo = GNUTLS_SIGN_EDDSA_ED25519; break;
	case GNUTLS_PK_EDDSA_ED448:	algo = GNUTLS_SIGN_EDDSA_ED448; break;
	default:			return GNUTLS_E_UNKNOWN_PK_ALGORITHM;
	}
	if ((rc = gnutls_privkey_sign_data2(key, algo, 0, &d, &sig)) < 0)
		return rc;
	rc = gnutls_pubkey_verify_data2(pub, algo, 0, &d, &sig);
	gnutls_free(sig.data);
	return rc < 0 ? rc : 0;
}

/* OpenSSL's copy of an ECDSA P-256 key object, from GnuTLS's DER export
 * (wiped), as a context set up for signing; NULL when it is of another
 * curve or OpenSSL cannot read it. */
static EVP_PKEY_CTX *
p256_copy(gnutls_privkey_t key)
{
	EVP_PKEY_CTX *ctx = NULL;
	gnutls_x509_privkey_t x = NULL;
	gnutls_datum_t der = { NULL, 0 };
	const unsigned char *p;
	EVP_PKEY *pk = NULL;
	char group[32];

	if (gnutls_privkey_export_x509(key, &x) >= 0 &&
	    gnutls_x509_privkey_export2(x, GNUTLS_X509_FMT_DER, &der) >= 0 && der.size < 65536) {
		p = der.data;
		pk = d2i_AutoPrivateKey(NULL, &p, (long)der.size);
	}
	if (der.data != NULL) {
		sodium_memzero(der.data, der.size);
		gnutls_free(der.data);
	}
	gnutls_x509_privkey_deinit(x);
	if (pk != NULL && (EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC ||
	    !EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL) ||
	    strcmp(group, "prime256v1") != 0)) {
		EVP_PKEY_free(pk);              /* clears the private number */
		pk = NULL;
	}
	if (pk != NULL && ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL ||
	    EVP_PKEY_sign_init(ctx) <= 0)) {
		EVP_PKEY_CTX_free(ctx);
		ctx = NULL;
	}
	EVP_PKEY_free(pk);                      /* the context holds its own reference */
	ERR_clear_error();
	return ctx;
}

/* An ECDSA P-256 key: an OpenSSL copy of each key object, each tested
 * (sign, verify with the public half).  0 (also when OpenSSL cannot take
 * the key: GnuTLS signs then), or a GnuTLS error. */
static int
p256_load(gnutls_pubkey_t pub)
{
	static const uint8_t h[32] = "subproxy keeper self-test P-256";
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)h, sizeof(h) }, sig = { NULL, 0 };
	unsigned int i;
	int rc = 0;

	if (KK.pk != GNUTLS_PK_ECDSA || KK.bits != 256)
		return 0;
	KK.p256 = xcalloc(KK.nkeys, sizeof(*KK.p256));
	for (i = 0; i < KK.nkeys; i++) {
		if ((KK.p256[i] = p256_copy(KK.keys[i])) == NULL) {
			log_info("keeper: OpenSSL cannot take the ECDSA P-256 key; GnuTLS signs");
			while (i > 0)
				EVP_PKEY_CTX_free(KK.p256[--i]);
			free(KK.p256);
			KK.p256 = NULL;
			return 0;
		}
	}
	for (i = 0; i < KK.nkeys && rc >= 0; i++) {
		if ((rc = p256_sign(KK.p256[i], h, sizeof(h), &sig)) >= 0)
			rc = gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_ECDSA_SECP256R1_SHA256, 0,
			    &d, &sig);
		gnutls_free(sig.data);
		sig.data = NULL;
	}
	return rc < 0 ? rc : 0;
}

/* The key text raw as a key object, PEM or DER. */
static int
key_import(const gnutls_datum_t *raw, gnutls_privkey_t *key)
{
	int rc;

	if ((rc = gnutls_privkey_init(key)) < 0)
		return rc;
	rc = gnutls_privkey_import_x509_raw(*key, raw, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (rc < 0)
		rc = gnutls_privkey_import_x509_raw(*key, raw, GNUTLS_X509_FMT_DER, NULL, 0);
	return rc;
}

/* Is the key of a kind and size the keeper serves?  0, or -1 with a
 * sentence in err. */
static int
key_acceptable(const char *path, char *err, size_t errlen)
{
	if (KK.pk != GNUTLS_PK_RSA && KK.pk != GNUTLS_PK_RSA_PSS && KK.pk != GNUTLS_PK_ECDSA &&
	    !is_eddsa(KK.pk)) {
		snprintf(err, errlen, "TLS key %s is a %s key; use ECDSA, Ed25519 or RSA", path,
		    gnutls_pk_get_name(KK.pk) ? gnutls_pk_get_name(KK.pk) : "unknown");
		return -1;
	}
	if ((KK.pk == GNUTLS_PK_RSA || KK.pk == GNUTLS_PK_RSA_PSS) && KK.bits < RSA_MIN_BITS) {
		snprintf(err, errlen, "TLS key %s is RSA with %u bits; at least %d are required",
		    path, KK.bits, RSA_MIN_BITS);
		return -1;
	}
	return 0;
}

/* Load the key once per key worker (the first copy tells which kind it
 * is), test each copy; store the public half (DER SPKI) in fds. */
int
keeper_key_load(const char *path, unsigned int nrsa, unsigned int nother,
    struct keeper_fds *fds, char *err, size_t errlen)
{
	gnutls_datum_t raw = { NULL, 0 }, der = { NULL, 0 };
	gnutls_pubkey_t pub = NULL;
	unsigned int i, nworkers = 0, nkeys;
	int rc;

	if (read_key_file(path, &raw, err, errlen) < 0)
		return -1;
	KK.keys = xcalloc(nrsa > nother ? nrsa + 1 : nother + 1, sizeof(*KK.keys));
	KK.nkeys = 0;
	if ((rc = key_import(&raw, &KK.keys[0])) >= 0) {
		KK.nkeys = 1;
		KK.pk = gnutls_privkey_get_pk_algorithm(KK.keys[0], &KK.bits);
		nworkers = KK.pk == GNUTLS_PK_RSA || KK.pk == GNUTLS_PK_RSA_PSS ? nrsa : nother;
		nkeys = nworkers > 0 ? nworkers : 1;
		for (; KK.nkeys < nkeys && rc >= 0; KK.nkeys++)
			rc = key_import(&raw, &KK.keys[KK.nkeys]);
	}
	sodium_free(raw.data);          /* wipes the key text */
	if (rc < 0) {
		snprintf(err, errlen, "cannot read TLS key %s: %s (expected an unencrypted PEM or "
		    "DER private key)", path, gnutls_strerror(rc));
		return -1;
	}
	if (key_acceptable(path, err, errlen) < 0)
		return -1;
	if ((rc = gnutls_pubkey_init(&pub)) >= 0 &&
	    (rc = gnutls_pubkey_import_privkey(pub, KK.keys[0], 0, 0)) >= 0 &&
	    (rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der)) >= 0 &&
	    (der.size == 0 || der.size > KEEPER_SPKI_MAX))
		rc = GNUTLS_E_SHORT_MEMORY_BUFFER;
	/* every worker's copy signs, and verifies with the public half */
	for (i = 0; i < KK.nkeys && rc >= 0; i++)
		rc = key_selftest(KK.keys[i], pub);
	if (rc >= 0)
		rc = p256_load(pub);
	if (rc < 0) {
		snprintf(err, errlen, "TLS key %s does not work: %s", path, gnutls_strerror(rc));
		gnutls_free(der.data);
		gnutls_pubkey_deinit(pub);
		return -1;
	}
	memcpy(fds->spki, der.data, der.size);
	fds->spki_len = der.size;
	fds->pk_algo = KK.pk;
	fds->bits = KK.bits;
	gnutls_free(der.data);
	gnutls_pubkey_deinit(pub);
	return (int)nworkers;
}

long
keeper_key_answer(unsigned int k, uint32_t id, const uint8_t *req, size_t len, uint8_t *buf,
    size_t cap)
{
	struct keeper_tls_fields f;
	gnutls_datum_t sig = { NULL, 0 };
	struct proc_writer w;
	int rc;

	if (k >= KK.nkeys) {
		log_err("keeper: key worker %u has no key (a bug); exiting", k);
		_exit(1);
	}
	if (keeper_tls_req_decode(req, len, &f) < 0) {
		log_err("keeper: refused a malformed TLS key request id=%u (%zu octets)", id, len);
		rc = GNUTLS_E_INVALID_REQUEST;
	} else if ((rc = tls_sign(k, &f, &sig)) < 0) {
		log_err("keeper: TLS key operation %s (op %u) refused or failed: %s",
		    gnutls_sign_get_name((gnutls_sign_algorithm_t)f.algo) ?
		    gnutls_sign_get_name((gnutls_sign_algorithm_t)f.algo) : "unknown-algorithm",
		    f.op, gnutls_strerror(rc));
	} else if (sig.size == 0 || sig.size > KEEPER_SIG_MAX) {
		rc = GNUTLS_E_PK_SIGN_FAILED;
	}
	proc_writer_init(&w, buf, cap);
	proc_put_u32(&w, (uint32_t)(rc < 0 ? rc : 0));
	proc_put_bytes(&w, sig.data, rc < 0 ? 0 : sig.size);
	gnutls_free(sig.data);
	return proc_writer_done(&w);
}

const char *
keeper_key_describe(char *buf, size_t len)
{
	snprintf(buf, len, "%s-%u", gnutls_pk_get_name(KK.pk) ? gnutls_pk_get_name(KK.pk) : "?",
	    KK.bits);
	return buf;
}
