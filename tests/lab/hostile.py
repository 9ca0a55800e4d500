"""
hostile.py -- a relay MTA scripted to misbehave, for attacking subproxy's
relay leg (tests/integration/test_relay_hostile.py).

Unlike sink.py, whose faults are a fixed menu, every connection here runs a
plain SMTP server loop (smtp()) whose replies a test replaces command by
command with its own code: replies sent early, dripped byte by byte, never
finished, or not sent at all.  Real TLS (implicit, the lab's relay
certificate pinned by TLSA in subproxy's configuration), one thread per
connection, blocking sockets with timeouts, so every loop is bounded.

    r = HostileRelay(cert, key, hooks={"DATA": fn}).start()
    (rcvbuf=N: a small TCP window, so that what the relay does not read
    stays in subproxy's buffers; mss=N: small segments, so that subproxy's
    send buffer, sized by the kernel in segments, stays small too;
    throttle=(chunk, rate): the message (DATA or BDAT) is read at most
    chunk octets at a time and at most rate octets per second)
    ... r.port, r.messages, r.conns ...
    r.stop()

A hook is fn(conn, line, st) -> None; it sends what it likes with
conn.send() and may raise Drop to end the connection (conn.reset() first
for a TCP reset).  st is the connection's SMTP state (st.mail, st.rcpts,
st.data; st.stored after a message was accepted).
"""

import socket
import ssl
import threading
import time

READ_TIMEOUT = 30       # seconds for any single read from subproxy


class Drop(Exception):
    """End this connection now (the hook closed or reset it)."""


class Conn:
    def __init__(self, sock, relay):
        self.sock, self.relay = sock, relay
        self.buf = b""
        self.commands = []
        self.closed = False
        self.throttle = None    # (chunk, rate, start, octets read since)
        self.nread = 0          # octets read, all in all

    def _fill(self):
        n = 65536
        if self.throttle:
            chunk, rate, start, done = self.throttle
            n = chunk
            # no faster than rate: wait until start + done / rate
            if self.relay.stopping.wait(max(0.0, start + done / rate - time.monotonic())):
                raise Drop("stopping")
        try:
            b = self.sock.recv(n)
        except (OSError, ssl.SSLError):
            b = b""
        if not b:
            raise Drop("peer closed")
        self.buf += b
        self.nread += len(b)
        if self.throttle:
            self.throttle = self.throttle[:3] + (self.throttle[3] + len(b),)

    def throttled(self, on):
        """Read slowly from now on (relay.throttle), or no longer."""
        t = self.relay.throttle
        self.throttle = (t[0], t[1], time.monotonic(), len(self.buf)) if on and t else None

    def readline(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise Drop("line too long")
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as e:
            raise Drop("send failed: %s" % e) from e

    def drip(self, data, pause):
        """Send data one byte at a time, pause seconds apart, until the
        peer goes away (then Drop)."""
        if isinstance(data, str):
            data = data.encode()
        for i in range(len(data)):
            self.send(data[i:i + 1])
            if self.relay.stopping.wait(pause):
                raise Drop("stopping")

    def reset(self):
        """A TCP reset (no close_notify, no FIN)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        except OSError:
            pass
        self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


class State:
    def __init__(self):
        self.mail, self.rcpts, self.data, self.stored = None, [], None, []


EHLO = ["250-relay.lab.test", "250-PIPELINING", "250-8BITMIME", "250-ENHANCEDSTATUSCODES",
        "250 SIZE 104857600"]


def _read_data(conn):
    out = []
    while True:
        line = conn.readline()
        if line == b".":
            return b"".join(out)
        out.append((line[1:] if line.startswith(b".") else line) + b"\r\n")


def smtp(conn, relay):
    """A plain SMTP server loop; relay.hooks replace the handling of a verb
    (DATA's hook runs instead of 354; "FINAL" replaces the reply to the
    final dot or BDAT LAST once the data is read)."""
    st = State()
    hooks = relay.hooks
    conn.send("220 relay.lab.test ESMTP hostile\r\n")
    while True:
        line = conn.readline()
        conn.commands.append(line.decode("ascii", "replace"))
        verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper().decode("ascii", "replace")
        if verb in hooks:
            hooks[verb](conn, line, st)
            continue
        if verb in ("EHLO", "HELO"):
            conn.send("".join(x + "\r\n" for x in relay.ehlo))
        elif verb == "MAIL":
            st.mail, st.rcpts = line, []
            conn.send("250 2.1.0 Ok\r\n")
        elif verb == "RCPT":
            st.rcpts.append(line)
            conn.send("250 2.1.5 Ok\r\n")
        elif verb == "DATA":
            conn.send("354 go ahead\r\n")
            conn.throttled(True)
            st.data = _read_data(conn)
            conn.throttled(False)
            final(conn, st, relay)
        elif verb == "BDAT":
            n = int(line.split()[1])
            conn.throttled(True)
            st.data = (st.data or b"") + conn.read(n)
            conn.throttled(False)
            if line.upper().endswith(b" LAST"):
                final(conn, st, relay)
            else:
                conn.send("250 2.0.0 %d octets\r\n" % n)
        elif verb == "RSET":
            st.mail, st.rcpts, st.data = None, [], None
            conn.send("250 2.0.0 Ok\r\n")
        elif verb == "NOOP":
            conn.send("250 2.0.0 Ok\r\n")
        elif verb == "QUIT":
            conn.send("221 2.0.0 Bye\r\n")
            raise Drop("quit")
        else:
            conn.send("502 5.5.2 Unknown command\r\n")


def final(conn, st, relay):
    """The end of the data: the FINAL hook, or store and 250."""
    if "FINAL" in relay.hooks:
        relay.hooks["FINAL"](conn, b"", st)
        return
    store(conn, st, relay)
    conn.send("250 2.0.0 Ok: stored\r\n")


def store(conn, st, relay):
    with relay.lock:
        relay.messages.append(st.data)
    st.stored.append(st.data)
    st.mail, st.rcpts, st.data = None, [], None


class HostileRelay:
    def __init__(self, cert, key, hooks=None, ehlo=None, tls_max=None, rcvbuf=None, mss=None,
                 throttle=None):
        self.hooks = dict(hooks or {})
        self.throttle = throttle
        self.ehlo = list(ehlo or EHLO)
        self.messages, self.conns, self.errors = [], [], []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls_max == "1.2":
            self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(cert, key)
        self.ls = socket.socket()
        if rcvbuf:      # a small window: what the relay does not read stays with subproxy
            self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if mss:         # told in the SYN-ACK: subproxy sends segments this small
            self.ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.ls.settimeout(0.5)
        self.port = self.ls.getsockname()[1]
        self.threads = []

    def start(self):
        t = threading.Thread(target=self._accept, name="hostile", daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def _accept(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, raw):
        raw.settimeout(READ_TIMEOUT)
        try:
            sock = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as e:
            self.errors.append("handshake: %s" % e)
            raw.close()
            return
        conn = Conn(sock, self)
        with self.lock:
            self.conns.append(conn)
        try:
            smtp(conn, self)
        except Drop:
            pass
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))
        finally:
            conn.close()

    def stop(self):
        self.stopping.set()
        try:
            self.ls.shutdown(socket.SHUT_RDWR)      # wakes the accept
        except OSError:
            pass
        self.ls.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.sock.shutdown(socket.SHUT_RDWR)   # wakes a blocked recv
                except OSError:
                    pass
                c.close()
        deadline = time.monotonic() + 10
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
