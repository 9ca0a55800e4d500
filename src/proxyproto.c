/* proxyproto.c — PROXY protocol v1/v2 header parser (pure). */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
static const char v1_sig[] = "PROXY ";

#define V2_FIXED        16
#define V2_CMD_LOCAL    0x0
#define V2_CMD_PROXY    0x1
#define V2_AF_UNSPEC    0x0
#define V2_AF_INET      0x1
#define V2_AF_INET6     0x2
#define V2_AF_UNIX      0x3
#define V2_PROTO_STREAM 0x1

static enum proxyproto_status
invalid(struct proxyproto_result *r, const char *why)
{
	r->why = why;
	return PROXYPROTO_INVALID;
}

/* ---- version 1 ---- */

/* A decimal port 0..65535 without leading zeros, exactly [s, s+n). */
static int
v1_port(const char *s, size_t n, uint16_t *port)
{
	unsigned v = 0;
	size_t i;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* A numeric address of family af, exactly [s, s+n). */
static int
v1_addr(int af, const char *s, size_t n, struct sockaddr_storage *ss, socklen_t *len)
{
	char buf[64];

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, buf, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		*len = sizeof(*sin6);
	}
	return 0;
}

static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* Can p[0..n) still begin one of the protocol words? */
static int
v1_proto_prefix(const char *p, size_t n)
{
	static const char *const words[] = { "TCP4 ", "TCP6 ", "UNKNOWN\r", "UNKNOWN " };
	size_t i, m;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		m = strlen(words[i]);
		if (memcmp(p, words[i], n < m ? n : m) == 0)
			return 1;
	}
	return 0;
}

/* The complete line "PROXY ...\r\n" of length n (LF at n-1). */
static enum proxyproto_status
v1_line(const char *s, size_t n, struct proxyproto_result *r)
{
	const char *p = s + sizeof(v1_sig) - 1, *end = s + n - 2;   /* end: the CR */
	const char *f[4];
	size_t fl[4], i;
	uint16_t sport, dport;
	int af;

	if (end - p >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (p + 7 == end || p[7] == ' ')) {
		r->local = 1;
		r->consumed = n;
		return PROXYPROTO_DONE;
	}
	if (end - p < 5 || (memcmp(p, "TCP4 ", 5) != 0 && memcmp(p, "TCP6 ", 5) != 0))
		return invalid(r, "v1: unknown protocol (expected TCP4, TCP6 or UNKNOWN)");
	af = p[3] == '4' ? AF_INET : AF_INET6;
	p += 5;
	for (i = 0; i < 4; i++) {
		const char *q = p;

		while (q < end && *q != ' ')
			q++;
		f[i] = p;
		fl[i] = (size_t)(q - p);
		if (fl[i] == 0)
			return invalid(r, "v1: empty field or double space");
		if (i < 3 && q == end)
			return invalid(r, "v1: too few fields (expected SRC DST SPORT DPORT)");
		p = q + 1;
	}
	if (f[3] + fl[3] != end)
		return invalid(r, "v1: too many fields");
	if (v1_addr(af, f[0], fl[0], &r->src, &r->srclen) < 0 ||
	    v1_addr(af, f[1], fl[1], &r->dst, &r->dstlen) < 0)
		return invalid(r, "v1: bad address for the protocol");
	if (v1_port(f[2], fl[2], &sport) < 0 || v1_port(f[3], fl[3], &dport) < 0)
		return invalid(r, "v1: bad port (expected 0..65535 without leading zeros)");
	set_port(&r->src, sport);
	set_port(&r->dst, dport);
	r->consumed = n;
	return PROXYPROTO_DONE;
}

static enum proxyproto_status
parse_v1(const unsigned char *b, size_t len, struct proxyproto_result *r)
{
	size_t i, sl = sizeof(v1_sig) - 1;

	r->version = 1;
	if (memcmp(b, v1_sig, len < sl ? len : sl) != 0)
		return invalid(r, "v1: not a PROXY header");
	for (i = 0; i < len && i < PROXYPROTO_V1_MAX; i++) {
		if (b[i] == '\n') {
			if (i < sl + 1 || b[i - 1] != '\r')
				return invalid(r, "v1: line does not end in CRLF");
			return v1_line((const char *)b, i + 1, r);
		}
		if (b[i] == '\r') {
			if (i + 1 < len && b[i + 1] != '\n')
				return invalid(r, "v1: CR not followed by LF");
		} else if (b[i] < 0x20 || b[i] > 0x7e) {
			return invalid(r, "v1: control or 8-bit byte in the header");
		}
	}
	if (len > sl && !v1_proto_prefix((const char *)b + sl, len - sl))
		return invalid(r, "v1: unknown protocol (expected TCP4, TCP6 or UNKNOWN)");
	if (len >= PROXYPROTO_V1_MAX)
		return invalid(r, "v1: no CRLF within 107 octets");
	return PROXYPROTO_NEED_MORE;
}

