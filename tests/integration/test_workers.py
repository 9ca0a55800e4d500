"""
test_workers.py -- several front workers ([server] workers) and the restart
policy (issue 14 item 5, issue 9 item 6): SIGSYS and a signer that breaks the
protocol fail closed, other deaths are replaced.

Which worker accepts a connection is the kernel's choice; to put a session
on a given worker the other workers are stopped (SIGSTOP) while it connects
(opsutil.Pinned): a stopped process cannot accept, so the one that runs
does.  Nothing here waits for a fixed time.
"""

import ctypes
import os
import platform
import re
import signal
import socket

import pytest

from helpers import (ALICE, ALICE_PW, RCPT, ConnectionClosed, RawClient, dot_stuff, free_port,
                     half_sent, make_message, raw_starttls_client, submit_through)
from opsutil import Pinned, fronts, scrape, served_by, val, wait_fronts, wait_for
from test_dkim import roles
from test_session_limits import message_of


def pinned_client(sp, ca, worker, workers, starttls=False):
    """A greeted client whose session worker `worker` accepted."""
    start = len(sp.lines)
    with Pinned(worker, workers):
        c = raw_starttls_client(sp.starttls_port, ca) if starttls else \
            RawClient(sp.implicit_port, ca)
        c.greeting.check(220)
    wait_for(lambda: served_by(sp, worker, start), timeout=10,
             what="worker %d's connect line" % worker)
    return c


def start_two(lab, sink, **kw):
    server = dict(kw.pop("server", {}), workers=2)
    sp = lab.subproxy(sink, server=server, **kw)
    assert sp.wait_log(r"event=ready generation=1 workers=2", timeout=30)
    return sp, wait_fronts(sp.proc.pid, 2)


def test_two_workers_both_serve(lab):
    """workers = 2: two front processes accept on the same listeners, each
    logs the sessions it accepted, and a message sent through each is
    relayed."""
    s = lab.sink()
    sp, (a, b) = start_two(lab, s)
    assert len(fronts(sp.proc.pid)) == 2
    for w in (a, b):
        assert sp.wait_log(r"front\[%d\] info: event=started .* generation=1 worker=[01]" % w,
                           timeout=5)
        c = pinned_client(sp, lab.certs.ca, w, (a, b))
        c.login()
        c.mail(ALICE)
        c.rcpt(RCPT, code=250)
        c.data(dot_stuff(make_message(subject="via %d" % w)), 250, "2.0.0")
        c.cmd("QUIT", 221)
    subjects = sorted(m["data"].split(b"Subject: ")[1].split(b"\r\n")[0] for m in s.messages())
    assert subjects == sorted(b"via %d" % w for w in (a, b))


@pytest.mark.sanitized
def test_per_address_limit_holds_across_workers(lab):
    """[limits] connections-per-ip = 3 with sessions spread over two
    workers: two on one, one on the other; a fourth is refused whichever
    worker takes it; a place freed on one worker is usable on the other."""
    sp, (a, b) = start_two(lab, lab.sink(), limits={"connections-per-ip": 3})
    held = [pinned_client(sp, lab.certs.ca, a, (a, b), starttls=True),
            pinned_client(sp, lab.certs.ca, a, (a, b), starttls=True),
            pinned_client(sp, lab.certs.ca, b, (a, b), starttls=True)]
    for w in (a, b):
        start = len(sp.lines)
        with Pinned(w, (a, b)):
            c = raw_starttls_client(sp.starttls_port, lab.certs.ca, read_greeting=False)
            c.read_reply().check(421, "4.7.0")
            c.expect_closed()
        assert sp.wait_log(r"front\[%d\] warn: session=\w+ event=refused .*Too many "
                           r"connections from your address" % w, timeout=5, start=start)
    last = held.pop()                     # b's place
    last.cmd("QUIT", 221)
    last.expect_closed()
    # the place is free once b has closed that descriptor (it counts until
    # then): a client pinned to a is admitted within a few tries
    wait_for(lambda: admitted(sp, lab.certs.ca, a, (a, b)), timeout=10,
             what="a place freed on b, taken on a")


def admitted(sp, ca, worker, workers):
    """One try: a client accepted by `worker` gets 220 (then QUIT), not 421."""
    with Pinned(worker, workers):
        c = raw_starttls_client(sp.starttls_port, ca, read_greeting=False)
        r = c.read_reply()
    if r.code != 220:
        c.close()
        return False
    c.cmd("QUIT", 221)
    return True


