/*
 * util.h — allocation helpers that never return NULL (they call fatal() on
 * exhaustion: a process that cannot allocate a few bytes cannot keep its
 * promises) and small string helpers.
 */
#ifndef SUBPROXY_UTIL_H
#define SUBPROXY_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Grow an array of nmemb elements of size by doubling; returns the new array
 * and updates *cap_r.  Overflow is fatal. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a newly allocated string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ASCII case-insensitive comparisons that ignore locale. */
int ascii_casecmp(const char *a, const char *b);
int ascii_ncasecmp(const char *a, const char *b, size_t n);
char ascii_tolower(char c);
/* The value of a hexadecimal digit (0-9, a-f, A-F), or -1. */
int ascii_hexval(int c);
/* An IPv4 or IPv6 address literal (inet_pton), not a host name. */
int is_ip_literal(const char *s);

/* Parse a decimal unsigned integer in [min,max] with an optional k/K, m/M or
 * g/G suffix when allow_suffix (binary multiples).  The whole string must be
 * consumed.  Returns 0 and stores *out, or -1. */
int parse_uint(const char *s, uint64_t min, uint64_t max, int allow_suffix, uint64_t *out);

/* Close every descriptor from 3 up except keep[0..n) (a child that must
 * not hold its parent's other sockets).  keep may be reordered. */
void close_fds_except(int *keep, size_t n);

#endif
