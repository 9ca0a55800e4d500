/*
 * keeper.c — the key keeper process: TLS private key, password hashes,
 * auth failure counters (lockout.c); serving front's requests.  Threads:
 * the main thread reads every slot's requests and sends every answer;
 * Argon2id workers check passwords (keeper_queue.h); key workers sign
 * (keeper_keyq.h, keeper_key.c), or the main thread itself when there are
 * none (an ECDSA or EdDSA key, unless [tls] key-workers is set).  All share K.mu, held only briefly.
 */
#include "keeper.h"
#include "keeper_int.h"

#include "authcache.h"
#include "config.h"
#include "keeper_keyq.h"
#include "keeper_queue.h"
#include "lockout.h"
#include "log.h"
#include "metrics.h"
#include "passwd.h"
#include "proc.h"
#include "proc_spawn.h"
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <sodium.h>

#define QUICK_MAX       1024    /* AUTH answers waiting for one slot; beyond: stop reading it */

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

/* An answer given without a worker (malformed, locked, cached, busy). */
struct answer {
	uint32_t id;
	uint32_t result;                /* enum keeper_auth_result */
	uint32_t flags;                 /* KEEPER_AUTH_F_* */
};

/* One client slot: a front worker's two sockets and its quick answers
 * (the workers' answers wait in the queue, keeper_queue_answer). */
struct slot {
	int tls_fd, auth_fd;            /* -1 once front closed them */
	/* K.mu: */
	struct answer *quick;           /* QUICK_MAX, oldest at qhead */
	size_t qhead, nquick;
};

static struct keeper {
	struct slot *slots;
	size_t nslots, nopen;
	unsigned int nworkers;          /* Argon2id threads */
	unsigned int nkeyworkers;       /* TLS key threads */
	int wake[2];                    /* a worker's answer is ready: [1] -> [0] */
	struct passwd_db *db;
	pthread_mutex_t mu;             /* the slots' K.mu fields and everything below */
	pthread_cond_t cv;              /* a check is waiting */
	pthread_cond_t keycv;           /* a key operation is waiting */
	pthread_cond_t started;         /* a worker is running */
	unsigned int nstarted;
	struct keeper_queue *q;         /* checks waiting, running, answered */
	struct keeper_keyq *kq;         /* key operations waiting, running, answered */
	struct lockout *lockout;
	struct authcache *cache;        /* NULL: [auth] cache-ttl = 0 */
	size_t held_shown;              /* checks held, as the gauge says */
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
		    log_value(esc, sizeof(esc), login, strlen(login)), lim->login_max, lim->window);
	if (hit & LOCKOUT_LOCKED_PEER)
		log_warn("event=auth-locked peer=%s failures=%u window=%u",
		    log_value(esc, sizeof(esc), peer, strlen(peer)), lim->peer_max, lim->window);
}

/*
 * Is the check answered without Argon2id (K.mu held)?  A locked login or
 * address: KEEPER_AUTH_LOCKED, before the cache is looked at.  The same
 * login and password verified within the cache's ttl, against the hash the
 * file has now: KEEPER_AUTH_OK with KEEPER_AUTH_F_CACHED, recorded for the
 * lockout as a verified success is.  Else -1: Argon2id decides.
 */
static int
answer_early(const char *login, const char *peer, const uint8_t *pw, size_t pwlen,
    uint32_t *flags_r)
{
	uint64_t now = now_sec();

	*flags_r = 0;
	if (lockout_locked(K.lockout, login, peer, now))
		return KEEPER_AUTH_LOCKED;
	if (K.cache != NULL &&
	    authcache_lookup(K.cache, login, passwd_stored(K.db, login), pw, pwlen, now)) {
		record_result(login, peer, 1, now);
		metrics_count(MF_AUTH_CACHE, 0);
		*flags_r = KEEPER_AUTH_F_CACHED;
		return KEEPER_AUTH_OK;
	}
	return -1;
}

