/*
 * cidr.h — address prefixes ("192.0.2.0/24", "2001:db8::/32", or a single
 * address) and matching a socket address against a list of them.
 *
 * Pure: no I/O, no name resolution.  An IPv4-mapped IPv6 address
 * (::ffff:192.0.2.1, as a dual-stack socket reports IPv4 peers) matches the
 * IPv4 prefixes.
 */
#ifndef SUBPROXY_CIDR_H
#define SUBPROXY_CIDR_H

#include <stddef.h>
#include <sys/socket.h>

struct cidr {
	int family;                     /* AF_INET or AF_INET6 */
	unsigned char addr[16];         /* network byte order; 4 used for AF_INET */
	unsigned bits;                  /* prefix length */
};

/* Parse "ADDR" or "ADDR/LEN" (numeric; LEN 0..32 or 0..128).  Bits beyond
 * the prefix must be zero ("192.0.2.1/24" is refused: say 192.0.2.0/24 or
 * 192.0.2.1).  Returns 0, or -1 with a static sentence in *why_r. */
int cidr_parse(const char *s, struct cidr *c, const char **why_r);

/* 1 when sa (AF_INET or AF_INET6) lies in one of the n prefixes, else 0. */
int cidr_match(const struct cidr *list, size_t n, const struct sockaddr *sa);

/* 1 when every address of the prefix is a loopback, private or link-local
 * one (IPv4: 127/8, 10/8, 172.16/12, 192.168/16, 169.254/16, 100.64/10;
 * IPv6: ::1, fc00::/7, fe80::/10; IPv4-mapped IPv6 prefixes as their IPv4
 * part), else 0: the prefix reaches addresses routed on the internet. */
int cidr_private(const struct cidr *c);

/* The prefix as text, "192.0.2.0/24" (the address alone for a full-length
 * prefix), into buf (at least 50 octets).  Returns buf. */
char *cidr_format(const struct cidr *c, char *buf, size_t len);

/* An address as text ("192.0.2.1", "2001:db8::1"; IPv4-mapped IPv6 as
 * IPv4) into buf (at least 46 octets), and its port into *port_r (may be
 * NULL).  Returns buf ("unknown" for other families). */
char *cidr_ntop(const struct sockaddr *sa, char *buf, size_t len, int *port_r);

#endif
