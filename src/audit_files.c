/*
 * audit_files.c — the self-audit's checks of the files subproxy reads
 * secrets and settings from: auth.passwd and relay.RELAY.auth-file (the
 * same checks as the processes that load them), files.modes (owner and
 * mode of each file and of every directory above it, above every symlink
 * on its way and above what it finally leads to).
 */
#include "audit_int.h"

#include "config.h"
#include "passwd.h"
#include "relay.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static const char *const refs_files[] = { NULL };

/* ---- auth.passwd, relay.RELAY.auth-file ---- */

/* The keeper loads [auth] passwd-file, and every front worker each relay's
 * auth-file, at every start and reload, and refuse the whole file for one
 * bad line: the same checks here, so that --check does not pass what the
 * daemon will not start with. */
static void
check_credentials(struct audit_run *r)
{
	const struct config *cfg = r->cfg;
	char why[600], id[300];
	size_t i;
	long n;

	if ((n = passwd_check(cfg->passwd_file, why, sizeof(why))) < 0)
		audit_add(r, "auth.passwd", AUDIT_FAIL, refs_files, "correct what it names: one "
		    "line 'login:{ARGON2ID}$argon2id$...' per login (subproxy --hash-password "
		    "makes the hash), in a regular file of mode 0600", "%s", why);
	else
		audit_add(r, "auth.passwd", AUDIT_PASS, refs_files, NULL, "%s: %ld login%s, "
		    "each with an Argon2id hash the keeper accepts", cfg->passwd_file, n,
		    n == 1 ? "" : "s");
	for (i = 0; i < cfg->nrelays; i++) {
		if (cfg->relays[i].auth_file == NULL)
			continue;
		snprintf(id, sizeof(id), "relay.%s.auth-file", cfg->relays[i].name);
		if (relay_auth_check(&cfg->relays[i], why, sizeof(why)) < 0)
			audit_add(r, id, AUDIT_FAIL, refs_files, "write one line user:password "
			    "into it, mode 0600", "%s", why);
		else
			audit_add(r, id, AUDIT_PASS, refs_files, NULL, "%s: one line "
			    "user:password, readable by its owner only", cfg->relays[i].auth_file);
	}
}

/* ---- files.modes ---- */

struct filespec {
	const char *path, *what;
	unsigned int forbidden;          /* mode bits that must be clear; 0: only the
					 * directories above (another check judges
					 * the file) */
};

#define NFILES 64

/* Directories already judged (each bad one is named once). */
struct dirset {
	char **v;
	size_t n;
};

static int
dirset_add(struct dirset *d, const char *dir)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strcmp(d->v[i], dir) == 0)
			return 0;
	d->v = xreallocarray(d->v, d->n + 1, sizeof(*d->v));
	d->v[d->n++] = xstrdup(dir);
	return 1;
}

/*
 * Whoever may write a directory above a file may replace the file (rename
 * another into its place): a passwd file with their own login, a key of
 * their own.  Every directory above `path` must be owned by root or this
 * uid and not writable by group or others, unless it is sticky (/tmp: only
 * an entry's owner may rename or remove it, and the entry below is judged
 * in turn).  `path` absolute (a relative one is not judged: no getcwd);
 * `what` names it in a problem ("the passwd file").  Problems and fixes are
 * appended; `dirs` belongs to the caller.
 */
static void
check_dirs(const char *what, const char *path, struct dirset *dirs, char *problems,
    size_t plen, char *fixes, size_t flen)
{
	char dir[1024];
	struct stat st;
	size_t i, len = strlen(path), pl, fl;

	if (path[0] != '/' || len >= sizeof(dir))
		return;
	for (i = len; i-- > 0;) {
		if (path[i] != '/')
			continue;
		memcpy(dir, path, i > 0 ? i : 1);
		dir[i > 0 ? i : 1] = '\0';
		if (stat(dir, &st) < 0 || !dirset_add(dirs, dir))
			continue;
		pl = strlen(problems);
		fl = strlen(fixes);
		if (st.st_uid != 0 && st.st_uid != geteuid()) {
			snprintf(problems + pl, plen - pl, "%sdirectory %s (above %s) is owned "
			    "by uid %lu, who can replace what it holds", pl ? "; " : "", dir,
			    what, (unsigned long)st.st_uid);
			snprintf(fixes + fl, flen - fl, "%schown root %s", fl ? "; " : "", dir);
		} else if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0) {
			snprintf(problems + pl, plen - pl, "%sdirectory %s (above %s) has mode "
			    "%04o: group or others can replace what it holds", pl ? "; " : "", dir,
			    what, (unsigned)(st.st_mode & 07777));
			snprintf(fixes + fl, flen - fl, "%schmod go-w %s", fl ? "; " : "", dir);
		}
	}
}

