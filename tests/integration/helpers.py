"""
helpers.py -- clients, message builders and checks shared by the integration
tests.  No fixtures here (those are in conftest.py); nothing here starts a
process.

Names used throughout the lab:
  mail.lab.test    subproxy's own certificate name (clients verify it)
  relay.lab.test   the relay sink's certificate name (SNI toward the relay)
  alice@lab.test   may send as alice@lab.test and anything @alias.lab.test
  bob@lab.test     no [senders] entry: may send only as bob@lab.test
"""

import base64
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time
import weakref

SERVER_NAME = "mail.lab.test"
RELAY_NAME = "relay.lab.test"
CLIENT_NAME = "client.lab.test"
ALICE, ALICE_PW = "alice@lab.test", "alice-secret"
BOB, BOB_PW = "bob@lab.test", "bob-secret"
USERS = {ALICE: ALICE_PW, BOB: BOB_PW}
SENDERS = {ALICE: "alice@lab.test, @alias.lab.test"}
RCPT = "rcpt@remote.test"
TIMEOUT = 15            # seconds for any single network read in a test

ENH_RE = re.compile(r"^[245]\.[0-9]{1,3}\.[0-9]{1,3}$")

# every RawClient not yet closed; conftest closes them after each test so
# that a failed test cannot leak connections into the next (per-IP limits)
OPEN_CLIENTS = weakref.WeakSet()


def close_all_clients():
    for c in list(OPEN_CLIENTS):
        c.close()


# ---- ports ----

def free_port():
    """A port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port():
    """A port where nothing listens: a socket bound but not listening holds
    it, so connecting is refused.  Returns (port, socket); keep the socket
    open as long as the port must stay closed."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1], s


# ---- TLS ----

def client_context(ca_file):
    """A client TLS context that trusts only the lab CA and checks the name."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# ---- replies ----

class Reply:
    """A complete SMTP reply: code, the text of every line, enhanced code of
    the first line ("" if none), and the raw bytes."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines
        self.raw = raw
        first = lines[0].split(" ", 1)[0] if lines and lines[0] else ""
        self.enh = first if ENH_RE.match(first) else ""

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def keywords(self):
        """EHLO keywords (upper case, first word of each line after the first)."""
        return [ln.split(" ", 1)[0].upper() for ln in self.lines[1:]]

    def ehlo_param(self, keyword):
        for ln in self.lines[1:]:
            w = ln.split(" ")
            if w[0].upper() == keyword.upper():
                return w[1:]
        return None

    def __repr__(self):
        return "Reply(%r)" % self.raw

    def check(self, code, enh=None):
        assert self.code == code, "expected %s %s, got %r" % (code, enh or "", self.raw)
        if enh is not None:
            assert self.enh == enh, "expected %s %s, got %r" % (code, enh, self.raw)
            for ln in self.lines:
                assert ln.startswith(enh + " ") or ln == enh, \
                    "every line must carry %s: %r" % (enh, self.raw)
        return self


class ConnectionClosed(AssertionError):
    pass


