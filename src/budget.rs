//! A byte budget shared by a producer and a consumer: bytes handed over and
//! not yet taken count against a bound, so a consumer that stops taking
//! (a client that stops reading) cannot make the producer hold more. A leaf
//! utility: the HTTP body stream and the MCP peer queue both use it. The
//! same count, held through [`Held`], bounds what many owners keep at once
//! (large request bodies of all connections, large WebSocket messages of
//! all sockets). [`Backlog`] bounds what waits for clients that do not
//! read: answers behind full sockets, for all connections at once.
//! [`Memory`] bounds the sum of a server's pools: what each holds counts
//! against it too, and a pool that needs room makes the pools less worth
//! keeping give up bytes first.

mod backlog;
mod memory;

pub(crate) use backlog::{Backlog, COUNTED_FROM, Stalled};
pub(crate) use memory::{Charge, Memory, Pool, Shed};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes in flight between a producer and its consumer, against a bound.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    /// Bytes taken and not yet given back. Relaxed: a counter compared with
    /// a bound, ordering no other memory.
    used: AtomicUsize,
    max: usize,
    /// The server's budget over all its pools, which what is [`Held`] of
    /// this one counts against too (as [`Pool::Input`]).
    memory: Option<Arc<Memory>>,
}

impl ByteBudget {
    /// A budget of `max` bytes.
    pub(crate) fn new(max: usize) -> ByteBudget {
        ByteBudget {
            used: AtomicUsize::new(0),
            max,
            memory: None,
        }
    }

    /// A budget of `max` bytes whose [`Held`] bytes count against `memory`
    /// too: past it, the pools less worth keeping give up bytes, and what
    /// still does not fit is refused.
    pub(crate) fn within_memory(max: usize, memory: &Arc<Memory>) -> ByteBudget {
        ByteBudget {
            memory: Some(Arc::clone(memory)),
            ..ByteBudget::new(max)
        }
    }

    /// Takes `len` bytes; false (nothing taken) when they would pass the
    /// bound while something is already in flight: one item larger than the
    /// bound still goes when nothing waits.
    pub(crate) fn take(&self, len: usize) -> bool {
        let before = self.used.fetch_add(len, Ordering::Relaxed);
        if before > 0 && before.saturating_add(len) > self.max {
            self.used.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Bytes taken and not given back.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Gives `len` bytes back (the consumer took them, or they were never sent).
    pub(crate) fn give_back(&self, len: usize) {
        self.used.fetch_sub(len, Ordering::Relaxed);
    }
}

/// Bytes taken from a shared [`ByteBudget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Arc<ByteBudget>,
    len: usize,
}

impl Held {
    /// Nothing held yet, from `budget`.
    pub(crate) fn none(budget: &Arc<ByteBudget>) -> Held {
        Held {
            budget: Arc::clone(budget),
            len: 0,
        }
    }

    /// Holds `len` more bytes; false (nothing more held) if the budget
    /// has no room for them while others hold some: a holder alone may pass
    /// the bound (one item larger than it, where two owners of the budget
    /// have different limits on their items).
    pub(crate) fn grow(&mut self, len: usize) -> bool {
        let before = self.budget.used.fetch_add(len, Ordering::Relaxed);
        if before.saturating_add(len) > self.budget.max && before > self.len {
            self.budget.used.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        if let Some(memory) = &self.budget.memory {
            memory.charge(len);
            if !memory.make_room(Pool::Input) {
                memory.discharge(len);
                self.budget.used.fetch_sub(len, Ordering::Relaxed);
                return false;
            }
        }
        self.len += len;
        true
    }

    /// Bytes held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Gives back everything held.
    pub(crate) fn release(&mut self) {
        if self.len > 0 {
            let len = std::mem::take(&mut self.len);
            self.budget.give_back(len);
            if let Some(memory) = &self.budget.memory {
                memory.discharge(len);
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_but_one_large_item_passes_alone() {
        let b = ByteBudget::new(10);
        assert!(b.take(6));
        assert!(b.take(4));
        assert!(!b.take(1), "full");
        b.give_back(6);
        assert!(b.take(5));
        let b = ByteBudget::new(10);
        assert!(b.take(50), "alone, larger than the bound");
        assert!(!b.take(1));
    }

    #[test]
    fn held_bytes_are_given_back_when_dropped() {
        let b = Arc::new(ByteBudget::new(10));
        let mut one = Held::none(&b);
        assert!(one.grow(6));
        let mut two = Held::none(&b);
        assert!(!two.grow(5), "past the bound");
        assert!(two.grow(4));
        assert_eq!((one.len(), two.len()), (6, 4));
        drop(one);
        let mut three = Held::none(&b);
        assert!(three.grow(6));
        assert!(!three.grow(1));
        three.release();
        assert_eq!(three.len(), 0);
        assert!(three.grow(6), "released");
        drop(three);
        let mut alone = Held::none(&b);
        assert!(!alone.grow(7), "larger than the room left");
        drop(two);
        assert!(alone.grow(7) && alone.grow(5), "alone, past the bound");
        assert!(!Held::none(&b).grow(1), "while one holds past it");
    }

    #[test]
    fn held_bytes_count_against_the_memory_budget_too() {
        let memory = Memory::new(15);
        let b = Arc::new(ByteBudget::within_memory(10, &memory));
        let mut one = Held::none(&b);
        assert!(one.grow(8));
        memory.charge(6);
        let mut two = Held::none(&b);
        assert!(!two.grow(2), "within its own bound, past the memory's");
        assert_eq!((b.used(), memory.used()), (8, 14));
        assert!(two.grow(1));
        drop((one, two));
        assert_eq!((b.used(), memory.used()), (0, 6));
    }
}
