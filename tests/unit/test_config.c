/* Unit tests for config.c: grammar, validation errors naming file:line,
 * overrides, defaults and the sender policy. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "config.h"

#define PIN "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char base[] =
    "# test config\n"
    "[server]\n"
    "hostname = mail.lab.test\n"
    "\n"
    "[listen \"submissions\"]\n"
    "address = 127.0.0.1:4650\n"
    "tls = implicit\n"
    "[listen \"submission\"]\n"
    "address = [::1]:5870   # comment\n"
    "tls = starttls\n"
    "[tls]\n"
    "certificate = /etc/subproxy/cert.pem\n"
    "key = \"/etc/subproxy/key with space.pem\"\n"
    "[auth]\n"
    "passwd-file = /etc/subproxy/passwd\n"
    "[senders]\n"
    "alice@lab.test = alice@lab.test, @alias.lab.test\n"
    "shared = team@lab.test\n"
    "[relay \"mx\"]\n"
    "host = relay.lab.test\n"
    "address = 127.0.0.1\n"
    "port = 2525\n"
    "tlsa = \"" PIN "\"\n"
    "tlsa = \"3 0 1 " "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"\n"
    "[dkim \"lab.test\"]\n"
    "key = ed /k/ed.key\n"
    "key = rsa /k/rsa.key\n";

static struct config *
parse(const char *extra, const struct config_override *ov, size_t nov, char *err, size_t errlen)
{
	char buf[8192];

	snprintf(buf, sizeof(buf), "%s%s", base, extra);
	err[0] = '\0';
	return config_parse_buffer("t.conf", buf, strlen(buf), ov, nov, err, errlen);
}

static void
expect_error(const char *text, const char *want)
{
	char err[512];
	struct config *cfg;

	err[0] = '\0';
	cfg = config_parse_buffer("t.conf", text, strlen(text), NULL, 0, err, sizeof(err));
	if (cfg != NULL || strstr(err, want) == NULL)
		fail_msg("config %s, error \"%s\", wanted \"%s\"", cfg ? "accepted" : "refused", err,
		    want);
}

static void
expect_extra_error(const char *extra, const char *want)
{
	char buf[8192];

	snprintf(buf, sizeof(buf), "%s%s", base, extra);
	expect_error(buf, want);
}

static void
test_valid(void **state)
{
	char err[512];
	struct config *cfg = parse("", NULL, 0, err, sizeof(err));

	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->hostname, "mail.lab.test");
	assert_int_equal(cfg->nlistens, 2);
	assert_int_equal(cfg->listens[0].port, 4650);
	assert_int_equal(cfg->listens[0].tls, TLS_MODE_IMPLICIT);
	assert_int_equal(cfg->listens[0].addr.ss_family, AF_INET);
	assert_int_equal(cfg->listens[1].addr.ss_family, AF_INET6);
	assert_int_equal(cfg->listens[1].public_port, 5870);
	assert_string_equal(cfg->listens[1].address, "[::1]:5870");
	assert_string_equal(cfg->tls_key, "/etc/subproxy/key with space.pem");
	assert_int_equal(cfg->nrelays, 1);
	assert_int_equal(cfg->relays[0].port, 2525);
	assert_int_equal(cfg->relays[0].ntlsa, 2);
	assert_int_equal(cfg->relays[0].dane, DANE_MODE_STATIC);
	assert_int_equal(cfg->relays[0].tls, TLS_MODE_STARTTLS);
	/* defaults */
	assert_int_equal(cfg->limits.message_size, 25 << 20);
	assert_int_equal(cfg->limits.line_length, 998);
	assert_string_equal(cfg->user, "subproxy");
	assert_string_equal(cfg->profile, "baseline");
	assert_string_equal(cfg->trust_anchor_file, "/usr/share/dns/root.key");
	assert_int_equal(cfg->dns_timeout, 10);
	config_free(&cfg);
	assert_null(cfg);
	config_free(&cfg);
}

static void
test_limits_and_units(void **state)
{
	/* [limits] transactions: a quarter of the connections, at least 100,
	 * at most the connections; or as set */
	static const struct { const char *text; uint64_t want; } txn[] = {
		{ "[limits]\nconnections = 10000\n", 2500 },
		{ "[limits]\nconnections = 200\n", 100 },
		{ "[limits]\nconnections = 10\n", 10 },
		{ "[limits]\ntransactions = 7\n", 7 },
	};
	char err[512];
	size_t i;
	struct config *cfg = parse("[limits]\nmessage-size = 10m\nheader-size = 64k\n"
	    "timeout = 5m\nrelay-timeout = 30\nrecipients = 7\n[dns]\ntimeout = 2s\n",
	    NULL, 0, err, sizeof(err));

	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg->limits.message_size, 10 << 20);
	assert_int_equal(cfg->limits.header_size, 64 << 10);
	assert_int_equal(cfg->limits.timeout, 300);
	assert_int_equal(cfg->limits.relay_timeout, 30);
	assert_int_equal(cfg->limits.relay_min_rate, 500);
	assert_int_equal(cfg->limits.recipients, 7);
	assert_int_equal(cfg->dns_timeout, 2);
	/* defaults of the session limits; login-memory follows message-size */
	assert_int_equal(cfg->limits.protocol_errors, 10);
	assert_int_equal(cfg->limits.auth_timeout, 60);
	assert_int_equal(cfg->limits.session_timeout, 3600);
	assert_int_equal(cfg->limits.ipv6_prefix, 64);
	assert_int_equal(cfg->limits.login_memory, 40 << 20);
	assert_int_equal(cfg->limits.transactions, 250);
	config_free(&cfg);
	for (i = 0; i < sizeof(txn) / sizeof(txn[0]); i++) {
		cfg = parse(txn[i].text, NULL, 0, err, sizeof(err));
		assert_non_null(cfg);
		assert_int_equal(cfg->limits.transactions, txn[i].want);
		config_free(&cfg);
	}
	cfg = parse("[limits]\nprotocol-errors = 3\nauth-timeout = 2m\nsession-timeout = 2h\n"
	    "ipv6-prefix = 56\nlogin-memory = 1g\nrelay-min-rate = 2k\n", NULL, 0, err,
	    sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg->limits.protocol_errors, 3);
	assert_int_equal(cfg->limits.auth_timeout, 120);
	assert_int_equal(cfg->limits.session_timeout, 7200);
	assert_int_equal(cfg->limits.ipv6_prefix, 56);
	assert_int_equal(cfg->limits.login_memory, 1 << 30);
	assert_int_equal(cfg->limits.relay_min_rate, 2048);
	config_free(&cfg);
}

