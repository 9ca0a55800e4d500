"""
Behind a real HAProxy (Debian's haproxy, TCP mode, send-proxy and
send-proxy-v2) on both the STARTTLS and the implicit-TLS listener: the
client's own address (clients connect from 127.0.0.2, 127.0.0.3, ...; the
balancer reaches subproxy from 127.0.0.1) is what Received, the logs and the
per-address limits see.  Headers from a source not in proxy-from, garbage,
truncated, oversized or late headers close the connection without a word,
are logged and counted (subproxy_proxy_refused_total{reason}), and leave
the service working.  The attack tests are marked `sanitized`: they pass
against the ASan/UBSan build too.
"""

import re
import select
import socket
import struct

import pytest

from helpers import ALICE, BOB, BOB_PW, RCPT, RawClient, dot_stuff, make_message
from opsutil import scrape, val
from test_auditlog import validate_all
from test_metrics import start as start_with_metrics
import auditlab
import peers

LISTENERS = ("submissions", "submission")     # implicit TLS, STARTTLS


def proxy_overrides(proxy_from="127.0.0.1", timeout="2"):
    out = []
    for name in LISTENERS:
        out += ["listen.%s.proxy-protocol=yes" % name,
                "listen.%s.proxy-from=%s" % (name, proxy_from),
                "listen.%s.proxy-timeout=%s" % (name, timeout)]
    return out


def start_haproxy(lab, sp, name="haproxy"):
    routes = {}
    for version, send in (("v1", "send-proxy"), ("v2", "send-proxy-v2")):
        routes["implicit_" + version] = (sp.implicit_port, send)
        routes["starttls_" + version] = (sp.starttls_port, send)
    d = lab.tmp / name
    d.mkdir(exist_ok=True)
    return peers.HAProxy(d, routes).start()


@pytest.fixture(scope="module")
def env(module_lab):
    s = module_lab.sink()
    sp, port = start_with_metrics(module_lab, s, overrides=proxy_overrides())
    sp.metrics_port = port
    hp = start_haproxy(module_lab, sp)
    yield module_lab, s, sp, hp
    hp.stop()


def refused(sp, reason):
    """subproxy_proxy_refused_total{reason} now."""
    return val(scrape(sp.metrics_port), "subproxy_proxy_refused_total", reason=reason)


def client(lab, hp, mode, version, source):
    c = RawClient(hp.port("%s_%s" % (mode, version)), lab.certs.ca,
                  implicit=mode == "implicit", source=source)
    c.greeting.check(220)
    return c


def submit(c, subject):
    c.login()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    r = c.data(dot_stuff(make_message(subject=subject)))
    r.check(250, "2.0.0")
    c.cmd("QUIT", 221)


@pytest.mark.parametrize("mode,version,source", [
    ("starttls", "v1", "127.0.0.2"), ("starttls", "v2", "127.0.0.3"),
    ("implicit", "v1", "127.0.0.4"), ("implicit", "v2", "127.0.0.5"),
])
def test_real_client_address(env, mode, version, source):
    lab, s, sp, hp = env
    subject = "via haproxy %s %s" % (mode, version)
    start = len(sp.lines)
    submit(client(lab, hp, mode, version, source), subject)
    msg = [m for m in s.messages() if subject.encode() in m["data"]]
    assert len(msg) == 1
    head = msg[0]["data"].split(b"\r\n\r\n", 1)[0].decode()
    received = re.search(r"Received: from .*?;", head, re.S).group(0)
    assert "([%s])" % source in received, received
    assert "127.0.0.1" not in received, received
    line = sp.wait_log(r"event=connect peer=%s port=\d+ listener=%s via=127\.0\.0\.1 proxy=%s"
                       % (re.escape(source), LISTENERS[mode == "starttls"], version),
                       start=start)
    assert line, sp.stderr_text(40)
    assert sp.wait_log(r"event=auth peer=%s login=%s result=ok" % (re.escape(source),
                                                                   re.escape(ALICE)),
                       start=start)


