"""
test_reload.py -- SIGHUP reloads the configuration, the certificate and
key, the password file and the DKIM keys (issue 12, item 1): the new set
passes the self-audit or the running one stays (logged once per failed
check with its remedy); sessions in progress finish with the set they
started with, new sessions get the new one; settings that need a restart
are named; the service manager hears RELOADING=1 then READY=1; the
reloads are counted in the metrics.
"""

import os
import re
import signal
import socket
import ssl
import subprocess
import threading

import pytest

import dkimkeys
import sink as labsink
from conftest import dns_section, hash_password, subproxy_binary
from helpers import (ALICE, BOB, BOB_PW, RCPT, RawClient, dot_stuff, free_port, half_sent,
                     logged_in, make_message, submit_through)
from opsutil import NotifySocket, all_children, scrape, val, wait_for

RELOAD_TIMEOUT = 60


def rewrite(sp, *pairs):
    """Replace text in the daemon's configuration file."""
    text = sp.config_path.read_text()
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    sp.config_path.write_text(text)
    sp.config_text = text


def sighup(sp):
    start = len(sp.lines)
    sp.proc.send_signal(signal.SIGHUP)
    return start


def reload_ok(sp, generation):
    """SIGHUP, then wait until generation `generation` serves and the old
    one accepts nothing more.  Returns the index of the first new log line."""
    start = sighup(sp)
    line = sp.wait_log(r"event=(reloaded generation=%d |reload-failed)" % generation,
                       timeout=RELOAD_TIMEOUT, start=start)
    assert line and "reloaded" in line, sp.stderr_text(40)
    return start


def leaf_der(chain_path):
    """DER of the first certificate of a PEM chain file."""
    pem = open(chain_path).read()
    first = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return ssl.PEM_cert_to_DER_cert(first)


def served_cert(sp, ca):
    c = RawClient(sp.implicit_port, ca)
    c.greeting.check(220)
    der = c.sock.getpeercert(binary_form=True)
    c.cmd("QUIT", 221)
    return der


