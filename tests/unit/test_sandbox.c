/* Unit tests for sandbox.c and seccomp/: every role's filter loaded for real
 * in a forked child, forbidden calls killing it with SIGSYS (the call itself,
 * not something before it), each role's real work (DKIM signing, TLS key
 * operations and Argon2id, TCP/UDP/TLS/epoll/memfd/threads, waiting for
 * children) still running under its filter, the chroot and uid drop, and the
 * policy generator refusing what it must. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/signalfd.h>

#include <event2/event.h>
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <seccomp.h>
#include <sodium.h>

#include "config.h"
#include "dkim.h"
#include "signer.h"
#include "log.h"
#include "proc.h"
#include "util.h"
#include "sandbox.h"
#include "spool.h"
#include "tls.h"

extern char **environ;

static char tmpdir[64];

/* ---- running something in a child ---- */

/* Run fn(arg) in a forked child whose stderr is a socket read here: out gets
 * everything it wrote (step markers, log lines, errors).  Returns the wait
 * status. */
static int
run_child(int (*fn)(void *), void *arg, char *out, size_t outlen)
{
	int sv[2], status;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		if (dup2(sv[1], 2) != 2)
			_exit(120);
		_exit(fn(arg));
	}
	close(sv[1]);
	while (got + 1 < outlen && (n = read(sv[0], out + got, outlen - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
	}
	out[got] = '\0';
	close(sv[0]);
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	return status;
}

/* In a child: mark progress on stderr (the socket) with one write(2), which
 * every role allows, so a death can be placed. */
static void
step(const char *what)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "step %s\n", what);

	if (write(2, line, (size_t)n) < 0) {
		/* nothing to do */
	}
}

static int
child_fail(const char *what)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "FAILED %s (errno %s)\n", what, strerror(errno));

	if (write(2, line, (size_t)n) < 0) {
		/* nothing to do */
	}
	return 1;
}

static int
enter(const char *role)
{
	char err[512];

	if (sandbox_seccomp(role, err, sizeof(err)) < 0) {
		if (write(2, err, strlen(err)) < 0) {
			/* nothing to do */
		}
		_exit(110);
	}
	return 0;
}

static void
expect_exit0(int status, const char *out)
{
	if (WIFSIGNALED(status))
		fail_msg("child killed by signal %d%s; its output:\n%s", WTERMSIG(status),
		    WTERMSIG(status) == SIGSYS ? " (SIGSYS: a call outside the allowlist, "
		    "after the last step below)" : "", out);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("child exit status %d; its output:\n%s", WEXITSTATUS(status), out);
}

/* ---- stopped and continued ---- */

/*
 * A role stopped (SIGSTOP: an operator, a debugger, the OOM reaper's
 * freezer) while it waits in poll(2) with a timeout, then continued, must go
 * on: the kernel resumes such a call with restart_syscall(2), which every
 * policy must allow (it repeats the call already checked, with the same
 * arguments).  The child waits on a pipe the test writes only after SIGCONT.
 */
static int stop_pipe[2];

static int
stop_child(void *arg)
{
	struct pollfd pfd;
	int rc;

	enter(arg);
	if (write(2, "R", 1) != 1)
		return 101;
	pfd.fd = stop_pipe[0];
	pfd.events = POLLIN;
	rc = poll(&pfd, 1, 60 * 1000);
	if (write(2, rc == 1 ? "OK" : "E", rc == 1 ? 2 : 1) < 0)
		return 102;
	return 0;
}

/* 1 once /proc/PID/stat says the child sleeps (it then waits in poll: the
 * only call after its "R" that can sleep); bounded to 30 s. */
static int
sleeping(pid_t pid)
{
	char path[64], buf[512], *p;
	int fd, i;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	for (i = 0; i < 30000; i++) {
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return 0;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			return 0;
		buf[n] = '\0';
		if ((p = strrchr(buf, ')')) != NULL && p[1] == ' ' && p[2] == 'S')
			return 1;
		usleep(1000);
	}
	return 0;
}

static void
test_stop_continue(void **state)
{
	const char *role = *state;
	char out[256];
	size_t got = 0;
	ssize_t n;
	int sv[2], status;
	pid_t pid;

	if (sandbox_seccomp_log_only())
		skip();
	assert_int_equal(pipe2(stop_pipe, O_CLOEXEC), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		if (dup2(sv[1], 2) != 2)
			_exit(120);
		_exit(stop_child((void *)role));
	}
	close(sv[1]);
	while (got < 1 && (n = read(sv[0], out, 1)) != 0)
		if (n > 0)
			got = 1;
	assert_true(got == 1 && out[0] == 'R');
	assert_true(sleeping(pid));
	assert_int_equal(kill(pid, SIGSTOP), 0);
	assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
	assert_true(WIFSTOPPED(status));
	assert_int_equal(kill(pid, SIGCONT), 0);
	assert_int_equal(write(stop_pipe[1], "x", 1), 1);
	while (got + 1 < sizeof(out) && (n = read(sv[0], out + got, sizeof(out) - 1 - got)) != 0)
		if (n > 0)
			got += (size_t)n;
		else if (errno != EINTR)
			break;
	out[got] = '\0';
	close(sv[0]);
	close(stop_pipe[0]);
	close(stop_pipe[1]);
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	if (WIFSIGNALED(status))
		fail_msg("role %s: killed by signal %d after SIGSTOP/SIGCONT in poll%s (output "
		    "\"%s\")", role, WTERMSIG(status), WTERMSIG(status) == SIGSYS ?
		    " (SIGSYS: restart_syscall not allowed)" : "", out);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_string_equal(out, "ROK");
}

/* The recorder looks at its reopened log with sandbox_fstat() under its
 * filter, which has no newfstatat: it must work and tell the truth. */
static int
recorder_fstat_child(void *arg)
{
	struct stat before, st;
	char path[] = "/tmp/subproxy-fstat.XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0 || unlink(path) < 0 || write(fd, "12345", 5) != 5 || fstat(fd, &before) < 0)
		return 100;
	enter("recorder");
	if (sandbox_fstat(fd, &st) != 0)
		return 101;
	if (!S_ISREG(st.st_mode) || st.st_size != 5 || st.st_ino != before.st_ino ||
	    st.st_dev != before.st_dev)
		return 102;
	return 0;
}

static void
test_recorder_fstat(void **state)
{
	char out[512];

	expect_exit0(run_child(recorder_fstat_child, NULL, out, sizeof(out)), out);
}

/* ---- forbidden calls ---- */

static void
do_openat(void)
{
	(void)open("/etc/passwd", O_RDONLY | O_CLOEXEC);
}

/* The recorder's flags without O_NOFOLLOW: not one of its two flag sets. */
static void
do_openat_follow(void)
{
	(void)open("/tmp/subproxy-test-never", O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
	    0600);
}

/* Opening for writing, or truncating, a file by path. */
static void
do_openat_write(void)
{
	(void)open("/tmp/subproxy-test-never", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
}

static void
do_openat_trunc(void)
{
	(void)syscall(SYS_openat, AT_FDCWD, "/tmp/subproxy-test-never", O_RDONLY | O_TRUNC);
}

static void
do_clone_newns(void)
{
	long pid = syscall(SYS_clone, (long)(CLONE_NEWNS | SIGCHLD), 0L, 0L, 0L, 0L);

	if (pid == 0)
		_exit(0);
}

static void
do_kill_usr2(void)
{
	(void)kill(getpid(), SIGUSR2);
}

static void
do_prctl_caps(void)
{
	(void)prctl(PR_CAPBSET_DROP, 0, 0, 0, 0);
}

static void
do_openat_raw(void)
{
	(void)syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY);
}

static void
do_execve(void)
{
	char *argv[] = { (char *)"/bin/true", NULL };

	(void)execve("/bin/true", argv, environ);
}

static void
do_execveat(void)
{
	char *argv[] = { (char *)"true", NULL };

	(void)syscall(SYS_execveat, AT_FDCWD, "/bin/true", argv, environ, 0);
}

static void
do_socket_inet(void)
{
	(void)socket(AF_INET, SOCK_STREAM, 0);
}

static void
do_socket_unix(void)
{
	(void)socket(AF_UNIX, SOCK_STREAM, 0);
}

static void
do_socket_netlink(void)
{
	(void)socket(AF_NETLINK, SOCK_RAW, 0);
}

static void
do_socket_packet(void)
{
	(void)socket(AF_PACKET, SOCK_RAW, 0);
}

static void
do_socket_raw(void)
{
	(void)socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
}

static void
do_socket_seqpacket(void)
{
	(void)socket(AF_INET, SOCK_SEQPACKET, 0);
}

static void
do_getsockname(void)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	(void)getsockname(0, (struct sockaddr *)&ss, &len);
}

