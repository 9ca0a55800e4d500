/* libFuzzer target: the audit profile parser (policy/baseline format) and
 * the check-id glob matcher.  Invariants: no crash, no leak; a refusal says
 * why; a parsed profile answers level queries. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_profile *p;
	char err[512], id[64];
	size_t n;

	err[0] = '\0';
	p = audit_profile_parse("fuzz", (const char *)data, size, err, sizeof(err));
	if (p == NULL) {
		if (err[0] == '\0')
			abort();
	} else {
		(void)audit_profile_level(p, "tls.key.strength");
		(void)audit_profile_level(p, "dkim.lab.test.ed.dns");
		audit_profile_free(&p);
		if (p != NULL)
			abort();
	}
	/* the first line as a glob, the rest (up to 63 octets) as an id */
	n = size < sizeof(id) - 1 ? size : sizeof(id) - 1;
	memcpy(id, data, n);
	id[n] = '\0';
	{
		char *nl = strchr(id, '\n');
		if (nl != NULL) {
			*nl = '\0';
			(void)audit_glob_match(id, nl + 1);
		}
	}
	return 0;
}
