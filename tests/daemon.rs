//! The example daemon as an operator runs it: settings from a TOML file, the
//! environment and flags; no secret in its logs, metrics or errors; and the
//! whole graceful shutdown sequence, with requests in flight, an event
//! stream and a WebSocket open, under load, past its deadline, and cut short
//! by a second signal.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::Client;
use support::daemon::{Daemon, server_binary};
use tokio_tungstenite::tungstenite::Message;

const VERSION: &str = "2025-06-18";

/// A POST to `/mcp`, keep-alive unless `extra` says otherwise.
fn post(addr: SocketAddr, session: Option<&str>, body: &Value, extra: &str) -> Vec<u8> {
    let body = body.to_string();
    let session = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {VERSION}\r\n\
         {session}{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The JSON-RPC messages of a response body: plain JSON or SSE `data:` lines.
fn messages(body: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(body);
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return vec![v];
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// The message answering `id`.
fn answer(body: &[u8], id: i64) -> Value {
    messages(body)
        .into_iter()
        .find(|m| m["id"] == json!(id))
        .unwrap_or_else(|| panic!("no answer to {id} in {:?}", String::from_utf8_lossy(body)))
}

/// Whether `a` is a tool result that is not an error.
fn succeeded(a: &Value) -> bool {
    a["result"].is_object() && a["result"]["isError"] != json!(true)
}

/// Opens a Streamable HTTP session; returns its id.
async fn open_session(addr: SocketAddr, extra: &str) -> String {
    let mut c = Client::connect(addr).await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {},
        "clientInfo": {"name": "daemon-test", "version": "0"}}});
    c.send(&post(addr, None, &init, extra)).await;
    let r = c.read_response_to("POST").await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    let session = r.header("mcp-session-id").expect("session id").to_owned();
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    c.send(&post(addr, Some(&session), &done, extra)).await;
    assert_eq!(c.read_response_to("POST").await.status, 202);
    session
}

fn query_call(id: i64, sql: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "execute_query", "arguments": {"query": sql}}})
}

/// A statement SQLite needs a while for: counting `n` rows of a recursive CTE.
fn counting(n: u64) -> String {
    format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) SELECT count(*) AS n FROM c"
    )
}

/// A count that takes about `target` on this machine, measured through the daemon.
async fn calibrate(addr: SocketAddr, session: &str, target: Duration) -> u64 {
    let probe = 200_000u64;
    let mut c = Client::connect(addr).await;
    let started = Instant::now();
    c.send(&post(
        addr,
        Some(session),
        &query_call(1, &counting(probe)),
        "",
    ))
    .await;
    let r = c.read_response_to("POST").await;
    let took = started.elapsed().max(Duration::from_millis(1));
    assert_eq!(r.status, 200);
    let a = answer(&r.body, 1);
    assert!(succeeded(&a), "{a}");
    let scale = target.as_secs_f64() / took.as_secs_f64();
    ((probe as f64) * scale) as u64
}

async fn ws_connect(addr: SocketAddr) -> support::Ws {
    let (mut ws, _) = support::ws_connect(addr).await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {},
        "clientInfo": {"name": "ws-daemon-test", "version": "0"}}});
    ws.send(Message::text(init.to_string()))
        .await
        .expect("send");
    let reply = ws.next().await.expect("open").expect("frame");
    assert!(reply.to_text().expect("text").contains("\"result\""));
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    ws.send(Message::text(done.to_string()))
        .await
        .expect("send");
    ws
}

/// Reads WebSocket messages until the close frame; returns the JSON ones and the close code.
async fn ws_until_close(ws: &mut support::Ws, within: Duration) -> (Vec<Value>, Option<u16>) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("WebSocket closed in time");
        match frame {
            Some(Ok(Message::Text(t))) => got.push(serde_json::from_str(&t).expect("JSON")),
            Some(Ok(Message::Close(frame))) => {
                return (got, frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (got, None),
        }
    }
}

