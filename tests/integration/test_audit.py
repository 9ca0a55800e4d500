"""
The self-audit (`subproxy -c FILE --check [--json]`, `--dns-records`, and
the same checks at start-up) on a DNSSEC lab of this module's own, where
every posture can be right or deliberately wrong:

  mail.lab.test           TLSA 3 1 1 (good leaf) + 2 1 1 (lab CA) at 465/587
  m1.lab.test             TLSA 3 1 1 of mail.lab.test's leaf: another key
                          than m1's certificate
  mail.insecure.lab.test  TLSA in the unsigned child zone
  ed/rsa._domainkey.lab.test, ed/rsa._domainkey.d2.lab.test   DKIM TXT
  _submission(s)._tcp.lab.test  SRV -> mail.lab.test 587 / 465; none for d2

A correct installation passes (both formats, both profiles); each broken
posture fails with its check id and exit 1, and the daemon refuses to start
with the same words; the JSON validates against doc/audit.schema.json; the
records --dns-records prints, loaded into an empty lab, make --check pass.
"""

import json
import os
import re
import shutil
import subprocess
import time

import pytest

import auditlab
import dkimkeys
import dnslab
import sink as labsink
from conftest import REPO, dns_section, hash_password, relay_section, subproxy_binary
from helpers import RELAY_NAME, SENDERS, closed_port, free_port
from opsutil import fronts

SCHEMA = REPO / "doc" / "audit.schema.json"
BSI = "bsi-tr-03108"
# TR-02102-2 style: AES-GCM only, ECDHE, NIST curves and large FFDHE groups
BSI_PRIORITY = ("SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:"
                "+AES-256-GCM:+AES-128-GCM:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-GROUP-ALL:"
                "+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:+GROUP-FFDHE3072:"
                "+GROUP-FFDHE4096:%SAFE_RENEGOTIATION")
PORTS = {"submissions": 465, "submission": 587}


# ---- a minimal JSON Schema validator (python3-jsonschema is not installed
# on the lab machines): the keywords doc/audit.schema.json uses ----

class SchemaError(AssertionError):
    pass


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def validate(doc, schema, path="$"):
    known = {"$schema", "$id", "title", "description", "type", "const", "enum", "required",
             "properties", "additionalProperties", "items", "minItems", "minLength", "pattern"}
    unknown = set(schema) - known
    if unknown:
        raise SchemaError("validator does not know %s (at %s)" % (sorted(unknown), path))
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(isinstance(doc, _TYPES[t]) and not (t != "boolean" and isinstance(doc, bool))
                 for t in types)
        if not ok:
            raise SchemaError("%s: %r is not of type %s" % (path, doc, types))
    if "const" in schema and (doc != schema["const"] or type(doc) is not type(schema["const"])):
        raise SchemaError("%s: %r is not %r" % (path, doc, schema["const"]))
    if "enum" in schema and doc not in schema["enum"]:
        raise SchemaError("%s: %r not in %r" % (path, doc, schema["enum"]))
    if isinstance(doc, str):
        if len(doc) < schema.get("minLength", 0):
            raise SchemaError("%s: too short" % path)
        if "pattern" in schema and not re.search(schema["pattern"], doc):
            raise SchemaError("%s: %r does not match %s" % (path, doc, schema["pattern"]))
    if isinstance(doc, dict):
        for k in schema.get("required", []):
            if k not in doc:
                raise SchemaError("%s: missing %s" % (path, k))
        props = schema.get("properties", {})
        for k, v in doc.items():
            if k in props:
                validate(v, props[k], "%s.%s" % (path, k))
            elif schema.get("additionalProperties", True) is False:
                raise SchemaError("%s: unexpected key %s" % (path, k))
    if isinstance(doc, list):
        if len(doc) < schema.get("minItems", 0):
            raise SchemaError("%s: fewer than %d items" % (path, schema["minItems"]))
        for i, item in enumerate(doc):
            if "items" in schema:
                validate(item, schema["items"], "%s[%d]" % (path, i))


def load_schema():
    with open(SCHEMA, encoding="utf-8") as f:
        return json.load(f)


def validate_report(report):
    validate(report, load_schema())
    # what the schema cannot say
    for c in report["checks"]:
        if c["status"] in ("pass", "skip"):
            assert c["remedy"] == "", c
        if c["status"] == "fail":
            assert c["required"] and c["remedy"], c
    failed = any(c["status"] == "fail" and c["required"] for c in report["checks"])
    assert report["result"] == ("fail" if failed else "pass"), report
    ids = [c["id"] for c in report["checks"]]
    assert len(ids) == len(set(ids)), "duplicate check ids: %s" % ids


# ---- certificates and keys made for this module ----

