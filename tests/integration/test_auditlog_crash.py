"""
The audit log's durability (issue 11 item 4): a record the recorder
acknowledges is on disk, and a crash of the recorder loses none of them.

- The order in the running recorder, seen with strace: no acknowledgement
  leaves it while a write to the log has not been made durable by
  fdatasync (group commit: write, fdatasync, then the acks).
- The recorder killed with SIGKILL while transactions stream through:
  the service stops (fail closed); every message the relay took was
  confirmed 250 to its client, and each such transaction has its record
  in the log unless front logged event=audit-record-missing for its
  session (the recorder died before acknowledging it) -- so no record the
  recorder acknowledged is missing.  A line the crash left half written
  is cut off at the next start (event=audit-log-repair), the chain goes
  on, and --verify-log finds the whole log intact.
"""

import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from helpers import ALICE, RCPT, ConnectionClosed, dot_stuff, logged_in, make_message
from test_auditlog import audit, proc_of, report, validate_all, verify  # noqa: F401

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0,
                               reason="needs root: tracing the recorder (not dumpable)")
WORKERS = 6                     # clients sending at the same time
PER_WORKER = 40                 # messages each at most


def _message(i, k):
    mid = "<crash.%d.%d.%d@lab.test>" % (i, k, time.monotonic_ns())
    return mid, make_message(subject="crash %d %d" % (i, k), message_id=False,
                             headers=("Message-ID: %s" % mid,))


def _sender(c, i, told):
    """Messages on logged-in client c until the service stops; told[mid]
    is the final reply code (or None: the connection ended before one
    came)."""
    try:
        for k in range(PER_WORKER):
            mid, msg = _message(i, k)
            r = c.cmd("MAIL FROM:<%s>" % ALICE)
            if r.code != 250:
                return
            if c.cmd("RCPT TO:<%s>" % RCPT).code != 250:
                return
            told[mid] = None
            told[mid] = c.data(dot_stuff(msg)).code
    except (OSError, ConnectionClosed):
        return
    finally:
        c.close()


def test_recorder_crash_loses_no_acknowledged_record(lab, audit):
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides(**{"checkpoint-records": 100000}))
    told = {}
    threads = [threading.Thread(target=_sender, args=(logged_in(sp.implicit_port, lab.certs.ca),
                                                      i, told), daemon=True)
               for i in range(WORKERS)]
    for t in threads:
        t.start()
    end = time.monotonic() + 30
    while sum(1 for v in list(told.values()) if v == 250) < 2 * WORKERS:
        assert time.monotonic() < end, "messages do not go through: %s" % sp.stderr_text(20)
        time.sleep(0.01)
    os.kill(proc_of(sp, "subproxy-record"), signal.SIGKILL)
    for t in threads:
        t.join(60)
    sp.expect_exit(1, timeout=60)
    assert sp.wait_log(r"event=child-died process=recorder", timeout=1)
    # what the clients were told against what the relay got
    relayed = {}
    for m in s.messages():
        mid = re.search(rb"(?im)^Message-ID: (<crash\.[^>]*>)", m["data"]).group(1).decode()
        relayed[mid] = re.search(rb"(?m) id ([0-9a-f]{16})\.\d+", m["data"]).group(1).decode()
    confirmed = {mid for mid, code in told.items() if code == 250}
    assert confirmed == set(relayed), "a relayed message was not confirmed, or the reverse"
    assert all(code in (250, 421, 451, None) for code in told.values()), told
    # every confirmed transaction is in the log, or front said its record
    # is missing (the recorder died before acknowledging it)
    lines = audit.lines()
    text = "\n".join(lines)
    missing = {m.group(1) for m in re.finditer(
        r"session=([0-9a-f]{16}) event=audit-record-missing status=dead", "\n".join(sp.lines))}
    in_log = {mid for mid in confirmed if mid in text}
    assert in_log, "no transaction record at all"
    for mid in confirmed - in_log:
        assert relayed[mid] in missing, "%s was confirmed and acknowledged by the recorder " \
            "(front logged nothing), but its record is not in the log" % mid
    # the crash may have cut the last line short; make sure of it (a write
    # the SIGKILL interrupted leaves exactly this), then the next start
    # repairs the file and the chain goes on
    with open(audit.log, "rb") as f:
        data = f.read()
    if data.endswith(b"\n"):
        with open(audit.log, "ab") as f:
            f.write(lines[-1].encode()[:57])
    rc, out, _ = verify(audit)
    assert rc == 1 and "NOT intact" in out, out
    records_before = len(lines)
    sp = lab.subproxy(s, overrides=audit.overrides())
    assert sp.wait_log(r"event=audit-log-repair .*cut=\d+", timeout=5), sp.stderr_text(20)
    c = logged_in(sp.implicit_port, lab.certs.ca)
    c.mail()
    c.rcpt(code=250)
    c.data(dot_stuff(make_message()), 250)
    c.close()
    sp.stop()
    rc, out, err = verify(audit)
    assert rc == 0, out + err
    recs = audit.records()
    validate_all(recs)
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert len(recs) > records_before
    after = "\n".join(audit.lines())
    for mid in in_log:
        assert mid in after
    rc, rep = report(audit)
    assert rep["verdict"]["intact"] and rep["messages"]["relayed"] == len(in_log) + 1


