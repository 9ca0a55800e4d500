"""
test_keeper_threads.py -- the keeper signs on its key workers ([tls]
key-workers, src/keeper.c): with an RSA-2048 certificate (a signature costs
the keeper milliseconds) many full handshakes at once, TLS 1.3 and 1.2, on
two front workers, all complete; the keeper killed while such handshakes
run stops the service (fail closed) and leaves no client hanging.  With
the lab's ECDSA certificate the main thread signs (no key worker runs)
unless key-workers is set, and the same handshakes complete either way.

The RSA certificate needs its own DNS lab: subproxy refuses to start unless
its listeners' TLSA records match the chain it serves (owntlsa.h).
Real clients: Python's ssl (OpenSSL), full handshakes only (no session is
offered).  Nothing here waits for a fixed time.
"""

import os
import re
import signal
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

import dnslab
from conftest import add_lab_records, dns_section
from helpers import SERVER_NAME, client_context
from test_dkim import roles

CLIENTS = 48            # handshakes at once
VERSIONS = (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2)


@pytest.fixture(scope="module")
def rsa_dns(tmp_path_factory, lab_certs, lab_dkim):
    """(chain, key, DNS lab) of an RSA-2048 mail.lab.test certificate."""
    d = tmp_path_factory.mktemp("rsa")
    chain, key = lab_certs.authority.issue(SERVER_NAME, str(d), "mail-rsa", key_type="rsa")
    lab = dnslab.DnsLab(d / "dns")
    add_lab_records(lab, chain, lab_certs, lab_dkim, 300)
    lab.start()
    yield chain, key, lab
    lab.stop()


def start_rsa(lab, rsa_dns, **kw):
    chain, key, dns = rsa_dns
    sp = lab.subproxy(lab.sink(), dns=dns_section(dns), server={"workers": 2},
                      limits={"connections-per-ip": CLIENTS * 2},
                      overrides=["tls.certificate=%s" % chain, "tls.key=%s" % key], **kw)
    m = sp.wait_log(r"event=keeper-ready key=RSA-2048 .*key-workers=(\d+) ", timeout=30)
    assert m, sp.stderr_text()[-2000:]
    return sp


def handshake(port, ca, version, results, i):
    """One full handshake over implicit TLS, the greeting, QUIT; the
    negotiated version and the server key's type into results[i], or the
    error."""
    ctx = client_context(ca)
    ctx.maximum_version = version
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
            with ctx.wrap_socket(raw, server_hostname=SERVER_NAME) as s:
                f = s.makefile("rb")
                greeting = f.readline()
                key = x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).public_key()
                s.sendall(b"QUIT\r\n")
                bye = f.readline()
                results[i] = (s.version(), isinstance(key, rsa.RSAPublicKey), greeting[:4],
                              bye[:4])
    except (OSError, ssl.SSLError) as e:
        results[i] = e


def keeper_threads(sp):
    """The keeper's thread count (/proc/PID/task)."""
    return len(os.listdir("/proc/%d/task" % roles(sp)["keeper"]))


@pytest.mark.parametrize("key_workers", [None, 2])
def test_ecdsa_handshakes_signed_by_main_thread_unless_key_workers(lab, key_workers):
    """ECDSA P-256: by default no key worker is started (the main thread
    signs: cheaper than the hand-over); with key-workers = 2 two are.
    Either way many full handshakes at once, TLS 1.3 and 1.2, on two
    front workers, all complete with the ECDSA certificate."""
    over = ["auth.workers=1"] + ([] if key_workers is None else
                                 ["tls.key-workers=%d" % key_workers])
    sp = lab.subproxy(lab.sink(), server={"workers": 2}, overrides=over,
                      limits={"connections-per-ip": CLIENTS * 2})
    line = sp.wait_log(r"event=keeper-ready key=EC/ECDSA-256 ", timeout=30)
    m = re.search(r" workers=1 key-workers=(\d+) ", line or "")
    assert m and m.group(1) == str(key_workers or 0), sp.stderr_text()[-2000:]
    assert keeper_threads(sp) == 1 + 1 + (key_workers or 0)
    all_handshakes_complete(sp, lab.certs.ca, rsa_key=False)


