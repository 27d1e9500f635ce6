//! A session's calls in flight, by raw request id, so that a cancellation
//! can reach them. Most sessions run one call at a time or none: one is
//! kept without a table, and a table is dropped once it empties, so an
//! idle session holds nothing here and a lone call allocates nothing more.

use std::collections::HashMap;

use tokio::sync::watch;

use crate::mcp::Kept;

/// The calls in flight of one session.
#[derive(Debug, Default)]
pub(crate) enum Inflight {
    /// None runs.
    #[default]
    Idle,
    /// One runs.
    One(Kept, watch::Sender<bool>),
    /// Several have run at once since the session was last idle.
    Many(HashMap<Kept, watch::Sender<bool>>),
}

impl Inflight {
    /// Tracks the call `id`, replacing one of the same id.
    pub(crate) fn insert(&mut self, id: Kept, cancel: watch::Sender<bool>) {
        match std::mem::take(self) {
            Inflight::Idle => *self = Inflight::One(id, cancel),
            Inflight::One(other, its) if other == id => {
                drop(its);
                *self = Inflight::One(id, cancel);
            }
            Inflight::One(other, its) => {
                let mut calls = HashMap::with_capacity(2);
                calls.insert(other, its);
                calls.insert(id, cancel);
                *self = Inflight::Many(calls);
            }
            Inflight::Many(mut calls) => {
                calls.insert(id, cancel);
                *self = Inflight::Many(calls);
            }
        }
    }

    /// Forgets the call `id`.
    pub(crate) fn remove(&mut self, id: &str) {
        match self {
            Inflight::Idle => {}
            Inflight::One(other, _) => {
                if other.as_str() == id {
                    *self = Inflight::Idle;
                }
            }
            Inflight::Many(calls) => {
                calls.remove(id);
                if calls.is_empty() {
                    *self = Inflight::Idle;
                }
            }
        }
    }

    /// The cancel handle of the call `id`.
    pub(crate) fn get(&self, id: &str) -> Option<&watch::Sender<bool>> {
        match self {
            Inflight::Idle => None,
            Inflight::One(other, cancel) => (other.as_str() == id).then_some(cancel),
            Inflight::Many(calls) => calls.get(id),
        }
    }

    /// Whether none runs.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Inflight::Idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_found_by_id_and_an_emptied_table_is_dropped() {
        let mut inflight = Inflight::default();
        let (one, _r1) = watch::channel(false);
        let (two, _r2) = watch::channel(false);
        let (three, _r3) = watch::channel(false);
        inflight.insert(Kept::one("1"), one);
        assert!(matches!(inflight, Inflight::One(..)));
        assert!(inflight.get("1").is_some() && inflight.get("2").is_none());
        inflight.insert(Kept::one("2"), two);
        inflight.insert(Kept::one("3"), three);
        assert!(matches!(&inflight, Inflight::Many(calls) if calls.len() == 3));
        for id in ["1", "2", "3"] {
            inflight.get(id).expect("tracked").send_replace(true);
        }
        assert!(*_r1.borrow() && *_r2.borrow() && *_r3.borrow());
        inflight.remove("2");
        inflight.remove("9");
        assert!(inflight.get("2").is_none() && inflight.get("3").is_some());
        inflight.remove("1");
        inflight.remove("3");
        assert!(inflight.is_empty(), "{inflight:?}");

        let (again, _r) = watch::channel(false);
        inflight.insert(Kept::one("4"), again);
        inflight.remove("5");
        assert!(inflight.get("4").is_some());
        inflight.remove("4");
        assert!(inflight.is_empty());
    }
}
