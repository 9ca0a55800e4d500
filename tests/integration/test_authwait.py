"""
test_authwait.py -- the time a session waits for the keeper's answer to an
AUTH it completed is ours, not the client's (issue 14: "the session simply
waits for its reply"): the auth-timeout is paused while the check waits,
and the wait has its own bound, [limits] timeout from the moment the check
went to the keeper (doc/design.md, "The auth cache and the AUTH queue").

- Cold logins beyond the one Argon2id worker, with auth-timeout = 4: each
  check waits longer than the auth-timeout (the keeper is stopped until it
  has them all and the auth-timeout + 1 s more), and every session gets 235; the log's
  waited-ms shows the wait.  A session beside them that sends no AUTH gets
  421 4.4.2 at its auth-timeout meanwhile.
- A wrong password answered after a wait longer than the auth-timeout gets
  its 535; the session, idle after it, is then closed by the auth-timeout
  (421 4.4.2 "No authentication"), not by the idle timeout.
- A check that waits past [limits] timeout is cancelled: 454 4.7.0, the
  keeper drops it unrun (subproxy_auth_cancelled_total), commands the client
  pipelined behind the AUTH are refused as unauthenticated, nothing is
  relayed, and the session may AUTH again.
(The session-timeout bound on a waiting check: test_authcache.py,
test_waiting_check_dropped_with_its_session.)

The keeper is stopped (SIGSTOP) while the checks wait, so that how long
they wait is set by the test, never by the machine's speed.
"""

import os
import re
import signal
import time

import pytest

from helpers import ALICE, ALICE_PW, BOB, BOB_PW, RCPT
from opsutil import children, scrape, sigstop, val, wait_for
from test_authcache import (CANCEL_OCTETS, auth_line, auth_req_octets, bob_then_alice, held,
                            keeper_queued_bytes, misses, open_sessions, start_with_metrics,
                            storm_passwd, storm_stopped)


def waited_ms(sp, login):
    """waited-ms of login's event=auth lines in the log."""
    pat = r"event=auth peer=\S+ login=%s result=\S+ .*waited-ms=(\d+)" % re.escape(login)
    return [int(m) for m in re.findall(pat, sp.stderr_text())]


def test_waiting_logins_outlive_the_auth_timeout(lab, lab_certs, tmp_path):
    # auth-timeout: room for n handshakes and AUTHs on a loaded machine
    n, auth_timeout = 6, 4
    # a real Argon2id hash: libsodium's interactive cost (t=2, 64 MiB)
    passwd = storm_passwd(tmp_path, n, 2, 64 << 20)
    sp, port = start_with_metrics(lab, lab.sink(), limits={"auth-timeout": auth_timeout},
                                  overrides=["auth.passwd-file=%s" % passwd, "auth.workers=1",
                                             "server.workers=1"])
    assert sp.wait_log(r"event=keeper-ready .* workers=1 ", timeout=5)
    idle = open_sessions(sp, lab_certs.ca, 1)[0]
    with storm_stopped(sp, lab_certs.ca, n) as clients:
        sent = time.monotonic()     # every check went to the keeper before this
        # the session without AUTH is closed at its auth-timeout meanwhile
        r = idle.read_reply()
        r.check(421, "4.4.2")
        assert "No authentication within %d seconds" % auth_timeout in r.text, r
        idle.expect_closed()
        # none of the others heard anything: their checks wait
        assert all(not c.pending(wait=0) for c in clients)
        time.sleep(max(0.0, sent + auth_timeout + 1 - time.monotonic()))
    for c in clients:
        c.read_reply().check(235, "2.7.0")
    # each waited longer than the auth-timeout, as front measured it
    wait_for(lambda: len(re.findall(r"result=ok verified=argon2id", sp.stderr_text())) == n,
             what="%d logins in the log" % n)
    for i in range(n):
        w = waited_ms(sp, "u%03d@lab.test" % i)
        assert len(w) == 1 and w[0] > auth_timeout * 1000, (i, w)
    assert sp.wait_log(r"event=auth-timeout", timeout=5)
    assert len(re.findall(r"event=auth-timeout", sp.stderr_text())) == 1
    assert misses(port) == n
    wait_for(lambda: held(port) == 0, what="no check held")
    for c in clients:
        c.cmd("NOOP", 250)
        c.cmd("QUIT", 221)
        c.close()


