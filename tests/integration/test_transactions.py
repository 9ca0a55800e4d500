"""
[limits] transactions (issue 14: 10,000 concurrent sessions held): an idle
session holds one descriptor, a mail transaction up to three (its client
connection, its relay connection, its message's memfd), so a front worker
has at most [limits] transactions in progress and the descriptor budget
counts those, not three per connection (test_descriptors.py).

- Beyond the bound, MAIL waits for its reply: nothing goes to the relay
  for it until a transaction of the worker ends (message relayed, RSET),
  then the oldest waiter's MAIL is sent; every message is relayed exactly
  once.  A client that leaves while its MAIL waits gives its place up, and
  nothing of it reaches the relay.  Seen by the gauges
  subproxy_transactions and subproxy_transactions_waiting, never by
  sleeping.
- A MAIL that waited [limits] timeout gets 452 4.3.1; nothing was relayed
  for it, and the client may try again.  The slot's holder waits for its
  signature meanwhile (the signer stopped), so that only the waiter's
  timeout can fire.
- Every way a transaction ends gives its slot back exactly once (a leak
  would make the next MAIL wait, a second give-back would let two hold
  one slot or stop front): RSET, QUIT, resets at every stage (after MAIL,
  RCPT, within DATA or a BDAT chunk, after the final dot while the signer
  is stopped), refusals (BDAT and DATA too large, the relay's 5xx), the
  relay dropping the message, MAIL RCPT DATA pipelined while waiting, a
  reload and a stop with a holder and a waiter.
"""

import os
import re
import signal
import socket
import struct

import pytest

from helpers import ALICE, RCPT, RawClient, dot_stuff, make_message
from opsutil import scrape, sigstop, val, wait_for
from test_dkim import roles
from test_metrics import start as start_with_metrics

LONG = 60


def session(sp, certs):
    c = RawClient(sp.implicit_port, certs.ca, timeout=LONG)
    c.greeting.check(220)
    return c.login()


def gauges(port):
    m = scrape(port)
    return val(m, "subproxy_transactions"), val(m, "subproxy_transactions_waiting")


def mails_seen(sink):
    return sum(1 for c in sink.commands() if c.upper().startswith("MAIL FROM"))


def subjects(sink):
    out = []
    for m in sink.messages():
        s = re.search(rb"\r\nSubject: ([^\r]*)\r\n", m["data"])
        out.append(s.group(1).decode() if s else None)
    return sorted(out)


def send_message(c, subject):
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(make_message(subject=subject)), 250, "2.0.0")


def test_mail_waits_for_a_transaction_to_end(lab, lab_certs):
    sink = lab.sink()
    sp, port = start_with_metrics(lab, sink, limits={"transactions": 2},
                                  server={"workers": 1})
    a, b = session(sp, lab_certs), session(sp, lab_certs)
    a.mail(ALICE)
    a.rcpt(RCPT, code=250)
    b.mail(ALICE)
    assert gauges(port) == (2, 0)
    # two more: their MAIL waits in line, unanswered, not sent to the relay
    c, d = session(sp, lab_certs), session(sp, lab_certs)
    c.send("MAIL FROM:<%s>\r\n" % ALICE)
    wait_for(lambda: gauges(port) == (2, 1), what="c in line")
    d.send("MAIL FROM:<%s>\r\n" % ALICE)
    wait_for(lambda: gauges(port) == (2, 2), what="d in line")
    # e leaves while in line: its place goes, nothing of it is sent
    e = session(sp, lab_certs)
    e.send("MAIL FROM:<%s>\r\n" % ALICE)
    wait_for(lambda: gauges(port) == (2, 3), what="e in line")
    e.sock.shutdown(socket.SHUT_WR)
    wait_for(lambda: gauges(port) == (2, 2), what="e gone from the line")
    assert sp.wait_log(r"event=drop .*reason=\"client closed connection while its MAIL "
                       r"waited for a transaction to end\"", timeout=5)
    e.close()
    assert c.pending(0.3) == b"" and d.pending(0.1) == b""
    assert mails_seen(sink) == 2
    assert sum(1 for ln in list(sp.lines) if " event=transaction-wait " in ln) == 3

    # a's message is relayed: c, the oldest in line, gets its MAIL answered
    a.data(dot_stuff(make_message(subject="txn-a")), 250, "2.0.0")
    c.read_reply().check(250, "2.1.0")
    assert d.pending(0.3) == b""
    assert gauges(port) == (2, 1)
    send_message(c, "txn-c")
    # b gives its slot back without a message: d's turn
    b.cmd("RSET", 250)
    d.read_reply().check(250, "2.1.0")
    send_message(d, "txn-d")
    for x in (a, b, c, d):
        x.cmd("QUIT", 221)
    wait_for(lambda: gauges(port) == (0, 0), what="no transaction left")
    # each message exactly once; nothing of b or e
    assert subjects(sink) == ["txn-a", "txn-c", "txn-d"]
    assert mails_seen(sink) == 4