static void
do_ioctl(void)
{
	int n;

	(void)ioctl(0, FIONREAD, &n);
}

static void
do_memfd_exec(void)
{
	/* only MFD_CLOEXEC|MFD_ALLOW_SEALING; here without sealing */
	(void)syscall(SYS_memfd_create, "x", MFD_CLOEXEC);
}

static void
do_socketpair(void)
{
	int sv[2];

	(void)socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
}

static void
do_listen(void)
{
	(void)listen(0, 1);
}

static void
do_ptrace(void)
{
	(void)ptrace(PTRACE_TRACEME, 0, NULL, NULL);
}

static void
do_fork(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
}

static void
do_vfork_raw(void)
{
	/* raw clone with fork flags: what fork() and vfork() come down to */
	long pid = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);

	if (pid == 0)
		_exit(0);
}

static void
do_clone3(void)
{
	(void)syscall(SYS_clone3, NULL, (size_t)0);
}

static void *
nothing(void *arg)
{
	return arg;
}

static void
do_pthread(void)
{
	pthread_t th;

	if (pthread_create(&th, NULL, nothing, NULL) == 0)
		pthread_join(th, NULL);
}

static void
do_setuid(void)
{
	if (setuid(0) != 0)
		return;
}

static void
do_setresuid(void)
{
	(void)syscall(SYS_setresuid, 0, 0, 0);
}

static void
do_mmap_exec(void)
{
	(void)mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void *exec_page;

static void
do_mprotect_exec(void)
{
	(void)mprotect(exec_page, 4096, PROT_READ | PROT_EXEC);
}

static void
do_fcntl_dupfd(void)
{
	(void)fcntl(0, F_DUPFD, 10);
}

static void
do_write_stdout(void)
{
	if (write(1, "", 0) < 0)
		return;
}

/* front writes and reads its spools at explicit offsets (spool.h) */
static void
do_lseek(void)
{
	(void)lseek(2, 0, SEEK_CUR);
}

static void
do_unshare(void)
{
	(void)syscall(SYS_unshare, CLONE_NEWUSER);
}

static void
do_prctl_dumpable(void)
{
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}

static void
do_kill0(void)
{
	(void)kill(getpid(), 0);
}

static void
do_memfd_hugetlb(void)
{
	(void)syscall(SYS_memfd_create, "x", MFD_HUGETLB);
}

static void
do_chroot(void)
{
	if (chroot("/") != 0)
		return;
}

struct fcase {
	const char *role;
	void (*fn)(void);
};

static int
forbidden_child(void *arg)
{
	const struct fcase *fc = arg;

	exec_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (exec_page == MAP_FAILED)
		return 100;
	enter(fc->role);
	/* reached: the filter is on and an allowed call works */
	if (write(2, "R", 1) != 1)
		return 101;
	fc->fn();
	/* survived: the call was allowed (or failed without being stopped) */
	if (write(2, "S", 1) != 1)
		return 102;
	return 0;
}

static void
test_forbidden(void **state)
{
	const struct fcase *fc = *state;
	char out[4096];
	int status;

	if (sandbox_seccomp_log_only())
		skip();		/* SECCOMP_LOG=1 build: nothing is stopped */
	status = run_child(forbidden_child, (void *)fc, out, sizeof(out));
	if (strcmp(out, "R") != 0 || !WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
		fail_msg("role %s: expected death by SIGSYS right after \"R\"; got %s %d, output "
		    "\"%s\" (R: filter loaded, S: the forbidden call returned)", fc->role,
		    WIFSIGNALED(status) ? "signal" : "exit status",
		    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), out);
}

/* ---- no path lookup under any filter ---- */

/*
 * A process in its sandbox must not learn anything about the filesystem by
 * name.  Each probe looks up /etc/shadow (or another path) with one system
 * call, as a compromised process would, by raw syscall(2) so that no libc
 * wrapper changes the arguments.  The filter must kill the process or the
 * call must fail; a probe that succeeds is a hole.  The first two are the
 * attack that found the old rule's hole: newfstatat with AT_EMPTY_PATH and
 * a non-empty path does look the path up (AT_FDCWD, or any descriptor when
 * the path is absolute).
 */
static struct stat lk_st;
static char lk_buf[256];

static long
lk_fstatat_empty_path(void)
{
	return syscall(SYS_newfstatat, AT_FDCWD, "/etc/shadow", &lk_st, AT_EMPTY_PATH);
}

static long
lk_fstatat_fd_absolute(void)
{
	return syscall(SYS_newfstatat, 2, "/etc/shadow", &lk_st, AT_EMPTY_PATH);
}

static long
lk_fstatat(void)
{
	return syscall(SYS_newfstatat, AT_FDCWD, "/etc/shadow", &lk_st, 0);
}

static long
lk_stat_libc(void)
{
	return stat("/etc/shadow", &lk_st);
}

static long
lk_statx(void)
{
	return syscall(SYS_statx, AT_FDCWD, "/etc/shadow", AT_EMPTY_PATH, 0x7ffU, lk_buf);
}

static long
lk_faccessat(void)
{
	return syscall(SYS_faccessat, AT_FDCWD, "/etc/shadow", F_OK);
}

static long
lk_readlinkat(void)
{
	return syscall(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", lk_buf, sizeof(lk_buf));
}

static long
lk_openat_path(void)
{
	return syscall(SYS_openat, AT_FDCWD, "/etc/shadow", O_PATH | O_CLOEXEC);
}

static long
lk_chdir(void)
{
	return syscall(SYS_chdir, "/etc");
}

static long
lk_statfs(void)
{
	return syscall(SYS_statfs, "/etc", lk_buf);
}

static long
lk_getxattr(void)
{
	return syscall(SYS_getxattr, "/etc/shadow", "security.selinux", lk_buf, sizeof(lk_buf));
}

static long
lk_name_to_handle(void)
{
	int mount_id;

	return syscall(SYS_name_to_handle_at, AT_FDCWD, "/etc/shadow", lk_buf, &mount_id, 0);
}

static long
lk_mkdirat(void)
{
	return syscall(SYS_mkdirat, AT_FDCWD, "/tmp/subproxy-sandbox-probe", 0700);
}

static long
lk_unlinkat(void)
{
	return syscall(SYS_unlinkat, AT_FDCWD, "/etc/subproxy-sandbox-probe", 0);
}

static long
lk_utimensat(void)
{
	return syscall(SYS_utimensat, AT_FDCWD, "/etc/shadow", NULL, 0);
}

#ifdef SYS_stat
static long
lk_stat_raw(void)
{
	return syscall(SYS_stat, "/etc/shadow", &lk_st);
}

static long
lk_access(void)
{
	return syscall(SYS_access, "/etc/shadow", F_OK);
}

/* the parent allows readlink(2) (the audit's files.modes follows
 * symlinks); no role under its own filter may */
static long
lk_readlink_raw(void)
{
	return syscall(SYS_readlink, "/proc/self/exe", lk_buf, sizeof(lk_buf));
}
#endif

struct lcase {
	const char *role;
	long (*fn)(void);
};

static int
lookup_child(void *arg)
{
	const struct lcase *lc = arg;
	const char *verdict;

	enter(lc->role);
	if (write(2, "R", 1) != 1)
		return 101;
	verdict = lc->fn() == -1 ? "E" : "OK";
	if (write(2, verdict, strlen(verdict)) < 0)
		return 102;
	return 0;
}

static void
test_no_lookup(void **state)
{
	const struct lcase *lc = *state;
	char out[4096];
	int status;

	if (sandbox_seccomp_log_only())
		skip();
	status = run_child(lookup_child, (void *)lc, out, sizeof(out));
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS && strcmp(out, "R") == 0)
		return;         /* the filter killed it at the call */
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && strcmp(out, "RE") == 0)
		return;         /* the call failed */
	fail_msg("role %s: a path lookup %s (output \"%s\", %s %d)", lc->role,
	    strcmp(out, "ROK") == 0 ? "SUCCEEDED under the filter" : "went wrong", out,
	    WIFSIGNALED(status) ? "signal" : "exit status",
	    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

/* ---- allowed work: signer ---- */

static char dkim_ed[128], dkim_rsa[128];
static gnutls_privkey_t tls_keys[3];
static char pwhash[crypto_pwhash_STRBYTES];

static void
write_pem(const char *path, const gnutls_datum_t *pem)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, pem->data, pem->size), (ssize_t)pem->size);
	close(fd);
}