/* The largest message-size the signer can take is accepted. */
static void
test_message_size_max(void **state)
{
	char err[512];
	struct config *cfg = parse("[limits]\nmessage-size = 2047m\n", NULL, 0, err,
	    sizeof(err));

	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg->limits.message_size, CONFIG_MESSAGE_SIZE_MAX);
	config_free(&cfg);
}

static void
test_errors_name_file_line(void **state)
{
	expect_extra_error("[bogus]\n", "t.conf:28: unknown section [bogus]");
	expect_extra_error("[limits]\nnonsense = 1\n", "t.conf:29: unknown key 'nonsense'");
	expect_extra_error("[limits]\nrecipients = many\n", "t.conf:29: bad value 'many'");
	expect_extra_error("[limits]\nrecipients = 0\n", "t.conf:29: bad value '0'");
	expect_extra_error("[limits]\nmessage-size = 99999999999999999999999\n",
	    "t.conf:29: bad value");
	/* the signer maps a message of at most 2 GiB with the fields front
	 * adds: a larger limit would let messages in that get 451 forever */
	expect_extra_error("[limits]\nmessage-size = 2g\n", "t.conf:29: bad value '2g' for "
	    "'message-size' (expected a size in bytes from 1024 to 2146435072");
	/* no rate means no limit on how long a relay may take the message */
	expect_extra_error("[limits]\nrelay-min-rate = 0\n", "t.conf:29: bad value '0' for "
	    "'relay-min-rate' (expected octets per second from 1 to 1073741824, optional suffix "
	    "k, m or g)");
	expect_extra_error("[limits]\nrelay-min-rate = fast\n", "t.conf:29: bad value 'fast'");
	expect_extra_error("[limits]\nrecipients = 5\nrecipients = 6\n",
	    "t.conf:30: duplicate key 'recipients'");
	expect_extra_error("[server]\n", "t.conf:28: duplicate section [server]");
	expect_extra_error("[relay \"mx\"]\nhost = x.test\n", "duplicate section [relay \"mx\"]");
	expect_extra_error("[relay]\n", "t.conf:28: section [relay] needs a name");
	expect_extra_error("[relay \"b\"]\nport = 25\n", "t.conf:28: section [relay \"b\"] needs "
	    "'host = ...'");
	expect_extra_error("[relay \"b\"]\nhost = 192.0.2.1\n", "DANE cannot look up");
	expect_extra_error("[relay \"b\"]\nhost = r.test\ntlsa = \"3 1 1 abcd\"\n",
	    "t.conf:30: bad tlsa record");
	expect_extra_error("[relay \"b\"]\nhost = r.test\ntlsa = \"" PIN "\"\ndane = required\n",
	    "exclude each other");
	expect_extra_error("[relay \"b\"]\nhost = r.test\ntls = maybe\n",
	    "t.conf:30: bad value 'maybe' for 'tls' (expected implicit or starttls)");
	expect_extra_error("[relay \"b\"]\nhost = r.test\ntlsa = \"1 1 1 "
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n",
	    "no usable tlsa pin");
	expect_extra_error("[listen \"x\"]\naddress = 127.0.0.1\ntls = implicit\n",
	    "t.conf:29: bad address '127.0.0.1'");
	expect_extra_error("[listen \"x\"]\naddress = 127.0.0.1:99999\ntls = implicit\n",
	    "t.conf:29: bad address");
	expect_extra_error("[listen \"x\"]\naddress = 127.0.0.1:4650\ntls = implicit\n",
	    "same address");
	expect_extra_error("[listen \"x\"]\naddress = 127.0.0.2:1\n", "needs 'tls = implicit'");
	expect_extra_error("[senders]\n", "duplicate section [senders]");
	expect_extra_error("[dkim \"x.test\"]\nkey = onlyselector\n",
	    "t.conf:29: bad value 'onlyselector' for 'key' (expected 'SELECTOR FILE')");
	expect_extra_error("[dkim \"other.test\"]\n", "needs 'key = SELECTOR FILE'");
	expect_extra_error("[dkim \"lab.test\"]\n", "duplicate section [dkim \"lab.test\"]");
	expect_extra_error("[dkim \"x.test\"]\nkey = s1 /a\nkey = s1 /b\n", "duplicate selector");
	expect_extra_error("[dns]\ntimeout = 0\n", "t.conf:29: bad value '0' for 'timeout'");
	expect_extra_error("[tls]\n", "duplicate section [tls]");
	expect_extra_error("value = key\n", "t.conf:28: unknown key 'value' in section [dkim]");
	expect_extra_error("[limits]\nheader-size = 2m\nmessage-size = 1m\n",
	    "t.conf:29: [limits] header-size (2097152) is larger than message-size");
	/* a default contradicts a key that is set: that key's line (it was
	 * "command line override" with no -o given) */
	expect_extra_error("[limits]\nmessage-size = 10k\n", "t.conf:29: [limits] header-size "
	    "(65536, the default) is larger than message-size (10240) (expected at most "
	    "message-size)");
	expect_extra_error("[limits]\r\nrecipients = 5\r\nsession-timeout = 30s\r\n",
	    "t.conf:30: [limits] auth-timeout (60 s, the default) is longer than "
	    "session-timeout (30 s)");
	expect_extra_error("[limits]\nprotocol-errors = 0\n", "t.conf:29: bad value '0'");
	expect_extra_error("[limits]\nipv6-prefix = 129\n", "t.conf:29: bad value '129'");
	expect_extra_error("[limits]\nsession-timeout = 30\nauth-timeout = 60\n",
	    "t.conf:30: [limits] auth-timeout (60 s) is longer than session-timeout (30 s)");
	expect_extra_error("[limits]\nmessage-size = 10m\nlogin-memory = 1m\n",
	    "t.conf:30: [limits] login-memory (1048576) is smaller than message-size");
	expect_extra_error("[limits]\nconnections = 100\ntransactions = 101\n",
	    "t.conf:30: [limits] transactions (101) is larger than connections (100): every "
	    "transaction belongs to a session (expected at most connections)");
	expect_extra_error("[limits]\ntransactions = 0\n", "t.conf:29: bad value '0' for "
	    "'transactions' (expected a number from 1 to 1000000)");
	expect_extra_error("[auth]x\n", "t.conf:28: expected ']'");
	expect_extra_error("[limits \"x\"]\n", "takes no name");
	expect_extra_error("[limits]\nrecipients 5\n", "t.conf:29: expected '=' after 'recipients'");
	expect_extra_error("[server]x\n", "expected ']'");
	/* grammar */
	expect_error("hostname = x\n", "t.conf:1: 'key = value' outside of a section");
	expect_error("[server]\nhostname = \"unterminated\n", "t.conf:2: unterminated quoted");
	expect_error("[server]\nhostname = \"a\\qb\"\n", "t.conf:2: unknown escape");
	expect_error("[server]\nhostname = \"a\" junk\n", "t.conf:2: unexpected text after");
	expect_error("[server]\nhost\x01name = x\n", "t.conf:2: control character");
	expect_error("[server]\nhostname = bad_host-.test\n", "t.conf:2: bad host name");
	expect_error("[server]\nhostname = a.test\n", "no [listen \"NAME\"] section");
	expect_error("", "missing section [server]");
	expect_error("\xef\xbb\xbf[server]\nhostname = a.test\n", "t.conf:1: the file starts "
	    "with a UTF-8 byte order mark (expected text without it");
}

