#!/usr/bin/env bash
# check_exports.sh BUILD_DIR — run by ctest (install_exports). Installs BUILD_DIR into BUILD_DIR/install-check
# and checks the installed library as a user gets it:
#   * libhordec.so exports hc_* symbols only (plus the linker's own _init/_fini/_edata/_end/__bss_start,
#     and in a sanitizer build ASan's __odr_asan.hc_* twin of each exported object), and the public API is
#     among them;
#   * libei is inside it, private: no ei_*/erl_* export, no dependency on a libei.so;
#   * the headers, the CMake package and the pkg-config file are installed;
#   * every public header wraps its declarations in HC_BEGIN_DECLS/HC_END_DECLS (hc_export.h), since a
#     header without them would compile fine and silently export nothing.
set -euo pipefail
build=${1:?usage: check_exports.sh BUILD_DIR}
src=$(cd "$(dirname "$0")/.." && pwd)
prefix=$build/install-check
fail() { echo "check_exports: $*" >&2; exit 1; }

for h in "$src"/include/hordec/*.h; do
    case "$h" in */hc_export.h) continue ;; esac
    grep -q '^HC_BEGIN_DECLS$' "$h" && grep -q '^HC_END_DECLS$' "$h" && grep -q '"hordec/hc_export.h"' "$h" ||
        fail "include/hordec/$(basename "$h") must include \"hordec/hc_export.h\" and put its declarations" \
            "between HC_BEGIN_DECLS and HC_END_DECLS (lines of their own), or nothing it declares is exported"
    ! grep -q 'extern "C"' "$h" || fail "include/hordec/$(basename "$h"): use HC_BEGIN_DECLS, not extern \"C\""
done

rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
so=$(find "$prefix" -name 'libhordec.so' | head -1)
[ -n "$so" ] || fail "no libhordec.so installed under $prefix"
so=$(readlink -f "$so")

syms=$(nm -D --defined-only "$so" | awk 'NF >= 3 { print $3 }')
[ -n "$syms" ] || fail "$so exports nothing"
bad=$(grep -Ev '^(hc_|__odr_asan[.]hc_|_init$|_fini$|_edata$|_end$|__bss_start$)' <<<"$syms" || true)
[ -z "$bad" ] || fail "$so exports symbols outside hc_*:"$'\n'"$bad"
for want in hc_rt_new hc_proc_spawn hc_proc_send_after hc_gen_reply hc_enc_atom hc_dec_atom hc_buf_append \
    hc_crdt_new hc_log; do
    grep -qx "$want" <<<"$syms" || fail "$so does not export $want"
done
if readelf -d "$so" | grep -q 'NEEDED.*libei'; then fail "$so needs a shared libei"; fi

for f in include/hordec/hc_runtime.h include/hordec/hc_export.h; do
    [ -f "$prefix/$f" ] || fail "$f not installed"
done
[ -n "$(find "$prefix" -path '*cmake/hordec/hordecConfig.cmake')" ] || fail "no CMake package config installed"
[ -n "$(find "$prefix" -path '*pkgconfig/hordec.pc')" ] || fail "no hordec.pc installed"
echo "check_exports: $(wc -l <<<"$syms") symbols exported by $(basename "$so"), all hc_*"
