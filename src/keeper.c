/*
 * keeper.c — the key keeper process: TLS private key, password hashes,
 * auth failure counters (lockout.c); serving front's requests.
 */
#include "keeper.h"

#include "config.h"
#include "lockout.h"
#include "log.h"
#include "metrics.h"
#include "passwd.h"
#include "proc.h"
#include "proc_spawn.h"
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <sodium.h>

#define KEY_FILE_MAX    (1024 * 1024)
#define QUICK_MAX       1024    /* precomputed answers waiting; beyond: stop reading */
#define RSA_MIN_BITS    2048
#define SIGN_FLAGS_OK   (GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA | GNUTLS_PRIVKEY_SIGN_FLAG_RSA_PSS | \
    GNUTLS_PRIVKEY_FLAG_REPRODUCIBLE | GNUTLS_PRIVKEY_FLAG_RSA_PSS_FIXED_SALT_LENGTH)

static struct lockout_limits lock_limits = {
	KEEPER_LOCK_LOGIN_MAX, KEEPER_LOCK_PEER_MAX, KEEPER_LOCK_WINDOW
};

void
keeper_set_lockout(unsigned int login_max, unsigned int peer_max, unsigned int window)
{
	if (login_max > 0)
		lock_limits.login_max = login_max;
	if (peer_max > 0)
		lock_limits.peer_max = peer_max;
	if (window > 0)
		lock_limits.window = window;
}

/* ---- the keeper process: its state ---- */

struct job {
	struct job *next;
	uint32_t id;
	int result;                     /* precomputed answer, or -1: check the password */
	char *pw;                       /* a guarded slot of KEEPER_PW_MAX + 1 (checks only) */
	size_t pwlen;
	char login[PASSWD_LOGIN_MAX + 1];
	char peer[KEEPER_PEER_MAX + 1];
};

static struct keeper {
	int tls_fd, auth_fd;
	gnutls_privkey_t key;
	int pk;
	unsigned int bits;
	struct passwd_db *db;
	pthread_mutex_t mu;             /* everything below */
	pthread_cond_t cv;               /* work queued */
	pthread_cond_t started;          /* a worker is running */
	unsigned int nstarted;
	struct job *quick, *quick_tail; /* answers to send, first */
	struct job *slow, *slow_tail;   /* passwords to check */
	struct job *free_slots;         /* unused check jobs */
	struct job slots[KEEPER_QUEUE_MAX];
	size_t nquick;
	struct lockout *lockout;
} K;

static uint64_t
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* Record a check's outcome (K.mu held). */
static void
record_result(const char *login, const char *peer, int ok, uint64_t now)
{
	const struct lockout_limits *lim = lockout_limits(K.lockout);
	unsigned int hit = lockout_record(K.lockout, login, peer, ok, now);
	char esc[300];

	if (hit & LOCKOUT_LOCKED_LOGIN)
		log_warn("event=auth-locked login=%s failures=%u window=%u",
		    log_escape(esc, sizeof(esc), login, strlen(login)), lim->login_max, lim->window);
	if (hit & LOCKOUT_LOCKED_PEER)
		log_warn("event=auth-locked peer=%s failures=%u window=%u",
		    log_escape(esc, sizeof(esc), peer, strlen(peer)), lim->peer_max, lim->window);
}

/* ---- AUTH: jobs and workers ---- */

static void
auth_reply(uint32_t id, int result)
{
	uint8_t buf[4];
	struct proc_writer w;

	proc_writer_init(&w, buf, sizeof(buf));
	proc_put_u32(&w, (uint32_t)result);
	if (proc_send(K.auth_fd, PROC_AUTH_REP, id, buf, sizeof(buf), -1) < 0 && errno != EPIPE) {
		log_err("keeper: cannot answer front: %s", strerror(errno));
		_exit(1);
	}
	/* EPIPE: front is gone; the main thread sees EOF and exits */
}

