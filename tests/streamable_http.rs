//! The Streamable HTTP transport over raw sockets: statuses, sessions, streams.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use snowflake_mcp::http::Router;
use snowflake_mcp::mcp::{McpServer, Resource, ResourceContents, Tool, ToolOutput};
use snowflake_mcp::transport::streamable_http::{HttpMcpConfig, StreamableHttp};
use snowflake_mcp::{Config, Server};
use support::{Client, answer_of};

/// How many `slow` calls ran to their end.
static FINISHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Tests that run `slow` take turns, so each counts only its own calls.
static SLOW: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start() -> (std::net::SocketAddr, Arc<StreamableHttp>, McpServer) {
    start_with(HttpMcpConfig::default()).await
}

async fn start_with(
    config: HttpMcpConfig,
) -> (std::net::SocketAddr, Arc<StreamableHttp>, McpServer) {
    let server = McpServer::builder("http-test", "0")
        .tool(Tool::raw(
            "slow",
            "Sleeps, then counts.",
            json!({"type": "object"}),
            |_ctx, _| async {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                FINISHED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                ToolOutput::text("done")
            },
        ))
        .tool(Tool::raw(
            "hello",
            "Says hello.",
            json!({"type": "object"}),
            |ctx, _| async move {
                ctx.progress(1.0, Some(1.0), None).await;
                ToolOutput::text("hello")
            },
        ))
        .tool(Tool::raw(
            "late_hello",
            "Waits `turns` turns, then sends its progress and answers in one poll.",
            json!({"type": "object"}),
            |ctx, args| async move {
                for _ in 0..args["turns"].as_u64().unwrap_or(0) {
                    tokio::task::yield_now().await;
                }
                ctx.progress(1.0, Some(1.0), None).await;
                ToolOutput::text("late hello")
            },
        ))
        .resource(Resource::text(
            "mem://big",
            "big",
            "text/plain",
            &big_text(),
        ))
        .resource(Resource::new(
            "mem://big-later",
            "big, later",
            |ctx, uri| {
                async move {
                    // Not done at its first poll; with a progress token it
                    // reports progress first.
                    tokio::task::yield_now().await;
                    if ctx.progress_token().is_some() {
                        ctx.progress(1.0, Some(1.0), None).await;
                    }
                    Ok(vec![ResourceContents::Text {
                        uri,
                        mime_type: None,
                        text: big_text(),
                    }])
                }
            },
        ))
        .build();
    let endpoint = StreamableHttp::with_config(server.clone(), config);
    let router = endpoint.routes(Router::new(), "/mcp");
    let http = Server::bind(
        Config {
            port: 0,
            ..Config::default()
        },
        router,
    )
    .await
    .unwrap();
    let addr = http.local_addr();
    tokio::spawn(http.serve(std::future::pending()));
    (addr, endpoint, server)
}

/// A resource's text of 400 KiB, with characters JSON escapes: its answer
/// takes the large path.
fn big_text() -> String {
    "a \"row\"\n".repeat(40_000)
}

fn post(body: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req.into_bytes()
}

/// Sends `initialize` and returns the new session's id.
async fn open_session(c: &mut Client) -> String {
    c.send(&post(INIT, &[])).await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200);
    r.header("mcp-session-id").expect("a session id").to_owned()
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;

