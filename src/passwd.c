/*
 * passwd.c — Dovecot-compatible passwd-file with {ARGON2ID} hashes only.
 *
 * Loading reads the whole file (bounded), checks every line, copies each
 * hash into a fixed slot of crypto_pwhash_STRBYTES octets in one guarded
 * sodium_malloc block (libsodium reads that many octets), wipes the read
 * buffer and sorts the logins for lookup.
 */
#include "passwd.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define SCHEME          "{ARGON2ID}"
#define SCHEME_LEN      (sizeof(SCHEME) - 1)
#define SLOT            crypto_pwhash_STRBYTES

struct passwd_entry {
	char *login;
	size_t line;
	char *hash;                     /* a SLOT in db->hashes */
	size_t off, len;                /* while loading: the hash in the file */
};

struct passwd_db {
	struct passwd_entry *e;
	size_t n;
	char *hashes;                   /* sodium_malloc, n (>= 1) SLOTs */
	char *dummy;                    /* the last SLOT */
	size_t nslots;
};

int
passwd_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

size_t
passwd_db_count(const struct passwd_db *db)
{
	return db->n;
}

void
passwd_db_free(struct passwd_db **dbp)
{
	struct passwd_db *db;
	size_t i;

	if (dbp == NULL || (db = *dbp) == NULL)
		return;
	for (i = 0; i < db->n; i++)
		free(db->e[i].login);
	free(db->e);
	if (db->hashes != NULL)
		sodium_free(db->hashes);        /* wipes */
	free(db);
	*dbp = NULL;
}

/* Decimal without sign or leading zeros, at most 10 digits; returns the
 * number of characters used (0 = none). */
static size_t
pw_number(const char *s, size_t len, uint64_t *v_r)
{
	size_t i;
	uint64_t v = 0;

	for (i = 0; i < len && i < 11 && s[i] >= '0' && s[i] <= '9'; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	if (i == 0 || i > 10 || (i > 1 && s[0] == '0'))
		return 0;
	*v_r = v;
	return i;
}

static int
pw_b64char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '+' || c == '/';
}

/*
 * Check "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH" (len octets, not terminated).
 * Returns 0 with *m_r, *t_r set, or -1 with *why_r set.
 */
static int
pw_check_hash(const char *s, size_t len, uint64_t *m_r, uint64_t *t_r, const char **why_r)
{
	static const char pre[] = "$argon2id$v=19$m=";
	char slot[SLOT];
	uint64_t m, t, p;
	size_t i, k, dollars = 0;

	*why_r = "malformed Argon2id hash (expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH)";
	if (len >= SLOT) {
		*why_r = "Argon2id hash string too long";
		return -1;
	}
	if (len < sizeof(pre) - 1 || memcmp(s, pre, sizeof(pre) - 1) != 0)
		return -1;
	i = sizeof(pre) - 1;
	if ((k = pw_number(s + i, len - i, &m)) == 0)
		return -1;
	i += k;
	if (len - i < 3 || memcmp(s + i, ",t=", 3) != 0)
		return -1;
	i += 3;
	if ((k = pw_number(s + i, len - i, &t)) == 0)
		return -1;
	i += k;
	if (len - i < 3 || memcmp(s + i, ",p=", 3) != 0)
		return -1;
	i += 3;
	if ((k = pw_number(s + i, len - i, &p)) == 0)
		return -1;
	i += k;
	if (i == len || s[i] != '$')
		return -1;
	for (; i < len; i++) {
		if (s[i] == '$') {
			if (++dollars > 2 || i + 1 == len || s[i + 1] == '$')
				return -1;
		} else if (!pw_b64char(s[i]))
			return -1;
	}
	if (dollars != 2)
		return -1;
	if (p != 1) {
		*why_r = "Argon2id hash with p other than 1 (libsodium verifies p=1 only)";
		return -1;
	}
	if (m > PASSWD_MAX_MEM_KIB || t > PASSWD_MAX_TIME) {
		*why_r = "Argon2id cost above the limits (m=1048576, t=64)";
		return -1;
	}
	/* libsodium's own parser: salt and hash lengths, minimum costs */
	memset(slot, 0, sizeof(slot));
	memcpy(slot, s, len);
	if (crypto_pwhash_argon2id_str_needs_rehash(slot, crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE) < 0) {
		sodium_memzero(slot, sizeof(slot));
		*why_r = "Argon2id hash rejected by libsodium (bad salt, hash or costs)";
		return -1;
	}
	sodium_memzero(slot, sizeof(slot));
	*m_r = m;
	*t_r = t;
	return 0;
}

static int
pw_login_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > PASSWD_LOGIN_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/*
 * One line (without its LF).  Appends an entry or returns -1 with err set.
 */
