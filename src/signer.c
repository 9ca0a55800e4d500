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
#include "proc_client.h"
#include "proc_spawn.h"
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

static void
child_main(void *arg, int ready_fd, const int *fds, size_t nfds)
{
	static struct proc_msg m;
	const struct config *cfg = arg;
	struct dkim_policy *pol;
	struct dkim_keyset *ks;
	const char *ptext;
	size_t plen;
	char err[1024], ready[160];
	int fd = fds[0];

	metrics_attach(METRICS_SLICE_SIGNER);
	ptext = policy_get("dkim-headers", &plen);
	pol = ptext ? dkim_policy_parse("policy/dkim-headers", ptext, plen, err, sizeof(err)) : NULL;
	ks = pol ? dkim_keys_load(cfg->dkims, cfg->ndkims, pol, err, sizeof(err)) : NULL;
	dkim_policy_free(&pol);
	if (ks == NULL) {
		if (ptext == NULL)
			snprintf(err, sizeof(err), "the built-in policy dkim-headers is missing");
		proc_fail(ready_fd, err);
	}
	snprintf(ready, sizeof(ready), "%zu DKIM key(s) loaded", dkim_keyset_count(ks));
	/* the keys are loaded and tested: from now on only the socket, memory,
	 * time and randomness */
	sandbox_nodump();
	if (sandbox_seccomp("signer", err, sizeof(err)) < 0)
		proc_fail(ready_fd, err);
	proc_ready(ready_fd, (uint32_t)dkim_keyset_count(ks), ready, NULL, 0);
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
	struct proc_role role = {
		.name = "signer",
		.loading = "loading DKIM keys",
		.nfds = 1,
		.main = child_main,
		.arg = (void *)(uintptr_t)cfg,
	};

	return proc_spawn(&role, timeout, fd_r, &m, err, errlen);
}

/* ---- front's client ---- */

const char *
signer_status_name(int status)
{
	switch (status) {
	case SIGNER_DEAD:	return "signer-dead";
	case SIGNER_BUSY:	return "signer-busy";
	case SIGNER_TIMEOUT:	return "signer-timeout";
	default:		return dkim_result_name((enum dkim_result)status);
	}
}

struct signer_req {
	struct proc_req *pr;
	signer_cb *cb;
	void *arg;
};

struct signer_client {
	struct proc_client *pc;
	signer_dead_cb *dead_cb;
	void *dead_arg;
};

/* A SIGN_REP: u32 status (an enum dkim_result), str headers. */
static int
sign_rep_check(const struct proc_msg *m)
{
	struct proc_reader r;
	const uint8_t *h;
	size_t hlen;
	uint32_t status;

	proc_reader_init(&r, m->payload, m->len);
	if (proc_get_u32(&r, &status) < 0 || proc_get_bytes(&r, &h, &hlen, PROC_MAX_PAYLOAD) < 0 ||
	    proc_reader_end(&r) < 0 || status > DKIM_RES_INTERNAL || memchr(h, '\0', hlen) != NULL)
		return -1;
	return 0;
}

static void
sign_dead(void *arg, const char *why)
{
	struct signer_client *sc = arg;

	if (sc->dead_cb != NULL)
		sc->dead_cb(sc->dead_arg);
}

static void
sign_reply(void *arg, int status, const struct proc_msg *m)
{
	struct signer_req *sr = arg;
	signer_cb *cb = sr->cb;
	void *cbarg = sr->arg;
	struct proc_reader r;
	uint32_t st;
	char *headers = NULL;

	free(sr);
	switch (status) {
	case PROC_CLIENT_OK:
		/* checked by sign_rep_check */
		proc_reader_init(&r, m->payload, m->len);
		(void)proc_get_u32(&r, &st);
		(void)proc_get_str(&r, &headers, PROC_MAX_PAYLOAD);
		cb(cbarg, (int)st, st == DKIM_RES_OK ? headers : NULL);
		free(headers);
		return;
	case PROC_CLIENT_DEAD:
		cb(cbarg, SIGNER_DEAD, NULL);
		return;
	case PROC_CLIENT_BUSY:
		cb(cbarg, SIGNER_BUSY, NULL);
		return;
	case PROC_CLIENT_TIMEOUT:
		cb(cbarg, SIGNER_TIMEOUT, NULL);
		return;
	case PROC_CLIENT_BADREQ:
		cb(cbarg, DKIM_RES_INTERNAL, NULL);
		return;
	default:
		cb(cbarg, status, NULL);        /* signer_sign's own answer */
		return;
	}
}

struct signer_client *
signer_client_new(struct event_base *base, int fd, unsigned int timeout_ms,
    signer_dead_cb *dead_cb, void *arg)
{
	struct signer_client *sc = xcalloc(1, sizeof(*sc));
	struct proc_client_conf conf = {
		.role = "signer",
		.lost = "the DKIM signer is gone; no message can be signed, failing closed",
		.reply_type = PROC_SIGN_REP,
		.check = sign_rep_check,
		.queue_max = SIGNER_QUEUE_MAX,
		.timeout_ms = timeout_ms,
		.dead_cb = sign_dead,
		.dead_arg = sc,
	};

	sc->dead_cb = dead_cb;
	sc->dead_arg = arg;
	sc->pc = proc_client_new(base, fd, &conf);
	return sc;
}

void
signer_client_free(struct signer_client **scp)
{
	struct signer_client *sc;

	if (scp == NULL || (sc = *scp) == NULL)
		return;
	proc_client_free(&sc->pc);
	free(sc);
	*scp = NULL;
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
	struct signer_req *sr = xcalloc(1, sizeof(*sr));
	uint8_t buf[16];
	struct proc_writer w;
	uint64_t size = 0;
	int memfd;

	sr->cb = cb;
	sr->arg = arg;
	if (proc_client_dead(sc->pc)) {
		sr->pr = proc_client_answer(sc->pc, SIGNER_DEAD, sign_reply, sr);
		return sr;
	}
	if ((memfd = make_memfd(prefix, prefix_len, sp, &size)) < 0) {
		log_err("signer: cannot build the message for signing: %s", strerror(errno));
		sr->pr = proc_client_answer(sc->pc, DKIM_RES_INTERNAL, sign_reply, sr);
		return sr;
	}
	proc_writer_init(&w, buf, sizeof(buf));
	proc_put_u64(&w, size);
	/* the memfd is the client's now: closed once sent */
	sr->pr = proc_client_call(sc->pc, PROC_SIGN_REQ, buf, (size_t)proc_writer_done(&w), memfd,
	    sign_reply, sr);
	return sr;
}

void
signer_cancel(struct signer_req **rp)
{
	struct signer_req *sr;

	if (rp == NULL || (sr = *rp) == NULL)
		return;
	proc_req_cancel(&sr->pr);
	free(sr);
	*rp = NULL;
}

size_t
signer_pending(const struct signer_client *sc)
{
	return proc_client_pending(sc->pc);
}

uint64_t
signer_dropped(const struct signer_client *sc)
{
	return proc_client_dropped(sc->pc);
}
