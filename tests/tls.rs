#![cfg(feature = "tls")]
//! Native TLS over real sockets, with a CA and certificates made at test
//! time (rcgen): https and wss with ALPN http/1.1, HSTS; clients refuse an
//! expired or wrong-host certificate; a renewed certificate is served
//! without a restart (file watch and explicit reload), a broken one is not
//! taken; a client that never finishes its handshake is closed at the
//! first-byte deadline. The Python SDK and curl over https are in
//! `tests/python/test_tls.py`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, date_time_ymd};
use rustls::pki_types::{CertificateDer, ServerName};
use snowflake_mcp::mcp::McpServer;
use snowflake_mcp::tls::Tls;
use snowflake_mcp::{Config, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// A test CA.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        Ca { issuer }
    }

    /// A leaf for `names`, valid in `years` (from, to), with `serial`:
    /// (certificate PEM, key PEM, certificate DER).
    fn leaf(&self, names: &[&str], years: (i32, i32), serial: u64) -> (String, String, Vec<u8>) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.not_before = date_time_ymd(years.0, 1, 1);
        params.not_after = date_time_ymd(years.1, 1, 1);
        params.serial_number = Some(serial.into());
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.issuer.der().to_vec()))
            .expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsConnector::from(Arc::new(config))
    }
}

fn write(dir: &Path, cert: &str, key: &str) {
    std::fs::write(dir.join("cert.pem"), cert).expect("write");
    std::fs::write(dir.join("key.pem"), key).expect("write");
}

/// Serves the ops and MCP routes over TLS on a free port.
async fn serve(tls: &Tls, config: Config) -> std::net::SocketAddr {
    let server = Service::new(McpServer::builder("t", "0"))
        .streamable_http("/mcp")
        .websocket("/ws")
        .ops()
        .config(Config { port: 0, ..config })
        .build()
        .bind_tls(tls)
        .await
        .expect("bind");
    let addr = server.local_addr();
    tokio::spawn(server.serve(std::future::pending()));
    addr
}

/// Connects as `name` and GETs `/health`: the response text and the
/// server's certificate, or the handshake's error.
async fn get(
    ca: &Ca,
    addr: std::net::SocketAddr,
    name: &str,
) -> Result<(String, Vec<u8>, Option<Vec<u8>>), std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).expect("name");
    let mut tls = ca.connector().connect(name, tcp).await?;
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    let (_, session) = tls.get_ref();
    let cert = session
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    Ok((String::from_utf8_lossy(&out).into_owned(), cert, alpn))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_alpn_and_hsts() {
    let dir = tempdir();
    let ca = Ca::new();
    let (cert, key, der) = ca.leaf(&["localhost", "127.0.0.1"], (2020, 2100), 1);
    write(&dir, &cert, &key);
    let tls = Tls::from_pem_files(dir.join("cert.pem"), dir.join("key.pem")).expect("tls");
    let addr = serve(
        &tls,
        Config {
            hsts_max_age: Some(Duration::from_secs(31_536_000)),
            ..Config::default()
        },
    )
    .await;
    let (text, served, alpn) = get(&ca, addr, "localhost").await.expect("https");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{text}"
    );
    assert_eq!(served, der);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    // By IP address too (the certificate names it).
    assert!(get(&ca, addr, "127.0.0.1").await.is_ok());
    // Plain HTTP on the TLS port gets no answer, only a closed connection.
    let mut plain = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut out)).await;
    assert!(
        !String::from_utf8_lossy(&out).contains("200"),
        "plain HTTP served"
    );
    // A WebSocket over TLS (wss): the upgrade is answered 101.
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let mut ws = ca
        .connector()
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("tls");
    ws.write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mcp\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    ws.read_exact(&mut head).await.expect("read");
    assert_eq!(&head, b"HTTP/1.1 101");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_refuse_an_expired_or_wrong_host_certificate() {
    let ca = Ca::new();
    for (names, years, why) in [
        (&["localhost"][..], (2019, 2021), "expired"),
        (&["other.example"][..], (2020, 2100), "wrong host"),
    ] {
        let dir = tempdir();
        let (cert, key, _) = ca.leaf(names, years, 1);
        write(&dir, &cert, &key);
        let tls = Tls::from_pem_files(dir.join("cert.pem"), dir.join("key.pem")).expect("tls");
        let addr = serve(&tls, Config::default()).await;
        let e = get(&ca, addr, "localhost").await.expect_err(why);
        assert!(e.to_string().contains("certificate"), "{why}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempdir();
    let ca = Ca::new();
    let (cert1, key1, der1) = ca.leaf(&["localhost"], (2020, 2100), 1);
    write(&dir, &cert1, &key1);
    let tls = Tls::from_pem_files(dir.join("cert.pem"), dir.join("key.pem")).expect("tls");
    let watch = tls.watch(Duration::from_millis(50));
    let addr = serve(&tls, Config::default()).await;
    assert_eq!(get(&ca, addr, "localhost").await.expect("first").1, der1);
    // Renewed on disk: the watch picks it up.
    let (cert2, key2, der2) = ca.leaf(&["localhost"], (2020, 2100), 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    write(&dir, &cert2, &key2);
    let mut served = Vec::new();
    for _ in 0..100 {
        served = get(&ca, addr, "localhost").await.expect("renewed").1;
        if served == der2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served, der2, "the renewed certificate is served");
    // A broken file: the reload fails and the certificate in use stays.
    std::fs::write(dir.join("cert.pem"), "not a certificate").expect("write");
    assert!(tls.reload().is_err());
    let (_, key3, _) = ca.leaf(&["localhost"], (2020, 2100), 3);
    std::fs::write(dir.join("cert.pem"), &cert2).expect("write");
    std::fs::write(dir.join("key.pem"), &key3).expect("write");
    let e = tls.reload().expect_err("a key of another certificate");
    assert!(e.to_string().contains("cannot serve"), "{e}");
    assert!(
        !e.to_string().contains("PRIVATE KEY"),
        "no key material: {e}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(&ca, addr, "localhost").await.expect("kept").1, der2);
    // An explicit reload (the daemon's SIGHUP) of a good pair.
    let (cert4, key4, der4) = ca.leaf(&["localhost"], (2020, 2100), 4);
    watch.abort();
    write(&dir, &cert4, &key4);
    tls.reload().expect("reload");
    assert_eq!(get(&ca, addr, "localhost").await.expect("reloaded").1, der4);
}

/// A watched file whose read blocks (a FIFO nobody writes, as a file on a
/// stalled network mount would) holds the watcher, never an async worker:
/// a runtime of one thread goes on serving.
#[test]
fn a_watched_file_that_blocks_holds_no_async_worker() {
    let dir = tempdir();
    let ca = Arc::new(Ca::new());
    let (cert, key, der) = ca.leaf(&["localhost"], (2020, 2100), 1);
    write(&dir, &cert, &key);
    let (tx, rx) = std::sync::mpsc::channel();
    let (runner_dir, runner_ca) = (dir.clone(), Arc::clone(&ca));
    let runner = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (dir, ca) = (runner_dir, runner_ca);
            let tls = Tls::from_pem_files(dir.join("cert.pem"), dir.join("key.pem")).expect("tls");
            let _watch = tls.watch(Duration::from_millis(20));
            let addr = serve(&tls, Config::default()).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            std::fs::remove_file(dir.join("key.pem")).expect("rm");
            let made = std::process::Command::new("mkfifo")
                .arg(dir.join("key.pem"))
                .status()
                .expect("mkfifo");
            assert!(made.success());
            // The watcher has seen the change and is stuck reading it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let served = get(&ca, addr, "localhost").await.map(|got| got.1);
            tx.send(served).expect("send");
        });
    });
    let served = rx.recv_timeout(Duration::from_secs(10));
    // Give the reader its key, so the watcher's thread (and the runtime) ends.
    std::fs::write(dir.join("key.pem"), &key).expect("write the FIFO");
    match served {
        Ok(Ok(served)) => assert_eq!(served, der, "the certificate in use stays"),
        other => panic!("the runtime's thread was held by the read: {other:?}"),
    }
    runner.join().expect("runner");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_ends_is_closed_at_the_first_byte_deadline() {
    let dir = tempdir();
    let ca = Ca::new();
    let (cert, key, _) = ca.leaf(&["localhost"], (2020, 2100), 1);
    write(&dir, &cert, &key);
    let tls = Tls::from_pem_files(dir.join("cert.pem"), dir.join("key.pem")).expect("tls");
    let addr = serve(
        &tls,
        Config {
            head_timeout: Duration::from_millis(500),
            ..Config::default()
        },
    )
    .await;
    // A client that opens and sends half a ClientHello, then nothing.
    let mut stuck = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    stuck
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("write");
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stuck.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "still open after 5 s");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Meanwhile others were served.
    assert!(get(&ca, addr, "localhost").await.is_ok());
    // Bad files are refused at start with the file named.
    let e = Tls::from_pem_files(dir.join("missing.pem"), dir.join("key.pem")).expect_err("missing");
    assert!(e.to_string().contains("missing.pem"), "{e}");
}

