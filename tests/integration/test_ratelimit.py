"""
Rate limits ([limits] messages-per-hour, recipients-per-hour,
auth-per-minute, sessions-per-login; [login "NAME"] overrides): the N+1st
message, recipient, AUTH and session gets the documented reply with a
sentence naming the limit, other logins and addresses are not affected, and
the bucket refills.  Refilling uses build/subproxy-testclock, whose
rate-limit clock moves an hour ahead on SIGUSR2 to front (no sleeping); the
installed daemon has no such hook.

A message token is spent by a transaction that begins (its MAIL holds one of
the worker's [limits] transactions and goes to the relay), whatever its end;
a MAIL refused before that spends none, also one that waited for a
transaction slot and got 452 4.3.1, and a waiting MAIL takes its token only
when it begins, so that sessions on two workers never pass more than the
limit.
"""

import base64
import os
import re
import signal
import socket
import subprocess
import threading

import pytest

from conftest import subproxy_binary, clock_test_binary
from helpers import (ALICE, ALICE_PW, BOB, BOB_PW, RCPT, SERVER_NAME, RawClient, client_context,
                     dot_stuff, make_message)
from opsutil import Pinned, fronts, served_by, sigstop, wait_for
from test_dkim import roles
from test_flood import flood
from test_workers import start_two


def session(sp, lab, user=ALICE, password=ALICE_PW, source="127.0.0.2", code=235,
            enh="2.7.0"):
    c = RawClient(sp.implicit_port, lab.certs.ca, source=source)
    c.greeting.check(220)
    c.ehlo()
    c.auth_plain(user, password, code=code, enh=enh)
    return c


def advance_clock(sp):
    """One hour later for the rate limits of this (test-build) daemon: the
    test clock is each front worker's own, so every worker is told (the
    buckets they share are in one table)."""
    n = len(sp.lines)
    workers = fronts(sp.proc.pid)
    for pid in workers:
        os.kill(pid, signal.SIGUSR2)
    for pid in workers:
        assert sp.wait_log(r"front\[%d\] \w+: event=test-clock skew=" % pid, start=n), \
            sp.stderr_text(10)


def login_sections(logins):
    return "".join('[login "%s"]\n%s\n' % (name, "\n".join("%s = %s" % kv for kv in keys.items()))
                   for name, keys in (logins or {}).items())


def start(lab, limits, logins=None, **kw):
    return lab.subproxy(lab.sink(), limits=limits, extra_config=login_sections(logins),
                        binary=clock_test_binary(), **kw)


def mails_seen(sink):
    return sum(1 for c in sink.commands() if c.upper().startswith("MAIL FROM"))


@pytest.mark.sanitized
def test_messages_per_hour(lab):
    sp = start(lab, {}, {ALICE: {"messages-per-hour": 2}})
    c = session(sp, lab)
    for _ in range(2):
        c.mail(ALICE)
        c.cmd("RSET", 250)
    r = c.cmd("MAIL FROM:<%s>" % ALICE)
    r.check(450, "4.7.1")
    assert "Message rate limit reached (messages-per-hour 2 for this login)" in r.text, r
    # the session goes on; bob (no override, [limits] off) is not affected
    c.cmd("NOOP", 250)
    b = session(sp, lab, BOB, BOB_PW)
    b.mail(BOB)
    b.rcpt(RCPT, code=250)
    b.data(dot_stuff(make_message(sender=BOB)), code=250)
    b.cmd("QUIT", 221)
    # from another address the login's limit holds all the same
    d = session(sp, lab, source="127.0.0.3")
    d.cmd("MAIL FROM:<%s>" % ALICE).check(450, "4.7.1")
    d.cmd("QUIT", 221)
    assert sp.wait_log(r"event=rate-limit limit=messages-per-hour subject=login "
                       r"login=alice@lab\.test peer=127\.0\.0\.2")
    # an hour later the bucket is full again
    advance_clock(sp)
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(make_message()), code=250)
    c.cmd("MAIL FROM:<%s>" % ALICE).check(250)
    c.cmd("QUIT", 221)


