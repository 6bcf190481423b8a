#!/usr/bin/env bash
# Runs every suite: Zig, pytest, the TS tests under Bun, the same files under Deno (the pool tests
# twice: over the fast lane, then over gRPC), then checks
# that nothing was left behind. Ends with one line "N passed, N failed" summing all of them and
# exits non-zero if anything failed. Called by `make test` (after set-up) and so by .ci/run.
set -uo pipefail
cd "$(dirname "$0")/.."

results=test-results
rm -rf "$results" && mkdir -p "$results"
export DENO_NO_UPDATE_CHECK=1 PYTHONDONTWRITEBYTECODE=1
PY=.venv/bin/python
total_passed=0 total_failed=0 total_skipped=0
summary=()

record() { # name passed failed skipped
  total_passed=$((total_passed + $2)) total_failed=$((total_failed + $3)) total_skipped=$((total_skipped + $4))
  summary+=("$(printf '%-22s %4d passed, %d failed, %d skipped' "$1" "$2" "$3" "$4")")
}

run_junit_suite() { # name report timeout command...
  local name=$1 report=$2 limit=$3
  shift 3
  echo "==> $name"
  timeout --kill-after=10 "$limit" "$@"
  local status=$?
  read -r passed failed skipped < <($PY scripts/count_junit.py "$report")
  # A runner that failed without reporting a failed case (crash, time-out) still fails the run.
  if ((status != 0 && failed == 0)); then failed=1; echo "!! $name exited with status $status"; fi
  record "$name" "$passed" "$failed" "$skipped"
}

# Zig unit tests: parse the build summary ("N/M tests passed", "N failed").
echo "==> zig build test"
zig_log=$results/zig.log
timeout 600 $PY -m ziglang build test --summary all 2>&1 | tee "$zig_log"
zig_status=${PIPESTATUS[0]}
zig_passed=$(grep -oE '[0-9]+ passed' "$zig_log" | head -n1 | grep -oE '[0-9]+' || echo 0)
zig_failed=$(grep -oE '[0-9]+ failed' "$zig_log" | head -n1 | grep -oE '[0-9]+' || echo 0)
((zig_status != 0 && zig_failed == 0)) && zig_failed=1
record "zig" "${zig_passed:-0}" "${zig_failed:-0}" 0

run_junit_suite "python (pytest)" "$results/pytest.xml" 900 \
  $PY -m pytest python/tests -q -p no:cacheprovider --junitxml="$results/pytest.xml"

run_junit_suite "typescript (bun)" "$results/bun.xml" 1200 \
  node_modules/.bin/bun test --timeout 60000 --reporter=junit --reporter-outfile="$results/bun.xml" tests/

run_junit_suite "typescript (deno)" "$results/deno.xml" 1200 \
  node_modules/.bin/deno test -A --junit-path="$results/deno.xml" tests/

# The same pool tests again over the other transport: the default run above takes the fast lane,
# this one forces gRPC through $SNAKEPIT_TRANSPORT (both transports carry the same semantics).
mapfile -t pool_tests < <(grep -l "Pool.start" tests/*.test.ts | grep -v fast_lane)
SNAKEPIT_TRANSPORT=grpc run_junit_suite "ts over grpc (bun)" "$results/bun-grpc.xml" 1200 \
  node_modules/.bin/bun test --timeout 60000 --reporter=junit --reporter-outfile="$results/bun-grpc.xml" "${pool_tests[@]}"

SNAKEPIT_TRANSPORT=grpc run_junit_suite "ts over grpc (deno)" "$results/deno-grpc.xml" 1200 \
  node_modules/.bin/deno test -A --junit-path="$results/deno-grpc.xml" "${pool_tests[@]}"

# Hygiene: no worker process, socket directory or shared-memory region of ours may remain.
echo "==> leftovers check"
sleep 0.5
strays=$(ps -eo pid=,args= | grep -E 'snakepit_bridge\.worker' | grep -v grep || true)
regions=$(ls /dev/shm 2>/dev/null | grep -E '^snakepit-' || true)
sockets=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'snakepit-*' -newer Makefile 2>/dev/null || true)
if [[ -z $strays && -z $regions && -z $sockets ]]; then
  record "leftovers" 1 0 0
else
  echo "!! left behind:"; printf '%s\n' "$strays" "$regions" "$sockets" | sed '/^$/d; s/^/   /'
  record "leftovers" 0 1 0
fi

echo
printf '%s\n' "${summary[@]}"
echo "$total_passed passed, $total_failed failed, $total_skipped skipped"
((total_failed == 0))
