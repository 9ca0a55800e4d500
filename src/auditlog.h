/*
 * auditlog.h — the records of the audit log (pure: no I/O).
 *
 * The log is JSON Lines: one record per line, schema version ALOG_VERSION,
 * described in doc/audit-log.schema.json and, for auditors, doc/audit-log.md.
 * Every record starts with the same envelope, in this order:
 *
 *	{"v":3,"seq":N,"time":"2026-01-02T03:04:05.678Z","type":"txn","prev":"HEX",...}
 *
 * seq counts records from 1 across every file of the log (rotation does not
 * restart it); prev is the SHA-256 (hex) of the previous record's line, its
 * exact bytes without the newline ("0" x 64 before record 1).  So each record
 * fixes everything before it.  A checkpoint record signs the chain head with
 * the Ed25519 audit key:
 *
 *	{...,"type":"checkpoint","prev":"HEX","records":K,"key":"BASE64"
 *	    ,"sig":"BASE64"}
 *
 * sig = Ed25519(ALOG_SIG_DOMAIN || the line up to, not including, ',"sig":'),
 * so it covers the envelope (seq, time, prev = the head) and the key.
 * records (how many records the recorder wrote since its previous
 * checkpoint) is information for readers; the chain already fixes them.
 *
 * The body members of each type (after the envelope) are given by a schema
 * table here; alog_body_check() applies it to bodies from clients (front,
 * the parent) and the verifier applies it to every record read back.
 */
#ifndef SUBPROXY_AUDITLOG_H
#define SUBPROXY_AUDITLOG_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"

#define ALOG_VERSION		4	/* written; 1 to 3 are still read (alog_record_check) */
#define ALOG_LINE_MAX		(128 * 1024)	/* one record, without its newline */
#define ALOG_BODY_MAX		(60 * 1024)	/* a body a client sends (one IPC message) */
#define ALOG_HASH_LEN		32
#define ALOG_HEX_LEN		64
#define ALOG_PK_LEN		32		/* Ed25519 public key */
#define ALOG_SK_LEN		64		/* libsodium's secret key (seed + public key) */
#define ALOG_SIG_LEN		64
#define ALOG_PSEUDO_KEY_LEN	32
#define ALOG_SIG_DOMAIN		"subproxy-audit-log-v1\n"
#define ALOG_TIME_LEN		24		/* "2026-01-02T03:04:05.678Z" */

enum alog_type {
	ALOG_T_START = 1,	/* parent: a start, with the self-audit result */
	ALOG_T_STOP,		/* parent: the service stops (or refused to start) */
	ALOG_T_OPEN,		/* recorder: first record of a new file */
	ALOG_T_AUTH,		/* front: one AUTH attempt */
	ALOG_T_TXN,		/* front: one transaction handed to the relay */
	ALOG_T_REFUSAL,		/* front: a command refused by policy */
	ALOG_T_CHECKPOINT,	/* recorder: signed chain head */
	ALOG_T_GAP,		/* recorder: records that could not be written */
	ALOG_T_RECHECK,		/* front: a check of the live self-audit changed (v2) */
	ALOG_T_MAX
};

/* Who may ask the recorder to write a type. */
enum alog_origin { ALOG_FROM_FRONT, ALOG_FROM_PARENT, ALOG_FROM_RECORDER };

/* "txn", ...; NULL for an unknown value. */
const char *alog_type_name(int type);
/* The type of a name, or -1. */
int alog_type_parse(const char *name);
/* 1 when `origin` may send records of `type`. */
int alog_type_allowed(int type, enum alog_origin origin);

/* ---- the schema of the bodies ---- */

#define ALOG_F_REQ	0x01	/* must be present */
#define ALOG_F_NULL	0x02	/* may be null */
#define ALOG_F_ARRAY	0x04	/* an array whose elements have `type` */
#define ALOG_F_PERSONAL	0x08	/* an address or login: a keyed hash when pseudonymizing */
#define ALOG_F_FREE	0x10	/* free text (may quote addresses): dropped when pseudonymizing */
#define ALOG_F_RECORDER	0x20	/* only the recorder writes it */

struct alog_field {
	const char *name;
	enum json_type type;
	unsigned flags;
	const struct alog_field *sub;	/* members of an object value / element */
};

/* The members of a type's body (terminated by a NULL name), or NULL. */
const struct alog_field *alog_schema(int type);

