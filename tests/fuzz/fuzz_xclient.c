/*
 * fuzz_xclient.c — XCLIENT commands from hostile HELO names and logins.
 *
 * Input: one byte of offered attributes, then HELO and login separated by a
 * NUL.  Every command must be "XCLIENT" + attributes + CRLF within 512
 * octets, hold only printable ASCII (xtext), and ADDR only in the last one.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"
#include "xclient.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xclient_info ci = { "2001:db8::7", 1234, NULL, 1, NULL, "192.0.2.1", 587 };
	struct xclient_cmds c;
	char buf[2048];
	size_t i, j, n;

	if (size < 1 || size > sizeof(buf))
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	ci.helo = buf;
	n = strlen(buf);
	ci.login = n + 1 < size - 1 ? buf + n + 1 : NULL;
	xclient_build(data[0], &ci, &c);
	if (c.n > XCLIENT_CMDS_MAX)
		abort();
	for (i = 0; i < c.n; i++) {
		const char *l = c.line[i];
		size_t len = strlen(l);

		if (len > XCLIENT_LINE_MAX || len < 12 || memcmp(l, "XCLIENT ", 8) != 0 ||
		    memcmp(l + len - 2, "\r\n", 2) != 0)
			abort();
		for (j = 0; j + 2 < len; j++)
			if ((unsigned char)l[j] < 0x20 || (unsigned char)l[j] > 0x7e)
				abort();
		if (i + 1 < c.n && strstr(l, " ADDR=") != NULL)
			abort();
	}
	return 0;
}