static gnutls_x509_privkey_t
new_key(gnutls_pk_algorithm_t alg, unsigned bits, const char *path)
{
	gnutls_x509_privkey_t k;
	gnutls_datum_t pem;

	assert_int_equal(gnutls_x509_privkey_init(&k), 0);
	assert_int_equal(gnutls_x509_privkey_generate(k, alg, bits, 0), 0);
	if (path != NULL) {
		assert_int_equal(gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM, NULL,
		    GNUTLS_PKCS_PLAIN, &pem), 0);
		write_pem(path, &pem);
		gnutls_free(pem.data);
	}
	return k;
}

/* front's prefix travels in the request, the rest in the memfd */
static const char msg_prefix[] = "Received: from sandbox; Mon, 23 Nov 2026 08:00:00 +0000\r\n";
static const char msg_text[] =
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net\r\n"
    "Subject: sandboxed signing\r\n"
    "Date: Mon, 23 Nov 2026 08:00:00 +0000\r\n"
    "Message-ID: <1@example.org>\r\n"
    "\r\n"
    "Signed inside the signer's seccomp filter.\r\n";

static int
signer_child(void *arg)
{
	static struct proc_msg m;
	static const char policy_text[] = "From\nTo\nSubject\nDate\nMessage-ID\n";
	struct config_dkim_key keys[2] = { { (char *)"ed", dkim_ed }, { (char *)"rsa", dkim_rsa } };
	struct config_dkim dk = { (char *)"example.org", keys, 2, 1 };
	struct dkim_keyset *keyset;
	struct dkim_policy *pol;
	int fd = *(int *)arg;
	char err[512];
	uint8_t buf[256], rnd[32];
	struct proc_writer w;
	struct timespec ts;
	struct proc_reader r;
	const uint8_t *prefix;
	size_t plen;
	uint64_t want;
	char *headers;
	void *map, *p;
	off_t size;
	long n;
	int memfd, rc, seals;

	/* keys loaded before the filter, as in child_main */
	pol = dkim_policy_parse("test", policy_text, sizeof(policy_text) - 1, err, sizeof(err));
	if (pol == NULL || (keyset = dkim_keys_load(&dk, 1, pol, err, sizeof(err))) == NULL) {
		step(err);
		return child_fail("loading the DKIM keys");
	}
	dkim_policy_free(&pol);
	enter("signer");
	step("sched_yield (its slot threads under AddressSanitizer)");
	sched_yield();
	step("getrandom");
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return child_fail("getrandom");
	step("clock_gettime");
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || clock_gettime(CLOCK_MONOTONIC, &ts) != 0 ||
	    time(NULL) == (time_t)-1)
		return child_fail("clock_gettime");
	step("sodium_malloc");
	if ((p = sodium_malloc(5000)) == NULL)
		return child_fail("sodium_malloc");
	randombytes_buf(p, 5000);
	sodium_free(p);
	step("large malloc/realloc");
	if ((p = malloc(8 << 20)) == NULL || (p = realloc(p, 32 << 20)) == NULL)
		return child_fail("malloc");
	memset(p, 1, 32 << 20);
	free(p);
	step("log line");
	log_info("event=test-signer-sandboxed");
	for (;;) {
		memfd = -1;
		step("recvmsg");
		if ((rc = proc_recv(fd, &m, &memfd)) == 0)
			break;
		if (rc < 0 || memfd < 0)
			return child_fail("proc_recv");
		step("F_GET_SEALS, lseek SEEK_END, mmap of the memfd");
		proc_reader_init(&r, m.payload, m.len);
		if (proc_get_u64(&r, &want) < 0 ||
		    proc_get_bytes(&r, &prefix, &plen, SIGNER_PREFIX_MAX) < 0 ||
		    proc_reader_end(&r) < 0 ||
		    (seals = fcntl(memfd, F_GET_SEALS)) < 0 || (seals & SIGNER_SEALS) != SIGNER_SEALS ||
		    (size = lseek(memfd, 0, SEEK_END)) <= 0 || (uint64_t)size != want)
			return child_fail("memfd checks");
		map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, memfd, 0);
		if (map == MAP_FAILED)
			return child_fail("mmap memfd");
		step("dkim_sign_parts");
		headers = NULL;
		rc = (int)dkim_sign_parts(keyset, prefix, plen, map, (size_t)size, &headers);
		munmap(map, (size_t)size);
		close(memfd);
		step("sendmsg");
		proc_writer_init(&w, buf, sizeof(buf));
		proc_put_u32(&w, (uint32_t)rc);
		n = proc_writer_done(&w);
		if (proc_send(fd, PROC_SIGN_REP, m.id, buf, (size_t)n, -1) < 0)
			return child_fail("proc_send");
		if (headers != NULL && write(2, headers, strlen(headers)) < 0)
			return child_fail("write");
		free(headers);
	}
	step("dkim_keyset_free");
	dkim_keyset_free(&keyset);
	return 0;
}

static void
test_signer_works(void **state)
{
	static struct proc_msg m;
	char out[16384];
	uint8_t buf[128];
	struct proc_writer w;
	struct proc_reader r;
	uint32_t st;
	int sv[2], memfd, status, i;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	memfd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(memfd >= 0);
	assert_int_equal(write(memfd, msg_text, sizeof(msg_text) - 1), (ssize_t)sizeof(msg_text) - 1);
	assert_int_equal(fcntl(memfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW |
	    F_SEAL_SEAL), 0);
	/* two requests queued before the child runs; it answers both */
	for (i = 1; i <= 2; i++) {
		proc_writer_init(&w, buf, sizeof(buf));
		proc_put_u64(&w, sizeof(msg_text) - 1);
		proc_put_bytes(&w, msg_prefix, sizeof(msg_prefix) - 1);
		assert_int_equal(proc_send(sv[0], PROC_SIGN_REQ, (uint32_t)i, buf,
		    (size_t)proc_writer_done(&w), memfd), 0);
	}
	close(memfd);
	/* then EOF: the child answers both and exits 0 */
	assert_int_equal(shutdown(sv[0], SHUT_WR), 0);
	status = run_child(signer_child, &sv[1], out, sizeof(out));
	close(sv[1]);
	expect_exit0(status, out);
	for (i = 1; i <= 2; i++) {
		assert_int_equal(proc_recv(sv[0], &m, NULL), 1);
		assert_int_equal(m.type, PROC_SIGN_REP);
		assert_int_equal(m.id, (uint32_t)i);
		proc_reader_init(&r, m.payload, m.len);
		assert_int_equal(proc_get_u32(&r, &st), 0);
		if (st != DKIM_RES_OK)
			fail_msg("signing in the sandbox: %s; child output:\n%s",
			    dkim_result_name((enum dkim_result)st), out);
	}
	/* both keys of the domain signed: Ed25519 and RSA (OpenSSL) */
	assert_non_null(strstr(out, "a=ed25519-sha256"));
	assert_non_null(strstr(out, "a=rsa-sha256"));
	close(sv[0]);
}

/* ---- allowed work: keeper ---- */

/* As in keeper.c: workers started just before the filter wait on a
 * condition variable and check passwords with Argon2id; the main thread
 * hands them jobs under the filter. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const char *pw;		/* a job: the password to check; NULL: none */
	int result;		/* -1 until a worker answered */
} kw = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, -1 };

/* The password in guarded memory, 64 MiB of Argon2id work: 1 ok, 0 not. */
static int
check_in_guarded(const char *password)
{
	char *pw;
	int ok;

	if ((pw = sodium_malloc(64)) == NULL)
		return -2;
	snprintf(pw, 64, "%s", password);
	ok = crypto_pwhash_str_verify(pwhash, pw, strlen(pw)) == 0;
	sodium_free(pw);
	return ok;
}

static void *
keeper_worker(void *arg)
{
	const char *pw;
	int ok;

	/* AddressSanitizer's spin locks back off with sched_yield(2) when
	 * threads contend (a thread starting while another allocates, on a
	 * busy machine): here under the parent's filter, later under both */
	sched_yield();
	pthread_mutex_lock(&kw.mu);
	for (;;) {
		while (kw.pw == NULL)
			pthread_cond_wait(&kw.cv, &kw.mu);
		pw = kw.pw;
		kw.pw = NULL;		/* taken: the other worker keeps waiting */
		pthread_mutex_unlock(&kw.mu);
		ok = check_in_guarded(pw);
		pthread_mutex_lock(&kw.mu);
		kw.result = ok;
		pthread_cond_broadcast(&kw.cv);
	}
	return NULL;
}

static int
keeper_check(const char *pw)
{
	int r;

	pthread_mutex_lock(&kw.mu);
	kw.pw = pw;
	kw.result = -1;
	pthread_cond_broadcast(&kw.cv);
	while (kw.result == -1)
		pthread_cond_wait(&kw.cv, &kw.mu);
	r = kw.result;
	pthread_mutex_unlock(&kw.mu);
	return r;
}

