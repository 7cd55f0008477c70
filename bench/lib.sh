# shellcheck shell=bash
# bench/lib.sh — what the cluster benchmarks share (sourced, not run): clean-up on exit, a fresh hordec and
# Elixir client build, epmd, and three hordec nodes started and waited for.
#
# The caller sets ROOT, HORDEC_BIN, COOKIE and TAG, then calls bench_setup PREFIX (the work directory's and the
# node names' prefix); afterwards WORK, EBIN, HPIDS and NODES (three ready hordec nodes) are set.

bench_cleanup() {
  for p in "${HPIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${HPIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}

bench_setup() {
  local prefix=$1
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/hordec_${prefix}bench.XXXXXX")
  HPIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM

  if [ "$HORDEC_BIN" = "$ROOT/build/hordec" ]; then
    bash "$ROOT/scripts/deps.sh"
    bash "$ROOT/scripts/build.sh" --target hordec >/dev/null # never benchmark a stale binary
  fi

  # The BEAM nodes load horde_c from its compiled ebin (the peers get the runner's code path).
  (cd "$ROOT/elixir_client" && mix compile >/dev/null)
  local mix_build=${MIX_BUILD_PATH:-$ROOT/elixir_client/_build/${MIX_ENV:-dev}}
  EBIN="$mix_build/lib/horde_c/ebin"
  [ -f "$EBIN/horde_c.app" ] || { echo "no compiled horde_c in $EBIN" >&2; exit 1; }

  epmd -daemon

  NODES=()
  local i node pid
  for i in 1 2 3; do
    node="${prefix}h${i}${TAG}@127.0.0.1"
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
}
