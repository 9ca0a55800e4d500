"""
Relay connection reuse (src/relay.h, relay_pool.c): verified connections
kept per relay and taken up again with RSET then MAIL; an idle timeout and
a cap on transactions per connection; a pooled connection found dead before
the relay accepted MAIL replaced without the client noticing, one lost after
that a 4xx; XCLIENT connections kept to their client session; TLS session
resumption towards the relay with DANE checked on the resumed session; a
changed TLSA set honoured by new connections; 100 concurrent sessions.

The sink counts connections, full and resumed TLS handshakes (tls_resumed
in its session records) and stores what it accepted, so that every test can
show that nothing was lost, duplicated, or acknowledged without the relay.

The pool (and the TLS session it resumes) is each front worker's own: the
daemons that count connections run one worker, so that every transaction
meets the same pool.
"""

import re
import threading
import time

import pytest

import dnslab
import sink as labsink
from conftest import dns_section
from helpers import ALICE, RCPT, RELAY_NAME, RawClient, dot_stuff, make_message
from opsutil import scrape, val
from test_metrics import start as start_with_metrics

RELAY_TIMEOUT = 5


def login(sp, certs):
    c = RawClient(sp.implicit_port, certs.ca)
    c.greeting.check(220)
    return c.login()


def send(c, subject, code=250, enh=None):
    """One message (MAIL, RCPT, DATA); returns the final reply."""
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    return c.data(dot_stuff(make_message(subject=subject)), code=code, enh=enh)


def subjects(sink):
    out = []
    for m in sink.messages():
        hit = re.search(rb"(?m)^Subject: (.*)\r$", m["data"])
        out.append(hit.group(1).decode() if hit else None)
    return out


def mails(rec):
    return sum(1 for x in rec["commands"] if x.upper().startswith("MAIL "))


def daemon(lab, sink, **relay_keys):
    """A daemon relaying to sink ([relay] keys given with _ for -), once its
    start-up probe is done (its connection is then the pool's first)."""
    extra = {k.replace("_", "-"): v for k, v in relay_keys.items()}
    sp = lab.subproxy({"sink": sink, "extra": extra}, server={"workers": 1})
    sp.wait_relay_probe()
    return sp


# ---- reuse ----

@pytest.mark.parametrize("pipelining", [True, False])
def test_messages_share_one_connection(lab, pipelining):
    """Three messages in one session and two in another: one relay
    connection (the start-up probe's), one TLS handshake, RSET before every
    MAIL on it."""
    s = lab.sink(pipelining=pipelining)
    sp = daemon(lab, s)
    a = login(sp, lab.certs)
    for i in range(3):
        send(a, "a%d" % i)
    a.cmd("QUIT", 221)
    b = login(sp, lab.certs)
    for i in range(2):
        send(b, "b%d" % i)
    b.cmd("QUIT", 221)
    assert subjects(s) == ["a0", "a1", "a2", "b0", "b1"]
    [rec] = s.sessions()
    assert s.handshakes() == (1, 0)
    assert mails(rec) == 5 and not rec["closed"]
    cmds = [x.split(" ")[0].upper() for x in rec["commands"]]
    # every MAIL on the kept connection comes after an RSET
    for i, x in enumerate(cmds):
        if x == "MAIL":
            assert cmds[i - 1] == "RSET", cmds
    assert len({m["session"] for m in s.messages()}) == 1
    assert sp.wait_log(r"event=relayed .* conn=reused", timeout=1)


def test_connections_zero_opens_one_per_transaction(lab):
    s = lab.sink()
    sp = daemon(lab, s, connections=0)
    c = login(sp, lab.certs)
    send(c, "one")
    send(c, "two")
    c.cmd("QUIT", 221)
    assert subjects(s) == ["one", "two"]
    recs = s.wait_for(lambda x: [r for r in x.sessions() if r["closed"]] if all(
        r["closed"] for r in x.sessions()) else None)
    assert recs, s.sessions()
    # the probe's connection and one per message, each ended with QUIT
    assert len(recs) == 3
    assert all(r["commands"][-1].upper() == "QUIT" for r in recs), recs
    assert [mails(r) for r in recs] == [0, 1, 1]


