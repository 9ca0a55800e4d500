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
 * Ed25519, Ed448) into guarded memory, make nkeys (at least 1) key objects
 * of it, one per key worker (the text is then wiped), sign once with each
 * and verify; fill the key fields of *info (pk_algo, bits, SPKI).  Returns
 * 0, or -1 with a sentence in err. */
int keeper_key_load(const char *path, unsigned int nkeys, struct keeper_fds *info, char *err,
    size_t errlen);

/* The TLS_SIGN_REP payload answering the TLS_SIGN_REQ payload req (len
 * octets) of request id, made with key object k (0..nkeys-1: the calling
 * key worker's own; two threads never use the same k at once): written
 * into buf (cap >= KEEPER_KEYQ_REP_MAX).  A request the key cannot or must
 * not do is answered with its GnuTLS error.  Returns the payload's
 * length. */
long keeper_key_answer(unsigned int k, uint32_t id, const uint8_t *req, size_t len, uint8_t *buf,
    size_t cap);

/* "EC/ECDSA-256", for log lines.  Returns buf. */
const char *keeper_key_describe(char *buf, size_t len);

#endif
