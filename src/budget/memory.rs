//! One bound over what a server holds for its clients in all its bounded
//! pools together: large request bodies and WebSocket messages being read,
//! answers waiting behind the full sockets of clients that do not read,
//! answers kept for resumption, and task results. Each pool keeps its own
//! bound too; this one makes their sum a budget rather than the sum of
//! their bounds (four pools of 64 MiB could otherwise hold 256 MiB at once).
//!
//! A pool that grows past the budget first makes the pools less worth
//! keeping give up what they hold ([`Pool`], least worth first: answers no
//! client reads, then answers kept for a resumption that may never come,
//! then task results); if that is not enough, it applies its own rule (a
//! body is refused, a stalled connection cut, the oldest kept answer or
//! result dropped).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

/// The pools of a [`Memory`], least worth keeping first: a pool's growth
/// sheds only pools before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Pool {
    /// Answers waiting for clients that do not take them.
    Backlog,
    /// Answers kept so a client that lost a stream can resume it.
    Replay,
    /// Results of finished tasks, kept until read or expired.
    Tasks,
    /// Answers made for a client that waits for them with others still to
    /// come (a batch's): never shed, they stop the rest being made.
    Answers,
    /// Large request bodies and WebSocket messages being read.
    Input,
}

/// A pool that can give up some of what it holds when another needs room.
pub(crate) trait Shed: Send + Sync {
    /// Gives up about `bytes` (more or less, as its pieces fall); returns
    /// how many it gave up. Called with no lock of the caller's held.
    fn shed(&self, bytes: usize) -> usize;
}

