/* libFuzzer target: the configuration parser (grammar, validation,
 * overrides).  The first line of the input, if it starts with "-o ", is an
 * override.  Invariants: no crash, no leak, an error always names the file,
 * and without an override FILE:LINE. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_override ov;
	struct config *cfg;
	char err[1024];
	const char *buf = (const char *)data;
	size_t nov = 0;

	if (size > 3 && memcmp(data, "-o ", 3) == 0) {
		const char *nl = memchr(data, '\n', size);
		size_t ol = nl ? (size_t)(nl - buf) - 3 : size - 3;
		char *o = malloc(ol + 1);

		memcpy(o, buf + 3, ol);
		o[ol] = '\0';
		if (config_override_parse(o, &ov, err, sizeof(err)) == 0)
			nov = 1;
		free(o);
		if (nl != NULL) {
			size -= (size_t)(nl + 1 - buf);
			buf = nl + 1;
		} else {
			size = 0;
		}
	}
	err[0] = '\0';
	cfg = config_parse_buffer("fuzz.conf", buf, size, nov ? &ov : NULL, nov, err, sizeof(err));
	if (cfg == NULL) {
		if (strncmp(err, "fuzz.conf", 9) != 0)
			abort();
		/* without -o the error is the file's: it names a line */
		if (nov == 0 && (err[9] != ':' || err[10] < '1' || err[10] > '9'))
			abort();
	} else {
		(void)config_sender_allowed(cfg, "alice@lab.test", "alice@lab.test");
		config_free(&cfg);
	}
	if (nov)
		config_override_clear(&ov);
	return 0;
}
