"""
Messages wait in line for the signer instead of failing (issue 14, item 2's
principle; src/signer_client.h).  One front worker, the signer stopped
(SIGSTOP): sessions reach the end of their message until the signer's
socket and front's queue (SIGNER_QUEUE_MAX, each request with its memfd)
are full and more wait in line without a memfd -- seen by the gauges
subproxy_signer_messages (every message awaiting its signature) and
subproxy_signer_waiting_messages (those in line), never by sleeping.  The
signing deadline ([limits] relay-timeout) is set long enough for the scene,
so that it bounds the test and decides nothing.

- SIGCONT: every message gets 250 and is relayed exactly once, none 451;
  clients that closed (FIN, reset) while their message was in line still
  have it delivered once (the transaction finishes, test_client_close.py).
  A reset ends the session at once, and its request, cancelled in line, is
  never sent nor relayed.
- SIGTERM instead, with a short shutdown-timeout: every transaction in
  flight -- sent, queued or in line -- is cut (421 4.3.2, nothing
  relayed): the cancel path, under ASan too.
- the signer killed with a line: 451 4.3.0 or 421 4.3.2, never 250,
  nothing relayed, the service stops; meanwhile front held at most
  SIGNER_QUEUE_MAX message copies for the signer (those in line: none).
- the front worker killed with a line: nothing of its clients relayed; its
  replacement drops the late answers and signs its own messages.
- SIGHUP with a line: the old generation drains, every message relayed once.

The signer's own faults (dead, broken frame, timeout) still fail closed
with 451 4.3.0 and nothing relayed: test_dkim.py, test_signer_stall.py.
"""

import os
import re
import signal
import socket
import struct
import threading

import pytest

from helpers import ALICE, RCPT, RawClient, dot_stuff, make_message
from opsutil import scrape, sigstop, val, wait_for
from test_dkim import roles
from test_metrics import start as start_with_metrics

BATCH = 50          # sessions started at once
MAX_SESSIONS = 1000  # bound: the socket holds a few hundred requests
IN_LINE = 20        # requests in line before the scene is set
CLOSERS = 6         # clients that close while in line (half FIN, half reset)
LONG = 300          # seconds: the signing deadline and every client read


class Submitter:
    """One session: login, one message, then (unless it is a closer) its
    final reply.  `sent` is set once the end of data is written (or the
    session failed before)."""

    def __init__(self, port, ca, i, closer=False):
        self.port, self.ca, self.i, self.closer = port, ca, i, closer
        self.client = self.reply = self.error = None
        self.reset = False
        self.sent = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            c = self.client = RawClient(self.port, self.ca, timeout=LONG)
            c.login()
            c.mail(ALICE)
            c.rcpt(RCPT, code=250)
            c.cmd("DATA", 354)
            c.send(dot_stuff(make_message(subject="line-%d" % self.i)))
            self.sent.set()
            if not self.closer:
                self.reply = c.read_reply()
                if self.reply.code == 250:
                    c.cmd("QUIT", 221)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = repr(e)
        finally:
            self.sent.set()

    def close(self, reset):
        """Close while the message waits: a FIN, or a reset (SO_LINGER 0)."""
        self.reset = reset
        if reset:
            self.client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
        self.client.close()


def gauges(port):
    m = scrape(port)
    return val(m, "subproxy_signer_messages"), val(m, "subproxy_signer_waiting_messages")


def all_waiting(port, subs):
    """Every session wrote its end of data and front holds its request."""
    for s in subs:
        assert s.sent.wait(LONG), "session %d never reached the end of data" % s.i
        assert s.error is None, "session %d: %s" % (s.i, s.error)
    wait_for(lambda: gauges(port)[0] == len(subs), timeout=60,
             what="%d messages waiting for the signer" % len(subs))


