/*
 * fuzz_audit_baseline.c — the start-up audit's report to the daemon
 * (audit_baseline_parse) under arbitrary bytes: never crashes, and what it
 * accepts is well-formed (ids non-empty, flags 0/1, strings terminated).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_baseline bl;
	char fail[512];
	size_t i;

	if (audit_baseline_parse((const char *)data, size, &bl, fail, sizeof(fail)) < 0) {
		if (bl.nchecks != 0 || bl.nkeys != 0 || bl.checks != NULL || bl.keys != NULL)
			abort();
		return 0;
	}
	if (strlen(fail) >= sizeof(fail))
		abort();
	for (i = 0; i < bl.nchecks; i++)
		if (bl.checks[i].id[0] == '\0' || (bl.checks[i].ok & ~1) || (bl.checks[i].required & ~1))
			abort();
	for (i = 0; i < bl.nkeys; i++)
		if (bl.keys[i].type < 0 || bl.keys[i].type > 16 || strlen(bl.keys[i].txt) > size)
			abort();
	audit_baseline_clear(&bl);
	return 0;
}
