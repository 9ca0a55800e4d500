/* test_ratelimit.c — token buckets: N pass and the N+1st not, refill over
 * time, keys independent, bounded table with its eviction policy (a slot
 * free once the table's longest period has passed), two buckets taken all
 * or nothing, tokens given back never beyond full, and concurrent takers
 * and givers (threads, and processes on MAP_SHARED memory) never getting
 * more than the bucket holds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sched.h>
#include <unistd.h>
#include <cmocka.h>

#include "ratelimit.h"

static const unsigned char hk[RATELIMIT_HASHKEY_LEN] = "0123456789abcdef";

static struct ratelimit_table *
table(uint32_t nslots, void **mem_r)
{
	size_t len = ratelimit_table_bytes(nslots);
	void *mem = malloc(len);
	struct ratelimit_table *t;

	assert_non_null(mem);
	t = ratelimit_table_init(mem, len, nslots, hk);
	assert_ptr_equal(t, mem);
	*mem_r = mem;
	return t;
}

static void
t_init_bounds(void **state)
{
	unsigned char mem[4096];

	assert_null(ratelimit_table_init(mem, sizeof(mem), RATELIMIT_PROBE - 1, hk));
	assert_null(ratelimit_table_init(mem, ratelimit_table_bytes(8) - 1, 8, hk));
	assert_non_null(ratelimit_table_init(mem, ratelimit_table_bytes(8), 8, hk));
}

static void
t_keys(void **state)
{
	void *mem;
	struct ratelimit_table *t = table(64, &mem);
	uint64_t a = ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_LOGIN, "alice");

	assert_true(a != 0);
	assert_true(a == ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_LOGIN, "alice"));
	assert_true(a != ratelimit_key(t, RATELIMIT_RECIPIENTS, RATELIMIT_LOGIN, "alice"));
	assert_true(a != ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_ADDRESS, "alice"));
	assert_true(a != ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_LOGIN, "alicf"));
	{
		/* the whole name counts, however long */
		char l1[2000], l2[2000];

		memset(l1, 'x', sizeof(l1) - 1);
		l1[sizeof(l1) - 1] = '\0';
		memcpy(l2, l1, sizeof(l2));
		l2[sizeof(l2) - 2] = 'y';
		assert_true(ratelimit_key(t, RATELIMIT_AUTH, RATELIMIT_LOGIN, l1) !=
		    ratelimit_key(t, RATELIMIT_AUTH, RATELIMIT_LOGIN, l2));
	}
	free(mem);
}

/* capacity N: N pass, the N+1st does not; then it refills at N/period. */
static void
t_bucket(void **state)
{
	void *mem;
	struct ratelimit_table *t = table(64, &mem);
	uint64_t k = ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_LOGIN, "alice");
	uint64_t other = ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_LOGIN, "bob");
	uint64_t now = 1000;
	uint32_t retry = 0;
	int i;

	for (i = 0; i < 10; i++)
		assert_int_equal(ratelimit_take(t, k, 10, 3600, 1, now, NULL), 1);
	assert_int_equal(ratelimit_take(t, k, 10, 3600, 1, now, &retry), 0);
	assert_int_equal(retry, 360);          /* one token per 360 s */
	assert_int_equal(ratelimit_available(t, k, 10, 3600, now), 0);
	/* another key is not affected */
	assert_int_equal(ratelimit_take(t, other, 10, 3600, 1, now, NULL), 1);
	/* a refused take took nothing; 359 s later still nothing */
	assert_int_equal(ratelimit_take(t, k, 10, 3600, 1, now + 359, &retry), 0);
	assert_true(retry >= 1 && retry <= 2);
	assert_int_equal(ratelimit_take(t, k, 10, 3600, 1, now + 360, NULL), 1);
	assert_int_equal(ratelimit_take(t, k, 10, 3600, 1, now + 360, NULL), 0);
	/* after a whole period the bucket is full again, and no fuller */
	assert_int_equal(ratelimit_available(t, k, 10, 3600, now + 360 + 3600), 10);
	assert_int_equal(ratelimit_available(t, k, 10, 3600, now + 99999), 10);
	for (i = 0; i < 10; i++)
		assert_int_equal(ratelimit_take(t, k, 10, 3600, 1, now + 99999, NULL), 1);
	assert_int_equal(ratelimit_take(t, k, 10, 3600, 1, now + 99999, NULL), 0);
	/* time going backwards counts as no time */
	assert_int_equal(ratelimit_take(t, k, 10, 3600, 1, now, NULL), 0);
	free(mem);
}

