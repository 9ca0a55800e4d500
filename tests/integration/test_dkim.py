"""
DKIM: every relayed message carries an Ed25519 and an RSA signature made by
the separate signer process, verified here with an independent verifier
(dkimpy, given the lab's public keys without DNS).  Tampering breaks them;
a domain without a key is refused; bad key files stop the start; the
network-facing process never holds a key; a dead signer fails closed.
"""

import os
import re
import signal

import pytest


from helpers import ALICE, RCPT, RawClient, check_relayed, dot_stuff, make_message
from opsutil import fronts, sigstop

import dkim  # python3-dkim (dkimpy)


class Env:
    def __init__(self, lab, sink, sp):
        self.lab, self.sink, self.sp, self.certs = lab, sink, sp, lab.certs

    def session(self, sp=None):
        c = RawClient((sp or self.sp).implicit_port, self.certs.ca)
        c.greeting.check(220)
        return c.login()


@pytest.fixture(scope="module")
def env(module_lab):
    s = module_lab.sink()
    sp = module_lab.subproxy(s)
    sp.wait_relay_probe()
    return Env(module_lab, s, sp)


@pytest.fixture(autouse=True)
def _clean_sink(env):
    env.sink.reset()


def submit(env, msg, sender=ALICE, code=250, enh=None, sp=None):
    c = env.session(sp)
    c.mail(sender)
    c.rcpt(RCPT, code=250)
    r = c.data(dot_stuff(msg), code=code, enh=enh)
    c.cmd("QUIT", 221)
    return r


def sig_tags(stored):
    d = dkim.DKIM(stored)
    out = []
    for n, v in d.headers:
        if n.lower() == b"dkim-signature":
            out.append(dkim.util.parse_tag_value(b"".join(v.split())))
    return out


@pytest.mark.sanitized
@pytest.mark.parametrize("sender,domain", [(ALICE, "lab.test"),
                                           ("team@alias.lab.test", "alias.lab.test")])
def test_signed_ed25519_and_rsa(env, lab_dkim, sender, domain):
    msg = make_message(sender=sender)
    submit(env, msg, sender=sender)
    [m] = env.sink.messages()
    check_relayed(m["data"], msg, added_message_id=False, added_date=False, dkim_domain=domain)
    tags = sig_tags(m["data"])
    assert sorted(t[b"a"] for t in tags) == [b"ed25519-sha256", b"rsa-sha256"], tags
    for t in tags:
        assert t[b"c"] == b"relaxed/relaxed"
        assert b"l" not in t, "l= lets anyone append to the body"
        assert b"t" in t
        signed = [h.strip().lower() for h in t[b"h"].split(b":")]
        # oversigned: From appears once more than it occurs; absent fields once
        assert signed.count(b"from") == 2, signed
        assert signed.count(b"reply-to") == 1, signed
        assert b"received" not in signed and b"return-path" not in signed


@pytest.mark.sanitized
def test_message_id_and_date_we_add_are_signed(env, lab_dkim):
    msg = make_message(message_id=False, date=False)
    submit(env, msg)
    [m] = env.sink.messages()
    check_relayed(m["data"], msg, added_message_id=True, added_date=True)
    tags = sig_tags(m["data"])
    assert len(tags) == 2, tags
    for t in tags:
        signed = [h.strip().lower() for h in t[b"h"].split(b":")]
        assert signed.count(b"message-id") == 2 and signed.count(b"date") == 2, signed


def message_of(size):
    """A message of exactly `size` octets (lines of at most 78)."""
    base = make_message(body=b"")
    need, lines = size - len(base), []
    while need >= 78:
        lines.append(b"z" * 76 + b"\r\n")
        need -= 78
    if need >= 2:
        lines.append(b"z" * (need - 2) + b"\r\n")
    elif need == 1:
        lines[-1] = b"z" + lines[-1]
    msg = base + b"".join(lines)
    assert len(msg) == size
    return msg