static void
test_missing_required(void **state)
{
	static const char *cut[] = { "[tls]", "[auth]", "[relay", "hostname =" };
	size_t i;

	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		char buf[8192], err[512];
		char *p;
		struct config *cfg;

		snprintf(buf, sizeof(buf), "%s", base);
		p = strstr(buf, cut[i]);
		assert_non_null(p);
		p[0] = '#';     /* comment the line out */
		if (i == 1 || i == 0) {
			/* the section's keys now belong to the section before */
			cfg = config_parse_buffer("t.conf", buf, strlen(buf), NULL, 0, err,
			    sizeof(err));
			assert_null(cfg);
			assert_non_null(strstr(err, "t.conf:"));
			continue;
		}
		cfg = config_parse_buffer("t.conf", buf, strlen(buf), NULL, 0, err, sizeof(err));
		assert_null(cfg);
		assert_non_null(strstr(err, "t.conf:"));
	}
}

static void
test_quoting(void **state)
{
	char err[512];
	struct config *cfg = parse("[audit]\nsigning-key = /k\n"
	    "log = \"/var/log/a\\x41 \\\"q\\\" \\\\ #x\" # c\n", NULL, 0, err, sizeof(err));

	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->audit_log, "/var/log/aA \"q\" \\ #x");
	config_free(&cfg);
	cfg = parse("[audit]\nsigning-key = /k\nlog = /a#b  # comment\n", NULL, 0, err,
	    sizeof(err));
	assert_non_null(cfg);
	assert_string_equal(cfg->audit_log, "/a#b");
	config_free(&cfg);
	/* \x00 cannot be smuggled into a C string */
	cfg = parse("[audit]\nsigning-key = /k\nlog = \"a\\x00b\"\n", NULL, 0, err, sizeof(err));
	assert_null(cfg);
}

/* [audit]: defaults, and what needs what. */
static void
test_audit_section(void **state)
{
	static const struct { const char *text, *words; } bad[] = {
		{ "[audit]\nlog = /l\n", "t.conf:28: [audit] log needs 'signing-key" },
		{ "[audit]\nsigning-key = /k\n", "needs 'log = FILE'" },
		{ "[audit]\nlog = l\nsigning-key = /k\n", "absolute file name" },
		{ "[audit]\nlog = /d/\nsigning-key = /k\n", "absolute file name" },
		{ "[audit]\nlog = /l\nsigning-key = /k\npseudonymize = yes\n", "pseudonymize-key" },
		{ "[audit]\nlog = /l\nsigning-key = /k\npseudonymize-key = /p\n", "not yes" },
		{ "[audit]\nlog = /l\nsigning-key = /k\nrequired = 1\n", "expected yes or no" },
		{ "[audit]\nlog = /l\nsigning-key = /k\nrotate-size = 100\n", "rotate-size" },
		{ "[audit]\nlog = /l\nsigning-key = /k\ncheckpoint-records = 0\n",
		    "checkpoint-records" },
		{ "[audit]\nlog = /l\nsigning-key = /k\nflood-records = 100001\n",
		    "t.conf:31: bad value '100001' for 'flood-records' (expected a number from 0 "
		    "to 100000)" },
		{ "[audit]\nflood-records = 10\n", "'flood-records' needs 'log = FILE'" },
	};
	char err[512];
	struct config *cfg;
	size_t i;

	cfg = parse("", NULL, 0, err, sizeof(err));
	assert_non_null(cfg);
	assert_null(cfg->audit_log);
	assert_int_equal(cfg->audit_required, -1);
	config_free(&cfg);
	cfg = parse("[audit]\nlog = /var/log/subproxy/audit.log\nsigning-key = /k\n"
	    "rotate-size = 10m\ncheckpoint-interval = 2m\nrequired = no\n", NULL, 0, err,
	    sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg->audit_rotate_size, 10 * 1024 * 1024);
	assert_int_equal(cfg->audit_checkpoint_interval, 120);
	assert_int_equal(cfg->audit_checkpoint_records, 1000);
	assert_int_equal(cfg->audit_flood_records, 100);
	assert_int_equal(cfg->audit_required, 0);
	assert_int_equal(cfg->audit_pseudonymize, 0);
	config_free(&cfg);
	cfg = parse("[audit]\nlog = /l\nsigning-key = /k\nflood-records = 0\n", NULL, 0, err,
	    sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->audit_flood_records, 0);
	config_free(&cfg);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = parse(bad[i].text, NULL, 0, err, sizeof(err));
		if (cfg != NULL || strstr(err, bad[i].words) == NULL)
			fail_msg("%s: %s", bad[i].text, cfg ? "accepted" : err);
	}
}

