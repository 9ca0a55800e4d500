"""
Message intake: what subproxy refuses in DATA and BDAT (strict CRLF, NUL,
line, header and size limits, mail loops, header sender policy, SMTP
smuggling) and the boundaries it accepts.  For every refused message the
relay must have received nothing: no stored message and no completed
message transfer in any relay session.
"""

import pytest

from helpers import ALICE, RCPT, RawClient, check_relayed, dot_stuff, make_message

# also run against the ASan/UBSan daemon in make check (doc/testing.md):
# hostile message bytes through the daemon's intake parser
pytestmark = pytest.mark.sanitized

MESSAGE_SIZE = 1024 * 1024
HEADER_SIZE = 16384
RECEIVED_MAX = 5
FIELDS_MAX = 4000       # src/message.h MSG_FIELDS_MAX
LIMITS = {"message-size": MESSAGE_SIZE, "header-size": HEADER_SIZE,
          "received-max": RECEIVED_MAX}

HDR = b"From: <alice@lab.test>\r\nTo: <rcpt@remote.test>\r\nSubject: intake\r\n" \
      b"Date: Mon, 02 Jan 2023 10:00:00 +0000\r\nMessage-ID: <intake@lab.test>\r\n"


class Env:
    def __init__(self, lab, sink, sp):
        self.lab, self.sink, self.sp, self.certs = lab, sink, sp, lab.certs

    def session(self):
        c = RawClient(self.sp.implicit_port, self.certs.ca)
        c.greeting.check(220)
        return c.login()

    def open_txn(self, c):
        c.mail(ALICE)
        c.rcpt(RCPT, code=250)

    def assert_nothing_relayed(self):
        assert self.sink.messages() == [], "the relay stored a refused message"
        assert self.sink.data_completions() == 0, \
            "the relay received a complete message transfer: %r" % self.sink.sessions()


@pytest.fixture(scope="module")
def env(module_lab):
    s = module_lab.sink()
    sp = module_lab.subproxy(s, limits=LIMITS)
    sp.wait_relay_probe()   # let the start-up probe finish first
    return Env(module_lab, s, sp)


@pytest.fixture(autouse=True)
def _clean_sink(env):
    env.sink.reset()


def received(n):
    return b"".join(b"Received: from hop%d.example by hop%d.example; "
                    b"Mon, 02 Jan 2023 10:00:%02d +0000\r\n" % (i, i + 1, i) for i in range(n))


def many_fields(n):
    """HDR (5 fields) and then the shortest fields there are, n in all."""
    assert n > 5
    return HDR + b"X:\r\n" * (n - 5)


