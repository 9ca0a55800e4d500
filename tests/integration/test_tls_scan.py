"""
The TLS side as a third-party scanner sees it.  testssl.sh (Debian's
testssl.sh package) scans both listeners -- implicit TLS (465-style) and
STARTTLS (587-style, --starttls smtp) -- of a daemon under each profile
(baseline, bsi-tr-03108), and its JSON report must show:

  - no protocol below TLS 1.2 offered (SSLv2, SSLv3, TLS 1.0, TLS 1.1);
  - only cipher suites with forward secrecy (ECDHE/DHE, or TLS 1.3) and
    AEAD (GCM, CCM, ChaCha20-Poly1305) -- under bsi-tr-03108 AES only;
  - no TLS compression (CRIME).

Renegotiation is asked for with openssl s_client itself (testssl.sh -R
pipes "R" into s_client and closes its input at once: on a loaded machine
testssl.sh 3.0.8 reported a server that drops the connection at the
renegotiation as VULNERABLE).  Here s_client's input stays open and the
verdict is what happens: the server must support secure renegotiation
(RFC 5746: no insecure renegotiation) and refuse a client-initiated one
-- the connection ends and the daemon logs why -- in TLS 1.2 (TLS 1.3 has
no renegotiation).

A deliberately weak server (Python's ssl: TLS 1.0, CBC suites with RSA key
exchange, client renegotiation allowed) fails the same checks, so they can
fail.  (Compression cannot be shown failing: no TLS library here offers
it; testssl.sh checks it with its own ClientHello offering DEFLATE.)

testssl.sh runs only -p (protocols), -e (every cipher suite, by sockets
and openssl) and -C (compression); one scan takes about 15 s on a quiet
machine (7 s of it testssl.sh's own start-up), two run at a time.
"""

import json
import queue
import re
import socket
import ssl
import subprocess
import threading
import time
import warnings

import pytest

from test_audit import BSI, World, bsi_daemon, rsa_leaf

# one xdist worker for the whole module (make check runs the suite in
# parallel, --dist loadgroup): each worker that ran one of these tests
# would make the five scans of the module fixtures again
pytestmark = pytest.mark.xdist_group("tls_scan")

SCAN_TIMEOUT = 300      # seconds for one testssl.sh run (~15 s on a quiet machine)
RENEG_TIMEOUT = 60      # seconds for one renegotiation probe (~0.1 s)
# OpenSSL 3's SSL_OP_ALLOW_CLIENT_RENEGOTIATION (Python's ssl has no name for it)
OP_ALLOW_CLIENT_RENEGOTIATION = 1 << 8

# cipher suites by their IANA name (the last column of testssl.sh's finding)
TLS13 = re.compile(r"^TLS_(AES_128_GCM|AES_256_GCM|AES_128_CCM|AES_128_CCM_8|"
                   r"CHACHA20_POLY1305)_SHA(256|384)$")
FORWARD_SECRET = re.compile(r"^TLS_(ECDHE|DHE)_")
AEAD = re.compile(r"_GCM_|_CCM(_8)?(_|$)|_CHACHA20_POLY1305_")


def scan_argv(port, starttls, jsonfile, weak=False):
    """testssl.sh restricted to what is asserted: -p protocols, -e every
    cipher suite, -C compression (not for the weak server: it cannot fail
    there)."""
    argv = ["testssl", "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
            "--jsonfile", str(jsonfile), "-p", "-e"] + ([] if weak else ["-C"])
    if starttls:
        argv += ["--starttls", "smtp"]
    return argv + ["127.0.0.1:%d" % port]


