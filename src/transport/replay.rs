//! A bounded record of a session's response streams, so a client that lost
//! one can resume it with `GET` + `Last-Event-ID`.
//!
//! Events are kept encoded (the SSE bytes, id line included) and shared:
//! the live stream, the record and every resuming reader send the same
//! buffer, never a copy. The record is bounded in events per stream,
//! streams per session, bytes per session and bytes across all sessions
//! ([`ReplayBudget`]); past a bound the session's oldest events go first
//! (the new event too, when the session has nothing older to give up). A
//! reader asking for events that were dropped is told so rather than
//! handed a stream with a gap.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use crate::budget::{Memory, Pool, Shed};

use bytes::Bytes;
use tokio::sync::Notify;

/// Events kept per stream; older ones cannot be replayed. Default: 256.
pub const EVENTS_PER_STREAM: usize = 256;
/// Streams kept per session; the oldest finished ones go first. Default: 64.
pub const STREAMS_PER_SESSION: usize = 64;
/// Bytes of events kept per session. Default: 4 MiB.
pub(crate) const DEFAULT_BYTES_PER_SESSION: usize = 4 * 1024 * 1024;
/// Bytes of events kept across all sessions. Default: 64 MiB.
pub(crate) const DEFAULT_BYTES_TOTAL: usize = 64 * 1024 * 1024;

/// The byte bounds every session's record shares.
#[derive(Debug)]
pub(crate) struct ReplayBudget {
    per_session: usize,
    total: usize,
    /// Bytes kept by all sessions. Relaxed: a counter compared with a
    /// bound; each session's own bytes are exact under its lock.
    used: AtomicUsize,
    /// The server's budget over all its pools: what is kept counts against
    /// it too (as [`Pool::Replay`]).
    memory: Arc<Memory>,
    /// Every session's record, so another pool's growth can take bytes
    /// from the sessions keeping the most. Swept of ended ones as records
    /// are made.
    sessions: Mutex<Vec<Weak<Replay>>>,
}

impl ReplayBudget {
    /// Bounds of `per_session` and `total` bytes.
    #[cfg(test)]
    pub(crate) fn new(per_session: usize, total: usize) -> Arc<ReplayBudget> {
        ReplayBudget::within_memory(per_session, total, &Memory::unbounded())
    }

    /// Bounds of `per_session` and `total` bytes, whose kept bytes count
    /// against `memory` too: past it, the oldest events go as past the
    /// bounds, and other pools' growth takes them from the sessions
    /// keeping the most.
    pub(crate) fn within_memory(
        per_session: usize,
        total: usize,
        memory: &Arc<Memory>,
    ) -> Arc<ReplayBudget> {
        let budget = Arc::new(ReplayBudget {
            per_session,
            total,
            used: AtomicUsize::new(0),
            memory: Arc::clone(memory),
            sessions: Mutex::new(Vec::new()),
        });
        let shed: Arc<dyn Shed> = budget.clone();
        memory.register(Pool::Replay, Arc::downgrade(&shed));
        budget
    }

    fn add(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
        self.memory.charge(bytes);
    }

    fn sub(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
        self.memory.discharge(bytes);
    }

    /// Bytes kept by all sessions now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Log {
    /// (event number, encoded event) in order.
    events: VecDeque<(u64, Bytes)>,
    /// The highest event number dropped from this stream (0: none).
    dropped_through: u64,
    done: bool,
    /// When the stream was opened, for eviction order.
    opened: u64,
}

#[derive(Default)]
struct Logs {
    streams: HashMap<String, Log>,
    /// Bytes of all events kept here.
    bytes: usize,
}

/// The streams of one session. A std mutex: held to append or copy out, never across `.await`.
pub(crate) struct Replay {
    logs: Mutex<Logs>,
    opened: AtomicU64,
    budget: Arc<ReplayBudget>,
    /// Woken on every append and finish.
    changed: Notify,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay").finish_non_exhaustive()
    }
}

/// What a resuming reader gets.
pub(crate) enum Catchup {
    /// The events after its position, and whether the stream ended.
    Events {
        /// Encoded events, with their numbers.
        events: Vec<(u64, Bytes)>,
        /// The stream ended: nothing more will come.
        done: bool,
    },
    /// Events after its position were dropped to stay within the bounds.
    Gap,
}