def expect_silent_close(sock, timeout=10):
    """The server closes without sending a byte."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("the server did not close the connection") from None
    finally:
        sock.close()
    assert got == b"", "the server sent %r" % got


def v2_header(length=12, block=None):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    block = block if block is not None else bytes([127, 0, 0, 9, 127, 0, 0, 1, 0, 5, 2, 75])
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", length) + block


def tls_client_hello():
    """The first bytes a TLS client sends (a real ClientHello prefix)."""
    return bytes.fromhex("16030100c4010000c00303") + b"\x00" * 32


# what is sent, whether the sender then shuts its side, the logged reason,
# and the reason label of subproxy_proxy_refused_total
BAD_HEADERS = {
    "garbage": (b"EHLO client.lab.test\r\n", False, "not a PROXY protocol header", "invalid"),
    "tls-without-header": (tls_client_hello(), False, "not a PROXY protocol header",
                           "invalid"),
    "bad-v1": (b"PROXY TCP4 2001:db8::1 127.0.0.1 5 6\r\n", False, "v1: bad address",
               "invalid"),
    "oversized-v2": (v2_header(length=0xffff) + b"\x00" * 64, False,
                     "v2: header longer than 1024 octets", "invalid"),
    "oversized-v1": (b"PROXY UNKNOWN " + b"x" * 200, False, "v1: no CRLF within 107 octets",
                     "invalid"),
    "truncated-v2": (v2_header()[:20], True,
                     "connection closed before the PROXY header was complete", "closed"),
    "truncated-late": (b"PROXY TCP4 127.0.0.9 127.0.0.1 5", False,
                       "no complete PROXY header within the timeout", "timeout"),
    "nothing": (b"", False, "no complete PROXY header within the timeout", "timeout"),
}


@pytest.mark.sanitized
@pytest.mark.parametrize("what", sorted(BAD_HEADERS))
@pytest.mark.parametrize("listener", LISTENERS)
def test_bad_header_closed(env, what, listener):
    lab, s, sp, hp = env
    data, shut, reason, label = BAD_HEADERS[what]
    port = sp.implicit_port if listener == "submissions" else sp.starttls_port
    start = len(sp.lines)
    counted = refused(sp, label)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if data:
        sock.sendall(data)
    if shut:
        sock.shutdown(socket.SHUT_WR)
    expect_silent_close(sock)
    line = sp.wait_log(r"event=proxy-refused peer=127\.0\.0\.1 listener=%s .*reason=\"%s"
                       % (listener, re.escape(reason)), start=start)
    assert line, sp.stderr_text(20)
    assert "event=connect" not in sp.stderr_text(len(sp.lines) - start)
    assert refused(sp, label) == counted + 1
    # the service is unaffected
    submit(client(lab, hp, "implicit", "v2", "127.0.0.6"), "after %s on %s" % (what, listener))


@pytest.mark.sanitized
def test_header_from_unlisted_source(env):
    """A valid header, but from 127.0.0.7, which is not in proxy-from."""
    lab, s, sp, hp = env
    start = len(sp.lines)
    counted = refused(sp, "source")
    sock = socket.create_connection(("127.0.0.1", sp.starttls_port), timeout=10,
                                    source_address=("127.0.0.7", 0))
    sock.sendall(b"PROXY TCP4 192.0.2.1 127.0.0.1 5000 587\r\nEHLO x\r\n")
    expect_silent_close(sock)
    assert sp.wait_log(r"event=proxy-refused peer=127\.0\.0\.7 listener=submission "
                       r"reason=\"not in proxy-from\"", start=start)
    assert "192.0.2.1" not in sp.stderr_text(len(sp.lines) - start)
    assert refused(sp, "source") == counted + 1


@pytest.mark.sanitized
def test_direct_client_without_balancer(env):
    """A client that reaches the proxy-protocol listener directly (from an
    allowed address, but speaking SMTP first) gets nothing."""
    lab, s, sp, hp = env
    sock = socket.create_connection(("127.0.0.1", sp.starttls_port), timeout=10)
    sock.settimeout(1)
    with pytest.raises(socket.timeout):
        sock.recv(10)          # no greeting: the header must come first
    sock.close()


@pytest.mark.sanitized
def test_limits_apply_to_the_real_client(lab):
    """connections-per-ip and messages-per-hour count 127.0.0.2 and
    127.0.0.3 apart, although both arrive from the balancer's 127.0.0.1."""
    s = lab.sink()
    sp = lab.subproxy(s, overrides=proxy_overrides(),
                      limits={"connections-per-ip": 1, "messages-per-hour": 1},
                      extra_config='[login "%s"]\nmessages-per-hour = 100\n' % ALICE)
    hp = start_haproxy(lab, sp, "haproxy-limits")
    try:
        a = client(lab, hp, "starttls", "v2", "127.0.0.2")
        b = RawClient(hp.port("starttls_v2"), lab.certs.ca, implicit=False, source="127.0.0.2")
        b.greeting.check(421, "4.7.0")
        b.expect_closed()
        c = client(lab, hp, "starttls", "v1", "127.0.0.3")
        # messages-per-hour = 1 per address: the second MAIL from .2 waits
        a.login()
        a.mail(ALICE)
        a.rcpt(RCPT, code=250)
        a.data(dot_stuff(make_message()), code=250)
        r = a.cmd("MAIL FROM:<%s>" % ALICE)
        r.check(450, "4.7.1")
        assert "messages-per-hour 1 for your address" in r.text, r
        a.cmd("QUIT", 221)
        c.login()
        c.mail(ALICE)
        c.cmd("QUIT", 221)
        assert sp.wait_log(r"event=rate-limit limit=messages-per-hour subject=address "
                           r"key=127\.0\.0\.2 peer=127\.0\.0\.2")
    finally:
        hp.stop()