static void
t_off_and_sizes(void **state)
{
	void *mem;
	struct ratelimit_table *t = table(64, &mem);
	uint64_t k = ratelimit_key(t, RATELIMIT_AUTH, RATELIMIT_ADDRESS, "192.0.2.1");
	uint32_t retry;
	int i;

	/* capacity 0 = off */
	for (i = 0; i < 1000; i++)
		assert_int_equal(ratelimit_take(t, k, 0, 60, 1, 5, NULL), 1);
	assert_int_equal(ratelimit_available(t, k, 3, 60, 5), 3);
	/* n > 1 and n larger than the bucket */
	assert_int_equal(ratelimit_take(t, k, 3, 60, 2, 5, NULL), 1);
	assert_int_equal(ratelimit_take(t, k, 3, 60, 2, 5, &retry), 0);
	assert_int_equal(retry, 20);
	assert_int_equal(ratelimit_take(t, k, 3, 60, 4, 500, NULL), 0);
	/* the largest capacity */
	k = ratelimit_key(t, RATELIMIT_RECIPIENTS, RATELIMIT_LOGIN, "big");
	assert_int_equal(ratelimit_take(t, k, RATELIMIT_CAPACITY_MAX, 3600,
	    RATELIMIT_CAPACITY_MAX, 7, NULL), 1);
	assert_int_equal(ratelimit_take(t, k, RATELIMIT_CAPACITY_MAX, 3600, 1, 7, NULL), 0);
	assert_int_equal(ratelimit_available(t, k, RATELIMIT_CAPACITY_MAX, 3600, 7 + 3600),
	    RATELIMIT_CAPACITY_MAX);
	/* a client that tries every second gets the burst plus the refill
	 * rate, no more and (rounding aside) no less */
	{
		int got = 0;

		k = ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_LOGIN, "steady");
		for (i = 0; i <= 10 * 3600; i++)
			got += ratelimit_take(t, k, 7, 3600, 1, 100 + (uint64_t)i, NULL);
		assert_true(got >= 7 + 70 - 1 && got <= 7 + 70);
	}
	free(mem);
}

/* A full table: refilled buckets are reused first, then the least recently
 * updated partly used one is replaced (fail open for that key only). */
static void
t_eviction(void **state)
{
	void *mem;
	struct ratelimit_table *t = table(RATELIMIT_PROBE, &mem);
	uint64_t keys[RATELIMIT_PROBE + 1];
	char name[32];
	int i;

	for (i = 0; i <= RATELIMIT_PROBE; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		keys[i] = ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_LOGIN, name);
	}
	/* fill every slot with an empty (used up) bucket, user0 oldest */
	for (i = 0; i < RATELIMIT_PROBE; i++)
		assert_int_equal(ratelimit_take(t, keys[i], 1, 3600, 1, 100 + (uint64_t)i, NULL), 1);
	assert_int_equal(ratelimit_evictions(t), 0);
	/* a newcomer replaces user0, the least recently updated */
	assert_int_equal(ratelimit_take(t, keys[RATELIMIT_PROBE], 1, 3600, 1, 200, NULL), 1);
	assert_int_equal(ratelimit_evictions(t), 1);
	assert_int_equal(ratelimit_take(t, keys[RATELIMIT_PROBE], 1, 3600, 1, 200, NULL), 0);
	for (i = 1; i < RATELIMIT_PROBE; i++)
		assert_int_equal(ratelimit_take(t, keys[i], 1, 3600, 1, 200, NULL), 0);
	/* user0 starts over with a full bucket (it took user1's slot now) */
	assert_int_equal(ratelimit_take(t, keys[0], 1, 3600, 1, 201, NULL), 1);
	assert_int_equal(ratelimit_evictions(t), 2);
	/* once buckets have refilled their slots are reused without eviction */
	assert_int_equal(ratelimit_take(t, keys[1], 1, 3600, 1, 200 + 3600, NULL), 1);
	assert_int_equal(ratelimit_evictions(t), 2);
	free(mem);
}

/* ---- concurrency ---- */