def rsa_leaf(ca, name, bits, directory, stem, days=90):
    """A leaf for name with an RSA key of bits, issued by the lab CA."""
    import datetime
    from cryptography import x509
    from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    now = datetime.datetime.now(datetime.timezone.utc)
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca.key, hashes.SHA256()))
    chain = os.path.join(str(directory), stem + ".pem")
    keyp = os.path.join(str(directory), stem + ".key")
    with open(chain, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM) + ca.pem())
    fd = os.open(keyp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return chain, keyp


class World:
    def __init__(self, tmp, certs, passwd, sandbox):
        self.tmp, self.certs, self.passwd, self.sandbox = tmp, certs, passwd, sandbox
        ca = certs.authority
        d = str(tmp)
        self.good = ca.issue("mail.lab.test", d, "amail", days=90)
        self.m1 = ca.issue("m1.lab.test", d, "am1", days=90)
        self.expired = ca.issue("mail.lab.test", d, "aexpired", expired=True)
        self.insecure = ca.issue("mail.insecure.lab.test", d, "ainsecure", days=90)
        self.weak = rsa_leaf(ca, "mail.lab.test", 2048, d, "aweak")
        self.dkim = dkimkeys.LabDkim(tmp / "dkim", domains=("lab.test", "d2.lab.test"))
        # a key that is not the one published at rsa._domainkey.lab.test
        self.intruder = dkimkeys.LabDkim(tmp / "intruder", domains=())
        self.intruder.add("lab.test", "rsa", "rsa")
        self.ca_211 = dnslab.tlsa_rdata(certs.ca, usage=2, selector=1, mtype=1)
        self.dns = self.make_dns(tmp / "dns")
        # bsi-tr-03108 requires an audit log
        self.audit = auditlab.AuditLog(tmp / "auditlog")
        self.hash_b = hash_password("b")
        self.n = 0

    def make_dns(self, where):
        lab = dnslab.DnsLab(where)
        good = labsink.tlsa_311(self.good[0])
        for port in PORTS.values():
            lab.add("lab.test", "_%d._tcp.mail 300 TLSA %s" % (port, good))
            lab.add("lab.test", "_%d._tcp.mail 300 TLSA %s" % (port, self.ca_211))
            lab.add("lab.test", "_%d._tcp.m1 300 TLSA %s" % (port, good))
            lab.add("insecure", "_%d._tcp.mail 300 TLSA %s" % (
                port, labsink.tlsa_311(self.insecure[0])))
        lab.add("lab.test", "m1 300 A 127.0.0.1")
        lab.add("insecure", "mail 300 A 127.0.0.1")
        for (dom, sel), k in self.dkim.keys.items():
            owner = "%s._domainkey" % sel if dom == "lab.test" else "%s._domainkey.d2" % sel
            lab.add("lab.test", "%s 300 TXT %s" % (owner, k["txt"]))
        lab.add("lab.test", "_submission._tcp 300 SRV 0 1 587 mail.lab.test.")
        lab.add("lab.test", "_submissions._tcp 300 SRV 0 1 465 mail.lab.test.")
        return lab.start()

    def dkim_config(self, domains=("lab.test",), swap_rsa=None, ed_file=None):
        out = []
        for dom in domains:
            out.append('[dkim "%s"]' % dom)
            for sel in ("ed", "rsa"):
                path = self.dkim.keys[(dom, sel)]["file"]
                if dom == "lab.test" and sel == "rsa" and swap_rsa:
                    path = swap_rsa
                if dom == "lab.test" and sel == "ed" and ed_file:
                    path = ed_file
                out.append("key = %s %s" % (sel, path))
            out.append("")
        return "\n".join(out) + "\n"

    def config(self, *, hostname="mail.lab.test", cert=None, profile=None, priority=None,
               dkim=None, dns=None, relay_tlsa=None, audit=None, proxy_from=None, passwd=None,
               relay_extra=None):
        """Write a configuration for --check; returns its path.  audit: an
        [audit] section (default: under bsi-tr-03108, which requires one).
        proxy_from: the submission listener takes PROXY headers from these
        prefixes.  passwd: another [auth] passwd-file; relay_extra: more
        keys of the relay's section."""
        cert = cert or self.good
        self.n += 1
        server = ["hostname = %s" % hostname]
        server += ["%s = %s" % kv for kv in self.sandbox.items()]
        if profile:
            server.append("profile = %s" % profile)
        tls = ["certificate = %s" % cert[0], "key = %s" % cert[1]]
        if priority:
            tls.append('priority = "%s"' % priority)
        text = "\n".join([
            "[server]", *server, "",
            '[listen "submissions"]', "address = 127.0.0.1:%d" % free_port(),
            "public-port = 465", "tls = implicit", "",
            '[listen "submission"]', "address = 127.0.0.1:%d" % free_port(),
            "public-port = 587", "tls = starttls",
            *(["proxy-protocol = yes", "proxy-from = %s" % proxy_from] if proxy_from else []),
            "",
            "[tls]", *tls, "",
            "[auth]", "passwd-file = %s" % (passwd or self.passwd), "",
            "[senders]", *["%s = %s" % kv for kv in SENDERS.items()], "",
            relay_section("sink", host=RELAY_NAME, address="127.0.0.1", port=2525,
                          tlsa=relay_tlsa or labsink.tlsa_311(self.certs.relay),
                          extra=relay_extra),
            dkim if dkim is not None else self.dkim_config(),
            dns or dns_section(self.dns),
            self.audit.section() if (profile == BSI if audit is None else audit) else "",
        ]) + "\n"
        path = self.tmp / ("audit%d.conf" % self.n)
        path.write_text(text)
        os.chmod(path, 0o644)
        return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory, lab_certs, passwd_file, sandbox_server):
    w = World(tmp_path_factory.mktemp("audit"), lab_certs, passwd_file, sandbox_server)
    yield w
    w.dns.stop()
    w.audit.remove()


