//! Load and soak against the example daemon on its SQLite demo warehouse:
//! WebSocket clients and HTTP keep-alive clients (half stateless 2026-07-28,
//! half on 2025-06-18 sessions) call `execute_query` without pause for a
//! while. Every answer must carry its own request's id and value, with no
//! error; the daemon's resident memory must stay flat over the second half;
//! once the clients leave, its connections, WebSockets, sessions and
//! requests return to zero and its open file descriptors to where they were.
//!
//! CI runs it small (`SOAK_WS_CLIENTS`, `SOAK_HTTP_CLIENTS`, `SOAK_SECONDS`
//! default to 200, 40 and 8); `scripts/soak.sh` runs it whole (2,000 and
//! 200 clients for 60 s, release build).

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::daemon::Daemon;
use support::victim::{answer, post};
use support::{Client, metric, ws_request};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `i`th client's own loopback address: each client is a principal of
/// its own (no keys: the address is the principal), as on a real network.
fn source(i: u64) -> SocketAddr {
    let (hi, lo) = (i / 250, i % 250 + 2);
    SocketAddr::from((Ipv4Addr::new(127, 1, hi as u8, lo as u8), 0))
}

async fn connect_from(i: u64, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(source(i)).expect("bind a loopback address");
    socket.connect(addr).await.expect("connect")
}

/// What the clients did: calls answered right, and anything else.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    /// Counts one answer: right when its rows hold `n`, else an error.
    fn count(&self, n: u64, answer: &Value) {
        if answer["result"]["structuredContent"]["rows"] == json!([[n]]) {
            self.calls.fetch_add(1, Ordering::Relaxed);
        } else {
            if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("wrong answer to {n}: {answer}");
            }
        }
    }
}

fn select(id: u64, n: u64, meta: bool) -> String {
    let mut params =
        json!({"name": "execute_query", "arguments": {"query": format!("SELECT {n} AS v")}});
    if meta {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "soak", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}
        });
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string()
}

async fn websocket_client(i: u64, addr: SocketAddr, until: Instant, tally: Arc<Tally>) {
    let stream = connect_from(i, addr).await;
    let (mut ws, _) = tokio_tungstenite::client_async(ws_request(&addr.to_string()), stream)
        .await
        .expect("handshake");
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "soak", "version": "0"}}});
    ws.send(Message::text(init.to_string()))
        .await
        .expect("send");
    ws.next().await.expect("open").expect("frame");
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    ws.send(Message::text(done.to_string()))
        .await
        .expect("send");
    let mut id = 0;
    while Instant::now() < until {
        id += 1;
        let n = i * 1_000_000 + id;
        ws.send(Message::text(select(id, n, false)))
            .await
            .expect("send");
        let text = loop {
            match ws.next().await.expect("open").expect("frame") {
                Message::Text(text) => break text,
                _ => continue,
            }
        };
        let answer: Value = serde_json::from_str(&text).expect("JSON");
        if answer["id"] != json!(id) {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        tally.count(n, &answer);
    }
    ws.close(None).await.expect("close");
    while let Some(Ok(_)) = ws.next().await {}
}

