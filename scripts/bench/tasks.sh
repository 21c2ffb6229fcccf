#!/usr/bin/env bash
# Server figures (docs/benchmarks.md, "Tasks and the API"):
#  1. a task running `true` on N real agents (crates/bot-agent/examples/fleet.rs:
#     N × `bot_agent::run` in one process, each with its own MQTT connection)
#     with parallel P, through mosquitto, `bot server` on SQLite and on
#     PostgreSQL (a private cluster, fsync on): time from submit to the last
#     result stored = the task's finished_ms - created_ms (both stamped by the
#     server; finished_ms is committed with the last result), median of RUNS;
#  2. `GET /api/agents` with API_N agents registered: wrk, requests/s and p99
#     latency, for the whole list and for a filter selecting ~1/10 of it.
# Usage: scripts/bench/tasks.sh   (N=1000 P=100 RUNS=5 DBS="sqlite postgres" API_N=10000)
# Needs: cargo build --release -p bot && cargo build --release -p bot-agent --example fleet;
#        wrk (apt-get install wrk) for part 2.
source "$(dirname "$0")/lib.sh"
FLEET=${FLEET:-target/release/examples/fleet}
N=${N:-1000}
P=${P:-100}
DBS=${DBS-sqlite postgres}
API_N=${API_N:-10000}
TOKEN=bench-token-0123456789abcdef
chmod 755 "$WORK" # the PostgreSQL cluster lives in it and runs as `postgres`
PGBIN=""
PGDIR=""
stop_postgres() {
    if [ -n "$PGDIR" ]; then as_pg "$PGBIN/pg_ctl" -D "$PGDIR" -m immediate stop >/dev/null 2>&1 || true; fi
}
trap 'stop_postgres; cleanup' EXIT
ulimit -n "$(ulimit -Hn)"
[ -x "$FLEET" ] || { echo "missing $FLEET: cargo build --release -j2 -p bot-agent --example fleet" >&2; exit 2; }
# Tasks are signed by the server's key: make it now, and have every
# simulated agent trust it (the fleet example reads BOT_SERVER_KEY).
if "$BOT" keys --help >/dev/null 2>&1; then
    mkdir -p "$WORK/keys"
    HOME="$WORK/keys" XDG_CONFIG_HOME="" "$BOT" keys new --name server >/dev/null
    export BOT_SERVER_KEY="$WORK/keys/.config/bot/keys/server.key"
fi

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
api() { curl -sf -H "Authorization: Bearer $TOKEN" "$@"; }

start_postgres() { # sets PG_URL
    local port
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    PGDIR=$WORK/pg
    mkdir -p "$PGDIR"
    [ "$(id -u)" -ne 0 ] || chown postgres "$PGDIR"
    as_pg "$PGBIN/initdb" -D "$PGDIR" -A trust -U bot >/dev/null
    port=$(free_port)
    as_pg "$PGBIN/pg_ctl" -D "$PGDIR" -l "$PGDIR/log" -w \
        -o "-p $port -k $PGDIR -c listen_addresses=127.0.0.1" start >/dev/null
    as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U bot bench
    PG_URL=postgres://bot@127.0.0.1:$port/bench
}

start_server() { # $1 = db url; sets API, SERVER
    local line
    rm -rf "$WORK/server"
    BOT_API_TOKENS="bench=$TOKEN" "$BOT" server --broker "$BROKER_URL" --db "$1" --http 127.0.0.1:0 \
        --data-dir "$WORK/server" >"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER=$!
    PIDS+=("$SERVER")
    line=$(wait_line "$WORK/server.out" '^listening: http://' 30)
    API=${line#listening: }
    API=${API%/api}
}

wait_online() { # $1 = count
    for _ in $(seq 600); do
        n=$(api "$API/api/agents?online=true" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
        [ "$n" -ge "$1" ] && return 0
        sleep 0.5
    done
    echo "only $n of $1 agents online" >&2
    return 1
}

start_fleet() { # $1 = count; sets FLEET_PID
    "$FLEET" "$BROKER_URL" "$1" sim 1000 >"$WORK/fleet.out" 2>"$WORK/fleet.err" &
    FLEET_PID=$!
    PIDS+=("$FLEET_PID")
    wait_line "$WORK/fleet.out" started 120 >/dev/null
}

echo "# $(date -u +%FT%TZ) $(nproc) cores; N=$N parallel=$P runs=$RUNS"
start_mosquitto "set_tcp_nodelay true" "max_queued_messages 100000" "max_inflight_messages 0"
[ -z "$DBS" ] || start_fleet "$N"
for db in $DBS; do
    if [ "$db" = postgres ]; then
        start_postgres
        dburl=$PG_URL
    else
        dburl=sqlite:$WORK/bench-$RANDOM.db
    fi
    start_server "$dburl"
    wait_online "$N"
    : >"$WORK/task.ms"
    for r in $(seq "$RUNS"); do
        id=$(api -X POST -H 'Content-Type: application/json' "$API/api/tasks" \
            -d "{\"args\":{\"command\":[\"true\"]},\"filter\":\"sim*\",\"parallel\":$P,\"timeout_s\":60}" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
        for _ in $(seq 1200); do
            api "$API/api/tasks/$id" >"$WORK/t.json"
            python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); sys.exit(0 if t["state"] in ("SUCCEEDED","FAILED","CANCELLED") else 1)' "$WORK/t.json" && break
            sleep 0.1
        done
        python3 - "$WORK/t.json" "$P" >>"$WORK/task.ms" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
p = int(sys.argv[2])
c = t["counts"]
if t["state"] != "SUCCEEDED":
    print(f"task {t['id']} {t['state']}: {c}", file=sys.stderr)
# The window, from the recorded times (ends before starts at the same ms).
edges = sorted([(x["started_ms"], 1) for x in t["targets"]] + [(x["finished_ms"], -1) for x in t["targets"]])
now = peak = 0
for _, d in edges:
    now += d; peak = max(peak, now)
print(t["finished_ms"] - t["created_ms"])
print(f"  {c['succeeded']}/{c['total']} succeeded, peak running {peak} (window {p})", file=sys.stderr)
EOF
    done
    echo "$db: task true x$N parallel $P: submit to last result stored: runs $(tr '\n' ' ' <"$WORK/task.ms")ms; median $(median <"$WORK/task.ms") ms"
    stop "$SERVER"
done
[ -z "$DBS" ] || stop "$FLEET_PID"

if [ "$API_N" -gt 0 ] && command -v wrk >/dev/null; then
    # A fresh broker: the first fleet's agents share ids with this one, and
    # their retained offline statuses must not race the new online ones.
    stop "$BROKER_PID"
    start_mosquitto "set_tcp_nodelay true" "max_queued_messages 100000" "max_inflight_messages 0"
    start_fleet "$API_N"
    start_server "sqlite:$WORK/api.db"
    wait_online "$API_N"
    bytes=$(api "$API/api/agents" | wc -c)
    sub=$(api "$API/api/agents?filter=sim-1*" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    echo "GET /api/agents: $API_N agents, $bytes bytes; filter sim-1* selects $sub"
    for path in "/api/agents" "/api/agents?filter=sim-1*"; do
        wrk -t2 -c8 -d10s --latency -H "Authorization: Bearer $TOKEN" "$API$path" >"$WORK/wrk.out"
        rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
        p99=$(awk '$1=="99%" {print $2}' "$WORK/wrk.out")
        p50=$(awk '$1=="50%" {print $2}' "$WORK/wrk.out")
        echo "wrk -t2 -c8 -d10s $path: $rps req/s, p50 $p50, p99 $p99"
    done
fi
