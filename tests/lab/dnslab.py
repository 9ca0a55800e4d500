#!/usr/bin/python3
"""
dnslab.py -- a DNSSEC lab for subproxy's tests, built from nothing per run.

The lab is a tree of zones under "lab.test." (the signed parent, used as the
trust anchor), generated in a directory of the caller's choosing (a pytest
tmp_path), signed with fresh keys and served by one nsd on 127.0.0.1 at a free
port.  Nothing outside that directory is written and nothing leaves loopback.

Zones (each child is delegated from lab.test with NS ns.lab.test.):
  lab.test.           signed (NSEC); the trust anchor.  Default records:
                        @ MX 10 mx.lab.test.; ns, mx, relay, mail A 127.0.0.1
                        (mx, relay, mail also AAAA ::1); www A 127.0.0.2
  secure.lab.test.    signed (NSEC), DS in lab.test            -> secure
  nsec3.lab.test.     signed with NSEC3 (0 iterations, no salt) -> secure
  insecure.lab.test.  unsigned, no DS in lab.test             -> insecure
  bogus.lab.test.     signed, but the DS in lab.test has a wrong digest
                      (the key tag matches)                    -> bogus
  expired.lab.test.   signed, RRSIGs expired 7 days ago (beyond any clock
                      skew allowance), correct DS              -> bogus
  Every child has: @ MX 10 relay, @ TXT "dnslab KIND", www and relay
  A 127.0.0.1, relay AAAA ::1.  More children: add_zone(name, kind).

Keys are made once per lab (ldns-keygen, ECDSAP256SHA256 by default or
ED25519; a KSK and a ZSK per signed zone, or one CSK with csk=True) and kept
across reload().  Signatures (ldns-signzone) are valid from one hour ago to
365 days ahead, except in "expired" zones.

API
    lab = DnsLab(directory, *, algorithm="ECDSAP256SHA256", csk=False,
                 port=None, children=DEFAULT_CHILDREN, defaults=True,
                 isolate=True, ttl=60)        # nothing runs yet
      port: a fixed nsd port (taken = LabError) instead of a free one;
      children: (label, kind) pairs of child zones; defaults=False: no
      default records; ttl: the default TTL (SOA negative TTL min(ttl, 60)).
    lab.add("lab.test", "_25._tcp.relay 300 TLSA 3 1 1 ABCD...")
    lab.add("secure", "s1._domainkey TXT v=DKIM1; k=ed25519; p=...")
    lab.start()                               # build, sign, serve
    lab.port, lab.trust_anchor_file, lab.unbound_conf, lab.nsd_conf
    r = lab.query("relay.secure.lab.test", "A")
    r.status ("secure"|"insecure"|"bogus"|"servfail"), r.rcode, r.rdata
    lab.remove("lab.test", "www", "A"); lab.reload()   # re-sign, restart
    lab.stop()
or  with DnsLab(directory) as lab: ...        # start() / stop()

  add(zone, rr)  zone: "lab.test", "lab.test.", "secure", "secure.lab.test".
      rr: one zone-file line "OWNER [TTL] [IN] TYPE RDATA"; OWNER is "@",
      relative to the zone or absolute (ending in ".", inside the zone).
      Names in RDATA without a final dot are relative to the zone, as in a
      zone file.  TXT/SPF: RDATA not starting with '"' is taken as one text
      and split into 255-octet strings; quoted strings longer than 255
      octets are split as well (DKIM keys).  Records added after start()
      are served after reload().
  remove(zone, owner, rtype=None) -> number of records removed.
  add_zone(name, kind)  another child of lab.test ("x" or "x.lab.test");
      kind is one of KINDS.  Before start() only.
  start() -> self.  Picks the port (a bound socket, retried on collision),
      generates keys (first time), signs, writes nsd.conf and unbound.conf,
      starts nsd (its own process group) and waits until every zone answers
      authoritatively.  About 0.1-0.2 s.
  stop()  ends nsd and the validator (whole process groups) and waits.
      Idempotent; also run by a weakref finalizer and at interpreter exit.
  reload()  re-signs (new SOA serial) and restarts nsd on the same port;
      restarts the validator too (its cache would hide the change).  Note
      that any other resolver (subproxy's libunbound) caches for the TTL.
  query(name, rtype="A", cd=False, via="unbound", conf=None) -> Answer.
      via="unbound": a private validating unbound daemon (unbound(8), own
      process, started on first use, config = unbound_conf plus its
      listener) asked over TCP with drill(1); secure = AD bit; SERVFAIL
      that answers with CD set = bogus (the reason from the daemon's log,
      val-log-level 2, is in Answer.why).
      via="libunbound": libunbound loaded with ctypes and configured with
      ub_ctx_config(unbound_conf) only -- exactly what subproxy does, and
      what `unbound-host -C unbound_conf -v -t TYPE NAME` would do
      (package unbound-host is not installed on the lab machines; this
      replaces it).  Answer.status from ub_result.secure/.bogus.
  validator() -> port of the private validating unbound (starts it).
  chase(name, rtype="A") -> (ok, text): `drill -S -k dnskey_file` straight
      against nsd -- ldns's validator, independent of unbound's code.

  add_txt(zone, owner, text, ttl=None); records(zone) -> zone-file lines;
  pids() -> {"nsd"|"validator": process group id}; info() -> dict (what
  the CLI prints); start_seconds: how long the last start()/reload() took.

  Properties: port, directory, trust_anchor_file (the DS of lab.test's KSK,
  zone-file format), dnskey_file (its DNSKEY, for drill -k), unbound_conf,
  nsd_conf, validator_conf, keydir, zones (names), running.  TLSA rdata is
  written and shown with lower-case hex.  Helpers: txt_rdata(text),
  tlsa_rdata(cert, usage=3, selector=1, mtype=1) (stdlib DER walk),
  tlsa_owner(host, port=25), group_members(pgid), free_port().

unbound.conf for libunbound (subproxy's [dns] unbound-config):
  server: do-not-query-localhost: no; local-zone: "test." nodefault (the
  built-in "test." local zone would make every lab name NXDOMAIN);
  trust-anchor-file: <DS of lab.test>; val-log-level: 2;
  harden-dnssec-stripped: yes; do-ip6: no.  No domain-insecure.
  stub-zone "lab.test." -> 127.0.0.1@PORT, and (isolate=True, the default)
  stub-zone "." -> 127.0.0.1@PORT so that no query leaves loopback (names
  outside lab.test get REFUSED from nsd: SERVFAIL).  The parent "test." is
  delegated nowhere: the stub plus the trust anchor at lab.test suffice.

Command line (prints the port on the first line, then "key value" lines;
serves until SIGTERM/SIGINT):
    python3 tests/lab/dnslab.py --dir D [--port P] [--validator]
        [--add ZONE RR]... [--algorithm ED25519] [--json]

Tools: nsd, ldns-keygen, ldns-signzone, ldns-key2ds, drill (ldnsutils),
unbound (only for query(via="unbound") / validator()), setpriv
(util-linux, optional: children die with the process that started them),
libunbound.so.8 (only for via="libunbound").
"""

