//! Pool behaviour with a manager whose sessions can be made to fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::*;

#[derive(Default)]
struct Fake {
    next: AtomicU64,
    /// When set, creating and checking fail (the warehouse is down).
    down: Arc<AtomicBool>,
    /// Sessions whose id is at most this are broken (fail their check).
    broken_up_to: AtomicU64,
    /// When set, creating and checking take ten seconds (a stalled network).
    slow: Arc<AtomicBool>,
}

impl Manager for Fake {
    type Session = u64;
    type Error = String;

    fn create(&self) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move {
            if self.slow.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            if self.down.load(Ordering::SeqCst) {
                return Err("connection refused".into());
            }
            Ok(self.next.fetch_add(1, Ordering::SeqCst) + 1)
        })
    }

    fn check<'a>(&'a self, s: &'a mut u64) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.slow.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            if self.down.load(Ordering::SeqCst) || *s <= self.broken_up_to.load(Ordering::SeqCst) {
                return Err("broken".into());
            }
            Ok(())
        })
    }
}

fn config(max: usize) -> PoolConfig {
    PoolConfig {
        max_size: max,
        min_idle: 0,
        acquire_timeout: Duration::from_millis(200),
        health_interval: Duration::from_secs(3600),
        ..PoolConfig::default()
    }
}

#[tokio::test]
async fn reuses_sessions_and_counts() {
    let pool = Pool::new(Fake::default(), config(2));
    let a = pool.get().await.expect("a");
    assert_eq!(*a, 1);
    drop(a);
    let b = pool.get().await.expect("b");
    assert_eq!(*b, 1, "the idle session is reused");
    let s = pool.stats();
    assert_eq!(
        (s.total, s.active, s.idle, s.created, s.acquires),
        (1, 1, 0, 1, 2)
    );
    drop(b);
    assert_eq!(pool.stats().idle, 1);
}

#[tokio::test]
async fn exhaustion_times_out_with_a_clear_error() {
    let pool = Pool::new(Fake::default(), config(2));
    let _a = pool.get().await.expect("a");
    let _b = pool.get().await.expect("b");
    let e = pool.get().await.expect_err("exhausted");
    assert_eq!(e.to_string(), "all 2 warehouse sessions busy for 0s");
    let s = pool.stats();
    assert_eq!((s.acquire_timeouts, s.waiting, s.total), (1, 0, 2));
    assert!(s.wait_time >= Duration::from_millis(200));
}

#[tokio::test]
async fn a_waiter_gets_the_returned_session() {
    let pool = Pool::new(Fake::default(), config(1));
    let a = pool.get().await.expect("a");
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { *pool.get().await.expect("after return") })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(pool.stats().waiting, 1);
    drop(a);
    assert_eq!(waiter.await.expect("join"), 1);
}

#[tokio::test]
async fn a_broken_session_is_never_handed_out_again() {
    let pool = Pool::new(Fake::default(), config(2));
    let mut a = pool.get().await.expect("a");
    assert_eq!(*a, 1);
    a.mark_broken();
    drop(a);
    let b = pool.get().await.expect("b");
    assert_eq!(*b, 2, "a fresh session replaces the broken one");
    let s = pool.stats();
    assert_eq!((s.broken, s.total), (1, 1));
}

#[tokio::test]
async fn the_health_check_replaces_broken_idle_sessions() {
    let fake = Fake::default();
    fake.broken_up_to.store(1, Ordering::SeqCst);
    let pool = Pool::new(
        fake,
        PoolConfig {
            min_idle: 1,
            ..config(2)
        },
    );
    // Session 1 is broken; a pass drops it and opens session 2 in its place.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        pool.check_now().await;
        if pool.stats().broken >= 1 && pool.stats().idle == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{:?}", pool.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*pool.get().await.expect("good"), 2);
}