@pytest.mark.sanitized
def test_failed_auth_then_idle_ends_at_the_auth_timeout(lab, lab_certs):
    # room for the handshake, the AUTH and the 0.5 s delay after the 535
    auth_timeout = 4
    sp, _ = start_with_metrics(lab, lab.sink(), limits={"auth-timeout": auth_timeout,
                                                        "timeout": 120},
                               overrides=["auth.workers=1", "server.workers=1"])
    keeper = children(sp.proc.pid)["subproxy-keeper"]
    c = open_sessions(sp, lab_certs.ca, 1)[0]
    ready = time.monotonic()        # the session was accepted before this
    sigstop(keeper)
    try:
        c.send(auth_line(ALICE, ALICE_PW + "x"))
        wait_for(lambda: keeper_queued_bytes(keeper) == auth_req_octets(ALICE, ALICE_PW + "x"),
                 timeout=30, what="the check at the keeper")
        # past the auth-timeout counted from the accept
        time.sleep(max(0.0, ready + auth_timeout + 1 - time.monotonic()))
        assert not c.pending(wait=0)
    finally:
        os.kill(keeper, signal.SIGCONT)
    c.read_reply().check(535, "5.7.8")
    # what is left of the auth-timeout runs again: closed by it, not by the
    # idle timeout (120 s)
    c.sock.settimeout(60)
    r = c.read_reply()
    r.check(421, "4.4.2")
    assert "No authentication within %d seconds" % auth_timeout in r.text, r
    c.expect_closed()
    assert sp.wait_log(r"event=auth-timeout peer=127\.0\.0\.1", timeout=5)
    assert "event=idle-timeout" not in sp.stderr_text()
    w = waited_ms(sp, ALICE)
    assert len(w) == 1 and w[0] > 1000, w


@pytest.mark.sanitized
def test_check_waiting_past_the_bound_is_cancelled(lab, lab_certs):
    """One Argon2id worker and one front worker; bob's and alice's checks
    wait at the stopped keeper, in that order, past [limits] timeout: both
    sessions get 454 4.7.0 and front cancels both checks.  When the keeper
    goes on it may have handed bob's to its worker before it read his cancel,
    but alice's waits behind it and is dropped unrun."""
    bound = 8
    sink = lab.sink()
    sp, port = start_with_metrics(lab, sink, limits={"timeout": bound},
                                  overrides=["auth.workers=1", "server.workers=1"])
    keeper = children(sp.proc.pid)["subproxy-keeper"]
    b, a = open_sessions(sp, lab_certs.ca, 2)
    sigstop(keeper)
    try:
        # alice pipelines a transaction behind her AUTH: it must not ride on it
        both = bob_then_alice(keeper, b, a, b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (
            ALICE.encode(), RCPT.encode()))
        wait_for(lambda: keeper_queued_bytes(keeper) == both, timeout=30,
                 what="alice's check at the keeper")
        for c in (b, a):
            r = c.read_reply()
            r.check(454, "4.7.0")
            assert "temporarily unavailable" in r.text, r
        a.read_reply().check(530, "5.7.0")
        a.read_reply().check(503, "5.5.1")
        a.read_reply().check(503, "5.5.1")
        b.cmd("MAIL FROM:<%s>" % BOB, 530, "5.7.0")
        wait_for(lambda: keeper_queued_bytes(keeper) == both + 2 * CANCEL_OCTETS,
                 timeout=30, what="both cancels at the keeper")
    finally:
        os.kill(keeper, signal.SIGCONT)
    wait_for(lambda: len(re.findall(r"result=busy waited-ms=\d+: no answer within \[limits\] "
                                    r"timeout, check cancelled", sp.stderr_text())) == 2,
             what="two cancelled checks in the log")
    # the keeper has read all four (held is 0 before it reads any too)
    wait_for(lambda: keeper_queued_bytes(keeper) == 0 and held(port) == 0,
             what="the keeper's socket read and no check held")
    m = scrape(port)
    cancelled = val(m, "subproxy_auth_cancelled_total")
    # alice's for sure; bob's unless a worker had taken it
    assert cancelled >= 1 and cancelled + val(m, "subproxy_auth_cache_misses_total") == 2, m
    assert val(m, "subproxy_auth_total", result="busy") == 2
    assert val(m, "subproxy_auth_total", result="ok") == 0
    # the sessions go on and may authenticate now
    a.auth_plain(ALICE, ALICE_PW)
    b.auth_plain(BOB, BOB_PW)
    for c in (a, b):
        c.cmd("QUIT", 221)
        c.close()
    assert sink.messages() == []
