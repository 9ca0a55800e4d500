#!/usr/bin/python3
"""
sink.py -- a TLS SMTP relay sink for the subproxy lab.

The sink plays the relay MTA that subproxy hands messages to.  It stores what
it accepts and can be told to misbehave.

Modes
  starttls  plaintext greeting; EHLO offers ENHANCEDSTATUSCODES and STARTTLS,
            and after TLS: PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES,
            CHUNKING, DSN, SMTPUTF8 (PIPELINING, CHUNKING, DSN, SMTPUTF8 can
            be switched off; AUTH PLAIN is offered when a login is
            configured); tls_max="1.2" offers no TLS 1.3
  implicit  TLS from the first byte, same extensions
  plain     never offers STARTTLS (a relay that cannot do TLS)
MAIL is refused before TLS in every mode.

Protocol: EHLO, HELO, STARTTLS, AUTH PLAIN, XCLIENT (offered with
xclient="ATTR ..."), MAIL, RCPT, DATA (only
<CRLF>.<CRLF> ends it; dot-unstuffing after CRLF), BDAT (incl. LAST), RSET,
NOOP, VRFY, QUIT.  Commands must end in CRLF and contain no CR, LF or NUL.
With strict=True (the default) a message holding a bare CR, a bare LF, a NUL
or a line over 998 octets is refused with 550 5.6.0 (and noted in the
session record either way).

Store: every accepted message becomes DIR/N.eml (the message as received,
unstuffed) and DIR/N.json (mail_from, rcpts, mail_params, rcpt_params,
method, tls_version, tls_cipher, sni, size, session, violations).  Both are
written when the final 250 has been decided and before it is sent, so a
client that has seen the 250 finds the files.

Faults (Sink.set_faults(...) or Sink.faults = Faults(...), any time):
  greeting="554 ..."       reply instead of the 220 greeting, then close
  close_after_greeting     send 220, then close
  mail="550 ..."           reply to every MAIL
  rcpt={"a@b": "450 ..."}  reply to RCPT for these addresses (case-insensitive)
  data="451 ..."           reply to DATA instead of 354
  xclient="550 ..."        reply to XCLIENT instead of the new 220 greeting
  final="554 ..."          reply to the final dot / BDAT LAST instead of 250
  drop_after_354           close the connection right after sending 354
  drop_after_bytes=N       close once N octets of message data were read
  rset="421 ..."           reply to RSET instead of 250 (a 421 also closes)
  drop_at={"rset", ...}    close the connection when this command arrives,
                           without a reply (any verb: rset, mail, rcpt, ...)
  close_after_final        close the connection right after the final reply
  once                     mail, rset and drop_at fire once: then all faults
                           are cleared
  delay={"final": 5.0}     sleep before replying; stages: greeting, ehlo,
                           starttls, auth, mail, rcpt, data, bdat (non-LAST
                           chunk), final, rset, noop, quit; a threading.Event
                           instead of seconds: reply once it is set (a gate
                           the test opens; at most 60 s)
When the peer is gone after the "final" delay, nothing is stored.

Session records (Sink.sessions()): one dict per connection with id, peer,
tls, tls_resumed (the TLS handshake resumed an earlier session: Python's
SSLObject.session_reused on the server side), sni, commands (AUTH data
redacted), events, data_started, data_completed (end of data seen: final
dot or complete BDAT LAST chunk), stored (message numbers) and closed.
Sink.connections(), handshakes() and resumptions() count them.

A client that keeps connections (subproxy's pool): Sink.close_idle(reply)
closes every connection that is between transactions (after sending reply,
e.g. "421 4.3.2 Shutting down", when given), as a relay closing idle
connections or restarting does (after configure(): a relay announces its
extensions at EHLO only).  With xclient_once=True a second
XCLIENT on one connection is refused (550 5.7.0), as Postfix refuses it
when the first one set a client address that is not authorised for
XCLIENT.

Use in tests (in-process: a thread with its own event loop):
    s = Sink(cert="relay.pem", key="relay.key", directory=d).start()
    ... s.port, s.messages(), s.sessions(), s.reset() ...
    s.stop()
Command line (prints the port on the first line, runs until SIGTERM/SIGINT):
    python3 tests/lab/sink.py --port P --cert C --key K --dir D [--implicit]

Lab certificates (LabCA) are generated at run time with python3-cryptography;
they are never meant to be written into the source tree.
"""

import argparse
import asyncio
import base64
import copy
import dataclasses
import datetime
import hashlib
import json
import os
import re
import signal
import ssl
import sys
import threading
import time

__all__ = ["Faults", "Sink", "LabCA", "spki_sha256", "tlsa_311"]

MAX_LINE = 998                  # RFC 5322 line limit, excluding CRLF
CMD_MAX = 512                   # RFC 5321 4.5.3.1.4, including CRLF
AUTH_MAX = 12288
READ_LIMIT = 256 * 1024         # StreamReader buffer limit
STAGES = ("greeting", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat",
          "final", "rset", "noop", "quit")


