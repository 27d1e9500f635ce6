#!/usr/bin/env bash
# Runs every fuzz target for a long time, one after the other, and reports
# each one's executions in total and per second.
#
#   bash scripts/fuzz_long.sh                  # 1 hour per target
#   FUZZ_SECONDS=600 bash scripts/fuzz_long.sh # 10 minutes per target
#   bash scripts/fuzz_long.sh sql_guard        # one target
#   FUZZ_SANITIZER=address bash ...            # with AddressSanitizer (about 4x slower)
#   FUZZ_JOBS=1 bash ...                       # one process (default: one per core, libFuzzer's fork mode)
#
# The session target (a whole MCP conversation per input) is built without
# comparison tracing (its steps are picked by input bytes, not matched
# against constants) in its own target directory, and its inputs are held to
# 512 bytes (256 steps): together with one process per core, about four
# times the executions per second.
#
# The corpora grow in fuzz/corpus/<target> (ignored by git; CI's short runs
# use them too when present), crashes land in fuzz/artifacts/<target>. Needs
# cargo-fuzz and a nightly toolchain (scripts/test.sh installs the first;
# without nightly, RUSTC_BOOTSTRAP unlocks the flags on stable).
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-3600}"
# The crate has no unsafe code of its own; without a sanitizer the targets
# run about four times faster, so a long run reaches its millions.
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}"
FUZZ_JOBS="${FUZZ_JOBS:-$(nproc)}"
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=(http_head jsonrpc_message ws_handshake sql_guard http_conn mcp_session)
fi

toolchain=""
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain="+nightly"
else
  export RUSTC_BOOTSTRAP=1
fi

report=()
cd fuzz
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  build=()
  flags=(-max_total_time="$FUZZ_SECONDS" -dict="dicts/$target.dict" -print_final_stats=1)
  if [ "$target" = mcp_session ]; then
    build=(--no-trace-compares --target-dir target-lean)
    flags+=(-max_len=512)
  fi
  if [ "$FUZZ_JOBS" -gt 1 ]; then
    flags+=(-fork="$FUZZ_JOBS")
  fi
  # shellcheck disable=SC2086
  cargo $toolchain fuzz run -s "$FUZZ_SANITIZER" "${build[@]}" "$target" "corpus/$target" "seeds/$target" -- \
    "${flags[@]}" >"$log" 2>&1 ||
    { tail -40 "$log" >&2; echo "fuzz target $target failed; crash inputs are in fuzz/artifacts/$target" >&2; exit 1; }
  if [ "$FUZZ_JOBS" -gt 1 ]; then
    # Fork mode: the last progress line holds the total, the summary the time.
    runs="$(grep -Eo '^#[0-9]+: cov' "$log" | grep -Eo '[0-9]+' | tail -1)"
    secs="$(grep -Eo 'fuzzed for [0-9]+ second' "$log" | grep -Eo '[0-9]+' | tail -1)"
  else
    runs="$(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)"
    secs="$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -Eo '[0-9]+ second' | grep -Eo '[0-9]+' | tail -1)"
  fi
  rm -f "$log"
  report+=("$(printf '%-16s %12s runs in %6s s: %8s runs/s' "$target" "$runs" "$secs" "$((runs / (secs > 0 ? secs : 1)))")")
done
printf '%s\n' "${report[@]}"
