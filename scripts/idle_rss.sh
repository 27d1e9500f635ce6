#!/usr/bin/env bash
# Resident memory per idle connection: N keep-alive HTTP connections
# (2026-07-28 stateless) and then N WebSockets, each from a loopback address
# of its own, each making one call and then held idle, against the release
# daemon (demo warehouse); the daemon's RSS before they open and while all
# are held, divided by N.
#
# Then N WebSockets again, opened in WAVES waves (default 5) PAUSE seconds
# apart (default 3): sockets arriving over time, where later ones reuse what
# earlier, dozing ones freed.
#
#   bash scripts/idle_rss.sh          # N=5000
#   N=1000 bash scripts/idle_rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/common.sh
. scripts/common.sh

N="${N:-5000}"
PORT="${PORT:-18831}"
# Each process (the daemon, the load generator) holds N sockets and then some.
want=$((N + 1024))
hard="$(ulimit -Hn)"
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  echo "the open-file limit ($hard) is below $want: lower N" >&2
  exit 1
fi
ulimit -n "$want"

cargo build --release --quiet --example server --example load
daemon=target/release/examples/server
load=target/release/examples/load

work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Waits until the load generator writing stderr to $1 holds all its
# connections; $2 names it if it never does.
wait_holding() {
  for _ in $(seq 1200); do
    if grep -q '^holding' "$1"; then return; fi
    sleep 0.1
  done
  echo "$2: the connections were not all held" >&2
  cat "$1" >&2
  exit 1
}

# $1: load mode; $2: URL ({port} replaced).
measure() {
  local mode="$1" port="$PORT" url
  PORT=$((PORT + 1))
  url="${2//\{port\}/$port}"
  "$daemon" --port "$port" --max-connections $((N + 100)) --max-connections-per-client $((N + 100)) --max-sessions $((N + 100)) >/dev/null 2>&1 &
  local pid=$!
  wait_port "$port" 0.1 30
  # One call first: what the first call builds lazily belongs to the baseline.
  "$load" --url "$url" --mode "$mode" --connections 1 --calls 1 --check none >/dev/null
  local before during
  before="$(rss "$pid")"
  "$load" --url "$url" --mode "$mode" --connections "$N" --calls 1 --duration 120 \
    --hold 5 --spread --check none >"$work/out" 2>"$work/err" &
  local loader=$!
  wait_holding "$work/err" "$mode"
  sleep 1
  during="$(rss "$pid")"
  wait "$loader" || { echo "$mode: the load failed" >&2; cat "$work/out" "$work/err" >&2; exit 1; }
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$mode: $N idle connections: daemon RSS $before -> $during KiB, $(((during - before) * 1024 / N)) bytes each"
}

# WebSockets opened in waves, each wave held until all are measured.
measure_waves() {
  local port="$PORT" waves="${WAVES:-5}" pause="${PAUSE:-3}" url
  PORT=$((PORT + 1))
  url="ws://127.0.0.1:$port/ws"
  "$daemon" --port "$port" --max-connections $((N + 100)) --max-connections-per-client $((N + 100)) --max-sessions $((N + 100)) >/dev/null 2>&1 &
  local pid=$!
  wait_port "$port" 0.1 30
  "$load" --url "$url" --mode ws --connections 1 --calls 1 --check none >/dev/null
  local before during w per=$((N / waves)) loaders=()
  before="$(rss "$pid")"
  for w in $(seq 1 "$waves"); do
    "$load" --url "$url" --mode ws --connections "$per" --calls 1 --duration 300 \
      --hold $(((waves - w) * (pause + 3) + 10)) --spread --check none \
      >"$work/out$w" 2>"$work/err$w" &
    loaders+=($!)
    wait_holding "$work/err$w" "ws wave $w"
    sleep "$pause"
  done
  during="$(rss "$pid")"
  for l in "${loaders[@]}"; do
    wait "$l" || { echo "ws waves: a load failed" >&2; cat "$work"/out* "$work"/err* >&2; exit 1; }
  done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "ws in $waves waves ${pause}s apart: $((per * waves)) idle connections: daemon RSS $before -> $during KiB, $(((during - before) * 1024 / (per * waves))) bytes each"
}

measure stateless "http://127.0.0.1:{port}/mcp"
measure ws "ws://127.0.0.1:{port}/ws"
measure_waves