def test_max_transactions(lab):
    s = lab.sink()
    sp = daemon(lab, s, max_transactions=2)
    c = login(sp, lab.certs)
    for i in range(5):
        send(c, "m%d" % i)
    assert subjects(s) == ["m%d" % i for i in range(5)]
    recs = s.sessions()
    assert [mails(r) for r in recs] == [2, 2, 1], recs
    # the full ones were ended with QUIT, the last one is kept
    done = s.wait_for(lambda x: all(r["closed"] for r in x.sessions()[:2]))
    assert done and all(r["commands"][-1].upper() == "QUIT" for r in s.sessions()[:2])
    assert not s.sessions()[2]["closed"]
    c.cmd("QUIT", 221)


def test_idle_timeout(lab):
    s = lab.sink()
    sp = daemon(lab, s, idle_timeout=1)
    c = login(sp, lab.certs)
    send(c, "first")
    # the idle connection is ended with QUIT after about a second
    assert s.wait_for(lambda x: all(r["closed"] for r in x.sessions()), timeout=15), \
        s.sessions()
    assert all(r["commands"][-1].upper() == "QUIT" for r in s.sessions())
    assert sp.wait_log(r"event=relay-close reason=idle-timeout"), sp.stderr_text(20)
    n = s.connections()
    send(c, "second")
    assert s.connections() == n + 1
    assert subjects(s) == ["first", "second"]
    c.cmd("QUIT", 221)


def burst(a, b, tag):
    """Two transactions at once (both MAILs before either message)."""
    a.mail(ALICE)
    b.mail(ALICE)
    for c, subj in ((a, tag + "a"), (b, tag + "b")):
        c.rcpt(RCPT, code=250)
        c.data(dot_stuff(make_message(subject=subj)), code=250)


def test_pool_keeps_at_most_connections(lab):
    """connections = 1, spare-timeout = 0: two transactions at once need two
    connections; the pool keeps one of them, the other gets QUIT at once."""
    s = lab.sink()
    sp = daemon(lab, s, connections=1, spare_timeout=0)
    a, b = login(sp, lab.certs), login(sp, lab.certs)
    burst(a, b, "")
    assert sorted(subjects(s)) == ["a", "b"]
    assert s.connections() == 2
    assert s.wait_for(lambda x: sum(r["closed"] for r in x.sessions()) == 1), s.sessions()
    [gone] = [r for r in s.sessions() if r["closed"]]
    assert gone["commands"][-1].upper() == "QUIT"
    assert sp.wait_log(r"event=relay-close reason=pool-full transactions=1"), sp.stderr_text(20)
    a.cmd("QUIT", 221)
    b.cmd("QUIT", 221)


def test_spare_connection_serves_the_next_burst(lab):
    """connections = 1: the second connection of a burst, given back to a
    full pool, stays as a spare (spare-timeout, here a minute), and the next
    burst takes both: no third connection, no new handshake, nothing
    closed; every message relayed once."""
    s = lab.sink()
    sp = daemon(lab, s, connections=1, spare_timeout="1m")
    a, b = login(sp, lab.certs), login(sp, lab.certs)
    burst(a, b, "1")
    assert s.connections() == 2
    burst(a, b, "2")
    assert sorted(subjects(s)) == ["1a", "1b", "2a", "2b"]
    assert s.connections() == 2
    assert sum(mails(r) for r in s.sessions()) == 4
    assert not any(r["closed"] for r in s.sessions()), s.sessions()
    a.cmd("QUIT", 221)
    b.cmd("QUIT", 221)


def test_spare_connection_goes_after_spare_timeout(lab):
    """connections = 1, spare-timeout = 1 s: the spare of a burst gets QUIT
    once idle that long; the one within connections stays (idle-timeout)
    and serves the next message."""
    s = lab.sink()
    sp = daemon(lab, s, connections=1, spare_timeout=1)
    a, b = login(sp, lab.certs), login(sp, lab.certs)
    burst(a, b, "")
    assert s.connections() == 2
    assert s.wait_for(lambda x: sum(r["closed"] for r in x.sessions()) == 1,
                      timeout=30), s.sessions()
    [gone] = [r for r in s.sessions() if r["closed"]]
    assert gone["commands"][-1].upper() == "QUIT"
    assert sp.wait_log(r"event=relay-close reason=spare-timeout transactions=1"), \
        sp.stderr_text(20)
    send(a, "next")
    assert s.connections() == 2
    assert sorted(subjects(s)) == ["a", "b", "next"]
    a.cmd("QUIT", 221)
    b.cmd("QUIT", 221)


