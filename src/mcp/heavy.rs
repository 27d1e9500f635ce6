//! CPU-heavy work (checking long statements, shaping and encoding large
//! results) run on blocking threads, at most one job at a time per
//! principal, so one client's heavy calls take at most one core however
//! many it sends, and the async workers stay free for everyone's small calls.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;

/// The gate's key for work of a session whose transport named no principal.
pub(crate) const UNKNOWN_PRINCIPAL: &str = "unknown";

/// Principals tracked before idle gates are swept out. Default: 1 024.
const SWEEP_AT: usize = 1024;

/// One gate per principal. A std mutex: held to find or make a gate, never
/// across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct HeavyGate {
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl HeavyGate {
    /// Runs `work` on a blocking thread once `principal` has no other heavy
    /// job running; `None` if the work panicked.
    pub(crate) async fn run<T, F>(&self, principal: &str, work: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let gate = {
            let mut gates = self.gates.lock();
            if gates.len() >= SWEEP_AT {
                // A gate nobody holds or waits on carries no state.
                gates.retain(|_, g| Arc::strong_count(g) > 1);
            }
            Arc::clone(
                gates
                    .entry(principal.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(1))),
            )
        };
        // The gate is never closed: acquiring only waits.
        let _turn = gate.acquire().await.ok()?;
        crate::util::offload::off_worker(work).await
    }
}

/// One principal's turn at the [`HeavyGate`], carried by what outlives the
/// dispatch that made it (a call's answer, its SSE stream, a batch): the
/// copies and framing of its large answers wait for the same turn as its
/// other heavy work.
#[derive(Debug, Clone)]
pub(crate) struct HeavyLane {
    gate: Arc<HeavyGate>,
    principal: Arc<str>,
}

impl HeavyLane {
    /// `principal`'s lane at `gate`.
    pub(crate) fn new(gate: &Arc<HeavyGate>, principal: &str) -> HeavyLane {
        HeavyLane {
            gate: Arc::clone(gate),
            principal: principal.into(),
        }
    }

    /// [`HeavyGate::run`] for this lane's principal.
    pub(crate) async fn run<T, F>(&self, work: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.gate.run(&self.principal, work).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_heavy_job_at_a_time_per_principal() {
        let gate = Arc::new(HeavyGate::default());
        // Per principal: jobs running now, and the most seen at once.
        let counts: Arc<[(AtomicUsize, AtomicUsize); 2]> = Arc::new(Default::default());
        let mut jobs = Vec::new();
        for i in 0..8 {
            let (gate, counts) = (Arc::clone(&gate), Arc::clone(&counts));
            let who = i % 2;
            jobs.push(tokio::spawn(async move {
                let principal = ["key:a", "key:b"][who];
                gate.run(principal, move || {
                    let (running, most) = &counts[who];
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        for job in jobs {
            assert!(job.await.expect("join").is_some());
        }
        // Each principal ran its four jobs one at a time.
        assert_eq!(counts[0].1.load(Ordering::SeqCst), 1);
        assert_eq!(counts[1].1.load(Ordering::SeqCst), 1);
        // Two principals are not one gate: b's job runs while a's holds its turn.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let a = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { gate.run("key:a", move || held.recv().is_ok()).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let b = tokio::time::timeout(Duration::from_secs(5), gate.run("key:b", || 7)).await;
        assert_eq!(b, Ok(Some(7)), "b waited for a's turn");
        // A lane of a (what a call's answer or stream carries) waits for
        // a's turn too; b's lane does not.
        let a_lane = HeavyLane::new(&gate, "key:a");
        let waited = tokio::time::timeout(Duration::from_millis(100), a_lane.run(|| 1)).await;
        assert!(waited.is_err(), "a's lane ran during a's turn");
        let b_lane = HeavyLane::new(&gate, "key:b");
        assert_eq!(b_lane.run(|| 2).await, Some(2));
        release.send(()).expect("a still waits");
        assert_eq!(a.await.expect("join"), Some(true));
        assert_eq!(a_lane.run(|| 3).await, Some(3));
        assert_eq!(gate.run("key:c", || panic!("boom")).await, None::<()>);
    }
}
