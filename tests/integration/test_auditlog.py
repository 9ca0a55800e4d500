"""
The audit log ([audit] log): every record type, written by the recorder
and nobody else, validated against doc/audit-log.schema.json; the report's
counts against what the sink received and the clients were told;
tampering found with the record number; fail closed when the log cannot be
written (and service back when it can); rotation; pseudonyms; the HTML
report.
"""

import concurrent.futures
import json
import os
import pwd
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import auditlab
from conftest import subproxy_binary
from helpers import (ALICE, BOB, BOB_PW, RCPT, RawClient, dot_stuff, logged_in, make_message)
from opsutil import sigstop

SCHEMA = Path(__file__).resolve().parents[2] / "doc" / "audit-log.schema.json"


@pytest.fixture
def audit(tmp_path):
    a = auditlab.AuditLog(tmp_path / "auditwork")
    yield a
    a.remove() if not os.environ.get("KEEP_AUDIT") else print("KEEP", a.dir)


def run(*args, timeout=60):
    r = subprocess.run([subproxy_binary(), *args], capture_output=True, text=True,
                       timeout=timeout, check=False)
    return r.returncode, r.stdout, r.stderr


def verify(audit, *files, key=True):
    args = ["--verify-log"] + (["--public-key", audit.pub_file] if key else [])
    return run(*args, *(files or audit.files()))


def report(audit, fmt="json", *files):
    rc, out, err = run("--report", "--public-key", audit.pub_file, "--format", fmt,
                       *(files or audit.files()))
    assert rc in (0, 1), err
    return rc, (json.loads(out) if fmt == "json" else out)


def validate_all(records):
    v = Draft202012Validator(json.loads(SCHEMA.read_text()))
    for rec in records:
        errors = sorted(v.iter_errors(rec), key=str)
        assert not errors, "record %s does not match the schema: %s" % (rec, errors[0])


def session(sp, certs, user=ALICE, password=None):
    c = RawClient(sp.implicit_port, certs.ca)
    c.greeting.check(220)
    if password is None:
        return c.login(user)
    return c.login(user, password)


def send_one(c, sender=ALICE, to=RCPT):
    """One message on a logged-in client; returns the final reply."""
    r = c.cmd("MAIL FROM:<%s>" % sender)
    if r.code != 250:
        return r
    c.rcpt(to, code=250)
    return c.data(dot_stuff(make_message(sender=sender, to=to)))


def proc_of(sp, comm):
    """Pid of the daemon's child whose name is comm (subproxy-front, ...)."""
    out = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(sp.proc.pid)],
                         capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        pid, name = line.split(None, 1)
        if name.strip() == comm:
            return int(pid)
    raise AssertionError("no %s under %d: %s" % (comm, sp.proc.pid, out))


# ---- what a run writes ----

def test_every_record_type_and_the_report(lab, audit):
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides(),
                      limits={"connections-per-ip": 3, "protocol-errors": 2})
    told = {"250": 0, "refused": []}
    # two messages relayed
    c = session(sp, lab.certs)
    for _ in range(2):
        send_one(c).check(250)
        told["250"] += 1
    # sender not owned; a message with a bare LF; the relay refuses a recipient
    c.cmd("MAIL FROM:<%s>" % BOB, 553, "5.7.1")
    told["refused"].append("553 5.7.1")
    c.mail()
    c.rcpt(code=250)
    c.data(b"From: <alice@lab.test>\r\nSubject: x\r\n\r\nbare\nLF\r\n.\r\n", 550, "5.6.0")
    told["refused"].append("550 5.6.0")
    s.set_faults(rcpt={"nobody@remote.test": "550 5.1.1 No such user"})
    c.mail()
    c.rcpt("nobody@remote.test", code=550)
    told["refused"].append("550 5.1.1")
    c.cmd("RSET", 250)
    # a wrong password
    d = RawClient(sp.implicit_port, lab.certs.ca)
    d.greeting.check(220)
    d.ehlo()
    d.auth_plain(BOB, "wrong", code=535, enh="5.7.8")
    # a third and fourth connection from this address: the fourth is refused
    e = RawClient(sp.implicit_port, lab.certs.ca)
    e.greeting.check(220)
    f = RawClient(sp.starttls_port, lab.certs.ca, implicit=False, read_greeting=False)
    f.read_until_closed()[0].check(421, "4.7.0")
    told["refused"].append("421 4.7.0")
    # the third one breaks the protocol until it is closed
    e.send(b"FOO\r\nBAR\r\n")
    e.read_reply().check(500, "5.5.2")
    e.read_reply().check(500, "5.5.2")
    e.read_reply().check(421, "4.7.0")
    e.expect_closed()
    told["refused"].append("421 4.7.0")
    for x in (c, d, e):
        x.close()
    sp.stop()
    recs = audit.records()
    validate_all(recs)
    types = {r["type"] for r in recs}
    assert {"open", "start", "auth", "txn", "refusal", "checkpoint", "stop"} <= types, types
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert recs[0]["type"] == "open" and recs[0]["prev"] == "0" * 64
    assert recs[-1]["type"] == "checkpoint" and recs[-2]["type"] == "stop"
    start = next(r for r in recs if r["type"] == "start")
    assert start["self_audit"]["result"] == "pass" and start["self_audit"]["checks"] > 10
    assert "audit.log" in start["self_audit"]["passed"]
    assert start["key"] == auditlab.public_b64(audit.key)
    # the transactions carry the facts of both legs
    txns = [r for r in recs if r["type"] == "txn"]
    assert len(txns) == 2 == len(s.messages())
    for t, m in zip(txns, s.messages()):
        assert t["login"] == ALICE and t["from"] == ALICE
        assert t["rcpts"] == [{"addr": RCPT, "code": 250, "enh": "2.1.5",
                               "text": t["rcpts"][0]["text"]}]
        assert t["final"]["code"] == 250 and not t["final"]["local"]
        assert {d["a"] for d in t["dkim"]} == {"ed25519-sha256", "rsa-sha256"}
        assert t["relay"]["dane"]["verdict"] == "ok-ee"
        assert t["relay"]["dane"]["dnssec"] == "pinned"
        assert t["relay"]["dane"]["tlsa"].startswith("3 1 1 ")
        assert t["client_tls"]["version"] in ("TLS1.2", "TLS1.3")
        import hashlib
        assert t["sha256"] == hashlib.sha256(m["data"]).hexdigest()
        assert t["size"] == len(m["data"])
        assert t["message_id"] and t["message_id"].startswith("<")
    auths = [r for r in recs if r["type"] == "auth"]
    assert [(a["login"], a["result"], a["code"]) for a in auths] == [
        (ALICE, "ok", 235), (BOB, "fail", 535)]
    refusals = [r for r in recs if r["type"] == "refusal"]
    assert sorted("%d %s" % (r["code"], r["enh"]) for r in refusals) == sorted(told["refused"])
    assert {r["reason"] for r in refusals} == {
        "sender-not-owned", "message-syntax", "relay-refused",
        "too-many-connections-from-address", "protocol-errors"}
    assert {r["stage"] for r in refusals if r["reason"] == "protocol-errors"} == {"session"}
    # the log is intact, and the report counts what the sink and the clients saw
    rc, out, err = verify(audit)
    assert rc == 0 and out.startswith("intact: %d records" % len(recs)), out + err
    rc, rep = report(audit)
    assert rc == 0, rep
    assert rep["verdict"]["intact"] and rep["promises_kept"]
    assert rep["messages"]["relayed"] == told["250"] == len(s.messages())
    assert rep["messages"]["handed_to_relay"] == 2
    assert sum(x["count"] for x in rep["refusals"]) == len(told["refused"])
    assert rep["dkim"]["signed"] == 2 and rep["dkim"]["exceptions"] == []
    assert rep["dane"]["verified"] == 2 and rep["dane"]["exceptions"] == []
    assert rep["auth"]["ok"] == 1 and rep["auth"]["failed"] == 1
    assert rep["auth"]["per_login"][BOB]["failed"] == 1
    assert rep["senders"] == {ALICE: 2}
    assert rep["relay_latency_ms"]["count"] == 2
    assert [st["self_audit"] for st in rep["starts"]] == ["pass"]
    assert [st["reason"] for st in rep["stops"]] == ["signal"]


