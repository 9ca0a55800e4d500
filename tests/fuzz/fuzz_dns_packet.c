/* libFuzzer target: DNS response parsing (names, compression, CNAME chains). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[] = { DNS_T_A, DNS_T_AAAA, DNS_T_TLSA, DNS_T_CNAME, DNS_T_TXT };
	struct dns_result r;
	size_t i;

	if (size < 1)
		return 0;
	memset(&r, 0, sizeof(r));
	if (dns_parse_packet(data + 1, size - 1, "relay.lab.test", types[data[0] % 5], &r) == 0) {
		for (i = 0; i < r.nrr; i++)
			if (r.rr[i].len > 0 && r.rr[i].data[0] == 0xff)
				r.why[0] = 1;   /* touch every record */
	}
	dns_result_clear(&r);
	return 0;
}
