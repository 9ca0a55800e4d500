"""
File descriptors (issue 9, item 3): subproxy raises its descriptor limit at
start to what [limits] connections needs, or refuses to start and says how
to fix it; when accepting fails anyway (EMFILE), front pauses accepting
instead of spinning, logs it a bounded number of times and serves clients
again as soon as descriptors are free.
"""

import os
import re
import select
import socket
import subprocess
import time

import pytest

from helpers import (TIMEOUT, cpu_seconds, nofile_limits, raw_starttls_client, set_nofile,
                     submit_through)
from opsutil import fronts, wait_fronts
from test_dkim import roles
from test_flood import flood

# subproxy.conf(5), [limits] connections and transactions: one descriptor
# per session, two more per transaction in progress (its relay connection
# and its message's memfd), the relays' kept idle connections (the lab's one
# relay: [relay] connections, default 20) and the probe's, 128 for DNS, 32
# for the signer queue's memfds, 64 for the rest, one per listener (the lab
# daemons have two)
def default_transactions(connections):
    return max(100, connections // 4) if connections >= 100 else connections


def needed(connections, transactions=None, listeners=2, kept=20):
    if transactions is None:
        transactions = default_transactions(connections)
    return connections + 2 * transactions + kept + 1 + 128 + 32 + 64 + listeners


def test_nofile_raised_at_start(lab):
    """A soft limit below the need is raised (every process inherits it).
    The limit is per process and one worker may hold every session, so the
    need does not depend on the number of workers; each worker's kept relay
    connections count on top."""
    sp = lab.subproxy({"sink": lab.sink(), "extra": {"connections": 50}},
                      limits={"connections": 200}, nofile=(256, 4096), server={"workers": 2})
    need = needed(200, kept=50)
    assert sp.wait_log(r"event=nofile-raised from=256 to=%d connections=200 transactions=100 "
                       r"workers=2" % need, timeout=5)
    r = roles(sp)
    for role in ("signer", "keeper"):
        assert nofile_limits(r[role]) == (need, 4096), role
    workers = fronts(sp.proc.pid)
    assert len(workers) == 2
    for pid in workers:
        assert nofile_limits(pid) == (need, 4096), pid
    submit_through(sp.implicit_port, lab.certs.ca, 250, "2.0.0")


def test_listen_backlog_is_somaxconn(lab):
    """The listeners queue as many connections as the system allows
    (SOMAXCONN, 4096, capped by net.core.somaxconn): a burst waits while the
    workers are busy instead of overflowing a short queue.  ss(8) shows a
    listening socket's backlog as its Send-Q."""
    sp = lab.subproxy(lab.sink())
    with open("/proc/sys/net/core/somaxconn") as f:
        want = min(4096, int(f.read()))
    for port in (sp.implicit_port, sp.starttls_port):
        out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port], capture_output=True,
                             text=True, timeout=10, check=True).stdout.split()
        assert out[0] == "LISTEN" and int(out[2]) == want, (port, out)


def refusal(what, need, hard, lower):
    """The sentence of a start refused for want of descriptors."""
    return ("refusing to start: %s needs %d file descriptors, but the hard limit on open "
            "files (RLIMIT_NOFILE) is %d; raise it to at least %d (LimitNOFILE=%d in the "
            "systemd unit, or ulimit -n %d as root before starting) or lower %s"
            % (what, need, hard, need, need, need, lower))


def test_nofile_refused_when_hard_limit_too_low(lab):
    sp = lab.subproxy(lab.sink(), limits={"connections": 200}, nofile=(256, 512), wait=False)
    assert sp.expect_exit(1, timeout=20) == 1
    out = sp.stderr_text()
    assert refusal("[limits] connections = 200 and transactions = 100", needed(200), 512,
                   "[limits] connections or transactions") in out, out
    # nothing was started: no audit, no signer, no keeper
    assert "signer-ready" not in out and "keeper-ready" not in out


