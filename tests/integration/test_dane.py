"""
DNSSEC and DANE over the lab (tests/lab/dnslab.py: nsd serving signed
zones, subproxy validating with its own libunbound against the lab's trust
anchor).  For every relay case: the client's reply, and whether the sink got
the message.  Then our own listeners' TLSA check at start, and a third-party
check (ldns-dane) of subproxy's certificate against the lab's records.
"""

import re
import subprocess
import time

import pytest

import dnslab
import sink as labsink
from conftest import dns_section
from helpers import ALICE, RawClient, closed_port, submit_through


def spki_311(cert):
    return labsink.tlsa_311(cert)


def ca_tlsa(certs, usage_sel_mtype="2 0 1"):
    """A DANE-TA record for the lab CA (full certificate, SHA-256)."""
    import hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    ca = x509.load_pem_x509_certificate(open(certs.ca, "rb").read())
    der = ca.public_bytes(serialization.Encoding.DER)
    return "%s %s" % (usage_sel_mtype, hashlib.sha256(der).hexdigest())


class World:
    """One DNS lab and one sink per relay case, built once for the module."""

    def __init__(self, lab, certs, tmp):
        self.lab, self.certs = lab, certs
        c = certs
        self.sinks = {
            "ee": lab.sink(),
            "ta": lab.sink(),
            "wrongname": lab.sink(cert=c.wrongname, key=c.wrongname_key),
            "expired": lab.sink(cert=c.expired, key=c.expired_key),
            "plain": lab.sink(mode="plain"),
            "implicit": lab.sink(mode="implicit"),
        }
        p = {k: s.port for k, s in self.sinks.items()}
        d = self.dns = dnslab.DnsLab(tmp / "dns")
        relay_spki = spki_311(c.relay)
        self.hosts = {}

        def host(case, name, port, records=(), zone="lab.test"):
            self.hosts[case] = (name, port)
            for r in records:
                d.add(zone, r)

        # our own listeners: secure and matching for mail.lab.test (any port)
        d.add("lab.test", "*._tcp.mail 300 TLSA %s" % spki_311(c.mail))
        # listeners of other host names for the refused-start cases
        d.add("lab.test", "badmail 300 A 127.0.0.1")
        d.add("lab.test", "*._tcp.badmail 300 TLSA %s" % spki_311(c.relay))
        d.add("lab.test", "nomail 300 A 127.0.0.1")
        d.add("lab.test", "_2525._tcp.nomail 300 TLSA %s" % spki_311(c.mail))
        d.add("lab.test", "unusable 300 A 127.0.0.1")
        d.add("lab.test", "*._tcp.unusable 300 TLSA 1 1 1 %s" % relay_spki.split()[-1])
        d.add("insecure", "mail 300 A 127.0.0.1")
        d.add("insecure", "*._tcp.mail 300 TLSA %s" % spki_311(c.mail))
        d.add("bogus", "mail 300 A 127.0.0.1")
        d.add("bogus", "*._tcp.mail 300 TLSA %s" % spki_311(c.mail))
        d.add("expired", "mail 300 A 127.0.0.1")
        d.add("expired", "*._tcp.mail 300 TLSA %s" % spki_311(c.mail))
        # relay cases
        host("secure-ee", "relay.secure.lab.test", p["ee"],
             ["_%d._tcp.relay 300 TLSA %s" % (p["ee"], relay_spki)], zone="secure")
        host("nsec3-ee", "relay.nsec3.lab.test", p["ee"],
             ["_%d._tcp.relay 300 TLSA %s" % (p["ee"], relay_spki)], zone="nsec3")
        host("secure-ta", "relay.lab.test", p["ta"],
             ["_%d._tcp.relay 300 TLSA %s" % (p["ta"], ca_tlsa(c))])
        host("ta-wrong-name", "relay.lab.test", p["wrongname"],
             ["_%d._tcp.relay 300 TLSA %s" % (p["wrongname"], ca_tlsa(c))])
        host("expired-ee", "relay.lab.test", p["expired"],
             ["_%d._tcp.relay 300 TLSA %s" % (p["expired"], spki_311(c.expired))])
        host("digest-mismatch", "relay.secure.lab.test", p["wrongname"],
             ["_%d._tcp.relay 300 TLSA %s" % (p["wrongname"], relay_spki)], zone="secure")
        host("only-unusable", "relay.lab.test", p["implicit"],
             ["_%d._tcp.relay 300 TLSA 1 1 1 %s" % (p["implicit"], relay_spki.split()[-1]),
              "_%d._tcp.relay 300 TLSA 0 0 1 %s" % (p["implicit"], relay_spki.split()[-1])])
        host("no-tlsa", "mx.lab.test", p["ee"])
        host("insecure", "relay.insecure.lab.test", p["ee"],
             ["_%d._tcp.relay 300 TLSA %s" % (p["ee"], relay_spki)], zone="insecure")
        host("bogus", "relay.bogus.lab.test", p["ee"],
             ["_%d._tcp.relay 300 TLSA %s" % (p["ee"], relay_spki)], zone="bogus")
        host("expired-rrsig", "relay.expired.lab.test", p["ee"],
             ["_%d._tcp.relay 300 TLSA %s" % (p["ee"], relay_spki)], zone="expired")
        host("no-starttls", "relay.lab.test", p["plain"],
             ["_%d._tcp.relay 300 TLSA %s" % (p["plain"], relay_spki)])
        # CNAME chain: alias -> alias2 -> relay.secure.lab.test, TLSA at the target
        host("cname-chain", "alias.lab.test", p["ee"],
             ["alias 300 CNAME alias2.lab.test.", "alias2 300 CNAME relay.secure.lab.test."])
        d.start()


