//! A bounded record of a session's response streams, so a client that lost
//! one can resume it with `GET` + `Last-Event-ID`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

/// Events kept per stream; older ones cannot be replayed. Default: 256.
pub const EVENTS_PER_STREAM: usize = 256;
/// Streams kept per session; the oldest finished ones go first. Default: 64.
pub const STREAMS_PER_SESSION: usize = 64;

#[derive(Default)]
struct Log {
    /// (event number, data) in order.
    events: VecDeque<(u64, Vec<u8>)>,
    done: bool,
    /// When the stream was opened, for eviction order.
    opened: u64,
}

/// The streams of one session. A std mutex: held to append or copy out, never across `.await`.
#[derive(Default)]
pub(crate) struct Replay {
    logs: Mutex<HashMap<String, Log>>,
    opened: std::sync::atomic::AtomicU64,
    /// Woken on every append and finish.
    changed: Notify,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay").finish_non_exhaustive()
    }
}

/// What a resuming reader gets: the events after its position, and whether the stream ended.
pub(crate) struct Catchup {
    pub(crate) events: Vec<(u64, Vec<u8>)>,
    pub(crate) done: bool,
}

impl Replay {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Log>> {
        self.logs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts recording a stream (evicting the oldest finished streams past the limit).
    pub(crate) fn open(&self, stream: &str) {
        let order = self
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut logs = self.lock();
        while logs.len() >= STREAMS_PER_SESSION {
            let oldest = logs
                .iter()
                .filter(|(_, l)| l.done)
                .min_by_key(|(_, l)| l.opened)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    logs.remove(&k);
                }
                None => break,
            }
        }
        logs.insert(
            stream.to_owned(),
            Log {
                opened: order,
                ..Log::default()
            },
        );
    }

    /// Records event `n` of a stream.
    pub(crate) fn record(&self, stream: &str, n: u64, data: &[u8]) {
        if let Some(log) = self.lock().get_mut(stream) {
            if log.events.len() >= EVENTS_PER_STREAM {
                log.events.pop_front();
            }
            log.events.push_back((n, data.to_vec()));
        }
        self.changed.notify_waiters();
    }

    /// Marks a stream as ended.
    pub(crate) fn finish(&self, stream: &str) {
        if let Some(log) = self.lock().get_mut(stream) {
            log.done = true;
        }
        self.changed.notify_waiters();
    }

    /// Events of `stream` after number `after`; `None` for a stream not (or no longer) kept.
    pub(crate) fn after(&self, stream: &str, after: u64) -> Option<Catchup> {
        let logs = self.lock();
        let log = logs.get(stream)?;
        Some(Catchup {
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

/// Splits a `Last-Event-ID` of the form `<stream>-<n>`.
pub(crate) fn parse_event_id(id: &str) -> Option<(&str, u64)> {
    let (stream, n) = id.rsplit_once('-')?;
    Some((stream, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_bounds_and_replays() {
        let r = Replay::default();
        r.open("7");
        for n in 1..=(EVENTS_PER_STREAM as u64 + 10) {
            r.record("7", n, b"x");
        }
        let c = r.after("7", 0).unwrap();
        assert_eq!(c.events.len(), EVENTS_PER_STREAM);
        assert_eq!(c.events[0].0, 11);
        assert!(!c.done);
        r.finish("7");
        let c = r.after("7", 260).unwrap();
        assert_eq!(
            c.events.iter().map(|e| e.0).collect::<Vec<_>>(),
            [261, 262, 263, 264, 265, 266]
        );
        assert!(c.done);
        assert!(r.after("8", 0).is_none());
        assert_eq!(parse_event_id("\"a-b\"-12"), Some(("\"a-b\"", 12)));
        assert_eq!(parse_event_id("nope"), None);
    }

    #[test]
    fn evicts_the_oldest_finished_streams() {
        let r = Replay::default();
        for i in 0..STREAMS_PER_SESSION {
            r.open(&i.to_string());
            r.finish(&i.to_string());
        }
        r.open("new");
        assert!(r.after("0", 0).is_none());
        assert!(r.after("1", 0).is_some());
        assert!(r.after("new", 0).is_some());
    }
}