def test_nofile_refused_for_the_parents_sockets(lab):
    """With many workers and few connections the parent's need is the
    larger (64 + listeners + 10 per worker: the sockets of every slot of two
    generations): the refusal names [server] workers, not connections."""
    sp = lab.subproxy(lab.sink(), limits={"connections": 1}, server={"workers": 19},
                      nofile=(64, 200), wait=False)
    assert sp.expect_exit(1, timeout=20) == 1
    need = 64 + 2 + 10 * 19
    assert need > needed(1)
    out = sp.stderr_text()
    assert refusal("[server] workers = 19", need, 200, "[server] workers") in out, out
    assert "signer-ready" not in out


def test_ten_thousand_connections_fit_twenty_thousand(lab):
    """Idle sessions cost one descriptor: [limits] connections = 10000 (and
    its default of 2,500 transactions per worker) starts under a hard limit
    of 20,000 -- three per connection would need more than 30,000.  The same
    connections with as many transactions do not fit, and the refusal says
    so and what to lower."""
    hard = 20000
    sp = lab.subproxy(lab.sink(), limits={"connections": 10000}, nofile=(1024, hard),
                      server={"workers": 1})
    need = needed(10000)
    assert need == 10000 + 2 * 2500 + 20 + 1 + 128 + 32 + 64 + 2 < hard
    assert sp.wait_log(r"event=nofile-raised from=1024 to=%d connections=10000 "
                       r"transactions=2500 workers=1" % need, timeout=5)
    for front in fronts(sp.proc.pid):
        assert nofile_limits(front) == (need, hard)
    submit_through(sp.implicit_port, lab.certs.ca, 250, "2.0.0")
    sp.stop()

    sp = lab.subproxy(lab.sink(), limits={"connections": 10000, "transactions": 10000},
                      nofile=(1024, hard), wait=False)
    assert sp.expect_exit(1, timeout=20) == 1
    out = sp.stderr_text()
    assert refusal("[limits] connections = 10000 and transactions = 10000",
                   needed(10000, 10000), hard, "[limits] connections or transactions") in out, out


def test_nofile_follows_a_reload_of_the_relays(lab):
    """[relay] connections (idle connections each worker keeps) and [relay]
    sections change at a reload, and the new generation's workers keep that
    many more connections: the limit they are started with is raised to the
    new need first, or the reload is refused, saying which keys need what,
    while the running generation serves on."""
    from test_reload import reload_ok, rewrite, sighup
    sp = lab.subproxy({"sink": lab.sink(), "extra": {"connections": 50}},
                      limits={"connections": 200}, nofile=(256, 2000), server={"workers": 1})
    need = needed(200, kept=50)
    assert sp.wait_log(r"event=nofile-raised from=256 to=%d " % need, timeout=5)
    old = fronts(sp.proc.pid)
    rewrite(sp, ("connections = 50", "connections = 400"))
    start = reload_ok(sp, 2)
    more = needed(200, kept=400)
    assert sp.wait_log(r"event=nofile-raised from=%d to=%d connections=200 transactions=100 "
                       r"workers=1" % (need, more), timeout=5, start=start)
    new = wait_fronts(sp.proc.pid, 1, exclude=old)
    assert nofile_limits(new[0]) == (more, 2000)
    submit_through(sp.implicit_port, lab.certs.ca, 250, "2.0.0")

    # beyond the hard limit: refused, generation 2 serves on
    rewrite(sp, ("connections = 400", "connections = 1600"))
    start = sighup(sp)
    line = sp.wait_log(r"event=(reloaded generation=3 |reload-failed)", timeout=60, start=start)
    over = needed(200, kept=1600)
    assert line and ("event=reload-failed [relay] connections = 1600 in all, with [limits] "
                     "connections = 200 and transactions = 100, needs %d file descriptors, "
                     "but the hard limit on open files (RLIMIT_NOFILE) is 2000; lower [relay] "
                     "connections, or raise the limit to at least %d and restart; still "
                     "serving with the running configuration" % (over, over)) in line, line
    assert fronts(sp.proc.pid) == new
    submit_through(sp.implicit_port, lab.certs.ca, 250, "2.0.0")


def test_nofile_enough_is_left_alone(lab):
    sp = lab.subproxy(lab.sink(), limits={"connections": 10}, nofile=(4096, 4096))
    for front in fronts(sp.proc.pid):
        assert nofile_limits(front) == (4096, 4096)
    assert not any("nofile-raised" in ln for ln in sp.lines)


