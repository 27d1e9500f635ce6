//! A lock-light pool of warehouse sessions, generic over a [`Manager`].
//!
//! One short std-mutex critical section per checkout and one per return,
//! never held across an `.await` (sessions are created, checked and dropped
//! outside it): a checkout pops the most recently used idle session (warm
//! sessions stay warm) or reserves a slot to open a new one; a return hands
//! the session straight to the longest waiting caller, or pushes it back.
//! There is no semaphore and no timer per wait: waiters queue in order and
//! a single background tick fails those past the acquire timeout (so the
//! timeout is honoured to within 50 ms). Sessions are not
//! checked on every checkout (that is what makes a checkout cheap); the
//! background task pings idle ones every `health_interval`, replaces the
//! broken, retires those past their lifetime or idle timeout (both counted
//! in health passes, so the hot path reads no clock), and keeps `min_idle`
//! ready. A session the caller marks broken ([`Pooled::mark_broken`]) is
//! dropped on return, never handed out again. Counters are atomics;
//! [`Pool::stats`] reads them without blocking anything.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

pub use crate::util::BoxFuture;

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

/// How often waiters past their deadline are failed. Default: 50 ms.
pub(crate) const REAPER_TICK: Duration = Duration::from_millis(50);

/// Default most sessions at once: 8.
pub(crate) const DEFAULT_MAX_SIZE: usize = 8;
/// Default sessions kept ready: 1.
pub(crate) const DEFAULT_MIN_IDLE: usize = 1;
/// Default wait for a session before giving up: 30 s.
pub(crate) const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default session lifetime: 1 hour (Snowflake sessions expire after 4 hours idle).
pub(crate) const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// Default idle time after which a session beyond `min_idle` is closed: 10 minutes.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Default interval of the background health check: 30 s.
pub(crate) const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);

/// Pool settings.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Most sessions at once. Default: 8.
    pub max_size: usize,
    /// Sessions kept ready. Default: 1.
    pub min_idle: usize,
    /// How long `get` waits. Default: 30 s.
    pub acquire_timeout: Duration,
    /// Sessions older than this are closed. Default: 1 hour.
    pub max_lifetime: Duration,
    /// Idle sessions beyond `min_idle` unused this long are closed.
    /// Default: 10 minutes.
    pub idle_timeout: Duration,
    /// How often idle sessions are checked. Default: 30 s.
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
#[non_exhaustive]
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
/// `total` and `active` mirror the locked state, stored while it is held.
#[derive(Debug, Default)]
struct Counters {
    total: AtomicU64,
    active: AtomicU64,
    acquires: AtomicU64,
    waiting: AtomicU64,
    created: AtomicU64,
    failed: AtomicU64,
    /// Sessions found broken (by a caller or the health check) and dropped.
    broken: AtomicU64,
    acquire_timeouts: AtomicU64,
    /// Total time callers waited, in microseconds.
    wait_micros: AtomicU64,
    /// Waits of callers that found no session free (others read no clock).
    waits: crate::histogram::Histogram,
    /// Whether the last health check (or creation) succeeded.
    healthy: AtomicBool,
}

/// The pool's counters at a moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// The configured maximum.
    pub max_size: u64,
    /// Sessions alive (or being opened).
    pub total: u64,
    /// Sessions checked out (or being opened or checked).
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
    /// Sessions handed out since start.
    pub acquires: u64,
    /// Total wait for sessions.
    pub wait_time: Duration,
    /// Waits of callers that found no session free.
    pub(crate) waits: crate::histogram::HistogramSnapshot,
}

struct Idle<S> {
    session: S,
    /// The health pass it was opened in, and the one it was last returned in.
    created_pass: u64,
    used_pass: u64,
}

/// What a waiter is given.
enum Grant<S> {
    /// A session, handed over on return.
    Session(Idle<S>),
    /// A free slot: open a session in it.
    Slot,
    /// The acquire timeout passed.
    Timeout,
}

struct Waiter<S> {
    deadline: Instant,
    tx: oneshot::Sender<Grant<S>>,
}

/// What the lock guards.
struct State<S> {
    idle: Vec<Idle<S>>,
    /// Sessions out of the idle list: checked out, being opened or being checked.
    out: usize,
    /// Checkouts so far (published to the counters with the rest).
    acquires: u64,
    waiters: VecDeque<Waiter<S>>,
    closed: bool,
}

struct Shared<M: Manager> {
    manager: M,
    config: PoolConfig,
    /// A std mutex: held for a push, a pop or a handoff, never across an `.await`.
    state: Mutex<State<M::Session>>,
    counters: Counters,
    /// Health passes run so far: the pool's coarse clock.
    pass: AtomicU64,
}

