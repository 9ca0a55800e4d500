"""
runall_plugin.py -- the pytest plugin of tests/run-all.sh (loaded with
`-p runall_plugin`).  It writes to the file named by $RUN_ALL_COUNTS what
pytest collected and the one outcome of each collected test, so that the
runner compares numbers instead of reading pytest's text:

    collected N        tests selected to run (after -m/-k deselection)
    skip NODEID: WHY   one line per skipped test
    xfail NODEID: WHY  one line per strict expected failure (below)
    fail NODEID: WHY   a failure the runner explains itself (an xfail the
                       runner does not accept, a test whose xdist worker
                       died); other failures pytest shows
    error NODEID: WHY  a module or package that could not be collected
    passed N
    failed N           a failure or error in any phase (setup, call,
                       teardown)
    skipped N
    xfailed N
    end                written last: the session finished

Expected failures (xfail).  A test marked xfail that fails in its call,
with strict=True (tests/integration/pytest.ini sets xfail_strict, so a
plain xfail marker is strict) and a reason, is a known bug the suite
documents: it counts as "xfailed", neither passed nor failed, and the
runner lists it.  When it passes (XPASS), pytest itself fails it: the bug
is fixed and the marker must go.  Every other xfail counts as failed: a
non-strict one (strict=False, or pytest.xfail() called in a test, or
run=False) passes whether the bug is there or not, and an xfail in setup
or teardown hides a broken fixture, not the bug it names.

A test that reports no outcome (the run stopped early) makes
passed + failed + skipped + xfailed smaller than collected; the runner
fails then.

In parallel (pytest-xdist, `-n N`) the controller writes the file alone:
it collects nothing itself, so "collected" is the list the first worker
reports (xdist refuses to run when the workers' lists differ), and every
report of every worker reaches it through pytest_runtest_logreport,
with the xfail judgement the worker made (runall_xfail travels with the
report).  A worker that dies is reported by xdist as a failure of the
test it was running (a "fail" line says so; xdist starts another worker
for the tests left); a worker that stops early leaves its tests without
an outcome.  A collection error does not stop an xdist session (status
1, not 2): the "error" line makes it a failure of its own.  The workers
write nothing.
"""

import os

import pytest

_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "failed": 3}
_outcome = {}       # nodeid -> one of _RANK
_why = {}           # nodeid -> (kind, reason) for the skip/xfail/fail lines
_collected = []
_worker = []        # [True] in an xdist worker (its controller writes)
_collector = []     # the controller: [the worker whose list counts]
_crashed = {}       # nodeid -> xdist's sentence about the worker that died
_uncollectable = [] # "NODEID: WHY" of each collection error


def _write(lines):
    path = os.environ.get("RUN_ALL_COUNTS")
    if path and not _worker:
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))


def _set(nid, outcome, kind=None, why=None):
    if _RANK[outcome] >= _RANK[_outcome.get(nid, "passed")]:
        _outcome[nid] = outcome
        if kind is not None:
            _why[nid] = (kind, " ".join(why.split()))


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        _worker.append(True)


def pytest_collection_finish(session):
    _collected[:] = [item.nodeid for item in session.items]
    _write(["collected %d" % len(_collected)])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """The controller (which collects nothing): what a worker collected."""
    if not _collector:
        _collector.append(node)
        _collected[:] = ids
        _write(["collected %d" % len(_collected)])


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem, report, sched):
    """The controller: the worker running crashitem died."""
    _crashed[crashitem] = str(report.longrepr)


def pytest_collectreport(report):
    if report.failed:
        why = str(report.longrepr).strip().splitlines()
        _uncollectable.append("%s: could not be collected (%s)" % (
            report.nodeid or "the session", why[-1] if why else "no reason given"))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Outside pytest's own xfail handling: judge the xfail it reported."""
    rep = (yield).get_result()
    if call.excinfo is not None and call.excinfo.errisinstance(pytest.xfail.Exception):
        rep.runall_xfail = "pytest.xfail() or run=False (not strict: it cannot fail)"
    elif hasattr(rep, "wasxfail"):
        mark = item.get_closest_marker("xfail")
        strict = mark is not None and mark.kwargs.get("strict", item.config.getini("xfail_strict"))
        if not strict:
            rep.runall_xfail = "xfail that is not strict (it passes whether the bug is there or not)"
        elif rep.when != "call":
            rep.runall_xfail = "xfail in %s (a broken fixture, not the bug the marker names)" % \
                rep.when
        elif not rep.wasxfail.strip():
            rep.runall_xfail = "strict xfail without a reason"
        else:
            rep.runall_xfail = None     # accepted: the known bug
    elif rep.failed and str(rep.longrepr).startswith("[XPASS(strict)]"):
        rep.runall_xfail = "passed although marked xfail(strict=True): the bug is fixed, " \
            "remove the marker"


def pytest_runtest_logreport(report):
    nid = report.nodeid
    judged = getattr(report, "runall_xfail", None)
    if hasattr(report, "wasxfail"):
        if judged is None:
            _set(nid, "xfailed", "xfail", report.wasxfail)
        else:
            _set(nid, "failed", "fail", "%s: %s" % (judged, report.wasxfail))
    elif report.failed:
        if nid in _crashed:
            _set(nid, "failed", "fail", "its xdist worker died: %s" % _crashed[nid])
        elif judged is not None:
            _set(nid, "failed", "fail", "%s (%s)" % (judged, str(report.longrepr)[16:]))
        else:
            _set(nid, "failed")
    elif report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else \
            str(report.longrepr)
        _set(nid, "skipped", "skip",
             reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason)
    elif report.when == "call":
        _set(nid, "passed")


def pytest_sessionfinish(session, exitstatus):
    counts = dict.fromkeys(_RANK, 0)
    lines = []
    for nid in _collected:
        o = _outcome.get(nid)
        if o is not None:
            counts[o] += 1
        if nid in _why and (o, _why[nid][0]) in (("skipped", "skip"), ("xfailed", "xfail"),
                                                  ("failed", "fail")):
            lines.append("%s %s: %s" % (_why[nid][0], nid, _why[nid][1]))
    lines += ["error %s" % e for e in _uncollectable]
    lines += ["%s %d" % kv for kv in counts.items()]
    lines.append("end")
    _write(lines)
