/*
 * audit_alog.c — the self-audit's checks of the audit log (recorder.h):
 * audit.log (configured where the profile requires it, and writable by the
 * recorder's user, [server] recorder-user, only), audit.key (the Ed25519 signing key loads; its
 * public half is shown), audit.pseudonymize-key; and the public key for
 * --dns-records.
 */
#include "audit_int.h"

#include "auditkey.h"
#include "auditrec.h"
#include "config.h"
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

static const char *const refs_none[] = { NULL };

/* The log file itself: a regular file (not a link), writable by its user
 * only.  0, or -1 with a sentence. */
static int
log_file_ok(const struct config *cfg, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;
	char why[256];
	struct stat st;

	if (lstat(cfg->audit_log, &st) < 0)
		return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", cfg->audit_log,
		    strerror(errno)), -1);
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", cfg->audit_log);
		return -1;
	}
	if ((st.st_mode & 022) != 0) {
		snprintf(err, errlen, "%s has mode %04o: others may change it (chmod 600 %s)",
		    cfg->audit_log, (unsigned)(st.st_mode & 07777), cfg->audit_log);
		return -1;
	}
	/* sandbox_user(), not getpwnam(): at a reload this runs under the
	 * parent's filter and takes the user the parent looked up at start */
	if (geteuid() == 0 &&
	    sandbox_user(cfg->recorder_user, &uid, &gid, why, sizeof(why)) == 0 &&
	    st.st_uid != uid && st.st_uid != 0) {
		snprintf(err, errlen, "%s is owned by uid %lu, not by %s, who writes it (chown %s %s)",
		    cfg->audit_log, (unsigned long)st.st_uid, cfg->recorder_user, cfg->recorder_user,
		    cfg->audit_log);
		return -1;
	}
	if (geteuid() != 0 && access(cfg->audit_log, W_OK) < 0) {
		snprintf(err, errlen, "%s: %s", cfg->audit_log, strerror(errno));
		return -1;
	}
	return 0;
}

static void
check_log(struct audit_run *r)
{
	const struct config *cfg = r->cfg;
	char dir[4096], err[800], *fix;
	const char *slash;

	if (cfg->audit_log == NULL) {
		if (r->prof != NULL && r->prof->audit_log_required)
			audit_add(r, "audit.log", AUDIT_FAIL, refs_none, "set [audit] log and "
			    "signing-key (subproxy.conf(5))", "no audit log is configured, and "
			    "profile %s requires one", r->prof->name);
		else
			audit_add(r, "audit.log", AUDIT_SKIP, refs_none, NULL, "no audit log is "
			    "configured ([audit] log)");
		return;
	}
	slash = strrchr(cfg->audit_log, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash == cfg->audit_log ? 1 :
	    (int)(slash - cfg->audit_log), cfg->audit_log);
	if (sandbox_datadir_check(cfg->recorder_user, dir, err, sizeof(err)) < 0 ||
	    log_file_ok(cfg, err, sizeof(err)) < 0) {
		fix = xasprintf("the recorder writes only there, as [server] recorder-user: "
		    "install -d -o %s -m 0700 %s (and chown -R %s %s)", cfg->recorder_user, dir,
		    cfg->recorder_user, dir);
		audit_add(r, "audit.log", AUDIT_FAIL, refs_none, fix, "audit log %s cannot be "
		    "written safely: %s", cfg->audit_log, err);
		free(fix);
		return;
	}
	audit_add(r, "audit.log", AUDIT_PASS, refs_none, NULL, "audit log %s: its directory is "
	    "writable by %s only (the recorder's chroot); %s", cfg->audit_log,
	    geteuid() == 0 ? cfg->recorder_user : "this user", auditrec_required(cfg) ?
	    "while it cannot be written, new transactions get 451 4.3.0" :
	    "[audit] required = no: mail goes on while it cannot be written");
}

static void
check_keys(struct audit_run *r)
{
	const struct config *cfg = r->cfg;
	struct alog_key k;
	char err[800], b64[64];
	uint8_t *pkey;

	if (cfg->audit_log == NULL)
		return;
	if (alog_key_load(cfg->audit_signing_key, &k, err, sizeof(err)) < 0) {
		audit_add(r, "audit.key", AUDIT_FAIL, refs_none, "make one: certtool "
		    "--generate-privkey --key-type ed25519 --outfile FILE; chmod 600 FILE", "%s",
		    err);
	} else {
		alog_key_b64(k.pk, b64, sizeof(b64));
		audit_add(r, "audit.key", AUDIT_PASS, refs_none, NULL, "Ed25519 audit key %s, "
		    "public key %s (auditors check the log with it: subproxy --verify-log "
		    "--public-key; --dns-records prints it as PEM)", cfg->audit_signing_key, b64);
		alog_key_clear(&k);
	}
	if (!cfg->audit_pseudonymize)
		return;
	if ((pkey = alog_pseudo_key_load(cfg->audit_pseudonymize_key, err, sizeof(err))) == NULL)
		audit_add(r, "audit.pseudonymize-key", AUDIT_FAIL, refs_none, "head -c 32 "
		    "/dev/urandom > FILE; chmod 600 FILE", "%s", err);
	else {
		sodium_free(pkey);
		audit_add(r, "audit.pseudonymize-key", AUDIT_PASS, refs_none, NULL, "addresses and "
		    "logins are recorded as keyed hashes (key %s)", cfg->audit_pseudonymize_key);
	}
}

void
audit_alog_checks(struct audit_run *r)
{
	check_log(r);
	check_keys(r);
}

int
audit_alog_records(const struct config *cfg, FILE *f)
{
	struct alog_key k;
	char err[800], *pem, *line, *save = NULL;

	if (cfg->audit_log == NULL)
		return 0;
	fprintf(f, "\n; audit log signing key %s: not a DNS record.  Give its public half\n"
	    "; to auditors for subproxy --verify-log --public-key FILE:\n",
	    cfg->audit_signing_key);
	if (alog_key_load(cfg->audit_signing_key, &k, err, sizeof(err)) < 0) {
		fprintf(f, "; cannot load the key: %s\n", err);
		return 1;
	}
	pem = alog_pubkey_pem(k.pk);
	alog_key_clear(&k);
	if (pem == NULL) {
		fprintf(f, "; cannot encode the public key\n");
		return 1;
	}
	for (line = strtok_r(pem, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		fprintf(f, "; %s\n", line);
	free(pem);
	return 0;
}
