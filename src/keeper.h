/*
 * keeper.h — the key keeper process and front's client for it.
 *
 * The keeper alone holds the TLS private key and the password hashes.  It
 * is forked before any secret is read, loads the key ([tls] key) and the
 * password file ([auth] passwd-file) itself, tests the key with one
 * signature, reports READY (with the public key, see struct keeper_fds) or
 * the reason it cannot start, then serves two SOCK_SEQPACKET socketpairs
 * with poll(2):
 *
 *  - the TLS socket: private-key operations, one at a time, answered at
 *    once by the keeper's main thread.  front waits for each answer (GnuTLS
 *    calls the key synchronously during a handshake).
 *  - the AUTH socket: password checks with request ids, any number in
 *    flight.  Argon2id (~50-100 ms, 64 MiB) runs on KEEPER_WORKERS threads
 *    inside the keeper, so a slow check never delays a TLS signature, and
 *    every AUTH answer is sent by a worker, so the main thread never waits
 *    for front to read.
 *
 * Messages (src/proc.h framing; strings and byte strings are u32 length +
 * bytes):
 *   PROC_AUTH_REQ     front -> keeper: str login (at most PASSWD_LOGIN_MAX,
 *                     no NUL), bytes password (at most KEEPER_PW_MAX),
 *                     str peer (client address for the counters, at most
 *                     KEEPER_PEER_MAX printable ASCII, "" = none)
 *   PROC_AUTH_REP     keeper -> front: u32 enum keeper_auth_result
 *   PROC_TLS_SIGN_REQ front -> keeper: u8 enum keeper_tls_op, u32
 *                     gnutls_sign_algorithm_t, u32 GnuTLS privkey flags,
 *                     bytes data (at most KEEPER_SIGN_DATA_MAX)
 *   PROC_TLS_SIGN_REP keeper -> front: u32 status (0, or a GnuTLS error
 *                     code as a two's complement u32), bytes signature
 *   PROC_READY        keeper -> parent, on the TLS socket: u32 password
 *                     entries, str text, u32 gnutls_pk_algorithm_t, u32 bits,
 *                     bytes SPKI (DER)
 *   PROC_ERR          keeper -> parent, on the TLS socket: u32 1, str sentence
 * A message of the wrong type on either socket, a broken frame or an
 * unexpected descriptor ends the keeper (exit 1: front broke the protocol);
 * a well-framed request whose payload does not decode gets an error answer
 * (KEEPER_AUTH_BADREQ, or GNUTLS_E_INVALID_REQUEST) and the keeper goes on.
 *
 * Decryption (static RSA key exchange) is not offered: the key answers
 * GNUTLS_E_INVALID_REQUEST to it.  TLS priorities must not enable the RSA
 * key exchange (the default does not; tls.c should add ":-RSA" to its
 * floor).
 *
 * Auth failure counters (rate limiting) live in the keeper: per login and
 * per peer address, failures within a window.  Once a login has
 * `login_max` failures, or an address `peer_max`, within `window` seconds
 * of the first one, every check for it is answered KEEPER_AUTH_LOCKED
 * (without running Argon2id) until the window ends; front replies
 * 454 4.7.0.  The login counter is per login string whether the login
 * exists or not (an unknown login locks the same way, so locking reveals
 * nothing), and a successful login clears its own login counter, never the
 * address counter.  A check is looked at when it arrives and again when a
 * worker takes it, so only checks already running when a counter reaches
 * its limit (at most KEEPER_WORKERS - 1 others) still count beyond it.
 * Locked logins, addresses and queue overflows are answered without
 * Argon2id, by the workers (answers may come in any order: match ids).  The table is bounded
 * (KEEPER_COUNTERS slots, keyed with a secret SipHash key); when full, the
 * expired, then the lowest, then the oldest counters are forgotten first.
 * Unknown logins cost the same Argon2id run as known ones (passwd_verify).
 */
