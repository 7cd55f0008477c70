#!/usr/bin/env bash
# The chaos run: 3 hordec nodes and 2 BEAM nodes on loopback under a random, seeded schedule of kill -9 and
# restart, SIGSTOP/SIGCONT and block_peers partitions of hordec nodes, and kill -9 (or :erlang.halt) of a BEAM
# node and its start again, with writes through HordeC.Crdt, HordeC.Registry and HordeC.DynamicSupervisor; after
# every heal every replica is checked against a reference model (elixir_client/test/chaos/chaos_run.exs says
# what the model assumes). Prints what it did and what it found (and, at the end, how many faults of each
# kind); exits non-zero on a violation.
#
#   scripts/chaos.sh                      60 s (what scripts/test.sh runs)
#   CHAOS_SECONDS=1800 scripts/chaos.sh   a long run
#   CHAOS_SEED=N scripts/chaos.sh         replay a schedule (the seed is printed at the start)
#   CHAOS_BEAM_FAULTS=0 scripts/chaos.sh  leave the BEAM nodes alone (hordec faults only)
#
# Uses $HORDEC_BIN (default build/hordec, built if missing) and MIX_BUILD_PATH if set. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CHAOS_SECONDS=${CHAOS_SECONDS:-60}
export HORDEC_BIN=${HORDEC_BIN:-$ROOT/build/hordec}
if [ ! -x "$HORDEC_BIN" ]; then
  bash scripts/build.sh >/dev/null
fi
epmd -daemon
cd elixir_client
# --seed 0: ExUnit's own order; the schedule's seed is CHAOS_SEED. The file name keeps it out of `mix test`.
mix test --seed 0 test/chaos/chaos_run.exs
