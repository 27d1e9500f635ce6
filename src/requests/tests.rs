//! Unit tests of `requests.rs`.

use super::*;

fn manager(max: usize, per_client: usize, queue: usize, timeout: Duration) -> Arc<RequestManager> {
    RequestManager::new(RequestsConfig {
        timeout,
        max_concurrent: max,
        max_per_client: per_client,
        max_queue: queue,
        max_queue_per_client: queue,
    })
}

/// A call of `client` running until the returned sender is used (or
/// dropped), started and given time to take its slot.
async fn holding(
    m: &Arc<RequestManager>,
    client: &'static str,
    tool: &'static str,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<Option<()>, RequestError>>,
) {
    let (release, hold) = oneshot::channel::<()>();
    let m = Arc::clone(m);
    let running = tokio::spawn(async move { m.run(client, tool, async { hold.await.ok() }).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    (release, running)
}

#[tokio::test]
async fn runs_and_lists() {
    let m = manager(2, 2, 4, Duration::from_secs(5));
    let (tx, running) = holding(&m, "a", "execute_query").await;
    let active = m.active();
    assert_eq!(active.len(), 1);
    assert_eq!(
        (
            active[0].client.as_str(),
            active[0].tool.as_str(),
            active[0].running
        ),
        ("a", "execute_query", true)
    );
    tx.send(()).expect("send");
    assert_eq!(running.await.expect("join"), Ok(Some(())));
    assert!(m.active().is_empty());
    assert_eq!(m.load(), (0, 0));
}

#[tokio::test]
async fn timeouts_stop_the_work() {
    let m = manager(1, 1, 4, Duration::from_millis(100));
    let r = m
        .run("a", "t", tokio::time::sleep(Duration::from_secs(10)))
        .await;
    assert_eq!(r, Err(RequestError::Timeout(Duration::from_millis(100))));
    assert_eq!(m.stats().timeouts, 1);
    assert_eq!(m.load(), (0, 0));
}

#[tokio::test]
async fn a_full_queue_answers_busy_at_once() {
    let m = manager(1, 1, 1, Duration::from_secs(5));
    let hold = {
        let m = Arc::clone(&m);
        tokio::spawn(async move {
            m.run("a", "t", tokio::time::sleep(Duration::from_millis(300)))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let queued = {
        let m = Arc::clone(&m);
        tokio::spawn(async move { m.run("b", "t", async {}).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let refused = m.run("c", "t", async {}).await;
    assert_eq!(
        refused,
        Err(RequestError::Busy {
            running: 1,
            queued: 1
        })
    );
    assert!(refused.unwrap_err().to_string().starts_with("server busy"));
    assert!(hold.await.expect("join").is_ok());
    assert!(queued.await.expect("join").is_ok());
    assert_eq!(m.stats().busy, 1);
}

#[tokio::test]
async fn dropping_a_call_frees_its_slot() {
    let m = manager(1, 1, 4, Duration::from_secs(5));
    let first = {
        let m = Arc::clone(&m);
        tokio::spawn(async move { m.run("a", "t", std::future::pending::<()>()).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    first.abort();
    let _ = first.await;
    let r = tokio::time::timeout(Duration::from_secs(1), m.run("b", "t", async { 5 })).await;
    assert_eq!(r.expect("not stuck"), Ok(5));
    assert_eq!(m.stats().cancelled, 1);
}

/// The order calls ran in when `busy` queued nine calls behind its
/// first (which holds the only slot) and then `quiet` queued one; each
/// is (client, party).
async fn run_order(
    busy: (&'static str, &'static str),
    quiet: (&'static str, &'static str),
) -> Vec<String> {
    let m = manager(1, 1, 64, Duration::from_secs(10));
    let order = Arc::new(Mutex::new(Vec::new()));
    let (open, gate) = oneshot::channel::<()>();
    let mut tasks = Vec::new();
    {
        let (m, order) = (Arc::clone(&m), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            m.run_as(busy.0, busy.1, "t", async move {
                let _ = gate.await;
                order.lock().push("busy0".to_owned());
            })
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    for i in 1..10 {
        let (m, order) = (Arc::clone(&m), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            m.run_as(busy.0, busy.1, "t", async move {
                order.lock().push(format!("busy{i}"))
            })
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    {
        let (m, order) = (Arc::clone(&m), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            m.run_as(quiet.0, quiet.1, "t", async move {
                order.lock().push("quiet".into())
            })
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(m.load(), (1, 10));
    open.send(()).expect("open the gate");
    for t in tasks {
        assert!(t.await.expect("join").is_ok());
    }
    let order = order.lock().clone();
    assert_eq!(order.len(), 11);
    order
}

#[tokio::test]
async fn a_quiet_client_is_not_starved_by_a_busy_one() {
    // Turns alternate between clients: the quiet call runs second, not
    // after the busy client's nine queued calls.
    let order = run_order(("busy", "s1"), ("quiet", "s2")).await;
    let quiet_at = order.iter().position(|s| s == "quiet").expect("ran");
    assert!(quiet_at <= 2, "the quiet client waited: {order:?}");
    // Within one client (keyless clients of one address), turns go by
    // party: a second session's one call does not wait behind the nine.
    let order = run_order(("addr:127.0.0.1", "s1"), ("addr:127.0.0.1", "s2")).await;
    let quiet_at = order.iter().position(|s| s == "quiet").expect("ran");
    assert!(quiet_at <= 2, "the quiet party waited: {order:?}");
    // One party alone keeps its own order.
    let order = run_order(("c", "s1"), ("c", "s1")).await;
    assert_eq!(order.last().map(String::as_str), Some("quiet"), "{order:?}");
}

#[tokio::test]
async fn one_client_cannot_fill_the_queue() {
    let m = RequestManager::new(RequestsConfig {
        timeout: Duration::from_secs(10),
        max_concurrent: 1,
        max_per_client: 1,
        max_queue: 8,
        max_queue_per_client: 3,
    });
    let (open, holder) = holding(&m, "busy", "t").await;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let m = Arc::clone(&m);
        waiting.push(tokio::spawn(
            async move { m.run("busy", "t", async {}).await },
        ));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    let refused = m.run("busy", "t", async {}).await;
    assert!(
        matches!(refused, Err(RequestError::Busy { .. })),
        "{refused:?}"
    );
    // Another client still has room in the queue.
    let other = {
        let m = Arc::clone(&m);
        tokio::spawn(async move { m.run("other", "t", async {}).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(m.load(), (1, 4));
    open.send(()).expect("open");
    assert!(holder.await.expect("join").is_ok());
    for w in waiting {
        assert!(w.await.expect("join").is_ok());
    }
    assert!(other.await.expect("join").is_ok());
}

#[tokio::test]
async fn a_full_queue_makes_room_for_a_client_with_fewer_calls_waiting() {
    let m = manager(1, 1, 4, Duration::from_secs(5));
    let (release, running) = holding(&m, "a", "t").await;
    // Client a fills the queue.
    let mut waiting = Vec::new();
    for _ in 0..4 {
        let m = Arc::clone(&m);
        waiting.push(tokio::spawn(
            async move { m.run("a", "t", async { "a" }).await },
        ));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(m.load(), (1, 4));
    // Client b is queued in place of a's newest call, which is refused.
    let b = {
        let m = Arc::clone(&m);
        tokio::spawn(async move { m.run("b", "t", async { "b" }).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(m.load(), (1, 4));
    let newest = waiting.pop().expect("a call").await.expect("join");
    assert!(
        matches!(newest, Err(RequestError::Busy { .. })),
        "{newest:?}"
    );
    // So are c and d, each in place of a's newest; then every client has
    // one call waiting, and e is refused.
    let mut others = vec![b];
    for name in ["c", "d"] {
        let m = Arc::clone(&m);
        others.push(tokio::spawn(async move {
            m.run(name, "t", async move { name }).await
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let newest = waiting.pop().expect("a call").await.expect("join");
        assert!(
            matches!(newest, Err(RequestError::Busy { .. })),
            "{newest:?}"
        );
    }
    assert_eq!(m.load(), (1, 4));
    let e = m.run("e", "t", async { "e" }).await;
    assert!(matches!(e, Err(RequestError::Busy { .. })), "{e:?}");
    release.send(()).expect("release");
    assert!(running.await.expect("join").is_ok());
    for (other, name) in others.into_iter().zip(["b", "c", "d"]) {
        assert_eq!(other.await.expect("join"), Ok(name));
    }
    for w in waiting {
        assert_eq!(w.await.expect("join"), Ok("a"));
    }
    assert_eq!(m.load(), (0, 0));
}

#[tokio::test]
async fn turns_rotate_over_clients_before_their_parties() {
    let m = manager(1, 1, 64, Duration::from_secs(5));
    let (release, holder) = holding(&m, "h", "t").await;
    // Client a waits with two calls on each of four parties; b with four on one.
    let started = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut calls = Vec::new();
    let mut call = |client: &'static str, party: &'static str| {
        let (m, started) = (Arc::clone(&m), Arc::clone(&started));
        calls.push(tokio::spawn(async move {
            m.run_as(
                client,
                party,
                "t",
                async move { started.lock().push(client) },
            )
            .await
        }));
    };
    for party in ["a1", "a2", "a3", "a4", "a1", "a2", "a3", "a4"] {
        call("a", party);
    }
    for _ in 0..4 {
        call("b", "b1");
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(m.load(), (1, 12));
    release.send(()).expect("release");
    assert!(holder.await.expect("join").is_ok());
    for c in calls {
        assert!(c.await.expect("join").is_ok());
    }
    // b's one party had as many turns as a's four together.
    let order = started.lock().clone();
    assert_eq!(
        order[..8],
        ["a", "b", "a", "b", "a", "b", "a", "b"],
        "{order:?}"
    );
    assert_eq!(m.load(), (0, 0));
}
