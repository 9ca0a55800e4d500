"""
The relay sink (tests/lab/sink.py) on its own, with smtplib, swaks and a raw
client: the harness must be right before it judges subproxy.
"""

import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time

import pytest

import sink as labsink
from helpers import (ALICE, ALICE_PW, CLIENT_NAME, RCPT, RELAY_NAME, TIMEOUT, RawClient,
                     client_context, dot_stuff, make_message, swaks)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SinkClient(RawClient):
    """RawClient that checks the certificate for relay.lab.test."""

    def _wrap(self):
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname=RELAY_NAME)
        self.tls = True


def raw(s, certs, **kw):
    return SinkClient(s.port, certs.ca, implicit=s.mode == "implicit", **kw)


def ready(s, certs, **kw):
    """A raw client after TLS and EHLO."""
    c = raw(s, certs, **kw)
    c.greeting.check(220)
    if s.mode == "starttls":
        c.ehlo()
        c.starttls()
    c.ehlo()
    return c


def smtp_client(s, certs):
    if s.mode == "implicit":
        class C(smtplib.SMTP_SSL):
            def _get_socket(self, host, port, timeout):
                sock = socket.create_connection((host, port), timeout)
                return self.context.wrap_socket(sock, server_hostname=RELAY_NAME)
        return C("127.0.0.1", s.port, local_hostname=CLIENT_NAME,
                 context=client_context(certs.ca), timeout=TIMEOUT)
    c = smtplib.SMTP("127.0.0.1", s.port, local_hostname=CLIENT_NAME, timeout=TIMEOUT)
    c._host = RELAY_NAME
    c.starttls(context=client_context(certs.ca))
    return c


def meta(m):
    return {k: v for k, v in m.items() if k != "data"}


# ---- certificates ----

def test_lab_certificates_verify_as_intended(lab_certs, make_sink):
    for cert, key, ok in [(lab_certs.relay, lab_certs.relay_key, None),
                          (lab_certs.expired, lab_certs.expired_key, "expired"),
                          (lab_certs.wrongname, lab_certs.wrongname_key, "match")]:
        s = make_sink(mode="implicit", cert=cert, key=key)
        ctx = client_context(lab_certs.ca)
        with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as sock:
            if ok is None:
                with ctx.wrap_socket(sock, server_hostname=RELAY_NAME) as t:
                    assert t.recv(100).startswith(b"220 relay.lab.test ")
            else:
                with pytest.raises(ssl.SSLCertVerificationError, match=ok):
                    ctx.wrap_socket(sock, server_hostname=RELAY_NAME)
    # every leaf has its own key
    pins = {labsink.spki_sha256(c) for c in (lab_certs.mail, lab_certs.relay, lab_certs.expired,
                                              lab_certs.wrongname)}
    assert len(pins) == 4


