#!/usr/bin/env bash
# bench/compare.sh: Roost against Prosody 0.12 and ejabberd 23.01 with
# bench/roostbench, written up in bench/RESULTS.md.
#
#   bench/compare.sh            build tree: ./build (BUILD=... to change)
#
# Starts each server as its own process on 127.0.0.1 (configs from bench/,
# data under a temp dir, ports from BENCH_PORT_BASE; never the system
# services), provisions the same accounts in each, then runs every
# scenario against each server in turn, BENCH_ROUNDS interleaved rounds
# (the server order rotates each round), and stops each server by its pid.
# Each server is restarted before each idle-session scenario so that its
# RSS baseline is a fresh process.  RESULTS.md gets the medians over the
# rounds and Roost's ratio to each peer; the raw RESULT lines are kept in
# bench/results-raw.tsv (commands in bench/results-commands.txt; rerun
# bench/report.py on them to re-render).
#
# Scale knobs (env, defaults in brackets): BENCH_ROUNDS [3]
# BENCH_SERVERS ["roost prosody ejabberd"] BENCH_LOGINS [300 per variant]
# BENCH_LOGIN_CONC [50] BENCH_IDLE [1000 sessions] BENCH_PAIRS [50]
# BENCH_WINDOW [20] BENCH_DURATION [8 s per message run] BENCH_RATE [1000]
# BENCH_FAN_USERS [200] BENCH_CONTACTS [150] BENCH_FAN_UPDATES [300]
# BENCH_FAN_LAT [100] BENCH_OUT [bench/RESULTS.md] BENCH_KEEP [unset: the
# temp dir is removed].
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/servers.sh"

: "${BENCH_ROUNDS:=3}"
: "${BENCH_SERVERS:=roost prosody ejabberd}"
: "${BENCH_LOGINS:=300}"
: "${BENCH_LOGIN_CONC:=50}"
: "${BENCH_IDLE:=1000}"
: "${BENCH_PAIRS:=50}"
: "${BENCH_WINDOW:=20}"
: "${BENCH_DURATION:=8}"
: "${BENCH_RATE:=1000}"
: "${BENCH_FAN_USERS:=200}"
: "${BENCH_CONTACTS:=150}"
: "${BENCH_FAN_UPDATES:=300}"
: "${BENCH_FAN_LAT:=100}"
: "${BENCH_OUT:=$BENCH_DIR/RESULTS.md}"
RAW=$BENCH_DIR/results-raw.tsv
RB=$BUILD/bench/roostbench

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
[ "$(ulimit -n)" -ge $((BENCH_IDLE + 200)) ] || ulimit -n $((BENCH_IDLE + 1000))

WORK=$(mktemp -d /tmp/roostbench-XXXXXX)
cleanup() {
    stop_server
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
LOG=$WORK/bench.log
CMDS=$BENCH_DIR/results-commands.txt
: > "$RAW.tmp"
: > "$CMDS"
T0=$(date +%s)

NUSERS=$BENCH_IDLE
[ $((2 * BENCH_PAIRS)) -gt "$NUSERS" ] && NUSERS=$((2 * BENCH_PAIRS))
[ "$NUSERS" -lt 100 ] && NUSERS=100

start() { # start SERVER
    CUR=$1
    "start_$1" "$WORK/$1" || { say "$1 did not start"; tail -20 "$WORK/$1"/*.log "$WORK/$1"/*.out 2>/dev/null; exit 1; }
}

# rb ROUND ARGS...: one roostbench run against the current server; its
# RESULT lines go to the raw table, tagged with server and round.
rb() {
    local round=$1 out
    shift
    echo "roostbench $* --pid \$PID   # $CUR" >> "$CMDS"
    out=$("$RB" "$@" --pid "$SRV_PID" 2>>"$LOG") || say "$CUR: roostbench $1 exited non-zero (see the log)"
    printf '%s\n' "$out" | grep '^RESULT ' | sed "s/^RESULT /server=$CUR round=$round /" \
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

provision() { # provision SERVER: accounts u*, f*; fan-out rosters
    local s=$1
    say "$s: provisioning $NUSERS + $BENCH_FAN_USERS accounts"
    start "$s"
    rb 0 register -n "$NUSERS" --conc 50 --port "$SRV_PORT" --timeout 900
    rb 0 register -n "$BENCH_FAN_USERS" --prefix f --conc 50 --port "$SRV_PORT" --timeout 900
    if [ "$s" = prosody ]; then
        stop_server
        prosody_rosters "$WORK/$s"
    else
        say "$s: $BENCH_FAN_USERS x $BENCH_CONTACTS mutual subscriptions (protocol)"
        rb 0 roster --prefix f --users "$BENCH_FAN_USERS" --contacts "$BENCH_CONTACTS" \
            --port "$SRV_PORT" --timeout 900
        stop_server
    fi
}

run_round() { # run_round SERVER ROUND
    local s=$1 r=$2 v tls mech port
    say "round $r: $s"
    start "$s"
    rb "$r" idle -n "$BENCH_IDLE" --conc 100 --port "$SRV_PORT" --hold 3
    stop_server
    start "$s"
    rb "$r" idle -n "$BENCH_IDLE" --conc 100 --port "$SRV_PLAIN_PORT" --tls none --hold 3
    for v in none/PLAIN none/SCRAM-SHA-1 starttls/PLAIN starttls/SCRAM-SHA-1 starttls/SCRAM-SHA-256; do
        tls=${v%/*} mech=${v#*/}
        port=$SRV_PORT
        [ "$tls" = none ] && port=$SRV_PLAIN_PORT
        rb "$r" login -n "$BENCH_LOGINS" --conc "$BENCH_LOGIN_CONC" --users 100 \
            --port "$port" --tls "$tls" --mech "$mech"
    done
    rb "$r" msg --pairs "$BENCH_PAIRS" --window "$BENCH_WINDOW" --duration "$BENCH_DURATION" \
        --port "$SRV_PORT"
    rb "$r" rate --pairs "$BENCH_PAIRS" --rate "$BENCH_RATE" --duration "$BENCH_DURATION" \
        --port "$SRV_PORT"
    rb "$r" fanout --prefix f --users "$BENCH_FAN_USERS" --contacts "$BENCH_CONTACTS" \
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
python3 "$BENCH_DIR/report.py" --raw "$RAW" --commands "$CMDS" \
    --provision-s $((T1 - T0)) --rounds-s $((T2 - T1)) --build "$BUILD" > "$BENCH_OUT.tmp"
mv "$BENCH_OUT.tmp" "$BENCH_OUT"
say "wrote $BENCH_OUT"
