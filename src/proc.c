/* proc.c — typed IPC messages over SOCK_SEQPACKET, with fd passing. */
#include "proc.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* How many descriptors one recvmsg() can take in; anything beyond the one
 * allowed is closed and refused. */
#define PROC_MAX_RECV_FDS	8

static const char *const type_names[PROC_TYPE_MAX] = {
	[PROC_ERR] = "ERR",
	[PROC_SIGN_REQ] = "SIGN_REQ",
	[PROC_SIGN_REP] = "SIGN_REP",
	[PROC_AUTH_REQ] = "AUTH_REQ",
	[PROC_AUTH_REP] = "AUTH_REP",
	[PROC_TLS_SIGN_REQ] = "TLS_SIGN_REQ",
	[PROC_TLS_SIGN_REP] = "TLS_SIGN_REP",
	[PROC_READY] = "READY",
	[PROC_AUDIT_REC] = "AUDIT_REC",
	[PROC_AUDIT_ACK] = "AUDIT_ACK",
	[PROC_AUDIT_STATE] = "AUDIT_STATE",
	[PROC_AUTH_CANCEL] = "AUTH_CANCEL",
};

const char *
proc_type_name(unsigned int type)
{
	if (type == 0 || type >= PROC_TYPE_MAX)
		return "unknown";
	return type_names[type];
}

const char *
proc_strerror(int status)
{
	switch (status) {
	case PROC_OK:		return "ok";
	case PROC_ESHORT:	return "shorter than a message header";
	case PROC_ELENGTH:	return "payload length does not match the header";
	case PROC_ETOOBIG:	return "message too large";
	case PROC_EVERSION:	return "unsupported protocol version";
	case PROC_ETYPE:	return "unknown message type";
	case PROC_EFLAGS:	return "reserved flag bits set";
	case PROC_EFD:		return "file descriptor missing, unexpected or extra";
	default:		return "unknown error";
	}
}