/* The digest covers the file and the overrides. */
static void
test_digest(void **state)
{
	struct config_override ov;
	char err[512];
	struct config *a, *b, *c;

	a = parse("", NULL, 0, err, sizeof(err));
	b = parse("# another comment\n", NULL, 0, err, sizeof(err));
	assert_int_equal(config_override_parse("limits.recipients=7", &ov, err, sizeof(err)), 0);
	c = parse("", &ov, 1, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_memory_not_equal(a->digest, b->digest, sizeof(a->digest));
	assert_memory_not_equal(a->digest, c->digest, sizeof(a->digest));
	config_override_clear(&ov);
	config_free(&a);
	config_free(&b);
	config_free(&c);
}

static void
test_overrides(void **state)
{
	struct config_override ov[5];
	char err[512];
	struct config *cfg;
	size_t i;

	assert_int_equal(config_override_parse("limits.recipients=3", &ov[0], err, sizeof(err)), 0);
	assert_null(ov[0].name);
	assert_int_equal(config_override_parse("relay.mx.port=2626", &ov[1], err, sizeof(err)), 0);
	assert_string_equal(ov[1].name, "mx");
	assert_int_equal(config_override_parse("dkim.other.test.key=s1 /k", &ov[2], err,
	    sizeof(err)), 0);
	assert_string_equal(ov[2].name, "other.test");
	assert_string_equal(ov[2].key, "key");
	assert_int_equal(config_override_parse("relay.mx.tlsa=" PIN, &ov[3], err, sizeof(err)), 0);
	assert_int_equal(config_override_parse("server.hostname=other.lab.test", &ov[4], err,
	    sizeof(err)), 0);
	cfg = parse("", ov, 5, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg->limits.recipients, 3);
	assert_int_equal(cfg->relays[0].port, 2626);
	assert_int_equal(cfg->relays[0].ntlsa, 1);     /* replaced both pins */
	assert_int_equal(cfg->ndkims, 2);              /* section added */
	assert_string_equal(cfg->dkims[1].keys[0].file, "/k");
	assert_string_equal(cfg->hostname, "other.lab.test");
	config_free(&cfg);
	for (i = 0; i < 5; i++)
		config_override_clear(&ov[i]);

	assert_int_equal(config_override_parse("limits.nonsense=1", &ov[0], err, sizeof(err)), 0);
	cfg = parse("", ov, 1, err, sizeof(err));
	assert_null(cfg);
	assert_non_null(strstr(err, "override"));
	assert_non_null(strstr(err, "unknown key 'nonsense'"));
	config_override_clear(&ov[0]);
	assert_int_equal(config_override_parse("relay.port=1", &ov[0], err, sizeof(err)), 0);
	cfg = parse("", ov, 1, err, sizeof(err));
	assert_null(cfg);
	assert_non_null(strstr(err, "needs a name"));
	config_override_clear(&ov[0]);
	assert_int_equal(config_override_parse("limits.recipients=x", &ov[0], err, sizeof(err)), 0);
	cfg = parse("", ov, 1, err, sizeof(err));
	assert_null(cfg);
	assert_non_null(strstr(err, "bad value 'x'"));
	config_override_clear(&ov[0]);
	/* a contradiction the override made is the override's */
	assert_int_equal(config_override_parse("limits.message-size=10k", &ov[0], err,
	    sizeof(err)), 0);
	cfg = parse("", ov, 1, err, sizeof(err));
	assert_null(cfg);
	assert_string_equal(err, "t.conf: command line override: [limits] header-size (65536, "
	    "the default) is larger than message-size (10240) (expected at most message-size)");
	config_override_clear(&ov[0]);

	assert_int_equal(config_override_parse("novalue", &ov[0], err, sizeof(err)), -1);
	assert_int_equal(config_override_parse("=x", &ov[0], err, sizeof(err)), -1);
	assert_int_equal(config_override_parse("server=x", &ov[0], err, sizeof(err)), -1);
	assert_int_equal(config_override_parse("server.=x", &ov[0], err, sizeof(err)), -1);
	assert_int_equal(config_override_parse("relay..port=x", &ov[0], err, sizeof(err)), -1);
}

static void
test_senders(void **state)
{
	char err[512];
	struct config *cfg = parse("", NULL, 0, err, sizeof(err));

	assert_non_null(cfg);
	assert_true(config_sender_allowed(cfg, "alice@lab.test", "alice@lab.test"));
	assert_true(config_sender_allowed(cfg, "ALICE@lab.test", "Alice@LAB.test"));
	assert_true(config_sender_allowed(cfg, "alice@lab.test", "x@alias.lab.test"));
	assert_false(config_sender_allowed(cfg, "alice@lab.test", "x@sub.alias.lab.test"));
	assert_false(config_sender_allowed(cfg, "alice@lab.test", "@alias.lab.test"));
	assert_false(config_sender_allowed(cfg, "alice@lab.test", "x@evilalias.lab.test"));
	assert_false(config_sender_allowed(cfg, "alice@lab.test", "bob@lab.test"));
	assert_false(config_sender_allowed(cfg, "alice@lab.test", ""));
	/* without an entry: only itself */
	assert_true(config_sender_allowed(cfg, "bob@lab.test", "bob@lab.test"));
	assert_false(config_sender_allowed(cfg, "bob@lab.test", "alice@lab.test"));
	/* a login that is not an address needs an entry */
	assert_true(config_sender_allowed(cfg, "shared", "team@lab.test"));
	assert_false(config_sender_allowed(cfg, "other", "other"));
	assert_false(config_sender_allowed(cfg, "shared", "shared"));
	config_free(&cfg);
	expect_extra_error("[auth]\n", "duplicate section");
}

/* The shipped example must stay valid (run from the source tree's root). */
/* [server] shutdown-timeout, [audit] recheck, [metrics]. */
static void
test_operations_keys(void **state)
{
	struct config_override ov[2];
	struct config *cfg;
	char err[512], want[200];
	int line = 1;
	const char *p;

	for (p = base; *p; p++)
		line += *p == '\n';
	cfg = parse("", NULL, 0, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->shutdown_timeout, 30);
	assert_int_equal(cfg->audit_recheck, 3600);
	assert_null(cfg->metrics_address);
	config_free(&cfg);
	assert_int_equal(config_override_parse("server.shutdown-timeout=2m", &ov[0], err,
	    sizeof(err)), 0);
	assert_int_equal(config_override_parse("audit.recheck=0", &ov[1], err, sizeof(err)), 0);
	cfg = parse("[metrics]\naddress = [::1]:9187\n", ov, 2, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->shutdown_timeout, 120);
	assert_int_equal(cfg->audit_recheck, 0);
	assert_string_equal(cfg->metrics_address, "[::1]:9187");
	assert_int_equal(cfg->metrics_addr.ss_family, AF_INET6);
	config_free(&cfg);
	config_override_clear(&ov[0]);
	config_override_clear(&ov[1]);
	cfg = parse("[audit]\nrecheck = 15m\n[metrics]\naddress = unix:/run/sp/m.sock\n", NULL,
	    0, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->audit_recheck, 900);
	assert_int_equal(cfg->metrics_addr.ss_family, AF_UNIX);
	config_free(&cfg);
	cfg = parse("[metrics]\naddress = 127.0.0.2:9187\n", NULL, 0, err, sizeof(err));
	assert_non_null(cfg);
	config_free(&cfg);
	cfg = parse("[metrics]\naddress = 0.0.0.0:9187\nallow-remote = yes\n", NULL, 0, err,
	    sizeof(err));
	assert_non_null(cfg);
	assert_true(cfg->metrics_allow_remote);
	config_free(&cfg);
	/* refused, naming file:line */
	snprintf(want, sizeof(want), "t.conf:%d: metrics address '192.0.2.1:9187' is not a "
	    "loopback address", line + 1);
	expect_extra_error("[metrics]\naddress = 192.0.2.1:9187\n", want);
	snprintf(want, sizeof(want), "t.conf:%d: metrics address '[::]:9187' is not a loopback",
	    line + 2);
	expect_extra_error("[metrics]\nallow-remote = no\naddress = [::]:9187\n", want);
	snprintf(want, sizeof(want), "t.conf:%d: bad address 'unix:rel' (expected unix: and an "
	    "absolute path", line + 1);
	expect_extra_error("[metrics]\naddress = unix:rel\n", want);
	snprintf(want, sizeof(want), "t.conf:%d: bad address 'localhost:9187'", line + 1);
	expect_extra_error("[metrics]\naddress = localhost:9187\n", want);
	snprintf(want, sizeof(want), "t.conf:%d: bad value 'maybe' for 'allow-remote' (expected "
	    "yes or no)", line + 1);
	expect_extra_error("[metrics]\nallow-remote = maybe\n", want);
	snprintf(want, sizeof(want), "t.conf:%d: bad value '-1' for 'recheck'", line + 1);
	expect_extra_error("[audit]\nrecheck = -1\n", want);
	snprintf(want, sizeof(want), "t.conf:%d: unknown key 'port' in section [metrics]", line + 1);
	expect_extra_error("[metrics]\nport = 5\n", want);
}

/* [server] workers and worker-restarts; what a reload may not change. */
static void
test_workers_and_reload(void **state)
{
	struct config_override ov[6];
	struct config *old, *nw;
	char err[512], names[256];
	const char *set[] = {
		"server.workers=3", "server.user=other", "listen.submission.address=[::1]:5871",
		"limits.connections=50", "metrics.address=127.0.0.1:9187",
		"server.hostname=mx2.lab.test"
	};
	size_t i;

	old = parse("", NULL, 0, err, sizeof(err));
	assert_non_null(old);
	assert_int_equal(old->workers, 0);
	assert_int_equal(old->worker_restarts, 5);
	assert_int_equal(config_workers(old, 2), 2);
	assert_int_equal(config_workers(old, 0), 1);
	assert_int_equal(config_workers(old, 512), CONFIG_WORKERS_MAX);
	/* nothing changed: nothing kept */
	nw = parse("", NULL, 0, err, sizeof(err));
	assert_int_equal(config_keep_restart_only(nw, old, names, sizeof(names)), 0);
	assert_string_equal(names, "");
	config_free(&nw);

	for (i = 0; i < 6; i++)
		assert_int_equal(config_override_parse(set[i], &ov[i], err, sizeof(err)), 0);
	nw = parse("", ov, 6, err, sizeof(err));
	assert_non_null(nw);
	assert_int_equal(nw->workers, 3);
	assert_int_equal(config_workers(nw, 2), 3);
	/* [limits] transactions follows connections (50: 50) and sized the
	 * descriptor limit too */
	assert_int_equal(nw->limits.transactions, 50);
	assert_int_equal(config_keep_restart_only(nw, old, names, sizeof(names)), 6);
	assert_string_equal(names, "[listen] sections, [server] user, [server] workers, "
	    "[metrics] address, [limits] connections, [limits] transactions");
	/* the old values are back; what may change has changed */
	assert_int_equal(nw->workers, 0);
	assert_string_equal(nw->user, old->user);
	assert_string_equal(nw->listens[1].address, "[::1]:5870");
	assert_int_equal(nw->limits.connections, 1000);
	assert_int_equal(nw->limits.transactions, 250);
	assert_null(nw->metrics_address);
	assert_string_equal(nw->hostname, "mx2.lab.test");
	/* a truncated list still counts every setting */
	config_free(&nw);
	nw = parse("", ov, 6, err, sizeof(err));
	assert_int_equal(config_keep_restart_only(nw, old, names, 12), 6);
	assert_true(strlen(names) < 12);
	config_free(&nw);
	for (i = 0; i < 6; i++)
		config_override_clear(&ov[i]);
	config_free(&old);

	/* the audit log's recorder: restart only */
	assert_int_equal(config_override_parse("audit.log=/var/log/subproxy/audit.log", &ov[0],
	    err, sizeof(err)), 0);
	assert_int_equal(config_override_parse("audit.signing-key=/etc/subproxy/audit.key",
	    &ov[1], err, sizeof(err)), 0);
	nw = parse("", ov, 2, err, sizeof(err));
	assert_non_null(nw);
	old = parse("", NULL, 0, err, sizeof(err));
	assert_int_equal(config_keep_restart_only(nw, old, names, sizeof(names)), 1);
	assert_string_equal(names, "[audit] log and its keys");
	assert_null(nw->audit_log);
	assert_null(nw->audit_signing_key);
	config_free(&nw);
	config_free(&old);
	config_override_clear(&ov[0]);
	config_override_clear(&ov[1]);

	assert_int_equal(config_override_parse("server.worker-restarts=0", &ov[0], err,
	    sizeof(err)), 0);
	nw = parse("", ov, 1, err, sizeof(err));
	assert_non_null(nw);
	assert_int_equal(nw->worker_restarts, 0);
	config_free(&nw);
	config_override_clear(&ov[0]);
	assert_int_equal(config_override_parse("server.workers=65", &ov[0], err, sizeof(err)), 0);
	assert_null(parse("", ov, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "bad value '65' for 'workers' (expected a number from 1 to 64"));
	config_override_clear(&ov[0]);
	assert_int_equal(config_override_parse("server.workers=0", &ov[0], err, sizeof(err)), 0);
	assert_null(parse("", ov, 1, err, sizeof(err)));
	config_override_clear(&ov[0]);
}

/* Parse with -o overrides given as strings. */
static struct config *
parse_ov(const char *extra, const char *const *ovs, size_t n, char *err, size_t errlen)
{
	struct config_override ov[4];
	struct config *cfg;
	size_t i;

	assert_true(n <= 4);
	for (i = 0; i < n; i++)
		assert_int_equal(config_override_parse(ovs[i], &ov[i], err, errlen), 0);
	cfg = parse(extra, ov, n, err, errlen);
	for (i = 0; i < n; i++)
		config_override_clear(&ov[i]);
	return cfg;
}

/* [auth] cache-ttl, cache-size, workers; [limits] auth-queue. */
static void
test_auth_keys(void **state)
{
	static const char *const set[] = {
		"auth.cache-ttl=15m", "auth.cache-size=3", "auth.workers=5", "limits.auth-queue=7"
	};
	static const char *const off[] = { "auth.cache-ttl=0" };
	static const char *const bad[][1] = {
		{ "auth.cache-ttl=8d" }, { "auth.cache-size=0" }, { "auth.workers=0" },
		{ "auth.workers=65" }, { "limits.auth-queue=0" }, { "limits.auth-queue=1000001" },
	};
	static const char *const why[] = {
		"bad value '8d' for 'cache-ttl'", "bad value '0' for 'cache-size'",
		"bad value '0' for 'workers' (expected a number from 1 to 64)",
		"bad value '65' for 'workers'", "bad value '0' for 'auth-queue'",
		"bad value '1000001' for 'auth-queue' (expected a number from 1 to 1000000)",
	};
	struct config *cfg;
	char err[512];
	size_t i;

	/* defaults: an hour, 10,000 logins, one worker per CPU, a queue as long
	 * as the connection limit */
	cfg = parse("", NULL, 0, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->auth_cache_ttl, 3600);
	assert_int_equal(cfg->auth_cache_size, 10000);
	assert_int_equal(cfg->auth_workers, 0);
	assert_int_equal(config_auth_workers(cfg, 6), 6);
	assert_int_equal(config_auth_workers(cfg, 1000), CONFIG_AUTH_WORKERS_MAX);
	assert_int_equal(config_auth_workers(cfg, -1), 1);
	assert_int_equal(cfg->limits.auth_queue, 1000);
	config_free(&cfg);
	cfg = parse("[limits]\nconnections = 5000\n", NULL, 0, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->limits.auth_queue, 5000);
	config_free(&cfg);
	cfg = parse_ov("", set, 4, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg->auth_cache_ttl, 900);
	assert_int_equal(cfg->auth_cache_size, 3);
	assert_int_equal(config_auth_workers(cfg, 2), 5);
	assert_int_equal(cfg->limits.auth_queue, 7);
	config_free(&cfg);
	cfg = parse_ov("", off, 1, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->auth_cache_ttl, 0);
	config_free(&cfg);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(parse_ov("", bad[i], 1, err, sizeof(err)));
		if (strstr(err, why[i]) == NULL)
			fail_msg("-o %s: \"%s\", wanted \"%s\"", bad[i][0], err, why[i]);
	}
}

