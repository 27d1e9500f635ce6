//! A byte budget shared by a producer and a consumer: bytes handed over and
//! not yet taken count against a bound, so a consumer that stops taking
//! (a client that stops reading) cannot make the producer hold more. A leaf
//! utility: the HTTP body stream and the MCP peer queue both use it.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes in flight between a producer and its consumer, against a bound.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    /// Bytes taken and not yet given back. Relaxed: a counter compared with
    /// a bound, ordering no other memory.
    used: AtomicUsize,
    max: usize,
}

impl ByteBudget {
    /// A budget of `max` bytes.
    pub(crate) fn new(max: usize) -> ByteBudget {
        ByteBudget {
            used: AtomicUsize::new(0),
            max,
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

    /// Gives `len` bytes back (the consumer took them, or they were never sent).
    pub(crate) fn give_back(&self, len: usize) {
        self.used.fetch_sub(len, Ordering::Relaxed);
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
}
