"""
The abuse suite (issue 9, "make it permanent"): what an attacker on the
network tries before and after logging in, played against one daemon for
the whole module.  Every test asserts, besides its exact replies, that
front is still the same process, that its memory stayed bounded, that a
legitimate client (from another address: per-address limits count it
apart) is served, and that nothing was relayed for a hostile session.
Bounded in time: the daemon's own timeouts are short, every wait has an
end, attacks of one test run side by side.

Attacks tested elsewhere and not repeated here: STARTTLS then half-close
(test_reentrancy.test_starttls_then_half_close), floods of NOOP and empty
lines without reading (test_flood), endless DATA and a BDAT of 10^12
octets (test_flood.test_endless_message_is_bounded), EMFILE on the SMTP
listeners alone (test_descriptors.test_emfile_pauses_accepting), a slow
transaction after AUTH (test_session_limits).
"""

import base64
import os
import random
import select
import socket
import ssl
import struct
import threading
import time

import pytest

from helpers import (ALICE, RCPT, SERVER_NAME, TIMEOUT, RawClient, client_context, cpu_seconds,
                     dot_stuff, make_message, nofile_limits, set_nofile, submit_through)
from opsutil import scrape, val, wait_for
from test_descriptors import lowest_free_fd
from test_dkim import roles
from test_flood import flood, growth_check
from test_metrics import start as start_with_metrics

CONNECTIONS = 20
PER_IP = 10
# the AUTH guesser of test_pipelined_floods must reach its third failure
# before it: 0.5 + 1 + 2 s of failure delay and three keeper verdicts
# (slow under ASan on a loaded machine: 5 s was too short); the idle
# timeout stays above it, so that it is the auth-timeout that ends a
# session that never logs in
AUTH_TIMEOUT = 10
LIMITS = {"connections": CONNECTIONS, "connections-per-ip": PER_IP,
          "auth-timeout": AUTH_TIMEOUT, "timeout": 2 * AUTH_TIMEOUT, "message-size": "1m"}
LEGIT = "127.0.0.2"             # the legitimate client's address
TRICKLE = 0.25                  # seconds between the bytes of a slow client
METRICS_HTTP_TIMEOUT = 5        # src/metrics_http.h


class Target:
    """The module's daemon and what the tests check after each attack."""

    def __init__(self, lab):
        self.lab = lab
        self.ca = lab.certs.ca
        self.sink = lab.sink()
        # one front worker: the attacks watch its pid, memory and descriptors
        # (test_workers.py covers several)
        self.sp, self.metrics_port = start_with_metrics(lab, self.sink, limits=LIMITS,
                                                        server={"workers": 1})
        self.sp.wait_log(r"relay probe", timeout=10)
        self.front = roles(self.sp)["front"]
        self.rss_ok = growth_check(self.sp, self.front)
        self.legit = 0          # messages the legitimate client had relayed

    def served(self):
        """A legitimate client submits a message (while an attack goes on)."""
        submit_through(self.sp.implicit_port, self.ca, 250, "2.0.0", source=LEGIT)
        self.legit += 1

    def settled(self):
        """After an attack: its sessions are all gone, front is the same
        process within its memory bound, and only the legitimate client's
        messages reached the relay."""
        wait_for(lambda: val(scrape(self.metrics_port), "subproxy_sessions_open") == 0,
                 timeout=AUTH_TIMEOUT + 10, what="all sessions closed")
        assert self.sp.alive()
        assert roles(self.sp)["front"] == self.front, "front was replaced"
        self.rss_ok()
        self.served()
        assert len(self.sink.messages()) == self.legit, "a hostile session was relayed"
        assert self.sink.data_starts() == self.legit, "a hostile session sent data"


def exhaust_descriptors(pid):
    """Lower front's descriptor limit to its lowest free number, once its
    descriptors have stopped changing (a relay connection of an earlier
    transaction may still be closing: a descriptor freed below the limit
    afterwards would let the next open succeed).  Bounded."""
    for _ in range(50):
        before = sorted(os.listdir("/proc/%d/fd" % pid))
        time.sleep(0.2)
        if sorted(os.listdir("/proc/%d/fd" % pid)) != before:
            continue
        n = lowest_free_fd(pid)
        set_nofile(pid, n)
        if lowest_free_fd(pid) == n:
            return n
    pytest.fail("front's descriptors did not settle within 10 s")


