/*
 * fuzz_proxyproto.c — the PROXY protocol parser under hostile input.
 *
 * Every prefix of the input is parsed (as a caller does while bytes arrive):
 * once decided, the answer must never change; a DONE keeps its length and
 * addresses; NEED_MORE is only given below the protocol's bounds; addresses
 * are of the families the parser promises.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_addr(const struct sockaddr_storage *ss, socklen_t len)
{
	if (ss->ss_family == AF_INET && len == sizeof(struct sockaddr_in))
		return;
	if (ss->ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6))
		return;
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxyproto_result first, r;
	enum proxyproto_status decided = PROXYPROTO_NEED_MORE, st;
	uint8_t *copy;
	size_t k;

	if (size > 4 * PROXYPROTO_MAX)
		size = 4 * PROXYPROTO_MAX;
	memset(&first, 0, sizeof(first));
	for (k = 0; k <= size; k++) {
		/* an exact-size heap copy, so that any over-read is caught */
		copy = malloc(k ? k : 1);
		if (copy == NULL)
			abort();
		memcpy(copy, data, k);
		st = proxyproto_parse(copy, k, &r);
		free(copy);
		if (st == PROXYPROTO_NEED_MORE && k >= PROXYPROTO_MAX)
			abort();
		if (st == PROXYPROTO_INVALID && r.why == NULL)
			abort();
		if (st == PROXYPROTO_DONE) {
			if (r.consumed == 0 || r.consumed > k || (r.version != 1 && r.version != 2))
				abort();
			if (!r.local) {
				check_addr(&r.src, r.srclen);
				check_addr(&r.dst, r.dstlen);
				if (r.src.ss_family != r.dst.ss_family)
					abort();
			}
		}
		if (decided == PROXYPROTO_NEED_MORE) {
			decided = st;
			first = r;
			continue;
		}
		if (st != decided)
			abort();
		if (st == PROXYPROTO_DONE && (r.consumed != first.consumed || r.local != first.local ||
		    memcmp(&r.src, &first.src, sizeof(r.src)) != 0 ||
		    memcmp(&r.dst, &first.dst, sizeof(r.dst)) != 0))
			abort();
		if (st != PROXYPROTO_NEED_MORE)
			break;   /* decided and checked once more: longer prefixes add nothing */
	}
	return 0;
}