struct worker {
	struct ratelimit_table *t;
	uint64_t key;
	int got;
};

static void *
hammer(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < 20000; i++)
		w->got += ratelimit_take(w->t, w->key, 5000, 3600, 1, 42, NULL);
	return NULL;
}

static void
t_threads(void **state)
{
	void *mem;
	struct ratelimit_table *t = table(1024, &mem);
	struct worker w[4];
	pthread_t th[4];
	int i, total = 0;

	for (i = 0; i < 4; i++) {
		w[i].t = t;
		w[i].key = ratelimit_key(t, RATELIMIT_RECIPIENTS, RATELIMIT_LOGIN, "shared");
		w[i].got = 0;
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		total += w[i].got;
	}
	assert_int_equal(total, 5000);
	free(mem);
}

/* The layout the front workers will use: one table in MAP_SHARED memory
 * mapped before fork, taken from by several processes at once. */
static void
t_processes(void **state)
{
	size_t len = ratelimit_table_bytes(1024);
	void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct ratelimit_table *t;
	uint64_t key;
	pid_t pid[3];
	int i, st, total = 0;
	int *got;

	assert_true(mem != MAP_FAILED);
	got = mmap(NULL, sizeof(int) * 3, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
	    0);
	assert_true(got != MAP_FAILED);
	t = ratelimit_table_init(mem, len, 1024, hk);
	key = ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_ADDRESS, "198.51.100.7");
	for (i = 0; i < 3; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			int j, n = 0;

			for (j = 0; j < 20000; j++)
				n += ratelimit_take(t, key, 7000, 3600, 1, 9, NULL);
			got[i] = n;
			_exit(0);
		}
	}
	for (i = 0; i < 3; i++) {
		assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		total += got[i];
	}
	assert_int_equal(total, 7000);
	assert_int_equal(ratelimit_available(t, key, 7000, 3600, 9), 0);
	munmap(got, sizeof(int) * 3);
	munmap(mem, len);
}

/* Several processes meet a new key at once, thousands of times: the one
 * that claims a slot must not reset a bucket another process already took
 * from (that gave a token back: 7,001 of 7,000 once).  Every key's bucket
 * holds one token; exactly one process may get it. */