@pytest.fixture(scope="module")
def target(module_lab):
    return Target(module_lab)


def attacker(port, source, timeout=TIMEOUT):
    """A TCP connection from `source` (a loopback address of the attack)."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0))


def tls_attacker(t, source):
    """A TLS session on the implicit-TLS port, greeting read."""
    s = client_context(t.ca).wrap_socket(attacker(t.sp.implicit_port, source),
                                         server_hostname=SERVER_NAME)
    assert s.recv(512).startswith(b"220 ")
    return s


def client_hello(ca):
    """The first flight of a real TLS client (a ClientHello record)."""
    out = ssl.MemoryBIO()
    obj = client_context(ca).wrap_bio(ssl.MemoryBIO(), out, server_hostname=SERVER_NAME)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def hello_and_flight(s, ca):
    """Send a ClientHello and read the server's whole first flight (its
    records until the server has been quiet for a moment)."""
    s.sendall(client_hello(ca))
    s.settimeout(TIMEOUT)
    flight = s.recv(65536)
    assert flight[:1] == b"\x16", flight[:20]     # a handshake record
    s.settimeout(0.5)
    try:
        while len(flight) < 1 << 16:
            chunk = s.recv(65536)
            if not chunk:
                break
            flight += chunk
    except socket.timeout:
        pass
    s.settimeout(TIMEOUT)
    return flight


def read_to_close(sock, timeout=TIMEOUT):
    """Everything the server sends until it closes (bounded)."""
    sock.settimeout(timeout)
    got = b""
    while len(got) < 1 << 20:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            break
        except (socket.timeout, ssl.SSLError) as e:
            raise AssertionError("the server did not close (%r); got %r" % (e, got[-200:]))
        if not chunk:
            break
        got += chunk
    sock.close()
    return got


def log_count(sp, start, peer, *events):
    """Log lines since index start naming peer and one of events."""
    return sum(1 for ln in sp.lines[start:] if peer + " " in ln + " " and
               any(e + " " in ln + " " for e in events))


def reset(sock):
    """Close with a TCP RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def auth_timeout_reply():
    return (b"421 4.4.2 %s No authentication within %d seconds, closing connection\r\n"
            % (SERVER_NAME.encode(), AUTH_TIMEOUT))


@pytest.mark.sanitized
def test_slowloris(target):
    """One byte every TRICKLE seconds -- never idle -- in plaintext before
    STARTTLS, inside the TLS handshake and after it: each session ends at
    auth-timeout (421 4.4.2 where a reply can be written, just closed in
    the handshake), and a legitimate client is served meanwhile.  Four
    request heads to the metrics responder the same way (all its scraper
    places) are closed METRICS_HTTP_TIMEOUT after connecting, and a scrape
    is answered then (the timeout used to restart with every byte: four
    slow clients kept the metrics away for as long as they liked)."""
    t = target
    src = "127.0.0.11"
    t0 = time.monotonic()
    plain = attacker(t.sp.starttls_port, src)
    assert plain.recv(512).startswith(b"220 ")
    handshake = attacker(t.sp.implicit_port, src)
    after_tls = tls_attacker(t, src)
    scrapers = [attacker(t.metrics_port, src) for _ in range(4)]
    slow = [(plain, b"EHLO slow.example\r\n" + b"NOOP\r\n" * 100),
            (handshake, client_hello(t.ca)),
            (after_tls, b"EHLO slow.example\r\n" + b"NOOP\r\n" * 100)] + [
            (s, b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"x" * 4000) for s in scrapers]
    got = [b""] * len(slow)
    ended = {}
    i = 0
    while len(ended) < len(slow) and time.monotonic() - t0 < AUTH_TIMEOUT + 15:
        for k, (s, data) in enumerate(slow):
            if k not in ended:
                try:
                    s.send(data[i % len(data):i % len(data) + 1])
                except OSError:
                    # the daemon wrote its reply and closed before this
                    # byte (its RST came back): the reply is still queued
                    got[k] += read_to_close(s)
                    ended[k] = time.monotonic() - t0
        i += 1
        if i == 3:
            t.served()
        readable, _, _ = select.select([s for k, (s, _) in enumerate(slow) if k not in ended],
                                       [], [], TRICKLE)
        for s in readable:
            k = [x for x, _ in slow].index(s)
            try:
                chunk = s.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except (OSError, ssl.SSLError):
                chunk = b""
            got[k] += chunk
            if not chunk:
                ended[k] = time.monotonic() - t0
    for s, _ in slow:
        s.close()
    assert sorted(ended) == list(range(len(slow))), "still open after %.1f s: %r" % (
        time.monotonic() - t0, [k for k in range(len(slow)) if k not in ended])
    for k, when in ended.items():
        limit = AUTH_TIMEOUT if k < 3 else METRICS_HTTP_TIMEOUT
        assert limit - 1 <= when <= limit + 10, (k, when)
    assert got[0].endswith(auth_timeout_reply()), got[0][-200:]
    assert got[1] == b"", got[1]
    assert got[2].endswith(auth_timeout_reply()), got[2][-200:]
    assert got[3:] == [b""] * 4, got[3:]
    scrape(t.metrics_port)
    assert len([ln for ln in t.sp.lines if "event=auth-timeout peer=%s" % src in ln]) == 3
    t.settled()