def lowest_free_fd(pid):
    used = {int(x) for x in os.listdir("/proc/%d/fd" % pid)}
    n = 0
    while n in used:
        n += 1
    return n


@pytest.mark.sanitized
def test_emfile_pauses_accepting(lab):
    """front's descriptors run out while clients keep connecting: a few are
    served, the rest wait in the listen backlog; front neither spins (its
    CPU time stays small) nor floods the log (one line per 10 s), and once
    the connections are released a new client gets its greeting."""
    if os.geteuid() != 0:
        pytest.skip("needs root: reading the descriptors of front (not dumpable)")
    # one worker: it is that process's descriptors that run out
    sp = lab.subproxy(lab.sink(), limits={"connections": 100, "connections-per-ip": 100},
                      server={"workers": 1})
    sp.wait_relay_probe()
    front = roles(sp)["front"]
    soft = nofile_limits(front)[0]
    spare = 4
    set_nofile(front, lowest_free_fd(front) + spare)
    socks = []
    try:
        log0 = len(sp.lines)
        for _ in range(40):
            socks.append(socket.create_connection(("127.0.0.1", sp.starttls_port),
                                                  timeout=TIMEOUT))
        time.sleep(1)
        readable, _, _ = select.select(socks, [], [], 1.0)
        greeted = sum(1 for s in readable if s.recv(512).startswith(b"220 "))
        assert 1 <= greeted <= spare, greeted
        cpu0, t0 = cpu_seconds(front), time.monotonic()
        time.sleep(3)
        cpu, wall = cpu_seconds(front) - cpu0, time.monotonic() - t0
        assert cpu < 0.3 * wall, "front used %.2f s of CPU in %.2f s" % (cpu, wall)
        assert len(sp.lines) - log0 < 50, "%d log lines in %.1f s: %s" % (
            len(sp.lines) - log0, wall, sp.lines[-3:])
        paused = [ln for ln in sp.lines[log0:] if "accept-paused" in ln]
        assert 1 <= len(paused) <= 2, paused
        assert re.search(r"event=accept-paused listener=\S+ error=\"Too many open files\"",
                         paused[0]), paused
        assert sp.alive()
    finally:
        for s in socks:
            s.close()
    # the released connections are accepted and end; then a client is served
    c = raw_starttls_client(sp.starttls_port, lab.certs.ca)
    c.greeting.check(220)
    c.cmd("QUIT", 221)
    set_nofile(front, soft)
    submit_through(sp.implicit_port, lab.certs.ca, 250, "2.0.0")


def test_closing_sessions_count_until_closed(lab):
    """A session whose last replies cannot be written (its client reads
    nothing) still holds a descriptor: it counts against [limits]
    connections until the descriptor is closed, so clients that stop
    reading cannot make front hold more descriptors than configured."""
    sp = lab.subproxy(lab.sink(), limits={"connections": 2, "connections-per-ip": 10,
                                          "timeout": 2})
    a = socket.socket()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    a.connect(("127.0.0.1", sp.starttls_port))
    assert a.recv(512).startswith(b"220 ")
    flood(a, b"NOOP\r\n", total=4 << 20)            # 10 MB of replies, unread
    # the idle timeout closes the session; its last replies cannot be
    # written, so its descriptor stays open (for CONN_CLOSE_WAIT, 5 s)
    assert sp.wait_log(r"event=idle-timeout peer=127.0.0.1 state=command", timeout=10)
    b = raw_starttls_client(sp.starttls_port, lab.certs.ca)
    b.greeting.check(220)
    c = raw_starttls_client(sp.starttls_port, lab.certs.ca)
    c.greeting.check(421, "4.3.2")                     # a still counts
    c.expect_closed()
    a.close()                                          # now its descriptor goes
    end = time.monotonic() + 10
    while True:
        d = raw_starttls_client(sp.starttls_port, lab.certs.ca)
        if d.greeting.code == 220 or time.monotonic() > end:
            break
        d.expect_closed()
        time.sleep(0.2)
    d.greeting.check(220)
    for x in (b, d):
        x.cmd("QUIT", 221)
