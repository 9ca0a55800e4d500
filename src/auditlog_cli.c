/* auditlog_cli.c — reading audit log files for --verify-log and --report. */
#include "auditlog_cli.h"

#include "auditkey.h"
#include "auditlog_report.h"
#include "auditlog_verify.h"
#include "json.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct logfile {
	const char *name;
	uint64_t first_seq;		/* UINT64_MAX: no readable first record */
	size_t pos;			/* as given, for a stable order */
};

/* Read one line (without its newline) of at most ALOG_LINE_MAX octets into
 * buf (ALOG_LINE_MAX + 1 octets).  Returns 1 with *len_r and *complete_r,
 * 0 at the end of the file, -1 on a read error.  A longer line is consumed
 * and reported with *len_r = ALOG_LINE_MAX + 1. */
static int
read_line(FILE *f, char *buf, size_t *len_r, int *complete_r)
{
	size_t n = 0;
	int c;

	while ((c = getc(f)) != EOF) {
		if (c == '\n') {
			*len_r = n;
			*complete_r = 1;
			return 1;
		}
		if (n <= ALOG_LINE_MAX)
			buf[n] = (char)c;
		if (n <= ALOG_LINE_MAX)
			n++;
	}
	if (ferror(f))
		return -1;
	if (n == 0)
		return 0;
	*len_r = n;
	*complete_r = 0;
	return 1;
}

static uint64_t
first_seq(const char *name, char *buf)
{
	struct json *rec = NULL;
	struct alog_env env;
	size_t len;
	char err[200];
	int complete;
	uint64_t seq = UINT64_MAX;
	FILE *f;

	if ((f = fopen(name, "re")) == NULL)
		return seq;
	if (read_line(f, buf, &len, &complete) == 1 && len <= ALOG_LINE_MAX &&
	    json_parse(buf, len, &rec, err, sizeof(err)) == 0 &&
	    alog_record_check(rec, &env, err, sizeof(err)) == 0)
		seq = env.seq;
	json_free(&rec);
	fclose(f);
	return seq;
}

static int
cmp_file(const void *a, const void *b)
{
	const struct logfile *x = a, *y = b;

	if (x->first_seq != y->first_seq)
		return x->first_seq < y->first_seq ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Verify every file; hand each record to the report when there is one. */
static int
run(const struct alog_cli *o, struct alog_report *rep, struct alog_verdict *vd)
{
	struct alog_verifier *v = NULL;
	struct logfile *lf = xcalloc(o->nfiles, sizeof(*lf));
	uint8_t *keys = xcalloc(o->npubkeys + 1, ALOG_PK_LEN);
	char *buf = xmalloc(ALOG_LINE_MAX + 2), err[600];
	struct alog_env env;
	struct json *rec;
	size_t i, len;
	int complete, rc = 2, r;
	FILE *f;

	for (i = 0; i < o->npubkeys; i++)
		if (alog_pubkey_read(o->pubkeys[i], keys + i * ALOG_PK_LEN, err, sizeof(err)) < 0) {
			fprintf(stderr, "subproxy: %s\n", err);
			goto out;
		}
	for (i = 0; i < o->nfiles; i++) {
		if ((f = fopen(o->files[i], "re")) == NULL) {
			fprintf(stderr, "subproxy: %s: %s\n", o->files[i], strerror(errno));
			goto out;
		}
		fclose(f);
		lf[i].name = o->files[i];
		lf[i].pos = i;
		lf[i].first_seq = first_seq(o->files[i], buf);
	}
	qsort(lf, o->nfiles, sizeof(*lf), cmp_file);
	v = alog_verifier_new(keys, o->npubkeys);
	for (i = 0; i < o->nfiles; i++) {
		if ((f = fopen(lf[i].name, "re")) == NULL) {
			fprintf(stderr, "subproxy: %s: %s\n", lf[i].name, strerror(errno));
			goto out;
		}
		alog_verifier_file(v, lf[i].name);
		while ((r = read_line(f, buf, &len, &complete)) == 1) {
			rec = alog_verifier_line(v, buf, len, complete, &env);
			if (rec != NULL && rep != NULL)
				alog_report_add(rep, rec, &env);
			json_free(&rec);
		}
		fclose(f);
		if (r < 0) {
			fprintf(stderr, "subproxy: %s: read error\n", lf[i].name);
			goto out;
		}
	}
	alog_verifier_finish(v, vd);
	rc = 0;
out:
	alog_verifier_free(&v);
	free(keys);
	free(buf);
	free(lf);
	return rc;
}

int
alog_cli_verify(const struct alog_cli *o)
{
	struct alog_verdict vd;

	if (run(o, NULL, &vd) != 0)
		return 2;
	if (vd.intact) {
		printf("intact: %llu records (%llu to %llu, %s to %s) in %llu file(s), %llu "
		    "checkpoint(s), signed by %s%s\n", (unsigned long long)vd.records,
		    (unsigned long long)vd.first_seq, (unsigned long long)vd.last_seq,
		    vd.first_time, vd.last_time, (unsigned long long)vd.files,
		    (unsigned long long)vd.checkpoints, vd.key, vd.keys_given ? " (a key given)" :
		    " (the key the log names: give --public-key to check it is yours)");
		if (vd.partial_start)
			printf("note: the log given starts at record %llu; the files before it were "
			    "not given\n", (unsigned long long)vd.first_seq);
		if (!vd.stopped)
			printf("note: the log ends at record %llu (%s) without a stop record: %s\n",
			    (unsigned long long)vd.last_seq, vd.last_time, alog_unstopped_why);
		return 0;
	}
	printf("NOT intact: first bad record %llu (%s", (unsigned long long)vd.bad_seq,
	    vd.bad_file);
	if (vd.bad_line > 0)
		printf(":%llu", (unsigned long long)vd.bad_line);
	printf("): %s\n", vd.why);
	return 1;
}

int
alog_cli_report(const struct alog_cli *o)
{
	struct alog_report rep;
	struct alog_verdict vd;
	int rc;

	alog_report_init(&rep, o->since, o->until);
	if (run(o, &rep, &vd) != 0) {
		alog_report_clear(&rep);
		return 2;
	}
	alog_report_finish(&rep, &vd);
	switch (o->format) {
	case ALOG_FMT_JSON:
		alog_report_json(&rep, stdout);
		break;
	case ALOG_FMT_HTML:
		alog_report_html(&rep, stdout);
		break;
	default:
		alog_report_text(&rep, stdout);
		break;
	}
	rc = alog_report_ok(&rep) ? 0 : 1;
	alog_report_clear(&rep);
	fflush(stdout);
	return rc;
}