@pytest.mark.sanitized
def test_messages_per_hour_per_address(lab):
    """[limits] applies per address too: two logins from one address share it."""
    sp = start(lab, {"messages-per-hour": 1})
    a = session(sp, lab)
    a.mail(ALICE)
    a.cmd("QUIT", 221)
    b = session(sp, lab, BOB, BOB_PW)
    r = b.cmd("MAIL FROM:<%s>" % BOB)
    r.check(450, "4.7.1")
    assert "messages-per-hour 1 for your address" in r.text, r
    b.cmd("QUIT", 221)
    # bob from elsewhere is fine (his own login bucket is untouched)
    b = session(sp, lab, BOB, BOB_PW, source="127.0.0.4")
    b.mail(BOB)
    b.cmd("QUIT", 221)


@pytest.mark.sanitized
def test_recipients_per_hour(lab):
    sp = start(lab, {"recipients-per-hour": 3})
    c = session(sp, lab)
    c.mail(ALICE)
    for i in range(3):
        c.rcpt("r%d@remote.test" % i, code=250)
    r = c.cmd("RCPT TO:<r3@remote.test>")
    r.check(450, "4.7.1")
    assert "Recipient rate limit reached (recipients-per-hour 3 for" in r.text, r
    # the transaction goes on with the three accepted recipients
    c.data(dot_stuff(make_message()), code=250)
    assert lab.sinks[0].messages()[-1]["rcpts"] == \
        ["r0@remote.test", "r1@remote.test", "r2@remote.test"]
    b = session(sp, lab, BOB, BOB_PW, source="127.0.0.3")
    b.mail(BOB)
    b.rcpt(RCPT, code=250)
    b.cmd("QUIT", 221)
    advance_clock(sp)
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.cmd("QUIT", 221)


def rcpts_seen(sink, *addrs):
    """How many RCPT commands for these addresses reached the relay."""
    want = ["RCPT TO:<%s>" % a for a in addrs]
    return sum(1 for c in sink.commands() if any(c.startswith(w) for w in want))


@pytest.mark.sanitized
def test_rcpts_the_relay_answered_count_a_failed_relay_leg_does_not(lab):
    """recipients-per-hour counts RCPTs the relay answered, as Postfix's
    smtpd_client_recipient_rate_limit counts requests: a refused one (5xx,
    4xx) spends its token like an accepted one, whatever the transaction's
    end.  A RCPT that never got its answer because the relay leg failed
    (451, the transaction ends) gives its token back, to the login's and
    the address's bucket ([limits] sets both).  The next one beyond the
    limit gets 450 4.7.1 without reaching the relay."""
    sp = start(lab, {"recipients-per-hour": 4})
    sink = lab.sinks[0]
    c = session(sp, lab)
    sink.set_faults(rcpt={"bad@remote.test": "550 5.1.1 no such user",
                          "later@remote.test": "450 4.2.1 mailbox busy"})
    c.mail(ALICE)
    c.rcpt("bad@remote.test", code=550, enh="5.1.1")        # 1
    c.rcpt("later@remote.test", code=450, enh="4.2.1")      # 2
    c.rcpt("r0@remote.test", code=250)                       # 3
    c.cmd("RSET", 250)
    sink.set_faults(drop_at={"rcpt"}, once=True)
    c.mail(ALICE)
    r = c.cmd("RCPT TO:<lost@remote.test>")                  # given back
    assert r.code == 451 and r.enh.startswith("4.4."), r
    c.cmd("RCPT TO:<r1@remote.test>").check(503, "5.5.1")  # the transaction ended
    c.mail(ALICE)
    c.rcpt("r1@remote.test", code=250)                       # 4
    r = c.cmd("RCPT TO:<r2@remote.test>")
    r.check(450, "4.7.1")
    assert "Recipient rate limit reached (recipients-per-hour 4 for" in r.text, r
    c.rcpt("bad@remote.test", code=450, enh="4.7.1")         # no token for a try either
    c.data(dot_stuff(make_message()), code=250)
    c.cmd("QUIT", 221)
    assert [m["rcpts"] for m in sink.messages()] == [["r1@remote.test"]]
    assert rcpts_seen(sink, "r2@remote.test") == 0
    assert rcpts_seen(sink, "bad@remote.test") == 1
    # the address's bucket is used up as well: bob from there is refused
    b = session(sp, lab, BOB, BOB_PW)
    b.mail(BOB)
    r = b.cmd("RCPT TO:<%s>" % RCPT)
    r.check(450, "4.7.1")
    assert "recipients-per-hour 4 for your address" in r.text, r
    b.cmd("QUIT", 221)


