//! HAProxy's PROXY protocol (versions 1 and 2) on a listener that expects
//! it: the load balancer opens each connection with a header naming the
//! client's address, which then stands for the connection's peer (rate
//! limits, principals of clients without keys, logs, `/status`).
//!
//! [`ProxyProtocolListener`] wraps another listener. Each connection's
//! header is read on a task of its own under a deadline, never in the
//! accept loop, so a client that sends nothing holds only its own
//! connection. A connection without a valid header is closed: only the
//! balancer may reach such a listener. A `LOCAL` header (the balancer's
//! own health check) keeps the real peer address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::http::Io;
use crate::server::Listener;

/// The version 2 signature.
const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Most bytes of a version 1 header, CRLF included (the spec's bound).
const MAX_V1_BYTES: usize = 107;

/// Most bytes of a version 2 header's addresses and TLVs. Default: 1 KiB
/// (addresses take 36 at most; the rest is TLVs, skipped).
const MAX_V2_BODY: usize = 1024;

/// How long a connection may take to send its header. Default: 5 s.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections whose header is read, waiting to be served. Default: 128.
const READY_QUEUE: usize = 128;

/// Why a header was refused (the connection is closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// Neither a version 1 nor a version 2 header.
    #[error("no PROXY protocol header")]
    Missing,
    /// A header that breaks the format.
    #[error("malformed PROXY protocol header")]
    Malformed,
    /// A version 2 header longer than this server reads.
    #[error("PROXY protocol header too long")]
    TooLong,
}

/// A parsed header: its length, and the client's address (`None`: keep
/// the connection's own, for `LOCAL` and `UNKNOWN`).
pub type Parsed = (usize, Option<SocketAddr>);

/// Parses the header at the start of `buf`: `Ok(None)` when more bytes
/// are needed.
pub fn parse(buf: &[u8]) -> Result<Option<Parsed>, ProxyHeaderError> {
    if b"PROXY ".starts_with(&buf[..buf.len().min(6)]) {
        return parse_v1(buf);
    }
    let head = &buf[..buf.len().min(SIGNATURE.len())];
    if !SIGNATURE.starts_with(head) {
        return Err(ProxyHeaderError::Missing);
    }
    parse_v2(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Option<Parsed>, ProxyHeaderError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= MAX_V1_BYTES {
            Err(ProxyHeaderError::TooLong)
        } else {
            Ok(None)
        };
    };
    let len = end + 2;
    if len > MAX_V1_BYTES {
        return Err(ProxyHeaderError::TooLong);
    }
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyHeaderError::Malformed)?;
    let mut parts = line.split(' ');
    let (Some("PROXY"), Some(family)) = (parts.next(), parts.next()) else {
        return Err(ProxyHeaderError::Malformed);
    };
    if family == "UNKNOWN" {
        return Ok(Some((len, None)));
    }
    let fields: Vec<&str> = parts.collect();
    let [src, _dst, sport, _dport] = fields[..] else {
        return Err(ProxyHeaderError::Malformed);
    };
    let ip: IpAddr = src.parse().map_err(|_| ProxyHeaderError::Malformed)?;
    let fits = matches!(
        (family, ip),
        ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_))
    );
    let port: u16 = sport.parse().map_err(|_| ProxyHeaderError::Malformed)?;
    if !fits || sport.starts_with('0') && sport != "0" {
        return Err(ProxyHeaderError::Malformed);
    }
    Ok(Some((len, Some(SocketAddr::new(ip, port)))))
}

