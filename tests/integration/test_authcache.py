"""
test_authcache.py -- the keeper's auth cache and AUTH queue, through the
daemon.

- A second login with the same password is answered from the cache: the
  log says verified=cache and subproxy_auth_cache_hits_total counts it
  (subproxy_auth_cache_misses_total counts the Argon2id runs); a wrong
  password for the cached login still gets 535 5.7.8; with cache-ttl = 0
  nothing is cached.
- A login storm of 100 idle sessions authenticating at once (distinct
  logins: a cold cache, one Argon2id run each) all succeed: the checks wait
  in the keeper's queue instead of failing.
- [limits] auth-queue = 5 and 20 sessions at once: exactly the 15 beyond
  the bound get 454 4.7.0, the 5 others 235.
  In both the keeper is stopped while the checks are written to it (until
  its socket holds all of them, `ss -x`), so that it finds them together,
  as in a storm, however loaded the machine is.  subproxy_auth_queue_checks
  shows the checks held and returns to 0.
- A session whose check waits past session-timeout gets 421 4.4.2 (never a
  hang), and the keeper drops the waiting check (front tells it): no
  Argon2id for it (subproxy_auth_cancelled_total counts it).
- A reload (SIGHUP: a new generation, a new keeper) drops the cache: a
  password changed in the passwd file is refused though the old one was
  cached, and every login is verified by Argon2id again.
- Where the cache is: the keeper holds an entry for alice made with a key
  it keeps in inaccessible (PROT_NONE) memory; the test finds that key only
  by trying the candidates in the keeper's PROT_NONE pages against the
  documented construction, and neither the key nor the entry is anywhere in
  any front worker's memory (front never has the key, and the entries never leave the
  keeper).
"""

import base64
import contextlib
import hashlib
import os
import re
import signal
import subprocess
import threading
import time

from conftest import hash_password
from helpers import ALICE, ALICE_PW, BOB, BOB_PW, RawClient, free_port, submit_through
from opsutil import children, fronts, scrape, sigstop, val, wait_for
from test_reload import reload_ok

STORM_PW = "storm-secret"


def start_with_metrics(lab, sink, **kw):
    port = free_port()
    sp = lab.subproxy(sink, extra_config="[metrics]\naddress = 127.0.0.1:%d\n" % port, **kw)
    return sp, port


def hits(port):
    return val(scrape(port), "subproxy_auth_cache_hits_total")


def misses(port):
    return val(scrape(port), "subproxy_auth_cache_misses_total")


def held(port):
    return val(scrape(port), "subproxy_auth_queue_checks")


def login_once(sp, ca, user, password, code=235, enh="2.7.0"):
    c = RawClient(sp.implicit_port, ca)
    c.greeting.check(220)
    c.ehlo()
    r = c.auth_plain(user, password, code=code, enh=enh)
    c.cmd("QUIT", 221)
    c.close()
    return r


def test_second_login_from_cache(lab, lab_certs):
    sp, port = start_with_metrics(lab, lab.sink())
    ca = lab_certs.ca
    # defaults: a worker per online CPU, a queue as long as connections
    assert sp.wait_log(r"event=keeper-ready .* workers=%d key-workers=\d+ auth-queue=1000 "
                       r"cache-ttl=3600 cache-size=10000" % min(os.cpu_count(), 64), timeout=5)
    assert hits(port) == 0 and misses(port) == 0
    login_once(sp, ca, ALICE, ALICE_PW)
    assert sp.wait_log(r"event=auth .*login=alice@lab\.test result=ok verified=argon2id",
                       timeout=5)
    assert hits(port) == 0 and misses(port) == 1
    login_once(sp, ca, ALICE, ALICE_PW)
    assert sp.wait_log(r"event=auth .*login=alice@lab\.test result=ok verified=cache",
                       timeout=5)
    assert hits(port) == 1
    # a wrong password for the cached login is refused, and does not evict
    login_once(sp, ca, ALICE, ALICE_PW + "x", code=535, enh="5.7.8")
    login_once(sp, ca, ALICE, ALICE_PW[:-1], code=535, enh="5.7.8")
    assert hits(port) == 1
    # a message goes through after a cached login, as after any other
    submit_through(sp.implicit_port, ca, 250, "2.0.0")
    assert hits(port) == 2
    # bob is verified on his own
    login_once(sp, ca, BOB, BOB_PW)
    login_once(sp, ca, BOB, BOB_PW)
    assert hits(port) == 3
    # Argon2id ran for alice's first login, her two wrong passwords and
    # bob's first login
    assert misses(port) == 4
    assert val(scrape(port), "subproxy_auth_total", result="fail") == 2
    wait_for(lambda: held(port) == 0, what="no check held")


