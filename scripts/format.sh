#!/usr/bin/env bash
# Formats the C sources (clang-format, style in .clang-format) and the Elixir client (mix format).
#   scripts/format.sh           rewrite files in place
#   scripts/format.sh --check   change nothing; fail listing the files that are not formatted
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[ "${1:-}" = "--check" ] && check=1

mapfile -t files < <(git ls-files -co --exclude-standard -- 'c_src/*.[ch]' 'include/*.h' 'test/*.[ch]' \
    'examples/*.[ch]' 'bench/*.[ch]' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
if [ $check = 1 ]; then
    bad=()
    for f in "${files[@]}"; do
        clang-format --style=file "$f" | cmp -s - "$f" || bad+=("$f")
    done
    if [ ${#bad[@]} -gt 0 ]; then
        echo "format: not clang-formatted (run scripts/format.sh): ${bad[*]}" >&2
        exit 1
    fi
    (cd elixir_client && mix format --check-formatted)
    echo "format: ${#files[@]} C files and the Elixir client are formatted"
else
    clang-format --style=file -i "${files[@]}"
    (cd elixir_client && mix format)
fi