def test_mail_wait_ends_at_the_idle_timeout(lab, lab_certs):
    sink = lab.sink()
    sp, port = start_with_metrics(lab, sink, limits={"transactions": 1, "timeout": 3},
                                  server={"workers": 1})
    signer = roles(sp)["signer"]
    a = session(sp, lab_certs)
    a.mail(ALICE)
    a.rcpt(RCPT, code=250)
    # a's message waits for its signature: a holds its slot, in a wait
    # that its own idle timeout does not end
    sigstop(signer)
    try:
        a.cmd("DATA", 354)
        a.send(dot_stuff(make_message(subject="txn-holder")))
        b = session(sp, lab_certs)
        b.send("MAIL FROM:<%s>\r\n" % ALICE)
        r = b.read_reply()
        assert r.raw == (b"452 4.3.1 Too many messages in progress on this server, none "
                         b"ended within 3 seconds; try again later\r\n"), r.raw
        assert sp.wait_log(r"event=transaction-wait-timeout from=<%s>" % re.escape(ALICE),
                           timeout=5)
        assert gauges(port) == (1, 0)
        b.cmd("QUIT", 221)
        assert mails_seen(sink) == 1
    finally:
        os.kill(signer, signal.SIGCONT)
    a.read_reply().check(250, "2.0.0")
    a.cmd("QUIT", 221)
    # the slot is free: a new session's message goes through
    c = session(sp, lab_certs)
    c.mail(ALICE)
    send_message(c, "txn-after")
    c.cmd("QUIT", 221)
    assert subjects(sink) == ["txn-after", "txn-holder"]
    assert mails_seen(sink) == 2


def reset(c):
    """Close with a TCP reset (no FIN, no TLS close_notify)."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def holder_and_waiter(sp, certs, port):
    """h holds the only slot (MAIL answered), w's MAIL waits for it."""
    h = session(sp, certs)
    h.mail(ALICE)
    w = session(sp, certs)
    w.send("MAIL FROM:<%s>\r\n" % ALICE)
    wait_for(lambda: gauges(port) == (1, 1), what="w in line")
    return h, w


def rcpt_data(h, payload):
    h.rcpt(RCPT, code=250)
    h.cmd("DATA", 354)
    h.send(payload)


