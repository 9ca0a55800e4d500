"""
How long and how much a client may hold (issue 9, item 5): the idle timer
after a wait, the time to authenticate ([limits] auth-timeout), the whole
session ([limits] session-timeout), per-address limits for IPv6 by prefix
([limits] ipv6-prefix) and the message data one login may hold at once
([limits] login-memory).
"""

import socket
import time

import pytest

from helpers import (ALICE, RCPT, TIMEOUT, RawClient, check_relayed, dot_stuff, logged_in,
                     make_message, raw_starttls_client)


@pytest.mark.sanitized
def test_idle_timeout_after_a_wait(lab):
    """The idle timeout fires while the session waits for the relay (it is
    not the client's fault then); it must fire again later, when the client
    is the one who is idle."""
    s = lab.sink()
    sp = lab.subproxy(s, limits={"timeout": 2})
    c = logged_in(sp.implicit_port, lab.certs.ca)
    s.configure()
    s.set_faults(delay={"mail": 5.0})
    t0 = time.monotonic()
    c.mail(ALICE)                         # 5 s: the idle timer fires during the wait
    assert time.monotonic() - t0 >= 4.5
    c.sock.settimeout(TIMEOUT)
    c.read_reply().check(421, "4.4.2")    # the client idles: closed after 2 s more
    c.expect_closed()
    assert sp.wait_log(r"event=idle-timeout peer=127.0.0.1 state=command", timeout=5)


@pytest.mark.sanitized
def test_auth_timeout(lab):
    """Without AUTH a session ends after auth-timeout, busy or not; after
    AUTH that deadline no longer applies."""
    sp = lab.subproxy(lab.sink(), limits={"auth-timeout": 3, "timeout": 60})
    ok = logged_in(sp.implicit_port, lab.certs.ca)
    t0 = time.monotonic()
    c = raw_starttls_client(sp.starttls_port, lab.certs.ca)
    c.ehlo()
    r = None
    for _ in range(40):                   # a NOOP every 0.25 s keeps it busy
        r = c.cmd("NOOP")
        if r.code != 250:
            break
        time.sleep(0.25)
    assert r.code == 421 and r.enh == "4.4.2", r
    assert "No authentication within 3 seconds" in r.text, r
    assert time.monotonic() - t0 >= 2.5
    c.expect_closed()
    ok.cmd("NOOP", 250, "2.0.0")          # authenticated before: still here
    ok.cmd("QUIT", 221)


@pytest.mark.sanitized
def test_session_timeout_ends_after_the_transaction(lab):
    """When session-timeout passes during a transaction the transaction
    finishes (the message is relayed), then 421 4.4.2; an idle session ends
    at the deadline."""
    s = lab.sink()
    sp = lab.subproxy(s, limits={"session-timeout": 4, "auth-timeout": 4})
    idle = logged_in(sp.implicit_port, lab.certs.ca)
    c = logged_in(sp.implicit_port, lab.certs.ca)
    t0 = time.monotonic()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    idle.sock.settimeout(TIMEOUT)
    idle.read_reply().check(421, "4.4.2")      # at the deadline
    idle.expect_closed()
    assert time.monotonic() - t0 < 4.5 + TIMEOUT
    time.sleep(max(0.0, 4.5 - (time.monotonic() - t0)))
    msg = make_message(subject="finished after the deadline")
    c.cmd("DATA", 354)
    c.send(dot_stuff(msg))
    c.read_reply().check(250, "2.0.0")
    r = c.read_reply()
    r.check(421, "4.4.2")
    assert "Session time limit" in r.text, r
    c.expect_closed()
    assert len(s.messages()) == 1
    check_relayed(s.messages()[0]["data"], msg, added_message_id=False, added_date=False)


@pytest.mark.sanitized
def test_session_timeout_ends_a_slow_transaction(lab):
    """A client that keeps a transaction going slowly (a line of DATA every
    half second: never idle) gets one idle timeout after the deadline, then
    421 4.4.2; the relay never gets the end of the data."""
    s = lab.sink()
    sp = lab.subproxy(s, limits={"session-timeout": 3, "auth-timeout": 3, "timeout": 2})
    t0 = time.monotonic()
    c = logged_in(sp.implicit_port, lab.certs.ca)
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.cmd("DATA", 354)
    c.send(make_message(body=b""))
    for i in range(60):
        try:
            c.send(b"slow line %d\r\n" % i)
        except OSError:
            break
        if c.pending(0.5):
            break
    reply = c.read_reply()
    reply.check(421, "4.4.2")
    assert "Session time limit" in reply.text, reply
    # the deadline (3 s after connecting) plus one idle timeout (2 s)
    assert time.monotonic() - t0 >= 4.5
    assert s.messages() == [] and s.data_completions() == 0
    assert sp.wait_log(r"event=session-timeout peer=127.0.0.1 in-transaction=1", timeout=5)