@pytest.fixture(scope="module")
def world(module_lab, tmp_path_factory):
    w = World(module_lab, module_lab.certs, tmp_path_factory.mktemp("dane"))
    yield w
    w.dns.stop()


def start(world, case, **kw):
    name, port = world.hosts[case]
    relay = {"host": name, "address": None, "port": port, "tlsa": [],
             "tls": "implicit" if case == "only-unusable" else "starttls",
             "extra": {"dane": "required"}}
    kw.setdefault("dns", dns_section(world.dns))
    return world.lab.subproxy(relays=[relay], **kw)


def submit(world, sp, expect_code, expect_enh=None):
    return submit_through(sp.implicit_port, world.certs.ca, expect_code, expect_enh)


ACCEPTED = ["secure-ee", "nsec3-ee", "secure-ta", "expired-ee", "cname-chain"]
REFUSED = [
    ("digest-mismatch", "4.7.5", r"DANE verification mismatch"),
    ("ta-wrong-name", "4.7.5", r"DANE verification"),
    ("only-unusable", "4.7.5", r"_\d+\._tcp\.relay\.lab\.test"),
    ("no-tlsa", "4.7.5", r"_\d+\._tcp\.mx\.lab\.test"),
    ("insecure", "4.7.5", r"insecure"),
    ("bogus", "4.7.5", r"(?i)bogus"),
    ("expired-rrsig", "4.7.5", r"(?i)bogus"),
    ("no-starttls", "4.7.5", r"does not offer STARTTLS"),
]


@pytest.mark.parametrize("case", ACCEPTED)
def test_relay_dane_accepted(world, case):
    name, port = world.hosts[case]
    sink = next(s for s in world.sinks.values() if s.port == port)
    sink.reset()
    sp = start(world, case)
    submit(world, sp, 250)
    [m] = sink.messages()
    # SNI is the TLSA base domain: the CNAME target where the TLSA records are
    expect_sni = "relay.secure.lab.test" if case == "cname-chain" else name
    assert m["sni"] == expect_sni, m
    assert sp.wait_log(r"dane=ok-(ee|ta) verified", timeout=5), sp.stderr_text(20)
    sp.stop()


@pytest.mark.parametrize("case,enh,log", REFUSED, ids=[r[0] for r in REFUSED])
def test_relay_dane_refused(world, case, enh, log):
    name, port = world.hosts[case]
    sink = next(s for s in world.sinks.values() if s.port == port)
    sink.reset()
    sp = start(world, case)
    submit(world, sp, 451, enh)
    assert sink.messages() == [] and sink.data_completions() == 0
    assert not any(x.upper().startswith("MAIL") for x in sink.commands()), sink.commands()
    assert sp.wait_log(log, timeout=5), sp.stderr_text(30)
    sp.stop()


def test_dns_down_is_tempfail_within_timeout(world, tmp_path):
    dead, _holder = closed_port()
    conf = tmp_path / "dead-unbound.conf"
    text = open(world.dns.unbound_conf).read()
    text = re.sub(r"127\.0\.0\.1@\d+", "127.0.0.1@%d" % dead, text)
    conf.write_text(text)
    dns = "[dns]\nunbound-config = %s\ntrust-anchor-file = %s\ntimeout = 2\n" % (
        conf, world.dns.trust_anchor_file)
    # our own TLSA check cannot pass without DNS: the start is refused, in time
    t0 = time.monotonic()
    sp = start(world, "secure-ee", dns=dns, wait=False)
    assert sp.expect_exit(1, timeout=20) == 1
    assert time.monotonic() - t0 < 15
    assert re.search(r"TLSA lookup of _\d+\._tcp\.mail\.lab\.test failed", sp.stderr_text())