/* ---- AUTH: answers, checks and workers ---- */

/* Queue an answer for slot s (K.mu held); dropped if front closed it. */
static void
answer_put(struct slot *s, uint32_t id, int result, uint32_t flags)
{
	struct answer *a;

	if (s->auth_fd < 0)
		return;
	/* never full: a slot is read only while nquick < QUICK_MAX, one
	 * request per round */
	if (s->nquick == QUICK_MAX) {
		log_err("keeper: answer queue overflow (a bug); exiting");
		_exit(1);
	}
	a = &s->quick[(s->qhead + s->nquick) % QUICK_MAX];
	a->id = id;
	a->result = (uint32_t)result;
	a->flags = flags;
	s->nquick++;
}

/* Tell the main thread (in poll) that answers are ready. */
static void
wake_main(void)
{
	char c = 1;
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	/* full: a wake-up is pending already */
	(void)sendmsg(K.wake[1], &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void
drain_wake(void)
{
	char buf[64];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	while (recvmsg(K.wake[0], &mh, MSG_DONTWAIT) > 0)
		;
}

/* One check on a worker (K.mu held; released during Argon2id).  Looked at
 * again first: a login locked, or a login verified by another check,
 * while this one waited. */
static void
run_check(struct keeper_check *c)
{
	uint32_t flags;
	int result, ok;

	if ((result = answer_early(c->login, c->peer, c->pw, c->pwlen, &flags)) < 0) {
		/* the check is running: nobody else touches it meanwhile */
		pthread_mutex_unlock(&K.mu);
		ok = passwd_verify(K.db, c->login, (const char *)c->pw, c->pwlen) == 1;
		pthread_mutex_lock(&K.mu);
		/* only what Argon2id verified is remembered, never a failure */
		if (ok && K.cache != NULL)
			authcache_insert(K.cache, c->login, passwd_stored(K.db, c->login), c->pw,
			    c->pwlen, now_sec());
		record_result(c->login, c->peer, ok, now_sec());
		metrics_count(MF_AUTH_CACHE_MISSES, 0);
		result = ok ? KEEPER_AUTH_OK : KEEPER_AUTH_FAIL;
	}
	keeper_queue_done(K.q, c, (uint32_t)result, flags);
}

/* A worker thread says it runs; returns with K.mu held. */
static void
thread_running(void)
{
	/* running: every system call of a thread's start (rseq, ...) is done */
	pthread_mutex_lock(&K.mu);
	K.nstarted++;
	pthread_cond_broadcast(&K.started);
}

static void *
worker(void *arg)
{
	struct keeper_check *c;

	thread_running();
	for (;;) {
		while ((c = keeper_queue_take(K.q)) == NULL)
			pthread_cond_wait(&K.cv, &K.mu);
		run_check(c);
		wake_main();
	}
	return NULL;
}

/* ---- TLS key operations: key workers ---- */

/* Key worker k (its own key object, keeper_key.c): signs the operations
 * the main thread queued, oldest first, and leaves the answers for the
 * main thread to send. */
static void *
key_worker(void *arg)
{
	unsigned int k = (unsigned int)(uintptr_t)arg;
	struct keeper_keyop *op;

	thread_running();
	for (;;) {
		while ((op = keeper_keyq_take(K.kq)) == NULL)
			pthread_cond_wait(&K.keycv, &K.mu);
		/* the operation is running: nobody else touches it meanwhile */
		pthread_mutex_unlock(&K.mu);
		op->replen = (size_t)keeper_key_answer(k, op->id, op->req, op->reqlen, op->rep,
		    sizeof(op->rep));
		pthread_mutex_lock(&K.mu);
		keeper_keyq_done(K.kq, op);
		wake_main();
	}
	return NULL;
}

/* One AUTH_REQ from slot i: answer at once (malformed, locked, cached,
 * no room) or queue the check for a worker.  The password is wiped from
 * the message here. */
static void
serve_auth(size_t i, struct proc_msg *m)
{
	struct slot *s = &K.slots[i];
	struct keeper_auth_fields f;
	uint32_t flags = 0;
	int result;

	pthread_mutex_lock(&K.mu);
	if (keeper_auth_req_decode(m->payload, m->len, &f) < 0) {
		log_err("keeper: refused a malformed AUTH request id=%u (%u octets)", m->id, m->len);
		answer_put(s, m->id, KEEPER_AUTH_BADREQ, 0);
	} else if ((result = answer_early(f.login, f.peer, f.pw, f.pwlen, &flags)) >= 0) {
		answer_put(s, m->id, result, flags);
	} else if (keeper_queue_put(K.q, i, m->id, f.login, f.peer, f.pw, f.pwlen) < 0) {
		/* [limits] auth-queue checks are held already */
		answer_put(s, m->id, KEEPER_AUTH_BUSY, 0);
	} else {
		pthread_cond_signal(&K.cv);
	}
	pthread_mutex_unlock(&K.mu);
	sodium_memzero(&f, sizeof(f));
	sodium_memzero(m->payload, m->len);
}

/* AUTH_CANCEL from slot i: front's session went away; a check still
 * waiting is dropped before it costs an Argon2id run (and counted).  One
 * already running runs to its end: Argon2id cannot be interrupted, and
 * its answer is dropped by front as stale. */
static void
serve_cancel(size_t i, const struct proc_msg *m)
{
	if (m->len != 0) {
		log_err("keeper: ignored an AUTH cancel with a payload id=%u", m->id);
		return;
	}
	pthread_mutex_lock(&K.mu);
	if (keeper_queue_cancel(K.q, i, m->id))
		metrics_count(MF_AUTH_CANCELLED, 0);
	pthread_mutex_unlock(&K.mu);
}

/* ---- the main thread: the slots' sockets ---- */

/* front closed slot i: forget it; the keeper ends with its last slot. */
static void
slot_close(size_t i, const char *why)
{
	struct slot *s = &K.slots[i];

	log_debug("keeper: front closed slot %zu (%s)", i, why);
	pthread_mutex_lock(&K.mu);
	close(s->tls_fd);
	close(s->auth_fd);
	s->tls_fd = s->auth_fd = -1;
	s->nquick = 0;
	keeper_queue_drop_slot(K.q, i);
	keeper_keyq_drop_slot(K.kq, i);
	pthread_mutex_unlock(&K.mu);
	if (--K.nopen == 0) {
		log_debug("keeper: every slot is closed, exiting");
		_exit(0);
	}
}

/* A TLS_SIGN_REP to slot i. */
static void
send_key_answer(size_t i, uint32_t id, const uint8_t *p, size_t len)
{
	if (proc_trysend(K.slots[i].tls_fd, PROC_TLS_SIGN_REP, id, p, len, -1) == 0)
		return;
	if (errno == EPIPE || errno == ECONNRESET)
		slot_close(i, "eof");
	else
		log_err("keeper: cannot answer key operation id=%u on slot %zu: %s", id, i,
		    strerror(errno));
}

/* Receive one message of type want or want2 (0: none) from slot i: 1, or
 * 0 when front closed the slot; a broken frame or another type ends the
 * keeper. */
static int
slot_recv(size_t i, int fd, struct proc_msg *m, unsigned int want, unsigned int want2,
    const char *sock)
{
	int rc = proc_recv(fd, m, NULL);

	if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (rc == 0 || (rc < 0 && errno == ECONNRESET)) {
		slot_close(i, "eof");
		return 0;
	}
	if (rc < 0) {
		log_err("keeper: bad message from front on slot %zu's %s socket: %s; exiting", i,
		    sock, errno == EPROTO ? proc_strerror(m->error) : strerror(errno));
		_exit(1);
	}
	if (m->type != want && (want2 == 0 || m->type != want2)) {
		log_err("keeper: unexpected %s from front on slot %zu's %s socket; exiting",
		    proc_type_name(m->type), i, sock);
		_exit(1);
	}
	return 1;
}

/* A key operation from slot i (read only while the slot holds none): for
 * a key worker, or signed and answered here when there is none. */
static void
serve_tls(size_t i, const struct proc_msg *m)
{
	int rc;

	if (K.nkeyworkers == 0) {
		static uint8_t rep[KEEPER_KEYQ_REP_MAX];

		send_key_answer(i, m->id, rep,
		    (size_t)keeper_key_answer(0, m->id, m->payload, m->len, rep, sizeof(rep)));
		return;
	}
	pthread_mutex_lock(&K.mu);
	if ((rc = keeper_keyq_put(K.kq, i, m->id, m->payload, m->len)) == 0)
		pthread_cond_signal(&K.keycv);
	pthread_mutex_unlock(&K.mu);
	if (rc < 0) {
		/* an empty or oversized payload: what a worker would refuse */
		static uint8_t buf[KEEPER_KEYQ_REP_MAX];
		struct proc_writer w;

		log_err("keeper: refused a malformed TLS key request id=%u (%u octets)", m->id,
		    m->len);
		proc_writer_init(&w, buf, sizeof(buf));
		proc_put_u32(&w, (uint32_t)GNUTLS_E_INVALID_REQUEST);
		proc_put_bytes(&w, NULL, 0);
		send_key_answer(i, m->id, buf, (size_t)proc_writer_done(&w));
	}
}

/* Send slot i's key answer, if a worker made one: never waiting for front
 * (one request at a time per slot: its socket has room; if a front floods
 * it anyway, the answer is dropped and that front loses its keeper).  The
 * slot may then be read again. */
static void
flush_key_answer(size_t i)
{
	const struct keeper_keyop *a;

	pthread_mutex_lock(&K.mu);
	a = keeper_keyq_answer(K.kq, i);
	pthread_mutex_unlock(&K.mu);
	if (a == NULL)
		return;
	/* only this thread changes an answered operation: no lock needed to
	 * read it (send_key_answer may close the slot, which takes K.mu) */
	send_key_answer(i, a->id, a->rep, a->replen);
	pthread_mutex_lock(&K.mu);
	keeper_keyq_sent(K.kq, i);
	pthread_mutex_unlock(&K.mu);
}

/* Slot i's oldest unsent AUTH answer into *a: 1, or 0 when there is none
 * (K.mu held).  Quick answers first.  Only the main thread adds quick
 * answers and sends, so the answer is still the oldest at answer_sent(). */
static int
answer_next(size_t i, struct answer *a)
{
	struct slot *s = &K.slots[i];
	const struct keeper_check *c;

	if (s->nquick > 0) {
		*a = s->quick[s->qhead];
		return 1;
	}
	if ((c = keeper_queue_answer(K.q, i)) == NULL)
		return 0;
	a->id = c->id;
	a->result = c->result;
	a->flags = c->flags;
	return 1;
}

static void
answer_sent(size_t i)
{
	struct slot *s = &K.slots[i];

	if (s->nquick > 0) {
		s->qhead = (s->qhead + 1) % QUICK_MAX;
		s->nquick--;
	} else {
		keeper_queue_sent(K.q, i);
	}
}

/* Send slot i's AUTH answers until its socket is full. */
static void
flush_answers(size_t i)
{
	struct slot *s = &K.slots[i];
	struct answer a;
	uint8_t buf[8];
	long n;
	int rc, more;

	for (;;) {
		pthread_mutex_lock(&K.mu);
		more = s->auth_fd >= 0 && answer_next(i, &a);
		pthread_mutex_unlock(&K.mu);
		if (!more)
			return;
		n = keeper_auth_rep_encode(buf, sizeof(buf), a.result, a.flags);
		rc = proc_trysend(s->auth_fd, PROC_AUTH_REP, a.id, buf, (size_t)n, -1);
		if (rc < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			slot_close(i, "eof");
			return;
		}
		if (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
			log_err("keeper: cannot answer front on slot %zu: %s; exiting", i,
			    strerror(errno));
			_exit(1);
		}
		if (rc < 0)
			return;         /* POLLOUT brings us back */
		pthread_mutex_lock(&K.mu);
		answer_sent(i);
		pthread_mutex_unlock(&K.mu);
	}
}

static void __attribute__((noreturn))
child_loop(void)
{
	static struct proc_msg m;
	struct pollfd *pfd = xcalloc(1 + 2 * K.nslots, sizeof(*pfd));
	struct slot *s;
	size_t i, unsent;
	int rc;

	for (;;) {
		pfd[0].fd = K.wake[0];
		pfd[0].events = POLLIN;
		pthread_mutex_lock(&K.mu);
		if (K.cache != NULL)
			authcache_expire(K.cache, now_sec());
		/* only this thread changes how many checks are held */
		metrics_gauge_add(MG_AUTH_QUEUE, (int64_t)keeper_queue_held(K.q) -
		    (int64_t)K.held_shown);
		K.held_shown = keeper_queue_held(K.q);
		for (i = 0; i < K.nslots; i++) {
			s = &K.slots[i];
			unsent = s->nquick + keeper_queue_answers(K.q, i);
			/* a slot's next key operation is read once its last is
			 * answered (-1: ignored by poll) */
			pfd[1 + 2 * i].fd = keeper_keyq_idle(K.kq, i) ? s->tls_fd : -1;
			pfd[1 + 2 * i].events = POLLIN;
			pfd[2 + 2 * i].fd = s->auth_fd;
			/* front does not read its answers: stop reading its checks */
			pfd[2 + 2 * i].events = (unsent < QUICK_MAX ? POLLIN : 0) |
			    (unsent > 0 ? POLLOUT : 0);
		}
		pthread_mutex_unlock(&K.mu);
		/* wake up at least once per heartbeat interval (metrics.h) */
		metrics_beat();
		if ((rc = poll(pfd, 1 + 2 * K.nslots, metrics_beat_interval())) < 0 &&
		    errno != EINTR) {
			log_err("keeper: poll: %s", strerror(errno));
			_exit(1);
		}
		if (rc <= 0)
			continue;
		if (pfd[0].revents != 0)
			drain_wake();
		/* key operations first: a handshake is waiting for each; the
		 * main thread passes them on (key_worker signs), or signs an
		 * ECDSA or EdDSA key's itself when there are no key workers */
		for (i = 0; i < K.nslots; i++) {
			if (K.slots[i].tls_fd >= 0)
				flush_key_answer(i);
			if (pfd[1 + 2 * i].revents != 0 && K.slots[i].tls_fd >= 0 &&
			    slot_recv(i, K.slots[i].tls_fd, &m, PROC_TLS_SIGN_REQ, 0, "TLS"))
				serve_tls(i, &m);
		}
		/* then answers out, then one check in per slot: every slot in turn */
		for (i = 0; i < K.nslots; i++) {
			short re = pfd[2 + 2 * i].revents;

			if (K.slots[i].auth_fd < 0)
				continue;
			flush_answers(i);
			if (K.slots[i].auth_fd < 0)
				continue;
			if (re & POLLIN) {
				if (!slot_recv(i, K.slots[i].auth_fd, &m, PROC_AUTH_REQ,
				    PROC_AUTH_CANCEL, "AUTH"))
					continue;
				if (m.type == PROC_AUTH_REQ)
					serve_auth(i, &m);
				else
					serve_cancel(i, &m);
			} else if (re & (POLLHUP | POLLERR)) {
				slot_close(i, "hangup");
			}
		}
	}
}

/* ---- start-up ---- */

/* The auth cache ([auth] cache-ttl, cache-size; one entry per login, so no
 * more than the file has), its key random and wiped here. */
static int
cache_make(const struct config *cfg, char *err, size_t errlen)
{
	unsigned char key[AUTHCACHE_KEY];
	size_t n = passwd_db_count(K.db), size = (size_t)cfg->auth_cache_size;

	if (cfg->auth_cache_ttl == 0)
		return 0;
	if (size > n)
		size = n > 0 ? n : 1;
	randombytes_buf(key, sizeof(key));
	K.cache = authcache_new(size, cfg->auth_cache_ttl, key);
	sodium_memzero(key, sizeof(key));
	if (K.cache == NULL) {
		snprintf(err, errlen, "keeper: out of guarded memory for the auth cache");
		return -1;
	}
	return 0;
}

/* Start n threads of fn (arg: their number); what = their name in err. */
static int
start_threads(void *(*fn)(void *), unsigned int n, const char *what, char *err, size_t errlen)
{
	pthread_t t;
	unsigned int i;

	for (i = 0; i < n; i++)
		if (pthread_create(&t, NULL, fn, (void *)(uintptr_t)i) != 0) {
			snprintf(err, errlen, "keeper: cannot start %s thread %u of %u", what,
			    i + 1, n);
			return -1;
		}
	return 0;
}

/* Everything the keeper needs before its filter: key, passwords, counters,
 * the auth cache, the check and key queues, the wake-up socket, the
 * workers. */
static int
child_load(const struct config *cfg, struct keeper_fds *info, char *err, size_t errlen)
{
	unsigned char key[LOCKOUT_HASH_KEY];
	unsigned int nkeys;
	long online;
	size_t i;
	int rc;

	/* glibc reads /etc/localtime on the first time conversion (even
	 * gmtime_r, in log lines): now, while files may still be opened;
	 * the number of CPUs from /sys too */
	tzset();
	online = sysconf(_SC_NPROCESSORS_ONLN);
	K.nworkers = config_auth_workers(cfg, online);
	/* each slot asks one key operation at a time: more would idle */
	nkeys = config_key_workers(cfg, online);
	if (nkeys > K.nslots)
		nkeys = (unsigned int)K.nslots;
	if (passwd_init() < 0 || gnutls_global_init() < 0) {
		snprintf(err, errlen, "keeper: cannot initialise libsodium or GnuTLS");
		return -1;
	}
	/* an ECDSA or EdDSA signature (tens of microseconds) costs less than
	 * handing it to a thread and back: unless [tls] key-workers says
	 * otherwise, the main thread makes it; an RSA one (milliseconds) goes
	 * to the key workers */
	if ((rc = keeper_key_load(cfg->tls_key, nkeys, cfg->tls_key_workers > 0 ? nkeys : 0, info,
	    err, errlen)) < 0)
		return -1;
	K.nkeyworkers = (unsigned int)rc;
	if ((K.db = passwd_load(cfg->passwd_file, err, errlen)) == NULL)
		return -1;
	info->npasswd = passwd_db_count(K.db);
	randombytes_buf(key, sizeof(key));
	K.lockout = lockout_new(&lock_limits, key);
	sodium_memzero(key, sizeof(key));
	if (cache_make(cfg, err, errlen) < 0)
		return -1;
	K.q = keeper_queue_new((size_t)cfg->limits.auth_queue, K.nslots);
	K.kq = keeper_keyq_new(K.nslots);
	for (i = 0; i < K.nslots; i++)
		K.slots[i].quick = xcalloc(QUICK_MAX, sizeof(struct answer));
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, K.wake) < 0) {
		snprintf(err, errlen, "keeper: socketpair: %s", strerror(errno));
		return -1;
	}
	pthread_mutex_init(&K.mu, NULL);
	pthread_cond_init(&K.cv, NULL);
	pthread_cond_init(&K.keycv, NULL);
	pthread_cond_init(&K.started, NULL);
	if (start_threads(worker, K.nworkers, "Argon2id worker ([auth] workers)", err,
	    errlen) < 0 ||
	    start_threads(key_worker, K.nkeyworkers, "TLS key worker ([tls] key-workers)", err,
	    errlen) < 0)
		return -1;
	/* the seccomp filter reaches every thread at once (TSYNC): a thread
	 * still starting would be killed by its first rseq(2) */
	pthread_mutex_lock(&K.mu);
	while (K.nstarted < K.nworkers + K.nkeyworkers)
		pthread_cond_wait(&K.started, &K.mu);
	pthread_mutex_unlock(&K.mu);
	return 0;
}

