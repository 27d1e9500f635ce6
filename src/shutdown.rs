//! One shutdown signal, fanned out to every connection.
//!
//! The server holds the trigger; each connection holds a
//! [`ShutdownSignal`] and `select!`s on it wherever it waits for a client.
//! Completion is observed through guards: each connection task holds a
//! clone of a channel sender, and the server knows every connection has
//! finished when the receiving end reports that all senders are gone.

use tokio::sync::{mpsc, watch};

/// Resolves when the server begins a graceful shutdown.
#[derive(Clone, Debug)]
pub struct ShutdownSignal {
    rx: watch::Receiver<bool>,
}

impl ShutdownSignal {
    /// Whether shutdown has begun.
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until shutdown begins (at once if it already has).
    pub async fn recv(&mut self) {
        // An error means the trigger is gone, which only happens once the
        // server itself has stopped: treat it as shutdown too.
        let _ = self.rx.wait_for(|&down| down).await;
    }
}

/// A wait for shutdown that a connection keeps for its whole life and
/// polls wherever it waits for its client: it registers with the signal
/// once, where a fresh [`ShutdownSignal::recv`] per wait registers and
/// unregisters every time. Once shutdown has begun it is ready at every
/// poll.
///
/// A poll with the waker the wait already holds, while the signal has not
/// changed since, is answered at once: re-polling the registered wait
/// takes the signal's lock (about 90 instructions, at every wait of every
/// request).
pub(crate) struct ShutdownWait {
    wait: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The same signal, to see whether it changed without the wait's lock.
    seen: watch::Receiver<bool>,
    /// The waker the wait holds (from its latest poll).
    waker: Option<std::task::Waker>,
    done: bool,
}

impl ShutdownWait {
    pub(crate) fn new(mut signal: ShutdownSignal) -> ShutdownWait {
        ShutdownWait {
            seen: signal.rx.clone(),
            wait: Box::pin(async move { signal.recv().await }),
            waker: None,
            done: false,
        }
    }
}

impl Future for ShutdownWait {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.done {
            return std::task::Poll::Ready(());
        }
        // The wait would wake this waker on a change; none has come (a
        // gone sender reads as a change, and is then polled).
        let registered = self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if registered && !self.seen.has_changed().unwrap_or(true) {
            return std::task::Poll::Pending;
        }
        if self.wait.as_mut().poll(cx).is_pending() {
            if !registered {
                self.waker = Some(cx.waker().clone());
            }
            return std::task::Poll::Pending;
        }
        self.done = true;
        std::task::Poll::Ready(())
    }
}

/// The server's side of a [`ShutdownSignal`].
#[derive(Debug)]
pub(crate) struct Trigger {
    tx: watch::Sender<bool>,
}

impl Trigger {
    pub(crate) fn new() -> (Trigger, ShutdownSignal) {
        let (tx, rx) = watch::channel(false);
        (Trigger { tx }, ShutdownSignal { rx })
    }

    pub(crate) fn fire(&self) {
        self.tx.send_replace(true);
    }

    pub(crate) fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            rx: self.tx.subscribe(),
        }
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
