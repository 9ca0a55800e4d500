/*
 * proc.h — typed, versioned, length-checked IPC between subproxy's processes.
 *
 * Transport: SOCK_SEQPACKET socketpairs.  One message is one datagram:
 *
 *	u8 version (PROC_VERSION) | u8 type | u16 flags | u32 id | u32 length
 *	then `length` payload bytes
 *
 * all integers in network byte order.  The header length must equal the
 * number of bytes that follow it; a datagram longer than PROC_HDR_LEN +
 * PROC_MAX_PAYLOAD is detected with MSG_TRUNC and refused.  A message may
 * carry one file descriptor (SCM_RIGHTS); it then has PROC_F_FD set, and a
 * descriptor that arrives without that flag, or where the caller expects
 * none, or any second descriptor, is closed and the message refused.
 *
 * Payloads carry ids, lengths and bytes, never pointers; they are written
 * and read with the bounds-checked proc_put_* / proc_get_* helpers below.
 *
 * A malformed message from a trusted peer is a fatal error for the
 * receiver; these functions only report it (they never exit).
 *
 * proc_msg_encode() / proc_msg_decode() and the payload helpers are pure
 * (no I/O); proc_send(), proc_trysend() and proc_recv() wrap them around
 * sendmsg(2) / recvmsg(2).  Used by every process: the child roles with
 * blocking sockets (proc_send), front through its client core
 * (proc_client.h, never blocking), the parent at start-up (proc_spawn.h).
 *
 * Start-up: a child role reports once, on its start-up socket, either
 *	PROC_READY	u32 count, str text (at most PROC_TEXT_MAX), then
 *			role-specific bytes (proc_ready_decode leaves a reader on them)
 *	PROC_ERR	u32 code, str text: why it cannot start (one sentence)
 * PROC_ERR is also how a peer reports a failure in a conversation; it is
 * decoded with proc_err_decode() wherever it is read.
 */
#ifndef SUBPROXY_PROC_H
#define SUBPROXY_PROC_H

#include <stddef.h>
#include <stdint.h>

#define PROC_VERSION		1
#define PROC_HDR_LEN		12
#define PROC_MAX_PAYLOAD	(64 * 1024)
#define PROC_MAX_MSG		(PROC_HDR_LEN + PROC_MAX_PAYLOAD)
#define PROC_TEXT_MAX		1024	/* the text of READY and ERR */

/* Header flags.  Every other bit is reserved and must be zero. */
#define PROC_F_FD		0x0001	/* one descriptor travels with this message */
#define PROC_F_KNOWN		(PROC_F_FD)

/* Message types.  0 is never valid; values >= PROC_TYPE_MAX are unknown. */
enum proc_type {
	PROC_ERR = 1,		/* u32 code, str text: a peer reports a failure */
	PROC_SIGN_REQ,		/* front -> signer: u64 size, bytes prefix; fd: sealed memfd */
	PROC_SIGN_REP,		/* signer -> front: u32 status, str headers */
	PROC_AUTH_REQ,		/* front -> keeper: see keeper_msg.h */
	PROC_AUTH_REP,		/* keeper -> front: see keeper_msg.h */
	PROC_TLS_SIGN_REQ,	/* front -> keeper: see keeper_msg.h */
	PROC_TLS_SIGN_REP,	/* keeper -> front: see keeper_msg.h */
	PROC_READY,		/* child -> parent: u32 count, str text, role bytes: started */
	PROC_AUDIT_REC,		/* front/parent -> recorder: see recorder.h */
	PROC_AUDIT_ACK,		/* recorder -> front/parent: see recorder.h */
	PROC_AUDIT_STATE,	/* recorder -> front: see recorder.h */
	PROC_AUTH_CANCEL,	/* front -> keeper: see keeper_msg.h */
	PROC_TYPE_MAX
};

/* Why a message was refused (proc_msg_decode() result, proc_msg.error). */
enum proc_status {
	PROC_OK = 0,
	PROC_ESHORT = -1,	/* fewer bytes than a header */
	PROC_ELENGTH = -2,	/* header length differs from the bytes that follow */
	PROC_ETOOBIG = -3,	/* payload over PROC_MAX_PAYLOAD (or datagram truncated) */
	PROC_EVERSION = -4,	/* version is not PROC_VERSION */
	PROC_ETYPE = -5,	/* type 0 or unknown */
	PROC_EFLAGS = -6,	/* a reserved flag bit is set */
	PROC_EFD = -7		/* descriptor missing, unexpected or more than one */
};

struct proc_msg {
	uint8_t version;
	uint8_t type;		/* enum proc_type */
	uint16_t flags;
	uint32_t id;		/* request id, echoed in the reply */
	uint32_t len;		/* payload bytes */
	int error;		/* enum proc_status of the last refusal */
	uint8_t payload[PROC_MAX_PAYLOAD];
};

/* Name of a message type for logs ("SIGN_REQ"; "unknown" otherwise). */
const char *proc_type_name(unsigned int type);

/* Text for an enum proc_status value. */
const char *proc_strerror(int status);

