/* benchio.c — see benchio.h. */
#include "benchio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

double
bio_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

gnutls_session_t
bio_start_tls(struct bio *b, unsigned int end, gnutls_priority_t prio,
    gnutls_certificate_credentials_t creds)
{
	gnutls_session_t s;

	if (gnutls_init(&s, end | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0 ||
	    gnutls_priority_set(s, prio) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, creds) < 0) {
		fprintf(stderr, "gnutls session setup failed\n");
		exit(2);
	}
	b->tls = s;
	b->tls_up = 0;
	gnutls_transport_set_int(s, b->fd);
	return s;
}

int
bio_handshake(struct bio *b)
{
	int r = gnutls_handshake(b->tls);

	if (r == GNUTLS_E_SUCCESS) {
		b->tls_up = 1;
		return 1;
	}
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(r))
		return 0;
	return -1;
}

int
bio_fill(struct bio *b)
{
	int got = 0;

	for (;;) {
		ssize_t n;
		size_t room = sizeof(b->in) - b->inlen;

		if (room == 0)
			return -1;
		if (b->tls != NULL) {
			n = gnutls_record_recv(b->tls, b->in + b->inlen, room);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				return got;
			if (n == GNUTLS_E_PREMATURE_TERMINATION || n == 0) {
				b->eof = 1;
				return 1;
			}
			if (n < 0)
				return -1;
		} else {
			n = recv(b->fd, b->in + b->inlen, room, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return got;
			if (n < 0 && errno == ECONNRESET) {
				b->eof = 1;
				return 1;
			}
			if (n < 0)
				return -1;
			if (n == 0) {
				b->eof = 1;
				return 1;
			}
		}
		b->inlen += (size_t)n;
		got = 1;
	}
}

size_t
bio_line(const struct bio *b)
{
	const char *nl = memchr(b->in, '\n', b->inlen);

	return nl == NULL ? 0 : (size_t)(nl - b->in) + 1;
}

void
bio_consume(struct bio *b, size_t n)
{
	memmove(b->in, b->in + n, b->inlen - n);
	b->inlen -= n;
}

void
bio_queue(struct bio *b, const void *p, size_t n)
{
	if (b->outoff > 0 && b->outoff == b->outlen)
		b->outoff = b->outlen = 0;
	if (b->outlen + n > b->outcap) {
		size_t cap = b->outcap ? b->outcap : 512;

		while (cap < b->outlen + n)
			cap *= 2;
		if ((b->out = realloc(b->out, cap)) == NULL) {
			perror("realloc");
			exit(2);
		}
		b->outcap = cap;
	}
	memcpy(b->out + b->outlen, p, n);
	b->outlen += n;
}

void
bio_queuef(struct bio *b, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		fprintf(stderr, "bio_queuef: line too long\n");
		exit(2);
	}
	bio_queue(b, line, (size_t)n);
}

int
bio_flush(struct bio *b)
{
	while (b->outoff < b->outlen) {
		size_t len = b->outlen - b->outoff;
		ssize_t n;

		if (b->tls != NULL) {
			/* after GNUTLS_E_AGAIN GnuTLS wants the same call again:
			 * the start stays put, and records are at most 16 KiB */
			if (len > 16384)
				len = 16384;
			n = gnutls_record_send(b->tls, b->out + b->outoff, len);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				return 0;
		} else {
			n = send(b->fd, b->out + b->outoff, len, MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return 0;
		}
		if (n <= 0)
			return -1;
		b->outoff += (size_t)n;
	}
	b->outoff = b->outlen = 0;
	return 1;
}

short
bio_events(const struct bio *b)
{
	if (b->tls != NULL && !b->tls_up)
		return gnutls_record_get_direction(b->tls) ? EV_WRITE : EV_READ;
	return (short)(EV_READ | (b->outoff < b->outlen ? EV_WRITE : 0));
}

void
bio_close(struct bio *b)
{
	if (b->tls != NULL)
		gnutls_deinit(b->tls);
	if (b->fd >= 0)
		close(b->fd);
	free(b->out);
	b->tls = NULL;
	b->fd = -1;
	b->out = NULL;
	b->outlen = b->outoff = b->outcap = 0;
}

long
bio_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	rl.rlim_cur = rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	return (long)rl.rlim_cur;
}

double
bio_cpu_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
must(int r, const char *what)
{
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", what, gnutls_strerror(r));
		exit(2);
	}
}

gnutls_certificate_credentials_t
bio_server_creds(const char *name, char *spki_hex)
{
	gnutls_certificate_credentials_t cred;
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_pubkey_t pub;
	uint8_t der[512], digest[32];
	size_t derlen = sizeof(der), i;
	unsigned char serial[8];
	time_t now = time(NULL);

	must(gnutls_x509_privkey_init(&key), "privkey_init");
	must(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), "privkey_generate");
	must(gnutls_x509_crt_init(&crt), "crt_init");
	must(gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)), "rnd");
	serial[0] &= 0x7f;
	must(gnutls_x509_crt_set_version(crt, 3), "crt_set_version");
	must(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), "crt_set_serial");
	must(gnutls_x509_crt_set_activation_time(crt, now - 3600), "activation");
	must(gnutls_x509_crt_set_expiration_time(crt, now + 7 * 86400), "expiration");
	must(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name,
	    (unsigned)strlen(name)), "crt_set_dn");
	must(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
	    (unsigned)strlen(name), GNUTLS_FSAN_SET), "crt_set_san");
	must(gnutls_x509_crt_set_key(crt, key), "crt_set_key");
	must(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), "crt_sign");
	must(gnutls_certificate_allocate_credentials(&cred), "allocate_credentials");
	must(gnutls_certificate_set_x509_key(cred, &crt, 1, key), "set_x509_key");
	must(gnutls_pubkey_init(&pub), "pubkey_init");
	must(gnutls_pubkey_import_x509(pub, crt, 0), "pubkey_import");
	must(gnutls_pubkey_export(pub, GNUTLS_X509_FMT_DER, der, &derlen), "pubkey_export");
	must(gnutls_hash_fast(GNUTLS_DIG_SHA256, der, derlen, digest), "hash");
	for (i = 0; i < sizeof(digest); i++)
		snprintf(spki_hex + 2 * i, 3, "%02x", digest[i]);
	gnutls_pubkey_deinit(pub);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return cred;
}