def test_global_limit_holds_across_workers(lab):
    sp, (a, b) = start_two(lab, lab.sink(), limits={"connections": 2,
                                                    "connections-per-ip": 100})
    held = [pinned_client(sp, lab.certs.ca, w, (a, b), starttls=True) for w in (a, b)]
    for w in (a, b):
        with Pinned(w, (a, b)):
            c = raw_starttls_client(sp.starttls_port, lab.certs.ca, read_greeting=False)
            c.read_reply().check(421, "4.3.2")
            c.expect_closed()
    for h in held:
        h.cmd("QUIT", 221)


def test_login_limits_hold_across_workers(lab):
    """sessions-per-login and login-memory count a login's sessions on every
    worker: one session of alice on each worker fills sessions-per-login =
    2 for a third on either; 60 KB held on one worker leave no room for
    60 KB more on the other (login-memory = 100k), and once that message is
    relayed the other's fits."""
    s = lab.sink()
    sp, (a, b) = start_two(lab, s, limits={"sessions-per-login": 2, "message-size": "100k",
                                           "login-memory": "100k"})
    on_a, on_b = (pinned_client(sp, lab.certs.ca, w, (a, b)).login() for w in (a, b))
    with Pinned(a, (a, b)):
        c = RawClient(sp.implicit_port, lab.certs.ca)
        c.greeting.check(220)
    c.ehlo()
    r = c.auth_plain(ALICE, ALICE_PW, code=421, enh="4.7.0")
    assert "sessions-per-login 2" in r.text, r
    first, second = message_of(60000, "held on a"), message_of(60000, "refused on b")
    for x in (on_a, on_b):
        x.mail(ALICE)
        x.rcpt(RCPT, code=250)
    on_a.bdat(first[:50000]).check(250, "2.0.0")
    on_b.bdat(second, last=True).check(452, "4.3.1")
    assert s.data_starts() == 0
    on_a.bdat(first[50000:], last=True).check(250, "2.0.0")
    on_b.mail(ALICE)
    on_b.rcpt(RCPT, code=250)
    on_b.data(dot_stuff(second), 250, "2.0.0")
    assert len(s.messages()) == 2
    for x in (on_a, on_b):
        x.cmd("QUIT", 221)


@pytest.mark.sanitized
def test_worker_killed_mid_submission(lab):
    """SIGKILL of one worker while each worker has a message half sent: the
    other worker's message completes and is relayed; the killed worker's
    client gets no acknowledgement and the relay never completes its data;
    the parent logs the signal and starts a replacement in the same slot,
    which serves new sessions; the counters do not go back."""
    port = free_port()
    s = lab.sink()
    sp, (a, b) = start_two(lab, s, extra_config="[metrics]\naddress = 127.0.0.1:%d\n" % port)
    ca = lab.certs.ca
    ca_ = pinned_client(sp, ca, a, (a, b))
    cb = pinned_client(sp, ca, b, (a, b))
    extra = pinned_client(sp, ca, a, (a, b))          # an idle one on a, too
    tail_a = half_sent(ca_.login(), "killed with its worker")
    tail_b = half_sent(cb.login(), "finished by the other worker")
    before = scrape(port)
    start = len(sp.lines)
    os.kill(a, signal.SIGKILL)
    assert sp.wait_log(r"event=worker-died process=front pid=%d killed by signal 9 .*worker=\d:"
                       r" replacing it" % a, timeout=10, start=start), sp.stderr_text(20)
    line = sp.wait_log(r"event=worker-replaced generation=1 worker=\d pid=(\d+) previous=%d"
                       % a, timeout=10, start=start)
    new = int(re.search(r"pid=(\d+) previous", line).group(1))
    # the other worker's transaction goes on
    cb.send(tail_b)
    cb.read_reply().check(250, "2.0.0")
    cb.cmd("QUIT", 221)
    # the killed worker's client: no reply, the connection is gone
    with pytest.raises((ConnectionClosed, OSError)):
        ca_.send(tail_a)
        ca_.read_reply()
    with pytest.raises((ConnectionClosed, OSError)):
        extra.cmd("NOOP")
    msgs = s.messages()
    assert len(msgs) == 1 and b"finished by the other worker" in msgs[0]["data"], msgs
    assert s.data_completions() == 1
    # the replacement serves, in a's slot, with the same sandbox
    workers = wait_fronts(sp.proc.pid, 2, exclude=(a,))
    assert new in workers and b in workers
    assert sp.wait_log(r"front\[%d\] info: event=started " % new, timeout=30)
    c = pinned_client(sp, ca, new, workers)
    c.login()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(make_message(subject="via the replacement")), 250, "2.0.0")
    c.cmd("QUIT", 221)
    # counters folded from the dead worker's slice: none went back
    after = scrape(port)
    for name in ("subproxy_sessions_total", "subproxy_messages_relayed_total"):
        assert val(after, name) >= val(before, name), name
    assert val(after, "subproxy_messages_relayed_total") == 2


