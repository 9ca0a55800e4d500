/* subproxy.c — command line, start-up and the main loop. */
#include "audit.h"
#include "auditlog.h"
#include "auditlog_cli.h"
#include "auditrec.h"
#include "config.h"
#include "log.h"
#include "passwd.h"
#include "sandbox.h"
#include "front.h"
#include "keeper.h"
#include "metrics.h"
#include "sdnotify.h"
#include "recorder.h"
#include "signer.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <sodium.h>

#define MAX_OVERRIDES 64

#ifdef SUBPROXY_SANITIZE
/* LeakSanitizer's exit-time check stops the world with clone and ptrace,
 * which no sandboxed role may use: sanitized daemons are checked for memory
 * errors, the (unsandboxed) unit tests for leaks.  A report from a
 * sandboxed role must not need a forbidden call either: no isatty ioctl
 * (color=never), no symbolizer process (symbolize=0: frames are printed as
 * module+offset, which tests/integration/conftest.py symbolizes with
 * addr2line); the module list is read before the sandbox (sandbox.c). */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "detect_leaks=0:color=never:symbolize=0";
}

const char *__ubsan_default_options(void);
const char *
__ubsan_default_options(void)
{
	return "color=never:symbolize=0:print_stacktrace=1";
}
#endif
/* File descriptors front may need at once: per session its client
 * connection, its relay connection and its message spool (a memfd); for
 * DNS, libunbound's query sockets; for the rest, stdio, the listeners, the
 * sockets to signer and keeper and the event loop's own.  Documented in
 * subproxy.conf(5) under [limits] connections. */
#define NOFILE_PER_SESSION   3
#define NOFILE_DNS           128
#define NOFILE_BASE          64
#define SIGNER_START_TIMEOUT 30   /* seconds to load and test the DKIM keys */
#define RECORDER_START_TIMEOUT 30 /* seconds to load the audit key and open the log */
#define RECORD_TIMEOUT_MS 10000   /* the parent waits this long for its record's ack */
#define MAX_FILES 1024            /* --verify-log / --report files */
#define KEEPER_START_TIMEOUT 30   /* seconds to load the TLS key and passwords */
#define STOP_MARGIN          15   /* seconds past [server] shutdown-timeout before SIGKILL */
#define STATUS_INTERVAL      2000 /* ms between STATUS= updates (when changed) */
#define READY_POLL           50   /* ms between looks at front's "serving" flag */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: subproxy -c FILE [-o SECTION[.NAME].KEY=VALUE]... [-d]\n"
	    "       subproxy -c FILE [-o ...] --check [--json]\n"
	    "       subproxy -c FILE [-o ...] --dns-records\n"
	    "       subproxy --verify-log [--public-key FILE]... FILE...\n"
	    "       subproxy --report [--public-key FILE]... [--since T] [--until T]\n"
	    "                [--format text|json|html] FILE...\n"
	    "       subproxy --hash-password < password\n"
	    "       subproxy --version | --help\n"
	    "\n"
	    "  -c, --config FILE     configuration file (see subproxy.conf(5))\n"
	    "  -o SECTION.KEY=VALUE  override a key; SECTION.NAME.KEY=VALUE for named sections\n"
	    "  -d, --debug           log debug lines\n"
	    "      --check           run the self-audit, print a report, exit 0 (pass) or 1\n"
	    "      --json            with --check: one JSON object (doc/audit.schema.json)\n"
	    "      --dns-records     print the DNS records this installation needs\n"
	    "      --verify-log      check the audit log FILEs (rotated files in any order): exit\n"
	    "                        0 intact, 1 not (the first bad record is named)\n"
	    "      --public-key FILE the audit key's public half; checkpoints must be signed by it\n"
	    "      --report          verify, then print a compliance report of the FILEs\n"
	    "      --since T, --until T  the report's period (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)\n"
	    "      --format F        text (default), json or html (one self-contained file)\n"
	    "      --hash-password   read a password on stdin, print an {ARGON2ID} hash for the\n"
	    "                        passwd file (same format as doveadm pw -s ARGON2ID)\n"
	    "      --version         print the version\n"
	    "      --help            this text\n"
	    "\n"
	    "subproxy runs in the foreground and logs to stderr.  SIGTERM stops it cleanly.\n");
}

