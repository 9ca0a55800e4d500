"""
test_auditlog_gone.py -- a client that leaves after the end of its message
was written to the relay, before the relay's final reply, leaves a `txn`
record whose outcome is unknown (attacker session, 2026-12-04).

Front drops the relay leg with the session.  A real relay has usually
queued the message by then and delivers it; the session used to take its
transaction's facts with it, so a message went out with no record and the
report could not tell that one was missing.  Now the record is written with
"final": {"code": null, "enh": null, "unknown": "session-ended", ...}: no
reply was awaited, and nothing pretends the relay gave one
(doc/audit-log.md).  The verifier accepts it; the report counts it apart,
neither relayed nor failed, and lists it.
"""

import json
import re
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import auditlab
import hostile
import sink as labsink
from conftest import subproxy_binary
from helpers import ALICE, RCPT, RawClient, dot_stuff, make_message
from opsutil import wait_for

pytestmark = pytest.mark.sanitized

SCHEMA = Path(__file__).resolve().parents[2] / "doc" / "audit-log.schema.json"


@pytest.fixture
def audit(tmp_path):
    a = auditlab.AuditLog(tmp_path / "auditwork")
    yield a
    a.remove()


def run(*args):
    r = subprocess.run([subproxy_binary(), *args], capture_output=True, text=True, timeout=60,
                       check=False)
    return r.returncode, r.stdout, r.stderr


def holding_relay(lab, audit, verb, held):
    """A relay that holds its reply to verb ("FINAL": to the end of the
    message, which it stores first) until it stops, and subproxy on it."""
    def hold(conn, line, st):
        if verb == "FINAL":
            hostile.store(conn, st, conn.relay)
        held.append(conn)
        conn.relay.stopping.wait(hostile.READ_TIMEOUT)
        raise hostile.Drop("held")

    r = hostile.HostileRelay(lab.certs.relay, lab.certs.relay_key, {verb: hold}).start()
    try:
        sp = lab.subproxy({"port": r.port, "tls": "implicit",
                           "tlsa": labsink.tlsa_311(lab.certs.relay)},
                          overrides=audit.overrides(), limits={"relay-timeout": 60},
                          server={"workers": 1})
    except BaseException:
        r.stop()
        raise
    return r, sp


def logged_in(sp, lab):
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.login()
    return c


def send_message(c, subject):
    """One transaction up to and with the end of its message; the reply
    is left to the relay's hold."""
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.cmd("DATA", 354)
    c.send(dot_stuff(make_message(subject=subject)))


def reset(c, sp):
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    assert sp.wait_log(r"event=drop .*reason=\"(read: Connection reset|client closed)",
                       timeout=30)


def test_client_gone_before_the_end_went_to_the_relay_leaves_none(lab, audit):
    """The relay holds its 354: the end of the message never went to it,
    front closes its connection, the relay cannot deliver: no record."""
    held = []
    r, sp = holding_relay(lab, audit, "DATA", held)
    try:
        c = logged_in(sp, lab)
        send_message(c, "gone before the end")
        wait_for(lambda: held, timeout=30, what="the relay holding its 354")
        reset(c, sp)
        sp.stop()
        assert not sp.wait_log(r"event=audit-outcome-unknown", timeout=0.1)
    finally:
        r.stop()
    assert not r.messages
    assert [x for x in audit.records() if x["type"] == "txn"] == []


def test_client_gone_before_the_final_reply_leaves_a_record(lab, audit):
    held = []
    r, sp = holding_relay(lab, audit, "FINAL", held)
    try:
        c = logged_in(sp, lab)
        # a transaction dropped before the end of the message went to the
        # relay (RSET after RCPT) leaves none: the relay cannot have it
        c.mail(ALICE)
        c.rcpt(RCPT, code=250)
        c.cmd("RSET", 250)
        send_message(c, "gone before the reply")
        wait_for(lambda: len(r.messages) == 1 and held, timeout=30,
                 what="the message at the relay, its reply held")
        reset(c, sp)
        assert sp.wait_log(r"event=audit-outcome-unknown reason=session-ended", timeout=30)
        sp.stop()
    finally:
        r.stop()
    recs = audit.records()
    txns = [x for x in recs if x["type"] == "txn"]
    assert len(txns) == 1, [x["type"] for x in recs]
    fin = txns[0]["final"]
    assert fin["unknown"] == "session-ended" and fin["code"] is None and fin["enh"] is None, fin
    assert txns[0]["v"] == 4
    schema = Draft202012Validator(json.loads(SCHEMA.read_text()))
    for x in recs:
        errors = sorted(schema.iter_errors(x), key=str)
        assert not errors, "record %s does not match the schema: %s" % (x, errors[0])
    assert txns[0]["relay"]["dane"]["verdict"] in ("ok-ee", "ok-ta")
    assert txns[0]["sha256"] is not None and len(txns[0]["dkim"]) >= 1
    rc, out, err = run("--verify-log", "--public-key", audit.pub_file, *audit.files())
    assert rc == 0, out + err
    rc, out, err = run("--report", "--public-key", audit.pub_file, "--format", "json",
                       *audit.files())
    rep = json.loads(out)
    msgs = rep["messages"]
    assert msgs["handed_to_relay"] == 1 and msgs["outcome_unknown"] == 1, msgs
    assert msgs["relayed"] == 0 and msgs["failed_at_relay"] == 0, msgs
    assert [u["session"] for u in msgs["unknown"]] == [txns[0]["session"]], msgs
    rc, out, err = run("--report", "--public-key", audit.pub_file, *audit.files())
    assert re.search(r"\n  outcome unknown +1\n", out), out
    assert re.search(r"record \d+ \S+ session %s: outcome unknown \(session-ended\)" %
                     txns[0]["session"], out), out
    rc, out, err = run("--report", "--public-key", audit.pub_file, "--format", "html",
                       *audit.files())
    assert "outcome unknown (session ended before the relay&#39;s reply)" in out or \
        "outcome unknown (session ended before the relay's reply)" in out
