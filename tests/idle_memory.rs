//! Idle keep-alive connections cost little: 1,000 connections to the daemon
//! each make one request and then wait; the daemon's RSS grows by under
//! 4 KiB for each (about 2.3 KiB: an idle connection keeps no buffer and a
//! small task state; 5.5 KiB when it kept its 1 KiB read and write buffers
//! and a state sized for streamed answers, 11.5 KiB with 4 KiB buffers).
//! And buffers taken back on demand serve a request sent in pieces and
//! larger ones.

mod support;

use std::future::Future;
use std::time::Duration;

use support::daemon::Daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const CONNECTIONS: usize = 1_000;
const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// Raises this process's open-file limit (the daemon inherits it).
fn raise_fd_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_cur.max(want.min(limit.rlim_max));
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// A connection from loopback address 127.0.1.`n` (+ a third octet), so
/// no per-address limit sees one client.
async fn connect(addr: std::net::SocketAddr, n: usize) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    let from = std::net::Ipv4Addr::new(127, 1 + (n / 250) as u8, 1, 1 + (n % 250) as u8);
    socket
        .bind(std::net::SocketAddr::from((from, 0)))
        .expect("bind a loopback address");
    socket.connect(addr).await.expect("connect")
}

/// Sends `/health` and reads its whole answer (a small JSON body).
async fn health(s: &mut TcpStream) {
    s.write_all(HEALTH).await.expect("write");
    read_answer(s).await;
}

async fn read_answer(s: &mut TcpStream) {
    let text = read_response(s).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

/// One whole response (by its `Content-Length`), as text.
async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse().ok())
                .expect("a Content-Length");
            if got.len() >= end + 4 + length {
                return text.into_owned();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_hold_small_buffers() {
    raise_fd_limit(4 * CONNECTIONS as u64);
    let daemon = Daemon::start(
        &["--port", "0", "--max-connections", "5000"],
        &[("HOME", "/nonexistent")],
    );
    let addr = daemon.addr;
    // What the first requests build once belongs to the baseline.
    for n in 0..20 {
        let mut s = connect(addr, CONNECTIONS + n).await;
        health(&mut s).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = daemon.rss_kib();
    let mut held = Vec::with_capacity(CONNECTIONS);
    for n in 0..CONNECTIONS {
        let mut s = connect(addr, n).await;
        health(&mut s).await;
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = daemon.rss_kib();
    let per_connection = (during.saturating_sub(before) * 1024) as f64 / CONNECTIONS as f64;
    println!(
        "idle keep-alive connection: {per_connection:.0} bytes of RSS each ({CONNECTIONS} held)"
    );
    assert!(
        per_connection < 4_096.0,
        "{per_connection:.0} bytes per idle connection"
    );

    // Their next request, sent in pieces.
    for s in held.iter_mut().take(20) {
        s.write_all(&HEALTH[..7]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(&HEALTH[7..]).await.expect("write");
        read_answer(s).await;
    }
    // Back to back, and a head larger than the buffers were.
    for _ in 0..50 {
        health(&mut held[0]).await;
    }
    let long = format!(
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(6_000)
    );
    held[1].write_all(long.as_bytes()).await.expect("write");
    read_answer(&mut held[1]).await;
    health(&mut held[1]).await;
}

/// Sockets held by the WebSocket test.
const SOCKETS: usize = 500;

/// Idle WebSockets cost little too: 500 sockets, each from its own
/// address, open their MCP session and then wait; the daemon's RSS grows
/// by under 4 KiB for each (about 2,800-3,000 bytes since a silent
/// client's socket dozes, dropping its frame reader; about 3,270 before;
/// 3,690-3,930 while each
/// socket kept a future for each of its waits, two shutdown channels' wait
/// futures among them, and its session a table for its calls; 4,350-4,750 while answers
/// went through tungstenite's write buffer, which kept the largest one's
/// size, the read buffer was 1 KiB and every socket kept a set for its
/// calls' tasks; 15.1 KiB when each socket kept the HTTP connection's task
/// state, a forwarding task and a 4 KiB read buffer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_websockets_hold_little() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    raise_fd_limit(4 * SOCKETS as u64);
    let daemon = Daemon::start(
        &["--port", "0", "--max-connections", "5000"],
        &[("HOME", "/nonexistent")],
    );
    let addr = daemon.addr;
    let open = |n: usize| open_ws(addr, n);
    // What the first sockets build once belongs to the baseline.
    let (per_socket, mut held) = rss_per_held(&daemon, SOCKETS, 20, open).await;
    println!("idle WebSocket: {per_socket:.0} bytes of RSS each ({SOCKETS} held)");
    assert!(
        per_socket < 4_096.0,
        "{per_socket:.0} bytes per idle WebSocket"
    );
    // Each still answers.
    for ws in held.iter_mut().take(5) {
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        ws.send(Message::text(list)).await.expect("send");
        let answer = ws.next().await.expect("open").expect("frame");
        assert!(answer.to_text().expect("text").contains("execute_query"));
    }
}

/// A WebSocket that once sent a large message keeps little of it once idle:
/// 100 sockets each send one 1 MiB message (a `tools/call` whose argument
/// is a long string), get its answer, then wait. The daemon's RSS grows by
/// under 64 KiB for each, not by the message's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_sent_a_large_message_holds_little_once_idle() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    const LARGE: usize = 100;
    raise_fd_limit(4 * LARGE as u64);
    let daemon = Daemon::start(&["--port", "0"], &[("HOME", "/nonexistent")]);
    let addr = daemon.addr;
    let filler = "x".repeat(1 << 20);
    let open = |n: usize| {
        let filler = filler.clone();
        async move {
            let mut ws = open_ws(addr, n).await;
            let big = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "no_such_tool", "arguments": {"filler": filler}}});
            ws.send(Message::text(big.to_string())).await.expect("send");
            let answer = ws.next().await.expect("open").expect("frame");
            assert!(answer.to_text().expect("text").contains("\"id\":1"));
            ws
        }
    };
    let (per_socket, _held) = rss_per_held(&daemon, LARGE, 5, open).await;
    println!(
        "idle WebSocket after a 1 MiB message: {per_socket:.0} bytes of RSS each ({LARGE} held)"
    );
    assert!(
        per_socket < 65_536.0,
        "{per_socket:.0} bytes per idle WebSocket after a large message"
    );
}

