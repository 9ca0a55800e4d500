/* loginmem.c — per-login accounting of message octets held at once. */
#include "loginmem.h"
#include "connlimit.h"
#include "log.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct loginmem {
	struct loginmem_table *table;
	struct loginmem *prev, *next;
	char *login;
	uint64_t held;                  /* in this process */
	long shared;                    /* its entry in the workers' counts, or -1 */
	unsigned refs;
};

struct loginmem_table {
	struct loginmem *head;
	unsigned n;
};

struct loginmem_table *
loginmem_table_new(void)
{
	return xcalloc(1, sizeof(struct loginmem_table));
}

void
loginmem_table_free(struct loginmem_table **tp)
{
	struct loginmem_table *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	if (t->head != NULL)
		fatal("loginmem: table freed with %u logins still in use", t->n);
	free(t);
}

struct loginmem *
loginmem_get(struct loginmem_table *t, const char *login)
{
	struct loginmem *m;

	for (m = t->head; m != NULL; m = m->next)
		if (strcmp(m->login, login) == 0) {
			m->refs++;
			return m;
		}
	m = xcalloc(1, sizeof(*m));
	m->table = t;
	m->login = xstrdup(login);
	m->refs = 1;
	m->shared = connlimit_put(CL_MEMORY, login, 0);
	m->next = t->head;
	if (t->head != NULL)
		t->head->prev = m;
	t->head = m;
	t->n++;
	return m;
}

void
loginmem_put(struct loginmem **mp)
{
	struct loginmem *m = *mp;
	struct loginmem_table *t;

	if (m == NULL)
		return;
	*mp = NULL;
	if (--m->refs > 0)
		return;
	if (m->held != 0)
		fatal("loginmem: last session of a login left %llu octets counted",
		    (unsigned long long)m->held);
	t = m->table;
	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		t->head = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	t->n--;
	connlimit_del(m->shared);
	free(m->login);
	free(m);
}

void
loginmem_add(struct loginmem *m, uint64_t n)
{
	m->held += n;
	connlimit_set(m->shared, m->held);
}

void
loginmem_sub(struct loginmem *m, uint64_t n)
{
	if (n > m->held)
		fatal("loginmem: %llu octets given back, %llu held", (unsigned long long)n,
		    (unsigned long long)m->held);
	m->held -= n;
	connlimit_set(m->shared, m->held);
}

uint64_t
loginmem_held(const struct loginmem *m)
{
	/* every worker's octets for the login (this one's when the shared
	 * table had no room for its entry) */
	if (m->shared < 0)
		return m->held;
	return connlimit_sum(CL_MEMORY, m->login, NULL);
}

unsigned
loginmem_count(const struct loginmem_table *t)
{
	return t->n;
}
