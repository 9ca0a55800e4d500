/* Unit tests of the keeper's key workers (keeper.c, keeper_key.c): a real
 * keeper with an RSA-2048 key made now and [tls] key-workers = 1, many
 * client slots on the raw sockets.  An AUTH answered from the cache is not
 * held behind queued key operations (the main thread does not sign); the
 * keeper killed with key operations waiting and running: every answer that
 * got out is whole and verifies, every slot then sees the end, and front's
 * client fails its signature and reports the loss once.  An ECDSA P-256
 * key (signed by OpenSSL for SHA-256, by GnuTLS otherwise) on the main
 * thread and on two key workers: every signature verifies, random nonces
 * differ, the deterministic flag still gives one signature, a hash of the
 * wrong length is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <event2/event.h>
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "config.h"
#include "keeper.h"
#include "keeper_client.h"
#include "log.h"
#include "passwd.h"
#include "proc.h"
#include "unit_sandbox.h"
#include "keeper_lab.h"

#define NSLOTS  128     /* slots, each with one key operation queued */

static struct keeper_fds fds[NSLOTS];
static const uint8_t digest[32] = { 0x5a, 1, 2, 3 };

static int
setup(void **state)
{
	struct rlimit rl;

	keeper_lab_setup("test_keeper_tls");
	make_key_cert("rsa", GNUTLS_PK_RSA, 2048, 0600);
	make_key_cert("ec256", GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
	    0600);
	/* two descriptors per slot, and the keeper's copies while it forks */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 4 * NSLOTS + 64 && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	return 0;
}

static int
teardown(void **state)
{
	return keeper_lab_teardown();
}

/* A keeper with the RSA key, one key worker and one Argon2id worker. */
static pid_t
spawn_rsa(size_t nslots)
{
	struct config *cfg = make_config_tls("rsa", passwd_path, "key-workers = 1\n",
	    "workers = 1\n", "");
	pid_t pid = spawn_cfg(cfg, nslots, fds);

	config_free(&cfg);
	return pid;
}

/* A signature (algo, flags) of hash[0..len) asked on fd as request id. */
static void
ask_sign_hash(int fd, uint32_t id, int algo, unsigned int flags, const uint8_t *hash,
    size_t len)
{
	struct keeper_tls_fields f = { KEEPER_OP_SIGN_HASH, algo, flags, hash, len };
	uint8_t buf[128];
	long n = keeper_tls_req_encode(buf, sizeof(buf), &f);

	assert_true(n > 0);
	assert_int_equal(proc_send(fd, PROC_TLS_SIGN_REQ, id, buf, (size_t)n, -1), 0);
}

/* An RSA-PSS signature of digest asked on fd as request id. */
static void
ask_sign(int fd, uint32_t id)
{
	ask_sign_hash(fd, id, GNUTLS_SIGN_RSA_PSS_RSAE_SHA256, 0, digest, sizeof(digest));
}

/* The answer m to request id, whole: its status, and the signature in
 * sig (pointing into m). */
static uint32_t
answer(const struct proc_msg *m, uint32_t id, gnutls_datum_t *sig)
{
	struct proc_reader r;
	const uint8_t *s;
	uint32_t status;
	size_t slen;

	assert_int_equal(m->type, PROC_TLS_SIGN_REP);
	assert_int_equal(m->id, id);
	proc_reader_init(&r, m->payload, m->len);
	assert_int_equal(proc_get_u32(&r, &status), 0);
	assert_int_equal(proc_get_bytes(&r, &s, &slen, KEEPER_SIG_MAX), 0);
	assert_int_equal(proc_reader_end(&r), 0);
	sig->data = (unsigned char *)(uintptr_t)s;
	sig->size = (unsigned int)slen;
	return status;
}

/* Is m a whole answer to request id whose signature verifies? */
static void
check_signed(const struct proc_msg *m, uint32_t id, gnutls_pubkey_t pub)
{
	gnutls_datum_t hash = { (unsigned char *)(uintptr_t)digest, sizeof(digest) }, sig;

	assert_int_equal(answer(m, id, &sig), 0);
	assert_int_equal(gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_RSA_PSS_RSAE_SHA256, 0, &hash,
	    &sig), 0);
}

