"""
test_client_close.py -- a client that closes while its session waits:
while its password check waits, it costs no Argon2id run and holds no
connection; while its message is signed or relayed, the transaction
finishes and the message is delivered once, never lost.

The attack: connect, TLS, AUTH PLAIN with a wrong password, close at once,
again and again; each check would cost the keeper a full Argon2id run
although nobody waits for its answer.  front reads nothing from a session
that waits, but it watches the paused socket for the client's FIN or reset
(conn.h, CONN_EV_HANGUP), ends the session, and the keeper drops the check
that waits for a worker (src/keeper.c, subproxy_auth_cancelled_total).

One Argon2id worker, one front worker (every check through one keeper
slot, in order).  Every TLS handshake is made first (the keeper signs for
them); then the keeper is stopped while the scene is set, so that its
socket holds, in this order: a slow check (a costly hash: it keeps the
worker busy while the keeper reads the rest), then for each closing client
its check and, once the client closed, front's cancel, then a legitimate
login.  Each step waits until its bytes are in the keeper's socket
(`ss -x`), so nothing depends on timing.  Then:
- every closing client's check was cancelled (its cancel reached the
  keeper before the keeper ran anything), and the keeper ran Argon2id only
  for the slow check and the legitimate login;
- the closing clients' places were free at once: as many new clients got
  in at [limits] connections, with the slow and the legitimate session
  still open;
- the legitimate login queued behind them gets 235 and its message is
  relayed.
Closing clients: a TCP close without TLS close_notify (FIN), a close_notify
then the FIN, a reset (SO_LINGER 0, as a client with unread bytes sends),
on the STARTTLS port as on the implicit one; and clients that pipeline
AUTH and QUIT and half-close (shutdown SHUT_WR): they get no reply, whether
front reads the FIN with the AUTH (EOF) or while the check waits (a FIN
while the check waits ends the session, however front learns of it).
On a loop without the watch (libevent's poll backend) front says so and
the check runs, as before.
"""

import os
import re
import signal
import socket
import ssl

import pytest

from helpers import ALICE, ALICE_PW, BOB, BOB_PW, RawClient, dot_stuff, half_sent, logged_in, \
    make_message, raw_starttls_client
from opsutil import children, scrape, sigstop, val, wait_for
from test_authcache import CANCEL_OCTETS, auth_line, auth_req_octets, keeper_queued_bytes, \
    misses, open_sessions, start_with_metrics
from test_dkim import roles

SLOW, SLOW_PW = "slow@lab.test", "slow-secret"
HANGUP = "client closed connection while its password check waited"


def slow_passwd(tmp_path, base):
    """The lab's logins and one whose hash is costly (t=8, 64 MiB: well
    over half a second of one core)."""
    import nacl.pwhash
    h = nacl.pwhash.argon2id.str(SLOW_PW.encode(), opslimit=8, memlimit=64 << 20).decode()
    path = tmp_path / "passwd-slow"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(open(base).read() + "%s:{ARGON2ID}%s\n" % (SLOW, h))
    return str(path)


def slow_daemon(lab, tmp_path, passwd_file, sink=None, limits=None):
    """A daemon with the slow login, one Argon2id worker and one front
    worker; returns (daemon, metrics port)."""
    passwd = slow_passwd(tmp_path, passwd_file)
    return start_with_metrics(lab, sink or lab.sink(), limits=limits,
                              overrides=["auth.passwd-file=%s" % passwd, "auth.workers=1",
                                         "server.workers=1"])


class KeeperSocket:
    """The octets front wrote into the stopped keeper's sockets: add(n)
    waits until n more are there."""

    def __init__(self, keeper):
        self.keeper = keeper
        self.want = 0

    def add(self, n, what):
        self.want += n
        wait_for(lambda: keeper_queued_bytes(self.keeper) == self.want, timeout=30,
                 what="%s at the keeper" % what)

    def hold_worker(self, holder):
        """holder's slow check, the first the keeper will read."""
        holder.send(auth_line(SLOW, SLOW_PW))
        self.add(auth_req_octets(SLOW, SLOW_PW), "the slow check")


def close_fin(c):
    """A TCP close without TLS close_notify (the client read everything:
    a FIN)."""
    c.close()


def close_notify(c):
    """TLS close_notify, then the FIN (not waiting for ours)."""
    c.sock.setblocking(False)
    try:
        c.sock.unwrap()
    except (ssl.SSLWantReadError, ssl.SSLError, OSError):
        pass
    c.close()


