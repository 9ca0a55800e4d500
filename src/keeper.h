/*
 * keeper.h — the key keeper process.  Runs in the parent (keeper_spawn)
 * and in the keeper child.  Messages: keeper_msg.h; front's side:
 * keeper_client.h.
 *
 * The keeper alone holds the TLS private key and the password hashes.  It
 * is forked before any secret is read, loads the key ([tls] key) and the
 * password file ([auth] passwd-file) itself, tests the key with one
 * signature, reports READY (with the public key, see struct keeper_fds) or
 * the reason it cannot start, then serves, for each client slot, two
 * SOCK_SEQPACKET socketpairs with poll(2):
 *
 *  - the TLS socket: private-key operations, one at a time per slot
 *    (front waits for each answer: GnuTLS calls the key synchronously
 *    during a handshake).  The main thread reads a request and passes it
 *    to the key workers ([tls] key-workers threads, default one per CPU
 *    for an RSA key, never more than slots), which sign in the order the
 *    requests came (keeper_keyq.h), each with a key object of its own
 *    (keeper_key.c); the main thread sends the answer and only then reads
 *    the slot's next request, so a slot holds at most one operation and
 *    the keeper's memory for them is fixed at start.  An RSA-2048
 *    signature (~2 ms with GnuTLS/nettle) thus delays neither AUTH answers
 *    nor other slots' handshakes, and W front workers' handshakes are
 *    signed on up to W cores at once.  An ECDSA or EdDSA signature (tens
 *    of microseconds, less than the hand-over to a thread and back) is
 *    made by the main thread itself, between reading the request and
 *    sending the answer, unless [tls] key-workers is set.
 *  - the AUTH socket: password checks with request ids, any number in
 *    flight, and cancels of checks whose session ended.  Argon2id
 *    (~50-100 ms, 64 MiB each) runs on [auth] workers threads inside the
 *    keeper (default: one per CPU), so a slow check never delays a TLS
 *    signature (nor a signature a cached check); checks beyond the workers wait in a FIFO per slot
 *    (keeper_queue.h), at most [limits] auth-queue of them held at once,
 *    and only a check beyond that is answered KEEPER_AUTH_BUSY.  A
 *    cancelled check that still waits is dropped before it costs Argon2id.
 *    The main thread sends every answer without waiting (a slot's answers
 *    queue while its front does not read), so it never waits for front.
 *
 * A message of the wrong type on either socket, a broken frame or an
 * unexpected descriptor ends the keeper (exit 1: front broke the protocol);
 * a well-framed request whose payload does not decode gets an error answer
 * (KEEPER_AUTH_BADREQ, or GNUTLS_E_INVALID_REQUEST) and the keeper goes on.
 *
 * Decryption (static RSA key exchange) is not offered: the key answers
 * GNUTLS_E_INVALID_REQUEST to it.  tls.c never enables the RSA key
 * exchange: it appends TLS_PRIORITY_FLOOR (tls.h, ":-RSA" among others) to
 * every priority string.
 *
 * Auth failure counters (rate limiting, lockout.h) live in the keeper.
 * Every check of a locked login or address is answered KEEPER_AUTH_LOCKED
 * (without running Argon2id) until the window ends; front replies
 * 454 4.7.0.  A check is looked at when it arrives and again when a
 * worker takes it, so only checks already running when a counter reaches
 * its limit (at most workers - 1 others) still count beyond it.
 *
 * The auth cache (authcache.h; [auth] cache-ttl, 0 = off, and cache-size)
 * is looked at in the same two places, after the lockout: a login and
 * password that Argon2id verified within cache-ttl, against the hash the
 * keeper holds now, is answered KEEPER_AUTH_OK with KEEPER_AUTH_F_CACHED at
 * once (the main thread spends one BLAKE2b run on it, while the key workers
 * sign) and clears the login's failure count as a verified success
 * does.  Only successes of Argon2id are entered; any other password goes
 * to Argon2id.
 *
 * Locked, cached, malformed and refused checks are answered at once
 * (answers may come in any order: match ids).  Unknown logins cost the same
 * Argon2id run as known ones (passwd_verify) and never hit the cache.
 * Memory: each running check takes 64 MiB (the hashes' m=), so workers x
 * 64 MiB at most; each held check a few hundred octets (keeper_queue.h).
 * Metrics (its slice, metrics.h): cache hits, Argon2id runs (misses) and
 * the checks held now (a gauge, updated once per round of its loop).
 */
#ifndef SUBPROXY_KEEPER_H
#define SUBPROXY_KEEPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "keeper_msg.h"

struct config;

/* Default lockout limits (keeper_set_lockout() changes them). */
#define KEEPER_LOCK_LOGIN_MAX   10
#define KEEPER_LOCK_PEER_MAX    30
#define KEEPER_LOCK_WINDOW      900     /* seconds */

/* Lockout limits for keepers spawned after this call (read in the child
 * after fork).  0 keeps the current value.  Meant for configuration and
 * tests; the defaults are the KEEPER_LOCK_* values. */
void keeper_set_lockout(unsigned int login_max, unsigned int peer_max, unsigned int window);

/*
 * Fork the keeper (proc_spawn.h) with `nslots` client slots, one per front
 * worker (1..PROC_SPAWN_FDS_MAX / 2); each slot is a TLS and an AUTH
 * socketpair.  Call it before this process reads any secret.  The child
 * loads cfg->tls_key (a regular file that neither group nor other may
 * access; PEM or DER, unencrypted; RSA or RSA-PSS of at least 2048 bits,
 * ECDSA, Ed25519 or Ed448), makes one key object per key worker
 * (config_key_workers(), at most nslots; for an ECDSA or EdDSA key none
 * unless [tls] key-workers is set: one object, the main thread's), signs once with each and checks
 * the signature, loads cfg->passwd_file (passwd_load), makes its auth
 * cache, starts its Argon2id workers (config_auth_workers()) and key
 * workers (waits until every thread runs), then
 * PR_SET_DUMPABLE/RLIMIT_CORE again and its seccomp filter
 * ("keeper", seccomp/keeper.policy), then reports.  Returns the child's pid
 * and fills fds_r[0..nslots) (front's ends of each slot, and the key's
 * description, the same in every slot) once it reported READY within
 * `timeout` seconds; on failure returns -1 with the keeper's own sentence
 * in err (e.g. "TLS key /etc/k.pem has mode 0644 ...; run chmod 600
 * /etc/k.pem"), the child reaped and every tls_fd/auth_fd -1.
 *
 * The keeper serves every slot: key answers out and key requests in first
 * (all slots), then AUTH answers out and one AUTH message in per slot, in
 * turn.  Workers take
 * the slots' checks in turn, so one front's long queue delays no other
 * front's checks (it only fills cfg->limits.auth_queue sooner: every
 * session has at most one check in flight, so a legitimate front never
 * holds more than its sessions, and a front that floods is broken and can
 * stop the keeper anyway).  A slot whose front does not read its answers is
 * no longer read (the others are).  It exits 0 when front has closed every
 * slot, 1 when front breaks the protocol.
 */
pid_t keeper_spawn(const struct config *cfg, size_t nslots, int timeout,
    struct keeper_fds *fds_r, char *err, size_t errlen);

/* Close both descriptors (the parent, after front was forked) and set them
 * to -1.  Safe to call twice. */
void keeper_fds_close(struct keeper_fds *fds);

#endif