def test_health_checks_local(lab):
    """HAProxy's health checks (check-send-proxy with send-proxy-v2) use the
    LOCAL command: subproxy serves them as connections of the balancer
    itself, and clients are served as before."""
    s = lab.sink()
    sp = lab.subproxy(s, overrides=proxy_overrides())
    d = lab.tmp / "haproxy-checks"
    d.mkdir()
    hp = peers.HAProxy(d, {"starttls_v2": (sp.starttls_port, "send-proxy-v2")},
                       checks=True).start()
    try:
        assert sp.wait_log(r"event=connect peer=127\.0\.0\.1 port=\d+ listener=submission "
                           r"via=127\.0\.0\.1 proxy=local"), sp.stderr_text(20)
        submit(client(lab, hp, "starttls", "v2", "127.0.0.8"), "with health checks")
        assert "proxy-refused" not in sp.stderr_text()[sp.stderr_text().find("proxy=local"):]
    finally:
        hp.stop()


def test_haproxy_port_taken_meanwhile(lab, monkeypatch):
    """A frontend port taken by another process before HAProxy binds it:
    start() does not take that listener for HAProxy's, it starts HAProxy
    again on another port (the same trap as Postfix's: test_xclient.py)."""
    from test_xclient import taken_port_first
    taken, other = taken_port_first(monkeypatch, 1)
    try:
        sp = lab.subproxy(lab.sink(), overrides=proxy_overrides())
        d = lab.tmp / "haproxy-taken"
        d.mkdir()
        hp = peers.HAProxy(d, {"starttls_v1": (sp.starttls_port, "send-proxy")}).start()
        try:
            assert hp.port("starttls_v1") != taken and hp.proc.poll() is None, hp.report()
            submit(client(lab, hp, "starttls", "v1", "127.0.0.9"), "port taken meanwhile")
        finally:
            hp.stop()
    finally:
        other.close()


def v1(src, port=40000):
    """A PROXY v1 header naming src (IPv4 or IPv6) as the client."""
    if ":" in src:
        return ("PROXY TCP6 %s ::1 %d 587\r\n" % (src, port)).encode()
    return ("PROXY TCP4 %s 127.0.0.1 %d 587\r\n" % (src, port)).encode()


@pytest.mark.sanitized
def test_ipv6_client_counts_by_configured_prefix(lab):
    """An IPv6 client named by the header is counted by [limits]
    ipv6-prefix (48 here) everywhere: connections-per-ip and the
    per-address rate limits use one key, 2001:db8:1::/48, although the
    connections come from the balancer's 127.0.0.1."""
    s = lab.sink()
    sp, mport = start_with_metrics(lab, s, overrides=proxy_overrides(),
                                   limits={"connections-per-ip": 1, "messages-per-hour": 1,
                                           "ipv6-prefix": 48},
                                   extra_config='[login "%s"]\nmessages-per-hour = 100\n'
                                   % ALICE)
    port = sp.starttls_port
    a = RawClient(port, lab.certs.ca, implicit=False, proxy=v1("2001:db8:1:2::5"))
    a.greeting.check(220)
    # the same /48: refused as the same client
    b = RawClient(port, lab.certs.ca, implicit=False, proxy=v1("2001:db8:1:ff::9"))
    b.greeting.check(421, "4.7.0")
    b.expect_closed()
    assert sp.wait_log(r"event=refused peer=2001:db8:1:ff::9 key=2001:db8:1::/48 "), \
        sp.stderr_text(20)
    # another /48 is another client
    c = RawClient(port, lab.certs.ca, implicit=False, proxy=v1("2001:db8:2::1"))
    c.greeting.check(220)
    a.login()
    a.mail(ALICE)
    a.cmd("QUIT", 221)
    a.close()
    c.login()
    c.mail(ALICE)
    c.cmd("QUIT", 221)
    c.close()
    for peer in ("2001:db8:1:2::5", "2001:db8:2::1"):
        assert sp.wait_log(r"event=close peer=%s " % peer), sp.stderr_text(20)
    # a third address of the first /48 finds its message bucket empty
    d = RawClient(port, lab.certs.ca, implicit=False, proxy=v1("2001:db8:1:3::7"))
    d.greeting.check(220)
    d.login()
    r = d.cmd("MAIL FROM:<%s>" % ALICE)
    r.check(450, "4.7.1")
    assert "messages-per-hour 1 for your address" in r.text, r
    d.cmd("QUIT", 221)
    assert sp.wait_log(r"event=rate-limit limit=messages-per-hour subject=address "
                       r"key=2001:db8:1::/48 peer=2001:db8:1:3::7"), sp.stderr_text(20)
    m = scrape(mport)
    assert val(m, "subproxy_ratelimit_refused_total", limit="messages-per-hour") == 1
    for limit in ("recipients-per-hour", "auth-per-minute", "sessions-per-login"):
        assert val(m, "subproxy_ratelimit_refused_total", limit=limit) == 0
    assert val(m, "subproxy_messages_refused_total", code="4.7.1") == 1


