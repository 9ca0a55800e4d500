/*
 * benchio.h — what the bench's load generator (smtpload.c) and its SMTP sink
 * (smtpsink.c) share: a non-blocking connection with an optional GnuTLS
 * record layer, line-oriented input and a bounded output queue.  Neither
 * program is part of subproxy; they link only GnuTLS and libevent.
 */
#ifndef BENCHIO_H
#define BENCHIO_H

#include <stddef.h>
#include <stdint.h>
#include <gnutls/gnutls.h>

#define BIO_IN_MAX      16384           /* unread input; more is an error */

struct bio {
	int fd;
	gnutls_session_t tls;           /* NULL: plaintext */
	int tls_up;                     /* handshake done */
	char in[BIO_IN_MAX];
	size_t inlen;
	char *out;                      /* queued output (malloc) */
	size_t outlen, outoff, outcap;
	int eof;                        /* peer closed */
};

/* Seconds on the monotonic clock. */
double bio_now(void);

/* A non-blocking GnuTLS session (GNUTLS_SERVER or GNUTLS_CLIENT) with
 * prio and creds, started on b->fd; exits on failure. */
gnutls_session_t bio_start_tls(struct bio *b, unsigned int end, gnutls_priority_t prio,
    gnutls_certificate_credentials_t creds);

/* Continue the handshake: 1 done, 0 again (see bio_events), -1 failed. */
int bio_handshake(struct bio *b);

/* Read what is available into b->in: 1 got something (or EOF: b->eof set),
 * 0 nothing yet, -1 error or input over BIO_IN_MAX. */
int bio_fill(struct bio *b);

/* One complete line ending in LF at the start of b->in: its length
 * including the LF, or 0 if none yet. */
size_t bio_line(const struct bio *b);

/* Drop n octets from the start of b->in. */
void bio_consume(struct bio *b, size_t n);

/* Queue output; bio_flush() sends it. */
void bio_queue(struct bio *b, const void *p, size_t n);
void bio_queuef(struct bio *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Send queued output: 1 all sent, 0 some left (wait for EV_WRITE), -1 error. */
int bio_flush(struct bio *b);

/* EV_READ / EV_WRITE the connection waits for now. */
short bio_events(const struct bio *b);

/* Close the socket and free the TLS session and buffers. */
void bio_close(struct bio *b);

/* Raise RLIMIT_NOFILE to its hard limit; returns the new soft limit. */
long bio_raise_nofile(void);

/* User and system CPU seconds of this process. */
double bio_cpu_self(void);

/* Server credentials with a fresh self-signed ECDSA P-256 certificate for
 * name (no file); the SHA-256 of its SubjectPublicKeyInfo in hex (65
 * octets) for a "3 1 1" TLSA pin. */
gnutls_certificate_credentials_t bio_server_creds(const char *name, char *spki_hex);

#endif
