/* test_proc.c — IPC framing: encode/decode, socketpair transport, fd passing,
 * payload reader/writer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "proc.h"

static uint8_t buf[PROC_MAX_MSG + 64];
static struct proc_msg msg;

static void
mk_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

/* Write a raw header (fields as given, no validation). */
static void
raw_hdr(uint8_t *p, uint8_t ver, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
	p[0] = ver;
	p[1] = type;
	p[2] = (uint8_t)(flags >> 8);
	p[3] = (uint8_t)flags;
	p[4] = (uint8_t)(id >> 24);
	p[5] = (uint8_t)(id >> 16);
	p[6] = (uint8_t)(id >> 8);
	p[7] = (uint8_t)id;
	p[8] = (uint8_t)(len >> 24);
	p[9] = (uint8_t)(len >> 16);
	p[10] = (uint8_t)(len >> 8);
	p[11] = (uint8_t)len;
}

/* sendmsg() one raw datagram with nfds descriptors attached. */
static void
raw_send(int fd, const void *data, size_t len, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int) * 4)];
	} cbuf;
	struct iovec iov = { (void *)(uintptr_t)data, len };
	struct msghdr mh;
	struct cmsghdr *cm;

	memset(&mh, 0, sizeof(mh));
	memset(&cbuf, 0, sizeof(cbuf));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds > 0) {
		mh.msg_control = cbuf.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	assert_int_equal(sendmsg(fd, &mh, 0), (ssize_t)len);
}

/* A pipe whose write end is sent away: once every copy of the write end is
 * closed, the read end sees EOF.  Returns the read end, *w the write end. */
static int
mk_pipe(int *w)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	*w = p[1];
	return p[0];
}

/* 1 if every write end of the pipe is closed (read gives EOF). */
static int
pipe_writers_gone(int r)
{
	char c;

	return read(r, &c, 1) == 0;
}

/* ---- pure encode / decode ---- */

static void
test_roundtrip(void **st)
{
	long n;

	n = proc_msg_encode(buf, sizeof(buf), PROC_SIGN_REP, 0, 0xdeadbeef, "hello", 5);
	assert_int_equal(n, PROC_HDR_LEN + 5);
	assert_memory_equal(buf, "\x01\x03\x00\x00\xde\xad\xbe\xef\x00\x00\x00\x05hello", 17);
	assert_int_equal(proc_msg_decode(buf, (size_t)n, &msg), PROC_OK);
	assert_int_equal(msg.version, PROC_VERSION);
	assert_int_equal(msg.type, PROC_SIGN_REP);
	assert_int_equal(msg.flags, 0);
	assert_int_equal(msg.id, 0xdeadbeef);
	assert_int_equal(msg.len, 5);
	assert_int_equal(msg.error, PROC_OK);
	assert_memory_equal(msg.payload, "hello", 5);

	/* empty payload, flag set, maximum payload */
	n = proc_msg_encode(buf, sizeof(buf), PROC_ERR, PROC_F_FD, 7, NULL, 0);
	assert_int_equal(n, PROC_HDR_LEN);
	assert_int_equal(proc_msg_decode(buf, (size_t)n, &msg), PROC_OK);
	assert_int_equal(msg.flags, PROC_F_FD);
	assert_int_equal(msg.len, 0);

	memset(msg.payload, 'x', PROC_MAX_PAYLOAD);
	n = proc_msg_encode(buf, sizeof(buf), PROC_TLS_SIGN_REP, 0, 1, msg.payload,
	    PROC_MAX_PAYLOAD);
	assert_int_equal(n, PROC_MAX_MSG);
	assert_int_equal(proc_msg_decode(buf, (size_t)n, &msg), PROC_OK);
	assert_int_equal(msg.len, PROC_MAX_PAYLOAD);
}

static void
test_encode_refuses(void **st)
{
	uint8_t small[PROC_HDR_LEN + 4];

	assert_int_equal(proc_msg_encode(buf, sizeof(buf), 0, 0, 1, NULL, 0), -1);
	assert_int_equal(proc_msg_encode(buf, sizeof(buf), PROC_TYPE_MAX, 0, 1, NULL, 0), -1);
	assert_int_equal(proc_msg_encode(buf, sizeof(buf), PROC_ERR, 0x8000, 1, NULL, 0), -1);
	assert_int_equal(proc_msg_encode(buf, sizeof(buf), PROC_ERR, 0, 1, buf,
	    PROC_MAX_PAYLOAD + 1), -1);
	assert_int_equal(proc_msg_encode(small, sizeof(small), PROC_ERR, 0, 1, "hello", 5), -1);
	assert_int_equal(proc_msg_encode(small, PROC_HDR_LEN - 1, PROC_ERR, 0, 1, NULL, 0), -1);
	assert_int_equal(proc_msg_encode(small, sizeof(small), PROC_ERR, 0, 1, NULL, 3), -1);
	assert_int_equal(proc_msg_encode(small, sizeof(small), PROC_ERR, 0, 1, "abcd", 4),
	    PROC_HDR_LEN + 4);
}

