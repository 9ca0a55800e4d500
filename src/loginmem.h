/*
 * loginmem.h — message octets each login holds at once, summed over all of
 * its sessions (spools in memory or in memfds), for [limits] login-memory.
 *
 * One table per front process.  A session takes a reference to its login's
 * entry after AUTH and gives it back when it ends; the entry lives while
 * any session of the login does.  Each entry publishes what it holds in
 * the counts every front worker shares (connlimit.h, CL_MEMORY), and
 * loginmem_held() is the sum over all workers.  No I/O, no limits of its
 * own (the caller compares loginmem_held() with its limit).
 */
#ifndef SUBPROXY_LOGINMEM_H
#define SUBPROXY_LOGINMEM_H

#include <stdint.h>

struct loginmem_table;
struct loginmem;

struct loginmem_table *loginmem_table_new(void);

/* Free the table; every entry must have been put back.  *tp = NULL; NULL is
 * a no-op. */
void loginmem_table_free(struct loginmem_table **tp);

/* The entry for login (exact match; a new one holds 0 octets).  Each call
 * takes one reference. */
struct loginmem *loginmem_get(struct loginmem_table *t, const char *login);

/* Give a reference back; the last one removes the entry (it must then hold
 * 0 octets).  *mp = NULL; NULL is a no-op. */
void loginmem_put(struct loginmem **mp);

/* Count n more / fewer octets for the login (fewer than held is a broken
 * invariant: fatal). */
void loginmem_add(struct loginmem *m, uint64_t n);
void loginmem_sub(struct loginmem *m, uint64_t n);

/* Octets the login holds in every front worker. */
uint64_t loginmem_held(const struct loginmem *m);

/* Entries in the table (for tests). */
unsigned loginmem_count(const struct loginmem_table *t);

#endif
