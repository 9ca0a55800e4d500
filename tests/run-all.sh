#!/usr/bin/env bash
# Runs the test stages named on the command line and prints one summary
# line at the end: "N passed, N failed".  Exit status 0 only when every
# stage ran completely, nothing failed and something passed.
#
#   run-all.sh [--unit BIN...] [--replay BIN...] [--selftest] [--jobs N]
#              [--integration SUBPROXY] [--sanitized SUBPROXY]
#
#   --unit BIN...      cmocka binaries: each must exit 0 and report as many
#                      tests (passed + failed + allowed skips) as it
#                      declared ("Running N test(s)"); a crash, a non-zero
#                      exit or a short run is a failure.
#   --replay BIN...    fuzz corpus replay drivers (tests/fuzz/replay.c):
#                      BIN replays $CORPUS/$(basename BIN); it must exit 0
#                      and report every file of that non-empty directory.
#                      One test per fuzz target.
#   --selftest         tests/selftest/run.sh (TAP): this runner attacked
#                      with broken suites.
#   --integration SP   pytest on $SUITE (tests/integration) against the
#                      daemon binary SP.
#   --sanitized SP     the same, tests marked `sanitized` only, against the
#                      ASan/UBSan daemon SP.
#   --jobs N           N > 1: the stages named after it run side by side
#                      (each one's output shown whole, in command-line
#                      order), and each pytest stage in N processes
#                      (pytest-xdist: -n N --dist loadgroup).  1 (the
#                      default): one stage after the other, pytest in one
#                      process.  Every stage is judged the same way.
#
# pytest is judged by its exit status (any non-zero status fails: 1 tests
# failed, 2 interrupted or collection errors, 3 internal error, 4 usage
# error, 5 no tests ran) and by the counts that tests/runall_plugin.py
# writes: every collected test must report exactly one outcome, a module
# that could not be collected fails, and in parallel a test whose worker
# died fails.
#
# Skips: a pytest skip is allowed only when its reason names a requirement
# this runner knows ("needs root: ...", "needs systemd as PID 1: ...",
# "needs systemd-run: ...", "needs IPv6 loopback: ...", "needs a tmpfs
# mount: ...": add one here deliberately), and "needs root:" only when not
# running as root; cmocka's skip() only when not root (it is used in
# root-only tests).  Any other skip is a failure.  Allowed skips are
# listed and counted before the summary.
#
# Expected failures: a test marked xfail(strict=True) with a reason that
# fails in its call is a known bug: neither passed nor failed, listed and
# counted before the summary.  When it passes, pytest fails it (the marker
# must go).  Any other xfail (not strict, pytest.xfail(), in setup or
# teardown) is a failure (runall_plugin.py says which).
#
# Environment: PYTHON (/usr/bin/python3), SUITE (tests/integration),
# CORPUS (tests/fuzz/corpus), PYTEST_ARGS (extra pytest arguments).
set -u
: "${PYTHON:=/usr/bin/python3}" "${SUITE:=tests/integration}" "${CORPUS:=tests/fuzz/corpus}"
here=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0 skipped=0 xfailed=0 jobs=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=$tmp/log counts=$tmp/counts
root=0; [ "$(id -u)" = 0 ] && root=1

problem() {     # a stage did not run as it must: counts as one failure
	echo "run-all: FAIL: $*"
	failed=$((failed + 1))
}

# sum of the numbers captured by sed expression $1 over lines of $log
sum() {
	sed -n "$1" "$log" | awk '{ s += $1 } END { print s + 0 }'
}

