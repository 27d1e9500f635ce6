"""fakesnow's Snowflake-protocol server, with what the Rust `snowflake-api` client needs.

    python tests/fakesnow/serve.py [--port N]

Prints `listening on http://127.0.0.1:PORT` once bound (port 0, the default,
picks a free one) and serves until killed. fakesnow answers Snowflake's REST
protocol over plain HTTP on DuckDB; this wrapper only fills in response fields
the `snowflake-api` crate requires and fakesnow leaves out, and keeps the
null mask of timestamp columns, which fakesnow's Arrow conversion drops.
Nothing here changes what a statement returns.
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import sys

import pyarrow as pa
import pyarrow.compute as pc
import uvicorn

import fakesnow.arrow
import fakesnow.server


def _timestamp_to_sf_struct(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """fakesnow's conversion, with the null mask kept (arrow-rs refuses a struct without one)."""
    if isinstance(ts, pa.ChunkedArray):
        ts = ts.combine_chunks()
    seconds = pc.floor_temporal(ts, unit="second")
    epoch = pc.divide(seconds.cast(pa.int64()), 1_000_000)
    fraction = pc.round(pc.multiply(pc.subsecond(ts), 1_000_000_000)).cast(pa.int32())
    epoch = pc.fill_null(epoch, 0)
    fraction = pc.fill_null(fraction, 0)
    mask = pc.is_null(ts)
    fields = [pa.field("epoch", pa.int64(), nullable=False), pa.field("fraction", pa.int32(), nullable=False)]
    arrays = [epoch, fraction]
    if ts.type.tz:
        # Snowflake encodes the offset as minutes + 1440; fakesnow keeps UTC.
        fields.append(pa.field("timezone", pa.int32(), nullable=False))
        arrays.append(pa.array([1440] * len(ts), type=pa.int32()))
    return pa.StructArray.from_arrays(arrays=arrays, fields=fields, mask=mask)


fakesnow.arrow.timestamp_to_sf_struct = _timestamp_to_sf_struct


def _complete(path: str, payload: dict) -> dict:
    """Adds the fields snowflake-api's response structs require."""
    data = payload.get("data")
    if not payload.get("success", True):
        data = payload.get("data") or {}
        data.setdefault("age", 0)
        data.setdefault("internalError", False)
        data.setdefault("queryId", "")
        data.setdefault("sqlState", data.get("sqlState") or "")
        data.setdefault("errorCode", payload.get("code") or "")
        payload["data"] = data
        payload.setdefault("code", data["errorCode"])
        payload.setdefault("message", "")
        return payload
    if path.endswith("/login-request") and isinstance(data, dict):
        data.setdefault("sessionId", 1)
        data.setdefault("masterToken", "master-" + str(data.get("token", "")))
        data.setdefault("validityInSeconds", 3600)
        data.setdefault("masterValidityInSeconds", 14400)
        data.setdefault("displayUserName", "TEST")
        data.setdefault("firstLogin", False)
        info = data.setdefault("sessionInfo", {})
        info.setdefault("roleName", "SYSADMIN")
        info.setdefault("warehouseName", "TEST_WH")
        info["databaseName"] = info.get("databaseName") or None
        info["schemaName"] = info.get("schemaName") or None
    elif path.endswith("/query-request") and isinstance(data, dict):
        data.setdefault("returned", data.get("total", 0))
        data.setdefault("finalRoleName", "SYSADMIN")
        data.setdefault("finalWarehouseName", "TEST_WH")
        data.setdefault("version", 1)
        data.setdefault("queryResultFormat", "json")
        data.setdefault("parameters", [])
        if data.get("queryResultFormat") == "json":
            data.setdefault("rowset", [])
    return payload


class Complete:
    """ASGI middleware: rewrites fakesnow's JSON answers with `_complete`."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = {}
        body = bytearray()

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    raw = bytes(body)
                    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                    try:
                        payload = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
                        raw = json.dumps(_complete(scope["path"], payload)).encode()
                        headers = [(k, v) for k, v in headers if k.lower() != b"content-encoding"]
                    except (ValueError, OSError):
                        pass
                    headers.append((b"content-length", str(len(raw)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": raw})

        await self.app(scope, receive, capture)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(Complete(fakesnow.server.app), log_level="warning")
    server = uvicorn.Server(config)
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
