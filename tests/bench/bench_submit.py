#!/usr/bin/python3
"""
bench_submit.py -- end-to-end submission throughput and memory (`make bench`).

Builds the same loopback world as `make demo` (DNSSEC lab, TLS relay sink,
DKIM keys), starts subproxy, and submits a bounded number of messages over a
bounded number of concurrent TLS sessions (AUTH PLAIN, one message per
session, as mail clients do).  Prints messages per second, the latency
percentiles, and the peak resident memory of each subproxy process.
Bounded in count and time; everything started is stopped.

    bench_submit.py [--subproxy build/subproxy] [--messages 400]
                    [--concurrency 16] [--size 4096]
"""

import argparse
import base64
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))

import dkimkeys  # noqa: E402
import dnslab  # noqa: E402
import sink as labsink  # noqa: E402
from labutil import free_port, remove_chroot, sandbox_keys  # noqa: E402

USER, PASSWORD = "alice@lab.test", "bench-password"


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("closed")
        lines.append(line)
        if line[3:4] != b"-":
            return int(line[:3]), lines


def submit(port, ctx, msg, per_session):
    t0 = time.monotonic()
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    s = ctx.wrap_socket(raw, server_hostname="mail.lab.test")
    f = s.makefile("rb")
    auth = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
    try:
        assert read_reply(f)[0] == 220
        s.sendall(b"EHLO bench.lab.test\r\n")
        assert read_reply(f)[0] == 250
        s.sendall(b"AUTH PLAIN " + auth + b"\r\n")
        assert read_reply(f)[0] == 235
        ok = 0
        for _ in range(per_session):
            # one pipelined transaction
            s.sendall(b"MAIL FROM:<%s>\r\nRCPT TO:<bob@remote.test>\r\nBDAT %d LAST\r\n" %
                      (USER.encode(), len(msg)) + msg)
            codes = [read_reply(f)[0] for _ in range(3)]
            ok += codes == [250, 250, 250]
        s.sendall(b"QUIT\r\n")
        read_reply(f)
        return ok, time.monotonic() - t0
    finally:
        s.close()


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subproxy", default=os.path.join(HERE, "..", "..", "build", "subproxy"))
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--per-session", type=int, default=1,
                    help="messages per authenticated session")
    ap.add_argument("--max-seconds", type=float, default=120)
    args = ap.parse_args()
    binary = os.path.abspath(args.subproxy)
    work = tempfile.mkdtemp(prefix="subproxy-bench-")
    sp = sink = dns = None
    try:
        ca = labsink.LabCA()
        ca_file = ca.write_ca(os.path.join(work, "ca.pem"))
        mail_cert, mail_key = ca.issue("mail.lab.test", work, "mail")
        relay_cert, relay_key = ca.issue("relay.lab.test", work, "relay")
        keys = dkimkeys.LabDkim(os.path.join(work, "dkim"), domains=("lab.test",))
        sink = labsink.Sink(relay_cert, relay_key, os.path.join(work, "sink")).start()
        port = free_port()
        dns = dnslab.DnsLab(os.path.join(work, "dns"))
        dns.add("lab.test", "*._tcp.mail 300 TLSA %s" % labsink.tlsa_311(mail_cert))
        dns.add("lab.test", "*._tcp.relay 300 TLSA %s" % labsink.tlsa_311(relay_cert))
        dns.start()
        hashed = subprocess.run([binary, "--hash-password"], input=PASSWORD.encode(),
                                capture_output=True, check=True).stdout.decode().strip()
        passwd = os.path.join(work, "passwd")
        fd = os.open(passwd, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, ("%s:%s\n" % (USER, hashed)).encode())
        os.close(fd)
        conf = os.path.join(work, "subproxy.conf")
        with open(conf, "w") as f:
            f.write("[server]\nhostname = mail.lab.test\n" + sandbox_keys(work) +
                    '[listen "submissions"]\naddress = 127.0.0.1:%d\ntls = implicit\n'
                    "[tls]\ncertificate = %s\nkey = %s\n[auth]\npasswd-file = %s\n"
                    '[relay "lab"]\nhost = relay.lab.test\nport = %d\n%s'
                    "[dns]\nunbound-config = %s\ntrust-anchor-file = %s\n"
                    "[limits]\nconnections-per-ip = 1000\n" % (
                        port, mail_cert, mail_key, passwd, sink.port, keys.config(),
                        dns.unbound_conf, dns.trust_anchor_file))
        log = open(os.path.join(work, "subproxy.log"), "w")
        sp = subprocess.Popen([binary, "-c", conf], stdout=log, stderr=log)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        ctx = ssl.create_default_context(cafile=ca_file)
        body = b"x" * 76 + b"\r\n"
        msg = (b"From: <%s>\r\nTo: <bob@remote.test>\r\nSubject: bench\r\n\r\n" % USER.encode() +
               body * max(1, args.size // len(body)))
        lat, fails, done = [], [0], [0]
        lock = threading.Lock()
        sessions_left = [max(1, args.messages // args.per_session)]
        deadline = time.monotonic() + args.max_seconds

        def worker():
            while time.monotonic() < deadline:
                with lock:
                    if sessions_left[0] == 0:
                        return
                    sessions_left[0] -= 1
                try:
                    ok, dt = submit(port, ctx, msg, args.per_session)
                except Exception:  # noqa: BLE001 - counted
                    ok, dt = 0, 0
                with lock:
                    done[0] += ok
                    fails[0] += args.per_session - ok
                    if ok:
                        lat.append(dt)

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        lat.sort()
        pids = [sp.pid] + [int(p) for p in os.listdir("/proc") if p.isdigit() and
                           open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[1]
                           == str(sp.pid)]
        mem = {}
        for pid in pids:
            with open("/proc/%d/comm" % pid) as f:
                mem[f.read().strip()] = rss_kib(pid)

        def pct(p):
            return lat[min(len(lat) - 1, int(len(lat) * p))] * 1000 if lat else 0
        print("submit %d x %d B messages, %d per session, %d concurrent TLS sessions "
              "(AUTH PLAIN/Argon2id, BDAT, DKIM Ed25519+RSA, DANE relay): %.1f messages/s, "
              "%d failed" % (done[0], len(msg), args.per_session, args.concurrency,
                             done[0] / elapsed, fails[0]))
        print("session latency ms: p50 %.1f  p90 %.1f  p99 %.1f" % (pct(0.5), pct(0.9),
                                                                     pct(0.99)))
        print("peak RSS KiB: " + ", ".join("%s %d" % kv for kv in sorted(mem.items())))
        return 0 if fails[0] == 0 else 1
    finally:
        if sp is not None:
            sp.terminate()
            try:
                sp.wait(30)
            except subprocess.TimeoutExpired:
                sp.kill()
                sp.wait()
        if sink is not None:
            sink.stop()
        if dns is not None:
            dns.stop()
        remove_chroot(work)
        subprocess.run(["rm", "-rf", work], check=False)


if __name__ == "__main__":
    sys.exit(main())
