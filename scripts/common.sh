# Shell helpers shared by the benchmark scripts (sourced, not run).

# Waits until something listens on 127.0.0.1:$1, checking every $2 seconds
# (default 0.05) for at most $3 seconds (default 10); fails after that.
wait_port() {
  local port="$1" every="${2:-0.05}" limit="${3:-10}" waited=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if awk -v w="$waited" -v l="$limit" 'BEGIN {exit !(w >= l)}'; then
      echo "nothing listens on port $port" >&2
      return 1
    fi
    sleep "$every"
    waited="$(awk -v w="$waited" -v e="$every" 'BEGIN {print w + e}')"
  done
}
