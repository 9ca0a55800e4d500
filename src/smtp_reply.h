/*
 * smtp_reply.h — incremental parser for replies from the upstream relay.
 *
 * Pure: no I/O, no logging.  The relay is hostile input: every line is
 * checked as its bytes arrive, at any split of the input.
 *
 * Grammar accepted (RFC 5321 4.2, strict):
 *   line  = code ( "-" text / " " text / "" ) CRLF
 *   code  = %x32-35 %x30-35 DIGIT          (200..559, second digit 0..5)
 * A '-' after the code means more lines of the same reply follow.  All lines
 * of one reply carry the same code.  Lines end in CRLF only: a CR not followed
 * by LF, a LF without CR and a NUL byte anywhere are protocol errors.  Other
 * bytes of the text (controls, 8-bit) are kept as they are: callers escape
 * them before logging.
 * Limits: SMTP_REPLY_LINE_MAX octets per line including code and CRLF,
 * SMTP_REPLY_LINES_MAX lines and SMTP_REPLY_SIZE_MAX octets (all lines,
 * codes and CRLFs) per reply.  Exceeding one is a protocol error, detected
 * as soon as the offending byte arrives.
 *
 * Enhanced status codes (RFC 3463, RFC 2034): when the text of the first line
 * starts with "class.subject.detail" followed by SP or the end of the line,
 * where class is the reply's first digit and one of 2, 4, 5, and subject and
 * detail are 1..3 digits without leading zeros, it is stored in `enh` and
 * removed (with one following SP) from every line whose text starts with the
 * same code.  Anything else ("2.1", "2.1.5.6", "4.1000.1", class mismatch)
 * is not an enhanced code: enh is "" and the text is left untouched.
 */
#ifndef SUBPROXY_SMTP_REPLY_H
#define SUBPROXY_SMTP_REPLY_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_LINE_MAX     2048    /* octets per line incl. code and CRLF */
#define SMTP_REPLY_LINES_MAX    256     /* lines per reply */
#define SMTP_REPLY_SIZE_MAX     65536   /* octets per reply incl. codes and CRLFs */

struct smtp_reply {
	int code;               /* 200..559 */
	char enh[16];           /* "2.1.5", or "" when absent */
	size_t nlines;          /* >= 1 */
	char *text;             /* the lines' text joined with "\n" (no codes) */
	char **lines;           /* nlines strings, lines[nlines] == NULL */
};

struct smtp_reply_parser;

/* A new parser, ready for the first line of a reply.  Never NULL. */
struct smtp_reply_parser *smtp_reply_parser_new(void);

/* Free the parser and any partial reply; *pp = NULL.  NULL is a no-op. */
void smtp_reply_parser_free(struct smtp_reply_parser **pp);

/*
 * Feed len bytes of input (any split of the stream).
 * Returns
 *   1  a complete reply is in *reply_r (the caller owns it, smtp_reply_free);
 *      *consumed_r is the number of bytes used, up to and including the final
 *      CRLF.  The rest (buf + *consumed_r) has not been looked at: feed it
 *      again (it may hold further pipelined replies).
 *   0  more input is needed; all len bytes were consumed (*consumed_r = len).
 *  -1  protocol error; smtp_reply_parser_error() says why.  *consumed_r is
 *      the number of bytes before the offending one.  The parser stays in the
 *      error state: every later call returns -1 and consumes nothing.
 * *reply_r is set to NULL unless 1 is returned.  consumed_r may be NULL.
 */
int smtp_reply_parser_feed(struct smtp_reply_parser *p, const void *buf, size_t len,
    size_t *consumed_r, struct smtp_reply **reply_r);

/* 1 when the parser holds bytes of a reply not yet complete (or is in the
 * error state): a connection between two commands should hold none. */
int smtp_reply_parser_pending(const struct smtp_reply_parser *p);

/* The last protocol error as a sentence of plain ASCII (no input bytes are
 * copied into it), or "" when there was none.  Valid until the next call. */
const char *smtp_reply_parser_error(const struct smtp_reply_parser *p);

/* Free a reply; *rp = NULL.  NULL is a no-op. */
void smtp_reply_free(struct smtp_reply **rp);

/* Extensions learned from an EHLO reply (RFC 5321 4.1.1.1). */
struct smtp_caps {
	int starttls;           /* RFC 3207 */
	int pipelining;         /* RFC 2920 */
	int eightbitmime;       /* RFC 6152 */
	int chunking;           /* RFC 3030 */
	int smtputf8;           /* RFC 6531 */
	int dsn;                /* RFC 3461 */
	int enhancedstatuscodes;        /* RFC 2034 */
	int size;               /* SIZE advertised (RFC 1870) */
	uint64_t size_max;      /* its value; 0 when absent, malformed or too big */
	int auth;               /* AUTH advertised (RFC 4954, or old "AUTH=") */
	int auth_plain, auth_login;
	int xclient;            /* Postfix XCLIENT advertised */
	unsigned xclient_attrs; /* the SMTP_XCLIENT_* attributes it names */
};

/* XCLIENT attribute names (Postfix XCLIENT_README), as bits. */
#define SMTP_XCLIENT_NAME       0x01u
#define SMTP_XCLIENT_ADDR       0x02u
#define SMTP_XCLIENT_PORT       0x04u
#define SMTP_XCLIENT_PROTO      0x08u
#define SMTP_XCLIENT_HELO       0x10u
#define SMTP_XCLIENT_LOGIN      0x20u
#define SMTP_XCLIENT_DESTADDR   0x40u
#define SMTP_XCLIENT_DESTPORT   0x80u

/*
 * Fill *caps (cleared first) from the lines 2..n of an EHLO reply (line 1 is
 * the greeting).  Keywords and AUTH mechanisms are case-insensitive; a
 * keyword ends at SP or '=' (the old "AUTH=LOGIN PLAIN" form); unknown
 * keywords, mechanisms and XCLIENT attribute names are ignored.  The reply's code is not checked.
 */
void smtp_ehlo_caps(const struct smtp_reply *r, struct smtp_caps *caps);

#endif
