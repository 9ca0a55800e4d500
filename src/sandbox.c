/*
 * sandbox.c — core dumps off, chroot and uid drop, seccomp filters from the
 * tables generated out of seccomp/ROLE.policy.
 */
#include "sandbox.h"

#include "log.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <seccomp.h>

#ifndef SECCOMP_DEBUG_LOG
#define SECCOMP_DEBUG_LOG 0
#endif

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/common_interface_defs.h>

/* ASan/UBSan builds (SANITIZE=1): a report made inside the sandbox must not
 * need a call the sandbox forbids.  The sanitizer reads /proc/self/maps
 * (open) to name the module of each frame: do it now, while that file is
 * reachable and open allowed, and it stays cached (nothing dlopens later).
 * The report needs no ioctl and no symbolizer process either: see
 * __asan_default_options() in subproxy.c (color=never, symbolize=0). */
static void
sanitizer_prepare(void)
{
	char buf[256];

	__sanitizer_symbolize_pc(__builtin_return_address(0), "%m", buf, sizeof(buf));
}
#else
static void
sanitizer_prepare(void)
{
}
#endif

/* ---- availability ---- */

/* The value of "Seccomp:" in /proc/self/status, or -1 when unknown. */
static int
status_seccomp_mode(void)
{
	char line[256];
	FILE *f;
	int mode = -1;

	if ((f = fopen("/proc/self/status", "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "Seccomp:", 8) == 0) {
			mode = atoi(line + 8);
			break;
		}
	fclose(f);
	return mode;
}

int
sandbox_available(char *why, size_t whylen)
{
	const struct scmp_version *v = seccomp_version();
	unsigned int api;
	int mode;

	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL) {
		snprintf(why, whylen, "the kernel has no seccomp support (CONFIG_SECCOMP)");
		return 0;
	}
	api = seccomp_api_get();
	if (api < 3) {
		snprintf(why, whylen, "libseccomp %u.%u.%u reports API level %u for this kernel; "
		    "subproxy needs level 3 (seccomp filters with thread sync, "
		    "SECCOMP_RET_KILL_PROCESS and SECCOMP_RET_LOG: Linux >= 4.14)",
		    v->major, v->minor, v->micro, api);
		return 0;
	}
	mode = status_seccomp_mode();
	snprintf(why, whylen, "seccomp filter mode, libseccomp %u.%u.%u API level %u%s%s",
	    v->major, v->minor, v->micro, api,
	    mode == 2 ? "; already under a filter of the service manager (stacked)" : "",
	    SECCOMP_DEBUG_LOG ? "; this build only LOGS violations (SECCOMP_LOG=1)" : "");
	return 1;
}

int
sandbox_seccomp_log_only(void)
{
	return SECCOMP_DEBUG_LOG ? 1 : 0;
}

/* ---- core dumps ---- */

void
sandbox_nodump(void)
{
	struct rlimit rl = { 0, 0 };

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		log_warn("sandbox: PR_SET_DUMPABLE: %s", strerror(errno));
	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		log_warn("sandbox: RLIMIT_CORE: %s", strerror(errno));
}

/* ---- chroot and uid ---- */

/* A directory others cannot tamper with: owned by root (a data directory:
 * by `owner`, when that is not (uid_t)-1), not writable by group or others. */
static int
dir_safe_owner(const char *path, const struct stat *st, const char *what, uid_t owner,
    char *err, size_t errlen)
{
	if (!S_ISDIR(st->st_mode)) {
		snprintf(err, errlen, "chroot %s: %s is not a directory", what, path);
		return -1;
	}
	if (owner != (uid_t)-1) {
		if (st->st_uid == owner && (st->st_mode & 022) == 0)
			return 0;
		snprintf(err, errlen, "chroot %s: %s is %s (owner uid %lu, mode %04o); it must be "
		    "owned by the unprivileged user (uid %lu) that writes there and writable by "
		    "nobody else (chown USER %s; chmod 0700 %s)", what, path, st->st_uid != owner ?
		    "not owned by the user" : "writable by group or others",
		    (unsigned long)st->st_uid, (unsigned)(st->st_mode & 07777),
		    (unsigned long)owner, path, path);
		return -1;
	}
	if (st->st_uid != 0 || (st->st_mode & 022) != 0) {
		snprintf(err, errlen, "chroot %s: %s is %s (owner uid %lu, mode %04o); it must be "
		    "owned by root and writable by nobody else (chown root:root %s; chmod go-w %s)",
		    what, path, st->st_uid != 0 ? "not owned by root" : "writable by group or others",
		    (unsigned long)st->st_uid, (unsigned)(st->st_mode & 07777), path, path);
		return -1;
	}
	return 0;
}

static int
dir_safe(const char *path, const struct stat *st, const char *what, char *err, size_t errlen)
{
	return dir_safe_owner(path, st, what, (uid_t)-1, err, errlen);
}

/* Check every directory above `dir`, then open `dir` itself (no symlink at
 * the end) and check it is safe and empty -- or, for a data directory
 * (owner != (uid_t)-1), that it is owned by root or owner and need not be
 * empty.  Returns the open descriptor. */
static int
chroot_open_owner(const char *dir, uid_t owner, char *err, size_t errlen)
{
	char path[4096], first[256];
	struct stat st;
	struct dirent *de;
	DIR *d;
	size_t i, len = strlen(dir);
	int fd, dfd, found = 0;

	if (dir[0] != '/' || len >= sizeof(path)) {
		snprintf(err, errlen, "chroot directory \"%s\" must be an absolute path", dir);
		return -1;
	}
	/* "/", "/var", "/var/empty", ...: every directory above it */
	for (i = 0; i < len; i++) {
		if (dir[i] != '/')
			continue;
		memcpy(path, dir, i > 0 ? i : 1);
		path[i > 0 ? i : 1] = '\0';
		if (stat(path, &st) != 0) {
			snprintf(err, errlen, "chroot directory %s: %s: %s", dir, path, strerror(errno));
			return -1;
		}
		if (dir_safe(path, &st, "parent", err, errlen) < 0)
			return -1;
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "chroot directory %s: %s%s", dir, strerror(errno),
		    errno == ENOENT ? " (create it empty: install -d -m 0755 -o root -g root DIR)" :
		    errno == ELOOP || errno == ENOTDIR ? " (it must be a directory, not a symlink)" : "");
		return -1;
	}
	if (fstat(fd, &st) != 0 || dir_safe_owner(dir, &st, "directory", owner, err, errlen) < 0) {
		if (err[0] == '\0')
			snprintf(err, errlen, "chroot directory %s: %s", dir, strerror(errno));
		close(fd);
		return -1;
	}
	if (owner != (uid_t)-1)
		return fd;
	if ((dfd = dup(fd)) < 0 || (d = fdopendir(dfd)) == NULL) {
		snprintf(err, errlen, "chroot directory %s: cannot list it: %s", dir, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			snprintf(first, sizeof(first), "%s", de->d_name);
			found = 1;
			break;
		}
	closedir(d);
	if (found) {
		snprintf(err, errlen, "chroot directory %s is not empty (it contains \"%s\"); the "
		    "network process must see nothing there", dir, first);
		close(fd);
		return -1;
	}
	return fd;
}

static int
chroot_open(const char *dir, char *err, size_t errlen)
{
	return chroot_open_owner(dir, (uid_t)-1, err, errlen);
}

int
sandbox_chroot_check(const char *dir, char *err, size_t errlen)
{
	int fd;

	err[0] = '\0';
	if ((fd = chroot_open(dir, err, errlen)) < 0)
		return -1;
	close(fd);
	return 0;
}

/* After the switch: all ids are the user's, no groups, and root is gone. */
static int
ids_verify(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 ||
	    ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid) {
		snprintf(err, errlen, "uid/gid change did not take effect");
		return -1;
	}
	if (getgroups(0, NULL) != 0) {
		snprintf(err, errlen, "supplementary groups are still set after setgroups(0)");
		return -1;
	}
	if (setuid(0) != -1 || setgid(0) != -1) {
		snprintf(err, errlen, "root privileges could be regained after the uid change");
		return -1;
	}
	return 0;
}

