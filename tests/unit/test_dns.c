/* Unit tests for the pure DNS packet parser of dns.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dns.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <event2/event.h>

struct pkt {
	uint8_t b[1024];
	size_t n;
};

static void
put(struct pkt *p, const void *d, size_t n)
{
	assert_true(p->n + n <= sizeof(p->b));
	memcpy(p->b + p->n, d, n);
	p->n += n;
}

static void
put16(struct pkt *p, unsigned v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	put(p, b, 2);
}

static void
put32(struct pkt *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p, v & 0xffff);
}

static void
putname(struct pkt *p, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);
		uint8_t lb = (uint8_t)l;
		put(p, &lb, 1);
		put(p, name, l);
		name += l;
		if (*name == '.')
			name++;
	}
	put(p, "", 1);
}

static void
header(struct pkt *p, int rcode, unsigned qd, unsigned an)
{
	p->n = 0;
	put16(p, 0x1234);
	put16(p, 0x8180 | (unsigned)rcode);
	put16(p, qd);
	put16(p, an);
	put16(p, 0);
	put16(p, 0);
}

static void
rr(struct pkt *p, const char *owner, unsigned type, uint32_t ttl, const void *rd, size_t rdlen)
{
	putname(p, owner);
	put16(p, type);
	put16(p, 1);
	put32(p, ttl);
	put16(p, (unsigned)rdlen);
	put(p, rd, rdlen);
}

static void
test_a_records(void **state)
{
	struct pkt p;
	struct dns_result r;
	const uint8_t a1[4] = { 127, 0, 0, 10 }, a2[4] = { 127, 0, 0, 11 };

	header(&p, 0, 1, 2);
	putname(&p, "relay.lab.test");
	put16(&p, DNS_T_A);
	put16(&p, 1);
	rr(&p, "relay.lab.test", DNS_T_A, 300, a1, 4);
	rr(&p, "RELAY.lab.test", DNS_T_A, 200, a2, 4);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dns_parse_packet(p.b, p.n, "relay.lab.test", DNS_T_A, &r), 0);
	assert_int_equal(r.nrr, 2);
	assert_memory_equal(r.rr[1].data, a2, 4);
	assert_int_equal(r.rr[1].ttl, 200);
	assert_int_equal(r.cname_followed, 0);
	assert_int_equal(r.nxdomain, 0);
	dns_result_clear(&r);
}

static void
test_cname_chain_compressed(void **state)
{
	struct pkt p;
	struct dns_result r;
	uint8_t cname[64];
	size_t qoff;
	const uint8_t a[4] = { 127, 0, 0, 12 };

	header(&p, 0, 1, 3);
	qoff = p.n;
	putname(&p, "alias.lab.test");
	put16(&p, DNS_T_A);
	put16(&p, 1);
	/* alias -> mid (uncompressed), mid -> target (compressed owner) */
	rr(&p, "alias.lab.test", DNS_T_CNAME, 60, "\x03mid\x03lab\x04test", 14);
	{
		/* owner "mid.lab.test" as a pointer into the previous rdata */
		size_t mid_off = p.n - 14;
		uint8_t ptr[2] = { (uint8_t)(0xc0 | (mid_off >> 8)), (uint8_t)mid_off };
		put(&p, ptr, 2);
		put16(&p, DNS_T_CNAME);
		put16(&p, 1);
		put32(&p, 60);
		memcpy(cname, "\x06target\xc0", 8);
		cname[8] = (uint8_t)(qoff + 6);   /* -> "lab.test" in the question */
		put16(&p, 9);
		put(&p, cname, 9);
	}
	rr(&p, "target.lab.test", DNS_T_A, 60, a, 4);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dns_parse_packet(p.b, p.n, "alias.lab.test", DNS_T_A, &r), 0);
	assert_int_equal(r.cname_followed, 1);
	assert_string_equal(r.name, "target.lab.test");
	assert_int_equal(r.nrr, 1);
	dns_result_clear(&r);
}