def test_cache_off(lab, lab_certs):
    sp, port = start_with_metrics(lab, lab.sink(), overrides=["auth.cache-ttl=0"])
    for _ in range(2):
        login_once(sp, lab_certs.ca, ALICE, ALICE_PW)
    assert hits(port) == 0
    assert misses(port) == 2
    wait_for(lambda: len(re.findall(r"result=ok verified=argon2id", sp.stderr_text())) == 2,
             what="two logins verified by Argon2id in the log")


# ---- the queue ----

def storm_passwd(tmp_path, n, opslimit, memlimit):
    """A passwd file with n logins u000@lab.test... sharing one Argon2id hash
    of STORM_PW with these costs (python3-nacl: subproxy --hash-password makes
    libsodium's interactive cost only)."""
    import nacl.pwhash
    h = nacl.pwhash.argon2id.str(STORM_PW.encode(), opslimit=opslimit,
                                 memlimit=memlimit).decode()
    path = tmp_path / "passwd-storm"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for i in range(n):
            f.write("u%03d@lab.test:{ARGON2ID}%s\n" % (i, h))
    return str(path)


def auth_line(user, password):
    tok = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    return ("AUTH PLAIN %s\r\n" % tok).encode()


def open_sessions(sp, ca, n):
    """n sessions, each with its greeting read and EHLO answered (in
    parallel threads: each makes a TLS handshake)."""
    out = [None] * n
    errors = []

    def one(i):
        try:
            c = RawClient(sp.implicit_port, ca, timeout=120)
            c.greeting.check(220)
            c.ehlo()
            out[i] = c
        except Exception as e:      # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    return out