/// A large answer to a keep-alive client that reads slowly arrives whole.
/// rustls takes what it can of a write into its own buffer and reports it
/// written while the socket is full: a tail left there by the last write of
/// an answer goes out only when the server flushes the stream. This run
/// meets that case only when the socket fills during the answer's last
/// 64 KiB (rarely: Linux wakes a writer once half its queue is free), so
/// `answers_reach_a_stream_that_holds_writes_until_flushed`
/// (`tests/in_memory.rs`) is the test that fails without the flush; this
/// one keeps the real TLS path under a slow reader covered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_to_a_slow_reader_arrives_whole() {
    use snowflake_mcp::http::{Method, Request, Response, Router};
    const LEN: usize = 8 << 20;
    let dir = tempdir();
    let ca = Ca::new();
    let (cert, key, _) = ca.leaf(&["localhost"], (2020, 2100), 1);
    write(&dir, &cert, &key);
    let tls = Tls::from_pem_files(dir.join("cert.pem"), dir.join("key.pem")).expect("tls");
    let router = Router::new().route(Method::Get, "/huge", |_: Request<'_>| {
        Response::text(200, vec![b'x'; LEN])
    });
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let server = snowflake_mcp::Server::from_listener(tls.listener(tcp), Config::default(), router)
        .expect("server");
    tokio::spawn(server.serve(std::future::pending()));
    // A small receive buffer, and reads of 8 KiB a millisecond apart after
    // a pause: the server's writes keep finding the socket full.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(8 * 1024).expect("rcvbuf");
    let tcp = socket.connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = ca.connector().connect(name, tcp).await.expect("handshake");
    client
        .write_all(b"GET /huge HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8 * 1024];
    let whole = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() >= end + 4 + LEN {
                break true;
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break false,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert!(
        whole,
        "the answer stalled after {} bytes (head and {LEN} of body expected)",
        got.len()
    );
}

/// A fresh directory under the system's temporary one.
fn tempdir() -> std::path::PathBuf {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random");
    let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("snowflake-mcp-tls-{name}"));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}
