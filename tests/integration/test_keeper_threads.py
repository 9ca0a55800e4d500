"""
test_keeper_threads.py -- the keeper signs on its key workers ([tls]
key-workers, src/keeper.c): with an RSA-2048 certificate (a signature costs
the keeper milliseconds) many full handshakes at once, TLS 1.3 and 1.2, on
two front workers, all complete; the keeper killed while such handshakes
run stops the service (fail closed) and leaves no client hanging.

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


def run_clients(port, ca, n):
    results = [None] * n
    threads = [threading.Thread(target=handshake, args=(port, ca, VERSIONS[i % 2], results, i))
               for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


def test_many_rsa_handshakes_at_once(lab, rsa_dns):
    sp = start_rsa(lab, rsa_dns)
    threads, results = run_clients(sp.implicit_port, lab.certs.ca, CLIENTS)
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a handshake did not end"
    for i, r in enumerate(results):
        want = "TLSv1.3" if i % 2 == 0 else "TLSv1.2"
        assert r == (want, True, b"220 ", b"221 "), (i, r)
    sp.stop()


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