/* Queue a precomputed answer (K.mu held). */
static void
queue_quick(uint32_t id, int result)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->id = id;
	j->result = result;
	if (K.quick_tail != NULL)
		K.quick_tail->next = j;
	else
		K.quick = j;
	K.quick_tail = j;
	K.nquick++;
	pthread_cond_signal(&K.cv);
}

static void
run_check(struct job *j)
{
	uint64_t now = now_sec();
	int locked, ok;

	pthread_mutex_lock(&K.mu);
	locked = lockout_locked(K.lockout, j->login, j->peer, now);
	pthread_mutex_unlock(&K.mu);
	if (locked) {
		j->result = KEEPER_AUTH_LOCKED;
	} else {
		ok = passwd_verify(K.db, j->login, j->pw, j->pwlen) == 1;
		pthread_mutex_lock(&K.mu);
		record_result(j->login, j->peer, ok, now_sec());
		pthread_mutex_unlock(&K.mu);
		j->result = ok ? KEEPER_AUTH_OK : KEEPER_AUTH_FAIL;
	}
	sodium_memzero(j->pw, KEEPER_PW_MAX + 1);
}

static void *
worker(void *arg)
{
	struct job *j;

	/* running: every system call of a thread's start (rseq, ...) is done */
	pthread_mutex_lock(&K.mu);
	K.nstarted++;
	pthread_cond_broadcast(&K.started);
	pthread_mutex_unlock(&K.mu);
	for (;;) {
		pthread_mutex_lock(&K.mu);
		while (K.quick == NULL && K.slow == NULL)
			pthread_cond_wait(&K.cv, &K.mu);
		if ((j = K.quick) != NULL) {
			if ((K.quick = j->next) == NULL)
				K.quick_tail = NULL;
			K.nquick--;
			pthread_mutex_unlock(&K.mu);
			auth_reply(j->id, j->result);
			free(j);
			continue;
		}
		j = K.slow;
		if ((K.slow = j->next) == NULL)
			K.slow_tail = NULL;
		pthread_mutex_unlock(&K.mu);
		run_check(j);
		auth_reply(j->id, j->result);
		pthread_mutex_lock(&K.mu);
		j->next = K.free_slots;
		K.free_slots = j;
		pthread_mutex_unlock(&K.mu);
	}
	return NULL;
}

/* One AUTH_REQ from front: answer at once (locked, busy, malformed) or
 * queue the check.  The password is wiped from the message here. */
static void
serve_auth(struct proc_msg *m)
{
	struct keeper_auth_fields f;
	struct job *j;

	pthread_mutex_lock(&K.mu);
	if (keeper_auth_req_decode(m->payload, m->len, &f) < 0) {
		log_err("keeper: refused a malformed AUTH request id=%u (%u octets)", m->id, m->len);
		queue_quick(m->id, KEEPER_AUTH_BADREQ);
	} else if (lockout_locked(K.lockout, f.login, f.peer, now_sec())) {
		queue_quick(m->id, KEEPER_AUTH_LOCKED);
	} else if ((j = K.free_slots) == NULL) {
		queue_quick(m->id, KEEPER_AUTH_BUSY);
	} else {
		K.free_slots = j->next;
		j->next = NULL;
		j->id = m->id;
		j->result = -1;
		memcpy(j->login, f.login, sizeof(j->login));
		memcpy(j->peer, f.peer, sizeof(j->peer));
		memcpy(j->pw, f.pw, f.pwlen);
		j->pw[f.pwlen] = '\0';
		j->pwlen = f.pwlen;
		if (K.slow_tail != NULL)
			K.slow_tail->next = j;
		else
			K.slow = j;
		K.slow_tail = j;
		pthread_cond_signal(&K.cv);
	}
	pthread_mutex_unlock(&K.mu);
	sodium_memzero(m->payload, m->len);
}

/* ---- TLS: key operations ---- */

static int
is_eddsa(int pk)
{
	return pk == GNUTLS_PK_EDDSA_ED25519 || pk == GNUTLS_PK_EDDSA_ED448;
}