#[tokio::test]
async fn sessions_statuses_and_streams() {
    let (addr, endpoint, mcp) = start().await;
    let mut c = Client::connect(addr).await;

    // Wrong content type, no session, unknown session, bad version header.
    c.send(
        b"POST /mcp HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    assert_eq!(c.read_response().await.status, 415);
    c.send(&post(
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        &[],
    ))
    .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MCP-Session-Id")
    );
    c.send(&post(
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        &[("Mcp-Session-Id", "nope")],
    ))
    .await;
    assert_eq!(c.read_response().await.status, 404);
    c.send(&post(INIT, &[("MCP-Protocol-Version", "1999-01-01")]))
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 400);
    let e: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(e["error"]["code"], -32022);
    assert!(
        e["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );

    // initialize creates a session; its id is 128 random bits in hex.
    c.send(&post(INIT, &[])).await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200);
    let sid = r.header("mcp-session-id").unwrap().to_owned();
    assert_eq!(sid.len(), 32);
    assert!(sid.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(endpoint.session_count(), 1);
    let s = [
        ("Mcp-Session-Id", sid.as_str()),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];

    // A notification: 202, no body. A request: JSON.
    c.send(&post(
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        &s,
    ))
    .await;
    let r = c.read_response().await;
    assert_eq!((r.status, r.body.len()), (202, 0));
    c.send(&post(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#, &s))
        .await;
    let r = c.read_response().await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body_str(), r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);

    // A tool call streams: priming event, progress, then the answer.
    c.send(&post(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"hello","_meta":{"progressToken":9}}}"#, &s)).await;
    let r = c.read_response().await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events: Vec<&str> = std::str::from_utf8(&r.body)
        .unwrap()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .collect();
    assert_eq!(events[0], "id: 4-1\nretry: 1000\ndata: ");
    assert!(events[1].contains("notifications/progress"), "{events:?}");
    assert!(
        events[2].starts_with("id: 4-3\ndata: {\"jsonrpc\":\"2.0\",\"id\":4,\"result\""),
        "{events:?}"
    );

    // GET: Accept must allow event streams; 2026-07-28 has none; else the session's stream.
    c.send(b"GET /mcp HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(c.read_response().await.status, 406);
    c.send(b"GET /mcp HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\r\n").await;
    assert_eq!(c.read_response().await.status, 405);
    let mut stream = Client::connect(addr).await;
    let get = format!(
        "GET /mcp HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nMcp-Session-Id: {sid}\r\n\r\n"
    );
    stream.send(get.as_bytes()).await;
    let mut seen = String::new();
    while !seen.contains("get-0") {
        seen.push_str(&String::from_utf8_lossy(&stream.read_exact_raw(1).await));
    }
    assert!(seen.starts_with("HTTP/1.1 200 OK"), "{seen}");
    assert!(seen.contains("text/event-stream"), "{seen}");
    mcp.add_tool(Tool::raw(
        "late",
        "Added later.",
        json!({"type": "object"}),
        |_ctx, _| async { ToolOutput::text("late") },
    ));
    while !seen.contains("notifications/tools/list_changed") {
        seen.push_str(&String::from_utf8_lossy(&stream.read_exact_raw(1).await));
    }

    // DELETE ends the session, and its GET stream with it.
    c.send(format!("DELETE /mcp HTTP/1.1\r\nHost: t\r\nMcp-Session-Id: {sid}\r\n\r\n").as_bytes())
        .await;
    assert_eq!(c.read_response().await.status, 204);
    while !seen.ends_with("0\r\n\r\n") {
        seen.push_str(&String::from_utf8_lossy(&stream.read_exact_raw(1).await));
    }
    assert_eq!(endpoint.session_count(), 0);
    c.send(&post(r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#, &s))
        .await;
    assert_eq!(c.read_response().await.status, 404);

    // 2026-07-28 needs no session.
    let modern = r#"{"jsonrpc":"2.0","id":6,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    c.send(&post(
        modern,
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/list"),
        ],
    ))
    .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["result"]["tools"][1]["name"], "hello");
    assert_eq!(v["result"]["resultType"], "complete");
    assert_eq!(endpoint.session_count(), 0);
}

#[tokio::test]
async fn origin_accept_and_modern_header_checks() {
    let (addr, _endpoint, _mcp) = start().await;
    let mut c = Client::connect(addr).await;
    // A foreign browser origin: 403. A loopback origin with a foreign Host: 403.
    c.send(&post(INIT, &[("Origin", "https://evil.example")]))
        .await;
    assert_eq!(c.read_response().await.status, 403);
    let mut raw = String::from_utf8(post(INIT, &[("Origin", "http://localhost:8000")])).unwrap();
    raw = raw.replacen("Host: t", "Host: attacker.example", 1);
    c.send(raw.as_bytes()).await;
    assert_eq!(c.read_response().await.status, 403);
    let mut raw = String::from_utf8(post(INIT, &[("Origin", "http://localhost:8000")])).unwrap();
    raw = raw.replacen("Host: t", "Host: localhost:8000", 1);
    c.send(raw.as_bytes()).await;
    assert_eq!(c.read_response().await.status, 200);
    // Accept that rules out our answers: 406.
    let raw = String::from_utf8(post(INIT, &[])).unwrap().replacen(
        "Accept: application/json, text/event-stream",
        "Accept: text/html",
        1,
    );
    c.send(raw.as_bytes()).await;
    assert_eq!(c.read_response().await.status, 406);

    // 2026-07-28: headers must agree with the body.
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"hello","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let v = ("MCP-Protocol-Version", "2026-07-28");
    for (headers, why) in [
        (vec![v], "Mcp-Method is missing"),
        (
            vec![v, ("Mcp-Method", "tools/list"), ("Mcp-Name", "hello")],
            "Mcp-Method differs",
        ),
        (vec![v, ("Mcp-Method", "tools/call")], "Mcp-Name is missing"),
        (
            vec![v, ("Mcp-Method", "tools/call"), ("Mcp-Name", "other")],
            "Mcp-Name differs",
        ),
    ] {
        c.send(&post(call, &headers)).await;
        let r = c.read_response().await;
        assert_eq!(r.status, 400, "{why}");
        let e: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(e["error"]["code"], -32020);
        assert!(e["error"]["message"].as_str().unwrap().contains(why), "{e}");
    }
    // A body past 64 KiB is read off the async workers; its headers are
    // held to it there the same way.
    let padded = call.replace(
        r#""name":"hello","#,
        &format!(r#""name":"hello","pad":"{}","#, "x".repeat(70_000)),
    );
    for (name, status) in [("other", 400), ("hello", 200)] {
        c.send(&post(
            &padded,
            &[v, ("Mcp-Method", "tools/call"), ("Mcp-Name", name)],
        ))
        .await;
        let r = c.read_response().await;
        assert_eq!(r.status, status, "{name}: {}", r.body_str());
        if status == 400 {
            let e: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(e["error"]["code"], -32020, "{e}");
        }
    }
    let stale = call.replace("\"2026-07-28\",", "\"2025-11-25\",");
    c.send(&post(
        &stale,
        &[v, ("Mcp-Method", "tools/call"), ("Mcp-Name", "hello")],
    ))
    .await;
    assert_eq!(c.read_response().await.status, 400);
    c.send(&post(
        call,
        &[v, ("Mcp-Method", "tools/call"), ("Mcp-Name", "hello")],
    ))
    .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200);
    assert!(r.body_str().contains(r#""id":7,"result""#));
}

#[tokio::test]
async fn sessions_expire_and_are_bounded() {
    let config = HttpMcpConfig {
        max_sessions: 1,
        session_idle: std::time::Duration::from_millis(300),
        ..HttpMcpConfig::default()
    };
    // Through the composition root, so the counters show on `/metrics`.
    let addr = support::serve(
        snowflake_mcp::Service::new(McpServer::builder("http-test", "0"))
            .streamable_http_with("/mcp", config)
            .ops(),
    )
    .await;
    let mut c = Client::connect(addr).await;
    c.send(&post(INIT, &[])).await;
    let first = c.read_response().await;
    let first_sid = first.header("mcp-session-id").unwrap().to_owned();
    // Full: the least recently used session of the busiest principal (here
    // the only one) makes room; the table never refuses a new client.
    c.send(&post(INIT, &[])).await;
    let second = c.read_response().await;
    assert_eq!(second.status, 200);
    let sid = second.header("mcp-session-id").unwrap().to_owned();
    assert_ne!(sid, first_sid);
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    c.send(&post(ping, &[("Mcp-Session-Id", &first_sid)])).await;
    assert_eq!(
        c.read_response().await.status,
        404,
        "the evicted session is gone"
    );
    c.send(&post(ping, &[("Mcp-Session-Id", &sid)])).await;
    assert_eq!(c.read_response().await.status, 200);
    // Idle past the limit: the id is gone, and the slot is free again.
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    c.send(&post(ping, &[("Mcp-Session-Id", &sid)])).await;
    assert_eq!(c.read_response().await.status, 404);
    c.send(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let metrics = c.read_response_to("GET").await.body_str();
    // One evicted, one expired: both counted, and none left open.
    for line in [
        "snowflake_mcp_sessions_expired_total{transport=\"streamable_http\"} 2",
        "snowflake_mcp_sessions_closed_total{transport=\"streamable_http\"} 2",
        "snowflake_mcp_sessions_active{transport=\"streamable_http\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    c.send(&post(INIT, &[])).await;
    assert_eq!(c.read_response().await.status, 200);
}

#[tokio::test]
async fn modern_errors_carry_ids_and_statuses() {
    let (addr, _endpoint, _mcp) = start().await;
    let mut c = Client::connect(addr).await;
    let v = ("MCP-Protocol-Version", "2026-07-28");
    // _meta missing, or missing its required members: 400, -32602, with the request id.
    for body in [
        r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}}}"#,
        r#"{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
    ] {
        c.send(&post(body, &[v, ("Mcp-Method", "tools/list")]))
            .await;
        let r = c.read_response().await;
        assert_eq!(r.status, 400, "{body}");
        let e: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (&e["id"], &e["error"]["code"]),
            (&json!("a"), &json!(-32602)),
            "{body}"
        );
    }
    // A method 2026-07-28 does not have: 404 with -32601.
    let ping = r#"{"jsonrpc":"2.0","id":9,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    c.send(&post(ping, &[v, ("Mcp-Method", "ping")])).await;
    let r = c.read_response().await;
    assert_eq!(r.status, 404);
    let e: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((&e["id"], &e["error"]["code"]), (&json!(9), &json!(-32601)));
}

#[tokio::test]
async fn a_modern_call_that_streams_before_answering_always_gets_its_stream() {
    let (addr, _endpoint, _mcp) = start().await;
    let mut c = Client::connect(addr).await;
    let headers = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "hello"),
    ];
    // `hello` sends its progress and answers without waiting: every time,
    // the progress comes first, on a stream (never a JSON answer without
    // it). `late_hello` is not done at its first polls; at a later one it
    // sends its progress and answers at once: whichever poll that is, the
    // same holds.
    for id in 0..60 {
        let (tool, turns) = if id < 40 {
            ("hello", 0)
        } else {
            ("late_hello", id % 6)
        };
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{"turns":{turns}}},"_meta":{{"progressToken":"p","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
        );
        let named = [headers[0], headers[1], ("Mcp-Name", tool)];
        c.send(&post(&body, &named)).await;
        let r = c.read_response().await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/event-stream"), "{id}");
        let text = r.body_str();
        let progress = text.find("notifications/progress").expect("progress");
        let answer = text.find("\"result\"").expect("answer");
        assert!(progress < answer, "{text}");
    }
    // Without a progress token it says nothing first: one JSON answer.
    let quiet = r#"{"jsonrpc":"2.0","id":"q","method":"tools/call","params":{"name":"hello","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    c.send(&post(quiet, &headers)).await;
    let r = c.read_response().await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/json"))
    );
    // An error the call itself answers (a `requestState` that is not a
    // string) carries its status: 400, with -32602.
    let bad_state = r#"{"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"hello","requestState":5,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    c.send(&post(bad_state, &headers)).await;
    let r = c.read_response().await;
    assert_eq!(r.status, 400, "{}", r.body_str());
    let e: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (&e["id"], &e["error"]["code"]),
        (&json!("s"), &json!(-32602))
    );
}