class RawClient:
    """A byte-exact SMTP client.  implicit=True starts TLS at once (port 465
    style); otherwise call starttls().  Every read has a timeout; the
    greeting is read by the constructor.  source: a local address to
    connect from (e.g. "127.0.0.2", to look like another client); proxy:
    bytes sent first, before TLS (a PROXY protocol header)."""

    def __init__(self, port, ca_file, implicit=True, host="127.0.0.1", timeout=TIMEOUT,
                 read_greeting=True, source=None, proxy=None):
        self.ctx = client_context(ca_file)
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if proxy:
            self.sock.sendall(proxy)
        self.buf = b""
        self.tls = False
        OPEN_CLIENTS.add(self)
        if implicit:
            self._wrap()
        self.greeting = self.read_reply() if read_greeting else None

    def _wrap(self):
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname=SERVER_NAME)
        self.tls = True

    def close(self):
        OPEN_CLIENTS.discard(self)
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- bytes --

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            chunk = b""
        except socket.timeout:
            raise AssertionError("no complete reply within %ss; have %r" %
                                 (self.timeout, self.buf)) from None
        if not chunk:
            raise ConnectionClosed("connection closed by the server; unread %r" % self.buf)
        self.buf += chunk

    def read_line(self):
        while b"\r\n" not in self.buf:
            if b"\n" in self.buf:
                raise AssertionError("reply line without CR: %r" % self.buf)
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_reply(self):
        """Read one complete (possibly multi-line) reply and check its form."""
        lines, raw, code = [], b"", None
        while True:
            line = self.read_line()
            raw += line + b"\r\n"
            m = re.fullmatch(rb"([2-5][0-9][0-9])(?:([ -])(.*))?", line, re.S)
            assert m, "malformed reply line %r" % line
            c = int(m.group(1))
            assert code is None or c == code, "code changed inside a reply: %r" % raw
            code = c
            lines.append((m.group(3) or b"").decode("utf-8", "replace"))
            if m.group(2) != b"-":
                return Reply(code, lines, raw)

    def pending(self, wait=0.3):
        """Bytes the server sent that nobody read yet (waits up to `wait` s)."""
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
            self.buf += chunk
        except (socket.timeout, ssl.SSLWantReadError):
            pass
        except (ConnectionResetError, ssl.SSLError, OSError):
            pass
        finally:
            self.sock.settimeout(self.timeout)
        return self.buf

    def expect_closed(self, timeout=None):
        """Assert that the server closes the connection (no more replies)."""
        self.sock.settimeout(timeout or self.timeout)
        try:
            while True:
                try:
                    chunk = self.sock.recv(65536)
                except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
                    chunk = b""
                if not chunk:
                    break
                self.buf += chunk
        except socket.timeout:
            raise AssertionError("the server did not close the connection") from None
        finally:
            self.sock.settimeout(self.timeout)
        self.close()
        assert self.buf == b"", "unexpected bytes before close: %r" % self.buf

    def read_until_closed(self):
        """All replies until the server closes the connection (then closed
        here too)."""
        replies = []
        while True:
            try:
                replies.append(self.read_reply())
            except ConnectionClosed:
                self.close()
                return replies

    # -- commands --

    def cmd(self, line, code=None, enh=None):
        """Send one command line (CRLF added) and read its reply; check it
        when code (and enh) are given."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        r = self.read_reply()
        if code is not None:
            r.check(code, enh)
        return r

    def ehlo(self, name=CLIENT_NAME):
        return self.cmd("EHLO " + name, 250)

    def starttls(self):
        self.cmd("STARTTLS", 220, "2.0.0")
        assert self.buf == b"", "bytes after the STARTTLS reply: %r" % self.buf
        self._wrap()

    def auth_plain(self, user=ALICE, password=ALICE_PW, code=235, enh="2.7.0"):
        tok = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        return self.cmd("AUTH PLAIN " + tok, code, enh)

    def login(self, user=ALICE, password=ALICE_PW):
        """EHLO (after STARTTLS if needed) and AUTH PLAIN."""
        if not self.tls:
            self.ehlo()
            self.starttls()
        self.ehlo()
        self.auth_plain(user, password)
        return self

    def mail(self, sender=ALICE, params="", code=250, enh="2.1.0"):
        return self.cmd("MAIL FROM:<%s>%s" % (sender, " " + params if params else ""), code, enh)

    def rcpt(self, to=RCPT, params="", code=250, enh=None):
        return self.cmd("RCPT TO:<%s>%s" % (to, " " + params if params else ""), code, enh)

    def data(self, payload, code=None, enh=None):
        """DATA, then payload exactly as given (it must include the end of
        data itself); returns the final reply."""
        self.cmd("DATA", 354)
        self.send(payload)
        r = self.read_reply()
        if code is not None:
            r.check(code, enh)
        return r

    def bdat(self, chunk, last=False, code=None, enh=None):
        self.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
        r = self.read_reply()
        if code is not None:
            r.check(code, enh)
        return r


def half_sent(c, subject, sender=ALICE):
    """MAIL, RCPT and DATA on a logged-in client, then the message without
    its final ".\r\n", which is returned (send it to finish)."""
    c.mail(sender)
    c.rcpt(RCPT, code=250)
    c.cmd("DATA", 354)
    payload = dot_stuff(make_message(sender=sender, subject=subject))
    c.send(payload[:-3])
    return payload[-3:]


def logged_in(port, ca_file, user=ALICE, password=ALICE_PW):
    """A RawClient on an implicit-TLS port, greeted and logged in."""
    c = RawClient(port, ca_file)
    c.greeting.check(220)
    return c.login(user, password)


def raw_starttls_client(port, ca_file, **kw):
    """A RawClient on a STARTTLS port, still in plaintext after the greeting."""
    return RawClient(port, ca_file, implicit=False, **kw)


# ---- smtplib ----

class LabSMTP_SSL(smtplib.SMTP_SSL):
    """SMTP_SSL that checks the certificate for mail.lab.test while connecting
    to 127.0.0.1."""

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((host, port), timeout, self.source_address)
        return self.context.wrap_socket(sock, server_hostname=SERVER_NAME)


def smtp_implicit(port, ca_file):
    return LabSMTP_SSL("127.0.0.1", port, local_hostname=CLIENT_NAME,
                       context=client_context(ca_file), timeout=TIMEOUT)


def smtp_starttls(port, ca_file):
    c = smtplib.SMTP("127.0.0.1", port, local_hostname=CLIENT_NAME, timeout=TIMEOUT)
    c._host = SERVER_NAME       # the name starttls() checks the certificate for
    code, _ = c.ehlo()
    assert code == 250
    assert c.has_extn("starttls")
    code, resp = c.starttls(context=client_context(ca_file))
    assert code == 220, resp
    code, _ = c.ehlo()
    assert code == 250
    return c


def smtp_auth_plain(client, user=ALICE, password=ALICE_PW):
    """EHLO if not done yet, then AUTH PLAIN with an initial response;
    asserts 235 2.7.0."""
    client.ehlo_or_helo_if_needed()
    tok = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    code, resp = client.docmd("AUTH", "PLAIN " + tok)
    assert (code, resp.split(b" ", 1)[0]) == (235, b"2.7.0"), (code, resp)


# ---- messages ----

def make_message(sender=ALICE, to=RCPT, subject="lab test", body=None, *,
                 message_id=True, date=True, headers=(), from_header=None):
    """A CRLF message.  body: bytes or str (lines joined with CRLF); the
    message always ends in CRLF."""
    h = []
    h.append("From: %s" % (from_header if from_header is not None else "<%s>" % sender))
    h.append("To: <%s>" % to)
    h.append("Subject: %s" % subject)
    if date:
        h.append("Date: Mon, 02 Jan 2023 10:00:00 +0000")
    if message_id:
        h.append("Message-ID: <%d.%s>" % (time.monotonic_ns(), "test@lab.test"))
    h.extend(headers)
    if body is None:
        body = "Hello from the lab.\r\nSecond line.\r\n"
    if isinstance(body, str):
        body = body.encode("utf-8")
    head = ("\r\n".join(h) + "\r\n\r\n").encode("utf-8")
    msg = head + body
    if not msg.endswith(b"\r\n"):
        msg += b"\r\n"
    return msg


def dot_stuff(msg):
    """SMTP DATA transparency (RFC 5321 4.5.2) plus the end of data.  msg
    must use CRLF line ends and end in CRLF."""
    assert msg.endswith(b"\r\n")
    out = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in msg.split(b"\r\n"))
    return out + b".\r\n"


def header_fields(head):
    """Split a header block (bytes, CRLF lines) into [(name, value)] with
    folded lines joined."""
    fields = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            assert fields, "continuation without a field: %r" % head
            n, v = fields[-1]
            fields[-1] = (n, v + b"\r\n" + line)
            continue
        assert b":" in line, "not a header field: %r" % line
        n, v = line.split(b":", 1)
        fields.append((n.decode("ascii"), v))
    return fields


DKIM_KEYS = []     # the session's dkimkeys.LabDkim (set by conftest)


def check_relayed(stored, submitted, *, added_message_id, added_date, dkim_domain=None):
    """The relay got the submitted bytes unchanged, preceded only by the
    header fields subproxy adds: DKIM-Signature (one per key of the From
    domain, first, each verified with dkimpy against the lab's public keys),
    then Received (exactly one) and, when the client's message lacked them,
    Message-ID and Date.  Returns the added fields [(name, value)]."""
    assert stored.endswith(submitted), \
        "message changed on the way:\nsubmitted %r...\nstored    %r..." % (
            submitted[:200], stored[-len(submitted) - 200:][:400])
    prefix = stored[:len(stored) - len(submitted)]
    assert prefix.endswith(b"\r\n"), "added header block does not end in CRLF: %r" % prefix
    fields = header_fields(prefix)
    names = [n.lower() for n, _ in fields]
    nsig = 0
    while nsig < len(names) and names[nsig] == "dkim-signature":
        nsig += 1
    assert nsig == 2, "expected 2 DKIM-Signature fields (Ed25519 + RSA) first: %r" % names
    rest = names[nsig:]
    assert rest and rest[0] == "received", "first field after the signatures is not " \
        "Received: %r" % prefix
    expect = ["received"] + (["message-id"] if added_message_id else []) + \
        (["date"] if added_date else [])
    assert sorted(rest) == sorted(expect), "added fields %r, expected %r" % (rest, expect)
    rcvd = fields[nsig][1].decode("utf-8", "replace")
    assert SERVER_NAME in rcvd, "Received does not name %s: %r" % (SERVER_NAME, rcvd)
    for line in prefix.split(b"\r\n")[:-1]:
        assert len(line) <= 998, "added header line too long"
    assert DKIM_KEYS, "no lab DKIM keys known"
    results = DKIM_KEYS[0].verify(stored)
    assert len(results) == 2 and all(ok for (_d, _s, ok) in results), \
        "DKIM verification failed: %r" % results
    if dkim_domain is not None:
        assert {d for (d, _s, _ok) in results} == {dkim_domain}, results
    assert {s for (_d, s, _ok) in results} == {"ed", "rsa"}, results
    return fields


def submit_through(port, ca_file, code, enh=None, source=None):
    """Log in as alice on an implicit-TLS port and try one message: MAIL,
    and when that is accepted RCPT and DATA.  The last reply must be
    code/enh (enh None: not checked); returns it.  source: see RawClient."""
    c = RawClient(port, ca_file, source=source)
    c.greeting.check(220)
    c.login()
    r = c.cmd("MAIL FROM:<%s>" % ALICE)
    if r.code == 250:
        c.rcpt(RCPT, code=250)
        r = c.data(dot_stuff(make_message()))
    assert r.code == code, r
    if enh is not None:
        assert r.enh == enh, r
    c.cmd("QUIT", 221)
    return r


# ---- processes ----

def proc_status(pid):
    """/proc/PID/status as a dict of strings."""
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def rss_kib(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nofile_limits(pid):
    """(soft, hard) RLIMIT_NOFILE of a running process."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open-files line in /proc/%d/limits" % pid)