@pytest.mark.sanitized
def test_connection_flood(target):
    """10 x [limits] connections attempts from one address, held open and
    never read: that address gets connections-per-ip sessions, every other
    attempt is refused at once (421 4.7.0 on the STARTTLS port, closed on
    the implicit one).  Then the address keeps trying, a burst after the
    other, while another address connects again and again: refused
    attempts hold nothing and count for nobody else, so every one of its
    connections is greeted (a refused attempt used to count against the
    global limit until its descriptor was closed: 421 4.3.2 for others)."""
    t = target
    src = "127.0.0.12"
    n = 10 * CONNECTIONS
    log0 = len(t.sp.lines)
    socks = []
    try:
        for i in range(n):
            port = t.sp.starttls_port if i % 2 == 0 else t.sp.implicit_port
            socks.append((port, attacker(port, src)))
        wait_for(lambda: log_count(t.sp, log0, "peer=%s" % src, "event=refused") >= n - PER_IP,
                 timeout=30, what="every attempt answered")
        refused = [ln for ln in t.sp.lines[log0:] if "event=refused peer=%s " % src in ln]
        assert len(refused) == n - PER_IP, len(refused)
        assert all("Too many connections from your address" in ln for ln in refused)
        t.served()
        held = 0
        for port, s in socks:
            s.settimeout(0.5)
            try:
                first = s.recv(512)
            except socket.timeout:
                first = None            # implicit TLS: waits for the ClientHello
            except ConnectionResetError:
                first = b""
            if first in (b"", b"421 4.7.0 Too many connections from your address\r\n"):
                if first:
                    assert port == t.sp.starttls_port
                    assert s.recv(512) == b""
                continue
            assert first is None or first.startswith(b"220 "), first
            held += 1
        assert held == PER_IP
        stop = threading.Event()

        def keep_trying():
            while not stop.is_set():
                burst = []
                for _ in range(50):
                    s = socket.socket()
                    s.bind((src, 0))
                    s.setblocking(False)
                    s.connect_ex(("127.0.0.1", t.sp.starttls_port))
                    burst.append(s)
                time.sleep(0.02)
                for s in burst:
                    s.close()
        flooder = threading.Thread(target=keep_trying, daemon=True)
        flooder.start()
        try:
            greetings = []
            for _ in range(20):
                c = RawClient(t.sp.starttls_port, t.ca, implicit=False, source=LEGIT)
                greetings.append(c.greeting.raw[:9])
                c.close()
        finally:
            stop.set()
            flooder.join(TIMEOUT)
        assert greetings == [b"220 mail."] * 20, greetings
    finally:
        for _, s in socks:
            s.close()
    t.settled()


