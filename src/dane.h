/*
 * dane.h — pure TLSA matching (RFC 6698, RFC 7671, RFC 7672 for SMTP).
 *
 * No I/O.  Callers give TLSA records (from configuration pins or from DNSSEC-
 * validated DNS answers) and the DER certificates the peer presented (leaf
 * first) and get a verdict.  Only DANE-TA(2) and DANE-EE(3) are usable;
 * PKIX-TA(0)/PKIX-EE(1), unknown selectors and unknown matching types are
 * unusable and ignored.
 *
 * DANE-EE(3): the leaf certificate (selector 0) or its SubjectPublicKeyInfo
 * (selector 1) matches by full value (0), SHA2-256 (1) or SHA2-512 (2).  Names
 * and validity dates are ignored (RFC 7672 3.1.1).
 * DANE-TA(2): a certificate in the presented chain (or, for a full-value
 * record, the record itself) matches; the leaf must then verify to that trust
 * anchor with a trust list holding only the TA, and the leaf's name must match
 * one of the reference identifiers (RFC 7672 3.2.3).  Dates are checked for
 * every certificate from the leaf up to the trust anchor, the TA certificate
 * included (as OpenSSL and GnuTLS do); a bare-key TA (2 1 0) has no dates.
 * An unrelated chain merely appended to a good TA fails.
 */
#ifndef SUBPROXY_DANE_H
#define SUBPROXY_DANE_H

#include <stddef.h>
#include <stdint.h>

#define DANE_USAGE_PKIX_TA 0
#define DANE_USAGE_PKIX_EE 1
#define DANE_USAGE_DANE_TA 2
#define DANE_USAGE_DANE_EE 3

struct dane_tlsa {
	uint8_t usage, selector, mtype;
	size_t len;
	uint8_t *data;                  /* owned */
};

struct dane_cert {
	const uint8_t *der;
	size_t len;
};

enum dane_verdict {
	DANE_OK_EE,        /* matched a DANE-EE record */
	DANE_OK_TA,        /* matched a DANE-TA record, chain and name verified */
	DANE_NO_USABLE,    /* no usable record in the set (all 0/1 or unknown) */
	DANE_MISMATCH,     /* usable records, none matched */
	DANE_ERROR         /* malformed certificate or internal failure */
};

/* Parse presentation form "USAGE SELECTOR MTYPE HEX" (hex may contain
 * spaces; case-insensitive).  Returns 0, or -1 with *err_r set to a static
 * message.  Digest lengths are enforced for mtype 1 (32) and 2 (64). */
int dane_tlsa_parse_text(const char *s, struct dane_tlsa *out, const char **err_r);

/* Parse wire-format TLSA rdata (3 octets, then 1..16384 octets of data;
 * digest lengths enforced as above).  Returns 0 or -1 with *err_r set and
 * *out zeroed. */
int dane_tlsa_parse_rdata(const uint8_t *rdata, size_t len, struct dane_tlsa *out,
    const char **err_r);

/* Copy / free one record's data (the struct itself is not freed). */
void dane_tlsa_copy(struct dane_tlsa *dst, const struct dane_tlsa *src);
void dane_tlsa_clear(struct dane_tlsa *t);

/* Is this record usable for SMTP DANE (usage 2/3, selector 0/1, mtype 0/1/2)? */
int dane_tlsa_usable(const struct dane_tlsa *t);

/* Verify a presented chain (chain[0] = leaf) against records.  names are the
 * reference identifiers for DANE-TA name checks (the TLSA base domain and, for
 * MX/relay hosts, the original next-hop name); matching is case-insensitive
 * with a single leading wildcard label allowed in the certificate.
 * `now` is the time for DANE-TA date checks (0 = current time).  On return,
 * `why` (whylen bytes, may be NULL) holds one sentence for logs, and
 * *matched_r (may be NULL) the index of the record that matched or -1.
 */
enum dane_verdict dane_verify(const struct dane_tlsa *rrs, size_t nrrs,
    const struct dane_cert *chain, size_t nchain,
    const char *const *names, size_t nnames, int64_t now,
    int *matched_r, char *why, size_t whylen);

/* Presentation form of the record of the given usage/selector/mtype that
 * would match cert ("3 1 1 ab12..."), into out (outlen >= 80 for mtype 1,
 * 144 for mtype 2; full values need more).  Returns 0 or -1 (too small, bad
 * cert, unknown selector or matching type). */
int dane_record_for_cert(const struct dane_cert *cert, int usage, int selector, int mtype,
    char *out, size_t outlen);

const char *dane_verdict_name(enum dane_verdict v);

/* A record as text for logs: "3 1 1 HEX"; when the data does not fit
 * (full certificates), "U S M [N octets, SHA-256 HEX]". */
void dane_tlsa_text(const struct dane_tlsa *t, char *out, size_t outlen);

#endif
