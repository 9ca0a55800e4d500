#!/usr/bin/python3
"""
rollover.py -- the DANE certificate rollover of doc/dane-rollover.md, run
for real on loopback, printing what the document shows: `subproxy --check`
at each step, the daemon's reload lines, and which certificate a new client
gets.  Regenerate the document's output with

    /usr/bin/python3 tests/lab/rollover.py [--subproxy build/subproxy]

The lab: a throw-away CA, the current and the next certificate for
mail.lab.test (each with its own key), DKIM keys, a DNSSEC-signed lab zone
served by nsd on 127.0.0.1 (tests/lab/dnslab.py), a relay sink.  The
listeners have public-port 465 and 587, so the TLSA names are the real
ones (_465._tcp.mail.lab.test).  Everything runs in a temporary directory
and is stopped at the end.
"""

import argparse
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import dkimkeys  # noqa: E402
import dnslab  # noqa: E402
import sink as labsink  # noqa: E402
from labutil import free_port, remove_chroot, sandbox_keys  # noqa: E402

SERVER = "mail.lab.test"
RELAY = "relay.lab.test"
TTL = 1         # the lab's TLSA TTL (seconds); in production: wait the real TTL


class Lab:
    def __init__(self, binary, work):
        self.binary, self.work = binary, work
        self.ca = labsink.LabCA()
        self.ca_file = self.ca.write_ca(os.path.join(work, "ca.pem"))
        self.current = self.ca.issue(SERVER, work, "current")
        self.next = self.ca.issue(SERVER, work, "next")
        relay = self.ca.issue(RELAY, work, "relay")
        self.dkim = dkimkeys.LabDkim(os.path.join(work, "dkim"), domains=("lab.test",))
        self.sink = labsink.Sink(relay[0], relay[1], os.path.join(work, "sink"),
                                 mode="starttls").start()
        self.ports = (free_port(), free_port())
        self.dns = dnslab.DnsLab(os.path.join(work, "dns"), ttl=TTL)
        for port in (465, 587):
            self.dns.add("lab.test", "_%d._tcp.mail %d TLSA %s" % (
                port, TTL, labsink.tlsa_311(self.current[0])))
        self.dns.add("lab.test", "_%d._tcp.relay %d TLSA %s" % (
            self.sink.port, TTL, labsink.tlsa_311(relay[0])))
        for (_dom, sel), k in self.dkim.keys.items():
            self.dns.add("lab.test", "%s._domainkey %d TXT %s" % (sel, TTL, k["txt"]))
        self.dns.add("lab.test", "_submission._tcp %d SRV 0 1 587 mail.lab.test." % TTL)
        self.dns.add("lab.test", "_submissions._tcp %d SRV 0 1 465 mail.lab.test." % TTL)
        self.dns.start()
        hashed = subprocess.run([binary, "--hash-password"], input=b"rollover\n",
                                capture_output=True, check=True).stdout.decode().strip()
        self.passwd = os.path.join(work, "passwd")
        fd = os.open(self.passwd, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, ("alice@lab.test:%s\n" % hashed).encode())
        os.close(fd)
        self.conf = os.path.join(work, "subproxy.conf")
        self.sandbox = sandbox_keys(work)
        self.write_conf(self.current)

    def write_conf(self, cert):
        with open(self.conf, "w") as f:
            f.write("""[server]
hostname = %s
%s
[listen "submissions"]
address = 127.0.0.1:%d
public-port = 465
tls = implicit

[listen "submission"]
address = 127.0.0.1:%d
public-port = 587
tls = starttls

[tls]
certificate = %s
key = %s

[auth]
passwd-file = %s

[relay "lab"]
host = %s
address = 127.0.0.1
port = %d
dane = required

%s
[dns]
unbound-config = %s
trust-anchor-file = %s
""" % (SERVER, self.sandbox, self.ports[0], self.ports[1], cert[0], cert[1],
                    self.passwd, RELAY, self.sink.port, self.dkim.config(),
                    self.dns.unbound_conf, self.dns.trust_anchor_file))

    def tlsa(self, cert):
        return labsink.tlsa_311(cert[0])

    def publish(self, cert):
        for port in (465, 587):
            self.dns.add("lab.test", "_%d._tcp.mail %d TLSA %s" % (port, TTL, self.tlsa(cert)))
        self.dns.reload()

    def only(self, cert):
        """The listeners' TLSA records become just cert's."""
        for port in (465, 587):
            self.dns.remove("lab.test", "_%d._tcp.mail" % port, "TLSA")
        self.publish(cert)

    def check(self, *extra):
        """subproxy --check, reduced to the lines about the certificate."""
        r = subprocess.run([self.binary, "-c", self.conf, "--check"] + list(extra),
                           capture_output=True, text=True, timeout=120)
        keep, fix = [], False
        for ln in r.stdout.replace(self.work, "/etc/subproxy").splitlines():
            if re.match(r"(pass|warn|FAIL|skip)\s+(tls\.key\.match|dane\.own\.)", ln) or \
                    re.match(r"(subproxy self-audit|result:)", ln):
                keep.append(ln)
                fix = True
            elif fix and re.match(r"\s+fix: ", ln):
                keep.append(ln)
            else:
                fix = False
        return r.returncode, keep, r.stdout

    def served(self):
        """The certificate a new client gets on the implicit-TLS listener."""
        import socket
        ctx = ssl.create_default_context(cafile=self.ca_file)
        with socket.create_connection(("127.0.0.1", self.ports[0]), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname=SERVER) as t:
                der = t.getpeercert(binary_form=True)
        for name, cert in (("current", self.current), ("next", self.next)):
            pem = open(cert[0]).read()
            first = pem[:pem.index("-----END CERTIFICATE-----") + 25]
            if ssl.PEM_cert_to_DER_cert(first) == der:
                return name
        return "unknown"

    def close(self):
        self.sink.stop()
        self.dns.stop()


