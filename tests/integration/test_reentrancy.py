"""
Re-entrancy attacks (issue 9, item 1): a step that fails or finishes at
once must never call back into the session from inside the call that
started it, and a session is freed only when no frame uses it any more.
Each reproducer of the review is played against the real daemon (marked
`sanitized`: they run against the ASan/UBSan build too): the exact
replies, nothing relayed, the daemon still up, a legitimate client still
served, and later MAILs work (no "Nested MAIL" from a leaked relay leg).
"""

import base64
import socket

import pytest

from helpers import (ALICE, RCPT, TIMEOUT, check_relayed, dot_stuff, logged_in, make_message,
                     nofile_limits, raw_starttls_client, set_nofile)
from test_dkim import roles


def read_until_closed(sock):
    """Everything the server sends until it closes (bounded by TIMEOUT)."""
    sock.settimeout(TIMEOUT)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
        assert len(data) < 1 << 20, "no end to the replies: %r" % data[:200]
    return data


def two_submissions(sp, sink, certs):
    """A legitimate client sends two messages in one session: both are
    relayed (a leaked relay transaction would answer 503 Nested MAIL)."""
    before = len(sink.messages())
    c = logged_in(sp.implicit_port, certs.ca)
    sent = []
    for i in range(2):
        msg = make_message(subject="after the attack %d" % i)
        c.mail(ALICE)
        c.rcpt(RCPT, code=250)
        c.data(dot_stuff(msg), code=250, enh="2.0.0")
        sent.append(msg)
    c.cmd("QUIT", 221)
    stored = sink.messages()[before:]
    assert len(stored) == 2, stored
    for got, msg in zip(stored, sent):
        check_relayed(got["data"], msg, added_message_id=False, added_date=False)


def mail_commands(sink, verbs=("MAIL", "RCPT", "DATA", "BDAT")):
    return [x for x in sink.commands() if x.upper().startswith(verbs)]


@pytest.mark.sanitized
def test_starttls_then_half_close(lab):
    """STARTTLS and a FIN in the same segment: the handshake fails at its
    first step.  That failure used to close and free the session inside
    cmd_starttls (heap-use-after-free, a pre-auth crash of front)."""
    s = lab.sink()
    sp = lab.subproxy(s)
    for pipelined in (False, True):
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", sp.starttls_port), timeout=TIMEOUT)
            assert sock.recv(512).startswith(b"220 ")
            if pipelined:
                sock.sendall(b"EHLO x.example\r\nSTARTTLS\r\n")
            else:
                sock.sendall(b"EHLO x.example\r\n")
                r = b""
                while not r.endswith(b"250 STARTTLS\r\n"):
                    chunk = sock.recv(4096)
                    assert chunk, r
                    r += chunk
                sock.sendall(b"STARTTLS\r\n")
            sock.shutdown(socket.SHUT_WR)
            got = read_until_closed(sock)
            sock.close()
            assert got.endswith(b"220 2.0.0 Ready to start TLS\r\n"), got
            assert got.count(b"220 2.0.0") == 1, got
    assert sp.alive()
    assert mail_commands(s) == []
    two_submissions(sp, s, lab.certs)


@pytest.mark.sanitized
@pytest.mark.parametrize("then", ["QUIT", "MAIL"])
def test_rcpt_after_relay_link_died(lab, then):
    """The relay leg timed out while idle after MAIL; RCPT then fails at
    once (451 4.4.2).  With QUIT in the same write, the failure used to run
    the rest of the input -- and close the session -- inside cmd_rcpt."""
    s = lab.sink()
    sp = lab.subproxy(s, limits={"relay-timeout": 1})
    sp.wait_relay_probe()
    c = logged_in(sp.implicit_port, lab.certs.ca)
    start = len(sp.lines)
    c.mail(ALICE)
    assert sp.wait_log(r"session=(?!probe)\w+ relay=sink state idle -> dead", timeout=15,
                       start=start), "the relay leg did not time out"
    if then == "QUIT":
        c.send("RCPT TO:<%s>\r\nQUIT\r\n" % RCPT)
        c.read_reply().check(451, "4.4.2")
        c.read_reply().check(221, "2.0.0")
        c.expect_closed()
    else:
        c.send("RCPT TO:<%s>\r\nMAIL FROM:<%s>\r\n" % (RCPT, ALICE))
        c.read_reply().check(451, "4.4.2")
        c.read_reply().check(250, "2.1.0")      # a new transaction, not "Nested MAIL"
        c.rcpt(RCPT, code=250)
        msg = make_message(subject="second transaction")
        c.data(dot_stuff(msg), code=250, enh="2.0.0")
        c.cmd("QUIT", 221)
    # only the second transaction's RCPT reached a relay
    assert len(mail_commands(s, ("RCPT",))) == (0 if then == "QUIT" else 1), s.commands()
    assert sp.alive()
    two_submissions(sp, s, lab.certs)


