/*
 * resolve.c — build-time helper for seccomp/gen.sh.
 *
 * Reads lines "WHERE NAME" on stdin (WHERE: file:line of the policy rule)
 * and asks libseccomp whether it knows the system call NAME.  Prints one
 * line per unknown name and exits 1 if there was any, 0 otherwise, 2 on a
 * malformed line.  A name that libseccomp knows but that does not exist on
 * the native architecture (e.g. "open" on aarch64) is accepted with a note:
 * the filter then simply has no rule for it there.
 */
#include <seccomp.h>
#include <stdio.h>
#include <string.h>

int
main(void)
{
	char line[512], where[400], name[100];
	int bad = 0, nr;

	while (fgets(line, sizeof(line), stdin) != NULL) {
		if (strchr(line, '\n') == NULL ||
		    sscanf(line, "%399s %99s", where, name) != 2) {
			fprintf(stderr, "resolve: malformed input line\n");
			return 2;
		}
		nr = seccomp_syscall_resolve_name(name);
		if (nr == __NR_SCMP_ERROR) {
			fprintf(stderr, "%s: unknown system call \"%s\" (libseccomp %u.%u.%u "
			    "does not know it; check the spelling, e.g. with "
			    "`scmp_sys_resolver %s` or ausyscall --dump)\n", where, name,
			    seccomp_version()->major, seccomp_version()->minor,
			    seccomp_version()->micro, name);
			bad = 1;
		} else if (nr < 0)
			fprintf(stderr, "%s: note: \"%s\" does not exist on this architecture; "
			    "the rule is a no-op here\n", where, name);
	}
	return bad;
}
