//! Arbitrary bytes from a client through a whole connection of the
//! service (Streamable HTTP on `/mcp`, WebSocket on `/ws`, the operations
//! endpoints) over an in-memory stream: the server's connection loop,
//! head parsing, body framing, the MCP transports and upgrades, with no
//! socket.
//!
//! Must never panic anywhere (a panic in any task aborts the process, which
//! the fuzzer reports), must finish with the connection closed within 5 s of
//! the client's end of input, must answer only in HTTP/1.1 (every response
//! starts with a status line; after a `101`, WebSocket frames follow), and
//! must answer no more responses than the client sent request heads (the
//! answers walked by their framing, HTTP/1.1 heads parsed by httparse).
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use snowflake_mcp::mcp::{McpServer, Tool, ToolOutput};
use snowflake_mcp::{Config, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc::Sender;

/// The runtime the service runs on, and where new connections go.
struct Harness {
    runtime: tokio::runtime::Runtime,
    connections: Sender<(DuplexStream, SocketAddr)>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        // A panic in any task (the server's included) is a finding.
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            std::process::abort();
        }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let server = McpServer::builder("fuzz", "0")
            .tool(Tool::raw(
                "echo",
                "Echoes.",
                json!({"type": "object"}),
                |ctx, args| async move {
                    ctx.progress(1.0, Some(2.0), Some("half")).await;
                    ToolOutput::structured(args)
                },
            ))
            .build();
        let (connections, accepted) = tokio::sync::mpsc::channel(1);
        let config = Config {
            // Small limits, so limits are reached by inputs of fuzzing size.
            max_body_bytes: 4096,
            max_head_bytes: 2048,
            head_timeout: Duration::from_secs(2),
            ..Config::default()
        };
        let served = runtime.block_on(async {
            let server = Service::from_server(server)
                .streamable_http("/mcp")
                .websocket("/ws")
                .ops()
                .config(config)
                .build()
                .on_listener(accepted)
                .expect("valid settings");
            tokio::spawn(server.serve(std::future::pending()))
        });
        drop(served);
        Harness {
            runtime,
            connections,
        }
    })
}

/// Request heads in `input`: an upper bound on the answers due. Every
/// request line holds ` HTTP/`, wherever it starts (a pipelined request
/// may follow a body with no line break between them).
fn request_lines(input: &[u8]) -> usize {
    input.windows(6).filter(|w| *w == b" HTTP/").count()
}

/// The length of a chunked body at the start of `bytes` (trailers and the
/// final empty line included), if it is whole.
fn chunked_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&bytes[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some(at);
                }
            }
        }
        at += size + 2;
        if at > bytes.len() {
            return None;
        }
    }
}

/// Walks the answers in `output` by their framing: every one is an
/// HTTP/1.1 response with a well-formed head; after a `101` WebSocket
/// frames follow. The count of final (non-1xx) answers.
fn count_answers(output: &[u8], head_requested: bool) -> usize {
    let mut at = 0;
    let mut answers = 0;
    while at < output.len() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(&output[at..]) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!(
                "not an HTTP/1.1 answer at byte {at} ({other:?}): {:?}",
                String::from_utf8_lossy(&output[at..output.len().min(at + 200)])
            ),
        };
        assert_eq!(response.version, Some(1), "an HTTP/1.1 status line");
        let code = response.code.unwrap_or_default();
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
        };
        let length: Option<usize> = header("content-length").and_then(|v| v.parse().ok());
        let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        at += head;
        if code == 101 {
            return answers + 1;
        }
        if (100..200).contains(&code) {
            continue;
        }
        answers += 1;
        let body = if chunked {
            chunked_len(&output[at..])
        } else {
            match length {
                Some(n) => Some(n),
                // Delimited by the close: the rest is its body.
                None => return answers,
            }
        };
        let Some(body) = body else {
            // Cut short: the server closed mid-body (a write deadline, say).
            return answers;
        };
        // The answer to a HEAD request names a length but carries no body.
        let next_is_answer =
            |from: usize| from >= output.len() || output[from..].starts_with(b"HTTP/1.1 ");
        if head_requested && body > 0 && !next_is_answer(at + body) && next_is_answer(at) {
            continue;
        }
        at += body;
    }
    answers
}

/// The answers are HTTP/1.1 responses, no more than the request heads sent.
fn check_answers(input: &[u8], output: &[u8]) {
    let head_requested = input.windows(5).any(|w| w == b"HEAD ");
    let answers = count_answers(output, head_requested);
    // One more for an answer to a head too malformed to count as one.
    assert!(
        answers <= request_lines(input) + 1,
        "{answers} answers to {} requests: {:?}",
        request_lines(input),
        String::from_utf8_lossy(output)
    );
}

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let output = harness.runtime.block_on(async {
        let (client, server_end) = tokio::io::duplex(64 * 1024);
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
        harness
            .connections
            .send((server_end, peer))
            .await
            .expect("the server accepts");
        let (mut reader, mut writer) = tokio::io::split(client);
        let write = async {
            let _ = writer.write_all(data).await;
            let _ = writer.shutdown().await;
        };
        let read = async {
            let mut out = Vec::new();
            let _ = reader.read_to_end(&mut out).await;
            out
        };
        let (_, out) = tokio::join!(write, tokio::time::timeout(Duration::from_secs(5), read));
        out.expect("the connection ends within 5 s of the end of input")
    });
    check_answers(data, &output);
});
