//! One shutdown signal, fanned out to every connection.
//!
//! The server holds the trigger; each connection holds a
//! [`ShutdownSignal`] and `select!`s on it wherever it waits for a client.
//! Completion is observed through guards: each connection task holds a
//! clone of a channel sender, and the server knows every connection has
//! finished when the receiving end reports that all senders are gone.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use tokio::sync::mpsc;

/// What a [`Trigger`] and its signals share: the flag, and the tasks
/// waiting for it. A waiter keeps its waker here, in a slot of a shared
/// table, and only the slot's number in its own state: a wait costs every
/// connection that holds one 32 bytes, where a channel's wait future (an
/// entry of an intrusive list, pinned in the waiter's state) cost 160.
#[derive(Debug, Default)]
struct Board {
    /// Set once, by `fire` (Release), before the waiters are woken.
    fired: AtomicBool,
    waiting: Mutex<slab::Slab<Waker>>,
}

/// Resolves when the server begins a graceful shutdown.
#[derive(Clone, Debug)]
pub struct ShutdownSignal {
    board: Arc<Board>,
}

impl ShutdownSignal {
    /// Whether shutdown has begun.
    pub fn is_shutdown(&self) -> bool {
        self.board.fired.load(Ordering::Acquire)
    }

    /// Waits until shutdown begins (at once if it already has). The server
    /// that gave the signal going away counts as a shutdown too.
    pub fn recv(&self) -> impl Future<Output = ()> + Send + use<> {
        ShutdownWait::new(self.clone())
    }
}

/// A wait for shutdown, which a connection may keep for its whole life and
/// poll wherever it waits for its client: it takes a slot in the signal's
/// table at its first poll and leaves it when dropped. A poll with the
/// waker it already gave is answered from the flag alone, without the
/// table's lock. Once shutdown has begun it is ready at every poll.
pub(crate) struct ShutdownWait {
    board: Arc<Board>,
    /// The slot holding this wait's waker (`NO_SLOT`: none yet).
    slot: usize,
    /// The waker in the slot, to tell whether a poll brings another.
    waker: Option<Waker>,
}

/// The slot of a wait that has none.
const NO_SLOT: usize = usize::MAX;

impl ShutdownWait {
    pub(crate) fn new(signal: ShutdownSignal) -> ShutdownWait {
        ShutdownWait {
            board: signal.board,
            slot: NO_SLOT,
            waker: None,
        }
    }
}

impl Future for ShutdownWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.board.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        let this = &mut *self;
        let mut waiting = this.board.waiting.lock();
        // Under the lock: a `fire` that set the flag since the look above
        // is seen here, and one that has not yet will wake this slot.
        if this.board.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        match waiting.get_mut(this.slot) {
            Some(kept) => kept.clone_from(&waker),
            None => this.slot = waiting.insert(waker.clone()),
        }
        drop(waiting);
        this.waker = Some(waker);
        Poll::Pending
    }
}

impl Drop for ShutdownWait {
    fn drop(&mut self) {
        if self.slot != NO_SLOT {
            self.board.waiting.lock().try_remove(self.slot);
        }
    }
}

/// The server's side of a [`ShutdownSignal`]; dropping it fires it (a
/// server that is gone is shut down).
#[derive(Debug)]
pub(crate) struct Trigger {
    board: Arc<Board>,
}

impl Trigger {
    pub(crate) fn new() -> (Trigger, ShutdownSignal) {
        let board = Arc::new(Board::default());
        (
            Trigger {
                board: Arc::clone(&board),
            },
            ShutdownSignal { board },
        )
    }

    pub(crate) fn fire(&self) {
        self.board.fired.store(true, Ordering::Release);
        // Each waiter keeps its slot until it is dropped (it sees the flag
        // at its next poll), so the table's numbers stay its own.
        // Woken outside the lock: a waker may run code of its own.
        let wakers: Vec<Waker> = self
            .board
            .waiting
            .lock()
            .iter()
            .map(|(_, w)| w.clone())
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    pub(crate) fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            board: Arc::clone(&self.board),
        }
    }
}

