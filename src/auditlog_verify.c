/* auditlog_verify.c — chain, record numbers and checkpoint signatures. */
#include "auditlog_verify.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char alog_unstopped_why[] = "the service was still running then, the files after it "
    "were not given, or the newest records were removed up to a checkpoint (no chain shows "
    "that: check that the log still reaches the record number and head of the last "
    "verification)";

struct alog_verifier {
	uint8_t *keys;
	size_t nkeys;
	struct alog_verdict vd;
	char file[256];
	uint64_t line;			/* in the current file */
	int first_in_file;		/* the next line is the file's first */
	/* the previous record */
	int have_prev;
	uint64_t prev_seq;
	uint8_t prev_hash[ALOG_HASH_LEN];
	char prev_file[256];
	uint64_t prev_line;
	int prev_type;
	int have_announced;
	uint8_t announced[ALOG_PK_LEN];	/* key of the last start record */
};

struct alog_verifier *
alog_verifier_new(const uint8_t *keys, size_t nkeys)
{
	struct alog_verifier *v = xcalloc(1, sizeof(*v));

	if (nkeys > 0) {
		v->keys = xmalloc(nkeys * ALOG_PK_LEN);
		memcpy(v->keys, keys, nkeys * ALOG_PK_LEN);
	}
	v->nkeys = nkeys;
	v->vd.intact = 1;
	v->vd.keys_given = nkeys > 0;
	return v;
}

void
alog_verifier_free(struct alog_verifier **vp)
{
	struct alog_verifier *v;

	if (vp == NULL || (v = *vp) == NULL)
		return;
	free(v->keys);
	free(v);
	*vp = NULL;
}

void
alog_verifier_file(struct alog_verifier *v, const char *name)
{
	snprintf(v->file, sizeof(v->file), "%s", name);
	v->line = 0;
	v->first_in_file = 1;
	v->vd.files++;
}

