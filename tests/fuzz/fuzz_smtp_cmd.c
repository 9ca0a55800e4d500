/* libFuzzer target: client command lines, base64 and AUTH PLAIN decoding.
 * Input: first byte = options (bit 0 dsn, bit 1 smtputf8 transaction), the
 * rest is one command line.  Invariants: no crash; a refusal carries a
 * 2xx-5xx code, an enhanced code and a sentence; an accepted MAIL/RCPT path
 * is shorter than the limit and has no control characters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_syntax.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_parse_opts o;
	struct smtp_cmd c;
	struct smtp_err e;
	char *line, out[2048];
	const char *u, *p;
	size_t n, i, pl;

	if (size == 0 || size > SMTP_CMD_MAX + 64)
		return 0;
	o.dsn_enabled = data[0] & 1;
	o.smtputf8_txn = (data[0] >> 1) & 1;
	n = size - 1;
	line = malloc(n + 1);
	memcpy(line, data + 1, n);
	line[n] = '\0';
	if (smtp_cmd_parse(line, n, &o, &c, &e) < 0) {
		if (e.code < 500 || e.code > 555 || e.enh[0] != '5' || e.text[0] == '\0')
			abort();
	} else if (c.verb == SMTP_V_MAIL || c.verb == SMTP_V_RCPT) {
		if (strlen(c.path) > SMTP_PATH_MAX - 2)
			abort();
		for (i = 0; c.path[i] != '\0'; i++)
			if ((unsigned char)c.path[i] < 0x20 || c.path[i] == 0x7f)
				abort();
	}
	free(line);
	if (smtp_base64_decode((const char *)data + 1, n, out, sizeof(out) - 1, &pl) == 0) {
		if (pl > sizeof(out) - 1)
			abort();
		out[pl] = '\0';
		if (smtp_auth_plain_decode(out, pl, &u, &p, &pl) == 0 && (*u == '\0' ||
		    p < out || p + pl > out + sizeof(out)))
			abort();
	}
	return 0;
}
