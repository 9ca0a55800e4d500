/* test_auditrec.c — the bodies front and the parent send to the recorder:
 * DKIM tags, transaction records (schema, size budget). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "auditlog.h"
#include "auditrec.h"
#include "json.h"
#include "relay.h"

static void
dkim_seen(void *arg, const char *d, const char *s, const char *a, const char *bh)
{
	char *out = arg;

	snprintf(out + strlen(out), 400 - strlen(out), "[%s|%s|%s|%s]", d, s, a, bh);
}

static void
test_dkim_tags(void **state)
{
	char out[400] = "";

	auditrec_dkim_tags("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
	    "\td=lab.test; s=ed; t=1; h=From:To;\r\n\tbh=abc\r\n\tdef=; b=XYZ\r\n"
	    "dkim-signature: v=1; a=rsa-sha256; d=lab.test; s=rsa;\r\n bh=QQ==; b=zz\r\n", dkim_seen,
	    out);
	assert_string_equal(out, "[lab.test|ed|ed25519-sha256|abcdef=][lab.test|rsa|rsa-sha256|QQ==]");
}

/* A txn body as front builds it validates against the schema. */
static void
test_txn_body(void **state)
{
	struct auditrec_txn *tx;
	struct relay_facts rf;
	struct json *b = NULL;
	char err[300], *body, addr[64];
	size_t len, i;

	tx = auditrec_txn_new("0011223344556677", "alice@lab.test", "127.0.0.1", "TLS1.3",
	    "TLS_AES_256_GCM_SHA384", "alice@lab.test");
	auditrec_txn_rcpt(tx, "rcpt@remote.test", 250, "2.1.5", "OK");
	auditrec_txn_rcpt(tx, "nobody@remote.test", 550, "5.1.1", "No such user");
	auditrec_txn_message(tx, "<id@lab.test>", "DKIM-Signature: v=1; a=ed25519-sha256; "
	    "d=lab.test; s=ed; bh=abc=; b=x\r\n");
	memset(&rf, 0, sizeof(rf));
	rf.name = "sink";
	snprintf(rf.address, sizeof(rf.address), "127.0.0.1:2525");
	snprintf(rf.tls_version, sizeof(rf.tls_version), "TLS1.3");
	snprintf(rf.tls_cipher, sizeof(rf.tls_cipher), "TLS_AES_128_GCM_SHA256");
	rf.dane = "ok-ee";
	snprintf(rf.tlsa, sizeof(rf.tlsa), "3 1 1 00");
	rf.dnssec = "pinned";
	rf.octets = 1234;
	rf.have_sha256 = 1;
	auditrec_txn_final(tx, 250, "2.0.0", "Queued", 0, &rf);
	body = auditrec_txn_body(tx, &len);
	assert_int_equal(json_parse(body, len, &b, err, sizeof(err)), 0);
	if (alog_body_check(ALOG_T_TXN, b, 1, err, sizeof(err)) != 0)
		fail_msg("%s: %s", body, err);
	assert_int_equal(json_get(b, "rcpts")->n, 2);
	assert_int_equal(json_get(b, "dkim")->n, 1);
	json_free(&b);
	free(body);
	/* so many recipients that they do not fit: counted */
	for (i = 0; i < 2000; i++) {
		snprintf(addr, sizeof(addr), "recipient-number-%zu@a-long-domain.example", i);
		auditrec_txn_rcpt(tx, addr, 250, "2.1.5", "Recipient OK, a long text here");
	}
	body = auditrec_txn_body(tx, &len);
	assert_true(len < ALOG_BODY_MAX);
	assert_int_equal(json_parse(body, len, &b, err, sizeof(err)), 0);
	assert_int_equal(alog_body_check(ALOG_T_TXN, b, 1, err, sizeof(err)), 0);
	assert_non_null(json_get(b, "rcpts_omitted"));
	json_free(&b);
	free(body);
	auditrec_txn_free(&tx);
	assert_null(tx);
	auditrec_txn_free(&tx);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_dkim_tags),
	cmocka_unit_test(test_txn_body),
};

int
main(void)
{
	return cmocka_run_group_tests(tests, NULL, NULL);
}
