"""
opsutil.py -- helpers for the operations tests (metrics, systemd notify,
graceful stop, live self-audit): scraping with curl and parsing with
python3-prometheus-client's own parsers, finding subproxy's processes, a
notify socket that plays systemd.
"""

import os
import socket
import subprocess
import time

from prometheus_client.openmetrics import parser as om_parser
from prometheus_client import parser as prom_parser

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def curl(url_or_path, *, unix=None, accept=None, method=None, timeout=10, head=False):
    """(status, headers text, body) of one request made with curl(1)."""
    argv = ["curl", "-sS", "--max-time", str(timeout), "-D", "-", "-o", "-"]
    if unix:
        argv += ["--unix-socket", unix]
    if accept:
        argv += ["-H", "Accept: " + accept]
    if head:
        argv += ["-I"]
    elif method:
        argv += ["-X", method]
    argv.append(url_or_path)
    r = subprocess.run(argv, capture_output=True, timeout=timeout + 5, check=False)
    assert r.returncode == 0, "curl failed (%d): %s" % (r.returncode, r.stderr.decode())
    raw = r.stdout.decode("utf-8")
    head_text, _, body = raw.partition("\r\n\r\n")
    status = int(head_text.split("\r\n", 1)[0].split()[1])
    return status, head_text, body


def parse(text, openmetrics=False):
    """{(sample name, ((label, value), ...)): value} with the client's parser
    for the format (it raises on anything malformed)."""
    p = om_parser if openmetrics else prom_parser
    out = {}
    for fam in p.text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, "duplicate sample %r" % (key,)
            out[key] = s.value
    return out


def scrape(port=None, unix=None, openmetrics=False):
    """Scrape /metrics (TCP port on 127.0.0.1, or a unix socket path) and
    parse it; both formats are checked for the right Content-Type."""
    url = "http://127.0.0.1:%d/metrics" % port if port else "http://localhost/metrics"
    status, head, body = curl(url, unix=unix, accept=OPENMETRICS if openmetrics else None)
    assert status == 200, (status, head, body)
    ctype = "application/openmetrics-text" if openmetrics else "text/plain; version=0.0.4"
    assert ("content-type: " + ctype) in head.lower(), head
    if openmetrics:
        assert body.endswith("# EOF\n"), body[-200:]
    return parse(body, openmetrics)


def val(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), None)


def _processes():
    """(pid, comm, state, ppid) of every process in /proc."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                st = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        yield int(d), st[st.index("(") + 1:st.rindex(")")], rest[0], int(rest[1])


def children(pid):
    """{comm: pid} of the direct children of pid (from /proc)."""
    return {comm: p for p, comm, state, ppid in _processes()
            if ppid == pid and state not in ("Z", "X")}


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("%s not reached within %ss" % (what, timeout))
        time.sleep(interval)


class NotifySocket:
    """A datagram socket playing the service manager's notify socket: a
    path in directory d, or an abstract name (abstract=True)."""

    def __init__(self, d, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "subproxy-test-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            path = os.path.join(str(d), "notify.sock")
            self.sock.bind(path)
            self.env = path
        self.messages = []       # (monotonic time, {key: value})

    def recv(self, timeout):
        """The next message, or None after timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        msg = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        self.messages.append((time.monotonic(), msg))
        return msg

    def wait(self, key, value=None, timeout=10.0):
        """Read messages until one has key (= value); returns it."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = self.recv(max(0.01, end - time.monotonic()))
            if m is not None and key in m and (value is None or m[key] == value):
                return m
        raise AssertionError("no %s%s within %ss; got %r" % (
            key, "=" + value if value else "", timeout, [m for _, m in self.messages]))

    def drain(self):
        while self.recv(0.01) is not None:
            pass

    def close(self):
        self.sock.close()


# ---- front workers ----

def all_children(parent):
    """The process names (comm) of parent's running children, one per
    child."""
    return [comm for p, comm, state, ppid in _processes()
            if ppid == parent and state not in ("Z", "X")]


def fronts(parent):
    """Pids of the running front workers of the daemon whose pid is parent
    (children named subproxy-front, zombies left out), sorted."""
    return sorted(p for p, comm, state, ppid in _processes()
                  if comm == "subproxy-front" and ppid == parent and state not in ("Z", "X"))


def wait_fronts(parent, n, timeout=30.0, exclude=()):
    """The pids once exactly n front workers run (none of them in exclude)."""
    return wait_for(lambda: (lambda p: p if len(p) == n and not set(p) & set(exclude)
                             else None)(fronts(parent)), timeout=timeout,
                    what="%d front workers" % n)


class Pinned:
    """with Pinned(worker, others): the other workers are stopped (SIGSTOP),
    so that a connection made inside the block is accepted by `worker`;
    they continue on leaving.  Nothing is timed: a stopped worker simply
    cannot accept."""

    def __init__(self, worker, others):
        self.worker = worker
        self.others = [p for p in others if p != worker]

    def __enter__(self):
        import signal
        for p in self.others:
            os.kill(p, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        import signal
        for p in self.others:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass


def served_by(sp, pid, start=0):
    """Session ids that worker pid accepted (its "event=connect" lines from
    log line index start)."""
    import re
    rx = re.compile(r"front\[%d\] \w+: session=(\w+) event=connect " % pid)
    return [m.group(1) for m in (rx.search(ln) for ln in sp.lines[start:]) if m]


def sigstop(pid, timeout=10.0):
    """Stop pid (SIGSTOP) and return once every thread of it is stopped.
    kill() returns before a multi-threaded process has stopped: one thread
    takes the signal and stops the others when it runs, and meanwhile
    another (a signer's slot thread, a keeper's worker) may still serve a
    request that was sent after the kill."""
    import signal
    os.kill(pid, signal.SIGSTOP)

    def stopped():
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
            states = []
            for t in tasks:
                with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
        except (FileNotFoundError, ProcessLookupError):
            return True         # gone: nothing of it runs
        return all(st in ("T", "t") for st in states) or None
    wait_for(stopped, timeout=timeout, what="pid %d stopped" % pid)

