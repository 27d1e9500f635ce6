#![cfg(feature = "sqlite")]
//! Bearer keys over real sockets: 401s with the challenge, read-only keys
//! kept to read-only statements, the WebSocket handshake, protected ops.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use snowflake_mcp::Service;
use snowflake_mcp::guard::auth::{Auth, Scope};
use snowflake_mcp::mcp::McpServer;
use snowflake_mcp::tools::ToolsConfig;
use snowflake_mcp::tools::sql_guard::{SqlGuard, StatementKind};
use snowflake_mcp::warehouse::Warehouse;
use snowflake_mcp::warehouse::sqlite::{SqliteConfig, SqliteWarehouse};
use support::Client;

const FULL: &str = "full-key-0123456789abcdef";
const READ: &str = "read-key-0123456789abcdef";

async fn serve() -> std::net::SocketAddr {
    let warehouse: Arc<dyn Warehouse> = SqliteWarehouse::open(SqliteConfig {
        allow_writes: true,
        ..SqliteConfig::default()
    })
    .await
    .expect("demo");
    let auth = Auth::new()
        .key("ops-team", FULL, Scope::Full)
        .key("analysts", READ, Scope::ReadOnly)
        .protect_ops(true);
    let guard = SqlGuard::allowing(
        StatementKind::READ_ONLY
            .into_iter()
            .chain([StatementKind::Create, StatementKind::Delete]),
    );
    let tools = ToolsConfig {
        guard,
        ..ToolsConfig::default()
    };
    support::serve(
        Service::new(McpServer::builder("t", "0"))
            .warehouse(warehouse, tools)
            .streamable_http("/mcp")
            .websocket("/ws")
            .ops()
            .keys(auth),
    )
    .await
}

async fn post(
    addr: std::net::SocketAddr,
    token: Option<&str>,
    session: Option<&str>,
    body: &str,
) -> support::Resp {
    let mut c = Client::connect(addr).await;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let session = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{auth}{session}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.send(req.as_bytes()).await;
    c.read_response_to("POST").await
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;

/// The JSON-RPC answer of a response (a JSON body or its SSE event).
fn answer(r: &support::Resp) -> Value {
    support::answer_of(&r.body_str())
}

async fn query(addr: std::net::SocketAddr, token: &str, sql: &str) -> Value {
    let r = post(addr, Some(token), None, INIT).await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    let sid = r.header("mcp-session-id").expect("session").to_owned();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "execute_query", "arguments": {"query": sql}}})
    .to_string();
    answer(&post(addr, Some(token), Some(&sid), &call).await)
}

#[tokio::test]
async fn keys_are_required_and_scoped() {
    let addr = serve().await;
    let r = post(addr, None, None, INIT).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"snowflake-mcp\"")
    );
    let r = post(addr, Some("wrong-token-0123456789"), None, INIT).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    assert!(
        !r.body_str().contains("wrong-token"),
        "the token is not echoed"
    );

    // A full key may create; a read-only key may not, though the server allows CREATE.
    let v = query(addr, FULL, "CREATE TABLE notes (body TEXT)").await;
    assert_eq!(v["result"]["isError"], Value::Null, "{v}");
    let v = query(addr, READ, "CREATE TABLE more_notes (body TEXT)").await;
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Refused (read-only key)")
    );
    // A write nested in a read-only statement is refused for a read-only key
    // too (the server itself allows DELETE).
    let v = query(addr, READ, "EXPLAIN DELETE FROM orders").await;
    assert_eq!(v["result"]["isError"], true, "{v}");
    let v = query(addr, READ, "SELECT COUNT(*) FROM orders").await;
    assert_eq!(v["result"]["structuredContent"]["rows"], json!([[200]]));
}

#[tokio::test]
async fn the_websocket_handshake_needs_a_key() {
    let addr = serve().await;
    let handshake = |token: Option<&str>| {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        format!(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n"
        )
    };
    let mut c = Client::connect(addr).await;
    c.send(handshake(None).as_bytes()).await;
    assert_eq!(c.read_response().await.status, 401);
    let mut c = Client::connect(addr).await;
    c.send(handshake(Some(READ)).as_bytes()).await;
    let head = String::from_utf8(c.read_exact_raw(12).await).unwrap();
    assert_eq!(head, "HTTP/1.1 101");
}

#[tokio::test]
async fn protected_ops_endpoints() {
    let addr = serve().await;
    let get = |path: &'static str, token: Option<&'static str>| async move {
        let mut c = Client::connect(addr).await;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        c.send(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
        )
        .await;
        c.read_response().await.status
    };
    assert_eq!(get("/health", None).await, 200, "liveness stays open");
    for path in ["/metrics", "/status", "/health/detailed"] {
        assert_eq!(get(path, None).await, 401, "{path}");
        assert_eq!(get(path, Some(READ)).await, 200, "{path}");
    }
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let warehouse: Arc<dyn Warehouse> = SqliteWarehouse::open(SqliteConfig::default())
        .await
        .expect("demo");
    let addr = support::serve(
        Service::new(McpServer::builder("t", "0"))
            .warehouse(warehouse, ToolsConfig::default())
            .streamable_http("/mcp")
            .rate_limit(0.5, 2),
    )
    .await;
    assert_eq!(post(addr, None, None, INIT).await.status, 200);
    assert_eq!(post(addr, None, None, INIT).await.status, 200);
    let r = post(addr, None, None, INIT).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert!(r.body_str().contains("rate limited"));
}