static void
test_truncated_header(void **st)
{
	size_t i;

	assert_int_equal(proc_msg_encode(buf, sizeof(buf), PROC_ERR, 0, 1, NULL, 0), PROC_HDR_LEN);
	for (i = 0; i < PROC_HDR_LEN; i++) {
		assert_int_equal(proc_msg_decode(buf, i, &msg), PROC_ESHORT);
		assert_int_equal(msg.error, PROC_ESHORT);
	}
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN, &msg), PROC_OK);
}

static void
test_length_mismatch(void **st)
{
	raw_hdr(buf, 1, PROC_SIGN_REQ, 0, 1, 10);
	memset(buf + PROC_HDR_LEN, 'a', 11);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN + 9, &msg), PROC_ELENGTH);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN + 11, &msg), PROC_ELENGTH);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN, &msg), PROC_ELENGTH);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN + 10, &msg), PROC_OK);
}

static void
test_oversized_decode(void **st)
{
	raw_hdr(buf, 1, PROC_SIGN_REQ, 0, 1, PROC_MAX_PAYLOAD + 1);
	assert_int_equal(proc_msg_decode(buf, PROC_MAX_MSG + 1, &msg), PROC_ETOOBIG);
	raw_hdr(buf, 1, PROC_SIGN_REQ, 0, 1, 0xffffffffu);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN, &msg), PROC_ETOOBIG);
}

static void
test_wrong_version(void **st)
{
	raw_hdr(buf, 0, PROC_SIGN_REQ, 0, 1, 0);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN, &msg), PROC_EVERSION);
	raw_hdr(buf, 2, PROC_SIGN_REQ, 0, 1, 0);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN, &msg), PROC_EVERSION);
	raw_hdr(buf, 0xff, PROC_SIGN_REQ, 0, 1, 0);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN, &msg), PROC_EVERSION);
}

static void
test_unknown_type_and_flags(void **st)
{
	raw_hdr(buf, 1, 0, 0, 1, 0);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN, &msg), PROC_ETYPE);
	raw_hdr(buf, 1, PROC_TYPE_MAX, 0, 1, 0);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN, &msg), PROC_ETYPE);
	raw_hdr(buf, 1, 0xff, 0, 1, 0);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN, &msg), PROC_ETYPE);
	raw_hdr(buf, 1, PROC_ERR, 0x0002, 1, 0);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN, &msg), PROC_EFLAGS);
	raw_hdr(buf, 1, PROC_ERR, 0x8001, 1, 0);
	assert_int_equal(proc_msg_decode(buf, PROC_HDR_LEN, &msg), PROC_EFLAGS);
	assert_string_equal(proc_type_name(PROC_SIGN_REQ), "SIGN_REQ");
	assert_string_equal(proc_type_name(0), "unknown");
	assert_string_equal(proc_type_name(PROC_TYPE_MAX), "unknown");
	assert_string_equal(proc_strerror(PROC_EFD), "file descriptor missing, unexpected or extra");
}

/* ---- transport ---- */

static void
test_socket_roundtrip(void **st)
{
	int sv[2], rfd;

	mk_pair(sv);
	assert_int_equal(proc_send(sv[0], PROC_SIGN_REP, 42, "abc", 3, -1), 0);
	assert_int_equal(proc_send(sv[0], PROC_ERR, 43, NULL, 0, -1), 0);
	assert_int_equal(proc_recv(sv[1], &msg, &rfd), 1);
	assert_int_equal(rfd, -1);
	assert_int_equal(msg.type, PROC_SIGN_REP);
	assert_int_equal(msg.id, 42);
	assert_int_equal(msg.len, 3);
	assert_memory_equal(msg.payload, "abc", 3);
	assert_int_equal(proc_recv(sv[1], &msg, NULL), 1);
	assert_int_equal(msg.type, PROC_ERR);
	assert_int_equal(msg.id, 43);
	assert_int_equal(msg.len, 0);

	/* a payload at the maximum passes the socket whole */
	memset(buf, 'z', PROC_MAX_PAYLOAD);
	assert_int_equal(proc_send(sv[0], PROC_SIGN_REP, 44, buf, PROC_MAX_PAYLOAD, -1), 0);
	assert_int_equal(proc_recv(sv[1], &msg, NULL), 1);
	assert_int_equal(msg.len, PROC_MAX_PAYLOAD);
	assert_int_equal(msg.payload[PROC_MAX_PAYLOAD - 1], 'z');
	close(sv[0]);
	close(sv[1]);
}

