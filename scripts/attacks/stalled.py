"""Clients that ask for megabyte answers and never read them: N HTTP
connections (three calls pipelined on each) or N WebSockets (a session and
four calls each), from four loopback addresses, each with a 4 KiB receive
window. Python's standard library only.

    python3 stalled.py http|ws N PORT [SECONDS]
"""
import json
import socket
import struct
import sys
import time

KIND, N, PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
HOLD = float(sys.argv[4]) if len(sys.argv) > 4 else 24.0
SQL = "SELECT zeroblob(1500000) AS b"


def http_call(i):
    body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
        "name": "execute_query", "arguments": {"query": SQL},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientInfo": {"name": "stalled", "version": "0"},
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
    return (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nContent-Type: application/json\r\n"
            "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
            "Mcp-Method: tools/call\r\nMcp-Name: execute_query\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def frame(message):
    payload = json.dumps(message).encode()
    return bytes([0x81, 0x80 | 127]) + struct.pack(">Q", len(payload)) + b"\0\0\0\0" + payload


def ws_opening():
    sent = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mcp\r\n\r\n").encode()
    sent += frame({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "stalled", "version": "0"}}})
    sent += frame({"jsonrpc": "2.0", "method": "notifications/initialized"})
    for i in range(1, 5):
        sent += frame({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
            "name": "execute_query", "arguments": {"query": SQL}}})
    return sent


def main():
    held = []
    block = 9 if KIND == "http" else 10
    for k in range(N):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind((f"127.{block}.{1 + k % 4}.1", 0))
        s.connect(("127.0.0.1", PORT))
        if KIND == "http":
            s.sendall(http_call(k * 10) + http_call(k * 10 + 1) + http_call(k * 10 + 2))
        else:
            s.sendall(ws_opening())
        held.append(s)
    time.sleep(HOLD)


main()
