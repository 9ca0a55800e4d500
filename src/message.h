/*
 * message.h — the incoming message: a streaming parser for DATA (dot
 * transparency, <CRLF>.<CRLF> end) and BDAT (exact octets) that enforces
 * strict intake rules while writing the message to a spool, plus the
 * dot-stuffer used when relaying with DATA.  The From and Sender addresses
 * are parsed by rfc5322.h.  Pure apart from spool_append().
 */
#ifndef SUBPROXY_MESSAGE_H
#define SUBPROXY_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct spool;

struct msg_limits {
	uint64_t max_size;      /* message octets (unstuffed, CRLF counted; not the CRLF
				 * msg_parser_finish appends), 0 = no limit */
	uint64_t max_line;      /* octets per line excluding CRLF (998), 0 = no limit */
	uint64_t max_header;    /* octets of the header section incl. CRLFs, 0 = no limit */
	uint64_t max_received;  /* Received: fields allowed; more = loop */
};

enum msg_mode { MSG_MODE_DATA, MSG_MODE_BDAT };

#define MSG_FROM_MAX 16

/* Header fields in one message, at most (a folded field is one).  The
 * signer splits a header into at most DKIM_FIELDS_MAX fields (dkim.h),
 * the ones front adds in front of the message included. */
#define MSG_FIELDS_MAX 4000

/* Outcome of a message.  code == 0: acceptable; otherwise the first
 * violation found, with the reply to give:
 *   550 5.6.0 bare CR, bare LF, NUL, line over max_line, header field syntax
 *             (a header line that is neither "name:" with name of printable
 *             ASCII 33..126 except ':' nor a continuation starting with
 *             SP/HTAB; a continuation as the first line or holding only
 *             white space), no From field,
 *             more than one From/Sender/Reply-To/To/Cc/Subject/Date/
 *             Message-ID/In-Reply-To/References field (RFC 5322 3.6:
 *             duplicates let a signed message be re-read differently),
 *             From with no address, more than MSG_FROM_MAX addresses or an
 *             unparsable address list, Sender with not exactly one address;
 *   552 5.3.4 message over max_size, header section over max_header or
 *             with more than MSG_FIELDS_MAX fields;
 *   554 5.4.6 more than max_received Received fields;
 *   451 4.3.0 the spool failed (disk/memory): nothing may be relayed. */
struct msg_result {
	int code;
	char enh[16];
	char text[160];                  /* one sentence for the client */
	uint64_t size;                   /* message octets so far (unstuffed) */
	uint64_t header_size;            /* header section octets (incl. the empty line) */
	uint64_t received;               /* Received fields seen */
	uint64_t fields;                 /* header fields seen */
	int has_message_id, has_date;
	char message_id[256];            /* its value, trimmed (truncated: 255 octets) */
	int has_8bit;                    /* an octet >= 0x80 was seen */
	int added_final_crlf;            /* BDAT content did not end in CRLF: CRLF appended
					  * (counted in size) */
	char *from[MSG_FROM_MAX];        /* header From addresses (addr-spec, no <>) */
	size_t nfrom;
	char *sender;                    /* header Sender address or NULL */
};

struct msg_parser;

/* A parser writing the unstuffed message to `sp` (not owned). */
struct msg_parser *msg_parser_new(const struct msg_limits *lim, enum msg_mode mode,
    struct spool *sp);

/* Feed len octets.  DATA mode: consumes up to and including the
 * <CRLF>.<CRLF> terminator and returns how many octets it used (the rest
 * belongs to the next command); "..x" gives ".x" and a lone ".x" gives "x"
 * (RFC 5321 4.5.2); BDAT mode: consumes everything.  After a
 * violation the parser keeps consuming (to find the end of DATA) but stores
 * nothing more.  Works for any split of the input into pieces. */
size_t msg_parser_feed(struct msg_parser *p, const void *buf, size_t len);

/* DATA mode: 1 once the terminator was seen. */
int msg_parser_done(const struct msg_parser *p);

/* BDAT mode: the LAST chunk is in.  Checks the end of the message (a
 * final line without CRLF gets CRLF appended, added_final_crlf = 1, which
 * does not count against max_size nor max_header (limits on what the
 * client sent: a BDAT message of exactly max_size octets is accepted
 * with or without its final CRLF); a final lone CR is a violation) and the header checks that need the whole header
 * (e.g. a message that is all header).  DATA mode calls this itself when the
 * terminator is seen. */
void msg_parser_finish(struct msg_parser *p);

/* Octets received (stuffed, as on the wire for DATA; chunk octets for BDAT). */
uint64_t msg_parser_bytes(const struct msg_parser *p);

/* The current result (valid until msg_parser_free). */
const struct msg_result *msg_parser_result(const struct msg_parser *p);

/* Free; *pp = NULL; NULL is a no-op. */
void msg_parser_free(struct msg_parser **pp);

/* Dot-stuffing for relaying with DATA: feed the message in any pieces,
 * stuffed output is appended to out; msg_stuff_end() adds CRLF if the
 * message did not end with one, then ".\r\n". */
struct msg_stuffer {
	int state;   /* private */
};
void msg_stuff_init(struct msg_stuffer *st);
void msg_stuff(struct msg_stuffer *st, const void *buf, size_t len, struct evbuffer *out);
void msg_stuff_end(struct msg_stuffer *st, struct evbuffer *out);

#endif
