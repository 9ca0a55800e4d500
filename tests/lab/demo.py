#!/usr/bin/python3
"""
demo.py -- `make demo`: subproxy end to end on loopback, from nothing.

1. a throw-away CA with certificates for mail.lab.test (subproxy) and
   relay.lab.test (the relay sink), and DKIM keys (Ed25519 + RSA) for lab.test;
2. a DNSSEC-signed lab zone lab.test served by nsd on 127.0.0.1, holding the
   TLSA records of subproxy's listeners and of the relay, and the DKIM keys;
3. a TLS relay sink (STARTTLS) that stores what it receives;
4. subproxy, configured with `dane = required` for the relay: it validates the
   relay's A and TLSA records itself (libunbound, the lab's trust anchor) and
   refuses to start unless its own TLSA records match its certificate;
5. swaks submits a message on the implicit-TLS listener with AUTH PLAIN;
6. the relayed message is printed with its DKIM signatures verified (dkimpy),
   and the DANE verdicts of both legs;
7. subproxy is stopped, its audit log verified (--verify-log with the audit
   key's public half) and the compliance report printed (--report).
Everything runs in a temporary directory and is stopped at the end.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import auditlab  # noqa: E402
import dkimkeys  # noqa: E402
import dnslab  # noqa: E402
import sink as labsink  # noqa: E402
from labutil import free_port, remove_chroot, sandbox_keys  # noqa: E402

SERVER = "mail.lab.test"
RELAY = "relay.lab.test"
USER, PASSWORD = "alice@lab.test", "demo-password"


def _status(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def _ppid(pid):
    return int(_status(pid).get("PPid", "0").strip() or 0)


def say(title):
    print("\n\033[1m== %s\033[0m" % title if sys.stdout.isatty() else "\n== %s" % title)


def wait_listening(proc, ports, timeout=20):
    end = time.monotonic() + timeout
    for port in ports:
        while True:
            if proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > end:
                    return False
                time.sleep(0.05)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--subproxy", default=os.path.join(HERE, "..", "..", "build", "subproxy"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    binary = os.path.abspath(args.subproxy)
    work = tempfile.mkdtemp(prefix="subproxy-demo-")
    procs, sink, dns, audit = [], None, None, None
    rc = 1
    try:
        say("certificates and DKIM keys (made now, in %s)" % work)
        ca = labsink.LabCA()
        ca_file = ca.write_ca(os.path.join(work, "ca.pem"))
        mail_cert, mail_key = ca.issue(SERVER, work, "mail")
        relay_cert, relay_key = ca.issue(RELAY, work, "relay")
        keys = dkimkeys.LabDkim(os.path.join(work, "dkim"), domains=("lab.test",))
        print("CA %s\nsubproxy %s\nrelay %s\nDKIM %s" % (
            ca_file, mail_cert, relay_cert, ", ".join(sorted(k["file"] for k in keys.keys.values()))))
        audit = auditlab.AuditLog(os.path.join(work, "audit"))
        print("audit log %s, its signing key %s (public half %s)" % (
            audit.log, audit.key_file, audit.pub_file))

        say("relay sink (STARTTLS, certificate for %s)" % RELAY)
        sink = labsink.Sink(relay_cert, relay_key, os.path.join(work, "sink"),
                            mode="starttls").start()
        print("listening on 127.0.0.1:%d" % sink.port)

        ports = (free_port(), free_port())
        say("DNSSEC lab zone lab.test (nsd on 127.0.0.1)")
        dns = dnslab.DnsLab(os.path.join(work, "dns"))
        for p in ports:
            dns.add("lab.test", "_%d._tcp.mail 300 TLSA %s" % (p, labsink.tlsa_311(mail_cert)))
        dns.add("lab.test", "_%d._tcp.relay 300 TLSA %s" % (sink.port, labsink.tlsa_311(relay_cert)))
        for (dom, sel), k in keys.keys.items():
            dns.add("lab.test", "%s._domainkey 300 TXT %s" % (sel, k["txt"]))
        dns.start()
        print("nsd on 127.0.0.1:%d, trust anchor %s" % (dns.port, dns.trust_anchor_file))
        for name in ("_%d._tcp.relay.lab.test" % sink.port, "_%d._tcp.mail.lab.test" % ports[0]):
            a = dns.query(name, "TLSA", via="libunbound")
            print("  %s TLSA %s  [%s]" % (name, " / ".join(a.rdata), a.status))

        say("subproxy")
        hashed = subprocess.run([binary, "--hash-password"], input=PASSWORD.encode(),
                                capture_output=True, check=True).stdout.decode().strip()
        passwd = os.path.join(work, "passwd")
        fd = os.open(passwd, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, ("%s:%s\n" % (USER, hashed)).encode())
        os.close(fd)
        conf = os.path.join(work, "subproxy.conf")
        with open(conf, "w") as f:
            f.write("""[server]
hostname = %(server)s
%(sandbox)s

[listen "submissions"]
address = 127.0.0.1:%(p0)d
tls = implicit

[listen "submission"]
address = 127.0.0.1:%(p1)d
tls = starttls

[tls]
certificate = %(cert)s
key = %(key)s

