//! Head processing of a typical MCP POST: ours (httparse plus framing checks)
//! beside bare `httparse::Request::parse` on the same bytes, in one group.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use snowflake_mcp::http::head::{HeadLimits, parse_head};

/// A typical MCP POST: ten header fields and a small JSON body.
const MCP_POST: &[u8] = include_bytes!("../tests/data/mcp_post.http");

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