def violations(findings, profile):
    """What a testssl.sh JSON report shows against our TLS rules (a list of
    sentences; empty when all is well)."""
    by_id = {f["id"]: f["finding"] for f in findings}
    bad = []
    for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        if not by_id.get(proto, "").startswith("not offered"):
            bad.append("%s: %s" % (proto, by_id.get(proto, "not tested")))
    suites = [f["finding"].split()[-1] for f in findings if f["id"].startswith("cipher_x")]
    if not suites:
        bad.append("no cipher suite found: the scan did not reach the server")
    for name in suites:
        if not (TLS13.match(name) or FORWARD_SECRET.match(name)):
            bad.append("without forward secrecy: %s" % name)
        if not (TLS13.match(name) or AEAD.search(name)):
            bad.append("without AEAD: %s" % name)
        if profile == BSI and "CHACHA20" in name:
            bad.append("not allowed by %s: %s" % (BSI, name))
    if not by_id.get("CRIME_TLS", "").startswith("not vulnerable"):
        bad.append("TLS compression: %s" % by_id.get("CRIME_TLS", "not tested"))
    return bad


def client_renegotiation(port, starttls):
    """Ask the server for a renegotiation as a client (openssl s_client's
    "R" command, in TLS 1.2: TLS 1.3 has none) once the first handshake is
    done.  Returns (verdict, rfc5746): "refused" when the renegotiation
    handshake fails and the connection ends, "accepted" when a second
    handshake completes; whether the server supports secure renegotiation
    (RFC 5746, s_client's "Secure Renegotiation IS supported")."""
    # stdbuf: s_client's summary must come out line by line, not at exit
    argv = ["stdbuf", "-oL", "openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
            "-tls1_2", "-state", "-no_ign_eof"] + (["-starttls", "smtp"] if starttls else [])
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in p.stdout] + [lines.put(None)],
                     daemon=True).start()
    end = time.monotonic() + RENEG_TIMEOUT
    seen, finished, summary, asked, verdict = [], 0, False, False, None
    try:
        while verdict is None:
            try:
                ln = lines.get(timeout=max(0.1, end - time.monotonic()))
            except queue.Empty:
                break
            if ln is not None:
                seen.append(ln)
                finished += b"SSLv3/TLS read finished" in ln
                summary = summary or ln.strip().startswith(b"Verify return code:")
            # ask once s_client has printed the handshake summary (it reads
            # its input from then on; the input stays open, so s_client
            # cannot end the connection by itself) and, on implicit TLS,
            # the greeting (data arriving during the new handshake would
            # make s_client give up)
            if not asked and summary and ln is not None and (starttls or ln.startswith(b"220 ")):
                p.stdin.write(b"R\n")
                p.stdin.flush()
                asked = True
            elif asked and finished == 2:
                verdict = "accepted"
            elif asked and (ln is None or ln.strip() == b"closed" or b":error in " in ln):
                verdict = "refused"
            elif ln is None:
                break
    finally:
        p.kill()
        p.wait(10)
    assert verdict is not None and b"RENEGOTIATING" in b"".join(seen), \
        "no renegotiation verdict within %ss:\n%s" % (
            RENEG_TIMEOUT, b"".join(seen).decode(errors="replace")[-3000:])
    return verdict, b"Secure Renegotiation IS supported" in b"".join(seen)


