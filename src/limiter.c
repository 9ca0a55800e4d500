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

/* Two tables (limiter.h): one for the limits only authenticated sessions
 * reach, one for AUTH attempts, whose keys any client can make up. */
struct limiter {
	const struct config *cfg;
	struct ratelimit_table *rl;     /* MAP_SHARED: messages, recipients */
	struct ratelimit_table *auth;   /* MAP_SHARED: AUTH attempts */
	size_t len;                     /* of each; 0: the shared ones, not ours */
};

/* limiter_table_init()'s, shared by every worker of every generation */
static struct ratelimit_table *shared_rl, *shared_auth;

/* One table in shared memory with a random hash key; NULL with a sentence. */
static struct ratelimit_table *
table_map(size_t len, const char *what, char *err, size_t errlen)
{
	unsigned char key[RATELIMIT_HASHKEY_LEN];
	struct ratelimit_table *t;
	void *mem;

	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		snprintf(err, errlen, "cannot map the rate-limit table of %s (%zu bytes): %s", what,
		    len, strerror(errno));
		return NULL;
	}
	randombytes_buf(key, sizeof(key));
	t = ratelimit_table_init(mem, len, RATELIMIT_SLOTS_DEFAULT, key);
	sodium_memzero(key, sizeof(key));
	return t;
}

/* Both tables into *rl_r and *auth_r, or neither (-1 with a sentence). */
static int
tables_map(struct ratelimit_table **rl_r, struct ratelimit_table **auth_r, char *err,
    size_t errlen)
{
	size_t len = ratelimit_table_bytes(RATELIMIT_SLOTS_DEFAULT);

	if ((*rl_r = table_map(len, "messages and recipients", err, errlen)) == NULL)
		return -1;
	if ((*auth_r = table_map(len, "AUTH attempts", err, errlen)) == NULL) {
		munmap(*rl_r, len);
		*rl_r = NULL;
		return -1;
	}
	return 0;
}

int
limiter_table_init(char *err, size_t errlen)
{
	if (shared_rl == NULL && tables_map(&shared_rl, &shared_auth, err, errlen) < 0)
		return -1;
	return 0;
}

struct limiter *
limiter_new(const struct config *cfg, char *err, size_t errlen)
{
	struct limiter *l = xcalloc(1, sizeof(*l));

	l->cfg = cfg;
	if (shared_rl != NULL) {
		l->rl = shared_rl;
		l->auth = shared_auth;
		return l;
	}
	if (tables_map(&l->rl, &l->auth, err, errlen) < 0) {
		free(l);
		return NULL;
	}
	l->len = ratelimit_table_bytes(RATELIMIT_SLOTS_DEFAULT);
	return l;
}

void
limiter_free(struct limiter **lp)
{
	struct limiter *l = *lp;

	if (l == NULL)
		return;
	*lp = NULL;
	if (l->len > 0) {
		munmap(l->rl, l->len);
		munmap(l->auth, l->len);
	}
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

/* The rules of `lim` for the client's address key (rule[0]) and `login`
 * (rule[1]; NULL: none yet), in the table that holds them. */
static struct ratelimit_table *
rules_of(struct limiter *l, enum ratelimit_limit lim, const char *login, const char *client_key,
    struct ratelimit_rule rule[2])
{
	struct ratelimit_table *t = lim == RATELIMIT_AUTH ? l->auth : l->rl;
	uint32_t period = lim == RATELIMIT_AUTH ? 60 : 3600;

	/* the address first: a client over its address's AUTH limit makes no
	 * bucket for the login names it tries */
	rule[0].key = ratelimit_key(t, lim, RATELIMIT_ADDRESS, client_key);
	rule[0].capacity = (uint32_t)rate_of(&l->cfg->limits.rates, lim);
	rule[0].period = period;
	rule[1].key = ratelimit_key(t, lim, RATELIMIT_LOGIN, login != NULL ? login : "");
	rule[1].capacity = login != NULL ?
	    (uint32_t)rate_of(config_login_rates(l->cfg, login), lim) : 0;
	rule[1].period = period;
	return t;
}

int
limiter_take(struct limiter *l, enum ratelimit_limit lim, const char *login, const char *client,
    const char *client_key, const char *sid, char *why, size_t whylen)
{
	struct ratelimit_rule rule[2];
	struct ratelimit_table *t;
	char esc[128];
	int refused;

	t = rules_of(l, lim, login, client_key, rule);
	if (ratelimit_take_both(t, rule, 1, clock_seconds(), &refused))
		return 1;
	if (refused == 0) {
		snprintf(why, whylen, "%s %llu for your address", ratelimit_limit_name(lim),
		    (unsigned long long)rule[0].capacity);
		log_warn("session=%s event=rate-limit limit=%s subject=address key=%s peer=%s", sid,
		    ratelimit_limit_name(lim), client_key, client);
		return 0;
	}
	snprintf(why, whylen, "%s %llu for this login", ratelimit_limit_name(lim),
	    (unsigned long long)rule[1].capacity);
	log_warn("session=%s event=rate-limit limit=%s subject=login login=%s peer=%s", sid,
	    ratelimit_limit_name(lim), log_value(esc, sizeof(esc), login, strlen(login)), client);
	return 0;
}

void
limiter_give_back(struct limiter *l, enum ratelimit_limit lim, const char *login,
    const char *client_key)
{
	struct ratelimit_rule rule[2];
	struct ratelimit_table *t;

	t = rules_of(l, lim, login, client_key, rule);
	ratelimit_give_back_both(t, rule, 1, clock_seconds());
}
