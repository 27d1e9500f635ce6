//! Parse + dispatch of `ping`, `tools/list` and a `tools/call` with a 1 KiB
//! argument object, beside `serde_json::from_slice::<Value>` of the same bytes
//! (the owned approach), in one group per message.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use snowflake_mcp::mcp::{Dispatched, McpServer, Session, Tool, ToolOutput};

fn call_message() -> Vec<u8> {
    let filler: String = "abcdefghij".repeat(80);
    let msg = json!({
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {
            "name": "execute_query",
            "arguments": {
                "query": "SELECT region, SUM(amount) AS total FROM sales WHERE sold_at >= '2026-01-01' GROUP BY region ORDER BY total DESC",
                "database": "DEMO",
                "schema": "PUBLIC",
                "limit": 100,
                "note": filler,
            },
            "_meta": { "progressToken": "p-42" }
        }
    });
    msg.to_string().into_bytes()
}

fn route(c: &mut Criterion) {
    let server = McpServer::builder("bench", "0")
        .tool(Tool::raw(
            "execute_query",
            "Runs a query.",
            json!({"type": "object"}),
            |_ctx, _args| async { ToolOutput::text("") },
        ))
        .build();
    let session = Session::new(server, None);
    let mut out = Vec::with_capacity(4096);
    let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"b","version":"0"}}}"#;
    let _ = session.dispatch(init, &mut out);

    let call = call_message();
    let messages: [(&str, &[u8]); 3] = [
        ("ping", br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
        (
            "tools_list",
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#,
        ),
        ("tools_call_1k", &call),
    ];
    for (name, bytes) in messages {
        let mut group = c.benchmark_group(format!("jsonrpc_route/{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("serde_json_value", |b| {
            b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(bytes)).unwrap()))
        });
        group.bench_function("snowflake_mcp_dispatch", |b| {
            b.iter(|| {
                out.clear();
                let d = session.dispatch(black_box(bytes), &mut out);
                assert!(matches!(d, Dispatched::Done | Dispatched::Call(_)));
                black_box(&out);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, route);
criterion_main!(benches);
