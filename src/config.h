/*
 * config.h — the configuration file: grammar, validation, overrides.
 *
 * Grammar ("Postmaster" INI): `[section]` or `[section "name"]` headers,
 * `key = value` lines (a value may be several words), `#` comments, values
 * may be double-quoted with backslash escapes (\\ \" \n \t \xHH).  Unknown
 * sections and keys, duplicate singular keys and bad values are errors that
 * name file:line and what was expected.
 *
 * The reader (config*.c) is pure: config_parse_buffer() does no I/O;
 * config_load() only reads the file.  Checks that touch the filesystem (key
 * files, modes) are done by their users.
 */
#ifndef SUBPROXY_CONFIG_H
#define SUBPROXY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cidr.h"
#include "dane.h"

#define CONFIG_WORKERS_MAX 64
#define CONFIG_AUTH_WORKERS_MAX 64      /* [auth] workers */
#define CONFIG_KEY_WORKERS_MAX 64       /* [tls] key-workers */

enum tls_mode { TLS_MODE_IMPLICIT, TLS_MODE_STARTTLS };
enum dane_mode { DANE_MODE_REQUIRED, DANE_MODE_STATIC };

/* [tls] priority's default: TLS 1.3 and 1.2, ECDHE, AEAD ciphers; the
 * cheapest of equals first, and our order wins over the client's
 * (subproxy.conf(5)): AES-128-GCM with SHA-256 and X25519 cost a server
 * less than AES-256-GCM with SHA-384 or the NIST curves, at the 128-bit
 * level that the certificate's P-256 or RSA-2048 key and X25519 give
 * anyway. */
#define CONFIG_TLS_PRIORITY "SECURE192:+SECURE128:-VERS-ALL:+VERS-TLS1.3:" \
	"+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:" \
	"-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:" \
	"+GROUP-SECP384R1:+GROUP-X448:+GROUP-SECP521R1:+GROUP-FFDHE2048:" \
	"+GROUP-FFDHE3072:+GROUP-FFDHE4096:+GROUP-FFDHE6144:+GROUP-FFDHE8192:" \
	"%SERVER_PRECEDENCE:%SAFE_RENEGOTIATION"

struct config_listen {
	char *name;                     /* section name */
	char *address;                  /* as written: "127.0.0.1:5870", "[::1]:5870" */
	struct sockaddr_storage addr;   /* parsed; numeric only */
	socklen_t addrlen;
	int port;
	int public_port;                /* [listen] public-port; default = port */
	enum tls_mode tls;
	int proxy;                      /* [listen] proxy-protocol = yes */
	struct cidr *proxy_from;        /* proxy-from: who may send the header */
	size_t nproxy_from;
	uint64_t proxy_timeout;         /* proxy-timeout, seconds, default 5 */
	int line;                       /* line of the section header */
};

struct config_relay {
	char *name;
	char *host;                     /* host name (SNI, DANE base domain) or IP literal */
	char *address;                  /* optional connect address (IP literal); default: resolve host */
	int port;                       /* default 25 for starttls, 465 for implicit */
	enum tls_mode tls;              /* default starttls */
	enum dane_mode dane;            /* STATIC when any tlsa pin given, else REQUIRED */
	struct dane_tlsa *tlsa;         /* static pins, parsed */
	size_t ntlsa;
	char *auth_file;                /* optional: "user:password" on one line */
	int xclient;                    /* xclient = yes: tell the relay who the client is */
	/* connection reuse (per front worker): idle connections kept, their
	 * idle time (that of spares beyond them), and MAIL transactions per
	 * connection */
	uint64_t connections;           /* default 20; 0: one connection per transaction */
	uint64_t idle_timeout;          /* seconds, default 30 */
	uint64_t spare_timeout;         /* seconds a link given back to a full pool stays, default 2 */
	uint64_t max_transactions;      /* default 100 */
	int line;
};

struct config_sender {
	char *login;
	char **patterns;                /* "user@example.org" or "@example.org" */
	size_t npatterns;
};

struct config_dkim_key {
	char *selector;
	char *file;
};

struct config_dkim {
	char *domain;
	struct config_dkim_key *keys;
	size_t nkeys;
	int line;
};

/* Rate limits (0 = off); see ratelimit.h.  [limits] holds the defaults,
 * which apply per login and per client address; [login "NAME"] overrides
 * them for one login. */
struct config_rates {
	uint64_t messages_per_hour;
	uint64_t recipients_per_hour;
	uint64_t auth_per_minute;
	uint64_t sessions_per_login;    /* concurrent sessions (per login only) */
};

struct config_login {
	char *name;
	struct config_rates rates;      /* with the [limits] defaults filled in */
	int line;
};

/* [limits] message-size, at most: the signer maps the message with the
 * header fields front adds, at most SIGNER_MSG_MAX (2 GiB) in all. */
