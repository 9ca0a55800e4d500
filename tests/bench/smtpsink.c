/*
 * smtpsink — the bench's trivial SMTP server: subproxy's relay in `make
 * bench`, and the target that measures the load generator's own ceiling.
 *
 *   smtpsink [-a ADDR] [-n NAME]
 *
 * Listens on ADDR (default 127.0.0.1) on two ports the kernel picks, one
 * STARTTLS and one implicit TLS, with a fresh self-signed ECDSA certificate
 * for NAME (default relay.lab.test) and TLS session tickets.  Prints
 *   READY starttls=PORT implicit=PORT spki=SHA256-HEX
 * on stdout, accepts everything (AUTH, MAIL, RCPT, DATA, BDAT) at once,
 * and on SIGTERM/SIGINT prints one JSON line
 *   {"sessions": N, "messages": N, "octets": N, "cpu_s": S}
 * and exits 0.  One libevent loop; every session bounded (input buffer,
 * 300 s idle).
 */
#include "benchio.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>

#define IDLE_SECONDS    300

enum sstate { S_HANDSHAKE, S_CMD, S_DATA, S_BDAT, S_CLOSING };

struct sess {
	struct bio b;
	struct event *ev;
	enum sstate state;
	int want_tls;                   /* start TLS once the 220 is sent */
	unsigned long long bdat_left;
	int bdat_last;
};

static struct event_base *base;
static gnutls_certificate_credentials_t creds;
static gnutls_priority_t prio;
static gnutls_datum_t ticket_key;
static unsigned long long n_sessions, n_messages, n_octets;
static const char *name = "relay.lab.test";

static void sess_event(evutil_socket_t fd, short what, void *arg);

static void
sess_free(struct sess *s)
{
	if (s->b.tls != NULL && s->b.tls_up)
		(void)gnutls_bye(s->b.tls, GNUTLS_SHUT_WR);     /* best effort */
	event_free(s->ev);
	bio_close(&s->b);
	free(s);
}

static void
sess_arm(struct sess *s)
{
	struct timeval tv = { IDLE_SECONDS, 0 };

	event_del(s->ev);
	event_assign(s->ev, base, s->b.fd, bio_events(&s->b), sess_event, s);
	event_add(s->ev, &tv);
}

static void
start_tls(struct sess *s)
{
	gnutls_session_t t = bio_start_tls(&s->b, GNUTLS_SERVER, prio, creds);

	if (gnutls_session_ticket_enable_server(t, &ticket_key) < 0)
		exit(2);
	s->state = S_HANDSHAKE;
}

static void
ehlo(struct sess *s)
{
	bio_queuef(&s->b, "250-%s\r\n%s250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-SMTPUTF8\r\n250-DSN\r\n"
	    "250 AUTH PLAIN\r\n", name, s->b.tls == NULL ? "250-STARTTLS\r\n" : "");
}

/* One command line (CRLF stripped). */
static void
command(struct sess *s, char *line)
{
	if (strncasecmp(line, "EHLO", 4) == 0 || strncasecmp(line, "HELO", 4) == 0)
		ehlo(s);
	else if (strcasecmp(line, "STARTTLS") == 0 && s->b.tls == NULL) {
		bio_queuef(&s->b, "220 2.0.0 go ahead\r\n");
		s->want_tls = 1;
	} else if (strncasecmp(line, "AUTH", 4) == 0)
		bio_queuef(&s->b, "235 2.7.0 ok\r\n");
	else if (strncasecmp(line, "MAIL", 4) == 0)
		bio_queuef(&s->b, "250 2.1.0 ok\r\n");
	else if (strncasecmp(line, "RCPT", 4) == 0)
		bio_queuef(&s->b, "250 2.1.5 ok\r\n");
	else if (strcasecmp(line, "DATA") == 0) {
		bio_queuef(&s->b, "354 go ahead\r\n");
		s->state = S_DATA;
	} else if (strncasecmp(line, "BDAT ", 5) == 0) {
		char *end;

		s->bdat_left = strtoull(line + 5, &end, 10);
		s->bdat_last = strcasecmp(end, " LAST") == 0;
		s->state = S_BDAT;
	} else if (strcasecmp(line, "RSET") == 0 || strcasecmp(line, "NOOP") == 0)
		bio_queuef(&s->b, "250 2.0.0 ok\r\n");
	else if (strcasecmp(line, "QUIT") == 0) {
		bio_queuef(&s->b, "221 2.0.0 bye\r\n");
		s->state = S_CLOSING;
	} else
		bio_queuef(&s->b, "500 5.5.1 unknown command\r\n");
}

