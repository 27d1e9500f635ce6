//! Work of milliseconds (copying, encoding or freeing megabytes) moved off
//! the async workers onto threads of its own that yield the CPU to them.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use thread_priority::{
    NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    set_thread_priority_and_policy, thread_native_id,
};

/// The nice value the heavy-work threads run at. Default: 10 (a tenth of
/// the CPU share of a nice-0 thread when they compete).
const HEAVY_NICE: i32 = 10;

/// The most heavy-work threads. Default: 4 (fewer on a machine with fewer
/// cores: one per core).
const MAX_THREADS: usize = 4;

/// A job for the heavy-work threads.
type Job = Box<dyn FnOnce() + Send>;

/// Runs `work` on a heavy-work thread; `None` if it panicked.
///
/// Those threads run at a lower priority (nice [`HEAVY_NICE`] on Linux,
/// set once when each starts, or left where the host's threads are if
/// that is lower): any runnable thread at the normal priority (an async
/// worker with a small request, a warehouse thread) mostly preempts them,
/// so one client's large answer costs the others throughput more than
/// latency; and unlike the idle scheduling class they still get a share
/// of a CPU that other work keeps busy, so a large answer is slowed, never
/// starved, on a saturated host.
pub(crate) async fn off_worker<T, F>(work: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = done.send(outcome.ok());
    });
    if let Err(mpsc::SendError(job)) = jobs().send(job) {
        // No heavy-work thread could be started: the runtime's blocking pool.
        tokio::task::spawn_blocking(job);
    }
    result.await.ok().flatten()
}

/// Where jobs go, starting the threads on first use.
fn jobs() -> &'static mpsc::Sender<Job> {
    static JOBS: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    JOBS.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_THREADS);
        for i in 0..threads {
            let receiver = Arc::clone(&receiver);
            // A thread that cannot be started leaves the others (if none
            // starts, sending fails and jobs use the blocking pool).
            let _ = std::thread::Builder::new()
                .name(format!("mcp-heavy-{i}"))
                .spawn(move || heavy_thread(&receiver));
        }
        sender
    })
}

/// A heavy-work thread: lowers its priority, then runs jobs until the
/// process ends.
fn heavy_thread(receiver: &Mutex<mpsc::Receiver<Job>>) {
    lower_priority();
    loop {
        // Held only while waiting for the next job, not while running it.
        let next = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match next {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Moves the calling thread to nice [`HEAVY_NICE`] in the normal class,
/// unless it already runs lower (a host that set its own priorities).
fn lower_priority() {
    if !cfg!(target_os = "linux") || nice_of_this_thread().is_none_or(|n| n >= HEAVY_NICE) {
        return;
    }
    // The crate maps 0..=99 onto nice 19..=-20; 22 is nice 10.
    let Ok(value) = ThreadPriorityValue::try_from(22u8) else {
        return;
    };
    let _ = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
    );
}

/// The calling thread's nice value, from `/proc/thread-self/stat` (its
/// 19th field; the command name, which may hold spaces, ends at the last
/// `)`).
fn nice_of_this_thread() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(16)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_runs_at_a_lower_priority_and_a_panic_costs_no_thread() {
        let nice = off_worker(nice_of_this_thread).await.expect("ran");
        if cfg!(target_os = "linux") && nice_of_this_thread() == Some(0) {
            assert_eq!(nice, Some(HEAVY_NICE));
        }
        for _ in 0..2 * MAX_THREADS {
            assert_eq!(off_worker(|| panic!("boom")).await, None::<()>);
        }
        // Every thread survived its panic: jobs still run, several at once.
        let all = futures_util::future::join_all((0..8).map(|i| off_worker(move || i * 2))).await;
        assert_eq!(all, (0..8).map(|i| Some(i * 2)).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_busy_machine_slows_heavy_work_but_never_starves_it() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Duration;
        // Every core kept busy twice over by threads at the normal priority.
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let spinners: Vec<_> = (0..2 * cores)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        // Some milliseconds of work: at a lower priority it gets a share of
        // a core (done in well under a second); at the idle class it got
        // next to none (many seconds).
        let work = || (0..5_000_000u64).fold(0u64, |a, i| std::hint::black_box(a ^ i));
        let done = tokio::time::timeout(Duration::from_secs(5), off_worker(work)).await;
        stop.store(true, Ordering::Relaxed);
        for spinner in spinners {
            let _ = spinner.join();
        }
        assert!(
            matches!(done, Ok(Some(_))),
            "heavy work starved beside busy threads"
        );
    }

    #[test]
    fn the_nice_value_is_read_from_proc() {
        if cfg!(target_os = "linux") {
            assert!(nice_of_this_thread().is_some());
        }
    }
}
