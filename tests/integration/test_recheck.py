"""
test_recheck.py -- the live self-audit ([audit] recheck): while the daemon
serves, a TLSA record of its own listeners disappears from the (re-signed,
reloaded) lab zone; the next recheck logs the failure once, with its check
id and remedy, and the metrics show 0 for that check; publishing the record
again is logged as a recovery and the metrics show 1.  With the audit log
both changes are recorded (recheck records, in the report).
"""

import re
import socket

import pytest

import auditlab
from conftest import dns_section
from helpers import free_port, submit_through
from opsutil import scrape, val, wait_for
from test_auditlog import report, validate_all, verify


@pytest.fixture
def audit(tmp_path):
    a = auditlab.AuditLog(tmp_path / "auditwork")
    yield a
    a.remove()


def test_recheck_reports_a_removed_tlsa_record(lab, make_sink, short_ttl_lab, lab_certs, audit):
    dns = short_ttl_lab
    port = free_port()
    sp = lab.subproxy(make_sink(), dns=dns_section(dns),
                      extra_config="[audit]\nrecheck = 2s\n[metrics]\naddress = 127.0.0.1:%d\n"
                      % port, overrides=audit.overrides())
    assert sp.wait_log(r"event=audit-recheck interval=2s", timeout=5)
    m = scrape(port)
    assert val(m, "subproxy_audit_check_ok", check="dane.own.submissions") == 1
    runs = wait_for(lambda: val(scrape(port), "subproxy_audit_rechecks_total"), timeout=15,
                    what="a first recheck")
    start = len(sp.lines)
    # the TLSA records of the listeners disappear
    assert dns.remove("lab.test", "*._tcp.mail", "TLSA") == 1
    dns.reload()
    line = sp.wait_log(r"event=audit-recheck check=dane\.own\.submissions status=fail "
                       r"required=yes: .*no TLSA record at _%d\._tcp\.mail\.lab\.test.* Fix: "
                       r"publish, DNSSEC-signed: _%d\._tcp\.mail\.lab\.test\. IN TLSA 3 1 1 "
                       % (sp.implicit_port, sp.implicit_port), timeout=30, start=start)
    assert line, sp.stderr_text(30)
    assert sp.wait_log(r"event=audit-recheck check=dane\.own\.submission status=fail",
                       timeout=10, start=start)
    m = wait_for(lambda: (lambda x: x if val(x, "subproxy_audit_check_ok",
                                             check="dane.own.submissions") == 0 else None)(
        scrape(port)), timeout=10, what="metric 0")
    assert val(m, "subproxy_audit_check_ok", check="dane.own.submission") == 0
    assert val(m, "subproxy_audit_rechecks_total") > runs
    assert val(m, "subproxy_audit_recheck_timestamp_seconds") > 1.6e9
    # logged once per change, not at every run
    n_runs = val(m, "subproxy_audit_rechecks_total")
    wait_for(lambda: val(scrape(port), "subproxy_audit_rechecks_total") >= n_runs + 2,
             timeout=20, what="two more rechecks")
    fails = [ln for ln in sp.lines[start:]
             if "check=dane.own.submissions status=fail" in ln]
    assert len(fails) == 1, fails
    # service goes on meanwhile (the certificate did not change)
    submit_through(sp.implicit_port, lab_certs.ca, 250, "2.0.0")
    # published again: a recovery, and the metric is back to 1
    start = len(sp.lines)
    dns.add("lab.test", "*._tcp.mail %d TLSA %s" % (dns.ttl, dns.tlsa))
    dns.reload()
    assert sp.wait_log(r"event=audit-recheck check=dane\.own\.submissions status=\w+ "
                       r"recovered: ", timeout=30, start=start), sp.stderr_text(30)
    wait_for(lambda: val(scrape(port), "subproxy_audit_check_ok",
                         check="dane.own.submissions") == 1, timeout=10, what="metric 1")
    sp.stop()
    # the audit log has both changes of both listeners, once each
    recs = audit.records()
    validate_all(recs)
    rechecks = [r for r in recs if r["type"] == "recheck"]
    got = sorted((r["check"], r["result"]) for r in rechecks)
    assert got == [("dane.own.submission", "failed"), ("dane.own.submission", "recovered"),
                   ("dane.own.submissions", "failed"), ("dane.own.submissions", "recovered")], got
    failed = next(r for r in rechecks if r["check"] == "dane.own.submissions" and
                  r["result"] == "failed")
    assert failed["status"] == "fail" and failed["required"] is True
    assert "no TLSA record at _%d._tcp.mail.lab.test" % sp.implicit_port in failed["summary"]
    assert failed["remedy"].startswith("publish, DNSSEC-signed: _%d._tcp.mail.lab.test. IN TLSA "
                                       "3 1 1 " % sp.implicit_port), failed
    assert "remedy" not in next(r for r in rechecks if r["result"] == "recovered")
    assert verify(audit)[0] == 0
    # the report lists them beside the start
    rc, rep = report(audit)
    assert [(c["check"], c["result"]) for c in rep["rechecks"]] == [
        (r["check"], r["result"]) for r in rechecks]
    assert rep["rechecks"][0]["remedy"] and len(rep["starts"]) == 1
    rc, text = report(audit, "text")
    assert re.search(r"recheck \(record \d+\): dane\.own\.submissions failed \(status fail, "
                     r"required\): .*no TLSA record", text), text


def test_recheck_off(lab, make_sink):
    sp = lab.subproxy(make_sink(), extra_config="[audit]\nrecheck = 0\n")
    assert sp.wait_log(r"event=started", timeout=5)
    assert not any("audit-recheck" in ln for ln in sp.lines)
    socket.create_connection(("127.0.0.1", sp.implicit_port), timeout=5).close()
