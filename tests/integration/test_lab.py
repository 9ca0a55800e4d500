"""
test_lab.py -- the DNSSEC lab (tests/lab/dnslab.py) proves what it claims.

Every verdict is checked by validators that are not the lab's own code:
  - a validating unbound daemon (lab.query(), via="unbound": AD bit, SERVFAIL
    that answers with CD set = bogus), configured by the lab's unbound.conf;
  - libunbound through ctypes with ub_ctx_config(unbound.conf) only
    (via="libunbound": ub_result.secure/.bogus), i.e. what subproxy does and
    what `unbound-host -C` would do (package unbound-host is not installed);
  - ldns's chaser, `drill -S -k DNSKEY` straight against nsd (lab.chase()),
    whose code shares nothing with unbound.
Each test builds its own lab in its own tmp_path.
"""

import base64
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LABDIR = REPO / "tests" / "lab"
if str(LABDIR) not in sys.path:
    sys.path.insert(0, str(LABDIR))

import dnslab  # noqa: E402
from dnslab import DnsLab, LabError, group_members, tlsa_owner, tlsa_rdata, txt_rdata  # noqa: E402

PYTHON = sys.executable or "/usr/bin/python3"


def _procs_mentioning(text):
    """PIDs of live processes whose command line contains text."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open("/proc/%s/stat" % d, "rb") as f:
                state = f.read().decode("ascii", "replace").rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state not in ("Z", "X"):
            out.append(int(d))
    return out


def _assert_nothing_left(lab_or_dir, pgids=()):
    d = lab_or_dir.directory if isinstance(lab_or_dir, DnsLab) else str(lab_or_dir)
    end = time.monotonic() + 5
    while True:
        left = {g: group_members(g) for g in pgids}
        left = {g: m for g, m in left.items() if m}
        stray = _procs_mentioning(d)
        if not left and not stray:
            return
        if time.monotonic() > end:
            pytest.fail("processes left behind: groups %r, mentioning %s: %r" % (left, d, stray))
        time.sleep(0.05)


@pytest.fixture
def dns(tmp_path):
    """An unstarted lab in this test's tmp_path; stopped (and checked) after."""
    lab = DnsLab(tmp_path / "dns")
    yield lab
    pgids = list(lab.pids().values())
    lab.stop()
    _assert_nothing_left(lab, pgids)


@pytest.fixture
def started(dns):
    return dns.start()


def _all_validators(lab, name, rtype="A"):
    return lab.query(name, rtype), lab.query(name, rtype, via="libunbound")


# ---- verdicts ----

def test_secure_child_is_secure(started):
    for a in _all_validators(started, "www.secure.lab.test"):
        assert a.status == "secure" and a.rcode == "NOERROR", a
        assert a.rdata == ["127.0.0.1"], a
    assert started.query("www.secure.lab.test").ad is True
    ok, text = started.chase("www.secure.lab.test", "A")
    assert ok, text
    assert "secure.lab.test. (DS keytag" in text, text


def test_parent_records_are_secure(started):
    for name, rtype, want in (("relay.lab.test", "A", ["127.0.0.1"]),
                              ("relay.lab.test", "AAAA", ["::1"]),
                              ("mail.lab.test", "A", ["127.0.0.1"]),
                              ("lab.test", "MX", ["10 mx.lab.test."]),
                              ("mx.lab.test", "A", ["127.0.0.1"])):
        for a in _all_validators(started, name, rtype):
            assert a.status == "secure" and a.rdata == want, a
    ok, text = started.chase("relay.lab.test", "AAAA")
    assert ok, text


def test_nsec3_zone_is_secure_and_uses_nsec3(started):
    for a in _all_validators(started, "www.nsec3.lab.test"):
        assert a.status == "secure" and a.rdata == ["127.0.0.1"], a
    signed = Path(started.directory, "nsec3.lab.test.zone.signed").read_text()
    assert re.search(r"\sNSEC3PARAM\s+1\s+0\s+0\s+-", signed), signed[:2000]
    assert re.search(r"\sNSEC3\s", signed)
    assert not re.search(r"\sNSEC\s", signed), "NSEC records in the NSEC3 zone"
    for a in _all_validators(started, "nope.nsec3.lab.test"):
        assert a.status == "secure" and a.rcode == "NXDOMAIN" and a.rdata == [], a
    ok, text = started.chase("nope.nsec3.lab.test", "A")
    assert ok and "Existence is denied by" in text and "NSEC3" in text, text
    ok, text = started.chase("www.nsec3.lab.test", "A")
    assert ok, text