impl Replay {
    /// An empty record drawing on `budget`.
    pub(crate) fn new(budget: Arc<ReplayBudget>) -> Arc<Replay> {
        let replay = Arc::new(Replay {
            logs: Mutex::new(Logs::default()),
            opened: AtomicU64::new(0),
            budget,
            changed: Notify::new(),
        });
        let mut sessions = replay.budget.sessions.lock();
        sessions.retain(|s| s.strong_count() > 0);
        sessions.push(Arc::downgrade(&replay));
        drop(sessions);
        replay
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Logs> {
        self.logs.lock()
    }

    /// Starts recording a stream (evicting the oldest finished streams past the limit).
    pub(crate) fn open(&self, stream: &str) {
        let order = self.opened.fetch_add(1, Ordering::Relaxed);
        let mut logs = self.lock();
        while logs.streams.len() >= STREAMS_PER_SESSION {
            let oldest = logs
                .streams
                .iter()
                .filter(|(_, l)| l.done)
                .min_by_key(|(_, l)| l.opened)
                .map(|(k, _)| k.clone());
            let Some(k) = oldest else { break };
            if let Some(log) = logs.streams.remove(&k) {
                let freed: usize = log.events.iter().map(|(_, e)| e.len()).sum();
                logs.bytes -= freed;
                self.budget.sub(freed);
            }
        }
        logs.streams.insert(
            stream.to_owned(),
            Log {
                opened: order,
                ..Log::default()
            },
        );
    }

    /// Records event `n` of a stream (its encoded bytes, shared).
    pub(crate) fn record(&self, stream: &str, n: u64, event: Bytes) {
        {
            let mut guard = self.lock();
            let logs = &mut *guard;
            if let Some(log) = logs.streams.get_mut(stream) {
                if log.events.len() >= EVENTS_PER_STREAM
                    && let Some((old, e)) = log.events.pop_front()
                {
                    log.dropped_through = old;
                    logs.bytes -= e.len();
                    self.budget.sub(e.len());
                }
                logs.bytes += event.len();
                self.budget.add(event.len());
                log.events.push_back((n, event));
                // Answers no client reads go first (the backlog never
                // takes a record's lock: holding this one is safe).
                self.budget.memory.make_room(Pool::Replay);
                self.shed(logs);
            }
        }
        self.changed.notify_waiters();
    }

    /// Drops this session's oldest events while it is over its own bound,
    /// all sessions together are over theirs, or all pools over the
    /// memory budget.
    fn shed(&self, logs: &mut Logs) {
        let over = |logs: &Logs| {
            logs.bytes > self.budget.per_session
                || self.budget.used.load(Ordering::Relaxed) > self.budget.total
                || self.budget.memory.over()
        };
        while over(logs) && self.drop_oldest(logs).is_some() {}
    }

    /// Drops the oldest event of the oldest stream holding one; its bytes.
    fn drop_oldest(&self, logs: &mut Logs) -> Option<usize> {
        let log = logs
            .streams
            .values_mut()
            .filter(|l| !l.events.is_empty())
            .min_by_key(|l| l.opened)?;
        let (n, e) = log.events.pop_front()?;
        log.dropped_through = n;
        logs.bytes -= e.len();
        self.budget.sub(e.len());
        Some(e.len())
    }

    /// Drops this session's oldest events until `bytes` are given up (or
    /// none is left); the bytes given up.
    fn give_up(&self, bytes: usize) -> usize {
        let mut logs = self.lock();
        let mut freed = 0;
        while freed < bytes {
            match self.drop_oldest(&mut logs) {
                Some(len) => freed += len,
                None => break,
            }
        }
        freed
    }

    /// Marks a stream as ended.
    pub(crate) fn finish(&self, stream: &str) {
        if let Some(log) = self.lock().streams.get_mut(stream) {
            log.done = true;
        }
        self.changed.notify_waiters();
    }

    /// Whether `stream` is recorded here (kept, possibly with a gap).
    pub(crate) fn knows(&self, stream: &str) -> bool {
        self.lock().streams.contains_key(stream)
    }

    /// Events of `stream` after number `after`; `None` for a stream not (or no longer) kept.
    pub(crate) fn after(&self, stream: &str, after: u64) -> Option<Catchup> {
        let logs = self.lock();
        let log = logs.streams.get(stream)?;
        if log.dropped_through > after {
            return Some(Catchup::Gap);
        }
        Some(Catchup::Events {
            events: log
                .events
                .iter()
                .filter(|(n, _)| *n > after)
                .cloned()
                .collect(),
            done: log.done,
        })
    }

    /// Resolves after the next append or finish (call `enable` on it before
    /// reading, so a change in between is not missed).
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        let bytes = self.lock().bytes;
        self.budget.sub(bytes);
    }
}

impl Shed for ReplayBudget {
    /// Takes `bytes` from the sessions keeping the most, their oldest
    /// events first.
    fn shed(&self, bytes: usize) -> usize {
        let sessions: Vec<Arc<Replay>> = self
            .sessions
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut by_bytes: Vec<(usize, Arc<Replay>)> = sessions
            .into_iter()
            .map(|r| {
                let bytes = r.lock().bytes;
                (bytes, r)
            })
            .collect();
        by_bytes.sort_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        let mut freed = 0;
        for (_, replay) in &by_bytes {
            if freed >= bytes {
                break;
            }
            freed += replay.give_up(bytes - freed);
        }
        freed
    }
}

