/*
 * auditkey.h — the keys of the audit log: the Ed25519 key that signs
 * checkpoints ([audit] signing-key), its public half for auditors
 * (--verify-log --public-key, --dns-records), and the key of the keyed
 * hashes that replace addresses and logins ([audit] pseudonymize-key).
 *
 * Secret key files are held like the DKIM keys: a regular file that group
 * and others cannot access (mode & 077 == 0), at most 64 KiB, read into
 * sodium_malloc() memory and wiped after use; the keys themselves live in
 * sodium_malloc() memory, read-only, wiped on free.
 *
 *   signing-key: a PEM Ed25519 private key (PKCS#8, as written by
 *     `certtool --generate-privkey --key-type ed25519` or
 *     `openssl genpkey -algorithm ed25519`);
 *   public key: PEM "PUBLIC KEY" (SubjectPublicKeyInfo, `openssl pkey
 *     -pubout`, or what --dns-records prints), or one line of the 32 octets
 *     in base64 (the "key" member of the log's records);
 *   pseudonymize-key: any file of at least 32 octets of secret random data
 *     (`head -c 32 /dev/urandom`); the key is the BLAKE2b-256 of its content.
 */
#ifndef SUBPROXY_AUDITKEY_H
#define SUBPROXY_AUDITKEY_H

#include <stddef.h>
#include <stdint.h>

#include "auditlog.h"

struct alog_key {
	uint8_t *sk;			/* sodium_malloc: libsodium secret key, read-only */
	uint8_t pk[ALOG_PK_LEN];
};

/* Load the signing key from path.  Returns 0, or -1 with one sentence (the
 * file, what is wrong, how to fix it) in err. */
int alog_key_load(const char *path, struct alog_key *k, char *err, size_t errlen);

/* Wipe and free; the struct may be loaded again.  Safe on a zeroed key. */
void alog_key_clear(struct alog_key *k);

/* Read a public key file (PEM SubjectPublicKeyInfo of an Ed25519 key, or
 * base64 of the 32 octets).  0, or -1 with a sentence. */
int alog_pubkey_read(const char *path, uint8_t pk[ALOG_PK_LEN], char *err, size_t errlen);

/* The PEM SubjectPublicKeyInfo of pk, a new string (caller frees). */
char *alog_pubkey_pem(const uint8_t pk[ALOG_PK_LEN]);

/* The pseudonymization key (ALOG_PSEUDO_KEY_LEN octets in sodium_malloc
 * memory, read-only; free with sodium_free).  NULL with a sentence. */
uint8_t *alog_pseudo_key_load(const char *path, char *err, size_t errlen);

#endif