def test_insecure_zone_is_insecure(started):
    for a in _all_validators(started, "www.insecure.lab.test"):
        assert a.status == "insecure" and a.rcode == "NOERROR", a
        assert a.rdata == ["127.0.0.1"], a
    assert started.query("www.insecure.lab.test").ad is False
    # insecure because the parent proves, signed, that there is no DS
    a = started.query("insecure.lab.test", "DS")
    assert a.status == "secure" and a.rcode == "NOERROR" and a.rdata == [], a
    assert not Path(started.directory, "insecure.lab.test.zone.signed").exists()
    ok, text = started.chase("www.insecure.lab.test", "A")
    assert not ok, text


def test_bogus_zone_is_bogus(started):
    a, b = _all_validators(started, "www.bogus.lab.test")
    assert a.status == "bogus" and a.rcode == "SERVFAIL", a
    assert "DS" in a.why and "bogus.lab.test" in a.why, a
    assert b.status == "bogus" and b.why, b
    # the data is there (checking disabled shows it): only the chain is broken
    cd = started.query("www.bogus.lab.test", cd=True)
    assert cd.rcode == "NOERROR" and cd.rdata == ["127.0.0.1"], cd
    ok, text = started.chase("www.bogus.lab.test", "A")
    assert not ok, text
    # the DS in the parent names the child's KSK by key tag, but its digest
    # is wrong; the secure child's DS matches in both
    for zone, digest_ok in (("bogus.lab.test", False), ("secure.lab.test", True)):
        ds = started.query(zone, "DS")
        keys = started.query(zone, "DNSKEY", cd=True)
        assert ds.status == "secure" and len(ds.rdata) == 1, ds
        tag, alg, dtype, digest = ds.rdata[0].split()
        ksk = [k for k in keys.rdata if k.startswith("257 ")]
        assert len(ksk) == 1, keys
        assert int(tag) == _key_tag(ksk[0]) and alg == "13" and dtype == "2"
        assert (_ds_digest(zone, ksk[0]) == digest.lower()) is digest_ok, (zone, ds, keys)


def _dnskey_wire(rdata):
    flags, proto, alg, *key = rdata.split()
    return (int(flags).to_bytes(2, "big") + bytes([int(proto), int(alg)])
            + base64.b64decode("".join(key)))


def _key_tag(rdata):
    """RFC 4034 appendix B."""
    w = _dnskey_wire(rdata)
    acc = sum(b << 8 if i % 2 == 0 else b for i, b in enumerate(w))
    return (acc + (acc >> 16)) & 0xFFFF


def _ds_digest(owner, rdata):
    name = b"".join(bytes([len(lb)]) + lb.encode() for lb in owner.lower().split(".") if lb)
    return hashlib.sha256(name + b"\0" + _dnskey_wire(rdata)).hexdigest()


def test_expired_zone_is_bogus(started):
    a, b = _all_validators(started, "www.expired.lab.test")
    assert a.status == "bogus" and a.rcode == "SERVFAIL", a
    assert "expired" in a.why, a
    assert b.status == "bogus" and "expired" in b.why, b
    ok, text = started.chase("www.expired.lab.test", "A")
    assert not ok and "expired" in text, text
    # its DS is right: the signatures' dates are the only fault
    ds = started.query("expired.lab.test", "DS")
    assert ds.status == "secure" and ds.rdata, ds


def test_nxdomain_and_nodata_in_secure_zones_are_secure(started):
    for name in ("nope.secure.lab.test", "nope.lab.test"):
        for a in _all_validators(started, name):
            assert a.status == "secure" and a.rcode == "NXDOMAIN" and a.rdata == [], a
        ok, text = started.chase(name, "A")
        assert ok and "Existence is denied by" in text, text
    for a in _all_validators(started, "www.secure.lab.test", "TXT"):
        assert a.status == "secure" and a.rcode == "NOERROR" and a.rdata == [], a
    a = started.query("nope.insecure.lab.test")
    assert a.status == "insecure" and a.rcode == "NXDOMAIN", a


# ---- records through the API ----

