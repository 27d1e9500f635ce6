"""The Python SDK 2.x as a real client of our stdio transport (examples/conformance.rs)."""

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from conftest import example_binary

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto", "2026-07-28"]


def server_params() -> StdioServerParameters:
    return StdioServerParameters(command=example_binary("conformance"), args=["--transport", "stdio"])


@pytest.mark.parametrize("mode", MODES)
async def test_lists_and_calls_tools(mode):
    async with Client(server_params(), mode=mode) as client:
        if mode == "legacy":
            assert client.session.protocol_version == "2025-11-25"
        else:
            assert client.session.protocol_version == "2026-07-28"
        listed = await client.list_tools()
        names = [t.name for t in listed.tools]
        assert "test_simple_text" in names and "test_error_handling" in names
        result = await client.call_tool("test_simple_text", {})
        assert not result.is_error
        assert result.content[0].text == "This is a simple text response for testing."
        image = await client.call_tool("test_image_content", {})
        assert image.content[0].type == "image" and image.content[0].mime_type == "image/png"


@pytest.mark.parametrize("mode", MODES)
async def test_tool_errors_are_results_unknown_tools_are_errors(mode):
    async with Client(server_params(), mode=mode) as client:
        failed = await client.call_tool("test_error_handling", {})
        assert failed.is_error
        assert "intentionally returns an error" in failed.content[0].text
        with pytest.raises(MCPError) as err:
            await client.call_tool("no_such_tool", {})
        assert err.value.error.code == -32602
        assert "no_such_tool" in err.value.error.message


@pytest.mark.parametrize("mode", MODES)
async def test_progress_notifications_increase(mode):
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async with Client(server_params(), mode=mode) as client:
        result = await client.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
        assert not result.is_error
    assert [p for p, _, _ in seen] == [0, 50, 100]
    assert all(total == 100 for _, total, _ in seen)
    assert seen[-1][2] == "Completed step 100 of 100"


async def test_legacy_logging_reaches_the_client():
    messages = []

    async def on_log(params):
        messages.append(params.data)

    async with Client(server_params(), mode="legacy", logging_callback=on_log) as client:
        result = await client.call_tool("test_tool_with_logging", {})
        assert result.content[0].text == "Tool with logging executed successfully"
    assert messages == ["Tool execution started", "Tool processing data", "Tool execution completed"]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_embedding_example_host_tool(mode):
    params = StdioServerParameters(command=example_binary("embed"))
    async with Client(params, mode=mode) as client:
        listed = await client.list_tools()
        assert [t.name for t in listed.tools] == ["greet"]
        assert listed.tools[0].input_schema["required"] == ["name"]
        ok = await client.call_tool("greet", {"name": "Ada"})
        assert ok.content[0].text == "Hello, Ada!"
        bad = await client.call_tool("greet", {"name": 7})
        assert bad.is_error
        assert bad.content[0].text == "invalid arguments: arguments.name: expected string, got number"


@pytest.mark.parametrize("mode", MODES)
async def test_sampling_and_elicitation_reach_the_client(mode):
    from mcp.types import CreateMessageResult, ElicitResult, TextContent

    asked = []

    async def sampling(context, params):
        asked.append(params.messages[0].content.text)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="forty-two"), model="m")

    async def elicitation(context, params):
        asked.append(params.message)
        return ElicitResult(action="accept", content={"response": "yes"})

    # Handshake versions send the requests to the client; 2026-07-28 answers
    # input_required and the client retries the call with the answers.
    async with Client(server_params(), mode=mode, sampling_callback=sampling, elicitation_callback=elicitation) as client:
        sampled = await client.call_tool("test_sampling", {"prompt": "meaning of life?"})
        assert sampled.content[0].text == "LLM response: forty-two"
        elicited = await client.call_tool("test_elicitation", {"message": "continue?"})
        assert elicited.content[0].text == 'User response: action=accept, content={"response":"yes"}'
    assert asked == ["meaning of life?", "continue?"]


@pytest.mark.parametrize("mode", MODES)
async def test_client_requests_need_the_capability(mode):
    # Handshake versions tell the tool (-32601), which reports it; on
    # 2026-07-28 the whole call fails with -32021 naming the capability.
    async with Client(server_params(), mode=mode) as client:
        if client.session.protocol_version == "2026-07-28":
            with pytest.raises(MCPError) as failed:
                await client.call_tool("test_sampling", {"prompt": "x"})
            assert failed.value.error.code == -32021
            assert failed.value.error.data["requiredCapabilities"] == {"sampling": {}}
        else:
            result = await client.call_tool("test_sampling", {"prompt": "x"})
            assert result.content[0].text.startswith("Sampling not supported or error: sampling/createMessage: the client did not declare")


async def test_tool_list_changes_are_announced():
    changed = anyio.Event()

    async def on_message(message):
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed.set()

    async with Client(server_params(), mode="legacy", message_handler=on_message) as client:
        before = [t.name for t in (await client.list_tools()).tools]
        assert "dynamic_tool" not in before
        added = await client.call_tool("toggle_dynamic_tool", {})
        assert added.content[0].text == "added dynamic_tool"
        with anyio.fail_after(5):
            await changed.wait()
        after = [t.name for t in (await client.list_tools()).tools]
        assert after[-1] == "dynamic_tool"
        assert (await client.call_tool("dynamic_tool", {})).content[0].text == "dynamic"
        removed = await client.call_tool("toggle_dynamic_tool", {})
        assert removed.content[0].text == "removed dynamic_tool"
        with pytest.raises(MCPError):
            await client.call_tool("dynamic_tool", {})
