"""
Client side of subproxy: TLS on both listeners, STARTTLS rules, EHLO, AUTH,
MAIL/RCPT policy and syntax replies, and the happy paths (smtplib, swaks,
raw DATA and BDAT) checked byte for byte at the relay sink.
"""

import base64
import email.utils
import re

import pytest

from helpers import (ALICE, ALICE_PW, BOB, BOB_PW, CLIENT_NAME, RCPT, RELAY_NAME, SERVER_NAME,
                     RawClient, check_relayed, dot_stuff, make_message, raw_starttls_client,
                     smtp_auth_plain, smtp_implicit, smtp_starttls, swaks)

# also run against the ASan/UBSan daemon in make check (doc/testing.md):
# the submission paths (implicit TLS, STARTTLS, DATA, BDAT) and refusals
pytestmark = pytest.mark.sanitized

MESSAGE_SIZE = 3 * 1024 * 1024
RECIPIENTS = 5
LIMITS = {"message-size": MESSAGE_SIZE, "recipients": RECIPIENTS}


class Env:
    def __init__(self, lab, sink, sp):
        self.lab, self.sink, self.sp, self.certs = lab, sink, sp, lab.certs

    def implicit(self, **kw):
        return RawClient(self.sp.implicit_port, self.certs.ca, implicit=True, **kw)

    def plain(self, **kw):
        return raw_starttls_client(self.sp.starttls_port, self.certs.ca, **kw)

    def session(self, user=ALICE, password=ALICE_PW, implicit=True):
        """Logged-in raw client."""
        c = self.implicit() if implicit else self.plain()
        c.greeting.check(220)
        return c.login(user, password)

    def wait_probe(self):
        """Wait until the daemon's start-up EHLO probe of the relay is done
        (it decides whether DSN is offered)."""
        self.sp.wait_relay_probe()


@pytest.fixture(scope="module")
def env(module_lab):
    s = module_lab.sink()
    sp = module_lab.subproxy(s, limits=LIMITS)
    sp.wait_relay_probe()   # let the start-up probe finish first
    return Env(module_lab, s, sp)


@pytest.fixture(autouse=True)
def _clean_sink(env):
    env.sink.reset()


def relay_transactions(sink):
    """Transaction commands the relay received (MAIL, RCPT, DATA, BDAT)."""
    return [x for x in sink.commands()
            if x.split(" ")[0].upper() in ("MAIL", "RCPT", "DATA", "BDAT")]


def only_message(sink):
    msgs = sink.messages()
    assert len(msgs) == 1, "expected one message at the relay, got %d" % len(msgs)
    return msgs[0]


# ---- greeting, STARTTLS, EHLO ----

def test_greeting_implicit_tls(env):
    c = env.implicit()
    c.greeting.check(220)
    assert c.greeting.lines[0].startswith(SERVER_NAME + " ESMTP")
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    c.cmd("QUIT", 221, "2.0.0")
    c.expect_closed()


def test_greeting_and_ehlo_before_tls(env):
    c = env.plain()
    c.greeting.check(220)
    assert c.greeting.lines[0].startswith(SERVER_NAME + " ESMTP")
    r = c.ehlo()
    assert "STARTTLS" in r.keywords
    assert "AUTH" not in r.keywords, "AUTH offered before TLS"
    c.cmd("NOOP", 250, "2.0.0")
    c.cmd("RSET", 250, "2.0.0")
    c.cmd("HELO " + CLIENT_NAME, 250)
    c.cmd("QUIT", 221, "2.0.0")
    c.expect_closed()


@pytest.mark.parametrize("line", [
    "MAIL FROM:<%s>" % ALICE,
    "RCPT TO:<%s>" % RCPT,
    "DATA",
    "AUTH PLAIN " + base64.b64encode(b"\0" + ALICE.encode() + b"\0" + ALICE_PW.encode()).decode(),
    "AUTH LOGIN",
    "VRFY alice",
    "EXPN staff",
    "HELP",
])
def test_commands_before_starttls_refused(env, line):
    c = env.plain()
    c.ehlo()
    r = c.cmd(line, 530, "5.7.0")
    assert r.lines == ["5.7.0 Must issue a STARTTLS command first"]
    c.cmd("NOOP", 250, "2.0.0")
    assert c.pending() == b""
    assert relay_transactions(env.sink) == []


