"""A Snowflake-protocol server for the tests: fakesnow, plus what fakesnow leaves out.

    python tests/fakesnow/serve.py [--port N] [--inline-rows N] [--chunk-rows N] [--batch-rows N]
        [--sync-window SECONDS] [--session-validity SECONDS] [--pat TOKEN] [--oauth-token TOKEN]

Prints `listening on http://127.0.0.1:PORT` once bound (port 0, the default,
picks a free one) and serves until killed. fakesnow answers Snowflake's REST
protocol over plain HTTP on DuckDB, every statement inline and at once; this
shim makes it behave as Snowflake does where the tests need it:

- large results in parts: the first `--inline-rows` rows inline
  (`rowsetBase64`), the rest as gzipped Arrow chunks of `--chunk-rows` rows
  (in record batches of `--batch-rows` rows, when given) served from local URLs that demand the `chunkHeaders` (the `qrmk` key);
- long statements: `SYSTEM$WAIT(n)` runs n seconds; past `--sync-window` the
  answer is "in progress" (333334) with a result URL, polled until done;
  `/queries/v1/abort-request` stops it (000604 to the waiting poll);
- session tokens that expire after `--session-validity` seconds (390112),
  renewal at `/session/token-request` with the master token, heartbeats;
- logins with a programmatic access token or an OAuth token, checked;
- counters of every request (GET `/__shim/counts`) and the `QUERY_TAG` of
  each statement (GET `/__shim/tags`), so tests assert round trips.

It also keeps the null mask of timestamp columns, which fakesnow's Arrow
conversion drops. Nothing here changes what a statement returns.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextvars
import gzip
import hashlib
import json
import re
import secrets
import socket
import sys
import time
import uuid

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


ARGS = argparse.Namespace(
    inline_rows=1000, chunk_rows=3000, batch_rows=0, sync_window=45.0, session_validity=3600, pat=None, oauth_token=None
)
COUNTS: collections.Counter = collections.Counter()
TAGS: list[str] = []
# session token -> (issued at, validity); master token -> session token
ISSUED: dict[str, tuple[float, float]] = {}
MASTERS: dict[str, str] = {}
# result id -> (qrmk, [arrow tables])
CHUNKS: dict[str, tuple[str, list[pa.Table]]] = {}
# query id -> a running SYSTEM$WAIT
RUNNING: dict[str, dict] = {}
PARTS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("parts", default=None)
WAIT = re.compile(r"SYSTEM\$WAIT\(\s*([0-9]+(?:\.[0-9]+)?)\s*\)", re.IGNORECASE)

_original_to_ipc = fakesnow.arrow.to_ipc


def _to_ipc_in_parts(table: pa.Table) -> pa.Buffer:
    """fakesnow's Arrow encoding, keeping only the first rows inline when the result is large."""
    parts = PARTS.get()
    if parts is None or table.num_rows <= ARGS.inline_rows:
        return _original_to_ipc(table)
    rest = table.slice(ARGS.inline_rows)
    parts["tables"] = [rest.slice(i, ARGS.chunk_rows) for i in range(0, rest.num_rows, ARGS.chunk_rows)]
    return _original_to_ipc(table.slice(0, ARGS.inline_rows))


fakesnow.server.to_ipc = _to_ipc_in_parts


def chunk_ipc(table: pa.Table) -> pa.Buffer:
    """A chunk's Arrow stream: with `--batch-rows`, record batches of at most that many rows
    (Snowflake's chunks hold several batches; its connectors read them one by one)."""
    if not ARGS.batch_rows:
        return _original_to_ipc(table)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=ARGS.batch_rows)
    return sink.getvalue()


def envelope(data, success=True, code=None, message=None) -> dict:
    return {"data": data, "success": success, "code": code, "message": message}


def failure(code: str, message: str, query_id: str = "") -> dict:
    return envelope({"errorCode": code, "sqlState": "57014", "queryId": query_id}, False, code, message)


async def send_json(send, payload: dict, status: int = 200, extra_headers=()) -> None:
    raw = json.dumps(payload).encode()
    await send_bytes(send, raw, status, [(b"content-type", b"application/json"), *extra_headers])