def login_line():
    return b"AUTH PLAIN " + base64.b64encode(b"\0alice@lab.test\0alice-secret") + b"\r\n"


@pytest.mark.sanitized
def test_pipelined_floods(target):
    """Without reading, in one stream: AUTH attempts with a wrong password
    (each one waits for the keeper and the failure delay; the third ends
    the session, nothing after it is looked at), and a transaction whose
    recipients each wait for the relay followed by 40 MB of commands
    (front stops reading once 64 KiB of replies wait).  The replies come
    in order, the flood stalls, memory stays bounded and a legitimate
    client is served."""
    t = target
    bad = b"AUTH PLAIN " + base64.b64encode(b"\0mallory@lab.test\0guess") + b"\r\n"
    guesser = tls_attacker(t, "127.0.0.13")
    guesser.sendall(b"EHLO guess.example\r\n" + bad * 1000)
    result = {}
    threading.Thread(target=lambda: result.setdefault("guesser", read_to_close(guesser)),
                     daemon=True).start()

    s = tls_attacker(t, "127.0.0.14")
    rcpts = 150                          # [limits] recipients is 100
    head = (b"EHLO flood.example\r\n" + login_line() + b"MAIL FROM:<%s>\r\n" % ALICE.encode()
            + b"RCPT TO:<%s>\r\n" % RCPT.encode() * rcpts + b"RSET\r\n")
    s.sendall(head)
    sent, how = flood(s, b"NOOP\r\n")
    assert how == "stalled", (sent, how)
    t.rss_ok()
    t.served()
    s.settimeout(TIMEOUT)
    got = b""
    while got.count(b"\r\n") < 12 + rcpts + 1 + 1000:
        got += s.recv(65536)
    lines = got.split(b"\r\n")
    lines = lines[lines.index(b"250 AUTH PLAIN LOGIN") + 1:]     # after the EHLO reply
    assert lines[:2] == [b"235 2.7.0 Authentication successful",
                         b"250 2.1.0 Sender <%s> OK" % ALICE.encode()], lines[:3]
    assert lines[2:102] == [b"250 2.1.5 Recipient OK"] * 100
    assert lines[102:2 + rcpts] == [b"452 4.5.3 Too many recipients"] * (rcpts - 100)
    assert lines[2 + rcpts] == b"250 2.0.0 OK"                     # RSET
    assert set(lines[3 + rcpts:3 + rcpts + 1000]) == {b"250 2.0.0 OK"}
    s.close()
    wait_for(lambda: "guesser" in result, timeout=TIMEOUT, what="the guesser's end")
    replies = result["guesser"].split(b"\r\n")
    replies = replies[replies.index(b"250 AUTH PLAIN LOGIN") + 1:]
    assert replies == [b"535 5.7.8 Authentication credentials invalid"] * 2 + [
        b"421 4.7.0 Too many authentication failures, closing connection", b""], replies
    fails = [ln for ln in t.sp.lines if "login=mallory@lab.test result=fail" in ln]
    assert len(fails) == 3, fails
    t.settled()


def sequence(t, steps, source, tls):
    """Open a session and take steps (bytes to send, and the start of the
    last reply line to wait for, or None); returns the socket.  tls: True
    (implicit TLS), False (plaintext on the STARTTLS port) or "hello" (a
    ClientHello sent, the server's first flight read)."""
    if tls == "hello":
        s = attacker(t.sp.implicit_port, source)
        hello_and_flight(s, t.ca)
        return s
    s = tls_attacker(t, source) if tls else attacker(t.sp.starttls_port, source)
    if not tls:
        assert s.recv(512).startswith(b"220 ")
    for data, want in steps:
        s.sendall(data)
        got = b""
        while want is not None and not (got.endswith(b"\r\n") and
                                         got.split(b"\r\n")[-2].startswith(want)):
            chunk = s.recv(4096)
            assert chunk, (data, got)
            got += chunk
    return s


