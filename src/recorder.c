/* recorder.c — the recorder process: the audit log's only writer. */
#include "recorder.h"

#include "auditkey.h"
#include "auditlog.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "proc.h"
#include "proc_spawn.h"
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <sodium.h>

#define READS_PER_ROUND		64	/* messages taken from one slot per poll round */
#define RETRY_MS		1000	/* while the log is not writable */
#define ERROR_LOG_EVERY_MS	60000
#define ACK_WAIT_MS		1000	/* a client that does not read its acks */
#define HEAD_SUFFIX		".head"

struct slot {
	int fd;
	enum alog_origin origin;
};

struct pend {
	size_t slot;
	uint32_t id;
	uint64_t seq;
};

static struct recorder {
	const struct config *cfg;
	char name[256];			/* the log's file name in its directory */
	struct alog_key key;
	char keyb64[48];
	uint8_t *pkey;			/* pseudonym key, or NULL */
	int fd;				/* the log */
	int dirfd;			/* its directory (made durable after a new name) */
	dev_t dev;
	ino_t ino;
	uint64_t size;			/* its last good length */
	struct alog_chain chain;	/* including what is not written yet */
	uint64_t since_cp;		/* records since the last checkpoint */
	int64_t last_cp_ms;
	struct jsonw w;			/* one record */
	char *batch;			/* encoded lines not yet written */
	size_t blen, bcap;
	struct pend *pend;		/* acks owed when the batch is written */
	size_t npend, cappend;
	int writable;
	int dirty;			/* the file may hold a partial write: cut it first */
	uint64_t lost;
	int64_t lost_first, lost_last;
	int64_t next_error_log;
	struct slot *slots;
	size_t nslots, open_slots;
} R;

static volatile sig_atomic_t got_term, got_hup;

/* ---- the log file ---- */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
batch_add(const char *line, size_t len)
{
	if (R.blen + len + 1 > R.bcap) {
		while (R.blen + len + 1 > R.bcap)
			R.bcap = R.bcap ? R.bcap * 2 : 65536;
		R.batch = xrealloc(R.batch, R.bcap);
	}
	memcpy(R.batch + R.blen, line, len);
	R.batch[R.blen + len] = '\n';
	R.blen += len + 1;
}

/* A write problem: logged at most once a minute. */
static void
note_problem(const char *what, const char *why)
{
	int64_t now = now_ms();

	if (now < R.next_error_log)
		return;
	R.next_error_log = now + ERROR_LOG_EVERY_MS;
	log_err("event=audit-log-error file=%s op=%s error=\"%s\" backlog=%zu lost=%llu: the "
	    "audit log cannot be written; new transactions are refused (451 4.3.0) until it "
	    "can", R.name, what, why, R.blen, (unsigned long long)R.lost);
}

static void
note_error(const char *what, int err)
{
	note_problem(what, strerror(err));
}

/* A file made or renamed in the log's directory: its name is made durable
 * too, before any record in it is acknowledged (fdatasync of the file
 * alone does not keep a new name across a power loss). */
static void
dir_sync(void)
{
	if (R.dirfd >= 0 && fdatasync(R.dirfd) < 0)
		note_error("fdatasync of the directory", errno);
}

static int
write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int log_next(void);

/* Write the batch and make it durable.  On failure the file is cut back to
 * its last good length and the batch is kept.  Without a file (a rotation
 * could not open the new one) the name is tried again first. */
static int
flush(void)
{
	int err;

	if (R.fd < 0 && log_next() < 0)
		return -1;
	if (R.dirty) {
		if (ftruncate(R.fd, (off_t)R.size) < 0) {
			note_error("ftruncate", errno);
			return -1;
		}
		R.dirty = 0;
	}
	if (R.blen == 0)
		return 0;
	if (write_all(R.fd, R.batch, R.blen) < 0 || fdatasync(R.fd) < 0) {
		err = errno;
		note_error("write", err);
		R.dirty = 1;
		if (ftruncate(R.fd, (off_t)R.size) == 0)
			R.dirty = 0;
		errno = err;
		return -1;
	}
	R.size += R.blen;
	R.blen = 0;
	return 0;
}

/* Encode one record into the batch.  Returns the status to give its
 * sender (RECORDER_WRITTEN means: once the batch is written). */
