//! A sequence of MCP messages, in any order and under any version, through a
//! session whose calls run concurrently and ask the client questions
//! (server-to-client requests the sequence may answer, refuse, answer
//! twice, or never answer), with cancellations and stray responses mixed in.
//!
//! Each input byte picks the next step (initialize under some version, the
//! initialized notification, a call of a tool that asks the client, a
//! quick call, an answer to one of the server's open questions, a
//! cancellation, a ping, a stray response, a line of raw bytes, or letting
//! the calls run). Must never panic or hang; every request the client made
//! is answered at most once and with its own id, and exactly once unless
//! it was cancelled; nothing answers a notification or a response.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use snowflake_mcp::mcp::{Dispatched, McpServer, Peer, Session, Tool, ToolOutput};
use tokio::task::JoinSet;

const VERSIONS: [&str; 5] = [
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

fn server() -> &'static McpServer {
    static SERVER: OnceLock<McpServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        McpServer::builder("fuzz", "0")
            .tool(Tool::raw(
                "ask",
                "Asks the client, then answers with what it said.",
                json!({"type": "object"}),
                |ctx, _args| async move {
                    let asked = json!({"message": "go on?", "requestedSchema": {"type": "object", "properties": {}}});
                    match ctx.request("elicitation/create", asked).await {
                        Ok(answer) => ToolOutput::structured(json!({"said": answer})),
                        Err(e) => ToolOutput::error(e.message),
                    }
                },
            ))
            .tool(Tool::raw("quick", "Answers at once.", json!({"type": "object"}), |_ctx, _| async {
                ToolOutput::text("done")
            }))
            .build()
    })
}

/// What the client side has seen.
#[derive(Default)]
struct Book {
    /// Requests the client sent (by id), and whether they were cancelled.
    sent: HashMap<i64, bool>,
    /// Answers received, by id.
    answered: HashMap<i64, usize>,
    /// The server's open questions to the client (raw JSON ids), oldest first.
    asked: Vec<String>,
    /// Every question id the server has used.
    question_ids: HashSet<String>,
}

/// The parts of a server message the book reads; the rest is checked to
/// be JSON but not built into values (reading whole answers into `Value`s
/// was a fifth of the target's time).
#[derive(Deserialize)]
struct Seen<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

impl Book {
    /// Reads one message the server sent.
    fn read(&mut self, bytes: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Seen<'_>>(bytes) else {
            panic!(
                "the server sent broken JSON: {:?}",
                String::from_utf8_lossy(bytes)
            );
        };
        let shown = || String::from_utf8_lossy(bytes).into_owned();
        if v.method.is_some() {
            if let Some(id) = v.id {
                // A question to the client: ids never repeat.
                assert!(
                    self.question_ids.insert(id.get().to_owned()),
                    "question id reused: {}",
                    shown()
                );
                self.asked.push(id.get().to_owned());
            }
            return;
        }
        let id =
            v.id.and_then(|id| id.get().parse::<i64>().ok())
                .unwrap_or_else(|| panic!("an answer without our id: {}", shown()));
        assert!(
            self.sent.contains_key(&id),
            "an answer to nothing sent: {}",
            shown()
        );
        assert!(v.result.is_some() != v.error.is_some(), "{}", shown());
        *self.answered.entry(id).or_default() += 1;
    }
}

/// A numbered request of the client (`params` is JSON), booked as sent.
fn request(book: &mut Book, next_id: &mut i64, method: &str, params: &str) -> String {
    let id = *next_id;
    *next_id += 1;
    book.sent.insert(id, false);
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}

/// Lets spawned calls run for a moment (time is paused: timers fire as
/// soon as nothing else can run).
async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

thread_local! {
    /// One runtime for every input (building one per input was a third of
    /// the time): each input's calls are all joined before it ends, so
    /// nothing carries over but the paused clock's position.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
}

fuzz_target!(|data: &[u8]| {
    RUNTIME.with(|runtime| runtime.block_on(run(data)));
});

