//! Work of milliseconds (copying, encoding or freeing megabytes) moved off
//! the async workers onto threads of its own that yield the CPU to them.
//!
//! Those threads run at Linux's idle scheduling class: a thread of the
//! normal class that wakes while one runs (an async worker with a
//! neighbour's small request) preempts it at once. One woken onto the same
//! idle CPU at the same moment may still find the heavy thread picked
//! first; the [`checkpoint`]s in heavy work bound that wait. At nice 10 in
//! the normal class, the
//! kernel's scheduler (EEVDF) let a running heavy thread finish its slice
//! first, and a woken worker waited up to 3 ms behind it (seen with `perf
//! sched timehist` during the hostile-client tests). Idle-class work would
//! starve on a machine whose CPUs other work keeps busy, so a watchdog
//! thread raises a job that gets less than a fifth of a CPU over
//! [`STARVING_AFTER`] to the normal class until it ends: large answers slow
//! down on a saturated host but always come. A process that may not leave
//! the idle class again (no `CAP_SYS_NICE` and a `RLIMIT_NICE` under 20,
//! as most unprivileged ones) keeps them at nice 10 instead.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use thread_priority::{
    NormalThreadSchedulePolicy, ThreadId, ThreadPriority, ThreadSchedulePolicy,
    set_thread_priority_and_policy, thread_native_id,
};

/// The most heavy-work threads. Default: 4 (fewer on a machine with fewer
/// cores: one per core).
const MAX_THREADS: usize = 4;

/// How long the watchdog looks at a job's CPU time before it judges it
/// starving (less than a fifth of that time on a CPU). Default: 100 ms.
const STARVING_AFTER: Duration = Duration::from_millis(100);

/// A job for the heavy-work threads.
type Job = Box<dyn FnOnce() + Send>;

/// How long a heavy-work thread runs between the turns it gives at its
/// [`checkpoint`]s: 100 µs.
const TURN: Duration = Duration::from_micros(100);

thread_local! {
    /// On a heavy-work thread, when it last gave a turn (`None` elsewhere).
    static LAST_TURN: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// A point between the pieces of heavy work (a long string escaped, a
/// large value written) where a heavy-work thread that ran for [`TURN`]
/// since its last turn gives the CPU to any thread waiting for it (one
/// `sched_yield`). Elsewhere it does nothing.
///
/// The idle class alone does not keep the async workers from waiting:
/// when a worker and a heavy-work thread are woken onto the same idle CPU
/// at once, the kernel (EEVDF) may pick the heavy one first, and then
/// nothing makes it look again until the heavy one sleeps or the next
/// tick (4 ms on a 250 Hz kernel): a worker waited up to 900 µs so in the
/// hostile-client tests (`scripts/wake_latency.sh`). By EEVDF's rules the
/// worker, having used more than its share of the CPU lately, is not yet
/// eligible; a few microseconds of an idle-class thread's running make it
/// so, and a yield is a moment the kernel picks again. Returns
/// whether a turn was given.
pub(crate) fn checkpoint() -> bool {
    LAST_TURN.with(|last| {
        let Some(since) = last.get() else {
            return false;
        };
        if since.elapsed() < TURN {
            return false;
        }
        std::thread::yield_now();
        last.set(Some(Instant::now()));
        true
    })
}

/// Runs `work` on a heavy-work thread; `None` if it panicked.
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
    if let Err(mpsc::SendError(job)) = pool().jobs.send(job) {
        // No heavy-work thread could be started: the runtime's blocking pool.
        tokio::task::spawn_blocking(job);
    }
    result.await.ok().flatten()
}

/// The heavy-work threads: where jobs go.
struct Pool {
    jobs: mpsc::Sender<Job>,
}

/// What each heavy-work thread runs, shared with the watchdog.
#[derive(Default)]
struct Running {
    slots: Mutex<Vec<Slot>>,
    /// Woken when a job starts.
    started: Condvar,
}

/// One heavy-work thread as the watchdog sees it.
struct Slot {
    native: ThreadId,
    /// Its Linux thread id, for its CPU time in `/proc`.
    tid: Option<u32>,
    /// The running job: when the watchdog last looked, and the thread's CPU
    /// time then (in clock ticks).
    job: Option<(Instant, Option<u64>)>,
    /// Raised to the normal class for the job it runs.
    raised: bool,
}

/// Bytes of heavy work between two [`checkpoint`]s: by [`WithTurns`], the
/// string escaping and the text tables. 64 KiB (a few microseconds).
pub(crate) const TURN_BYTES: usize = 64 * 1024;

/// A writer appending to a `Vec` that reaches a [`checkpoint`] after every
/// [`TURN_BYTES`] written: for serializers (serde_json's) whose loops are
/// not ours.
pub(crate) struct WithTurns<'a> {
    out: &'a mut Vec<u8>,
    /// The length at the last checkpoint.
    mark: usize,
}

