/* test_loginmem.c — per-login accounting of message octets: sessions of one
 * login share an entry, entries go away with their last session. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "loginmem.h"

static void
test_shared_by_login(void **state)
{
	struct loginmem_table *t = loginmem_table_new();
	struct loginmem *a1 = loginmem_get(t, "alice@lab.test");
	struct loginmem *a2 = loginmem_get(t, "alice@lab.test");
	struct loginmem *b = loginmem_get(t, "bob@lab.test");
	struct loginmem *upper = loginmem_get(t, "Alice@lab.test");

	assert_ptr_equal(a1, a2);
	assert_ptr_not_equal(a1, b);
	assert_ptr_not_equal(a1, upper);        /* logins match exactly, as the passwd file */
	assert_int_equal(loginmem_count(t), 3);
	loginmem_add(a1, 1000);
	loginmem_add(a2, 500);
	assert_int_equal(loginmem_held(a1), 1500);
	assert_int_equal(loginmem_held(b), 0);
	loginmem_sub(a2, 1500);
	loginmem_put(&a1);
	assert_null(a1);
	assert_int_equal(loginmem_count(t), 3);   /* a2 still holds it */
	loginmem_put(&a2);
	loginmem_put(&b);
	loginmem_put(&upper);
	loginmem_put(&upper);                   /* NULL: no-op */
	assert_int_equal(loginmem_count(t), 0);
	/* a login that comes back starts at zero */
	a1 = loginmem_get(t, "alice@lab.test");
	assert_int_equal(loginmem_held(a1), 0);
	loginmem_put(&a1);
	loginmem_table_free(&t);
	assert_null(t);
	loginmem_table_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_by_login),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
