#!/usr/bin/env bash
# Roost quickstart: the two commands of the README.
#
#   ./quickstart.sh run                start roostd for localhost (foreground)
#   ./quickstart.sh test               build and run every test (also under
#                                      ASan+UBSan); non-zero on any failure
#   ./quickstart.sh roostctl ARGS...   roostctl against the quickstart config
#
# Installs the Debian packages it needs with apt-get (run as root, or with
# sudo available), builds out of tree in build/ (and build-asan/ for the
# sanitizer run), and keeps all runtime state in data/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")"
TOP=$(pwd)
JOBS=$(nproc 2>/dev/null || echo 2)

BUILD_DEPS=(build-essential autoconf automake libtool pkg-config
    libexpat1-dev libevent-dev libssl-dev libsasl2-dev libsasl2-modules
    libsqlite3-dev check libconfig-dev libidn-dev libidn2-dev uthash-dev
    libc-ares-dev)
TEST_DEPS=(python3 python3-slixmpp go-sendxmpp profanity tmux openssl clang-format
    clang libclang-rt-dev dnsmasq-base prosody ejabberd valgrind)

say() { printf '==> %s\n' "$*" >&2; }

install_deps() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}

# build DIR [configure args...]: configure (again when configure is newer
# or the arguments changed, recorded in DIR/.quickstart-args; then from
# clean, since objects do not depend on the flags), then make.
build() {
    local dir=$1; shift
    [ -x "$TOP/configure" ] || { say "autogen"; ./autogen.sh >/dev/null 2>&1 || ./autogen.sh; }
    mkdir -p "$dir"
    if [ -f "$dir/Makefile" ] &&
        [ "$*" != "$(cat "$dir/.quickstart-args" 2>/dev/null)" ]; then
        say "configure arguments of $dir changed: make clean"
        make -s -C "$dir" clean >/dev/null 2>&1 || true
        rm -f "$dir/Makefile"
    fi
    if [ ! -f "$dir/Makefile" ] || [ "$TOP/configure" -nt "$dir/Makefile" ]; then
        say "configure $dir $*"
        (cd "$dir" && "$TOP/configure" -q "$@")
        printf '%s\n' "$*" > "$dir/.quickstart-args"
    fi
    say "make ($dir)"
    make -s -C "$dir" -j"$JOBS"
}

quickstart_conf() {
    mkdir -p data
    [ -f data/roost.conf ] && return 0
    sed -e "s|@MODULES_DIR@|$TOP/build/modules/.libs|" \
        etc/quickstart.conf.in > data/roost.conf
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
run)
    install_deps "${BUILD_DEPS[@]}"
    build build
    quickstart_conf
    say "starting roostd on localhost: c2s 127.0.0.1:5222 (STARTTLS), 5223 (direct TLS)"
    say "add a user: ./quickstart.sh roostctl adduser alice@localhost --password secret"
    exec build/roostd -c data/roost.conf "$@"
    ;;
roostctl)
    install_deps "${BUILD_DEPS[@]}"
    [ -x build/roostctl ] || build build >&2
    quickstart_conf
    exec build/roostctl -c data/roost.conf "$@"
    ;;
test)
    install_deps "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}"
    status=0
    build build
    say "make check (build/)"
    if ! make -s -C build -j"$JOBS" check; then
        status=1
        cat build/test-suite.log 2>/dev/null | tail -200 || true
    fi
    build build-asan --enable-asan --enable-ubsan
    say "make check under ASan+UBSan (build-asan/)"
    if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
         UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
         make -s -C build-asan -j"$JOBS" check; then
        status=1
        cat build-asan/test-suite.log 2>/dev/null | tail -200 || true
    fi
    # roostd under valgrind (memcheck, definite leaks) for a set of
    # integration runners that fits in about 5 minutes (tests/valgrind.sh),
    # from a plain build: valgrind and the sanitizers do not mix.
    build build-vg
    say "integration runners under valgrind (build-vg/)"
    if ! tests/valgrind.sh -b build-vg; then
        status=1
    fi
    # The fuzz targets (HOUSE 26) under ASan (with LeakSanitizer) and UBSan
    # (aborting), a bounded and reproducible run: a fixed seed and number of
    # inputs per target (250,000; the slowest under the sanitizers, sasl,
    # stream and config, run FUZZ_SLOW_RUNS and fuzz_modules, a whole fake
    # host per input, FUZZ_MODULES_RUNS from Makefile.am instead: about 3
    # minutes in all), from the corpora in the tree.
    build build-fuzz CC=clang --enable-fuzzing --enable-asan --enable-ubsan
    say "fuzz run (build-fuzz/)"
    if ! make -s -C build-fuzz fuzz-run FUZZ_RUNS="${FUZZ_RUNS:-250000}"; then
        status=1
    fi
    [ $status -eq 0 ] && say "all tests passed" || say "TESTS FAILED"
    exit $status
    ;;
*)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