impl<M: Manager> Shared<M> {
    fn lock(&self) -> parking_lot::MutexGuard<'_, State<M::Session>> {
        self.state.lock()
    }

    /// Mirrors the locked counts into the atomics (plain stores, lock held).
    fn publish(&self, state: &State<M::Session>) {
        self.counters
            .total
            .store((state.idle.len() + state.out) as u64, Ordering::Relaxed);
        self.counters
            .active
            .store(state.out as u64, Ordering::Relaxed);
        self.counters
            .acquires
            .store(state.acquires, Ordering::Relaxed);
    }

    /// Health passes a duration spans, rounded up (at least one).
    fn passes(&self, d: Duration) -> u64 {
        let interval = self.config.health_interval.as_millis().max(1);
        d.as_millis().div_ceil(interval).max(1) as u64
    }

    /// Past its lifetime: more passes since it opened than the lifetime
    /// spans (so it is retired within one health interval after it).
    fn too_old(&self, created_pass: u64, now_pass: u64) -> bool {
        now_pass.saturating_sub(created_pass) > self.passes(self.config.max_lifetime)
    }

    /// Gives a session back: to the first live waiter, else to the idle list.
    fn give_back(&self, mut idle: Idle<M::Session>) {
        let mut state = self.lock();
        while let Some(w) = state.waiters.pop_front() {
            match w.tx.send(Grant::Session(idle)) {
                Ok(()) => {
                    state.acquires += 1;
                    self.publish(&state);
                    return;
                }
                // That caller gave up meanwhile: try the next one.
                Err(Grant::Session(back)) => idle = back,
                Err(_) => return,
            }
        }
        if state.closed {
            state.out -= 1;
            self.publish(&state);
            drop(state);
            drop(idle);
            return;
        }
        state.out -= 1;
        state.idle.push(idle);
        self.publish(&state);
    }

    /// Frees a slot whose session is gone (broken, expired, failed to open).
    fn free_slot(&self) {
        let mut state = self.lock();
        tracing::debug!(
            out = state.out,
            waiters = state.waiters.len(),
            "pool: slot freed"
        );
        while let Some(w) = state.waiters.pop_front() {
            if w.tx.send(Grant::Slot).is_ok() {
                state.acquires += 1;
                self.publish(&state);
                return;
            }
        }
        state.out -= 1;
        self.publish(&state);
    }
}

/// A slot reserved for a session being opened; freed if the opener gives
/// up (its future is dropped mid-open).
struct Reserved<'a, M: Manager> {
    shared: &'a Shared<M>,
    held: bool,
}

impl<M: Manager> Drop for Reserved<'_, M> {
    fn drop(&mut self) {
        if self.held {
            self.shared.free_slot();
        }
    }
}

/// A caller waiting for a grant, counted in `waiting` while it waits. If
/// it gives up after a grant was sent but before it was read, the grant
/// goes back to the pool (a session to the
/// next caller or the idle list, a slot freed) instead of being lost.
struct Waiting<'a, M: Manager> {
    rx: oneshot::Receiver<Grant<M::Session>>,
    shared: &'a Shared<M>,
}