def set_nofile(pid, soft):
    """Set the soft descriptor limit of a running process (the hard one
    stays) with prlimit(1).  A root without CAP_SYS_RESOURCE (as in some
    containers) may not change another user's process, so prlimit runs with
    the target's own uid and gid, which the kernel allows."""
    st = proc_status(pid)
    uid, gid = st["Uid"].split()[0], st["Gid"].split()[0]
    cmd = ["prlimit", "--pid", str(pid), "--nofile=%d:" % soft]
    if os.geteuid() == 0 and uid != "0":
        cmd = ["setpriv", "--reuid=" + uid, "--regid=" + gid, "--clear-groups"] + cmd
    r = subprocess.run(cmd, capture_output=True, timeout=10, check=False)
    assert r.returncode == 0, "%s: %s" % (" ".join(cmd), r.stderr.decode())
    assert nofile_limits(pid)[0] == soft


# ---- swaks ----

def swaks(port, ca_file, msg, workdir, *, implicit, sender=ALICE, to=RCPT, user=ALICE,
          password=ALICE_PW, server_name=SERVER_NAME, extra=()):
    """Submit msg (bytes, CRLF, ending in CRLF) with swaks and AUTH PLAIN,
    verifying the server certificate for server_name.  swaks does the dot
    transparency itself and ends the data with CRLF "." CRLF, so it gets
    the message without its final CRLF.  Returns the CompletedProcess
    (stdout holds the transcript)."""
    assert msg.endswith(b"\r\n") and b"%" not in msg   # swaks replaces %TOKENS%
    data_file = os.path.join(str(workdir), "swaks-%d.eml" % time.monotonic_ns())
    with open(data_file, "wb") as f:
        f.write(msg[:-2])
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(port),
           "--tlsc" if implicit else "--tls", "--tls-verify", "--tls-ca-path", str(ca_file),
           "--tls-sni", server_name,
           "--ehlo", CLIENT_NAME, "--auth", "PLAIN", "--auth-user", user,
           "--auth-password", password, "--from", sender, "--to", to,
           "--data", "@" + data_file, "--timeout", str(TIMEOUT)]
    cmd += list(extra)
    return subprocess.run(cmd, capture_output=True, timeout=60, check=False)
