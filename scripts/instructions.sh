#!/usr/bin/env bash
# Instructions per `tools/call`, counted by callgrind (exact and repeatable,
# whatever else the machine does): the server runs under callgrind while one
# connection makes N calls of the conformance fixture `test_simple_text`,
# then again with 2N; the difference over N is what one more call costs
# (start-up, the connection and the session cancel out).
#
#   bash scripts/instructions.sh               # ours; fails past benches/instructions.txt + 10%
#   bash scripts/instructions.sh --references  # also the hyper floor and rmcp (figures only)
#   CALLS=400 bash scripts/instructions.sh     # N (default 200)
#
# benches/instructions.txt holds the recorded figures: a line per server,
# `name instructions`. Ours (`ours-*`) are checked: the run fails when one
# grows more than 10% past its recorded figure (and says when one fell
# more than 10% below, so the record can be lowered).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/common.sh
. scripts/common.sh

CALLS="${CALLS:-200}"
PORT="${PORT:-18631}"
references=false
[ "${1:-}" = "--references" ] && references=true

cargo build --release --quiet --example conformance --example load
ours=target/release/examples/conformance
refs=benches/refs/target/release/refs
load=target/release/examples/load
if $references; then
  (cd benches/refs && cargo build --release --quiet)
fi

work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# Total instructions of one server run under callgrind serving `calls`
# calls on one connection. $1: calls; $2: load mode; then the server command
# ({port} replaced).
count() {
  local calls="$1" mode="$2" port="$PORT" out="$work/callgrind.$PORT"
  shift 2
  PORT=$((PORT + 1))
  local cmd=("${@//\{port\}/$port}")
  valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" >/dev/null 2>"$work/valgrind.err" &
  local pid=$!
  wait_port "$port" 0.1 60
  "$load" --url "http://127.0.0.1:$port/mcp" --mode "$mode" --connections 1 --calls "$calls" \
    --duration 600 --tool test_simple_text --args '{}' --check none >"$work/load.out" ||
    { cat "$work/load.out" >&2; exit 1; }
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  # The totals line of the profile (callgrind writes it at exit).
  local total
  total="$(grep -E '^(summary|totals):' "$out" | tail -1 | awk '{print $2}')"
  [ -n "$total" ] || { echo "no callgrind totals for ${cmd[*]}" >&2; cat "$work/valgrind.err" >&2; exit 1; }
  echo "$total"
}

# Instructions per call: $1 name, $2 load mode, then the server command.
per_call() {
  local name="$1" mode="$2"
  shift 2
  local one two
  one="$(count "$CALLS" "$mode" "$@")"
  two="$(count $((CALLS * 2)) "$mode" "$@")"
  echo "$name $(((two - one) / CALLS))"
}

measured=()
measured+=("$(per_call ours-stateless stateless "$ours" --port '{port}')")
measured+=("$(per_call ours-session session "$ours" --port '{port}')")
if $references; then
  measured+=("$(per_call hyper-floor stateless "$refs" hyper '{port}')")
  measured+=("$(per_call rmcp-stateless stateless "$refs" rmcp-stateless '{port}')")
  measured+=("$(per_call rmcp-session session "$refs" rmcp-session '{port}')")
fi

status=0
for line in "${measured[@]}"; do
  read -r name n <<<"$line"
  recorded="$(awk -v n="$name" '$1 == n {print $2}' benches/instructions.txt)"
  if [ -z "$recorded" ]; then
    echo "$name: $n instructions per call (nothing recorded)"
    continue
  fi
  change="$(awk -v a="$n" -v b="$recorded" 'BEGIN {printf "%+.1f", (a - b) * 100 / b}')"
  echo "$name: $n instructions per call (recorded $recorded, $change%)"
  if [[ "$name" == ours-* ]]; then
    if [ "$n" -gt $((recorded * 110 / 100)) ]; then
      echo "  $name grew more than 10% past its recorded figure" >&2
      status=1
    elif [ "$n" -lt $((recorded * 90 / 100)) ]; then
      echo "  $name fell more than 10% below its record: lower benches/instructions.txt"
    fi
  fi
done
exit "$status"
