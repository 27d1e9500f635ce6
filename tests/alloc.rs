//! Counts heap allocations: none for a request head, none on the server's
//! thread for a whole keep-alive request to a fixed route.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use snowflake_mcp::http::head::{HeadLimits, parse_head};
use snowflake_mcp::http::{Method, Request, Response, Router};
use snowflake_mcp::{Config, Server};

struct Counting;

thread_local! {
    static COUNTED_THREAD: Cell<bool> = const { Cell::new(false) };
}
/// Set while a measurement runs (by whichever thread drives it).
static MEASURING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn counted() -> bool {
    MEASURING.load(Ordering::SeqCst) && COUNTED_THREAD.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counting touches only a const-initialized thread-local and atomics, which
// never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A typical MCP POST: about ten header fields.
const MCP_POST: &[u8] = include_bytes!("data/mcp_post.http");

/// One test at a time: the counters are global.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn parsing_a_head_allocates_nothing() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let limits = HeadLimits::default();
    let mut spans = Vec::new();
    // The span list grows once per connection; after that, never.
    parse_head(MCP_POST, &limits, &mut spans).unwrap().unwrap();
    COUNTED_THREAD.with(|c| c.set(true));
    ALLOCATIONS.store(0, Ordering::SeqCst);
    MEASURING.store(true, Ordering::SeqCst);
    for _ in 0..1000 {
        let head = parse_head(MCP_POST, &limits, &mut spans).unwrap().unwrap();
        assert_eq!(head.method, Method::Post);
    }
    let during_parse = ALLOCATIONS.load(Ordering::SeqCst);
    // Control: the counter does see an allocation on this thread.
    let control = std::hint::black_box(Vec::<u8>::with_capacity(16));
    MEASURING.store(false, Ordering::SeqCst);
    COUNTED_THREAD.with(|c| c.set(false));
    drop(control);
    assert_eq!(during_parse, 0);
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 1);
}

#[test]
fn keep_alive_request_allocates_nothing_on_the_server_thread() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let fixed = server_allocations_per_request("/mcp");
    println!("server-thread allocations per keep-alive request: {fixed}");
    assert_eq!(fixed, 0.0);
    // Control: a route whose handler copies the body is seen allocating.
    let copying = server_allocations_per_request("/copy");
    assert!(
        copying >= 1.0,
        "control route counted {copying} allocations per request"
    );
}

/// Allocations on the server's thread per keep-alive round trip to `path`.
fn server_allocations_per_request(path: &'static str) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The runtime runs every server task on this thread; the client is another thread.
    COUNTED_THREAD.with(|c| c.set(true));
    let per_request = rt.block_on(async {
        let router = Router::new()
            .route(Method::Post, "/mcp", |req: Request<'_>| {
                assert_eq!(req.body().len(), 58);
                Response::static_body(
                    200,
                    "application/json",
                    br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
                )
            })
            .route(Method::Post, "/copy", |req: Request<'_>| {
                let mut copy = req.body()[..10].to_vec();
                copy.clear();
                copy.extend_from_slice(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
                Response::json(200, copy)
            });
        let server = Server::bind(
            Config {
                port: 0,
                ..Config::default()
            },
            router,
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        let request = std::str::from_utf8(MCP_POST)
            .unwrap()
            .replacen("/mcp", path, 1);
        let client = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            let mut buf = [0u8; 4096];
            let mut round_trip = |s: &mut std::net::TcpStream| {
                s.write_all(request.as_bytes()).unwrap();
                let mut have = 0;
                loop {
                    have += s.read(&mut buf[have..]).unwrap();
                    if buf[..have].ends_with(b"\"result\":{}}") {
                        break;
                    }
                }
            };
            for _ in 0..100 {
                round_trip(&mut s);
            }
            ALLOCATIONS.store(0, Ordering::SeqCst);
            MEASURING.store(true, Ordering::SeqCst);
            const N: u64 = 2000;
            for _ in 0..N {
                round_trip(&mut s);
            }
            MEASURING.store(false, Ordering::SeqCst);
            ALLOCATIONS.load(Ordering::SeqCst) as f64 / N as f64
        });
        let per_request = client.await.unwrap();
        stop.send(()).unwrap();
        serving.await.unwrap().unwrap();
        per_request
    });
    COUNTED_THREAD.with(|c| c.set(false));
    per_request
}

mod dispatch {
    use super::*;
    use snowflake_mcp::mcp::{Dispatched, McpServer, Session, Tool, ToolOutput};

    fn session() -> Session {
        let server = McpServer::builder("alloc", "0")
            .tool(Tool::raw(
                "execute_query",
                "Runs a query.",
                serde_json::json!({"type": "object"}),
                |_ctx, _args| async { ToolOutput::text("") },
            ))
            .build();
        let session = Session::new(server, None);
        let mut out = Vec::new();
        let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"a","version":"0"}}}"#;
        let _ = session.dispatch(init, &mut out);
        session
    }

    /// Allocations of `rounds` dispatches of `message` after one warm-up, on this thread.
    fn count(session: &Session, message: &[u8], out: &mut Vec<u8>, rounds: usize) -> u64 {
        out.clear();
        let _ = session.dispatch(message, out);
        COUNTED_THREAD.with(|c| c.set(true));
        ALLOCATIONS.store(0, Ordering::SeqCst);
        MEASURING.store(true, Ordering::SeqCst);
        for _ in 0..rounds {
            out.clear();
            match session.dispatch(message, out) {
                Dispatched::Done | Dispatched::Call(_) => {}
                Dispatched::Batch => panic!("not a batch"),
            }
        }
        MEASURING.store(false, Ordering::SeqCst);
        COUNTED_THREAD.with(|c| c.set(false));
        ALLOCATIONS.load(Ordering::SeqCst)
    }

    #[test]
    fn tools_call_dispatch_allocates_nothing() {
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let session = session();
        let args = "x".repeat(1000);
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"execute_query","arguments":{{"query":"SELECT 1","note":"{args}"}},"_meta":{{"progressToken":"p"}}}}}}"#
        );
        let mut out = Vec::new();
        match session.dispatch(call.as_bytes(), &mut out) {
            Dispatched::Call(c) => assert_eq!(c.tool_name(), Some("execute_query")),
            other => panic!("{other:?}"),
        }
        assert_eq!(count(&session, call.as_bytes(), &mut out, 1000), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn answering_tools_list_and_ping_allocates_nothing_once_the_buffer_is_grown() {
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let session = session();
        let mut out = Vec::new();
        let list = br#"{"jsonrpc":"2.0","id":"l","method":"tools/list","params":{}}"#;
        assert_eq!(count(&session, list, &mut out, 1000), 0);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"][0]["name"], "execute_query");
        let ping = br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#;
        assert_eq!(count(&session, ping, &mut out, 1000), 0);
        assert_eq!(out, br#"{"jsonrpc":"2.0","id":7,"result":{}}"#);
    }
}
