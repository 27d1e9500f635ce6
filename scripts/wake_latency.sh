#!/usr/bin/env bash
# How long the daemon's runtime threads (async workers and blocking threads)
# wait for a CPU once woken, while a hostile client attacks it: each attack
# of tests/hostile.rs named in ATTACKS runs ROUNDS times under the kernel's
# scheduler trace (perf, sched_switch and sched_wakeup), and for every
# wake-up of those threads the time until it runs is taken. Prints, per
# run, the victim's p99 ratios the test reports, then the wake-ups, their
# p50, p99 and p99.9, and how many waited over 300 us (with their sum).
#
#   bash scripts/wake_latency.sh
#   ATTACKS="batches" ROUNDS=4 HOSTILE_WINDOW_SECS=10 bash scripts/wake_latency.sh
#   SERVER_BIN=/path/to/other/server bash scripts/wake_latency.sh   # another build
#
# Needs perf with access to the sched tracepoints (root, or a low
# kernel.perf_event_paranoid) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

ATTACKS="${ATTACKS:-batches resumption huge large_websocket_answers}"
ROUNDS="${ROUNDS:-2}"
export HOSTILE_WINDOW_SECS="${HOSTILE_WINDOW_SECS:-4}"

cargo build --release --quiet --example server
test_bin="$(cargo test --release --no-run --test hostile --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "hostile" and m.get("executable"):
        print(m["executable"])')"
if [ -n "${SERVER_BIN:-}" ]; then
  export SNOWFLAKE_MCP_SERVER_BIN="$SERVER_BIN"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

analyse() {
  python3 - "$1" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
def fields(line):
    p = line.split()
    i = next(k for k, x in enumerate(p) if x.startswith('['))
    pid, tid = p[i - 1].split('/')
    return p[0], pid, tid, float(p[i + 1].rstrip(':'))
# The daemon is the process whose threads include the heavy-work ones.
daemon = next(fields(l)[1] for l in lines if l.split()[0].startswith('mcp-heavy-'))
threads = {f[2] for f in map(fields, lines) if f[1] == daemon and f[0] == 'tokio-rt-worker'}
woken, waits = {}, []
for line in lines:
    t = fields(line)[3]
    if 'sched_wakeup:' in line:
        pid = re.search(r' pid=(\d+)', line).group(1)
        if pid in threads:
            woken.setdefault(pid, t)
    elif 'sched_switch:' in line:
        # A wake-up that came while the thread was still on its CPU (about
        # to sleep) ends when it leaves the CPU: a wait starts at the next.
        woken.pop(re.search(r'prev_pid=(\d+)', line).group(1), None)
        nxt = re.search(r'next_pid=(\d+)', line).group(1)
        if nxt in woken:
            waits.append(t - woken.pop(nxt))
waits.sort()
n = len(waits)
at = lambda q: waits[min(n - 1, int(n * q))] * 1e6
long = [w for w in waits if w > 300e-6]
print(f"  {n} wake-ups of {len(threads)} runtime threads: p50 {at(0.5):.0f} us, p99 {at(0.99):.0f} us, "
      f"p99.9 {at(0.999):.0f} us; {len(long)} waited over 300 us ({sum(long) * 1e3:.1f} ms in all)")
PY
}

for attack in $ATTACKS; do
  for round in $(seq 1 "$ROUNDS"); do
    echo "$attack, run $round:"
    if ! perf record -q -e sched:sched_switch -e sched:sched_wakeup -a -o "$work/sched.data" -- \
      "$test_bin" --nocapture --test-threads 1 "$attack" > "$work/test.log" 2>&1; then
      tail -n 30 "$work/test.log" >&2
      echo "the attack's test failed" >&2
      exit 1
    fi
    grep "attack .*x quiet" "$work/test.log" | sed 's/^/  /' || true
    perf script -i "$work/sched.data" -F comm,pid,tid,cpu,time,event,trace 2>/dev/null > "$work/sched.txt"
    analyse "$work/sched.txt"
  done
done
