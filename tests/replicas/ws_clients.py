"""WebSocket clients for tests/replicas/run.py (the Python SDK 1.x's client, its own venv).

Each client opens a socket through the balancer, initializes and calls
execute_query with a number its answer must carry back, until --seconds
pass. A socket that closes under it (its replica drained or died) is
counted and opened again; a wrong answer, or a failure on a socket that
stays open, is an error. Prints one JSON line: ok, errors, reconnects and
the first errors.
"""

import argparse
import json
import time

import anyio
from mcp import ClientSession
from mcp.client.websocket import websocket_client

CLOSED = ("ClosedResourceError", "ConnectionClosed", "ConnectionClosedError", "ConnectionClosedOK",
          "EndOfStream", "BrokenResourceError", "WebSocketException", "InvalidStatus", "OSError",
          "ConnectionRefusedError")


async def client(url: str, n: int, stop: float, tally: dict):
    k = n * 1_000_000
    while time.monotonic() < stop:
        opened = False
        try:
            async with websocket_client(url) as (read, write):
                async with ClientSession(read, write) as session:
                    with anyio.fail_after(10):
                        await session.initialize()
                    opened = True
                    while time.monotonic() < stop:
                        k += 1
                        with anyio.fail_after(10):
                            result = await session.call_tool("execute_query", {"query": f"SELECT {k} AS v"})
                        if result.isError or not result.structuredContent:
                            got = f"a failed call: {result.content[0].text if result.content else result}"
                        else:
                            got = result.structuredContent["rows"][0][0]
                        if got != k:
                            tally["errors"].append(f"asked {k}, got {got}")
                        else:
                            tally["ok"] += 1
            return
        except BaseException as e:  # noqa: BLE001 - the SDK raises groups; every failure is counted
            names = {type(x).__name__ for x in flatten(e)}
            if socket_closed(e) and time.monotonic() < stop:
                # The socket closed under us (its replica drained or died): open another.
                tally["reconnects"] += 1
                if not opened and tally["reconnects"] > 50 * (n + 1):
                    tally["errors"].append("cannot reconnect")
                    return
                await anyio.sleep(0.2)
                continue
            if time.monotonic() >= stop:
                return
            tally["errors"].append(f"{sorted(names)}: {e}")
            await anyio.sleep(0.2)


def socket_closed(e: BaseException) -> bool:
    """Whether `e` says the socket closed (not that a call failed on an open one)."""
    for x in flatten(e):
        if type(x).__name__ in CLOSED:
            return True
        # The SDK's own error for a request whose connection went away.
        if type(x).__name__ == "McpError" and "connection closed" in str(x).lower():
            return True
    return False


def flatten(e: BaseException):
    yield e
    for inner in getattr(e, "exceptions", ()) or ():
        yield from flatten(inner)
    if e.__cause__ is not None:
        yield from flatten(e.__cause__)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    tally = {"ok": 0, "errors": [], "reconnects": 0}
    stop = time.monotonic() + args.seconds
    async with anyio.create_task_group() as tg:
        for n in range(args.clients):
            tg.start_soon(client, args.url, n, stop, tally)
    print(json.dumps({
        "clients": args.clients, "ok": tally["ok"], "errors": len(tally["errors"]),
        "reconnects": tally["reconnects"], "first_errors": tally["errors"][:5],
    }))


if __name__ == "__main__":
    anyio.run(main)
