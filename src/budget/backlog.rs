//! What waits for clients that do not read: answers behind full sockets,
//! for all connections at once, against one bound. Past it, the writers
//! whose clients have taken nothing for the longest are cut.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::{Memory, Pool, Shed};

/// The least an answer holds to count: smaller ones are bounded by the
/// connection limit alone. 64 KiB.
pub(crate) const COUNTED_FROM: usize = 64 * 1024;

/// Bytes of answers waiting behind the full sockets of clients that do
/// not take them, for all connections at once, against a bound. A writer
/// whose client's socket is full registers what waits there ([`Stalled`]);
/// when the sum passes the bound, the writers whose clients have taken
/// nothing for the longest are cut (their connections close, their
/// answers are dropped) until it fits again. So a crowd of clients that
/// stop reading holds at most the bound (plus what the cut ones hold until
/// their tasks let go, moments), and clients that read are the last to go:
/// each piece they take makes them the newest. One answer larger than the
/// bound alone is not cut.
#[derive(Debug)]
pub(crate) struct Backlog {
    max: usize,
    waiting: parking_lot::Mutex<Waiting>,
    /// Writers cut since the start.
    cuts: std::sync::atomic::AtomicU64,
    /// The server's budget over all its pools: what waits counts against
    /// it too (as [`Pool::Backlog`], the first to give up bytes).
    memory: Option<Arc<Memory>>,
}

#[derive(Debug, Default)]
struct Waiting {
    writers: slab::Slab<Writer>,
    /// Bytes of the writers not cut.
    uncut: usize,
}

#[derive(Debug)]
struct Writer {
    bytes: usize,
    /// When its client last took something (or it began to wait).
    since: Instant,
    cut: Arc<Cut>,
}

/// The signal that cuts one waiting writer.
#[derive(Debug, Default)]
struct Cut {
    done: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Backlog {
    /// A backlog bound of `max` bytes.
    #[cfg(test)]
    pub(crate) fn new(max: usize) -> Arc<Backlog> {
        Arc::new(Backlog::made(max, None))
    }

    fn made(max: usize, memory: Option<Arc<Memory>>) -> Backlog {
        Backlog {
            max,
            waiting: parking_lot::Mutex::default(),
            cuts: std::sync::atomic::AtomicU64::new(0),
            memory,
        }
    }

    /// A backlog bound of `max` bytes whose waiting bytes count against
    /// `memory` too: past it, the writers waiting longest are cut as past
    /// the bound, and other pools' growth may cut them (all of them if
    /// need be: answers no client reads are the first to go).
    pub(crate) fn within_memory(max: usize, memory: &Arc<Memory>) -> Arc<Backlog> {
        let backlog = Arc::new(Backlog::made(max, Some(Arc::clone(memory))));
        let shed: Arc<dyn Shed> = backlog.clone();
        memory.register(Pool::Backlog, Arc::downgrade(&shed));
        backlog
    }

    /// Moves the uncut bytes to `uncut`, in the memory budget too.
    fn recount(&self, w: &mut Waiting, uncut: usize) {
        if let Some(memory) = &self.memory {
            memory.recount(w.uncut, uncut);
        }
        w.uncut = uncut;
    }

    /// Whether the writers hold more than they may: past the bound, or
    /// past the memory budget.
    fn over(&self, w: &Waiting) -> bool {
        w.uncut > self.max || self.memory.as_ref().is_some_and(|m| m.over())
    }

    /// Cuts the writer whose client has taken nothing for the longest;
    /// `alone`: even if it is the only one. Returns the bytes it held, or
    /// `None` if none was cut.
    fn cut_oldest(&self, w: &mut Waiting, alone: bool) -> Option<usize> {
        let mut uncut = w
            .writers
            .iter()
            .map(|(_, x)| x)
            .filter(|x| !x.cut.done.load(Ordering::Relaxed));
        let first = uncut.next()?;
        let older = |a: &'_ Writer, b: &'_ Writer| a.since <= b.since;
        let oldest = match uncut.next() {
            Some(second) => {
                let start = if older(second, first) { second } else { first };
                uncut.fold(start, |a, b| if older(b, a) { b } else { a })
            }
            None if alone => first,
            None => return None,
        };
        let (bytes, cut) = (oldest.bytes, Arc::clone(&oldest.cut));
        let left = w.uncut - bytes;
        self.recount(w, left);
        self.cuts.fetch_add(1, Ordering::Relaxed);
        cut.done.store(true, Ordering::Relaxed);
        cut.notify.notify_waiters();
        Some(bytes)
    }

    /// Bytes waiting now, of writers not cut.
    pub(crate) fn waiting_bytes(&self) -> usize {
        self.waiting.lock().uncut
    }

    /// Writers cut since the start (their connections closed).
    pub(crate) fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }
}

/// One writer's registration in a [`Backlog`], from its first wait on a
/// full socket; removed when dropped.
#[derive(Debug)]
pub(crate) struct Stalled {
    backlog: Arc<Backlog>,
    slot: Option<(usize, Arc<Cut>)>,
}

impl Stalled {
    /// Not registered yet, in `backlog`.
    pub(crate) fn new(backlog: &Arc<Backlog>) -> Stalled {
        Stalled {
            backlog: Arc::clone(backlog),
            slot: None,
        }
    }

