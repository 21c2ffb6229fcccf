#!/usr/bin/env bash
# Runs every test of the workspace, on a fresh machine too: installs what the
# tests need and the machine lacks (mosquitto, mosquitto-clients), checks
# formatting and lints, then runs all tests. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 && command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The tests start their own brokers on free ports; a packaged mosquitto
# service on 1883 (if the package started one) is not used.

echo "test.sh: cargo fmt --check" >&2
cargo fmt --all -- --check
echo "test.sh: cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets -j2 -- -D warnings
echo "test.sh: cargo test" >&2
cargo test --workspace -j2