def test_starttls_then_ehlo_extensions(env):
    c = env.plain()
    c.ehlo()
    c.starttls()
    r = c.ehlo()
    assert r.lines[0].startswith(SERVER_NAME)
    for kw in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8",
               "AUTH"):
        assert kw in r.keywords, "%s not offered after STARTTLS: %r" % (kw, r.raw)
    assert "STARTTLS" not in r.keywords
    assert r.ehlo_param("SIZE") == [str(MESSAGE_SIZE)]
    assert sorted(r.ehlo_param("AUTH")) == ["LOGIN", "PLAIN"]
    c.cmd("STARTTLS", 503)


def test_ehlo_implicit_tls_and_dsn_follows_relay(env):
    env.wait_probe()
    c = env.implicit()
    r = c.ehlo()
    for kw in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8",
               "DSN", "AUTH"):
        assert kw in r.keywords, "%s not offered: %r" % (kw, r.raw)
    assert "STARTTLS" not in r.keywords


def test_no_dsn_when_relay_lacks_it(lab):
    s = lab.sink(dsn=False)
    sp = lab.subproxy(s)
    assert "dsn=0" in sp.wait_relay_probe()
    c = RawClient(sp.implicit_port, lab.certs.ca)
    r = c.ehlo()
    assert "DSN" not in r.keywords
    assert "CHUNKING" in r.keywords
    c.auth_plain()
    c.cmd("MAIL FROM:<%s> RET=HDRS" % ALICE, 555, "5.5.4")
    c.cmd("MAIL FROM:<%s> ENVID=abc" % ALICE, 555, "5.5.4")
    c.mail(ALICE)
    c.cmd("RCPT TO:<%s> NOTIFY=NEVER" % RCPT, 555, "5.5.4")


@pytest.mark.parametrize("injected", [b"NOOP\r\n", b"EHLO evil.test\r\nMAIL FROM:<x@evil.test>\r\n"])
def test_starttls_discards_pipelined_plaintext(env, injected):
    """CVE-2011-0411: bytes sent with STARTTLS in one write are dropped."""
    c = env.plain()
    c.ehlo()
    c.send(b"STARTTLS\r\n" + injected)
    c.read_reply().check(220, "2.0.0")
    assert c.buf == b"", "plaintext after the STARTTLS reply: %r" % c.buf
    c._wrap()
    r = c.cmd("EHLO " + CLIENT_NAME)
    r.check(250)
    assert len(r.lines) > 1 and r.lines[0].startswith(SERVER_NAME), \
        "first reply under TLS is not the EHLO reply: %r" % r.raw
    assert "AUTH" in r.keywords
    c.cmd("NOOP", 250, "2.0.0")
    assert c.pending() == b"", "extra replies: %r" % c.buf
    assert relay_transactions(env.sink) == []


# ---- AUTH ----

def test_auth_plain_and_login(env):
    c = env.implicit()
    c.ehlo()
    c.auth_plain(ALICE, ALICE_PW)
    c.cmd("QUIT", 221, "2.0.0")
    # PLAIN with an empty initial challenge: "334" SP and nothing else (RFC 4954 4)
    c = env.implicit()
    c.ehlo()
    assert c.cmd("AUTH PLAIN", 334).raw == b"334 \r\n"
    tok = base64.b64encode(b"\0" + BOB.encode() + b"\0" + BOB_PW.encode())
    c.cmd(tok, 235, "2.7.0")
    # LOGIN
    c = env.implicit()
    c.ehlo()
    c.cmd("AUTH LOGIN", 334)
    c.cmd(base64.b64encode(ALICE.encode()), 334)
    c.cmd(base64.b64encode(ALICE_PW.encode()), 235, "2.7.0")
    c.mail(ALICE)


def test_auth_failures(env):
    c = env.implicit()
    c.ehlo()
    c.auth_plain(ALICE, "wrong-password", code=535, enh="5.7.8")
    c.auth_plain("nobody@lab.test", "alice-secret", code=535, enh="5.7.8")
    c.cmd("MAIL FROM:<%s>" % ALICE, 530, "5.7.0")
    c.auth_plain(ALICE, ALICE_PW)  # two failures: still allowed (limit 3)