run_unit() {
	local t=$1 name rc declared ran p f s why=""
	name=$(basename "$t")
	echo "== unit: $name"
	"$t" >"$log" 2>&1; rc=$?
	declared=$(sum 's/^\[==========\] Running \([0-9][0-9]*\) test.*/\1/p')
	ran=$(sum 's/^\[==========\] \([0-9][0-9]*\) test(s) run\..*/\1/p')
	p=$(sum 's/^\[  PASSED  \] \([0-9][0-9]*\) test.*/\1/p')
	f=$(sum 's/^\[  FAILED  \] \([0-9][0-9]*\) test.*/\1/p')
	s=$(sum 's/^\[  SKIPPED \] \([0-9][0-9]*\) test.*/\1/p')
	if [ "$rc" -gt 128 ]; then
		why="killed by signal $((rc - 128))"
	elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		why="exited with status $rc and reported no failure"
	elif [ "$declared" = 0 ]; then
		why="declared no tests"
	elif [ "$ran" != "$declared" ] || [ $((p + f + s)) != "$declared" ]; then
		why="declared $declared tests: $ran ran, $p passed, $f failed, $s skipped"
	elif [ "$s" != 0 ] && [ $root = 1 ]; then
		why="skipped $s test(s) while running as root"
	fi
	if [ "$f" != 0 ] || [ -n "$why" ]; then
		cat "$log"
	else
		grep -E '^\[  (PASSED  |SKIPPED )\] [0-9]' "$log"
	fi
	passed=$((passed + p)); failed=$((failed + f))
	if [ -n "$why" ]; then
		echo "run-all: FAIL: $name $why"
		[ "$f" = 0 ] && failed=$((failed + 1))
	elif [ "$s" != 0 ]; then
		skipped=$((skipped + s))
	fi
}

run_replay() {
	local t=$1 name dir files rc n
	name=$(basename "$t")
	dir="$CORPUS/$name"
	echo "== fuzz corpus: $name"
	files=$(find "$dir" -type f 2>/dev/null | wc -l)
	if [ "$files" = 0 ]; then
		problem "$name has no seed corpus in $dir (every fuzz target needs seeds)"
		return
	fi
	"$t" "$dir" >"$log" 2>&1; rc=$?
	n=$(sed -n 's/^replayed \([0-9][0-9]*\) inputs*$/\1/p' "$log" | tail -n1)
	if [ "$rc" = 0 ] && [ "$n" = "$files" ]; then
		tail -n1 "$log"
		passed=$((passed + 1))
	else
		cat "$log"
		problem "$name: replay of $dir exited with status $rc after ${n:-no} of $files inputs"
	fi
}

run_selftest() {
	local rc plan ok notok
	echo "== selftest (tests/selftest: the runner against broken suites)"
	"$here/selftest/run.sh" >"$log" 2>&1; rc=$?
	plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' "$log" | tail -n1)
	ok=$(grep -c '^ok ' "$log")
	notok=$(grep -c '^not ok ' "$log")
	if [ "$notok" != 0 ] || [ "$rc" != 0 ]; then cat "$log"; else grep -E '^(ok|1\.\.)' "$log"; fi
	passed=$((passed + ok)); failed=$((failed + notok))
	if [ -z "$plan" ] || [ $((ok + notok)) != "$plan" ]; then
		problem "selftest planned ${plan:-no} tests, reported $((ok + notok))"
	elif [ "$rc" != 0 ] && [ "$notok" = 0 ]; then
		problem "selftest exited with status $rc"
	fi
}

