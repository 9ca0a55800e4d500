/*
 * fuzz_message.c — the DATA/BDAT intake parser and the dot-stuffer under
 * hostile input (the address-list parser alone: fuzz_rfc5322.c).
 *
 * Input: byte 0 chooses the mode (bit 0: DATA/BDAT; bit 1 unused) and the
 * limits (bits 2..7); byte 1 seeds the split points; the rest is the
 * stream.  The stream is parsed in one piece, in pseudo-random
 * pieces and (when short) octet by octet, with different spool memory
 * bounds; everything must agree.  Invariants checked:
 *   - DATA ends exactly at the first <CRLF>.<CRLF> (or a leading ".\r\n");
 *   - an accepted message holds no NUL, bare CR or LF, no overlong line,
 *     has a From, and its spool is the reference unstuffing of the input;
 *   - restuffing an accepted message gives back the wire input (when it
 *     had no lone dot to drop), and parsing that again gives the same.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "message.h"
#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_out {
	struct msg_result r;
	char *from[MSG_FROM_MAX];
	char *sender;
	unsigned char *spool;
	size_t spool_len, used;
	int done;
	uint64_t bytes;
};

static void
fz_out_clear(struct fz_out *o)
{
	size_t i;

	for (i = 0; i < o->r.nfrom; i++)
		free(o->from[i]);
	free(o->sender);
	free(o->spool);
	memset(o, 0, sizeof(*o));
}

/* Piece sizes: 0 = one piece, 1 = octet by octet, else pseudo-random. */
static void
fz_run(enum msg_mode mode, const struct msg_limits *lim, const uint8_t *in, size_t len,
    unsigned int split, size_t mem, struct fz_out *o)
{
	struct spool *sp = spool_new(mem);
	struct msg_parser *p = msg_parser_new(lim, mode, sp);
	const struct msg_result *r;
	size_t off = 0, i, n;
	unsigned int seed = split;

	memset(o, 0, sizeof(*o));
	while (off < len) {
		size_t k = len - off, used;

		if (split == 1)
			k = 1;
		else if (split > 1) {
			seed = seed * 1103515245u + 12345u;
			k = (seed >> 16) % 17;  /* empty pieces too */
			if (k > len - off)
				k = len - off;
		}
		used = msg_parser_feed(p, in + off, k);
		if (used > k)
			abort();
		o->used += used;
		if (mode == MSG_MODE_DATA && msg_parser_done(p))
			break;
		if (used != k || msg_parser_done(p))
			abort();
		off += k;
	}
	if (mode == MSG_MODE_BDAT)
		msg_parser_finish(p);
	o->done = msg_parser_done(p);
	o->bytes = msg_parser_bytes(p);
	r = msg_parser_result(p);
	o->r = *r;
	if (r->nfrom > MSG_FROM_MAX || (r->nfrom > 0 && r->code != 0 && r->code != 550 &&
	    r->code != 552 && r->code != 554 && r->code != 451))
		abort();
	for (i = 0; i < r->nfrom; i++)
		o->from[i] = strdup(r->from[i]);
	o->sender = r->sender ? strdup(r->sender) : NULL;
	o->spool_len = (size_t)spool_size(sp);
	o->spool = malloc(o->spool_len + 1);
	if (o->spool_len > 0 && (spool_read(sp, 0, o->spool, o->spool_len, &n) < 0 ||
	    n != o->spool_len))
		abort();
	msg_parser_free(&p);
	spool_free(&sp);
}

static void
fz_same(const struct fz_out *a, const struct fz_out *b)
{
	size_t i;

	if (a->r.code != b->r.code || strcmp(a->r.enh, b->r.enh) != 0 ||
	    strcmp(a->r.text, b->r.text) != 0 || a->r.size != b->r.size ||
	    a->r.header_size != b->r.header_size || a->r.received != b->r.received ||
	    a->r.has_message_id != b->r.has_message_id || a->r.has_date != b->r.has_date ||
	    a->r.has_8bit != b->r.has_8bit || a->r.added_final_crlf != b->r.added_final_crlf ||
	    a->r.nfrom != b->r.nfrom || a->spool_len != b->spool_len ||
	    memcmp(a->spool, b->spool, a->spool_len) != 0 || a->used != b->used ||
	    a->done != b->done || a->bytes != b->bytes ||
	    (a->sender == NULL) != (b->sender == NULL) ||
	    (a->sender != NULL && strcmp(a->sender, b->sender) != 0))
		abort();
	for (i = 0; i < a->r.nfrom; i++)
		if (strcmp(a->from[i], b->from[i]) != 0)
			abort();
}

/* Where DATA must end: after the first CRLF.CRLF, or 3 for ".\r\n" first. */
static size_t
fz_data_end(const uint8_t *in, size_t len)
{
	size_t i;

	if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	for (i = 0; i + 5 <= len; i++)
		if (memcmp(in + i, "\r\n.\r\n", 5) == 0)
			return i + 5;
	return 0;
}

/* Reference unstuffing of a DATA input known to be strict CRLF: drop the
 * first octet of every line that starts with '.'.  *lone_r: some line
 * started with a dot not followed by another. */
