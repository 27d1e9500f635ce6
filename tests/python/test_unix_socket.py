"""Streamable HTTP over a Unix socket: the daemon (`--unix-socket PATH`) and the
Python SDK 2.x with an HTTP client on httpx's Unix-socket transport."""

import os
import subprocess

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import example_binary

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def socket_path(tmp_path):
    path = tmp_path / "mcp.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.Popen(
        [example_binary("server"), "--unix-socket", str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        line = proc.stdout.readline().strip()
        assert line == f"listening on unix:{path}", line
        yield path
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert not path.exists(), "the socket file is removed at exit"


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_tools_over_a_unix_socket(socket_path, mode):
    transport = httpx2.AsyncHTTPTransport(uds=str(socket_path))
    async with httpx2.AsyncClient(transport=transport, timeout=30) as http:
        # No DELETE at close: anyio's Unix-socket reader races a cancelled read
        # against the socket turning readable (its reader callback calls
        # set_result on a cancelled future, InvalidStateError), and the server
        # ending the session's GET stream at the DELETE is just that moment.
        # A client-side race (not seen over TCP, whose reads are not
        # add_reader callbacks); the session still ends with the daemon.
        streams = streamable_http_client("http://localhost/mcp", http_client=http, terminate_on_close=False)
        async with Client(streams, mode=mode) as client:
            info = await client.call_tool("server_info", {})
            assert info.structured_content["warehouse"]["kind"] == "sqlite"
            rows = await client.call_tool("execute_query", {"query": "SELECT 6 * 7 AS answer"})
            assert rows.structured_content["rows"] == [[42]], rows.content[0].text
        health = await http.get("http://localhost/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