/// The budget: bytes held by all pools, against one bound.
pub(crate) struct Memory {
    /// Relaxed: a counter compared with a bound, ordering nothing else.
    used: AtomicUsize,
    max: usize,
    shedders: parking_lot::Mutex<Vec<(Pool, Weak<dyn Shed>)>>,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("used", &self.used())
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Memory {
    /// A budget of `max` bytes.
    pub(crate) fn new(max: usize) -> Arc<Memory> {
        Arc::new(Memory {
            used: AtomicUsize::new(0),
            max,
            shedders: parking_lot::Mutex::new(Vec::new()),
        })
    }

    /// No bound beyond each pool's own (a pool used on its own).
    pub(crate) fn unbounded() -> Arc<Memory> {
        Memory::new(usize::MAX)
    }

    /// Bytes held by all pools now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The bound.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Whether the pools hold more than the bound.
    pub(crate) fn over(&self) -> bool {
        self.used() > self.max
    }

    /// Counts `bytes` more held.
    pub(crate) fn charge(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` given back (never below nothing: a pool counted
    /// from before it joined the budget cannot wrap the count).
    pub(crate) fn discharge(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// Moves what is counted from `before` to `after` bytes.
    pub(crate) fn recount(&self, before: usize, after: usize) {
        if after > before {
            self.charge(after - before);
        } else {
            self.discharge(before - after);
        }
    }

    /// Registers `shed` as `pool`'s way to give up bytes for others.
    pub(crate) fn register(&self, pool: Pool, shed: Weak<dyn Shed>) {
        let mut shedders = self.shedders.lock();
        shedders.retain(|(_, s)| s.strong_count() > 0);
        shedders.push((pool, shed));
        shedders.sort_by_key(|(p, _)| *p);
    }

    /// While the pools hold more than the bound, asks the pools less worth
    /// keeping than `pool` to give up bytes, least worth first. Returns
    /// whether the pools are within the bound after. Call it with none of
    /// the pools' locks held.
    pub(crate) fn make_room(&self, pool: Pool) -> bool {
        if !self.over() {
            return true;
        }
        let below: Vec<Arc<dyn Shed>> = self
            .shedders
            .lock()
            .iter()
            .filter(|(p, _)| *p < pool)
            .filter_map(|(_, s)| s.upgrade())
            .collect();
        for shed in below {
            while self.over() {
                if shed.shed(self.used() - self.max) == 0 {
                    break;
                }
            }
        }
        !self.over()
    }
}

/// Bytes one holder counts against a [`Memory`] for as long as it lives.
#[derive(Debug)]
pub(crate) struct Charge {
    memory: Arc<Memory>,
    pool: Pool,
    bytes: usize,
}

impl Charge {
    /// Nothing counted yet, for `pool`.
    pub(crate) fn new(memory: Arc<Memory>, pool: Pool) -> Charge {
        Charge {
            memory,
            pool,
            bytes: 0,
        }
    }

    /// Counts `bytes` more (already spent: they stay counted either way),
    /// making room below the pool first; returns whether the pools are
    /// within the bound after.
    pub(crate) fn grow(&mut self, bytes: usize) -> bool {
        self.memory.charge(bytes);
        self.bytes += bytes;
        self.memory.make_room(self.pool)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.memory.discharge(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool of pieces of 10 bytes, given up one at a time.
    struct Pieces {
        memory: Arc<Memory>,
        held: parking_lot::Mutex<usize>,
    }

    impl Pieces {
        fn hold(&self, n: usize) {
            *self.held.lock() += n * 10;
            self.memory.charge(n * 10);
        }
        fn held(&self) -> usize {
            *self.held.lock()
        }
    }

    impl Shed for Pieces {
        fn shed(&self, bytes: usize) -> usize {
            let mut held = self.held.lock();
            let gone = (*held).min(bytes.div_ceil(10) * 10);
            *held -= gone;
            self.memory.discharge(gone);
            gone
        }
    }

    fn pool(memory: &Arc<Memory>, which: Pool) -> Arc<Pieces> {
        let pieces = Arc::new(Pieces {
            memory: Arc::clone(memory),
            held: parking_lot::Mutex::new(0),
        });
        let shed: Arc<dyn Shed> = pieces.clone();
        memory.register(which, Arc::downgrade(&shed));
        pieces
    }

    #[test]
    fn growth_past_the_bound_sheds_the_pools_worth_less_first() {
        let memory = Memory::new(100);
        let backlog = pool(&memory, Pool::Backlog);
        let replay = pool(&memory, Pool::Replay);
        let tasks = pool(&memory, Pool::Tasks);
        backlog.hold(3);
        replay.hold(4);
        tasks.hold(3);
        assert!(memory.make_room(Pool::Input), "within: nothing shed");
        assert_eq!(memory.used(), 100);
        // An input of 50 bytes: the backlog goes whole, then 20 of replay.
        memory.charge(50);
        assert!(memory.make_room(Pool::Input));
        assert_eq!((backlog.held(), replay.held(), tasks.held()), (0, 20, 30));
        // Replay's own growth sheds only the backlog (empty): still over.
        memory.charge(10);
        assert!(!memory.make_room(Pool::Replay));
        assert_eq!((replay.held(), tasks.held()), (20, 30));
        // Tasks' growth sheds replay, and no more than needed.
        assert!(memory.make_room(Pool::Tasks));
        assert_eq!((replay.held(), tasks.held()), (10, 30));
        assert_eq!(memory.used(), 100);
    }

    #[test]
    fn a_charge_sheds_below_it_and_gives_back_when_dropped() {
        let memory = Memory::new(100);
        let tasks = pool(&memory, Pool::Tasks);
        tasks.hold(6);
        let mut charge = Charge::new(Arc::clone(&memory), Pool::Answers);
        assert!(charge.grow(30));
        assert_eq!((tasks.held(), memory.used()), (60, 90));
        assert!(charge.grow(30), "the tasks give way");
        assert_eq!((tasks.held(), memory.used()), (40, 100));
        assert!(!charge.grow(60), "past what the tasks hold: still over");
        assert_eq!((tasks.held(), memory.used()), (0, 120));
        drop(charge);
        assert_eq!(memory.used(), 0);
    }

    #[test]
    fn a_dropped_pool_is_not_asked() {
        let memory = Memory::new(10);
        let backlog = pool(&memory, Pool::Backlog);
        backlog.hold(1);
        drop(backlog);
        memory.charge(5);
        assert!(!memory.make_room(Pool::Input));
        let _replay = pool(&memory, Pool::Replay);
        assert_eq!(
            memory.shedders.lock().len(),
            1,
            "swept at the next register"
        );
    }
}
