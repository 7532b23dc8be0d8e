#!/usr/bin/env bash
# Measures an idle sigil-agent daemon: resident memory, and CPU time over a window without a
# rotation, with its Workload API socket open. Uses release binaries against a local authority
# on loopback.
#
# Usage: scripts/agent-idle.sh [WINDOW_SECONDS]    (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
window=${1:-60}

cargo build --release --quiet -p sigil-cli -p sigil-agent
sigil=$PWD/target/release/sigil
agent=$PWD/target/release/sigil-agent

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export SIGIL_DATA_DIR=$work/data
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export SIGIL_SERVER=https://127.0.0.1:$port

"$sigil" init --trust-domain bench.example >/dev/null
SIGIL_LOG=warn "$sigil" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" &
for _ in $(seq 100); do curl -sf --cacert "$work/data/bundle.pem" "$SIGIL_SERVER/healthz" >/dev/null && break; sleep 0.1; done

"$sigil" owner add bench@example.org >/dev/null
"$sigil" agent register idle-bot --owner bench@example.org --ttl 1h >/dev/null
token=$("$sigil" token create idle-bot 2>/dev/null)

SIGIL_LOG=warn "$agent" run --server "$SIGIL_SERVER" --bundle "$work/data/bundle.pem" \
    --join-token "$token" --out "$work/agent" --socket "$work/agent.sock" 2>"$work/agent.log" &
pid=$!
for _ in $(seq 100); do [ -S "$work/agent.sock" ] && [ -f "$work/agent/svid.pem" ] && break; sleep 0.1; done
sleep 2

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
before=$(cpu)
sleep "$window"
after=$(cpu)

rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
echo "sigil-agent idle for ${window}s (SVID lifetime 1h, no rotation in the window)"
echo "resident memory: $((rss / 1024)).$(( (rss % 1024) * 10 / 1024 )) MiB (peak $((hwm / 1024)).$(( (hwm % 1024) * 10 / 1024 )) MiB)"
echo "CPU time: $(( (after - before) * 1000 / ticks )) ms over ${window}s"