def check(conf, *args, timeout=60):
    """Run --check; (exit status, stdout, stderr)."""
    r = subprocess.run([subproxy_binary(), "-c", conf, "--check", *args], capture_output=True,
                       text=True, timeout=timeout, check=False)
    return r.returncode, r.stdout, r.stderr


def check_json(conf, timeout=60):
    rc, out, err = check(conf, "--json", timeout=timeout)
    try:
        report = json.loads(out)
    except ValueError:
        pytest.fail("--check --json printed no JSON (status %d):\n%s\n%s" % (rc, out, err))
    validate_report(report)
    return rc, report


def statuses(report):
    return {c["id"]: c for c in report["checks"]}


def failed_ids(report):
    return sorted(c["id"] for c in report["checks"] if c["status"] == "fail")


# ---- the schema validator itself can fail ----

def test_schema_validator_rejects_bad_reports():
    good = {"version": 1, "profile": "baseline", "result": "pass", "checks": [
        {"id": "config.parse", "status": "pass", "required": True, "summary": "ok",
         "remedy": "", "refs": ["RFC1-2"]}]}
    validate_report(good)
    bad = [
        ("version", 2), ("result", "maybe"), ("profile", 3), ("checks", []),
        ("extra", 1),
    ]
    for key, value in bad:
        doc = json.loads(json.dumps(good))
        doc[key] = value
        with pytest.raises(SchemaError):
            validate(doc, load_schema())
    for key, value in [("status", "ok"), ("required", "yes"), ("summary", ""),
                       ("refs", ["a b"]), ("id", "nodot"), ("more", 1), ("required", 1)]:
        doc = json.loads(json.dumps(good))
        doc["checks"][0][key] = value
        with pytest.raises(SchemaError):
            validate(doc, load_schema())
    doc = json.loads(json.dumps(good))
    del doc["checks"][0]["remedy"]
    with pytest.raises(SchemaError):
        validate(doc, load_schema())


# ---- a correct installation ----

@pytest.mark.parametrize("profile", ["baseline", BSI])
def test_correct_installation_passes(world, profile):
    conf = world.config(profile=profile if profile != "baseline" else None,
                        priority=BSI_PRIORITY if profile == BSI else None)
    rc, report = check_json(conf)
    assert rc == 0 and report["result"] == "pass", json.dumps(report, indent=1)
    assert report["profile"] == profile
    st = statuses(report)
    # every check passes; skipped only: the user and chroot checks when not
    # running as root (subproxy cannot switch users then), and the audit log
    # under baseline (world.config() configures one only under BSI)
    root_only = ("sandbox.user", "sandbox.chroot")

    def want(cid):
        if (cid in root_only and os.geteuid() != 0) or (cid == "audit.log" and profile != BSI):
            return "skip"
        return "pass"

    for cid in ("config.parse", "config.profile", "tls.cert.present", "tls.key.match",
                "tls.chain.complete", "tls.cert.expiry", "tls.cert.name", "tls.key.strength",
                "tls.priority", "dnssec.validation", "dane.own.submissions",
                "dane.own.submission", "dkim.lab.test.ed.file", "dkim.lab.test.ed.strength",
                "dkim.lab.test.ed.dns", "dkim.lab.test.rsa.file", "dkim.lab.test.rsa.dns",
                "srv.submission.lab.test", "srv.submissions.lab.test", "relay.sink.dane",
                "sandbox.seccomp", "sandbox.user", "sandbox.chroot", "files.modes",
                "audit.log"):
        assert cid in st, "check %s missing" % cid
    unexpected = {cid: c["status"] for cid, c in st.items() if c["status"] != want(cid)}
    assert unexpected == {}, json.dumps(report, indent=1)
    if os.geteuid() != 0:
        for cid in root_only:
            assert "not running as root" in st[cid]["summary"], st[cid]
    if profile == BSI:
        assert st["audit.log"]["status"] == "pass" and st["audit.key"]["status"] == "pass"
        assert all(c["required"] for c in report["checks"])
        assert st["dkim.lab.test.algorithms"]["status"] == "pass"
        assert any(r.startswith("TR-03108") for r in st["tls.priority"]["refs"])
        assert "CHACHA20" not in st["tls.priority"]["summary"]
    else:
        assert st["srv.submission.lab.test"]["required"] is False
        assert "dkim.lab.test.algorithms" not in st
        assert st["audit.log"]["status"] == "skip" and "audit.key" not in st
    assert "RFC7672-2.2" in st["dane.own.submissions"]["refs"]
    # the text table: same verdict, every id, no failures
    rc, out, err = check(conf)
    assert rc == 0, out + err
    assert re.search(r"^result: pass ", out, re.M), out
    for cid in st:
        assert re.search(r"^%s\s+%s\s" % (st[cid]["status"], re.escape(cid)), out, re.M), \
            (cid, st[cid]["status"], out)
    assert "FAIL" not in out


