#!/usr/bin/env bash
# The server's sample ingest (docs/benchmarks.md, section 9): AGENTS simulated
# agents (bot-sim metrics: each registered with a signed status and a key of
# its own) publish ROUNDS signed batches of SAMPLES samples each through a
# private mosquitto, as fast as it takes them; `bot server` (release) on
# SQLite decodes, checks signatures, turns counters into rates and stores
# them. Measured: samples stored per second (the server's
# bot_samples_ingested_total from the first stored sample until it stops
# growing), batches dropped, and a series query of one agent afterwards
# (queryable). Median of RUNS runs, each on a fresh database.
# With INTERVAL=10 the rounds are paced like real agents (each round's
# batches spread over INTERVAL s) and the server's CPU use over the rounds
# is reported instead (utime+stime from /proc): the "1,000 agents x 30
# samples every 10 s" figure is AGENTS=1000 SAMPLES=30 ROUNDS=6 INTERVAL=10.
# Usage: scripts/bench/ingest.sh   (AGENTS=1000 SAMPLES=100 ROUNDS=20 RUNS=3 INTERVAL=0)
# Needs: cargo build --release -j2 -p bot -p bot-bench
source "$(dirname "$0")/lib.sh"
AGENTS=${AGENTS:-1000}
SAMPLES=${SAMPLES:-100}
ROUNDS=${ROUNDS:-20}
RUNS=${RUNS:-3}
INTERVAL=${INTERVAL:-0}
cpu_s() { # CPU seconds (user + system) used so far by process $1
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}
TOKEN=bench-token-0123456789abcdef
ulimit -n "$(ulimit -Hn)"
[ -x "$SIM" ] || { echo "missing $SIM: cargo build --release -j2 -p bot-bench" >&2; exit 2; }
api() { curl -sf -H "Authorization: Bearer $TOKEN" "$@"; }
counter() { # $1 = metric name; prints its value (0 if absent)
    api "$API/metrics" | awk -v n="$1" '$1 == n {print $2; f=1} END {if (!f) print 0}'
}

echo "# $(date -u +%FT%TZ) $(nproc) cores; agents=$AGENTS samples/batch=$SAMPLES rounds=$ROUNDS runs=$RUNS"
: >"$WORK/rates"
for r in $(seq "$RUNS"); do
    start_mosquitto "set_tcp_nodelay true" "max_queued_messages 1000000" "max_inflight_messages 0"
    rm -rf "$WORK/server"
    BOT_API_TOKENS="bench=$TOKEN" "$BOT" server --broker "$BROKER_URL" --db "sqlite:$WORK/ingest-$r.db" \
        --http 127.0.0.1:0 --data-dir "$WORK/server" >"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER=$!
    PIDS+=("$SERVER")
    line=$(wait_line "$WORK/server.out" '^listening: http://' 30)
    API=${line#listening: }
    API=${API%/api}
    "$SIM" metrics --broker "$BROKER_URL" --agents "$AGENTS" --samples "$SAMPLES" --rounds "$ROUNDS" \
        --settle 5 --interval "$INTERVAL" >"$WORK/sim.out" 2>"$WORK/sim.err" &
    SIMP=$!
    PIDS+=("$SIMP")
    wait_line "$WORK/sim.out" '^registered' 120 >/dev/null
    if [ "$INTERVAL" != 0 ]; then
        sleep 5 # the settle time: the registrations are in
        c0=$(cpu_s "$SERVER"); t0=$(date +%s.%N)
        wait "$SIMP" 2>/dev/null || true
        sleep 2 # the last batches stored
        c1=$(cpu_s "$SERVER"); t1=$(date +%s.%N)
        pct=$(python3 -c "import sys; c0,c1,t0,t1=map(float,sys.argv[1:]); print(f'{(c1-c0)/(t1-t0)*100:.1f}')" "$c0" "$c1" "$t0" "$t1")
        echo "$pct" >>"$WORK/rates"
        log "run $r: server CPU $(python3 -c "print(round($c1-$c0,2))") s over $(python3 -c "print(round($t1-$t0,1))") s: ${pct} % of one core; stored $(counter bot_samples_ingested_total), dropped $(counter bot_samples_dropped_total)"
        stop "$SERVER"
        stop "$BROKER_PID"
        continue
    fi
    # First stored sample, then until the counter stops growing for 3 s.
    total=$((AGENTS * SAMPLES * ROUNDS))
    start=""
    last=0
    still=0
    for _ in $(seq 3000); do
        n=$(counter bot_samples_ingested_total)
        now=$(date +%s.%N)
        if [ -z "$start" ] && [ "${n%.*}" -gt 0 ]; then start=$now; first=$n; fi
        if [ -n "$start" ]; then
            if [ "${n%.*}" -eq "$last" ]; then still=$((still + 1)); else still=0; end=$now; fi
            [ "${n%.*}" -ge "$total" ] && { end=$now; last=${n%.*}; break; }
            [ "$still" -ge 30 ] && break
        fi
        last=${n%.*}
        sleep 0.1
    done
    wait "$SIMP" 2>/dev/null || true
    dropped=$(counter bot_samples_dropped_total)
    rate=$(python3 -c "import sys; s,e,n,f=map(float,sys.argv[1:]); print(int((n-f)/max(e-s,1e-9)))" "$start" "$end" "$last" "$first")
    echo "$rate" >>"$WORK/rates"
    since=$(( $(date +%s) * 1000 - 600000 ))
    q=$(api "$API/api/agents/ingest-7/metrics?name=bench.m3&since=$since&step=1000" |
        python3 -c 'import json,sys; a=json.load(sys.stdin); print(sum(1 for s in a["series"] for v in s["values"] if v is not None))')
    log "run $r: $last of $total samples stored, ${rate}/s, dropped $dropped; ingest-7 bench.m3: $q values; $(cat "$WORK/sim.out" | tail -1)"
    stop "$SERVER"
    stop "$BROKER_PID"
done
if [ "$INTERVAL" != 0 ]; then
    echo "server CPU: $AGENTS agents x $SAMPLES samples every $INTERVAL s: runs $(tr '\n' ' ' <"$WORK/rates")% of one core; median $(median <"$WORK/rates") %"
    exit 0
fi
echo "ingest: $AGENTS agents x $SAMPLES samples x $ROUNDS rounds: runs $(tr '\n' ' ' <"$WORK/rates")samples/s; median $(median <"$WORK/rates") samples/s"