static int
hash_password(void)
{
	char pw[4096], out[256];
	size_t n;

	n = fread(pw, 1, sizeof(pw) - 1, stdin);
	if (ferror(stdin)) {
		fprintf(stderr, "subproxy: cannot read the password from stdin\n");
		return 1;
	}
	/* one line: strip the final newline */
	while (n > 0 && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
		n--;
	if (n == 0) {
		fprintf(stderr, "subproxy: empty password on stdin\n");
		return 1;
	}
	if (passwd_hash(pw, n, out, sizeof(out)) < 0) {
		sodium_memzero(pw, sizeof(pw));
		fprintf(stderr, "subproxy: hashing failed (out of memory?)\n");
		return 1;
	}
	sodium_memzero(pw, sizeof(pw));
	printf("%s\n", out);
	return 0;
}

/* Raise the soft descriptor limit to what [limits] connections needs (the
 * children inherit it), or refuse when the hard limit is too low. */
static int
raise_nofile(const struct config *cfg, char *err, size_t errlen)
{
	unsigned long long need = NOFILE_PER_SESSION * cfg->limits.connections + NOFILE_DNS +
	    NOFILE_BASE + cfg->nlistens;
	struct rlimit rl;
	rlim_t old;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		snprintf(err, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return -1;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		snprintf(err, errlen, "[limits] connections = %llu needs %llu file descriptors, but "
		    "the hard limit on open files (RLIMIT_NOFILE) is %llu; raise it to at least %llu "
		    "(LimitNOFILE=%llu in the systemd unit, or ulimit -n %llu as root before "
		    "starting) or lower [limits] connections", (unsigned long long)
		    cfg->limits.connections, need, (unsigned long long)rl.rlim_max, need, need, need);
		return -1;
	}
	old = rl.rlim_cur;
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		snprintf(err, errlen, "cannot raise the limit on open files from %llu to %llu: %s",
		    (unsigned long long)old, need, strerror(errno));
		return -1;
	}
	log_info("event=nofile-raised from=%llu to=%llu connections=%llu", (unsigned long long)old,
	    need, (unsigned long long)cfg->limits.connections);
	return 0;
}

