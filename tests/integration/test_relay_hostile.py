"""
A hostile relay (tests/lab/hostile.py): replies the relay leg must not
believe.  The invariant every test checks: the client hears 2xx only when
the relay accepted the whole message; otherwise 451 4.4.2 with a sentence,
and front goes on serving.
"""

import pytest

import hostile
import sink as labsink
from helpers import ALICE, RCPT, RawClient, dot_stuff, make_message

# also run against the ASan/UBSan daemon in make check
pytestmark = pytest.mark.sanitized

RELAY_TIMEOUT = 2
BIG = 300 * 1024        # more than the relay leg queues at once (64 KiB)
HUGE = 6 << 20          # more than loopback's socket buffers take from a relay
                        # that reads nothing (subproxy's send buffer starts at
                        # about 10 segments of 64 KiB, twice)


@pytest.fixture
def hostile_relay(lab):
    made = []

    def make(hooks=None, ehlo=None, rcvbuf=None, connections=None, mss=None, throttle=None,
             **limits):
        r = hostile.HostileRelay(lab.certs.relay, lab.certs.relay_key, hooks, ehlo,
                                 rcvbuf=rcvbuf, mss=mss, throttle=throttle).start()
        made.append(r)
        extra = {"connections": connections} if connections is not None else {}
        sp = lab.subproxy({"port": r.port, "tls": "implicit", "extra": extra,
                           "tlsa": labsink.tlsa_311(lab.certs.relay)},
                          limits=dict({"relay-timeout": RELAY_TIMEOUT}, **limits),
                          server={"workers": 1})
        sp.wait_relay_probe()
        return r, sp

    yield make
    for r in made:
        r.stop()


def login(sp, lab, timeout=None):
    c = RawClient(sp.implicit_port, lab.certs.ca, **({"timeout": timeout} if timeout else {}))
    c.greeting.check(220)
    return c.login()


