#!/usr/bin/env bash
# Installs HordeC from a build tree into a prefix inside it, then builds examples/kvstore against that
# installed copy, the ways a user would, and checks each binary runs:
#   BUILD/examples/cmake/kvstore       CMake, find_package(hordec), libhordec.so
#   BUILD/examples/pkgconfig/kvstore   pkg-config (examples/kvstore/Makefile), libhordec.so
#   BUILD/examples/static/kvstore      CMake, hordec::hordec_static (libhordec.a + the ei it names)
# The last line printed is HORDEC_EXAMPLE_BIN=<the shared-library builds, colon-separated>, the variable
# elixir_client/test/example_kvstore_test.exs reads.
#
#   scripts/build_examples.sh [BUILD_DIR]     BUILD_DIR: a configured, non-sanitizer build (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
build=$(cd "${1:-build}" && pwd)
grep -q '^HORDEC_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" && {
    echo "build_examples: $build is a sanitizer build; use a plain one (scripts/build.sh makes build/)" >&2
    exit 1
}
jobs=$(nproc 2>/dev/null || echo 2)

prefix=$build/stage
out=$build/examples
rm -rf "$prefix" "$out"
cmake --build "$build" -j"$jobs" --target hordec hordec_shared hordec_static >/dev/null
cmake --install "$build" --prefix "$prefix" >/dev/null
echo "build_examples: installed into $prefix"

# 1. CMake package, shared library.
cmake -S examples/kvstore -B "$out/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$out/cmake" -j"$jobs" >/dev/null
# 2. pkg-config, shared library.
mkdir -p "$out/pkgconfig"
PKG_CONFIG_PATH="$(dirname "$(find "$prefix" -name hordec.pc | head -1)")" \
    make -s -C examples/kvstore OUT="$out/pkgconfig/kvstore" >/dev/null
# 3. CMake package, static archive.
cmake -S examples/kvstore -B "$out/static" -DCMAKE_PREFIX_PATH="$prefix" -DKVSTORE_STATIC=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$out/static" -j"$jobs" >/dev/null

for bin in "$out/cmake/kvstore" "$out/pkgconfig/kvstore" "$out/static/kvstore"; do
    "$bin" --help >/dev/null || { echo "build_examples: $bin does not run" >&2; exit 1; }
done
# The shared builds must load the INSTALLED library (not one from the build tree); the static one none.
for bin in "$out/cmake/kvstore" "$out/pkgconfig/kvstore"; do
    lib=$(ldd "$bin" | awk '/libhordec/ { print $3 }')
    case "$lib" in
    "$prefix"/*) ;;
    *) echo "build_examples: $bin loads libhordec from '${lib:-nowhere}', not from $prefix" >&2; exit 1 ;;
    esac
done
if ldd "$out/static/kvstore" | grep -q libhordec; then
    echo "build_examples: the static build still needs libhordec.so" >&2
    exit 1
fi
echo "build_examples: kvstore built 3 ways against the installed library (cmake, pkg-config, static)"
echo "HORDEC_EXAMPLE_BIN=$out/cmake/kvstore:$out/pkgconfig/kvstore"