# ---- refusals by lockout and by login-memory ----

LOGIN_MAX = 10      # src/keeper.h KEEPER_LOCK_LOGIN_MAX


def test_lockout_and_login_memory_refusals_are_recorded(lab, audit):
    """An AUTH refused by lockout is an auth record with result locked,
    lockout true, 454 4.7.0 (after the failures that caused it, each one
    recorded); a message beyond [limits] login-memory is a refusal record
    452 4.3.1, reason login-memory.  Both match the schema and the report
    counts them."""
    from concurrent.futures import ThreadPoolExecutor
    from test_session_limits import message_of
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides(),
                      limits={"message-size": "200k", "login-memory": "200k"})

    def fail_once(i):
        c = RawClient(sp.implicit_port, lab.certs.ca)
        c.greeting.check(220)
        c.ehlo()
        r = c.auth_plain(BOB, "wrong-%d" % i, code=None, enh=None)
        c.cmd("QUIT", 221)
        return r.code
    with ThreadPoolExecutor(max_workers=LOGIN_MAX) as pool:
        assert list(pool.map(fail_once, range(LOGIN_MAX))) == [535] * LOGIN_MAX
    assert sp.wait_log(r"keeper.*event=auth-locked login=%s" % re.escape(BOB), timeout=10)
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.ehlo()
    # refused without a password check: a client can repeat it at will, so
    # the ones after the first are counted into one summary
    for _ in range(4):
        c.auth_plain(BOB, BOB_PW, code=454, enh="4.7.0")
    c.cmd("QUIT", 221)
    # one login's data in transit beyond login-memory
    a = logged_in(sp.implicit_port, lab.certs.ca)
    b = logged_in(sp.implicit_port, lab.certs.ca)
    for x in (a, b):
        x.mail(ALICE)
        x.rcpt(RCPT, code=250)
    a.bdat(message_of(150000, "held")[:150000]).check(250, "2.0.0")
    b.bdat(message_of(60000, "one too many"), last=True).check(452, "4.3.1")
    a.bdat(b"", last=True).check(250, "2.0.0")
    for x in (a, b):
        x.cmd("QUIT", 221)
    sp.stop()
    recs = audit.records()
    validate_all(recs)
    auths = [r for r in recs if r["type"] == "auth" and r["login"] == BOB]
    assert [r["result"] for r in auths] == ["fail"] * LOGIN_MAX + ["locked"] * 2, auths
    locked = auths[-2]
    assert (locked["lockout"], locked["closed"], locked["code"], locked["enh"]) == (
        True, False, 454, "4.7.0"), locked
    assert locked["mechanism"] == "PLAIN" and locked["client"] == "127.0.0.1"
    assert "count" not in locked        # the first of its kind: as it is
    assert auths[-1]["count"] == 3 and auths[-1]["first"] <= auths[-1]["last"]
    mem = [r for r in recs if r["type"] == "refusal" and r["reason"] == "login-memory"]
    assert len(mem) == 1, mem
    assert (mem[0]["code"], mem[0]["enh"], mem[0]["stage"], mem[0]["login"]) == (
        452, "4.3.1", "message", ALICE), mem[0]
    assert "Too much message data of %s in transit" % ALICE in mem[0]["text"]
    assert len([r for r in recs if r["type"] == "txn"]) == 1 == len(s.messages())
    rc, rep = report(audit)
    assert rc == 0 and rep["auth"]["locked"] == 4 and rep["auth"]["failed"] == LOGIN_MAX
    assert rep["auth"]["per_login"][BOB]["locked"] == 4
    assert [(x["code"], x["enh"], x["reason"], x["count"]) for x in rep["refusals"]] == [
        (452, "4.3.1", "login-memory", 1)], rep["refusals"]


# ---- floods a client can cause before AUTH ----

FLOODER = "127.0.0.12"          # holds its connections-per-ip, then floods
ERRANT = "127.0.0.13"           # sessions that end in protocol errors