static gnutls_pubkey_t
ready_pubkey(const struct keeper_fds *f)
{
	gnutls_datum_t spki = { (unsigned char *)(uintptr_t)f->spki, (unsigned int)f->spki_len };
	gnutls_pubkey_t pub;

	assert_int_equal(gnutls_pubkey_init(&pub), 0);
	assert_int_equal(gnutls_pubkey_import(pub, &spki, GNUTLS_X509_FMT_DER), 0);
	return pub;
}

/* Has fd a message to read now? */
static int
readable(int fd)
{
	struct pollfd pfd = { fd, POLLIN, 0 };

	return poll(&pfd, 1, 0) == 1;
}

/* NSLOTS RSA signatures queued for the one key worker (each ~2 ms: a
 * quarter of a second of work at least), then an AUTH that the cache
 * answers: its answer comes while most of the signatures are still to be
 * made.  A keeper whose main thread signed would serve every key operation
 * it has read before the AUTH socket (key operations first) and answer the
 * AUTH last.  The count is a bound, not a timing: only a main thread held
 * off its CPU for longer than half the queue takes could miss it. */
static void
test_auth_not_behind_keys(void **state)
{
	static uint8_t p[128];
	static struct proc_msg m;
	struct pollfd pfd;
	gnutls_pubkey_t pub;
	unsigned int flags;
	size_t i, ready = 0;
	long n;
	pid_t pid = spawn_rsa(NSLOTS);

	pub = ready_pubkey(&fds[0]);
	/* bob's login and password in the cache (one Argon2id run) */
	n = keeper_auth_req_encode(p, sizeof(p), "bob", "bobpw", 5, "192.0.2.9");
	assert_true(n > 0);
	assert_int_equal(proc_send(fds[0].auth_fd, PROC_AUTH_REQ, 1, p, (size_t)n, -1), 0);
	pfd = (struct pollfd){ fds[0].auth_fd, POLLIN, 0 };
	assert_int_equal(poll(&pfd, 1, 30000), 1);
	assert_int_equal(proc_recv(fds[0].auth_fd, &m, NULL), 1);
	assert_int_equal(rep_result(&m, &flags), KEEPER_AUTH_OK);
	assert_int_equal(flags, 0);

	for (i = 0; i < NSLOTS; i++)
		ask_sign(fds[i].tls_fd, (uint32_t)i + 100);
	assert_int_equal(proc_send(fds[0].auth_fd, PROC_AUTH_REQ, 2, p, (size_t)n, -1), 0);
	assert_int_equal(poll(&pfd, 1, 30000), 1);
	assert_int_equal(proc_recv(fds[0].auth_fd, &m, NULL), 1);
	assert_int_equal(m.id, 2);
	assert_int_equal(rep_result(&m, &flags), KEEPER_AUTH_OK);
	assert_int_equal(flags, KEEPER_AUTH_F_CACHED);
	for (i = 0; i < NSLOTS; i++)
		ready += readable(fds[i].tls_fd);
	if (ready >= NSLOTS / 2)
		fail_msg("the cached AUTH was answered after %zu of %d queued key operations",
		    ready, NSLOTS);
	/* and every key operation is answered, signed with the key */
	for (i = 0; i < NSLOTS; i++) {
		pfd = (struct pollfd){ fds[i].tls_fd, POLLIN, 0 };
		assert_int_equal(poll(&pfd, 1, 30000), 1);
		assert_int_equal(proc_recv(fds[i].tls_fd, &m, NULL), 1);
		check_signed(&m, (uint32_t)i + 100, pub);
	}
	gnutls_pubkey_deinit(pub);
	for (i = 0; i < NSLOTS; i++)
		keeper_fds_close(&fds[i]);
	assert_int_equal(WEXITSTATUS(reap(pid)), 0);
}

