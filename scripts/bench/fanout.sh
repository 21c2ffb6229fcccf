#!/usr/bin/env bash
# Figure 2 of docs/benchmarks.md: `bot ping` fan-out to N simulated agents
# (`bot-sim agents`, one MQTT connection each, all in one process), time from
# PING to the last of N PONGs, through one broker:
#   embedded           `bot up --no-agent --no-server --no-ws --listen 127.0.0.1:0`
#   mosquitto          private mosquitto 2.0 with max_queued_messages 100000
#   mosquitto-nodelay  as mosquitto, plus set_tcp_nodelay true (Nagle off)
#   mosquitto-default  private mosquitto 2.0 with its default limits (per-client
#                      queue of 1,000 QoS 1/2 messages beyond 20 in flight)
# For each N: RUNS runs of `bot-sim ping-bench` (one connection, PING after
# PING), then RUNS runs of `bot ping --classic --expect N -q` (a fresh client each time,
# the user-facing figure). Broker, simulator and client share the machine.
# Usage: scripts/bench/fanout.sh BROKER N...   e.g. fanout.sh embedded 100 1000
source "$(dirname "$0")/lib.sh"

kind=${1:?usage: fanout.sh embedded|mosquitto|mosquitto-nodelay|mosquitto-default N...}
shift
[ $# -gt 0 ] || set -- 100 1000

# The simulated agents speak the classic protocol only; newer `bot ping`
# needs --classic for it (its default is the structured protocol).
CLASSIC=()
if "$BOT" ping --help | grep -q -- '--classic'; then CLASSIC=(--classic); fi

machine
summary="$WORK/summary"
: >"$summary"
for n in "$@"; do
    case $kind in
        embedded) start_embedded ;;
        mosquitto) start_mosquitto "max_queued_messages 100000" ;;
        mosquitto-default) start_mosquitto ;;
        mosquitto-nodelay) start_mosquitto "max_queued_messages 100000" "set_tcp_nodelay true" ;;
        *) echo "unknown broker $kind" >&2; exit 2 ;;
    esac
    start_sim "$n"
    sim_rss=$(status_kb "$SIM_PID" VmRSS)
    sim_threads=$(status_kb "$SIM_PID" Threads)
    broker_rss=$(status_kb "$BROKER_PID" VmRSS)

    echo "## $kind, N = $n: bot-sim ping-bench --count $n --runs $RUNS"
    bench="$WORK/bench-$n.out"
    "$SIM" ping-bench --broker "$BROKER_URL" --count "$n" --runs "$RUNS" | tee "$bench" || true
    bench_line=$(tail -n1 "$bench")

    echo "## $kind, N = $n: bot ping ${CLASSIC[*]} --expect $n -q --wait 30 (x$RUNS)"
    pings="$WORK/ping-$n.out"
    : >"$pings"
    complete=0
    for ((run = 1; run <= RUNS; run++)); do
        out=$("$BOT" ping "${CLASSIC[@]}" --broker "$BROKER_URL" --expect "$n" --wait 30 -q 2>&1) || true
        echo "run $run: $out"
        if [[ $out =~ ^([0-9]+)\ agents?\ answered\;\ last\ reply\ after\ ([0-9.]+)\ ms ]]; then
            if [ "${BASH_REMATCH[1]}" -eq "$n" ]; then
                echo "${BASH_REMATCH[2]}" >>"$pings"
                complete=$((complete + 1))
            fi
        fi
        sleep 0.5
    done
    ping_med=$(median <"$pings")
    ping_min=$(sort -g "$pings" | head -n1)
    ping_max=$(sort -g "$pings" | tail -n1)
    echo "bot ping: complete runs $complete of $RUNS; median $ping_med ms, min ${ping_min:-n/a} ms, max ${ping_max:-n/a} ms"
    echo "memory after subscribing: bot-sim VmRSS $sim_rss kB ($sim_threads threads), broker VmRSS $broker_rss kB"
    echo "$kind N=$n | ping-bench: $bench_line | bot ping: complete $complete/$RUNS, median $ping_med ms," \
        "min ${ping_min:-n/a}, max ${ping_max:-n/a} | bot-sim RSS $sim_rss kB, broker RSS $broker_rss kB" >>"$summary"

    kill -0 "$BROKER_PID" 2>/dev/null || log "the broker died during the runs: the figures above are void"
    kill -0 "$SIM_PID" 2>/dev/null || log "bot-sim died during the runs: the figures above are void"
    stop "$SIM_PID"
    log "$(tail -n1 "$WORK"/sim-*.out.err)"
    rm -f "$WORK"/sim-*
    stop "$BROKER_PID"
done
echo "## summary"
cat "$summary"