def set_scene(lab, sink, **server):
    """A daemon with one worker and its signer stopped, more messages than
    its socket and queue hold waiting for it, and CLOSERS clients closed
    while in line.  Returns (daemon, port, signer, submitters)."""
    sp, port = start_with_metrics(lab, sink, server=dict(workers=1, **server),
                                  limits={"connections": 1200, "connections-per-ip": 1200,
                                          "relay-timeout": LONG})
    sp.wait_relay_probe()
    # alice's first login runs Argon2id; the others then find the auth cache
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.login()
    c.cmd("QUIT", 221)
    signer = roles(sp)["signer"]
    sigstop(signer)
    subs = []
    while gauges(port)[1] < IN_LINE:
        assert len(subs) < MAX_SESSIONS, "no line formed: %r" % (gauges(port),)
        subs += [Submitter(sp.implicit_port, lab.certs.ca, len(subs) + k)
                 for k in range(BATCH)]
        all_waiting(port, subs)
    # these are in line behind the others: they close now
    start = len(sp.lines)
    closers = [Submitter(sp.implicit_port, lab.certs.ca, len(subs) + k, closer=True)
               for k in range(CLOSERS)]
    subs += closers
    all_waiting(port, subs)
    assert gauges(port)[1] >= IN_LINE + CLOSERS
    for k, s in enumerate(closers):
        s.close(reset=k % 2 == 1)
    # front saw each close while the message waited: a FIN ends the session
    # after the transaction, a reset at once (its request is cancelled in line)
    wait_for(lambda: logged(sp, r"event=client-hangup .*state=wait in-transaction=1", start) ==
             CLOSERS // 2 and logged(sp, r"event=drop .*reason=\"read: Connection reset",
                                     start) == CLOSERS // 2,
             timeout=30, what="%d closes seen" % CLOSERS)
    assert gauges(port) == (len(subs) - CLOSERS // 2, gauges(port)[1])
    return sp, port, signer, subs


def all_relayed_once(sink, subs):
    """Every session got 250 (but the closers) and every message but those
    reset (the odd closers) is relayed exactly once."""
    for s in subs:
        s.thread.join(LONG)
        assert not s.thread.is_alive(), "session %d still waits" % s.i
        assert s.error is None, "session %d: %s" % (s.i, s.error)
        if not s.closer:
            assert (s.reply.code, s.reply.enh) == (250, "2.0.0"), (s.i, s.reply)
    want = sorted("line-%d" % s.i for s in subs if not s.reset)
    # the sink counts a completed transfer before it stores the message, and
    # the FIN closers wait for no reply: wait until every one is stored
    wait_for(lambda: len(sink.messages()) == len(want), timeout=60,
             what="every message relayed")
    assert sink.data_completions() == len(want)
    got = sorted(m["data"].split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()
                 for m in sink.messages())
    assert got == want, "lost or duplicated"


def all_answered(subs, replies):
    """Every session ended; each but the closers got one of replies
    [(code, enh)]."""
    for s in subs:
        s.thread.join(LONG)
        assert not s.thread.is_alive(), "session %d still waits" % s.i
        if not s.closer:
            assert s.error is None, "session %d: %s" % (s.i, s.error)
            assert (s.reply.code, s.reply.enh) in replies, (s.i, s.reply)


def logged(sp, pattern, start):
    rx = re.compile(pattern)
    return sum(1 for ln in list(sp.lines)[start:] if rx.search(ln))


def test_messages_wait_in_line_for_the_signer(lab, make_sink):
    sink = make_sink()
    sp, port, signer, subs = set_scene(lab, sink)
    assert sp.alive()
    os.kill(signer, signal.SIGCONT)
    all_relayed_once(sink, subs)
    assert not any("stage=dkim" in ln for ln in sp.lines), \
        [ln for ln in sp.lines if "stage=dkim" in ln][:3]
    wait_for(lambda: gauges(port) == (0, 0), what="no message waits for the signer")
    assert sp.alive()


@pytest.mark.sanitized
def test_cut_while_in_line(lab, make_sink):
    """A stop that cuts them: every request is cancelled wherever it waits
    (sent, queued, in line), no callback comes after, nothing is relayed."""
    sink = make_sink()
    sp, port, signer, subs = set_scene(lab, sink, **{"shutdown-timeout": "2"})
    start = len(sp.lines)
    sp.signal(signal.SIGTERM)
    try:
        # the sessions reset before are gone already
        live = [s for s in subs if not s.reset]
        wait_for(lambda: logged(sp, r"event=shutdown-cut .*state=wait", start) == len(live),
                 timeout=60, what="every transaction cut")
    finally:
        # let the signer see front's sockets close, and exit
        os.kill(signer, signal.SIGCONT)
    all_answered(subs, [(421, "4.3.2")])
    sp.wait_exit()
    assert sink.messages() == []
    assert not any(s["data_completed"] for s in sink.sessions())


def signer_memfds(pid):
    """front's descriptors that are messages made for the signer."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("/memfd:subproxy-sign"):
                n += 1
        except OSError:
            pass            # closed meanwhile
    return n


@pytest.mark.sanitized
def test_signer_dies_with_a_line(lab, make_sink):
    """The signer killed while messages wait for it in its socket, in
    front's queue and in line: each waiting session gets 451 4.3.0 (the
    signer's socket and queue) or 421 4.3.2 (the stop that follows cuts the
    ones still in line), never 250; nothing is relayed; the service stops
    (fail closed).  While the line stands, front holds at most
    SIGNER_QUEUE_MAX (32) message copies for the signer: those in line hold
    none."""
    sink = make_sink()
    sp, port, signer, subs = set_scene(lab, sink)
    front = roles(sp)["front"]
    assert signer_memfds(front) <= 32, signer_memfds(front)
    os.kill(signer, signal.SIGKILL)
    all_answered(subs, [(451, "4.3.0"), (421, "4.3.2")])
    assert sp.expect_exit(1, timeout=60) == 1
    assert sink.messages() == []
    assert not any(s["data_completed"] for s in sink.sessions())


@pytest.mark.sanitized
def test_worker_killed_with_a_line(lab, make_sink):
    """The front worker killed while its messages wait for a stopped
    signer (in its socket, queue and line): its clients lose the
    connection, nothing of theirs is relayed; the replacement on the same
    sockets drops the signer's late answers to the dead worker's requests
    (unknown ids) and its own messages are signed and relayed once."""
    sink = make_sink()
    sp, port, signer, subs = set_scene(lab, sink)
    front = roles(sp)["front"]
    start = len(sp.lines)
    os.kill(front, signal.SIGKILL)
    assert sp.wait_log(r"front\[\d+\] info: event=started ", timeout=60, start=start)
    for s in subs:
        s.thread.join(LONG)
        assert not s.thread.is_alive(), "session %d still waits" % s.i
        assert s.closer or s.reply is None, (s.i, s.reply)
    os.kill(signer, signal.SIGCONT)
    c = RawClient(sp.implicit_port, lab.certs.ca, timeout=LONG)
    c.login()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.cmd("DATA", 354)
    c.send(dot_stuff(make_message(subject="after-the-kill")))
    c.read_reply().check(250, "2.0.0")
    c.cmd("QUIT", 221)
    wait_for(lambda: len(sink.messages()) == 1, timeout=60, what="the new message relayed")
    assert sink.data_completions() == 1
    got = [m["data"].split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0] for m in sink.messages()]
    assert got == [b"after-the-kill"], got
    assert sp.alive()


@pytest.mark.sanitized
def test_reload_with_a_line(lab, make_sink):
    """SIGHUP while messages wait in line for the old generation's stopped
    signer: the old generation drains; once its signer runs again every
    message gets 250 and is relayed exactly once."""
    sink = make_sink()
    sp, port, signer, subs = set_scene(lab, sink)
    start = len(sp.lines)
    sp.proc.send_signal(signal.SIGHUP)
    line = sp.wait_log(r"event=(reloaded generation=2 |reload-failed)", timeout=60, start=start)
    assert line and "reloaded" in line, sp.stderr_text(40)
    os.kill(signer, signal.SIGCONT)
    all_relayed_once(sink, subs)
    assert sp.alive()