def _flood(port, seconds, stop):
    """Connection attempts from FLOODER for `seconds`: bursts of 50 opened
    at once, then each one's answer read.  Returns (attempts, 421s read)."""
    attempts = told = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stop.is_set():
        burst = []
        for _ in range(50):
            s = socket.socket()
            s.bind((FLOODER, 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            burst.append(s)
        attempts += len(burst)
        for s in burst:
            s.settimeout(5)
            data = b""
            try:
                while len(data) < 200:
                    chunk = s.recv(200)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            told += data.startswith(b"421 4.7.0 Too many connections from your address")
            s.close()
    return attempts, told


@pytest.mark.sanitized
def test_refusal_flood_costs_a_few_records(lab, audit):
    """The independent attacker's find: with the connections-per-ip slots of
    one address held, a flood of connection attempts from it wrote one
    refusal record each (17,556 in 3 s), filled front's queue to the
    recorder (event=recorder-busy) and cost real transactions their
    records.  Now the first refusal of a kind per address is recorded, the
    rest are counted into one summary (count, first, last) per minute or at
    stop, and refusals never take the places transaction records need: a
    legitimate client's transaction during the flood has its record, the
    refusals are a handful of records, and the report counts every one.
    Each of the two workers summarizes what it refused itself."""
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides(), server={"workers": 2}, limits={
        "connections": 200, "connections-per-ip": 2, "protocol-errors": 1})
    held = [RawClient(sp.starttls_port, lab.certs.ca, implicit=False, source=FLOODER)
            for _ in range(2)]
    for c in held:
        c.greeting.check(220)
    stop = threading.Event()
    result = {}
    flooder = threading.Thread(target=lambda: result.update(
        n=_flood(sp.starttls_port, 3.0, stop)), daemon=True)
    flooder.start()
    try:
        # meanwhile: a legitimate client submits, and another address breaks
        # the protocol before AUTH in five sessions
        c = session(sp, lab.certs)
        send_one(c).check(250)
        for _ in range(5):
            e = RawClient(sp.starttls_port, lab.certs.ca, implicit=False, source=ERRANT)
            e.greeting.check(220)
            e.send(b"FOO\r\n")
            e.read_reply().check(500, "5.5.2")
            e.read_reply().check(421, "4.7.0")
            e.expect_closed()
            e.close()
        send_one(c).check(250)
    finally:
        flooder.join(30)
        stop.set()
    attempts, told = result["n"]
    c.close()
    for h in held:
        h.close()
    sp.stop()
    refused = [ln for ln in sp.lines if "event=refused peer=%s " % FLOODER in ln]
    assert len(refused) >= told > 100, (attempts, told, len(refused))
    assert not [ln for ln in sp.lines if "recorder-busy" in ln or "audit-record-missing" in ln]
    recs = audit.records()
    validate_all(recs)
    flood = [r for r in recs if r["type"] == "refusal" and r["client"] == FLOODER]
    assert 1 <= len(flood) < 20, [r.get("count") for r in flood]
    assert {r["reason"] for r in flood} == {"too-many-connections-from-address"}
    assert sum(r.get("count", 1) for r in flood) == len(refused)
    summary = [r for r in flood if "count" in r]
    assert summary and summary[0]["first"] <= summary[0]["last"]
    errant = [r for r in recs if r["type"] == "refusal" and r["client"] == ERRANT]
    assert {r["reason"] for r in errant} == {"protocol-errors"} and len(errant) <= 2 * 2
    assert sum(r.get("count", 1) for r in errant) == 5
    txns = [r for r in recs if r["type"] == "txn"]
    assert len(txns) == 2 == len(s.messages()) and all(t["client"] == "127.0.0.1" for t in txns)
    assert verify(audit)[0] == 0
    rc, rep = report(audit)
    assert rc == 0, rep
    by_reason = {}
    for x in rep["refusals"]:
        by_reason[x["reason"]] = by_reason.get(x["reason"], 0) + x["count"]
    assert by_reason == {"too-many-connections-from-address": len(refused), "protocol-errors": 5}
    assert rep["messages"]["relayed"] == 2



@pytest.mark.sanitized
def test_mail_before_auth_costs_a_few_records(lab, audit):
    """The independent attacker's find: MAIL before AUTH (530 5.7.0) wrote
    one refusal record per command, protocol-errors - 1 of them per session
    and again in every new session, so anybody could fill the log's disk at
    the rate they can connect, and a full disk refuses every transaction
    (451 4.3.0).  Now they are counted per address like the other refusals
    before AUTH: a handful of records whose counts add up to every 530, a
    legitimate transaction meanwhile has its record, nothing is relayed for
    the flooder.  Each of the two workers summarizes what it refused itself."""
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides(), server={"workers": 2},
                      limits={"protocol-errors": 10})
    told = 0
    for _ in range(4):
        e = RawClient(sp.starttls_port, lab.certs.ca, implicit=False, source=ERRANT)
        e.greeting.check(220)
        e.ehlo()
        e.starttls()
        e.ehlo()
        for _ in range(9):
            e.cmd("MAIL FROM:<%s>" % ALICE).check(530, "5.7.0")
            told += 1
        e.cmd("QUIT", 221)
        e.close()
    c = session(sp, lab.certs)
    send_one(c).check(250)
    c.cmd("QUIT", 221)
    c.close()
    sp.stop()
    recs = audit.records()
    validate_all(recs)
    errant = [r for r in recs if r["type"] == "refusal" and r["client"] == ERRANT]
    assert {(r["stage"], r["reason"], r["code"], r["enh"]) for r in errant} == {
        ("mail", "auth-required", 530, "5.7.0")}, errant
    assert 1 <= len(errant) <= 2 * 2, [r.get("count") for r in errant]
    assert sum(r.get("count", 1) for r in errant) == told == 36
    txns = [r for r in recs if r["type"] == "txn"]
    assert len(txns) == 1 == len(s.messages()), txns
    assert verify(audit)[0] == 0
    rc, rep = report(audit)
    assert rc == 0, rep
    assert [(x["reason"], x["count"]) for x in rep["refusals"]] == [("auth-required", 36)], \
        rep["refusals"]


FLOOD_KEYS = 2000                # each connection claims an IPv6 /64 of its own
FLOOD_RECORDS = 50              # [audit] flood-records: records naming a client a minute


def _proxied_protocol_error(port, n):
    """One connection from 127.0.0.1 (allowed by proxy-from) whose PROXY v2
    header claims 2001:db8:N::1 (a /64 of its own), then a command the
    server does not know: 500, then 421 (protocol-errors = 1).  Returns
    whether the 421 was read."""
    src = socket.inet_pton(socket.AF_INET6, "2001:db8:%x:%x::1" % (n >> 16, n & 0xffff))
    dst = socket.inet_pton(socket.AF_INET6, "2001:db8::25")
    header = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x21]) + struct.pack("!H", 36) +
              src + dst + struct.pack("!HH", 40000 + n % 20000, 587))
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(header)
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(512)
            if not chunk:
                return False
            data += chunk
        s.sendall(b"FOO\r\n")
        while True:
            chunk = s.recv(512)
            if not chunk:
                break
            data += chunk
        return b"\r\n421 4.7.0 " in data
    finally:
        s.close()