@pytest.mark.sanitized
def test_pipelined_rcpts_never_pass_the_limit(lab):
    """Six RCPTs in one write with recipients-per-hour = 3: each holds its
    token while it is at the relay (the next is read after its answer); the
    relay's refusal of the second counts, so two are accepted and the three
    beyond the limit get 450 4.7.1 and never reach the relay."""
    sp = start(lab, {}, {ALICE: {"recipients-per-hour": 3}})
    sink = lab.sinks[0]
    sink.set_faults(rcpt={"bad@remote.test": "550 5.1.1 no such user"})
    c = session(sp, lab)
    c.mail(ALICE)
    addrs = ["r0@remote.test", "bad@remote.test", "r1@remote.test", "r2@remote.test",
             "r3@remote.test", "r4@remote.test"]
    c.send("".join("RCPT TO:<%s>\r\n" % a for a in addrs))
    got = [c.read_reply() for _ in addrs]
    assert [(r.code, r.enh) for r in got] == [(250, "2.1.5"), (550, "5.1.1"), (250, "2.1.5"),
                                              (450, "4.7.1"), (450, "4.7.1"), (450, "4.7.1")]
    assert "recipients-per-hour 3 for this login" in got[-1].text, got[-1]
    c.data(dot_stuff(make_message()), code=250)
    c.cmd("QUIT", 221)
    assert [m["rcpts"] for m in sink.messages()] == [["r0@remote.test", "r1@remote.test"]]
    assert rcpts_seen(sink, "r2@remote.test", "r3@remote.test", "r4@remote.test") == 0


@pytest.mark.sanitized
def test_rcpt_token_is_held_while_the_relay_answers(lab):
    """alice has one recipient an hour.  Her RCPT on worker a is at the
    relay (the relay's answer held back): her RCPT on worker b finds the
    token taken, 450 4.7.1.  The relay then refuses a's recipient: that
    answered RCPT keeps the token, so b's next RCPT is refused too and
    nothing is relayed."""
    gate = threading.Event()
    sink = lab.sink()
    sp, (a, b) = start_two(lab, sink,
                           extra_config=login_sections({ALICE: {"recipients-per-hour": 1}}))
    w = pinned_session(sp, lab, a, (a, b), ALICE, ALICE_PW, "127.0.0.2")
    o = pinned_session(sp, lab, b, (a, b), ALICE, ALICE_PW, "127.0.0.3")
    w.mail(ALICE)
    o.mail(ALICE)
    sink.set_faults(rcpt={"bad@remote.test": "550 5.1.1 no such user"}, delay={"rcpt": gate})
    try:
        w.send("RCPT TO:<bad@remote.test>\r\n")
        wait_for(lambda: rcpts_seen(sink, "bad@remote.test") == 1, timeout=10,
                 what="a's RCPT at the relay")
        r = o.cmd("RCPT TO:<r0@remote.test>")
        r.check(450, "4.7.1")
        assert "recipients-per-hour 1 for this login" in r.text, r
    finally:
        gate.set()
    w.read_reply().check(550, "5.1.1")
    o.rcpt("r0@remote.test", code=450, enh="4.7.1")
    w.rcpt("r1@remote.test", code=450, enh="4.7.1")
    for x in (w, o):
        x.cmd("QUIT", 221)
    assert sink.messages() == []
    assert rcpts_seen(sink, "r0@remote.test", "r1@remote.test") == 0


