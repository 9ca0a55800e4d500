"""
runall_plugin.py -- the pytest plugin of tests/run-all.sh (loaded with
`-p runall_plugin`).  It writes to the file named by $RUN_ALL_COUNTS what
pytest collected and the one outcome of each collected test, so that the
runner compares numbers instead of reading pytest's text:

    collected N        tests selected to run (after -m/-k deselection)
    skip NODEID: WHY   one line per skipped test
    passed N
    failed N           a failure or error in any phase (setup, call,
                       teardown); an expected failure (xfail) counts here
                       too: this suite has none
    skipped N
    end                written last: the session finished

A test that reports no outcome (the run stopped early) makes
passed + failed + skipped smaller than collected; the runner fails then.
"""

import os

_outcome = {}       # nodeid -> "passed" | "failed" | "skipped"
_why = {}           # nodeid -> skip reason
_collected = []


def _write(lines):
    path = os.environ.get("RUN_ALL_COUNTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))


def pytest_collection_finish(session):
    _collected[:] = [item.nodeid for item in session.items]
    _write(["collected %d" % len(_collected)])


def pytest_runtest_logreport(report):
    nid = report.nodeid
    if report.failed or hasattr(report, "wasxfail"):
        _outcome[nid] = "failed"
    elif report.skipped:
        if _outcome.get(nid) != "failed":
            _outcome[nid] = "skipped"
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else \
                str(report.longrepr)
            _why[nid] = reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
    elif report.when == "call" and nid not in _outcome:
        _outcome[nid] = "passed"


def pytest_sessionfinish(session, exitstatus):
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    lines = []
    for nid in _collected:
        o = _outcome.get(nid)
        if o is not None:
            counts[o] += 1
        if o == "skipped":
            lines.append("skip %s: %s" % (nid, " ".join(_why[nid].split())))
    lines += ["%s %d" % kv for kv in counts.items()]
    lines.append("end")
    _write(lines)