@pytest.mark.sanitized
def test_refusals_from_thousands_of_addresses_cost_a_bounded_number_of_records(lab, audit):
    """The independent attacker's find: refusals before AUTH were counted
    per address, but the first of every new address was recorded, so 3000
    connections through a PROXY listener, each claiming another IPv6 /64,
    wrote 2582 records (with a /48, 65,536 addresses: tens of GB a day, a
    full disk, and then every transaction refused).  Now at most [audit]
    flood-records a minute name a client; beyond it the refusals of a kind
    are one summary with "client": "*", their count and how many addresses
    they came from.  A legitimate transaction meanwhile is relayed and
    recorded, the log verifies, and the report counts every refusal.  Two
    workers share the bound (25 a minute each)."""
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides(**{"flood-records": FLOOD_RECORDS}) + [
        "listen.submission.proxy-protocol=yes", "listen.submission.proxy-from=127.0.0.1"],
        server={"workers": 2}, limits={"protocol-errors": 1})
    told = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for i, ok in enumerate(pool.map(lambda n: _proxied_protocol_error(sp.starttls_port, n),
                                        range(FLOOD_KEYS))):
            told += ok
            if i == FLOOD_KEYS // 2:
                # in the middle: a real client on the other listener
                c = session(sp, lab.certs)
                send_one(c).check(250)
                c.cmd("QUIT", 221)
                c.close()
    assert told == FLOOD_KEYS
    sp.stop()
    assert not [ln for ln in sp.lines if "recorder-busy" in ln or "audit-refusals-dropped" in ln]
    recs = audit.records()
    validate_all(recs)
    flood = [r for r in recs if r["type"] == "refusal" and r["reason"] == "protocol-errors"]
    named = [r for r in flood if r["client"] != "*"]
    kinds = [r for r in flood if r["client"] == "*"]
    # a minute or two of attack: the bound per minute, and one summary per
    # kind, worker and minute (and one at stop)
    assert len(named) <= 2 * FLOOD_RECORDS, len(named)
    assert 1 <= len(kinds) <= 2 * 3, kinds
    assert all(r["client"].startswith("2001:db8:") for r in named), named[:3]
    assert sum(r.get("count", 1) for r in flood) == FLOOD_KEYS
    # every address once: named, or one of the clients of a summary
    assert len({r["client"] for r in named}) + sum(r["clients"] for r in kinds) == FLOOD_KEYS
    assert all(r["count"] >= r["clients"] and "clients_capped" not in r for r in kinds)
    txns = [r for r in recs if r["type"] == "txn"]
    assert len(txns) == 1 == len(s.messages()) and txns[0]["final"]["code"] == 250
    assert len(recs) < 2 * FLOOD_RECORDS + 20, len(recs)
    assert verify(audit)[0] == 0
    rc, rep = report(audit)
    assert rc == 0, rep
    assert [(x["reason"], x["count"]) for x in rep["refusals"]] == [
        ("protocol-errors", FLOOD_KEYS)], rep["refusals"]
    assert rep["messages"]["relayed"] == 1


# ---- tampering ----

def last_checkpoint(lines):
    return max(i for i, ln in enumerate(lines) if '"type":"checkpoint"' in ln)


def _tamper_cases(lines, other_key):
    """(name, files as lists of lines, expected first bad record, words)."""
    n = len(lines)
    mid = n // 2
    # the final checkpoint cut off: the records after the checkpoint before
    # it (at least the stop record; the recorder may have written that one
    # right before the stop, as the records read per round vary) are signed
    # by none
    cp = last_checkpoint(lines[:-1])
    changed = lines[mid].replace('"seq":%d' % (mid + 1), '"seq":%d' % (mid + 1), 1)
    i = changed.index('"time":"') + 20          # a digit of the seconds
    changed = changed[:i] + ("1" if changed[i] != "1" else "2") + changed[i + 1:]
    return [
        ("one byte changed", [lines[:mid] + [changed] + lines[mid + 1:]], mid + 1,
         "was modified"),
        ("one line deleted", [lines[:mid] + lines[mid + 1:]], mid + 1, "is missing"),
        ("two lines swapped", [lines[:mid] + [lines[mid + 1], lines[mid]] + lines[mid + 2:]],
         mid + 1, "is missing"),
        ("a line inserted again", [lines[:mid + 1] + [lines[1]] + lines[mid + 1:]], mid + 2,
         "inserted, repeated or reordered"),
        ("truncated after a checkpoint", [lines[:-1]], cp + 2,
         "are not covered by a signed checkpoint"),
        ("cut inside the last line", [lines[:-1] + [lines[-1][:40]]], n, "truncated"),
        ("the last checkpoint re-signed with another key",
         [lines[:-1] + [auditlab.resign_checkpoint(lines[-1], other_key)]], n,
         "signed by another key"),
    ]


def write_files(tmp, name, files, cut_last=False):
    paths = []
    for k, lines in enumerate(files):
        p = tmp / ("%s.%d" % (name.replace(" ", "-"), k))
        text = "\n".join(lines) + ("" if cut_last and k == len(files) - 1 else "\n")
        p.write_text(text)
        paths.append(str(p))
    return paths


def test_tampering_is_found_with_the_record_number(lab, audit, tmp_path):
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides(**{"checkpoint-records": 3}))
    c = session(sp, lab.certs)
    for _ in range(3):
        send_one(c).check(250)
    c.cmd("MAIL FROM:<%s>" % BOB, 553, "5.7.1")
    c.close()
    sp.stop()
    lines = audit.lines()
    rc, out, _ = verify(audit)
    assert rc == 0 and "note:" not in out, out
    assert '"type":"stop"' in lines[-2], lines[-2]
    # cut back to the checkpoint before the stop: a consistent log no chain
    # can tell from one still being written, but it does not end with a stop
    cp = last_checkpoint(lines[:-1])
    paths = write_files(tmp_path, "to-a-checkpoint", [lines[:cp + 1]])
    rc, out, _ = verify(audit, *paths)
    assert rc == 0 and ("note: the log ends at record %d (" % (cp + 1)) in out and \
        "without a stop record" in out, out
    other = auditlab.ed25519.Ed25519PrivateKey.generate()
    for name, files, bad, words in _tamper_cases(lines, other):
        paths = write_files(tmp_path, name, files, cut_last=(name == "cut inside the last line"))
        rc, out, err = verify(audit, *paths)
        assert rc == 1, "%s: not detected (%d): %s %s" % (name, rc, out, err)
        assert words in out, "%s: %s" % (name, out)
        if bad is not None:
            assert out.startswith("NOT intact: first bad record %d " % bad), "%s: %s" % (name, out)
        # the report says so at the top, and exits 1
        rc, text = report(audit, "text", *paths)
        assert rc == 1 and "Verdict: NOT INTACT" in text.splitlines()[2], text[:400]
    # without the public key the log's own key is taken: the re-signed log
    # verifies (which is why auditors give --public-key), and says so
    paths = write_files(tmp_path, "resigned", [lines[:-1] + [auditlab.resign_checkpoint(
        lines[-1], other)]])
    rc, out, _ = verify(audit, *paths, key=False)
    assert rc == 1 and "than the one the last start record announced" in out, out


