/*
 * signer.c — the DKIM signer process (child side) and front's client.
 */
#include "signer.h"

#include "config.h"
#include "dkim.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "proc.h"
#include "sandbox.h"
#include "spool.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <event2/event.h>
#include <sodium.h>

#define SIGNER_MSG_MAX (1ULL << 31)
#define SEALS_REQUIRED (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)

/* ---- the signer process ---- */

static void
close_others(int keep)
{
	int fd, max = (int)sysconf(_SC_OPEN_MAX);

	if (max < 0 || max > 65536)
		max = 65536;
	for (fd = 3; fd < max; fd++)
		if (fd != keep)
			(void)close(fd);
}

static void
child_reply(int fd, uint32_t id, uint32_t status, const char *headers)
{
	static uint8_t buf[PROC_MAX_PAYLOAD];
	struct proc_writer w;
	long n;

	proc_writer_init(&w, buf, sizeof(buf));
	proc_put_u32(&w, status);
	proc_put_str(&w, headers ? headers : "");
	if ((n = proc_writer_done(&w)) < 0) {
		/* signatures too long for one message: report, do not truncate */
		proc_writer_init(&w, buf, sizeof(buf));
		proc_put_u32(&w, DKIM_RES_INTERNAL);
		proc_put_str(&w, "");
		n = proc_writer_done(&w);
	}
	if (proc_send(fd, PROC_SIGN_REP, id, buf, (size_t)n, -1) < 0) {
		log_err("signer: cannot answer front: %s", strerror(errno));
		_exit(1);
	}
}

/* One request: map the sealed memfd read-only and sign it. */
static void
child_sign(int fd, struct dkim_keyset *ks, const struct proc_msg *m, int memfd)
{
	struct proc_reader r;
	struct stat st;
	uint64_t size;
	char *headers = NULL;
	void *map;
	int seals;
	enum dkim_result res;

	proc_reader_init(&r, m->payload, m->len);
	if (memfd < 0 || proc_get_u64(&r, &size) < 0 || proc_reader_end(&r) < 0 ||
	    size == 0 || size > SIGNER_MSG_MAX || fstat(memfd, &st) < 0 ||
	    (uint64_t)st.st_size != size ||
	    (seals = fcntl(memfd, F_GET_SEALS)) < 0 || (seals & SEALS_REQUIRED) != SEALS_REQUIRED) {
		log_err("signer: refused a malformed request id=%u (not a sealed memfd of the "
		    "stated size)", m->id);
		child_reply(fd, m->id, DKIM_RES_INTERNAL, NULL);
		return;
	}
	map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, memfd, 0);
	if (map == MAP_FAILED) {
		log_err("signer: mmap of %llu bytes: %s", (unsigned long long)size, strerror(errno));
		child_reply(fd, m->id, DKIM_RES_INTERNAL, NULL);
		return;
	}
	res = dkim_sign_message(ks, map, (size_t)size, &headers);
	munmap(map, (size_t)size);
	child_reply(fd, m->id, (uint32_t)res, headers);
	free(headers);
}

static void __attribute__((noreturn))
child_main(const struct config *cfg, int fd)
{
	static struct proc_msg m;
	struct dkim_policy *pol;
	struct dkim_keyset *ks;
	const char *ptext;
	size_t plen;
	char err[1024], ready[160];
	uint8_t buf[512];
	struct proc_writer w;

	close_others(fd);
	metrics_attach(METRICS_SLICE_SIGNER);
	(void)prctl(PR_SET_DUMPABLE, 0);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	log_set_role("signer");
	(void)prctl(PR_SET_NAME, "subproxy-signer");
	ptext = policy_get("dkim-headers", &plen);
	pol = ptext ? dkim_policy_parse("policy/dkim-headers", ptext, plen, err, sizeof(err)) : NULL;
	ks = pol ? dkim_keys_load(cfg->dkims, cfg->ndkims, pol, err, sizeof(err)) : NULL;
	dkim_policy_free(&pol);
	proc_writer_init(&w, buf, sizeof(buf));
	if (ks == NULL) {
		if (ptext == NULL)
			snprintf(err, sizeof(err), "the built-in policy dkim-headers is missing");
		proc_put_u32(&w, 1);
		proc_put_str(&w, err);
		(void)proc_send(fd, PROC_ERR, 0, buf, (size_t)proc_writer_done(&w), -1);
		_exit(1);
	}
	snprintf(ready, sizeof(ready), "%zu DKIM key(s) loaded", dkim_keyset_count(ks));
	proc_put_u32(&w, (uint32_t)dkim_keyset_count(ks));
	proc_put_str(&w, ready);
	/* the keys are loaded and tested: from now on only the socket, memory,
	 * time and randomness */
	sandbox_nodump();
	if (sandbox_seccomp("signer", err, sizeof(err)) < 0) {
		proc_writer_init(&w, buf, sizeof(buf));
		proc_put_u32(&w, 1);
		proc_put_str(&w, err);
		(void)proc_send(fd, PROC_ERR, 0, buf, (size_t)proc_writer_done(&w), -1);
		_exit(1);
	}
	if (proc_send(fd, PROC_READY, 0, buf, (size_t)proc_writer_done(&w), -1) < 0)
		_exit(1);
	log_info("event=signer-ready keys=%zu", dkim_keyset_count(ks));
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int memfd = -1, rc;

		/* wake up at least once per heartbeat interval (metrics.h) */
		metrics_beat();
		rc = poll(&pfd, 1, metrics_beat_interval());
		if (rc < 0 && errno != EINTR) {
			log_err("signer: poll: %s; exiting", strerror(errno));
			dkim_keyset_free(&ks);
			_exit(1);
		}
		if (rc <= 0)
			continue;
		rc = proc_recv(fd, &m, &memfd);

		if (rc == 0) {
			log_debug("signer: front closed the socket, exiting");
			break;
		}
		if (rc < 0) {
			log_err("signer: bad message from front: %s; exiting",
			    errno == EPROTO ? proc_strerror(m.error) : strerror(errno));
			dkim_keyset_free(&ks);
			_exit(1);
		}
		if (m.type != PROC_SIGN_REQ) {
			log_err("signer: unexpected %s from front; exiting", proc_type_name(m.type));
			dkim_keyset_free(&ks);
			_exit(1);
		}
		child_sign(fd, ks, &m, memfd);
		if (memfd >= 0)
			close(memfd);
	}
	dkim_keyset_free(&ks);
	_exit(0);
}

pid_t
signer_spawn(const struct config *cfg, int timeout, int *fd_r, char *err, size_t errlen)
{
	static struct proc_msg m;
	struct proc_reader r;
	struct pollfd pfd;
	int sv[2], status, rc;
	uint32_t code;
	char *text = NULL;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "signer: socketpair: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "signer: fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		child_main(cfg, sv[1]);
	}
	close(sv[1]);
	pfd.fd = sv[0];
	pfd.events = POLLIN;
	do
		rc = poll(&pfd, 1, timeout * 1000);
	while (rc < 0 && errno == EINTR);
	if (rc == 0) {
		snprintf(err, errlen, "signer: no answer within %d s while loading DKIM keys", timeout);
		goto fail;
	}
	rc = proc_recv(sv[0], &m, NULL);
	if (rc <= 0) {
		snprintf(err, errlen, "signer: exited during start-up (see the log lines above)");
		goto fail;
	}
	proc_reader_init(&r, m.payload, m.len);
	if (proc_get_u32(&r, &code) < 0 || proc_get_str(&r, &text, 1024) < 0 ||
	    proc_reader_end(&r) < 0 || (m.type != PROC_READY && m.type != PROC_ERR)) {
		snprintf(err, errlen, "signer: malformed start-up message");
		free(text);
		goto fail;
	}
	if (m.type == PROC_ERR) {
		snprintf(err, errlen, "%s", text);
		free(text);
		goto fail;
	}
	free(text);
	*fd_r = sv[0];
	return pid;
fail:
	close(sv[0]);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return -1;
}

/* ---- front's client ---- */

struct signer_req {
	struct signer_client *sc;
	uint32_t id;
	signer_cb *cb;
	void *arg;
	int status;              /* for deferred failure */
	struct event *defer;
	struct signer_req *next;
};

struct signer_client {
	struct event_base *base;
	int fd;
	struct event *ev;
	uint32_t next_id;
	struct signer_req *head;  /* pending, in order */
	size_t npending;
	int dead;
	signer_dead_cb *dead_cb;
	void *dead_arg;
};

static void
req_unlink(struct signer_req *rq)
{
	struct signer_req **pp;

	for (pp = &rq->sc->head; *pp != NULL; pp = &(*pp)->next)
		if (*pp == rq) {
			*pp = rq->next;
			rq->sc->npending--;
			return;
		}
}

static void
req_free(struct signer_req *rq)
{
	if (rq->defer != NULL)
		event_free(rq->defer);
	free(rq);
}

static void
client_die(struct signer_client *sc, const char *why)
{
	struct signer_req *rq;

	if (sc->dead)
		return;
	sc->dead = 1;
	log_err("event=signer-lost %s: the DKIM signer is gone; no message can be signed, "
	    "failing closed", why);
	if (sc->ev != NULL)
		event_del(sc->ev);
	while ((rq = sc->head) != NULL) {
		req_unlink(rq);
		rq->cb(rq->arg, SIGNER_DEAD, NULL);
		req_free(rq);
	}
	if (sc->dead_cb != NULL)
		sc->dead_cb(sc->dead_arg);
}

