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
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_setup sb

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
