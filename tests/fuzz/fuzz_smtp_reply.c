/*
 * fuzz_smtp_reply.c — the upstream reply parser under hostile input.
 *
 * Input: one byte n, then n bytes of chunk sizes (each 1..256, used in turn),
 * then the stream.  The stream is parsed in one shot and in those chunks; the
 * replies, the final status, the bytes used and the error must be the same.
 * Every reply also goes through smtp_ehlo_caps(), and the parser says it
 * holds part of a reply exactly when it returned none (or failed).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_outcome {
	int status;
	size_t used;
	size_t n, cap;
	struct smtp_reply **r;
	char err[128];
};

static void
fz_check_reply(const struct smtp_reply *r)
{
	struct smtp_caps caps;
	size_t i, len = 0;

	if (r->code < 200 || r->code > 559 || r->code % 100 / 10 > 5 || r->nlines < 1 ||
	    r->nlines > SMTP_REPLY_LINES_MAX || r->lines[r->nlines] != NULL)
		abort();
	for (i = 0; i < r->nlines; i++)
		len += strlen(r->lines[i]) + 1;
	if (strlen(r->text) + 1 != len || strlen(r->enh) >= sizeof(r->enh))
		abort();
	if (memchr(r->text, '\r', len - 1) != NULL)
		abort();
	smtp_ehlo_caps(r, &caps);
}

static void
fz_run(const uint8_t *buf, size_t len, const uint8_t *steps, size_t nsteps,
    struct fz_outcome *o)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();
	size_t off = 0, end, used, si = 0;
	struct smtp_reply *r;
	int rv;

	memset(o, 0, sizeof(*o));
	while (off < len) {
		if (nsteps == 0)
			end = len;
		else {
			end = off + (size_t)steps[si++ % nsteps] + 1;
			if (end > len)
				end = len;
		}
		while (off < end) {
			rv = smtp_reply_parser_feed(p, buf + off, end - off, &used, &r);
			if (used > end - off)
				abort();
			/* bytes of an unfinished reply are held, none after a whole one */
			if (smtp_reply_parser_pending(p) != (rv != 1))
				abort();
			if (rv < 0) {
				if (r != NULL)
					abort();
				o->status = -1;
				o->used = off + used;
				snprintf(o->err, sizeof(o->err), "%s", smtp_reply_parser_error(p));
				smtp_reply_parser_free(&p);
				return;
			}
			if (rv == 0 && (used != end - off || r != NULL))
				abort();
			if (rv == 1) {
				if (r == NULL || used == 0)
					abort();
				fz_check_reply(r);
				if (o->n == o->cap) {
					o->cap = o->cap ? o->cap * 2 : 8;
					o->r = realloc(o->r, o->cap * sizeof(*o->r));
					if (o->r == NULL)
						abort();
				}
				o->r[o->n++] = r;
			}
			off += used;
		}
	}
	o->used = off;
	smtp_reply_parser_free(&p);
}

static void
fz_clear(struct fz_outcome *o)
{
	size_t i;

	for (i = 0; i < o->n; i++)
		smtp_reply_free(&o->r[i]);
	free(o->r);
}

static void
fz_compare(const struct fz_outcome *a, const struct fz_outcome *b)
{
	size_t i, j;

	if (a->status != b->status || a->used != b->used || a->n != b->n ||
	    strcmp(a->err, b->err) != 0)
		abort();
	for (i = 0; i < a->n; i++) {
		const struct smtp_reply *x = a->r[i], *y = b->r[i];

		if (x->code != y->code || strcmp(x->enh, y->enh) != 0 ||
		    x->nlines != y->nlines || strcmp(x->text, y->text) != 0)
			abort();
		for (j = 0; j < x->nlines; j++)
			if (strcmp(x->lines[j], y->lines[j]) != 0)
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t one = 0;
	struct fz_outcome whole, parts;
	size_t nsteps;

	if (size < 1)
		return 0;
	nsteps = data[0] % 32;
	if (size - 1 < nsteps)
		return 0;
	fz_run(data + 1 + nsteps, size - 1 - nsteps, NULL, 0, &whole);
	/* no chunk sizes given: byte by byte */
	fz_run(data + 1 + nsteps, size - 1 - nsteps, nsteps ? data + 1 : &one, nsteps ? nsteps : 1,
	    &parts);
	fz_compare(&whole, &parts);
	fz_clear(&whole);
	fz_clear(&parts);
	return 0;
}
