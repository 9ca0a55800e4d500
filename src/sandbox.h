/*
 * sandbox.h — what a process gives up before it serves anyone: core dumps,
 * the filesystem (chroot), its uid, and every system call its role does not
 * need (seccomp).
 *
 * Order in a role: load everything it will ever need (files, keys, the
 * libraries that read /etc or open /dev/urandom on first use), then
 * sandbox_nodump(), sandbox_drop(), and sandbox_seccomp() last.  After
 * sandbox_seccomp() a call outside the role's allowlist (seccomp/ROLE.policy)
 * kills the whole process with SIGSYS; the parent sees a child "killed by
 * signal 31" and stops the service (fail closed).
 *
 * Built with SECCOMP_LOG=1 (-DSECCOMP_DEBUG_LOG=1) the filters only log
 * forbidden calls to the kernel log (journalctl -k, audit type=1326 SECCOMP)
 * instead of killing: for developing the allowlists, never for production.
 * doc/sandbox.md explains the policy files and how to grow them.
 */
#ifndef SUBPROXY_SANDBOX_H
#define SUBPROXY_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stat;

/* Can this kernel and libseccomp do what sandbox_seccomp() needs (filter
 * mode, SECCOMP_RET_KILL_PROCESS and SECCOMP_RET_LOG, thread sync: libseccomp
 * API level >= 3)?  Returns 1 and a short description in why ("seccomp filter
 * mode, libseccomp 2.5.4 API level 6"), or 0 and the reason it cannot.  Reads
 * /proc/self/status when it is there: call it before any sandbox. */
int sandbox_available(char *why, size_t whylen);

/* No core dumps, no ptrace attach by the same uid: PR_SET_DUMPABLE 0 and
 * RLIMIT_CORE 0.  Failures are logged (warn) and otherwise ignored.
 * sandbox_drop() calls it again after a uid change, because the kernel resets
 * the dumpable flag to fs.suid_dumpable when credentials change. */
void sandbox_nodump(void);

/* When running as root (euid 0): resolve `user` (must exist, must not have
 * uid 0), chroot to chroot_dir and chdir("/"), drop supplementary groups and
 * set real, effective and saved gid and uid to the user's; then check that
 * root cannot be regained and call sandbox_nodump().  chroot_dir must be an
 * absolute path to an empty directory that is owned by root and not writable
 * by group or others, as must every directory above it (a directory others
 * can write to would let them swap the tree); NULL means no chroot (for a
 * process that only changes uid).  `user` may not be NULL when root.
 *
 * When not root: changes nothing and refuses nothing (an unprivileged run
 * cannot chroot or switch users, and the uid it runs as is already the
 * user's choice); returns 0.
 *
 * Must run before sandbox_seccomp() (no role allows chroot or setuid) and
 * after every file the process needs was opened (getpwnam reads /etc here,
 * the chroot hides it afterwards).  Returns 0, or -1 with one sentence
 * (what is wrong and how to fix it) in err; the process must then exit. */
int sandbox_drop(const char *user, const char *chroot_dir, char *err, size_t errlen);

/* sandbox_drop() for a process that keeps writing files in its chroot (the
 * audit log's recorder): `dir` must be absolute, every directory above it
 * owned by root and not writable by group or others, and `dir` itself owned
 * by `user` and not writable by group or others; it need not be empty.
 * When not root it changes nothing (the caller chdirs there itself). */
int sandbox_drop_datadir(const char *user, const char *dir, char *err, size_t errlen);

/* The checks sandbox_drop_datadir() makes, alone (for the self-audit); when
 * not root: `dir` is a directory this process may write.  0 or -1 with the
 * sentence. */
int sandbox_datadir_check(const char *user, const char *dir, char *err, size_t errlen);

/* The uid and gid of `user`.  After sandbox_user_preload(user) they come
 * from memory, without reading /etc/passwd or loading NSS modules (which a
 * process forked later, under the parent's seccomp filter or in a chroot,
 * must not do); other names are looked up with getpwnam_r().  Returns 0
 * found, 1 no such user, -1 the lookup failed (a sentence in err). */
