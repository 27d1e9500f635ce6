"""The example daemon against a Snowflake-protocol server (fakesnow), with the Python SDK.

fakesnow runs from `.venv-fakesnow` (installed by scripts/test.sh); the daemon
reaches it through SNOWFLAKE_BASE_URL, with settings from the environment.
"""

import json
import subprocess

import pytest
from mcp import Client, StdioServerParameters

from conftest import ROOT, example_binary

pytestmark = pytest.mark.anyio


def shim(*options):
    """The Snowflake stand-in (fakesnow and its shim) with `options`; yields its URL."""
    python = ROOT / ".venv-fakesnow" / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: run `bash scripts/test.sh` (it installs fakesnow)")
    proc = subprocess.Popen(
        [str(python), str(ROOT / "tests" / "fakesnow" / "serve.py"), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://"), line
        yield line.removeprefix("listening on ")
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def fakesnow_url():
    yield from shim()


@pytest.fixture
def token_shim_url():
    """The stand-in accepting one PAT and one OAuth token, with a short synchronous window."""
    yield from shim("--pat", "pat-good", "--oauth-token", "oauth-good", "--sync-window", "0.3")


def daemon(url, tmp_path, *args, auth=None):
    env = {
        "HOME": str(tmp_path),  # no ~/.snowflake of the machine's user
        "SNOWFLAKE_ACCOUNT": "testacct",
        "SNOWFLAKE_USER": "tester",
        "SNOWFLAKE_DATABASE": "DB1",
        "SNOWFLAKE_SCHEMA": "S1",
        "SNOWFLAKE_BASE_URL": url,
        **(auth or {"SNOWFLAKE_PASSWORD": "not-checked"}),
    }
    return StdioServerParameters(command=example_binary("server"), args=["--transport", "stdio", *args], env=env)


@pytest.mark.parametrize("how", ["pat", "oauth-file"])
async def test_token_logins_and_progress_of_a_long_statement(token_shim_url, tmp_path, how):
    if how == "pat":
        auth = {"SNOWFLAKE_AUTHENTICATOR": "PROGRAMMATIC_ACCESS_TOKEN", "SNOWFLAKE_TOKEN": "pat-good"}
    else:
        token_file = tmp_path / "oauth-token"
        token_file.write_text("oauth-good\n")
        auth = {"SNOWFLAKE_AUTHENTICATOR": "oauth", "SNOWFLAKE_TOKEN_FILE_PATH": str(token_file)}
    # SYSTEM$ functions pass the guard once it is not read-only.
    writes = "SELECT,SHOW,DESCRIBE,EXPLAIN,CREATE"
    async with Client(daemon(token_shim_url, tmp_path, "--allow", writes, auth=auth), mode="legacy") as client:
        ok = await client.call_tool("execute_query", {"query": "SELECT 'in' AS how"})
        assert ok.structured_content["rows"] == [["in"]], ok.content[0].text
        heard = []

        async def on_progress(progress, total, message):
            heard.append((progress, message))

        # Several synchronous windows long: polled, and the client hears it is still running.
        waited = await client.call_tool(
            "execute_query", {"query": "SELECT SYSTEM$WAIT(2)"}, progress_callback=on_progress
        )
        assert not waited.is_error, waited.content[0].text
        assert waited.structured_content["rows"] == [["waited 2 seconds"]]
        assert heard, "no progress notification"
        assert all("still running" in m for _, m in heard), heard
        assert [p for p, _ in heard] == sorted(p for p, _ in heard)


async def test_a_wrong_token_stops_the_start(token_shim_url, tmp_path):
    env = {
        "HOME": str(tmp_path),
        "SNOWFLAKE_ACCOUNT": "testacct",
        "SNOWFLAKE_USER": "tester",
        "SNOWFLAKE_AUTHENTICATOR": "PROGRAMMATIC_ACCESS_TOKEN",
        "SNOWFLAKE_TOKEN": "pat-wrong-SECRET",
        "SNOWFLAKE_BASE_URL": token_shim_url,
    }
    done = subprocess.run(
        [example_binary("server"), "--transport", "stdio"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "394400" in done.stderr, done.stderr
    assert "pat-wrong-SECRET" not in done.stderr


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_tools_on_snowflake(fakesnow_url, tmp_path, mode):
    writes = "SELECT,SHOW,DESCRIBE,EXPLAIN,CREATE,INSERT"
    async with Client(daemon(fakesnow_url, tmp_path, "--allow", writes), mode=mode) as client:
        info = await client.call_tool("server_info", {})
        assert info.structured_content["warehouse"]["kind"] == "snowflake"
        for sql in [
            "CREATE TABLE sales (id INT, amount NUMBER(12,2), sold_at TIMESTAMP_NTZ, region TEXT)",
            "INSERT INTO sales VALUES (1, 1234.50, '2026-03-01 10:00:00', 'EMEA'), (2, 0.05, NULL, NULL)",
        ]:
            created = await client.call_tool("execute_query", {"query": sql})
            assert not created.is_error, created.content[0].text
        rows = await client.call_tool("execute_query", {"query": "SELECT * FROM sales ORDER BY id"})
        assert rows.structured_content["rows"] == [
            [1, "1234.50", "2026-03-01T10:00:00", "EMEA"],
            [2, "0.05", None, None],
        ]
        assert [c["type"] for c in rows.structured_content["columns"]][:2] == ["NUMBER(38,0)", "NUMBER(12,2)"]
        tables = await client.call_tool("list_tables", {"database": "DB1", "schema": "S1"})
        assert [t["name"] for t in tables.structured_content["tables"]] == ["SALES"]
        described = await client.call_tool("describe_table", {"database": "DB1", "schema": "S1", "table": "SALES"})
        assert described.structured_content["columns"][1]["type"] == "NUMBER(12,2)"
        refused = await client.call_tool("execute_query", {"query": "DELETE FROM sales"})
        assert refused.is_error and refused.content[0].text.startswith("Refused: DELETE statements are not allowed")
        missing = await client.call_tool("execute_query", {"query": "SELECT * FROM nowhere"})
        assert missing.is_error and "002003" in missing.content[0].text
        read = await client.read_resource("snowflake://DB1/S1/SALES")
        assert json.loads(read.contents[0].text)["columns"][0]["name"] == "ID"

        # The rest of the tools, through the same client.
        made = await client.call_tool(
            "execute_query", {"query": "CREATE VIEW emea AS SELECT id, amount FROM sales WHERE region = 'EMEA'"}
        )
        assert not made.is_error, made.content[0].text
        dbs = await client.call_tool("list_databases", {})
        assert "DB1" in dbs.structured_content["databases"]
        schemas = await client.call_tool("list_schemas", {"database": "DB1"})
        assert "S1" in schemas.structured_content["schemas"]
        views = await client.call_tool("list_views", {"database": "DB1"})
        assert [v["name"] for v in views.structured_content["views"]] == ["EMEA"]
        view = await client.call_tool("describe_view", {"database": "DB1", "schema": "S1", "view_name": "EMEA"})
        assert view.structured_content["kind"] == "VIEW"
        assert [c["name"] for c in view.structured_content["columns"]] == ["ID", "AMOUNT"]
        rows = await client.call_tool("query_view", {"database": "DB1", "schema": "S1", "view_name": "EMEA"})
        assert rows.structured_content["rows"] == [[1, "1234.50"]]
        assert rows.structured_content["truncated"] is False


async def test_read_only_by_default(fakesnow_url, tmp_path):
    async with Client(daemon(fakesnow_url, tmp_path), mode="legacy") as client:
        refused = await client.call_tool("execute_query", {"query": "CREATE TABLE x (a INT)"})
        assert refused.is_error and "CREATE statements are not allowed" in refused.content[0].text
        ok = await client.call_tool("execute_query", {"query": "SELECT 1 AS one"})
        assert ok.structured_content["rows"] == [[1]]


async def test_bad_settings_stop_the_start(tmp_path):
    env = {"HOME": str(tmp_path), "SNOWFLAKE_ACCOUNT": "a"}
    done = subprocess.run(
        [example_binary("server"), "--transport", "stdio"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert "SNOWFLAKE_USER" in done.stderr

