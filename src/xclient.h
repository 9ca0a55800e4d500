/*
 * xclient.h — the XCLIENT commands (Postfix's SMTP extension) that tell the
 * relay who the real client is: its address and port, HELO name, protocol,
 * login, and the address and port it connected to.
 *
 * Pure: no I/O.  Values are xtext-encoded (RFC 3461 4: "+", "=", controls,
 * SP and 8-bit bytes as "+HH").  Only the attributes the relay advertised are
 * sent.  Postfix requires commands of at most 512 octets with CRLF and
 * authorises XCLIENT by the client address, which ADDR changes: so the
 * attributes are packed in the order PROTO HELO LOGIN PORT DESTADDR DESTPORT
 * NAME ADDR into as few commands as fit, ADDR always in the last one.  After
 * each command the relay answers with a new 220 greeting; after the last one
 * the client must send EHLO again.
 */
#ifndef SUBPROXY_XCLIENT_H
#define SUBPROXY_XCLIENT_H

#include <stddef.h>

#define XCLIENT_LINE_MAX   512     /* octets per command, CRLF included */
#define XCLIENT_CMDS_MAX   8       /* one per attribute at worst */

struct xclient_info {
	const char *addr;          /* "192.0.2.1" or "2001:db8::1" (sent as IPV6:...) */
	int port;                  /* 0: not known, not sent */
	const char *helo;          /* the client's HELO/EHLO name, NULL: none */
	int esmtp;                 /* 1: EHLO (PROTO=ESMTP), 0: HELO (PROTO=SMTP) */
	const char *login;         /* NULL: not authenticated ([UNAVAILABLE]) */
	const char *destaddr;      /* the address the client connected to, or NULL */
	int destport;              /* 0: not known */
};

struct xclient_cmds {
	char line[XCLIENT_CMDS_MAX][XCLIENT_LINE_MAX + 1];   /* NUL-terminated, with CRLF */
	size_t n;
	unsigned skipped;          /* SMTP_XCLIENT_* bits offered but not sendable
	                            * (value unknown, or too long for one command) */
};

/* Build the commands for a relay that offered `attrs` (SMTP_XCLIENT_* bits
 * from smtp_ehlo_caps()).  NAME is sent as [UNAVAILABLE] (subproxy does no
 * reverse lookups).  out->n is 0 when nothing can be sent. */
void xclient_build(unsigned attrs, const struct xclient_info *ci, struct xclient_cmds *out);

/* xtext-encode src into dst (dstlen > 0, always NUL-terminated).  Returns the
 * encoded length, or -1 when it does not fit. */
int xclient_xtext(char *dst, size_t dstlen, const char *src);

#endif
