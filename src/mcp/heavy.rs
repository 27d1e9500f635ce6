//! CPU-heavy work (checking long statements, shaping and encoding large
//! results) run on blocking threads, at most one job at a time per
//! principal, so one client's heavy calls take at most one core however
//! many it sends, and the async workers stay free for everyone's small calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;

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
            let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
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
        tokio::task::spawn_blocking(work).await.ok()
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
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut jobs = Vec::new();
        for i in 0..6 {
            let (gate, running, most) =
                (Arc::clone(&gate), Arc::clone(&running), Arc::clone(&most));
            let principal = if i < 4 { "key:a" } else { "key:b" };
            jobs.push(tokio::spawn(async move {
                gate.run(principal, move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    running.fetch_sub(1, Ordering::SeqCst);
                    principal
                })
                .await
            }));
        }
        for job in jobs {
            assert!(job.await.expect("join").is_some());
        }
        // Four of a's and two of b's: never more than one of each at once.
        assert!(
            most.load(Ordering::SeqCst) <= 2,
            "{}",
            most.load(Ordering::SeqCst)
        );
        assert_eq!(gate.run("key:c", || panic!("boom")).await, None::<()>);
    }
}
