//! Upkeep in the background: the reaper (sessions too old or idle too
//! long, waiters past their deadline) and the health pass over idle sessions.

use super::*;

/// The background task: fails overdue waiters every [`REAPER_TICK`], runs a
/// health pass every `health_interval`, until the pool is dropped.
pub(super) async fn maintain<M: Manager>(shared: Weak<Shared<M>>) {
    let mut next_pass = Instant::now();
    loop {
        {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if shared.lock().closed {
                return;
            }
            reap(&shared);
            if Instant::now() >= next_pass {
                health_pass(&shared).await;
                next_pass = Instant::now() + shared.config.health_interval;
            }
        }
        tokio::time::sleep(REAPER_TICK).await;
    }
}

/// Fails the waiters whose deadline passed (and forgets ones that left).
pub(super) fn reap<M: Manager>(shared: &Shared<M>) {
    let now = Instant::now();
    let mut state = shared.lock();
    if state.waiters.is_empty() {
        return;
    }
    let waiters = std::mem::take(&mut state.waiters);
    for w in waiters {
        if w.tx.is_closed() {
            continue;
        }
        if w.deadline <= now {
            let _ = w.tx.send(Grant::Timeout);
        } else {
            state.waiters.push_back(w);
        }
    }
}

/// Checks every idle session, drops the broken, too old and long-unused
/// ones (keeping `min_idle`), and opens sessions up to `min_idle`.
pub(super) async fn health_pass<M: Manager>(shared: &Arc<Shared<M>>) {
    let pass = shared.pass.fetch_add(1, Ordering::Relaxed) + 1;
    let idle_passes = shared.passes(shared.config.idle_timeout);
    // Take the idle sessions out (their slots count as out) so no caller
    // gets one mid-check; each goes back through the normal return.
    let taken: Vec<Idle<M::Session>> = {
        let mut state = shared.lock();
        let taken = std::mem::take(&mut state.idle);
        state.out += taken.len();
        shared.publish(&state);
        taken
    };
    let count = taken.len();
    tracing::debug!(idle = count, "pool: health pass");
    let mut kept = 0usize;
    // Least recently used first.
    let mut taken = taken;
    taken.sort_by_key(|i| i.used_pass);
    for (i, mut idle) in taken.into_iter().enumerate() {
        let left_after = count - i - 1;
        let unused = pass.saturating_sub(idle.used_pass) > idle_passes
            && kept + left_after >= shared.config.min_idle;
        if shared.too_old(idle.created_pass, pass) || unused {
            drop(idle);
            shared.free_slot();
            continue;
        }
        // Bounded: a stalled warehouse must not stall the upkeep (the
        // reaper included) with it.
        let limit = shared.config.acquire_timeout;
        match tokio::time::timeout(limit, shared.manager.check(&mut idle.session)).await {
            Ok(Ok(())) => {
                shared.counters.healthy.store(true, Ordering::Relaxed);
                kept += 1;
                shared.give_back(idle);
            }
            Ok(Err(_)) | Err(_) => {
                shared.counters.healthy.store(false, Ordering::Relaxed);
                shared.counters.broken.fetch_add(1, Ordering::Relaxed);
                drop(idle);
                shared.free_slot();
            }
        }
    }
    // Top up to min_idle, within max_size.
    loop {
        {
            let mut state = shared.lock();
            let room = state.idle.len() + state.out < shared.config.max_size;
            if state.closed || state.idle.len() >= shared.config.min_idle || !room {
                break;
            }
            state.out += 1;
            shared.publish(&state);
        }
        match tokio::time::timeout(shared.config.acquire_timeout, shared.manager.create()).await {
            Ok(Ok(session)) => {
                shared.counters.created.fetch_add(1, Ordering::Relaxed);
                shared.counters.healthy.store(true, Ordering::Relaxed);
                shared.give_back(Idle {
                    session,
                    created_pass: pass,
                    used_pass: pass,
                });
            }
            Ok(Err(_)) | Err(_) => {
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                shared.counters.healthy.store(false, Ordering::Relaxed);
                shared.free_slot();
                break;
            }
        }
    }
}