def test_auth_response_too_long(env):
    """A response that is valid base64 but longer than the mechanism's
    buffer (1023 octets decoded) is RFC 4954's 500 5.5.6, not "invalid
    base64" (501 5.5.2, as before); the exchange ends, nothing reaches the
    keeper, and the session goes on.  1023 octets are still checked."""
    c = env.implicit()
    c.ehlo()
    # "\0" + "u" + "\0" + 1021 octets: 1024 (padded), and far more
    c.cmd(b"AUTH PLAIN " + base64.b64encode(b"\0u\0" + b"p" * 1021), 500, "5.5.6")
    c.cmd("AUTH PLAIN", 334)
    c.cmd(base64.b64encode(b"\0u\0" + b"p" * 5000), 500, "5.5.6")
    c.cmd("AUTH LOGIN", 334)
    c.cmd(base64.b64encode(b"u" * 1024), 500, "5.5.6")
    c.cmd("AUTH LOGIN " + base64.b64encode(ALICE.encode()).decode(), 334)
    c.cmd(base64.b64encode(b"p" * 5000), 500, "5.5.6")
    c.cmd("AUTH PLAIN " + base64.b64encode(b"\0u\0" + b"p" * 1020).decode(), 535, "5.7.8")
    c.cmd("AUTH PLAIN ####", 501, "5.5.2")
    c.cmd("AUTH PLAIN", 334)
    c.cmd("", 501, "5.5.2")     # an empty response: nothing to decode
    c.auth_plain(ALICE, ALICE_PW)
    c.cmd("QUIT", 221, "2.0.0")


def test_auth_failure_limit_closes(env):
    c = env.implicit()
    c.ehlo()
    c.auth_plain(ALICE, "bad-1", code=535, enh="5.7.8")
    c.auth_plain(ALICE, "bad-2", code=535, enh="5.7.8")
    c.send(b"AUTH PLAIN " + base64.b64encode(b"\0" + ALICE.encode() + b"\0bad-3") + b"\r\n")
    replies = [c.read_reply()]
    if replies[0].code == 535:
        replies.append(c.read_reply())
    assert [r.code for r in replies][-1] == 421, replies
    replies[-1].check(421, "4.7.0")
    c.expect_closed()
    # the limit is per session: a new connection starts afresh
    c = env.implicit()
    c.ehlo()
    c.auth_plain(ALICE, ALICE_PW)


def test_mail_before_auth(env):
    c = env.implicit()
    c.ehlo()
    c.cmd("MAIL FROM:<%s>" % ALICE, 530, "5.7.0")


# ---- MAIL / RCPT ----

@pytest.mark.parametrize("user,line,code,enh", [
    (ALICE, "MAIL FROM:<mallory@evil.test>", 553, "5.7.1"),
    (ALICE, "MAIL FROM:<bob@lab.test>", 553, "5.7.1"),
    (ALICE, "MAIL FROM:<>", 553, "5.7.1"),
    (BOB, "MAIL FROM:<alice@lab.test>", 553, "5.7.1"),
    (BOB, "MAIL FROM:<x@alias.lab.test>", 553, "5.7.1"),
    (ALICE, "MAIL FROM:<alice@lab.test> FOO=BAR", 555, "5.5.4"),
    (ALICE, "MAIL FROM:<alice@lab.test> SIZE=abc", 501, "5.5.4"),
    # a size beyond any counter is still a size: over the limit (RFC 1870 6.1)
    (ALICE, "MAIL FROM:<alice@lab.test> SIZE=99999999999999999999999", 552, "5.3.4"),
    (ALICE, "MAIL FROM:<alice@lab.test> SIZE=%d" % (MESSAGE_SIZE + 1), 552, "5.3.4"),
    (ALICE, "MAIL FROM:<\u00e5lice@alias.lab.test>", 553, "5.6.7"),
    (ALICE, "MAIL FROM:<alice@lab.test> AUTH=+ZZ", 501, "5.5.4"),
    (ALICE, "MAIL FROM:<alice@lab.test> AUTH=a+4", 501, "5.5.4"),
], ids=["other-domain", "other-user", "null-sender", "bob-as-alice", "bob-alias",
        "unknown-param", "size-abc", "size-huge", "size-over-limit", "utf8-without-smtputf8",
        "auth-bad-xtext", "auth-short-xtext"])
def test_mail_refused(env, user, line, code, enh):
    c = env.session(user, {ALICE: ALICE_PW, BOB: BOB_PW}[user])
    c.cmd(line, code, enh)
    c.cmd("RCPT TO:<%s>" % RCPT, 503, "5.5.1")
    assert relay_transactions(env.sink) == []


@pytest.mark.parametrize("param", ["ENVID=+4", "ENVID=a+zz", "ENVID=a=b"])
def test_mail_bad_envid(env, param):
    env.wait_probe()
    c = env.session()
    c.cmd("MAIL FROM:<%s> %s" % (ALICE, param), 501, "5.5.4")