#define PRELOADED_MAX 8     /* [server] user, signer-user, keeper-user, ... */

static struct {
	char *name;
	int found;              /* sandbox_user()'s answer: 0 found, 1 no such user */
	uid_t uid;
	gid_t gid;
} preloaded[PRELOADED_MAX];
static size_t npreloaded;

int
sandbox_user(const char *user, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	struct passwd pw, *pwp = NULL;
	char buf[4096];
	size_t i;
	int r;

	for (i = 0; i < npreloaded; i++)
		if (strcmp(preloaded[i].name, user) == 0) {
			if (preloaded[i].found != 0) {
				snprintf(err, errlen, "user \"%s\": no such user (create a system "
				    "user: adduser --system --group --no-create-home --home "
				    "/nonexistent %s)", user, user);
				return 1;
			}
			*uid = preloaded[i].uid;
			*gid = preloaded[i].gid;
			return 0;
		}
	r = getpwnam_r(user, &pw, buf, sizeof(buf), &pwp);
	if (pwp == NULL && r != 0 && r != ENOENT && r != ESRCH) {
		snprintf(err, errlen, "user \"%s\": %s", user, strerror(r));
		return -1;
	}
	if (pwp == NULL) {
		snprintf(err, errlen, "user \"%s\": no such user (create a system user: adduser "
		    "--system --group --no-create-home --home /nonexistent %s)", user, user);
		return 1;
	}
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	return 0;
}