/* [tls] key-workers: the keeper's signing threads; not set = one per CPU. */
static void
test_key_workers(void **state)
{
	static const char *const set[] = { "tls.key-workers=3" };
	char text[8192], err[512];
	const char *tls = strstr(base, "[tls]\n");
	struct config *cfg;

	cfg = parse("", NULL, 0, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->tls_key_workers, 0);
	assert_int_equal(config_key_workers(cfg, 6), 6);
	assert_int_equal(config_key_workers(cfg, 1000), CONFIG_KEY_WORKERS_MAX);
	assert_int_equal(config_key_workers(cfg, -1), 1);
	config_free(&cfg);
	cfg = parse_ov("", set, 1, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(config_key_workers(cfg, 64), 3);
	/* it changes nothing else */
	assert_int_equal(config_auth_workers(cfg, 64), 64);
	assert_int_equal(config_workers(cfg, 64), 64);
	config_free(&cfg);
	/* refused, naming file:line ([tls] is line 11 of base) */
	assert_non_null(tls);
	snprintf(text, sizeof(text), "%.*skey-workers = 0\n%s", (int)(tls - base + 6), base,
	    tls + 6);
	expect_error(text, "t.conf:12: bad value '0' for 'key-workers' (expected a number from "
	    "1 to 64)");
	snprintf(text, sizeof(text), "%.*skey-workers = many\n%s", (int)(tls - base + 6), base,
	    tls + 6);
	expect_error(text, "t.conf:12: bad value 'many' for 'key-workers'");
	snprintf(text, sizeof(text), "%.*skey-workers = 65\n%s", (int)(tls - base + 6), base,
	    tls + 6);
	expect_error(text, "t.conf:12: bad value '65' for 'key-workers'");
}

static void
test_contrib_example(void **state)
{
	char err[512];
	struct config *cfg = config_load("contrib/subproxy.conf.example", NULL, 0, err, sizeof(err));

	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg->nlistens, 2);
	assert_int_equal(cfg->relays[0].dane, DANE_MODE_REQUIRED);
	assert_int_equal(cfg->dkims[0].nkeys, 2);
	config_free(&cfg);
	cfg = config_load("/nonexistent/subproxy.conf", NULL, 0, err, sizeof(err));
	assert_null(cfg);
	assert_non_null(strstr(err, "/nonexistent/subproxy.conf: cannot open"));
}

