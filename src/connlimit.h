/*
 * connlimit.h — counts shared by every front worker: the connections
 * behind [limits] connections and connections-per-ip, the sessions behind
 * sessions-per-login, and the message octets behind [limits] login-memory.
 *
 * The parent maps one table (MAP_SHARED|MAP_ANONYMOUS) before it forks
 * anything: an array of slices, one per front worker slot.  A worker writes
 * only its own slice (connlimit_attach()): one entry per thing it counts,
 * a keyed hash (SipHash, a key made by connlimit_init(), the same in every
 * worker) of the thing's key with its kind, and a value (1 for a
 * connection or a session, octets for memory).  Readers go through every
 * slice: a limit is checked against the sum over all workers.
 *
 * No lock, no system call.  A worker records its entry *before* it counts
 * (store, full fence, then loads), so of two workers taking the last place
 * of a limit at the same time at least one sees the other: together they
 * never admit more than the limit allows (at worst both refuse).  Keys and
 * values are single 64-bit words (value stored before key, key loaded
 * before value), so a reader never sees half an entry.
 *
 * A worker that dies leaves its entries behind: the parent clears the slice
 * (connlimit_clear()) after reaping it and before a replacement attaches.
 *
 * What a compromised front writes here can only make the service refuse
 * (its own slice is its to fill); the parent reads nothing from the table
 * but the number of connections of a slot (drain progress, a log line).
 *
 * Without connlimit_init() (unit tests, --check) the first use makes a
 * private one-slice table.
 */
#ifndef SUBPROXY_CONNLIMIT_H
#define SUBPROXY_CONNLIMIT_H

#include <stddef.h>
#include <stdint.h>

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

enum connlimit_kind {
	CL_CONN = 1,            /* a connection, by per-address key (value 1) */
	CL_LOGIN = 2,           /* an open session, by login (value 1) */
	CL_MEMORY = 3           /* message octets a login holds in one worker */
};

/* Record a connection with per-address key `key` (NUL-terminated) in this
 * worker's slice, then count.  Returns the entry's id for connlimit_del()
 * with the counts (including the new connection) in *c, or -1 when this
 * worker's slice is full (nothing recorded: refuse without counting). */
long connlimit_add(const char *key, struct connlimit_count *c);

/* Record an entry of `kind` for `key` with `value` (then a full fence: a
 * sum made afterwards sees it, and other workers' sums see it or are seen
 * by this worker's).  Returns its id, or -1 when the slice is full. */
long connlimit_put(enum connlimit_kind kind, const char *key, uint64_t value);

/* Change the value of this worker's entry `id`. */
void connlimit_set(long id, uint64_t value);

/* The sum of the values of every worker's entries of `kind` for `key`, and
 * how many there are in *n_r (may be NULL). */
uint64_t connlimit_sum(enum connlimit_kind kind, const char *key, unsigned *n_r);

/* The entry `id` is gone (a connection's descriptor is closed, a session
 * ended).  -1 is a no-op. */
void connlimit_del(long id);

/* Connections of this worker that count toward the total but have no
 * per-address key yet (waiting for their PROXY header): the worker
 * publishes how many it holds now, readers add every worker's. */
void connlimit_set_pending(unsigned n);

/* Open connections of every worker, pending ones included. */
unsigned connlimit_total(void);

/* Parent: the writer of `slice` has ended; forget its entries. */
void connlimit_clear(size_t slice);

/* Connections recorded in `slice` (0 for a slice out of range). */
unsigned connlimit_used(size_t slice);

#endif