def test_rotate_to_a_certificate_already_in_tlsa(lab, short_ttl_lab, lab_certs, tmp_path,
                                                 monkeypatch):
    """The DANE rollover: the next key's "3 1 1" is published beside the
    current one, then the certificate is swapped and SIGHUP sent.  New
    sessions get the new certificate; a transaction in progress on the old
    one finishes; RELOADING=1 then READY=1; reloads_total{result="ok"}."""
    dns = short_ttl_lab
    notify = NotifySocket(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", notify.env)
    port = free_port()
    s = lab.sink()
    sp = lab.subproxy(s, dns=dns_section(dns), server={"shutdown-timeout": 60},
                      extra_config="[metrics]\naddress = 127.0.0.1:%d\n" % port)
    notify.wait("READY", "1", timeout=30)
    assert served_cert(sp, lab_certs.ca) == leaf_der(lab_certs.mail)
    old = logged_in(sp.implicit_port, lab_certs.ca)
    tail = half_sent(old, "started before the rollover")
    # step 1: publish the next key's record beside the current one
    chain, key = lab_certs.authority.issue("mail.lab.test", tmp_path, "next")
    dns.add("lab.test", "*._tcp.mail %d TLSA %s" % (dns.ttl, labsink.tlsa_311(chain)))
    dns.reload()
    # step 2: swap the certificate and key, SIGHUP
    rewrite(sp, ("certificate = %s" % lab_certs.mail, "certificate = %s" % chain),
            ("key = %s" % lab_certs.mail_key, "key = %s" % key))
    notify.drain()
    start = reload_ok(sp, 2)
    notify.wait("RELOADING", "1", timeout=5)
    ready = notify.wait("READY", "1", timeout=5)
    assert ready.get("STATUS", "").startswith("serving: "), ready
    # new sessions: the new certificate, and they work
    assert served_cert(sp, lab_certs.ca) == leaf_der(chain)
    submit_through(sp.implicit_port, lab_certs.ca, 250, "2.0.0")
    # the session in progress finishes on the old generation
    old.send(tail)
    old.read_reply().check(250, "2.0.0")
    old.cmd("QUIT", 221)
    assert sp.wait_log(r"event=generation-ended generation=1", timeout=30, start=start)
    subjects = [m["data"] for m in s.messages()]
    assert len(subjects) == 2 and any(b"started before the rollover" in d for d in subjects)
    assert not any("reload-failed" in ln or "child-died" in ln for ln in sp.lines)
    m = scrape(port)
    assert val(m, "subproxy_reloads_total", result="ok") == 1
    assert val(m, "subproxy_reloads_total", result="failed") == 0
    notify.close()


@pytest.mark.sanitized
def test_rotate_to_a_certificate_not_in_tlsa(lab, lab_certs, tmp_path, monkeypatch):
    """A renewal whose key is not published in TLSA never goes live: the
    reload is refused by the self-audit (logged once, with the check id and
    the remedy), the old certificate is still served, READY=1 follows
    RELOADING=1, and the failure is counted."""
    notify = NotifySocket(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", notify.env)
    port = free_port()
    sp = lab.subproxy(lab.sink(),
                      extra_config="[metrics]\naddress = 127.0.0.1:%d\n" % port)
    notify.wait("READY", "1", timeout=30)
    chain, key = lab_certs.authority.issue("mail.lab.test", tmp_path, "unpublished")
    rewrite(sp, ("certificate = %s" % lab_certs.mail, "certificate = %s" % chain),
            ("key = %s" % lab_certs.mail_key, "key = %s" % key))
    notify.drain()
    start = sighup(sp)
    assert sp.wait_log(r"event=reload-failed reason=self-audit", timeout=RELOAD_TIMEOUT,
                       start=start), sp.stderr_text(30)
    refused = [ln for ln in sp.lines[start:] if "event=reload-refused self-audit:" in ln]
    ids = [re.search(r"self-audit: ([\w.-]+):", ln).group(1) for ln in refused]
    assert "dane.own.submissions" in ids and len(ids) == len(set(ids)), refused
    line = next(ln for ln in refused if "dane.own.submissions:" in ln)
    assert "Fix: publish" in line and labsink.tlsa_311(chain).split()[3] in line, line
    notify.wait("RELOADING", "1", timeout=5)
    notify.wait("READY", "1", timeout=5)
    assert served_cert(sp, lab_certs.ca) == leaf_der(lab_certs.mail)
    submit_through(sp.implicit_port, lab_certs.ca, 250, "2.0.0")
    m = scrape(port)
    assert val(m, "subproxy_reloads_total", result="failed") == 1
    assert val(m, "subproxy_reloads_total", result="ok") == 0
    assert not any("generation=2" in ln for ln in sp.lines)
    notify.close()


def test_passwd_file_reloaded(lab, lab_certs, tmp_path):
    """A user added to the passwd file can log in after SIGHUP, a removed
    one is refused; a session that logged in before goes on with the set it
    started with."""
    path = tmp_path / "passwd"
    alice, bob = hash_password("alice-secret"), hash_password(BOB_PW)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("%s:%s\n%s:%s\n" % (ALICE, alice, BOB, bob))
    s = lab.sink()
    sp = lab.subproxy(s, overrides=["auth.passwd-file=%s" % path])
    early_bob = logged_in(sp.implicit_port, lab_certs.ca, BOB, BOB_PW)
    with pytest.raises(AssertionError):
        logged_in(sp.implicit_port, lab_certs.ca, "carol@lab.test", "carol-secret")
    with open(path, "w") as f:
        f.write("%s:%s\ncarol@lab.test:%s\n" % (ALICE, alice, hash_password("carol-secret")))
    reload_ok(sp, 2)
    carol = logged_in(sp.implicit_port, lab_certs.ca, "carol@lab.test", "carol-secret")
    carol.mail("carol@lab.test")
    carol.rcpt(RCPT, code=250)
    carol.data(dot_stuff(make_message(sender="carol@lab.test")), 250, "2.0.0")
    c = RawClient(sp.implicit_port, lab_certs.ca)
    c.greeting.check(220)
    c.ehlo()
    c.auth_plain(BOB, BOB_PW, code=535, enh="5.7.8")
    # bob's session from before the reload: the old set
    early_bob.mail(BOB)
    early_bob.rcpt(RCPT, code=250)
    early_bob.data(dot_stuff(make_message(sender=BOB)), 250, "2.0.0")
    assert len(s.messages()) == 2


def test_dkim_key_swap(lab, short_ttl_lab, lab_dkim, tmp_path):
    """A new DKIM key under a new selector, published in DNS, replaces the
    old one at SIGHUP: messages are signed with it (dkimpy verifies)."""
    dns = short_ttl_lab
    key = dkimkeys.make_key("ed25519")
    path = str(tmp_path / "s2027.lab.test.key")
    dkimkeys.write_private(path, key)
    txt = dkimkeys.txt_record(key)
    dns.add_txt("lab.test", "s2027._domainkey", txt, ttl=dns.ttl)
    dns.reload()
    s = lab.sink()
    sp = lab.subproxy(s, dns=dns_section(dns))
    old_ed = lab_dkim.keys[("lab.test", "ed")]["file"]
    rewrite(sp, ("key = ed %s" % old_ed, "key = s2027 %s" % path))
    reload_ok(sp, 2)
    submit_through(sp.implicit_port, lab.certs.ca, 250, "2.0.0")
    import dkim   # python3-dkim

    def dnsfunc(name, timeout=5):
        name = (name.decode() if isinstance(name, bytes) else name).rstrip(".").lower()
        if name == "s2027._domainkey.lab.test":
            return txt.encode()
        return lab_dkim.dnsfunc(name, timeout)

    data = s.messages()[-1]["data"]
    d = dkim.DKIM(data)
    sigs = [v for (n, v) in d.headers if n.lower() == b"dkim-signature"]
    selectors = [dkim.util.parse_tag_value(b"".join(v.split()))[b"s"].decode() for v in sigs]
    assert sorted(selectors) == ["rsa", "s2027"], selectors
    for i in range(len(sigs)):
        assert d.verify(idx=i, dnsfunc=dnsfunc), selectors[i]


@pytest.mark.parametrize("name", ["e3", "trailing"])
def test_bad_dkim_key_keeps_the_running_set(lab, lab_dkim, tmp_path, name):
    """A reload whose DKIM key must not be used (test_dkim.py: an RSA
    exponent of 3, text after the key) is refused naming the file and why
    (by the self-audit, which loads every key first);
    the running signer, which holds the old keys, goes on signing with
    them (dkimpy verifies) and nothing of the refused generation is left."""
    from test_dkim import weird_key_files
    path, why = weird_key_files(tmp_path)[name]
    s = lab.sink()
    sp = lab.subproxy(s)
    old_ed = lab_dkim.keys[("lab.test", "ed")]["file"]
    rewrite(sp, ("key = ed %s" % old_ed, "key = ed %s" % path))
    start = sighup(sp)
    line = sp.wait_log(r"event=reload-(failed|refused) ", timeout=RELOAD_TIMEOUT, start=start)
    assert line and path in line and why in line, sp.stderr_text(20)
    assert "event=reloaded" not in "\n".join(sp.lines[start:])
    wait_for(lambda: all_children(sp.proc.pid).count("subproxy-signer") == 1, timeout=15,
             what="the refused generation's signer gone")
    submit_through(sp.implicit_port, lab.certs.ca, 250, "2.0.0")
    results = lab_dkim.verify(s.messages()[-1]["data"])
    assert sorted((sel, ok) for (_d, sel, ok) in results) == [("ed", True), ("rsa", True)], \
        results


@pytest.mark.sanitized
def test_reload_while_the_previous_generation_drains(lab, lab_certs):
    """A SIGHUP while the previous generation still has sessions is refused
    (logged with their number, counted as failed); once they have ended, the
    next SIGHUP reloads."""
    port = free_port()
    s = lab.sink()
    sp = lab.subproxy(s, server={"shutdown-timeout": 120},
                      extra_config="[metrics]\naddress = 127.0.0.1:%d\n" % port)
    held = logged_in(sp.implicit_port, lab_certs.ca)
    tail = half_sent(held, "held across two reloads")
    reload_ok(sp, 2)
    start = sighup(sp)
    assert sp.wait_log(r"event=reload-refused reason=draining: generation 1 is still draining "
                       r"\(1 sessions", timeout=10, start=start), sp.stderr_text(20)
    submit_through(sp.implicit_port, lab_certs.ca, 250, "2.0.0")
    held.send(tail)
    held.read_reply().check(250, "2.0.0")
    held.cmd("QUIT", 221)
    assert sp.wait_log(r"event=generation-ended generation=1", timeout=30, start=start)
    reload_ok(sp, 3)
    m = scrape(port)
    assert val(m, "subproxy_reloads_total", result="ok") == 2
    assert val(m, "subproxy_reloads_total", result="failed") == 1
    assert len(s.messages()) == 2


def test_repeated_sighup(lab, lab_certs):
    """SIGHUP after SIGHUP: one reload runs; those that come while it runs
    are ignored, those that come while the previous generation still has a
    session are refused (the log says which); the service serves
    throughout, and once the old session has ended a SIGHUP reloads again.
    (Signals sent faster than the parent reads them merge into one: the
    kernel keeps one pending SIGHUP; each burst here waits for the parent
    to have read the previous one.)"""
    sp = lab.subproxy(lab.sink())
    held = logged_in(sp.implicit_port, lab_certs.ca)
    start = len(sp.lines)
    for n in range(8):
        sp.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(re.findall(r"subproxy\[\d+\] info: event=sighup",
                                        "\n".join(sp.lines[start:]))) > n,
                 timeout=10, what="SIGHUP %d read by the parent" % (n + 1))
    assert sp.wait_log(r"event=reloaded generation=2 ", timeout=RELOAD_TIMEOUT, start=start)
    submit_through(sp.implicit_port, lab_certs.ca, 250, "2.0.0")
    text = "\n".join(sp.lines[start:])
    assert "child-died" not in text and "generation=3" not in text
    assert len(re.findall(r"event=reloaded ", text)) == 1, text
    assert len(re.findall(r"event=reload-(ignored|refused)", text)) == 7, text
    held.cmd("QUIT", 221)
    assert sp.wait_log(r"event=generation-ended generation=1", timeout=30, start=start)
    reload_ok(sp, 3)
    submit_through(sp.implicit_port, lab_certs.ca, 250, "2.0.0")


def test_configuration_error_keeps_the_running_set(lab, lab_certs):
    """A reloaded file with an error: FILE:LINE in the log, the running
    configuration stays; once fixed, the next SIGHUP reloads."""
    sp = lab.subproxy(lab.sink())
    text = sp.config_path.read_text()
    lines = text.count("\n")
    sp.config_path.write_text(text + "[limits]\nrecipients = many\n")
    start = sighup(sp)
    line = sp.wait_log(r"event=reload-failed ", timeout=RELOAD_TIMEOUT, start=start)
    assert line and "%s:%d: bad value 'many' for 'recipients'" % (sp.config_path, lines + 2) \
        in line, line
    assert "still serving with the running configuration" in line
    submit_through(sp.implicit_port, lab_certs.ca, 250, "2.0.0")
    sp.config_path.write_text(text)
    reload_ok(sp, 2)


def test_configuration_replaced_by_a_fifo(lab, lab_certs):
    """A FIFO in the configuration file's place (nobody writing to it): the
    reload is refused at once naming the file, the parent is not stuck in
    open(2) (it used to wait there for a writer, serving no reload, no
    worker replacement), and the running set goes on; --check says the same
    and exits 2."""
    sp = lab.subproxy(lab.sink())
    text = sp.config_path.read_text()
    os.unlink(sp.config_path)
    os.mkfifo(sp.config_path, 0o600)
    try:
        start = sighup(sp)
        line = sp.wait_log(r"event=reload-failed ", timeout=RELOAD_TIMEOUT, start=start)
        assert line and "%s: not a regular file" % sp.config_path in line, sp.stderr_text(20)
        submit_through(sp.implicit_port, lab_certs.ca, 250, "2.0.0")
        r = subprocess.run([subproxy_binary(), "-c", str(sp.config_path), "--check"],
                           capture_output=True, text=True, timeout=30, check=False)
        assert r.returncode == 2 and "not a regular file" in r.stderr, r
    finally:
        os.unlink(sp.config_path)
        sp.config_path.write_text(text)
    reload_ok(sp, 2)


@pytest.mark.sanitized
def test_sessions_not_logged_in_end_at_a_reload(lab, lab_certs, tmp_path):
    """A reload that changes alice's password: sessions of the old
    generation that have not logged in get 421 4.3.2 at once (one in the
    TLS handshake is dropped), so that nobody logs in with the old
    password against the draining keeper (its passwd file and cache are
    the old ones; it used to answer 235 from its cache); a session logged
    in before the reload goes on and its message is relayed once; at the
    new generation the old password gets 535 5.7.8, the new one 235."""
    path = tmp_path / "passwd"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("%s:%s\n" % (ALICE, hash_password("alice-old")))
    s = lab.sink()
    sp = lab.subproxy(s, overrides=["auth.passwd-file=%s" % path],
                      server={"shutdown-timeout": 60})
    ca = lab_certs.ca
    c = logged_in(sp.implicit_port, ca, ALICE, "alice-old")      # into the cache
    c.cmd("QUIT", 221)
    busy = logged_in(sp.implicit_port, ca, ALICE, "alice-old")
    pre = RawClient(sp.implicit_port, ca)
    pre.greeting.check(220)
    pre.ehlo()
    plain = RawClient(sp.starttls_port, ca, implicit=False)
    plain.greeting.check(220)
    plain.ehlo()
    handshake = socket.create_connection(("127.0.0.1", sp.implicit_port), timeout=30)
    with open(path, "w") as f:
        f.write("%s:%s\n" % (ALICE, hash_password("alice-new")))
    start = reload_ok(sp, 2)
    for cl in (pre, plain):
        cl.read_reply().check(421, "4.3.2")
        assert cl.sock.recv(1) == b""
    assert handshake.recv(1) == b""
    handshake.close()
    # each front worker ends its own
    wait_for(lambda: sum(int(m) for m in re.findall(r"event=drain-logins sessions=(\d+): ",
                                                    "\n".join(sp.lines[start:]))) == 3,
             timeout=15, what="3 sessions not logged in ended")
    c = RawClient(sp.implicit_port, ca)
    c.greeting.check(220)
    c.ehlo()
    c.auth_plain(ALICE, "alice-old", code=535, enh="5.7.8")
    c.auth_plain(ALICE, "alice-new")
    c.cmd("QUIT", 221)
    tail = half_sent(busy, "logged in before the reload")
    busy.send(tail)
    busy.read_reply().check(250, "2.0.0")
    busy.cmd("QUIT", 221)
    assert sp.wait_log(r"event=generation-ended generation=1", timeout=30, start=start)
    assert len(s.messages()) == 1


def _submit_loop(port, ca, tag, stop, acked, errors, most=300):
    """Messages, one per session, until stop is set (at most `most`).
    Before it has logged in a session may be ended by a reload (421 4.3.2,
    or its TLS handshake dropped): the message is tried again, at most 5
    times.  Once logged in, the session must get its 250.  acked:
    Message-IDs answered 250; errors: what went wrong otherwise."""
    for i in range(most):
        if stop.is_set():
            return
        for _attempt in range(5):
            try:
                c = RawClient(port, ca, timeout=30)
                c.greeting.check(220)
                if c.cmd("EHLO x.lab.test").code != 250 or c.auth_plain(code=None).code != 235:
                    c.close()
                    continue
            except OSError:
                continue
            try:
                msg = make_message(subject="%s-%d" % (tag, i))
                mid = re.search(rb"Message-ID: (<[^>]+>)", msg).group(1)
                c.mail()
                c.rcpt(RCPT, code=250)
                c.data(dot_stuff(msg), 250, "2.0.0")
                acked.append(mid)
                c.cmd("QUIT", 221)
                c.close()
            except (OSError, AssertionError) as e:
                errors.append((tag, i, repr(e)))
            break
        else:
            errors.append((tag, i, "not logged in in 5 attempts"))


def test_reloads_under_load(lab, lab_certs):
    """Three clients submit in a loop while the service reloads: a good
    configuration, then one with an error (refused, the running set
    serves), then a good one again.  Every logged-in session gets its 250
    (a session not logged in at a reload gets 421 and connects again),
    every message answered 250 was relayed exactly once, and nothing was
    relayed that was not acknowledged."""
    s = lab.sink()
    sp = lab.subproxy(s)
    ca = lab_certs.ca
    acked, errors, threads, stop = [], [], [], threading.Event()

    def more(k):
        n = len(acked)
        wait_for(lambda: len(acked) >= n + k or not any(t.is_alive() for t in threads),
                 timeout=60, what="%d more messages relayed" % k)
    try:
        for t in range(3):
            th = threading.Thread(target=_submit_loop, args=(sp.implicit_port, ca, "c%d" % t,
                                                            stop, acked, errors), daemon=True)
            th.start()
            threads.append(th)
        more(3)
        start = reload_ok(sp, 2)
        assert sp.wait_log(r"event=generation-ended generation=1", timeout=60, start=start)
        more(3)
        text = sp.config_path.read_text()
        sp.config_path.write_text(text + "[limits]\nrecipients = many\n")
        start = sighup(sp)
        assert sp.wait_log(r"event=reload-failed ", timeout=RELOAD_TIMEOUT, start=start)
        sp.config_path.write_text(text)
        more(3)
        reload_ok(sp, 3)
        more(3)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=120)
    assert not any(th.is_alive() for th in threads), "a client is still sending"
    assert not errors, errors
    assert len(acked) >= 12 and len(set(acked)) == len(acked)
    relayed = [re.search(rb"Message-ID: (<[^>]+>)", m["data"]).group(1) for m in s.messages()]
    assert sorted(relayed) == sorted(acked), (len(relayed), len(acked))
    assert "child-died" not in sp.stderr_text()


