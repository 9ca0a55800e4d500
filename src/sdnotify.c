/* sdnotify.c — systemd's notification datagrams, without libsystemd. */
#include "sdnotify.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#define SDNOTIFY_MSG_MAX 1024

static int sd_fd = -1;
static uint64_t sd_watchdog;
static int sd_failed_logged;

int
sdnotify_addr(const char *value, struct sockaddr_un *sa, socklen_t *len_r)
{
	size_t n;

	if (value == NULL || (value[0] != '/' && value[0] != '@'))
		return -1;
	n = strlen(value);
	if (n < 2 || n >= sizeof(sa->sun_path))
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, value, n);
	if (value[0] == '@') {
		/* abstract namespace: a leading NUL, and the length counts
		 * exactly the name (no terminating NUL) */
		sa->sun_path[0] = '\0';
		*len_r = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		*len_r = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	return 0;
}

uint64_t
sdnotify_watchdog_parse(const char *usec, const char *pid, pid_t self)
{
	uint64_t v, p;

	if (usec == NULL || parse_uint(usec, 1, UINT64_MAX, 0, &v) < 0)
		return 0;
	if (pid != NULL && (parse_uint(pid, 1, UINT32_MAX, 0, &p) < 0 || (pid_t)p != self))
		return 0;
	return v;
}

int
sdnotify_open(char *err, size_t errlen)
{
	const char *value = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t len;
	int fd;

	sd_watchdog = sdnotify_watchdog_parse(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"),
	    getpid());
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (value == NULL || value[0] == '\0') {
		unsetenv("NOTIFY_SOCKET");
		sd_watchdog = 0;
		return 0;
	}
	if (sdnotify_addr(value, &sa, &len) < 0) {
		snprintf(err, errlen, "NOTIFY_SOCKET=%.200s is not an absolute path or an "
		    "@abstract name that fits a socket address", value);
		unsetenv("NOTIFY_SOCKET");
		return -1;
	}
	unsetenv("NOTIFY_SOCKET");
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "notify socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		snprintf(err, errlen, "cannot connect to NOTIFY_SOCKET %.200s: %s", value,
		    strerror(errno));
		close(fd);
		return -1;
	}
	sd_fd = fd;
	return 1;
}

int
sdnotify_enabled(void)
{
	return sd_fd >= 0;
}

uint64_t
sdnotify_watchdog_usec(void)
{
	return sd_fd >= 0 ? sd_watchdog : 0;
}

int
sdnotify_send(const char *fmt, ...)
{
	char msg[SDNOTIFY_MSG_MAX];
	va_list ap;
	int n;

	if (sd_fd < 0)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = (int)strlen(msg);
	if (send(sd_fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
		if (!sd_failed_logged)
			log_warn("event=sd-notify-failed error=\"%s\"", strerror(errno));
		sd_failed_logged = 1;
		return -1;
	}
	sd_failed_logged = 0;
	return 0;
}

int
sdnotify_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return sdnotify_send("RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
}

void
sdnotify_close(void)
{
	if (sd_fd >= 0)
		close(sd_fd);
	sd_fd = -1;
}
