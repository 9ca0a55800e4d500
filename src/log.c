/* log.c — operational log lines to stderr. */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
#include <pthread.h>

static const char *log_role = "subproxy";
static enum log_level log_min = LOG_LVL_INFO;
static long log_pid;                    /* 0: ask getpid() at the next line */

static const char *const level_names[] = { "debug", "info", "warn", "error" };

/* Every process is made by fork() (proc_spawn.c, generation.c,
 * audit_cli.c): its first line asks for its own pid again. */
static void
log_forked(void)
{
	log_pid = 0;
}

/* The pid for log lines: one getpid() per process, not one per line. */
static long
log_getpid(void)
{
	static int registered;

	if (log_pid == 0) {
		/* registered before the first fork that could copy a cached pid */
		if (!registered && pthread_atfork(NULL, NULL, log_forked) == 0)
			registered = 1;
		log_pid = (long)getpid();
	}
	return log_pid;
}

void
log_init(const char *role, enum log_level min)
{
	log_role = role;
	log_min = min;
}

void
log_set_role(const char *role)
{
	log_role = role;
}

void
log_reopen(void)
{
	/* stderr is owned by the service manager; nothing to reopen yet, but
	 * flushing makes repeated SIGHUP harmless and observable. */
	fflush(stderr);
}

void
log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	char line[2048];
	char ts[64];
	struct timespec now;
	struct tm tm;
	int saved = errno;
	size_t n;

	if (lvl < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	/* no strftime(): it may call tzset() and open /etc/localtime, which no
	 * sandboxed process may do */
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	n = (size_t)snprintf(line, sizeof(line), "%s.%03ldZ %s[%ld] %s: ", ts,
	    now.tv_nsec / 1000000, log_role, log_getpid(), level_names[lvl]);
	if (n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	n = strlen(line);
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* one write per line so lines from several processes do not interleave */
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nothing sensible to do */
	}
	errno = saved;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}

static char *
escape(char *dst, size_t dstlen, const void *src, size_t srclen, unsigned char lowest)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = src;
	size_t o = 0, i;

	if (dstlen == 0)
		return dst;
	for (i = 0; i < srclen; i++) {
		unsigned char c = s[i];
		size_t need = (c >= lowest && c <= 0x7e && c != '\\' && c != '"') ? 1 : 4;

		if (o + need + 4 > dstlen) {
			if (dstlen >= 4) {
				size_t p = o < dstlen - 4 ? o : dstlen - 4;
				memcpy(dst + p, "...", 3);
				o = p + 3;
			}
			break;
		}
		if (need == 1) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o < dstlen ? o : dstlen - 1] = '\0';
	return dst;
}

char *
log_escape(char *dst, size_t dstlen, const void *src, size_t srclen)
{
	return escape(dst, dstlen, src, srclen, 0x20);
}

char *
log_value(char *dst, size_t dstlen, const void *src, size_t srclen)
{
	return escape(dst, dstlen, src, srclen, 0x21);
}
