//! A lock-light pool of warehouse sessions, generic over a [`Manager`].
//!
//! Checkout is a semaphore permit (the bound on sessions) and a pop from a
//! short std-mutex-guarded stack of idle sessions (most recently used
//! first, so warm sessions stay warm); return is a push. No lock is ever
//! held across an `.await`: sessions are created, checked and dropped
//! outside it. Sessions are not checked on every checkout (that is what
//! makes a checkout cheap); a background task pings idle ones every
//! `health_interval`, replaces the broken, retires those past their
//! lifetime or idle timeout, and keeps `min_idle` ready. A session the
//! caller marks broken ([`Pooled::mark_broken`]) is dropped on return, never
//! handed out again. Counters are atomics; [`Pool::stats`] reads them
//! without blocking anything.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A boxed future, for the [`Manager`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Creates and checks sessions of one kind.
pub trait Manager: Send + Sync + 'static {
    /// A session (a connection, a login).
    type Session: Send + 'static;
    /// Why creating or checking failed.
    type Error: std::fmt::Display + Send + 'static;

    /// Opens a new session.
    fn create(&self) -> BoxFuture<'_, Result<Self::Session, Self::Error>>;

    /// Checks that an idle session still works (`SELECT 1`, say).
    fn check<'a>(
        &'a self,
        session: &'a mut Self::Session,
    ) -> BoxFuture<'a, Result<(), Self::Error>>;
}

/// Default most sessions at once: 8.
pub const DEFAULT_MAX_SIZE: usize = 8;
/// Default sessions kept ready: 1.
pub const DEFAULT_MIN_IDLE: usize = 1;
/// Default wait for a session before giving up: 30 s.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default session lifetime: 1 hour (Snowflake sessions expire after 4 hours idle).
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// Default idle time after which a session beyond `min_idle` is closed: 10 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Default interval of the background health check: 30 s.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);

/// Pool settings.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Most sessions at once. Default: [`DEFAULT_MAX_SIZE`].
    pub max_size: usize,
    /// Sessions kept ready. Default: [`DEFAULT_MIN_IDLE`].
    pub min_idle: usize,
    /// How long `get` waits. Default: [`DEFAULT_ACQUIRE_TIMEOUT`].
    pub acquire_timeout: Duration,
    /// Sessions older than this are closed. Default: [`DEFAULT_MAX_LIFETIME`].
    pub max_lifetime: Duration,
    /// Idle sessions beyond `min_idle` unused this long are closed. Default: [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// How often idle sessions are checked. Default: [`DEFAULT_HEALTH_INTERVAL`].
    pub health_interval: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_size: DEFAULT_MAX_SIZE,
            min_idle: DEFAULT_MIN_IDLE,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            health_interval: DEFAULT_HEALTH_INTERVAL,
        }
    }
}

/// Why a session could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every session stayed busy for the whole acquire timeout.
    #[error("all {max_size} warehouse sessions busy for {}s", waited.as_secs_f64().round())]
    Timeout {
        /// The pool's size.
        max_size: usize,
        /// How long the caller waited.
        waited: Duration,
    },
    /// Opening a new session failed.
    #[error("could not open a warehouse session: {0}")]
    Create(String),
    /// The pool was closed.
    #[error("the session pool is closed")]
    Closed,
}

/// Counters, each a standalone tally (`Relaxed`: they order nothing else).
#[derive(Debug, Default)]
struct Counters {
    /// Sessions alive (idle or checked out).
    total: AtomicU64,
    /// Sessions checked out now.
    active: AtomicU64,
    /// Callers waiting for a permit.
    waiting: AtomicU64,
    created: AtomicU64,
    failed: AtomicU64,
    /// Sessions found broken (by a caller or the health check) and replaced.
    broken: AtomicU64,
    acquire_timeouts: AtomicU64,
    acquires: AtomicU64,
    /// Total time callers waited, in microseconds.
    wait_micros: AtomicU64,
    /// Whether the last health check (or creation) succeeded.
    healthy: AtomicBool,
}

/// The pool's counters at a moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// The configured maximum.
    pub max_size: u64,
    /// Sessions alive.
    pub total: u64,
    /// Sessions checked out.
    pub active: u64,
    /// Sessions idle in the pool.
    pub idle: u64,
    /// Whether the last check or creation worked.
    pub healthy: bool,
    /// Callers waiting for a session.
    pub waiting: u64,
    /// Sessions opened since start.
    pub created: u64,
    /// Failed attempts to open one.
    pub failed: u64,
    /// Sessions found broken and dropped.
    pub broken: u64,
    /// Callers that gave up after the acquire timeout.
    pub acquire_timeouts: u64,
    /// Successful checkouts.
    pub acquires: u64,
    /// Total wait for sessions.
    pub wait_time: Duration,
}

struct Idle<S> {
    session: S,
    created: Instant,
    last_used: Instant,
}

