/*
 * keeper_msg.h — what front and the keeper say to each other: the message
 * layouts, their limits, the AUTH results, and the pure codecs (no I/O;
 * fuzzed by tests/fuzz/fuzz_keeper_msg.c).  Used by the keeper process
 * (keeper.c), front's client (keeper_client.c) and the parent (READY).
 *
 * Messages (src/proc.h framing; strings and byte strings are u32 length +
 * bytes):
 *   PROC_AUTH_REQ     front -> keeper: str login (at most PASSWD_LOGIN_MAX,
 *                     no NUL), bytes password (at most KEEPER_PW_MAX),
 *                     str peer (client address for the counters, at most
 *                     KEEPER_PEER_MAX printable ASCII, "" = none)
 *   PROC_AUTH_REP     keeper -> front: u32 enum keeper_auth_result, u32
 *                     flags (KEEPER_AUTH_F_*)
 *   PROC_AUTH_CANCEL  front -> keeper: no payload; the id of an AUTH_REQ
 *                     whose session ended.  A check still waiting for
 *                     a worker is dropped unanswered; one already running
 *                     or answered is not affected (front drops its answer).
 *   PROC_TLS_SIGN_REQ front -> keeper: u8 enum keeper_tls_op, u32
 *                     gnutls_sign_algorithm_t, u32 GnuTLS privkey flags,
 *                     bytes data (at most KEEPER_SIGN_DATA_MAX)
 *   PROC_TLS_SIGN_REP keeper -> front: u32 status (0, or a GnuTLS error
 *                     code as a two's complement u32), bytes signature
 *   PROC_READY        keeper -> parent, on its start-up socket (proc.h
 *                     layout): u32 password entries, str text, then u32
 *                     gnutls_pk_algorithm_t, u32 bits, bytes SPKI (DER)
 *   PROC_ERR          keeper -> parent, on its start-up socket: u32 1, str
 *                     sentence
 * Each request carries an id that its answer echoes.
 */
#ifndef SUBPROXY_KEEPER_MSG_H
#define SUBPROXY_KEEPER_MSG_H

#include <stddef.h>
#include <stdint.h>

#define KEEPER_PW_MAX           1024    /* password octets */
#define KEEPER_PEER_MAX         63      /* "2001:db8::1", "[...]" or a name; printable */
#define KEEPER_SIGN_DATA_MAX    8192    /* octets to sign (Ed25519 TLS 1.2: ~700) */
#define KEEPER_SIG_MAX          2048    /* signature octets (RSA-16384) */
#define KEEPER_SPKI_MAX         4096    /* DER SubjectPublicKeyInfo */

enum keeper_auth_result {
	KEEPER_AUTH_FAIL = 0,           /* wrong password or unknown login: 535 5.7.8 */
	KEEPER_AUTH_OK = 1,             /* 235 2.7.0 */
	KEEPER_AUTH_LOCKED = 2,         /* too many failures: 454 4.7.0, counted nowhere */
	KEEPER_AUTH_BUSY = 3,           /* keeper's queue full: 454 4.7.0 */
	KEEPER_AUTH_BADREQ = 4          /* request refused (field too long, ...): 535 5.7.8 */
};
#define KEEPER_AUTH_RESULT_MAX  KEEPER_AUTH_BADREQ
#define KEEPER_DEAD             (-1)    /* the keeper is gone: 454 4.7.0, service stops */

/* Flags of an answer. */
#define KEEPER_AUTH_F_CACHED    1u      /* KEEPER_AUTH_OK from the auth cache: no Argon2id ran */
#define KEEPER_AUTH_F_KNOWN     (KEEPER_AUTH_F_CACHED)

/* "ok", "fail", "locked", "busy", "badreq", "keeper-dead" (for logs). */
const char *keeper_auth_result_name(int result);

/* What the parent learns at READY and hands to front (copy the struct
 * across fork).  The two descriptors are front's ends of the sockets. */
struct keeper_fds {
	int tls_fd;                     /* TLS private-key operations, synchronous */
	int auth_fd;                    /* AUTH checks, asynchronous */
	int pk_algo;                    /* gnutls_pk_algorithm_t of the key */
	unsigned int bits;              /* its size, as gnutls_privkey_get_pk_algorithm() */
	size_t npasswd;                 /* entries in the password file */
	size_t spki_len;
	uint8_t spki[KEEPER_SPKI_MAX];  /* the key's public half, DER SPKI */
};

enum keeper_tls_op {
	KEEPER_OP_SIGN_HASH = 1,        /* data: a digest, or a PKCS#1 DigestInfo for RSA_RAW */
	KEEPER_OP_SIGN_DATA = 2         /* data: the message (Ed25519, Ed448) */
};

struct keeper_auth_fields {
	char login[256];                /* PASSWD_LOGIN_MAX + 1; may be "" */
	char peer[KEEPER_PEER_MAX + 1]; /* "" = none */
	const uint8_t *pw;              /* view into the payload */
	size_t pwlen;
};

struct keeper_tls_fields {
	uint8_t op;                     /* enum keeper_tls_op */
	uint32_t algo;                  /* gnutls_sign_algorithm_t */
	uint32_t flags;                 /* gnutls_privkey_flags_t bits */
	const uint8_t *data;            /* view into the payload */
	size_t len;
};

/* Encode an AUTH_REQ payload into buf (cap octets).  Returns its length,
 * or -1 if a field is over its limit (login > 255, NUL-free; password >
 * KEEPER_PW_MAX; peer > KEEPER_PEER_MAX or not printable) or cap is too
 * small. */
long keeper_auth_req_encode(uint8_t *buf, size_t cap, const char *login, const char *pw,
    size_t pwlen, const char *peer);

/* Decode an AUTH_REQ payload; the same limits.  Returns 0, or -1 (the
 * fields are then unspecified). */
int keeper_auth_req_decode(const uint8_t *p, size_t len, struct keeper_auth_fields *f);

/* Encode an AUTH_REP payload (8 octets) into buf.  Returns its length, or
 * -1 (cap too small). */
long keeper_auth_rep_encode(uint8_t *buf, size_t cap, uint32_t result, uint32_t flags);

/* Decode an AUTH_REP payload: a known result, known flags, and
 * KEEPER_AUTH_F_CACHED only with KEEPER_AUTH_OK.  Returns 0, or -1. */
int keeper_auth_rep_decode(const uint8_t *p, size_t len, int *result_r, unsigned int *flags_r);

/* Encode / decode a TLS_SIGN_REQ payload: op must be a known op and data
 * 1..KEEPER_SIGN_DATA_MAX octets.  Whether the key can make that signature
 * is the keeper's decision, not the codec's. */
long keeper_tls_req_encode(uint8_t *buf, size_t cap, const struct keeper_tls_fields *f);
int keeper_tls_req_decode(const uint8_t *p, size_t len, struct keeper_tls_fields *f);

/* Decode a READY payload into the key fields of *fds (not the
 * descriptors).  Returns 0, or -1. */
int keeper_ready_decode(const uint8_t *p, size_t len, struct keeper_fds *fds);

#endif
