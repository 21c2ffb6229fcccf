#!/usr/bin/env bash
# Scheduled checks, the Nagios bridge and webhooks (docs/benchmarks.md,
# section 11). `bot server` (release, SQLite) and `bot-sim` on a private
# mosquitto. MODE:
#   fleet    AGENTS simulated agents (bot-sim checks: signed statuses, and a
#            signed OK result with performance data to every check request)
#            and one schedule every INTERVAL s for FIRES runs: the server's
#            CPU use over the runs (utime+stime from /proc), and per run the
#            latency from the request's creation (the fire) until every
#            agent's state is stored (check_states in the SQLite file,
#            polled every 20 ms), median and max.
#   jitter   SCHEDULES schedules every 1 s for SECONDS s (a filter matching
#            nobody: the request is still sent): each run's lateness behind
#            its schedule's period grid (the request's created_ms minus the
#            grid time), p50 and p99 over all runs.
#   bridge   bot bridge nagios reading RESULTS results that bot-sim blasts
#            on the results topic, writing to a FIFO read by `cat`: results
#            per second from the first line to the last.
#   webhooks EVENTS agents registering (an agent.online event each) with one
#            webhook to bot-sim sink: deliveries per second from the first
#            to the last delivered.
# Each mode runs RUNS times; medians printed last.
# Usage: MODE=fleet scripts/bench/checks.sh  (AGENTS=1000 INTERVAL=10 FIRES=6 RUNS=3)
# Needs: cargo build --release -j2 -p bot -p bot-bench
source "$(dirname "$0")/lib.sh"
MODE=${MODE:-fleet}
AGENTS=${AGENTS:-1000}
INTERVAL=${INTERVAL:-10}
FIRES=${FIRES:-6}
SCHEDULES=${SCHEDULES:-20}
SECONDS_=${SECONDS_:-60}
RESULTS=${RESULTS:-20000}
EVENTS=${EVENTS:-3000}
RUNS=${RUNS:-3}
TOKEN=bench-token-0123456789abcdef
ulimit -n "$(ulimit -Hn)"
[ -x "$SIM" ] || { echo "missing $SIM: cargo build --release -j2 -p bot-bench" >&2; exit 2; }
api() { curl -sf -H "Authorization: Bearer $TOKEN" "$@"; }
post() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -X POST "$1" -d "$2"; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

start_server() { # $1 = run; sets SERVER, API, DB
    DB="$WORK/checks-$1.db"
    rm -rf "$WORK/server"
    BOT_API_TOKENS="bench=$TOKEN" "$BOT" server --broker "$BROKER_URL" --db "sqlite:$DB" \
        --http 127.0.0.1:0 --data-dir "$WORK/server" >"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER=$!
    PIDS+=("$SERVER")
    local line
    line=$(wait_line "$WORK/server.out" '^listening: http://' 30)
    API=${line#listening: }
    API=${API%/api}
}

wait_online() { # $1 = how many agents
    local i n
    for i in $(seq 600); do
        n=$(api "$API/api/agents?online=true" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
        [ "$n" -ge "$1" ] && return 0
        sleep 0.2
    done
    echo "only $n of $1 agents online" >&2
    return 1
}

echo "# $(date -u +%FT%TZ) $(nproc) cores; mode=$MODE runs=$RUNS"
: >"$WORK/a"
: >"$WORK/b"
for r in $(seq "$RUNS"); do
    start_mosquitto "set_tcp_nodelay true" "max_queued_messages 1000000" "max_inflight_messages 0"
    start_server "$r"
    case "$MODE" in
    fleet)
        "$SIM" checks --broker "$BROKER_URL" --agents "$AGENTS" >"$WORK/sim.out" 2>"$WORK/sim.err" &
        SIMP=$!; PIDS+=("$SIMP")
        wait_line "$WORK/sim.out" '^registered' 120 >/dev/null
        wait_online "$AGENTS"
        post "$API/api/schedules" "{\"name\":\"load\",\"every_s\":$INTERVAL,\"check\":\"load\",\"filter\":\"chk-*\",\"timeout_s\":5}" >/dev/null
        wait_line "$WORK/sim.out" '^fired' $((INTERVAL + 5)) >/dev/null
        c0=$(cpu_s "$SERVER"); t0=$(date +%s.%N)
        : >"$WORK/lat"
        for k in $(seq "$FIRES"); do
            # The k-th fire (the first is already in), then until all stored.
            while [ "$(grep -c '^fired' "$WORK/sim.out")" -lt "$k" ]; do sleep 0.02; done
            fired=$(grep '^fired' "$WORK/sim.out" | sed -n "${k}p" | awk '{print $2}')
            while :; do
                n=$(sqlite3 "$DB" "SELECT COUNT(*) FROM check_states WHERE updated_ms >= $fired" 2>/dev/null || echo 0)
                [ "$n" -ge "$AGENTS" ] && break
                sleep 0.02
            done
            echo $(( $(date +%s%3N) - fired )) >>"$WORK/lat"
        done
        c1=$(cpu_s "$SERVER"); t1=$(date +%s.%N)
        pct=$(python3 -c "import sys; c0,c1,t0,t1=map(float,sys.argv[1:]); print(f'{(c1-c0)/(t1-t0)*100:.1f}')" "$c0" "$c1" "$t0" "$t1")
        echo "$pct" >>"$WORK/a"
        med=$(median <"$WORK/lat"); max=$(sort -n "$WORK/lat" | tail -1)
        echo "$med" >>"$WORK/b"
        log "run $r: server CPU ${pct} % of one core over $FIRES runs of $AGENTS checks every $INTERVAL s; fire -> $AGENTS states stored: median $med ms, max $max ms ($(tr '\n' ' ' <"$WORK/lat")ms)"
        stop "$SIMP"
        ;;
    jitter)
        "$SIM" checks --broker "$BROKER_URL" --agents 1 >"$WORK/sim.out" 2>"$WORK/sim.err" &
        SIMP=$!; PIDS+=("$SIMP")
        wait_line "$WORK/sim.out" '^registered' 60 >/dev/null
        for s in $(seq "$SCHEDULES"); do
            post "$API/api/schedules" "{\"name\":\"j$s\",\"every_s\":1,\"check\":\"load\",\"filter\":\"nobody-*\"}" >/dev/null
        done
        sleep "$SECONDS_"
        stop "$SIMP"
        # Per schedule: lateness behind the grid of its period (1 s), the
        # grid anchored at its least late run.
        grep '^fired' "$WORK/sim.out" | python3 -c '