@pytest.mark.parametrize("user,sender,params", [
    (ALICE, ALICE, ""),
    (ALICE, "Alice@Lab.Test", ""),
    (ALICE, "anyone@alias.lab.test", ""),
    (ALICE, ALICE, "SIZE=%d" % MESSAGE_SIZE),
    (ALICE, ALICE, "BODY=8BITMIME"),
    (ALICE, ALICE, "AUTH=<>"),
    (BOB, BOB, ""),
])
def test_mail_accepted(env, user, sender, params):
    c = env.session(user, {ALICE: ALICE_PW, BOB: BOB_PW}[user])
    c.mail(sender, params)
    # the relay session opens at MAIL time: the relay has seen this MAIL
    want = ("MAIL FROM:<%s>" % sender).upper()
    assert any(x.upper().startswith(want) for x in env.sink.commands()), env.sink.commands()
    c.cmd("RSET", 250, "2.0.0")


def test_rcpt_before_mail_and_nested_mail(env):
    c = env.session()
    c.cmd("RCPT TO:<%s>" % RCPT, 503, "5.5.1")
    c.cmd("DATA", 503, "5.5.1")
    c.mail(ALICE)
    c.cmd("MAIL FROM:<%s>" % ALICE, 503, "5.5.1")


def test_recipient_limit(env):
    c = env.session()
    c.mail(ALICE)
    rcpts = ["r%d@remote.test" % i for i in range(RECIPIENTS)]
    for r in rcpts:
        c.rcpt(r, code=250)
    c.rcpt("one-too-many@remote.test", code=452, enh="4.5.3")
    msg = make_message()
    c.data(dot_stuff(msg), code=250)
    m = only_message(env.sink)
    assert m["rcpts"] == rcpts


@pytest.mark.parametrize("raw", [b"NOOP\n", b"NO\rOP\r\n", b"NO\0OP\r\n", b"MAIL FROM:<a@b>\n",
                                 b"RSET\r\r\n"])
def test_command_with_bare_lf_cr_or_nul(env, raw):
    c = env.session()
    c.send(raw)
    c.read_reply().check(500, "5.5.2")
    c.cmd("NOOP", 250, "2.0.0")
    assert c.pending() == b""


def test_vrfy_noop_quit(env):
    c = env.session()
    c.cmd("VRFY alice", 252)
    c.cmd("NOOP", 250, "2.0.0")
    c.cmd("QUIT", 221, "2.0.0")
    c.expect_closed()


# ---- happy paths ----

def test_smtplib_implicit_tls(env):
    msg = make_message()
    with smtp_implicit(env.sp.implicit_port, env.certs.ca) as c:
        smtp_auth_plain(c)
        assert c.sendmail(ALICE, [RCPT, "second@remote.test"], msg) == {}
    m = only_message(env.sink)
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)
    assert m["mail_from"] == ALICE
    assert m["rcpts"] == [RCPT, "second@remote.test"]
    assert m["mail_params"].get("SIZE") == str(len(msg))
    assert m["sni"] == RELAY_NAME
    assert m["tls_version"] in ("TLSv1.2", "TLSv1.3")


def test_smtplib_starttls(env):
    msg = make_message(sender=BOB, body=b"via STARTTLS\r\n")
    with smtp_starttls(env.sp.starttls_port, env.certs.ca) as c:
        smtp_auth_plain(c, BOB, BOB_PW)
        assert c.sendmail(BOB, [RCPT], msg) == {}
    m = only_message(env.sink)
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)
    assert m["mail_from"] == BOB and m["rcpts"] == [RCPT]
    assert m["mail_params"].get("SIZE") == str(len(msg))


@pytest.mark.parametrize("implicit", [True, False], ids=["tlsc", "starttls"])
def test_swaks(env, implicit, tmp_path):
    msg = make_message(body=b".leading dot\r\n..two\r\nend\r\n")
    port = env.sp.implicit_port if implicit else env.sp.starttls_port
    r = swaks(port, env.certs.ca, msg, tmp_path, implicit=implicit)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out + r.stderr.decode()
    assert "235 2.7.0" in out
    m = only_message(env.sink)
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)


@pytest.mark.parametrize("message_id,date", [(True, True), (False, True), (True, False),
                                             (False, False)])
