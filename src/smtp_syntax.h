/*
 * smtp_syntax.h — strict parsing of SMTP commands received from clients
 * (RFC 5321, 6409, 1870 SIZE, 6152 8BITMIME, 3461 DSN, 6531 SMTPUTF8,
 * 3030 CHUNKING, 4954 AUTH).  Pure: no I/O, no allocation that outlives the
 * call except pointers into the caller's line buffer.
 */
#ifndef SUBPROXY_SMTP_SYNTAX_H
#define SUBPROXY_SMTP_SYNTAX_H

#include <stddef.h>
#include <stdint.h>

/* Longest command line we accept, including CRLF (RFC 5321 4.5.3.1.4 says
 * 512; ESMTP parameters may add to it, RFC 1869: 512 + 488 for MAIL/RCPT). */
#define SMTP_CMD_MAX 1024
/* Longest path (RFC 5321 4.5.3.1.3: 256 octets incl. brackets). */
#define SMTP_PATH_MAX 256

enum smtp_verb {
	SMTP_V_UNKNOWN = 0,
	SMTP_V_EHLO, SMTP_V_HELO, SMTP_V_STARTTLS, SMTP_V_AUTH, SMTP_V_MAIL,
	SMTP_V_RCPT, SMTP_V_DATA, SMTP_V_BDAT, SMTP_V_RSET, SMTP_V_NOOP,
	SMTP_V_QUIT, SMTP_V_VRFY, SMTP_V_EXPN, SMTP_V_HELP
};

enum smtp_body { SMTP_BODY_NONE = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_NONE = 0, SMTP_RET_FULL, SMTP_RET_HDRS };

/* A reply for a refused command. */
struct smtp_err {
	int code;            /* 500, 501, 504, 553, 555 ... */
	char enh[16];        /* "5.5.4" */
	char text[160];      /* one sentence, printable ASCII */
};

struct smtp_parse_opts {
	int dsn_enabled;     /* accept NOTIFY/ORCPT/RET/ENVID (we advertised DSN) */
	int smtputf8_txn;    /* RCPT: the transaction's MAIL carried SMTPUTF8 */
};

/* A parsed command.  String pointers point into the line buffer given to
 * smtp_cmd_parse() (which it may modify by inserting NULs) or into the
 * struct itself; they are valid while both live. */
struct smtp_cmd {
	enum smtp_verb verb;
	const char *domain;         /* EHLO/HELO argument */
	char path[SMTP_PATH_MAX + 1]; /* MAIL/RCPT address without <>; "" = null path */
	int smtputf8;               /* MAIL ... SMTPUTF8 */
	uint64_t size;              /* MAIL SIZE=, 0 when absent */
	enum smtp_body body;        /* MAIL BODY= */
	enum smtp_ret ret;          /* MAIL RET= */
	const char *envid;          /* MAIL ENVID= (xtext as received, validated) or NULL */
	const char *auth;           /* MAIL AUTH= (xtext as received, validated) or NULL */
	char notify[40];            /* RCPT NOTIFY= normalised upper-case, "" when absent */
	const char *orcpt;          /* RCPT ORCPT= (as received, validated) or NULL */
	uint64_t bdat_size;         /* BDAT chunk size */
	int bdat_last;              /* BDAT ... LAST */
	const char *auth_mech;      /* AUTH mechanism */
	const char *auth_initial;   /* AUTH initial response or NULL ("=" means empty) */
	const char *arg;            /* VRFY/EXPN/HELP/NOOP argument or NULL */
};

/* Parse one command line (CRLF already removed) of `len` octets; `line` is
 * NUL-terminated at len and may be modified.  Returns 0 and fills *cmd, or -1
 * and fills *err (cmd->verb is still set when the verb was recognised, so the
 * caller can answer 530 before TLS).  Rules:
 *  - verbs case-insensitive; exactly one SP between verb and argument;
 *  - NUL, CR, LF, or any octet < 0x20 or 0x7f anywhere -> 500 5.5.2;
 *  - octets >= 0x80 only inside a MAIL/RCPT path when SMTPUTF8 applies
 *    (MAIL with SMTPUTF8 param, RCPT with opts->smtputf8_txn), and they must
 *    be valid UTF-8; otherwise 553 5.6.7 (address) / 500 5.5.2 elsewhere;
 *  - MAIL FROM:<path> / RCPT TO:<path> (no space after the colon tolerated
 *    only as "FROM:<" exact; "FROM: <" is accepted as a common client quirk),
 *    source routes stripped (@a,@b:user@dom), path syntax per RFC 5321
 *    4.1.2 (dot-string or quoted-string local part, domain or address
 *    literal); bad path -> 553 5.1.3 (MAIL 5.1.7, RCPT 5.1.3);
 *    RCPT requires a non-empty path;
 *  - MAIL params: SIZE=digits (overflow or > 2^63 -> 552 5.3.4), BODY=7BIT|
 *    8BITMIME, SMTPUTF8 (no value), AUTH=xtext, and with dsn_enabled
 *    RET=FULL|HDRS and ENVID=xtext (<= 100 octets); RCPT params with
 *    dsn_enabled: NOTIFY=NEVER|comma list of SUCCESS,FAILURE,DELAY,
 *    ORCPT=addr-type;xtext.  Bad xtext (a '+' not followed by two upper-case
 *    hex digits, or chars outside 0x21..0x7e, or '=') -> 501 5.5.4; unknown or
 *    duplicate parameter -> 555 5.5.4;
 *  - BDAT size [LAST]: size is 1..19 digits, no overflow -> else 501 5.5.4;
 *  - AUTH mech [initial-response]; mech is 1..20 of [A-Za-z0-9-_] (SASL
 *    names are upper-case; callers compare them case-insensitively);
 *  - DATA, RSET, QUIT, STARTTLS take no argument (501 5.5.4 if given);
 *    EHLO/HELO need a domain or address literal (501 5.5.4);
 *  - unknown verb -> 500 5.5.2 "Command not recognized". */
int smtp_cmd_parse(char *line, size_t len, const struct smtp_parse_opts *opts,
    struct smtp_cmd *cmd, struct smtp_err *err);

/* Strict base64 (RFC 4648, padding required, no whitespace) of `inlen` octets
 * into out (outlen bytes).  Returns 0 with *n_r decoded bytes, -1 on bad
 * input or when out is too small.  Empty input decodes to 0 bytes; a lone
 * "=" (RFC 4954 empty initial response) also decodes to 0 bytes. */
int smtp_base64_decode(const char *in, size_t inlen, char *out, size_t outlen, size_t *n_r);

/* Split a decoded AUTH PLAIN message "authzid\0authcid\0passwd" (len octets;
 * buf[len] must be NUL).  authzid must be empty or equal to authcid; authcid
 * non-empty; no further NULs.  Returns 0 with *user_r = authcid, *pw_r and
 * *pwlen_r pointing into buf, or -1. */
int smtp_auth_plain_decode(const char *buf, size_t len, const char **user_r,
    const char **pw_r, size_t *pwlen_r);

#endif
