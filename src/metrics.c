/* metrics.c — the shared metrics block: slices, folding, snapshots. */
#include "metrics.h"
#include "metrics_int.h"

#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#define METRICS_MAGIC		0x73706d31u	/* "spm1" */
#define SNAPSHOT_TRIES		64

/* ---- the family table ---- */

static const char *const auth_labels[] = { "ok", "fail", "locked", "busy", "error" };
/* Every enhanced code subproxy itself sends for a refused MAIL or message,
 * then one catch-all per class for the relay's own codes. */
static const char *const refused_labels[] = {
	"4.3.0", "4.3.1", "4.3.2", "4.4.0", "4.4.2", "4.4.3", "4.5.3", "4.7.0", "4.7.1", "4.7.5",
	"5.1.3", "5.1.7", "5.3.4", "5.4.6", "5.5.1", "5.5.2", "5.5.4", "5.6.0", "5.6.7",
	"5.7.0", "5.7.1", "5.7.8", "4.x.x", "5.x.x"
};
static const char *const dkim_labels[] = { "ed25519-sha256", "rsa-sha256", "other" };
/* dane_verdict_name() then danedns_status_name() */
static const char *const dane_labels[] = {
	"ok-ee", "ok-ta", "no-usable", "mismatch", "error", "tempfail", "bogus", "insecure",
	"no-address", "no-tlsa", "no-usable-tlsa", "other"
};
static const char *const reload_labels[] = { "ok", "failed" };
static const char *const ratelimit_labels[] = {
	"messages-per-hour", "recipients-per-hour", "auth-per-minute", "sessions-per-login"
};
static const char *const proxy_refused_labels[] = {
	"source", "connections", "invalid", "closed", "timeout"
};
static const char *const relay_cmd_labels[] = { "mail", "rcpt", "data" };
static const char *const relay_opened_labels[] = { "full", "resumed" };
static const char *const relay_reused_labels[] = { "alive", "dead" };

#define N(a) (sizeof(a) / sizeof((a)[0]))

const struct metrics_family_info metrics_families[MF_MAX] = {
	[MF_SESSIONS] = { "subproxy_sessions", "Client sessions accepted.", NULL, NULL, 1, 0 },
	[MF_AUTH] = { "subproxy_auth", "SMTP AUTH attempts by result (locked: refused "
	    "without a password check; busy: [limits] auth-queue full, or no answer within "
	    "[limits] timeout; error: keeper gone).",
	    "result", auth_labels, N(auth_labels), 0 },
	[MF_AUTH_CACHE] = { "subproxy_auth_cache_hits", "Password checks the keeper "
	    "answered from its auth cache, without Argon2id ([auth] cache-ttl).", NULL, NULL,
	    1, 0 },
	[MF_AUTH_CACHE_MISSES] = { "subproxy_auth_cache_misses", "Password checks the keeper "
	    "ran Argon2id for: not in its auth cache, or the cache is off.", NULL, NULL, 1, 0 },
	[MF_AUTH_CANCELLED] = { "subproxy_auth_cancelled", "Password checks the keeper "
	    "dropped before they ran: the session ended (the client closed, a timeout) or gave "
	    "up ([limits] timeout) while the check waited for an Argon2id worker.", NULL, NULL,
	    1, 0 },
	[MF_RELAYED] = { "subproxy_messages_relayed", "Messages the relay accepted (the "
	    "client got 250).", NULL, NULL, 1, 0 },
	[MF_REFUSED] = { "subproxy_messages_refused", "MAIL commands and messages refused, "
	    "by enhanced status code (relay codes outside the list: 4.x.x, 5.x.x).", "code",
	    refused_labels, N(refused_labels), 1 },
	[MF_DKIM] = { "subproxy_dkim_signatures", "DKIM signatures added, by algorithm.",
	    "algorithm", dkim_labels, N(dkim_labels), 1 },
	[MF_DANE] = { "subproxy_relay_dane", "DANE verdicts of relay connections (TLS "
	    "check, or the DNS lookup that prevented it).", "verdict", dane_labels,
	    N(dane_labels), 1 },
	[MF_RELOADS] = { "subproxy_reloads", "Configuration reloads (SIGHUP) by result "
	    "(failed: refused by the self-audit, an error, or the previous generation still "
	    "draining).", "result", reload_labels, N(reload_labels), 0 },
	[MF_RECHECKS] = { "subproxy_audit_rechecks", "Runs of the live self-audit "
	    "([audit] recheck).", NULL, NULL, 1, 0 },
	[MF_SHUTDOWN_CUT] = { "subproxy_shutdown_cut", "Transactions cut without "
	    "acknowledgement because [server] shutdown-timeout expired.", NULL, NULL, 1, 0 },
	[MF_RATELIMIT_REFUSED] = { "subproxy_ratelimit_refused", "MAIL, RCPT, AUTH and "
	    "sessions refused by a rate limit ([limits], [login]), by limit.", "limit",
	    ratelimit_labels, N(ratelimit_labels), 0 },
	[MF_PROXY_REFUSED] = { "subproxy_proxy_refused", "Connections to proxy-protocol "
	    "listeners closed before a session started, by reason (source: not in proxy-from; "
	    "connections: [limits] connections reached; invalid: bad header; closed: ended "
	    "before the header was complete; timeout: proxy-timeout).", "reason",
	    proxy_refused_labels, N(proxy_refused_labels), 0 },
	[MF_RELAY_OPENED] = { "subproxy_relay_connections_opened", "Relay connections opened "
	    "and verified by DANE, by TLS handshake (resumed: a session kept from an earlier "
	    "connection).", "handshake", relay_opened_labels, N(relay_opened_labels), 0 },
	[MF_RELAY_REUSED] = { "subproxy_relay_connections_reused", "Transactions that took "
	    "an idle relay connection from the pool, by what it was (dead: closed before the "
	    "relay accepted MAIL, replaced by a new connection).", "result",
	    relay_reused_labels, N(relay_reused_labels), 0 },
};