static void
child_main(void *arg, int ready_fd, const int *fds, size_t nfds)
{
	static struct keeper_fds info;
	const struct config *cfg = arg;
	char err[1024], ready[160], key[64];
	uint8_t extra[16 + KEEPER_SPKI_MAX];
	struct proc_writer w;
	size_t i;

	metrics_attach(METRICS_SLICE_KEEPER);
	K.nslots = K.nopen = nfds / 2;
	K.slots = xcalloc(K.nslots, sizeof(*K.slots));
	for (i = 0; i < K.nslots; i++) {
		K.slots[i].tls_fd = fds[2 * i];
		K.slots[i].auth_fd = fds[2 * i + 1];
	}
	if (child_load(cfg, &info, err, sizeof(err)) < 0)
		proc_fail(ready_fd, err);
	/* the secrets are loaded and tested: from now on, in an empty root as
	 * [server] keeper-user, only the sockets, memory, time and randomness */
	if (sandbox_enter("keeper", cfg->keeper_user, cfg->chroot, err, sizeof(err)) < 0)
		proc_fail(ready_fd, err);
	keeper_key_describe(key, sizeof(key));
	snprintf(ready, sizeof(ready), "TLS key %s and %zu login(s) loaded", key, info.npasswd);
	proc_writer_init(&w, extra, sizeof(extra));
	proc_put_u32(&w, (uint32_t)info.pk_algo);
	proc_put_u32(&w, info.bits);
	proc_put_bytes(&w, info.spki, info.spki_len);
	proc_ready(ready_fd, (uint32_t)info.npasswd, ready, extra, (size_t)proc_writer_done(&w));
	log_info("event=keeper-ready key=%s logins=%zu workers=%u key-workers=%u auth-queue=%llu "
	    "cache-ttl=%llu cache-size=%llu slots=%zu", key, info.npasswd, K.nworkers,
	    K.nkeyworkers,
	    (unsigned long long)cfg->limits.auth_queue, (unsigned long long)cfg->auth_cache_ttl,
	    (unsigned long long)cfg->auth_cache_size, K.nslots);
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
keeper_spawn(const struct config *cfg, size_t nslots, int timeout, struct keeper_fds *fds_r,
    char *err, size_t errlen)
{
	static struct proc_msg m;
	struct keeper_fds info;
	struct proc_role role = {
		.name = "keeper",
		.loading = "loading the TLS key and the password file",
		.nfds = 2 * nslots,
		.main = child_main,
		.arg = (void *)(uintptr_t)cfg,
		.ready = ready_decode,
		.ready_out = &info,
	};
	int *fds = xcalloc(2 * nslots + 1, sizeof(int));
	size_t i;
	pid_t pid;

	memset(&info, 0, sizeof(info));
	pid = proc_spawn(&role, timeout, fds, &m, err, errlen);
	for (i = 0; i < nslots; i++) {
		fds_r[i] = info;
		fds_r[i].tls_fd = pid < 0 ? -1 : fds[2 * i];
		fds_r[i].auth_fd = pid < 0 ? -1 : fds[2 * i + 1];
	}
	free(fds);
	return pid;
}