int
sandbox_user_preload(const char *user, char *err, size_t errlen)
{
	uid_t uid = 0;
	gid_t gid = 0;
	int r;

	if ((r = sandbox_user(user, &uid, &gid, err, errlen)) < 0)
		return r;
	if (npreloaded == PRELOADED_MAX) {
		snprintf(err, errlen, "more than %d users to look up in advance", PRELOADED_MAX);
		return -1;
	}
	/* a missing user is remembered too: the self-audit says so later */
	preloaded[npreloaded].name = xstrdup(user);
	preloaded[npreloaded].found = r;
	preloaded[npreloaded].uid = uid;
	preloaded[npreloaded].gid = gid;
	npreloaded++;
	return r;
}

/* The unprivileged user to become: 0 with its ids, or -1 with a sentence. */
static int
user_ids(const char *user, uid_t *uid_r, gid_t *gid_r, char *err, size_t errlen)
{
	if (user == NULL || user[0] == '\0') {
		snprintf(err, errlen, "running as root needs an unprivileged user to switch to "
		    "([server] user)");
		return -1;
	}
	if (sandbox_user(user, uid_r, gid_r, err, errlen) != 0)
		return -1;
	if (*uid_r == 0) {
		snprintf(err, errlen, "user \"%s\" has uid 0: choose an unprivileged user", user);
		return -1;
	}
	return 0;
}

/* sandbox_drop() and sandbox_drop_datadir(). */
static int
drop(const char *user, const char *chroot_dir, int datadir, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;
	int fd;

	err[0] = '\0';
	sanitizer_prepare();    /* before the chroot hides /proc */
	if (geteuid() != 0) {
		/* an unprivileged run can neither chroot nor switch users */
		log_debug("sandbox: not running as root: no chroot, uid %lu kept",
		    (unsigned long)getuid());
		return 0;
	}
	if (user_ids(user, &uid, &gid, err, errlen) < 0)
		return -1;
	if (chroot_dir != NULL) {
		if ((fd = chroot_open_owner(chroot_dir, datadir ? uid : (uid_t)-1, err, errlen)) < 0)
			return -1;
		if (fchdir(fd) != 0 || chroot(".") != 0 || chdir("/") != 0) {
			snprintf(err, errlen, "chroot %s: %s", chroot_dir, strerror(errno));
			close(fd);
			return -1;
		}
		close(fd);
	}
	if (setgroups(0, NULL) != 0) {
		snprintf(err, errlen, "setgroups: %s", strerror(errno));
		return -1;
	}
	if (setresgid(gid, gid, gid) != 0) {
		snprintf(err, errlen, "setresgid(%lu): %s", (unsigned long)gid, strerror(errno));
		return -1;
	}
	if (setresuid(uid, uid, uid) != 0) {
		snprintf(err, errlen, "setresuid(%lu): %s", (unsigned long)uid, strerror(errno));
		return -1;
	}
	if (ids_verify(uid, gid, err, errlen) < 0)
		return -1;
	sandbox_nodump();
	log_debug("sandbox: uid=%lu gid=%lu chroot=%s", (unsigned long)uid, (unsigned long)gid,
	    chroot_dir ? chroot_dir : "none");
	return 0;
}

int
sandbox_drop(const char *user, const char *chroot_dir, char *err, size_t errlen)
{
	return drop(user, chroot_dir, 0, err, errlen);
}

int
sandbox_drop_datadir(const char *user, const char *dir, char *err, size_t errlen)
{
	return drop(user, dir, 1, err, errlen);
}

int
sandbox_datadir_check(const char *user, const char *dir, char *err, size_t errlen)
{
	struct stat st;
	uid_t uid;
	gid_t gid;
	int fd;

	err[0] = '\0';
	errno = 0;
	if (geteuid() != 0) {
		if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
			snprintf(err, errlen, "directory %s: %s", dir, errno ? strerror(errno) :
			    "not a directory");
			return -1;
		}
		return 0;
	}
	if (user_ids(user, &uid, &gid, err, errlen) < 0 ||
	    (fd = chroot_open_owner(dir, uid, err, errlen)) < 0)
		return -1;
	close(fd);
	return 0;
}