static int
pw_line(const char *path, size_t lineno, const char *buf, size_t off, size_t len,
    struct passwd_entry **ev, size_t *n, size_t *cap, uint64_t *m_r, uint64_t *t_r,
    char *err, size_t errlen)
{
	const char *s = buf + off, *colon, *f;
	size_t i, flen, llen;
	const char *why;
	uint64_t m, t;
	struct passwd_entry *e;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	for (i = 0; i < len && (s[i] == ' ' || s[i] == '\t'); i++)
		;
	if (i == len || s[i] == '#')
		return 0;
	if ((colon = memchr(s, ':', len)) == NULL) {
		snprintf(err, errlen, "%s:%zu: no ':' after the login", path, lineno);
		return -1;
	}
	llen = (size_t)(colon - s);
	if (!pw_login_ok(s, llen)) {
		snprintf(err, errlen, "%s:%zu: invalid login (empty, over %d octets, or with "
		    "spaces or control characters)", path, lineno, PASSWD_LOGIN_MAX);
		return -1;
	}
	f = colon + 1;
	flen = len - llen - 1;
	if (memchr(f, ':', flen) != NULL)
		flen = (size_t)((const char *)memchr(f, ':', flen) - f);
	if (flen < SCHEME_LEN || ascii_ncasecmp(f, SCHEME, SCHEME_LEN) != 0) {
		snprintf(err, errlen, "%s:%zu: only {ARGON2ID} hashes are accepted", path,
		    lineno);
		return -1;
	}
	if (pw_check_hash(f + SCHEME_LEN, flen - SCHEME_LEN, &m, &t, &why) < 0) {
		snprintf(err, errlen, "%s:%zu: %s", path, lineno, why);
		return -1;
	}
	if (*n == 0) {
		*m_r = m;
		*t_r = t;
	}
	if (*n == *cap) {
		*cap = *cap == 0 ? 16 : *cap * 2;
		*ev = xreallocarray(*ev, *cap, sizeof(**ev));
	}
	e = &(*ev)[(*n)++];
	e->login = xstrndup(s, llen);
	e->line = lineno;
	e->hash = NULL;
	e->off = (size_t)(f + SCHEME_LEN - buf);
	e->len = flen - SCHEME_LEN;
	return 0;
}

static int
pw_cmp(const void *a, const void *b)
{
	const struct passwd_entry *x = a, *y = b;
	int c = strcmp(x->login, y->login);

	if (c != 0)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Read the whole file after the checks on its type, mode and size. */
static char *
pw_read(const char *path, size_t *len_r, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t have = 0, cap;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		snprintf(err, errlen, "cannot open passwd file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot stat passwd file %s: %s", path, strerror(errno));
		goto err;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "passwd file %s is not a regular file", path);
		goto err;
	}
	if ((st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) != 0) {
		snprintf(err, errlen, "passwd file %s has mode %04o: group or other may read or "
		    "write the password hashes; fix with: chmod 0600 %s",
		    path, (unsigned)(st.st_mode & 07777), path);
		goto err;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > PASSWD_FILE_MAX) {
		snprintf(err, errlen, "passwd file %s is larger than %u MiB", path,
		    PASSWD_FILE_MAX / (1024 * 1024));
		goto err;
	}
	cap = (size_t)st.st_size + 1;
	buf = xmalloc(cap);
	for (;;) {
		r = read(fd, buf + have, cap - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "cannot read passwd file %s: %s", path,
			    strerror(errno));
			goto err;
		}
		if (r == 0)
			break;
		have += (size_t)r;
		if (have == cap) {
			snprintf(err, errlen, "passwd file %s grew while being read", path);
			goto err;
		}
	}
	close(fd);
	*len_r = have;
	return buf;
err:
	if (buf != NULL) {
		sodium_memzero(buf, cap);
		free(buf);
	}
	close(fd);
	return NULL;
}

/* Create the dummy hash for unknown logins into the last slot. */
static int
pw_dummy(struct passwd_db *db, uint64_t m, uint64_t t)
{
	unsigned char pw[32];
	int rv;

	randombytes_buf(pw, sizeof(pw));
	rv = crypto_pwhash_str_alg(db->dummy, (const char *)pw, sizeof(pw),
	    (unsigned long long)t, (size_t)m * 1024, crypto_pwhash_ALG_ARGON2ID13);
	sodium_memzero(pw, sizeof(pw));
	return rv;
}

/*
 * Read and check the file: a database with its entries but no dummy hash
 * yet (its slot is reserved), and the first entry's cost in *m_r, *t_r.
 */
