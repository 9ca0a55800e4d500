"""
The sandbox as running processes show it: every process of a running daemon
is in seccomp filter mode with no_new_privs; front runs chrooted as an
unprivileged user (when started as root); a forbidden system call kills the
process and the whole service stops (fail closed); repeated SIGHUP is safe.
"""

import os
import re
import signal
import time

import pytest

from helpers import ALICE, RCPT, RawClient, check_relayed, dot_stuff, make_message
from test_dkim import memory_contains, roles
from opsutil import all_children, fronts, wait_for


def status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@pytest.fixture(scope="module")
def env(module_lab):
    s = module_lab.sink()
    sp = module_lab.subproxy(s)
    sp.wait_relay_probe()
    return module_lab, s, sp


def test_every_process_is_filtered(env):
    lab, s, sp = env
    r = roles(sp)
    assert set(r) >= {"parent", "front", "signer"}, r
    for role, pid in r.items():
        st = status(pid)
        assert st["Seccomp"].strip() == "2", "%s: Seccomp %s" % (role, st["Seccomp"])
        assert st["NoNewPrivs"].strip() == "1", "%s: NoNewPrivs %s" % (role, st["NoNewPrivs"])


def test_signer_and_keeper_block_no_signal(env):
    """The parent reads its signals from a signalfd and so blocks them;
    the signer and the keeper must not inherit that mask, or SIGTERM (its
    default action) would wait forever instead of ending them."""
    lab, s, sp = env
    r = roles(sp)
    assert int(status(r["parent"])["SigBlk"], 16) & (1 << (signal.SIGTERM - 1))
    for role in ("signer", "keeper"):
        assert int(status(r[role])["SigBlk"], 16) == 0, (role, status(r[role])["SigBlk"])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chroot and the user change")
def test_front_is_chrooted_and_unprivileged(env, sandbox_server):
    lab, s, sp = env
    for front in fronts(sp.proc.pid):           # every worker
        st = status(front)
        uids = st["Uid"].split()
        assert all(u != "0" for u in uids), "front runs with uid 0: %s" % st["Uid"]
        assert all(g != "0" for g in st["Gid"].split()), st["Gid"]
        assert st["Groups"].strip() == "", "supplementary groups kept: %r" % st["Groups"]
        assert os.readlink("/proc/%d/root" % front) == sandbox_server["chroot"]
        assert os.readlink("/proc/%d/cwd" % front) == sandbox_server["chroot"]
        # not dumpable: its memory cannot be read by its own uid
        assert os.stat("/proc/%d/mem" % front).st_uid == 0
    # the service still works from inside the sandbox
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.login()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(make_message()), code=250)
    assert len(s.messages()) >= 1


def test_repeated_sighup_is_safe(env):
    lab, s, sp = env
    front_hup = r"front\[\d+\] .*event=sighup"
    # a burst: signals arrive while earlier ones are being handled
    start = len(sp.lines)
    for _ in range(5):
        sp.proc.send_signal(signal.SIGHUP)
    assert sp.wait_log(front_hup, timeout=10, start=start), sp.stderr_text(20)
    # then one at a time, each seen through to front before the next
    for _ in range(3):
        start = len(sp.lines)
        sp.proc.send_signal(signal.SIGHUP)
        assert sp.wait_log(front_hup, timeout=10, start=start), sp.stderr_text(20)
    assert sp.alive()
    # each SIGHUP is also a reload: wait until the last one has run its
    # course and one generation is left (the module's other tests look at
    # its processes)
    def one_generation():
        if not settled(sp):
            return None
        try:
            r = roles(sp)
        except AssertionError:      # a child forked a moment ago, not named yet
            return None
        return r if set(r) >= {"parent", "front", "signer", "keeper"} else None
    wait_for(one_generation, timeout=60, what="one generation after the reloads")
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.cmd("QUIT", 221)


def settled(sp):
    """No reload under way and one generation's processes (a signer, a
    keeper and its workers; no audit child)."""
    events = [ln for ln in sp.lines if re.search(r"subproxy\[\d+\] \w+: event=(reload-|"
                                                  r"reloaded|generation-ended|sighup)", ln)]
    if events and re.search(r"event=(reload-audit|reload-start|sighup)", events[-1]):
        return False
    comms = [c for c in all_children(sp.proc.pid)]
    return comms.count("subproxy-signer") == 1 and comms.count("subproxy-keeper") == 1 \
        and "subproxy" not in comms


def test_forbidden_call_kills_and_service_fails_closed(lab):
    """front ending by SIGSYS -- what seccomp does to a forbidden call (the
    kill itself is shown per role in tests/unit/test_sandbox.c) -- makes the
    parent stop the whole service with exit 1, naming front and the signal,
    and leave no process behind."""
    s = lab.sink()
    sp = lab.subproxy(s)
    r = roles(sp)
    os.kill(r["front"], signal.SIGSYS)
    assert sp.expect_exit(1, timeout=40) == 1
    text = sp.stderr_text()
    assert re.search(r"child-died process=front pid=%d killed by signal %d" % (
        r["front"], signal.SIGSYS), text), text[-2000:]
    for pid in r.values():
        assert not os.path.exists("/proc/%d/status" % pid) or \
            status(pid).get("State", "").startswith("Z"), "process %d left running" % pid