static void
client_read(evutil_socket_t fd, short what, void *arg)
{
	static struct proc_msg m;
	struct signer_client *sc = arg;
	struct signer_req *rq;
	struct proc_reader r;
	uint32_t status;
	char *headers = NULL;
	int rc;

	rc = proc_recv(sc->fd, &m, NULL);
	if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (rc == 0) {
		client_die(sc, "reason=eof");
		return;
	}
	if (rc < 0) {
		client_die(sc, errno == EPROTO ? "reason=protocol-error" : "reason=read-error");
		return;
	}
	proc_reader_init(&r, m.payload, m.len);
	if (m.type != PROC_SIGN_REP || proc_get_u32(&r, &status) < 0 ||
	    proc_get_str(&r, &headers, PROC_MAX_PAYLOAD) < 0 || proc_reader_end(&r) < 0 ||
	    status > DKIM_RES_INTERNAL) {
		free(headers);
		client_die(sc, "reason=malformed-reply");
		return;
	}
	/* replies come in request order; a cancelled request's reply finds
	 * no entry and is dropped */
	for (rq = sc->head; rq != NULL && rq->id != m.id; rq = rq->next)
		;
	if (rq != NULL) {
		req_unlink(rq);
		rq->cb(rq->arg, (int)status, status == DKIM_RES_OK ? headers : NULL);
		req_free(rq);
	}
	free(headers);
}

struct signer_client *
signer_client_new(struct event_base *base, int fd, signer_dead_cb *dead_cb, void *arg)
{
	struct signer_client *sc = xcalloc(1, sizeof(*sc));
	int fl;

	sc->base = base;
	sc->fd = fd;
	sc->dead_cb = dead_cb;
	sc->dead_arg = arg;
	if ((fl = fcntl(fd, F_GETFL)) >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	sc->ev = event_new(base, fd, EV_READ | EV_PERSIST, client_read, sc);
	event_add(sc->ev, NULL);
	return sc;
}

void
signer_client_free(struct signer_client **scp)
{
	struct signer_client *sc;
	struct signer_req *rq;

	if (scp == NULL || (sc = *scp) == NULL)
		return;
	while ((rq = sc->head) != NULL) {
		req_unlink(rq);
		req_free(rq);
	}
	if (sc->ev != NULL)
		event_free(sc->ev);
	close(sc->fd);
	free(sc);
	*scp = NULL;
}

static void
req_fail_later(evutil_socket_t fd, short what, void *arg)
{
	struct signer_req *rq = arg;

	req_unlink(rq);
	rq->cb(rq->arg, rq->status, NULL);
	req_free(rq);
}

/* The message as the signer must see it, in a sealed memfd. */
static int
make_memfd(const char *prefix, size_t prefix_len, const struct spool *sp, uint64_t *size_r)
{
	uint64_t off = 0, total = prefix_len + spool_size(sp);
	char buf[65536];
	size_t n;
	int fd;

	if ((fd = memfd_create("subproxy-sign", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0)
		return -1;
	if (ftruncate(fd, (off_t)total) < 0 || pwrite(fd, prefix, prefix_len, 0) !=
	    (ssize_t)prefix_len)
		goto err;
	while (off < spool_size(sp)) {
		if (spool_read(sp, off, buf, sizeof(buf), &n) < 0 || n == 0)
			goto err;
		if (pwrite(fd, buf, n, (off_t)(prefix_len + off)) != (ssize_t)n)
			goto err;
		off += n;
	}
	if (fcntl(fd, F_ADD_SEALS, SEALS_REQUIRED | F_SEAL_SEAL) < 0)
		goto err;
	sodium_memzero(buf, sizeof(buf));
	*size_r = total;
	return fd;
err:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return -1;
}

struct signer_req *
signer_sign(struct signer_client *sc, const char *prefix, size_t prefix_len,
    const struct spool *sp, signer_cb *cb, void *arg)
{
	struct signer_req *rq = xcalloc(1, sizeof(*rq)), **pp;
	uint8_t buf[16];
	struct proc_writer w;
	uint64_t size = 0;
	int memfd = -1;

	rq->sc = sc;
	rq->cb = cb;
	rq->arg = arg;
	rq->id = ++sc->next_id;
	for (pp = &sc->head; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = rq;
	sc->npending++;
	if (sc->dead) {
		rq->status = SIGNER_DEAD;
		goto later;
	}
	if ((memfd = make_memfd(prefix, prefix_len, sp, &size)) < 0) {
		log_err("signer: cannot build the message for signing: %s", strerror(errno));
		rq->status = DKIM_RES_INTERNAL;
		goto later;
	}
	proc_writer_init(&w, buf, sizeof(buf));
	proc_put_u64(&w, size);
	if (proc_send(sc->fd, PROC_SIGN_REQ, rq->id, buf, (size_t)proc_writer_done(&w),
	    memfd) < 0) {
		close(memfd);
		rq->status = SIGNER_DEAD;
		rq->defer = event_new(sc->base, -1, 0, req_fail_later, rq);
		event_active(rq->defer, 0, 0);
		/* the callbacks of the others run from client_die via the loop */
		return rq;
	}
	close(memfd);
	return rq;
later:
	rq->defer = event_new(sc->base, -1, 0, req_fail_later, rq);
	event_active(rq->defer, 0, 0);
	return rq;
}

void
signer_cancel(struct signer_req **rp)
{
	struct signer_req *rq;

	if (rp == NULL || (rq = *rp) == NULL)
		return;
	req_unlink(rq);
	req_free(rq);
	*rp = NULL;
}

size_t
signer_pending(const struct signer_client *sc)
{
	return sc->npending;
}
