# bench/servers.sh: start and stop the servers bench/compare.sh measures
# (sourced, not run).  Each runs as its own foreground process on
# 127.0.0.1 with its config and data under a directory of ours; never the
# system services.  start_roost/start_prosody/start_ejabberd DIR set
# SRV_PID (the process whose /proc the bench reads), SRV_PORT (STARTTLS
# offered), SRV_PLAIN_PORT (where a client may stay in plaintext; the
# same port for Prosody and ejabberd, which do not require TLS in these
# configs) and SRV_S256_DOMAIN (the domain whose accounts log in with
# SCRAM-SHA-256: Roost offers it on localhost's accounts; Prosody and
# ejabberd store one SCRAM hash per host, SHA-1 on localhost, so their
# configs have a second host, sha256.localhost, storing SHA-256, with its
# own accounts).  stop_server stops SRV_PID; wait_quiet waits until a
# started server has finished starting (no CPU for 0.6 s).
#
# Env: BUILD (Roost build tree, default <top>/build), BENCH_PORT_BASE
# (default 15222: Roost +0/+1, Prosody +10, ejabberd +20), SRV_MAM (set:
# the server also runs its XEP-0313 archive module, archiving every
# message; for the mam scenario only).
#
# Open files: each server inherits the caller's RLIMIT_NOFILE (compare.sh
# raises the soft limit to the hard one, 20000 here); ejabberd is also
# bounded by ERL_MAX_PORTS (32000 below).  check_nofile logs the limit
# the server process actually has.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(dirname "$BENCH_DIR")
: "${BUILD:=$TOP/build}"
: "${BENCH_PORT_BASE:=15222}"

say() { printf '==> %s\n' "$*" >&2; }

# wait_port PORT: until something accepts on 127.0.0.1:PORT (30 s).
wait_port() {
    local i
    for i in $(seq 1 300); do
        kill -0 "$SRV_PID" 2>/dev/null || { say "server exited"; return 1; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    say "port $1 not open after 30 s"
    return 1
}

# make_cert DIR: one self-signed ECDSA P-256 certificate for "localhost"
# (and "sha256.localhost", the peers' SCRAM-SHA-256 host), made the same
# way for the three servers so that TLS costs the same key type.
make_cert() {
    [ -f "$1/localhost.crt" ] && return 0
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -days 30 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,DNS:sha256.localhost \
        -keyout "$1/localhost.key" -out "$1/localhost.crt" 2>/dev/null
}

subst() { # subst TEMPLATE OUT VAR=VALUE...
    local in=$1 out=$2 kv args=()
    shift 2
    for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${args[@]}" "$in" > "$out"
}

start_roost() {
    local dir=$1
    mkdir -p "$dir/data"
    make_cert "$dir"
    SRV_PORT=$BENCH_PORT_BASE
    SRV_PLAIN_PORT=$((BENCH_PORT_BASE + 1))
    SRV_S256_DOMAIN=localhost
    subst "$BENCH_DIR/roost.conf.in" "$dir/roost.conf" \
        DATA_DIR="$dir/data" MODULES_DIR="$BUILD/modules/.libs" \
        MAM="${SRV_MAM:+, \"mam\"}" \
        PORT=$SRV_PORT PLAIN_PORT=$SRV_PLAIN_PORT \
        CERT="$dir/localhost.crt" KEY="$dir/localhost.key"
    "$BUILD/roostd" -c "$dir/roost.conf" >>"$dir/roost.log" 2>&1 &
    SRV_PID=$!
    wait_port $SRV_PORT && wait_port $SRV_PLAIN_PORT
}

start_prosody() {
    local dir=$1
    mkdir -p "$dir/data" "$dir/certs"
    make_cert "$dir/certs"
    SRV_PORT=$((BENCH_PORT_BASE + 10))
    SRV_PLAIN_PORT=$SRV_PORT
    SRV_S256_DOMAIN=sha256.localhost
    subst "$BENCH_DIR/prosody.cfg.lua.in" "$dir/prosody.cfg.lua" \
        DIR="$dir" PORT=$SRV_PORT MAM="${SRV_MAM:+, \"mam\"}"
    prosody --config "$dir/prosody.cfg.lua" >>"$dir/prosody.out" 2>&1 &
    SRV_PID=$!
    wait_port $SRV_PORT
}

start_ejabberd() {
    local dir=$1 mam=
    [ -n "${SRV_MAM:-}" ] && mam='mod_mam: {default: always}'
    mkdir -p "$dir/spool" "$dir/logs"
    make_cert "$dir"
    cat "$dir/localhost.crt" "$dir/localhost.key" > "$dir/ejabberd.pem"
    SRV_PORT=$((BENCH_PORT_BASE + 20))
    SRV_PLAIN_PORT=$SRV_PORT
    SRV_S256_DOMAIN=sha256.localhost
    subst "$BENCH_DIR/ejabberd.yml.in" "$dir/ejabberd.yml" \
        DIR="$dir" PORT=$SRV_PORT MAM="$mam"
    # What `ejabberdctl foreground` runs, minus the su to the ejabberd
    # user and the Erlang distribution (no node name: no epmd to leave
    # behind).  erl execs erlexec, which execs beam.smp: $! is the VM.
    (cd "$dir/spool" &&
        exec env ERL_LIBS=/usr/lib/x86_64-linux-gnu \
        EJABBERD_CONFIG_PATH="$dir/ejabberd.yml" \
        EJABBERD_LOG_PATH="$dir/logs/ejabberd.log" \
        ERL_CRASH_DUMP="$dir/logs/erl_crash.dump" ERL_MAX_PORTS=32000 \
        ERL_MAX_ETS_TABLES=1400 \
        erl +K true +P 250000 -env ERL_CRASH_DUMP_BYTES 0 \
        -mnesia dir "\"$dir/spool\"" -s ejabberd -noinput \
        >>"$dir/ejabberd.out" 2>&1) &
    SRV_PID=$!
    wait_port $SRV_PORT
}

# wait_quiet: until SRV_PID has used no CPU for 0.6 s (at most 30 s).
# A server may still be starting when its port opens: ejabberd spends
# ~1 s of CPU (~100 ticks) after its c2s listener accepts, which would
# otherwise land in the first measurement after the start.
wait_quiet() {
    local i t last= quiet=0
    for i in $(seq 1 150); do
        t=$(awk '{print $14 + $15}' "/proc/$SRV_PID/stat" 2>/dev/null) || return 1
        if [ "$t" = "$last" ]; then
            quiet=$((quiet + 1))
            [ "$quiet" -ge 3 ] && return 0
        else
            quiet=0
        fi
        last=$t
        sleep 0.2
    done
    say "pid $SRV_PID still busy 30 s after its start"
    return 0
}

# check_nofile NEED: logs SRV_PID's open-file limit; returns 1 (with a
# note) when it is below NEED.
check_nofile() {
    local lim
    lim=$(awk '/^Max open files/ {print $4}' "/proc/$SRV_PID/limits" 2>/dev/null)
    say "pid $SRV_PID: open-file limit ${lim:-?}"
    if [ -n "$lim" ] && [ "$lim" != unlimited ] && [ "$lim" -lt "$1" ]; then
        say "pid $SRV_PID: limit $lim is below the $1 this run needs"
        return 1
    fi
    return 0
}

stop_server() {
    local i
    [ -n "${SRV_PID:-}" ] || return 0
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for i in $(seq 1 200); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SRV_PID" 2>/dev/null; then
        say "pid $SRV_PID ignored SIGTERM for 20 s: SIGKILL"
        kill -KILL "$SRV_PID" 2>/dev/null || true
    fi
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=
}