def test_single_tlsa_record_warns_but_passes(world, tmp_path):
    """Only one TLSA record: no rollover possible -- a warning, not a failure."""
    lab = dnslab.DnsLab(tmp_path / "dns1")
    for port in PORTS.values():
        lab.add("lab.test", "_%d._tcp.mail 300 TLSA %s" % (port,
                                                         labsink.tlsa_311(world.good[0])))
    lab.start()
    try:
        rc, report = check_json(world.config(dns=dns_section(lab)))
    finally:
        lab.stop()
    st = statuses(report)
    assert rc == 0, json.dumps(report, indent=1)
    for name in PORTS:
        c = st["dane.own.%s" % name]
        assert c["status"] == "warn" and c["required"], c
        assert "only usable record" in c["summary"] and "2 1 1" in c["remedy"], c


def test_missing_srv_only_warns_under_baseline(world):
    rc, report = check_json(world.config(dkim=world.dkim_config(("lab.test", "d2.lab.test"))))
    st = statuses(report)
    assert rc == 0, json.dumps(report, indent=1)
    for svc in ("submission", "submissions"):
        c = st["srv.%s.d2.lab.test" % svc]
        assert c["status"] == "warn" and c["required"] is False, c
        assert "no SRV record" in c["summary"]
        assert c["remedy"] == "publish: _%s._tcp.d2.lab.test. IN SRV 0 1 %d mail.lab.test." % (
            svc, PORTS["submissions" if svc == "submissions" else "submission"])


@pytest.mark.parametrize("proxy_from,wide", [
    ("127.0.0.1, 10.0.0.0/8, fd00::/8, 192.0.2.0/24, 35.191.0.0/16, 2001:db8:1::/48", None),
    ("0.0.0.0/0", "0.0.0.0/0"),
    ("10.0.0.2, ::/0, 2001:db8::/32", "::/0, 2001:db8::/32"),
])
def test_wide_proxy_from_warns(world, proxy_from, wide):
    """Whoever may send a PROXY header may claim any client address: a
    proxy-from reaching public addresses beyond a /16 (IPv4) or /48 (IPv6)
    is a warning, private ranges and narrow prefixes pass.  Only listeners
    with proxy-protocol are checked."""
    rc, report = check_json(world.config(proxy_from=proxy_from))
    assert rc == 0 and report["result"] == "pass", json.dumps(report, indent=1)
    st = statuses(report)
    assert "listen.submissions.proxy-from" not in st
    c = st["listen.submission.proxy-from"]
    if wide is None:
        assert c["status"] == "pass", c
        assert c["summary"].startswith("%d prefixes" % len(proxy_from.split(","))), c
    else:
        assert c["status"] == "warn" and c["required"], c
        assert c["summary"].startswith(wide + " reach"), c
        assert "claim any client address" in c["summary"], c
        assert "load balancers' addresses" in c["remedy"], c
        rc, out, err = check(world.config(proxy_from=proxy_from))
        assert rc == 0, out + err
        assert re.search(r"^warn\s+listen\.submission\.proxy-from\s", out, re.M), out


# ---- broken postures ----

def _copy_mode(src, dst, mode):
    shutil.copy(src, dst)
    os.chmod(dst, mode)
    return str(dst)


def _write_passwd(path, lines):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


