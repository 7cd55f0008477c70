#!/usr/bin/env bash
# Runs bench/registry_bench.exs: HordeC.Registry side by side with Elixir's Registry, :global and :pg,
# in one run, on 3 hordec nodes and 3 BEAM nodes on loopback. Prints a table of figures, each with its
# baseline from the same run, the ratio and the target; no pass/fail (the exit status says only whether
# the run completed).
#
#   bench/run_registry_bench.sh              # builds build/hordec and the Elixir client first
#   HORDEC_BIN=/path/to/hordec MIX_BUILD_PATH=/tmp/mix bench/run_registry_bench.sh
#   BENCH_QUICK=1 bench/run_registry_bench.sh    # smaller figures, a smoke run
#   BENCH_ROUNDS=N                               # rounds of the interleaved rate figures (default 5)
#   BENCH_ERL_FLAGS="+sbwt none"                 # extra emulator flags for all three BEAM nodes
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HORDEC_BIN=${HORDEC_BIN:-$ROOT/build/hordec}
COOKIE=${BENCH_COOKIE:-hordec_registry_bench}
TAG="$$"   # short node names: a pid carries its node name, so names size the entries
export BENCH_TAG=$TAG
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_setup rb

export BENCH_ERL_FLAGS=${BENCH_ERL_FLAGS:-}
elixir --name "rba${TAG}@127.0.0.1" --cookie "$COOKIE" --erl "$BENCH_ERL_FLAGS" -pa "$EBIN" \
  "$ROOT/bench/registry_bench.exs" "${NODES[@]}"

# hordec's own log, less the redials of BEAM nodes that have just exited
for i in 1 2 3; do
  if grep -qv 'cannot connect to rb' "$WORK/h$i.err"; then
    echo; echo "hordec $i stderr:"; grep -v 'cannot connect to rb' "$WORK/h$i.err" | tail -n 20
  fi
done
