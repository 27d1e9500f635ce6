"""Resources, templates, prompts and completion through the Python SDK over stdio."""

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import PromptReference

from conftest import example_binary

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]


def server_params() -> StdioServerParameters:
    return StdioServerParameters(command=example_binary("conformance"))


@pytest.mark.parametrize("mode", MODES)
async def test_list_and_read_resources(mode):
    async with Client(server_params(), mode=mode) as client:
        listed = await client.list_resources()
        uris = [str(r.uri) for r in listed.resources]
        assert uris == ["test://static-text", "test://static-binary", "test://watched-resource"]
        templates = await client.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == ["test://template/{id}/data"]

        text = await client.read_resource("test://static-text")
        assert text.contents[0].text == "This is the content of the static text resource."
        assert text.contents[0].mime_type == "text/plain"
        blob = await client.read_resource("test://static-binary")
        assert blob.contents[0].blob.startswith("iVBORw0KGgo")
        templated = await client.read_resource("test://template/42/data")
        assert '"id":"42"' in templated.contents[0].text
        assert str(templated.contents[0].uri) == "test://template/42/data"

        with pytest.raises(MCPError) as err:
            await client.read_resource("test://nothing-here")
        # -32002 before 2026-07-28; -32602 there (SEP-2164).
        assert err.value.error.code == (-32002 if mode == "legacy" else -32602)


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_and_completion(mode):
    async with Client(server_params(), mode=mode) as client:
        listed = await client.list_prompts()
        names = [p.name for p in listed.prompts]
        assert names[0] == "test_simple_prompt" and "test_prompt_with_arguments" in names
        with_args = next(p for p in listed.prompts if p.name == "test_prompt_with_arguments")
        assert [(a.name, a.required) for a in with_args.arguments] == [("arg1", True), ("arg2", True)]

        got = await client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
        assert got.messages[0].content.text == "Prompt with arguments: arg1='a', arg2='b'"
        with pytest.raises(MCPError) as err:
            await client.get_prompt("test_prompt_with_arguments", {"arg1": "a"})
        assert err.value.error.code == -32602 and "arg2" in err.value.error.message
        image = await client.get_prompt("test_prompt_with_image")
        assert image.messages[0].content.type == "image"

        done = await client.complete(PromptReference(type="ref/prompt", name="test_prompt_with_arguments"), {"name": "arg1", "value": "g"})
        assert done.completion.values == ["gamma"]
        assert done.completion.total == 1 and done.completion.has_more is False


@pytest.mark.filterwarnings("ignore:resources/.*subscribe is removed")
async def test_subscribed_resource_updates_arrive():
    updated = []

    async def on_message(message):
        if getattr(message, "method", None) == "notifications/resources/updated":
            updated.append(str(message.params.uri))

    async with Client(server_params(), mode="legacy", message_handler=on_message) as client:
        await client.subscribe_resource("test://watched-resource")
        with anyio.fail_after(10):
            while not updated:
                await anyio.sleep(0.1)
        await client.unsubscribe_resource("test://watched-resource")
    assert updated[0] == "test://watched-resource"