/* Make the signature front asked for, if this key can make it. */
static int
tls_sign(const struct keeper_tls_fields *f, gnutls_datum_t *sig)
{
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)f->data, (unsigned int)f->len };
	gnutls_sign_algorithm_t algo = (gnutls_sign_algorithm_t)f->algo;
	unsigned int flags = f->flags;
	int spk = gnutls_sign_get_pk_algorithm(algo);
	gnutls_digest_algorithm_t h;

	if ((flags & ~SIGN_FLAGS_OK) != 0)
		return GNUTLS_E_INVALID_REQUEST;
	if (f->op == KEEPER_OP_SIGN_DATA) {
		if (!is_eddsa(spk) || !gnutls_sign_supports_pk_algorithm(algo, K.pk))
			return GNUTLS_E_INVALID_REQUEST;
		return gnutls_privkey_sign_data2(K.key, algo, flags, &d, sig);
	}
	if (algo == GNUTLS_SIGN_RSA_RAW) {
		/* a PKCS#1 v1.5 DigestInfo, signed as it is */
		if (K.pk != GNUTLS_PK_RSA || f->len + 11 > K.bits / 8)
			return GNUTLS_E_INVALID_REQUEST;
		return gnutls_privkey_sign_hash2(K.key, algo,
		    flags | GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA, &d, sig);
	}
	h = gnutls_sign_get_hash_algorithm(algo);
	if (is_eddsa(spk) || !gnutls_sign_supports_pk_algorithm(algo, K.pk) ||
	    h == GNUTLS_DIG_UNKNOWN || gnutls_hash_get_len(h) != f->len)
		return GNUTLS_E_INVALID_REQUEST;
	return gnutls_privkey_sign_hash2(K.key, algo, flags, &d, sig);
}

static void
serve_tls(struct proc_msg *m)
{
	static uint8_t buf[16 + KEEPER_SIG_MAX];
	struct keeper_tls_fields f;
	gnutls_datum_t sig = { NULL, 0 };
	struct proc_writer w;
	int rc;

	if (keeper_tls_req_decode(m->payload, m->len, &f) < 0) {
		log_err("keeper: refused a malformed TLS key request id=%u (%u octets)", m->id, m->len);
		rc = GNUTLS_E_INVALID_REQUEST;
	} else if ((rc = tls_sign(&f, &sig)) < 0) {
		log_err("keeper: TLS key operation %s (op %u) refused or failed: %s",
		    gnutls_sign_get_name((gnutls_sign_algorithm_t)f.algo) ?
		    gnutls_sign_get_name((gnutls_sign_algorithm_t)f.algo) : "unknown-algorithm",
		    f.op, gnutls_strerror(rc));
	} else if (sig.size == 0 || sig.size > KEEPER_SIG_MAX) {
		rc = GNUTLS_E_PK_SIGN_FAILED;
	}
	proc_writer_init(&w, buf, sizeof(buf));
	proc_put_u32(&w, (uint32_t)(rc < 0 ? rc : 0));
	proc_put_bytes(&w, sig.data, rc < 0 ? 0 : sig.size);
	gnutls_free(sig.data);
	if (proc_send(K.tls_fd, PROC_TLS_SIGN_REP, m->id, buf, (size_t)proc_writer_done(&w),
	    -1) < 0) {
		if (errno == EPIPE)
			_exit(0);
		log_err("keeper: cannot answer front: %s", strerror(errno));
		_exit(1);
	}
}

/* ---- the keeper process: start-up ---- */

/* Read the key file (mode checked on the open file) into guarded memory. */
static int
read_key_file(const char *path, gnutls_datum_t *d, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	size_t off = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		snprintf(err, errlen, "cannot open TLS key %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "TLS key %s is not a regular file", path);
		goto fail;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "TLS key %s has mode %04o: group or others may access it; "
		    "run chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
		goto fail;
	}
	if (st.st_size <= 0 || st.st_size > KEY_FILE_MAX) {
		snprintf(err, errlen, "TLS key %s: size %lld is not that of a private key", path,
		    (long long)st.st_size);
		goto fail;
	}
	if ((d->data = sodium_malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "TLS key %s: out of guarded memory", path);
		goto fail;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, d->data + off, (size_t)st.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "cannot read TLS key %s: %s", path,
			    n < 0 ? strerror(errno) : "file shrank while reading");
			sodium_free(d->data);
			d->data = NULL;
			goto fail;
		}
		off += (size_t)n;
	}
	d->size = (unsigned int)off;
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

