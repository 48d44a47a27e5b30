#!/usr/bin/env bash
# npm run test:localstack [-- vitest arguments, e.g. a test file]
# Installs LocalStack (host mode, no Docker) if needed, starts it on 127.0.0.1, runs the integration
# and end-to-end suites against it (vitest.localstack.config.ts), prints the lane's time and stops
# LocalStack, also when the tests fail or the run is interrupted. See localstack/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
HOST=localstack/host.sh
OUT=.sluice/localstack/vitest.out
lane_start=$SECONDS
t_install=0 t_start=0 t_tests=0 started=0 vitest_pid="" tail_pid=""

finish() {
  local rc=$? t_stop=$SECONDS
  trap - EXIT INT TERM
  [ -z "$vitest_pid" ] || t_tests=$((SECONDS - t)) # interrupted while the tests ran
  if [ -n "$vitest_pid" ]; then kill -TERM "$vitest_pid" 2>/dev/null || true; wait "$vitest_pid" 2>/dev/null || true; fi
  [ -z "$tail_pid" ] || kill "$tail_pid" 2>/dev/null || true
  [ "$started" = 0 ] || bash "$HOST" stop || true
  t_stop=$((SECONDS - t_stop))
  echo
  echo "LocalStack lane: $((SECONDS - lane_start)) s (install ${t_install} s, start ${t_start} s, tests ${t_tests} s, stop ${t_stop} s), exit $rc"
  # The counts again as the last line: a closing line "N passed, N failed" that names the lane.
  local summary; summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$OUT" 2>/dev/null | tail -1 || true)"
  [ -z "$summary" ] || echo "localstack: $summary"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t=$SECONDS; bash "$HOST" install; t_install=$((SECONDS - t))
t=$SECONDS; started=1; endpoint="$(bash "$HOST" start)"; t_start=$((SECONDS - t))
export AWS_ENDPOINT_URL="$endpoint"
rm -f "$OUT"
t=$SECONDS
# In the background, so that a SIGTERM to this script is handled at once (bash runs a trap only
# after a foreground command ends); the output is shown as it is written and kept for the summary.
node_modules/.bin/vitest run --config vitest.localstack.config.ts "$@" >"$OUT" 2>&1 &
vitest_pid=$!
tail -n +1 -f --pid="$vitest_pid" "$OUT" &
tail_pid=$!
wait "$vitest_pid" && rc=0 || rc=$?
vitest_pid=""
t_tests=$((SECONDS - t))
wait "$tail_pid" || true # it prints the rest and ends within a second of vitest
tail_pid=""
exit "$rc"
