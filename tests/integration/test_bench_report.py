"""The bench's verdict on issue 14's targets (tests/bench/bench.py targets()).

The report is what operators and the issue's closing notes quote, so its
verdict logic is tested like code: a failed warm session fails its line, a
failed cold session (every session there a new Argon2id login) is
reported on a line of its own that is never counted as met or unmet, and a
missing cell gives no line at all rather than a vacuous "yes".
"""

import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench", os.path.join(REPO, "tests", "bench", "bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cell(auth, conc, k, ok, failed, msg_per_s=500.0, p99=50.0, tls="full"):
    return {"auth": auth, "tls": tls, "concurrency": conc, "per_session": k,
            "sessions_ok": ok, "sessions_failed": failed, "msg_per_s": msg_per_s,
            "session_ms": {"p50": p99 / 2, "p99": p99}}


def lines(bench, matrix, storm=None, idle=()):
    return {t: (m, ok) for t, m, ok in bench.targets(matrix, storm, list(idle))}


def test_failed_cold_session_is_not_a_failed_warm_one(bench):
    rows = lines(bench, [cell("warm", 1000, 1, 3000, 0), cell("cold", 1000, 1, 900, 100)])
    assert rows["no failed session at 1000 concurrent (warm cache)"] == ("0 of 3000 failed", True)
    cold = [(m, ok) for t, (m, ok) in rows.items() if t.startswith("(not a target) cold cells at 1000")]
    assert cold == [("100 of 1000 failed (see 'Failures over the matrix')", None)]


def test_failed_warm_session_fails_the_line(bench):
    rows = lines(bench, [cell("warm", 100, 1, 299, 1), cell("warm", 100, 10, 300, 0),
                         cell("cold", 100, 1, 300, 0)])
    assert rows["no failed session at 100 concurrent (warm cache)"] == ("1 of 600 failed", False)


def test_throughput_and_p99_lines(bench):
    rows = lines(bench, [cell("warm", 100, 1, 300, 0, msg_per_s=1250, p99=99),
                         cell("warm", 100, 10, 300, 0, msg_per_s=1999)])
    assert rows["≥ 1,200 msg/s, 100 one-message sessions, warm, full TLS"][1] is True
    assert rows["p99 session ≤ 100 ms there"][1] is True
    assert rows["≥ 2,000 msg/s, 100 sessions of 10 messages, warm, full TLS"][1] is False


def test_no_cell_no_line(bench):
    assert lines(bench, [cell("cold", 100, 1, 10, 0)]).keys() == {
        "(not a target) cold cells at 100 concurrent: every session a new Argon2id login"}
    assert lines(bench, []) == {}


def test_table_marks_lines_that_are_no_target(bench):
    assert bench.target_line("t", "m", None) == "| t | m | - |"
    assert bench.target_line("t", "m", True) == "| t | m | yes |"
    assert bench.target_line("t", "m", False) == "| t | m | no |"