static int
append(int type, const char *body, size_t len, uint64_t *seq_r)
{
	struct alog_chain save = R.chain;

	*seq_r = 0;
	if (alog_encode(&R.w, &R.chain, type, now_ms(), body, len) < 0)
		return RECORDER_REFUSED;
	if (!R.writable && R.blen + R.w.len + 1 > RECORDER_BACKLOG_MAX) {
		R.chain = save;
		if (R.lost++ == 0)
			R.lost_first = now_ms();
		R.lost_last = now_ms();
		return RECORDER_LOST;
	}
	batch_add(R.w.buf, R.w.len);
	R.since_cp++;
	*seq_r = R.chain.seq;
	return R.writable ? RECORDER_WRITTEN : RECORDER_QUEUED;
}

static void
append_checkpoint(void)
{
	if (alog_encode_checkpoint(&R.w, &R.chain, now_ms(), R.since_cp, R.key.pk, R.key.sk) < 0)
		fatal("recorder: cannot encode a checkpoint");
	batch_add(R.w.buf, R.w.len);
	R.since_cp = 0;
	R.last_cp_ms = now_ms();
	log_info("event=audit-checkpoint seq=%llu", (unsigned long long)R.chain.seq);
}

/* A record made here (open, gap): its body from a writer. */
static void
append_own(int type, struct jsonw *b)
{
	uint64_t seq;

	if (append(type, b->buf, b->len, &seq) == RECORDER_REFUSED)
		fatal("recorder: cannot encode its own %s record", alog_type_name(type));
}

static void
append_open(const char *reason)
{
	struct jsonw b;

	jsonw_init(&b, 0);
	jsonw_obj_open(&b);
	jsonw_kstr(&b, "reason", reason);
	jsonw_obj_close(&b);
	append_own(ALOG_T_OPEN, &b);
	jsonw_free(&b);
}

/* FILE.head: the chain head, for a new file after the log was moved away
 * while the service was stopped. */
static void
head_save(void)
{
	char tmp[300], path[300], hex[ALOG_HEX_LEN + 1], line[160];
	int fd, n;

	snprintf(path, sizeof(path), "%s%s", R.name, HEAD_SUFFIX);
	snprintf(tmp, sizeof(tmp), "%s%s.tmp", R.name, HEAD_SUFFIX);
	alog_hex(R.chain.head, ALOG_HASH_LEN, hex);
	n = snprintf(line, sizeof(line), "subproxy-audit-head 1 %llu %s\n",
	    (unsigned long long)R.chain.seq, hex);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0 ||
	    write_all(fd, line, (size_t)n) < 0 || fdatasync(fd) < 0 || rename(tmp, path) < 0)
		log_warn("event=audit-head-error file=%s error=\"%s\"", path, strerror(errno));
	else
		dir_sync();
	if (fd >= 0)
		close(fd);
}

static int
head_load(char *err, size_t errlen)
{
	char path[300], buf[200], hex[ALOG_HEX_LEN + 2];
	unsigned long long seq;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s%s", R.name, HEAD_SUFFIX);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return errno == ENOENT ? 0 : -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	if (sscanf(buf, "subproxy-audit-head 1 %llu %65s", &seq, hex) != 2 || seq == 0 ||
	    alog_unhex(hex, R.chain.head, ALOG_HASH_LEN) < 0) {
		snprintf(err, errlen, "audit log head %s is damaged; move it away (then the log "
		    "starts a new chain, which auditors will see)", path);
		return -1;
	}
	R.chain.seq = seq;
	return 0;
}

/* Continue the chain from the last record of a non-empty file; a partial
 * last line (a write that was never acknowledged) is cut off. */
