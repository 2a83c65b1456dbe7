#!/usr/bin/env bash
# bench/compare.sh: Roost against Prosody 0.12 and ejabberd 23.01 with
# bench/roostbench, written up in bench/RESULTS.md.
#
#   bench/compare.sh            build tree: ./build (BUILD=... to change)
#
# Starts each server as its own process on 127.0.0.1 (configs from bench/,
# data under a temp dir, ports from BENCH_PORT_BASE; never the system
# services; after each start it waits until the server has used no CPU
# for 0.6 s, servers.sh wait_quiet), provisions the same accounts in
# each, then runs every
# scenario against each server in turn, BENCH_ROUNDS interleaved rounds
# (the server order rotates each round), and stops each server by its pid.
# Each server is restarted before each idle-session scenario so that its
# RSS baseline is a fresh process.  RESULTS.md gets the medians over the
# rounds and Roost's ratio to each peer; the raw RESULT lines are kept in
# bench/results-raw.tsv (commands in bench/results-commands.txt; rerun
# bench/report.py on them to re-render).
#
# Scale knobs (env, defaults in brackets): BENCH_ROUNDS [3]
# BENCH_SERVERS ["roost prosody ejabberd"] BENCH_LOGINS [3000 per variant:
# the server's CPU is read in 10 ms ticks, and Roost's cheapest variant
# costs ~0.2 ms, so 300 logins gave 6 ticks; 3000 give two significant
# digits] BENCH_LOGIN_CONC [50] BENCH_LOGIN_VARIANTS ["none/PLAIN
# none/SCRAM-SHA-1 none/SCRAM-SHA-256 starttls/PLAIN starttls/SCRAM-SHA-1
# starttls/SCRAM-SHA-256 starttls/SCRAM-SHA-256/resume": TLS mode/SASL
# mechanism[/resume]; Prosody's and ejabberd's SCRAM-SHA-256 runs log in
# to their sha256.localhost host, whose accounts store SHA-256
# credentials (servers.sh SRV_S256_DOMAIN); "/resume" (STARTTLS only)
# runs roostbench login --resume: each account offers the newest TLS
# session (ticket) it got on its previous login, as a client with a
# session cache does; its raw lines are tagged resume=1, and report.py
# shows them as their own rows with the share of logins that resumed
# (tls_resumed / (tls_resumed + tls_full); a server that issues or
# accepts no tickets shows 0 %)]
# BENCH_LOGIN_FRESH [1: each login variant on a freshly started server;
# 0: all variants in one server process, in the order above, as before
# 2026-11-26 (Prosody's CPU per login grows with the logins its process
# has served: ~2.6 ms over its first 300 STARTTLS SCRAM-SHA-1 logins,
# ~5.8 ms after 3,300)]
# BENCH_IDLE [1000 sessions] BENCH_PAIRS [50]
# BENCH_WINDOW [20] BENCH_DURATION [8 s per message run] BENCH_RATE [1000]
# BENCH_FAN_USERS [200] BENCH_CONTACTS [150] BENCH_FAN_UPDATES [300]
# BENCH_FAN_LAT [100] BENCH_OUT [bench/RESULTS.md] BENCH_KEEP [unset: the
# temp dir is removed].
#
# Scenario selection: BENCH_SCENARIOS [all: "idle login msg rate fanout
# rlogin offline mam idle15k"], e.g. BENCH_SCENARIOS="rlogin offline"
# bench/compare.sh.  Only what the selected scenarios need is provisioned.
# A selection other than all writes its raw lines to BENCH_RAW [bench/
# results-raw-<scenarios>.tsv] and commands beside it, and does not
# rewrite RESULTS.md (report.py --new prints its sections) unless
# BENCH_OUT is set.  Knobs of the issue 7 scenarios: BENCH_RL_CONTACTS
# [500] BENCH_RL_N [50 logins per account] BENCH_OFF_N [1000]
# BENCH_MAM_FILL [10000] BENCH_MAM_Q [50 queries per kind]
# BENCH_MAM_FILL_TIMEOUT [900 s: a server slower than that keeps the
# archive it had by then, and the fill line says how many]
# BENCH_BIG_IDLE [15000] BENCH_BIG_BASE [5000: the smaller idle run of
# idle15k, for the per-session comparison].
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/servers.sh"

