"""
test_metrics.py -- the [metrics] exposition: scraped with curl, parsed with
python3-prometheus-client's Prometheus and OpenMetrics parsers, and the
counters must equal what the test did.  The responder is attacked too:
wrong paths and methods, malformed and oversized requests, idle and too
many scrapers.
"""

import socket
import time

import pytest

from helpers import (ALICE, BOB, BOB_PW, RCPT, RawClient, dot_stuff, free_port, make_message,
                     submit_through)
from opsutil import OPENMETRICS, curl, parse, scrape, val, wait_for

N_RELAYED = 3
M_REFUSED = 2
K_AUTH_FAIL = 2


def metrics_config(port=None, unix=None):
    addr = "unix:%s" % unix if unix else "127.0.0.1:%d" % port
    return "[metrics]\naddress = %s\n" % addr


def start(lab, sink, extra_config="", **kw):
    """A daemon with metrics on a free TCP port; returns (daemon, port)."""
    for _ in range(3):
        port = free_port()
        sp = lab.subproxy(sink, extra_config=metrics_config(port) + extra_config, **kw)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return sp, port
        except OSError:
            sp.stop()
    pytest.fail("no metrics port")


def counters(m):
    """The counter samples of a scrape (name ends in _total), as a dict."""
    return {k: v for k, v in m.items() if k[0].endswith("_total")}


def delta(before, after):
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def test_counters_equal_what_was_done(lab, make_sink, lab_certs):
    sink = make_sink()
    sp, port = start(lab, sink)
    # the capability probe: its verified connection is then kept for reuse
    sp.wait_relay_probe()
    before = scrape(port)
    ca = lab_certs.ca
    # N messages relayed
    for _ in range(N_RELAYED):
        submit_through(sp.implicit_port, ca, 250, "2.0.0")
    # M refused with 5.7.1: alice may not send as bob
    for _ in range(M_REFUSED):
        c = RawClient(sp.implicit_port, ca)
        c.login()
        c.mail(BOB, code=553, enh="5.7.1")
        c.cmd("QUIT", 221)
        c.close()
    # K AUTH failures
    for _ in range(K_AUTH_FAIL):
        c = RawClient(sp.implicit_port, ca)
        c.ehlo()
        c.auth_plain(BOB, BOB_PW + "x", code=535, enh="5.7.8")
        c.cmd("QUIT", 221)
        c.close()
    wait_for(lambda: val(scrape(port), "subproxy_sessions_open") == 0, what="sessions closed")
    after = scrape(port)
    d = delta(counters(before), counters(after))
    n_sessions = N_RELAYED + M_REFUSED + K_AUTH_FAIL
    expect = {
        ("subproxy_sessions_total", ()): n_sessions,
        ("subproxy_auth_total", (("result", "ok"),)): N_RELAYED + M_REFUSED,
        ("subproxy_auth_total", (("result", "fail"),)): K_AUTH_FAIL,
        # alice's first login is verified by Argon2id, the others by the
        # keeper's auth cache (one after the other: each finds the entry)
        ("subproxy_auth_cache_hits_total", ()): N_RELAYED + M_REFUSED - 1,
        # Argon2id: alice's first login and bob's wrong passwords
        ("subproxy_auth_cache_misses_total", ()): 1 + K_AUTH_FAIL,
        ("subproxy_messages_relayed_total", ()): N_RELAYED,
        ("subproxy_messages_refused_total", (("code", "5.7.1"),)): M_REFUSED,
        ("subproxy_dkim_signatures_total", (("algorithm", "ed25519-sha256"),)): N_RELAYED,
        ("subproxy_dkim_signatures_total", (("algorithm", "rsa-sha256"),)): N_RELAYED,
        # all over the probe's connection: verified once, before, and reused
        ("subproxy_relay_connections_reused_total", (("result", "alive"),)): N_RELAYED,
    }
    assert d == expect, "counter changes %r, expected %r\n%s" % (d, expect,
                                                                  sp.stderr_text(40))
    assert len(sink.messages()) == N_RELAYED
    # the relay answered MAIL, RCPT and the message once per relayed message
    for cmd in ("mail", "rcpt", "data"):
        key = ("subproxy_relay_reply_seconds_count", (("command", cmd),))
        assert after[key] - before.get(key, 0) == N_RELAYED, (cmd, after[key])
        inf = ("subproxy_relay_reply_seconds_bucket", (("command", cmd), ("le", "+Inf")))
        assert after[inf] == after[key]
    # labels that exist before anything happened, and stay 0 for now
    assert val(after, "subproxy_reloads_total", result="ok") == 0
    assert val(after, "subproxy_reloads_total", result="failed") == 0
    assert val(after, "subproxy_auth_total", result="locked") == 0
    # no session ended while its password check waited (test_authcache.py,
    # test_client_close.py)
    assert val(after, "subproxy_auth_cancelled_total") == 0
    assert val(after, "subproxy_sessions_open") == 0
    wait_for(lambda: val(scrape(port), "subproxy_auth_queue_checks") == 0,
             what="no password check held")
    # every signature came: none awaited, none in line (test_signer_line.py)
    assert val(after, "subproxy_signer_messages") == 0
    assert val(after, "subproxy_signer_waiting_messages") == 0
    # the start-up audit's results, one per check id
    assert val(after, "subproxy_audit_check_ok", check="dane.own.submissions") == 1
    assert val(after, "subproxy_audit_check_ok", check="tls.key.match") == 1
    assert val(after, "subproxy_build_info", version="0.1.0") == 1
    assert val(after, "subproxy_start_time_seconds") > 1.6e9
    # the same numbers in OpenMetrics, parsed by its own (stricter) parser
    om = scrape(port, openmetrics=True)
    assert val(om, "subproxy_messages_relayed_total") == val(after,
                                                              "subproxy_messages_relayed_total")
    assert val(om, "subproxy_build_info", version="0.1.0") == 1


