/*
 * unit_sandbox.h — [server] keys for child roles (signer, keeper) that unit
 * tests start for real.  As root the roles chroot and change uid after
 * loading their keys: they get an empty root-owned directory under /run
 * (no world-writable parent) and two existing unprivileged system users,
 * distinct from each other and from front's ("nobody" in the integration
 * tests).  Unprivileged runs need nothing: the roles then keep the uid.
 */
#ifndef UNIT_SANDBOX_H
#define UNIT_SANDBOX_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIT_SIGNER_USER "daemon"
#define UNIT_KEEPER_USER "bin"

static char unit_chroot[64];
static char unit_server_keys[256];

/* Call from setup(); then put unit_server_keys in the [server] section. */
static int
unit_sandbox_setup(void)
{
	unit_server_keys[0] = '\0';
	if (geteuid() != 0)
		return 0;
	snprintf(unit_chroot, sizeof(unit_chroot), "/run/subproxy-unit.XXXXXX");
	if (mkdtemp(unit_chroot) == NULL || chmod(unit_chroot, 0755) != 0)
		return -1;
	snprintf(unit_server_keys, sizeof(unit_server_keys),
	    "chroot = %s\nsigner-user = %s\nkeeper-user = %s\n", unit_chroot, UNIT_SIGNER_USER,
	    UNIT_KEEPER_USER);
	return 0;
}

/* Call from teardown(). */
static int
unit_sandbox_teardown(void)
{
	if (unit_chroot[0] != '\0' && rmdir(unit_chroot) != 0)
		return -1;
	return 0;
}

/* SIGSTOP a role the test started (its child) and wait until it has really
 * stopped: kill() returns before a multi-threaded process is stopped (one
 * thread takes the signal and stops the others when it runs; meanwhile
 * another thread may still serve a request sent after the kill).  0, or -1. */
static inline int
unit_role_stop(pid_t pid)
{
	int status;

	if (kill(pid, SIGSTOP) < 0 || waitpid(pid, &status, WUNTRACED) != pid)
		return -1;
	return WIFSTOPPED(status) ? 0 : -1;
}

#endif
