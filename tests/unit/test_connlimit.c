/* test_connlimit.c — the counts the front workers share: connections
 * counted across slices written by separate processes, sessions and
 * memory per login, a dead writer's slice cleared, a full slice, and that
 * racing workers never admit beyond a limit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <sodium.h>

#include "connlimit.h"

/* Runs first: no table yet, a private one appears. */
static void
test_private_table(void **state)
{
	struct connlimit_count c;
	long a, b;

	a = connlimit_add("192.0.2.1", &c);
	assert_true(a >= 0);
	assert_int_equal(c.total, 1);
	assert_int_equal(c.same, 1);
	b = connlimit_add("192.0.2.2", &c);
	assert_int_equal(c.total, 2);
	assert_int_equal(c.same, 1);
	connlimit_del(a);
	connlimit_del(a);               /* twice: no effect */
	connlimit_del(-1);
	assert_true(connlimit_add("192.0.2.2", &c) >= 0);
	assert_int_equal(c.total, 2);
	assert_int_equal(c.same, 2);
	connlimit_del(b);
	/* connections waiting for a PROXY header count in the total only */
	connlimit_set_pending(3);
	assert_int_equal(connlimit_total(), 4);
	b = connlimit_add("192.0.2.9", &c);
	assert_int_equal(c.total, 5);
	assert_int_equal(c.same, 1);
	connlimit_del(b);
	connlimit_set_pending(0);
	assert_int_equal(connlimit_total(), 1);
}

/* A child process writes slice `slice`: n connections from key, then
 * waits for a byte on the pipe (or exits at once, leaving them behind). */
static pid_t
writer(size_t slice, const char *key, int n, int *hold)
{
	struct connlimit_count c;
	int fds[2], i;
	pid_t pid;
	char ch;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* only our own pipe: another writer's must see EOF when the
		 * test closes its end */
		for (i = 3; i < 64; i++)
			if (i != fds[0])
				close(i);
		connlimit_attach(slice);
		for (i = 0; i < n; i++)
			if (connlimit_add(key, &c) < 0)
				_exit(2);
		if (read(fds[0], &ch, 1) < 0)
			_exit(3);
		_exit(0);
	}
	close(fds[0]);
	*hold = fds[1];
	return pid;
}

static void
wait_used(size_t slice, unsigned n)
{
	int i;

	for (i = 0; i < 2000 && connlimit_used(slice) != n; i++)
		usleep(1000);
	assert_int_equal(connlimit_used(slice), n);
}

static void
test_across_processes(void **state)
{
	struct connlimit_count c;
	int hold1, hold2, status;
	pid_t p1, p2;
	long id;

	assert_int_equal(connlimit_init(4, 16), 0);
	connlimit_attach(0);
	p1 = writer(1, "2001:db8::/64", 3, &hold1);
	p2 = writer(2, "198.51.100.7", 2, &hold2);
	wait_used(1, 3);
	wait_used(2, 2);
	id = connlimit_add("2001:db8::/64", &c);
	assert_true(id >= 0);
	assert_int_equal(c.total, 6);
	assert_int_equal(c.same, 4);
	connlimit_del(id);
	/* the first writer dies with its connections open: the parent clears
	 * its slice, the counts drop */
	close(hold1);
	assert_int_equal(waitpid(p1, &status, 0), p1);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(connlimit_used(1), 3);
	connlimit_clear(1);
	assert_int_equal(connlimit_used(1), 0);
	id = connlimit_add("2001:db8::/64", &c);
	assert_int_equal(c.total, 3);
	assert_int_equal(c.same, 1);
	connlimit_del(id);
	/* a replacement attaches to the cleared slice and counts from zero */
	p1 = writer(1, "198.51.100.7", 1, &hold1);
	wait_used(1, 1);
	id = connlimit_add("198.51.100.7", &c);
	assert_int_equal(c.same, 4);
	connlimit_del(id);
	close(hold1);
	close(hold2);
	assert_int_equal(waitpid(p1, &status, 0), p1);
	assert_int_equal(waitpid(p2, &status, 0), p2);
	connlimit_clear(1);
	connlimit_clear(2);
	assert_int_equal(connlimit_used(99), 0);
	connlimit_clear(99);            /* out of range: ignored */
}

