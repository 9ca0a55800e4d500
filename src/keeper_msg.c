/* keeper_msg.c — the keeper's messages: result names and pure codecs. */
#include "keeper_msg.h"

#include "passwd.h"
#include "proc.h"

#include <string.h>

_Static_assert(sizeof(((struct keeper_auth_fields *)0)->login) == PASSWD_LOGIN_MAX + 1,
    "keeper_auth_fields.login must hold PASSWD_LOGIN_MAX octets and a NUL");

const char *
keeper_auth_result_name(int result)
{
	switch (result) {
	case KEEPER_AUTH_FAIL:		return "fail";
	case KEEPER_AUTH_OK:		return "ok";
	case KEEPER_AUTH_LOCKED:	return "locked";
	case KEEPER_AUTH_BUSY:		return "busy";
	case KEEPER_AUTH_BADREQ:	return "badreq";
	case KEEPER_DEAD:		return "keeper-dead";
	default:			return "unknown";
	}
}

/* ---- pure codecs ---- */

static int
peer_ok(const uint8_t *p, size_t n)
{
	size_t i;

	if (n > KEEPER_PEER_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return 0;
	return 1;
}

long
keeper_auth_req_encode(uint8_t *buf, size_t cap, const char *login, const char *pw, size_t pwlen,
    const char *peer)
{
	struct proc_writer w;
	size_t llen = strlen(login), plen;

	if (peer == NULL)
		peer = "";
	plen = strlen(peer);
	if (llen > PASSWD_LOGIN_MAX || pwlen > KEEPER_PW_MAX || (pw == NULL && pwlen > 0) ||
	    !peer_ok((const uint8_t *)peer, plen))
		return -1;
	proc_writer_init(&w, buf, cap);
	proc_put_bytes(&w, login, llen);
	proc_put_bytes(&w, pw, pwlen);
	proc_put_bytes(&w, peer, plen);
	return proc_writer_done(&w);
}

int
keeper_auth_req_decode(const uint8_t *p, size_t len, struct keeper_auth_fields *f)
{
	struct proc_reader r;
	const uint8_t *login, *peer;
	size_t llen, plen;

	proc_reader_init(&r, p, len);
	if (proc_get_bytes(&r, &login, &llen, PASSWD_LOGIN_MAX) < 0 ||
	    proc_get_bytes(&r, &f->pw, &f->pwlen, KEEPER_PW_MAX) < 0 ||
	    proc_get_bytes(&r, &peer, &plen, KEEPER_PEER_MAX) < 0 || proc_reader_end(&r) < 0)
		return -1;
	if ((llen > 0 && memchr(login, '\0', llen) != NULL) || !peer_ok(peer, plen))
		return -1;
	memcpy(f->login, login, llen);
	f->login[llen] = '\0';
	memcpy(f->peer, peer, plen);
	f->peer[plen] = '\0';
	return 0;
}

long
keeper_auth_rep_encode(uint8_t *buf, size_t cap, uint32_t result, uint32_t flags)
{
	struct proc_writer w;

	proc_writer_init(&w, buf, cap);
	proc_put_u32(&w, result);
	proc_put_u32(&w, flags);
	return proc_writer_done(&w);
}

int
keeper_auth_rep_decode(const uint8_t *p, size_t len, int *result_r, unsigned int *flags_r)
{
	struct proc_reader r;
	uint32_t result, flags;

	proc_reader_init(&r, p, len);
	if (proc_get_u32(&r, &result) < 0 || proc_get_u32(&r, &flags) < 0 ||
	    proc_reader_end(&r) < 0)
		return -1;
	if (result > KEEPER_AUTH_RESULT_MAX || (flags & ~KEEPER_AUTH_F_KNOWN) != 0 ||
	    ((flags & KEEPER_AUTH_F_CACHED) && result != KEEPER_AUTH_OK))
		return -1;
	*result_r = (int)result;
	*flags_r = flags;
	return 0;
}

long
keeper_tls_req_encode(uint8_t *buf, size_t cap, const struct keeper_tls_fields *f)
{
	struct proc_writer w;

	if ((f->op != KEEPER_OP_SIGN_HASH && f->op != KEEPER_OP_SIGN_DATA) || f->len == 0 ||
	    f->len > KEEPER_SIGN_DATA_MAX)
		return -1;
	proc_writer_init(&w, buf, cap);
	proc_put_u8(&w, f->op);
	proc_put_u32(&w, f->algo);
	proc_put_u32(&w, f->flags);
	proc_put_bytes(&w, f->data, f->len);
	return proc_writer_done(&w);
}

int
keeper_tls_req_decode(const uint8_t *p, size_t len, struct keeper_tls_fields *f)
{
	struct proc_reader r;

	proc_reader_init(&r, p, len);
	if (proc_get_u8(&r, &f->op) < 0 || proc_get_u32(&r, &f->algo) < 0 ||
	    proc_get_u32(&r, &f->flags) < 0 ||
	    proc_get_bytes(&r, &f->data, &f->len, KEEPER_SIGN_DATA_MAX) < 0 ||
	    proc_reader_end(&r) < 0)
		return -1;
	if ((f->op != KEEPER_OP_SIGN_HASH && f->op != KEEPER_OP_SIGN_DATA) || f->len == 0)
		return -1;
	return 0;
}

int
keeper_ready_decode(const uint8_t *p, size_t len, struct keeper_fds *fds)
{
	struct proc_reader r;
	const uint8_t *spki;
	char text[PROC_TEXT_MAX + 1];
	size_t slen;
	uint32_t n, pk, bits;

	if (proc_ready_decode(p, len, &n, text, sizeof(text), &r) < 0 ||
	    proc_get_u32(&r, &pk) < 0 || proc_get_u32(&r, &bits) < 0 ||
	    proc_get_bytes(&r, &spki, &slen, KEEPER_SPKI_MAX) < 0 || proc_reader_end(&r) < 0)
		return -1;
	if (pk == 0 || pk > 1000 || bits == 0 || bits > 65536 || slen == 0)
		return -1;
	fds->npasswd = n;
	fds->pk_algo = (int)pk;
	fds->bits = bits;
	memcpy(fds->spki, spki, slen);
	fds->spki_len = slen;
	return 0;
}