@pytest.mark.sanitized
def test_mail_without_a_descriptor_for_the_relay(lab):
    """MAIL when no socket can be made for the relay (front is out of
    descriptors: its limit is lowered to 0 while it runs, the way an
    exhausted process looks; every new descriptor fails with EMFILE).  The
    failure is known inside relay_txn_start; it used to complete into a
    session the nested call had freed, and to leak the relay transaction
    ("Nested MAIL" afterwards).  Now: 451 4.3.0, nothing sent anywhere, and
    the session goes on.  (connections = 0: no kept relay connection, so
    every transaction needs a new descriptor.)"""
    s = lab.sink()
    sp = lab.subproxy({"sink": s, "extra": {"connections": 0}},
                      server={"workers": 1})   # the one process that runs out
    sp.wait_relay_probe()
    front = roles(sp)["front"]
    c = logged_in(sp.implicit_port, lab.certs.ca)
    d = logged_in(sp.implicit_port, lab.certs.ca)
    sessions_before = len(s.sessions())
    soft = nofile_limits(front)[0]
    set_nofile(front, 0)
    try:
        c.mail(ALICE, code=451, enh="4.3.0")
        c.cmd("RCPT TO:<%s>" % RCPT, 503, "5.5.1")
        c.mail(ALICE, code=451, enh="4.3.0")     # not 503 Nested MAIL
        c.cmd("NOOP", 250, "2.0.0")
        d.send("MAIL FROM:<%s>\r\nQUIT\r\n" % ALICE)
        d.read_reply().check(451, "4.3.0")
        d.read_reply().check(221, "2.0.0")
        d.expect_closed()
    finally:
        set_nofile(front, soft)
    assert sp.wait_log(r"event=relay-socket-failed error=\"Too many open files\"", timeout=1)
    assert len(s.sessions()) == sessions_before, "a relay connection was made"
    # the same session, descriptors available again
    msg = make_message(subject="after EMFILE")
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(msg), code=250, enh="2.0.0")
    c.cmd("QUIT", 221)
    assert sp.alive()
    two_submissions(sp, s, lab.certs)
    assert len(s.messages()) == 3


@pytest.mark.sanitized
def test_pipelined_after_every_kind_of_step(lab):
    """QUIT pipelined behind every command that starts an asynchronous step
    (AUTH, MAIL, RCPT, DATA): the step finishes first, the session ends
    after its reply, and nothing is relayed for the open transaction."""
    s = lab.sink()
    sp = lab.subproxy(s)
    tok = base64.b64encode(b"\0alice@lab.test\0alice-secret").decode()
    c = raw_starttls_client(sp.starttls_port, lab.certs.ca)
    c.ehlo()
    c.starttls()
    c.ehlo()
    c.send("AUTH PLAIN %s\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\nQUIT\r\n" % (tok, ALICE, RCPT))
    c.read_reply().check(235, "2.7.0")
    c.read_reply().check(250, "2.1.0")
    c.read_reply().check(250)
    c.read_reply().check(354)
    # QUIT is message data now; the end of data is still owed
    c.send(b".\r\n")
    r = c.read_reply()
    assert r.code == 550 and r.enh == "5.6.0", r     # "QUIT" is no message (no From)
    c.cmd("QUIT", 221, "2.0.0")
    c.expect_closed()
    assert s.messages() == []
    assert sp.alive()
