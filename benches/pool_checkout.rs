//! Checkout + return of a pooled session: this crate's pool beside the
//! `deadpool` crate's managed pool, with the same trivial session, in one
//! group per case: uncontended (one task); contended (8 tasks on 2 threads
//! hammering a pool of 8); exhausted (8 tasks on 2 threads sharing 4
//! sessions, each holding its session across a yield, so half of them
//! wait at any time).
//!
//! `cargo bench --bench pool_checkout`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use snowflake_mcp::pool::{BoxFuture, Manager, Pool, PoolConfig};

/// Sessions that cost nothing to create or check: what is measured is the pool.
struct Ours;

impl Manager for Ours {
    type Session = u64;
    type Error = std::convert::Infallible;

    fn create(&self) -> BoxFuture<'_, Result<u64, Self::Error>> {
        Box::pin(async { Ok(7) })
    }

    fn check<'a>(&'a self, _s: &'a mut u64) -> BoxFuture<'a, Result<(), Self::Error>> {
        Box::pin(async { Ok(()) })
    }
}

struct Theirs;

impl deadpool::managed::Manager for Theirs {
    type Type = u64;
    type Error = std::convert::Infallible;

    async fn create(&self) -> Result<u64, Self::Error> {
        Ok(7)
    }

    async fn recycle(
        &self,
        _obj: &mut u64,
        _metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Self::Error> {
        Ok(())
    }
}

const TASKS: u64 = 8;
const SIZE: usize = 4;

fn ours(rt: &tokio::runtime::Runtime, size: usize) -> Pool<Ours> {
    rt.block_on(async {
        Pool::new(
            Ours,
            PoolConfig {
                max_size: size,
                min_idle: 0,
                health_interval: Duration::from_secs(3600),
                ..PoolConfig::default()
            },
        )
    })
}

fn theirs(size: usize) -> deadpool::managed::Pool<Theirs> {
    deadpool::managed::Pool::builder(Theirs)
        .max_size(size)
        .build()
        .expect("deadpool")
}

fn uncontended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pool = ours(&rt, SIZE);
    let dead = theirs(SIZE);
    let mut g = c.benchmark_group("pool_checkout_uncontended");
    g.bench_function("snowflake_mcp", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let s = pool.get().await.expect("session");
                    black_box(*s);
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("deadpool", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let s = dead.get().await.expect("session");
                    black_box(*s);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

/// `TASKS` tasks on a 2-thread runtime, each doing its share of the
/// checkouts; `hold_across_yield` keeps the session over a yield point.
fn many_tasks(c: &mut Criterion, group: &str, size: usize, hold_across_yield: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pool = ours(&rt, size);
    let dead = theirs(size);
    let mut g = c.benchmark_group(group);
    g.bench_function("snowflake_mcp", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let per = iters.div_ceil(TASKS);
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let pool = pool.clone();
                        tokio::spawn(async move {
                            for _ in 0..per {
                                let s = pool.get().await.expect("session");
                                black_box(*s);
                                if hold_across_yield {
                                    tokio::task::yield_now().await;
                                }
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("join");
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("deadpool", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let per = iters.div_ceil(TASKS);
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let dead = dead.clone();
                        tokio::spawn(async move {
                            for _ in 0..per {
                                let s = dead.get().await.expect("session");
                                black_box(*s);
                                if hold_across_yield {
                                    tokio::task::yield_now().await;
                                }
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("join");
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn contended(c: &mut Criterion) {
    many_tasks(c, "pool_checkout_contended", TASKS as usize, false);
}

fn exhausted(c: &mut Criterion) {
    many_tasks(c, "pool_checkout_exhausted", SIZE, true);
}

criterion_group!(benches, uncontended, contended, exhausted);
criterion_main!(benches);