fn parse_v2(buf: &[u8]) -> Result<Option<Parsed>, ProxyHeaderError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    if version != 2 || command > 1 {
        return Err(ProxyHeaderError::Malformed);
    }
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if body > MAX_V2_BODY {
        return Err(ProxyHeaderError::TooLong);
    }
    let len = 16 + body;
    if buf.len() < len {
        return Ok(None);
    }
    if command == 0 {
        // LOCAL: the balancer's own connection (a health check).
        return Ok(Some((len, None)));
    }
    let addresses = &buf[16..len];
    let client = match buf[13] {
        // TCP or UDP over IPv4: src, dst, sport, dport.
        0x11 | 0x12 => {
            let a = addresses.get(..12).ok_or(ProxyHeaderError::Malformed)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([a[8], a[9]]),
            ))
        }
        0x21 | 0x22 => {
            let a = addresses.get(..36).ok_or(ProxyHeaderError::Malformed)?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::new(
                IpAddr::V6(ip),
                u16::from_be_bytes([a[32], a[33]]),
            ))
        }
        // UNSPEC or Unix sockets: keep the connection's own address.
        0x00 | 0x31 | 0x32 => None,
        _ => return Err(ProxyHeaderError::Malformed),
    };
    Ok(Some((len, client)))
}

/// Reads and checks `stream`'s header: byte by byte up to its CRLF
/// (version 1), or by the length it states (version 2), so nothing after
/// it is consumed.
async fn read_header<S: Io>(stream: &mut S) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    async fn fill<S: Io>(stream: &mut S, buf: &mut [u8]) -> Result<(), ProxyHeaderError> {
        stream
            .read_exact(buf)
            .await
            .map(|_| ())
            .map_err(|_| ProxyHeaderError::Missing)
    }
    let mut buf = vec![0u8; 5];
    fill(stream, &mut buf).await?;
    if buf == b"PROXY" {
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= MAX_V1_BYTES {
                return Err(ProxyHeaderError::TooLong);
            }
            fill(stream, &mut byte).await?;
            buf.push(byte[0]);
        }
    } else {
        buf.resize(16, 0);
        fill(stream, &mut buf[5..]).await?;
        if !buf.starts_with(SIGNATURE) {
            return Err(ProxyHeaderError::Missing);
        }
        let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if body > MAX_V2_BODY {
            return Err(ProxyHeaderError::TooLong);
        }
        buf.resize(16 + body, 0);
        fill(stream, &mut buf[16..]).await?;
    }
    match parse(&buf)? {
        Some((len, client)) if len == buf.len() => Ok(client),
        _ => Err(ProxyHeaderError::Malformed),
    }
}

/// A listener whose connections start with a PROXY protocol header (see
/// the [module docs](self)).
pub struct ProxyProtocolListener<S> {
    ready: mpsc::Receiver<(S, SocketAddr)>,
    accepting: tokio::task::JoinHandle<()>,
}

impl<S> std::fmt::Debug for ProxyProtocolListener<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyProtocolListener")
            .finish_non_exhaustive()
    }
}

impl<S> Drop for ProxyProtocolListener<S> {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl<S: Io> ProxyProtocolListener<S> {
    /// Accepts from `inner` (on a task of its own, from now on) and reads
    /// each connection's header within `timeout`. Needs a tokio runtime.
    pub fn new<L: Listener<Io = S>>(mut inner: L, timeout: Duration) -> Self {
        let (ready, receiver) = mpsc::channel(READY_QUEUE);
        let accepting = tokio::spawn(async move {
            loop {
                let (mut stream, peer) = match inner.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
                    Err(_) => {
                        // Out of descriptors, say: the server's own accept
                        // loop backs off the same way.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let ready = ready.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(timeout, read_header(&mut stream)).await {
                        Ok(Ok(client)) => {
                            let _ = ready.send((stream, client.unwrap_or(peer))).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(target: "snowflake_mcp::proxy_protocol", peer = %peer, error = %e, "connection refused");
                        }
                        Err(_) => {
                            tracing::debug!(target: "snowflake_mcp::proxy_protocol", peer = %peer, "no PROXY header in time");
                        }
                    }
                });
            }
        });
        ProxyProtocolListener {
            ready: receiver,
            accepting,
        }
    }
}

impl<S: Io> Listener for ProxyProtocolListener<S> {
    type Io = S;

    async fn accept(&mut self) -> std::io::Result<(S, SocketAddr)> {
        self.ready.accept().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h
    }