# name -> (config arguments, daemon overrides, profile, failing ids, summary regex)
def postures(world, tmp):
    ed644 = _copy_mode(world.dkim.keys[("lab.test", "ed")]["file"], tmp / "ed644.key", 0o644)
    intruder = world.intruder.keys[("lab.test", "rsa")]["file"]
    # password files the keeper refuses (mode 0600: only the content is wrong)
    plain = _write_passwd(tmp / "passwd-plain", ["alice:{PLAIN}secret"])
    dup = _write_passwd(tmp / "passwd-dup", ["# lab", "bob:%s" % world.hash_b,
                                             "bob:%s" % world.hash_b])
    noauth = _write_passwd(tmp / "relay-auth", ["relay-user-without-password"])
    # a FIFO nobody writes to: opening it for reading must not wait
    fifo = str(tmp / "relay-auth-fifo")
    os.mkfifo(fifo, 0o600)
    # files of mode 0600 in a directory anyone may write (not sticky): they
    # can be replaced by a passwd file or a key of someone else's
    opendir = tmp / "open"
    opendir.mkdir(exist_ok=True)
    os.chmod(opendir, 0o777)
    pw_open = _copy_mode(world.passwd, opendir / "passwd", 0o600)
    ed_open = _copy_mode(world.dkim.keys[("lab.test", "ed")]["file"], opendir / "ed.key", 0o600)
    # a key configured through a symlink that leads into that directory
    ed_link = str(tmp / "ed-link.key")
    os.symlink(ed_open, ed_link)
    return {
        "cert-not-matching-tlsa": (
            dict(hostname="m1.lab.test", cert=world.m1), ["server.hostname=m1.lab.test"],
            "baseline", ["dane.own.submission", "dane.own.submissions"],
            r"no TLSA record at _465\._tcp\.m1\.lab\.test matches the certificate served"),
        "tlsa-insecure": (
            dict(hostname="mail.insecure.lab.test", cert=world.insecure),
            ["server.hostname=mail.insecure.lab.test"], "baseline",
            ["dane.own.submission", "dane.own.submissions", "dnssec.validation"],
            r"the TLSA lookup of _465\._tcp\.mail\.insecure\.lab\.test is insecure"),
        "dkim-txt-for-another-key": (
            dict(dkim=world.dkim_config(swap_rsa=intruder)), [], "baseline",
            ["dkim.lab.test.rsa.dns"],
            r"rsa\._domainkey\.lab\.test has 1 TXT record\(s\), none carrying this key"),
        "expired-cert": (
            dict(cert=world.expired), [], "baseline",
            # DANE-TA checks dates too; the 3 1 1 record is for another key
            ["dane.own.submission", "dane.own.submissions", "tls.cert.expiry"],
            r"certificate 1 of \S+aexpired\.pem expired on \d{4}-"),
        "dkim-key-mode-0644": (
            dict(dkim=world.dkim_config(ed_file=ed644)), [], "baseline",
            ["dkim.lab.test.ed.file"],
            r"%s: mode 0644 lets group or others read the DKIM key" % re.escape(ed644)),
        "weak-rsa-tls-key-bsi": (
            dict(cert=world.weak, profile=BSI, priority=BSI_PRIORITY), [], BSI,
            ["tls.key.strength"],
            r"the certificate's rsa key has 2048 bits; profile bsi-tr-03108 requires at "
            r"least 3000"),
        "missing-srv-bsi": (
            dict(profile=BSI, priority=BSI_PRIORITY,
                 dkim=world.dkim_config(("lab.test", "d2.lab.test"))), [], BSI,
            ["srv.submission.d2.lab.test", "srv.submissions.d2.lab.test"],
            r"no SRV record at _submission\._tcp\.d2\.lab\.test"),
        "chacha20-under-bsi": (
            dict(profile=BSI, priority=BSI_PRIORITY.replace(
                "+AES-128-GCM:", "+AES-128-GCM:+CHACHA20-POLY1305:")), [], BSI,
            ["tls.priority"], r"lets clients negotiate CHACHA20-POLY1305, which profile "
            r"bsi-tr-03108 does not allow"),
        "passwd-plain-hash": (
            dict(passwd=plain), ["auth.passwd-file=%s" % plain], "baseline", ["auth.passwd"],
            r"%s:1: only \{ARGON2ID\} hashes are accepted" % re.escape(plain)),
        "passwd-duplicate-login": (
            dict(passwd=dup), ["auth.passwd-file=%s" % dup], "baseline", ["auth.passwd"],
            r'%s:3: duplicate login "bob" \(first on line 2\)' % re.escape(dup)),
        "relay-auth-file-without-colon": (
            dict(relay_extra={"auth-file": noauth}), ["relay.sink.auth-file=%s" % noauth],
            "baseline", ["relay.sink.auth-file"],
            r'\[relay "sink"\] auth-file %s: expected one line user:password' % re.escape(noauth)),
        "relay-auth-file-fifo": (
            dict(relay_extra={"auth-file": fifo}), ["relay.sink.auth-file=%s" % fifo],
            "baseline", ["relay.sink.auth-file"],
            r'\[relay "sink"\] auth-file %s is not a regular file \(expected one line '
            r'user:password\)' % re.escape(fifo)),
        "passwd-in-a-directory-others-write": (
            dict(passwd=pw_open), ["auth.passwd-file=%s" % pw_open], "baseline",
            ["files.modes"], r"^directory %s \(above the passwd file\) has mode 0777: group "
            r"or others can replace what it holds$" % re.escape(str(opendir))),
        "dkim-key-in-a-directory-others-write": (
            dict(dkim=world.dkim_config(ed_file=ed_open)), [], "baseline", ["files.modes"],
            r"^directory %s \(above the DKIM key\) has mode 0777" % re.escape(str(opendir))),
        "dkim-key-symlinked-into-a-directory-others-write": (
            dict(dkim=world.dkim_config(ed_file=ed_link)), [], "baseline", ["files.modes"],
            r"^directory %s \(above %s, where the DKIM key %s leads through symlinks\) has "
            r"mode 0777: group or others can replace what it holds$" % (
                re.escape(str(opendir)), re.escape(ed_open), re.escape(ed_link))),
        "no-audit-log-bsi": (
            dict(profile=BSI, priority=BSI_PRIORITY, audit=False), [], BSI,
            ["audit.log"], r"no audit log is configured, and profile bsi-tr-03108 requires "
            r"one"),
    }