@pytest.mark.sanitized
def test_either_side_of_the_signers_copy_bound(env, lab_dkim):
    """The signer reads a message under 64 KiB (SIGNER_COPY_MAX: the
    memfd holds the client's message as sent) into its slot's buffer and
    maps a larger one: 65,535, 65,536 and 65,537 octets, then short ones
    after them in the same slot, are relayed as sent and dkimpy verifies
    every signature (nothing of a longer message read before is signed
    with a shorter one)."""
    sent = [message_of(n) for n in (65535, 65536, 65537, 65535, 300, 65534, 299)]
    c = env.session()
    for msg in sent:
        c.mail(ALICE)
        c.rcpt(RCPT, code=250)
        c.data(dot_stuff(msg), 250, "2.0.0")
    c.cmd("QUIT", 221)
    got = env.sink.messages()
    assert len(got) == len(sent)
    for m, msg in zip(got, sent):
        check_relayed(m["data"], msg, added_message_id=False, added_date=False)


def verdicts(lab_dkim, message):
    """dkimpy's verdict on each DKIM-Signature field of message, in the
    order ed, rsa; asserts that the message carries exactly the two
    signatures subproxy makes for lab.test (so that a verdict on no
    signature at all cannot pass as "all failed" or "all verified")."""
    results = sorted(lab_dkim.verify(message), key=lambda r: r[1])
    assert [(d, sel) for (d, sel, _ok) in results] == [("lab.test", "ed"), ("lab.test", "rsa")], \
        "expected one Ed25519 and one RSA signature by lab.test: %r" % results
    return [ok for (_d, _s, ok) in results]


def test_tampering_breaks_every_signature(env, lab_dkim):
    # signed fields present once (Content-Type: front lets it repeat) and
    # twice (List-Id); Reply-To and Cc absent
    msg = make_message(body="the original body",
                       headers=("Content-Type: text/plain", "List-Id: <one.lab.test>",
                                "List-Id: <two.lab.test>"))
    submit(env, msg)
    [m] = env.sink.messages()
    stored = m["data"]
    assert verdicts(lab_dkim, stored) == [True, True]
    cut = stored.index(b"\r\n\r\n") + 2
    forgeries = {
        # a second From added after signing (above the others, where readers look)
        "From on top": b"From: <ceo@lab.test>\r\n" + stored,
        "From at the end of the header": stored[:cut] + b"From: <ceo@lab.test>\r\n" + stored[cut:],
        "Subject added": stored[:cut] + b"Subject: urgent\r\n" + stored[cut:],
        # oversigning: no listed field can be added, present or not
        "Reply-To added": stored[:cut] + b"Reply-To: <ceo@lab.test>\r\n" + stored[cut:],
        "Cc added on top": b"Cc: <victim@remote.test>\r\n" + stored,
        "a second Content-Type": stored[:cut] + b"Content-Type: text/html\r\n" + stored[cut:],
        "a third List-Id": b"List-Id: <three.lab.test>\r\n" + stored,
        "body changed": stored.replace(b"the original body", b"the changed body"),
        # a line appended to the body (what l= would allow)
        "line appended": stored + b"appended\r\n",
    }
    for what, forged in forgeries.items():
        assert forged != stored, what
        assert verdicts(lab_dkim, forged) == [False, False], what


# What canonicalization has to get right, each checked by a second
# independent verifier (dkimpy; libopendkim checks the same in test_dkim.c).
CANON_CASES = {
    "folded fields, white space runs, repeated listed field, trailing empty lines":
        dict(subject="a  folded\t subject \r\n\t with  runs ",
             headers=("List-Id:  <one.lab.test> ", "List-Id:\r\n <two.lab.test>"),
             body="  lead\t and  trail \t\r\n\r\n \r\nlast\r\n\r\n \r\n\r\n"),
    "empty body": dict(body=b""),
    "8-bit header and body": dict(subject="Gr\u00fc\u00dfe", body="Gr\u00fc\u00dfe, J\u00fcrgen\r\n"),
    # RFC 5322 allows ';' in a field name; libopendkim refused such a
    # message (451 4.3.0 while it signed), the native signer signs it
    "';' in a field name": dict(headers=("X-Scan;Result: clean",)),
    # VT and FF are refused in header fields (test_intake.py); in the body
    # they are ordinary octets to every verifier
    "VT and FF in the body": dict(body="a\x0b b \x0c\r\n\x0c\r\n"),
}


