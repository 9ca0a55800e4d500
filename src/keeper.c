/*
 * keeper.c — the key keeper process: TLS private key, password hashes,
 * auth failure counters (lockout.c); serving front's requests.
 */
#include "keeper.h"
#include "keeper_int.h"

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
#define OUT_MAX         (QUICK_MAX + KEEPER_QUEUE_MAX)  /* and the checks still running */

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

/* A password check waiting for, or running on, a worker. */
struct job {
	struct job *next;
	size_t slot;                    /* whose answer it is */
	uint32_t id;
	char *pw;                       /* a guarded slot of KEEPER_PW_MAX + 1 */
	size_t pwlen;
	char login[PASSWD_LOGIN_MAX + 1];
	char peer[KEEPER_PEER_MAX + 1];
};

struct answer {
	uint32_t id;
	uint32_t result;                /* enum keeper_auth_result */
};

/* One client slot: a front worker's two sockets and its AUTH answers. */
struct slot {
	int tls_fd, auth_fd;            /* -1 once front closed them */
	/* K.mu: */
	struct answer out[OUT_MAX];     /* answers to send, oldest at out_head */
	size_t out_head, nout;
	struct job *waiting, *waiting_tail;     /* checks for a worker */
	size_t njobs;                   /* checks waiting or running */
};