static int
bind_listener(const struct config_listen *l, char *err, size_t errlen)
{
	int fd, one = 1;

	fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "[listen \"%s\"] socket: %s", l->name, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l->addr.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) != 0) {
		snprintf(err, errlen, "[listen \"%s\"] cannot bind %s: %s%s", l->name, l->address,
		    strerror(errno), errno == EACCES ? " (ports below 1024 need root)" :
		    errno == EADDRINUSE ? " (another process listens there)" : "");
		close(fd);
		return -1;
	}
	if (listen(fd, 511) != 0) {
		snprintf(err, errlen, "[listen \"%s\"] listen: %s", l->name, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* The [metrics] socket: TCP like a listener, or a unix socket (a stale
 * socket file nobody listens on is replaced; mode 0660). */
static int
bind_metrics(const struct config *cfg, char *err, size_t errlen)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)&cfg->metrics_addr;
	struct config_listen l;
	struct stat st;
	int fd;

	if (cfg->metrics_addr.ss_family != AF_UNIX) {
		memset(&l, 0, sizeof(l));
		l.name = "metrics";
		l.address = cfg->metrics_address;
		l.addr = cfg->metrics_addr;
		l.addrlen = cfg->metrics_addrlen;
		return bind_listener(&l, err, errlen);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "[metrics] socket: %s", strerror(errno));
		return -1;
	}
	if (lstat(sun->sun_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) < 0 && errno == ECONNREFUSED)
		(void)unlink(sun->sun_path);
	if (bind(fd, (const struct sockaddr *)sun, sizeof(*sun)) != 0 ||
	    chmod(sun->sun_path, 0660) != 0 || listen(fd, 16) != 0) {
		snprintf(err, errlen, "[metrics] cannot listen on %s: %s%s", cfg->metrics_address,
		    strerror(errno), errno == EADDRINUSE ? " (another process listens there, or "
		    "a file of that name is in the way)" : "");
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- the parent: watches its children and fails closed ---- */

struct child {
	const char *name;
	pid_t pid;
	size_t slice;           /* its metrics slice (heartbeat, serving) */
	int exited;
	int status;
	int hup;		/* SIGHUP is passed on to it (front, recorder) */
};

/* The parent's socket to the recorder ([audit] log), -1 without one. */
static int recorder_fd = -1;

/* The audit log's start record.  0, or -1 when it was not written. */
static int
record_start(const struct config *cfg, const struct audit_baseline *bl, int failed)
{
	size_t len;
	char *body;
	int st;

	if (recorder_fd < 0)
		return 0;
	body = auditrec_start_body(cfg, bl, failed, &len);
	st = recorder_send_sync(recorder_fd, ALOG_T_START, body, len, RECORD_TIMEOUT_MS);
	free(body);
	if (st != RECORDER_WRITTEN)
		log_err("event=audit-start-record status=%s", recorder_status_name(st));
	return st == RECORDER_WRITTEN ? 0 : -1;
}

static void record_stop(const char *reason, const char *detail, int status);

/* A start refused after the recorder began: record it, let the recorder
 * sign and close the log (it would die with this process otherwise). */
static void
refused(pid_t recorder_pid, int front_fd, const char *why)
{
	int status, tries;

	if (recorder_pid <= 0)
		return;
	record_stop("refused", why, 1);
	if (front_fd >= 0)
		close(front_fd);
	for (tries = 0; tries < 200; tries++) {
		if (waitpid(recorder_pid, &status, WNOHANG) != 0)
			return;
		usleep(50000);
	}
	kill(recorder_pid, SIGKILL);
	(void)waitpid(recorder_pid, &status, 0);
}

/* The audit log's stop record; then the parent's socket to the recorder is
 * closed (the recorder signs and exits once front's is closed too). */
static void
record_stop(const char *reason, const char *detail, int status)
{
	size_t len;
	char *body;
	int st;

	if (recorder_fd < 0)
		return;
	body = auditrec_stop_body(reason, detail, status, &len);
	st = recorder_send_sync(recorder_fd, ALOG_T_STOP, body, len, RECORD_TIMEOUT_MS);
	free(body);
	if (st != RECORDER_WRITTEN)
		log_err("event=audit-stop-record status=%s: the stop was not recorded",
		    recorder_status_name(st));
	close(recorder_fd);
	recorder_fd = -1;
}

static const char *
describe_status(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	return buf;
}

/* How telling an exit is: killed by a signal 2, failure 1, clean 0. */
static int
severity(int status)
{
	if (WIFSIGNALED(status))
		return 2;
	return WEXITSTATUS(status) != 0 ? 1 : 0;
}

static void
kill_all(struct child *kids, size_t n, int sig)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (kids[i].pid > 0 && !kids[i].exited)
			kill(kids[i].pid, sig);
}

/* Reap what has exited; returns the index of a child that exited, or -1. */
static int
reap(struct child *kids, size_t n, int block)
{
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, block ? 0 : WNOHANG)) < 0 && errno == EINTR)
		;
	if (pid <= 0)
		return -1;
	for (i = 0; i < n; i++)
		if (kids[i].pid == pid) {
			kids[i].exited = 1;
			kids[i].status = status;
			metrics_fold(kids[i].slice);
			return (int)i;
		}
	return -1;
}

static int
all_exited(const struct child *kids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!kids[i].exited)
			return 0;
	return 1;
}