def test_tlsa_added_via_api_is_served_and_secure(dns, lab_certs):
    rdata = tlsa_rdata(lab_certs.relay)
    # independent implementation (python3-cryptography) of the same pin
    assert rdata == lab_certs.tlsa(lab_certs.relay)
    full = tlsa_rdata(lab_certs.relay, usage=3, selector=0, mtype=2)
    assert full.startswith("3 0 2 ") and len(full.split()[3]) == 128
    dns.add("lab.test", "%s 300 TLSA %s" % (tlsa_owner("relay.lab.test", 25), rdata))
    dns.add("secure", "_465._tcp.mail 300 IN TLSA %s" % tlsa_rdata(lab_certs.mail))
    dns.add("lab.test", "_25._tcp.relay.lab.test. 300 TLSA " + full)
    dns.start()
    for a in _all_validators(dns, "_25._tcp.relay.lab.test", "TLSA"):
        assert a.status == "secure", a
        assert sorted(a.rdata) == sorted([rdata, full]), a
    for a in _all_validators(dns, "_465._tcp.mail.secure.lab.test", "TLSA"):
        assert a.status == "secure", a
        assert a.rdata == [tlsa_rdata(lab_certs.mail)], a
    ok, text = dns.chase("_25._tcp.relay.lab.test", "TLSA")
    assert ok, text


def test_long_txt_is_split_and_served_whole(dns):
    key = "".join(chr(ord("A") + (i * 7) % 26) for i in range(700))
    text = "v=DKIM1; k=rsa; p=" + key
    dns.add("lab.test", "s2026._domainkey TXT " + text)
    dns.add("secure", 's1._domainkey 300 TXT "v=DKIM1; k=ed25519; p=' + key[:300] + '"')
    dns.add_txt("lab.test", "quote", 'say "hi" \\ bye')
    lines = dns.records("lab.test")
    assert any(' "' in ln and "s2026._domainkey" in ln for ln in lines)
    dns.start()

    def whole(rd):
        parts = re.findall(r'"((?:[^"\\]|\\.)*)"', rd)
        assert all(len(p.replace("\\\\", "\\").replace('\\"', '"')) <= 255 for p in parts), rd
        return "".join(p.replace('\\"', '"').replace("\\\\", "\\") for p in parts), len(parts)

    for a in _all_validators(dns, "s2026._domainkey.lab.test", "TXT"):
        assert a.status == "secure" and len(a.rdata) == 1, a
        got, n = whole(a.rdata[0])
        assert got == text and n == 3, a
    a = dns.query("s1._domainkey.secure.lab.test", "TXT")
    assert a.status == "secure", a
    got, n = whole(a.rdata[0])
    assert got == "v=DKIM1; k=ed25519; p=" + key[:300] and n == 2, a
    a = dns.query("quote.lab.test", "TXT", via="libunbound")
    assert a.status == "secure" and whole(a.rdata[0])[0] == 'say "hi" \\ bye', a


def test_txt_rdata_chunks_octets():
    assert txt_rdata("") == '""'
    assert txt_rdata("a" * 255) == '"' + "a" * 255 + '"'
    assert txt_rdata("a" * 256) == '"' + "a" * 255 + '" "a"'
    assert txt_rdata('x"\\') == '"x\\"\\\\"'
    assert txt_rdata("\u00e9") == '"\\195\\169"'     # UTF-8 octets, escaped


def test_cname_srv_mx_records(dns):
    dns.add("lab.test", "alias 300 CNAME relay")
    dns.add("lab.test", "_submission._tcp 300 SRV 0 1 587 mail.lab.test.")
    dns.add("secure", "@ MX 20 backup.example.")
    dns.start()
    a = dns.query("alias.lab.test", "A")
    assert a.status == "secure" and a.rdata == ["127.0.0.1"], a
    assert any(r[2] == "CNAME" and r[3] == "relay.lab.test." for r in a.answer), a.answer
    a = dns.query("_submission._tcp.lab.test", "SRV", via="libunbound")
    assert a.status == "secure" and a.rdata == ["0 1 587 mail.lab.test."], a
    a = dns.query("secure.lab.test", "MX")
    assert a.status == "secure" and sorted(a.rdata) == ["10 relay.secure.lab.test.",
                                                       "20 backup.example."], a


def test_add_rejects_bad_input(dns):
    with pytest.raises(ValueError):
        dns.add("lab.test", "x A 127.0.0.1\nevil A 127.0.0.2")
    with pytest.raises(ValueError):
        dns.add("lab.test", "x.example. A 127.0.0.1")        # outside the zone
    with pytest.raises(ValueError):
        dns.add("lab.test", "lonely")
    with pytest.raises(KeyError):
        dns.add("nosuch", "x A 127.0.0.1")
    with pytest.raises(ValueError):
        dns.add_zone("x.y", "secure")
    with pytest.raises(ValueError):
        dns.add_zone("more", "weird")


def test_broken_record_fails_start_cleanly(dns):
    dns.add("lab.test", "broken A not-an-address")
    with pytest.raises(LabError, match="ldns-signzone lab.test"):
        dns.start()
    assert not dns.running and dns.pids() == {}


