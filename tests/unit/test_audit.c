/* Unit tests for audit.c: the profile parser (the built-in profiles, every
 * error with its line, truncation at every byte, hostile bytes), check id
 * patterns, levels, and reports (required/advisory, refs, JSON escaping,
 * the start-up failure lines and their truncation). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "policy.h"

static struct audit_profile *
parse(const char *text, char *err, size_t errlen)
{
	err[0] = '\0';
	return audit_profile_parse("t", text, strlen(text), err, errlen);
}

static void
expect_error(const char *text, const char *want)
{
	struct audit_profile *p;
	char err[512];

	p = parse(text, err, sizeof(err));
	if (p != NULL || strstr(err, want) == NULL)
		fail_msg("profile %s\nexpected error containing \"%s\", got \"%s\"", text, want,
		    p ? "(parsed)" : err);
	audit_profile_free(&p);
}

static void
test_builtin_profiles(void **state)
{
	struct audit_profile *b, *s;
	char err[512];
	size_t i;
	int rsa = 0;

	(void)state;
	b = audit_profile_load("baseline", err, sizeof(err));
	assert_non_null(b);
	assert_string_equal(b->name, "baseline");
	assert_int_equal(b->dkim_dns_missing_fail, 0);
	assert_int_equal(b->dns_secure, 0);
	assert_int_equal(b->tls_early_data, 0);
	assert_int_equal(b->cert_expiry_warn_days, 30);
	assert_int_equal(audit_profile_level(b, "tls.key.match"), AUDIT_LEVEL_REQUIRE);
	assert_int_equal(audit_profile_level(b, "srv.submission.lab.test"), AUDIT_LEVEL_ADVISE);
	assert_int_equal(audit_profile_level(b, "relay.sink.dane"), AUDIT_LEVEL_ADVISE);
	assert_int_equal(audit_profile_level(b, "dane.own.submissions"), AUDIT_LEVEL_REQUIRE);
	assert_int_equal(audit_profile_level(b, "dkim.lab.test.ed.dns"), AUDIT_LEVEL_REQUIRE);
	assert_int_equal(b->dkim_require.n, 0);

	s = audit_profile_load("bsi-tr-03108", err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(s->dns_secure, 1);
	assert_int_equal(s->dkim_dns_missing_fail, 1);
	assert_int_equal(s->dkim_require.n, 2);
	assert_int_equal(audit_profile_level(s, "srv.submission.lab.test"), AUDIT_LEVEL_REQUIRE);
	assert_int_equal(audit_profile_level(s, "tls.cert.name"), AUDIT_LEVEL_REQUIRE);
	for (i = 0; i < s->ntls_keys; i++)
		if (strcmp(s->tls_keys[i].type, "rsa") == 0) {
			assert_int_equal(s->tls_keys[i].min_bits, 3000);
			rsa = 1;
		}
	assert_true(rsa);
	for (i = 0; i < s->tls_ciphers.n; i++)
		assert_string_not_equal(s->tls_ciphers.v[i], "CHACHA20-POLY1305");
	for (i = 0; i < s->tls_versions.n; i++)
		assert_true(strcmp(s->tls_versions.v[i], "TLS1.2") == 0 ||
		    strcmp(s->tls_versions.v[i], "TLS1.3") == 0);
	audit_profile_free(&b);
	audit_profile_free(&s);
	assert_null(b);
	audit_profile_free(&b);         /* NULL is a no-op */
}

static void
test_unknown_profiles(void **state)
{
	static const char *const names[] = { "nope", "dkim-headers", "../baseline", "",
		"baseline ", "BASELINE", "base*", NULL };
	char err[512];
	size_t i;

	(void)state;
	for (i = 0; names[i] != NULL; i++) {
		struct audit_profile *p = audit_profile_load(names[i], err, sizeof(err));

		if (p != NULL)
			fail_msg("profile \"%s\" loaded", names[i]);
		assert_non_null(strstr(err, "no audit profile"));
	}
}