impl<'a> WithTurns<'a> {
    /// Appends to `out`.
    pub(crate) fn new(out: &'a mut Vec<u8>) -> WithTurns<'a> {
        let mark = out.len();
        WithTurns { out, mark }
    }
}

impl std::io::Write for WithTurns<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.extend_from_slice(buf);
        if self.out.len() - self.mark >= TURN_BYTES {
            let _ = checkpoint();
            self.mark = self.out.len();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts the threads and the watchdog on first use.
fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let running = Arc::new(Running::default());
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_THREADS);
        for i in 0..threads {
            let (receiver, running) = (Arc::clone(&receiver), Arc::clone(&running));
            // A thread that cannot be started leaves the others (if none
            // starts, sending fails and jobs use the blocking pool).
            let _ = std::thread::Builder::new()
                .name(format!("mcp-heavy-{i}"))
                .spawn(move || heavy_thread(&receiver, &running));
        }
        if cfg!(target_os = "linux") {
            let watched = Arc::clone(&running);
            // Without it, idle-class jobs may wait for a busy machine.
            let _ = std::thread::Builder::new()
                .name("mcp-heavy-watch".into())
                .spawn(move || watchdog(&watched));
        }
        Pool { jobs }
    })
}

/// A heavy-work thread: moves to the idle class, then runs jobs until the
/// process ends, back at the idle class after any job it was raised for.
fn heavy_thread(receiver: &Mutex<mpsc::Receiver<Job>>, running: &Running) {
    // Only where a thread may leave the idle class again (the watchdog's
    // way out of starvation); elsewhere nice 10.
    let lowered = may_leave_idle_class() && to_idle_class();
    if !lowered {
        lower_nice();
    }
    let me = {
        let mut slots = running.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.push(Slot {
            native: thread_native_id(),
            tid: this_tid(),
            job: None,
            raised: false,
        });
        slots.len() - 1
    };
    loop {
        // Held only while waiting for the next job, not while running it.
        let next = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        if lowered {
            let mut slots = running.slots.lock().unwrap_or_else(|p| p.into_inner());
            let tid = slots[me].tid;
            slots[me].job = Some((Instant::now(), tid.and_then(cpu_ticks)));
            running.started.notify_one();
        }
        LAST_TURN.with(|last| last.set(Some(Instant::now())));
        job();
        if lowered {
            let mut slots = running.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots[me].job = None;
            slots[me].raised = false;
            // Back to the idle class whatever the watchdog's call said: a
            // raise the crate reports as failed may still have moved the
            // thread (it sets the class, then the caller's nice). One
            // system call when the class is already right.
            to_idle_class();
        }
    }
}

/// Raises jobs that starve at the idle class: every [`STARVING_AFTER`]
/// while a job runs (asleep while none does), a job whose thread got less
/// than a fifth of that time on a CPU moves to the normal class.
fn watchdog(running: &Running) {
    let mut slots = running.slots.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if slots.iter().all(|s| s.job.is_none() || s.raised) {
            slots = running
                .started
                .wait(slots)
                .unwrap_or_else(|p| p.into_inner());
            continue;
        }
        slots = running
            .started
            .wait_timeout(slots, STARVING_AFTER)
            .map(|(slots, _)| slots)
            .unwrap_or_else(|p| p.into_inner().0);
        let now = Instant::now();
        for slot in slots.iter_mut() {
            let Some((since, ticks)) = slot.job else {
                continue;
            };
            let waited = now.duration_since(since);
            if slot.raised || waited < STARVING_AFTER {
                continue;
            }
            let cpu_now = slot.tid.and_then(cpu_ticks);
            let used = match (ticks, cpu_now) {
                (Some(before), Some(after)) => Duration::from_millis(
                    after
                        .saturating_sub(before)
                        .saturating_mul(1000 / CLOCK_TICKS_PER_S),
                ),
                // CPU time unknown: judged by the wall clock alone.
                _ => Duration::ZERO,
            };
            if used < waited / 5 {
                // The thread is inside a job and cannot leave it without
                // this lock, so its id still names it.
                slot.raised = raise_to_normal(slot.native);
            } else {
                slot.job = Some((now, cpu_now));
            }
        }
    }
}

/// The nice value the heavy-work threads run at where the idle class is
/// not used: 10 (a tenth of the CPU share of a nice-0 thread when they
/// compete).
const HEAVY_NICE: i32 = 10;