/* Wait for every child, up to `seconds`, then SIGKILL the rest. */
static void
wait_all(struct child *kids, size_t n, int seconds)
{
	int tries;

	for (tries = 0; tries < seconds * 20 && !all_exited(kids, n); tries++) {
		if (reap(kids, n, 0) < 0)
			usleep(50000);
	}
	if (!all_exited(kids, n)) {
		kill_all(kids, n, SIGKILL);
		while (!all_exited(kids, n) && reap(kids, n, 1) >= 0)
			;
	}
}

/* What the parent tells the service manager (sdnotify.h). */
struct notify {
	int ready;              /* READY=1 sent */
	uint64_t wd_ms;         /* watchdog period, 0 none */
	uint64_t next_wd, next_status;
	int wd_withheld;        /* a child's loop did not beat in time */
	char status[160];
};

/* STATUS=: one line, sent when it changed. */
static void
notify_status(struct notify *nt, int stopping)
{
	struct metrics_snapshot *snap = xmalloc(sizeof(*snap));
	char line[160];

	metrics_snapshot(snap);
	snprintf(line, sizeof(line), "%s: %lld sessions, %llu relayed, %llu refused",
	    stopping ? "stopping" : "serving", (long long)snap->g[MG_SESSIONS_OPEN],
	    (unsigned long long)metrics_snap_family(snap, MF_RELAYED),
	    (unsigned long long)metrics_snap_family(snap, MF_REFUSED));
	free(snap);
	if (strcmp(line, nt->status) != 0) {
		snprintf(nt->status, sizeof(nt->status), "%s", line);
		sdnotify_send("STATUS=%s", line);
	}
}

/* WATCHDOG=1 while every child's loop beats within the period. */
static void
notify_watchdog(struct notify *nt, const struct child *kids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t age;

		if (kids[i].exited)
			continue;
		age = metrics_beat_age(kids[i].slice);
		if (age >= nt->wd_ms) {
			if (!nt->wd_withheld)
				log_err("event=watchdog process=%s pid=%ld last-beat=%s%llums: "
				    "not notifying the service manager", kids[i].name,
				    (long)kids[i].pid, age == UINT64_MAX ? "never " : "",
				    age == UINT64_MAX ? 0ULL : (unsigned long long)age);
			nt->wd_withheld = 1;
			return;
		}
	}
	if (nt->wd_withheld)
		log_info("event=watchdog every process beats again");
	nt->wd_withheld = 0;
	sdnotify_send("WATCHDOG=1");
}

/* Readiness, status and watchdog; returns the ms until the next duty. */
static uint64_t
notify_tick(struct notify *nt, const struct child *kids, size_t n, size_t front, int stopping)
{
	uint64_t now = metrics_now_ms(), wait = STATUS_INTERVAL;

	if (!nt->ready && !stopping) {
		if (!metrics_serving(kids[front].slice))
			return READY_POLL;
		nt->ready = 1;
		notify_status(nt, 0);
		sdnotify_send("READY=1\nSTATUS=%s", nt->status);
		log_info("event=ready%s", sdnotify_enabled() ? " notified=yes" : "");
		nt->next_status = now + STATUS_INTERVAL;
		nt->next_wd = now;
	}
	if (now >= nt->next_status) {
		notify_status(nt, stopping);
		nt->next_status = now + STATUS_INTERVAL;
	}
	wait = nt->next_status - now;
	if (nt->wd_ms > 0 && nt->ready) {
		if (now >= nt->next_wd) {
			notify_watchdog(nt, kids, n);
			nt->next_wd = now + nt->wd_ms / 2;
		}
		if (nt->next_wd - now < wait)
			wait = nt->next_wd - now;
	}
	return wait;
}

/* Runs until the front process ends.  SIGTERM/SIGINT are passed to front
 * (which finishes open transactions within [server] shutdown-timeout; the
 * parent kills what is left STOP_MARGIN seconds later); SIGHUP reopens the
 * logs here and in front.  Any child ending on its own stops everything:
 * exit 1.  Meanwhile it speaks to the service manager (READY=1 once front
 * serves, STATUS=, WATCHDOG=1, STOPPING=1). */