def test_tlsa_pin_matches_openssl(lab_certs):
    pub = subprocess.run(["openssl", "x509", "-in", lab_certs.relay, "-noout", "-pubkey"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         capture_output=True, check=True).stdout
    import hashlib
    assert labsink.tlsa_311(lab_certs.relay) == "3 1 1 " + hashlib.sha256(der).hexdigest()


# ---- happy paths ----

@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_smtplib_message_stored_byte_exact(mode, lab_certs, make_sink):
    s = make_sink(mode=mode)
    msg = make_message(body=b".leading dot\r\n..two dots\r\n.\r\nend\r\n")
    with smtp_client(s, lab_certs) as c:
        assert c.sendmail(ALICE, [RCPT, "other@remote.test"], msg,
                          mail_options=["BODY=8BITMIME"], rcpt_options=["NOTIFY=FAILURE"]) == {}
    [m] = s.messages()
    assert m["data"] == msg
    assert m["mail_from"] == ALICE
    assert m["rcpts"] == [RCPT, "other@remote.test"]
    assert m["mail_params"] == {"SIZE": str(len(msg)), "BODY": "8BITMIME"}
    assert m["rcpt_params"] == [{"NOTIFY": "FAILURE"}] * 2
    assert m["method"] == "DATA"
    assert m["size"] == len(msg)
    assert m["tls_version"] in ("TLSv1.3", "TLSv1.2")
    assert m["sni"] == RELAY_NAME
    assert m["violations"] == []
    assert s.data_completions() == 1


def test_ehlo_extensions(lab_certs, make_sink):
    s = make_sink()
    c = raw(s, lab_certs)
    r = c.ehlo()
    assert r.keywords == ["ENHANCEDSTATUSCODES", "STARTTLS"]
    c.cmd("MAIL FROM:<%s>" % ALICE, 530, "5.7.0")
    c.cmd("RCPT TO:<%s>" % RCPT, 530, "5.7.0")
    c.cmd("NOOP", 250, "2.0.0")
    c.starttls()
    r = c.ehlo()
    assert r.keywords == ["PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING",
                          "DSN", "SMTPUTF8"]
    s.configure(chunking=False, dsn=False)
    r = c.ehlo()
    assert "CHUNKING" not in r.keywords and "DSN" not in r.keywords
    c.cmd("MAIL FROM:<%s> RET=HDRS" % ALICE, 555, "5.5.4")
    c.cmd("QUIT", 221, "2.0.0")
    c.expect_closed()


def test_plain_mode_never_offers_starttls(lab_certs, make_sink):
    s = make_sink(mode="plain")
    c = raw(s, lab_certs)
    r = c.ehlo()
    assert "STARTTLS" not in r.keywords
    c.cmd("STARTTLS", 502, "5.5.1")
    c.cmd("MAIL FROM:<%s>" % ALICE, 530, "5.7.0")
    assert s.messages() == []


def test_bdat_chunks_stored_byte_exact(lab_certs, make_sink):
    s = make_sink(mode="implicit")
    msg = make_message(body=b".not stuffed in BDAT\r\n" + (b"x" * 900 + b"\r\n") * 6)
    c = ready(s, lab_certs)
    c.mail(ALICE, "SIZE=%d" % len(msg))
    c.rcpt(RCPT, code=250, enh="2.1.5")
    cut = [0, 7, 100, 101, len(msg)]
    for a, b in zip(cut, cut[1:]):
        c.bdat(msg[a:b], code=250, enh="2.0.0")
    c.bdat(b"", last=True, code=250, enh="2.0.0")
    # second transaction: one LAST chunk, split CRLF across two chunks
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.bdat(msg[:10] + b"\r", code=250)
    c.bdat(b"\n" + msg[12:], last=True, code=250)
    m1, m2 = s.messages()
    assert m1["data"] == msg and m1["method"] == "BDAT"
    assert m2["data"] == msg[:10] + b"\r\n" + msg[12:]
    assert s.data_completions() == 2


def test_data_ends_only_at_crlf_dot_crlf(lab_certs, make_sink):
    s = make_sink(strict=False)
    c = ready(s, lab_certs)
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    payload = (b"Subject: x\r\n\r\na\n.\nMAIL FROM:<x@y>\r\nb\r.\r\nc\r\n"
               b"..\r\n.\r\n")
    c.data(payload, code=250)
    c.cmd("NOOP", 250, "2.0.0")
    assert c.pending() == b""
    [m] = s.messages()
    assert m["data"] == b"Subject: x\r\n\r\na\n.\nMAIL FROM:<x@y>\r\nb\r.\r\nc\r\n.\r\n"
    assert m["violations"] == ["bare CR", "bare LF"]
    # strict (the default): the same message is refused, nothing stored
    s.reset()
    s.configure(strict=True)
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(payload, code=550, enh="5.6.0")
    c.cmd("NOOP", 250, "2.0.0")
    assert s.messages() == []
    assert s.data_completions() == 1


@pytest.mark.parametrize("bad", [b"NUL\0byte", b"x" * 999, b"bare\rCR", b"bare\nLF"])
def test_strict_refusals(bad, lab_certs, make_sink):
    s = make_sink()
    c = ready(s, lab_certs)
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(b"Subject: x\r\n\r\n" + bad + b"\r\n.\r\n", code=550, enh="5.6.0")
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.bdat(b"Subject: x\r\n\r\n" + bad + b"\r\n", last=True, code=550, enh="5.6.0")
    assert s.messages() == []
    # exactly 998 octets is fine
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(b"Subject: x\r\n\r\n" + b"y" * 998 + b"\r\n.\r\n", code=250)
    assert len(s.messages()) == 1


def test_command_syntax(lab_certs, make_sink):
    s = make_sink()
    c = ready(s, lab_certs)
    c.send(b"NOOP\n")
    c.read_reply().check(500, "5.5.2")
    c.send(b"NO\0OP\r\n")
    c.read_reply().check(500, "5.5.2")
    c.cmd("RCPT TO:<%s>" % RCPT, 503, "5.5.1")
    c.cmd("MAIL FROM:<%s> FOO=BAR" % ALICE, 555, "5.5.4")
    c.cmd("MAIL FROM:<%s> SIZE=abc" % ALICE, 501, "5.5.4")
    c.cmd("MAIL FROM:<%s> SIZE=%d" % (ALICE, s.size_limit + 1), 552, "5.3.4")
    c.cmd("MAIL FROM:<j\u00f6rg@lab.test>", 553, "5.6.7")
    c.cmd("MAIL FROM:<j\u00f6rg@lab.test> SMTPUTF8 ENVID=a+2Bb RET=FULL AUTH=<>", 250, "2.1.0")
    c.cmd("RCPT TO:<\u00e5sa@remote.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a@b", 250)
    c.cmd("DATA x", 501, "5.5.4")
    c.cmd("RSET", 250, "2.0.0")
    c.cmd("VRFY x", 252)
    c.cmd("XYZZY", 500)


def test_auth_plain_check(lab_certs, make_sink):
    s = make_sink(auth=(ALICE, ALICE_PW))
    c = ready(s, lab_certs)
    assert c.ehlo().ehlo_param("AUTH") == ["PLAIN"]
    c.cmd("MAIL FROM:<%s>" % ALICE, 530, "5.7.0")
    c.auth_plain(ALICE, "wrong", code=535, enh="5.7.8")
    c.auth_plain(ALICE, ALICE_PW)
    c.mail(ALICE)


def test_swaks_against_the_sink(lab_certs, make_sink, tmp_path):
    """Checks the swaks invocation the subproxy tests use."""
    s = make_sink(auth=(ALICE, ALICE_PW))
    msg = make_message(body=b".dot\r\n..dots\r\nend\r\n")
    r = swaks(s.port, lab_certs.ca, msg, tmp_path, implicit=False, server_name=RELAY_NAME)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    [m] = s.messages()
    assert m["data"] == msg
    s2 = make_sink(mode="implicit", auth=(ALICE, ALICE_PW))
    r = swaks(s2.port, lab_certs.ca, msg, tmp_path, implicit=True, server_name=RELAY_NAME)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert [m["data"] for m in s2.messages()] == [msg]
    # certificate verification is on: another CA makes swaks fail (swaks
    # 20201014 checks the chain only, not the name; other clients check both)
    other_ca = labsink.LabCA().write_ca(str(tmp_path / "other-ca.pem"))
    r = swaks(s2.port, other_ca, msg, tmp_path, implicit=True, server_name=RELAY_NAME)
    assert r.returncode != 0
    assert len(s2.messages()) == 1


# ---- faults ----

def test_fault_rcpt_mail_data_final(lab_certs, make_sink):
    s = make_sink()
    s.set_faults(rcpt={"Busy@remote.test": "450 4.2.1 Mailbox busy",
                       "nouser@remote.test": "550 5.1.1 No such user"})
    c = ready(s, lab_certs)
    c.mail(ALICE)
    c.rcpt("busy@remote.test", code=450, enh="4.2.1")
    c.rcpt("nouser@remote.test", code=550, enh="5.1.1")
    c.rcpt(RCPT, code=250, enh="2.1.5")
    c.data(dot_stuff(make_message()), code=250)
    assert s.messages()[0]["rcpts"] == [RCPT]

    s.reset()
    s.set_faults(mail="550 5.7.1 Go away")
    c.mail(ALICE, code=550, enh="5.7.1")
    c.rcpt(RCPT, code=503, enh="5.5.1")

    s.set_faults(data="451 4.3.0 Not now")
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.cmd("DATA", 451, "4.3.0")
    c.cmd("RSET", 250)

    for final in ("451 4.3.0 Try later", "554 5.6.0 Rejected"):
        s.set_faults(final=final)
        c.mail(ALICE)
        c.rcpt(RCPT, code=250)
        c.data(dot_stuff(make_message()), code=int(final[:3]), enh=final[4:9])
        c.mail(ALICE)
        c.rcpt(RCPT, code=250)
        c.bdat(make_message(), last=True, code=int(final[:3]), enh=final[4:9])
    assert s.messages() == []
    assert s.data_completions() == 4


def test_fault_drop_after_354(lab_certs, make_sink):
    s = make_sink()
    s.set_faults(drop_after_354=True)
    c = ready(s, lab_certs)
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.cmd("DATA", 354)
    c.expect_closed()
    assert s.data_starts() == 1 and s.data_completions() == 0


@pytest.mark.parametrize("method", ["DATA", "BDAT"])
def test_fault_drop_after_bytes(method, lab_certs, make_sink):
    s = make_sink()
    s.set_faults(drop_after_bytes=3000)
    msg = make_message(body=b"z" * 100 + b"\r\n" * 100 + b"y" * 900 + b"\r\n" * 10)
    msg = msg * 1
    big = msg + b"q" * 20000 + b"\r\n"
    c = ready(s, lab_certs)
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    if method == "DATA":
        c.cmd("DATA", 354)
        try:
            c.send(dot_stuff(big))
        except OSError:
            pass
    else:
        try:
            c.send(b"BDAT %d LAST\r\n" % len(big) + big)
        except OSError:
            pass
    with pytest.raises(AssertionError, match="closed"):
        c.read_reply()
    assert s.messages() == []
    assert s.data_completions() == 0
    assert any(e.startswith("drop: after ") for e in s.sessions()[0]["events"])


def test_fault_close_after_greeting_and_greeting_reply(lab_certs, make_sink):
    s = make_sink()
    s.set_faults(close_after_greeting=True)
    c = raw(s, lab_certs)
    c.greeting.check(220)
    c.expect_closed()
    s.set_faults(greeting="554 5.3.2 No service")
    c = raw(s, lab_certs)
    c.greeting.check(554, "5.3.2")
    c.expect_closed()


def test_fault_delay_and_peer_gone(lab_certs, make_sink):
    s = make_sink()
    s.set_faults(delay={"final": 0.5, "rcpt": 0.2})
    c = ready(s, lab_certs)
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(make_message()), code=250)
    assert len(s.messages()) == 1
    # the client leaves while the sink delays its final reply: not stored
    s.reset()
    s.set_faults(delay={"final": 1.0})
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.cmd("DATA", 354)
    c.send(dot_stuff(make_message()))
    assert s.wait_for(lambda k: k.data_completions() == 1)
    c.sock.close()
    assert s.wait_for(lambda k: all(x["closed"] for x in k.sessions()))
    assert s.messages() == []
    with pytest.raises(ValueError):
        labsink.Faults(delay={"nonsense": 1})