static void
t_claim_race(void **state)
{
	enum { NKEYS = 4000, NPROC = 4 };
	size_t len = ratelimit_table_bytes(NKEYS * 16);
	void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	unsigned char *got;
	struct ratelimit_table *t;
	pid_t pid[NPROC];
	int i, k, st, over = 0;

	assert_true(mem != MAP_FAILED);
	got = mmap(NULL, NKEYS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(got != MAP_FAILED);
	t = ratelimit_table_init(mem, len, NKEYS * 16, hk);
	for (i = 0; i < NPROC; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			char name[32];

			for (k = 0; k < NKEYS; k++) {
				snprintf(name, sizeof(name), "198.51.100.%d", k);
				if (ratelimit_take(t, ratelimit_key(t, RATELIMIT_MESSAGES,
				    RATELIMIT_ADDRESS, name), 1, 3600, 1, 9, NULL))
					__atomic_fetch_add(&got[k], 1, __ATOMIC_RELAXED);
			}
			_exit(0);
		}
	}
	for (i = 0; i < NPROC; i++) {
		assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	assert_int_equal(ratelimit_evictions(t), 0);     /* room for every key */
	for (k = 0; k < NKEYS; k++) {
		assert_true(got[k] >= 1);
		over += got[k] - 1;
	}
	assert_int_equal(over, 0);
	munmap(got, NKEYS);
	munmap(mem, len);
}

/* A table of per-minute buckets frees a slot a minute after its last use:
 * it took an hour before (the longest period any rule may have), so that
 * AUTH buckets under made-up names stayed busy for an hour.  A table with
 * an hourly rule in it waits the hour (it cannot tell its slots apart). */
static void
newcomer(struct ratelimit_table *t, enum ratelimit_limit lim, const char *name,
    uint32_t period, uint64_t now, uint64_t evictions)
{
	assert_int_equal(ratelimit_take(t, ratelimit_key(t, lim, RATELIMIT_LOGIN, name), 5,
	    period, 1, now, NULL), 1);
	assert_int_equal(ratelimit_evictions(t), evictions);
}

static void
t_idle_after_own_period(void **state)
{
	void *mem;
	struct ratelimit_table *t = table(RATELIMIT_PROBE, &mem);
	char name[32];
	int i;

	/* every slot a per-minute bucket, partly used */
	for (i = 0; i < RATELIMIT_PROBE; i++) {
		snprintf(name, sizeof(name), "guess%d", i);
		assert_int_equal(ratelimit_take(t, ratelimit_key(t, RATELIMIT_AUTH,
		    RATELIMIT_LOGIN, name), 5, 60, 1, 100, NULL), 1);
	}
	/* within the minute a newcomer must evict; after it, it need not */
	newcomer(t, RATELIMIT_AUTH, "late0", 60, 159, 1);
	newcomer(t, RATELIMIT_AUTH, "late1", 60, 160, 1);
	/* one hourly bucket: from now on nothing is idle before an hour, so
	 * the minute-old buckets are not given away without eviction */
	newcomer(t, RATELIMIT_MESSAGES, "alice", 3600, 161, 2);
	newcomer(t, RATELIMIT_AUTH, "later", 60, 300, 3);
	free(mem);
}

/* npass take_both calls pass, then the next is refused by bucket `by`. */
static void
both_until(struct ratelimit_table *t, const struct ratelimit_rule *r, int npass, int by)
{
	int i, refused = -1;

	for (i = 0; i < npass; i++)
		assert_int_equal(ratelimit_take_both(t, r, 1, 10, &refused), 1);
	assert_int_equal(ratelimit_take_both(t, r, 1, 10, &refused), 0);
	assert_int_equal(refused, by);
}

/* Both or neither: a refusal by the second gives the first back. */
static void
t_both(void **state)
{
	void *mem;
	struct ratelimit_table *t = table(64, &mem);
	struct ratelimit_rule r[2] = {
		{ ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_ADDRESS, "192.0.2.1"), 5, 3600 },
		{ ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_LOGIN, "alice"), 2, 3600 },
	};
	int refused = -1;

	both_until(t, r, 2, 1);
	assert_int_equal(ratelimit_available(t, r[0].key, 5, 3600, 10), 3);
	/* the first refusing: the second is not touched */
	r[1].capacity = 100;
	both_until(t, r, 3, 0);
	assert_int_equal(ratelimit_available(t, r[1].key, 100, 3600, 10), 95);
	/* no limit on either side: always, and nothing is given back that
	 * was not taken */
	r[0].capacity = 0;
	assert_int_equal(ratelimit_take_both(t, r, 1, 10, &refused), 1);
	r[0].capacity = 5;
	r[1].capacity = 0;
	assert_int_equal(ratelimit_take_both(t, r, 1, 10, &refused), 0);
	assert_int_equal(refused, 0);
	/* what refilled meanwhile is kept when a token is given back: 3 of 5
	 * used, one back after 720 s, one taken and given back */
	r[0].key = ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_ADDRESS, "192.0.2.2");
	r[1].key = ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_LOGIN, "zed");
	r[1].capacity = 1;
	assert_int_equal(ratelimit_take(t, r[0].key, 5, 3600, 3, 10, NULL), 1);
	assert_int_equal(ratelimit_take(t, r[1].key, 1, 3600, 1, 10, NULL), 1);
	assert_int_equal(ratelimit_take_both(t, r, 1, 10 + 720, &refused), 0);
	assert_int_equal(refused, 1);
	assert_int_equal(ratelimit_available(t, r[0].key, 5, 3600, 10 + 720), 3);
	free(mem);
}

/* Four processes meet two limits at once, again and again (a new pair of
 * buckets each round, at a barrier): never more than the smaller passes,
 * and the larger gets back every token the smaller refused. */
/* Memory shared with forked processes (len bytes, zeroed). */
static void *
shared(size_t len)
{
	void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(mem != MAP_FAILED);
	return mem;
}

/* Wait until `n` processes have arrived at *arrived (bounded: exit 2). */
static void
barrier(unsigned long *arrived, unsigned long n)
{
	unsigned long spins;

	for (spins = 0; __atomic_load_n(arrived, __ATOMIC_SEQ_CST) < n; spins++) {
		if (spins > 50000000)
			_exit(2);
		if (spins % 64 == 63)
			sched_yield();
	}
}

