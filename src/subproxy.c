/* subproxy.c — command line, start-up and the main loop. */
#include "config.h"
#include "log.h"
#include "passwd.h"
#include "signer.h"
#include "smtp_server.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <sodium.h>
#include <event2/event.h>

#define MAX_OVERRIDES 64
#define SIGNER_START_TIMEOUT 30   /* seconds to load and test the DKIM keys */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: subproxy -c FILE [-o SECTION[.NAME].KEY=VALUE]... [-d]\n"
	    "       subproxy --hash-password < password\n"
	    "       subproxy --version | --help\n"
	    "\n"
	    "  -c, --config FILE     configuration file (see subproxy.conf(5))\n"
	    "  -o SECTION.KEY=VALUE  override a key; SECTION.NAME.KEY=VALUE for named sections\n"
	    "  -d, --debug           log debug lines\n"
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

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	if (sig == SIGHUP) {
		log_info("event=sighup: reopening logs");
		log_reopen();
		return;
	}
	log_info("event=signal signal=%s", sig == SIGTERM ? "TERM" : "INT");
	server_shutdown(srv);
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
		{ NULL, 0, NULL, 0 }
	};
	struct config_override ov[MAX_OVERRIDES];
	size_t nov = 0, i;
	const char *cfgfile = NULL;
	struct config *cfg;
	struct passwd_db *db;
	struct event_base *base;
	struct server *srv;
	struct event *sigs[4];
	int *fds, ch, debug = 0, signer_fd = -1, rc, status;
	pid_t signer_pid;
	char err[1024];

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
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || cfgfile == NULL) {
		usage(stderr);
		return 2;
	}
	log_init("subproxy", debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);
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
	/* the signer is forked before anything secret is loaded here, and loads
	 * the DKIM keys itself: this process never holds them */
	if ((signer_pid = signer_spawn(cfg, SIGNER_START_TIMEOUT, &signer_fd, err,
	    sizeof(err))) < 0) {
		log_err("refusing to start: %s", err);
		return 1;
	}
	if ((db = passwd_load(cfg->passwd_file, err, sizeof(err))) == NULL) {
		log_err("refusing to start: %s", err);
		return 1;
	}
	fds = xcalloc(cfg->nlistens, sizeof(*fds));
	for (i = 0; i < cfg->nlistens; i++) {
		if ((fds[i] = bind_listener(&cfg->listens[i], err, sizeof(err))) < 0) {
			log_err("refusing to start: %s", err);
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL)
		fatal("cannot create the event loop");
	if ((srv = server_new(base, cfg, db, fds, signer_fd, err, sizeof(err))) == NULL) {
		log_err("refusing to start: %s", err);
		return 1;
	}
	if (server_check_own_tlsa(srv, err, sizeof(err)) < 0) {
		log_err("refusing to start: %s", err);
		server_free(&srv);
		return 1;
	}
	sigs[0] = evsignal_new(base, SIGTERM, on_signal, srv);
	sigs[1] = evsignal_new(base, SIGINT, on_signal, srv);
	sigs[2] = evsignal_new(base, SIGHUP, on_signal, srv);
	for (i = 0; i < 3; i++)
		evsignal_add(sigs[i], NULL);
	server_start(srv);
	log_info("event=started version=%s hostname=%s listeners=%zu relays=%zu",
	    SUBPROXY_VERSION, cfg->hostname, cfg->nlistens, cfg->nrelays);
	event_base_dispatch(base);
	rc = server_failed(srv) ? 1 : 0;
	server_free(&srv);     /* closes the signer socket: the signer exits */
	while (waitpid(signer_pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status)) {
		log_err("event=child-died process=signer pid=%ld signal=%d", (long)signer_pid,
		    WTERMSIG(status));
		rc = 1;
	} else if (WEXITSTATUS(status) != 0) {
		log_err("event=child-died process=signer pid=%ld status=%d", (long)signer_pid,
		    WEXITSTATUS(status));
		rc = 1;
	}
	log_info("event=stopped status=%d", rc);
	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	event_base_free(base);
	passwd_db_free(&db);
	config_free(&cfg);
	free(fds);
	return rc;
}