import argparse
import atexit
import ctypes
import ctypes.util
import hashlib
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import weakref

__all__ = ["DnsLab", "Answer", "LabError", "KINDS", "LAB_ZONE", "txt_rdata",
           "tlsa_rdata", "tlsa_owner", "group_members", "free_port"]

LAB_ZONE = "lab.test."
KINDS = ("secure", "nsec3", "insecure", "bogus", "expired")
DEFAULT_CHILDREN = (("secure", "secure"), ("nsec3", "nsec3"), ("insecure", "insecure"),
                    ("bogus", "bogus"), ("expired", "expired"))
ALGORITHMS = {"ECDSAP256SHA256": 13, "ED25519": 15}
NS_NAME = "ns." + LAB_ZONE
DEFAULT_TTL = 60
TOOL_TIMEOUT = 30               # seconds for any one ldns tool run
START_TIMEOUT = 10              # seconds until nsd / unbound answer
STOP_TIMEOUT = 5                # seconds after SIGTERM before SIGKILL
PORT_TRIES = 8

_LIVE = weakref.WeakSet()


class LabError(Exception):
    """The lab could not be built or started (the message says why)."""


# ---- small helpers ----

def free_port():
    """A port on 127.0.0.1 free for both TCP and UDP a moment ago."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise LabError("no free port on 127.0.0.1")


def _fqdn(name):
    name = name.strip()
    return name if name.endswith(".") else name + "."


def _quote(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def _escape_octets(chunk):
    out = []
    for b in chunk:
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append("\\%03d" % b)
    return '"' + "".join(out) + '"'


def txt_rdata(text):
    """TXT rdata for a text of any length: quoted character-strings of at
    most 255 octets (UTF-8), escaped for a zone file."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if not data:
        return '""'
    return " ".join(_escape_octets(data[i:i + 255]) for i in range(0, len(data), 255))


def _parse_char_strings(rdata):
    """The character-strings of a TXT rdata made of quoted strings only, as
    bytes; None if it holds anything else."""
    out, i, n = [], 0, len(rdata)
    while i < n:
        if rdata[i].isspace():
            i += 1
            continue
        if rdata[i] != '"':
            return None
        i += 1
        buf = bytearray()
        while True:
            if i >= n:
                return None
            c = rdata[i]
            if c == '"':
                i += 1
                break
            if c == "\\":
                if i + 3 < n and rdata[i + 1:i + 4].isdigit():
                    buf.append(int(rdata[i + 1:i + 4]) & 0xFF)
                    i += 4
                    continue
                if i + 1 >= n:
                    return None
                buf += rdata[i + 1].encode("utf-8")
                i += 2
                continue
            buf += c.encode("utf-8")
            i += 1
        out.append(bytes(buf))
    return out


def _fix_txt(rdata):
    rdata = rdata.strip()
    if not rdata.startswith('"'):
        return txt_rdata(rdata)
    strings = _parse_char_strings(rdata)
    if strings is None or all(len(s) <= 255 for s in strings):
        return rdata
    return " ".join(txt_rdata(s) for s in strings)


def _der_read(data, pos):
    """(tag, start of content, end of content) of the DER item at pos."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _spki_der(cert_der):
    """The SubjectPublicKeyInfo of a DER certificate (RFC 5280 walk)."""
    tag, s, _ = _der_read(cert_der, 0)              # Certificate
    if tag != 0x30:
        raise ValueError("not a certificate")
    tag, s, e = _der_read(cert_der, s)              # tbsCertificate
    if tag != 0x30:
        raise ValueError("not a certificate")
    pos = s
    tag, _, end = _der_read(cert_der, pos)
    if tag == 0xA0:                                 # [0] version
        pos = end
    for _ in range(5):                              # serial, sigalg, issuer, validity, subject
        _, _, pos = _der_read(cert_der, pos)
    tag, _, end = _der_read(cert_der, pos)
    if tag != 0x30:
        raise ValueError("no SubjectPublicKeyInfo")
    return cert_der[pos:end]


def _cert_der(cert):
    """DER of the first certificate in cert: a path, PEM text or DER bytes."""
    if isinstance(cert, (bytes, bytearray)) and not cert.lstrip().startswith(b"-----"):
        return bytes(cert)
    if isinstance(cert, (str, os.PathLike)) and os.path.exists(cert):
        with open(cert, "rb") as f:
            raw = f.read()
    else:
        raw = cert.encode() if isinstance(cert, str) else bytes(cert)
    if not raw.lstrip().startswith(b"-----"):
        return raw
    m = re.search(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", raw, re.S)
    if not m:
        raise ValueError("no PEM certificate found")
    return ssl.PEM_cert_to_DER_cert(m.group(0).decode())


def tlsa_rdata(cert, usage=3, selector=1, mtype=1):
    """TLSA rdata "U S M HEX" for a certificate (path, PEM or DER; the first
    certificate of a chain).  selector 0 = full cert, 1 = SPKI; mtype 0 =
    full, 1 = SHA-256, 2 = SHA-512."""
    der = _cert_der(cert)
    data = der if selector == 0 else _spki_der(der)
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    elif mtype != 0:
        raise ValueError("matching type %r" % mtype)
    return "%d %d %d %s" % (usage, selector, mtype, data.hex())


def tlsa_owner(host, port=25, proto="tcp"):
    """"_PORT._PROTO.HOST." for a TLSA record."""
    return "_%d._%s.%s" % (port, proto, _fqdn(host))


def group_members(pgid, include_zombies=False):
    """PIDs of live processes in process group pgid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                st = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        if len(rest) < 3:
            continue
        state, pgrp = rest[0], int(rest[2])
        if pgrp == pgid and (include_zombies or state not in ("Z", "X")):
            out.append(int(d))
    return out