def test_message_id_and_date_added_only_when_missing(env, message_id, date):
    msg = make_message(message_id=message_id, date=date)
    c = env.session()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(msg), code=250)
    m = only_message(env.sink)
    added = dict((n.lower(), v) for n, v in check_relayed(
        m["data"], msg, added_message_id=not message_id, added_date=not date))
    if not message_id:
        assert b"<" in added["message-id"] and b"@" in added["message-id"]
    if not date:
        assert email.utils.parsedate_to_datetime(added["date"].decode().strip()) is not None


def test_bdat_chunks(env):
    msg = make_message(body=b".not stuffed\r\n" + b"line\r\n" * 1000)
    c = env.session()
    c.mail(ALICE, "SIZE=%d" % len(msg))
    c.rcpt(RCPT, code=250)
    cuts = [0, 1, 50, 51, 4000, len(msg)]
    for a, b in zip(cuts, cuts[1:]):
        c.bdat(msg[a:b], code=250)
    c.bdat(b"", last=True, code=250)
    m = only_message(env.sink)
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)
    # one LAST chunk, pipelined with the transaction
    env.sink.reset()
    c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n" % (ALICE.encode(),
                                                                     RCPT.encode(), len(msg)) + msg)
    c.read_reply().check(250)
    c.read_reply().check(250)
    c.read_reply().check(250)
    check_relayed(only_message(env.sink)["data"], msg, added_message_id=False, added_date=False)


def test_dot_stuffed_lines_survive(env):
    body = b".\r\n..\r\n...\r\n.x\r\nx.\r\n. \r\n"
    msg = make_message(body=body)
    c = env.session()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(msg), code=250)
    check_relayed(only_message(env.sink)["data"], msg, added_message_id=False, added_date=False)


@pytest.mark.parametrize("method", ["DATA", "BDAT"])
def test_two_megabyte_message(env, method):
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n"
    body = line * (2 * 1024 * 1024 // len(line) + 1)
    msg = make_message(body=body)
    assert 2 * 1024 * 1024 < len(msg) < MESSAGE_SIZE
    c = env.session()
    c.mail(ALICE, "SIZE=%d" % len(msg))
    c.rcpt(RCPT, code=250)
    if method == "DATA":
        c.data(dot_stuff(msg), code=250)
    else:
        c.bdat(msg[:1000000], code=250)
        c.bdat(msg[1000000:], last=True, code=250)
    m = only_message(env.sink)
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)
    assert m["mail_params"].get("SIZE") == str(len(msg))


def test_smtputf8(env):
    sender = "\u00e5lice@alias.lab.test"
    rcpt = "j\u00f6rg@remote.test"
    msg = make_message(sender=sender, to=rcpt, subject="Gr\u00fc\u00dfe",
                       body="H\u00e9llo w\u00f6rld\r\n")
    c = env.session()
    c.mail(sender, "SMTPUTF8")
    c.rcpt(rcpt, code=250)
    c.data(dot_stuff(msg), code=250)
    m = only_message(env.sink)
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)
    assert m["mail_from"] == sender
    assert m["rcpts"] == [rcpt]
    assert m["mail_params"].get("SMTPUTF8") is True


def test_8bitmime(env):
    msg = make_message(body=b"caf\xc3\xa9 \xff\xfe 8-bit\r\n",
                       headers=["MIME-Version: 1.0",
                                "Content-Type: text/plain; charset=utf-8",
                                "Content-Transfer-Encoding: 8bit"])
    c = env.session()
    c.mail(ALICE, "BODY=8BITMIME")
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(msg), code=250)
    m = only_message(env.sink)
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)
    assert m["mail_params"].get("BODY") == "8BITMIME"


def test_dsn_parameters_relayed(env):
    env.wait_probe()
    c = env.session()
    c.mail(ALICE, "RET=HDRS ENVID=abc+2Bdef")
    c.rcpt(RCPT, "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;rcpt@remote.test", code=250)
    c.data(dot_stuff(make_message()), code=250)
    m = only_message(env.sink)
    assert m["mail_params"].get("RET") == "HDRS"
    assert m["mail_params"].get("ENVID") == "abc+2Bdef"
    assert m["rcpt_params"][0].get("NOTIFY", "").upper() in ("SUCCESS,FAILURE", "FAILURE,SUCCESS")
    assert m["rcpt_params"][0].get("ORCPT", "").lower() == "rfc822;rcpt@remote.test"


