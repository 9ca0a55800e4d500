#!/usr/bin/env bash
# Runs the unit test binaries given as arguments (cmocka) and the pytest
# integration suite, then prints one summary line: "N passed, N failed".
# Exit status is non-zero when anything failed or nothing ran.
set -u
: "${BUILD:=build}" "${PYTHON:=/usr/bin/python3}"
passed=0 failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if [ -z "${SKIP_UNIT:-}" ]; then
  for t in "$@"; do
    echo "== unit: $(basename "$t")"
    "$t" >"$log" 2>&1; rc=$?
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
    : "${p:=0}" "${f:=0}"
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi   # crashed before reporting
    if [ "$f" != 0 ]; then cat "$log"; else grep -E '^\[  (FAILED|PASSED)' "$log" | tail -n1; fi
    passed=$((passed + p)); failed=$((failed + f))
  done
fi

if [ -z "${SKIP_INTEGRATION:-}" ]; then
  echo "== integration (pytest)"
  SUBPROXY="$(pwd)/$BUILD/subproxy" "$PYTHON" -m pytest -q -p no:cacheprovider \
      ${PYTEST_ARGS:-} tests/integration >"$log" 2>&1
  cat "$log"
  last=$(grep -E '(passed|failed|error|no tests ran)' "$log" | tail -n1)
  p=$(echo "$last" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+'); : "${p:=0}"
  f=$(echo "$last" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s+=$1} END {print s+0}')
  passed=$((passed + p)); failed=$((failed + f))
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