/// Plays one input.
async fn run(data: &[u8]) {
    {
        let (peer, mut from_server) = Peer::channel(1024);
        let session = Arc::new(Session::new(server().clone(), Some(peer.clone())));
        let mut calls = JoinSet::new();
        let mut book = Book::default();
        let mut next_id: i64 = 1;
        let mut out = Vec::new();
        let mut bytes = data.iter().copied();
        while let Some(op) = bytes.next() {
            let arg = bytes.next().unwrap_or(0);
            let line = match op % 10 {
                0 => {
                    let version = VERSIONS[usize::from(arg) % VERSIONS.len()];
                    let capabilities = if arg & 0x80 != 0 {
                        r#"{"elicitation":{}}"#
                    } else {
                        "{}"
                    };
                    let params = format!(
                        r#"{{"protocolVersion":"{version}","capabilities":{capabilities},"clientInfo":{{"name":"fuzz","version":"0"}}}}"#
                    );
                    request(&mut book, &mut next_id, "initialize", &params)
                }
                1 => r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned(),
                2 => request(
                    &mut book,
                    &mut next_id,
                    "tools/call",
                    r#"{"name":"ask","arguments":{}}"#,
                ),
                3 => {
                    let name = if arg % 3 == 0 { "missing" } else { "quick" };
                    let params = format!(r#"{{"name":"{name}","arguments":{{}}}}"#);
                    request(&mut book, &mut next_id, "tools/call", &params)
                }
                4 => {
                    // Answers (or refuses) one of the server's questions; may
                    // answer the same one again later.
                    if book.asked.is_empty() {
                        continue;
                    }
                    let id = book.asked[usize::from(arg) % book.asked.len()].clone();
                    if arg & 1 == 0 {
                        book.asked.retain(|q| *q != id);
                    }
                    if arg & 2 == 0 {
                        format!(
                            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"action":"accept","content":{{}}}}}}"#
                        )
                    } else {
                        format!(
                            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-1,"message":"no"}}}}"#
                        )
                    }
                }
                5 => {
                    let target = i64::from(arg) % next_id.max(1);
                    if let Some(cancelled) = book.sent.get_mut(&target) {
                        *cancelled = true;
                    }
                    format!(
                        r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{target}}}}}"#
                    )
                }
                6 => request(&mut book, &mut next_id, "ping", "{}"),
                7 => format!(r#"{{"jsonrpc":"2.0","id":"stray-{arg}","result":{{}}}}"#),
                8 => {
                    // A raw line: up to `arg` of the following bytes.
                    let raw: Vec<u8> = bytes.by_ref().take(usize::from(arg % 64)).collect();
                    String::from_utf8_lossy(&raw).into_owned()
                }
                _ => {
                    settle().await;
                    while let Some(m) = from_server.try_recv() {
                        book.read(&m);
                    }
                    continue;
                }
            };
            out.clear();
            match session.dispatch(line.as_bytes(), &mut out) {
                Dispatched::Done => {
                    if !out.is_empty() {
                        // Raw lines may be requests with ids of their own:
                        // only answers to our numbered requests are booked.
                        if op % 10 != 8 {
                            book.read(&out);
                        }
                    }
                }
                Dispatched::Call(call) => {
                    let call = call.into_owned(&session);
                    let peer = peer.clone();
                    let raw = op % 10 == 8;
                    calls.spawn(async move {
                        if let Some(answer) = call.run().await
                            && !raw
                        {
                            peer.send(answer).await;
                        }
                    });
                }
                Dispatched::Batch => {
                    let _ = session.handle(line.as_bytes()).await;
                }
            }
            while let Some(m) = from_server.try_recv() {
                book.read(&m);
            }
        }
        // The end: every open question refused, every call run out (a
        // question nobody answers times out; time is paused, so at once).
        loop {
            while let Some(m) = from_server.try_recv() {
                book.read(&m);
            }
            for id in std::mem::take(&mut book.asked) {
                let no = format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-1,"message":"no"}}}}"#
                );
                out.clear();
                let _ = session.dispatch(no.as_bytes(), &mut out);
                assert!(out.is_empty(), "a response was answered");
            }
            match tokio::time::timeout(Duration::from_secs(3600), calls.join_next()).await {
                Ok(Some(joined)) => joined.expect("a call panicked"),
                Ok(None) => break,
                Err(_) => panic!("a call never ended"),
            }
        }
        while let Some(m) = from_server.try_recv() {
            book.read(&m);
        }
        for (id, cancelled) in &book.sent {
            let n = book.answered.get(id).copied().unwrap_or(0);
            assert!(n <= 1, "request {id} answered {n} times");
            assert!(n == 1 || *cancelled, "request {id} never answered");
        }
    }
}