static int
keeper_child(void *arg)
{
	static struct proc_msg m;
	static const gnutls_sign_algorithm_t algs[3] = {
		GNUTLS_SIGN_RSA_PSS_RSAE_SHA256, GNUTLS_SIGN_ECDSA_SECP256R1_SHA256,
		GNUTLS_SIGN_EDDSA_ED25519
	};
	int fd = *(int *)arg, i;
	gnutls_datum_t data = { (unsigned char *)"transcript hash", 15 }, sig;
	struct pollfd pfd;
	pthread_t th;

	/* like keeper.c: under the parent's filter (every child inherits it),
	 * the workers are created and the keeper's filter follows at once, so
	 * their start-up (set_robust_list, rseq) may run under both */
	enter("parent");
	for (i = 0; i < 2; i++)
		if (pthread_create(&th, NULL, keeper_worker, NULL) != 0)
			return child_fail("pthread_create before the filter");
	step("sched_yield under the parent's filter");
	sched_yield();
	enter("keeper");
	step("sched_yield");
	sched_yield();
	for (i = 0; i < 3; i++) {
		step(gnutls_sign_get_name(algs[i]));
		if (gnutls_privkey_sign_data2(tls_keys[i], algs[i], 0, &data, &sig) < 0)
			return child_fail("gnutls_privkey_sign_data2");
		gnutls_free(sig.data);
	}
	step("argon2id verify on the worker (64 MiB)");
	if (keeper_check("correct horse") != 1)
		return child_fail("argon2id verify of the right password");
	if (keeper_check("wrong horse!!") != 0)
		return child_fail("argon2id verify accepted a wrong password");
	step("poll with a timeout, recvmsg/sendmsg");
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 100) != 1)
		return child_fail("poll");
	if (proc_recv(fd, &m, NULL) != 1 || m.type != PROC_AUTH_REQ)
		return child_fail("proc_recv");
	if (proc_send(fd, PROC_AUTH_REP, m.id, "\0\0\0\1", 4, -1) < 0)
		return child_fail("proc_send");
	step("done");
	/* as keeper.c: _exit with the worker still waiting */
	return 0;
}

static void
test_keeper_works(void **state)
{
	static struct proc_msg m;
	char out[8192];
	int sv[2], status;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(proc_send(sv[0], PROC_AUTH_REQ, 7, "x", 1, -1), 0);
	status = run_child(keeper_child, &sv[1], out, sizeof(out));
	close(sv[1]);
	expect_exit0(status, out);
	assert_int_equal(proc_recv(sv[0], &m, NULL), 1);
	assert_int_equal(m.type, PROC_AUTH_REP);
	assert_int_equal(m.id, 7);
	close(sv[0]);
}

/* ---- allowed work: front ---- */

struct front_ctx {
	struct event_base *base;
	struct tls_server *ts;
	struct tls_client *tc;
	int lfd;			/* listening TCP socket, as inherited from the parent */
	struct sockaddr_in laddr;
	int peer[2];			/* socketpair standing in for the signer socket */
	int accepted;
	int timer_fired;
};

static void
front_on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct front_ctx *c = arg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	c->accepted = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c->accepted >= 0 && getpeername(c->accepted, (struct sockaddr *)&ss, &len) != 0)
		c->accepted = -2;
}

static void
front_on_timer(evutil_socket_t fd, short what, void *arg)
{
	((struct front_ctx *)arg)->timer_fired = 1;
}

static int
front_tls(struct front_ctx *c, int cfd, int sfd)
{
	gnutls_session_t cs = tls_client_session(c->tc, "mail.lab.test", NULL);
	gnutls_session_t ss = tls_server_session(c->ts);
	int cdone = 0, sdone = 0, i, r;
	char buf[64];

	gnutls_transport_set_int(cs, cfd);
	gnutls_transport_set_int(ss, sfd);
	for (i = 0; i < 2000 && !(cdone && sdone); i++) {
		if (!cdone && (r = gnutls_handshake(cs)) != GNUTLS_E_AGAIN) {
			if (r < 0)
				return child_fail(gnutls_strerror(r));
			cdone = 1;
		}
		if (!sdone && (r = gnutls_handshake(ss)) != GNUTLS_E_AGAIN) {
			if (r < 0)
				return child_fail(gnutls_strerror(r));
			sdone = 1;
		}
	}
	if (!(cdone && sdone))
		return child_fail("handshake did not finish");
	tls_describe(cs, buf, sizeof(buf));
	step(buf);
	if (gnutls_record_send(cs, "EHLO x\r\n", 8) != 8)
		return child_fail("gnutls_record_send");
	for (i = 0; i < 1000 && (r = (int)gnutls_record_recv(ss, buf, sizeof(buf))) ==
	    GNUTLS_E_AGAIN; i++)
		;
	if (r != 8 || memcmp(buf, "EHLO x\r\n", 8) != 0)
		return child_fail("gnutls_record_recv");
	gnutls_bye(cs, GNUTLS_SHUT_WR);
	gnutls_deinit(cs);
	gnutls_deinit(ss);
	return 0;
}