@pytest.mark.sanitized
def test_auth_per_minute(lab):
    sp = start(lab, {"auth-per-minute": 2})
    for _ in range(2):
        session(sp, lab).cmd("QUIT", 221)
    # the third attempt, right or wrong, is not even checked
    c = RawClient(sp.implicit_port, lab.certs.ca, source="127.0.0.2")
    c.greeting.check(220)
    c.ehlo()
    r = c.auth_plain(ALICE, ALICE_PW, code=454, enh="4.7.0")
    assert "Too many authentication attempts (auth-per-minute 2 for" in r.text, r
    # the session stays usable: NOOP, and a later AUTH after the refill
    c.cmd("NOOP", 250)
    b = session(sp, lab, BOB, BOB_PW, source="127.0.0.3")
    b.cmd("QUIT", 221)
    # alice from another address: her login's bucket is empty too
    d = RawClient(sp.implicit_port, lab.certs.ca, source="127.0.0.4")
    d.greeting.check(220)
    d.ehlo()
    d.auth_plain(ALICE, ALICE_PW, code=454, enh="4.7.0")
    d.cmd("QUIT", 221)
    advance_clock(sp)
    c.auth_plain(ALICE, ALICE_PW)
    c.cmd("QUIT", 221)
    assert sp.wait_log(r"event=rate-limit limit=auth-per-minute subject=")


@pytest.mark.sanitized
def test_sessions_per_login(lab):
    sp = start(lab, {}, {ALICE: {"sessions-per-login": 2}})
    a, b = session(sp, lab), session(sp, lab, source="127.0.0.3")
    c = RawClient(sp.implicit_port, lab.certs.ca, source="127.0.0.4")
    c.greeting.check(220)
    c.ehlo()
    r = c.auth_plain(ALICE, ALICE_PW, code=421, enh="4.7.0")
    assert "Too many concurrent sessions for this login (sessions-per-login 2)" in r.text, r
    c.expect_closed()
    # bob is not affected
    session(sp, lab, BOB, BOB_PW).cmd("QUIT", 221)
    # a session ends: the slot is free again
    a.cmd("QUIT", 221)
    assert sp.wait_log(r"event=close peer=127\.0\.0\.2 login=alice@lab\.test")
    d = session(sp, lab, source="127.0.0.4")
    for x in (b, d):
        x.cmd("QUIT", 221)
    assert sp.wait_log(r"event=rate-limit limit=sessions-per-login login=alice@lab\.test")


@pytest.mark.sanitized
def test_mail_refused_while_waiting_spends_no_token(lab):
    """A MAIL that waited [limits] timeout for a transaction slot and got
    452 4.3.1 began no transaction: alice (messages-per-hour 2) can still
    send exactly two messages, the third MAIL gets 450 4.7.1, and nothing
    of the refused MAILs reached the relay.  The slot's holder (bob) waits
    for its signature meanwhile (signer stopped), so that only the waiter's
    timeout can end the wait."""
    sp = start(lab, {"transactions": 1, "timeout": 3}, {ALICE: {"messages-per-hour": 2}},
               server={"workers": 1})
    sink = lab.sinks[0]
    signer = roles(sp)["signer"]
    h = session(sp, lab, BOB, BOB_PW, source="127.0.0.3")
    h.mail(BOB)
    h.rcpt(RCPT, code=250)
    sigstop(signer)
    try:
        h.cmd("DATA", 354)
        h.send(dot_stuff(make_message(sender=BOB, subject="holder")))
        c = session(sp, lab)
        c.send("MAIL FROM:<%s>\r\n" % ALICE)
        r = c.read_reply()
        assert r.raw == (b"452 4.3.1 Too many messages in progress on this server, none "
                         b"ended within 3 seconds; try again later\r\n"), r.raw
        c.cmd("QUIT", 221)
    finally:
        os.kill(signer, signal.SIGCONT)
    h.read_reply().check(250, "2.0.0")
    h.cmd("QUIT", 221)
    assert mails_seen(sink) == 1
    c = session(sp, lab)
    for i in range(2):
        c.mail(ALICE)
        c.rcpt(RCPT, code=250)
        c.data(dot_stuff(make_message(subject="alice %d" % i)), 250, "2.0.0")
    r = c.cmd("MAIL FROM:<%s>" % ALICE)
    r.check(450, "4.7.1")
    assert "messages-per-hour 2 for this login" in r.text, r
    c.cmd("QUIT", 221)
    assert mails_seen(sink) == 3
    assert len(sink.messages()) == 3