/* worker(t, sh, i) in four processes at once; each must exit 0. */
static void
four_processes(struct ratelimit_table *t, void *sh,
    void (*worker)(struct ratelimit_table *, void *, int))
{
	pid_t pid[4];
	int i, st;

	for (i = 0; i < 4; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			worker(t, sh, i);
			_exit(0);
		}
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
}

struct both_shared {
	int got[4];
	unsigned long arrived;
};

static void
both_worker(struct ratelimit_table *t, void *arg, int me)
{
	struct both_shared *sh = arg;
	struct ratelimit_rule r[2];
	char name[32];
	int round, k, refused;

	for (round = 0; round < 300; round++) {
		snprintf(name, sizeof(name), "a%d", round);
		r[0].key = ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_ADDRESS, name);
		r[0].capacity = 7;
		r[0].period = 3600;
		snprintf(name, sizeof(name), "l%d", round);
		r[1].key = ratelimit_key(t, RATELIMIT_MESSAGES, RATELIMIT_LOGIN, name);
		r[1].capacity = 5;
		r[1].period = 3600;
		__atomic_fetch_add(&sh->arrived, 1, __ATOMIC_SEQ_CST);
		barrier(&sh->arrived, 4ul * (unsigned long)(round + 1));
		for (k = 0; k < 4; k++)
			sh->got[me] += ratelimit_take_both(t, r, 1, 9, &refused);
	}
}

static void
t_both_race(void **state)
{
	size_t len = ratelimit_table_bytes(4096);
	void *mem = shared(len);
	struct both_shared *sh = shared(sizeof(*sh));
	struct ratelimit_table *t = ratelimit_table_init(mem, len, 4096, hk);
	char name[32];
	int i, total = 0;

	four_processes(t, sh, both_worker);
	for (i = 0; i < 4; i++)
		total += sh->got[i];
	assert_int_equal(total, 300 * 5);
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "a%d", i);
		assert_int_equal(ratelimit_available(t, ratelimit_key(t, RATELIMIT_MESSAGES,
		    RATELIMIT_ADDRESS, name), 7, 3600, 9), 2);
	}
	assert_int_equal(ratelimit_evictions(t), 0);
	munmap(sh, sizeof(*sh));
	munmap(mem, len);
}

/* A give-back never fills a bucket beyond its capacity, and leaves it as
 * if the take had not been, however much refilled while it was held. */
