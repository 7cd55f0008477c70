#!/usr/bin/env bash
# Runs bench/dist_bench.exs against a fresh hordec: BEAM->hordec vs BEAM->BEAM calls and
# one-way sends, in the same run. Prints a table; no pass/fail.
#
#   bench/run_dist_bench.sh            # builds build/hordec first if it is missing
#   HORDEC_BIN=/path/to/hordec BENCH_CALLS=50000 BENCH_SENDS=500000 bench/run_dist_bench.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HORDEC_BIN=${HORDEC_BIN:-$ROOT/build/hordec}
COOKIE=${BENCH_COOKIE:-hordec_bench_cookie}
TAG="$$_$RANDOM"
HNODE="bench_h_${TAG}@127.0.0.1"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hordec_bench.XXXXXX")
HPID=""

cleanup() {
  if [ -n "$HPID" ] && kill -0 "$HPID" 2>/dev/null; then
    kill -TERM "$HPID" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$HPID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$HPID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$HORDEC_BIN" = "$ROOT/build/hordec" ]; then
  bash "$ROOT/scripts/deps.sh"
  bash "$ROOT/scripts/build.sh" --target hordec >/dev/null   # never benchmark a stale binary
fi

epmd -daemon

"$HORDEC_BIN" --name "$HNODE" --cookie "$COOKIE" --log-level warn >"$WORK/stdout" 2>"$WORK/stderr" &
HPID=$!
for _ in $(seq 1 100); do
  grep -q '^hordec ready ' "$WORK/stdout" 2>/dev/null && break
  kill -0 "$HPID" 2>/dev/null || { echo "hordec exited early:" >&2; cat "$WORK/stderr" >&2; exit 1; }
  sleep 0.1
done
grep -q '^hordec ready ' "$WORK/stdout" || { echo "hordec not ready after 10 s" >&2; cat "$WORK/stderr" >&2; exit 1; }
echo "$(cat "$WORK/stdout")" >&2

# The script starts the BEAM echo-server peer itself (OTP :peer), so it dies with the script.
elixir --name "bench_runner_${TAG}@127.0.0.1" --cookie "$COOKIE" "$ROOT/bench/dist_bench.exs" "$HNODE"

if [ -s "$WORK/stderr" ]; then
  echo; echo "hordec stderr:"; tail -n 20 "$WORK/stderr"
fi