def pinned_session(sp, lab, worker, workers, user, password, source):
    start_at = len(sp.lines)
    with Pinned(worker, workers):
        c = RawClient(sp.implicit_port, lab.certs.ca, source=source)
        c.greeting.check(220)
    wait_for(lambda: served_by(sp, worker, start_at), timeout=10,
             what="worker %d's connect line" % worker)
    c.ehlo()
    c.auth_plain(user, password)
    return c


@pytest.mark.sanitized
def test_waiting_mail_takes_its_token_when_it_begins(lab):
    """alice has one message an hour.  Her MAIL on worker a waits for that
    worker's only transaction slot (bob holds it); meanwhile her MAIL on
    worker b begins at once and spends the token.  When bob's transaction
    ends, the waiting MAIL begins and finds the bucket empty: 450 4.7.1,
    nothing sent to the relay for it.  (Taking the token when MAIL arrived
    would have let the waiter through and refused the one that could
    begin.)"""
    sp, (a, b) = start_two(lab, lab.sink(), limits={"transactions": 1},
                           extra_config=login_sections({ALICE: {"messages-per-hour": 1}}),
                           binary=clock_test_binary())
    sink = lab.sinks[0]
    h = pinned_session(sp, lab, a, (a, b), BOB, BOB_PW, "127.0.0.3")
    h.mail(BOB)
    w = pinned_session(sp, lab, a, (a, b), ALICE, ALICE_PW, "127.0.0.2")
    n = len(sp.lines)
    w.send("MAIL FROM:<%s>\r\n" % ALICE)
    assert sp.wait_log(r"front\[%d\] \w+: session=\S+ event=transaction-wait from=<%s>"
                       % (a, re.escape(ALICE)), start=n, timeout=10)
    o = pinned_session(sp, lab, b, (a, b), ALICE, ALICE_PW, "127.0.0.4")
    o.mail(ALICE)
    o.cmd("RSET", 250)
    assert w.pending(0.3) == b""
    h.cmd("RSET", 250)
    r = w.read_reply()
    r.check(450, "4.7.1")
    assert "messages-per-hour 1 for this login" in r.text, r
    # the slot went back: bob's next MAIL on worker a begins at once
    h.mail(BOB)
    for x in (h, w, o):
        x.cmd("QUIT", 221)
    assert mails_seen(sink) == 3


@pytest.mark.sanitized
def test_a_begun_transaction_spends_its_token(lab):
    """messages-per-hour counts transactions begun, not messages relayed:
    MAIL refusals of subproxy's own before a transaction begins (553 sender
    not owned) spend nothing; a transaction that began spends its token
    whatever its end (the relay refuses MAIL, refuses the only recipient,
    the message is too large, the relay answers 451 at its end), so that
    refusals cannot buy unlimited attempts.  Nothing was relayed."""
    sp = start(lab, {"message-size": "10k", "header-size": "8k"},
               {ALICE: {"messages-per-hour": 4}})
    sink = lab.sinks[0]
    c = session(sp, lab)
    for _ in range(5):
        c.mail(BOB, code=553, enh="5.7.1")
    sink.set_faults(mail="550 5.7.1 sender refused", once=True)
    c.mail(ALICE, code=550, enh="5.7.1")
    sink.set_faults(rcpt={RCPT: "550 5.1.1 no such user"})
    c.mail(ALICE)
    c.rcpt(RCPT, code=550, enh="5.1.1")
    c.cmd("RSET", 250)
    sink.set_faults()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(make_message(body=("x" * 70 + "\r\n") * 200)), 552, "5.3.4")
    sink.set_faults(final="451 4.3.0 try again later", once=True)
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(make_message()), 451, "4.3.0")
    r = c.cmd("MAIL FROM:<%s>" % ALICE)
    r.check(450, "4.7.1")
    assert "messages-per-hour 4 for this login" in r.text, r
    c.cmd("QUIT", 221)
    assert sink.messages() == []
    assert mails_seen(sink) == 4


