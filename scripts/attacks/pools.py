"""Fills the daemon's kept pools at once: task results, answers kept for
resumption, and large request bodies held open. Python's standard library
only. Prints "bodies held" once all are in place, then keeps them held.

    python3 pools.py PORT [SECONDS]
"""
import json
import socket
import sys
import threading
import time

import mcp_http

PORT = int(sys.argv[1])
HOLD = float(sys.argv[2]) if len(sys.argv) > 2 else 40.0
BIG = "SELECT zeroblob(700000) AS b"
SLOW_BIG = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) "
            "SELECT count(*) AS n, zeroblob(700000) AS b FROM c")
BODY = 4 * 1024 * 1024


def post(body, headers, source):
    return mcp_http.post(PORT, body, headers, source)


def last_message(data):
    text = data.decode()
    if text.lstrip().startswith("{"):
        return json.loads(text)
    return json.loads([l[5:] for l in text.splitlines() if l.startswith("data:")][-1])


def stateless(method, params, source):
    params = dict(params)
    params["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {
            "extensions": {"io.modelcontextprotocol/tasks": {}}},
    }
    name = params.get("name") or params.get("taskId")
    _, data = post({"jsonrpc": "2.0", "id": 9, "method": method, "params": params},
                   {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method, "Mcp-Name": name},
                   source)
    return last_message(data)


def tasks(source, count=80):
    """Task results of about 2 MB each (run with --query-task-after 0ms)."""
    for i in range(count):
        made = stateless("tools/call", {"name": "execute_query", "arguments": {"query": SLOW_BIG}},
                         source)
        task = made["result"]["taskId"]
        if i % 4 == 3:
            while stateless("tasks/get", {"taskId": task}, source)["result"]["status"] == "working":
                time.sleep(0.02)


def kept_answers(k, calls=16):
    """A 2025-06-18 session whose 2.8 MB answers are kept for resumption."""
    source = f"127.11.{1 + k % 4}.1"
    headers = mcp_http.open_session(PORT, "2025-06-18", source, "pools")
    for i in range(calls):
        post({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call", "params": {
            "name": "execute_query", "arguments": {"query": BIG}}}, headers, source)


def held_bodies(count=20):
    """Clients sending a 4 MiB body and holding back its last byte."""
    ping = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"'
    ping = ping + b"x" * (BODY - 3 - len(ping)) + b'"}}'
    held = []
    for k in range(count):
        s = socket.socket()
        s.bind((f"127.13.{1 + k % 4}.1", 0))
        s.connect(("127.0.0.1", PORT))
        s.sendall((f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n"
                   "Content-Type: application/json\r\n"
                   "Accept: application/json, text/event-stream\r\n"
                   f"MCP-Protocol-Version: 2025-06-18\r\nContent-Length: {BODY}\r\n\r\n").encode())
        try:
            s.sendall(ping[:BODY - 1])
        except OSError:
            pass  # refused (503) before its body was read
        held.append(s)
    return held


def main():
    threads = [threading.Thread(target=tasks, args=(f"127.12.{a}.1",)) for a in (1, 2)]
    threads += [threading.Thread(target=kept_answers, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = held_bodies()
    print("bodies held", flush=True)
    time.sleep(HOLD)
    del held


main()