static int
tail_load(char *err, size_t errlen)
{
	size_t win = R.size < ALOG_LINE_MAX + 2 ? (size_t)R.size : ALOG_LINE_MAX + 2, end, start;
	char *buf = xmalloc(win + 1), jerr[200];
	struct alog_env env;
	struct json *rec = NULL;
	ssize_t n;
	int rc = -1;

	if ((n = pread(R.fd, buf, win, (off_t)(R.size - win))) != (ssize_t)win) {
		snprintf(err, errlen, "audit log %s: cannot read its end: %s", R.name,
		    n < 0 ? strerror(errno) : "short read");
		goto out;
	}
	for (end = win; end > 0 && buf[end - 1] != '\n'; end--)
		;
	if (end < win) {
		if (end == 0 && win < R.size) {
			snprintf(err, errlen, "audit log %s: its last line is longer than a record",
			    R.name);
			goto out;
		}
		log_warn("event=audit-log-repair file=%s cut=%zu: the last line was never "
		    "completed (a write cut short by a crash); it is removed", R.name, win - end);
		if (ftruncate(R.fd, (off_t)(R.size - (win - end))) < 0) {
			snprintf(err, errlen, "audit log %s: ftruncate: %s", R.name, strerror(errno));
			goto out;
		}
		R.size -= win - end;
		if (R.size == 0) {
			rc = 1;		/* nothing left: a new file */
			goto out;
		}
	}
	for (start = end - 1; start > 0 && buf[start - 1] != '\n'; start--)
		;
	if (start == 0 && R.size > win) {
		snprintf(err, errlen, "audit log %s: its last line is longer than a record", R.name);
		goto out;
	}
	if (json_parse(buf + start, end - 1 - start, &rec, jerr, sizeof(jerr)) < 0 ||
	    alog_record_check(rec, &env, jerr, sizeof(jerr)) < 0) {
		snprintf(err, errlen, "audit log %s: its last record cannot be read (%s); the log "
		    "was damaged: move the file away (keep it as evidence) and start again", R.name,
		    jerr);
		goto out;
	}
	R.chain.seq = env.seq;
	alog_hash(buf + start, end - 1 - start, R.chain.head);
	rc = 0;
out:
	json_free(&rec);
	free(buf);
	return rc;
}

/*
 * Open the log's file name (in the current directory) for appending: never
 * through a symbolic link (O_NOFOLLOW: ELOOP), never anything but a
 * regular file (a FIFO, a directory or a device in its place is closed
 * again, unwritten; opening a FIFO O_RDWR does not wait for a peer).
 * Returns the descriptor and its stat, or -1 with a sentence in why.
 */
static int
name_open(struct stat *st, char *why, size_t whylen)
{
	int fd;

	if ((fd = open(R.name, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
	    0600)) < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -1;
	}
	if (sandbox_fstat(fd, st) < 0)
		snprintf(why, whylen, "fstat: %s", strerror(errno));
	else if (S_ISREG(st->st_mode))
		return fd;
	else
		snprintf(why, whylen, "%s", S_ISFIFO(st->st_mode) ? "a FIFO, not a regular file" :
		    "not a regular file");
	close(fd);
	return -1;
}

/* Write to fd (stat st) from now on. */
static void
log_adopt(int fd, const struct stat *st)
{
	R.fd = fd;
	R.dev = st->st_dev;
	R.ino = st->st_ino;
	R.size = (uint64_t)st->st_size;
	R.dirty = 0;
}

/* At start: open the log and continue its chain (its last record, or
 * FILE.head); a new file gets an "open" record.  Returns 0, or -1 with a
 * sentence. */
