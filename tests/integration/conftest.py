"""
conftest.py -- fixtures for subproxy's integration tests.

Session-wide (made once per run, at run time, in a temporary directory --
never in the tree):
  lab_certs     LabCerts: a lab CA and leaves (ECDSA P-256): mail.lab.test
                (subproxy), relay.lab.test (the sink), an expired
                relay.lab.test leaf, a wrong-name leaf (wrong.lab.test), each
                with its own key; .ca, .mail, .mail_key, .relay, .relay_key,
                .expired, .expired_key, .wrongname, .wrongname_key
  passwd_file   a mode-0600 passwd file: alice@lab.test / alice-secret,
                bob@lab.test / bob-secret; hashes made by `subproxy
                --hash-password` (so it needs the binary)
Per test (function scope) and per module (module_lab):
  lab           Lab: lab.sink(**kw) starts a relay sink, lab.subproxy(**kw)
                starts the daemon; everything started is stopped at teardown,
                and every daemon must exit 0 on SIGTERM
  make_sink     = lab.sink            sink: a default STARTTLS sink
  start_subproxy = lab.subproxy

The daemon binary is $SUBPROXY (default <repo>/build/subproxy).  It runs in
the foreground (`subproxy -d -c FILE [-o ...]`), logging to stderr, which is
collected (Subproxy.lines) and shown in the report of a failed test.
"""

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lab"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sink as labsink  # noqa: E402
import dkimkeys  # noqa: E402
import dnslab  # noqa: E402
import peers  # noqa: E402
import helpers  # noqa: E402
from helpers import (ALICE, BOB, RELAY_NAME, SENDERS, SERVER_NAME, USERS,  # noqa: E402
                     close_all_clients, free_port)

SUBPROXY = os.environ.get("SUBPROXY") or str(REPO / "build" / "subproxy")
START_TIMEOUT = 10      # seconds until the listeners must accept
STOP_TIMEOUT = 15       # seconds after SIGTERM
# what AddressSanitizer, LeakSanitizer and UBSan print when they find
# something (build-san/subproxy; a normal build never prints it)
SANITIZER_REPORT = re.compile(r"==\d+==ERROR: \w+Sanitizer|: runtime error: |"
                              r"SUMMARY: \w+Sanitizer")

_LIVE_DAEMONS = []
_LIVE_SINKS = []