# run_pytest LABEL SUBPROXY [pytest arguments...]
run_pytest() {
	local label="pytest ($1)" sp=$2 rc c p f s x par=()
	shift 2
	case $sp in /*) ;; *) sp="$PWD/$sp" ;; esac    # the daemons run in their own directory
	[ "$jobs" -gt 1 ] && par=(-n "$jobs" --dist loadgroup) && label="$label, $jobs processes"
	echo "== $label: $SUITE against $sp"
	: >"$counts"
	# shellcheck disable=SC2086
	RUN_ALL_COUNTS="$counts" SUBPROXY="$sp" PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" \
	    "$PYTHON" -m pytest -q -p no:cacheprovider -p runall_plugin "${par[@]}" "$@" \
	    ${PYTEST_ARGS:-} "$SUITE" >"$log" 2>&1; rc=$?
	cat "$log"
	c=$(sed -n 's/^collected //p' "$counts")
	p=$(sed -n 's/^passed //p' "$counts")
	f=$(sed -n 's/^failed //p' "$counts")
	s=$(sed -n 's/^skipped //p' "$counts")
	x=$(sed -n 's/^xfailed //p' "$counts")
	passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
	case $rc in
	0) ;;
	1) [ "${f:-0}" = 0 ] && problem "$label exited with status 1 and counted no failure" ;;
	2) problem "$label was interrupted or could not collect the tests (status 2)" ;;
	5) problem "$label ran no tests (status 5)" ;;
	*) problem "$label exited with status $rc" ;;
	esac
	if ! grep -qx 'end' "$counts"; then
		problem "$label did not finish its session (no counts from runall_plugin)"
		return
	fi
	if [ "${c:-0}" = 0 ]; then
		problem "$label collected no tests"
	elif [ $((p + f + s + x)) != "$c" ]; then
		problem "$label collected $c tests but $p passed, $f failed, $s skipped, $x xfailed"
	fi
	# one line each: "skip NODEID: REASON", "xfail NODEID: REASON" (a
	# strict expected failure), "fail NODEID: WHY" (counted in f already)
	while IFS= read -r line; do
		case $line in
		"xfail "*)
			echo "run-all: expected failure (strict xfail): ${line#xfail }"
			xfailed=$((xfailed + 1))
			continue ;;
		"fail "*) echo "run-all: FAIL: ${line#fail }"; continue ;;
		"error "*) problem "${line#error }"; continue ;;
		"skip "*) line=${line#skip } ;;
		*) continue ;;
		esac
		case $line in
		*": needs root:"*)
			if [ $root = 1 ]; then
				problem "skipped while running as root: $line"
			else
				echo "run-all: allowed skip: $line"
				skipped=$((skipped + 1))
			fi ;;
		*": needs systemd as PID 1:"*|*": needs systemd-run:"*|*": needs IPv6 loopback:"*|\
		*": needs a tmpfs mount:"*)
			echo "run-all: allowed skip: $line"
			skipped=$((skipped + 1)) ;;
		*) problem "skipped without an allowed reason (\"needs root: ...\" etc.): $line" ;;
		esac
	done <"$counts"
}

# stage FUNCTION ARGS...: run a stage.  After --jobs N (N > 1) it starts
# in the background instead, with counters of its own, its output to a
# file; finish() shows the stages in command-line order and adds up
# their counts.  A stage that ends without writing its counts fails.
stage() {
	if [ "$jobs" = 1 ]; then
		"$@"
		return
	fi
	local n=${#bg[@]}
	# shellcheck disable=SC2030,SC2031  # the stage's own counters, sent back in a file
	(
		passed=0 failed=0 skipped=0 xfailed=0
		log=$tmp/$n.log counts=$tmp/$n.counts
		start=$SECONDS
		"$@"
		echo "run-all: ($((SECONDS - start)) s, side by side with the other stages)"
		echo "$passed $failed $skipped $xfailed" >"$tmp/$n.result"
	) >"$tmp/$n.out" 2>&1 </dev/null &
	bg+=("$!")
}

finish() {
	local n p f s x
	# shellcheck disable=SC2031
	for n in "${!bg[@]}"; do
		wait "${bg[n]}"
		cat "$tmp/$n.out"
		if read -r p f s x <"$tmp/$n.result" 2>/dev/null; then
			passed=$((passed + p)) failed=$((failed + f))
			skipped=$((skipped + s)) xfailed=$((xfailed + x))
		else
			problem "a stage run side by side ended without its counts"
		fi
	done
}

run_units() { local t; for t; do run_unit "$t"; done; }
run_replays() { local t; for t; do run_replay "$t"; done; }

bg=()
while [ $# -gt 0 ]; do
	case $1 in
	--unit|--replay)
		opt=$1 bins=()
		while [ $# -ge 2 ] && [ "${2#-}" = "$2" ]; do bins+=("$2"); shift; done
		if [ "${#bins[@]}" != 0 ]; then
			stage "run_${opt#--}s" "${bins[@]}"
		fi ;;
	--selftest) stage run_selftest ;;
	--jobs)
		case ${2:-} in
		[1-9]|[1-9][0-9]) jobs=$2; shift ;;
		*) problem "--jobs needs a number of processes (1-99), not '${2:-}'"; break ;;
		esac ;;
	--integration)
		[ $# -ge 2 ] || { problem "--integration needs the daemon binary"; break; }
		stage run_pytest integration "$2"; shift ;;
	--sanitized)
		[ $# -ge 2 ] || { problem "--sanitized needs the daemon binary"; break; }
		stage run_pytest sanitized "$2" -m sanitized; shift ;;
	-*) problem "unknown option $1" ;;
	*) problem "$1: not after --unit or --replay" ;;
	esac
	shift
done
finish

[ "$skipped" != 0 ] && echo "run-all: $skipped test(s) skipped (allowed: see the lines above)"
[ "$xfailed" != 0 ] &&
    echo "run-all: $xfailed known bug(s): strict xfail, failing as declared (see the lines above)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
