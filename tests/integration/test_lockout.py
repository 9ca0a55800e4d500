"""
The auth lockout, live through the daemon: after KEEPER_LOCK_LOGIN_MAX (10)
failed logins for one account, even the right password gets 454 4.7.0 and
no password check; another account is not affected.  (The window's end is
tested with a clock the test moves: tests/unit/test_lockout.c.)
"""

from concurrent.futures import ThreadPoolExecutor

from helpers import ALICE, ALICE_PW, BOB, BOB_PW, RawClient

LOGIN_MAX = 10      # src/keeper.h KEEPER_LOCK_LOGIN_MAX


def test_login_locked_after_failures(lab):
    sp = lab.subproxy(lab.sink())

    def fail_once(i):
        c = RawClient(sp.implicit_port, lab.certs.ca)
        c.greeting.check(220)
        c.ehlo()
        r = c.auth_plain(ALICE, "wrong-%d" % i, code=None, enh=None)
        c.cmd("QUIT", 221)
        return r

    # one failure per session (a session's own limit is lower), in parallel
    # so that the rising per-session delay does not add up
    with ThreadPoolExecutor(max_workers=LOGIN_MAX) as pool:
        replies = list(pool.map(fail_once, range(LOGIN_MAX)))
    assert all(r.code == 535 and r.enh == "5.7.8" for r in replies), replies
    assert len(replies) == LOGIN_MAX
    assert sp.wait_log(r"keeper.*event=auth-locked login=%s failures=%d" % (
        ALICE.replace(".", r"\."), LOGIN_MAX), timeout=10)

    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.ehlo()
    r = c.auth_plain(ALICE, ALICE_PW, code=454, enh="4.7.0")
    assert "failed logins" in r.text, r
    assert sp.wait_log(r"event=auth .*login=%s result=locked" % ALICE.replace(".", r"\."),
                       timeout=5)
    c.auth_plain(BOB, BOB_PW)
    c.cmd("QUIT", 221)