#ifndef SUBPROXY_KEEPER_H
#define SUBPROXY_KEEPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct config;
struct event_base;
struct keeper_client;
struct keeper_req;
/* = gnutls_privkey_t; declared here so that includers need no GnuTLS. */
struct gnutls_privkey_st;

#define KEEPER_WORKERS          2       /* Argon2id threads in the keeper */
#define KEEPER_QUEUE_MAX        64      /* checks queued or running; beyond: KEEPER_AUTH_BUSY */
#define KEEPER_PW_MAX           1024    /* password octets */
#define KEEPER_PEER_MAX         63      /* "2001:db8::1", "[...]" or a name; printable */
#define KEEPER_SIGN_DATA_MAX    8192    /* octets to sign (Ed25519 TLS 1.2: ~700) */
#define KEEPER_SIG_MAX          2048    /* signature octets (RSA-16384) */
#define KEEPER_SPKI_MAX         4096    /* DER SubjectPublicKeyInfo */
#define KEEPER_COUNTERS         4096    /* failure counter slots */
#define KEEPER_TLS_TIMEOUT_MS   5000    /* a key operation slower than this: keeper lost */

/* Default lockout limits (keeper_set_lockout() changes them). */
#define KEEPER_LOCK_LOGIN_MAX   10
#define KEEPER_LOCK_PEER_MAX    30
#define KEEPER_LOCK_WINDOW      900     /* seconds */

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

/* Lockout limits for keepers spawned after this call (read in the child
 * after fork).  0 keeps the current value.  Meant for configuration and
 * tests; the defaults are the KEEPER_LOCK_* values. */
void keeper_set_lockout(unsigned int login_max, unsigned int peer_max, unsigned int window);

/*
 * Fork the keeper.  Call it before this process reads any secret.  The
 * child closes every descriptor but 0-2 and its two sockets, sets
 * PR_SET_DUMPABLE 0 and PR_SET_PDEATHSIG SIGKILL, loads cfg->tls_key (a
 * regular file that neither group nor other may access; PEM or DER,
 * unencrypted; RSA or RSA-PSS of at least 2048 bits, ECDSA, Ed25519 or
 * Ed448), signs once with it and checks the signature, loads
 * cfg->passwd_file (passwd_load), starts its workers (and waits until they
 * run), then PR_SET_DUMPABLE/RLIMIT_CORE again and its seccomp filter
 * ("keeper", seccomp/keeper.policy), then reports.  Returns the child's pid and fills
 * *fds_r once it reported READY within `timeout` seconds; on failure
 * returns -1 with the keeper's own sentence in err (e.g. "TLS key
 * /etc/k.pem has mode 0644 ...; run chmod 600 /etc/k.pem"), the child
 * reaped and fds_r->tls_fd/auth_fd -1.
 */
pid_t keeper_spawn(const struct config *cfg, int timeout, struct keeper_fds *fds_r, char *err,
    size_t errlen);

/* Close both descriptors (the parent, after front was forked) and set them
 * to -1.  Safe to call twice. */
void keeper_fds_close(struct keeper_fds *fds);

/* ---- front's client ---- */

enum keeper_auth_result {
	KEEPER_AUTH_FAIL = 0,           /* wrong password or unknown login: 535 5.7.8 */
	KEEPER_AUTH_OK = 1,             /* 235 2.7.0 */
	KEEPER_AUTH_LOCKED = 2,         /* too many failures: 454 4.7.0, counted nowhere */
	KEEPER_AUTH_BUSY = 3,           /* keeper's queue full: 454 4.7.0 */
	KEEPER_AUTH_BADREQ = 4          /* request refused (field too long, ...): 535 5.7.8 */
};
#define KEEPER_AUTH_RESULT_MAX  KEEPER_AUTH_BADREQ
#define KEEPER_DEAD             (-1)    /* the keeper is gone: 454 4.7.0, service stops */

