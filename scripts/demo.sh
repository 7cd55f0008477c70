#!/usr/bin/env bash
# HordeC demo: a real mixed cluster — three hordec C nodes and an Elixir node — on loopback.
#
#   bash scripts/demo.sh
#
# Steps: install missing packages -> build hordec -> compile the Elixir client -> epmd -> three hordecs
#        -> elixir_client/demo/demo.exs (ping, echo, C processes, then a map replicated across the three
#        C nodes, written and read from Elixir, through a partition and its heal) -> stop everything
#        (also on Ctrl-C or error).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HORDEC_BIN=${HORDEC_BIN:-$ROOT/build/hordec}
COOKIE=${DEMO_COOKIE:-hordec_demo_cookie}
H1="demo_h1@127.0.0.1"
H2="demo_h2@127.0.0.1"
H3="demo_h3@127.0.0.1"
CLIENT="demo_client_$$@127.0.0.1"
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/hordec_demo.XXXXXX")
H1_PID="" H2_PID="" H3_PID=""

say() { printf '\n\033[1m>> %s\033[0m\n' "$*"; }

# Stop a hordec started by start_hordec (SIGTERM, then SIGKILL after 5 s). Usage: stop_hordec PID
stop_hordec() {
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  local status=0
  wait "$pid" 2>/dev/null || status=$?
  echo "hordec (pid $pid) exited with status $status"
}

cleanup() {
  stop_hordec "$H1_PID"
  stop_hordec "$H2_PID"
  stop_hordec "$H3_PID"
  rm -rf "$LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start one hordec in the background; waits for its ready line. Usage: start_hordec NODE VAR
start_hordec() {
  local node=$1 out="$LOGDIR/$1.out" err="$LOGDIR/$1.err"
  "$HORDEC_BIN" --name "$node" --cookie "$COOKIE" --log-level info >"$out" 2>"$err" &
  local pid=$!
  for _ in $(seq 1 100); do
    if grep -q '^hordec ready ' "$out" 2>/dev/null; then
      cat "$out"
      printf -v "$2" '%s' "$pid"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "hordec $node did not start:" >&2
  cat "$err" >&2
  kill -KILL "$pid" 2>/dev/null || true
  return 1
}

say "installing missing packages (if any)"
bash "$ROOT/scripts/deps.sh"

if [ "$HORDEC_BIN" = "$ROOT/build/hordec" ]; then
  say "building hordec"
  bash "$ROOT/scripts/build.sh" --target hordec >/dev/null
fi

say "compiling the Elixir client (no deps, no network)"
(cd "$ROOT/elixir_client" && MIX_ENV=dev mix compile)

say "making sure epmd runs"
epmd -daemon

say "starting three C nodes: $H1 $H2 $H3"
start_hordec "$H1" H1_PID
start_hordec "$H2" H2_PID
start_hordec "$H3" H3_PID

say "running the Elixir client $CLIENT"
elixir --name "$CLIENT" --cookie "$COOKIE" \
  -pa "$ROOT/elixir_client/_build/dev/lib/horde_c/ebin" \
  "$ROOT/elixir_client/demo/demo.exs" "$H1" "$H2" "$H3"

say "stopping the C nodes (SIGTERM)"
stop_hordec "$H1_PID"
stop_hordec "$H2_PID"
stop_hordec "$H3_PID"
H1_PID="" H2_PID="" H3_PID=""

say "hordec log ($H1)"
cat "$LOGDIR/$H1.err"
