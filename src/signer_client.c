/* signer_client.c — front's client for the signer (through proc_client). */
#include "signer_client.h"

#include "config.h"
#include "dkim.h"
#include "log.h"
#include "proc.h"
#include "proc_client.h"
#include "signer.h"
#include "spool.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <sodium.h>

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

/* the signer takes every message front accepts ([limits] message-size),
 * with the header fields front adds (far less than 1 MiB: a HELO name
 * from a command line, the peer, the hostname, a TLS description, a date,
 * a Message-ID) */
_Static_assert(CONFIG_MESSAGE_SIZE_MAX + (1 << 20) <= SIGNER_MSG_MAX, "front accepts larger "
    "messages than the signer takes");

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
	if (fcntl(fd, F_ADD_SEALS, SIGNER_SEALS | F_SEAL_SEAL) < 0)
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
