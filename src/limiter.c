/* limiter.c — rate limits per login and per client address (front). */
#include "limiter.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sodium.h>

struct limiter {
	const struct config *cfg;
	struct ratelimit_table *rl;     /* MAP_SHARED */
	size_t len;
};

static struct ratelimit_table *shared;  /* limiter_table_init() */

/* A new table: *len_r its size.  NULL with a sentence in err. */
static struct ratelimit_table *
table_map(size_t *len_r, char *err, size_t errlen)
{
	unsigned char key[RATELIMIT_HASHKEY_LEN];
	struct ratelimit_table *t;
	size_t len = ratelimit_table_bytes(RATELIMIT_SLOTS_DEFAULT);
	void *mem;

	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		snprintf(err, errlen, "cannot map the rate-limit table (%zu bytes): %s", len,
		    strerror(errno));
		return NULL;
	}
	randombytes_buf(key, sizeof(key));
	t = ratelimit_table_init(mem, len, RATELIMIT_SLOTS_DEFAULT, key);
	sodium_memzero(key, sizeof(key));
	*len_r = len;
	return t;
}

int
limiter_table_init(char *err, size_t errlen)
{
	size_t len;

	if (shared == NULL && (shared = table_map(&len, err, errlen)) == NULL)
		return -1;
	return 0;
}

struct limiter *
limiter_new(const struct config *cfg, char *err, size_t errlen)
{
	struct limiter *l = xcalloc(1, sizeof(*l));

	l->cfg = cfg;
	if (shared != NULL) {
		l->rl = shared;         /* l->len 0: not ours to unmap */
		return l;
	}
	if ((l->rl = table_map(&l->len, err, errlen)) == NULL) {
		free(l);
		return NULL;
	}
	return l;
}

void
limiter_free(struct limiter **lp)
{
	struct limiter *l = *lp;

	if (l == NULL)
		return;
	*lp = NULL;
	if (l->len > 0)
		munmap(l->rl, l->len);
	free(l);
}

static uint64_t
rate_of(const struct config_rates *r, enum ratelimit_limit lim)
{
	switch (lim) {
	case RATELIMIT_MESSAGES: return r->messages_per_hour;
	case RATELIMIT_RECIPIENTS: return r->recipients_per_hour;
	case RATELIMIT_AUTH: return r->auth_per_minute;
	}
	return 0;
}

int
limiter_take(struct limiter *l, enum ratelimit_limit lim, const char *login, const char *client,
    const char *client_key, const char *sid, char *why, size_t whylen)
{
	uint64_t lcap = rate_of(config_login_rates(l->cfg, login), lim);
	uint64_t acap = rate_of(&l->cfg->limits.rates, lim);
	uint32_t period = lim == RATELIMIT_AUTH ? 60 : 3600;
	uint64_t now = clock_seconds();
	uint64_t ak = ratelimit_key(l->rl, lim, RATELIMIT_ADDRESS, client_key);

	if (acap > 0 && ratelimit_available(l->rl, ak, (uint32_t)acap, period, now) < 1) {
		snprintf(why, whylen, "%s %llu for your address", ratelimit_limit_name(lim),
		    (unsigned long long)acap);
		log_warn("session=%s event=rate-limit limit=%s subject=address key=%s peer=%s", sid,
		    ratelimit_limit_name(lim), client_key, client);
		return 0;
	}
	if (login != NULL && lcap > 0 && !ratelimit_take(l->rl, ratelimit_key(l->rl, lim,
	    RATELIMIT_LOGIN, login), (uint32_t)lcap, period, 1, now, NULL)) {
		char esc[128];

		snprintf(why, whylen, "%s %llu for this login", ratelimit_limit_name(lim),
		    (unsigned long long)lcap);
		log_warn("session=%s event=rate-limit limit=%s subject=login login=%s peer=%s", sid,
		    ratelimit_limit_name(lim), log_escape(esc, sizeof(esc), login, strlen(login)),
		    client);
		return 0;
	}
	(void)ratelimit_take(l->rl, ak, (uint32_t)acap, period, 1, now, NULL);
	return 1;
}