static void
test_parse_good(void **state)
{
	struct audit_profile *p;
	char err[512];

	(void)state;
	p = parse("# comment\r\n\n   \t\nprofile t   # trailing comment\r\n"
	    "description  two   words\n"
	    "require *\nadvise srv.* relay.*.dane\nrequire srv.special\n"
	    "ref dkim.*.dns X-1 X-2\nref dkim.* X-3\n"
	    "tls-versions TLS1.3\ntls-ciphers AES-256-GCM\ntls-kx ECDHE-RSA\n"
	    "tls-groups X25519 SECP256R1\ntls-early-data allowed\n"
	    "tls-key rsa 4096\ntls-key ec\ncert-expiry-warn 0\n"
	    "dkim-key ed25519\ndkim-require rsa ed25519\ndkim-dns-missing warn\n"
	    "dns-secure required", err, sizeof(err));     /* no final newline */
	if (p == NULL)
		fail_msg("%s", err);
	assert_string_equal(p->description, "two words");
	assert_int_equal(p->nrules, 4);
	assert_int_equal(audit_profile_level(p, "srv.x"), AUDIT_LEVEL_ADVISE);
	assert_int_equal(audit_profile_level(p, "srv.special"), AUDIT_LEVEL_REQUIRE);
	assert_int_equal(audit_profile_level(p, "relay.a.dane"), AUDIT_LEVEL_ADVISE);
	assert_int_equal(audit_profile_level(p, "relay.a.danex"), AUDIT_LEVEL_REQUIRE);
	assert_int_equal(p->tls_early_data, 1);
	assert_int_equal(p->ntls_keys, 2);
	assert_int_equal(p->tls_keys[0].min_bits, 4096);
	assert_int_equal(p->tls_keys[1].min_bits, 0);
	assert_int_equal(p->cert_expiry_warn_days, 0);
	assert_int_equal(p->dkim_dns_missing_fail, 0);
	assert_int_equal(p->dns_secure, 1);
	assert_int_equal(p->tls_groups.n, 2);
	assert_int_equal(p->nrefrules, 2);
	audit_profile_free(&p);
	/* defaults */
	p = parse("profile t\n", err, sizeof(err));
	assert_non_null(p);
	assert_int_equal(p->cert_expiry_warn_days, 30);
	assert_int_equal(p->dkim_dns_missing_fail, 1);
	assert_int_equal(p->tls_early_data, 0);
	assert_int_equal(audit_profile_level(p, "anything"), AUDIT_LEVEL_REQUIRE);
	audit_profile_free(&p);
}

static void
test_parse_errors(void **state)
{
	char big[2100];

	(void)state;
	expect_error("", "t:1: missing 'profile t'");
	expect_error("# only\n", "missing 'profile t'");
	expect_error("profile other\n", "t:1: expected 'profile t'");
	expect_error("profile t t\n", "expected 'profile t'");
	expect_error("profile t\nprofile t\n", "t:2: 'profile' given twice");
	expect_error("profile t\nfrobnicate 1\n", "t:2: unknown keyword 'frobnicate'");
	expect_error("profile t\ndescription\n", "'description' needs text");
	expect_error("profile t\nrequire\n", "'require' needs check id patterns");
	expect_error("profile t\nadvise tls.$x\n", "bad check id pattern");
	expect_error("profile t\nref tls.*\n", "expected 'ref CHECK-PATTERN REF...'");
	expect_error("profile t\nref tls.* A\"B\n", "bad reference");
	expect_error("profile t\ntls-versions\n", "'tls-versions' needs 1..");
	expect_error("profile t\ntls-versions TLS1.2 tls1.2\n", "'tls1.2' is listed twice");
	expect_error("profile t\ntls-ciphers AES*\n", "bad name 'AES*'");
	expect_error("profile t\ntls-kx A\ntls-kx B\n", "t:3: 'tls-kx' given twice");
	expect_error("profile t\ntls-early-data maybe\n", "takes 'allowed' or 'forbidden'");
	expect_error("profile t\ndkim-dns-missing\n", "takes 'fail' or 'warn'");
	expect_error("profile t\ndns-secure yes\n", "takes 'required' or 'optional'");
	expect_error("profile t\ncert-expiry-warn 3651\n", "0..3650");
	expect_error("profile t\ncert-expiry-warn -1\n", "0..3650");
	expect_error("profile t\ncert-expiry-warn 99999999999999999999999\n", "0..3650");
	expect_error("profile t\ntls-key dsa 1024\n", "unknown key type 'dsa'");
	expect_error("profile t\ntls-key rsa 0\n", "bad bit count '0'");
	expect_error("profile t\ntls-key rsa 16385\n", "bad bit count");
	expect_error("profile t\ntls-key rsa 2k\n", "bad bit count");
	expect_error("profile t\ntls-key\n", "needs TYPE [MINBITS]");
	expect_error("profile t\ntls-key rsa 1 2\n", "needs TYPE [MINBITS]");
	expect_error("profile t\ntls-key rsa\ntls-key rsa 3000\n", "t:3: key type 'rsa' given twice");
	expect_error("profile t\ndkim-key ec 256\n", "unknown key type 'ec'");
	expect_error("profile t\ndkim-require ec\n", "takes rsa and/or ed25519");
	expect_error("profile t\ndescription caf\xc3\xa9\n", "non-ASCII");
	expect_error("profile t\ndescription a\x01z\n", "control");
	expect_error("profile t\ndescription a\x7fz\n", "control");
	/* a NUL inside the text is not the end of it */
	{
		static const char nul[] = "profile t\ndescription a\0b\n";
		char err[512];
		struct audit_profile *p = audit_profile_parse("t", nul, sizeof(nul) - 1, err,
		    sizeof(err));

		assert_null(p);
		assert_non_null(strstr(err, "t:2: control"));
	}
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "profile t\ndescription ", 22);
	expect_error(big, "t:2: line longer than");
}

