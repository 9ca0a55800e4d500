/*
 * auditlog_verify.h — checking an audit log's chain and signatures (pure).
 *
 * Feed the files of a log in order (alog_verifier_file() before the lines of
 * each, oldest file first), every line without its newline; then
 * alog_verifier_finish() says whether the log is intact and, if not, names
 * the first bad record: the record number (seq) where the log stops being
 * trustworthy, the file and line, and what is wrong:
 *
 *   - a line that is not a record (bad JSON, envelope, schema), or is cut
 *     off (no newline at the end of the file);
 *   - a record whose hash does not match the link in the next record
 *     (the record was modified, or that link);
 *   - a record number that is not the next one (records deleted, inserted,
 *     repeated or reordered; at a file boundary: a file of the rotation is
 *     missing);
 *   - a checkpoint whose signature does not verify, or that is signed by a
 *     key other than the ones given (or, without keys, other than the key the
 *     last start record announced);
 *   - records after the last checkpoint (the log was truncated after it, or
 *     it is still being written, or the service did not stop cleanly).
 *
 * A log cut back to one of its checkpoints is consistent: no chain shows
 * that.  The verdict says whether its last record (before the checkpoint
 * that closes it) is a stop record: when not, the service was still running
 * then, the newer files were not given, or records after that checkpoint
 * were removed.
 *
 * A log may begin with record 1, or with the first record of a file (an
 * "open" record: older files were removed, e.g. by retention); the verdict
 * then says where it starts.  Every problem after the first is not reported
 * (the first one makes everything after it untrusted anyway), but lines
 * keep being parsed so that a report can still count them.
 */
#ifndef SUBPROXY_AUDITLOG_VERIFY_H
#define SUBPROXY_AUDITLOG_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "auditlog.h"

struct alog_verifier;

struct alog_verdict {
	int intact;			/* 1: no problem found */
	uint64_t records, checkpoints, files;
	uint64_t first_seq, last_seq;	/* 0 when there are no records */
	uint64_t last_signed_seq;	/* the last checkpoint's seq, 0 none */
	int stopped;			/* the last record but checkpoints is a stop */
	char first_time[ALOG_TIME_LEN + 1], last_time[ALOG_TIME_LEN + 1];
	int partial_start;		/* the first record given is not record 1 */
	int keys_given;			/* checkpoints checked against given keys */
	char key[48];			/* base64 key of the last good checkpoint */
	/* the first problem (intact == 0) */
	uint64_t bad_seq;		/* the first record not trusted */
	char bad_file[256];
	uint64_t bad_line;		/* line in bad_file, 0 = end of input */
	char why[700];
};

/* keys: nkeys Ed25519 public keys (ALOG_PK_LEN octets each, copied); with
 * none, checkpoints are checked against the key the log announces. */
struct alog_verifier *alog_verifier_new(const uint8_t *keys, size_t nkeys);
void alog_verifier_free(struct alog_verifier **vp);

/* The next file begins; name is used in messages. */
void alog_verifier_file(struct alog_verifier *v, const char *name);

/* One line of the current file, without its newline; complete = 0 when the
 * file ended without a newline after it.  Returns the parsed record (the
 * caller frees it with json_free()) when the line is a well-formed record
 * (whether or not its chain is intact), else NULL.  *env_r (may be NULL)
 * receives its envelope. */
struct json *alog_verifier_line(struct alog_verifier *v, const char *line, size_t len,
    int complete, struct alog_env *env_r);

/* Why an intact log may end without a stop record (a sentence's tail). */
extern const char alog_unstopped_why[];

/* End of input: fills *out. */
void alog_verifier_finish(struct alog_verifier *v, struct alog_verdict *out);

#endif