def big_message(subject, size=BIG):
    body = ("x" * 70 + "\r\n") * (size // 72)
    return dot_stuff(make_message(subject=subject, body=body))


def send(c, msg, code=None, enh=None):
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    return c.data(msg, code=code, enh=enh)


def refused_at(c, verb, enh):
    """A transaction the relay leg fails with 451 enh at MAIL, RCPT, or
    (any other verb) at the end of the message."""
    c.mail(ALICE, code=451 if verb == "MAIL" else 250, enh=enh if verb == "MAIL" else None)
    if verb != "MAIL":
        c.rcpt(RCPT, code=451 if verb == "RCPT" else 250, enh=enh if verb == "RCPT" else None)
    if verb not in ("MAIL", "RCPT"):
        c.data(dot_stuff(make_message(subject=verb)), code=451, enh=enh)


def still_serves(r, sp, lab):
    """Another session relays a message end to end."""
    r.hooks.clear()
    n = len(r.messages)
    c = login(sp, lab)
    send(c, dot_stuff(make_message(subject="after")), code=250)
    c.cmd("QUIT", code=221)
    assert len(r.messages) == n + 1


def _early_250(conn, line, st):
    conn.send("354 go ahead\r\n250 2.0.0 Ok: queued before the data came\r\n")
    hostile._read_data(conn)    # what comes, up to a dot that must never come
    conn.send("250 2.0.0 Ok\r\n")


@pytest.mark.parametrize("method", ["DATA", "DATA-small", "BDAT"])
def test_early_250_before_the_data_is_sent(hostile_relay, lab, method):
    """The relay says 250 while the message (most of it, or its end) is
    still to be sent: never the client's 250 (the message would be dropped
    without its end)."""
    if method.startswith("DATA"):
        r, sp = hostile_relay(hooks={"DATA": _early_250})
    else:
        def bdat(conn, line, st):
            # at once, and then read nothing: the message stays unsent
            conn.send("250 2.0.0 Ok: queued before the data came\r\n")
            r.stopping.wait(hostile.READ_TIMEOUT)
            raise hostile.Drop("done")
        r, sp = hostile_relay(hooks={"BDAT": bdat}, ehlo=hostile.EHLO[:-1] +
                              ["250-CHUNKING", hostile.EHLO[-1]], rcvbuf=4096)
    c = login(sp, lab)
    rep = send(c, big_message("early", {"DATA": BIG, "DATA-small": 1000, "BDAT": HUGE}[method]))
    assert rep.code != 250, rep
    rep.check(451, "4.5.0")
    assert r.messages == []
    still_serves(r, sp, lab)


# a reply the command cannot have (RFC 5321 4.3.2): passed on, a 3xx made
# the client's RCPT or message look answered by "354 3.0.0 ..." (3.0.0 is no
# enhanced code either) and a 221 (closing) counted as acceptance
IMPOSSIBLE = [("MAIL", "334 VXNlcm5hbWU6"), ("RCPT", "354 go ahead"), ("RCPT", "221 2.0.0 Bye"),
              ("DATA", "250 2.0.0 Ok"), ("FINAL", "354 more please"), ("FINAL", "221 2.0.0 Bye")]


def test_reply_the_command_cannot_have(hostile_relay, lab):
    r, sp = hostile_relay()
    for verb, text in IMPOSSIBLE:
        r.hooks.clear()
        r.hooks[verb] = lambda conn, line, st, text=text: conn.send(text + "\r\n")
        c = login(sp, lab)
        refused_at(c, verb, "4.5.0")
        c.cmd("QUIT", code=221)
    assert r.messages == []
    still_serves(r, sp, lab)


@pytest.mark.parametrize("stage", ["EHLO", "MAIL", "FINAL"])
def test_dripped_reply_times_out(hostile_relay, lab, stage):
    """A reply dripped a byte a second never completes within relay-timeout:
    451 4.4.2 after relay-timeout, not after the whole drip (each byte used
    to start the timeout again: the transaction was held as long as the
    relay liked).  EHLO: on a new connection (connections = 0), after the
    start-up probe's."""
    def drip(conn, line, st):
        if stage == "EHLO" and len(conn.relay.conns) == 1:     # the probe's
            conn.send("".join(x + "\r\n" for x in conn.relay.ehlo))
            return
        conn.drip("250 2.0.0 " + "o" * 100 + "k\r\n", 1.0)
    r, sp = hostile_relay(hooks={stage: drip}, connections=0 if stage == "EHLO" else None)
    c = login(sp, lab)
    refused_at(c, "MAIL" if stage == "EHLO" else stage, "4.4.2")
    assert sp.wait_log(r"no complete reply within relay-timeout")
    still_serves(r, sp, lab)


@pytest.mark.parametrize("when", ["with-the-reply", "while-idle"])
def test_part_of_a_reply_ends_a_kept_connection(hostile_relay, lab, when):
    """Bytes of a reply nobody asked for, not yet a whole line (after the
    final reply, or later while the connection is idle), make the
    connection unfit to keep: taken up again, they would join the RSET
    reply (250-250 2.0.0 Ok, then MAIL's 250 ends it), MAIL's reply would
    never come and the next message got 451 4.4.2."""
    def final(conn, line, st):
        hostile.store(conn, st, conn.relay)
        if when == "with-the-reply":
            conn.send("250 2.0.0 Ok\r\n250-")
        else:
            conn.send("250 2.0.0 Ok\r\n")
            conn.relay.stopping.wait(0.3)
            conn.send("250-")
    r, sp = hostile_relay(hooks={"FINAL": final})
    c = login(sp, lab)
    send(c, dot_stuff(make_message(subject="first")), code=250)
    if when == "while-idle":
        assert sp.wait_log(r"event=relay-idle-closed reason=\"part of a reply while idle")
    r.hooks.clear()
    send(c, dot_stuff(make_message(subject="second")), code=250)
    c.cmd("QUIT", code=221)
    assert len(r.messages) == 2


@pytest.mark.parametrize("verb", ["MAIL", "RCPT", "FINAL"])
def test_relay_421_is_451_to_the_client(hostile_relay, lab, verb):
    """The relay closing its connection with 421 is not subproxy closing
    the client's: the client hears 451 with the relay's enhanced code and
    text (it used to hear the 421 and then found the session open), and the
    session goes on to relay its next message on a new connection."""
    def close(conn, line, st):
        conn.send("421 4.3.2 Shutting down\r\n")
        raise hostile.Drop("421")
    # MAIL on a new connection: a kept one answering 421 is replaced
    r, sp = hostile_relay(hooks={verb: close}, connections=0 if verb == "MAIL" else None)
    c = login(sp, lab)
    refused_at(c, verb, "4.3.2")
    c.cmd("NOOP", code=250)
    still_serves(r, sp, lab)


def test_reset_after_the_end_of_a_message_on_a_kept_connection(hostile_relay, lab):
    """On a kept connection (the probe's), the relay takes the message and
    resets the connection before its reply: the client hears 451 4.4.2 and
    the message is not sent again on a new connection (the relay has it
    once; only a connection lost before MAIL was accepted is replaced)."""
    def final(conn, line, st):
        hostile.store(conn, st, conn.relay)
        conn.reset()
        raise hostile.Drop("reset")
    r, sp = hostile_relay(hooks={"FINAL": final})
    c = login(sp, lab)
    refused_at(c, "FINAL", "4.4.2")
    c.cmd("QUIT", code=221)
    assert len(r.messages) == 1 and len(r.conns) == 1
    assert sp.wait_log(r"conn=reused")



# A relay that reads the message at a pace of its own: small segments and a
# small window keep what it has not read in subproxy's buffers (a send
# buffer sized in segments, grown up to some MiB), not in the relay's.
PACED = dict(rcvbuf=16384, mss=1000)
CHUNKING = hostile.EHLO[:-1] + ["250-CHUNKING", hostile.EHLO[-1]]
SLOW_MSG = 6 << 20


@pytest.mark.parametrize("method", ["DATA", "BDAT"])
def test_slow_reading_relay_is_cut(hostile_relay, lab, method):
    """A relay reading the message at 512 KiB/s, 16 KiB at a time -- never
    relay-timeout (2 s) without progress -- with relay-min-rate 4 MiB/s:
    the transfer must be done by relay-timeout + 1 s per 4 MiB written, so
    after some 3 s the client hears 451 4.4.2, the relay gets no end of the
    message and has read well under all of it, and the session's next
    message goes on a new connection.  (Before, every write started
    relay-timeout again: the relay took the whole message, 12 s, and was
    only cut waiting for the end -- or with a little more speed got it.)"""
    r, sp = hostile_relay(throttle=(16384, 512 << 10), ehlo=CHUNKING if method == "BDAT" else None,
                          **PACED, **{"relay-min-rate": "4m"})
    c = login(sp, lab, timeout=30)
    send(c, big_message("slow", SLOW_MSG), code=451, enh="4.4.2")
    assert sp.wait_log(r"message transfer below relay-min-rate")
    assert r.messages == []
    cut = r.conns[-1]
    assert cut.nread < SLOW_MSG - (1 << 20), cut.nread
    r.throttle = None
    send(c, dot_stuff(make_message(subject="next")), code=250)
    c.cmd("QUIT", code=221)
    assert len(r.messages) == 1 and r.conns[-1] is not cut


def test_relay_reading_at_a_fair_rate_is_not_cut(hostile_relay, lab):
    """With the default relay-min-rate (500 octets/s), a relay reading a
    6 MiB message at 1 MiB/s -- for longer than relay-timeout (3 s) after
    what subproxy's buffers hold -- gets it whole: the deadline grows with
    every octet written."""
    r, sp = hostile_relay(throttle=(16384, 3 << 19), **PACED, **{"relay-timeout": 3})
    c = login(sp, lab, timeout=30)
    send(c, big_message("fair", 8 << 20), code=250)
    c.cmd("QUIT", code=221)
    assert len(r.messages) == 1 and len(r.messages[0]) > (8 << 20) - 4096