def _run(argv, cwd=None, what=None):
    try:
        r = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=TOOL_TIMEOUT, check=False)
    except FileNotFoundError:
        raise LabError("%s not found (Debian package %s)" % (argv[0], _package(argv[0]))) from None
    if r.returncode != 0:
        raise LabError("%s failed (status %d): %s%s" % (
            what or " ".join(argv), r.returncode, r.stderr.decode("utf-8", "replace").strip(),
            r.stdout.decode("utf-8", "replace").strip()))
    return r.stdout.decode("utf-8", "replace")


def _package(tool):
    return {"nsd": "nsd", "unbound": "unbound", "drill": "ldnsutils",
            "unbound-host": "unbound-host"}.get(os.path.basename(tool), "ldnsutils")


def _tool(name):
    for d in (os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        p = os.path.join(d or ".", name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise LabError("%s not found (Debian package %s)" % (name, _package(name)))


def _stamp(t):
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


def _tail(path, n=30):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# ---- processes ----

class _Proc:
    """A daemon in its own process group (session)."""

    def __init__(self, name, argv, log_path, cwd):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        pre = []
        setpriv = shutil.which("setpriv") or ("/usr/bin/setpriv" if os.path.exists(
            "/usr/bin/setpriv") else None)
        if setpriv and threading.current_thread() is threading.main_thread():
            # the daemon gets SIGTERM if the thread that started it dies (it
            # is the main thread here, so: if this interpreter dies)
            pre = [setpriv, "--pdeathsig", "TERM", "--"]
        self._out = open(log_path + ".stderr", "ab")
        self.popen = subprocess.Popen(pre + argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                      stdout=self._out, stderr=subprocess.STDOUT,
                                      start_new_session=True, close_fds=True)
        self.pgid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def output(self):
        return _tail(self.log_path) + _tail(self.log_path + ".stderr")

    def stop(self):
        _stop_group(self.popen, self.pgid)
        try:
            self._out.close()
        except OSError:
            pass


def _stop_group(popen, pgid):
    """SIGTERM the whole group, wait for its leader and for every member;
    SIGKILL what is left after STOP_TIMEOUT."""
    def sig(s):
        try:
            os.killpg(pgid, s)
        except (ProcessLookupError, PermissionError):
            pass
    sig(signal.SIGTERM)
    try:
        popen.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        sig(signal.SIGKILL)
        popen.wait(STOP_TIMEOUT)
    end = time.monotonic() + STOP_TIMEOUT
    killed = False
    while group_members(pgid):
        if time.monotonic() > end:
            if killed:
                break
            sig(signal.SIGKILL)
            killed = True
            end = time.monotonic() + STOP_TIMEOUT
        time.sleep(0.005)


def _stop_all(procs):
    """Finalizer: stop every process in the dict (no reference to the lab)."""
    for key in list(procs):
        p = procs.pop(key, None)
        if p is not None:
            try:
                p.stop()
            except Exception:       # noqa: BLE001 -- best effort at exit
                pass


@atexit.register
def _stop_live_labs():
    for lab in list(_LIVE):
        try:
            lab.stop()
        except Exception:           # noqa: BLE001
            pass


# ---- a minimal DNS client (readiness probes) ----

def _encode_name(name):
    out = bytearray()
    for label in _fqdn(name).rstrip(".").split("."):
        if label:
            b = label.encode("ascii")
            out.append(len(b))
            out += b
    out.append(0)
    return bytes(out)


def _probe(port, name, qtype=6, rd=False, timeout=0.3):
    """(rcode, aa) for a UDP query to 127.0.0.1:port, or None on timeout."""
    qid = random.randrange(65536)
    pkt = struct.pack("!HHHHHH", qid, 0x0100 if rd else 0, 1, 0, 0, 0)
    pkt += _encode_name(name) + struct.pack("!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(pkt, ("127.0.0.1", port))
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                data = s.recv(4096)
                if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid and data[2] & 0x80:
                    flags = struct.unpack("!H", data[2:4])[0]
                    return flags & 0xF, bool(flags & 0x0400)
        except (socket.timeout, ConnectionRefusedError, OSError):
            return None
    return None


# ---- answers ----

class Answer:
    """A validated answer.
      status   "secure" | "insecure" | "bogus" | "servfail"
      rcode    "NOERROR", "NXDOMAIN", "SERVFAIL", ...
      secure, bogus, nxdomain   booleans
      ad       the AD bit (via="unbound"; None for libunbound)
      rdata    presentation rdata of the records of the asked type (for
               libunbound: A, AAAA, TLSA, MX, TXT, CNAME, NS, SRV decoded,
               others RFC 3597 "\\# LEN HEX")
      answer   (owner, ttl, type, rdata) of every answer record (unbound:
               incl. RRSIG and CNAME; libunbound: the asked type only)
      why      the validator's reason when bogus
      text     the raw output (drill) or ""."""

    def __init__(self, name, rtype, status, rcode, rdata=(), answer=(), ad=None, why="",
                 text="", via=""):
        self.name = name
        self.rtype = rtype
        self.status = status
        self.rcode = rcode
        self.rdata = list(rdata)
        self.answer = list(answer)
        self.ad = ad
        self.why = why
        self.text = text
        self.via = via

    secure = property(lambda self: self.status == "secure")
    bogus = property(lambda self: self.status == "bogus")
    nxdomain = property(lambda self: self.rcode == "NXDOMAIN")

    def __repr__(self):
        return "Answer(%s %s: %s %s %r%s)" % (self.name, self.rtype, self.status, self.rcode,
                                              self.rdata, (" why=%r" % self.why) if self.why else "")


_DRILL_HDR = re.compile(r"rcode: (\S+?),")
_DRILL_FLAGS = re.compile(r";; flags: ([a-z ]*);")


def _parse_drill(text):
    m = _DRILL_HDR.search(text)
    f = _DRILL_FLAGS.search(text)
    if not m or not f:
        return None
    rcode, flags = m.group(1), f.group(1).split()
    answer, section = [], None
    for line in text.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            section = "answer"
            continue
        if line.startswith(";;"):
            section = None if line.startswith(";; ") and "SECTION" in line else section
            continue
        if section == "answer" and line.strip():
            parts = line.split(None, 4)
            if len(parts) == 5:
                answer.append((parts[0], int(parts[1]), parts[3].upper(), parts[4].strip()))
    return rcode, flags, answer


# libunbound through ctypes: what subproxy's dns.c and unbound-host do

class _UbResult(ctypes.Structure):
    _fields_ = [("qname", ctypes.c_char_p), ("qtype", ctypes.c_int), ("qclass", ctypes.c_int),
                ("data", ctypes.POINTER(ctypes.POINTER(ctypes.c_char))),
                ("len", ctypes.POINTER(ctypes.c_int)), ("canonname", ctypes.c_char_p),
                ("rcode", ctypes.c_int), ("answer_packet", ctypes.c_void_p),
                ("answer_len", ctypes.c_int), ("havedata", ctypes.c_int),
                ("nxdomain", ctypes.c_int), ("secure", ctypes.c_int), ("bogus", ctypes.c_int),
                ("why_bogus", ctypes.c_char_p), ("was_ratelimited", ctypes.c_int),
                ("ttl", ctypes.c_int)]


_LIBUNBOUND = None
_RRTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
            "SRV": 33, "DS": 43, "RRSIG": 46, "NSEC": 47, "DNSKEY": 48, "NSEC3": 50,
            "TLSA": 52, "SPF": 99, "CAA": 257}
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def _libunbound():
    global _LIBUNBOUND
    if _LIBUNBOUND is None:
        path = ctypes.util.find_library("unbound") or "libunbound.so.8"
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise LabError("libunbound not loadable (%s): Debian package libunbound8" % e) from None
        lib.ub_ctx_create.restype = ctypes.c_void_p
        lib.ub_ctx_config.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.ub_resolve.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                                   ctypes.POINTER(ctypes.POINTER(_UbResult))]
        lib.ub_resolve_free.argtypes = [ctypes.POINTER(_UbResult)]
        lib.ub_ctx_delete.argtypes = [ctypes.c_void_p]
        lib.ub_strerror.restype = ctypes.c_char_p
        _LIBUNBOUND = lib
    return _LIBUNBOUND


def _wire_name(data, pos):
    labels = []
    while True:
        n = data[pos]
        pos += 1
        if n == 0:
            return ".".join(labels) + ".", pos
        if n & 0xC0:
            raise ValueError("compressed name in rdata")
        labels.append(data[pos:pos + n].decode("ascii", "replace"))
        pos += n


def _present(rtype, data):
    """Presentation format of wire rdata for common types."""
    try:
        if rtype == "A":
            return str(ipaddress.IPv4Address(data))
        if rtype == "AAAA":
            return str(ipaddress.IPv6Address(data))
        if rtype in ("CNAME", "NS", "PTR"):
            return _wire_name(data, 0)[0]
        if rtype == "MX":
            return "%d %s" % (struct.unpack("!H", data[:2])[0], _wire_name(data, 2)[0])
        if rtype == "SRV":
            p, w, port = struct.unpack("!HHH", data[:6])
            return "%d %d %d %s" % (p, w, port, _wire_name(data, 6)[0])
        if rtype == "TLSA":
            return "%d %d %d %s" % (data[0], data[1], data[2], data[3:].hex())
        if rtype in ("TXT", "SPF"):
            out, pos = [], 0
            while pos < len(data):
                n = data[pos]
                out.append(_escape_octets(data[pos + 1:pos + 1 + n]))
                pos += 1 + n
            return " ".join(out)
    except (ValueError, IndexError, struct.error):
        pass
    return "\\# %d %s" % (len(data), data.hex().upper())


# ---- zones ----

class _Record:
    __slots__ = ("owner", "ttl", "rtype", "rdata")

    def __init__(self, owner, ttl, rtype, rdata):
        self.owner, self.ttl, self.rtype, self.rdata = owner, ttl, rtype, rdata

    def line(self):
        return "%s\t%d\tIN\t%s\t%s" % (self.owner, self.ttl, self.rtype, self.rdata)


_RR_RE = re.compile(
    r"^\s*(?P<owner>\S+)\s+"
    r"(?:(?P<ttl1>\d+)\s+)?(?:(?P<cls>IN|CLASS1)\s+)?(?:(?P<ttl2>\d+)\s+)?"
    r"(?P<type>[A-Za-z][A-Za-z0-9-]*)\s+(?P<rdata>\S.*?)\s*$", re.I)


class _Zone:
    def __init__(self, name, kind):
        self.name = name            # fqdn, lower case
        self.kind = kind            # "parent" or one of KINDS
        self.records = []
        self.keys = []              # [(basename, is_ksk)]
        self.ds = []                # DS lines for the parent

    @property
    def signed(self):
        return self.kind != "insecure"

    @property
    def zonefile(self):
        return self.name + "zone"

    @property
    def served_file(self):
        return self.zonefile + (".signed" if self.signed else "")


# ---- the lab ----

class DnsLab:
    """A DNSSEC lab served by nsd (see the module docstring)."""

    def __init__(self, directory, *, algorithm="ECDSAP256SHA256", csk=False, port=None,
                 children=DEFAULT_CHILDREN, defaults=True, isolate=True, ttl=DEFAULT_TTL):
        if algorithm.upper() not in ALGORITHMS:
            raise ValueError("algorithm must be one of %s" % ", ".join(ALGORITHMS))
        self.directory = os.path.abspath(os.fspath(directory))
        os.makedirs(self.directory, exist_ok=True)
        self.algorithm = algorithm.upper()
        self.csk = csk
        self.isolate = isolate
        self.ttl = ttl
        self._fixed_port = port
        self._port = None
        self._vport = None
        self._serial = 0
        self._procs = {}
        self._lock = threading.RLock()
        self._finalizer = weakref.finalize(self, _stop_all, self._procs)
        self._zones = {}
        parent = _Zone(LAB_ZONE, "parent")
        self._zones[LAB_ZONE] = parent
        if defaults:
            for rr in ("@ NS " + NS_NAME, "@ MX 10 mx", "ns A 127.0.0.1",
                       "mx A 127.0.0.1", "mx AAAA ::1", "relay A 127.0.0.1", "relay AAAA ::1",
                       "mail A 127.0.0.1", "mail AAAA ::1", "www A 127.0.0.2"):
                self.add(LAB_ZONE, rr)
        else:
            self.add(LAB_ZONE, "@ NS " + NS_NAME)
            self.add(LAB_ZONE, "ns A 127.0.0.1")
        for label, kind in children:
            self.add_zone(label, kind, defaults=defaults)
        self.trust_anchor_file = os.path.join(self.directory, "lab.test.ds")
        self.dnskey_file = os.path.join(self.directory, "lab.test.dnskey")
        self.unbound_conf = os.path.join(self.directory, "unbound.conf")
        self.nsd_conf = os.path.join(self.directory, "nsd.conf")
        self.keydir = os.path.join(self.directory, "keys")
        self.start_seconds = None

    # -- zone content --

    def _zone(self, zone):
        z = _fqdn(zone).lower()
        if z in self._zones:
            return self._zones[z]
        z2 = z + LAB_ZONE
        if z2 in self._zones:
            return self._zones[z2]
        raise KeyError("no zone %r in the lab (zones: %s)" % (zone, ", ".join(self._zones)))

    @property
    def zones(self):
        return list(self._zones)

    def zone_kind(self, zone):
        return self._zone(zone).kind

    def _owner(self, z, owner):
        if owner == "@":
            return z.name
        o = owner.lower()
        if not o.endswith("."):
            return o + "." + z.name
        if o != z.name and not o.endswith("." + z.name):
            raise ValueError("owner %s is outside zone %s" % (owner, z.name))
        return o

    def add(self, zone, rr):
        """Add one record (a zone-file line) to a zone; see the module doc."""
        if "\n" in rr or "\r" in rr or "\0" in rr:
            raise ValueError("one record per call, no line breaks: %r" % rr)
        m = _RR_RE.match(rr)
        if not m:
            raise ValueError("not a record: %r (expected OWNER [TTL] [IN] TYPE RDATA)" % rr)
        z = self._zone(zone)
        rtype = m.group("type").upper()
        if rtype in ("IN", "CLASS1") or rtype.isdigit():
            raise ValueError("not a record: %r" % rr)
        ttl = m.group("ttl1") or m.group("ttl2")
        rdata = m.group("rdata")
        if rtype in ("TXT", "SPF"):
            rdata = _fix_txt(rdata)
        rec = _Record(self._owner(z, m.group("owner")), int(ttl) if ttl else self.ttl, rtype,
                      rdata)
        with self._lock:
            z.records.append(rec)
        return rec.line()

    def add_txt(self, zone, owner, text, ttl=None):
        """Add a TXT record holding text (split into 255-octet strings)."""
        return self.add(zone, "%s %d TXT %s" % (owner, ttl or self.ttl, txt_rdata(text)))

    def remove(self, zone, owner, rtype=None):
        """Remove the records of owner (and rtype if given); the count."""
        z = self._zone(zone)
        o = self._owner(z, owner)
        with self._lock:
            keep = [r for r in z.records
                    if not (r.owner == o and (rtype is None or r.rtype == rtype.upper()))]
            n = len(z.records) - len(keep)
            z.records = keep
        return n

    def records(self, zone):
        """The zone-file lines of a zone (unsigned, without SOA/DS/keys)."""
        return [r.line() for r in self._zone(zone).records]

    def add_zone(self, name, kind, defaults=True):
        """Another child zone of lab.test of the given kind (before start())."""
        if kind not in KINDS:
            raise ValueError("kind must be one of %s" % ", ".join(KINDS))
        if self._procs.get("nsd") is not None:
            raise LabError("add_zone() after start(): stop() first")
        n = _fqdn(name).lower()
        if not n.endswith("." + LAB_ZONE):
            n = n + LAB_ZONE
        if n.count(".") != LAB_ZONE.count(".") + 1:
            raise ValueError("a child zone is one label below %s: %r" % (LAB_ZONE, name))
        if n in self._zones:
            raise ValueError("zone %s exists" % n)
        z = _Zone(n, kind)
        self._zones[n] = z
        self.add(n, "@ NS " + NS_NAME)
        if defaults:
            for rr in ("@ MX 10 relay", "@ TXT dnslab " + kind, "www A 127.0.0.1",
                       "relay A 127.0.0.1", "relay AAAA ::1"):
                self.add(n, rr)
        return n

    # -- building --

    @property
    def port(self):
        """nsd's port on 127.0.0.1 (None before the first start())."""
        return self._port

    @property
    def running(self):
        p = self._procs.get("nsd")
        return p is not None and p.alive()

    def _keygen(self, zone, ksk):
        # one directory per key: two keys of a zone with the same key tag
        # would otherwise overwrite each other's files
        d = os.path.join(self.keydir, "%s%s" % (zone, "ksk" if ksk else "zsk"))
        os.makedirs(d, exist_ok=True)
        argv = [_tool("ldns-keygen"), "-a", self.algorithm]
        if ksk:
            argv.append("-k")
        argv.append(zone.rstrip("."))
        base = _run(argv, cwd=d).strip().splitlines()[-1].strip()
        if not os.path.exists(os.path.join(d, base + ".private")):
            raise LabError("ldns-keygen did not write %s.private" % base)
        return os.path.join(d, base)

    def _make_keys(self):
        os.makedirs(self.keydir, exist_ok=True)
        for z in self._zones.values():
            if z.signed and not z.keys:
                z.keys = [(self._keygen(z.name, True), True)]
                if not self.csk:
                    z.keys.append((self._keygen(z.name, False), False))

    def _ds(self, z):
        ksk = [b for b, is_ksk in z.keys if is_ksk][0]
        out = _run([_tool("ldns-key2ds"), "-n", "-2", ksk + ".key"])
        lines = [ln.strip() for ln in out.splitlines() if "\tDS\t" in ln or " DS " in ln]
        if not lines:
            raise LabError("ldns-key2ds printed no DS for %s" % z.name)
        return lines

    def _write_zone(self, z, extra=()):
        lines = ["$ORIGIN %s" % z.name, "$TTL %d" % self.ttl,
                 "@\t%d\tIN\tSOA\t%s hostmaster.%s %d 3600 600 86400 %d" % (
                     self.ttl, NS_NAME, z.name, self._serial, min(self.ttl, 60))]
        lines += [r.line() for r in z.records]
        lines += list(extra)
        path = os.path.join(self.directory, z.zonefile)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _sign(self, z, path):
        now = int(time.time())
        if z.kind == "expired":
            inception, expiration = now - 37 * 86400, now - 7 * 86400
        else:
            inception, expiration = now - 3600, now + 365 * 86400
        argv = [_tool("ldns-signzone"), "-i", _stamp(inception), "-e", _stamp(expiration),
                "-o", z.name, "-f", path + ".signed"]
        if z.kind == "nsec3":
            argv += ["-n", "-t", "0"]
        argv.append(path)
        argv += [b for b, _ in z.keys]
        _run(argv, cwd=self.directory, what="ldns-signzone %s" % z.name)

    def _build(self):
        """Write and sign every zone, the trust anchor files and the configs."""
        self._make_keys()
        self._serial = max(self._serial + 1, int(time.time()))
        parent = self._zones[LAB_ZONE]
        delegation = []
        for z in self._zones.values():
            if z is parent:
                continue
            delegation.append("%s\t%d\tIN\tNS\t%s" % (z.name, self.ttl, NS_NAME))
            if z.signed:
                ds = self._ds(z)
                if z.kind == "bogus":
                    ds = [_corrupt_ds(line) for line in ds]
                delegation += ds
            path = self._write_zone(z)
            if z.signed:
                self._sign(z, path)
        path = self._write_zone(parent, delegation)
        self._sign(parent, path)
        ksk = [b for b, is_ksk in parent.keys if is_ksk][0]
        with open(self.trust_anchor_file, "w", encoding="utf-8") as f:
            f.write("\n".join(self._ds(parent)) + "\n")
        with open(ksk + ".key", encoding="utf-8") as src:
            key = src.read().split(";")[0].strip()
        with open(self.dnskey_file, "w", encoding="utf-8") as f:
            f.write(key + "\n")
        self._write_nsd_conf()
        self._write_unbound_conf()

    def _write_nsd_conf(self):
        d = self.directory
        text = [
            "# written by tests/lab/dnslab.py",
            "server:",
            "\tip-address: 127.0.0.1@%d" % self._port,
            "\tport: %d" % self._port,
            "\tdo-ip4: yes",
            "\tdo-ip6: no",
            "\tserver-count: 1",
            "\treuseport: no",
            '\tusername: ""',
            '\tchroot: ""',
            '\tzonesdir: "%s"' % d,
            '\tdatabase: ""',
            '\tzonelistfile: "%s"' % os.path.join(d, "nsd.zonelist"),
            '\txfrdfile: "%s"' % os.path.join(d, "nsd.xfrd"),
            '\txfrdir: "%s"' % d,
            '\tpidfile: "%s"' % os.path.join(d, "nsd.pid"),
            '\tlogfile: "%s"' % os.path.join(d, "nsd.log"),
            "\tverbosity: 0",
            "\thide-version: yes",
            "\tzonefiles-check: yes",
            "\tzonefiles-write: 0",
            "remote-control:",
            "\tcontrol-enable: no",
        ]
        for z in self._zones.values():
            text += ["zone:", '\tname: "%s"' % z.name, '\tzonefile: "%s"' % z.served_file]
        with open(self.nsd_conf, "w", encoding="utf-8") as f:
            f.write("\n".join(text) + "\n")

    def unbound_conf_text(self):
        """The unbound.conf text for libunbound (also written to unbound_conf)."""
        text = [
            "# written by tests/lab/dnslab.py: libunbound configuration for the DNSSEC lab",
            "server:",
            "\tverbosity: 0",
            "\tdo-ip6: no",
            "\tdo-not-query-localhost: no",
            '\tlocal-zone: "test." nodefault',
            '\ttrust-anchor-file: "%s"' % self.trust_anchor_file,
            "\tval-log-level: 2",
            "\tharden-dnssec-stripped: yes",
            "stub-zone:",
            '\tname: "%s"' % LAB_ZONE,
            "\tstub-addr: 127.0.0.1@%d" % self._port,
        ]
        if self.isolate:
            text += ["# everything else goes to the lab server too (REFUSED there): nothing",
                     "# leaves loopback",
                     "stub-zone:", '\tname: "."', "\tstub-addr: 127.0.0.1@%d" % self._port]
        return "\n".join(text) + "\n"

    def _write_unbound_conf(self):
        with open(self.unbound_conf, "w", encoding="utf-8") as f:
            f.write(self.unbound_conf_text())

    # -- running --

    def start(self):
        """Build, sign and serve; returns self.  See the module doc."""
        with self._lock:
            if self._procs.get("nsd") is not None:
                raise LabError("already started")
            t0 = time.monotonic()
            last = None
            fixed = self._fixed_port or self._port
            for attempt in range(PORT_TRIES):
                if fixed is None or (attempt and self._fixed_port is None and attempt >= 3):
                    self._port = free_port()
                else:
                    self._port = fixed
                if attempt == 0:
                    self._build()
                else:
                    self._write_nsd_conf()
                    self._write_unbound_conf()
                try:
                    self._start_nsd()
                    break
                except _BindError as e:
                    last = e
                    time.sleep(0.05 * (attempt + 1))
            else:
                raise LabError("nsd could not bind a port: %s" % last)
            self.start_seconds = time.monotonic() - t0
            _LIVE.add(self)
            return self

    def _start_nsd(self):
        try:
            os.unlink(os.path.join(self.directory, "nsd.pid"))
        except FileNotFoundError:
            pass
        log = os.path.join(self.directory, "nsd.log")
        with open(log, "a", encoding="utf-8") as f:
            f.write("--- dnslab: starting nsd on port %d\n" % self._port)
        p = _Proc("nsd", [_tool("nsd"), "-d", "-c", self.nsd_conf], log, self.directory)
        self._procs["nsd"] = p
        end = time.monotonic() + START_TIMEOUT
        pending = list(self._zones)
        while pending:
            if not p.alive():
                out = p.output()
                self._procs.pop("nsd", None)
                p.stop()
                if re.search(r"(?i)bind|address already in use", out):
                    raise _BindError(out.strip().splitlines()[-1] if out.strip() else "bind")
                raise LabError("nsd exited with status %s:\n%s" % (p.popen.returncode, out))
            r = _probe(self._port, pending[0], timeout=0.05)
            if r is not None:
                rcode, aa = r
                if rcode == 0 and aa:
                    pending.pop(0)
                    continue
                if rcode == 5:      # REFUSED: not our nsd (or zone not loaded)
                    pass
            if time.monotonic() > end:
                out = p.output()
                self.stop()
                raise LabError("nsd on port %d does not answer for %s after %ss:\n%s" % (
                    self._port, pending[0], START_TIMEOUT, out))
            time.sleep(0.01)

    def stop(self):
        """Stop nsd and the validator (process groups) and wait.  Idempotent."""
        with self._lock:
            for key in ("validator", "nsd"):
                p = self._procs.pop(key, None)
                if p is not None:
                    p.stop()
            _LIVE.discard(self)

    def close(self):
        self.stop()

    def reload(self):
        """Re-sign (records changed) and restart nsd on the same port."""
        with self._lock:
            had_validator = self._procs.get("validator") is not None
            self.stop()
            t0 = time.monotonic()
            self._build()
            last = None
            for attempt in range(PORT_TRIES):
                try:
                    self._start_nsd()
                    break
                except _BindError as e:
                    last = e
                    time.sleep(0.05 * (attempt + 1))
            else:
                raise LabError("nsd could not bind port %d again: %s" % (self._port, last))
            self.start_seconds = time.monotonic() - t0
            _LIVE.add(self)
            if had_validator:
                self.validator()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def pids(self):
        """{name: pgid} of the process groups the lab runs now."""
        return {k: p.pgid for k, p in self._procs.items()}

    # -- validation --

    @property
    def validator_conf(self):
        return os.path.join(self.directory, "unbound-validator.conf")

    def validator(self):
        """Start (once) a validating unbound daemon configured with
        unbound_conf plus a listener on 127.0.0.1; returns its port."""
        with self._lock:
            if self._procs.get("nsd") is None:
                raise LabError("start() the lab first")
            p = self._procs.get("validator")
            if p is not None and p.alive():
                return self._vport
            last = None
            for _ in range(PORT_TRIES):
                self._vport = free_port()
                try:
                    self._start_validator()
                    return self._vport
                except _BindError as e:
                    last = e
            raise LabError("unbound could not bind a port: %s" % last)

    def _start_validator(self):
        d = self.directory
        log = os.path.join(d, "unbound.log")
        text = [
            "# written by tests/lab/dnslab.py: a validating resolver for the lab",
            'include: "%s"' % self.unbound_conf,
            "server:",
            "\tinterface: 127.0.0.1",
            "\tport: %d" % self._vport,
            "\taccess-control: 127.0.0.0/8 allow",
            '\tusername: ""',
            '\tchroot: ""',
            '\tdirectory: "%s"' % d,
            '\tpidfile: "%s"' % os.path.join(d, "unbound.pid"),
            "\tuse-syslog: no",
            '\tlogfile: "%s"' % log,
            "\tlog-time-ascii: yes",
            "\tlog-servfail: yes",
            "\tdo-daemonize: no",
            "\tnum-threads: 1",
            "\tso-reuseport: no",
            "\tso-rcvbuf: 0",
            "\tso-sndbuf: 0",
            "\tede: yes",
            "remote-control:",
            "\tcontrol-enable: no",
        ]
        with open(self.validator_conf, "w", encoding="utf-8") as f:
            f.write("\n".join(text) + "\n")
        with open(log, "a", encoding="utf-8") as f:
            f.write("--- dnslab: starting unbound on port %d\n" % self._vport)
        p = _Proc("unbound", [_tool("unbound"), "-d", "-c", self.validator_conf], log, d)
        self._procs["validator"] = p
        end = time.monotonic() + START_TIMEOUT
        while True:
            if not p.alive():
                out = p.output()
                self._procs.pop("validator", None)
                p.stop()
                if re.search(r"(?i)bind|address already in use", out):
                    raise _BindError(out.strip().splitlines()[-1] if out.strip() else "bind")
                raise LabError("unbound exited with status %s:\n%s" % (p.popen.returncode, out))
            if _probe(self._vport, "ns." + LAB_ZONE, qtype=1, rd=True, timeout=0.1) is not None:
                return
            if time.monotonic() > end:
                out = p.output()
                self._procs.pop("validator", None)
                p.stop()
                raise LabError("unbound on port %d does not answer:\n%s" % (self._vport, out))
            time.sleep(0.01)

    def query(self, name, rtype="A", cd=False, via="unbound", conf=None):
        """Resolve and validate name/rtype; an Answer (see its doc).  conf
        (libunbound only): another unbound.conf instead of unbound_conf."""
        rtype = rtype.upper()
        if via == "libunbound":
            return self._query_libunbound(name, rtype, conf or self.unbound_conf)
        if via != "unbound":
            raise ValueError("via must be 'unbound' or 'libunbound'")
        port = self.validator()
        text, parsed = self._drill(port, name, rtype, cd)
        if parsed is None:
            return Answer(name, rtype, "servfail", "TIMEOUT", text=text, via=via)
        rcode, flags, answer = parsed
        rdata = [a[3] for a in answer if a[2] == rtype]
        why = ""
        if rcode == "SERVFAIL" and not cd:
            _, cdparsed = self._drill(port, name, rtype, True)
            if cdparsed is not None and cdparsed[0] in ("NOERROR", "NXDOMAIN"):
                status = "bogus"
                why = self._why_bogus(name)
            else:
                status = "servfail"
        elif rcode in ("NOERROR", "NXDOMAIN"):
            status = "secure" if "ad" in flags else "insecure"
        else:
            status = "servfail"
        return Answer(name, rtype, status, rcode, rdata, answer, ad="ad" in flags, why=why,
                      text=text, via=via)

    def _drill(self, port, name, rtype, cd):
        argv = [_tool("drill"), "-D", "-t", "-p", str(port)]
        if cd:
            argv += ["-o", "CD"]
        argv += ["@127.0.0.1", _fqdn(name), rtype]
        text = ""
        for _ in range(3):
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                               check=False)
            text = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
            parsed = _parse_drill(text)
            if parsed is not None:
                return text, parsed
            time.sleep(0.1)
        return text, None

    def _why_bogus(self, name):
        log = _tail(os.path.join(self.directory, "unbound.log"), 200)
        n = _fqdn(name).lower()
        hits = [ln for ln in log.splitlines() if "validation failure" in ln]
        mine = [ln for ln in hits if n in ln.lower()]
        line = (mine or hits or [""])[-1]
        return line[line.find("validation failure"):].strip() if line else ""

    def chase(self, name, rtype="A"):
        """A second, independent validator: `drill -S` (ldns) chases the
        signatures of name/rtype from nsd up to the lab's DNSKEY.  Returns
        (ok, text): ok is True for a chain of trust to the anchor, including
        authenticated denial ("Existence denied"); False for bogus, expired
        and for unsigned (insecure) data, which drill cannot tell apart --
        use query() for that."""
        if self._procs.get("nsd") is None:
            raise LabError("start() the lab first")
        r = subprocess.run([_tool("drill"), "-S", "-k", self.dnskey_file, "-p", str(self._port),
                            "@127.0.0.1", _fqdn(name), rtype.upper()],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
        text = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
        return r.returncode == 0 and ";; Chase successful" in text, text

    def _query_libunbound(self, name, rtype, conf):
        if self._procs.get("nsd") is None:
            raise LabError("start() the lab first")
        lib = _libunbound()
        qtype = _RRTYPES.get(rtype)
        if qtype is None:
            m = re.match(r"TYPE(\d+)$", rtype)
            if not m:
                raise ValueError("unknown type %s" % rtype)
            qtype = int(m.group(1))
        ctx = lib.ub_ctx_create()
        if not ctx:
            raise LabError("ub_ctx_create failed")
        try:
            r = lib.ub_ctx_config(ctx, os.fsencode(conf))
            if r != 0:
                raise LabError("ub_ctx_config(%s): %s" % (conf,
                                                          lib.ub_strerror(r).decode()))
            res = ctypes.POINTER(_UbResult)()
            r = lib.ub_resolve(ctx, _fqdn(name).encode(), qtype, 1, ctypes.byref(res))
            if r != 0:
                return Answer(name, rtype, "servfail", "ERROR",
                              why=lib.ub_strerror(r).decode(), via="libunbound")
            try:
                u = res.contents
                rdata = []
                if u.havedata:
                    i = 0
                    while u.data[i]:
                        rdata.append(_present(rtype, ctypes.string_at(u.data[i], u.len[i])))
                        i += 1
                rcode = _RCODES.get(u.rcode, str(u.rcode))
                if u.bogus:
                    status = "bogus"
                elif u.secure:
                    status = "secure"
                elif u.rcode in (0, 3):
                    status = "insecure"
                else:
                    status = "servfail"
                why = u.why_bogus.decode("utf-8", "replace") if u.why_bogus else ""
                ttl = u.ttl
            finally:
                lib.ub_resolve_free(res)
        finally:
            lib.ub_ctx_delete(ctx)
        answer = [(_fqdn(name), ttl, rtype, d) for d in rdata]
        return Answer(name, rtype, status, rcode, rdata, answer, why=why, via="libunbound")

    def info(self):
        """A dict describing the running lab (the CLI prints it)."""
        return {"port": self._port, "directory": self.directory,
                "trust_anchor_file": self.trust_anchor_file, "dnskey_file": self.dnskey_file,
                "unbound_conf": self.unbound_conf, "nsd_conf": self.nsd_conf,
                "zones": {z.name: z.kind for z in self._zones.values()},
                "validator_port": self._vport if self._procs.get("validator") else None,
                "start_seconds": round(self.start_seconds or 0, 3)}


class _BindError(LabError):
    pass


def _corrupt_ds(line):
    """The DS line with the last hex digit of its digest changed."""
    head, digest = line.rsplit(None, 1)
    last = "0" if digest[-1] != "0" else "1"
    return "%s %s%s" % (head, digest[:-1], last)


# ---- command line ----

def main(argv=None):
    ap = argparse.ArgumentParser(description="DNSSEC lab (nsd) for subproxy's tests")
    ap.add_argument("--dir", required=True, help="directory for zones, keys and configs")
    ap.add_argument("--port", type=int, default=None, help="nsd port (default: a free one)")
    ap.add_argument("--algorithm", default="ECDSAP256SHA256", choices=sorted(ALGORITHMS))
    ap.add_argument("--csk", action="store_true", help="one key per zone instead of KSK+ZSK")
    ap.add_argument("--add", nargs=2, action="append", default=[], metavar=("ZONE", "RR"),
                    help='add a record, e.g. --add lab.test "_25._tcp.relay TLSA 3 1 1 AB.."')
    ap.add_argument("--validator", action="store_true",
                    help="also run a validating unbound for the lab (port printed)")
    ap.add_argument("--json", action="store_true", help="print one JSON object after the port")
    args = ap.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    lab = DnsLab(args.dir, algorithm=args.algorithm, csk=args.csk, port=args.port)
    for zone, rr in args.add:
        lab.add(zone, rr)
    try:
        lab.start()
        if args.validator:
            lab.validator()
        info = lab.info()
        print(info["port"], flush=True)
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            for k, v in info.items():
                if k == "zones":
                    for zn, kind in v.items():
                        print("zone %s %s" % (zn, kind))
                elif k != "port" and v is not None:
                    print("%s %s" % (k, v))
            sys.stdout.flush()
        while not stop.wait(0.5):
            if not lab.running:
                print("nsd died", file=sys.stderr)
                return 1
    except LabError as e:
        print("dnslab: %s" % e, file=sys.stderr)
        return 1
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