/* PROXY protocol on a listener, XCLIENT on a relay. */
static void
test_edge(void **state)
{
	char err[512];
	struct config *cfg;
	const struct config_listen *l;

	cfg = parse("[listen \"lb\"]\naddress = 127.0.0.1:5871\ntls = starttls\n"
	    "proxy-protocol = yes\nproxy-from = 192.0.2.0/24, 2001:db8::7\n"
	    "proxy-from = 127.0.0.1\nproxy-timeout = 3s\n"
	    "[relay \"pf\"]\nhost = relay.lab.test\naddress = 127.0.0.1\ntlsa = \"" PIN "\"\n"
	    "xclient = yes\n", NULL, 0, err, sizeof(err));
	assert_non_null(cfg);
	l = &cfg->listens[2];
	assert_true(l->proxy);
	assert_int_equal(l->nproxy_from, 3);
	assert_int_equal(l->proxy_timeout, 3);
	assert_int_equal(l->proxy_from[0].bits, 24);
	assert_false(cfg->listens[0].proxy);
	assert_int_equal(cfg->listens[0].proxy_timeout, 5);
	assert_false(cfg->relays[0].xclient);
	assert_true(cfg->relays[1].xclient);
	config_free(&cfg);

	expect_extra_error("[listen \"lb\"]\naddress = 127.0.0.1:5871\ntls = starttls\n"
	    "proxy-protocol = yes\n", "t.conf:28: listener \"lb\": proxy-protocol = yes needs "
	    "'proxy-from");
	expect_extra_error("[listen \"lb\"]\naddress = 127.0.0.1:5871\ntls = starttls\n"
	    "proxy-from = 127.0.0.1\n", "t.conf:31: listener \"lb\": proxy-from is given but "
	    "proxy-protocol is not 'yes'");
	expect_extra_error("[listen \"lb\"]\naddress = 127.0.0.1:5871\ntls = starttls\n"
	    "proxy-protocol = yes\nproxy-from = 192.0.2.1/24\n", "t.conf:32: bad proxy-from "
	    "'192.0.2.1/24': address bits beyond the prefix length are set");
	expect_extra_error("[listen \"lb\"]\naddress = 127.0.0.1:5871\ntls = starttls\n"
	    "proxy-protocol = yes\nproxy-from = lb.example.org\n", "t.conf:32: bad proxy-from");
	expect_extra_error("[listen \"lb\"]\naddress = 127.0.0.1:5871\ntls = starttls\n"
	    "proxy-protocol = on\n", "t.conf:31: bad value 'on' for 'proxy-protocol' "
	    "(expected yes or no)");
	expect_extra_error("[listen \"lb\"]\naddress = 127.0.0.1:5871\ntls = starttls\n"
	    "proxy-protocol = yes\nproxy-from = 127.0.0.1\nproxy-timeout = 61\n",
	    "t.conf:33: bad value '61' for 'proxy-timeout'");
	expect_extra_error("[relay \"x\"]\nhost = relay.lab.test\naddress = 127.0.0.1\n"
	    "tlsa = \"" PIN "\"\nxclient = 1\n", "t.conf:32: bad value '1' for 'xclient'");
}

