/*
 * recorder.h — the recorder process, which alone holds the audit log open
 * and the audit signing key, and its clients (front's and the parent's).
 *
 * The parent forks the recorder before anything else ([audit] log set).  It
 * loads the Ed25519 signing key (and the pseudonymization key), drops to
 * [server] recorder-user chrooted in the log's directory (sandbox_drop_datadir()),
 * opens the log there, continues its chain (the last record of the file,
 * or the head saved at the last rotation/stop in FILE.head when the file is
 * new), enters its seccomp filter (seccomp/recorder.policy: no network, no
 * exec; files only within its chroot) and reports READY.  Then it serves
 * `nslots` client sockets (one per front worker) and one parent socket with
 * poll(2).
 *
 * Messages (src/proc.h framing):
 *   PROC_AUDIT_REC    client -> recorder: u8 enum alog_type, bytes body
 *                     (a JSON object, at most ALOG_BODY_MAX octets).  front
 *                     may send auth, txn and refusal; the parent start and
 *                     stop (auditlog.h, alog_type_allowed()).
 *   PROC_AUDIT_ACK    recorder -> client, same id: u8 enum recorder_status,
 *                     u8 writable (1: the log is being written), u64 seq
 *                     (the record's number; 0 when it has none).
 *   PROC_AUDIT_STATE  recorder -> every client, id 0: u8 writable, when the
 *                     log stops or starts being writable.  Unasked (a
 *                     notice to front's client core, proc_client.h), not
 *                     only a field of the acks: while the log is not
 *                     writable front refuses mail and may send no record at
 *                     all, and would then never hear that it works again.
 * A broken frame, a wrong message type or a type the slot may not send
 * closes that slot (the client sees EOF); a body that does not match the
 * schema is answered RECORDER_REFUSED and logged.
 *
 * Writing: every record read in one poll round is encoded (seq, time, prev
 * hash) into one batch, written with one write(2) and made durable with one
 * fdatasync(2) (group commit); only then are the batch's records acked
 * RECORDER_WRITTEN.  A file made or renamed in the log's directory (a new
 * log, a rotation, FILE.head) has the directory synced too before any
 * record in it is acked.  A checkpoint is added after `checkpoint-records`
 * records or `checkpoint-interval` seconds, before a rotation and at stop.
 * When a write or fdatasync fails (disk full, I/O error, file size limit),
 * the file is cut back to its last good length, the batch stays in a
 * bounded backlog (RECORDER_BACKLOG_MAX octets; its records keep their
 * numbers) and is acked RECORDER_QUEUED, the log is "not writable" (every
 * client is told), and the write is retried every second; records that do
 * not fit the backlog are counted and acked RECORDER_LOST, and a "gap"
 * record with their number is written when the log works again.  An error
 * line is logged at most once a minute while this lasts.
 *
 * Rotation: on SIGHUP the recorder writes a checkpoint, reopens the file
 * name and, when that is a new file, starts it with an "open" record that
 * links to the old file's last record; with [audit] rotate-size it renames
 * the file to NAME.YYYYMMDDTHHMMSSZ itself when it grows beyond that size.
 * The name is never opened through a symbolic link, and only a regular file
 * is written.  When it cannot be opened (no space for a new file, a link or
 * a FIFO in its place), that is a failed write: the log is not writable,
 * the records wait in the backlog behind the "open" record, and the name is
 * tried again every second.
 * On SIGTERM, or when every client socket is closed, it writes what it has,
 * a final checkpoint and FILE.head, and exits 0.
 */
#ifndef SUBPROXY_RECORDER_H
#define SUBPROXY_RECORDER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct config;
struct event_base;
struct recorder_client;
struct recorder_req;

#define RECORDER_BACKLOG_MAX	(4 * 1024 * 1024)	/* octets kept while unwritable */
#define RECORDER_SLOTS_MAX	128	/* 2 x [server] workers at most: two generations */
#define RECORDER_QUEUE_MAX	1024			/* frames front queues for a full socket */
#define RECORDER_BULK_MAX	256	/* bulk records unanswered (recorder_send_bulk) */
#define RECORDER_ACK_TIMEOUT	10			/* seconds front waits for an ack */

enum recorder_status {
	RECORDER_WRITTEN = 0,	/* written and fdatasync'ed */
	RECORDER_QUEUED = 1,	/* not writable now: kept, written when it is */
	RECORDER_LOST = 2,	/* not writable and the backlog is full: counted in a gap */
	RECORDER_REFUSED = 3,	/* malformed body */
	RECORDER_STATUS_MAX = RECORDER_REFUSED
};
/* Given to callbacks besides enum recorder_status. */
#define RECORDER_DEAD		(-1)	/* the recorder is gone */
#define RECORDER_BUSY		(-2)	/* front's queue to it is full */
#define RECORDER_TIMEOUT	(-3)	/* no ack within RECORDER_ACK_TIMEOUT */