def big_header():
    filler = b"X-Filler: " + b"f" * 100 + b"\r\n"
    return HDR + filler * (HEADER_SIZE // len(filler) + 1)


# (id, message bytes ending in CRLF, code, enhanced code)
REFUSED = [
    ("bare-LF-header", b"From: <alice@lab.test>\nSubject: x\r\n\r\nbody\r\n", 550, "5.6.0"),
    ("bare-LF-body", HDR + b"\r\nline one\nline two\r\n", 550, "5.6.0"),
    ("bare-LF-last-line", HDR + b"\r\nbody\r\nlast\n\r\n", 550, "5.6.0"),
    ("bare-CR-header", HDR + b"X-Test: a\rb\r\n\r\nbody\r\n", 550, "5.6.0"),
    ("bare-CR-body", HDR + b"\r\nline one\rline two\r\n", 550, "5.6.0"),
    ("CR-CR-LF-body", HDR + b"\r\nline\r\r\n", 550, "5.6.0"),
    ("NUL-header", HDR + b"X-Test: a\0b\r\n\r\nbody\r\n", 550, "5.6.0"),
    ("NUL-body", HDR + b"\r\nbo\0dy\r\n", 550, "5.6.0"),
    ("VT-header", HDR + b"X-Test: a\x0bb\r\n\r\nbody\r\n", 550, "5.6.0"),
    ("FF-header-continuation", HDR + b"X-Test: a\r\n \x0cb\r\n\r\nbody\r\n", 550, "5.6.0"),
    ("long-line-body", HDR + b"\r\n" + b"x" * 999 + b"\r\n", 550, "5.6.0"),
    ("long-line-header", HDR + b"X-Long: " + b"y" * 991 + b"\r\n\r\nbody\r\n", 550, "5.6.0"),
    ("header-over-size", big_header() + b"\r\nbody\r\n", 552, "5.3.4"),
    # within header-size; the signer would refuse it with a reason that
    # does not fit (550 5.6.0 "From must hold exactly one address")
    ("too-many-fields", many_fields(FIELDS_MAX + 1) + b"\r\nbody\r\n", 552, "5.3.4"),
    ("too-many-received", received(RECEIVED_MAX + 1) + HDR + b"\r\nbody\r\n", 554, "5.4.6"),
    ("from-not-owned", HDR.replace(b"<alice@lab.test>", b"<mallory@evil.test>") + b"\r\nb\r\n",
     550, "5.7.1"),
    ("from-list-one-not-owned",
     HDR.replace(b"<alice@lab.test>", b"alice@lab.test, mallory@evil.test") + b"\r\nb\r\n",
     550, "5.7.1"),
    ("from-display-name-not-owned",
     HDR.replace(b"<alice@lab.test>", b"\"alice@lab.test\" <mallory@evil.test>") + b"\r\nb\r\n",
     550, "5.7.1"),
    ("sender-not-owned", HDR + b"Sender: <mallory@evil.test>\r\n\r\nbody\r\n", 550, "5.7.1"),
    # DKIM signs with the domain of the one From address (RFC 6376 d= must be
    # unambiguous): a From list is refused even when every address is owned
    ("from-list-owned",
     HDR.replace(b"<alice@lab.test>", b"alice@lab.test, someone@alias.lab.test") + b"\r\nb\r\n",
     550, "5.6.0"),
    ("from-group-owned",
     HDR.replace(b"<alice@lab.test>", b"Authors: alice@lab.test, someone@alias.lab.test;") +
     b"\r\nb\r\n", 550, "5.6.0"),
    ("from-empty-group", HDR.replace(b"<alice@lab.test>", b"undisclosed-recipients:;") +
     b"\r\nb\r\n", 550, "5.6.0"),
    ("no-from", HDR.replace(b"From: <alice@lab.test>\r\n", b"") + b"\r\nbody\r\n", 550, "5.6.0"),
    ("empty", b"", 550, "5.6.0"),       # BDAT 0 LAST alone, DATA's lone dot
    ("from-twice", HDR + b"From: <alice@lab.test>\r\n\r\nb\r\n", 550, "5.6.0"),
    ("from-twice-folded", HDR + b"From:\r\n <alice@lab.test>\r\n\r\nb\r\n", 550, "5.6.0"),
    ("from-domain-literal", HDR.replace(b"<alice@lab.test>", b"<alice@[192.0.2.1]>") +
     b"\r\nb\r\n", 550, "5.7.1"),
    ("from-group-one-and-one", HDR.replace(b"<alice@lab.test>",
     b"G: (c) alice@lab.test;, alice@lab.test") + b"\r\nb\r\n", 550, "5.6.0"),
]


@pytest.mark.parametrize("msg,code,enh", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_data_refused(env, msg, code, enh):
    c = env.session()
    env.open_txn(c)
    c.data(msg + b".\r\n", code=code, enh=enh)
    env.assert_nothing_relayed()
    # the session goes on
    c.cmd("RCPT TO:<%s>" % RCPT, 503, "5.5.1")
    env.open_txn(c)
    c.data(dot_stuff(make_message()), code=250)
    assert len(env.sink.messages()) == 1


@pytest.mark.parametrize("msg,code,enh", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_bdat_refused(env, msg, code, enh):
    c = env.session()
    env.open_txn(c)
    c.bdat(msg, last=True, code=code, enh=enh)
    env.assert_nothing_relayed()
    c.cmd("RSET", 250, "2.0.0")
    env.open_txn(c)
    c.bdat(make_message(), last=True, code=250)
    assert len(env.sink.messages()) == 1


@pytest.mark.parametrize("method", ["DATA", "BDAT"])
def test_unsignable_from_decided_before_signing(env, method):
    """A From the signer cannot sign is refused by front, by the signer's own
    rule, with the reason (how many addresses) rather than the signer's
    generic refusal; nothing is relayed."""
    msg = HDR.replace(b"<alice@lab.test>", b"Authors: alice@lab.test, someone@alias.lab.test;") \
        + b"\r\nbody\r\n"
    c = env.session()
    env.open_txn(c)
    if method == "DATA":
        r = c.data(msg + b".\r\n", code=550, enh="5.6.0")
    else:
        r = c.bdat(msg, last=True, code=550, enh="5.6.0")
    assert b"holds 2 addresses" in r.raw and b"exactly one" in r.raw, r.raw
    env.assert_nothing_relayed()
    c.cmd("NOOP", 250, "2.0.0")


def bdat_sequence(c, chunks):
    """Send chunks one by one (the last with LAST); return all replies."""
    replies = []
    for i, ch in enumerate(chunks):
        replies.append(c.bdat(ch, last=i == len(chunks) - 1))
    return replies


def check_bdat_refusal(replies, code, enh):
    bad = [r for r in replies if r.code != 250]
    assert bad, "every chunk was accepted: %r" % replies
    bad[0].check(code, enh)
    assert replies[-1].code != 250, "the LAST chunk got 250: %r" % replies


@pytest.mark.parametrize("chunks", [
    [HDR + b"\r\nabc\ndef\r\n"],
    [HDR + b"\r\nabc", b"\ndef\r\n"],                 # bare LF at the start of a chunk
    [HDR + b"\r\nabc\r", b"def\r\n"],                 # bare CR at the end of a chunk
    [HDR + b"\r\nabc\r", b"\r\n"],                    # CR CR LF across chunks
    [HDR + b"\r\nabc", b"\n", b"def\r\n"],            # a chunk that is a lone LF
    [HDR + b"\r\nabc\r", b"", b"xyz\r\n"],            # an empty chunk in between
    [HDR + b"\r\n" + b"x" * 600, b"y" * 399 + b"\r\n"],   # 999-octet line across chunks
    [HDR + b"\r\nnul", b"\0", b"\r\n"],
], ids=["lf-inside", "lf-start", "cr-end", "cr-cr-lf", "lone-lf-chunk", "cr-empty-chunk",
        "long-line-across", "nul-chunk"])
def test_bdat_refused_across_chunks(env, chunks):
    c = env.session()
    env.open_txn(c)
    check_bdat_refusal(bdat_sequence(c, chunks), 550, "5.6.0")
    env.assert_nothing_relayed()
    c.cmd("RSET", 250, "2.0.0")
    c.cmd("NOOP", 250, "2.0.0")


def test_bdat_crlf_split_across_chunks_is_fine(env):
    msg = HDR + b"\r\nline one\r\nline two\r\n"
    cut = msg.index(b"one\r\n") + 4           # between CR and LF
    c = env.session()
    env.open_txn(c)
    for r in bdat_sequence(c, [msg[:cut], msg[cut:cut + 1], msg[cut + 1:], b""]):
        r.check(250)
    [m] = env.sink.messages()
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)


@pytest.mark.parametrize("method", ["DATA", "BDAT"])
def test_message_over_size_limit(env, method):
    line = b"z" * 76 + b"\r\n"
    msg = HDR + b"\r\n" + line * (MESSAGE_SIZE // len(line) + 100)
    c = env.session()
    env.open_txn(c)
    if method == "DATA":
        c.data(dot_stuff(msg), code=552, enh="5.3.4")
    else:
        check_bdat_refusal(bdat_sequence(c, [msg[:MESSAGE_SIZE // 2], msg[MESSAGE_SIZE // 2:]]),
                           552, "5.3.4")
    env.assert_nothing_relayed()
    c.cmd("RSET", 250, "2.0.0")
    c.cmd("NOOP", 250, "2.0.0")


def sized(n, final_crlf):
    """HDR, an empty line and a body of 78-octet lines: exactly n octets,
    ending in CRLF or not (its last line then has no CRLF)."""
    head = HDR + b"\r\n"
    q, r = divmod(n - len(head), 78)
    assert q >= 2
    if final_crlf:          # the last line takes the remainder
        return head + (b"z" * 76 + b"\r\n") * (q - 1) + b"z" * (76 + r) + b"\r\n"
    return head + (b"z" * 76 + b"\r\n") * q + b"z" * r if r else \
        head + (b"z" * 76 + b"\r\n") * (q - 1) + b"z" * 78


@pytest.mark.parametrize("method,final_crlf", [("DATA", True), ("BDAT", True),
                                               ("BDAT", False)],
                         ids=["data", "bdat", "bdat-no-final-crlf"])
def test_message_of_exactly_message_size(env, method, final_crlf):
    """[limits] message-size octets pass with DATA and BDAT alike, the CRLF
    front adds to a BDAT message without one not counted; one more octet
    gets 552 5.3.4 and nothing is relayed."""
    for n in (MESSAGE_SIZE, MESSAGE_SIZE + 1):
        msg = sized(n, final_crlf)
        assert len(msg) == n and msg.endswith(b"\r\n") == final_crlf
        env.sink.reset()
        c = env.session()
        env.open_txn(c)
        code, enh = (250, "2.0.0") if n == MESSAGE_SIZE else (552, "5.3.4")
        if method == "DATA":
            c.data(dot_stuff(msg), code=code, enh=enh)
        else:
            c.bdat(msg, last=True, code=code, enh=enh)
        if n == MESSAGE_SIZE:
            [m] = env.sink.messages()
            check_relayed(m["data"], msg if final_crlf else msg + b"\r\n",
                          added_message_id=False, added_date=False)
        else:
            env.assert_nothing_relayed()
        c.cmd("NOOP", 250, "2.0.0")
        c.close()


@pytest.mark.parametrize("final_crlf", [True, False], ids=["crlf", "no-final-crlf"])
@pytest.mark.parametrize("tail", ["last-chunk", "bdat-0-last"])
def test_bdat_chunks_at_message_size(env, final_crlf, tail):
    """Chunks summing to exactly [limits] message-size pass, ending with a
    one-octet LAST chunk or with BDAT 0 LAST, with or without the final
    CRLF; one octet more, that octet alone in the last chunk, gets 552
    5.3.4 and nothing is relayed."""
    for n in (MESSAGE_SIZE, MESSAGE_SIZE + 1):
        msg = sized(n, final_crlf)
        chunks = [msg[:n // 3], msg[n // 3:-1], msg[-1:]]
        if tail == "bdat-0-last":
            chunks.append(b"")
        env.sink.reset()
        c = env.session()
        env.open_txn(c)
        replies = bdat_sequence(c, chunks)
        if n == MESSAGE_SIZE:
            for r in replies:
                r.check(250)
            [m] = env.sink.messages()
            check_relayed(m["data"], msg if final_crlf else msg + b"\r\n",
                          added_message_id=False, added_date=False)
        else:
            assert all(r.code == 250 for r in replies[:2]), replies
            check_bdat_refusal(replies, 552, "5.3.4")
            env.assert_nothing_relayed()
        c.cmd("RSET", 250, "2.0.0")
        c.close()


@pytest.mark.parametrize("final_crlf", [True, False], ids=["crlf", "no-final-crlf"])
def test_bdat_header_only_at_header_size(env, final_crlf):
    """A BDAT message that is all header, exactly [limits] header-size
    octets with or without its final CRLF (the one front adds is not
    counted), passes signed; one octet more gets 552 5.3.4."""
    for n in (HEADER_SIZE, HEADER_SIZE + 1):
        head = HDR + b"X-Fill: "
        fill = n - len(head) - (2 if final_crlf else 0)
        lines, rest = divmod(fill, 900)
        msg = head + b"f" * rest + b"".join(
            [b"\r\n\t" + b"f" * 897] * lines) + (b"\r\n" if final_crlf else b"")
        assert len(msg) == n, (len(msg), n)
        env.sink.reset()
        c = env.session()
        env.open_txn(c)
        if n == HEADER_SIZE:
            c.bdat(msg, last=True, code=250)
            [m] = env.sink.messages()
            check_relayed(m["data"], msg if final_crlf else msg + b"\r\n",
                          added_message_id=False, added_date=False)
        else:
            c.bdat(msg, last=True, code=552, enh="5.3.4")
            env.assert_nothing_relayed()
        c.close()


MEMORY_BODY = 256 * 1024    # [limits] memory-body by default: beyond, the spool is a memfd


def dotted(n):
    """HDR, an empty line and a body of exactly n octets in all: 998-octet
    lines, every other one starting with a dot (stuffed by DATA)."""
    head = HDR + b"\r\n"
    full = (b"." + b"d" * 997 + b"\r\n") + (b"e" * 998 + b"\r\n")
    q, r = divmod(n - len(head), len(full))
    assert r >= 3
    return head + full * q + b"." * (r - 2) + b"\r\n"


@pytest.mark.parametrize("method", ["DATA", "BDAT", "BDAT-no-final-crlf"])
def test_signed_as_relayed_at_the_memory_body_bound(env, method):
    """The signer signs the spool front relays, the same memfd: a message
    whose spool ends one octet before, at and one after [limits]
    memory-body (in memory until sealed, or already in its memfd) is
    relayed byte for byte and its signatures verify with dkimpy; dot-stuffed
    and 998-octet lines included.  Without a final CRLF the one front adds
    is what crosses the bound."""
    for n in (MEMORY_BODY - 1, MEMORY_BODY, MEMORY_BODY + 1):
        msg = dotted(n)
        assert len(msg) == n
        env.sink.reset()
        c = env.session()
        env.open_txn(c)
        if method == "DATA":
            c.data(dot_stuff(msg), code=250)
        elif method == "BDAT":
            half = n // 2
            bdat_sequence(c, [msg[:half], msg[half:]])[-1].check(250)
        else:
            c.bdat(msg[:-2], last=True, code=250)
        [m] = env.sink.messages()
        check_relayed(m["data"], msg, added_message_id=False, added_date=False)
        c.close()


def test_messages_signed_and_relayed_at_once(env):
    """Several sessions end their messages together (DATA and BDAT, spools
    in memfds and in memory): front seals and hands over one spool while
    it relays another from its own descriptor, whose file offset the
    signer's duplicate shares.  Every message arrives byte for byte and its
    signatures verify with dkimpy."""
    sizes = [MEMORY_BODY + 4096, MEMORY_BODY // 2, 2 * MEMORY_BODY, MEMORY_BODY + 4096]
    msgs = [dotted(n).replace(b"intake", b"at-once-%d" % i, 1) for i, n in enumerate(sizes)]
    clients = []
    for i, msg in enumerate(msgs):
        c = env.session()
        env.open_txn(c)
        if i % 2 == 0:
            c.cmd("DATA", 354)
            c.send(dot_stuff(msg)[:-3])
        else:
            c.bdat(msg[:-1], code=250)
        clients.append(c)
    for i, c in enumerate(clients):     # the ends, without waiting
        c.send(b".\r\n" if i % 2 == 0 else b"BDAT 1 LAST\r\n" + msgs[i][-1:])
    for c in clients:
        c.read_reply().check(250)
    stored = env.sink.messages()
    assert len(stored) == len(msgs)
    for msg in msgs:
        tag = msg.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]
        [m] = [m for m in stored if b"Subject: " + tag + b"\r\n" in m["data"]]
        check_relayed(m["data"], msg, added_message_id=False, added_date=False)
    for c in clients:
        c.close()


# ---- boundaries that must pass ----

@pytest.mark.parametrize("msg", [
    HDR + b"\r\n" + b"x" * 998 + b"\r\n",
    HDR + b"X-Long: " + b"y" * 990 + b"\r\n\r\nbody\r\n",
    received(RECEIVED_MAX) + HDR + b"\r\nbody\r\n",
    HDR.replace(b"<alice@lab.test>", b"\"Alice A.\" <anyone@alias.lab.test>") + b"\r\nbody\r\n",
    HDR + b"Sender: <alice@lab.test>\r\n\r\nbody\r\n",
    HDR + b"\r\n",                                      # header only, empty body
    HDR + b"\r\n\r\n\r\n",                              # empty lines
    HDR + b"\r\n\tleading tab\r\ntrailing space \r\n",
    many_fields(FIELDS_MAX) + b"\r\nbody\r\n",
    # one address in list forms front and signer read alike (rfc5322.h)
    HDR.replace(b"<alice@lab.test>", b"Authors: Alice <alice@lab.test>;") + b"\r\nbody\r\n",
    HDR.replace(b"<alice@lab.test>", b"<alice@lab.test>,") + b"\r\nbody\r\n",
    HDR.replace(b"<alice@lab.test>", b", alice@lab.test (Alice)") + b"\r\nbody\r\n",
    HDR.replace(b"<alice@lab.test>", b"Authors: (one) alice@lab.test (Alice);") +
    b"\r\nbody\r\n",
    # a quoted-pair before a fold: front reads the field unfolded, and so
    # must the signer (it refused this one, 550 after the signer)
    HDR.replace(b"<alice@lab.test>", b"alice@lab.test (A\\\r\n (B))") + b"\r\nbody\r\n",
    HDR.replace(b"<alice@lab.test>", b'"Al\\\r\n ice, \\"x@y\\"" <alice@lab.test>') +
    b"\r\nbody\r\n",
], ids=["998-octet-line", "998-octet-header-line", "received-at-limit", "from-alias",
        "sender-owned", "empty-body", "empty-lines", "whitespace", "fields-at-limit",
        "from-group-of-one", "from-trailing-comma", "from-leading-comma",
        "from-group-of-one-commented", "from-comment-escape-across-fold",
        "from-name-escape-across-fold"])
@pytest.mark.parametrize("method", ["DATA", "BDAT"])
def test_accepted_at_the_boundary(env, msg, method):
    assert max(len(ln) for ln in msg.split(b"\r\n")) <= 998
    c = env.session()
    env.open_txn(c)
    if method == "DATA":
        c.data(dot_stuff(msg), code=250)
    else:
        c.bdat(msg, last=True, code=250)
    [m] = env.sink.messages()
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)


# ---- SMTP smuggling ----

SMUGGLED = (b"MAIL FROM:<alice@lab.test>\r\nRCPT TO:<smuggled@remote.test>\r\nDATA\r\n"
            b"From: <alice@lab.test>\r\nTo: <smuggled@remote.test>\r\nSubject: smuggled\r\n"
            b"\r\nsmuggled\r\n")


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r",
                                      b"\r\n\x00.\r\n", b"\n.\r\r\n"],
                         ids=["lf-dot-lf", "lf-dot-crlf", "crlf-dot-lf", "cr-dot-crlf",
                              "crlf-dot-cr", "crlf-nul-dot-crlf", "lf-dot-cr-crlf"])
def test_smtp_smuggling_data(env, fake_end):
    """Only <CRLF>.<CRLF> ends DATA: a second transaction smuggled after a
    fake end of data must not become a second message."""
    c = env.session()
    env.open_txn(c)
    payload = HDR + b"\r\nfirst message" + fake_end + SMUGGLED + b".\r\n"
    c.cmd("DATA", 354)
    c.send(payload)
    r = c.read_reply()
    r.check(550, "5.6.0")
    assert c.pending() == b"", "more than one reply to one DATA: %r" % c.buf
    c.cmd("NOOP", 250, "2.0.0")
    env.assert_nothing_relayed()
    assert not any("smuggled" in x for x in env.sink.commands())


def test_smuggling_in_bdat_is_just_data(env):
    """In BDAT, <CRLF>.<CRLF> is message content: one message, byte-exact."""
    msg = HDR + b"\r\nfirst\r\n.\r\n" + SMUGGLED
    c = env.session()
    env.open_txn(c)
    c.bdat(msg, last=True, code=250)
    c.cmd("NOOP", 250, "2.0.0")
    [m] = env.sink.messages()
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)
    assert m["rcpts"] == [RCPT]
    assert not any("smuggled" in x for x in env.sink.commands())


def test_end_of_data_split_across_writes(env):
    msg = make_message()
    payload = dot_stuff(msg)
    c = env.session()
    env.open_txn(c)
    c.cmd("DATA", 354)
    for piece in (payload[:-4], payload[-4:-3], payload[-3:-2], payload[-2:-1], payload[-1:]):
        c.send(piece)
    c.read_reply().check(250)
    [m] = env.sink.messages()
    check_relayed(m["data"], msg, added_message_id=False, added_date=False)


def test_data_without_recipients_and_mixing(env):
    c = env.session()
    c.cmd("DATA", 503, "5.5.1")
    c.mail(ALICE)
    c.rcpt("nouser@remote.test", code=250)
    c.bdat(b"From: <alice@lab.test>\r\n", code=250)
    r = c.cmd("DATA")
    assert r.code == 503 and r.enh == "5.5.1", r
    c.cmd("RSET", 250, "2.0.0")
    env.assert_nothing_relayed()