const struct metrics_gauge_info metrics_gauges[MG_MAX] = {
	[MG_SESSIONS_OPEN] = { "subproxy_sessions_open", "Client sessions open now." },
	[MG_RELAY_IDLE] = { "subproxy_relay_connections_idle", "Idle relay connections kept "
	    "for reuse now." },
	[MG_AUTH_QUEUE] = { "subproxy_auth_queue_checks", "Password checks the keeper holds "
	    "now, on a worker or waiting for one; at [limits] auth-queue more are refused." },
	[MG_SIGNER_REQUESTS] = { "subproxy_signer_messages", "Messages waiting for their DKIM "
	    "signature now: with the signer, queued for room in its socket, or in line." },
	[MG_SIGNER_WAITING] = { "subproxy_signer_waiting_messages", "Of those, messages in "
	    "line for room in the signer's queue (not yet sealed nor handed over)." },
	[MG_TXN_ACTIVE] = { "subproxy_transactions", "Mail transactions in progress now "
	    "(MAIL accepted or sent to the relay, until the transaction ends); at most [limits] "
	    "transactions per front worker." },
	[MG_TXN_WAITING] = { "subproxy_transactions_waiting", "MAIL commands waiting for a "
	    "transaction of their front worker to end ([limits] transactions reached)." },
};

/* Bucket upper bounds in microseconds; the last is +Inf. */
const uint64_t metrics_bounds_us[METRICS_BUCKETS - 1] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
	10000000, 30000000, 60000000
};

const struct metrics_hist_info metrics_hists[MH_MAX] = {
	[MH_RELAY_REPLY] = { "subproxy_relay_reply_seconds", "Time from sending a command "
	    "(or the end of the message) to the relay until its reply.", "command",
	    relay_cmd_labels, N(relay_cmd_labels) },
};

/* ---- the block ---- */

struct slice {
	uint64_t beat_ms;		/* CLOCK_MONOTONIC ms of the last beat, 0 never */
	uint32_t serving;
	uint32_t pad;
	uint64_t c[METRICS_COUNTERS_MAX];
	int64_t g[METRICS_GAUGES_MAX];
	uint64_t hb[METRICS_HISTS_MAX][METRICS_BUCKETS];
	uint64_t hsum_us[METRICS_HISTS_MAX];
} __attribute__((aligned(64)));

struct check {
	char id[METRICS_CHECK_ID_MAX];
	int32_t ok;
};

struct block {
	uint32_t magic;
	uint32_t nslices;
	uint32_t beat_ms;
	uint32_t nchecks;
	uint64_t seq;			/* odd while the parent folds */
	int64_t start_time, recheck_time;
	struct check checks[METRICS_CHECKS_MAX];
	struct slice slices[];
};

