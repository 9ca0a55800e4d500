/* test_passwd.c — passwd-file loading, checks and Argon2id round trips. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <sodium.h>

#include "passwd.h"

/* The reference implementation's Argon2id test vector (phc-winner-argon2
 * src/test.c): password "password", salt "somesalt", m=256, t=2, p=1. */
#define REF_HASH "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
#define REF_HASH_P2 "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc"

static char tmpdir[64];
static char fastpw[2][128];    /* fast hashes (m=8 KiB, t=1) of "alpha" and "beta" */

static int
setup(void **st)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_passwd.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	if (passwd_init() < 0)
		return -1;
	if (crypto_pwhash_str_alg(fastpw[0], "alpha", 5, 1, 8192, crypto_pwhash_ALG_ARGON2ID13) != 0 ||
	    crypto_pwhash_str_alg(fastpw[1], "beta", 4, 1, 8192, crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -1;
	return 0;
}

static int
teardown(void **st)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Write content to tmpdir/name with mode; returns the path (static). */
static const char *
write_file(const char *name, const char *content, mode_t mode)
{
	static char path[128];
	size_t len = strlen(content);
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void
expect_load_error(const char *path, const char *expected)
{
	char err[512] = "";
	struct passwd_db *db;

	db = passwd_load(path, err, sizeof(err));
	assert_null(db);
	assert_string_equal(err, expected);
	/* the self-audit's check refuses the same file in the same words */
	err[0] = '\0';
	assert_int_equal(passwd_check(path, err, sizeof(err)), -1);
	assert_string_equal(err, expected);
}

static void
t_good(void **st)
{
	char content[2048], err[256] = "";
	struct passwd_db *db;
	const char *path;

	snprintf(content, sizeof(content),
	    "# users of example.org\n"
	    "\n"
	    "   \t\n"
	    "  # indented comment\n"
	    "alice@example.org:{ARGON2ID}%s:1000:1000::/home/alice::userdb_quota_rule=*:bytes=1G\n"
	    "bob:{argon2id}%s\r\n"
	    "ref:{ARGON2ID}" REF_HASH,             /* no final newline */
	    fastpw[0], fastpw[1]);
	path = write_file("good", content, 0600);
	db = passwd_load(path, err, sizeof(err));
	assert_non_null(db);
	assert_string_equal(err, "");
	assert_int_equal(passwd_db_count(db), 3);
	assert_int_equal(passwd_check(path, err, sizeof(err)), 3);

	assert_int_equal(passwd_verify(db, "alice@example.org", "alpha", 5), 1);
	assert_int_equal(passwd_verify(db, "bob", "beta", 4), 1);
	assert_int_equal(passwd_verify(db, "ref", "password", 8), 1);
	/* wrong passwords */
	assert_int_equal(passwd_verify(db, "alice@example.org", "beta", 4), 0);
	assert_int_equal(passwd_verify(db, "alice@example.org", "alph", 4), 0);
	assert_int_equal(passwd_verify(db, "alice@example.org", "alpha\0", 6), 0);
	assert_int_equal(passwd_verify(db, "alice@example.org", "", 0), 0);
	assert_int_equal(passwd_verify(db, "bob", "alpha", 5), 0);
	/* unknown logins: exact bytes, no case folding, no prefixes */
	assert_int_equal(passwd_verify(db, "carol", "alpha", 5), 0);
	assert_int_equal(passwd_verify(db, "Bob", "beta", 4), 0);
	assert_int_equal(passwd_verify(db, "bo", "beta", 4), 0);
	assert_int_equal(passwd_verify(db, "alice", "alpha", 5), 0);
	assert_int_equal(passwd_verify(db, "", "", 0), 0);
	assert_int_equal(passwd_verify(db, NULL, "alpha", 5), 0);
	/* the extra fields are not part of anything */
	assert_int_equal(passwd_verify(db, "1000", "alpha", 5), 0);
	/* the stored hashes (for the auth cache), without the scheme, exactly
	 * as written; none for unknown logins */
	assert_string_equal(passwd_stored(db, "ref"), REF_HASH);
	assert_string_equal(passwd_stored(db, "bob"), fastpw[1]);
	assert_null(passwd_stored(db, "carol"));
	assert_null(passwd_stored(db, "Bob"));
	assert_null(passwd_stored(db, NULL));

	passwd_db_free(&db);
	assert_null(db);
	passwd_db_free(&db);
	passwd_db_free(NULL);
}

static void
t_empty(void **st)
{
	char err[256] = "";
	struct passwd_db *db;
	const char *path;

	path = write_file("empty", "# nobody yet\n\n", 0600);
	db = passwd_load(path, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(passwd_db_count(db), 0);
	assert_int_equal(passwd_verify(db, "alice", "alpha", 5), 0);
	passwd_db_free(&db);
	path = write_file("empty0", "", 0600);
	db = passwd_load(path, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(passwd_db_count(db), 0);
	passwd_db_free(&db);
}

struct bad_line {
	const char *line;       /* %s = a good fast hash */
	const char *msg;
};

static void
t_bad_lines(void **st)
{
	static const struct bad_line bad[] = {
		{ "carol:{PLAIN}secret", "only {ARGON2ID} hashes are accepted" },
		{ "carol:{SHA512-CRYPT}$6$salt$abc", "only {ARGON2ID} hashes are accepted" },
		{ "carol:{ARGON2I}$argon2i$v=19$m=8,t=1,p=1$c29tZXNhbHQ$abc",
		  "only {ARGON2ID} hashes are accepted" },
		{ "carol:%s", "only {ARGON2ID} hashes are accepted" },    /* no scheme */
		{ "carol:", "only {ARGON2ID} hashes are accepted" },
		{ "carol::{ARGON2ID}%s", "only {ARGON2ID} hashes are accepted" },
		{ "carol: {ARGON2ID}%s", "only {ARGON2ID} hashes are accepted" },
		{ "carol", "no ':' after the login" },
		{ ":{ARGON2ID}%s", "invalid login (empty, over 255 octets, or with spaces or "
		  "control characters)" },
		{ "car ol:{ARGON2ID}%s", "invalid login (empty, over 255 octets, or with spaces "
		  "or control characters)" },
		{ " carol:{ARGON2ID}%s", "invalid login (empty, over 255 octets, or with spaces "
		  "or control characters)" },
		{ "car\x01ol:{ARGON2ID}%s", "invalid login (empty, over 255 octets, or with "
		  "spaces or control characters)" },
		{ "carol:{ARGON2ID}", "malformed Argon2id hash (expected "
		  "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH)" },
		{ "carol:{ARGON2ID}$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$abc",
		  "malformed Argon2id hash (expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH)" },
		{ "carol:{ARGON2ID}$argon2id$v=16$m=256,t=2,p=1$c29tZXNhbHQ$abc",
		  "malformed Argon2id hash (expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH)" },
		{ "carol:{ARGON2ID}$argon2id$v=19$m=256,t=2$c29tZXNhbHQ$abc",
		  "malformed Argon2id hash (expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH)" },
		{ "carol:{ARGON2ID}$argon2id$v=19$m=0256,t=2,p=1$c29tZXNhbHQ$abc",
		  "malformed Argon2id hash (expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH)" },
		{ "carol:{ARGON2ID}$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ",
		  "malformed Argon2id hash (expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH)" },
		{ "carol:{ARGON2ID}$argon2id$v=19$m=256,t=2,p=1$c29t!XNhbHQ$abcd",
		  "malformed Argon2id hash (expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH)" },
		{ "carol:{ARGON2ID}$argon2id$v=19$m=256,t=2,p=1$$abcd",
		  "malformed Argon2id hash (expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH)" },
		{ "carol:{ARGON2ID}$argon2id$v=19$m=256,t=2,p=1$a$b$c",
		  "malformed Argon2id hash (expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH)" },
		{ "carol:{ARGON2ID}$argon2id$v=19$m=99999999999,t=2,p=1$c29tZXNhbHQ$abc",
		  "malformed Argon2id hash (expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH)" },
		{ "carol:{ARGON2ID}" REF_HASH_P2,
		  "Argon2id hash with p other than 1 (libsodium verifies p=1 only)" },
		{ "carol:{ARGON2ID}$argon2id$v=19$m=1048577,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		  "Argon2id cost above the limits (m=1048576, t=64)" },
		{ "carol:{ARGON2ID}$argon2id$v=19$m=256,t=65,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		  "Argon2id cost above the limits (m=1048576, t=64)" },
		/* salt of 3 octets, hash of 3 octets, m below the minimum */
		{ "carol:{ARGON2ID}$argon2id$v=19$m=256,t=2,p=1$YWJj$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		  "Argon2id hash rejected by libsodium (bad salt, hash or costs)" },
		{ "carol:{ARGON2ID}$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$YWJj",
		  "Argon2id hash rejected by libsodium (bad salt, hash or costs)" },
		{ "carol:{ARGON2ID}$argon2id$v=19$m=1,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		  "Argon2id hash rejected by libsodium (bad salt, hash or costs)" },
		{ "carol:{ARGON2ID}$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$"
		  "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
		  "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		  "Argon2id hash string too long" },
	};
	char line[512], content[2048], expected[1024];
	const char *path;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *pct = strstr(bad[i].line, "%s");

		if (pct != NULL)
			snprintf(line, sizeof(line), "%.*s%s%s", (int)(pct - bad[i].line),
			    bad[i].line, fastpw[1], pct + 2);
		else
			snprintf(line, sizeof(line), "%s", bad[i].line);
		snprintf(content, sizeof(content), "# header\nalice:{ARGON2ID}%s\n%s\nbob:{ARGON2ID}%s\n",
		    fastpw[0], line, fastpw[1]);
		path = write_file("bad", content, 0600);
		snprintf(expected, sizeof(expected), "%s:3: %s", path, bad[i].msg);
		{
			char err[512] = "";

			assert_null(passwd_load(path, err, sizeof(err)));
			if (strcmp(err, expected) != 0)
				fail_msg("bad line %zu: got \"%s\", want \"%s\"", i, err, expected);
			err[0] = '\0';
			assert_int_equal(passwd_check(path, err, sizeof(err)), -1);
			if (strcmp(err, expected) != 0)
				fail_msg("bad line %zu (check): got \"%s\", want \"%s\"", i, err,
				    expected);
		}
	}

	/* a login of 255 octets is fine, 256 is not */
	memset(line, 'x', 256);
	snprintf(content, sizeof(content), "%.255s:{ARGON2ID}%s\n", line, fastpw[0]);
	{
		char err[256];
		struct passwd_db *db;

		path = write_file("longlogin", content, 0600);
		db = passwd_load(path, err, sizeof(err));
		assert_non_null(db);
		line[255] = '\0';
		assert_int_equal(passwd_verify(db, line, "alpha", 5), 1);
		passwd_db_free(&db);
	}
	memset(line, 'x', 256);
	snprintf(content, sizeof(content), "%.256s:{ARGON2ID}%s\n", line, fastpw[0]);
	path = write_file("longlogin", content, 0600);
	snprintf(expected, sizeof(expected), "%s:1: invalid login (empty, over 255 octets, or with "
	    "spaces or control characters)", path);
	expect_load_error(path, expected);

	/* a NUL byte in the file */
	{
		char buf[256];
		int fd, n;

		path = write_file("nul", "", 0600);
		n = snprintf(buf, sizeof(buf), "ali%cce:{ARGON2ID}%s\n", 0, fastpw[0]);
		fd = open(path, O_WRONLY);
		assert_int_equal(write(fd, buf, (size_t)n), n);
		close(fd);
		snprintf(expected, sizeof(expected), "%s:1: invalid login (empty, over 255 octets, "
		    "or with spaces or control characters)", path);
		expect_load_error(path, expected);
	}
}

static void
t_duplicate(void **st)
{
	char content[2048], expected[512];
	const char *path;

	snprintf(content, sizeof(content),
	    "alice:{ARGON2ID}%s\nbob:{ARGON2ID}%s\n# x\nbob:{ARGON2ID}%s\nalice:{ARGON2ID}%s\n"
	    "bob:{ARGON2ID}%s\n",
	    fastpw[0], fastpw[1], fastpw[0], fastpw[0], fastpw[1]);
	path = write_file("dup", content, 0600);
	snprintf(expected, sizeof(expected), "%s:4: duplicate login \"bob\" (first on line 2)", path);
	expect_load_error(path, expected);

	snprintf(content, sizeof(content), "alice:{ARGON2ID}%s\nbob:{ARGON2ID}%s\nalice:{ARGON2ID}%s\n",
	    fastpw[0], fastpw[1], fastpw[0]);
	path = write_file("dup", content, 0600);
	snprintf(expected, sizeof(expected), "%s:3: duplicate login \"alice\" (first on line 1)", path);
	expect_load_error(path, expected);
}

static void
t_mode(void **st)
{
	static const mode_t refused[] = { 0644, 0640, 0604, 0620, 0602, 0660, 0666, 0777 };
	static const mode_t accepted[] = { 0600, 0400, 0700 };
	char content[512], expected[512], err[512];
	struct passwd_db *db;
	const char *path;
	size_t i;

	snprintf(content, sizeof(content), "alice:{ARGON2ID}%s\n", fastpw[0]);
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		path = write_file("mode", content, refused[i]);
		snprintf(expected, sizeof(expected), "passwd file %s has mode %04o: group or other "
		    "may read or write the password hashes; fix with: chmod 0600 %s", path,
		    (unsigned)refused[i], path);
		expect_load_error(path, expected);
	}
	for (i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
		path = write_file("mode", content, accepted[i]);
		db = passwd_load(path, err, sizeof(err));
		assert_non_null(db);
		assert_int_equal(passwd_verify(db, "alice", "alpha", 5), 1);
		passwd_db_free(&db);
	}
}

static void
t_file_errors(void **st)
{
	char path[256], expected[512];
	int fd;

	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	snprintf(expected, sizeof(expected), "cannot open passwd file %s: %s", path,
	    strerror(ENOENT));
	expect_load_error(path, expected);

	snprintf(path, sizeof(path), "%s/dir", tmpdir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(expected, sizeof(expected), "passwd file %s is not a regular file", path);
	expect_load_error(path, expected);

	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(expected, sizeof(expected), "passwd file %s is not a regular file", path);
	expect_load_error(path, expected);

	snprintf(path, sizeof(path), "%s/huge", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)PASSWD_FILE_MAX + 1), 0);
	close(fd);
	snprintf(expected, sizeof(expected), "passwd file %s is larger than 16 MiB", path);
	expect_load_error(path, expected);

	/* a small error buffer truncates, never overflows */
	{
		char err[8];

		memset(err, 'z', sizeof(err));
		assert_null(passwd_load(path, err, sizeof(err)));
		assert_string_equal(err, "passwd ");
	}
}

static void
t_hash_roundtrip(void **st)
{
	static const char prefix[] = "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$";
	char out[PASSWD_HASH_MAX], content[512], err[256];
	struct passwd_db *db;
	const char *path;

	assert_int_equal(passwd_hash("s3cret:pw", 9, out, sizeof(out)), 0);
	assert_memory_equal(out, prefix, sizeof(prefix) - 1);
	assert_true(strlen(out) < sizeof(out));
	/* the format libsodium itself accepts, after the scheme */
	assert_int_equal(crypto_pwhash_str_verify(out + 10, "s3cret:pw", 9), 0);

	snprintf(content, sizeof(content), "alice:{ARGON2ID}%s\nuser@example.org:%s\n",
	    fastpw[0], out);
	path = write_file("roundtrip", content, 0600);
	db = passwd_load(path, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(passwd_verify(db, "user@example.org", "s3cret:pw", 9), 1);
	assert_int_equal(passwd_verify(db, "user@example.org", "s3cret:pW", 9), 0);
	assert_int_equal(passwd_verify(db, "alice", "s3cret:pw", 9), 0);
	passwd_db_free(&db);

	/* too small an output buffer */
	memset(out, 'z', sizeof(out));
	assert_int_equal(passwd_hash("x", 1, out, PASSWD_HASH_MAX - 1), -1);
	assert_string_equal(out, "");
	assert_int_equal(passwd_hash("x", 1, out, 0), -1);
}

/* What `doveadm pw -s ARGON2ID` writes: "{ARGON2ID}" + crypto_pwhash_str(). */
static void
t_dovecot_format(void **st)
{
	char h[crypto_pwhash_STRBYTES], content[1024], err[256];
	struct passwd_db *db;
	const char *path;

	assert_int_equal(crypto_pwhash_str(h, "dovecot", 7, crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE), 0);
	assert_non_null(strstr(h, "$argon2id$v=19$m=65536,t=2,p=1$"));
	snprintf(content, sizeof(content),
	    "ref:{ARGON2ID}" REF_HASH ":::\n"
	    "dove:{ARGON2ID}%s::::::\n", h);
	path = write_file("dovecot", content, 0600);
	db = passwd_load(path, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(passwd_db_count(db), 2);
	assert_int_equal(passwd_verify(db, "dove", "dovecot", 7), 1);
	assert_int_equal(passwd_verify(db, "dove", "Dovecot", 7), 0);
	/* the reference vector, with m=256 t=2: written by another implementation */
	assert_int_equal(passwd_verify(db, "ref", "password", 8), 1);
	assert_int_equal(passwd_verify(db, "ref", "passwore", 8), 0);
	assert_int_equal(passwd_verify(db, "nobody", "password", 8), 0);
	passwd_db_free(&db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_good),
		cmocka_unit_test(t_empty),
		cmocka_unit_test(t_bad_lines),
		cmocka_unit_test(t_duplicate),
		cmocka_unit_test(t_mode),
		cmocka_unit_test(t_file_errors),
		cmocka_unit_test(t_hash_roundtrip),
		cmocka_unit_test(t_dovecot_format),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
