"""
The relay leg misbehaving: unreachable, wrong certificate for the TLSA pin,
no STARTTLS, refusals, lost connections, timeouts, and SIGTERM while a
transaction is open.  The client must never get a 250 for a message the
relay did not accept.
"""

import signal

import pytest

from helpers import ALICE, RCPT, RawClient, check_relayed, closed_port, dot_stuff, make_message

# also run against the ASan/UBSan daemon in make check (doc/testing.md):
# every relay fault path: the relay leg's error handling
pytestmark = pytest.mark.sanitized

RELAY_TIMEOUT = 2


def session(sp, certs):
    c = RawClient(sp.implicit_port, certs.ca)
    c.greeting.check(220)
    return c.login()


def open_txn(c, rcpts=(RCPT,)):
    c.mail(ALICE)
    for r in rcpts:
        c.rcpt(r, code=250)


def no_mail_under_tls(sink):
    """The relay saw no MAIL (and, under TLS, no command at all)."""
    for s in sink.sessions():
        cmds = s["commands"]
        assert not any(x.upper().startswith(("MAIL", "RCPT", "DATA", "BDAT")) for x in cmds), s
        if "STARTTLS" in [x.upper() for x in cmds]:
            after = cmds[[x.upper() for x in cmds].index("STARTTLS") + 1:]
            assert after == [], "commands sent to an unverified relay: %r" % after
        if s["tls"] and sink.mode == "implicit":
            assert cmds == [], "commands sent to an unverified relay: %r" % cmds


class Env:
    def __init__(self, lab, sink, sp):
        self.lab, self.sink, self.sp, self.certs = lab, sink, sp, lab.certs

    def session(self):
        return session(self.sp, self.certs)

    def configure(self, **kw):
        """Change the relay's extensions: they show at EHLO, so the
        connections subproxy keeps are closed, as a relay restart would."""
        self.sink.configure(**kw)
        self.sink.close_idle()


@pytest.fixture(scope="module")
def env(module_lab):
    s = module_lab.sink()
    sp = module_lab.subproxy(s, limits={"relay-timeout": RELAY_TIMEOUT})
    sp.wait_relay_probe()   # let the start-up probe finish first
    return Env(module_lab, s, sp)


@pytest.fixture
def fenv(env):
    """The shared daemon and sink with a clean sink (store, faults, options)."""
    env.sink.reset()
    env.configure(chunking=True, dsn=True, strict=True)
    yield env
    env.sink.reset()
    env.configure(chunking=True)


# ---- the relay cannot be used at all: refused at MAIL time ----

def test_relay_down(lab):
    port, holder = closed_port()
    try:
        sp = lab.subproxy({"port": port, "tlsa": lab.certs.tlsa(lab.certs.relay)})
        c = session(sp, lab.certs)
        c.mail(ALICE, code=451, enh="4.4.0")
        c.cmd("RCPT TO:<%s>" % RCPT, 503, "5.5.1")
        c.mail(ALICE, code=451, enh="4.4.0")
        c.cmd("NOOP", 250, "2.0.0")
    finally:
        holder.close()


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_relay_certificate_does_not_match_pin(lab, mode):
    s = lab.sink(mode=mode, cert=lab.certs.wrongname, key=lab.certs.wrongname_key)
    sp = lab.subproxy({"sink": s, "pin_cert": lab.certs.relay})
    c = session(sp, lab.certs)
    c.mail(ALICE, code=451, enh="4.7.5")
    c.cmd("NOOP", 250, "2.0.0")
    no_mail_under_tls(s)
    assert s.data_starts() == 0 and s.messages() == []


@pytest.mark.parametrize("which", ["expired", "wrongname"])
def test_dane_ee_pin_ignores_dates_and_names(lab, which):
    """DANE-EE (3 1 1) matches the key only: an expired or misnamed
    certificate whose key is pinned is fine (RFC 7672 3.1.1)."""
    cert, key = getattr(lab.certs, which), getattr(lab.certs, which + "_key")
    s = lab.sink(cert=cert, key=key)
    sp = lab.subproxy(s)
    c = session(sp, lab.certs)
    msg = make_message()
    open_txn(c)
    c.data(dot_stuff(msg), code=250)
    [m] = s.messages()
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)


