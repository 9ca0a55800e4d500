#!/usr/bin/env bash
# The test runner attacked: tests/run-all.sh against suites that are broken
# in the ways a real suite breaks (pytest missing, a conftest that cannot
# load, a session that stops early or exits non-zero after "N passed", a
# crashing unit binary, a fuzz target without seeds...).  Each case must
# make run-all.sh exit non-zero AND say why in its own words (so that a
# case cannot pass for an unrelated reason); one good suite must pass with
# the exact count.  Prints TAP ("1..N", "ok", "not ok"); run by make check
# through run-all.sh --selftest.
set -u
here=$(cd "$(dirname "$0")" && pwd)
runall="$here/../run-all.sh"
bin="$here/bin"
: "${PYTHON:=/usr/bin/python3}"
n=0 bad=0
cases=34
echo "1..$cases"

# expect NAME RC WANT [VAR=VALUE...] -- ARGS...: run run-all.sh with the
# environment and arguments; its status must be RC ("nonzero" for any
# failure) and its output must contain WANT.
expect() {
	local name=$1 want_rc=$2 want=$3 out rc
	local -a envs=()
	shift 3
	while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	out=$(cd "$here/../.." && env PYTHON="$PYTHON" CORPUS="$here/corpus" "${envs[@]}" \
	    timeout 120 "$runall" "$@" 2>&1 </dev/null); rc=$?
	n=$((n + 1))
	if { [ "$want_rc" = nonzero ] && [ "$rc" = 0 ]; } ||
	    { [ "$want_rc" != nonzero ] && [ "$rc" != "$want_rc" ]; } ||
	    ! grep -qF -- "$want" <<<"$out"; then
		echo "not ok $n - $name (status $rc, expected $want_rc and \"$want\")"
		sed 's/^/# /' <<<"$out"
		bad=$((bad + 1))
	else
		echo "ok $n - $name"
	fi
}

s="$here/suites"
expect "a good suite passes with the exact count" 0 $'\n5 passed, 0 failed' SUITE="$s/good" -- \
    --unit "$bin/unit-good" --replay "$bin/replay-good" --integration /bin/false
expect "no stage at all is not a pass" nonzero "0 passed, 0 failed" --
expect "python missing" nonzero "exited with status 127" \
    PYTHON=/nonexistent/python3 SUITE="$s/good" -- --integration /bin/false
expect "pytest missing" nonzero "did not finish its session" \
    PYTHON="$bin/python-no-pytest" SUITE="$s/good" -- --integration /bin/false
expect "a conftest that cannot be imported" nonzero "did not finish its session" \
    SUITE="$s/conftest_import" -- --integration /bin/false
expect "a syntax error in a test module" nonzero "could not collect the tests" \
    SUITE="$s/collect_error" -- --integration /bin/false
expect "non-zero exit after \"2 passed\"" nonzero "exited with status 1 and counted no failure" \
    SUITE="$s/exit_nonzero" -- --integration /bin/false
expect "the session stops early with status 0" nonzero "collected 3 tests but 1 passed" \
    SUITE="$s/stops_early" -- --integration /bin/false
expect "the process ends in the middle with status 0" nonzero "did not finish its session" \
    SUITE="$s/dies" -- --integration /bin/false
expect "no tests" nonzero "ran no tests (status 5)" SUITE="$s/empty" -- --integration /bin/false
expect "a skip without an allowed reason" nonzero "skipped without an allowed reason" \
    SUITE="$s/skip" -- --integration /bin/false
if [ "$(id -u)" = 0 ]; then
	expect "a root-only skip while running as root" nonzero "skipped while running as root" \
	    SUITE="$s/skip_root" -- --integration /bin/false
else
	expect "a root-only skip when not root is allowed" 0 "1 test(s) skipped" \
	    SUITE="$s/skip_root" -- --integration /bin/false
fi
expect "a skip for a requirement the runner knows is allowed" 0 "1 test(s) skipped" \
    SUITE="$s/skip_env" -- --integration /bin/false
