#!/usr/bin/env bash
# Issue 12, item 7: does an agent give memory back after a burst? One
# `bot agent` (release) on a private mosquitto; its VmRSS idle, then a burst
# of COUNT signed exec requests with ENV_BYTES of environment each
# (`bot-sim burst`), then VmRSS/VmHWM right after the replies and 10, 30 and
# 60 s later. Usage: scripts/bench/burst.sh   (COUNT=3000 ENV_BYTES=100000)
# Needs: cargo build --release -j2 -p bot -p bot-bench
source "$(dirname "$0")/lib.sh"
COUNT=${COUNT:-3000}
ENV_BYTES=${ENV_BYTES:-100000}

export HOME="$WORK" XDG_CONFIG_HOME=""
"$BOT" keys new >"$WORK/key.out" 2>&1
export BOT_KEY="$WORK/.config/bot/keys/default.key"
pub=$(grep -o 'ed25519:[A-Za-z0-9+/=]*' "$WORK/key.out" | head -1)
printf 'state_dir = "%s/state"\n[[trust]]\nname = "bench"\nkey = "%s"\n' "$WORK" "$pub" >"$WORK/agent.toml"
start_mosquitto "max_queued_messages 100000" "set_tcp_nodelay true"
id=$("$BOT" agent --print-id -c "$WORK/agent.toml")
"$BOT" agent --name burst --broker "$BROKER_URL" -c "$WORK/agent.toml" >"$WORK/agent.out" 2>"$WORK/agent.err" &
agent=$!
PIDS+=("$agent")
wait_line "$WORK/agent.err" 'ready: listening' 10 >/dev/null
sleep 10
rss() { awk '/^VmRSS/ {print $2}' "/proc/$agent/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$agent/status"; }
echo "idle: VmRSS $(rss) kB"
"$SIM" burst -b "$BROKER_URL" --agent "$id" --count "$COUNT" --env-bytes "$ENV_BYTES"
echo "after the burst: VmRSS $(rss) kB, peak (VmHWM) $(hwm) kB"
for t in 10 30 60; do
    sleep $((t - ${last:-0})); last=$t
    echo "+${t} s: VmRSS $(rss) kB"
done