/* Relay connection reuse: defaults, values, bounds. */
static void
test_relay_reuse_keys(void **state)
{
	char err[512];
	struct config *cfg;
	const struct config_relay *r;

	cfg = parse("[relay \"pf\"]\nhost = relay.lab.test\naddress = 127.0.0.1\ntlsa = \"" PIN
	    "\"\nconnections = 0\nidle-timeout = 2m\nspare-timeout = 0\nmax-transactions = 1\n",
	    NULL, 0, err,
	    sizeof(err));
	assert_non_null(cfg);
	r = &cfg->relays[0];
	assert_int_equal(r->connections, 20);
	assert_int_equal(r->idle_timeout, 30);
	assert_int_equal(r->spare_timeout, 2);
	assert_int_equal(r->max_transactions, 100);
	r = &cfg->relays[1];
	assert_int_equal(r->connections, 0);
	assert_int_equal(r->idle_timeout, 120);
	assert_int_equal(r->spare_timeout, 0);
	assert_int_equal(r->max_transactions, 1);
	config_free(&cfg);
	expect_extra_error("[relay \"x\"]\nhost = relay.lab.test\naddress = 127.0.0.1\n"
	    "tlsa = \"" PIN "\"\nidle-timeout = 0\n", "t.conf:32: bad value '0' for 'idle-timeout' "
	    "(expected seconds from 1 to 3600");
	expect_extra_error("[relay \"x\"]\nhost = relay.lab.test\naddress = 127.0.0.1\n"
	    "tlsa = \"" PIN "\"\nspare-timeout = 2h\n", "t.conf:32: bad value '2h' for "
	    "'spare-timeout' (expected seconds from 0 to 3600");
	expect_extra_error("[relay \"x\"]\nhost = relay.lab.test\naddress = 127.0.0.1\n"
	    "tlsa = \"" PIN "\"\nmax-transactions = 0\n", "t.conf:32: bad value '0' for "
	    "'max-transactions'");
	expect_extra_error("[relay \"x\"]\nhost = relay.lab.test\naddress = 127.0.0.1\n"
	    "tlsa = \"" PIN "\"\nconnections = many\n", "t.conf:32: bad value 'many' for "
	    "'connections'");
	expect_extra_error("[relay \"x\"]\nhost = relay.lab.test\naddress = 127.0.0.1\n"
	    "tlsa = \"" PIN "\"\nconnections = 1\nconnections = 2\n", "t.conf:33: duplicate key "
	    "'connections'");
}

