/*
 * keeper_lab.h — a real keeper process for the unit tests of the keeper
 * (test_keeper*.c): a temporary directory (dir) with keys, self-signed
 * certificates and password files made at run time, a configuration
 * around them, spawning and reaping, and AUTH checks through front's
 * client.  Header-only (static inline: each test uses what it needs);
 * include after cmocka, config.h, keeper.h, keeper_client.h, GnuTLS and
 * unit_sandbox.h.
 */
#ifndef KEEPER_LAB_H
#define KEEPER_LAB_H

static char dir[64];
static char passwd_path[128];

static inline void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static inline void
dpath(char *out, size_t outlen, const char *name)
{
	snprintf(out, outlen, "%s/%s", dir, name);
}

/* NAME.key (mode) and a self-signed NAME.crt for it. */
static inline void
make_key_cert(const char *name, gnutls_pk_algorithm_t alg, unsigned bits, mode_t mode)
{
	gnutls_x509_privkey_t k;
	gnutls_x509_crt_t crt;
	gnutls_datum_t pem;
	unsigned char serial[1] = { 7 };
	char p[160];
	time_t now = time(NULL);

	assert_int_equal(gnutls_x509_privkey_init(&k), 0);
	assert_int_equal(gnutls_x509_privkey_generate(k, alg, bits, 0), 0);
	assert_int_equal(gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM, NULL,
	    GNUTLS_PKCS_PLAIN, &pem), 0);
	snprintf(p, sizeof(p), "%s/%s.key", dir, name);
	write_file(p, pem.data, pem.size, mode);
	gnutls_free(pem.data);

	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
	assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 3600), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 86400), 0);
	assert_int_equal(gnutls_x509_crt_set_dn(crt, "CN=mail.lab.test", NULL), 0);
	assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME,
	    "mail.lab.test", 13, GNUTLS_FSAN_SET), 0);
	assert_int_equal(gnutls_x509_crt_set_key(crt, k), 0);
	assert_int_equal(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
	assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, 0, -1), 0);
	assert_int_equal(gnutls_x509_crt_sign2(crt, crt, k, alg == GNUTLS_PK_EDDSA_ED25519 ?
	    GNUTLS_DIG_SHA512 : GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem), 0);
	snprintf(p, sizeof(p), "%s/%s.crt", dir, name);
	write_file(p, pem.data, pem.size, 0644);
	gnutls_free(pem.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(k);
}

/* A configuration for a keeper with NAME.key and passwd; tls, auth and
 * limits: more lines of [tls], [auth] and [limits] ("" for none). */