def test_relay_without_starttls(lab):
    s = lab.sink(mode="plain")
    sp = lab.subproxy({"sink": s, "tls": "starttls", "tlsa": lab.certs.tlsa(lab.certs.relay)})
    c = session(sp, lab.certs)
    c.mail(ALICE, code=451, enh="4.7.5")
    no_mail_under_tls(s)
    assert not any(x.upper().startswith("MAIL") for x in s.commands())


# ---- refusals by the relay are passed on ----

def test_relay_refuses_mail(fenv):
    fenv.sink.set_faults(mail="550 5.7.1 Relay does not like you")
    c = fenv.session()
    c.mail(ALICE, code=550, enh="5.7.1")
    c.cmd("RCPT TO:<%s>" % RCPT, 503, "5.5.1")


def test_relay_rcpt_codes_passed_on(fenv):
    fenv.sink.set_faults(rcpt={"busy@remote.test": "450 4.2.1 Mailbox busy",
                               "nouser@remote.test": "550 5.1.1 No such user"})
    msg = make_message()
    c = fenv.session()
    c.mail(ALICE)
    c.rcpt("busy@remote.test", code=450, enh="4.2.1")
    c.rcpt(RCPT, code=250)
    c.rcpt("nouser@remote.test", code=550, enh="5.1.1")
    c.data(dot_stuff(msg), code=250)
    [m] = fenv.sink.messages()
    assert m["rcpts"] == [RCPT]
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)


def test_all_rcpts_refused_then_data(fenv):
    fenv.sink.set_faults(rcpt={RCPT: "550 5.1.1 No such user"})
    c = fenv.session()
    c.mail(ALICE)
    c.rcpt(RCPT, code=550, enh="5.1.1")
    r = c.cmd("DATA")
    assert r.code in (503, 554) and r.code != 354, r
    assert fenv.sink.data_starts() == 0


@pytest.mark.parametrize("relay_method", ["BDAT", "DATA"])
@pytest.mark.parametrize("final", ["451 4.3.0 Try again later", "554 5.6.0 Content rejected"])
@pytest.mark.parametrize("client_method", ["DATA", "BDAT"])
def test_relay_final_reply_passed_on(fenv, relay_method, final, client_method):
    fenv.configure(chunking=relay_method == "BDAT")
    fenv.sink.set_faults(final=final)
    msg = make_message()
    c = fenv.session()
    open_txn(c)
    if client_method == "DATA":
        r = c.data(dot_stuff(msg))
    else:
        r = c.bdat(msg, last=True)
    r.check(int(final[:3]), final[4:9])
    assert fenv.sink.messages() == []
    assert fenv.sink.data_completions() == 1
    relay_cmds = [x.split(" ")[0].upper() for x in fenv.sink.commands()]
    assert relay_method in relay_cmds, relay_cmds
    c.cmd("NOOP", 250, "2.0.0")


def test_relay_refuses_data_command(fenv):
    fenv.configure(chunking=False)
    fenv.sink.set_faults(data="451 4.3.0 Not now")
    c = fenv.session()
    open_txn(c)
    r = c.data(dot_stuff(make_message()))
    r.check(451)
    assert fenv.sink.messages() == []


# ---- the relay goes away or stalls: our own 451 4.4.2, never 250 ----

@pytest.mark.parametrize("relay_method", ["BDAT", "DATA"])
def test_relay_drops_connection_mid_data(fenv, relay_method):
    fenv.configure(chunking=relay_method == "BDAT")
    fenv.sink.set_faults(drop_after_bytes=5000)
    msg = make_message(body=(b"m" * 76 + b"\r\n") * 2000)
    c = fenv.session()
    open_txn(c)
    r = c.data(dot_stuff(msg))
    r.check(451, "4.4.2")
    assert fenv.sink.messages() == [] and fenv.sink.data_completions() == 0
    c.cmd("NOOP", 250, "2.0.0")
    # and the next transaction works again
    fenv.sink.set_faults()
    open_txn(c)
    c.data(dot_stuff(msg), code=250)
    assert len(fenv.sink.messages()) == 1


