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

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

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
	    (seals = fcntl(memfd, F_GET_SEALS)) < 0 || (seals & SIGNER_SEALS) != SIGNER_SEALS) {
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