static int
front_child(void *arg)
{
	static struct proc_msg m;
	struct front_ctx *c = arg;
	struct event *ev, *tev;
	struct timeval tv = { 0, 1000 };
	struct sockaddr_in sin;
	struct spool *sp, *sp2;
	uint16_t port;
	char big[5000], buf[64];
	int cfd, ufd, sfd, one = 1, fd;
	size_t got;
	ssize_t n;

	/* as in production: under the parent's filter (the ceiling every
	 * child inherits), then front's own on top (stacked) */
	enter("parent");
	enter("front");
	step("socket(AF_INET) + connect");
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (cfd < 0 || (connect(cfd, (struct sockaddr *)&c->laddr, sizeof(c->laddr)) != 0 &&
	    errno != EINPROGRESS))
		return child_fail("connect");
	if (setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		return child_fail("setsockopt");
	step("event_base_loop once (epoll): accept4");
	ev = event_new(c->base, c->lfd, EV_READ, front_on_accept, c);
	tev = evtimer_new(c->base, front_on_timer, c);
	event_add(ev, NULL);
	evtimer_add(tev, &tv);
	c->accepted = -1;
	while (c->accepted == -1 || !c->timer_fired)
		if (event_base_loop(c->base, EVLOOP_ONCE) < 0)
			return child_fail("event_base_loop");
	if (c->accepted < 0)
		return child_fail("accept4/getpeername");
	event_free(ev);
	event_free(tev);
	step("TLS handshake (GnuTLS, both ends)");
	if (evutil_make_socket_nonblocking(cfd) < 0 || evutil_make_socket_closeonexec(cfd) < 0)
		return child_fail("fcntl F_SETFL/F_SETFD");
	if (front_tls(c, cfd, c->accepted) != 0)
		return 1;
	close(cfd);
	close(c->accepted);
	step("UDP like libunbound: a random port, sendto, recvfrom");
	ufd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ufd < 0)
		return child_fail("socket(AF_INET, SOCK_DGRAM)");
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (n = 0; n < 100; n++) {
		randombytes_buf(&port, sizeof(port));
		sin.sin_port = htons((uint16_t)(20000 + port % 40000));
		if (bind(ufd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			break;
	}
	if (n == 100 || sendto(ufd, "q", 1, 0, (struct sockaddr *)&sin, sizeof(sin)) != 1)
		return child_fail("UDP bind/sendto");
	while ((n = recvfrom(ufd, buf, sizeof(buf), 0, NULL, NULL)) < 0 && errno == EAGAIN)
		;
	if (n != 1)
		return child_fail("recvfrom");
	close(ufd);
	if ((fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0)) >= 0)
		close(fd);
	else if (errno != EAFNOSUPPORT)
		return child_fail("socket(AF_INET6)");
	step("spool in a memfd, sealed, sent with SCM_RIGHTS");
	memset(big, 'x', sizeof(big));
	sp = spool_new(1024);
	if (spool_append(sp, big, sizeof(big)) != 0 || !spool_in_file(sp) ||
	    (sfd = spool_seal(sp)) < 0)
		return child_fail("spool");
	if (spool_read(sp, 4000, buf, sizeof(buf), &got) != 0 || got != sizeof(buf))
		return child_fail("spool_read");
	step("a spool sealed from memory (moved to a memfd first)");
	sp2 = spool_new(1024);
	if (spool_append(sp2, big, sizeof(buf)) != 0 || spool_in_file(sp2) ||
	    spool_seal(sp2) < 0 || !spool_in_file(sp2) ||
	    spool_read(sp2, 0, buf, sizeof(buf), &got) != 0 || got != sizeof(buf))
		return child_fail("spool sealed from memory");
	spool_free(&sp2);
	step("the sealed spool's descriptor duplicated and sent (signer_client.c)");
	if ((sfd = fcntl(sfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return child_fail("fcntl F_DUPFD_CLOEXEC");
	if (proc_send(c->peer[0], PROC_SIGN_REQ, 1, "", 0, sfd) != 0)
		return child_fail("proc_send");
	close(sfd);
	fd = -1;
	if (proc_recv(c->peer[1], &m, &fd) != 1 || fd < 0)
		return child_fail("proc_recv");
	close(fd);
	spool_free(&sp);
	step("done");
	return 0;
}

static void
test_front_works(void **state)
{
	struct front_ctx c;
	socklen_t len = sizeof(c.laddr);
	char out[8192], err[512], cert[128], key[128];
	int status;

	memset(&c, 0, sizeof(c));
	snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/tls.key", tmpdir);
	c.ts = tls_server_new(cert, key, "NORMAL", err, sizeof(err));
	if (c.ts == NULL)
		fail_msg("%s", err);
	c.tc = tls_client_new("NORMAL", err, sizeof(err));
	assert_non_null(c.tc);
	c.base = event_base_new();
	assert_non_null(c.base);
	c.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(c.lfd >= 0);
	c.laddr.sin_family = AF_INET;
	c.laddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(c.lfd, (struct sockaddr *)&c.laddr, sizeof(c.laddr)), 0);
	assert_int_equal(getsockname(c.lfd, (struct sockaddr *)&c.laddr, &len), 0);
	assert_int_equal(listen(c.lfd, 8), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c.peer), 0);
	status = run_child(front_child, &c, out, sizeof(out));
	expect_exit0(status, out);
	assert_non_null(strstr(out, "step done"));
	close(c.lfd);
	close(c.peer[0]);
	close(c.peer[1]);
	event_base_free(c.base);
	tls_server_free(&c.ts);
	tls_client_free(&c.tc);
}

/* ---- allowed work: parent ---- */

/* What the supervisor does under its filter (src/supervisor.c): wait on a
 * signalfd with poll, read a file (the configuration at a reload), make a
 * generation's socketpairs and a pipe, fork a child that drops descriptors
 * and loads a role's filter on top (stacked), signal and reap it, log. */
static int
parent_child(void *arg)
{
	struct signalfd_siginfo si;
	struct pollfd pfd;
	struct stat st;
	sigset_t set;
	pid_t kid, role;
	char buf[256];
	int sfd, sv[2], pp[2], fd, status;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return child_fail("signalfd");
	enter("parent");
	step("poll the signalfd (nothing pending)");
	pfd.fd = sfd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 0) != 0)
		return child_fail("poll");
	step("read a file");
	if ((fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0 ||
	    read(fd, buf, sizeof(buf)) <= 0)
		return child_fail("open/read");
	close(fd);
	step("socketpair, pipe");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 ||
	    pipe2(pp, O_CLOEXEC) != 0)
		return child_fail("socketpair/pipe2");
	step("fork a child that loads a role's filter on top");
	fflush(NULL);
	if ((role = fork()) == 0) {
		int keep[1] = { 2 };

		close_fds_except(keep, 1);
		(void)prctl(PR_SET_NAME, "subproxy-test");
		enter("signer");
		_exit(0);
	}
	if (role < 0)
		return child_fail("fork");
	if (waitpid(role, &status, 0) != role || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return child_fail("the child's own filter");
	step("kill SIGTERM, waitpid, the signalfd says SIGCHLD");
	/* The child waits under the parent's filter as a worker does (poll;
	 * pause(2) is not allowed) and says so first, so that the kill always
	 * finds it waiting: a child that the kill happened to reach before it
	 * ran would prove nothing about the calls it makes. */
	if ((kid = fork()) == 0) {
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		if (write(pp[1], "w", 1) != 1)
			_exit(3);
		for (;;)
			(void)poll(NULL, 0, -1);
	}
	if (kid < 0)
		return child_fail("fork");
	if (read(pp[0], buf, 1) != 1)
		return child_fail("the waiting child's word");
	if (kill(kid, SIGTERM) != 0)
		return child_fail("kill");
	if (waitpid(kid, &status, 0) != kid || !WIFSIGNALED(status) || WTERMSIG(status) != SIGTERM) {
		snprintf(buf, sizeof(buf), "waitpid: status %#x, not killed by SIGTERM", status);
		return child_fail(buf);
	}
	if (poll(&pfd, 1, 5000) != 1 || read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si) ||
	    si.ssi_signo != SIGCHLD)
		return child_fail("signalfd");
	step("log line, exit");
	log_info("event=test-parent-sandboxed");
#ifdef __SANITIZE_ADDRESS__
	/* LeakSanitizer's exit-time check needs ptrace: see doc/sandbox.md */
	_exit(0);
#else
	exit(0);
#endif
}

static void
test_parent_works(void **state)
{
	char out[4096];
	int status = run_child(parent_child, NULL, out, sizeof(out));

	expect_exit0(status, out);
	assert_non_null(strstr(out, "step log line"));
}

/* ---- the tables ---- */

/* The recorder writes its log inside its chroot: it may open files, but
 * only with the two flag sets it uses (never O_RDONLY on a path, never
 * without O_NOFOLLOW), and rename them. */
static int
recorder_file_rule(const char *role, const struct sandbox_rule *r)
{
	if (strcmp(role, "recorder") != 0)
		return 0;
	if (strcmp(r->name, "rename") == 0)
		return 1;
	if (strcmp(r->name, "openat") != 0)
		return 0;
	return r->ncmps == 1 && r->cmps[0].arg == 2 && r->cmps[0].op == SANDBOX_CMP_EQ &&
	    (r->cmps[0].a & O_NOFOLLOW) && (r->cmps[0].a & O_ACCMODE) != O_RDONLY &&
	    (r->cmps[0].a == (O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY) ||
	    r->cmps[0].a == (O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW));
}

/*
 * The parent's filter is the ceiling of the whole process tree (it is
 * inherited by everything it starts, for the life of the service: workers,
 * generations, the audit child), so it allows what those need before their
 * own filters -- and nothing beyond, in these forms only (doc/sandbox.md,
 * "The parent's filter"):
 *   openat    read only: O_ACCMODE, O_CREAT, O_TRUNC and O_PATH all clear
 *   clone     a process or a thread, never a namespace
 *   ioctl     TCGETS only (isatty)
 *   prctl     name, dumpable, death signal, no_new_privs and their queries
 *   chroot, setuid, setgid, setresuid, setresgid, setgroups: becoming a role
 *   seccomp   a role's own filter (it can only narrow)
 *   socketpair AF_UNIX only
 */
static int
parent_ceiling_rule(const char *role, const struct sandbox_rule *r)
{
	static const char *const plain[] = {
		"chroot", "setuid", "setgid", "setresuid", "setresgid", "setgroups", "seccomp",
	};
	const long ns = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
	    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
	size_t i;

	if (strcmp(role, "parent") != 0)
		return 0;
	for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if (strcmp(r->name, plain[i]) == 0)
			return 1;
	if (strcmp(r->name, "openat") == 0)
		return r->ncmps == 1 && r->cmps[0].arg == 2 && r->cmps[0].op == SANDBOX_CMP_MASKED_EQ &&
		    (r->cmps[0].a & (O_ACCMODE | O_CREAT | O_TRUNC | O_PATH)) ==
		    (O_ACCMODE | O_CREAT | O_TRUNC | O_PATH) && r->cmps[0].b == O_RDONLY;
	if (strcmp(r->name, "clone") == 0)
		return r->ncmps == 1 && r->cmps[0].arg == 0 && r->cmps[0].op == SANDBOX_CMP_MASKED_EQ &&
		    ((long)r->cmps[0].a & ns) == ns && r->cmps[0].b == 0;
	if (strcmp(r->name, "ioctl") == 0)
		return r->ncmps == 1 && r->cmps[0].arg == 1 && r->cmps[0].op == SANDBOX_CMP_EQ &&
		    r->cmps[0].a == TCGETS;
	if (strcmp(r->name, "socketpair") == 0)
		return r->ncmps == 1 && r->cmps[0].arg == 0 && r->cmps[0].op == SANDBOX_CMP_EQ &&
		    r->cmps[0].a == AF_UNIX;
	if (strcmp(r->name, "prctl") == 0)
		return r->ncmps == 1 && r->cmps[0].arg == 0 && r->cmps[0].op == SANDBOX_CMP_EQ &&
		    (r->cmps[0].a == PR_SET_NAME || r->cmps[0].a == PR_SET_DUMPABLE ||
		    r->cmps[0].a == PR_SET_PDEATHSIG || r->cmps[0].a == PR_SET_NO_NEW_PRIVS ||
		    r->cmps[0].a == PR_GET_NO_NEW_PRIVS || r->cmps[0].a == PR_GET_SECCOMP);
	return 0;
}

