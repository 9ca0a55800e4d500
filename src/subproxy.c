/* subproxy.c — command line, start-up and the main loop. */
#include "audit.h"
#include "auditlog.h"
#include "auditlog_cli.h"
#include "auditrec.h"
#include "config.h"
#include "connlimit.h"
#include "limiter.h"
#include "log.h"
#include "nofile.h"
#include "passwd.h"
#include "sandbox.h"
#include "metrics.h"
#include "sdnotify.h"
#include "recorder.h"
#include "supervisor.h"
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
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <sodium.h>

#define MAX_OVERRIDES 64

#ifdef SUBPROXY_SANITIZE
/* LeakSanitizer's exit-time check stops the world with clone and ptrace,
 * which no sandboxed role may use: sanitized daemons are checked for memory
 * errors, the (unsandboxed) unit tests for leaks. */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "detect_leaks=0";
}
#endif
#define RECORDER_START_TIMEOUT 30 /* seconds to load the audit key and open the log */
#define MAX_FILES 1024            /* --verify-log / --report files */

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
	/* inherited by every accepted socket (Linux): replies are not held
	 * back by Nagle, and front sets nothing per connection (conn.h) */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (l->addr.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) != 0) {
		snprintf(err, errlen, "[listen \"%s\"] cannot bind %s: %s%s", l->name, l->address,
		    strerror(errno), errno == EACCES ? " (ports below 1024 need root)" :
		    errno == EADDRINUSE ? " (another process listens there)" : "");
		close(fd);
		return -1;
	}
	/* the longest queue the system allows (net.core.somaxconn caps it): a
	 * burst of connections waits there while every worker is busy,
	 * instead of handshakes the kernel forgets (ListenOverflows) */
	if (listen(fd, SOMAXCONN) != 0) {
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
	    chmod(sun->sun_path, 0660) != 0 || listen(fd, SOMAXCONN) != 0) {
		snprintf(err, errlen, "[metrics] cannot listen on %s: %s%s", cfg->metrics_address,
		    strerror(errno), errno == EADDRINUSE ? " (another process listens there, or "
		    "a file of that name is in the way)" : "");
		close(fd);
		return -1;
	}
	return fd;
}

/* Open the service manager's notify socket (sdnotify.h), map the metrics
 * block (slices for the signer and keeper of two generations and 2W
 * worker slots) and the connection counts (2W slices); the writers beat
 * four times per watchdog period (at most once a second). */
