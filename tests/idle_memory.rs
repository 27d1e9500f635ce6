//! Idle keep-alive connections cost little: 1,000 connections to the daemon
//! each make one request and then wait; the daemon's RSS grows by under
//! 8,000 bytes for each (11.5 KiB with the 4 KiB read and write buffers it
//! started connections with before; about 5.4 KiB with 1 KiB ones). And
//! the small buffers serve a request sent in pieces and larger ones.

mod support;

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
                assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                return;
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
        per_connection < 8_000.0,
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