/* "ok", "fail", "locked", "busy", "badreq", "keeper-dead" (for logs). */
const char *keeper_auth_result_name(int result);

/* result: an enum keeper_auth_result value or KEEPER_DEAD. */
typedef void keeper_auth_cb(void *arg, int result);
typedef void keeper_dead_cb(void *arg);

/* front's end.  Takes ownership of both descriptors in *fds.  dead_cb is
 * called once, from the event loop, when the keeper goes away (EOF,
 * protocol error, a key operation timing out); every pending AUTH request
 * then fails with KEEPER_DEAD, later ones too, and key operations fail. */
struct keeper_client *keeper_client_new(struct event_base *base, const struct keeper_fds *fds,
    keeper_dead_cb *dead_cb, void *arg);

/* Fail pending requests silently (no callbacks), close the sockets, free;
 * *kcp = NULL.  NULL is a no-op.  Keys from keeper_tls_privkey() may
 * outlive the client: their operations then fail. */
void keeper_client_free(struct keeper_client **kcp);

/*
 * Check login (NUL-terminated) and password (pwlen octets) for the client
 * at peer (NUL-terminated address text for the counters; NULL or "" =
 * none).  Nothing is copied beyond this call (the caller wipes its own
 * copy; the request buffer here is wiped).  The callback is never called
 * before this returns.  A field over its limit is answered
 * KEEPER_AUTH_BADREQ without asking the keeper; a request that finds no room
 * in the socket waits in the client's queue (proc_client.h), and when
 * KEEPER_QUEUE_MAX wait already it is answered KEEPER_AUTH_BUSY, unsent.
 * Returns a cookie for keeper_cancel().
 */
struct keeper_req *keeper_auth(struct keeper_client *kc, const char *login, const char *password,
    size_t pwlen, const char *peer, keeper_auth_cb *cb, void *arg);

/* Cancel: the callback will not be called (a check already sent still
 * runs and still counts); *rp = NULL; NULL is a no-op. */
void keeper_cancel(struct keeper_req **rp);

/* AUTH requests whose callback is still due (for logs and tests). */
size_t keeper_pending(const struct keeper_client *kc);

/* AUTH answers dropped: cancelled, or stale (for logs and tests). */
uint64_t keeper_dropped(const struct keeper_client *kc);

/*
 * A new GnuTLS private key (gnutls_privkey_import_ext4) whose operations
 * are done by the keeper: each signature is one synchronous round trip on
 * the TLS socket (at most KEEPER_TLS_TIMEOUT_MS; a timeout, EOF or a reply
 * of another type marks the keeper lost; a reply with another id -- stale,
 * from an earlier worker in this slot -- is dropped and the wait goes on).  It knows its algorithm and size from READY, so GnuTLS
 * can choose signature algorithms without asking the keeper.  Use it from
 * the thread that runs the client's event loop only.  The caller owns *out
 * (gnutls_privkey_deinit, or hand it to gnutls_certificate_set_key).
 * Returns 0, or -1 with a sentence in err.
 */
int keeper_tls_privkey(struct keeper_client *kc, struct gnutls_privkey_st **out, char *err,
    size_t errlen);

/* ---- pure request codecs (no I/O; exposed for the fuzzer and tests) ---- */

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

/* Encode / decode a TLS_SIGN_REQ payload: op must be a known op and data
 * 1..KEEPER_SIGN_DATA_MAX octets.  Whether the key can make that signature
 * is the keeper's decision, not the codec's. */
long keeper_tls_req_encode(uint8_t *buf, size_t cap, const struct keeper_tls_fields *f);
int keeper_tls_req_decode(const uint8_t *p, size_t len, struct keeper_tls_fields *f);

/* Decode a READY payload into the key fields of *fds (not the
 * descriptors).  Returns 0, or -1. */
int keeper_ready_decode(const uint8_t *p, size_t len, struct keeper_fds *fds);

#endif
