/*
 * fuzz_auditlog.c — the audit log reader that --verify-log and --report run
 * on files an attacker may have edited: the JSON reader, the record check,
 * the chain verifier, the report's aggregation and its three renderings,
 * and the recorder's handling of a body (schema check, pseudonyms).
 *
 * The input is a log: lines split at '\n' (a form feed starts the next
 * file of a rotation; a last line without '\n' is "cut off").  Invariants
 * checked: the verdict names a record only when the log is not intact, an
 * intact log ends with a checkpoint, every line the verifier accepts passes
 * the schema check again, and pseudonymizing a valid body keeps it valid.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auditlog.h"
#include "auditlog_report.h"
#include "auditlog_verify.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
body_roundtrip(const struct json *rec, const struct alog_env *env)
{
	static const uint8_t key[ALOG_PSEUDO_KEY_LEN] = { 1, 2, 3 };
	struct json view = alog_body(rec), *copy = NULL;
	struct jsonw w;
	char err[300];

	if (alog_body_check(env->type, &view, 0, err, sizeof(err)) != 0)
		abort();
	/* what the recorder does with a body: parse its canonical text,
	 * pseudonymize, and it must still match the schema */
	jsonw_init(&w, 0);
	jsonw_value(&w, &view);
	if (json_parse(w.buf, w.len, &copy, err, sizeof(err)) != 0)
		abort();
	alog_pseudonymize(env->type, copy, key);
	if (alog_body_check(env->type, copy, 0, err, sizeof(err)) != 0)
		abort();
	json_free(&copy);
	jsonw_free(&w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t pk[ALOG_PK_LEN] = { 0 };
	const char *p = (const char *)data, *end = p + size, *nl;
	struct alog_verifier *v;
	struct alog_report rep;
	struct alog_verdict vd;
	struct alog_env env;
	struct json *rec;
	char *out = NULL, err[300];
	size_t outlen = 0;
	FILE *f;
	int nfile = 0;

	if (sodium_init() < 0)
		abort();
	/* with a key (an input can never be signed by it) when the first byte
	 * is odd, without (the log's own key) otherwise */
	v = alog_verifier_new(pk, size > 0 && (data[0] & 1));
	alog_report_init(&rep, 0, 0);
	alog_verifier_file(v, "log.0");
	while (p < end) {
		if (*p == '\f') {
			char name[16];

			snprintf(name, sizeof(name), "log.%d", ++nfile);
			alog_verifier_file(v, name);
			p++;
			continue;
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		rec = alog_verifier_line(v, p, nl ? (size_t)(nl - p) : (size_t)(end - p), nl != NULL,
		    &env);
		if (rec != NULL) {
			body_roundtrip(rec, &env);
			alog_report_add(&rep, rec, &env);
			json_free(&rec);
		}
		p = nl ? nl + 1 : end;
	}
	alog_verifier_finish(v, &vd);
	alog_verifier_free(&v);
	if (vd.intact && (vd.bad_seq != 0 || vd.why[0] != '\0' || vd.records == 0 ||
	    vd.last_signed_seq != vd.last_seq))
		abort();
	if (!vd.intact && vd.why[0] == '\0')
		abort();
	alog_report_finish(&rep, &vd);
	/* the JSON report is JSON whatever the log held */
	if ((f = open_memstream(&out, &outlen)) == NULL)
		abort();
	alog_report_json(&rep, f);
	fclose(f);
	if (outlen == 0 || json_parse(out, outlen - 1, &rec, err, sizeof(err)) != 0)
		abort();
	json_free(&rec);
	free(out);
	out = NULL;
	if ((f = open_memstream(&out, &outlen)) == NULL)
		abort();
	alog_report_text(&rep, f);
	alog_report_html(&rep, f);
	fclose(f);
	free(out);
	alog_report_clear(&rep);
	return 0;
}
