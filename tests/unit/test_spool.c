/* test_spool.c — message spool: memory bound, memfd spill, sealing, wiping. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "spool.h"

static unsigned char *
pattern(size_t n, unsigned int seed)
{
	unsigned char *b = malloc(n ? n : 1);
	size_t i;

	assert_non_null(b);
	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (unsigned char)(seed >> 16);
	}
	return b;
}

/* Read the whole spool back in pieces of `step` octets and compare. */
static void
check_content(const struct spool *sp, const unsigned char *want, size_t n, size_t step)
{
	unsigned char *got = malloc(n + step + 1);
	size_t off = 0, r;

	assert_non_null(got);
	assert_int_equal(spool_size(sp), n);
	for (;;) {
		assert_int_equal(spool_read(sp, off, got + off, step, &r), 0);
		if (r == 0)
			break;
		assert_true(r <= step);
		off += r;
		assert_true(off <= n);
	}
	assert_int_equal(off, n);
	assert_memory_equal(got, want, n);
	free(got);
}

static int
is_memfd(int fd)
{
	char path[64], target[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	return strncmp(target, "/memfd:subproxy-msg", 19) == 0;
}

static void
test_memory_only(void **state)
{
	struct spool *sp = spool_new(100);
	unsigned char *b = pattern(100, 1);
	size_t i;

	(void)state;
	assert_int_equal(spool_size(sp), 0);
	for (i = 0; i < 100; i += 7)
		assert_int_equal(spool_append(sp, b + i, i + 7 > 100 ? 100 - i : 7), 0);
	assert_int_equal(spool_in_file(sp), 0);      /* exactly mem_max stays in memory */
	check_content(sp, b, 100, 1);
	check_content(sp, b, 100, 13);
	check_content(sp, b, 100, 1000);
	assert_int_equal(spool_append(sp, "x", 1), 0);  /* one over: memfd */
	assert_int_equal(spool_in_file(sp), 1);
	assert_int_equal(spool_size(sp), 101);
	free(b);
	spool_free(&sp);
	assert_null(sp);
	spool_free(&sp);
	spool_free(NULL);
}

static void
test_spill(void **state)
{
	size_t n = 1024 * 1024 + 17, off = 0, step = 1;
	unsigned char *b = pattern(n, 7);
	struct spool *sp = spool_new(65536);

	(void)state;
	while (off < n) {
		size_t k = step < n - off ? step : n - off;

		assert_int_equal(spool_append(sp, b + off, k), 0);
		off += k;
		step = step * 3 % 70001 + 1;
	}
	assert_int_equal(spool_in_file(sp), 1);
	check_content(sp, b, n, 16384);
	check_content(sp, b, n, 65537);
	free(b);
	spool_free(&sp);
}

static void
test_zero_memory(void **state)
{
	struct spool *sp = spool_new(0);

	(void)state;
	assert_int_equal(spool_append(sp, "", 0), 0);
	assert_int_equal(spool_in_file(sp), 0);
	assert_int_equal(spool_append(sp, "abc", 3), 0);
	assert_int_equal(spool_in_file(sp), 1);
	check_content(sp, (const unsigned char *)"abc", 3, 2);
	spool_free(&sp);
}

static void
test_read_bounds(void **state)
{
	struct spool *sp = spool_new(16);
	char buf[8];
	size_t n = 99;

	(void)state;
	assert_int_equal(spool_read(sp, 0, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(spool_append(sp, "hello", 5), 0);
	assert_int_equal(spool_read(sp, 5, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(spool_read(sp, UINT64_MAX, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(spool_read(sp, 3, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(buf, "lo", 2);
	assert_int_equal(spool_append(sp, "0123456789abcdefXYZ", 19), 0);
	assert_int_equal(spool_in_file(sp), 1);
	assert_int_equal(spool_read(sp, 22, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(buf, "YZ", 2);
	assert_int_equal(spool_read(sp, 24, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 0);
	spool_free(&sp);
}

static void
check_sealed(int fd, const unsigned char *want, size_t n)
{
	unsigned char *got = malloc(n + 1);
	int seals = fcntl(fd, F_GET_SEALS);
	size_t off = 0;
	ssize_t r;

	assert_non_null(got);
	assert_true(fd >= 0);
	assert_true(is_memfd(fd));
	assert_int_equal(seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
	    F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
	while ((r = read(fd, got + off, n + 1 - off)) > 0)
		off += (size_t)r;
	assert_int_equal(off, n);
	assert_memory_equal(got, want, n);
	errno = 0;
	assert_int_equal(pwrite(fd, "x", 1, 0), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(write(fd, "x", 1), -1);
	if (n > 0)
		assert_int_equal(ftruncate(fd, 0), -1);   /* shrink */
	assert_int_equal(ftruncate(fd, (off_t)n + 10), -1);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), -1);
	/* the offset is shared with the signer, which leaves it at the end
	 * (lseek SEEK_END for the size): the spool's own reads must not care */
	assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)n);
	free(got);
}

static void
test_seal_from_memory(void **state)
{
	struct spool *sp = spool_new(1024);
	unsigned char *b = pattern(500, 3);
	int fd;

	(void)state;
	assert_int_equal(spool_append(sp, b, 500), 0);
	assert_int_equal(spool_in_file(sp), 0);
	fd = spool_seal(sp);
	check_sealed(fd, b, 500);
	assert_int_equal(spool_in_file(sp), 1);
	assert_int_equal(spool_seal(sp), fd);
	errno = 0;
	assert_int_equal(spool_append(sp, "x", 1), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(spool_append(sp, "", 0), -1);
	check_content(sp, b, 500, 77);
	free(b);
	spool_free(&sp);
	/* spool_free closed it */
	assert_int_equal(fcntl(fd, F_GETFD), -1);
}

static void
test_seal_from_file_and_empty(void **state)
{
	struct spool *sp = spool_new(10);
	unsigned char *b = pattern(3000, 5);
	int fd;

	(void)state;
	assert_int_equal(spool_append(sp, b, 3000), 0);
	assert_int_equal(spool_in_file(sp), 1);
	fd = spool_seal(sp);
	check_sealed(fd, b, 3000);
	spool_reset(sp);
	assert_int_equal(spool_size(sp), 0);
	assert_int_equal(spool_in_file(sp), 0);
	/* empty spool seals to an empty memfd */
	fd = spool_seal(sp);
	check_sealed(fd, b, 0);
	spool_free(&sp);
	free(b);
}

static void
test_reset_reuse(void **state)
{
	struct spool *sp = spool_new(8);
	char buf[32];
	size_t n;

	(void)state;
	assert_int_equal(spool_append(sp, "0123456789", 10), 0);
	assert_int_equal(spool_in_file(sp), 1);
	spool_reset(sp);
	assert_int_equal(spool_size(sp), 0);
	assert_int_equal(spool_in_file(sp), 0);
	assert_int_equal(spool_read(sp, 0, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(spool_append(sp, "abc", 3), 0);
	assert_int_equal(spool_in_file(sp), 0);
	check_content(sp, (const unsigned char *)"abc", 3, 3);
	(void)spool_seal(sp);
	spool_reset(sp);
	assert_int_equal(spool_append(sp, "after seal", 10), 0);
	check_content(sp, (const unsigned char *)"after seal", 10, 4);
	spool_reset(sp);
	spool_reset(sp);
	spool_free(&sp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory_only),
		cmocka_unit_test(test_spill),
		cmocka_unit_test(test_zero_memory),
		cmocka_unit_test(test_read_bounds),
		cmocka_unit_test(test_seal_from_memory),
		cmocka_unit_test(test_seal_from_file_and_empty),
		cmocka_unit_test(test_reset_reuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