WORK = None


def show(title, lines):
    print("\n## " + title)
    print("\n".join("    " + ln.replace(WORK, "/etc/subproxy") for ln in lines))


def wait_line(log, rx, start, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines = open(log).read().splitlines()[start:]
        for ln in lines:
            if re.search(rx, ln):
                return ln
        time.sleep(0.1)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--subproxy", default=os.path.join(HERE, "..", "..", "build", "subproxy"))
    args = ap.parse_args()
    binary = os.path.abspath(args.subproxy)
    global WORK
    work = WORK = tempfile.mkdtemp(prefix="subproxy-rollover-")
    lab, sp = None, None
    try:
        lab = Lab(binary, work)
        log = os.path.join(work, "subproxy.log")

        rc, lines, _ = lab.check()
        show("step 0: today, only the current key is published (exit %d)" % rc, lines)
        sp = subprocess.Popen([binary, "-c", lab.conf], stdin=subprocess.DEVNULL,
                              stdout=open(log, "w"), stderr=subprocess.STDOUT)
        if not wait_line(log, r"event=ready ", 0):
            print(open(log).read())
            return 1
        print("    (daemon started; a new client gets the %s certificate)" % lab.served())

        r = subprocess.run([binary, "-c", lab.conf, "--dns-records", "-o",
                            "tls.certificate=%s" % lab.next[0], "-o", "tls.key=%s" % lab.next[1]],
                           capture_output=True, text=True, timeout=60)
        show("step 1: the next key's record, from subproxy --dns-records with the next "
             "certificate", [ln for ln in r.stdout.splitlines() if "TLSA 3 1 1" in ln])
        lab.publish(lab.next)
        time.sleep(TTL + 1)
        rc, lines, _ = lab.check()
        show("step 1: both keys published; --check still on the current certificate "
             "(exit %d)" % rc, lines)
        rc, lines, _ = lab.check("-o", "tls.certificate=%s" % lab.next[0],
                                 "-o", "tls.key=%s" % lab.next[1])
        show("step 1: --check with the next certificate, before the swap (exit %d)" % rc, lines)

        lab.write_conf(lab.next)
        start = len(open(log).read().splitlines())
        sp.send_signal(signal.SIGHUP)
        line = wait_line(log, r"event=(reloaded|reload-failed)", start)
        show("step 2: the swap: configuration points at the next certificate, SIGHUP",
             [re.sub(r"^\S+ ", "", ln) for ln in open(log).read().splitlines()[start:]
              if re.search(r"subproxy\[\d+\] \w+: event=(sighup|reload|reloaded)", ln)])
        print("    (a new client gets the %s certificate)" % lab.served())
        rc, lines, _ = lab.check()
        show("step 2: --check after the swap (exit %d)" % rc, lines)
        if not line or "reloaded" not in line:
            return 1

        lab.only(lab.next)
        time.sleep(TTL + 1)
        rc, lines, _ = lab.check()
        show("step 3: the old key's record withdrawn (after the TTL and the drain) "
             "(exit %d)" % rc, lines)

        # the mistake the procedure prevents: a certificate whose key is not
        # published goes live -- refused
        third = lab.ca.issue(SERVER, work, "unpublished")
        lab.write_conf(third)
        rc, lines, _ = lab.check()
        show("the mistake: a renewal whose key is not in TLSA, --check (exit %d)" % rc, lines)
        start = len(open(log).read().splitlines())
        sp.send_signal(signal.SIGHUP)
        wait_line(log, r"event=reload-failed", start)
        show("the mistake: SIGHUP is refused",
             [re.sub(r"^\S+ ", "", ln) for ln in open(log).read().splitlines()[start:]
              if re.search(r"subproxy\[\d+\] \w+: event=(sighup|reload)", ln)])
        print("    (a new client still gets the %s certificate)" % lab.served())
        return 0
    finally:
        if sp is not None and sp.poll() is None:
            sp.terminate()
            try:
                sp.wait(30)
            except subprocess.TimeoutExpired:
                sp.kill()
        if lab is not None:
            lab.close()
        remove_chroot(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