static void
t_give_back(void **state)
{
	void *mem;
	struct ratelimit_table *t = table(64, &mem);
	uint64_t k = ratelimit_key(t, RATELIMIT_RECIPIENTS, RATELIMIT_LOGIN, "alice");
	uint64_t never = ratelimit_key(t, RATELIMIT_RECIPIENTS, RATELIMIT_LOGIN, "nobody");
	struct ratelimit_rule r[2] = {
		{ ratelimit_key(t, RATELIMIT_RECIPIENTS, RATELIMIT_ADDRESS, "192.0.2.1"), 4, 3600 },
		{ ratelimit_key(t, RATELIMIT_RECIPIENTS, RATELIMIT_LOGIN, "bob"), 2, 3600 },
	};
	int i, refused = -1;

	/* used up, one back: one passes again, and only one */
	for (i = 0; i < 3; i++)
		assert_int_equal(ratelimit_take(t, k, 3, 3600, 1, 1000, NULL), 1);
	assert_int_equal(ratelimit_take(t, k, 3, 3600, 1, 1000, NULL), 0);
	ratelimit_give_back(t, k, 3, 3600, 1, 1000);
	assert_int_equal(ratelimit_available(t, k, 3, 3600, 1000), 1);
	/* more back than was taken: full, never fuller */
	ratelimit_give_back(t, k, 3, 3600, 1, 1000);
	ratelimit_give_back(t, k, 3, 3600, 1, 1000);
	ratelimit_give_back(t, k, 3, 3600, 5, 1000);
	assert_int_equal(ratelimit_available(t, k, 3, 3600, 1000), 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(ratelimit_take(t, k, 3, 3600, 1, 1000, NULL), 1);
	assert_int_equal(ratelimit_take(t, k, 3, 3600, 1, 1000, NULL), 0);
	/* held while one token refilled (1200 s): given back, two are there,
	 * as if only two had been taken */
	ratelimit_give_back(t, k, 3, 3600, 1, 1000 + 1200);
	assert_int_equal(ratelimit_available(t, k, 3, 3600, 1000 + 1200), 2);
	/* one held while the bucket refilled completely: full, not fuller */
	assert_int_equal(ratelimit_take(t, k, 3, 3600, 1, 1000 + 1200, NULL), 1);
	ratelimit_give_back(t, k, 3, 3600, 1, 1000 + 1200 + 3600);
	assert_int_equal(ratelimit_available(t, k, 3, 3600, 1000 + 1200 + 3600), 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(ratelimit_take(t, k, 3, 3600, 1, 1000 + 1200 + 3600, NULL), 1);
	assert_int_equal(ratelimit_take(t, k, 3, 3600, 1, 1000 + 1200 + 3600, NULL), 0);
	/* a key never taken from makes no bucket; no limit: nothing to do */
	ratelimit_give_back(t, never, 3, 3600, 1, 1000);
	ratelimit_give_back(t, never, 0, 3600, 1, 1000);
	assert_int_equal(ratelimit_available(t, never, 3, 3600, 1000), 3);
	/* both buckets of a take_both, each capped at its own capacity */
	both_until(t, r, 2, 1);
	ratelimit_give_back_both(t, r, 1, 10);
	ratelimit_give_back_both(t, r, 1, 10);
	ratelimit_give_back_both(t, r, 1, 10);
	assert_int_equal(ratelimit_available(t, r[0].key, 4, 3600, 10), 4);
	assert_int_equal(ratelimit_available(t, r[1].key, 2, 3600, 10), 2);
	both_until(t, r, 2, 1);
	assert_int_equal(ratelimit_take_both(t, r, 1, 10, &refused), 0);
	free(mem);
}

/* Four processes take from one bucket and give back what they took, again
 * and again: at no moment more than its capacity is held, and no take or
 * give-back is lost (the bucket is full at the end). */
struct back_shared {
	int held, most, passed[4];
	unsigned long go;
};

static void
back_worker(struct ratelimit_table *t, void *arg, int me)
{
	uint64_t k = ratelimit_key(t, RATELIMIT_RECIPIENTS, RATELIMIT_LOGIN, "shared");
	struct back_shared *sh = arg;
	int i, h;

	__atomic_fetch_add(&sh->go, 1, __ATOMIC_SEQ_CST);
	barrier(&sh->go, 4);
	for (i = 0; i < 20000; i++) {
		if (!ratelimit_take(t, k, 3, 3600, 1, 50, NULL))
			continue;
		sh->passed[me]++;
		h = __atomic_add_fetch(&sh->held, 1, __ATOMIC_SEQ_CST);
		if (h > __atomic_load_n(&sh->most, __ATOMIC_SEQ_CST))
			__atomic_store_n(&sh->most, h, __ATOMIC_SEQ_CST);
		__atomic_sub_fetch(&sh->held, 1, __ATOMIC_SEQ_CST);
		ratelimit_give_back(t, k, 3, 3600, 1, 50);
	}
}

static void
t_give_back_race(void **state)
{
	size_t len = ratelimit_table_bytes(64);
	void *mem = shared(len);
	struct back_shared *sh = shared(sizeof(*sh));
	struct ratelimit_table *t = ratelimit_table_init(mem, len, 64, hk);
	int i, total = 0;

	four_processes(t, sh, back_worker);
	for (i = 0; i < 4; i++)
		total += sh->passed[i];
	assert_true(total > 0);
	assert_true(sh->most >= 1 && sh->most <= 3);
	assert_int_equal(ratelimit_available(t, ratelimit_key(t, RATELIMIT_RECIPIENTS,
	    RATELIMIT_LOGIN, "shared"), 3, 3600, 50), 3);
	munmap(sh, sizeof(*sh));
	munmap(mem, len);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_init_bounds),
		cmocka_unit_test(t_keys),
		cmocka_unit_test(t_bucket),
		cmocka_unit_test(t_off_and_sizes),
		cmocka_unit_test(t_eviction),
		cmocka_unit_test(t_threads),
		cmocka_unit_test(t_processes),
		cmocka_unit_test(t_claim_race),
		cmocka_unit_test(t_idle_after_own_period),
		cmocka_unit_test(t_both),
		cmocka_unit_test(t_both_race),
		cmocka_unit_test(t_give_back),
		cmocka_unit_test(t_give_back_race),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