@pytest.mark.sanitized
@pytest.mark.parametrize("rset_reply", [None, "421 4.3.2 Shutting down", "500 5.5.1 What"])
def test_abandoned_transaction_reset_before_reuse(lab, rset_reply):
    """The client abandons a transaction the relay accepted (MAIL, RCPT,
    then RSET): the connection says RSET before it is kept, and is kept
    only after its 250; the next message is relayed once either way."""
    s = lab.sink()
    sp = daemon(lab, s)
    c = login(sp, lab.certs)
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    if rset_reply:
        s.set_faults(rset=rset_reply, once=True)
    c.cmd("RSET", 250)
    # the pool's RSET reaches the relay: its 250 makes the connection idle
    # again; refused (or 421) the connection goes
    if rset_reply is None:
        assert sp.wait_log(r"event=relay-kept after=rset"), sp.stderr_text(20)
    else:
        assert s.wait_for(lambda x: x.sessions()[0]["closed"]), s.sessions()
        assert s.sessions()[0]["commands"][-1] == "RSET", s.sessions()
    send(c, "next")
    c.cmd("QUIT", 221)
    assert subjects(s) == ["next"]
    assert s.data_completions() == 1
    first = s.sessions()[0]
    cmds = [x.split(" ")[0] for x in first["commands"]]
    i = cmds.index("RCPT")
    if rset_reply is None:
        # kept after the 250, taken up again with its own RSET
        assert cmds[i + 1:i + 4] == ["RSET", "RSET", "MAIL"], cmds
        assert s.connections() == 1 and first["stored"]
    else:
        assert cmds[i + 1:] == ["RSET"], cmds
        assert s.connections() == 2 and not first["stored"]


# ---- dead pooled connections: replaced before MAIL was accepted ----

DEAD = {
    "closed-idle": None,                                    # sink.close_idle()
    "421-idle": None,                                       # 421, then closed
    "closed-at-rset": dict(drop_at={"rset"}, once=True),
    "421-to-rset": dict(rset="421 4.3.2 Shutting down", once=True),
    "closed-at-mail": dict(drop_at={"mail"}, once=True),
    "421-to-mail": dict(mail="421 4.3.2 Shutting down", once=True),
}


@pytest.mark.sanitized
@pytest.mark.parametrize("how", list(DEAD))
def test_dead_pooled_connection_replaced(lab, how):
    s = lab.sink()
    sp = daemon(lab, s, idle_timeout=300)
    c = login(sp, lab.certs)
    send(c, "before")
    if how == "closed-idle":
        assert s.close_idle() == 1
    elif how == "421-idle":
        assert s.close_idle("421 4.3.2 Shutting down") == 1
    else:
        s.set_faults(**DEAD[how])
    # the client sees nothing of it
    send(c, "after")
    c.cmd("QUIT", 221)
    assert subjects(s) == ["before", "after"]
    assert s.data_completions() == 2
    assert s.connections() == 2
    first, second = s.sessions()
    assert first["closed"] and not second["closed"]
    assert first["stored"] and second["stored"]
    if how not in ("closed-idle", "421-idle"):
        assert sp.wait_log(r"event=relay-reuse-dead", timeout=5), sp.stderr_text(20)


@pytest.mark.sanitized
@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_lost_after_mail_accepted_is_4xx(lab, stage):
    """After the relay accepted MAIL on a reused connection, losing it is
    the client's 451 4.4.2: nothing delivered, and the next message goes
    through a new connection."""
    s = lab.sink()
    sp = daemon(lab, s)
    c = login(sp, lab.certs)
    send(c, "before")
    c.mail(ALICE)
    if stage == "rcpt":
        s.set_faults(drop_at={"rcpt"})
        c.rcpt(RCPT, code=451, enh="4.4.2")
    else:
        c.rcpt(RCPT, code=250)
        s.set_faults(drop_after_bytes=100)
        body = ("y" * 70 + "\r\n") * 30
        c.data(dot_stuff(make_message(subject="lost", body=body)), code=451, enh="4.4.2")
    s.set_faults()
    send(c, "after")
    c.cmd("QUIT", 221)
    assert subjects(s) == ["before", "after"]
    assert s.data_completions() == 2
    assert s.connections() == 2