async fn http_client(i: u64, addr: SocketAddr, until: Instant, tally: Arc<Tally>, stateless: bool) {
    let mut c = Client::from_stream(connect_from(i, addr).await);
    let (version, session, extra) = if stateless {
        (
            "2026-07-28",
            None,
            "Mcp-Method: tools/call\r\nMcp-Name: execute_query\r\n",
        )
    } else {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "soak", "version": "0"}}})
        .to_string();
        c.send(&post(addr, "2025-06-18", None, &init, "")).await;
        let r = c.read_response_to("POST").await;
        let session = r.header("mcp-session-id").expect("session id").to_owned();
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
        c.send(&post(addr, "2025-06-18", Some(&session), &done, ""))
            .await;
        assert_eq!(c.read_response_to("POST").await.status, 202);
        ("2025-06-18", Some(session), "")
    };
    let mut id: u64 = 0;
    while Instant::now() < until {
        id += 1;
        let n = i * 1_000_000 + id;
        let body = select(id, n, stateless);
        c.send(&post(addr, version, session.as_deref(), &body, extra))
            .await;
        let r = c.read_response_to("POST").await;
        if r.status != 200 {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("status {}: {}", r.status, r.body_str());
            continue;
        }
        tally.count(n, &answer(&r.body, id as i64));
    }
    if let Some(session) = session {
        c.send(
            format!(
                "DELETE /mcp HTTP/1.1\r\nHost: {addr}\r\nMcp-Session-Id: {session}\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert_eq!(c.read_response_to("DELETE").await.status, 204);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_for_a_while_then_nothing_left_behind() {
    let (ws_clients, http_clients, seconds) = (
        setting("SOAK_WS_CLIENTS", 200),
        setting("SOAK_HTTP_CLIENTS", 40),
        setting("SOAK_SECONDS", 8),
    );
    let room = (ws_clients + http_clients) * 2 + 64;
    let daemon = Daemon::start(
        &[
            "--port",
            "0",
            "--max-connections",
            &room.to_string(),
            "--max-connections-per-client",
            &room.to_string(),
            "--max-queued-requests",
            &room.to_string(),
        ],
        &[],
    );
    let addr = daemon.addr;
    let fds_before = daemon.open_fds();
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut clients = JoinSet::new();
    for i in 0..ws_clients {
        clients.spawn(websocket_client(i, addr, until, Arc::clone(&tally)));
    }
    for i in 0..http_clients {
        let stateless = i % 2 == 0;
        clients.spawn(http_client(
            ws_clients + i,
            addr,
            until,
            Arc::clone(&tally),
            stateless,
        ));
    }
    // RSS each half second while the load runs.
    let mut samples = Vec::new();
    while Instant::now() < until {
        samples.push((started.elapsed(), daemon.rss_kib()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    while let Some(done) = clients.join_next().await {
        done.expect("a client ran to the end");
    }
    let (calls, errors) = (
        tally.calls.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
    );
    let half = seconds as f64 / 2.0;
    let second_half: Vec<u64> = samples
        .iter()
        .filter(|(at, _)| at.as_secs_f64() >= half)
        .map(|s| s.1)
        .collect();
    let (first, last, most) = (
        second_half.first().copied().unwrap_or_default(),
        second_half.last().copied().unwrap_or_default(),
        second_half.iter().copied().max().unwrap_or_default(),
    );
    eprintln!(
        "{ws_clients} WebSocket + {http_clients} HTTP clients for {seconds} s: {calls} calls \
         ({:.0}/s), {errors} errors; RSS over the second half {} -> {} MiB (most {} MiB)",
        calls as f64 / seconds as f64,
        first / 1024,
        last / 1024,
        most / 1024
    );
    assert_eq!(errors, 0, "wrong or failed answers");
    assert!(calls >= ws_clients + http_clients, "{calls} calls");
    // Flat: the second half ends within 10% (and 8 MiB of noise) of where it began.
    assert!(
        last <= first + first / 10 + 8 * 1024,
        "RSS grew over the second half: {first} -> {last} KiB"
    );
    // Nothing left behind once the clients are gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = (
            metric(addr, "snowflake_mcp_connections_active").await - 1.0,
            metric(addr, "snowflake_mcp_websockets_active").await,
            metric(
                addr,
                "snowflake_mcp_sessions_active{transport=\"streamable_http\"}",
            )
            .await
                + metric(
                    addr,
                    "snowflake_mcp_sessions_active{transport=\"websocket\"}",
                )
                .await,
            metric(addr, "snowflake_mcp_requests_active").await,
            daemon.open_fds().saturating_sub(fds_before),
        );
        if left == (0.0, 0.0, 0.0, 0.0, 0) {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