class WeakServer:
    """What the scan must catch: an implicit-TLS SMTP greeter with TLS 1.0
    to 1.2, every OpenSSL suite (CBC with RSA key exchange included) and
    client-initiated renegotiation allowed (OpenSSL's default)."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)    # that is the point
            self.ctx.minimum_version = ssl.TLSVersion.TLSv1
        self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.set_ciphers("ALL:@SECLEVEL=0")
        self.ctx.options |= OP_ALLOW_CLIENT_RENEGOTIATION
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        conn.settimeout(10)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"220 weak.lab.test ESMTP\r\n")
                while tls.recv(4096):      # OpenSSL handles a renegotiation in here
                    pass
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def targets(module_lab, tmp_path_factory, lab_certs, passwd_file, sandbox_server):
    """{(profile, listener): (port, starttls?, Subproxy)}: both listeners of
    a daemon under each profile, and ("weak", "implicit"): the weak server."""
    tmp = tmp_path_factory.mktemp("tlsscan")
    world = World(tmp_path_factory.mktemp("tlsscan-world"), lab_certs, passwd_file,
                  sandbox_server)
    weak = None
    try:
        baseline = module_lab.subproxy(module_lab.sink())
        bsi = bsi_daemon(world, module_lab, module_lab.sink())
        weak = WeakServer(*rsa_leaf(lab_certs.authority, "weak.lab.test", 2048, tmp, "weak"))
        targets = {("baseline", "implicit"): (baseline.implicit_port, False, baseline),
                   ("baseline", "starttls"): (baseline.starttls_port, True, baseline),
                   (BSI, "implicit"): (bsi.implicit_port, False, bsi),
                   (BSI, "starttls"): (bsi.starttls_port, True, bsi),
                   ("weak", "implicit"): (weak.port, False, None)}
        yield targets
    finally:
        if weak is not None:
            weak.stop()
        world.dns.stop()


@pytest.fixture(scope="module")
def scans(targets, tmp_path_factory):
    """{(profile, listener): testssl.sh findings}; two scans at a time (the
    machine CI runs on has two cores; more only makes each one slower)."""
    tmp = tmp_path_factory.mktemp("testssl")
    waiting, running, results = list(targets.items()), {}, {}
    while waiting or running:
        while waiting and len(running) < 2:
            key, (port, starttls, _sp) = waiting.pop(0)
            out, log = tmp / ("%s-%s.json" % key), tmp / ("%s-%s.log" % key)
            with open(log, "wb") as f:
                proc = subprocess.Popen(scan_argv(port, starttls, out, weak=key[0] == "weak"),
                                        stdin=subprocess.DEVNULL, stdout=f,
                                        stderr=subprocess.STDOUT, cwd=str(tmp))
            running[key] = (proc, out, log, time.monotonic())
        time.sleep(0.2)
        for key, (proc, out, log, t0) in list(running.items()):
            if proc.poll() is None and time.monotonic() - t0 < SCAN_TIMEOUT:
                continue
            if proc.poll() is None:
                proc.kill()
            rc = proc.wait(10)
            del running[key]
            assert rc == 0 and out.exists(), "testssl.sh on %s %s: status %s\n%s" % (
                key[0], key[1], rc, log.read_text(errors="replace")[-3000:])
            with open(out, encoding="utf-8") as f:
                results[key] = json.load(f)
    return results


@pytest.mark.parametrize("profile", ["baseline", BSI])
@pytest.mark.parametrize("listener", ["implicit", "starttls"])
def test_third_party_scan_finds_nothing_weak(scans, profile, listener):
    findings = scans[(profile, listener)]
    assert violations(findings, profile) == [], json.dumps(findings, indent=1)
    by_id = {f["id"]: f["finding"] for f in findings}
    # the scan spoke TLS 1.2 with us (both profiles allow it): it saw the server
    assert by_id.get("TLS1_2") == "offered", by_id


@pytest.mark.parametrize("profile", ["baseline", BSI])
@pytest.mark.parametrize("listener", ["implicit", "starttls"])
def test_client_renegotiation_refused(targets, profile, listener):
    port, starttls, sp = targets[(profile, listener)]
    start = len(sp.lines)
    # RFC 5746 (so no insecure renegotiation), and no renegotiation at all
    assert client_renegotiation(port, starttls) == ("refused", True)
    # and it was the renegotiation that ended the session
    assert sp.wait_log(r'event=drop .*reason="TLS: renegotiation refused"', start=start), \
        sp.stderr_text(20)


def test_the_checks_catch_a_weak_server(scans, targets):
    bad = violations(scans[("weak", "implicit")], "baseline")
    assert any(b.startswith("TLS1: offered") for b in bad), bad
    assert any(b.startswith("without forward secrecy: TLS_RSA_WITH_") for b in bad), bad
    assert any(b.startswith("without AEAD: TLS_") and "_CBC_" in b for b in bad), bad
    assert client_renegotiation(*targets[("weak", "implicit")][:2])[0] == "accepted"
