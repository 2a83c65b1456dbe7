#!/bin/sh
# Every function the public headers declare ROOST_API must be exported by
# roostd, or a module using it fails to load (dlopen RTLD_NOW) although it
# compiled.  Prints "N passed, N failed".
set -u
roostd=${ROOSTD:-../../roostd}
hdrs=${ROOST_SRCDIR:-$(dirname "$0")/../..}/include/roost
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
nm -D --defined-only "$roostd" | awk '{print $3}' | sort -u > "$tmp"
passed=0 failed=0
# Declarations span lines: join each header, then take the identifier
# before the first '(' of every ROOST_API declaration.
for f in "$hdrs"/*.h; do
    tr '\n' ' ' < "$f" | grep -o 'ROOST_API[^;{(]*(' |
        sed -E 's/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\($/\1/'
done | sort -u | while read -r fn; do
    case "$fn" in roost_module_*|ROOST_*) continue ;; roost_*) ;; *) continue ;; esac
    if grep -qx "$fn" "$tmp"; then
        echo "PASS export:$fn"
    else
        echo "FAIL export:$fn: declared ROOST_API but not exported by roostd"
    fi
done > "$tmp.out"
# The header scan above must see these (a declaration it cannot parse
# would silently go unchecked): the event substitution of roost/module.h
# and the helpers of roost/util.h.
for fn in roost_event_replace roost_sha1 roost_sha1_hex roost_base64_encode \
    roost_base64_decode; do
    if ! grep -q "export:$fn\(:\|\$\)" "$tmp.out"; then
        echo "FAIL export:$fn: not found as ROOST_API in $hdrs" >> "$tmp.out"
    fi
done
cat "$tmp.out"
passed=$(grep -c '^PASS' "$tmp.out")
failed=$(grep -c '^FAIL' "$tmp.out")
rm -f "$tmp.out"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 50 ]