/* Sign once and verify with the public half: the key works, and GnuTLS has
 * done its lazy set-up (randomness) before the seccomp filter. */
static int
key_selftest(gnutls_pubkey_t pub)
{
	static const unsigned char msg[] = "subproxy keeper self-test";
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)msg, sizeof(msg) - 1 }, sig = { NULL, 0 };
	gnutls_sign_algorithm_t algo;
	int rc;

	switch (K.pk) {
	case GNUTLS_PK_RSA:		algo = GNUTLS_SIGN_RSA_SHA256; break;
	case GNUTLS_PK_RSA_PSS:		algo = GNUTLS_SIGN_RSA_PSS_SHA256; break;
	case GNUTLS_PK_ECDSA:		algo = GNUTLS_SIGN_ECDSA_SHA256; break;
	case GNUTLS_PK_EDDSA_ED25519:	algo = GNUTLS_SIGN_EDDSA_ED25519; break;
	case GNUTLS_PK_EDDSA_ED448:	algo = GNUTLS_SIGN_EDDSA_ED448; break;
	default:			return GNUTLS_E_UNKNOWN_PK_ALGORITHM;
	}
	if ((rc = gnutls_privkey_sign_data2(K.key, algo, 0, &d, &sig)) < 0)
		return rc;
	rc = gnutls_pubkey_verify_data2(pub, algo, 0, &d, &sig);
	gnutls_free(sig.data);
	return rc < 0 ? rc : 0;
}

/* Load and test the TLS key; store its public half (DER SPKI) in fds. */
static int
load_key(const char *path, struct keeper_fds *fds, char *err, size_t errlen)
{
	gnutls_datum_t raw = { NULL, 0 }, der = { NULL, 0 };
	gnutls_pubkey_t pub = NULL;
	int rc;

	if (read_key_file(path, &raw, err, errlen) < 0)
		return -1;
	if ((rc = gnutls_privkey_init(&K.key)) >= 0) {
		rc = gnutls_privkey_import_x509_raw(K.key, &raw, GNUTLS_X509_FMT_PEM, NULL, 0);
		if (rc < 0)
			rc = gnutls_privkey_import_x509_raw(K.key, &raw, GNUTLS_X509_FMT_DER, NULL, 0);
	}
	sodium_free(raw.data);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read TLS key %s: %s (expected an unencrypted PEM or "
		    "DER private key)", path, gnutls_strerror(rc));
		return -1;
	}
	K.pk = gnutls_privkey_get_pk_algorithm(K.key, &K.bits);
	if (K.pk != GNUTLS_PK_RSA && K.pk != GNUTLS_PK_RSA_PSS && K.pk != GNUTLS_PK_ECDSA &&
	    !is_eddsa(K.pk)) {
		snprintf(err, errlen, "TLS key %s is a %s key; use ECDSA, Ed25519 or RSA", path,
		    gnutls_pk_get_name(K.pk) ? gnutls_pk_get_name(K.pk) : "unknown");
		return -1;
	}
	if ((K.pk == GNUTLS_PK_RSA || K.pk == GNUTLS_PK_RSA_PSS) && K.bits < RSA_MIN_BITS) {
		snprintf(err, errlen, "TLS key %s is RSA with %u bits; at least %d are required",
		    path, K.bits, RSA_MIN_BITS);
		return -1;
	}
	if ((rc = gnutls_pubkey_init(&pub)) >= 0 &&
	    (rc = gnutls_pubkey_import_privkey(pub, K.key, 0, 0)) >= 0 &&
	    (rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der)) >= 0 &&
	    (rc = key_selftest(pub)) >= 0 && (der.size == 0 || der.size > KEEPER_SPKI_MAX))
		rc = GNUTLS_E_SHORT_MEMORY_BUFFER;
	if (rc < 0) {
		snprintf(err, errlen, "TLS key %s does not work: %s", path, gnutls_strerror(rc));
		gnutls_free(der.data);
		gnutls_pubkey_deinit(pub);
		return -1;
	}
	memcpy(fds->spki, der.data, der.size);
	fds->spki_len = der.size;
	fds->pk_algo = K.pk;
	fds->bits = K.bits;
	gnutls_free(der.data);
	gnutls_pubkey_deinit(pub);
	return 0;
}