/* Consume what is buffered; stops at STARTTLS and at QUIT. */
static void
process(struct sess *s)
{
	size_t n;

	while (!s->want_tls && s->state != S_CLOSING && s->state != S_HANDSHAKE) {
		if (s->state == S_BDAT) {
			n = s->b.inlen < s->bdat_left ? s->b.inlen : (size_t)s->bdat_left;
			bio_consume(&s->b, n);
			n_octets += n;
			if ((s->bdat_left -= n) > 0)
				return;
			if (s->bdat_last)
				n_messages++;
			bio_queuef(&s->b, "250 2.0.0 ok\r\n");
			s->state = S_CMD;
			continue;
		}
		if ((n = bio_line(&s->b)) == 0)
			return;
		if (s->state == S_DATA) {
			n_octets += n;
			if (n == 3 && memcmp(s->b.in, ".\r\n", 3) == 0) {
				n_messages++;
				bio_queuef(&s->b, "250 2.0.0 ok\r\n");
				s->state = S_CMD;
			}
			bio_consume(&s->b, n);
			continue;
		}
		s->b.in[n - 1] = '\0';
		if (n >= 2 && s->b.in[n - 2] == '\r')
			s->b.in[n - 2] = '\0';
		command(s, s->b.in);
		bio_consume(&s->b, n);
	}
}

static void
sess_event(evutil_socket_t fd, short what, void *arg)
{
	struct sess *s = arg;
	int r;

	if (what & EV_TIMEOUT)
		goto drop;
	if (s->state == S_HANDSHAKE) {
		if ((r = bio_handshake(&s->b)) < 0)
			goto drop;
		if (r == 0) {
			sess_arm(s);
			return;
		}
		if (s->want_tls)
			s->want_tls = 0;        /* STARTTLS: the client speaks first */
		else
			bio_queuef(&s->b, "220 %s ESMTP bench sink\r\n", name);
		s->state = S_CMD;
	}
	if (bio_fill(&s->b) < 0)
		goto drop;
	process(s);
	if ((r = bio_flush(&s->b)) < 0)
		goto drop;
	if (r == 1 && s->want_tls) {
		s->b.inlen = 0;         /* nothing pipelined after STARTTLS counts */
		start_tls(s);
		s->want_tls = 1;
		sess_event(fd, EV_WRITE, s);
		return;
	}
	if (r == 1 && (s->state == S_CLOSING || s->b.eof))
		goto drop;
	sess_arm(s);
	return;
drop:
	sess_free(s);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct sess *s = calloc(1, sizeof(*s));
	int one = 1;

	if (s == NULL) {
		close(fd);
		return;
	}
	n_sessions++;
	s->b.fd = fd;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->ev = event_new(base, -1, 0, sess_event, s);
	if (arg != NULL) {
		start_tls(s);
		sess_event(fd, EV_WRITE, s);
		return;
	}
	bio_queuef(&s->b, "220 %s ESMTP bench sink\r\n", name);
	s->state = S_CMD;
	sess_event(fd, EV_WRITE, s);
}

static struct evconnlistener *
listen_on(const char *addr, int implicit, int *port_r)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct evconnlistener *l;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "smtpsink: not an IPv4 address: %s\n", addr);
		exit(2);
	}
	l = evconnlistener_new_bind(base, on_accept, implicit ? (void *)1 : NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (l == NULL || getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin,
	    &len) != 0) {
		fprintf(stderr, "smtpsink: cannot listen on %s: %s\n", addr, strerror(errno));
		exit(2);
	}
	*port_r = ntohs(sin.sin_port);
	return l;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(base);
}

int
main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	struct evconnlistener *l1, *l2;
	struct event *sigs[2];
	char spki[65];
	int ch, p1, p2;

	while ((ch = getopt(argc, argv, "a:n:")) != -1) {
		switch (ch) {
		case 'a':
			addr = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		default:
			fprintf(stderr, "usage: smtpsink [-a ADDR] [-n NAME]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	bio_raise_nofile();
	if (gnutls_global_init() < 0 || gnutls_priority_init(&prio, "NORMAL", NULL) < 0 ||
	    gnutls_session_ticket_key_generate(&ticket_key) < 0)
		return 2;
	creds = bio_server_creds(name, spki);
	base = event_base_new();
	l1 = listen_on(addr, 0, &p1);
	l2 = listen_on(addr, 1, &p2);
	sigs[0] = evsignal_new(base, SIGTERM, on_signal, NULL);
	sigs[1] = evsignal_new(base, SIGINT, on_signal, NULL);
	evsignal_add(sigs[0], NULL);
	evsignal_add(sigs[1], NULL);
	printf("READY starttls=%d implicit=%d spki=%s\n", p1, p2, spki);
	fflush(stdout);
	event_base_dispatch(base);
	printf("{\"sessions\": %llu, \"messages\": %llu, \"octets\": %llu, \"cpu_s\": %.3f}\n",
	    n_sessions, n_messages, n_octets, bio_cpu_self());
	evconnlistener_free(l1);
	evconnlistener_free(l2);
	event_free(sigs[0]);
	event_free(sigs[1]);
	return 0;
}