static struct block *blk;
static struct slice dummy;
static struct slice *me = &dummy;
static size_t cbase[MF_MAX];		/* first counter cell of each family */
static size_t hbase[MH_MAX];
static int layout_done;
static unsigned role_half;		/* metrics_set_half() */

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* Cell offsets of the families; 0, or -1 when they do not fit. */
static int
layout(void)
{
	size_t i, n = 0, h = 0;

	if (layout_done)
		return layout_done > 0 ? 0 : -1;
	for (i = 0; i < MF_MAX; i++) {
		cbase[i] = n;
		n += metrics_families[i].nvalues;
	}
	for (i = 0; i < MH_MAX; i++) {
		hbase[i] = h;
		h += metrics_hists[i].nvalues;
	}
	layout_done = (n <= METRICS_COUNTERS_MAX && h <= METRICS_HISTS_MAX &&
	    MG_MAX <= METRICS_GAUGES_MAX) ? 1 : -1;
	return layout_done > 0 ? 0 : -1;
}

size_t
metrics_counter_cell(enum metrics_family f, unsigned label)
{
	const struct metrics_family_info *fi = &metrics_families[f];

	(void)layout();
	if (label >= fi->nvalues)
		label = fi->nvalues - 1;
	return cbase[f] + label;
}

size_t
metrics_hist_cell(enum metrics_hist h, unsigned label)
{
	(void)layout();
	if (label >= metrics_hists[h].nvalues)
		label = metrics_hists[h].nvalues - 1;
	return hbase[h] + label;
}

uint64_t
metrics_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
metrics_now_ms(void)
{
	return metrics_now_us() / 1000u;
}

int
metrics_init(size_t nslices, unsigned beat_ms)
{
	size_t size;
	void *p;

	if (layout() < 0) {
		errno = EOVERFLOW;
		return -1;
	}
	if (nslices < METRICS_SLICE_FRONT + 1 || nslices > 4096) {
		errno = EINVAL;
		return -1;
	}
	size = sizeof(struct block) + nslices * sizeof(struct slice);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	blk = p;
	blk->magic = METRICS_MAGIC;
	blk->nslices = (uint32_t)nslices;
	blk->beat_ms = beat_ms ? beat_ms : 1000;
	blk->start_time = (int64_t)time(NULL);
	me = &blk->slices[METRICS_SLICE_RETIRED];
	return 0;
}

void
metrics_attach(size_t slice)
{
	slice = metrics_role_slice(slice, role_half);
	me = (blk != NULL && slice < blk->nslices) ? &blk->slices[slice] : &dummy;
}

void
metrics_set_half(unsigned half)
{
	role_half = half ? 1 : 0;
}

size_t
metrics_role_slice(size_t role, unsigned half)
{
	if (role >= METRICS_SLICE_SIGNER && role < METRICS_SLICE_SIGNER + METRICS_HALF_ROLES &&
	    half > 0)
		return role + METRICS_HALF_ROLES;
	return role;
}

void
metrics_add(enum metrics_family f, unsigned label, uint64_t n)
{
	size_t cell;

	if ((unsigned)f >= MF_MAX)
		return;
	if (label >= metrics_families[f].nvalues && !metrics_families[f].has_other)
		return;
	cell = metrics_counter_cell(f, label);
	STORE(&me->c[cell], LOAD(&me->c[cell]) + n);
}

void
metrics_count(enum metrics_family f, unsigned label)
{
	metrics_add(f, label, 1);
}

unsigned
metrics_label(enum metrics_family f, const char *name)
{
	const struct metrics_family_info *fi;
	unsigned i;

	if ((unsigned)f >= MF_MAX)
		return 0;
	fi = &metrics_families[f];
	for (i = 0; i < fi->nvalues && fi->values != NULL; i++)
		if (name != NULL && strcmp(fi->values[i], name) == 0)
			return i;
	if (f == MF_REFUSED)
		return fi->nvalues - (name != NULL && name[0] == '4' ? 2 : 1);
	return fi->nvalues - 1;
}

/* The value of tag a= in one DKIM-Signature field (up to the next field). */
static unsigned
dkim_alg_label(const char *field, const char *end)
{
	const char *p = field;

	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *stop = semi ? semi : end, *v;
		size_t n;

		while (p < stop && strchr(" \t\r\n", *p))
			p++;
		if (stop - p > 2 && p[0] == 'a' && (p[1] == '=' || strchr(" \t\r\n", p[1]))) {
			v = memchr(p, '=', (size_t)(stop - p));
			if (v == NULL)
				break;
			for (v++; v < stop && strchr(" \t\r\n", *v); v++)
				;
			for (n = 0; v + n < stop && !strchr(" \t\r\n", v[n]); n++)
				;
			if (n == 14 && memcmp(v, "ed25519-sha256", 14) == 0)
				return 0;
			if (n == 10 && memcmp(v, "rsa-sha256", 10) == 0)
				return 1;
			break;
		}
		p = semi ? semi + 1 : end;
	}
	return 2;
}