/* Everything the keeper needs before its filter: key, passwords, counters,
 * job slots (passwords in guarded memory), workers. */
static int
child_load(const struct config *cfg, struct keeper_fds *fds, char *err, size_t errlen)
{
	pthread_t t;
	char *pw;
	size_t i;

	/* glibc reads /etc/localtime on the first time conversion (even
	 * gmtime_r, in log lines): now, while files may still be opened */
	tzset();
	if (passwd_init() < 0 || gnutls_global_init() < 0) {
		snprintf(err, errlen, "keeper: cannot initialise libsodium or GnuTLS");
		return -1;
	}
	if (load_key(cfg->tls_key, fds, err, errlen) < 0)
		return -1;
	if ((K.db = passwd_load(cfg->passwd_file, err, errlen)) == NULL)
		return -1;
	fds->npasswd = passwd_db_count(K.db);
	{
		unsigned char key[LOCKOUT_HASH_KEY];

		randombytes_buf(key, sizeof(key));
		K.lockout = lockout_new(&lock_limits, key);
		sodium_memzero(key, sizeof(key));
	}
	if ((pw = sodium_malloc((size_t)KEEPER_QUEUE_MAX * (KEEPER_PW_MAX + 1))) == NULL) {
		snprintf(err, errlen, "keeper: out of guarded memory");
		return -1;
	}
	for (i = 0; i < KEEPER_QUEUE_MAX; i++) {
		K.slots[i].pw = pw + i * (KEEPER_PW_MAX + 1);
		K.slots[i].next = K.free_slots;
		K.free_slots = &K.slots[i];
	}
	pthread_mutex_init(&K.mu, NULL);
	pthread_cond_init(&K.cv, NULL);
	pthread_cond_init(&K.started, NULL);
	for (i = 0; i < KEEPER_WORKERS; i++)
		if (pthread_create(&t, NULL, worker, NULL) != 0) {
			snprintf(err, errlen, "keeper: cannot start a worker thread");
			return -1;
		}
	/* the seccomp filter reaches every thread at once (TSYNC): a thread
	 * still starting would be killed by its first rseq(2) */
	pthread_mutex_lock(&K.mu);
	while (K.nstarted < KEEPER_WORKERS)
		pthread_cond_wait(&K.started, &K.mu);
	pthread_mutex_unlock(&K.mu);
	return 0;
}

/* Receive one message of `want` type on fd, or end the keeper. */
static void
child_recv(int fd, struct proc_msg *m, unsigned int want, const char *sock)
{
	int rc = proc_recv(fd, m, NULL);

	if (rc == 0) {
		log_debug("keeper: front closed the %s socket, exiting", sock);
		_exit(0);
	}
	if (rc < 0) {
		log_err("keeper: bad message from front on the %s socket: %s; exiting", sock,
		    errno == EPROTO ? proc_strerror(m->error) : strerror(errno));
		_exit(1);
	}
	if (m->type != want) {
		log_err("keeper: unexpected %s from front on the %s socket; exiting",
		    proc_type_name(m->type), sock);
		_exit(1);
	}
}