@dataclasses.dataclass
class Faults:
    greeting: str = None
    close_after_greeting: bool = False
    mail: str = None
    rcpt: dict = dataclasses.field(default_factory=dict)
    data: str = None
    xclient: str = None
    final: str = None
    drop_after_354: bool = False
    drop_after_bytes: int = None
    delay: dict = dataclasses.field(default_factory=dict)
    rset: str = None
    drop_at: set = dataclasses.field(default_factory=set)
    close_after_final: bool = False
    once: bool = False

    def __post_init__(self):
        self.rcpt = {k.lower(): v for k, v in (self.rcpt or {}).items()}
        self.drop_at = {v.lower() for v in (self.drop_at or ())}
        for k in (self.delay or {}):
            if k not in STAGES:
                raise ValueError("unknown delay stage %r (one of %s)" % (k, ", ".join(STAGES)))


class _Dropped(Exception):
    """The sink closed the connection on purpose (a fault) or the peer left."""


class _Txn:
    def __init__(self, mail_from, params):
        self.mail_from = mail_from
        self.mail_params = params
        self.rcpts = []
        self.rcpt_params = []
        self.data = bytearray()
        self.method = None          # "DATA" or "BDAT"
        self.raw_bytes = 0          # message octets read (before unstuffing)
        self.violations = set()
        self.bdat_failed = False


class _State:
    def __init__(self, tls):
        self.tls = tls
        self.greeted = False
        self.ehlo = False
        self.login = None
        self.txn = None
        self.xclients = 0           # XCLIENT commands accepted on this connection
        self.busy = False           # a command is being handled


def _violations(data, crlf_lines=True):
    """Strictness findings on a complete message (bytes)."""
    v = set()
    if b"\0" in data:
        v.add("NUL")
    if re.search(rb"\r(?!\n)", data):
        v.add("bare CR")
    if re.search(rb"(?<!\r)\n", data):
        v.add("bare LF")
    for line in data.split(b"\r\n"):
        if len(line) > MAX_LINE:
            v.add("line over %d octets" % MAX_LINE)
            break
    return v


def _xtext_ok(s):
    i = 0
    while i < len(s):
        c = s[i]
        if c == "+":
            if not re.fullmatch(r"[0-9A-F]{2}", s[i + 1:i + 3]):
                return False
            i += 3
            continue
        if not ("!" <= c <= "~") or c == "=":
            return False
        i += 1
    return True