#define CONFIG_MESSAGE_SIZE_MAX	(2047ULL << 20)

/* [limits] transactions when not set: a quarter of the connections (an
 * idle session holds one descriptor, a transaction up to three), at least
 * 100, never more than the connections. */
#define CONFIG_TRANSACTIONS_MIN_DEFAULT 100
#define CONFIG_TRANSACTIONS_DEFAULT(conn) ((conn) / 4 > CONFIG_TRANSACTIONS_MIN_DEFAULT ? \
	(conn) / 4 : (conn) < CONFIG_TRANSACTIONS_MIN_DEFAULT ? (conn) : \
	CONFIG_TRANSACTIONS_MIN_DEFAULT)

struct config_limits {
	uint64_t message_size;          /* bytes, default 25 MiB */
	uint64_t recipients;            /* default 100 */
	uint64_t line_length;           /* octets excluding CRLF, default 998 */
	uint64_t header_size;           /* bytes, default 64 KiB */
	uint64_t received_max;          /* default 30 */
	uint64_t connections;           /* default 1000 */
	uint64_t transactions;          /* mail transactions in progress at once per front
					 * worker, default max(100, connections / 4) capped
					 * by connections (CONFIG_TRANSACTIONS_DEFAULT) */
	uint64_t connections_per_ip;    /* default 20 */
	uint64_t timeout;               /* seconds, default 300 */
	uint64_t auth_failures;         /* per session, default 3 */
	uint64_t memory_body;           /* bytes kept in memory before a memfd, default 256 KiB */
	uint64_t relay_timeout;         /* seconds, default 60 */
	uint64_t relay_min_rate;        /* octets/s the message goes to the relay at least,
					 * beyond relay_timeout (relay.h); default 500 */
	uint64_t protocol_errors;       /* per session, then 421 4.7.0; default 10 */
	uint64_t auth_timeout;          /* seconds from connect to AUTH, default 60 */
	uint64_t session_timeout;       /* seconds per session, default 3600 */
	uint64_t auth_queue;            /* password checks the keeper holds at once (waiting
					 * for or on a worker), default = connections */
	uint64_t ipv6_prefix;           /* bits of an IPv6 address that count as one, default 64 */
	uint64_t login_memory;          /* message octets one login may hold at once, default
					 * 4 x message_size */
	struct config_rates rates;      /* defaults: all 0 (off) */
};

struct config {
	char *file;                     /* path as given */
	uint8_t digest[32];             /* SHA-256 of the file and the -o overrides */

	/* [server] */
	char *hostname;                 /* required */
	char *user;                     /* front's uid; default "subproxy" */
	char *signer_user;              /* the signer's; default "subproxy-signer" */
	char *keeper_user;              /* the keeper's; default "subproxy-keeper" */
	char *recorder_user;            /* the audit log's; default "subproxy-recorder" */
	char *chroot;                   /* default "/var/empty/subproxy" (front, signer, keeper) */
	char *profile;                  /* default "baseline" */
	uint64_t shutdown_timeout;      /* [server] shutdown-timeout, seconds, default 30 */
	uint64_t workers;               /* [server] workers, 1..CONFIG_WORKERS_MAX; 0 = not set:
					 * the number of online CPUs (config_workers()) */
	uint64_t worker_restarts;       /* [server] worker-restarts: front workers replaced per
					 * minute before the service stops; default 5, 0 = none */

	/* [listen "NAME"] (at least one) */
	struct config_listen *listens;
	size_t nlistens;

	/* [tls] */
	char *tls_certificate;          /* required */
	char *tls_key;                  /* required */
	char *tls_priority;             /* default CONFIG_TLS_PRIORITY */
	uint64_t tls_key_workers;       /* key-workers: the keeper's signing threads,
					 * 1..CONFIG_KEY_WORKERS_MAX; 0 = not set: online CPUs
					 * (config_key_workers()) */

	/* [auth] */
	char *passwd_file;              /* required */
	uint64_t auth_cache_ttl;        /* cache-ttl, seconds, default 3600; 0 = no auth cache */
	uint64_t auth_cache_size;       /* cache-size, entries (one per login), default 10000 */
	uint64_t auth_workers;          /* workers: Argon2id threads, 1..CONFIG_AUTH_WORKERS_MAX;
					 * 0 = not set: online CPUs (config_auth_workers()) */

	/* [senders] LOGIN = ADDRESS, @DOMAIN, ... */
	struct config_sender *senders;
	size_t nsenders;

	/* [relay "NAME"] (at least one) */
	struct config_relay *relays;
	size_t nrelays;

	/* [dkim "DOMAIN"] key = SELECTOR FILE (repeatable) */
	struct config_dkim *dkims;
	size_t ndkims;

	/* [dns] */
	char *trust_anchor_file;        /* default "/usr/share/dns/root.key" */
	char *unbound_config;           /* optional */
	uint64_t dns_timeout;           /* [dns] timeout, seconds per lookup, default 10 */

