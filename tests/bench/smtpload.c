/*
 * smtpload — the bench's SMTP submission load generator: one libevent loop,
 * GnuTLS, any number of concurrent sessions (`make bench`, bench.py).
 *
 * Load:  smtpload [options] -c CONC -n SESSIONS [-k MSGS] [-d SECONDS]
 *   Keeps CONC sessions running until SESSIONS were started (or -d seconds
 *   passed), each: connect, [EHLO, STARTTLS,] TLS, EHLO, AUTH PLAIN, MSGS x
 *   (MAIL, RCPT, DATA, message, "."), QUIT, as mail clients do (lock-step);
 *   -k 0: no AUTH and no message (the cost of TLS alone).
 * Idle:  smtpload [options] -I N -G tls|ehlo|auth [-R RAMP] [-d SECONDS]
 *   Takes N sessions to the stage (at most RAMP at a time on their way; 0:
 *   all at once; none started after -d seconds), prints
 *   "READY ok=N failed=N seconds=S", holds them until
 *   a line or EOF on stdin, then QUITs them all.
 * Prints one JSON object on stdout at the end.
 *
 * Options: -h ADDR (127.0.0.1) -p PORT -i (implicit TLS; default STARTTLS)
 *   -N SNI (mail.lab.test) -u LOGIN (a printf format with %d takes the
 *   session number plus -U FIRST, for distinct logins) -P PASSWORD
 *   -r RCPT -s SIZE (4096) -2 (TLS 1.2 only) -S (resume TLS sessions: each
 *   slot offers the ticket of its previous session) -b N (bind to source
 *   addresses 127.0.0.1 ... 127.0.0.N, against port exhaustion) -T SECONDS
 *   (per step, 60).
 * The server's certificate is not verified: the generator measures the
 * server, and verification is the client's cost.
 */
#include "benchio.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/event.h>

enum cstate {
	C_CONNECT, C_GREETING, C_EHLO0, C_STARTTLS, C_HANDSHAKE, C_EHLO, C_AUTH,
	C_MAIL, C_RCPT, C_DATA, C_DOT, C_QUIT, C_PARKED
};
static const char *const cstate_name[] = {
	"connect", "greeting", "ehlo", "starttls", "handshake", "ehlo-tls", "auth",
	"mail", "rcpt", "data", "dot", "quit", "parked"
};
enum stage { G_TLS, G_EHLO, G_AUTH };

/* X25519 first, as most mail clients today */
#define PRIO "NORMAL:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1"

struct slot {
	struct bio b;
	struct event *ev;
	enum cstate state;
	int active;
	long num;                       /* session number */
	int msgs_done;
	char login[256];
	double t0, t_setup, t_msg;
	gnutls_datum_t ticket;          /* -S: the previous session's */
};

/* options */
static const char *o_host = "127.0.0.1", *o_sni = "mail.lab.test", *o_login = "bench@lab.test";
static const char *o_pass = "bench", *o_rcpt = "rcpt@remote.test";
static int o_port, o_implicit, o_conc = 1, o_msgs = 1, o_tls12, o_resume, o_nsrc = 1;
static int o_timeout = 60, o_ramp = 32;
static long o_sessions = 1, o_first, o_idle;
static double o_duration = 3600;
static size_t o_size = 4096;
static enum stage o_stage = G_AUTH;

static struct event_base *base;
static gnutls_certificate_credentials_t creds;
static gnutls_priority_t prio;
static struct slot *slots;
static char *body;                      /* the message after its From line, ending ".\r\n" */
static size_t body_len;
static struct sockaddr_in dest;
static double t_start, t_deadline, t_end;
static long started, sess_ok, sess_fail, msg_ok, msg_fail, resumed, parked, idle_left, dropped;
static int holding;                     /* idle mode: READY printed, holding */
static struct { double *v; size_t n, cap; } lat_session, lat_setup, lat_msg;
static struct { char what[96]; long n; } errs[32];
static size_t nerrs;
static struct event *stdin_ev;

static void slot_event(evutil_socket_t fd, short what, void *arg);
static void slot_start(struct slot *s);

static void
sample(double **vp, size_t *np, size_t *capp, double x)
{
	if (*np == *capp) {
		*capp = *capp ? *capp * 2 : 1024;
		if ((*vp = realloc(*vp, *capp * sizeof(double))) == NULL)
			exit(2);
	}
	(*vp)[(*np)++] = x;
}
#define SAMPLE(l, x) sample(&(l).v, &(l).n, &(l).cap, (x))