class Sink:
    """An SMTP relay sink on its own event loop thread.  See the module text."""

    def __init__(self, cert=None, key=None, directory=None, *, host="127.0.0.1", port=0,
                 mode="starttls", chunking=True, dsn=True, smtputf8=True, strict=True,
                 size_limit=64 * 1024 * 1024, auth=None, hostname="relay.lab.test",
                 faults=None, xclient=None, xclient_once=False, pipelining=True,
                 tls_max=None):
        if mode not in ("starttls", "implicit", "plain"):
            raise ValueError("mode must be starttls, implicit or plain")
        if mode != "plain" and (cert is None or key is None):
            raise ValueError("a TLS mode needs cert and key")
        if directory is None:
            raise ValueError("directory is required")
        self.cert, self.key, self.directory = cert, key, str(directory)
        self.host, self.port, self.mode = host, port, mode
        self.chunking, self.dsn, self.smtputf8, self.strict = chunking, dsn, smtputf8, strict
        self.size_limit = size_limit
        self.auth = auth                    # (login, password) or None
        self.xclient = xclient              # XCLIENT attribute names to offer, or None
        self.xclient_once = xclient_once    # refuse a second XCLIENT per connection
        self.pipelining = pipelining        # offer PIPELINING
        self.tls_max = tls_max              # "1.2": no TLS 1.3
        self.hostname = hostname
        self.faults = faults if faults is not None else Faults()
        self.errors = []                    # asyncio errors (handshake failures, ...)
        self._lock = threading.Lock()
        self._sessions = []
        self._counter = 0
        self._loop = None
        self._thread = None
        self._server = None
        self._tasks = set()
        self._live = {}                     # session id -> (writer, _State, task)
        self._next_id = 1                   # session ids are never reused
        self._ctx = None
        os.makedirs(self.directory, exist_ok=True)

    # ---- lifecycle ----

    def start(self):
        """Listen and serve on a new thread.  Returns self; self.port is set."""
        if self.cert is not None:
            self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.tls_max == "1.2":
                self._ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            self._ctx.load_cert_chain(self.cert, self.key)
            self._ctx.sni_callback = self._on_sni
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(self._on_loop_error)
        ready = threading.Event()
        failure = []

        def run():
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(self._listen())
            except Exception as e:  # noqa: BLE001 - reported to start()
                failure.append(e)
                ready.set()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="sink", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("sink did not start within 10 s")
        if failure:
            self._thread.join(5)
            self._loop.close()
            raise failure[0]
        return self

    def stop(self):
        """Stop listening, abort open sessions, end the thread.  Idempotent."""
        if self._loop is None or self._thread is None:
            return
        if self._loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            try:
                fut.result(10)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._loop.is_running():
            self._loop.close()
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    async def _listen(self):
        kw = {"ssl": self._ctx, "ssl_handshake_timeout": 10} if self.mode == "implicit" else {}
        return await asyncio.start_server(self._serve, self.host, self.port, limit=READ_LIMIT,
                                          **kw)

    async def _shutdown(self):
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self._server.wait_closed()

    def _on_loop_error(self, loop, context):
        with self._lock:
            self.errors.append(str(context.get("message") or context.get("exception")))

    @staticmethod
    def _on_sni(sslobj, name, ctx):
        sslobj.lab_sni = name

    # ---- what tests look at ----

    def set_faults(self, **kw):
        """Replace all faults (unnamed ones are off)."""
        self.faults = Faults(**kw)

    def configure(self, **kw):
        """Change options at run time: chunking, dsn, smtputf8, strict, size_limit, auth.
        Extensions show at the next EHLO: a client that keeps its connection
        sees them after close_idle()."""
        for k, v in kw.items():
            if k not in ("chunking", "dsn", "smtputf8", "strict", "size_limit", "auth"):
                raise ValueError("not a run-time option: %s" % k)
            setattr(self, k, v)

    def close_idle(self, reply=None):
        """Close every connection that is between transactions (no mail
        transaction open, no command being handled), after sending reply
        when given.  Returns how many were closed."""
        if self._loop is None or not self._loop.is_running():
            return 0

        async def close():
            n, tasks = 0, []
            for sess_id, (writer, st, task) in list(self._live.items()):
                if st.txn is not None or st.busy or writer.transport is None or \
                        writer.transport.is_closing():
                    continue
                with self._lock:
                    rec = next((r for r in self._sessions if r["id"] == sess_id), None)
                if reply:
                    try:
                        await self._send(writer, reply)
                    except (ConnectionError, OSError):
                        pass
                if rec is not None:
                    self._event(rec, "closed by the sink while idle")
                writer.transport.abort()
                tasks.append(task)
                n += 1
            if tasks:       # their records say closed when this returns
                await asyncio.wait(tasks, timeout=5)
            return n

        return asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)

    def connections(self):
        """Connections accepted (since the last reset(): open ones stay)."""
        return len(self.sessions())

    def handshakes(self):
        """TLS handshakes completed: (full, resumed)."""
        recs = [r for r in self.sessions() if r["tls"]]
        resumed = sum(1 for r in recs if r["tls_resumed"])
        return len(recs) - resumed, resumed

    def reset(self):
        """Delete stored messages, clear faults, forget closed sessions and
        the history of open ones."""
        with self._lock:
            # open sessions stay (with a clean history), closed ones go
            self._sessions = [r for r in self._sessions if not r["closed"]]
            for r in self._sessions:
                r.update(commands=[], events=[], data_started=0, data_completed=0, stored=[])
            self._counter = 0
            self.errors = []
        for name in os.listdir(self.directory):
            if re.fullmatch(r"\d+\.(eml|json)(\.tmp)?", name):
                os.unlink(os.path.join(self.directory, name))
        self.faults = Faults()

    def messages(self):
        """Stored messages, read back from DIR, in order: a list of dicts
        holding the JSON fields plus "n" and "data" (bytes)."""
        out = []
        for name in os.listdir(self.directory):
            m = re.fullmatch(r"(\d+)\.json", name)
            if not m:
                continue
            n = int(m.group(1))
            with open(os.path.join(self.directory, name), encoding="utf-8") as f:
                meta = json.load(f)
            with open(os.path.join(self.directory, "%d.eml" % n), "rb") as f:
                meta["data"] = f.read()
            meta["n"] = n
            out.append(meta)
        out.sort(key=lambda m: m["n"])
        return out

    def sessions(self):
        """Copies of the session records."""
        with self._lock:
            return copy.deepcopy(self._sessions)

    def data_completions(self):
        """How many times any session saw a complete message transfer."""
        return sum(s["data_completed"] for s in self.sessions())

    def data_starts(self):
        return sum(s["data_started"] for s in self.sessions())

    def commands(self):
        """All command lines received (all sessions, in session order)."""
        return [c for s in self.sessions() for c in s["commands"]]

    def wait_for(self, predicate, timeout=10.0, interval=0.02):
        """Poll predicate(self) until true or timeout; returns its last value."""
        end = time.monotonic() + timeout
        while True:
            v = predicate(self)
            if v or time.monotonic() >= end:
                return v
            time.sleep(interval)

    # ---- session records ----

    def _new_session(self, writer):
        peer = writer.get_extra_info("peername")
        rec = {"id": None, "peer": "%s:%s" % peer[:2] if peer else "?", "tls": None,
               "tls_cipher": None, "tls_resumed": None, "sni": None, "commands": [], "events": [],
               "data_started": 0, "data_completed": 0, "stored": [], "closed": False,
               "started": time.time()}
        with self._lock:
            rec["id"] = self._next_id
            self._next_id += 1
            self._sessions.append(rec)
        return rec

    def _rec(self, sess, key, value=None, add=None, append=None):
        with self._lock:
            if append is not None:
                sess[key].append(append)
            elif add is not None:
                sess[key] += add
            else:
                sess[key] = value

    def _event(self, sess, text):
        self._rec(sess, "events", append=text)

    def _note_tls(self, sess, writer):
        so = writer.get_extra_info("ssl_object")
        if so is None:
            return
        self._rec(sess, "tls", so.version())
        c = so.cipher()
        self._rec(sess, "tls_cipher", c[0] if c else None)
        self._rec(sess, "sni", getattr(so, "lab_sni", None))
        self._rec(sess, "tls_resumed", so.session_reused)
        self._event(sess, "tls %s%s" % (so.version(), " resumed" if so.session_reused else ""))

    # ---- I/O helpers ----

    async def _send(self, writer, lines):
        if isinstance(lines, str):
            lines = [lines]
        out = []
        for i, line in enumerate(lines):
            code, rest = line[:3], line[4:] if len(line) > 3 else ""
            sep = "-" if i + 1 < len(lines) else " "
            out.append("%s%s%s\r\n" % (code, sep, rest))
        writer.write("".join(out).encode("utf-8"))
        await writer.drain()

    async def _delay(self, stage):
        d = (self.faults.delay or {}).get(stage)
        if isinstance(d, threading.Event):
            for _ in range(1200):
                if d.is_set():
                    return
                await asyncio.sleep(0.05)
        elif d:
            await asyncio.sleep(d)

    @staticmethod
    async def _readline(reader):
        """One line including its LF; a partial line (no LF) when it is longer
        than the buffer limit; b"" at EOF."""
        try:
            return await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as e:
            return await reader.readexactly(e.consumed)
        except asyncio.IncompleteReadError as e:
            return e.partial

    @staticmethod
    def _peer_gone(reader, writer):
        return (writer.transport is None or writer.transport.is_closing() or
                reader.at_eof() or reader.exception() is not None)

    def _fired(self):
        if self.faults.once:
            self.faults = Faults()

    def _abort(self, sess, writer, why):
        self._event(sess, "drop: " + why)
        writer.transport.abort()
        raise _Dropped(why)

    # ---- the SMTP session ----

    async def _serve(self, reader, writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        sess = self._new_session(writer)
        try:
            await self._session(sess, reader, writer)
        except _Dropped:
            pass
        except asyncio.CancelledError:
            self._event(sess, "cancelled")
        except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError) as e:
            self._event(sess, "error: %r" % (e,))
        except Exception as e:  # noqa: BLE001 - a sink bug: record it, keep serving
            self._event(sess, "internal error: %r" % (e,))
            with self._lock:
                self.errors.append("internal error: %r" % (e,))
        finally:
            self._rec(sess, "closed", True)
            try:
                if writer.transport is not None and not writer.transport.is_closing():
                    writer.close()
            except Exception:  # noqa: BLE001 - best effort on teardown
                pass
            self._tasks.discard(task)

    async def _session(self, sess, reader, writer):
        st = _State(tls=self.mode == "implicit")
        self._live[sess["id"]] = (writer, st, asyncio.current_task())
        try:
            await self._session_run(sess, st, reader, writer)
        finally:
            self._live.pop(sess["id"], None)

    async def _session_run(self, sess, st, reader, writer):
        if st.tls:
            self._note_tls(sess, writer)
        f = self.faults
        await self._delay("greeting")
        if f.greeting:
            await self._send(writer, f.greeting)
            self._event(sess, "greeting fault")
            writer.close()
            return
        await self._send(writer, "220 %s ESMTP lab sink" % self.hostname)
        if f.close_after_greeting:
            self._event(sess, "close after greeting")
            writer.close()
            return
        while True:
            line = await self._readline(reader)
            if not line:
                self._event(sess, "eof")
                return
            if not line.endswith(b"\n"):
                await self._send(writer, "500 5.5.2 Line too long")
                self._abort(sess, writer, "command line over the buffer limit")
            st.busy = True
            try:
                if await self._command(sess, st, reader, writer, line) == "quit":
                    return
            finally:
                st.busy = False

    async def _command(self, sess, st, reader, writer, line):
        if not line.endswith(b"\r\n"):
            self._rec(sess, "commands", append=repr(line))
            await self._send(writer, "500 5.5.2 Command line ends in a bare LF")
            return None
        body = line[:-2]
        if b"\r" in body or b"\n" in body or b"\0" in body:
            self._rec(sess, "commands", append=repr(line))
            await self._send(writer, "500 5.5.2 Bare CR, LF or NUL in command line")
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            self._rec(sess, "commands", append=repr(line))
            await self._send(writer, "500 5.5.2 Command line is not UTF-8")
            return None
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        self._rec(sess, "commands", append="AUTH ..." if verb == "AUTH" else text)
        if len(line) > (AUTH_MAX if verb == "AUTH" else CMD_MAX):
            await self._send(writer, "500 5.5.2 Command line too long")
            return None
        if not st.tls and verb not in ("EHLO", "HELO", "STARTTLS", "NOOP", "RSET", "QUIT"):
            await self._send(writer, "530 5.7.0 Must issue a STARTTLS command first")
            return None
        if verb.lower() in self.faults.drop_at:
            self._fired()
            self._abort(sess, writer, "at " + verb)
        handler = getattr(self, "_cmd_" + verb.lower(), None) if verb.isalpha() else None
        if handler is None:
            await self._send(writer, "500 5.5.1 Command unrecognized")
            return None
        return await handler(sess, st, reader, writer, arg)

    def _ehlo_lines(self, st):
        lines = ["250 %s" % self.hostname]
        if not st.tls and self.mode == "starttls":
            return lines + ["250 ENHANCEDSTATUSCODES", "250 STARTTLS"]
        lines += ["250 PIPELINING"] if self.pipelining else []
        lines += ["250 SIZE %d" % self.size_limit, "250 8BITMIME", "250 ENHANCEDSTATUSCODES"]
        if self.chunking:
            lines.append("250 CHUNKING")
        if self.dsn:
            lines.append("250 DSN")
        if self.smtputf8:
            lines.append("250 SMTPUTF8")
        if self.auth and st.tls:
            lines.append("250 AUTH PLAIN")
        if self.xclient and st.tls:
            lines.append("250 XCLIENT " + self.xclient)
        return lines

    async def _cmd_xclient(self, sess, st, reader, writer, arg):
        """Postfix's XCLIENT (when offered): noted as an event, answered with
        a new greeting; EHLO must follow."""
        if not self.xclient:
            await self._send(writer, "500 5.5.1 Command unrecognized")
            return
        self._event(sess, "xclient " + arg)
        if self.faults.xclient:
            await self._send(writer, self.faults.xclient)
            return
        if self.xclient_once and st.xclients > 0:
            self._event(sess, "xclient refused: not the first on this connection")
            await self._send(writer, "550 5.7.0 Error: insufficient authorization")
            return
        st.xclients += 1
        st.greeted, st.ehlo, st.txn = False, False, None
        await self._send(writer, "220 %s ESMTP sink" % self.hostname)

    async def _cmd_ehlo(self, sess, st, reader, writer, arg):
        if not arg.strip():
            await self._send(writer, "501 5.5.4 EHLO needs a domain")
            return
        await self._delay("ehlo")
        st.greeted, st.ehlo, st.txn = True, True, None
        await self._send(writer, self._ehlo_lines(st))

    async def _cmd_helo(self, sess, st, reader, writer, arg):
        if not arg.strip():
            await self._send(writer, "501 5.5.4 HELO needs a domain")
            return
        await self._delay("ehlo")
        st.greeted, st.ehlo, st.txn = True, False, None
        await self._send(writer, "250 %s" % self.hostname)

    async def _cmd_starttls(self, sess, st, reader, writer, arg):
        if self.mode != "starttls":
            await self._send(writer, "502 5.5.1 STARTTLS not offered")
            return
        if st.tls:
            await self._send(writer, "503 5.5.1 TLS already active")
            return
        if arg:
            await self._send(writer, "501 5.5.4 No parameters allowed")
            return
        await self._delay("starttls")
        await self._send(writer, "220 2.0.0 Ready to start TLS")
        # CVE-2011-0411: plaintext pipelined after STARTTLS is dropped
        pending = len(reader._buffer)  # noqa: SLF001 - lab tool, stdlib internals
        if pending:
            self._event(sess, "discarded %d plaintext octets after STARTTLS" % pending)
            reader._buffer.clear()  # noqa: SLF001
        try:
            await writer.start_tls(self._ctx)
        except (ssl.SSLError, ConnectionError, OSError) as e:
            self._event(sess, "tls handshake failed: %r" % (e,))
            raise _Dropped("handshake") from e
        st.tls, st.greeted, st.ehlo, st.txn, st.login = True, False, False, None, None
        self._note_tls(sess, writer)

    async def _cmd_auth(self, sess, st, reader, writer, arg):
        if not self.auth or not st.tls:
            await self._send(writer, "502 5.5.1 AUTH not offered")
            return
        if st.login is not None:
            await self._send(writer, "503 5.5.1 Already authenticated")
            return
        mech, _, initial = arg.partition(" ")
        if mech.upper() != "PLAIN":
            await self._send(writer, "504 5.5.4 Only PLAIN")
            return
        if not initial:
            await self._send(writer, "334 ")
            resp = await self._readline(reader)
            if not resp.endswith(b"\r\n"):
                await self._send(writer, "501 5.5.2 Bad response line")
                return
            initial = resp[:-2].decode("ascii", "replace")
        if initial == "*":
            await self._send(writer, "501 5.0.0 Authentication cancelled")
            return
        try:
            dec = base64.b64decode(initial, validate=True)
            _authz, user, pw = dec.split(b"\0")
        except (ValueError, TypeError):
            await self._send(writer, "501 5.5.2 Malformed PLAIN response")
            return
        await self._delay("auth")
        if (user.decode("utf-8", "replace"), pw.decode("utf-8", "replace")) == tuple(self.auth):
            st.login = user.decode("utf-8")
            self._event(sess, "auth " + st.login)
            await self._send(writer, "235 2.7.0 Authentication successful")
        else:
            self._event(sess, "auth failed")
            await self._send(writer, "535 5.7.8 Authentication credentials invalid")

    def _parse_path(self, arg, keyword):
        m = re.fullmatch(r"(?i:%s):<([^<>\s]*)>((?: [^ ]+)*)" % keyword, arg)
        if not m:
            return None, None, "501 5.5.4 Syntax: %s:<address> [parameters]" % keyword
        params = {}
        for p in m.group(2).split():
            k, eq, v = p.partition("=")
            k = k.upper()
            if k in params:
                return None, None, "501 5.5.4 Duplicate parameter %s" % k
            params[k] = v if eq else True
        return m.group(1), params, None

    async def _cmd_mail(self, sess, st, reader, writer, arg):
        if not st.greeted:
            await self._send(writer, "503 5.5.1 Send EHLO first")
            return
        if self.auth and st.login is None:
            await self._send(writer, "530 5.7.0 Authentication required")
            return
        if st.txn is not None:
            await self._send(writer, "503 5.5.1 Nested MAIL command")
            return
        path, params, err = self._parse_path(arg, "FROM")
        if err is None:
            err = self._check_mail_params(st, path, params)
        if err is not None:
            await self._send(writer, err)
            return
        await self._delay("mail")
        if self.faults.mail:
            reply = self.faults.mail
            self._fired()
            await self._send(writer, reply)
            if reply.startswith("421"):
                writer.close()
                return "quit"
            return
        st.txn = _Txn(path, params)
        await self._send(writer, "250 2.1.0 Sender OK")

    def _check_mail_params(self, st, path, params):
        for k, v in params.items():
            if k == "SIZE":
                if v is True or not re.fullmatch(r"[0-9]{1,20}", v):
                    return "501 5.5.4 Bad SIZE value"
                if int(v) > self.size_limit:
                    return "552 5.3.4 Message size exceeds fixed maximum message size"
            elif k == "BODY":
                if not st.ehlo or v is True or v.upper() not in ("7BIT", "8BITMIME"):
                    return "501 5.5.4 Bad BODY value"
            elif k == "SMTPUTF8" and self.smtputf8 and st.ehlo:
                if v is not True:
                    return "501 5.5.4 SMTPUTF8 takes no value"
            elif k == "RET" and self.dsn and st.ehlo:
                if v is True or v.upper() not in ("FULL", "HDRS"):
                    return "501 5.5.4 Bad RET value"
            elif k in ("ENVID", "AUTH") and (k == "AUTH" or self.dsn) and st.ehlo:
                if v is True or not _xtext_ok(v):
                    return "501 5.5.4 Bad %s value" % k
            else:
                return "555 5.5.4 Unsupported parameter %s" % k
        if not path.isascii() and "SMTPUTF8" not in params:
            return "553 5.6.7 Non-ASCII address needs SMTPUTF8"
        return None

    async def _cmd_rcpt(self, sess, st, reader, writer, arg):
        if st.txn is None:
            await self._send(writer, "503 5.5.1 Need MAIL command")
            return
        if st.txn.method is not None:
            await self._send(writer, "503 5.5.1 RCPT after message data")
            return
        path, params, err = self._parse_path(arg, "TO")
        if err is None:
            for k, v in params.items():
                if k == "NOTIFY" and self.dsn and v is not True:
                    words = v.upper().split(",")
                    if not set(words) <= {"NEVER", "SUCCESS", "FAILURE", "DELAY"} or (
                            "NEVER" in words and len(words) > 1):
                        err = "501 5.5.4 Bad NOTIFY value"
                elif k == "ORCPT" and self.dsn and v is not True and ";" in v:
                    pass
                else:
                    err = "555 5.5.4 Unsupported parameter %s" % k
            if err is None and not path:
                err = "501 5.1.3 Empty recipient"
            if err is None and not path.isascii() and "SMTPUTF8" not in st.txn.mail_params:
                err = "553 5.6.7 Non-ASCII address needs SMTPUTF8"
        if err is not None:
            await self._send(writer, err)
            return
        await self._delay("rcpt")
        fault = self.faults.rcpt.get(path.lower())
        if fault:
            await self._send(writer, fault)
            return
        st.txn.rcpts.append(path)
        st.txn.rcpt_params.append(params)
        await self._send(writer, "250 2.1.5 Recipient OK")

    async def _cmd_data(self, sess, st, reader, writer, arg):
        txn = st.txn
        if arg:
            await self._send(writer, "501 5.5.4 DATA takes no parameters")
            return
        if txn is None:
            await self._send(writer, "503 5.5.1 Need MAIL command")
            return
        if txn.method == "BDAT":
            await self._send(writer, "503 5.5.1 DATA after BDAT")
            return
        if not txn.rcpts:
            await self._send(writer, "554 5.5.1 No valid recipients")
            return
        await self._delay("data")
        if self.faults.data:
            await self._send(writer, self.faults.data)
            return
        txn.method = "DATA"
        self._rec(sess, "data_started", add=1)
        await self._send(writer, "354 End data with <CR><LF>.<CR><LF>")
        if self.faults.drop_after_354:
            self._abort(sess, writer, "after 354")
        tail = b"\r\n"          # the DATA command line ended in CRLF
        while True:
            chunk = await self._readline(reader)
            if not chunk:
                self._event(sess, "eof in DATA")
                raise _Dropped("eof in DATA")
            txn.raw_bytes += len(chunk)
            line_start = tail.endswith(b"\r\n")
            if line_start and chunk == b".\r\n":
                break
            self._check_drop(sess, writer, txn)
            if line_start and chunk.startswith(b"."):
                chunk = chunk[1:]
            txn.data += chunk
            tail = (tail + chunk)[-2:] if len(chunk) < 2 else chunk[-2:]
        await self._finish(sess, st, reader, writer)

    def _check_drop(self, sess, writer, txn):
        n = self.faults.drop_after_bytes
        if n is not None and txn.raw_bytes >= n:
            self._abort(sess, writer, "after %d message octets" % txn.raw_bytes)

    async def _cmd_bdat(self, sess, st, reader, writer, arg):
        m = re.fullmatch(r"([0-9]{1,18})( (?i:LAST))?", arg)
        if not m:
            await self._send(writer, "501 5.5.4 Syntax: BDAT size [LAST]")
            return
        size, last = int(m.group(1)), m.group(2) is not None
        txn = st.txn
        ok = txn is not None and txn.method != "DATA" and txn.rcpts and not txn.bdat_failed
        if ok and txn.method is None:
            txn.method = "BDAT"
            self._rec(sess, "data_started", add=1)
        left = size
        while left > 0:
            piece = await reader.readexactly(min(left, 65536))
            left -= len(piece)
            if ok:
                txn.raw_bytes += len(piece)
                txn.data += piece
                self._check_drop(sess, writer, txn)
        if not ok:
            if txn is None:
                await self._send(writer, "503 5.5.1 Need MAIL command")
            elif txn.method == "DATA":
                await self._send(writer, "503 5.5.1 BDAT after DATA")
            elif not txn.rcpts:
                await self._send(writer, "554 5.5.1 No valid recipients")
            else:
                await self._send(writer, "503 5.5.1 Previous BDAT failed")
            return
        if not last:
            await self._delay("bdat")
            await self._send(writer, "250 2.0.0 %d octets received" % size)
            return
        await self._finish(sess, st, reader, writer)

    async def _finish(self, sess, st, reader, writer):
        txn = st.txn
        self._rec(sess, "data_completed", add=1)
        self._event(sess, "end of data (%s, %d octets)" % (txn.method, len(txn.data)))
        await self._delay("final")
        if self._peer_gone(reader, writer):
            self._event(sess, "peer gone before the final reply: not stored")
            raise _Dropped("peer gone")
        data = bytes(txn.data)
        viol = _violations(data)
        if viol:
            self._event(sess, "violations: " + ", ".join(sorted(viol)))
        st.txn = None
        if self.faults.final:
            reply = self.faults.final
        elif self.strict and viol:
            reply = "550 5.6.0 Message refused: " + ", ".join(sorted(viol))
        elif len(data) > self.size_limit:
            reply = "552 5.3.4 Message too big"
        else:
            n = self._store(sess, txn, data, viol, writer)
            reply = "250 2.0.0 Ok: stored as %d" % n
        await self._send(writer, reply)
        if self.faults.close_after_final:
            self._abort(sess, writer, "after the final reply")

    def _store(self, sess, txn, data, viol, writer):
        so = writer.get_extra_info("ssl_object")
        with self._lock:
            self._counter += 1
            n = self._counter
        meta = {
            "mail_from": txn.mail_from,
            "rcpts": txn.rcpts,
            "mail_params": txn.mail_params,
            "rcpt_params": txn.rcpt_params,
            "method": txn.method,
            "tls_version": so.version() if so else None,
            "tls_cipher": so.cipher()[0] if so and so.cipher() else None,
            "sni": getattr(so, "lab_sni", None) if so else None,
            "size": len(data),
            "session": sess["id"],
            "violations": sorted(viol),
        }
        base = os.path.join(self.directory, str(n))
        with open(base + ".eml", "wb") as f:
            f.write(data)
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1, ensure_ascii=False)
        os.replace(base + ".json.tmp", base + ".json")
        self._rec(sess, "stored", append=n)
        return n

    async def _cmd_rset(self, sess, st, reader, writer, arg):
        await self._delay("rset")
        st.txn = None
        if self.faults.rset:
            reply = self.faults.rset
            self._fired()
            await self._send(writer, reply)
            if reply.startswith("421"):
                writer.close()
                return "quit"
            return None
        await self._send(writer, "250 2.0.0 Ok")

    async def _cmd_noop(self, sess, st, reader, writer, arg):
        await self._delay("noop")
        await self._send(writer, "250 2.0.0 Ok")

    async def _cmd_vrfy(self, sess, st, reader, writer, arg):
        await self._send(writer, "252 2.5.0 Cannot VRFY")

    async def _cmd_quit(self, sess, st, reader, writer, arg):
        await self._delay("quit")
        await self._send(writer, "221 2.0.0 Bye")
        writer.close()
        return "quit"


