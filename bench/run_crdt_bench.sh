#!/usr/bin/env bash
# Starts 5 hordec nodes on loopback and runs bench/crdt_bench.exs against them, then the engine's own
# micro-benchmark (hordec-sim --bench). Prints numbers only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
epmd -daemon
COOKIE=hordec_bench
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
nodes=()
for i in 1 2 3 4 5; do
  node="bench_h$i@127.0.0.1"
  build/hordec --name "$node" --cookie $COOKIE --log-level warn > /dev/null &
  pids+=($!)
  nodes+=("$node")
done
sleep 0.5
elixir --name "crdt_bench_$$@127.0.0.1" --cookie $COOKIE bench/crdt_bench.exs "${nodes[@]}"
echo "engine micro-benchmark (one core, no network):"
build/test/sim/hordec-sim --bench
