#!/usr/bin/env bash
# Runs every HordeC test on a fresh Debian machine: installs dependencies, checks formatting (C with
# clang-format, Elixir with mix format), builds with -Wall -Wextra -Werror (each layer its own library, so
# an upward include fails the build), runs the cmocka unit tests, the simulators, the layering probes and
# the export check through ctest, runs them again built with AddressSanitizer + UndefinedBehaviorSanitizer
# (LeakSanitizer included), builds examples/ against the installed library (CMake package and pkg-config),
# checks that `rebar3 compile` builds the C node, then runs the ExUnit interop suite against real hordec and
# BEAM nodes on loopback — once with the normal build and once with the sanitizer build of hordec, so memory
# errors on the real network paths fail the run too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

step() { printf '\n==== %s\n' "$*"; }

step "dependencies"
bash scripts/deps.sh

step "formatting (clang-format for C, mix format for Elixir)"
bash scripts/format.sh --check

step "build (warnings are errors) + unit and simulation tests"
bash scripts/build.sh
(cd build && ctest --output-on-failure --no-tests=error -j2)

step "AddressSanitizer + UndefinedBehaviorSanitizer build + unit and simulation tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHORDEC_SANITIZE=ON -DHORDEC_TESTS=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure --no-tests=error -j2)

step "examples/kvstore built against the installed library (CMake package, pkg-config, static)"
export "$(bash scripts/build_examples.sh build | tail -1)"

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