POSTURES = ["cert-not-matching-tlsa", "tlsa-insecure", "dkim-txt-for-another-key",
            "expired-cert", "dkim-key-mode-0644", "weak-rsa-tls-key-bsi", "missing-srv-bsi",
            "chacha20-under-bsi", "no-audit-log-bsi", "passwd-plain-hash",
            "passwd-duplicate-login", "relay-auth-file-without-colon", "relay-auth-file-fifo",
            "passwd-in-a-directory-others-write", "dkim-key-in-a-directory-others-write",
            "dkim-key-symlinked-into-a-directory-others-write"]


@pytest.mark.parametrize("name", POSTURES)
def test_broken_posture_fails_check_and_start(world, lab, tmp_path, name):
    kwargs, overrides, profile, want_ids, want_summary = postures(world, tmp_path)[name]
    conf = world.config(**kwargs)
    rc, report = check_json(conf)
    assert rc == 1 and report["result"] == "fail", json.dumps(report, indent=1)
    assert report["profile"] == profile
    assert failed_ids(report) == sorted(want_ids), json.dumps(report, indent=1)
    st = statuses(report)
    hits = [c for c in report["checks"] if c["id"] in want_ids and
            re.search(want_summary, c["summary"])]
    assert hits, (want_summary, [st[i] for i in want_ids])
    for cid in want_ids:
        assert st[cid]["required"] and st[cid]["remedy"], st[cid]
    # the table says the same
    rc, out, err = check(conf)
    assert rc == 1 and re.search(r"^result: FAIL ", out, re.M), out + err
    for cid in want_ids:
        assert re.search(r"^FAIL\s+%s\s+" % re.escape(cid), out, re.M), (cid, out)
        assert st[cid]["summary"] in out and "fix: " + st[cid]["remedy"] in out
    # and the daemon refuses to start, in the same words
    ov = list(overrides) + ["listen.%s.public-port=%d" % kv for kv in PORTS.items()]
    cert = kwargs.get("cert")
    if cert:
        ov += ["tls.certificate=%s" % cert[0], "tls.key=%s" % cert[1]]
    if kwargs.get("priority"):
        ov.append("tls.priority=%s" % kwargs["priority"])
    if profile != "baseline":
        ov.append("server.profile=%s" % profile)
    if profile == BSI and kwargs.get("audit", True):
        ov += world.audit.overrides()
    sp = lab.subproxy(relays=[{"host": RELAY_NAME, "address": "127.0.0.1", "port": 2525,
                               "tlsa": labsink.tlsa_311(world.certs.relay)}],
                      dns=dns_section(world.dns), dkim=kwargs.get("dkim", world.dkim_config()),
                      overrides=ov, wait=False)
    assert sp.expect_exit(1, timeout=40) == 1
    text = sp.stderr_text()
    for cid in want_ids:
        words = "%s: %s Fix: %s" % (cid, st[cid]["summary"], st[cid]["remedy"])
        assert any("refusing to start" in ln and ln.endswith(words) for ln in sp.lines), \
            "expected a line ending in\n  %s\nin\n%s" % (words, text)
    # it stopped before anything was forked to serve
    assert not re.search(r"event=(parent-ready|listening|started)", text), text


def bsi_daemon(world, lab, sink):
    """A daemon relaying to sink on world's correct installation under the
    strict profile (its listeners' TLSA records are those of ports 465 and
    587)."""
    ov = ["listen.%s.public-port=%d" % kv for kv in PORTS.items()]
    ov += ["tls.certificate=%s" % world.good[0], "tls.key=%s" % world.good[1],
           "tls.priority=%s" % BSI_PRIORITY, "server.profile=%s" % BSI]
    ov += world.audit.overrides()
    return lab.subproxy(sink, dns=dns_section(world.dns), dkim=world.dkim_config(), overrides=ov)


def test_daemon_starts_on_a_correct_bsi_installation(world, lab):
    """The start-up audit passes on the strict profile and the daemon serves;
    the keys the audit read are in neither the parent nor front."""
    from test_dkim import key_secrets, memory_contains, roles
    from test_sandbox import tls_key_secrets
    sp = bsi_daemon(world, lab, lab.sink())
    assert sp.wait_log(r"event=audit profile=bsi-tr-03108 checks=\d+ result=pass", timeout=5), \
        sp.stderr_text(40)
    r = roles(sp)
    secrets = key_secrets(world.dkim) + tls_key_secrets(world.good[1])
    assert memory_contains(r["parent"], secrets) == [], "key bytes in the parent's memory"
    for front in fronts(sp.proc.pid):
        assert memory_contains(front, secrets) == [], "key bytes in front's memory"
    assert "audit" not in r, "the audit process is still there: %s" % r
    sp.stop()