def test_relay_dns_down_tempfail(world, tmp_path):
    """The name servers of the relay's zone do not answer: 451 4.4.3 within
    the configured DNS timeout, nothing relayed."""
    dead, _holder = closed_port()
    conf = tmp_path / "half-dead-unbound.conf"
    conf.write_text(open(world.dns.unbound_conf).read() +
                    "\nstub-zone:\n    name: \"dead.lab.test\"\n"
                    "    stub-addr: 127.0.0.1@%d\n" % dead)
    dns = "[dns]\nunbound-config = %s\ntrust-anchor-file = %s\ntimeout = 2\n" % (
        conf, world.dns.trust_anchor_file)
    world.hosts["dead"] = ("relay.dead.lab.test", world.sinks["ee"].port)
    # connections the daemons of earlier tests keep to this sink go first
    world.sinks["ee"].close_idle()
    world.sinks["ee"].reset()
    sp = start(world, "dead", dns=dns)
    c = RawClient(sp.implicit_port, world.certs.ca)
    c.greeting.check(220)
    c.login()
    t0 = time.monotonic()
    c.send(b"MAIL FROM:<%s>\r\n" % ALICE.encode())
    # while that session waits for the dead name servers, another one is
    # served at once: DNS never blocks the loop
    other = RawClient(sp.implicit_port, world.certs.ca)
    other.greeting.check(220)
    other.cmd("NOOP", 250, "2.0.0")
    other.cmd("QUIT", 221)
    assert c.pending(wait=0.05) == b"", "MAIL was answered before the DNS timeout"
    r = c.read_reply()
    assert r.code == 451 and r.enh == "4.4.3", r
    assert time.monotonic() - t0 < 2 * 2 + 3, "not answered within the DNS timeout"
    c.cmd("QUIT", 221)
    assert world.sinks["ee"].sessions() == []
    sp.stop()


# ---- our own listeners ----

@pytest.mark.parametrize("hostname,why", [
    ("nomail.lab.test", r"no TLSA record at _\d+\._tcp\.nomail\.lab\.test"),
    ("mail.insecure.lab.test", r"insecure"),
    ("mail.bogus.lab.test", r"bogus"),
    ("mail.expired.lab.test", r"bogus"),
    ("badmail.lab.test", r"no TLSA record at _\d+\._tcp\.badmail\.lab\.test matches"),
    ("unusable.lab.test", r"none usable"),
])
def test_own_tlsa_refuses_start(world, hostname, why):
    sp = start(world, "secure-ee", overrides=["server.hostname=%s" % hostname], wait=False)
    assert sp.expect_exit(1, timeout=20) == 1
    text = sp.stderr_text()
    assert "refusing to start" in text and re.search(why, text), text
    # each listener's refusal names the record that would match its certificate
    record = spki_311(world.certs.mail)
    for name, port in (("submissions", sp.implicit_port), ("submission", sp.starttls_port)):
        assert re.search(r"refusing to start: self-audit: dane\.own\.%s: listener \"%s\": .* "
                         r"_%d\._tcp\.%s\. IN TLSA %s$" % (name, name, port, re.escape(hostname),
                                                          record), text, re.M), text


def test_own_tlsa_uses_public_port(world):
    """Clients reach the listeners on port 2525 (say, through a port
    forward): the TLSA record there is the one that counts."""
    sp = start(world, "secure-ee", overrides=["server.hostname=nomail.lab.test",
                                              "listen.submissions.public-port=2525",
                                              "listen.submission.public-port=2525"])
    assert sp.wait_log(r"own-tlsa listener=submissions name=_2525\._tcp\.nomail\.lab\.test "
                       r".*verdict=ok-ee", timeout=5), sp.stderr_text(20)
    sp.stop()


def test_own_tlsa_matches_and_third_party_agrees(world, tmp_path):
    sp = start(world, "secure-ee")
    assert sp.wait_log(r"own-tlsa listener=submissions .*verdict=ok-ee", timeout=5)
    # ldns (an independent DNSSEC chaser) fetches the TLSA record ...
    name = "_%d._tcp.mail.lab.test" % sp.implicit_port
    ok, text = world.dns.chase(name, "TLSA")
    assert ok, text
    a = world.dns.query(name, "TLSA", via="unbound")
    assert a.status == "secure" and a.rdata, a
    tlsa = tmp_path / "tlsa.txt"
    tlsa.write_text("".join("%s. 300 IN TLSA %s\n" % (name, r) for r in a.rdata))
    # ... and ldns-dane checks subproxy's certificate against it
    r = subprocess.run(["ldns-dane", "-n", "-a", "127.0.0.1", "-t", str(tlsa), "verify"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "dane-validated successfully" in r.stdout + r.stderr, \
        r.stdout + r.stderr
    # and a wrong record is refused by the same tool (the check can fail)
    tlsa.write_text("%s. 300 IN TLSA %s\n" % (name, spki_311(world.certs.relay)))
    r = subprocess.run(["ldns-dane", "-n", "-a", "127.0.0.1", "-t", str(tlsa), "verify"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r.stdout + r.stderr
    sp.stop()
