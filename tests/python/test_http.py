"""The Python SDK 2.x over our Streamable HTTP transport (examples/conformance.rs --transport http)."""

import subprocess

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from conftest import example_binary

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto", "2026-07-28"]


@pytest.fixture(scope="module")
def url():
    proc = subprocess.Popen(
        [example_binary("conformance"), "--transport", "http", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://"), line
        yield line.removeprefix("listening on ") + "/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.parametrize("mode", MODES)
async def test_tools_over_http(url, mode):
    async with Client(url, mode=mode) as client:
        expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
        assert client.session.protocol_version == expected
        names = [t.name for t in (await client.list_tools()).tools]
        assert "test_simple_text" in names
        result = await client.call_tool("test_simple_text", {})
        assert result.content[0].text == "This is a simple text response for testing."
        failed = await client.call_tool("test_error_handling", {})
        assert failed.is_error
        with pytest.raises(MCPError) as err:
            await client.call_tool("no_such_tool", {})
        assert err.value.error.code == -32602


@pytest.mark.parametrize("mode", MODES)
async def test_progress_streams_before_the_answer(url, mode):
    seen = []

    async def on_progress(progress, total, message):
        seen.append(progress)

    async with Client(url, mode=mode) as client:
        result = await client.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
        assert not result.is_error
    assert seen == [0, 50, 100]


@pytest.mark.parametrize("mode", MODES)
async def test_resources_and_prompts_over_http(url, mode):
    async with Client(url, mode=mode) as client:
        read = await client.read_resource("test://template/7/data")
        assert '"id":"7"' in read.contents[0].text
        got = await client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
        assert got.messages[0].content.text == "Prompt with arguments: arg1='a', arg2='b'"


@pytest.mark.parametrize("mode", MODES)
async def test_sampling_over_http(url, mode):
    from mcp.types import CreateMessageResult, TextContent

    async def sampling(context, params):
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="from the client"), model="m")

    async with Client(url, mode=mode, sampling_callback=sampling) as client:
        result = await client.call_tool("test_sampling", {"prompt": "hi"})
        assert result.content[0].text == "LLM response: from the client"


async def test_list_changes_arrive_on_the_get_stream(url):
    changed = anyio.Event()

    async def on_message(message):
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed.set()

    async with Client(url, mode="legacy", message_handler=on_message) as client:
        added = await client.call_tool("toggle_dynamic_tool", {})
        assert added.content[0].text == "added dynamic_tool"
        with anyio.fail_after(5):
            await changed.wait()
        assert "dynamic_tool" in [t.name for t in (await client.list_tools()).tools]
        await client.call_tool("toggle_dynamic_tool", {})
