"""
TLS session resumption on the listeners (src/tls.h): a client that comes
back with a ticket resumes, over implicit TLS and STARTTLS, with TLS 1.3
tickets and TLS 1.2 session tickets, and the resumed handshake makes no
private-key operation: the keeper is not asked (its main thread, which reads
every key operation and sends its answer, is not woken; a resumed handshake completes while the
keeper is stopped).  Tickets of
another process are refused; the lifetime told to clients is bounded.

Real clients: Python's ssl (OpenSSL) with SSLSocket.session.
"""

import os
import signal
import ssl
import time

import pytest

from helpers import SERVER_NAME, RawClient, client_context
from opsutil import sigstop
from test_dkim import roles

LIFETIME = 3600         # TLS_TICKET_LIFETIME in src/tls.h
VERSIONS = {"1.3": ssl.TLSVersion.TLSv1_3, "1.2": ssl.TLSVersion.TLSv1_2}
CASES = [(v, implicit) for v in VERSIONS for implicit in (True, False)]


class ResumingClient(RawClient):
    """RawClient on a given SSLContext, offering a saved session."""

    def __init__(self, port, ca_file, ctx, session=None, implicit=True):
        self._ctx, self._session = ctx, session
        super().__init__(port, ca_file, implicit=implicit)

    def _wrap(self):
        self.sock = self._ctx.wrap_socket(self.sock, server_hostname=SERVER_NAME,
                                          session=self._session)
        self.tls = True


def context(ca_file, version):
    """One context per client identity: sessions are reusable only within it."""
    ctx = client_context(ca_file)
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    return ctx


def session_over(sp, ca_file, ctx, implicit, session=None):
    """Connect, reach EHLO under TLS (which also reads the TLS 1.3 ticket),
    return (reused, session for the next connection)."""
    port = sp.implicit_port if implicit else sp.starttls_port
    with ResumingClient(port, ca_file, ctx, session, implicit=implicit) as c:
        c.greeting.check(220)
        if not implicit:
            c.ehlo()
            c.starttls()
        r = c.ehlo()
        assert "AUTH" in r.keywords, r.raw
        reused, nxt = c.sock.session_reused, c.sock.session
        assert nxt is not None and nxt.has_ticket, "no ticket from the server"
        c.cmd("QUIT", 221)
    return reused, nxt


def keeper_wakeups(pid):
    """Voluntary context switches of the keeper's main thread.  It sleeps in
    poll(2), reads every private-key operation and sends its answer (a key
    worker signs), so each operation wakes it; besides, only its metrics heartbeat does (at most once per
    HEARTBEAT seconds), while no AUTH is sent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc/%d/status" % pid)


HEARTBEAT = 1.0         # the longest metrics heartbeat interval (src/subproxy.c)
ROUNDS = 8              # connections per case and batch


def wakeups_during(keeper, batch):
    """(keeper wakeups during batch(), most of them heartbeats could explain)."""
    w0, t0 = keeper_wakeups(keeper), time.monotonic()
    batch()
    return keeper_wakeups(keeper) - w0, int((time.monotonic() - t0) / HEARTBEAT) + 2


@pytest.fixture(scope="module")
def env(module_lab):
    s = module_lab.sink()
    return module_lab, module_lab.subproxy(s)


@pytest.mark.parametrize("version", ["1.3", "1.2"])
@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "starttls"])
def test_client_resumes(env, version, implicit):
    lab, sp = env
    ctx = context(lab.certs.ca, version)
    reused, sess = session_over(sp, lab.certs.ca, ctx, implicit)
    assert not reused
    assert sess.ticket_lifetime_hint == LIFETIME
    for _ in range(2):
        reused, sess = session_over(sp, lab.certs.ca, ctx, implicit, sess)
        assert reused, "TLS %s session was not resumed" % version
    # a ticket from the other listener resumes too: same server, same key
    reused, _ = session_over(sp, lab.certs.ca, ctx, not implicit, sess)
    assert reused


def test_resumed_handshake_asks_no_keeper(env):
    lab, sp = env
    keeper = roles(sp)["keeper"]
    ctxs = {c: context(lab.certs.ca, c[0]) for c in CASES}
    sessions = {}

    def batch(resume):
        for _ in range(ROUNDS):
            for c in CASES:
                reused, sessions[c] = session_over(sp, lab.certs.ca, ctxs[c], c[1],
                                                   sessions.get(c) if resume else None)
                assert reused == resume, c

    # full handshakes wake the keeper once per connection at least (the
    # counter does count) ...
    n = ROUNDS * len(CASES)
    woken, beats = wakeups_during(keeper, lambda: batch(False))
    assert woken >= n, (woken, n)
    # ... resumed ones not at all: only heartbeats
    woken, beats = wakeups_during(keeper, lambda: batch(True))
    assert beats < n, "too slow to tell heartbeats from key operations (%d s)" % beats
    assert woken <= beats, "resumed handshakes woke the keeper %d times (%d connections, " \
        "at most %d heartbeats)" % (woken, n, beats)


def test_resumed_handshake_completes_while_keeper_is_stopped(lab):
    """Resumed handshakes need no keeper: they complete while it is stopped;
    continued, it serves full handshakes again (restart_syscall, with which
    the kernel resumes its poll, is in every policy)."""
    sp = lab.subproxy(lab.sink())
    keeper = roles(sp)["keeper"]
    ctxs = {c: context(lab.certs.ca, c[0]) for c in CASES}
    sessions = {c: session_over(sp, lab.certs.ca, ctxs[c], c[1])[1] for c in CASES}
    # the keeper cannot answer at all: a full handshake would wait for it
    # (then front would give the keeper up); resumed ones complete
    sigstop(keeper)
    try:
        for c in CASES:
            reused, sessions[c] = session_over(sp, lab.certs.ca, ctxs[c], c[1], sessions[c])
            assert reused, c
    finally:
        os.kill(keeper, signal.SIGCONT)
    # continued, the keeper serves full handshakes again
    try:
        for c in CASES:
            reused, _ = session_over(sp, lab.certs.ca, ctxs[c], c[1])
            assert not reused
    except (AssertionError, OSError):
        # the service fails closed when the keeper died: report that here,
        # not at teardown
        if sp.wait_log(r"event=child-died", timeout=10) is not None:
            sp.expect_exit(1)
        raise


@pytest.mark.sanitized
def test_tickets_of_another_process_are_refused(module_lab, env):
    lab, sp = env
    other = module_lab.subproxy(module_lab.sink())  # same certificate, its own ticket key
    for version in VERSIONS:
        ctx = context(lab.certs.ca, version)
        _, sess = session_over(sp, lab.certs.ca, ctx, True)
        reused, _ = session_over(other, lab.certs.ca, ctx, True, sess)
        assert not reused, "TLS %s ticket of another process accepted" % version
        # the refused client got a full handshake and its own ticket, which works there
        reused, _ = session_over(sp, lab.certs.ca, ctx, True, sess)
        assert reused
    other.stop()