static int
parent_loop(struct child *kids, size_t n, size_t front, uint64_t stop_ms)
{
	struct notify nt;
	sigset_t set;
	siginfo_t si;
	int stopping = 0, sig, rc = 0;
	uint64_t deadline = 0, wait;
	char why[96], detail[160];
	size_t k;

	memset(&nt, 0, sizeof(nt));
	nt.wd_ms = sdnotify_watchdog_usec() / 1000;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	for (;;) {
		struct timespec ts;
		int i;

		while ((i = reap(kids, n, 0)) >= 0) {
			int clean = WIFEXITED(kids[i].status) && WEXITSTATUS(kids[i].status) == 0;

			if (stopping) {
				/* front ends first; the others follow when their sockets
				 * close */
				if (!clean) {
					log_err("event=child-failed process=%s pid=%ld %s",
					    kids[i].name, (long)kids[i].pid,
					    describe_status(kids[i].status, why, sizeof(why)));
					rc = 1;
				}
				if (kids[front].exited) {
					record_stop("signal", NULL, rc);
					wait_all(kids, n, 10);
					return rc;
				}
				continue;
			}
			/* one death takes others with it (their sockets close): give
			 * them a moment and name the most telling one -- killed by a
			 * signal, then a failure status, then a clean exit */
			{
				int tries, best = i;

				for (tries = 0; tries < 4; tries++) {
					usleep(25000);
					while (reap(kids, n, 0) >= 0)
						;
				}
				for (k = 0; k < n; k++) {
					if (!kids[k].exited)
						continue;
					if (severity(kids[k].status) > severity(kids[best].status))
						best = (int)k;
				}
				log_err("event=child-died process=%s pid=%ld %s: stopping the service "
				    "(fail closed)", kids[best].name, (long)kids[best].pid,
				    describe_status(kids[best].status, why, sizeof(why)));
				for (k = 0; k < n; k++)
					if (kids[k].exited && (int)k != best)
						log_info("event=child-ended process=%s pid=%ld %s",
						    kids[k].name, (long)kids[k].pid,
						    describe_status(kids[k].status, why, sizeof(why)));
				snprintf(detail, sizeof(detail), "process=%s %s", kids[best].name,
				    describe_status(kids[best].status, why, sizeof(why)));
				record_stop("child-died", detail, 1);
			}
			sdnotify_send("STOPPING=1\nSTATUS=stopping: a process died");
			kill_all(kids, n, SIGTERM);
			wait_all(kids, n, 35);
			return 1;
		}
		if (stopping && metrics_now_ms() >= deadline) {
			log_err("event=stop-timeout: processes still running %llu s after SIGTERM; "
			    "killing them", (unsigned long long)(stop_ms / 1000));
			kill_all(kids, n, SIGKILL);
			wait_all(kids, n, 5);
			return 1;
		}
		wait = notify_tick(&nt, kids, n, front, stopping);
		ts.tv_sec = (time_t)(wait / 1000);
		ts.tv_nsec = (long)(wait % 1000) * 1000000L;
		sig = sigtimedwait(&set, &si, &ts);
		if (sig < 0)
			continue;
		switch (sig) {
		case SIGHUP:
			log_info("event=sighup: reopening logs");
			log_reopen();
			for (k = 0; k < n; k++)
				if (kids[k].hup && !kids[k].exited)
					kill(kids[k].pid, SIGHUP);
			break;
		case SIGTERM:
		case SIGINT:
			if (stopping)
				break;
			log_info("event=signal signal=%s: stopping", sig == SIGTERM ? "TERM" : "INT");
			stopping = 1;
			deadline = metrics_now_ms() + stop_ms;
			sdnotify_send("STOPPING=1");
			nt.next_status = 0;
			if (!kids[front].exited)
				kill(kids[front].pid, SIGTERM);
			break;
		default:
			break;
		}
	}
}

/* Open the service manager's notify socket (sdnotify.h) and map the
 * metrics block; the writers beat four times per watchdog period (at most
 * once a second). */
