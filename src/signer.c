/*
 * signer.c — the DKIM signer process: loads the keys, signs front's prefix
 * and the message in its sealed memfd.
 */
#include "signer.h"

#include "config.h"
#include "dkim.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "proc.h"
#include "proc_spawn.h"
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <sodium.h>

/* One client slot: a front worker's socket, served by a thread of its own
 * (a signature is milliseconds of CPU: the workers' messages are signed on
 * as many cores at once).  Everything here is that thread's but alive_ms,
 * which the main thread reads. */
struct slot {
	size_t i;
	int fd;                         /* -1 once front closed it */
	uint64_t alive_ms;              /* when its loop last ran (atomic); 0 once closed */
	struct proc_msg m;              /* the request being served */
	uint8_t reply[PROC_MAX_PAYLOAD];
	uint8_t copy[SIGNER_COPY_MAX];  /* a small message, read (wiped after, refused or signed) */
};

static struct {
	struct slot *slots;
	size_t nslots, nopen;           /* nopen: atomic */
	struct dkim_keyset *ks;         /* read-only once loaded */
	pthread_barrier_t started;
} S;

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

static void
alive(struct slot *sl)
{
	STORE(&sl->alive_ms, metrics_now_ms() | 1);
}

/* Front closed the slot: the last one closed ends the process (the
 * others' threads sleep until then: no thread ever ends, so the filter
 * need not allow it). */
static void __attribute__((noreturn))
slot_close(struct slot *sl)
{
	log_debug("signer: front closed slot %zu", sl->i);
	close(sl->fd);
	sl->fd = -1;
	STORE(&sl->alive_ms, 0);
	if (__atomic_sub_fetch(&S.nopen, 1, __ATOMIC_ACQ_REL) == 0) {
		log_debug("signer: every slot is closed, exiting");
		dkim_keyset_free(&S.ks);
		_exit(0);
	}
	for (;;)
		(void)poll(NULL, 0, -1);
}

/* Send the reply; while front does not take it, this slot waits (its
 * loop still beats), the others do not.  0, or -1 when front closed. */
static int
slot_send(struct slot *sl, uint32_t id, size_t len)
{
	struct pollfd pfd = { .fd = sl->fd, .events = POLLOUT };

	for (;;) {
		alive(sl);
		if (proc_trysend(sl->fd, PROC_SIGN_REP, id, sl->reply, len, -1) == 0)
			return 0;
		if (errno == EPIPE || errno == ECONNRESET)
			return -1;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
			log_err("signer: cannot answer front on slot %zu: %s", sl->i,
			    strerror(errno));
			_exit(1);
		}
		if (poll(&pfd, 1, metrics_beat_interval()) < 0 && errno != EINTR) {
			log_err("signer: poll: %s", strerror(errno));
			_exit(1);
		}
		if (pfd.revents & (POLLHUP | POLLERR))
			return -1;      /* hung up with a reply waiting */
	}
}

/* Answer a request: 0, or -1 when front closed the slot meanwhile. */
static int
child_reply(struct slot *sl, uint32_t id, uint32_t status, const char *headers)
{
	struct proc_writer w;
	long n;

	proc_writer_init(&w, sl->reply, sizeof(sl->reply));
	proc_put_u32(&w, status);
	proc_put_str(&w, headers ? headers : "");
	if ((n = proc_writer_done(&w)) < 0) {
		/* signatures too long for one message: report, do not truncate */
		proc_writer_init(&w, sl->reply, sizeof(sl->reply));
		proc_put_u32(&w, DKIM_RES_INTERNAL);
		proc_put_str(&w, "");
		n = proc_writer_done(&w);
	}
	return slot_send(sl, id, (size_t)n);
}