@pytest.mark.sanitized
def test_tls_key_log_variable_is_dropped(lab, monkeypatch, tmp_path):
    """SSLKEYLOGFILE in the daemon's environment: GnuTLS opens that file at
    a process's first TLS handshake and writes every session's secrets to
    it.  In front, whose filter allows no open(2), that was SIGSYS at the
    first handshake (the relay probe) and the service stopped.  The daemon
    drops the variable before anything is forked and says so; it serves
    (a message relayed over TLS on both legs) and no file is made."""
    keys = tmp_path / "keys"
    s = lab.sink()
    monkeypatch.setenv("SSLKEYLOGFILE", str(keys))
    sp = lab.subproxy(s)
    monkeypatch.delenv("SSLKEYLOGFILE")
    sp.wait_relay_probe()
    assert sp.wait_log(r"subproxy\[\d+\] warn: event=environment variable=SSLKEYLOGFILE "
                       r"dropped: TLS session secrets are never written to a file"), \
        sp.stderr_text(10)
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.login()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    msg = make_message()
    c.data(dot_stuff(msg), 250, "2.0.0")
    c.cmd("QUIT", 221)
    [m] = s.messages()
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)
    assert not keys.exists()


def wait_dead(pid, timeout=10):
    """Wait until process pid is gone or a zombie (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if status(pid).get("State", "").startswith("Z"):
                return
        except OSError:
            return
        time.sleep(0.02)
    raise AssertionError("process %d still running %ss after SIGKILL" % (pid, timeout))


def tls_key_secrets(path):
    """Bytes only a holder of the TLS private key has: the EC private
    scalar, and a slice of the PEM text."""
    from cryptography.hazmat.primitives import serialization
    pem = open(path, "rb").read()
    key = serialization.load_pem_private_key(pem, None)
    n = key.private_numbers()
    secret = getattr(n, "private_value", None) or n.d
    return [secret.to_bytes((secret.bit_length() + 7) // 8, "big"), pem[40:80]]


def test_keeper_holds_the_tls_key_front_does_not(env):
    lab, s, sp = env
    r = roles(sp)
    assert "keeper" in r, r
    st = status(r["keeper"])
    assert st["Seccomp"].strip() == "2" and st["NoNewPrivs"].strip() == "1"
    # a TLS handshake has used the key through the keeper
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.cmd("QUIT", 221)
    secrets = tls_key_secrets(lab.certs.mail_key)
    for front in fronts(sp.proc.pid):
        assert memory_contains(front, secrets) == [], "TLS key bytes in front's memory"
    assert memory_contains(r["parent"], secrets) == [], "TLS key bytes in the parent's memory"
    assert memory_contains(r["keeper"], secrets), "the search cannot find the key in the keeper"


@pytest.mark.parametrize("role", ["signer", "keeper"])
def test_child_killed_during_submission_fails_closed(lab, role):
    """SIGKILL to the signer or the keeper while a client is sending a
    message, the final dot sent once the process is dead: the service exits
    1 naming the process, and nothing is acknowledged that was not relayed.
    Without the signer nothing can be signed: 4xx, nothing reaches the
    relay.  The keeper holds nothing an authenticated transaction still
    needs, so front may finish the one in flight while it stops (graceful
    stop): 250 with exactly one signed copy at the relay, or 4xx and none,
    depending on whether the parent's stop comes first."""
    s = lab.sink()
    sp = lab.subproxy(s)
    sp.wait_relay_probe()
    victim = roles(sp)[role]
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.login()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.cmd("DATA", 354)
    msg = make_message()
    payload = dot_stuff(msg)
    c.send(payload[:-3])                 # everything but the final ".\r\n"
    os.kill(victim, signal.SIGKILL)
    wait_dead(victim)                    # the final dot reaches a service without it
    try:
        c.send(payload[-3:])
    except OSError:
        pass
    r = c.read_reply()
    assert sp.expect_exit(1, timeout=40) == 1
    assert re.search(r"child-died process=%s pid=%d killed by signal %d" % (
        role, victim, signal.SIGKILL), sp.stderr_text()), sp.stderr_text()[-2000:]
    stored = s.messages()
    if role == "keeper" and r.code == 250:
        assert len(stored) == 1 and s.data_completions() == 1, stored
        check_relayed(stored[0]["data"], msg, added_message_id=False, added_date=False)
    else:
        assert 400 <= r.code < 500, r    # 451 4.3.0, or 421 when the stop came first
        assert stored == [] and s.data_completions() == 0


def test_tls_key_readable_by_others_stops_start(lab, tmp_path):
    import shutil
    key = tmp_path / "open.key"
    shutil.copy(lab.certs.mail_key, key)
    os.chmod(key, 0o644)
    sp = lab.subproxy(lab.sink(), overrides=["tls.key=%s" % key], wait=False)
    assert sp.expect_exit(1, timeout=20) == 1
    text = sp.stderr_text()
    assert str(key) in text and "644" in text and "chmod 600" in text, text