def test_symlinked_key_in_a_proper_directory_passes(world, tmp_path):
    """files.modes follows symlinks: a DKIM key reached through a relative
    symlink and then an absolute one, into a directory of mode 0750 owned
    by root (or by us), passes -- the check judges what the path leads to,
    it does not refuse symlinks."""
    keys = tmp_path / "keys"
    keys.mkdir()
    os.chmod(keys, 0o750)
    key = _copy_mode(world.dkim.keys[("lab.test", "ed")]["file"], keys / "ed.key", 0o600)
    links = tmp_path / "links"
    links.mkdir()
    os.symlink(key, str(links / "second"))
    os.symlink("second", str(links / "ed.key"))
    rc, report = check_json(world.config(dkim=world.dkim_config(ed_file=str(links / "ed.key"))))
    st = statuses(report)
    assert rc == 0 and st["files.modes"]["status"] == "pass", st["files.modes"]
    assert st["dkim.lab.test.ed.file"]["status"] == "pass", st["dkim.lab.test.ed.file"]


def test_fifos_in_place_of_files_are_refused_not_waited_for(world, tmp_path):
    """A FIFO (nobody writing) as the certificate or a DKIM key: --check
    fails those checks at once, naming the file; it used to wait in
    open(2) forever."""
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo, 0o600)
    conf = world.config(cert=(fifo, world.good[1]), dkim=world.dkim_config(ed_file=fifo))
    rc, report = check_json(conf, timeout=30)
    st = statuses(report)
    assert rc == 1, report
    assert st["tls.cert.present"]["status"] == "fail" and \
        st["tls.cert.present"]["summary"] == "%s is not a regular file of at most 1048576 " \
        "bytes" % fifo, st["tls.cert.present"]
    assert st["dkim.lab.test.ed.file"]["status"] == "fail" and \
        "%s: not a regular file" % fifo in st["dkim.lab.test.ed.file"]["summary"], \
        st["dkim.lab.test.ed.file"]


def test_unknown_profile_fails(world):
    conf = world.config(profile="no-such-profile")
    rc, report = check_json(conf)
    st = statuses(report)
    assert rc == 1 and st["config.profile"]["status"] == "fail", st["config.profile"]
    assert "no audit profile \"no-such-profile\"" in st["config.profile"]["summary"]
    assert report["profile"] == "no-such-profile"
    # the other checks still ran (under baseline's rules)
    assert st["tls.key.match"]["status"] == "pass"