static void
test_tables(void **state)
{
	static const char *const roles[] = { "signer", "keeper", "recorder", "front", "parent" };
	/* never allowed (errno rules are fine: they only make a call fail) */
	static const char *const never[] = {
		"open", "openat", "openat2", "creat", "open_by_handle_at", "execve", "execveat",
		"fork", "vfork", "ptrace", "setuid", "setgid", "setreuid", "setregid", "setresuid",
		"setresgid", "setgroups", "setfsuid", "setfsgid", "chroot", "mount", "unshare",
		"setns", "bpf", "seccomp", "prctl", "process_vm_readv", "process_vm_writev",
		"kexec_load", "init_module", "finit_module", "personality", "userfaultfd",
		"perf_event_open", "io_uring_setup", "link", "unlink", "rename", "mkdir",
		"symlink", "chmod", "chown", "truncate", "listen", "socketpair", "ioctl",
	};
	/* the key holders: no network, no threads, no signals to others */
	static const char *const keyholders_never[] = {
		"socket", "connect", "accept", "accept4", "bind", "sendto", "kill", "tgkill",
		"memfd_create",
	};
	const struct sandbox_policy *pol;
	size_t i, j, k;

	assert_null(sandbox_policy_find("nosuchrole"));
	for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		pol = sandbox_policy_find(roles[i]);
		if (pol == NULL)
			fail_msg("no seccomp/%s.policy in the generated tables", roles[i]);
		assert_true(pol->nrules > 5);
		for (j = 0; j < pol->nrules; j++) {
			const struct sandbox_rule *r = &pol->rules[j];

			if (seccomp_syscall_resolve_name(r->name) == __NR_SCMP_ERROR)
				fail_msg("%s: unknown name %s", roles[i], r->name);
			assert_true(r->ncmps <= SANDBOX_MAX_CMPS);
			for (k = 0; r->errno_ret == 0 && k < sizeof(never) / sizeof(never[0]); k++)
				if (strcmp(r->name, never[k]) == 0 && !recorder_file_rule(roles[i], r) &&
				    !parent_ceiling_rule(roles[i], r))
					fail_msg("seccomp/%s.policy:%u allows %s", roles[i], r->line,
					    r->name);
			for (k = 0; i < 3 && r->errno_ret == 0 &&
			    k < sizeof(keyholders_never) / sizeof(keyholders_never[0]); k++)
				if (strcmp(r->name, keyholders_never[k]) == 0)
					fail_msg("seccomp/%s.policy:%u allows %s", roles[i], r->line,
					    r->name);
			/* clone only for threads (CLONE_THREAD required by a mask); the
			 * parent forks, but never into a namespace */
			if (strcmp(r->name, "clone") == 0 && r->errno_ret == 0 &&
			    !parent_ceiling_rule(roles[i], r) &&
			    (r->ncmps != 1 || r->cmps[0].op != SANDBOX_CMP_MASKED_EQ ||
			    (r->cmps[0].b & CLONE_THREAD) == 0))
				fail_msg("seccomp/%s.policy:%u allows clone for processes", roles[i],
				    r->line);
			if (strcmp(r->name, "clone3") == 0 && r->errno_ret == 0)
				fail_msg("seccomp/%s.policy:%u allows clone3 (flags unfilterable)",
				    roles[i], r->line);
			/* a rule on mmap/mprotect must keep PROT_EXEC out */
			if (strcmp(r->name, "mmap") == 0 || strcmp(r->name, "mprotect") == 0) {
				assert_int_equal(r->ncmps, 1);
				assert_int_equal(r->cmps[0].op, SANDBOX_CMP_MASKED_EQ);
				assert_int_equal(r->cmps[0].arg, 2);
				assert_true(r->cmps[0].a & PROT_EXEC);
				assert_false(r->cmps[0].b & PROT_EXEC);
			}
		}
	}
}

static int
unknown_role_child(void *arg)
{
	char err[256];

	if (sandbox_seccomp("nosuchrole", err, sizeof(err)) != -1 ||
	    strstr(err, "nosuchrole") == NULL)
		return 1;
	/* nothing was loaded: a forbidden call still works */
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 0 && prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2)
		return 2;
	if (socket(AF_INET, SOCK_STREAM, 0) < 0)
		return 3;
	return 0;
}

static void
test_unknown_role(void **state)
{
	char out[1024];

	expect_exit0(run_child(unknown_role_child, NULL, out, sizeof(out)), out);
}

static void
test_available(void **state)
{
	char why[256];

	/* this machine runs the other tests: seccomp must be there */
	assert_int_equal(sandbox_available(why, sizeof(why)), 1);
	assert_non_null(strstr(why, "libseccomp"));
}

static int
nodump_child(void *arg)
{
	struct rlimit rl;

	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
		return 1;
	sandbox_nodump();
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		return 2;
	if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0 || rl.rlim_max != 0)
		return 3;
	return 0;
}

static void
test_nodump(void **state)
{
	char out[1024];

	expect_exit0(run_child(nodump_child, NULL, out, sizeof(out)), out);
}

/* ---- chroot and uid ---- */

static char safedir[64];	/* under a root-owned, go-w parent; "" if none */

struct dcase {
	const char *user;
	const char *dir;
	const char *expect;		/* substring of the error */
};

static int
drop_refused_child(void *arg)
{
	const struct dcase *dc = arg;
	char err[512] = "";

	if (sandbox_drop(dc->user, dc->dir, err, sizeof(err)) != -1) {
		step("sandbox_drop accepted");
		return 1;
	}
	if (write(2, err, strlen(err)) < 0)
		return 3;
	if (strstr(err, dc->expect) == NULL)
		return 2;
	/* refused before changing anything */
	if (geteuid() != 0 || access("/etc/passwd", F_OK) != 0)
		return 4;
	return 0;
}

static void
drop_refused(const char *user, const char *dir, const char *expect)
{
	struct dcase dc = { user, dir, expect };
	char out[1024];
	int status = run_child(drop_refused_child, &dc, out, sizeof(out));

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("sandbox_drop(%s, %s): expected a refusal mentioning \"%s\"; status %d, "
		    "output: %s", user ? user : "NULL", dir ? dir : "NULL", expect,
		    WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status), out);
}

static void
test_drop_refusals(void **state)
{
	char path[128], file[160], link[160];
	int fd;

	if (geteuid() != 0 || safedir[0] == '\0')
		skip();
	drop_refused(NULL, safedir, "unprivileged user");
	drop_refused("", safedir, "unprivileged user");
	drop_refused("no-such-user-subproxy", safedir, "no such user");
	drop_refused("root", safedir, "uid 0");
	drop_refused("nobody", "relative/dir", "absolute");
	snprintf(path, sizeof(path), "%s/missing", safedir);
	drop_refused("nobody", path, "No such file");
	/* under /tmp (mode 1777): others could swap the tree */
	drop_refused("nobody", tmpdir, "writable by group or others");
	/* the directory itself group-writable, then owned by someone else */
	assert_int_equal(chmod(safedir, 0775), 0);
	drop_refused("nobody", safedir, "writable by group or others");
	assert_int_equal(chmod(safedir, 0755), 0);
	assert_int_equal(chown(safedir, 65534, 0), 0);
	drop_refused("nobody", safedir, "not owned by root");
	assert_int_equal(chown(safedir, 0, 0), 0);
	/* a symlink to a good directory: refused, it could be re-pointed */
	snprintf(link, sizeof(link), "%s.link", safedir);
	assert_int_equal(symlink(safedir, link), 0);
	drop_refused("nobody", link, "symlink");
	unlink(link);
	/* not empty */
	snprintf(file, sizeof(file), "%s/leftover", safedir);
	fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	drop_refused("nobody", safedir, "not empty");
	unlink(file);
	/* a file, not a directory */
	drop_refused("nobody", "/etc/passwd", "Not a directory");
}

