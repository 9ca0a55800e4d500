/*
 * log.h — operational log: one line per event, key=value fields.
 *
 * Lines go to stderr (foreground) with a timestamp, role and level.  Untrusted
 * text must pass through log_escape() before it is logged.  AUTH data is never
 * logged by any caller.
 */
#ifndef SUBPROXY_LOG_H
#define SUBPROXY_LOG_H

#include <stddef.h>
#include <stdarg.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

/* Set the role name shown in every line ("parent", "front", ...) and the
 * lowest level printed.  May be called again after fork. */
void log_init(const char *role, enum log_level min);

/* Change only the role name (after fork). */
void log_set_role(const char *role);

/* Reopen the log destination (SIGHUP).  Safe to call repeatedly. */
void log_reopen(void);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)

/* Log at error level and exit(1).  Only for broken invariants between trusted
 * parts and for start-up failures. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Copy untrusted bytes into dst as printable ASCII: bytes outside 0x20..0x7e,
 * backslash and double quote become \xHH.  Always NUL-terminates (dstlen > 0);
 * truncates with "..." when dst is too small.  Returns dst. */
char *log_escape(char *dst, size_t dstlen, const void *src, size_t srclen);

/* The same for the value of a key=value field written without quotes
 * (login=%s, from=<%s>): a space becomes \x20 too, so that untrusted text
 * stays one field and cannot add keys ("x result=ok") to the line. */
char *log_value(char *dst, size_t dstlen, const void *src, size_t srclen);

#endif
