#!/usr/bin/env bash
# Builds hordec into build/ (warnings are errors). Usage: scripts/build.sh [extra cmake -D flags]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build build -j"$(nproc)"
