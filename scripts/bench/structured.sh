#!/usr/bin/env bash
# Structured-protocol figures (docs/benchmarks.md, "Structured fan-out"):
#  - `bot ping` (structured: discovery from retained status, one broadcast
#    request, replies on a private topic) to N real agents simulated in one
#    process (crates/bot-agent/examples/fleet.rs: N × `bot_agent::run`, each
#    with its own MQTT connection), time to the last reply as `bot ping`
#    reports it, and the whole command's wall time (process start to exit),
#    median of RUNS;
#  - `bot run -- true` on the same agents (N <= RUN_MAX): wall time of the
#    whole command (connect, discovery, request, 1,000 real `true` processes,
#    last result), median of RUNS.
# Through the embedded broker (`bot up --no-agent`) and mosquitto.
# Usage: scripts/bench/structured.sh   (NS="1000 10000" RUNS=5 BROKERS="embedded mosquitto")
# Needs: cargo build --release -p bot && cargo build --release -p bot-agent --example fleet
set -euo pipefail
cd "$(dirname "$0")/../.."
BOT=${BOT:-target/release/bot}
FLEET=${FLEET:-target/release/examples/fleet}
# The embedded broker's binary (default: $BOT). To compare with a `bot`
# from before signing (security off), give its CLI and fleet as BOT and
# FLEET and keep this one: both then run on the same broker.
UP_BOT=${UP_BOT:-$BOT}
RUNS=${RUNS:-5}
NS=${NS:-1000 10000}
BROKERS=${BROKERS:-embedded mosquitto}
RUN_MAX=${RUN_MAX:-1000}
WORK=$(mktemp -d /tmp/bot-structured.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

# Requests are signed: one operator key for the run, trusted by every
# simulated agent (the fleet example reads BOT_KEY) and used by the CLI.
# A binary from before signing ignores it (for a security-off comparison).
if "$BOT" keys --help >/dev/null 2>&1; then
    HOME="$WORK" XDG_CONFIG_HOME="" "$BOT" keys new >/dev/null
    export BOT_KEY="$WORK/.config/bot/keys/default.key"
fi
# The embedded broker in the benchmarks takes anonymous clients (its logins
# are measured nowhere here); older binaries have no such flag.
INSECURE=""
"$UP_BOT" up --help 2>/dev/null | grep -q -- '--insecure' && INSECURE="--insecure"

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "n/a"} else if (NR%2) {print a[(NR+1)/2]} else {printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}}'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_broker() { # $1 = embedded|mosquitto; sets URL
    local port
    if [ "$1" = embedded ]; then
        "$UP_BOT" up $INSECURE --no-agent --no-server --no-ws --listen 127.0.0.1:0 >"$WORK/up.out" 2>"$WORK/up.err" &
        PIDS+=($!); BROKER=$!
        for _ in $(seq 100); do grep -q '^listening: mqtt://' "$WORK/up.out" && break; sleep 0.1; done
        URL=$(grep -o 'mqtt://[0-9.:]*' "$WORK/up.out" | head -1)
    else
        port=$(free_port)
        printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_inflight_messages 0\n%s' "$port" "${MOSQUITTO_EXTRA:-}" >"$WORK/m.conf"
        /usr/sbin/mosquitto -c "$WORK/m.conf" 2>"$WORK/m.err" &
        PIDS+=($!); BROKER=$!
        for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
        URL=mqtt://127.0.0.1:$port
    fi
}

for broker in $BROKERS; do
    for n in $NS; do
        start_broker "$broker"
        "$FLEET" "$URL" "$n" "sim$n" 1000 >"$WORK/fleet.out" 2>"$WORK/fleet.err" &
        PIDS+=($!); fleet=$!
        for _ in $(seq 600); do grep -q started "$WORK/fleet.out" && break; sleep 0.2; done
        # Wait until every agent answers (their statuses are retained by then).
        ready=0
        for _ in $(seq 60); do
            if "$BOT" ping -b "$URL" -q --wait 20 >"$WORK/warm.out" 2>&1 && grep -q "^$n of $n " "$WORK/warm.out"; then ready=1; break; fi
            sleep 1
        done
        if [ $ready = 0 ]; then echo "$broker N=$n: agents not ready: $(cat "$WORK/warm.out")"; kill "$fleet" "$BROKER"; continue; fi
        : >"$WORK/ping.ms"
        : >"$WORK/whole.ms"
        for r in $(seq "$RUNS"); do
            t0=$(date +%s%N)
            "$BOT" ping -b "$URL" -q --wait 30 >"$WORK/p.out" 2>&1 || true
            t1=$(date +%s%N)
            grep -q "^$n of $n " "$WORK/p.out" || echo "  run $r incomplete: $(cat "$WORK/p.out")"
            grep -o 'last reply after [0-9.]* ms' "$WORK/p.out" | awk '{print $4}' >>"$WORK/ping.ms"
            echo "scale=1; ($t1 - $t0) / 1000000" | bc >>"$WORK/whole.ms"
        done
        echo "$broker N=$n bot ping: runs $(tr '\n' ' ' <"$WORK/ping.ms")ms; median $(median <"$WORK/ping.ms") ms"
        echo "$broker N=$n bot ping, whole command: runs $(tr '\n' ' ' <"$WORK/whole.ms")ms; median $(median <"$WORK/whole.ms") ms"
        if [ "$n" -le "$RUN_MAX" ]; then
            : >"$WORK/run.ms"
            for r in $(seq "$RUNS"); do
                t0=$(date +%s%N)
                "$BOT" run -b "$URL" --json -- true >"$WORK/r.json" 2>"$WORK/r.err" || true
                t1=$(date +%s%N)
                ok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["ok"])' "$WORK/r.json" 2>/dev/null || echo 0)
                [ "$ok" = "$n" ] || echo "  run $r: only $ok of $n ok"
                echo $(( (t1 - t0) / 1000000 )) >>"$WORK/run.ms"
            done
            echo "$broker N=$n bot run -- true: runs $(tr '\n' ' ' <"$WORK/run.ms")ms; median $(median <"$WORK/run.ms") ms"
        fi
        echo "  fleet process RSS: $(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$fleet/status)"
        kill "$fleet" 2>/dev/null; wait "$fleet" 2>/dev/null || true
        kill "$BROKER" 2>/dev/null; wait "$BROKER" 2>/dev/null || true
    done
done