static inline struct config *
make_config_tls(const char *keyname, const char *passwd, const char *tls, const char *auth,
    const char *limits)
{
	char buf[4096], err[512], key[160];
	struct config *cfg;

	snprintf(key, sizeof(key), "%s/%s.key", dir, keyname);
	snprintf(buf, sizeof(buf),
	    "[server]\nhostname = mail.lab.test\n%s"
	    "[listen \"a\"]\naddress = 127.0.0.1:1\ntls = implicit\n"
	    "[tls]\ncertificate = /c\nkey = %s\n%s[auth]\npasswd-file = %s\n%s"
	    "[relay \"r\"]\nhost = relay.lab.test\ntlsa = \"3 1 1 "
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n"
	    "[dkim \"lab.test\"]\nkey = s /dkim.key\n[limits]\n%s", unit_server_keys, key,
	    tls, passwd, auth, limits);
	cfg = config_parse_buffer("test", buf, strlen(buf), NULL, 0, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	return cfg;
}

static inline struct config *
make_config_with(const char *keyname, const char *passwd, const char *auth, const char *limits)
{
	return make_config_tls(keyname, passwd, "", auth, limits);
}

/* The tests' default: two Argon2id workers, whatever the machine has. */
static inline struct config *
make_config(const char *keyname, const char *passwd)
{
	return make_config_with(keyname, passwd, "workers = 2\n", "");
}

/* A keeper for cfg with nslots client slots (fds[0..nslots)); fails the
 * test if it does not start. */
static inline pid_t
spawn_cfg(const struct config *cfg, size_t nslots, struct keeper_fds *fds)
{
	char err[512];
	pid_t pid = keeper_spawn(cfg, nslots, 30, fds, err, sizeof(err));

	if (pid < 0)
		fail_msg("keeper_spawn: %s", err);
	return pid;
}

static inline pid_t
spawn_with(const char *keyname, const char *passwd, size_t nslots, struct keeper_fds *fds,
    char *err, size_t errlen)
{
	struct config *cfg = make_config(keyname, passwd);
	pid_t pid = keeper_spawn(cfg, nslots, 30, fds, err, errlen);

	config_free(&cfg);
	return pid;
}

/* A keeper with nslots client slots (fds[0..nslots)). */
static inline pid_t
spawn_slots(const char *keyname, size_t nslots, struct keeper_fds *fds)
{
	char err[512];
	pid_t pid = spawn_with(keyname, passwd_path, nslots, fds, err, sizeof(err));

	if (pid < 0)
		fail_msg("keeper_spawn: %s", err);
	return pid;
}

static inline pid_t
spawn(const char *keyname, struct keeper_fds *fds)
{
	return spawn_slots(keyname, 1, fds);
}

static inline int
reap(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	return status;
}

static inline void
stop(pid_t pid)
{
	kill(pid, SIGKILL);
	reap(pid);
}

/* ---- AUTH through the client ---- */

struct ares {
	int done, result;
	unsigned int flags;
};

static inline void
on_auth(void *arg, int result, unsigned int flags)
{
	struct ares *r = arg;

	r->done++;
	r->result = result;
	r->flags = flags;
}

static int dead_calls __attribute__((unused));

static inline void
on_dead(void *arg)
{
	dead_calls++;
}

static inline void
run_until(struct event_base *base, const int *flag, int want)
{
	int i;

	for (i = 0; i < 1000 && *flag < want; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(5000);
}

/* One check, waited for: its result, and its flags in *flags_r (may be
 * NULL). */
static inline int
auth1f(struct event_base *base, struct keeper_client *kc, const char *login, const char *pw,
    size_t pwlen, const char *peer, unsigned int *flags_r)
{
	struct ares r = { 0, -9, 0 };

	assert_non_null(keeper_auth(kc, login, pw, pwlen, peer, on_auth, &r));
	assert_int_equal(r.done, 0);    /* never synchronous */
	run_until(base, &r.done, 1);
	assert_int_equal(r.done, 1);
	if (flags_r != NULL)
		*flags_r = r.flags;
	return r.result;
}

static inline int
auth1(struct event_base *base, struct keeper_client *kc, const char *login, const char *pw,
    size_t pwlen, const char *peer)
{
	return auth1f(base, kc, login, pw, pwlen, peer, NULL);
}

/* setup(): a fresh dir with ec256.key/.crt (ECDSA P-256) and passwd_path:
 * alice (password "al\0ce\xff": a NUL and an 8-bit octet) and bob
 * ("bobpw"), Argon2id at the interactive cost.  name: the dir's prefix. */
static inline void
keeper_lab_setup(const char *name)
{
	char h1[PASSWD_HASH_MAX], h2[PASSWD_HASH_MAX], buf[1024];

	log_init("test", LOG_LVL_ERR);
	snprintf(dir, sizeof(dir), "/tmp/%s.XXXXXX", name);
	assert_non_null(mkdtemp(dir));
	assert_int_equal(unit_sandbox_setup(), 0);
	make_key_cert("ec256", GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
	    0600);
	assert_int_equal(passwd_hash("al\0ce\xff", 6, h1, sizeof(h1)), 0);
	assert_int_equal(passwd_hash("bobpw", 5, h2, sizeof(h2)), 0);
	snprintf(buf, sizeof(buf), "# test users\nalice:%s\nbob:%s::extra\n", h1, h2);
	dpath(passwd_path, sizeof(passwd_path), "passwd");
	write_file(passwd_path, buf, strlen(buf), 0600);
}

/* teardown(): the dir and the sandbox's chroot go. */
static inline int
keeper_lab_teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 && unit_sandbox_teardown() == 0 ? 0 : -1;
}

/* The result of an AUTH_REP (the test fails if it does not decode), its
 * flags in *flags_r (may be NULL). */
static inline int
rep_result(const struct proc_msg *m, unsigned int *flags_r)
{
	unsigned int flags;
	int result;

	assert_int_equal(m->type, PROC_AUTH_REP);
	assert_int_equal(keeper_auth_rep_decode(m->payload, m->len, &result, &flags), 0);
	if (flags_r != NULL)
		*flags_r = flags;
	return result;
}

#endif
