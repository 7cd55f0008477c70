#!/usr/bin/env bash
# Runs bench/supervisor_bench.exs: HordeC.DynamicSupervisor side by side with Elixir's DynamicSupervisor
# (local), in one run, on 3 hordec nodes and 3 BEAM nodes on loopback (plus a fourth BEAM node per failover
# figure, killed with kill -9). Prints a table of figures, each with its baseline from the same run, the
# ratio and the target; no pass/fail (the exit status says only whether the run completed).
#
#   bench/run_supervisor_bench.sh              # builds build/hordec and the Elixir client first
#   HORDEC_BIN=/path/to/hordec MIX_BUILD_PATH=/tmp/mix bench/run_supervisor_bench.sh
#   BENCH_QUICK=1 bench/run_supervisor_bench.sh    # smaller figures, a smoke run
#   BENCH_ROUNDS=N                                 # rounds of the start_child/s figures (default 3)
#   BENCH_CALLERS=W                                # concurrent callers per BEAM node (default 8)
#   BENCH_ERL_FLAGS="+sbwt none"                   # extra emulator flags for every BEAM node
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HORDEC_BIN=${HORDEC_BIN:-$ROOT/build/hordec}
COOKIE=${BENCH_COOKIE:-hordec_supervisor_bench}
TAG="$$"
export BENCH_TAG=$TAG
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hordec_supbench.XXXXXX")
HPIDS=()

cleanup() {
  for p in "${HPIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${HPIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$HORDEC_BIN" = "$ROOT/build/hordec" ]; then
  bash "$ROOT/scripts/deps.sh"
  bash "$ROOT/scripts/build.sh" --target hordec >/dev/null   # never benchmark a stale binary
fi

# The BEAM nodes load horde_c from its compiled ebin (the peers get the runner's code path).
(cd "$ROOT/elixir_client" && mix compile >/dev/null)
MIX_BUILD=${MIX_BUILD_PATH:-$ROOT/elixir_client/_build/${MIX_ENV:-dev}}
EBIN="$MIX_BUILD/lib/horde_c/ebin"
[ -f "$EBIN/horde_c.app" ] || { echo "no compiled horde_c in $EBIN" >&2; exit 1; }

epmd -daemon

NODES=()
for i in 1 2 3; do
  node="sbh${i}${TAG}@127.0.0.1"
  "$HORDEC_BIN" --name "$node" --cookie "$COOKIE" --log-level warn >"$WORK/h$i.out" 2>"$WORK/h$i.err" &
  HPIDS+=($!)
  NODES+=("$node")
done
for i in 1 2 3; do
  pid=${HPIDS[$((i - 1))]}
  for _ in $(seq 1 100); do
    grep -q '^hordec ready ' "$WORK/h$i.out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "hordec $i exited early:" >&2; cat "$WORK/h$i.err" >&2; exit 1; }
    sleep 0.1
  done
  grep -q '^hordec ready ' "$WORK/h$i.out" || { echo "hordec $i not ready after 10 s" >&2; exit 1; }
done

export BENCH_ERL_FLAGS=${BENCH_ERL_FLAGS:-}
export HORDEC_BIN   # the script starts the hordec nodes it kills itself
elixir --name "sba${TAG}@127.0.0.1" --cookie "$COOKIE" --erl "$BENCH_ERL_FLAGS" -pa "$EBIN" \
  "$ROOT/bench/supervisor_bench.exs" "${NODES[@]}"

# hordec's own log, less the redials of BEAM nodes that have just exited (the failover victims)
for i in 1 2 3; do
  if grep -qv 'cannot connect to sb' "$WORK/h$i.err"; then
    echo; echo "hordec $i stderr:"; grep -v 'cannot connect to sb' "$WORK/h$i.err" | tail -n 20
  fi
done
