/*
 * signer.c — the DKIM signer process: loads the keys, signs sealed memfds.
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
#include <sys/mman.h>

/* One client slot: a front worker's socket and the reply it has not taken
 * yet (while there is one, the slot's requests are not read). */
struct slot {
	int fd;                         /* -1 once front closed it */
	uint8_t *reply;                 /* a whole SIGN_REP payload, or NULL */
	size_t replylen;
	uint32_t reply_id;
};

static struct {
	struct slot *slots;
	size_t nslots, nopen;
	struct dkim_keyset *ks;
} S;

static void
slot_close(size_t i)
{
	struct slot *sl = &S.slots[i];

	log_debug("signer: front closed slot %zu", i);
	close(sl->fd);
	sl->fd = -1;
	free(sl->reply);
	sl->reply = NULL;
	if (--S.nopen == 0) {
		log_debug("signer: every slot is closed, exiting");
		dkim_keyset_free(&S.ks);
		_exit(0);
	}
}

/* Send slot i's waiting reply if its socket has room. */
static void
slot_flush(size_t i)
{
	struct slot *sl = &S.slots[i];

	if (sl->reply == NULL)
		return;
	if (proc_trysend(sl->fd, PROC_SIGN_REP, sl->reply_id, sl->reply, sl->replylen, -1) < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
			return;
		if (errno == EPIPE || errno == ECONNRESET) {
			slot_close(i);
			return;
		}
		log_err("signer: cannot answer front on slot %zu: %s", i, strerror(errno));
		dkim_keyset_free(&S.ks);
		_exit(1);
	}
	free(sl->reply);
	sl->reply = NULL;
}

/* Answer a request of slot i: sent now, or kept until front reads. */
static void
child_reply(size_t i, uint32_t id, uint32_t status, const char *headers)
{
	static uint8_t buf[PROC_MAX_PAYLOAD];
	struct slot *sl = &S.slots[i];
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
	sl->reply = xmalloc((size_t)n);
	memcpy(sl->reply, buf, (size_t)n);
	sl->replylen = (size_t)n;
	sl->reply_id = id;
	slot_flush(i);
}

/* One request of slot i: map the sealed memfd read-only and sign it. */
static void
child_sign(size_t i, const struct proc_msg *m, int memfd)
{
	struct proc_reader r;
	uint64_t size;
	off_t end;
	char *headers = NULL;
	void *map;
	int seals;
	enum dkim_result res;

	/* the size by lseek, not fstat: glibc's fstat is newfstatat, which the
	 * filter forbids (it could look up paths) */
	proc_reader_init(&r, m->payload, m->len);
	if (memfd < 0 || proc_get_u64(&r, &size) < 0 || proc_reader_end(&r) < 0 ||
	    size == 0 || size > SIGNER_MSG_MAX || (end = lseek(memfd, 0, SEEK_END)) < 0 ||
	    (uint64_t)end != size ||
	    (seals = fcntl(memfd, F_GET_SEALS)) < 0 || (seals & SIGNER_SEALS) != SIGNER_SEALS) {
		log_err("signer: refused a malformed request id=%u (not a sealed memfd of the "
		    "stated size)", m->id);
		child_reply(i, m->id, DKIM_RES_INTERNAL, NULL);
		return;
	}
	map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, memfd, 0);
	if (map == MAP_FAILED) {
		log_err("signer: mmap of %llu bytes: %s", (unsigned long long)size, strerror(errno));
		child_reply(i, m->id, DKIM_RES_INTERNAL, NULL);
		return;
	}
	res = dkim_sign_message(S.ks, map, (size_t)size, &headers);
	munmap(map, (size_t)size);
	child_reply(i, m->id, (uint32_t)res, headers);
	free(headers);
}

/* Read and serve one request of slot i. */
static void
serve(size_t i)
{
	static struct proc_msg m;
	int memfd = -1, rc = proc_recv(S.slots[i].fd, &m, &memfd);

	if (rc == 0 || (rc < 0 && errno == ECONNRESET)) {
		slot_close(i);
		return;
	}
	if (rc < 0) {
		log_err("signer: bad message from front on slot %zu: %s; exiting", i,
		    errno == EPROTO ? proc_strerror(m.error) : strerror(errno));
		dkim_keyset_free(&S.ks);
		_exit(1);
	}
	if (m.type != PROC_SIGN_REQ) {
		log_err("signer: unexpected %s from front on slot %zu; exiting",
		    proc_type_name(m.type), i);
		dkim_keyset_free(&S.ks);
		_exit(1);
	}
	child_sign(i, &m, memfd);
	if (memfd >= 0)
		close(memfd);
}

/* Every slot in turn, one request each per round; a slot whose front does
 * not take its reply waits, the others do not. */
static void __attribute__((noreturn))
child_loop(void)
{
	struct pollfd *pfd = xcalloc(S.nslots, sizeof(*pfd));
	size_t i;
	int rc;

	for (;;) {
		for (i = 0; i < S.nslots; i++) {
			pfd[i].fd = S.slots[i].fd;
			pfd[i].events = S.slots[i].reply != NULL ? POLLOUT : POLLIN;
		}
		/* wake up at least once per heartbeat interval (metrics.h) */
		metrics_beat();
		if ((rc = poll(pfd, S.nslots, metrics_beat_interval())) < 0 && errno != EINTR) {
			log_err("signer: poll: %s", strerror(errno));
			_exit(1);
		}
		for (i = 0; rc > 0 && i < S.nslots; i++) {
			if (pfd[i].revents == 0 || S.slots[i].fd < 0)
				continue;
			if (S.slots[i].reply != NULL) {
				if (pfd[i].revents & POLLOUT)
					slot_flush(i);
				else
					slot_close(i);  /* hung up with a reply waiting */
			} else {
				serve(i);
			}
		}
	}
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
	for (i = 0; i < nfds; i++)
		S.slots[i].fd = fds[i];
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
	 * [server] signer-user, only the sockets, memory, time and randomness */
	if (sandbox_enter("signer", cfg->signer_user, cfg->chroot, err, sizeof(err)) < 0)
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