def test_verify_usage_errors(audit, tmp_path):
    assert run("--verify-log")[0] == 2
    assert run("--verify-log", "--since", "2026-01-01", "x")[0] == 2
    assert run("--report", "--format", "pdf", "x")[0] == 2
    assert run("--report", "--since", "yesterday", "x")[0] == 2
    rc, _, err = run("--verify-log", str(tmp_path / "missing.log"))
    assert rc == 2 and "missing.log" in err
    bad_key = tmp_path / "bad.pub"
    bad_key.write_text("not a key\n")
    (tmp_path / "empty.log").write_text("")
    rc, _, err = run("--verify-log", "--public-key", str(bad_key), str(tmp_path / "empty.log"))
    assert rc == 2 and "bad.pub" in err
    rc, out, _ = run("--verify-log", str(tmp_path / "empty.log"))
    assert rc == 1 and "no records" in out


# ---- fail closed ----

def test_disk_full_refuses_new_transactions_and_recovers(lab, tmp_path):
    """The log's file system fills up: a message the relay already took
    still gets its 250 (its record waits in the recorder), new transactions
    get 451 4.3.0, one error line is logged; when there is space again,
    everything waiting is written and service resumes."""
    if os.geteuid() != 0:
        pytest.skip("needs root: a small tmpfs for the log")
    audit = auditlab.AuditLog(tmp_path / "auditwork", small_fs="128k")
    try:
        if not audit.mounted:
            pytest.skip("needs a tmpfs mount: cannot mount one here: %s" % audit.mount_error)
        _disk_full(lab, audit)
    finally:
        audit.remove()


def _disk_full(lab, audit):
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides(required="yes"))
    c = session(sp, lab.certs)
    send_one(c).check(250)
    audit.fill()
    # messages go on until a record does not fit (a partly used page may
    # still take one); each one the relay took was answered 250, and the
    # next MAIL is refused once the recorder said it cannot write
    told = 1
    for _ in range(10):
        r = c.cmd("MAIL FROM:<%s>" % ALICE)
        if r.code == 451:
            break
        r.check(250, "2.1.0")
        c.rcpt(code=250)
        c.data(dot_stuff(make_message()), 250)
        told += 1
    r.check(451, "4.3.0")
    assert len(s.messages()) == told
    d = session(sp, lab.certs)
    d.cmd("MAIL FROM:<%s>" % ALICE, 451, "4.3.0")
    assert sp.wait_log(r"event=audit-log-error .*error=\"No space left on device\"", timeout=10)
    audit.unfill()
    end = time.monotonic() + 20
    while True:
        r = c.cmd("MAIL FROM:<%s>" % ALICE)
        if r.code == 250:
            break
        r.check(451, "4.3.0")
        assert time.monotonic() < end, "service did not resume"
        time.sleep(0.3)
    c.rcpt(code=250)
    c.data(dot_stuff(make_message()), 250)
    told += 1
    assert len(s.messages()) == told
    assert sp.wait_log(r"event=audit-log-writable", timeout=5)
    errors = [ln for ln in sp.lines if "event=audit-log-error" in ln]
    assert len(errors) == 1, "one error line a minute, got:\n%s" % "\n".join(errors)
    c.close()
    d.close()
    sp.stop()
    assert verify(audit)[0] == 0
    rc, rep = report(audit)
    assert rep["messages"]["relayed"] == told
    assert rep["records_lost"] == 0
    unavailable = sum(x["count"] for x in rep["refusals"]
                      if x["reason"] == "audit-log-unavailable")
    assert unavailable >= 2


def test_front_holds_no_descriptor_of_the_log(lab, audit):
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides())
    c = session(sp, lab.certs)
    send_one(c).check(250)

    def targets(pid):
        out = []
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                out.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
            except OSError:
                pass
        return out
    log = os.path.realpath(audit.log)
    front = proc_of(sp, "subproxy-front")
    assert not [t for t in targets(front) if audit.dir in t or t.endswith(".log")], \
        targets(front)
    # the recorder is the one that has it (in its chroot the name is /audit.log)
    rec = proc_of(sp, "subproxy-record")
    assert [t for t in targets(rec) if t == log or t.endswith("/audit.log")], targets(rec)
    assert not [t for t in targets(sp.proc.pid) if t == log], "the parent holds the log"
    # the recorder's sandbox: its seccomp filter, and as root the log's
    # directory as its root and the unprivileged user
    status = Path("/proc/%d/status" % rec).read_text()
    assert re.search(r"^Seccomp:\s+2$", status, re.M), status
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
    if os.geteuid() == 0:
        assert os.readlink("/proc/%d/root" % rec) == audit.dir
        uid = pwd.getpwnam(auditlab.RECORDER_USER).pw_uid
        assert re.search(r"^Uid:\s+%d\s+%d\s+%d\s+%d$" % ((uid,) * 4), status, re.M), status
        # its own user: front's cannot signal it
        front_uid = Path("/proc/%d/status" % front).read_text().split("Uid:")[1].split()[0]
        assert int(front_uid) != uid
    c.close()
    sp.stop()


# ---- rotation ----

