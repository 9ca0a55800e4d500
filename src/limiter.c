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

struct limiter *
limiter_new(const struct config *cfg, char *err, size_t errlen)
{
	struct limiter *l = xcalloc(1, sizeof(*l));
	unsigned char key[RATELIMIT_HASHKEY_LEN];
	void *mem;

	l->cfg = cfg;
	l->len = ratelimit_table_bytes(RATELIMIT_SLOTS_DEFAULT);
	mem = mmap(NULL, l->len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		snprintf(err, errlen, "cannot map the rate-limit table (%zu bytes): %s", l->len,
		    strerror(errno));
		free(l);
		return NULL;
	}
	randombytes_buf(key, sizeof(key));
	l->rl = ratelimit_table_init(mem, l->len, RATELIMIT_SLOTS_DEFAULT, key);
	sodium_memzero(key, sizeof(key));
	return l;
}

void
limiter_free(struct limiter **lp)
{
	struct limiter *l = *lp;

	if (l == NULL)
		return;
	*lp = NULL;
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
