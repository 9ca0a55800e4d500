"""
test_tls_close.py -- what a real TLS client (OpenSSL, through Python's
ssl.SSLObject over the raw socket) receives at the ends of a session
(src/conn.c: however front groups GnuTLS's writes):

- a TLS 1.3 server's session tickets, by the first reply at the latest:
  the client has a ticket it can resume with;
- the reply to QUIT, then the close_notify, then the end of the stream:
  a clean TLS close, never a bare FIN (which OpenSSL reports as an
  unexpected EOF);
- the same after a pipelined RSET and QUIT, on the STARTTLS port and on
  the implicit one, TLS 1.3 and 1.2.

Every read is of the whole stream up to the server's FIN (the socket has a
timeout as a bound, never as a condition).
"""

import socket
import ssl

import pytest

from helpers import SERVER_NAME, TIMEOUT, client_context

pytestmark = pytest.mark.sanitized      # conn.c's TLS writes, under ASan/UBSan too

VERSIONS = {"1.3": ssl.TLSVersion.TLSv1_3, "1.2": ssl.TLSVersion.TLSv1_2}


class BioClient:
    """A TLS client whose records pass through memory: every octet the
    server sent is fed to OpenSSL as it is, so what OpenSSL reports is what
    was on the wire."""

    def __init__(self, port, ctx, implicit, session=None):
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.plain = b""
        if not implicit:
            self.plain_reply()
            self.raw.sendall(b"EHLO client.lab.test\r\n")
            self.plain_reply()
            self.raw.sendall(b"STARTTLS\r\n")
            assert self.plain_reply().startswith(b"220 ")
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=SERVER_NAME, session=session)
        self.eof = False
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self.fill()
        self.flush()
        self.buf = b""

    def plain_reply(self):
        """One plaintext reply (before STARTTLS), read octet by octet so
        that nothing of the TLS stream is taken."""
        line = b""
        while True:
            c = self.raw.recv(1)
            assert c, "closed before TLS"
            line += c
            if line.endswith(b"\r\n"):
                if line[3:4] == b" ":
                    return line
                line = b""

    def flush(self):
        data = self.out.read()
        if data:
            self.raw.sendall(data)

    def fill(self):
        data = self.raw.recv(65536)
        if not data:
            self.inc.write_eof()
            self.eof = True
        else:
            self.inc.write(data)

    def reply(self):
        """The next whole reply (its last line)."""
        while True:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                if line[3:4] == b" ":
                    return line
            try:
                self.buf += self.tls.read(65536)
            except ssl.SSLWantReadError:
                assert not self.eof, "the stream ended inside a reply"
                self.fill()

    def send(self, data):
        self.tls.write(data)
        self.flush()

    def end(self):
        """How the TLS stream ends after everything read: "close_notify" or
        the error OpenSSL reports; and the plaintext still unread."""
        while True:
            try:
                data = self.tls.read(65536)
                if not data:
                    return "close_notify", self.buf
                self.buf += data
            except ssl.SSLZeroReturnError:
                return "close_notify", self.buf
            except ssl.SSLWantReadError:
                if self.eof:
                    return "no close_notify", self.buf
                self.fill()
            except ssl.SSLError as e:
                return "error: %s" % e, self.buf

    def close(self):
        self.raw.close()


@pytest.fixture(scope="module")
def sp(module_lab):
    sp = module_lab.subproxy(module_lab.sink())
    yield sp
    sp.stop()


def port_of(sp, implicit):
    return sp.implicit_port if implicit else sp.starttls_port


def context(ca, version):
    ctx = client_context(ca)
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    return ctx


@pytest.mark.parametrize("version", ["1.3", "1.2"])
@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "starttls"])
def test_quit_reply_then_close_notify(sp, module_lab, version, implicit):
    c = BioClient(port_of(sp, implicit), context(module_lab.certs.ca, version), implicit)
    try:
        if implicit:
            assert c.reply().startswith(b"220 ")
        c.send(b"EHLO client.lab.test\r\n")
        assert c.reply().startswith(b"250 ")
        c.send(b"QUIT\r\n")
        assert c.reply().startswith(b"221 ")
        assert c.end() == ("close_notify", b"")
        assert c.eof or c.raw.recv(1) == b""
    finally:
        c.close()


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "starttls"])
def test_pipelined_rset_quit_then_close_notify(sp, module_lab, implicit):
    c = BioClient(port_of(sp, implicit), context(module_lab.certs.ca, "1.3"), implicit)
    try:
        if implicit:
            assert c.reply().startswith(b"220 ")
        c.send(b"EHLO client.lab.test\r\nRSET\r\nQUIT\r\n")
        assert c.reply().startswith(b"250 ")
        assert c.reply().startswith(b"250 ")
        assert c.reply().startswith(b"221 ")
        assert c.end() == ("close_notify", b"")
    finally:
        c.close()


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "starttls"])
def test_ticket_with_first_reply_resumes(sp, module_lab, implicit):
    """TLS 1.3: the tickets come with the first reply (the greeting on the
    implicit port, the EHLO reply after STARTTLS) and resume a session."""
    ctx = context(module_lab.certs.ca, "1.3")
    c = BioClient(port_of(sp, implicit), ctx, implicit)
    try:
        assert not c.tls.session.has_ticket
        if implicit:
            assert c.reply().startswith(b"220 ")
        else:
            c.send(b"EHLO client.lab.test\r\n")
            assert c.reply().startswith(b"250 ")
        assert c.tls.session.has_ticket
        session = c.tls.session
        c.send(b"QUIT\r\n")
        assert c.reply().startswith(b"221 ")
        assert c.end() == ("close_notify", b"")
    finally:
        c.close()
    c = BioClient(port_of(sp, implicit), ctx, implicit, session=session)
    try:
        assert c.tls.session_reused
        c.send(b"QUIT\r\n")
        if implicit:
            assert c.reply().startswith(b"220 ")
        assert c.reply().startswith(b"221 ")
        assert c.end() == ("close_notify", b"")
    finally:
        c.close()
