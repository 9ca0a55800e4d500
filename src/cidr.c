/* cidr.c — address prefixes and matching (pure). */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
cidr_parse(const char *s, struct cidr *c, const char **why_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s), alen, i;
	unsigned long bits;
	char *end;

	memset(c, 0, sizeof(*c));
	if (hl == 0 || hl >= sizeof(host)) {
		*why_r = "expected a numeric address";
		return -1;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->family = AF_INET;
		alen = 4;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->family = AF_INET6;
		alen = 16;
	} else {
		*why_r = "expected a numeric IPv4 or IPv6 address";
		return -1;
	}
	c->bits = (unsigned)alen * 8;
	if (slash != NULL) {
		if (slash[1] < '0' || slash[1] > '9' || (slash[1] == '0' && slash[2] != '\0')) {
			*why_r = "expected a prefix length after '/'";
			return -1;
		}
		bits = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || bits > alen * 8) {
			*why_r = "prefix length out of range (0..32 for IPv4, 0..128 for IPv6)";
			return -1;
		}
		c->bits = (unsigned)bits;
	}
	for (i = 0; i < alen; i++) {
		unsigned keep = c->bits >= (i + 1) * 8 ? 8 : c->bits > i * 8 ? c->bits - i * 8 : 0;
		unsigned char mask = (unsigned char)(keep ? 0xff << (8 - keep) : 0);

		if (c->addr[i] & ~mask) {
			*why_r = "address bits beyond the prefix length are set";
			return -1;
		}
	}
	return 0;
}

static int
prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (0xff << (8 - rest))) == 0;
}

int
cidr_match(const struct cidr *list, size_t n, const struct sockaddr *sa)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const unsigned char *a4 = NULL, *a6 = NULL;
	size_t i;

	if (sa->sa_family == AF_INET) {
		a4 = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		a6 = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (memcmp(a6, mapped, sizeof(mapped)) == 0)
			a4 = a6 + 12;
	} else {
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (list[i].family == AF_INET && a4 != NULL && prefix_eq(a4, list[i].addr,
		    list[i].bits))
			return 1;
		if (list[i].family == AF_INET6 && a6 != NULL && prefix_eq(a6, list[i].addr,
		    list[i].bits))
			return 1;
	}
	return 0;
}

int
cidr_private(const struct cidr *c)
{
	static const struct cidr v4[] = {
		{ AF_INET, { 127 }, 8 }, { AF_INET, { 10 }, 8 }, { AF_INET, { 172, 16 }, 12 },
		{ AF_INET, { 192, 168 }, 16 }, { AF_INET, { 169, 254 }, 16 },
		{ AF_INET, { 100, 64 }, 10 },
	};
	static const struct cidr v6[] = {
		{ AF_INET6, { [15] = 1 }, 128 }, { AF_INET6, { 0xfc }, 7 },
		{ AF_INET6, { 0xfe, 0x80 }, 10 },
	};
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const struct cidr *in = c->family == AF_INET ? v4 : v6;
	size_t i, n = c->family == AF_INET ? sizeof(v4) / sizeof(*v4) : sizeof(v6) / sizeof(*v6);

	if (c->family == AF_INET6 && c->bits >= 96 && memcmp(c->addr, mapped, 12) == 0) {
		struct cidr four = { AF_INET, { 0 }, c->bits - 96 };

		memcpy(four.addr, c->addr + 12, 4);
		return cidr_private(&four);
	}
	for (i = 0; i < n; i++)
		if (c->bits >= in[i].bits && prefix_eq(c->addr, in[i].addr, in[i].bits))
			return 1;
	return 0;
}

char *
cidr_format(const struct cidr *c, char *buf, size_t len)
{
	char text[INET6_ADDRSTRLEN];

	inet_ntop(c->family, c->addr, text, sizeof(text));
	if (c->bits == (c->family == AF_INET ? 32u : 128u))
		snprintf(buf, len, "%s", text);
	else
		snprintf(buf, len, "%s/%u", text, c->bits);
	return buf;
}

char *
cidr_ntop(const struct sockaddr *sa, char *buf, size_t len, int *port_r)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	int port = 0;

	snprintf(buf, len, "unknown");
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)len);
		port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (memcmp(&sin6->sin6_addr, mapped, sizeof(mapped)) == 0)
			inet_ntop(AF_INET, (const unsigned char *)&sin6->sin6_addr + 12, buf,
			    (socklen_t)len);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, buf, (socklen_t)len);
		port = ntohs(sin6->sin6_port);
	}
	if (port_r != NULL)
		*port_r = port;
	return buf;
}