impl<M: Manager> Drop for Waiting<'_, M> {
    fn drop(&mut self) {
        self.shared.counters.waiting.fetch_sub(1, Ordering::Relaxed);
        self.rx.close();
        match self.rx.try_recv() {
            Ok(Grant::Session(idle)) => self.shared.give_back(idle),
            Ok(Grant::Slot) => self.shared.free_slot(),
            Ok(Grant::Timeout) | Err(_) => {}
        }
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

/// Why a checkout has to wait, or what it got.
enum Checkout<S> {
    Got(Idle<S>),
    Open,
    Wait(oneshot::Receiver<Grant<S>>),
}

impl<M: Manager> Pool<M> {
    /// A pool over `manager`; starts its background task (needs a tokio runtime).
    pub fn new(manager: M, config: PoolConfig) -> Pool<M> {
        let max = config.max_size.max(1);
        let shared = Arc::new(Shared {
            manager,
            config: PoolConfig {
                max_size: max,
                min_idle: config.min_idle.min(max),
                ..config
            },
            state: Mutex::new(State {
                idle: Vec::with_capacity(max),
                out: 0,
                acquires: 0,
                waiters: VecDeque::new(),
                closed: false,
            }),
            counters: Counters::default(),
            pass: AtomicU64::new(0),
        });
        shared.counters.healthy.store(true, Ordering::Relaxed);
        tokio::spawn(maintain(Arc::downgrade(&shared)));
        Pool { shared }
    }

    /// A session, waiting up to the acquire timeout for one to be free.
    pub async fn get(&self) -> Result<Pooled<M>, PoolError> {
        let shared = &self.shared;
        let now_pass = shared.pass.load(Ordering::Relaxed);
        let checkout = {
            let mut state = shared.lock();
            if state.closed {
                return Err(PoolError::Closed);
            }
            let got = state.idle.pop().map(|idle| {
                state.out += 1;
                state.acquires += 1;
                if shared.too_old(idle.created_pass, now_pass) {
                    // Retired outside the lock, below; its slot opens a fresh one.
                    Err(idle)
                } else {
                    Ok(idle)
                }
            });
            match got {
                Some(Ok(idle)) => {
                    shared.publish(&state);
                    Checkout::Got(idle)
                }
                Some(Err(old)) => {
                    // Its slot is reused for a fresh session.
                    shared.publish(&state);
                    drop(state);
                    drop(old);
                    Checkout::Open
                }
                None if state.idle.len() + state.out < shared.config.max_size => {
                    state.out += 1;
                    state.acquires += 1;
                    shared.publish(&state);
                    Checkout::Open
                }
                None => {
                    let (tx, rx) = oneshot::channel();
                    state.waiters.push_back(Waiter {
                        deadline: Instant::now() + shared.config.acquire_timeout,
                        tx,
                    });
                    Checkout::Wait(rx)
                }
            }
        };
        match checkout {
            Checkout::Got(idle) => Ok(Pooled::new(shared, idle)),
            Checkout::Open => self.open(None).await,
            Checkout::Wait(rx) => {
                let started = Instant::now();
                shared.counters.waiting.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("pool: every session busy; waiting");
                let mut waiting = Waiting { rx, shared };
                let grant = (&mut waiting.rx).await;
                drop(waiting);
                let waited = started.elapsed();
                shared
                    .counters
                    .wait_micros
                    .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
                shared.counters.waits.record(waited);
                match grant {
                    Ok(Grant::Session(idle)) => Ok(Pooled::new(shared, idle)),
                    Ok(Grant::Slot) => self.open(Some(started)).await,
                    Ok(Grant::Timeout) => {
                        shared
                            .counters
                            .acquire_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                        Err(PoolError::Timeout {
                            max_size: shared.config.max_size,
                            waited,
                        })
                    }
                    Err(_) => Err(PoolError::Closed),
                }
            }
        }
    }

    /// Opens a session in a slot this caller reserved. A caller that gives
    /// up meanwhile (its future dropped) frees the slot.
    async fn open(&self, since: Option<Instant>) -> Result<Pooled<M>, PoolError> {
        let shared = &self.shared;
        let mut reserved = Reserved { shared, held: true };
        let left = shared
            .config
            .acquire_timeout
            .saturating_sub(since.map_or(Duration::ZERO, |s| s.elapsed()));
        tracing::debug!("pool: opening a session");
        let opened = tokio::time::timeout(left, shared.manager.create()).await;
        // From here the slot is accounted for below, whatever happened.
        reserved.held = false;
        match opened {
            Ok(Ok(session)) => {
                shared.counters.created.fetch_add(1, Ordering::Relaxed);
                shared.counters.healthy.store(true, Ordering::Relaxed);
                let pass = shared.pass.load(Ordering::Relaxed);
                Ok(Pooled::new(
                    shared,
                    Idle {
                        session,
                        created_pass: pass,
                        used_pass: pass,
                    },
                ))
            }
            failed => {
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                shared.counters.healthy.store(false, Ordering::Relaxed);
                shared.free_slot();
                Err(PoolError::Create(match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no session within {}s", left.as_secs()),
                }))
            }
        }
    }

    /// The manager that creates and checks the sessions.
    pub fn manager(&self) -> &M {
        &self.shared.manager
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
            waits: c.waits.read(),
        }
    }

    /// Closes the pool: idle sessions are dropped now, checked-out ones when
    /// returned, waiters and later callers get [`PoolError::Closed`].
    pub fn close(&self) {
        let (idle, waiters) = {
            let mut state = self.shared.lock();
            state.closed = true;
            let idle = std::mem::take(&mut state.idle);
            let waiters = std::mem::take(&mut state.waiters);
            self.shared.publish(&state);
            (idle, waiters)
        };
        drop(waiters);
        drop(idle);
    }

    /// Runs one health pass now (the background task runs them on its own).
    pub async fn check_now(&self) {
        health_pass(&self.shared).await;
    }
}

/// A checked-out session; returns to the pool when dropped.
pub struct Pooled<M: Manager> {
    session: Option<M::Session>,
    created_pass: u64,
    broken: bool,
    shared: Arc<Shared<M>>,
}

impl<M: Manager> Pooled<M> {
    fn new(shared: &Arc<Shared<M>>, idle: Idle<M::Session>) -> Pooled<M> {
        Pooled {
            session: Some(idle.session),
            created_pass: idle.created_pass,
            broken: false,
            shared: Arc::clone(shared),
        }
    }

    /// Marks the session broken: it is dropped instead of returned.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }
}

impl<M: Manager> std::fmt::Debug for Pooled<M> {
    // Sessions may hold credentials: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
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
        let Some(session) = self.session.take() else {
            shared.free_slot();
            return;
        };
        let pass = shared.pass.load(Ordering::Relaxed);
        if self.broken {
            shared.counters.broken.fetch_add(1, Ordering::Relaxed);
            drop(session);
            shared.free_slot();
        } else if shared.too_old(self.created_pass, pass) {
            drop(session);
            shared.free_slot();
        } else {
            shared.give_back(Idle {
                session,
                created_pass: self.created_pass,
                used_pass: pass,
            });
        }
    }
}

mod maintain;

use maintain::{health_pass, maintain};

#[cfg(test)]
mod tests;