def test_rotation_links_the_files(lab, audit):
    """rotate-size and SIGHUP (after the operator moved the file, as
    logrotate does) start new files whose first record links to the last
    one of the previous file; the verifier takes the files in any order
    and finds a missing one."""
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides(**{"rotate-size": "4k"}))
    c = session(sp, lab.certs)
    for _ in range(4):
        send_one(c).check(250)
    assert sp.wait_log(r"event=audit-rotate reason=size", timeout=5)
    os.rename(audit.log, audit.log + ".moved")
    start = len(sp.lines)
    sp.signal(signal.SIGHUP)
    sp._term_sent = False
    assert sp.wait_log(r"event=audit-rotate reason=sighup", timeout=5, start=start)
    send_one(c).check(250)
    # the SIGHUP also reloaded: the new generation's workers record through
    # their own sockets to the same recorder, into the same chain
    assert sp.wait_log(r"event=reloaded generation=2 ", timeout=60, start=start), \
        sp.stderr_text(30)
    c2 = session(sp, lab.certs)
    send_one(c2).check(250)
    c2.close()
    c.close()
    sp.stop()
    files = audit.files()
    assert len(files) >= 3, files
    prev_last = None
    for p in files:
        with open(p, "rb") as f:
            lines = f.read().splitlines()
        first, last = json.loads(lines[0]), json.loads(lines[-1])
        if prev_last is not None:
            assert first["type"] == "open" and first["reason"] in ("size", "sighup"), first
            import hashlib
            assert first["prev"] == hashlib.sha256(prev_last).hexdigest()
        assert last["type"] == "checkpoint", p      # every file ends signed
        prev_last = lines[-1]
    assert verify(audit, *reversed(files))[0] == 0
    rc, out, _ = verify(audit, *(files[:1] + files[2:]))
    assert rc == 1 and "a file of the rotation is missing" in out, out
    assert re.match(r"NOT intact: first bad record \d+ ", out), out
    # the newest files alone (older ones removed, e.g. by retention) verify,
    # and say where they start
    rc, out, _ = verify(audit, *files[1:])
    assert rc == 0 and "starts at record" in out, out
    rc, rep = report(audit)
    assert rep["messages"]["relayed"] == 6 and rep["verdict"]["files"] == len(files)


def _until_mail(c, code, seconds=20):
    """MAIL on c until it gets `code` (the recorder's state reaches front
    within a poll round); the others seen meanwhile are 250 or 451 4.3.0.
    A 250 is ended with RSET."""
    end = time.monotonic() + seconds
    while True:
        r = c.cmd("MAIL FROM:<%s>" % ALICE)
        if r.code == code:
            return r
        if r.code == 250:
            c.cmd("RSET", 250)
        else:
            r.check(451, "4.3.0")
        assert time.monotonic() < end, "MAIL never got %d (last %r)" % (code, r)
        time.sleep(0.2)


def _reopen_fails(lab, audit, obstruct, clear, error):
    """The operator moved the log away and sent SIGHUP, but the recorder
    cannot open the name again (obstruct() made sure of it).  The service
    does not stop: new transactions get 451 4.3.0, one error line is
    logged, and nothing is written anywhere but the log; after clear(), the
    next try opens a new file and mail flows again.  Returns the files."""
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides(required="yes"))
    c = session(sp, lab.certs)
    send_one(c).check(250)
    moved = audit.log + ".1"
    os.rename(audit.log, moved)
    obstruct()
    start = len(sp.lines)
    sp.signal(signal.SIGHUP)
    sp._term_sent = False
    assert sp.wait_log(r"event=audit-log-error file=audit\.log op=open error=\"%s\"" % error,
                       timeout=10, start=start), sp.stderr_text(20)
    _until_mail(c, 451).check(451, "4.3.0")
    session(sp, lab.certs).cmd("MAIL FROM:<%s>" % ALICE, 451, "4.3.0")
    assert sp.proc.poll() is None and proc_of(sp, "subproxy-record")
    clear()
    _until_mail(c, 250)
    c.rcpt(code=250)
    c.data(dot_stuff(make_message()), 250)
    assert sp.wait_log(r"event=audit-log-writable", timeout=5, start=start)
    assert len(s.messages()) == 2
    c.close()
    sp.stop()
    errors = [ln for ln in sp.lines[start:] if "event=audit-log-error" in ln]
    assert len(errors) == 1, "one error line a minute, got:\n%s" % "\n".join(errors)
    files = audit.files()
    assert files == [moved, audit.log], files
    with open(audit.log, "rb") as f:
        first = json.loads(f.readline())
    assert first["type"] == "open" and first["reason"] == "sighup", first
    assert verify(audit)[0] == 0
    rc, rep = report(audit)
    assert rep["messages"]["relayed"] == 2 and rep["records_lost"] == 0
    assert sum(x["count"] for x in rep["refusals"]
               if x["reason"] == "audit-log-unavailable") >= 2
    return files


def _recorders(path):
    """Give path to the recorder's user (the log directory's owner), so that
    only the recorder's own checks keep it from using it."""
    st = os.stat(os.path.dirname(path))
    os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)


def test_rotation_onto_a_symlink_fails_closed_and_recovers(lab, audit):
    """The attacker's find: a symbolic link in the log's place at rotation
    made the recorder exit and the whole service stop.  Now it is refused
    (O_NOFOLLOW), the service fails closed until the name is free, and the
    file the link points to, which the recorder could write, is never
    written."""
    decoy = os.path.join(audit.dir, "decoy")
    with open(decoy, "wb") as f:
        f.write(b"not the log\n")
    os.chmod(decoy, 0o600)
    _recorders(decoy)

    def obstruct():
        os.symlink("decoy", audit.log)
        _recorders(audit.log)
    _reopen_fails(lab, audit, obstruct, lambda: os.unlink(audit.log),
                  "Too many levels of symbolic links")
    with open(decoy, "rb") as f:
        assert f.read() == b"not the log\n"


def test_rotation_onto_a_fifo_fails_closed_and_recovers(lab, audit):
    """A FIFO in the log's place: opened without waiting, found not to be a
    regular file, closed unwritten; the service fails closed until it is
    gone."""
    def obstruct():
        os.mkfifo(audit.log, 0o600)
        _recorders(audit.log)
    _reopen_fails(lab, audit, obstruct, lambda: os.unlink(audit.log),
                  "a FIFO, not a regular file")


def test_rotation_without_space_for_a_file_fails_closed_and_recovers(lab, tmp_path):
    """No inode left for the new file at rotation (ENOSPC on create): the
    service fails closed until a file can be made."""
    if os.geteuid() != 0:
        pytest.skip("needs root: a small tmpfs for the log")
    audit = auditlab.AuditLog(tmp_path / "auditwork", small_fs="1m", inodes=64)
    try:
        if not audit.mounted:
            pytest.skip("needs a tmpfs mount: cannot mount one here: %s" % audit.mount_error)
        _reopen_fails(lab, audit, lambda: audit.fill_inodes() or None, audit.unfill_inodes,
                      "No space left on device")
    finally:
        audit.remove()


