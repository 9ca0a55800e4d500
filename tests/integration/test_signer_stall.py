"""
front never waits for the signer.  While the signer is stopped (SIGSTOP) and
a submission waits for its signature, another session is served (EHLO,
STARTTLS, AUTH, MAIL, RCPT); the waiting transaction gets 451 4.3.0 when its
signing deadline ([limits] relay-timeout) passes and nothing of it reaches
the relay; after SIGCONT the late signature is dropped and the service works.
"""

import os
import signal

from helpers import ALICE, RCPT, RawClient, dot_stuff, make_message, raw_starttls_client
from opsutil import sigstop
from test_dkim import roles

DEADLINE = 4        # [limits] relay-timeout: the signing deadline, seconds


def test_stopped_signer_does_not_stop_front(lab):
    s = lab.sink()
    sp = lab.subproxy(s, limits={"relay-timeout": DEADLINE})
    assert sp.wait_log(r"relay probe", timeout=10)
    signer = roles(sp)["signer"]
    a = RawClient(sp.implicit_port, lab.certs.ca)
    a.greeting.check(220)
    a.login()
    a.mail(ALICE)
    a.rcpt(RCPT, code=250)
    a.cmd("DATA", 354)
    sigstop(signer)
    try:
        a.send(dot_stuff(make_message(subject="stalled")))
        # the signer cannot answer: every reply b gets comes from a loop
        # that does not wait for it
        b = raw_starttls_client(sp.starttls_port, lab.certs.ca)
        b.greeting.check(220)
        b.login()
        b.mail(ALICE)
        b.rcpt(RCPT, code=250)
        b.cmd("RSET", 250)
        b.cmd("NOOP", 250)
        # a's deadline passes: 451 4.3.0, said by front, not the relay
        r = a.read_reply()
        r.check(451, "4.3.0")
        assert sp.wait_log(r"event=signer-timeout id=\d+ after=%dms" % (DEADLINE * 1000),
                           timeout=5)
        assert sp.wait_log(r"event=message-rejected stage=dkim result=signer-timeout",
                           timeout=5)
    finally:
        os.kill(signer, signal.SIGCONT)
    # the signature that comes now is nobody's
    assert sp.wait_log(r"event=signer-reply-dropped", timeout=10)
    assert sp.alive()
    # the same session goes on, and the next message is signed and relayed
    a.mail(ALICE)
    a.rcpt(RCPT, code=250)
    a.data(dot_stuff(make_message(subject="after")), code=250)
    a.cmd("QUIT", 221)
    b.cmd("QUIT", 221)
    msgs = s.messages()
    assert len(msgs) == 1, msgs
    assert b"Subject: after" in msgs[0]["data"]
    assert b"DKIM-Signature:" in msgs[0]["data"]
    assert s.data_starts() == 1 and s.data_completions() == 1
