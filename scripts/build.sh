#!/usr/bin/env bash
# Builds HordeC into build/ (warnings are errors).
#   scripts/build.sh                  everything: hordec, the library, unit tests, the simulator
#   scripts/build.sh --target hordec  just the daemon
# Options are always passed explicitly, so an earlier configure cannot leave a surprise in CMake's cache.
set -euo pipefail
cd "$(dirname "$0")/.."
target=()
if [ "${1:-}" = "--target" ]; then
  target=(--target "$2")
  shift 2
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHORDEC_TESTS=ON -DHORDEC_SANITIZE=OFF "$@" >/dev/null
cmake --build build -j"$(nproc)" "${target[@]}"