# ---- pseudonyms ----

def test_pseudonymized_log_still_counts(lab, audit, tmp_path):
    import hashlib
    keyf = tmp_path / "pseudo.key"
    raw = os.urandom(32)
    fd = os.open(keyf, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, raw)
    os.close(fd)
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides(pseudonymize="yes",
                                                   **{"pseudonymize-key": keyf}))
    c = session(sp, lab.certs)
    send_one(c).check(250)
    c.cmd("MAIL FROM:<%s>" % BOB, 553, "5.7.1")
    c.close()
    d = RawClient(sp.implicit_port, lab.certs.ca)
    d.greeting.check(220)
    d.ehlo()
    d.auth_plain(BOB, "wrong", code=535, enh="5.7.8")
    d.close()
    sp.stop()
    text = Path(audit.log).read_text()
    for secret in (ALICE, BOB, RCPT, "alice", "<" + BOB):
        assert secret not in text, "%s is in the pseudonymized log" % secret
    key = hashlib.blake2b(raw, digest_size=32).digest()

    def pseudo(v):
        return "h:" + hashlib.blake2b(v.encode(), digest_size=16, key=key).hexdigest()
    recs = audit.records()
    validate_all(recs)
    txn = next(r for r in recs if r["type"] == "txn")
    assert txn["login"] == pseudo(ALICE) and txn["from"] == pseudo(ALICE)
    assert txn["client"] == pseudo("127.0.0.1")
    assert txn["rcpts"][0]["addr"] == pseudo(RCPT) and "text" not in txn["rcpts"][0]
    assert "text" not in txn["final"]
    assert next(r for r in recs if r["type"] == "start")["pseudonymized"] is True
    refusal = next(r for r in recs if r["type"] == "refusal")
    assert "text" not in refusal and refusal["reason"] == "sender-not-owned"
    rc, rep = report(audit)
    assert rep["senders"] == {pseudo(ALICE): 1}
    assert rep["auth"]["per_login"][pseudo(BOB)]["failed"] == 1


# ---- the HTML report ----

class Balanced(HTMLParser):
    """Every element closed in order (void elements excepted)."""
    VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes %s" % (tag, self.stack[-1:] or "nothing"))
        else:
            self.stack.pop()


def test_html_report_is_one_well_formed_file_with_charts(lab, audit):
    import xml.etree.ElementTree as ET
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides())
    c = session(sp, lab.certs)
    send_one(c).check(250)
    c.cmd("MAIL FROM:<%s>" % BOB, 553, "5.7.1")
    c.mail()
    c.rcpt(code=250)
    c.data(b"From: <alice@lab.test>\r\n\r\nx\nbare LF\r\n.\r\n", 550, "5.6.0")
    c.close()
    sp.stop()
    rc, html = report(audit, "html")
    assert rc == 0
    p = Balanced()
    p.feed(html)
    p.close()
    assert not p.errors and not p.stack, (p.errors, p.stack)
    assert html.startswith("<!DOCTYPE html>")
    tags = [t for t, _ in p.tags]
    assert "script" not in tags and "iframe" not in tags and "link" not in tags
    for _tag, attrs in p.tags:
        assert not {"src", "href"} & set(attrs), attrs       # nothing loaded from elsewhere
    assert "@import" not in html and "url(" not in html
    titles = re.findall(r"<svg [^>]*><title>([^<]*)</title>", html)
    assert {"Messages per hour", "Refusals by reason", "Client TLS versions"} <= set(titles)
    for svg in re.findall(r"<svg .*?</svg>", html, re.S):
        ET.fromstring(svg)       # each chart is well-formed XML
    assert "@media print" in html and "@page" in html
    # the verdict comes first
    assert html.index("Log intact") < html.index("<h2>")


# ---- configuration, --check, --dns-records, start-up ----

def test_check_and_dns_records_show_the_key_and_the_log(lab, audit):
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides())
    c = session(sp, lab.certs)
    send_one(c).check(250)
    c.close()
    sp.stop()
    conf = str(sp.config_path)
    ov = sum((["-o", o] for o in audit.overrides()), [])
    rc, out, err = run("-c", conf, *ov, "--check", "--json")
    st = {c["id"]: c for c in json.loads(out)["checks"]}
    assert st["audit.log"]["status"] == "pass", st["audit.log"]
    assert st["audit.key"]["status"] == "pass", st["audit.key"]
    assert auditlab.public_b64(audit.key) in st["audit.key"]["summary"]
    rc, out, err = run("-c", conf, *ov, "--dns-records")
    assert rc == 0, err
    pem = "\n".join(ln[2:] for ln in out.splitlines() if ln.startswith("; ") and "-----" in ln
                    or (ln.startswith("; ") and re.fullmatch(r"; [A-Za-z0-9+/=]+", ln)))
    assert auditlab.public_pem(audit.key).decode().split("\n")[1] in pem, out
    # the public key as printed is what --verify-log takes
    pub = Path(audit.work) / "printed.pub"
    pub.write_text("".join(ln[2:] + "\n" for ln in out.splitlines()
                           if ln.startswith("; ") and (ln[2:7] == "-----" or
                                                       re.fullmatch(r"[A-Za-z0-9+/=]+", ln[2:]))))
    rc, out, err = run("--verify-log", "--public-key", str(pub), *audit.files())
    assert rc == 0, out + err
    # a log directory others may write to fails the check
    os.chmod(audit.dir, 0o777)
    try:
        rc, out, _ = run("-c", conf, *ov, "--check", "--json")
        st = {c["id"]: c for c in json.loads(out)["checks"]}
        assert st["audit.log"]["status"] in ("fail", "warn") and \
            "writable by" in st["audit.log"]["summary"], st["audit.log"]
    finally:
        os.chmod(audit.dir, 0o700)


MINIMAL = """[server]
hostname = mail.lab.test
[listen "s"]
address = 127.0.0.1:4650
tls = implicit
[tls]
certificate = /nonexistent/c.pem
key = /nonexistent/k.pem
[auth]
passwd-file = /nonexistent/passwd
[relay "r"]
host = relay.lab.test
[dkim "lab.test"]
key = ed /nonexistent/ed.key
"""