def test_worker_killed_limits_counts(lab):
    """The dead worker's connections stop counting (the parent clears its
    slice): with connections-per-ip = 2 and both places held on worker a,
    killing a frees them for sessions on the other worker."""
    sp, (a, b) = start_two(lab, lab.sink(), limits={"connections-per-ip": 2})
    held = [pinned_client(sp, lab.certs.ca, a, (a, b), starttls=True) for _ in range(2)]
    with Pinned(b, (a, b)):
        c = raw_starttls_client(sp.starttls_port, lab.certs.ca, read_greeting=False)
        c.read_reply().check(421, "4.7.0")
    os.kill(a, signal.SIGKILL)
    for h in held:
        with pytest.raises((ConnectionClosed, OSError)):
            h.cmd("NOOP")
    assert sp.wait_log(r"event=worker-replaced generation=1 ", timeout=10)
    ok = [pinned_client(sp, lab.certs.ca, b, fronts(sp.proc.pid), starttls=True)
          for _ in range(2)]
    for o in ok:
        o.cmd("QUIT", 221)


def test_restart_storm_stops_the_service(lab):
    """More than [server] worker-restarts replacements within a minute: the
    service stops (exit 1) and says why."""
    sp, workers = start_two(lab, lab.sink(), server={"worker-restarts": 2})
    killed = []
    for n in range(3):
        victim = workers[0]
        killed.append(victim)
        os.kill(victim, signal.SIGKILL)
        if n < 2:
            assert sp.wait_log(r"event=worker-replaced .*previous=%d" % victim, timeout=10)
            workers = wait_fronts(sp.proc.pid, 2, exclude=killed)
            submit_through(sp.implicit_port, lab.certs.ca, 250, "2.0.0")
    assert sp.expect_exit(1, timeout=60) == 1
    text = sp.stderr_text()
    assert re.search(r"event=restart-limit process=front pid=%d killed by signal 9 .*: 2 front "
                     r"workers were replaced within the last 60 s and \[server\] "
                     r"worker-restarts allows 2: stopping the service \(fail closed\)"
                     % killed[2], text), text[-3000:]


def test_no_restarts_configured(lab):
    """worker-restarts = 0: the first worker death stops the service, as a
    single front did before."""
    sp, workers = start_two(lab, lab.sink(), server={"worker-restarts": 0})
    os.kill(workers[1], signal.SIGKILL)
    assert sp.expect_exit(1, timeout=60) == 1
    assert "event=restart-limit" in sp.stderr_text()


# ---- a real seccomp violation ----

PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_PEEKTEXT = 12, 13, 1
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207
SYS_UNAME = 63      # not in seccomp/front.policy


class UserRegs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
        "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
        "gs_base", "ds", "es", "fs", "gs")]