@pytest.mark.parametrize("case", sorted(CANON_CASES))
def test_canonicalization_verified_by_dkimpy(env, lab_dkim, case):
    msg = make_message(**CANON_CASES[case])
    submit(env, msg)
    [m] = env.sink.messages()
    assert verdicts(lab_dkim, m["data"]) == [True, True], case


@pytest.mark.sanitized
def test_domain_without_key_refused(lab, lab_dkim):
    s = lab.sink()
    sp = lab.subproxy(s, dkim=lab_dkim.config(domains=["lab.test"]))
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.login()
    sender = "team@alias.lab.test"
    c.mail(sender)
    c.rcpt(RCPT, code=250)
    r = c.data(dot_stuff(make_message(sender=sender)), code=550, enh="5.7.1")
    assert "alias.lab.test" in r.text and "DKIM" in r.text, r
    assert s.messages() == [] and s.data_completions() == 0
    # the session goes on and lab.test still works
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(make_message()), code=250)
    assert len(s.messages()) == 1


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_readable_by_others_stops_start(lab, lab_dkim, tmp_path, mode):
    import dkimkeys
    keys = dkimkeys.LabDkim(tmp_path / "k", domains=())
    path = keys.add("lab.test", "weak", "ed25519", mode=mode)
    s = lab.sink()
    sp = lab.subproxy(s, dkim=keys.config(), wait=False)
    rc = sp.expect_exit(1, timeout=20)
    assert rc == 1
    text = sp.stderr_text()
    assert path in text and ("%o" % mode) in text and "chmod 600" in text, text
    assert s.sessions() == []


def test_unreadable_or_bad_key_stops_start(lab, tmp_path):
    bad = tmp_path / "bad.key"
    fd = os.open(bad, os.O_WRONLY | os.O_CREAT, 0o600)
    # a PEM frame with garbage inside (the marker is assembled so that no
    # tracked file looks like it holds a key)
    marker = b"PRIVATE " + b"KEY-----"
    os.write(fd, b"-----BEGIN " + marker + b"\nnot a key\n-----END " + marker + b"\n")
    os.close(fd)
    missing = tmp_path / "missing.key"
    for path in (bad, missing):
        sp = lab.subproxy(lab.sink(), dkim='[dkim "lab.test"]\nkey = s1 %s\n' % path, wait=False)
        assert sp.expect_exit(1, timeout=20) == 1
        assert str(path) in sp.stderr_text()


def weird_key_files(tmp_path):
    """{name: (path, the reason the start must name)}: key files GnuTLS
    reads that must not be used: an RSA key with public exponent 3 (lax
    verifiers accept forgeries), a key followed by text, two keys in one
    file (which one signs?)."""
    import dkimkeys
    from cryptography.hazmat.primitives.asymmetric import rsa
    ed = dkimkeys.make_key("ed25519")
    rsa3 = rsa.generate_private_key(public_exponent=3, key_size=2048)
    out = {}
    for name, key, extra, why in [
            ("e3", rsa3, b"", "RSA public exponent 3"),
            ("trailing", ed, b"not part of the key\n", "text after the key"),
            ("two-keys", ed, None, "more than one PEM block")]:
        path = str(tmp_path / ("%s.key" % name))
        pem = dkimkeys.write_private(path, key)
        with open(path, "ab") as f:
            f.write(pem if extra is None else extra)
        out[name] = (path, why)
    return out


