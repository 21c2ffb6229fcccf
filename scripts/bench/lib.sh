# shellcheck shell=bash
# Helpers shared by the benchmark scripts of scripts/bench/ (sourced, not run):
# free ports, a private mosquitto or embedded broker, the simulator, medians,
# /proc readings, and cleanup of every process the script started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BOT=${BOT:-target/release/bot}
SIM=${SIM:-target/release/bot-sim}
RUNS=${RUNS:-5}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bot-bench.XXXXXX")
PIDS=()

[ -x "$BOT" ] || { echo "missing $BOT: cargo build --release -j2 -p bot" >&2; exit 2; }

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "[$(date +%T)] $*" >&2; }

# A TCP port free on 127.0.0.1 right now (the kernel picks it).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts connections on 127.0.0.1:$1 (at most $2 s).
wait_port() {
    local port=$1 i
    for ((i = 0; i < ${2:-10} * 20; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

# Waits until file $1 has a line matching $2 (at most $3 s); prints that line.
wait_line() {
    local file=$1 pattern=$2 i
    for ((i = 0; i < ${3:-10} * 10; i++)); do
        if grep -m1 -- "$pattern" "$file" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for '$pattern' in $file:" >&2
    cat "$file" >&2
    return 1
}

# Starts a private mosquitto on a free port; extra config lines as arguments.
# Sets BROKER_URL and BROKER_PID.
start_mosquitto() {
    local port conf attempt line
    for attempt in 1 2 3; do
        port=$(free_port)
        conf="$WORK/mosquitto-$port.conf"
        {
            echo "listener $port 127.0.0.1"
            echo "allow_anonymous true"
            echo "persistence false"
            for line in "$@"; do echo "$line"; done
        } >"$conf"
        "$MOSQUITTO" -c "$conf" >"$WORK/mosquitto-$port.log" 2>&1 &
        BROKER_PID=$!
        PIDS+=("$BROKER_PID")
        if wait_port "$port" 10 && kill -0 "$BROKER_PID" 2>/dev/null; then
            BROKER_URL="mqtt://127.0.0.1:$port"
            log "mosquitto $BROKER_PID on $BROKER_URL ($*)"
            return 0
        fi
        stop "$BROKER_PID" # lost the race for the port: try another
    done
    echo "cannot start mosquitto" >&2
    return 1
}

# Starts the embedded broker (`bot up --no-agent`) on port 0.
# Sets BROKER_URL and BROKER_PID.
start_embedded() {
    local out="$WORK/up-$RANDOM.out" line
    "$BOT" up $( "$BOT" up --help 2>/dev/null | grep -q -- '--insecure' && echo --insecure ) \
        --no-agent --no-server --no-ws --listen 127.0.0.1:0 >"$out" 2>"$out.err" &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    line=$(wait_line "$out" '^listening: mqtt://' 30)
    BROKER_URL=${line#listening: }
    log "embedded broker $BROKER_PID on $BROKER_URL"
}

# Starts $1 simulated agents on BROKER_URL and waits until all are subscribed.
# Sets SIM_PID.
start_sim() {
    local n=$1 out="$WORK/sim-$RANDOM.out"
    [ -x "$SIM" ] || { echo "missing $SIM: cargo build --release -j2 -p bot-bench" >&2; exit 2; }
    "$SIM" agents --broker "$BROKER_URL" --count "$n" >"$out" 2>"$out.err" &
    SIM_PID=$!
    PIDS+=("$SIM_PID")
    wait_line "$out" '^ready: ' 300 >/dev/null
    log "bot-sim $SIM_PID: $n agents subscribed ($(tail -n1 "$out.err"))"
}

# Stops one process started here (SIGTERM, then waits for it).
stop() {
    local p keep=()
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    # Forget it, so that cleanup never signals a recycled pid.
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# Median of the numbers on stdin (mean of the middle two for an even count).
median() {
    sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# Field $2 (e.g. VmRSS) of /proc/$1/status, in kB.
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# Field $2 (e.g. Anonymous) of /proc/$1/smaps_rollup, in kB.
smaps_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/smaps_rollup"; }

# utime + stime of process $1, in clock ticks (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() { [ -r "/proc/$1/stat" ] || { echo 0; return; }; sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# Time on CPU of process $1 in nanoseconds (first field of /proc/PID/schedstat).
cpu_ns() { awk '{ print $1 }' "/proc/$1/schedstat"; }

# Every thread's time on CPU of process $1 in nanoseconds: schedstat is per thread.
cpu_ns_all() {
    local t sum=0
    for t in /proc/"$1"/task/*/schedstat; do
        [ -r "$t" ] && sum=$((sum + $(awk '{ print $1 }' "$t")))
    done
    echo "$sum"
}

# The machine, for the record.
machine() {
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "nproc: $(nproc)"
    echo "kernel: $(uname -r)"
    echo "cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "mosquitto: $("$MOSQUITTO" -h 2>/dev/null | awk 'NR == 1 { print $3 }')"
    echo "rustc: $(rustc --version 2>/dev/null || echo unknown)"
    echo "bot: $("$BOT" --version) ($(stat -c %s "$BOT") bytes)"
    echo "load: $(cut -d" " -f1-3 /proc/loadavg)"
}
