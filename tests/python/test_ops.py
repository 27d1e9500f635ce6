"""The daemon's operations endpoints, read the way operators' tools read them."""

import json
import os
import subprocess
import urllib.request

import pytest
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from conftest import demo_daemon

pytestmark = pytest.mark.anyio


@pytest.fixture
def daemon_url(tmp_path):
    with demo_daemon(tmp_path, MCP_CORS_ORIGINS="https://app.example") as address:
        yield "http://" + address


def fetch(url, method="GET", headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def families(url):
    _, _, body = fetch(url + "/metrics")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


async def test_metrics_parse_and_move(daemon_url):
    before = families(daemon_url)
    # The parser strips the _total suffix of counters from family names.
    assert before["snowflake_mcp_connections"].type == "counter"
    for gauge in ["snowflake_mcp_connections_active", "snowflake_mcp_requests_active", "snowflake_mcp_websockets_active"]:
        assert before[gauge].type == "gauge"
    async with Client(daemon_url + "/mcp", mode="legacy") as client:
        result = await client.call_tool("execute_query", {"query": "SELECT COUNT(*) FROM orders"})
        assert result.structured_content["rows"] == [[200]]
    after = families(daemon_url)

    def value(fams, family, name, **labels):
        return next(s.value for s in fams[family].samples if s.name == name and s.labels == labels)

    assert value(after, "snowflake_mcp_warehouse_calls", "snowflake_mcp_warehouse_calls_total", outcome="started") == (
        value(before, "snowflake_mcp_warehouse_calls", "snowflake_mcp_warehouse_calls_total", outcome="started") + 1
    )
    tool_calls = value(after, "snowflake_mcp_tool_calls", "snowflake_mcp_tool_calls_total", tool="execute_query", outcome="ok")
    assert tool_calls == 1
    opened = value(after, "snowflake_mcp_sessions_opened", "snowflake_mcp_sessions_opened_total", transport="streamable_http")
    assert opened == 1
    assert value(after, "snowflake_mcp_http_responses", "snowflake_mcp_http_responses_total", code="200") > 3
    assert value(after, "snowflake_mcp_http_responses", "snowflake_mcp_http_responses_total", code="202") >= 1
    calls = value(after, "snowflake_mcp_mcp_requests", "snowflake_mcp_mcp_requests_total", method="tools/call", outcome="ok")
    assert calls == 1
    assert after["snowflake_mcp_request_duration_seconds"].type == "histogram"
    assert after["snowflake_mcp_statement_duration_seconds"].type == "histogram"


def promtool():
    """promtool, which scripts/test.sh unpacks into .tools/prometheus (PROMTOOL)."""
    path = os.environ.get("PROMTOOL", "")
    assert path and os.access(path, os.X_OK), "PROMTOOL must name promtool: run bash scripts/test.sh"
    return path


async def test_metrics_pass_promtool(daemon_url):
    # Something in every family first: a session, a call, a refused call.
    async with Client(daemon_url + "/mcp", mode="legacy") as client:
        await client.call_tool("execute_query", {"query": "SELECT 1"})
        refused = await client.call_tool("execute_query", {"query": "DROP TABLE orders"})
        assert refused.is_error
    _, _, body = fetch(daemon_url + "/metrics")
    done = subprocess.run([promtool(), "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    # promtool prints nothing when it has nothing to say about naming or help.
    assert (done.stdout + done.stderr).strip() == b"", (done.stdout + done.stderr).decode()
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fams["snowflake_mcp_tool_calls"].samples}
    assert samples[("snowflake_mcp_tool_calls_total", (("outcome", "tool_error"), ("tool", "execute_query")))] == 1


async def test_health_status_and_headers(daemon_url):
    status, headers, body = fetch(daemon_url + "/health/detailed")
    assert status == 200
    health = json.loads(body)
    assert health["overall_status"] == "healthy"
    assert health["components"]["database"]["kind"] == "sqlite"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    status, _, body = fetch(daemon_url + "/status")
    assert json.loads(body)["transports"][1]["name"] == "websocket"
    # CORS: the configured origin gets a preflight answer, another does not.
    ask = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    status, headers, _ = fetch(daemon_url + "/mcp", method="OPTIONS", headers=ask)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Mcp-Session-Id" in headers["Access-Control-Allow-Headers"]
    status, headers, _ = fetch(daemon_url + "/mcp", method="OPTIONS", headers={**ask, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers
