/* fuzz_proc.c — proc_msg_decode() and the payload reader on arbitrary bytes.
 *
 * Properties checked: decode never reads past the input; a decoded message
 * re-encodes to exactly the input bytes; refusals are one of the known
 * statuses; the reader (driven by ops taken from the request id) never leaves
 * its bounds, and a string it returns has the length it claimed and no NUL;
 * a start-up report (READY, ERR) that decodes has a text of at most
 * PROC_TEXT_MAX octets without NUL, and an ERR re-encodes to its input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct proc_msg m;
static uint8_t again[PROC_MAX_MSG];

static void
run_reader(const uint8_t *p, size_t len, uint32_t ops)
{
	struct proc_reader r;
	const uint8_t *b;
	uint64_t u64;
	uint32_t u32;
	uint8_t u8;
	size_t n, before;
	char *s;
	int i, rc, failed = 0;

	proc_reader_init(&r, p, len);
	for (i = 0; i < 16; i++) {
		before = r.off;
		switch ((ops >> (2 * i)) & 3) {
		case 0:
			rc = proc_get_u8(&r, &u8);
			break;
		case 1:
			rc = proc_get_u32(&r, &u32);
			break;
		case 2:
			rc = proc_get_u64(&r, &u64);
			break;
		default:
			if (i & 1) {
				rc = proc_get_bytes(&r, &b, &n, 4096);
				if (rc == 0 && (b < p || b + n > p + len))
					abort();
			} else {
				s = NULL;
				rc = proc_get_str(&r, &s, 4096);
				if (rc == 0) {
					if (s == NULL || strlen(s) != r.off - before - 4)
						abort();
					free(s);
				} else if (s != NULL)
					abort();
			}
			break;
		}
		if (r.off > r.len)
			abort();
		if (failed && rc == 0)
			abort();	/* errors must be sticky */
		if (rc != 0) {
			failed = 1;
			if (r.off != before)
				abort();
		}
	}
	if (proc_reader_end(&r) == 0 && (failed || r.off != len))
		abort();
}

static void
run_reports(const uint8_t *p, size_t len)
{
	static uint8_t enc[PROC_MAX_PAYLOAD];
	char text[PROC_TEXT_MAX + 1];
	struct proc_reader r;
	uint32_t v;
	long n;

	if (proc_ready_decode(p, len, &v, text, sizeof(text), &r) == 0) {
		if (strlen(text) > PROC_TEXT_MAX || r.off > r.len || r.off != 8 + strlen(text))
			abort();
	}
	if (proc_err_decode(p, len, &v, text, sizeof(text)) == 0) {
		n = proc_err_encode(enc, sizeof(enc), v, text);
		if (n < 0 || (size_t)n != len || memcmp(enc, p, len) != 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long n;
	int rc;

	rc = proc_msg_decode(data, size, &m);
	if (rc != m.error)
		abort();
	if (rc != PROC_OK) {
		if (rc < PROC_EFD || rc > PROC_ESHORT)
			abort();
		return 0;
	}
	if (m.len != size - PROC_HDR_LEN || m.len > PROC_MAX_PAYLOAD)
		abort();
	n = proc_msg_encode(again, sizeof(again), m.type, m.flags, m.id, m.payload, m.len);
	if (n < 0 || (size_t)n != size || memcmp(again, data, size) != 0)
		abort();
	run_reader(m.payload, m.len, m.id);
	run_reports(m.payload, m.len);
	return 0;
}
