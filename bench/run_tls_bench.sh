#!/usr/bin/env bash
# Distribution over TLS, measured side by side with what it is compared to, in one run:
#   1. GenServer.call rate and one-way throughput, BEAM -> hordec over TLS against BEAM -> BEAM over TLS
#      (bench/dist_bench.exs, with every node on inet_tls_dist);
#   2. CRDT: 100k keys written on one of 3 hordec replicas until visible on all, over plain TCP and over
#      TLS (bench/crdt_bench.exs run twice against fresh nodes).
# Certificates (a CA and a node certificate) are generated for the run, as the TLS tests do; every node
# uses verify_peer both ways (mutual authentication). Prints numbers; no pass/fail.
#
#   bench/run_tls_bench.sh                  # builds build/hordec first if it is missing
#   HORDEC_BIN=/path/to/hordec BENCH_CALLS=50000 BENCH_SENDS=500000 bench/run_tls_bench.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HORDEC_BIN=${HORDEC_BIN:-$ROOT/build/hordec}
COOKIE=${BENCH_COOKIE:-hordec_bench_cookie}
TAG="$$_$RANDOM"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hordec_tlsbench.XXXXXX")
HPIDS=()

cleanup() {
  for p in "${HPIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${HPIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null || true
  done
  HPIDS=()
}
trap 'cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

if [ "$HORDEC_BIN" = "$ROOT/build/hordec" ]; then
  bash "$ROOT/scripts/deps.sh"
  bash "$ROOT/scripts/build.sh" --target hordec >/dev/null # never benchmark a stale binary
fi
epmd -daemon

# The run's CA, node certificate and ssl_dist_optfile (shared by hordec and the BEAM nodes).
OPTFILE=$(elixir -r "$ROOT/elixir_client/test/support/tls_certs.ex" \
  -e 'IO.puts(HordeC.Test.TlsCerts.generate!(hd(System.argv())))' "$WORK/certs" | tail -1)
# ERL_FLAGS reaches every BEAM started below, the :peer nodes the benchmarks start included.
TLS_ERL_FLAGS="-proto_dist inet_tls -ssl_dist_optfile $OPTFILE"

# start_hordec NAME [extra args...]: starts one, waits for its ready line.
start_hordec() {
  local node=$1 i=${#HPIDS[@]}
  shift
  "$HORDEC_BIN" --name "$node" --cookie "$COOKIE" --log-level warn "$@" >"$WORK/h$i.out" 2>"$WORK/h$i.err" &
  HPIDS+=($!)
  for _ in $(seq 1 100); do
    grep -q '^hordec ready ' "$WORK/h$i.out" 2>/dev/null && return 0
    kill -0 "${HPIDS[$i]}" 2>/dev/null || { echo "hordec $node exited early:" >&2; cat "$WORK/h$i.err" >&2; exit 1; }
    sleep 0.1
  done
  echo "hordec $node not ready after 10 s" >&2
  exit 1
}

echo "==== 1. calls and one-way messages over TLS: BEAM -> hordec vs BEAM -> BEAM (both inet_tls_dist)"
HNODE="tlsb_h_${TAG}@127.0.0.1"
start_hordec "$HNODE" --ssl-dist-optfile "$OPTFILE"
ERL_FLAGS="$TLS_ERL_FLAGS" elixir --name "tlsb_runner_${TAG}@127.0.0.1" --cookie "$COOKIE" \
  "$ROOT/bench/dist_bench.exs" "$HNODE"
cleanup

# crdt_run LABEL [hordec args...]: 3 fresh hordec nodes, the CRDT benchmark on them.
crdt_run() {
  local label=$1
  shift
  local nodes=() i
  for i in 1 2 3; do
    nodes+=("tlsb_${label}${i}_${TAG}@127.0.0.1")
    start_hordec "${nodes[-1]}" "$@"
  done
  elixir --name "tlsb_crdt_${label}_${TAG}@127.0.0.1" --cookie "$COOKIE" "$ROOT/bench/crdt_bench.exs" "${nodes[@]}" |
    tee "$WORK/crdt_$label.txt"
  cleanup
}

echo
echo "==== 2. CRDT over plain TCP"
crdt_run tcp
echo "==== 2. CRDT over TLS"
ERL_FLAGS="$TLS_ERL_FLAGS" crdt_run tls --ssl-dist-optfile "$OPTFILE"

visible() { sed -n 's/.*visible on every replica *\([0-9.]*\) ms.*/\1/p' "$1" | head -1; }
tcp=$(visible "$WORK/crdt_tcp.txt")
tls=$(visible "$WORK/crdt_tls.txt")
if [ -n "$tcp" ] && [ -n "$tls" ]; then
  echo "==== 100k keys visible on all 3 replicas: TCP $tcp ms, TLS $tls ms ($(awk -v a="$tls" -v b="$tcp" \
    'BEGIN { printf "%.2f", a / b }')x)"
fi
