/*
 * keeper_int.h — between the files of the keeper process: keeper.c (the
 * process, its sockets, its AUTH and key workers) and keeper_key.c (the TLS
 * key).
 * Nothing else includes it.
 */
#ifndef SUBPROXY_KEEPER_INT_H
#define SUBPROXY_KEEPER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "keeper_msg.h"

/* Load the TLS key at path (a regular file neither group nor other may
 * access; PEM or DER, unencrypted; RSA/RSA-PSS >= 2048 bits, ECDSA,
 * Ed25519, Ed448) into guarded memory, make one key object per key worker
 * (the text is then wiped; an ECDSA P-256 key gets an OpenSSL copy of each
 * too, for its SHA-256 signatures), sign once with each and verify; fill
 * the key fields of *info (pk_algo, bits, SPKI).  The key workers: nrsa for an RSA
 * key, nother for an ECDSA or EdDSA one; 0 workers means that the calling
 * thread signs itself, with key object 0 (one object is made).  Returns
 * the number of key workers, or -1 with a sentence in err. */
int keeper_key_load(const char *path, unsigned int nrsa, unsigned int nother,
    struct keeper_fds *info, char *err, size_t errlen);

/* The TLS_SIGN_REP payload answering the TLS_SIGN_REQ payload req (len
 * octets) of request id, made with key object k (the calling key worker's
 * own, or 0 for the thread that loaded the key when there are no key
 * workers; two threads never use the same k at once): written
 * into buf (cap >= KEEPER_KEYQ_REP_MAX).  A request the key cannot or must
 * not do is answered with its GnuTLS error.  Returns the payload's
 * length. */
long keeper_key_answer(unsigned int k, uint32_t id, const uint8_t *req, size_t len, uint8_t *buf,
    size_t cap);

/* "EC/ECDSA-256", for log lines.  Returns buf. */
const char *keeper_key_describe(char *buf, size_t len);

#endif