static void
count_error(const char *what)
{
	size_t i;

	for (i = 0; i < nerrs; i++)
		if (strcmp(errs[i].what, what) == 0) {
			errs[i].n++;
			return;
		}
	if (nerrs < sizeof(errs) / sizeof(errs[0])) {
		snprintf(errs[nerrs].what, sizeof(errs[nerrs].what), "%s", what);
		errs[nerrs++].n = 1;
	}
}

static void
slot_arm(struct slot *s, int timeout)
{
	struct timeval tv = { o_timeout, 0 };

	event_del(s->ev);
	event_assign(s->ev, base, s->b.fd, s->state == C_CONNECT ? EV_WRITE : bio_events(&s->b),
	    slot_event, s);
	event_add(s->ev, timeout ? &tv : NULL);
}

static int
more_to_start(void)
{
	if (o_idle)
		return idle_left > 0 && bio_now() < t_deadline;
	return started < o_sessions && bio_now() < t_deadline;
}

static void
maybe_done(void)
{
	int i;

	if (holding)
		return;
	for (i = 0; i < o_conc; i++)
		if (slots[i].active && slots[i].state != C_PARKED)
			return;
	if (!more_to_start()) {
		t_end = bio_now();
		event_base_loopexit(base, NULL);
	}
}

/* The session in s ended (ok or not); start the next one in the slot. */
static void
slot_end(struct slot *s, int ok, const char *why)
{
	if (ok) {
		sess_ok++;
		SAMPLE(lat_session, bio_now() - s->t0);
	} else {
		char what[96];

		sess_fail++;
		if (!o_idle)
			msg_fail += o_msgs - s->msgs_done;
		snprintf(what, sizeof(what), "%s: %s", cstate_name[s->state], why);
		count_error(what);
	}
	event_del(s->ev);
	bio_close(&s->b);
	s->active = 0;
	if (more_to_start())
		slot_start(s);
	else
		maybe_done();
}

/* -S: keep the session's resumption data for the slot's next session
 * (called at the EHLO reply under TLS: a TLS 1.3 ticket has come by then). */
static void
save_ticket(struct slot *s)
{
	gnutls_datum_t d;

	if ((gnutls_protocol_get_version(s->b.tls) != GNUTLS_TLS1_3 ||
	    (gnutls_session_get_flags(s->b.tls) & GNUTLS_SFLAGS_SESSION_TICKET)) &&
	    gnutls_session_get_data2(s->b.tls, &d) == 0) {
		gnutls_free(s->ticket.data);
		s->ticket = d;
	}
}

static void
start_tls(struct slot *s)
{
	gnutls_session_t t = bio_start_tls(&s->b, GNUTLS_CLIENT, prio, creds);

	if (gnutls_server_name_set(t, GNUTLS_NAME_DNS, o_sni, strlen(o_sni)) < 0)
		exit(2);
	if (o_resume && s->ticket.size > 0)
		(void)gnutls_session_set_data(t, s->ticket.data, s->ticket.size);
	s->state = C_HANDSHAKE;
}