static void
test_send_refuses(void **st)
{
	int sv[2];

	mk_pair(sv);
	errno = 0;
	assert_int_equal(proc_send(sv[0], 0, 1, NULL, 0, -1), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(proc_send(sv[0], PROC_ERR, 1, buf, PROC_MAX_PAYLOAD + 1, -1), -1);
	assert_int_equal(errno, EINVAL);
	close(sv[1]);
	errno = 0;
	assert_int_equal(proc_send(sv[0], PROC_ERR, 1, NULL, 0, -1), -1);
	assert_int_equal(errno, EPIPE);
	close(sv[0]);
}

static void
test_oversized_datagram(void **st)
{
	int sv[2], w, r;

	mk_pair(sv);
	/* header claims the maximum, but the datagram is one byte longer */
	raw_hdr(buf, 1, PROC_SIGN_REP, 0, 1, PROC_MAX_PAYLOAD);
	memset(buf + PROC_HDR_LEN, 'q', PROC_MAX_PAYLOAD + 1);
	r = mk_pipe(&w);
	raw_send(sv[0], buf, PROC_MAX_MSG + 1, &w, 1);
	close(w);
	errno = 0;
	assert_int_equal(proc_recv(sv[1], &msg, NULL), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(msg.error, PROC_ETOOBIG);
	assert_true(pipe_writers_gone(r));	/* the fd that came along is closed */
	close(r);
	/* the next message is read normally */
	assert_int_equal(proc_send(sv[0], PROC_ERR, 2, NULL, 0, -1), 0);
	assert_int_equal(proc_recv(sv[1], &msg, NULL), 1);
	assert_int_equal(msg.id, 2);
	close(sv[0]);
	close(sv[1]);
}

static void
test_bad_datagrams(void **st)
{
	int sv[2];

	mk_pair(sv);
	/* truncated header */
	raw_send(sv[0], "\x01\x01\x00", 3, NULL, 0);
	assert_int_equal(proc_recv(sv[1], &msg, NULL), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(msg.error, PROC_ESHORT);
	/* length mismatch */
	raw_hdr(buf, 1, PROC_ERR, 0, 1, 4);
	raw_send(sv[0], buf, PROC_HDR_LEN + 3, NULL, 0);
	assert_int_equal(proc_recv(sv[1], &msg, NULL), -1);
	assert_int_equal(msg.error, PROC_ELENGTH);
	/* wrong version */
	raw_hdr(buf, 9, PROC_ERR, 0, 1, 0);
	raw_send(sv[0], buf, PROC_HDR_LEN, NULL, 0);
	assert_int_equal(proc_recv(sv[1], &msg, NULL), -1);
	assert_int_equal(msg.error, PROC_EVERSION);
	/* unknown type */
	raw_hdr(buf, 1, 200, 0, 1, 0);
	raw_send(sv[0], buf, PROC_HDR_LEN, NULL, 0);
	assert_int_equal(proc_recv(sv[1], &msg, NULL), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(msg.error, PROC_ETYPE);
	close(sv[0]);
	close(sv[1]);
}

static void
test_fd_passing(void **st)
{
	int sv[2], mfd, rfd;
	char got[32];

	mk_pair(sv);
	mfd = memfd_create("test_proc", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	assert_int_equal(write(mfd, "message body", 12), 12);
	assert_int_equal(proc_send(sv[0], PROC_SIGN_REQ, 9, "x", 1, mfd), 0);
	close(mfd);
	rfd = -2;
	assert_int_equal(proc_recv(sv[1], &msg, &rfd), 1);
	assert_int_equal(msg.type, PROC_SIGN_REQ);
	assert_int_equal(msg.flags, PROC_F_FD);
	assert_int_equal(msg.id, 9);
	assert_true(rfd >= 0);
	assert_true(fcntl(rfd, F_GETFD) & FD_CLOEXEC);
	memset(got, 0, sizeof(got));
	assert_int_equal(pread(rfd, got, sizeof(got), 0), 12);
	assert_string_equal(got, "message body");
	close(rfd);
	close(sv[0]);
	close(sv[1]);
}

static void
test_unexpected_fd_closed(void **st)
{
	int sv[2], w, r, rfd;

	mk_pair(sv);
	/* a descriptor the caller does not expect (fd_r == NULL) */
	r = mk_pipe(&w);
	assert_int_equal(proc_send(sv[0], PROC_SIGN_REP, 1, "a", 1, w), 0);
	close(w);
	assert_int_equal(proc_recv(sv[1], &msg, NULL), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(msg.error, PROC_EFD);
	assert_true(pipe_writers_gone(r));
	close(r);

	/* a descriptor without PROC_F_FD in the header */
	r = mk_pipe(&w);
	raw_hdr(buf, 1, PROC_SIGN_REQ, 0, 1, 0);
	raw_send(sv[0], buf, PROC_HDR_LEN, &w, 1);
	close(w);
	rfd = -2;
	assert_int_equal(proc_recv(sv[1], &msg, &rfd), -1);
	assert_int_equal(msg.error, PROC_EFD);
	assert_int_equal(rfd, -1);
	assert_true(pipe_writers_gone(r));
	close(r);

	/* PROC_F_FD without a descriptor */
	raw_hdr(buf, 1, PROC_SIGN_REQ, PROC_F_FD, 1, 0);
	raw_send(sv[0], buf, PROC_HDR_LEN, NULL, 0);
	assert_int_equal(proc_recv(sv[1], &msg, &rfd), -1);
	assert_int_equal(msg.error, PROC_EFD);
	assert_int_equal(rfd, -1);
	close(sv[0]);
	close(sv[1]);
}

static void
test_extra_fds_closed(void **st)
{
	int sv[2], w[3], r[3], rfd, i;

	mk_pair(sv);
	for (i = 0; i < 3; i++)
		r[i] = mk_pipe(&w[i]);
	raw_hdr(buf, 1, PROC_SIGN_REQ, PROC_F_FD, 5, 0);
	raw_send(sv[0], buf, PROC_HDR_LEN, w, 3);
	for (i = 0; i < 3; i++)
		close(w[i]);
	rfd = -2;
	assert_int_equal(proc_recv(sv[1], &msg, &rfd), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(msg.error, PROC_EFD);
	assert_int_equal(rfd, -1);
	for (i = 0; i < 3; i++) {
		assert_true(pipe_writers_gone(r[i]));
		close(r[i]);
	}
	close(sv[0]);
	close(sv[1]);
}

static void
test_eof_and_eagain(void **st)
{
	int sv[2], rfd;

	mk_pair(sv);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	errno = 0;
	assert_int_equal(proc_recv(sv[1], &msg, &rfd), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(proc_send(sv[0], PROC_ERR, 1, NULL, 0, -1), 0);
	close(sv[0]);
	/* a message queued before the close is still delivered, then EOF */
	assert_int_equal(proc_recv(sv[1], &msg, &rfd), 1);
	assert_int_equal(proc_recv(sv[1], &msg, &rfd), 0);
	assert_int_equal(rfd, -1);
	assert_int_equal(proc_recv(sv[1], &msg, &rfd), 0);
	close(sv[1]);
}

/* proc_trysend never waits: a full socket is EAGAIN, nothing half-sent. */
static void
test_trysend_full(void **st)
{
	int sv[2], n = 0;

	mk_pair(sv);
	memset(buf, 'f', 4096);
	while (proc_trysend(sv[0], PROC_SIGN_REP, (uint32_t)n, buf, 4096, -1) == 0) {
		n++;
		assert_true(n < 100000);
	}
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	assert_true(n > 0);
	/* every datagram that was accepted arrives whole, in order */
	while (n-- > 0) {
		assert_int_equal(proc_recv(sv[1], &msg, NULL), 1);
		assert_int_equal(msg.len, 4096);
	}
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	assert_int_equal(proc_recv(sv[1], &msg, NULL), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(proc_trysend(sv[0], PROC_ERR, 1, NULL, 0, -1), 0);
	close(sv[0]);
	close(sv[1]);
}

/* ---- start-up reports ---- */

static void
test_ready_err_codecs(void **st)
{
	uint8_t p[2 * PROC_TEXT_MAX], big[PROC_TEXT_MAX + 10];
	char text[PROC_TEXT_MAX + 1], small[6];
	struct proc_reader r;
	struct proc_writer w;
	uint32_t v, x;
	long n;
	size_t i;

	n = proc_ready_encode(p, sizeof(p), 3, "3 keys loaded", "\0\0\0\x07", 4);
	assert_int_equal(n, 4 + 4 + 13 + 4);
	assert_int_equal(proc_ready_decode(p, (size_t)n, &v, text, sizeof(text), &r), 0);
	assert_int_equal(v, 3);
	assert_string_equal(text, "3 keys loaded");
	assert_int_equal(proc_get_u32(&r, &x), 0);
	assert_int_equal(x, 7);
	assert_int_equal(proc_reader_end(&r), 0);
	/* the text is cut to the caller's buffer, never overrun */
	assert_int_equal(proc_ready_decode(p, (size_t)n, &v, small, sizeof(small), &r), 0);
	assert_string_equal(small, "3 key");
	/* every truncation of the common part fails */
	for (i = 0; i < 4 + 4 + 13; i++)
		assert_int_equal(proc_ready_decode(p, i, &v, text, sizeof(text), &r), -1);

	n = proc_err_encode(p, sizeof(p), 1, "TLS key /k has mode 0644");
	assert_int_equal(proc_err_decode(p, (size_t)n, &v, text, sizeof(text)), 0);
	assert_int_equal(v, 1);
	assert_string_equal(text, "TLS key /k has mode 0644");
	assert_int_equal(proc_err_decode(p, (size_t)n - 1, &v, text, sizeof(text)), -1);
	p[n] = 'x';
	assert_int_equal(proc_err_decode(p, (size_t)n + 1, &v, text, sizeof(text)), -1);

	/* a long text is cut at PROC_TEXT_MAX when encoded ... */
	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	n = proc_err_encode(p, sizeof(p), 2, (const char *)big);
	assert_int_equal(n, 8 + PROC_TEXT_MAX);
	assert_int_equal(proc_err_decode(p, (size_t)n, &v, text, sizeof(text)), 0);
	assert_int_equal(strlen(text), PROC_TEXT_MAX);
	/* ... and a longer one, or one holding a NUL, does not decode */
	proc_writer_init(&w, p, sizeof(p));
	proc_put_u32(&w, 1);
	proc_put_bytes(&w, big, PROC_TEXT_MAX + 1);
	assert_int_equal(proc_err_decode(p, (size_t)proc_writer_done(&w), &v, text,
	    sizeof(text)), -1);
	proc_writer_init(&w, p, sizeof(p));
	proc_put_u32(&w, 1);
	proc_put_bytes(&w, "a\0b", 3);
	assert_int_equal(proc_err_decode(p, (size_t)proc_writer_done(&w), &v, text,
	    sizeof(text)), -1);
	assert_int_equal(proc_ready_decode(p, (size_t)proc_writer_done(&w), &v, text,
	    sizeof(text), &r), -1);
	/* a buffer too small to hold the report */
	assert_int_equal(proc_ready_encode(p, 10, 1, "ready", NULL, 0), -1);
}

/* ---- payload writer / reader ---- */

static void
test_payload_roundtrip(void **st)
{
	struct proc_writer w;
	struct proc_reader r;
	uint8_t out[64], u8;
	uint32_t u32;
	uint64_t u64;
	const uint8_t *p;
	size_t n;
	char *s;

	proc_writer_init(&w, out, sizeof(out));
	proc_put_u8(&w, 0xab);
	proc_put_u32(&w, 0x01020304);
	proc_put_u64(&w, 0x1122334455667788ull);
	proc_put_str(&w, "hdr");
	proc_put_bytes(&w, "\0\1", 2);
	proc_put_str(&w, "");
	assert_int_equal(proc_writer_done(&w), 1 + 4 + 8 + 7 + 6 + 4);
	assert_memory_equal(out, "\xab\x01\x02\x03\x04\x11\x22\x33\x44\x55\x66\x77\x88"
	    "\x00\x00\x00\x03hdr", 20);

	proc_reader_init(&r, out, (size_t)proc_writer_done(&w));
	assert_int_equal(proc_get_u8(&r, &u8), 0);
	assert_int_equal(u8, 0xab);
	assert_int_equal(proc_get_u32(&r, &u32), 0);
	assert_int_equal(u32, 0x01020304);
	assert_int_equal(proc_get_u64(&r, &u64), 0);
	assert_true(u64 == 0x1122334455667788ull);
	assert_int_equal(proc_reader_end(&r), -1);	/* not all consumed yet */
	assert_int_equal(proc_get_str(&r, &s, 3), 0);
	assert_string_equal(s, "hdr");
	free(s);
	assert_int_equal(proc_get_bytes(&r, &p, &n, 16), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(p, "\0\1", 2);
	assert_int_equal(proc_get_str(&r, &s, 0), 0);
	assert_string_equal(s, "");
	free(s);
	assert_int_equal(proc_reader_end(&r), 0);
	/* reading past the end fails */
	assert_int_equal(proc_get_u8(&r, &u8), -1);
	assert_int_equal(proc_reader_end(&r), -1);
}

static void
test_writer_overflow(void **st)
{
	struct proc_writer w;
	uint8_t out[8];

	proc_writer_init(&w, out, sizeof(out));
	proc_put_u32(&w, 1);
	proc_put_str(&w, "toolong");	/* 4 + 7 > 4 left */
	assert_int_equal(proc_writer_done(&w), -1);
	proc_put_u8(&w, 1);		/* sticky: would fit, still an error */
	assert_int_equal(proc_writer_done(&w), -1);

	proc_writer_init(&w, out, sizeof(out));
	proc_put_u64(&w, 1);
	assert_int_equal(proc_writer_done(&w), 8);
	proc_put_u8(&w, 1);
	assert_int_equal(proc_writer_done(&w), -1);
}

static void
test_reader_refuses(void **st)
{
	struct proc_reader r;
	uint32_t u32;
	uint64_t u64;
	const uint8_t *p;
	size_t n;
	char *s = NULL;

	/* short integers */
	proc_reader_init(&r, (const uint8_t *)"\1\2\3", 3);
	assert_int_equal(proc_get_u32(&r, &u32), -1);
	assert_int_equal(proc_reader_end(&r), -1);
	proc_reader_init(&r, (const uint8_t *)"\1\2\3\4\5\6\7", 7);
	assert_int_equal(proc_get_u64(&r, &u64), -1);
	/* a string length beyond the payload */
	proc_reader_init(&r, (const uint8_t *)"\0\0\0\5abcd", 8);
	assert_int_equal(proc_get_str(&r, &s, 100), -1);
	assert_null(s);
	/* a huge length must not wrap */
	proc_reader_init(&r, (const uint8_t *)"\xff\xff\xff\xff" "abcd", 8);
	assert_int_equal(proc_get_bytes(&r, &p, &n, SIZE_MAX), -1);
	/* over the caller's maximum */
	proc_reader_init(&r, (const uint8_t *)"\0\0\0\4abcd", 8);
	assert_int_equal(proc_get_str(&r, &s, 3), -1);
	assert_null(s);
	assert_int_equal(proc_get_u8(&r, (uint8_t *)&u32), -1);	/* sticky */
	/* an embedded NUL in a string */
	proc_reader_init(&r, (const uint8_t *)"\0\0\0\4ab\0d", 8);
	assert_int_equal(proc_get_str(&r, &s, 100), -1);
	assert_null(s);
	/* but bytes may hold NUL */
	proc_reader_init(&r, (const uint8_t *)"\0\0\0\4ab\0d", 8);
	assert_int_equal(proc_get_bytes(&r, &p, &n, 100), 0);
	assert_int_equal(n, 4);
	assert_int_equal(proc_reader_end(&r), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_truncated_header),
		cmocka_unit_test(test_length_mismatch),
		cmocka_unit_test(test_oversized_decode),
		cmocka_unit_test(test_wrong_version),
		cmocka_unit_test(test_unknown_type_and_flags),
		cmocka_unit_test(test_socket_roundtrip),
		cmocka_unit_test(test_send_refuses),
		cmocka_unit_test(test_oversized_datagram),
		cmocka_unit_test(test_bad_datagrams),
		cmocka_unit_test(test_fd_passing),
		cmocka_unit_test(test_unexpected_fd_closed),
		cmocka_unit_test(test_extra_fds_closed),
		cmocka_unit_test(test_eof_and_eagain),
		cmocka_unit_test(test_trysend_full),
		cmocka_unit_test(test_ready_err_codecs),
		cmocka_unit_test(test_payload_roundtrip),
		cmocka_unit_test(test_writer_overflow),
		cmocka_unit_test(test_reader_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
