#!/bin/sh
# Called by rebar3's compile pre-hook from the application's directory: builds hordec (no tests) and
# puts it in priv/, where hordec:executable/0 finds it.
set -e
cmake -S . -B _build/cmake -DCMAKE_BUILD_TYPE=Release -DHORDEC_TESTS=OFF >/dev/null
cmake --build _build/cmake -j"$(nproc 2>/dev/null || echo 2)" --target hordec >/dev/null
mkdir -p priv
cp _build/cmake/hordec priv/hordec