/// Moves the calling thread to nice [`HEAVY_NICE`] in the normal class,
/// unless it already runs lower (a host that set its own priorities).
fn lower_nice() {
    if !cfg!(target_os = "linux") || nice_of_this_thread().is_none_or(|n| n >= HEAVY_NICE) {
        return;
    }
    // The crate maps 0..=99 onto nice 19..=-20; 22 is nice 10.
    let Ok(value) = thread_priority::ThreadPriorityValue::try_from(22u8) else {
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

/// Whether a thread of this process may move from the idle class back to
/// the normal one at nice 0: Linux allows it with `CAP_SYS_NICE` or a
/// `RLIMIT_NICE` of at least 20, and most unprivileged processes have
/// neither (their limit is 0).
fn may_leave_idle_class() -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    has_sys_nice(&status) || nice_limit_allows_zero(&limits)
}

/// Whether the effective capabilities in a `/proc/<pid>/status` text hold
/// `CAP_SYS_NICE` (bit 23).
fn has_sys_nice(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 23) != 0)
}

/// Whether the soft "Max nice priority" in a `/proc/<pid>/limits` text is
/// at least 20 (a nice value of 0 allowed).
fn nice_limit_allows_zero(limits: &str) -> bool {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max nice priority"))
        .and_then(|rest| rest.split_whitespace().next())
        .is_some_and(|soft| soft == "unlimited" || soft.parse::<u64>().is_ok_and(|n| n >= 20))
}

/// Linux's clock ticks per second for `/proc` CPU times (`USER_HZ`, 100 on
/// every architecture Linux supports today).
const CLOCK_TICKS_PER_S: u64 = 100;

/// Moves the calling thread to the idle class, unless it is there already;
/// whether it now runs there.
fn to_idle_class() -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if thread_priority::thread_schedule_policy() == Ok(idle) {
        return true;
    }
    set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle).is_ok()
}

/// Moves another heavy-work thread to the normal class; whether it moved.
///
/// Only from the watchdog: the crate sets the policy of the thread named
/// and then the nice value of the calling thread (the watchdog's, which
/// only sleeps).
fn raise_to_normal(thread: ThreadId) -> bool {
    // 22 is nice 10 in the crate's scale: the watchdog's own, which only
    // lowers it (allowed to any user).
    let Ok(watchdog_nice) = thread_priority::ThreadPriorityValue::try_from(22u8) else {
        return false;
    };
    set_thread_priority_and_policy(
        thread,
        ThreadPriority::Crossplatform(watchdog_nice),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
    )
    .is_ok()
}