def test_reset_clears_store_and_sessions(lab_certs, make_sink):
    s = make_sink()
    with smtp_client(s, lab_certs) as c:
        c.sendmail(ALICE, [RCPT], make_message())
    assert len(s.messages()) == 1 and s.sessions()
    s.set_faults(mail="550 5.0.0 no")
    s.reset()
    assert s.messages() == [] and s.faults == labsink.Faults()
    assert all(not r["commands"] and not r["stored"] for r in s.sessions())
    assert [n for n in os.listdir(s.directory)] == []


def test_cli(lab_certs, tmp_path):
    store = tmp_path / "store"
    p = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "lab", "sink.py"),
                          "--port", "0", "--cert", lab_certs.relay, "--key", lab_certs.relay_key,
                          "--dir", str(store), "--implicit"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(p.stdout.readline())
        assert p.stdout.readline().decode().strip() == "tlsa " + labsink.tlsa_311(lab_certs.relay)

        class C(smtplib.SMTP_SSL):
            def _get_socket(self, host, port_, timeout):
                sock = socket.create_connection((host, port_), timeout)
                return self.context.wrap_socket(sock, server_hostname=RELAY_NAME)
        msg = make_message()
        with C("127.0.0.1", port, local_hostname=CLIENT_NAME, context=client_context(lab_certs.ca),
               timeout=TIMEOUT) as c:
            c.sendmail(ALICE, [RCPT], msg)
        assert (store / "1.eml").read_bytes() == msg
        assert (store / "1.json").exists()
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(15)
    assert rc == 0, p.stderr.read()


def test_stop_with_open_sessions(lab_certs, tmp_path):
    s = labsink.Sink(lab_certs.relay, lab_certs.relay_key, tmp_path / "s").start()
    c = raw(s, lab_certs)
    c.greeting.check(220)
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 10
    c.expect_closed()
    s.stop()        # idempotent
