/*
 * passwd.h — the password file and Argon2id checks (libsodium).
 *
 * File format (Dovecot passwd-file compatible, `doveadm pw -s ARGON2ID`):
 *   login:{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$SALT$HASH[:more:fields]
 * one entry per line; further ':'-separated fields are ignored; lines whose
 * first non-blank character is '#' and blank lines are skipped; a final CR
 * before LF is tolerated.  The scheme prefix is case-insensitive.  Any other
 * scheme ({PLAIN}, {SHA512-CRYPT}, none, ...) is an error naming file:line,
 * as are a malformed hash, cost parameters beyond PASSWD_MAX_MEM_KIB /
 * PASSWD_MAX_TIME, an empty or invalid login (control bytes, SP, over 255
 * octets) and a duplicate login.  Logins compare byte-exactly.
 * The file must be a regular file of at most PASSWD_FILE_MAX octets that
 * neither group nor other may read or write.
 */
#ifndef SUBPROXY_PASSWD_H
#define SUBPROXY_PASSWD_H

#include <stddef.h>

#define PASSWD_FILE_MAX         (16u * 1024 * 1024)
#define PASSWD_LOGIN_MAX        255
#define PASSWD_MAX_MEM_KIB      (1024u * 1024)  /* m= at most 1 GiB */
#define PASSWD_MAX_TIME         64              /* t= at most */
/* Room for "{ARGON2ID}" + a libsodium hash string + NUL. */
#define PASSWD_HASH_MAX         (10 + 128)

struct passwd_db;

/* Initialise libsodium (idempotent, thread-safe).  The other functions call
 * it themselves.  Returns 0, or -1 when libsodium cannot be used. */
int passwd_init(void);

/*
 * Read and check the password file at path.  Returns a new database, or NULL
 * with one sentence in err (errlen bytes; names the file and, for content
 * errors, "path:line: ...").  Hashes are kept in guarded memory
 * (sodium_malloc, read-only after loading); the read buffer is wiped.
 * Creates the dummy hash used for unknown logins (one Argon2id run with the
 * first entry's m and t, or libsodium's interactive limits for an empty
 * file), so loading costs about one login check.
 */
struct passwd_db *passwd_load(const char *path, char *err, size_t errlen);

/*
 * The checks of passwd_load() without building the database's dummy hash
 * (no Argon2id run): for the self-audit.  Returns the number of entries, or
 * -1 with the same sentence passwd_load() would give in err.
 */
long passwd_check(const char *path, char *err, size_t errlen);

/* Wipe and free; *dbp = NULL.  NULL is a no-op. */
void passwd_db_free(struct passwd_db **dbp);

/* Number of entries. */
size_t passwd_db_count(const struct passwd_db *db);

/*
 * Check login (NUL-terminated) and password (pwlen bytes, any content).
 * Returns 1 when the login exists and the password matches, else 0.  An
 * unknown login costs the same Argon2id run, against the dummy hash.  The
 * password is not copied; the caller wipes its buffer.  Safe to call from
 * several threads at once on the same db.  Slow by design: never call it on
 * an event loop.
 */
int passwd_verify(const struct passwd_db *db, const char *login, const char *password,
    size_t pwlen);

/*
 * The stored hash of login (NUL-terminated), as libsodium reads it
 * ("$argon2id$v=19$m=...", without the scheme prefix), or NULL when the
 * login is not in the file.  The string lives in db's read-only guarded
 * memory as long as db.  For binding something to the hash (the auth
 * cache): it is no password check, and it costs a lookup, not Argon2id.
 */
const char *passwd_stored(const struct passwd_db *db, const char *login);

/*
 * Hash password (len bytes) with Argon2id at libsodium's interactive limits
 * (m=65536 KiB, t=2, p=1) and a random salt, into out as
 * "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$SALT$HASH" (the format of
 * `doveadm pw -s ARGON2ID`).  outlen must be at least PASSWD_HASH_MAX.
 * Returns 0, or -1 (outlen too small, out of memory; out is then "").
 */
int passwd_hash(const char *password, size_t len, char *out, size_t outlen);

#endif