/// Splits a `Last-Event-ID` of the form `<stream>-<n>`.
pub(crate) fn parse_event_id(id: &str) -> Option<(&str, u64)> {
    let (stream, n) = id.rsplit_once('-')?;
    Some((stream, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay() -> Arc<Replay> {
        Replay::new(ReplayBudget::new(usize::MAX, usize::MAX))
    }

    fn events(c: Option<Catchup>) -> (Vec<u64>, bool) {
        match c {
            Some(Catchup::Events { events, done }) => (events.iter().map(|e| e.0).collect(), done),
            Some(Catchup::Gap) => panic!("gap"),
            None => panic!("not kept"),
        }
    }

    #[test]
    fn records_bounds_and_replays() {
        let r = replay();
        r.open("7");
        for n in 1..=(EVENTS_PER_STREAM as u64 + 10) {
            r.record("7", n, Bytes::from_static(b"x"));
        }
        assert!(matches!(r.after("7", 0), Some(Catchup::Gap)));
        let (kept, done) = events(r.after("7", 10));
        assert_eq!(kept.len(), EVENTS_PER_STREAM);
        assert_eq!(kept[0], 11);
        assert!(!done);
        r.finish("7");
        assert_eq!(
            events(r.after("7", 260)),
            (vec![261, 262, 263, 264, 265, 266], true)
        );
        assert!(r.after("8", 0).is_none());
        assert_eq!(parse_event_id("\"a-b\"-12"), Some(("\"a-b\"", 12)));
        assert_eq!(parse_event_id("nope"), None);
    }

    #[test]
    fn evicts_the_oldest_finished_streams() {
        let r = replay();
        for i in 0..STREAMS_PER_SESSION {
            r.open(&i.to_string());
            r.finish(&i.to_string());
        }
        r.open("new");
        assert!(r.after("0", 0).is_none());
        assert!(r.after("1", 0).is_some());
        assert!(r.after("new", 0).is_some());
    }

    #[test]
    fn bytes_are_bounded_per_session_and_in_total() {
        let budget = ReplayBudget::new(1000, 1500);
        let a = Replay::new(Arc::clone(&budget));
        let b = Replay::new(Arc::clone(&budget));
        a.open("1");
        for n in 1..=5 {
            a.record("1", n, Bytes::from(vec![b'a'; 300]));
        }
        // 1500 bytes sent, 1000 kept: the two oldest went first.
        assert!(matches!(a.after("1", 1), Some(Catchup::Gap)));
        assert_eq!(events(a.after("1", 2)).0, [3, 4, 5]);
        assert_eq!(budget.used(), 900);
        b.open("1");
        for n in 1..=3 {
            b.record("1", n, Bytes::from(vec![b'b'; 300]));
        }
        // Together past 1500: b gives up its own oldest to stay within it.
        assert!(budget.used() <= 1500, "{}", budget.used());
        assert_eq!(events(b.after("1", 2)).0, [3]);
        // An event bigger than a session's bound is not kept at all.
        b.record("1", 4, Bytes::from(vec![b'b'; 2000]));
        assert!(matches!(b.after("1", 3), Some(Catchup::Gap)));
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0, "a dropped session gives its bytes back");
    }

    #[test]
    fn kept_events_count_against_the_memory_budget_and_give_way() {
        let memory = Memory::new(2000);
        let budget = ReplayBudget::within_memory(1000, 10_000, &memory);
        let (a, b) = (
            Replay::new(Arc::clone(&budget)),
            Replay::new(Arc::clone(&budget)),
        );
        a.open("1");
        b.open("1");
        for n in 1..=3 {
            a.record("1", n, Bytes::from(vec![b'a'; 300]));
        }
        b.record("1", 1, Bytes::from(vec![b'b'; 300]));
        assert_eq!(memory.used(), 1200);
        // Another pool holds 700: the next event, within the record's own
        // bounds, is past the memory's, and its session's oldest goes.
        memory.charge(700);
        b.record("1", 2, Bytes::from(vec![b'b'; 300]));
        assert!(matches!(b.after("1", 0), Some(Catchup::Gap)));
        assert_eq!(events(b.after("1", 1)).0, [2]);
        assert_eq!(memory.used(), 1900);
        // A pool worth more needs 700 more: the session keeping the most
        // gives its oldest first, and no more than needed.
        memory.charge(700);
        assert!(memory.make_room(Pool::Input));
        assert_eq!(events(a.after("1", 2)).0, [3]);
        assert!(matches!(a.after("1", 1), Some(Catchup::Gap)));
        assert_eq!(events(b.after("1", 1)).0, [2]);
        assert_eq!(memory.used(), 2000);
        drop((a, b));
        assert_eq!(memory.used(), 1400);
    }
}