static int
log_open(char *err, size_t errlen)
{
	struct stat st;
	char why[80];
	int fd, rc;

	if ((fd = name_open(&st, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "audit log %s: %s", R.name, why);
		return -1;
	}
	log_adopt(fd, &st);
	dir_sync();		/* it may have been made just now */
	if (R.size > 0 && (rc = tail_load(err, errlen)) != 1)
		return rc;
	if (head_load(err, errlen) < 0)
		return -1;
	append_open("new");
	return 0;
}

/* Go on in fd, the next file of a rotation (its batch begins with the
 * "open" record). */
static void
next_adopt(int fd, const struct stat *st)
{
	log_adopt(fd, st);
	dir_sync();		/* it may have been made just now */
	if (R.size > 0)
		log_err("event=audit-log-reopen file=%s size=%llu: a file that is not this log's "
		    "is in its place; the log continues after it (verifying this file will show "
		    "where)", R.name, (unsigned long long)R.size);
}

/*
 * The next file of a rotation, while there is none (R.fd < 0).  Like a
 * failed write, a failed open leaves the log not writable (the caller says
 * so to every client), is logged once a minute and tried again every
 * RETRY_MS.  Returns 0, or -1.
 */
static int
log_next(void)
{
	struct stat st;
	char why[80];
	int fd;

	if ((fd = name_open(&st, why, sizeof(why))) < 0) {
		note_problem("open", why);
		return -1;
	}
	next_adopt(fd, &st);
	log_info("event=audit-log-open file=%s seq=%llu", R.name, (unsigned long long)R.chain.seq);
	return 0;
}

static void set_writable(int w);

/*
 * SIGHUP or size: end the file with a checkpoint and go on in the file the
 * name holds now (after moving the file away when by_size).  The same file
 * (SIGHUP without rotation): nothing changes.  Another one: the old file is
 * closed, an "open" record linking to its last record begins the new one.
 * When the new one cannot be opened (no space for a new file, a symbolic
 * link, a FIFO in its place ...), the old file stays closed (the rotation
 * moved it on: writing there would be writing to the wrong file) and the
 * log is not writable until the name can be opened: records wait in the
 * backlog behind the "open" record, as when a write fails.
 */
static void
rotate(const char *reason, int by_size)
{
	char newname[320], t[ALOG_TIME_LEN + 1], why[80];
	struct stat st;
	int i, fd;

	if (R.fd < 0)
		return;		/* the last rotation's file is not open yet */
	if (R.since_cp > 0)
		append_checkpoint();
	if (flush() < 0)
		return;		/* stays in this file; retried with the backlog */
	if (by_size) {
		alog_time_format(now_ms(), t);
		/* 2026-01-02T03:04:05.678Z -> 20260102T030405Z */
		snprintf(newname, sizeof(newname), "%s.%.4s%.2s%.2sT%.2s%.2s%.2sZ", R.name, t,
		    t + 5, t + 8, t + 11, t + 14, t + 17);
		/* never replace an earlier file of the log */
		for (i = 1; renameat2(AT_FDCWD, R.name, AT_FDCWD, newname, RENAME_NOREPLACE) < 0;
		    i++) {
			if (errno != EEXIST || i == 100) {
				log_err("event=audit-rotate-error file=%s error=\"%s\"", R.name,
				    strerror(errno));
				return;
			}
			snprintf(newname + strlen(R.name) + 17, sizeof(newname) - strlen(R.name) - 17,
			    "-%d", i);
		}
	}
	head_save();
	fd = name_open(&st, why, sizeof(why));
	if (fd >= 0 && st.st_dev == R.dev && st.st_ino == R.ino) {
		close(fd);
		return;		/* SIGHUP without rotation: the chain goes on here */
	}
	close(R.fd);
	R.fd = -1;
	append_open(reason);
	if (fd < 0) {
		note_problem("open", why);
		set_writable(0);
		return;
	}
	next_adopt(fd, &st);
	if (flush() < 0)
		return;
	log_info("event=audit-rotate reason=%s file=%s seq=%llu", reason, R.name,
	    (unsigned long long)R.chain.seq);
}

/* ---- clients ---- */

static void
slot_close(size_t i, const char *why)
{
	if (R.slots[i].fd < 0)
		return;
	if (why != NULL)
		log_err("event=audit-client-dropped slot=%zu reason=\"%s\"", i, why);
	close(R.slots[i].fd);
	R.slots[i].fd = -1;
	R.open_slots--;
}

/* Send without waiting long: a client that does not read its acks must not
 * stop the log for the others. */
static void
slot_send(size_t i, unsigned type, uint32_t id, const uint8_t *p, size_t len)
{
	uint8_t frame[64];
	struct pollfd pfd;
	struct iovec iov;
	struct msghdr msg;
	long n;

	if (R.slots[i].fd < 0 || (n = proc_msg_encode(frame, sizeof(frame), type, 0, id, p,
	    len)) < 0)
		return;
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = frame;
	iov.iov_len = (size_t)n;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	for (;;) {
		if (sendmsg(R.slots[i].fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
			return;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return;		/* EOF is seen when reading */
		pfd.fd = R.slots[i].fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, ACK_WAIT_MS) <= 0) {
			log_warn("event=audit-ack-dropped slot=%zu id=%u: the client does not read",
			    i, id);
			return;
		}
	}
}

static void
ack(size_t i, uint32_t id, int status, uint64_t seq)
{
	uint8_t buf[16];
	long n = recorder_ack_encode(buf, sizeof(buf), status, R.writable, seq);

	if (n > 0)
		slot_send(i, PROC_AUDIT_ACK, id, buf, (size_t)n);
}

static void
set_writable(int w)
{
	uint8_t b = (uint8_t)w;
	size_t i;

	if (R.writable == w)
		return;
	R.writable = w;
	if (w)
		log_info("event=audit-log-writable file=%s lost=%llu: records are written again",
		    R.name, (unsigned long long)R.lost);
	for (i = 0; i < R.nslots; i++)
		slot_send(i, PROC_AUDIT_STATE, 0, &b, 1);
}

/* The body as the log will hold it: schema-checked, pseudonymized, with
 * the recorder's own members of a start record. */
static int
body_prepare(int type, const uint8_t *p, size_t len, struct jsonw *out, char *err,
    size_t errlen)
{
	struct json *body = NULL, *m;

	if (json_parse((const char *)p, len, &body, err, errlen) < 0 ||
	    alog_body_check(type, body, 1, err, errlen) < 0) {
		json_free(&body);
		return -1;
	}
	if (R.pkey != NULL)
		alog_pseudonymize(type, body, R.pkey);
	jsonw_reset(out);
	jsonw_obj_open(out);
	for (m = body->first; m != NULL; m = m->next) {
		jsonw_key(out, m->key);
		jsonw_value(out, m);
	}
	if (type == ALOG_T_START) {
		jsonw_kbool(out, "pseudonymized", R.pkey != NULL);
		jsonw_kstr(out, "key", R.keyb64);
	}
	jsonw_obj_close(out);
	json_free(&body);
	return 0;
}

static void
serve(size_t i, const struct proc_msg *m, struct jsonw *body)
{
	const uint8_t *p;
	size_t len;
	uint64_t seq;
	int type, st;
	char err[300];

	if (m->type != PROC_AUDIT_REC || recorder_rec_decode(m->payload, m->len, &type, &p,
	    &len) < 0) {
		slot_close(i, "malformed message");
		return;
	}
	if (!alog_type_allowed(type, R.slots[i].origin)) {
		slot_close(i, "record type not allowed from this client");
		return;
	}
	if (body_prepare(type, p, len, body, err, sizeof(err)) < 0) {
		log_err("event=audit-record-refused slot=%zu type=%s reason=\"%s\"", i,
		    alog_type_name(type), err);
		ack(i, m->id, RECORDER_REFUSED, 0);
		return;
	}
	st = append(type, body->buf, body->len, &seq);
	if (st != RECORDER_WRITTEN) {
		ack(i, m->id, st, seq);
		return;
	}
	if (R.npend == R.cappend) {
		R.cappend = R.cappend ? R.cappend * 2 : 64;
		R.pend = xreallocarray(R.pend, R.cappend, sizeof(*R.pend));
	}
	R.pend[R.npend].slot = i;
	R.pend[R.npend].id = m->id;
	R.pend[R.npend++].seq = seq;
}

/* Take what the clients sent (at most READS_PER_ROUND each). */
static void
read_slots(const struct pollfd *pfd)
{
	static struct proc_msg m;
	struct jsonw body;
	size_t i;
	int k, rc;

	jsonw_init(&body, 0);
	for (i = 0; i < R.nslots; i++) {
		if (R.slots[i].fd < 0 || pfd[i].revents == 0)
			continue;
		for (k = 0; k < READS_PER_ROUND && R.slots[i].fd >= 0; k++) {
			rc = proc_recv(R.slots[i].fd, &m, NULL);
			if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (rc == 0) {
				slot_close(i, NULL);
				break;
			}
			if (rc < 0) {
				slot_close(i, errno == EPROTO ? proc_strerror(m.error) :
				    strerror(errno));
				break;
			}
			serve(i, &m, &body);
		}
	}
	jsonw_free(&body);
}

/* After a round: checkpoint when due, write, acknowledge. */
static void
commit(void)
{
	size_t i;
	int ok;

	if (R.since_cp >= R.cfg->audit_checkpoint_records || (R.since_cp > 0 &&
	    now_ms() - R.last_cp_ms >= (int64_t)R.cfg->audit_checkpoint_interval * 1000))
		append_checkpoint();
	ok = flush() == 0;
	if (ok && R.lost > 0) {
		struct jsonw b;
		char t[ALOG_TIME_LEN + 1];

		jsonw_init(&b, 0);
		jsonw_obj_open(&b);
		jsonw_kint(&b, "lost", (int64_t)R.lost);
		alog_time_format(R.lost_first, t);
		jsonw_kstr(&b, "first", t);
		alog_time_format(R.lost_last, t);
		jsonw_kstr(&b, "last", t);
		jsonw_obj_close(&b);
		R.writable = 1;		/* the gap record must not be lost itself */
		append_own(ALOG_T_GAP, &b);
		jsonw_free(&b);
		log_warn("event=audit-gap lost=%llu", (unsigned long long)R.lost);
		R.lost = 0;
		ok = flush() == 0;
		R.writable = 0;
	}
	set_writable(ok);
	for (i = 0; i < R.npend; i++)
		ack(R.pend[i].slot, R.pend[i].id, ok ? RECORDER_WRITTEN : RECORDER_QUEUED,
		    R.pend[i].seq);
	R.npend = 0;
	if (ok && R.cfg->audit_rotate_size > 0 && R.size >= R.cfg->audit_rotate_size)
		rotate("size", 1);
}

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_term = 1;
}