static int
ops_start(const struct config *cfg, unsigned workers, char *err, size_t errlen)
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
	if (metrics_init(METRICS_SLICE_FRONT + 2 * (size_t)workers, beat_ms) < 0) {
		snprintf(err, errlen, "cannot map the metrics block: %s", strerror(errno));
		return -1;
	}
	/* a worker holds at most every connection of the service, plus the
	 * ones it is closing, and for its sessions a login entry and a memory
	 * entry each */
	if (connlimit_init(2 * (size_t)workers, 4 * cfg->limits.connections + 64) < 0) {
		snprintf(err, errlen, "cannot map the connection counts for [limits] connections "
		    "= %llu: %s", (unsigned long long)cfg->limits.connections, strerror(errno));
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
	struct supervisor_opts so;
	unsigned workers;
	int ch, debug = 0, rc, check = 0, json = 0, dnsrec = 0;
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
	/* GnuTLS opens $SSLKEYLOGFILE at a process's first TLS handshake and
	 * writes every session's secrets to it: front, whose filter allows no
	 * open(2), would die of SIGSYS there (and stop the service), the
	 * others would leave the secrets in a file.  Dropped before any fork. */
	if (getenv("SSLKEYLOGFILE") != NULL) {
		log_warn("event=environment variable=SSLKEYLOGFILE dropped: TLS session secrets "
		    "are never written to a file");
		unsetenv("SSLKEYLOGFILE");
	}
	/* glibc reads /etc/localtime on the first time conversion; do it now,
	 * while every process (they are forked from here) may still open files */
	tzset();
	/* under a file size limit (RLIMIT_FSIZE, ulimit -f) a write beyond it
	 * must fail (a message's memfd: 451 4.3.0), not end the process:
	 * SIGXFSZ would kill a front worker for one large message (replaced,
	 * until [server] worker-restarts stops the service), or the parent
	 * over a log file.  Ignored before any fork: every role inherits it. */
	signal(SIGXFSZ, SIG_IGN);
	if (sodium_init() < 0)
		fatal("libsodium initialisation failed");
	(void)prctl(PR_SET_DUMPABLE, 0);

	/* the overrides are kept: a reload applies them again */
	cfg = config_load(cfgfile, ov, nov, err, sizeof(err));
	if (cfg == NULL) {
		log_err("%s", err);
		return 2;
	}
	workers = config_workers(cfg, sysconf(_SC_NPROCESSORS_ONLN));
	if (nofile_raise(cfg, workers, 0, err, sizeof(err)) < 0) {
		log_err("refusing to start: %s", err);
		config_free(&cfg);
		return 1;
	}
	/* the service manager's socket, the metrics block, the connection
	 * counts and the rate-limit buckets, before anything is forked: every
	 * process inherits them */
	if (ops_start(cfg, workers, err, sizeof(err)) < 0 ||
	    limiter_table_init(err, sizeof(err)) < 0) {
		log_err("refusing to start: %s", err);
		config_free(&cfg);
		return 1;
	}
	/* the user the processes switch to is looked up now, while
	 * /etc/passwd and NSS modules may be read; children started later
	 * (under the parent's filter, at a reload) take it from memory */
	if (geteuid() == 0 && (sandbox_user_preload(cfg->user, err, sizeof(err)) < 0 ||
	    sandbox_user_preload(cfg->signer_user, err, sizeof(err)) < 0 ||
	    sandbox_user_preload(cfg->keeper_user, err, sizeof(err)) < 0 ||
	    sandbox_user_preload(cfg->recorder_user, err, sizeof(err)) < 0)) {
		log_err("refusing to start: %s", err);
		config_free(&cfg);
		return 1;
	}
	memset(&so, 0, sizeof(so));
	so.cfgfile = cfgfile;
	so.ov = ov;
	so.nov = nov;
	so.workers = workers;
	so.metrics_fd = so.recorder_fd = -1;
	/* the recorder first, once for the whole run (its log and key are
	 * restart-only): it opens the log itself, writes files, and so is
	 * started before the parent's filter; a start refused below is in the
	 * log too.  One client socket per worker slot of both generation
	 * halves. */
	so.recorder_fds = xcalloc(2 * (size_t)workers, sizeof(*so.recorder_fds));
	for (i = 0; i < 2 * (size_t)workers; i++)
		so.recorder_fds[i] = -1;
	if (cfg->audit_log != NULL && (so.recorder_pid = recorder_spawn(cfg, 2 * (size_t)workers,
	    RECORDER_START_TIMEOUT, so.recorder_fds, &so.recorder_fd, err, sizeof(err))) < 0) {
		log_err("refusing to start: %s", err);
		config_free(&cfg);
		return 1;
	}
	/* the sockets are bound once, here, and kept by the parent for every
	 * worker and generation */
	so.listen_fds = xcalloc(cfg->nlistens, sizeof(*so.listen_fds));
	for (i = 0; i < cfg->nlistens; i++)
		so.listen_fds[i] = -1;
	err[0] = '\0';
	for (i = 0; i < cfg->nlistens && err[0] == '\0'; i++)
		so.listen_fds[i] = bind_listener(&cfg->listens[i], err, sizeof(err));
	if (err[0] == '\0' && cfg->metrics_address != NULL)
		so.metrics_fd = bind_metrics(cfg, err, sizeof(err));
	/* from here on the supervisor owns cfg and every descriptor in so, and
	 * says why when it refuses to start (err: a socket that cannot be
	 * bound) */
	rc = supervisor_run(cfg, &so, err[0] != '\0' ? err : NULL);
	log_info("event=stopped status=%d", rc);
	sdnotify_close();
	for (i = 0; i < nov; i++)
		config_override_clear(&ov[i]);
	free(so.listen_fds);
	free(so.recorder_fds);
	return rc;
}
