#!/usr/bin/env bash
# Runs every test of the workspace, on a fresh machine too: installs what the
# tests need and the machine lacks (mosquitto, mosquitto-clients, postgresql,
# prometheus, chromium and node for the browser test, monitoring-plugins-basic,
# nagios4-core, procps, and gcc and
# make for jemalloc), and the browser test's npm packages (npm ci),
# checks formatting and lints, then runs all tests. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 && command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
# The store's tests run initdb/postgres from the newest /usr/lib/postgresql/*/bin.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# The metrics tests scrape with a real Prometheus (bot-testkit's Prometheus).
[ -x /usr/bin/prometheus ] || command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
# The dashboard's browser test: Debian's Chromium, driven from Node
# (playwright-core, installed by npm ci below; it downloads no browser).
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# The check tests run Debian's monitoring plugins as they are.
[ -x /usr/lib/nagios/plugins/check_load ] || missing+=(monitoring-plugins-basic)
# The Nagios bridge's test feeds a real Nagios 4 (run by the test, in a
# directory of its own).
[ -x /usr/sbin/nagios4 ] || missing+=(nagios4-core)
# The exec tests look for a command's background children with pgrep.
command -v pgrep >/dev/null 2>&1 || missing+=(procps)
# jemalloc (the `bot` binary's allocator) is built from C sources.
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v make >/dev/null 2>&1 || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Whether something already serves PostgreSQL's default port (then it is
    # not ours to stop).
    pg_port_was_busy=false
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && pg_port_was_busy=true
    $sudo apt-get update -qq
    # prometheus, monitoring-plugins-basic and nagios4-core are installed
    # without their recommends (another service, snmp, perl modules, the web
    # interface: not used); the other packages keep theirs (gcc needs
    # libc6-dev).
    others=()
    norec=()
    for p in "${missing[@]}"; do
        case "$p" in
            prometheus | monitoring-plugins-basic | nagios4-core) norec+=("$p") ;;
            *) others+=("$p") ;;
        esac
    done
    if [ ${#others[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${others[@]}" >/dev/null
    fi
    if [ ${#norec[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${norec[@]}" >/dev/null
    fi
    if [[ " ${missing[*]} " == *" prometheus "* ]]; then
        # The package enables (and under systemd starts) a service on 9090:
        # the tests run their own on free ports, so stop and disable it.
        if [ -d /run/systemd/system ]; then
            $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
        else
            $sudo service prometheus stop >/dev/null 2>&1 || true
        fi
    fi
    # The package creates and may start a default cluster on 5432: stop it
    # (the tests run private clusters on free ports).
    if [[ " ${missing[*]} " == *" postgresql "* ]] && ! $pg_port_was_busy && command -v pg_lsclusters >/dev/null 2>&1; then
        pg_lsclusters -h 2>/dev/null | while read -r version cluster _port status _rest; do
            if [ "$status" = online ]; then
                echo "test.sh: stopping the packaged PostgreSQL cluster $version/$cluster" >&2
                $sudo pg_ctlcluster "$version" "$cluster" stop || true
            fi
        done
    fi
fi
# The tests start their own brokers and PostgreSQL clusters on free ports; a
# packaged mosquitto service on 1883 (if the package started one) is not used,
# nor a prometheus on 9090.

# The browser test's packages, exactly as locked (playwright-core only).
if [ ! -d crates/bot/tests/browser/node_modules/playwright-core ] ||
    [ crates/bot/tests/browser/package-lock.json -nt crates/bot/tests/browser/node_modules ]; then
    echo "test.sh: npm ci (crates/bot/tests/browser)" >&2
    (cd crates/bot/tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "test.sh: cargo fmt --check" >&2
cargo fmt --all -- --check
echo "test.sh: cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets -j2 -- -D warnings
# The fleet build (agent + CLI, no broker, server or WebSocket) too.
cargo clippy -p bot --no-default-features --all-targets -j2 -- -D warnings
echo "test.sh: cargo test" >&2
# A hung test must fail the run, with the name libtest printed ("has been
# running for over 60 seconds"), well before CI's own limit.
timeout --kill-after=30s 50m cargo test --workspace -j2
