#![cfg(all(feature = "sqlite", feature = "snowflake"))]
//! The operations endpoints over real sockets: `/health/detailed`,
//! `/status` and `/metrics` on the SQLite demo (healthy, counters moving
//! as MCP requests are made; degraded while calls queue) and on fakesnow (unhealthy while it is
//! stopped, cached checks, healthy again after).

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use snowflake_mcp::requests::RequestsConfig;
use snowflake_mcp::warehouse::Warehouse;
use snowflake_mcp::warehouse::snowflake::SnowflakeWarehouse;
use snowflake_mcp::warehouse::sqlite::{SqliteConfig, SqliteWarehouse};
use support::Client;
use support::warehouse::FakeSnow;

/// A daemon-like server: `/mcp` with the warehouse tools, and the ops routes.
async fn serve(warehouse: Arc<dyn Warehouse>, ttl: Duration) -> std::net::SocketAddr {
    support::stack::serve(warehouse, ttl, RequestsConfig::default()).await
}

async fn get(addr: std::net::SocketAddr, path: &str) -> support::Resp {
    let mut c = Client::connect(addr).await;
    c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await;
    c.read_response().await
}

async fn json_of(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let r = get(addr, path).await;
    (r.status, serde_json::from_slice(&r.body).expect("JSON"))
}

/// `name{labels} value` lines of a Prometheus text body.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("sample line");
            (name.to_owned(), value.parse().expect("number"))
        })
        .collect()
}

fn sample(text: &str, name: &str) -> f64 {
    samples(text)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .1
}

async fn post(c: &mut Client, session: Option<&str>, body: &str) -> support::Resp {
    let session = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{session}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.send(req.as_bytes()).await;
    c.read_response_to("POST").await
}

#[tokio::test]
async fn healthy_status_and_metrics_that_move() {
    let warehouse = SqliteWarehouse::open(SqliteConfig::default())
        .await
        .expect("demo");
    let addr = serve(warehouse, Duration::from_secs(5)).await;

    let (status, v) = json_of(addr, "/health/detailed").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["overall_status"], "healthy");
    for part in [
        "connection_pool",
        "database",
        "request_manager",
        "websockets",
        "sessions",
    ] {
        assert_eq!(v["components"][part]["status"], "healthy", "{part}: {v}");
    }
    assert_eq!(v["components"]["database"]["kind"], "sqlite");
    assert_eq!(v["components"]["database"]["cached"], false);
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    let (_, again) = json_of(addr, "/health/detailed").await;
    assert_eq!(
        again["components"]["database"]["cached"], true,
        "the check is reused"
    );

    let before = String::from_utf8(get(addr, "/metrics").await.body).unwrap();
    // One MCP session, one tool call.
    let mut c = Client::connect(addr).await;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"ops-test","version":"0"}}}"#;
    let r = post(&mut c, None, init).await;
    let sid = r.header("mcp-session-id").expect("session").to_owned();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "execute_query", "arguments": {"query": "SELECT 1"}}}).to_string();
    let r = post(&mut c, Some(&sid), &call).await;
    assert_eq!(r.status, 200);
    // A statement the read-only guard refuses: a result with isError.
    let refused = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "execute_query", "arguments": {"query": "DELETE FROM orders"}}}).to_string();
    let r = post(&mut c, Some(&sid), &refused).await;
    assert_eq!(r.status, 200);

    let (status, st) = json_of(addr, "/status").await;
    assert_eq!(status, 200);
    assert_eq!(st["version"], "test");
    assert_eq!(st["warehouse"], "sqlite");
    assert_eq!(st["sessions_active"], 1);
    assert_eq!(st["connections"]["streamable_http"]["opened"], 1);
    assert!(
        st["transports"][0]["address"]
            .as_str()
            .unwrap()
            .ends_with("/mcp")
    );
    assert_eq!(st["active_requests"], json!([]));

    let r = get(addr, "/metrics").await;
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let after = String::from_utf8(r.body).unwrap();
    assert!(after.contains("# TYPE snowflake_mcp_connections_total counter"));
    assert!(
        sample(&after, "snowflake_mcp_connections_total")
            > sample(&before, "snowflake_mcp_connections_total")
    );
    assert_eq!(
        sample(
            &after,
            "snowflake_mcp_sessions_opened_total{transport=\"streamable_http\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "snowflake_mcp_warehouse_calls_total{outcome=\"started\"}"
        ),
        sample(
            &before,
            "snowflake_mcp_warehouse_calls_total{outcome=\"started\"}"
        ) + 1.0
    );
    for (outcome, n) in [
        ("ok", 1.0),
        ("tool_error", 1.0),
        ("error", 0.0),
        ("cancelled", 0.0),
    ] {
        let name = format!(
            "snowflake_mcp_tool_calls_total{{tool=\"execute_query\",outcome=\"{outcome}\"}}"
        );
        assert_eq!(sample(&after, &name), n, "{name}");
    }
    assert_eq!(
        sample(
            &after,
            "snowflake_mcp_tool_calls_total{tool=\"list_tables\",outcome=\"ok\"}"
        ),
        0.0
    );
    assert!(sample(&after, "snowflake_mcp_http_responses_total{code=\"200\"}") >= 4.0);
    // Answers of the HTTP layer itself count too, by their exact code.
    assert_eq!(get(addr, "/no-such-path").await.status, 404);
    let later = String::from_utf8(get(addr, "/metrics").await.body).expect("text");
    assert_eq!(
        sample(&later, "snowflake_mcp_http_responses_total{code=\"404\"}"),
        1.0
    );
    assert!(after.contains("# TYPE snowflake_mcp_sessions_expired_total counter"));
    // The histograms: the one statement that ran, the MCP requests, no queueing.
    assert_eq!(
        sample(&after, "snowflake_mcp_statement_duration_seconds_count"),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "snowflake_mcp_statement_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        1.0
    );
    assert!(sample(&after, "snowflake_mcp_request_duration_seconds_count") >= 3.0);
    assert_eq!(
        sample(&after, "snowflake_mcp_queue_wait_seconds_count"),
        0.0
    );
    assert!(after.contains("# TYPE snowflake_mcp_websocket_messages_total counter"));
    assert!(after.contains("# TYPE snowflake_mcp_websockets_closed_not_reading_total counter"));
    for name in [
        "snowflake_mcp_connections_active",
        "snowflake_mcp_requests_active",
        "snowflake_mcp_websockets_active",
    ] {
        assert!(after.contains(&format!("# TYPE {name} gauge")), "{name}");
    }
    // Every family has HELP and TYPE, and every sample belongs to a typed family.
    let typed: Vec<&str> = after
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    for (name, _) in samples(&after) {
        let family = name.split('{').next().unwrap();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| family.strip_suffix(s).filter(|b| typed.contains(b)))
            .unwrap_or(family);
        assert!(typed.contains(&base), "{family} has no TYPE");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_while_the_warehouse_is_down_and_healthy_after() {
    let fake = FakeSnow::start(0);
    let port = fake.port;
    let mut config = fake.config(2);
    config.pool.acquire_timeout = Duration::from_secs(2);
    let warehouse = SnowflakeWarehouse::open(config).await.expect("login");
    let addr = serve(warehouse, Duration::from_millis(200)).await;
    let (status, v) = json_of(addr, "/health/detailed").await;
    assert_eq!(
        (status, v["overall_status"].clone()),
        (200, json!("healthy")),
        "{v}"
    );

    drop(fake);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, v) = json_of(addr, "/health/detailed").await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["overall_status"], "unhealthy");
    assert_eq!(v["components"]["database"]["status"], "unhealthy");
    assert!(
        v["components"]["database"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{v}"
    );
    // The liveness probe touches nothing slow and stays up.
    assert_eq!(get(addr, "/health").await.status, 200);

    let _back = FakeSnow::start(port);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, v) = json_of(addr, "/health/detailed").await;
        if status == 200 && v["components"]["database"]["status"] == "healthy" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never healthy again: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One warehouse call at a time, two asked for: the second waits, and the
