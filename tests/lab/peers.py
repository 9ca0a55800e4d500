"""
peers.py -- real third-party servers around subproxy in the lab, each run
privately by the test that needs it and stopped at teardown:

  HAProxy   Debian's haproxy in TCP mode, in the foreground with its own
            configuration on loopback, forwarding to subproxy with the PROXY
            protocol header (send-proxy or send-proxy-v2).
  Postfix   Debian's postfix as a relay MTA: its own configuration directory
            and queue in a temporary directory, `master -c DIR -d` in the
            foreground (as root), smtpd on 127.0.0.1 at a free port with the
            lab's relay certificate, XCLIENT allowed from 127.0.0.1, relaying
            everything to a lab sink over TLS.  The package's own instance
            (/etc/postfix, the system queue) is never started or touched: no
            main.cf is written there, every command names the private
            configuration directory.

Nothing here listens on anything but 127.0.0.1.  start() returns once the
daemon itself (not merely some process) listens on its port, and picks
another port when it could not bind the one chosen.  report() says whether
the daemon runs, who listens on its ports, and the end of its log; a
failing test's output carries it for every peer the test started
(conftest.py).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from labutil import free_port

START_TIMEOUT = 15


def _listen_sockets(port):
    """{inode: "address:port"} of the TCP sockets in LISTEN on port (the
    kernel's tables)."""
    out = {}
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            with open(table, encoding="ascii") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            addr, hexport = fields[1].rsplit(":", 1)
            if fields[3] != "0A" or int(hexport, 16) != port:
                continue
            raw = bytes.fromhex(addr)
            # the kernel prints each 32-bit word in host order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            host = socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, raw)
            out[int(fields[9])] = ("[%s]:%d" if v6 else "%s:%d") % (host, port)
    return out


def _held_sockets(pid):
    """The inodes of the sockets process pid holds (empty if it is gone)."""
    out = set()
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue            # closed meanwhile
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def _socket_owners(inodes):
    """{inode: [(pid, command)]} of the processes holding those sockets."""
    owners = {}
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        held = _held_sockets(pid) & set(inodes)
        if not held:
            continue
        try:
            with open("/proc/%d/comm" % pid, encoding="utf-8", errors="replace") as f:
                comm = f.read().strip()
        except OSError:
            continue
        for i in held:
            owners.setdefault(i, []).append((pid, comm))
    return owners


def _listening(port, pid):
    """Whether process pid itself holds a socket listening on
    127.0.0.1:port (the kernel's tables: no connection is made, so a
    balancer forwards nothing to the daemon behind it).  Another process
    listening on that port does not count: a test running beside us may
    have been given the same free port, and then our daemon fails to bind
    it and exits (found so: Postfix was taken for started, its master had
    exited, subproxy's relay connections were refused)."""
    ours = {i for i, a in _listen_sockets(port).items() if a == "127.0.0.1:%d" % port}
    return bool(ours & _held_sockets(pid))


def _wait_listening(port, proc, what, timeout=START_TIMEOUT):
    end = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with status %d before listening" % (what, proc.returncode))
        if _listening(port, proc.pid):
            return
        if time.monotonic() > end:
            raise RuntimeError("%s not listening on %d after %ss" % (what, port, timeout))
        time.sleep(0.05)


def _listeners_text(port):
    """Who listens on port, one line each (for failure reports)."""
    socks = _listen_sockets(port)
    owners = _socket_owners(socks)
    return "\n".join("%s held by %s" % (a, ", ".join("%s[%d]" % (c, p) for p, c in
                                                   owners.get(i, [])) or "nobody found")
                     for i, a in sorted(socks.items(), key=lambda x: x[1])) or "nobody"


def _tail(text, lines=80):
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _status_text(proc):
    if proc is None:
        return "not started"
    rc = proc.poll()
    if rc is None:
        return "pid %d running" % proc.pid
    if rc < 0:
        return "pid %d killed by %s" % (proc.pid, signal.Signals(-rc).name)
    return "pid %d exited with status %d" % (proc.pid, rc)


# Peers started since the last forget() and those still running (a
# module's peer): conftest puts their report() into the output of a test
# that fails (a peer the test already stopped reports what it saw when it
# was stopped).
_STARTED = []


def started():
    return list(_STARTED)


def forget():
    """After a test: keep only the peers still running."""
    _STARTED[:] = [p for p in _STARTED if p.proc is not None and p.proc.poll() is None]


def _stop_group(proc, timeout=10):
    """SIGTERM to the process group (started with start_new_session), then
    SIGKILL if it does not go."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class HAProxy:
    """routes: {name: (backend_port, "send-proxy" | "send-proxy-v2")}; after
    start(), port(name) is the frontend port for that route.  checks=True:
    health checks every second that carry a header too (check-send-proxy;
    with send-proxy-v2 HAProxy uses the LOCAL command for them)."""

    def __init__(self, workdir, routes, checks=False):
        self.dir = str(workdir)
        self.routes = dict(routes)
        self.checks = checks
        self.ports = {}
        self.proc = None
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        self.log = os.path.join(self.dir, "haproxy.log")
        self._final = None

    def _config(self):
        out = ["global", "    maxconn 200", "",
               "defaults", "    mode tcp", "    timeout connect 5s",
               "    timeout client 60s", "    timeout server 60s", ""]
        for name, (backend, send) in self.routes.items():
            assert send in ("send-proxy", "send-proxy-v2"), send
            out += ["frontend f_%s" % name, "    bind 127.0.0.1:%d" % self.ports[name],
                    "    default_backend b_%s" % name, "",
                    "backend b_%s" % name, "    server s 127.0.0.1:%d %s%s" % (
                        backend, send, " check check-send-proxy inter 1s" if self.checks else ""),
                    ""]
        return "\n".join(out)

    def start(self):
        _STARTED.append(self)
        for _attempt in range(3):
            self.ports = {name: free_port() for name in self.routes}
            with open(self.cfg, "w") as f:
                f.write(self._config())
            logf = open(self.log, "a")
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True)
            logf.close()
            try:
                for port in self.ports.values():
                    _wait_listening(port, self.proc, "haproxy")
                return self
            except RuntimeError:
                _stop_group(self.proc)
                if "cannot bind" not in self.log_text():
                    raise RuntimeError("haproxy did not start:\n" + self.log_text())
        raise RuntimeError("haproxy did not start:\n" + self.log_text())

    def port(self, name):
        return self.ports[name]

    def log_text(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def title(self):
        return "haproxy (%s)" % ", ".join("%s on %d" % kv for kv in self.ports.items())

    def report(self):
        """haproxy's state, who listens on its ports, and its log."""
        if self._final is not None:
            return self._final
        return "haproxy: %s\n%s\nlog %s:\n%s" % (
            _status_text(self.proc),
            "\n".join("port %d: %s" % (p, _listeners_text(p)) for p in self.ports.values()),
            self.log, _tail(self.log_text()))

    def stop(self):
        if self.proc is not None and self._final is None:
            self._final = "when the test stopped it:\n" + self.report()
        _stop_group(self.proc)


class Postfix:
    """A private Postfix relay.  relay_to: the port of a STARTTLS sink on
    127.0.0.1 that Postfix delivers everything to; cert/key: its smtpd TLS
    certificate.  After start(): .port, .log_text(), .wait_log(regex)."""

    DAEMON_DIR = "/usr/lib/postfix/sbin"

    def __init__(self, relay_to, cert, key, xclient_hosts="127.0.0.1"):
        self.relay_to = relay_to
        self.cert, self.key = str(cert), str(key)
        self.xclient_hosts = xclient_hosts
        self.proc = None
        self.port = None
        # a world-traversable base (Postfix's daemons drop to the postfix
        # user and open files under it); removed at stop()
        self.dir = tempfile.mkdtemp(prefix="subproxy-postfix.")
        os.chmod(self.dir, 0o755)
        self.etc = os.path.join(self.dir, "etc")
        self.maillog = os.path.join(self.dir, "maillog")
        self._final = None

    def _main_cf(self):
        d = self.dir
        return "\n".join([
            "# private lab instance written by tests/lab/peers.py",
            "compatibility_level = 3.6",
            "queue_directory = %s/queue" % d,
            "data_directory = %s/data" % d,
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "myhostname = relay.lab.test",
            "mydestination =",
            "mynetworks = 127.0.0.1/32",
            "alias_maps =",
            "alias_database =",
            "local_recipient_maps =",
            "relayhost = [127.0.0.1]:%d" % self.relay_to,
            "smtp_tls_security_level = encrypt",
            "smtpd_tls_cert_file = %s" % self.cert,
            "smtpd_tls_key_file = %s" % self.key,
            "smtpd_tls_security_level = may",
            "smtpd_authorized_xclient_hosts = %s" % self.xclient_hosts,
            # XCLIENT LOGIN counts as SASL authentication only where SASL is
            # on (Cyrus, no mechanisms configured: nobody can AUTH directly)
            "smtpd_sasl_auth_enable = yes",
            # only a login passed with XCLIENT may relay: the client address
            # XCLIENT sets is not in mynetworks
            "smtpd_relay_restrictions = permit_sasl_authenticated, reject",
            "smtpd_sasl_authenticated_header = yes",
            "maillog_file = %s" % self.maillog,
            "maillog_file_prefixes = %s" % d,
            "",
        ])

    def _master_cf(self):
        services = [
            "127.0.0.1:%d inet n - n - - smtpd" % self.port,
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        return "\n".join(services) + "\n"

    def start(self):
        assert os.geteuid() == 0, "a private Postfix needs root"
        _STARTED.append(self)
        os.makedirs(self.etc, exist_ok=True)
        os.makedirs(os.path.join(self.dir, "queue"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        shutil.chown(os.path.join(self.dir, "data"), user="postfix")
        self.port = free_port()
        self._write_config()
        # creates the queue's subdirectories with their owners (slow: done
        # once, before the port below is chosen, so that another test has
        # little time to be given the same port)
        r = subprocess.run(["postfix", "-c", self.etc, "check"], capture_output=True,
                           timeout=60, check=False)
        if r.returncode != 0:
            raise RuntimeError("postfix check failed (%d):\n%s%s" % (
                r.returncode, r.stderr.decode(errors="replace"), self.log_text()))
        tries = []
        for _attempt in range(3):
            self.port = free_port()
            self._write_config()
            self.proc = subprocess.Popen([os.path.join(self.DAEMON_DIR, "master"), "-c",
                                          self.etc, "-d"], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
            try:
                _wait_listening(self.port, self.proc, "postfix master")
                return self
            except RuntimeError as e:
                # master says why only to syslog (not to maillog_file:
                # postlogd is not running yet), so say what we can see
                tries.append("%s; listening on port %d now: %s" % (
                    e, self.port, _listeners_text(self.port)))
                _stop_group(self.proc)
        raise RuntimeError("postfix did not start:\n%s\n%s" % ("\n".join(tries), self.report()))

    def _write_config(self):
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(self._main_cf())
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(self._master_cf())

    def log_text(self):
        try:
            with open(self.maillog, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=15.0):
        """The first maillog line matching the regex, waiting up to timeout
        seconds; None if none came."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            for line in self.log_text().splitlines():
                if rx.search(line):
                    return line
            if time.monotonic() > end:
                return None
            time.sleep(0.1)

    def title(self):
        return "postfix on port %s" % self.port

    def report(self):
        """master's state, who listens on the smtpd port, and the maillog."""
        if self._final is not None:
            return self._final
        return "master: %s\nport %s: %s\nmaillog %s:\n%s" % (
            _status_text(self.proc), self.port,
            _listeners_text(self.port) if self.port else "-", self.maillog,
            _tail(self.log_text()))

    def stop(self):
        if self.proc is not None and self._final is None:
            self._final = "when the test stopped it:\n" + self.report()
        _stop_group(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