static unsigned char *
fz_unstuff(const uint8_t *in, size_t len, size_t *outlen, int *lone_r)
{
	unsigned char *out = malloc(len + 1);
	size_t i, o = 0;
	int bol = 1;

	*lone_r = 0;
	for (i = 0; i < len; i++) {
		if (bol && in[i] == '.') {
			if (i + 1 >= len || in[i + 1] != '.')
				*lone_r = 1;
			bol = 0;
			continue;
		}
		out[o++] = in[i];
		bol = in[i] == '\n' && i > 0 && in[i - 1] == '\r';
	}
	*outlen = o;
	return out;
}

static unsigned char *
fz_stuff(const unsigned char *in, size_t len, unsigned int split, size_t *outlen)
{
	struct evbuffer *eb = evbuffer_new();
	struct msg_stuffer st;
	unsigned char *out;
	size_t off = 0;

	msg_stuff_init(&st);
	while (off < len) {
		size_t k = split % 7 + 1;

		split = split * 33 + 1;
		if (k > len - off)
			k = len - off;
		msg_stuff(&st, in + off, k, eb);
		off += k;
	}
	msg_stuff_end(&st, eb);
	*outlen = evbuffer_get_length(eb);
	out = malloc(*outlen + 1);
	evbuffer_remove(eb, out, *outlen);
	evbuffer_free(eb);
	return out;
}

static void
fz_check_accepted(const struct msg_limits *lim, const struct fz_out *o)
{
	uint64_t line = 0;
	size_t i;

	if (o->r.nfrom == 0 || o->r.size != o->spool_len)
		abort();
	/* the limit is on the client's octets: not on a CRLF front appended */
	if (lim->max_size != 0 && o->spool_len - (o->r.added_final_crlf ? 2 : 0) > lim->max_size)
		abort();
	if (o->spool_len > 0 && (o->spool_len < 2 || o->spool[o->spool_len - 2] != '\r' ||
	    o->spool[o->spool_len - 1] != '\n'))
		abort();
	for (i = 0; i < o->spool_len; i++) {
		unsigned char c = o->spool[i];

		if (c == '\0' || (c == '\r' && (i + 1 >= o->spool_len || o->spool[i + 1] != '\n')) ||
		    (c == '\n' && (i == 0 || o->spool[i - 1] != '\r')))
			abort();
		if (c == '\r' || c == '\n')
			line = 0;
		else if (++line > lim->max_line)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_limits lim;
	struct fz_out ref, o;
	enum msg_mode mode;
	unsigned int seed;
	const uint8_t *in;
	size_t len;

	if (size < 2)
		return 0;
	in = data + 2;
	len = size - 2;
	mode = data[0] & 1 ? MSG_MODE_BDAT : MSG_MODE_DATA;
	lim.max_line = data[0] & 4 ? 998 : 12;
	lim.max_size = data[0] & 8 ? 0 : 200;
	lim.max_header = data[0] & 16 ? 65536 : 64;
	lim.max_received = data[0] & 32 ? 30 : 1;
	seed = data[1] | 2u;

	fz_run(mode, &lim, in, len, 0, 1 << 20, &ref);
	fz_run(mode, &lim, in, len, seed, 16, &o);
	fz_same(&ref, &o);
	fz_out_clear(&o);
	if (len <= 2048) {
		fz_run(mode, &lim, in, len, 1, 0, &o);
		fz_same(&ref, &o);
		fz_out_clear(&o);
	}

	if (mode == MSG_MODE_DATA) {
		size_t end = fz_data_end(in, len);

		if (end != 0 ? !ref.done || ref.used != end || ref.bytes != end :
		    ref.done || ref.used != len)
			abort();
	} else if (ref.used != len || ref.bytes != len || ref.done)
		abort();

	if (ref.r.code == 0 && (mode == MSG_MODE_BDAT || ref.done)) {
		unsigned char *u, *w;
		size_t ulen, wlen;
		int lone = 0;

		fz_check_accepted(&lim, &ref);
		if (mode == MSG_MODE_DATA) {
			u = fz_unstuff(in, ref.used - 3, &ulen, &lone);
			if (ulen != ref.spool_len || memcmp(u, ref.spool, ulen) != 0)
				abort();
			free(u);
		} else if (ref.spool_len != len + (ref.r.added_final_crlf ? 2 : 0) ||
		    memcmp(ref.spool, in, len) != 0 ||
		    (ref.r.added_final_crlf && memcmp(ref.spool + len, "\r\n", 2) != 0))
			abort();
		w = fz_stuff(ref.spool, ref.spool_len, seed, &wlen);
		if (mode == MSG_MODE_DATA && !lone && (wlen != ref.used || memcmp(w, in, wlen) != 0))
			abort();
		/* the stuffed form parses back to the same message */
		fz_run(MSG_MODE_DATA, &lim, w, wlen, seed + 1, 64, &o);
		if (o.r.code != 0 || !o.done || o.used != wlen || o.spool_len != ref.spool_len ||
		    memcmp(o.spool, ref.spool, o.spool_len) != 0)
			abort();
		fz_out_clear(&o);
		free(w);
	}
	fz_out_clear(&ref);
	return 0;
}