/// server says it is degraded (200, not 503) until the queue drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_makes_the_server_degraded() {
    let warehouse = SqliteWarehouse::open(SqliteConfig::default())
        .await
        .expect("demo");
    let limits = RequestsConfig {
        max_concurrent: 1,
        ..RequestsConfig::default()
    };
    let addr = support::stack::serve(warehouse, Duration::from_secs(5), limits).await;
    let mut c = Client::connect(addr).await;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"ops-test","version":"0"}}}"#;
    let r = post(&mut c, None, init).await;
    let sid = r.header("mcp-session-id").expect("session").to_owned();
    // Two statements that would run for hours (cancelled below).
    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000000) SELECT count(*) FROM c";
    let mut slow = Vec::new();
    for id in [2, 3] {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "execute_query", "arguments": {"query": endless}}}).to_string();
        let mut c = Client::connect(addr).await;
        c.send(
            format!(
                "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {sid}\r\nContent-Length: {}\r\n\r\n{call}",
                call.len()
            )
            .as_bytes(),
        )
        .await;
        slow.push(c);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (status, v) = loop {
        let (status, v) = json_of(addr, "/health/detailed").await;
        if v["components"]["request_manager"]["queued"] == 1 {
            break (status, v);
        }
        assert!(tokio::time::Instant::now() < deadline, "never queued: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 200, "degraded is still serving: {v}");
    assert_eq!(v["overall_status"], "degraded", "{v}");
    assert_eq!(v["components"]["request_manager"]["status"], "degraded");
    assert_eq!(v["components"]["request_manager"]["running"], 1);
    assert_eq!(v["components"]["database"]["status"], "healthy");
    let (_, st) = json_of(addr, "/status").await;
    let active = st["active_requests"].as_array().expect("list");
    assert_eq!(active.len(), 2, "{st}");
    assert!(active.iter().all(|r| r["tool"] == "execute_query"), "{st}");
    assert_eq!(
        active.iter().filter(|r| r["running"] == true).count(),
        1,
        "{st}"
    );
    let metrics = String::from_utf8(get(addr, "/metrics").await.body).expect("text");
    assert_eq!(sample(&metrics, "snowflake_mcp_requests_active"), 1.0);
    assert_eq!(sample(&metrics, "snowflake_mcp_requests_queued"), 1.0);
    // The client cancels both (before 2026-07-28 a closed stream is not a
    // cancellation): the queue drains and the server is healthy again.
    for id in [2, 3] {
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id}}).to_string();
        assert_eq!(post(&mut c, Some(&sid), &cancel).await.status, 202);
    }
    drop(slow);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, v) = json_of(addr, "/health/detailed").await;
        if v["overall_status"] == "healthy" {
            assert_eq!(status, 200);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
