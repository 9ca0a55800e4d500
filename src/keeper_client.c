/*
 * keeper_client.c — front's client for the keeper: AUTH through the IPC
 * client core, the TLS key as synchronous round trips.
 */
#include "keeper_client.h"

#include "log.h"
#include "passwd.h"
#include "proc.h"
#include "proc_client.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <sodium.h>

/* What a key made by keeper_tls_privkey() needs; shared by the client and
 * its keys so that either may go first. */
struct keeper_link {
	int fd;                         /* TLS socket; -1 once the client is freed */
	uint32_t next_id;
	int broken;
	unsigned int refs;
	struct keeper_client *kc;       /* NULL once the client is freed */
	int pk_algo;
	unsigned int bits;
};

struct keeper_req {
	struct proc_req *pr;
	keeper_auth_cb *cb;
	void *arg;
};

struct keeper_client {
	struct proc_client *auth;       /* AUTH socket */
	keeper_dead_cb *dead_cb;
	void *dead_arg;
	struct keeper_link *link;
};

static void
link_unref(struct keeper_link *l)
{
	if (--l->refs > 0)
		return;
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

/* An AUTH_REP: keeper_auth_rep_decode. */
static int
auth_rep_check(const struct proc_msg *m)
{
	unsigned int flags;
	int result;

	return keeper_auth_rep_decode(m->payload, m->len, &result, &flags);
}

static void
auth_dead(void *arg, const char *why)
{
	struct keeper_client *kc = arg;

	kc->link->broken = 1;
	if (kc->dead_cb != NULL)
		kc->dead_cb(kc->dead_arg);
}

static void
auth_answered(void *arg, int status, const struct proc_msg *m)
{
	struct keeper_req *kr = arg;
	keeper_auth_cb *cb = kr->cb;
	void *cbarg = kr->arg;
	unsigned int flags = 0;
	int res;

	switch (status) {
	case PROC_CLIENT_OK:
		/* checked by auth_rep_check */
		(void)keeper_auth_rep_decode(m->payload, m->len, &res, &flags);
		break;
	case PROC_CLIENT_DEAD:
		res = KEEPER_DEAD;
		break;
	case PROC_CLIENT_BADREQ:
		res = KEEPER_AUTH_BADREQ;
		break;
	case PROC_CLIENT_BUSY:
	case PROC_CLIENT_TIMEOUT:
		res = KEEPER_AUTH_BUSY;
		break;
	default:
		res = status;                   /* keeper_auth's own answer */
		break;
	}
	free(kr);
	cb(cbarg, res, flags);
}

struct keeper_client *
keeper_client_new(struct event_base *base, const struct keeper_fds *fds, size_t queue_max,
    keeper_dead_cb *dead_cb, void *arg)
{
	struct keeper_client *kc = xcalloc(1, sizeof(*kc));
	struct keeper_link *l = xcalloc(1, sizeof(*l));
	struct proc_client_conf conf = {
		.role = "keeper",
		.lost = "the key keeper is gone; no TLS handshake or AUTH can complete, failing "
		    "closed",
		.reply_type = PROC_AUTH_REP,
		.check = auth_rep_check,
		.queue_max = queue_max,
		.timeout_ms = 0,                /* the session's own timeouts bound the wait */
		.cancel_type = PROC_AUTH_CANCEL,
		.dead_cb = auth_dead,
		.dead_arg = kc,
	};
	int fl;

	kc->dead_cb = dead_cb;
	kc->dead_arg = arg;
	kc->link = l;
	l->fd = fds->tls_fd;
	l->refs = 1;
	l->kc = kc;
	l->pk_algo = fds->pk_algo;
	l->bits = fds->bits;
	randombytes_buf(&l->next_id, sizeof(l->next_id));
	if ((fl = fcntl(l->fd, F_GETFL)) >= 0)
		(void)fcntl(l->fd, F_SETFL, fl | O_NONBLOCK);
	kc->auth = proc_client_new(base, fds->auth_fd, &conf);
	return kc;
}

void
keeper_client_free(struct keeper_client **kcp)
{
	struct keeper_client *kc;

	if (kcp == NULL || (kc = *kcp) == NULL)
		return;
	proc_client_free(&kc->auth);
	kc->link->broken = 1;
	kc->link->kc = NULL;
	close(kc->link->fd);
	kc->link->fd = -1;
	link_unref(kc->link);
	free(kc);
	*kcp = NULL;
}

struct keeper_req *
keeper_auth(struct keeper_client *kc, const char *login, const char *password, size_t pwlen,
    const char *peer, keeper_auth_cb *cb, void *arg)
{
	struct keeper_req *kr = xcalloc(1, sizeof(*kr));
	uint8_t payload[16 + PASSWD_LOGIN_MAX + KEEPER_PW_MAX + KEEPER_PEER_MAX];
	long n;

	kr->cb = cb;
	kr->arg = arg;
	n = keeper_auth_req_encode(payload, sizeof(payload), login, password, pwlen, peer);
	if (n < 0)
		kr->pr = proc_client_answer(kc->auth, KEEPER_AUTH_BADREQ, auth_answered, kr);
	else
		kr->pr = proc_client_call(kc->auth, PROC_AUTH_REQ, payload, (size_t)n, -1,
		    auth_answered, kr);
	sodium_memzero(payload, sizeof(payload));
	return kr;
}

void
keeper_cancel(struct keeper_req **rp)
{
	struct keeper_req *kr;

	if (rp == NULL || (kr = *rp) == NULL)
		return;
	proc_req_cancel(&kr->pr);
	free(kr);
	*rp = NULL;
}

size_t
keeper_pending(const struct keeper_client *kc)
{
	return proc_client_pending(kc->auth);
}

uint64_t
keeper_dropped(const struct keeper_client *kc)
{
	return proc_client_dropped(kc->auth);
}

/* ---- front's client: the key ---- */

static int
link_lost(struct keeper_link *l, const char *why)
{
	l->broken = 1;
	log_err("event=keeper-lost %s during a TLS key operation", why);
	/* callbacks must not run inside GnuTLS: the client dies from the loop */
	if (l->kc != NULL)
		proc_client_kill(l->kc->auth, why);
	return GNUTLS_E_PK_SIGN_FAILED;
}

static int
msec_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int)((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* One key operation: send it, wait for its answer. */
static int
link_roundtrip(struct keeper_link *l, uint8_t op, gnutls_sign_algorithm_t algo,
    unsigned int flags, const gnutls_datum_t *data, gnutls_datum_t *sig)
{
	static struct proc_msg m;
	uint8_t buf[16 + KEEPER_SIGN_DATA_MAX];
	struct keeper_tls_fields f = { op, (uint32_t)algo, flags, data->data, data->size };
	struct proc_reader r;
	struct pollfd pfd;
	struct timespec t0;
	const uint8_t *s;
	uint32_t status, id;
	size_t slen;
	long n;
	int rc, left;

	if (l->broken || l->fd < 0)
		return GNUTLS_E_PK_SIGN_FAILED;
	if ((n = keeper_tls_req_encode(buf, sizeof(buf), &f)) < 0)
		return GNUTLS_E_INVALID_REQUEST;
	if ((id = ++l->next_id) == 0)
		id = ++l->next_id;
	if (proc_send(l->fd, PROC_TLS_SIGN_REQ, id, buf, (size_t)n, -1) < 0)
		return link_lost(l, "reason=send-error");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if ((left = KEEPER_TLS_TIMEOUT_MS - msec_since(&t0)) <= 0)
			return link_lost(l, "reason=timeout");
		pfd.fd = l->fd;
		pfd.events = POLLIN;
		if ((rc = poll(&pfd, 1, left)) < 0 && errno != EINTR)
			return link_lost(l, "reason=poll-error");
		if (rc <= 0)
			continue;
		rc = proc_recv(l->fd, &m, NULL);
		if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (rc == 0)
			return link_lost(l, "reason=eof");
		if (rc < 0)
			return link_lost(l, errno == EPROTO ? "reason=protocol-error" :
			    "reason=read-error");
		if (m.type != PROC_TLS_SIGN_REP)
			return link_lost(l, "reason=malformed-reply");
		if (m.id == id)
			break;
		/* an answer to an earlier worker in this slot (or one that timed
		 * out): not ours, and no sign of a broken keeper */
		log_debug("event=keeper-reply-dropped id=%u (waiting for %u)", m.id, id);
	}
	proc_reader_init(&r, m.payload, m.len);
	if (proc_get_u32(&r, &status) < 0 ||
	    proc_get_bytes(&r, &s, &slen, KEEPER_SIG_MAX) < 0 || proc_reader_end(&r) < 0 ||
	    (status == 0) != (slen > 0))
		return link_lost(l, "reason=malformed-reply");
	if (status != 0) {
		rc = (int)(int32_t)status;
		return rc < 0 && rc > -1000 ? rc : GNUTLS_E_PK_SIGN_FAILED;
	}
	if ((sig->data = gnutls_malloc(slen)) == NULL)
		return GNUTLS_E_MEMORY_ERROR;
	memcpy(sig->data, s, slen);
	sig->size = (unsigned int)slen;
	return 0;
}

static int
ext_sign_hash(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata,
    unsigned int flags, const gnutls_datum_t *hash, gnutls_datum_t *sig)
{
	return link_roundtrip(userdata, KEEPER_OP_SIGN_HASH, algo, flags, hash, sig);
}

static int
ext_sign_data(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata,
    unsigned int flags, const gnutls_datum_t *data, gnutls_datum_t *sig)
{
	return link_roundtrip(userdata, KEEPER_OP_SIGN_DATA, algo, flags, data, sig);
}

static int
ext_info(gnutls_privkey_t key, unsigned int flags, void *userdata)
{
	struct keeper_link *l = userdata;
	gnutls_sign_algorithm_t sig;

	if (flags & GNUTLS_PRIVKEY_INFO_HAVE_SIGN_ALGO) {
		sig = (gnutls_sign_algorithm_t)GNUTLS_FLAGS_TO_SIGN_ALGO(flags);
		if (sig == GNUTLS_SIGN_RSA_RAW)
			return l->pk_algo == GNUTLS_PK_RSA;
		return gnutls_sign_supports_pk_algorithm(sig, (gnutls_pk_algorithm_t)l->pk_algo) ?
		    1 : 0;
	}
	if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO)
		return l->pk_algo;
	if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO_BITS)
		return (int)l->bits;
	return -1;
}

static void
ext_deinit(gnutls_privkey_t key, void *userdata)
{
	link_unref(userdata);
}

int
keeper_tls_privkey(struct keeper_client *kc, struct gnutls_privkey_st **out, char *err,
    size_t errlen)
{
	gnutls_privkey_t key;
	int rc;

	*out = NULL;
	if (proc_client_dead(kc->auth) || kc->link->broken) {
		snprintf(err, errlen, "the key keeper is gone");
		return -1;
	}
	if ((rc = gnutls_privkey_init(&key)) < 0) {
		snprintf(err, errlen, "gnutls_privkey_init: %s", gnutls_strerror(rc));
		return -1;
	}
	kc->link->refs++;
	rc = gnutls_privkey_import_ext4(key, kc->link, ext_sign_data, ext_sign_hash, NULL,
	    ext_deinit, ext_info, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
	if (rc < 0) {
		kc->link->refs--;
		gnutls_privkey_deinit(key);
		snprintf(err, errlen, "cannot make the keeper's TLS key usable: %s",
		    gnutls_strerror(rc));
		return -1;
	}
	*out = key;
	return 0;
}