static void
be16_put(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t
be16_get(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
be32_get(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Validate the arguments of a message to be sent and write its header. */
static int
hdr_encode(uint8_t hdr[PROC_HDR_LEN], unsigned int type, uint16_t flags, uint32_t id,
    const void *payload, size_t len)
{
	if (type == 0 || type >= PROC_TYPE_MAX || (flags & ~PROC_F_KNOWN) != 0 ||
	    len > PROC_MAX_PAYLOAD || (len > 0 && payload == NULL))
		return -1;
	hdr[0] = PROC_VERSION;
	hdr[1] = (uint8_t)type;
	be16_put(hdr + 2, flags);
	be32_put(hdr + 4, id);
	be32_put(hdr + 8, (uint32_t)len);
	return 0;
}

long
proc_msg_encode(uint8_t *buf, size_t bufsize, unsigned int type, uint16_t flags,
    uint32_t id, const void *payload, size_t len)
{
	if (buf == NULL || bufsize < PROC_HDR_LEN || len > bufsize - PROC_HDR_LEN)
		return -1;
	if (hdr_encode(buf, type, flags, id, payload, len) < 0)
		return -1;
	if (len > 0)
		memcpy(buf + PROC_HDR_LEN, payload, len);
	return (long)(PROC_HDR_LEN + len);
}

/* Parse and check a header; `rest` is the number of payload bytes present. */
static int
hdr_decode(const uint8_t *hdr, size_t rest, struct proc_msg *m)
{
	m->version = hdr[0];
	m->type = hdr[1];
	m->flags = be16_get(hdr + 2);
	m->id = be32_get(hdr + 4);
	m->len = be32_get(hdr + 8);
	if (m->version != PROC_VERSION)
		return PROC_EVERSION;
	if (m->type == 0 || m->type >= PROC_TYPE_MAX)
		return PROC_ETYPE;
	if ((m->flags & ~PROC_F_KNOWN) != 0)
		return PROC_EFLAGS;
	if (m->len > PROC_MAX_PAYLOAD)
		return PROC_ETOOBIG;
	if (m->len != rest)
		return PROC_ELENGTH;
	return PROC_OK;
}

int
proc_msg_decode(const uint8_t *buf, size_t len, struct proc_msg *m)
{
	if (len < PROC_HDR_LEN)
		return m->error = PROC_ESHORT;
	if ((m->error = hdr_decode(buf, len - PROC_HDR_LEN, m)) != PROC_OK)
		return m->error;
	if (m->len > 0)
		memcpy(m->payload, buf + PROC_HDR_LEN, m->len);
	return PROC_OK;
}

/* One sendmsg(2) of a message (EINTR retried); `flags` adds MSG_DONTWAIT. */
static int
send_once(int fd, unsigned int type, uint32_t id, const void *payload, size_t len, int passfd,
    int flags)
{
	uint8_t hdr[PROC_HDR_LEN];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov[2];
	struct msghdr msg;
	struct cmsghdr *cm;
	ssize_t n;

	if (hdr_encode(hdr, type, passfd >= 0 ? PROC_F_FD : 0, id, payload, len) < 0) {
		errno = EINVAL;
		return -1;
	}
	memset(&msg, 0, sizeof(msg));
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)(uintptr_t)payload;
	iov[1].iov_len = len;
	msg.msg_iov = iov;
	msg.msg_iovlen = len > 0 ? 2 : 1;
	if (passfd >= 0) {
		memset(&cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &passfd, sizeof(int));
	}
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if ((size_t)n != PROC_HDR_LEN + len) {
		/* SOCK_SEQPACKET sends a datagram whole or not at all */
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

int
proc_trysend(int fd, unsigned int type, uint32_t id, const void *payload, size_t len,
    int passfd)
{
	return send_once(fd, type, id, payload, len, passfd, MSG_DONTWAIT);
}

int
proc_send(int fd, unsigned int type, uint32_t id, const void *payload, size_t len,
    int passfd)
{
	struct pollfd pfd;

	for (;;) {
		if (send_once(fd, type, id, payload, len, passfd, 0) == 0)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		/* a non-blocking socket: wait for room */
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			return -1;
	}
}

/* Close every descriptor in fds[0..n). */
static void
close_fds(const int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

/* Collect the SCM_RIGHTS descriptors of a received message into fds; returns
 * how many (at most max; the kernel drops what the control buffer lacked). */
static size_t
collect_fds(struct msghdr *msg, int *fds, size_t max)
{
	struct cmsghdr *cm;
	size_t n = 0, k, i;
	int v;

	for (cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k; i++) {
			memcpy(&v, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (n < max)
				fds[n++] = v;
			else
				close(v);
		}
	}
	return n;
}

int
proc_recv(int fd, struct proc_msg *m, int *fd_r)
{
	uint8_t hdr[PROC_HDR_LEN];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * PROC_MAX_RECV_FDS)];
	} cbuf;
	int fds[PROC_MAX_RECV_FDS];
	struct iovec iov[2];
	struct msghdr msg;
	size_t nfds;
	ssize_t n;
	int st;

	if (fd_r != NULL)
		*fd_r = -1;
	memset(&msg, 0, sizeof(msg));
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = m->payload;
	iov[1].iov_len = sizeof(m->payload);
	msg.msg_iov = iov;
	msg.msg_iovlen = 2;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	do {
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	nfds = collect_fds(&msg, fds, PROC_MAX_RECV_FDS);
	if (n == 0 && nfds == 0)
		return 0;

	if (msg.msg_flags & MSG_TRUNC)
		st = PROC_ETOOBIG;
	else if (msg.msg_flags & MSG_CTRUNC)
		st = PROC_EFD;
	else if ((size_t)n < PROC_HDR_LEN)
		st = PROC_ESHORT;
	else
		st = hdr_decode(hdr, (size_t)n - PROC_HDR_LEN, m);
	if (st == PROC_OK) {
		if (m->flags & PROC_F_FD)
			st = (nfds == 1 && fd_r != NULL) ? PROC_OK : PROC_EFD;
		else if (nfds != 0)
			st = PROC_EFD;
	}
	m->error = st;
	if (st != PROC_OK) {
		close_fds(fds, nfds);
		errno = EPROTO;
		return -1;
	}
	if (nfds == 1)
		*fd_r = fds[0];
	return 1;
}

/* ---- payload writer ---- */

void
proc_writer_init(struct proc_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->error = 0;
}

static uint8_t *
writer_reserve(struct proc_writer *w, size_t n)
{
	uint8_t *p;

	if (w->error || n > w->cap - w->len) {
		w->error = 1;
		return NULL;
	}
	p = w->buf + w->len;
	w->len += n;
	return p;
}

void
proc_put_u8(struct proc_writer *w, uint8_t v)
{
	uint8_t *p = writer_reserve(w, 1);

	if (p != NULL)
		*p = v;
}

void
proc_put_u32(struct proc_writer *w, uint32_t v)
{
	uint8_t *p = writer_reserve(w, 4);

	if (p != NULL)
		be32_put(p, v);
}

void
proc_put_u64(struct proc_writer *w, uint64_t v)
{
	uint8_t *p = writer_reserve(w, 8);

	if (p != NULL) {
		be32_put(p, (uint32_t)(v >> 32));
		be32_put(p + 4, (uint32_t)v);
	}
}

void
proc_put_bytes(struct proc_writer *w, const void *src, size_t n)
{
	uint8_t *p;

	if (n > UINT32_MAX) {
		w->error = 1;
		return;
	}
	proc_put_u32(w, (uint32_t)n);
	if ((p = writer_reserve(w, n)) != NULL && n > 0)
		memcpy(p, src, n);
}

void
proc_put_str(struct proc_writer *w, const char *s)
{
	proc_put_bytes(w, s, strlen(s));
}

long
proc_writer_done(const struct proc_writer *w)
{
	return w->error ? -1 : (long)w->len;
}

/* ---- payload reader ---- */

void
proc_reader_init(struct proc_reader *r, const uint8_t *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->off = 0;
	r->error = 0;
}

static const uint8_t *
reader_take(struct proc_reader *r, size_t n)
{
	const uint8_t *p;

	if (r->error || n > r->len - r->off) {
		r->error = 1;
		return NULL;
	}
	p = r->buf + r->off;
	r->off += n;
	return p;
}

int
proc_get_u8(struct proc_reader *r, uint8_t *v)
{
	const uint8_t *p = reader_take(r, 1);

	if (p == NULL)
		return -1;
	*v = *p;
	return 0;
}

int
proc_get_u32(struct proc_reader *r, uint32_t *v)
{
	const uint8_t *p = reader_take(r, 4);

	if (p == NULL)
		return -1;
	*v = be32_get(p);
	return 0;
}

int
proc_get_u64(struct proc_reader *r, uint64_t *v)
{
	const uint8_t *p = reader_take(r, 8);

	if (p == NULL)
		return -1;
	*v = ((uint64_t)be32_get(p) << 32) | be32_get(p + 4);
	return 0;
}

int
proc_get_bytes(struct proc_reader *r, const uint8_t **p_r, size_t *n_r, size_t max)
{
	const uint8_t *p;
	size_t off = r->off;
	uint32_t n;

	if (proc_get_u32(r, &n) < 0)
		return -1;
	if (n > max || (p = reader_take(r, n)) == NULL) {
		r->error = 1;
		r->off = off;	/* a failed get consumes nothing */
		return -1;
	}
	*p_r = p;
	*n_r = n;
	return 0;
}

int
proc_get_str(struct proc_reader *r, char **s_r, size_t max)
{
	const uint8_t *p;
	size_t n;

	if (proc_get_bytes(r, &p, &n, max) < 0)
		return -1;
	if (n > 0 && memchr(p, '\0', n) != NULL) {
		r->error = 1;
		r->off -= 4 + n;
		return -1;
	}
	*s_r = xstrndup((const char *)p, n);
	return 0;
}

int
proc_reader_end(const struct proc_reader *r)
{
	return (r->error || r->off != r->len) ? -1 : 0;
}

/* ---- start-up reports and errors ---- */

long
proc_ready_encode(uint8_t *buf, size_t cap, uint32_t count, const char *text, const void *extra,
    size_t extralen)
{
	struct proc_writer w;
	uint8_t *p;

	proc_writer_init(&w, buf, cap);
	proc_put_u32(&w, count);
	proc_put_bytes(&w, text, strnlen(text, PROC_TEXT_MAX));
	if ((p = writer_reserve(&w, extralen)) != NULL && extralen > 0)
		memcpy(p, extra, extralen);
	return proc_writer_done(&w);
}

long
proc_err_encode(uint8_t *buf, size_t cap, uint32_t code, const char *text)
{
	struct proc_writer w;

	proc_writer_init(&w, buf, cap);
	proc_put_u32(&w, code);
	proc_put_bytes(&w, text, strnlen(text, PROC_TEXT_MAX));
	return proc_writer_done(&w);
}

/* u32, then a text of at most PROC_TEXT_MAX octets without NUL, copied. */
static int
get_u32_text(struct proc_reader *r, uint32_t *v, char *text, size_t textlen)
{
	const uint8_t *t;
	size_t n;

	if (proc_get_u32(r, v) < 0 || proc_get_bytes(r, &t, &n, PROC_TEXT_MAX) < 0 ||
	    memchr(t, '\0', n) != NULL)
		return -1;
	if (n >= textlen)
		n = textlen - 1;
	memcpy(text, t, n);
	text[n] = '\0';
	return 0;
}

int
proc_ready_decode(const uint8_t *p, size_t len, uint32_t *count_r, char *text, size_t textlen,
    struct proc_reader *rest_r)
{
	proc_reader_init(rest_r, p, len);
	return get_u32_text(rest_r, count_r, text, textlen);
}

int
proc_err_decode(const uint8_t *p, size_t len, uint32_t *code_r, char *text, size_t textlen)
{
	struct proc_reader r;

	proc_reader_init(&r, p, len);
	if (get_u32_text(&r, code_r, text, textlen) < 0 || proc_reader_end(&r) < 0)
		return -1;
	return 0;
}