def test_several_messages_in_one_session(env):
    c = env.session()
    msgs = [make_message(subject="message %d" % i, body="body %d\r\n" % i) for i in range(4)]
    rcpts = [[RCPT], ["a@remote.test", "b@remote.test"], [RCPT], ["c@remote.test"]]
    for i, (msg, rl) in enumerate(zip(msgs, rcpts)):
        c.mail(ALICE)
        for r in rl:
            c.rcpt(r, code=250)
        if i == 2:
            c.bdat(msg, last=True, code=250)
        else:
            c.data(dot_stuff(msg), code=250)
        if i == 1:
            c.cmd("RSET", 250, "2.0.0")
    # an aborted transaction in between leaves no trace
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.cmd("RSET", 250, "2.0.0")
    stored = env.sink.messages()
    assert len(stored) == 4
    for m, msg, rl in zip(stored, msgs, rcpts):
        check_relayed(m["data"], msg, added_message_id=False, added_date=False)
        assert m["rcpts"] == rl and m["mail_from"] == ALICE


def test_pipelined_transaction(env):
    """PIPELINING: the whole transaction in one write, replies in order."""
    msg = make_message()
    c = env.session()
    c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nRCPT TO:<bad\0x@remote.test>\r\nRCPT TO:<two@remote.test>\r\n"
           b"DATA\r\n" % (ALICE.encode(), RCPT.encode()))
    c.read_reply().check(250)
    c.read_reply().check(250)
    c.read_reply().check(500, "5.5.2")
    c.read_reply().check(250)
    c.read_reply().check(354)
    c.send(dot_stuff(msg) + b"NOOP\r\n")
    c.read_reply().check(250)
    c.read_reply().check(250, "2.0.0")
    m = only_message(env.sink)
    assert m["rcpts"] == [RCPT, "two@remote.test"]


# ---- relay with DATA (no CHUNKING), implicit TLS toward the relay ----

@pytest.fixture(scope="module")
def env_data(module_lab):
    s = module_lab.sink(mode="implicit", chunking=False)
    sp = module_lab.subproxy(s, limits=LIMITS)
    sp.wait_relay_probe()   # let the start-up probe finish first
    return Env(module_lab, s, sp)


@pytest.mark.parametrize("big", [False, True], ids=["dots", "2MB"])
def test_relay_via_data_with_dot_stuffing(env_data, big):
    env_data.sink.reset()
    body = b".\r\n..\r\n.x\r\n" + (b"." + b"y" * 70 + b"\r\n") * (30000 if big else 3)
    msg = make_message(body=body)
    c = env_data.session()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    if big:
        c.bdat(msg, last=True, code=250)
    else:
        c.data(dot_stuff(msg), code=250)
    m = only_message(env_data.sink)
    assert m["method"] == "DATA"
    assert m["sni"] == RELAY_NAME
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)



def log_fields(line):
    """The key=value fields of a log line after its "level:" prefix."""
    return [w.split("=", 1)[0] for w in line.split(": ", 1)[-1].split(" ") if "=" in w]


def test_untrusted_text_stays_one_field_in_the_log(lab):
    """A login, a sender or a recipient with spaces and '=' (a quoted local
    part may hold them) is logged as one value (space, quote and control
    bytes as \\xHH): it cannot add fields such as result=ok or code=250 to
    the line (they used to be logged with their spaces)."""
    sp = lab.subproxy(lab.sink())
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.ehlo()
    tok = base64.b64encode(b"\0x result=ok peer=192.0.2.1\x1b\0pw").decode()
    c.cmd("AUTH PLAIN " + tok, 535, "5.7.8")
    c.auth_plain(ALICE, ALICE_PW)
    c.mail(ALICE)
    # whatever the relay answers (the lab's sink refuses spaces: 501)
    c.rcpt('"a code=250 to=b"@example.org', code=None)
    c.rcpt('"c event=relayed"@example.org', code=None)
    c.cmd("QUIT", 221)
    sp.wait_log(r"event=close .*login=%s" % ALICE, timeout=10)
    fail = [ln for ln in sp.lines if "event=auth " in ln and "result=fail" in ln]
    assert len(fail) == 1 and \
        r"login=x\x20result=ok\x20peer=192.0.2.1\x1b result=fail" in fail[0], fail
    rcpts = [ln for ln in sp.lines if re.search(r"event=rcpt(-refused)? ", ln)]
    assert len(rcpts) == 2, rcpts
    assert r"to=<\x22a\x20code=250\x20to=b\x22@example.org> code=" in rcpts[0], rcpts
    assert r"to=<\x22c\x20event=relayed\x22@example.org> code=" in rcpts[1], rcpts
    for ln in fail + rcpts:
        keys = log_fields(ln)
        assert len(keys) == len(set(keys)), (keys, ln)
        assert keys.count("event") == 1, ln
