//! Work of milliseconds (copying, encoding or freeing megabytes) moved off
//! the async workers onto a blocking thread that yields the CPU to them.

use std::cell::Cell;

use thread_priority::{
    NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
    set_thread_priority_and_policy, thread_native_id, thread_schedule_policy,
};

/// Runs `work` on a blocking thread; `None` if it panicked.
///
/// On Linux the thread runs at the idle scheduling class (`SCHED_IDLE`)
/// meanwhile, then goes back to the normal class: any other runnable
/// thread (an async worker with a small request, a warehouse thread)
/// preempts it at once, so one client's large answer costs the others
/// throughput, not latency. Threads that are not in the normal class at
/// nice 0 (a host that set its own priorities) are left alone.
pub(crate) async fn off_worker<T, F>(work: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let _idle = IdleClass::enter();
        work()
    })
    .await
    .ok()
}

thread_local! {
    /// Whether this thread may be moved to the idle class and back:
    /// normal class at nice 0. Read once per thread.
    static MAY_IDLE: Cell<Option<bool>> = const { Cell::new(None) };
}

/// The calling thread at the idle scheduling class until dropped.
struct IdleClass {
    entered: bool,
}

impl IdleClass {
    fn enter() -> IdleClass {
        let may = MAY_IDLE.with(|may| match may.get() {
            Some(known) => known,
            None => {
                let known = cfg!(target_os = "linux")
                    && matches!(
                        thread_schedule_policy(),
                        Ok(ThreadSchedulePolicy::Normal(
                            NormalThreadSchedulePolicy::Other
                        ))
                    )
                    && nice_of_this_thread() == Some(0);
                may.set(Some(known));
                known
            }
        });
        let entered = may && set_class(NormalThreadSchedulePolicy::Idle);
        IdleClass { entered }
    }
}

impl Drop for IdleClass {
    fn drop(&mut self) {
        if self.entered && !set_class(NormalThreadSchedulePolicy::Other) {
            // Could not go back (not expected: a nice-0 thread may always
            // return to the normal class): never try this thread again.
            MAY_IDLE.with(|may| may.set(Some(false)));
        }
    }
}

/// Moves the calling thread to `policy` at nice 0 (its nice already).
fn set_class(policy: NormalThreadSchedulePolicy) -> bool {
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Os(Default::default()),
        ThreadSchedulePolicy::Normal(policy),
    )
    .is_ok()
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
    async fn work_runs_at_the_idle_class_and_the_thread_comes_back() {
        let during = off_worker(|| (thread_schedule_policy().ok(), thread_native_id()))
            .await
            .expect("ran");
        if cfg!(target_os = "linux") {
            assert_eq!(
                during.0,
                Some(ThreadSchedulePolicy::Normal(
                    NormalThreadSchedulePolicy::Idle
                ))
            );
        }
        // The same blocking thread, reused for the next job, is normal again.
        let after =
            tokio::task::spawn_blocking(|| (thread_schedule_policy().ok(), thread_native_id()))
                .await
                .expect("ran");
        if after.1 == during.1 {
            assert_eq!(
                after.0,
                Some(ThreadSchedulePolicy::Normal(
                    NormalThreadSchedulePolicy::Other
                ))
            );
        }
        assert_eq!(off_worker(|| panic!("boom")).await, None::<()>);
    }

    #[test]
    fn the_nice_value_is_read_from_proc() {
        if cfg!(target_os = "linux") {
            assert!(nice_of_this_thread().is_some());
        }
    }
}
