#!/usr/bin/env bash
# Figure 1 of docs/benchmarks.md: memory and CPU of one `bot agent`, idle and
# while measuring every second. Each run starts a fresh agent on a private
# mosquitto (free port) and reads /proc:
#   t = 30 s  idle sample: VmRSS, VmHWM, smaps_rollup (anon/file), threads
#   30..90 s  CPU consumed idle (utime+stime ticks; schedstat ns for precision)
#   t = 90 s  select it (`'bench': SEL`) and set the interval (`1: TSSET`)
#   90..150 s CPU consumed measuring at 1 s; messages on DATA/bench and
#             rounds (one `core.processing_time` message each) counted
#   t = 150 s measuring sample: VmRSS, VmHWM, smaps_rollup, threads
# Usage: scripts/bench/footprint.sh   (RUNS=5 by default; needs a release build)
source "$(dirname "$0")/lib.sh"

IDLE_AFTER=${IDLE_AFTER:-30}
WINDOW=${WINDOW:-60}
TCK=$(getconf CLK_TCK)

machine
row() { # pid -> "rss hwm anon file threads" (zeros if it is gone)
    [ -r "/proc/$1/smaps_rollup" ] || { echo "0 0 0 0 0"; return; }
    echo "$(status_kb "$1" VmRSS) $(status_kb "$1" VmHWM) $(smaps_kb "$1" Anonymous) \
$(($(smaps_kb "$1" Rss) - $(smaps_kb "$1" Anonymous))) $(status_kb "$1" Threads)"
}

# One run on a fresh broker; sets RESULT, fails if the broker or the agent
# did not live through it. (Not in a subshell, so cleanup knows every pid.)
one_run() {
    local agent sub res start idle measuring t0 t1 t2 t3 n0 n1 n2 n3 samples rounds ok=0 port
    start_mosquitto
    port=${BROKER_URL##*:}
    "$BOT" agent --name bench --broker "$BROKER_URL" >"$WORK/agent.out" 2>"$WORK/agent.err" &
    agent=$!
    PIDS+=("$agent")
    start=$(date +%s.%N)
    wait_line "$WORK/agent.err" 'ready: listening' 10 >/dev/null || ok=1
    sleep "$(awk -v s="$start" -v d="$IDLE_AFTER" -v n="$(date +%s.%N)" 'BEGIN { x = s + d - n; print (x > 0 ? x : 0) }')"
    idle=$(row "$agent")
    t0=$(cpu_ticks "$agent") n0=$(cpu_ns_all "$agent")
    sleep "$WINDOW"
    t1=$(cpu_ticks "$agent") n1=$(cpu_ns_all "$agent")

    mosquitto_sub -p "$port" -h 127.0.0.1 -t DATA/bench >"$WORK/data.out" &
    sub=$!
    PIDS+=("$sub")
    mosquitto_sub -p "$port" -h 127.0.0.1 -t RES >"$WORK/res.out" &
    res=$!
    PIDS+=("$res")
    sleep 0.5
    t2=$(cpu_ticks "$agent") n2=$(cpu_ns_all "$agent")
    mosquitto_pub -p "$port" -h 127.0.0.1 -t BUS -m "'bench': SEL" || ok=1
    mosquitto_pub -p "$port" -h 127.0.0.1 -t BUS -m "1: TSSET" || ok=1
    sleep "$WINDOW"
    t3=$(cpu_ticks "$agent") n3=$(cpu_ns_all "$agent")
    measuring=$(row "$agent")
    samples=$(wc -l <"$WORK/data.out")
    rounds=$(grep -c processing_time "$WORK/data.out" || true)
    kill -0 "$BROKER_PID" 2>/dev/null || { ok=1; log "the broker died during the run:"; cat "$WORK"/mosquitto-*.log >&2; }
    kill -0 "$agent" 2>/dev/null || { ok=1; log "the agent died during the run"; }
    stop "$sub"
    stop "$res"
    stop "$agent"
    stop "$BROKER_PID"
    rm -f "$WORK"/mosquitto-*
    log "replies on RES: $(tr '\n' ' ' <"$WORK/res.out")"
    # idle: rss hwm anon file threads | cpu ticks, ns | measuring: same | cpu | messages rounds
    RESULT="$idle $((t1 - t0)) $((n1 - n0)) $measuring $((t3 - t2)) $((n3 - n2)) $samples $rounds"
    return $ok
}

results="$WORK/results"
: >"$results"
for ((run = 1, attempt = 1; run <= RUNS; attempt++)); do
    if one_run; then
        line=$RESULT
        echo "$run $line" >>"$results"
        log "run $run: $line"
        run=$((run + 1))
    else
        log "run $run failed (attempt $attempt), not counted; retrying"
        [ "$attempt" -lt $((RUNS * 2)) ] || { echo "too many failed runs" >&2; exit 1; }
    fi
done

awk -v tck="$TCK" -v w="$WINDOW" 'BEGIN {
    print "| run | idle RSS kB | idle HWM kB | idle anon kB | idle file kB | threads | idle CPU ticks | idle CPU ms (schedstat) | meas. RSS kB | meas. HWM kB | meas. anon kB | meas. file kB | threads | meas. CPU ticks | meas. CPU ms (schedstat) | DATA messages | rounds |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} { printf "| %s | %s | %s | %s | %s | %s | %s | %.1f | %s | %s | %s | %s | %s | %s | %.1f | %s | %s |\n",
    $1, $2, $3, $4, $5, $6, $7, $8 / 1e6, $9, $10, $11, $12, $13, $14, $15 / 1e6, $16, $17 }' "$results"
echo "CPU ticks are 1/$TCK s; each CPU window is $WINDOW s."
for col in 2:idle_rss_kB 3:idle_hwm_kB 4:idle_anon_kB 5:idle_file_kB 7:idle_cpu_ticks 8:idle_cpu_ns \
    9:meas_rss_kB 10:meas_hwm_kB 11:meas_anon_kB 12:meas_file_kB 14:meas_cpu_ticks 15:meas_cpu_ns 16:data_messages 17:rounds; do
    echo "median ${col#*:}: $(awk -v c="${col%%:*}" '{ print $c }' "$results" | median)"
done