#[tokio::test]
async fn an_outage_gives_errors_then_recovers_without_leaks() {
    let fake = Fake::default();
    let down = Arc::clone(&fake.down);
    let pool = Pool::new(fake, config(2));
    drop(pool.get().await.expect("up"));
    down.store(true, Ordering::SeqCst);
    pool.check_now().await; // the idle session fails its check and goes
    let e = pool.get().await.expect_err("down");
    assert!(e.to_string().contains("connection refused"), "{e}");
    assert!(!pool.stats().healthy);
    down.store(false, Ordering::SeqCst);
    let back = pool.get().await.expect("recovered");
    drop(back);
    let s = pool.stats();
    assert!(s.healthy);
    assert_eq!((s.active, s.idle, s.total), (0, 1, 1), "{s:?}");
}

#[tokio::test]
async fn min_idle_is_kept_without_exceeding_max() {
    let pool = Pool::new(
        Fake::default(),
        PoolConfig {
            min_idle: 2,
            ..config(2)
        },
    );
    pool.check_now().await;
    assert_eq!(pool.stats().idle, 2);
    let a = pool.get().await.expect("a");
    let b = pool.get().await.expect("b");
    drop(a);
    pool.check_now().await;
    assert!(pool.stats().total <= 2, "{:?}", pool.stats());
    drop(b);
    assert_eq!(pool.stats().total, 2);
}

#[tokio::test]
async fn close_drops_idle_and_refuses() {
    let pool = Pool::new(Fake::default(), config(2));
    let a = pool.get().await.expect("a");
    drop(pool.get().await.expect("b"));
    pool.close();
    assert!(matches!(pool.get().await, Err(PoolError::Closed)));
    drop(a);
    assert_eq!(pool.stats().total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_never_exceed_the_bound() {
    let pool = Pool::new(
        Fake::default(),
        PoolConfig {
            acquire_timeout: Duration::from_secs(5),
            ..config(3)
        },
    );
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let s = pool.get().await.expect("session");
                assert!(pool.stats().active <= 3);
                tokio::task::yield_now().await;
                drop(s);
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    let s = pool.stats();
    assert_eq!((s.active, s.acquires), (0, 32 * 50));
    assert!(s.total <= 3 && s.created <= 3, "{s:?}");
}

#[tokio::test]
async fn callers_that_give_up_leave_no_slot_or_session_behind() {
    use futures_util::FutureExt as _;
    let fake = Fake::default();
    let slow = Arc::clone(&fake.slow);
    let pool = Pool::new(fake, config(1));
    // Gives up while its session is being opened (a stalled login).
    slow.store(true, Ordering::SeqCst);
    let gave_up = tokio::time::timeout(Duration::from_millis(20), pool.get()).await;
    assert!(gave_up.is_err());
    slow.store(false, Ordering::SeqCst);
    let a = pool.get().await.expect("the reserved slot came back");
    // Gives up after a session was handed to it, before reading it.
    let mut waiter = Box::pin(pool.get());
    assert!((&mut waiter).now_or_never().is_none(), "waits");
    assert_eq!(pool.stats().waiting, 1);
    drop(a);
    drop(waiter);
    assert_eq!(pool.stats().waiting, 0);
    let mut b = pool.get().await.expect("the handed-over session came back");
    // Gives up after a free slot was handed to it.
    let mut waiter = Box::pin(pool.get());
    assert!((&mut waiter).now_or_never().is_none(), "waits");
    b.mark_broken();
    drop(b);
    drop(waiter);
    let c = pool.get().await.expect("the handed-over slot came back");
    drop(c);
    assert_eq!(pool.stats().total, 1);
}

#[tokio::test]
async fn a_stalled_health_pass_still_fails_waiters_in_time() {
    let fake = Fake::default();
    let slow = Arc::clone(&fake.slow);
    let pool = Pool::new(fake, config(1));
    drop(pool.get().await.expect("a"));
    // The only session is taken out for a check that stalls.
    slow.store(true, Ordering::SeqCst);
    let checking = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.check_now().await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = std::time::Instant::now();
    let e = pool.get().await.expect_err("nothing free");
    assert!(started.elapsed() < Duration::from_secs(2), "{e}");
    tokio::time::timeout(Duration::from_secs(2), checking)
        .await
        .expect("the check gives up at the acquire timeout")
        .expect("join");
    slow.store(false, Ordering::SeqCst);
    pool.get()
        .await
        .expect("a fresh session after the stalled one");
}