static int
drop_child(void *arg)
{
	char err[512] = "", cwd[64];
	struct stat st;
	uid_t r, e, s;

	if (sandbox_drop("nobody", safedir, err, sizeof(err)) != 0) {
		if (write(2, err, strlen(err)) < 0)
			return 9;
		return 1;
	}
	if (getresuid(&r, &e, &s) != 0 || r == 0 || e == 0 || s == 0)
		return 2;
	if (getgroups(0, NULL) != 0)
		return 3;
	if (stat("/etc/passwd", &st) == 0 || errno != ENOENT)
		return 4;		/* the chroot hides the real root */
	if (getcwd(cwd, sizeof(cwd)) == NULL || strcmp(cwd, "/") != 0)
		return 5;
	if (setuid(0) != -1 || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		return 6;
	/* and the strictest filter still loads on top */
	enter("signer");
	return 0;
}

static void
test_drop(void **state)
{
	char out[1024];

	if (geteuid() != 0 || safedir[0] == '\0')
		skip();
	expect_exit0(run_child(drop_child, NULL, out, sizeof(out)), out);
}

static int
drop_unprivileged_child(void *arg)
{
	char err[256] = "";

	if (geteuid() == 0 && setresuid(65534, 65534, 65534) != 0)
		return 1;
	/* not root: nothing to change, nothing refused, even a bad dir */
	if (sandbox_drop("no-such-user", "/nonexistent", err, sizeof(err)) != 0)
		return 2;
	if (geteuid() == 0)
		return 3;
	return 0;
}

static void
test_drop_unprivileged(void **state)
{
	char out[1024];

	expect_exit0(run_child(drop_unprivileged_child, NULL, out, sizeof(out)), out);
}

/* ---- the generator ---- */

static char srcdir[256], resolver[128];

/* Run seccomp/gen.sh on one policy text written to tmpdir/NAME.  Returns
 * the exit status; out gets stdout+stderr, gen the generated C (if any). */
static int
gen_run(const char *name, const char *text, int use_resolver, char *out, size_t outlen,
    char *gen, size_t genlen)
{
	char pol[192], cfile[192], cmd[1024];
	size_t n;
	FILE *f;
	int st;

	snprintf(pol, sizeof(pol), "%s/%s", tmpdir, name);
	snprintf(cfile, sizeof(cfile), "%s/out.c", tmpdir);
	unlink(cfile);
	f = fopen(pol, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "sh '%s/seccomp/gen.sh' %s%s%s -o '%s' '%s' 2>&1", srcdir,
	    use_resolver ? "-r '" : "", use_resolver ? resolver : "", use_resolver ? "'" : "",
	    cfile, pol);
	f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	st = pclose(f);
	if (gen != NULL) {
		gen[0] = '\0';
		if ((f = fopen(cfile, "r")) != NULL) {
			n = fread(gen, 1, genlen - 1, f);
			gen[n] = '\0';
			fclose(f);
		}
	}
	unlink(pol);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void
gen_refused(const char *text, const char *expect)
{
	char out[2048], gen[256];
	int rc = gen_run("t.policy", text, 1, out, sizeof(out), gen, sizeof(gen));

	if (rc == 0 || strstr(out, expect) == NULL)
		fail_msg("generator on \"%s\": exit %d, expected a refusal mentioning \"%s\"; "
		    "output: %s", text, rc, expect, out);
	/* nothing written when refused */
	assert_string_equal(gen, "");
}

static void
test_gen_refuses(void **state)
{
	gen_refused("read  # fine\nopneat   # typo\n", "t.policy:2: unknown system call \"opneat\"");
	gen_refused("read  # fine\nnot_a_syscall_at_all # x\n", "unknown system call");
	gen_refused("read\n", "t.policy:1: rule without a reason");
	gen_refused("read   #   \n", "rule without a reason");
	gen_refused("Read # x\n", "is not a system call name");
	gen_refused("socket arg7 == 1 # x\n", "expected arg0..arg5");
	gen_refused("socket arg0 = 1 # x\n", "unknown operator");
	gen_refused("socket arg0 == # x\n", "incomplete");
	gen_refused("socket arg0 == 1 arg1 == 2 # x\n", "expected \"and\"");
	gen_refused("fcntl arg1 >= 1 and arg1 <= 4 # x\n", "arg1 compared twice");
	gen_refused("mmap arg2 & PROT_EXEC < 1 # x\n", "only == and in");
	gen_refused("socket arg0 == AF_INET;system # x\n", "bad value");
	gen_refused("socket arg0 == 012 # x\n", "bad value");
	gen_refused("socket arg0 in AF_INET,,AF_INET6 # x\n", "bad value");
	gen_refused("clone3 => enosys # x\n", "=> ENAME");
	gen_refused("clone3 => ENOSYS arg0 == 1 # x\n", "=> ENAME");
	gen_refused("read # a\nread arg0 == 2 # b\n", "allowed unconditionally on line 1");
	gen_refused("read arg0 == 2 # b\nread # a\n", "already has rules on line 1");
	gen_refused("# only comments\n\n", "no rules");
	gen_refused("socket arg0 in 1,2,3,4,5,6,7,8,9 and arg1 in 1,2,3,4,5,6,7,8 # x\n",
	    "more than 64");
}

static void
test_gen_file_name(void **state)
{
	char out[2048];

	assert_int_not_equal(gen_run("Bad-Name.policy", "read # x\n", 1, out, sizeof(out),
	    NULL, 0), 0);
	assert_non_null(strstr(out, "ROLE.policy"));
}

static void
test_gen_output(void **state)
{
	static const char text[] =
	    "# a comment line\n"
	    "\n"
	    "read                      # plain\n"
	    "socket arg0 in AF_INET,AF_INET6 and arg1 & 15 in 1,2   # product\n"
	    "mmap arg2 & PROT_EXEC == 0   # masked\n"
	    "kill\targ1 != SIGKILL|SIGTERM  # tabs and |\n"
	    "clone3 => ENOSYS          # errno action\n"
	    "open => EACCES   # legacy open, x86_64 only\n";
	char out[2048], gen[16384], cmd[1024];
	const char *p;
	int n = 0;

	/* without -r: gen.sh builds the resolver itself */
	if (gen_run("t.policy", text, 0, out, sizeof(out), gen, sizeof(gen)) != 0)
		fail_msg("generator refused a good policy: %s", out);
	for (p = gen; (p = strstr(p, "{ \"socket\"")) != NULL; p++)
		n++;
	assert_int_equal(n, 4);		/* 2 families x 2 types */
	assert_non_null(strstr(gen, "{ \"socket\", 0, 4, 2, { { 0, SANDBOX_CMP_EQ, "
	    "(uint64_t)(AF_INET), 0 }, { 1, SANDBOX_CMP_MASKED_EQ, (uint64_t)(15), "
	    "(uint64_t)(1) } } }"));
	assert_non_null(strstr(gen, "{ 2, SANDBOX_CMP_MASKED_EQ, (uint64_t)(PROT_EXEC), "
	    "(uint64_t)(0) }"));
	assert_non_null(strstr(gen, "{ 1, SANDBOX_CMP_NE, (uint64_t)(SIGKILL|SIGTERM), 0 }"));
	assert_non_null(strstr(gen, "{ \"clone3\", ENOSYS, 7, 0,"));
	assert_non_null(strstr(gen, "#line 3 \""));
	assert_non_null(strstr(gen, "{ \"t\", rules_t,"));
	assert_non_null(strstr(gen, "sandbox_npolicies = 1;"));
	/* it compiles; an unknown constant is a compile error at the policy line */
	snprintf(cmd, sizeof(cmd), "${CC:-cc} -std=c17 -Wall -Werror -iquote '%s/src' -c -o "
	    "'%s/out.o' '%s/out.c' 2>&1", srcdir, tmpdir, tmpdir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(gen_run("t.policy", "socket arg0 == AF_NOPE # x\n", 1, out, sizeof(out),
	    NULL, 0), 0);
	snprintf(cmd, sizeof(cmd), "${CC:-cc} -std=c17 -iquote '%s/src' -c -o '%s/out.o' "
	    "'%s/out.c' 2>&1 | grep -q 't.policy:1'", srcdir, tmpdir, tmpdir);
	assert_int_equal(system(cmd), 0);
}

/* ---- setup ---- */

static void
write_cert(const char *certpath, const char *keypath)
{
	gnutls_x509_privkey_t k = new_key(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
	    keypath);
	gnutls_x509_crt_t crt;
	gnutls_datum_t pem;
	unsigned char serial[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	time_t now = time(NULL);

	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
	assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 3600), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 86400), 0);
	assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
	    "mail.lab.test", 13), 0);
	assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME,
	    "mail.lab.test", 13, GNUTLS_FSAN_SET), 0);
	assert_int_equal(gnutls_x509_crt_set_key(crt, k), 0);
	assert_int_equal(gnutls_x509_crt_sign2(crt, crt, k, GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem), 0);
	write_pem(certpath, &pem);
	gnutls_free(pem.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(k);
}

