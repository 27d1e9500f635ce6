"""MCP over WebSocket with the Python SDK 1.x client (`mcp.client.websocket`)."""

import json
import signal

import anyio
import mcp.types as types
import pytest
from mcp import ClientSession
from mcp.client.websocket import websocket_client
from mcp.shared.exceptions import McpError

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


async def test_initialize_list_and_call(conformance_ws):
    async with websocket_client(conformance_ws) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.serverInfo.name == "mcp-conformance-test-server"
            assert init.protocolVersion == types.LATEST_PROTOCOL_VERSION
            tools = await session.list_tools()
            names = {t.name for t in tools.tools}
            assert {"test_simple_text", "test_tool_with_progress", "sleep"} <= names
            called = await session.call_tool("test_simple_text", {})
            assert not called.isError
            assert called.content[0].text == "This is a simple text response for testing."
            failed = await session.call_tool("test_error_handling", {})
            assert failed.isError
            with pytest.raises(McpError) as unknown:
                await session.call_tool("no_such_tool", {})
            assert unknown.value.error.code == types.INVALID_PARAMS
            assert "no_such_tool" in unknown.value.error.message
            await session.send_ping()


async def test_progress_notifications(conformance_ws):
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async with websocket_client(conformance_ws) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
            assert not result.isError
    assert [p for p, _, _ in seen] == [0.0, 50.0, 100.0]
    assert all(total == 100.0 for _, total, _ in seen)
    assert seen[-1][2] == "Completed step 100.0 of 100" or seen[-1][2].startswith("Completed step 100")


async def test_concurrent_calls_on_one_socket(conformance_ws):
    async with websocket_client(conformance_ws) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            results = {}

            async def sleep(ms):
                result = await session.call_tool("sleep", {"ms": ms})
                results[ms] = (anyio.current_time(), result.content[0].text)

            started = anyio.current_time()
            async with anyio.create_task_group() as tg:
                for ms in (600, 400, 200, 10):
                    tg.start_soon(sleep, ms)
            elapsed = anyio.current_time() - started
    assert {ms: text for ms, (_, text) in results.items()} == {ms: f"slept {ms} ms" for ms in (600, 400, 200, 10)}
    # They ran at once (not 1.2 s in a row) and finished shortest first.
    assert elapsed < 1.1
    order = sorted(results, key=lambda ms: results[ms][0])
    assert order == [10, 200, 400, 600]


async def test_cancellation_stops_the_call(conformance_ws):
    async with websocket_client(conformance_ws) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            before = (await session.call_tool("sleep_stats", {})).structuredContent
            request_id = session._request_id  # the id the next request will carry
            with anyio.move_on_after(0.3):
                await session.call_tool("sleep", {"ms": 5000})
            await session.send_notification(
                types.ClientNotification(
                    types.CancelledNotification(
                        params=types.CancelledNotificationParams(requestId=request_id, reason="test")
                    )
                )
            )
            with anyio.fail_after(5):
                while True:
                    after = (await session.call_tool("sleep_stats", {})).structuredContent
                    if after["cancelled"] > before["cancelled"]:
                        break
                    await anyio.sleep(0.05)
            assert after["finished"] == before["finished"]
            # The socket still serves after the cancellation.
            assert (await session.call_tool("sleep", {"ms": 1})).content[0].text == "slept 1 ms"


async def test_resources_and_prompts(conformance_ws):
    async with websocket_client(conformance_ws) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            read_result = await session.read_resource("test://static-text")
            assert read_result.contents[0].text
            prompt = await session.get_prompt("test_simple_prompt")
            assert prompt.messages


async def test_daemon_over_websocket_and_shutdown(daemon):
    proc, url = daemon
    async with websocket_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            called = await session.call_tool("server_info", {})
            assert called.structuredContent["transport"] == "websocket"
            info = await session.read_resource("snowflake-mcp://server/info")
            assert json.loads(info.contents[0].text)["name"] == "snowflake-mcp"
            # SIGTERM with the socket open: the daemon closes it and exits 0.
            proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                while proc.poll() is None:
                    await anyio.sleep(0.05)
    assert proc.returncode == 0
