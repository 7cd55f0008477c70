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

step "fuzz targets (libFuzzer, clang, ASan + UBSan): committed corpus, then 10 s of fuzzing each"
bash scripts/fuzz.sh

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

step "interop, CRDT, registry and supervisor tests again, the whole cluster over TLS (inet_tls_dist)"
# Every node — the test runner, the :peer BEAM nodes, hordec — speaks TLS with mutual authentication, with a
# CA and certificates generated for the run into TLS_DIR (the runner writes them before its distribution starts).
TLS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hordec_tls.XXXXXX")
ELIXIR_ERL_OPTIONS="-proto_dist inet_tls -ssl_dist_optfile $TLS_DIR/ssl_dist.conf" HORDEC_TLS=1 mix test \
  test/echo_test.exs test/node_test.exs test/monitor_link_test.exs test/c_to_c_test.exs test/gen_call_tag_test.exs \
  test/concurrency_test.exs test/failure_detection_test.exs test/crdt_test.exs test/crdt_api_test.exs \
  test/registry_test.exs test/hordec_registry_test.exs test/registry_duplicate_test.exs test/registry_fault_test.exs \
  test/registry_client_test.exs test/dynamic_supervisor_test.exs test/dynamic_supervisor_fault_test.exs \
  test/dynamic_supervisor_partition_test.exs test/dynamic_supervisor_rules_test.exs test/c_worker_test.exs
rm -rf "$TLS_DIR"

step "interop suite again, against hordec built with ASan + UBSan (leaks checked on clean exits)"
HORDEC_BIN="$ROOT/build-asan/hordec" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 mix test --exclude adoption

step "chaos run (3 hordec + 2 BEAM nodes, kill -9 / SIGSTOP / partitions, checked against a model; 60 s)"
HORDEC_BIN="$ROOT/build/hordec" bash "$ROOT/scripts/chaos.sh"