/* Take the first component off *rest into comp (NUL-terminated, at most
 * NAME_MAX); *rest moves past it and the slashes after it. */
static void
next_component(const char **rest, char *comp, size_t complen)
{
	size_t n = strcspn(*rest, "/");

	snprintf(comp, complen, "%.*s", (int)n, *rest);
	*rest += n;
	*rest += strspn(*rest, "/");
}

/*
 * A symlink on the way to a file hands the file to whoever may change the
 * link or the directories it leads to.  Resolve f->path component by
 * component as the kernel does (readlink each symlink met, at most
 * LINK_HOPS of them; no getcwd: a relative target is taken from the link's
 * own directory) and judge the directories above every symlink met and
 * above what the path finally leads to, naming the configured path and
 * the target.  A path that meets no symlink was judged as written; one
 * that does not resolve is left to the file's own check.
 */
#define LINK_HOPS 16

static void
check_links(const struct filespec *f, struct dirset *dirs, char *problems, size_t plen,
    char *fixes, size_t flen)
{
	char cur[PATH_MAX] = "", link[PATH_MAX], target[PATH_MAX], rest[PATH_MAX];
	char comp[NAME_MAX + 1], what[2 * PATH_MAX + 100];
	const char *r;
	struct stat st;
	ssize_t n;
	int hops = 0, w;
	char *slash;

	if (f->path[0] != '/' || snprintf(rest, sizeof(rest), "%s", f->path) >= (int)sizeof(rest))
		return;
	r = rest;
	while (*r != '\0') {
		next_component(&r, comp, sizeof(comp));
		if (comp[0] == '\0' || strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) {
			if ((slash = strrchr(cur, '/')) != NULL)
				*slash = '\0';
			continue;
		}
		if (snprintf(link, sizeof(link), "%s/%s", cur, comp) >= (int)sizeof(link) ||
		    lstat(link, &st) < 0)
			return;
		if (!S_ISLNK(st.st_mode)) {
			memcpy(cur, link, strlen(link) + 1);
			continue;
		}
		if (++hops > LINK_HOPS) {
			size_t pl = strlen(problems);

			snprintf(problems + pl, plen - pl, "%s%s %s leads through more than %d "
			    "symlinks", pl ? "; " : "", f->what, f->path, LINK_HOPS);
			return;
		}
		if ((n = readlink(link, target, sizeof(target) - 1)) <= 0)
			return;
		target[n] = '\0';
		/* who may write the link's directory may point it elsewhere */
		snprintf(what, sizeof(what), "the symlink %s, on the way from the %s %s",
		    link, f->what, f->path);
		check_dirs(what, link, dirs, problems, plen, fixes, flen);
		/* go on with the target, then what was left of the path */
		w = snprintf(link, sizeof(link), "%s%s%s", target, *r ? "/" : "", r);
		if (w < 0 || w >= (int)sizeof(link))
			return;
		memcpy(rest, link, (size_t)w + 1);
		r = rest;
		if (target[0] == '/')
			cur[0] = '\0';
	}
	if (hops == 0)
		return;
	snprintf(what, sizeof(what), "%s, where the %s %s leads through symlinks",
	    cur[0] ? cur : "/", f->what, f->path);
	check_dirs(what, cur[0] ? cur : "/", dirs, problems, plen, fixes, flen);
}

