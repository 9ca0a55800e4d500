/*
 * sdnotify.h — systemd's notification protocol, spoken by the parent.
 *
 * The documented datagram protocol (sd_notify(3)): newline-separated
 * "VARIABLE=value" assignments in one datagram to the AF_UNIX socket named
 * by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).  No
 * libsystemd: its sd_notify() opens a socket on every call, which the
 * parent's seccomp filter forbids, and it would be one more library in
 * every process for about a hundred lines of protocol.  Here the socket is
 * opened and connected once, before the filter, and each message is one
 * send() on it (seccomp/parent.policy allows sendto only on a connected
 * socket, with exactly these flags).
 *
 * Messages subproxy sends: READY=1 (front serves: the start gate passed and
 * the listeners accept), STATUS=one line, STOPPING=1 (SIGTERM), WATCHDOG=1
 * (every child's loop is alive, see metrics_beat_age()), and later
 * RELOADING=1 + MONOTONIC_USEC= around a reload (sdnotify_reloading()).
 *
 * Without $NOTIFY_SOCKET everything here is a no-op.
 */
#ifndef SUBPROXY_SDNOTIFY_H
#define SUBPROXY_SDNOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

/* Read $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID, remove them from
 * the environment (children must not notify), open and connect the
 * socket.  Returns 1 connected, 0 not under a service manager, -1 with a
 * sentence in err (bad variable, socket error). */
int sdnotify_open(char *err, size_t errlen);

/* 1 when a socket is open. */
int sdnotify_enabled(void);

/* The watchdog period in microseconds, 0 when systemd asked for none (or
 * asked another process: WATCHDOG_PID). */
uint64_t sdnotify_watchdog_usec(void);

/* Send one message ("READY=1\nSTATUS=..."); newlines separate
 * assignments.  Never blocks; a failure is logged once and otherwise
 * ignored (the service manager may be gone).  Returns 0 or -1. */
int sdnotify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* RELOADING=1 with MONOTONIC_USEC= (what Type=notify-reload expects). */
int sdnotify_reloading(void);

void sdnotify_close(void);

/* ---- pure parts (unit-tested) ---- */

/* The socket address for a $NOTIFY_SOCKET value: an absolute path or
 * "@abstract".  Returns 0 with *sa and *len_r set, or -1 (empty, relative, too
 * long, NUL bytes). */
int sdnotify_addr(const char *value, struct sockaddr_un *sa, socklen_t *len_r);

/* $WATCHDOG_USEC and $WATCHDOG_PID for process `self`: the period, or 0
 * (unset, malformed, zero, or meant for another pid). */
uint64_t sdnotify_watchdog_parse(const char *usec, const char *pid, pid_t self);

#endif