/// The WebSocket endpoint's limits are settings of the daemon: a message
/// under `--ws-max-message-bytes` is answered, one past it closes its
/// socket with 1009; a bound on large bodies (which large WebSocket
/// messages share) under the body limit is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_limits_are_settings() {
    let daemon = Daemon::start(&["--port", "0", "--ws-max-message-bytes", "4096"], &[]);
    let mut ws = ws_connect(daemon.addr).await;
    let ping = |id: u64, pad: usize| {
        json!({"jsonrpc": "2.0", "id": id, "method": "ping", "params": {"pad": "x".repeat(pad)}})
            .to_string()
    };
    ws.send(Message::text(ping(1, 3000))).await.expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an answer in time")
        .expect("open")
        .expect("frame");
    let reply: Value = serde_json::from_str(reply.to_text().expect("text")).expect("JSON");
    assert_eq!(reply["id"], 1, "{reply}");
    ws.send(Message::text(ping(2, 5000))).await.expect("send");
    let (answers, code) = ws_until_close(&mut ws, Duration::from_secs(10)).await;
    assert!(answers.is_empty(), "{answers:?}");
    assert_eq!(code, Some(1009));
    let out = std::process::Command::new(server_binary())
        .args([
            "--max-body-bytes",
            "4096",
            "--max-large-bodies-bytes",
            "4095",
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--max-large-bodies-bytes") && err.contains("less than"),
        "{err}"
    );
}

/// The WebSocket endpoint's times are settings too: with
/// `--ws-ping-interval` and `--ws-pong-timeout` of 200 ms, a client that
/// stops answering pings (it stops reading) is closed within a second and
/// a half (1001), not after the default minute; a zero time is refused at
/// start, the setting named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_times_are_settings() {
    let daemon = Daemon::start(
        &[
            "--port",
            "0",
            "--ws-ping-interval",
            "200ms",
            "--ws-pong-timeout",
            "200ms",
            "--ws-max-in-flight",
            "4",
        ],
        &[],
    );
    let mut ws = ws_connect(daemon.addr).await;
    // Not read: tungstenite answers a ping only while it is read.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (answers, code) = ws_until_close(&mut ws, Duration::from_secs(5)).await;
    assert!(answers.is_empty(), "{answers:?}");
    assert_eq!(code, Some(1001));
    for (flag, value) in [
        ("--ws-send-timeout", "0s"),
        ("--ws-ping-interval", "soon"),
        ("--ws-max-in-flight", "0"),
    ] {
        let out = std::process::Command::new(server_binary())
            .args([flag, value])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains(flag), "{flag}: {err}");
    }
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("snowflake-mcp-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("write temp file");
    path
}

async fn get(addr: SocketAddr, path: &str, extra: &str) -> support::Resp {
    let mut c = Client::connect(addr).await;
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    c.read_response().await
}