def test_responder_refuses_what_is_not_a_scrape(lab, make_sink):
    sink = make_sink()
    sp, port = start(lab, sink)
    base = "http://127.0.0.1:%d" % port
    assert curl(base + "/")[0] == 404
    assert curl(base + "/metricsx")[0] == 404
    status, head, _ = curl(base + "/metrics", method="POST")
    assert status == 405 and "allow: get, head" in head.lower()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n")
        resp = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and body == b"", resp[:300]
    assert int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]) > 1000
    for raw, code in ((b"GET /metrics HTTP/2.0\r\n\r\n", 400),
                      (b"GET /metrics\r\n\r\n", 400),
                      (b"GET /metrics HTTP/1.1\nHost: x\n\n", 400),
                      (b"GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n", 400),
                      (b"GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n", 400),
                      (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n", 431),
                      (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 100, 400)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(raw)
            resp = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                resp += chunk
        assert resp.startswith(b"HTTP/1.1 %d " % code), (raw[:60], resp[:200])
        assert b"connection: close" in resp.lower()
    # still serving: the refusals touched nothing else
    m = scrape(port)
    assert val(m, "subproxy_sessions_open") == 0
    assert sp.alive()


def test_responder_bounds_idle_and_concurrent_scrapers(lab, make_sink):
    sink = make_sink()
    sp, port = start(lab, sink, server={"workers": 1})     # the bound is each worker's
    idle = [socket.create_connection(("127.0.0.1", port), timeout=15) for _ in range(4)]
    # a fifth scraper is closed at once (nothing is read or written)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
    assert sp.wait_log(r"event=metrics-busy", timeout=5)
    # the idle ones are closed after the timeout (5 s), without a response
    t0 = time.monotonic()
    for s in idle:
        assert s.recv(100) == b""
        s.close()
    assert time.monotonic() - t0 < 15
    scrape(port)            # room again


def test_unix_socket(lab, make_sink, tmp_path):
    sink = make_sink()
    path = str(tmp_path / "metrics.sock")
    sp = lab.subproxy(sink, extra_config=metrics_config(unix=path))
    m = scrape(unix=path)
    assert val(m, "subproxy_sessions_total") >= 0
    assert val(m, "subproxy_audit_check_ok", check="dane.own.submission") == 1
    sp.stop()
    # a stale socket from the stopped daemon does not prevent the next start
    sp2 = lab.subproxy(sink, extra_config=metrics_config(unix=path))
    scrape(unix=path, openmetrics=True)
    sp2.stop()


def test_formats_parse_after_traffic_with_refusals_of_every_kind(lab, make_sink, lab_certs):
    """Relay refusals pass their own codes on: a code outside subproxy's
    list is counted as 4.x.x / 5.x.x, not as a new label."""
    sink = make_sink()
    sp, port = start(lab, sink)
    sink.set_faults(final="554 5.7.26 rejected by policy")
    c = RawClient(sp.implicit_port, lab_certs.ca)
    c.login()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    r = c.data(dot_stuff(make_message()))
    assert (r.code, r.enh) == (554, "5.7.26")
    c.cmd("QUIT", 221)
    m = scrape(port)
    assert val(m, "subproxy_messages_refused_total", code="5.x.x") == 1
    assert val(m, "subproxy_messages_relayed_total") == 0
    codes = {dict(k[1])["code"] for k in m if k[0] == "subproxy_messages_refused_total"}
    assert "5.7.26" not in codes and len(codes) == 24
    parse(curl("http://127.0.0.1:%d/metrics" % port, accept=OPENMETRICS)[2], True)