def close_reset(c):
    """A reset, as a client that closes with unread bytes sends."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    c.close()


def half_close(c, data):
    """Send data, then shutdown(SHUT_WR) on the TCP socket under the TLS
    session (which goes on reading: no close_notify is sent)."""
    if data:
        c.send(data)
    raw = socket.socket(fileno=os.dup(c.sock.fileno()))
    raw.shutdown(socket.SHUT_WR)
    raw.close()


def implicit_session(sp, ca):
    return open_sessions(sp, ca, 1)[0]


def starttls_session(sp, ca):
    c = raw_starttls_client(sp.starttls_port, ca)
    c.greeting.check(220)
    c.ehlo()
    c.starttls()
    c.ehlo()
    return c


CLOSERS = [
    (implicit_session, close_fin),
    (implicit_session, close_notify),
    (implicit_session, close_reset),
    (starttls_session, close_fin),
    (starttls_session, close_notify),
]


@pytest.mark.sanitized
def test_closed_clients_cost_no_argon2id(lab, lab_certs, passwd_file, tmp_path):
    n = len(CLOSERS)
    sink = lab.sink()
    # the slow session, the closing ones and alice's: the connection limit
    limit = n + 2
    sp, port = slow_daemon(lab, tmp_path, passwd_file, sink,
                           limits={"connections": limit, "connections-per-ip": limit})
    ca = lab_certs.ca
    keeper = KeeperSocket(children(sp.proc.pid)["subproxy-keeper"])
    # every TLS handshake first: the keeper signs for them
    slow = implicit_session(sp, ca)
    closers = [(session(sp, ca), close) for session, close in CLOSERS]
    legit = implicit_session(sp, ca)
    sigstop(keeper.keeper)
    try:
        keeper.hold_worker(slow)
        for i, (c, close) in enumerate(closers):
            pw = "wrong-%d" % i
            c.send(auth_line(BOB, pw))
            keeper.add(auth_req_octets(BOB, pw), "closing client %d's check" % i)
            close(c)
            keeper.add(CANCEL_OCTETS, "front's cancel of closing client %d's check" % i)
        legit.send(auth_line(ALICE, ALICE_PW))
        keeper.add(auth_req_octets(ALICE, ALICE_PW), "alice's check")
        # the closed sessions hold no place: n new clients get in at the
        # limit (the STARTTLS port greets before any TLS, which would need
        # the stopped keeper)
        late = [raw_starttls_client(sp.starttls_port, ca) for _ in range(n)]
        for c in late:
            c.greeting.check(220)
        assert keeper_queued_bytes(keeper.keeper) == keeper.want
    finally:
        os.kill(keeper.keeper, signal.SIGCONT)
    for c in late:
        c.cmd("QUIT", 221)
        c.close()
    slow.read_reply().check(235, "2.7.0")
    legit.read_reply().check(235, "2.7.0")
    legit.mail()
    legit.rcpt()
    legit.data(dot_stuff(make_message(subject="after the closed ones")), 250)
    legit.cmd("QUIT", 221)
    legit.close()
    slow.cmd("QUIT", 221)
    slow.close()
    wait_for(lambda: len(sink.messages()) == 1, what="alice's message at the relay")
    m = scrape(port)
    assert val(m, "subproxy_auth_cancelled_total") == n
    assert misses(port) == 2          # the slow check and alice's
    assert val(m, "subproxy_auth_total", result="fail") == 0
    assert val(m, "subproxy_auth_total", result="ok") == 2
    text = sp.stderr_text()
    # four FINs while the check waited; the reset is a read error
    assert text.count('reason="%s"' % HANGUP) == n - 1, text[-3000:]
    assert len(re.findall(r'event=drop .*reason="read: Connection reset by peer"', text)) == 1
    assert "result=fail" not in text
    wait_for(lambda: val(scrape(port), "subproxy_auth_queue_checks") == 0,
             what="no check held")


@pytest.mark.sanitized
def test_half_close_after_auth_and_quit(lab, lab_certs, passwd_file, tmp_path):
    """AUTH and QUIT pipelined, then shutdown(SHUT_WR) while the check
    waits behind the slow one: the session ends without a reply (the client
    still reads: it sees the server's close), and the keeper drops the
    check."""
    sp, port = slow_daemon(lab, tmp_path, passwd_file)
    ca = lab_certs.ca
    keeper = KeeperSocket(children(sp.proc.pid)["subproxy-keeper"])
    holder = implicit_session(sp, ca)
    c = starttls_session(sp, ca)
    at_once = implicit_session(sp, ca)
    sigstop(keeper.keeper)
    try:
        keeper.hold_worker(holder)
        # the FIN right behind the commands: front may read it with them
        # (then EOF, not a hangup, ends the session) -- the same outcome
        half_close(at_once, auth_line(BOB, BOB_PW) + b"QUIT\r\n")
        keeper.add(auth_req_octets(BOB, BOB_PW) + CANCEL_OCTETS,
                   "the first half-closing client's check and its cancel")
        # the FIN once front waits for the check: a hangup
        c.send(auth_line(ALICE, ALICE_PW) + b"QUIT\r\n")
        keeper.add(auth_req_octets(ALICE, ALICE_PW), "the second half-closing client's check")
        half_close(c, b"")
        keeper.add(CANCEL_OCTETS, "front's cancel of the second half-closing client's check")
    finally:
        os.kill(keeper.keeper, signal.SIGCONT)
    at_once.expect_closed()
    c.expect_closed()
    holder.read_reply().check(235, "2.7.0")
    holder.close()
    assert val(scrape(port), "subproxy_auth_cancelled_total") == 2
    assert misses(port) == 1
    assert sp.wait_log(r'reason="%s"' % HANGUP, timeout=5)


def test_without_early_close(lab, lab_certs, passwd_file, tmp_path, monkeypatch):
    """On an event loop that cannot watch a paused socket (libevent's poll
    backend: no EV_FEATURE_EARLY_CLOSE), front says so at start, and a
    client that closes while its check waits is noticed when the check is
    answered: the check runs (as before this watch existed), the session
    then ends, and nothing else changes -- the service works."""
    monkeypatch.setenv("EVENT_NOEPOLL", "1")
    sp, port = slow_daemon(lab, tmp_path, passwd_file)
    assert sp.wait_log(r"event=loop-backend method=poll: ", timeout=5)
    ca = lab_certs.ca
    keeper = KeeperSocket(children(sp.proc.pid)["subproxy-keeper"])
    holder = implicit_session(sp, ca)
    c = implicit_session(sp, ca)
    sigstop(keeper.keeper)
    try:
        keeper.hold_worker(holder)
        c.send(auth_line(BOB, "wrong"))
        keeper.add(auth_req_octets(BOB, "wrong"), "the closing client's check")
        close_fin(c)
    finally:
        os.kill(keeper.keeper, signal.SIGCONT)
    holder.read_reply().check(235, "2.7.0")
    wait_for(lambda: misses(port) == 2, what="both checks run")
    assert val(scrape(port), "subproxy_auth_cancelled_total") == 0
    holder.cmd("QUIT", 221)
    holder.close()
    sp.wait_sessions_ended()
    assert HANGUP not in sp.stderr_text()


@pytest.mark.sanitized
def test_close_while_the_message_is_signed(lab):
    """The final dot, then the client closes while its message waits for
    the (stopped) signer: the transaction goes on (front logs the hangup
    and keeps waiting), the message is signed and relayed -- delivered
    once, not lost -- and the 250 goes to a closed connection: the client,
    which never saw it, may send the message again (SMTP's duplicate, never
    a loss).  Nothing is acknowledged that the relay did not accept."""
    s = lab.sink()
    sp = lab.subproxy(s)
    assert sp.wait_log(r"relay probe", timeout=10)
    signer = roles(sp)["signer"]
    a = logged_in(sp.implicit_port, lab.certs.ca)
    end = half_sent(a, "closed while signed")
    sigstop(signer)
    try:
        a.send(end)
        # front has handed the message over: the session waits (paused)
        wait_for(lambda: keeper_queued_bytes(signer) > 0, timeout=30,
                 what="the message at the signer")
        a.close()
        assert sp.wait_log(r"event=client-hangup .*state=wait in-transaction=1", timeout=10)
        assert sp.alive()
    finally:
        os.kill(signer, signal.SIGCONT)
    wait_for(lambda: len(s.messages()) == 1, timeout=30, what="the message at the relay")
    assert b"Subject: closed while signed" in s.messages()[0]["data"]
    assert sp.wait_log(r"event=relayed ", timeout=10)
    sp.wait_sessions_ended()
    assert s.data_completions() == 1


def end_follows_state(sp, line):
    """The session of this event=drop or event=close line changed to state
    closed (session_end, a debug line: the lab runs -d) before the line."""
    sid = re.search(r"session=(\w+) ", line).group(1)
    mine = [ln for ln in list(sp.lines) if "session=%s " % sid in ln]
    ended = [i for i, ln in enumerate(mine) if re.search(r" state \S+ -> closed$", ln)]
    last = [i for i, ln in enumerate(mine) if re.search(r" event=(drop|close) ", ln)]
    assert len(ended) == 1 and len(last) == 1, mine
    assert ended[0] < last[0], "the close or drop line came before the session ended:\n" + \
        "\n".join(mine[-6:])


@pytest.mark.sanitized
def test_drop_and_close_are_logged_after_the_session_ended(lab):
    """A session's event=drop (its client left without QUIT) and event=close
    (QUIT) are logged once the session has ended: from that line on it is
    no session of its login (sessions-per-login), its transaction and
    waits are cancelled, as tests and operators reading the line rely on."""
    sp = lab.subproxy(lab.sink())
    clients = {}
    for src in ("127.0.0.2", "127.0.0.3"):
        c = clients[src] = RawClient(sp.implicit_port, lab.certs.ca, source=src)
        c.greeting.check(220)
        c.ehlo()
        c.auth_plain()
        c.mail()
    clients["127.0.0.2"].close()
    clients["127.0.0.3"].cmd("QUIT", 221)
    clients["127.0.0.3"].close()
    drop = sp.wait_log(r"event=drop peer=127\.0\.0\.2 ")
    close = sp.wait_log(r"event=close peer=127\.0\.0\.3 ")
    assert drop and close, sp.stderr_text(20)
    end_follows_state(sp, drop)
    end_follows_state(sp, close)