def symbolize(lines):
    """A sanitizer report with frames "#N 0xPC (MODULE+0xOFF)" (the
    sanitized daemon prints no names: symbolize=0, see src/subproxy.c),
    each frame followed by what addr2line makes of it."""
    frame = re.compile(r"\((/[^()+]+)\+(0x[0-9a-f]+)\)$")
    want = {}
    for ln in lines:
        m = frame.search(ln)
        if m:
            want.setdefault(m.group(1), []).append(m.group(2))
    names = {}
    for module, offsets in want.items():
        try:
            r = subprocess.run(["addr2line", "-f", "-C", "-p", "-e", module] + offsets,
                               capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        out = r.stdout.splitlines()
        if r.returncode == 0 and len(out) == len(offsets):
            names.update({(module, o): n for o, n in zip(offsets, out)})
    out = []
    for ln in lines:
        m = frame.search(ln)
        name = names.get((m.group(1), m.group(2))) if m else None
        out.append(ln + ("  " + name if name and not name.startswith("??") else ""))
    return out


# ---- certificates ----

class LabCerts:
    """Paths of the lab's certificates (chains are leaf first, then CA)."""

    def __init__(self, directory):
        d = str(directory)
        ca = labsink.LabCA()
        self.dir = d
        self.ca = ca.write_ca(os.path.join(d, "ca.pem"))
        self.mail, self.mail_key = ca.issue(SERVER_NAME, d, "mail")
        self.relay, self.relay_key = ca.issue(RELAY_NAME, d, "relay")
        self.expired, self.expired_key = ca.issue(RELAY_NAME, d, "expired", expired=True)
        self.wrongname, self.wrongname_key = ca.issue("wrong.lab.test", d, "wrongname")
        self.authority = ca

    @staticmethod
    def tlsa(cert):
        """'3 1 1 HEX' for a certificate file."""
        return labsink.tlsa_311(cert)


@pytest.fixture(scope="session")
def lab_certs(tmp_path_factory):
    return LabCerts(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def lab_dkim(tmp_path_factory):
    """Ed25519 + RSA-2048 DKIM keys for lab.test and alias.lab.test (made now)."""
    keys = dkimkeys.LabDkim(tmp_path_factory.mktemp("dkim"))
    helpers.DKIM_KEYS.append(keys)     # check_relayed() verifies signatures with them
    return keys


@pytest.fixture(scope="session")
def dns_lab(tmp_path_factory, lab_certs, lab_dkim):
    """The session's DNSSEC lab (tests/lab/dnslab.py): lab.test signed, with
    wildcard TLSA records so that every daemon's listeners (any port) on
    mail.lab.test, and every sink (any port) on relay.lab.test, have a
    secure matching DANE-EE record; and the DKIM TXT records."""
    lab = dnslab.DnsLab(tmp_path_factory.mktemp("dns"))
    add_lab_records(lab, lab_certs.mail, lab_certs, lab_dkim, 300)
    lab.start()
    yield lab
    lab.stop()


def add_lab_records(lab, mail_cert, certs, dkim, ttl):
    """The records of a DNS lab for the tests' daemons: TLSA "3 1 1" of
    mail_cert for every port of mail.lab.test, of the relay certificate for
    relay.lab.test, the DKIM TXT records and the RFC 6186 submission service
    records (their ports are illustrative: the daemons pick their own)."""
    lab.add("lab.test", "*._tcp.mail %d TLSA %s" % (ttl, labsink.tlsa_311(mail_cert)))
    lab.add("lab.test", "*._tcp.relay %d TLSA %s" % (ttl, labsink.tlsa_311(certs.relay)))
    for (dom, sel), k in dkim.keys.items():
        if dom == "lab.test":
            lab.add("lab.test", "%s._domainkey %d TXT %s" % (sel, ttl, k["txt"]))
    lab.add("lab.test", "_submission._tcp %d SRV 0 1 587 mail.lab.test." % ttl)
    lab.add("lab.test", "_submissions._tcp %d SRV 0 1 465 mail.lab.test." % ttl)


@pytest.fixture
def short_ttl_lab(tmp_path, lab_certs, lab_dkim):
    """A DNS lab of its own for a test that changes records: like dns_lab,
    with one-second TTLs so that libunbound in front sees changes at once
    (.ttl; .tlsa is the listeners' "3 1 1" record)."""
    ttl = 1
    lab = dnslab.DnsLab(tmp_path / "dns", ttl=ttl)
    add_lab_records(lab, lab_certs.mail, lab_certs, lab_dkim, ttl)
    lab.start()
    lab.ttl = ttl
    lab.tlsa = labsink.tlsa_311(lab_certs.mail)
    yield lab
    lab.stop()


@pytest.fixture(scope="session")
def sandbox_server():
    """[server] keys for the sandbox.  As root (CI) front, signer and keeper
    chroot and drop to unprivileged users: an empty root-owned directory
    whose parents are root-owned and not writable by others (/run, not
    /tmp), and four distinct existing system users ("nobody" for front;
    "daemon", "bin" and "sys" stand in for subproxy-signer, subproxy-keeper
    and subproxy-recorder, the audit log's: auditlab.RECORDER_USER).
    Unprivileged runs need nothing (subproxy cannot chroot there)."""
    if os.geteuid() != 0:
        yield {}
        return
    import tempfile
    d = tempfile.mkdtemp(prefix="subproxy-test-chroot.", dir="/run")
    os.chmod(d, 0o755)
    yield {"user": "nobody", "signer-user": "daemon", "keeper-user": "bin",
           "recorder-user": "sys", "chroot": d}
    os.rmdir(d)


def dns_section(lab):
    return "[dns]\nunbound-config = %s\ntrust-anchor-file = %s\ntimeout = 5\n" % (
        lab.unbound_conf, lab.trust_anchor_file)


# ---- passwords ----

def subproxy_binary():
    if not os.access(SUBPROXY, os.X_OK):
        pytest.fail("subproxy binary not found at %s (build it with `make`, or set SUBPROXY)"
                    % SUBPROXY, pytrace=False)
    return SUBPROXY


def clock_test_binary():
    """build/subproxy-testclock: the daemon with the test-only rate-limit
    clock (SIGUSR2 to front moves it an hour ahead; src/clock.h)."""
    path = subproxy_binary() + "-testclock"
    if not os.access(path, os.X_OK):
        pytest.fail("%s not found (it is built by `make`)" % path, pytrace=False)
    return path


def hash_password(password):
    r = subprocess.run([subproxy_binary(), "--hash-password"], input=password.encode() + b"\n",
                       capture_output=True, timeout=60, check=False)
    out = r.stdout.decode().strip()
    assert r.returncode == 0 and out.startswith("{ARGON2ID}$argon2id$"), \
        "subproxy --hash-password failed: rc=%d out=%r err=%r" % (r.returncode, out, r.stderr)
    return out


@pytest.fixture(scope="session")
def passwd_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "passwd"
    lines = ["# lab users"] + ["%s:%s" % (u, hash_password(p)) for u, p in USERS.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


# ---- the daemon ----

def relay_section(name="sink", sink=None, *, host=RELAY_NAME, address="127.0.0.1", port=None,
                  tls=None, tlsa=None, pin_cert=None, extra=None):
    """A [relay "NAME"] section.  With sink, port/tls/tlsa default to the
    sink's port, its TLS mode and a 3 1 1 pin of its certificate (pin_cert
    pins another certificate instead)."""
    if sink is not None:
        port = sink.port if port is None else port
        tls = tls or ("implicit" if sink.mode == "implicit" else "starttls")
        if tlsa is None and (pin_cert or sink.cert) is not None:
            tlsa = labsink.tlsa_311(pin_cert or sink.cert)
    elif tlsa is None and pin_cert is not None:
        tlsa = labsink.tlsa_311(pin_cert)
    lines = ['[relay "%s"]' % name, "host = %s" % host]
    if address:
        lines.append("address = %s" % address)
    lines.append("port = %d" % port)
    lines.append("tls = %s" % (tls or "starttls"))
    for t in ([tlsa] if isinstance(tlsa, str) else tlsa or []):
        lines.append('tlsa = "%s"' % t)
    for k, v in (extra or {}).items():
        lines.append("%s = %s" % (k, v))
    return "\n".join(lines) + "\n"


class Subproxy:
    """A running daemon.  Ports: .implicit_port (465-style), .starttls_port
    (587-style); .lines: its stderr so far; stop() ends it and asserts exit
    status 0."""

    def __init__(self, workdir, config_text, overrides, ports, name, nofile=None, binary=None):
        self.name = name
        self.workdir = Path(workdir)
        self.config_path = self.workdir / ("%s.conf" % name)
        self.config_path.write_text(config_text)
        self.config_text = config_text
        self.overrides = list(overrides)
        self.implicit_port, self.starttls_port = ports
        self.lines = []
        self.probes = 0         # connections wait_ready() made
        self.returncode = None
        self._stopped = False
        self._term_sent = False
        self._log = open(self.workdir / ("%s.log" % name), "w", encoding="utf-8")
        argv = [binary or subproxy_binary(), "-d", "-c", str(self.config_path)]
        for o in self.overrides:
            argv += ["-o", o]
        self.argv = argv
        preexec = None
        if nofile is not None:
            def preexec():
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=str(self.workdir),
                                     preexec_fn=preexec)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            self._log.write(line + "\n")
            self._log.flush()

    def stderr_text(self, last=None):
        lines = self.lines if last is None else self.lines[-last:]
        return "\n".join(lines)

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout=START_TIMEOUT):
        end = time.monotonic() + timeout
        pending = [self.implicit_port, self.starttls_port]
        probes = len(pending)
        while pending:
            if self.proc.poll() is not None:
                self._reader.join(2)
                raise DaemonStartError(self, "exited with status %d before listening"
                                       % self.proc.returncode)
            try:
                with socket.create_connection(("127.0.0.1", pending[0]), timeout=1):
                    pending.pop(0)
                    self.probes += 1
                    continue
            except OSError:
                pass
            if time.monotonic() > end:
                raise DaemonStartError(self, "not listening on %s after %ss" % (pending, timeout))
            time.sleep(0.02)
        # the probes above are sessions too: wait until the daemon has ended
        # them, so that they count against no connection limit of the test
        # (on a proxy-protocol listener a probe sends no header: it ends as
        # event=proxy-refused without becoming a session)
        while self.proc.poll() is None and time.monotonic() < end:
            lines = list(self.lines)
            refused = sum(1 for ln in lines if " event=proxy-refused " in ln)
            opened = refused + sum(1 for ln in lines if " event=connect " in ln)
            ended = refused + sum(1 for ln in lines if " event=drop " in ln or
                                  " event=close " in ln)
            if opened >= probes and ended >= opened:
                break
            time.sleep(0.02)
        # and every front worker serves (the parent's event=ready): the
        # first one to accept is not necessarily the last one to start
        while self.proc.poll() is None and time.monotonic() < end:
            if any(" event=ready " in ln for ln in list(self.lines)):
                break
            time.sleep(0.02)

    def wait_log(self, pattern, timeout=10.0, start=0):
        """First stderr line (from index start) matching the regex, waiting
        up to timeout seconds; None if none came."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.lines):
                if rx.search(self.lines[i]):
                    return self.lines[i]
                i += 1
            if time.monotonic() > end or (self.proc.poll() is not None and i >= len(self.lines)):
                return None
            time.sleep(0.02)

    def wait_relay_probe(self, timeout=10.0):
        """Wait for the start-up EHLO probe of the relay (it decides what
        is offered to clients, e.g. DSN) in every front worker of the first
        generation (each probes, and keeps the probe's connection for
        reuse) and assert that they succeeded; returns the first one's log
        line ("... capabilities known (dsn=1 ...)")."""
        ready = self.wait_log(r" event=ready generation=1 workers=\d+", timeout)
        n = int(re.search(r"workers=(\d+)", ready).group(1)) if ready else 1
        end = time.monotonic() + timeout
        while True:
            probes = [ln for ln in list(self.lines) if "relay probe" in ln]
            if len(probes) >= n or time.monotonic() > end or self.proc.poll() is not None:
                break
            time.sleep(0.02)
        assert len(probes) >= n, "%d of %d relay probe results within %ss:\n%s" % (
            len(probes), n, timeout, self.stderr_text(40))
        for line in probes[:n]:
            assert "relay probe: capabilities known" in line, line
        return probes[0]

    def wait_sessions_ended(self, timeout=10.0):
        """Wait until front has seen every connection so far (at least the
        ones wait_ready() made) and every session has ended (event=drop or
        event=close): those connections count against the connection
        limits until then.  Asserts that they ended within timeout seconds."""
        rx = re.compile(r"session=(\w+) event=(connect|drop|close) ")
        end = time.monotonic() + timeout
        while True:
            open_, seen = set(), 0
            for ln in list(self.lines):
                m = rx.search(ln)
                if m and m.group(2) == "connect":
                    open_.add(m.group(1))
                    seen += 1
                elif m:
                    open_.discard(m.group(1))
            if not open_ and seen >= self.probes:
                return
            assert time.monotonic() < end, "sessions %s of subproxy %s did not end " \
                "within %ss:\n%s" % (sorted(open_), self.name, timeout, self.stderr_text(40))
            time.sleep(0.02)

    def signal(self, sig):
        """Send a signal; after SIGTERM/SIGINT, stop() accepts that the
        daemon has exited by itself (it still asserts the exit status)."""
        if sig in (signal.SIGTERM, signal.SIGINT):
            self._term_sent = True
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT, expect_rc=0):
        """After signal(SIGTERM): wait for the exit and check its status."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        return self.stop(expect_rc=expect_rc)

    def expect_exit(self, rc, timeout=STOP_TIMEOUT):
        """The daemon must exit by itself (refused start, failing closed)
        within timeout seconds, with status rc.  Returns the status."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            self._reader.join(5)
            pytest.fail("subproxy %s did not exit by itself within %ss:\n%s"
                        % (self.name, timeout, self.stderr_text(60)), pytrace=False)
        self._term_sent = True
        return self.stop(expect_rc=rc)

    def stop(self, timeout=STOP_TIMEOUT, expect_rc=0):
        """SIGTERM, wait, kill after timeout.  Asserts it was still running
        and exits with expect_rc.  Idempotent."""
        if self._stopped:
            return self.returncode
        self._stopped = True
        if self in _LIVE_DAEMONS:
            _LIVE_DAEMONS.remove(self)
        died = None if self._term_sent else self.proc.poll()
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                killed = True
        self._reader.join(5)
        self._log.close()
        self.returncode = self.proc.returncode
        tail = self.stderr_text(60)
        report = [i for i, ln in enumerate(self.lines) if SANITIZER_REPORT.search(ln)]
        assert not report, "subproxy %s: sanitizer report:\n%s" % (
            self.name, "\n".join(symbolize(self.lines[report[0]:report[0] + 80])))
        assert died is None, "subproxy %s died during the test (status %d):\n%s" % (
            self.name, died, tail)
        assert not killed, "subproxy %s did not stop within %ss of SIGTERM:\n%s" % (
            self.name, timeout, tail)
        assert self.returncode == expect_rc, "subproxy %s exited with %d, expected %d:\n%s" % (
            self.name, self.returncode, expect_rc, tail)
        return self.returncode


class DaemonStartError(Exception):
    def __init__(self, sp, what):
        super().__init__("subproxy %s %s\nargv: %s\nconfig:\n%s\nstderr:\n%s" % (
            sp.name, what, " ".join(sp.argv), sp.config_text, sp.stderr_text(80)))
        self.sp = sp


class Lab:
    """Starts sinks and daemons and stops all of them in close()."""

    def __init__(self, request, tmp, certs):
        self.request = request
        self.tmp = Path(tmp)
        self.certs = certs
        self.sinks = []
        self.daemons = []
        self._n = 0

    def _next(self, what):
        self._n += 1
        return "%s%d" % (what, self._n)

    def sink(self, mode="starttls", cert=None, key=None, **kw):
        """Start a relay sink (default: STARTTLS, certificate relay.lab.test)."""
        if mode != "plain" or cert is not None:
            cert = cert or self.certs.relay
            key = key or self.certs.relay_key
        d = self.tmp / self._next("sink")
        s = labsink.Sink(cert, key, d, mode=mode, **kw).start()
        self.sinks.append(s)
        _LIVE_SINKS.append(s)
        return s

    def subproxy(self, relay=None, *, extra_config="", overrides=(), limits=None, server=None,
                 senders=None, relays=None, wait=True, dkim=None, dns=None, nofile=None,
                 binary=None):
        """Write a configuration and start the daemon.
        relay: a Sink, a dict of relay_section() arguments, or None with
        relays=[...] for several; limits/server: extra keys for [limits] /
        [server]; senders: the [senders] mapping (default alice's);
        extra_config: text appended (new sections); overrides: "-o" values;
        nofile: (soft, hard) RLIMIT_NOFILE the daemon is started with;
        binary: another build of the daemon (clock_test_binary())."""
        passwd = self.request.getfixturevalue("passwd_file")
        if dns is None:
            dns = dns_section(self.request.getfixturevalue("dns_lab"))
        if dkim is None:
            dkim = self.request.getfixturevalue("lab_dkim").config()
        if relay is not None:
            relays = [relay] + list(relays or [])
        assert relays, "a relay is required"
        rel_text = []
        for i, r in enumerate(relays):
            if isinstance(r, labsink.Sink):
                r = {"sink": r}
            r = dict(r)
            r.setdefault("name", "sink" if i == 0 else "sink%d" % (i + 1))
            rel_text.append(relay_section(**r))
        senders = SENDERS if senders is None else senders
        last_err = None
        for _attempt in range(3):
            ports = (free_port(), free_port())
            if ports[0] == ports[1]:
                continue
            text = "\n".join([
                "# written by tests/integration/conftest.py",
                "[server]",
                "hostname = %s" % SERVER_NAME,
                *["%s = %s" % kv for kv in dict(
                    self.request.getfixturevalue("sandbox_server"), **(server or {})).items()],
                "",
                '[listen "submissions"]',
                "address = 127.0.0.1:%d" % ports[0],
                "tls = implicit",
                "",
                '[listen "submission"]',
                "address = 127.0.0.1:%d" % ports[1],
                "tls = starttls",
                "",
                "[tls]",
                "certificate = %s" % self.certs.mail,
                "key = %s" % self.certs.mail_key,
                "",
                "[auth]",
                "passwd-file = %s" % passwd,
                "",
                "[senders]",
                *["%s = %s" % kv for kv in senders.items()],
                "",
                *rel_text,
                dkim,
                dns,
                *(["[limits]"] + ["%s = %s" % kv for kv in limits.items()] + [""]
                  if limits else []),
                extra_config,
            ]) + "\n"
            sp = Subproxy(self.tmp, text, overrides, ports, self._next("subproxy"), nofile,
                          binary)
            self.daemons.append(sp)
            _LIVE_DAEMONS.append(sp)
            if not wait:
                return sp
            try:
                sp.wait_ready()
                return sp
            except DaemonStartError as e:
                last_err = e
                if sp.alive():
                    sp.proc.kill()
                sp.proc.wait(5)
                sp._reader.join(2)
                sp._log.close()
                sp._stopped = True
                _LIVE_DAEMONS.remove(sp)
                if not re.search(r"(?i)bind|in use", sp.stderr_text()):
                    break       # not a port race: report it
        pytest.fail(str(last_err), pytrace=False)

    def close(self):
        errors = []
        for sp in self.daemons:
            try:
                sp.stop()
            except AssertionError as e:
                errors.append(str(e))
        for s in self.sinks:
            s.stop()
            if s in _LIVE_SINKS:
                _LIVE_SINKS.remove(s)
            errors.extend("sink on port %s: %s" % (s.port, e) for e in s.errors
                          if e.startswith("internal error"))
        self.daemons, self.sinks = [], []
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def lab(request, tmp_path, lab_certs):
    lb = Lab(request, tmp_path, lab_certs)
    yield lb
    lb.close()


@pytest.fixture(scope="module")
def module_lab(request, tmp_path_factory, lab_certs):
    lb = Lab(request, tmp_path_factory.mktemp("lab"), lab_certs)
    yield lb
    lb.close()


@pytest.fixture
def make_sink(lab):
    return lab.sink


@pytest.fixture
def sink(lab):
    return lab.sink()


@pytest.fixture
def start_subproxy(lab):
    return lab.subproxy


@pytest.fixture(autouse=True)
def _close_raw_clients():
    """Close every RawClient a test left open (even when it failed)."""
    yield
    close_all_clients()


def pytest_collection_modifyitems(items):
    """The tests of an xdist_group first (a costly shared fixture: the
    five scans of test_tls_scan.py): in a parallel run their worker
    starts with them instead of ending the run with them alone."""
    items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)


# ---- failure reports: the daemons' stderr, the sinks' sessions, the peers' state ----

def _sink_summary(s):
    out = []
    for rec in s.sessions()[-8:]:
        out.append("session %d tls=%s sni=%s started=%d completed=%d stored=%s closed=%s" % (
            rec["id"], rec["tls"], rec["sni"], rec["data_started"], rec["data_completed"],
            rec["stored"], rec["closed"]))
        out.extend("  > " + c for c in rec["commands"][-20:])
        out.extend("  ! " + e for e in rec["events"][-10:])
    return "\n".join(out) or "(no sessions)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when in ("call", "setup") and rep.failed:
        for sp in list(_LIVE_DAEMONS):
            rep.sections.append(("subproxy %s stderr (last 80 lines)" % sp.name,
                                 sp.stderr_text(80)))
        for s in list(_LIVE_SINKS):
            rep.sections.append(("sink on port %s" % s.port, _sink_summary(s)))
        for p in peers.started():
            rep.sections.append((p.title(), p.report()))
    if rep.when == "teardown":
        peers.forget()


__all__ = ["ALICE", "BOB", "LabCerts", "Subproxy", "Lab", "relay_section"]