expect "a strict xfail that fails as declared is a known bug, not a pass" 0 \
    $'1 known bug(s): strict xfail, failing as declared (see the lines above)\n1 passed, 0 failed' \
    SUITE="$s/xfail" -- --integration /bin/false
expect "a strict xfail that passes" nonzero "passed although marked xfail(strict=True)" \
    SUITE="$s/xpass_strict" -- --integration /bin/false
expect "an xfail that is not strict" nonzero "xfail that is not strict" \
    SUITE="$s/xfail_loose" -- --integration /bin/false
expect "pytest.xfail() in a test" nonzero "pytest.xfail() or run=False (not strict" \
    SUITE="$s/xfail_imperative" -- --integration /bin/false
expect "an xfail in setup (a broken fixture)" nonzero "xfail in setup (a broken fixture" \
    SUITE="$s/xfail_setup" -- --integration /bin/false
expect "-m sanitized selecting nothing" nonzero "ran no tests (status 5)" SUITE="$s/good" -- \
    --sanitized /bin/false
expect "a unit binary that crashes" nonzero "unit-crash killed by signal 11" -- \
    --unit "$bin/unit-good" "$bin/unit-crash"
expect "a unit binary that runs fewer tests than it declares" nonzero \
    "unit-short declared 3 tests: 2 ran" -- --unit "$bin/unit-short"
expect "a unit binary that exits non-zero after passing" nonzero \
    "unit-rc exited with status 3 and reported no failure" -- --unit "$bin/unit-rc"
expect "a fuzz replay that crashes" nonzero "replay-crash: replay of" -- \
    --replay "$bin/replay-crash"
expect "a fuzz replay that skips an input" nonzero "after 1 of 2 inputs" -- \
    --replay "$bin/replay-partial"
expect "a fuzz target without seeds" nonzero "replay-noseeds has no seed corpus" -- \
    --replay "$bin/replay-good" "$bin/replay-noseeds"

# the same runner in parallel (--jobs 2: the stages side by side, pytest in
# two xdist workers): the counts still come from one place, the controller
j=(--jobs 2)
expect "parallel: a good suite passes with the exact count" 0 $'\n5 passed, 0 failed' \
    SUITE="$s/good" -- "${j[@]}" --unit "$bin/unit-good" --replay "$bin/replay-good" \
    --integration /bin/false
expect "parallel: a worker that dies in a test" nonzero "its xdist worker died" \
    SUITE="$s/dies" -- "${j[@]}" --integration /bin/false
expect "parallel: a worker that stops the session early" nonzero "collected 3 tests but" \
    SUITE="$s/stops_early" -- "${j[@]}" --integration /bin/false
expect "parallel: a syntax error in a test module" nonzero "test_broken.py: could not be collected" \
    SUITE="$s/collect_error" -- "${j[@]}" --integration /bin/false
expect "parallel: an xfail in setup, judged in the worker" nonzero "xfail in setup (a broken fixture" \
    SUITE="$s/xfail_setup" -- "${j[@]}" --integration /bin/false
expect "parallel: a skip for a requirement the runner knows is counted" 0 "1 test(s) skipped" \
    SUITE="$s/skip_env" -- "${j[@]}" --integration /bin/false
expect "parallel: pytest-xdist missing" nonzero "exited with status 4" \
    SUITE="$s/good" PYTEST_ARGS="-p no:xdist" -- "${j[@]}" --integration /bin/false
expect "parallel: a unit binary that crashes beside the other stages" nonzero \
    "unit-crash killed by signal 11" -- "${j[@]}" --unit "$bin/unit-good" "$bin/unit-crash" \
    --replay "$bin/replay-good"
expect "--jobs without a number" nonzero "--jobs needs a number of processes" \
    SUITE="$s/good" -- --jobs x --integration /bin/false

[ "$n" = "$cases" ] || { echo "# ran $n cases, planned $cases"; exit 1; }
[ "$bad" = 0 ]
