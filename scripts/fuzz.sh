#!/usr/bin/env bash
# Builds the libFuzzer targets (test/fuzz/, clang, -fsanitize=fuzzer,address,undefined) and runs each one: first
# over its committed corpus (test/fuzz/corpus/<target>/: seeds and the crash-* reproducers of past findings, so a
# fixed bug stays fixed), then fuzzing for FUZZ_SECONDS (default 10) from that corpus. New inputs go to a scratch
# directory, never into the repository. A crash, a sanitizer report, a leak or a broken invariant fails the run
# and names the input that did it (replay: <build>/test/fuzz/<target> <input>).
#
#   scripts/fuzz.sh                   every target, 10 s each (what scripts/test.sh runs)
#   FUZZ_SECONDS=300 scripts/fuzz.sh  a longer run (run it with `nice`, it keeps one core busy)
#   FUZZ_TARGETS="fuzz_term fuzz_crdt" scripts/fuzz.sh   some targets only
#   scripts/fuzz.sh --seeds           rewrite the seed-* files of test/fuzz/corpus/ from the real encoders
#
# Environment: FUZZ_BUILD (build directory, default build-fuzz), FUZZ_WORK (scratch, default $FUZZ_BUILD/fuzz-work),
# HORDEC_FUZZ_STRICT=1 (also check that a rejected replica message changes nothing, test/fuzz/fuzz_core.h),
# FUZZ_ALL=1 (also the targets test/fuzz/known_failures leaves out), FUZZ_KEEP_GOING=1 (a long run: keep fuzzing
# after a crash, collecting every reproducer in the scratch directory; libFuzzer's -fork mode).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${FUZZ_BUILD:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-10}
WORK=${FUZZ_WORK:-$BUILD/fuzz-work}
CORPUS=$ROOT/test/fuzz/corpus

command -v clang >/dev/null || { echo "fuzz: clang not found (scripts/deps.sh installs it)" >&2; exit 1; }
# Warnings are enforced by the gcc builds; here a clang-only warning in a layer must not stop the fuzzing.
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHORDEC_FUZZ=ON -DHORDEC_WERROR=OFF \
  -DHORDEC_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target hordec-fuzz >/dev/null

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$ROOT/test/fuzz/ubsan.supp

if [ "${1:-}" = "--seeds" ]; then
  "$BUILD/test/fuzz/hordec-fuzz-seeds" "$CORPUS"
  # terms only a BEAM writes that way (old floats, bignums, funs, ports, bitstrings, refs, nested maps)
  erl -noshell -eval '
    Ts = [{1, 300, -5, 1.5, [], atom, "str", <<1,2>>, <<1:3>>}, 1 bsl 100, -(1 bsl 70), fun lists:map/2,
          fun(X) -> X end, hd(erlang:ports()), make_ref(), self(), #{a => #{b => [1, {c, "d"}]}, "k" => 2.5e300},
          [1, 2 | 3], lists:seq(1, 300), {<<"é"/utf8>>, '"'"'é'"'"', [233, 8364]}],
    lists:foreach(fun({I, T}) ->
        <<131, B/binary>> = term_to_binary(T, [{minor_version, 1}]),
        ok = file:write_file(io_lib:format("~s/fuzz_term/seed-beam-~2..0B", [hd(init:get_plain_arguments()), I]), B)
      end, lists:zip(lists:seq(1, length(Ts)), Ts)),
    halt().' -extra "$CORPUS"
  echo "fuzz: seeds written to $CORPUS"
  exit 0
fi

targets=${FUZZ_TARGETS:-$(cd "$BUILD/test/fuzz" && ls fuzz_* | sort)}
if [ "${FUZZ_ALL:-0}" != 1 ]; then
  known=$(grep -v '^#' test/fuzz/known_failures | awk 'NF {print $1}' || true)
  for k in $known; do
    case " $(echo $targets) " in *" $k "*)
      echo "fuzz: $k left out (known finding, test/fuzz/known_failures; FUZZ_ALL=1 runs it)"
      targets=$(echo "$targets" | tr ' ' '\n' | grep -vx "$k") ;;
    esac
  done
fi
keep_going=()
[ "${FUZZ_KEEP_GOING:-0}" = 1 ] && keep_going=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
mkdir -p "$WORK"
failed=()
for t in $targets; do
  bin=$BUILD/test/fuzz/$t
  mkdir -p "$CORPUS/$t" "$WORK/$t/corpus" "$WORK/$t/artifacts"
  log=$WORK/$t/log
  # 1. every committed input once (seeds and past reproducers)
  if ! "$bin" -runs=0 "$CORPUS/$t" >"$log" 2>&1; then
    echo "fuzz: $t FAILED on its committed corpus (log: $log)"
    grep -E "ERROR|runtime error|invariant|Running:" "$log" | tail -5 || true
    failed+=("$t")
    [ ${#keep_going[@]} -gt 0 ] || continue # a long run fuzzes it anyway
  fi
  # 2. fuzz for a bounded time
  if "$bin" "${keep_going[@]}" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$WORK/$t/artifacts/" "$WORK/$t/corpus" "$CORPUS/$t" >"$log" 2>&1; then
    runs=$(awk '/^stat::number_of_executed_units/ {print $2}' "$log")
    cov=$(grep -oE "cov: [0-9]+" "$log" | tail -1)
    found=$(ls "$WORK/$t/artifacts/" 2>/dev/null | wc -l)
    echo "fuzz: $t ok (${SECONDS_EACH}s, ${runs:-?} runs, $cov, corpus $(ls "$WORK/$t/corpus" | wc -l) new)"
    if [ "$found" -gt 0 ]; then
      echo "fuzz: $t kept going past $found finding(s) (the first ones; all in $WORK/$t/artifacts/):"
      ls "$WORK/$t/artifacts/" | head -5 | sed "s|^|fuzz:   reproducer $WORK/$t/artifacts/|"
      case " ${failed[*]:-} " in *" $t "*) ;; *) failed+=("$t") ;; esac
    fi
  else
    echo "fuzz: $t FAILED (log: $log)"
    grep -E "ERROR|runtime error|invariant|SUMMARY" "$log" | head -5 || true
    ls "$WORK/$t/artifacts/" 2>/dev/null | head -5 | sed "s|^|fuzz:   reproducer $WORK/$t/artifacts/|"
    case " ${failed[*]:-} " in *" $t "*) ;; *) failed+=("$t") ;; esac
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: every target passed"