void
metrics_count_dkim(const char *headers)
{
	static const char name[] = "DKIM-Signature:";
	const char *p = headers;

	while (p != NULL && *p != '\0') {
		const char *next = p, *value;

		/* the field ends at a CRLF not followed by folding white space */
		for (;;) {
			next = strstr(next, "\r\n");
			if (next == NULL || (next[2] != ' ' && next[2] != '\t'))
				break;
			next += 2;
		}
		if (next == NULL)
			next = p + strlen(p);
		if (ascii_ncasecmp(p, name, sizeof(name) - 1) == 0) {
			value = p + sizeof(name) - 1;
			metrics_count(MF_DKIM, dkim_alg_label(value, next));
		}
		p = *next ? next + 2 : next;
	}
}

void
metrics_gauge_add(enum metrics_gauge g, int64_t delta)
{
	if ((unsigned)g >= MG_MAX)
		return;
	STORE(&me->g[g], LOAD(&me->g[g]) + delta);
}

void
metrics_observe(enum metrics_hist h, unsigned label, uint64_t usec)
{
	size_t cell, b;

	if ((unsigned)h >= MH_MAX)
		return;
	cell = metrics_hist_cell(h, label);
	for (b = 0; b < METRICS_BUCKETS - 1; b++)
		if (usec <= metrics_bounds_us[b])
			break;
	STORE(&me->hb[cell][b], LOAD(&me->hb[cell][b]) + 1);
	STORE(&me->hsum_us[cell], LOAD(&me->hsum_us[cell]) + usec);
}

void
metrics_beat(void)
{
	STORE(&me->beat_ms, metrics_now_ms() | 1);	/* never 0 */
}

void
metrics_beat_at(uint64_t ms)
{
	STORE(&me->beat_ms, ms | 1);
}

int
metrics_beat_interval(void)
{
	return blk != NULL ? (int)blk->beat_ms : -1;
}

void
metrics_set_serving(void)
{
	STORE(&me->serving, 1);
}

void
metrics_clear_serving(void)
{
	STORE(&me->serving, 0);
}

/* ---- the parent ---- */

void
metrics_fold(size_t slice)
{
	struct slice *dead, *ret;
	size_t i, b;

	if (blk == NULL || slice >= blk->nslices || slice == METRICS_SLICE_RETIRED)
		return;
	dead = &blk->slices[slice];
	ret = &blk->slices[METRICS_SLICE_RETIRED];
	__atomic_add_fetch(&blk->seq, 1, __ATOMIC_ACQ_REL);	/* odd: folding */
	for (i = 0; i < METRICS_COUNTERS_MAX; i++) {
		STORE(&ret->c[i], LOAD(&ret->c[i]) + LOAD(&dead->c[i]));
		STORE(&dead->c[i], 0);
	}
	for (i = 0; i < METRICS_HISTS_MAX; i++) {
		for (b = 0; b < METRICS_BUCKETS; b++) {
			STORE(&ret->hb[i][b], LOAD(&ret->hb[i][b]) + LOAD(&dead->hb[i][b]));
			STORE(&dead->hb[i][b], 0);
		}
		STORE(&ret->hsum_us[i], LOAD(&ret->hsum_us[i]) + LOAD(&dead->hsum_us[i]));
		STORE(&dead->hsum_us[i], 0);
	}
	for (i = 0; i < METRICS_GAUGES_MAX; i++)
		STORE(&dead->g[i], 0);
	STORE(&dead->beat_ms, 0);
	STORE(&dead->serving, 0);
	__atomic_add_fetch(&blk->seq, 1, __ATOMIC_ACQ_REL);	/* even: done */
}

uint64_t
metrics_beat_age(size_t slice)
{
	uint64_t beat, now;

	if (blk == NULL || slice >= blk->nslices)
		return UINT64_MAX;
	beat = LOAD(&blk->slices[slice].beat_ms);
	if (beat == 0)
		return UINT64_MAX;
	now = metrics_now_ms();
	return now > beat ? now - beat : 0;
}

int
metrics_serving(size_t slice)
{
	if (blk == NULL || slice >= blk->nslices)
		return 0;
	return LOAD(&blk->slices[slice].serving) != 0;
}

void
metrics_checks_reset(void)
{
	if (blk != NULL)
		STORE(&blk->nchecks, 0);
}

