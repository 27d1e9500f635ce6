//! The HTTP engine over real sockets: exact bytes, split writes, pipelining,
//! keep-alive, limits, timeouts, streams, upgrades and shutdown.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use snowflake_mcp::Config;
use support::{TestServer, normalize_date};

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
const HEALTH_REPLY: &str = "HTTP/1.1 200 OK\r\nDate: <date>\r\ncontent-type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}";

#[tokio::test]
async fn exact_bytes_for_a_simple_get() {
    let server = TestServer::start(Config::default()).await;
    let mut c = server.connect().await;
    c.send(HEALTH).await;
    let r = c.read_response().await;
    assert_eq!(r.raw_without_date(), HEALTH_REPLY);
    let date = r.header("date").unwrap();
    assert_eq!(date.len(), 29);
    assert!(date.ends_with(" GMT"));
    server.shutdown().await;
}

/// Chunk extensions are held to RFC 9112 7.1.1 over a real socket: the
/// malformed ones (no name, no value after `=`, an open quoted string) get
/// 400 and a closed connection; well-formed ones are skipped.
#[tokio::test]
async fn malformed_chunk_extensions_are_refused() {
    let server = TestServer::start(Config::default()).await;
    let post = |ext: &str| {
        format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2{ext}\r\nhi\r\n0\r\n\r\n"
        )
    };
    for ext in [";", ";=x", ";a=", ";a=\"unterminated", ";a b"] {
        let mut c = server.connect().await;
        c.send(post(ext).as_bytes()).await;
        let r = c.read_response().await;
        assert_eq!(r.status, 400, "{ext:?}: {}", r.body_str());
        assert!(c.is_closed_within(Duration::from_secs(2)).await, "{ext:?}");
    }
    for ext in [";a", "; a = b ; c", ";a=\"x \\\" y\""] {
        let mut c = server.connect().await;
        c.send(post(ext).as_bytes()).await;
        let r = c.read_response().await;
        assert_eq!((r.status, r.body_str()), (200, "hi".to_owned()), "{ext:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn requests_split_at_every_byte_boundary() {
    let server = TestServer::start(Config::default()).await;
    let cases: [(&[u8], &str); 2] = [
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
            "hello",
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nT: 1\r\n\r\n",
            "hello",
        ),
    ];
    for (req, body) in cases {
        let want = format!(
            "HTTP/1.1 200 OK\r\nDate: <date>\r\ncontent-type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        for cut in 1..req.len() {
            let mut c = server.connect().await;
            c.send(&req[..cut]).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
            c.send(&req[cut..]).await;
            let r = c.read_response().await;
            assert_eq!(r.raw_without_date(), want, "split at {cut}");
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(Config::default()).await;
    let mut c = server.connect().await;
    let mut batch = Vec::new();
    batch.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirst");
    batch.extend_from_slice(HEALTH);
    batch.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthird\r\n0\r\n\r\n");
    batch.extend_from_slice(b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n");
    batch.extend_from_slice(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfifth",
    );
    c.send(&batch).await;
    let bodies: Vec<(u16, String)> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            let r = c.read_response().await;
            v.push((r.status, r.body_str()));
        }
        v
    };
    assert_eq!(
        bodies,
        vec![
            (200, "first".to_string()),
            (200, "{\"status\":\"ok\"}".to_string()),
            (200, "third".to_string()),
            (404, "no route for this path".to_string()),
            (200, "fifth".to_string()),
        ]
    );
    assert!(c.is_closed_within(Duration::from_secs(2)).await);
    assert_eq!(server.stats.snapshot().accepted, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let server = TestServer::start(Config::default()).await;
    let mut c = server.connect().await;
    for _ in 0..20 {
        c.send(HEALTH).await;
        let r = c.read_response().await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), None);
    }
    assert_eq!(server.stats.snapshot().accepted, 1);
    assert_eq!(server.stats.snapshot().active, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn http10_closes_unless_keep_alive_is_asked() {
    let server = TestServer::start(Config::default()).await;
    let mut c = server.connect().await;
    c.send(b"GET /health HTTP/1.0\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed_within(Duration::from_secs(2)).await);

    let mut c = server.connect().await;
    for _ in 0..2 {
        c.send(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await;
        let r = c.read_response().await;
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    // A streamed body on HTTP/1.0 has no chunked coding: it ends at close.
    c.send(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let raw = c.read_to_close().await;
    let text = normalize_date(&String::from_utf8_lossy(&raw));
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nDate: <date>\r\ncontent-type: text/plain\r\nConnection: close\r\n\r\nonetwothree"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_connection_close_is_honoured() {
    let server = TestServer::start(Config::default()).await;
    let mut c = server.connect().await;
    c.send(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed_within(Duration::from_secs(2)).await);
    // A handler can ask for the close too.
    let mut c = server.connect().await;
    c.send(b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed_within(Duration::from_secs(2)).await);
    server.shutdown().await;
}

#[tokio::test]
async fn head_404_405_options_and_204() {
    let server = TestServer::start(Config::default()).await;
    let mut c = server.connect().await;
    c.send(b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.read_response_to("HEAD").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("15"));
    assert!(r.body.is_empty());
    // The same connection goes on: no body bytes were sent after the HEAD answer.
    c.send(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (404, "no route for this path")
    );
    c.send(b"DELETE /health HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    c.send(b"OPTIONS /echo HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
    assert_eq!(r.header("content-length"), None);
    c.send(b"GET /nocontent HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.status, 204);
    c.send(HEALTH).await;
    assert_eq!(c.read_response().await.status, 200);
    // A refused request with an unread body closes the connection.
    c.send(b"POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        .await;
    let r = c.read_response().await;
    assert_eq!((r.status, r.header("connection")), (405, Some("close")));
    assert!(c.is_closed_within(Duration::from_secs(2)).await);
    server.shutdown().await;
}

#[tokio::test]
async fn expect_100_continue() {
    let server = TestServer::start(Config::default()).await;
    let mut c = server.connect().await;
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .await;
    c.read_continue().await;
    c.send(b"ping").await;
    let r = c.read_response().await;
    assert_eq!((r.status, r.body_str().as_str()), (200, "ping"));
    // Chunked, same.
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n").await;
    c.read_continue().await;
    c.send(b"2\r\nok\r\n0\r\n\r\n").await;
    assert_eq!(c.read_response().await.body_str(), "ok");

    // No 100 when the body will not be read: the final answer comes at once.
    let mut c = server.connect().await;
    c.send(
        b"POST /missing HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    )
    .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 404);
    assert!(c.is_closed_within(Duration::from_secs(2)).await);

    let mut c = server.connect().await;
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n").await;
    assert_eq!(c.read_response().await.status, 413);

    let mut c = server.connect().await;
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\nContent-Length: 4\r\n\r\n")
        .await;
    assert_eq!(c.read_response().await.status, 417);
    assert!(c.is_closed_within(Duration::from_secs(2)).await);
    server.shutdown().await;
}

#[tokio::test]
async fn size_limits() {
    let server = TestServer::start(Config {
        max_body_bytes: 1024,
        ..Config::default()
    })
    .await;
    // Head over 16 KiB.
    let mut c = server.connect().await;
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    c.try_send(big.as_bytes()).await;
    let r = c.read_response().await;
    assert_eq!((r.status, r.header("connection")), (431, Some("close")));
    // 101 header fields.
    let mut c = server.connect().await;
    let mut many = String::from("GET /health HTTP/1.1\r\nHost: t\r\n");
    for i in 0..100 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    c.send(many.as_bytes()).await;
    assert_eq!(c.read_response().await.status, 431);
    // Exactly 100 is fine.
    let mut c = server.connect().await;
    let mut hundred = String::from("GET /health HTTP/1.1\r\nHost: t\r\n");
    for i in 0..99 {
        hundred.push_str(&format!("X-{i}: v\r\n"));
    }
    hundred.push_str("\r\n");
    c.send(hundred.as_bytes()).await;
    assert_eq!(c.read_response().await.status, 200);
    // Target over 8 KiB, complete and still arriving.
    let mut c = server.connect().await;
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(8 * 1024));
    c.send(long.as_bytes()).await;
    assert_eq!(c.read_response().await.status, 414);
    let mut c = server.connect().await;
    c.try_send(format!("GET /{}", "a".repeat(12 * 1024)).as_bytes())
        .await;
    assert_eq!(c.read_response().await.status, 414);
    // Body over the limit: by Content-Length, and by chunked size.
    let mut c = server.connect().await;
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n")
        .await;
    c.try_send(&[b'x'; 1025]).await;
    let r = c.read_response().await;
    assert_eq!((r.status, r.header("connection")), (413, Some("close")));
    let mut c = server.connect().await;
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n200\r\n")
        .await;
    c.try_send(&[b'x'; 512]).await;
    c.try_send(b"\r\n201\r\n").await;
    assert_eq!(c.read_response().await.status, 413);
    // At the limit is fine.
    let mut c = server.connect().await;
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n")
        .await;
    c.send(&[b'y'; 1024]).await;
    let r = c.read_response().await;
    assert_eq!((r.status, r.body.len()), (200, 1024));
    server.shutdown().await;
}

#[tokio::test]
async fn connection_limit_answers_503() {
    let server = TestServer::start(Config {
        max_connections: 2,
        max_connections_per_client: Some(2),
        ..Config::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = server.connect().await;
        c.send(HEALTH).await;
        assert_eq!(c.read_response().await.status, 200);
        held.push(c);
    }
    let mut c = server.connect().await;
    let r = c.read_response().await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.body_str(), "too many open connections");
    assert!(c.is_closed_within(Duration::from_secs(2)).await);
    assert_eq!(server.stats.snapshot().rejected, 1);
    // Once one closes, a new connection is served again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.stats.snapshot().active > 1 {
        assert!(Instant::now() < deadline, "closed connection still counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut c = server.connect().await;
    c.send(HEALTH).await;
    assert_eq!(c.read_response().await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn head_deadline_is_not_reset_by_each_byte() {
    let timeout = Duration::from_millis(400);
    let server = TestServer::start(Config {
        head_timeout: timeout,
        ..Config::default()
    })
    .await;
    let mut c = server.connect().await;
    let start = Instant::now();
    // Slowloris: one byte every 50 ms, forever.
    let trickle = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut i = 0;
    let r = loop {
        if i < trickle.len() && c.try_send(&trickle[i..i + 1]).await {
            i += 1;
        }
        if c.is_closed_within(Duration::from_millis(50)).await {
            panic!("closed without a 408");
        }
        if start.elapsed() > Duration::from_secs(3) {
            panic!("no 408 after 3 s");
        }
        if c.has_buffered() {
            break c.read_response().await;
        }
    };
    let elapsed = start.elapsed();
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(elapsed >= timeout, "408 after {elapsed:?}");
    assert!(
        elapsed < timeout * 3,
        "408 only after {elapsed:?}: deadline reset per read?"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn idle_connections_close_quietly() {
    let server = TestServer::start(Config {
        head_timeout: Duration::from_millis(200),
        keep_alive_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    // A connection that never sends anything is closed without a response.
    let mut c = server.connect().await;
    assert!(c.is_closed_within(Duration::from_secs(2)).await);
    // A kept-alive connection is closed after the idle timeout.
    let mut c = server.connect().await;
    c.send(HEALTH).await;
    assert_eq!(c.read_response().await.status, 200);
    let start = Instant::now();
    assert!(c.is_closed_within(Duration::from_secs(2)).await);
    assert!(start.elapsed() >= Duration::from_millis(250));
    server.shutdown().await;
}

#[tokio::test]
async fn body_idle_timeout_answers_408() {
    let server = TestServer::start(Config {
        body_idle_timeout: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let mut c = server.connect().await;
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 408);
    assert_eq!(r.body_str(), "request body not received in time");
    assert!(c.is_closed_within(Duration::from_secs(2)).await);
    server.shutdown().await;
}

#[tokio::test]
async fn streamed_bodies_use_chunked_encoding() {
    let server = TestServer::start(Config::default()).await;
    let mut c = server.connect().await;
    c.send(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.body_str(), "onetwothree");
    let raw = r.raw_without_date();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\nDate: <date>\r\ncontent-type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"), "{raw}");
    assert!(
        raw.ends_with("\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n"),
        "{raw}"
    );
    // Keep-alive survives a streamed body.
    c.send(HEALTH).await;
    assert_eq!(c.read_response().await.status, 200);

    c.send(b"GET /sse HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(
        r.body_str(),
        "id: 0\ndata: \n\nid: 1\nevent: message\ndata: {\"n\":1}\n\nid: 2\nevent: message\ndata: {\"n\":2}\n\nid: 3\nevent: message\ndata: {\"n\":3}\n\n"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn closing_a_stream_tells_the_producer() {
    let server = TestServer::start(Config::default()).await;
    let mut c = server.connect().await;
    c.send(b"GET /forever HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let first = c.read_exact_raw(20).await;
    assert!(first.starts_with(b"HTTP/1.1 200 OK"));
    assert!(!server.stream_closed.load(Ordering::SeqCst));
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.stream_closed.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "producer never saw the close");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn large_bodies_are_written_whole() {
    let server = TestServer::start(Config::default()).await;
    let mut c = server.connect().await;
    c.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.body.len(), 100 * 1024);
    assert!(r.body.iter().all(|&b| b == b'x'));
    assert_eq!(c.read_response().await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn upgrade_hands_over_socket_and_read_ahead() {
    let server = TestServer::start(Config::default()).await;
    let mut c = server.connect().await;
    c.send(b"GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nearly bytes|").await;
    let r = c.read_response().await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("connection"), Some("upgrade"));
    assert_eq!(r.header("upgrade"), Some("echo"));
    assert_eq!(c.read_exact_raw(12).await, b"early bytes|");
    c.send(b"later").await;
    assert_eq!(c.read_exact_raw(5).await, b"later");
    // The upgraded connection sees the graceful shutdown signal.
    let mut server = server;
    server.begin_shutdown();
    assert_eq!(c.read_exact_raw(3).await, b"bye");
    server.join().await;
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish() {
    let mut server = TestServer::start(Config::default()).await;
    let addr = server.addr;
    let mut busy = server.connect().await;
    let mut idle = server.connect().await;
    idle.send(HEALTH).await;
    assert_eq!(idle.read_response().await.status, 200);
    busy.send(b"GET /slow?ms=400 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.begin_shutdown();
    // The idle keep-alive connection is closed at once.
    assert!(idle.is_closed_within(Duration::from_millis(300)).await);
    // The request in flight gets its whole answer, with Connection: close.
    let r = busy.read_response().await;
    assert_eq!((r.status, r.body_str().as_str()), (200, "slow done"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(busy.is_closed_within(Duration::from_secs(2)).await);
    server.join().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test]
async fn shutdown_gives_up_after_its_timeout() {
    let mut server = TestServer::start(Config {
        shutdown_timeout: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let mut c = server.connect().await;
    c.send(b"GET /slow?ms=30000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    server.begin_shutdown();
    server.join().await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    assert!(c.is_closed_within(Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_panicking_handler_gets_a_500_and_the_server_goes_on() {
    let server = TestServer::start(Config::default()).await;
    let mut c = server.connect().await;
    c.send(b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!((r.status, r.header("connection")), (500, Some("close")));
    assert_eq!(r.body_str(), "internal error in request handler");
    assert!(c.is_closed_within(Duration::from_secs(2)).await);
    let mut c = server.connect().await;
    c.send(HEALTH).await;
    assert_eq!(c.read_response().await.status, 200);
    server.shutdown().await;
}

/// `max_large_bodies_bytes` sets the bound on large bodies all connections
/// hold at once: with room for two 1 MiB bodies, a third is refused with
/// 503 before any of it is read (and before a `100 Continue`), and taken
/// again once a held one is answered. A bound under `max_body_bytes` is
/// refused when the server is made.
#[tokio::test]
async fn the_bound_on_large_bodies_is_a_setting() {
    const BODY: usize = 1 << 20;
    let server = TestServer::start(Config {
        max_body_bytes: BODY,
        max_large_bodies_bytes: Some(2 * BODY),
        ..Config::default()
    })
    .await;
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {BODY}\r\n\r\n"
    );
    // Two bodies under way: each took its room before its 100 Continue.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = server.connect().await;
        c.send(head.as_bytes()).await;
        c.read_continue().await;
        c.send(&vec![b'a'; BODY / 2]).await;
        held.push(c);
    }
    let mut third = server.connect().await;
    third.send(head.as_bytes()).await;
    let r = third.read_response().await;
    assert_eq!(r.status, 503, "{}", r.body_str());
    assert!(
        r.body_str().contains("too many large request bodies"),
        "{}",
        r.body_str()
    );
    assert!(third.is_closed_within(Duration::from_secs(2)).await);
    // One held body finished and answered: its room is taken again.
    let mut first = held.remove(0);
    first.send(&vec![b'a'; BODY / 2]).await;
    let r = first.read_response().await;
    assert_eq!((r.status, r.body.len()), (200, BODY));
    let mut again = server.connect().await;
    again.send(head.as_bytes()).await;
    again.read_continue().await;
    again.send(&vec![b'b'; BODY]).await;
    assert_eq!(again.read_response().await.status, 200);
    drop(held);
    server.shutdown().await;

    refused_at_bind(
        Config {
            max_body_bytes: BODY,
            max_large_bodies_bytes: Some(BODY - 1),
            ..Config::default()
        },
        "max_large_bodies_bytes",
    )
    .await;
}

/// `config` (its port replaced) is refused when the server is made, for
/// `setting`, under `max_body_bytes`.
async fn refused_at_bind(config: Config, setting: &str) {
    let config = Config { port: 0, ..config };
    match snowflake_mcp::Server::bind(config, snowflake_mcp::http::Router::new()).await {
        Err(snowflake_mcp::Error::Config {
            setting: named,
            why,
        }) => {
            assert_eq!(named, setting);
            assert!(why.contains("less than max_body_bytes"), "{why}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// `memory_budget_bytes` bounds what all the server's pools hold together,
/// large bodies among them: with room for two and a half 1 MiB bodies (and
/// the bodies' own bound at its default, sixteen), a third is refused with
/// 503 before any of it is read, and taken again once a held one is
/// answered. A budget under `max_body_bytes` is refused when the server is
/// made.
#[tokio::test]
async fn the_memory_budget_bounds_large_bodies_too() {
    const BODY: usize = 1 << 20;
    let server = TestServer::start(Config {
        max_body_bytes: BODY,
        memory_budget_bytes: 2 * BODY + BODY / 2,
        ..Config::default()
    })
    .await;
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {BODY}\r\n\r\n"
    );
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = server.connect().await;
        c.send(head.as_bytes()).await;
        c.read_continue().await;
        held.push(c);
    }
    let mut third = server.connect().await;
    third.send(head.as_bytes()).await;
    let r = third.read_response().await;
    assert_eq!(r.status, 503, "{}", r.body_str());
    let mut first = held.remove(0);
    first.send(&vec![b'a'; BODY]).await;
    assert_eq!(first.read_response().await.status, 200);
    let mut again = server.connect().await;
    again.send(head.as_bytes()).await;
    again.read_continue().await;
    again.send(&vec![b'b'; BODY]).await;
    assert_eq!(again.read_response().await.status, 200);
    drop(held);
    server.shutdown().await;
    refused_at_bind(
        Config {
            max_body_bytes: BODY,
            memory_budget_bytes: BODY - 1,
            ..Config::default()
        },
        "memory_budget_bytes",
    )
    .await;
}

/// A host that drops `serve`'s future (here, aborts its task) stops the
/// server: the accept loop, which runs on a task of its own, lets the
/// listener go, so new connections are refused, and an idle keep-alive
/// connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_serve_stops_accepting_and_closes_idle_connections() {
    use snowflake_mcp::http::{Method, Request, Response, Router};
    use tokio::io::AsyncReadExt as _;

    let router = Router::new().route(Method::Get, "/health", |_: Request<'_>| {
        Response::json(200, r#"{"status":"ok"}"#)
    });
    let config = Config {
        port: 0,
        ..Config::default()
    };
    let server = snowflake_mcp::Server::bind(config, router)
        .await
        .expect("bind");
    let addr = server.local_addr();
    let serving = tokio::spawn(server.serve(std::future::pending()));
    let mut kept = support::Client::connect(addr).await;
    kept.send(HEALTH).await;
    assert_eq!(kept.read_response().await.status, 200);

    serving.abort();
    assert!(serving.await.is_err_and(|e| e.is_cancelled()));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            other => {
                assert!(Instant::now() < deadline, "still accepting: {other:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let mut rest = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), kept.stream.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))), "{read:?} {rest:?}");
}