[auth]
passwd-file = %(passwd)s

[relay "lab"]
host = %(relay)s
port = %(rport)d
tls = starttls
dane = required

%(dkim)s
[dns]
unbound-config = %(ubconf)s
trust-anchor-file = %(ta)s

%(audit)s""" % {"server": SERVER, "p0": ports[0], "p1": ports[1], "cert": mail_cert, "key": mail_key,
                    "passwd": passwd, "relay": RELAY, "rport": sink.port, "dkim": keys.config(),
                    "ubconf": dns.unbound_conf, "ta": dns.trust_anchor_file,
                    "sandbox": sandbox_keys(work), "audit": audit.section()})
        print(open(conf).read())
        say("self-audit: subproxy --check (the daemon runs the same checks at start)")
        chk = subprocess.run([binary, "-c", conf, "--check"], capture_output=True, text=True,
                             timeout=120)
        print(chk.stdout + chk.stderr)
        log_path = os.path.join(work, "subproxy.log")
        log = open(log_path, "w")
        sp = subprocess.Popen([binary, "-c", conf], stdin=subprocess.DEVNULL,
                              stdout=log, stderr=log)
        procs.append(sp)
        if not wait_listening(sp, ports):
            log.flush()
            print(open(log_path).read())
            print("subproxy did not start")
            return 1

        say("swaks submits a message (implicit TLS, AUTH PLAIN)")
        msg = ("From: Alice <%s>\r\nTo: <bob@remote.test>\r\nSubject: subproxy demo\r\n"
               "\r\nHello from the subproxy demo.\r\n" % USER)
        swaks = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(ports[0]), "--tlsc",
             "--tls-verify", "--tls-ca-path", ca_file, "--tls-sni", SERVER,
             "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
             "--from", USER, "--to", "bob@remote.test", "--data", msg[:-2], "--timeout", "20"],
            capture_output=True, text=True, timeout=60)
        print(re.sub(r"(AUTH PLAIN) \S+", r"\1 ***", swaks.stdout.replace(PASSWORD, "***")))
        if swaks.returncode != 0:
            print(swaks.stderr)

        say("what the relay received")
        sink.wait_for(lambda sk: sk.messages(), timeout=10)
        stored = sink.messages()
        if not stored:
            print("nothing was relayed")
            return 1
        m = stored[0]
        print("MAIL FROM:<%s>  RCPT TO:%s  via %s, %s %s, SNI %s" % (
            m.get("mail_from"), m.get("rcpts"), m.get("method"), m.get("tls_version"),
            m.get("tls_cipher"), m.get("sni")))
        print(m["data"].decode("utf-8", "replace"))

        say("DKIM (verified with dkimpy against the lab's public keys)")
        for dom, sel, ok in keys.verify(m["data"]):
            print("  d=%s s=%s: %s" % (dom, sel, "pass" if ok else "FAIL"))

        say("DANE verdicts (from subproxy's log)")
        log.flush()
        for line in open(log_path):
            if re.search(r"own-tlsa|verified|relay probe|event=relayed", line):
                print("  " + line.rstrip())
        say("processes and their sandbox (/proc/PID/status)")
        pids = [sp.pid] + [int(p) for p in os.listdir("/proc") if p.isdigit() and
                           _ppid(int(p)) == sp.pid]
        for pid in pids:
            st = _status(pid)
            try:
                root = os.readlink("/proc/%d/root" % pid)
            except OSError:
                root = "?"
            print("  %-16s pid %-7d uid %-6s Seccomp %s  NoNewPrivs %s  root %s" % (
                st.get("Name", "?"), pid, st.get("Uid", "?").split()[0],
                st.get("Seccomp", "?"), st.get("NoNewPrivs", "?"), root))
        ok = swaks.returncode == 0 and all(x[2] for x in keys.verify(m["data"]))

        say("audit log: stop subproxy, then subproxy --verify-log --public-key")
        sp.terminate()
        sp.wait(30)
        procs.remove(sp)
        files = audit.files()
        ver = subprocess.run([binary, "--verify-log", "--public-key", audit.pub_file] + files,
                             capture_output=True, text=True, timeout=60)
        print(ver.stdout + ver.stderr)
        for line in audit.lines()[:4]:
            print("  " + (line if len(line) < 200 else line[:197] + "..."))
        print("  ... (%d records)" % len(audit.lines()))
        say("compliance report: subproxy --report --public-key (text; also json, html)")
        rep = subprocess.run([binary, "--report", "--public-key", audit.pub_file] + files,
                             capture_output=True, text=True, timeout=60)
        print(rep.stdout + rep.stderr)
        ok = ok and ver.returncode == 0 and rep.returncode == 0
        rc = 0 if ok else 1
        say("demo %s" % ("succeeded" if ok else "FAILED"))
        return rc
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if sink is not None:
            sink.stop()
        if dns is not None:
            dns.stop()
        if audit is not None and not args.keep:
            audit.remove()
        remove_chroot(work)
        if not args.keep:
            subprocess.run(["rm", "-rf", work], check=False)
        else:
            print("kept %s" % work)


if __name__ == "__main__":
    sys.exit(main())