/* Write the header and payload of a message into buf (bufsize bytes).
 * type must be a known type, flags only known bits, len <= PROC_MAX_PAYLOAD.
 * Returns the number of bytes written (PROC_HDR_LEN + len), or -1 if an
 * argument is invalid or buf is too small. */
long proc_msg_encode(uint8_t *buf, size_t bufsize, unsigned int type, uint16_t flags,
    uint32_t id, const void *payload, size_t len);

/* Parse one complete datagram of len bytes into *m (payload copied).
 * Returns PROC_OK or a negative enum proc_status; m->error is set either way.
 * On failure the other fields of *m are unspecified. */
int proc_msg_decode(const uint8_t *buf, size_t len, struct proc_msg *m);

/* Send one message on a SOCK_SEQPACKET socket; passfd >= 0 travels with it
 * (SCM_RIGHTS, PROC_F_FD set) and stays open in the caller.  Retries on
 * EINTR and waits (poll) on EAGAIN.  Returns 0, or -1 with errno (EINVAL for
 * bad arguments, else from sendmsg). */
int proc_send(int fd, unsigned int type, uint32_t id, const void *payload, size_t len,
    int passfd);

/* The same in one attempt that never waits (MSG_DONTWAIT): -1 with errno
 * EAGAIN when the socket has no room for the datagram now. */
int proc_trysend(int fd, unsigned int type, uint32_t id, const void *payload, size_t len,
    int passfd);

/* Receive one message into *m.  fd_r may be NULL when the caller expects no
 * descriptor; otherwise *fd_r is set to the received descriptor (close-on-exec)
 * or -1.  Every descriptor not handed to the caller is closed.
 * Returns 1 with a message, 0 on EOF, -1 on error: errno EPROTO when the
 * peer broke the protocol (m->error tells how), else errno from recvmsg.
 * Retries on EINTR. */
int proc_recv(int fd, struct proc_msg *m, int *fd_r);

/* Payload writer: bounded, with a sticky error flag.  Integers are written
 * in network byte order; strings and byte strings as u32 length + bytes. */
struct proc_writer {
	uint8_t *buf;
	size_t cap, len;
	int error;		/* set once something did not fit */
};

void proc_writer_init(struct proc_writer *w, uint8_t *buf, size_t cap);
void proc_put_u8(struct proc_writer *w, uint8_t v);
void proc_put_u32(struct proc_writer *w, uint32_t v);
void proc_put_u64(struct proc_writer *w, uint64_t v);
void proc_put_bytes(struct proc_writer *w, const void *p, size_t n);
void proc_put_str(struct proc_writer *w, const char *s);
/* Bytes written, or -1 if any put did not fit. */
long proc_writer_done(const struct proc_writer *w);

/* Payload reader: every get checks bounds; after the first failure all
 * further gets fail too (sticky error). */
struct proc_reader {
	const uint8_t *buf;
	size_t len, off;
	int error;
};

void proc_reader_init(struct proc_reader *r, const uint8_t *buf, size_t len);
/* Each returns 0, or -1 (nothing stored, nothing consumed) on failure. */
int proc_get_u8(struct proc_reader *r, uint8_t *v);
int proc_get_u32(struct proc_reader *r, uint32_t *v);
int proc_get_u64(struct proc_reader *r, uint64_t *v);
/* A view of a byte string inside the payload (not copied, not terminated):
 * valid as long as the payload is.  Fails if longer than max. */
int proc_get_bytes(struct proc_reader *r, const uint8_t **p_r, size_t *n_r, size_t max);
/* A string copied into a new NUL-terminated allocation (caller frees).
 * Fails if longer than max or if it contains a NUL byte. */
int proc_get_str(struct proc_reader *r, char **s_r, size_t max);
/* 0 if no get failed and the whole payload was consumed, else -1. */
int proc_reader_end(const struct proc_reader *r);

/* ---- start-up reports and errors (pure) ---- */

/* Write a READY payload: count, text (cut at PROC_TEXT_MAX octets), then
 * extralen role-specific octets as they are.  Returns its length, or -1 if
 * it does not fit in cap. */
long proc_ready_encode(uint8_t *buf, size_t cap, uint32_t count, const char *text,
    const void *extra, size_t extralen);

/* Write an ERR payload: code, text (cut at PROC_TEXT_MAX octets). */
long proc_err_encode(uint8_t *buf, size_t cap, uint32_t code, const char *text);

/* Decode the common part of a READY payload: *count_r, the text copied
 * into text (textlen > 0; cut to fit, NUL-terminated) and *rest_r a reader
 * on the role-specific octets that follow (check it with proc_reader_end
 * once they are read).  Returns 0, or -1 if the common part is malformed
 * (the text over PROC_TEXT_MAX or holding a NUL). */
int proc_ready_decode(const uint8_t *p, size_t len, uint32_t *count_r, char *text,
    size_t textlen, struct proc_reader *rest_r);

/* Decode an ERR payload (nothing may follow the text).  Returns 0, or -1. */
int proc_err_decode(const uint8_t *p, size_t len, uint32_t *code_r, char *text,
    size_t textlen);

#endif
