#!/usr/bin/env bash
# Ours against reference servers, end to end, on this machine: every server
# pinned to one core, the load generator (examples/load.rs) to the other,
# each server run in turn, round after round (A B C ... A B C ...), so slow
# drifts of the machine touch every server alike. Prints each one's median
# calls/s and p99 over the rounds, and the ratios.
#
#   bash scripts/perf.sh                       # 3 rounds of 5 s, 32 connections
#   ROUNDS=5 RUN_SECONDS=10 bash scripts/perf.sh
#   CONNECTIONS=8 bash scripts/perf.sh
#
# The servers (all serve the conformance fixture's `test_simple_text`, a
# tool with no arguments answering one fixed line):
#   ours-stateless  examples/conformance, 2026-07-28 stateless POSTs, JSON answers
#   ours-session    examples/conformance, a 2025-06-18 session per connection (SSE answers)
#   ours-ws         examples/conformance over WebSocket, 8 calls in flight per socket
#   ours-stdio      examples/conformance over stdio: one process (one client), 8 calls in flight
#   ours-sql        examples/server (SQLite demo): execute_query `SELECT 1`, a real warehouse call
#   rmcp-stateless  rmcp (the official Rust SDK) on axum, stateless, JSON answers
#   rmcp-session    rmcp with legacy sessions (SSE answers)
#   hyper-floor     bare hyper 1.x: reads the body, answers fixed JSON of the same size
#   ws-floor        tokio-tungstenite echoing every message (8 in flight per socket)
# The reference servers live in benches/refs (a crate of their own, built
# here only). Answers are checked for status (HTTP 200 with a whole body) or
# count (one WebSocket or stdio message per call), the same client work for
# every server; tests/load_tool.rs checks every answer's id and content.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/common.sh
. scripts/common.sh

ROUNDS="${ROUNDS:-3}"
RUN_SECONDS="${RUN_SECONDS:-5}"
CONNECTIONS="${CONNECTIONS:-32}"
SERVER_CPU="${SERVER_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
PORT="${PORT:-18431}"

cargo build --release --quiet --example conformance --example server --example load
(cd benches/refs && cargo build --release --quiet)
ours=target/release/examples/conformance
daemon=target/release/examples/server
refs=benches/refs/target/release/refs
load=target/release/examples/load

work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

names=(ours-stateless rmcp-stateless hyper-floor ours-session rmcp-session ours-ws ws-floor ours-stdio ours-sql)

# The server command (empty: none to start) and load flags of a target.
describe() {
  local port="$2" url="http://127.0.0.1:$2/mcp" ws="ws://127.0.0.1:$2/ws"
  local simple=(--tool test_simple_text --args '{}')
  connections="$CONNECTIONS"
  case "$1" in
    ours-stateless) server=("$ours" --port "$port"); flags=(--mode stateless --url "$url" "${simple[@]}") ;;
    rmcp-stateless) server=("$refs" rmcp-stateless "$port"); flags=(--mode stateless --url "$url" "${simple[@]}") ;;
    hyper-floor) server=("$refs" hyper "$port"); flags=(--mode stateless --url "$url" "${simple[@]}") ;;
    ours-session) server=("$ours" --port "$port"); flags=(--mode session --url "$url" "${simple[@]}") ;;
    rmcp-session) server=("$refs" rmcp-session "$port"); flags=(--mode session --url "$url" "${simple[@]}") ;;
    ours-ws) server=("$ours" --port "$port"); flags=(--mode ws --url "$ws" --in-flight 8 "${simple[@]}") ;;
    ws-floor) server=("$refs" ws-echo "$port"); flags=(--mode ws --url "$ws" --in-flight 8 "${simple[@]}") ;;
    ours-stdio)
      # One client, as stdio has: one server process, 8 calls in flight.
      server=()
      connections=1
      flags=(--mode stdio --in-flight 8 --command "taskset -c $SERVER_CPU $ours" "${simple[@]}")
      ;;
    ours-sql)
      server=("$daemon" --port "$port")
      flags=(--mode stateless --url "$url" --tool execute_query --args '{"query":"SELECT 1 AS one"}')
      ;;
  esac
}

# One run of one target: its summary line in $work/<name>.<round>.
run() {
  local name="$1" round="$2" port="$PORT" pid=""
  PORT=$((PORT + 1))
  describe "$name" "$port"
  if [ "${#server[@]}" -gt 0 ]; then
    taskset -c "$SERVER_CPU" "${server[@]}" >/dev/null 2>&1 &
    pid=$!
    wait_port "$port"
  fi
  taskset -c "$LOAD_CPU" "$load" "${flags[@]}" --check none --connections "$connections" \
    --duration "$RUN_SECONDS" >"$work/$name.$round" 2>"$work/$name.$round.err" ||
    { echo "$name round $round failed:" >&2; tail -5 "$work/$name.$round.err" >&2; exit 1; }
  if [ -n "$pid" ]; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)"
echo "rounds: $ROUNDS x $RUN_SECONDS s, $CONNECTIONS connections; servers on core $SERVER_CPU, load on core $LOAD_CPU"
for round in $(seq "$ROUNDS"); do
  for name in "${names[@]}"; do
    run "$name" "$round"
  done
done

python3 - "$work" "${names[@]}" <<'PY'
import statistics, sys, pathlib
work, names = pathlib.Path(sys.argv[1]), sys.argv[2:]
fig = {}
for name in names:
    runs = []
    for f in sorted(work.glob(name + ".*")):
        if f.suffix == ".err":
            continue
        kv = dict(p.split("=", 1) for p in f.read_text().split() if "=" in p)
        runs.append((float(kv["calls_per_s"]), float(kv["p99_us"]), float(kv["p50_us"])))
    fig[name] = tuple(statistics.median(r[i] for r in runs) for i in range(3))
print()
print("| server | calls/s (median) | p50 µs | p99 µs |")
print("| --- | ---: | ---: | ---: |")
for name in names:
    rps, p99, p50 = fig[name]
    print(f"| {name} | {rps:,.0f} | {p50:.0f} | {p99:.0f} |")
print()
def ratio(a, b):
    (ra, pa, _), (rb, pb, _) = fig[a], fig[b]
    print(f"{a} / {b}: {ra / rb:.2f}x the calls/s, {pa / pb:.2f}x the p99")
for a, b in [("ours-stateless", "hyper-floor"), ("ours-stateless", "rmcp-stateless"),
             ("ours-stateless", "rmcp-session"), ("ours-session", "rmcp-session"),
             ("ours-session", "hyper-floor"), ("ours-ws", "ws-floor")]:
    ratio(a, b)
PY