int sandbox_user(const char *user, uid_t *uid, gid_t *gid, char *err, size_t errlen);

/* Look `user` up now and keep the answer -- also "no such user" -- for
 * sandbox_user() (the parent, before its filter; the users are
 * restart-only settings).  Returns what sandbox_user() returned. */
int sandbox_user_preload(const char *user, char *err, size_t errlen);

/* The checks sandbox_drop() makes of its chroot directory, alone (for the
 * self-audit): absolute, every directory above it root-owned and not
 * writable by group or others, the directory itself too, not a symlink,
 * and empty.  Returns 0, or -1 with the sentence sandbox_drop() would
 * refuse with. */
int sandbox_chroot_check(const char *dir, char *err, size_t errlen);

/* Load the seccomp filter of `role` ("signer", "keeper", "recorder", "front",
 * "parent":
 * the tables generated from seccomp/ROLE.policy) after setting no_new_privs.
 * Default action: kill the process (log only when built with SECCOMP_LOG=1).
 * The filter applies to every thread of the process (TSYNC) and to all its
 * future children.  Returns 0, or -1 with a sentence in err (unknown role,
 * libseccomp refused a rule, the kernel refused the filter); on -1 nothing
 * was loaded and the caller must not serve. */
int sandbox_seccomp(const char *role, char *err, size_t errlen);

/* The whole order for a role whose files are all loaded:
 * sandbox_nodump(), sandbox_drop(user, chroot_dir) (as root), then
 * sandbox_seccomp(role).  Returns 0, or -1 with a sentence in err (a drop
 * refusal prefixed "ROLE: "); the process must then exit. */
int sandbox_enter(const char *role, const char *user, const char *chroot_dir, char *err,
    size_t errlen);

/* 1 when this build only logs forbidden calls (SECCOMP_LOG=1), else 0. */
int sandbox_seccomp_log_only(void);

/* fstat(2) by the system call that takes a descriptor and nothing else, for
 * a role that must look at a file it holds after its filter (the recorder's
 * reopened log).  glibc >= 2.33 implements fstat() as newfstatat(fd, "",
 * AT_EMPTY_PATH), which the kernel takes as a path lookup whenever the path
 * is not empty, so no policy allows newfstatat.  0, or -1 with errno. */
int sandbox_fstat(int fd, struct stat *st_r);

/*
 * Filter tables.  seccomp/gen.sh writes them from seccomp/ROLE.policy into
 * $(BUILD)/gen/seccomp_tables.c; only sandbox.c and the tests read them.
 */

enum sandbox_cmp_op {
	SANDBOX_CMP_EQ = 1,	/* arg == a */
	SANDBOX_CMP_NE,		/* arg != a */
	SANDBOX_CMP_LT,		/* arg <  a */
	SANDBOX_CMP_LE,		/* arg <= a */
	SANDBOX_CMP_GT,		/* arg >  a */
	SANDBOX_CMP_GE,		/* arg >= a */
	SANDBOX_CMP_MASKED_EQ	/* (arg & a) == b */
};

#define SANDBOX_MAX_CMPS 6	/* one per system call argument */

struct sandbox_cmp {
	unsigned int arg;	/* 0..5 */
	enum sandbox_cmp_op op;
	uint64_t a, b;		/* compared as 64-bit values */
};

/* One rule: the call is allowed (errno_ret 0) or fails with errno_ret when
 * all its comparisons hold.  Several rules for one call are alternatives. */
struct sandbox_rule {
	const char *name;	/* system call name, as libseccomp spells it */
	int errno_ret;
	unsigned int line;	/* line in seccomp/ROLE.policy, for messages */
	unsigned int ncmps;
	struct sandbox_cmp cmps[SANDBOX_MAX_CMPS];
};

struct sandbox_policy {
	const char *role;
	const struct sandbox_rule *rules;
	size_t nrules;
};

extern const struct sandbox_policy sandbox_policies[];
extern const size_t sandbox_npolicies;

/* The table of `role`, or NULL. */
const struct sandbox_policy *sandbox_policy_find(const char *role);

#endif
