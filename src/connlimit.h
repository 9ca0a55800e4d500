/*
 * connlimit.h — the connection counts behind [limits] connections and
 * connections-per-ip, shared by every front worker.
 *
 * The parent maps one table (MAP_SHARED|MAP_ANONYMOUS) before it forks
 * anything: an array of slices, one per front worker slot.  A worker writes
 * only its own slice (connlimit_attach()): one entry per open connection,
 * holding a keyed hash (SipHash, a key made by connlimit_init(), the same
 * in every worker) of the connection's per-address key.  Readers count the
 * entries of every slice: the total is the number of open connections of
 * the whole service, `same` those with an equal key.
 *
 * No lock, no system call.  A worker records its connection *before* it
 * counts (store, full fence, then loads), so of two workers accepting at
 * the same time at least one sees the other: together they never admit
 * more than a limit allows (at worst both refuse the last place).  Entries
 * are single 64-bit words, so a reader never sees half an entry.
 *
 * A worker that dies leaves its entries behind: the parent clears the slice
 * (connlimit_clear()) after reaping it and before a replacement attaches.
 *
 * What a compromised front writes here can only make the service refuse
 * connections (its own slice is its to fill); the parent reads nothing
 * from the table but the number of entries in use of a slot (drain
 * progress, a log line).
 *
 * Without connlimit_init() (unit tests, --check) the first connlimit_add()
 * makes a private one-slice table.
 */
#ifndef SUBPROXY_CONNLIMIT_H
#define SUBPROXY_CONNLIMIT_H

#include <stddef.h>

struct connlimit_count {
	unsigned total;         /* open connections of every worker, this one included,
				 * and those still waiting for a PROXY header */
	unsigned same;          /* of those, the ones with the same key */
};

/* Map the table: `nslices` slices of `per_slice` entries each (a slice is
 * full when its worker holds that many connections).  Returns 0, or -1
 * with errno. */
int connlimit_init(size_t nslices, size_t per_slice);

/* Write slice `slice` from now on (after fork; the slice must be clear). */
void connlimit_attach(size_t slice);

/* Record a connection with per-address key `key` (NUL-terminated) in this
 * worker's slice, then count.  Returns the entry's id for connlimit_del()
 * with the counts (including the new connection) in *c, or -1 when this
 * worker's slice is full (nothing recorded: refuse without counting). */
long connlimit_add(const char *key, struct connlimit_count *c);

/* The connection `id` is gone (its descriptor is closed).  -1 is a no-op. */
void connlimit_del(long id);

/* Connections of this worker that count toward the total but have no
 * per-address key yet (waiting for their PROXY header): the worker
 * publishes how many it holds now, readers add every worker's. */
void connlimit_set_pending(unsigned n);

/* Open connections of every worker, pending ones included. */
unsigned connlimit_total(void);

/* Parent: the writer of `slice` has ended; forget its entries. */
void connlimit_clear(size_t slice);

/* Entries in use in `slice` (0 for a slice out of range). */
unsigned connlimit_used(size_t slice);

#endif