: "${BENCH_ROUNDS:=3}"
: "${BENCH_SERVERS:=roost prosody ejabberd}"
: "${BENCH_LOGINS:=3000}"
: "${BENCH_LOGIN_CONC:=50}"
: "${BENCH_LOGIN_FRESH:=1}"
: "${BENCH_LOGIN_VARIANTS:=none/PLAIN none/SCRAM-SHA-1 none/SCRAM-SHA-256 starttls/PLAIN starttls/SCRAM-SHA-1 starttls/SCRAM-SHA-256 starttls/SCRAM-SHA-256/resume}"
LOGIN_USERS=100     # the login storm cycles over u0..u99
: "${BENCH_IDLE:=1000}"
: "${BENCH_PAIRS:=50}"
: "${BENCH_WINDOW:=20}"
: "${BENCH_DURATION:=8}"
: "${BENCH_RATE:=1000}"
: "${BENCH_FAN_USERS:=200}"
: "${BENCH_CONTACTS:=150}"
: "${BENCH_FAN_UPDATES:=300}"
: "${BENCH_FAN_LAT:=100}"
: "${BENCH_RL_CONTACTS:=500}"
: "${BENCH_RL_N:=50}"
: "${BENCH_OFF_N:=1000}"
: "${BENCH_MAM_FILL:=10000}"
: "${BENCH_MAM_Q:=50}"
: "${BENCH_MAM_FILL_TIMEOUT:=900}"
: "${BENCH_BIG_IDLE:=15000}"
: "${BENCH_BIG_BASE:=5000}"
ALL_SCENARIOS="idle login msg rate fanout rlogin offline mam idle15k"
: "${BENCH_SCENARIOS:=$ALL_SCENARIOS}"
if [ "$BENCH_SCENARIOS" = "$ALL_SCENARIOS" ]; then
    : "${BENCH_OUT:=$BENCH_DIR/RESULTS.md}"
    : "${BENCH_RAW:=$BENCH_DIR/results-raw.tsv}"
else
    : "${BENCH_RAW:=$BENCH_DIR/results-raw-$(echo $BENCH_SCENARIOS | tr ' ' '-').tsv}"
fi
RAW=$BENCH_RAW
RB=$BUILD/bench/roostbench
want() { case " $BENCH_SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }

# login_variant V: split a BENCH_LOGIN_VARIANTS entry TLSMODE/MECH[/resume]
# into V_TLS, V_MECH and V_RESUME (1 or empty); non-zero if malformed.
login_variant() {
    local extra
    IFS=/ read -r V_TLS V_MECH V_RESUME extra <<< "$1"
    case $V_TLS in none|starttls) ;; *) return 1 ;; esac
    [ -n "$V_MECH" ] && [ -z "$extra" ] || return 1
    case $V_RESUME in
        '') ;;
        resume) [ "$V_TLS" = starttls ] || return 1; V_RESUME=1 ;;
        *) return 1 ;;
    esac
}
if want login; then
    for v in $BENCH_LOGIN_VARIANTS; do
        login_variant "$v" || { say "BENCH_LOGIN_VARIANTS: bad entry '$v' (TLSMODE/MECH[/resume], resume with starttls only)"; exit 1; }
    done
fi

for f in "$BUILD/roostd" "$RB"; do
    [ -x "$f" ] || { say "$f is not built (make -C $BUILD)"; exit 1; }
done
command -v prosody >/dev/null || { say "prosody is not installed"; exit 1; }
if ! command -v erl >/dev/null || [ ! -d /usr/lib/x86_64-linux-gnu/ejabberd-23.01 ]; then
    say "installing ejabberd (Debian package; its service is not started)"
    # Keep the package's own service from starting: only our process runs.
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends ejabberd >/dev/null
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
fi
# The servers inherit this limit (servers.sh): as high as allowed.
ulimit -n "$(ulimit -Hn)"
NEED_FD=$BENCH_IDLE
want idle15k && NEED_FD=$BENCH_BIG_IDLE
[ "$(ulimit -n)" -ge $((NEED_FD + 200)) ] ||
    say "open-file limit $(ulimit -n) < $((NEED_FD + 200)): idle runs may stop short"