#[tokio::test]
async fn a_legacy_call_done_at_once_is_json_and_a_waiting_one_streams() {
    let _turn = SLOW.lock().await;
    let (addr, _endpoint, _mcp) = start().await;
    let mut c = Client::connect(addr).await;
    let sid = open_session(&mut c).await;
    let s = [("Mcp-Session-Id", sid.as_str())];
    // `hello` without a progress token sends nothing and answers at once.
    let quick = r#"{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"hello"}}"#;
    c.send(&post(quick, &s)).await;
    let r = c.read_response().await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/json"))
    );
    let answer: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(answer["id"], 21);
    assert_eq!(answer["result"]["content"][0]["text"], "hello");
    // `slow` waits: a stream, its priming event first, then the answer.
    let waits = r#"{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"slow"}}"#;
    c.send(&post(waits, &s)).await;
    let r = c.read_response().await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = r.body_str();
    assert!(text.starts_with("id: 22-1\nretry: "), "{text}");
    assert!(text.contains(r#""id":22,"result""#), "{text}");
}

#[tokio::test]
async fn a_dropped_stream_cancels_only_on_2026() {
    use std::sync::atomic::Ordering;
    let _turn = SLOW.lock().await;
    let (addr, _endpoint, _mcp) = start().await;
    // Legacy: the client goes away mid-call; the call still runs to its end.
    let mut c = Client::connect(addr).await;
    let sid = open_session(&mut c).await;
    let before = FINISHED.load(Ordering::SeqCst);
    let call = r#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"slow"}}"#;
    c.send(&post(call, &[("Mcp-Session-Id", &sid)])).await;
    c.read_exact_raw(12).await; // the status line has started: the call is running
    drop(c);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        FINISHED.load(Ordering::SeqCst),
        before + 1,
        "legacy call was cancelled"
    );
    // 2026-07-28: closing the stream cancels the call.
    let mut c = Client::connect(addr).await;
    let modern = r#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"slow","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    c.send(&post(
        modern,
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "slow"),
        ],
    ))
    .await;
    // A call that says nothing before its answer gets a JSON answer, so no
    // status line comes before it: the client leaves while it runs.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    drop(c);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        FINISHED.load(Ordering::SeqCst),
        before + 1,
        "2026-07-28 call was not cancelled"
    );
}

