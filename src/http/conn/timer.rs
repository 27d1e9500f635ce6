//! A connection's one timer for its waits between requests, moved lazily.
//!
//! Every wait for a request head has a deadline (the keep-alive or head
//! timeout). A fresh `tokio::time::timeout` per wait registers a timer
//! entry with the runtime's driver and removes it again, on every request
//! of a keep-alive connection: several hundred instructions and a lock of
//! the driver each time, for a timer that almost never fires.
//!
//! Here the connection keeps one timer. A wait whose deadline is later
//! than the timer's leaves the timer alone; when the timer fires early for
//! it, the wait moves the timer to its own deadline and goes on waiting.
//! Only a wait with an earlier deadline (the head timeout once part of a
//! head arrived) moves the timer at once. So a busy keep-alive connection
//! moves its timer about once per keep-alive timeout, not once per request,
//! and a deadline is never missed: the wait ends once its own deadline has
//! passed, never before.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::time::{Instant, Sleep, sleep_until};

/// The timer, made at the connection's first wait.
#[derive(Default)]
pub(super) struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Timer {
    /// Resolves once `deadline` has passed.
    pub(super) fn until(&mut self, deadline: Instant) -> Until<'_> {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        Until { sleep, deadline }
    }
}

/// The wait of [`Timer::until`].
pub(super) struct Until<'t> {
    sleep: &'t mut Pin<Box<Sleep>>,
    deadline: Instant,
}

impl Future for Until<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            // The timer was set for an earlier wait: this one goes on.
            if self.sleep.deadline() >= deadline {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Timer;
    use std::time::Duration;
    use tokio::time::{Instant, timeout};

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn a_wait_ends_at_its_own_deadline_whatever_the_timer_was_set_for() {
        let mut timer = Timer::default();
        // First wait: the timer is made for it.
        let start = Instant::now();
        timer.until(start + 40 * MS).await;
        assert!(start.elapsed() >= 40 * MS);
        // A later deadline once the timer has fired: it is moved on.
        let start = Instant::now();
        timer.until(start + 30 * MS).await;
        assert!(start.elapsed() >= 30 * MS);
        // A wait cut short leaves the timer set for its deadline (40 ms
        // on); a later wait (100 ms) lets it fire, then waits on.
        let start = Instant::now();
        assert!(timeout(5 * MS, timer.until(start + 40 * MS)).await.is_err());
        let start = Instant::now();
        timer.until(start + 100 * MS).await;
        assert!(start.elapsed() >= 100 * MS, "{:?}", start.elapsed());
        // An earlier deadline than the timer's (set 10 s on by a cut wait)
        // moves it at once.
        let start = Instant::now();
        assert!(
            timeout(5 * MS, timer.until(start + 10_000 * MS))
                .await
                .is_err()
        );
        let start = Instant::now();
        timer.until(start + 30 * MS).await;
        let took = start.elapsed();
        assert!(took >= 30 * MS && took < 5_000 * MS, "{took:?}");
    }
}
