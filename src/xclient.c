/* xclient.c — XCLIENT command builder (pure). */
#include "xclient.h"
#include "smtp_reply.h"

#include <stdio.h>
#include <string.h>

int
xclient_xtext(char *dst, size_t dstlen, const char *src)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *src != '\0'; src++) {
		unsigned char c = (unsigned char)*src;

		if (c >= 0x21 && c <= 0x7e && c != '+' && c != '=') {
			if (o + 1 >= dstlen)
				goto toolong;
			dst[o++] = (char)c;
		} else {
			if (o + 3 >= dstlen)
				goto toolong;
			dst[o++] = '+';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		}
	}
	dst[o] = '\0';
	return (int)o;
toolong:
	dst[0] = '\0';
	return -1;
}

/* One attribute as " NAME=xtext" into buf; 0 when it has no value. */
static int
attr_text(unsigned bit, const struct xclient_info *ci, char *buf, size_t len)
{
	char val[XCLIENT_LINE_MAX], enc[XCLIENT_LINE_MAX];
	const char *name, *addr = NULL;

	val[0] = '\0';
	switch (bit) {
	case SMTP_XCLIENT_PROTO:
		name = "PROTO";
		snprintf(val, sizeof(val), "%s", ci->esmtp ? "ESMTP" : "SMTP");
		break;
	case SMTP_XCLIENT_HELO:
		name = "HELO";
		snprintf(val, sizeof(val), "%s", ci->helo ? ci->helo : "[UNAVAILABLE]");
		break;
	case SMTP_XCLIENT_LOGIN:
		name = "LOGIN";
		snprintf(val, sizeof(val), "%s", ci->login ? ci->login : "[UNAVAILABLE]");
		break;
	case SMTP_XCLIENT_PORT:
		name = "PORT";
		if (ci->port > 0)
			snprintf(val, sizeof(val), "%d", ci->port);
		break;
	case SMTP_XCLIENT_DESTPORT:
		name = "DESTPORT";
		if (ci->destport > 0)
			snprintf(val, sizeof(val), "%d", ci->destport);
		break;
	case SMTP_XCLIENT_NAME:
		name = "NAME";
		snprintf(val, sizeof(val), "[UNAVAILABLE]");
		break;
	case SMTP_XCLIENT_ADDR:
		name = "ADDR";
		addr = ci->addr;
		break;
	case SMTP_XCLIENT_DESTADDR:
		name = "DESTADDR";
		addr = ci->destaddr;
		break;
	default:
		return 0;
	}
	if (addr != NULL && addr[0] != '\0')
		snprintf(val, sizeof(val), "%s%s", strchr(addr, ':') ? "IPV6:" : "", addr);
	if (val[0] == '\0')
		return 0;
	if (xclient_xtext(enc, sizeof(enc), val) < 0 ||
	    (size_t)snprintf(buf, len, " %s=%s", name, enc) >= len)
		return -1;
	return 1;
}

void
xclient_build(unsigned attrs, const struct xclient_info *ci, struct xclient_cmds *out)
{
	static const unsigned order[] = {
		SMTP_XCLIENT_PROTO, SMTP_XCLIENT_HELO, SMTP_XCLIENT_LOGIN, SMTP_XCLIENT_PORT,
		SMTP_XCLIENT_DESTADDR, SMTP_XCLIENT_DESTPORT, SMTP_XCLIENT_NAME, SMTP_XCLIENT_ADDR
	};
	/* room for the attributes between "XCLIENT" and CRLF */
	enum { ROOM = XCLIENT_LINE_MAX - 7 - 2 };
	const size_t room = ROOM;
	char cur[ROOM + 1], a[ROOM + 1];
	size_t i, curlen = 0;

	memset(out, 0, sizeof(*out));
	cur[0] = '\0';
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		size_t al;
		int r;

		if (!(attrs & order[i]))
			continue;
		r = attr_text(order[i], ci, a, room + 1);
		if (r <= 0 || (al = strlen(a)) > room) {
			out->skipped |= order[i];
			continue;
		}
		if (curlen + al > room) {
			snprintf(out->line[out->n++], XCLIENT_LINE_MAX + 1, "XCLIENT%s\r\n", cur);
			curlen = 0;
			cur[0] = '\0';
		}
		memcpy(cur + curlen, a, al + 1);
		curlen += al;
	}
	if (curlen > 0)
		snprintf(out->line[out->n++], XCLIENT_LINE_MAX + 1, "XCLIENT%s\r\n", cur);
}