#[tokio::test]
async fn a_lost_stream_resumes_with_last_event_id() {
    let _turn = SLOW.lock().await;
    let (addr, _endpoint, _mcp) = start().await;
    let mut c = Client::connect(addr).await;
    let sid = open_session(&mut c).await;
    // Start a slow call, read up to its priming event, lose the connection.
    let mut lost = Client::connect(addr).await;
    let call = r#"{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"slow"}}"#;
    lost.send(&post(call, &[("Mcp-Session-Id", &sid)])).await;
    let mut seen = String::new();
    while !seen.contains("id: 13-1") {
        seen.push_str(&String::from_utf8_lossy(&lost.read_exact_raw(1).await));
    }
    drop(lost);
    // Resume: the answer arrives on the GET stream, which then ends.
    let get = format!(
        "GET /mcp HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nMcp-Session-Id: {sid}\r\nLast-Event-ID: 13-1\r\n\r\n"
    );
    c.send(get.as_bytes()).await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200);
    let body = r.body_str();
    assert!(
        body.starts_with("id: 13-2\ndata: {\"jsonrpc\":\"2.0\",\"id\":13,\"result\""),
        "{body}"
    );
    // An id not of ours opens the ordinary session stream instead (checked by its priming id).
    let mut other = Client::connect(addr).await;
    let get = format!(
        "GET /mcp HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nMcp-Session-Id: {sid}\r\nLast-Event-ID: 99-1\r\n\r\n"
    );
    other.send(get.as_bytes()).await;
    let mut seen = String::new();
    while !seen.contains("get-0") {
        seen.push_str(&String::from_utf8_lossy(&other.read_exact_raw(1).await));
    }
}