void
metrics_check_add(const char *id, int ok)
{
	struct check *c;
	uint32_t n;

	if (blk == NULL || strlen(id) >= METRICS_CHECK_ID_MAX)
		return;
	n = LOAD(&blk->nchecks);
	if (n >= METRICS_CHECKS_MAX)
		return;
	c = &blk->checks[n];
	memset(c->id, 0, sizeof(c->id));
	memcpy(c->id, id, strlen(id));
	STORE(&c->ok, ok ? 1 : 0);
	__atomic_store_n(&blk->nchecks, n + 1, __ATOMIC_RELEASE);
}

void
metrics_check_set(const char *id, int ok)
{
	uint32_t i, n;

	if (blk == NULL)
		return;
	n = __atomic_load_n(&blk->nchecks, __ATOMIC_ACQUIRE);
	for (i = 0; i < n && i < METRICS_CHECKS_MAX; i++)
		if (strncmp(blk->checks[i].id, id, METRICS_CHECK_ID_MAX) == 0) {
			STORE(&blk->checks[i].ok, ok ? 1 : 0);
			return;
		}
}

void
metrics_recheck_time(int64_t when)
{
	if (blk != NULL)
		STORE(&blk->recheck_time, when);
}

/* ---- readers ---- */

static void
sum_slices(struct metrics_snapshot *s)
{
	size_t k, i, b;

	memset(s->c, 0, sizeof(s->c));
	memset(s->g, 0, sizeof(s->g));
	memset(s->hb, 0, sizeof(s->hb));
	memset(s->hsum_us, 0, sizeof(s->hsum_us));
	for (k = 0; k < blk->nslices; k++) {
		const struct slice *sl = &blk->slices[k];

		for (i = 0; i < METRICS_COUNTERS_MAX; i++)
			s->c[i] += LOAD(&sl->c[i]);
		for (i = 0; i < METRICS_GAUGES_MAX; i++)
			s->g[i] += LOAD(&sl->g[i]);
		for (i = 0; i < METRICS_HISTS_MAX; i++) {
			for (b = 0; b < METRICS_BUCKETS; b++)
				s->hb[i][b] += LOAD(&sl->hb[i][b]);
			s->hsum_us[i] += LOAD(&sl->hsum_us[i]);
		}
	}
}

void
metrics_snapshot(struct metrics_snapshot *s)
{
	uint64_t s1, s2;
	uint32_t n, i;
	int tries, ok = 0;

	memset(s, 0, sizeof(*s));
	(void)layout();
	if (blk == NULL) {
		/* no block: this process's own counts (unit tests) */
		memcpy(s->c, dummy.c, sizeof(s->c));
		memcpy(s->g, dummy.g, sizeof(s->g));
		memcpy(s->hb, dummy.hb, sizeof(s->hb));
		memcpy(s->hsum_us, dummy.hsum_us, sizeof(s->hsum_us));
		return;
	}
	/* a sum that overlapped a fold would count the folded slice twice */
	for (tries = 0; tries < SNAPSHOT_TRIES; tries++) {
		s1 = __atomic_load_n(&blk->seq, __ATOMIC_ACQUIRE);
		if (s1 & 1)
			continue;
		sum_slices(s);
		s2 = __atomic_load_n(&blk->seq, __ATOMIC_ACQUIRE);
		if (s1 == s2) {
			ok = 1;
			break;
		}
	}
	if (!ok)
		sum_slices(s);	/* the parent died mid-fold: best effort */
	n = __atomic_load_n(&blk->nchecks, __ATOMIC_ACQUIRE);
	for (i = 0; i < n && i < METRICS_CHECKS_MAX; i++) {
		memcpy(s->checks[i].id, blk->checks[i].id, METRICS_CHECK_ID_MAX);
		s->checks[i].id[METRICS_CHECK_ID_MAX - 1] = '\0';
		s->checks[i].ok = LOAD(&blk->checks[i].ok);
	}
	s->nchecks = i;
	s->start_time = blk->start_time;
	s->recheck_time = LOAD(&blk->recheck_time);
}

uint64_t
metrics_snap_counter(const struct metrics_snapshot *s, enum metrics_family f, unsigned label)
{
	if ((unsigned)f >= MF_MAX || label >= metrics_families[f].nvalues)
		return 0;
	return s->c[metrics_counter_cell(f, label)];
}

uint64_t
metrics_snap_family(const struct metrics_snapshot *s, enum metrics_family f)
{
	uint64_t sum = 0;
	unsigned i;

	if ((unsigned)f >= MF_MAX)
		return 0;
	for (i = 0; i < metrics_families[f].nvalues; i++)
		sum += metrics_snap_counter(s, f, i);
	return sum;
}