static int
poll_timeout(void)
{
	int64_t t = -1, due;

	if (!R.writable)
		t = RETRY_MS;
	if (R.since_cp > 0) {
		due = R.last_cp_ms + (int64_t)R.cfg->audit_checkpoint_interval * 1000 - now_ms();
		if (due < 0)
			due = 0;
		if (t < 0 || due < t)
			t = due;
	}
	return (int)t;
}

static void __attribute__((noreturn))
serve_loop(void)
{
	struct pollfd *pfd = xcalloc(R.nslots, sizeof(*pfd));
	struct timespec ts, *tsp;
	sigset_t none;
	size_t i;
	int t, rc;

	sigemptyset(&none);
	while (R.open_slots > 0 && !got_term) {
		for (i = 0; i < R.nslots; i++) {
			pfd[i].fd = R.slots[i].fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		/* wake up at least once per heartbeat interval (metrics.h) */
		metrics_beat();
		t = poll_timeout();
		if (t < 0 || t > (int)metrics_beat_interval())
			t = (int)metrics_beat_interval();
		ts.tv_sec = t / 1000;
		ts.tv_nsec = (long)(t % 1000) * 1000000;
		tsp = t < 0 ? NULL : &ts;
		/* signals are delivered only while waiting here */
		rc = ppoll(pfd, R.nslots, tsp, &none);
		if (rc < 0 && errno != EINTR)
			fatal("recorder: ppoll: %s", strerror(errno));
		if (got_hup) {
			got_hup = 0;
			rotate("sighup", 0);
		}
		if (rc > 0)
			read_slots(pfd);
		commit();
	}
	/* the last clients are gone, or SIGTERM: take what is still waiting,
	 * sign and close */
	for (i = 0; i < R.nslots; i++) {
		pfd[i].fd = R.slots[i].fd;
		pfd[i].revents = POLLIN;
	}
	read_slots(pfd);
	free(pfd);
	if (R.since_cp > 0)
		append_checkpoint();
	rc = flush();
	head_save();
	if (rc < 0 || R.lost > 0)
		log_err("event=audit-log-stop file=%s unwritten=%zu lost=%llu: records could not be "
		    "written", R.name, R.blen, (unsigned long long)R.lost);
	log_info("event=recorder-stopped seq=%llu", (unsigned long long)R.chain.seq);
	_exit(rc < 0 || R.lost > 0 ? 1 : 0);
}

/* ---- start-up ---- */

/* Everything that needs privileges or files outside the log directory. */
static int
child_load(const struct config *cfg, char *dir, char *err, size_t errlen)
{
	const char *slash = strrchr(cfg->audit_log, '/');

	snprintf(R.name, sizeof(R.name), "%s", slash + 1);
	snprintf(dir, 4096, "%.*s", slash == cfg->audit_log ? 1 : (int)(slash - cfg->audit_log),
	    cfg->audit_log);
	if (alog_key_load(cfg->audit_signing_key, &R.key, err, errlen) < 0)
		return -1;
	alog_key_b64(R.key.pk, R.keyb64, sizeof(R.keyb64));
	if (cfg->audit_pseudonymize &&
	    (R.pkey = alog_pseudo_key_load(cfg->audit_pseudonymize_key, err, errlen)) == NULL)
		return -1;
	return 0;
}

/* fds: the client slots' sockets, then the parent's (proc_spawn). */
static void
child_main(void *arg, int ready_fd, const int *fds, size_t nfds)
{
	const struct config *cfg = arg;
	struct sigaction sa;
	sigset_t set;
	char dir[4096], err[1024], ready[160];
	size_t i, nslots = nfds - 1;
	int root;

	metrics_attach(METRICS_SLICE_RECORDER);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGXFSZ, SIG_IGN);	/* a file size limit is an error to handle, not death */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	R.cfg = cfg;
	R.dirfd = -1;
	R.writable = 1;
	R.last_cp_ms = now_ms();
	jsonw_init(&R.w, ALOG_LINE_MAX + 1);
	if (child_load(cfg, dir, err, sizeof(err)) < 0)
		proc_fail(ready_fd, err);
	/* as root: chroot to the log's directory as [server] recorder-user;
	 * the files made from now on belong to that user */
	sandbox_nodump();
	root = geteuid() == 0;
	if (sandbox_drop_datadir(cfg->recorder_user, dir, err, sizeof(err)) < 0)
		proc_fail(ready_fd, err);
	if (!root && chdir(dir) < 0) {
		snprintf(err, sizeof(err), "audit log directory %.600s: %s", dir, strerror(errno));
		proc_fail(ready_fd, err);
	}
	/* the directory itself, for dir_sync(): opened now, before the filter */
	if ((R.dirfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, sizeof(err), "audit log directory %.600s: %s", dir, strerror(errno));
		proc_fail(ready_fd, err);
	}
	if (log_open(err, sizeof(err)) < 0)
		proc_fail(ready_fd, err);
	if (flush() < 0) {
		snprintf(err, sizeof(err), "audit log %.600s/%.200s cannot be written: %s", dir, R.name,
		    strerror(errno));
		proc_fail(ready_fd, err);
	}
	R.slots = xcalloc(nfds, sizeof(*R.slots));
	for (i = 0; i < nfds; i++) {
		R.slots[i].fd = fds[i];
		R.slots[i].origin = i < nslots ? ALOG_FROM_FRONT : ALOG_FROM_PARENT;
		(void)fcntl(R.slots[i].fd, F_SETFL, fcntl(R.slots[i].fd, F_GETFL) | O_NONBLOCK);
	}
	R.nslots = R.open_slots = nfds;
	if (sandbox_seccomp("recorder", err, sizeof(err)) < 0)
		proc_fail(ready_fd, err);
	snprintf(ready, sizeof(ready), "audit log %s at record %llu", cfg->audit_log,
	    (unsigned long long)R.chain.seq);
	proc_ready(ready_fd, (uint32_t)R.chain.seq, ready, NULL, 0);
	log_info("event=recorder-ready file=%s seq=%llu key=%s pseudonymize=%s", cfg->audit_log,
	    (unsigned long long)R.chain.seq, R.keyb64, R.pkey ? "yes" : "no");
	serve_loop();
}

pid_t
recorder_spawn(const struct config *cfg, size_t nslots, int timeout, int *client_fds_r,
    int *parent_fd_r, char *err, size_t errlen)
{
	static struct proc_msg m;
	int fds[RECORDER_SLOTS_MAX + 1];
	struct proc_role role = {
		.name = "recorder",
		.loading = "opening the audit log",
		.nfds = nslots + 1,
		.main = child_main,
		.arg = (void *)(uintptr_t)cfg,
	};
	pid_t pid;

	if (nslots == 0 || nslots > RECORDER_SLOTS_MAX) {
		snprintf(err, errlen, "recorder: %zu client slots (1..%d)", nslots,
		    RECORDER_SLOTS_MAX);
		return -1;
	}
	if ((pid = proc_spawn(&role, timeout, fds, &m, err, errlen)) < 0)
		return -1;
	memcpy(client_fds_r, fds, nslots * sizeof(int));
	*parent_fd_r = fds[nslots];
	return pid;
}