# ---- lab certificates ----

def spki_sha256(cert_pem):
    """SHA-256 (hex) of the SubjectPublicKeyInfo of the first certificate in
    a PEM file (path) or PEM bytes: the data of a "3 1 1" TLSA record."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    if isinstance(cert_pem, (str, os.PathLike)):
        with open(cert_pem, "rb") as f:
            cert_pem = f.read()
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def tlsa_311(cert_pem):
    """The TLSA rdata "3 1 1 HEX" pinning a certificate's public key."""
    return "3 1 1 " + spki_sha256(cert_pem)


class LabCA:
    """A throw-away certificate authority (ECDSA P-256) for the lab.

        ca = LabCA(); ca.write_ca(path)
        chain, key = ca.issue("relay.lab.test", directory, "relay")
    issue() writes STEM.pem (leaf then CA) and STEM.key (PKCS#8, mode 0600).
    """

    def __init__(self, name="subproxy lab CA"):
        from cryptography import x509
        from cryptography.x509.oid import NameOID
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        now = datetime.datetime.now(datetime.timezone.utc)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(self.key, hashes.SHA256()))

    def pem(self):
        from cryptography.hazmat.primitives import serialization
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write_ca(self, path):
        with open(path, "wb") as f:
            f.write(self.pem())
        return str(path)

    def issue(self, dns_name, directory, stem, *, expired=False, days=30, key_type="ecdsa"):
        """Issue a server leaf for dns_name; expired=True makes one whose
        validity ended yesterday; key_type "ecdsa" (P-256) or "rsa"
        (RSA-2048).  Returns (chain_path, key_path)."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        now = datetime.datetime.now(datetime.timezone.utc)
        if expired:
            nb, na = now - datetime.timedelta(days=days + 1), now - datetime.timedelta(days=1)
        else:
            nb, na = now - datetime.timedelta(days=1), now + datetime.timedelta(days=days)
        if key_type == "rsa":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb).not_valid_after(na)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256()))
        chain = os.path.join(str(directory), stem + ".pem")
        keyp = os.path.join(str(directory), stem + ".key")
        with open(chain, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM) + self.pem())
        fd = os.open(keyp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return chain, keyp


# ---- command line ----

def main(argv=None):
    ap = argparse.ArgumentParser(description="TLS SMTP relay sink for the subproxy lab")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    ap.add_argument("--cert", help="certificate chain PEM, leaf first")
    ap.add_argument("--key", help="private key PEM")
    ap.add_argument("--gen-certs", metavar="CERTDIR",
                    help="make a lab CA (ca.pem) and a leaf (sink.pem, sink.key) in CERTDIR "
                         "and use them (instead of --cert/--key)")
    ap.add_argument("--dir", required=True, help="where messages are stored")
    ap.add_argument("--hostname", default="relay.lab.test")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--implicit", action="store_true", help="implicit TLS")
    g.add_argument("--no-starttls", action="store_true", help="never offer STARTTLS")
    ap.add_argument("--no-chunking", action="store_true")
    ap.add_argument("--no-dsn", action="store_true")
    ap.add_argument("--no-smtputf8", action="store_true")
    ap.add_argument("--lenient", action="store_true",
                    help="store messages with bare CR/LF, NUL or long lines")
    ap.add_argument("--auth", metavar="LOGIN:PASSWORD", help="require AUTH PLAIN")
    a = ap.parse_args(argv)
    cert, key = a.cert, a.key
    if a.gen_certs:
        os.makedirs(a.gen_certs, exist_ok=True)
        ca = LabCA()
        ca.write_ca(os.path.join(a.gen_certs, "ca.pem"))
        cert, key = ca.issue(a.hostname, a.gen_certs, "sink")
    mode = "implicit" if a.implicit else "plain" if a.no_starttls else "starttls"
    if mode != "plain" and not (cert and key):
        ap.error("--cert and --key (or --gen-certs) are required unless --no-starttls")
    auth = tuple(a.auth.split(":", 1)) if a.auth else None
    sink = Sink(cert, key, a.dir, host=a.host, port=a.port, mode=mode,
                chunking=not a.no_chunking, dsn=not a.no_dsn, smtputf8=not a.no_smtputf8,
                strict=not a.lenient, auth=auth, hostname=a.hostname).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(sink.port, flush=True)
    if cert:
        print("tlsa %s" % tlsa_311(cert), flush=True)
    while not stop.wait(0.5):
        pass
    sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