static int
ops_start(char *err, size_t errlen)
{
	uint64_t wd_ms;
	unsigned beat_ms = 1000;

	if (sdnotify_open(err, errlen) < 0)
		return -1;
	wd_ms = sdnotify_watchdog_usec() / 1000;
	if (wd_ms > 0) {
		beat_ms = (unsigned)(wd_ms / 4 < 1000 ? wd_ms / 4 : 1000);
		if (beat_ms < 20)
			beat_ms = 20;
		log_info("event=watchdog period=%llums beat=%ums", (unsigned long long)wd_ms,
		    beat_ms);
	}
	if (metrics_init(METRICS_SLICE_FRONT + 1, beat_ms) < 0) {
		snprintf(err, errlen, "cannot map the metrics block: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "debug", no_argument, NULL, 'd' },
		{ "hash-password", no_argument, NULL, 'H' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "check", no_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'J' },
		{ "dns-records", no_argument, NULL, 'R' },
		{ "verify-log", no_argument, NULL, 'L' },
		{ "report", no_argument, NULL, 'P' },
		{ "public-key", required_argument, NULL, 'K' },
		{ "since", required_argument, NULL, 'S' },
		{ "until", required_argument, NULL, 'U' },
		{ "format", required_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 }
	};
	char *pubkeys[MAX_OVERRIDES];
	struct alog_cli lc;
	int verify = 0, report = 0;
	struct config_override ov[MAX_OVERRIDES];
	size_t nov = 0, i;
	const char *cfgfile = NULL;
	struct config *cfg;
	struct keeper_fds kfds;
	struct audit_baseline baseline;
	struct front_opts fo;
	int *fds, ch, debug = 0, signer_fd = -1, rc, check = 0, json = 0, dnsrec = 0;
	int rec_front_fd = -1;
	pid_t signer_pid, keeper_pid, recorder_pid = -1;
	char err[8192];

	memset(&lc, 0, sizeof(lc));
	lc.pubkeys = pubkeys;

	while ((ch = getopt_long(argc, argv, "c:o:dh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cfgfile = optarg;
			break;
		case 'o':
			if (nov == MAX_OVERRIDES) {
				fprintf(stderr, "subproxy: too many -o options (at most %d)\n",
				    MAX_OVERRIDES);
				return 2;
			}
			if (config_override_parse(optarg, &ov[nov], err, sizeof(err)) < 0) {
				fprintf(stderr, "subproxy: %s\n", err);
				return 2;
			}
			nov++;
			break;
		case 'd':
			debug = 1;
			break;
		case 'H':
			if (sodium_init() < 0)
				return 1;
			return hash_password();
		case 'V':
			printf("subproxy %s\n", SUBPROXY_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case 'C':
			check = 1;
			break;
		case 'J':
			json = 1;
			break;
		case 'R':
			dnsrec = 1;
			break;
		case 'L':
			verify = 1;
			break;
		case 'P':
			report = 1;
			break;
		case 'K':
			if (lc.npubkeys == MAX_OVERRIDES) {
				fprintf(stderr, "subproxy: too many --public-key options\n");
				return 2;
			}
			pubkeys[lc.npubkeys++] = optarg;
			break;
		case 'S':
		case 'U':
			if (alog_time_parse(optarg, ch == 'S' ? &lc.since : &lc.until) < 0) {
				fprintf(stderr, "subproxy: --%s %s: expected YYYY-MM-DD or "
				    "YYYY-MM-DDTHH:MM:SSZ\n", ch == 'S' ? "since" : "until", optarg);
				return 2;
			}
			break;
		case 'F':
			if (strcmp(optarg, "text") == 0)
				lc.format = ALOG_FMT_TEXT;
			else if (strcmp(optarg, "json") == 0)
				lc.format = ALOG_FMT_JSON;
			else if (strcmp(optarg, "html") == 0)
				lc.format = ALOG_FMT_HTML;
			else {
				fprintf(stderr, "subproxy: --format takes text, json or html\n");
				return 2;
			}
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (verify || report) {
		/* reading an audit log needs no configuration */
		if (verify == report || optind == argc || cfgfile != NULL || nov > 0 || check ||
		    dnsrec || json || (verify && (lc.since || lc.until || lc.format)) ||
		    argc - optind > MAX_FILES) {
			usage(stderr);
			return 2;
		}
		if (sodium_init() < 0)
			return 1;
		lc.files = argv + optind;
		lc.nfiles = (size_t)(argc - optind);
		return verify ? alog_cli_verify(&lc) : alog_cli_report(&lc);
	}
	if (lc.npubkeys > 0 || lc.since || lc.until || lc.format) {
		usage(stderr);
		return 2;
	}
	if (optind != argc || cfgfile == NULL || (json && !check) || (check && dnsrec)) {
		usage(stderr);
		return 2;
	}
	if (check || dnsrec) {
		/* the checks read the private keys: no core dumps, no ptrace */
		(void)prctl(PR_SET_DUMPABLE, 0);
		log_init("subproxy", debug ? LOG_LVL_DEBUG : LOG_LVL_WARN);
		if (sodium_init() < 0)
			return 1;
		rc = audit_cli(cfgfile, ov, nov, json, dnsrec);
		for (i = 0; i < nov; i++)
			config_override_clear(&ov[i]);
		return rc;
	}
	log_init("subproxy", debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	/* glibc reads /etc/localtime on the first time conversion; do it now,
	 * while every process (they are forked from here) may still open files */
	tzset();
	if (sodium_init() < 0)
		fatal("libsodium initialisation failed");
	(void)prctl(PR_SET_DUMPABLE, 0);

	cfg = config_load(cfgfile, ov, nov, err, sizeof(err));
	for (i = 0; i < nov; i++)
		config_override_clear(&ov[i]);
	if (cfg == NULL) {
		log_err("%s", err);
		return 2;
	}
	if (raise_nofile(cfg, err, sizeof(err)) < 0) {
		log_err("refusing to start: %s", err);
		config_free(&cfg);
		return 1;
	}
	/* the service manager's socket and the metrics block, before anything
	 * is forked: every process inherits the block and beats in it */
	if (ops_start(err, sizeof(err)) < 0) {
		log_err("refusing to start: %s", err);
		config_free(&cfg);
		return 1;
	}
	/* the recorder first: it loads the audit key and opens the log itself,
	 * and so a start refused below is in the log too */
	if (cfg->audit_log != NULL && (recorder_pid = recorder_spawn(cfg, 1,
	    RECORDER_START_TIMEOUT, &rec_front_fd, &recorder_fd, err, sizeof(err))) < 0) {
		log_err("refusing to start: %s", err);
		config_free(&cfg);
		return 1;
	}
	/* the same audit as --check, in a child process: refuse to start on any
	 * failed required check */
	rc = audit_startup(cfg, &baseline, err, sizeof(err));
	if (record_start(cfg, &baseline, rc < 0) < 0 && rc == 0) {
		snprintf(err, sizeof(err), "audit: the start record cannot be written to %s",
		    cfg->audit_log);
		rc = -2;
	}
	if (rc < 0) {
		char *line, *save = NULL;

		for (line = strtok_r(err, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			log_err("refusing to start: %s%s", rc == -1 ? "self-audit: " : "", line);
		if (rc == -1)
			log_err("refusing to start: run subproxy -c %s --check for the full "
			    "report", cfgfile);
		refused(recorder_pid, rec_front_fd, rc == -1 ? "self-audit failed" : err);
		audit_baseline_clear(&baseline);
		config_free(&cfg);
		return 1;
	}
	/* the signer is forked before anything secret is loaded here, and loads
	 * the DKIM keys itself: this process never holds them */
	if ((signer_pid = signer_spawn(cfg, 1, SIGNER_START_TIMEOUT, &signer_fd, err,
	    sizeof(err))) < 0) {
		log_err("refusing to start: %s", err);
		refused(recorder_pid, rec_front_fd, err);
		return 1;
	}
	/* the keeper alone loads the TLS private key and the password hashes */
	if ((keeper_pid = keeper_spawn(cfg, 1, KEEPER_START_TIMEOUT, &kfds, err,
	    sizeof(err))) < 0) {
		log_err("refusing to start: %s", err);
		kill(signer_pid, SIGKILL);
		refused(recorder_pid, rec_front_fd, err);
		return 1;
	}
	for (i = 0; i < baseline.nchecks; i++)
		metrics_check_add(baseline.checks[i].id, baseline.checks[i].ok);
	fds = xcalloc(cfg->nlistens, sizeof(*fds));
	for (i = 0; i < cfg->nlistens; i++) {
		if ((fds[i] = bind_listener(&cfg->listens[i], err, sizeof(err))) < 0) {
			log_err("refusing to start: %s", err);
			refused(recorder_pid, rec_front_fd, err);
			return 1;
		}
	}
	memset(&fo, 0, sizeof(fo));
	fo.worker = 0;
	fo.generation = 1;
	fo.mslice = METRICS_SLICE_FRONT;
	fo.cslice = 0;
	fo.audit = &baseline;
	fo.metrics_fd = -1;
	fo.recorder_fd = rec_front_fd;
	if (cfg->metrics_address != NULL &&
	    (fo.metrics_fd = bind_metrics(cfg, err, sizeof(err))) < 0) {
		log_err("refusing to start: %s", err);
		return 1;
	}
	/* front is forked with the listening sockets and the signer socket;
	 * the parent keeps nothing it does not need */
	{
		struct child kids[4];
		size_t nkids = 3;
		sigset_t set;
		pid_t pid;

		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGHUP);
		sigaddset(&set, SIGCHLD);
		sigprocmask(SIG_BLOCK, &set, NULL);
		memset(kids, 0, sizeof(kids));
		kids[0].name = "signer";
		kids[0].pid = signer_pid;
		kids[0].slice = METRICS_SLICE_SIGNER;
		kids[1].name = "keeper";
		kids[1].pid = keeper_pid;
		kids[1].slice = METRICS_SLICE_KEEPER;
		kids[2].name = "front";
		kids[2].slice = fo.mslice;
		kids[2].hup = 1;
		if (recorder_pid > 0) {
			kids[3].name = "recorder";
			kids[3].pid = recorder_pid;
			kids[3].slice = METRICS_SLICE_RECORDER;
			kids[3].hup = 1;
			nkids = 4;
		}
		tls_tickets_init();     /* one ticket key for every front worker (tls.h) */
		fflush(NULL);
		if ((pid = fork()) < 0)
			fatal("fork: %s", strerror(errno));
		if (pid == 0) {
			/* TERM/INT/HUP stay blocked until front's handlers are
			 * installed: a stop requested during its start-up is then
			 * handled, not fatal */
			if (recorder_fd >= 0)
				close(recorder_fd);
			front_main(cfg, fds, signer_fd, &kfds, &fo);
		}
		kids[2].pid = pid;
		close(signer_fd);
		if (rec_front_fd >= 0)
			close(rec_front_fd);
		keeper_fds_close(&kfds);
		for (i = 0; i < cfg->nlistens; i++)
			close(fds[i]);
		if (fo.metrics_fd >= 0)
			close(fo.metrics_fd);
		if (sandbox_seccomp("parent", err, sizeof(err)) < 0) {
			log_err("refusing to start: %s", err);
			kill(pid, SIGKILL);
			kill(signer_pid, SIGKILL);
			kill(keeper_pid, SIGKILL);
			refused(recorder_pid, -1, err);
			return 1;
		}
		log_info("event=parent-ready signer=%ld front=%ld recorder=%ld", (long)signer_pid,
		    (long)pid, (long)recorder_pid);
		rc = parent_loop(kids, nkids, 2, (cfg->shutdown_timeout + STOP_MARGIN) * 1000);
	}
	log_info("event=stopped status=%d", rc);
	audit_baseline_clear(&baseline);
	sdnotify_close();
	config_free(&cfg);
	free(fds);
	return rc;
}
