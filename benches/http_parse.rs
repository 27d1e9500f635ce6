//! Head processing of a typical MCP POST: ours (httparse plus framing checks)
//! beside bare `httparse::Request::parse` on the same bytes, in one group.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use snowflake_mcp::http::head::{HeadLimits, parse_head};

/// A typical MCP POST: ten header fields and a small JSON body.
const MCP_POST: &[u8] = b"POST /mcp HTTP/1.1\r\n\
Host: 127.0.0.1:8000\r\n\
User-Agent: python-httpx/0.28.1\r\n\
Accept: application/json, text/event-stream\r\n\
Accept-Encoding: gzip, deflate\r\n\
Connection: keep-alive\r\n\
Content-Type: application/json\r\n\
Content-Length: 58\r\n\
MCP-Protocol-Version: 2025-11-25\r\n\
Mcp-Session-Id: 3f0c9a1e7b2d4c5f8e6a0b1c2d3e4f50\r\n\
Authorization: Bearer 0123456789abcdef\r\n\
\r\n\
{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{}}";

fn head_processing(c: &mut Criterion) {
    let mut group = c.benchmark_group("http_head");
    group.throughput(Throughput::Bytes(MCP_POST.len() as u64));
    group.bench_function("httparse", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut req = httparse::Request::new(&mut headers);
            black_box(req.parse(black_box(MCP_POST)).unwrap());
        })
    });
    let limits = HeadLimits::default();
    let mut spans = Vec::new();
    group.bench_function("snowflake_mcp", |b| {
        b.iter(|| {
            black_box(
                parse_head(black_box(MCP_POST), &limits, &mut spans)
                    .unwrap()
                    .unwrap(),
            );
        })
    });
    group.finish();
}

criterion_group!(benches, head_processing);
criterion_main!(benches);