#define EC_ROUNDS 16

/* One signature (algo, flags) of hash[0..len) on fd: its status, and
 * when 0 the signature, verified with pub, copied to out (*outlen). */
static uint32_t
ec_sign(int fd, gnutls_pubkey_t pub, int algo, unsigned int flags, const uint8_t *hash,
    size_t len, uint8_t *out, size_t *outlen)
{
	static struct proc_msg m;
	static uint32_t id;
	gnutls_datum_t h = { (unsigned char *)(uintptr_t)hash, (unsigned int)len }, sig;
	struct pollfd pfd = { fd, POLLIN, 0 };
	uint32_t status;

	ask_sign_hash(fd, ++id, algo, flags, hash, len);
	assert_int_equal(poll(&pfd, 1, 30000), 1);
	assert_int_equal(proc_recv(fd, &m, NULL), 1);
	if ((status = answer(&m, id, &sig)) != 0)
		return status;
	if (gnutls_pubkey_verify_hash2(pub, (gnutls_sign_algorithm_t)algo, 0, &h, &sig) != 0)
		fail_msg("%s signature %u does not verify", gnutls_sign_get_name(algo), id);
	assert_true(sig.size <= 128);
	memcpy(out, sig.data, sig.size);
	*outlen = sig.size;
	return 0;
}

/* ECDSA P-256 with tls (more [tls] lines): TLS 1.3's and 1.2's SHA-256
 * signatures (OpenSSL's) verify and no two are alike; the deterministic
 * flag (GnuTLS's) gives the same one twice; SHA-384 (GnuTLS's) verifies;
 * a hash of another length than the algorithm's is refused. */
static void
ec256_case(const char *tls)
{
	static const uint8_t h384[48] = { 0x38, 4 };
	static const int algos[] = { GNUTLS_SIGN_ECDSA_SECP256R1_SHA256, GNUTLS_SIGN_ECDSA_SHA256 };
	struct config *cfg = make_config_tls("ec256", passwd_path, tls, "workers = 1\n", "");
	uint8_t sigs[EC_ROUNDS][128], a[128], b[128];
	size_t lens[EC_ROUNDS], alen, blen, i, j, k;
	gnutls_pubkey_t pub;
	pid_t pid = spawn_cfg(cfg, 1, fds);

	config_free(&cfg);
	pub = ready_pubkey(&fds[0]);
	for (k = 0; k < 2; k++) {
		for (i = 0; i < EC_ROUNDS; i++)
			assert_int_equal(ec_sign(fds[0].tls_fd, pub, algos[k], 0, digest,
			    sizeof(digest), sigs[i], &lens[i]), 0);
		for (i = 0; i < EC_ROUNDS; i++)
			for (j = i + 1; j < EC_ROUNDS; j++)
				assert_false(lens[i] == lens[j] &&
				    memcmp(sigs[i], sigs[j], lens[i]) == 0);
	}
	assert_int_equal(ec_sign(fds[0].tls_fd, pub, GNUTLS_SIGN_ECDSA_SHA256,
	    GNUTLS_PRIVKEY_FLAG_REPRODUCIBLE, digest, sizeof(digest), a, &alen), 0);
	assert_int_equal(ec_sign(fds[0].tls_fd, pub, GNUTLS_SIGN_ECDSA_SHA256,
	    GNUTLS_PRIVKEY_FLAG_REPRODUCIBLE, digest, sizeof(digest), b, &blen), 0);
	assert_true(alen == blen && memcmp(a, b, alen) == 0);
	assert_int_equal(ec_sign(fds[0].tls_fd, pub, GNUTLS_SIGN_ECDSA_SHA384, 0, h384,
	    sizeof(h384), a, &alen), 0);
	assert_int_equal((int32_t)ec_sign(fds[0].tls_fd, pub, GNUTLS_SIGN_ECDSA_SHA256, 0, h384,
	    sizeof(h384), a, &alen), GNUTLS_E_INVALID_REQUEST);
	assert_int_equal((int32_t)ec_sign(fds[0].tls_fd, pub, GNUTLS_SIGN_ECDSA_SECP256R1_SHA256,
	    0, digest, 20, a, &alen), GNUTLS_E_INVALID_REQUEST);
	gnutls_pubkey_deinit(pub);
	keeper_fds_close(&fds[0]);
	assert_int_equal(WEXITSTATUS(reap(pid)), 0);
}