@pytest.mark.sanitized
def test_waiting_headers_count_against_connections(lab):
    """Connections still waiting for their header count against [limits]
    connections: beyond it the balancer's next connection is closed without
    a word (reason connections), and the waiting one is served once its
    header comes."""
    sp, mport = start_with_metrics(lab, lab.sink(), overrides=proxy_overrides(timeout="30"),
                                   limits={"connections": 2, "connections-per-ip": 10})
    port = sp.starttls_port
    a = RawClient(port, lab.certs.ca, implicit=False, proxy=v1("192.0.2.1"))
    a.greeting.check(220)
    before = val(scrape(mport), "subproxy_proxy_refused_total", reason="connections")
    start = len(sp.lines)
    # two connections without a header: with several front workers either
    # may be accepted first, so the one closed is whichever came second
    w = socket.create_connection(("127.0.0.1", port), timeout=10)
    x = socket.create_connection(("127.0.0.1", port), timeout=10)
    ready, _, _ = select.select([w, x], [], [], 10)
    assert len(ready) == 1, "expected exactly one of two waiting connections closed: %r" % (
        ready,)
    if ready[0] is w:
        w, x = x, w
    expect_silent_close(x)
    assert sp.wait_log(r"event=refused peer=127\.0\.0\.1 listener=submission "
                       r"reason=\"too many connections \(waiting for a PROXY header\)\"",
                       start=start), sp.stderr_text(20)
    assert val(scrape(mport), "subproxy_proxy_refused_total", reason="connections") == \
        before + 1
    w.sendall(v1("192.0.2.2"))
    w.settimeout(10)
    assert w.recv(512).startswith(b"220 ")
    w.close()
    a.cmd("QUIT", 221)


def test_audit_records_name_the_real_client(lab, tmp_path):
    """The audit log's AUTH, transaction and refusal records name the client
    of the PROXY header, not the balancer; refusals by rate limits are
    recorded with the limit as their reason."""
    audit = auditlab.AuditLog(tmp_path / "auditwork")
    try:
        sp = lab.subproxy(lab.sink(), overrides=proxy_overrides() + audit.overrides(),
                          limits={"messages-per-hour": 1, "auth-per-minute": 1})
        a = RawClient(sp.starttls_port, lab.certs.ca, implicit=False, proxy=v1("192.0.2.10"))
        a.greeting.check(220)
        a.login()
        a.mail(ALICE)
        a.rcpt(RCPT, code=250)
        a.data(dot_stuff(make_message(subject="audited")), code=250)
        a.cmd("MAIL FROM:<%s>" % ALICE).check(450, "4.7.1")
        a.cmd("QUIT", 221)
        b = RawClient(sp.implicit_port, lab.certs.ca, proxy=v1("192.0.2.11"))
        b.greeting.check(220)
        b.ehlo()
        b.auth_plain(BOB, BOB_PW + "x", code=535, enh="5.7.8")
        b.auth_plain(BOB, BOB_PW, code=454, enh="4.7.0")
        b.cmd("QUIT", 221)
        sp.stop()
        recs = audit.records()
        validate_all(recs)
        front = [r for r in recs if r["type"] in ("auth", "txn", "refusal")]
        assert front and all(r["client"] in ("192.0.2.10", "192.0.2.11") for r in front), front
        ok = [r for r in front if r["type"] == "auth" and r["result"] == "ok"]
        assert [(r["client"], r["login"]) for r in ok] == [("192.0.2.10", ALICE)], ok
        txn = [r for r in front if r["type"] == "txn"]
        assert len(txn) == 1 and txn[0]["client"] == "192.0.2.10", txn
        refusals = sorted((r["stage"], r["reason"], r["client"], r["login"], r["code"], r["enh"])
                          for r in front if r["type"] == "refusal")
        assert refusals == [("auth", "auth-per-minute", "192.0.2.11", BOB, 454, "4.7.0"),
                            ("mail", "messages-per-hour", "192.0.2.10", ALICE, 450, "4.7.1")], \
            refusals
    finally:
        audit.remove()
