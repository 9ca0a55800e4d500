/* fuzz_keeper_msg.c — the keeper's message decoders on arbitrary payloads.
 *
 * The first input byte chooses the decoder (AUTH_REQ, TLS_SIGN_REQ, READY,
 * a whole framed message dispatched by type as the keeper and front do, or
 * AUTH_REP); the rest is the payload.  Properties checked: no decoder reads
 * past its input; a decoded AUTH or TLS request obeys every limit of
 * keeper_msg.h and re-encodes to exactly the input bytes (the encoding is
 * canonical, so nothing in a request is ignored); a decoded READY has a
 * usable key description; a decoded AUTH_REP has a known result, known
 * flags, "cached" only on success, and re-encodes to the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keeper_msg.h"
#include "passwd.h"
#include "proc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct proc_msg m;
static uint8_t again[PROC_MAX_PAYLOAD];
static struct keeper_fds fds;

static void
auth(const uint8_t *p, size_t len)
{
	struct keeper_auth_fields f;
	size_t i, llen, plen;
	long n;

	if (keeper_auth_req_decode(p, len, &f) < 0)
		return;
	llen = strlen(f.login);
	plen = strlen(f.peer);
	if (llen > PASSWD_LOGIN_MAX || plen > KEEPER_PEER_MAX || f.pwlen > KEEPER_PW_MAX)
		abort();
	for (i = 0; i < plen; i++)
		if (f.peer[i] < 0x21 || f.peer[i] > 0x7e)
			abort();
	if (f.pwlen > 0 && (f.pw < p || f.pw + f.pwlen > p + len))
		abort();
	n = keeper_auth_req_encode(again, sizeof(again), f.login, (const char *)f.pw, f.pwlen,
	    f.peer);
	if (n < 0 || (size_t)n != len || memcmp(again, p, len) != 0)
		abort();
}

static void
tls(const uint8_t *p, size_t len)
{
	struct keeper_tls_fields f;
	long n;

	if (keeper_tls_req_decode(p, len, &f) < 0)
		return;
	if ((f.op != KEEPER_OP_SIGN_HASH && f.op != KEEPER_OP_SIGN_DATA) || f.len == 0 ||
	    f.len > KEEPER_SIGN_DATA_MAX || f.data < p || f.data + f.len > p + len)
		abort();
	n = keeper_tls_req_encode(again, sizeof(again), &f);
	if (n < 0 || (size_t)n != len || memcmp(again, p, len) != 0)
		abort();
}

static void
ready(const uint8_t *p, size_t len)
{
	memset(&fds, 0, sizeof(fds));
	if (keeper_ready_decode(p, len, &fds) < 0)
		return;
	if (fds.pk_algo <= 0 || fds.bits == 0 || fds.spki_len == 0 ||
	    fds.spki_len > KEEPER_SPKI_MAX)
		abort();
}

static void
rep(const uint8_t *p, size_t len)
{
	unsigned int flags;
	int result;
	long n;

	if (keeper_auth_rep_decode(p, len, &result, &flags) < 0)
		return;
	if (result < 0 || result > KEEPER_AUTH_RESULT_MAX || (flags & ~KEEPER_AUTH_F_KNOWN) ||
	    ((flags & KEEPER_AUTH_F_CACHED) && result != KEEPER_AUTH_OK))
		abort();
	n = keeper_auth_rep_encode(again, sizeof(again), (uint32_t)result, flags);
	if (n < 0 || (size_t)n != len || memcmp(again, p, len) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size - 1 > PROC_MAX_PAYLOAD + PROC_HDR_LEN)
		return 0;
	switch (data[0] & 7) {
	case 0:
		auth(data + 1, size - 1);
		break;
	case 1:
		tls(data + 1, size - 1);
		break;
	case 2:
		ready(data + 1, size - 1);
		break;
	case 4:
		rep(data + 1, size - 1);
		break;
	case 3:
		/* a whole datagram, as the keeper's loop (and front) sees it */
		if (proc_msg_decode(data + 1, size - 1, &m) != PROC_OK)
			break;
		if (m.type == PROC_AUTH_REQ)
			auth(m.payload, m.len);
		else if (m.type == PROC_TLS_SIGN_REQ)
			tls(m.payload, m.len);
		else if (m.type == PROC_READY)
			ready(m.payload, m.len);
		else if (m.type == PROC_AUTH_REP)
			rep(m.payload, m.len);
		break;
	default:
		break;
	}
	return 0;
}
