"""
test_shutdown.py -- graceful stop on SIGTERM: no new connections, idle
sessions get 421 4.3.2 at once, a transaction under way finishes (relayed
exactly once: 250, then 421), and one that does not finish within
[server] shutdown-timeout is cut without an acknowledgement and without
reaching the relay.
"""

import signal
import socket
import time

from helpers import ALICE, RCPT, ConnectionClosed, RawClient, make_message


def begin_data(sp, ca):
    """A logged-in client inside DATA (354 seen)."""
    c = RawClient(sp.implicit_port, ca)
    c.login()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.cmd("DATA", 354)
    return c


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def test_transaction_in_flight_finishes_idle_sessions_go(lab, make_sink, lab_certs):
    sink = make_sink()
    sink.set_faults(delay={"final": 1.0})     # a slow relay
    sp = lab.subproxy(sink, server={"shutdown-timeout": "30"})
    ca = lab_certs.ca
    msg = make_message(body="first half\r\n" * 50 + "second half\r\n" * 50)
    half = len(msg) // 2
    busy = begin_data(sp, ca)
    busy.send(msg[:half])
    # idle sessions in different states: logged in between commands, in
    # the middle of an AUTH exchange, not yet greeted (STARTTLS port)
    idle = RawClient(sp.implicit_port, ca)
    idle.login()
    auth = RawClient(sp.implicit_port, ca)
    auth.ehlo()
    auth.cmd("AUTH PLAIN", 334)
    plain = RawClient(sp.starttls_port, ca, implicit=False)
    start = len(sp.lines)
    sp.signal(signal.SIGTERM)
    assert sp.wait_log(r"front.*event=shutdown in-flight=1 timeout=30s", start=start)
    for c in (idle, auth, plain):
        r = c.read_reply()
        assert (r.code, r.enh) == (421, "4.3.2"), r
        assert "shutting down" in r.text
        c.expect_closed()
    # nobody new gets in
    assert refused(sp.implicit_port) and refused(sp.starttls_port)
    # the transaction in flight completes: 250 from the relay, then 421
    busy.send(msg[half:] + b".\r\n")
    r = busy.read_reply()
    assert (r.code, r.enh) == (250, "2.0.0"), r
    r = busy.read_reply()
    assert (r.code, r.enh) == (421, "4.3.2"), r
    busy.expect_closed()
    sp.wait_exit()
    stored = sink.messages()
    assert len(stored) == 1, "relayed %d times" % len(stored)
    assert stored[0]["data"].endswith(msg)


def test_transaction_too_slow_is_cut_without_ack(lab, make_sink, lab_certs):
    sink = make_sink()
    sp = lab.subproxy(sink, server={"shutdown-timeout": "2"})
    c = begin_data(sp, lab_certs.ca)
    msg = make_message()
    c.send(msg[:len(msg) // 2])
    start = len(sp.lines)
    t0 = time.monotonic()
    sp.signal(signal.SIGTERM)
    # the client never finishes: at the timeout it gets 421, never 250
    replies = []
    try:
        while True:
            replies.append(c.read_reply())
    except ConnectionClosed:
        pass
    assert [(r.code, r.enh) for r in replies] == [(421, "4.3.2")], replies
    assert time.monotonic() - t0 >= 1.5
    assert sp.wait_log(r"event=shutdown-cut .*state=data from=<%s>: transaction not "
                       r"acknowledged" % ALICE, start=start)
    sp.wait_exit()
    assert sink.messages() == []
    # the relay leg never saw the end of the data
    assert not any(s["data_completed"] for s in sink.sessions())


def test_stop_waits_for_the_relay(lab, make_sink, lab_certs):
    """SIGTERM while the relay is deciding about a complete message: the
    answer is waited for and passed on."""
    sink = make_sink()
    sink.set_faults(delay={"final": 2.0})
    sp = lab.subproxy(sink, server={"shutdown-timeout": "20"})
    c = begin_data(sp, lab_certs.ca)
    c.send(make_message() + b".\r\n")
    sink.wait_for(lambda s: any(x["data_completed"] for x in s.sessions()), timeout=10)
    sp.signal(signal.SIGTERM)
    r = c.read_reply()
    assert (r.code, r.enh) == (250, "2.0.0"), r
    r = c.read_reply()
    assert (r.code, r.enh) == (421, "4.3.2"), r
    sp.wait_exit()
    assert len(sink.messages()) == 1


def test_stop_without_sessions_is_prompt(lab, make_sink):
    sp = lab.subproxy(make_sink())
    t0 = time.monotonic()
    sp.signal(signal.SIGTERM)
    sp.wait_exit()
    assert time.monotonic() - t0 < 10
