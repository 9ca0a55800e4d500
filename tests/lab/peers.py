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

Nothing here listens on anything but 127.0.0.1.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from labutil import free_port

START_TIMEOUT = 15


def _listening(port):
    """Whether a TCP socket listens on port (the kernel's table: no
    connection is made, so a balancer forwards nothing to the daemon
    behind it)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _wait_listening(port, proc, what, timeout=START_TIMEOUT):
    end = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with status %d before listening" % (what, proc.returncode))
        if _listening(port):
            return
        if time.monotonic() > end:
            raise RuntimeError("%s not listening on %d after %ss" % (what, port, timeout))
        time.sleep(0.05)


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

    def stop(self):
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
        os.makedirs(self.etc, exist_ok=True)
        os.makedirs(os.path.join(self.dir, "queue"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        shutil.chown(os.path.join(self.dir, "data"), user="postfix")
        for _attempt in range(3):
            self.port = free_port()
            with open(os.path.join(self.etc, "main.cf"), "w") as f:
                f.write(self._main_cf())
            with open(os.path.join(self.etc, "master.cf"), "w") as f:
                f.write(self._master_cf())
            # creates the queue's subdirectories with their owners
            r = subprocess.run(["postfix", "-c", self.etc, "check"], capture_output=True,
                               timeout=60, check=False)
            if r.returncode != 0:
                raise RuntimeError("postfix check failed (%d):\n%s" % (r.returncode,
                                                                       self.log_text()))
            self.proc = subprocess.Popen([os.path.join(self.DAEMON_DIR, "master"), "-c",
                                          self.etc, "-d"], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
            try:
                _wait_listening(self.port, self.proc, "postfix master")
                return self
            except RuntimeError:
                _stop_group(self.proc)
                if "bind" not in self.log_text():
                    raise RuntimeError("postfix did not start:\n" + self.log_text())
        raise RuntimeError("postfix did not start:\n" + self.log_text())

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

    def stop(self):
        _stop_group(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