def test_configuration_errors_name_the_line(tmp_path, audit):
    base = tmp_path / "c.conf"
    line = MINIMAL.count("\n") + 1         # the line of [audit]
    for audit_text, at, words in [
            ("log = %s\n" % audit.log, line, "signing-key"),
            ("log = relative.log\nsigning-key = k\n", line, "absolute"),
            ("log = /x/a.log\nsigning-key = k\npseudonymize = yes\n", line,
             "pseudonymize-key"),
            ("recheck = 60\nsigning-key = k\n", line + 2, "'signing-key' needs 'log = FILE'")]:
        base.write_text(MINIMAL + "[audit]\n" + audit_text)
        rc, _, err = run("-c", str(base), "--check")
        assert rc == 2 and "c.conf:%d:" % at in err and words in err, (audit_text, err)
    # [audit] recheck alone is the self-audit's, not the log's
    base.write_text(MINIMAL + "[audit]\nrecheck = 60\n")
    rc, _, err = run("-c", str(base), "--check")
    assert rc != 2, err
    base.write_text(MINIMAL + "[audit]\nlog = /x/a.log\nsigning-key = k\nrequired = maybe\n")
    rc, _, err = run("-c", str(base), "--check")
    assert rc == 2 and "c.conf:%d:" % (line + 3) in err and "yes or no" in err, err
    base.write_text(MINIMAL + "[audit]\nlog = /x/a.log\nsigning-key = k\nrotate-size = 10\n")
    rc, _, err = run("-c", str(base), "--check")
    assert rc == 2 and "rotate-size" in err, err


def test_unusable_log_or_key_refuses_the_start(lab, audit, tmp_path):
    s = lab.sink()
    os.chmod(audit.key_file, 0o644)
    sp = lab.subproxy(s, overrides=audit.overrides(), wait=False)
    sp.expect_exit(1)
    assert any("refusing to start" in ln and "chmod 600" in ln for ln in sp.lines), \
        sp.stderr_text(20)
    os.chmod(audit.key_file, 0o600)
    if os.geteuid() == 0:
        os.chown(audit.dir, 0, 0)       # not the recorder's user's
        sp = lab.subproxy(s, overrides=audit.overrides(), wait=False)
        sp.expect_exit(1)
        assert any("refusing to start" in ln and audit.dir in ln and "owned by" in ln
                   for ln in sp.lines), sp.stderr_text(20)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the change to the recorder's user")
def test_recorder_has_a_user_of_its_own(lab, audit):
    """[server] recorder-user: the self-audit fails one that is missing,
    root, or front's user (front could signal the log's holder), and a
    recorder that cannot become it refuses the start."""
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides())
    sp.stop()
    conf = str(sp.config_path)
    ov = sum((["-o", o] for o in audit.overrides()), [])

    def check(user):
        rc, out, err = run("-c", conf, *ov, "-o", "server.recorder-user=%s" % user, "--check",
                           "--json")
        return {c["id"]: c for c in json.loads(out)["checks"]}["sandbox.recorder-user"]
    assert check(auditlab.RECORDER_USER)["status"] == "pass"
    for user, words in (("nobody", "the network process's user"), ("root", "root's powers"),
                        ("no-such-user-subproxy", "does not exist")):
        c = check(user)
        assert c["status"] == "fail" and words in c["summary"], (user, c)
        assert "recorder-user" in c["remedy"], c
    # without an audit log there is no recorder and nothing to check
    rc, out, _ = run("-c", conf, "--check", "--json")
    assert "sandbox.recorder-user" not in {c["id"] for c in json.loads(out)["checks"]}
    sp = lab.subproxy(s, overrides=audit.overrides(), server={
        "recorder-user": "no-such-user-subproxy"}, wait=False)
    sp.expect_exit(1, timeout=30)
    text = sp.stderr_text()
    assert "refusing to start" in text and "no-such-user-subproxy" in text, text[-2000:]


def test_refused_start_and_a_dead_recorder_are_in_the_log(lab, audit):
    """A start the self-audit refuses is recorded (start with result fail,
    stop refused); the recorder dying stops the service (fail closed); the
    next start continues the same chain."""
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides() + ["server.profile=bsi-tr-03108"],
                      wait=False)
    sp.expect_exit(1, timeout=40)
    recs = audit.records()
    start = next(r for r in recs if r["type"] == "start")
    assert start["self_audit"]["result"] == "fail" and start["self_audit"]["failed"]
    assert [r["type"] for r in recs[-2:]] == ["stop", "checkpoint"]
    assert recs[-2]["reason"] == "refused"
    assert verify(audit)[0] == 0
    # a running service whose recorder is killed stops
    sp = lab.subproxy(s, overrides=audit.overrides())
    c = session(sp, lab.certs)
    send_one(c).check(250)
    os.kill(proc_of(sp, "subproxy-record"), signal.SIGKILL)
    sp.expect_exit(1)
    assert sp.wait_log(r"event=child-died process=recorder", timeout=1)
    rc, out, _ = verify(audit)
    assert rc == 1 and "did not stop cleanly" in out, out
    # and the next run goes on from the last record that was written
    sp = lab.subproxy(s, overrides=audit.overrides())
    c = session(sp, lab.certs)
    send_one(c).check(250)
    c.close()
    sp.stop()
    rc, out, _ = verify(audit)
    assert rc == 0, out
    recs = audit.records()
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert sum(1 for r in recs if r["type"] == "start") == 3
    assert len([r for r in recs if r["type"] == "txn"]) == 2


def test_recorder_beats_for_the_watchdog(lab, audit, tmp_path, monkeypatch, dns_lab,
                                         passwd_file):
    """Under a service manager's watchdog the recorder's loop beats like the
    others: WATCHDOG=1 goes on while it runs, and stops while it is stuck."""
    from opsutil import NotifySocket
    ns = NotifySocket(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", ns.env)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    try:
        sp = lab.subproxy(lab.sink(), overrides=audit.overrides(), wait=False)
        ns.wait("READY", "1", timeout=30)
        for _ in range(3):
            ns.wait("WATCHDOG", "1", timeout=4)
        rec = proc_of(sp, "subproxy-record")
        sigstop(rec)
        try:
            assert sp.wait_log(r"event=watchdog process=recorder .*not notifying", timeout=8)
        finally:
            os.kill(rec, signal.SIGCONT)
        assert sp.wait_log(r"event=watchdog every process beats again", timeout=8)
        sp.signal(signal.SIGTERM)
        sp.wait_exit()
    finally:
        ns.close()