static struct passwd_db *
pw_parse(const char *path, uint64_t *m_r, uint64_t *t_r, char *err, size_t errlen)
{
	struct passwd_db *db;
	struct passwd_entry *ev = NULL;
	size_t n = 0, cap = 0, len = 0, off, end, lineno, i, dupline = 0, firstline = 0;
	const char *duplogin = NULL;
	uint64_t m = crypto_pwhash_MEMLIMIT_INTERACTIVE / 1024;
	uint64_t t = crypto_pwhash_OPSLIMIT_INTERACTIVE;
	char *buf, *nl;

	if (passwd_init() < 0) {
		snprintf(err, errlen, "libsodium cannot be initialised");
		return NULL;
	}
	if ((buf = pw_read(path, &len, err, errlen)) == NULL)
		return NULL;
	db = xcalloc(1, sizeof(*db));
	for (off = 0, lineno = 1; off < len; off = end + 1, lineno++) {
		nl = memchr(buf + off, '\n', len - off);
		end = nl != NULL ? (size_t)(nl - buf) : len;
		if (pw_line(path, lineno, buf, off, end - off, &ev, &n, &cap, &m, &t, err,
		    errlen) < 0)
			goto err;
	}

	/* the hashes into guarded memory, one slot each, plus the dummy */
	db->nslots = n + 1;
	if ((db->hashes = sodium_allocarray(db->nslots, SLOT)) == NULL) {
		snprintf(err, errlen, "passwd file %s: out of guarded memory", path);
		goto err;
	}
	memset(db->hashes, 0, db->nslots * SLOT);
	for (i = 0; i < n; i++) {
		ev[i].hash = db->hashes + i * SLOT;
		memcpy(ev[i].hash, buf + ev[i].off, ev[i].len);
		ev[i].off = ev[i].len = 0;
	}
	db->dummy = db->hashes + n * SLOT;
	sodium_memzero(buf, len);
	free(buf);
	buf = NULL;
	db->e = ev;
	db->n = n;
	ev = NULL;

	/* sorted by login, then line: a duplicate group's first element is
	 * the original; report the earliest duplicate line */
	if (db->n > 0)
		qsort(db->e, db->n, sizeof(*db->e), pw_cmp);
	for (i = 1; i < db->n; i++) {
		if (strcmp(db->e[i - 1].login, db->e[i].login) == 0 &&
		    (duplogin == NULL || db->e[i].line < dupline)) {
			duplogin = db->e[i].login;
			dupline = db->e[i].line;
			firstline = db->e[i - 1].line;
		}
	}
	if (duplogin != NULL) {
		snprintf(err, errlen, "%s:%zu: duplicate login \"%s\" (first on line %zu)", path,
		    dupline, duplogin, firstline);
		goto err;
	}
	*m_r = m;
	*t_r = t;
	return db;
err:
	if (buf != NULL) {
		sodium_memzero(buf, len);
		free(buf);
	}
	if (ev != NULL) {
		for (i = 0; i < n; i++)
			free(ev[i].login);
		free(ev);
	}
	passwd_db_free(&db);
	return NULL;
}

struct passwd_db *
passwd_load(const char *path, char *err, size_t errlen)
{
	struct passwd_db *db;
	uint64_t m, t;

	if ((db = pw_parse(path, &m, &t, err, errlen)) == NULL)
		return NULL;
	if (pw_dummy(db, m, t) != 0) {
		snprintf(err, errlen, "passwd file %s: cannot create the dummy hash "
		    "(out of memory?)", path);
		passwd_db_free(&db);
		return NULL;
	}
	sodium_mprotect_readonly(db->hashes);
	return db;
}

long
passwd_check(const char *path, char *err, size_t errlen)
{
	struct passwd_db *db;
	uint64_t m, t;
	long n;

	if ((db = pw_parse(path, &m, &t, err, errlen)) == NULL)
		return -1;
	n = (long)db->n;
	passwd_db_free(&db);
	return n;
}

static int
pw_lookup_cmp(const void *key, const void *elem)
{
	const struct passwd_entry *e = elem;

	return strcmp(key, e->login);
}

static const struct passwd_entry *
pw_lookup(const struct passwd_db *db, const char *login)
{
	if (login == NULL || db->n == 0)
		return NULL;
	return bsearch(login, db->e, db->n, sizeof(*db->e), pw_lookup_cmp);
}

const char *
passwd_stored(const struct passwd_db *db, const char *login)
{
	const struct passwd_entry *e = pw_lookup(db, login);

	return e != NULL ? e->hash : NULL;
}

int
passwd_verify(const struct passwd_db *db, const char *login, const char *password,
    size_t pwlen)
{
	const struct passwd_entry *e = pw_lookup(db, login);
	const char *hash;
	int rv;

	hash = e != NULL ? e->hash : db->dummy;
	rv = crypto_pwhash_str_verify(hash, password, (unsigned long long)pwlen);
	return e != NULL && rv == 0 ? 1 : 0;
}

int
passwd_hash(const char *password, size_t len, char *out, size_t outlen)
{
	char h[crypto_pwhash_STRBYTES];

	if (outlen > 0)
		out[0] = '\0';
	if (outlen < PASSWD_HASH_MAX || passwd_init() < 0)
		return -1;
	if (crypto_pwhash_str_alg(h, password, (unsigned long long)len,
	    crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
	    crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -1;
	snprintf(out, outlen, "%s%s", SCHEME, h);
	sodium_memzero(h, sizeof(h));
	return 0;
}
