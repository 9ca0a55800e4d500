"""
Connection limits ([limits] connections, connections-per-ip) and relay
credentials ([relay] auth-file): the exact replies, and what the relay saw.
"""

import os
import re

import pytest

from helpers import raw_starttls_client, submit_through

# also run against the ASan/UBSan daemon in make check (doc/testing.md):
# connection limits and relay AUTH
pytestmark = pytest.mark.sanitized


def greeted(sp, lab):
    """A STARTTLS-listener session that got its greeting (it counts)."""
    c = raw_starttls_client(sp.starttls_port, lab.certs.ca)
    c.greeting.check(220)
    return c


def test_connections_per_ip(lab):
    sp = lab.subproxy(lab.sink(), limits={"connections-per-ip": 2})
    sp.wait_sessions_ended()
    a, b = greeted(sp, lab), greeted(sp, lab)
    c = raw_starttls_client(sp.starttls_port, lab.certs.ca)
    c.greeting.check(421, "4.7.0")
    c.expect_closed()
    a.cmd("QUIT", 221)
    a.expect_closed()       # the server closed it: its slot is free again
    d = greeted(sp, lab)
    for x in (b, d):
        x.cmd("QUIT", 221)


def test_connections_global(lab):
    sp = lab.subproxy(lab.sink(), limits={"connections": 2, "connections-per-ip": 10})
    sp.wait_sessions_ended()
    a, b = greeted(sp, lab), greeted(sp, lab)
    c = raw_starttls_client(sp.starttls_port, lab.certs.ca)
    c.greeting.check(421, "4.3.2")
    c.expect_closed()
    for x in (a, b):
        x.cmd("QUIT", 221)


def auth_file(tmp_path, text, mode=0o600):
    p = tmp_path / "relay-auth"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, text.encode())
    os.close(fd)
    os.chmod(p, mode)
    return str(p)


def submit(sp, lab, expect):
    return submit_through(sp.implicit_port, lab.certs.ca, *expect)


def test_relay_auth_file(lab, tmp_path):
    s = lab.sink(auth=("relay-user", "relay secret"))
    path = auth_file(tmp_path, "relay-user:relay secret\n")
    sp = lab.subproxy({"sink": s, "extra": {"auth-file": path}})
    submit(sp, lab, (250, "2.0.0"))
    assert len(s.messages()) == 1
    assert any("auth relay-user" in e for x in s.sessions() for e in x["events"]), s.sessions()
    # the credentials never appear in the log
    assert "relay secret" not in sp.stderr_text()


def test_relay_auth_refused(lab, tmp_path):
    s = lab.sink(auth=("relay-user", "relay secret"))
    path = auth_file(tmp_path, "relay-user:wrong\n")
    sp = lab.subproxy({"sink": s, "extra": {"auth-file": path}})
    submit(sp, lab, (451, "4.7.0"))
    assert s.messages() == [] and s.data_completions() == 0
    assert not any(x.upper().startswith("MAIL") for x in s.commands())


@pytest.mark.parametrize("text,mode,why", [
    ("relay-user:pw\n", 0o644, "chmod 600"),
    ("no-colon\n", 0o600, "user:password"),
    ("", 0o600, "empty"),
])
def test_relay_auth_file_refused_at_start(lab, tmp_path, text, mode, why):
    path = auth_file(tmp_path, text, mode)
    sp = lab.subproxy({"sink": lab.sink(), "extra": {"auth-file": path}}, wait=False)
    assert sp.expect_exit(1, timeout=20) == 1
    out = sp.stderr_text()
    assert path in out and why in out, out


def test_file_size_limit_fails_the_message_not_the_worker(lab, tmp_path):
    """Under a file size limit (RLIMIT_FSIZE, `ulimit -f`) a message whose
    memfd would grow beyond it gets 451 4.3.0 and nothing is relayed; the
    front worker lives on (SIGXFSZ used to kill it: any client could make
    the workers restart until [server] worker-restarts stopped the
    service) and relays the next message."""
    from conftest import subproxy_binary
    from helpers import RCPT, RawClient, dot_stuff, make_message
    wrapper = tmp_path / "subproxy-fsize"
    wrapper.write_text("#!/bin/sh\nexec prlimit --fsize=1048576 -- %s \"$@\"\n"
                       % subproxy_binary())
    os.chmod(wrapper, 0o755)
    s = lab.sink()
    sp = lab.subproxy(s, binary=str(wrapper), server={"workers": 1})
    c = RawClient(sp.implicit_port, lab.certs.ca)
    c.greeting.check(220)
    c.login()
    c.mail()
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(make_message()), 250, "2.0.0")
    big = make_message(body=("y" * 998 + "\r\n") * 2048)          # 2 MB
    c.mail()
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(big), 451, "4.3.0")
    c.mail()
    c.rcpt(RCPT, code=250)
    c.data(dot_stuff(make_message()), 250, "2.0.0")
    c.cmd("QUIT", 221)
    assert len(s.messages()) == 2
    assert not re.search(r"event=(worker|child)-died", sp.stderr_text()), sp.stderr_text()