/* "written", "queued", "lost", "refused", "dead", "busy", "timeout". */
const char *recorder_status_name(int status);

/* ---- the process ---- */

/*
 * Fork the recorder with `nslots` client sockets.  Returns its pid once it
 * reported READY (within `timeout` seconds) and stores the client ends in
 * client_fds_r[0..nslots) and the parent's end in *parent_fd_r; on failure
 * -1 with the recorder's own sentence in err (the key's mode, the log
 * directory's owner, an unreadable last record ...) and the child reaped.
 */
pid_t recorder_spawn(const struct config *cfg, size_t nslots, int timeout, int *client_fds_r,
    int *parent_fd_r, char *err, size_t errlen);

/* The parent's record (start, stop): send it and wait for its ack at most
 * timeout_ms.  Returns an enum recorder_status, RECORDER_DEAD (socket
 * closed or broken) or RECORDER_TIMEOUT.  Blocking: for the parent only. */
int recorder_send_sync(int fd, int type, const char *body, size_t len, int timeout_ms);

/* ---- front's client ----
 *
 * Built on the IPC client core (proc_client.h): fresh ids, stale acks
 * dropped, the bounded outbound queue, a deadline of RECORDER_ACK_TIMEOUT
 * for every record, dying once, PROC_AUDIT_STATE as a notice.  A record
 * sent without a callback is tracked all the same: its ack (or its
 * absence) still says whether the log is written. */

/* Called with the record's status (enum recorder_status or RECORDER_DEAD,
 * _BUSY, _TIMEOUT); never from inside recorder_send(). */
typedef void recorder_cb(void *arg, int status);
typedef void recorder_dead_cb(void *arg);

/* Takes ownership of fd.  dead_cb runs once, from the event loop, when the
 * recorder goes away; every pending callback then gets RECORDER_DEAD. */
struct recorder_client *recorder_client_new(struct event_base *base, int fd,
    recorder_dead_cb *dead_cb, void *arg);
/* Pending callbacks are dropped; *rcp = NULL; NULL is a no-op. */
void recorder_client_free(struct recorder_client **rcp);

/* Send one record (type, JSON object body).  Never blocks: a full socket
 * queues it (at most RECORDER_QUEUE_MAX), beyond that the callback gets
 * RECORDER_BUSY; a body too long for one message gets RECORDER_REFUSED.
 * cb may be NULL (nothing waits for it).  Returns a cookie for
 * recorder_cancel() (NULL when cb is NULL). */
struct recorder_req *recorder_send(struct recorder_client *rc, int type, const char *body,
    size_t len, recorder_cb *cb, void *arg);

/* Bulk records: refusals, and the records a client can repeat at will
 * (auditagg.h).  Sent like recorder_send() without a callback, but at
 * most RECORDER_BULK_MAX of them wait for their answer at any time, so
 * that however many a client causes, they never take the queue's last
 * RECORDER_QUEUE_MAX - RECORDER_BULK_MAX places, which transaction and
 * AUTH records need.  recorder_bulk_room() says whether one may be sent
 * now (the caller counts it instead, auditagg.h); recorder_send_bulk()
 * sends regardless (for the summaries at stop). */
int recorder_bulk_room(const struct recorder_client *rc);
void recorder_send_bulk(struct recorder_client *rc, int type, const char *body, size_t len);

/* The callback will not be called; the record is still sent (from the
 * queue too) and written, its answer noted as for one sent without a
 * callback: the transaction it records happened whether or not its
 * session still waits.  *rp = NULL; NULL is a no-op. */
void recorder_cancel(struct recorder_req **rp);

/* 1 while the log is written (as the recorder last said, and no record of
 * ours was lost, busy, refused as too long or timed out since), 0
 * otherwise. */
int recorder_writable(const struct recorder_client *rc);

/* Records whose answer is still due, with or without a callback (for
 * tests and logs). */
size_t recorder_pending(const struct recorder_client *rc);

/* ---- pure codecs (for the fuzzer and tests) ---- */

long recorder_rec_encode(uint8_t *buf, size_t cap, int type, const char *body, size_t len);
/* *body_r points into p.  0, or -1 (unknown type, body too long, trailing bytes). */
int recorder_rec_decode(const uint8_t *p, size_t len, int *type_r, const uint8_t **body_r,
    size_t *len_r);
long recorder_ack_encode(uint8_t *buf, size_t cap, int status, int writable, uint64_t seq);
int recorder_ack_decode(const uint8_t *p, size_t len, int *status_r, int *writable_r,
    uint64_t *seq_r);

#endif