def closing_round(sp, lab):
    """One try of the test below: a logs in as alice and floods NOOPs without
    reading the replies until the idle timeout closes it with its replies
    unwritten (it lingers up to 5 s without write progress: CONN_CLOSE_WAIT
    in src/conn.c); once a's close is logged, b connects and logs in as
    alice (so its sessions-per-login check follows a's close), and c then
    probes whether a still held its descriptor.  b connects only then: one
    connected before would idle through the flood, and an AUTH of it waiting
    for a stopped keeper meanwhile would reach its bound, the idle timeout
    too (test_authwait.py).
    Returns (b, whether c was refused because of a)."""
    n = len(sp.lines)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", sp.implicit_port))
    a = client_context(lab.certs.ca).wrap_socket(raw, server_hostname=SERVER_NAME)
    a.settimeout(10)
    tok = base64.b64encode(b"\0%s\0%s" % (ALICE.encode(), ALICE_PW.encode()))
    a.sendall(b"EHLO a\r\nAUTH PLAIN " + tok + b"\r\n")
    got = b""
    while b"\r\n235 " not in got:
        chunk = a.recv(4096)
        assert chunk, got
        got += chunk
    flooder = threading.Thread(target=flood, args=(a, b"NOOP\r\n"), kwargs={"total": 4 << 20})
    try:
        flooder.start()
        # the close line, not the idle-timeout one before it: only once it
        # is logged is a no session of alice's
        assert sp.wait_log(r"event=close peer=127\.0\.0\.1 login=alice@lab\.test", timeout=30,
                           start=n), "no close of the flooding session:\n" + sp.stderr_text(20)
        assert sp.wait_log(r"event=idle-timeout peer=127\.0\.0\.1 state=command", timeout=1,
                           start=n), sp.stderr_text(20)
        b = RawClient(sp.implicit_port, lab.certs.ca, source="127.0.0.4")
        b.greeting.check(220)
        b.ehlo()
        b.auth_plain(ALICE, ALICE_PW)                   # alice again while a is closing: 235
        c = RawClient(sp.starttls_port, lab.certs.ca, implicit=False, source="127.0.0.3")
        lingered = c.greeting.code == 421
        if lingered:
            c.greeting.check(421, "4.3.2")              # connections = 2: a and b
            c.expect_closed()
        else:
            c.close()
    finally:
        if flooder.is_alive():
            flooder.join(150)                           # flood() ends within 120 s
        a.close()
    assert not flooder.is_alive()
    return b, lingered


@pytest.mark.sanitized
def test_closing_session_is_no_session_of_its_login(lab):
    """A session that is closed but still writing its last replies (its
    client reads nothing) keeps its descriptor and counts against [limits]
    connections, but it is no session of its login any more: with
    sessions-per-login = 1 the login may log in again at once.  The second
    login takes a TLS handshake and an AUTH; should the closed session be gone after
    it (a loaded machine), the proof that it was still there is missing and
    the round is repeated (three at most)."""
    sp = start(lab, {"connections": 2, "connections-per-ip": 10, "timeout": 2},
               {ALICE: {"sessions-per-login": 1}})
    for _ in range(3):
        b, lingered = closing_round(sp, lab)
        if lingered:
            break
        b.close()
        sp.wait_sessions_ended()
    assert lingered, "the closing session was gone before the second login in three rounds"
    b.cmd("QUIT", 221)
    assert "limit=sessions-per-login" not in sp.stderr_text()


def test_installed_daemon_has_no_test_clock():
    """The SIGUSR2 clock hook exists only in build/subproxy-testclock."""
    text = "moves the rate-limit clock"
    prod = subprocess.run(["grep", "-c", text, subproxy_binary()], capture_output=True)
    test = subprocess.run(["grep", "-c", text, clock_test_binary()], capture_output=True)
    assert prod.stdout.strip() == b"0", prod
    assert test.stdout.strip() != b"0", test
