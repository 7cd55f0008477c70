#!/usr/bin/env bash
# HordeC demo: a real mixed cluster — two hordec C nodes and two Elixir nodes — on loopback.
#
#   bash scripts/demo.sh
#
# Steps: install missing packages -> build hordec -> compile the Elixir client -> epmd -> two hordecs
#        -> elixir_client/demo/demo.exs: ping, echo, C processes; a map replicated between the two C nodes
#        through a partition and its heal; then a second Elixir node, HordeC.Registry on both, a GenServer
#        named through it and called from the other node, its death; HordeC.DynamicSupervisor on both
#        Elixir nodes, with echo/kv C workers placed on the two C nodes and GenServers on the two Elixir
#        nodes; `kill -9` of a C node: named processes live on and its C workers come back on the other
#        (printed as which_children changes); `kill -9` of the second Elixir node: its children come back
#        on the first; every permanent child runs exactly once -> stop everything (also on Ctrl-C or error).
#
# It is also a smoke test: any expectation that does not hold makes it exit non-zero.
# Environment: HORDEC_BIN (use this hordec, skip the build), MIX_BUILD_PATH (where mix compiles the
# client; default elixir_client/_build/dev), DEMO_COOKIE, DEMO_TIMEOUT (seconds for the Elixir part, 120).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HORDEC_BIN=${HORDEC_BIN:-$ROOT/build/hordec}
EBIN=${MIX_BUILD_PATH:-$ROOT/elixir_client/_build/dev}/lib/horde_c/ebin
COOKIE=${DEMO_COOKIE:-hordec_demo_cookie}
TIMEOUT=${DEMO_TIMEOUT:-120}
H1="demo_h1_$$@127.0.0.1"
H2="demo_h2_$$@127.0.0.1"
CLIENT="demo_a_$$@127.0.0.1"
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/hordec_demo.XXXXXX")
H1_PID="" H2_PID=""

say() { printf '\n\033[1m>> %s\033[0m\n' "$*"; }
fail() { printf '\n\033[1;31mDEMO FAILED: %s\033[0m\n' "$*" >&2; }

# True if process PID runs (a dead child stays a zombie until waited for: that counts as gone).
running() { [ -e "/proc/$1" ] && ! grep -q '^[^)]*) Z' "/proc/$1/stat" 2>/dev/null; }

# Stop a hordec started by start_hordec (SIGTERM, then SIGKILL after 5 s) and report how it ended —
# also when it had ended already (the demo kills one with kill -9). Usage: stop_hordec PID NODE
stop_hordec() {
  local pid=$1 node=$2 status=0
  [ -n "$pid" ] || return 0
  if running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      running "$pid" || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || status=$?
    echo "hordec $node (pid $pid) exited with status $status"
  else
    wait "$pid" 2>/dev/null || status=$?
    echo "hordec $node (pid $pid) had already exited (status $status)"
  fi
}

cleanup() {
  stop_hordec "$H1_PID" "$H1"
  stop_hordec "$H2_PID" "$H2"
  H1_PID="" H2_PID=""
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
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  fail "hordec $node did not start ($HORDEC_BIN); its stderr:"
  cat "$err" >&2
  return 1
}

# The tail of each hordec's log, for a failure.
show_logs() {
  for n in "$H1" "$H2"; do
    [ -s "$LOGDIR/$n.err" ] || continue
    echo "--- last lines of hordec $n's log ---" >&2
    tail -n 20 "$LOGDIR/$n.err" >&2
  done
}

say "installing missing packages (if any)"
bash "$ROOT/scripts/deps.sh"

if [ "$HORDEC_BIN" = "$ROOT/build/hordec" ]; then
  say "building hordec"
  bash "$ROOT/scripts/build.sh" --target hordec >/dev/null
fi
if [ ! -x "$HORDEC_BIN" ]; then
  fail "no hordec executable at $HORDEC_BIN"
  exit 1
fi

say "compiling the Elixir client (no deps, no network)"
(cd "$ROOT/elixir_client" && HORDEC_BIN="$HORDEC_BIN" MIX_ENV=dev mix compile)  # HORDEC_BIN: no second hordec build by mix

say "making sure epmd runs"
epmd -daemon

say "starting two C nodes: $H1 $H2"
start_hordec "$H1" H1_PID
start_hordec "$H2" H2_PID

say "running Elixir node A ($CLIENT); it starts Elixir node B itself"
status=0
timeout -k 5 "$TIMEOUT" elixir --name "$CLIENT" --cookie "$COOKIE" -pa "$EBIN" \
  "$ROOT/elixir_client/demo/demo.exs" "$H1" "$H2" || status=$?
if [ "$status" -ne 0 ]; then
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    fail "the Elixir part did not finish within $TIMEOUT s"
  else
    fail "the Elixir part exited with status $status (see above)"
  fi
  show_logs
  exit 1
fi

say "stopping the C nodes (SIGTERM; $H1 was killed by the demo)"
stop_hordec "$H1_PID" "$H1"
stop_hordec "$H2_PID" "$H2"
H1_PID="" H2_PID=""

say "hordec log ($H2, which saw $H1 go)"
cat "$LOGDIR/$H2.err"

printf '\n\033[1;32mDEMO PASSED\033[0m\n'