def _strace():
    path = shutil.which("strace")
    if path is None:
        pytest.fail("strace is missing (make deps installs it: GNUmakefile DEB_TEST)",
                    pytrace=False)
    return path


ACK_FRAME = 22          # src/proc.h header (12) + PROC_AUDIT_ACK (status, writable, u64 seq)


HEX = r"((?:\\x[0-9a-f]{2})*)"
CALL = re.compile(r"^(\w+)\(\d+<%s>(?:, \{msg_name=[^,]*, msg_namelen=\d+, msg_iov=\[\{iov_base=)?"
                  r'(?:, )?(?:"%s")?' % (HEX, HEX))


def _unhex(text):
    return bytes.fromhex((text or "").replace("\\x", ""))


def _calls(path):
    """(name, the descriptor's path, its first data argument, whether it
    returned 0) of each system call in a strace -y -xx file."""
    for line in path.read_text().splitlines():
        m = CALL.match(line)
        if m:
            yield m.group(1), _unhex(m.group(2)), _unhex(m.group(3)), line.endswith("= 0")


@ROOT_ONLY
def test_acknowledged_only_after_fdatasync(lab, audit, tmp_path):
    """The recorder's system calls while transactions stream in: the
    acknowledgement of record N (sendmsg of a PROC_AUDIT_ACK carrying N)
    comes after a write to the log that holds record N and an fdatasync
    of the log after that write."""
    strace = _strace()
    s = lab.sink()
    sp = lab.subproxy(s, overrides=audit.overrides())
    rec = proc_of(sp, "subproxy-record")
    out = tmp_path / "rec.trace"
    tr = subprocess.Popen([strace, "-qq", "-y", "-xx", "-s", "1000000", "-e",
                           "trace=write,fdatasync,sendmsg", "-o", str(out), "-p", str(rec)],
                          stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 10
        while "TracerPid:\t0" in open("/proc/%d/status" % rec).read():
            assert time.monotonic() < end, "strace did not attach"
            time.sleep(0.02)
        told = {}
        threads = [threading.Thread(target=_sender, args=(
            logged_in(sp.implicit_port, lab.certs.ca), i, told), daemon=True) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(1 for v in told.values() if v == 250) == 3 * PER_WORKER
    finally:
        tr.send_signal(signal.SIGINT)
        tr.wait(10)
    sp.stop()
    written, synced, acked = set(), set(), []
    for name, fdpath, data, zero in _calls(out):
        if fdpath.endswith(b"/audit.log") and name == "write":
            written |= {int(n) for n in re.findall(rb'"seq":(\d+)', data)}
        elif fdpath.endswith(b"/audit.log") and name == "fdatasync" and zero:
            synced |= written
            written = set()
        elif name == "sendmsg" and fdpath.startswith(b"socket:"):
            if len(data) == ACK_FRAME and data[12] == 0:            # RECORDER_WRITTEN
                seq = int.from_bytes(data[-8:], "big")
                acked.append(seq)
                assert seq in synced, "record %d acknowledged before it was written and " \
                    "made durable" % seq
    assert len(acked) >= 3 * PER_WORKER, len(acked)