static void
send_auth(struct slot *s)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char raw[600];
	char enc[820];
	size_t n = 0, i, o = 0;

	raw[n++] = 0;
	n += (size_t)snprintf((char *)raw + n, sizeof(raw) - n, "%s", s->login) + 1;
	n += (size_t)snprintf((char *)raw + n, sizeof(raw) - n, "%s", o_pass);
	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned)raw[i] << 16 | (i + 1 < n ? (unsigned)raw[i + 1] << 8 : 0) |
		    (i + 2 < n ? raw[i + 2] : 0);

		enc[o++] = b64[v >> 18 & 63];
		enc[o++] = b64[v >> 12 & 63];
		enc[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
		enc[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	enc[o] = '\0';
	bio_queuef(&s->b, "AUTH PLAIN %s\r\n", enc);
	s->state = C_AUTH;
}

static void idle_next(void);

/* Idle mode: the session reached its stage; hold it there. */
static void
park(struct slot *s)
{
	s->state = C_PARKED;
	parked++;
	idle_next();
}

/* A complete reply with code to the command of the current state. */
static void
on_reply(struct slot *s, int code)
{
	static const int want[] = {
		[C_GREETING] = 220, [C_EHLO0] = 250, [C_STARTTLS] = 220, [C_EHLO] = 250,
		[C_AUTH] = 235, [C_MAIL] = 250, [C_RCPT] = 250, [C_DATA] = 354, [C_DOT] = 250,
		[C_QUIT] = 221
	};
	char why[32];

	if (code != want[s->state]) {
		snprintf(why, sizeof(why), "reply %d", code);
		slot_end(s, 0, why);
		return;
	}
	switch (s->state) {
	case C_GREETING:
		if (o_implicit && o_idle && o_stage == G_TLS) {
			park(s);
			return;
		}
		bio_queuef(&s->b, "EHLO bench.lab.test\r\n");
		s->state = o_implicit ? C_EHLO : C_EHLO0;
		break;
	case C_EHLO0:
		bio_queuef(&s->b, "STARTTLS\r\n");
		s->state = C_STARTTLS;
		break;
	case C_STARTTLS:
		s->b.inlen = 0;
		start_tls(s);
		break;
	case C_EHLO:
		if (o_resume)
			save_ticket(s);
		if (o_idle && o_stage == G_EHLO) {
			park(s);
			return;
		}
		if (o_msgs == 0) {              /* -k 0: TLS and EHLO only */
			bio_queuef(&s->b, "QUIT\r\n");
			s->state = C_QUIT;
			break;
		}
		send_auth(s);
		break;
	case C_AUTH:
		s->t_setup = bio_now();
		SAMPLE(lat_setup, s->t_setup - s->t0);
		if (o_idle) {
			park(s);
			return;
		}
		/* FALLTHROUGH */
	case C_DOT:
		if (s->state == C_DOT) {
			msg_ok++;
			s->msgs_done++;
			SAMPLE(lat_msg, bio_now() - s->t_msg);
		}
		if (s->msgs_done == o_msgs) {
			bio_queuef(&s->b, "QUIT\r\n");
			s->state = C_QUIT;
			break;
		}
		s->t_msg = bio_now();
		bio_queuef(&s->b, "MAIL FROM:<%s>\r\n", s->login);
		s->state = C_MAIL;
		break;
	case C_MAIL:
		bio_queuef(&s->b, "RCPT TO:<%s>\r\n", o_rcpt);
		s->state = C_RCPT;
		break;
	case C_RCPT:
		bio_queuef(&s->b, "DATA\r\n");
		s->state = C_DATA;
		break;
	case C_DATA:
		bio_queuef(&s->b, "From: <%s>\r\nMessage-ID: <%ld.%d.%.6f@bench.lab.test>\r\n",
		    s->login, s->num, s->msgs_done, bio_now());
		bio_queue(&s->b, body, body_len);
		s->state = C_DOT;
		break;
	case C_QUIT:
		slot_end(s, 1, NULL);
		return;
	default:
		break;
	}
}

/* Parse complete replies in the input. */
static int
replies(struct slot *s)
{
	size_t n;

	while (s->active && s->state != C_HANDSHAKE && s->state != C_PARKED &&
	    (n = bio_line(&s->b)) > 0) {
		char *l = s->b.in;
		int last = n < 5 || l[3] != '-', code;

		if (n < 4 || l[0] < '2' || l[0] > '5') {
			slot_end(s, 0, "malformed reply");
			return -1;
		}
		code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
		bio_consume(&s->b, n);
		if (last)
			on_reply(s, code);
	}
	return s->active ? 0 : -1;
}

static void
slot_event(evutil_socket_t fd, short what, void *arg)
{
	struct slot *s = arg;
	int r, err = 0;
	socklen_t len = sizeof(err);

	if (what & EV_TIMEOUT) {
		slot_end(s, 0, "timeout");
		return;
	}
	if (s->state == C_CONNECT) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			slot_end(s, 0, strerror(err ? err : errno));
			return;
		}
		if (o_implicit)
			start_tls(s);
		else
			s->state = C_GREETING;
	}
	for (;;) {
		if (s->state == C_HANDSHAKE) {
			if ((r = bio_handshake(&s->b)) < 0) {
				slot_end(s, 0, "TLS handshake failed");
				return;
			}
			if (r == 0)
				break;
			resumed += gnutls_session_is_resumed(s->b.tls) != 0;
			if (o_implicit) {
				s->state = C_GREETING;
			} else if (o_idle && o_stage == G_TLS) {
				park(s);
				slot_arm(s, 0);
				return;
			} else {
				bio_queuef(&s->b, "EHLO bench.lab.test\r\n");
				s->state = C_EHLO;
			}
		}
		if (s->state == C_PARKED) {
			/* parked: only watch for the server closing */
			if (bio_fill(&s->b) < 0 || s->b.eof) {
				parked--;
				dropped++;
				slot_end(s, 0, "closed while idle");
				return;
			}
			s->b.inlen = 0;
			slot_arm(s, 0);
			return;
		}
		if ((r = bio_fill(&s->b)) < 0) {
			slot_end(s, 0, "read error");
			return;
		}
		if (replies(s) < 0)
			return;
		if (s->state == C_PARKED) {
			slot_arm(s, 0);
			return;
		}
		if ((r = bio_flush(&s->b)) < 0) {
			slot_end(s, 0, "write error");
			return;
		}
		if (s->b.eof) {
			slot_end(s, 0, "connection closed");
			return;
		}
		/* STARTTLS reply handled: go on with the handshake now */
		if (s->state != C_HANDSHAKE)
			break;
	}
	slot_arm(s, 1);
}