@pytest.mark.parametrize("name", ["e3", "trailing", "two-keys"])
def test_weird_key_stops_start(lab, tmp_path, name):
    path, why = weird_key_files(tmp_path)[name]
    s = lab.sink()
    sp = lab.subproxy(s, dkim='[dkim "lab.test"]\nkey = s1 %s\n' % path, wait=False)
    assert sp.expect_exit(1, timeout=20) == 1
    text = sp.stderr_text()
    assert path in text and why in text, text
    assert s.sessions() == []


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(p))
            except OSError:
                pass
    return out


def roles(sp):
    """{role: pid} of a running daemon's processes (comm subproxy-ROLE)."""
    out = {"parent": sp.proc.pid}
    for pid in children(sp.proc.pid):
        with open("/proc/%d/comm" % pid) as f:
            comm = f.read().strip()
        assert comm.startswith("subproxy-"), comm
        out[comm[len("subproxy-"):]] = pid
    return out


def memory_contains(pid, needles):
    """Search every readable private mapping of pid for any of needles."""
    found = []
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if "r" not in parts[1] or (len(parts) > 5 and parts[5].startswith("[v")):
                continue
            if end - start > 512 * 1024 * 1024:
                continue
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            for n in needles:
                if n in chunk:
                    found.append((parts[0], parts[-1] if len(parts) > 5 else "", n[:8].hex()))
    return found


def key_secrets(lab_dkim):
    """Byte strings that only a process holding the private keys has."""
    from cryptography.hazmat.primitives import serialization
    out = []
    for k in lab_dkim.keys.values():
        key = serialization.load_pem_private_key(k["pem"], None)
        if k["kind"] == "ed25519":
            out.append(key.private_bytes(serialization.Encoding.Raw,
                                         serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption()))
        else:
            d = key.private_numbers().d
            out.append(d.to_bytes((d.bit_length() + 7) // 8, "big")[:32])
        out.append(k["pem"][40:80])     # a slice of the PEM text
    return out


def test_signer_process_holds_the_keys_front_does_not(env, lab_dkim):
    submit(env, make_message())        # keys have been used at least once
    assert len(env.sink.messages()) == 1
    r = roles(env.sp)
    assert "signer" in r and "front" in r, r
    signer = r["signer"]
    files = [k["file"] for k in lab_dkim.keys.values()]
    secrets = key_secrets(lab_dkim)
    for front in fronts(env.sp.proc.pid):          # every worker
        with open("/proc/%d/maps" % front) as f:
            maps = f.read()
        assert not any(p in maps for p in files)
        for fd in os.listdir("/proc/%d/fd" % front):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (front, fd))
            except OSError:
                continue
            assert target not in files, "front has a key file open: %s" % target
        assert memory_contains(front, secrets) == [], "key bytes found in front's memory"
    # the test is able to find them where they are: in the signer
    assert memory_contains(signer, secrets), "the search cannot find the keys in the signer"
    with open("/proc/%d/status" % signer) as f:
        status = f.read()
    assert re.search(r"^Name:\s*subproxy-signer", status, re.M)
    # the parent does not hold the keys either
    assert memory_contains(r["parent"], secrets) == [], "key bytes in the parent's memory"


@pytest.mark.sanitized
def test_signer_dies_while_signing_451(lab):
    """A message waiting for its signature when the signer dies gets
    451 4.3.0 (never 250, never relayed unsigned)."""
    s = lab.sink()
    sp = lab.subproxy(s)
    sp.wait_relay_probe()
    signer = roles(sp)["signer"]
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.login()
    c.mail(ALICE)
    c.rcpt(RCPT, code=250)
    sigstop(signer)      # the request will wait in the socket
    try:
        c.cmd("DATA", 354)
        c.send(dot_stuff(make_message()))
        assert c.pending(wait=0.5) == b"", "answered before the signature: %r" % c.buf
    finally:
        os.kill(signer, signal.SIGKILL)
    r = c.read_reply()
    r.check(451, "4.3.0")
    assert sp.expect_exit(1, timeout=40) == 1
    assert "event=fatal" in sp.stderr_text()
    assert s.messages() == [] and s.data_completions() == 0