def test_reload_serves_changed_records(started):
    port = started.port
    old_pgid = started.pids()["nsd"]
    a = started.query("www.lab.test")
    assert a.status == "secure" and a.rdata == ["127.0.0.2"], a
    assert started.remove("lab.test", "www", "A") == 1
    started.add("lab.test", "www 60 A 127.0.0.3")
    started.add("secure", "new 60 TXT fresh")
    started.reload()
    assert started.port == port
    assert started.pids()["nsd"] != old_pgid and group_members(old_pgid) == []
    for a in _all_validators(started, "www.lab.test"):
        assert a.status == "secure" and a.rdata == ["127.0.0.3"], a
    a = started.query("new.secure.lab.test", "TXT")
    assert a.status == "secure" and a.rdata == ['"fresh"'], a
    assert started.start_seconds < 3


def test_extra_zone_and_ed25519_csk(tmp_path):
    lab = DnsLab(tmp_path / "ed", algorithm="ED25519", csk=True, children=())
    assert lab.zones == ["lab.test."]
    lab.add_zone("child", "secure")
    lab.add_zone("broken.lab.test.", "bogus")
    with lab:
        for a in _all_validators(lab, "www.child.lab.test"):
            assert a.status == "secure", a
        assert lab.query("www.broken.lab.test").status == "bogus"
        ta = Path(lab.trust_anchor_file).read_text().split()
        assert ta[3] == "DS" and ta[5] == "15", ta          # ED25519
        assert len(list(Path(lab.keydir).rglob("*.private"))) == 3     # one CSK per zone
        pgids = list(lab.pids().values())
    _assert_nothing_left(lab, pgids)


# ---- the generated configurations ----