static void
slot_start(struct slot *s)
{
	const char *pc;
	int fd, one = 1;

	s->num = o_first + started++;
	if (o_idle)
		idle_left--;
	s->active = 1;
	s->msgs_done = 0;
	s->t0 = bio_now();
	if ((pc = strstr(o_login, "%d")) != NULL)
		snprintf(s->login, sizeof(s->login), "%.*s%ld%s", (int)(pc - o_login), o_login,
		    s->num, pc + 2);
	else
		snprintf(s->login, sizeof(s->login), "%s", o_login);
	memset(&s->b, 0, sizeof(s->b));
	s->b.fd = -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		slot_end(s, 0, strerror(errno));
		return;
	}
	s->b.fd = fd;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o_nsrc > 1) {
		struct sockaddr_in src;

		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(s->num % o_nsrc));
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
			slot_end(s, 0, strerror(errno));
			return;
		}
	}
	s->state = C_CONNECT;
	if (connect(fd, (struct sockaddr *)&dest, sizeof(dest)) != 0 && errno != EINPROGRESS) {
		slot_end(s, 0, strerror(errno));
		return;
	}
	slot_arm(s, 1);
}

/* Idle mode: the next session may start once one is parked. */
static void
idle_next(void)
{
	int i;

	for (i = 0; i < o_conc && more_to_start(); i++)
		if (!slots[i].active) {
			slot_start(&slots[i]);
			return;
		}
	maybe_done();
}

static void
on_stdin(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopexit(base, NULL);
}

static double
pct(double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)ceil(p * (double)n) - 1;
	return v[i < n ? i : n - 1] * 1000;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
print_lat(const char *key, double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	printf(", \"%s\": {\"n\": %zu, \"p50\": %.2f, \"p90\": %.2f, \"p99\": %.2f, \"max\": %.2f}",
	    key, n, pct(v, n, 0.5), pct(v, n, 0.9), pct(v, n, 0.99), pct(v, n, 1.0));
}

static void
report(double cpu)
{
	double el = t_end - t_start;
	size_t i;

	printf("{\"sessions_ok\": %ld, \"sessions_failed\": %ld, \"messages_ok\": %ld, "
	    "\"messages_failed\": %ld, \"resumed\": %ld, \"dropped_idle\": %ld, "
	    "\"elapsed_s\": %.3f, \"msg_per_s\": %.1f, \"sessions_per_s\": %.1f, \"cpu_s\": %.3f",
	    sess_ok, sess_fail, msg_ok, msg_fail, resumed, dropped, el,
	    el > 0 ? (double)msg_ok / el : 0, el > 0 ? (double)sess_ok / el : 0, cpu);
	print_lat("session_ms", lat_session.v, lat_session.n);
	print_lat("setup_ms", lat_setup.v, lat_setup.n);
	print_lat("message_ms", lat_msg.v, lat_msg.n);
	printf(", \"errors\": {");
	for (i = 0; i < nerrs; i++)
		printf("%s\"%s\": %ld", i ? ", " : "", errs[i].what, errs[i].n);
	printf("}}\n");
}

static void
make_body(void)
{
	size_t lines = o_size > 200 ? (o_size - 120) / 78 : 1, i;
	char *p;

	body_len = strlen(o_rcpt) + 64 + lines * 78 + 3;
	if ((body = malloc(body_len + 1)) == NULL)
		exit(2);
	p = body + sprintf(body, "To: <%s>\r\nSubject: bench\r\n\r\n", o_rcpt);
	for (i = 0; i < lines; i++) {
		memset(p, 'x', 76);
		memcpy(p + 76, "\r\n", 2);
		p += 78;
	}
	memcpy(p, ".\r\n", 3);
	body_len = (size_t)(p + 3 - body);
}