async fn preflight(addr: SocketAddr, origin: &str) -> support::Resp {
    let mut c = Client::connect(addr).await;
    c.send(
        format!(
            "OPTIONS /mcp HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    c.read_response_to("OPTIONS").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_file_then_environment_then_flags() {
    let key = "file-key-0123456789abcdef";
    let file = temp_file(
        "layers.toml",
        &format!(
            "port = 0\ncors_origins = [\"http://file.example\"]\nprotect_ops = true\n\
             api_keys = [\"{key}\"]\nshutdown_timeout = \"5s\"\n"
        ),
    );
    let path = file.to_str().expect("path");
    // The file sets protect_ops and the keys; the environment replaces its origins.
    let daemon = Daemon::start(
        &["--config", path],
        &[("MCP_CORS_ORIGINS", "http://env.example")],
    );
    let addr = daemon.addr;
    let allowed = preflight(addr, "http://env.example").await;
    assert_eq!(allowed.status, 204);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://env.example")
    );
    let replaced = preflight(addr, "http://file.example").await;
    assert_eq!(replaced.header("access-control-allow-origin"), None);
    assert_eq!(
        get(addr, "/metrics", "").await.status,
        401,
        "protect_ops from the file"
    );
    let auth = format!("Authorization: Bearer {key}\r\n");
    assert_eq!(get(addr, "/metrics", &auth).await.status, 200);
    assert_eq!(get(addr, "/health", "").await.status, 200);
    drop(daemon);

    // Flags win over both.
    let daemon = Daemon::start(
        &[
            "--config",
            path,
            "--protect-ops=false",
            "--cors-origins",
            "http://flag.example",
        ],
        &[
            ("MCP_CORS_ORIGINS", "http://env.example"),
            ("MCP_PROTECT_OPS", "1"),
        ],
    );
    let addr = daemon.addr;
    assert_eq!(get(addr, "/metrics", "").await.status, 200);
    let flag = preflight(addr, "http://flag.example").await;
    assert_eq!(
        flag.header("access-control-allow-origin"),
        Some("http://flag.example")
    );
    assert_eq!(
        preflight(addr, "http://env.example")
            .await
            .header("access-control-allow-origin"),
        None
    );
    drop(daemon);

    // A bad value anywhere stops start-up and names the setting and its source.
    let refused = |args: &[&str], env: &[(&str, &str)], expect: &[&str]| {
        let mut command = std::process::Command::new(server_binary());
        command.args(args);
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
        for e in expect {
            assert!(err.contains(e), "{args:?} {env:?}: {err:?} lacks {e:?}");
        }
    };
    let bad_file = temp_file("bad.toml", "port = 0\nmax_connections = \"lots\"\n");
    let bad = bad_file.to_str().expect("path");
    refused(
        &["--config", bad],
        &[],
        &["max_connections (in ", "\"lots\""],
    );
    let unknown = temp_file("unknown.toml", "prot = 1\n");
    refused(
        &["--config", unknown.to_str().expect("path")],
        &[],
        &["prot (in ", "not a setting"],
    );
    let broken = temp_file("broken.toml", "port = \n");
    refused(
        &["--config", broken.to_str().expect("path")],
        &[],
        &["not valid TOML"],
    );
    refused(
        &["--config", "/nonexistent/x.toml"],
        &[],
        &["--config", "cannot read"],
    );
    refused(
        &["--port", "0"],
        &[("MCP_SHUTDOWN_TIMEOUT", "soon")],
        &["MCP_SHUTDOWN_TIMEOUT", "\"soon\"", "not a duration"],
    );
    refused(&["--rate-limit", "-3"], &[], &["--rate-limit", "positive"]);
    for bad in ["0", "33554433", "lots"] {
        refused(
            &["--malloc-mmap-threshold", bad],
            &[],
            &["--malloc-mmap-threshold", "not off or a number of bytes"],
        );
    }
    refused(
        &[
            "--max-body-bytes",
            "1000000",
            "--max-large-bodies-bytes",
            "999999",
        ],
        &[],
        &["--max-large-bodies-bytes", "less than max_body_bytes"],
    );
    refused(
        &["--cors-origins", "example.com"],
        &[],
        &["--cors-origins", "not an origin"],
    );
    refused(
        &["--log", "info,[=bad"],
        &[],
        &["--log", "not a log filter"],
    );
    refused(&["--api-keys", "x"], &[], &["--api-keys", "MCP_API_KEYS"]);
    // A short key: the message names the entry, never echoes the token.
    let out = std::process::Command::new(server_binary())
        .env("MCP_API_KEYS", "short-SECRET")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("MCP_API_KEYS") && err.contains("entry 1"),
        "{err}"
    );
    assert!(!err.contains("short-SECRET"), "{err}");

    // --help lists every setting with its default.
    let out = std::process::Command::new(server_binary())
        .arg("--help")
        .output()
        .expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    // clap's layout: each flag on a line, its help (with the default) under it.
    let lines: Vec<&str> = help.lines().collect();
    let flags: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim_start().starts_with("--"))
        .filter(|&i| !lines[i].contains("--config") && !lines[i].contains("--help"))
        .collect();
    assert!(flags.len() >= 25, "{help}");
    for i in flags {
        let described = lines.get(i + 1).copied().unwrap_or_default();
        assert!(
            described.contains("[default: "),
            "no default for {:?}",
            lines[i]
        );
    }
    for name in [
        "MCP_HTTP_HOST",
        "MCP_HTTP_PORT",
        "MCP_CORS_ORIGINS",
        "MCP_API_KEYS",
        "MCP_SHUTDOWN_TIMEOUT",
        "SNOWFLAKE_PASSWORD",
    ] {
        assert!(help.contains(name), "{name} missing from --help");
    }
    for f in [&file, &bad_file, &unknown, &broken] {
        let _ = std::fs::remove_file(f);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_metrics_status_or_errors() {
    let fakesnow = support::warehouse::FakeSnow::start(0);
    let password = "pw-SECRET-7f3a9c2e";
    let key = "key-SECRET-0123456789abcdef";
    let wrong = "bad-SECRET-fedcba9876543210";
    let literal = "arg-SECRET-literal";
    let url = fakesnow.url();
    let mut daemon = Daemon::start(
        &["--port", "0", "--log-format", "json", "--log", "trace"],
        &[
            ("SNOWFLAKE_ACCOUNT", "testacct"),
            ("SNOWFLAKE_USER", "tester"),
            ("SNOWFLAKE_PASSWORD", password),
            ("SNOWFLAKE_DATABASE", "DB1"),
            ("SNOWFLAKE_SCHEMA", "S1"),
            ("SNOWFLAKE_BASE_URL", &url),
            ("MCP_API_KEYS", key),
        ],
    );
    let addr = daemon.addr;
    let auth = format!("Authorization: Bearer {key}\r\n");
    let session = open_session(addr, &auth).await;
    let mut c = Client::connect(addr).await;
    let sql = format!("SELECT '{literal}' AS v");
    c.send(&post(addr, Some(&session), &query_call(5, &sql), &auth))
        .await;
    let r = c.read_response_to("POST").await;
    let a = answer(&r.body, 5);
    assert!(succeeded(&a), "{a}");
    // A refused statement and a wrong key: their errors carry no secret.
    c.send(&post(
        addr,
        Some(&session),
        &query_call(6, &format!("DELETE FROM t WHERE v = '{literal}'")),
        &auth,
    ))
    .await;
    let refused = c.read_response_to("POST").await;
    assert_eq!(answer(&refused.body, 6)["result"]["isError"], json!(true));
    let bad_auth = format!("Authorization: Bearer {wrong}\r\n");
    c.send(&post(
        addr,
        Some(&session),
        &query_call(7, "SELECT 1"),
        &bad_auth,
    ))
    .await;
    let denied = c.read_response_to("POST").await;
    assert_eq!(denied.status, 401);
    let metrics = get(addr, "/metrics", "").await;
    let status = get(addr, "/status", "").await;
    let detailed = get(addr, "/health/detailed", "").await;
    assert_eq!(metrics.status, 200);
    daemon.signal("TERM");
    let (exit, _, logs) = daemon.wait_exit(Duration::from_secs(15));
    assert!(exit.success(), "{exit:?}: {logs}");
    // The log is there (one JSON line per call, with its request id) ...
    let calls: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == json!("call ended"))
        .collect();
    assert!(
        calls
            .iter()
            .any(|l| l["fields"]["request_id"] == json!("5")),
        "{logs}"
    );
    // ... down to the HTTP client's own TRACE lines (the Snowflake login
    // went through it), so "no secret" below is not an empty log's doing ...
    assert!(
        logs.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| l["level"] == json!("TRACE")
                && l["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("hyper") || t.starts_with("reqwest"))),
        "no TRACE line from the HTTP client: {logs}"
    );
    // ... and no Snowflake token either (the HTTP client's lines stop at
    // info, and ours never name one). The stand-in's master tokens start
    // with "master-"; session tokens ride in `Authorization: Snowflake
    // Token="..."` headers.
    for marker in ["master-", "masterToken", "Snowflake Token="] {
        assert!(
            !logs.contains(marker),
            "a token reached the log ({marker}): {logs}"
        );
    }
    // ... and nothing secret is in it, nor in what the server answered.
    for (what, text) in [
        ("logs", logs.clone()),
        ("metrics", metrics.body_str()),
        ("status", status.body_str()),
        ("health", detailed.body_str()),
        ("refusal", refused.body_str()),
        ("401", String::from_utf8_lossy(&denied.raw).into_owned()),
    ] {
        for secret in [password, key, wrong] {
            assert!(!text.contains(secret), "{what} contains a secret: {text}");
        }
    }
    // Statement text is data: nothing at the default level (info) shows it.
    for line in logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if matches!(line["level"].as_str(), Some("INFO" | "WARN" | "ERROR")) {
            assert!(
                !line.to_string().contains(literal),
                "a call's arguments logged: {line}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_work_and_refuses_new_requests() {
    let mut daemon = Daemon::start(&["--port", "0", "--log-format", "json"], &[]);
    let addr = daemon.addr;
    let session = open_session(addr, "").await;
    let slow = counting(calibrate(addr, &session, Duration::from_millis(1500)).await);

    // A GET event stream on the session.
    let mut events = Client::connect(addr).await;
    events
        .send(
            format!(
                "GET /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
                 MCP-Protocol-Version: {VERSION}\r\nMcp-Session-Id: {session}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    let head = events.read_exact_raw(12).await;
    assert_eq!(&head, b"HTTP/1.1 200");
    // A WebSocket with a slow call in flight.
    let mut ws = ws_connect(addr).await;
    ws.send(Message::text(query_call(7, &slow).to_string()))
        .await
        .expect("send");
    // A slow call in flight on a Streamable HTTP connection.
    let mut busy = Client::connect(addr).await;
    busy.send(&post(addr, Some(&session), &query_call(8, &slow), ""))
        .await;
    // A kept-alive connection that has served one request and has started
    // sending its next one.
    let mut kept = Client::connect(addr).await;
    kept.send(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await;
    assert_eq!(kept.read_response().await.status, 200);
    kept.send(b"GET /health HTTP/1.1\r\n").await;
    // Both slow calls are running before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let signalled = Instant::now();
    daemon.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New requests on a kept-alive connection: 503, then the connection closes.
    kept.send(format!("Host: {addr}\r\n\r\n").as_bytes()).await;
    let refused = kept.read_response().await;
    assert_eq!(refused.status, 503, "{}", refused.body_str());
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(kept.is_closed_within(Duration::from_secs(2)).await);
    // No new connections.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after the signal"
    );
    // The event stream ends (its last chunk, then the connection closes).
    let rest = events.read_to_close().await;
    assert!(
        String::from_utf8_lossy(&rest).ends_with("0\r\n\r\n"),
        "event stream did not end cleanly: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "the event stream outlived the signal by {:?}",
        signalled.elapsed()
    );
    // The slow calls finish with their results.
    let r = busy.read_response_to("POST").await;
    assert_eq!(r.status, 200);
    let a = answer(&r.body, 8);
    assert!(succeeded(&a), "{a}");
    // Its head went out before the signal (an event stream): the connection
    // closes after it instead of announcing it.
    assert!(busy.is_closed_within(Duration::from_secs(2)).await);
    let (got, code) = ws_until_close(&mut ws, Duration::from_secs(10)).await;
    let a = got
        .iter()
        .find(|m| m["id"] == json!(7))
        .expect("the WebSocket call's answer");
    assert!(succeeded(a), "{a}");
    assert_eq!(code, Some(1001), "close code");
    // Exit 0, the pool closed.
    let (exit, _, logs) = daemon.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "{exit:?}: {logs}");
    let closed: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == json!("warehouse sessions closed"))
        .unwrap_or_else(|| panic!("no pool close in {logs}"));
    assert_eq!(closed["fields"]["open_sessions"], json!(0), "{closed}");
    assert!(logs.contains("\"stopped\""), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_deadline_calls_end_with_a_clear_error() {
    let mut daemon = Daemon::start(&["--port", "0", "--shutdown-timeout", "1s"], &[]);
    let addr = daemon.addr;
    let session = open_session(addr, "").await;
    let endless = counting(1_000_000_000_000);
    let mut busy = Client::connect(addr).await;
    busy.send(&post(addr, Some(&session), &query_call(3, &endless), ""))
        .await;
    let mut ws = ws_connect(addr).await;
    ws.send(Message::text(query_call(4, &endless).to_string()))
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.signal("TERM");
    let r = busy.read_response_to("POST").await;
    let a = answer(&r.body, 3);
    assert_eq!(
        a["error"]["code"],
        json!(snowflake_mcp::mcp::SERVER_STOPPING),
        "{a}"
    );
    let message = a["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("shutting down") && message.contains("1s shutdown deadline"),
        "{message}"
    );
    let (got, code) = ws_until_close(&mut ws, Duration::from_secs(5)).await;
    let a = got
        .iter()
        .find(|m| m["id"] == json!(4))
        .expect("the WebSocket call's answer");
    assert_eq!(
        a["error"]["code"],
        json!(snowflake_mcp::mcp::SERVER_STOPPING),
        "{a}"
    );
    assert_eq!(code, Some(1001));
    let (exit, took, logs) = daemon.wait_exit(Duration::from_secs(5));
    assert!(exit.success(), "{exit:?}: {logs}");
    assert!(took < Duration::from_secs(4), "exit took {took:?}");
    assert!(logs.contains("shutdown deadline passed"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let mut daemon = Daemon::start(&["--port", "0"], &[]);
    let addr = daemon.addr;
    let session = open_session(addr, "").await;
    let mut busy = Client::connect(addr).await;
    busy.send(&post(
        addr,
        Some(&session),
        &query_call(3, &counting(1_000_000_000_000)),
        "",
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.signal("INT");
    let (exit, took, logs) = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(exit.code(), Some(130), "{logs}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(logs.contains("second signal"), "{logs}");
}

/// A stderr nobody reads (a paused terminal, a stuck log collector) fills
/// its pipe after a few hundred log lines; the daemon logs every call, and
/// its lines must then wait or be dropped on a thread of their own, never
/// stop the workers that serve the clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_reader_that_stalls_stops_no_client() {
    let mut daemon = Daemon::start_unread(&["--port", "0"], &[]);
    let addr = daemon.addr;
    let session = open_session(addr, "").await;
    let mut c = Client::connect(addr).await;
    // About 150 bytes of log each: past the pipe's 64 KiB many times over.
    for id in 1..=2_000 {
        c.send(&post(
            addr,
            Some(&session),
            &query_call(id, "SELECT 1 AS one"),
            "",
        ))
        .await;
        // The client's own wait (5 s) fails the test if the daemon stops.
        let r = c.read_response_to("POST").await;
        let a = answer(&r.body, id);
        assert_eq!(
            a["result"]["structuredContent"]["rows"],
            json!([[1]]),
            "{a}"
        );
    }
    assert!(daemon.is_running());
    // The lines that find the queue full are dropped, not kept: a bounded
    // queue, whatever the calls.
    let peak = daemon.peak_rss_kib();
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}

/// Clients keep calling while the daemon is told to stop: every call the
/// daemon logged as run was answered to its client, and every other request
/// was refused (503) or never read (the connection closed before any byte
/// of an answer), so a client may safely retry it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_loses_no_accepted_request() {
    const CLIENTS: i64 = 16;
    let mut daemon = Daemon::start(&["--port", "0", "--log-format", "json"], &[]);
    let addr = daemon.addr;
    let session = Arc::new(open_session(addr, "").await);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (session, stop) = (Arc::clone(&session), Arc::clone(&stop));
        tasks.spawn(async move {
            // (answered ids, refused count, unread count)
            let mut answered = BTreeSet::new();
            let (mut refused, mut unread) = (0u32, 0u32);
            let mut n = 0i64;
            'outer: while !stop.load(Ordering::Relaxed) {
                let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                    break;
                };
                let mut c = Client::from_stream(stream);
                loop {
                    n += 1;
                    let id = client * 1_000_000 + n;
                    if !c
                        .try_send(&post(
                            addr,
                            Some(&session),
                            &query_call(id, "SELECT 1 AS one"),
                            "",
                        ))
                        .await
                    {
                        unread += 1;
                        continue 'outer;
                    }
                    match c.try_read_response("POST").await {
                        None => {
                            unread += 1;
                            continue 'outer;
                        }
                        Some(r) if r.status == 503 => {
                            refused += 1;
                            break 'outer;
                        }
                        Some(r) => {
                            assert_eq!(r.status, 200, "{}", r.body_str());
                            let a = answer(&r.body, id);
                            assert!(succeeded(&a), "{a}");
                            answered.insert(id);
                            if r.header("connection") == Some("close") {
                                continue 'outer;
                            }
                        }
                    }
                }
            }
            (answered, refused, unread)
        });
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    daemon.signal("TERM");
    let (exit, _, logs) = daemon.wait_exit(Duration::from_secs(15));
    stop.store(true, Ordering::Relaxed);
    assert!(exit.success(), "{exit:?}");
    let mut answered = BTreeSet::new();
    let (mut refused, mut unread) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (a, r, u) = done.expect("client task");
        answered.extend(a);
        refused += r;
        unread += u;
    }
    let ran: BTreeSet<i64> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| {
            l["fields"]["message"] == json!("call ended")
                && l["fields"]["method"] == json!("tools/call")
        })
        .filter_map(|l| {
            l["fields"]["request_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
        })
        .collect();
    let lost: Vec<_> = ran.difference(&answered).collect();
    assert!(lost.is_empty(), "calls run but never answered: {lost:?}");
    assert!(
        answered.len() > 100,
        "too little load to mean anything: {}",
        answered.len()
    );
    eprintln!(
        "shutdown under load: {} calls answered, {refused} refused with 503, {unread} never read",
        answered.len()
    );
}

/// Over stdio a signal stops the reading, with stdin still open: the call
/// in flight is answered (here past a 1 s deadline, with the reason), a
/// line sent after the signal is not read, and the daemon exits 0.
#[test]
fn stdio_stops_reading_on_a_signal_and_answers_what_it_read() {
    use std::io::{BufRead, Write};
    let mut child = std::process::Command::new(server_binary())
        .args(["--transport", "stdio", "--shutdown-timeout", "1s"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = lines_tx.send(v);
            }
        }
    });
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {},
        "clientInfo": {"name": "stdio-test", "version": "0"}}});
    for message in [
        init,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        query_call(2, "SELECT 1 AS one"),
    ] {
        writeln!(stdin, "{message}").expect("write");
    }
    stdin.flush().expect("flush");
    let wait = Duration::from_secs(10);
    let first = lines.recv_timeout(wait).expect("initialize answered");
    assert_eq!(first["id"], json!(1));
    let second = lines.recv_timeout(wait).expect("the quick call answered");
    assert_eq!(second["id"], json!(2));
    assert!(succeeded(&second), "{second}");
    // The slow call only once the quick one is answered: on a 2-core
    // machine one client runs one SQLite statement at a time, and two calls
    // read in one go may start in either order.
    writeln!(stdin, "{}", query_call(3, &counting(1_000_000_000_000))).expect("write");
    stdin.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(200));
    // Sent after the signal: not read, so never answered.
    let _ = writeln!(stdin, "{}", query_call(4, "SELECT 2"));
    let _ = stdin.flush();
    let third = lines.recv_timeout(wait).expect("the slow call answered");
    assert_eq!(third["id"], json!(3), "{third}");
    assert_eq!(
        third["error"]["code"],
        json!(snowflake_mcp::mcp::SERVER_STOPPING),
        "{third}"
    );
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(started.elapsed() < wait, "still running with stdin open");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        lines.recv_timeout(Duration::from_millis(200)).is_err(),
        "a line read after the signal"
    );
    drop(stdin);
}