impl Drop for Trigger {
    fn drop(&mut self) {
        self.fire();
    }
}

/// Held by each connection task; dropped when it ends.
#[derive(Clone, Debug)]
pub(crate) struct Guard {
    _tx: mpsc::Sender<()>,
}

/// Waits for every [`Guard`] to be dropped.
#[derive(Debug)]
pub(crate) struct Completion {
    rx: mpsc::Receiver<()>,
}

pub(crate) fn completion() -> (Guard, Completion) {
    let (tx, rx) = mpsc::channel(1);
    (Guard { _tx: tx }, Completion { rx })
}

impl Completion {
    /// Resolves once every guard (the one returned by [`completion`] included) is dropped.
    pub(crate) async fn wait(&mut self) {
        // Nothing is ever sent: recv returns None when the last sender drops.
        let _ = self.rx.recv().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;

    #[tokio::test]
    async fn a_kept_wait_stays_pending_until_shutdown_then_is_ready_at_every_poll() {
        let (trigger, signal) = Trigger::new();
        let mut wait = ShutdownWait::new(signal);
        // Polled again and again while nothing happens, as a connection's
        // reads between requests poll it.
        for _ in 0..3 {
            assert!((&mut wait).now_or_never().is_none());
        }
        trigger.fire();
        // Ready now and at every later poll (a finished async block would
        // panic if polled again).
        for _ in 0..3 {
            assert_eq!((&mut wait).now_or_never(), Some(()));
        }
    }

    /// Every task waiting is woken by one fire, and each wait gives its
    /// slot back when dropped, so the table holds only waits still kept.
    #[tokio::test]
    async fn one_fire_wakes_every_waiter_and_dropped_waits_leave_the_table() {
        let (trigger, signal) = Trigger::new();
        let mut kept: Vec<ShutdownWait> =
            (0..4).map(|_| ShutdownWait::new(signal.clone())).collect();
        for wait in &mut kept {
            assert!(wait.now_or_never().is_none());
        }
        assert_eq!(signal.board.waiting.lock().len(), 4);
        kept.truncate(1);
        assert_eq!(signal.board.waiting.lock().len(), 1);
        drop(kept);
        assert_eq!(signal.board.waiting.lock().len(), 0);

        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let signal = signal.clone();
                tokio::spawn(async move { signal.recv().await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(tasks.iter().all(|t| !t.is_finished()));
        trigger.fire();
        for task in tasks {
            let woke = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
            assert!(matches!(woke, Ok(Ok(()))));
        }
        assert!(signal.is_shutdown());
        assert_eq!(signal.board.waiting.lock().len(), 0);
    }

    /// A server that goes away without a shutdown (its `serve` dropped)
    /// still ends the waits on its signal.
    #[tokio::test]
    async fn a_dropped_trigger_counts_as_shutdown() {
        let (trigger, signal) = Trigger::new();
        let waiting = tokio::spawn({
            let signal = signal.clone();
            async move { signal.recv().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(trigger);
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await;
        assert!(matches!(woke, Ok(Ok(()))));
        assert!(signal.is_shutdown());
        assert_eq!(signal.recv().now_or_never(), Some(()));
    }

    /// A task polls its kept wait with its own waker again and again (the
    /// quick answer), then parks on it: the shutdown still wakes it.
    #[tokio::test]
    async fn a_task_parked_on_a_kept_wait_wakes_at_shutdown() {
        let (trigger, signal) = Trigger::new();
        let mut wait = ShutdownWait::new(signal);
        let task = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::select! {
                    biased;
                    _ = &mut wait => return "early",
                    _ = tokio::task::yield_now() => {}
                }
            }
            (&mut wait).await;
            "woken"
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!task.is_finished());
        trigger.fire();
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        assert_eq!(woke.ok().and_then(Result::ok), Some("woken"));
    }
}