static void
usage(void)
{
	fprintf(stderr, "usage: smtpload -p PORT [-h ADDR] [-i] [-N SNI] [-u LOGIN] [-U FIRST] "
	    "[-P PASSWORD] [-r RCPT] [-s SIZE] [-2] [-S] [-b NSRC] [-T SECONDS]\n"
	    "         (-c CONC -n SESSIONS [-k MSGS] [-d SECONDS] | -I N -G tls|ehlo|auth "
	    "[-R RAMP])\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	double cpu0;
	int ch, i;

	while ((ch = getopt(argc, argv, "h:p:iN:u:U:P:r:s:2Sb:T:c:n:k:d:I:G:R:")) != -1) {
		switch (ch) {
		case 'h': o_host = optarg; break;
		case 'p': o_port = atoi(optarg); break;
		case 'i': o_implicit = 1; break;
		case 'N': o_sni = optarg; break;
		case 'u': o_login = optarg; break;
		case 'U': o_first = atol(optarg); break;
		case 'P': o_pass = optarg; break;
		case 'r': o_rcpt = optarg; break;
		case 's': o_size = (size_t)atol(optarg); break;
		case '2': o_tls12 = 1; break;
		case 'S': o_resume = 1; break;
		case 'b': o_nsrc = atoi(optarg); break;
		case 'T': o_timeout = atoi(optarg); break;
		case 'c': o_conc = atoi(optarg); break;
		case 'n': o_sessions = atol(optarg); break;
		case 'k': o_msgs = atoi(optarg); break;
		case 'd': o_duration = atof(optarg); break;
		case 'I': o_idle = atol(optarg); break;
		case 'G':
			o_stage = strcmp(optarg, "tls") == 0 ? G_TLS : strcmp(optarg, "ehlo") == 0 ?
			    G_EHLO : G_AUTH;
			break;
		case 'R': o_ramp = atoi(optarg); break;
		default: usage();
		}
	}
	if (o_port <= 0 || o_conc < 1 || o_msgs < 0 || o_nsrc < 1 || o_nsrc > 250)
		usage();
	memset(&dest, 0, sizeof(dest));
	dest.sin_family = AF_INET;
	dest.sin_port = htons((uint16_t)o_port);
	if (inet_pton(AF_INET, o_host, &dest.sin_addr) != 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
	bio_raise_nofile();
	if (gnutls_global_init() < 0 ||
	    gnutls_certificate_allocate_credentials(&creds) < 0 ||
	    gnutls_priority_init(&prio, o_tls12 ? PRIO ":-VERS-ALL:+VERS-TLS1.2" : PRIO,
	    NULL) < 0)
		return 2;
	make_body();
	if (o_idle) {
		/* every idle session needs its slot; RAMP of them on their way */
		o_conc = (int)o_idle;
		idle_left = o_idle;
		o_sessions = o_idle;
	}
	if ((slots = calloc((size_t)o_conc, sizeof(*slots))) == NULL)
		return 2;
	base = event_base_new();
	for (i = 0; i < o_conc; i++)
		slots[i].ev = event_new(base, -1, 0, slot_event, &slots[i]);
	cpu0 = bio_cpu_self();
	t_start = bio_now();
	t_deadline = t_start + o_duration;
	if (o_idle) {
		for (i = 0; i < (o_ramp > 0 && o_ramp < o_conc ? o_ramp : o_conc); i++)
			slot_start(&slots[i]);
		event_base_dispatch(base);
		t_end = bio_now();
		printf("READY ok=%ld failed=%ld seconds=%.3f\n", parked, sess_fail, t_end - t_start);
		fflush(stdout);
		holding = 1;
		stdin_ev = event_new(base, 0, EV_READ, on_stdin, NULL);
		event_add(stdin_ev, NULL);
		event_base_dispatch(base);
		for (i = 0; i < o_conc; i++)
			if (slots[i].active && slots[i].state == C_PARKED) {
				bio_queuef(&slots[i].b, "QUIT\r\n");
				(void)bio_flush(&slots[i].b);
				bio_close(&slots[i].b);
			}
		sess_ok = parked;
		event_free(stdin_ev);
	} else {
		for (i = 0; i < o_conc && more_to_start(); i++)
			slot_start(&slots[i]);
		event_base_dispatch(base);
	}
	report(bio_cpu_self() - cpu0);
	return 0;
}