    #[test]
    fn headers_of_both_versions() {
        let v1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
        assert_eq!(
            parse(v1),
            Ok(Some((45, Some("192.0.2.1:56324".parse().expect("addr")))))
        );
        let v1_6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n";
        assert_eq!(
            parse(v1_6).map(|p| p.and_then(|(_, a)| a)),
            Ok(Some("[2001:db8::1]:4000".parse().expect("addr")))
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Ok(Some((15, None))));
        let ipv4 = v2(
            1,
            0x11,
            &[203, 0, 113, 7, 10, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb],
        );
        assert_eq!(
            parse(&ipv4),
            Ok(Some((28, Some("203.0.113.7:8080".parse().expect("addr")))))
        );
        let mut ipv6 = vec![0u8; 36];
        ipv6[0] = 0x20;
        ipv6[1] = 0x01;
        ipv6[15] = 5;
        ipv6[32] = 0x12;
        ipv6[33] = 0x34;
        let parsed = parse(&v2(1, 0x21, &ipv6)).expect("ok").expect("whole");
        assert_eq!(parsed.1, Some("[2001::5]:4660".parse().expect("addr")));
        // LOCAL (a health check) and TLVs after the addresses.
        assert_eq!(parse(&v2(0, 0x00, &[])), Ok(Some((16, None))));
        let mut with_tlv = vec![127, 0, 0, 1, 127, 0, 0, 1, 0, 80, 0, 80];
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x01, 0xff]);
        assert_eq!(
            parse(&v2(1, 0x11, &with_tlv))
                .expect("ok")
                .expect("whole")
                .0,
            32
        );
    }

    #[test]
    fn partial_and_bad_headers() {
        let whole = v2(
            1,
            0x11,
            &[203, 0, 113, 7, 10, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb],
        );
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(b"PROXY TCP4 1.2"), Ok(None));
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 1\r\n",
            b"PROXY TCP9 1.2.3.4 5.6.7.8 1 1\r\n",
            b"PROXY TCP4 1.2.3.4\r\n",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(&[b'P'; 200]), Err(ProxyHeaderError::Missing));
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(120));
        assert_eq!(parse(long.as_bytes()), Err(ProxyHeaderError::TooLong));
        let mut too_long = SIGNATURE.to_vec();
        too_long.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&too_long), Err(ProxyHeaderError::TooLong));
        // Version 3, and a command past PROXY.
        let mut v3 = v2(1, 0x11, &[0; 12]);
        v3[12] = 0x31;
        assert!(parse(&v3).is_err());
        let mut cmd = v2(1, 0x11, &[0; 12]);
        cmd[12] = 0x25;
        assert!(parse(&cmd).is_err());
        // Addresses shorter than the family needs.
        assert!(parse(&v2(1, 0x11, &[1, 2, 3])).is_err());
    }

    #[tokio::test]
    async fn the_header_is_read_exactly_and_slow_clients_time_out() {
        use tokio::io::AsyncWriteExt;
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let mut listener = ProxyProtocolListener::new(tcp, Duration::from_millis(300));
        // A silent client holds nothing up: the next one is served.
        let _silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        client
            .write_all(b"PROXY TCP4 192.0.2.9 10.0.0.1 5555 80\r\nGET / HTTP/1.1\r\n")
            .await
            .expect("write");
        let (mut stream, peer) = listener.accept().await.expect("accept");
        assert_eq!(peer, "192.0.2.9:5555".parse().expect("addr"));
        let mut rest = [0u8; 16];
        stream.read_exact(&mut rest).await.expect("read");
        assert_eq!(
            &rest, b"GET / HTTP/1.1\r\n",
            "nothing after the header was eaten"
        );
        // A client without a header is closed.
        let mut plain = tokio::net::TcpStream::connect(addr).await.expect("connect");
        plain
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), plain.read_to_end(&mut out)).await;
        // Closed (a reset, when the unread bytes were still queued).
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
        assert!(out.is_empty(), "closed without an answer");
    }
}
