#!/bin/sh
# tests/integration/test_example_module.sh: the module API as a third party
# sees it (called by `make check` from the build dir).
#
#  1. `make install DESTDIR=$tmp`, then build a copy of examples/mod_hello
#     with its own Makefile against $tmp's roost-module.pc only (pkg-config
#     with a sysroot; nothing from the source or build tree), require
#     roost_module_hello to be its only exported symbol, load it into roostd
#     next to the in-tree modules and ask it for a greeting (Howdy, from the
#     per-vhost option) and for disco#info (urn:example:hello).
#  2. A module built the same way with .abi = 999 must stop roostd at
#     startup, exit status non-zero, "ABI" on stderr.
#
# Needs: ROOSTD, ROOSTCTL, ROOST_MODULES_DIR, ROOST_SRCDIR (set by make
# check); make, cc, pkg-config, nm, python3.  ROOSTTEST_KEEP=1 keeps $tmp.
# Prints "N passed, N failed"; exits non-zero on any failure.
set -u

builddir=$(pwd)
srcdir=${ROOST_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
ROOSTD=${ROOSTD:-$builddir/roostd}
ROOSTCTL=${ROOSTCTL:-$builddir/roostctl}
ROOST_MODULES_DIR=${ROOST_MODULES_DIR:-$builddir/modules/.libs}
export ROOSTD ROOSTCTL ROOST_MODULES_DIR ROOST_SRCDIR="$srcdir"

passed=0
failed=0
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/roost-exmod.XXXXXX") || exit 99
cleanup() {
    if [ -n "${ROOSTTEST_KEEP:-}" ]; then echo "    (kept $tmp)"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Sub-makes must not inherit make check's jobserver, command-line variables
# (CFLAGS=..., DESTDIR=...) or directory depth.
submake() {
    env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL -u GNUMAKEFLAGS \
        make "$@"
}

# --- install into $tmp -------------------------------------------------
if ! submake -s -C "$builddir" install DESTDIR="$tmp" >"$tmp/install.log" 2>&1; then
    tail -n 20 "$tmp/install.log"
    fail hello "make install DESTDIR=$tmp failed"
    fail badabi "make install failed"
    finish
fi
pc=$(find "$tmp" -name roost-module.pc -path '*/pkgconfig/*' | head -n 1)
if [ -z "$pc" ]; then
    fail hello "no roost-module.pc under $tmp after make install"
    fail badabi "no roost-module.pc"
    finish
fi
# Only the installed copy: PKG_CONFIG_LIBDIR hides the system's .pc files
# (a Roost installed on this machine must not satisfy the test).
PKG_CONFIG_PATH=$(dirname "$pc")
PKG_CONFIG_LIBDIR=$PKG_CONFIG_PATH
PKG_CONFIG_SYSROOT_DIR=$tmp
export PKG_CONFIG_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR

# A compiler command line must not name the source or the build tree.
clean_cmdline() {   # log file
    ! grep -F -e "$srcdir/" -e "$builddir/" "$1" >/dev/null
}

mkdir -p "$tmp/modules"
cp "$ROOST_MODULES_DIR"/mod_*.so "$tmp/modules/" || {
    fail hello "no in-tree modules in $ROOST_MODULES_DIR"
    fail badabi "no in-tree modules"
    finish
}

# --- 1. mod_hello ----------------------------------------------------------
test_hello() {
    cp -R "$srcdir/examples/mod_hello" "$tmp/mod_hello" || return 1
    rm -f "$tmp/mod_hello/mod_hello.so"
    if ! submake -C "$tmp/mod_hello" >"$tmp/hello-build.log" 2>&1; then
        cat "$tmp/hello-build.log"
        fail hello "examples/mod_hello does not build against the installed headers"
        return
    fi
    if ! clean_cmdline "$tmp/hello-build.log"; then
        cat "$tmp/hello-build.log"
        fail hello "the build used files from the source or build tree"
        return
    fi
    exports=$(nm -D --defined-only "$tmp/mod_hello/mod_hello.so" |
              awk '$2 ~ /^[TDRBVW]$/ && $3 !~ /^_(init|fini)$/ { print $3 }')
    if [ "$exports" != "roost_module_hello" ]; then
        fail hello "mod_hello.so must export exactly roost_module_hello, exports: $(echo $exports)"
        return
    fi
    cp "$tmp/mod_hello/mod_hello.so" "$tmp/modules/" || return 1
    if python3 "$srcdir/tests/integration/example_module_check.py" hello "$tmp/modules"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
}

# --- 2. a module for another ABI -------------------------------------------
test_badabi() {
    mkdir -p "$tmp/badabi"
    cat >"$tmp/badabi/mod_badabi.c" <<'EOC'
/* Built for an ABI this roostd does not speak: must be refused at startup. */
#include <roost/module.h>

ROOST_MODULE(badabi) = {.abi = 999, .name = "badabi"};
EOC
    # shellcheck disable=SC2046
    if ! (cd "$tmp/badabi" && set -x &&
          ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -fPIC \
              $(pkg-config --cflags roost-module) -shared -o mod_badabi.so mod_badabi.c) \
            >"$tmp/badabi-build.log" 2>&1; then
        cat "$tmp/badabi-build.log"
        fail badabi "mod_badabi.c does not build against the installed headers"
        return
    fi
    if ! clean_cmdline "$tmp/badabi-build.log"; then
        cat "$tmp/badabi-build.log"
        fail badabi "the build used files from the source or build tree"
        return
    fi
    if ! nm -D --defined-only "$tmp/badabi/mod_badabi.so" | grep -q ' roost_module_badabi$'; then
        fail badabi "mod_badabi.so does not export roost_module_badabi"
        return
    fi
    cp "$tmp/badabi/mod_badabi.so" "$tmp/modules/" || return 1
    if python3 "$srcdir/tests/integration/example_module_check.py" badabi "$tmp/modules"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
}

test_hello || fail hello "could not set up $tmp"
test_badabi || fail badabi "could not set up $tmp"
finish
