"""
test_input_max.py -- front reads 16 KiB ahead outside DATA and BDAT
(conn_set_input_max()); attacks at the edge (attacker session h48,
2026-12-04): pipelined BDAT chunks larger than the read-ahead with the
next transaction in the same write, a 16 KiB line without LF, many
pipelined commands.  No stall, no lost or extra bytes.
"""

import select
import ssl
import time

import pytest

from helpers import ALICE, ALICE_PW, RCPT, RawClient, make_message
from opsutil import wait_for

pytestmark = pytest.mark.sanitized


@pytest.fixture(scope="module")
def env(module_lab):
    s = module_lab.sink()
    sp = module_lab.subproxy(s, limits={"message-size": 3 * 1024 * 1024})
    sp.wait_relay_probe()
    return module_lab, s, sp


def send_pumped(c, data, limit=60):
    """Send data while reading what comes back into c.buf, in this one
    thread: a client that does not read is stopped by front's bounded
    output, and an SSL socket must not be read and written by two threads
    at once (OpenSSL's SSL object is not thread-safe: a second thread
    reading made the client break its own TLS stream, 2026-12-04)."""
    sock, view, end = c.sock, memoryview(data), time.monotonic() + limit
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while view:
            assert time.monotonic() < end, "could not send within %ss" % limit
            select.select([sock], [sock], [], 1)
            try:
                c.buf += sock.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass
            try:
                view = view[sock.send(view[:16384]):]
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass
    finally:
        sock.settimeout(timeout)


def session(env):
    lab, _, sp = env
    c = RawClient(sp.implicit_port, lab.certs.ca, implicit=True)
    c.greeting.check(220)
    return c.login(ALICE, ALICE_PW)


def txn(msg):
    return (b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n" %
            (ALICE.encode(), RCPT.encode(), len(msg)) + msg)


def test_pipelined_bdat_transactions_larger_than_the_read_ahead(env):
    env[1].reset()
    msgs = [make_message(subject="big %d" % i, body=("x" * 70 + "\r\n") * (600 + i * 7))
            for i in range(3)]
    c = session(env)
    c.sock.settimeout(60)
    send_pumped(c, b"".join(txn(m) for m in msgs) + b"NOOP\r\n")
    for _ in msgs:
        c.read_reply().check(250)
        c.read_reply().check(250)
        c.read_reply().check(250)
    c.read_reply().check(250, "2.0.0")
    c.cmd("QUIT", 221)
    wait_for(lambda: len(env[1].messages()) == 3, timeout=30, what="three messages")
    got = sorted(m["data"] for m in env[1].messages())
    # each message whole, in its own transaction (signed: headers added)
    for m in msgs:
        body = m.split(b"\r\n\r\n", 1)[1]
        assert sum(g.endswith(b"\r\n\r\n" + body) for g in got) == 1


@pytest.mark.parametrize("n", [16383, 16384, 16385, 40000])
def test_long_line_without_lf(env, n):
    c = session(env)
    c.sock.settimeout(60)
    c.send(b"NOOP " + b"a" * n)
    c.read_reply().check(500, "5.5.2")
    c.send(b"\r\nNOOP\r\n")
    c.read_reply().check(250, "2.0.0")
    assert c.pending() == b""
    c.cmd("QUIT", 221)


def test_auth_line_at_the_mechanism_edge_then_commands(env):
    lab, _, sp = env
    c = RawClient(sp.implicit_port, lab.certs.ca, implicit=True)
    c.greeting.check(220)
    c.cmd("EHLO x.test", 250)
    c.sock.settimeout(60)
    line = b"AUTH PLAIN " + b"A" * (12288 - 13) + b"\r\n"
    send_pumped(c, line + b"NOOP\r\n" * 3000)
    r = c.read_reply()
    assert r.code in (500, 501, 535), r
    for _ in range(3000):
        c.read_reply().check(250, "2.0.0")
    assert c.pending() == b""


def test_many_pipelined_commands(env):
    c = session(env)
    c.sock.settimeout(60)
    send_pumped(c, b"RSET\r\n" * 20000 + b"NOOP\r\n")
    for _ in range(20000):
        c.read_reply().check(250)
    c.read_reply().check(250, "2.0.0")
    c.cmd("QUIT", 221)
