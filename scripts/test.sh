#!/usr/bin/env bash
# Runs every HordeC test on a fresh Debian machine: installs dependencies, builds with
# -Wall -Wextra -Werror, runs the cmocka unit tests and the simulator through ctest, runs them again
# built with AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included), checks that
# `rebar3 compile` builds the C node, then runs the ExUnit interop suite against real hordec and BEAM
# nodes on loopback — once with the normal build and once with the sanitizer build of hordec, so memory
# errors on the real network paths fail the run too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

step() { printf '\n==== %s\n' "$*"; }

step "dependencies"
bash scripts/deps.sh

step "build (warnings are errors) + unit and simulation tests"
bash scripts/build.sh
(cd build && ctest --output-on-failure --no-tests=error -j2)

step "AddressSanitizer + UndefinedBehaviorSanitizer build + unit and simulation tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHORDEC_SANITIZE=ON -DHORDEC_TESTS=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure --no-tests=error -j2)

step "rebar3 compile builds the C node"
rm -rf priv _build/cmake
rebar3 compile >/dev/null
test -x priv/hordec && echo "rebar3: priv/hordec built"

step "interop suite (real hordec + real BEAM nodes)"
epmd -daemon
cd elixir_client
export HORDEC_BIN="$ROOT/build/hordec"
export HORDEC_VECTORS_BIN="$ROOT/build/test/interop/hordec-vectors"
MIX_ENV=test mix compile --warnings-as-errors >/dev/null
mix test

step "interop suite again, against hordec built with ASan + UBSan (leaks checked on clean exits)"
HORDEC_BIN="$ROOT/build-asan/hordec" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 mix test