static void
test_parse_limits(void **state)
{
	char text[20000];
	size_t i, o;

	(void)state;
	/* too many list entries */
	o = (size_t)snprintf(text, sizeof(text), "profile t\ntls-groups");
	for (i = 0; i < 70; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, " G%zu", i);
	snprintf(text + o, sizeof(text) - o, "\n");
	expect_error(text, "t:2: ");
	/* too many rules */
	o = (size_t)snprintf(text, sizeof(text), "profile t\n");
	for (i = 0; i < 300; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, "advise r%zu\n", i);
	expect_error(text, "too many rules");
	/* too many key types (only 4 known tls key types: duplicates caught first) */
	expect_error("profile t\ntls-key rsa\ntls-key ec\ntls-key ed25519\ntls-key ed448\n"
	    "tls-key rsa 1\n", "given twice");
}

/* Every prefix of the built-in profiles either parses or fails with a
 * message naming a line; nothing crashes or leaks (ASan). */
static void
test_truncation_everywhere(void **state)
{
	static const char *const names[] = { "baseline", "bsi-tr-03108" };
	size_t n, len, cut;
	char err[512];

	(void)state;
	for (n = 0; n < 2; n++) {
		const char *text = policy_get(names[n], &len);

		assert_non_null(text);
		for (cut = 0; cut <= len; cut++) {
			struct audit_profile *p = audit_profile_parse(names[n], text, cut, err,
			    sizeof(err));

			if (p == NULL)
				assert_non_null(strstr(err, "policy/"));
			audit_profile_free(&p);
		}
	}
}

static void
test_hostile_bytes(void **state)
{
	unsigned char buf[256];
	char err[512];
	unsigned int seed = 12345;
	int round;
	size_t i;

	(void)state;
	for (round = 0; round < 3000; round++) {
		struct audit_profile *p;
		size_t len = (size_t)(round % (int)sizeof(buf));

		for (i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			/* mostly printable, some newlines, '#', '*' and any byte */
			switch ((seed >> 16) % 8) {
			case 0: buf[i] = '\n'; break;
			case 1: buf[i] = ' '; break;
			case 2: buf[i] = (unsigned char)(seed >> 8); break;
			default: buf[i] = (unsigned char)('a' + (seed >> 20) % 26); break;
			}
		}
		if (len > 10 && round % 2 == 0)
			memcpy(buf, "profile t\n", 10);
		p = audit_profile_parse("t", (const char *)buf, len, err, sizeof(err));
		audit_profile_free(&p);
	}
}