def test_unreadable_config_exits_2(world, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[server]\nhostname = mail.lab.test\nfrobnicate = 1\n")
    rc, out, err = check(str(bad))
    assert rc == 2 and out == "" and "bad.conf:3:" in err, (rc, out, err)
    rc, out, err = check(str(bad), "--json")
    assert rc == 2 and "bad.conf:3:" in err
    report = json.loads(out)
    validate_report(report)
    assert report["profile"] is None and report["result"] == "fail"
    assert [c["id"] for c in report["checks"]] == ["config.parse"]
    rc, out, err = check(str(tmp_path / "missing.conf"))
    assert rc == 2 and "missing.conf" in err
    r = subprocess.run([subproxy_binary(), "-c", str(bad), "--dns-records"],
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 2 and "bad.conf:3:" in r.stderr


def test_dns_down_fails_in_bounded_time(world, tmp_path):
    dead, _holder = closed_port()
    conf = tmp_path / "dead-unbound.conf"
    conf.write_text(re.sub(r"127\.0\.0\.1@\d+", "127.0.0.1@%d" % dead,
                           open(world.dns.unbound_conf).read()))
    dns = "[dns]\nunbound-config = %s\ntrust-anchor-file = %s\ntimeout = 2\n" % (
        conf, world.dns.trust_anchor_file)
    t0 = time.monotonic()
    rc, report = check_json(world.config(dns=dns), timeout=60)
    took = time.monotonic() - t0
    st = statuses(report)
    assert rc == 1 and st["dnssec.validation"]["status"] == "fail", st["dnssec.validation"]
    assert st["dane.own.submissions"]["status"] == "fail"
    assert "failed" in st["dane.own.submissions"]["summary"]
    # every lookup runs at once: about one DNS timeout, not one per lookup
    assert took < 2 * 3 + 4, "took %.1f s" % took


def test_bad_trust_anchor_fails_dnssec_validation(world, tmp_path):
    ta = tmp_path / "bad.ds"
    ta.write_text("this is not a DS record\n")
    dns = "[dns]\nunbound-config = %s\ntrust-anchor-file = %s\ntimeout = 2\n" % (
        world.dns.unbound_conf, ta)
    rc, report = check_json(world.config(dns=dns))
    st = statuses(report)
    assert rc == 1 and st["dnssec.validation"]["status"] == "fail", st["dnssec.validation"]
    assert str(ta) in st["dnssec.validation"]["summary"]


# ---- --dns-records ----

def test_dns_records_make_check_pass(world, tmp_path):
    kw = dict(profile=BSI, priority=BSI_PRIORITY)
    r = subprocess.run([subproxy_binary(), "-c", world.config(**kw), "--dns-records"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    records = [ln for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith(";")]
    good311 = labsink.tlsa_311(world.good[0])
    for port in PORTS.values():
        assert "_%d._tcp.mail.lab.test. IN TLSA %s" % (port, good311) in records, r.stdout
        assert "_%d._tcp.mail.lab.test. IN TLSA %s" % (port, world.ca_211) in records
    assert "_submission._tcp.lab.test. IN SRV 0 1 587 mail.lab.test." in records
    assert "_submissions._tcp.lab.test. IN SRV 0 1 465 mail.lab.test." in records
    txt = [ln for ln in records if " IN TXT " in ln]
    assert len(txt) == 2, txt
    for ln in txt:
        strings = re.findall(r'"((?:[^"\\]|\\.)*)"', ln)
        assert strings and all(len(s) <= 255 for s in strings), ln
    rsa = next(ln for ln in txt if ln.startswith("rsa._domainkey.lab.test. "))
    assert len(re.findall(r'"', rsa)) >= 4, "a 2048-bit key needs two strings: %s" % rsa
    # an empty lab: the records are all that make the checks pass
    fresh = dnslab.DnsLab(tmp_path / "fresh")
    fresh.start()
    try:
        conf = world.config(dns=dns_section(fresh), **kw)
        rc, report = check_json(conf)
        assert rc == 1
        assert {"dane.own.submissions", "dkim.lab.test.ed.dns",
                "srv.submission.lab.test"} <= set(failed_ids(report)), failed_ids(report)
        for ln in records:
            fresh.add("lab.test", ln)
        fresh.reload()
        rc, report = check_json(conf)
        assert rc == 0, json.dumps(report, indent=1)
        st = statuses(report)
        for cid in ("dane.own.submissions", "dane.own.submission", "dkim.lab.test.ed.dns",
                    "dkim.lab.test.rsa.dns", "srv.submission.lab.test",
                    "srv.submissions.lab.test"):
            assert st[cid]["status"] == "pass", st[cid]
    finally:
        fresh.stop()


def test_dns_records_without_listener_of_a_kind(world, tmp_path):
    """No STARTTLS listener: the record says the service is not offered."""
    conf = world.config()
    text = open(conf).read()
    text = re.sub(r'\[listen "submission"\]\n(?:.*\n){3}', "", text)
    path = tmp_path / "one.conf"
    path.write_text(text)
    r = subprocess.run([subproxy_binary(), "-c", str(path), "--dns-records"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "_submission._tcp.lab.test. IN SRV 0 0 0 ." in r.stdout
    assert "_587._tcp" not in r.stdout
    rc, report = check_json(str(path))
    st = statuses(report)
    # the lab announces 587 on mail.lab.test, which this host does not serve
    assert st["srv.submission.lab.test"]["status"] == "warn", st["srv.submission.lab.test"]
    assert "dane.own.submission" not in st


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the chroot is checked only as root")
def test_unsafe_chroot_fails_check_and_start(world, lab, tmp_path):
    """The audit makes the very checks front makes before chrooting, so
    --check predicts the refusal: a chroot that is not empty, or below a
    world-writable directory, fails sandbox.chroot and stops the start."""
    import tempfile
    full = tempfile.mkdtemp(prefix="subproxy-test-full.", dir="/run")
    os.chmod(full, 0o755)
    open(os.path.join(full, "leftover"), "w").close()
    try:
        for chroot, why in ((full, "is not empty"), (str(tmp_path), "writable by group or others")):
            conf = world.config()
            text = open(conf).read().replace("chroot = %s" % world.sandbox["chroot"],
                                              "chroot = %s" % chroot)
            with open(conf, "w") as f:
                f.write(text)
            rc, report = check_json(conf)
            assert rc == 1 and failed_ids(report) == ["sandbox.chroot"], json.dumps(report)
            assert why in statuses(report)["sandbox.chroot"]["summary"], report
            sp = lab.subproxy(lab.sink(), overrides=["server.chroot=%s" % chroot], wait=False)
            assert sp.expect_exit(1, timeout=40) == 1
            assert any("refusing to start" in ln and "sandbox.chroot" in ln and why in ln
                       for ln in sp.lines), sp.stderr_text()
    finally:
        os.unlink(os.path.join(full, "leftover"))
        os.rmdir(full)