@pytest.mark.sanitized
def test_every_end_gives_the_slot_back_once(lab, lab_certs):
    sink = lab.sink()
    sp, port = start_with_metrics(lab, sink, limits={"transactions": 1,
                                                     "message-size": 100000},
                                  server={"workers": 1, "shutdown-timeout": 30})
    signer = roles(sp)["signer"]
    big = make_message(subject="big", body=("y" * 70 + "\r\n") * 2000)

    def n_read_drops():
        return sum(1 for ln in list(sp.lines) if " event=drop " in ln)

    def signer_stopped_reset(h):
        sigstop(signer)
        try:
            rcpt_data(h, dot_stuff(make_message(subject="reset-after-dot")))
            wait_for(lambda: val(scrape(port), "subproxy_signer_messages") == 1,
                     what="the message with the signer")
            drops = n_read_drops()
            reset(h)
            # the signer goes on only once front has seen the reset: with
            # both in one loop pass the signer's answer could come first,
            # and front, not knowing yet, relays the message of a gone client
            wait_for(lambda: n_read_drops() > drops, what="front saw the reset")
        finally:
            os.kill(signer, signal.SIGCONT)

    def relay_refuses(h):
        sink.set_faults(final="554 5.7.1 refused", once=True)
        h.rcpt(RCPT, code=250)
        h.data(dot_stuff(make_message(subject="refused")), 554)

    def relay_drops(h):
        sink.set_faults(drop_at={"bdat", "data"}, once=True)
        h.rcpt(RCPT, code=250)
        assert h.data(dot_stuff(make_message(subject="dropped"))).code // 100 == 4

    ends = {
        "rset": lambda h: h.cmd("RSET", 250),
        "quit after rcpt": lambda h: (h.rcpt(RCPT, code=250), h.cmd("QUIT", 221)),
        "reset after mail": reset,
        "reset after rcpt": lambda h: (h.rcpt(RCPT, code=250), reset(h)),
        "reset in data": lambda h: (rcpt_data(h, big[:5000]), reset(h)),
        "reset in a bdat chunk": lambda h: (
            h.rcpt(RCPT, code=250), h.bdat(make_message(subject="chunk")[:60], code=250),
            h.send(b"BDAT 1000\r\nabc"), reset(h)),
        "bdat too large, rset": lambda h: (
            h.rcpt(RCPT, code=250), h.bdat(big, code=552), h.cmd("RSET", 250)),
        "data too large": lambda h: (h.rcpt(RCPT, code=250), h.data(dot_stuff(big), 552)),
        "reset after the dot, signer stopped": signer_stopped_reset,
        "relay refuses the message": relay_refuses,
        "relay drops the message": relay_drops,
    }
    for what, end in ends.items():
        h, w = holder_and_waiter(sp, lab_certs, port)
        end(h)
        w.read_reply().check(250, "2.1.0")
        assert gauges(port) == (1, 0), what
        w.cmd("QUIT", 221)
        wait_for(lambda: gauges(port) == (0, 0), what="all free after: " + what)
    sink.set_faults()
    # the relay refuses MAIL: nothing held
    sink.set_faults(mail="451 4.3.0 busy", once=True)
    h = session(sp, lab_certs)
    h.mail(ALICE, code=451, enh="4.3.0")
    assert gauges(port) == (0, 0)
    h.cmd("QUIT", 221)
    sink.set_faults()

    # a whole transaction pipelined behind the waiting MAIL: held back, in
    # order, once the slot is granted
    h, w = holder_and_waiter(sp, lab_certs, port)
    w.send(("RCPT TO:<%s>\r\nDATA\r\n" % RCPT).encode() +
           dot_stuff(make_message(subject="pipelined")) + b"QUIT\r\n")
    assert w.pending(0.3) == b""
    h.cmd("RSET", 250)
    for code in (250, 250, 354, 250, 221):
        w.read_reply().check(code)
    h.cmd("QUIT", 221)
    wait_for(lambda: gauges(port) == (0, 0), what="all free after pipelining")

    # a reload: the old worker's holder finishes, then its waiter
    old = gauges(port)
    h, w = holder_and_waiter(sp, lab_certs, port)
    sp.proc.send_signal(signal.SIGHUP)
    assert sp.wait_log(r"event=reloaded generation=2 ", timeout=LONG)
    send_message(h, "old-holder")
    w.read_reply().check(250, "2.1.0")
    send_message(w, "old-waiter")
    for c in (h, w):
        c.cmd("QUIT", 221)
    wait_for(lambda: gauges(port) == old, what="all free after the reload")

    # a stop: the waiter gets 421 at once, the holder finishes
    h, w = holder_and_waiter(sp, lab_certs, port)
    sp.proc.send_signal(signal.SIGTERM)
    w.read_reply().check(421, "4.3.2")
    send_message(h, "at-stop")
    h.read_reply().check(421, "4.3.2")
    assert sp.expect_exit(0) == 0
    assert sorted(subjects(sink)) == ["at-stop", "old-holder", "old-waiter", "pipelined"]