def inject_syscall(pid, nr):
    """Make process pid execute system call nr, as a bug in it would: attach
    with ptrace, point its next instruction at the `syscall` it is stopped
    after (it waits in epoll_wait), set the call number and let it go.
    Returns None, or the reason it cannot be done here (pytest skip)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(PTRACE_SEIZE, pid, None, None) != 0:
        return "ptrace not permitted here: %s" % os.strerror(ctypes.get_errno())
    try:
        assert libc.ptrace(PTRACE_INTERRUPT, pid, None, None) == 0
        _, status = os.waitpid(pid, 0x40000000)          # __WALL
        assert os.WIFSTOPPED(status), status
        regs = UserRegs()
        assert libc.ptrace(PTRACE_GETREGS, pid, None, ctypes.byref(regs)) == 0
        ctypes.set_errno(0)
        word = libc.ptrace(PTRACE_PEEKTEXT, pid, ctypes.c_void_p(regs.rip - 2), None)
        assert ctypes.get_errno() == 0
        assert word & 0xffff == 0x050f, "not stopped after a syscall instruction: %x" % word
        regs.rip -= 2
        regs.rax = nr
        regs.orig_rax = 0xffffffffffffffff      # no restart of the interrupted call
        regs.rdi = 0
        assert libc.ptrace(PTRACE_SETREGS, pid, None, ctypes.byref(regs)) == 0
    finally:
        libc.ptrace(PTRACE_DETACH, pid, None, None)
    return None


def test_seccomp_violation_in_a_worker_stops_the_service(lab):
    """A front worker that makes a system call its filter forbids is killed
    by the kernel (SIGSYS); the parent stops the whole service (exit 1,
    naming the worker and the signal) instead of replacing it, and leaves
    no process behind.  Messages in flight on either worker are not
    acknowledged and nothing reaches the relay.  The call is made by the worker itself (injected with
    ptrace), not sent as a signal: see also test_sandbox.py, which sends
    SIGSYS with kill(2) -- the same termination status, so the same policy."""
    if platform.machine() != "x86_64":
        pytest.skip("the injection uses x86_64 registers")
    s = lab.sink()
    sp, (a, b) = start_two(lab, s)
    # a message half sent through each worker: neither may be acknowledged
    ca, cb = (pinned_client(sp, lab.certs.ca, w, (a, b)) for w in (a, b))
    tails = [half_sent(c.login(), "in flight at the violation") for c in (ca, cb)]
    why = inject_syscall(a, SYS_UNAME)
    if why:
        pytest.skip(why)
    # the clients finish at once, racing the parent's reaction: whatever
    # they are told, a 250 only for what the relay has
    acked = []
    for c, tail in zip((ca, cb), tails):
        try:
            c.send(tail)
            r = c.read_reply()
        except (ConnectionClosed, OSError):
            continue                             # the worker that died: no reply at all
        if r.code == 250:
            acked.append(c)
        else:
            assert 400 <= r.code < 500, r        # 451 (the signer is gone) or 421
    assert sp.expect_exit(1, timeout=60) == 1
    assert ca not in acked                       # its worker died with the message
    assert len(s.messages()) == s.data_completions() == len(acked)
    text = sp.stderr_text()
    assert re.search(r"event=child-died process=front pid=%d killed by signal %d \(Bad system "
                     r"call\) generation=1 worker=\d: a seccomp violation: stopping the "
                     r"service \(fail closed\)" % (a, signal.SIGSYS), text), text[-3000:]
    assert "worker-replaced" not in text
    assert not os.path.exists("/proc/%d/status" % b) or \
        "Z" in open("/proc/%d/stat" % b).read().split(")")[1].split()[0]


# ---- the signer keeps up with the workers ----

class ThreadStopped:
    """with ThreadStopped(tid): one thread of another process is held in a
    ptrace stop (the process's other threads run on), as a long signature
    would hold it; it runs again on leaving."""

    def __init__(self, tid):
        self.tid = tid
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.restype = ctypes.c_long
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                                     ctypes.c_void_p]

    def __enter__(self):
        assert self.libc.ptrace(PTRACE_SEIZE, self.tid, None, None) == 0, \
            os.strerror(ctypes.get_errno())
        assert self.libc.ptrace(PTRACE_INTERRUPT, self.tid, None, None) == 0
        _, status = os.waitpid(self.tid, 0x40000000)     # __WALL
        assert os.WIFSTOPPED(status), status
        return self

    def __exit__(self, *exc):
        self.libc.ptrace(PTRACE_DETACH, self.tid, None, None)


def signer_thread(signer, slot):
    """The id of the signer's thread serving worker slot `slot`."""
    for tid in os.listdir("/proc/%d/task" % signer):
        with open("/proc/%d/task/%s/comm" % (signer, tid)) as f:
            if f.read().strip() == "signer-slot%d" % slot:
                return int(tid)
    raise AssertionError("no thread signer-slot%d in process %d" % (slot, signer))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: ptrace on the signer")
def test_signer_serves_the_workers_in_parallel(lab):
    """The signer serves each worker slot on a thread of its own, so the
    workers' messages are signed on as many cores at once.  With the
    thread of worker a's slot held, a message through worker b is still
    signed and relayed while a's waits; a's completes once its thread runs
    again.  (A signer with one thread for all slots fails this.)"""
    s = lab.sink()
    sp, (a, b) = start_two(lab, s)
    line = sp.wait_log(r"front\[%d\] info: event=started .* worker=(\d)" % a, timeout=5)
    tid = signer_thread(roles(sp)["signer"], int(re.search(r"worker=(\d)", line).group(1)))
    ca, cb = (pinned_client(sp, lab.certs.ca, w, (a, b)).login() for w in (a, b))
    tail_a = half_sent(ca, "signed when its thread runs again")
    tail_b = half_sent(cb, "signed while the other thread is held")
    with ThreadStopped(tid):
        ca.send(tail_a)                       # a's request waits for its thread
        cb.send(tail_b)
        cb.read_reply().check(250, "2.0.0")
        msgs = s.messages()
        assert len(msgs) == 1 and b"while the other thread is held" in msgs[0]["data"], msgs
    ca.read_reply().check(250, "2.0.0")
    assert len(s.messages()) == 2
    for c in (ca, cb):
        c.cmd("QUIT", 221)


# ---- a broken invariant between trusted parts ----

SYS_PIDFD_OPEN, SYS_PIDFD_GETFD = 434, 438


def steal_fd(pid, fd):
    """A copy of process pid's descriptor fd (pidfd_getfd(2), as root: the
    roles are not dumpable).  Returns the copy, or None when the kernel
    does not allow it here."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    pidfd = libc.syscall(SYS_PIDFD_OPEN, ctypes.c_int(pid), ctypes.c_uint(0))
    if pidfd < 0:
        return None
    try:
        copy = libc.syscall(SYS_PIDFD_GETFD, ctypes.c_int(pidfd), ctypes.c_int(fd),
                            ctypes.c_uint(0))
    finally:
        os.close(pidfd)
    return copy if copy >= 0 else None


def slot_socket(pid):
    """A copy of one of the signer's client-slot sockets (the only
    SOCK_SEQPACKET sockets it holds once it serves), or None."""
    for name in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
        if not os.readlink("/proc/%d/fd/%s" % (pid, name)).startswith("socket:"):
            continue
        fd = steal_fd(pid, int(name))
        if fd is None:
            return None
        s = socket.socket(fileno=fd)
        if s.type == socket.SOCK_SEQPACKET:
            return s
        s.close()
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: pidfd_getfd on the signer")
def test_signer_breaking_the_protocol_fails_closed(lab):
    """The signer is alive but sends a worker a broken frame (as a signer
    gone wrong would): a broken invariant between trusted parts.  The
    worker exits FRONT_EXIT_PEER (3) instead of being replaced, and the
    parent stops the whole service (exit 1) saying why; the half-sent
    message on the other worker is not acknowledged unless relayed."""
    s = lab.sink()
    sp, (a, b) = start_two(lab, s)
    signer = int(re.search(r"signer=(\d+)", sp.wait_log(r"event=parent-ready ", timeout=5))
                 .group(1))
    held = [pinned_client(sp, lab.certs.ca, w, (a, b)) for w in (a, b)]
    tails = [half_sent(c.login(), "in flight at the broken frame") for c in held]
    sock = slot_socket(signer)
    assert sock is not None, "cannot take a socket of the signer (pidfd_getfd)"
    with sock:
        sock.send(b"\x00\x01\x02")                  # shorter than any frame header
    line = sp.wait_log(r"front\[\d+\] \w+: event=signer-lost reason=protocol-error", timeout=10)
    assert line, sp.stderr_text(20)
    broken = int(re.search(r"front\[(\d+)\]", line).group(1))
    acked = 0
    for c, tail in zip(held, tails):
        try:
            c.send(tail)
            r = c.read_reply()
        except (ConnectionClosed, OSError):
            continue
        if r.code == 250:
            acked += 1
        else:
            assert 400 <= r.code < 500, r
    assert sp.expect_exit(1, timeout=60) == 1
    assert len(s.messages()) == s.data_completions() == acked
    text = sp.stderr_text()
    assert re.search(r"event=child-died process=front pid=%d exit status 3 generation=1 "
                     r"worker=\d: its signer, keeper or recorder went away or broke the "
                     r"protocol .*: stopping the service \(fail closed\)" % broken, text), \
        text[-3000:]
    assert "worker-replaced" not in text and "worker-died" not in text
