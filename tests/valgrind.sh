#!/bin/sh
# tests/valgrind.sh: integration runners with roostd under valgrind (issue 6).
#
#   tests/valgrind.sh [-b BUILD_DIR] [RUNNER...]
#
# Runs each runner (tests/integration/<name>.sh) against the roostd,
# roostctl and modules of BUILD_DIR (default build-vg: a plain build, no
# sanitizers; valgrind and ASan do not mix), with roostd started as
#
#   valgrind --error-exitcode=99 --leak-check=full
#            --errors-for-leak-kinds=definite ...
#
# through roosttest.py's ROOSTD_WRAPPER, and every timeout of the runners
# multiplied by ROOSTTEST_TIMEOUT_SCALE (default 4).  Each roostd process
# writes its own valgrind log, kept in BUILD_DIR/valgrind/<runner>.<pid>.log.
# Fails when a runner fails or any log is not empty (valgrind runs with -q,
# so it writes only errors: memcheck errors and definite leaks), and prints
# those logs.
# Suppressions (library false positives only, each with its reason) are in
# tests/valgrind.supp.
#
# VALGRIND_EXTRA adds valgrind options (e.g. --track-origins=yes to find
# where an uninitialised value came from: about 1.5x slower).
#
# The default runner set fits in about 5 minutes on a 2-core machine
# (measured 2026-11-26 with the other core busy: 4 min 15 s in all;
# seconds per runner: sasl2 9, component 8, anon 11, mam 9, csi 25, pep 19,
# vcard_register 22, push 16, register 18, privacy 34, admin 22,
# offline 30, badinput 28, roostctl 5).  Left out for time, clean under
# valgrind: carbons (57 s), run (121 s, of which 110 s is the runner's
# own waiting, as without valgrind), sm (67 s), lifecycle (47 s),
# crash (76 s).  Left out because they fail under valgrind for
# reasons of their own: limits (77 s; slow_reader_is_cut_off measures the
# server's RSS, which valgrind inflates) and ops (20 s; its privilege-drop
# tests read every thread's uid, and under valgrind setresuid does not
# reach all threads; its memcheck report, a stat buffer gcc -O2 tested
# before lstat's result in core/main.c, is fixed: the logs are empty).
# s2s and s2s_pkix were not measured (peer servers).  Name any of them on
# the command line to run them.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$(pwd)
B=$TOP/build-vg
if [ "${1:-}" = "-b" ]; then
    B=$(cd "$2" && pwd) || exit 1
    shift 2
fi
DEFAULT_RUNNERS="sasl2 component anon mam csi pep vcard_register push register
    privacy admin offline badinput roostctl"
RUNNERS=${*:-${VALGRIND_RUNNERS:-$DEFAULT_RUNNERS}}

command -v valgrind >/dev/null 2>&1 || {
    echo "valgrind.sh: valgrind not installed (apt-get install valgrind)" >&2
    exit 1
}
for f in "$B/roostd" "$B/roostctl"; do
    [ -x "$f" ] || { echo "valgrind.sh: $f not built" >&2; exit 1; }
done

VGDIR=$B/valgrind
rm -rf "$VGDIR"
mkdir -p "$VGDIR"

status=0
for r in $RUNNERS; do
    script=$TOP/tests/integration/$r.sh
    [ -f "$script" ] || { echo "valgrind.sh: no runner $script" >&2; status=1; continue; }
    start=$(date +%s)
    ROOSTD=$B/roostd ROOSTCTL=$B/roostctl \
    ROOST_MODULES_DIR=$B/modules/.libs ROOST_SRCDIR=$TOP \
    ROOST_INTEROP_NO_APT=1 \
    ROOSTTEST_TIMEOUT_SCALE=${ROOSTTEST_TIMEOUT_SCALE:-4} \
    ROOSTD_WRAPPER="valgrind -q --vgdb=no --error-exitcode=99 --leak-check=full \
--errors-for-leak-kinds=definite --show-leak-kinds=definite \
--num-callers=30 ${VALGRIND_EXTRA:-} \
--suppressions=$TOP/tests/valgrind.supp \
--log-file=$VGDIR/$r.%p.log" \
        sh "$script" >"$VGDIR/$r.out" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    bad=""
    for log in "$VGDIR/$r".*.log; do
        [ -f "$log" ] || continue
        # -q: a clean run leaves an empty log; anything in it is a report.
        if [ -s "$log" ]; then bad="$bad $log"; fi
    done
    if [ $rc -ne 0 ] || [ -n "$bad" ]; then
        status=1
        echo "FAIL $r (${secs}s, runner exit $rc)"
        [ $rc -ne 0 ] && tail -n 30 "$VGDIR/$r.out" | sed 's/^/    /'
        for log in $bad; do
            echo "  valgrind: $log"
            sed 's/^/    /' "$log" | head -n 200
        done
    else
        echo "PASS $r (${secs}s, $(ls "$VGDIR/$r".*.log 2>/dev/null | wc -l) roostd processes)"
    fi
done
exit $status
