/* proc_spawn.c — fork a child role with its socketpairs; its start-up report. */
#include "proc_spawn.h"

#include "log.h"
#include "proc.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* Close every descriptor from 3 up but those in keep[0..n). */
static void
close_others(const int *keep, size_t n)
{
	int fd, max = (int)sysconf(_SC_OPEN_MAX);
	size_t i;

	if (max < 0 || max > 65536)
		max = 65536;
	for (fd = 3; fd < max; fd++) {
		for (i = 0; i < n && keep[i] != fd; i++)
			;
		if (i == n)
			(void)close(fd);
	}
}

static void __attribute__((noreturn))
child_start(const struct proc_role *role, int *child_fds)
{
	sigset_t none;
	char name[16];

	/* child_fds[0] is the start-up socket, the role's follow */
	close_others(child_fds, role->nfds + 1);
	(void)prctl(PR_SET_DUMPABLE, 0);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	/* the supervisor blocks the signals it reads from its signalfd; a
	 * role starts with none blocked, so that SIGTERM ends it */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	log_set_role(role->name);
	snprintf(name, sizeof(name), "subproxy-%s", role->name);
	(void)prctl(PR_SET_NAME, name);
	role->main(role->arg, child_fds[0], child_fds + 1, role->nfds);
	_exit(1);
}

static void
close_all(int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* Wait for the report on fd; 0 with READY in *m, -2 when the child closed
 * it without a report, else -1 with err. */
static int
await_report(const struct proc_role *role, int fd, int timeout, struct proc_msg *m, char *err,
    size_t errlen)
{
	char text[PROC_TEXT_MAX + 1];
	struct pollfd pfd;
	uint32_t code;
	int rc;

	pfd.fd = fd;
	pfd.events = POLLIN;
	do
		rc = poll(&pfd, 1, timeout * 1000);
	while (rc < 0 && errno == EINTR);
	if (rc == 0) {
		snprintf(err, errlen, "%s: no answer within %d s while %s", role->name, timeout,
		    role->loading);
		return -1;
	}
	if (rc < 0 || proc_recv(fd, m, NULL) <= 0)
		return -2;	/* dead: proc_spawn() says how, once it reaped it */
	if (m->type == PROC_READY &&
	    (role->ready == NULL || role->ready(m->payload, m->len, role->ready_out) == 0))
		return 0;
	if (m->type == PROC_ERR && proc_err_decode(m->payload, m->len, &code, text,
	    sizeof(text)) == 0)
		snprintf(err, errlen, "%s", text);
	else
		snprintf(err, errlen, "%s: malformed start-up message", role->name);
	return -1;
}

pid_t
proc_spawn(const struct proc_role *role, int timeout, int *fds_r, struct proc_msg *ready_r,
    char *err, size_t errlen)
{
	int *mine, *theirs, sv[2], status, rc = -1;
	char how[96];
	size_t i, n = role->nfds;
	pid_t pid = -1;

	if (n == 0 || n > PROC_SPAWN_FDS_MAX) {
		snprintf(err, errlen, "%s: %zu sockets asked for (1 to %d)", role->name, n,
		    PROC_SPAWN_FDS_MAX);
		return -1;
	}
	mine = xcalloc(n + 1, sizeof(int));
	theirs = xcalloc(n + 1, sizeof(int));
	for (i = 0; i <= role->nfds; i++)
		mine[i] = theirs[i] = -1;
	for (i = 0; i <= role->nfds; i++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
			snprintf(err, errlen, "%s: socketpair: %s", role->name, strerror(errno));
			goto fail;
		}
		mine[i] = sv[0];
		theirs[i] = sv[1];
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "%s: fork: %s", role->name, strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		close_all(mine, role->nfds + 1);
		child_start(role, theirs);
	}
	close_all(theirs, role->nfds + 1);
	if ((rc = await_report(role, mine[0], timeout, ready_r, err, errlen)) < 0)
		goto fail;
	close(mine[0]);
	memcpy(fds_r, mine + 1, role->nfds * sizeof(int));
	free(mine);
	free(theirs);
	return pid;
fail:
	close_all(mine, role->nfds + 1);
	close_all(theirs, role->nfds + 1);
	for (i = 0; i < n; i++)
		fds_r[i] = -1;
	if (pid > 0) {
		/* a child that died already keeps the status it died with */
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (rc == -2)
			snprintf(err, errlen, "%s: %s during start-up%s", role->name,
			    proc_status_text(status, how, sizeof(how)),
			    WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS ? ": a system call "
			    "its seccomp filter does not allow (the kernel's audit log names it: "
			    "type=1326 ... syscall=N)" : " (see the log lines above)");
	}
	free(mine);
	free(theirs);
	return -1;
}

const char *
proc_status_text(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	return buf;
}

void
proc_ready(int ready_fd, uint32_t count, const char *text, const void *extra, size_t extralen)
{
	static uint8_t buf[PROC_MAX_PAYLOAD];
	long n = proc_ready_encode(buf, sizeof(buf), count, text, extra, extralen);

	if (n < 0 || proc_send(ready_fd, PROC_READY, 0, buf, (size_t)n, -1) < 0)
		_exit(1);
	close(ready_fd);
}

void
proc_fail(int ready_fd, const char *text)
{
	uint8_t buf[16 + PROC_TEXT_MAX];
	long n = proc_err_encode(buf, sizeof(buf), 1, text);

	if (n >= 0)
		(void)proc_send(ready_fd, PROC_ERR, 0, buf, (size_t)n, -1);
	_exit(1);
}
