#!/usr/bin/env bash
# Replicas behind HAProxy at full size, on release builds:
# 1. 200 clients (SDK stateless, legacy, tasks; WebSocket) for 60 s while one
#    replica drains and another is killed (tests/replicas/run.py; CI runs it
#    small on debug builds);
# 2. the balancer's cost: stateless calls through HAProxy to 3 replicas beside
#    one replica without it, alternating rounds (examples/load.rs).
# Needs what scripts/test.sh installs (.venv, .venv-ws, Debian's haproxy and
# redis-server). Reports go to target/replicas/.
set -euo pipefail
cd "$(dirname "$0")/.."
clients="${CLIENTS:-200}"
seconds="${SECONDS_RUN:-60}"
cargo build --release --locked --features redis --example server --example load
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target/replicas"
.venv/bin/python tests/replicas/run.py --server "$target/release/examples/server" \
  --ws-python .venv-ws/bin/python --clients "$clients" --seconds "$seconds" \
  --report "$target/replicas/chaos.json"
.venv/bin/python tests/replicas/run.py --server "$target/release/examples/server" \
  --throughput-load "$target/release/examples/load" --report "$target/replicas/throughput.json" |
  tee "$target/replicas/throughput.json"
