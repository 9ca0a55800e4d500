"""
The key holders are contained like front: once signer and keeper have
loaded their keys they run chrooted to the empty [server] chroot as their
own unprivileged users ([server] signer-user, keeper-user), not dumpable,
with no_new_privs and their seccomp filter -- as the running processes show
it in /proc.  (That no path can be looked up under any role's filter is
tested per role and per system call in tests/unit/test_sandbox.c.)  A
missing user stops the start with a sentence naming the key.
"""

import os
import pwd

import pytest

from helpers import submit_through
from opsutil import fronts
from test_dkim import roles
from test_sandbox import status

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="chroot and the user change need root")


@pytest.fixture(scope="module")
def env(module_lab):
    s = module_lab.sink()
    sp = module_lab.subproxy(s)
    assert sp.wait_log(r"relay probe", timeout=10)
    return module_lab, s, sp


@ROOT_ONLY
@pytest.mark.parametrize("role,key", [("signer", "signer-user"), ("keeper", "keeper-user"),
                                      ("front", "user")])
def test_role_chrooted_as_its_user(env, sandbox_server, role, key):
    lab, s, sp = env
    r = roles(sp)
    pw = pwd.getpwnam(sandbox_server[key])
    for pid in fronts(sp.proc.pid) if role == "front" else [r[role]]:     # every worker
        st = status(pid)
        assert st["Uid"].split() == [str(pw.pw_uid)] * 4, "%s: Uid %s" % (role, st["Uid"])
        assert st["Gid"].split() == [str(pw.pw_gid)] * 4, "%s: Gid %s" % (role, st["Gid"])
        assert st["Groups"].strip() == "", "%s keeps supplementary groups: %r" % (
            role, st["Groups"])
        assert st["Seccomp"].strip() == "2" and st["NoNewPrivs"].strip() == "1", role
        assert os.readlink("/proc/%d/root" % pid) == sandbox_server["chroot"], role
        assert os.readlink("/proc/%d/cwd" % pid) == sandbox_server["chroot"], role
        # not dumpable: its memory cannot be read by its own uid
        assert os.stat("/proc/%d/mem" % pid).st_uid == 0, role
    # three different uids: front cannot signal a key holder
    uids = {status(p)["Uid"].split()[0] for n, p in r.items() if n != "parent"}
    assert len(uids) == 3, uids


def test_service_works_contained(env):
    lab, s, sp = env
    before = len(s.messages())
    submit_through(sp.implicit_port, lab.certs.ca, 250)
    msgs = s.messages()
    assert len(msgs) == before + 1
    assert b"DKIM-Signature:" in msgs[-1]["data"]


@ROOT_ONLY
@pytest.mark.parametrize("role,key", [("signer", "signer-user"), ("keeper", "keeper-user")])
def test_missing_user_stops_the_start(lab, role, key):
    sp = lab.subproxy(lab.sink(), server={key: "no-such-user-subproxy"}, wait=False)
    assert sp.expect_exit(1, timeout=30) == 1
    text = sp.stderr_text()
    assert "refusing to start" in text, text[-2000:]
    assert "sandbox.%s" % key in text and "no-such-user-subproxy" in text, text[-2000:]
    assert "useradd --system" in text, text[-2000:]