    /// `bytes` wait for the client now (they replace what was counted);
    /// `took`: the client took some since the last call. Past the bound,
    /// the writers waiting longest are cut, this one too if it is one.
    pub(crate) fn wait(&mut self, bytes: usize, took: bool) {
        let now = Instant::now();
        let backlog = &*self.backlog;
        let mut guard = backlog.waiting.lock();
        let w = &mut *guard;
        match &self.slot {
            None => {
                let cut = Arc::new(Cut::default());
                let slot = w.writers.insert(Writer {
                    bytes,
                    since: now,
                    cut: Arc::clone(&cut),
                });
                let uncut = w.uncut + bytes;
                backlog.recount(w, uncut);
                self.slot = Some((slot, cut));
            }
            Some((slot, cut)) => {
                let before = w.writers[*slot].bytes;
                if !cut.done.load(Ordering::Relaxed) {
                    let uncut = w.uncut - before + bytes;
                    backlog.recount(w, uncut);
                }
                let writer = &mut w.writers[*slot];
                writer.bytes = bytes;
                if took {
                    writer.since = now;
                }
            }
        }
        // One writer alone is never cut, however much it holds.
        while backlog.over(w) && backlog.cut_oldest(w, false).is_some() {}
    }

    /// Nothing waits any more: the registration is removed.
    pub(crate) fn done(&mut self) {
        if let Some((slot, cut)) = self.slot.take() {
            let mut w = self.backlog.waiting.lock();
            let writer = w.writers.remove(slot);
            if !cut.done.load(Ordering::Relaxed) {
                let uncut = w.uncut - writer.bytes;
                self.backlog.recount(&mut w, uncut);
            }
        }
    }

    /// Whether this writer was cut: its connection must close.
    #[cfg(test)]
    pub(crate) fn is_cut(&self) -> bool {
        self.slot
            .as_ref()
            .is_some_and(|(_, cut)| cut.done.load(Ordering::Relaxed))
    }

    /// Resolves once this writer is cut (never while it is not registered).
    pub(crate) async fn cut(&self) {
        let Some((_, cut)) = &self.slot else {
            return std::future::pending().await;
        };
        loop {
            // Made before the check: a cut between the two still wakes it.
            let notified = cut.notify.notified();
            if cut.done.load(Ordering::Relaxed) {
                return;
            }
            notified.await;
        }
    }
}

impl Shed for Backlog {
    /// Cuts the writers waiting longest until `bytes` are given up, the
    /// last one too.
    fn shed(&self, bytes: usize) -> usize {
        let mut w = self.waiting.lock();
        let mut freed = 0;
        while freed < bytes {
            match self.cut_oldest(&mut w, true) {
                Some(held) => freed += held,
                None => break,
            }
        }
        freed
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        self.done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn past_the_bound_the_writers_waiting_longest_are_cut() {
        let backlog = Backlog::new(100);
        let mut a = Stalled::new(&backlog);
        let mut b = Stalled::new(&backlog);
        let mut c = Stalled::new(&backlog);
        a.wait(40, false);
        std::thread::sleep(Duration::from_millis(2));
        b.wait(40, false);
        std::thread::sleep(Duration::from_millis(2));
        // a's client takes something: b now waits longest.
        a.wait(35, true);
        assert_eq!(backlog.waiting_bytes(), 75);
        c.wait(40, false);
        assert!(b.is_cut() && !a.is_cut() && !c.is_cut());
        assert_eq!(backlog.waiting_bytes(), 75);
        // The cut writer's bytes no longer count, and its end removes it.
        b.wait(10, false);
        assert_eq!(backlog.waiting_bytes(), 75);
        drop(b);
        a.done();
        assert_eq!(backlog.waiting_bytes(), 40);
        // One writer alone passes the bound uncut.
        c.wait(500, false);
        assert!(!c.is_cut());
        let mut d = Stalled::new(&backlog);
        d.wait(1, false);
        assert!(c.is_cut() && !d.is_cut());
        drop((c, d));
        assert_eq!(backlog.waiting_bytes(), 0);
    }

    #[tokio::test]
    async fn a_cut_wakes_the_writer_waiting_for_it() {
        let backlog = Backlog::new(10);
        let mut old = Stalled::new(&backlog);
        old.wait(8, false);
        let waiter = tokio::spawn(async move {
            old.cut().await;
            old.is_cut()
        });
        tokio::task::yield_now().await;
        let mut new = Stalled::new(&backlog);
        new.wait(8, false);
        let woken = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(woken, Ok(Ok(true))), "{woken:?}");
        assert!(!new.is_cut());
        // Unregistered, it is never cut.
        let idle = Stalled::new(&backlog);
        let never = tokio::time::timeout(Duration::from_millis(20), idle.cut()).await;
        assert!(never.is_err());
    }

    #[test]
    fn what_waits_counts_against_the_memory_budget_and_gives_way_first() {
        let memory = Memory::new(100);
        let backlog = Backlog::within_memory(80, &memory);
        let mut a = Stalled::new(&backlog);
        let mut b = Stalled::new(&backlog);
        a.wait(30, false);
        std::thread::sleep(Duration::from_millis(2));
        b.wait(30, false);
        assert_eq!(memory.used(), 60);
        // Another pool holds 50: the writers, within their own bound, are
        // past the memory's, and the one waiting longest is cut.
        memory.charge(50);
        b.wait(31, false);
        assert!(a.is_cut() && !b.is_cut());
        assert_eq!(memory.used(), 81);
        // A pool worth more needs room: the last writer goes too.
        memory.charge(40);
        assert!(memory.make_room(Pool::Input));
        assert!(b.is_cut());
        assert_eq!((memory.used(), backlog.waiting_bytes()), (90, 0));
        drop((a, b));
        assert_eq!(memory.used(), 90);
    }
}