#[tokio::test]
async fn a_resume_past_what_is_kept_is_refused_not_gapped() {
    let _turn = SLOW.lock().await;
    // A session keeps 40 bytes of answers: the call's answer does not fit.
    let (addr, _endpoint, _mcp) = start_with(HttpMcpConfig {
        replay_bytes_per_session: 40,
        ..HttpMcpConfig::default()
    })
    .await;
    let mut c = Client::connect(addr).await;
    let sid = open_session(&mut c).await;
    let mut lost = Client::connect(addr).await;
    let call = r#"{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"slow"}}"#;
    lost.send(&post(call, &[("Mcp-Session-Id", &sid)])).await;
    let mut seen = String::new();
    while !seen.contains("id: 14-1") {
        seen.push_str(&String::from_utf8_lossy(&lost.read_exact_raw(1).await));
    }
    drop(lost);
    // Let the call end (its answer is recorded, then dropped for its size).
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let get = format!(
        "GET /mcp HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nMcp-Session-Id: {sid}\r\nLast-Event-ID: 14-1\r\n\r\n"
    );
    c.send(get.as_bytes()).await;
    let r = c.read_response().await;
    assert_eq!(r.status, 409, "{}", r.body_str());
    assert!(r.body_str().contains("no longer kept"), "{}", r.body_str());
}

