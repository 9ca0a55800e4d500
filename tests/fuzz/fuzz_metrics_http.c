/*
 * fuzz_metrics_http.c — the metrics responder's request parser under
 * hostile input.
 *
 * The input is parsed whole and as every prefix a reader could have seen
 * on the way (at each of up to 64 cut points): a prefix is never complete
 * before the whole is, a complete head has the same result whatever follows
 * it, and an error on a prefix stays an error for the whole.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct metrics_http_req whole, part;
	size_t cut, step = size / 64 + 1;
	int rw, rp, st;

	rw = metrics_http_parse(buf, size, &whole);
	if (rw < -2 || rw > 1)
		abort();
	if (rw == 1 && (whole.head_len == 0 || whole.head_len > size ||
	    whole.head_len > METRICS_HTTP_HEAD_MAX || memcmp(buf + whole.head_len - 4, "\r\n\r\n", 4)))
		abort();
	st = metrics_http_status(rw, &whole);
	if (st != 200 && st != 400 && st != 404 && st != 405 && st != 431)
		abort();
	for (cut = 0; cut < size; cut += step) {
		rp = metrics_http_parse(buf, cut, &part);
		if (rp == 1) {
			/* complete early: the whole must agree */
			if (rw != 1 || part.head_len != whole.head_len ||
			    part.method != whole.method || part.metrics_path != whole.metrics_path ||
			    part.openmetrics != whole.openmetrics)
				abort();
		}
		if (rp == -1 && rw == 0)
			abort();
	}
	return 0;
}
