#!/usr/bin/env bash
# Runs the Autobahn WebSocket cases (groups 1-10; 12 and 13, compression,
# are out while the server declines it) against examples/ws_echo.rs, our
# HTTP engine and handshake with tokio-tungstenite frames, using PyPI
# `kosoku` from .venv-autobahn. Every case must be OK, NON-STRICT or
# INFORMATIONAL, and every close clean (OK or INFORMATIONAL).
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --locked --features fuzzing,tls,redis --example ws_echo
work="$(mktemp -d)"
log="$work/server.log"
./target/debug/examples/ws_echo 0 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
addr=""
for _ in $(seq 1 100); do
  addr="$(sed -n 's|^listening on ws://||p' "$log")"
  [ -n "$addr" ] && break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "ws_echo did not start:" >&2
  cat "$log" >&2
  exit 1
fi

(cd "$work" && "$OLDPWD/.venv-autobahn/bin/kosoku" -m fuzzingclient -x '12.*' -x '13.*' -o reports "$addr")

.venv-autobahn/bin/python - "$work/reports/index.json" <<'PY'
import collections, json, sys

report = json.load(open(sys.argv[1]))
(agent, cases), = report.items()
behaviors = collections.Counter(r["behavior"] for r in cases.values())
closes = collections.Counter(r.get("behaviorClose") for r in cases.values())
bad = [
    (case, r["behavior"], r.get("behaviorClose"))
    for case, r in sorted(cases.items())
    if r["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL")
    or r.get("behaviorClose") not in ("OK", "INFORMATIONAL")
]
print(f"autobahn: {len(cases)} cases; behavior {dict(behaviors)}; close {dict(closes)}")
if len(cases) < 300 or bad:
    print(f"failing cases: {bad}", file=sys.stderr)
    sys.exit(1)
PY