static void
test_glob(void **state)
{
	static const struct { const char *g, *id; int want; } t[] = {
		{ "*", "", 1 }, { "*", "a.b.c", 1 }, { "", "", 1 }, { "", "a", 0 },
		{ "tls.*", "tls.key.match", 1 }, { "tls.*", "tls", 0 }, { "tls.*", "tlsx.y", 0 },
		{ "dkim.*.dns", "dkim.lab.test.ed.dns", 1 }, { "dkim.*.dns", "dkim.lab.test.ed.dnsx", 0 },
		{ "dkim.*.dns", "dkim..dns", 1 }, { "dkim.*.dns", "dkim.dns", 0 },
		{ "*.dane", "relay.a.dane", 1 }, { "a*b*c", "aXbYc", 1 }, { "a*b*c", "aXbY", 0 },
		{ "a**", "a", 1 }, { "*a", "bbbba", 1 }, { "*a", "bbbbab", 0 },
		{ "srv.submission.*", "srv.submissions.x", 0 }, { "srv.submission.*", "srv.submission.x", 1 },
		{ "x", "X", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (audit_glob_match(t[i].g, t[i].id) != t[i].want)
			fail_msg("glob \"%s\" id \"%s\": expected %d", t[i].g, t[i].id, t[i].want);
}

static void
test_report(void **state)
{
	static const char *const refs[] = { "RFC1", "RFC2", "RFC1", NULL };
	struct audit_profile *p;
	struct audit_report rep;
	char err[512], out[4096], *buf = NULL;
	size_t blen = 0, n;
	FILE *f;

	(void)state;
	p = parse("profile t\nadvise soft.*\nref hard.* TR-1 RFC2\n", err, sizeof(err));
	assert_non_null(p);
	memset(&rep, 0, sizeof(rep));
	rep.profile = strdup("t");
	audit_report_add(&rep, p, "hard.one", AUDIT_FAIL, "bad \"thing\"\n\ttab\x01\xc3\xa9\\",
	    "fix it", refs);
	audit_report_add(&rep, p, "soft.one", AUDIT_FAIL, "soft", "fix soft", NULL);
	audit_report_add(&rep, p, "hard.two", AUDIT_PASS, "fine", "ignored for passes", NULL);
	audit_report_add(&rep, p, "hard.three", AUDIT_SKIP, "n/a", NULL, NULL);
	audit_report_add(&rep, p, "plain.x", AUDIT_PASS, "ok", NULL, NULL);
	assert_int_equal(rep.nchecks, 5);
	assert_int_equal(rep.checks[0].required, 1);
	assert_int_equal(rep.checks[0].status, AUDIT_FAIL);
	assert_int_equal(rep.checks[0].nrefs, 3);       /* RFC1 RFC2 TR-1, deduplicated */
	assert_string_equal(rep.checks[0].refs[2], "TR-1");
	assert_int_equal(rep.checks[1].required, 0);
	assert_int_equal(rep.checks[1].status, AUDIT_WARN);   /* advisory failure */
	assert_string_equal(rep.checks[2].remedy, "");
	assert_string_equal(rep.checks[3].remedy, "");
	assert_int_equal(audit_report_failed(&rep), 1);

	f = open_memstream(&buf, &blen);
	audit_report_json(&rep, f);
	fclose(f);
	assert_non_null(strstr(buf, "{\"version\":1,\"profile\":\"t\",\"result\":\"fail\",\"checks\":["));
	assert_non_null(strstr(buf, "\"summary\":\"bad \\\"thing\\\"\\n\\ttab\\u0001\\u00c3\\u00a9\\\\\""));
	assert_non_null(strstr(buf, "\"id\":\"soft.one\",\"status\":\"warn\",\"required\":false"));
	assert_non_null(strstr(buf, "\"refs\":[\"RFC1\",\"RFC2\",\"TR-1\"]"));
	assert_non_null(strstr(buf, "{\"id\":\"plain.x\",\"status\":\"pass\",\"required\":true,"
	    "\"summary\":\"ok\",\"remedy\":\"\",\"refs\":[]}]}\n"));
	assert_non_null(strstr(buf, "\"id\":\"hard.two\",\"status\":\"pass\",\"required\":true,"
	    "\"summary\":\"fine\",\"remedy\":\"\",\"refs\":[\"TR-1\",\"RFC2\"]}"));
	for (n = 0; n < blen; n++)
		assert_true(buf[n] == '\n' || (buf[n] >= 0x20 && buf[n] < 0x7f));
	free(buf);

	n = audit_report_failures(&rep, out, sizeof(out));
	assert_int_equal(n, 1);
	assert_non_null(strstr(out, "hard.one: bad \"thing\""));
	assert_non_null(strstr(out, " Fix: fix it"));
	assert_null(strstr(out, "soft"));
	/* truncation keeps the string terminated and marks it */
	n = audit_report_failures(&rep, out, 12);
	assert_int_equal(n, 1);
	assert_int_equal(strlen(out), 11);
	assert_string_equal(out + 8, "...");
	out[0] = 'x';
	assert_int_equal(audit_report_failures(&rep, out, 0), 0);
	assert_int_equal(out[0], 'x');

	buf = NULL;
	f = open_memstream(&buf, &blen);
	audit_report_text(&rep, "conf", f);
	fclose(f);
	assert_non_null(strstr(buf, "FAIL  hard.one"));
	assert_non_null(strstr(buf, "fix: fix it"));
	assert_non_null(strstr(buf, "(not required by this profile)"));
	assert_non_null(strstr(buf, "result: FAIL"));
	assert_null(strchr(buf, '\x01'));
	free(buf);

	audit_report_clear(&rep);
	assert_int_equal(rep.nchecks, 0);
	/* a report without profile (unreadable configuration) */
	audit_report_add(&rep, NULL, "config.parse", AUDIT_FAIL, "x:1: bad", "fix", NULL);
	buf = NULL;
	f = open_memstream(&buf, &blen);
	audit_report_json(&rep, f);
	fclose(f);
	assert_non_null(strstr(buf, "\"profile\":null,\"result\":\"fail\""));
	free(buf);
	audit_report_clear(&rep);
	audit_profile_free(&p);
}

static void
test_report_pass(void **state)
{
	struct audit_report rep;
	char out[64];

	(void)state;
	memset(&rep, 0, sizeof(rep));
	audit_report_add(&rep, NULL, "a", AUDIT_PASS, "ok", NULL, NULL);
	audit_report_add(&rep, NULL, "b", AUDIT_WARN, "meh", "do", NULL);
	audit_report_add(&rep, NULL, "c", AUDIT_SKIP, "n/a", NULL, NULL);
	assert_int_equal(audit_report_failed(&rep), 0);
	assert_int_equal(audit_report_failures(&rep, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_string_equal(audit_status_name(AUDIT_SKIP), "skip");
	assert_string_equal(audit_status_name((enum audit_status)9), "?");
	audit_report_clear(&rep);
}

/* The start-up audit's report to the daemon (audit_baseline_parse). */
static void
test_baseline_parse(void **state)
{
	static const char good[] =
	    "C\t1\t1\tdane.own.submissions\tpass\n"
	    "C\t0\t0\tsrv.submission.alias.lab.test\twarn\n"
	    "K\t1\tlab.test\ted\tv=DKIM1; k=ed25519; p=A\\tB\\\\C\\n\n"
	    "F\tdane.own.x: no record Fix: publish\n"
	    "F\tsecond\n";
	static const char *const bad[] = {
		"C\t2\t1\tid\tpass\n",          /* flag not 0/1 */
		"C\t1\t1\tid\n",                 /* field missing */
		"C\t1\t1\t\tpass\n",            /* empty id */
		"C\t1\t1\tid\tmaybe\n",         /* not a status */
		"C\t1\t1\tid\tpass\textra\n",  /* field too many */
		"Q\tx\n",                         /* unknown record */
		"C\t1\t1\tid",                   /* no end of line */
		"K\tx\td\ts\tt\n",             /* type not a number */
		"K\t99\td\ts\tt\n",            /* type out of range */
		"F\tbad \\q escape\n",
		"F\tends in \\\n",
		"\n",
		"C\t1\t1\ta\tb\tc\td\te\n",
	};
	struct audit_baseline bl;
	char fail[256];
	size_t i;

	assert_int_equal(audit_baseline_parse(good, strlen(good), &bl, fail, sizeof(fail)), 0);
	assert_int_equal(bl.nchecks, 2);
	assert_string_equal(bl.checks[0].id, "dane.own.submissions");
	assert_true(bl.checks[0].ok && bl.checks[0].required);
	assert_true(!bl.checks[1].ok && !bl.checks[1].required);
	assert_int_equal(bl.checks[0].status, AUDIT_PASS);
	assert_int_equal(bl.checks[1].status, AUDIT_WARN);
	assert_int_equal(bl.nkeys, 1);
	assert_int_equal(bl.keys[0].type, 1);
	assert_string_equal(bl.keys[0].domain, "lab.test");
	assert_string_equal(bl.keys[0].selector, "ed");
	assert_string_equal(bl.keys[0].txt, "v=DKIM1; k=ed25519; p=A\tB\\C\n");
	assert_string_equal(fail, "dane.own.x: no record Fix: publish\nsecond");
	audit_baseline_clear(&bl);
	audit_baseline_clear(&bl);              /* twice: harmless */
	assert_int_equal(audit_baseline_parse("", 0, &bl, fail, sizeof(fail)), 0);
	assert_int_equal(bl.nchecks + bl.nkeys, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (audit_baseline_parse(bad[i], strlen(bad[i]), &bl, fail, sizeof(fail)) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(bl.nchecks + bl.nkeys, 0);
	}
	assert_int_equal(audit_baseline_parse("C\t1\t1\ta\0b\tpass\n", 15, &bl, fail, sizeof(fail)),
	    -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_profiles),
		cmocka_unit_test(test_baseline_parse),
		cmocka_unit_test(test_unknown_profiles),
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_truncation_everywhere),
		cmocka_unit_test(test_hostile_bytes),
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_report),
		cmocka_unit_test(test_report_pass),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
