//! Slow and broken clients against the example daemon: 500 connections
//! sending their heads a byte a second, clients that vanish mid-head and
//! mid-body, clients that never read the answer streamed to them. Each is
//! closed at its deadline (not before, not much after), the daemon's active
//! counts return to where they were, its memory stays under the budget, and
//! another client's calls go on beside them (their p99 is printed).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::victim::{Victim, post, query, report};
use support::{Client, metric};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// The deadlines the daemon runs with here (shorter than its defaults, so
/// the test waits seconds, not minutes).
const HEAD_TIMEOUT: Duration = Duration::from_secs(3);
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// One test at a time: the victim's p99 means something only when its
/// neighbour is the only load.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn daemon() -> Daemon {
    Daemon::start(
        &[
            "--port",
            "0",
            "--head-timeout",
            "3s",
            "--write-timeout",
            "3s",
        ],
        &[],
    )
}

/// The daemon's active connections (besides the victim's and the one
/// asking) and its requests running or queued.
async fn counts(addr: SocketAddr) -> (f64, f64) {
    let connections = metric(addr, "snowflake_mcp_connections_active").await - 2.0;
    let requests = metric(addr, "snowflake_mcp_requests_active").await
        + metric(addr, "snowflake_mcp_requests_queued").await;
    (connections, requests)
}

/// Waits (at most `within`) until `done` holds for the daemon's counts;
/// the counts seen last.
async fn settle(addr: SocketAddr, within: Duration, done: fn((f64, f64)) -> bool) -> (f64, f64) {
    let deadline = Instant::now() + within;
    loop {
        let now = counts(addr).await;
        if done(now) || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads until the server closes (true), or gives up after `within`.
async fn reads_to_the_end(mut s: TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_sent_a_byte_a_second_are_closed_at_their_deadline() {
    let _turn = TURN.lock().await;
    let daemon = daemon();
    let addr = daemon.addr;
    let victim = Victim::start(addr, "").await;
    let attack = Instant::now();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let mut slow = JoinSet::new();
    for n in 0..500 {
        let head = head.clone().into_bytes();
        // Each from an address of its own, as a slowloris spread over many
        // hosts (one address holds at most a quarter of the connections).
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        let from = std::net::Ipv4Addr::new(127, 3, 1 + (n / 250) as u8, 1 + (n % 250) as u8);
        socket
            .bind(SocketAddr::from((from, 0)))
            .expect("bind a loopback address");
        let s = socket.connect(addr).await.expect("connect");
        slow.spawn(async move {
            let opened = Instant::now();
            let (mut read, mut write) = s.into_split();
            let dripping = async move {
                for b in head {
                    if write.write_all(&[b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            };
            let mut buf = [0u8; 1024];
            let closed = async move {
                loop {
                    match read.read(&mut buf).await {
                        Ok(0) | Err(_) => return Instant::now(),
                        Ok(_) => {}
                    }
                }
            };
            tokio::select! {
                () = dripping => panic!("the whole head was taken a byte a second"),
                at = closed => at - opened,
            }
        });
    }
    let mut lifetimes = Vec::new();
    while let Some(life) = tokio::time::timeout(HEAD_TIMEOUT * 3, slow.join_next())
        .await
        .expect("every slow client closed in time")
    {
        lifetimes.push(life.expect("a slow client"));
    }
    lifetimes.sort();
    let (first, last) = (lifetimes[0], lifetimes[lifetimes.len() - 1]);
    eprintln!("500 slow heads closed after {first:?} to {last:?}");
    assert_eq!(lifetimes.len(), 500);
    assert!(
        first >= HEAD_TIMEOUT - Duration::from_millis(100),
        "closed early: {first:?}"
    );
    assert!(
        last <= HEAD_TIMEOUT + Duration::from_secs(2),
        "closed late: {last:?}"
    );
    let settled = settle(addr, Duration::from_secs(5), |c| c == (0.0, 0.0)).await;
    assert_eq!(settled, (0.0, 0.0));
    report("500 slow heads", &daemon, victim, attack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_vanish_or_stop_reading_are_let_go() {
    let _turn = TURN.lock().await;
    let daemon = daemon();
    let addr = daemon.addr;
    let victim = Victim::start(addr, "").await;
    let attack = Instant::now();
    // A hundred vanish halfway through a head, a hundred halfway through a
    // body they announced.
    for i in 0..200 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let bytes = if i % 2 == 0 {
            format!("POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Ty")
        } else {
            format!(
                "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Accept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n{}",
                "x".repeat(1000)
            )
        };
        s.write_all(bytes.as_bytes()).await.expect("write");
        drop(s);
    }
    // Twenty sessions each ask for eight answers of about 2.8 MB on SSE
    // (far more than the sockets' buffers hold) and never read them: the
    // daemon lets each go once its writes make no progress for the write
    // timeout, while the test still holds the socket open.
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "non-reader", "version": "0"}}})
    .to_string();
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut c = Client::connect(addr).await;
        c.send(&post(addr, "2025-06-18", None, &init, "")).await;
        let r = c.read_response_to("POST").await;
        let session = r.header("mcp-session-id").expect("session id").to_owned();
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut asks = Vec::new();
        for id in 1..=8 {
            asks.extend(post(
                addr,
                "2025-06-18",
                Some(&session),
                &query(id, "SELECT zeroblob(700000) AS b"),
                "",
            ));
        }
        s.write_all(&asks).await.expect("write");
        stalled.push(s);
    }
    // Their statements run (one principal, so a few at a time), then their
    // answers stall in the sockets; from the last, each connection is let
    // go within the write timeout.
    let ran = settle(addr, Duration::from_secs(120), |(_, r)| r == 0.0).await;
    assert_eq!(ran.1, 0.0, "statements still running: {ran:?}");
    let stalled_at = Instant::now();
    let settled = settle(addr, WRITE_TIMEOUT + Duration::from_secs(5), |c| {
        c == (0.0, 0.0)
    })
    .await;
    eprintln!(
        "20 non-readers let go {:?} after their last statement",
        stalled_at.elapsed()
    );
    assert_eq!(
        settled,
        (0.0, 0.0),
        "the non-readers still hold connections"
    );
    // What the daemon sent before it gave up is there to read, then the end.
    for s in stalled {
        assert!(
            reads_to_the_end(s, Duration::from_secs(10)).await,
            "a non-reader's socket was not closed"
        );
    }
    report("vanishing and non-reading clients", &daemon, victim, attack).await;
}
