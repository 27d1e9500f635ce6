//! What waits for clients that do not read: answers behind full sockets,
//! for all connections at once, against one bound. Past it, the writers
//! whose clients have taken nothing for the longest are cut.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
    pub(crate) fn new(max: usize) -> Arc<Backlog> {
        Arc::new(Backlog {
            max,
            waiting: parking_lot::Mutex::default(),
            cuts: std::sync::atomic::AtomicU64::new(0),
        })
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
        let mut guard = self.backlog.waiting.lock();
        let w = &mut *guard;
        match &self.slot {
            None => {
                let cut = Arc::new(Cut::default());
                let slot = w.writers.insert(Writer {
                    bytes,
                    since: now,
                    cut: Arc::clone(&cut),
                });
                w.uncut += bytes;
                self.slot = Some((slot, cut));
            }
            Some((slot, cut)) => {
                let writer = &mut w.writers[*slot];
                if !cut.done.load(Ordering::Relaxed) {
                    w.uncut = w.uncut - writer.bytes + bytes;
                }
                writer.bytes = bytes;
                if took {
                    writer.since = now;
                }
            }
        }
        while w.uncut > self.backlog.max {
            let mut uncut = w
                .writers
                .iter()
                .map(|(_, x)| x)
                .filter(|x| !x.cut.done.load(Ordering::Relaxed));
            let Some(first) = uncut.next() else { break };
            // One writer alone is never cut, however much it holds.
            let Some(second) = uncut.next() else { break };
            let older = |a: &'_ Writer, b: &'_ Writer| a.since <= b.since;
            let start = if older(second, first) { second } else { first };
            let oldest = uncut.fold(start, |a, b| if older(b, a) { b } else { a });
            let (bytes, cut) = (oldest.bytes, Arc::clone(&oldest.cut));
            w.uncut -= bytes;
            self.backlog.cuts.fetch_add(1, Ordering::Relaxed);
            cut.done.store(true, Ordering::Relaxed);
            cut.notify.notify_waiters();
        }
    }

    /// Nothing waits any more: the registration is removed.
    pub(crate) fn done(&mut self) {
        if let Some((slot, cut)) = self.slot.take() {
            let mut w = self.backlog.waiting.lock();
            let writer = w.writers.remove(slot);
            if !cut.done.load(Ordering::Relaxed) {
                w.uncut -= writer.bytes;
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
}
