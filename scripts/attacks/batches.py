"""Many 2025-03-26 batches at once, each gathering large answers while its
next member waits behind the others' (the release-size version of
tests/hostile.rs, batches_at_once_gather_within_the_memory_budget).
Python's standard library only. Each of four loopback addresses opens a
session; CONNECTIONS connections, spread over the four, each post one batch
of MEMBERS calls with answers of about 0.9 MB, and read their answers.
Prints how the calls were answered.

    python3 batches.py PORT [CONNECTIONS] [MEMBERS]     # 400, 5
"""
import collections
import json
import sys
import threading

import mcp_http

PORT = int(sys.argv[1])
CONNECTIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 400
MEMBERS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
SLOW_BIG = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) "
            "SELECT count(*) AS n, zeroblob(700000) AS b FROM c")
SOURCES = ["127.0.0.%d" % (2 + i) for i in range(4)]


def outcome(answer):
    if "error" in answer:
        return answer["error"]["message"][:60]
    if answer["result"].get("isError"):
        return answer["result"]["content"][0]["text"][:60]
    return "ran"


def main():
    sessions = {source: mcp_http.open_session(PORT, "2025-03-26", source, "batches")
                for source in SOURCES}
    counts = collections.Counter()
    lock = threading.Lock()

    def one(k):
        source = SOURCES[k % len(SOURCES)]
        batch = [{"jsonrpc": "2.0", "id": k * 100 + i, "method": "tools/call",
                  "params": {"name": "execute_query", "arguments": {"query": SLOW_BIG}}}
                 for i in range(MEMBERS)]
        try:
            _, data = mcp_http.post(PORT, batch, sessions[source], source, timeout=300)
            text = data.decode()
            if not text.lstrip().startswith("["):
                text = [l[5:] for l in text.splitlines() if l.startswith("data:")][-1]
            found = [outcome(a) for a in json.loads(text)]
        except (OSError, ValueError, IndexError) as e:
            found = ["failed: %s" % e]
        with lock:
            counts.update(found)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for what, n in counts.most_common():
        print(n, what)


main()
