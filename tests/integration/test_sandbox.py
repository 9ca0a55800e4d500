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

from helpers import ALICE, RCPT, RawClient, dot_stuff, make_message
from test_dkim import memory_contains, roles


def status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@pytest.fixture(scope="module")
def env(module_lab):
    s = module_lab.sink()
    sp = module_lab.subproxy(s)
    sp.wait_log(r"relay probe", timeout=5)
    return module_lab, s, sp


def test_every_process_is_filtered(env):
    lab, s, sp = env
    r = roles(sp)
    assert set(r) >= {"parent", "front", "signer"}, r
    for role, pid in r.items():
        st = status(pid)
        assert st["Seccomp"].strip() == "2", "%s: Seccomp %s" % (role, st["Seccomp"])
        assert st["NoNewPrivs"].strip() == "1", "%s: NoNewPrivs %s" % (role, st["NoNewPrivs"])


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot and the user change need root")
def test_front_is_chrooted_and_unprivileged(env, sandbox_server):
    lab, s, sp = env
    front = roles(sp)["front"]
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
    for _ in range(5):
        sp.proc.send_signal(signal.SIGHUP)
        time.sleep(0.05)
    assert sp.wait_log(r"front.*event=sighup", timeout=5)
    time.sleep(0.2)
    assert sp.alive()
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.cmd("QUIT", 221)


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
