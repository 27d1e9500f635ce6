"""The warehouse tools of the example daemon (embedded SQLite demo) with the Python SDK."""

import json

import pytest
from mcp import Client, StdioServerParameters

from conftest import example_binary

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto", "2026-07-28"]


def daemon():
    return StdioServerParameters(command=example_binary("server"), args=["--transport", "stdio"])


@pytest.mark.parametrize("mode", MODES)
async def test_browse_and_query_the_demo(mode):
    async with Client(daemon(), mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {
            "list_databases", "list_schemas", "list_tables", "list_views",
            "describe_table", "describe_view", "query_view", "execute_query",
        } <= names
        dbs = await client.call_tool("list_databases", {})
        assert dbs.structured_content == {"databases": ["DEMO"]}
        tables = await client.call_tool("list_tables", {"database": "DEMO", "schema": "MAIN"})
        assert [t["name"] for t in tables.structured_content["tables"]] == ["customers", "order_items", "orders", "products"]
        described = await client.call_tool("describe_table", {"database": "DEMO", "schema": "MAIN", "table": "products"})
        price = next(c for c in described.structured_content["columns"] if c["name"] == "unit_price")
        assert price == {"name": "unit_price", "type": "DECIMAL(10,2)", "nullable": False}

        result = await client.call_tool(
            "execute_query",
            {"query": "SELECT country, COUNT(*) AS customers FROM customers GROUP BY country ORDER BY country"},
        )
        assert not result.is_error
        data = result.structured_content
        assert [c["name"] for c in data["columns"]] == ["country", "customers"]
        assert sum(row[1] for row in data["rows"]) == 24
        assert data["truncated"] is False
        assert result.content[0].text.startswith("| country | customers |")

        view = await client.call_tool("query_view", {"database": "DEMO", "view_name": "order_totals", "limit": 2})
        assert view.structured_content["rowCount"] == 2
        assert view.structured_content["truncated"] is True
        assert "larger limit" in view.structured_content["notice"]


@pytest.mark.parametrize("mode", MODES)
async def test_values_refusals_and_errors(mode):
    async with Client(daemon(), mode=mode) as client:
        row = await client.call_tool(
            "execute_query",
            {"query": "SELECT unit_price, order_date, shipped_at, note FROM orders JOIN order_items USING (order_id) "
                      "WHERE shipped_at IS NULL AND note IS NULL ORDER BY order_id LIMIT 1"},
        )
        price, day, shipped, note = row.structured_content["rows"][0]
        assert isinstance(price, str) and price.count(".") == 1 and len(price.split(".")[1]) == 2
        assert len(day) == 10 and day[4] == "-"
        assert shipped is None and note is None

        refused = await client.call_tool("execute_query", {"query": "DROP TABLE orders"})
        assert refused.is_error
        assert refused.content[0].text.startswith("Refused: DROP statements are not allowed")
        hidden = await client.call_tool("execute_query", {"query": "WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x"})
        assert hidden.is_error and "found inside the query" in hidden.content[0].text
        bad = await client.call_tool("execute_query", {"query": "SELECT * FROM no_such_table"})
        assert bad.is_error and "no such table" in bad.content[0].text
        still = await client.call_tool("execute_query", {"query": "SELECT COUNT(*) FROM orders"})
        assert still.structured_content["rows"] == [[200]]


async def test_tables_are_resources():
    async with Client(daemon(), mode="legacy") as client:
        templates = await client.list_resource_templates()
        assert "snowflake://{database}/{schema}/{table}" in [t.uri_template for t in templates.resource_templates]
        read = await client.read_resource("snowflake://DEMO/MAIN/customers")
        described = json.loads(read.contents[0].text)
        assert described["name"] == "customers"
        assert [c["name"] for c in described["columns"]][:2] == ["customer_id", "name"]