const uint8_t *
signer_message_get(uint8_t *copy, int memfd, uint64_t size, void **map_r)
{
	ssize_t n;
	off_t end;
	void *map;

	*map_r = NULL;
	if (size < SIGNER_COPY_MAX) {
		while ((n = pread(memfd, copy, (size_t)size + 1, 0)) < 0 && errno == EINTR)
			;
		if (n != (ssize_t)size) {
			/* not of the stated size: forget what was read */
			sodium_memzero(copy, (size_t)size + 1);
			return NULL;
		}
		return copy;
	}
	if ((end = lseek(memfd, 0, SEEK_END)) < 0 || (uint64_t)end != size)
		return NULL;
	if ((map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, memfd, 0)) == MAP_FAILED) {
		log_err("signer: mmap of %llu bytes: %s", (unsigned long long)size, strerror(errno));
		return NULL;
	}
	*map_r = map;
	return map;
}

void
signer_message_done(uint8_t *copy, const uint8_t *msg, uint64_t size, void *map)
{
	if (map != NULL)
		munmap(map, (size_t)size);
	else if (msg != NULL)
		sodium_memzero(copy, (size_t)size);
}

/* One request: check that the memfd is sealed and of the stated size
 * while reading or mapping it, then sign front's prefix followed by it.
 * 0, or -1 when front closed the slot meanwhile. */
static int
child_sign(struct slot *sl, int memfd)
{
	const struct proc_msg *m = &sl->m;
	struct proc_reader r;
	const uint8_t *prefix, *msg = NULL;
	size_t plen;
	uint64_t size;
	char *headers = NULL;
	void *map = NULL;
	int seals, rc;
	enum dkim_result res;

	/* the size by pread or lseek, not fstat: glibc's fstat is newfstatat,
	 * which the filter forbids (it could look up paths) */
	proc_reader_init(&r, m->payload, m->len);
	if (memfd < 0 || proc_get_u64(&r, &size) < 0 ||
	    proc_get_bytes(&r, &prefix, &plen, SIGNER_PREFIX_MAX) < 0 ||
	    proc_reader_end(&r) < 0 || size > SIGNER_MSG_MAX - plen ||
	    (seals = fcntl(memfd, F_GET_SEALS)) < 0 || (seals & SIGNER_SEALS) != SIGNER_SEALS ||
	    (msg = signer_message_get(sl->copy, memfd, size, &map)) == NULL) {
		log_err("signer: refused a malformed request id=%u (not a sealed memfd of the "
		    "stated size with a prefix of at most %u octets)", m->id, SIGNER_PREFIX_MAX);
		return child_reply(sl, m->id, DKIM_RES_INTERNAL, NULL);
	}
	res = dkim_sign_parts(S.ks, prefix, plen, msg, (size_t)size, &headers);
	signer_message_done(sl->copy, msg, size, map);
	rc = child_reply(sl, m->id, (uint32_t)res, headers);
	free(headers);
	return rc;
}

/* Read and serve one request.  0, or -1 when front closed the slot. */
static int
serve(struct slot *sl)
{
	int memfd = -1, rc = proc_recv(sl->fd, &sl->m, &memfd);

	if (rc == 0 || (rc < 0 && errno == ECONNRESET))
		return -1;
	if (rc < 0) {
		/* the other threads may be signing: the keys are not freed, the
		 * kernel discards them with the process */
		log_err("signer: bad message from front on slot %zu: %s; exiting", sl->i,
		    errno == EPROTO ? proc_strerror(sl->m.error) : strerror(errno));
		_exit(1);
	}
	if (sl->m.type != PROC_SIGN_REQ) {
		log_err("signer: unexpected %s from front on slot %zu; exiting",
		    proc_type_name(sl->m.type), sl->i);
		_exit(1);
	}
	rc = child_sign(sl, memfd);
	if (memfd >= 0)
		close(memfd);
	return rc;
}

/* A slot's thread: its requests one after the other, until front closes
 * the slot.  It wakes up at least once per heartbeat interval. */
static void *
slot_main(void *arg)
{
	struct slot *sl = arg;
	struct pollfd pfd = { .fd = sl->fd, .events = POLLIN };
	char name[16];
	int rc;

	/* named (/proc/PID/task/TID/comm) and started before the filter */
	snprintf(name, sizeof(name), "signer-slot%zu", sl->i);
	(void)prctl(PR_SET_NAME, name);
	pthread_barrier_wait(&S.started);
	for (;;) {
		alive(sl);
		if ((rc = poll(&pfd, 1, metrics_beat_interval())) < 0 && errno != EINTR) {
			log_err("signer: poll: %s", strerror(errno));
			_exit(1);
		}
		if (rc > 0 && serve(sl) < 0)
			slot_close(sl);
	}
}

/* The main thread beats for the signer with the time of the slot loop
 * that ran longest ago (metrics_beat_at()). */
static void __attribute__((noreturn))
child_loop(void)
{
	uint64_t oldest, a;
	size_t i;

	for (;;) {
		oldest = UINT64_MAX;
		for (i = 0; i < S.nslots; i++)
			if ((a = LOAD(&S.slots[i].alive_ms)) != 0 && a < oldest)
				oldest = a;
		if (oldest != UINT64_MAX)
			metrics_beat_at(oldest);
		(void)poll(NULL, 0, metrics_beat_interval());
	}
}

/* One thread per slot, running before the sandbox is entered: its filter
 * forbids making threads and reaches these at once (TSYNC, as in the
 * keeper); the barrier makes sure each has started (glibc's and the
 * sanitizers' thread start-up calls) and named itself by then. */
static int
start_threads(char *err, size_t errlen)
{
	pthread_t t;
	size_t i;
	int rc;

	pthread_barrier_init(&S.started, NULL, (unsigned)S.nslots + 1);
	for (i = 0; i < S.nslots; i++) {
		alive(&S.slots[i]);
		if ((rc = pthread_create(&t, NULL, slot_main, &S.slots[i])) != 0) {
			snprintf(err, errlen, "signer: cannot start a thread: %s", strerror(rc));
			return -1;
		}
		pthread_detach(t);
	}
	pthread_barrier_wait(&S.started);
	return 0;
}

static void
child_main(void *arg, int ready_fd, const int *fds, size_t nfds)
{
	const struct config *cfg = arg;
	struct dkim_policy *pol;
	const char *ptext;
	size_t plen, i;
	char err[1024], ready[160];

	metrics_attach(METRICS_SLICE_SIGNER);
	S.nslots = S.nopen = nfds;
	S.slots = xcalloc(nfds, sizeof(*S.slots));
	for (i = 0; i < nfds; i++) {
		S.slots[i].i = i;
		S.slots[i].fd = fds[i];
	}
	ptext = policy_get("dkim-headers", &plen);
	pol = ptext ? dkim_policy_parse("policy/dkim-headers", ptext, plen, err, sizeof(err)) : NULL;
	S.ks = pol ? dkim_keys_load(cfg->dkims, cfg->ndkims, pol, err, sizeof(err)) : NULL;
	dkim_policy_free(&pol);
	if (S.ks == NULL) {
		if (ptext == NULL)
			snprintf(err, sizeof(err), "the built-in policy dkim-headers is missing");
		proc_fail(ready_fd, err);
	}
	snprintf(ready, sizeof(ready), "%zu DKIM key(s) loaded", dkim_keyset_count(S.ks));
	/* the keys are loaded and tested: from now on, in an empty root as
	 * [server] signer-user, only the sockets, memory, time and randomness
	 * (no front exists yet: the threads wait for requests until READY) */
	if (start_threads(err, sizeof(err)) < 0 ||
	    sandbox_enter("signer", cfg->signer_user, cfg->chroot, err, sizeof(err)) < 0)
		proc_fail(ready_fd, err);
	proc_ready(ready_fd, (uint32_t)dkim_keyset_count(S.ks), ready, NULL, 0);
	log_info("event=signer-ready keys=%zu slots=%zu", dkim_keyset_count(S.ks), S.nslots);
	child_loop();
}

pid_t
signer_spawn(const struct config *cfg, size_t nslots, int timeout, int *fds_r, char *err,
    size_t errlen)
{
	static struct proc_msg m;
	struct proc_role role = {
		.name = "signer",
		.loading = "loading DKIM keys",
		.nfds = nslots,
		.main = child_main,
		.arg = (void *)(uintptr_t)cfg,
	};

	return proc_spawn(&role, timeout, fds_r, &m, err, errlen);
}
