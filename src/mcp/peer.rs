//! A session's queue of messages to the client: bounded in messages and in
//! bytes, one allocation to make, and none more until a message is sent
//! (most calls send none).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use std::task::{Context, Poll};
use tokio::sync::Notify;

/// Where a session sends messages of its own (notifications, requests) to the client.
///
/// Transports that cannot carry them (a plain JSON HTTP answer) have none.
/// The queue is bounded in messages and, with [`Peer::bounded`], in bytes:
/// the bytes of every message handed to [`Peer::send`] and not yet taken
/// by the transport count (those waiting for room in the queue too), so a
/// client that stops reading cannot make the server hold more than that.
#[derive(Debug)]
pub struct Peer {
    shared: Arc<Shared>,
}

/// What a [`Peer`], its clones and its [`PeerReceiver`] share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// The most messages queued.
    capacity: usize,
    /// Bytes handed to `send` and not yet received.
    bytes: crate::budget::ByteBudget,
    /// The receiver's task, woken when a message is queued, the last peer
    /// goes or the byte bound is passed (the receiver registers before it
    /// looks, so no wake is lost). A waker slot, not a `Notify`: a wait
    /// on it holds no state of its own, which every idle socket would keep.
    readable: AtomicWaker,
    /// Woken when a message leaves a full queue or the receiver goes.
    room: Notify,
    /// Set once a message did not fit the byte bound; never cleared.
    /// Stored with Release before the receiver is woken, loaded with
    /// Acquire after it registers.
    overflowed: AtomicBool,
}

impl Shared {
    fn is_empty(&self) -> bool {
        self.state.lock().queue.is_empty()
    }
}

#[derive(Debug)]
struct State {
    /// No allocation of its own until two messages wait at once.
    queue: Queue,
    /// Peers alive: at none, the receiver ends once the queue is empty.
    peers: usize,
    /// Whether the receiver is alive: without it, sending fails.
    receiving: bool,
    /// Whether a sender ever found the queue full (and so may wait for
    /// room): until then, taking a message or the receiver's end wakes no
    /// one, and costs no wake-up.
    was_full: bool,
}

/// Messages in order: the first in a slot of its own, so that a lone
/// message (an answer, the common case) needs no deque, and the deque of a
/// burst is dropped when it empties: an idle socket keeps none.
#[derive(Debug, Default)]
struct Queue {
    /// The first message; none only when `rest` is empty too.
    first: Option<Vec<u8>>,
    rest: VecDeque<Vec<u8>>,
}

impl Queue {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn push_back(&mut self, message: Vec<u8>) {
        if self.first.is_none() {
            self.first = Some(message);
        } else {
            self.rest.push_back(message);
        }
    }

    fn pop_front(&mut self) -> Option<Vec<u8>> {
        let message = self.first.take()?;
        self.first = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > 0 {
            self.rest = VecDeque::new();
        }
        Some(message)
    }
}

impl Peer {
    /// Whether no message is queued (sent and not yet received).
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }

    /// A peer whose messages arrive, already encoded, on the returned
    /// receiver; at most `buffer` messages wait in the queue.
    pub fn channel(buffer: usize) -> (Peer, PeerReceiver) {
        Peer::bounded(buffer, usize::MAX)
    }

    /// Like [`Peer::channel`], with at most `max_bytes` of messages sent and
    /// not yet received. A message that would pass it (unless nothing is
    /// queued) is dropped, `send` returns false, and the receiver's
    /// [`PeerReceiver::poll_overflowed`] is ready: the transport should close.
    pub fn bounded(buffer: usize, max_bytes: usize) -> (Peer, PeerReceiver) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Queue::default(),
                peers: 1,
                receiving: true,
                was_full: false,
            }),
            capacity: buffer.max(1),
            bytes: crate::budget::ByteBudget::new(max_bytes),
            readable: AtomicWaker::new(),
            room: Notify::new(),
            overflowed: AtomicBool::new(false),
        });
        (
            Peer {
                shared: Arc::clone(&shared),
            },
            PeerReceiver { shared },
        )
    }

    /// Sends one encoded message, waiting while the queue is full; false
    /// when the client is gone or the byte bound was passed.
    pub async fn send(&self, message: Vec<u8>) -> bool {
        let len = message.len();
        let s = &self.shared;
        if !s.bytes.take(len) {
            s.overflowed.store(true, Ordering::Release);
            s.readable.wake();
            return false;
        }
        let mut message = Some(message);
        loop {
            // Registered before the check, so a wake between the two is kept.
            let room = s.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = s.state.lock();
                if !state.receiving {
                    drop(state);
                    s.bytes.give_back(len);
                    return false;
                }
                if state.queue.len() < s.capacity {
                    if let Some(message) = message.take() {
                        state.queue.push_back(message);
                    }
                    drop(state);
                    s.readable.wake();
                    return true;
                }
                // Set under the lock the receiver takes to wake waiters.
                state.was_full = true;
            }
            room.await;
        }
    }
}

impl Clone for Peer {
    fn clone(&self) -> Peer {
        self.shared.state.lock().peers += 1;
        Peer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.state.lock();
            state.peers -= 1;
            state.peers == 0
        };
        if last {
            self.shared.readable.wake();
        }
    }
}

/// The transport's end of a [`Peer`].
#[derive(Debug)]
pub struct PeerReceiver {
    shared: Arc<Shared>,
}

impl PeerReceiver {
    /// Bytes of the messages queued (sent and not yet received).
    pub fn queued_bytes(&self) -> usize {
        self.shared.bytes.used()
    }