EHLO = (b"EHLO half.example\r\n", b"250 ")
LOGIN = (login_line(), b"235 ")
TXN = [(b"MAIL FROM:<%s>\r\n" % ALICE.encode(), b"250 2.1.0"),
       (b"RCPT TO:<%s>\r\n" % RCPT.encode(), b"250 2.1.5")]
STATES = {
    "greeted": (False, []),
    "after-ehlo": (False, [EHLO]),
    "in-tls-handshake": ("hello", []),
    "tls-greeted": (True, []),
    "auth-plain-continuation": (True, [EHLO, (b"AUTH PLAIN\r\n", b"334 ")]),
    "auth-login-password": (True, [EHLO, (b"AUTH LOGIN " + base64.b64encode(b"alice@lab.test")
                                          + b"\r\n", b"334 ")]),
    "auth-failure-delay": (True, [EHLO, (b"AUTH PLAIN " + base64.b64encode(
        b"\0mallory@lab.test\0guess") + b"\r\n", None)]),
    "logged-in": (True, [EHLO, LOGIN]),
    "in-transaction": (True, [EHLO, LOGIN] + TXN),
    "in-data": (True, [EHLO, LOGIN] + TXN + [(b"DATA\r\n", b"354 "),
                                              (make_message(), None)]),
    "in-bdat-chunk": (True, [EHLO, LOGIN] + TXN + [(b"BDAT 100000 LAST\r\n" + make_message(),
                                                     None)]),
    "after-bdat-chunk": (True, [EHLO, LOGIN] + TXN + [(b"BDAT 5\r\nFrom:", b"250 ")]),
}


@pytest.mark.sanitized
@pytest.mark.parametrize("how", ["half-close", "reset"])
def test_half_close_and_reset_in_every_state(target, how):
    """The client half-closes (FIN) or resets (RST) in every state a
    session can be in before its message is complete: the session ends,
    a half-closing client gets nothing more, and nothing is relayed.
    (STARTTLS then half-close: test_reentrancy.)"""
    t = target
    src = "127.0.0.15" if how == "half-close" else "127.0.0.16"
    log0 = len(t.sp.lines)
    for name, (tls, steps) in STATES.items():
        s = sequence(t, steps, src, tls)
        if how == "reset":
            reset(s)
            continue
        s.shutdown(socket.SHUT_WR)      # under TLS too: a TCP FIN, no close_notify
        got = read_to_close(s)
        if tls is not True:             # under TLS the records are not readable here
            assert got == b"", (name, got)
    ended = wait_for(lambda: log_count(t.sp, log0, "peer=%s" % src, "event=drop", "event=close")
                     >= len(STATES) or None, timeout=TIMEOUT, what="every session ended")
    assert ended
    t.settled()


@pytest.mark.sanitized
def test_random_bytes_before_and_after_tls(target):
    """Bytes that are no TLS where TLS is due (instead of a ClientHello,
    after STARTTLS, inside an established session, an alert in the middle
    of the handshake) end the session without a plaintext reply -- some at
    once, the rest at auth-timeout when the bytes announce a record still
    to come; random lines before STARTTLS are refused one by one until the
    protocol-error limit ends the session.  (Deterministic: a seeded
    generator.)"""
    t = target
    src = "127.0.0.17"
    rnd = random.Random(9)
    hello = client_hello(t.ca)
    alert = bytes([0x15, 3, 3, 0, 2, 2, 40])
    big_record = bytes([0x16, 3, 1, 0xff, 0xff]) + rnd.randbytes(1000)
    cases = []
    for junk in (rnd.randbytes(1), rnd.randbytes(100), rnd.randbytes(5000), big_record):
        s = attacker(t.sp.implicit_port, src)
        s.sendall(junk)
        cases.append(("implicit", s))
    for junk in (rnd.randbytes(300), hello + alert, big_record):
        s = attacker(t.sp.starttls_port, src)
        assert s.recv(512).startswith(b"220 ")
        s.sendall(b"STARTTLS\r\n")
        assert s.recv(512) == b"220 2.0.0 Ready to start TLS\r\n"
        s.sendall(junk)
        cases.append(("starttls", s))
    s = attacker(t.sp.implicit_port, src)
    hello_and_flight(s, t.ca)
    s.sendall(alert)
    cases.append(("alert mid-handshake", s))
    for _ in range(2):
        s = tls_attacker(t, src)
        s.sendall(b"EHLO x.example\r\n")
        s.recv(4096)
        raw = socket.socket(fileno=s.detach())   # keeps the connection, drops the TLS state
        raw.sendall(rnd.randbytes(2000))
        cases.append(("inside tls", raw))
    before = attacker(t.sp.starttls_port, src)
    assert before.recv(512).startswith(b"220 ")
    lines = b"".join(rnd.randbytes(rnd.randrange(1, 60)).replace(b"\n", b"") + b"\r\n"
                     for _ in range(20))
    before.sendall(lines)
    t.served()
    for what, s in cases:
        got = read_to_close(s, timeout=AUTH_TIMEOUT + 10)
        # nothing, or TLS records (a server flight, an alert): no plaintext
        assert got[:1] in (b"", b"\x15", b"\x16", b"\x17"), (what, got[:40])
    got = read_to_close(before).split(b"\r\n")
    assert got[-2].startswith(b"421 4.7.0 Too many errors"), got
    assert len(got) == 12 and all(r.startswith(b"50") for r in got[:10]), got
    t.settled()