struct Shared<M: Manager> {
    manager: M,
    config: PoolConfig,
    /// Bounds sessions alive: one permit per session, idle or not.
    permits: Arc<Semaphore>,
    /// Idle sessions, most recently used at the back. A std mutex: held to
    /// push or pop, never across an `.await`.
    idle: Mutex<VecDeque<Idle<M::Session>>>,
    counters: Counters,
    closed: AtomicBool,
}

impl<M: Manager> Shared<M> {
    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle<M::Session>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn retire(&self, session: M::Session) {
        drop(session);
        self.counters.total.fetch_sub(1, Ordering::Relaxed);
    }

    fn expired(&self, created: Instant, now: Instant) -> bool {
        now.duration_since(created) >= self.config.max_lifetime
    }
}

/// The pool. Cheap to clone.
pub struct Pool<M: Manager> {
    shared: Arc<Shared<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Pool {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: Manager> std::fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("stats", &self.stats())
            .finish()
    }
}

impl<M: Manager> Pool<M> {
    /// A pool over `manager`; starts its health-check task (needs a tokio runtime).
    pub fn new(manager: M, config: PoolConfig) -> Pool<M> {
        let max = config.max_size.max(1);
        let shared = Arc::new(Shared {
            manager,
            config: PoolConfig {
                max_size: max,
                min_idle: config.min_idle.min(max),
                ..config
            },
            permits: Arc::new(Semaphore::new(max)),
            idle: Mutex::new(VecDeque::with_capacity(max)),
            counters: Counters::default(),
            closed: AtomicBool::new(false),
        });
        shared.counters.healthy.store(true, Ordering::Relaxed);
        tokio::spawn(maintain(Arc::downgrade(&shared)));
        Pool { shared }
    }

    /// A session, waiting up to the acquire timeout for one to be free.
    pub async fn get(&self) -> Result<Pooled<M>, PoolError> {
        let shared = &self.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(PoolError::Closed);
        }
        let started = Instant::now();
        let permit = match Arc::clone(&shared.permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                shared.counters.waiting.fetch_add(1, Ordering::Relaxed);
                let got = tokio::time::timeout(
                    shared.config.acquire_timeout,
                    Arc::clone(&shared.permits).acquire_owned(),
                )
                .await;
                shared.counters.waiting.fetch_sub(1, Ordering::Relaxed);
                let waited = started.elapsed();
                shared
                    .counters
                    .wait_micros
                    .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
                match got {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return Err(PoolError::Closed),
                    Err(_) => {
                        shared
                            .counters
                            .acquire_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                        return Err(PoolError::Timeout {
                            max_size: shared.config.max_size,
                            waited,
                        });
                    }
                }
            }
        };
        let now = Instant::now();
        loop {
            let idle = shared.idle().pop_back();
            let Some(idle) = idle else { break };
            if shared.expired(idle.created, now) {
                shared.retire(idle.session);
                continue;
            }
            shared.counters.active.fetch_add(1, Ordering::Relaxed);
            shared.counters.acquires.fetch_add(1, Ordering::Relaxed);
            return Ok(Pooled {
                session: Some(idle.session),
                created: idle.created,
                broken: false,
                shared: Arc::clone(shared),
                _permit: permit,
            });
        }
        // No idle session: open one, within what is left of the timeout.
        let left = shared
            .config
            .acquire_timeout
            .saturating_sub(started.elapsed());
        let session = match tokio::time::timeout(left, shared.manager.create()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                shared.counters.healthy.store(false, Ordering::Relaxed);
                return Err(PoolError::Create(e.to_string()));
            }
            Err(_) => {
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                shared.counters.healthy.store(false, Ordering::Relaxed);
                return Err(PoolError::Create(format!(
                    "no session within {}s",
                    shared.config.acquire_timeout.as_secs()
                )));
            }
        };
        shared.counters.created.fetch_add(1, Ordering::Relaxed);
        shared.counters.total.fetch_add(1, Ordering::Relaxed);
        shared.counters.active.fetch_add(1, Ordering::Relaxed);
        shared.counters.acquires.fetch_add(1, Ordering::Relaxed);
        shared.counters.healthy.store(true, Ordering::Relaxed);
        Ok(Pooled {
            session: Some(session),
            created: Instant::now(),
            broken: false,
            shared: Arc::clone(shared),
            _permit: permit,
        })
    }

    /// The counters, read without blocking anything.
    pub fn stats(&self) -> PoolStats {
        let c = &self.shared.counters;
        let total = c.total.load(Ordering::Relaxed);
        let active = c.active.load(Ordering::Relaxed);
        PoolStats {
            max_size: self.shared.config.max_size as u64,
            total,
            active,
            idle: total.saturating_sub(active),
            healthy: c.healthy.load(Ordering::Relaxed),
            waiting: c.waiting.load(Ordering::Relaxed),
            created: c.created.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            broken: c.broken.load(Ordering::Relaxed),
            acquire_timeouts: c.acquire_timeouts.load(Ordering::Relaxed),
            acquires: c.acquires.load(Ordering::Relaxed),
            wait_time: Duration::from_micros(c.wait_micros.load(Ordering::Relaxed)),
        }
    }

    /// Closes the pool: idle sessions are dropped now, checked-out ones when
    /// returned, and `get` fails from now on.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.permits.close();
        let idle: Vec<_> = self.shared.idle().drain(..).collect();
        for i in idle {
            self.shared.retire(i.session);
        }
    }

    /// Runs one health pass now (the background task runs them on its own).
    pub async fn check_now(&self) {
        health_pass(&self.shared).await;
    }
}