/// The daemon's RSS per connection that `open` makes and leaves open,
/// `count` of them held at once, and the connections (`warm` more, opened
/// and dropped first, go to the baseline: what they build once is not per
/// connection).
async fn rss_per_held<T, F: Future<Output = T>>(
    daemon: &Daemon,
    count: usize,
    warm: usize,
    open: impl Fn(usize) -> F,
) -> (f64, Vec<T>) {
    for n in 0..warm {
        drop(open(count + n).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = daemon.rss_kib();
    let mut held = Vec::with_capacity(count);
    for n in 0..count {
        held.push(open(n).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = daemon.rss_kib();
    let per_one = (during.saturating_sub(before) * 1024) as f64 / count as f64;
    (per_one, held)
}

/// The same for HTTP: a keep-alive connection whose last request carried a
/// 1 MiB body keeps little of it once idle (100 connections, each one such
/// `tools/call`, then waiting).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sent_a_large_body_holds_little_once_idle() {
    const LARGE: usize = 100;
    raise_fd_limit(4 * LARGE as u64);
    let daemon = Daemon::start(&["--port", "0"], &[("HOME", "/nonexistent")]);
    let addr = daemon.addr;
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "no_such_tool", "arguments": {"filler": "x".repeat(1 << 20)},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "large", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
         Mcp-Method: tools/call\r\nMcp-Name: no_such_tool\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let open = |n: usize| {
        let request = request.clone();
        async move {
            let mut s = connect(addr, n).await;
            s.write_all(request.as_bytes()).await.expect("write");
            let answer = read_response(&mut s).await;
            assert!(answer.contains("unknown tool"), "{answer}");
            s
        }
    };
    let (per_connection, _held) = rss_per_held(&daemon, LARGE, 5, open).await;
    println!(
        "idle connection after a 1 MiB body: {per_connection:.0} bytes of RSS each ({LARGE} held)"
    );
    assert!(
        per_connection < 65_536.0,
        "{per_connection:.0} bytes per idle connection after a large body"
    );
}

/// A WebSocket from its own address, its MCP session opened.
async fn open_ws(
    addr: std::net::SocketAddr,
    n: usize,
) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let mut request = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::client_async(request, connect(addr, n).await)
        .await
        .expect("handshake");
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {"roots": {}},
        "clientInfo": {"name": "idle", "version": "0"}}});
    ws.send(Message::text(init.to_string()))
        .await
        .expect("send");
    let answer = ws.next().await.expect("open").expect("frame");
    assert!(answer.to_text().expect("text").contains("protocolVersion"));
    ws
}

/// WebSockets opened all at once (1,000 handshakes and sessions in flight
/// together, as the 5,000 of `scripts/idle_rss.sh`) then idle: under 4 KiB
/// of RSS each, the burst's high-water mark included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_opened_at_once_hold_little_once_idle() {
    const AT_ONCE: usize = 1_000;
    raise_fd_limit(4 * AT_ONCE as u64);
    let daemon = Daemon::start(
        &["--port", "0", "--max-connections", "5000"],
        &[("HOME", "/nonexistent")],
    );
    let addr = daemon.addr;
    // What the first sockets build once belongs to the baseline.
    for n in 0..20 {
        drop(open_ws(addr, AT_ONCE + n).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = daemon.rss_kib();
    let opening: Vec<_> = (0..AT_ONCE)
        .map(|n| tokio::spawn(open_ws(addr, n)))
        .collect();
    let mut held = Vec::with_capacity(AT_ONCE);
    for socket in opening {
        held.push(socket.await.expect("opened"));
    }
    // Past the doze time: each socket has dropped its frame reader.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let during = daemon.rss_kib();
    let per_socket = (during.saturating_sub(before) * 1024) as f64 / AT_ONCE as f64;
    println!("idle WebSocket opened at once: {per_socket:.0} bytes of RSS each ({AT_ONCE} held)");
    assert!(
        per_socket < 4_096.0,
        "{per_socket:.0} bytes per idle WebSocket opened at once"
    );
    drop(held);
}