static void
test_nxdomain_and_servfail(void **state)
{
	struct pkt p;
	struct dns_result r;

	header(&p, 3, 1, 0);
	putname(&p, "nope.lab.test");
	put16(&p, DNS_T_TLSA);
	put16(&p, 1);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dns_parse_packet(p.b, p.n, "nope.lab.test", DNS_T_TLSA, &r), 0);
	assert_int_equal(r.nxdomain, 1);
	assert_int_equal(r.nrr, 0);
	header(&p, 2, 0, 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dns_parse_packet(p.b, p.n, "x", DNS_T_A, &r), -1);
}

static void
test_malformed(void **state)
{
	struct pkt p;
	struct dns_result r;
	const uint8_t loop[] = { 0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1 };
	const uint8_t a[4] = { 1, 2, 3, 4 };
	size_t cut;

	memset(&r, 0, sizeof(r));
	assert_int_equal(dns_parse_packet(loop, sizeof(loop), "x", DNS_T_A, &r), -1);
	assert_int_equal(dns_parse_packet(loop, 5, "x", DNS_T_A, &r), -1);
	/* every truncation of a good packet fails cleanly or parses */
	header(&p, 0, 1, 1);
	putname(&p, "a.lab.test");
	put16(&p, DNS_T_A);
	put16(&p, 1);
	rr(&p, "a.lab.test", DNS_T_A, 1, a, 4);
	for (cut = 0; cut < p.n; cut++) {
		memset(&r, 0, sizeof(r));
		assert_int_equal(dns_parse_packet(p.b, cut, "a.lab.test", DNS_T_A, &r), -1);
	}
	/* a label longer than 63 (0x40 flag bits) is refused */
	header(&p, 0, 1, 0);
	put(&p, "\x41", 1);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dns_parse_packet(p.b, p.n, "x", DNS_T_A, &r), -1);
}

static void
test_cname_loop(void **state)
{
	struct pkt p;
	struct dns_result r;

	header(&p, 0, 0, 2);
	rr(&p, "a.t", DNS_T_CNAME, 1, "\x01" "b\x01t", 5);
	rr(&p, "b.t", DNS_T_CNAME, 1, "\x01" "a\x01t", 5);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dns_parse_packet(p.b, p.n, "a.t", DNS_T_A, &r), -1);
}

static void
test_status_names(void **state)
{
	assert_string_equal(dns_status_name(DNS_SECURE), "secure");
	assert_string_equal(dns_status_name(DNS_BOGUS), "bogus");
	assert_string_equal(dns_status_name(DNS_TEMPFAIL), "tempfail");
	assert_string_equal(dns_status_name(DNS_INSECURE), "insecure");
}

/* unbound.conf settings that would make libunbound open files after the
 * sandbox are refused at start with the reason; harmless ones load. */
static void
check_conf(const char *text, const char *want)
{
	char path[] = "/tmp/test_dns_conf.XXXXXX", err[512];
	struct event_base *base = event_base_new();
	struct dns_ctx *c;
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	err[0] = '\0';
	c = dns_ctx_new(base, NULL, path, 5, err, sizeof(err));
	unlink(path);
	if (want == NULL) {
		if (c == NULL)
			fail_msg("refused: %s", err);
	} else {
		assert_null(c);
		if (strstr(err, want) == NULL || strstr(err, "/tmp/test_dns_conf.") == NULL)
			fail_msg("error \"%s\" does not name \"%s\" and the file", err, want);
	}
	dns_ctx_free(&c);
	event_base_free(base);
}

static void
test_unsafe_unbound_options(void **state)
{
	check_conf("server:\n    do-not-query-localhost: no\n    use-syslog: no\n", NULL);
	check_conf("server:\n    auto-trust-anchor-file: \"/var/lib/unbound/root.key\"\n",
	    "auto-trust-anchor-file");
	check_conf("server:\n    logfile: \"/tmp/unbound.log\"\n", "logfile");
	check_conf("server:\n    use-syslog: yes\n", "use-syslog");
	check_conf("server:\n    root-hints: \"/usr/share/dns/root.hints\"\n", "root-hints");
	check_conf("server:\n    no-such-option: 1\n", "unbound-config");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_records),
		cmocka_unit_test(test_cname_chain_compressed),
		cmocka_unit_test(test_nxdomain_and_servfail),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_cname_loop),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_unsafe_unbound_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