/// A checked-out session; returns to the pool when dropped.
pub struct Pooled<M: Manager> {
    session: Option<M::Session>,
    created: Instant,
    broken: bool,
    shared: Arc<Shared<M>>,
    /// Released after the session is back (or gone), so a waiter finds it.
    _permit: OwnedSemaphorePermit,
}

impl<M: Manager> std::fmt::Debug for Pooled<M> {
    // Sessions may hold credentials: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl<M: Manager> Pooled<M> {
    /// Marks the session broken: it is dropped instead of returned.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }
}

impl<M: Manager> std::ops::Deref for Pooled<M> {
    type Target = M::Session;

    fn deref(&self) -> &M::Session {
        // Present from checkout until drop.
        self.session.as_ref().expect("session present until drop")
    }
}

impl<M: Manager> std::ops::DerefMut for Pooled<M> {
    fn deref_mut(&mut self) -> &mut M::Session {
        self.session.as_mut().expect("session present until drop")
    }
}

impl<M: Manager> Drop for Pooled<M> {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.counters.active.fetch_sub(1, Ordering::Relaxed);
        let Some(session) = self.session.take() else {
            return;
        };
        let now = Instant::now();
        if self.broken {
            shared.counters.broken.fetch_add(1, Ordering::Relaxed);
            shared.retire(session);
        } else if shared.closed.load(Ordering::Acquire) || shared.expired(self.created, now) {
            shared.retire(session);
        } else {
            shared.idle().push_back(Idle {
                session,
                created: self.created,
                last_used: now,
            });
        }
    }
}

/// The background task: a health pass every interval, until the pool is dropped.
async fn maintain<M: Manager>(shared: Weak<Shared<M>>) {
    let interval = match shared.upgrade() {
        Some(s) => s.config.health_interval,
        None => return,
    };
    loop {
        // Top up first (a new pool opens its `min_idle` sessions right away).
        {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if shared.closed.load(Ordering::Acquire) {
                return;
            }
            health_pass(&shared).await;
        }
        tokio::time::sleep(interval).await;
    }
}

/// Checks every idle session, drops the broken, expired and surplus ones,
/// and opens sessions up to `min_idle`.
async fn health_pass<M: Manager>(shared: &Arc<Shared<M>>) {
    let now = Instant::now();
    // Take the idle sessions out (each with its permit) so no caller gets
    // one mid-check; put the good ones back after.
    let mut taken = Vec::new();
    loop {
        let Ok(permit) = Arc::clone(&shared.permits).try_acquire_owned() else {
            break;
        };
        let Some(idle) = shared.idle().pop_front() else {
            drop(permit);
            break;
        };
        taken.push((idle, permit));
    }
    let count = taken.len();
    let mut kept = 0usize;
    for (i, (mut idle, permit)) in taken.into_iter().enumerate() {
        // Oldest-used first: one idle too long goes if enough stay without it.
        let left_after = count - i - 1;
        let surplus = now.duration_since(idle.last_used) >= shared.config.idle_timeout
            && kept + left_after >= shared.config.min_idle;
        if shared.expired(idle.created, now) || surplus {
            shared.retire(idle.session);
            continue;
        }
        match shared.manager.check(&mut idle.session).await {
            Ok(()) => {
                shared.counters.healthy.store(true, Ordering::Relaxed);
                kept += 1;
                shared.idle().push_front(idle);
            }
            Err(_) => {
                shared.counters.healthy.store(false, Ordering::Relaxed);
                shared.counters.broken.fetch_add(1, Ordering::Relaxed);
                shared.retire(idle.session);
            }
        }
        drop(permit);
    }
    // Top up to min_idle.
    while shared.idle().len() < shared.config.min_idle
        && (shared.counters.total.load(Ordering::Relaxed) as usize) < shared.config.max_size
        && !shared.closed.load(Ordering::Acquire)
    {
        let Ok(permit) = Arc::clone(&shared.permits).try_acquire_owned() else {
            break;
        };
        match shared.manager.create().await {
            Ok(session) => {
                shared.counters.created.fetch_add(1, Ordering::Relaxed);
                shared.counters.total.fetch_add(1, Ordering::Relaxed);
                shared.counters.healthy.store(true, Ordering::Relaxed);
                let now = Instant::now();
                shared.idle().push_back(Idle {
                    session,
                    created: now,
                    last_used: now,
                });
                drop(permit);
            }
            Err(_) => {
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                shared.counters.healthy.store(false, Ordering::Relaxed);
                drop(permit);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests;