/* Check a body (a JSON object) against the schema of `type`: every member
 * known, of its type, the required ones present, no recorder-only member
 * when `from_client`.  Returns 0, or -1 with a sentence naming the member. */
int alog_body_check(int type, const struct json *body, int from_client, char *err,
    size_t errlen);

/* Replace every personal string of the body by "h:" and the hex of a keyed
 * BLAKE2b-128 hash (key: ALOG_PSEUDO_KEY_LEN octets), and remove free text.
 * The body must have passed alog_body_check(). */
void alog_pseudonymize(int type, struct json *body, const uint8_t *key);

/* "h:" + 32 hex digits of one value, into out (at least 35 octets). */
void alog_pseudonym(const uint8_t *key, const char *value, size_t len, char *out);

/* The envelope of a record read back. */
struct alog_env {
	uint64_t seq;
	int64_t time_ms;
	int type;			/* enum alog_type */
	uint8_t prev[ALOG_HASH_LEN];
	const char *time;		/* as written; points into the record */
};

/* Check a parsed line: an object whose first five members are v (1 to
 * ALOG_VERSION; a version 1 record has none of what version 2 added: the
 * recheck type, a refusal's or an AUTH record's count; a version 1 or 2
 * record none of what version 3 added: a summary's clients and
 * clients_capped; a version 1 to 3 record none of what version 4 added: a
 * transaction's final outcome unknown), seq (>= 1), time, type and prev,
 * in that order, followed by the body of its type (alog_body_check,
 * recorder members allowed; a txn's final has code and enh, or neither
 * with unknown).
 * Returns 0 with *env, or -1 with a sentence in err.  The body members are
 * the ones after the fifth; alog_body(rec) returns a view of them. */
int alog_record_check(const struct json *rec, struct alog_env *env, char *err, size_t errlen);

/* The body of a checked record as an object view (valid while rec lives). */
struct json alog_body(const struct json *rec);

/* ---- writing records ---- */

/* The end of the chain: the last record's seq and hash; seq 0 (and a zero
 * hash) before the first record. */
struct alog_chain {
	uint64_t seq;
	uint8_t head[ALOG_HASH_LEN];
};

/* Encode the next record into w (reset first): the envelope, then the
 * members of body_obj (a canonical JSON object text, "{}" for none, e.g.
 * from a jsonw).  time_ms: milliseconds since 1970 (UTC).  On success the
 * chain advances to the new record and 0 is returned; -1 (chain unchanged)
 * when the line would be longer than ALOG_LINE_MAX or body_obj is not an
 * object text. */
int alog_encode(struct jsonw *w, struct alog_chain *c, int type, int64_t time_ms,
    const char *body_obj, size_t body_len);

/* Encode a signed checkpoint for the chain as it is (`records`: records since
 * the previous checkpoint); sk is libsodium's Ed25519 secret key and pk its
 * public half.  Advances the chain; 0 or -1 as alog_encode(). */
int alog_encode_checkpoint(struct jsonw *w, struct alog_chain *c, int64_t time_ms,
    uint64_t records, const uint8_t *pk, const uint8_t *sk);

/* SHA-256 of one line (without its newline). */
void alog_hash(const char *line, size_t len, uint8_t out[ALOG_HASH_LEN]);

/* Lower-case hex of n octets into out (2n + 1 octets). */
void alog_hex(const uint8_t *in, size_t n, char *out);
/* Parse exactly 2n hex digits; 0 or -1. */
int alog_unhex(const char *hex, uint8_t *out, size_t n);

/* "2026-01-02T03:04:05.678Z" for ms since 1970 (out: ALOG_TIME_LEN + 1). */
void alog_time_format(int64_t ms, char *out);
/* The inverse, for exactly that form; also accepts "YYYY-MM-DD" and
 * "YYYY-MM-DDTHH:MM:SSZ" (for --since/--until).  0 or -1. */
int alog_time_parse(const char *s, int64_t *ms_r);

/* Verify a checkpoint line's signature with pk (the line without newline).
 * Returns 0 when the signature is valid, -1 otherwise (malformed too). */
int alog_checkpoint_verify(const char *line, size_t len, const uint8_t *pk);

/* Base64 (standard alphabet, padded) of an Ed25519 public key, and back. */
void alog_key_b64(const uint8_t pk[ALOG_PK_LEN], char *out, size_t outlen);
int alog_key_unb64(const char *b64, uint8_t pk[ALOG_PK_LEN]);

#endif
