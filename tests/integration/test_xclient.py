"""
XCLIENT to a real Postfix relay (Debian's postfix, a private instance:
tests/lab/peers.py) with smtpd_authorized_xclient_hosts = 127.0.0.1: Postfix
logs, and writes in its Received header, the original client's address and
login; only that login lets it relay (the address XCLIENT sets is not in its
mynetworks).  A relay without XCLIENT (the lab sink) still relays, and the
warning is logged once.
"""

import os
import re
import socket

import pytest

from helpers import ALICE, RCPT, RawClient, dot_stuff, make_message
from opsutil import fronts
from test_limits import auth_file
import peers

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a private Postfix runs as root")


@pytest.fixture
def postfix(lab):
    sink = lab.sink()
    pf = peers.Postfix(sink.port, lab.certs.relay, lab.certs.relay_key).start()
    yield pf, sink
    pf.stop()


def submit(sp, lab, subject, source="127.0.0.2", implicit=True):
    port = sp.implicit_port if implicit else sp.starttls_port
    c = RawClient(port, lab.certs.ca, implicit=implicit, source=source)
    c.greeting.check(220)
    c.login()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    r = c.data(dot_stuff(make_message(subject=subject)))
    c.cmd("QUIT", 221)
    return r


def postfix_relay(pf, lab, xclient="yes"):
    return {"name": "postfix", "port": pf.port, "tls": "starttls",
            "pin_cert": lab.certs.relay, "extra": {"xclient": xclient}}


def expect_relay_denied(sp, lab):
    """Postfix accepts MAIL but, seeing no login, refuses the recipient."""
    c = RawClient(sp.implicit_port, lab.certs.ca, source="127.0.0.2")
    c.greeting.check(220)
    c.login()
    c.mail(ALICE)
    r = c.cmd("RCPT TO:<%s>" % RCPT)
    assert r.code == 554 and "Access denied" in r.text, r
    c.cmd("QUIT", 221)


def test_postfix_sees_client_and_login(lab, postfix):
    pf, sink = postfix
    sp = lab.subproxy(postfix_relay(pf, lab))
    r = submit(sp, lab, "xclient to postfix")
    r.check(250, "2.0.0")
    # Postfix's own log: the client and the login came with XCLIENT
    line = pf.wait_log(r"smtpd\[\d+\]: \w+: client=unknown\[127\.0\.0\.2\]:?\d*, "
                       r"sasl_method=XCLIENT, sasl_username=alice@lab\.test")
    assert line, pf.log_text()
    assert sink.wait_for(lambda s: len(s.messages()) == 1, timeout=20), pf.log_text()
    data = sink.messages()[0]["data"]
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    rcvd = re.findall(r"^Received: .*?(?=^\S)", head + "\r\nX", re.S | re.M)
    by_postfix = [x for x in rcvd if "by relay.lab.test (Postfix)" in x]
    assert len(by_postfix) == 1, head
    pf_rcvd = " ".join(by_postfix[0].split())
    assert "from client.lab.test (unknown [127.0.0.2])" in pf_rcvd, pf_rcvd
    assert "(Authenticated sender: alice@lab.test)" in pf_rcvd, pf_rcvd
    assert "with ESMTPSA" in pf_rcvd, pf_rcvd
    # subproxy's Received is there too, below Postfix's, naming the same client
    assert any("([127.0.0.2]) by mail.lab.test (subproxy)" in " ".join(x.split())
               for x in rcvd), head
    assert sp.wait_log(r"relay=postfix xclient sent \(1 command\)")


def test_postfix_without_xclient_setting(lab, postfix):
    """xclient = no: Postfix sees subproxy, and refuses to relay (no login)."""
    pf, sink = postfix
    sp = lab.subproxy(postfix_relay(pf, lab, xclient="no"))
    expect_relay_denied(sp, lab)
    assert pf.wait_log(r"connect from localhost\[127\.0\.0\.1\]")
    assert "XCLIENT" not in pf.log_text()


@pytest.mark.sanitized
def test_postfix_not_authorising_us(lab):
    """A Postfix whose smtpd_authorized_xclient_hosts does not name us does
    not offer XCLIENT: subproxy relays as before (Postfix then applies its
    own policy: no login, no relaying) and says why in its log."""
    sink = lab.sink()
    pf = peers.Postfix(sink.port, lab.certs.relay, lab.certs.relay_key,
                       xclient_hosts="127.0.0.9").start()
    try:
        sp = lab.subproxy(postfix_relay(pf, lab))
        expect_relay_denied(sp, lab)
        assert sp.wait_log(r"relay=postfix xclient = yes, but the relay does not offer XCLIENT")
        assert "sasl_method=XCLIENT" not in pf.log_text()
    finally:
        pf.stop()


