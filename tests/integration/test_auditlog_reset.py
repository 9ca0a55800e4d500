"""
test_auditlog_reset.py -- a relayed message keeps its audit record when its
client goes away before the record is written (attacker session h46).

The client hears the relay's final reply only once the recorder has
acknowledged the transaction's record (doc/design.md, "One submission").
A client that resets meanwhile ends its session, and the session's end
cancelled the record's callback -- and with it the record itself when it
still waited in front's queue for room in the recorder's socket: the
message was at the relay, and the audit log never heard of it.  A recorder
that falls behind (a slow disk) is exactly when clients time out and
close, so this needs no attacker.

The recorder is stopped (SIGSTOP) and a logged-in session fills its socket
with refusal records (MAIL with a sender it does not own: each one is a
record, at most RECORDER_BULK_MAX = 256 of them unanswered), so the
transaction's record of another session waits in front's queue behind
them; that client resets once the sink has the message; then the recorder
goes on.  The transaction's record must be in the log.
"""

import os
import re
import signal
import socket
import struct
import subprocess

import pytest

import auditlab
from helpers import ALICE, RCPT, dot_stuff, logged_in, make_message
from opsutil import children, sigstop, wait_for

BULK_MAX = 256                  # src/recorder.h RECORDER_BULK_MAX


def socket_inodes(pid):
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            continue
        if m:
            out.add(m.group(1))
    return out


def socket_full(front, recorder):
    """Whether front's socket to the recorder is full: the kernel refuses
    a send while the memory its frames take (skmem t) reaches the send
    buffer (tb)."""
    mine, theirs = socket_inodes(front), socket_inodes(recorder)
    out = subprocess.run(["ss", "-x", "-a", "-n", "-m"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        m = re.search(r"skmem:\(r\d+,rb\d+,t(\d+),tb(\d+),", line)
        if len(f) >= 8 and f[0] == "u_seq" and f[5] in mine and f[7] in theirs and m:
            return int(m.group(1)) >= int(m.group(2))
    raise AssertionError("no socket from front %d to the recorder %d" % (front, recorder))


@pytest.fixture
def audit(tmp_path):
    a = auditlab.AuditLog(tmp_path / "auditwork")
    yield a
    a.remove()


@pytest.mark.sanitized
def test_record_of_a_relayed_message_outlives_its_client(lab, audit):
    sink = lab.sink()
    sp = lab.subproxy(sink, overrides=audit.overrides() + ["server.workers=1"],
                      limits={"protocol-errors": 1000})
    ca = lab.certs.ca
    victim = logged_in(sp.implicit_port, ca)
    filler = logged_in(sp.implicit_port, ca)
    victim.mail()
    victim.rcpt(RCPT, code=250)
    victim.cmd("DATA", 354)
    msg = make_message(subject="record me")
    kids = children(sp.proc.pid)
    recorder, front = kids["subproxy-record"], kids["subproxy-front"]   # comm: 15 characters
    sigstop(recorder)
    try:
        # long refusal records: the socket holds fewer than BULK_MAX of them
        # (net.core.wmem_default, 208 KiB by default), the rest wait in front
        bad = "x" * 60 + "@" + "y" * 60 + ".lab.test"
        n = BULK_MAX + 20
        filler.send(b"MAIL FROM:<%s>\r\n" % bad.encode() * n)
        for _ in range(n):
            filler.read_reply().check(553, "5.7.1")
        victim.send(dot_stuff(msg))
        wait_for(lambda: len(sink.messages()) == 1, timeout=30, what="the message at the sink")
        # the transaction's record waits in front's queue behind the refusals
        assert socket_full(front, recorder)
        # the client gives up before the record is written: a reset
        victim.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        victim.close()
        assert sp.wait_log(r"event=drop .*reason=\"(read: Connection reset|client closed)",
                           timeout=30)
    finally:
        os.kill(recorder, signal.SIGCONT)
    filler.cmd("QUIT", 221)
    sp.stop()
    recs = audit.records()
    txns = [r for r in recs if r["type"] == "txn"]
    assert len(txns) == 1, [r["type"] for r in recs]
    assert txns[0]["final"]["code"] == 250
