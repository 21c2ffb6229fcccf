#!/usr/bin/env bash
# The dashboard in Debian's Chromium (docs/benchmarks.md, section 10), with
# the browser test's script (crates/bot/tests/browser/dashboard.mjs):
#  1. latency from a sample to the chart: `bot server` (release) and one real
#     agent measuring every second on a private mosquitto; the agent-chart
#     step reports the time from a round's start (the samples' time) to the
#     browser receiving it on the chart (same machine, same clock); RUNS runs;
#  2. the fleet page with N simulated agents (bot-sim metrics: signed
#     statuses, then a round every 10 s from each, spread evenly: N/10
#     headline updates a second, as N real agents at the default interval):
#     load time until all N rows are rendered, the JS heap after load and
#     after 5 s of live updates, frames per second and long tasks meanwhile.
# Usage: scripts/bench/dashboard.sh   (N=1000 RUNS=5)
# Needs: cargo build --release -j2 -p bot -p bot-bench; scripts/test.sh once
# (chromium, node, npm ci in crates/bot/tests/browser).
source "$(dirname "$0")/lib.sh"
N=${N:-1000}
TOKEN=bench-token-0123456789abcdef
BROWSER=crates/bot/tests/browser
[ -d "$BROWSER/node_modules/playwright-core" ] || { echo "run scripts/test.sh first (npm ci)" >&2; exit 2; }
api() { curl -sf -H "Authorization: Bearer $TOKEN" "$@"; }
ulimit -n "$(ulimit -Hn)"
mkdir -p "$WORK/keys"
HOME="$WORK/keys" XDG_CONFIG_HOME="" "$BOT" keys new --name server >/dev/null
SERVER_KEY="$WORK/keys/.config/bot/keys/server.key"
SERVER_PUB=$(HOME="$WORK/keys" XDG_CONFIG_HOME="" "$BOT" keys show "$SERVER_KEY" 2>/dev/null | awk -F'"' '/^key = /{print $2}')

start_server() { # sets API
    rm -rf "$WORK/server"
    mkdir -p "$WORK/server"
    cp "$SERVER_KEY" "$WORK/server/server.key"
    BOT_API_TOKENS="bench=$TOKEN" "$BOT" server --broker "$BROKER_URL" --db "sqlite:$WORK/dash-$RANDOM.db" \
        --http 127.0.0.1:0 --data-dir "$WORK/server" >"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER=$!
    PIDS+=("$SERVER")
    line=$(wait_line "$WORK/server.out" '^listening: http://' 30)
    API=${line#listening: }
    API=${API%/api}
}

echo "# $(date -u +%FT%TZ) $(nproc) cores; chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'); N=$N runs=$RUNS"
# 1. Latency with one real agent.
start_mosquitto "set_tcp_nodelay true"
start_server
cat >"$WORK/agent.toml" <<TOML
state_dir = "$WORK/agent-state"
[[trust]]
name = "server"
key = "$SERVER_PUB"
TOML
"$BOT" agent --name dash --broker "$BROKER_URL" --config "$WORK/agent.toml" >"$WORK/agent.out" 2>"$WORK/agent.err" &
PIDS+=("$!")
wait_line "$WORK/agent.err" 'ready: listening' 30 >/dev/null
for _ in $(seq 100); do api "$API/api/agents/dash" >/dev/null 2>&1 && break; sleep 0.2; done
ID=$(api "$API/api/agents/dash" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
api -X PUT -H 'Content-Type: application/json' -d '{"enabled":true,"interval_ms":1000}' "$API/api/agents/dash/config" >/dev/null
: >"$WORK/lat"
for r in $(seq "$RUNS"); do
    (cd "$BROWSER" && BOT_URL="$API" BOT_TOKEN="$TOKEN" BOT_AGENT_ID="$ID" BOT_AGENT_NAME=dash \
        BOT_SCREENSHOTS="$WORK/shots" BOT_STEPS=login,agent-chart node dashboard.mjs) >"$WORK/lat.out" 2>"$WORK/lat.err" ||
        { cat "$WORK/lat.out" "$WORK/lat.err" >&2; exit 1; }
    python3 -c 'import json,sys
for l in open(sys.argv[1]):
    v = json.loads(l)
    if v.get("step") == "agent-chart": print(v["latency_ms"])' "$WORK/lat.out" >>"$WORK/lat"
done
echo "sample to chart: runs $(tr '\n' ' ' <"$WORK/lat")ms; median $(median <"$WORK/lat") ms"
stop "$SERVER"
stop "$BROKER_PID"

# 2. The fleet page with N agents.
start_mosquitto "set_tcp_nodelay true" "max_queued_messages 100000"
start_server
"$SIM" metrics --broker "$BROKER_URL" --agents "$N" --samples 30 --rounds 100000 --interval 10 --settle 1 \
    >"$WORK/sim.out" 2>"$WORK/sim.err" &
PIDS+=("$!")
wait_line "$WORK/sim.out" '^registered' 120 >/dev/null
sleep 12 # a first round from every agent
for _ in $(seq 300); do
    n=$(api "$API/api/agents?online=true" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    [ "$n" -ge "$N" ] && break
    sleep 0.2
done
: >"$WORK/load"
: >"$WORK/heap"
for r in $(seq "$RUNS"); do
    (cd "$BROWSER" && BOT_URL="$API" BOT_TOKEN="$TOKEN" BOT_EXPECT_AGENTS="$N" \
        BOT_SCREENSHOTS="$WORK/shots" BOT_STEPS=fleet-load node dashboard.mjs) >"$WORK/fl.out" 2>"$WORK/fl.err" ||
        { cat "$WORK/fl.out" "$WORK/fl.err" >&2; exit 1; }
    python3 -c 'import json,sys
for l in open(sys.argv[1]):
    v = json.loads(l)
    if v.get("step") == "fleet-load":
        print(v["load_ms"], file=open(sys.argv[2], "a")); print(round(v["heap_bytes"]/1048576, 1), round(v["heap_after_bytes"]/1048576, 1), v["fps"], "fps", v["long_tasks"], "long tasks", v["longest_task_ms"], "ms", file=open(sys.argv[3], "a"))' \
        "$WORK/fl.out" "$WORK/load" "$WORK/heap"
done
echo "fleet page, $N agents: load runs $(tr '\n' ' ' <"$WORK/load")ms; median $(median <"$WORK/load") ms; JS heap MiB after load, after 5 s live; fps; long tasks: $(tr '\n' ';' <"$WORK/heap")"