/// A large result that is not a tool output (a resource read) is framed
/// inside its response off the async workers: whole, under its own id,
/// answered at once or later, as JSON or on a stream, on both versions.
#[tokio::test]
async fn large_resource_reads_arrive_whole_under_their_id() {
    let (addr, _endpoint, _mcp) = start().await;
    let mut c = Client::connect(addr).await;
    let sid = open_session(&mut c).await;
    let text_of = |answer: &Value| {
        answer["result"]["contents"][0]["text"]
            .as_str()
            .map(str::to_owned)
    };
    let want = Some(big_text());
    for uri in ["mem://big", "mem://big-later"] {
        for (id, token) in [(r#""r\"1""#, false), ("2", true)] {
            let meta = if token {
                r#","_meta":{"progressToken":"p"}"#
            } else {
                ""
            };
            // 2025-11-25, in a session.
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"resources/read","params":{{"uri":"{uri}"{meta}}}}}"#
            );
            c.send(&post(&body, &[("Mcp-Session-Id", sid.as_str())]))
                .await;
            let r = c.read_response().await;
            assert_eq!(r.status, 200);
            let answer = answer_of(&r.body_str());
            assert_eq!(answer["id"].to_string(), id, "{uri}");
            assert_eq!(text_of(&answer), want, "{uri} {id}");
            assert_progress_first(&r, token && uri == "mem://big-later");
            // 2026-07-28, stateless.
            let meta = format!(
                r#"{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}{}}}"#,
                if token { r#","progressToken":"p""# } else { "" }
            );
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"resources/read","params":{{"uri":"{uri}","_meta":{meta}}}}}"#
            );
            let headers = [
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "resources/read"),
                ("Mcp-Name", uri),
            ];
            c.send(&post(&body, &headers)).await;
            let r = c.read_response().await;
            assert_eq!(r.status, 200);
            let answer = answer_of(&r.body_str());
            assert_eq!(answer["id"].to_string(), id, "{uri}");
            assert_eq!(text_of(&answer), want, "{uri} {id}");
            assert_eq!(answer["result"]["resultType"], "complete");
            // Only the one that reports progress streams, its progress first.
            let reports = token && uri == "mem://big-later";
            let streamed = r.header("content-type") == Some("text/event-stream");
            assert_eq!(streamed, reports, "{uri} {id}");
            assert_progress_first(&r, reports);
        }
    }
}

/// A reply carries a progress notification before its answer when
/// `reports`, and none when not.
fn assert_progress_first(r: &support::Resp, reports: bool) {
    let text = r.body_str();
    let progress = text.find("notifications/progress");
    assert_eq!(progress.is_some(), reports, "progress in {:.200}", text);
    if let Some(progress) = progress {
        assert!(progress < text.find("\"result\"").expect("an answer"));
    }
}