# ---- XCLIENT: a connection serves its client session only ----

XCLIENT_ATTRS = "NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT"


def xclient_port(event):
    return re.search(r"\bPORT=(\d+)", event).group(1)


def test_xclient_connection_stays_with_its_session(lab):
    s = lab.sink(xclient=XCLIENT_ATTRS, xclient_once=True)
    sp = daemon(lab, s, xclient="yes", idle_timeout=300)
    a, b = login(sp, lab.certs), login(sp, lab.certs)
    ports = {"a": str(a.sock.getsockname()[1]), "b": str(b.sock.getsockname()[1])}
    send(a, "a1")
    send(b, "b1")
    send(a, "a2")
    # b's last message with QUIT in the same write: the session ends while
    # its transaction is still being freed
    b.mail(ALICE)
    b.rcpt(RCPT, code=250)
    b.cmd("DATA", 354)
    b.send(dot_stuff(make_message(subject="b2")) + b"QUIT\r\n")
    b.read_reply().check(250)
    b.read_reply().check(221)
    assert sorted(subjects(s)) == ["a1", "a2", "b1", "b2"]
    refused = [e for r in s.sessions() for e in r["events"] if "xclient refused" in e]
    assert refused == []
    by_conn = {}
    for m in s.messages():
        by_conn.setdefault(m["session"], []).append(m)
    recs = {r["id"]: r for r in s.sessions()}
    for sid, msgs in by_conn.items():
        [xc] = [e for e in recs[sid]["events"] if e.startswith("xclient ")]
        port = xclient_port(xc)
        # every message on this connection came from the client XCLIENT named
        owner = [k for k, v in ports.items() if v == port]
        assert owner, (xc, ports)
        assert {subj[0] for subj in subjects_of(msgs)} == set(owner), (xc, msgs)
    # each session's two messages went over one connection
    assert len(by_conn) == 2
    # b's connection was closed with its session (idle-timeout is 300 s),
    # a's stays for a until a ends
    a_conn = [sid for sid, msgs in by_conn.items() if subjects_of(msgs)[0].startswith("a")][0]
    b_conn = [sid for sid in by_conn if sid != a_conn][0]

    def closed(conn):
        return lambda x: {r["id"]: r for r in x.sessions()}[conn]["closed"]

    assert s.wait_for(closed(b_conn), timeout=15), s.sessions()
    assert not {r["id"]: r for r in s.sessions()}[a_conn]["closed"]
    a.cmd("QUIT", 221)
    assert s.wait_for(closed(a_conn), timeout=15), s.sessions()


def subjects_of(msgs):
    out = []
    for m in msgs:
        hit = re.search(rb"(?m)^Subject: (.*)\r$", m["data"])
        out.append(hit.group(1).decode())
    return out


# ---- TLS session resumption towards the relay ----

@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_new_connection_resumes_tls(lab, version):
    s = lab.sink(tls_max=version if version == "1.2" else None)
    sp, port = start_with_metrics(lab, s, server={"workers": 1})
    sp.wait_relay_probe()
    c = login(sp, lab.certs)
    send(c, "one")
    assert s.handshakes() == (1, 0)
    s.close_idle()
    send(c, "two")
    assert s.handshakes() == (1, 1), s.sessions()
    second = s.sessions()[-1]
    assert second["tls"] == "TLSv%s" % version and second["stored"]
    assert sp.wait_log(r"verified handshake=resumed", timeout=1), sp.stderr_text(20)
    c.cmd("QUIT", 221)
    assert subjects(s) == ["one", "two"]
    m = scrape(port)
    assert val(m, "subproxy_relay_connections_opened_total", handshake="full") == 1
    assert val(m, "subproxy_relay_connections_opened_total", handshake="resumed") == 1
    assert val(m, "subproxy_relay_connections_reused_total", result="alive") == 1
    assert val(m, "subproxy_relay_connections_idle") == 1