def test_restart_only_settings_are_named(lab, lab_certs):
    """Changed listen addresses, user, workers or [limits] connections are
    named in the log and keep their running values; the rest is reloaded."""
    sp = lab.subproxy(lab.sink(), server={"workers": 2})
    other = free_port()
    rewrite(sp, ("address = 127.0.0.1:%d" % sp.starttls_port, "address = 127.0.0.1:%d" % other),
            ("workers = 2", "workers = 1"))
    start = reload_ok(sp, 2)
    line = sp.wait_log(r"event=reload-restart-only ", timeout=1, start=start)
    assert 'settings="[listen] sections, [server] workers"' in line, line
    assert sp.wait_log(r"event=reloaded generation=2 workers=2 ", timeout=1, start=start)
    c = RawClient(sp.starttls_port, lab_certs.ca, implicit=False)
    c.greeting.check(220)
    c.cmd("QUIT", 221)
    with pytest.raises(OSError):
        RawClient(other, lab_certs.ca, implicit=False, timeout=2)


@pytest.mark.sanitized
def test_stop_while_a_generation_drains(lab, lab_certs):
    """SIGTERM while the previous generation drains: its transaction in
    flight still finishes (250 once, then 421), idle sessions of both
    generations get 421 4.3.2, and the service exits 0."""
    s = lab.sink()
    sp = lab.subproxy(s, server={"shutdown-timeout": 60})
    busy = logged_in(sp.implicit_port, lab_certs.ca)
    tail = half_sent(busy, "in flight at the stop")
    reload_ok(sp, 2)
    idle = logged_in(sp.implicit_port, lab_certs.ca)          # on generation 2
    sp.signal(signal.SIGTERM)
    r = idle.read_reply()
    assert (r.code, r.enh) == (421, "4.3.2"), r
    busy.send(tail)
    busy.read_reply().check(250, "2.0.0")
    busy.read_reply().check(421, "4.3.2")
    sp.wait_exit()
    assert len(s.messages()) == 1


