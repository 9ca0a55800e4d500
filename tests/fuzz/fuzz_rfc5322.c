/*
 * fuzz_rfc5322.c — the RFC 5322 address-list parser under hostile input.
 *
 * Input: the field value itself (any octets, NUL included).  Invariants:
 *   - the result is -1 or a count; at most max addresses are stored, and
 *     an error leaves none stored;
 *   - every address returned is 1..254 octets with an '@' and no control
 *     character, and is in canonical form: parsed again, it gives exactly
 *     itself;
 *   - asking for fewer addresses gives the same count and the same first
 *     ones (extra addresses are counted, not stored);
 *   - rfc5322_from_domain() (the From rule front and the signer share)
 *     accepts exactly when there is one address whose rfc5322_addr_domain()
 *     is accepted, and gives that domain.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rfc5322.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX 4

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *a[FZ_MAX + 1], *b[2], *one[1], dom[256], dom2[256];
	const char *in = (const char *)data;
	int n, n1, i, rc;
	size_t l, k;

	memset(a, 0, sizeof(a));
	n = rfc5322_parse_addresses(in, size, a, FZ_MAX);
	if (n < -1 || a[FZ_MAX] != NULL)
		abort();
	if (n == -1)
		for (i = 0; i < FZ_MAX; i++)
			if (a[i] != NULL)
				abort();
	for (i = 0; i < n && i < FZ_MAX; i++) {
		l = strlen(a[i]);
		if (l == 0 || l > RFC5322_ADDR_MAX || strchr(a[i], '@') == NULL)
			abort();
		for (k = 0; k < l; k++)
			if (((unsigned char)a[i][k] < 0x20 && a[i][k] != '\t') || a[i][k] == 0x7f)
				abort();
		if (rfc5322_parse_addresses(a[i], l, b, 2) != 1 || strcmp(a[i], b[0]) != 0)
			abort();
		free(b[0]);
	}
	n1 = rfc5322_parse_addresses(in, size, one, 1);
	if (n1 != n || (n > 0 && strcmp(one[0], a[0]) != 0))
		abort();
	rc = rfc5322_from_domain(in, size, dom, sizeof(dom));
	if (rc != (n == 1 && rfc5322_addr_domain(a[0], dom2, sizeof(dom2)) == 0 ? 0 : -1) ||
	    (rc == 0 && strcmp(dom, dom2) != 0))
		abort();
	if (n1 > 0)
		free(one[0]);
	rfc5322_free_addresses(a, n > 0 ? (size_t)(n < FZ_MAX ? n : FZ_MAX) : 0);
	return 0;
}