int
sandbox_enter(const char *role, const char *user, const char *chroot_dir, char *err,
    size_t errlen)
{
	char why[1024];

	sandbox_nodump();
	if (sandbox_drop(user, chroot_dir, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", role, why);
		return -1;
	}
	return sandbox_seccomp(role, err, errlen);
}

int
sandbox_fstat(int fd, struct stat *st_r)
{
#if defined(SYS_fstat) && (defined(__x86_64__) || defined(__aarch64__))
	/* the kernel's struct stat is glibc's on these architectures */
	return (int)syscall(SYS_fstat, fd, st_r);
#else
	return fstat(fd, st_r);	/* newfstatat here: the filter kills on rotation */
#endif
}

/* ---- seccomp ---- */

const struct sandbox_policy *
sandbox_policy_find(const char *role)
{
	size_t i;

	for (i = 0; i < sandbox_npolicies; i++)
		if (strcmp(sandbox_policies[i].role, role) == 0)
			return &sandbox_policies[i];
	return NULL;
}

static const enum scmp_compare cmp_ops[] = {
	[SANDBOX_CMP_EQ] = SCMP_CMP_EQ,
	[SANDBOX_CMP_NE] = SCMP_CMP_NE,
	[SANDBOX_CMP_LT] = SCMP_CMP_LT,
	[SANDBOX_CMP_LE] = SCMP_CMP_LE,
	[SANDBOX_CMP_GT] = SCMP_CMP_GT,
	[SANDBOX_CMP_GE] = SCMP_CMP_GE,
	[SANDBOX_CMP_MASKED_EQ] = SCMP_CMP_MASKED_EQ,
};

static int
rule_add(scmp_filter_ctx ctx, const char *role, const struct sandbox_rule *r, char *err,
    size_t errlen)
{
	struct scmp_arg_cmp cmps[SANDBOX_MAX_CMPS];
	unsigned int i;
	int nr, rc;

	nr = seccomp_syscall_resolve_name(r->name);
	if (nr == __NR_SCMP_ERROR) {
		snprintf(err, errlen, "seccomp/%s.policy:%u: this libseccomp does not know the "
		    "system call \"%s\"", role, r->line, r->name);
		return -1;
	}
	if (r->ncmps > SANDBOX_MAX_CMPS)
		goto bad;
	for (i = 0; i < r->ncmps; i++) {
		const struct sandbox_cmp *c = &r->cmps[i];

		if (c->arg > 5 || c->op < SANDBOX_CMP_EQ || c->op > SANDBOX_CMP_MASKED_EQ)
			goto bad;
		cmps[i].arg = c->arg;
		cmps[i].op = cmp_ops[c->op];
		cmps[i].datum_a = c->a;
		cmps[i].datum_b = c->b;
	}
	/* a name that does not exist on this architecture (nr < 0) is accepted
	 * by libseccomp and generates nothing */
	rc = seccomp_rule_add_array(ctx, r->errno_ret > 0 ? SCMP_ACT_ERRNO((uint32_t)r->errno_ret) :
	    SCMP_ACT_ALLOW, nr, r->ncmps, cmps);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp/%s.policy:%u: libseccomp refused the rule for %s: %s",
		    role, r->line, r->name, strerror(-rc));
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "seccomp/%s.policy:%u: malformed generated rule for %s", role,
	    r->line, r->name);
	return -1;
}

int
sandbox_seccomp(const char *role, char *err, size_t errlen)
{
	const struct sandbox_policy *pol;
	scmp_filter_ctx ctx;
	uint32_t defact = SECCOMP_DEBUG_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
	size_t i;
	int rc;

	sanitizer_prepare();
	if ((pol = sandbox_policy_find(role)) == NULL) {
		snprintf(err, errlen, "seccomp: no policy for the role \"%s\" (no seccomp/%s.policy "
		    "was built in)", role, role);
		return -1;
	}
	if ((ctx = seccomp_init(defact)) == NULL) {
		snprintf(err, errlen, "seccomp: cannot create a filter (libseccomp out of memory?)");
		return -1;
	}
	/* thread sync: a thread started earlier (authq) gets the filter too;
	 * a call from another ABI (i386 int 0x80, x32) always kills */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1)) < 0 ||
	    (SECCOMP_DEBUG_LOG && (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1)) < 0)) {
		snprintf(err, errlen, "seccomp: filter attributes: %s (kernel or libseccomp too old?)",
		    strerror(-rc));
		goto fail;
	}
	for (i = 0; i < pol->nrules; i++)
		if (rule_add(ctx, role, &pol->rules[i], err, errlen) < 0)
			goto fail;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		snprintf(err, errlen, "seccomp: cannot set no_new_privs: %s", strerror(errno));
		goto fail;
	}
	if (SECCOMP_DEBUG_LOG)
		log_warn("sandbox: role=%s seccomp filter in LOG-ONLY mode (built with "
		    "SECCOMP_LOG=1): forbidden calls are logged by the kernel, not stopped", role);
	if ((rc = seccomp_load(ctx)) < 0) {
		snprintf(err, errlen, "seccomp: the kernel refused the %s filter: %s", role,
		    strerror(-rc));
		goto fail;
	}
	seccomp_release(ctx);
	return 0;
fail:
	seccomp_release(ctx);
	return -1;
}