# ---- a changed TLSA set (dane = required, DNSSEC lab) ----

TTL = 2


def test_tlsa_change_honoured_by_new_connections(lab, tmp_path):
    """The relay publishes a TLSA record for a new certificate (TTL 2 s).
    The connection made under the old record may finish its life; the next
    new one is verified against the new record: while the relay still shows
    the old certificate it is refused (its resumed session too: DANE checks
    the certificate the session was made with), once the relay has the new
    certificate it is accepted."""
    certs = lab.certs
    new_cert, new_key = certs.authority.issue(RELAY_NAME, tmp_path, "relay-new")
    s = lab.sink()
    host, owner = "relay.secure.lab.test", "_%d._tcp.relay" % s.port
    d = dnslab.DnsLab(tmp_path / "dns")
    d.add("lab.test", "*._tcp.mail 300 TLSA %s" % labsink.tlsa_311(certs.mail))
    d.add("secure", "%s %d TLSA %s" % (owner, TTL, labsink.tlsa_311(certs.relay)))
    d.start()
    try:
        sp = lab.subproxy(relays=[{"host": host, "address": None, "port": s.port, "tlsa": [],
                                   "extra": {"dane": "required"}}], dns=dns_section(d))
        sp.wait_relay_probe()
        c = login(sp, lab.certs)
        send(c, "old")
        d.remove("secure", owner, "TLSA")
        d.add("secure", "%s %d TLSA %s" % (owner, TTL, labsink.tlsa_311(new_cert)))
        d.reload()
        time.sleep(TTL + 1)     # at least the TTL: libunbound's copy has expired
        # the connection verified under the old record serves on (documented)
        send(c, "pooled")
        # the relay closes it: the new connection is checked against the new
        # record, and the relay still shows the old certificate
        n = s.connections()
        s.close_idle()
        c.mail(ALICE, code=451, enh="4.7.5")
        # the sink's records are complete once both connections are closed
        assert s.wait_for(lambda x: len(x.sessions()) == n + 2 and all(
            r["closed"] for r in x.sessions()[n:])), s.sessions()
        new = s.sessions()[n:]
        # a resumed session, then a full handshake (the sink may see that one
        # end before its own side of the handshake completed)
        assert new[0]["tls_resumed"] is True and not new[1]["tls_resumed"], new
        assert all(mails(r) == 0 and not r["stored"] for r in new), new
        assert subjects(s) == ["old", "pooled"]
        # the relay restarts with the new certificate
        s.stop()
        s2 = lab.sink(cert=new_cert, key=new_key, port=s.port)
        send(c, "new")
        assert subjects(s2) == ["new"]
        assert s2.handshakes() == (1, 0)
        c.cmd("QUIT", 221)
    finally:
        d.stop()


# ---- many at once ----

def test_100_concurrent_sessions(lab):
    """100 sessions log in (at most 16 AUTHs at once: the keeper refuses
    beyond its queue of 64 until AUTH waits in line), then all send two
    messages at the same time.  Every message is relayed once; the
    connections are reused: with room for all of them in the pool none is
    ever closed, so no more are opened than transactions run at once."""
    n, per = 100, 2
    s = lab.sink()
    sp = lab.subproxy({"sink": s, "extra": {"connections": 200, "max-transactions": 1000}},
                      limits={"connections": 300, "connections-per-ip": 300})
    sp.wait_relay_probe()
    gate = threading.Semaphore(16)
    ready = threading.Barrier(n + 1, timeout=240)
    errors, clients = [], [None] * n

    def run(i):
        try:
            with gate:
                clients[i] = login(sp, lab.certs)
            ready.wait()
            for k in range(per):
                send(clients[i], "s%d-%d" % (i, k))
            clients[i].cmd("QUIT", 221)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("session %d: %r" % (i, e))
            try:
                ready.abort()
            except threading.BrokenBarrierError:
                pass

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join(240)
    assert not any(t.is_alive() for t in threads), "sessions still running after 240 s"
    assert errors == [], errors[:5]
    got = subjects(s)
    assert sorted(got) == sorted("s%d-%d" % (i, k) for i in range(n) for k in range(per))
    assert s.data_completions() == n * per
    # fewer connections than messages: reused
    assert s.connections() <= n + 1 < n * per