def test_unbound_conf_settings(started):
    text = Path(started.unbound_conf).read_text()
    for want in ('local-zone: "test." nodefault', "do-not-query-localhost: no",
                 'trust-anchor-file: "%s"' % started.trust_anchor_file, "val-log-level: 2",
                 "harden-dnssec-stripped: yes", 'name: "lab.test."',
                 "stub-addr: 127.0.0.1@%d" % started.port, 'name: "."'):
        assert want in text, want
    assert "domain-insecure" not in text and "auto-trust-anchor" not in text
    ta = Path(started.trust_anchor_file).read_text()
    assert re.match(r"^lab\.test\.\s+\d+\s+IN\s+DS\s+\d+ 13 2 [0-9a-f]{64}\s*$", ta), ta
    assert re.match(r"^lab\.test\.\s+IN\s+DNSKEY\s+257 3 13 ", Path(started.dnskey_file).read_text())
    started.validator()
    r = subprocess.run(["unbound-checkconf", started.validator_conf], capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    nsd = Path(started.nsd_conf).read_text()
    for want in ("ip-address: 127.0.0.1@%d" % started.port, 'username: ""', 'chroot: ""',
                 "server-count: 1", "do-ip6: no", 'zonesdir: "%s"' % started.directory):
        assert want in nsd, want
    r = subprocess.run(["nsd-checkconf", started.nsd_conf], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_local_zone_nodefault_is_needed(started, tmp_path):
    """Without the nodefault line libunbound's built-in "test." zone answers
    NXDOMAIN for every lab name -- the reason the line is there."""
    conf = tmp_path / "without.conf"
    conf.write_text("\n".join(ln for ln in Path(started.unbound_conf).read_text().splitlines()
                              if "local-zone" not in ln) + "\n")
    a = started.query("relay.lab.test", via="libunbound", conf=str(conf))
    assert a.rcode == "NXDOMAIN" and a.rdata == [], a
    a = started.query("relay.lab.test", via="libunbound")
    assert a.status == "secure" and a.rdata == ["127.0.0.1"], a


def test_nothing_leaves_loopback(started):
    a = started.query("www.example.com", via="libunbound")
    assert a.rcode == "SERVFAIL" and a.status == "servfail", a


# ---- processes ----

def test_start_and_stop_leave_no_process(dns):
    assert dns.pids() == {}
    dns.start()
    assert dns.running and dns.start_seconds < 3, dns.start_seconds
    dns.validator()
    pgids = dns.pids()
    assert set(pgids) == {"nsd", "validator"}
    assert len(group_members(pgids["nsd"])) >= 2        # nsd runs several processes
    assert _procs_mentioning(dns.directory)
    port = dns.port
    dns.stop()
    assert not dns.running and dns.pids() == {}
    for g in pgids.values():
        assert group_members(g) == [], g
    assert _procs_mentioning(dns.directory) == []
    dns.stop()                                          # idempotent
    # the port is free again at once, and a restart uses it
    dns.start()
    assert dns.port == port and dns.query("relay.lab.test").secure
    dns.stop()
    _assert_nothing_left(dns)


def test_context_manager(tmp_path):
    with DnsLab(tmp_path / "cm") as lab:
        assert lab.running
        assert lab.query("www.secure.lab.test").status == "secure"
        pgids = list(lab.pids().values())
    assert not lab.running
    _assert_nothing_left(lab, pgids)


def hold_udp_and_tcp():
    """A loopback port held for both UDP and TCP: the UDP port the kernel
    picks may already be taken for TCP by another test or a benchmark on
    the machine, then another one is tried (at most 50)."""
    for _ in range(50):
        holder_u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder_t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder_u.bind(("127.0.0.1", 0))
        busy = holder_u.getsockname()[1]
        try:
            holder_t.bind(("127.0.0.1", busy))
        except OSError:
            holder_u.close()
            holder_t.close()
            continue
        holder_t.listen(1)
        return holder_u, holder_t, busy
    pytest.fail("no loopback port free for both UDP and TCP in 50 tries")


def test_port_collision_is_retried(tmp_path, monkeypatch):
    holder_u, holder_t, busy = hold_udp_and_tcp()
    try:
        real = dnslab.free_port
        handed = []

        def fake():
            p = busy if not handed else real()
            handed.append(p)
            return p
        monkeypatch.setattr(dnslab, "free_port", fake)
        lab = DnsLab(tmp_path / "busy")
        try:
            lab.start()
            assert handed[0] == busy and lab.port != busy and len(handed) >= 2
            assert lab.query("relay.lab.test").secure
            assert "127.0.0.1@%d" % lab.port in Path(lab.unbound_conf).read_text()
        finally:
            lab.stop()
        _assert_nothing_left(lab)
        # a fixed port that is taken is an error, not a silent other port
        lab2 = DnsLab(tmp_path / "fixed", port=busy)
        with pytest.raises(LabError, match="bind"):
            lab2.start()
        _assert_nothing_left(lab2)
    finally:
        holder_u.close()
        holder_t.close()


_CHILD = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, %r)
    import dnslab
    lab = dnslab.DnsLab(sys.argv[1]).start()
    lab.validator()
    print(" ".join(str(g) for g in lab.pids().values()), flush=True)
    if sys.argv[2] == "exit":
        sys.exit(0)                 # no stop(): the finalizer must do it
    if sys.argv[2] == "drop":
        del lab                     # the weakref finalizer
        print("dropped", flush=True)
    sys.stdin.read()                # wait to be killed
""") % str(LABDIR)


@pytest.mark.parametrize("how", ["exit", "drop", "sigkill"])
def test_processes_end_with_the_interpreter(tmp_path, how):
    d = tmp_path / how
    p = subprocess.Popen([PYTHON, "-c", _CHILD, str(d), how], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        pgids = [int(x) for x in line.split()]
        assert len(pgids) == 2, (line, p.stderr.read() if p.poll() is not None else "")
        if how == "drop":
            assert p.stdout.readline().strip() == "dropped"
            for g in pgids:
                assert group_members(g) == []
            p.stdin.close()
        elif how == "sigkill":
            assert all(group_members(g) for g in pgids)
            p.kill()                # no atexit: the children die with us (setpriv)
        p.wait(15)
        if how == "exit":
            assert p.returncode == 0, p.stderr.read()
        _assert_nothing_left(d, pgids)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        p.stdin.close()
        p.stdout.close()
        p.stderr.close()


def test_cli_serves_until_sigterm(tmp_path):
    d = tmp_path / "cli"
    p = subprocess.Popen([PYTHON, str(LABDIR / "dnslab.py"), "--dir", str(d), "--add",
                          "lab.test", "cli 60 TXT from the command line"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        info = {}
        while True:
            line = p.stdout.readline().rstrip("\n")
            key, _, val = line.partition(" ")
            info.setdefault(key, []).append(val)
            if key == "start_seconds":
                break
        assert info["unbound_conf"] == [str(d / "unbound.conf")]
        assert info["trust_anchor_file"] == [str(d / "lab.test.ds")]
        assert "secure.lab.test. secure" in info["zone"]
        r = subprocess.run(["drill", "-p", str(port), "@127.0.0.1", "cli.lab.test", "TXT"],
                           capture_output=True, text=True, check=False)
        assert "from the command line" in r.stdout and " aa " in r.stdout, r.stdout
        nsd_pid = int((d / "nsd.pid").read_text())
        assert group_members(nsd_pid)
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0, p.stderr.read()
        _assert_nothing_left(d, [nsd_pid])
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        p.stdout.close()
        p.stderr.close()