static void
test_ec256_signatures(void **state)
{
	ec256_case("");                         /* the main thread signs */
	ec256_case("key-workers = 2\n");        /* each worker with its own copies */
}

struct signer_arg {
	gnutls_privkey_t key;
	int rc;
	gnutls_datum_t sig;
};

static void *
sign_thread(void *arg)
{
	struct signer_arg *a = arg;
	gnutls_datum_t hash = { (unsigned char *)(uintptr_t)digest, sizeof(digest) };

	a->rc = gnutls_privkey_sign_hash2(a->key, GNUTLS_SIGN_RSA_PSS_RSAE_SHA256, 0, &hash,
	    &a->sig);
	return NULL;
}

/* The keeper killed with key operations waiting (one key worker, a queue of
 * RSA signatures) and, likely, one running: each raw slot gets at most one
 * answer, whole and signed, then the end of its socket; front's client
 * (slot 0, signing in a thread while this one kills) gets an error or a
 * valid signature, never a hang, and its loop reports the keeper lost
 * once. */
static void
test_killed_with_keys_queued(void **state)
{
	static struct proc_msg m;
	struct event_base *base = event_base_new();
	struct signer_arg sa = { NULL, -1, { NULL, 0 } };
	struct keeper_client *kc;
	gnutls_pubkey_t pub;
	pthread_t t;
	char err[256];
	size_t i, answered = 0;
	pid_t pid = spawn_rsa(NSLOTS / 2);

	pub = ready_pubkey(&fds[0]);
	dead_calls = 0;
	kc = keeper_client_new(base, &fds[0], 64, on_dead, NULL);
	assert_int_equal(keeper_tls_privkey(kc, &sa.key, err, sizeof(err)), 0);
	for (i = 1; i < NSLOTS / 2; i++)
		ask_sign(fds[i].tls_fd, (uint32_t)i);
	assert_int_equal(pthread_create(&t, NULL, sign_thread, &sa), 0);
	stop(pid);
	pthread_join(t, NULL);
	if (sa.rc == 0) {
		gnutls_datum_t hash = { (unsigned char *)(uintptr_t)digest, sizeof(digest) };

		assert_int_equal(gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_RSA_PSS_RSAE_SHA256,
		    0, &hash, &sa.sig), 0);
		gnutls_free(sa.sig.data);
	}
	for (i = 1; i < NSLOTS / 2; i++) {
		struct pollfd pfd = { fds[i].tls_fd, POLLIN, 0 };
		int rc;

		assert_int_equal(poll(&pfd, 1, 10000), 1);
		if ((rc = proc_recv(fds[i].tls_fd, &m, NULL)) == 1) {
			check_signed(&m, (uint32_t)i, pub);
			answered++;
			assert_int_equal(poll(&pfd, 1, 10000), 1);
			rc = proc_recv(fds[i].tls_fd, &m, NULL);
		}
		assert_true(rc == 0 || (rc < 0 && errno == ECONNRESET));
	}
	/* killed with most of the queue unsigned: it died mid-queue */
	assert_true(answered < NSLOTS / 2 - 1);
	run_until(base, &dead_calls, 1);
	assert_int_equal(dead_calls, 1);
	gnutls_privkey_deinit(sa.key);
	keeper_client_free(&kc);
	for (i = 1; i < NSLOTS / 2; i++)
		keeper_fds_close(&fds[i]);
	gnutls_pubkey_deinit(pub);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_not_behind_keys),
		cmocka_unit_test(test_killed_with_keys_queued),
		cmocka_unit_test(test_ec256_signatures),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