/// Over stdio, with stdin open and silent, a signal ends the daemon: no
/// read of stdin holds the runtime's shutdown (stdin is read on a detached
/// thread, not on the runtime's blocking pool), and `main` returns.
#[test]
fn stdio_ends_on_a_signal_while_stdin_stays_open_and_silent() {
    use std::io::{BufRead, Write};
    let mut child = std::process::Command::new(server_binary())
        .args(["--transport", "stdio"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let mut stdin = child.stdin.take().expect("stdin");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {},
        "clientInfo": {"name": "stdio-test", "version": "0"}}});
    writeln!(stdin, "{init}").expect("write");
    stdin.flush().expect("flush");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("initialize answered");
    assert!(line.contains("\"id\":1"), "{line}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "{status:?}");
            break;
        }
        if started.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("still running 5 s after the signal, stdin open");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(stdin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_snowflake_result_costs_only_the_rows_returned() {
    use snowflake_mcp::warehouse::snowflake::SnowflakeWarehouse;
    use snowflake_mcp::warehouse::{QueryOptions, Warehouse};
    // 1,000 rows inline, then chunks of 20,000 (about 100 of them).
    let fakesnow = support::warehouse::FakeSnow::start_with(
        0,
        &["--inline-rows", "1000", "--chunk-rows", "20000"],
    );
    let setup = SnowflakeWarehouse::open(fakesnow.config(1))
        .await
        .expect("login");
    setup
        .query(
            "CREATE OR REPLACE TABLE big AS SELECT SEQ4() AS id, 'row number ' || SEQ4() AS label, \
             SEQ4() * 1.5 AS amount FROM TABLE(GENERATOR(ROWCOUNT => 2000000))",
            &QueryOptions::default(),
        )
        .await
        .expect("a 2,000,000-row table");
    setup.close();
    let env = support::warehouse::FakeSnow::daemon_env(&fakesnow.url());
    let daemon = Daemon::start(
        &["--port", "0"],
        &env.iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    );
    let addr = daemon.addr;
    let session = open_session(addr, "").await;
    let mut c = Client::connect(addr).await;
    // Warm up (the pool's session, the code paths), then measure.
    c.send(&post(addr, Some(&session), &query_call(1, "SELECT 1"), ""))
        .await;
    assert!(succeeded(&answer(
        &c.read_response_to("POST").await.body,
        1
    )));
    let before = daemon.rss_kib();
    let chunks = fakesnow.count("chunk");
    let started = Instant::now();
    c.send(&post(
        addr,
        Some(&session),
        &query_call(2, "SELECT * FROM big"),
        "",
    ))
    .await;
    let r = c.read_response_to("POST").await;
    let took = started.elapsed();
    let a = answer(&r.body, 2);
    assert!(succeeded(&a), "{a}");
    let result = &a["result"]["structuredContent"];
    assert_eq!(
        result["rows"].as_array().map(Vec::len),
        Some(100),
        "{result}"
    );
    assert_eq!(result["truncated"], json!(true));
    assert_eq!(fakesnow.count("chunk"), chunks, "no chunk was downloaded");
    let grown = daemon.peak_rss_kib().saturating_sub(before);
    assert!(grown < 32 * 1024, "RSS grew by {grown} KiB");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    eprintln!("2,000,000-row table, default limit: {took:?}, peak RSS +{grown} KiB");

    // 10,000 rows in order: the inline part and one chunk, no more.
    let chunks = fakesnow.count("chunk");
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "execute_query",
        "arguments": {"query": "SELECT id FROM big ORDER BY id", "limit": 10000}}});
    c.send(&post(addr, Some(&session), &call, "")).await;
    let a = answer(&c.read_response_to("POST").await.body, 3);
    assert!(succeeded(&a), "{a}");
    let rows = a["result"]["structuredContent"]["rows"]
        .as_array()
        .expect("rows")
        .clone();
    assert_eq!(rows.len(), 10_000);
    assert!(
        rows.iter().enumerate().all(|(i, r)| r[0] == json!(i)),
        "rows out of order"
    );
    assert_eq!(
        fakesnow.count("chunk") - chunks,
        1,
        "one chunk after the inline part"
    );
}