def keeper_queued_bytes(keeper):
    """Octets waiting to be read in the keeper's sockets (ss -x Recv-Q)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % keeper):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (keeper, fd))
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    out = subprocess.run(["ss", "-x", "-a", "-n"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    total = 0
    for line in out.splitlines():
        f = line.split()
        # Netid State Recv-Q Send-Q Local-Address Port Peer-Address Port
        if len(f) >= 6 and f[0] == "u_seq" and f[5] in inodes:
            total += int(f[2])
    return total


CANCEL_OCTETS = 12                  # AUTH_CANCEL: a header (src/proc.h), no payload


def auth_req_octets(login, password, peer="127.0.0.1"):
    """The size of one AUTH_REQ datagram (src/proc.h header, keeper_msg.h)."""
    return 12 + 4 + len(login) + 4 + len(password) + 4 + len(peer)


@contextlib.contextmanager
def storm_stopped(sp, ca, n):
    """n sessions send AUTH at once, for n distinct logins (a cold cache).
    The keeper is stopped until front has written all n checks into its
    socket, so that it finds them together, whatever the machine's load;
    it goes on when the with-block, given the sessions, ends."""
    keeper = children(sp.proc.pid)["subproxy-keeper"]
    clients = open_sessions(sp, ca, n)
    want = sum(auth_req_octets("u%03d@lab.test" % i, STORM_PW) for i in range(n))
    sigstop(keeper)
    try:
        for i, c in enumerate(clients):
            c.send(auth_line("u%03d@lab.test" % i, STORM_PW))
        wait_for(lambda: keeper_queued_bytes(keeper) >= want, timeout=60,
                 what="%d octets of AUTH requests at the keeper" % want)
        assert keeper_queued_bytes(keeper) == want
        yield clients
    finally:
        os.kill(keeper, signal.SIGCONT)


def storm(sp, ca, n):
    """storm_stopped(), then the replies, in session order."""
    with storm_stopped(sp, ca, n) as clients:
        pass
    replies = [c.read_reply() for c in clients]
    return clients, replies


def test_login_storm_all_succeed(lab, lab_certs, tmp_path):
    """100 idle sessions authenticate at once with a cold cache: 98 checks
    wait for the two workers, and every session gets 235."""
    n = 100
    passwd = storm_passwd(tmp_path, n, 1, 8 << 20)       # cheap: a storm, not a benchmark
    sp, port = start_with_metrics(lab, lab.sink(), limits={"connections": n + 20,
                                                           "connections-per-ip": n + 20},
                                  overrides=["auth.passwd-file=%s" % passwd, "auth.workers=2"])
    assert sp.wait_log(r"event=keeper-ready .* workers=2 key-workers=\d+ auth-queue=%d " % (n + 20),
                       timeout=5)
    clients, replies = storm(sp, lab_certs.ca, n)
    bad = [(i, r) for i, r in enumerate(replies) if r.code != 235]
    assert not bad, bad[:5]
    wait_for(lambda: len(re.findall(r"result=ok verified=argon2id", sp.stderr_text())) == n,
             what="%d logins verified by Argon2id in the log" % n)
    assert "result=busy" not in sp.stderr_text()
    assert misses(port) == n and hits(port) == 0
    wait_for(lambda: held(port) == 0, what="no check held")
    for c in clients:
        c.cmd("QUIT", 221)
        c.close()


def test_auth_queue_bound(lab, lab_certs, tmp_path):
    """auth-queue = 5, 20 sessions at once: exactly 15 get 454 4.7.0.  The
    checks are slow (t=6, some 0.5 s each), so the keeper has read all 20
    long before the first ends."""
    n, bound = 20, 5
    passwd = storm_passwd(tmp_path, n, 6, 64 << 20)
    sp, port = start_with_metrics(lab, lab.sink(),
                                  limits={"connections": n + 20, "connections-per-ip": n + 20,
                                          "auth-queue": bound},
                                  overrides=["auth.passwd-file=%s" % passwd, "auth.workers=2"])
    assert sp.wait_log(r"event=keeper-ready .*auth-queue=5 ", timeout=5)
    clients, replies = storm(sp, lab_certs.ca, n)
    ok = [r for r in replies if r.code == 235]
    busy = [r for r in replies if r.code == 454]
    assert len(ok) == bound and len(busy) == n - bound, [(r.code, r.text) for r in replies]
    for r in busy:
        r.check(454, "4.7.0")
        assert "temporarily unavailable" in r.text, r
    wait_for(lambda: len(re.findall(r"result=busy", sp.stderr_text())) == n - bound,
             what="%d busy results in the log" % (n - bound))
    assert val(scrape(port), "subproxy_auth_total", result="busy") == n - bound
    # the checks held are back to 0 once the five are answered; none of
    # the refused ones ran Argon2id
    wait_for(lambda: held(port) == 0, what="no check held")
    assert misses(port) == bound
    # a refused session may try again: there is room now
    i = replies.index(busy[0])
    clients[i].cmd(auth_line("u%03d@lab.test" % i, STORM_PW).rstrip(b"\r\n"), 235, "2.7.0")
    for c in clients:
        c.cmd("QUIT", 221)
        c.close()


def bob_then_alice(keeper, bob, alice, tail=b""):
    """With the keeper stopped: bob's session sends his AUTH and, once it is
    in the keeper's socket, alice's session hers (and tail after it), so
    that the keeper will find them in that order.  Returns the octets of
    the two requests."""
    bob_req, alice_req = auth_req_octets(BOB, BOB_PW), auth_req_octets(ALICE, ALICE_PW)
    bob.send(auth_line(BOB, BOB_PW))
    wait_for(lambda: keeper_queued_bytes(keeper) == bob_req, timeout=30,
             what="bob's check at the keeper")
    alice.send(auth_line(ALICE, ALICE_PW) + tail)
    return bob_req + alice_req


def test_waiting_check_dropped_with_its_session(lab, lab_certs):
    """One worker; bob's check runs, alice's waits behind it, and alice's
    session reaches its session-timeout (the auth-timeout waits while the
    check does; test_authwait.py): 421 4.4.2, front tells the keeper,
    and the keeper drops her check before it costs Argon2id.  Shown by what
    the keeper did not do: her next login is verified by Argon2id (not
    found in the cache), and Argon2id ran twice in all (bob's check and
    that login).  The keeper is stopped until both checks and the cancel
    are in its socket, in that order.  Bob's session starts 5 s after
    alice's: 5 s to send both checks before her session-timeout, 5 s for
    his answer after it (2 s each were too few on a loaded machine)."""
    timeout, later = 10, 5
    # one front worker: both checks come through one slot, in order
    sp, port = start_with_metrics(lab, lab.sink(), limits={"session-timeout": timeout,
                                                           "auth-timeout": timeout},
                                  overrides=["auth.workers=1", "server.workers=1"])
    ca = lab_certs.ca
    keeper = children(sp.proc.pid)["subproxy-keeper"]
    b = open_sessions(sp, ca, 1)[0]
    time.sleep(later)
    a = open_sessions(sp, ca, 1)[0]
    sigstop(keeper)
    try:
        both = bob_then_alice(keeper, a, b)
        r = b.read_reply()
        r.check(421, "4.4.2")
        assert "Session time limit reached" in r.text, r
        wait_for(lambda: keeper_queued_bytes(keeper) == both + CANCEL_OCTETS,
                 timeout=30, what="alice's check and its cancel at the keeper")
    finally:
        os.kill(keeper, signal.SIGCONT)
    b.close()
    a.read_reply().check(235, "2.7.0")
    a.cmd("QUIT", 221)
    a.close()
    login_once(sp, ca, ALICE, ALICE_PW)
    assert sp.wait_log(r"event=auth .*login=alice@lab\.test result=ok verified=argon2id",
                       timeout=5)
    assert misses(port) == 2 and hits(port) == 0
    # the keeper counts the check it dropped
    assert val(scrape(port), "subproxy_auth_cancelled_total") == 1
    wait_for(lambda: held(port) == 0, what="no check held")


def test_reload_drops_the_cache(lab, lab_certs, tmp_path):
    """SIGHUP starts a new generation, whose keeper has a new key and an
    empty cache: alice's cached password, changed in the passwd file, is
    refused after the reload; her new one and bob's unchanged one are
    verified by Argon2id again."""
    path = tmp_path / "passwd"
    bob = hash_password(BOB_PW)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("%s:%s\n%s:%s\n" % (ALICE, hash_password(ALICE_PW), BOB, bob))
    sp = lab.subproxy(lab.sink(), overrides=["auth.passwd-file=%s" % path])
    ca = lab_certs.ca
    for user, pw in ((ALICE, ALICE_PW), (ALICE, ALICE_PW), (BOB, BOB_PW), (BOB, BOB_PW)):
        login_once(sp, ca, user, pw)
    wait_for(lambda: len(re.findall(r"result=ok verified=cache", sp.stderr_text())) == 2,
             what="alice and bob cached")
    new_pw = "alice-new-secret"
    with open(path, "w") as f:
        f.write("%s:%s\n%s:%s\n" % (ALICE, hash_password(new_pw), BOB, bob))
    start = reload_ok(sp, 2)
    login_once(sp, ca, ALICE, ALICE_PW, code=535, enh="5.7.8")
    login_once(sp, ca, ALICE, new_pw)
    login_once(sp, ca, BOB, BOB_PW)
    wait_for(lambda: len([ln for ln in sp.lines[start:] if "result=ok verified=argon2id" in ln])
             == 2, what="alice and bob verified by Argon2id after the reload")
    assert not [ln for ln in sp.lines[start:] if "verified=cache" in ln]


# ---- where the cache is ----

def mappings(pid, want):
    """(start, bytes) of pid's anonymous mappings (the heap too) whose
    permissions satisfy want(perms), up to 64 MiB each."""
    out = []
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            named = len(parts) > 5 and parts[5] not in ("[heap]", "[stack]")
            if not want(parts[1]) or named or end - start > 64 << 20:
                continue
            try:
                mem.seek(start)
                out.append((start, mem.read(end - start)))
            except (OSError, OverflowError, ValueError):
                continue
    return out


def every_mapping(pid):
    out = []
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if (len(parts) > 5 and parts[5].startswith("[v")) or end - start > 512 << 20:
                continue
            try:
                mem.seek(start)
                out.append(mem.read(end - start))
            except (OSError, OverflowError, ValueError):
                continue
    return out


def entry_tag(key, login, password):
    """P of src/authcache.h: BLAKE2b-256, keyed, of "P" || login || 0 || password."""
    return hashlib.blake2b(b"P" + login.encode() + b"\0" + password.encode(),
                           key=key, digest_size=32).digest()


def test_cache_lives_in_the_keeper_only(lab, lab_certs):
    sp = lab.subproxy(lab.sink())
    ca = lab_certs.ca
    login_once(sp, ca, ALICE, ALICE_PW)
    login_once(sp, ca, ALICE, ALICE_PW)
    assert sp.wait_log(r"result=ok verified=cache", timeout=5)
    keeper = children(sp.proc.pid)["subproxy-keeper"]
    keeper_readable = b"".join(d for _, d in mappings(keeper, lambda p: p.startswith("r")))
    # candidate keys: 32-octet windows of the keeper's inaccessible pages
    # that are not all zeros (guard pages are)
    found = []
    zero = bytes(4096)
    for _, data in mappings(keeper, lambda p: p.startswith("---")):
        for page in range(0, len(data), 4096):
            if data[page:page + 4096] == zero:
                continue
            for off in range(page, min(page + 4096, len(data)) - 31, 16):
                k = data[off:off + 32]
                if k.count(0) > 8:
                    continue
                tag = entry_tag(k, ALICE, ALICE_PW)
                if tag in keeper_readable:
                    found.append((k, tag))
    assert len(found) == 1, "the cache key and alice's entry: %d candidates" % len(found)
    key, tag = found[0]
    # another password gives another tag, not in the keeper
    assert entry_tag(key, ALICE, ALICE_PW + "x") not in keeper_readable
    # no front worker has the key or the entry, in any of its mappings
    for front in fronts(sp.proc.pid):
        for data in every_mapping(front):
            assert key not in data, "the cache key is in front's memory"
            assert tag not in data, "alice's cache entry is in front's memory"
    # nor does the parent
    for data in every_mapping(sp.proc.pid):
        assert key not in data and tag not in data