def test_relay_drops_connection_after_354(fenv):
    fenv.configure(chunking=False)
    fenv.sink.set_faults(drop_after_354=True)
    c = fenv.session()
    open_txn(c)
    c.data(dot_stuff(make_message()), code=451, enh="4.4.2")
    assert fenv.sink.messages() == []


@pytest.mark.parametrize("stage", ["mail", "rcpt", "final"])
def test_relay_timeout(fenv, stage):
    fenv.sink.set_faults(delay={stage: RELAY_TIMEOUT + 2})
    c = fenv.session()
    if stage == "mail":
        c.mail(ALICE, code=451, enh="4.4.2")
    elif stage == "rcpt":
        c.mail(ALICE)
        c.rcpt(RCPT, code=451, enh="4.4.2")
    else:
        open_txn(c)
        c.data(dot_stuff(make_message()), code=451, enh="4.4.2")
    c.cmd("NOOP", 250, "2.0.0")
    # the sink wakes up later and finds the daemon gone: nothing is stored
    assert fenv.sink.wait_for(lambda k: all(s["closed"] for s in k.sessions()
                                            if s["data_completed"]), timeout=15)
    assert fenv.sink.messages() == []


# ---- SIGTERM with a transaction open ----

def test_sigterm_while_relay_has_the_message(lab):
    s = lab.sink()
    sp = lab.subproxy(s)
    s.set_faults(delay={"final": 1.5})
    c = session(sp, lab.certs)
    open_txn(c)
    msg = make_message()
    c.cmd("DATA", 354)
    c.send(dot_stuff(msg))
    assert s.wait_for(lambda k: k.data_completions() == 1), "the relay never got the message"
    sp.signal(signal.SIGTERM)
    replies = c.read_until_closed()
    assert replies, "no reply to the final dot"
    first = replies[0]
    stored = s.messages()
    if first.code == 250:
        assert len(stored) == 1, "250 without the relay having the message"
        check_relayed(stored[0]["data"], msg, added_message_id=False, added_date=False)
    else:
        first.check(421)
    assert all(r.code == 421 for r in replies[1:]), replies
    sp.wait_exit()


def test_sigterm_after_rcpt(lab):
    """The transaction does not go on within [server] shutdown-timeout: it
    is cut with 421 and nothing reaches the relay (test_shutdown.py has the
    transaction that finishes)."""
    s = lab.sink()
    sp = lab.subproxy(s, server={"shutdown-timeout": "1"})
    c = session(sp, lab.certs)
    open_txn(c)
    sp.signal(signal.SIGTERM)
    replies = c.read_until_closed()
    assert [r.code for r in replies] == [421], replies
    replies[0].check(421, "4.3.2")
    sp.wait_exit()
    assert s.messages() == [] and s.data_starts() == 0


def test_sigterm_in_the_middle_of_data(lab):
    """The transaction does not go on within [server] shutdown-timeout: it
    is cut with 421 and nothing reaches the relay (test_shutdown.py has the
    transaction that finishes)."""
    s = lab.sink()
    sp = lab.subproxy(s, server={"shutdown-timeout": "1"})
    c = session(sp, lab.certs)
    open_txn(c)
    c.cmd("DATA", 354)
    c.send(make_message()[:60])
    sp.signal(signal.SIGTERM)
    replies = c.read_until_closed()
    assert [r.code for r in replies] == [421], replies
    sp.wait_exit()
    assert s.messages() == [] and s.data_completions() == 0


def test_sigterm_idle_sessions_and_clean_exit(lab):
    s = lab.sink()
    sp = lab.subproxy(s)
    clients = [session(sp, lab.certs) for _ in range(3)]
    plain = RawClient(sp.starttls_port, lab.certs.ca, implicit=False)
    sp.signal(signal.SIGTERM)
    for c in clients + [plain]:
        replies = c.read_until_closed()
        assert [r.code for r in replies] in ([421], []), replies
    sp.wait_exit()