    /// The next message; `None` once every [`Peer`] is dropped and the
    /// queue is empty.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`PeerReceiver::recv`] as a poll: the next message, `Ready(None)`
    /// once every peer is gone and the queue is empty, or `Pending` with
    /// the task woken when that changes. Only the latest task to poll is
    /// woken (as for any channel's single receiver).
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        // Registered before the look, so a send between the two wakes it.
        self.shared.readable.register(cx.waker());
        let mut state = self.shared.state.lock();
        if let Some(message) = self.take(&mut state) {
            return Poll::Ready(Some(message));
        }
        if state.peers == 0 {
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    /// Whether a message was dropped for passing the byte bound (the
    /// transport should close), or `Pending` with the task woken when one
    /// is: for the task that polls [`PeerReceiver::poll_recv`] (a drop wakes
    /// the task registered by either).
    pub fn poll_overflowed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.readable.register(cx.waker());
        if self.shared.overflowed.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The next message if one is queued.
    pub fn try_recv(&mut self) -> Option<Vec<u8>> {
        let mut state = self.shared.state.lock();
        self.take(&mut state)
    }

    /// Takes the first queued message, its bytes given back and a waiting
    /// sender woken.
    fn take(&self, state: &mut State) -> Option<Vec<u8>> {
        let message = state.queue.pop_front()?;
        self.shared.bytes.give_back(message.len());
        if state.was_full {
            self.shared.room.notify_one();
        }
        Some(message)
    }

    /// Whether no message is queued.
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }
}

impl Drop for PeerReceiver {
    fn drop(&mut self) {
        let was_full = {
            let mut state = self.shared.state.lock();
            state.receiving = false;
            state.was_full
        };
        // Every sender waiting for room learns the client is gone.
        if was_full {
            self.shared.room.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_queue_keeps_order_across_its_slot_and_its_deque_and_drops_an_emptied_deque() {
        let mut queue = Queue::default();
        assert!(queue.is_empty() && queue.pop_front().is_none());
        for round in 0..3u8 {
            for n in 0..=round * 2 {
                queue.push_back(vec![round, n]);
            }
            assert_eq!(queue.len(), usize::from(round * 2 + 1));
            // Taken while more arrive: still first in, first out.
            assert_eq!(queue.pop_front(), Some(vec![round, 0]));
            queue.push_back(vec![round, 99]);
            for n in 1..=round * 2 {
                assert_eq!(queue.pop_front(), Some(vec![round, n]));
            }
            assert_eq!(queue.pop_front(), Some(vec![round, 99]));
            assert!(queue.is_empty() && queue.pop_front().is_none());
            assert_eq!(queue.rest.capacity(), 0, "an empty queue keeps no deque");
        }
    }

    #[tokio::test]
    async fn messages_arrive_in_order_then_none_once_every_peer_is_gone() {
        let (peer, mut rx) = Peer::channel(4);
        assert!(rx.is_empty());
        let other = peer.clone();
        assert!(peer.send(b"one".to_vec()).await);
        assert!(other.send(b"two".to_vec()).await);
        drop(peer);
        assert!(!rx.is_empty());
        assert_eq!(rx.recv().await.as_deref(), Some(&b"one"[..]));
        drop(other);
        // Queued messages still come after the last peer went.
        assert_eq!(rx.recv().await.as_deref(), Some(&b"two"[..]));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_send_and_by_the_last_drop() {
        let (peer, mut rx) = Peer::channel(1);
        let waiting = tokio::spawn(async move { (rx.recv().await, rx) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(peer.send(b"x".to_vec()).await);
        let (got, mut rx) = waiting.await.expect("joined");
        assert_eq!(got.as_deref(), Some(&b"x"[..]));
        let waiting = tokio::spawn(async move { rx.recv().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(peer);
        let ended = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert_eq!(ended.expect("woken").expect("joined"), None);
    }

    #[tokio::test]
    async fn a_full_queue_makes_senders_wait_and_a_gone_receiver_fails_them() {
        let (peer, mut rx) = Peer::channel(1);
        assert!(peer.send(b"a".to_vec()).await);
        let blocked = {
            let peer = peer.clone();
            tokio::spawn(async move { peer.send(b"b".to_vec()).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!blocked.is_finished(), "sent past the queue's bound");
        // Room made: the waiting send goes through.
        assert_eq!(rx.try_recv().as_deref(), Some(&b"a"[..]));
        assert!(blocked.await.expect("joined"));
        // Full again; the receiver goes: the waiting sender fails.
        let blocked = {
            let peer = peer.clone();
            tokio::spawn(async move { peer.send(b"c".to_vec()).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        let failed = tokio::time::timeout(Duration::from_secs(5), blocked).await;
        assert!(!failed.expect("woken").expect("joined"));
        assert!(!peer.send(b"d".to_vec()).await);
    }

    #[tokio::test]
    async fn the_byte_bound_drops_a_message_and_says_so() {
        let (peer, mut rx) = Peer::bounded(8, 10);
        assert!(peer.send(vec![0; 6]).await);
        assert!(
            std::future::poll_fn(|cx| Poll::Ready(rx.poll_overflowed(cx).is_pending())).await,
            "nothing dropped yet"
        );
        assert!(!peer.send(vec![0; 6]).await, "past 10 bytes queued");
        tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| rx.poll_overflowed(cx)),
        )
        .await
        .expect("overflow seen");
        // Taken bytes are given back: room again.
        assert_eq!(rx.recv().await.map(|m| m.len()), Some(6));
        assert!(peer.send(vec![0; 6]).await);
    }
}