@pytest.mark.sanitized
def test_session_deadline_is_never_early(lab):
    """session-timeout counts from the accept, to the millisecond: a client
    that connects just before a second of the monotonic clock turns and
    logs in just after it is not cut early (whole seconds made the
    deadline up to a second early, and test_session_timeout_* flaky)."""
    limit = 5
    sp = lab.subproxy(lab.sink(), limits={"session-timeout": limit, "auth-timeout": limit})
    while time.monotonic() % 1 < 0.85:          # the clock subproxy reads too
        time.sleep(0.01)
    t0 = time.monotonic()
    c = RawClient(sp.implicit_port, lab.certs.ca)
    time.sleep(max(0.0, 0.3 - (time.monotonic() - t0)))       # past the turn
    c.login()
    c.sock.settimeout(TIMEOUT)
    r = c.read_reply()
    elapsed = time.monotonic() - t0
    r.check(421, "4.4.2")
    assert elapsed >= limit, "session-timeout = %d ended the session after %.2f s" % (
        limit, elapsed)
    c.expect_closed()


def test_ipv6_peers_count_by_prefix(lab):
    """A client on [::1]: per-address limits count its /64 (the keeper's
    lockout counters get the same key); with ipv6-prefix = 128 the address
    itself."""
    for prefix, key in ((64, "::/64"), (128, "::1")):
        try:
            port = _free_v6_port()
        except OSError:
            pytest.skip("needs IPv6 loopback: none on this machine")
        sp = lab.subproxy(lab.sink(), limits={"connections-per-ip": 2, "ipv6-prefix": prefix},
                          extra_config='[listen "v6"]\naddress = [::1]:%d\ntls = starttls\n'
                          % port)
        held = [raw_starttls_client(port, lab.certs.ca, host="::1") for _ in range(2)]
        for h in held:
            h.greeting.check(220)
        r = raw_starttls_client(port, lab.certs.ca, host="::1")
        r.greeting.check(421, "4.7.0")
        r.expect_closed()
        assert sp.wait_log(r"event=refused peer=::1 key=%s " % key.replace("/", r"\/"),
                           timeout=5)
        # IPv4 clients are another address
        v4 = raw_starttls_client(sp.starttls_port, lab.certs.ca)
        v4.greeting.check(220)
        for h in held + [v4]:
            h.cmd("QUIT", 221)
        sp.stop()


def _free_v6_port():
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def message_of(size, subject):
    """A message of exactly `size` octets (lines of at most 80 with CRLF)."""
    msg = make_message(subject=subject, body=b"")
    n = size - len(msg)
    while n > 0:
        k = min(80, n)
        if n - k == 1:
            k -= 1                      # a line needs at least its CRLF
        msg += b"x" * (k - 2) + b"\r\n"
        n -= k
    assert len(msg) == size
    return msg


@pytest.mark.sanitized
def test_login_memory(lab):
    """One login's sessions together may hold at most login-memory octets
    of message data: a message that would go beyond is refused with
    452 4.3.1 after its data (nothing is relayed); with the limit reached,
    DATA and BDAT are refused at once; when the other message is gone, the
    login can send again."""
    s = lab.sink()
    limit = 200 * 1024
    sp = lab.subproxy(s, limits={"message-size": "200k", "login-memory": "200k"})
    a, b = logged_in(sp.implicit_port, lab.certs.ca), logged_in(sp.implicit_port, lab.certs.ca)
    msg_a = message_of(limit, "all the login may hold")
    for c in (a, b):
        c.mail(ALICE)
        c.rcpt(RCPT, code=250)
    # a holds 150 KB, b's 60 KB would go beyond 200 KB
    a.bdat(msg_a[:150000]).check(250, "2.0.0")
    msg_b = message_of(60000, "one too many")
    b.bdat(msg_b, last=True).check(452, "4.3.1")
    # a holds exactly the limit: b may not even start a message
    a.bdat(msg_a[150000:]).check(250, "2.0.0")
    b.mail(ALICE)
    b.rcpt(RCPT, code=250)
    r = b.cmd("DATA")
    r.check(452, "4.3.1")
    assert "Too much message data of %s in transit" % ALICE in r.text, r
    b.bdat(b"hello", last=True).check(452, "4.3.1")
    assert s.messages() == [] and s.data_starts() == 0
    # a's message goes out; then b's fits
    a.bdat(b"", last=True).check(250, "2.0.0")
    b.data(dot_stuff(msg_b), code=250, enh="2.0.0")
    stored = s.messages()
    assert len(stored) == 2
    check_relayed(stored[0]["data"], msg_a, added_message_id=False, added_date=False)
    check_relayed(stored[1]["data"], msg_b, added_message_id=False, added_date=False)
    assert sp.wait_log(r"event=login-memory login=%s held=\d+ limit=%d" % (ALICE, limit))
    for c in (a, b):
        c.cmd("QUIT", 221)
