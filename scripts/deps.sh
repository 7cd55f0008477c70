#!/usr/bin/env bash
# Installs what building and testing HordeC needs on Debian/Ubuntu. Idempotent: installs only what is
# missing, so it costs nothing on a machine that already has everything.
set -euo pipefail

# clang + libclang-rt-14-dev: the fuzz targets (scripts/fuzz.sh); on Debian 12 libFuzzer's runtime
# (libclang_rt.fuzzer) is in libclang-rt-14-dev, which clang only recommends.
PKGS=(gcc make cmake pkg-config clang-format erlang-nox erlang-dev elixir rebar3 libssl-dev libcmocka-dev valgrind
  clang libclang-rt-14-dev)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "deps: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