/* ---- version 2 ---- */

static uint16_t
be16(const unsigned char *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

/* The TLVs in b[off, total) must tile the range exactly. */
static int
v2_tlvs_ok(const unsigned char *b, size_t off, size_t total)
{
	while (off < total) {
		if (total - off < 3)
			return 0;
		if (be16(b + off + 1) > total - off - 3)
			return 0;
		off += 3 + be16(b + off + 1);
	}
	return 1;
}

static enum proxyproto_status
parse_v2(const unsigned char *b, size_t len, struct proxyproto_result *r)
{
	size_t total, need;
	int cmd, fam, proto;

	r->version = 2;
	if (memcmp(b, v2_sig, len < sizeof(v2_sig) ? len : sizeof(v2_sig)) != 0)
		return invalid(r, "v2: bad signature");
	if (len > 12 && (b[12] >> 4) != 2)
		return invalid(r, "v2: unsupported version");
	if (len > 12 && (b[12] & 0xf) != V2_CMD_LOCAL && (b[12] & 0xf) != V2_CMD_PROXY)
		return invalid(r, "v2: unknown command");
	if (len < V2_FIXED)
		return PROXYPROTO_NEED_MORE;
	cmd = b[12] & 0xf;
	fam = b[13] >> 4;
	proto = b[13] & 0xf;
	total = V2_FIXED + be16(b + 14);
	if (total > PROXYPROTO_V2_MAX)
		return invalid(r, "v2: header longer than 1024 octets");
	need = 0;
	if (cmd == V2_CMD_PROXY) {
		switch (fam) {
		case V2_AF_UNSPEC:
			break;
		case V2_AF_INET:
			need = 12;
			break;
		case V2_AF_INET6:
			need = 36;
			break;
		case V2_AF_UNIX:
			return invalid(r, "v2: UNIX socket addresses are not accepted");
		default:
			return invalid(r, "v2: unknown address family");
		}
		if (fam != V2_AF_UNSPEC && proto != V2_PROTO_STREAM)
			return invalid(r, "v2: not a stream connection");
		if (total - V2_FIXED < need)
			return invalid(r, "v2: address block shorter than its family needs");
	}
	if (len < total)
		return PROXYPROTO_NEED_MORE;
	r->consumed = total;
	if (cmd == V2_CMD_LOCAL || fam == V2_AF_UNSPEC) {
		r->local = 1;
		return PROXYPROTO_DONE;
	}
	if (!v2_tlvs_ok(b, V2_FIXED + need, total))
		return invalid(r, "v2: TLVs do not fit the announced length");
	if (fam == V2_AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&r->src, *d = (struct sockaddr_in *)&r->dst;

		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, b + 16, 4);
		memcpy(&d->sin_addr, b + 20, 4);
		memcpy(&s->sin_port, b + 24, 2);
		memcpy(&d->sin_port, b + 26, 2);
		r->srclen = r->dstlen = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&r->src,
		    *d = (struct sockaddr_in6 *)&r->dst;

		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, b + 16, 16);
		memcpy(&d->sin6_addr, b + 32, 16);
		memcpy(&s->sin6_port, b + 48, 2);
		memcpy(&d->sin6_port, b + 50, 2);
		r->srclen = r->dstlen = sizeof(*s);
	}
	return PROXYPROTO_DONE;
}

enum proxyproto_status
proxyproto_parse(const void *buf, size_t len, struct proxyproto_result *r)
{
	const unsigned char *b = buf;

	memset(r, 0, sizeof(*r));
	if (len == 0)
		return PROXYPROTO_NEED_MORE;
	if (b[0] == 'P')
		return parse_v1(b, len, r);
	if (b[0] == v2_sig[0])
		return parse_v2(b, len, r);
	return invalid(r, "not a PROXY protocol header");
}

const char *
proxyproto_status_name(enum proxyproto_status s)
{
	switch (s) {
	case PROXYPROTO_NEED_MORE: return "need-more";
	case PROXYPROTO_DONE: return "done";
	case PROXYPROTO_INVALID: return "invalid";
	}
	return "?";
}