def run_clients(port, ca, n):
    results = [None] * n
    threads = [threading.Thread(target=handshake, args=(port, ca, VERSIONS[i % 2], results, i))
               for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


def all_handshakes_complete(sp, ca, rsa_key):
    """CLIENTS full handshakes at once, TLS 1.3 and 1.2 in turn: every one
    completes with the expected certificate, greeting and 221; then stop."""
    threads, results = run_clients(sp.implicit_port, ca, CLIENTS)
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a handshake did not end"
    for i, r in enumerate(results):
        want = "TLSv1.3" if i % 2 == 0 else "TLSv1.2"
        assert r == (want, rsa_key, b"220 ", b"221 "), (i, r)
    sp.stop()


def test_many_rsa_handshakes_at_once(lab, rsa_dns):
    sp = start_rsa(lab, rsa_dns)
    all_handshakes_complete(sp, lab.certs.ca, rsa_key=True)


def test_keeper_killed_during_rsa_handshakes_fails_closed(lab, rsa_dns):
    """SIGKILL to the keeper while handshakes that need its signatures run:
    the service exits 1 naming the keeper, and every client ends (its
    handshake done before the keeper died, or refused) -- none waits for a
    signature that will not come."""
    sp = start_rsa(lab, rsa_dns)
    keeper = roles(sp)["keeper"]
    threads, results = run_clients(sp.implicit_port, lab.certs.ca, CLIENTS)
    os.kill(keeper, signal.SIGKILL)
    assert sp.expect_exit(1, timeout=40) == 1
    assert re.search(r"child-died process=keeper pid=%d killed by signal %d" % (
        keeper, signal.SIGKILL), sp.stderr_text()), sp.stderr_text()[-2000:]
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a client still waits after the service stopped"
    for r in results:
        assert isinstance(r, (tuple, OSError)), r


def all_ended(threads, results, may_fail):
    """Every client ended; each one's session ran to QUIT, or (may_fail:
    its worker was killed) lost its connection on the way -- none waits.
    Returns how many ran to QUIT."""
    done = 0
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a handshake did not end"
    for i, r in enumerate(results):
        want = "TLSv1.3" if i % 2 == 0 else "TLSv1.2"
        if r == (want, True, b"220 ", b"221 "):
            done += 1
        else:
            assert may_fail and (isinstance(r, OSError) or r[:3] == (want, True, b"220 ") or
                                 r[2] == b""), (i, r)
    return done


@pytest.mark.sanitized
def test_front_worker_killed_during_rsa_handshakes(lab, rsa_dns):
    """SIGKILL to a front worker while handshakes need the keeper's
    signatures: its clients lose the connection; the keeper answers into
    the slot what the dead worker asked, the replacement on the same
    sockets drops that answer (not its id) and its own handshakes, and the
    other worker's, all complete; the keeper lives on."""
    sp = start_rsa(lab, rsa_dns)
    r = roles(sp)
    front, keeper = r["front"], r["keeper"]
    start = len(sp.lines)
    threads, results = run_clients(sp.implicit_port, lab.certs.ca, CLIENTS)
    os.kill(front, signal.SIGKILL)
    assert all_ended(threads, results, may_fail=True) > 0, "the other worker served none"
    assert sp.wait_log(r"front\[\d+\] info: event=started ", timeout=60, start=start)
    threads, results = run_clients(sp.implicit_port, lab.certs.ca, CLIENTS)
    all_ended(threads, results, may_fail=False)
    assert roles(sp)["keeper"] == keeper
    sp.stop()


@pytest.mark.sanitized
def test_reload_during_rsa_handshakes(lab, rsa_dns):
    """SIGHUP while handshakes need the keeper's signatures: the old
    generation's handshakes complete (it drains), the new generation's
    keeper signs the next ones, and the old keeper exits once its slots
    close (operations of closed slots are dropped, never answered into a
    reused descriptor) -- no end-timeout kill."""
    sp = start_rsa(lab, rsa_dns)
    threads, results = run_clients(sp.implicit_port, lab.certs.ca, CLIENTS)
    start = len(sp.lines)
    sp.proc.send_signal(signal.SIGHUP)
    line = sp.wait_log(r"event=(reloaded generation=2 |reload-failed)", timeout=60, start=start)
    assert line and "reloaded" in line, sp.stderr_text(40)
    all_ended(threads, results, may_fail=False)
    threads, results = run_clients(sp.implicit_port, lab.certs.ca, CLIENTS)
    all_ended(threads, results, may_fail=False)
    assert sp.wait_log(r"event=generation-ended generation=1", timeout=60, start=start), \
        sp.stderr_text(40)
    assert not any("event=end-timeout" in ln for ln in sp.lines)
    sp.stop()