@pytest.mark.sanitized
def test_huge_bdat_sizes(target):
    """BDAT sizes at and beyond the edge: 20 digits is a syntax error and
    nothing after it is taken as data; the largest size (19 digits) is a
    chunk that front keeps reading (and holds no more than message-size of:
    test_flood); before AUTH a chunk is read and thrown away, never run as
    commands.  Nothing is relayed."""
    t = target
    c = RawClient(t.sp.implicit_port, t.ca, source="127.0.0.18")
    c.greeting.check(220)
    c.login()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.send(b"BDAT 99999999999999999999 LAST\r\n")
    r = c.read_reply()
    assert r.raw == b"501 5.5.4 Syntax: BDAT size [LAST] (size: 1 to 19 digits)\r\n", r
    c.cmd("NOOP", 250, "2.0.0")
    c.send(b"BDAT 9999999999999999999 LAST\r\n" + make_message() + b"QUIT\r\n" * 1000)
    assert c.pending(1.0) == b"", "a reply in the middle of a chunk"
    c.close()
    pre = RawClient(t.sp.implicit_port, t.ca, source="127.0.0.18")
    pre.greeting.check(220)
    pre.ehlo()
    pre.send(b"BDAT 12 LAST\r\nQUIT\r\nQUIT\r\n")
    pre.read_reply().check(503, "5.5.1")
    pre.cmd("NOOP", 250, "2.0.0")
    pre.cmd("QUIT", 221, "2.0.0")
    t.settled()


@pytest.mark.sanitized
def test_emfile_on_every_listener(target):
    """front is out of descriptors while clients keep connecting to both
    SMTP listeners and to the metrics responder: no listener spins or
    floods the log (the metrics listener had no error callback: libevent
    retried accept() at once, 280,000 log lines in 3 s), each pauses and
    says so once, and all of them serve again when descriptors are back."""
    if os.geteuid() != 0:
        pytest.skip("needs root: reading the descriptors of front (not dumpable)")
    t = target
    src = "127.0.0.19"
    soft = nofile_limits(t.front)[0]
    exhaust_descriptors(t.front)
    socks = []
    try:
        log0 = len(t.sp.lines)
        for port in (t.sp.starttls_port, t.sp.implicit_port, t.metrics_port):
            socks += [attacker(port, src) for _ in range(3)]
        time.sleep(1)
        cpu0, t0 = cpu_seconds(t.front), time.monotonic()
        time.sleep(3)
        cpu, wall = cpu_seconds(t.front) - cpu0, time.monotonic() - t0
        assert cpu < 0.3 * wall, "front used %.2f s of CPU in %.2f s" % (cpu, wall)
        lines = t.sp.lines[log0:]
        assert len(lines) < 50, "%d log lines in %.1f s: %s" % (len(lines), wall, lines[-3:])
        smtp = [ln for ln in lines if "event=accept-paused" in ln]
        metrics = [ln for ln in lines if "event=metrics-accept-paused" in ln]
        assert 1 <= len(smtp) <= 2 and 1 <= len(metrics) <= 2, lines
        assert 'error="Too many open files"' in metrics[0], metrics
    finally:
        for s in socks:
            s.close()
        set_nofile(t.front, soft)
    scrape(t.metrics_port)
    t.settled()