import sys, collections
runs = collections.defaultdict(list)
for line in sys.stdin:
    _, t, *sender = line.split()
    runs[" ".join(sender)].append(int(t))
late = []
for ts in runs.values():
    ts.sort()
    d0 = min(t - k * 1000 for k, t in enumerate(ts))
    late += [t - k * 1000 - d0 for k, t in enumerate(ts)]
late.sort()
p = lambda q: late[min(len(late) - 1, int(q * len(late)))]
print(p(0.5), p(0.99), len(late), len(runs))' >"$WORK/j"
        read -r p50 p99 n s <"$WORK/j"
        echo "$p50" >>"$WORK/a"; echo "$p99" >>"$WORK/b"
        log "run $r: $n runs of $s schedules every 1 s: lateness p50 $p50 ms, p99 $p99 ms"
        ;;
    bridge)
        rm -f "$WORK/nagios.cmd" "$WORK/lines"
        mkfifo "$WORK/nagios.cmd"
        cat "$WORK/nagios.cmd" >"$WORK/lines" &
        PIDS+=($!)
        "$BOT" bridge nagios -b "$BROKER_URL" --command-file "$WORK/nagios.cmd" --session "bench$r" --no-hosts \
            >"$WORK/bridge.out" 2>"$WORK/bridge.err" &
        BRIDGE=$!; PIDS+=("$BRIDGE")
        wait_line "$WORK/bridge.out" '^bridging' 30 >/dev/null
        # From the blast's start (its 100 statuses first) to the last line.
        t0=$(date +%s.%N)
        "$SIM" checks --broker "$BROKER_URL" --agents 100 --blast "$RESULTS" >"$WORK/sim.out" 2>&1
        while [ "$(wc -l <"$WORK/lines")" -lt "$RESULTS" ]; do sleep 0.02; done
        t1=$(date +%s.%N)
        rate=$(python3 -c "import sys; n,t0,t1=map(float,sys.argv[1:]); print(int(n/(t1-t0)))" "$RESULTS" "$t0" "$t1")
        echo "$rate" >>"$WORK/a"
        log "run $r: $RESULTS results through the bridge in $(python3 -c "print(round($t1-$t0,2))") s: $rate/s ($(cat "$WORK/sim.out" | tail -1))"
        stop "$BRIDGE"
        ;;
    webhooks)
        "$SIM" sink >"$WORK/sink.out" 2>&1 &
        SINK=$!; PIDS+=("$SINK")
        line=$(wait_line "$WORK/sink.out" '^listening' 10)
        post "$API/api/webhooks" "{\"name\":\"bench\",\"url\":\"http://${line#listening }/hook\",\"events\":[\"agent.online\"],\"secret\":\"bench-secret-0123456789\"}" >/dev/null
        t0=$(date +%s.%N)
        "$SIM" checks --broker "$BROKER_URL" --agents "$EVENTS" --blast 1 >"$WORK/sim.out" 2>&1
        while [ "$(tail -1 "$WORK/sink.out" | awk '{print $2}')" -lt "$EVENTS" ]; do sleep 0.05; done
        t1=$(date +%s.%N)
        rate=$(python3 -c "import sys; n,t0,t1=map(float,sys.argv[1:]); print(int(n/(t1-t0)))" "$EVENTS" "$t0" "$t1")
        echo "$rate" >>"$WORK/a"
        log "run $r: $EVENTS agent.online deliveries in $(python3 -c "print(round($t1-$t0,2))") s: $rate/s"
        stop "$SINK"
        ;;
    esac
    stop "$SERVER"
    stop "$BROKER_PID"
done
case "$MODE" in
fleet) echo "checks: $AGENTS agents every $INTERVAL s: server CPU runs $(tr '\n' ' ' <"$WORK/a")%, median $(median <"$WORK/a") %; fire -> stored medians $(tr '\n' ' ' <"$WORK/b")ms, median $(median <"$WORK/b") ms" ;;
jitter) echo "schedule jitter: p50 runs $(tr '\n' ' ' <"$WORK/a")ms, median $(median <"$WORK/a") ms; p99 runs $(tr '\n' ' ' <"$WORK/b")ms, median $(median <"$WORK/b") ms" ;;
bridge) echo "nagios bridge: runs $(tr '\n' ' ' <"$WORK/a")results/s, median $(median <"$WORK/a") results/s" ;;
webhooks) echo "webhooks: runs $(tr '\n' ' ' <"$WORK/a")deliveries/s, median $(median <"$WORK/a") deliveries/s" ;;
esac
