/*
 * proxyproto.h — the PROXY protocol header (HAProxy's spec, versions 1 and 2)
 * that a load balancer puts in front of a forwarded TCP connection.
 *
 * Pure: no I/O, no logging, no allocation.  The caller collects the first
 * bytes of the connection and calls proxyproto_parse() on all of them each
 * time more arrive; the parser decides as early as the bytes allow.
 *
 * Accepted (everything else is PROXYPROTO_INVALID):
 *   v1  "PROXY TCP4 SRC DST SPORT DPORT\r\n", "PROXY TCP6 ...\r\n" with single
 *       spaces, numeric addresses of the named family, decimal ports 0..65535
 *       without leading zeros; "PROXY UNKNOWN" followed by anything up to
 *       CRLF.  At most PROXYPROTO_V1_MAX octets including CRLF.
 *   v2  the 12-octet signature, version 2, command LOCAL or PROXY; for PROXY
 *       the families AF_INET and AF_INET6 over STREAM with their address
 *       block (UNIX, DGRAM and unknown families are refused; UNSPEC is taken
 *       as "addresses unknown", like v1 UNKNOWN); TLVs after the address
 *       block are checked to tile the rest exactly and are otherwise
 *       skipped.  LOCAL ignores the address block.  At most
 *       PROXYPROTO_V2_MAX octets in all (a longer announced length is
 *       refused as soon as the 16-octet fixed part is in).
 */
#ifndef SUBPROXY_PROXYPROTO_H
#define SUBPROXY_PROXYPROTO_H

#include <stddef.h>
#include <sys/socket.h>

#define PROXYPROTO_V1_MAX  107     /* the spec's bound, CRLF included */
#define PROXYPROTO_V2_MAX  1024    /* ours: 16-octet fixed part + block + TLVs */
/* The most bytes a caller ever needs to hand to the parser. */
#define PROXYPROTO_MAX     PROXYPROTO_V2_MAX

enum proxyproto_status {
	PROXYPROTO_NEED_MORE,   /* a valid prefix; every byte given is part of the header */
	PROXYPROTO_DONE,        /* complete; r->consumed octets are the header */
	PROXYPROTO_INVALID      /* not a header we accept; r->why says why */
};

struct proxyproto_result {
	int version;                    /* 1 or 2 (0 while undecided) */
	int local;                      /* 1: v2 LOCAL, v2 UNSPEC or v1 UNKNOWN: no
	                                 * addresses, use the connection's own */
	struct sockaddr_storage src;    /* the client (when !local) */
	struct sockaddr_storage dst;    /* the address the client connected to */
	socklen_t srclen, dstlen;
	size_t consumed;                /* header length (DONE) */
	const char *why;                /* INVALID: a static sentence */
};

/* Look at the first len bytes of a connection.  *r is cleared first.
 * NEED_MORE: no decision yet, and all len bytes belong to the header (the
 * caller may consume them); DONE: the header is buf[0 .. r->consumed), the
 * bytes after it belong to the application; INVALID: r->why is set. */
enum proxyproto_status proxyproto_parse(const void *buf, size_t len,
    struct proxyproto_result *r);

const char *proxyproto_status_name(enum proxyproto_status s);

#endif