	/* [audit]: the self-audit's live recheck, and the audit log, written by
	 * the recorder (recorder.h) */
	char *audit_log;                /* optional; absolute; NULL: no audit log */
	uint64_t audit_recheck;         /* [audit] recheck, seconds, default 3600, 0 = off */
	char *audit_signing_key;        /* Ed25519 PEM key for checkpoints; required with log */
	int audit_required;             /* 1 fail closed, 0 not, -1 unset: the profile decides */
	uint64_t audit_rotate_size;     /* bytes; 0 = rotate on SIGHUP only */
	uint64_t audit_checkpoint_records;  /* a checkpoint after this many records (1000) */
	uint64_t audit_checkpoint_interval; /* ... or this many seconds (60) */
	uint64_t audit_flood_records;   /* refusal records naming one client a minute (100) */
	int audit_pseudonymize;         /* 1: keyed hashes for addresses and logins */
	char *audit_pseudonymize_key;   /* the key file; required with pseudonymize */

	/* [metrics] (off unless address is given) */
	char *metrics_address;          /* as written: "127.0.0.1:9187" or "unix:/path" */
	struct sockaddr_storage metrics_addr;   /* AF_INET, AF_INET6 or AF_UNIX */
	socklen_t metrics_addrlen;
	int metrics_allow_remote;       /* [metrics] allow-remote = yes: non-loopback TCP */

	struct config_limits limits;

	/* [login "NAME"] (optional, several) */
	struct config_login *logins;
	size_t nlogins;
};

/* A -o override: "section.key=value" or "section.name.key=value". */
struct config_override {
	char *section, *name, *key, *value;
};

/* Parse an override string.  Returns 0, or -1 with a message in err (errlen
 * bytes).  The result owns its strings; free with config_override_clear(). */
int config_override_parse(const char *s, struct config_override *o, char *err, size_t errlen);
void config_override_clear(struct config_override *o);

/* Parse and validate a configuration held in memory.  `file` is used in
 * messages only.  Overrides replace every value of their key (or add the key
 * and, if needed, the section).  Returns a new config, or NULL with one
 * human-readable message ("FILE:LINE: ...") in err. */
struct config *config_parse_buffer(const char *file, const char *buf, size_t len,
    const struct config_override *ov, size_t nov, char *err, size_t errlen);

/* Read `path` and call config_parse_buffer(). */
struct config *config_load(const char *path, const struct config_override *ov,
    size_t nov, char *err, size_t errlen);

/* Free a config; *cfgp is set to NULL.  NULL is a no-op. */
void config_free(struct config **cfgp);

/* The number of front workers: [server] workers, or when it is not set the
 * number of online CPUs (`online`, from sysconf) within 1..CONFIG_WORKERS_MAX. */
unsigned config_workers(const struct config *cfg, long online);

/* Reload: settings a running service cannot change (the listening sockets,
 * the sandbox's users and chroot, the number of workers, the metrics socket,
 * the audit log's recorder settings -- it runs for the whole life of the
 * service -- and [limits] connections and transactions, which sized the
 * shared connection table and the descriptor limit at start) that differ between the running `old`
 * configuration and the reloaded `nw` are set back to their old values in
 * nw.  Their names ("[server] user, [listen] sections") go to names
 * (comma-separated, truncated to len).  Returns how many there were. */
size_t config_keep_restart_only(struct config *nw, const struct config *old, char *names,
    size_t len);

/* The keeper's Argon2id threads: [auth] workers, or when it is not set the
 * number of online CPUs (`online`, from sysconf) within
 * 1..CONFIG_AUTH_WORKERS_MAX. */
unsigned config_auth_workers(const struct config *cfg, long online);

/* The keeper's TLS key threads: [tls] key-workers, or when it is not set
 * the number of online CPUs (`online`, from sysconf) within
 * 1..CONFIG_KEY_WORKERS_MAX.  (The keeper starts no more than it has client
 * slots: each front worker asks one key operation at a time; and none for
 * an ECDSA or EdDSA key when key-workers is not set: its main thread signs.) */
unsigned config_key_workers(const struct config *cfg, long online);

/* Sender policy: may `login` use `address` as envelope or header sender?
 * Rules: the [senders] entry for the login (exact address, case-insensitive;
 * "@domain" = any address in that domain); without an entry, a login that is
 * itself an address may send only as itself.  The empty address is never
 * allowed here (null reverse-path is not a submission).  Returns 1 or 0. */
int config_sender_allowed(const struct config *cfg, const char *login, const char *address);

/* The rate limits of `login` (its [login] section, else the [limits]
 * defaults; login NULL: the defaults).  Login names compare exactly. */
const struct config_rates *config_login_rates(const struct config *cfg, const char *login);

#endif