@pytest.mark.sanitized
def test_long_and_bad_lines_in_every_state(target):
    """Overlong lines and lines with a bare LF as commands, as AUTH
    responses (user name, password, PLAIN response; with and without an
    end in sight) and inside a transaction: each gets its one 500 5.5.2
    and the session goes on where the protocol says -- an AUTH exchange is
    over (it used to stay open, so the next command was taken as the user
    name or password: QUIT became a login attempt).  No password check is
    made for any of them."""
    t = target
    src = "127.0.0.20"
    too_long = b"500 5.5.2 Command line too long"
    bare = b"500 5.5.2 Command line contains a bare CR, LF or NUL"
    user = base64.b64encode(b"alice@lab.test")
    c = RawClient(t.sp.implicit_port, t.ca, source=src)
    c.greeting.check(220)
    c.ehlo()
    steps = [
        (b"NOOP " + b"x" * 2000 + b"\r\n", [too_long]),
        (b"AUTH LOGIN\r\n" + b"u" * 13000 + b"\r\n",
         [b"334 VXNlcm5hbWU6", too_long]),
        (b"AUTH LOGIN " + user + b"\r\n" + b"p" * 13000 + b"\r\n",
         [b"334 UGFzc3dvcmQ6", too_long]),
        (b"AUTH LOGIN " + user + b"\r\n" + b"cA==\n", [b"334 UGFzc3dvcmQ6", bare]),
        (b"AUTH PLAIN\r\n" + b"A" * 13000 + b"\r\n", [b"334 ", too_long]),
        (b"AUTH PLAIN\r\n" + b"AGFsaWNl\n", [b"334 ", bare]),
    ]
    for data, want in steps:
        c.send(data)
        assert [c.read_line() for _ in want] == want, data[:40]
        c.cmd("NOOP", 250, "2.0.0")     # a command again, not an AUTH response
    assert not [ln for ln in t.sp.lines if "event=auth peer=%s " % src in ln]
    c.auth_plain()
    c.mail(ALICE)
    c.send(b"RCPT TO:<" + b"r" * 2000 + b"@remote.test>\r\n")
    assert c.read_line() == too_long
    c.rcpt(RCPT, code=250)
    c.cmd("RSET", 250, "2.0.0")
    c.cmd("QUIT", 221, "2.0.0")
    t.settled()


@pytest.mark.sanitized
@pytest.mark.parametrize("size", [600 << 10, 2000], ids=["spool-memfd", "signer-memfd"])
def test_emfile_during_a_message(target, size):
    """front runs out of descriptors while a logged-in client sends its
    message: beyond memory-body the spool cannot move to a memfd, a small
    message cannot be handed to the signer -- 451 4.3.0 either way, nothing
    relayed, the session goes on and sends the message once descriptors
    are back."""
    if os.geteuid() != 0:
        pytest.skip("needs root: reading the descriptors of front (not dumpable)")
    t = target
    c = RawClient(t.sp.implicit_port, t.ca, source="127.0.0.21")
    c.greeting.check(220)
    c.login()
    msg = make_message(body=(b"x" * 76 + b"\r\n") * (size // 78))
    soft = nofile_limits(t.front)[0]
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    exhaust_descriptors(t.front)
    try:
        c.data(dot_stuff(msg), code=451, enh="4.3.0")
        c.cmd("NOOP", 250, "2.0.0")
    finally:
        set_nofile(t.front, soft)
    assert len(t.sink.messages()) == t.legit
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(msg), code=250, enh="2.0.0")
    t.legit += 1                        # this one was meant to go out
    c.cmd("QUIT", 221)
    t.settled()