static void problem(struct alog_verifier *v, uint64_t seq, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Record the first problem only. */
static void
problem(struct alog_verifier *v, uint64_t seq, uint64_t line, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (!v->vd.intact)
		return;
	v->vd.intact = 0;
	v->vd.bad_seq = seq;
	snprintf(v->vd.bad_file, sizeof(v->vd.bad_file), "%s", v->file);
	v->vd.bad_line = line;
	va_start(ap, fmt);
	vsnprintf(v->vd.why, sizeof(v->vd.why), fmt, ap);
	va_end(ap);
	/* it may quote the file (member names): printable for terminals */
	for (p = v->vd.why; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

/* The record at this place links to what came before it. */
static void
check_link(struct alog_verifier *v, const struct alog_env *env)
{
	static const uint8_t zero[ALOG_HASH_LEN];
	uint64_t want = v->prev_seq + 1;

	if (!v->have_prev) {
		if (env->seq == 1) {
			if (memcmp(env->prev, zero, sizeof(zero)) != 0)
				problem(v, 1, v->line, "record 1 links to an earlier record: the "
				    "records before it were removed");
			return;
		}
		v->vd.partial_start = 1;
		if (env->type != ALOG_T_OPEN || !v->first_in_file)
			problem(v, env->seq, v->line, "the log given starts with record %llu, "
			    "which is not the first record of a file: the records before it were "
			    "deleted", (unsigned long long)env->seq);
		return;
	}
	if (env->seq == want) {
		if (memcmp(env->prev, v->prev_hash, ALOG_HASH_LEN) != 0)
			problem(v, v->prev_seq, v->prev_line, "record %llu (%s:%llu) was modified, "
			    "or the link to it in record %llu: its hash does not match",
			    (unsigned long long)v->prev_seq, v->prev_file,
			    (unsigned long long)v->prev_line, (unsigned long long)env->seq);
		return;
	}
	if (env->seq > want && v->first_in_file)
		problem(v, want, v->line, "records %llu to %llu are missing between %s and %s: "
		    "a file of the rotation is missing", (unsigned long long)want,
		    (unsigned long long)(env->seq - 1), v->prev_file, v->file);
	else if (env->seq > want)
		problem(v, want, v->line, "record %llu is missing: this line holds record %llu "
		    "(records deleted or reordered)", (unsigned long long)want,
		    (unsigned long long)env->seq);
	else
		problem(v, want, v->line, "this line holds record %llu where record %llu belongs "
		    "(records inserted, repeated or reordered)", (unsigned long long)env->seq,
		    (unsigned long long)want);
}

static int
key_given(const struct alog_verifier *v, const uint8_t *pk)
{
	size_t i;

	for (i = 0; i < v->nkeys; i++)
		if (memcmp(v->keys + i * ALOG_PK_LEN, pk, ALOG_PK_LEN) == 0)
			return 1;
	return 0;
}

static void
check_checkpoint(struct alog_verifier *v, const struct json *rec, const struct alog_env *env,
    const char *line, size_t len)
{
	struct json body = alog_body(rec);
	const char *b64 = json_get_str(&body, "key");
	uint8_t pk[ALOG_PK_LEN];
	if (b64 == NULL || alog_key_unb64(b64, pk) < 0) {
		problem(v, env->seq, v->line, "checkpoint record %llu has a malformed key",
		    (unsigned long long)env->seq);
		return;
	}
	if (v->nkeys > 0 && !key_given(v, pk)) {
		problem(v, env->seq, v->line, "checkpoint record %llu is signed by another key "
		    "(%s) than the one given", (unsigned long long)env->seq, b64);
		return;
	}
	if (v->nkeys == 0 && v->have_announced && memcmp(pk, v->announced, ALOG_PK_LEN) != 0) {
		problem(v, env->seq, v->line, "checkpoint record %llu is signed by another key "
		    "(%s) than the one the last start record announced",
		    (unsigned long long)env->seq, b64);
		return;
	}
	if (alog_checkpoint_verify(line, len, pk) < 0) {
		problem(v, env->seq, v->line, "checkpoint record %llu has a bad signature: it was "
		    "modified or signed by another key", (unsigned long long)env->seq);
		return;
	}
	if (v->vd.intact) {
		snprintf(v->vd.key, sizeof(v->vd.key), "%s", b64);
		v->vd.last_signed_seq = env->seq;
	}
}

struct json *
alog_verifier_line(struct alog_verifier *v, const char *line, size_t len, int complete,
    struct alog_env *env_r)
{
	struct alog_env env;
	struct json *rec = NULL;
	const char *key;
	uint64_t want = v->have_prev ? v->prev_seq + 1 : 1;
	char err[300];

	v->line++;
	if (!complete) {
		problem(v, want, v->line, "the file ends inside a record (no newline after it): "
		    "it was truncated");
		goto bad;
	}
	if (len > ALOG_LINE_MAX) {
		problem(v, want, v->line, "the line is longer than %d octets: not a record",
		    ALOG_LINE_MAX);
		goto bad;
	}
	if (json_parse(line, len, &rec, err, sizeof(err)) < 0) {
		problem(v, want, v->line, "the line is not a record (bad JSON: %s)", err);
		goto bad;
	}
	if (alog_record_check(rec, &env, err, sizeof(err)) < 0) {
		problem(v, want, v->line, "the line is not a valid record: %s", err);
		json_free(&rec);
		goto bad;
	}
	check_link(v, &env);
	if (env.type == ALOG_T_CHECKPOINT) {
		check_checkpoint(v, rec, &env, line, len);
		v->vd.checkpoints++;
	}
	if (env.type == ALOG_T_START) {
		struct json body = alog_body(rec);

		if ((key = json_get_str(&body, "key")) != NULL &&
		    alog_key_unb64(key, v->announced) == 0)
			v->have_announced = 1;
	}
	if (env.type != ALOG_T_CHECKPOINT)
		v->vd.stopped = env.type == ALOG_T_STOP;
	if (v->vd.records == 0) {
		v->vd.first_seq = env.seq;
		snprintf(v->vd.first_time, sizeof(v->vd.first_time), "%s", env.time);
	}
	v->vd.records++;
	v->vd.last_seq = env.seq;
	snprintf(v->vd.last_time, sizeof(v->vd.last_time), "%s", env.time);
	v->have_prev = 1;
	v->prev_seq = env.seq;
	v->prev_type = env.type;
	alog_hash(line, len, v->prev_hash);
	snprintf(v->prev_file, sizeof(v->prev_file), "%s", v->file);
	v->prev_line = v->line;
	v->first_in_file = 0;
	if (env_r != NULL)
		*env_r = env;
	return rec;
bad:
	/* what follows cannot be linked to this line */
	v->first_in_file = 0;
	return NULL;
}

void
alog_verifier_finish(struct alog_verifier *v, struct alog_verdict *out)
{
	uint64_t from = v->vd.last_signed_seq + 1;

	if (from < v->vd.first_seq)
		from = v->vd.first_seq;
	if (v->vd.records == 0)
		problem(v, 1, 0, "no records");
	else if (v->prev_type != ALOG_T_CHECKPOINT && v->vd.last_signed_seq == 0)
		problem(v, from, 0, "no signed checkpoint covers records %llu to %llu: the log "
		    "was truncated, or it is still being written, or the service did not stop "
		    "cleanly", (unsigned long long)from, (unsigned long long)v->vd.last_seq);
	else if (v->prev_type != ALOG_T_CHECKPOINT)
		problem(v, from, 0, "records %llu to %llu are not covered by a signed checkpoint: "
		    "the log was truncated after record %llu, or it is still being written, or "
		    "the service did not stop cleanly", (unsigned long long)from,
		    (unsigned long long)v->vd.last_seq, (unsigned long long)v->vd.last_signed_seq);
	*out = v->vd;
}