static int
setup(void **state)
{
	static const gnutls_pk_algorithm_t algs[3] = {
		GNUTLS_PK_RSA, GNUTLS_PK_ECDSA, GNUTLS_PK_EDDSA_ED25519
	};
	static const unsigned bits[3] = { 2048, 256, 256 };
	char cert[128], tlskey[128], cmd[768];
	gnutls_x509_privkey_t xk;
	const char *s;
	int i;

	log_init("test", LOG_LVL_INFO);
	assert_true(sodium_init() >= 0);
	tls_init();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_sandbox.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	s = getenv("SUBPROXY_SRCDIR");
	snprintf(srcdir, sizeof(srcdir), "%s", s ? s : ".");
	snprintf(cmd, sizeof(cmd), "%s/seccomp/gen.sh", srcdir);
	if (access(cmd, R_OK) != 0) {
		fprintf(stderr, "test_sandbox: %s not found: run from the source tree or set "
		    "SUBPROXY_SRCDIR\n", cmd);
		return -1;
	}
	snprintf(resolver, sizeof(resolver), "%s/resolve", tmpdir);
	snprintf(cmd, sizeof(cmd), "${CC:-cc} -o '%s' '%s/seccomp/resolve.c' "
	    "$(pkg-config --cflags --libs libseccomp)", resolver, srcdir);
	if (system(cmd) != 0)
		return -1;

	/* signer: DKIM key files (the child loads them, as child_main does) */
	snprintf(dkim_ed, sizeof(dkim_ed), "%s/ed.key", tmpdir);
	snprintf(dkim_rsa, sizeof(dkim_rsa), "%s/rsa.key", tmpdir);
	gnutls_x509_privkey_deinit(new_key(GNUTLS_PK_EDDSA_ED25519, 256, dkim_ed));
	gnutls_x509_privkey_deinit(new_key(GNUTLS_PK_RSA, 2048, dkim_rsa));

	/* keeper: TLS private keys and a password hash */
	for (i = 0; i < 3; i++) {
		xk = new_key(algs[i], bits[i], NULL);
		assert_int_equal(gnutls_privkey_init(&tls_keys[i]), 0);
		assert_int_equal(gnutls_privkey_import_x509(tls_keys[i], xk,
		    GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE), 0);
	}
	assert_int_equal(crypto_pwhash_str(pwhash, "correct horse", 13,
	    crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE), 0);

	/* front: a certificate for the handshake */
	snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
	snprintf(tlskey, sizeof(tlskey), "%s/tls.key", tmpdir);
	write_cert(cert, tlskey);

	/* drop: an empty directory under a parent only root can write */
	safedir[0] = '\0';
	if (geteuid() == 0) {
		snprintf(safedir, sizeof(safedir), "/run/subproxy-test.XXXXXX");
		if (mkdtemp(safedir) == NULL || chmod(safedir, 0755) != 0)
			safedir[0] = '\0';
	}
	return 0;
}

static int
teardown(void **state)
{
	char cmd[256];
	int i;

	for (i = 0; i < 3; i++)
		gnutls_privkey_deinit(tls_keys[i]);
	if (safedir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s.link'", safedir, safedir);
		if (system(cmd) != 0)
			return -1;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

#define STOPCONT(role) { "stop and continue " role, test_stop_continue, NULL, NULL, role }
#define F(role, probe) { "forbidden " role " " #probe, test_forbidden, NULL, NULL, \
	&(struct fcase){ role, do_##probe } }
#define L(role, probe) { "no lookup " role " " #probe, test_no_lookup, NULL, NULL, \
	&(struct lcase){ role, lk_##probe } }
#ifdef SYS_stat
#define LOOKUPS_LEGACY(role) L(role, stat_raw), L(role, access), L(role, readlink_raw),
#else
#define LOOKUPS_LEGACY(role)
#endif
#define LOOKUPS(role) \
	L(role, fstatat_empty_path), L(role, fstatat_fd_absolute), L(role, fstatat), \
	L(role, stat_libc), L(role, statx), L(role, faccessat), L(role, readlinkat), \
	L(role, openat_path), L(role, chdir), L(role, statfs), L(role, getxattr), \
	L(role, name_to_handle), L(role, mkdirat), L(role, unlinkat), L(role, utimensat), \
	LOOKUPS_LEGACY(role)
#define KEYHOLDER(role) \
	F(role, openat), F(role, openat_raw), F(role, execve), F(role, execveat), \
	F(role, socket_inet), F(role, socket_unix), F(role, socketpair), F(role, ptrace), \
	F(role, fork), F(role, vfork_raw), F(role, clone3), F(role, pthread), F(role, setuid), \
	F(role, setresuid), \
	F(role, mmap_exec), F(role, mprotect_exec), F(role, fcntl_dupfd), \
	F(role, write_stdout), F(role, unshare), F(role, prctl_dumpable), F(role, kill0), \
	F(role, memfd_hugetlb), F(role, chroot)

/* The recorder: a key holder that writes one file (write(2) to any
 * descriptor is its job), and opens files only with its own flags. */
#define RECORDER \
	F("recorder", openat), F("recorder", openat_raw), F("recorder", openat_follow), \
	F("recorder", execve), F("recorder", execveat), F("recorder", socket_inet), \
	F("recorder", socket_unix), F("recorder", socketpair), F("recorder", ptrace), \
	F("recorder", fork), F("recorder", vfork_raw), F("recorder", clone3), \
	F("recorder", pthread), F("recorder", setuid), F("recorder", setresuid), \
	F("recorder", mmap_exec), F("recorder", mprotect_exec), \
	F("recorder", fcntl_dupfd), F("recorder", unshare), F("recorder", prctl_dumpable), \
	F("recorder", kill0), F("recorder", memfd_hugetlb), F("recorder", chroot)

/* The parent: the ceiling of the tree (parent_ceiling_rule()).  Reading
 * files, forking and becoming a role are allowed; writing, creating,
 * executing, tracing, namespaces, other socket families and executable
 * memory are not. */
#define PARENT \
	F("parent", openat_follow), F("parent", openat_write), F("parent", openat_trunc), \
	F("parent", execve), F("parent", execveat), F("parent", socket_unix), \
	F("parent", socket_netlink), F("parent", socket_packet), F("parent", socket_raw), \
	F("parent", listen), F("parent", getsockname), F("parent", ptrace), \
	F("parent", unshare), F("parent", clone_newns), F("parent", mmap_exec), \
	F("parent", mprotect_exec), F("parent", kill0), F("parent", kill_usr2), \
	F("parent", memfd_exec), F("parent", memfd_hugetlb), F("parent", prctl_caps), \
	F("parent", ioctl),
/* What the parent's filter still refuses to look up: everything but
 * openat (read only), newfstatat, readlink and chdir (doc/sandbox.md). */
#ifdef SYS_stat
#define PARENT_LOOKUPS_LEGACY L("parent", stat_raw), L("parent", access),
#else
#define PARENT_LOOKUPS_LEGACY
#endif
#define PARENT_LOOKUPS \
	L("parent", statx), L("parent", faccessat), L("parent", readlinkat), \
	L("parent", openat_path), L("parent", statfs), L("parent", getxattr), \
	L("parent", name_to_handle), L("parent", mkdirat), L("parent", unlinkat), \
	L("parent", utimensat), PARENT_LOOKUPS_LEGACY

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_tables),
	cmocka_unit_test(test_available),
	cmocka_unit_test(test_unknown_role),
	cmocka_unit_test(test_nodump),
	STOPCONT("signer"), STOPCONT("keeper"), STOPCONT("recorder"), STOPCONT("front"),
	STOPCONT("parent"),
	cmocka_unit_test(test_recorder_fstat),
	KEYHOLDER("signer"),
	KEYHOLDER("keeper"),
	RECORDER,
	F("front", openat), F("front", openat_raw), F("front", execve), F("front", execveat),
	F("front", socket_unix), F("front", socket_netlink), F("front", socket_packet),
	F("front", socket_raw), F("front", socket_seqpacket), F("front", getsockname),
	F("front", ioctl), F("front", memfd_exec), F("front", socketpair), F("front", listen),
	F("front", ptrace), F("front", fork), F("front", vfork_raw), F("front", clone3),
	F("front", pthread), F("front", setuid), F("front", setresuid), F("front", mmap_exec),
	F("front", mprotect_exec), F("front", fcntl_dupfd), F("front", lseek),
	F("front", unshare), F("front", prctl_dumpable), F("front", kill0),
	F("front", memfd_hugetlb), F("front", chroot),
	PARENT
	LOOKUPS("signer") LOOKUPS("keeper") LOOKUPS("recorder") LOOKUPS("front")
	PARENT_LOOKUPS
	cmocka_unit_test(test_signer_works),
	cmocka_unit_test(test_keeper_works),
	cmocka_unit_test(test_front_works),
	cmocka_unit_test(test_parent_works),
	cmocka_unit_test(test_drop_refusals),
	cmocka_unit_test(test_drop),
	cmocka_unit_test(test_drop_unprivileged),
	cmocka_unit_test(test_gen_refuses),
	cmocka_unit_test(test_gen_file_name),
	cmocka_unit_test(test_gen_output),
};

int
main(void)
{
	return cmocka_run_group_tests(tests, setup, teardown);
}
