/*
 * auditagg.h — front's counting of audit records a client can repeat at
 * will, so that a flood of them costs the audit log a bounded number of
 * records however many client addresses it comes from.  Pure: no I/O, the
 * caller gives the time and sends what it is told to.
 *
 * Every record noted has a type (enum alog_type), a kind (a stable string:
 * "connect\ttoo-many-connections-from-address") and a key (the client's
 * address key, conn_addr_key()); its body is a JSON object text with a
 * "client" member.
 *
 *  - A *flood* record (one a client causes before it authenticated: a
 *    connection over the limits, a session ended for protocol errors, an
 *    AUTH attempt over auth-per-minute or refused by lockout) is sent as it
 *    is when it is the first of its kind and key in the current interval;
 *    the ones after it are counted.  When the interval ends, one summary
 *    record stands for them: the body of the first one counted, with
 *    "count" (how many), "first" and "last" (when front saw the first and
 *    the last of them: UTC, ms) added.  A kind and key quiet for a whole
 *    interval is forgotten.
 *  - The bound: at most `flood_max` flood records that name one client
 *    (first ones and their summaries) are sent per interval, whatever the
 *    number of keys.  Beyond it a flood record of a new key (or a summary
 *    that would be sent) is counted per kind: one summary per kind and
 *    interval stands for them all, with "client": "*", count, first, last,
 *    and "clients", how many client keys they came from (told apart up to
 *    AUDITAGG_KEYS_MAX per interval, all kinds together; beyond that
 *    "clients_capped": true says there were more).
 *  - Any other record is sent as it is.
 *  - Either kind is counted instead of sent while out.room() says that
 *    records of this class may not be sent now (recorder.h,
 *    RECORDER_BULK_MAX).  The summary of such a count goes out at the
 *    first tick with room (of a flood kind: at its interval's end, room
 *    permitting).
 *
 * Memory is bounded: at most `max` kinds and keys are held, each with the
 * body of the first one counted; AUDITAGG_KINDS_MAX kinds counted for many
 * keys, each with one body; AUDITAGG_KEYS_MAX key hashes.  A new kind and
 * key when the table is full evicts the one seen least recently, with
 * nothing counted if there is one; else the least recently seen, whose
 * summary is sent first if there is room.  Without room the new record is
 * counted per kind.  Only a record of a kind beyond AUDITAGG_KINDS_MAX
 * counted per kind is dropped and counted in auditagg_dropped() (front logs
 * it): kinds are a fixed vocabulary of front's, far fewer than that.
 */
#ifndef SUBPROXY_AUDITAGG_H
#define SUBPROXY_AUDITAGG_H

#include <stddef.h>
#include <stdint.h>

/* What the table may do: `room` says whether a record of this class may be
 * sent now; `emit` sends one (type, JSON object body). */
struct auditagg_out {
	int (*room)(void *arg);
	void (*emit)(void *arg, int type, const char *body, size_t len);
	void *arg;
};

struct auditagg;

#define AUDITAGG_KINDS_MAX	64	/* kinds counted for many client keys at once */
#define AUDITAGG_KEYS_MAX	16384	/* client keys they tell apart per interval */

/* max: kinds and keys held (>= 1); interval_ms: the counting period;
 * flood_max: flood records naming one client sent per interval (0: none,
 * every flood record is counted per kind). */
struct auditagg *auditagg_new(size_t max, int64_t interval_ms, uint32_t flood_max,
    const struct auditagg_out *out);
/* Counts not yet sent are lost (call auditagg_flush() first); *ap = NULL;
 * NULL is a no-op. */
void auditagg_free(struct auditagg **ap);

enum auditagg_result {
	AUDITAGG_SENT,		/* emitted now, as it is */
	AUDITAGG_COUNTED,	/* counted: a summary will stand for it */
	AUDITAGG_DROPPED	/* neither: too many kinds counted per kind */
};

/* One record at now_ms (UTC, ms).  flood: counted after the first of its
 * kind and key (above); else counted only while there is no room.  The
 * body is copied when kept.  Emits through out (never asynchronously: the
 * caller's emit must not call back into the table). */
enum auditagg_result auditagg_note(struct auditagg *a, int type, const char *kind,
    const char *key, int flood, const char *body, size_t len, int64_t now_ms);

/* Call now and then (every few seconds): the summaries of intervals that
 * ended are emitted (while there is room), quiet entries forgotten. */
void auditagg_tick(struct auditagg *a, int64_t now_ms);

/* Emit every summary now, room or not (at stop; those beyond the bound as
 * summaries per kind); the table is empty after. */
void auditagg_flush(struct auditagg *a, int64_t now_ms);

/* Kinds and keys held (not those counted per kind); records dropped so far. */
size_t auditagg_size(const struct auditagg *a);
uint64_t auditagg_dropped(const struct auditagg *a);

/* The summary body: `body` (an object text) with "count", "first" and
 * "last" appended; a new string (pure; for tests).  NULL when body does
 * not end in '}'. */
char *auditagg_summary(const char *body, size_t len, uint64_t count, int64_t first_ms,
    int64_t last_ms, size_t *len_r);
/* The summary per kind: `body` with "client" written as "*", and count,
 * first, last, clients and (when capped) "clients_capped": true appended; a
 * new string (pure; for tests).  NULL when body is not a JSON object. */
char *auditagg_wild_summary(const char *body, size_t len, uint64_t count, uint64_t clients,
    int capped, int64_t first_ms, int64_t last_ms, size_t *len_r);

#endif
