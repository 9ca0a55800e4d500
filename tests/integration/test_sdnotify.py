"""
test_sdnotify.py -- systemd's notification protocol, with the test playing
the service manager: a datagram socket named in NOTIFY_SOCKET (a path, or
an abstract "@name").  READY=1 only once the listeners accept, STATUS=
lines, WATCHDOG=1 every half period while every child's loop runs and not
while front is stopped, STOPPING=1 at SIGTERM.

test_under_systemd runs the daemon as a transient systemd service when
systemd is PID 1 (it is not in containers and CI: skipped there, saying
so).
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from helpers import submit_through
from opsutil import NotifySocket, children, wait_for


@pytest.fixture
def notify(tmp_path, monkeypatch, dns_lab, passwd_file):
    # the session's lab is up before NOTIFY_SOCKET is set: nsd speaks the
    # protocol too, and would send its own READY=1 here
    ns = NotifySocket(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", ns.env)
    yield ns
    ns.close()


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def test_ready_status_stopping(lab, make_sink, notify, lab_certs):
    sink = make_sink()
    sp = lab.subproxy(sink, wait=False)
    ready = notify.wait("READY", "1", timeout=30)
    # READY=1 comes only once front serves: both listeners answer SMTP now
    assert accepts(sp.implicit_port) and accepts(sp.starttls_port)
    assert sp.wait_log(r"front.*event=listening listener=submission ", timeout=5)
    assert ready.get("STATUS", "").startswith("serving: "), ready
    assert not any("READY" in m for _, m in notify.messages[:-1])
    # STATUS= follows what happens (sent when it changed, every 2 s at most)
    submit_through(sp.implicit_port, lab_certs.ca, 250, "2.0.0")
    want = "serving: 0 sessions, 1 relayed, 0 refused"
    m = notify.wait("STATUS", timeout=10)
    for _ in range(10):
        if m["STATUS"] == want:
            break
        m = notify.wait("STATUS", timeout=10)
    assert m["STATUS"] == want, notify.messages
    # no watchdog was asked for: none is sent
    assert not any("WATCHDOG" in m for _, m in notify.messages)
    sp.signal(signal.SIGTERM)
    notify.wait("STOPPING", "1", timeout=10)
    sp.wait_exit()


def test_abstract_socket(lab, make_sink, tmp_path, monkeypatch, dns_lab, passwd_file):
    ns = NotifySocket(tmp_path, abstract=True)
    monkeypatch.setenv("NOTIFY_SOCKET", ns.env)
    try:
        sink = make_sink()
        sp = lab.subproxy(sink, wait=False)
        ns.wait("READY", "1", timeout=30)
        assert accepts(sp.implicit_port)
        sp.stop()
        assert any(m.get("STOPPING") == "1" for _, m in ns.messages) or \
            ns.wait("STOPPING", "1", timeout=5)
    finally:
        ns.close()


def test_watchdog_reflects_a_stuck_child(lab, make_sink, notify, monkeypatch):
    period = 2.0
    monkeypatch.setenv("WATCHDOG_USEC", str(int(period * 1e6)))
    sink = make_sink()
    sp = lab.subproxy(sink, wait=False)
    notify.wait("READY", "1", timeout=30)
    assert sp.wait_log(r"event=watchdog period=2000ms beat=500ms", timeout=1)
    # every half period while all loops run
    t0 = time.monotonic()
    beats = [notify.wait("WATCHDOG", "1", timeout=period * 2) for _ in range(3)]
    assert len(beats) == 3 and time.monotonic() - t0 < period * 4
    front = wait_for(lambda: children(sp.proc.pid).get("subproxy-front"), what="front")
    os.kill(front, signal.SIGSTOP)
    try:
        # the parent may go on for one period after front's last beat
        time.sleep(period + 1)
        notify.drain()
        end = time.monotonic() + period * 1.5
        while time.monotonic() < end:
            m = notify.recv(0.2)
            assert m is None or "WATCHDOG" not in m, "WATCHDOG=1 while front is stopped"
        assert sp.wait_log(r"event=watchdog process=front .*not notifying", timeout=1)
    finally:
        os.kill(front, signal.SIGCONT)
    # a loop that runs again is noticed again
    notify.wait("WATCHDOG", "1", timeout=period * 3)
    assert sp.wait_log(r"event=watchdog every process beats again", timeout=5)
    sp.signal(signal.SIGTERM)
    notify.wait("STOPPING", "1", timeout=10)
    sp.wait_exit()


def test_bad_notify_socket_refuses_start(lab, make_sink, monkeypatch, tmp_path, dns_lab,
                                         passwd_file):
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/notify.sock")
    sp = lab.subproxy(make_sink(), wait=False)
    sp.expect_exit(1)
    assert sp.wait_log(r"refusing to start: NOTIFY_SOCKET=relative/notify.sock is not an "
                       r"absolute path", timeout=1)
    # a path where nobody listens
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody.sock"))
    sp = lab.subproxy(make_sink(), wait=False)
    sp.expect_exit(1)
    assert sp.wait_log(r"refusing to start: cannot connect to NOTIFY_SOCKET", timeout=1)


def _systemd_pid1():
    try:
        with open("/proc/1/comm") as f:
            return f.read().strip() == "systemd"
    except OSError:
        return False


@pytest.mark.skipif(not _systemd_pid1(),
                    reason="needs systemd as PID 1: not here (containers, CI); the notify "
                           "protocol is tested above with the test as the service manager")
def test_under_systemd(lab, make_sink, tmp_path):
    """Type=notify with a watchdog as a transient unit: systemd sees the
    service active only after READY=1 and stops it cleanly."""
    if shutil.which("systemd-run") is None:
        pytest.skip("needs systemd-run: not installed")
    sink = make_sink()
    sp = lab.subproxy(sink)            # writes the configuration; run it under systemd
    sp.stop()
    unit = "subproxy-test-%d" % os.getpid()
    r = subprocess.run(["systemd-run", "--unit", unit, "--property=Type=notify",
                        "--property=NotifyAccess=main", "--property=WatchdogSec=4s",
                        "--property=TimeoutStopSec=45s", "--wait", "--no-block",
                        sp.argv[0], "-c", str(sp.config_path)],
                       capture_output=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    try:
        def state():
            return subprocess.run(["systemctl", "show", "-p", "ActiveState,SubState", unit],
                                  capture_output=True, text=True, check=False).stdout
        wait_for(lambda: "ActiveState=active" in state(), timeout=30, what="unit active")
        assert accepts(sp.implicit_port)
        time.sleep(6)                  # longer than WatchdogSec: the watchdog is fed
        assert "ActiveState=active" in state()
    finally:
        subprocess.run(["systemctl", "stop", unit], timeout=60, check=False)
    out = subprocess.run(["systemctl", "show", "-p", "Result", unit], capture_output=True,
                         text=True, check=False).stdout
    assert "Result=success" in out or out.strip() == "Result=", out