/* [limits] rate defaults and [login "NAME"] overrides. */
static void
test_rates(void **state)
{
	char err[512];
	struct config *cfg;
	const struct config_rates *r;
	struct config_override ov;

	cfg = parse("", NULL, 0, err, sizeof(err));
	assert_non_null(cfg);
	r = config_login_rates(cfg, "alice@lab.test");
	assert_int_equal(r->messages_per_hour + r->recipients_per_hour + r->auth_per_minute +
	    r->sessions_per_login, 0);
	config_free(&cfg);

	assert_int_equal(config_override_parse("login.bob@lab.test.auth-per-minute=9", &ov, err,
	    sizeof(err)), 0);
	cfg = parse("[limits]\nmessages-per-hour = 100\nrecipients-per-hour = 1000\n"
	    "auth-per-minute = 10\nsessions-per-login = 5\n"
	    "[login \"alice@lab.test\"]\nmessages-per-hour = 2\nsessions-per-login = 0\n",
	    &ov, 1, err, sizeof(err));
	config_override_clear(&ov);
	assert_non_null(cfg);
	r = config_login_rates(cfg, "alice@lab.test");
	assert_int_equal(r->messages_per_hour, 2);
	assert_int_equal(r->recipients_per_hour, 1000);     /* from [limits] */
	assert_int_equal(r->auth_per_minute, 10);
	assert_int_equal(r->sessions_per_login, 0);
	r = config_login_rates(cfg, "bob@lab.test");
	assert_int_equal(r->auth_per_minute, 9);
	assert_int_equal(r->messages_per_hour, 100);
	r = config_login_rates(cfg, "carol@lab.test");
	assert_int_equal(r->messages_per_hour, 100);
	assert_ptr_equal(r, config_login_rates(cfg, NULL));
	config_free(&cfg);

	expect_extra_error("[limits]\nmessages-per-hour = lots\n", "t.conf:29: bad value 'lots' "
	    "for 'messages-per-hour' (expected a number from 0 to 1000000)");
	expect_extra_error("[login \"a\"]\nrecipients = 3\n", "t.conf:29: unknown key "
	    "'recipients' in section [login]");
	expect_extra_error("[login]\nmessages-per-hour = 3\n", "t.conf:28: section [login] needs "
	    "a name");
	expect_extra_error("[login \"a\"]\nauth-per-minute = 1000001\n", "t.conf:29: bad value");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_limits_and_units),
		cmocka_unit_test(test_message_size_max),
		cmocka_unit_test(test_errors_name_file_line),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_quoting),
	cmocka_unit_test(test_audit_section),
	cmocka_unit_test(test_digest),
		cmocka_unit_test(test_overrides),
		cmocka_unit_test(test_senders),
		cmocka_unit_test(test_operations_keys),
		cmocka_unit_test(test_workers_and_reload),
		cmocka_unit_test(test_auth_keys),
		cmocka_unit_test(test_key_workers),
		cmocka_unit_test(test_contrib_example),
		cmocka_unit_test(test_edge),
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_relay_reuse_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