WORK=$(mktemp -d /tmp/roostbench-XXXXXX)
cleanup() {
    stop_server
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
LOG=$WORK/bench.log
CMDS=${RAW%.tsv}-commands.txt
[ "$RAW" = "$BENCH_DIR/results-raw.tsv" ] && CMDS=$BENCH_DIR/results-commands.txt
: > "$RAW.tmp"
: > "$CMDS"
T0=$(date +%s)

NUSERS=0
want idle && NUSERS=$BENCH_IDLE
want idle15k && [ "$BENCH_BIG_IDLE" -gt "$NUSERS" ] && NUSERS=$BENCH_BIG_IDLE
if want login || want msg || want rate; then
    [ $((2 * BENCH_PAIRS)) -gt "$NUSERS" ] && NUSERS=$((2 * BENCH_PAIRS))
    [ "$NUSERS" -lt 100 ] && NUSERS=100
fi

start_mam() { # start_mam SERVER: the same, plus its XEP-0313 module
    CUR=$1
    SRV_MAM=1 "start_$1" "$WORK/$1" || { say "$1 (mam) did not start"; tail -20 "$WORK/$1"/*.log "$WORK/$1"/*.out 2>/dev/null; exit 1; }
    wait_quiet
}

start() { # start SERVER, and wait until it is done starting (servers.sh)
    CUR=$1
    "start_$1" "$WORK/$1" || { say "$1 did not start"; tail -20 "$WORK/$1"/*.log "$WORK/$1"/*.out 2>/dev/null; exit 1; }
    wait_quiet
}

# rb ROUND ARGS...: one roostbench run against the current server; its
# RESULT lines go to the raw table, tagged with server and round (and
# set=$RB_SET when that is set: idle15k's idle runs, kept apart from
# scenario 2's in report.py; domain=$RB_DOMAIN when that is set: the
# login runs against a peer's sha256.localhost; resume=$RB_RESUME when
# that is set: the login runs with --resume, kept apart in report.py).
rb() {
    local round=$1 out
    shift
    echo "roostbench $* --pid \$PID   # $CUR" >> "$CMDS"
    out=$("$RB" "$@" --pid "$SRV_PID" 2>>"$LOG") || say "$CUR: roostbench $1 exited non-zero (see the log)"
    printf '%s\n' "$out" | grep '^RESULT ' \
        | sed "s/^RESULT /server=$CUR round=$round ${RB_SET:+set=$RB_SET }${RB_DOMAIN:+domain=$RB_DOMAIN }${RB_RESUME:+resume=$RB_RESUME }/" \
        | tee -a "$RAW.tmp" | cut -c1-160 >&2 || true
}

# Prosody's roster files for the fan-out users (its internal storage
# format, as prosodyctl and the migrator write it), written while it is
# stopped: making 200 x 150 subscriptions through the protocol takes
# Prosody many minutes, since it rewrites the whole roster on each change.
prosody_rosters() {
    local dir=$1/data/localhost/roster
    mkdir -p "$dir"
    awk -v U="$BENCH_FAN_USERS" -v K="$BENCH_CONTACTS" -v D="$dir" 'BEGIN {
        half = int(K / 2)
        for (i = 0; i < U; i++) {
            f = D "/f" i ".dat"
            printf "return {\n\t[false] = {\n\t\t[\"pending\"] = {};\n\t\t[\"version\"] = 1;\n\t};\n" > f
            for (k = 0; k < K; k++) {
                d = k < half ? k + 1 : -(k - half + 1)
                j = ((i + d) % U + U) % U
                printf "\t[\"f%d@localhost\"] = {\n\t\t[\"groups\"] = {};\n\t\t[\"subscription\"] = \"both\";\n\t};\n", j > f
            }
            printf "};\n" > f
            close(f)
        }
    }'
}

# The same for the roster-login account r0: mutual subscriptions with
# r1..rK (and r0 in each of theirs); r<K+1> has none.
prosody_star_roster() {
    local dir=$1/data/localhost/roster
    mkdir -p "$dir"
    awk -v K="$BENCH_RL_CONTACTS" -v D="$dir" 'BEGIN {
        hd = "return {\n\t[false] = {\n\t\t[\"pending\"] = {};\n\t\t[\"version\"] = 1;\n\t};\n"
        it = "\t[\"%s@localhost\"] = {\n\t\t[\"groups\"] = {};\n\t\t[\"subscription\"] = \"both\";\n\t};\n"
        f = D "/r0.dat"
        printf "%s", hd > f
        for (k = 1; k <= K; k++) printf it, "r" k > f
        printf "};\n" > f
        close(f)
        for (k = 1; k <= K; k++) {
            f = D "/r" k ".dat"
            printf "%s", hd > f
            printf it, "r0" > f
            printf "};\n" > f
            close(f)
        }
    }'
}

provision() { # provision SERVER: the accounts and rosters the scenarios need
    local s=$1
    say "$s: provisioning"
    start "$s"
    if [ "$NUSERS" -gt 0 ]; then
        rb 0 register -n "$NUSERS" --conc 50 --port "$SRV_PORT" --timeout 1800
    fi
    if want login && [ "$SRV_S256_DOMAIN" != localhost ]; then
        # the SCRAM-SHA-256 login accounts: the peer's SHA-256 host
        rb 0 register -n "$LOGIN_USERS" --conc 50 --port "$SRV_PORT" \
            --domain "$SRV_S256_DOMAIN" --timeout 900
    fi
    if want fanout; then
        rb 0 register -n "$BENCH_FAN_USERS" --prefix f --conc 50 --port "$SRV_PORT" --timeout 900
    fi
    if want rlogin; then
        rb 0 register -n $((BENCH_RL_CONTACTS + 2)) --prefix r --conc 50 --port "$SRV_PORT" --timeout 900
    fi
    if want offline; then rb 0 register -n 2 --prefix o --conc 2 --port "$SRV_PORT"; fi
    if want mam; then rb 0 register -n 11 --prefix m --conc 11 --port "$SRV_PORT"; fi
    if [ "$s" = prosody ]; then
        stop_server
        if want fanout; then prosody_rosters "$WORK/$s"; fi
        if want rlogin; then prosody_star_roster "$WORK/$s"; fi
    else
        if want fanout; then
            say "$s: $BENCH_FAN_USERS x $BENCH_CONTACTS mutual subscriptions (protocol)"
            rb 0 roster --prefix f --users "$BENCH_FAN_USERS" --contacts "$BENCH_CONTACTS" \
                --port "$SRV_PORT" --timeout 900
        fi
        if want rlogin; then
            say "$s: r0 x $BENCH_RL_CONTACTS mutual subscriptions (protocol)"
            rb 0 roster --star --prefix r --contacts "$BENCH_RL_CONTACTS" \
                --users $((BENCH_RL_CONTACTS + 1)) --port "$SRV_PORT" --timeout 900
        fi
        stop_server
    fi
    if want mam; then
        # The archive is filled once (10k messages through the server,
        # archived for sender and recipient); the rounds only query it.
        start_mam "$s"
        rb 0 mam --prefix m --partners 10 --fill "$BENCH_MAM_FILL" --queries 0 \
            --port "$SRV_PORT" --timeout "$BENCH_MAM_FILL_TIMEOUT"
        stop_server
    fi
}

run_round() { # run_round SERVER ROUND
    local s=$1 r=$2 v tls mech port n dom res
    say "round $r: $s"
    if want idle; then
        start "$s"
        rb "$r" idle -n "$BENCH_IDLE" --conc 100 --port "$SRV_PORT" --hold 3
        stop_server
        start "$s"
        rb "$r" idle -n "$BENCH_IDLE" --conc 100 --port "$SRV_PLAIN_PORT" --tls none --hold 3
        stop_server
    fi
    if want idle15k; then
        # fresh process per run; the smaller run, same conditions, is the
        # per-session baseline
        for n in "$BENCH_BIG_BASE" "$BENCH_BIG_IDLE"; do
            for tls in starttls none; do
                start "$s"
                check_nofile $((n + 100)) || true
                port=$SRV_PORT
                [ "$tls" = none ] && port=$SRV_PLAIN_PORT
                RB_SET=idle15k rb "$r" idle -n "$n" --conc 100 --port "$port" \
                    --tls "$tls" --hold 3 --timeout 900
                stop_server
            done
        done
    fi
    if want rlogin || want offline; then
        start "$s"
        if want rlogin; then
            rb "$r" rlogin -n "$BENCH_RL_N" --prefix r --first 0 --port "$SRV_PORT"
            rb "$r" rlogin -n "$BENCH_RL_N" --prefix r --first $((BENCH_RL_CONTACTS + 1)) \
                --port "$SRV_PORT"
        fi
        if want offline; then rb "$r" offline -n "$BENCH_OFF_N" --prefix o --port "$SRV_PORT"; fi
        stop_server
    fi
    if want mam; then
        start_mam "$s"
        rb "$r" mam --prefix m --partners 10 --queries "$BENCH_MAM_Q" --port "$SRV_PORT"
        stop_server
    fi
    if want login; then
        # BENCH_LOGIN_FRESH=1: a freshly started server per variant, so
        # that no variant pays for the logins before it (Prosody's CPU per
        # login grows with the logins its process has served)
        [ "$BENCH_LOGIN_FRESH" = 1 ] || start "$s"
        for v in $BENCH_LOGIN_VARIANTS; do
            login_variant "$v"
            tls=$V_TLS mech=$V_MECH res=()
            [ -n "$V_RESUME" ] && res=(--resume)
            if [ "$BENCH_LOGIN_FRESH" = 1 ]; then start "$s"; fi
            port=$SRV_PORT
            [ "$tls" = none ] && port=$SRV_PLAIN_PORT
            dom=()     # localhost, roostbench's default domain
            if [ "$mech" = SCRAM-SHA-256 ] && [ "$SRV_S256_DOMAIN" != localhost ]; then
                dom=(--domain "$SRV_S256_DOMAIN")
            fi
            RB_DOMAIN=${dom[1]:-} RB_RESUME=$V_RESUME rb "$r" login -n "$BENCH_LOGINS" \
                --conc "$BENCH_LOGIN_CONC" --users "$LOGIN_USERS" \
                --port "$port" --tls "$tls" --mech "$mech" "${dom[@]}" "${res[@]}"
            if [ "$BENCH_LOGIN_FRESH" = 1 ]; then stop_server; fi
        done
        stop_server
    fi
    want msg || want rate || want fanout || return 0
    start "$s"
    want msg && rb "$r" msg --pairs "$BENCH_PAIRS" --window "$BENCH_WINDOW" --duration "$BENCH_DURATION" \
        --port "$SRV_PORT"
    want rate && rb "$r" rate --pairs "$BENCH_PAIRS" --rate "$BENCH_RATE" --duration "$BENCH_DURATION" \
        --port "$SRV_PORT"
    want fanout && rb "$r" fanout --prefix f --users "$BENCH_FAN_USERS" --contacts "$BENCH_CONTACTS" \
        --updates "$BENCH_FAN_UPDATES" --lat-updates "$BENCH_FAN_LAT" --port "$SRV_PORT"
    stop_server
}

read -r -a SERVERS <<< "$BENCH_SERVERS"
for s in "${SERVERS[@]}"; do provision "$s"; done
T1=$(date +%s)
n=${#SERVERS[@]}
for r in $(seq 1 "$BENCH_ROUNDS"); do
    for i in $(seq 0 $((n - 1))); do
        run_round "${SERVERS[$(((i + r - 1) % n))]}" "$r"
    done
done
T2=$(date +%s)
mv "$RAW.tmp" "$RAW"
say "provisioning $((T1 - T0)) s, rounds $((T2 - T1)) s"
if [ -z "${BENCH_OUT:-}" ]; then
    say "raw results in $RAW (selected scenarios: RESULTS.md not rewritten)"
    python3 "$BENCH_DIR/report.py" --new --raw "$RAW" --commands "$CMDS" \
        --provision-s $((T1 - T0)) --rounds-s $((T2 - T1)) --build "$BUILD" || true
    exit 0
fi
python3 "$BENCH_DIR/report.py" --raw "$RAW" --commands "$CMDS" \
    --provision-s $((T1 - T0)) --rounds-s $((T2 - T1)) --build "$BUILD" > "$BENCH_OUT.tmp"
mv "$BENCH_OUT.tmp" "$BENCH_OUT"
say "wrote $BENCH_OUT"