/// The calling thread's Linux id, from where `/proc/thread-self` points
/// (`<pid>/task/<tid>`).
fn this_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// A thread's CPU time so far (user and system), in clock ticks: the 12th
/// and 13th fields after the command name in `/proc/self/task/<tid>/stat`.
fn cpu_ticks(tid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// The calling thread's scheduling class and nice value, from
/// `/proc/thread-self/stat` (its 41st and 19th fields; the command name,
/// which may hold spaces, ends at the last `)`).
#[cfg(test)]
fn class_of_this_thread() -> Option<(u32, i32)> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let after_name: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some((
        after_name.get(38)?.parse().ok()?,
        after_name.get(16)?.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's number for the idle scheduling class.
    const SCHED_IDLE: u32 = 5;

    /// The busy-machine test keeps every core busy: the class test, whose
    /// job would then wait long enough to be raised, does not run beside it.
    static BUSY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_runs_at_the_idle_class_and_a_panic_costs_no_thread() {
        let _alone = BUSY.lock().await;
        let sent = Instant::now();
        let (class, waited) = off_worker(move || (class_of_this_thread(), sent.elapsed()))
            .await
            .expect("ran");
        if cfg!(target_os = "linux") && may_leave_idle_class() {
            // Raised to the normal class (0) only by the watchdog, and only
            // after the job waited that long (other work in this process
            // may keep the CPUs busy).
            if waited < STARVING_AFTER {
                assert_eq!(class.map(|c| c.0), Some(SCHED_IDLE), "waited {waited:?}");
            } else {
                assert!(
                    matches!(class.map(|c| c.0), Some(SCHED_IDLE | 0)),
                    "{class:?}"
                );
            }
        } else if cfg!(target_os = "linux") && nice_of_this_thread() == Some(0) {
            assert_eq!(class, Some((0, HEAVY_NICE)));
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
        let _alone = BUSY.lock().await;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        // Every core kept busy twice over by threads at the normal class,
        // all of them spinning before the work is handed over (else it may
        // end at the idle class before they start, as once beside a busy
        // test run).
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let spinners: Vec<_> = (0..2 * cores)
            .map(|_| {
                let (stop, started) = (Arc::clone(&stop), Arc::clone(&started));
                std::thread::spawn(move || {
                    started.fetch_add(1, Ordering::Relaxed);
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        while started.load(Ordering::Relaxed) < 2 * cores {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Some tens of milliseconds of work: at the idle class beside busy
        // threads it gets next to nothing (many seconds); the watchdog
        // raises it within a fraction of a second and it ends.
        let work = || {
            let sum = (0..10_000_000u64).fold(0u64, |a, i| std::hint::black_box(a ^ i));
            (sum, class_of_this_thread())
        };
        let done = tokio::time::timeout(Duration::from_secs(10), off_worker(work)).await;
        stop.store(true, Ordering::Relaxed);
        for spinner in spinners {
            let _ = spinner.join();
        }
        let (_, class) = done
            .expect("heavy work starved beside busy threads")
            .expect("ran");
        if cfg!(target_os = "linux") && may_leave_idle_class() {
            // It ended at the normal class (0), raised.
            assert_eq!(class.map(|c| c.0), Some(0));
            // And its thread went back to the idle class after the job.
            let classes = futures_util::future::join_all(
                (0..2 * MAX_THREADS).map(|_| off_worker(class_of_this_thread)),
            )
            .await;
            for class in classes {
                assert_eq!(class.flatten().map(|c| c.0), Some(SCHED_IDLE));
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heavy_work_gives_a_turn_at_checkpoints_every_hundred_microseconds() {
        let _alone = BUSY.lock().await;
        // The calling thread's CPU time (the first field of its
        // `schedstat`, in nanoseconds).
        fn cpu_time() -> Duration {
            let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
            let ns = stat.split_whitespace().next().and_then(|n| n.parse().ok());
            Duration::from_nanos(ns.expect("CPU time"))
        }
        // 3 ms of the thread's own CPU time, the wall clock read just
        // before and just after every checkpoint.
        let spin = || {
            let (started, wall) = (cpu_time(), Instant::now());
            let mut calls = Vec::with_capacity(4096);
            while cpu_time() - started < Duration::from_millis(3) {
                let before = Instant::now();
                let turned = checkpoint();
                calls.push((before, turned, Instant::now()));
            }
            (wall, calls)
        };
        let (wall, calls) = off_worker(spin).await.expect("ran");
        // The rule, checked from those readings alone, so a busy machine
        // that keeps the thread waiting cannot fail it: a call turns when
        // 100 µs passed since the last turn (the job's start at first),
        // and only then. Every call that did not turn began less than
        // 100 µs after the previous turn ended; every turn ended at least
        // 100 µs after the previous turn began.
        let (mut last_began, mut last_ended, mut turns) = (None, wall, 0u32);
        for &(before, turned, after) in &calls {
            if turned {
                if let Some(began) = last_began {
                    assert!(after - began >= TURN, "two turns within {TURN:?}");
                }
                (last_began, last_ended, turns) = (Some(before), after, turns + 1);
            } else {
                assert!(
                    before.saturating_duration_since(last_ended) < TURN,
                    "no turn {:?} after the last",
                    before - last_ended
                );
            }
        }
        // 3 ms of CPU time spans at least that much of the wall clock,
        // so some call came 100 µs after the start and turned.
        assert!(turns >= 1, "no turn in {:?}", wall.elapsed());
        // Anywhere else checkpoints do nothing.
        assert!(spin().1.iter().all(|call| !call.1));
        let blocking = tokio::task::spawn_blocking(spin).await.expect("ran");
        assert!(blocking.1.iter().all(|call| !call.1));
    }

    #[test]
    fn the_permission_to_leave_the_idle_class_is_read_from_proc() {
        let caps = |hex: &str| format!("Name:\tx\nCapInh:\t0\nCapEff:\t{hex}\n");
        assert!(has_sys_nice(&caps("000001ffffffffff")));
        assert!(has_sys_nice(&caps("0000000000800000")));
        assert!(!has_sys_nice(&caps("0000000000000000")));
        assert!(!has_sys_nice(&caps("00000000007fffff")));
        assert!(!has_sys_nice("Name:\tx\n"));
        let limit = |soft: &str| {
            format!(
                "Limit                     Soft Limit           Hard Limit           Units\n\
                 Max nice priority         {soft:<20} {soft:<20}\n"
            )
        };
        assert!(!nice_limit_allows_zero(&limit("0")));
        assert!(!nice_limit_allows_zero(&limit("19")));
        assert!(nice_limit_allows_zero(&limit("20")));
        assert!(nice_limit_allows_zero(&limit("40")));
        assert!(nice_limit_allows_zero(&limit("unlimited")));
        assert!(!nice_limit_allows_zero(""));
    }

    #[test]
    fn the_class_and_cpu_time_are_read_from_proc() {
        if cfg!(target_os = "linux") {
            assert!(class_of_this_thread().is_some());
            let tid = this_tid().expect("tid");
            assert!(cpu_ticks(tid).is_some());
        }
    }
}