def taken_port_first(monkeypatch, calls):
    """A port another process listens on (as a test running beside this one
    may have been given the same free port) is what peers.free_port()
    returns for its first `calls` calls; then free ports again.  Returns
    (that port, its socket): close it."""
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(5)
    taken = other.getsockname()[1]
    real, n = peers.free_port, [0]

    def free_port():
        n[0] += 1
        return taken if n[0] <= calls else real()
    monkeypatch.setattr(peers, "free_port", free_port)
    return taken, other


def test_postfix_port_taken_meanwhile(lab, monkeypatch):
    """The port chosen for Postfix is taken by another process before master
    binds it: master exits, and start() must neither take the other
    listener for Postfix (the flake of test_postfix_not_authorising_us:
    start() returned, subproxy's relay connections were refused, MAIL got
    451 4.4.0) nor give up: it starts master on another port."""
    taken, other = taken_port_first(monkeypatch, 2)   # postfix check, 1st master
    try:
        sink = lab.sink()
        pf = peers.Postfix(sink.port, lab.certs.relay, lab.certs.relay_key).start()
        try:
            assert pf.port != taken and pf.proc.poll() is None, pf.report()
            sp = lab.subproxy(postfix_relay(pf, lab))
            submit(sp, lab, "port taken meanwhile").check(250, "2.0.0")
        finally:
            pf.stop()
    finally:
        other.close()


def test_relay_without_xclient_warns_once(lab):
    s = lab.sink()
    sp = lab.subproxy({"sink": s, "extra": {"xclient": "yes"}})
    for i in range(2):
        submit(sp, lab, "no xclient %d" % i, implicit=bool(i)).check(250, "2.0.0")
    assert len(s.messages()) == 2
    assert not any(c.upper().startswith("XCLIENT") for c in s.commands())
    warnings = [ln for ln in sp.lines if "does not offer XCLIENT" in ln]
    # once per front worker that relayed (each keeps its own note)
    pids = [re.search(r"front\[(\d+)\]", ln).group(1) for ln in warnings]
    assert 1 <= len(warnings) <= len(fronts(sp.proc.pid)), warnings
    assert len(set(pids)) == len(pids), warnings


def test_xclient_only_offered_attributes(lab):
    """A relay naming ADDR and LOGIN only gets those two, xtext-encoded, and
    then a new EHLO (with subproxy's name: HELO was not named)."""
    s = lab.sink(xclient="ADDR LOGIN")
    sp = lab.subproxy({"sink": s, "extra": {"xclient": "yes"}})
    submit(sp, lab, "sink with xclient", source="127.0.0.3").check(250, "2.0.0")
    cmds = s.commands()
    i = cmds.index("XCLIENT LOGIN=alice@lab.test ADDR=127.0.0.3")
    assert cmds[i + 1].startswith("EHLO ") and cmds[i + 2].startswith("MAIL FROM:"), cmds
    assert len(s.messages()) == 1


@pytest.mark.sanitized
def test_xclient_refused(lab):
    """A relay that offers XCLIENT and then refuses it has failed: 451 4.7.0
    at MAIL, and nothing goes to it without the client's identity."""
    s = lab.sink(xclient="ADDR LOGIN HELO")
    s.set_faults(xclient="550 5.7.0 Not authorized")
    sp = lab.subproxy({"sink": s, "extra": {"xclient": "yes"}})
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.login()
    c.cmd("MAIL FROM:<%s>" % ALICE).check(451, "4.7.0")
    c.cmd("QUIT", 221)
    assert not any(x.upper().startswith("MAIL") for x in s.commands()), s.commands()
    assert sp.wait_log(r"XCLIENT refused with 550")


def test_xclient_after_relay_auth(lab, tmp_path):
    """With AUTH to the relay, XCLIENT follows AUTH, then EHLO, then MAIL."""
    s = lab.sink(xclient="ADDR LOGIN HELO", auth=("relay-user", "relay secret"))
    path = auth_file(tmp_path, "relay-user:relay secret\n")
    sp = lab.subproxy({"sink": s, "extra": {"xclient": "yes", "auth-file": path}})
    submit(sp, lab, "auth then xclient", source="127.0.0.4").check(250, "2.0.0")
    verbs = [c.split(" ", 1)[0].upper() for c in s.commands()]
    i = verbs.index("AUTH")
    assert verbs[i:i + 4] == ["AUTH", "XCLIENT", "EHLO", "MAIL"], s.commands()
    assert "XCLIENT HELO=client.lab.test LOGIN=alice@lab.test ADDR=127.0.0.4" in s.commands()
    # EHLO after XCLIENT carries the client's name (HELO was named)
    assert s.commands()[s.commands().index(
        "XCLIENT HELO=client.lab.test LOGIN=alice@lab.test ADDR=127.0.0.4") + 1] == \
        "EHLO client.lab.test"
