/* libFuzzer target for smtp_syntax.c.  Input: a command line up to the first
 * LF, then (optionally) a base64 text.  The line is parsed under every
 * option combination; the base64 text (and any AUTH initial response) is
 * decoded and the result split as AUTH PLAIN.  Invariants checked:
 *  - a refusal carries a 5xx code, a 5.x.x enhanced code and a printable
 *    sentence; a line with a control octet is refused with 500;
 *  - an accepted command has a known verb, its pointers lie inside the line,
 *    a MAIL/RCPT path is short enough, has no control octet, is non-empty for
 *    RCPT and holds 8-bit octets only when SMTPUTF8 applies;
 *  - enabling DSN or SMTPUTF8 never turns an accepted line into a refused one
 *    nor changes the path;
 *  - base64 that decodes re-encodes to exactly the input (strictness);
 *  - an accepted AUTH PLAIN split obeys its contract. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_syntax.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char b64tab[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
check(int cond)
{
	if (!cond)
		abort();
}

static int
inside(const char *p, const char *buf, size_t len)
{
	return p == NULL || (p >= buf && p <= buf + len);
}

static void
check_reply(const struct smtp_err *e)
{
	size_t i;

	check(e->code >= 500 && e->code <= 555);
	check(e->enh[0] == '5' && e->enh[1] == '.');
	check(e->text[0] != '\0');
	for (i = 0; e->text[i] != '\0'; i++)
		check(e->text[i] >= 0x20 && e->text[i] < 0x7f);
}

static void
check_cmd(const struct smtp_cmd *c, const struct smtp_parse_opts *o, const char *buf,
    size_t len)
{
	size_t i, n;
	int eight = 0;

	check(c->verb != SMTP_V_UNKNOWN);
	check(inside(c->domain, buf, len) && inside(c->envid, buf, len) &&
	    inside(c->auth, buf, len) && inside(c->orcpt, buf, len) &&
	    inside(c->auth_mech, buf, len) && inside(c->auth_initial, buf, len) &&
	    inside(c->arg, buf, len));
	check(c->size <= (1ULL << 63));
	check(c->bdat_size <= 9999999999999999999ULL);
	n = strnlen(c->path, sizeof(c->path));
	check(n <= SMTP_PATH_MAX - 2);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)c->path[i];
		check(ch >= 0x20 && ch != 0x7f);
		eight |= ch >= 0x80;
	}
	if (c->verb == SMTP_V_RCPT)
		check(n > 0);
	if (eight)
		check(c->verb == SMTP_V_MAIL ? c->smtputf8 : o->smtputf8_txn);
	if (!o->dsn_enabled)
		check(c->ret == SMTP_RET_NONE && c->envid == NULL && c->orcpt == NULL &&
		    c->notify[0] == '\0');
	if (c->verb == SMTP_V_AUTH)
		check(c->auth_mech != NULL && c->auth_mech[0] != '\0');
}

static void
check_b64(const char *in, size_t inlen)
{
	char out[2048], re[2800];
	const char *u, *p;
	size_t n, pl, i, o = 0;

	if (inlen > 2700 || smtp_base64_decode(in, inlen, out, sizeof(out) - 1, &n) < 0)
		return;
	check(n <= sizeof(out) - 1);
	if (!(inlen == 1 && in[0] == '=')) {
		/* re-encode: strict base64 is canonical */
		for (i = 0; i + 2 < n; i += 3) {
			unsigned v = (unsigned char)out[i] << 16 |
			    (unsigned char)out[i + 1] << 8 | (unsigned char)out[i + 2];
			re[o++] = b64tab[v >> 18];
			re[o++] = b64tab[(v >> 12) & 63];
			re[o++] = b64tab[(v >> 6) & 63];
			re[o++] = b64tab[v & 63];
		}
		if (n - i > 0) {
			unsigned v = (unsigned char)out[i] << 16 |
			    (n - i > 1 ? (unsigned char)out[i + 1] << 8 : 0);
			re[o++] = b64tab[v >> 18];
			re[o++] = b64tab[(v >> 12) & 63];
			re[o++] = n - i > 1 ? b64tab[(v >> 6) & 63] : '=';
			re[o++] = '=';
		}
		check(o == inlen && memcmp(re, in, inlen) == 0);
	}
	out[n] = '\0';
	if (smtp_auth_plain_decode(out, n, &u, &p, &pl) == 0) {
		size_t zl = strlen(out), ul = strlen(u);

		check(ul > 0 && u == out + zl + 1);
		check(zl == 0 || (zl == ul && memcmp(out, u, ul) == 0));
		check(p == u + ul + 1 && p + pl == out + n);
		check(memchr(p, '\0', pl) == NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct smtp_parse_opts opts[4] = { { 0, 0 }, { 1, 0 }, { 0, 1 }, { 1, 1 } };
	struct smtp_cmd c[4];
	struct smtp_err e;
	char *buf[4];
	const uint8_t *lf;
	size_t len, i;
	int rc[4], ctl = 0;

	if (size > 4096)
		return 0;
	lf = memchr(data, '\n', size);
	len = lf != NULL ? (size_t)(lf - data) : size;
	for (i = 0; i < len; i++)
		ctl |= data[i] < 0x20 || data[i] == 0x7f;
	for (i = 0; i < 4; i++) {
		/* an exact-size heap copy so ASan sees any over-read */
		buf[i] = malloc(len + 1);
		memcpy(buf[i], data, len);
		buf[i][len] = '\0';
		rc[i] = smtp_cmd_parse(buf[i], len, &opts[i], &c[i], &e);
		if (rc[i] < 0) {
			check(rc[i] == -1);
			check_reply(&e);
			if (ctl)
				check(e.code == 500 && strcmp(e.enh, "5.5.2") == 0);
		} else {
			check(rc[i] == 0 && !ctl);
			check_cmd(&c[i], &opts[i], buf[i], len);
		}
	}
	/* more options never refuse what fewer accepted, nor change the result */
	for (i = 1; i < 4; i++) {
		if (rc[0] == 0) {
			check(rc[i] == 0);
			check(c[i].verb == c[0].verb && strcmp(c[i].path, c[0].path) == 0);
		}
	}
	if (rc[1] == 0)
		check(rc[3] == 0 && strcmp(c[1].path, c[3].path) == 0);
	if (rc[2] == 0)
		check(rc[3] == 0 && strcmp(c[2].path, c[3].path) == 0);
	if (rc[3] == 0 && c[3].verb == SMTP_V_AUTH && c[3].auth_initial != NULL)
		check_b64(c[3].auth_initial, strlen(c[3].auth_initial));
	for (i = 0; i < 4; i++)
		free(buf[i]);
	if (lf != NULL)
		check_b64((const char *)lf + 1, size - len - 1);
	else
		check_b64((const char *)data, size);
	return 0;
}
