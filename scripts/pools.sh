#!/usr/bin/env bash
# Every bounded pool of the daemon filled at once, at full size, against the
# release build (the CI-sized version is tests/hostile.rs,
# every_pool_full_at_once_stays_within_the_memory_budget): task results,
# answers kept for resumption, large bodies held open, then N HTTP and N
# WebSocket clients that never read their megabyte answers. Prints the
# daemon's peak RSS after the kept pools and at the end, and what /status
# says the pools hold.
#
#   bash scripts/pools.sh          # N = 500
#   N=250 bash scripts/pools.sh
#   bash scripts/pools.sh --malloc-mmap-threshold 131072   # more daemon flags
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500}
cargo build -q --release --example server
out=$(mktemp -d)
target/release/examples/server --port 0 --query-task-after 0ms "$@" >"$out/out" 2>"$out/err" &
daemon=$!
trap 'kill $daemon 2>/dev/null || true; pkill -P $$ 2>/dev/null || true; rm -rf "$out"' EXIT
port=""
for _ in $(seq 100); do
    port=$(grep -ho "127.0.0.1:[0-9]*" "$out/out" "$out/err" | head -1 | cut -d: -f2) && [ -n "$port" ] && break
    sleep 0.1
done
rss() { grep -E "VmHWM|VmRSS" "/proc/$daemon/status" | tr -s ' \t\n' ' '; echo; }
python3 scripts/attacks/pools.py "$port" 60 >"$out/pools" 2>&1 &
until grep -q "bodies held" "$out/pools"; do sleep 1; done
echo "kept pools full: $(rss)"
python3 scripts/attacks/stalled.py http "$N" "$port" 30 &
sleep 3
python3 scripts/attacks/stalled.py ws "$N" "$port" 25 &
sleep 20
echo "with $N + $N clients that stop reading: $(rss)"
curl -s "http://127.0.0.1:$port/status" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("memory", d["memory"], "backlog", d["backlog"])'