static void __attribute__((noreturn))
child_loop(void)
{
	static struct proc_msg m;
	struct pollfd pfd[2];
	int paused, rc;

	for (;;) {
		pthread_mutex_lock(&K.mu);
		paused = K.nquick >= QUICK_MAX;
		pthread_mutex_unlock(&K.mu);
		pfd[0].fd = K.tls_fd;
		pfd[0].events = POLLIN;
		pfd[1].fd = K.auth_fd;
		pfd[1].events = paused ? 0 : POLLIN;
		pfd[0].revents = pfd[1].revents = 0;
		/* while paused (front does not read its answers), look again soon;
		 * and at least once per heartbeat interval (metrics.h) */
		metrics_beat();
		rc = poll(pfd, 2, paused ? 100 : metrics_beat_interval());
		if (rc < 0 && errno != EINTR) {
			log_err("keeper: poll: %s", strerror(errno));
			_exit(1);
		}
		if (rc <= 0)
			continue;
		/* key operations first: a handshake is waiting for each */
		if (pfd[0].revents != 0) {
			child_recv(K.tls_fd, &m, PROC_TLS_SIGN_REQ, "TLS");
			serve_tls(&m);
			continue;
		}
		if (pfd[1].revents & POLLIN) {
			child_recv(K.auth_fd, &m, PROC_AUTH_REQ, "AUTH");
			serve_auth(&m);
		} else if (pfd[1].revents != 0) {
			log_debug("keeper: front closed the AUTH socket, exiting");
			_exit(0);
		}
	}
}

static void
child_main(void *arg, int ready_fd, const int *fds, size_t nfds)
{
	static struct keeper_fds info;
	const struct config *cfg = arg;
	char err[1024], ready[160];
	uint8_t extra[16 + KEEPER_SPKI_MAX];
	struct proc_writer w;

	metrics_attach(METRICS_SLICE_KEEPER);
	K.tls_fd = fds[0];
	K.auth_fd = fds[1];
	if (child_load(cfg, &info, err, sizeof(err)) < 0)
		proc_fail(ready_fd, err);
	/* the secrets are loaded and tested: from now on only the sockets,
	 * memory, time and randomness */
	sandbox_nodump();
	if (sandbox_seccomp("keeper", err, sizeof(err)) < 0)
		proc_fail(ready_fd, err);
	snprintf(ready, sizeof(ready), "TLS key %s-%u and %zu login(s) loaded",
	    gnutls_pk_get_name(K.pk), K.bits, info.npasswd);
	proc_writer_init(&w, extra, sizeof(extra));
	proc_put_u32(&w, (uint32_t)info.pk_algo);
	proc_put_u32(&w, info.bits);
	proc_put_bytes(&w, info.spki, info.spki_len);
	proc_ready(ready_fd, (uint32_t)info.npasswd, ready, extra, (size_t)proc_writer_done(&w));
	log_info("event=keeper-ready key=%s-%u logins=%zu workers=%d", gnutls_pk_get_name(K.pk),
	    K.bits, info.npasswd, KEEPER_WORKERS);
	child_loop();
}

void
keeper_fds_close(struct keeper_fds *fds)
{
	if (fds->tls_fd >= 0)
		close(fds->tls_fd);
	if (fds->auth_fd >= 0)
		close(fds->auth_fd);
	fds->tls_fd = fds->auth_fd = -1;
}

static int
ready_decode(const uint8_t *p, size_t len, void *fds)
{
	return keeper_ready_decode(p, len, fds);
}

pid_t
keeper_spawn(const struct config *cfg, int timeout, struct keeper_fds *fds_r, char *err,
    size_t errlen)
{
	static struct proc_msg m;
	struct proc_role role = {
		.name = "keeper",
		.loading = "loading the TLS key and the password file",
		.nfds = 2,
		.main = child_main,
		.arg = (void *)(uintptr_t)cfg,
		.ready = ready_decode,
		.ready_out = fds_r,
	};
	int fds[2];
	pid_t pid;

	memset(fds_r, 0, sizeof(*fds_r));
	pid = proc_spawn(&role, timeout, fds, &m, err, errlen);
	fds_r->tls_fd = fds[0];
	fds_r->auth_fd = fds[1];
	return pid;
}