def test_passwd_file_error_keeps_the_running_set(lab, lab_certs, tmp_path):
    """A passwd file broken between two reloads: the reload's self-audit
    (auth.passwd, the keeper's own checks) refuses it with FILE:LINE and
    what is wrong, before a generation is started; the running generation
    keeps serving its users (nothing of a new one is running); once fixed,
    the next SIGHUP reloads."""
    path = tmp_path / "passwd"
    good = "%s:%s\n" % (ALICE, hash_password("alice-secret"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(good)
    sp = lab.subproxy(lab.sink(), overrides=["auth.passwd-file=%s" % path])
    with open(path, "w") as f:
        f.write(good + "carol@lab.test {ARGON2ID}no-colon\n")
    start = sighup(sp)
    line = sp.wait_log(r"event=reload-failed ", timeout=RELOAD_TIMEOUT, start=start)
    assert line and "reason=self-audit" in line, sp.stderr_text(20)
    assert "still serving with the running configuration" in line
    refused = sp.wait_log(r"event=reload-refused self-audit: auth\.passwd: ", timeout=1,
                          start=start)
    assert refused and "auth.passwd: %s:2: no ':' after the login Fix: " % path in refused, \
        sp.stderr_text(20)
    assert "event=reloaded" not in "\n".join(sp.lines[start:])
    wait_for(lambda: all_children(sp.proc.pid).count("subproxy-signer") == 1, timeout=15,
             what="the refused generation's signer gone")
    c = logged_in(sp.implicit_port, lab_certs.ca, ALICE, "alice-secret")
    c.cmd("QUIT", 221)
    with open(path, "w") as f:
        f.write(good)
    reload_ok(sp, 2)          # the refused reload started no generation
