"""The example daemon (`examples/server.rs --transport stdio`) with the Python SDK."""

import json

import pytest
from mcp import Client, StdioServerParameters

from conftest import example_binary

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_daemon_over_stdio(mode):
    params = StdioServerParameters(command=example_binary("server"), args=["--transport", "stdio"])
    async with Client(params, mode=mode) as client:
        assert client.session.server_info.name == "snowflake-mcp"
        tools = await client.list_tools()
        info_tool = next(t for t in tools.tools if t.name == "server_info")
        assert info_tool.output_schema["required"][0] == "name"
        called = await client.call_tool("server_info", {})
        assert not called.is_error
        assert called.structured_content["name"] == "snowflake-mcp"
        assert called.structured_content["transport"] == "stdio"
        assert "2026-07-28" in called.structured_content["protocolVersions"]
        resources = await client.list_resources()
        assert [str(r.uri) for r in resources.resources] == ["snowflake-mcp://server/info"]
        read = await client.read_resource("snowflake-mcp://server/info")
        assert json.loads(read.contents[0].text)["version"] == called.structured_content["version"]


@pytest.mark.parametrize("mode", ["legacy", "auto", "2026-07-28"])
async def test_daemon_over_http(mode):
    import subprocess

    proc = subprocess.Popen([example_binary("server"), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        url = line.removeprefix("listening on ") + "/mcp"
        async with Client(url, mode=mode) as client:
            called = await client.call_tool("server_info", {})
            assert called.structured_content["transport"] == "http"
            read = await client.read_resource("snowflake-mcp://server/info")
            assert json.loads(read.contents[0].text)["name"] == "snowflake-mcp"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