static struct keeper {
	struct slot *slots;
	size_t nslots, nopen;
	size_t share;                   /* checks one slot may have at once */
	int wake[2];                    /* a worker's answer is ready: [1] -> [0] */
	struct passwd_db *db;
	pthread_mutex_t mu;             /* the slots' K.mu fields and everything below */
	pthread_cond_t cv;               /* a check is waiting */
	pthread_cond_t started;          /* a worker is running */
	unsigned int nstarted;
	size_t rr;                      /* the slot a worker looks at first */
	struct job *free_jobs;
	struct job jobs[KEEPER_QUEUE_MAX];
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

/* ---- AUTH: answers, jobs and workers ---- */

/* Queue an answer for slot s (K.mu held); dropped if front closed it. */
static void
answer_put(struct slot *s, uint32_t id, int result)
{
	struct answer *a;

	if (s->auth_fd < 0)
		return;
	/* never full: reading stops at QUICK_MAX, at most KEEPER_QUEUE_MAX run */
	if (s->nout == OUT_MAX) {
		log_err("keeper: answer queue overflow (a bug); exiting");
		_exit(1);
	}
	a = &s->out[(s->out_head + s->nout) % OUT_MAX];
	a->id = id;
	a->result = (uint32_t)result;
	s->nout++;
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

/* The next check for a worker, taking the slots in turn (K.mu held). */
static struct job *
job_take(void)
{
	struct slot *s;
	struct job *j;
	size_t i;

	for (i = 0; i < K.nslots; i++) {
		s = &K.slots[(K.rr + i) % K.nslots];
		if ((j = s->waiting) != NULL) {
			if ((s->waiting = j->next) == NULL)
				s->waiting_tail = NULL;
			K.rr = (K.rr + i + 1) % K.nslots;
			return j;
		}
	}
	return NULL;
}

/* Back to the free list, password wiped (K.mu held). */
static void
job_free(struct job *j)
{
	sodium_memzero(j->pw, KEEPER_PW_MAX + 1);
	K.slots[j->slot].njobs--;
	j->next = K.free_jobs;
	K.free_jobs = j;
}

static int
run_check(struct job *j)
{
	uint64_t now = now_sec();
	int locked, ok;

	pthread_mutex_lock(&K.mu);
	locked = lockout_locked(K.lockout, j->login, j->peer, now);
	pthread_mutex_unlock(&K.mu);
	if (locked)
		return KEEPER_AUTH_LOCKED;
	ok = passwd_verify(K.db, j->login, j->pw, j->pwlen) == 1;
	pthread_mutex_lock(&K.mu);
	record_result(j->login, j->peer, ok, now_sec());
	pthread_mutex_unlock(&K.mu);
	return ok ? KEEPER_AUTH_OK : KEEPER_AUTH_FAIL;
}

static void *
worker(void *arg)
{
	struct job *j;
	int result;

	/* running: every system call of a thread's start (rseq, ...) is done */
	pthread_mutex_lock(&K.mu);
	K.nstarted++;
	pthread_cond_broadcast(&K.started);
	for (;;) {
		while ((j = job_take()) == NULL)
			pthread_cond_wait(&K.cv, &K.mu);
		pthread_mutex_unlock(&K.mu);
		result = run_check(j);
		pthread_mutex_lock(&K.mu);
		answer_put(&K.slots[j->slot], j->id, result);
		job_free(j);
		wake_main();
	}
	return NULL;
}

/* One AUTH_REQ from slot i: answer at once (malformed, locked, busy) or
 * queue the check.  The password is wiped from the message here. */
static void
serve_auth(size_t i, struct proc_msg *m)
{
	struct slot *s = &K.slots[i];
	struct keeper_auth_fields f;
	struct job *j;

	pthread_mutex_lock(&K.mu);
	if (keeper_auth_req_decode(m->payload, m->len, &f) < 0) {
		log_err("keeper: refused a malformed AUTH request id=%u (%u octets)", m->id, m->len);
		answer_put(s, m->id, KEEPER_AUTH_BADREQ);
	} else if (lockout_locked(K.lockout, f.login, f.peer, now_sec())) {
		answer_put(s, m->id, KEEPER_AUTH_LOCKED);
	} else if (s->njobs >= K.share || (j = K.free_jobs) == NULL) {
		/* a slot's share keeps one front from taking every worker */
		answer_put(s, m->id, KEEPER_AUTH_BUSY);
	} else {
		K.free_jobs = j->next;
		j->next = NULL;
		j->slot = i;
		j->id = m->id;
		memcpy(j->login, f.login, sizeof(j->login));
		memcpy(j->peer, f.peer, sizeof(j->peer));
		memcpy(j->pw, f.pw, f.pwlen);
		j->pw[f.pwlen] = '\0';
		j->pwlen = f.pwlen;
		if (s->waiting_tail != NULL)
			s->waiting_tail->next = j;
		else
			s->waiting = j;
		s->waiting_tail = j;
		s->njobs++;
		pthread_cond_signal(&K.cv);
	}
	pthread_mutex_unlock(&K.mu);
	sodium_memzero(m->payload, m->len);
}

/* ---- the main thread: the slots' sockets ---- */

/* front closed slot i: forget it; the keeper ends with its last slot. */
static void
slot_close(size_t i, const char *why)
{
	struct slot *s = &K.slots[i];
	struct job *j;

	log_debug("keeper: front closed slot %zu (%s)", i, why);
	pthread_mutex_lock(&K.mu);
	close(s->tls_fd);
	close(s->auth_fd);
	s->tls_fd = s->auth_fd = -1;
	s->nout = 0;
	while ((j = s->waiting) != NULL) {
		s->waiting = j->next;
		job_free(j);
	}
	s->waiting_tail = NULL;
	pthread_mutex_unlock(&K.mu);
	if (--K.nopen == 0) {
		log_debug("keeper: every slot is closed, exiting");
		_exit(0);
	}
}

/* Receive one message of `want` type from slot i: 1, or 0 when front
 * closed the slot; a broken frame or another type ends the keeper. */
static int
slot_recv(size_t i, int fd, struct proc_msg *m, unsigned int want, const char *sock)
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
	if (m->type != want) {
		log_err("keeper: unexpected %s from front on slot %zu's %s socket; exiting",
		    proc_type_name(m->type), i, sock);
		_exit(1);
	}
	return 1;
}

/* A key operation: answered at once, never waiting for front (one request
 * at a time per slot: its socket has room; if a front floods it anyway,
 * the answer is dropped and that front loses its keeper). */
static void
serve_tls(size_t i, struct proc_msg *m)
{
	static uint8_t buf[16 + KEEPER_SIG_MAX];
	long n = keeper_key_answer(m, buf, sizeof(buf));

	if (proc_trysend(K.slots[i].tls_fd, PROC_TLS_SIGN_REP, m->id, buf, (size_t)n, -1) == 0)
		return;
	if (errno == EPIPE || errno == ECONNRESET)
		slot_close(i, "eof");
	else
		log_err("keeper: cannot answer key operation id=%u on slot %zu: %s", m->id, i,
		    strerror(errno));
}

/* Send slot i's queued AUTH answers until its socket is full. */
static void
flush_answers(size_t i)
{
	struct slot *s = &K.slots[i];
	struct answer a;
	uint8_t buf[4];
	int rc;

	for (;;) {
		pthread_mutex_lock(&K.mu);
		if (s->auth_fd < 0 || s->nout == 0) {
			pthread_mutex_unlock(&K.mu);
			return;
		}
		a = s->out[s->out_head];
		pthread_mutex_unlock(&K.mu);
		buf[0] = (uint8_t)(a.result >> 24);
		buf[1] = (uint8_t)(a.result >> 16);
		buf[2] = (uint8_t)(a.result >> 8);
		buf[3] = (uint8_t)a.result;
		rc = proc_trysend(s->auth_fd, PROC_AUTH_REP, a.id, buf, sizeof(buf), -1);
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
		s->out_head = (s->out_head + 1) % OUT_MAX;
		s->nout--;
		pthread_mutex_unlock(&K.mu);
	}
}

static void __attribute__((noreturn))
child_loop(void)
{
	static struct proc_msg m;
	struct pollfd *pfd = xcalloc(1 + 2 * K.nslots, sizeof(*pfd));
	struct slot *s;
	size_t i;
	int rc;

	for (;;) {
		pfd[0].fd = K.wake[0];
		pfd[0].events = POLLIN;
		pthread_mutex_lock(&K.mu);
		for (i = 0; i < K.nslots; i++) {
			s = &K.slots[i];
			pfd[1 + 2 * i].fd = s->tls_fd;          /* -1: ignored by poll */
			pfd[1 + 2 * i].events = POLLIN;
			pfd[2 + 2 * i].fd = s->auth_fd;
			/* front does not read its answers: stop reading its checks */
			pfd[2 + 2 * i].events = (s->nout < QUICK_MAX ? POLLIN : 0) |
			    (s->nout > 0 ? POLLOUT : 0);
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
		/* key operations first: a handshake is waiting for each */
		for (i = 0; i < K.nslots; i++)
			if (pfd[1 + 2 * i].revents != 0 && K.slots[i].tls_fd >= 0 &&
			    slot_recv(i, K.slots[i].tls_fd, &m, PROC_TLS_SIGN_REQ, "TLS"))
				serve_tls(i, &m);
		/* then answers out, then one check in per slot: every slot in turn */
		for (i = 0; i < K.nslots; i++) {
			short re = pfd[2 + 2 * i].revents;

			if (K.slots[i].auth_fd < 0)
				continue;
			flush_answers(i);
			if (K.slots[i].auth_fd < 0)
				continue;
			if (re & POLLIN) {
				if (slot_recv(i, K.slots[i].auth_fd, &m, PROC_AUTH_REQ, "AUTH"))
					serve_auth(i, &m);
			} else if (re & (POLLHUP | POLLERR)) {
				slot_close(i, "hangup");
			}
		}
	}
}

/* ---- start-up ---- */

/* Everything the keeper needs before its filter: key, passwords, counters,
 * job slots (passwords in guarded memory), the wake-up socket, workers. */
static int
child_load(const struct config *cfg, struct keeper_fds *info, char *err, size_t errlen)
{
	unsigned char key[LOCKOUT_HASH_KEY];
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
	if (keeper_key_load(cfg->tls_key, info, err, errlen) < 0)
		return -1;
	if ((K.db = passwd_load(cfg->passwd_file, err, errlen)) == NULL)
		return -1;
	info->npasswd = passwd_db_count(K.db);
	randombytes_buf(key, sizeof(key));
	K.lockout = lockout_new(&lock_limits, key);
	sodium_memzero(key, sizeof(key));
	if ((pw = sodium_malloc((size_t)KEEPER_QUEUE_MAX * (KEEPER_PW_MAX + 1))) == NULL) {
		snprintf(err, errlen, "keeper: out of guarded memory");
		return -1;
	}
	for (i = 0; i < KEEPER_QUEUE_MAX; i++) {
		K.jobs[i].pw = pw + i * (KEEPER_PW_MAX + 1);
		K.jobs[i].next = K.free_jobs;
		K.free_jobs = &K.jobs[i];
	}
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, K.wake) < 0) {
		snprintf(err, errlen, "keeper: socketpair: %s", strerror(errno));
		return -1;
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
	K.share = KEEPER_QUEUE_MAX / K.nslots > 0 ? KEEPER_QUEUE_MAX / K.nslots : 1;
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
	log_info("event=keeper-ready key=%s logins=%zu workers=%d slots=%zu", key, info.npasswd,
	    KEEPER_WORKERS, K.nslots);
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