/* Sessions per login and memory per login, summed over workers. */
static void
test_logins_across_processes(void **state)
{
	unsigned n;
	long id, mem;
	int fds[2], status;
	pid_t pid;
	char ch;

	assert_int_equal(connlimit_init(3, 16), 0);
	connlimit_attach(0);
	assert_int_equal(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		close(fds[1]);
		connlimit_attach(2);
		if (connlimit_put(CL_LOGIN, "alice@lab.test", 1) < 0 ||
		    (mem = connlimit_put(CL_MEMORY, "alice@lab.test", 100)) < 0)
			_exit(2);
		connlimit_set(mem, 700);
		if (read(fds[0], &ch, 1) < 0)
			_exit(3);
		_exit(0);
	}
	close(fds[0]);
	for (n = 0; n < 2000 && connlimit_sum(CL_MEMORY, "alice@lab.test", NULL) != 700; n++)
		usleep(1000);
	id = connlimit_put(CL_LOGIN, "alice@lab.test", 1);
	mem = connlimit_put(CL_MEMORY, "alice@lab.test", 50);
	assert_int_equal(connlimit_sum(CL_LOGIN, "alice@lab.test", &n), 2);
	assert_int_equal(n, 2);
	assert_int_equal(connlimit_sum(CL_MEMORY, "alice@lab.test", &n), 750);
	assert_int_equal(n, 2);
	/* kinds and keys do not mix: a connection from "alice@lab.test" is
	 * no session, another login has none */
	assert_int_equal(connlimit_sum(CL_CONN, "alice@lab.test", &n), 0);
	assert_int_equal(connlimit_sum(CL_LOGIN, "bob@lab.test", &n), 0);
	assert_int_equal(connlimit_used(2), 0);         /* no connections there */
	connlimit_del(id);
	connlimit_del(mem);
	assert_int_equal(connlimit_sum(CL_LOGIN, "alice@lab.test", NULL), 1);
	close(fds[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	connlimit_clear(2);
	assert_int_equal(connlimit_sum(CL_MEMORY, "alice@lab.test", NULL), 0);
}

static void
test_full_slice(void **state)
{
	struct connlimit_count c;
	long ids[4];
	int i;

	assert_int_equal(connlimit_init(2, 4), 0);
	connlimit_attach(1);
	for (i = 0; i < 4; i++)
		assert_true((ids[i] = connlimit_add("a", &c)) >= 0);
	assert_int_equal(connlimit_add("b", &c), -1);
	assert_int_equal(connlimit_used(1), 4);
	/* a freed entry is used again */
	connlimit_del(ids[2]);
	assert_int_equal(connlimit_add("b", &c), ids[2]);
	assert_int_equal(c.total, 4);
	assert_int_equal(c.same, 1);
	connlimit_attach(99);           /* out of range: nothing is recorded */
	assert_int_equal(connlimit_add("a", &c), -1);
}

/* Workers racing for the places of one per-address limit: each keeps its
 * connection only if the count it saw is within the limit.  At no time
 * may more than LIMIT be kept (the shared `kept` counter checks it).  A
 * smoke test: it shows no systematic over-admission, but cannot force
 * the narrow interleavings; the ordering argument is in connlimit.h. */
#define RACERS  4
#define ROUNDS  3000
#define LIMIT   3

static void
test_race_never_over(void **state)
{
	struct connlimit_count c;
	uint32_t *shared;
	pid_t pids[RACERS];
	int i, status, r;

	assert_int_equal(connlimit_init(RACERS, 8), 0);
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(shared != MAP_FAILED);
	shared[0] = 0;          /* kept now */
	shared[1] = 0;          /* highest ever */
	shared[2] = 0;          /* admissions */
	for (i = 0; i < RACERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			connlimit_attach((size_t)i);
			for (r = 0; r < ROUNDS; r++) {
				long id = connlimit_add("203.0.113.9", &c);

				if (id < 0)
					_exit(2);
				if (c.same <= LIMIT) {
					uint32_t now = __atomic_add_fetch(&shared[0], 1,
					    __ATOMIC_SEQ_CST);
					uint32_t hi = __atomic_load_n(&shared[1], __ATOMIC_SEQ_CST);

					while (now > hi && !__atomic_compare_exchange_n(&shared[1],
					    &hi, now, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
						;
					__atomic_add_fetch(&shared[2], 1, __ATOMIC_SEQ_CST);
					__atomic_sub_fetch(&shared[0], 1, __ATOMIC_SEQ_CST);
				}
				connlimit_del(id);
			}
			_exit(0);
		}
	}
	for (i = 0; i < RACERS; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	assert_true(shared[1] <= LIMIT);
	assert_true(shared[2] > 0);     /* the limit admitted, it did not only refuse */
	munmap(shared, 4096);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_private_table),
		cmocka_unit_test(test_across_processes),
		cmocka_unit_test(test_logins_across_processes),
		cmocka_unit_test(test_full_slice),
		cmocka_unit_test(test_race_never_over),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