async def send_bytes(send, raw: bytes, status: int, headers) -> None:
    headers = [*headers, (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def header(scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k.lower() == name:
            return v.decode("latin-1")
    return None


def bearer(scope) -> str | None:
    auth = header(scope, b"authorization") or ""
    m = re.fullmatch(r'Snowflake Token="(.*)"', auth)
    return m.group(1) if m else None


def expired(token: str | None) -> bool:
    if token is None or token not in ISSUED:
        return False
    issued, validity = ISSUED[token]
    return time.monotonic() > issued + validity


def issue(token: str) -> str:
    """Records a new session token; its master token."""
    ISSUED[token] = (time.monotonic(), ARGS.session_validity)
    master = "master-" + secrets.token_urlsafe(16)
    MASTERS[master] = token
    return master


def wait_result(entry: dict) -> dict:
    text = f"waited {entry['seconds']:g} seconds"
    return envelope(
        {
            "queryId": entry["qid"],
            "rowtype": [
                {
                    "name": "SYSTEM$WAIT",
                    "type": "text",
                    "nullable": True,
                    "length": 16777216,
                    "byteLength": 16777216,
                    "precision": None,
                    "scale": None,
                    "collation": None,
                }
            ],
            "rowset": [[text]],
            "total": 1,
            "returned": 1,
            "queryResultFormat": "json",
            "parameters": [{"name": "TIMEZONE", "value": "Etc/UTC"}],
            "statementTypeId": 4096,
            "version": 1,
        }
    )


async def await_wait(entry: dict) -> dict:
    """Waits for a SYSTEM$WAIT for at most the synchronous window; its answer."""
    left = entry["until"] - time.monotonic()
    try:
        await asyncio.wait_for(entry["aborted"].wait(), timeout=max(0.0, min(left, ARGS.sync_window)))
    except TimeoutError:
        pass
    if entry["aborted"].is_set():
        RUNNING.pop(entry["qid"], None)
        return failure("000604", "SQL execution canceled", entry["qid"])
    if time.monotonic() >= entry["until"]:
        RUNNING.pop(entry["qid"], None)
        return wait_result(entry)
    return envelope(
        {"queryId": entry["qid"], "getResultUrl": f"/queries/{entry['qid']}/result", "queryAbortsAfterSecs": 300},
        True,
        "333334",
        "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.",
    )


class Shim:
    """ASGI middleware over fakesnow's app: see the module's docstring."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        COUNTS[path if not path.startswith("/__chunks/") else "chunk"] += 1
        chunks = bytearray()
        while True:
            message = await receive()
            chunks.extend(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = bytes(chunks)
        body = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw

        async def replay():
            return {"type": "http.request", "body": raw, "more_body": False}

        if path == "/__shim/counts":
            return await send_json(send, dict(COUNTS))
        if path == "/__shim/tags":
            return await send_json(send, TAGS)
        if path.startswith("/__chunks/"):
            return await self.chunk(scope, send, path)
        token = bearer(scope)
        if path in ("/queries/v1/query-request", "/session/heartbeat") or path.startswith("/queries/"):
            if path != "/queries/v1/abort-request" and expired(token):
                COUNTS["expired"] += 1
                return await send_json(send, failure("390112", "Your session has expired. Please login again."))
        if path == "/session/v1/login-request":
            refusal = self.check_login(body)
            if refusal is not None:
                return await send_json(send, refusal)
            return await self.forward(scope, replay, send, self.complete_login)
        if path == "/session/token-request":
            return await self.renew(send, token, body)
        if path == "/queries/v1/abort-request":
            return await self.abort(send, body)
        if path.startswith("/queries/") and path.endswith("/result"):
            entry = RUNNING.get(path.split("/")[2])
            if entry is None:
                return await send_json(send, failure("000605", "No such running statement."))
            return await send_json(send, await await_wait(entry))
        if path == "/queries/v1/query-request":
            request = json.loads(body or b"{}")
            tag = (request.get("parameters") or {}).get("QUERY_TAG")
            if tag is not None:
                TAGS.append(tag)
                del TAGS[:-200]
            m = WAIT.search(request.get("sqlText", ""))
            if m:
                qid = str(uuid.uuid4())
                seconds = float(m.group(1))
                entry = {
                    "qid": qid,
                    "seconds": seconds,
                    "until": time.monotonic() + seconds,
                    "aborted": asyncio.Event(),
                    "request_id": dict(
                        kv.split("=", 1) for kv in scope.get("query_string", b"").decode().split("&") if "=" in kv
                    ).get("requestId"),
                }
                RUNNING[qid] = entry
                return await send_json(send, await await_wait(entry))
            parts: dict = {}
            PARTS.set(parts)
            return await self.forward(scope, replay, send, lambda payload: self.in_parts(scope, payload, parts))
        await self.app(scope, replay, send)

    async def forward(self, scope, receive, send, rewrite):
        """Runs fakesnow's app and rewrites its JSON answer with `rewrite`."""
        start = {}
        body = bytearray()

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    raw = bytes(body)
                    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"content-encoding")]
                    try:
                        payload = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
                        raw = json.dumps(rewrite(payload)).encode()
                    except (ValueError, OSError):
                        pass
                    await send_bytes(send, raw, start.get("status", 200), headers)

        await self.app(scope, receive, capture)

    @staticmethod
    def check_login(body: bytes) -> dict | None:
        data = json.loads(body or b"{}").get("data", {})
        kind = (data.get("AUTHENTICATOR") or "SNOWFLAKE").upper()
        COUNTS[f"login:{kind}"] += 1
        if kind == "PROGRAMMATIC_ACCESS_TOKEN" and (ARGS.pat is None or data.get("TOKEN") != ARGS.pat):
            return failure("394400", "Programmatic access token is invalid.")
        if kind == "OAUTH" and (ARGS.oauth_token is None or data.get("TOKEN") != ARGS.oauth_token):
            return failure("390303", "Invalid OAuth access token.")
        return None

    @staticmethod
    def complete_login(payload: dict) -> dict:
        data = payload.get("data")
        if payload.get("success") and isinstance(data, dict):
            data["masterToken"] = issue(data["token"])
            data["validityInSeconds"] = ARGS.session_validity
            data["masterValidityInSeconds"] = 14400
            data.setdefault("sessionId", 1)
        return payload

    async def renew(self, send, master: str | None, body: bytes):
        old = json.loads(body or b"{}").get("oldSessionToken")
        if master not in MASTERS or MASTERS[master] != old:
            return await send_json(send, failure("390114", "Authentication token has expired.  The user must authenticate again."))
        new = secrets.token_urlsafe(32)
        fakesnow.server.sessions[new] = fakesnow.server.sessions[old]
        ISSUED[new] = (time.monotonic(), ARGS.session_validity)
        MASTERS[master] = new
        data = {"sessionToken": new, "validityInSecondsST": ARGS.session_validity, "masterToken": master, "validityInSecondsMT": 14400, "sessionId": 1}
        return await send_json(send, envelope(data))

    async def abort(self, send, body: bytes):
        request_id = json.loads(body or b"{}").get("requestId")
        for entry in list(RUNNING.values()):
            if request_id is not None and entry["request_id"] == request_id:
                entry["aborted"].set()
                COUNTS["aborted"] += 1
                return await send_json(send, envelope(None))
        return await send_json(send, failure("000605", "Identified SQL statement is not currently executing."))

    def in_parts(self, scope, payload: dict, parts: dict) -> dict:
        """Adds the chunk list of a large result (the rest of its rows) to its answer."""
        tables = parts.get("tables")
        data = payload.get("data")
        if not tables or not isinstance(data, dict):
            return payload
        result_id = secrets.token_hex(8)
        qrmk = base64.b64encode(secrets.token_bytes(32)).decode()
        CHUNKS[result_id] = (qrmk, tables)
        while len(CHUNKS) > 8:
            CHUNKS.pop(next(iter(CHUNKS)))
        host = header(scope, b"host") or "127.0.0.1"
        data["chunks"] = [
            {
                "url": f"http://{host}/__chunks/{result_id}/{i}?sig={secrets.token_hex(4)}",
                "rowCount": t.num_rows,
                "uncompressedSize": t.nbytes,
                "compressedSize": t.nbytes,
            }
            for i, t in enumerate(tables)
        ]
        data["qrmk"] = qrmk
        data["chunkHeaders"] = {
            "x-amz-server-side-encryption-customer-algorithm": "AES256",
            "x-amz-server-side-encryption-customer-key": qrmk,
            "x-amz-server-side-encryption-customer-key-md5": base64.b64encode(
                hashlib.md5(base64.b64decode(qrmk)).digest()
            ).decode(),
        }
        data["returned"] = ARGS.inline_rows
        return payload

    async def chunk(self, scope, send, path: str):
        _, _, result_id, index = path.split("/")
        if result_id not in CHUNKS:
            return await send_bytes(send, b"no such result", 404, [])
        qrmk, tables = CHUNKS[result_id]
        if header(scope, b"x-amz-server-side-encryption-customer-key") != qrmk:
            COUNTS["chunk-refused"] += 1
            return await send_bytes(send, b"AccessDenied", 403, [])
        COUNTS[f"chunk:{result_id}"] += 1
        raw = gzip.compress(chunk_ipc(tables[int(index)]).to_pybytes(), compresslevel=1)
        await send_bytes(send, raw, 200, [(b"content-type", b"application/octet-stream"), (b"content-encoding", b"gzip")])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--inline-rows", type=int, default=1000)
    parser.add_argument("--chunk-rows", type=int, default=3000)
    parser.add_argument("--batch-rows", type=int, default=0)
    parser.add_argument("--sync-window", type=float, default=45.0)
    parser.add_argument("--session-validity", type=int, default=3600)
    parser.add_argument("--pat")
    parser.add_argument("--oauth-token")
    args = parser.parse_args()
    vars(ARGS).update(vars(args))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(Shim(fakesnow.server.app), log_level="warning")
    server = uvicorn.Server(config)
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
