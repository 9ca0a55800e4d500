/* authq.c — one worker thread for Argon2id checks, results back on the loop. */
#include "authq.h"
#include "log.h"
#include "passwd.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <event2/event.h>

struct authq_req {
	struct authq *q;
	struct authq_req *next;
	char *login;
	char *password;           /* sodium_malloc'd, wiped on free */
	size_t pwlen;
	int ok;
	int cancelled;
	authq_cb *cb;
	void *arg;
};

struct authq {
	struct passwd_db *db;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct authq_req *head, *tail;   /* pending, worker side */
	int stop;
	int pipefd[2];                   /* worker -> loop: finished requests */
	struct event *ev;
};

static void
authq_req_free(struct authq_req *r)
{
	free(r->login);
	sodium_free(r->password);
	free(r);
}

static void *
authq_worker(void *arg)
{
	struct authq *q = arg;

	for (;;) {
		struct authq_req *r;

		pthread_mutex_lock(&q->mu);
		while (q->head == NULL && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->stop) {
			pthread_mutex_unlock(&q->mu);
			return NULL;
		}
		r = q->head;
		q->head = r->next;
		if (q->head == NULL)
			q->tail = NULL;
		pthread_mutex_unlock(&q->mu);

		r->ok = passwd_verify(q->db, r->login, r->password, r->pwlen) == 1;
		sodium_memzero(r->password, r->pwlen);
		while (write(q->pipefd[1], &r, sizeof(r)) < 0 && errno == EINTR)
			;
	}
}

static void
authq_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct authq_req *r;
	ssize_t n;

	while ((n = read(fd, &r, sizeof(r))) == (ssize_t)sizeof(r)) {
		if (!r->cancelled && r->cb != NULL)
			r->cb(r->arg, r->ok);
		authq_req_free(r);
	}
}

struct authq *
authq_new(struct event_base *base, struct passwd_db *db)
{
	struct authq *q = xcalloc(1, sizeof(*q));

	q->db = db;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	if (pipe2(q->pipefd, O_CLOEXEC | O_NONBLOCK) != 0)
		fatal("authq: pipe: %s", strerror(errno));
	q->ev = event_new(base, q->pipefd[0], EV_READ | EV_PERSIST, authq_on_done, q);
	event_add(q->ev, NULL);
	if (pthread_create(&q->thread, NULL, authq_worker, q) != 0)
		fatal("authq: cannot start worker thread");
	return q;
}

void
authq_free(struct authq **qp)
{
	struct authq *q = *qp;
	struct authq_req *r;

	if (q == NULL)
		return;
	*qp = NULL;
	pthread_mutex_lock(&q->mu);
	q->stop = 1;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->thread, NULL);
	while ((r = q->head) != NULL) {
		q->head = r->next;
		authq_req_free(r);
	}
	while (read(q->pipefd[0], &r, sizeof(r)) == (ssize_t)sizeof(r))
		authq_req_free(r);
	event_free(q->ev);
	close(q->pipefd[0]);
	close(q->pipefd[1]);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q);
}

struct authq_req *
authq_check(struct authq *q, const char *login, const char *password, size_t pwlen,
    authq_cb *cb, void *arg)
{
	struct authq_req *r = xcalloc(1, sizeof(*r));

	r->q = q;
	r->login = xstrdup(login);
	if ((r->password = sodium_malloc(pwlen + 1)) == NULL)
		fatal("sodium_malloc failed");
	memcpy(r->password, password, pwlen);
	r->password[pwlen] = '\0';
	r->pwlen = pwlen;
	r->cb = cb;
	r->arg = arg;
	pthread_mutex_lock(&q->mu);
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return r;
}

void
authq_cancel(struct authq_req **rp)
{
	struct authq_req *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	/* the request is owned by the queue until it comes back through the
	 * pipe; marking it is enough (only the loop thread reads the flag) */
	r->cancelled = 1;
}
