/*
 * keeper_int.h — between the files of the keeper process: keeper.c (the
 * process, its sockets and AUTH workers) and keeper_key.c (the TLS key).
 * Nothing else includes it.
 */
#ifndef SUBPROXY_KEEPER_INT_H
#define SUBPROXY_KEEPER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "keeper_msg.h"

struct proc_msg;

/* Load the TLS key at path (a regular file neither group nor other may
 * access; PEM or DER, unencrypted; RSA/RSA-PSS >= 2048 bits, ECDSA,
 * Ed25519, Ed448) into guarded memory, sign once and verify; fill the key
 * fields of *info (pk_algo, bits, SPKI).  Returns 0, or -1 with a sentence
 * in err. */
int keeper_key_load(const char *path, struct keeper_fds *info, char *err, size_t errlen);

/* The TLS_SIGN_REP payload answering TLS_SIGN_REQ m: written into buf (cap
 * >= 16 + KEEPER_SIG_MAX).  A request the key cannot or must not do is
 * answered with its GnuTLS error.  Returns the payload's length. */
long keeper_key_answer(const struct proc_msg *m, uint8_t *buf, size_t cap);

/* "EC/ECDSA-256", for log lines.  Returns buf. */
const char *keeper_key_describe(char *buf, size_t len);

#endif
