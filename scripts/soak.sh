#!/usr/bin/env bash
# The load and soak test at full size: 2,000 WebSocket clients and 200 HTTP
# keep-alive clients (half stateless, half on sessions) calling the SQLite
# demo warehouse for 60 s against the release daemon. CI runs the same test
# small (tests/soak.rs defaults). Sizes can be changed with SOAK_WS_CLIENTS,
# SOAK_HTTP_CLIENTS and SOAK_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example server
SOAK_WS_CLIENTS="${SOAK_WS_CLIENTS:-2000}" \
SOAK_HTTP_CLIENTS="${SOAK_HTTP_CLIENTS:-200}" \
SOAK_SECONDS="${SOAK_SECONDS:-60}" \
    cargo test --release --test soak -- --nocapture