/* The file's own owner and mode; -1 when it cannot be stat()ed. */
static int
check_file(const struct filespec *f, char *problems, size_t plen, char *fixes, size_t flen)
{
	struct stat st;
	size_t pl = strlen(problems), fl = strlen(fixes);

	if (stat(f->path, &st) < 0) {
		snprintf(problems + pl, plen - pl, "%s%s %s: %s", pl ? "; " : "", f->what,
		    f->path, strerror(errno));
		return -1;
	}
	if ((st.st_mode & f->forbidden) != 0) {
		snprintf(problems + pl, plen - pl, "%s%s %s has mode %04o (%s)", pl ? "; " : "",
		    f->what, f->path, (unsigned)(st.st_mode & 07777), f->forbidden == 077 ?
		    "group or others may access it" : "group or others may change it");
		snprintf(fixes + fl, flen - fl, "%schmod %s %s", fl ? "; " : "",
		    f->forbidden == 077 ? "600" : "go-w", f->path);
	} else if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(problems + pl, plen - pl, "%s%s %s is owned by uid %lu, who can change "
		    "it", pl ? "; " : "", f->what, f->path, (unsigned long)st.st_uid);
		snprintf(fixes + fl, flen - fl, "%schown root %s", fl ? "; " : "", f->path);
	}
	return 0;
}

static void
check_files(struct audit_run *r)
{
	const struct config *cfg = r->cfg;
	struct filespec fs[NFILES];
	struct dirset dirs = { NULL, 0 };
	char problems[4000] = "", fixes[2000] = "", seen[2000] = "", what[64];
	size_t n = 0, i, j;

	fs[n++] = (struct filespec){ cfg->file, "configuration", 022 };
	fs[n++] = (struct filespec){ cfg->tls_certificate, "TLS certificate", 022 };
	fs[n++] = (struct filespec){ cfg->tls_key, "TLS key", 077 };
	fs[n++] = (struct filespec){ cfg->passwd_file, "passwd file", 077 };
	if (cfg->trust_anchor_file != NULL)
		fs[n++] = (struct filespec){ cfg->trust_anchor_file, "DNS trust anchor", 022 };
	if (cfg->unbound_config != NULL)
		fs[n++] = (struct filespec){ cfg->unbound_config, "unbound config", 022 };
	for (i = 0; i < cfg->nrelays && n < NFILES; i++)
		if (cfg->relays[i].auth_file != NULL)
			fs[n++] = (struct filespec){ cfg->relays[i].auth_file, "relay auth-file",
			    077 };
	for (i = 0; i < cfg->ndkims; i++)
		for (j = 0; j < cfg->dkims[i].nkeys && n < NFILES; j++)
			fs[n++] = (struct filespec){ cfg->dkims[i].keys[j].file, "DKIM key", 0 };
	if (cfg->audit_signing_key != NULL && n < NFILES)
		fs[n++] = (struct filespec){ cfg->audit_signing_key, "audit signing key", 0 };
	if (cfg->audit_pseudonymize_key != NULL && n < NFILES)
		fs[n++] = (struct filespec){ cfg->audit_pseudonymize_key, "pseudonymize key", 0 };
	for (i = 0; i < n; i++) {
		if (fs[i].forbidden != 0 && check_file(&fs[i], problems, sizeof(problems), fixes,
		    sizeof(fixes)) < 0)
			continue;
		snprintf(what, sizeof(what), "the %s", fs[i].what);
		check_dirs(what, fs[i].path, &dirs, problems, sizeof(problems), fixes,
		    sizeof(fixes));
		check_links(&fs[i], &dirs, problems, sizeof(problems), fixes, sizeof(fixes));
		if (strstr(seen, fs[i].what) == NULL) {
			size_t sl = strlen(seen);

			snprintf(seen + sl, sizeof(seen) - sl, "%s%s", sl ? ", " : "",
			    fs[i].what);
		}
	}
	while (dirs.n > 0)
		free(dirs.v[--dirs.n]);
	free(dirs.v);
	if (problems[0])
		audit_add(r, "files.modes", AUDIT_FAIL, refs_files, fixes[0] ? fixes :
		    "create the missing files or correct the paths", "%s", problems);
	else
		audit_add(r, "files.modes", AUDIT_PASS, refs_files, NULL, "%s: owned by root or "
		    "this uid, secrets readable by the owner only, nothing writable by others, "
		    "nor the directories above them", seen);
}

void
audit_file_checks(struct audit_run *r)
{
	check_credentials(r);
	check_files(r);
}
